//! In-place apply: round trips on generated cases (cyclic conflicts among
//! them), interruption at every write with resume (and interruptions
//! during the resume), refusal of wrong targets and foreign journals; the
//! same with a shared section (format version 8), whose literal block a
//! resumed run takes from the journal.

use std::fs;
use std::path::{Path, PathBuf};

use oxdelta_apply::inplace::{
    InPlaceOptions, InPlaceOutcome, apply_in_place, default_journal_path,
};
use oxdelta_apply::{ApplyError, ApplyOptions, apply_bytes};
use oxdelta_diff::DiffOptions;
use oxdelta_diff::inplace::{InPlaceOptions as DiffInPlace, InPlaceStats, diff};
use oxdelta_format::{Codec, Patch, Shared, assemble_with};

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
    // One new paragraph inserted in several places (and chunks), each in
    // place of a few OLD bytes: what a shared section is for.
    let old = r.text(160 << 10);
    let para = r.text(2500);
    let mut new = Vec::new();
    let mut at = 0;
    for cut in [9_000, 30_000, 52_000, 90_000, 130_000] {
        new.extend_from_slice(&old[at..cut]);
        new.extend_from_slice(&para);
        at = cut + 300;
    }
    new.extend_from_slice(&old[at..]);
    out.push(("paragraphs", old, new));
    out
}

fn make_patch(old: &[u8], new: &[u8], step: u32, stash_limit: u64) -> (Vec<u8>, InPlaceStats) {
    let opts = DiffOptions {
        codec: Codec::Zstd(3),
        chunk_len: Some(step),
        ..DiffOptions::default()
    };
    let (out, stats) = diff(old, new, &opts, &DiffInPlace { stash_limit });
    (out.assemble(None), stats)
}

/// [`make_patch`] with every chunk moved into a shared section (format
/// version 8) when sharing makes the patch smaller; `None` when it does
/// not.
fn make_shared_patch(old: &[u8], new: &[u8], step: u32, stash_limit: u64) -> Option<Vec<u8>> {
    let opts = DiffOptions {
        codec: Codec::Zstd(3),
        chunk_len: Some(step),
        ..DiffOptions::default()
    };
    let (mut out, _) = diff(old, new, &opts, &DiffInPlace { stash_limit });
    if out.shared.is_none() {
        let max = oxdelta_format::limits::BlockLimits::NARROW;
        out.shared = oxdelta_diff::encode::share::share(old, &mut out.chunks, 3, false, max);
    }
    out.shared.as_ref()?;
    let patch = out.assemble(None);
    let h = Patch::parse(&patch).unwrap().head;
    assert!(h.is_in_place() && h.shared.is_present() && h.version >= 8);
    Some(patch)
}

/// A case with its patch: (name, OLD, NEW, patch).
type PatchCase = (&'static str, Vec<u8>, Vec<u8>, Vec<u8>);

/// The cases whose in-place patch carries a shared section, with it.
fn shared_cases() -> Vec<PatchCase> {
    cases()
        .into_iter()
        .enumerate()
        .filter_map(|(ci, (name, old, new))| {
            let stash_limit = if ci % 2 == 0 { 16 << 20 } else { 1 << 13 };
            let p = make_shared_patch(&old, &new, 16 << 10, stash_limit)?;
            Some((name, old, new, p))
        })
        .collect()
}

/// Where a journal keeps the shared literal block, from the layout in
/// docs/FORMAT.md: after the stash data, which starts at the header's end
/// rounded up to 4 KiB. Returns (offset, length, journal version).
fn journal_lit_block(j: &[u8]) -> (usize, usize, u32) {
    let u32_at = |a: usize| u32::from_le_bytes(j[a..a + 4].try_into().unwrap());
    let u64_at = |a: usize| u64::from_le_bytes(j[a..a + 8].try_into().unwrap()) as usize;
    let version = u32_at(8);
    let (steps, ranges, stash) = (u32_at(72) as usize, u32_at(76) as usize, u64_at(80));
    if version == 1 {
        return (0, 0, 1);
    }
    let head = 160 + 16 * ranges + 32 * steps + 32;
    (head.div_ceil(4096) * 4096 + stash, u64_at(120), version)
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

/// Every case with its patch, made as the sweeps use it: the plain
/// in-place patches, or those with a shared section.
fn sweep_cases(shared: bool) -> Vec<PatchCase> {
    if shared {
        return shared_cases();
    }
    cases()
        .into_iter()
        .enumerate()
        .map(|(ci, (name, old, new))| {
            let stash_limit = if ci % 2 == 0 { 16 << 20 } else { 1 << 13 };
            let (patch, _) = make_patch(&old, &new, 16 << 10, stash_limit);
            (name, old, new, patch)
        })
        .collect()
}

/// Stops the apply after every possible number of writes, then resumes
/// (sometimes interrupting the resume too) and checks the result. Returns
/// the interruption points of first runs and of resumes.
fn sweep(power_loss: bool, shared: bool) -> (usize, usize) {
    let d = tmpdir(match (power_loss, shared) {
        (false, false) => "fault",
        (true, false) => "power",
        (false, true) => "fault-shared",
        (true, true) => "power-shared",
    });
    let mut points = 0usize;
    let mut resume_points = 0usize;
    for (name, old, new, patch) in sweep_cases(shared) {
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
    let (points, resume_points) = sweep(false, false);
    eprintln!("interruption points: {points} first-run, {resume_points} during resume");
    assert!(points >= 300, "only {points} interruption points");
}

/// As above, but each interruption is a power loss that also undoes a
/// random part of the writes not yet synced: every ordering point of the
/// journal protocol must have its sync.
#[test]
fn power_loss_at_every_write_then_resumed() {
    let (points, resume_points) = sweep(true, false);
    eprintln!("power-loss points: {points} first-run, {resume_points} during resume");
    assert!(points >= 300, "only {points} interruption points");
}

/// The sweeps again with a shared section in every patch: whatever point
/// a run stops at (a power loss included), the resumed run, which takes
/// the literal block from the journal, rebuilds NEW.
#[test]
fn shared_section_interrupted_at_every_write_then_resumed() {
    let n = shared_cases().len();
    assert!(n >= 3, "only {n} cases share");
    for power_loss in [false, true] {
        let (points, resume_points) = sweep(power_loss, true);
        eprintln!(
            "shared, power loss {power_loss}: {points} first-run, {resume_points} during resume"
        );
        assert!(points >= 150, "only {points} interruption points");
    }
}

/// An in-place patch with a shared section (format version 8) applies in
/// place and as an ordinary patch; its journal is version 2 and holds the
/// decoded literal block, a patch without a section gets version 1's
/// journal (what earlier releases write and read).
#[test]
fn shared_section_round_trips_and_journal_versions() {
    let d = tmpdir("shared-rt");
    for (name, old, new, patch) in shared_cases() {
        assert_eq!(
            apply_bytes(&old, &patch, &ApplyOptions::default()).unwrap(),
            new,
            "{name}"
        );
        let t = d.join(name);
        let j = default_journal_path(&t);
        fs::write(&t, &old).unwrap();
        // Stop right after the journal is in place (its write and rename).
        let e = apply_in_place(&t, &patch, &opts(40 << 10, Some(2))).unwrap_err();
        assert!(is_injected(&e), "{name}: {e}");
        assert_eq!(fs::read(&t).unwrap(), old, "{name}: target touched");
        let jb = fs::read(&j).unwrap();
        let (at, len, version) = journal_lit_block(&jb);
        assert_eq!(version, 2, "{name}");
        let p = Patch::parse(&patch).unwrap();
        let lit = Shared::decode(&p.head, p.shared_bytes(), &old).unwrap();
        assert_eq!(&jb[at..at + len], lit.literal_block(), "{name}");
        let r = apply_in_place(&t, &patch, &opts(40 << 10, None)).unwrap();
        assert!(r.resumed);
        assert_eq!(fs::read(&t).unwrap(), new, "{name}");
        assert!(!j.exists());
    }
    // Without a section (lz4 chunks are never shared).
    let (_, old, new) = cases().swap_remove(0);
    let lz4 = DiffOptions {
        codec: Codec::Lz4,
        chunk_len: Some(16 << 10),
        ..DiffOptions::default()
    };
    let plain = diff(&old, &new, &lz4, &DiffInPlace::default())
        .0
        .assemble(None);
    assert!(!Patch::parse(&plain).unwrap().head.shared.is_present());
    let t = d.join("plain");
    fs::write(&t, &old).unwrap();
    apply_in_place(&t, &plain, &opts(40 << 10, Some(2))).unwrap_err();
    let jb = fs::read(default_journal_path(&t)).unwrap();
    assert_eq!(journal_lit_block(&jb).2, 1);
    assert_eq!(jb[..8], *b"OXDJRNL\x01");
    apply_in_place(&t, &plain, &opts(40 << 10, None)).unwrap();
    assert_eq!(fs::read(&t).unwrap(), new);
}

/// Once OLD is partly overwritten its context is gone (decoding the section
/// from the target fails or gives another literal block), and the resumed
/// run still rebuilds NEW from the journal's copy; a damaged copy is
/// refused before anything is written.
#[test]
fn shared_section_resumes_from_the_journal_not_from_old() {
    let d = tmpdir("shared-journal");
    let (mut overwritten, mut with_literals) = (0, 0);
    for (name, old, new, patch) in shared_cases() {
        let p = Patch::parse(&patch).unwrap();
        let lit = Shared::decode(&p.head, p.shared_bytes(), &old).unwrap();
        // A section whose chunks have no literals (edits inside ADDs)
        // leaves the journal no block to damage.
        if lit.literal_block().is_empty() {
            continue;
        }
        with_literals += 1;
        let t = d.join(name);
        let j = default_journal_path(&t);
        for k in [6u64, 10, 16, 24] {
            fs::write(&t, &old).unwrap();
            let _ = fs::remove_file(&j);
            if apply_in_place(&t, &patch, &opts(24 << 10, Some(k))).is_ok() {
                break;
            }
            let cur = fs::read(&t).unwrap();
            let mut from_target = cur.clone();
            from_target.resize(old.len(), 0);
            let lost = Shared::decode(&p.head, p.shared_bytes(), &from_target)
                .map_or(true, |s| s.literal_block() != lit.literal_block());
            if lost {
                overwritten += 1;
            }
            // A damaged copy of the literal block: refused, untouched.
            let good = fs::read(&j).unwrap();
            let (at, len, _) = journal_lit_block(&good);
            assert!(len > 0, "{name}");
            let mut bad = good.clone();
            bad[at + len / 2] ^= 0x10;
            fs::write(&j, &bad).unwrap();
            let e = apply_in_place(&t, &patch, &opts(24 << 10, None)).unwrap_err();
            assert!(matches!(e, ApplyError::Journal { .. }), "{name} k={k}: {e}");
            assert!(e.to_string().contains("shared literal block"), "{e}");
            assert_eq!(fs::read(&t).unwrap(), cur, "{name} k={k}: target touched");
            fs::write(&j, &good).unwrap();
            let r = apply_in_place(&t, &patch, &opts(24 << 10, None))
                .unwrap_or_else(|e| panic!("{name} k={k}: {e}"));
            assert!(r.resumed);
            assert_eq!(fs::read(&t).unwrap(), new, "{name} k={k}");
            assert!(!j.exists());
        }
    }
    assert!(
        with_literals >= 3,
        "only {with_literals} cases have literals"
    );
    assert!(
        overwritten >= 3,
        "only {overwritten} runs overwrote the context"
    );
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
    let plain = oxdelta_diff::sa::diff(&old, &new, &DiffOptions::default()).assemble(None);
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
    let shared = out.shared.as_ref();
    let signed = assemble_with(&out.meta, out.chunks.clone(), shared, Some(&key));
    let unsigned = assemble_with(&out.meta, out.chunks.clone(), shared, None);
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
