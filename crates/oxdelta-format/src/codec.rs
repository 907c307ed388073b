//! Stream codecs: none, LZ4 (lz4_flex), zstd and LZMA2 (lzma-rust2).
//!
//! Every stream's raw length is declared in the chunk table, so decoding
//! writes into a buffer of exactly that size and fails if the codec would
//! produce more or fewer bytes: a tiny payload that claims a huge expansion
//! is refused by the declared sizes (and their limits) before anything is
//! allocated.
//!
//! LZMA2 (format version 7) is a raw LZMA2 stream, no container: it
//! stores no dictionary size, and a decoder uses one of the stream's
//! declared raw length ([`lzma2_dict_size`]), which holds the whole
//! stream; so the dictionary is bounded by the limits on raw lengths, and
//! a match reaching before the stream's start is an error. The decoder is
//! lzma-rust2 without its `optimization` feature: safe Rust only.

use std::io::{Read, Write};

use crate::error::{Error, ErrorKind, Result};

/// How a chunk's streams are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Stored as is.
    None,
    /// LZ4 block format (lz4_flex): the fastest to apply.
    Lz4,
    /// zstd at the given level (1..=22): small patches, fast to apply.
    Zstd(i32),
    /// LZMA2 (format version 7): 5–15% smaller than zstd 19 on diff
    /// streams of executables, several times slower to decode.
    Lzma2,
}

impl Codec {
    /// The codec's id byte in the chunk table.
    pub fn id(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Lz4 => 1,
            Codec::Zstd(_) => 2,
            Codec::Lzma2 => 3,
        }
    }

    /// The lowest format version that has this codec.
    pub fn min_version(self) -> u16 {
        match self {
            Codec::Lzma2 => 7,
            _ => 1,
        }
    }

    /// The codec with id `id` (the zstd level does not matter for decoding).
    pub fn from_id(id: u8) -> Option<Codec> {
        match id {
            0 => Some(Codec::None),
            1 => Some(Codec::Lz4),
            2 => Some(Codec::Zstd(0)),
            3 => Some(Codec::Lzma2),
            _ => None,
        }
    }

    /// Name, as used on the command line (`none`, `lz4`, `zstd`, `lzma2`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Lz4 => "lz4",
            Codec::Zstd(_) => "zstd",
            Codec::Lzma2 => "lzma2",
        }
    }

    /// Parses `none`, `lz4`, `zstd`, `zstd:LEVEL` or `lzma2`.
    pub fn parse(s: &str) -> std::result::Result<Codec, String> {
        match s {
            "none" => Ok(Codec::None),
            "lz4" => Ok(Codec::Lz4),
            "zstd" => Ok(Codec::Zstd(DEFAULT_ZSTD_LEVEL)),
            "lzma2" => Ok(Codec::Lzma2),
            _ => {
                let level = s
                    .strip_prefix("zstd:")
                    .and_then(|l| l.parse::<i32>().ok())
                    .filter(|l| (1..=22).contains(l))
                    .ok_or_else(|| {
                        format!(
                            "unknown codec '{s}': expected none, lz4, zstd, zstd:LEVEL (1-22) or lzma2"
                        )
                    })?;
                Ok(Codec::Zstd(level))
            }
        }
    }

    /// Compresses `raw`. Empty streams stay empty.
    pub fn compress(self, raw: &[u8]) -> Vec<u8> {
        if raw.is_empty() {
            return Vec::new();
        }
        match self {
            Codec::None => raw.to_vec(),
            Codec::Lz4 => lz4_flex::block::compress(raw),
            Codec::Zstd(level) => {
                let mut c = zstd::bulk::Compressor::new(level).expect("zstd compressor");
                // The window covers a whole chunk (8 MiB at most).
                zstd_tune(c.context_mut(), level, 23);
                c.compress(raw)
                    .expect("zstd compression into a growing buffer")
            }
            Codec::Lzma2 => lzma2_compress_with_prefix(raw, &[]),
        }
    }

    /// Memory one [`Codec::compress`] call holds beside its input and
    /// output, for streams of up to 8 MiB: the codec's state (zstd's
    /// match-finder tables, which grow with the level up to 15 and are
    /// bounded from 16 on, see `zstd_tune`; lz4's hash table). Measured
    /// with `ZSTD_sizeof_CCtx` after compressing 8 MiB at each level,
    /// rounded up; the test below keeps it true.
    pub fn state_bound(self) -> u64 {
        const MIB: u64 = 1 << 20;
        match self {
            Codec::None => 0,
            Codec::Lz4 => 64 << 10,
            Codec::Zstd(level) => {
                let mib: u64 = match level {
                    ..=2 => 1,
                    3 => 2,
                    4..=6 => 4,
                    7..=8 => 6,
                    9 => 11,
                    10..=11 => 21,
                    12 => 41,
                    13 => 33,
                    14 => 49,
                    15 => 65,
                    16..=17 => 6,
                    _ => 7,
                };
                mib * MIB
            }
            // LZMA2's encoder: about 12 bytes per byte of its dictionary
            // (at most LZMA2_ENCODER_DICT_MAX, 1 MiB: binary tree, hash
            // tables, window) and its buffers; from the crate's own memory
            // formula, not measured by the test below.
            Codec::Lzma2 => 14 * MIB,
        }
    }

    /// Decompresses `stored` into exactly `raw_len` bytes.
    pub fn decompress(self, stored: &[u8], raw_len: usize, what: &str) -> Result<Vec<u8>> {
        if raw_len == 0 {
            if !stored.is_empty() {
                return Err(Error::new(ErrorKind::Codec(format!(
                    "{what}: data stored for an empty stream"
                ))));
            }
            return Ok(Vec::new());
        }
        let err = |m: String| Error::new(ErrorKind::Codec(format!("{what}: {m}")));
        let out = match self {
            Codec::None => {
                if stored.len() != raw_len {
                    return Err(err(format!(
                        "stored {} bytes, declared {raw_len}",
                        stored.len()
                    )));
                }
                stored.to_vec()
            }
            Codec::Lz4 => {
                let mut out = vec![0u8; raw_len];
                let n = lz4_flex::block::decompress_into(stored, &mut out)
                    .map_err(|e| err(e.to_string()))?;
                if n != raw_len {
                    return Err(err(format!("decoded {n} bytes, declared {raw_len}")));
                }
                out
            }
            Codec::Zstd(_) => {
                let mut out = Vec::with_capacity(raw_len);
                let mut d = zstd::bulk::Decompressor::new().map_err(|e| err(e.to_string()))?;
                let _ = d.set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(27));
                let n = d
                    .decompress_to_buffer(stored, &mut out)
                    .map_err(|e| err(e.to_string()))?;
                if n != raw_len {
                    return Err(err(format!("decoded {n} bytes, declared {raw_len}")));
                }
                out
            }
            Codec::Lzma2 => lzma2_decode(stored, raw_len, &[]).map_err(err)?,
        };
        Ok(out)
    }
}

/// Smallest LZMA2 dictionary (LZMA2's own minimum, 4 KiB).
const LZMA2_DICT_MIN: usize = 4 << 10;

/// Largest dictionary the LZMA2 encoder uses (1 MiB). The decoder's is
/// the stream's length ([`lzma2_dict_size`]), so any smaller one encodes
/// streams it decodes; this one bounds the encoder's memory (about 12
/// bytes per dictionary byte with its binary-tree match finder, so 12 MiB
/// per thread, where a whole 16 MiB stream would take 190 MiB). See
/// docs/NOTES.md for what it costs in size.
pub const LZMA2_ENCODER_DICT_MAX: usize = 1 << 20;

/// Largest dictionary the LZMA2 encoder uses for a stream with a prefix
/// (16 MiB): the shared section's literal block, one per patch, up to
/// [`crate::limits::MAX_SHARED_LIT_WIDE`] bytes after a context of up
/// to [`crate::limits::MAX_SHARED_CONTEXT_WIDE`]. About 12 bytes of
/// encoder memory per dictionary byte, so about 200 MiB at most. A 23 MB
/// literal block of generated source (xz at preset 9e): 741,167 bytes
/// with an 8 MiB dictionary, 720,735 with 16 MiB, 717,257 with 64 MiB.
pub const LZMA2_PREFIX_DICT_MAX: usize = 16 << 20;

/// The dictionary an LZMA2 decoder uses for a stream of `raw_len`
/// decoded bytes: `raw_len`, at least 4 KiB. It holds the whole stream,
/// so a valid stream never needs more, and it is bounded by the limits
/// on raw lengths (`crate::limits`), checked before anything is decoded.
pub fn lzma2_dict_size(raw_len: usize) -> usize {
    raw_len.max(LZMA2_DICT_MIN)
}

/// LZMA2 at preset 9 with the extreme preset's search (longest match
/// length 273, match-finder depth 512) of `raw` with `prefix` as its
/// preset dictionary (a decoder needs the same prefix; see
/// [`lzma2_decompress_with_prefix`]): one LZMA2 stream with its end
/// marker, lc/lp/pb LZMA's defaults (3/0/2). Without a prefix the
/// dictionary is `raw`'s length within [`LZMA2_ENCODER_DICT_MAX`] (chunk
/// streams, compressed side by side); with one it is the decoder's, the
/// prefix and `raw` together, within [`LZMA2_PREFIX_DICT_MAX`], so every
/// prefix byte can be matched from the start of `raw` (the shared
/// section's literal block: one per patch, its prefix at most
/// [`crate::limits::MAX_SHARED_CONTEXT_WIDE`], about 12 bytes of encoder
/// memory per dictionary byte). Empty input stays empty.
pub fn lzma2_compress_with_prefix(raw: &[u8], prefix: &[u8]) -> Vec<u8> {
    lzma2_with_prefix_at_depth(raw, prefix, LZMA2_DEPTH)
}

/// The match-finder depth of [`lzma2_compress_with_prefix`] (the extreme
/// preset's).
pub const LZMA2_DEPTH: i32 = 512;

/// The match-finder depth of [`lzma2_compress_part`]: a big literal block
/// of text (repeats in every window) walks deep binary trees for every
/// byte it loads or skips. tar-gen's 23 MB block in two parts after an
/// 8 MiB context, whole patch bytes / user CPU seconds of the diff (one
/// run each at load ~5): depth 512 1,389,974 / 59.3, 128 1,391,722 /
/// 49.8, 48 1,394,431 / 39.4 (a shorter longest match, 128 at depth 128,
/// made 1,422,362 / 28.6). On binary code the trees are shallow: exe-rust's
/// wide block was as large at depths 64, 128 and 512, in the same time.
pub const LZMA2_PART_DEPTH: i32 = 48;

/// [`lzma2_compress_with_prefix`] with match-finder depth `depth`.
fn lzma2_with_prefix_at_depth(raw: &[u8], prefix: &[u8], depth: i32) -> Vec<u8> {
    use lzma_rust2::{Lzma2Options, Lzma2Writer, LzmaOptions};
    if raw.is_empty() {
        return Vec::new();
    }
    let mut o = LzmaOptions::with_preset(9);
    let span = raw.len().saturating_add(prefix.len());
    o.dict_size = if prefix.is_empty() {
        span.clamp(LZMA2_DICT_MIN, LZMA2_ENCODER_DICT_MAX)
    } else {
        lzma2_dict_size(span).min(LZMA2_PREFIX_DICT_MAX)
    } as u32;
    o.nice_len = LzmaOptions::NICE_LEN_MAX;
    o.depth_limit = depth;
    if !prefix.is_empty() {
        o.preset_dict = Some(prefix.to_vec());
    }
    let opts = Lzma2Options {
        lzma_options: o,
        chunk_size: None,
    };
    let mut w = Lzma2Writer::new(Vec::with_capacity(raw.len() / 4 + 64), opts);
    w.write_all(raw).expect("LZMA2 into a growing buffer");
    w.finish().expect("LZMA2 into a growing buffer")
}

/// Bytes `part` of `raw` (after `prefix`, as [`lzma2_compress_with_prefix`]
/// takes them) as an LZMA2 stream that [`lzma2_join_parts`] joins with
/// the streams of the parts before and after it into one stream of all
/// of `raw`, which decodes with `prefix` as any such stream does. Parts
/// are coded side by side: a part's matches reach back at most about
/// `window` bytes (at most [`LZMA2_PREFIX_DICT_MAX`]; the whole-stream
/// encoder reaches that far too), into the prefix and the parts before
/// it, which its encoder loads as its preset dictionary, so a part after
/// the first costs a load of up to `window` bytes more (exe-rust's 6.7 MB
/// context: ~4 s of CPU, about half what coding as many bytes costs).
///
/// The window starts on a multiple of 16 bytes of prefix and `raw`
/// together, so the part's first byte sits at the same position modulo 16
/// for its encoder as for a decoder of the whole stream, whichever
/// position LZMA's position bits (pb, lp) are read from. (lzma-rust2 also
/// decodes parts whose window is shifted by any amount: a preset shifted
/// by 1, 2 or 4 bytes decoded in a throwaway test; the alignment is kept
/// as the rule that holds either way.) The first part's window is the
/// whole prefix (as [`lzma2_compress_with_prefix`]). Parts are coded at
/// match-finder depth [`LZMA2_PART_DEPTH`].
pub fn lzma2_compress_part(
    raw: &[u8],
    prefix: &[u8],
    part: std::ops::Range<usize>,
    window: usize,
) -> Vec<u8> {
    if part.start == 0 {
        return lzma2_with_prefix_at_depth(&raw[part], prefix, LZMA2_PART_DEPTH);
    }
    let before = prefix.len() + part.start;
    let from = before
        .saturating_sub(window.min(LZMA2_PREFIX_DICT_MAX))
        .next_multiple_of(16)
        .min(before);
    let mut dict = Vec::with_capacity(before - from);
    if from < prefix.len() {
        dict.extend_from_slice(&prefix[from..]);
    }
    dict.extend_from_slice(&raw[from.saturating_sub(prefix.len())..part.start]);
    lzma2_with_prefix_at_depth(&raw[part], &dict, LZMA2_PART_DEPTH)
}

/// The streams [`lzma2_compress_part`] made of consecutive, non-empty
/// parts of one stream, in order, as one LZMA2 stream: every part's end
/// marker but the last is dropped. A part after the first had a preset
/// dictionary, so its first chunk keeps the dictionary (control byte
/// `02`, or `C0`: state reset with properties), and a decoder of the
/// whole stream, whose dictionary holds the prefix and every byte before
/// the part, reads it as the part's encoder wrote it.
pub fn lzma2_join_parts(parts: Vec<Vec<u8>>) -> Vec<u8> {
    let n = parts.len();
    let mut out = Vec::with_capacity(parts.iter().map(Vec::len).sum());
    for (i, p) in parts.into_iter().enumerate() {
        let end = if i + 1 < n {
            debug_assert_eq!(p.last(), Some(&0), "an LZMA2 end marker");
            p.len() - 1
        } else {
            p.len()
        };
        out.extend_from_slice(&p[..end]);
    }
    out
}

/// Decodes an LZMA2 stream made by [`lzma2_compress_with_prefix`] with
/// the same `prefix` into exactly `raw_len` bytes (checked against the
/// limits by the caller). The dictionary is [`lzma2_dict_size`] of the
/// prefix and `raw_len` together.
pub fn lzma2_decompress_with_prefix(
    stored: &[u8],
    raw_len: usize,
    prefix: &[u8],
    what: &str,
) -> Result<Vec<u8>> {
    if raw_len == 0 {
        if !stored.is_empty() {
            return Err(Error::new(ErrorKind::Codec(format!(
                "{what}: data stored for an empty stream"
            ))));
        }
        return Ok(Vec::new());
    }
    lzma2_decode(stored, raw_len, prefix)
        .map_err(|m| Error::new(ErrorKind::Codec(format!("{what}: {m}"))))
}

/// Decodes the LZMA2 stream `stored` into exactly `raw_len` bytes (at
/// least one): its end marker must follow them, and nothing may follow
/// the end marker. Memory: the output and a dictionary of
/// [`lzma2_dict_size`]`(prefix + raw_len)` bytes, which holds the prefix
/// and the whole output, so a match reaching before the prefix is an
/// error.
fn lzma2_decode(
    stored: &[u8],
    raw_len: usize,
    prefix: &[u8],
) -> std::result::Result<Vec<u8>, String> {
    let dict = raw_len
        .checked_add(prefix.len())
        .map(lzma2_dict_size)
        .and_then(|d| u32::try_from(d).ok())
        .ok_or_else(|| format!("{raw_len} bytes declared, too long for LZMA2"))?;
    let preset = (!prefix.is_empty()).then_some(prefix);
    let mut r = lzma_rust2::Lzma2Reader::new(stored, dict, preset);
    let mut out = vec![0u8; raw_len];
    r.read_exact(&mut out).map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => {
            format!("LZMA2 stream ends before the declared {raw_len} bytes")
        }
        _ => format!("LZMA2: {e}"),
    })?;
    let mut more = [0u8; 1];
    match r.read(&mut more) {
        Ok(0) => {}
        Ok(_) => return Err(format!("LZMA2 stream decodes to more than {raw_len} bytes")),
        Err(e) => return Err(format!("LZMA2 stream has no end marker: {e}")),
    }
    let rest = r.into_inner().len();
    if rest != 0 {
        return Err(format!("{rest} bytes after the LZMA2 end marker"));
    }
    Ok(out)
}

/// Sets the zstd parameters every stream of this crate is compressed with:
/// a window of `2^window_log` bytes and, at the high levels, bounded
/// match-finder tables.
fn zstd_tune(c: &mut zstd::zstd_safe::CCtx<'_>, level: i32, window_log: u32) {
    use zstd::zstd_safe::CParameter;
    let _ = c.set_parameter(CParameter::CompressionLevel(level));
    let _ = c.set_parameter(CParameter::WindowLog(window_log));
    if level >= 16 {
        // The high levels would size their match-finder tables
        // for the window (up to 80 MiB per thread at level 19).
        // Measured on diff and literal streams of real pairs,
        // 2^20 chain and 2^18 hash entries (5 MiB) lose under
        // 0.1% of size, and keep the differ within its memory
        // bound of 6 bytes per OLD byte plus NEW.
        let _ = c.set_parameter(CParameter::ChainLog(20));
        let _ = c.set_parameter(CParameter::HashLog(18));
    }
    if level >= 19 {
        // Deeper search and longer optimal-parse targets: 2–3%
        // smaller diff streams (runs of zero diff bytes between
        // sparse changes) for about the same time with the
        // bounded tables above.
        let _ = c.set_parameter(CParameter::SearchLog(9));
        let _ = c.set_parameter(CParameter::TargetLength(999));
    }
}

/// zstd-compresses `raw` with the streaming engine's fast setting: level
/// 12's lazy2 match finder with tables of 2^20 entries (level 12's own are
/// 2^23, 41 MiB of context) and 4-byte minimum matches (level 12's are 5).
/// A decoder needs nothing of this (a window of 2^23 bytes, as
/// [`Codec::compress`]). Measured on the raw streams of the img-heavy
/// corpus pair's streaming patch (200 MB): 4.9 s of CPU against 30.6 s at
/// level 16, for 0.6% more bytes (unbounded level 12: 1.7% more on a slice
/// of it); 4-byte matches alone are worth 1.7% on that code. Empty input
/// stays empty.
pub fn zstd_compress_fast(raw: &[u8]) -> Vec<u8> {
    use zstd::zstd_safe::CParameter;
    if raw.is_empty() {
        return Vec::new();
    }
    let mut c = zstd::zstd_safe::CCtx::create();
    zstd_tune(&mut c, 12, 23);
    let _ = c.set_parameter(CParameter::HashLog(20));
    let _ = c.set_parameter(CParameter::ChainLog(20));
    let _ = c.set_parameter(CParameter::MinMatch(4));
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(raw.len()));
    c.compress2(&mut out, raw)
        .expect("zstd compression into a buffer of the bound");
    out
}

/// Memory one [`zstd_compress_fast`] call holds beside its input and
/// output, for streams of up to 8 MiB (as [`Codec::state_bound`]).
pub const ZSTD_FAST_STATE_BOUND: u64 = 6 << 20;

/// zstd-compresses `raw` at `level` with `prefix` as its raw-content
/// prefix (a decoder needs the same prefix; see
/// [`zstd_decompress_with_prefix`]). The window covers prefix and data.
/// Empty input stays empty.
pub fn zstd_compress_with_prefix(level: i32, raw: &[u8], prefix: &[u8]) -> Vec<u8> {
    if raw.is_empty() {
        return Vec::new();
    }
    let mut c = zstd::zstd_safe::CCtx::create();
    let span = (raw.len() + prefix.len()).max(1 << 10);
    let window_log = usize::BITS - (span - 1).leading_zeros();
    zstd_tune(&mut c, level, window_log.clamp(10, 24));
    if level >= 16 && !prefix.is_empty() {
        // The binary tree of the high levels holds 2^(chainLog − 1)
        // positions: with zstd_tune's 2^20, context bytes more than 512 KiB
        // back are not found. Sized for the span instead (at most 2^24
        // entries, 64 MiB, for the 8 MiB wide context; a span is at most
        // OLD's context plus a literal block, so this stays within the
        // differ's bound of 6 bytes per OLD byte plus NEW). Measured on a
        // JavaScript bundle's literal block with a 1.3 MiB context: 22,399
        // B with 2^20, 20,664 with 2^22.
        let chain_log = (window_log + 1).clamp(20, 24);
        let _ = c.set_parameter(zstd::zstd_safe::CParameter::ChainLog(chain_log));
        // The hash table's heads grow with the tree: with zstd_tune's 2^18
        // heads under a 2^24-entry tree, each head's tree is deep and every
        // insertion walks it (exe-rust's wide literal block at level 19:
        // 8.1 s with 2^18 heads, 6.2 s with 2^22, the same bytes).
        let hash_log = (chain_log - 2).clamp(18, 22);
        let _ = c.set_parameter(zstd::zstd_safe::CParameter::HashLog(hash_log));
    }
    let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(raw.len()));
    if !prefix.is_empty() {
        c.ref_prefix(prefix).expect("zstd prefix");
    }
    c.compress2(&mut out, raw)
        .expect("zstd compression into a buffer of the bound");
    out
}

/// Decompresses a zstd frame made by [`zstd_compress_with_prefix`] with the
/// same `prefix` into exactly `raw_len` bytes.
pub fn zstd_decompress_with_prefix(
    stored: &[u8],
    raw_len: usize,
    prefix: &[u8],
    what: &str,
) -> Result<Vec<u8>> {
    let err = |m: String| Error::new(ErrorKind::Codec(format!("{what}: {m}")));
    if raw_len == 0 {
        if !stored.is_empty() {
            return Err(err("data stored for an empty stream".into()));
        }
        return Ok(Vec::new());
    }
    let mut d = zstd::zstd_safe::DCtx::create();
    let _ = d.set_parameter(zstd::zstd_safe::DParameter::WindowLogMax(27));
    if !prefix.is_empty() {
        d.ref_prefix(prefix)
            .map_err(|c| err(zstd::zstd_safe::get_error_name(c).into()))?;
    }
    let mut out = Vec::with_capacity(raw_len);
    let n = d
        .decompress(&mut out, stored)
        .map_err(|c| err(zstd::zstd_safe::get_error_name(c).into()))?;
    if n != raw_len {
        return Err(err(format!("decoded {n} bytes, declared {raw_len}")));
    }
    Ok(out)
}

/// The default zstd level for `--codec zstd`.
pub const DEFAULT_ZSTD_LEVEL: i32 = 19;

#[cfg(test)]
mod tests {
    use super::*;

    /// [`Codec::state_bound`] holds at every zstd level for the largest
    /// stream a chunk has.
    #[test]
    fn zstd_state_stays_within_its_bound() {
        let raw: Vec<u8> = (0..8u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 29) as u8)
            .collect();
        for level in 1..=22 {
            let mut c = zstd::bulk::Compressor::new(level).unwrap();
            zstd_tune(c.context_mut(), level, 23);
            c.compress(&raw).unwrap();
            let used = c.context_mut().sizeof() as u64;
            let bound = Codec::Zstd(level).state_bound();
            assert!(used <= bound, "level {level}: {used} > {bound}");
            assert!(
                used * 2 > bound,
                "level {level}: bound {bound} far above {used}"
            );
        }
    }
    /// [`ZSTD_FAST_STATE_BOUND`] holds, and the fast setting decodes as
    /// any zstd stream.
    #[test]
    fn fast_zstd_stays_within_its_bound() {
        let raw: Vec<u8> = (0..8u32 << 20)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 29) as u8)
            .collect();
        let mut c = zstd::zstd_safe::CCtx::create();
        zstd_tune(&mut c, 12, 23);
        let _ = c.set_parameter(zstd::zstd_safe::CParameter::HashLog(20));
        let _ = c.set_parameter(zstd::zstd_safe::CParameter::ChainLog(20));
        let _ = c.set_parameter(zstd::zstd_safe::CParameter::MinMatch(4));
        let mut out = Vec::with_capacity(zstd::zstd_safe::compress_bound(raw.len()));
        c.compress2(&mut out, &raw).unwrap();
        let used = c.sizeof() as u64;
        assert!(used <= ZSTD_FAST_STATE_BOUND, "{used}");
        assert!(used * 2 > ZSTD_FAST_STATE_BOUND, "bound far above {used}");
        let fast = zstd_compress_fast(&raw);
        assert_eq!(fast, out);
        let back = Codec::Zstd(0).decompress(&fast, raw.len(), "test").unwrap();
        assert!(back == raw);
    }

    /// Bytes that compress: code-like words with some noise.
    fn sample(n: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9u32;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                if i % 5 == 0 {
                    (x >> 24) as u8
                } else {
                    (i / 40) as u8
                }
            })
            .collect()
    }

    #[test]
    fn every_codec_round_trips_at_boundary_lengths() {
        for codec in [Codec::None, Codec::Lz4, Codec::Zstd(3), Codec::Lzma2] {
            for n in [0, 1, 4095, 4096, 4097, 65_535, 65_536, 65_537, 200_000] {
                let raw = sample(n);
                let stored = codec.compress(&raw);
                assert!(
                    stored.len() as u64 <= crate::limits::max_stored_len(n as u64),
                    "{codec:?} {n}"
                );
                let back = codec.decompress(&stored, n, "test").unwrap();
                assert!(back == raw, "{codec:?} {n}");
            }
        }
        assert_eq!(Codec::from_id(3), Some(Codec::Lzma2));
        assert_eq!(Codec::parse("lzma2"), Ok(Codec::Lzma2));
        assert_eq!(Codec::Lzma2.min_version(), 7);
        assert_eq!(Codec::Zstd(19).min_version(), 1);
    }

    /// Incompressible input stays within the stored-length limit (LZMA2
    /// stores it in uncompressed chunks).
    #[test]
    fn lzma2_of_random_bytes_stays_within_the_stored_limit() {
        let mut x = 1u64;
        let raw: Vec<u8> = (0..300_000)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (x >> 56) as u8
            })
            .collect();
        let stored = Codec::Lzma2.compress(&raw);
        assert!(stored.len() as u64 <= crate::limits::max_stored_len(raw.len() as u64));
        assert!(stored.len() > raw.len());
        assert!(Codec::Lzma2.decompress(&stored, raw.len(), "t").unwrap() == raw);
    }

    /// The declared length is exact: a stream that decodes to more or
    /// fewer bytes, lacks its end marker, has bytes after it, or is cut
    /// or damaged is an error (never a panic).
    #[test]
    fn lzma2_streams_must_decode_to_exactly_the_declared_length() {
        let raw = sample(100_000);
        let s = Codec::Lzma2.compress(&raw);
        let d = |stored: &[u8], n: usize| Codec::Lzma2.decompress(stored, n, "diff stream");
        assert!(d(&s, raw.len()).is_ok());
        let short = d(&s, raw.len() - 1).unwrap_err().to_string();
        assert!(short.contains("more than"), "{short}");
        let long = d(&s, raw.len() + 1).unwrap_err().to_string();
        assert!(long.contains("ends before"), "{long}");
        assert_eq!(s.last(), Some(&0), "the end marker");
        assert!(d(&s[..s.len() - 1], raw.len()).is_err(), "no end marker");
        let mut trailing = s.clone();
        trailing.push(0);
        let t = d(&trailing, raw.len()).unwrap_err().to_string();
        assert!(t.contains("after the LZMA2 end marker"), "{t}");
        for cut in [0, 1, 5, s.len() / 2] {
            assert!(d(&s[..cut], raw.len()).is_err(), "cut at {cut}");
        }
        for at in (0..s.len()).step_by(97) {
            let mut bad = s.clone();
            bad[at] ^= 0x55;
            // Damage may go unnoticed by the codec (the payload hash
            // catches it); it must not panic or decode to another length.
            if let Ok(out) = d(&bad, raw.len()) {
                assert_eq!(out.len(), raw.len());
            }
        }
    }

    /// With a prefix, LZMA2's dictionary spans all of it: literals that
    /// repeat the prefix's first bytes, 3 MiB back, cost a few bytes (a
    /// 1 MiB dictionary cannot reach them: incompressible bytes), and
    /// decode with the same prefix.
    #[test]
    fn lzma2_prefix_is_matched_from_its_start() {
        let mut x = 9u64;
        let prefix: Vec<u8> = (0..3 << 20)
            .map(|_| {
                x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                (x >> 56) as u8
            })
            .collect();
        let raw = &prefix[..64 << 10];
        let stored = lzma2_compress_with_prefix(raw, &prefix);
        assert!(stored.len() < 1024, "{} bytes", stored.len());
        let back = lzma2_decompress_with_prefix(&stored, raw.len(), &prefix, "literal block");
        assert_eq!(back.expect("decodes"), raw);
    }

    /// A stream whose matches reach before its own start (here: made with
    /// a preset dictionary the decoder does not have) needs more than its
    /// raw length of dictionary, and is refused.
    /// Parts coded apart and joined decode as one stream with the prefix:
    /// with a window that holds everything before each part, and with one
    /// that cuts it, at odd boundaries (prefix and part starts odd, the
    /// window even).
    #[test]
    fn lzma2_parts_join_into_one_stream() {
        let mut x = 7u32;
        let mut word = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            [
                "let ", "x = ", "foo(", "bar", ");\n", "    ", "return ", "1",
            ][(x % 8) as usize]
        };
        let prefix: Vec<u8> = (0..1500).flat_map(|_| word().bytes()).collect();
        let prefix = &prefix[..5003];
        let mut raw: Vec<u8> = (0..9000).flat_map(|_| word().bytes()).collect();
        raw.extend_from_slice(&prefix[1000..4000]);
        let raw = &raw[..30_001];
        let whole = lzma2_compress_with_prefix(raw, prefix);
        for (cuts, window) in [
            (vec![0, 7_778, raw.len()], LZMA2_PREFIX_DICT_MAX),
            (vec![0, 7_778, 19_001, raw.len()], 6_000),
            (vec![0, 3, 29_999, raw.len()], 10_000),
        ] {
            let parts: Vec<Vec<u8>> = cuts
                .windows(2)
                .map(|c| lzma2_compress_part(raw, prefix, c[0]..c[1], window))
                .collect();
            assert_eq!(
                parts[0],
                lzma2_with_prefix_at_depth(&raw[..cuts[1]], prefix, LZMA2_PART_DEPTH)
            );
            let joined = lzma2_join_parts(parts);
            let back = lzma2_decompress_with_prefix(&joined, raw.len(), prefix, "parts");
            assert!(back.unwrap() == raw, "{cuts:?} window {window}");
            // A few bytes per part for its fresh state, no more.
            assert!(
                joined.len() < whole.len() + 400,
                "{} {}",
                joined.len(),
                whole.len()
            );
        }
    }

    #[test]
    fn lzma2_matches_before_the_stream_start_are_refused() {
        use lzma_rust2::{Lzma2Options, Lzma2Writer, LzmaOptions};
        let prefix = sample(50_000);
        let raw = prefix[10_000..30_000].to_vec();
        let mut o = LzmaOptions::with_preset(6);
        o.dict_size = 1 << 20;
        o.preset_dict = Some(prefix);
        let mut w = Lzma2Writer::new(
            Vec::new(),
            Lzma2Options {
                lzma_options: o,
                chunk_size: None,
            },
        );
        w.write_all(&raw).unwrap();
        let s = w.finish().unwrap();
        assert!(
            s.len() < 200,
            "the stream copies from the preset dictionary"
        );
        let e = Codec::Lzma2.decompress(&s, raw.len(), "diff stream");
        assert!(e.is_err());
    }
}
