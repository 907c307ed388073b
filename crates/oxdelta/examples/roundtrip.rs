//! Diff and apply a real pair, then check the result.
//!
//! `cargo run --release -p oxdelta --example roundtrip [OLD NEW]`
//! (default: the bundled pair under testdata/msgpack).

use std::path::PathBuf;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/msgpack");
    let args: Vec<PathBuf> = std::env::args_os().skip(1).map(PathBuf::from).collect();
    let (old, new) = match args.as_slice() {
        [o, n] => (o.clone(), n.clone()),
        [] => (root.join("old"), root.join("new")),
        _ => return Err("usage: roundtrip [OLD NEW]".into()),
    };
    let dir = std::env::temp_dir().join(format!("oxdelta-roundtrip-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let (patch, out) = (dir.join("patch.oxd"), dir.join("new.rebuilt"));

    let t = Instant::now();
    let d = oxdelta::diff_files(&old, &new, &patch, &oxdelta::DiffOptions::default())?;
    let diff_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let a = oxdelta::apply_file(&old, &patch, &out, &oxdelta::ApplyOptions::default())?;
    let apply_s = t.elapsed().as_secs_f64();
    let same = std::fs::read(&out)? == std::fs::read(&new)?;
    println!("OLD   {} ({} bytes)", old.display(), d.old_len);
    println!("NEW   {} ({} bytes)", new.display(), d.new_len);
    println!(
        "patch {} bytes = {:.2}% of NEW, {} chunks, diff {:.2} s",
        d.patch_len,
        100.0 * d.patch_len as f64 / d.new_len.max(1) as f64,
        d.chunks,
        diff_s
    );
    println!(
        "apply {} bytes in {:.3} s, BLAKE3 verified by the applier",
        a.new_len, apply_s
    );
    println!(
        "rebuilt NEW is byte-identical to NEW: {}",
        if same { "yes" } else { "NO" }
    );
    std::fs::remove_dir_all(&dir)?;
    if same {
        Ok(())
    } else {
        Err("round trip differs".into())
    }
}
