//! Patch bytes are pinned: the differ makes exactly the committed patches
//! under `testdata/identity/` from the committed pairs (the golden pairs
//! and `testdata/msgpack`), with several codecs and chunk lengths, the
//! in-place and streaming engines, on one thread and on two.
//!
//! This is what a refactoring of the encoder must keep (a change that is
//! meant to change patches regenerates the files, with the sizes before
//! and after in its commit message): `cargo test -p oxdelta --test tests
//! -- --ignored regenerate_identity` rewrites them all.

use std::fs;
use std::path::{Path, PathBuf};

use oxdelta::{Codec, DiffOptions, InPlaceDiffOptions};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/identity")
}

/// How one pinned patch is made.
#[derive(Clone, Copy)]
enum Engine {
    InMemory,
    InPlace,
    /// The streaming engine with this memory budget.
    Streaming(u64),
}

/// One pinned patch: its file name's middle part and how it is made.
struct Variant {
    name: &'static str,
    codec: Codec,
    chunk_len: Option<u32>,
    engine: Engine,
}

const fn v(name: &'static str, codec: Codec, chunk_len: Option<u32>, engine: Engine) -> Variant {
    Variant {
        name,
        codec,
        chunk_len,
        engine,
    }
}

/// The variants for the small golden pairs: every codec and both zstd
/// paths (above level 3 candidates are ranked at level 3 first), chunks
/// small enough for several per pair (and so a shared section), and the
/// other engines.
const SMALL: &[Variant] = &[
    v("none", Codec::None, Some(1024), Engine::InMemory),
    v("lz4", Codec::Lz4, Some(1024), Engine::InMemory),
    v("zstd3", Codec::Zstd(3), Some(1024), Engine::InMemory),
    v("zstd19", Codec::Zstd(19), Some(1024), Engine::InMemory),
    v("zstd19.whole", Codec::Zstd(19), None, Engine::InMemory),
    v(
        "zstd19.inplace",
        Codec::Zstd(19),
        Some(1024),
        Engine::InPlace,
    ),
    v("lz4.inplace", Codec::Lz4, Some(1024), Engine::InPlace),
    v(
        "zstd19.stream",
        Codec::Zstd(19),
        Some(1024),
        Engine::Streaming(8 << 20),
    ),
];

/// The variants for `testdata/msgpack` (1.3 MB of x86-64 code).
const LARGE: &[Variant] = &[
    v("zstd19", Codec::Zstd(19), Some(256 << 10), Engine::InMemory),
    v("zstd19.default", Codec::Zstd(19), None, Engine::InMemory),
    v("lz4", Codec::Lz4, Some(256 << 10), Engine::InMemory),
    v("zstd9", Codec::Zstd(9), Some(512 << 10), Engine::InMemory),
    v(
        "zstd19.inplace",
        Codec::Zstd(19),
        Some(256 << 10),
        Engine::InPlace,
    ),
    v(
        "zstd19.stream",
        Codec::Zstd(19),
        Some(256 << 10),
        Engine::Streaming(32 << 20),
    ),
];

/// A pinned case: pair name, OLD, NEW and its variants.
type Case = (String, Vec<u8>, Vec<u8>, &'static [Variant]);

/// Every pinned case.
fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    // Each golden pair once, from the newest version that has it.
    let mut seen = Vec::new();
    for version in (1..=oxdelta::FORMAT_VERSION).rev() {
        let d = crate::golden::version_dir(version);
        let mut names: Vec<String> = fs::read_dir(&d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter_map(|n| n.strip_suffix(".old").map(str::to_owned))
            .collect();
        names.sort();
        for name in names {
            // The big pair (format version 10) is pinned by its golden
            // patches: with codec none its patch would be 4.5 MB.
            if seen.contains(&name) || name == "bigtext" {
                continue;
            }
            let old = fs::read(d.join(format!("{name}.old"))).unwrap();
            let new = fs::read(d.join(format!("{name}.new"))).unwrap();
            seen.push(name.clone());
            out.push((name, old, new, SMALL));
        }
    }
    let m = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/msgpack");
    out.push((
        "msgpack".into(),
        fs::read(m.join("old")).unwrap(),
        fs::read(m.join("new")).unwrap(),
        LARGE,
    ));
    out
}

/// The patch of `old` → `new` made as `v` says, on a pool of `threads`.
fn make(old: &[u8], new: &[u8], v: &Variant, threads: usize) -> Vec<u8> {
    let opts = DiffOptions {
        codec: v.codec,
        chunk_len: v.chunk_len,
        memory: match v.engine {
            Engine::Streaming(m) => Some(m),
            _ => None,
        },
        ..DiffOptions::default()
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| match v.engine {
        Engine::InPlace => {
            oxdelta::diff_bytes_in_place(old, new, &opts, &InPlaceDiffOptions::default()).0
        }
        _ => oxdelta::diff_bytes(old, new, &opts),
    })
}

fn file(pair: &str, v: &Variant) -> PathBuf {
    dir().join(format!("{pair}.{}.oxd", v.name))
}

/// Every pinned patch comes out byte for byte, on one thread and on two.
#[test]
fn patches_are_byte_identical_to_the_pinned_ones() {
    let cases = cases();
    assert!(cases.len() >= 8, "the golden pairs and msgpack");
    let mut checked = 0;
    for (pair, old, new, variants) in &cases {
        for v in *variants {
            let f = file(pair, v);
            let want = fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            for threads in [1, 2] {
                let got = make(old, new, v, threads);
                if got != want {
                    let at = got.iter().zip(&want).position(|(a, b)| a != b);
                    panic!(
                        "{pair}.{} on {threads} thread(s): {} bytes, pinned {}; first \
                         difference at {at:?}",
                        v.name,
                        got.len(),
                        want.len()
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked >= 2 * (7 * SMALL.len() + LARGE.len()));
}

/// Writes every pinned patch (see the module docs): run only when a
/// change is meant to change patches.
#[test]
#[ignore]
fn regenerate_identity() {
    fs::create_dir_all(dir()).unwrap();
    for (pair, old, new, variants) in cases() {
        for v in variants {
            fs::write(file(&pair, v), make(&old, &new, v, 2)).unwrap();
        }
    }
}
