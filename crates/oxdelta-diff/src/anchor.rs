//! Anchors: long exact matches found by sampled hashing before the suffix
//! array is built, so that the suffix array need only index the part of
//! OLD they do not already explain.
//!
//! # Why
//!
//! Building the suffix array is the in-memory engine's largest serial
//! cost: libsais sorts about 25–35 MB of OLD a second on the 2-core
//! machines we measure on, and a second OpenMP thread does not help there
//! (exe-go: 0.38 s on one thread, 0.40 s on two). Yet most of NEW is often
//! long unchanged stretches of OLD: 98% of the source-tarball pair's NEW is
//! COPY ops averaging 7.8 KB, 43% of the Go executable's. Such stretches
//! are cheap to find by hashing, and once found, the OLD bytes they read
//! need no suffix-array entry to be used again, since the matcher's
//! approximate extension works on OLD itself. So the suffix array is built
//! over the *rest* of OLD only, concatenated ([`Coverage`]).
//!
//! # How
//!
//! A rolling (gear) hash runs over every [`WINDOW`]-byte window of OLD and
//! of NEW; a window is *sampled* when its hash's top bits are zero (one
//! window in 2^[`SAMPLE_BITS`]), a choice that depends on the window's
//! bytes only, so the same content is sampled on both sides wherever it
//! lies. OLD's sampled windows go into a table; at each sampled window of
//! NEW the table is probed, and a hit is verified and extended exactly
//! backwards and forwards. A match of at least [`MIN_ANCHOR`] bytes is an
//! anchor, and the scan jumps to its end. An exact match of `L` bytes is
//! missed only when none of its `L − WINDOW + 1` windows is sampled
//! (probability about `e^(−(L − 63)/32)`: 13% at 128 bytes, 0.2% at 256,
//! 10⁻⁶ at 512); a missed match is still found through the suffix array,
//! at the cost of indexing its OLD bytes.
//!
//! # Bounds
//!
//! * The OLD table has a power-of-two number of 8-byte slots, at least
//!   twice OLD's length / 2^[`SAMPLE_BITS`]: about OLD's length / 2 bytes,
//!   freed before the suffix array is built. It never grows: once one of
//!   its 16 partitions is half full (periodic data can sample more windows
//!   than expected) further samples there are dropped, which only loses
//!   anchors.
//! * Time: one hash step per byte of OLD and NEW, one table probe per
//!   sampled window, and exact comparisons over the anchors found (each
//!   NEW byte is compared at most twice: the scan jumps past every anchor).
//! * The anchors themselves: 24 bytes each, at most one per 64 bytes of
//!   NEW (an anchor is at least [`MIN_ANCHOR`] long and they do not
//!   overlap), so under 0.4 bytes per byte of NEW in the worst case and a
//!   few hundred kilobytes on the corpus (10,600 anchors for exe-go).
//! * Only OLDs below 4 GiB are sampled (positions are 32-bit).
//!
//! The result never depends on the thread count: OLD and NEW are cut into
//! fixed parts, sampled in parallel, and the parts' results are merged in
//! order.

use rayon::prelude::*;

/// Bytes hashed per window.
pub const WINDOW: usize = 64;

/// A window is sampled with probability 2^−SAMPLE_BITS.
pub const SAMPLE_BITS: u32 = 5;

/// Shortest exact match kept as an anchor: any verified window. Longer
/// minimums made patches larger and diffs slower on the corpus (128, 256
/// and 1024 bytes against 64: exe-rust 2,584,578 / 2,586,866 / 2,587,328
/// against 2,582,792 bytes; tar-src 86,760 / 87,268 / 90,149 against
/// 86,322).
pub const MIN_ANCHOR: usize = 64;

/// OLD windows kept per hash: repeated content (files stored twice in an
/// archive, common code) has several places, and the longest match wins.
const MAX_CANDIDATES: usize = 4;

/// Bytes per part scanned by one task.
const PART: usize = 1 << 20;

/// An exact match, `new[new..new + len] == old[old..old + len]`, extended
/// as far as the bytes agree: forwards to where they differ, backwards to
/// where they differ or to the end of the previous anchor or the start of
/// the 1 MiB part of NEW it was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchor {
    /// Start in NEW.
    pub new: usize,
    /// Start in OLD.
    pub old: usize,
    /// Length.
    pub len: usize,
}

/// The gear table: one pseudo-random word per byte value (splitmix64).
pub(crate) static GEAR: [u64; 256] = {
    let mut t = [0u64; 256];
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let mut i = 0;
    while i < 256 {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        t[i] = z ^ (z >> 31);
        i += 1;
    }
    t
};

/// `h` mixed, for the table's slot and tag.
#[inline]
fn mix(h: u64) -> u64 {
    (h ^ (h >> 29)).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// Calls `f(pos, hash)` for every sampled window starting in
/// `data[from..to]` (windows may end past `to`), in order, until `f`
/// returns true.
///
/// The hash is a gear hash, `h = (h << 1) + GEAR[byte]`: after 64 bytes the
/// first has shifted out, so `h` is a function of exactly the last
/// [`WINDOW`] bytes whatever came before, and one step is a shift and an
/// add. A window is sampled when the top [`SAMPLE_BITS`] bits of its hash
/// are zero.
fn for_each_sample_until(
    data: &[u8],
    from: usize,
    to: usize,
    mut f: impl FnMut(usize, u64) -> bool,
) {
    if from + WINDOW > data.len() {
        return;
    }
    let last = to.min(data.len() - WINDOW + 1);
    if last <= from {
        return;
    }
    let mut h = 0u64;
    for &b in &data[from..from + WINDOW - 1] {
        h = (h << 1).wrapping_add(GEAR[usize::from(b)]);
    }
    for (k, &b) in data[from + WINDOW - 1..last + WINDOW - 1]
        .iter()
        .enumerate()
    {
        h = (h << 1).wrapping_add(GEAR[usize::from(b)]);
        if h >> (64 - SAMPLE_BITS) == 0 && f(from + k, h) {
            return;
        }
    }
}

/// Sampled windows of OLD by hash: open addressing, the first
/// [`MAX_CANDIDATES`] occurrences of each hash kept.
struct Table {
    /// `(hash tag, OLD position + 1)`; position 0 marks an empty slot.
    slots: Vec<(u32, u32)>,
    /// log2 of the slot count.
    log: u32,
    /// Slots per partition − 1 (a power of two − 1).
    pmask: usize,
}

/// The table is cut into this many partitions by a hash's top bits, each
/// filled by its own task and probed within itself: the same table whatever
/// the thread count, built in parallel.
const PARTITIONS: usize = 16;

impl Table {
    fn build(old: &[u8]) -> Table {
        let want = (old.len() >> SAMPLE_BITS).max(PARTITIONS) * 2;
        let cap = want.next_power_of_two();
        let mut t = Table {
            slots: vec![(0, 0); cap],
            log: cap.trailing_zeros(),
            pmask: cap / PARTITIONS - 1,
        };
        // Parts hashed in parallel, each sample put in its partition's list
        // at once; each partition then takes its samples from every part in
        // OLD order (without reading the other partitions' samples: 16
        // passes over every sample were 4% of tar-src's diff CPU).
        let (log, pmask) = (t.log, t.pmask);
        let parts: Vec<Vec<Vec<(u32, u32, u32)>>> = (0..old.len().div_ceil(PART))
            .into_par_iter()
            .map(|k| {
                let mut v: Vec<Vec<(u32, u32, u32)>> = vec![Vec::new(); PARTITIONS];
                let mut prev = None;
                for_each_sample_until(old, k * PART, (k + 1) * PART, |i, h| {
                    // A run of one byte samples every position alike.
                    if prev != Some(h) {
                        let (s, tag) = slot_tag(log, h);
                        v[s / (pmask + 1)].push(((s & pmask) as u32, tag, i as u32));
                    }
                    prev = Some(h);
                    false
                });
                v
            })
            .collect();
        t.slots
            .par_chunks_mut(pmask + 1)
            .enumerate()
            .for_each(|(k, slots)| {
                let mut used = 0;
                'parts: for part in &parts {
                    for &(s, tag, i) in &part[k] {
                        // Half full: later samples are dropped.
                        if used * 2 >= slots.len() {
                            break 'parts;
                        }
                        used += usize::from(insert(slots, s as usize, tag, i));
                    }
                }
            });
        t
    }

    /// Calls `f` with the first [`MAX_CANDIDATES`] sampled OLD windows
    /// whose hash tag is `h`'s, in OLD order (they may still differ: the
    /// caller compares bytes).
    #[inline]
    fn candidates(&self, h: u64, mut f: impl FnMut(usize)) {
        let (s, tag) = slot_tag(self.log, h);
        let base = s & !self.pmask;
        let mut s = s & self.pmask;
        loop {
            let (t, p) = self.slots[base + s];
            if p == 0 {
                return;
            }
            if t == tag {
                f(p as usize - 1);
            }
            s = (s + 1) & self.pmask;
        }
    }
}

/// The first slot of a table of 2^`log` slots to probe for hash `h`, and
/// its tag.
#[inline]
fn slot_tag(log: u32, h: u64) -> (usize, u32) {
    let m = mix(h);
    ((m >> (64 - log)) as usize, m as u32)
}

/// Inserts OLD position `pos` with `tag` into one partition's `slots`,
/// probing from `s`; false when the tag already has [`MAX_CANDIDATES`]
/// places. The caller keeps the partition under half full, so a free slot
/// exists.
fn insert(slots: &mut [(u32, u32)], mut s: usize, tag: u32, pos: u32) -> bool {
    let mask = slots.len() - 1;
    let mut same = 0;
    loop {
        let (t, p) = slots[s];
        if p == 0 {
            slots[s] = (tag, pos + 1);
            return true;
        }
        if t == tag {
            same += 1;
            if same == MAX_CANDIDATES {
                return false;
            }
        }
        s = (s + 1) & mask;
    }
}

/// The anchors between `old` and `new`: sorted by NEW position, not
/// overlapping in NEW, each at least [`MIN_ANCHOR`] long. Empty when OLD
/// is 4 GiB or more.
pub fn find_anchors(old: &[u8], new: &[u8]) -> Vec<Anchor> {
    if old.len() < WINDOW || new.len() < WINDOW || old.len() >= u32::MAX as usize {
        return Vec::new();
    }
    let table = Table::build(old);
    let parts: Vec<Vec<Anchor>> = (0..new.len().div_ceil(PART))
        .into_par_iter()
        .map(|k| scan_part(&table, old, new, k * PART, ((k + 1) * PART).min(new.len())))
        .collect();
    // Later parts may find again an anchor that an earlier one ran into:
    // keep what lies past the previous anchor's end.
    let mut out: Vec<Anchor> = Vec::new();
    for a in parts.into_iter().flatten() {
        let mut a = a;
        if let Some(last) = out.last() {
            let end = last.new + last.len;
            if a.new < end {
                let cut = end - a.new;
                if cut >= a.len {
                    continue;
                }
                a = Anchor {
                    new: a.new + cut,
                    old: a.old + cut,
                    len: a.len - cut,
                };
                if a.len < MIN_ANCHOR {
                    continue;
                }
            }
        }
        out.push(a);
    }
    out
}

/// The anchors starting from sampled windows of `new[from..to]`.
///
/// At a sampled window the OLD candidates are the previous anchor's
/// alignment continued (after an edit, the rest of a file usually follows
/// at the same offset) and the table's first [`MAX_CANDIDATES`] windows
/// with that hash (repeated content has several places); the longest
/// exact match wins, the earliest candidate on a tie.
fn scan_part(table: &Table, old: &[u8], new: &[u8], from: usize, to: usize) -> Vec<Anchor> {
    let mut out: Vec<Anchor> = Vec::new();
    let mut i = from;
    // No anchor found here reaches back before this.
    let mut floor = from;
    while i < to {
        let mut hit = None;
        let last_off = out.last().map(|a| a.old as isize - a.new as isize);
        for_each_sample_until(new, i, to, |j, h| {
            let continued = last_off
                .map(|d| j as isize + d)
                .filter(|&o| o >= 0 && o as usize + WINDOW <= old.len())
                .map(|o| o as usize);
            let mut best: Option<Anchor> = None;
            let mut cands = [usize::MAX; MAX_CANDIDATES + 1];
            cands[0] = continued.unwrap_or(usize::MAX);
            let mut k = 1;
            table.candidates(h, |o| {
                if k < cands.len() {
                    cands[k] = o;
                    k += 1;
                }
            });
            for &o in &cands[..k] {
                if o == usize::MAX
                    || best.is_some_and(|b| b.old + (j - b.new) == o)
                    || old[o..o + WINDOW] != new[j..j + WINDOW]
                {
                    continue;
                }
                let back = old[..o]
                    .iter()
                    .rev()
                    .zip(new[floor..j].iter().rev())
                    .take_while(|(x, y)| x == y)
                    .count();
                let fwd = oxdelta_sa::common_prefix(&old[o + WINDOW..], &new[j + WINDOW..]);
                let len = back + WINDOW + fwd;
                if len >= MIN_ANCHOR && best.is_none_or(|b| len > b.len) {
                    best = Some(Anchor {
                        new: j - back,
                        old: o - back,
                        len,
                    });
                }
            }
            hit = best;
            best.is_some()
        });
        match hit {
            Some(a) => {
                out.push(a);
                i = a.new + a.len;
                floor = i;
            }
            None => break,
        }
    }
    out
}

/// Which OLD bytes the suffix array indexes: the complement of the long
/// anchors' OLD ranges, as *segments* laid end to end in one compact text.
#[derive(Debug, Default)]
pub struct Coverage {
    /// `(start in the compact text, start in OLD)` of each segment, in
    /// order; empty when the suffix array indexes OLD itself.
    segments: Vec<(usize, usize)>,
    /// Total length of the segments.
    len: usize,
}

impl Coverage {
    /// Share of OLD below which anchors are not worth copying OLD for
    /// (1/16): the suffix array is then built over OLD itself.
    const MIN_COVERED_SHIFT: u32 = 4;

    /// What `anchors` leave of `old`.
    pub fn new(old: &[u8], anchors: &[Anchor]) -> Coverage {
        let mut covered: Vec<(usize, usize)> = anchors.iter().map(|a| (a.old, a.len)).collect();
        covered.sort_unstable();
        let mut segments = Vec::new();
        let (mut at, mut len) = (0usize, 0usize);
        for (s, l) in covered {
            if s > at {
                segments.push((len, at));
                len += s - at;
            }
            at = at.max(s + l);
        }
        if at < old.len() {
            segments.push((len, at));
            len += old.len() - at;
        }
        if old.len() - len < old.len() >> Self::MIN_COVERED_SHIFT {
            return Coverage::default();
        }
        Coverage { segments, len }
    }

    /// True when the suffix array indexes OLD itself.
    pub fn is_whole(&self) -> bool {
        self.segments.is_empty()
    }

    /// The text to index: the segments of `old` end to end (empty when
    /// [`Coverage::is_whole`]).
    pub fn text(&self, old: &[u8]) -> Vec<u8> {
        let mut t = Vec::with_capacity(self.len);
        for (k, &(c, o)) in self.segments.iter().enumerate() {
            let end = self.segments.get(k + 1).map_or(self.len, |n| n.0);
            t.extend_from_slice(&old[o..o + (end - c)]);
        }
        t
    }

    /// The OLD position of byte `pos` of the compact text.
    #[inline]
    pub fn to_old(&self, pos: usize) -> usize {
        if self.segments.is_empty() {
            return pos;
        }
        let k = self.segments.partition_point(|s| s.0 <= pos) - 1;
        let (c, o) = self.segments[k];
        o + (pos - c)
    }
}
