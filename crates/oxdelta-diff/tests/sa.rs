//! Tests of the suffix-array engine.

use std::time::{Duration, Instant};

use oxdelta_apply::{ApplyOptions, apply_bytes};
use oxdelta_diff::DiffOptions;
use oxdelta_diff::sa::{
    GRAM, GramFilter, LONG_GRAM, MatchParams, diff, match_chunk, match_chunk_filtered,
    match_chunk_with,
};
use oxdelta_format::{Codec, Op};
use oxdelta_sa::SuffixArray;
use proptest::prelude::*;

fn patch(old: &[u8], new: &[u8], opts: &DiffOptions) -> Vec<u8> {
    let out = diff(old, new, opts);
    out.assemble(None)
}

fn roundtrip(old: &[u8], new: &[u8], opts: &DiffOptions) -> usize {
    let p = patch(old, new, opts);
    let got = apply_bytes(old, &p, &ApplyOptions::default()).expect("own patch applies");
    assert!(got == new, "round trip differs");
    p.len()
}

// Set field by field: other engines add options with defaults.
#[allow(clippy::field_reassign_with_default)]
fn opts(codec: Codec, chunk_len: Option<u32>) -> DiffOptions {
    let mut o = DiffOptions::default();
    o.codec = codec;
    o.chunk_len = chunk_len;
    o
}

/// Rebuilds `new[start..end]` from ops the way an applier does.
fn replay(old: &[u8], new: &[u8], start: usize, ops: &[Op]) -> Vec<u8> {
    let mut out = Vec::new();
    for op in ops {
        let at = start + out.len();
        let len = op.len() as usize;
        match *op {
            Op::Copy { old: o, .. } => out.extend_from_slice(&old[o as usize..o as usize + len]),
            Op::Add { old: o, .. } => {
                // The encoder derives diff bytes from NEW: only the read range matters.
                assert!(o as usize + len <= old.len(), "ADD reads past OLD");
                out.extend_from_slice(&new[at..at + len]);
            }
            Op::Insert { .. } => out.extend_from_slice(&new[at..at + len]),
            Op::Zero { .. } => out.extend(std::iter::repeat_n(0u8, len)),
        }
    }
    out
}

/// A deterministic byte generator (xorshift), so failures repeat.
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
}

/// Code-like data: a few hundred distinct 16-byte "instructions", with
/// 4-byte fields that differ.
fn codeish(rng: &mut Rng, n: usize) -> Vec<u8> {
    let words: Vec<Vec<u8>> = (0..300).map(|_| rng.bytes(12)).collect();
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        out.extend_from_slice(&words[rng.next() as usize % words.len()]);
        out.extend_from_slice(&(rng.next() as u32 % 4096).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// NEW from OLD: shifted blocks, changed pointers, insertions, deletions.
fn edit(rng: &mut Rng, old: &[u8]) -> Vec<u8> {
    let mut new = Vec::with_capacity(old.len() + old.len() / 8);
    let mut i = 0;
    while i < old.len() {
        let take = (rng.next() as usize % 4000 + 1).min(old.len() - i);
        let mut block = old[i..i + take].to_vec();
        for _ in 0..take / 200 {
            let at = rng.next() as usize % block.len();
            block[at] = block[at].wrapping_add(rng.next() as u8 % 7 + 1);
        }
        new.extend_from_slice(&block);
        match rng.next() % 4 {
            0 => {
                let n = rng.next() as usize % 300;
                new.extend(rng.bytes(n));
            }
            1 => i += rng.next() as usize % 300,
            _ => {}
        }
        i += take;
    }
    new
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_edits_round_trip(
        old in proptest::collection::vec(any::<u8>(), 0..3000),
        edits in proptest::collection::vec((any::<u16>(), 0usize..64, any::<u8>(), 0u8..3), 0..12),
    ) {
        let mut new = old.clone();
        for (at, len, b, kind) in edits {
            let at = if new.is_empty() { 0 } else { at as usize % new.len() };
            match kind {
                0 => { new.splice(at..at, std::iter::repeat_n(b, len)); }
                1 => { let e = (at + len).min(new.len()); new.drain(at..e); }
                _ => { for x in new.iter_mut().skip(at).take(len) { *x = x.wrapping_add(b); } }
            }
        }
        for codec in [Codec::None, Codec::Lz4, Codec::Zstd(3)] {
            roundtrip(&old, &new, &opts(codec, Some(1024)));
        }
    }

    #[test]
    fn ops_rebuild_the_range(seed in 1u64.., start_frac in 0.0f64..1.0) {
        let mut rng = Rng(seed);
        let old = codeish(&mut rng, 20_000);
        let new = edit(&mut rng, &old);
        let sa = SuffixArray::new(&old);
        let start = (new.len() as f64 * start_frac) as usize;
        let ops = match_chunk(&sa, &new, start, new.len());
        prop_assert_eq!(ops.iter().map(Op::len).sum::<u64>() as usize, new.len() - start);
        prop_assert!(replay(&old, &new, start, &ops) == new[start..].to_vec());
        // COPY ops are exact, ZERO ops produce zeros.
        let mut at = start;
        for op in &ops {
            let len = op.len() as usize;
            match *op {
                Op::Copy { old: o, .. } => prop_assert!(old[o as usize..o as usize + len] == new[at..at + len]),
                Op::Zero { .. } => prop_assert!(new[at..at + len].iter().all(|&b| b == 0)),
                _ => {}
            }
            at += len;
        }
    }
}

/// Oracle: every NEW byte left as a literal lies in no match of `min_seed`
/// bytes or more that a naive quadratic search finds in OLD, unless a
/// neighbouring alignment already covers most of it. On random data with
/// planted copies the matcher must cover every planted block.
#[test]
fn planted_blocks_are_found_like_a_naive_search() {
    let mut rng = Rng(7);
    let old = rng.bytes(50_000);
    let mut new = Vec::new();
    let mut planted = Vec::new();
    for _ in 0..40 {
        let n = rng.next() as usize % 200;
        new.extend(rng.bytes(n));
        let len = 40 + rng.next() as usize % 500;
        let at = rng.next() as usize % (old.len() - len);
        planted.push((new.len(), at, len));
        new.extend_from_slice(&old[at..at + len]);
    }
    // Naive check of the plant: each block is the unique occurrence.
    for &(n, o, len) in &planted {
        let hits = old.windows(len).filter(|w| *w == &new[n..n + len]).count();
        assert_eq!(hits, 1, "planted block at {o} occurs once");
    }
    let sa = SuffixArray::new(&old);
    let ops = match_chunk(&sa, &new, 0, new.len());
    assert!(replay(&old, &new, 0, &ops) == new);
    // Which NEW bytes come from OLD, and from where.
    let mut src = vec![None; new.len()];
    let mut at = 0;
    for op in &ops {
        if let Op::Copy { old: o, len } | Op::Add { old: o, len } = *op {
            for k in 0..len as usize {
                src[at + k] = Some(o as usize + k);
            }
        }
        at += op.len() as usize;
    }
    for &(n, o, len) in &planted {
        for k in 0..len {
            assert_eq!(
                src[n + k],
                Some(o + k),
                "byte {k} of the block planted at NEW {n}"
            );
        }
    }
}

#[test]
fn serial_equals_parallel() {
    let mut rng = Rng(99);
    let old = codeish(&mut rng, 600_000);
    let new = edit(&mut rng, &old);
    let o = opts(Codec::Zstd(3), Some(64 << 10));
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| patch(&old, &new, &o))
    };
    let one = run(1);
    assert!(one == run(4), "1 and 4 threads give different patches");
    assert!(one == run(2));
}

fn quick(old: &[u8], new: &[u8]) -> (usize, Duration) {
    let t = Instant::now();
    let n = roundtrip(old, new, &opts(Codec::Zstd(3), None));
    (n, t.elapsed())
}

#[test]
fn repetitive_data_is_fast_and_small() {
    const N: usize = 4 << 20;
    let limit = Duration::from_secs(20);
    // Long zero runs on both sides.
    let (n, t) = quick(&vec![0u8; N], &vec![0u8; N + 12345]);
    assert!(t < limit && n < 4096, "zeros: {n} bytes in {t:?}");
    // Zeros in NEW against random OLD: ZERO ops, not diff bytes.
    let mut rng = Rng(3);
    let (n, t) = quick(&rng.bytes(N), &vec![0u8; N]);
    assert!(t < limit && n < 4096, "zeros vs random: {n} bytes in {t:?}");
    // Periodic data with a different period on each side.
    let old: Vec<u8> = (0..N).map(|i| (i % 251) as u8).collect();
    let new: Vec<u8> = (0..N).map(|i| (i % 253) as u8).collect();
    let (n, t) = quick(&old, &new);
    assert!(t < limit && n < 64 << 10, "periodic: {n} bytes in {t:?}");
    // A short period repeated, with sparse changes.
    let old: Vec<u8> = b"abcabcabd".iter().cycle().take(N).copied().collect();
    let mut new = old.clone();
    for k in (0..N).step_by(4099) {
        new[k] ^= 0x55;
    }
    let (n, t) = quick(&old, &new);
    assert!(
        t < limit && n < 64 << 10,
        "short period: {n} bytes in {t:?}"
    );
}

#[test]
fn sparse_pointer_changes_become_adds_not_literals() {
    let mut rng = Rng(11);
    let old = codeish(&mut rng, 1 << 20);
    let mut new = old.clone();
    for k in (0..new.len()).step_by(48) {
        new[k] = new[k].wrapping_add(4);
    }
    let sa = SuffixArray::new(&old);
    let ops = match_chunk(&sa, &new, 0, new.len());
    let lit: u64 = ops
        .iter()
        .filter(|o| matches!(o, Op::Insert { .. }))
        .map(Op::len)
        .sum();
    assert!(lit < 1024, "{lit} literal bytes for pointer changes");
    assert!(ops.len() < 64, "{} ops", ops.len());
}

#[test]
fn params_change_ops_but_not_output() {
    let mut rng = Rng(5);
    let old = codeish(&mut rng, 100_000);
    let new = edit(&mut rng, &old);
    let sa = SuffixArray::new(&old);
    for p in [
        MatchParams::default(),
        MatchParams {
            min_seed: 32,
            join_gap: 0,
            copy_split: 16,
            lit_split: 8,
            ..MatchParams::default()
        },
        MatchParams {
            ext_num: 4,
            ext_den: 3,
            zero_run: 1,
            cluster_gap: 1,
            ..MatchParams::default()
        },
    ] {
        let ops = match_chunk_with(&sa, &new, 0, new.len(), &p);
        assert!(replay(&old, &new, 0, &ops) == new, "{p:?}");
    }
}

#[test]
fn edge_sizes_round_trip() {
    let mut rng = Rng(21);
    let base = rng.bytes(70_000);
    for (o, n) in [
        (0, 0),
        (0, 10),
        (10, 0),
        (1, 1),
        (15, 16),
        (16, 17),
        (65_535, 65_537),
    ] {
        let old = base[..o].to_vec();
        let mut new = base[base.len() - n..].to_vec();
        new.iter_mut().step_by(97).for_each(|b| *b ^= 1);
        for chunk in [None, Some(1 << 16)] {
            roundtrip(&old, &new, &opts(Codec::Zstd(1), chunk));
        }
    }
}

#[test]
fn msgpack_round_trips() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../testdata/msgpack");
    let old = std::fs::read(format!("{dir}/old")).unwrap();
    let new = std::fs::read(format!("{dir}/new")).unwrap();
    let n = roundtrip(&old, &new, &DiffOptions::default());
    assert!(
        n < new.len() / 4,
        "patch {n} bytes for {} NEW bytes",
        new.len()
    );
    roundtrip(&old, &new, &opts(Codec::Lz4, Some(1 << 16)));
}

#[test]
fn tuning_follows_compressibility() {
    let mut rng = Rng(8);
    let text: Vec<u8> = b"fn main() { println!(\"hello, world\"); }\n// a comment line\n"
        .iter()
        .cycle()
        .take(1 << 20)
        .copied()
        .collect();
    assert!(MatchParams::for_data(&text).min_seed > MatchParams::default().min_seed);
    let dense = rng.bytes(1 << 20);
    assert_eq!(MatchParams::for_data(&dense), MatchParams::default());
    assert_eq!(MatchParams::for_data(&[]), MatchParams::default());
}

/// The 8-gram filter only skips lookups that cannot seed: the ops are the
/// same with and without it, for code and text tuning, and it never says
/// "absent" for a string of OLD.
#[test]
fn gram_filter_changes_nothing_but_time() {
    let mut rng = Rng(33);
    for round in 0..6 {
        let old = if round % 2 == 0 {
            codeish(&mut rng, 60_000)
        } else {
            rng.bytes(60_000)
        };
        let mut new = edit(&mut rng, &old);
        new.extend(rng.bytes(5_000));
        let sa = SuffixArray::new(&old);
        let grams = GramFilter::new(&old, true);
        for w in old.windows(GRAM).step_by(7) {
            assert!(grams.may_contain(w));
        }
        for w in old.windows(LONG_GRAM).step_by(5) {
            assert!(grams.may_contain_long(w));
        }
        let text = MatchParams {
            min_seed: LONG_GRAM,
            cluster_gap: 8,
            lit_split: 24,
            ..MatchParams::default()
        };
        for p in [MatchParams::default(), text] {
            let plain = match_chunk_with(&sa, &new, 0, new.len(), &p);
            let filtered = match_chunk_filtered(&sa, Some(&grams), &new, 0, new.len(), &p);
            assert_eq!(plain, filtered, "round {round} {p:?}");
        }
    }
    // The filter does skip. One hash: 1 − e^(−1/b) of absent strings pass
    // at b bits per OLD byte; 100,000 bytes get 2^19 bits (5.2 per byte,
    // 17%) alone, or 2^18 bits each (2.6, 32%) with the long filter.
    let old = Rng(5).bytes(100_000);
    let probe = Rng(6).bytes(80_000);
    let passed =
        |f: &dyn Fn(&[u8]) -> bool, n: usize| probe.windows(n).step_by(8).filter(|w| f(w)).count();
    let both = GramFilter::new(&old, true);
    let maybe = passed(&|w| both.may_contain(w), GRAM);
    assert!(maybe < 4_000, "{maybe} of 10000 absent strings passed");
    let maybe = passed(&|w| both.may_contain_long(w), LONG_GRAM);
    assert!(maybe < 4_000, "{maybe} of 9997 absent long strings passed");
    let short = GramFilter::new(&old, false);
    let maybe = passed(&|w| short.may_contain(w), GRAM);
    assert!(maybe < 2_300, "{maybe} of 10000 absent strings passed");
    assert!(probe.windows(LONG_GRAM).all(|w| short.may_contain_long(w)));
}

/// Text from a vocabulary: words, spaces and newlines.
fn texty(rng: &mut Rng, n: usize) -> Vec<u8> {
    let words: Vec<Vec<u8>> = (0..500)
        .map(|_| {
            let len = 2 + rng.next() as usize % 9;
            (0..len).map(|_| b'a' + (rng.next() % 26) as u8).collect()
        })
        .collect();
    let mut out = Vec::with_capacity(n + 16);
    while out.len() < n {
        out.extend_from_slice(&words[rng.next() as usize % words.len()]);
        out.push(if rng.next() % 9 == 0 { b'\n' } else { b' ' });
    }
    out.truncate(n);
    out
}

/// Generated text whose records share boilerplate, edited so that every
/// record's alignment shifts by a few bytes: after each edit the longest
/// match is often a far copy of the boilerplate, while the record's own
/// OLD text, a few bytes away, explains nearly as much. The local search
/// must keep the ops near (patch at least 15% smaller than without it),
/// and the patch is the same on one thread and on two.
#[test]
fn local_alignments_beat_far_boilerplate() {
    let mut rng = Rng(21);
    let names = ["features", "targets", "feature", "gates"];
    let record = |rng: &mut Rng, name: &str| -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(b"#[repr(C)]\n#[doc = \"*Required ");
        r.extend_from_slice(name.as_bytes());
        r.extend_from_slice(b": `Win32_Networking`*\"]\npub struct S");
        r.extend(texty(rng, 12));
        r.extend_from_slice(b" {\n    pub a: u32,\n    pub b: *mut ::core::ffi::c_void,\n}\n");
        r.extend(texty(rng, 60));
        r.extend_from_slice(b"\nimpl ::core::clone::Clone for T {\n    fn clone(&self) -> Self {\n        *self\n    }\n}\n");
        r
    };
    let (mut old, mut new) = (Vec::new(), Vec::new());
    for _ in 0..3000 {
        let seed = rng.next();
        old.extend(record(&mut Rng(seed), names[0]));
        new.extend(record(&mut Rng(seed), names[1 + (seed % 3) as usize]));
    }
    let o = opts(Codec::Zstd(19), Some(256 << 10));
    assert!(
        new.chunks(256 << 10)
            .all(|c| MatchParams::for_data(c) == MatchParams::text())
    );
    let run = |threads: usize, p: Option<&MatchParams>| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| oxdelta_diff::sa::diff_with(&old, &new, &o, p).assemble(None))
    };
    let local = run(2, None);
    assert!(
        local == run(1, None),
        "1 and 2 threads give different patches"
    );
    assert!(apply_bytes(&old, &local, &ApplyOptions::default()).unwrap() == new);
    let far = MatchParams {
        local_shift: 0,
        ..MatchParams::text()
    };
    let far = run(2, Some(&far));
    assert!(apply_bytes(&old, &far, &ApplyOptions::default()).unwrap() == new);
    assert!(
        local.len() * 100 <= far.len() * 85,
        "with the local search: {} bytes, without: {}",
        local.len(),
        far.len()
    );
}

/// A table of 12-byte entries (three little-endian words whose upper
/// three bytes are zero) in which, from entry 1000 on, the low byte of
/// the first two words changes (addresses of moved code): alignment 0
/// agrees on 10 bytes of 12, but never on a seed's 9 in a row. Every 50
/// entries from entry 2000, three entries equal the OLD entries two
/// further on: exact matches at alignment −24, which also agrees on the
/// 9 zero bytes of every entry. The scan adopts −24 at the first of
/// them and, having no seed at 0 to return on, joins the rest into one
/// stretch; the whole stretch must still go to alignment 0, which
/// explains more of it.
#[test]
fn shifted_table_keeps_its_alignment_after_coincidences() {
    let mut rng = Rng(33);
    let entries = 6000;
    let mut old = vec![0u8; entries * 12];
    for k in 0..entries * 3 {
        old[4 * k] = rng.next() as u8;
    }
    let mut new = old.clone();
    for k in 1000..entries {
        new[12 * k] = new[12 * k].wrapping_sub(0x40);
        new[12 * k + 4] = new[12 * k + 4].wrapping_sub(0x40);
    }
    for k in (2000..entries - 5).step_by(50) {
        new[12 * k..12 * (k + 3)].copy_from_slice(&old[12 * (k + 2)..12 * (k + 5)]);
    }
    let sa = SuffixArray::new(&old);
    let ops = match_chunk(&sa, &new, 0, new.len());
    assert!(replay(&old, &new, 0, &ops) == new);
    let (mut at, mut aligned) = (0u64, 0u64);
    for op in &ops {
        if let Op::Copy { old, .. } | Op::Add { old, .. } = *op {
            if old == at {
                aligned += op.len();
            }
        }
        at += op.len();
    }
    assert!(
        aligned * 100 >= new.len() as u64 * 99,
        "{aligned} of {} NEW bytes at alignment 0; ops {ops:?}",
        new.len()
    );
}
