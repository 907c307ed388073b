//! A chunk's diff stream in every ADD mode and order, made on demand for
//! the search, without holding it.

use oxdelta_format::filter::split;
use oxdelta_format::{AddMode, AddSources, Streams};

/// Diff bytes per block of [`DiffVariants::feed`] (a multiple of 64).
const VARIANT_BLOCK: usize = 16 << 10;

/// Makes a chunk's diff stream in any add mode and order, block by block,
/// without holding it: what the format's definition
/// ([`AddSources::encode`]: [`AddMode::sub`] per ADD, then for the operand
/// split's order [`split::split`]) makes (tested).
///
/// The split's classes are computed once per chunk into a bitmap, a bit
/// per diff byte (an eighth of the diff stream), and read 64 at a time by
/// every split variant. Memory: the bitmap and two buffers of about
/// [`VARIANT_BLOCK`] bytes per [`DiffVariants::feed`].
pub(super) struct DiffVariants<'a> {
    /// The chunk's ADDs (and the format's encoders of the whole-stream
    /// modes).
    sources: AddSources<'a>,
    /// Bit k of the words: diff byte k (op order) is of class A; one word
    /// of padding. Empty unless `split_pays`.
    class_a: Vec<u64>,
    /// Whether the operand split is worth trying (see [`split_pays`]).
    split_pays: bool,
    /// Whether the ADDs read what looks like AArch64 code.
    arm64: bool,
    /// Whether the ADDs read what looks like RISC-V code.
    riscv: bool,
    /// Whether the ADDs read what looks like ARMv7 (A32) code.
    armv7: bool,
    /// Whether the ADDs read what looks like Thumb-2 code.
    thumb2: bool,
    /// Whether OLD is a WebAssembly module.
    wasm: bool,
}

impl<'a> DiffVariants<'a> {
    pub(super) fn new(
        streams: &'a Streams,
        old: &'a [u8],
        new_chunk: &'a [u8],
        start: u64,
    ) -> DiffVariants<'a> {
        let sources = AddSources::new(streams, old, new_chunk, start);
        let class_a = class_bitmap(sources.adds(), old, streams.diff.len());
        let split_pays = split_pays(&class_a, &streams.diff);
        let adds = || sources.adds().iter().map(|a| (a.0, a.1));
        let arm64 = oxdelta_format::arm64::looks_like_code(adds(), old);
        let riscv = oxdelta_format::riscv::looks_like_code(adds(), old);
        let armv7 = oxdelta_format::armv7::looks_like_code(adds(), old);
        let thumb2 = oxdelta_format::thumb2::looks_like_code(adds(), old);
        DiffVariants {
            sources,
            class_a: if split_pays { class_a } else { Vec::new() },
            split_pays,
            arm64,
            riscv,
            armv7,
            thumb2,
            wasm: oxdelta_format::wasm::looks_like_wasm(old),
        }
    }

    /// Whether OLD is a WebAssembly module
    /// ([`oxdelta_format::wasm::looks_like_wasm`]): the wasm mode is
    /// tried.
    pub(super) fn wasm(&self) -> bool {
        self.wasm
    }

    /// Whether the ADDs read what looks like AArch64 code
    /// ([`oxdelta_format::arm64::looks_like_code`]): the arm64 mode is
    /// tried.
    pub(super) fn arm64(&self) -> bool {
        self.arm64
    }

    /// Whether the ADDs read what looks like RISC-V code
    /// ([`oxdelta_format::riscv::looks_like_code`]): the riscv mode is
    /// tried.
    pub(super) fn riscv(&self) -> bool {
        self.riscv
    }

    /// Whether the ADDs read what looks like ARMv7 code
    /// ([`oxdelta_format::armv7::looks_like_code`]): the armv7 mode is
    /// tried.
    pub(super) fn armv7(&self) -> bool {
        self.armv7
    }

    /// Whether the ADDs read what looks like Thumb-2 code
    /// ([`oxdelta_format::thumb2::looks_like_code`]): the thumb2 mode is
    /// tried.
    pub(super) fn thumb2(&self) -> bool {
        self.thumb2
    }

    /// Whether the operand split is worth trying for this chunk (see
    /// [`split_pays`]).
    pub(super) fn split_pays(&self) -> bool {
        self.split_pays
    }

    /// Calls `f` with consecutive pieces of the diff stream in `add` mode
    /// and, with `order_split`, in the operand split's order. The per-op
    /// modes ([`AddMode::PER_OP`]) are made block by block; any other
    /// mode is made whole by the format's encoder ([`AddSources::encode`],
    /// one chunk's diff stream at most).
    pub(super) fn feed(&self, add: AddMode, order_split: bool, f: &mut dyn FnMut(&[u8])) {
        if !AddMode::PER_OP.contains(&add) {
            f(&self.sources.encode(add, order_split));
            return;
        }
        let (old, new_chunk, start) = (
            self.sources.old(),
            self.sources.new_chunk(),
            self.sources.start(),
        );
        // `diff`: one block of one ADD; `out`: what is gathered for `f`.
        let mut diff = vec![0u8; VARIANT_BLOCK + 4];
        let mut out = vec![0u8; 2 * VARIANT_BLOCK + 4];
        let mut fill = 0;
        let classes: &[bool] = if order_split {
            &[true, false]
        } else {
            &[false]
        };
        for &class in classes {
            // Offset of the current ADD in the diff stream.
            let mut d0 = 0;
            for &(o, l, at) in self.sources.adds() {
                let (src, dst) = (&old[o..o + l], &new_chunk[at..at + l]);
                let new_pos = start + at as u64;
                // Blocks on the op's word grid: the first ends a multiple
                // of 4 after the op's first aligned byte, so each block is
                // an op of its own with the same words (see AddMode::split).
                let (head, _) = AddMode::split(new_pos, l);
                let mut k0 = 0;
                while k0 < l {
                    let k1 = if k0 == 0 {
                        head + VARIANT_BLOCK
                    } else {
                        k0 + VARIANT_BLOCK
                    }
                    .min(l);
                    let n = k1 - k0;
                    let (s, d) = (&src[k0..k1], &dst[k0..k1]);
                    if order_split {
                        add.sub_into(&mut diff[..n], d, s, new_pos + k0 as u64);
                        fill += gather(&mut out[fill..], &diff[..n], &self.class_a, d0 + k0, class);
                    } else {
                        add.sub_into(&mut out[fill..fill + n], d, s, new_pos + k0 as u64);
                        fill += n;
                    }
                    if fill >= VARIANT_BLOCK {
                        f(&out[..fill]);
                        fill = 0;
                    }
                    k0 = k1;
                }
                d0 += l;
            }
        }
        if fill > 0 {
            f(&out[..fill]);
        }
    }
}

/// The operand split's classes of the diff bytes of `adds` (`len` in all),
/// a bit per byte, set for class A, with one word of padding.
fn class_bitmap(adds: &[(usize, usize, usize)], old: &[u8], len: usize) -> Vec<u64> {
    let mut bits = vec![0u64; len.div_ceil(64) + 1];
    let mut g = 0;
    let mut put = |v: u64, k: usize| {
        let (w, s) = (g / 64, g % 64);
        bits[w] |= v << s;
        if s + k > 64 {
            bits[w + 1] |= v >> (64 - s);
        }
        g += k;
    };
    for &(o, l, _) in adds {
        split::masks(&old[o..o + l], |m| {
            let mut eights = m.chunks_exact(8);
            for b in &mut eights {
                // Eight 0/1 bytes to eight bits, the first lowest.
                let x = u64::from_le_bytes(b.try_into().expect("8 bytes"));
                put(x.wrapping_mul(0x0102_0408_1020_4080) >> 56, 8);
            }
            for &c in eights.remainder() {
                put(u64::from(c), 1);
            }
        });
    }
    debug_assert_eq!(g, len);
    bits
}

/// The 64 bits of `bits` from bit `g` on (`bits` padded by a word).
#[inline]
fn bits_at(bits: &[u64], g: usize) -> u64 {
    let (w, s) = (g / 64, g % 64);
    if s == 0 {
        bits[w]
    } else {
        (bits[w] >> s) | (bits[w + 1] << (64 - s))
    }
}

/// Copies to the front of `out` (at least as long as `diff`) the bytes of
/// `diff` whose class, read from `class_a` from bit `g` on, is A when
/// `want_a`, else B; returns how many.
fn gather(out: &mut [u8], diff: &[u8], class_a: &[u64], g: usize, want_a: bool) -> usize {
    let mut o = 0;
    for (i, block) in diff.chunks(64).enumerate() {
        let n = block.len();
        let mut w = bits_at(class_a, g + 64 * i);
        if !want_a {
            w = !w;
        }
        if n < 64 {
            w &= (1u64 << n) - 1;
        }
        if w == 0 {
            continue;
        }
        if w == u64::MAX {
            out[o..o + 64].copy_from_slice(block);
            o += 64;
        } else if w.count_ones() <= 16 {
            while w != 0 {
                out[o] = block[w.trailing_zeros() as usize];
                o += 1;
                w &= w - 1;
            }
        } else {
            // Branch-free: write every byte, advance past the wanted ones.
            let out = &mut out[o..o + n];
            let mut p = 0;
            for (j, &b) in block.iter().enumerate() {
                out[p] = b;
                p += ((w >> j) & 1) as usize;
            }
            o += p;
        }
    }
    o
}

/// Whether the operand split is worth trying for a chunk's ADDs, given
/// their classes `class_a` (see [`class_bitmap`]) and diff bytes `diff`:
/// their class-A diff bytes must be at least four times as often non-zero
/// as the others and hold at least a tenth of the non-zero ones. In moved
/// code the ratio is 6–70 (exe-go); in data it is about 1, and trying the
/// split there cost a fifth of the streaming engine's time on disk images.
fn split_pays(class_a: &[u64], diff: &[u8]) -> bool {
    let (mut a_len, mut a_nz, mut b_nz) = (0usize, 0usize, 0usize);
    for (block, &a) in diff.chunks(64).zip(class_a) {
        let mut nz = 0u64;
        for (j, &b) in block.iter().enumerate() {
            nz |= u64::from(b != 0) << j;
        }
        a_len += a.count_ones() as usize;
        a_nz += (nz & a).count_ones() as usize;
        b_nz += (nz & !a).count_ones() as usize;
    }
    let b_len = diff.len() - a_len;
    // a_nz / a_len >= 4 · b_nz / b_len, without division.
    a_len > 0 && a_nz * b_len >= 4 * b_nz * a_len && a_nz * 10 >= a_nz + b_nz
}

#[cfg(test)]
mod tests {
    use super::*;
    use oxdelta_format::filter::FilterSink;
    use oxdelta_format::{ChunkEncoder, DiffFilter, Op};
    use proptest::prelude::*;

    /// A variant's diff stream by its definition: [`AddMode::sub`] per ADD,
    /// then [`split::split`] for the operand split's order.
    fn defined_variant(v: &DiffVariants<'_>, add: AddMode, order_split: bool) -> Vec<u8> {
        let s = &v.sources;
        let (old, new_chunk) = (s.old(), s.new_chunk());
        let mut plain = Vec::new();
        for &(o, l, at) in s.adds() {
            add.sub(
                &mut plain,
                &new_chunk[at..at + l],
                &old[o..o + l],
                s.start() + at as u64,
            );
        }
        if !order_split {
            return plain;
        }
        split::split(&plain, s.adds().iter().map(|&(o, l, _)| &old[o..o + l]))
    }

    /// [`split_pays`] by its definition, from the byte-wise classes.
    fn defined_split_pays(v: &DiffVariants<'_>, diff: &[u8]) -> bool {
        let mut class_a = Vec::new();
        for &(o, l, _) in v.sources.adds() {
            split::classify(&v.sources.old()[o..o + l], |_, a| class_a.push(a));
        }
        let (mut a_len, mut a_nz, mut b_nz) = (0, 0, 0);
        for (&a, &d) in class_a.iter().zip(diff) {
            a_len += usize::from(a);
            a_nz += usize::from(a && d != 0);
            b_nz += usize::from(!a && d != 0);
        }
        let b_len = diff.len() - a_len;
        a_len > 0 && a_nz * b_len >= 4 * b_nz * a_len && a_nz * 10 >= a_nz + b_nz
    }

    /// Encodes `ops` on a chunk of `new` at `start` and checks that every
    /// variant, and every layout of it, that [`DiffVariants`] makes in
    /// pieces equals its definition: [`AddMode::sub`], [`split::split`],
    /// then the format's layout encoder on the whole stream.
    fn check_variants(old: &[u8], new: &[u8], start: usize, ops: &[Op]) {
        let mut enc = ChunkEncoder::new(old, new, start as u64);
        for &op in ops {
            enc.push(op);
        }
        let end = enc.new_pos() as usize;
        let (streams, _) = enc.finish();
        if streams.diff.is_empty() {
            return;
        }
        let chunk = &new[start..end];
        let v = DiffVariants::new(&streams, old, chunk, start as u64);
        assert_eq!(v.split_pays, defined_split_pays(&v, &streams.diff));
        // Every variant, whether or not the split pays here.
        let class_a = class_bitmap(v.sources.adds(), old, streams.diff.len());
        let v = DiffVariants { class_a, ..v };
        // The whole-stream modes come from the format's encoder as is.
        for add in [
            AddMode::Operands,
            AddMode::OperandsAbs,
            AddMode::OperandsLearned,
        ] {
            let mut got = Vec::new();
            v.feed(add, false, &mut |p| got.extend_from_slice(p));
            assert_eq!(got, v.sources.encode(add, false), "{add:?}");
        }
        for add in AddMode::PER_OP {
            for order_split in [false, true] {
                let want = defined_variant(&v, add, order_split);
                if (add, order_split) == (AddMode::Bytes, false) {
                    assert_eq!(want, streams.diff);
                }
                let mut got = Vec::new();
                v.feed(add, order_split, &mut |p| got.extend_from_slice(p));
                assert_eq!(got, want, "{add:?} split {order_split} at {start}");
                assert_eq!(
                    v.sources.encode(add, order_split),
                    want,
                    "the format's definition"
                );
                let mut runs = FilterSink::new(DiffFilter::Runs);
                v.feed(add, order_split, &mut |p| runs.push_slice(p));
                assert_eq!(
                    runs.counts(),
                    (want.len(), want.iter().filter(|&&b| b != 0).count())
                );
                for filter in DiffFilter::ALL {
                    // The format's encoder of the layout (checked there
                    // against FORMAT.md's definition), on the whole stream.
                    let layout = filter.encode(&want);
                    let mut sink = FilterSink::new(filter);
                    v.feed(add, order_split, &mut |p| sink.push_slice(p));
                    assert_eq!(sink.finish(), layout, "{add:?} {order_split} {filter:?}");
                    if filter != DiffFilter::None {
                        assert_eq!(runs.layout(filter), layout, "both layouts from one sink");
                    }
                }
            }
        }
    }

    /// Long ADDs over code-like bytes: blocks of [`DiffVariants::feed`]
    /// end inside ADDs, at both word alignments of the chunk.
    #[test]
    fn streamed_variants_follow_the_definition() {
        let mut x = 0x9e37_79b9u32;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x
        };
        // Code-like OLD with calls, NEW with shifted call operands.
        let old: Vec<u8> = (0..5 * VARIANT_BLOCK)
            .map(|i| if i % 9 == 0 { 0xe8 } else { rnd() as u8 })
            .collect();
        let mut new = old.clone();
        for i in (1..new.len()).step_by(9) {
            new[i] = new[i].wrapping_add(0x40);
        }
        for start in [0usize, 1, 3] {
            let long = VARIANT_BLOCK as u64 + 4097;
            let ops = [
                Op::Add {
                    old: start as u64 + 1,
                    len: long,
                },
                Op::Insert { len: 7 },
                Op::Add {
                    old: long + 13,
                    len: VARIANT_BLOCK as u64 - 5,
                },
                Op::Add {
                    old: 5,
                    len: 2 * VARIANT_BLOCK as u64 + 3,
                },
            ];
            check_variants(&old, &new, start, &ops);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// Random ops over OLD bytes rich in the split's trigger opcodes.
        #[test]
        fn fast_variants_equal_the_definition(
            old in proptest::collection::vec(
                prop_oneof![
                    any::<u8>(),
                    proptest::sample::select(vec![0xe8u8, 0xe9, 0x0f, 0x85, 0x8b, 0x05, 0]),
                ],
                1..4000,
            ),
            edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..300),
            start in 0usize..8,
            raw_ops in proptest::collection::vec((0u8..5, any::<usize>(), 1usize..700), 1..30),
        ) {
            let mut new = old.clone();
            new.extend_from_slice(&old[..old.len() / 3]);
            for &(at, d) in &edits {
                let at = at % new.len();
                new[at] = new[at].wrapping_add(d);
            }
            let start = start.min(new.len() - 1);
            let mut pos = start;
            let mut ops = Vec::new();
            for &(tag, r, len) in &raw_ops {
                let len = len.min(new.len() - pos);
                if len == 0 {
                    break;
                }
                let fits = len <= old.len();
                // Mostly ADDs, half of them where the data did not move.
                let at = if r % 2 == 0 { pos.min(old.len().saturating_sub(len)) } else {
                    r % (old.len() - len.min(old.len()) + 1)
                };
                let (old_pos, len) = (at as u64, len as u64);
                ops.push(match tag {
                    0 if fits => Op::Copy { old: old_pos, len },
                    1..=3 if fits => Op::Add { old: old_pos, len },
                    _ if tag % 2 == 0 => Op::Zero { len },
                    _ => Op::Insert { len },
                });
                pos += len as usize;
            }
            check_variants(&old, &new, start, &ops);
        }
    }
}
