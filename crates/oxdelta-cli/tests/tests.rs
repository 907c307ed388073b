//! Tests that run the `oxdelta` binary: every subcommand, the JSON output
//! and the error paths (clear message, exit code, output untouched).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The binary, with no default trusted keys (a set but empty
/// `OXDELTA_TRUSTED_KEYS`), whatever the machine's configuration.
fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_oxdelta"));
    c.env("OXDELTA_TRUSTED_KEYS", "");
    c
}

fn testdata(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(p)
}

fn run(args: &[&Path]) -> Output {
    bin().args(args).output().expect("run oxdelta")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oxdelta-cli-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

fn p(s: &str) -> &Path {
    Path::new(s)
}

#[test]
fn diff_apply_verify_info() {
    let d = tmpdir("main");
    let (old, new) = (testdata("msgpack/old"), testdata("msgpack/new"));
    let patch = d.join("p.oxd");
    let out = d.join("out");
    let o = run(&[p("diff"), &old, &new, &patch]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("patch"), "{}", stderr(&o));
    // Not a terminal: exactly one summary line, no progress bar drawing.
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(!stderr(&o).contains('\x1b'), "{}", stderr(&o));
    let o = run(&[p("apply"), &old, &patch, &out]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("verified"));
    assert_eq!(stderr(&o).lines().count(), 1, "{}", stderr(&o));
    assert!(!stderr(&o).contains('\x1b'), "{}", stderr(&o));
    assert_eq!(fs::read(&out).unwrap(), fs::read(&new).unwrap());
    // --no-sync skips the flushes, not the checks or the atomic rename;
    // in-place applies always flush.
    let ons = d.join("ons");
    let o = run(&[p("apply"), p("--no-sync"), &old, &patch, &ons]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read(&ons).unwrap(), fs::read(&new).unwrap());
    let o = run(&[p("apply"), p("--no-sync"), p("-f"), &new, &patch, &ons]);
    assert!(stderr(&o).contains("OLD does not match"), "{}", stderr(&o));
    assert_eq!(fs::read(&ons).unwrap(), fs::read(&new).unwrap());
    let o = run(&[p("apply"), p("--no-sync"), p("--in-place"), &ons, &patch]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // --verbose times the phases (and --quiet silences that too).
    let o = run(&[p("-v"), p("diff"), &old, &new, &d.join("pv.oxd")]);
    let e = stderr(&o);
    let phases = e.lines().find(|l| l.starts_with("phases: ")).unwrap_or("");
    assert!(
        phases.contains("indexing ") && phases.contains("matching "),
        "{e}"
    );
    assert!(phases.ends_with(" s"), "{e}");
    let o = run(&[p("-v"), p("apply"), &old, &patch, &d.join("ov")]);
    assert!(
        stderr(&o).contains("phases: ") && stderr(&o).contains("applying "),
        "{}",
        stderr(&o)
    );
    let o = run(&[p("-q"), p("diff"), &old, &new, &d.join("pq.oxd")]);
    assert!(
        o.status.success() && stderr(&o).is_empty(),
        "{}",
        stderr(&o)
    );
    let o = run(&[p("verify"), &patch]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("OK"));
    // With OLD: NEW rebuilt (nothing written) and checked whole.
    let o = run(&[p("verify"), p("--old"), &old, &patch]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("applies to"), "{}", stderr(&o));
    let o = run(&[p("verify"), p("--old"), &new, &patch]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("OLD does not match"), "{}", stderr(&o));

    let o = run(&[p("info"), p("--json"), &patch]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    // The msgpack pair's diff bytes are sparse: a run filter pays, which
    // takes format version 2; its control stream pays to be split by field,
    // which takes version 4; its chunks' control and literal streams are
    // smaller in a shared section, which takes version 5; its literal block
    // is smaller with the context's margin, and LZMA2 (the default codec)
    // is 3% smaller than zstd, both of which take version 7; the patch is
    // of version 11, the compact head's.
    assert_eq!(v["format_version"], 11);
    assert_eq!(v["features_version"], 7);
    assert!(v["ctrl_split_chunks"].as_u64().unwrap() >= 1, "{v}");
    let chunks = v["chunks"].as_u64().unwrap();
    assert_eq!(v["shared_chunks"].as_u64(), Some(chunks), "{v}");
    let s = &v["shared_section"];
    assert!(
        s["ctrl_stored"].as_u64().unwrap() < s["ctrl_raw"].as_u64().unwrap(),
        "{v}"
    );
    assert_eq!(s["gap_max"], 4096);
    assert_eq!(s["margin"], 1024);
    assert_ne!(v["diff_filters"][0], "none");
    assert_eq!(v["old_bytes"], fs::metadata(&old).unwrap().len());
    assert_eq!(v["new_bytes"], fs::metadata(&new).unwrap().len());
    assert_eq!(v["patch_bytes"], fs::metadata(&patch).unwrap().len());
    assert_eq!(v["signed"], false);
    assert_eq!(v["engine"], "suffix-array");
    let codecs = v["codecs"].as_array().unwrap();
    assert!(
        !codecs.is_empty() && codecs.iter().all(|c| c == "zstd" || c == "lzma2"),
        "{v}"
    );
    assert_eq!(v["new_blake3"].as_str().unwrap().len(), 64);
    let o = run(&[p("info"), &patch]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("format version"));

    // -q silences the summary.
    let o = run(&[p("-q"), p("apply"), p("--force"), &old, &patch, &out]);
    assert!(o.status.success() && o.stderr.is_empty(), "{}", stderr(&o));
    // Streaming apply from standard input.
    let out2 = d.join("out2");
    let o = bin()
        .args([p("apply"), &old, p("-"), &out2])
        .stdin(fs::File::open(&patch).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read(&out2).unwrap(), fs::read(&new).unwrap());
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn keys_and_signatures() {
    let d = tmpdir("keys");
    let (old, new) = (testdata("msgpack/old"), testdata("msgpack/new"));
    let name = d.join("rel");
    let o = run(&[p("keygen"), &name]);
    assert!(o.status.success(), "{}", stderr(&o));
    let (key, public) = (d.join("rel.key"), d.join("rel.pub"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // Refuses to overwrite.
    let o = run(&[p("keygen"), &name]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("already exists"));

    let patch = d.join("s.oxd");
    let o = run(&[p("diff"), p("--sign"), &key, &old, &new, &patch]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[p("verify"), p("--pubkey"), &public, &patch]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = d.join("out");
    let o = run(&[p("apply"), p("--pubkey"), &public, &old, &patch, &out]);
    assert!(o.status.success(), "{}", stderr(&o));

    // An unsigned patch is refused when a key is required, before writing.
    let unsigned = d.join("u.oxd");
    assert!(run(&[p("diff"), &old, &new, &unsigned]).status.success());
    let out3 = d.join("out3");
    let o = run(&[p("apply"), p("--pubkey"), &public, &old, &unsigned, &out3]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unsigned"), "{}", stderr(&o));
    assert!(!out3.exists());
    // `sign` makes it acceptable.
    let o = run(&[p("sign"), p("--key"), &key, &unsigned]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[p("apply"), p("--pubkey"), &public, &old, &unsigned, &out3]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[p("info"), p("--json"), &unsigned]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["signed"], true);
    assert_eq!(v["key_id"].as_str().unwrap().len(), 16);
    // A tampered signed patch fails verification.
    let mut b = fs::read(&patch).unwrap();
    let n = b.len();
    b[n - 5] ^= 1;
    fs::write(&patch, &b).unwrap();
    let o = run(&[p("verify"), p("--pubkey"), &public, &patch]);
    assert_eq!(o.status.code(), Some(1));
    fs::remove_dir_all(&d).unwrap();
}

/// The summary lines say what a signature check proved: without a trusted
/// key only that the patch carries a valid signature by some key; with
/// `--pubkey`, or the default trusted-keys file, that the key is trusted.
#[test]
fn trust_messages_say_what_was_checked() {
    let d = tmpdir("trust");
    let (old, new) = (testdata("msgpack/old"), testdata("msgpack/new"));
    for n in ["a", "b", "c"] {
        assert!(run(&[p("keygen"), &d.join(n)]).status.success());
    }
    // A key's id, as `info` shows it for a patch signed by it.
    let id = |n: &str| {
        let pk = d.join(format!("probe-{n}.oxd"));
        let key = d.join(format!("{n}.key"));
        assert!(
            run(&[p("diff"), p("--sign"), &key, &old, &new, &pk])
                .status
                .success()
        );
        let v: serde_json::Value =
            serde_json::from_slice(&run(&[p("info"), p("--json"), &pk]).stdout).unwrap();
        v["key_id"].as_str().unwrap().to_string()
    };
    let (ida, idb) = (id("a"), id("b"));
    let patch = d.join("p.oxd");
    assert!(
        run(&[p("diff"), p("--sign"), &d.join("a.key"), &old, &new, &patch])
            .status
            .success()
    );

    // No trusted key: the signature is checked against the key the patch
    // carries, and the message says so.
    let want_unchecked =
        format!("signed by key {ida} (not checked against a trusted key; use --pubkey)");
    let o = run(&[p("apply"), &old, &patch, &d.join("o1")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(&want_unchecked), "{}", stderr(&o));
    assert!(!stderr(&o).contains("signature verified"), "{}", stderr(&o));
    let o = run(&[p("verify"), &patch]);
    assert!(stderr(&o).contains(&want_unchecked), "{}", stderr(&o));
    // --pubkey: verified against it.
    let want_verified = format!("signature verified (key {ida})");
    let o = run(&[
        p("apply"),
        p("--pubkey"),
        &d.join("a.pub"),
        &old,
        &patch,
        &d.join("o2"),
    ]);
    assert!(stderr(&o).contains(&want_verified), "{}", stderr(&o));
    let o = run(&[p("verify"), p("--pubkey"), &d.join("a.pub"), &patch]);
    assert!(stderr(&o).contains(&want_verified), "{}", stderr(&o));
    // An unsigned patch says so.
    let unsigned = d.join("u.oxd");
    assert!(run(&[p("diff"), &old, &new, &unsigned]).status.success());
    let o = run(&[p("apply"), &old, &unsigned, &d.join("o3")]);
    assert!(stderr(&o).contains("unsigned"), "{}", stderr(&o));

    // The default trusted-keys file (here through the environment): a
    // signature by one of its keys is required without a flag.
    let ring = d.join("trusted-keys");
    fs::write(
        &ring,
        format!(
            "# release keys\n{}\n{}",
            fs::read_to_string(d.join("b.pub")).unwrap(),
            fs::read_to_string(d.join("a.pub")).unwrap()
        ),
    )
    .unwrap();
    let with_ring = |args: &[&Path]| {
        bin()
            .env("OXDELTA_TRUSTED_KEYS", &ring)
            .args(args)
            .output()
            .unwrap()
    };
    let o = with_ring(&[p("apply"), &old, &patch, &d.join("o4")]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains(&want_verified), "{}", stderr(&o));
    let o = with_ring(&[p("verify"), &patch]);
    assert!(stderr(&o).contains(&want_verified), "{}", stderr(&o));
    // ... from standard input too.
    let o = bin()
        .env("OXDELTA_TRUSTED_KEYS", &ring)
        .args([p("apply"), &old, p("-"), &d.join("o5")])
        .stdin(fs::File::open(&patch).unwrap())
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read(d.join("o5")).unwrap(), fs::read(&new).unwrap());
    // Unsigned, or signed by a key not in the file: refused, nothing written.
    let o = with_ring(&[p("apply"), &old, &unsigned, &d.join("o6")]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("unsigned"), "{}", stderr(&o));
    let by_c = d.join("c.oxd");
    assert!(
        run(&[p("diff"), p("--sign"), &d.join("c.key"), &old, &new, &by_c])
            .status
            .success()
    );
    let o = with_ring(&[p("apply"), &old, &by_c, &d.join("o6")]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("not one of the trusted keys"),
        "{}",
        stderr(&o)
    );
    let o = bin()
        .env("OXDELTA_TRUSTED_KEYS", &ring)
        .args([p("apply"), &old, p("-"), &d.join("o6")])
        .stdin(fs::File::open(&by_c).unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(!d.join("o6").exists());
    // --pubkey wins over the default file.
    let o = with_ring(&[p("verify"), p("--pubkey"), &d.join("b.pub"), &patch]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains(&idb), "{}", stderr(&o));
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn errors_are_clear_and_leave_output_alone() {
    let d = tmpdir("errors");
    let (old, new) = (testdata("msgpack/old"), testdata("msgpack/new"));
    let patch = d.join("p.oxd");
    assert!(run(&[p("diff"), &old, &new, &patch]).status.success());
    let out = d.join("out");
    fs::write(&out, b"before").unwrap();

    let missing = d.join("missing");
    let o = run(&[p("apply"), p("-f"), &missing, &patch, &out]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("opening OLD") && e.contains("missing"), "{e}");
    assert_eq!(e.lines().count(), 1, "{e}");
    // The cause is said once, not once per link of the error chain.
    assert_eq!(e.matches("(os error").count(), 1, "{e}");
    let o = run(&[p("apply"), p("-f"), &old, &missing, &out]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(e.contains("opening patch"), "{e}");
    assert_eq!(e.matches("(os error").count(), 1, "{e}");

    let o = run(&[p("apply"), p("-f"), &new, &patch, &out]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("OLD does not match"), "{}", stderr(&o));

    let bytes = fs::read(&patch).unwrap();
    let short = d.join("short");
    fs::write(&short, &bytes[..bytes.len() / 2]).unwrap();
    let o = run(&[p("apply"), p("-f"), &old, &short, &out]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("truncated"), "{}", stderr(&o));

    let o = run(&[p("apply"), p("-f"), &old, &old, &out]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("not an oxdelta patch"),
        "{}",
        stderr(&o)
    );

    let o = run(&[p("diff"), &missing, &new, &d.join("x")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(!d.join("x").exists());

    assert_eq!(fs::read(&out).unwrap(), b"before");
    let left: Vec<_> = fs::read_dir(&d)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(left.is_empty());

    // Usage errors exit 2.
    let o = run(&[p("apply"), &old]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&[p("diff"), p("--codec"), p("brotli"), &old, &new, &patch]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown codec"));
    // --help and --version exit 0.
    assert!(run(&[p("--version")]).status.success());
    assert!(run(&[p("diff"), p("--help")]).status.success());
    fs::remove_dir_all(&d).unwrap();
}

/// Outputs: an existing one is replaced only with `-f`; the patch is never
/// OLD or NEW (nor OUT), also through a hard or a symbolic link, even with
/// `-f`; NEW over OLD with `-f` works.
#[cfg(unix)]
#[test]
fn outputs_are_refused_unless_forced() {
    let d = tmpdir("outputs");
    let (old0, new) = (testdata("msgpack/old"), testdata("msgpack/new"));
    let old = d.join("old");
    fs::copy(&old0, &old).unwrap();
    let old_bytes = fs::read(&old).unwrap();
    let patch = d.join("p.oxd");
    assert!(run(&[p("diff"), &old, &new, &patch]).status.success());
    let patch_bytes = fs::read(&patch).unwrap();
    // The typo of the issue: PATCH where NEW was meant.
    let o = run(&[p("diff"), &old, &new, &old]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("is OLD"), "{}", stderr(&o));
    let o = run(&[p("diff"), p("-f"), &old, &new, &old]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let o = run(&[p("diff"), p("-f"), &old, &new, &new]);
    assert!(stderr(&o).contains("is NEW"), "{}", stderr(&o));
    // Through links.
    let hard = d.join("hard");
    fs::hard_link(&old, &hard).unwrap();
    let sym = d.join("sym");
    std::os::unix::fs::symlink(&old, &sym).unwrap();
    for link in [&hard, &sym] {
        let o = run(&[p("diff"), p("-f"), &old, &new, link]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("is OLD"), "{}", stderr(&o));
        let o = run(&[p("diff"), p("-f"), link, &new, &old]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    }
    assert_eq!(fs::read(&old).unwrap(), old_bytes);
    // An existing patch: refused, then replaced with -f.
    let o = run(&[p("diff"), &old, &new, &patch]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("use -f"), "{}", stderr(&o));
    assert!(
        run(&[p("diff"), p("--force"), &old, &new, &patch])
            .status
            .success()
    );
    assert_eq!(fs::read(&patch).unwrap(), patch_bytes);

    // apply: OUT exists.
    let out = d.join("out");
    fs::write(&out, b"before").unwrap();
    let o = run(&[p("apply"), &old, &patch, &out]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("exists") && stderr(&o).contains("-f"),
        "{}",
        stderr(&o)
    );
    assert_eq!(fs::read(&out).unwrap(), b"before");
    // A dangling symbolic link is an existing OUT too.
    let dangling = d.join("dangling");
    std::os::unix::fs::symlink(d.join("nowhere"), &dangling).unwrap();
    assert_eq!(
        run(&[p("apply"), &old, &patch, &dangling]).status.code(),
        Some(1)
    );
    // OUT is the patch, directly, through links, or through standard input:
    // refused even with -f.
    let phard = d.join("phard");
    fs::hard_link(&patch, &phard).unwrap();
    let psym = d.join("psym");
    std::os::unix::fs::symlink(&patch, &psym).unwrap();
    for o_ in [&patch, &phard, &psym] {
        let o = run(&[p("apply"), p("-f"), &old, &patch, o_]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(stderr(&o).contains("is the patch"), "{}", stderr(&o));
    }
    let o = bin()
        .args([p("apply"), p("-f"), &old, p("-"), &patch])
        .stdin(fs::File::open(&patch).unwrap())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(fs::read(&patch).unwrap(), patch_bytes);
    // NEW over OLD: needs -f, then atomic.
    let o = run(&[p("apply"), &old, &patch, &old]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(fs::read(&old).unwrap(), old_bytes);
    let o = run(&[p("apply"), p("-f"), &old, &patch, &old]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(fs::read(&old).unwrap(), fs::read(&new).unwrap());
    fs::remove_dir_all(&d).unwrap();
}

/// Usage errors exit 2, found by the argument parser before any work.
#[test]
fn usage_errors_exit_2() {
    let d = tmpdir("usage");
    let (old, new) = (testdata("msgpack/old"), testdata("msgpack/new"));
    let patch = d.join("p.oxd");
    for args in [
        &[p("--threads"), p("0"), p("diff"), &old, &new, &patch][..],
        &[p("--threads"), p("many"), p("diff"), &old, &new, &patch],
        &[p("diff"), p("--memory"), p("1K"), &old, &new, &patch],
        &[p("diff"), p("--memory"), p("12Q"), &old, &new, &patch],
        &[p("diff"), p("--chunk-size"), p("0"), &old, &new, &patch],
        &[p("diff"), p("--chunk-size"), p("1G"), &old, &new, &patch],
        &[p("-q"), p("-v"), p("diff"), &old, &new, &patch],
        &[p("diff"), p("-q"), p("--verbose"), &old, &new, &patch],
        &[
            p("apply"),
            p("--in-place"),
            p("--batch-size"),
            p("0"),
            &old,
            &patch,
        ],
        &[p("apply"), p("--in-place"), p("-f"), &old, &patch],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("error"), "{args:?}: {}", stderr(&o));
    }
    assert!(!patch.exists());
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn thread_count_does_not_change_the_patch() {
    let d = tmpdir("threads");
    let (old, new) = (testdata("msgpack/old"), testdata("msgpack/new"));
    let (a, b) = (d.join("a"), d.join("b"));
    assert!(
        run(&[
            p("--threads"),
            p("1"),
            p("diff"),
            p("--chunk-size"),
            p("128K"),
            &old,
            &new,
            &a
        ])
        .status
        .success()
    );
    assert!(
        run(&[
            p("--threads"),
            p("4"),
            p("diff"),
            p("--chunk-size"),
            p("128K"),
            &old,
            &new,
            &b
        ])
        .status
        .success()
    );
    assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
    let (oa, ob) = (d.join("oa"), d.join("ob"));
    assert!(
        run(&[p("--threads"), p("1"), p("apply"), &old, &a, &oa])
            .status
            .success()
    );
    assert!(
        run(&[p("--threads"), p("3"), p("apply"), &old, &a, &ob])
            .status
            .success()
    );
    assert_eq!(fs::read(&oa).unwrap(), fs::read(&ob).unwrap());
    fs::remove_dir_all(&d).unwrap();
}

#[test]
fn completions_and_man_page() {
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&[p("completions"), p(shell)]);
        assert!(o.status.success(), "{}", stderr(&o));
        let s = String::from_utf8_lossy(&o.stdout);
        assert!(s.contains("oxdelta") && s.contains("keygen"), "{shell}");
    }
    let o = run(&[p("man")]);
    assert!(o.status.success());
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains(".TH") && s.contains("apply"));
}

#[test]
fn in_place_diff_apply_resume_message_and_refusal() {
    let d = tmpdir("inplace");
    let (old, new) = (testdata("msgpack/old"), testdata("msgpack/new"));
    let patch = d.join("ip.oxd");
    let o = run(&[
        p("diff"),
        p("--in-place"),
        p("--chunk-size"),
        p("8K"),
        &old,
        &new,
        &patch,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("in-place:"), "{}", stderr(&o));
    let o = run(&[p("info"), p("--json"), &patch]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["in_place"], true);

    let target = d.join("target");
    fs::copy(&old, &target).unwrap();
    let o = run(&[p("apply"), p("--in-place"), &target, &patch]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("patched"), "{}", stderr(&o));
    assert_eq!(fs::read(&target).unwrap(), fs::read(&new).unwrap());
    let o = run(&[p("apply"), p("--in-place"), &target, &patch]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("already up to date"), "{}", stderr(&o));

    // A target that is neither OLD nor NEW: exit 1, clear message, untouched.
    fs::write(&target, b"something else entirely").unwrap();
    let o = run(&[p("apply"), p("--in-place"), &target, &patch]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("neither OLD"), "{}", stderr(&o));
    assert_eq!(fs::read(&target).unwrap(), b"something else entirely");

    // A plain patch is refused for in-place apply; OUT and --in-place conflict.
    let plain = d.join("plain.oxd");
    assert!(run(&[p("diff"), &old, &new, &plain]).status.success());
    fs::copy(&old, &target).unwrap();
    let o = run(&[p("apply"), p("--in-place"), &target, &plain]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("diff --in-place"), "{}", stderr(&o));
    let o = run(&[p("apply"), p("--in-place"), &target, &patch, &d.join("x")]);
    assert_eq!(o.status.code(), Some(2));
}

/// `apply --in-place` killed with SIGKILL at random moments, over and over
/// (so resumes are killed too), always ends with the exact NEW once a run
/// is allowed to finish.
#[cfg(unix)]
#[test]
fn in_place_apply_survives_sigkill() {
    use std::time::{Duration, Instant};
    let d = tmpdir("sigkill");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut x = seed;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    // OLD: 48 blocks of 64 KiB; NEW: blocks shuffled (cycles), edited, an
    // insertion, and longer.
    let blocks: Vec<Vec<u8>> = (0..48)
        .map(|b| {
            (0..65536u32)
                .map(|i| ((i * 31 + b * 7) ^ (i >> 5)) as u8)
                .collect()
        })
        .collect();
    let old: Vec<u8> = blocks.concat();
    let mut new: Vec<u8> = (0..48)
        .map(|i| blocks[(i * 17 + 5) % 48].clone())
        .collect::<Vec<_>>()
        .concat();
    for k in 0..400 {
        let i = (k * 7919 + 13) % new.len();
        new[i] = new[i].wrapping_add(1);
    }
    new.splice(100_000..100_000, (0..20_000u32).map(|i| (i * 13) as u8));
    let (oldp, newp, patch) = (d.join("old"), d.join("new"), d.join("p.oxd"));
    fs::write(&oldp, &old).unwrap();
    fs::write(&newp, &new).unwrap();
    let o = run(&[
        p("diff"),
        p("--in-place"),
        p("--chunk-size"),
        p("64K"),
        &oldp,
        &newp,
        &patch,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));

    let target = d.join("target");
    let journal = d.join("target.oxdelta-journal");
    let apply = || {
        bin()
            .args([
                p("apply"),
                p("--in-place"),
                p("--batch-size"),
                p("128K"),
                &target,
                &patch,
            ])
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    // How long an uninterrupted apply takes here (median of three).
    let mut runs: Vec<u64> = (0..3)
        .map(|_| {
            fs::write(&target, &old).unwrap();
            let t = Instant::now();
            assert!(apply().wait().unwrap().success());
            assert_eq!(fs::read(&target).unwrap(), new);
            t.elapsed().as_micros().max(1000) as u64
        })
        .collect();
    runs.sort_unstable();
    // The window kills are drawn from; it shrinks whenever a run finishes
    // before its kill, so a machine faster than the first runs showed
    // still gets its kills in mid-apply.
    let mut window = (runs[1] * 3 / 4).max(500);

    fs::write(&target, &old).unwrap();
    let (mut killed, mut finished) = (0, 0);
    let mut round = 0;
    while killed < 20 && round < 200 {
        round += 1;
        let mut child = apply();
        std::thread::sleep(Duration::from_micros(rnd() % window));
        let was_running = child.try_wait().unwrap().is_none();
        child.kill().unwrap();
        let status = child.wait().unwrap();
        if was_running && !status.success() {
            killed += 1;
        } else {
            assert!(status.success(), "round {round} (seed {seed})");
            assert_eq!(
                fs::read(&target).unwrap(),
                new,
                "round {round} (seed {seed})"
            );
            assert!(!journal.exists());
            finished += 1;
            window = (window * 4 / 5).max(200);
            fs::write(&target, &old).unwrap();
        }
    }
    let out = apply().wait_with_output().unwrap();
    assert!(out.status.success(), "seed {seed}: {}", stderr(&out));
    assert_eq!(fs::read(&target).unwrap(), new, "seed {seed}");
    assert!(!journal.exists());
    eprintln!("{killed} runs killed mid-apply, {finished} finished");
    assert!(
        killed >= 10,
        "only {killed} kills landed mid-apply in {round} runs (seed {seed})"
    );
}

/// A file apply killed while it writes (here: a streamed apply waiting for
/// the rest of its patch) leaves OUT as it was and nothing else behind: the
/// temporary output is unnamed (`O_TMPFILE`) until the commit.
#[cfg(target_os = "linux")]
#[test]
fn killed_apply_leaves_no_temporary() {
    use std::io::Write;
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let d = tmpdir("killed");
    let (old, new) = (testdata("msgpack/old"), testdata("msgpack/new"));
    let patch = d.join("p.oxd");
    let o = run(&[p("diff"), p("--chunk-size"), p("16K"), &old, &new, &patch]);
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = fs::read(&patch).unwrap();
    let out = d.join("out");
    fs::write(&out, b"before").unwrap();
    let mut child = bin()
        .args([p("apply"), p("-f"), &old, p("-"), &out])
        .stdin(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // All but the last chunk's last bytes: the apply waits for them with
    // its temporary output open.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&bytes[..bytes.len() - 64]).unwrap();
    stdin.flush().unwrap();
    let fds = PathBuf::from(format!("/proc/{}/fd", child.id()));
    let dir = d.canonicalize().unwrap();
    let start = Instant::now();
    let open_in_dir = loop {
        let found = fs::read_dir(&fds)
            .into_iter()
            .flatten()
            .flatten()
            .find_map(|e| {
                let t = fs::read_link(e.path()).ok()?;
                t.starts_with(&dir).then_some(t)
            });
        if let Some(t) = found {
            break t;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the apply never opened its temporary output"
        );
        std::thread::sleep(Duration::from_millis(10));
    };
    // An unnamed file shows as "DIR/#INODE (deleted)".
    assert!(
        open_in_dir.to_string_lossy().ends_with("(deleted)"),
        "the temporary output has a name while written: {}",
        open_in_dir.display()
    );
    child.kill().unwrap();
    child.wait().unwrap();
    drop(stdin);
    let mut names: Vec<String> = fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["out", "p.oxd"]);
    assert_eq!(fs::read(&out).unwrap(), b"before");
    fs::remove_dir_all(&d).unwrap();
}

/// `info`, `verify` and `sign` read the head first: on a 1 GiB file that
/// is not a patch they answer at once within a small memory bound (here
/// 256 MiB of address space; reading the file whole needs 1 GiB), and
/// `sign` writes the signature block (in place when the patch has one).
#[cfg(unix)]
#[test]
fn head_first_commands_are_bounded() {
    use std::os::unix::fs::MetadataExt;
    let d = tmpdir("bounded");
    let big = d.join("big");
    let f = fs::File::create(&big).unwrap();
    f.set_len(1 << 30).unwrap(); // sparse: costs no disk
    drop(f);
    let (old, new) = (testdata("msgpack/old"), testdata("msgpack/new"));
    let key_name = d.join("k");
    assert!(run(&[p("keygen"), &key_name]).status.success());
    let key = d.join("k.key");
    let bounded = |args: &[&Path]| {
        let mut cmd = format!(
            "ulimit -v 262144; OXDELTA_TRUSTED_KEYS= exec '{}'",
            env!("CARGO_BIN_EXE_oxdelta")
        );
        for a in args {
            cmd.push_str(&format!(" '{}'", a.display()));
        }
        Command::new("sh").arg("-c").arg(cmd).output().unwrap()
    };
    for args in [
        &[p("info"), &big][..],
        &[p("info"), p("--json"), &big],
        &[p("verify"), &big],
        &[p("sign"), p("--key"), &key, &big],
    ] {
        let t = std::time::Instant::now();
        let o = bounded(args);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("not an oxdelta patch"),
            "{args:?}: {}",
            stderr(&o)
        );
        assert!(t.elapsed().as_secs() < 5, "{args:?} took {:?}", t.elapsed());
    }
    assert_eq!(fs::metadata(&big).unwrap().len(), 1 << 30);

    // A real patch. Unsigned, it has no signature block (format version
    // 11): sign rewrites it with the head's signed flag (bytes 10-11) set
    // and the block after the head, the rest as it was.
    let patch = d.join("p.oxd");
    assert!(run(&[p("diff"), &old, &new, &patch]).status.success());
    let unsigned = fs::read(&patch).unwrap();
    let o = bounded(&[p("sign"), p("--key"), &key, &patch]);
    assert!(o.status.success(), "{}", stderr(&o));
    let before = fs::read(&patch).unwrap();
    let head_len = u32::from_le_bytes(unsigned[12..16].try_into().unwrap()) as usize;
    assert_eq!(before.len(), unsigned.len() + 128);
    assert_eq!(before[..10], unsigned[..10]);
    assert_ne!(before[10..12], unsigned[10..12]);
    assert_eq!(before[12..head_len], unsigned[12..head_len]);
    assert_eq!(before[head_len + 128..], unsigned[head_len..]);
    // Signed, sign (by another key) rewrites the block in place (same
    // inode, same length, only the block's bytes changed).
    assert!(run(&[p("keygen"), &d.join("k2")]).status.success());
    let (key, key_pub) = (d.join("k2.key"), d.join("k2.pub"));
    let ino = fs::metadata(&patch).unwrap().ino();
    let o = bounded(&[p("sign"), p("--key"), &key, &patch]);
    assert!(o.status.success(), "{}", stderr(&o));
    let after = fs::read(&patch).unwrap();
    assert_eq!(fs::metadata(&patch).unwrap().ino(), ino);
    assert_eq!(after.len(), before.len());
    let changed: Vec<usize> = (0..after.len())
        .filter(|&i| after[i] != before[i])
        .collect();
    let (first, last) = (changed[0], *changed.last().unwrap());
    assert!(
        first >= head_len && last - first < 128,
        "bytes {first}..={last} changed"
    );
    let o = bounded(&[p("verify"), p("--pubkey"), &key_pub, &patch]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A torn signature block (a crash mid-write) is refused, and signing
    // again repairs it.
    let mut torn = after.clone();
    for b in &mut torn[first..first + 40] {
        *b ^= 0x55;
    }
    fs::write(&patch, &torn).unwrap();
    assert_eq!(run(&[p("verify"), &patch]).status.code(), Some(1));
    assert!(run(&[p("sign"), p("--key"), &key, &patch]).status.success());
    assert_eq!(fs::read(&patch).unwrap(), after);
    // A truncated patch is refused by sign, unchanged.
    fs::write(&patch, &after[..after.len() - 1]).unwrap();
    let o = run(&[p("sign"), p("--key"), &key, &patch]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(fs::read(&patch).unwrap(), &after[..after.len() - 1]);
    fs::remove_dir_all(&d).unwrap();
}

/// A full disk is a clean error for `diff` and `apply`: exit 1, a message
/// saying so, no output and no temporary left. Runs the binary in a
/// mount namespace over a small tmpfs (`unshare -rm`); skipped, saying so,
/// where the system allows no such namespace.
#[cfg(target_os = "linux")]
#[test]
fn disk_full_is_a_clean_error() {
    let d = tmpdir("full");
    let (old, new) = (testdata("msgpack/old"), testdata("msgpack/new"));
    let patch = d.join("p.oxd");
    assert!(run(&[p("diff"), &old, &new, &patch]).status.success());
    let mnt = d.join("mnt");
    fs::create_dir(&mnt).unwrap();
    // In a tmpfs of `size`: run oxdelta with `args`, then list the mount.
    let in_small_fs = |size: &str, args: &[&Path]| {
        let mut cmd = format!(
            "mount -t tmpfs -o size={size} tmpfs '{}' || exit 99; OXDELTA_TRUSTED_KEYS= '{}'",
            mnt.display(),
            env!("CARGO_BIN_EXE_oxdelta")
        );
        for a in args {
            cmd.push_str(&format!(" '{}'", a.display()));
        }
        cmd.push_str(&format!("; rc=$?; ls -A '{}' >&2; exit $rc", mnt.display()));
        Command::new("unshare")
            .args(["-rm", "sh", "-c", &cmd])
            .output()
    };
    let o = match in_small_fs("64k", &[p("--version")]) {
        Ok(o) if o.status.success() => o,
        other => {
            eprintln!("skipped: no mount namespace here ({other:?})");
            return;
        }
    };
    drop(o);
    let out = mnt.join("out");
    let o = in_small_fs("256k", &[p("apply"), &old, &patch, &out]).unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("No space left on device"), "{e}");
    assert_eq!(e.lines().count(), 1, "OUT or a temporary was left: {e}");
    let o = in_small_fs("8k", &[p("diff"), &old, &new, &mnt.join("q.oxd")]).unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("No space left on device"), "{e}");
    assert_eq!(
        e.lines().count(),
        1,
        "the patch or a temporary was left: {e}"
    );
    fs::remove_dir_all(&d).unwrap();
}
