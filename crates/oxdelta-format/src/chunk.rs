//! One chunk's coding, and the chunk encoded as that coding.
//!
//! A chunk's three streams may each go through reversible transforms
//! before compression: the diff stream through an ADD mode, the operand
//! split's order and a run layout ([`crate::filter`], [`crate::operand`]),
//! the control stream through the split by field and the literal stream
//! through the x86 filter ([`crate::coding`]). [`ChunkCoding`] names one
//! choice of each; it is the one reader and writer of the two coding bytes
//! of a chunk-table entry, whose meaning depends on the format version.
//!
//! [`encode_chunk_as`] encodes a chunk as a given coding and nothing else:
//! this crate makes no choice between codings. Which coding a chunk gets
//! (trying several, comparing their sizes) is the differ's business.

use std::borrow::Cow;

use crate::codec::Codec;
use crate::cursor::Cursor;
use crate::error::{Error, Result};
use crate::filter::{AddMode, DiffFilter};
use crate::head::{ChunkEntry, StreamLen};
use crate::ops::{AddSources, Streams};
use crate::shared::NO_SHARED;
use crate::{coding, limits};

/// Every coding choice of one chunk: what the chunk table's codec byte and
/// diff coding byte (entry bytes 12 and 13) say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChunkCoding {
    /// Codec of the three streams (the zstd level is not stored).
    pub codec: Codec,
    /// Layout of the diff stream before compression (version 2).
    pub diff_filter: DiffFilter,
    /// How ADD combines diff bytes with OLD (version 2; operand modes 3).
    pub add_mode: AddMode,
    /// The diff stream is in the operand split's order (version 2).
    pub operand_split: bool,
    /// The control stream is split by field (version 4).
    pub ctrl_split: bool,
    /// The literal stream carries the x86 literal filter (version 4).
    pub lit_x86: bool,
    /// The control and literal streams are in the shared section (version 5).
    pub shared: bool,
}

impl ChunkCoding {
    /// No transform: the streams as the op encoder makes them (byte-wise
    /// ADD, op order), compressed with `codec`. Every version has it.
    pub fn plain(codec: Codec) -> ChunkCoding {
        ChunkCoding {
            codec,
            diff_filter: DiffFilter::None,
            add_mode: AddMode::Bytes,
            operand_split: false,
            ctrl_split: false,
            lit_x86: false,
            shared: false,
        }
    }

    /// The lowest format version that can express this coding.
    pub fn min_version(&self) -> u16 {
        let v2 = self.diff_filter != DiffFilter::None || self.operand_split;
        let v4 = self.ctrl_split || self.lit_x86;
        let v = self.add_mode.min_version().max(self.codec.min_version());
        v.max(if self.shared {
            5
        } else if v4 {
            4
        } else if v2 {
            2
        } else {
            1
        })
    }

    /// Appends the entry's codec byte and diff coding byte (zero in
    /// version 1, as every version-1 coding writes it).
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.push(
            self.codec.id()
                | u8::from(self.ctrl_split) << 4
                | u8::from(self.lit_x86) << 5
                | u8::from(self.shared) << 6,
        );
        out.push(
            self.diff_filter.id() | u8::from(self.operand_split) << 3 | self.add_mode.id() << 4,
        );
    }

    /// Reads the two coding bytes of entry `i` of a `version` patch,
    /// refusing bits the version does not have and combinations no encoder
    /// writes.
    pub(crate) fn read(c: &mut Cursor<'_>, i: u32, version: u16) -> Result<ChunkCoding> {
        let mut coding = read_codec_byte(c, i, version)?;
        if version >= 2 {
            read_diff_byte(c, i, version, &mut coding)?;
        } else {
            c.reserved_zero(1, "reserved chunk byte")?;
        }
        Ok(coding)
    }
}

/// Byte 12: the codec in the low bits; version 4: bit 4 the split control
/// stream, bit 5 the x86 literal filter, both only with a compressing
/// codec; version 5: bit 6 the shared section.
fn read_codec_byte(c: &mut Cursor<'_>, i: u32, version: u16) -> Result<ChunkCoding> {
    let at = c.offset();
    let byte = c.u8("chunk codec")?;
    let (codec_id, ctrl_split, lit_x86) = if version >= 4 {
        (byte & 0x0f, byte & 0x10 != 0, byte & 0x20 != 0)
    } else {
        (byte, false, false)
    };
    let shared = version >= 5 && byte & 0x40 != 0;
    let high = if version >= 5 { 0x80 } else { 0xc0 };
    let codec = Codec::from_id(codec_id)
        .filter(|c| byte & high == 0 && c.min_version() <= version)
        .ok_or_else(|| {
            Error::invalid(
                "chunk codec",
                format!(
                    "{} (chunk {i})",
                    if version >= 7 {
                        "0 to 3 in the low four bits, bit 7 zero"
                    } else if version >= 5 {
                        "0, 1 or 2 in the low four bits, bit 7 zero"
                    } else if version >= 4 {
                        "0, 1 or 2 in the low four bits, bits 6-7 zero"
                    } else {
                        "0, 1 or 2"
                    }
                ),
                byte,
                at,
            )
        })?;
    if (ctrl_split || lit_x86) && codec == Codec::None {
        return Err(Error::invalid(
            "chunk codec",
            format!("no stream coding bits with codec none (chunk {i})"),
            byte,
            at,
        ));
    }
    Ok(ChunkCoding {
        ctrl_split,
        lit_x86,
        shared,
        ..ChunkCoding::plain(codec)
    })
}

/// Byte 13 (version 2 on): bits 0-2 the diff stream's layout, bit 3 the
/// operand split, bits 4-7 ADD's mode.
fn read_diff_byte(
    c: &mut Cursor<'_>,
    i: u32,
    version: u16,
    coding: &mut ChunkCoding,
) -> Result<()> {
    let at = c.offset();
    let id = c.u8("diff coding")?;
    let f = DiffFilter::from_id(id & 0x07).ok_or_else(|| {
        Error::invalid(
            "diff filter",
            format!("0, 1 or 2 in the low three bits (chunk {i})"),
            id,
            at,
        )
    })?;
    let m = AddMode::from_id(id >> 4)
        .filter(|m| m.min_version() <= version)
        .ok_or_else(|| {
            Error::invalid(
                "ADD mode",
                format!(
                    "{} in the high four bits (chunk {i})",
                    match version {
                        11.. => "0 to 9",
                        10.. => "0 to 8",
                        9.. => "0 to 6",
                        8.. => "0 to 5",
                        6.. => "0 to 4",
                        3.. => "0 to 3",
                        _ => "0 or 1",
                    }
                ),
                id,
                at,
            )
        })?;
    if m.is_predicted() && id & 0x08 != 0 {
        return Err(Error::invalid(
            "diff coding",
            format!("no operand split with an operand ADD mode (chunk {i})"),
            id,
            at,
        ));
    }
    if f != DiffFilter::None && coding.codec == Codec::None {
        return Err(Error::invalid(
            "diff filter",
            format!("0 for a chunk stored with codec none (chunk {i})"),
            id,
            at,
        ));
    }
    (coding.diff_filter, coding.add_mode, coding.operand_split) = (f, m, id & 0x08 != 0);
    Ok(())
}

/// One stream as a payload stores it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoredStream {
    /// Its length after its coding, before compression (the chunk table's
    /// raw length).
    pub raw_len: usize,
    /// Its stored bytes: compressed with the chunk's codec, or the raw
    /// bytes with [`Codec::None`].
    pub bytes: Vec<u8>,
}

impl StoredStream {
    /// `raw` (a stream after its coding) compressed with `codec`.
    pub fn compress(codec: Codec, raw: &[u8]) -> StoredStream {
        StoredStream {
            raw_len: raw.len(),
            bytes: codec.compress(raw),
        }
    }
}

/// A chunk ready to be written: its table entry and its payload.
#[derive(Clone, Debug)]
pub struct EncodedChunk {
    /// Table entry (its `payload_offset` is filled in by [`crate::assemble`]).
    pub entry: ChunkEntry,
    /// Payload: stored control, diff and literal streams, in order.
    pub payload: Vec<u8>,
}

impl EncodedChunk {
    /// The chunk whose control, diff and literal streams, coded as `coding`
    /// says, are stored as `streams`; it produces `new_chunk` at NEW offset
    /// `new_offset` and reads OLD within `old_ranges` (sorted, disjoint, at
    /// most [`limits::MAX_OLD_RANGES_PER_CHUNK`]). Nothing is checked:
    /// the caller coded the streams (see [`encode_chunk_as`]).
    ///
    /// # Panics
    /// With a shared coding (shared chunks are made by
    /// [`crate::shared::SharedBlocks::finish`]), or lengths past `u32`.
    pub fn from_stored(
        coding: &ChunkCoding,
        streams: [StoredStream; 3],
        old_ranges: Vec<(u64, u64)>,
        new_offset: u64,
        new_chunk: &[u8],
    ) -> EncodedChunk {
        assert!(!coding.shared, "a chunk is shared only with its section");
        let len = |s: &StoredStream| StreamLen {
            raw: u32::try_from(s.raw_len).expect("stream length fits in u32"),
            stored: u32::try_from(s.bytes.len()).expect("stored length fits in u32"),
        };
        let (ctrl, diff, lit) = (len(&streams[0]), len(&streams[1]), len(&streams[2]));
        let payload = streams.map(|s| s.bytes).concat();
        EncodedChunk {
            entry: ChunkEntry {
                new_offset,
                new_len: u32::try_from(new_chunk.len()).expect("chunk length fits in u32"),
                codec: coding.codec,
                diff_filter: coding.diff_filter,
                add_mode: coding.add_mode,
                operand_split: coding.operand_split,
                ctrl_split: coding.ctrl_split,
                lit_x86: coding.lit_x86,
                shared: false,
                shared_ctrl_at: 0,
                shared_lit_at: 0,
                ctrl,
                diff,
                lit,
                payload_hash: *blake3::hash(&payload).as_bytes(),
                new_hash: *blake3::hash(new_chunk).as_bytes(),
                old_ranges,
                zero: false,
                payload_offset: 0,
            },
            payload,
        }
    }

    /// A zero chunk (format version 9) of `new_len` NEW bytes at
    /// `new_offset`: no payload ([`ChunkEntry::zeros`]).
    pub fn zeros(new_offset: u64, new_len: u32) -> EncodedChunk {
        EncodedChunk {
            entry: ChunkEntry::zeros(new_offset, new_len),
            payload: Vec::new(),
        }
    }

    /// The chunk's control and literal streams decompressed, still in
    /// their coded form (split control stream, filtered literals).
    ///
    /// # Panics
    /// For a shared chunk, or a payload this crate did not encode.
    pub fn coded_ctrl_lit(&self) -> (Vec<u8>, Vec<u8>) {
        let e = &self.entry;
        assert!(!e.shared, "a shared chunk's streams are in its section");
        let (cs, rest) = self.payload.split_at(e.ctrl.stored as usize);
        let ls = &rest[e.diff.stored as usize..];
        let (c, l) = NO_SHARED
            .streams(e, cs, ls)
            .expect("the encoder's own streams decompress");
        (c.into_owned(), l.into_owned())
    }

    /// The chunk's own streams (control, diff, literals) decompressed,
    /// still in their coded form; a shared chunk's control and literal
    /// streams are in its section, and empty here.
    ///
    /// # Panics
    /// For a payload this crate did not encode.
    pub fn coded_streams(&self) -> [Vec<u8>; 3] {
        let e = &self.entry;
        let (c, rest) = self.payload.split_at(e.ctrl.stored as usize);
        let (d, l) = rest.split_at(e.diff.stored as usize);
        let raw = |s: &[u8], len: &StreamLen, what| {
            let n = if e.shared && what != "diff" {
                0
            } else {
                len.raw
            };
            e.codec
                .decompress(s, n as usize, what)
                .expect("the encoder's own streams decompress")
        };
        [
            raw(c, &e.ctrl, "control"),
            raw(d, &e.diff, "diff"),
            raw(l, &e.lit, "literal"),
        ]
    }

    /// The chunk with its streams stored as `stored`, the streams of
    /// [`EncodedChunk::coded_streams`] compressed with `codec` (a
    /// compressing codec: the chunk's coding keeps its transforms). The
    /// table entry follows: codec, stored lengths, payload hash.
    ///
    /// # Panics
    /// With [`Codec::None`] or for a chunk stored with it.
    pub fn with_codec(&self, codec: Codec, stored: [Vec<u8>; 3]) -> EncodedChunk {
        assert!(
            codec != Codec::None && self.entry.codec != Codec::None,
            "a chunk's transforms need a compressing codec"
        );
        let mut entry = self.entry.clone();
        entry.codec = codec;
        let len = |s: &Vec<u8>| u32::try_from(s.len()).expect("stored length fits in u32");
        (entry.ctrl.stored, entry.diff.stored, entry.lit.stored) =
            (len(&stored[0]), len(&stored[1]), len(&stored[2]));
        let payload = stored.concat();
        entry.payload_hash = *blake3::hash(&payload).as_bytes();
        EncodedChunk { entry, payload }
    }

    /// Compresses the literal stream again with `codec` (the same kind of
    /// codec as the chunk's, at another level: the level is not part of
    /// the format). A chunk stored with codec none, or shared, is left as
    /// it is.
    pub fn recompress_literals(&mut self, codec: Codec) {
        let e = &self.entry;
        if e.codec == Codec::None || e.shared {
            return;
        }
        let (_, lit) = self.coded_ctrl_lit();
        let lit = codec.compress(&lit);
        let e = &mut self.entry;
        let keep = (e.ctrl.stored + e.diff.stored) as usize;
        self.payload.truncate(keep);
        self.payload.extend_from_slice(&lit);
        e.lit.stored = lit.len() as u32;
        e.payload_hash = *blake3::hash(&self.payload).as_bytes();
    }
}

impl ChunkEntry {
    /// The entry's coding.
    pub fn coding(&self) -> ChunkCoding {
        ChunkCoding {
            codec: self.codec,
            diff_filter: self.diff_filter,
            add_mode: self.add_mode,
            operand_split: self.operand_split,
            ctrl_split: self.ctrl_split,
            lit_x86: self.lit_x86,
            shared: self.shared,
        }
    }
}

/// Encodes one chunk as `coding` says, choosing nothing: each stream goes
/// through the transforms `coding` names and is compressed with its codec.
///
/// `streams` and `old_ranges` come from [`crate::ChunkEncoder::finish`]
/// for the chunk `new_chunk` at NEW offset `new_offset`; `old` is all of
/// OLD, read only when `coding` asks for an ADD mode or order other than
/// the streams' own (the diff stream is then made again from OLD and NEW,
/// see [`AddSources::encode`]).
///
/// # Panics
/// When `coding` cannot express the chunk: a shared coding, a transform
/// with [`Codec::None`], the operand split with an operand mode, or a
/// split control stream longer than [`limits::max_ctrl_raw_len`].
pub fn encode_chunk_as(
    old: &[u8],
    streams: &Streams,
    coding: &ChunkCoding,
    old_ranges: Vec<(u64, u64)>,
    new_offset: u64,
    new_chunk: &[u8],
) -> EncodedChunk {
    let codec = coding.codec;
    assert!(
        codec != Codec::None
            || (coding.diff_filter == DiffFilter::None && !coding.ctrl_split && !coding.lit_x86),
        "codec none stores the streams untransformed"
    );
    let ctrl = if coding.ctrl_split {
        let s = coding::split(&streams.ctrl).expect("the encoder's own control stream parses");
        assert!(
            s.len() as u64 <= limits::max_ctrl_raw_len(new_chunk.len() as u32),
            "split control stream over the limit"
        );
        Cow::Owned(s)
    } else {
        Cow::Borrowed(&streams.ctrl)
    };
    let diff = if (coding.add_mode, coding.operand_split) == (streams.add, streams.split) {
        Cow::Borrowed(&streams.diff)
    } else {
        let sources = AddSources::new(streams, old, new_chunk, new_offset);
        Cow::Owned(sources.encode(coding.add_mode, coding.operand_split))
    };
    let diff = match coding.diff_filter {
        DiffFilter::None => diff,
        f => Cow::Owned(f.encode(&diff)),
    };
    let mut lit = Cow::Borrowed(&streams.lit);
    if coding.lit_x86 {
        coding::filter_literals(&streams.ctrl, new_offset, lit.to_mut());
    }
    let stored = [&ctrl, &diff, &lit].map(|s| StoredStream::compress(codec, s));
    EncodedChunk::from_stored(coding, stored, old_ranges, new_offset, new_chunk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChunkEncoder, Op, apply_chunk, decode_chunk};

    /// OLD, NEW, the chunk's streams and OLD ranges.
    type Made = (Vec<u8>, Vec<u8>, Streams, Vec<(u64, u64)>);

    /// Code-like OLD, NEW with moved calls and new bytes, and a chunk's
    /// ops over them.
    fn chunk_streams() -> Made {
        let old: Vec<u8> = (0..6000u32)
            .map(|i| match i % 7 {
                0 => 0xe8,
                1 => (i / 7) as u8,
                _ => (i.wrapping_mul(2_654_435_761) >> 24) as u8,
            })
            .collect();
        let mut new = old.clone();
        for i in (1..new.len()).step_by(7) {
            new[i] = new[i].wrapping_add(3);
        }
        new.splice(3000..3000, old[100..400].iter().map(|b| b ^ 0x5a));
        let mut enc = ChunkEncoder::new(&old, &new, 0);
        enc.push(Op::Add { old: 0, len: 3000 });
        enc.push(Op::Insert { len: 300 });
        enc.push(Op::Add {
            old: 3000,
            len: 2900,
        });
        enc.push(Op::Add {
            old: 5900,
            len: 100,
        });
        let (streams, ranges) = enc.finish();
        (old, new, streams, ranges)
    }

    /// Every coding the format has encodes a chunk that decodes to the
    /// same ops and streams, applies to NEW, and writes its coding into
    /// the table entry.
    #[test]
    fn every_coding_round_trips() {
        let (old, new, streams, ranges) = chunk_streams();
        let mut seen = 0;
        for codec in [Codec::None, Codec::Lz4, Codec::Zstd(3), Codec::Lzma2] {
            for add_mode in AddMode::ALL {
                for operand_split in [false, true] {
                    for diff_filter in DiffFilter::ALL {
                        for (ctrl_split, lit_x86) in [(false, false), (true, false), (false, true)]
                        {
                            let coding = ChunkCoding {
                                codec,
                                diff_filter,
                                add_mode,
                                operand_split,
                                ctrl_split,
                                lit_x86,
                                shared: false,
                            };
                            let untransformed =
                                diff_filter == DiffFilter::None && !ctrl_split && !lit_x86;
                            if (codec == Codec::None && !untransformed)
                                || (add_mode.is_predicted() && operand_split)
                            {
                                continue;
                            }
                            let c =
                                encode_chunk_as(&old, &streams, &coding, ranges.clone(), 0, &new);
                            assert_eq!(c.entry.coding(), coding);
                            let d = decode_chunk(&c.entry, &c.payload).unwrap();
                            assert_eq!(
                                (d.ctrl.as_slice(), d.lit.as_slice()),
                                (streams.ctrl.as_slice(), streams.lit.as_slice())
                            );
                            assert_eq!((d.add, d.split), (add_mode, operand_split));
                            let mut out = vec![0u8; new.len()];
                            apply_chunk(&c.entry, &c.payload, &old, &mut out, false)
                                .unwrap_or_else(|e| panic!("{coding:?}: {e}"));
                            assert!(out == new, "{coding:?}");
                            seen += 1;
                        }
                    }
                }
            }
        }
        assert!(seen > 100);
    }

    /// The coding bytes read back as written, in the version they need.
    #[test]
    fn coding_bytes_read_as_written() {
        let codings = [
            ChunkCoding::plain(Codec::Lz4),
            ChunkCoding {
                diff_filter: DiffFilter::Tokens,
                add_mode: AddMode::Words32,
                operand_split: true,
                ..ChunkCoding::plain(Codec::Zstd(0))
            },
            ChunkCoding {
                add_mode: AddMode::OperandsAbs,
                ..ChunkCoding::plain(Codec::Zstd(0))
            },
            ChunkCoding {
                ctrl_split: true,
                lit_x86: true,
                ..ChunkCoding::plain(Codec::Zstd(0))
            },
            ChunkCoding {
                shared: true,
                diff_filter: DiffFilter::Runs,
                ..ChunkCoding::plain(Codec::Zstd(0))
            },
            ChunkCoding {
                add_mode: AddMode::Arm64,
                ..ChunkCoding::plain(Codec::Zstd(0))
            },
            ChunkCoding {
                ctrl_split: true,
                diff_filter: DiffFilter::Tokens,
                ..ChunkCoding::plain(Codec::Lzma2)
            },
            ChunkCoding {
                add_mode: AddMode::Wasm,
                diff_filter: DiffFilter::Runs,
                ..ChunkCoding::plain(Codec::Lzma2)
            },
            ChunkCoding {
                add_mode: AddMode::OperandsLearned,
                diff_filter: DiffFilter::Runs,
                ..ChunkCoding::plain(Codec::Zstd(0))
            },
            ChunkCoding {
                add_mode: AddMode::Riscv,
                diff_filter: DiffFilter::Tokens,
                ..ChunkCoding::plain(Codec::Lzma2)
            },
            ChunkCoding {
                add_mode: AddMode::Armv7,
                ..ChunkCoding::plain(Codec::Zstd(0))
            },
            ChunkCoding {
                add_mode: AddMode::Thumb2,
                diff_filter: DiffFilter::Runs,
                ..ChunkCoding::plain(Codec::Lzma2)
            },
        ];
        for (coding, version) in codings.iter().zip([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 11]) {
            assert_eq!(coding.min_version(), version);
            let mut bytes = Vec::new();
            coding.write(&mut bytes);
            for v in version..=crate::FORMAT_VERSION {
                let got = ChunkCoding::read(&mut Cursor::new(&bytes, 0), 0, v).unwrap();
                assert_eq!(got, *coding, "version {v}");
            }
            if version > 1 {
                let older = ChunkCoding::read(&mut Cursor::new(&bytes, 0), 0, version - 1);
                assert!(older.is_err(), "{coding:?} in version {}", version - 1);
            }
        }
    }
}
