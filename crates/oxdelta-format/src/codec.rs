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
                use zstd::zstd_safe::CParameter;
                let mut c = zstd::bulk::Compressor::new(level).expect("zstd compressor");
                // The window covers a whole chunk (8 MiB at most).
                let _ = c.set_parameter(CParameter::WindowLog(23));
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
                c.compress(raw)
                    .expect("zstd compression into a growing buffer")
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

/// The default zstd level for `--codec zstd`.
pub const DEFAULT_ZSTD_LEVEL: i32 = 19;
