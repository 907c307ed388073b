//! The streaming engine: OLD and NEW of any size in a fixed memory budget.
//!
//! The suffix-array engine needs about five bytes per byte of OLD, which
//! rules out disk images larger than RAM. This engine keeps its own
//! allocations under a budget the caller chooses, whatever the input sizes;
//! OLD and NEW are borrowed slices (the facade maps the files, so their
//! pages are the kernel's page cache, not the engine's memory).
//!
//! # Matching
//!
//! 1. **Index.** OLD is cut into blocks of `B` bytes; every non-zero block's
//!    rolling hash goes into an open-addressing table of `u32` entries (the
//!    block number plus a few tag bits of the hash, up to [`PROBES`] slots
//!    per hash, duplicates beyond that dropped). The table takes a quarter
//!    of the budget, and `B` is the smallest power of two whose non-zero
//!    blocks fill it at most 5/8: small budgets and big OLDs get coarser
//!    blocks. Zero blocks are neither hashed nor matched.
//! 2. **Scan.** For each chunk of NEW a rolling hash runs over every byte
//!    not yet explained. Candidates are verified against OLD and extended
//!    byte by byte both ways; long exact matches become COPY *anchors*,
//!    zero runs in NEW become ZERO, and a verified match is skipped in full,
//!    so unchanged or moved data costs a memcmp, not a table lookup per byte.
//!    After a match, the scan first tries its alignment again: where it
//!    still gets at least half of the next 64 bytes right (code with changed
//!    pointers) the stretch is recorded as an approximate match and skipped
//!    without lookups.
//! 3. **Refinement.** What lies between anchors (a *region*) is matched the
//!    way the suffix-array engine matches a whole file: the OLD windows that
//!    the surrounding anchors and the matches inside the region point to are
//!    gathered — matches are grouped by alignment (offsets within `DRIFT`
//!    of each other, chained), each group projects the NEW span it covers
//!    into OLD, widened towards the region's ends in proportion to its
//!    weight — a suffix array is built over just those windows (all regions
//!    of a chunk share one while they fit), and [`crate::sa::match_chunk`]
//!    makes the region's ops there: bsdiff quality within a bounded window.
//!    When the windows exceed [`Plan::window`], the heaviest per byte are
//!    kept. A short gap between two anchors of the same alignment is one
//!    ADD.
//! 4. **Parallelism.** Chunks are processed by up to [`Plan::workers`]
//!    threads; finished chunks are handed to the caller's sink strictly in
//!    order. Everything a chunk's ops depend on comes from the [`Plan`],
//!    which depends on the budget and input sizes only, so the patch is
//!    byte-identical for any thread count.
//!
//! # Memory bound
//!
//! With budget `M` (see [`Plan::from_counts`]), from 64 MiB on, the peak
//! of the process's anonymous memory stays within `M`:
//! [`reserve`] (2 MiB and `M/8`) is left to thread stacks, the
//! allocator's slack and the caller's buffers; the chunk table takes
//! [`TABLE_PER_CHUNK`] bytes per chunk that holds data and
//! [`TABLE_PER_ZERO`] per zero chunk of NEW's holes ([`table_bytes`]);
//! the index at most `M/4`; each
//! worker holds one refinement window ([`WINDOW_COST`] bytes per window
//! byte: text, suffix array, gram filter), one chunk's working memory
//! ([`CHUNK_COST_FACTOR`] times its length), fixed state and one codec
//! context ([`codec_state_bound`]). [`Plan::estimate`] adds these up.
//! What used to escape this accounting on heavily changed images (the
//! budget 256M peaked at 320 MiB on img-heavy): each chunk's ops were
//! collected twice (24 bytes per op, an op per ~16 bytes of changed code),
//! and the search over codings ran on the shared thread pool, where a
//! thread waiting in a join takes up another chunk's candidate and
//! compressor. Now ops go straight into the chunk's encoder, a refined
//! region is matched in pieces of [`PIECE`] bytes, the scan cuts a region
//! after [`FOUND_CAP`] matches, and each worker searches codings on a
//! one-thread pool of its own. The test `stream::allocations_stay_within_the_plan`
//! runs the engine under a counting allocator on a heavily changed pair.
//! Below 64 MiB the floors (4 KiB windows, 64 KiB chunks) and the codec
//! state win and the estimate exceeds the budget. The chunk table grows
//! with NEW's data (chunks are made longer so that it stays within an
//! eighth of the budget; at 64 MiB, NEW up to 64 GiB of data fits); a
//! hole costs one zero chunk per 4 GiB, whatever the chunk length.
//!
//! # Holes
//!
//! Disk images are mostly unallocated. [`diff_sparse`] takes where OLD and
//! NEW hold data ([`Layout`], from `SEEK_DATA`/`SEEK_HOLE`; the facade
//! asks the file system): OLD's holes are neither counted for the plan nor
//! indexed; NEW's holes of at least 4 KiB become ZERO items without being
//! read (no rule of the scan reads past the next hole). A chunk that
//! reads as zeros (wholly in a hole, unread, or data that is zeros, read
//! up to its first non-zero byte) is not made: each run of them becomes
//! one zero chunk (format version 9) of up to 4 GiB, with no payload, so
//! a 64 GiB hole costs 16 table entries, and appliers neither rebuild
//! nor write it. The rule is "reads as zeros", not "is a hole", so the
//! patch does not depend on the file system. The whole-file hashes are block-list
//! hashes ([`FILE_HASH`], format version 8): a 64 KiB block of a hole
//! costs 32 bytes of hashing and no read (plain BLAKE3 has no shortcut for
//! a run of zeros: a chunk counter enters every 1 KiB leaf).
//!
//! # Example
//!
//! ```
//! use oxdelta_diff::{DiffOptions, stream};
//! let old: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
//! let mut new = old.clone();
//! new[1000..1010].copy_from_slice(b"0123456789");
//! let mut chunks = Vec::new();
//! let meta = stream::diff(&old, &new, &DiffOptions::default(), 1 << 20, |c| {
//!     chunks.push(c);
//!     Ok::<(), ()>(())
//! })
//! .unwrap();
//! let patch = oxdelta_format::assemble(&meta, chunks, None);
//! assert!(patch.len() < new.len() / 50);
//! ```

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use oxdelta_format::filehash::{self, FileHash};
use oxdelta_format::progress::Phase;
use oxdelta_format::{ChunkEncoder, Codec, EncodedChunk, Engine, Metadata, Op, Streams, limits};
use oxdelta_sa::{SuffixArray, common_prefix};
use rayon::prelude::*;

use crate::anchor::Coverage;
use crate::encode::Coder;
use crate::sa::{GramFilter, MatchParams, OldIndex, match_into};
use crate::{DiffOptions, chunk_ranges};

/// Budget used when the caller asks for streaming without naming one.
pub const DEFAULT_BUDGET: u64 = 256 << 20;
/// Smallest budget accepted (smaller ones are raised to it).
pub const MIN_BUDGET: u64 = 64 << 10;
/// zstd "level" the command line uses for this engine unless told
/// otherwise: 0 (zstd's own "default level", which `--codec zstd:LEVEL`
/// does not accept) asks this engine to choose per chunk, see
/// [`chunk_coder`]. Other engines given it compress at zstd's default
/// level (3).
pub const DEFAULT_ZSTD_LEVEL: i32 = AUTO_LEVEL;
/// See [`DEFAULT_ZSTD_LEVEL`].
pub const AUTO_LEVEL: i32 = 0;
/// zstd level of the chunks whose streams are small (see [`chunk_coder`]).
pub const STRONG_LEVEL: i32 = 18;
/// A chunk's streams are small when they hold at most `1/STRONG_SHARE` of
/// its NEW bytes (see [`chunk_coder`]).
pub const STRONG_SHARE: usize = 4;

/// With a budget of at least [`LZMA2_MIN_BUDGET`], a chunk's streams are
/// also tried with LZMA2 when they hold at most `1/LZMA2_SHARE` of its
/// NEW bytes (see `encode_chunk`). LZMA2 codes
/// these streams ~8% smaller than zstd 18 for twice its time (img-ext4's
/// 4 MB of streams: 1,017,735 against 1,111,858 B); a stricter share than
/// [`STRONG_SHARE`] keeps that cost off heavily changed images, whose
/// streams are most of their bytes (figures in docs/NOTES.md).
pub const LZMA2_SHARE: usize = 16;

/// Smallest budget whose plan counts an LZMA2 encoder per worker (14 MiB
/// beside zstd 18's 7): the default, 256 MiB. At 64 MiB the larger state
/// starves the index and windows (img-ext4: 3,388,608 → 8,449,512 B).
pub const LZMA2_MIN_BUDGET: u64 = DEFAULT_BUDGET;

/// Slots probed per hash in the index.
pub const PROBES: usize = 4;
const MIN_BLOCK: usize = 32;
const MAX_BLOCK_LOG: u32 = 20;
const MIN_BLOCK_LOG: u32 = 5;
/// Holes of NEW at least this long become ZERO items unread (shorter
/// ones are scanned as data; file systems report 4 KiB blocks).
const MIN_HOLE: u64 = 4096;
/// Zero bytes in a row in NEW that become a ZERO op during the scan.
const ZERO_MIN: usize = 256;
/// Exact matches at least this long are anchors (emitted as COPY as is).
const ANCHOR_MIN: usize = 1024;
/// Gaps up to this long between anchors of one alignment become one ADD.
const SMALL_GAP: usize = 4096;
/// NEW bytes judged at once when following an alignment that only mostly
/// agrees.
const APPROX_STEP: usize = 64;
/// How far a group of matches' projection reaches beyond the NEW span the
/// group covers: at most this, and at most [`REACH`] times its weight (so a
/// lone short match, likely chance, brings in little OLD).
const SPAN_CAP: usize = 256 << 10;
/// See [`SPAN_CAP`].
const REACH: usize = 4;
/// Weight of a neighbouring anchor, as if it had this many matched bytes.
const ANCHOR_WEIGHT: u64 = 1 << 16;
/// Offsets this close (sorted, chained) are one alignment that drifts.
const DRIFT: isize = 1024;
/// OLD windows closer than this are merged.
const MERGE_GAP: usize = 4096;
/// Matches the scan holds before it cuts a region (32 bytes each).
pub const FOUND_CAP: usize = 8192;
/// Refined regions are matched in pieces of at most this many NEW bytes,
/// which bounds the seeds held (24 bytes per seed, at least 9 NEW bytes
/// per seed, twice over while they are joined: 1.4 MiB).
pub const PIECE: usize = 256 << 10;
/// Bytes held per refinement-window byte: the gathered OLD text, its
/// suffix array (4) and its gram filter (1).
pub const WINDOW_COST: u64 = 6;
/// Working memory per chunk, as a multiple of its NEW length: the scan's
/// matches and regions (at most 1 byte per NEW byte, twice that while a
/// vector grows), the encoder's raw streams and OLD ranges (at most about
/// 3, twice while growing) and the search's candidate, its compressed form
/// and the best so far (about 3); in practice the raw streams are at most
/// about 2 and the candidates 2. Measured with heaptrack on a 200 MiB slice
/// of img-heavy at 64M (1 MiB chunks): 4–5 per chunk in flight; the
/// test `stream::allocations_stay_within_the_plan` holds the engine to it.
pub const CHUNK_COST_FACTOR: u64 = 6;
/// Fixed per-worker state beside the codec's: the suffix-array bucket
/// table (512 KiB) and libsais's own buffers, the seeds of one [`PIECE`]
/// (1.4 MiB), the index build's batch of hashes (1 MiB, once).
const WORKER_FIXED: u64 = 3 << 20;
/// Memory per chunk of the chunk table, held until the head is written:
/// an entry (168 bytes, twice while the caller's vector grows) with at
/// most [`crate::sa::MAX_RANGES`] OLD ranges of 16 bytes (their vector is
/// shrunk to fit).
pub const TABLE_PER_CHUNK: u64 = 640;
/// Memory per zero chunk (format version 9) of the chunk table: an entry
/// without OLD ranges (twice while the caller's vector grows) and its 104
/// bytes of head.
pub const TABLE_PER_ZERO: u64 = 512;
/// What the plan leaves outside its accounting, out of the budget: thread
/// stacks, the allocator's slack and the caller's buffers (the facade's
/// spill writer, 1 MiB): from 64 MiB, 2 MiB and an eighth of the budget
/// (glibc keeps freed memory in per-thread arenas: on a 200 MiB slice of
/// img-heavy at 256M, RssAnon was 230 MiB where the plan counted about
/// 190); below, 2 MiB and a thirty-second, at most a quarter.
pub fn reserve(budget: u64) -> u64 {
    if budget >= 64 << 20 {
        (2 << 20) + budget / 8
    } else {
        ((2 << 20) + budget / 32).min(budget / 4)
    }
}

/// How the engine divides its budget; depends only on the budget, the
/// codec, OLD's content and NEW's length (never on the thread count).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The budget in bytes.
    pub budget: u64,
    /// Block size of the OLD index (a power of two).
    pub block: usize,
    /// log2 of the index's slot count (4 bytes per slot).
    pub slot_bits: u32,
    /// NEW bytes per chunk.
    pub chunk_len: u32,
    /// Largest refinement window (OLD bytes under one suffix array).
    pub window: usize,
    /// Chunks in flight at once that the budget allows.
    pub workers: usize,
    /// Chunks of NEW: the cells of `chunk_len` bytes that NEW is cut in
    /// (runs of all-zero ones become one zero chunk each).
    pub chunks: u64,
    /// Most bytes the chunk table takes until the head is written
    /// ([`table_bytes`]): NEW's holes count at the cost of the zero
    /// chunks they become, not per cell.
    pub table: u64,
    /// Memory of one compression's state ([`codec_state_bound`]).
    pub codec_state: u64,
    /// Whether small chunks are tried with LZMA2 too (at [`AUTO_LEVEL`],
    /// from [`LZMA2_MIN_BUDGET`]).
    pub lzma2: bool,
}

impl Plan {
    /// Plans for `old` (it is read once to count non-zero blocks), a NEW of
    /// `new_len` bytes, a budget of `budget` bytes (at least
    /// [`MIN_BUDGET`]) and chunks compressed with `codec`. `chunk_len`
    /// overrides the chunk length.
    pub fn new(
        old: &[u8],
        new_len: u64,
        budget: u64,
        chunk_len: Option<u32>,
        codec: Codec,
    ) -> Plan {
        Plan::from_counts(
            old.len() as u64,
            &nonzero_blocks(old),
            new_len,
            budget,
            chunk_len,
            codec,
        )
    }

    /// [`Plan::new`] for inputs whose data is `layout`: OLD's holes are
    /// unread, NEW's count in the chunk table as the zero chunks they
    /// become.
    pub fn new_in(
        old: &[u8],
        layout: &Layout,
        new_len: u64,
        budget: u64,
        chunk_len: Option<u32>,
        codec: Codec,
    ) -> Plan {
        Plan::from_layout(
            old.len() as u64,
            &nonzero_blocks_in(old, &layout.old),
            (new_len, &layout.new),
            budget,
            chunk_len,
            codec,
        )
    }

    /// [`Plan::new`] from OLD's length and its non-zero block counts for
    /// block sizes 32, 64, … 1 MiB (`counts[0]` is for 32 bytes).
    pub fn from_counts(
        old_len: u64,
        counts: &[u64],
        new_len: u64,
        budget: u64,
        chunk_len: Option<u32>,
        codec: Codec,
    ) -> Plan {
        let data = Extents::whole(new_len);
        Plan::from_layout(old_len, counts, (new_len, &data), budget, chunk_len, codec)
    }

    /// [`Plan::from_counts`] for a NEW of `new.0` bytes whose data is
    /// `new.1` (see [`Plan::new_in`]).
    pub fn from_layout(
        old_len: u64,
        counts: &[u64],
        (new_len, new_data): (u64, &Extents),
        budget: u64,
        chunk_len: Option<u32>,
        codec: Codec,
    ) -> Plan {
        let budget = budget.max(MIN_BUDGET);
        let lzma2 = codec == Codec::Zstd(AUTO_LEVEL) && budget >= LZMA2_MIN_BUDGET;
        let codec_state = codec_state_bound(codec, lzma2);
        let max = limits::MAX_CHUNK_NEW_LEN;
        let table = |c: u32| table_bytes(new_len, new_data, c);
        let chunk_len = chunk_len.unwrap_or_else(|| {
            // A chunk's working memory is CHUNK_COST_FACTOR times its
            // length; two in flight take at most a quarter of the budget.
            // And the chunk table takes at most an eighth of it: chunks
            // grow by 64 KiB steps until it fits (at most 128 steps, each
            // a pass over NEW's extents).
            let by_budget = (budget / (8 * CHUNK_COST_FACTOR)) & !0xffff;
            let mut c =
                crate::default_chunk_len(new_len).min(by_budget.clamp(64 << 10, max.into()) as u32);
            while c < max && table(c) > budget / 8 {
                c = (c + (64 << 10)).min(max);
            }
            c
        });
        let chunk_len = chunk_len.max(1);
        let chunks = new_len.div_ceil(u64::from(chunk_len));
        let table = table(chunk_len);
        let chunk_cost = CHUNK_COST_FACTOR * u64::from(chunk_len);
        // Below 64 MiB the fixed costs (the codec state alone is up to
        // 7 MiB at the default level) would leave no window: they are left
        // out of the division there, and the estimate exceeds the budget.
        let fixed = if budget >= 64 << 20 {
            WORKER_FIXED + codec_state
        } else {
            0
        };
        let after_table = budget.saturating_sub(reserve(budget)).saturating_sub(table);
        // The index takes a quarter of the budget, less when one worker
        // with the smallest window would not fit beside it (from 64 MiB;
        // below, the floors win anyway).
        let one_worker = chunk_cost + fixed + WINDOW_COST * 4096;
        let index_want = if budget >= 64 << 20 {
            (budget / 4).min(after_table.saturating_sub(one_worker))
        } else {
            budget / 4
        };
        let index_bytes = prev_pow2(index_want).max(4096);
        let slot_bits = (index_bytes / 4).trailing_zeros();
        let slots = 1u64 << slot_bits;
        let rest = after_table.saturating_sub(index_bytes);
        let window =
            ((rest / 2).saturating_sub(chunk_cost + fixed) / WINDOW_COST).clamp(4096, 64 << 20);
        let per_worker = WINDOW_COST * window + chunk_cost + fixed;
        let workers = (rest / per_worker).max(1) as usize;
        // Block size: the smallest whose non-zero blocks fill at most 5/8
        // of the table and whose count fits the entry's index bits.
        let mut log = MIN_BLOCK_LOG;
        while log < MAX_BLOCK_LOG
            && (counts
                .get((log - MIN_BLOCK_LOG) as usize)
                .copied()
                .unwrap_or(old_len)
                > slots * 5 / 8
                || (old_len >> log) >= 1 << 31)
        {
            log += 1;
        }
        Plan {
            budget,
            block: 1 << log,
            slot_bits,
            chunk_len,
            window: window as usize,
            workers,
            chunks,
            table,
            codec_state,
            lzma2,
        }
    }

    /// Peak of the engine's own allocations that the plan allows with
    /// `workers` chunks in flight (see the module docs): the index, the
    /// chunk table and each worker's window, chunk and codec state. The
    /// plan keeps it within the budget less [`reserve`] whenever the
    /// floors (4 KiB windows, 64 KiB chunks) allow.
    pub fn estimate(&self, workers: usize) -> u64 {
        let w = workers.min(self.workers) as u64;
        let per = WINDOW_COST * self.window as u64
            + CHUNK_COST_FACTOR * u64::from(self.chunk_len)
            + WORKER_FIXED
            + self.codec_state;
        (4u64 << self.slot_bits) + self.table + w * per
    }
}

/// Most bytes the chunk table of a NEW of `new_len` bytes whose data is
/// `data` takes with chunks of `chunk_len` (the [`Plan`]'s accounting):
/// [`TABLE_PER_CHUNK`] for each chunk that holds data (it becomes one
/// entry at most, rebuilt or part of a zero chunk), [`TABLE_PER_ZERO`]
/// for each zero chunk that can be made of hole chunks alone: a gap of
/// `g` hole chunks between data is cut into runs of at most
/// [`limits::MAX_ZERO_CHUNK_LEN`] bytes, `g / per + 1` at most (with
/// `per` chunks a run). For a NEW without holes, 640 bytes per chunk.
pub fn table_bytes(new_len: u64, data: &Extents, chunk_len: u32) -> u64 {
    let c = u64::from(chunk_len.max(1));
    let cells = new_len.div_ceil(c);
    let per = (u64::from(limits::MAX_ZERO_CHUNK_LEN) / c).max(1);
    let (mut data_cells, mut zero_runs, mut next) = (0u64, 0u64, 0u64);
    for r in data.ranges() {
        // Ranges are sorted, disjoint and non-empty.
        let (a, b) = (r.start / c, (r.end - 1) / c);
        if a > next {
            zero_runs += (a - next) / per + 1;
        }
        if b >= next {
            data_cells += b + 1 - a.max(next);
            next = b + 1;
        }
    }
    if cells > next {
        zero_runs += (cells - next) / per + 1;
    }
    data_cells * TABLE_PER_CHUNK + zero_runs * TABLE_PER_ZERO
}

/// Memory one compression with `codec` holds in this engine (with
/// [`AUTO_LEVEL`], the larger of [`chunk_coder`]'s two choices, and with
/// `lzma2` of those and the LZMA2 encoder small chunks are tried with:
/// each worker's one-thread pool runs one compression at a time).
pub fn codec_state_bound(codec: Codec, lzma2: bool) -> u64 {
    match codec {
        Codec::Zstd(AUTO_LEVEL) => Codec::Zstd(STRONG_LEVEL)
            .state_bound()
            .max(Coder::FastZstd.state_bound())
            .max(if lzma2 { Codec::Lzma2.state_bound() } else { 0 }),
        c => c.state_bound(),
    }
}

/// How a chunk's streams are compressed with zstd at [`AUTO_LEVEL`]:
/// at [`STRONG_LEVEL`] when they are small, at most `1/STRONG_SHARE` of
/// the chunk's `new_len` NEW bytes (the diff stream counted by its
/// non-zero bytes, which is what its run layouts keep), else with zstd's
/// fast setting ([`oxdelta_format::codec::zstd_compress_fast`]). The
/// strong levels' binary-tree match finder costs ~0.2–0.25 µs per byte
/// (4–5 MB/s), the fast one ~0.025: on heavily changed images the streams
/// are a third of NEW and level 16 was 40% of the diff's CPU time. Measured
/// by recompressing the streams of main's level-16 patches (img-heavy:
/// 200 MB raw, 70,075,755 B and 30.6 s of CPU at level 16; the fast setting
/// alone 70,475,343 B, 4.9 s; level 18 alone 65,624,555 B, 47.1 s; this
/// rule 69,735,626 B, 10.8 s. img-ext4: 4 MB raw, 1,146,414 B at 16, this
/// rule (all at 18) 1,112,908 B, 0.7 s).
pub fn chunk_coder(streams: &Streams, new_len: usize) -> Coder {
    if stream_bytes(streams) * STRONG_SHARE <= new_len {
        Coder::Codec(Codec::Zstd(STRONG_LEVEL))
    } else {
        Coder::FastZstd
    }
}

/// A chunk's stream bytes as [`chunk_coder`] counts them: the diff stream
/// by its non-zero bytes.
fn stream_bytes(streams: &Streams) -> usize {
    let diff = streams.diff.iter().filter(|&&b| b != 0).count();
    streams.ctrl.len() + diff + streams.lit.len()
}

/// Finishes `enc` and encodes its chunk with `codec` (see [`chunk_coder`]
/// for [`AUTO_LEVEL`]; at that level and with `lzma2`, a chunk whose
/// streams are at most `1/LZMA2_SHARE` of its NEW bytes is stored as LZMA2
/// where that pays, [`crate::encode::prefer_lzma2`]).
fn encode_chunk(enc: ChunkEncoder<'_>, codec: Codec, lzma2: bool) -> EncodedChunk {
    match codec {
        Codec::Zstd(AUTO_LEVEL) => {
            let mut small = false;
            let mut chunk = crate::encode::encode_chosen(enc, crate::sa::MAX_RANGES, |s, n| {
                small = lzma2 && stream_bytes(s) * LZMA2_SHARE <= n;
                chunk_coder(s, n)
            });
            if small {
                crate::encode::prefer_lzma2(&mut chunk, None);
            }
            chunk
        }
        c => crate::encode::encode(enc, c, crate::sa::MAX_RANGES),
    }
}

/// Where a file holds data: sorted, disjoint byte ranges; everything else
/// reads as zeros (the holes of a sparse file, as `SEEK_DATA`/`SEEK_HOLE`
/// report them). The engine reads and indexes only the data; a hole in
/// NEW becomes a ZERO op unread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Extents(Vec<Range<u64>>);

impl Extents {
    /// All of a file of `len` bytes is data.
    pub fn whole(len: u64) -> Extents {
        Extents(std::iter::once(0..len).filter(|r| !r.is_empty()).collect())
    }

    /// Data ranges of a file of `len` bytes (sorted and merged here,
    /// clipped to `len`; empty ranges dropped).
    pub fn new(mut ranges: Vec<Range<u64>>, len: u64) -> Extents {
        ranges.sort_unstable_by_key(|r| r.start);
        let mut out: Vec<Range<u64>> = Vec::with_capacity(ranges.len());
        for r in ranges {
            let r = r.start.min(len)..r.end.min(len);
            if r.is_empty() {
                continue;
            }
            match out.last_mut() {
                Some(l) if r.start <= l.end => l.end = l.end.max(r.end),
                _ => out.push(r),
            }
        }
        Extents(out)
    }

    /// The data ranges.
    pub fn ranges(&self) -> &[Range<u64>] {
        &self.0
    }

    /// Bytes of data.
    pub fn data_len(&self) -> u64 {
        self.0.iter().map(|r| r.end - r.start).sum()
    }

    /// True when some data lies in `[a, b)`.
    fn intersects(&self, a: u64, b: u64) -> bool {
        let k = self.0.partition_point(|r| r.end <= a);
        self.0.get(k).is_some_and(|r| r.start < b)
    }

    /// True when `map[a..b]` (a file with this data) reads as zeros:
    /// only its data is read, up to the first non-zero byte.
    fn all_zero(&self, map: &[u8], a: u64, b: u64) -> bool {
        let k = self.0.partition_point(|r| r.end <= a);
        self.0[k..]
            .iter()
            .take_while(|r| r.start < b)
            .all(|r| is_zero(&map[r.start.max(a) as usize..r.end.min(b) as usize]))
    }

    /// The holes in `[a, b)` at least `min` bytes long, in order.
    fn holes_in(&self, a: u64, b: u64, min: u64) -> Vec<Range<usize>> {
        let mut out = Vec::new();
        let mut pos = a;
        let mut k = self.0.partition_point(|r| r.end <= a);
        while pos < b {
            let next = self.0.get(k).map_or(b, |r| r.start.clamp(pos, b));
            if next - pos >= min {
                out.push(pos as usize..next as usize);
            }
            match self.0.get(k) {
                Some(r) if r.start < b => pos = r.end.max(pos),
                _ => break,
            }
            k += 1;
        }
        out
    }
}

/// The data of OLD and NEW (see [`Extents`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// OLD's data.
    pub old: Extents,
    /// NEW's data.
    pub new: Extents,
}

impl Layout {
    /// Both inputs all data.
    pub fn whole(old_len: u64, new_len: u64) -> Layout {
        Layout {
            old: Extents::whole(old_len),
            new: Extents::whole(new_len),
        }
    }
}

/// The whole-file hash of the streaming engine's patches (the block-list
/// hash, format version 8) of a file read through `map` whose data is
/// `data`: its holes are neither read nor hashed.
pub fn hash_sparse(map: &[u8], data: &Extents) -> [u8; 32] {
    filehash::hash_sparse(FILE_HASH, map, data.ranges(), &crate::Rayon)
}

/// How the streaming engine's patches define their whole-file hashes:
/// the block-list hash, whose holes cost nothing (see
/// [`oxdelta_format::filehash`]). It makes them version-8 patches.
pub const FILE_HASH: FileHash = FileHash::BlockList;

fn prev_pow2(x: u64) -> u64 {
    if x == 0 {
        0
    } else {
        1 << (63 - x.leading_zeros())
    }
}

/// Non-zero blocks of OLD for block sizes 32, 64, … 1 MiB (index 0 is 32).
pub fn nonzero_blocks(old: &[u8]) -> Vec<u64> {
    nonzero_blocks_in(old, &Extents::whole(old.len() as u64))
}

/// [`nonzero_blocks`] reading only OLD's `data` (1 MiB pieces that hold
/// none are all zero).
pub fn nonzero_blocks_in(old: &[u8], data: &Extents) -> Vec<u64> {
    let levels = (MAX_BLOCK_LOG - MIN_BLOCK_LOG + 1) as usize;
    let piece = 1usize << MAX_BLOCK_LOG;
    (0..old.len().div_ceil(piece))
        .into_par_iter()
        .filter(|&k| data.intersects((k * piece) as u64, ((k + 1) * piece) as u64))
        .map(|k| &old[k * piece..((k + 1) * piece).min(old.len())])
        .map(|seg| {
            let mut flags: Vec<bool> = seg.chunks(MIN_BLOCK).map(|b| !is_zero(b)).collect();
            let mut counts = vec![0u64; levels];
            for c in counts.iter_mut() {
                *c = flags.iter().filter(|&&f| f).count() as u64;
                flags = flags.chunks(2).map(|p| p.iter().any(|&f| f)).collect();
            }
            counts
        })
        .reduce(
            || vec![0u64; levels],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        )
}

/// True when every byte of `b` is zero.
fn is_zero(b: &[u8]) -> bool {
    let words = b.chunks_exact(8);
    let tail = words.remainder();
    tail.iter().all(|&x| x == 0) && words.into_iter().all(|w| w == [0u8; 8])
}

/// Length of the run of zero bytes starting at `new[i]`, up to `end`.
fn zero_run(new: &[u8], i: usize, end: usize) -> usize {
    let mut j = i;
    while j + 8 <= end && u64::from_ne_bytes(new[j..j + 8].try_into().unwrap()) == 0 {
        j += 8;
    }
    while j < end && new[j] == 0 {
        j += 1;
    }
    j - i
}

/// Length of the common suffix of `a` and `b`.
fn common_suffix(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let (a, b) = (&a[a.len() - n..], &b[b.len() - n..]);
    let mut k = 0;
    while k + 8 <= n {
        let x = u64::from_le_bytes(a[n - k - 8..n - k].try_into().unwrap());
        let y = u64::from_le_bytes(b[n - k - 8..n - k].try_into().unwrap());
        if x != y {
            return k + ((x ^ y).leading_zeros() / 8) as usize;
        }
        k += 8;
    }
    while k < n && a[n - k - 1] == b[n - k - 1] {
        k += 1;
    }
    k
}

// ---------------------------------------------------------------- index

/// Multiplier of the polynomial rolling hash (odd).
const POLY: u64 = 0x100_0000_01b3;

fn poly(data: &[u8]) -> u64 {
    data.iter().fold(0u64, |h, &x| {
        h.wrapping_mul(POLY).wrapping_add(u64::from(x) + 1)
    })
}

fn mix(h: u64) -> u64 {
    let h = (h ^ (h >> 31)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^ (h >> 29)
}

/// The OLD index: an open-addressing table of `tag | block + 1` entries.
struct Index {
    table: Vec<u32>,
    slot_bits: u32,
    idx_bits: u32,
    block: usize,
    /// `POLY^(block-1)`, to roll the hash.
    top: u64,
}

impl Index {
    fn build(old: &[u8], data: &Extents, plan: &Plan) -> Index {
        let block = plan.block;
        let nblocks = old.len() / block;
        let idx_bits = (64 - (nblocks as u64 + 1).leading_zeros()).max(1);
        let mut ix = Index {
            table: vec![0u32; 1 << plan.slot_bits],
            slot_bits: plan.slot_bits,
            idx_bits,
            block,
            top: (1..block).fold(1u64, |p, _| p.wrapping_mul(POLY)),
        };
        // Hash in parallel, insert in order (deterministic).
        const SEG: usize = 4096;
        let segs = nblocks.div_ceil(SEG);
        // 16 segments of hashes (1 MiB) at a time: counted in the
        // plan's fixed cost.
        let batch = 16;
        for first in (0..segs).step_by(batch) {
            let hashed: Vec<Vec<(u32, u64)>> = (first..(first + batch).min(segs))
                .into_par_iter()
                .filter(|&s| {
                    data.intersects((s * SEG * block) as u64, ((s + 1) * SEG * block) as u64)
                })
                .map(|s| {
                    (s * SEG..((s + 1) * SEG).min(nblocks))
                        .filter_map(|b| {
                            let d = &old[b * block..(b + 1) * block];
                            (!is_zero(d)).then(|| (b as u32, mix(poly(d))))
                        })
                        .collect()
                })
                .collect();
            for (b, m) in hashed.into_iter().flatten() {
                ix.insert(b, m);
            }
        }
        ix
    }

    fn slot_tag(&self, m: u64) -> (usize, u32) {
        let slot = (m >> (64 - self.slot_bits)) as usize;
        let tag_bits = 32 - self.idx_bits;
        let tag = ((m as u32) as u64 & ((1u64 << tag_bits) - 1)) as u32;
        (slot, tag)
    }

    fn entry(&self, tag: u32, blk: u32) -> u32 {
        ((u64::from(tag) << self.idx_bits) | (u64::from(blk) + 1)) as u32
    }

    fn insert(&mut self, blk: u32, m: u64) {
        let (slot, tag) = self.slot_tag(m);
        let mask = self.table.len() - 1;
        let e = self.entry(tag, blk);
        for k in 0..PROBES {
            let s = &mut self.table[(slot + k) & mask];
            if *s == 0 {
                *s = e;
                return;
            }
        }
    }

    /// Blocks whose entry matches hash `m` (candidates, to be verified).
    fn lookup(&self, m: u64, out: &mut [u32; PROBES]) -> usize {
        let (slot, tag) = self.slot_tag(m);
        let mask = self.table.len() - 1;
        let idx_mask = ((1u64 << self.idx_bits) - 1) as u32;
        let mut n = 0;
        for k in 0..PROBES {
            let e = self.table[(slot + k) & mask];
            if e == 0 {
                break;
            }
            if (u64::from(e) >> self.idx_bits) as u32 == tag {
                out[n] = (e & idx_mask) - 1;
                n += 1;
            }
        }
        n
    }
}

// ---------------------------------------------------------------- scan

/// An exact match found by the scan.
#[derive(Clone, Copy, Debug)]
struct Match {
    new: usize,
    old: usize,
    len: usize,
    /// False for a stretch where the alignment only mostly agrees.
    exact: bool,
}

impl Match {
    fn off(&self) -> isize {
        self.old as isize - self.new as isize
    }
}

#[derive(Debug)]
enum Item {
    Copy(Match),
    Zero { len: usize },
    Region(Region),
}

#[derive(Debug)]
struct Region {
    start: usize,
    end: usize,
    /// Alignments pointing into the region: (NEW start, NEW end, offset),
    /// the neighbouring anchors included as empty spans at the ends.
    points: Vec<(usize, usize, isize)>,
}

/// Scans NEW `[s, e)`: exact matches (in NEW order, disjoint) and zero
/// runs; `holes` (in order, inside `[s, e)`) become zero items unread.
fn scan(
    ix: &Index,
    old: &[u8],
    new: &[u8],
    s: usize,
    e: usize,
    holes: Vec<Range<usize>>,
) -> Vec<Item> {
    let stop = holes.first().map_or(e, |h| h.start);
    Scanner {
        ix,
        old,
        new,
        end: e,
        holes,
        next_hole: 0,
        stop,
        i: s,
        covered: s,
        h: None,
        zero_checked: s,
        region_from: s,
        cur: None,
        next_try: s,
        found: Vec::new(),
        items: Vec::new(),
    }
    .run()
}

/// The scan of one chunk of NEW, a position `i` moving forward. At each
/// position the rules are tried in order, the first that applies moves `i`:
/// a long zero run ([`Scanner::take_zeros`]), the last match's alignment
/// ([`Scanner::follow`]), an index lookup ([`Scanner::lookup`]); when none
/// does, the rolling hash moves one byte on ([`Scanner::roll`]).
struct Scanner<'a> {
    ix: &'a Index,
    old: &'a [u8],
    new: &'a [u8],
    /// End of the chunk in NEW.
    end: usize,
    /// NEW's holes in the chunk, in order, and the next one to take.
    holes: Vec<Range<usize>>,
    next_hole: usize,
    /// Where the data being scanned ends: the next hole, or `end`. No
    /// rule reads past it.
    stop: usize,
    /// The NEW position being looked at.
    i: usize,
    /// NEW bytes before `covered` belong to a match or a zero run already.
    covered: usize,
    /// The rolling hash of the block at `i`, when rolled from `i - 1`.
    h: Option<u64>,
    /// No zero run of [`ZERO_MIN`] bytes starts before this.
    zero_checked: usize,
    /// Start of the NEW span whose matches are gathered in `found`.
    region_from: usize,
    /// The alignment (OLD minus NEW position) of the last match the index
    /// found, and where next to try it.
    cur: Option<isize>,
    next_try: usize,
    /// Matches since `region_from`, in NEW order.
    found: Vec<Match>,
    /// The result: anchors, zero runs and regions, in NEW order.
    items: Vec<Item>,
}

impl Scanner<'_> {
    fn run(mut self) -> Vec<Item> {
        let b = self.ix.block;
        loop {
            if self.take_hole() {
                continue;
            }
            if self.i + b > self.stop {
                if self.stop < self.end {
                    // Too little data before the hole for a block: the
                    // bytes stay in the region, the hole comes next.
                    self.i = self.stop;
                    self.h = None;
                    continue;
                }
                break;
            }
            if self.found.len() >= FOUND_CAP {
                // Bounds the matches held (and a region's points): the
                // region ends here and the next one starts.
                self.flush(self.i);
            }
            if self.take_zeros() || self.follow() {
                continue;
            }
            let hv = match self.h {
                Some(v) => v,
                None => poly(&self.new[self.i..self.i + b]),
            };
            if !self.lookup(hv) {
                self.roll(hv);
            }
        }
        self.flush(self.end);
        self.items
    }

    /// Rule 0: a hole of NEW at `i` is a ZERO item, not read.
    fn take_hole(&mut self) -> bool {
        let Some(h) = self.holes.get(self.next_hole).cloned() else {
            return false;
        };
        if self.i < h.start {
            return false;
        }
        self.flush(self.i);
        self.items.push(Item::Zero {
            len: h.end - self.i,
        });
        self.skip_to(h.end);
        self.region_from = h.end;
        self.zero_checked = h.end;
        self.next_hole += 1;
        self.stop = self.holes.get(self.next_hole).map_or(self.end, |n| n.start);
        true
    }

    /// Moves on to `to`, everything before it explained.
    fn skip_to(&mut self, to: usize) {
        self.i = to;
        self.covered = to;
        self.h = None;
    }

    /// Turns the matches gathered since `region_from` into anchors and
    /// regions ending at `upto`.
    fn flush(&mut self, upto: usize) {
        regions_and_anchors(&mut self.items, &self.found, self.region_from, upto);
        self.found.clear();
        self.region_from = upto;
    }

    /// Rule 1: a run of at least [`ZERO_MIN`] zero bytes at `i` is a ZERO
    /// item (and ends the region before it). A shorter run is not looked at
    /// again.
    fn take_zeros(&mut self) -> bool {
        let i = self.i;
        if i < self.zero_checked || self.new[i] != 0 {
            return false;
        }
        let z = zero_run(self.new, i, self.stop);
        if z < ZERO_MIN {
            self.zero_checked = i + z;
            return false;
        }
        self.flush(i);
        self.items.push(Item::Zero { len: z });
        self.skip_to(i + z);
        self.region_from = self.i;
        true
    }

    /// Rule 2: the last match's alignment, tried again at `i` (after a miss,
    /// not before 16 bytes on): an exact continuation of at least a block
    /// is a match, extended backwards too; else [`APPROX_STEP`] bytes of
    /// which at least half agree are an approximate match (joined to the
    /// previous one when it continues it).
    fn follow(&mut self) -> bool {
        let (Some(off), true) = (self.cur, self.i >= self.next_try) else {
            return false;
        };
        let (i, e, old, new) = (self.i, self.stop, self.old, self.new);
        let o = i as isize + off;
        if o >= 0 && (o as usize) + APPROX_STEP <= old.len() && i + APPROX_STEP <= e {
            let o = o as usize;
            let l = common_prefix(&old[o..], &new[i..e]);
            if l >= self.ix.block {
                let back = common_suffix(&old[..o], &new[self.covered..i]);
                self.found.push(Match {
                    new: i - back,
                    old: o - back,
                    len: back + l,
                    exact: true,
                });
                self.skip_to(i + l);
                return true;
            }
            let agree = new[i..i + APPROX_STEP]
                .iter()
                .zip(&old[o..o + APPROX_STEP])
                .filter(|(x, y)| x == y)
                .count();
            if agree * 2 >= APPROX_STEP {
                match self.found.last_mut() {
                    Some(m) if !m.exact && m.off() == off && m.new + m.len == i => {
                        m.len += APPROX_STEP
                    }
                    _ => self.found.push(Match {
                        new: i,
                        old: o,
                        len: APPROX_STEP,
                        exact: false,
                    }),
                }
                self.skip_to(i + APPROX_STEP);
                return true;
            }
        }
        self.next_try = i + 16;
        false
    }

    /// Rule 3: the block at `i` (hash `hv`) looked up in the index; the
    /// candidate that verifies and extends longest both ways is a match, and
    /// its alignment the one to follow.
    fn lookup(&mut self, hv: u64) -> bool {
        let (i, b, e, old, new) = (self.i, self.ix.block, self.stop, self.old, self.new);
        let mut cand = [0u32; PROBES];
        let n = self.ix.lookup(mix(hv), &mut cand);
        let mut best: Option<Match> = None;
        for &blk in &cand[..n] {
            let p = blk as usize * b;
            if old[p..p + b] != new[i..i + b] {
                continue;
            }
            let fwd = common_prefix(&old[p + b..], &new[i + b..e]);
            let back = common_suffix(&old[..p], &new[self.covered..i]);
            let m = Match {
                new: i - back,
                old: p - back,
                len: back + b + fwd,
                exact: true,
            };
            if best.is_none_or(|x| m.len > x.len) {
                best = Some(m);
            }
        }
        let Some(m) = best else {
            return false;
        };
        self.found.push(m);
        self.cur = Some(m.off());
        self.skip_to(m.new + m.len);
        true
    }

    /// Rule 4: nothing at `i`; the hash `hv` of its block rolls one byte on.
    fn roll(&mut self, hv: u64) {
        let (i, b, new) = (self.i, self.ix.block, self.new);
        self.h = (i + b < self.stop).then(|| {
            hv.wrapping_sub((u64::from(new[i]) + 1).wrapping_mul(self.ix.top))
                .wrapping_mul(POLY)
                .wrapping_add(u64::from(new[i + b]) + 1)
        });
        self.i += 1;
    }
}

/// Turns the matches found in `[from, to)` into anchors and the regions
/// between them.
fn regions_and_anchors(items: &mut Vec<Item>, found: &[Match], from: usize, to: usize) {
    let mut pos = from;
    let mut left: Option<isize> = match items.last() {
        Some(Item::Copy(m)) if m.new + m.len == from => Some(m.off()),
        _ => None,
    };
    let mut inner: Vec<(usize, usize, isize)> = Vec::new();
    let close = |items: &mut Vec<Item>,
                 inner: &mut Vec<(usize, usize, isize)>,
                 left: Option<isize>,
                 right: Option<isize>,
                 a: usize,
                 z: usize| {
        if a < z {
            let mut points = Vec::with_capacity(inner.len() + 2);
            points.extend(left.map(|o| (a, a, o)));
            points.append(inner);
            points.extend(right.map(|o| (z, z, o)));
            items.push(Item::Region(Region {
                start: a,
                end: z,
                points,
            }));
        }
        inner.clear();
    };
    for m in found {
        if m.exact && m.len >= ANCHOR_MIN {
            close(items, &mut inner, left, Some(m.off()), pos, m.new);
            items.push(Item::Copy(*m));
            pos = m.new + m.len;
            left = Some(m.off());
        } else {
            inner.push((m.new, m.new + m.len, m.off()));
        }
    }
    close(items, &mut inner, left, None, pos, to);
}

// ---------------------------------------------------------------- refinement

/// The tighter projection used when the grouped one exceeds the window:
/// each point owns the NEW bytes up to half-way to its neighbours (at most
/// [`SPAN_CAP`] beyond itself) and projects them with a small margin.
fn local_windows(r: &Region, old_len: usize) -> Vec<(usize, usize, u64)> {
    let p = &r.points;
    let mut out = Vec::with_capacity(p.len());
    for (j, &(q0, q1, off)) in p.iter().enumerate() {
        let lo = if j == 0 {
            r.start
        } else {
            (p[j - 1].1 + q0) / 2
        };
        let hi = if j + 1 == p.len() {
            r.end
        } else {
            (q1 + p[j + 1].0) / 2
        };
        let lo = lo.max(q0.saturating_sub(SPAN_CAP)).min(q0);
        let hi = hi.min(q1 + SPAN_CAP).max(q1);
        let pad = (256 + (hi - lo) / 16) as isize;
        let a = (lo as isize + off - pad).clamp(0, old_len as isize) as usize;
        let z = (hi as isize + off + pad).clamp(0, old_len as isize) as usize;
        if z > a {
            out.push((a, z - a, (hi - lo + q1 - q0) as u64 + 1));
        }
    }
    out
}

/// OLD intervals `(start, len, weight)` for a region: its points grouped
/// by alignment (offsets chained within a drift), each group projecting the
/// NEW span its matches cover, widened towards the region's ends.
fn region_windows(r: &Region, old_len: usize, cap: usize) -> Vec<(usize, usize, u64)> {
    let mut p = r.points.clone();
    p.sort_unstable_by_key(|x| (x.2, x.0));
    let mut out = Vec::new();
    let mut i = 0;
    while i < p.len() {
        let mut j = i + 1;
        while j < p.len() && p[j].2 - p[j - 1].2 <= DRIFT {
            j += 1;
        }
        let g = &p[i..j];
        let qmin = g.iter().map(|x| x.0).min().unwrap();
        let qmax = g.iter().map(|x| x.1).max().unwrap();
        let olo = g.iter().map(|x| x.0 as isize + x.2).min().unwrap();
        let ohi = g.iter().map(|x| x.1 as isize + x.2).max().unwrap();
        let weight: u64 = g
            .iter()
            .map(|x| {
                if x.1 == x.0 {
                    ANCHOR_WEIGHT
                } else {
                    (x.1 - x.0) as u64
                }
            })
            .sum();
        let reach = (weight as usize).saturating_mul(REACH);
        let ext_lo = (qmin - r.start).min(SPAN_CAP).min(reach);
        let ext_hi = (r.end - qmax).min(SPAN_CAP).min(reach);
        let pad = 256 + (qmax - qmin + ext_lo + ext_hi) / 16;
        let a = (olo - (ext_lo + pad) as isize).clamp(0, old_len as isize) as usize;
        let z = (ohi + (ext_hi + pad) as isize).clamp(0, old_len as isize) as usize;
        if z > a {
            out.push((a, z - a, weight));
        }
        i = j;
    }
    if out.iter().map(|w| w.1).sum::<usize>() > cap {
        return local_windows(r, old_len);
    }
    out
}

/// Sorts and merges windows; when they exceed `cap` bytes, keeps the
/// heaviest per byte that fit.
fn merge_windows(mut w: Vec<(usize, usize, u64)>, cap: usize) -> Vec<(usize, usize)> {
    w.sort_unstable();
    let mut merged: Vec<(usize, usize, u64)> = Vec::with_capacity(w.len());
    for (s, l, wt) in w {
        if let Some(last) = merged.last_mut() {
            if s <= last.0 + last.1 + MERGE_GAP {
                last.1 = last.1.max(s + l - last.0);
                last.2 += wt;
                continue;
            }
        }
        merged.push((s, l, wt));
    }
    let total: usize = merged.iter().map(|m| m.1).sum();
    if total > cap {
        // Heaviest per byte first; ties by position (deterministic).
        merged.sort_by(|a, b| {
            (b.2 as u128 * a.1 as u128)
                .cmp(&(a.2 as u128 * b.1 as u128))
                .then(a.0.cmp(&b.0))
        });
        let mut used = 0;
        let mut keep = Vec::new();
        for (s, l, _) in merged {
            if used + l <= cap {
                used += l;
                keep.push((s, l));
            } else if used < cap && keep.is_empty() {
                keep.push((s, cap - used));
                used = cap;
            }
        }
        keep.sort_unstable();
        return keep;
    }
    merged.into_iter().map(|(s, l, _)| (s, l)).collect()
}

/// Pushes `op` (whose OLD position is in the window text) onto `out` with
/// absolute OLD positions, split where the windows are not contiguous.
fn translate(op: Op, windows: &[(usize, usize)], starts: &[usize], out: &mut dyn FnMut(Op)) {
    let (mut x, mut left, copy) = match op {
        Op::Copy { old, len } => (old as usize, len as usize, true),
        Op::Add { old, len } => (old as usize, len as usize, false),
        other => {
            out(other);
            return;
        }
    };
    while left > 0 {
        let k = starts.partition_point(|&t| t <= x) - 1;
        let take = (starts[k] + windows[k].1 - x).min(left);
        let old = (windows[k].0 + x - starts[k]) as u64;
        let len = take as u64;
        out(if copy {
            Op::Copy { old, len }
        } else {
            Op::Add { old, len }
        });
        x += take;
        left -= take;
    }
}

/// Literal bytes of NEW `[a, b)`, with long zero runs as ZERO.
fn literal(new: &[u8], a: usize, b: usize, out: &mut dyn FnMut(Op)) {
    let mut i = a;
    let mut lit = a;
    while i < b {
        if new[i] == 0 {
            let z = zero_run(new, i, b);
            if z >= 32 {
                if i > lit {
                    out(Op::Insert {
                        len: (i - lit) as u64,
                    });
                }
                out(Op::Zero { len: z as u64 });
                lit = i + z;
            }
            i += z;
        } else {
            i += 1;
        }
    }
    if b > lit {
        out(Op::Insert {
            len: (b - lit) as u64,
        });
    }
}

/// How a region is made without refinement, if it can be: literal bytes
/// when nothing points into it, one ADD when it is a short gap under one
/// alignment that stays inside OLD.
fn region_direct(r: &Region, old_len: usize) -> Option<Option<Op>> {
    if r.points.is_empty() {
        return Some(None);
    }
    let len = r.end - r.start;
    let o = r.points[0].2;
    let one_off = r.points.iter().all(|p| p.2 == o)
        && r.start as isize + o >= 0
        && r.end as isize + o <= old_len as isize;
    (one_off && len <= SMALL_GAP).then_some(Some(Op::Add {
        old: (r.start as isize + o) as u64,
        len: len as u64,
    }))
}

/// How a refined region's ops are made and handed on.
type RefineFn<'a> = dyn FnMut(&Region, &mut dyn FnMut(Op)) + 'a;

/// Groups of refined regions whose windows fit one suffix array of at most
/// `window` bytes: region numbers `[g, h)` (the unrefined ones among them
/// included).
fn region_groups(
    regions: &[&Region],
    refine: &[bool],
    old_len: usize,
    window: usize,
) -> Vec<(usize, usize)> {
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut g = 0;
    while g < regions.len() {
        if !refine[g] {
            g += 1;
            continue;
        }
        let mut size = 0;
        let mut h = g;
        while h < regions.len() {
            if refine[h] {
                let rs: usize = region_windows(regions[h], old_len, window)
                    .iter()
                    .map(|w| w.1)
                    .sum();
                if h > g && size + rs > window {
                    break;
                }
                size += rs;
            }
            h += 1;
        }
        groups.push((g, h));
        g = h;
    }
    groups
}

/// Makes the ops of NEW `[s, e)` and hands them to `out` in NEW order.
///
/// Memory: the scan's items (at most one 32-byte match per [`MIN_BLOCK`]
/// NEW bytes, see [`FOUND_CAP`]), one refinement window
/// ([`WINDOW_COST`] bytes per window byte) and the seeds of one [`PIECE`]
/// of a region; the ops themselves are not held.
fn chunk_into(
    ix: &Index,
    plan: &Plan,
    old: &[u8],
    (new, new_data): (&[u8], &Extents),
    s: usize,
    e: usize,
    out: &mut dyn FnMut(Op),
) {
    let holes = new_data.holes_in(s as u64, e as u64, MIN_HOLE);
    let items = scan(ix, old, new, s, e, holes);
    let regions: Vec<&Region> = items
        .iter()
        .filter_map(|it| match it {
            Item::Region(r) => Some(r),
            _ => None,
        })
        .collect();
    let refine: Vec<bool> = regions
        .iter()
        .map(|r| region_direct(r, old.len()).is_none())
        .collect();
    let groups = region_groups(&regions, &refine, old.len(), plan.window);
    let mut items = items.iter();
    let mut k = 0;
    // Emits items up to (not including) region number `upto`; refined
    // regions go through `refined`.
    let mut emit = |upto: usize, refined: &mut RefineFn<'_>| {
        while k < upto {
            let Some(it) = items.next() else { return };
            match it {
                Item::Copy(m) => out(Op::Copy {
                    old: m.old as u64,
                    len: m.len as u64,
                }),
                Item::Zero { len } => out(Op::Zero { len: *len as u64 }),
                Item::Region(r) => {
                    k += 1;
                    match region_direct(r, old.len()) {
                        Some(Some(op)) => out(op),
                        Some(None) => literal(new, r.start, r.end, out),
                        None => refined(r, out),
                    }
                }
            }
        }
    };
    let mut text: Vec<u8> = Vec::new();
    for &(g, h) in &groups {
        let mut wins: Vec<(usize, usize, u64)> = Vec::new();
        for (r, _) in regions[g..h].iter().zip(&refine[g..h]).filter(|x| *x.1) {
            wins.extend(region_windows(r, old.len(), plan.window));
        }
        let windows = merge_windows(wins, plan.window);
        let mut starts = Vec::with_capacity(windows.len());
        text.clear();
        text.reserve_exact(windows.iter().map(|w| w.1).sum());
        for &(a, l) in &windows {
            starts.push(text.len());
            text.extend_from_slice(&old[a..a + l]);
        }
        let sa = SuffixArray::new(&text);
        let grams = GramFilter::new(&text, false);
        let index = OldIndex {
            old: &text,
            sas: &[(0, &sa)],
            coverage: &Coverage::default(),
            anchors: &[],
            grams: Some(&grams),
        };
        emit(h, &mut |r: &Region, out: &mut dyn FnMut(Op)| {
            if text.is_empty() {
                return literal(new, r.start, r.end, out);
            }
            let p = MatchParams::for_data(&new[r.start..r.end]);
            let mut at = r.start;
            while at < r.end {
                let to = r.end.min(at + PIECE);
                match_into(&index, new, at, to, &p, &mut |op| {
                    translate(op, &windows, &starts, out)
                });
                at = to;
            }
        });
    }
    emit(usize::MAX, &mut |_, _| {
        unreachable!("every refined region is in a group")
    });
}

// ---------------------------------------------------------------- driver

/// Diffs `old` and `new` within `budget` bytes and hands the encoded chunks
/// to `sink` in apply order; returns the metadata for the head. Uses up to
/// the current rayon pool's thread count (capped by the budget).
pub fn diff<E>(
    old: &[u8],
    new: &[u8],
    opts: &DiffOptions,
    budget: u64,
    sink: impl FnMut(EncodedChunk) -> Result<(), E>,
) -> Result<Metadata, E> {
    let layout = Layout::whole(old.len() as u64, new.len() as u64);
    diff_sparse(old, new, &layout, opts, budget, sink)
}

/// [`diff`] of inputs whose data is `layout` (their holes read as zeros
/// and are not read: see [`Extents`]). The patch is the same as for the
/// same inputs with every byte data, except where a hole of NEW lies
/// where the scan would have matched or refined its zeros.
pub fn diff_sparse<E>(
    old: &[u8],
    new: &[u8],
    layout: &Layout,
    opts: &DiffOptions,
    budget: u64,
    sink: impl FnMut(EncodedChunk) -> Result<(), E>,
) -> Result<Metadata, E> {
    opts.progress.start(Phase::Indexing, old.len() as u64);
    let plan = Plan::new_in(
        old,
        layout,
        new.len() as u64,
        budget,
        opts.chunk_len,
        opts.codec,
    );
    diff_with_plan_in(
        old,
        new,
        layout,
        opts,
        &plan,
        rayon::current_num_threads(),
        sink,
    )
}

/// [`diff`] with an explicit plan and number of worker threads (the patch
/// does not depend on `threads`; `opts.chunk_len` is ignored, the plan's
/// is used).
pub fn diff_with_plan<E>(
    old: &[u8],
    new: &[u8],
    opts: &DiffOptions,
    plan: &Plan,
    threads: usize,
    sink: impl FnMut(EncodedChunk) -> Result<(), E>,
) -> Result<Metadata, E> {
    let layout = Layout::whole(old.len() as u64, new.len() as u64);
    diff_with_plan_in(old, new, &layout, opts, plan, threads, sink)
}

/// [`diff_with_plan`] of inputs whose data is `layout`.
pub fn diff_with_plan_in<E>(
    old: &[u8],
    new: &[u8],
    layout: &Layout,
    opts: &DiffOptions,
    plan: &Plan,
    threads: usize,
    mut sink: impl FnMut(EncodedChunk) -> Result<(), E>,
) -> Result<Metadata, E> {
    let (codec, progress) = (opts.codec, &opts.progress);
    let ix = Index::build(old, &layout.old, plan);
    let (old_hash, new_hash) = rayon::join(
        || hash_sparse(old, &layout.old),
        || hash_sparse(new, &layout.new),
    );
    progress.advance(old.len() as u64);
    progress.start(Phase::Matching, new.len() as u64);
    let mut sink = |c: EncodedChunk| {
        progress.advance(u64::from(c.entry.new_len));
        sink(c)
    };
    let ranges = chunk_ranges(new.len() as u64, plan.chunk_len);
    let workers = threads.min(plan.workers).max(1);
    // Each worker encodes its chunk on a pool of its own with one thread:
    // the search over codings then holds one candidate and one codec
    // context at a time, whatever the machine's thread count (the plan
    // counts one of each per worker). Without a pool (threads could not
    // be started) the search runs on the shared pool.
    let pools: Vec<Option<rayon::ThreadPool>> = (0..workers)
        .map(|_| rayon::ThreadPoolBuilder::new().num_threads(1).build().ok())
        .collect();
    // A chunk that reads as zeros (a hole of NEW, unread, or data that
    // is zeros) is not made: it joins the run of zeros it is in, and each
    // run becomes one zero chunk (format version 9) of at most
    // MAX_ZERO_CHUNK_LEN bytes. Which chunks are zeros depends on NEW's
    // bytes only, never on where its holes are or on the thread count.
    let make = |w: usize, k: usize| {
        let (s, e) = (ranges[k].start as usize, ranges[k].end as usize);
        if layout.new.all_zero(new, s as u64, e as u64) {
            return Made::Zeros(ranges[k].clone());
        }
        let run = || {
            let mut enc = ChunkEncoder::new(old, new, s as u64);
            chunk_into(&ix, plan, old, (new, &layout.new), s, e, &mut |op| {
                enc.push(op)
            });
            // Few, wide OLD ranges: each costs 16 bytes of head.
            let mut c = encode_chunk(enc, codec, plan.lzma2);
            // The entry stays in memory until the head is written: its
            // ranges' vector may have the capacity of every op's range.
            c.entry.old_ranges.shrink_to_fit();
            c
        };
        Made::Chunk(match &pools[w] {
            Some(pool) => pool.install(run),
            None => run(),
        })
    };
    let mut zeros = ZeroRuns::default();
    let mut feed = |m: Made| match m {
        Made::Chunk(c) => zeros.flush(&mut sink).and_then(|()| sink(c)),
        Made::Zeros(r) => zeros.add(r, &mut sink),
    };
    if workers == 1 {
        for k in 0..ranges.len() {
            feed(make(0, k))?;
        }
    } else {
        in_order(ranges.len(), workers, make, &mut feed)?;
    }
    zeros.flush(&mut sink)?;
    Ok(Metadata {
        old_len: old.len() as u64,
        old_hash,
        new_len: new.len() as u64,
        new_hash,
        engine: Engine::Streaming,
        flags: FILE_HASH.flag(),
    })
}

/// What a worker makes of one chunk of NEW.
enum Made {
    /// The chunk, encoded.
    Chunk(EncodedChunk),
    /// The chunk's NEW range, which reads as zeros: it joins a zero chunk.
    Zeros(Range<u64>),
}

/// The run of zero chunks not yet handed to the sink.
#[derive(Default)]
struct ZeroRuns(Option<Range<u64>>);

impl ZeroRuns {
    /// Adds NEW range `r` (it follows the run) to the run, or, when the
    /// run would exceed [`limits::MAX_ZERO_CHUNK_LEN`], hands the run to
    /// `sink` as one zero chunk and starts another.
    fn add<E>(
        &mut self,
        r: Range<u64>,
        sink: &mut impl FnMut(EncodedChunk) -> Result<(), E>,
    ) -> Result<(), E> {
        match &mut self.0 {
            Some(z) if r.end - z.start <= u64::from(limits::MAX_ZERO_CHUNK_LEN) => {
                z.end = r.end;
                Ok(())
            }
            _ => {
                let done = self.flush(sink);
                self.0 = Some(r);
                done
            }
        }
    }

    /// Hands the run, if any, to `sink` as one zero chunk.
    fn flush<E>(&mut self, sink: &mut impl FnMut(EncodedChunk) -> Result<(), E>) -> Result<(), E> {
        match self.0.take() {
            Some(z) => sink(EncodedChunk::zeros(z.start, (z.end - z.start) as u32)),
            None => Ok(()),
        }
    }
}

struct Shared<T> {
    /// Next chunk a worker may take.
    next: usize,
    /// Chunks handed to the sink so far.
    done: usize,
    ready: BTreeMap<usize, T>,
}

/// Runs `make(w, 0..n)` on `workers` threads (`w` the worker's number), at most `workers` chunks ahead
/// of the sink, and feeds the sink in order.
fn in_order<T: Send, E>(
    n: usize,
    workers: usize,
    make: impl Fn(usize, usize) -> T + Sync,
    sink: &mut impl FnMut(T) -> Result<(), E>,
) -> Result<(), E> {
    let state = Mutex::new(Shared {
        next: 0,
        done: 0,
        ready: BTreeMap::new(),
    });
    let cv = Condvar::new();
    let stop = AtomicBool::new(false);
    // Sets `stop` if a worker unwinds, so the sink loop does not wait forever.
    struct OnPanic<'a>(&'a AtomicBool, &'a Condvar);
    impl Drop for OnPanic<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.store(true, Ordering::SeqCst);
                self.1.notify_all();
            }
        }
    }
    std::thread::scope(|scope| {
        for w in 0..workers {
            let (state, cv, stop, make) = (&state, &cv, &stop, &make);
            scope.spawn(move || {
                let _guard = OnPanic(stop, cv);
                loop {
                    let k = {
                        let mut st = state.lock().unwrap();
                        while st.next >= st.done + workers && !stop.load(Ordering::SeqCst) {
                            st = cv.wait(st).unwrap();
                        }
                        if stop.load(Ordering::SeqCst) || st.next >= n {
                            return;
                        }
                        st.next += 1;
                        st.next - 1
                    };
                    let c = make(w, k);
                    state.lock().unwrap().ready.insert(k, c);
                    cv.notify_all();
                }
            });
        }
        let mut result = Ok(());
        for k in 0..n {
            let c = {
                let mut st = state.lock().unwrap();
                loop {
                    if let Some(c) = st.ready.remove(&k) {
                        break Some(c);
                    }
                    if stop.load(Ordering::SeqCst) {
                        break None;
                    }
                    st = cv.wait(st).unwrap();
                }
            };
            let Some(c) = c else { break };
            if let Err(e) = sink(c) {
                result = Err(e);
                break;
            }
            state.lock().unwrap().done += 1;
            cv.notify_all();
        }
        if result.is_err() {
            stop.store(true, Ordering::SeqCst);
            cv.notify_all();
        }
        result
    })
}
