//! Stream codings of format version 4: the split control stream and the
//! x86 literal filter. Both are undone right after decompression (the
//! control stream) or as each INSERT writes its bytes (the literals), so
//! every other part of the decoder sees version 3's streams.
//!
//! **Split control stream.** A control stream interleaves three kinds of
//! field: the op tag (two bits), the op length and, for COPY and ADD, the
//! OLD offset. Compressed together they share one entropy model; apart,
//! each gets its own and repeats within each kind become matches. The
//! split stream is `varint n ‖ varint m ‖ n tag bytes ‖ m bytes of length
//! varints ‖ offset varints`, which [`join`] turns back into the
//! interleaved form. On the exe-rust corpus pair (zstd 19) the control
//! streams went from 294,935 to 280,103 bytes (−5.0%).
//!
//! **x86 literal filter.** New code arrives as literals, and every call
//! in it stores its target relative to itself, so two calls of one
//! function differ in their bytes. The filter stores each operand word of
//! an INSERT's bytes (found by the operand trigger rule of
//! [`crate::filter::split`], as in [`crate::operand`]) as `word + (q + k +
//! 5)` modulo 2^32, `q + k + 5` being the NEW offset just after the word:
//! a call's absolute target, the same for every caller. On the exe-rust
//! corpus pair the code chunks' literal streams shrank 4–7% (zstd 19);
//! encoders choose per chunk, since on data it loses.
//!
//! Bounds: [`join`] writes at most as many bytes as it reads (a tag byte
//! pays for the bits it adds to a length varint), so it holds at most the
//! control stream's length twice; the literal filter works in place.

use crate::cursor::{Cursor, put_varint};
use crate::error::{Error, ErrorKind, Result};
use crate::filter::split;

fn err(m: &str) -> Error {
    Error::new(ErrorKind::Codec(format!("split control stream: {m}")))
}

/// Copies one varint of `c` to `out` as its bytes are (checked by
/// [`Cursor::varint`]).
fn copy_varint(c: &mut Cursor<'_>, out: &mut Vec<u8>, what: &'static str) -> Result<u64> {
    let before = c.remaining();
    let v = c.varint(what)?;
    put_varint(out, v);
    debug_assert!(before > c.remaining());
    Ok(v)
}

/// The interleaved control stream of split stream `s` (see the module
/// docs). Fails unless every section is used exactly.
pub fn join(s: &[u8]) -> Result<Vec<u8>> {
    let mut c = Cursor::new(s, 0);
    let n = c.varint("split control op count")?;
    let m = c.varint("split control length bytes")?;
    let n = usize::try_from(n)
        .ok()
        .filter(|&n| n <= c.remaining())
        .ok_or_else(|| err("more tags than bytes"))?;
    let tags = c.bytes(n, "split control tags")?;
    let m = usize::try_from(m)
        .ok()
        .filter(|&m| m <= c.remaining())
        .ok_or_else(|| err("length section past the end"))?;
    let mut lens = Cursor::new(c.bytes(m, "split control lengths")?, 0);
    let mut offsets = c;
    let mut out = Vec::with_capacity(s.len());
    for &t in tags {
        if t > 3 {
            return Err(err("tag above 3"));
        }
        let len = lens.varint("op length")?;
        if len >> 62 != 0 {
            return Err(err("op length above 2^62"));
        }
        put_varint(&mut out, len << 2 | u64::from(t));
        if t <= 1 {
            copy_varint(&mut offsets, &mut out, "op old offset")?;
        }
    }
    if !lens.is_empty() || !offsets.is_empty() {
        return Err(err("sections not used up by the ops"));
    }
    Ok(out)
}

/// The split form of interleaved control stream `ctrl`, if its varints
/// parse (the ops are not checked). [`join`] inverts it, writing each
/// varint in its shortest form.
pub fn split(ctrl: &[u8]) -> Option<Vec<u8>> {
    let (mut tags, mut lens, mut offsets) = (Vec::new(), Vec::new(), Vec::new());
    let mut c = Cursor::new(ctrl, 0);
    while !c.is_empty() {
        let v = c.varint("op").ok()?;
        tags.push((v & 3) as u8);
        put_varint(&mut lens, v >> 2);
        if v & 3 <= 1 {
            copy_varint(&mut c, &mut offsets, "op old offset").ok()?;
        }
    }
    let mut out = Vec::with_capacity(ctrl.len() + 20);
    put_varint(&mut out, tags.len() as u64);
    put_varint(&mut out, lens.len() as u64);
    out.extend_from_slice(&tags);
    out.extend_from_slice(&lens);
    out.extend_from_slice(&offsets);
    Some(out)
}

/// Applies the x86 literal filter to literal stream `lit` of a chunk at
/// NEW offset `new_start` whose interleaved control stream is `ctrl`.
pub fn filter_literals(ctrl: &[u8], new_start: u64, lit: &mut [u8]) {
    let n = lit.len();
    inserts(ctrl, new_start, n, |q, at, len| {
        lits_encode(&mut lit[at..at + len], q)
    });
}

/// Undoes [`filter_literals`].
pub fn unfilter_literals(ctrl: &[u8], new_start: u64, lit: &mut [u8]) {
    let n = lit.len();
    inserts(ctrl, new_start, n, |q, at, len| {
        lits_decode(&mut lit[at..at + len], q)
    });
}

/// Calls `f(q, at, len)` for each INSERT of interleaved control stream
/// `ctrl` whose NEW bytes start at `q` (the chunk's first at `new_start`)
/// and whose literals are `at .. at + len` of a `lit_len`-byte literal
/// stream. Stops quietly at the first malformed op or INSERT past the
/// literals: the op decoder, which every applier runs too, reports those.
fn inserts(ctrl: &[u8], new_start: u64, lit_len: usize, mut f: impl FnMut(u64, usize, usize)) {
    let mut c = Cursor::new(ctrl, 0);
    let (mut q, mut at) = (new_start, 0usize);
    while !c.is_empty() {
        let Ok(v) = c.varint("op") else { return };
        let len = v >> 2;
        match v & 3 {
            // COPY and ADD: skip the offset (a guard that reads it).
            0 | 1 if c.varint("op old offset").is_err() => return,
            2 => {
                let Some(end) = usize::try_from(len)
                    .ok()
                    .and_then(|l| at.checked_add(l))
                    .filter(|&e| e <= lit_len)
                else {
                    return;
                };
                f(q, at, end - at);
                at = end;
            }
            _ => {}
        }
        let Some(next) = q.checked_add(len) else {
            return;
        };
        q = next;
    }
}

/// Calls `f(lit, k)` for each operand word `lit[k + 1 .. k + 5]` of one
/// INSERT's bytes, reading the trigger bytes through `lit` as `f` leaves
/// them: a trigger reads `lit[k]` and the byte before it, which may be
/// the last byte of the word before.
fn walk(lit: &mut [u8], mut f: impl FnMut(&mut [u8], usize)) {
    let mut k = 0;
    while k + 5 <= lit.len() {
        if split::trigger(lit, k) {
            f(lit, k);
            k += 5;
        } else {
            k += 1;
        }
    }
}

fn word_at(b: &[u8], k: usize) -> u32 {
    u32::from_le_bytes([b[k + 1], b[k + 2], b[k + 3], b[k + 4]])
}

/// Applies the x86 literal filter to one INSERT's NEW bytes `lit`, the
/// first at NEW offset `q`.
pub(crate) fn lits_encode(lit: &mut [u8], q: u64) {
    // A trigger may look at the byte before it, which can be the last
    // byte of the word before: the words are found on NEW's bytes first
    // (as the decoder, restoring left to right, sees them), then stored.
    let mut words = Vec::new();
    walk(lit, |_, k| words.push(k));
    for k in words {
        let w = word_at(lit, k).wrapping_add(q.wrapping_add(k as u64 + 5) as u32);
        lit[k + 1..k + 5].copy_from_slice(&w.to_le_bytes());
    }
}

/// Undoes [`lits_encode`]: `lit` holds one INSERT's stored bytes, the
/// first for NEW offset `q`. Restores left to right, so each trigger is
/// read from NEW's bytes, as the encoder read it.
pub(crate) fn lits_decode(lit: &mut [u8], q: u64) {
    walk(lit, |b, k| {
        let w = word_at(b, k).wrapping_sub(q.wrapping_add(k as u64 + 5) as u32);
        b[k + 1..k + 5].copy_from_slice(&w.to_le_bytes());
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Code-like bytes: many opcodes that start operands.
    fn code() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                3 => any::<u8>(),
                1 => proptest::sample::select(vec![0xe8u8, 0xe9, 0x0f, 0x85, 0x8b, 0x05, 0x8d, 0x15]),
            ],
            0..300,
        )
    }

    fn ops() -> impl Strategy<Value = Vec<(u8, u64, i64)>> {
        proptest::collection::vec(
            (0u8..4, 1u64..1 << 40, any::<i32>().prop_map(i64::from)),
            0..60,
        )
    }

    proptest! {
        #[test]
        fn split_then_join_is_the_identity(ops in ops()) {
            let mut ctrl = Vec::new();
            for (t, len, off) in ops {
                put_varint(&mut ctrl, len << 2 | u64::from(t));
                if t <= 1 {
                    put_varint(&mut ctrl, crate::cursor::zigzag(off));
                }
            }
            let s = split(&ctrl).unwrap();
            prop_assert_eq!(join(&s).unwrap(), ctrl);
        }

        #[test]
        fn join_never_panics_and_never_grows(s in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(j) = join(&s) {
                prop_assert!(j.len() <= s.len());
            }
        }

        #[test]
        fn literal_filter_inverts(mut lit in code(), q in any::<u64>()) {
            let orig = lit.clone();
            lits_encode(&mut lit, q);
            lits_decode(&mut lit, q);
            prop_assert_eq!(lit, orig);
        }
    }

    /// By the definition: calls to one target from two places store the
    /// same word, and only operand words change.
    #[test]
    fn calls_to_one_target_store_one_word() {
        // Two calls at NEW 1000 and 1100 to NEW 5000.
        let mut lit = vec![0x90u8; 200];
        for at in [0usize, 100] {
            let rel = 5000i64 - (1000 + at as i64 + 5);
            lit[at] = 0xe8;
            lit[at + 1..at + 5].copy_from_slice(&(rel as i32).to_le_bytes());
        }
        let orig = lit.clone();
        lits_encode(&mut lit, 1000);
        assert_eq!(lit[1..5], 5000u32.to_le_bytes());
        assert_eq!(lit[101..105], 5000u32.to_le_bytes());
        let changed: Vec<usize> = (0..200).filter(|&i| lit[i] != orig[i]).collect();
        assert!(
            changed
                .iter()
                .all(|&i| (1..5).contains(&i) || (101..105).contains(&i))
        );
    }
}
