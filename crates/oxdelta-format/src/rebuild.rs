//! The applier's one-pass chunk rebuild: what [`crate::apply_chunk`] runs.
//!
//! It runs the op interpreter ([`crate::interp`]) with its own ADD rule,
//! [`OnePass`]. The reference ([`crate::decode_chunk`] then
//! [`crate::ops::apply_ops`]) materialises the diff stream up to three
//! times for a chunk coded with a run layout and the operand split (the
//! filtered stream, the diff bytes in stored order, the same bytes rejoined
//! into op order), each a buffer of up to the chunk's length, and that
//! rejoin dominates its decode time on code.
//!
//! Here ADD ops first copy their OLD bytes, like COPY, and then only the
//! non-zero runs of the filtered stream are added where they belong, read
//! straight from the filtered stream: zero runs cost a skip, not a write.
//! For the operand split the ADD sources are classified once into a bitmap
//! (a bit per diff byte, an eighth of the diff length); the stored class-A
//! bytes go to its set bits in order and class-B bytes to its clear bits.
//! Addition modulo 2^8 or 2^32 is associative, so adding the non-zero diff
//! bytes one run at a time onto OLD's bytes gives what adding the whole
//! diff stream gives, in [`AddMode::Words32`] too (a byte at lane `k` of an
//! aligned word adds `byte << 8k` to that word).
//!
//! The operand modes ([`crate::operand`]) predict each word from the
//! whole chunk's op map, so their words wait for the op pass: it copies
//! every ADD's OLD bytes, records the op map and finds the operand words
//! on trigger bitmaps while the source is in cache, and then the words get
//! their prediction plus the stored difference, and the other ADD bytes
//! their byte-wise diff, read from the filtered stream as above. No
//! byte-wise diff stream is made (the reference makes one, a chunk's
//! length). The arm64 mode ([`crate::arm64`]) predicts each word also from
//! the NEW words decoded before it, and so do the operands-learned mode
//! ([`crate::operand`]), the riscv mode ([`crate::riscv`]), the armv7
//! mode ([`crate::armv7`]) and the thumb2 mode ([`crate::thumb2`]), so
//! after the op pass their ADDs are
//! walked again in op order, each word written as it is decoded, and the
//! other ADD bytes get their byte-wise diff from a second position in the
//! filtered stream (where the words end).
//!
//! # Equivalence with the reference
//!
//! [`rebuild`] makes every check the reference makes (payload length and
//! hash, codecs, the filter layout with the same bound and the same
//! "everything used" rules, the op decoder with the diff length that the
//! filtered stream decodes to), so it succeeds exactly when the reference
//! does, with the same bytes (tested on damaged streams, and fuzzed through
//! `apply_bytes`). Its errors carry no detail: when it fails,
//! [`crate::apply_chunk`] runs the reference, whose error is the one
//! reported, so errors stay exactly as they were.
//!
//! # Bounds
//!
//! Memory: the three decompressed streams (as in the reference), the ADD
//! list (24 bytes per ADD op, at most one op per [`crate::limits::MIN_COPY_LEN`]
//! bytes of the chunk) and, with the operand split, the class bitmap (an
//! eighth of the diff length), or with an operand mode the op map (see
//! [`crate::predicted::op_map_bound`]) and a 4-byte position per operand word
//! (at most one per five diff bytes), or with the arm64, operands-learned,
//! riscv, armv7 or thumb2 mode the op map and the learned shifts
//! ([`crate::arm64::learned_bound`], [`crate::operand::learned_bound`],
//! [`crate::riscv::learned_bound`], [`crate::armv7::learned_bound`],
//! [`crate::thumb2::learned_bound`]). Nothing of the
//! chunk's length besides `out`.

use crate::arm64::Predictor;
use crate::error::{Error, ErrorKind, Result};
use crate::filter::{AddMode, DiffFilter, split};
use crate::head::ChunkEntry;
use crate::interp::{self, Adds, OldBytes, Out};
use crate::operand::LearnedOperands;
use crate::ops::OpDecoder;
use crate::predicted::{OpMap, Walk};

/// Bytes copied and classified at a time (stays in the first-level cache).
const PIECE: usize = 16 << 10;

/// One ADD op: where its bytes went and what it covers of the diff stream.
#[derive(Clone, Copy, Debug)]
struct AddRec {
    /// First diff-stream index (op order) of this ADD.
    diff_start: usize,
    /// Its length.
    len: usize,
    /// Where its first byte is in `out`.
    out_pos: usize,
    /// Its first byte's NEW offset (word alignment of [`AddMode::Words32`]).
    new_pos: u64,
}

/// A bounds-checked reader of varints and byte runs over a slice: the
/// varint format of [`crate::cursor::Cursor::varint`] (at most ten bytes,
/// fitting 64 bits), with a fast path for one-byte varints. Errors carry no
/// detail: the reference decoder reports them (see the module docs).
#[derive(Clone, Copy)]
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0 }
    }

    fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    fn varint(&mut self) -> Result<u64> {
        match self.buf.get(self.pos) {
            Some(&b) if b < 0x80 => {
                self.pos += 1;
                Ok(u64::from(b))
            }
            _ => self.varint_slow(),
        }
    }

    #[cold]
    fn varint_slow(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for i in 0..10u32 {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or_else(|| filter_err("truncated varint"))?;
            self.pos += 1;
            let payload = u64::from(b & 0x7f);
            if i == 9 && payload > 1 {
                return Err(filter_err("overflowing varint"));
            }
            v |= payload << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(filter_err("varint longer than ten bytes"))
    }

    #[inline]
    fn bytes(&mut self, n: u64) -> Result<&'a [u8]> {
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.remaining())
            .ok_or_else(|| filter_err("byte run past the stream's end"))?;
        let b = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(b)
    }
}

/// The (zero run, byte run) pairs of a filtered diff stream, in stored
/// order, with the checks of [`DiffFilter::decode`].
#[derive(Clone)]
enum Runs<'a> {
    /// Unfiltered: one run of bytes (if any bytes are left).
    Plain(&'a [u8]),
    /// `varint zeros ‖ varint n ‖ n bytes`, back to back.
    Tokens(Reader<'a>),
    /// Zero-run varints, byte-run varints, the bytes.
    Sections {
        zeros: Reader<'a>,
        lens: Reader<'a>,
        bytes: Reader<'a>,
    },
}

fn filter_err(m: &str) -> Error {
    Error::new(ErrorKind::Codec(format!("diff stream filter: {m}")))
}

impl<'a> Runs<'a> {
    fn new(filter: DiffFilter, filtered: &'a [u8]) -> Result<Runs<'a>> {
        Ok(match filter {
            DiffFilter::None => Runs::Plain(filtered),
            DiffFilter::Tokens => Runs::Tokens(Reader::new(filtered)),
            DiffFilter::Runs => {
                let mut c = Reader::new(filtered);
                let a = c.varint()?;
                let b = c.varint()?;
                let zeros = Reader::new(c.bytes(a)?);
                let lens = Reader::new(c.bytes(b)?);
                Runs::Sections {
                    zeros,
                    lens,
                    bytes: c,
                }
            }
        })
    }

    /// The next (zeros, bytes) pair, or `None` at the end.
    #[inline]
    fn next(&mut self) -> Result<Option<(u64, &'a [u8])>> {
        match self {
            Runs::Plain(b) => Ok((!b.is_empty()).then(|| (0, std::mem::take(b)))),
            Runs::Tokens(c) => {
                if c.is_empty() {
                    return Ok(None);
                }
                let z = c.varint()?;
                let n = c.varint()?;
                Ok(Some((z, c.bytes(n)?)))
            }
            Runs::Sections { zeros, lens, bytes } => {
                if zeros.is_empty() {
                    return Ok(None);
                }
                let z = zeros.varint()?;
                let n = lens.varint()?;
                Ok(Some((z, bytes.bytes(n)?)))
            }
        }
    }

    /// After the last run: every section used up.
    fn finish(&self) -> Result<()> {
        match self {
            Runs::Sections { lens, bytes, .. } if !lens.is_empty() || !bytes.is_empty() => {
                Err(filter_err("sections not used up by the runs"))
            }
            _ => Ok(()),
        }
    }

    /// Bytes the stream decodes to, if it decodes within `max_out` bytes
    /// (not checked for unfiltered streams, as in [`crate::decode_chunk`]).
    /// Only the zero runs are read: [`Runs::next`] and [`Runs::finish`]
    /// check the rest as the runs are used, so a stream whose runs are all
    /// read and which then finishes decodes to exactly this many bytes.
    fn decoded_len(filter: DiffFilter, filtered: &[u8], max_out: usize) -> Result<usize> {
        let too_long = || filter_err("decodes to more than the chunk");
        let mut zeros_total = 0u64;
        let mut add = |z: u64| -> Result<()> {
            zeros_total = zeros_total
                .checked_add(z)
                .filter(|&t| t <= max_out as u64)
                .ok_or_else(too_long)?;
            Ok(())
        };
        let bytes_total = match Runs::new(filter, filtered)? {
            Runs::Plain(b) => return Ok(b.len()),
            Runs::Tokens(mut c) => {
                let mut n_total = 0usize;
                while !c.is_empty() {
                    add(c.varint()?)?;
                    let n = c.varint()?;
                    n_total += c.bytes(n)?.len();
                }
                n_total
            }
            Runs::Sections {
                mut zeros, bytes, ..
            } => {
                while !zeros.is_empty() {
                    add(zeros.varint()?)?;
                }
                bytes.remaining()
            }
        };
        let total = zeros_total + bytes_total as u64;
        if total > max_out as u64 {
            return Err(too_long());
        }
        Ok(total as usize)
    }
}

/// `dst += diff` for ADD bytes `at..at + diff.len()` of ADD `a`, whose bytes
/// in `out` already hold their OLD source.
#[inline(always)]
fn add_into(out: &mut [u8], a: &AddRec, at: usize, diff: &[u8], mode: AddMode) {
    let dst = &mut out[a.out_pos + at..a.out_pos + at + diff.len()];
    match mode {
        // (Predicted modes never get here: `Words::apply` and
        // `LearningWords::apply` add their bytes.)
        AddMode::Bytes
        | AddMode::Operands
        | AddMode::OperandsAbs
        | AddMode::Arm64
        | AddMode::Wasm
        | AddMode::OperandsLearned
        | AddMode::Riscv
        | AddMode::Armv7
        | AddMode::Thumb2 => {
            for (d, x) in dst.iter_mut().zip(diff) {
                *d = d.wrapping_add(*x);
            }
        }
        AddMode::Words32 => {
            // Bytes outside the op's aligned words add alone; inside, each
            // word gets the diff bytes it holds (zero elsewhere) as one
            // 32-bit addend.
            let (head, body) = AddMode::split(a.new_pos, a.len);
            let (start, end) = (at, at + diff.len());
            let byte_add = |out: &mut [u8], j: usize| {
                let x = diff[j - start];
                out[a.out_pos + j] = out[a.out_pos + j].wrapping_add(x);
            };
            for j in start..end.min(head) {
                byte_add(out, j);
            }
            let (bs, be) = (start.max(head), end.min(head + body));
            let mut j = bs;
            while j < be {
                let lane = (j - head) % 4;
                let n = (4 - lane).min(be - j);
                let mut x = [0u8; 4];
                x[lane..lane + n].copy_from_slice(&diff[j - start..j - start + n]);
                let x = u32::from_le_bytes(x);
                if x != 0 {
                    let w = a.out_pos + j - lane;
                    let word = u32::from_le_bytes([out[w], out[w + 1], out[w + 2], out[w + 3]])
                        .wrapping_add(x);
                    out[w..w + 4].copy_from_slice(&word.to_le_bytes());
                }
                j += n;
            }
            for j in start.max(head + body)..end {
                byte_add(out, j);
            }
        }
    }
}

/// A position in a filtered diff stream's runs that hands out stored bytes
/// in order: the zeros left of the current run, then its bytes.
#[derive(Clone)]
struct Feed<'a> {
    runs: Runs<'a>,
    zeros: u64,
    bytes: &'a [u8],
}

impl<'a> Feed<'a> {
    fn new(runs: Runs<'a>) -> Feed<'a> {
        Feed {
            runs,
            zeros: 0,
            bytes: &[],
        }
    }

    /// Hands out the next `n` stored bytes: calls `f(k, bytes)` for each
    /// run of non-zero-coded bytes among them, `k` counting from the first
    /// of the `n`. Fails if the stream ends first.
    #[inline(always)]
    fn take(&mut self, n: usize, mut f: impl FnMut(usize, &'a [u8])) -> Result<()> {
        let mut k = 0usize;
        while k < n {
            if self.zeros > 0 {
                let z = self.zeros.min((n - k) as u64);
                self.zeros -= z;
                k += z as usize;
            } else if !self.bytes.is_empty() {
                let m = self.bytes.len().min(n - k);
                let (run, rest) = self.bytes.split_at(m);
                f(k, run);
                self.bytes = rest;
                k += m;
            } else {
                let (z, b) = self
                    .runs
                    .next()?
                    .ok_or_else(|| filter_err("fewer bytes than the ADD ops take"))?;
                self.zeros = z;
                self.bytes = b;
            }
        }
        Ok(())
    }

    /// After the last byte was taken: nothing left, every section used up.
    fn finish(mut self) -> Result<()> {
        while self.zeros == 0 && self.bytes.is_empty() {
            match self.runs.next()? {
                Some((z, b)) => {
                    self.zeros = z;
                    self.bytes = b;
                }
                None => return self.runs.finish(),
            }
        }
        Err(filter_err("more bytes than the ADD ops take"))
    }
}

/// The class of bit `at` of `words` and how many bits from `at` on, up to
/// `end`, have that class.
#[inline(always)]
fn bit_run(words: &[u64], at: usize, end: usize) -> (bool, usize) {
    let set = (words[at / 64] >> (at % 64)) & 1 == 1;
    let mut p = at;
    loop {
        let off = p % 64;
        // Bits of the other class become ones; those above `p` are looked at.
        let other = if set { !words[p / 64] } else { words[p / 64] } >> off;
        let run = (other.trailing_zeros() as usize).min(64 - off);
        p += run;
        if p >= end {
            return (set, end - at);
        }
        if run < 64 - off {
            return (set, p - at);
        }
    }
}

/// Builds the operand split's class bitmap of the ADD sources, in op
/// order, fed in pieces as the op pass copies them (while they are in
/// cache): bit `p` set when diff byte `p` is class A. Equals
/// [`split::classify`] over each ADD's source (tested).
#[derive(Default)]
struct Classes {
    bits: split::Bits,
    ones: usize,
    /// The byte before the next one of the current source (0 at its start).
    prev: u8,
    /// Triggers at the last four bytes of the current source, the most
    /// recent highest (bit j: a trigger four minus j bytes back).
    recent: u64,
}

impl Classes {
    /// Starts the next ADD's source.
    fn start_source(&mut self) {
        self.prev = 0;
        self.recent = 0;
    }

    /// Classifies the next bytes of the current source.
    fn feed(&mut self, src: &[u8]) {
        let mut groups = src.chunks_exact(64);
        for g in &mut groups {
            let g: &[u8; 64] = g.try_into().expect("64 bytes");
            // Fixed-size arrays: the compiler vectorises the whole group.
            let mut prev = [0u8; 64];
            prev[0] = self.prev;
            prev[1..].copy_from_slice(&g[..63]);
            let mut flags = [0u8; 64];
            for ((f, &b), &p) in flags.iter_mut().zip(g).zip(&prev) {
                *f = split::trigger_flag(b, p);
            }
            self.group(&flags, 64, g[63]);
        }
        let g = groups.remainder();
        if !g.is_empty() {
            let n = g.len();
            let mut flags = [0u8; 64];
            flags[0] = split::trigger_flag(g[0], self.prev);
            for ((f, &b), &p) in flags[1..n].iter_mut().zip(&g[1..]).zip(g) {
                *f = split::trigger_flag(b, p);
            }
            self.group(&flags, n, g[n - 1]);
        }
    }

    /// Adds the classes of a group of `n` (1..=64) bytes whose trigger
    /// flags (a 0/1 byte each, zero past `n`) are `flags` and whose last
    /// byte is `last`.
    #[inline(always)]
    fn group(&mut self, flags: &[u8; 64], n: usize, last: u8) {
        let mut t = 0u64;
        for (c, f) in flags.chunks_exact(8).enumerate() {
            // Eight 0/1 bytes to eight bits, the first lowest.
            let x = u64::from_le_bytes(f.try_into().expect("8 bytes"));
            t |= (x.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * c);
        }
        // Byte k is class A when a trigger sits at k − 1 ..= k − 4.
        let r = self.recent;
        let mut a = (t << 1) | (t << 2) | (t << 3) | (t << 4) | r | (r >> 1) | (r >> 2) | (r >> 3);
        if n < 64 {
            a &= (1u64 << n) - 1;
        }
        self.recent = if n >= 4 {
            (t >> (n - 4)) & 0xf
        } else {
            ((r >> n) | (t << (4 - n))) & 0xf
        };
        self.prev = last;
        self.ones += a.count_ones() as usize;
        self.bits.push(a, n as u32);
    }

    /// The words (the last one partial) and the count of set bits.
    fn finish(self) -> (Vec<u64>, usize) {
        (self.bits.finish().0, self.ones)
    }
}

/// The operand modes' words ([`crate::operand`]), found as the op pass
/// copies each ADD's source into `out` (while it is in cache) and applied
/// once every op is known: the prediction needs the whole op map.
struct Words {
    map: OpMap,
    /// Where each operand word starts in `out`, in op order.
    at: Vec<u32>,
    /// The ADD ops: OLD start, position in `out`, length, and the index in
    /// `at` of their first word.
    adds: Vec<(u64, usize, usize, usize)>,
    /// Current source: first index at which a trigger starts an operand.
    next: usize,
    /// Current source: the byte before the next one fed (0 at its start).
    prev: u8,
}

impl Words {
    /// Room for the words of `diff_len` ADD bytes: at most one per five.
    fn new(diff_len: usize) -> Words {
        Words {
            map: OpMap::default(),
            at: Vec::with_capacity(diff_len / 5 + 1),
            adds: Vec::new(),
            next: 0,
            prev: 0,
        }
    }

    /// Starts the source of an ADD reading `len` OLD bytes at `old` into
    /// `out` at `out_pos`.
    fn start_source(&mut self, old: u64, out_pos: usize, len: usize) {
        self.adds.push((old, out_pos, len, self.at.len()));
        self.next = 0;
        self.prev = 0;
    }

    /// Finds the operands among the current source's bytes `from..` (fed
    /// in order): [`crate::operand`]'s walk, on trigger bitmaps of 64
    /// bytes at a time. Inlined into the op pass, its only caller.
    #[inline(always)]
    fn feed(&mut self, from: usize, src: &[u8]) {
        let &(_, out_pos, len, _) = self.adds.last().expect("a source was started");
        for (g, group) in src.chunks(64).enumerate() {
            let g0 = from + 64 * g;
            let mut flags = [0u8; 64];
            let mut prev = [0u8; 64];
            prev[0] = self.prev;
            prev[1..group.len()].copy_from_slice(&group[..group.len() - 1]);
            for ((f, &b), &p) in flags.iter_mut().zip(group).zip(&prev) {
                *f = split::trigger_flag(b, p);
            }
            self.prev = group[group.len() - 1];
            let mut t = 0u64;
            for (c, f) in flags.chunks_exact(8).enumerate() {
                // Eight 0/1 bytes to eight bits, the first lowest.
                let x = u64::from_le_bytes(f.try_into().expect("8 bytes"));
                t |= (x.wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * c);
            }
            // Bytes past the group are zero flags: no bits past its end.
            loop {
                let skip = self.next.saturating_sub(g0);
                if skip >= 64 {
                    break;
                }
                t &= u64::MAX << skip;
                if t == 0 {
                    break;
                }
                let k = g0 + t.trailing_zeros() as usize;
                if k + 5 > len {
                    self.next = usize::MAX;
                    break;
                }
                self.at.push((out_pos + k + 1) as u32);
                self.next = k + 5;
            }
        }
    }

    /// With every op's OLD bytes in `out`: the words' predictions plus
    /// their stored differences, then the byte-wise diff of the other ADD
    /// bytes, all read from `feed` in stored order. Kept out of line: the
    /// op map's lookups inline here.
    #[inline(never)]
    fn apply(
        mut self,
        out: &mut [u8],
        mut feed: Feed<'_>,
        new_start: u64,
        abs: bool,
    ) -> Result<()> {
        self.map.finish();
        let word =
            |out: &[u8], o: usize| u32::from_le_bytes([out[o], out[o + 1], out[o + 2], out[o + 3]]);
        let n_words = self.at.len();
        for (i, &(p, out_pos, _, first)) in self.adds.iter().enumerate() {
            let last = self.adds.get(i + 1).map_or(n_words, |a| a.3);
            let s_op = ((new_start + out_pos as u64) as i64).wrapping_sub(p as i64);
            for &o in &self.at[first..last] {
                let o = o as usize;
                // OLD `p + k + 5` follows the word at `out_pos + k + 1`.
                let after = p.wrapping_add((o - out_pos) as u64 + 4);
                let pred = self.map.predict(abs, word(out, o), after, s_op);
                out[o..o + 4].copy_from_slice(&pred.to_le_bytes());
            }
        }
        let at = &self.at;
        feed.take(4 * n_words, |k, run| {
            for (j, &b) in run.iter().enumerate() {
                let (idx, lane) = ((k + j) / 4, (k + j) % 4);
                let o = at[idx] as usize;
                let w = word(out, o).wrapping_add(u32::from(b) << (8 * lane));
                out[o..o + 4].copy_from_slice(&w.to_le_bytes());
            }
        })?;
        for (i, &(_, out_pos, len, first)) in self.adds.iter().enumerate() {
            let last = self.adds.get(i + 1).map_or(n_words, |a| a.3);
            let mut next = out_pos;
            for &o in at[first..last]
                .iter()
                .chain(std::iter::once(&((out_pos + len) as u32)))
            {
                let o = o as usize;
                feed.take(o - next, |k, run| {
                    for (d, x) in out[next + k..next + k + run.len()].iter_mut().zip(run) {
                        *d = d.wrapping_add(*x);
                    }
                })?;
                next = o + 4;
            }
        }
        feed.finish()
    }
}

/// The words of a mode whose predictions learn from the words decoded
/// before them (arm64, [`crate::arm64`]; operands-learned,
/// [`crate::operand`]): the op pass copies each ADD's OLD bytes, records
/// the op map and counts the ADD's predicted words;
/// [`LearningWords::apply`] then walks the ADDs in op order, as the
/// reference does: each word's prediction needs the op map and the NEW
/// words decoded before it.
struct LearningWords {
    /// [`AddMode::Arm64`], [`AddMode::OperandsLearned`] or
    /// [`AddMode::Riscv`].
    mode: AddMode,
    map: OpMap,
    /// The ADD ops: OLD start, position in `out`, length.
    adds: Vec<(u64, usize, usize)>,
    /// Predicted words in all the ADDs.
    n_words: usize,
}

impl LearningWords {
    fn new(mode: AddMode) -> LearningWords {
        LearningWords {
            mode,
            map: OpMap::default(),
            adds: Vec::new(),
            n_words: 0,
        }
    }

    /// Starts the ADD reading `src` at OLD `old` into `out` at `out_pos`
    /// (NEW `new_pos`).
    fn add(&mut self, src: &[u8], old: u64, out_pos: usize, new_pos: u64) {
        self.map.push(old, src.len() as u64, new_pos);
        self.adds.push((old, out_pos, src.len()));
        self.n_words += match self.mode {
            AddMode::Arm64 => Predictor::count(src, old),
            AddMode::Riscv => crate::riscv::Predictor::count(src, old),
            AddMode::Armv7 => crate::armv7::Predictor::count(src, old),
            AddMode::Thumb2 => crate::thumb2::Predictor::count(src, old),
            _ => LearnedOperands::count(src, old),
        };
    }

    /// With every op's OLD bytes in `out`: each ADD's words (predicted,
    /// plus their stored differences, read from `feed` in stored order)
    /// written over their OLD words, and the byte-wise diff of its other
    /// bytes added (read from a second feed, where the words end). Kept
    /// out of line, like [`Words::apply`].
    #[inline(never)]
    fn apply<O: OldBytes + ?Sized>(
        mut self,
        out: &mut [u8],
        feed: Feed<'_>,
        old: &O,
        new_start: u64,
    ) -> Result<()> {
        self.map.finish();
        let (adds, n) = (&self.adds, self.n_words);
        match self.mode {
            AddMode::Arm64 => {
                let mut walk = Predictor::new(&self.map);
                walk_words(&mut walk, adds, n, out, feed, old, new_start)
            }
            AddMode::Riscv => {
                let mut walk = crate::riscv::Predictor::new(&self.map);
                walk_words(&mut walk, adds, n, out, feed, old, new_start)
            }
            AddMode::Armv7 => {
                let mut walk = crate::armv7::Predictor::new(&self.map);
                walk_words(&mut walk, adds, n, out, feed, old, new_start)
            }
            AddMode::Thumb2 => {
                let mut walk = crate::thumb2::Predictor::new(&self.map);
                walk_words(&mut walk, adds, n, out, feed, old, new_start)
            }
            _ => {
                let mut walk = LearnedOperands::new(&self.map);
                walk_words(&mut walk, adds, n, out, feed, old, new_start)
            }
        }
    }
}

/// [`LearningWords::apply`] with its walk: `adds` as it records them,
/// `n_words` predicted words in all.
fn walk_words<W: Walk, O: OldBytes + ?Sized>(
    walk: &mut W,
    adds: &[(u64, usize, usize)],
    n_words: usize,
    out: &mut [u8],
    feed: Feed<'_>,
    old: &O,
    new_start: u64,
) -> Result<()> {
    let mut words = feed;
    let mut rest = words.clone();
    rest.take(4 * n_words, |_, _| {})?;
    let mut failed = None;
    for &(p, out_pos, len) in adds {
        let dst = &mut out[out_pos..out_pos + len];
        let mut next = 0;
        walk.op(
            old.bytes(p, len),
            p,
            new_start + out_pos as u64,
            |k, pred| {
                let mut d = [0u8; 4];
                // Cannot fail: `rest` took these bytes already.
                if let Err(e) = words.take(4, |j, run| d[j..j + run.len()].copy_from_slice(run)) {
                    failed.get_or_insert(e);
                }
                let nw = u32::from_le_bytes(d).wrapping_add(pred);
                if failed.is_none() {
                    if let Err(e) = add_bytes(&mut rest, &mut dst[next..k]) {
                        failed.get_or_insert(e);
                    }
                }
                dst[k..k + 4].copy_from_slice(&nw.to_le_bytes());
                next = k + 4;
                nw
            },
        );
        if let Some(e) = failed {
            return Err(e);
        }
        add_bytes(&mut rest, &mut dst[next..])?;
    }
    rest.finish()
}

/// `dst += ` the next `dst.len()` stored bytes of `feed`.
#[inline(always)]
fn add_bytes(feed: &mut Feed<'_>, dst: &mut [u8]) -> Result<()> {
    feed.take(dst.len(), |k, run| {
        for (d, x) in dst[k..k + run.len()].iter_mut().zip(run) {
            *d = d.wrapping_add(*x);
        }
    })
}

/// A chunk's streams as the one-pass rebuild reads them: the control and
/// literal streams decoded (literals still x86-filtered if they were
/// stored so), the diff stream decompressed but still filtered.
struct Opened<'p> {
    ctrl: std::borrow::Cow<'p, [u8]>,
    lit: std::borrow::Cow<'p, [u8]>,
    filtered: Vec<u8>,
    /// Bytes the filtered diff stream decodes to.
    diff_len: usize,
}

impl<'p> Opened<'p> {
    /// The checks of [`crate::decode_chunk_in`] (payload length and hash,
    /// codecs, the control split) and of the filter's decoded length, with
    /// no detail in the errors (see the module docs).
    fn open(
        entry: &ChunkEntry,
        payload: &'p [u8],
        shared: &'p crate::Shared,
        out_len: usize,
    ) -> Result<Opened<'p>> {
        if payload.len() as u64 != entry.payload_len()
            || blake3::hash(payload).as_bytes() != &entry.payload_hash
            || out_len != entry.new_len as usize
        {
            return Err(Error::new(ErrorKind::Codec(
                "checked by the reference".into(),
            )));
        }
        let (c, rest) = payload.split_at(entry.ctrl.stored as usize);
        let (d, l) = rest.split_at(entry.diff.stored as usize);
        let (ctrl, lit) = shared.streams(entry, c, l)?;
        let ctrl = if entry.ctrl_split {
            std::borrow::Cow::Owned(crate::coding::join(&ctrl)?)
        } else {
            ctrl
        };
        let filtered = entry
            .codec
            .decompress(d, entry.diff.raw as usize, "diff stream")?;
        let max_diff = (entry.new_len as usize).saturating_sub(entry.lit.raw as usize);
        let diff_len = Runs::decoded_len(entry.diff_filter, &filtered, max_diff)?;
        Ok(Opened {
            ctrl,
            lit,
            filtered,
            diff_len,
        })
    }
}

/// The one-pass rebuild's ADD (see the module docs): during the op pass,
/// OLD's bytes are copied (unsplit unfiltered diff bytes, being dense, are
/// added at once), the operand split's classes or the operand modes'
/// words found while the source is in cache; [`OnePass::finish`] then adds
/// the stored diff bytes.
struct OnePass<'f> {
    /// Unsplit, unfiltered, byte-wise diff bytes: added during the pass.
    dense: Option<&'f [u8]>,
    /// The ADDs whose diff bytes wait for [`OnePass::finish`].
    adds: Vec<AddRec>,
    /// An operand mode's words (their diffs also wait).
    words: Option<Words>,
    /// The arm64 or operands-learned mode's words (their diffs also
    /// wait).
    arm64: Option<LearningWords>,
    /// The operand split's class bitmap.
    classes: Option<Classes>,
    /// Diff-stream index (op order) of the next ADD byte.
    dpos: usize,
    mode: AddMode,
    new_start: u64,
}

impl<'f> OnePass<'f> {
    fn new(entry: &ChunkEntry, filtered: &'f [u8], diff_len: usize) -> OnePass<'f> {
        let operand_mode = entry.add_mode.is_operands();
        let dense = (entry.diff_filter == DiffFilter::None
            && !entry.operand_split
            && !entry.add_mode.is_predicted())
        .then_some(filtered);
        OnePass {
            dense,
            adds: Vec::new(),
            words: operand_mode.then(|| Words::new(diff_len)),
            arm64: matches!(
                entry.add_mode,
                AddMode::Arm64
                    | AddMode::OperandsLearned
                    | AddMode::Riscv
                    | AddMode::Armv7
                    | AddMode::Thumb2
            )
            .then(|| LearningWords::new(entry.add_mode)),
            classes: entry.operand_split.then(|| Classes {
                bits: split::Bits::with_capacity(diff_len.div_ceil(64)),
                ..Classes::default()
            }),
            dpos: 0,
            mode: entry.add_mode,
            new_start: entry.new_offset,
        }
    }

    /// After the op pass: adds the stored diff bytes that wait, read from
    /// the filtered stream, checking that they are used up exactly.
    fn finish<O: OldBytes + ?Sized>(
        self,
        out: &mut [u8],
        entry: &ChunkEntry,
        filtered: &[u8],
        old: &O,
    ) -> Result<()> {
        // `dpos` is now the ADD bytes in all, which the op decoder checked
        // equal the decoded diff length.
        let predicted = self.words.is_some() || self.arm64.is_some();
        if self.dense.is_some() || (self.dpos == 0 && !predicted) {
            return Ok(());
        }
        let mode = self.mode;
        let mut fa = Feed::new(Runs::new(entry.diff_filter, filtered)?);
        if let Some(w) = self.words {
            return w.apply(out, fa, self.new_start, mode == AddMode::OperandsAbs);
        }
        if let Some(w) = self.arm64 {
            return w.apply(out, fa, old, self.new_start);
        }
        let Some(classes) = self.classes else {
            for a in &self.adds {
                fa.take(a.len, |k, run| add_into(out, a, k, run, mode))?;
            }
            return fa.finish();
        };
        // Class A bytes are stored first, then class B: a second feed
        // starts where class B does.
        let (words, n_a) = classes.finish();
        let mut fb = fa.clone();
        fb.take(n_a, |_, _| {})?;
        for a in &self.adds {
            let (start, end) = (a.diff_start, a.diff_start + a.len);
            let mut p = start;
            while p < end {
                let (class_a, n) = bit_run(&words, p, end);
                let feed = if class_a { &mut fa } else { &mut fb };
                let at = p - start;
                feed.take(n, |k, run| add_into(out, a, at + k, run, mode))?;
                p += n;
            }
        }
        fb.finish()
    }
}

impl Adds for OnePass<'_> {
    #[inline(always)]
    fn copied(&mut self, old: u64, len: usize, pos: usize) {
        if let Some(w) = self.words.as_mut() {
            w.map.push(old, len as u64, self.new_start + pos as u64);
        } else if let Some(w) = self.arm64.as_mut() {
            w.map.push(old, len as u64, self.new_start + pos as u64);
        }
    }

    #[inline(always)]
    fn add(&mut self, dst: &mut [u8], src: &[u8], old: u64, pos: usize) {
        let len = dst.len();
        let new_pos = self.new_start + pos as u64;
        if let Some(w) = self.words.as_mut() {
            w.map.push(old, len as u64, new_pos);
            w.start_source(old, pos, len);
            for (k, (d, s)) in dst.chunks_mut(PIECE).zip(src.chunks(PIECE)).enumerate() {
                d.copy_from_slice(s);
                w.feed(k * PIECE, s);
            }
        } else if let Some(w) = self.arm64.as_mut() {
            dst.copy_from_slice(src);
            w.add(src, old, pos, new_pos);
        } else if let Some(diff) = self.dense {
            self.mode
                .add(dst, src, &diff[self.dpos..self.dpos + len], new_pos);
        } else {
            if let Some(c) = self.classes.as_mut() {
                // Copy and classify in pieces that stay in cache.
                c.start_source();
                for (d, s) in dst.chunks_mut(PIECE).zip(src.chunks(PIECE)) {
                    d.copy_from_slice(s);
                    c.feed(s);
                }
            } else {
                dst.copy_from_slice(src);
            }
            self.adds.push(AddRec {
                diff_start: self.dpos,
                len,
                out_pos: pos,
                new_pos,
            });
        }
        self.dpos += len;
    }
}

/// Rebuilds chunk `entry` from its `payload` and `old` into `out` (the
/// chunk's length), without checking the NEW hash: the fast equivalent of
/// [`crate::decode_chunk`] then [`crate::ops::apply_ops`] (see the module
/// docs). On error `out` holds anything.
pub(crate) fn rebuild<O: OldBytes + ?Sized>(
    entry: &ChunkEntry,
    payload: &[u8],
    shared: &crate::Shared,
    old: &O,
    out: &mut [u8],
    zeroed: bool,
) -> Result<()> {
    let s = Opened::open(entry, payload, shared, out.len())?;
    let ops = OpDecoder::new(
        &s.ctrl,
        entry.new_offset,
        u64::from(entry.new_len),
        s.diff_len as u64,
        s.lit.len() as u64,
        old.old_len(),
        &entry.old_ranges,
    );
    let mut adds = OnePass::new(entry, &s.filtered, s.diff_len);
    let to = Out {
        buf: &mut *out,
        new_start: entry.new_offset,
        lit: &s.lit,
        lit_x86: entry.lit_x86,
        zeroed,
    };
    interp::run(ops, old, to, &mut adds)?;
    adds.finish(out, entry, &s.filtered, old)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::Codec;
    use crate::head::StreamLen;
    use crate::ops::{ChunkEncoder, Op, Streams, apply_ops};

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    /// Code-like bytes: many call opcodes and memory operands.
    fn code(r: &mut Rng, n: usize) -> Vec<u8> {
        const OPS: [u8; 12] = [
            0xe8, 0xe9, 0x0f, 0x89, 0x8b, 0x8d, 0x05, 0x85, 0xc7, 0xff, 0x00, 0x01,
        ];
        (0..n)
            .map(|_| {
                if r.below(3) == 0 {
                    OPS[r.below(12) as usize]
                } else {
                    r.next() as u8
                }
            })
            .collect()
    }

    #[test]
    fn classes_equal_classify() {
        let mut r = Rng(0x1234_5678_9abc_def1);
        for round in 0..200 {
            let mut classes = Classes::default();
            let mut want = Vec::new();
            for _ in 0..1 + r.below(5) {
                let n = r.below(if round % 2 == 0 { 300 } else { 20_000 }) as usize;
                let src = code(&mut r, n);
                split::classify(&src, |_, a| want.push(a));
                classes.start_source();
                let mut rest = &src[..];
                while !rest.is_empty() {
                    let k = (1 + r.below(200) as usize).min(rest.len());
                    classes.feed(&rest[..k]);
                    rest = &rest[k..];
                }
            }
            let len = classes.bits.len();
            let (words, ones) = classes.finish();
            assert_eq!(len, want.len());
            let got: Vec<bool> = (0..len)
                .map(|p| words[p / 64] >> (p % 64) & 1 == 1)
                .collect();
            assert_eq!(got, want, "round {round}");
            assert_eq!(ones, want.iter().filter(|&&a| a).count());
        }
    }

    /// Adding an op's diff in pieces (any split, any alignment) onto its
    /// OLD bytes gives what [`AddMode::add`] gives for the whole op.
    #[test]
    fn pieces_add_like_the_whole_op() {
        let mut r = Rng(99);
        for mode in AddMode::PER_OP {
            for new_pos in 0..8u64 {
                for len in 0..19usize {
                    let src: Vec<u8> = (0..len).map(|_| r.next() as u8).collect();
                    let diff: Vec<u8> = (0..len)
                        .map(|_| if r.below(3) == 0 { 0 } else { r.next() as u8 })
                        .collect();
                    let mut want = vec![0u8; len];
                    mode.add(&mut want, &src, &diff, new_pos);
                    for cut in 0..=len {
                        let mut out = vec![0xeeu8; len + 3];
                        out[2..2 + len].copy_from_slice(&src);
                        let a = AddRec {
                            diff_start: 0,
                            len,
                            out_pos: 2,
                            new_pos,
                        };
                        add_into(&mut out, &a, 0, &diff[..cut], mode);
                        add_into(&mut out, &a, cut, &diff[cut..], mode);
                        assert_eq!(
                            out[2..2 + len],
                            want,
                            "{mode:?} at {new_pos}, {len} cut {cut}"
                        );
                        assert_eq!([out[0], out[1], out[len + 2]], [0xee; 3]);
                    }
                }
            }
        }
    }

    #[test]
    fn bit_runs_cover_the_bits() {
        let mut r = Rng(77);
        for _ in 0..100 {
            let words: Vec<u64> = (0..5)
                .map(|_| match r.below(4) {
                    0 => 0,
                    1 => u64::MAX,
                    _ => r.next() & r.next(),
                })
                .collect();
            let end = 1 + r.below(320) as usize;
            let mut p = r.below(end as u64) as usize;
            while p < end {
                let (set, n) = bit_run(&words, p, end);
                assert!(n >= 1 && p + n <= end);
                for q in p..p + n {
                    assert_eq!(words[q / 64] >> (q % 64) & 1 == 1, set);
                }
                if p + n < end {
                    let q = p + n;
                    assert_ne!(words[q / 64] >> (q % 64) & 1 == 1, set);
                }
                p += n;
            }
        }
    }

    /// One chunk's entry and payload, with the diff stream coded as asked.
    struct Built {
        entry: ChunkEntry,
        payload: Vec<u8>,
    }

    fn build(
        old: &[u8],
        new: &[u8],
        start: usize,
        ops: &[Op],
        (codec, filter, add, split_order, v4): Coding,
        damage: &mut dyn FnMut(&mut Streams),
    ) -> Built {
        let mut enc = ChunkEncoder::new(old, new, start as u64);
        for &op in ops {
            enc.push(op);
        }
        let end = enc.new_pos() as usize;
        let (mut s, ranges) = enc.finish();
        // The diff bytes in `add`'s arithmetic and the asked order.
        let whole = [(0, old.len() as u64)];
        let dec = OpDecoder::for_streams(
            &s,
            start as u64,
            (end - start) as u64,
            old.len() as u64,
            &whole,
        );
        let (mut pos, mut diff, mut srcs) = (start, Vec::new(), Vec::new());
        let mut adds = Vec::new();
        let map = OpMap::from_ops(dec.clone(), start as u64).expect("the encoder's ops decode");
        for op in dec {
            let op = op.expect("the encoder's ops decode");
            let len = op.len() as usize;
            if let Op::Add { old: o, .. } = op {
                let o = o as usize;
                adds.push((o, len, pos - start));
                add.sub(
                    &mut diff,
                    &new[pos..pos + len],
                    &old[o..o + len],
                    pos as u64,
                );
                srcs.push(&old[o..o + len]);
            }
            pos += len;
        }
        if split_order {
            diff = split::split(&diff, srcs.iter().copied());
        }
        if add.is_operands() {
            let abs = add == AddMode::OperandsAbs;
            diff = crate::operand::encode(&map, abs, &adds, old, &new[start..end], start as u64);
        }
        if add == AddMode::Arm64 {
            diff = crate::arm64::encode(&map, &adds, old, &new[start..end], start as u64);
        }
        if add == AddMode::Armv7 {
            diff = crate::armv7::encode(&map, &adds, old, &new[start..end], start as u64);
        }
        if add == AddMode::Thumb2 {
            diff = crate::thumb2::encode(&map, &adds, old, &new[start..end], start as u64);
        }
        if add == AddMode::Riscv {
            diff = crate::riscv::encode(&map, &adds, old, &new[start..end], start as u64);
        }
        if add == AddMode::OperandsLearned {
            diff = crate::operand::encode_learned(&map, &adds, old, &new[start..end], start as u64);
        }
        s.diff = filter.encode(&diff);
        if v4 {
            // The v4 stream codings: literals x86-filtered, controls split.
            crate::coding::filter_literals(&s.ctrl, start as u64, &mut s.lit);
            s.ctrl = crate::coding::split(&s.ctrl).expect("the encoder's controls parse");
        }
        damage(&mut s);
        let stored: Vec<Vec<u8>> = [&s.ctrl, &s.diff, &s.lit]
            .iter()
            .map(|x| codec.compress(x))
            .collect();
        let len = |k: usize, raw: &Vec<u8>| StreamLen {
            raw: raw.len() as u32,
            stored: stored[k].len() as u32,
        };
        let payload = stored.concat();
        let entry = ChunkEntry {
            new_offset: start as u64,
            new_len: (end - start) as u32,
            codec,
            diff_filter: filter,
            add_mode: add,
            operand_split: split_order,
            ctrl_split: v4,
            lit_x86: v4,
            shared: false,
            shared_ctrl_at: 0,
            shared_lit_at: 0,
            ctrl: len(0, &s.ctrl),
            diff: len(1, &s.diff),
            lit: len(2, &s.lit),
            payload_hash: *blake3::hash(&payload).as_bytes(),
            new_hash: *blake3::hash(&new[start..end]).as_bytes(),
            old_ranges: ranges,
            zero: false,
            payload_offset: 0,
        };
        Built { entry, payload }
    }

    /// The reference: decode the streams, then apply the ops.
    fn reference(b: &Built, old: &[u8], zeroed: bool) -> Result<Vec<u8>> {
        let mut out = vec![if zeroed { 0 } else { 0xa5 }; b.entry.new_len as usize];
        let s = crate::decode_chunk(&b.entry, &b.payload)?;
        apply_ops(
            old,
            &s,
            &b.entry.old_ranges,
            b.entry.new_offset,
            &mut out,
            zeroed,
        )?;
        Ok(out)
    }

    fn fast(b: &Built, old: &[u8], zeroed: bool) -> Result<Vec<u8>> {
        let mut out = vec![if zeroed { 0 } else { 0xa5 }; b.entry.new_len as usize];
        rebuild(
            &b.entry,
            &b.payload,
            &crate::NO_SHARED,
            old,
            &mut out,
            zeroed,
        )?;
        Ok(out)
    }

    /// Codec, diff filter, ADD mode, operand split, v4 stream codings
    /// (controls split, literals x86-filtered).
    type Coding = (Codec, DiffFilter, AddMode, bool, bool);

    fn codings() -> Vec<Coding> {
        let mut v = Vec::new();
        for codec in [Codec::None, Codec::Lz4, Codec::Zstd(1), Codec::Lzma2] {
            for filter in DiffFilter::ALL {
                for v4 in [false, true] {
                    for add in AddMode::PER_OP {
                        for split in [false, true] {
                            v.push((codec, filter, add, split, v4));
                        }
                    }
                    for add in [
                        AddMode::Operands,
                        AddMode::OperandsAbs,
                        AddMode::Arm64,
                        AddMode::OperandsLearned,
                        AddMode::Riscv,
                        AddMode::Armv7,
                        AddMode::Thumb2,
                    ] {
                        v.push((codec, filter, add, false, v4));
                    }
                }
            }
        }
        v
    }

    /// AArch64-like words: branches, ADRPs followed by an ADD or a load
    /// on their register (or not), other words.
    fn arm64_code(r: &mut Rng, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 4);
        let mut rd = 0;
        while out.len() < n {
            let imm = r.next() as u32;
            let w = match r.below(8) {
                0 => 0x9400_0000 | (imm % 2048),
                1 => 0x1400_0000 | (imm & 0x3FF_FFFF),
                2 => {
                    rd = r.below(4) as u32;
                    0x9000_0000 | (imm & 0x6000_3FE0) | rd
                }
                3 => 0x9100_0000 | (imm & 0x3F_FC00) | (rd << 5),
                4 => 0xF940_0000 | (imm & 0x3F_FC00) | (rd << 5) | 1,
                _ => imm,
            };
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.truncate(n);
        out
    }

    /// RISC-V-like instructions: JALs, AUIPCs followed by an ADDI, a load,
    /// a store or a JALR on their register (or not), compressed halfwords,
    /// other words.
    fn riscv_code(r: &mut Rng, n: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(n + 4);
        let mut rd = 5;
        while out.len() < n {
            let imm = r.next() as u32;
            let w = match r.below(9) {
                0 => 0x0000_00EF | (imm & 0x801F_F000),
                1 => {
                    rd = 5 + r.below(3) as u32;
                    0x0000_0017 | (imm & 0x0003_F000) | rd << 7
                }
                2 => 0x0000_0013 | (imm & 0xFFF0_0000) | rd << 15 | rd << 7,
                3 => 0x0000_3003 | (imm & 0xFFF0_0000) | rd << 15 | 10 << 7,
                4 => 0x0000_3023 | (imm & 0xFE00_0F80) | rd << 15 | 10 << 20,
                5 => 0x0000_00E7 | (imm & 0xFFF0_0000) | rd << 15,
                6 => {
                    out.extend_from_slice(&((imm as u16) & !3).to_le_bytes());
                    continue;
                }
                _ => imm,
            };
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.truncate(n);
        out
    }

    /// Random ops over code-like OLD (x86, AArch64 or RISC-V) and a NEW
    /// made from it (moved code with shifted operands, new bytes, zeros).
    fn case(r: &mut Rng) -> (Vec<u8>, Vec<u8>, usize, Vec<Op>) {
        let n = 200 + r.below(6000) as usize;
        let old = match r.below(3) {
            0 => code(r, n),
            1 => arm64_code(r, n),
            _ => riscv_code(r, n),
        };
        let start = r.below(7) as usize;
        let mut new = code(r, start);
        let mut ops = Vec::new();
        while new.len() < start + 9000 && ops.len() < 40 {
            let most = if r.below(4) == 0 { 2000 } else { 60 };
            let len = 1 + r.below(most) as usize;
            match r.below(4) {
                0 | 1 => {
                    let len = len.min(old.len());
                    let o = r.below((old.len() - len + 1) as u64) as usize;
                    let mut part = old[o..o + len].to_vec();
                    if r.below(2) == 0 {
                        // Shifted operands and a few random changes.
                        for k in 0..len {
                            if k > 0 && old[o + k - 1] == 0xe8 || r.below(40) == 0 {
                                part[k] = part[k].wrapping_add(r.below(4) as u8);
                            }
                        }
                    }
                    new.extend_from_slice(&part);
                    ops.push(Op::Add {
                        old: o as u64,
                        len: len as u64,
                    });
                }
                2 => {
                    new.extend(code(r, len));
                    ops.push(Op::Insert { len: len as u64 });
                }
                _ => {
                    new.extend(std::iter::repeat_n(0u8, len));
                    ops.push(Op::Zero { len: len as u64 });
                }
            }
        }
        (old, new, start, ops)
    }

    #[test]
    fn rebuild_equals_the_reference() {
        let mut r = Rng(0xdead_beef_1234_5678);
        for round in 0..40 {
            let (old, new, start, ops) = case(&mut r);
            for coding in codings() {
                let b = build(&old, &new, start, &ops, coding, &mut |_| {});
                for zeroed in [false, true] {
                    let want = reference(&b, &old, zeroed).expect("honest chunk decodes");
                    assert_eq!(want, new[start..start + want.len()], "reference");
                    let got = fast(&b, &old, zeroed);
                    assert_eq!(
                        got.ok().as_ref(),
                        Some(&want),
                        "round {round} {coding:?} zeroed {zeroed}"
                    );
                    let mut out = vec![0u8; want.len()];
                    crate::apply_chunk(&b.entry, &b.payload, &old, &mut out, true).unwrap();
                    assert_eq!(out, want);
                }
            }
        }
    }

    /// Damaged streams (bytes changed, cut or added in the filtered diff
    /// stream or the controls, recompressed so that they reach the
    /// decoders): the one-pass rebuild accepts exactly what the reference
    /// accepts, with the same bytes, and `apply_chunk` answers exactly as
    /// the reference does (the same error).
    #[test]
    fn damaged_streams_agree_with_the_reference() {
        let mut r = Rng(0x0bad_cafe_f00d_0001);
        let (mut accepted, mut refused) = (0, 0);
        for round in 0..60 {
            let (old, new, start, ops) = case(&mut r);
            for coding in codings() {
                let seed = r.next();
                let mut damage = |s: &mut Streams| {
                    let mut d = Rng(seed | 1);
                    let target = if d.below(4) == 0 {
                        &mut s.ctrl
                    } else {
                        &mut s.diff
                    };
                    match d.below(4) {
                        0 if !target.is_empty() => {
                            let at = d.below(target.len() as u64) as usize;
                            target[at] = d.next() as u8;
                        }
                        1 if !target.is_empty() => {
                            let at = d.below(target.len() as u64) as usize;
                            target.truncate(at);
                        }
                        2 => target.push(d.next() as u8),
                        _ => {
                            for _ in 0..3 {
                                if !target.is_empty() {
                                    let at = d.below(target.len() as u64) as usize;
                                    target[at] ^= 1 << d.below(8);
                                }
                            }
                        }
                    }
                };
                let b = build(&old, &new, start, &ops, coding, &mut damage);
                for zeroed in [false, true] {
                    let want = reference(&b, &old, zeroed);
                    // Not only a subset: the rebuild refuses what the
                    // reference refuses, and nothing else.
                    let got = fast(&b, &old, zeroed);
                    assert_eq!(
                        want.as_ref().ok(),
                        got.as_ref().ok(),
                        "round {round} {coding:?}"
                    );
                    let mut out = vec![if zeroed { 0 } else { 0x5a }; b.entry.new_len as usize];
                    let done = crate::apply_chunk(&b.entry, &b.payload, &old, &mut out, zeroed);
                    match &want {
                        Ok(w) if w[..] == new[start..start + w.len()] => {
                            assert!(done.is_ok());
                            assert_eq!(&out, w);
                            accepted += 1;
                        }
                        Ok(_) => {
                            assert!(done.is_err(), "wrong bytes pass the NEW hash");
                            accepted += 1;
                        }
                        Err(e) => {
                            assert_eq!(done.unwrap_err().to_string(), e.to_string());
                            refused += 1;
                        }
                    }
                }
            }
        }
        assert!(
            accepted > 200 && refused > 1000,
            "{accepted} accepted, {refused} refused"
        );
    }
}
