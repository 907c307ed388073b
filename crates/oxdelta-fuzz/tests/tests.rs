//! Replays every fuzz corpus and regression file through the fuzz
//! properties, on stable, and (ignored) rewrites the seed corpus.

use std::fs;
use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.is_file());
    v.sort();
    v
}

/// Every committed input of every target passes its property.
#[test]
fn replay_corpus_and_regressions() {
    let mut total = 0;
    for (name, f) in oxdelta_fuzz::TARGETS {
        let mut n = 0;
        for kind in ["corpus", "regressions"] {
            for path in files(&fuzz_dir().join(kind).join(name)) {
                let data = fs::read(&path).unwrap();
                let r = std::panic::catch_unwind(|| f(&data));
                assert!(r.is_ok(), "{name}: {} fails its property", path.display());
                n += 1;
            }
        }
        assert!(n > 0, "no seed inputs for target {name}");
        total += n;
    }
    eprintln!("replayed {total} inputs");
}

/// The seed corpus is what the generator writes (keeps seeds and code in step).
#[test]
fn seeds_are_valid_inputs() {
    use arbitrary::{Arbitrary, Unstructured};
    for (_, data) in oxdelta_fuzz::seeds::patches() {
        oxdelta_fuzz::parse(&data);
        oxdelta_fuzz::apply(&data);
        oxdelta_format::Patch::parse(&data).expect("seed patch parses");
    }
    for (_, data) in oxdelta_fuzz::seeds::chunks() {
        let v = oxdelta_fuzz::ChunkInput::arbitrary_take_rest(Unstructured::new(&data)).unwrap();
        assert_eq!(v.to_bytes(), data, "ChunkInput::to_bytes inverts arbitrary");
        oxdelta_fuzz::decode_chunk(&data);
    }
    for (_, data) in oxdelta_fuzz::seeds::pairs() {
        let v =
            oxdelta_fuzz::RoundtripInput::arbitrary_take_rest(Unstructured::new(&data)).unwrap();
        assert_eq!(
            v.to_bytes(),
            data,
            "RoundtripInput::to_bytes inverts arbitrary"
        );
        oxdelta_fuzz::roundtrip(&data);
    }
    for (_, data) in oxdelta_fuzz::seeds::inplace_pairs() {
        let v = oxdelta_fuzz::InPlaceInput::arbitrary_take_rest(Unstructured::new(&data)).unwrap();
        assert_eq!(
            v.to_bytes(),
            data,
            "InPlaceInput::to_bytes inverts arbitrary"
        );
        oxdelta_fuzz::inplace(&data);
    }
}

/// Rewrites fuzz/corpus/* from the generators:
/// `cargo test -p oxdelta-fuzz -- --ignored write_seed_corpus`.
#[test]
#[ignore]
fn write_seed_corpus() {
    let sets = [
        ("parse", oxdelta_fuzz::seeds::patches()),
        ("apply", oxdelta_fuzz::seeds::patches()),
        ("decode_chunk", oxdelta_fuzz::seeds::chunks()),
        ("roundtrip", oxdelta_fuzz::seeds::pairs()),
        ("inplace", oxdelta_fuzz::seeds::inplace_pairs()),
    ];
    for (target, seeds) in sets {
        let dir = fuzz_dir().join("corpus").join(target);
        fs::create_dir_all(&dir).unwrap();
        for (name, data) in seeds {
            fs::write(dir.join(format!("seed-{name}")), data).unwrap();
        }
    }
}
