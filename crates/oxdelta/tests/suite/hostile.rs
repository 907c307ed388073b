//! Hostile input: damaged, tampered and malicious patches give an error,
//! never a panic, a wrong NEW, a huge allocation or a touched output.

use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use oxdelta::oxdelta_format::{
    self, ChunkEntry, EncodedChunk, Engine, ErrorKind, Metadata, StreamLen, head,
};
use oxdelta::{ApplyError, ApplyOptions, Codec, Patch};

use crate::golden;

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "oxdelta-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Applies `patch` in memory: a panic fails the test; success is allowed
/// only when it gives exactly `new` (a bit nothing hashes or checks, like
/// the informational engine id, may change). Returns whether it applied
/// and whether `verify_bytes` (with the options' key) accepted it.
fn apply_no_panic(
    what: &str,
    old: &[u8],
    patch: &[u8],
    new: &[u8],
    opts: &ApplyOptions,
) -> (bool, bool) {
    let r = catch_unwind(AssertUnwindSafe(|| oxdelta::apply_bytes(old, patch, opts)))
        .unwrap_or_else(|_| panic!("{what}: apply_bytes panicked"));
    let v = catch_unwind(AssertUnwindSafe(|| {
        oxdelta::verify_bytes(patch, opts.trusted_key.as_ref()).is_ok()
    }))
    .unwrap_or_else(|_| panic!("{what}: verify_bytes panicked"));
    let _ = catch_unwind(|| oxdelta_format::head::Head::parse(patch))
        .unwrap_or_else(|_| panic!("{what}: Head::parse panicked"));
    match r {
        Ok(out) => {
            assert!(out == new, "{what}: applied to a wrong NEW");
            assert!(v, "{what}: applies but does not verify");
            (true, v)
        }
        Err(_) => (false, v),
    }
}

/// Calls `visit` with every damaged variant of a golden patch: each
/// truncation, one trailing byte, each single-bit flip, each byte set to
/// 0x00 and 0xFF, each length or count field set to extreme values.
fn each_variant(g: &golden::Golden, mut visit: impl FnMut(&str, &[u8])) {
    let mut p = g.patch.clone();
    for len in 0..p.len() {
        visit(&format!("truncated to {len}"), &p[..len]);
    }
    let mut longer = p.clone();
    longer.push(0);
    visit("one trailing byte", &longer);
    for i in 0..p.len() {
        let orig = p[i];
        for bit in 0..8 {
            p[i] = orig ^ (1 << bit);
            visit(&format!("bit {bit} of byte {i} flipped"), &p);
        }
        for v in [0x00, 0xff] {
            if v != orig {
                p[i] = v;
                visit(&format!("byte {i} set to {v:#x}"), &p);
            }
        }
        p[i] = orig;
    }
    for (at, width, name) in length_fields(&g.patch) {
        for v in [0u64, 1, u64::from(u32::MAX), u64::MAX, 1 << 40] {
            let v = if width == 8 {
                v
            } else {
                v & ((1 << (8 * width)) - 1)
            };
            p[at..at + width].copy_from_slice(&v.to_le_bytes()[..width]);
            if p[at..at + width] != g.patch[at..at + width] {
                visit(&format!("{name} at {at} set to {v}"), &p);
            }
        }
        p[at..at + width].copy_from_slice(&g.patch[at..at + width]);
    }
}

/// Offsets, widths and names of every length and count field of a patch.
fn length_fields(patch: &[u8]) -> Vec<(usize, usize, String)> {
    let h = Patch::parse(patch).unwrap().head;
    let mut v = vec![
        (12, 4, "head length".to_string()),
        (16, 8, "OLD length".into()),
        (56, 8, "NEW length".into()),
        (96, 4, "chunk count".into()),
        (104, 8, "payload length".into()),
        (112, 4, "largest chunk length".into()),
    ];
    let mut at = head::TABLE_START;
    for (i, e) in h.chunks.iter().enumerate() {
        v.push((at, 8, format!("chunk {i} NEW offset")));
        v.push((at + 8, 4, format!("chunk {i} NEW length")));
        v.push((at + 14, 2, format!("chunk {i} OLD range count")));
        for k in 0..6 {
            v.push((at + 16 + 4 * k, 4, format!("chunk {i} stream length {k}")));
        }
        for j in 0..e.old_ranges.len() {
            let r = at + head::ENTRY_FIXED_LEN + head::RANGE_LEN * j;
            v.push((r, 8, format!("chunk {i} OLD range {j} start")));
            v.push((r + 8, 8, format!("chunk {i} OLD range {j} length")));
        }
        at += head::ENTRY_FIXED_LEN + head::RANGE_LEN * e.old_ranges.len();
    }
    assert_eq!(at as u64, h.head_len);
    v
}

/// Truncations, bit flips, 0x00/0xFF bytes and extreme length fields of an
/// unsigned patch: an error, or (for the few bits nothing checks) exactly
/// NEW; never a panic or a wrong NEW.
#[test]
fn damaged_unsigned_patch_never_panics_or_lies() {
    for name in [
        "bin.zstd.oxd",
        "text.lz4.oxd",
        "bin.none.oxd",
        "v2/bin.zstd.oxd",
        "v2/text.lz4.oxd",
        "v2/table.zstd.oxd",
        "v2/code.zstd.oxd",
    ] {
        let g = golden::get(name);
        let opts = crate::overwriting();
        let (mut tried, mut applied) = (0, 0);
        // The metadata's whole-NEW hash (bytes 64..96) is informative: the
        // chunk hashes are the check, so a patch damaged only there applies
        // to exactly NEW (apply_no_panic checks that).
        let only_new_hash = |p: &[u8]| {
            p.len() == g.patch.len()
                && (0..p.len()).all(|i| p[i] == g.patch[i] || (64..96).contains(&i))
        };
        let mut new_hash_variants = 0;
        each_variant(&g, |what, p| {
            let ok = apply_no_panic(&format!("{name}: {what}"), &g.old, p, &g.new, &opts).0;
            if only_new_hash(p) {
                assert!(ok, "{name}: {what}: refused for its metadata NEW hash");
                new_hash_variants += 1;
                return;
            }
            tried += 1;
            if ok {
                applied += 1;
            }
        });
        assert!(new_hash_variants >= 32 * 8);
        // Otherwise only bits no hash covers (engine id, flags) may still
        // apply.
        assert!(
            applied * 100 < tried,
            "{name}: {applied} of {tried} damaged variants applied"
        );
    }
}

/// With a trusted key, every damaged variant of a signed patch is refused,
/// by verify_bytes and by apply_bytes.
#[test]
fn damaged_signed_patch_always_fails() {
    let g = golden::get("bin.zstd.signed.oxd");
    let trusted = golden::test_public_key();
    let opts = ApplyOptions {
        trusted_key: Some(trusted),
        ..crate::overwriting()
    };
    assert_eq!(
        apply_no_panic("intact", &g.old, &g.patch, &g.new, &opts),
        (true, true)
    );
    each_variant(&g, |what, p| {
        let (applied, verified) = apply_no_panic(what, &g.old, p, &g.new, &opts);
        assert!(!applied, "{what}: a damaged signed patch applied");
        assert!(!verified, "{what}: a damaged signed patch verified");
    });
}

fn is_hash_mismatch(e: &ApplyError) -> bool {
    matches!(e, ApplyError::Patch(f) if matches!(f.kind(), ErrorKind::HashMismatch { .. }))
}

/// A changed payload byte fails its payload hash (before decoding).
#[test]
fn tampered_payload_fails_its_hash() {
    let g = golden::get("bin.zstd.oxd");
    let p = Patch::parse(&g.patch).unwrap();
    let start = p.head.payload_start() as usize;
    for i in start..g.patch.len() {
        let mut t = g.patch.clone();
        t[i] ^= 0x40;
        let e = oxdelta::apply_bytes(&g.old, &t, &crate::overwriting()).unwrap_err();
        assert!(is_hash_mismatch(&e), "byte {i}: {e}");
        assert!(oxdelta::verify_bytes(&t, None).is_err());
    }
}

/// File apply of damaged patches: OUT keeps its old content and no
/// temporary file is left behind (on a sample of the variants).
#[test]
fn damaged_patch_file_apply_leaves_out_untouched() {
    let g = golden::get("text.zstd.oxd");
    let tmp = TempDir::new("hostile-file");
    let (o, p, out) = (tmp.path("old"), tmp.path("patch"), tmp.path("out"));
    fs::write(&o, &g.old).unwrap();
    let before = b"previous contents of OUT".to_vec();
    let mut n = 0usize;
    each_variant(&g, |what, bytes| {
        n += 1;
        if n % 11 != 0 {
            return;
        }
        fs::write(&out, &before).unwrap();
        fs::write(&p, bytes).unwrap();
        let opts = crate::overwriting();
        let r = catch_unwind(AssertUnwindSafe(|| {
            oxdelta::apply_file(&o, &p, &out, &opts)
        }))
        .unwrap_or_else(|_| panic!("{what}: apply_file panicked"));
        let r2 = catch_unwind(AssertUnwindSafe(|| {
            oxdelta::apply_reader(&o, bytes, &out, &opts)
        }))
        .unwrap_or_else(|_| panic!("{what}: apply_reader panicked"));
        assert_eq!(tmp.names(), ["old", "out", "patch"], "{what}: files left");
        match (r, r2) {
            (Err(_), Err(_)) => assert_eq!(fs::read(&out).unwrap(), before, "{what}: OUT changed"),
            _ => assert!(
                fs::read(&out).unwrap() == g.new,
                "{what}: wrong NEW written"
            ),
        }
    });
    assert!(n > 1000);
}

/// OUT may be OLD itself: a failed apply leaves OLD intact.
#[test]
fn failed_apply_over_old_keeps_old() {
    let g = golden::get("bin.lz4.oxd");
    let tmp = TempDir::new("hostile-inplace");
    let (o, p) = (tmp.path("old"), tmp.path("patch"));
    fs::write(&o, &g.old).unwrap();
    let mut bad = g.patch.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    fs::write(&p, &bad).unwrap();
    assert!(oxdelta::apply_file(&o, &p, &o, &crate::overwriting()).is_err());
    assert_eq!(fs::read(&o).unwrap(), g.old);
    assert_eq!(tmp.names(), ["old", "patch"]);
}

/// A one-chunk patch around hand-made streams, with correct payload hash
/// (so decoding is reached) and the given raw lengths.
fn one_chunk(
    codec: Codec,
    new_len: u32,
    stored: [Vec<u8>; 3],
    raw: [u32; 3],
    new: &[u8],
) -> Vec<u8> {
    let lens: Vec<StreamLen> = (0..3)
        .map(|k| StreamLen {
            raw: raw[k],
            stored: stored[k].len() as u32,
        })
        .collect();
    let payload = stored.concat();
    let entry = ChunkEntry {
        new_offset: 0,
        new_len,
        codec,
        diff_filter: oxdelta_format::DiffFilter::None,
        add_mode: oxdelta_format::AddMode::Bytes,
        operand_split: false,
        ctrl_split: false,
        lit_x86: false,
        shared: false,
        shared_ctrl_at: 0,
        shared_lit_at: 0,
        ctrl: lens[0],
        diff: lens[1],
        lit: lens[2],
        payload_hash: *blake3::hash(&payload).as_bytes(),
        new_hash: *blake3::hash(new).as_bytes(),
        old_ranges: vec![],
        zero: false,
        payload_offset: 0,
    };
    let meta = Metadata {
        old_len: 0,
        old_hash: *blake3::hash(b"").as_bytes(),
        new_len: new_len.into(),
        new_hash: *blake3::hash(new).as_bytes(),
        engine: Engine::Unknown,
        flags: 0,
    };
    oxdelta_format::assemble(&meta, vec![EncodedChunk { entry, payload }], None)
}

fn insert_ctrl(len: u64) -> Vec<u8> {
    let mut c = Vec::new();
    oxdelta_format::cursor::put_varint(&mut c, (len << 2) | 2);
    c
}

/// Sanity check of the helper: an honest one-chunk patch applies.
#[test]
fn hand_made_chunk_applies() {
    let lit = b"sixteen literal bytes, more or less".to_vec();
    let n = lit.len() as u32;
    for codec in [Codec::None, Codec::Lz4, Codec::Zstd(3), Codec::Lzma2] {
        let ctrl = insert_ctrl(n.into());
        let raw = [ctrl.len() as u32, 0, n];
        let stored = [codec.compress(&ctrl), vec![], codec.compress(&lit)];
        let p = one_chunk(codec, n, stored, raw, &lit);
        assert_eq!(
            oxdelta::apply_bytes(&[], &p, &crate::overwriting()).unwrap(),
            lit
        );
    }
}

/// Decompression bombs: a tiny stream that expands to far more than its
/// declared raw size, a tiny stream that claims the largest raw size, and
/// raw sizes beyond the limits, are all refused.
#[test]
fn decompression_bombs_are_refused() {
    let n: u32 = 1 << 20; // the chunk's NEW length
    let ctrl = insert_ctrl(n.into());
    let huge = vec![0u8; 64 << 20]; // 64 MiB of zeros
    for codec in [Codec::Lz4, Codec::Zstd(1), Codec::Lzma2] {
        let bomb = codec.compress(&huge);
        assert!(bomb.len() < (1 << 20), "{codec:?} bomb is small");
        // Declares 1 MiB, expands to 64 MiB.
        let p = one_chunk(
            codec,
            n,
            [codec.compress(&ctrl), vec![], bomb.clone()],
            [ctrl.len() as u32, 0, n],
            &huge[..n as usize],
        );
        let e = oxdelta::apply_bytes(&[], &p, &crate::overwriting()).unwrap_err();
        assert!(
            matches!(&e, ApplyError::Patch(f) if matches!(f.kind(), ErrorKind::Codec(_))),
            "{codec:?}: {e}"
        );
        assert!(oxdelta::verify_bytes(&p, None).is_err());
        // A raw size smaller than what the payload expands to.
        let small = codec.compress(&huge[..4096]);
        let p = one_chunk(
            codec,
            100,
            [codec.compress(&insert_ctrl(100)), vec![], small],
            [insert_ctrl(100).len() as u32, 0, 100],
            &[0; 100],
        );
        assert!(oxdelta::apply_bytes(&[], &p, &crate::overwriting()).is_err());
        // A tiny payload claiming the largest raw size the limits allow.
        let max = oxdelta_format::limits::MAX_CHUNK_NEW_LEN;
        let p = one_chunk(
            codec,
            max,
            [
                codec.compress(&insert_ctrl(max.into())),
                vec![],
                vec![0x1f, 0, 1, 2],
            ],
            [insert_ctrl(max.into()).len() as u32, 0, max],
            &[],
        );
        assert!(oxdelta::apply_bytes(&[], &p, &crate::overwriting()).is_err());
        // Raw sizes past the limits are refused by the parser.
        for raw in [max + 1, u32::MAX] {
            let p = one_chunk(
                codec,
                max,
                [
                    codec.compress(&insert_ctrl(max.into())),
                    vec![],
                    bomb.clone(),
                ],
                [insert_ctrl(max.into()).len() as u32, 0, raw],
                &[],
            );
            assert!(Patch::parse(&p).is_err(), "raw {raw} parsed");
            assert!(oxdelta::apply_bytes(&[], &p, &crate::overwriting()).is_err());
        }
    }
}

/// A small patch claiming a 1 TB NEW fails to parse (it cannot hold the
/// chunks), and a well-formed patch of 1 TB of ZERO chunks (13 MiB of
/// head) is refused by apply_bytes before it allocates NEW.
#[test]
fn terabyte_new_is_refused_before_allocating() {
    const TB: u64 = 1 << 40;
    let g = golden::get("bin.none.oxd");
    let mut p = g.patch.clone();
    p[56..64].copy_from_slice(&TB.to_le_bytes());
    assert!(Patch::parse(&p).is_err());
    assert!(oxdelta::apply_bytes(&g.old, &p, &crate::overwriting()).is_err());

    let chunk = oxdelta_format::limits::MAX_CHUNK_NEW_LEN;
    let zeros_hash = *blake3::hash(&vec![0u8; chunk as usize]).as_bytes();
    let mut ctrl = Vec::new();
    oxdelta_format::cursor::put_varint(&mut ctrl, (u64::from(chunk) << 2) | 3);
    let count = TB / u64::from(chunk);
    let chunks: Vec<EncodedChunk> = (0..count)
        .map(|i| EncodedChunk {
            entry: ChunkEntry {
                new_offset: i * u64::from(chunk),
                new_len: chunk,
                codec: Codec::None,
                diff_filter: oxdelta_format::DiffFilter::None,
                add_mode: oxdelta_format::AddMode::Bytes,
                operand_split: false,
                ctrl_split: false,
                lit_x86: false,
                shared: false,
                shared_ctrl_at: 0,
                shared_lit_at: 0,
                ctrl: StreamLen {
                    raw: ctrl.len() as u32,
                    stored: ctrl.len() as u32,
                },
                diff: StreamLen::default(),
                lit: StreamLen::default(),
                payload_hash: *blake3::hash(&ctrl).as_bytes(),
                new_hash: zeros_hash,
                old_ranges: vec![],
                zero: false,
                payload_offset: 0,
            },
            payload: ctrl.clone(),
        })
        .collect();
    let meta = Metadata {
        old_len: 0,
        old_hash: *blake3::hash(b"").as_bytes(),
        new_len: TB,
        new_hash: [0; 32],
        engine: Engine::Unknown,
        flags: 0,
    };
    let patch = oxdelta_format::assemble(&meta, chunks, None);
    let parsed = Patch::parse(&patch).expect("a well-formed 1 TB patch parses");
    assert_eq!(parsed.head.meta.new_len, TB);
    let t = std::time::Instant::now();
    let e = oxdelta::apply_bytes(&[], &patch, &crate::overwriting()).unwrap_err();
    assert!(e.to_string().contains("NEW length"), "{e}");
    assert!(t.elapsed().as_secs() < 30, "refusal took {:?}", t.elapsed());
    // Even with the in-memory limit lifted, the allocation is tried
    // fallibly, never by aborting.
    let lifted = ApplyOptions {
        max_in_memory_len: u64::MAX,
        ..crate::overwriting()
    };
    if cfg!(target_pointer_width = "64") && overcommit_heuristic() {
        assert!(oxdelta::apply_bytes(&[], &patch, &lifted).is_err());
    }
}

/// True when Linux refuses obviously impossible allocations (mode 0 or 2),
/// so a fallible 1 TB reservation fails instead of succeeding lazily.
fn overcommit_heuristic() -> bool {
    fs::read_to_string("/proc/sys/vm/overcommit_memory")
        .map(|s| s.trim() != "1")
        .unwrap_or(false)
}

/// Version 2's diff-coding byte: unknown filter and ADD mode ids (and
/// version 3's operand modes where they may not be), a filter
/// on a chunk stored with codec none, a filter in a patch that says version 1, and versions
/// this build does not know are refused by the parser with a message
/// naming the field.
#[test]
fn diff_filter_fields_are_checked() {
    let g = golden::get("v2/bin.zstd.oxd");
    let h = Patch::parse(&g.patch).unwrap().head;
    let mut at = head::TABLE_START;
    let mut filtered = None;
    for e in &h.chunks {
        if e.diff_filter != oxdelta_format::DiffFilter::None {
            filtered = Some(at);
            break;
        }
        at += head::ENTRY_FIXED_LEN + head::RANGE_LEN * e.old_ranges.len();
    }
    let at = filtered.expect("a v2 golden patch has a filtered chunk");
    let refused = |p: &[u8], want: &str| {
        let e = Patch::parse(p).expect_err(want).to_string();
        assert!(e.contains(want), "{want}: {e}");
        assert!(oxdelta::apply_bytes(&g.old, p, &crate::overwriting()).is_err());
    };
    let mut p = g.patch.clone();
    p[at + 13] = 3;
    refused(&p, "diff filter");
    let mut p = g.patch.clone();
    p[at + 12] = 0;
    refused(&p, "diff filter");
    let mut p = g.patch.clone();
    p[at + 13] |= 0x20;
    refused(&p, "ADD mode");
    let mut p = g.patch.clone();
    p[8..10].copy_from_slice(&1u16.to_le_bytes());
    refused(&p, "reserved chunk byte");
    // Version 3's operand modes: not in a version-2 patch (above: id 2),
    // never with the operand split, and no id past 3.
    let v3 = |p: &mut Vec<u8>| p[8..10].copy_from_slice(&3u16.to_le_bytes());
    let mut p = g.patch.clone();
    v3(&mut p);
    p[at + 13] = (p[at + 13] & 0x07) | 0x20 | 0x08;
    refused(&p, "no operand split with an operand ADD mode");
    let mut p = g.patch.clone();
    v3(&mut p);
    p[at + 13] = (p[at + 13] & 0x07) | 0x40;
    refused(&p, "ADD mode");
    // Accepted by the parser in version 3, an operand mode on a stream not
    // made for it rebuilds other bytes, which the chunk hash refuses.
    let mut p = g.patch.clone();
    v3(&mut p);
    p[at + 13] = (p[at + 13] & 0x07) | 0x30;
    assert!(Patch::parse(&p).is_ok());
    assert!(oxdelta::apply_bytes(&g.old, &p, &crate::overwriting()).is_err());
    // Version 4's stream coding bits in the codec byte: not before
    // version 4, never with codec none, bits 6-7 zero.
    let v4 = |p: &mut Vec<u8>| p[8..10].copy_from_slice(&4u16.to_le_bytes());
    let mut p = g.patch.clone();
    p[at + 12] |= 0x10;
    refused(&p, "chunk codec");
    let mut p = g.patch.clone();
    v4(&mut p);
    p[at + 12] |= 0x40;
    refused(&p, "bits 6-7 zero");
    let none = h
        .chunks
        .iter()
        .scan(head::TABLE_START, |at, e| {
            let here = *at;
            *at += head::ENTRY_FIXED_LEN + head::RANGE_LEN * e.old_ranges.len();
            Some((here, e))
        })
        .find(|(_, e)| e.codec == Codec::None)
        .map(|(here, _)| here);
    if let Some(none) = none {
        for bit in [0x10, 0x20] {
            let mut p = g.patch.clone();
            v4(&mut p);
            p[none + 12] |= bit;
            refused(&p, "no stream coding bits with codec none");
        }
    }
    // Accepted by the parser in version 4, a split-control bit on a stream
    // not split is refused when the chunk is decoded.
    let mut p = g.patch.clone();
    v4(&mut p);
    p[at + 12] |= 0x10;
    assert!(Patch::parse(&p).is_ok());
    assert!(oxdelta::apply_bytes(&g.old, &p, &crate::overwriting()).is_err());
    let next = oxdelta::FORMAT_VERSION + 1;
    let mut p = g.patch.clone();
    p[8..10].copy_from_slice(&next.to_le_bytes());
    refused(&p, &format!("unsupported patch format version {next}"));
    // Version 8's block-list hash flag: not before version 8, and no
    // other unknown flag.
    let mut p = g.patch.clone();
    p[10] |= 2;
    refused(&p, "no block-list hash flag before version 8");
    // Version 11's signed flag: not before version 11.
    let mut p = g.patch.clone();
    p[10] |= 4;
    refused(&p, "no signed flag before version 11");
    let mut p = g.patch.clone();
    p[10] |= 8;
    refused(&p, "only known flags");
}

/// Version 5's shared section: its descriptor's fields, its place in the
/// head, its hash, the in-place flag and the chunks' shared bit are checked;
/// a wrong OLD (its context) is reported as a wrong OLD by the file
/// appliers, and OUT is left as it was.
#[test]
fn shared_section_fields_are_checked() {
    let g = golden::get("v5/edits.zstd.oxd");
    let h = Patch::parse(&g.patch).unwrap().head;
    assert!(h.shared.is_present() && h.chunks.iter().all(|c| c.shared));
    let desc = h.head_len as usize - head::SHARED_DESC_LEN;
    let section = h.payload_start() as usize;
    let refused = |p: &[u8], want: &str| {
        let e = Patch::parse(p).expect_err(want).to_string();
        assert!(e.contains(want), "{want}: {e}");
        assert!(oxdelta::apply_bytes(&g.old, p, &crate::overwriting()).is_err());
    };
    let apply_err = |p: &[u8]| {
        oxdelta::apply_bytes(&g.old, p, &crate::overwriting())
            .expect_err("a damaged shared section is refused")
            .to_string()
    };
    // Any byte of the section: the section hash.
    for at in [section, section + h.shared.stored_len() as usize - 1] {
        let mut p = g.patch.clone();
        p[at] ^= 0x01;
        assert!(Patch::parse(&p).is_ok());
        let e = apply_err(&p);
        assert!(e.contains("shared section"), "{e}");
        assert!(oxdelta::verify_bytes(&p, None).is_err());
    }
    // The descriptor's hash and lengths are covered by the head's checks.
    let mut p = g.patch.clone();
    p[desc + 24] ^= 0x01;
    assert!(apply_err(&p).contains("shared section"));
    let mut p = g.patch.clone();
    p[desc + 16..desc + 20].copy_from_slice(&(70_000u32).to_le_bytes());
    refused(&p, "shared gap length");
    // The margin is version 7's: zero in version 5 and 6, at most 64 KiB
    // in version 7, where the same section with a margin builds another
    // context (the patch then does not apply).
    let mut p = g.patch.clone();
    p[desc + 20] = 1;
    refused(&p, "shared context margin");
    p[8..10].copy_from_slice(&7u16.to_le_bytes());
    assert!(Patch::parse(&p).is_ok());
    apply_err(&p);
    p[desc + 20..desc + 24].copy_from_slice(&(65_537u32).to_le_bytes());
    refused(&p, "shared context margin");
    // Byte 56 is the section's codec: LZMA2 (1) only from version 7.
    let mut p = g.patch.clone();
    p[desc + 56] = 1;
    refused(&p, "shared section codec");
    let mut p = g.patch.clone();
    p[desc + 56] = 2;
    p[8..10].copy_from_slice(&7u16.to_le_bytes());
    refused(&p, "shared section codec");
    let mut p = g.patch.clone();
    p[desc + 57] = 1;
    refused(&p, "reserved shared-section bytes");
    let mut p = g.patch.clone();
    p[desc + 60] = 1;
    refused(&p, "reserved shared-section bytes");
    let mut p = g.patch.clone();
    p[desc + 8..desc + 12].copy_from_slice(&(5u32 << 20).to_le_bytes());
    refused(&p, "shared block raw length");
    // Version 9 keeps the 4 MiB limit; version 10 allows a literal block
    // of up to 32 MiB and a control block of up to 8 MiB in a normal patch
    // (this one is then refused because the chunks' stream lengths do not
    // add up to the block's), never in an in-place one.
    p[8..10].copy_from_slice(&9u16.to_le_bytes());
    refused(&p, "shared block raw length");
    p[8..10].copy_from_slice(&10u16.to_le_bytes());
    let beyond_limit = |p: &[u8]| {
        let e = Patch::parse(p).unwrap_err().to_string();
        !e.contains("shared block raw length")
    };
    assert!(beyond_limit(&p));
    p[10] |= 1;
    refused(&p, "shared block raw length");
    p[10] &= !1;
    p[desc + 8..desc + 12].copy_from_slice(&((32u32 << 20) + 1).to_le_bytes());
    refused(&p, "shared block raw length");
    p[desc + 8..desc + 12].copy_from_slice(&(32u32 << 20).to_le_bytes());
    assert!(beyond_limit(&p));
    p[desc..desc + 4].copy_from_slice(&(8u32 << 20).to_le_bytes());
    assert!(beyond_limit(&p));
    p[desc..desc + 4].copy_from_slice(&((8u32 << 20) + 1).to_le_bytes());
    refused(&p, "shared block raw length");
    let mut p = g.patch.clone();
    let lit_raw = u32::from_le_bytes(p[desc + 8..desc + 12].try_into().unwrap());
    p[desc + 8..desc + 12].copy_from_slice(&(lit_raw + 1).to_le_bytes());
    refused(&p, "shared section");
    // No section in an in-place patch before version 8; from version 8
    // on it parses, and applies as an ordinary patch.
    let mut p = g.patch.clone();
    p[10] |= 1;
    refused(&p, "in-place");
    p[8..10].copy_from_slice(&7u16.to_le_bytes());
    refused(&p, "in-place");
    p[8..10].copy_from_slice(&8u16.to_le_bytes());
    assert!(Patch::parse(&p).unwrap().head.is_in_place());
    assert!(oxdelta::apply_bytes(&g.old, &p, &crate::overwriting()).unwrap() == g.new);
    // A version-4 reading of a version-5 head, and the shared bit taken
    // off a chunk (its stored lengths of zero then do not parse).
    let mut p = g.patch.clone();
    p[8..10].copy_from_slice(&4u16.to_le_bytes());
    assert!(Patch::parse(&p).is_err());
    let mut p = g.patch.clone();
    p[head::TABLE_START + 12] &= !0x40;
    assert!(Patch::parse(&p).is_err());
    // A byte of OLD changed: every applier reports the wrong OLD (whether
    // the section, a chunk or nothing failed first), and the file appliers
    // leave OUT as it was.
    let tmp = TempDir::new("shared-old");
    let (o, pp, out) = (tmp.path("old"), tmp.path("patch"), tmp.path("out"));
    fs::write(&pp, &g.patch).unwrap();
    for at in [0, g.old.len() / 2, g.old.len() - 1] {
        let mut wrong = g.old.clone();
        wrong[at] ^= 0x20;
        let e = oxdelta::apply_bytes(&wrong, &g.patch, &crate::overwriting()).unwrap_err();
        assert!(
            matches!(e, ApplyError::WrongOld { .. }),
            "in memory, byte {at}: {e}"
        );
        fs::write(&o, &wrong).unwrap();
        fs::write(&out, b"before").unwrap();
        for streamed in [false, true] {
            let opts = crate::overwriting();
            let e = if streamed {
                oxdelta::apply_reader(&o, &g.patch[..], &out, &opts).unwrap_err()
            } else {
                oxdelta::apply_file(&o, &pp, &out, &opts).unwrap_err()
            };
            assert!(matches!(e, ApplyError::WrongOld { .. }), "byte {at}: {e}");
            assert_eq!(fs::read(&out).unwrap(), b"before");
            assert_eq!(tmp.names(), ["old", "out", "patch"]);
        }
    }
}

/// The patch with its head rebuilt from `meta` and `entries` (layout
/// independent) and the payloads of `good`.
fn rehead(good: &[u8], meta: &Metadata, entries: &[ChunkEntry]) -> Vec<u8> {
    let p = Patch::parse(good).unwrap();
    let mut out = oxdelta_format::encode_head(meta, entries, None);
    out.extend_from_slice(&good[p.head.payload_start() as usize..]);
    out
}

/// Chunk hashes are the check (docs/FORMAT.md, "Checks an applier makes"):
/// a patch whose chunks verify but whose metadata NEW hash is wrong is
/// applied to the same NEW by every path (only `check_file` reports the
/// metadata), and a corrupted chunk in the middle — payload byte or chunk
/// NEW hash — is refused by every path, OUT untouched and no temporary
/// left behind.
#[test]
fn chunk_hashes_are_the_check_on_every_path() {
    let old: Vec<u8> = (0..300_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let mut new = old.clone();
    for i in (0..new.len()).step_by(997) {
        new[i] ^= 0x5a;
    }
    new[100_000..180_000].fill(0);
    new.extend_from_slice(b"tail");
    let dopts = oxdelta::DiffOptions {
        chunk_len: Some(64 << 10),
        codec: Codec::Lz4,
        ..oxdelta::DiffOptions::default()
    };
    let good = oxdelta::diff_bytes(&old, &new, &dopts);
    let p = Patch::parse(&good).unwrap();
    let n = p.head.chunks.len();
    assert!(n >= 4, "{n} chunks");
    let mid = n / 2;

    let mut meta = p.head.meta.clone();
    meta.new_hash[0] ^= 1;
    let meta_off = rehead(&good, &meta, &p.head.chunks);
    let mut entries = p.head.chunks.clone();
    entries[mid].new_hash[5] ^= 1;
    let chunk_hash_off = rehead(&good, &p.head.meta, &entries);
    let mut payload_off = good.clone();
    let at = p.head.payload_start() + p.head.chunks[mid].payload_offset + 3;
    payload_off[at as usize] ^= 0x40;

    let tmp = TempDir::new("chunk-check");
    let (o, pp, out) = (tmp.path("old"), tmp.path("patch"), tmp.path("out"));
    fs::write(&o, &old).unwrap();
    let before = b"OUT before".to_vec();
    let opts = crate::overwriting();
    // Every apply path: NEW or an error, OUT as it was on error.
    let every_path = |patch: &[u8]| -> Vec<Result<Vec<u8>, String>> {
        fs::write(&pp, patch).unwrap();
        let mut got = Vec::new();
        got.push(oxdelta::apply_bytes(&old, patch, &opts).map_err(|e| e.to_string()));
        let mut w = Vec::new();
        got.push(
            oxdelta::apply_to_writer(&old, patch, &mut w, &opts)
                .map(|_| w)
                .map_err(|e| e.to_string()),
        );
        for streamed in [false, true] {
            fs::write(&out, &before).unwrap();
            let r = if streamed {
                oxdelta::apply_reader(&o, patch, &out, &opts).map(|_| ())
            } else {
                oxdelta::apply_file(&o, &pp, &out, &opts).map(|_| ())
            };
            let now = fs::read(&out).unwrap();
            assert_eq!(tmp.names(), ["old", "out", "patch"], "files left");
            got.push(match r {
                Ok(()) => Ok(now),
                Err(e) => {
                    assert_eq!(now, before, "OUT changed by a failed apply: {e}");
                    Err(e.to_string())
                }
            });
        }
        got
    };

    for (what, patch) in [("intact", &good), ("metadata NEW hash", &meta_off)] {
        for r in every_path(patch) {
            assert_eq!(r.as_deref(), Ok(&new[..]), "{what}");
        }
    }
    assert!(oxdelta::check_file(&o, &pp, &opts).is_err(), "check_file");
    fs::write(&pp, &good).unwrap();
    assert_eq!(
        oxdelta::check_file(&o, &pp, &opts).unwrap().new_len,
        new.len() as u64
    );
    for (what, patch) in [
        ("chunk NEW hash", &chunk_hash_off),
        ("payload byte", &payload_off),
    ] {
        for r in every_path(patch) {
            let e = r.expect_err(what);
            assert!(e.contains("hash"), "{what}: {e}");
        }
        assert!(oxdelta::check_file(&o, &pp, &opts).is_err(), "{what}");
    }
}

/// File applies hash OLD while they rebuild NEW into the temporary file. An
/// OLD of the right length but the wrong hash is refused as such whether
/// the rebuild would fail (a byte the chunks read) or succeed (a byte no
/// chunk reads), OUT is untouched and no temporary remains.
#[test]
fn wrong_old_of_right_length_is_refused_by_file_applies() {
    let base: Vec<u8> = (0..400_000u32)
        .map(|i| (i.wrapping_mul(2_246_822_519) >> 11) as u8)
        .collect();
    let mut old = base.clone();
    // A tail NEW never uses.
    old.extend((0..60_000u32).map(|i| (i.wrapping_mul(3_266_489_917) >> 7) as u8));
    let mut new = base.clone();
    for i in (0..new.len()).step_by(1013) {
        new[i] = new[i].wrapping_add(7);
    }
    let dopts = oxdelta::DiffOptions {
        chunk_len: Some(64 << 10),
        ..oxdelta::DiffOptions::default()
    };
    let patch = oxdelta::diff_bytes(&old, &new, &dopts);
    let p = Patch::parse(&patch).unwrap();
    let read_by_chunks = |at: u64| {
        p.head
            .chunks
            .iter()
            .any(|e| e.old_ranges.iter().any(|r| r.0 <= at && at < r.0 + r.1))
    };
    let unread = (400_000..old.len() as u64)
        .find(|&at| !read_by_chunks(at))
        .expect("some byte of the tail is read by no chunk");
    let tmp = TempDir::new("wrong-old");
    let (o, pp, out) = (tmp.path("old"), tmp.path("patch"), tmp.path("out"));
    fs::write(&pp, &patch).unwrap();
    fs::write(&o, &old).unwrap();
    fs::write(&out, &new).unwrap();
    let opts = crate::overwriting();
    oxdelta::apply_file(&o, &pp, &out, &opts).unwrap();
    assert!(fs::read(&out).unwrap() == new);
    for at in [10u64, 200_000, unread] {
        let mut wrong = old.clone();
        wrong[at as usize] ^= 0x10;
        fs::write(&o, &wrong).unwrap();
        fs::write(&out, b"before").unwrap();
        for streamed in [false, true] {
            let e = if streamed {
                oxdelta::apply_reader(&o, &patch[..], &out, &opts).unwrap_err()
            } else {
                oxdelta::apply_file(&o, &pp, &out, &opts).unwrap_err()
            };
            assert!(
                matches!(e, ApplyError::WrongOld { .. }),
                "byte {at}, streamed {streamed}: {e}"
            );
            assert_eq!(fs::read(&out).unwrap(), b"before");
            assert_eq!(tmp.names(), ["old", "out", "patch"]);
        }
        let e = oxdelta::apply_bytes(&wrong, &patch, &opts).unwrap_err();
        assert!(
            matches!(e, ApplyError::WrongOld { .. }),
            "in memory, byte {at}: {e}"
        );
    }
}

/// `is_zero_chunk` (the appliers' shortcut for chunks of zeros) says true
/// only for chunks that `apply_chunk` rebuilds to zeros, and false for a
/// zero chunk whose NEW hash was tampered with, which every path refuses.
#[test]
fn zero_chunks_are_known_without_rebuilding() {
    let old: Vec<u8> = (0..400_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 9) as u8)
        .collect();
    let mut new = old.clone();
    new[64 << 10..256 << 10].fill(0);
    new[300_000] ^= 1;
    let dopts = oxdelta::DiffOptions {
        chunk_len: Some(64 << 10),
        ..oxdelta::DiffOptions::default()
    };
    let patch = oxdelta::diff_bytes(&old, &new, &dopts);
    let p = Patch::parse(&patch).unwrap();
    let mut zero = Vec::new();
    for (i, e) in p.head.chunks.iter().enumerate() {
        let z = oxdelta_format::is_zero_chunk(e, p.payload(i), old.len() as u64);
        let mut out = vec![0x5a; e.new_len as usize];
        oxdelta_format::apply_chunk(e, p.payload(i), &old, &mut out, false).unwrap();
        if z {
            assert!(out.iter().all(|&b| b == 0), "chunk {i}");
            zero.push(i);
        }
        // OLD's length is part of the check.
        assert!(!oxdelta_format::is_zero_chunk(e, p.payload(i), u64::MAX));
    }
    assert_eq!(zero.len(), 3, "{zero:?}");
    let k = zero[1];
    let mut entries = p.head.chunks.clone();
    entries[k].new_hash[0] ^= 1;
    let bad = rehead(&patch, &p.head.meta, &entries);
    let q = Patch::parse(&bad).unwrap();
    assert!(!oxdelta_format::is_zero_chunk(
        &q.head.chunks[k],
        q.payload(k),
        old.len() as u64
    ));
    let opts = crate::overwriting();
    assert!(oxdelta::apply_bytes(&old, &bad, &opts).is_err());
    let tmp = TempDir::new("zero-chunk");
    let (o, pp, out) = (tmp.path("old"), tmp.path("patch"), tmp.path("out"));
    fs::write(&o, &old).unwrap();
    fs::write(&pp, &bad).unwrap();
    assert!(oxdelta::apply_file(&o, &pp, &out, &opts).is_err());
    assert!(oxdelta::apply_reader(&o, &bad[..], &out, &opts).is_err());
    assert!(!out.exists());
    fs::write(&pp, &patch).unwrap();
    oxdelta::apply_file(&o, &pp, &out, &opts).unwrap();
    assert!(fs::read(&out).unwrap() == new);
}

/// Version 6's ADD mode `arm64` (id 4): refused in an earlier version,
/// with the operand split, and past it (id 5); accepted on a chunk whose
/// stream was not made for it, where the chunk hash refuses what it
/// rebuilds, without a panic.
#[test]
fn arm64_mode_fields_are_checked() {
    let g = golden::get("v6/arm64.zstd.oxd");
    let h = Patch::parse(&g.patch).unwrap().head;
    let mut arm = None;
    let mut at = head::TABLE_START;
    for e in &h.chunks {
        if e.add_mode == oxdelta_format::AddMode::Arm64 {
            arm.get_or_insert(at);
        }
        at += head::ENTRY_FIXED_LEN + head::RANGE_LEN * e.old_ranges.len();
    }
    let at = arm.expect("a chunk in the arm64 mode");
    let refused = |p: &[u8], want: &str| {
        let e = Patch::parse(p).expect_err(want).to_string();
        assert!(e.contains(want), "{want}: {e}");
        assert!(oxdelta::apply_bytes(&g.old, p, &crate::overwriting()).is_err());
    };
    let mut p = g.patch.clone();
    p[8..10].copy_from_slice(&5u16.to_le_bytes());
    refused(&p, "ADD mode");
    let mut p = g.patch.clone();
    p[at + 13] |= 0x08;
    refused(&p, "no operand split with an operand ADD mode");
    let mut p = g.patch.clone();
    p[at + 13] = (p[at + 13] & 0x0f) | 0x50;
    refused(&p, "ADD mode");
    // The patch is unsigned, so it parses with another mode; the chunk
    // then rebuilds other bytes, which its hash refuses.
    for mode in [0x00, 0x10, 0x20, 0x30] {
        let mut p = g.patch.clone();
        p[at + 13] = (p[at + 13] & 0x0f) | mode;
        assert!(Patch::parse(&p).is_ok());
        assert!(oxdelta::apply_bytes(&g.old, &p, &crate::overwriting()).is_err());
    }
}

/// Version 8's ADD mode `wasm` (id 5): refused in an earlier version, with
/// the operand split, and past it (id 6); accepted on a chunk whose stream
/// was not made for it, where the chunk hash refuses what it rebuilds,
/// without a panic.
#[test]
fn wasm_mode_fields_are_checked() {
    let g = golden::get("v8/wasm.zstd.oxd");
    let h = Patch::parse(&g.patch).unwrap().head;
    let mut wasm = None;
    let mut at = head::TABLE_START;
    for e in &h.chunks {
        if e.add_mode == oxdelta_format::AddMode::Wasm {
            wasm.get_or_insert(at);
        }
        at += head::ENTRY_FIXED_LEN + head::RANGE_LEN * e.old_ranges.len();
    }
    let at = wasm.expect("a chunk in the wasm mode");
    let refused = |p: &[u8], want: &str| {
        let e = Patch::parse(p).expect_err(want).to_string();
        assert!(e.contains(want), "{want}: {e}");
        assert!(oxdelta::apply_bytes(&g.old, p, &crate::overwriting()).is_err());
    };
    let mut p = g.patch.clone();
    p[8..10].copy_from_slice(&7u16.to_le_bytes());
    refused(&p, "ADD mode");
    let mut p = g.patch.clone();
    p[at + 13] |= 0x08;
    refused(&p, "no operand split with an operand ADD mode");
    let mut p = g.patch.clone();
    p[at + 13] = (p[at + 13] & 0x0f) | 0x60;
    refused(&p, "ADD mode");
    for mode in [0x00, 0x10, 0x20, 0x30, 0x40] {
        let mut p = g.patch.clone();
        p[at + 13] = (p[at + 13] & 0x0f) | mode;
        assert!(Patch::parse(&p).is_ok());
        assert!(oxdelta::apply_bytes(&g.old, &p, &crate::overwriting()).is_err());
    }
}

/// A patch of 100 literal bytes, then a zero chunk (format version 9) of
/// `zeros` bytes, then 100 literal bytes again.
fn zero_chunk_patch(zeros: u32) -> (Vec<u8>, Vec<u8>) {
    let lit: Vec<u8> = (0..100u8).map(|i| i.wrapping_mul(37) | 1).collect();
    let chunk = |at: u64| {
        let ctrl = insert_ctrl(100);
        let streams = oxdelta_format::Streams {
            ctrl,
            lit: lit.clone(),
            ..Default::default()
        };
        let coding = oxdelta_format::ChunkCoding::plain(Codec::None);
        oxdelta_format::encode_chunk_as(&[], &streams, &coding, vec![], at, &lit)
    };
    let new_len = 200 + u64::from(zeros);
    let chunks = vec![
        chunk(0),
        EncodedChunk::zeros(100, zeros),
        chunk(100 + u64::from(zeros)),
    ];
    let meta = Metadata {
        old_len: 0,
        old_hash: *blake3::hash(b"").as_bytes(),
        new_len,
        new_hash: [0; 32],
        engine: Engine::Unknown,
        flags: 0,
    };
    let mut new = lit.clone();
    if u64::from(zeros) < 1 << 24 {
        new.resize(100 + zeros as usize, 0);
        new.extend_from_slice(&lit);
    }
    (
        fixed_layout(&oxdelta_format::assemble(&meta, chunks, None)),
        new,
    )
}

/// `patch` (any version) with its head in the fixed layout of versions 1
/// to 10, at the lowest version its features need, and an unsigned
/// signature block: what those versions' rules are tested on.
fn fixed_layout(patch: &[u8]) -> Vec<u8> {
    let p = Patch::parse(patch).unwrap();
    let h = &p.head;
    let mut out = head::Head::encode_fixed_with(&h.meta, &h.chunks, &h.shared);
    out.extend_from_slice(&oxdelta_format::SignatureBlock::Unsigned.to_bytes());
    out.extend_from_slice(&patch[h.payload_start() as usize..]);
    out
}

/// Zero chunks (format version 9): a chunk of zeros up to 2^32 − 1 bytes
/// with no payload. Each of its fixed fields is checked (a zero chunk
/// whose hashes, lengths or ranges say anything is refused), it exists
/// from version 9 only and never in an in-place patch, ordinary chunks
/// keep their 8 MiB limit, and the largest chunk length counts only
/// chunks that are rebuilt.
#[test]
fn zero_chunk_fields_are_checked() {
    // Entry 1 (the zero chunk) starts after entry 0's 104 bytes.
    const E: usize = head::TABLE_START + head::ENTRY_FIXED_LEN;
    let opts = crate::overwriting();
    let (good, new) = zero_chunk_patch(3 << 20);
    let p = Patch::parse(&good).unwrap();
    assert_eq!(p.head.version, 9);
    assert!(p.head.chunks[1].zero && p.payload(1).is_empty());
    assert_eq!(p.head.max_chunk_new_len, 100, "zero chunks are not rebuilt");
    assert_eq!(oxdelta::apply_bytes(&[], &good, &opts).unwrap(), new);
    oxdelta::verify_bytes(&good, None).unwrap();
    // Every byte of the entry past its NEW range is fixed: codec 0x80,
    // then zeros (diff coding, range count, lengths, both hashes).
    for at in E + 12..E + head::ENTRY_FIXED_LEN {
        for bit in [1u8, 0x40, 0x80] {
            let mut bad = good.clone();
            bad[at] ^= bit;
            assert!(Patch::parse(&bad).is_err(), "byte {} bit {bit:#x}", at - E);
            assert!(oxdelta::apply_bytes(&[], &bad, &opts).is_err());
        }
    }
    // Its length: not 0; up to 2^32 − 1 (a patch naming 4 GiB of NEW is
    // then refused in memory before anything is allocated).
    let (max, _) = zero_chunk_patch(u32::MAX);
    let q = Patch::parse(&max).unwrap();
    assert_eq!(q.head.chunks[1].new_len, u32::MAX);
    assert_eq!(q.head.meta.new_len, 200 + u64::from(u32::MAX));
    assert!(oxdelta::apply_bytes(&[], &max, &opts).is_err());
    let small = ApplyOptions {
        max_in_memory_len: 1 << 20,
        ..crate::overwriting()
    };
    assert!(oxdelta::apply_bytes(&[], &max, &small).is_err());
    let mut bad = good.clone();
    bad[E + 8..E + 12].copy_from_slice(&0u32.to_le_bytes());
    assert!(Patch::parse(&bad).is_err());
    // The same entry in a version-8 patch: bit 7 of the codec byte.
    let mut v8 = good.clone();
    v8[8..10].copy_from_slice(&8u16.to_le_bytes());
    assert!(Patch::parse(&v8).is_err());
    // An ordinary chunk past 8 MiB stays refused in version 9: entry 0
    // claims 8 MiB + 1 (and the tiling moves with it, so only the length
    // rule can refuse it).
    let mut long = good.clone();
    let over = oxdelta_format::limits::MAX_CHUNK_NEW_LEN + 1;
    long[head::TABLE_START + 8..head::TABLE_START + 12].copy_from_slice(&over.to_le_bytes());
    assert!(Patch::parse(&long).is_err());
    // The largest chunk length names the zero chunk: refused.
    let mut m = good.clone();
    m[112..116].copy_from_slice(&(3u32 << 20).to_le_bytes());
    assert!(Patch::parse(&m).is_err());
    // Not in an in-place patch (an in-place applier would have to write
    // gigabytes of zeros in its batches).
    let mut ip = good.clone();
    ip[10] |= head::FLAG_IN_PLACE as u8;
    let e = Patch::parse(&ip).unwrap_err().to_string();
    assert!(e.contains("no zero chunk in an in-place patch"), "{e}");
    // Fewer chunks than a NEW of 2^32 + 200 bytes needs at 2^32 − 1 each.
    let mut few = max.clone();
    few[56..64].copy_from_slice(&(u64::from(u32::MAX) * 3 + 1).to_le_bytes());
    assert!(Patch::parse(&few).is_err());
    // The file and stream appliers, check_file and the sink agree.
    let tmp = TempDir::new("zero-entry");
    let (o, pp, out) = (tmp.path("old"), tmp.path("patch"), tmp.path("out"));
    fs::write(&o, b"").unwrap();
    fs::write(&pp, &good).unwrap();
    oxdelta::apply_file(&o, &pp, &out, &opts).unwrap();
    assert!(fs::read(&out).unwrap() == new);
    oxdelta::apply_reader(&o, &good[..], &out, &opts).unwrap();
    assert!(fs::read(&out).unwrap() == new);
    let mut sunk = vec![0x5au8; new.len()];
    oxdelta::apply_to_sink(&[], &good, &mut sunk[..], &opts).unwrap();
    assert!(sunk == new);
    // Its payload is empty: a damaged payload offset of the next chunk
    // (the tiling fixed) cannot shift bytes into it; a damaged literal
    // chunk still fails its own hash.
    let mut tail = good.clone();
    let last = tail.len() - 1;
    tail[last] ^= 1;
    assert!(oxdelta::apply_bytes(&[], &tail, &opts).is_err());
}

/// Version 9's ADD mode `operands-learned` (id 6): refused in an earlier
/// version, with the operand split, and past it (id 7); accepted on a
/// chunk whose stream was not made for it, where the chunk hash refuses
/// what it rebuilds, without a panic.
#[test]
fn learned_mode_fields_are_checked() {
    let g = golden::get("v9/pe.zstd.oxd");
    let h = Patch::parse(&g.patch).unwrap().head;
    let mut learned = None;
    let mut at = head::TABLE_START;
    for e in &h.chunks {
        if e.add_mode == oxdelta_format::AddMode::OperandsLearned {
            learned.get_or_insert(at);
        }
        at += head::ENTRY_FIXED_LEN + head::RANGE_LEN * e.old_ranges.len();
    }
    let at = learned.expect("a chunk in the operands-learned mode");
    let refused = |p: &[u8], want: &str| {
        let e = Patch::parse(p).expect_err(want).to_string();
        assert!(e.contains(want), "{want}: {e}");
        assert!(oxdelta::apply_bytes(&g.old, p, &crate::overwriting()).is_err());
    };
    let mut p = g.patch.clone();
    p[8..10].copy_from_slice(&8u16.to_le_bytes());
    refused(&p, "ADD mode");
    let mut p = g.patch.clone();
    p[at + 13] |= 0x08;
    refused(&p, "no operand split with an operand ADD mode");
    let mut p = g.patch.clone();
    p[at + 13] = (p[at + 13] & 0x0f) | 0x70;
    refused(&p, "ADD mode");
    for mode in [0x00, 0x10, 0x20, 0x30, 0x40, 0x50] {
        let mut p = g.patch.clone();
        p[at + 13] = (p[at + 13] & 0x0f) | mode;
        assert!(Patch::parse(&p).is_ok());
        assert!(oxdelta::apply_bytes(&g.old, &p, &crate::overwriting()).is_err());
    }
}

/// Version 10's ADD mode `riscv` (id 7): refused in an earlier version,
/// with the operand split, and past the last (id 10); accepted on a chunk whose
/// stream was not made for it, where the chunk hash refuses what it
/// rebuilds, without a panic.
#[test]
fn riscv_mode_fields_are_checked() {
    let g = golden::get("v10/riscv.zstd.oxd");
    let h = Patch::parse(&g.patch).unwrap().head;
    let mut rv = None;
    let mut at = head::TABLE_START;
    for e in &h.chunks {
        if e.add_mode == oxdelta_format::AddMode::Riscv {
            rv.get_or_insert(at);
        }
        at += head::ENTRY_FIXED_LEN + head::RANGE_LEN * e.old_ranges.len();
    }
    let at = rv.expect("a chunk in the riscv mode");
    let refused = |p: &[u8], want: &str| {
        let e = Patch::parse(p).expect_err(want).to_string();
        assert!(e.contains(want), "{want}: {e}");
        assert!(oxdelta::apply_bytes(&g.old, p, &crate::overwriting()).is_err());
    };
    let mut p = g.patch.clone();
    p[8..10].copy_from_slice(&9u16.to_le_bytes());
    refused(&p, "ADD mode");
    let mut p = g.patch.clone();
    p[at + 13] |= 0x08;
    refused(&p, "no operand split with an operand ADD mode");
    let mut p = g.patch.clone();
    p[at + 13] = (p[at + 13] & 0x0f) | 0xa0;
    refused(&p, "ADD mode");
    for mode in [0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60] {
        let mut p = g.patch.clone();
        p[at + 13] = (p[at + 13] & 0x0f) | mode;
        assert!(Patch::parse(&p).is_ok());
        assert!(oxdelta::apply_bytes(&g.old, &p, &crate::overwriting()).is_err());
    }
}

/// Version 10's ADD mode `armv7` (id 8): refused in an earlier version,
/// with the operand split, and past the last (id 10); accepted on a chunk whose
/// stream was not made for it, where the chunk hash refuses what it
/// rebuilds, without a panic.
#[test]
fn armv7_mode_fields_are_checked() {
    let g = golden::get("v10/armv7.zstd.oxd");
    let h = Patch::parse(&g.patch).unwrap().head;
    let mut a7 = None;
    let mut at = head::TABLE_START;
    for e in &h.chunks {
        if e.add_mode == oxdelta_format::AddMode::Armv7 {
            a7.get_or_insert(at);
        }
        at += head::ENTRY_FIXED_LEN + head::RANGE_LEN * e.old_ranges.len();
    }
    let at = a7.expect("a chunk in the armv7 mode");
    let refused = |p: &[u8], want: &str| {
        let e = Patch::parse(p).expect_err(want).to_string();
        assert!(e.contains(want), "{want}: {e}");
        assert!(oxdelta::apply_bytes(&g.old, p, &crate::overwriting()).is_err());
    };
    let mut p = g.patch.clone();
    p[8..10].copy_from_slice(&9u16.to_le_bytes());
    refused(&p, "ADD mode");
    let mut p = g.patch.clone();
    p[at + 13] |= 0x08;
    refused(&p, "no operand split with an operand ADD mode");
    let mut p = g.patch.clone();
    p[at + 13] = (p[at + 13] & 0x0f) | 0xa0;
    refused(&p, "ADD mode");
    for mode in [0x00, 0x10, 0x40, 0x60, 0x70] {
        let mut p = g.patch.clone();
        p[at + 13] = (p[at + 13] & 0x0f) | mode;
        assert!(Patch::parse(&p).is_ok());
        assert!(oxdelta::apply_bytes(&g.old, &p, &crate::overwriting()).is_err());
    }
}

/// Version 11's ADD mode `thumb2` (id 9): refused in an earlier version,
/// with the operand split, and past it (id 10); accepted on a chunk whose
/// stream was not made for it, where the chunk hash refuses what it
/// rebuilds, without a panic.
#[test]
fn thumb2_mode_fields_are_checked() {
    let g = golden::get("v11/thumb2.zstd.oxd");
    let p = Patch::parse(&g.patch).unwrap();
    let h = &p.head;
    let i = h
        .chunks
        .iter()
        .position(|e| e.add_mode == oxdelta_format::AddMode::Thumb2)
        .expect("a chunk in the thumb2 mode");
    // Where its diff coding byte is in the compact head: the one byte
    // that changes with its ADD mode.
    let mut other = h.chunks.clone();
    other[i].add_mode = oxdelta_format::AddMode::Armv7;
    let moved = oxdelta_format::encode_head_with(&h.meta, &other, &h.shared, None);
    let diff: Vec<usize> = (0..moved.len())
        .filter(|&k| moved[k] != g.patch[k])
        .collect();
    assert_eq!(diff.len(), 1);
    let at = diff[0];
    assert_eq!(g.patch[at] >> 4, 9);
    let refused = |p: &[u8], want: &str| {
        let e = Patch::parse(p).expect_err(want).to_string();
        assert!(e.contains(want), "{want}: {e}");
        assert!(oxdelta::apply_bytes(&g.old, p, &crate::overwriting()).is_err());
    };
    // In a version-10 patch (the fixed layout, every thumb2 chunk written
    // as armv7's, then the chunk's byte 13 set to mode 9).
    for e in &mut other {
        if e.add_mode == oxdelta_format::AddMode::Thumb2 {
            e.add_mode = oxdelta_format::AddMode::Armv7;
        }
    }
    let mut v10 = head::Head::encode_fixed_with(&h.meta, &other, &h.shared);
    assert_eq!(u16::from_le_bytes([v10[8], v10[9]]), 10);
    let entry = head::TABLE_START
        + other[..i]
            .iter()
            .map(|e| head::ENTRY_FIXED_LEN + head::RANGE_LEN * e.old_ranges.len())
            .sum::<usize>();
    assert_eq!(v10[entry + 13] >> 4, 8);
    v10[entry + 13] = (v10[entry + 13] & 0x0f) | 0x90;
    v10.extend_from_slice(&oxdelta_format::SignatureBlock::Unsigned.to_bytes());
    v10.extend_from_slice(&g.patch[h.payload_start() as usize..]);
    refused(&v10, "ADD mode");
    let mut p = g.patch.clone();
    p[at] |= 0x08;
    refused(&p, "no operand split with an operand ADD mode");
    let mut p = g.patch.clone();
    p[at] = (p[at] & 0x0f) | 0xa0;
    refused(&p, "ADD mode");
    for mode in [0x00, 0x10, 0x40, 0x70, 0x80] {
        let mut p = g.patch.clone();
        p[at] = (p[at] & 0x0f) | mode;
        assert!(Patch::parse(&p).is_ok());
        assert!(oxdelta::apply_bytes(&g.old, &p, &crate::overwriting()).is_err());
    }
}
