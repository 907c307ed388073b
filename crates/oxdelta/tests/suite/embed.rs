//! The facade's functions for embedders: apply to a caller's sink, patch
//! info, key files.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use oxdelta::{ApplyOptions, DiffOptions, Error, Sink, apply_to_sink, diff_bytes};

/// Records writes, checking they arrive in order and tile NEW.
#[derive(Default)]
struct Recorder {
    out: Vec<u8>,
    writes: usize,
    flushed: bool,
    fail_at_write: Option<usize>,
}

impl Sink for Recorder {
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        assert_eq!(offset, self.out.len() as u64, "writes tile NEW in order");
        assert!(!self.flushed);
        if self.fail_at_write == Some(self.writes) {
            return Err(std::io::Error::other("flash driver says no"));
        }
        self.writes += 1;
        self.out.extend_from_slice(data);
        Ok(())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.flushed = true;
        Ok(())
    }
}

fn pair() -> (Vec<u8>, Vec<u8>) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/msgpack");
    (
        fs::read(dir.join("old")).unwrap(),
        fs::read(dir.join("new")).unwrap(),
    )
}

fn small_chunks() -> DiffOptions {
    DiffOptions {
        chunk_len: Some(64 << 10),
        ..DiffOptions::default()
    }
}

#[test]
fn sink_gets_new_in_order_within_a_small_budget() {
    let (old, new) = pair();
    let patch = diff_bytes(&old, &new, &small_chunks());
    // A budget below one chunk's buffers: chunks go one by one.
    for budget in [1, 48 << 20] {
        let mut r = Recorder::default();
        let opts = ApplyOptions {
            memory_budget: budget,
            ..crate::overwriting()
        };
        let rep = apply_to_sink(&old, &patch, &mut r, &opts).unwrap();
        assert!(r.out == new);
        assert!(r.flushed);
        assert!(r.writes > 1);
        assert_eq!(rep.new_len, new.len() as u64);
        assert_eq!(rep.chunks, r.writes);
    }
    // Into a buffer of NEW's length.
    let mut buf = vec![0xAAu8; new.len()];
    apply_to_sink(&old, &patch, &mut buf[..], &crate::overwriting()).unwrap();
    assert!(buf == new);
    let mut short = vec![0u8; new.len() - 1];
    assert!(matches!(
        apply_to_sink(&old, &patch, &mut short[..], &crate::overwriting()),
        Err(Error::Io { .. })
    ));
}

#[test]
fn sink_gets_nothing_for_a_wrong_old_or_a_bad_signature() {
    let (old, new) = pair();
    let patch = diff_bytes(&old, &new, &small_chunks());
    let mut wrong = old.clone();
    let last = wrong.len() - 1;
    wrong[last] ^= 1; // same length: only the hash can tell
    let mut r = Recorder::default();
    let e = apply_to_sink(&wrong, &patch, &mut r, &crate::overwriting()).unwrap_err();
    assert!(
        matches!(e, Error::Apply(oxdelta::ApplyError::WrongOld { .. })),
        "{e}"
    );
    assert_eq!((r.writes, r.flushed), (0, false));

    let key = oxdelta::SecretKey([7; 32]);
    let opts = ApplyOptions {
        trusted_key: Some(key.public()),
        ..crate::overwriting()
    };
    let e = apply_to_sink(&old, &patch, &mut r, &opts).unwrap_err();
    assert!(matches!(e, Error::Format(_)), "{e}");
    assert_eq!(r.writes, 0);
    let signed = diff_bytes(
        &old,
        &new,
        &DiffOptions {
            key: Some(key),
            ..small_chunks()
        },
    );
    apply_to_sink(&old, &signed, &mut r, &opts).unwrap();
    assert!(r.out == new);
}

#[test]
fn sink_errors_and_cancel_stop_the_apply() {
    let (old, new) = pair();
    let patch = diff_bytes(&old, &new, &small_chunks());
    let mut r = Recorder {
        fail_at_write: Some(2),
        ..Recorder::default()
    };
    let e = apply_to_sink(&old, &patch, &mut r, &crate::overwriting()).unwrap_err();
    assert!(e.to_string().contains("flash driver says no"), "{e}");
    assert!(!r.flushed);
    let cancel = Arc::new(AtomicBool::new(true));
    let opts = ApplyOptions {
        cancel: Some(cancel.clone()),
        ..crate::overwriting()
    };
    let mut r = Recorder::default();
    let e = apply_to_sink(&old, &patch, &mut r, &opts).unwrap_err();
    assert!(matches!(e, Error::Apply(oxdelta::ApplyError::Cancelled)));
    assert_eq!(r.writes, 0);
    cancel.store(false, Ordering::Relaxed);
    apply_to_sink(&old, &patch, &mut r, &opts).unwrap();
}

#[test]
fn info_describes_the_head() {
    let (old, new) = pair();
    let key = oxdelta::SecretKey([9; 32]);
    let patch = diff_bytes(
        &old,
        &new,
        &DiffOptions {
            key: Some(key.clone()),
            ..small_chunks()
        },
    );
    let i = oxdelta::info_bytes(&patch).unwrap();
    assert_eq!(i.patch_bytes, patch.len() as u64);
    assert_eq!(
        (i.old_bytes, i.new_bytes),
        (old.len() as u64, new.len() as u64)
    );
    assert_eq!(i.new_blake3, *blake3::hash(&new).as_bytes());
    assert_eq!(i.old_blake3, *blake3::hash(&old).as_bytes());
    assert_eq!(i.chunks, new.len().div_ceil(64 << 10));
    assert_eq!(i.largest_chunk_bytes, 64 << 10);
    assert_eq!(i.key, Some(key.public()));
    // LZMA2 (the default) where it is 3% smaller than zstd.
    assert!(i.codecs.contains(&"lzma2"), "{:?}", i.codecs);
    assert!(i.codecs.iter().all(|&c| c == "lzma2" || c == "zstd"));
    assert!(!i.in_place);
    assert!(oxdelta::info_bytes(&patch[..patch.len() - 1]).is_err());
}

#[test]
fn key_files_round_trip_and_are_not_overwritten() {
    let dir = std::env::temp_dir().join(format!("oxdelta-keys-{}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let name = dir.join("release");
    let kp = oxdelta::keygen(&name).unwrap();
    assert_eq!(kp.secret_path, dir.join("release.key"));
    let sk = oxdelta::read_secret_key(&kp.secret_path).unwrap();
    assert_eq!(sk.public(), kp.public);
    assert_eq!(
        oxdelta::read_public_key(&kp.public_path).unwrap(),
        kp.public
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&kp.secret_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert!(matches!(oxdelta::keygen(&name), Err(Error::Key { .. })));
    // A public key where a secret one is expected.
    assert!(matches!(
        oxdelta::read_secret_key(&kp.public_path),
        Err(Error::Key { .. })
    ));
    fs::remove_dir_all(&dir).unwrap();
}
