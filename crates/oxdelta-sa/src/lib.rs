//! Suffix array over arbitrary bytes, and the longest-match query the
//! bsdiff-style differ is built on.
//!
//! # Design
//!
//! Construction is delegated to libsais (SA-IS, through the `libsais`
//! crate, OpenMP disabled): it takes any bytes, is the fastest published
//! suffix sorter, and needs no working memory beyond the array itself. The
//! `suffix` crate only sorts `str` (not binary data) and is several times
//! slower; see `ARCHITECTURE.md` for measured figures. OpenMP is left off on
//! purpose: its spin-waiting threads stall badly when the machine is busy,
//! and the differ gets its parallelism from matching chunks of NEW instead.
//!
//! Multi-threaded construction is available behind the `openmp` cargo
//! feature ([`SuffixArray::with_threads`]); it is off by default because
//! libgomp's spinning workers collapse when the machine is busy: on a
//! 2-core machine at load 10, a 64 MiB build took 114.6 s with 2 OpenMP
//! threads against 10.2 s on one. With `OMP_WAIT_POLICY=passive` in the
//! environment the same build took 8.85 s on 2 threads (18.1 s on one in
//! that run), so builds with the feature should set it. A suffix array is
//! unique, so the thread count never changes the result.
//!
//! Indices are `u32`-sized (`i32`) for texts below 2 GiB and `i64` above.
//!
//! # Costs
//!
//! Measured with `benches/sa-compare` (2 cores, a busy machine, so seconds
//! are high): 64 MiB of a shared library in 17.9 s (divsufsort 34.4 s, the
//! `suffix` crate 115.7 s); 256 MiB of a disk image in 35.3 s (divsufsort
//! 47.6 s); peak memory 5.0 bytes per input byte, text included.
//!
//! * Construction: linear time; memory is the array itself — 4 bytes per
//!   input byte below 2 GiB, 8 above — plus a 256 KiB bucket table (the
//!   text is borrowed, so about 5 or 9 bytes per byte counting it).
//! * [`SuffixArray::longest_match`]: a bucket lookup on the first two bytes,
//!   then a binary search that never re-compares a prefix already known to
//!   match (the "mlr" trick): O(m + log n) byte comparisons for a pattern of
//!   length m, whatever the data (no quadratic case on runs or periods).
//!
//! # Example
//!
//! ```
//! let sa = oxdelta_sa::SuffixArray::new(b"banana");
//! let m = sa.longest_match(b"nanx");
//! assert_eq!((m.pos, m.len), (2, 3));
//! ```
#![deny(missing_docs)]

use libsais::SuffixArrayConstruction;

/// The result of a longest-match query.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    /// Start of the match in the text.
    pub pos: usize,
    /// Its length (0 when nothing matches).
    pub len: usize,
}

#[derive(Debug)]
enum Indices {
    I32(Vec<i32>),
    I64(Vec<i64>),
}

/// The suffix array of a borrowed text.
#[derive(Debug)]
pub struct SuffixArray<'t> {
    text: &'t [u8],
    sa: Indices,
    /// `bucket[k]` = first SA index whose suffix's first two bytes are >= k.
    bucket: Vec<u64>,
}

/// Largest text that uses 32-bit indices.
pub const MAX_I32_LEN: usize = i32::MAX as usize;

impl<'t> SuffixArray<'t> {
    /// Builds the suffix array of `text` on the calling thread.
    pub fn new(text: &'t [u8]) -> SuffixArray<'t> {
        SuffixArray::with_threads(text, 1)
    }

    /// Builds the suffix array of `text` with up to `threads` threads.
    ///
    /// Threads are used only when the crate is built with the `openmp`
    /// feature (libsais's OpenMP code); otherwise this is [`SuffixArray::new`].
    /// A suffix array is unique, so the result never depends on `threads`.
    pub fn with_threads(text: &'t [u8], threads: usize) -> SuffixArray<'t> {
        let sa = if text.len() <= MAX_I32_LEN {
            Indices::I32(build::<i32>(text, threads))
        } else {
            Indices::I64(build::<i64>(text, threads))
        };
        let bucket = bucket_table(text);
        SuffixArray { text, sa, bucket }
    }

    /// Builds with 64-bit indices whatever the length: the path texts of
    /// 2 GiB and more take, made testable on small inputs.
    #[doc(hidden)]
    pub fn new_wide(text: &'t [u8]) -> SuffixArray<'t> {
        let bucket = bucket_table(text);
        SuffixArray {
            text,
            sa: Indices::I64(build::<i64>(text, 1)),
            bucket,
        }
    }

    /// Builds from a precomputed array (for tests and oracles).
    ///
    /// # Panics
    /// When `sa` is not a permutation of `0..text.len()`; the order itself is
    /// trusted.
    pub fn from_raw(text: &'t [u8], sa: Vec<i64>) -> SuffixArray<'t> {
        assert_eq!(sa.len(), text.len());
        SuffixArray {
            text,
            sa: Indices::I64(sa),
            bucket: bucket_table(text),
        }
    }

    /// The text.
    pub fn text(&self) -> &'t [u8] {
        self.text
    }

    /// Number of suffixes (the text's length).
    pub fn len(&self) -> usize {
        self.text.len()
    }

    /// True for an empty text.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// Start of the `i`-th smallest suffix.
    #[inline]
    pub fn get(&self, i: usize) -> usize {
        match &self.sa {
            Indices::I32(v) => v[i] as usize,
            Indices::I64(v) => v[i] as usize,
        }
    }

    /// Bytes of heap this structure holds (the text is borrowed).
    pub fn heap_bytes(&self) -> usize {
        let sa = match &self.sa {
            Indices::I32(v) => v.capacity() * 4,
            Indices::I64(v) => v.capacity() * 8,
        };
        sa + self.bucket.capacity() * 8
    }

    /// The LCP array: `lcp[i]` is the length of the longest common prefix
    /// of the suffixes at ranks `i - 1` and `i` (`lcp[0] = 0`).
    ///
    /// Computed with the Φ method (Kärkkäinen, Manzini, Puglisi 2009): a
    /// permuted LCP in text order, where each value is at least the
    /// previous minus one, so the total comparison work is linear (at most
    /// 2n byte comparisons beyond the eight-at-a-time fast path). Memory:
    /// 8 bytes per input byte for the result plus 8 for the working array
    /// while it runs. The differ does not need it; it is here for tools and
    /// for measuring against other suffix-array crates.
    pub fn lcp(&self) -> Vec<u64> {
        let n = self.len();
        if n == 0 {
            return Vec::new();
        }
        // phi[p] = the suffix ranked just before suffix p (n for the first).
        let mut phi = vec![0u64; n];
        phi[self.get(0)] = n as u64;
        for i in 1..n {
            phi[self.get(i)] = self.get(i - 1) as u64;
        }
        // Overwrite phi with the permuted LCP, in text order.
        let mut h = 0usize;
        for (p, slot) in phi.iter_mut().enumerate() {
            let q = *slot as usize;
            if q == n {
                h = 0;
                *slot = 0;
                continue;
            }
            h += common_prefix(&self.text[p + h..], &self.text[q + h..]);
            *slot = h as u64;
            h = h.saturating_sub(1);
        }
        (0..n).map(|i| phi[self.get(i)]).collect()
    }

    /// The longest prefix of `pattern` that occurs in the text: its
    /// position and length. When several positions give the longest, any
    /// of them may be returned (deterministically for the same inputs).
    pub fn longest_match(&self, pattern: &[u8]) -> Match {
        let n = self.text.len();
        if n == 0 || pattern.is_empty() {
            return Match { pos: 0, len: 0 };
        }
        let (mut lo, mut hi) = if pattern.len() >= 2 {
            let k = (usize::from(pattern[0]) << 8) | usize::from(pattern[1]);
            (self.bucket[k] as usize, self.bucket[k + 1] as usize)
        } else {
            let k = usize::from(pattern[0]) << 8;
            (self.bucket[k] as usize, self.bucket[k + 256] as usize)
        };
        if lo == hi {
            // No suffix starts with these two bytes: try the first byte alone.
            let k = usize::from(pattern[0]) << 8;
            let (l1, h1) = (self.bucket[k] as usize, self.bucket[k + 256] as usize);
            if l1 == h1 {
                return Match { pos: 0, len: 0 };
            }
            return Match {
                pos: self.get(l1),
                len: 1,
            };
        }
        // Invariant: suffixes in [lo, hi) all share the bucket's prefix; we
        // look for the insertion point of `pattern`, keeping the common
        // prefix lengths with the suffixes at the bounds.
        let mut llcp = 0usize;
        let mut rlcp = 0usize;
        let (mut best_pos, mut best_len) = (self.get(lo), 0usize);
        hi -= 1;
        // Search over the closed interval [lo, hi].
        while lo <= hi {
            let mid = lo + (hi - lo) / 2;
            let p = self.get(mid);
            let skip = llcp.min(rlcp);
            let suf = &self.text[p..];
            let l = skip
                + common_prefix(
                    &suf[skip.min(suf.len())..],
                    &pattern[skip.min(pattern.len())..],
                );
            if l > best_len {
                best_len = l;
                best_pos = p;
                if l == pattern.len() {
                    break;
                }
            }
            // Compare the byte after the common prefix.
            let suffix_smaller = l == suf.len() || (l < pattern.len() && suf[l] < pattern[l]);
            if suffix_smaller {
                lo = mid + 1;
                llcp = l;
            } else {
                if mid == 0 {
                    break;
                }
                hi = mid - 1;
                rlcp = l;
            }
        }
        Match {
            pos: best_pos,
            len: best_len,
        }
    }
}

/// Length of the common prefix of `a` and `b`, eight bytes at a time.
#[inline]
pub fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut i = 0;
    while i + 8 <= n {
        let x = u64::from_le_bytes(a[i..i + 8].try_into().unwrap());
        let y = u64::from_le_bytes(b[i..i + 8].try_into().unwrap());
        let d = x ^ y;
        if d != 0 {
            return i + (d.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

trait Output: Copy {
    fn build(text: &[u8], threads: usize) -> Vec<Self>;
}

/// Runs a libsais construction single-threaded, or with `threads` OpenMP
/// threads when the `openmp` feature is on.
macro_rules! run_libsais {
    ($c:expr, $threads:expr) => {{
        #[cfg(feature = "openmp")]
        let r = {
            let t = u16::try_from($threads.max(1)).unwrap_or(u16::MAX);
            if t > 1 {
                $c.multi_threaded(libsais::ThreadCount::fixed(t)).run()
            } else {
                $c.single_threaded().run()
            }
        };
        #[cfg(not(feature = "openmp"))]
        let r = {
            let _ = $threads;
            $c.single_threaded().run()
        };
        r
    }};
}

impl Output for i32 {
    fn build(text: &[u8], threads: usize) -> Vec<i32> {
        let c = SuffixArrayConstruction::for_text(text).in_owned_buffer32();
        run_libsais!(c, threads)
            .expect("libsais accepts any text below 2 GiB")
            .into_vec()
    }
}

impl Output for i64 {
    fn build(text: &[u8], threads: usize) -> Vec<i64> {
        let c = SuffixArrayConstruction::for_text(text).in_owned_buffer64();
        run_libsais!(c, threads)
            .expect("libsais accepts any text with 64-bit indices")
            .into_vec()
    }
}

fn build<O: Output>(text: &[u8], threads: usize) -> Vec<O> {
    if text.is_empty() {
        return Vec::new();
    }
    O::build(text, threads)
}

/// Bucket starts by two-byte prefix. A one-byte suffix (the last byte) sorts
/// first among suffixes starting with its byte, so it is counted in the
/// `(byte, 0)` bucket.
fn bucket_table(text: &[u8]) -> Vec<u64> {
    let mut count = vec![0u64; 65537];
    for w in text.windows(2) {
        count[(usize::from(w[0]) << 8) | usize::from(w[1])] += 1;
    }
    if let Some(&last) = text.last() {
        count[usize::from(last) << 8] += 1;
    }
    let mut sum = 0u64;
    for c in count.iter_mut() {
        let v = *c;
        *c = sum;
        sum += v;
    }
    count
}

/// A naive suffix sort, O(n² log n): the oracle for tests.
pub fn naive_suffix_array(text: &[u8]) -> Vec<i64> {
    let mut v: Vec<i64> = (0..text.len() as i64).collect();
    v.sort_by(|&a, &b| text[a as usize..].cmp(&text[b as usize..]));
    v
}

/// A naive LCP array, O(n²): the oracle for tests.
pub fn naive_lcp(text: &[u8], sa: &[i64]) -> Vec<u64> {
    (0..sa.len())
        .map(|i| {
            if i == 0 {
                0
            } else {
                common_prefix(&text[sa[i - 1] as usize..], &text[sa[i] as usize..]) as u64
            }
        })
        .collect()
}
