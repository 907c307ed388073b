//! In-place apply: round trips on generated cases (cyclic conflicts among
//! them), interruption at every write with resume (and interruptions
//! during the resume), refusal of wrong targets and foreign journals.

use std::fs;
use std::path::{Path, PathBuf};

use oxdelta_apply::inplace::{
    InPlaceOptions, InPlaceOutcome, apply_in_place, default_journal_path,
};
use oxdelta_apply::{ApplyError, ApplyOptions, apply_bytes};
use oxdelta_diff::DiffOptions;
use oxdelta_diff::inplace::{InPlaceOptions as DiffInPlace, InPlaceStats, diff};
use oxdelta_format::{Codec, assemble};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
    /// Compressible but varied data: words from a small vocabulary.
    fn text(&mut self, n: usize) -> Vec<u8> {
        let words: [&[u8]; 8] = [
            b"alpha ", b"beta ", b"gamma\n", b"delta ", b"0x7f3a ", b"call ", b"ret\n", b"mov ",
        ];
        let mut v = Vec::with_capacity(n + 8);
        while v.len() < n {
            v.extend_from_slice(words[(self.next() % 8) as usize]);
            if self.next() % 5 == 0 {
                v.extend_from_slice(&self.bytes(3));
            }
        }
        v.truncate(n);
        v
    }
    fn edit(&mut self, v: &mut [u8], count: usize) {
        for _ in 0..count {
            let i = (self.next() % v.len() as u64) as usize;
            v[i] = self.next() as u8;
        }
    }
}

fn testdata(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata")
        .join(p)
}

/// Generated pairs: (name, OLD, NEW).
fn cases() -> Vec<(&'static str, Vec<u8>, Vec<u8>)> {
    let mut r = Rng(0x5eed_1234_abcd_ef01);
    let mut out = Vec::new();
    // Two blocks swapped: a 2-cycle in the conflict graph.
    let (a, b) = (r.text(96 << 10), r.text(96 << 10));
    let old = [a.clone(), b.clone()].concat();
    let mut new = [b.clone(), a.clone()].concat();
    r.edit(&mut new, 40);
    out.push(("swap", old, new));
    // Three blocks rotated: A B C -> C A B.
    let (a, b, c) = (r.text(64 << 10), r.text(64 << 10), r.text(64 << 10));
    out.push((
        "rotate3",
        [a.clone(), b.clone(), c.clone()].concat(),
        [c, a, b].concat(),
    ));
    // Data rotated by an odd amount.
    let old = r.text(200 << 10);
    let k = 37 << 10 | 123;
    out.push(("rotate", old.clone(), [&old[k..], &old[..k]].concat()));
    // An insertion near the start: every step reads what the previous one writes.
    let old = r.text(160 << 10);
    let mut new = old.clone();
    new.splice(10_000..10_000, r.bytes(5000));
    r.edit(&mut new, 20);
    out.push(("insert-grow", old, new));
    // A deletion near the start, and the file shrinks.
    let old = r.text(160 << 10);
    let mut new = old[30_000..].to_vec();
    r.edit(&mut new, 20);
    out.push(("delete-shrink", old, new));
    // Scattered edits in place: every step reads what it writes.
    let old = r.text(128 << 10);
    let mut new = old.clone();
    r.edit(&mut new, 300);
    out.push(("edits", old, new));
    // Blocks shuffled and edited, plus growth at the end.
    let blocks: Vec<Vec<u8>> = (0..8).map(|_| r.text(20 << 10)).collect();
    let old = blocks.concat();
    let order = [5, 2, 7, 0, 3, 1, 6, 4];
    let mut new: Vec<u8> = order.iter().flat_map(|&i| blocks[i].clone()).collect();
    r.edit(&mut new, 50);
    new.extend(r.text(30 << 10));
    out.push(("shuffle-grow", old, new));
    // Unrelated data (all literals) and empty NEW.
    out.push(("unrelated", r.text(50 << 10), r.bytes(40 << 10)));
    out.push(("to-empty", r.text(10 << 10), Vec::new()));
    out.push(("from-empty", Vec::new(), r.text(20 << 10)));
    // A real pair.
    out.push((
        "msgpack",
        fs::read(testdata("msgpack/old")).unwrap(),
        fs::read(testdata("msgpack/new")).unwrap(),
    ));
    out
}

fn make_patch(old: &[u8], new: &[u8], step: u32, stash_limit: u64) -> (Vec<u8>, InPlaceStats) {
    let opts = DiffOptions {
        codec: Codec::Zstd(3),
        chunk_len: Some(step),
        ..DiffOptions::default()
    };
    let (out, stats) = diff(old, new, &opts, &DiffInPlace { stash_limit });
    (assemble(&out.meta, out.chunks, None), stats)
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("oxdelta-inplace-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).unwrap();
    d
}

/// Options for tests: crashes are simulated inside the process, so fsync
/// adds nothing but time.
fn opts(batch: u64, fail: Option<u64>) -> InPlaceOptions {
    InPlaceOptions {
        batch_budget: batch,
        fail_after_writes: fail,
        durable: false,
        ..InPlaceOptions::default()
    }
}

fn is_injected(e: &ApplyError) -> bool {
    e.to_string().contains("injected fault")
}

#[test]
fn round_trips_and_cycles() {
    let d = tmpdir("rt");
    for (name, old, new) in cases() {
        for (stash_limit, step) in [(16 << 20, 16 << 10), (0, 16 << 10), (1 << 12, 64 << 10)] {
            let (patch, stats) = make_patch(&old, &new, step, stash_limit);
            if name == "swap" || name.starts_with("rotate") || name == "shuffle-grow" {
                assert!(stats.cyclic_components > 0, "{name}: {stats:?}");
            }
            // An in-place patch is an ordinary patch too.
            assert_eq!(
                apply_bytes(&old, &patch, &ApplyOptions::default()).unwrap(),
                new
            );
            let t = d.join(name);
            fs::write(&t, &old).unwrap();
            let pf = &patch;
            let r = apply_in_place(&t, pf, &opts(40 << 10, None)).unwrap();
            assert_eq!(r.outcome, InPlaceOutcome::Patched, "{name}");
            // The differ's promise, checked by the applier's own plan.
            assert!(r.stash_bytes <= stash_limit, "{name}: {r:?} {stats:?}");
            assert!(
                r.stash_bytes <= stats.stash_bytes,
                "{name}: {r:?} {stats:?}"
            );
            assert_eq!(fs::read(&t).unwrap(), new, "{name} limit {stash_limit}");
            assert!(!default_journal_path(&t).exists());
            let again = apply_in_place(&t, pf, &opts(40 << 10, None)).unwrap();
            assert_eq!(again.outcome, InPlaceOutcome::AlreadyUpToDate, "{name}");
            assert_eq!(again.bytes_written, 0);
        }
    }
}

#[test]
fn the_stash_limit_turns_conflicts_into_literals() {
    let (_, old, new) = cases().swap_remove(0);
    let (big, s1) = make_patch(&old, &new, 16 << 10, 16 << 20);
    let (small, s0) = make_patch(&old, &new, 16 << 10, 0);
    assert!(s1.stash_bytes > 0 && s1.converted_bytes == 0, "{s1:?}");
    assert_eq!(s0.stash_bytes, 0, "{s0:?}");
    assert!(s0.converted_bytes > 0);
    assert!(small.len() > big.len());
}

/// Options for an interrupted run: fail after `k` writes, and with
/// `power_loss` also lose a seeded random part of the unsynced writes.
fn faulty(k: u64, power_loss: bool) -> InPlaceOptions {
    InPlaceOptions {
        crash_seed: power_loss.then_some(k.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ 0x55),
        ..opts(48 << 10, Some(k))
    }
}

/// Stops the apply after every possible number of writes, then resumes
/// (sometimes interrupting the resume too) and checks the result. Returns
/// the interruption points of first runs and of resumes.
fn sweep(power_loss: bool) -> (usize, usize) {
    let d = tmpdir(if power_loss { "power" } else { "fault" });
    let mut points = 0usize;
    let mut resume_points = 0usize;
    for (ci, (name, old, new)) in cases().into_iter().enumerate() {
        let stash_limit = if ci % 2 == 0 { 16 << 20 } else { 1 << 13 };
        let (patch, _) = make_patch(&old, &new, 16 << 10, stash_limit);
        let t = d.join(name);
        let j = default_journal_path(&t);
        for k in 0.. {
            fs::write(&t, &old).unwrap();
            let _ = fs::remove_file(&j);
            match apply_in_place(&t, &patch, &faulty(k, power_loss)) {
                Ok(r) => {
                    assert_eq!(r.outcome, InPlaceOutcome::Patched);
                    assert_eq!(fs::read(&t).unwrap(), new, "{name} k={k}");
                    break;
                }
                Err(e) => assert!(is_injected(&e), "{name} k={k}: {e}"),
            }
            points += 1;
            // Interrupt the resume as well, a few times.
            let mut k2 = k % 4;
            for _ in 0..(k % 3) {
                match apply_in_place(&t, &patch, &faulty(k2, power_loss)) {
                    Ok(_) => break,
                    Err(e) => assert!(is_injected(&e), "{name} k={k} k2={k2}: {e}"),
                }
                resume_points += 1;
                k2 += 3;
            }
            let r = apply_in_place(&t, &patch, &opts(48 << 10, None))
                .unwrap_or_else(|e| panic!("{name} resume after k={k}: {e}"));
            assert!(
                matches!(
                    r.outcome,
                    InPlaceOutcome::Patched | InPlaceOutcome::AlreadyUpToDate
                ),
                "{name}"
            );
            assert_eq!(fs::read(&t).unwrap(), new, "{name} resumed after k={k}");
            assert!(!j.exists(), "{name}: journal left behind");
        }
    }
    (points, resume_points)
}

#[test]
fn interrupted_at_every_write_then_resumed() {
    let (points, resume_points) = sweep(false);
    eprintln!("interruption points: {points} first-run, {resume_points} during resume");
    assert!(points >= 300, "only {points} interruption points");
}

/// As above, but each interruption is a power loss that also undoes a
/// random part of the writes not yet synced: every ordering point of the
/// journal protocol must have its sync.
#[test]
fn power_loss_at_every_write_then_resumed() {
    let (points, resume_points) = sweep(true);
    eprintln!("power-loss points: {points} first-run, {resume_points} during resume");
    assert!(points >= 300, "only {points} interruption points");
}

#[test]
fn wrong_targets_are_refused_untouched() {
    let d = tmpdir("wrong");
    let (_, old, new) = cases().swap_remove(3);
    let (patch, _) = make_patch(&old, &new, 16 << 10, 16 << 20);
    let t = d.join("t");
    let j = default_journal_path(&t);
    // Unrelated bytes, OLD with one byte changed, OLD one byte short.
    let mut one = old.clone();
    one[old.len() / 2] ^= 1;
    for bad in [Rng(9).bytes(old.len()), one, old[1..].to_vec()] {
        fs::write(&t, &bad).unwrap();
        let e = apply_in_place(&t, &patch, &opts(1 << 20, None)).unwrap_err();
        assert!(matches!(e, ApplyError::WrongTarget { .. }), "{e}");
        assert!(e.to_string().contains("neither OLD"), "{e}");
        assert_eq!(fs::read(&t).unwrap(), bad);
        assert!(!j.exists());
    }
    // A partly patched target whose bytes were then replaced.
    fs::write(&t, &old).unwrap();
    let _ = apply_in_place(&t, &patch, &opts(32 << 10, Some(12))).unwrap_err();
    assert!(j.exists());
    let garbage = Rng(11).bytes(fs::metadata(&t).unwrap().len() as usize);
    fs::write(&t, &garbage).unwrap();
    let e = apply_in_place(&t, &patch, &opts(1 << 20, None)).unwrap_err();
    assert!(matches!(e, ApplyError::WrongTarget { .. }), "{e}");
    assert_eq!(fs::read(&t).unwrap(), garbage);
    // One flipped byte after an interruption: refused untouched, or (when
    // no remaining step reads it) overwritten with the exact NEW.
    for at in [0usize, 20_000, 60_000, 100_000, 150_000] {
        fs::write(&t, &old).unwrap();
        let _ = fs::remove_file(&j);
        let _ = apply_in_place(&t, &patch, &opts(32 << 10, Some(14))).unwrap_err();
        let mut cur = fs::read(&t).unwrap();
        cur[at] ^= 0x40;
        fs::write(&t, &cur).unwrap();
        match apply_in_place(&t, &patch, &opts(32 << 10, None)) {
            Ok(_) => assert_eq!(fs::read(&t).unwrap(), new),
            Err(e) => {
                assert!(matches!(e, ApplyError::WrongTarget { .. }), "{e}");
                assert_eq!(fs::read(&t).unwrap(), cur);
            }
        }
    }
}

#[test]
fn foreign_journal_and_plain_patch_are_refused() {
    let d = tmpdir("foreign");
    let mut cs = cases();
    let (_, old, new) = cs.swap_remove(0);
    let (patch, _) = make_patch(&old, &new, 16 << 10, 16 << 20);
    let (other, _) = make_patch(&old, &new, 32 << 10, 16 << 20);
    let t = d.join("t");
    fs::write(&t, &old).unwrap();
    let _ = apply_in_place(&t, &patch, &opts(32 << 10, Some(8))).unwrap_err();
    let before = fs::read(&t).unwrap();
    let e = apply_in_place(&t, &other, &opts(32 << 10, None)).unwrap_err();
    assert!(matches!(e, ApplyError::Journal { .. }), "{e}");
    assert!(e.to_string().contains("another patch"), "{e}");
    assert_eq!(fs::read(&t).unwrap(), before);
    // The right patch still finishes.
    apply_in_place(&t, &patch, &opts(32 << 10, None)).unwrap();
    assert_eq!(fs::read(&t).unwrap(), new);

    // A patch made without --in-place.
    let plain = {
        let o = oxdelta_diff::sa::diff(&old, &new, &DiffOptions::default());
        assemble(&o.meta, o.chunks, None)
    };
    fs::write(&t, &old).unwrap();
    let e = apply_in_place(&t, &plain, &InPlaceOptions::default()).unwrap_err();
    assert!(matches!(e, ApplyError::NotInPlace), "{e}");
    assert_eq!(fs::read(&t).unwrap(), old);

    // A journal elsewhere.
    let jp = d.join("elsewhere.journal");
    let o = InPlaceOptions {
        journal: Some(jp.clone()),
        fail_after_writes: Some(6),
        batch_budget: 32 << 10,
        ..InPlaceOptions::default()
    };
    apply_in_place(&t, &patch, &o).unwrap_err();
    assert!(jp.exists() && !default_journal_path(&t).exists());
    apply_in_place(
        &t,
        &patch,
        &InPlaceOptions {
            fail_after_writes: None,
            ..o
        },
    )
    .unwrap();
    assert_eq!(fs::read(&t).unwrap(), new);
    assert!(!jp.exists());
}

#[test]
fn signed_patches_need_the_trusted_key() {
    let d = tmpdir("signed");
    let (_, old, new) = cases().swap_remove(1);
    let key = oxdelta_format::SecretKey([7; 32]);
    let opts_d = DiffOptions {
        codec: Codec::Zstd(3),
        chunk_len: Some(16 << 10),
        ..DiffOptions::default()
    };
    let (out, _) = diff(&old, &new, &opts_d, &DiffInPlace::default());
    let signed = assemble(&out.meta, out.chunks.clone(), Some(&key));
    let unsigned = assemble(&out.meta, out.chunks, None);
    let t = d.join("t");
    fs::write(&t, &old).unwrap();
    let o = InPlaceOptions {
        trusted_key: Some(key.public()),
        ..InPlaceOptions::default()
    };
    assert!(matches!(
        apply_in_place(&t, &unsigned, &o).unwrap_err(),
        ApplyError::Patch(_)
    ));
    assert_eq!(fs::read(&t).unwrap(), old);
    let r = apply_in_place(&t, &signed, &o).unwrap();
    assert!(r.signed);
    assert_eq!(fs::read(&t).unwrap(), new);
}
