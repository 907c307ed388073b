//! Integration tests: the suffix array against a naive sort, and the
//! longest-match query against brute force.

use oxdelta_sa::{SuffixArray, common_prefix, naive_lcp, naive_suffix_array};
use proptest::prelude::*;

fn sa_vec(sa: &SuffixArray<'_>) -> Vec<i64> {
    (0..sa.len()).map(|i| sa.get(i) as i64).collect()
}

fn brute_longest(text: &[u8], pat: &[u8]) -> usize {
    (0..text.len())
        .map(|p| common_prefix(&text[p..], pat))
        .max()
        .unwrap_or(0)
}

fn check(text: &[u8]) {
    let sa = SuffixArray::new(text);
    let want = naive_suffix_array(text);
    assert_eq!(sa_vec(&sa), want, "text {:?}", &text[..text.len().min(32)]);
    assert_eq!(sa.lcp(), naive_lcp(text, &want));
}

fn check_queries(text: &[u8], patterns: &[Vec<u8>]) {
    let sa = SuffixArray::new(text);
    for p in patterns {
        let m = sa.longest_match(p);
        let want = brute_longest(text, p);
        assert_eq!(m.len, want, "pattern {p:?}");
        if m.len > 0 {
            assert_eq!(&text[m.pos..m.pos + m.len], &p[..m.len]);
        }
    }
}

fn lcg(seed: u64, n: usize, alphabet: u8) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((x >> 33) % u64::from(alphabet)) as u8
        })
        .collect()
}

#[test]
fn boundary_lengths() {
    for n in [0usize, 1, 2, 3, 255, 256, 257, 1000] {
        check(&lcg(n as u64, n, 255));
        check(&vec![0u8; n]);
        check(&lcg(n as u64 + 7, n, 2));
    }
}

#[test]
fn large_boundary_lengths_against_divsufsort() {
    // Naive sorting is too slow here; divsufsort is the independent oracle.
    for n in [65535usize, 65536, 65537] {
        for text in [
            lcg(n as u64, n, 255),
            vec![0u8; n],
            (0..n).map(|i| (i % 7) as u8).collect(),
        ] {
            let sa = SuffixArray::new(&text);
            let mut want = vec![0i32; n];
            divsufsort::sort_in_place(&text, &mut want);
            let got: Vec<i32> = (0..n).map(|i| sa.get(i) as i32).collect();
            assert_eq!(got, want);
        }
    }
}

#[test]
fn periodic_and_runs() {
    let periodic: Vec<u8> = (0..5000).map(|i| [1u8, 2, 3][i % 3]).collect();
    check(&periodic);
    let mut runs = vec![0u8; 3000];
    runs.extend(std::iter::repeat_n(0xffu8, 3000));
    runs.extend(lcg(1, 100, 4));
    check(&runs);
    check_queries(
        &periodic,
        &[
            periodic[1..400].to_vec(),
            vec![1, 2, 3, 1, 2, 4],
            vec![3; 10],
        ],
    );
    check_queries(
        &runs,
        &[vec![0; 4000], vec![0xff; 10], vec![0, 0, 0xff, 0xff, 7]],
    );
}

#[test]
fn longest_match_edge_cases() {
    let sa = SuffixArray::new(b"");
    assert_eq!(sa.longest_match(b"abc").len, 0);
    let sa = SuffixArray::new(b"a");
    assert_eq!(sa.longest_match(b"a").len, 1);
    assert_eq!(sa.longest_match(b"ab").len, 1);
    assert_eq!(sa.longest_match(b"b").len, 0);
    let sa = SuffixArray::new(b"abcab");
    assert_eq!(sa.longest_match(b"").len, 0);
    assert_eq!(sa.longest_match(b"bz").len, 1);
    assert_eq!(sa.longest_match(b"cabd").len, 3);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn sa_matches_naive(text in prop::collection::vec(any::<u8>(), 0..600)) {
        check(&text);
    }

    #[test]
    fn sa_matches_naive_small_alphabet(text in prop::collection::vec(0u8..3, 0..600)) {
        check(&text);
    }

    #[test]
    fn longest_match_matches_brute_force(
        text in prop::collection::vec(0u8..4, 0..400),
        pats in prop::collection::vec(prop::collection::vec(0u8..4, 0..40), 1..20),
    ) {
        check_queries(&text, &pats);
    }

    #[test]
    fn longest_match_on_substrings(text in prop::collection::vec(any::<u8>(), 1..400), a in 0usize..400, l in 0usize..50) {
        let a = a % text.len();
        let mut pat = text[a..(a + l).min(text.len())].to_vec();
        pat.push(0x5a);
        check_queries(&text, &[pat]);
    }
}

/// The 64-bit index path (texts of 2 GiB and more) and multi-threaded
/// construction give the same array and the same query answers as the
/// default build.
#[test]
fn wide_indices_and_threads_agree_with_the_default_build() {
    for (seed, n, alphabet) in [(1u64, 5000usize, 255u8), (2, 20_000, 2), (3, 300_000, 4)] {
        let text = lcg(seed, n, alphabet);
        let base = SuffixArray::new(&text);
        let wide = SuffixArray::new_wide(&text);
        let threaded = SuffixArray::with_threads(&text, 2);
        assert_eq!(sa_vec(&wide), sa_vec(&base));
        assert_eq!(sa_vec(&threaded), sa_vec(&base));
        assert_eq!(wide.lcp(), base.lcp());
        for start in [0, n / 3, n - 40] {
            let pat = &text[start..start + 32];
            assert_eq!(wide.longest_match(pat), base.longest_match(pat));
        }
    }
    let zeros = vec![0u8; 100_000];
    assert_eq!(
        sa_vec(&SuffixArray::new_wide(&zeros)),
        naive_suffix_array(&zeros)
    );
}
