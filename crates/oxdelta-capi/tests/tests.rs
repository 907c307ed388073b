//! The committed header is what cbindgen makes of the crate now.
//! `OXDELTA_BLESS=1 cargo test -p oxdelta-capi` rewrites it.
//!
//! (The C API itself is tested by `tests/c/test.c`, which `.ci/run`
//! compiles against the header and the built library and runs.)

use std::path::Path;

#[test]
fn header_is_up_to_date() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut made = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen parses the crate")
        .write(&mut made);
    let path = dir.join("include/oxdelta.h");
    if std::env::var_os("OXDELTA_BLESS").is_some() {
        std::fs::write(&path, &made).unwrap();
    }
    let committed = std::fs::read(&path).unwrap_or_default();
    assert!(
        committed == made,
        "include/oxdelta.h is stale: run OXDELTA_BLESS=1 cargo test -p oxdelta-capi and commit it"
    );
    let text = String::from_utf8(made).unwrap();
    for f in [
        "int oxdelta_diff_file(",
        "int oxdelta_apply_file(",
        "const char *oxdelta_last_error(void)",
        "int oxdelta_apply_to_sink(",
        "int oxdelta_apply_in_place(",
        "enum oxdelta_status {",
    ] {
        assert!(text.contains(f), "the header declares {f}");
    }
}
