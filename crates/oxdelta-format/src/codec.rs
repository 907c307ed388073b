//! Stream codecs: none, LZ4 (lz4_flex) and zstd.
//!
//! Every stream's raw length is declared in the chunk table, so decoding
//! writes into a buffer of exactly that size and fails if the codec would
//! produce more or fewer bytes: a tiny payload that claims a huge expansion
//! is refused by the declared sizes (and their limits) before anything is
//! allocated.

use crate::error::{Error, ErrorKind, Result};

/// How a chunk's streams are compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Codec {
    /// Stored as is.
    None,
    /// LZ4 block format (lz4_flex): the fastest to apply.
    Lz4,
    /// zstd at the given level (1..=22): the smallest patches.
    Zstd(i32),
}

impl Codec {
    /// The codec's id byte in the chunk table.
    pub fn id(self) -> u8 {
        match self {
            Codec::None => 0,
            Codec::Lz4 => 1,
            Codec::Zstd(_) => 2,
        }
    }

    /// The codec with id `id` (the zstd level does not matter for decoding).
    pub fn from_id(id: u8) -> Option<Codec> {
        match id {
            0 => Some(Codec::None),
            1 => Some(Codec::Lz4),
            2 => Some(Codec::Zstd(0)),
            _ => None,
        }
    }

    /// Name, as used on the command line (`none`, `lz4`, `zstd`).
    pub fn name(self) -> &'static str {
        match self {
            Codec::None => "none",
            Codec::Lz4 => "lz4",
            Codec::Zstd(_) => "zstd",
        }
    }

    /// Parses `none`, `lz4`, `zstd` or `zstd:LEVEL`.
    pub fn parse(s: &str) -> std::result::Result<Codec, String> {
        match s {
            "none" => Ok(Codec::None),
            "lz4" => Ok(Codec::Lz4),
            "zstd" => Ok(Codec::Zstd(DEFAULT_ZSTD_LEVEL)),
            _ => {
                let level = s
                    .strip_prefix("zstd:")
                    .and_then(|l| l.parse::<i32>().ok())
                    .filter(|l| (1..=22).contains(l))
                    .ok_or_else(|| {
                        format!(
                            "unknown codec '{s}': expected none, lz4, zstd or zstd:LEVEL (1-22)"
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
        };
        Ok(out)
    }
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
}
