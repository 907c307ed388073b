//! The streaming engine: round trips under tiny budgets, inputs larger than
//! the budget, sparse images, moved blocks, thread-count independence and
//! the budget arithmetic.

use oxdelta_diff::encode::Coder;
use oxdelta_diff::stream::{self, Plan};
use oxdelta_diff::{DiffOptions, sa};
use oxdelta_format::{AddMode, Codec, EncodedChunk, Patch, Streams, assemble};

/// A deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Code-like data: records drawn from a small vocabulary with numbers in
/// them, so there are many short and some long repeats.
fn code_like(rng: &mut Rng, n: usize) -> Vec<u8> {
    let words: Vec<Vec<u8>> = (0..64)
        .map(|_| {
            let l = 3 + rng.below(12);
            rng.bytes(l)
        })
        .collect();
    let mut out = Vec::with_capacity(n + 32);
    while out.len() < n {
        out.extend_from_slice(&words[rng.below(words.len())]);
        out.extend_from_slice(&(rng.next() as u32 % 5000).to_le_bytes());
    }
    out.truncate(n);
    out
}

/// NEW made from OLD by small edits, insertions and deletions.
fn edit(rng: &mut Rng, old: &[u8], edits: usize) -> Vec<u8> {
    let mut new = old.to_vec();
    for _ in 0..edits {
        let at = rng.below(new.len().max(1));
        match rng.below(3) {
            0 => {
                let l = (1 + rng.below(8)).min(new.len() - at);
                for b in &mut new[at..at + l] {
                    *b = b.wrapping_add(1);
                }
            }
            1 => {
                let l = 1 + rng.below(64);
                let ins = rng.bytes(l);
                new.splice(at..at, ins);
            }
            _ => {
                let l = (1 + rng.below(64)).min(new.len() - at);
                new.drain(at..at + l);
            }
        }
    }
    new
}

fn diff_plan(old: &[u8], new: &[u8], plan: &Plan, threads: usize) -> Vec<u8> {
    let mut chunks: Vec<EncodedChunk> = Vec::new();
    let opts = DiffOptions {
        codec: Codec::Zstd(3),
        ..DiffOptions::default()
    };
    let meta = stream::diff_with_plan(old, new, &opts, plan, threads, |c| {
        chunks.push(c);
        Ok::<(), ()>(())
    })
    .unwrap();
    assert_eq!(meta.engine, oxdelta_format::Engine::Streaming);
    assemble(&meta, chunks, None)
}

fn diff_budget(old: &[u8], new: &[u8], budget: u64, chunk: Option<u32>) -> (Vec<u8>, Plan) {
    let plan = Plan::new(old, new.len() as u64, budget, chunk, Codec::Zstd(3));
    (diff_plan(old, new, &plan, 2), plan)
}

fn apply(old: &[u8], patch: &[u8]) -> Vec<u8> {
    let p = Patch::parse(patch).unwrap();
    let mut out = vec![0u8; p.head.meta.new_len as usize];
    for (i, e) in p.head.chunks.iter().enumerate() {
        let s = e.new_offset as usize;
        p.apply_chunk(i, old, &mut out[s..s + e.new_len as usize], false)
            .unwrap();
    }
    out
}

fn roundtrip(old: &[u8], new: &[u8], budget: u64, chunk: Option<u32>) -> usize {
    let (patch, _) = diff_budget(old, new, budget, chunk);
    assert!(apply(old, &patch) == new, "round trip failed");
    patch.len()
}

#[test]
fn tiny_budget_edits_round_trip() {
    let mut rng = Rng(1);
    let old = code_like(&mut rng, 300_000);
    let new = edit(&mut rng, &old, 200);
    let plan = Plan::new(
        &old,
        new.len() as u64,
        stream::MIN_BUDGET,
        Some(16 << 10),
        Codec::Zstd(3),
    );
    // The window logic is exercised: windows are far smaller than OLD.
    assert!(plan.window < old.len() / 10, "{plan:?}");
    let len = roundtrip(&old, &new, stream::MIN_BUDGET, Some(16 << 10));
    assert!(len < new.len() / 4, "patch {len} for {} bytes", new.len());
}

#[test]
fn larger_than_budget() {
    let mut rng = Rng(2);
    let old = code_like(&mut rng, 3 << 20);
    let new = edit(&mut rng, &old, 500);
    let budget = 256 << 10;
    let plan = Plan::new(&old, new.len() as u64, budget, None, Codec::Zstd(3));
    assert!((old.len() as u64) > 10 * budget);
    assert!(plan.block >= 64, "{plan:?}");
    let len = roundtrip(&old, &new, budget, None);
    assert!(len < new.len() / 10, "patch {len}");
}

#[test]
fn empty_and_degenerate_inputs() {
    let mut rng = Rng(3);
    let data = rng.bytes(5000);
    for (old, new) in [
        (&[][..], &[][..]),
        (&data[..], &[][..]),
        (&[][..], &data[..]),
        (&data[..1], &data[..]),
        (&data[..], &data[..1]),
        (&data[..], &data[..]),
    ] {
        roundtrip(old, new, stream::MIN_BUDGET, Some(4096));
    }
}

#[test]
fn lengths_around_block_and_chunk_sizes() {
    let mut rng = Rng(4);
    let base = code_like(&mut rng, 40_000);
    let plan = Plan::new(
        &base,
        base.len() as u64,
        stream::MIN_BUDGET,
        Some(8192),
        Codec::Zstd(3),
    );
    let b = plan.block;
    for n in [
        b - 1,
        b,
        b + 1,
        2 * b - 1,
        2 * b + 1,
        8191,
        8192,
        8193,
        3 * 8192 + 7,
    ] {
        let old = &base[..n.min(base.len())];
        let mut new = base[5..(n + 5).min(base.len())].to_vec();
        if let Some(x) = new.get_mut(n / 2) {
            *x ^= 0x55;
        }
        roundtrip(old, &new, stream::MIN_BUDGET, Some(8192));
    }
}

#[test]
fn sparse_zero_heavy_images() {
    let mut rng = Rng(5);
    let n = 8 << 20;
    let mut old = vec![0u8; n];
    let mut new = vec![0u8; n];
    // Islands of data in 32 KiB slots, some moved, some changed.
    let mut slots: Vec<usize> = (1..n / 32768).collect();
    for i in (1..slots.len()).rev() {
        slots.swap(i, rng.below(i + 1));
    }
    for k in 0..40 {
        let len = 4096 * (1 + rng.below(8));
        let at = slots[k] * 32768;
        let data = code_like(&mut rng, len);
        old[at..at + len].copy_from_slice(&data);
        let to = if k % 3 == 0 {
            slots[40 + k] * 32768
        } else {
            at
        };
        new[to..to + len].copy_from_slice(&data);
        if k % 4 == 1 {
            new[to + len / 2] ^= 1;
        }
    }
    let fresh = rng.bytes(10_000);
    new[100..100 + fresh.len()].copy_from_slice(&fresh);
    // Chunks of 1 MiB: at smaller ones the chunk table would dominate.
    let len = roundtrip(&old, &new, 1 << 20, Some(1 << 20));
    let out = sa::diff(&old, &new, &DiffOptions::default());
    let in_mem = out.assemble(None).len();
    assert!(
        len * 4 <= in_mem * 5,
        "streaming {len} vs in-memory {in_mem}"
    );
    // The fresh random bytes dominate; everything else is nearly free.
    let p = oxdelta_format::Patch::parse(&diff_budget(&old, &new, 1 << 20, Some(1 << 20)).0)
        .unwrap()
        .head;
    // Zero runs are ZERO ops, not literals.
    let lit: u64 = p.chunks.iter().map(|c| u64::from(c.lit.raw)).sum();
    assert!(lit < 2 * fresh.len() as u64, "literal bytes {lit}");
    assert!(len < fresh.len() + 8000, "patch {len}");
}

#[test]
fn moved_blocks_are_found() {
    let mut rng = Rng(6);
    let nblocks = 1024;
    let old = rng.bytes(nblocks * 4096);
    // NEW: OLD's 4 KiB blocks in another order, as after a file-system
    // reallocation, plus a 1 KiB shift in the second half.
    let mut order: Vec<usize> = (0..nblocks).collect();
    for i in (1..nblocks).rev() {
        order.swap(i, rng.below(i + 1));
    }
    let mut new = Vec::with_capacity(old.len() + 1024);
    for (j, &b) in order.iter().enumerate() {
        if j == nblocks / 2 {
            new.extend_from_slice(&rng.bytes(1024));
        }
        new.extend_from_slice(&old[b * 4096..(b + 1) * 4096]);
    }
    let len = roundtrip(&old, &new, 1 << 20, None);
    assert!(len < 40_000, "patch {len} for {} bytes", new.len());
}

#[test]
fn patch_does_not_depend_on_thread_count() {
    let mut rng = Rng(7);
    let old = code_like(&mut rng, 1 << 20);
    let new = edit(&mut rng, &old, 300);
    let plan = Plan::new(
        &old,
        new.len() as u64,
        512 << 10,
        Some(32 << 10),
        Codec::Zstd(3),
    );
    assert!(plan.workers >= 1);
    let one = diff_plan(&old, &new, &plan, 1);
    for t in [2, 3, 8] {
        let mut p = plan.clone();
        p.workers = 8;
        assert!(diff_plan(&old, &new, &p, t) == one, "{t} threads differ");
    }
    assert!(apply(&old, &one) == new);
}

#[test]
fn close_to_the_in_memory_engine() {
    let mut rng = Rng(8);
    let old = code_like(&mut rng, 2 << 20);
    let new = edit(&mut rng, &old, 400);
    // The same codec for both engines (the streaming engine makes no
    // shared section, where LZMA2 gains most on this pair).
    let zstd = DiffOptions {
        codec: Codec::Zstd(19),
        ..DiffOptions::default()
    };
    let out = sa::diff(&old, &new, &zstd);
    let in_mem = out.assemble(None).len();
    let mut chunks = Vec::new();
    // Same chunk length as the in-memory engine (each chunk costs a table
    // entry of a few hundred bytes), and a budget that leaves real windows
    // for chunks that size (OLD is still larger than the index's share).
    let opts = DiffOptions {
        chunk_len: Some(1 << 20),
        ..zstd
    };
    let meta = stream::diff(&old, &new, &opts, 64 << 20, |c| {
        chunks.push(c);
        Ok::<(), ()>(())
    })
    .unwrap();
    let streamed = assemble(&meta, chunks, None);
    assert!(apply(&old, &streamed) == new);
    assert!(
        streamed.len() * 20 <= in_mem * 21,
        "streaming {} vs in-memory {in_mem}",
        streamed.len()
    );
}

#[test]
fn sink_errors_stop_the_diff() {
    let mut rng = Rng(9);
    let old = code_like(&mut rng, 1 << 20);
    let new = edit(&mut rng, &old, 50);
    let mut plan = Plan::new(
        &old,
        new.len() as u64,
        1 << 20,
        Some(16 << 10),
        Codec::Zstd(3),
    );
    plan.workers = 4;
    let mut seen = 0;
    let opts = DiffOptions {
        codec: Codec::Lz4,
        ..DiffOptions::default()
    };
    let r = stream::diff_with_plan(&old, &new, &opts, &plan, 4, |_| {
        seen += 1;
        if seen == 3 { Err("disk full") } else { Ok(()) }
    });
    assert_eq!(r.unwrap_err(), "disk full");
    assert_eq!(seen, 3);
}

#[test]
fn plan_stays_within_budget() {
    // A 64 GiB OLD with every block non-zero, and a sparse one.
    let old_len = 64u64 << 30;
    let dense: Vec<u64> = (0..16).map(|l| old_len >> (5 + l)).collect();
    let sparse: Vec<u64> = dense.iter().map(|c| c / 20).collect();
    for counts in [&dense, &sparse] {
        for budget in [64u64 << 20, 256 << 20, 1 << 30, 4 << 30] {
            let p = Plan::from_counts(old_len, counts, old_len, budget, None, Codec::Zstd(16));
            // Within the budget less what it leaves to the runtime.
            assert!(
                p.estimate(64) + stream::reserve(budget) <= budget,
                "{budget}: estimate {} {p:?}",
                p.estimate(64)
            );
            assert!(p.workers >= 2 || budget < 256 << 20, "{p:?}");
            assert!(p.block.is_power_of_two() && p.block >= 32);
            // Every non-zero block has a slot to spare.
            let level = p.block.trailing_zeros() as usize - 5;
            assert!(counts[level] <= (1u64 << p.slot_bits) * 5 / 8, "{p:?}");
        }
    }
    // Smaller budgets give coarser blocks.
    let a = Plan::from_counts(old_len, &dense, old_len, 64 << 20, None, Codec::Zstd(16));
    let b = Plan::from_counts(old_len, &dense, old_len, 1 << 30, None, Codec::Zstd(16));
    assert!(a.block > b.block);
}

/// NEW's holes cost the plan what their zero chunks cost, not a table
/// entry per chunk: a 64 GiB NEW holding 512 MiB of data in 300 extents
/// gets the chunks, index and windows of the 512 MiB NEW alone at 64M
/// (before, its table took an eighth of the budget and quadrupled the
/// chunk length).
#[test]
fn plan_counts_holes_as_zero_chunks() {
    let old_len = 512u64 << 20;
    let counts: Vec<u64> = (0..16).map(|l| (old_len / 4) >> (5 + l)).collect();
    let plain_new = stream::Extents::whole(old_len);
    // 300 extents of the image's 512 MiB span, spread over 64 GiB in
    // three pieces with holes between.
    let big = 64u64 << 30;
    let mut data = Vec::new();
    for piece in 0..3u64 {
        let base = piece * (20u64 << 30) + 12_345;
        for k in 0..100u64 {
            let at = base + k * (old_len / 300);
            data.push(at..at + (old_len / 600));
        }
    }
    let sparse_new = stream::Extents::new(data, big);
    for budget in [64u64 << 20, 256 << 20] {
        let plain = Plan::from_layout(
            old_len,
            &counts,
            (old_len, &plain_new),
            budget,
            None,
            Codec::Zstd(16),
        );
        let sparse = Plan::from_layout(
            old_len,
            &counts,
            (big, &sparse_new),
            budget,
            None,
            Codec::Zstd(16),
        );
        assert_eq!(sparse.chunk_len, plain.chunk_len, "{budget}");
        assert_eq!(
            (sparse.slot_bits, sparse.workers),
            (plain.slot_bits, plain.workers)
        );
        assert!(
            sparse.window * 100 >= plain.window * 99,
            "{sparse:?} {plain:?}"
        );
        assert!(sparse.estimate(64) + stream::reserve(budget) <= budget);
        // The table: about one entry per chunk holding data (a chunk
        // either side of each extent at most) and one per hole.
        let c = u64::from(sparse.chunk_len);
        let most = (3 * old_len / c + 600 + 4) * stream::TABLE_PER_CHUNK;
        assert!(sparse.table <= most, "{} > {most}", sparse.table);
        // Every byte data: 640 bytes a chunk, as before zero chunks.
        let dense = Plan::from_counts(old_len, &counts, big, budget, None, Codec::Zstd(16));
        assert_eq!(dense.table, dense.chunks * stream::TABLE_PER_CHUNK);
        assert!(dense.chunk_len > sparse.chunk_len || budget > 64 << 20);
    }
}

/// Heavily changed code-like data: OLD, and NEW with an edit every ~200
/// bytes, blocks moved, and fresh random stretches, so that regions are
/// long, the scan holds many matches and windows are far smaller than OLD.
fn heavy_pair(n: usize) -> (Vec<u8>, Vec<u8>) {
    let mut rng = Rng(11);
    let old = code_like(&mut rng, n);
    let mut new = Vec::with_capacity(n + n / 8);
    let mut at = 0;
    while at < n {
        let len = (64 << 10).min(n - at);
        let src = if rng.below(4) == 0 {
            rng.below(n - len + 1)
        } else {
            at
        };
        new.extend_from_slice(&old[src..src + len]);
        if rng.below(8) == 0 {
            new.extend_from_slice(&rng.bytes(4096));
        }
        at += len;
    }
    let mut i = 0;
    while i + 8 < new.len() {
        new[i] = new[i].wrapping_add(1 + rng.below(200) as u8);
        i += 8 + rng.below(40);
    }
    (old, new)
}

/// Run in a process of its own by [`allocations_stay_within_the_plan`]
/// (other tests would allocate beside it): diffs a heavily changed pair
/// at 64M on 1, 2 and 4 threads and checks the Rust allocations' peak
/// against the plan's estimate (less the codec state, which zstd
/// allocates with `malloc`, unseen by the counting allocator).
#[test]
#[ignore = "run by allocations_stay_within_the_plan in a process of its own"]
fn budget_probe() {
    if std::env::var_os("OXDELTA_BUDGET_PROBE").is_none() {
        return;
    }
    let (old, new) = heavy_pair(24 << 20);
    let budget = 64 << 20;
    let opts = DiffOptions {
        codec: Codec::Zstd(stream::DEFAULT_ZSTD_LEVEL),
        ..DiffOptions::default()
    };
    let plan = Plan::new(&old, new.len() as u64, budget, None, opts.codec);
    assert!(plan.window * 8 < old.len(), "{plan:?}");
    assert!(
        plan.estimate(64) + stream::reserve(budget) <= budget,
        "{plan:?}"
    );
    let mut sizes = Vec::new();
    for threads in [1, 2, 4] {
        let mut patch_bytes = 0usize;
        crate::counting::reset_peak();
        let base = crate::counting::now();
        stream::diff_with_plan(&old, &new, &opts, &plan, threads, |c| {
            patch_bytes += c.payload.len();
            Ok::<(), ()>(())
        })
        .unwrap();
        let used = (crate::counting::peak() - base) as u64;
        let workers = threads.min(plan.workers) as u64;
        let allowed = plan.estimate(threads) - workers * plan.codec_state;
        eprintln!("threads {threads}: peak {used} of {allowed} allowed; {plan:?}");
        assert!(
            used <= allowed,
            "{threads} threads: {used} > {allowed}; {plan:?}"
        );
        // The test is not vacuous: most of the estimate is really used.
        assert!(used * 2 > allowed, "{used} of {allowed}");
        sizes.push(patch_bytes);
    }
    assert!(sizes.iter().all(|&s| s == sizes[0]), "{sizes:?}");
}

/// The streaming engine allocates no more than its plan says (see
/// [`budget_probe`]).
#[test]
fn allocations_stay_within_the_plan() {
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "stream::budget_probe",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("OXDELTA_BUDGET_PROBE", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("threads 4: peak"),
        "the probe did not run: {text}"
    );
}

/// A sparse pair: data islands in a large zero file, given by extents, the
/// way the facade reads them from SEEK_DATA / SEEK_HOLE.
fn sparse_pair(rng: &mut Rng, len: usize, moved: bool) -> (Vec<u8>, Vec<u8>, stream::Layout) {
    let mut old = vec![0u8; len];
    let mut new = vec![0u8; len];
    let (mut od, mut nd) = (Vec::new(), Vec::new());
    let islands = 12;
    let slot = len / islands;
    for k in 0..islands {
        let n = 10_000 + rng.below(50_000);
        let at = k * slot + 4096 + rng.below(1000);
        let data = code_like(rng, n);
        old[at..at + n].copy_from_slice(&data);
        od.push(at as u64..(at + n) as u64);
        // The data moves after a hole somewhere else (another island's
        // slot), with a few edits.
        let to = if moved {
            ((k + 5) % islands) * slot + 8192 + rng.below(3000)
        } else {
            at
        };
        let mut d = data.clone();
        d[n / 3] ^= 0x5a;
        new[to..to + n].copy_from_slice(&d);
        nd.push(to as u64..(to + n) as u64);
    }
    let layout = stream::Layout {
        old: stream::Extents::new(od, len as u64),
        new: stream::Extents::new(nd, len as u64),
    };
    (old, new, layout)
}

fn diff_sparse(old: &[u8], new: &[u8], layout: &stream::Layout, threads: usize) -> Vec<u8> {
    let opts = DiffOptions {
        codec: Codec::Zstd(3),
        ..DiffOptions::default()
    };
    let plan = Plan::new_in(
        old,
        layout,
        new.len() as u64,
        64 << 20,
        Some(1 << 20),
        opts.codec,
    );
    let mut chunks = Vec::new();
    let meta = stream::diff_with_plan_in(old, new, layout, &opts, &plan, threads, |c| {
        chunks.push(c);
        Ok::<(), ()>(())
    })
    .unwrap();
    assert_eq!(meta.old_hash, block_list_oracle(old));
    assert_eq!(meta.new_hash, block_list_oracle(new));
    assemble(&meta, chunks, None)
}

/// The block-list hash (format version 8) from its definition in
/// docs/FORMAT.md: every 64 KiB block read and hashed, zeros included.
fn block_list_oracle(data: &[u8]) -> [u8; 32] {
    let mut outer = blake3::Hasher::new_derive_key("oxdelta 2026-12-07 block-list file hash v8");
    for b in data.chunks(1 << 16) {
        outer.update(blake3::hash(b).as_bytes());
    }
    outer.update(&(data.len() as u64).to_le_bytes());
    *outer.finalize().as_bytes()
}

#[test]
fn holes_are_zeros_and_data_may_move_across_them() {
    let mut rng = Rng(21);
    // Not a multiple of the chunk, block or page size.
    let len = (13 << 20) + 4093;
    for moved in [false, true] {
        let (old, new, layout) = sparse_pair(&mut rng, len, moved);
        let one = diff_sparse(&old, &new, &layout, 1);
        assert!(apply(&old, &one) == new, "moved {moved}");
        assert!(diff_sparse(&old, &new, &layout, 3) == one, "threads differ");
        // Holes cost nothing: the patch is about what the data's is.
        assert!(one.len() < 60_000, "moved {moved}: {}", one.len());
        // The same bytes with every byte data give a patch as small.
        let whole = stream::Layout::whole(len as u64, len as u64);
        let dense = diff_sparse(&old, &new, &whole, 2);
        assert!(apply(&old, &dense) == new);
        assert!(
            one.len() * 10 <= dense.len() * 11,
            "{} vs {}",
            one.len(),
            dense.len()
        );
    }
}

/// Chunks that read as zeros become zero chunks (format version 9), one
/// per run, whether the zeros are holes (unread) or data: the patch of a
/// NEW whose holes cover whole chunks is the patch of the same bytes read
/// in full. A run that starts or ends inside a chunk leaves that chunk an
/// ordinary one; the thread count changes nothing.
#[test]
fn zero_runs_become_zero_chunks() {
    let c = 1usize << 20;
    let len = 21 * c + 4093;
    let mut rng = Rng(5);
    let old = code_like(&mut rng, len);
    let mut new = old.clone();
    for i in (0..len).step_by(4099) {
        new[i] ^= 0x21;
    }
    // Zeros on chunk boundaries (2..6), across them from inside chunk 9
    // to inside chunk 14 (so 10..14 whole), and from chunk 20 to the end
    // (a last chunk that is not whole).
    let zeros = [2 * c..6 * c, 9 * c + 1000..14 * c + 5, 20 * c..len];
    for z in &zeros {
        new[z.clone()].fill(0);
    }
    // Holes where whole chunks are zeros; the partial chunks 9 and 14
    // hold their zeros as data.
    let holes = [2 * c..6 * c, 10 * c..14 * c, 20 * c..len];
    let mut data = Vec::new();
    let mut at = 0;
    for h in &holes {
        data.push(at as u64..h.start as u64);
        at = h.end;
    }
    let layout = stream::Layout {
        old: stream::Extents::whole(len as u64),
        new: stream::Extents::new(data, len as u64),
    };
    let sparse = diff_sparse(&old, &new, &layout, 1);
    assert!(
        diff_sparse(&old, &new, &layout, 3) == sparse,
        "threads differ"
    );
    let whole = stream::Layout::whole(len as u64, len as u64);
    assert!(
        diff_sparse(&old, &new, &whole, 2) == sparse,
        "holes differ from zeros"
    );
    assert!(apply(&old, &sparse) == new);
    let head = Patch::parse(&sparse).unwrap().head;
    assert_eq!(head.features_version(), 9);
    let runs: Vec<(u64, u32)> = head
        .chunks
        .iter()
        .filter(|e| e.zero)
        .map(|e| (e.new_offset, e.new_len))
        .collect();
    let want: Vec<(u64, u32)> = holes
        .iter()
        .map(|h| (h.start as u64, (h.end - h.start) as u32))
        .collect();
    assert_eq!(runs, want);
    // Every other chunk is one chunk of the grid, rebuilt.
    assert_eq!(head.chunks.len(), 22 - 4 - 4 - 2 + 3);
    assert_eq!(head.max_chunk_new_len, c as u32);
}

#[test]
fn extents_are_normalised() {
    let e = stream::Extents::new(vec![10..20, 0..5, 15..30, 40..40, 90..200], 100);
    assert_eq!(e.ranges(), &[0..5, 10..30, 90..100]);
    assert_eq!(e.data_len(), 35);
    assert_eq!(
        stream::Extents::whole(0).ranges(),
        &[] as &[std::ops::Range<u64>]
    );
}

/// With the default level the engine chooses per chunk: level
/// `STRONG_LEVEL` while the streams (the diff stream by its non-zero bytes)
/// are at most `1/STRONG_SHARE` of the chunk's NEW bytes, else the fast
/// setting.
#[test]
fn default_level_follows_the_streams_share() {
    let streams = |ctrl: usize, diff_nonzero: usize, lit: usize| Streams {
        ctrl: vec![1; ctrl],
        diff: [vec![0; 10_000], vec![7; diff_nonzero]].concat(),
        lit: vec![2; lit],
        add: AddMode::Bytes,
        split: false,
    };
    let new_len = 4000 * stream::STRONG_SHARE;
    let strong = Coder::Codec(Codec::Zstd(stream::STRONG_LEVEL));
    assert_eq!(
        stream::chunk_coder(&streams(1000, 1000, 2000), new_len),
        strong
    );
    assert_eq!(stream::chunk_coder(&streams(0, 0, 4000), new_len), strong);
    assert_eq!(
        stream::chunk_coder(&streams(1000, 1000, 2001), new_len),
        Coder::FastZstd
    );
    assert_eq!(
        stream::chunk_coder(&streams(0, 4001, 0), new_len),
        Coder::FastZstd
    );
}

/// The default level on a pair with lightly and heavily changed parts:
/// the light chunks are what `STRONG_LEVEL` makes of them, the heavy ones
/// are not (the fast setting); the patch applies and does not depend on
/// the threads.
#[test]
fn default_level_round_trips() {
    let (old, mut new) = heavy_pair(2 << 20);
    // The first megabyte nearly unchanged: small streams there.
    new[..1 << 20].copy_from_slice(&old[..1 << 20]);
    for i in (0..1 << 20).step_by(4099) {
        new[i] ^= 0x55;
    }
    // The rest changed in every other byte: diff bytes over half of it.
    for i in ((1 << 20)..new.len()).step_by(2) {
        new[i] ^= 0x33;
    }
    let run = |codec: Codec, threads: usize| {
        let opts = DiffOptions {
            codec,
            ..DiffOptions::default()
        };
        let plan = Plan::new(&old, new.len() as u64, 64 << 20, Some(256 << 10), codec);
        let mut chunks = Vec::new();
        let meta = stream::diff_with_plan(&old, &new, &opts, &plan, threads, |c| {
            chunks.push(c);
            Ok::<(), ()>(())
        })
        .unwrap();
        let payloads: Vec<Vec<u8>> = chunks.iter().map(|c| c.payload.clone()).collect();
        (assemble(&meta, chunks, None), payloads)
    };
    let auto = Codec::Zstd(stream::DEFAULT_ZSTD_LEVEL);
    let (one, chunks) = run(auto, 1);
    assert!(run(auto, 3).0 == one, "threads differ");
    assert!(apply(&old, &one) == new);
    let (_, strong) = run(Codec::Zstd(stream::STRONG_LEVEL), 2);
    let same: Vec<bool> = chunks.iter().zip(&strong).map(|(a, b)| a == b).collect();
    assert!(
        same[..4].iter().all(|&x| x) && same[4..].iter().all(|&x| !x),
        "{same:?}"
    );
}

/// From the default budget, chunks whose streams are small are stored as
/// LZMA2 where that pays; below it the plan leaves LZMA2's state out and
/// no chunk uses it. Either way the patch applies and does not depend on
/// the threads.
#[test]
fn small_chunks_try_lzma2_from_the_default_budget() {
    let mut rng = Rng(77);
    let old = code_like(&mut rng, 1 << 20);
    let mut new = old.clone();
    // Sparse inserts of 150 bytes, each depending on the byte before it
    // (which LZMA's literal coder models and zstd's does not): streams
    // under a sixteenth of each chunk that LZMA2 codes smaller.
    let mut prev = 0u8;
    for at in (0..old.len()).step_by(5003).rev() {
        let ins: Vec<u8> = (0..150)
            .map(|_| {
                prev = prev.wrapping_mul(5).wrapping_add((rng.next() >> 62) as u8);
                prev
            })
            .collect();
        new.splice(at..at, ins);
    }
    let auto = Codec::Zstd(stream::DEFAULT_ZSTD_LEVEL);
    let run = |budget: u64, threads: usize| {
        let opts = DiffOptions {
            codec: auto,
            ..DiffOptions::default()
        };
        let plan = Plan::new(&old, new.len() as u64, budget, Some(256 << 10), auto);
        let mut chunks = Vec::new();
        let meta = stream::diff_with_plan(&old, &new, &opts, &plan, threads, |c| {
            chunks.push(c);
            Ok::<(), ()>(())
        })
        .unwrap();
        (assemble(&meta, chunks, None), plan)
    };
    let codecs = |patch: &[u8]| -> Vec<Codec> {
        let p = Patch::parse(patch).unwrap();
        p.head.chunks.iter().map(|c| c.codec).collect()
    };
    let (big, plan) = run(stream::LZMA2_MIN_BUDGET, 1);
    assert!(plan.lzma2);
    assert!(run(stream::LZMA2_MIN_BUDGET, 3).0 == big, "threads differ");
    assert!(apply(&old, &big) == new);
    assert!(codecs(&big).contains(&Codec::Lzma2), "{:?}", codecs(&big));
    let (small, plan) = run(stream::LZMA2_MIN_BUDGET / 2, 2);
    assert!(!plan.lzma2);
    assert!(apply(&old, &small) == new);
    assert!(!codecs(&small).contains(&Codec::Lzma2));
    // The plan counts LZMA2's state only where it is used.
    let plan = |budget| Plan::new(&old, new.len() as u64, budget, None, auto).codec_state;
    assert!(plan(stream::LZMA2_MIN_BUDGET) >= Codec::Lzma2.state_bound());
    assert!(plan(stream::LZMA2_MIN_BUDGET / 2) < Codec::Lzma2.state_bound());
}
