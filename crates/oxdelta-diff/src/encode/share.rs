//! Whether a patch's chunks share their control and literal streams (the
//! format's shared section, [`oxdelta_format::shared`]).

use oxdelta_format::head::SHARED_DESC_LEN;
use oxdelta_format::limits::BlockLimits;
use oxdelta_format::shared::SharedBlocks;
use oxdelta_format::{Codec, EncodedChunk, SharedSection};
use rayon::prelude::*;

/// Longest OLD gap the encoder takes into the context. Whole patches at
/// zstd 19 against this value: tar-src 75,994 B with 256, 75,272 with
/// 1 KiB, 74,086 with 4 KiB, 73,350 with 16 KiB, 73,925 with 64 KiB (the
/// 1 MiB context limit then cuts in); exe-rust 2,300,181 with 4 KiB and
/// 2,301,799 with 16 KiB; so-lib 1,077,268 and 1,076,574. 4 KiB is the
/// middle, and keeps the context small.
pub const DEFAULT_GAP_MAX: u32 = 4 << 10;

/// The margin of OLD bytes around each gap that [`share`] tries beside no
/// margin (format version 7), keeping the smaller literal block. Whole
/// patches at zstd 19, no margin / 1 KiB: tar-src 70,915 / 65,442, a
/// JavaScript bundle 33,723 / 29,737, a crate-source tarball 117,090 /
/// 111,646, generated Rust (windows-sys) 171,681 / 168,503, exe-rust
/// 2,268,140 / 2,255,731; 4 KiB (with version 7's first, unsorted rule)
/// lost to 1 KiB on 6 of 13 pairs.
pub const DEFAULT_MARGIN: u32 = 1 << 10;

/// The margin the wide context takes instead of [`DEFAULT_MARGIN`] when
/// the literal block is small against that context (see
/// [`SMALL_BLOCK_RATIO`]).
pub const SMALL_BLOCK_MARGIN: u32 = 256;

/// A literal block is small when the context with [`DEFAULT_MARGIN`] is at
/// least this many times its length; its wide context then takes
/// [`SMALL_BLOCK_MARGIN`]. LZMA2 and zstd's high levels load every context
/// byte into a binary tree (~0.6 µs a byte at load), so a context of 1.9
/// MB for 18.7 KB of literals (wasm) was most of the diff's CPU, for
/// matches that the margin's outer bytes hardly feed. Context ÷ block at
/// 1 KiB: exe-go 44, exe-arm64 72, wasm 102, hold-armv7-go 22, hold-pyd-x64
/// 377, hold-so-aarch64 743; the others 15 or less (text-js 8.7, hold-ts
/// 8.3, exe-rust 3.9), where a smaller margin cost up to 3% (docs/NOTES.md).
/// With 256: patches −0.03% to +0.15% (wasm), diff CPU −14% (exe-go) to
/// −43% (wasm).
pub const SMALL_BLOCK_RATIO: usize = 16;

/// The zstd level at which [`super::encode_sharing`] compresses the
/// literal stream of a chunk that is likely to be shared: enough to
/// choose its coding (the x86 filter) and to compare with the section, at
/// a fraction of the time of level 19 (on tar-src the per-chunk literal
/// streams at 19 took as long as the whole section). Control streams are
/// small and are compressed at the patch's level: at level 3 the split
/// control stream lost to the joined one in two of tar-src's four chunks
/// where at 19 it wins (0.7 KB).
pub const PROBE_LEVEL: i32 = 3;

/// A literal block is noise when its chunks' stored literal streams (zstd
/// at [`PROBE_LEVEL`], or the patch's level, with no context) still hold
/// this many parts per thousand of it, and it is at least [`NOISE_MIN`]
/// bytes long: compressed data in a container (a zip's members, a
/// squashfs), encrypted or media bytes. Of 29 corpus and hold-out pairs
/// only the wheel's block is noise (it keeps 0.999); the next highest
/// keeps 0.70.
pub const NOISE_PERMILLE: u64 = 900;

/// Shortest literal block [`NOISE_PERMILLE`] applies to: below it the
/// strong coders cost little, and a small stream's frame overhead makes
/// its ratio meaningless.
pub const NOISE_MIN: u64 = 256 << 10;

/// The zstd level of a noise literal block (in the wide context). On noise
/// the strong coders spend about a microsecond a byte for under 1%: a
/// wheel's 4.9 MB literal block of deflate members with a 3.7 MB context,
/// bytes / CPU seconds: zstd 9 4,907,914 / 0.09, zstd 11 4,904,862 / 0.20,
/// zstd 13 4,904,203 / 0.81, LZMA2 4,876,652 / 5.0, zstd 19 (2^18 hash
/// entries) 4,854,594 / 11.7.
pub const NOISE_LEVEL: i32 = 11;

/// Finishes the chunks of one patch made by [`super::encode_sharing`]
/// with `codec`, `probed[i]` what it returned for chunk `i`: the longest
/// run of probed chunks from the first whose control and literal streams
/// each fit `max_block` together (`shareable`) share their streams if
/// that is smaller ([`share`]); whatever is not shared is compressed again
/// at `codec`'s own level, so it is what plain encoding would have made.
/// (The
/// comparison in [`share`] is then against the probed literal streams, at
/// [`PROBE_LEVEL`]: it leans towards sharing; on all four corpus pairs
/// sharing made the patch smaller.) Deterministic: it depends on the
/// chunks only, not on threads. With [`Codec::Lzma2`] the chunks were
/// made with zstd ([`super::search_codec`]), and each probed chunk is
/// then stored as LZMA2 where that pays ([`super::prefer_lzma2`]; for a
/// shared chunk, its diff stream).
///
/// The probed chunks' diff streams are compressed with LZMA2
/// ([`super::lzma2_diff_ahead`]) beside the section's jobs: a chunk keeps
/// its diff stream whether it is shared or not, and the section's wide
/// literal block leaves a thread idle for most of its time (exe-rust at
/// load 12: 26.5 s of wall time for the wide block, 9.4 s for the four
/// other jobs).
pub fn finish_sharing(
    old: &[u8],
    chunks: &mut [EncodedChunk],
    probed: Vec<Option<super::Probed>>,
    codec: Codec,
    max_block: BlockLimits,
) -> Option<SharedSection> {
    let lzma2 = codec == Codec::Lzma2;
    let codec = super::search_codec(codec);
    let Codec::Zstd(level) = codec else {
        return None;
    };
    let n = shareable(chunks, &probed, max_block);
    let (best, ahead) = rayon::join(
        || {
            (n > 0)
                .then(|| plan(old, &chunks[..n], level, lzma2, max_block))
                .flatten()
        },
        || -> Vec<Option<Vec<u8>>> {
            chunks
                .par_iter()
                .zip(&probed)
                .map(|(c, p)| {
                    p.as_ref()
                        .filter(|_| lzma2)
                        .and_then(|_| super::lzma2_diff_ahead(c))
                })
                .collect()
        },
    );
    let section = best.map(|b| b.blocks.finish(&mut chunks[..n], b.codec, b.ctrl, b.lit));
    chunks
        .par_iter_mut()
        .zip(probed)
        .zip(ahead)
        .filter(|((_, p), _)| p.is_some())
        .for_each(|((c, _), ahead)| {
            if !c.entry.shared {
                c.recompress_literals(codec);
            }
            if lzma2 {
                super::prefer_lzma2(c, ahead);
            }
        });
    section
}

/// How many chunks from the first [`finish_sharing`] shares: the longest
/// run of probed chunks whose control streams, and whose literal
/// streams, sum to at most `max_block`'s raw bytes. A NEW whose
/// literals pass the block limit (format version 10: 32 MiB) shares its
/// first chunks' and stores the others' as before. Depends on the chunks
/// alone, not on the threads.
fn shareable(
    chunks: &[EncodedChunk],
    probed: &[Option<super::Probed>],
    max_block: BlockLimits,
) -> usize {
    let (mut ctrl, mut lit) = (0u64, 0u64);
    chunks
        .iter()
        .zip(probed)
        .take_while(|(c, p)| {
            ctrl += u64::from(c.entry.ctrl.raw);
            lit += u64::from(c.entry.lit.raw);
            p.is_some() && ctrl <= max_block.ctrl && lit <= max_block.lit
        })
        .count()
}

/// Moves the control and literal streams of `chunks` (in table order) into
/// a shared section compressed with zstd `level` (or, with `lzma2`, with
/// LZMA2 where that is [`super::LZMA2_MARGIN_PERMILLE`] smaller), when that
/// makes the patch smaller than the chunks' own stored streams; returns
/// the section, or `None` and leaves `chunks` as they were. Sharing is
/// tried only when both blocks fit `max_block`; `old` is the OLD the
/// chunks were made from. The literal block's context is tried with no
/// margin and with [`DEFAULT_MARGIN`] (see `Section::choose`).
pub fn share(
    old: &[u8],
    chunks: &mut [EncodedChunk],
    level: i32,
    lzma2: bool,
    max_block: BlockLimits,
) -> Option<SharedSection> {
    let best = plan(old, chunks, level, lzma2, max_block)?;
    Some(best.blocks.finish(chunks, best.codec, best.ctrl, best.lit))
}

/// The section [`share`] makes of `chunks`, before it moves their streams
/// into it; `None` where it shares nothing.
fn plan(
    old: &[u8],
    chunks: &[EncodedChunk],
    level: i32,
    lzma2: bool,
    max_block: BlockLimits,
) -> Option<Section> {
    let narrow = SharedBlocks::gather(old, chunks, DEFAULT_GAP_MAX, 0, max_block)?;
    let wide = wide_blocks(old, chunks, &narrow);
    let lit: u64 = chunks.iter().map(|c| u64::from(c.entry.lit.raw)).sum();
    let best = match wide {
        Some(w) if is_noise(chunks) => Section::noise(w, level),
        Some(w) if lzma2 && lit > oxdelta_format::limits::MAX_SHARED_BLOCK => Section::big(w),
        wide => Section::choose(narrow, wide, Codec::Zstd(level), lzma2),
    };
    let before: u64 = chunks
        .iter()
        .map(|c| u64::from(c.entry.ctrl.stored) + u64::from(c.entry.lit.stored))
        .sum();
    ((best.len() as u64) < before).then_some(best)
}

/// Whether the literal block of `chunks` is noise ([`NOISE_PERMILLE`]).
fn is_noise(chunks: &[EncodedChunk]) -> bool {
    let (lit, stored) = chunks.iter().fold((0u64, 0u64), |(l, s), c| {
        (
            l + u64::from(c.entry.lit.raw),
            s + u64::from(c.entry.lit.stored),
        )
    });
    lit >= NOISE_MIN && stored * 1000 >= lit * NOISE_PERMILLE
}

/// The blocks `narrow` (gathered from `chunks` with no margin) with the
/// wide context: [`DEFAULT_MARGIN`], or [`SMALL_BLOCK_MARGIN`] when the
/// literal block is small against that context ([`SMALL_BLOCK_RATIO`]).
fn wide_blocks(old: &[u8], chunks: &[EncodedChunk], narrow: &SharedBlocks) -> Option<SharedBlocks> {
    let wide = narrow.with_margin(old, chunks, DEFAULT_MARGIN)?;
    let (lit, context) = wide.lit_and_context_len();
    if context >= lit.saturating_mul(SMALL_BLOCK_RATIO) {
        return narrow
            .with_margin(old, chunks, SMALL_BLOCK_MARGIN)
            .or(Some(wide));
    }
    Some(wide)
}

/// Where [`Section::big`] cuts a literal block of `lit` bytes after a
/// context of `context` bytes into two LZMA2 parts of about equal cost:
/// the first loads the context into its match finder, the second the
/// window before it (the context's tail and the first part, at most
/// 16 MiB); loading a byte costs about half what coding one does (LZMA2's
/// binary tree at depth 512: exe-rust's 6.7 MB context loads in ~4 s, its
/// 1.7 MB block codes in ~2.2 s), so the first part takes a quarter of the
/// second's extra window more. Strictly inside the block for any `lit`
/// of at least 2 bytes.
fn big_cut(lit: usize, context: usize) -> usize {
    let window = (context + lit / 2).min(oxdelta_format::codec::LZMA2_PREFIX_DICT_MAX);
    (lit / 2 + window.saturating_sub(context) / 4).clamp(1, lit.saturating_sub(1))
}

/// A shared section's blocks and how they are stored: [`share`]'s
/// candidate.
struct Section {
    blocks: SharedBlocks,
    codec: Codec,
    ctrl: Vec<u8>,
    lit: Vec<u8>,
}

/// Which context a literal block was compressed with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Narrow,
    Wide,
}

impl Section {
    /// Stored bytes, descriptor included.
    fn len(&self) -> usize {
        self.ctrl.len() + self.lit.len() + SHARED_DESC_LEN
    }

    /// A literal block past version 5's limit (a big NEW of text, format
    /// version 10), with LZMA2 chosen: both blocks LZMA2, the literal block
    /// in the `wide` context alone. At the extreme preset LZMA2 codes
    /// about a megabyte a second, and zstd 19 about as fast with a window
    /// this wide, so each pass more of [`Section::choose`] would cost as
    /// much as the section; on text LZMA2 wins by more than its margin
    /// (on a 23 MB block of generated source 717,257 B against zstd 19's
    /// 755,899) and the wide context won on every pair measured.
    ///
    /// The literal block is coded in two parts side by side, joined into
    /// one LZMA2 stream ([`oxdelta_format::codec::lzma2_join_parts`]): one
    /// pass over it alone ran on one thread after matching, the longest
    /// job of the diff (tar-gen: ~25 s of CPU at load 10). The second part
    /// reaches as far back as the whole stream would (16 MiB) but pays for
    /// loading that window into its match finder; [`big_cut`] balances the
    /// two. The cut depends on the block's and context's lengths alone.
    fn big(wide: SharedBlocks) -> Section {
        use oxdelta_format::codec::{LZMA2_PREFIX_DICT_MAX, lzma2_join_parts};
        let (lit_len, context_len) = wide.lit_and_context_len();
        let cut = big_cut(lit_len, context_len);
        let ((first, second), ctrl) = rayon::join(
            || {
                rayon::join(
                    || wide.compress_lit_part(0..cut, LZMA2_PREFIX_DICT_MAX),
                    || wide.compress_lit_part(cut..lit_len, LZMA2_PREFIX_DICT_MAX),
                )
            },
            || wide.compress_ctrl(Codec::Lzma2),
        );
        let lit = lzma2_join_parts(vec![first, second]);
        Section {
            blocks: wide,
            codec: Codec::Lzma2,
            ctrl,
            lit,
        }
    }

    /// A noise literal block ([`NOISE_PERMILLE`]) at [`NOISE_LEVEL`] in the
    /// `wide` context, its control block at the patch's zstd `level`: one
    /// pass each, no LZMA2.
    fn noise(wide: SharedBlocks, level: i32) -> Section {
        let (lit, ctrl) = rayon::join(
            || wide.compress_lit(Codec::Zstd(NOISE_LEVEL.min(level))),
            || wide.compress_ctrl(Codec::Zstd(level)),
        );
        Section {
            blocks: wide,
            codec: Codec::Zstd(level),
            ctrl,
            lit,
        }
    }

    /// The smallest section of the blocks with no margin (`narrow`) and
    /// with one (`wide`), stored with `zstd`, or with `lzma2` as LZMA2
    /// where that is the margin smaller than zstd; on a tie, no margin.
    ///
    /// With `lzma2` the literal block is compressed with LZMA2 in the wide
    /// context and with zstd in the narrow one, side by side; the wide one
    /// with zstd only when LZMA2 missed its margin, the narrow one with
    /// LZMA2 only when there is no wide context or it was cut by its limits
    /// (else it holds every byte of the narrow one: LZMA2's literal block
    /// in the wide context was the smaller on all 13 corpus and hold-out
    /// pairs with a section, by 1.1% (so-lib) to 20% (text-js), and the
    /// narrow one cost exe-rust 1.5 s of CPU at load 12). zstd's high levels
    /// and LZMA2 both pay for a wide context (up to 8 MiB) with a binary
    /// tree over all of it, so one pass over it is what it costs; LZMA2's
    /// dictionary spans the whole context, and in it LZMA2 was smaller
    /// than zstd 19 on every pair measured (literal blocks, B, zstd 19
    /// wide / LZMA2 wide: exe-rust 803,343 / 704,615, a JavaScript bundle
    /// 19,931 / 19,633, tar-src 47,730 / 45,280, a crate-source tarball
    /// 66,437 / 64,592).
    fn choose(
        narrow: SharedBlocks,
        wide: Option<SharedBlocks>,
        zstd: Codec,
        lzma2: bool,
    ) -> Section {
        // The wide literal block (LZMA2's, or zstd's without LZMA2) is the
        // longest job by far (exe-rust: 6.3 s of CPU against 1.4 s for
        // each narrow one, at load 12), so it starts first, on one thread,
        // and the four others run beside it: the section then takes about
        // the wide job's time on two threads. Which job runs where changes
        // no byte.
        let (wide_first, ((ctrl_z, ctrl_l), (lit_z, lit_l))) = rayon::join(
            || {
                let codec = if lzma2 { Codec::Lzma2 } else { zstd };
                wide.as_ref().map(|w| w.compress_lit(codec))
            },
            || {
                rayon::join(
                    || {
                        rayon::join(
                            || narrow.compress_ctrl(zstd),
                            || lzma2.then(|| narrow.compress_ctrl(Codec::Lzma2)),
                        )
                    },
                    || {
                        rayon::join(
                            || narrow.compress_lit(zstd),
                            || {
                                let wide_holds = wide.as_ref().is_some_and(|w| !w.context_cut());
                                (lzma2 && !wide_holds).then(|| narrow.compress_lit(Codec::Lzma2))
                            },
                        )
                    },
                )
            },
        );
        let (wide_l, wide_z) = if lzma2 {
            (wide_first, None)
        } else {
            (None, wide_first)
        };
        let smaller = |n: Vec<u8>, w: Option<Vec<u8>>| match w {
            Some(w) if w.len() < n.len() => (Context::Wide, w),
            _ => (Context::Narrow, n),
        };
        let lit_l = match (lit_l, wide_l) {
            (Some(n), w) => Some(smaller(n, w)),
            (None, w) => w.map(|w| (Context::Wide, w)),
        };
        let pick = match (ctrl_l, lit_l) {
            (Some(ctrl_l), Some((at, lit_l))) => {
                let goal = (ctrl_z.len() + lit_z.len()) * (1000 - super::LZMA2_MARGIN_PERMILLE);
                ((ctrl_l.len() + lit_l.len()) * 1000 <= goal).then_some((
                    at,
                    Codec::Lzma2,
                    ctrl_l,
                    lit_l,
                ))
            }
            _ => None,
        };
        let (at, codec, ctrl, lit) = pick.unwrap_or_else(|| {
            // With LZMA2, the wide zstd block only when LZMA2 missed its
            // margin.
            let wide_z = wide_z.or_else(|| wide.as_ref().map(|w| w.compress_lit(zstd)));
            let (at, lit) = smaller(lit_z, wide_z);
            (at, zstd, ctrl_z, lit)
        });
        let blocks = match wide {
            Some(w) if at == Context::Wide => w,
            _ => narrow,
        };
        Section {
            blocks,
            codec,
            ctrl,
            lit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxdelta_format::{
        ChunkEncoder, ChunkEntry, Engine, Metadata, Op, Patch, assemble, assemble_with,
    };

    fn bytes(seed: u32, n: usize) -> Vec<u8> {
        let mut x = seed.wrapping_mul(2_654_435_761) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                b"etaoin shrdlu\n{};()"[(x % 19) as usize]
            })
            .collect()
    }

    fn chunk(old: &[u8], new: &[u8], start: u64, ops: &[Op], codec: Codec) -> EncodedChunk {
        let mut enc = ChunkEncoder::new(old, new, start);
        for &op in ops {
            enc.push(op);
        }
        super::super::encode(enc, codec, 16)
    }

    /// Four chunks that insert the same new text: shared, the patch is
    /// smaller than unshared, and it applies to NEW through the section.
    #[test]
    fn shared_patch_applies_and_is_smaller() {
        let old = bytes(2, 64_000);
        let para = bytes(3, 3000);
        let (mut new, mut plan) = (Vec::new(), Vec::new());
        for k in 0..4u64 {
            let start = new.len() as u64;
            let o = k * 16_000;
            // The inserted text starts like the OLD bytes it replaces (the
            // context), then the text every chunk inserts.
            new.extend_from_slice(&old[o as usize..o as usize + 6100]);
            new.extend_from_slice(&para);
            new.extend_from_slice(&old[o as usize + 6100..o as usize + 16_000]);
            let ops = vec![
                Op::Copy { old: o, len: 6000 },
                Op::Insert { len: 3100 },
                Op::Copy {
                    old: o + 6100,
                    len: 9900,
                },
            ];
            plan.push((start, ops));
        }
        let meta = Metadata {
            old_len: old.len() as u64,
            old_hash: *blake3::hash(&old).as_bytes(),
            new_len: new.len() as u64,
            new_hash: *blake3::hash(&new).as_bytes(),
            engine: Engine::SuffixArray,
            flags: 0,
        };
        let codec = Codec::Zstd(19);
        let plain: Vec<EncodedChunk> = plan
            .iter()
            .map(|(s, ops)| chunk(&old, &new, *s, ops, codec))
            .collect();
        let mut chunks = plain.clone();
        let max = BlockLimits::NARROW;
        let section = share(&old, &mut chunks, 19, false, max).expect("sharing pays here");
        assert!(chunks.iter().all(|c| c.entry.shared));
        let unshared = assemble(&meta, plain, None);
        let chunks_made: Vec<ChunkEntry> = chunks.iter().map(|c| c.entry.clone()).collect();
        let shared = assemble_with(&meta, chunks, Some(&section), None);
        assert!(
            shared.len() + 2000 < unshared.len(),
            "{} against {}",
            shared.len(),
            unshared.len()
        );
        let p = Patch::parse(&shared).unwrap();
        assert_eq!(p.head.features_version(), 5);
        for (parsed, made) in p.head.chunks.iter().zip(&chunks_made) {
            assert_eq!(
                (parsed.shared_ctrl_at, parsed.shared_lit_at),
                (made.shared_ctrl_at, made.shared_lit_at),
                "share() sets the offsets a parser derives"
            );
        }
        let s = p.decode_shared(&old).unwrap();
        let mut out = vec![0u8; new.len()];
        for (i, e) in p.head.chunks.iter().enumerate() {
            let r = e.new_range();
            p.apply_chunk_in(
                i,
                &s,
                &old,
                &mut out[r.start as usize..r.end as usize],
                false,
            )
            .unwrap();
        }
        assert!(out == new);
        // Without the section a shared chunk does not decode.
        let r = p.head.chunks[0].new_range();
        let e = p
            .apply_chunk(0, &old, &mut out[r.start as usize..r.end as usize], false)
            .unwrap_err();
        assert!(e.to_string().contains("shared"), "{e}");
        // Another OLD gives another context, which chunk 0's literals
        // copy from: it does not verify.
        let mut wrong = old.clone();
        wrong[6050] ^= 1;
        let bad = p
            .decode_shared(&wrong)
            .and_then(|s| p.apply_chunk_in(0, &s, &wrong, &mut out[..r.end as usize], false));
        assert!(bad.is_err());
    }

    /// A literal block small against its context takes the small margin;
    /// a larger one the default.
    #[test]
    fn a_small_literal_block_takes_the_small_margin() {
        let old = bytes(6, 200_000);
        for (insert, small) in [(40u64, true), (3000, false)] {
            let (mut new, mut chunks) = (Vec::new(), Vec::new());
            for k in 0..3u64 {
                let (start, o) = (new.len() as u64, k * 60_000);
                new.extend_from_slice(&old[o as usize..o as usize + 20_000]);
                new.extend_from_slice(&bytes(7 + k as u32, insert as usize));
                new.extend_from_slice(&old[(o + 20_000 + insert) as usize..(o + 50_000) as usize]);
                let ops = [
                    Op::Copy {
                        old: o,
                        len: 20_000,
                    },
                    Op::Insert { len: insert },
                    Op::Copy {
                        old: o + 20_000 + insert,
                        len: 30_000 - insert,
                    },
                ];
                chunks.push(chunk(&old, &new, start, &ops, Codec::Zstd(19)));
            }
            let narrow =
                SharedBlocks::gather(&old, &chunks, DEFAULT_GAP_MAX, 0, BlockLimits::NARROW)
                    .unwrap();
            let wide = wide_blocks(&old, &chunks, &narrow).unwrap();
            let with = |m| {
                narrow
                    .with_margin(&old, &chunks, m)
                    .unwrap()
                    .lit_and_context_len()
            };
            assert_eq!(
                with(SMALL_BLOCK_MARGIN) == wide.lit_and_context_len(),
                small
            );
            assert_eq!(with(DEFAULT_MARGIN) == wide.lit_and_context_len(), !small);
        }
    }

    /// Random bytes inserted make a noise literal block, text or a short
    /// insert does not (the assertions on `is_noise` are the rule's); the
    /// section made of the noise is zstd and its patch applies.
    #[test]
    fn a_noise_literal_block_takes_zstd() {
        let old = bytes(8, 600_000);
        let mut x = 0x9e37_79b9_u32;
        // Both chunks insert the same noise: sharing pays.
        let insert = 150_000usize;
        let noise: Vec<u8> = (0..insert)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 24) as u8
            })
            .collect();
        let (mut new, mut chunks) = (Vec::new(), Vec::new());
        for k in 0..2u64 {
            let (start, o) = (new.len() as u64, k * 300_000);
            new.extend_from_slice(&old[o as usize..o as usize + 20_000]);
            new.extend_from_slice(&noise);
            new.extend_from_slice(&old[o as usize + 20_000..o as usize + 50_000]);
            let ops = [
                Op::Copy {
                    old: o,
                    len: 20_000,
                },
                Op::Insert { len: insert as u64 },
                Op::Copy {
                    old: o + 20_000,
                    len: 30_000,
                },
            ];
            chunks.push(chunk(&old, &new, start, &ops, Codec::Zstd(19)));
        }
        assert!(is_noise(&chunks));
        assert!(!is_noise(&chunks[..1]), "one chunk's block is short");
        // Text inserted instead: 200 KB per chunk of `bytes`' text.
        let text = bytes(9, 400_000);
        let text: Vec<EncodedChunk> = (0..2u64)
            .map(|k| {
                let ops = [Op::Insert { len: 200_000 }];
                chunk(&old, &text, k * 200_000, &ops, Codec::Zstd(19))
            })
            .collect();
        assert!(!is_noise(&text));
        let section = share(&old, &mut chunks, 19, true, BlockLimits::NARROW).unwrap();
        assert!(!section.desc.lzma2, "noise is not LZMA2-coded");
        let meta = Metadata {
            old_len: old.len() as u64,
            old_hash: *blake3::hash(&old).as_bytes(),
            new_len: new.len() as u64,
            new_hash: *blake3::hash(&new).as_bytes(),
            engine: Engine::SuffixArray,
            flags: 0,
        };
        let bytes = assemble_with(&meta, chunks, Some(&section), None);
        let p = Patch::parse(&bytes).unwrap();
        let s = p.decode_shared(&old).unwrap();
        let mut out = vec![0u8; new.len()];
        for (i, e) in p.head.chunks.iter().enumerate() {
            let r = e.new_range();
            let out = &mut out[r.start as usize..r.end as usize];
            p.apply_chunk_in(i, &s, &old, out, false).unwrap();
        }
        assert!(out == new);
    }

    /// Two LZMA2 parts of about equal cost: tar-gen's 23 MB literal block
    /// after an 8 MiB context, counted in half-bytes (loading a byte into
    /// the match finder 1, coding one 2).
    #[test]
    fn big_cut_balances_the_parts() {
        let (lit, context) = (23_032_500, 8 << 20);
        let cut = big_cut(lit, context);
        let window = (context + cut).min(16 << 20);
        let (a, b) = (context + 2 * cut, window + 2 * (lit - cut));
        assert!(a.abs_diff(b) * 20 < a + b, "{a} against {b}");
        assert_eq!(big_cut(2, 0), 1);
        assert!((1..5 << 20).contains(&big_cut(5 << 20, 0)));
    }

    /// When not every chunk was probed, nothing is shared and each probed
    /// chunk ends up byte for byte as plain encoding makes it.
    #[test]
    fn unshared_probed_chunks_are_as_plain_encoding_makes_them() {
        let old = bytes(4, 40_000);
        let mut new = old[..10_000].to_vec();
        new.extend_from_slice(&bytes(5, 5000));
        new.extend_from_slice(&old[10_000..20_000]);
        let ops = [
            Op::Copy {
                old: 0,
                len: 10_000,
            },
            Op::Insert { len: 5000 },
            Op::Copy {
                old: 10_000,
                len: 10_000,
            },
        ];
        let codec = Codec::Zstd(19);
        let plain = chunk(&old, &new, 0, &ops, codec);
        let mut enc = ChunkEncoder::new(&old, &new, 0);
        for op in ops {
            enc.push(op);
        }
        let (probed, flag) = super::super::encode_sharing(enc, codec, 16, BlockLimits::NARROW);
        assert!(flag.is_some());
        assert_ne!(probed.payload, plain.payload, "probed at another level");
        let mut chunks = vec![probed, plain.clone()];
        let max = BlockLimits::NARROW;
        assert!(finish_sharing(&old, &mut chunks, vec![flag, None], codec, max).is_none());
        assert_eq!(chunks[0].payload, plain.payload);
        assert_eq!(chunks[0].entry, plain.entry);
    }
}
