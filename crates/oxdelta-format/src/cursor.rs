//! A bounds-checked reading cursor over a byte slice.

use crate::error::{Error, ErrorKind, Result};

/// Reads little-endian fields and varints from a slice, never past its end.
///
/// Every read either returns the value or a [`ErrorKind::Truncated`] error
/// naming the field and the offset; the cursor never panics.
#[derive(Clone, Debug)]
pub struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `buf`; reported offsets start at `base`.
    pub fn new(buf: &'a [u8], base: u64) -> Cursor<'a> {
        Cursor { buf, pos: 0, base }
    }

    /// Absolute offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// True when every byte has been read.
    pub fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The next `n` bytes.
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(Error::at(
                ErrorKind::Truncated {
                    what,
                    needed: n as u64,
                    available: self.remaining() as u64,
                },
                self.offset(),
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// The next `N` bytes as an array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N]> {
        let s = self.bytes(N, what)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    /// A byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8> {
        Ok(self.array::<1>(what)?[0])
    }

    /// A little-endian u16.
    pub fn u16(&mut self, what: &'static str) -> Result<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }

    /// A little-endian u32.
    pub fn u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    /// A little-endian u64.
    pub fn u64(&mut self, what: &'static str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// An unsigned LEB128 varint of at most 10 bytes that fits in a u64.
    pub fn varint(&mut self, what: &'static str) -> Result<u64> {
        let start = self.offset();
        let mut v: u64 = 0;
        for i in 0..10u32 {
            let b = self.u8(what)?;
            let payload = u64::from(b & 0x7f);
            if i == 9 && payload > 1 {
                return Err(Error::invalid(
                    what,
                    "a varint that fits in 64 bits",
                    "an overflowing varint",
                    start,
                ));
            }
            v |= payload << (7 * i);
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Error::invalid(
            what,
            "a varint of at most 10 bytes",
            "a longer one",
            start,
        ))
    }

    /// An unsigned LEB128 varint in its one canonical encoding, at most
    /// `max` (format version 11's head): the shortest encoding of its
    /// value (no final byte 0 after the first, so every value has exactly
    /// one encoding and a parsed head re-encodes to the same bytes), at
    /// most 10 bytes, no overflow of 64 bits. The error names `what` and
    /// the varint's first byte.
    pub fn varint_max(&mut self, what: &'static str, max: u64) -> Result<u64> {
        let start = self.offset();
        let first = self.pos;
        let v = self.varint(what)?;
        let len = self.pos - first;
        if len > 1 && self.buf[self.pos - 1] == 0 {
            return Err(Error::invalid(
                what,
                "a varint in its shortest encoding",
                "an overlong one",
                start,
            ));
        }
        if v > max {
            return Err(Error::invalid(what, format!("at most {max}"), v, start));
        }
        Ok(v)
    }

    /// [`Cursor::varint_max`] for a field of 32 bits.
    pub fn varint_u32(&mut self, what: &'static str) -> Result<u32> {
        Ok(self.varint_max(what, u64::from(u32::MAX))? as u32)
    }

    /// Fails unless the byte is zero (reserved fields).
    pub fn reserved_zero(&mut self, n: usize, what: &'static str) -> Result<()> {
        let at = self.offset();
        let s = self.bytes(n, what)?;
        if s.iter().any(|&b| b != 0) {
            return Err(Error::invalid(
                what,
                "reserved bytes set to zero",
                "non-zero bytes",
                at,
            ));
        }
        Ok(())
    }
}

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Zigzag-encodes a signed value so small magnitudes give small varints.
pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

/// Inverse of [`zigzag`].
pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}
