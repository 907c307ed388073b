//! Golden patches: patches made by every released format version's encoder
//! must keep applying.
//!
//! `testdata/golden/vN/` holds small OLD/NEW pairs (`PAIR.old`, `PAIR.new`)
//! and patches named `PAIR.CODEC[.signed].oxd` of format version N, signed
//! ones with the committed *test* key `test.key` / `test.pub`. They were
//! written by [`regenerate_golden`] (`cargo test -p oxdelta -- --ignored
//! regenerate_golden`, which writes the current version's directory); once
//! committed they are never rewritten: a later version that cannot apply
//! them has broken the format.

use std::fs;
use std::path::{Path, PathBuf};

use oxdelta::oxdelta_format::head::COMPACT_VERSION;
use oxdelta::{
    AddMode, ApplyOptions, Codec, DiffFilter, DiffOptions, Patch, PublicKey, SecretKey,
    SignatureBlock,
};

/// The golden directory of format version `version`.
pub fn version_dir(version: u16) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../testdata/golden/v{version}"))
}

/// Version 1's directory, which also holds the test key.
pub fn dir() -> PathBuf {
    version_dir(1)
}

/// One golden patch and what it must rebuild.
pub struct Golden {
    /// `FILE` for version 1, `vN/FILE` for later versions.
    pub name: String,
    /// The format version of the directory it is in.
    pub version: u16,
    pub codec: &'static str,
    pub signed: bool,
    /// Made by the streaming engine (`NAME.CODEC.stream.oxd`, version 8 on).
    pub stream: bool,
    /// An in-place patch (`NAME.CODEC.inplace.oxd`, from version 8).
    pub in_place: bool,
    pub patch: Vec<u8>,
    pub old: Vec<u8>,
    pub new: Vec<u8>,
}

pub fn test_public_key() -> PublicKey {
    PublicKey::from_text(&fs::read_to_string(dir().join("test.pub")).unwrap()).unwrap()
}

pub fn test_secret_key() -> SecretKey {
    SecretKey::from_text(&fs::read_to_string(dir().join("test.key")).unwrap()).unwrap()
}

pub fn all() -> Vec<Golden> {
    (1..=oxdelta::FORMAT_VERSION)
        .flat_map(|v| in_version(v).into_iter())
        .collect()
}

fn in_version(version: u16) -> Vec<Golden> {
    let d = version_dir(version);
    let mut names: Vec<String> = fs::read_dir(&d)
        .unwrap_or_else(|e| panic!("{}: {e}", d.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".oxd"))
        .collect();
    names.sort();
    names
        .into_iter()
        .map(|name| {
            let parts: Vec<&str> = name.trim_end_matches(".oxd").split('.').collect();
            let codec = match parts[1] {
                "none" => "none",
                "lz4" => "lz4",
                "zstd" => "zstd",
                "lzma2" => "lzma2",
                c => panic!("{name}: unknown codec {c} in the file name"),
            };
            let read = |f: String| fs::read(d.join(&f)).unwrap_or_else(|e| panic!("{f}: {e}"));
            Golden {
                codec,
                version,
                signed: parts.get(2) == Some(&"signed"),
                stream: parts.get(2) == Some(&"stream"),
                in_place: parts.get(2) == Some(&"inplace"),
                patch: read(name.clone()),
                old: read(format!("{}.old", parts[0])),
                new: read(format!("{}.new", parts[0])),
                name: if version == 1 {
                    name
                } else {
                    format!("v{version}/{name}")
                },
            }
        })
        .collect()
}

pub fn get(name: &str) -> Golden {
    all()
        .into_iter()
        .find(|g| g.name == name)
        .unwrap_or_else(|| panic!("no golden patch {name}"))
}

/// Every golden patch applies, in memory, to a file and from a stream, to
/// exactly NEW, and verifies.
#[test]
fn golden_patches_apply() {
    let all = all();
    for (v, want) in [
        (1, 7),
        (2, 9),
        (3, 1),
        (4, 1),
        (5, 7),
        (6, 1),
        (7, 3),
        (8, 10),
        (9, 1),
        (10, 8),
        (11, 61),
    ] {
        let n = all.iter().filter(|g| g.version == v).count();
        assert!(n >= want, "golden v{v} patches are missing: found {n}");
    }
    let tmp = crate::hostile::TempDir::new("golden");
    for g in &all {
        let got = oxdelta::apply_bytes(&g.old, &g.patch, &crate::overwriting())
            .unwrap_or_else(|e| panic!("{}: {e}", g.name));
        assert!(got == g.new, "{}: apply_bytes did not rebuild NEW", g.name);
        let (o, p, n) = (tmp.path("old"), tmp.path("patch"), tmp.path("new"));
        fs::write(&o, &g.old).unwrap();
        fs::write(&p, &g.patch).unwrap();
        let r = oxdelta::apply_file(&o, &p, &n, &crate::overwriting())
            .unwrap_or_else(|e| panic!("{}: {e}", g.name));
        assert_eq!(r.new_len, g.new.len() as u64);
        assert_eq!(r.signed, g.signed, "{}", g.name);
        assert!(
            fs::read(&n).unwrap() == g.new,
            "{}: apply_file did not rebuild NEW",
            g.name
        );
        let streamed = tmp.path("streamed");
        oxdelta::apply_reader(&o, &g.patch[..], &streamed, &crate::overwriting())
            .unwrap_or_else(|e| panic!("{}: {e}", g.name));
        assert!(
            fs::read(&streamed).unwrap() == g.new,
            "{}: apply_reader",
            g.name
        );
        oxdelta::verify_bytes(&g.patch, None).unwrap_or_else(|e| panic!("{}: {e}", g.name));
        if g.in_place {
            let t = tmp.path("target");
            fs::write(&t, &g.old).unwrap();
            let r = oxdelta::apply_in_place(&t, &p, &oxdelta::InPlaceApplyOptions::default())
                .unwrap_or_else(|e| panic!("{}: in place: {e}", g.name));
            assert_eq!(r.outcome, oxdelta::InPlaceOutcome::Patched, "{}", g.name);
            assert!(fs::read(&t).unwrap() == g.new, "{}: in place", g.name);
        }
    }
}

/// The fields `oxdelta info` shows parse and describe the files.
#[test]
fn golden_info_fields() {
    for g in all() {
        let p = Patch::parse(&g.patch).unwrap_or_else(|e| panic!("{}: {e}", g.name));
        let h = &p.head;
        assert_eq!(h.version, g.version, "{}", g.name);
        if g.stream {
            stream_golden_fields(&g, h);
            continue;
        }
        if g.version < COMPACT_VERSION {
            fixed_layout_features(&g, h);
        } else {
            compact_features(&g, h);
        }
        let lzma2 = h.shared.lzma2 || h.chunks.iter().any(|c| c.codec == Codec::Lzma2);
        assert_eq!(h.meta.old_len, g.old.len() as u64, "{}", g.name);
        assert_eq!(h.meta.new_len, g.new.len() as u64, "{}", g.name);
        assert_eq!(
            &h.meta.old_hash,
            blake3::hash(&g.old).as_bytes(),
            "{}",
            g.name
        );
        assert_eq!(
            &h.meta.new_hash,
            blake3::hash(&g.new).as_bytes(),
            "{}",
            g.name
        );
        assert_eq!(h.meta.engine.name(), "suffix-array", "{}", g.name);
        assert!(
            h.chunks.len() > 1,
            "{}: golden patches have several chunks",
            g.name
        );
        let max = h.chunks.iter().map(|c| c.new_len).max().unwrap();
        assert_eq!(h.max_chunk_new_len, max, "{}", g.name);
        assert_eq!(h.patch_len(), g.patch.len() as u64, "{}", g.name);
        for c in &h.chunks {
            let name = c.codec.name();
            // lzma2 patches keep zstd where LZMA2 does not pay.
            assert!(
                name == g.codec || name == "none" || (g.codec, name) == ("lzma2", "zstd"),
                "{}: chunk codec {name}",
                g.name
            );
        }
        assert!(
            h.chunks.iter().any(|c| c.codec.name() == g.codec) || (g.codec == "lzma2" && lzma2),
            "{}: no chunk uses {}",
            g.name,
            g.codec
        );
        match (g.signed, p.signature.public_key()) {
            (true, Some(k)) => assert_eq!(k, test_public_key(), "{}", g.name),
            (false, None) => {}
            (s, k) => panic!("{}: signed {s} but key {k:?}", g.name),
        }
    }
}

/// What the golden patches of versions 1 to 10 show: each version's
/// directory holds the patches that needed its features, so each feature
/// appears exactly in the versions and pairs made for it.
fn fixed_layout_features(g: &Golden, h: &oxdelta::oxdelta_format::Head) {
    // Version 1 has no diff coding choices; every later golden patch
    // uses one (version 5: the shared section).
    assert_eq!(
        h.chunks.iter().any(|c| c.diff_filter != DiffFilter::None
            || c.add_mode != AddMode::Bytes
            || c.operand_split
            || c.ctrl_split
            || c.lit_x86
            || c.shared),
        g.version >= 2,
        "{}",
        g.name
    );
    assert_eq!(
        h.chunks.iter().any(|c| c.add_mode == AddMode::Arm64),
        g.version == 6 || (g.version > 6 && g.name.contains("arm64")),
        "{}: version 6 is the arm64 mode",
        g.name
    );
    // Version 9's ADD mode operands-learned: in the PE-like pair's
    // patches, and only in version 9.
    let learned = h
        .chunks
        .iter()
        .any(|c| c.add_mode == AddMode::OperandsLearned);
    assert!(
        (learned || !g.name.starts_with("v9/pe.")) && (!learned || g.version >= 9),
        "{}: version 9's ADD mode operands-learned",
        g.name
    );
    // Version 10's ADD mode riscv: in the RISC-V-like pair's patches.
    assert_eq!(
        h.chunks.iter().any(|c| c.add_mode == AddMode::Riscv),
        g.name.contains("riscv"),
        "{}: version 10's ADD mode riscv",
        g.name
    );
    assert!(!g.name.contains("riscv") || g.version >= 10, "{}", g.name);
    // Version 10's ADD mode armv7: in the A32-like pair's patches.
    assert_eq!(
        h.chunks.iter().any(|c| c.add_mode == AddMode::Armv7),
        g.name.contains("armv7"),
        "{}: version 10's ADD mode armv7",
        g.name
    );
    // Version 11's ADD mode thumb2: only in version 11 (below).
    assert!(
        !h.chunks.iter().any(|c| c.add_mode == AddMode::Thumb2),
        "{}",
        g.name
    );
    assert_eq!(
        h.chunks.iter().any(|c| c.add_mode == AddMode::Wasm),
        g.name.contains("wasm"),
        "{}: version 8's ADD mode wasm",
        g.name
    );
    // Version 7 is the context margin or LZMA2 (in a chunk or in the
    // shared section).
    let lzma2 = h.shared.lzma2 || h.chunks.iter().any(|c| c.codec == Codec::Lzma2);
    let v7 = h.shared.margin != 0 || lzma2;
    assert!(
        (v7 || g.version != 7) && (!v7 || g.version >= 7),
        "{}: version 7 is the context margin or LZMA2",
        g.name
    );
    // Version 9 is a shared block past 4 MiB (the big pair's).
    let wide = [h.shared.ctrl.raw, h.shared.lit.raw]
        .iter()
        .any(|&r| u64::from(r) > oxdelta::oxdelta_format::limits::MAX_SHARED_BLOCK);
    assert_eq!(wide, g.name.contains("bigtext"), "{}", g.name);
    assert!(!wide || g.version >= 9, "{}", g.name);
    // Version 8 is the shared section in an in-place patch (every
    // in-place golden patch is one).
    assert_eq!(h.is_in_place(), g.in_place, "{}", g.name);
    if g.in_place {
        assert!(h.shared.is_present() && g.version >= 8, "{}", g.name);
    }
    assert_eq!(lzma2, g.codec == "lzma2", "{}", g.name);
    // The shared section is zstd's (version 6 also has lz4 patches);
    // lzma2 patches share where it pays, and so do those of the
    // PE-like pair (version 9), whose literals are random bytes.
    let shares = h.shared.is_present();
    if g.codec != "lzma2" && !g.name.starts_with("v9/pe.") {
        assert_eq!(shares, g.version >= 5 && g.codec == "zstd", "{}", g.name);
    }
    assert_eq!(
        h.chunks.iter().all(|c| c.shared),
        shares,
        "{}: the differ shares every chunk or none",
        g.name
    );
}

/// What the golden patches of version 11 show: every patch is written at
/// version 11 (its compact head), so each feature appears in the pairs
/// made for it (where the codec lets the differ choose it), never in
/// others, and the shared section and LZMA2 as in the earlier versions.
fn compact_features(g: &Golden, h: &oxdelta::oxdelta_format::Head) {
    let mode = |m: AddMode| h.chunks.iter().any(|c| c.add_mode == m);
    for (m, pair) in [
        (AddMode::Arm64, "arm64"),
        (AddMode::Wasm, "wasm"),
        (AddMode::Riscv, "riscv"),
        (AddMode::Armv7, "armv7"),
        (AddMode::Thumb2, "thumb2"),
    ] {
        assert!(!mode(m) || g.name.contains(pair), "{}: {m:?}", g.name);
        if g.codec == "zstd" {
            assert!(mode(m) || !g.name.contains(pair), "{}: no {m:?}", g.name);
        }
    }
    let lzma2 = h.shared.lzma2 || h.chunks.iter().any(|c| c.codec == Codec::Lzma2);
    assert_eq!(lzma2, g.codec == "lzma2", "{}", g.name);
    assert_eq!(h.is_in_place(), g.in_place, "{}", g.name);
    let shares = h.shared.is_present();
    if g.in_place || g.name.contains("bigtext") {
        assert!(shares, "{}", g.name);
    }
    assert_eq!(
        h.chunks.iter().all(|c| c.shared),
        shares,
        "{}: the differ shares every chunk or none",
        g.name
    );
    assert!(!h.chunks.iter().any(|c| c.zero), "{}", g.name);
}

/// The fields of a streaming engine's golden patch (version 8): block-list
/// whole-file hashes, no shared section.
fn stream_golden_fields(g: &Golden, h: &oxdelta::oxdelta_format::Head) {
    use oxdelta::oxdelta_format::filehash::{FileHash, Serial, hash};
    assert_eq!(h.meta.engine.name(), "streaming", "{}", g.name);
    assert!(g.version >= 8, "{}", g.name);
    assert_eq!(h.file_hash(), FileHash::BlockList, "{}", g.name);
    assert!(!h.shared.is_present() && !h.is_in_place(), "{}", g.name);
    assert_eq!(h.meta.old_len, g.old.len() as u64, "{}", g.name);
    assert_eq!(h.meta.new_len, g.new.len() as u64, "{}", g.name);
    assert_eq!(h.meta.old_hash, hash(FileHash::BlockList, &g.old, &Serial));
    assert_eq!(h.meta.new_hash, hash(FileHash::BlockList, &g.new, &Serial));
    assert_ne!(&h.meta.old_hash, blake3::hash(&g.old).as_bytes());
    assert!(h.chunks.len() > 1, "{}", g.name);
    // Version 9: runs of zeros are zero chunks, and the largest chunk
    // length counts the others only.
    assert_eq!(
        h.chunks.iter().any(|c| c.zero),
        g.name.contains("holes"),
        "{}",
        g.name
    );
    let max = h.chunks.iter().filter(|c| !c.zero).map(|c| c.new_len).max();
    assert_eq!(h.max_chunk_new_len, max.unwrap_or(0), "{}", g.name);
}

/// Signed golden patches verify with the test key, unsigned ones are
/// refused when a key is required; signing is deterministic, so signing a
/// head again gives the block in the file.
#[test]
fn golden_signatures() {
    let key = test_secret_key();
    let trusted = test_public_key();
    assert_eq!(key.public(), trusted);
    let mut signed = 0;
    for g in all() {
        let p = Patch::parse(&g.patch).unwrap();
        let verified = oxdelta::verify_bytes(&g.patch, Some(&trusted));
        let opts = ApplyOptions {
            trusted_key: Some(trusted),
            ..crate::overwriting()
        };
        let applied = oxdelta::apply_bytes(&g.old, &g.patch, &opts);
        if g.signed {
            signed += 1;
            verified.unwrap_or_else(|e| panic!("{}: {e}", g.name));
            assert!(applied.unwrap() == g.new);
            let again = SignatureBlock::sign(p.head_bytes(), &key);
            assert_eq!(
                again, p.signature,
                "{}: signing is not deterministic",
                g.name
            );
        } else {
            assert!(
                verified.is_err() && applied.is_err(),
                "{}: an unsigned patch passed a key check",
                g.name
            );
            // Signing the same head twice gives the same bytes.
            let a = SignatureBlock::sign(p.head_bytes(), &key).to_bytes();
            let b = SignatureBlock::sign(p.head_bytes(), &key).to_bytes();
            assert_eq!(a, b);
        }
    }
    assert!(signed >= 1);
}

fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut x = seed;
    move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    }
}

/// A text-like file: words from a small vocabulary.
fn text(seed: u64, len: usize) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "delta", "patch", "chunk", "stream", "copy", "insert", "zero", "apply", "old", "new",
        "the", "of", "and", "signed", "hash", "block", "table", "head",
    ];
    let mut r = rng(seed);
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(WORDS[(r() % WORDS.len() as u64) as usize].as_bytes());
        out.push(if r() % 9 == 0 { b'\n' } else { b' ' });
    }
    out.truncate(len);
    out
}

type Pair = (&'static str, Vec<u8>, Vec<u8>);

/// The pairs: text with edits, and binary-like data with moved and
/// changed blocks, a zero run and new bytes.
fn pairs() -> Vec<Pair> {
    let old = text(1, 4000);
    let mut new = old.clone();
    new[500..520].copy_from_slice(b"EDITED EDITED EDITED");
    new.splice(1800..1800, text(3, 700));
    new.drain(3000..3200);
    let t = ("text", old, new);

    let mut r = rng(2);
    let mut old: Vec<u8> = Vec::new();
    for i in 0..6144usize {
        old.push(match (i / 256) % 3 {
            0 => (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[i % 4],
            1 => (i % 251) as u8,
            _ => r() as u8,
        });
    }
    let mut new = old.clone();
    new[1000..4000].rotate_left(700);
    for i in (100..6000).step_by(97) {
        new[i] = new[i].wrapping_add(3);
    }
    new[4200..4600].fill(0);
    new.extend((0..300).map(|_| r() as u8));
    let b = ("bin", old, new);

    // A table of 32-bit pointers into moved data, between code-like bytes:
    // the pointers shift by a constant, which ADD's Words32 mode codes as
    // one repeated word (format version 2).
    let mut old = Vec::new();
    let mut new = Vec::new();
    for i in 0..1024u32 {
        let p = 0x0040_0000 + i * 24 + (r() % 16) as u32;
        old.extend_from_slice(&p.to_le_bytes());
        new.extend_from_slice(&(p + 0x1f0).to_le_bytes());
        // The rest of a 24-byte record (like ELF's `Elf64_Rela`), unchanged.
        let filler: Vec<u8> = (0..5).flat_map(|_| (r() as u32).to_le_bytes()).collect();
        old.extend_from_slice(&filler);
        new.extend_from_slice(&filler);
    }
    let w = ("table", old, new);

    // x86-like code: short instructions and `call rel32`; in NEW half the
    // call targets moved by 0x40 bytes, so the diff bytes sit in the call
    // operands, which the operand split groups (format version 2).
    const OPS: [u8; 8] = [0x48, 0x89, 0xc3, 0x90, 0x31, 0xc0, 0x5d, 0x41];
    let (mut old, mut new) = (Vec::new(), Vec::new());
    for i in 0..1500u32 {
        for _ in 0..3 + r() % 5 {
            let b = OPS[(r() % 8) as usize];
            old.push(b);
            new.push(b);
        }
        let rel = (r() % 60_000) as u32;
        old.push(0xe8);
        new.push(0xe8);
        old.extend_from_slice(&rel.to_le_bytes());
        new.extend_from_slice(&(rel + if i % 2 == 0 { 0x40 } else { 0 }).to_le_bytes());
    }
    let c = ("code", old, new);

    // x86-like code with calls to targets inside the file; NEW inserts 200
    // bytes in the middle, and every call keeps its target, so the calls
    // that cross the insertion change their displacement: the operand
    // modes predict them from the ops (format version 3).
    let mut old = Vec::new();
    let mut calls = Vec::new();
    while old.len() < 12_000 {
        for _ in 0..2 + r() % 6 {
            old.push(OPS[(r() % 8) as usize]);
        }
        calls.push(old.len());
        old.push(0xe8);
        old.extend_from_slice(&[0; 4]);
    }
    let len = old.len();
    let targets: Vec<usize> = calls.iter().map(|_| (r() % len as u64) as usize).collect();
    let at = 6000;
    let moved = |x: usize| if x >= at { x + 200 } else { x };
    let mut new = old.clone();
    new.splice(at..at, (0..200).map(|_| r() as u8));
    for (&c, &t) in calls.iter().zip(&targets) {
        let rel = |c: usize, t: usize| (t as i64 - (c as i64 + 5)) as i32;
        old[c + 1..c + 5].copy_from_slice(&rel(c, t).to_le_bytes());
        let (nc, nt) = (moved(c), moved(t));
        new[nc + 1..nc + 5].copy_from_slice(&rel(nc, nt).to_le_bytes());
    }
    let m = ("moved", old, new);

    // New x86-like code in the middle of old code: NEW's 3,000 new bytes
    // (literals) call eight functions from everywhere, so the x86 literal
    // filter stores each call's target alike (format version 4).
    let mut old = Vec::new();
    while old.len() < 8_000 {
        old.push(OPS[(r() % 8) as usize]);
    }
    let mut code = Vec::new();
    let at = 4000usize;
    while code.len() < 3000 {
        for _ in 0..2 + r() % 6 {
            code.push(OPS[(r() % 8) as usize]);
        }
        let target = 100 + 700 * (r() % 8) as i64;
        let rel = (target - (at + code.len() + 5) as i64) as i32;
        code.push(0xe8);
        code.extend_from_slice(&rel.to_le_bytes());
    }
    let mut new = old.clone();
    new.splice(at..at, code);
    let n = ("newcode", old, new);

    // Many small edits of irregular spacing: a control stream of many
    // ops, which the split control layout codes by field (format version 4).
    let old = text(5, 16_000);
    let mut new = Vec::new();
    let mut i = 0;
    while i < old.len() {
        let step = (20 + r() % 40) as usize;
        new.extend_from_slice(&old[i..(i + step).min(old.len())]);
        new.extend((0..1 + r() % 3).map(|_| b'a' + (r() % 26) as u8));
        i += step + (r() % 3) as usize;
    }
    let e = ("edits", old, new);

    // AArch64-like code calling its functions (BL) and addressing its data
    // (ADRP + ADD or LDR), then the data; NEW inserts 64 instructions in
    // the middle of the code and 200 bytes in the middle of the data, and
    // every call and address keeps its target: the arm64 mode predicts
    // them from the ops and from each other (format version 6).
    let mut r = rng(8);
    const FILL: [u32; 6] = [
        0xAA01_03E0,
        0xF940_0BE0,
        0xD503_201F,
        0x9100_43FD,
        0xA9BF_7BFD,
        0xD65F_03C0,
    ];
    let (n_words, data_len, funcs, items) = (3000usize, 6000usize, 40u64, 30u64);
    // (kind, operand): 0 filler index, 1 BL to function f, 2 ADRP+ADD and
    // 3 ADRP+LDR to data item d (two words).
    let mut prog: Vec<(u8, usize)> = Vec::new();
    while prog.len() < n_words {
        match r() % 10 {
            0 | 1 => prog.push((1, (r() % funcs) as usize)),
            2 => prog.extend([(2, (r() % items) as usize), (9, 0)]),
            3 => prog.extend([(3, (r() % items) as usize), (9, 0)]),
            _ => prog.push((0, (r() % FILL.len() as u64) as usize)),
        }
    }
    let data: Vec<u8> = (0..data_len).map(|i| (i * 13 % 241) as u8).collect();
    let fill: Vec<u32> = (0..64).map(|_| FILL[(r() % 6) as usize]).collect();
    // Word indices of functions and data offsets of items (8-aligned).
    let func_at: Vec<usize> = (0..funcs)
        .map(|_| (r() % n_words as u64) as usize)
        .collect();
    let item_at: Vec<usize> = (0..items)
        .map(|_| (r() % (data_len as u64 / 8)) as usize * 8)
        .collect();
    let layout = |code_ins: usize, data_ins: usize| -> Vec<u8> {
        let word_pos = |i: usize| 4 * if i >= 1500 { i + code_ins } else { i };
        let code_len = 4 * (prog.len() + code_ins);
        let data_start = code_len.next_multiple_of(4096);
        let item_pos = |d: usize| {
            data_start
                + if item_at[d] >= 3000 {
                    item_at[d] + data_ins
                } else {
                    item_at[d]
                }
        };
        let mut out = vec![0u8; data_start];
        let mut put = |pos: usize, w: u32| out[pos..pos + 4].copy_from_slice(&w.to_le_bytes());
        for (i, &(kind, x)) in prog.iter().enumerate() {
            let pc = word_pos(i);
            match kind {
                0 => put(pc, FILL[x]),
                1 => {
                    let t = word_pos(func_at[x]);
                    put(
                        pc,
                        0x9400_0000 | ((t as i64 - pc as i64) / 4) as u32 & 0x3FF_FFFF,
                    );
                }
                2 | 3 => {
                    let t = item_pos(x);
                    let imm = ((t >> 12) as u32).wrapping_sub((pc >> 12) as u32) & 0x1F_FFFF;
                    put(pc, 0x9000_0000 | ((imm & 3) << 29) | ((imm >> 2) << 5) | 8);
                    let lo = (t & 0xFFF) as u32;
                    let second = if kind == 2 {
                        0x9100_0000 | (lo << 10) | (8 << 5)
                    } else {
                        0xF940_0000 | ((lo / 8) << 10) | (8 << 5) | 1
                    };
                    put(pc + 4, second);
                }
                _ => {}
            }
        }
        for (j, &w) in fill.iter().enumerate().take(code_ins) {
            put(4 * (1500 + j), w);
        }
        out.extend_from_slice(&data[..3000]);
        out.extend((0..data_ins).map(|i| (i * 7) as u8));
        out.extend_from_slice(&data[3000..]);
        out
    };
    let a = ("arm64", layout(0, 0), layout(64, 200));
    // A disk-image-like pair: data between runs of zeros, one on chunk
    // boundaries (1 KiB chunks), one across them, one at the end; the
    // streaming engine makes each run of whole zero chunks one zero chunk
    // (format version 9).
    let mut old: Vec<u8> = (0..9000).map(|_| r() as u8).collect();
    old[2048..5120].fill(0);
    let mut new = old.clone();
    new[1000..1100].copy_from_slice(&old[7000..7100]);
    new[5400..9000].fill(0);
    new.extend(std::iter::repeat_n(0, 3000));
    new[9500..9700].copy_from_slice(&old[100..300]);
    let h = ("holes", old, new);
    vec![
        t,
        b,
        w,
        c,
        m,
        n,
        e,
        a,
        wasm_pair(),
        h,
        pe_pair(),
        bigtext_pair(),
        riscv_pair(),
        armv7_pair(),
        thumb2_pair(),
    ]
}

/// Thumb-2-like code: 16-bit instructions, calls (BL) to its functions,
/// calls into A32 stubs (BLX) and long branches (B.W); NEW inserts 60
/// halfwords in the middle, and every branch keeps its target: the thumb2
/// mode predicts them from the ops and from each other (format version
/// 11).
fn thumb2_pair() -> Pair {
    let mut r = rng(13);
    // 16-bit fillers: mov, add, ldr, cmp, push, pop.
    const FILL: [u16; 6] = [0x4608, 0x3001, 0x6848, 0x2800, 0xB580, 0xBD80];
    let n = 4000usize;
    // (kind, operand): 0 a 16-bit filler, 1 BL to function f, 2 BLX to
    // stub f, 3 B.W to instruction t.
    let prog: Vec<(u8, usize)> = (0..n)
        .map(|_| match r() % 10 {
            0 | 1 => (1, (r() % 40) as usize),
            2 => (2, (r() % 8) as usize),
            3 => (3, (r() % n as u64) as usize),
            _ => (0, (r() % 6) as usize),
        })
        .collect();
    let funcs: Vec<usize> = (0..40).map(|_| (r() % n as u64) as usize).collect();
    let layout = |ins: usize| -> Vec<u8> {
        // Byte offsets of the instructions, then 8 A32 stubs of 12 bytes.
        let mut at = Vec::with_capacity(n + 1);
        let mut pos = 0usize;
        for (i, &(kind, _)) in prog.iter().enumerate() {
            if i == n / 2 {
                pos += 2 * ins;
            }
            at.push(pos);
            pos += if kind == 0 { 2 } else { 4 };
        }
        let stubs = (pos + 3) & !3;
        let mut out = vec![0u8; stubs + 8 * 12];
        for j in 0..ins {
            let p = at[n / 2] - 2 * ins + 2 * j;
            out[p..p + 2].copy_from_slice(&FILL[j % 6].to_le_bytes());
        }
        for (i, &(kind, x)) in prog.iter().enumerate() {
            let pc = at[i] as i64;
            let (op, to) = match kind {
                0 => {
                    out[at[i]..at[i] + 2].copy_from_slice(&FILL[x].to_le_bytes());
                    continue;
                }
                1 => (0xD000_F000u32, at[funcs[x]] as i64),
                2 => (0xC000_F000, (stubs + 12 * x) as i64),
                _ => (0x9000_F000, at[x] as i64),
            };
            let base = if kind == 2 { (pc + 4) & !3 } else { pc + 4 };
            let v = (to - base) as u32;
            let s = (v >> 24) & 1;
            let j1 = !((v >> 23) ^ s) & 1;
            let j2 = !((v >> 22) ^ s) & 1;
            let w =
                op | s << 10 | (v >> 12) & 0x3FF | j1 << 29 | j2 << 27 | ((v >> 1) & 0x7FF) << 16;
            out[at[i]..at[i] + 4].copy_from_slice(&w.to_le_bytes());
        }
        for x in 0..8 {
            let p = stubs + 12 * x;
            for (k, w) in [0xE28F_C600u32, 0xE28C_CA00, 0xE5BC_F000 | (x as u32 * 4)]
                .iter()
                .enumerate()
            {
                out[p + 4 * k..p + 4 * k + 4].copy_from_slice(&w.to_le_bytes());
            }
        }
        out
    };
    ("thumb2", layout(0), layout(60))
}

/// A32-like code calling its functions (BL) and branching (BNE), its other
/// words with the condition "always"; NEW inserts 64 instructions in the
/// middle, and every branch keeps its target: the armv7 mode predicts them
/// from the ops and from each other (format version 10).
fn armv7_pair() -> Pair {
    let mut r = rng(12);
    const FILL: [u32; 5] = [
        0xE1A0_0000,
        0xE590_1004,
        0xE280_0001,
        0xE350_0000,
        0xE12F_FF1E,
    ];
    let n = 3000usize;
    // (kind, operand): 0 filler, 1 BL to function f, 2 BNE to word t.
    let prog: Vec<(u8, usize)> = (0..n)
        .map(|_| match r() % 10 {
            0 | 1 => (1, (r() % 40) as usize),
            2 => (2, (r() % n as u64) as usize),
            _ => (0, (r() % 5) as usize),
        })
        .collect();
    let funcs: Vec<usize> = (0..40).map(|_| (r() % n as u64) as usize).collect();
    let fill: Vec<u32> = (0..64).map(|_| FILL[(r() % 5) as usize]).collect();
    let layout = |ins: usize| -> Vec<u8> {
        let at = |i: usize| 4 * if i >= n / 2 { i + ins } else { i };
        let mut out = vec![0u8; 4 * (n + ins)];
        let mut put = |pos: usize, w: u32| out[pos..pos + 4].copy_from_slice(&w.to_le_bytes());
        for (i, &(kind, x)) in prog.iter().enumerate() {
            let pc = at(i) as i64;
            let b = |op: u32, t: usize| op | ((at(t) as i64 - pc - 8) / 4) as u32 & 0xFF_FFFF;
            put(
                pc as usize,
                match kind {
                    0 => FILL[x],
                    1 => b(0xEB00_0000, funcs[x]),
                    _ => b(0x1A00_0000, x),
                },
            );
        }
        for (j, &w) in fill.iter().enumerate().take(ins) {
            put(4 * (n / 2 + j), w);
        }
        out
    };
    ("armv7", layout(0), layout(64))
}

/// RISC-V-like code (4-byte and 2-byte compressed instructions) calling
/// its functions (JAL) and addressing its data (AUIPC + ADDI, LD or SD),
/// then the data; NEW inserts 40 instructions in the middle of the code
/// and 200 bytes in the middle of the data, and every call and address
/// keeps its target: the riscv mode predicts them from the ops and from
/// each other (format version 10).
fn riscv_pair() -> Pair {
    let mut r = rng(11);
    // nop, add a0,a0,a0, sw zero,-4(a2), ld a1,8(a0), ret.
    const FILL: [u32; 5] = [
        0x0000_0013,
        0x00A5_0533,
        0xFE06_2E23,
        0x0085_3583,
        0x0000_8067,
    ];
    // c.li a0,0; c.ret; c.nop; c.mv a0,a1.
    const CFILL: [u16; 4] = [0x4501, 0x8082, 0x0001, 0x852E];
    let (n_ins, data_len, funcs, items) = (2500usize, 6000usize, 40u64, 30u64);
    // (kind, operand): 0 filler word, 1 compressed filler, 2 JAL to
    // function f, 3 AUIPC + ADDI, 4 AUIPC + LD, 5 AUIPC + SD to item d.
    let pick = |r: &mut dyn FnMut() -> u64| -> (u8, usize) {
        match r() % 12 {
            0 | 1 => (2, (r() % funcs) as usize),
            k @ 2..=4 => (k as u8 + 1, (r() % items) as usize),
            5..=7 => (1, (r() % 4) as usize),
            _ => (0, (r() % 5) as usize),
        }
    };
    let prog: Vec<(u8, usize)> = (0..n_ins).map(|_| pick(&mut r)).collect();
    let extra: Vec<(u8, usize)> = (0..40)
        .map(|_| match pick(&mut r) {
            (k, x) if k >= 2 => (0, x % 5),
            i => i,
        })
        .collect();
    let size = |k: u8| match k {
        1 => 2,
        3..=5 => 8,
        _ => 4,
    };
    let data: Vec<u8> = (0..data_len).map(|i| (i * 13 % 241) as u8).collect();
    let func_at: Vec<usize> = (0..funcs).map(|_| (r() % n_ins as u64) as usize).collect();
    let item_at: Vec<usize> = (0..items)
        .map(|_| (r() % (data_len as u64 / 8)) as usize * 8)
        .collect();
    let layout = |inserted: bool, data_ins: usize| -> Vec<u8> {
        let mut seq: Vec<(u8, usize, Option<usize>)> = prog
            .iter()
            .enumerate()
            .map(|(i, &(k, x))| (k, x, Some(i)))
            .collect();
        if inserted {
            let tail = seq.split_off(n_ins / 2);
            seq.extend(extra.iter().map(|&(k, x)| (k, x, None)));
            seq.extend(tail);
        }
        // Byte position of each program instruction.
        let mut pos = vec![0usize; n_ins];
        let mut at = 0;
        for &(k, _, i) in &seq {
            if let Some(i) = i {
                pos[i] = at;
            }
            at += size(k);
        }
        let data_start = at.next_multiple_of(4096);
        let item_pos =
            |d: usize| data_start + item_at[d] + if item_at[d] >= 3000 { data_ins } else { 0 };
        let mut out = Vec::with_capacity(data_start + data_len + data_ins);
        let put = |out: &mut Vec<u8>, w: u32| out.extend_from_slice(&w.to_le_bytes());
        for &(k, x, _) in &seq {
            let pc = out.len() as i64;
            match k {
                0 => put(&mut out, FILL[x]),
                1 => out.extend_from_slice(&CFILL[x].to_le_bytes()),
                2 => {
                    let v = (pos[func_at[x]] as i64 - pc) as u32;
                    let imm = ((v >> 20) & 1) << 31
                        | ((v >> 1) & 0x3FF) << 21
                        | ((v >> 11) & 1) << 20
                        | ((v >> 12) & 0xFF) << 12;
                    put(&mut out, 0x0000_00EF | imm);
                }
                _ => {
                    let d = item_pos(x) as i64 - pc;
                    let hi = (d + 0x800) >> 12;
                    let lo = (d - (hi << 12)) as u32 & 0xFFF;
                    put(&mut out, 0x0000_0297 | (hi as u32) << 12);
                    put(
                        &mut out,
                        match k {
                            3 => 0x0002_8513 | lo << 20,
                            4 => 0x0002_B583 | lo << 20,
                            _ => 0x00B2_B023 | (lo >> 5) << 25 | (lo & 31) << 7,
                        },
                    );
                }
            }
        }
        out.resize(data_start, 0);
        out.extend_from_slice(&data[..3000]);
        out.extend((0..data_ins).map(|i| (i * 7) as u8));
        out.extend_from_slice(&data[3000..]);
        out
    };
    ("riscv", layout(false, 0), layout(true, 200))
}

/// x86-like code whose calls stay put and whose RIP-relative loads read a
/// data section placed 0x300 bytes further in NEW's address space than in
/// its file (as a PE section that another alignment moved), the data
/// itself rewritten: the op map predicts none of the loads, the
/// operands-learned mode (format version 9) learns the section's shift
/// from the first.
fn pe_pair() -> Pair {
    let mut r = rng(10);
    const OPS: [u8; 6] = [0x48, 0x89, 0xc3, 0x90, 0x31, 0xc0];
    let (code, data) = (5000usize, 3000usize);
    let (mut old, mut new) = (Vec::new(), Vec::new());
    let mut loads = Vec::new();
    while old.len() < code - 16 {
        for _ in 0..2 + r() % 6 {
            let b = OPS[(r() % 6) as usize];
            old.push(b);
            new.push(b);
        }
        loads.push(old.len());
        old.extend_from_slice(&[0x8b, 0x05, 0, 0, 0, 0]);
        new.extend_from_slice(&[0x8b, 0x05, 0, 0, 0, 0]);
    }
    old.resize(code, 0x90);
    new.resize(code, 0x90);
    let n = loads.len();
    for (i, &at) in loads.iter().enumerate() {
        // Targets rise through the data section with the code.
        let disp = (code + i * (data - 8) / n) as i32 - (at + 6) as i32;
        old[at + 2..at + 6].copy_from_slice(&disp.to_le_bytes());
        new[at + 2..at + 6].copy_from_slice(&(disp + 0x300).to_le_bytes());
    }
    old.extend((0..data).map(|_| r() as u8));
    new.extend((0..data).map(|_| r() as u8));
    ("pe", old, new)
}

/// A big NEW of text (format version 10): OLD's text, then 1,500 numbered
/// copies of a paragraph OLD does not hold, 4.5 MB of literals in all, so
/// the shared literal block passes version 5's 4 MiB. Its copies compress
/// to almost nothing (in the patch and in git).
fn bigtext_pair() -> Pair {
    let old = text(11, 6000);
    let para = text(12, 3000);
    let mut new = old.clone();
    for i in 0..1500 {
        new.extend_from_slice(format!("{i:06} ").as_bytes());
        new.extend_from_slice(&para);
    }
    ("bigtext", old, new)
}

/// A WebAssembly-like module (magic and version, then code) whose
/// functions store return addresses (function index × 2^16 + block) and
/// load addresses into linear memory as `i64.const`; NEW inserts a
/// function in the middle, so later functions' return addresses grow by
/// 2^16, and 200 bytes of data, so addresses past the middle of memory
/// grow by 200: the wasm mode predicts them from each other (format
/// version 8).
fn wasm_pair() -> Pair {
    let mut r = rng(9);
    let sleb = |mut v: i64, out: &mut Vec<u8>| loop {
        let b = (v & 0x7F) as u8;
        v >>= 7;
        if (v == 0 && b & 0x40 == 0) || (v == -1 && b & 0x40 != 0) {
            out.push(b);
            break;
        }
        out.push(b | 0x80);
    };
    // (kind, operand) per instruction of 60 functions: 0 local.get, 1
    // return address of block b, 2 address of a data item, 3 i64.add.
    let funcs: Vec<Vec<(u8, i64)>> = (0..60)
        .map(|_| {
            (0..40 + r() % 40)
                .map(|_| match r() % 6 {
                    0 | 1 => (0, (r() % 8) as i64),
                    2 => (1, (r() % 30) as i64),
                    3 | 4 => (2, 0x10000 + 8 * (r() % 4096) as i64),
                    _ => (3, 0),
                })
                .collect()
        })
        .collect();
    let module = |inserted: bool| {
        let mut out = b"\0asm\x01\0\0\0".to_vec();
        for (i, f) in funcs.iter().enumerate() {
            if inserted && i == 30 {
                out.extend_from_slice(&[0x20, 0x01, 0x42, 0x2A, 0x7C, 0x21, 0x01, 0x0B]);
            }
            let index = 0x1000 + i as i64 + i64::from(inserted && i >= 30);
            for &(kind, x) in f {
                match kind {
                    0 => out.extend_from_slice(&[0x20, x as u8]),
                    1 => {
                        out.push(0x42);
                        sleb(index << 16 | x, &mut out);
                        out.extend_from_slice(&[0x37, 0x03, 0x00]);
                    }
                    2 => {
                        out.push(0x42);
                        let moved = inserted && x >= 0x10000 + 8 * 2048;
                        sleb(x + if moved { 200 } else { 0 }, &mut out);
                        out.extend_from_slice(&[0xA7, 0x29, 0x03, 0x00]);
                    }
                    _ => out.push(0x7C),
                }
            }
            out.push(0x0B);
        }
        out
    };
    ("wasm", module(false), module(true))
}

/// Writes testdata/golden/vN for the current format version N: only the
/// patches that come out in version N (a patch needing no version-N feature
/// is written in an older version and belongs in that version's set), and
/// only files that do not exist yet. Run only to add golden patches for a
/// new format version or a new pair, never to "fix" a failing test.
#[test]
#[ignore]
fn regenerate_golden() {
    let version = oxdelta::FORMAT_VERSION;
    let d = version_dir(version);
    fs::create_dir_all(&d).unwrap();
    let seed = blake3::hash(b"oxdelta golden TEST key: public, NOT SECRET, never use it");
    let key = SecretKey(*seed.as_bytes());
    if version == 1 {
        fs::write(d.join("test.key"), key.to_text()).unwrap();
        fs::write(d.join("test.pub"), key.public().to_text()).unwrap();
    }
    for (name, old, new) in pairs() {
        let mut sets = vec![
            ("none", Codec::None, None, None),
            ("lz4", Codec::Lz4, None, None),
            ("zstd", Codec::Zstd(19), None, None),
            ("lzma2", Codec::Lzma2, None, None),
        ];
        if name == "bin" || (version >= 5 && name == "text") {
            sets.push(("zstd.signed", Codec::Zstd(19), Some(key.clone()), None));
        }
        // Version 8: the streaming engine's block-list hashes.
        if version >= 8 && (name == "bin" || name == "text" || name == "holes") {
            sets.push(("zstd.stream", Codec::Zstd(19), None, Some(8 << 20)));
        }
        // Version 8: in-place patches with a shared section (a few pairs).
        if version >= 8 && matches!(name, "text" | "edits" | "code") {
            sets.push(("zstd.inplace", Codec::Zstd(19), None, None));
            sets.push(("lzma2.inplace", Codec::Lzma2, None, None));
        }
        // The big pair only where its section is shared (its patches
        // with codec none or lz4 hold its 4.5 MB of literals as they are).
        if name == "bigtext" {
            sets.retain(|s| matches!(s.0, "zstd" | "lzma2"));
        }
        // The disk-image-like pair (random data between zeros) only as
        // the streaming engine's patch, where its zero chunks are.
        if name == "holes" {
            sets.retain(|s| s.3.is_some());
        }
        let mut wrote = false;
        for (suffix, codec, key, memory) in sets {
            let opts = DiffOptions {
                codec,
                // The big pair in NEW's default chunks (a 1 KiB chunk's
                // entry costs more than its patch).
                chunk_len: (name != "bigtext").then_some(1024),
                key,
                memory,
                ..Default::default()
            };
            let patch = if suffix.ends_with(".inplace") {
                oxdelta::diff_bytes_in_place(&old, &new, &opts, &Default::default()).0
            } else {
                oxdelta::diff_bytes(&old, &new, &opts)
            };
            let file = d.join(format!("{name}.{suffix}.oxd"));
            let h = Patch::parse(&patch).unwrap().head;
            // An lzma2 patch that kept zstd everywhere is another codec's.
            let lzma2 = h.shared.lzma2 || h.chunks.iter().any(|c| c.codec == Codec::Lzma2);
            if h.version == version && (!suffix.starts_with("lzma2") || lzma2) && !file.exists() {
                fs::write(file, patch).unwrap();
                wrote = true;
            }
        }
        for (side, bytes) in [("old", &old), ("new", &new)] {
            let file = d.join(format!("{name}.{side}"));
            if wrote && !file.exists() {
                fs::write(file, bytes).unwrap();
            }
        }
    }
}
