//! The diff stream's search: every variant (ADD mode and order) in every
//! run layout, ranked by compressed size.

use std::borrow::Cow;

use oxdelta_format::filter::FilterSink;
use oxdelta_format::{AddMode, Codec, DiffFilter, Streams};
use rayon::prelude::*;

use super::Coder;

/// Makes the diff stream of a chunk's ops in another add mode and order
/// (`true`: the operand split's) on demand, passing it in consecutive
/// pieces to the callback.
pub(super) type DiffVariant<'a> = &'a (dyn Fn(AddMode, bool, &mut dyn FnMut(&[u8])) + Sync);

/// One diff-stream variant: ADD mode and operand split order.
type Variant = (AddMode, bool);

/// A diff stream's chosen coding: add mode, layout, the filtered (raw)
/// length and the compressed bytes.
pub(super) struct DiffLayout {
    pub(super) add: AddMode,
    pub(super) split: bool,
    pub(super) filter: DiffFilter,
    pub(super) filtered_len: usize,
    pub(super) stored: Vec<u8>,
}

impl DiffLayout {
    fn plain(streams: &Streams) -> DiffLayout {
        DiffLayout {
            add: streams.add,
            split: streams.split,
            filter: DiffFilter::None,
            filtered_len: streams.diff.len(),
            stored: Vec::new(),
        }
    }

    /// Tries the diff stream in each add mode and order, each in each run
    /// layout, and as is when its bytes are dense or few (compressing long
    /// zero runs as is costs the most time: zstd 19 is ~30 times slower on
    /// a sparse diff stream than on its run layout), and keeps the smallest.
    ///
    /// Candidates are ranked with a fast level of the codec (zstd 3) and
    /// only the best, and the runner-up when within 1% of it, are
    /// compressed at the codec's own level: on the corpus pairs the
    /// layouts and modes differ by 5–50%, and a strong level costs ~20× a
    /// fast one. (Keeping every candidate within 3% gave the same patches
    /// on exe-go and exe-rust, 10% slower; on exe-rust a runner-up does
    /// win.) Variants are made block by block, one at a time: one pass
    /// records a variant's runs, from which both run layouts are written
    /// and ranked, then dropped; a variant is held as is only when the
    /// unfiltered layout is tried; the finalists are made again. So the
    /// extra memory is one variant's runs and one candidate (at most about
    /// twice the diff stream) per worker thread, not all of them: the
    /// variants are ranked, and the two finalists compressed, side by
    /// side.
    pub(super) fn best(
        coder: Coder,
        streams: &Streams,
        alternatives: &[Variant],
        make: DiffVariant<'_>,
    ) -> DiffLayout {
        if streams.diff.is_empty() {
            return DiffLayout::plain(streams);
        }
        let mut variants = vec![(streams.add, streams.split)];
        for &v in alternatives {
            if !variants.contains(&v) {
                variants.push(v);
            }
        }
        let s = Search {
            coder,
            streams,
            make,
        };
        match coder {
            Coder::Codec(Codec::Zstd(level)) if level > 3 => s.ranked(Codec::Zstd(3), &variants),
            Coder::FastZstd => s.ranked(Codec::Zstd(3), &variants),
            _ => s.serial(&variants),
        }
    }
}

/// One chunk's diff-stream search.
struct Search<'a> {
    coder: Coder,
    streams: &'a Streams,
    make: DiffVariant<'a>,
}

impl Search<'_> {
    /// Variant `v` pushed through a sink for `filter`: the chunk's own diff
    /// stream directly, the others through `make`.
    fn sink(&self, v: Variant, filter: DiffFilter) -> FilterSink {
        let mut sink = FilterSink::new(filter);
        if v == (self.streams.add, self.streams.split) {
            sink.push_slice(&self.streams.diff);
        } else {
            (self.make)(v.0, v.1, &mut |piece| sink.push_slice(piece));
        }
        sink
    }

    /// Variant `v` in layout `filter`.
    fn filtered(&self, v: Variant, filter: DiffFilter) -> Cow<'_, [u8]> {
        if v == (self.streams.add, self.streams.split) && filter == DiffFilter::None {
            Cow::Borrowed(&self.streams.diff)
        } else {
            Cow::Owned(self.sink(v, filter).finish())
        }
    }

    /// The layouts of variant `v`, in a fixed order: both run layouts from
    /// one pass over it, then the stream as is only when dense, or small
    /// enough that trying costs little (tiny streams also pay the filters'
    /// run lengths with nothing to win back).
    fn layouts(&self, v: Variant, f: &mut dyn FnMut(DiffFilter, &[u8])) {
        let n = self.streams.diff.len();
        let mut runs = self.sink(v, DiffFilter::Runs);
        let nonzero = runs.counts().1;
        for filter in [DiffFilter::Tokens, DiffFilter::Runs] {
            f(filter, &runs.layout(filter));
        }
        drop(runs);
        if nonzero * 4 >= n || n <= 64 << 10 {
            f(DiffFilter::None, &self.filtered(v, DiffFilter::None));
        }
    }

    fn compress(&self, v: Variant, filter: DiffFilter, filtered: &[u8]) -> DiffLayout {
        DiffLayout {
            add: v.0,
            split: v.1,
            filter,
            filtered_len: filtered.len(),
            stored: self.coder.compress(filtered),
        }
    }

    /// Every candidate at the codec's own level, one at a time; the
    /// smallest (the first of equals) kept.
    fn serial(&self, variants: &[Variant]) -> DiffLayout {
        let mut best: Option<DiffLayout> = None;
        for &v in variants {
            self.layouts(v, &mut |filter, bytes| {
                let c = self.compress(v, filter, bytes);
                if best
                    .as_ref()
                    .is_none_or(|b| c.stored.len() < b.stored.len())
                {
                    best = Some(c);
                }
            });
        }
        best.expect("at least one candidate")
    }

    /// Every candidate ranked by `quick`, the variants side by side
    /// (collected in variant order, so the ranking does not depend on the
    /// threads); the best, and the runner-up within 1% of it, compressed
    /// at the codec's own level side by side.
    fn ranked(&self, quick: Codec, variants: &[Variant]) -> DiffLayout {
        let mut ranked: Vec<(usize, Variant, DiffFilter)> = variants
            .par_iter()
            .flat_map_iter(|&v| {
                let mut out = Vec::new();
                self.layouts(v, &mut |filter, bytes| {
                    out.push((quick.compress(bytes).len(), v, filter))
                });
                out
            })
            .collect();
        ranked.sort_by_key(|r| r.0);
        let min = ranked.first().map_or(0, |r| r.0);
        let finalists: Vec<_> = ranked
            .iter()
            .take(2)
            .filter(|r| r.0 * 100 <= min * 101)
            .collect();
        let finish = |&&(_, v, filter): &&(usize, Variant, DiffFilter)| {
            self.compress(v, filter, &self.filtered(v, filter))
        };
        let (first, second) = match finalists.as_slice() {
            [a] => (finish(a), None),
            [a, b] => {
                let (a, b) = rayon::join(|| finish(a), || finish(b));
                (a, Some(b))
            }
            _ => unreachable!("at least one candidate"),
        };
        // The first of equals, as in a serial pass.
        match second {
            Some(b) if b.stored.len() < first.stored.len() => b,
            _ => first,
        }
    }
}
