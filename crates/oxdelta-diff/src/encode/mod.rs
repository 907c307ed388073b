//! How each chunk is stored: the search over the format's codings.
//!
//! The format crate encodes a chunk as any coding it is named
//! ([`ChunkCoding`], [`oxdelta_format::encode_chunk_as`]) and decodes
//! every one; it never chooses. This module chooses, per chunk: the diff
//! stream's ADD mode, order and run layout (`layout`'s search over the
//! variants `variants` makes), whether the control stream is split by
//! field, whether the literals take the x86 filter, and whether a chunk
//! that does not compress is stored as is; then, per patch, whether the
//! chunks' streams go into a shared section ([`share`]). The three
//! streams are coded side by side and the diff variants ranked side by
//! side (rayon); every choice compares sizes only, so the patch does not
//! depend on the thread count.
//!
//! # Adding a diff-stream variant
//!
//! Once the format can encode and decode a new ADD mode (its
//! [`oxdelta_format::AddSources::encode`] arm and its decoder), the
//! search tries it by one more line in `VARIANTS`, saying when it is
//! worth trying (`When`; a new condition is a new `When` and its arm in
//! `When::holds`). Modes that are not per op
//! ([`AddMode::PER_OP`]) are made whole by the format's encoder, so
//! `variants::DiffVariants` needs no change.

use oxdelta_format::filter::split;
use oxdelta_format::ops::coalesce_ranges;
use oxdelta_format::{
    AddMode, ChunkCoding, ChunkEncoder, Codec, EncodedChunk, StoredStream, Streams, coding, limits,
};

/// What the search compresses streams with: a codec at its level, or
/// zstd's fast setting ([`oxdelta_format::codec::zstd_compress_fast`],
/// which the streaming engine takes for chunks whose streams are large).
/// Either way the chunk's codec id is the codec's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Coder {
    /// The codec at its own level.
    Codec(Codec),
    /// zstd, fast setting.
    FastZstd,
}

impl Coder {
    /// The codec the chunk declares.
    pub fn codec(self) -> Codec {
        match self {
            Coder::Codec(c) => c,
            Coder::FastZstd => Codec::Zstd(12),
        }
    }

    /// `raw` compressed.
    pub fn compress(self, raw: &[u8]) -> Vec<u8> {
        match self {
            Coder::Codec(c) => c.compress(raw),
            Coder::FastZstd => oxdelta_format::codec::zstd_compress_fast(raw),
        }
    }

    fn stored(self, raw: &[u8]) -> StoredStream {
        StoredStream {
            raw_len: raw.len(),
            bytes: self.compress(raw),
        }
    }

    /// Memory one compression holds beside its input and output.
    pub fn state_bound(self) -> u64 {
        match self {
            Coder::Codec(c) => c.state_bound(),
            Coder::FastZstd => oxdelta_format::codec::ZSTD_FAST_STATE_BOUND,
        }
    }
}

mod layout;
pub mod share;
mod variants;

use layout::{DiffLayout, DiffVariant};
use variants::DiffVariants;

/// When a diff-stream variant is worth trying on a chunk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum When {
    /// On every chunk with diff bytes.
    Always,
    /// Where the operand split pays ([`variants::DiffVariants::split_pays`]):
    /// the ADDs read code whose operand bytes change far more often than
    /// the others.
    SplitPays,
    /// Where the ADDs read what looks like AArch64 code
    /// ([`oxdelta_format::arm64::looks_like_code`]).
    Arm64Code,
    /// Where the ADDs read what looks like RISC-V code
    /// ([`oxdelta_format::riscv::looks_like_code`]).
    RiscvCode,
    /// Where the ADDs read what looks like ARMv7 (A32) code
    /// ([`oxdelta_format::armv7::looks_like_code`]).
    Armv7Code,
    /// Where the ADDs read what looks like Thumb-2 code
    /// ([`oxdelta_format::thumb2::looks_like_code`]).
    Thumb2Code,
    /// Where OLD is a WebAssembly module
    /// ([`oxdelta_format::wasm::looks_like_wasm`]).
    Wasm,
}

impl When {
    fn holds(self, v: &DiffVariants<'_>) -> bool {
        match self {
            When::Always => true,
            When::SplitPays => v.split_pays(),
            When::Arm64Code => v.arm64(),
            When::RiscvCode => v.riscv(),
            When::Armv7Code => v.armv7(),
            When::Thumb2Code => v.thumb2(),
            When::Wasm => v.wasm(),
        }
    }
}

/// The diff-stream variants tried besides the chunk's own (byte-wise ADD,
/// op order): ADD mode, the operand split's order, and when. Candidates
/// are ranked in this order after the chunk's own, so among equal sizes
/// the earlier wins.
///
/// The operand split's order (with bytes or words32, format version 2)
/// and ADD mode `operands-abs` (version 3) are no longer tried: since
/// `operands-learned` (version 9) no chunk of the 23 corpus and hold-out
/// pairs kept one, and dropping them left every patch byte for byte the
/// same (docs/NOTES.md). They still decode. Mode `operands` stays: it still
/// wins where call targets follow the op map and nothing learned predicts
/// them (the golden pair `moved`: 612 bytes against 676).
const VARIANTS: &[(AddMode, bool, When)] = &[
    (AddMode::Words32, false, When::Always),
    (AddMode::Operands, false, When::SplitPays),
    (AddMode::OperandsLearned, false, When::SplitPays),
    (AddMode::Arm64, false, When::Arm64Code),
    (AddMode::Riscv, false, When::RiscvCode),
    (AddMode::Armv7, false, When::Armv7Code),
    (AddMode::Thumb2, false, When::Thumb2Code),
    (AddMode::Wasm, false, When::Wasm),
];

/// How much smaller, in thousandths, a chunk must be stored as LZMA2
/// than as zstd for [`Codec::Lzma2`] to keep LZMA2 (30: 3%). LZMA2
/// decodes about ten times slower than zstd (~20 MB/s on literals, against
/// zstd's ~400 MB/s, on this machine), so a chunk pays its apply time
/// only for a clear saving; see docs/NOTES.md for the figures behind it.
pub const LZMA2_MARGIN_PERMILLE: usize = 30;

/// The codec the search ranks codings with: `codec` itself, or for
/// [`Codec::Lzma2`] zstd at its default level (LZMA2 is then tried on the
/// chosen coding, see [`prefer_lzma2`]).
pub fn search_codec(codec: Codec) -> Codec {
    match codec {
        Codec::Lzma2 => Codec::Zstd(oxdelta_format::codec::DEFAULT_ZSTD_LEVEL),
        c => c,
    }
}

/// Stores `chunk` (made with a zstd codec) as LZMA2 when that is at least
/// [`LZMA2_MARGIN_PERMILLE`] smaller: its own streams in their chosen
/// coding (a shared chunk's diff stream only) compressed with LZMA2, side
/// by side. A chunk stored with codec none is left alone. The choice
/// compares sizes only, so it does not depend on the threads.
///
/// A stream that zstd left at over 90% of its raw size (compressed data)
/// is first counted at its zstd size, and compressed with LZMA2 only when
/// the others then reach the margin: it changes no choice LZMA2 could
/// win by the margin on such a stream's neighbours, and saves LZMA2's
/// slowest work (zip-whl's 4.9 MB of compressed literals).
///
/// `diff_ahead` is the diff stream already compressed with LZMA2 where
/// [`lzma2_diff_ahead`] did so (the same bytes this would make).
pub fn prefer_lzma2(chunk: &mut EncodedChunk, diff_ahead: Option<Vec<u8>>) {
    if chunk.entry.codec == Codec::None {
        return;
    }
    let e = &chunk.entry;
    let zstd = [e.ctrl.stored, e.diff.stored, e.lit.stored].map(|n| n as usize);
    let raw = chunk.coded_streams();
    let dense: [bool; 3] = std::array::from_fn(|k| zstd[k] * 10 > raw[k].len() * 9);
    let mut diff_ahead = diff_ahead;
    let lz = |k: usize| (!dense[k]).then(|| Codec::Lzma2.compress(&raw[k]));
    let lz_diff = || diff_ahead.take().or_else(|| lz(1));
    let goal = chunk.payload.len() * (1000 - LZMA2_MARGIN_PERMILLE);
    let pays = |s: &[Option<Vec<u8>>; 3]| {
        let size: usize = (0..3)
            .map(|k| s[k].as_ref().map_or(zstd[k], Vec::len))
            .sum();
        size * 1000 <= goal
    };
    let (d, (c, l)) = rayon::join(lz_diff, || rayon::join(|| lz(0), || lz(2)));
    let mut s = [c, d, l];
    if !pays(&s) {
        return;
    }
    for k in 0..3 {
        if s[k].is_none() {
            s[k] = Some(Codec::Lzma2.compress(&raw[k]));
        }
    }
    if !pays(&s) {
        return;
    }
    let [c, d, l] = s.map(|s| s.expect("every stream compressed"));
    *chunk = chunk.with_codec(Codec::Lzma2, [c, d, l]);
}

/// The diff stream of `chunk` (made with zstd) compressed with LZMA2, as
/// [`prefer_lzma2`] would compress it, or `None` where it would not (a
/// stream zstd left dense, a chunk stored with codec none). A shared
/// chunk keeps its diff stream, so [`share::finish_sharing`] runs this
/// beside the section's jobs, before it decides.
pub fn lzma2_diff_ahead(chunk: &EncodedChunk) -> Option<Vec<u8>> {
    let e = &chunk.entry;
    if e.codec == Codec::None {
        return None;
    }
    let raw = chunk.coded_streams();
    let dense = e.diff.stored as usize * 10 > raw[1].len() * 9;
    (!dense).then(|| Codec::Lzma2.compress(&raw[1]))
}

/// A chunk [`encode_sharing`] probed, for [`share::finish_sharing`] to
/// finish: its literals are at [`share::PROBE_LEVEL`] and, with
/// [`Codec::Lzma2`], its streams are not compressed with LZMA2 yet.
#[derive(Debug, Default)]
pub struct Probed;

/// Finishes `enc` and encodes its chunk with `codec`, declaring at most
/// `max_ranges` OLD ranges: every coding the search tries (see the module
/// docs), the smallest kept; with [`Codec::Lzma2`], ranked with zstd and
/// stored as LZMA2 where that pays ([`prefer_lzma2`]).
pub fn encode(enc: ChunkEncoder<'_>, codec: Codec, max_ranges: usize) -> EncodedChunk {
    let none = oxdelta_format::limits::BlockLimits { ctrl: 0, lit: 0 };
    encode_sharing(enc, codec, max_ranges, none).0
}

/// [`encode`] for a chunk that may go into a shared section: when its
/// control and literal streams are within `share_max` and
/// `codec` is zstd, the literal stream is compressed at
/// [`share::PROBE_LEVEL`] only (what [`share::finish_sharing`] compresses
/// again, with the others, at `codec`'s level), and [`Probed`] is
/// returned (LZMA2 is left for [`share::finish_sharing`] to try).
/// Otherwise as `encode`.
pub fn encode_sharing(
    enc: ChunkEncoder<'_>,
    codec: Codec,
    max_ranges: usize,
    share_max: oxdelta_format::limits::BlockLimits,
) -> (EncodedChunk, Option<Probed>) {
    let lzma2 = codec == Codec::Lzma2;
    let coder = Coder::Codec(search_codec(codec));
    let (old, new_chunk, start) = (enc.old(), enc.new_chunk(), enc.start());
    let (streams, ranges) = enc.finish();
    let probe = matches!(coder, Coder::Codec(Codec::Zstd(_)))
        && streams.ctrl.len() as u64 <= share_max.ctrl
        && streams.lit.len() as u64 <= share_max.lit;
    let mut chunk = encode_streams(
        (old, new_chunk, start),
        &streams,
        coalesce_ranges(ranges, max_ranges),
        coder,
        probe,
    );
    if !probe {
        if lzma2 {
            prefer_lzma2(&mut chunk, None);
        }
        return (chunk, None);
    }
    (chunk, Some(Probed))
}

/// Finishes `enc` and encodes its chunk with the coder `choose` picks
/// from its streams and NEW length, declaring at most `max_ranges` OLD
/// ranges: as [`encode`] with that coder's codec (never LZMA2).
pub fn encode_chosen(
    enc: ChunkEncoder<'_>,
    max_ranges: usize,
    choose: impl FnOnce(&Streams, usize) -> Coder,
) -> EncodedChunk {
    let (old, new_chunk, start) = (enc.old(), enc.new_chunk(), enc.start());
    let (streams, ranges) = enc.finish();
    let coder = choose(&streams, new_chunk.len());
    encode_streams(
        (old, new_chunk, start),
        &streams,
        coalesce_ranges(ranges, max_ranges),
        coder,
        false,
    )
}

/// The search over codings of a finished chunk's `streams` with `coder`
/// (with `probe`, the literal stream at [`share::PROBE_LEVEL`] only).
fn encode_streams(
    (old, new_chunk, start): (&[u8], &[u8], u64),
    streams: &Streams,
    ranges: Vec<(u64, u64)>,
    coder: Coder,
    probe: bool,
) -> EncodedChunk {
    let codec = coder.codec();
    let side = if probe {
        Coder::Codec(Codec::Zstd(share::PROBE_LEVEL))
    } else {
        coder
    };
    let mut alternatives = Vec::new();
    let mut variants = None;
    if codec != Codec::None && !streams.diff.is_empty() {
        let v = DiffVariants::new(streams, old, new_chunk, start);
        alternatives = VARIANTS
            .iter()
            .filter(|&&(_, _, when)| when.holds(&v))
            .map(|&(add, order_split, _)| (add, order_split))
            .collect();
        variants = Some(v);
    }
    let make = |add: AddMode, order_split: bool, f: &mut dyn FnMut(&[u8])| {
        variants
            .as_ref()
            .expect("alternatives only with variants")
            .feed(add, order_split, f)
    };
    let best = (codec != Codec::None)
        .then(|| {
            best_coding(
                coder,
                side,
                streams,
                &alternatives,
                &make,
                start,
                new_chunk.len(),
            )
        })
        .filter(|(_, stored)| {
            let raw = streams.ctrl.len() + streams.diff.len() + streams.lit.len();
            stored.iter().map(|s| s.bytes.len()).sum::<usize>() < raw
        });
    // Streams that would grow overall are stored as they are.
    let (coding, stored) = best.unwrap_or_else(|| {
        let coding = ChunkCoding {
            add_mode: streams.add,
            operand_split: streams.split,
            ..ChunkCoding::plain(Codec::None)
        };
        let raw = |s: &Vec<u8>| StoredStream {
            raw_len: s.len(),
            bytes: s.clone(),
        };
        (
            coding,
            [&streams.ctrl, &streams.diff, &streams.lit].map(raw),
        )
    });
    EncodedChunk::from_stored(&coding, stored, ranges, start, new_chunk)
}

/// The smallest coding found of each stream with compressing `coder`
/// (the literal stream with `side`, the same kind of codec perhaps at
/// another level), the three searched side by side, and the streams so
/// stored. `alternatives` are the diff variants `make` produces.
fn best_coding(
    coder: Coder,
    side: Coder,
    streams: &Streams,
    alternatives: &[(AddMode, bool)],
    make: DiffVariant<'_>,
    new_offset: u64,
    new_len: usize,
) -> (ChunkCoding, [StoredStream; 3]) {
    let ctrl_limit = limits::max_ctrl_raw_len(new_len as u32);
    let (diff, ((ctrl, ctrl_split), (lit, lit_x86))) = rayon::join(
        || DiffLayout::best(coder, streams, alternatives, make),
        || {
            rayon::join(
                || best_ctrl(coder, &streams.ctrl, ctrl_limit),
                || best_lit(side, streams, new_offset),
            )
        },
    );
    let coding = ChunkCoding {
        codec: coder.codec(),
        diff_filter: diff.filter,
        add_mode: diff.add,
        operand_split: diff.split,
        ctrl_split,
        lit_x86,
        shared: false,
    };
    let diff = StoredStream {
        raw_len: diff.filtered_len,
        bytes: diff.stored,
    };
    (coding, [ctrl, diff, lit])
}

/// The control stream as is or split by field (format version 4),
/// whichever compresses smaller; `true` for the split form. The split form
/// carries a tag byte per op: it is tried only within the control
/// stream's limit `limit`, which applies to it as stored.
fn best_ctrl(coder: Coder, ctrl: &[u8], limit: u64) -> (StoredStream, bool) {
    let (plain, split) = rayon::join(
        || coder.stored(ctrl),
        || {
            coding::split(ctrl)
                .filter(|s| s.len() as u64 <= limit)
                .map(|s| coder.stored(&s))
        },
    );
    match split {
        Some(s) if s.bytes.len() < plain.bytes.len() => (s, true),
        _ => (plain, false),
    }
}

/// The literal stream as is or with the x86 literal filter (format
/// version 4, tried when the literals look like code), whichever
/// compresses smaller with `side`; `true` for the filtered form.
fn best_lit(side: Coder, streams: &Streams, new_offset: u64) -> (StoredStream, bool) {
    let (plain, filtered) = rayon::join(
        || side.stored(&streams.lit),
        || {
            lits_look_like_code(&streams.lit).then(|| {
                let mut filtered = streams.lit.clone();
                coding::filter_literals(&streams.ctrl, new_offset, &mut filtered);
                side.stored(&filtered)
            })
        },
    );
    match filtered {
        Some(f) if f.bytes.len() < plain.bytes.len() => (f, true),
        _ => (plain, false),
    }
}

/// Whether the x86 literal filter is worth trying on literal bytes
/// `lit`: at least one operand word per 64 bytes (words found by the
/// format's trigger rule, as the filter finds them).
fn lits_look_like_code(lit: &[u8]) -> bool {
    let mut n = 0usize;
    let mut k = 0;
    while k + 5 <= lit.len() {
        if split::trigger(lit, k) {
            n += 1;
            k += 5;
        } else {
            k += 1;
        }
    }
    n * 64 >= lit.len() && n > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxdelta_format::{Op, encode_chunk_as};

    #[test]
    fn literals_with_calls_look_like_code() {
        let mut lit = [0x90u8; 200];
        for at in [0usize, 100] {
            lit[at] = 0xe8;
        }
        assert!(lits_look_like_code(&lit[..64]));
        assert!(!lits_look_like_code(&[0x90; 200]));
    }

    /// The search only chooses: its chunk is what the format's encoder
    /// makes of the coding it chose, byte for byte.
    #[test]
    fn the_chosen_coding_is_the_formats_encoding() {
        let old: Vec<u8> = (0..40_000u32)
            .map(|i| match i % 9 {
                0 => 0xe8,
                1..=4 => (i / 9 * 13) as u8,
                _ => (i.wrapping_mul(2_654_435_761) >> 25) as u8,
            })
            .collect();
        let mut new = old[..20_000].to_vec();
        new.extend((0..3000u32).map(|i| (i * 7) as u8));
        new.extend_from_slice(&old[21_000..]);
        for i in (1..new.len()).step_by(9) {
            new[i] = new[i].wrapping_add(0x40);
        }
        let ops = [
            Op::Add {
                old: 0,
                len: 20_000,
            },
            Op::Insert { len: 3000 },
            Op::Add {
                old: 21_000,
                len: 19_000,
            },
        ];
        let mut lzma2 = 0;
        for codec in [
            Codec::None,
            Codec::Lz4,
            Codec::Zstd(3),
            Codec::Zstd(19),
            Codec::Lzma2,
        ] {
            let mut enc = ChunkEncoder::new(&old, &new, 0);
            for op in ops {
                enc.push(op);
            }
            let mut again = ChunkEncoder::new(&old, &new, 0);
            for op in ops {
                again.push(op);
            }
            let chunk = encode(enc, codec, 16);
            let (streams, ranges) = again.finish();
            let coding = chunk.entry.coding();
            let made = encode_chunk_as(&old, &streams, &coding, ranges, 0, &new);
            assert_eq!(made.entry, chunk.entry, "{codec:?}");
            assert!(made.payload == chunk.payload, "{codec:?}");
            if codec == Codec::Lzma2 {
                // Stored as LZMA2 only when that is the margin smaller.
                let zstd = encode_chunk_as(
                    &old,
                    &streams,
                    &ChunkCoding {
                        codec: search_codec(codec),
                        ..coding
                    },
                    vec![],
                    0,
                    &new,
                );
                let (z, l) = (zstd.payload.len(), chunk.payload.len());
                if coding.codec == Codec::Lzma2 {
                    assert!(l * 1000 <= z * (1000 - LZMA2_MARGIN_PERMILLE), "{l} vs {z}");
                    lzma2 += 1;
                } else {
                    assert_eq!(coding.codec, search_codec(codec));
                }
            }
        }
        assert!(lzma2 <= 1);
    }

    /// Bytes that depend on the byte before them (which LZMA's literal
    /// coder models and zstd's does not) are stored as LZMA2, at least
    /// the margin smaller than as zstd.
    #[test]
    fn lzma2_is_kept_where_it_pays() {
        let mut x = 5u64;
        let mut prev = 0u8;
        let new: Vec<u8> = (0..50_000)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                prev = prev.wrapping_mul(5).wrapping_add((x >> 62) as u8);
                prev
            })
            .collect();
        let chunk = |codec| {
            let mut enc = ChunkEncoder::new(&[], &new, 0);
            enc.push(Op::Insert { len: 50_000 });
            encode(enc, codec, 16)
        };
        let (l, z) = (chunk(Codec::Lzma2), chunk(search_codec(Codec::Lzma2)));
        assert_eq!(l.entry.codec, Codec::Lzma2);
        let (l, z) = (l.payload.len(), z.payload.len());
        assert!(l * 1000 <= z * (1000 - LZMA2_MARGIN_PERMILLE), "{l} vs {z}");
    }

    /// Incompressible streams stay zstd (or stored): LZMA2 never pays
    /// the margin there.
    #[test]
    fn lzma2_is_kept_only_where_it_pays() {
        let mut x = 77u64;
        let new: Vec<u8> = (0..50_000)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (x >> 56) as u8
            })
            .collect();
        let mut enc = ChunkEncoder::new(&[], &new, 0);
        enc.push(Op::Insert { len: 50_000 });
        let chunk = encode(enc, Codec::Lzma2, 16);
        assert_ne!(chunk.entry.codec, Codec::Lzma2);
    }
}
