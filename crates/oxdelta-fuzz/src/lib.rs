//! Fuzz properties of oxdelta, one function per libFuzzer target.
//!
//! Each function takes the fuzzer's raw bytes and panics only when a real
//! property is violated; any clean error from the code under test is a pass.
//! The libFuzzer targets in `fuzz/fuzz_targets/` only call these functions,
//! so every corpus and crash file can be replayed by a plain `cargo test` on
//! stable (see `tests/tests.rs`), without cargo-fuzz or nightly.
//!
//! | target         | input                         | property |
//! |----------------|-------------------------------|----------|
//! | [`parse`]        | bytes as a patch              | the parsers never panic; a parsed head re-encodes to the same bytes |
//! | [`decode_chunk`] | a [`ChunkInput`]              | codecs round-trip; the op applier equals a naive interpreter; a patch built around it applies to exactly that |
//! | [`apply`]        | bytes as a patch against [`fixed_old`] | a clean error, or NEW with the length and BLAKE3 the head names; with its hashes fixed up, it applies to what the chunks decode to |
//! | [`roundtrip`]    | a [`RoundtripInput`]          | diff → apply gives NEW back with both engines (suffix array, and streaming at its smallest budget); the patch does not depend on the thread count |
//! | [`inplace`]      | an [`InPlaceInput`]           | an in-place apply interrupted after any number of writes (and again while resuming) resumes to exactly NEW, then reports up to date |
//!
//! Structured inputs implement [`arbitrary::Arbitrary`] and have a
//! `to_bytes` inverse, so seed files can be written from values.
#![deny(missing_docs)]

use std::sync::OnceLock;

use arbitrary::{Arbitrary, Unstructured};
use oxdelta::{ApplyOptions, DiffOptions};
use oxdelta_format::coding;
use oxdelta_format::head::{self, Head};
use oxdelta_format::ops::{OpDecoder, apply_ops};
use oxdelta_format::sign::{SIGNATURE_BLOCK_LEN, SignatureBlock};
use oxdelta_format::{
    AddMode, ChunkEntry, Codec, DiffFilter, Engine, Metadata, Op, Patch, StreamLen, Streams,
};

/// A target: its name (as in `fuzz/fuzz_targets/NAME.rs`) and its property.
pub type Target = (&'static str, fn(&[u8]));

/// Every target, for replaying corpora.
pub const TARGETS: &[Target] = &[
    ("parse", parse),
    ("decode_chunk", decode_chunk),
    ("apply", apply),
    ("roundtrip", roundtrip),
    ("inplace", inplace),
];

/// Largest NEW the fuzz targets let the applier build (hostile patches can
/// name far more; the applier must refuse them cleanly).
const FUZZ_MAX_NEW: u64 = 16 << 20;

fn apply_opts() -> ApplyOptions {
    ApplyOptions {
        max_in_memory_len: FUZZ_MAX_NEW,
        ..ApplyOptions::default()
    }
}

/// The OLD the `apply` target patches: 4 KiB of deterministic, partly
/// repetitive bytes.
pub fn fixed_old() -> &'static [u8] {
    static OLD: OnceLock<Vec<u8>> = OnceLock::new();
    OLD.get_or_init(|| old_of_len(4096))
}

/// Deterministic OLD bytes of length `n`: text-like runs, a counter and
/// some zeros, so diffs find copies, adds and zero runs.
pub fn old_of_len(n: usize) -> Vec<u8> {
    let mut x: u32 = 0x9e37_79b9;
    (0..n)
        .map(|i| match (i / 512) % 4 {
            0 => b"the quick brown fox jumps over the lazy dog "[i % 44],
            1 => (i as u8).wrapping_mul(7),
            2 => 0,
            _ => {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            }
        })
        .collect()
}

/// `parse`: arbitrary bytes as a patch.
///
/// `Patch::parse`, `Head::parse`, `peek_head_len`, `peek_prefix_lens` and
/// `SignatureBlock::parse` never panic; when a head parses, encoding it
/// again gives back exactly its bytes (the format has one encoding): a
/// version-11 head as it is (its varints are canonical), a fixed-layout
/// head (versions 1 to 10) except the version field, since writers emit
/// the lowest version that expresses the head and readers also accept a
/// higher one. Every payload the parsed patch hands out has the length
/// its entry names.
pub fn parse(data: &[u8]) {
    let _ = head::peek_head_len(data);
    let _ = head::peek_prefix_lens(data);
    if let Ok(h) = Head::parse(data) {
        if h.version >= head::COMPACT_VERSION {
            let enc = Head::encode_with(&h.meta, &h.chunks, &h.shared);
            assert_eq!(
                enc[..],
                data[..h.head_len as usize],
                "a parsed version-11 head must re-encode to the same bytes"
            );
        } else {
            fixed_head_round_trips(data, &h);
        }
    }
    parse_signature_and_payloads(data);
}

/// A fixed-layout head `h` parsed from `data` encodes to its bytes, but
/// for a version that may be lower.
fn fixed_head_round_trips(data: &[u8], h: &Head) {
    let mut enc = Head::encode_fixed_with(&h.meta, &h.chunks, &h.shared);
    let written = u16::from_le_bytes([enc[8], enc[9]]);
    assert!(
        written <= h.version,
        "a head that parses as version {} needs version {written}",
        h.version
    );
    enc[8..10].copy_from_slice(&h.version.to_le_bytes());
    if h.version >= 5 && written < 5 {
        // A version-5+ head ends with the shared descriptor, all zero
        // when there is no section; the lowest version has none.
        enc.extend_from_slice(&[0; head::SHARED_DESC_LEN]);
        let len = u64::from_le_bytes(enc[12..20].try_into().expect("8 bytes"));
        enc[12..20].copy_from_slice(&(len + head::SHARED_DESC_LEN as u64).to_le_bytes());
    }
    assert_eq!(
        enc[..],
        data[..h.head_len as usize],
        "a parsed head must re-encode to the same bytes"
    );
}

/// The signature-block and payload half of [`parse`].
fn parse_signature_and_payloads(data: &[u8]) {
    for block in [
        data.get(..SIGNATURE_BLOCK_LEN),
        data.rchunks(SIGNATURE_BLOCK_LEN).next(),
    ]
    .into_iter()
    .flatten()
    {
        if let Ok(b) = SignatureBlock::parse(block, 0) {
            assert_eq!(
                b.to_bytes()[..],
                block[..],
                "a signature block must re-encode to its bytes"
            );
        }
    }
    if let Ok(p) = Patch::parse(data) {
        assert_eq!(p.head.patch_len(), data.len() as u64);
        let _ = p.verify_signature(None);
        let shared = oxdelta_format::Shared::decode_without_old(&p.head, p.shared_bytes())
            .unwrap_or_default();
        for (i, e) in p.head.chunks.iter().enumerate() {
            let payload = p.payload(i);
            assert_eq!(payload.len() as u64, e.payload_len());
            if let Ok(s) = oxdelta_format::decode_chunk_in(e, payload, &shared) {
                assert_eq!(s.ctrl.len(), e.ctrl.raw as usize);
                if e.diff_filter == DiffFilter::None {
                    assert_eq!(s.diff.len(), e.diff.raw as usize);
                }
                assert_eq!(s.lit.len(), e.lit.raw as usize);
                // A filtered diff stream never decodes past the chunk.
                assert!(s.diff.len() + s.lit.len() <= e.new_len as usize);
            }
        }
    }
}

/// Input of the `decode_chunk` target: one chunk's streams and the OLD it
/// reads, from which the target builds a valid head.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChunkInput {
    /// Codec id (taken modulo 3); the quotients pick the diff filter, the
    /// ADD mode, the operand split and the split control stream.
    pub codec: u8,
    /// Bit 0: compress the streams with the codec (else they are stored
    /// as given, with `raw_lens` as their declared raw lengths). Bit 1:
    /// declare all of OLD as one range (else `ranges`). Bit 2: the x86
    /// literal filter (with a compressing codec). Bit 3: the ADD mode
    /// arm64 (format version 6) instead of the one `codec` names. Bit 4:
    /// LZMA2 (format version 7) instead of the compressing codec `codec`
    /// names. Bit 5: the ADD mode wasm (format version 8) instead of the
    /// one `codec` names (bit 3 wins). Bit 6: the ADD mode operands-learned
    /// (format version 9) instead of the one `codec` names (bits 3 and 5
    /// win). Bit 7: the ADD mode riscv (format version 10), or armv7 (also
    /// version 10) when `codec` is 144 to 199, or thumb2 (version 11) when
    /// it is at least 200, instead of the one `codec` names (bits 3, 5 and
    /// 6 win).
    pub flags: u8,
    /// NEW bytes the chunk produces, minus one.
    pub new_len_m1: u16,
    /// Declared OLD ranges `(start, len)` when flag bit 1 is clear.
    pub ranges: Vec<(u16, u16)>,
    /// Declared raw lengths of the streams when flag bit 0 is clear.
    pub raw_lens: [u16; 3],
    /// OLD.
    pub old: Vec<u8>,
    /// Control, diff and literal streams (raw or stored, see `flags`).
    pub streams: [Vec<u8>; 3],
}

const FLAG_COMPRESS: u8 = 1;
const FLAG_WHOLE_OLD: u8 = 2;
const FLAG_LIT_X86: u8 = 4;
const FLAG_ARM64: u8 = 8;
const FLAG_LZMA2: u8 = 16;
const FLAG_WASM: u8 = 32;
const FLAG_LEARNED: u8 = 64;
const FLAG_RISCV: u8 = 128;

fn take_u16(u: &mut Unstructured<'_>) -> arbitrary::Result<u16> {
    Ok(u16::from_le_bytes(<[u8; 2]>::arbitrary(u)?))
}

impl<'a> Arbitrary<'a> for ChunkInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let codec = u8::arbitrary(u)?;
        let flags = u8::arbitrary(u)?;
        let new_len_m1 = take_u16(u)?;
        let n = u8::arbitrary(u)? % 5;
        let mut ranges = Vec::with_capacity(n as usize);
        for _ in 0..n {
            ranges.push((take_u16(u)?, take_u16(u)?));
        }
        let raw_lens = [take_u16(u)?, take_u16(u)?, take_u16(u)?];
        let lens = [take_u16(u)?, take_u16(u)?, take_u16(u)?, take_u16(u)?];
        let mut take = |len: u16| -> arbitrary::Result<Vec<u8>> {
            let n = usize::from(len).min(u.len());
            Ok(u.bytes(n)?.to_vec())
        };
        let old = take(lens[0])?;
        let streams = [take(lens[1])?, take(lens[2])?, take(lens[3])?];
        Ok(ChunkInput {
            codec,
            flags,
            new_len_m1,
            ranges,
            raw_lens,
            old,
            streams,
        })
    }
}

impl ChunkInput {
    /// The bytes that [`Arbitrary`] turns back into this value.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.codec, self.flags];
        out.extend_from_slice(&self.new_len_m1.to_le_bytes());
        out.push(self.ranges.len() as u8);
        for &(s, l) in &self.ranges {
            out.extend_from_slice(&s.to_le_bytes());
            out.extend_from_slice(&l.to_le_bytes());
        }
        for l in self.raw_lens {
            out.extend_from_slice(&l.to_le_bytes());
        }
        for b in [
            &self.old,
            &self.streams[0],
            &self.streams[1],
            &self.streams[2],
        ] {
            out.extend_from_slice(&(b.len() as u16).to_le_bytes());
        }
        out.extend_from_slice(&self.old);
        for s in &self.streams {
            out.extend_from_slice(s);
        }
        out
    }
}

/// Builds a one-chunk patch: head (with `new_hash` for the chunk and NEW),
/// unsigned block, payload.
fn one_chunk_patch(old: &[u8], entry: &ChunkEntry, payload: &[u8], new_hash: [u8; 32]) -> Vec<u8> {
    let meta = Metadata {
        old_len: old.len() as u64,
        old_hash: *blake3::hash(old).as_bytes(),
        new_len: entry.new_len.into(),
        new_hash,
        engine: Engine::Unknown,
        flags: 0,
    };
    let mut e = entry.clone();
    e.new_hash = new_hash;
    oxdelta_format::assemble(
        &meta,
        vec![oxdelta_format::EncodedChunk {
            entry: e,
            payload: payload.to_vec(),
        }],
        None,
    )
}

/// Opcodes whose ModRM byte may name a RIP-relative operand.
const MEM: [u8; 9] = [0x89, 0x8b, 0x8d, 0x39, 0x3b, 0x81, 0x83, 0xc7, 0xff];

/// True when byte `j` of an ADD's OLD source is an x86 opcode (or ModRM
/// byte) followed by a 32-bit displacement.
fn naive_starts_operand(src: &[u8], j: usize) -> bool {
    let b = src[j];
    b == 0xe8
        || b == 0xe9
        || (j > 0 && src[j - 1] == 0x0f && (0x80..=0x8f).contains(&b))
        || (j > 0 && MEM.contains(&src[j - 1]) && b & 0xc7 == 0x05)
}

/// True when byte `k` of an ADD's OLD source follows, within 4 bytes, an
/// x86 opcode whose operand is a 32-bit displacement.
fn naive_operand(src: &[u8], k: usize) -> bool {
    (k.saturating_sub(4)..k).any(|j| naive_starts_operand(src, j))
}

/// The op map of FORMAT.md, unindexed: `(OLD start, length, NEW − OLD)`
/// of every COPY and ADD of at least 16 bytes, sorted.
type NaiveMap = Vec<(i128, i128, i128)>;

/// The op map of a chunk's `ops` (NEW from `new_start`) and its ADDs as
/// `(OLD start, length, NEW position)`.
fn naive_map_and_adds(ops: &[Op], new_start: u64) -> (NaiveMap, Vec<(usize, usize, i128)>) {
    let mut map = Vec::new();
    let mut pos = i128::from(new_start);
    let mut adds = Vec::new();
    for op in ops {
        if let Some((o, l)) = op.old_range() {
            if l >= 16 {
                map.push((o.into(), l.into(), pos - i128::from(o)));
            }
            if let Op::Add { .. } = op {
                adds.push((o as usize, l as usize, pos));
            }
        }
        pos += i128::from(op.len());
    }
    map.sort();
    (map, adds)
}

/// The shift of OLD position `t` by the op map: that of the last entry
/// starting at or before `t`, when `t` is inside it.
fn naive_mapped(map: &NaiveMap, t: i128) -> Option<i128> {
    map.iter()
        .rfind(|e| e.0 <= t)
        .filter(|e| t < e.0 + e.1)
        .map(|e| e.2)
}

/// The operand modes' stream turned into byte-wise diffs the obvious way
/// (FORMAT.md, "Operand words"): a linear search of the op map, wide
/// integers.
fn naive_operands(old: &[u8], s: &Streams, ops: &[Op], new_start: u64) -> Vec<u8> {
    let (map, adds) = naive_map_and_adds(ops, new_start);
    let n_words: usize = adds
        .iter()
        .map(|&(o, l, _)| {
            let src = &old[o..o + l];
            let (mut k, mut n) = (0, 0);
            while k + 5 <= l {
                if naive_starts_operand(src, k) {
                    n += 4;
                    k += 5;
                } else {
                    k += 1;
                }
            }
            n
        })
        .sum();
    let (mut w, mut r, mut out) = (0usize, n_words, Vec::new());
    // operands-learned: shifts learned per OLD target, in learning order.
    let mut learned: Vec<(i128, i128)> = Vec::new();
    let cap = oxdelta_format::operand::MAX_LEARNED;
    for (o, l, q) in adds {
        let src = &old[o..o + l];
        let s_op = q - o as i128;
        let mut k = 0;
        while k < l {
            if k + 5 <= l && naive_starts_operand(src, k) {
                out.push(s.diff[r]);
                r += 1;
                let ow = u32::from_le_bytes(src[k + 1..k + 5].try_into().unwrap());
                let t = o as i128 + k as i128 + 5 + i128::from(ow as i32);
                let exact = learned.iter().find(|e| e.0 == t).map(|e| e.1);
                let below = learned
                    .iter()
                    .filter(|e| e.0 < t)
                    .max_by_key(|e| e.0)
                    .map(|e| e.1);
                let pred = match naive_mapped(&map, t) {
                    _ if s.add == AddMode::OperandsLearned => {
                        match exact.or(naive_mapped(&map, t)).or(below) {
                            Some(s_t) => i128::from(ow) + s_t - s_op,
                            None => i128::from(ow),
                        }
                    }
                    Some(s_t) => i128::from(ow) + s_t - s_op,
                    None if s.add == AddMode::OperandsAbs => i128::from(ow) - s_op,
                    None => i128::from(ow),
                };
                let stored = u32::from_le_bytes(s.diff[w..w + 4].try_into().unwrap());
                let nw32 = (i128::from(stored) + pred).rem_euclid(1 << 32) as u32;
                let learn = s_op + i128::from(nw32 as i32) - i128::from(ow as i32);
                let n = learned.len();
                match learned.iter_mut().find(|e| e.0 == t) {
                    Some(e) => e.1 = learn,
                    None if n < cap => learned.push((t, learn)),
                    None => {}
                }
                let nw = nw32.to_le_bytes();
                for i in 0..4 {
                    out.push(nw[i].wrapping_sub(src[k + 1 + i]));
                }
                w += 4;
                k += 5;
            } else {
                out.push(s.diff[r]);
                r += 1;
                k += 1;
            }
        }
    }
    out
}

/// The little-endian word at `b[i..]`.
fn word_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes(b[i..i + 4].try_into().unwrap())
}

/// `v`'s low `bits` bits as a signed number.
fn signed(v: u32, bits: u32) -> i128 {
    let v = i128::from(v & ((1u32 << bits) - 1));
    if v >= 1 << (bits - 1) {
        v - (1 << bits)
    } else {
        v
    }
}

/// An AArch64 `B` or `BL`.
fn is_branch(w: u32) -> bool {
    w & 0x7C00_0000 == 0x1400_0000
}

/// An AArch64 `ADRP`.
fn is_adrp(w: u32) -> bool {
    w & 0x9F00_0000 == 0x9000_0000
}

/// An ADRP's page offset (immlo in bits 29–30, immhi in bits 5–23).
fn adrp_pages(w: u32) -> i128 {
    signed((((w >> 5) & 0x7_FFFF) << 2) | ((w >> 29) & 3), 21)
}

/// The pair of an ADRP with register `rd` at `src[k..]`: the first of the
/// next 4 words that is an `ADD` (64-bit, immediate) or a load/store with
/// an unsigned offset, based on `rd`, as (offset, scale).
fn naive_pair(src: &[u8], k: usize, rd: u32) -> Option<(usize, u32)> {
    (1..=4)
        .map(|i| k + 4 * i)
        .take_while(|&j| j + 4 <= src.len())
        .find_map(|j| {
            let x = word_at(src, j);
            if (x >> 5) & 31 != rd {
                None
            } else if x & 0xFFC0_0000 == 0x9100_0000 {
                Some((j, 0))
            } else if x & 0x3B00_0000 == 0x3900_0000 {
                let q = x >> 30 == 0 && x & (1 << 26) != 0 && x & (1 << 23) != 0;
                Some((j, if q { 4 } else { x >> 30 }))
            } else {
                None
            }
        })
}

/// What the arm64 walk predicts at a word.
#[derive(Clone, Copy, PartialEq)]
enum NaiveKind {
    Branch,
    /// An ADRP and its pair (offset, scale).
    Adrp(Option<(usize, u32)>),
    /// A word an earlier ADRP claimed as its pair.
    Pair,
}

/// The predicted words of an ADD source `src` at OLD `o`, in order.
fn naive_walk(src: &[u8], o: usize) -> Vec<(usize, NaiveKind)> {
    let mut claimed: Vec<usize> = Vec::new();
    let mut v = Vec::new();
    for k in 0..src.len().saturating_sub(3) {
        if (o + k) % 4 != 0 {
            continue;
        }
        let w = word_at(src, k);
        if let Some(i) = claimed.iter().position(|&c| c == k) {
            claimed.remove(i);
            v.push((k, NaiveKind::Pair));
        } else if is_branch(w) {
            v.push((k, NaiveKind::Branch));
        } else if is_adrp(w) {
            let p = naive_pair(src, k, w & 31);
            if let Some((j, _)) = p {
                if !claimed.contains(&j) {
                    claimed.push(j);
                }
            }
            v.push((k, NaiveKind::Adrp(p)));
        }
    }
    v
}

/// Shifts by OLD target: the op map and the learned shifts of branches
/// (0) and ADRPs (1), in learning order.
struct NaiveShifts<'m> {
    map: &'m NaiveMap,
    learned: [Vec<(i128, i128)>; 2],
}

impl NaiveShifts<'_> {
    /// The exact learned shift, else the op map's, else the one learned
    /// for the greatest target below `t`.
    fn shift(&self, kind: usize, t: i128) -> Option<i128> {
        let learned = &self.learned[kind];
        learned
            .iter()
            .find(|e| e.0 == t)
            .map(|e| e.1)
            .or_else(|| naive_mapped(self.map, t))
            .or_else(|| {
                learned
                    .iter()
                    .filter(|e| e.0 < t)
                    .max_by_key(|e| e.0)
                    .map(|e| e.1)
            })
    }

    fn learn(&mut self, kind: usize, t: i128, s: i128) {
        let learned = &mut self.learned[kind];
        if let Some(e) = learned.iter_mut().find(|e| e.0 == t) {
            e.1 = s;
        } else if learned.len() < 1 << 16 {
            learned.push((t, s));
        }
    }
}

/// A pair claimed by an ADRP: its prediction, OLD word and scale, the
/// ADRP's OLD target and its NEW page (when the NEW word is an ADRP).
struct NaiveClaim {
    at: usize,
    pred: u32,
    old: u32,
    scale: u32,
    t: i128,
    new_page: Option<i128>,
}

/// One ADD of the arm64 mode: its OLD source at `o`, its shift, the pairs
/// claimed so far.
struct NaiveAdd<'a> {
    src: &'a [u8],
    o: i128,
    s_op: i128,
    claims: Vec<NaiveClaim>,
}

impl NaiveAdd<'_> {
    /// The NEW word of the branch at `k`, stored as `stored`.
    fn branch(&self, sh: &mut NaiveShifts<'_>, k: usize, stored: u32) -> u32 {
        let w = word_at(self.src, k);
        let pc = self.o + k as i128;
        let t = pc + 4 * signed(w, 26);
        let pred = match sh.shift(0, t) {
            Some(s) if (s - self.s_op) % 4 == 0 => {
                let imm = (signed(w, 26) + (s - self.s_op) / 4).rem_euclid(1 << 26);
                (w & 0xFC00_0000) | imm as u32
            }
            _ => w,
        };
        let n = stored.wrapping_add(pred);
        if n >> 26 == w >> 26 {
            sh.learn(0, t, pc + self.s_op + 4 * signed(n, 26) - t);
        }
        n
    }

    /// The NEW word of the ADRP at `k` (with its `pair`), stored as
    /// `stored`; claims its pair.
    fn adrp(
        &mut self,
        sh: &mut NaiveShifts<'_>,
        k: usize,
        pair: Option<(usize, u32)>,
        stored: u32,
    ) -> u32 {
        let w = word_at(self.src, k);
        let pc = self.o + k as i128;
        let npc = pc + self.s_op;
        let lo = pair.map_or(0, |(j, sc)| {
            i128::from((word_at(self.src, j) >> 10) & 0xFFF) << sc
        });
        let t = pc.div_euclid(4096) * 4096 + adrp_pages(w) * 4096 + lo;
        let (pred, pair_pred) = match sh.shift(1, t) {
            Some(s) => {
                let nt = t + s;
                let im = (nt.div_euclid(4096) - npc.div_euclid(4096)).rem_euclid(1 << 21) as u32;
                let pp = pair.map(|(j, sc)| {
                    let x = word_at(self.src, j);
                    let lo = nt.rem_euclid(4096);
                    if lo % (1 << sc) == 0 {
                        (x & !(0xFFF << 10)) | (((lo >> sc) as u32) << 10)
                    } else {
                        x
                    }
                });
                ((w & 0x9F00_001F) | ((im & 3) << 29) | ((im >> 2) << 5), pp)
            }
            None => (w, pair.map(|(j, _)| word_at(self.src, j))),
        };
        let n = stored.wrapping_add(pred);
        let new_page = is_adrp(n).then(|| npc.div_euclid(4096) * 4096 + adrp_pages(n) * 4096);
        match (pair, pair_pred) {
            (Some((j, scale)), Some(pred)) => {
                self.claims.retain(|c| c.at != j);
                self.claims.push(NaiveClaim {
                    at: j,
                    pred,
                    old: word_at(self.src, j),
                    scale,
                    t,
                    new_page,
                });
            }
            _ => {
                if let Some(np) = new_page {
                    sh.learn(1, t, np - t);
                }
            }
        }
        n
    }

    /// The NEW word of the claimed pair at `k`, stored as `stored`.
    fn pair(&mut self, sh: &mut NaiveShifts<'_>, k: usize, stored: u32) -> u32 {
        let i = self.claims.iter().position(|c| c.at == k).unwrap();
        let c = self.claims.remove(i);
        let n = stored.wrapping_add(c.pred);
        if let Some(np) = c.new_page {
            if n & !(0xFFF << 10) == c.old & !(0xFFF << 10) {
                let nt = np + (i128::from((n >> 10) & 0xFFF) << c.scale);
                sh.learn(1, c.t, nt - c.t);
            }
        }
        n
    }
}

/// The arm64 mode's stream turned into byte-wise diffs the obvious way
/// (FORMAT.md, "AArch64 words"): linear searches of the op map and of the
/// learned shifts, wide integers, every word position tried in turn.
fn naive_arm64(old: &[u8], s: &Streams, ops: &[Op], new_start: u64) -> Vec<u8> {
    let (map, adds) = naive_map_and_adds(ops, new_start);
    let walks: Vec<_> = adds
        .iter()
        .map(|&(o, l, _)| naive_walk(&old[o..o + l], o))
        .collect();
    let n_words: usize = walks.iter().map(Vec::len).sum();
    let mut sh = NaiveShifts {
        map: &map,
        learned: [Vec::new(), Vec::new()],
    };
    let (mut w_at, mut r, mut out) = (0usize, 4 * n_words, Vec::new());
    for (&(o, l, q), walk) in adds.iter().zip(&walks) {
        let mut add = NaiveAdd {
            src: &old[o..o + l],
            o: o as i128,
            s_op: q - o as i128,
            claims: Vec::new(),
        };
        let mut diff = vec![None::<u8>; l];
        for &(k, kind) in walk {
            let stored = word_at(&s.diff, w_at);
            w_at += 4;
            let n = match kind {
                NaiveKind::Branch => add.branch(&mut sh, k, stored),
                NaiveKind::Adrp(pair) => add.adrp(&mut sh, k, pair, stored),
                NaiveKind::Pair => add.pair(&mut sh, k, stored),
            };
            for (i, b) in n.to_le_bytes().into_iter().enumerate() {
                diff[k + i] = Some(b.wrapping_sub(add.src[k + i]));
            }
        }
        for d in diff {
            out.push(d.unwrap_or_else(|| {
                r += 1;
                s.diff[r - 1]
            }));
        }
    }
    out
}

/// A RISC-V AUIPC pair's offset at `x` when `x` is an ADDI, JALR, load
/// or store based on register `rd`: (offset, mask of the other bits).
fn naive_rv_pair(x: u32, rd: u32) -> Option<(i128, u32)> {
    let (op, f3) = (x & 0x7F, (x >> 12) & 7);
    if (x >> 15) & 31 != rd {
        None
    } else if ((op == 0x13 || op == 0x67) && f3 == 0) || op == 0x03 || op == 0x07 {
        Some((signed(x >> 20, 12), 0x000F_FFFF))
    } else if op == 0x23 || op == 0x27 {
        Some((signed(((x >> 25) << 5) | ((x >> 7) & 31), 12), 0x01FF_F07F))
    } else {
        None
    }
}

/// A JAL's offset, bit by bit (imm[20|10:1|11|19:12] in bits 31..12).
fn naive_jal_offset(w: u32) -> i128 {
    let b = |i: u32| i128::from((w >> i) & 1);
    let mut v = -(b(31) << 20) + (b(20) << 11);
    for i in 1..=10 {
        v += b(20 + i) << i;
    }
    for i in 12..=19 {
        v += b(i) << i;
    }
    v
}

/// The predicted words of a riscv-mode ADD source `src` at OLD `o`, in
/// order, as (offset, kind: 0 JAL, 1 AUIPC, 2 claimed pair; the AUIPC's
/// pair offset): the instruction starts listed first, every 4-byte one
/// looked at.
fn naive_rv_walk(src: &[u8], o: usize) -> Vec<(usize, u8, Option<usize>)> {
    let (mut ins, mut k) = (Vec::new(), o % 2);
    while k + 4 <= src.len() {
        let long = src[k] & 3 == 3;
        ins.push((k, long));
        k += if long { 4 } else { 2 };
    }
    let (mut claimed, mut walk) = (Vec::<usize>::new(), Vec::new());
    for (n, &(k, long)) in ins.iter().enumerate() {
        let w = if long { word_at(src, k) } else { continue };
        if let Some(i) = claimed.iter().position(|&c| c == k) {
            claimed.remove(i);
            walk.push((k, 2u8, None));
        } else if w & 0x7F == 0x6F {
            walk.push((k, 0, None));
        } else if w & 0x7F == 0x17 && (w >> 7) & 31 != 0 {
            let pair = ins[n + 1..ins.len().min(n + 5)]
                .iter()
                .filter(|i| i.1)
                .find_map(|&(j, _)| naive_rv_pair(word_at(src, j), (w >> 7) & 31).map(|_| j));
            if let Some(j) = pair {
                if !claimed.contains(&j) {
                    claimed.push(j);
                }
            }
            walk.push((k, 1, pair));
        }
    }
    walk
}

/// A pair claimed by an AUIPC: (offset, predicted word, OLD word, mask of
/// its bits other than the offset, the AUIPC's OLD target, its NEW high
/// part when the NEW word kept its opcode and register).
type RvClaim = (usize, u32, u32, u32, i128, Option<i128>);

/// The NEW word of the JAL `w` at OLD `pc` of an ADD with shift `s_op`,
/// stored as `stored`.
fn naive_rv_jal(sh: &mut NaiveShifts<'_>, w: u32, pc: i128, s_op: i128, stored: u32) -> u32 {
    let t = pc + naive_jal_offset(w);
    let pred = match sh.shift(0, t) {
        Some(s) if (s - s_op) % 2 == 0 => {
            let v = (naive_jal_offset(w) + s - s_op).rem_euclid(1 << 21) as u32;
            let mut x = w & 0xFFF;
            x |= ((v >> 20) & 1) << 31 | ((v >> 11) & 1) << 20;
            x |= ((v >> 1) & 0x3FF) << 21 | ((v >> 12) & 0xFF) << 12;
            x
        }
        _ => w,
    };
    let n = stored.wrapping_add(pred);
    if n & 0xFFF == w & 0xFFF {
        sh.learn(0, t, pc + s_op + naive_jal_offset(n) - t);
    }
    n
}

/// The NEW word of the AUIPC at `k` of `src` (OLD `pc`, op shift `s_op`)
/// with its `pair`, stored as `stored`; claims its pair.
#[allow(clippy::too_many_arguments)]
fn naive_rv_auipc(
    sh: &mut NaiveShifts<'_>,
    claims: &mut Vec<RvClaim>,
    src: &[u8],
    k: usize,
    pair: Option<usize>,
    pc: i128,
    s_op: i128,
    stored: u32,
) -> u32 {
    let w = word_at(src, k);
    let npc = pc + s_op;
    let hi = |w: u32| signed(w >> 12, 20) * 4096;
    let p = pair.map(|j| {
        let (lo, mask) = naive_rv_pair(word_at(src, j), (w >> 7) & 31).unwrap();
        (j, word_at(src, j), lo, mask)
    });
    let t = pc + hi(w) + p.map_or(0, |p| p.2);
    let (pred, pp) = match sh.shift(1, t) {
        Some(s) => {
            let d = t + s - npc;
            let h = (d + 2048).div_euclid(4096);
            let lo = (d - 4096 * h).rem_euclid(4096) as u32;
            let pp = p.map(|(_, x, _, mask)| {
                if mask == 0x000F_FFFF {
                    (x & mask) | lo << 20
                } else {
                    (x & mask) | (lo >> 5) << 25 | (lo & 31) << 7
                }
            });
            ((w & 0xFFF) | (h.rem_euclid(1 << 20) as u32) << 12, pp)
        }
        None => (w, p.map(|p| p.1)),
    };
    let n = stored.wrapping_add(pred);
    let nh = (n & 0xFFF == w & 0xFFF).then(|| npc + hi(n));
    match (p, pp) {
        (Some((j, x, _, mask)), Some(pp)) => {
            claims.retain(|c| c.0 != j);
            claims.push((j, pp, x, mask, t, nh));
        }
        _ => {
            if let Some(nh) = nh {
                sh.learn(1, t, nh - t);
            }
        }
    }
    n
}

/// The NEW word of the claimed pair at `k`, stored as `stored`.
fn naive_rv_claimed(
    sh: &mut NaiveShifts<'_>,
    claims: &mut Vec<RvClaim>,
    k: usize,
    stored: u32,
) -> u32 {
    let i = claims.iter().position(|c| c.0 == k).unwrap();
    let (_, pred, x, mask, t, nh) = claims.remove(i);
    let n = stored.wrapping_add(pred);
    if let Some(nh) = nh {
        if n & mask == x & mask {
            let (lo, _) = naive_rv_pair(n, (n >> 15) & 31).unwrap();
            sh.learn(1, t, nh + lo - t);
        }
    }
    n
}

/// The riscv mode's stream turned into byte-wise diffs the obvious way
/// (FORMAT.md, "RISC-V words"): the instruction starts listed first,
/// linear searches of the op map and of the learned shifts (JAL 0, AUIPC
/// 1), wide integers.
fn naive_riscv(old: &[u8], s: &Streams, ops: &[Op], new_start: u64) -> Vec<u8> {
    let (map, adds) = naive_map_and_adds(ops, new_start);
    let walks: Vec<_> = adds
        .iter()
        .map(|&(o, l, _)| naive_rv_walk(&old[o..o + l], o))
        .collect();
    let n_words: usize = walks.iter().map(Vec::len).sum();
    let mut sh = NaiveShifts {
        map: &map,
        learned: [Vec::new(), Vec::new()],
    };
    let (mut w_at, mut r, mut out) = (0usize, 4 * n_words, Vec::new());
    for (&(o, l, q), walk) in adds.iter().zip(&walks) {
        let src = &old[o..o + l];
        let s_op = q - o as i128;
        let mut claims: Vec<RvClaim> = Vec::new();
        let mut diff = vec![None::<u8>; l];
        for &(k, kind, pair) in walk {
            let stored = word_at(&s.diff, w_at);
            w_at += 4;
            let pc = o as i128 + k as i128;
            let n = match kind {
                0 => naive_rv_jal(&mut sh, word_at(src, k), pc, s_op, stored),
                1 => naive_rv_auipc(&mut sh, &mut claims, src, k, pair, pc, s_op, stored),
                _ => naive_rv_claimed(&mut sh, &mut claims, k, stored),
            };
            for (i, b) in n.to_le_bytes().into_iter().enumerate() {
                diff[k + i] = Some(b.wrapping_sub(src[k + i]));
            }
        }
        for d in diff {
            out.push(d.unwrap_or_else(|| {
                r += 1;
                s.diff[r - 1]
            }));
        }
    }
    out
}

/// The offset `S:I1:I2:imm10:imm11:0` of a Thumb-2 branch word (first
/// halfword in the low 16 bits), bit by bit.
fn naive_t32_imm(w: u32) -> i128 {
    let bit = |i: u32| i128::from((w >> i) & 1);
    let s = bit(10);
    let (i1, i2) = (1 - (bit(29) ^ s), 1 - (bit(27) ^ s));
    let mut v = (i1 << 23) + (i2 << 22) - (s << 24);
    for i in 0..10 {
        v += bit(i) << (12 + i);
    }
    for i in 0..11 {
        v += bit(16 + i) << (1 + i);
    }
    v
}

/// The Thumb-2 branch `w` with offset `d` in its offset fields.
fn naive_t32_with(w: u32, d: i128) -> u32 {
    let v = d.rem_euclid(1 << 25) as u32;
    let s = v >> 24;
    let (j1, j2) = (1 - (((v >> 23) & 1) ^ s), 1 - (((v >> 22) & 1) ^ s));
    (w & 0xD000_F800) | s << 10 | (v >> 12) & 0x3FF | j1 << 29 | j2 << 27 | ((v >> 1) & 0x7FF) << 16
}

/// The thumb2 mode's stream turned into byte-wise diffs the obvious way
/// (FORMAT.md, "Thumb-2 branches"): the halfword walk listed first,
/// linear searches of the op map and of the learned shifts, wide integers.
fn naive_thumb2(old: &[u8], s: &Streams, ops: &[Op], new_start: u64) -> Vec<u8> {
    let (map, adds) = naive_map_and_adds(ops, new_start);
    // (offset, word, is BLX) of every branch of each ADD.
    let walks: Vec<Vec<(usize, u32, bool)>> = adds
        .iter()
        .map(|&(o, l, _)| {
            let src = &old[o..o + l];
            let mut out = Vec::new();
            let mut k = o % 2;
            while k + 4 <= l {
                if src[k + 1] >> 3 < 0b11101 {
                    k += 2;
                    continue;
                }
                let w = word_at(src, k);
                let (h1, h2) = (w & 0xFFFF, w >> 16);
                let blx = h2 & 0xD001 == 0xC000;
                if h1 >> 11 == 0b11110 && (h2 & 0x9000 == 0x9000 || blx) {
                    out.push((k, w, blx));
                }
                k += 4;
            }
            out
        })
        .collect();
    let n_words: usize = walks.iter().map(Vec::len).sum();
    let mut sh = NaiveShifts {
        map: &map,
        learned: [Vec::new(), Vec::new()],
    };
    let (mut w_at, mut r, mut out) = (0usize, 4 * n_words, Vec::new());
    for (&(o, l, q), walk) in adds.iter().zip(&walks) {
        let src = &old[o..o + l];
        let s_op = q - o as i128;
        let mut diff = vec![None::<u8>; l];
        for &(k, w, blx) in walk {
            let stored = word_at(&s.diff, w_at);
            w_at += 4;
            let pc = o as i128 + k as i128;
            let base = |pc: i128| if blx { (pc + 4) / 4 * 4 } else { pc + 4 };
            let t = base(pc) + naive_t32_imm(w);
            let new_base = base(pc + s_op);
            let align = if blx { 4 } else { 2 };
            let pred = match sh.shift(0, t) {
                Some(sft) if (t + sft - new_base) % align == 0 => {
                    naive_t32_with(w, t + sft - new_base)
                }
                _ => w,
            };
            let n = stored.wrapping_add(pred);
            if n & 0xD000_F800 == w & 0xD000_F800 {
                sh.learn(0, t, new_base + naive_t32_imm(n) - t);
            }
            for (i, b) in n.to_le_bytes().into_iter().enumerate() {
                diff[k + i] = Some(b.wrapping_sub(src[k + i]));
            }
        }
        for d in diff {
            out.push(d.unwrap_or_else(|| {
                r += 1;
                s.diff[r - 1]
            }));
        }
    }
    out
}

/// The armv7 mode's stream turned into byte-wise diffs the obvious way
/// (FORMAT.md, "ARMv7 branch words"): every aligned word tried in turn,
/// linear searches of the op map and of the learned shifts, wide integers.
fn naive_armv7(old: &[u8], s: &Streams, ops: &[Op], new_start: u64) -> Vec<u8> {
    let (map, adds) = naive_map_and_adds(ops, new_start);
    let is_branch = |w: u32| (w >> 25) & 7 == 5 && w >> 28 != 15;
    let walks: Vec<Vec<usize>> = adds
        .iter()
        .map(|&(o, l, _)| {
            (0..l.saturating_sub(3))
                .filter(|&k| (o + k) % 4 == 0 && is_branch(word_at(&old[o..o + l], k)))
                .collect()
        })
        .collect();
    let n_words: usize = walks.iter().map(Vec::len).sum();
    let mut sh = NaiveShifts {
        map: &map,
        learned: [Vec::new(), Vec::new()],
    };
    let (mut w_at, mut r, mut out) = (0usize, 4 * n_words, Vec::new());
    for (&(o, l, q), walk) in adds.iter().zip(&walks) {
        let src = &old[o..o + l];
        let s_op = q - o as i128;
        let mut diff = vec![None::<u8>; l];
        for &k in walk {
            let stored = word_at(&s.diff, w_at);
            w_at += 4;
            let w = word_at(src, k);
            let pc = o as i128 + k as i128;
            let t = pc + 8 + 4 * signed(w, 24);
            let pred = match sh.shift(0, t) {
                Some(sft) if (sft - s_op) % 4 == 0 => {
                    let imm = (signed(w, 24) + (sft - s_op) / 4).rem_euclid(1 << 24);
                    (w & 0xFF00_0000) | imm as u32
                }
                _ => w,
            };
            let n = stored.wrapping_add(pred);
            if n >> 24 == w >> 24 {
                sh.learn(0, t, pc + s_op + 8 + 4 * signed(n, 24) - t);
            }
            for (i, b) in n.to_le_bytes().into_iter().enumerate() {
                diff[k + i] = Some(b.wrapping_sub(src[k + i]));
            }
        }
        for d in diff {
            out.push(d.unwrap_or_else(|| {
                r += 1;
                s.diff[r - 1]
            }));
        }
    }
    out
}

/// The `i64.const` fields `(offset, length)` of a wasm-mode ADD source
/// (FORMAT.md, "WebAssembly constants"), every opcode spelled out.
fn naive_wasm_fields(src: &[u8]) -> Vec<(usize, usize)> {
    // The LEB128 at `k`: its length, if its last byte is within 10 bytes
    // and within `src`, and its value.
    let leb = |k: usize| -> Option<(usize, u128)> {
        let mut v = 0u128;
        for i in 0..10 {
            let x = *src.get(k + i)?;
            v |= u128::from(x & 0x7F) << (7 * i);
            if x < 0x80 {
                return Some((i + 1, v));
            }
        }
        None
    };
    let lebs = |mut k: usize, n: u128| -> Option<usize> {
        let mut i = 0u128;
        while i < n {
            k += leb(k)?.0;
            i += 1;
        }
        Some(k)
    };
    let fixed = |k: usize, n: u128| (k as u128 + n <= src.len() as u128).then(|| k + n as usize);
    let (mut out, mut k) = (Vec::new(), 0usize);
    while k < src.len() {
        let b = src[k];
        let end = match b {
            0x02..=0x04 | 0x0C | 0x0D | 0x10 | 0x20..=0x26 | 0x41 | 0x42 | 0xD2 => lebs(k + 1, 1),
            0x11 | 0x28..=0x3E => lebs(k + 1, 2),
            0x0E => leb(k + 1).map(|(l, n)| {
                // At most n + 1 LEB128s, up to the first not wholly there.
                let (mut j, mut i) = (k + 1 + l, 0u128);
                while i <= n {
                    let Some((m, _)) = leb(j) else { break };
                    j += m;
                    i += 1;
                }
                j
            }),
            0x1C => leb(k + 1).and_then(|(l, n)| fixed(k + 1 + l, n)),
            0x3F | 0x40 | 0xD0 => fixed(k + 1, 1),
            0x43 => fixed(k + 1, 4),
            0x44 => fixed(k + 1, 8),
            0xFC => leb(k + 1).and_then(|(l, x)| {
                let j = k + 1 + l;
                match x {
                    8 => lebs(j, 1).and_then(|j| fixed(j, 1)),
                    9 | 13 | 15 | 16 | 17 => lebs(j, 1),
                    10 => fixed(j, 2),
                    11 => fixed(j, 1),
                    12 | 14 => lebs(j, 2),
                    _ => Some(j),
                }
            }),
            _ => Some(k + 1),
        };
        match end {
            Some(e) => {
                if b == 0x42 {
                    out.push((k + 1, e - k - 1));
                }
                k = e;
            }
            None => k += 1,
        }
    }
    out
}

/// The wasm mode's stream turned into byte-wise diffs the obvious way
/// (FORMAT.md, "WebAssembly constants"): a list of learned deltas searched
/// linearly, values in wide integers.
fn naive_wasm(old: &[u8], s: &Streams, ops: &[Op]) -> Vec<u8> {
    let value = |b: &[u8]| -> i128 {
        let v = b
            .iter()
            .enumerate()
            .fold(0u128, |v, (i, &x)| v | (u128::from(x & 0x7F) << (7 * i)));
        let bits = 7 * b.len();
        let v = (v % (1 << 64)) as i128;
        let sign = if bits < 64 { bits } else { 64 };
        if v >= 1 << (sign - 1) {
            v - (1 << sign)
        } else {
            v
        }
    };
    let wrap = |x: i128| (x.rem_euclid(1 << 64) as u64 as i64) as i128;
    let adds: Vec<(usize, usize)> = ops
        .iter()
        .filter_map(|op| match *op {
            Op::Add { old: o, len } => Some((o as usize, len as usize)),
            _ => None,
        })
        .collect();
    let fields: Vec<Vec<(usize, usize)>> = adds
        .iter()
        .map(|&(o, l)| naive_wasm_fields(&old[o..o + l]))
        .collect();
    let mut w = 0usize;
    let mut r: usize = fields.iter().flatten().map(|f| f.1).sum();
    let mut learned: Vec<(i128, i128)> = Vec::new();
    let mut out = Vec::new();
    for (&(o, l), fs) in adds.iter().zip(&fields) {
        let src = &old[o..o + l];
        let mut diff = vec![None::<u8>; l];
        for &(k, n) in fs {
            let v = value(&src[k..k + n]);
            let d = learned
                .iter()
                .find(|e| e.0 == v)
                .or_else(|| learned.iter().filter(|e| e.0 < v).max_by_key(|e| e.0))
                .map_or(0, |e| e.1);
            let x = wrap(v + d);
            let fits = n >= 10 || (-(1i128 << (7 * n - 1))..1i128 << (7 * n - 1)).contains(&x);
            let mut nb = Vec::new();
            for i in 0..n {
                let p = if fits {
                    let b = ((x >> (7 * i).min(63)) & 0x7F) as u8;
                    if i + 1 < n { b | 0x80 } else { b }
                } else {
                    src[k + i]
                };
                nb.push(p.wrapping_add(s.diff[w]));
                w += 1;
            }
            for (i, &b) in nb.iter().enumerate() {
                diff[k + i] = Some(b.wrapping_sub(src[k + i]));
            }
            if nb[..n - 1].iter().all(|&b| b >= 0x80) && nb[n - 1] < 0x80 {
                let d = wrap(value(&nb) - v);
                if let Some(e) = learned.iter_mut().find(|e| e.0 == v) {
                    e.1 = d;
                } else if learned.len() < 1 << 16 {
                    learned.push((v, d));
                }
            }
        }
        for d in diff {
            out.push(d.unwrap_or_else(|| {
                r += 1;
                s.diff[r - 1]
            }));
        }
    }
    out
}

/// The byte-wise diff (in op order) of a chunk's diff stream without the
/// operand split: the predicted modes' streams turned back the obvious
/// way, the others as they are.
fn naive_predicted(old: &[u8], s: &Streams, ops: &[Op], new_start: u64) -> Vec<u8> {
    match s.add {
        m if m.is_operands() || m == AddMode::OperandsLearned => {
            naive_operands(old, s, ops, new_start)
        }
        AddMode::Arm64 => naive_arm64(old, s, ops, new_start),
        AddMode::Riscv => naive_riscv(old, s, ops, new_start),
        AddMode::Armv7 => naive_armv7(old, s, ops, new_start),
        AddMode::Thumb2 => naive_thumb2(old, s, ops, new_start),
        AddMode::Wasm => naive_wasm(old, s, ops),
        _ => s.diff.clone(),
    }
}

/// The obvious interpretation of a chunk's ops: the oracle for
/// [`apply_ops`].
fn naive_apply(
    old: &[u8],
    s: &Streams,
    ranges: &[(u64, u64)],
    new_start: u64,
    new_len: u64,
) -> Option<Vec<u8>> {
    let dec = OpDecoder::for_streams(s, new_start, new_len, old.len() as u64, ranges);
    let ops: Vec<Op> = dec.collect::<Result<_, _>>().ok()?;
    // The operand split, undone the obvious way: a diff byte is in class A
    // when one of the 4 source bytes before it (inside its op) starts an
    // operand; class A bytes are stored first.
    let diff: Vec<u8> = if s.split {
        let srcs: Vec<&[u8]> = ops
            .iter()
            .filter_map(|op| match *op {
                Op::Add { old: o, len } => Some(&old[o as usize..(o + len) as usize]),
                _ => None,
            })
            .collect();
        let n_a = srcs
            .iter()
            .map(|src| (0..src.len()).filter(|&k| naive_operand(src, k)).count())
            .sum::<usize>();
        let (mut a, mut b, mut out) = (0, n_a, Vec::new());
        for src in srcs {
            for k in 0..src.len() {
                if naive_operand(src, k) {
                    out.push(s.diff[a]);
                    a += 1;
                } else {
                    out.push(s.diff[b]);
                    b += 1;
                }
            }
        }
        out
    } else {
        naive_predicted(old, s, &ops, new_start)
    };
    let (mut out, mut d, mut l) = (Vec::new(), 0usize, 0usize);
    for op in ops {
        match op {
            Op::Copy { old: o, len } => {
                for k in 0..len as usize {
                    out.push(old[o as usize + k]);
                }
            }
            Op::Add { old: o, len } => {
                // Words32: whole 4-byte words at NEW offsets divisible by 4
                // are added as little-endian u32, the rest byte by byte.
                let at = new_start + out.len() as u64;
                let mut k = 0usize;
                while k < len as usize {
                    let p = at + k as u64;
                    let word = s.add == AddMode::Words32 && p % 4 == 0 && k + 4 <= len as usize;
                    if word {
                        let b = o as usize + k;
                        let ow = u32::from_le_bytes(old[b..b + 4].try_into().unwrap());
                        let dw = u32::from_le_bytes(diff[d..d + 4].try_into().unwrap());
                        out.extend_from_slice(&ow.wrapping_add(dw).to_le_bytes());
                        (k, d) = (k + 4, d + 4);
                    } else {
                        out.push(old[o as usize + k].wrapping_add(diff[d]));
                        (k, d) = (k + 1, d + 1);
                    }
                }
            }
            Op::Insert { len } => {
                for _ in 0..len {
                    out.push(s.lit[l]);
                    l += 1;
                }
            }
            Op::Zero { len } => out.extend(std::iter::repeat_n(0u8, len as usize)),
        }
    }
    assert_eq!(
        out.len() as u64,
        new_len,
        "decoded ops must produce the chunk exactly"
    );
    assert_eq!(
        (d, l),
        (s.diff.len(), s.lit.len()),
        "ops must consume the streams exactly"
    );
    Some(out)
}

/// `decode_chunk`: a valid head around arbitrary streams, so the fuzzer
/// reaches the codecs and the op decoder.
///
/// Honestly compressed streams decode to themselves; [`apply_ops`] (into a
/// zeroed buffer skipping ZERO ops, and into a dirty one writing them)
/// agrees with a naive interpreter of the decoded ops, and fails exactly
/// when it does; and the whole patch, given the naive output's hash,
/// applies through `apply_bytes` to exactly that output.
pub fn decode_chunk(data: &[u8]) {
    if let Ok(input) = ChunkInput::arbitrary_take_rest(Unstructured::new(data)) {
        check_chunk(&input);
    }
}

fn check_chunk(input: &ChunkInput) {
    let (entry, payload) = chunk_entry(input);
    let old = &input.old[..];
    let patch = one_chunk_patch(old, &entry, &payload, [0; 32]);
    let Ok(p) = Patch::parse(&patch) else {
        return;
    };
    let e = &p.head.chunks[0];
    let decoded = oxdelta_format::decode_chunk(e, p.payload(0));
    check_codec_round_trip(input, e, decoded.as_ref().ok());
    if let Ok(streams) = decoded {
        check_ops_against_naive(old, e, p.payload(0), &streams);
    }
}

/// The chunk entry (with a zero NEW hash) and payload that `input` names:
/// its coding bits from `codec` and `flags`, its streams compressed (after
/// the diff, control and literal filters) or stored as given.
fn chunk_entry(input: &ChunkInput) -> (ChunkEntry, Vec<u8>) {
    let codec = match input.codec % 3 {
        0 => Codec::None,
        _ if input.flags & FLAG_LZMA2 != 0 => Codec::Lzma2,
        1 => Codec::Lz4,
        _ => Codec::Zstd(1),
    };
    // Diff filters come with compressing codecs only (the parser refuses
    // the rest); an uncompressed input is fed to the filter decoder as is.
    let diff_filter = match codec {
        Codec::None => DiffFilter::None,
        _ => DiffFilter::ALL[usize::from(input.codec / 3) % 3],
    };
    let add_mode = if input.flags & FLAG_ARM64 != 0 {
        AddMode::Arm64
    } else if input.flags & FLAG_WASM != 0 {
        AddMode::Wasm
    } else if input.flags & FLAG_LEARNED != 0 {
        AddMode::OperandsLearned
    } else if input.flags & FLAG_RISCV != 0 && input.codec >= 200 {
        AddMode::Thumb2
    } else if input.flags & FLAG_RISCV != 0 && input.codec >= 144 {
        AddMode::Armv7
    } else if input.flags & FLAG_RISCV != 0 {
        AddMode::Riscv
    } else {
        AddMode::ALL[usize::from(input.codec / 9) % 4]
    };
    let operand_split = input.codec / 36 % 2 == 1;
    // Version 4's codings (compressing codecs only): the control stream
    // is fed to the split layout's decoder as it is.
    let ctrl_split = codec != Codec::None && input.codec / 72 % 2 == 1;
    let lit_x86 = codec != Codec::None && input.flags & FLAG_LIT_X86 != 0;
    let compress = input.flags & FLAG_COMPRESS != 0;
    let mut raw_streams = input.streams.clone();
    if compress {
        raw_streams[1] = diff_filter.encode(&input.streams[1]);
        if lit_x86 {
            coding::filter_literals(&input.streams[0], 0, &mut raw_streams[2]);
        }
        if ctrl_split {
            // Control bytes whose varints do not parse are fed as they are.
            if let Some(s) = coding::split(&input.streams[0]) {
                raw_streams[0] = s;
            }
        }
    }
    let stored: Vec<Vec<u8>> = if compress {
        raw_streams.iter().map(|s| codec.compress(s)).collect()
    } else {
        raw_streams.to_vec()
    };
    let lens: Vec<StreamLen> = (0..3)
        .map(|k| StreamLen {
            raw: if compress || codec == Codec::None {
                raw_streams[k].len() as u32
            } else {
                input.raw_lens[k].into()
            },
            stored: stored[k].len() as u32,
        })
        .collect();
    let old = &input.old;
    let old_ranges: Vec<(u64, u64)> = if input.flags & FLAG_WHOLE_OLD != 0 {
        if old.is_empty() {
            vec![]
        } else {
            vec![(0, old.len() as u64)]
        }
    } else {
        input
            .ranges
            .iter()
            .map(|&(s, l)| (s.into(), l.into()))
            .collect()
    };
    let payload = stored.concat();
    let entry = ChunkEntry {
        new_offset: 0,
        new_len: u32::from(input.new_len_m1) + 1,
        codec,
        diff_filter,
        add_mode,
        operand_split,
        ctrl_split,
        lit_x86,
        shared: false,
        shared_ctrl_at: 0,
        shared_lit_at: 0,
        ctrl: lens[0],
        diff: lens[1],
        lit: lens[2],
        payload_hash: *blake3::hash(&payload).as_bytes(),
        new_hash: [0; 32],
        old_ranges,
        zero: false,
        payload_offset: 0,
    };
    (entry, payload)
}

/// Honestly compressed streams that fit the chunk `e` decode (`decoded`)
/// to the input's streams.
fn check_codec_round_trip(input: &ChunkInput, e: &ChunkEntry, decoded: Option<&Streams>) {
    // A filtered diff stream is checked against the chunk only when it is
    // unfiltered (the parser bounds the filtered length), so honest streams
    // decode only when diff and literals fit in the chunk.
    let fits = input.streams[1].len() + input.streams[2].len() <= e.new_len as usize;
    // A split control stream decodes to its varints' shortest forms: to
    // the input when that is how the input wrote them.
    let honest_ctrl = !e.ctrl_split
        || coding::split(&input.streams[0])
            .and_then(|s| coding::join(&s).ok())
            .is_some_and(|j| j == input.streams[0]);
    if input.flags & FLAG_COMPRESS != 0 && fits && honest_ctrl {
        let s = decoded.expect("honestly compressed streams decode");
        assert_eq!(
            [&s.ctrl, &s.diff, &s.lit],
            [&input.streams[0], &input.streams[1], &input.streams[2]],
            "codec round trip"
        );
    }
}

/// [`apply_ops`] (into a dirty buffer and into a zeroed one) agrees with
/// [`naive_apply`] on the decoded `streams` of chunk `e`, and fails exactly
/// when it does; the patch of that chunk, given the naive output's hash,
/// applies through `apply_bytes` to exactly that output.
fn check_ops_against_naive(old: &[u8], e: &ChunkEntry, payload: &[u8], streams: &Streams) {
    let new_len = u64::from(e.new_len);
    let want = naive_apply(old, streams, &e.old_ranges, 0, new_len);
    let mut dirty = vec![0xa5u8; new_len as usize];
    let mut zeroed = vec![0u8; new_len as usize];
    let r1 = apply_ops(old, streams, &e.old_ranges, 0, &mut dirty, false);
    let r2 = apply_ops(old, streams, &e.old_ranges, 0, &mut zeroed, true);
    let Some(want) = want else {
        assert!(
            r1.is_err() && r2.is_err(),
            "apply_ops accepted ops the decoder refuses"
        );
        return;
    };
    assert!(
        r1.is_ok() && r2.is_ok(),
        "apply_ops refused valid ops: {r1:?} {r2:?}"
    );
    assert_eq!(
        dirty, want,
        "apply_ops (writing zeros) differs from the naive interpreter"
    );
    assert_eq!(
        zeroed, want,
        "apply_ops (zeroed output) differs from the naive interpreter"
    );
    let h = *blake3::hash(&want).as_bytes();
    let patch = one_chunk_patch(old, e, payload, h);
    let got =
        oxdelta::apply_bytes(old, &patch, &apply_opts()).expect("a valid one-chunk patch applies");
    assert_eq!(got, want, "apply_bytes differs from the naive interpreter");
}

/// `apply`: arbitrary bytes as a patch against [`fixed_old`].
///
/// `apply_bytes` returns a clean error, or NEW with exactly the length the
/// head names and every chunk's range hashing as its table entry says. Then, so that mutated patches get past the
/// hashes, the patch is rebuilt with its OLD set to [`old_of_len`] of the
/// declared length, its payload hashes recomputed, and, when every chunk
/// decodes by the reference path (`decode_chunk` + `apply_ops`), its chunk
/// and NEW hashes set to that output: it must then apply to exactly that
/// output, and fail otherwise.
pub fn apply(data: &[u8]) {
    check_apply(fixed_old(), data);
    let Ok(p) = Patch::parse(data) else {
        return;
    };
    let h = &p.head;
    if h.meta.old_len > 1 << 16 || h.meta.new_len > 1 << 20 {
        return;
    }
    let old = old_of_len(h.meta.old_len as usize);
    let mut entries = h.chunks.clone();
    let mut want = vec![0u8; h.meta.new_len as usize];
    let mut ok = true;
    // The shared section, its hash fixed like the payloads'.
    let mut head = h.clone();
    if head.shared.is_present() {
        head.shared.hash = *blake3::hash(p.shared_bytes()).as_bytes();
    }
    let shared =
        oxdelta_format::Shared::decode(&head, p.shared_bytes(), &old).unwrap_or_else(|_| {
            ok = false;
            oxdelta_format::Shared::default()
        });
    for (i, e) in entries.iter_mut().enumerate() {
        let payload = p.payload(i);
        if e.zero {
            // A zero chunk (format v9): no payload, no hashes, its range
            // zeros (as `want` starts).
            assert!(oxdelta_format::is_zero_chunk(e, payload, old.len() as u64));
            continue;
        }
        e.payload_hash = *blake3::hash(payload).as_bytes();
        let r = e.new_range();
        let out = &mut want[r.start as usize..r.end as usize];
        let done = oxdelta_format::decode_chunk_in(e, payload, &shared)
            .and_then(|s| apply_ops(&old, &s, &e.old_ranges, e.new_offset, out, false));
        match done {
            Ok(()) => {
                e.new_hash = *blake3::hash(out).as_bytes();
                if oxdelta_format::is_zero_chunk(e, payload, old.len() as u64) {
                    assert!(
                        out.iter().all(|&b| b == 0),
                        "is_zero_chunk said zeros for a chunk that rebuilds otherwise"
                    );
                }
            }
            Err(_) => {
                assert!(
                    !oxdelta_format::is_zero_chunk(e, payload, old.len() as u64),
                    "is_zero_chunk accepted a chunk the reference decoder refuses"
                );
                ok = false;
            }
        }
    }
    // Whole-file hashes as the head's flags define them (format v8's
    // block-list hash or plain BLAKE3).
    let whole = |b: &[u8]| {
        oxdelta_format::filehash::hash(h.file_hash(), b, &oxdelta_format::filehash::Serial)
    };
    let meta = Metadata {
        old_hash: whole(&old),
        new_hash: whole(&want),
        ..h.meta.clone()
    };
    let mut fixed = oxdelta_format::encode_head_with(&meta, &entries, &head.shared, None);
    fixed.extend_from_slice(&data[h.payload_start() as usize..]);
    let got = oxdelta::apply_bytes(&old, &fixed, &apply_opts());
    if ok {
        assert_eq!(
            got.expect("a patch whose chunks all decode applies"),
            want,
            "apply_bytes differs from the reference chunk decoder"
        );
    } else {
        assert!(
            got.is_err(),
            "apply_bytes accepted a chunk the reference decoder refuses"
        );
    }
}

fn check_apply(old: &[u8], patch: &[u8]) {
    if let Ok(new) = oxdelta::apply_bytes(old, patch, &apply_opts()) {
        let p = Patch::parse(patch).expect("an applied patch parses");
        assert_eq!(new.len() as u64, p.head.meta.new_len, "NEW length");
        // Chunk hashes are the check (FORMAT.md, "Checks an applier
        // makes"); the metadata's whole-NEW hash is not recomputed.
        for e in &p.head.chunks {
            let r = e.new_range();
            if e.zero {
                assert!(
                    new[r.start as usize..r.end as usize]
                        .iter()
                        .all(|&b| b == 0),
                    "apply_bytes returned a zero chunk that is not zeros"
                );
                continue;
            }
            assert_eq!(
                blake3::hash(&new[r.start as usize..r.end as usize]).as_bytes(),
                &e.new_hash,
                "apply_bytes returned a chunk with the wrong hash"
            );
        }
        assert!(
            oxdelta::verify_bytes(patch, None).is_ok(),
            "an applied patch verifies"
        );
    }
}

/// Input of the `roundtrip` target.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundtripInput {
    /// Codec: 0 none, 1 lz4, 2 zstd level 1, 3 zstd level 19 (modulo 4);
    /// bit 2 set: the streaming engine at its smallest budget; bit 3 set
    /// with 3: LZMA2 where it pays (format version 7).
    pub codec: u8,
    /// Chunk length is `chunk_len + 1` (so inputs span several chunks).
    pub chunk_len: u16,
    /// OLD.
    pub old: Vec<u8>,
    /// NEW.
    pub new: Vec<u8>,
}

impl<'a> Arbitrary<'a> for RoundtripInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let codec = u8::arbitrary(u)?;
        let chunk_len = take_u16(u)?;
        let old_len = usize::from(take_u16(u)?).min(u.len());
        let old = u.bytes(old_len)?.to_vec();
        let new = u.bytes(u.len())?.to_vec();
        Ok(RoundtripInput {
            codec,
            chunk_len,
            old,
            new,
        })
    }
}

impl RoundtripInput {
    /// The bytes that [`Arbitrary`] turns back into this value.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = vec![self.codec];
        out.extend_from_slice(&self.chunk_len.to_le_bytes());
        out.extend_from_slice(&(self.old.len() as u16).to_le_bytes());
        out.extend_from_slice(&self.old);
        out.extend_from_slice(&self.new);
        out
    }
}

fn pool(threads: usize) -> &'static rayon::ThreadPool {
    static POOLS: [OnceLock<rayon::ThreadPool>; 2] = [OnceLock::new(), OnceLock::new()];
    POOLS[usize::from(threads > 1)].get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool")
    })
}

/// `roundtrip`: diff (OLD, NEW) with each engine and apply the patch: NEW
/// comes back, the patch verifies, and diffing in a 1-thread pool and in a
/// 3-thread pool gives identical bytes.
pub fn roundtrip(data: &[u8]) {
    if let Ok(input) = RoundtripInput::arbitrary_take_rest(Unstructured::new(data)) {
        check_roundtrip(&input);
    }
}

fn check_roundtrip(input: &RoundtripInput) {
    let codec = match input.codec % 4 {
        0 => Codec::None,
        1 => Codec::Lz4,
        2 => Codec::Zstd(1),
        _ if input.codec & 8 != 0 => Codec::Lzma2,
        _ => Codec::Zstd(19),
    };
    // Bit 2 of the codec byte picks the streaming engine at its smallest
    // budget, so its window logic runs on fuzz-sized inputs.
    let opts = DiffOptions {
        codec,
        chunk_len: Some(u32::from(input.chunk_len) + 1),
        key: None,
        memory: (input.codec & 4 != 0).then_some(oxdelta::oxdelta_diff::stream::MIN_BUDGET),
        ..Default::default()
    };
    let (old, new) = (&input.old[..], &input.new[..]);
    let serial = pool(1).install(|| oxdelta::diff_bytes(old, new, &opts));
    let parallel = pool(3).install(|| oxdelta::diff_bytes(old, new, &opts));
    assert!(serial == parallel, "the patch depends on the thread count");
    let got = oxdelta::apply_bytes(old, &serial, &ApplyOptions::default())
        .unwrap_or_else(|e| panic!("a fresh patch must apply: {e}"));
    assert!(got == new, "diff then apply did not give NEW back");
    oxdelta::verify_bytes(&serial, None).expect("a fresh patch verifies");

    // The streaming engine, at its smallest budget so its windows are
    // exercised on small inputs: same properties.
    let opts = DiffOptions {
        memory: Some(oxdelta::oxdelta_diff::stream::MIN_BUDGET),
        ..opts
    };
    let serial = pool(1).install(|| oxdelta::diff_bytes(old, new, &opts));
    let parallel = pool(3).install(|| oxdelta::diff_bytes(old, new, &opts));
    assert!(
        serial == parallel,
        "the streaming patch depends on the thread count"
    );
    let got = oxdelta::apply_bytes(old, &serial, &ApplyOptions::default())
        .unwrap_or_else(|e| panic!("a fresh streaming patch must apply: {e}"));
    assert!(
        got == new,
        "streaming diff then apply did not give NEW back"
    );
}

/// Input of the `inplace` target: a pair and two interruption points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InPlaceInput {
    /// Writes (target and journal writes, renames, length changes) before
    /// the first apply is stopped.
    pub cut: u16,
    /// Writes before the resume is stopped too; 0 lets it run.
    pub cut_resume: u16,
    /// NEW bytes per chunk, minus one.
    pub chunk_len: u16,
    /// OLD.
    pub old: Vec<u8>,
    /// NEW.
    pub new: Vec<u8>,
}

impl<'a> Arbitrary<'a> for InPlaceInput {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let cut = take_u16(u)?;
        let cut_resume = take_u16(u)?;
        let chunk_len = take_u16(u)?;
        let old_len = usize::from(take_u16(u)?).min(u.len());
        let old = u.bytes(old_len)?.to_vec();
        let new = u.bytes(u.len())?.to_vec();
        Ok(InPlaceInput {
            cut,
            cut_resume,
            chunk_len,
            old,
            new,
        })
    }
}

impl InPlaceInput {
    /// The bytes that [`Arbitrary`] turns back into this value.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for v in [
            self.cut,
            self.cut_resume,
            self.chunk_len,
            self.old.len() as u16,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.old);
        out.extend_from_slice(&self.new);
        out
    }
}

/// A scratch directory for this process and thread, made once.
fn scratch_dir() -> std::path::PathBuf {
    thread_local! {
        static DIR: std::path::PathBuf = {
            let d = std::env::temp_dir().join(format!(
                "oxdelta-fuzz-inplace-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::create_dir_all(&d).expect("scratch directory");
            d
        };
    }
    DIR.with(|d| d.clone())
}

/// `inplace`: make an in-place patch for (OLD, NEW), apply it to a file
/// holding OLD but stop after `cut` writes (the stopping write is torn),
/// optionally stop the resume too, then resume to the end: the file must
/// hold exactly NEW, and one more run must report it up to date.
pub fn inplace(data: &[u8]) {
    if let Ok(input) = InPlaceInput::arbitrary_take_rest(Unstructured::new(data)) {
        check_inplace(&input);
    }
}

fn check_inplace(input: &InPlaceInput) {
    use oxdelta::{InPlaceApplyOptions, InPlaceOutcome};
    // Odd chunk lengths with zstd, which may make a shared section
    // (format version 8), even ones with lz4, which never does.
    let opts = DiffOptions {
        codec: if input.chunk_len % 2 == 0 {
            Codec::Lz4
        } else {
            Codec::Zstd(3)
        },
        chunk_len: Some(u32::from(input.chunk_len) + 1),
        ..Default::default()
    };
    let (patch, _) =
        oxdelta::diff_bytes_in_place(&input.old, &input.new, &opts, &Default::default());
    let dir = scratch_dir();
    let (target, journal) = (dir.join("target"), dir.join("journal"));
    let _ = std::fs::remove_file(&journal);
    std::fs::write(&target, &input.old).expect("write the target");
    let run = |cut: Option<u64>| {
        let o = InPlaceApplyOptions {
            journal: Some(journal.clone()),
            fail_after_writes: cut,
            durable: false,
            ..Default::default()
        };
        oxdelta_apply::inplace::apply_in_place(&target, &patch, &o)
    };
    // Interrupted runs may fail (that is the point) or finish early.
    let _ = run(Some(u64::from(input.cut)));
    if input.cut_resume > 0 {
        let _ = run(Some(u64::from(input.cut_resume)));
    }
    let r = run(None).unwrap_or_else(|e| panic!("resuming must finish: {e}"));
    let got = std::fs::read(&target).expect("read the target");
    assert!(got == input.new, "in-place apply did not give NEW back");
    let _ = r;
    let again = run(None).unwrap_or_else(|e| panic!("a finished target must be accepted: {e}"));
    assert_eq!(again.outcome, InPlaceOutcome::AlreadyUpToDate);
}

/// Functions that write seed inputs (used by the seed generator test).
pub mod seeds {
    use super::*;

    /// Small valid patches against [`fixed_old`] (for `parse` and `apply`).
    pub fn patches() -> Vec<(String, Vec<u8>)> {
        let old = fixed_old();
        let mut new = old.to_vec();
        new[100..110].copy_from_slice(b"0123456789");
        new.splice(2000..2000, b"inserted text, inserted text".iter().copied());
        new.truncate(3000);
        new.extend_from_slice(&[0u8; 300]);
        new.extend_from_slice(&old[..200]);
        let mut out = Vec::new();
        for (name, codec) in [
            ("none", Codec::None),
            ("lz4", Codec::Lz4),
            ("zstd", Codec::Zstd(3)),
        ] {
            let opts = DiffOptions {
                codec,
                chunk_len: Some(1024),
                key: None,
                ..Default::default()
            };
            out.push((
                format!("patch-{name}"),
                oxdelta::diff_bytes(old, &new, &opts),
            ));
        }
        let key = oxdelta_format::SecretKey([7; 32]);
        let opts = DiffOptions {
            codec: Codec::Lz4,
            chunk_len: Some(2048),
            key: Some(key),
            ..Default::default()
        };
        out.push((
            "patch-signed".into(),
            oxdelta::diff_bytes(old, &new[..1500], &opts),
        ));
        out.push((
            "patch-empty-new".into(),
            oxdelta::diff_bytes(old, &[], &DiffOptions::default()),
        ));
        // The streaming engine: format version 8's block-list hash flag.
        let opts = DiffOptions {
            codec: Codec::Zstd(3),
            chunk_len: Some(1024),
            memory: Some(8 << 20),
            ..Default::default()
        };
        out.push(("patch-stream".into(), oxdelta::diff_bytes(old, &new, &opts)));
        // Runs of zeros over whole chunks: zero chunks (format version 9),
        // one across two chunks, one at the end.
        let mut zeros = old[..1024].to_vec();
        zeros.extend_from_slice(&[0; 2500]);
        zeros.extend_from_slice(&old[3000..3700]);
        zeros.extend_from_slice(&[0; 1400]);
        let p = oxdelta::diff_bytes(old, &zeros, &opts);
        assert_eq!(
            Patch::parse(&p).map(|p| p.head.features_version()).ok(),
            Some(9)
        );
        out.push(("patch-stream-zeros".into(), p));
        // Sparse changes (as in relocated code): ADD with run-filtered diff
        // streams, so the parser and applier see format version 2.
        let mut sparse = old.to_vec();
        for i in (5..sparse.len()).step_by(37) {
            sparse[i] = sparse[i].wrapping_add(1);
        }
        for (name, codec) in [("lz4", Codec::Lz4), ("zstd", Codec::Zstd(3))] {
            let opts = DiffOptions {
                codec,
                chunk_len: Some(1024),
                ..Default::default()
            };
            let p = oxdelta::diff_bytes(old, &sparse, &opts);
            assert_eq!(
                Patch::parse(&p).map(|p| p.head.features_version()).ok(),
                Some(2)
            );
            out.push((format!("patch-filtered-{name}"), p));
        }
        shared_patches(old, &mut out);
        // Each also with the fixed-layout head of versions 1 to 10 (and its
        // signature block), which every reader still parses.
        let fixed: Vec<(String, Vec<u8>)> = out
            .iter()
            .map(|(name, p)| (format!("{name}-fixed"), fixed_layout(p)))
            .collect();
        out.extend(fixed);
        out
    }

    /// `patch` with its head in the fixed layout of versions 1 to 10 (at
    /// the lowest version its features need) and its signature block: all
    /// zeros when unsigned, else made again over the fixed head with the
    /// seeds' key (`[7; 32]`).
    fn fixed_layout(patch: &[u8]) -> Vec<u8> {
        let p = Patch::parse(patch).expect("a seed patch parses");
        let h = &p.head;
        let mut meta = h.meta.clone();
        meta.flags &= !head::FLAG_SIGNED;
        let mut out = Head::encode_fixed_with(&meta, &h.chunks, &h.shared);
        let block = match p.signature {
            SignatureBlock::Unsigned => SignatureBlock::Unsigned,
            _ => SignatureBlock::sign(&out, &oxdelta_format::SecretKey([7; 32])),
        };
        out.extend_from_slice(&block.to_bytes());
        out.extend_from_slice(&patch[h.payload_start() as usize..]);
        out
    }

    /// Patches with a shared section (format versions 5, 7, 8 and 10), for
    /// [`patches`].
    fn shared_patches(old: &[u8], out: &mut Vec<(String, Vec<u8>)>) {
        // The same new text in every chunk: the differ moves the chunks'
        // control and literal streams into a shared section (format
        // version 5), whose OLD context is what the text replaced.
        let text: Vec<u8> = (0..300u32)
            .map(|i| b"new text, shared by chunks; "[(i * 7 % 28) as usize])
            .collect();
        let mut shared_new = Vec::new();
        for k in 0..4 {
            shared_new.extend_from_slice(&old[k * 1000..k * 1000 + 600]);
            shared_new.extend_from_slice(&text);
            shared_new.extend_from_slice(&old[k * 1000 + 650..k * 1000 + 1000]);
        }
        let opts = DiffOptions {
            codec: Codec::Zstd(19),
            chunk_len: Some(1024),
            ..Default::default()
        };
        let p = oxdelta::diff_bytes(old, &shared_new, &opts);
        assert_eq!(
            Patch::parse(&p).map(|p| p.head.features_version()).ok(),
            Some(5)
        );
        out.push(("patch-shared-zstd".into(), p));
        // The same with LZMA2 where it pays (format version 7).
        let lz = DiffOptions {
            codec: Codec::Lzma2,
            ..opts.clone()
        };
        let p = oxdelta::diff_bytes(old, &shared_new, &lz);
        assert_eq!(
            Patch::parse(&p).map(|p| p.head.features_version()).ok(),
            Some(7)
        );
        out.push(("patch-shared-lzma2".into(), p));
        // New text that resembles the OLD bytes around what it replaced
        // (every fifth byte changed, so no copy covers it): the literal
        // block is smaller with the context's margin (format version 7).
        let mut margin_new = Vec::new();
        for k in 0..4 {
            let near = &old[k * 1000 + 700..k * 1000 + 1000];
            margin_new.extend_from_slice(&old[k * 1000..k * 1000 + 600]);
            margin_new.extend(near.iter().enumerate().map(
                |(i, &b)| {
                    if i % 5 == 0 { b ^ 0x55 } else { b }
                },
            ));
            margin_new.extend_from_slice(&old[k * 1000 + 650..k * 1000 + 1000]);
        }
        let p = oxdelta::diff_bytes(old, &margin_new, &opts);
        assert_eq!(
            Patch::parse(&p).map(|p| p.head.features_version()).ok(),
            Some(7)
        );
        out.push(("patch-shared-margin-zstd".into(), p));
        // The first pair as an in-place patch: its section makes it
        // format version 8.
        let (p, _) = oxdelta::diff_bytes_in_place(old, &shared_new, &opts, &Default::default());
        let h = Patch::parse(&p).map(|p| p.head).ok();
        assert!(h.is_some_and(|h| h.features_version() == 8
            && h.is_in_place()
            && h.shared.is_present()));
        out.push(("patch-shared-inplace-zstd".into(), p));
        // 4.2 MB of new text in copies of one paragraph: the literal block
        // passes 4 MiB (format version 10) and compresses to a few KB.
        let mut wide_new = old[..1000].to_vec();
        for i in 0..1400u32 {
            wide_new.extend_from_slice(format!("{i:05} ").as_bytes());
            wide_new.extend((0..3000u32).map(|j| b"wide text block; "[(j * 5 % 17) as usize]));
        }
        let opts = DiffOptions {
            chunk_len: None,
            ..opts
        };
        let p = oxdelta::diff_bytes(old, &wide_new, &opts);
        let h = Patch::parse(&p).map(|p| p.head).ok();
        assert!(
            h.is_some_and(|h| h.features_version() == 10 && u64::from(h.shared.lit.raw) > 4 << 20)
        );
        out.push(("patch-shared-wide-zstd".into(), p));
    }

    /// Chunk inputs from real diffs, compressed and stored (for `decode_chunk`).
    pub fn chunks() -> Vec<(String, Vec<u8>)> {
        let old = &fixed_old()[..600];
        let mut new = old.to_vec();
        new[50..60].fill(b'x');
        new.extend_from_slice(&[0u8; 64]);
        new.extend_from_slice(b"literal tail");
        let mut enc = oxdelta_format::ChunkEncoder::new(old, &new, 0);
        enc.push(Op::Add { old: 0, len: 200 });
        enc.push(Op::Copy { old: 200, len: 400 });
        enc.push(Op::Zero { len: 64 });
        enc.push(Op::Insert { len: 12 });
        let (streams, _) = enc.finish();
        let mut out = Vec::new();
        for codec in 0..3u8 {
            for flags in [FLAG_COMPRESS | FLAG_WHOLE_OLD, FLAG_WHOLE_OLD] {
                let mut input = ChunkInput {
                    codec,
                    flags,
                    new_len_m1: (new.len() - 1) as u16,
                    ranges: vec![(0, 600)],
                    raw_lens: [
                        streams.ctrl.len() as u16,
                        streams.diff.len() as u16,
                        streams.lit.len() as u16,
                    ],
                    old: old.to_vec(),
                    streams: [
                        streams.ctrl.clone(),
                        streams.diff.clone(),
                        streams.lit.clone(),
                    ],
                };
                if flags & FLAG_COMPRESS == 0 && codec != 0 {
                    let c = if codec == 1 {
                        Codec::Lz4
                    } else {
                        Codec::Zstd(1)
                    };
                    input.streams = input.streams.map(|s| c.compress(&s));
                }
                out.push((format!("chunk-{codec}-{flags}"), input.to_bytes()));
            }
        }
        // LZMA2 (format version 7): compressed by the target, and stored.
        for flags in [FLAG_COMPRESS | FLAG_WHOLE_OLD, FLAG_WHOLE_OLD] {
            let stored = flags & FLAG_COMPRESS == 0;
            let s = [&streams.ctrl, &streams.diff, &streams.lit];
            let input = ChunkInput {
                codec: 2,
                flags: flags | FLAG_LZMA2,
                new_len_m1: (new.len() - 1) as u16,
                ranges: vec![(0, 600)],
                raw_lens: s.map(|s| s.len() as u16),
                old: old.to_vec(),
                streams: s.map(|s| {
                    if stored {
                        Codec::Lzma2.compress(s)
                    } else {
                        s.clone()
                    }
                }),
            };
            out.push((format!("chunk-lzma2-{flags}"), input.to_bytes()));
        }
        // AArch64-like code in the arm64 mode (format version 6): the
        // byte-wise diff of moved code read as that mode's stream, so the
        // walk finds branches, ADRPs and pairs, and predicts them from
        // the ops and from each other.
        let (old, new) = arm64_pair();
        let mut enc = oxdelta_format::ChunkEncoder::new(&old, &new, 0);
        enc.push(Op::Add { old: 0, len: 1200 });
        enc.push(Op::Insert { len: 64 });
        enc.push(Op::Add {
            old: 1200,
            len: (old.len() - 1200) as u64,
        });
        let (streams, _) = enc.finish();
        for codec in [2u8, 5] {
            let input = ChunkInput {
                codec,
                flags: FLAG_COMPRESS | FLAG_WHOLE_OLD | FLAG_ARM64,
                new_len_m1: (new.len() - 1) as u16,
                ranges: vec![],
                raw_lens: [0; 3],
                old: old.clone(),
                streams: [
                    streams.ctrl.clone(),
                    streams.diff.clone(),
                    streams.lit.clone(),
                ],
            };
            out.push((format!("chunk-arm64-{codec}"), input.to_bytes()));
        }
        out.extend(learned_chunks());
        out.extend(wasm_chunks());
        out.extend(riscv_chunks());
        out.extend(armv7_chunks());
        out.extend(thumb2_chunks());
        out
    }

    /// `decode_chunk` inputs of A32-like code in the armv7 mode (format
    /// version 10): the byte-wise diff of moved code read as that mode's
    /// stream.
    fn thumb2_chunks() -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let (old, new) = thumb2_pair();
        let mut enc = oxdelta_format::ChunkEncoder::new(&old, &new, 0);
        enc.push(Op::Add { old: 0, len: 1200 });
        enc.push(Op::Insert { len: 64 });
        enc.push(Op::Add {
            old: 1200,
            len: (old.len() - 1200) as u64,
        });
        let (streams, _) = enc.finish();
        for codec in [202u8, 206] {
            let input = ChunkInput {
                codec,
                flags: FLAG_COMPRESS | FLAG_WHOLE_OLD | FLAG_RISCV,
                new_len_m1: (new.len() - 1) as u16,
                ranges: vec![],
                raw_lens: [0; 3],
                old: old.clone(),
                streams: [
                    streams.ctrl.clone(),
                    streams.diff.clone(),
                    streams.lit.clone(),
                ],
            };
            out.push((format!("chunk-thumb2-{codec}"), input.to_bytes()));
        }
        out
    }

    /// Thumb-2-like code (16-bit instructions, BL, BLX and B.W) and the
    /// same code with 64 zero bytes inserted before its first instruction
    /// at or after byte 1200, every branch keeping its target.
    pub fn thumb2_pair() -> (Vec<u8>, Vec<u8>) {
        let mut x: u32 = 0x7f4a_7c15;
        let mut r = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        // (kind, target instruction): 0 a 16-bit one, 1 BL, 2 BLX, 3 B.W.
        let prog: Vec<(u8, usize)> = (0..900)
            .map(|_| ((r() % 6).min(3) as u8, (r() % 900) as usize))
            .collect();
        let layout = |ins: usize| {
            let mut at = Vec::new();
            let mut pos = 0usize;
            for &(kind, _) in &prog {
                if pos >= 1200 && pos < 1200 + ins {
                    pos += ins;
                }
                at.push(pos);
                pos += if kind == 0 { 2 } else { 4 };
            }
            let mut out = vec![0u8; pos];
            for (i, &(kind, t)) in prog.iter().enumerate() {
                let pc = at[i] as i128;
                let (op, base) = match kind {
                    0 => {
                        let h = [0x4608u16, 0x3001, 0xB580, 0xBD80][t % 4];
                        out[at[i]..at[i] + 2].copy_from_slice(&h.to_le_bytes());
                        continue;
                    }
                    1 => (0xD000_F000, pc + 4),
                    2 => (0xC000_F000, (pc + 4) / 4 * 4),
                    _ => (0x9000_F000, pc + 4),
                };
                let to = (at[t] as i128) & if kind == 2 { !3 } else { !1 };
                let w = super::naive_t32_with(op, to - base);
                out[at[i]..at[i] + 4].copy_from_slice(&w.to_le_bytes());
            }
            out
        };
        (layout(0), layout(64))
    }

    fn armv7_chunks() -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let (old, new) = armv7_pair();
        let mut enc = oxdelta_format::ChunkEncoder::new(&old, &new, 0);
        enc.push(Op::Add { old: 0, len: 1200 });
        enc.push(Op::Insert { len: 64 });
        enc.push(Op::Add {
            old: 1200,
            len: (old.len() - 1200) as u64,
        });
        let (streams, _) = enc.finish();
        for codec in [146u8, 149] {
            let input = ChunkInput {
                codec,
                flags: FLAG_COMPRESS | FLAG_WHOLE_OLD | FLAG_RISCV,
                new_len_m1: (new.len() - 1) as u16,
                ranges: vec![],
                raw_lens: [0; 3],
                old: old.clone(),
                streams: [
                    streams.ctrl.clone(),
                    streams.diff.clone(),
                    streams.lit.clone(),
                ],
            };
            out.push((format!("chunk-armv7-{codec}"), input.to_bytes()));
        }
        out
    }

    /// A32-like code (calls, conditional branches, other words with the
    /// condition "always") and the same code with 64 bytes inserted after
    /// byte 1200, every branch keeping its target.
    pub fn armv7_pair() -> (Vec<u8>, Vec<u8>) {
        let mut x: u32 = 0x2545_f491;
        let mut r = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        // (kind, target word): 0 other, 1 BL, 2 BNE.
        let prog: Vec<(u8, usize)> = (0..700)
            .map(|_| ((r() % 4).min(2) as u8, (r() % 700) as usize))
            .collect();
        let layout = |ins: usize| {
            let at = |i: usize| 4 * i + if 4 * i >= 1200 { ins } else { 0 };
            let mut out = vec![0u8; 4 * prog.len() + ins];
            for (i, &(kind, t)) in prog.iter().enumerate() {
                let (pc, t) = (at(i) as i64, at(t) as i64);
                let imm = ((t - pc - 8) / 4) as u32 & 0xFF_FFFF;
                let w = match kind {
                    0 => [0xE1A0_0000u32, 0xE590_1004, 0xE280_0001][t as usize / 4 % 3],
                    1 => 0xEB00_0000 | imm,
                    _ => 0x1A00_0000 | imm,
                };
                out[pc as usize..pc as usize + 4].copy_from_slice(&w.to_le_bytes());
            }
            out
        };
        (layout(0), layout(64))
    }

    /// `decode_chunk` inputs of RISC-V-like code in the riscv mode (format
    /// version 10): the byte-wise diff of moved code read as that mode's
    /// stream, so the walk finds JALs, AUIPCs and pairs among compressed
    /// instructions, and predicts them from the ops and from each other.
    fn riscv_chunks() -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let (old, new) = riscv_pair();
        let mut enc = oxdelta_format::ChunkEncoder::new(&old, &new, 0);
        enc.push(Op::Add { old: 0, len: 1201 });
        enc.push(Op::Insert { len: 64 });
        enc.push(Op::Add {
            old: 1201,
            len: (old.len() - 1201) as u64,
        });
        let (streams, _) = enc.finish();
        for codec in [2u8, 5] {
            let input = ChunkInput {
                codec,
                flags: FLAG_COMPRESS | FLAG_WHOLE_OLD | FLAG_RISCV,
                new_len_m1: (new.len() - 1) as u16,
                ranges: vec![],
                raw_lens: [0; 3],
                old: old.clone(),
                streams: [
                    streams.ctrl.clone(),
                    streams.diff.clone(),
                    streams.lit.clone(),
                ],
            };
            out.push((format!("chunk-riscv-{codec}"), input.to_bytes()));
        }
        out
    }

    /// RISC-V-like code (calls, AUIPC with ADDI, load or store pairs,
    /// compressed instructions, other words) and the same code with 64
    /// bytes inserted after byte 1200, every call and address keeping its
    /// target.
    pub fn riscv_pair() -> (Vec<u8>, Vec<u8>) {
        let mut x: u32 = 0x2545_f491;
        let mut r = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        // (kind, target instruction): 0 other word, 1 compressed, 2 JAL,
        // 3 AUIPC + ADDI, 4 AUIPC + LD, 5 AUIPC + SD.
        let prog: Vec<(u8, usize)> = (0..600)
            .map(|_| ((r() % 6) as u8, (r() % 600) as usize))
            .collect();
        let size = |k: u8| [4usize, 2, 4, 8, 8, 8][k as usize];
        let layout = |ins: usize| {
            let mut at = Vec::new();
            let mut pos = 0;
            for &(k, _) in &prog {
                if pos >= 1200 && at.last().is_some_and(|&p: &usize| p < 1200) {
                    pos += ins;
                }
                at.push(pos);
                pos += size(k);
            }
            let mut out = vec![0u8; pos];
            for (i, &(kind, t)) in prog.iter().enumerate() {
                let (pc, t) = (at[i], at[t]);
                let d = t as i64 - pc as i64;
                let mut put = |p: usize, b: &[u8]| out[p..p + b.len()].copy_from_slice(b);
                let v = d as u32;
                let (hi, lo) = (
                    (d + 0x800) >> 12,
                    (d - ((d + 0x800) >> 12 << 12)) as u32 & 0xFFF,
                );
                match kind {
                    0 => put(pc, &[0x33, 0x05, 0xA5, 0x00][..]),
                    1 => put(pc, &0x852Eu16.to_le_bytes()),
                    2 => {
                        let w = 0xEF
                            | ((v >> 20) & 1) << 31
                            | ((v >> 1) & 0x3FF) << 21
                            | ((v >> 11) & 1) << 20
                            | ((v >> 12) & 0xFF) << 12;
                        put(pc, &w.to_le_bytes());
                    }
                    _ => {
                        put(pc, &(0x297 | (hi as u32) << 12).to_le_bytes());
                        let second = match kind {
                            3 => 0x0002_8513 | lo << 20,
                            4 => 0x0002_B583 | lo << 20,
                            _ => 0x00B2_B023 | (lo >> 5) << 25 | (lo & 31) << 7,
                        };
                        put(pc + 4, &second.to_le_bytes());
                    }
                }
            }
            out
        };
        (layout(0), layout(64))
    }

    /// `decode_chunk` inputs of x86 loads from a moved section in the
    /// operands-learned mode (format version 9): the NEW code's byte-wise
    /// diff read as that mode's stream.
    fn learned_chunks() -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let (old, new) = x86_learned_pair();
        let mut enc = oxdelta_format::ChunkEncoder::new(&old, &new, 0);
        enc.push(Op::Add { old: 0, len: 1800 });
        enc.push(Op::Insert {
            len: (new.len() - 1800) as u64,
        });
        let (streams, _) = enc.finish();
        for codec in [2u8, 5] {
            let input = ChunkInput {
                codec,
                flags: FLAG_COMPRESS | FLAG_WHOLE_OLD | FLAG_LEARNED,
                new_len_m1: (new.len() - 1) as u16,
                ranges: vec![],
                raw_lens: [0; 3],
                old: old.clone(),
                streams: [
                    streams.ctrl.clone(),
                    streams.diff.clone(),
                    streams.lit.clone(),
                ],
            };
            out.push((format!("chunk-learned-{codec}"), input.to_bytes()));
        }
        out
    }

    /// `decode_chunk` inputs of WebAssembly-like code in the wasm mode
    /// (format version 8): the byte-wise diff of code whose constants
    /// shifted, read as that mode's stream.
    fn wasm_chunks() -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let (old, new) = wasm_pair();
        let mut enc = oxdelta_format::ChunkEncoder::new(&old, &new, 0);
        let half = old.len() / 2;
        enc.push(Op::Add {
            old: 0,
            len: half as u64,
        });
        enc.push(Op::Insert {
            len: (new.len() - old.len()) as u64,
        });
        enc.push(Op::Add {
            old: half as u64,
            len: (old.len() - half) as u64,
        });
        let (streams, _) = enc.finish();
        for codec in [2u8, 5] {
            let input = ChunkInput {
                codec,
                flags: FLAG_COMPRESS | FLAG_WHOLE_OLD | FLAG_WASM,
                new_len_m1: (new.len() - 1) as u16,
                ranges: vec![],
                raw_lens: [0; 3],
                old: old.clone(),
                streams: [
                    streams.ctrl.clone(),
                    streams.diff.clone(),
                    streams.lit.clone(),
                ],
            };
            out.push((format!("chunk-wasm-{codec}"), input.to_bytes()));
        }
        out
    }

    /// A WebAssembly-like module (magic, then code storing return
    /// addresses and loading addresses with `i64.const`) and the same with
    /// a function inserted in the middle: later return addresses grow by
    /// 2^16, addresses above the middle of memory by 200.
    pub fn wasm_pair() -> (Vec<u8>, Vec<u8>) {
        let module = |inserted: bool| {
            let mut x: u32 = 0x2545_f491;
            let mut r = move || {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x
            };
            let mut out = b"\0asm\x01\0\0\0".to_vec();
            let sleb = |mut v: i64, out: &mut Vec<u8>| loop {
                let b = (v & 0x7F) as u8;
                v >>= 7;
                if (v == 0 && b & 0x40 == 0) || (v == -1 && b & 0x40 != 0) {
                    out.push(b);
                    break;
                }
                out.push(b | 0x80);
            };
            for f in 0..24i64 {
                if inserted && f == 12 {
                    out.extend_from_slice(&[0x20, 0x01, 0x42, 0x2A, 0x7C, 0x0B]);
                }
                let index = 0x1000 + f + i64::from(inserted && f >= 12);
                for _ in 0..20 {
                    match r() % 4 {
                        0 => {
                            out.push(0x42);
                            sleb(index << 16 | i64::from(r() % 20), &mut out);
                            out.extend_from_slice(&[0x37, 0x03, 0x00]);
                        }
                        1 => {
                            let a = 0x10000 + 8 * i64::from(r() % 2048);
                            let moved = inserted && a >= 0x10000 + 8 * 1024;
                            out.push(0x42);
                            sleb(a + if moved { 200 } else { 0 }, &mut out);
                            out.extend_from_slice(&[0xA7, 0x29, 0x03, 0x00]);
                        }
                        _ => out.extend_from_slice(&[0x20, (r() % 8) as u8]),
                    }
                }
                out.push(0x0B);
            }
            out
        };
        (module(false), module(true))
    }

    /// x86-like code whose RIP-relative loads read a data section that
    /// moved 0x200 bytes further in the address space and not in the
    /// file (as PE sections do), and whose data changed: the op map
    /// predicts none of the loads, the operands-learned mode (format
    /// version 9) all but the first of a chunk.
    pub fn x86_learned_pair() -> (Vec<u8>, Vec<u8>) {
        let (code, data) = (1800usize, 1200usize);
        let mut old = vec![0x90u8; code + data];
        for (i, b) in old[code..].iter_mut().enumerate() {
            *b = (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[3];
        }
        let mut new = old.clone();
        for b in &mut new[code..] {
            *b = b.wrapping_mul(7).wrapping_add(1);
        }
        for i in 0..code / 18 {
            // mov eax, [rip + disp32] at 18·i; targets rising through the data.
            let at = 18 * i;
            let disp = (code + 12 * i) as i32 - (at + 6) as i32;
            for (v, d) in [(&mut old, disp), (&mut new, disp + 0x200)] {
                v[at..at + 2].copy_from_slice(&[0x8b, 0x05]);
                v[at + 2..at + 6].copy_from_slice(&d.to_le_bytes());
            }
        }
        (old, new)
    }

    /// AArch64-like code (calls, ADRP with ADD or load pairs, other words)
    /// and the same code with 64 bytes inserted after byte 1200, every call
    /// and address keeping its target.
    pub fn arm64_pair() -> (Vec<u8>, Vec<u8>) {
        let mut x: u32 = 0x2545_f491;
        let mut r = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        // (kind, target word): 0 other, 1 BL, 2 ADRP + ADD, 3 ADRP + LDR.
        let mut prog: Vec<(u8, u32)> = Vec::new();
        while prog.len() < 700 {
            let t = r() % 700;
            match r() % 8 {
                0 => prog.push((1, t)),
                1 => prog.extend([(2, t), (9, 0)]),
                2 => prog.extend([(3, t), (9, 0)]),
                _ => prog.push((0, t % 3)),
            }
        }
        let layout = |ins: usize| {
            let at = |i: usize| 4 * i + if 4 * i >= 1200 { ins } else { 0 };
            let mut out = vec![0u8; 4 * prog.len() + ins];
            for (i, &(kind, t)) in prog.iter().enumerate() {
                let (pc, fill) = (at(i) as i64, [0xAA01_03E0, 0xF940_0BE0, 0xD503_201F]);
                let t = at(t as usize) as i64;
                let mut put = |pos: i64, w: u32| {
                    out[pos as usize..pos as usize + 4].copy_from_slice(&w.to_le_bytes())
                };
                match kind {
                    0 => put(pc, fill[t as usize / 4 % 3]),
                    1 => put(pc, 0x9400_0000 | ((t - pc) / 4) as u32 & 0x3FF_FFFF),
                    2 | 3 => {
                        let imm = ((t >> 12) - (pc >> 12)) as u32 & 0x1F_FFFF;
                        put(pc, 0x9000_0000 | ((imm & 3) << 29) | ((imm >> 2) << 5) | 3);
                        let lo = (t & 0xFFF) as u32;
                        put(
                            pc + 4,
                            if kind == 2 {
                                0x9100_0000 | (lo << 10) | (3 << 5)
                            } else {
                                0xB940_0000 | ((lo / 4) << 10) | (3 << 5) | 1
                            },
                        );
                    }
                    _ => {}
                }
            }
            out
        };
        (layout(0), layout(64))
    }

    /// Small (OLD, NEW) pairs (for `roundtrip`).
    pub fn pairs() -> Vec<(String, Vec<u8>)> {
        let old = old_of_len(1500);
        let mut new = old.clone();
        new[700..720].fill(9);
        new.rotate_left(300);
        let mut out = Vec::new();
        for codec in [0, 1, 2, 3, 11u8] {
            let input = RoundtripInput {
                codec,
                chunk_len: 511,
                old: old.clone(),
                new: new.clone(),
            };
            out.push((format!("pair-{codec}"), input.to_bytes()));
        }
        let empty = RoundtripInput {
            codec: 1,
            chunk_len: 100,
            old: vec![],
            new: b"only new".to_vec(),
        };
        out.push(("pair-empty-old".into(), empty.to_bytes()));
        let (old, new) = arm64_pair();
        let opts = DiffOptions {
            codec: Codec::Zstd(19),
            chunk_len: Some(1024),
            ..Default::default()
        };
        let p = oxdelta::diff_bytes(&old, &new, &opts);
        let arm64 = |p: &Patch<'_>| p.head.chunks.iter().any(|c| c.add_mode == AddMode::Arm64);
        assert!(
            Patch::parse(&p).is_ok_and(|p| arm64(&p)),
            "the arm64 mode pays"
        );
        let arm = RoundtripInput {
            codec: 3,
            chunk_len: 1023,
            old,
            new,
        };
        out.push(("pair-arm64".into(), arm.to_bytes()));
        let (old, new) = wasm_pair();
        let p = oxdelta::diff_bytes(&old, &new, &opts);
        let wasm = |p: &Patch<'_>| p.head.chunks.iter().any(|c| c.add_mode == AddMode::Wasm);
        assert!(
            Patch::parse(&p).is_ok_and(|p| wasm(&p)),
            "the wasm mode pays"
        );
        let w = RoundtripInput {
            codec: 3,
            chunk_len: 1023,
            old,
            new,
        };
        out.push(("pair-wasm".into(), w.to_bytes()));
        let (old, new) = x86_learned_pair();
        let p = oxdelta::diff_bytes(&old, &new, &opts);
        let learned = |p: &Patch<'_>| {
            p.head
                .chunks
                .iter()
                .any(|c| c.add_mode == AddMode::OperandsLearned)
        };
        assert!(
            Patch::parse(&p).is_ok_and(|p| learned(&p)),
            "the operands-learned mode pays"
        );
        let x = RoundtripInput {
            codec: 3,
            chunk_len: 1023,
            old,
            new,
        };
        out.push(("pair-x86-learned".into(), x.to_bytes()));
        out.extend(arch_pairs(&opts));
        out
    }

    /// The RISC-V and ARMv7 pairs of [`pairs`], checked to use their modes
    /// with `opts`.
    fn arch_pairs(opts: &DiffOptions) -> Vec<(String, Vec<u8>)> {
        let mut out = Vec::new();
        let (old, new) = riscv_pair();
        let p = oxdelta::diff_bytes(&old, &new, opts);
        let rv = |p: &Patch<'_>| p.head.chunks.iter().any(|c| c.add_mode == AddMode::Riscv);
        assert!(
            Patch::parse(&p).is_ok_and(|p| rv(&p)),
            "the riscv mode pays"
        );
        let x = RoundtripInput {
            codec: 3,
            chunk_len: 1023,
            old,
            new,
        };
        out.push(("pair-riscv".into(), x.to_bytes()));
        let (old, new) = armv7_pair();
        let p = oxdelta::diff_bytes(&old, &new, opts);
        let a7 = |p: &Patch<'_>| p.head.chunks.iter().any(|c| c.add_mode == AddMode::Armv7);
        assert!(
            Patch::parse(&p).is_ok_and(|p| a7(&p)),
            "the armv7 mode pays"
        );
        let x = RoundtripInput {
            codec: 3,
            chunk_len: 1023,
            old,
            new,
        };
        out.push(("pair-armv7".into(), x.to_bytes()));
        let (old, new) = thumb2_pair();
        let p = oxdelta::diff_bytes(&old, &new, opts);
        let t2 = |p: &Patch<'_>| p.head.chunks.iter().any(|c| c.add_mode == AddMode::Thumb2);
        assert!(
            Patch::parse(&p).is_ok_and(|p| t2(&p)),
            "the thumb2 mode pays"
        );
        let x = RoundtripInput {
            codec: 3,
            chunk_len: 1023,
            old,
            new,
        };
        out.push(("pair-thumb2".into(), x.to_bytes()));
        out
    }

    /// (OLD, NEW) pairs with interruption points (for `inplace`): a swap
    /// of two blocks (a conflict cycle), a shift, growth and shrinkage.
    pub fn inplace_pairs() -> Vec<(String, Vec<u8>)> {
        let old = old_of_len(2048);
        let mut swapped = old.clone();
        let (a, b) = swapped.split_at_mut(1024);
        a.swap_with_slice(b);
        let mut shifted = vec![5u8; 100];
        shifted.extend_from_slice(&old);
        // One new sentence in every chunk, in place of a few OLD bytes: with
        // zstd (an odd `chunk_len`) the patch shares it in a section.
        let mut para = Vec::new();
        for k in 0..4 {
            para.extend_from_slice(&old[k * 512..k * 512 + 200]);
            para.extend_from_slice(b"a new sentence in every chunk, the same each time. ");
            para.extend_from_slice(&old[k * 512 + 210..k * 512 + 512]);
        }
        let mut out = Vec::new();
        for (name, new, chunk_len) in [
            ("swap", swapped.clone(), 511),
            ("swap-lz4", swapped, 510),
            ("shift", shifted, 511),
            ("shrink", old[300..1700].to_vec(), 511),
            ("shared", para, 511),
        ] {
            for (cut, cut_resume) in [(0u16, 0u16), (3, 0), (7, 2)] {
                let input = InPlaceInput {
                    cut,
                    cut_resume,
                    chunk_len,
                    old: old.clone(),
                    new: new.clone(),
                };
                out.push((
                    format!("inplace-{name}-{cut}-{cut_resume}"),
                    input.to_bytes(),
                ));
            }
        }
        out
    }
}
