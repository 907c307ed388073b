//! Tests of the anchor pass: anchors are exact, maximal and ordered, found
//! where long blocks were planted, independent of the thread count, and the
//! compact text maps back to OLD.

use oxdelta_apply::{ApplyOptions, apply_bytes};
use oxdelta_diff::DiffOptions;
use oxdelta_diff::anchor::{Anchor, Coverage, MIN_ANCHOR, WINDOW, find_anchors};
use oxdelta_format::Codec;
use proptest::prelude::*;

/// xorshift bytes, so failures repeat.
fn bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s as u8
        })
        .collect()
}

/// NEW made of blocks of OLD (in shuffled order) and fresh bytes between
/// them: `(new, [(new start, old start, len)])` of the planted blocks.
fn planted(old: &[u8], seed: u64, blocks: usize) -> (Vec<u8>, Vec<(usize, usize, usize)>) {
    let fresh = bytes(seed ^ 0x5555, 1 << 20);
    let r = bytes(seed, blocks * 8);
    let mut new = Vec::new();
    let mut plants = Vec::new();
    for k in 0..blocks {
        let x = u64::from_le_bytes(r[k * 8..k * 8 + 8].try_into().unwrap());
        let len = 256 + (x as usize % 20_000);
        let at = (x >> 20) as usize % (old.len() - len);
        let gap = 1 + (x >> 40) as usize % 3000;
        new.extend_from_slice(&fresh[(k * 311) % 4096..][..gap]);
        plants.push((new.len(), at, len));
        new.extend_from_slice(&old[at..at + len]);
    }
    (new, plants)
}

fn check_anchors(old: &[u8], new: &[u8], anchors: &[Anchor]) {
    let mut end = 0;
    for a in anchors {
        assert!(a.new >= end, "anchors overlap or are out of order: {a:?}");
        assert!(a.len >= MIN_ANCHOR, "short anchor {a:?}");
        assert!(
            old[a.old..a.old + a.len] == new[a.new..a.new + a.len],
            "anchor {a:?} is not an exact match"
        );
        let (oe, ne) = (a.old + a.len, a.new + a.len);
        assert!(
            oe == old.len() || ne == new.len() || old[oe] != new[ne],
            "anchor {a:?} stops before its match ends"
        );
        end = ne;
    }
}

#[test]
fn planted_blocks_become_anchors() {
    let old = bytes(7, 3 << 20);
    let (new, plants) = planted(&old, 11, 300);
    let anchors = find_anchors(&old, &new);
    check_anchors(&old, &new, &anchors);
    // Every NEW byte of a planted block of 2 KiB and more is in an anchor
    // with the planted alignment, except with negligible probability (a
    // block is missed only if none of its windows is sampled).
    let mut missed = 0;
    let mut total = 0;
    for &(n, o, len) in plants.iter().filter(|p| p.2 >= 2048) {
        total += len;
        let covered: usize = anchors
            .iter()
            .filter(|a| a.old as isize - a.new as isize == o as isize - n as isize)
            .map(|a| (a.new + a.len).min(n + len).saturating_sub(a.new.max(n)))
            .sum();
        missed += len - covered;
    }
    assert!(total > 1 << 20);
    assert!(
        missed == 0,
        "{missed} of {total} planted bytes not anchored"
    );
}

#[test]
fn anchors_do_not_depend_on_threads() {
    let old = bytes(3, 5 << 20);
    let (new, _) = planted(&old, 5, 400);
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| find_anchors(&old, &new))
    };
    let one = run(1);
    assert!(!one.is_empty());
    assert_eq!(one, run(3));
    assert_eq!(one, run(8));
}

#[test]
fn repetitive_data_gives_few_anchors() {
    // One byte, and short periods: a handful of distinct windows, each
    // sampled everywhere or nowhere. Either way the anchors are exact and
    // long (the scan jumps past each), not one per sampled window.
    for unit in [&[0u8][..], b"abcabd", b"0123456789abcdefghijklmnopqrstuvw"] {
        let old: Vec<u8> = unit.iter().copied().cycle().take(2 << 20).collect();
        let new: Vec<u8> = unit.iter().copied().cycle().take(3 << 20).collect();
        let anchors = find_anchors(&old, &new);
        check_anchors(&old, &new, &anchors);
        assert!(anchors.len() <= 8, "{} anchors", anchors.len());
    }
}

#[test]
fn coverage_maps_the_compact_text_back_to_old() {
    let old = bytes(13, 1 << 20);
    let (new, _) = planted(&old, 17, 80);
    let anchors = find_anchors(&old, &new);
    let cov = Coverage::new(&old, &anchors);
    assert!(
        !cov.is_whole(),
        "planted blocks should cover over 1/16 of OLD"
    );
    let text = cov.text(&old);
    let covered: Vec<bool> = {
        let mut c = vec![false; old.len()];
        for a in &anchors {
            c[a.old..a.old + a.len].fill(true);
        }
        c
    };
    assert_eq!(text.len(), covered.iter().filter(|&&c| !c).count());
    let mut last = None;
    for (k, &b) in text.iter().enumerate() {
        let o = cov.to_old(k);
        assert_eq!(b, old[o], "compact byte {k}");
        assert!(!covered[o], "compact byte {k} is a covered OLD byte");
        assert!(last.is_none_or(|l| o > l), "compact text out of OLD order");
        last = Some(o);
    }
    // Too little covered: the suffix array indexes OLD itself.
    assert!(Coverage::new(&old, &anchors[..1]).is_whole());
}

#[test]
fn diffs_over_a_compact_suffix_array_round_trip() {
    // OLD large enough that what anchors leave of it is cut into two
    // suffix arrays.
    let old = bytes(21, 5 << 20);
    let (mut new, _) = planted(&old, 23, 150);
    // Also changed copies of OLD (seeds from the compact suffix array and
    // approximate extension across anchors).
    for k in 0..40usize {
        let at = (k * 48_611) % (old.len() - 9000);
        let mut b = old[at..at + 9000].to_vec();
        for j in (0..b.len()).step_by(61) {
            b[j] ^= 0x5a;
        }
        new.extend_from_slice(&b);
    }
    let cov = Coverage::new(&old, &find_anchors(&old, &new));
    assert!(!cov.is_whole());
    assert!(cov.text(&old).len() >= oxdelta_diff::sa::SPLIT_SA_FROM);
    let o = DiffOptions {
        codec: Codec::Zstd(3),
        chunk_len: Some(1 << 20),
        ..DiffOptions::default()
    };
    let run = |threads: usize| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(|| {
                let out = oxdelta_diff::sa::diff(&old, &new, &o);
                out.assemble(None)
            })
    };
    let p = run(2);
    let got = apply_bytes(&old, &p, &ApplyOptions::default()).expect("own patch applies");
    assert!(got == new, "round trip differs");
    assert!(p == run(1), "1 and 2 threads give different patches");
    // The changed copies cost diff bytes, not literals: the patch is far
    // smaller than the fresh bytes plus the changed copies' changes.
    assert!(p.len() < 200_000, "patch of {} bytes", p.len());
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// On small random inputs with shared pieces, anchors are exact,
    /// ordered and maximal, and sampling finds no false ones.
    #[test]
    fn anchors_are_exact_and_ordered(
        seed in 1u64..,
        pieces in proptest::collection::vec((0usize..4000, 0usize..3000, any::<bool>()), 1..12),
    ) {
        let old = bytes(seed, 8000);
        let mut new = Vec::new();
        for (at, len, fresh) in pieces {
            let at = at.min(old.len() - 1);
            let len = len.min(old.len() - at);
            if fresh {
                new.extend(bytes(seed ^ at as u64, len));
            } else {
                new.extend_from_slice(&old[at..at + len]);
            }
        }
        let anchors = find_anchors(&old, &new);
        check_anchors(&old, &new, &anchors);
        prop_assert!(anchors.iter().all(|a| a.len >= WINDOW));
    }
}
