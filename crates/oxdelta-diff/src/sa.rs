//! The in-memory engine: a bsdiff-style matcher over a suffix array of OLD.
//!
//! # Matching
//!
//! For each chunk of NEW the scanner walks forward keeping a current
//! *alignment* (NEW position ↦ OLD position, stored as the offset
//! `old − new`). While bytes agree under it, it skips the whole agreeing run
//! at once. At a disagreement it first checks whether the alignment still
//! explains the next eight bytes (a changed pointer or constant in otherwise
//! identical code); only if not does it query the suffix array for the
//! longest match there. It adopts the match's alignment — a *seed* — when
//! the match is at least [`MatchParams::min_seed`] long and beats the bytes
//! the current alignment gets right over the same stretch by
//! [`MatchParams::seed_margin`] (bsdiff's rule). A match is always skipped in
//! full, so runs and periodic data cost no more than other data: no input
//! makes the scan quadratic.
//!
//! An agreeing run of `min_seed` bytes after differences *re-anchors* the
//! current alignment (a seed at the same offset), and consecutive seeds of
//! one alignment are joined into one region when the gap between them is
//! short ([`MatchParams::join_gap`]) or at least half agreeing. So a long
//! changed stretch inside otherwise unmoved data becomes literal bytes
//! without ending the alignment, while scattered pointer changes stay
//! inside one ADD.
//!
//! A joined seed then takes the alignment of its neighbour when that one
//! explains its stretch at least as well (`realign_seeds`): the scan left
//! an alignment on one coincidental exact match, which in a table of
//! shifted addresses it could not return from.
//!
//! Between consecutive seeds, bsdiff's approximate extension decides where
//! one alignment's region ends and the next one's begins (extending
//! backwards); what neither covers becomes literal bytes. The extension
//! keeps a prefix while `ext_num·agreeing − ext_den·length` grows, which
//! with the defaults (2, 1) is bsdiff's "at least half the bytes agree".
//!
//! # Emission
//!
//! Each region is then cut by cost, not just by alignment:
//! * stretches of [`MatchParams::copy_split`] agreeing bytes become COPY
//!   (no diff bytes at all), the rest ADD (by default no stretch is long
//!   enough: a region is one ADD, whose zero runs the diff stream's run
//!   layout codes for less than the two ops a cut costs);
//! * zero runs in NEW of [`MatchParams::zero_run`] bytes become ZERO, inside
//!   or outside regions;
//! * dense clusters of disagreeing bytes (mismatches less than
//!   [`MatchParams::cluster_gap`] apart, spanning at least
//!   [`MatchParams::lit_split`] bytes) become INSERT: changed text or code
//!   compresses better as literals than as noise in the diff stream.
//!
//! # Tuning per chunk
//!
//! [`diff`] and [`match_chunk`] pick [`MatchParams`] per chunk of NEW with
//! [`MatchParams::for_data`]: text gets longer seeds and literal clusters,
//! code keeps bsdiff's settings (see there for the measured reason).
//!
//! # Patch size, and what limits it
//!
//! On executables nearly all of NEW is ADD, and the patch is the
//! compressed diff stream: runs of zero bytes between sparse changed bytes
//! (relocated addresses). zstd codes these about 15% larger than bzip2 or
//! xz do (zstd has no one-byte repeat match, LZMA and BWT do), so with the
//! zstd codec this engine matches bsdiff's matching but not its size on
//! such pairs. `examples/diffstat.rs` prints where a patch's bytes go.
//!
//! Per chunk the OLD ranges read are coalesced to at most
//! [`MAX_RANGES`]: each costs 16 bytes of uncompressed head.
//!
//! # Anchors first, then a smaller suffix array
//!
//! Before the suffix array is built, [`crate::anchor`] finds long exact
//! matches (anchors, at least 64 bytes) by sampled hashing, and the suffix
//! array indexes only the OLD bytes no anchor reads ([`OldIndex`]). The
//! scan takes an anchor where one covers its position instead of querying
//! the suffix array; other queries go to the smaller array, their positions
//! mapped back to OLD. What is lost is a seed in NEW's changed stretches
//! that only an anchored OLD stretch held (repeated text). On the corpus
//! the suffix array indexes 28–67% of OLD; in alternating runs of the
//! first version (load 2–3) exe-go took 0.50 s against 0.83 and tar-src
//! 1.50 s against 3.33, and patches changed by −1.0% (exe-go) to +1.6%
//! (tar-src).
//!
//! # Local alignments before far seeds
//!
//! An edit that changes a length (a renamed identifier, a changed string)
//! shifts the alignment by a few bytes. The longest match after it is often
//! elsewhere in OLD (boilerplate repeats), and taking it makes the ops jump
//! far away and back: each jump costs an OLD offset of several bytes in the
//! control stream. So before adopting a seed whose alignment is more than
//! [`MatchParams::local_shift`] bytes from the current one, the scan tries
//! every alignment within that distance over the seed's stretch, and keeps
//! the nearest one that agrees with all but [`MatchParams::local_margin`]
//! bytes of it (at most an eighth) instead. Only alignments that agree on
//! eight bytes at one of three probe points are scored, so a seed costs at
//! most `2·local_shift + 1` probes and a few full scores. On a generated
//! source tarball nobody tuned on (windows-sys 0.45 → 0.48) the patch fell
//! from 278,813 to 164,890 B (with text tuning and a suffix array).
//!
//! # Text
//!
//! Text gets a suffix array like any data (an earlier rule left it out
//! when every chunk was text, which a heavily refactored source tarball
//! paid for with a patch 39% larger), longer seeds (48 bytes: a short far
//! match of text saves fewer compressed bytes than its offset costs) and a
//! wider local search. The suite table in `docs/NOTES.md` (2026-12-07
//! session) shows the choice on every pair.
//!
//! # Costs
//!
//! Time: linear in NEW for scanning, extension and emission, plus one
//! suffix-array query (O(m + log n) for a match of length m) per
//! disagreement the current alignment cannot explain. Memory: the suffix
//! array (4 bytes per indexed OLD byte below 2 GiB, plus a copy of those
//! bytes when anchors leave out over a sixteenth of OLD; the anchor table,
//! OLD's length / 2 bytes, is freed before the array is built) plus, per chunk in flight, its
//! ops and streams (at most about twice the chunk's NEW length) and the
//! codec's context (about 6 MiB for zstd at level 16 and up, whose tables
//! `oxdelta_format::codec` bounds). OLD and NEW themselves are borrowed
//! (the facade maps them). Measured peak on the corpus: under 6 bytes per
//! OLD byte plus NEW (`benches/compare`).

use oxdelta_format::progress::Phase;
use oxdelta_format::{ChunkEncoder, Engine, Metadata, Op};
use oxdelta_sa::{Match, SuffixArray, common_prefix};
use rayon::prelude::*;

use crate::anchor::{Anchor, Coverage, find_anchors};
use crate::{DiffOptions, DiffOutput, chunk_ranges, default_chunk_len, hash};
use oxdelta_format::limits::BlockLimits;

/// OLD ranges declared per chunk: fewer, wider ranges keep the head small.
pub const MAX_RANGES: usize = 16;

/// The shared section's block limits for [`diff`]'s patches: format
/// version 10's, so a big NEW of text shares its streams too (a section
/// within version 5's limits is still written in the version it needs).
const SHARED_BLOCKS: BlockLimits = BlockLimits::WIDE;

/// Longest pattern handed to the suffix array in one query.
const MAX_QUERY: usize = 1 << 16;

/// Tuning of [`match_chunk_with`]. [`MatchParams::default`] is what
/// [`diff`] and [`match_chunk`] use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatchParams {
    /// Shortest exact match that can start a new alignment.
    pub min_seed: usize,
    /// How many more bytes a match must explain than the current alignment
    /// to replace it.
    pub seed_margin: usize,
    /// Extension keeps a prefix while `ext_num·agreeing − ext_den·length` grows.
    pub ext_num: isize,
    /// See [`MatchParams::ext_num`].
    pub ext_den: isize,
    /// Gaps up to this long between two seeds of one alignment are joined.
    pub join_gap: usize,
    /// Agreeing bytes in a row that become a COPY inside a region
    /// (`usize::MAX`, the default: none do). A cut costs two ops in the
    /// control stream, while the run inside an ADD costs one zero-run
    /// length in the diff stream's run layout
    /// ([`oxdelta_format::filter::DiffFilter`]), so a cut does not pay.
    pub copy_split: usize,
    /// Zero bytes in a row in NEW that become a ZERO op.
    pub zero_run: usize,
    /// Mismatches at most this far apart belong to one cluster.
    pub cluster_gap: usize,
    /// A mismatch cluster at least this long becomes INSERT.
    pub lit_split: usize,
    /// Alignments within this many bytes of the current one are *local*:
    /// a far seed is not adopted when a local alignment explains its
    /// stretch within [`MatchParams::local_margin`] bytes (0: off).
    pub local_shift: usize,
    /// See [`MatchParams::local_shift`].
    pub local_margin: usize,
}

impl Default for MatchParams {
    fn default() -> MatchParams {
        MatchParams {
            min_seed: 9,
            seed_margin: 8,
            ext_num: 2,
            ext_den: 1,
            join_gap: 32,
            copy_split: usize::MAX,
            zero_run: 64,
            cluster_gap: 4,
            lit_split: 1 << 16,
            local_shift: 16,
            local_margin: 8,
        }
    }
}

impl MatchParams {
    /// Tuning for NEW data like `data`: text or code.
    ///
    /// Every op costs a few control bytes, and what it saves is the
    /// literal bytes it replaces, which cost what they compress to. Text
    /// (source, configuration, documents) compresses several times better
    /// than machine code, so there short matches are a loss: text gets
    /// longer seeds (48 bytes) and turns changed stretches of 24 bytes or
    /// more into literals rather than diff bytes. Everything else keeps
    /// bsdiff's settings. Data counts as text when at least 95% of its
    /// non-zero bytes are printable ASCII or whitespace (zeros are ignored:
    /// archives pad with them). On the corpus this tells the source tarball
    /// (13% smaller patch) from executables and shared libraries, whose
    /// patches grow by up to half with text settings — which is why the
    /// test is on content, not on compressibility: large libraries hold
    /// highly compressible tables of code and relocations.
    pub fn for_data(data: &[u8]) -> MatchParams {
        let mut hist = [0u64; 256];
        for &b in data {
            hist[usize::from(b)] += 1;
        }
        let nonzero: u64 = hist[1..].iter().sum();
        let text: u64 = hist[0x20..0x7f].iter().sum::<u64>()
            + hist[usize::from(b'\t')]
            + hist[usize::from(b'\n')]
            + hist[usize::from(b'\r')];
        if nonzero >= 4096 && text * 100 >= nonzero * 95 {
            MatchParams::text()
        } else {
            MatchParams::default()
        }
    }

    /// The tuning [`MatchParams::for_data`] gives text.
    pub fn text() -> MatchParams {
        MatchParams {
            min_seed: 48,
            cluster_gap: 8,
            lit_split: 24,
            local_shift: 64,
            ..MatchParams::default()
        }
    }
}

/// Diffs `old` and `new` entirely in memory.
pub fn diff(old: &[u8], new: &[u8], opts: &DiffOptions) -> DiffOutput {
    diff_with(old, new, opts, None)
}

/// [`diff`] with explicit matcher tuning; `None` picks it per chunk with
/// [`MatchParams::for_data`].
pub fn diff_with(
    old: &[u8],
    new: &[u8],
    opts: &DiffOptions,
    params: Option<&MatchParams>,
) -> DiffOutput {
    let (chunks, old_hash, new_hash) = with_index(old, new, opts, params, |index, prep| {
        let progress = &opts.progress;
        progress.start(Phase::Matching, new.len() as u64);
        // A chunk whose streams fit the shared section's blocks defers its
        // control and literal streams' final compression to the section
        // (decided per chunk, so the same whatever the threads); the
        // section takes the first chunks whose streams fit together.
        let share_max = SHARED_BLOCKS;
        let chunks: Vec<_> = prep
            .ranges
            .into_par_iter()
            .zip(prep.tuning)
            .map(|(r, p)| {
                let (s, e) = (r.start as usize, r.end as usize);
                let ops = match_chunk_indexed(index, new, s, e, &p);
                let mut enc = ChunkEncoder::new(old, new, r.start);
                for op in ops {
                    enc.push(op);
                }
                let chunk = crate::encode::encode_sharing(enc, opts.codec, MAX_RANGES, share_max);
                progress.advance((e - s) as u64);
                chunk
            })
            .collect();
        (chunks, prep.old_hash, prep.new_hash)
    });
    // Small patches: the chunks' control and literal streams compressed
    // together, with OLD context (see `oxdelta_format::shared`). The index
    // is dropped by now, before the section's coders take their memory
    // (LZMA2's dictionary spans the section's context).
    let (mut chunks, probed): (Vec<_>, Vec<_>) = chunks.into_iter().unzip();
    let shared =
        crate::encode::share::finish_sharing(old, &mut chunks, probed, opts.codec, SHARED_BLOCKS);
    DiffOutput {
        meta: Metadata {
            old_len: old.len() as u64,
            old_hash,
            new_len: new.len() as u64,
            new_hash,
            engine: Engine::SuffixArray,
            flags: 0,
        },
        chunks,
        shared,
    }
}

/// What [`with_index`] hands its caller beside the index: NEW's chunks
/// (by [`DiffOptions::chunk_len`]), each chunk's tuning, and the
/// whole-file hashes.
pub(crate) struct Prepared {
    pub ranges: Vec<std::ops::Range<u64>>,
    pub tuning: Vec<MatchParams>,
    pub old_hash: [u8; 32],
    pub new_hash: [u8; 32],
}

/// Builds the index [`diff`] matches through — anchors, the suffix arrays
/// of what they leave of OLD, the gram filter — with the hashes and each
/// chunk's tuning beside it (`params`, or [`MatchParams::for_data`]), and
/// calls `f` with it. Reports [`Phase::Indexing`]. The in-place differ
/// matches through the same index, so its ops are those of a normal patch
/// before its ordering. Memory: as [`diff`]'s index, held until `f`
/// returns.
pub(crate) fn with_index<R>(
    old: &[u8],
    new: &[u8],
    opts: &DiffOptions,
    params: Option<&MatchParams>,
    f: impl FnOnce(&OldIndex<'_>, Prepared) -> R,
) -> R {
    let progress = &opts.progress;
    progress.start(Phase::Indexing, old.len() as u64);
    let chunk_len = opts
        .chunk_len
        .unwrap_or_else(|| default_chunk_len(new.len() as u64));
    let ranges = chunk_ranges(new.len() as u64, chunk_len);
    // Each chunk's tuning (a byte histogram of NEW) is read beside the
    // anchors and the hashes, off the serial path.
    let (anchors, ((old_hash, new_hash), tuning)) = rayon::join(
        || find_anchors(old, new),
        || {
            rayon::join(
                || rayon::join(|| hash(old), || hash(new)),
                || -> Vec<MatchParams> {
                    ranges
                        .par_iter()
                        .map(|r| {
                            params.copied().unwrap_or_else(|| {
                                MatchParams::for_data(&new[r.start as usize..r.end as usize])
                            })
                        })
                        .collect()
                },
            )
        },
    );
    // The suffix array indexes only what the anchors leave of OLD.
    let coverage = Coverage::new(old, &anchors);
    let compact = if coverage.is_whole() {
        Vec::new()
    } else {
        coverage.text(old)
    };
    let text: &[u8] = if coverage.is_whole() { old } else { &compact };
    let long = tuning.iter().any(|p| p.min_seed >= LONG_GRAM);
    let (parts, grams) = rayon::join(|| build_parts(text), || GramFilter::new(text, long));
    let grams = Some(grams);
    let sas: Vec<(usize, &SuffixArray<'_>)> = parts.iter().map(|(s, sa)| (*s, sa)).collect();
    let index = OldIndex {
        old,
        sas: &sas,
        coverage: &coverage,
        anchors: &anchors,
        grams: grams.as_ref(),
    };
    progress.advance(old.len() as u64);
    f(
        &index,
        Prepared {
            ranges,
            tuning,
            old_hash,
            new_hash,
        },
    )
}

/// A point where the scanner adopted a new alignment.
#[derive(Clone, Copy, Debug)]
struct Seed {
    new: usize,
    /// OLD position minus NEW position.
    off: isize,
    /// Length of the exact match that started it.
    len: usize,
}

/// Matches `new[start..end]` against the suffix array of OLD and returns
/// the ops that produce it; OLD positions are absolute in `sa.text()`.
/// Tuning is [`MatchParams::for_data`] of that range.
pub fn match_chunk(sa: &SuffixArray<'_>, new: &[u8], start: usize, end: usize) -> Vec<Op> {
    let p = MatchParams::for_data(&new[start..end]);
    match_chunk_with(sa, new, start, end, &p)
}

/// [`match_chunk`] with explicit tuning.
pub fn match_chunk_with(
    sa: &SuffixArray<'_>,
    new: &[u8],
    start: usize,
    end: usize,
    p: &MatchParams,
) -> Vec<Op> {
    match_chunk_filtered(sa, None, new, start, end, p)
}

/// [`match_chunk_with`], skipping suffix-array lookups that `grams` (built
/// from the same OLD) shows cannot start a seed. The ops are the same as
/// without the filter.
pub fn match_chunk_filtered(
    sa: &SuffixArray<'_>,
    grams: Option<&GramFilter>,
    new: &[u8],
    start: usize,
    end: usize,
    p: &MatchParams,
) -> Vec<Op> {
    let index = OldIndex {
        old: sa.text(),
        sas: &[(0, sa)],
        coverage: &Coverage::default(),
        anchors: &[],
        grams,
    };
    match_chunk_indexed(&index, new, start, end, p)
}

/// Texts from this long get two suffix arrays, of their two halves.
///
/// libsais builds one array on one thread (its OpenMP build does not help
/// on 2 cores, see `oxdelta-sa`), and construction is the serial step
/// between the anchor pass and the parallel matching. Two halves build
/// side by side in about half the time (measured on 2 cores: 9.2 MB of
/// exe-rust in 0.20–0.27 s against 0.40–0.45 s for one array; 18 MB in
/// 0.41–0.44 s against 0.89–0.95 s), and a lookup then searches both, which
/// costs a second binary search; matches across the middle are lost. The
/// cut depends on the text alone, never on the thread count.
pub const SPLIT_SA_FROM: usize = 2 << 20;

/// The suffix arrays of `text`, with where each part starts: one, or two
/// halves built in parallel (see [`SPLIT_SA_FROM`]).
fn build_parts(text: &[u8]) -> Vec<(usize, SuffixArray<'_>)> {
    if text.len() < SPLIT_SA_FROM {
        return vec![(0, SuffixArray::new(text))];
    }
    let h = text.len() / 2;
    let (a, b) = rayon::join(
        || SuffixArray::new(&text[..h]),
        || SuffixArray::new(&text[h..]),
    );
    vec![(0, a), (h, b)]
}

/// What the matcher looks OLD up in: [`Anchor`]s first, then the suffix
/// arrays (of OLD, or of what the anchors leave of it, see [`Coverage`]),
/// skipping lookups the [`GramFilter`] rules out.
#[derive(Clone, Copy, Debug)]
pub struct OldIndex<'a> {
    /// OLD itself.
    pub old: &'a [u8],
    /// Suffix arrays of consecutive parts of `coverage`'s text, with the
    /// offset where each part starts.
    pub sas: &'a [(usize, &'a SuffixArray<'a>)],
    /// Which OLD bytes `sas` index.
    pub coverage: &'a Coverage,
    /// Long exact matches, sorted by NEW position.
    pub anchors: &'a [Anchor],
    /// Built over `coverage`'s text.
    pub grams: Option<&'a GramFilter>,
}

impl OldIndex<'_> {
    /// The match the seed search considers at NEW position `i` (patterns
    /// end at `end`): the anchor covering `i` when there is one, else the
    /// longest match of the suffix arrays (the first part's on a tie), its
    /// position in OLD and its length measured on OLD itself (a match in
    /// the compact text may run across the join of two segments, and one
    /// in a part may go on past the part's end). `next` is the first anchor that may
    /// cover `i`, advanced as `i` grows.
    #[inline]
    fn lookup(&self, new: &[u8], i: usize, end: usize, gram: usize, next: &mut usize) -> Match {
        let q = &new[i..end.min(i + MAX_QUERY)];
        while self.anchors.get(*next).is_some_and(|a| a.new + a.len <= i) {
            *next += 1;
        }
        if let Some(a) = self.anchors.get(*next).filter(|a| a.new <= i) {
            let pos = a.old + (i - a.new);
            return Match {
                pos,
                len: common_prefix(&self.old[pos..], q),
            };
        }
        if let Some(g) = self.grams {
            // The long filter first: where it applies (text) it rules
            // out most lookups, and the 8-gram filter few of the rest.
            let absent =
                (gram >= LONG_GRAM && i + LONG_GRAM <= end && !g.may_contain_long(&new[i..]))
                    || (gram >= GRAM && i + GRAM <= end && !g.may_contain(&new[i..]));
            if absent {
                return Match { pos: 0, len: 0 };
            }
        }
        let mut best = Match { pos: 0, len: 0 };
        for &(start, sa) in self.sas {
            let m = sa.longest_match(q);
            if m.len > best.len {
                best = Match {
                    pos: start + m.pos,
                    len: m.len,
                };
            }
        }
        if best.len == 0 || (self.sas.len() == 1 && self.coverage.is_whole()) {
            return best;
        }
        let pos = self.coverage.to_old(best.pos);
        Match {
            pos,
            len: common_prefix(&self.old[pos..], q),
        }
    }
}

/// [`match_chunk_with`] through an [`OldIndex`].
pub fn match_chunk_indexed(
    index: &OldIndex<'_>,
    new: &[u8],
    start: usize,
    end: usize,
    p: &MatchParams,
) -> Vec<Op> {
    let mut ops = Vec::new();
    match_into(index, new, start, end, p, &mut |op| ops.push(op));
    ops
}

/// [`match_chunk_indexed`], handing each op to `sink` in NEW order instead
/// of collecting them (the streaming engine feeds its chunk encoder so).
/// Memory: the seeds of `[start, end)`, at most 24 bytes per
/// [`MatchParams::min_seed`] NEW bytes, twice over while they are joined.
pub fn match_into(
    index: &OldIndex<'_>,
    new: &[u8],
    start: usize,
    end: usize,
    p: &MatchParams,
    sink: &mut dyn FnMut(Op),
) {
    let old = index.old;
    let seeds = join_seeds(old, new, find_seeds(index, new, start, end, p), p);
    let seeds = join_seeds(old, new, realign_seeds(old, new, seeds), p);
    let mut out = Emitter {
        old,
        new,
        p,
        ops: sink,
    };
    // `pos` is the first NEW byte not yet given an op.
    let mut pos = start;
    for (k, seed) in seeds.iter().enumerate() {
        let next_new = seeds.get(k + 1).map_or(end, |s| s.new);
        let back = extend_back(old, new, pos, seed.new, seed.off, p);
        let add_start = seed.new - back;
        out.literal(pos, add_start);
        let exact_end = seed.new + seed.len;
        let fwd_end = if exact_end >= next_new {
            next_new
        } else {
            let fwd = extend_fwd(old, new, exact_end, next_new, seed.off, p);
            // The next seed may also extend backwards into this gap: split
            // where the two alignments' agreeing bytes favour each.
            match seeds.get(k + 1) {
                Some(n) => {
                    let nb = extend_back(old, new, exact_end, n.new, n.off, p);
                    let (a_end, b_start) = (exact_end + fwd, n.new - nb);
                    if a_end > b_start {
                        best_split(old, new, b_start, a_end, seed.off, n.off)
                    } else {
                        a_end
                    }
                }
                None => exact_end + fwd,
            }
        };
        out.region(add_start, fwd_end, seed.off);
        pos = fwd_end;
    }
    out.literal(pos, end);
}

#[inline]
fn old_at(off: isize, i: usize) -> usize {
    (i as isize + off) as usize
}

#[inline]
fn agrees(old: &[u8], new: &[u8], off: isize, i: usize) -> bool {
    let o = i as isize + off;
    o >= 0 && (o as usize) < old.len() && old[o as usize] == new[i]
}

/// The NEW range `[a, b)` clipped to where alignment `off` stays inside OLD.
fn clip(old: &[u8], a: usize, b: usize, off: isize) -> (usize, usize) {
    let lo = a.max((-off).max(0) as usize).min(b);
    let hi = b.min((old.len() as isize - off).max(0) as usize);
    (lo, hi.max(lo))
}

/// Agreeing bytes of alignment `off` over NEW `[a, b)`.
fn score(old: &[u8], new: &[u8], a: usize, b: usize, off: isize) -> usize {
    let (lo, hi) = clip(old, a, b, off);
    if lo >= hi {
        return 0;
    }
    new[lo..hi]
        .iter()
        .zip(&old[old_at(off, lo)..old_at(off, hi)])
        .filter(|(x, y)| x == y)
        .count()
}

/// Agreeing bytes in a row from NEW position `i` under `off`, up to `end`.
fn run_at(old: &[u8], new: &[u8], i: usize, end: usize, off: isize) -> usize {
    let (lo, hi) = clip(old, i, end, off);
    if lo != i || lo >= hi {
        return 0;
    }
    common_prefix(&old[old_at(off, lo)..old_at(off, hi)], &new[lo..hi])
}

/// Length of the strings a [`GramFilter`] records.
pub const GRAM: usize = 8;

/// Length of the long strings a [`GramFilter`] also records: text tuning
/// seeds at 48 bytes ([`MatchParams::text`]), and nearly every 8-byte
/// string of new text is somewhere in old text. A multiple of 8 (the
/// hash reads words).
pub const LONG_GRAM: usize = 48;

/// Bits the long filter sets per string, in one word.
pub const LONG_PROBES: u32 = 3;

/// Which [`GRAM`]-byte strings occur in OLD, approximately: a Bloom filter
/// with one hash and 4–8 bits per OLD byte (a power of two bits, so at most
/// OLD's length in bytes of memory; 12–22% of absent strings pass), or,
/// when the [`LONG_GRAM`] filter is built too, 2–4 bits per byte for each.
/// (OLD here is the text the suffix array indexes: with anchors it is
/// smaller than OLD, which left room for more bits. On exe-rust, 1–2 bits
/// per byte let 843,000 lookups through of which 600,000 found under 8
/// bytes; 4–8 bits let 445,000 through, and user CPU fell from 6.13 to
/// 5.06 s, exe-go's from 0.61 to 0.46 s, at load ~4.)
///
/// Most suffix-array lookups of the matcher find no seed: on the exe-rust
/// corpus pair 89% of 2.7 million lookups found less than 8 bytes, in new
/// code and data. Each costs a dozen cache misses in the suffix array and
/// OLD; the filter answers "certainly not in OLD" with one, so the lookup
/// is skipped. It never hides a string that is in OLD, so patches are the
/// same with or without it. Measured side by side, alternating, user CPU
/// medians of 3 at load ~3.4: exe-rust 8.90 s against 10.68 s without it
/// (−17%); with 2–4 bits per byte, so-lib took 14.1 s against 17.6 s and
/// exe-go 0.99 against 1.10 s.
///
/// Text tuning seeds at 48 bytes, and nearly every 8-byte string of new
/// text occurs somewhere in old text, so the filter also records the
/// [`LONG_GRAM`]-byte strings (as many bits again, [`LONG_PROBES`] bits
/// per string in one word): tar-src's user CPU fell 18% with a 32-byte
/// filter (medians of 5, alternating, 0.95 → 0.78 s). On tar-gen that
/// filter still let 2.65 million lookups through, half of them finding
/// 32–47 bytes (no seed at 48) and most of the rest false positives;
/// a 48-byte filter with three bits per string lets 0.49 million through
/// (docs/NOTES.md, 2026-12-07 speedscan). Where the suffix array indexes
/// a compact text ([`crate::anchor`]), both filters describe that text, as
/// the array does (so a string that spans two of its segments may pass,
/// and one that goes on past a segment's end in OLD may not: the ops are
/// then not exactly those of an unfiltered scan).
#[derive(Debug)]
pub struct GramFilter {
    bits: Vec<u64>,
    /// The same for [`LONG_GRAM`]-byte strings (empty when not built).
    long: Vec<u64>,
    shift: u32,
}

impl GramFilter {
    /// Records every [`GRAM`]-byte string of `old`, and with `long` every
    /// [`LONG_GRAM`]-byte string too (else [`GramFilter::may_contain_long`]
    /// answers true). Memory: at most `old.len()` bytes.
    pub fn new(old: &[u8], long: bool) -> GramFilter {
        let per_byte: u64 = if long { 4 } else { 8 };
        let want = (old.len() as u64).saturating_mul(per_byte).max(1 << 12);
        // The largest power of two not above `want`.
        let log = (63 - want.leading_zeros()).clamp(12, 36);
        let words = 1usize << (log - 6);
        let shift = 64 - log;
        // The two filters are independent: filled side by side, beside the
        // two suffix arrays (text tuning builds both).
        let (bits, long_bits) = rayon::join(
            || {
                let mut bits = vec![0u64; words];
                for w in old.windows(GRAM) {
                    let h = (Self::hash(w) >> shift) as usize;
                    bits[h >> 6] |= 1 << (h & 63);
                }
                bits
            },
            || {
                if !long {
                    return Vec::new();
                }
                let mut long_bits = vec![0u64; words];
                for w in old.windows(LONG_GRAM) {
                    let (k, mask) = Self::long_probe(Self::long_hash(w), shift);
                    long_bits[k] |= mask;
                }
                long_bits
            },
        );
        GramFilter {
            bits,
            long: long_bits,
            shift,
        }
    }

    #[inline]
    fn hash(w: &[u8]) -> u64 {
        let v = u64::from_le_bytes([w[0], w[1], w[2], w[3], w[4], w[5], w[6], w[7]]);
        v.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    /// A hash of the first [`LONG_GRAM`] bytes of `w`: its 8-byte words,
    /// each times an odd constant of its own, summed, then mixed so the
    /// top bits depend on every word. Six loads and multiplies, with no
    /// state between calls (the scan's lookups jump).
    #[inline]
    fn long_hash(w: &[u8]) -> u64 {
        const K: [u64; LONG_GRAM / 8] = [
            0x9e37_79b9_7f4a_7c15,
            0xbf58_476d_1ce4_e5b9,
            0x94d0_49bb_1331_11eb,
            0xd6e8_feb8_6659_fd93,
            0xa076_1d64_78bd_642f,
            0xe703_7ed1_a0b4_28db,
        ];
        let w = &w[..LONG_GRAM];
        let mut h = 0u64;
        for (k, c) in K.iter().enumerate() {
            let v = u64::from_le_bytes(w[8 * k..8 * k + 8].try_into().expect("8 bytes"));
            h = h.wrapping_add(v.wrapping_mul(*c));
        }
        (h ^ (h >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }

    /// The word of the long filter a hash `h` sets bits in, and those
    /// bits: [`LONG_PROBES`] of them in one word (one cache miss), from
    /// hash bits below the word index's (`shift` leaves at most 36 bits of
    /// index, 30 of them the word's).
    #[inline]
    fn long_probe(h: u64, shift: u32) -> (usize, u64) {
        let k = (h >> (shift + 6)) as usize;
        let mask = (0..LONG_PROBES).fold(0u64, |m, j| m | 1 << ((h >> (16 + 6 * j)) & 63));
        (k, mask)
    }

    /// False only when `w` (at least [`GRAM`] bytes; the first GRAM count)
    /// does not occur in OLD.
    #[inline]
    pub fn may_contain(&self, w: &[u8]) -> bool {
        let h = (Self::hash(w) >> self.shift) as usize;
        self.bits[h >> 6] & (1 << (h & 63)) != 0
    }

    /// False only when `w` (at least [`LONG_GRAM`] bytes; the first
    /// LONG_GRAM count) does not occur in OLD.
    #[inline]
    pub fn may_contain_long(&self, w: &[u8]) -> bool {
        if self.long.is_empty() {
            return true;
        }
        let (k, mask) = Self::long_probe(Self::long_hash(w), self.shift);
        self.long[k] & mask == mask
    }
}

fn find_seeds(
    index: &OldIndex<'_>,
    new: &[u8],
    start: usize,
    end: usize,
    p: &MatchParams,
) -> Vec<Seed> {
    let old = index.old;
    // The filter answers for GRAM-byte strings: it can rule out seeds of
    // at least that length only.
    let gram = if p.min_seed >= LONG_GRAM {
        LONG_GRAM
    } else if p.min_seed >= GRAM {
        GRAM
    } else {
        0
    };
    let mut next_anchor = index.anchors.partition_point(|a| a.new + a.len <= start);
    let mut seeds: Vec<Seed> = Vec::new();
    let mut cur: Option<isize> = None;
    let mut i = start;
    while i < end {
        if let Some(off) = cur {
            let r = run_at(old, new, i, end, off);
            if r > 0 {
                // A long agreeing run after differences re-anchors the
                // alignment, so a bad stretch in between can become literal
                // instead of cutting the alignment's region short.
                if r >= p.min_seed && seeds.last().is_some_and(|s| s.new + s.len < i) {
                    seeds.push(Seed {
                        new: i,
                        off,
                        len: r,
                    });
                }
                i += r;
                continue;
            }
            // An isolated difference: the alignment explains the next
            // eight bytes, so no other alignment can win here.
            if i + 9 <= end && run_at(old, new, i + 1, end, off) >= 8 {
                i += 1;
                continue;
            }
        }
        // Zero runs in NEW become ZERO ops; do not seed inside them.
        if new[i] == 0 {
            let z = new[i..end].iter().take_while(|&&b| b == 0).count();
            if z >= p.zero_run {
                i += z;
                cur = None;
                continue;
            }
        }
        let m = index.lookup(new, i, end, gram, &mut next_anchor);
        if m.len >= p.min_seed {
            let off = m.pos as isize - i as isize;
            let current = cur.map_or(0, |c| score(old, new, i, i + m.len, c));
            if cur != Some(off) && m.len >= current + p.seed_margin {
                if let Some(c) = cur.filter(|c| (off - c).unsigned_abs() > p.local_shift) {
                    if let Some((local, j, r)) = local_alignment(old, new, i, i + m.len, c, p) {
                        seeds.push(Seed {
                            new: j,
                            off: local,
                            len: r,
                        });
                        cur = Some(local);
                        i = j + r;
                        continue;
                    }
                }
                seeds.push(Seed {
                    new: i,
                    off,
                    len: m.len,
                });
                cur = Some(off);
                i += m.len;
                continue;
            }
        }
        i += 1;
    }
    seeds
}

/// A local alternative to a far seed over NEW `[a, b)`: an alignment
/// within `p.local_shift` of `cur` that agrees with all but
/// `p.local_margin` bytes of the stretch, as (alignment, first NEW position
/// of its first agreeing run in the stretch, that run's length).
fn local_alignment(
    old: &[u8],
    new: &[u8],
    a: usize,
    b: usize,
    cur: isize,
    p: &MatchParams,
) -> Option<(isize, usize, usize)> {
    if p.local_shift == 0 {
        return None;
    }
    let len = b - a;
    let need = len - p.local_margin.min(len / 8);
    let probes = [a + len / 4, a + len / 2, a + 3 * len / 4];
    let d_max = p.local_shift as isize;
    let mut best: Option<(usize, isize)> = None;
    for d in -d_max..=d_max {
        let off = cur + d;
        if probes
            .iter()
            .all(|&q| run_at(old, new, q, b.min(q + 8), off) < 8.min(b - q))
        {
            continue;
        }
        let s = score(old, new, a, b, off);
        if s >= need
            && best.is_none_or(|(bs, bd)| s > bs || (s == bs && d.abs() < (bd - cur).abs()))
        {
            best = Some((s, off));
        }
    }
    let (_, off) = best?;
    let j = (a..b).find(|&j| agrees(old, new, off, j))?;
    Some((off, j, run_at(old, new, j, b, off)))
}

/// Joins consecutive seeds of the same alignment into one when the gap
/// between them is short or at least half agreeing: one ADD across it is
/// cheaper than two ops and a literal.
fn join_seeds(old: &[u8], new: &[u8], seeds: Vec<Seed>, p: &MatchParams) -> Vec<Seed> {
    let mut out: Vec<Seed> = Vec::with_capacity(seeds.len());
    for s in seeds {
        if let Some(last) = out.last_mut() {
            let last_end = last.new + last.len;
            if last.off == s.off && s.new >= last_end {
                let gap = s.new - last_end;
                let joinable = gap <= p.join_gap
                    || p.ext_num * score(old, new, last_end, s.new, s.off) as isize
                        >= p.ext_den * gap as isize;
                if joinable {
                    last.len = s.new + s.len - last.new;
                    continue;
                }
            }
        }
        out.push(s);
    }
    out
}

/// Gives each (joined) seed the alignment of the seed before or after it
/// when that alignment agrees with at least as many bytes of the seed's
/// stretch and stays inside OLD there; the one before wins a tie, and a
/// seed compares with its predecessor's alignment as already changed.
///
/// The scan adopts an alignment on one exact match of
/// [`MatchParams::min_seed`] bytes; it returns to the old one only on
/// another. In a table whose every entry changes a little (addresses
/// shifted by moved code: the old alignment agrees on most bytes but in
/// runs shorter than a seed), a coincidental match at another alignment
/// ends the old one for good, and the seeds that follow at the new one
/// are joined into a stretch it explains worse. Comparing whole stretches
/// undoes that. Cost: one pass over each seed's stretch per candidate.
fn realign_seeds(old: &[u8], new: &[u8], mut seeds: Vec<Seed>) -> Vec<Seed> {
    for k in 0..seeds.len() {
        let s = seeds[k];
        let (a, b) = (s.new, s.new + s.len);
        let prev = k.checked_sub(1).map(|j| seeds[j].off);
        let next = seeds.get(k + 1).map(|n| n.off);
        let mut best: Option<(usize, isize)> = None;
        let mut own = None;
        for c in [prev, next].into_iter().flatten() {
            if c == s.off || clip(old, a, b, c) != (a, b) {
                continue;
            }
            let own = *own.get_or_insert_with(|| score(old, new, a, b, s.off));
            let sc = score(old, new, a, b, c);
            if sc >= own && best.is_none_or(|(bs, _)| sc > bs) {
                best = Some((sc, c));
            }
        }
        if let Some((_, c)) = best {
            seeds[k].off = c;
        }
    }
    seeds
}

/// How far behind `to` the region of alignment `off` should start, looking
/// no further back than `from` (exclusive of `to`).
fn extend_back(
    old: &[u8],
    new: &[u8],
    from: usize,
    to: usize,
    off: isize,
    p: &MatchParams,
) -> usize {
    let (lo, _) = clip(old, from, to, off);
    if lo >= to {
        return 0;
    }
    let mut s = 0isize;
    let (mut best, mut best_len) = (0isize, 0usize);
    let slack = 64 * p.ext_den;
    let mut i = 1;
    while i <= to - lo {
        s += agrees(old, new, off, to - i) as isize;
        let v = p.ext_num * s - p.ext_den * i as isize;
        if v > best {
            best = v;
            best_len = i;
        } else if v < best - slack {
            break;
        }
        i += 1;
    }
    best_len
}

/// How far past `from` the region of alignment `off` should reach, up to `to`.
fn extend_fwd(
    old: &[u8],
    new: &[u8],
    from: usize,
    to: usize,
    off: isize,
    p: &MatchParams,
) -> usize {
    let (_, hi) = clip(old, from, to, off);
    let mut s = 0isize;
    let (mut best, mut best_len) = (0isize, 0usize);
    let slack = 64 * p.ext_den;
    let mut i = from;
    while i < hi {
        // Agreeing runs are taken whole.
        let r = run_at(old, new, i, hi, off);
        if r > 0 {
            s += r as isize;
            i += r;
        } else {
            i += 1;
        }
        let v = p.ext_num * s - p.ext_den * (i - from) as isize;
        if v > best {
            best = v;
            best_len = i - from;
        } else if v < best - slack {
            break;
        }
    }
    best_len
}

/// Where in `[a, b)` to switch from alignment `off1` to `off2`: the point
/// that maximises the agreeing bytes on both sides.
fn best_split(old: &[u8], new: &[u8], a: usize, b: usize, off1: isize, off2: isize) -> usize {
    let (mut s, mut best, mut at) = (0isize, 0isize, a);
    for i in a..b {
        s += agrees(old, new, off1, i) as isize - agrees(old, new, off2, i) as isize;
        if s > best {
            best = s;
            at = i + 1;
        }
    }
    at
}

/// Turns regions into ops.
struct Emitter<'a, 's> {
    old: &'a [u8],
    new: &'a [u8],
    p: &'a MatchParams,
    /// Where the ops go, in NEW order.
    ops: &'s mut dyn FnMut(Op),
}

impl Emitter<'_, '_> {
    /// Literal bytes `[a, b)`, with long zero runs as ZERO.
    fn literal(&mut self, a: usize, b: usize) {
        let new = self.new;
        let mut lit_from = a;
        let mut i = a;
        while i < b {
            if new[i] != 0 {
                i += 1;
                continue;
            }
            let z = new[i..b].iter().take_while(|&&x| x == 0).count();
            if z >= self.p.zero_run {
                if i > lit_from {
                    (self.ops)(Op::Insert {
                        len: (i - lit_from) as u64,
                    });
                }
                (self.ops)(Op::Zero { len: z as u64 });
                lit_from = i + z;
            }
            i += z;
        }
        if b > lit_from {
            (self.ops)(Op::Insert {
                len: (b - lit_from) as u64,
            });
        }
    }

    fn add(&mut self, a: usize, b: usize, off: isize) {
        if b > a {
            (self.ops)(Op::Add {
                old: old_at(off, a) as u64,
                len: (b - a) as u64,
            });
        }
    }

    /// NEW `[a, b)` under alignment `off` (inside OLD throughout): COPY for
    /// long agreeing runs, ZERO for zero runs, INSERT for dense mismatch
    /// clusters, ADD for the rest.
    fn region(&mut self, a: usize, b: usize, off: isize) {
        let (old, new, p) = (self.old, self.new, self.p);
        let mut add_from = a;
        let mut i = a;
        while i < b {
            let same = run_at(old, new, i, b, off);
            if same >= p.copy_split {
                self.add(add_from, i, off);
                (self.ops)(Op::Copy {
                    old: old_at(off, i) as u64,
                    len: same as u64,
                });
                i += same;
                add_from = i;
                continue;
            }
            i += same;
            if i >= b {
                break;
            }
            // A disagreement at `i`.
            if new[i] == 0 {
                let z = new[i..b].iter().take_while(|&&x| x == 0).count();
                if z >= p.zero_run {
                    self.add(add_from, i, off);
                    (self.ops)(Op::Zero { len: z as u64 });
                    i += z;
                    add_from = i;
                    continue;
                }
            }
            // The mismatch cluster starting here.
            let mut j = i + 1;
            let mut last_miss = i;
            while j < b && j - last_miss <= p.cluster_gap {
                if !agrees(old, new, off, j) {
                    last_miss = j;
                }
                j += 1;
            }
            let cluster_end = last_miss + 1;
            if cluster_end - i >= p.lit_split {
                self.add(add_from, i, off);
                (self.ops)(Op::Insert {
                    len: (cluster_end - i) as u64,
                });
                add_from = cluster_end;
            }
            i = cluster_end;
        }
        self.add(add_from, b, off);
    }
}
