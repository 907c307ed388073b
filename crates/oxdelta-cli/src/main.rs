//! The `oxdelta` command line: wiring and policy (threads, output, exit
//! codes) over the `oxdelta` library.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

mod progress;

use anyhow::{Context, Result, bail};
use clap::{Args, CommandFactory, Parser, Subcommand};
use oxdelta::oxdelta_format::sign::hex;
use oxdelta::{ApplyOptions, Codec, DiffOptions, PublicKey, SecretKey};

#[derive(Parser, Debug)]
#[command(
    name = "oxdelta",
    version,
    about = "Binary diff and patch for big files: small, signed, chunked patches, applied atomically.",
    after_help = "Exit codes: 0 success, 1 failure (the output is left as it was), 2 usage error.\n\n\
                  Example:\n  oxdelta diff app-1.0 app-1.1 app.patch\n  oxdelta apply app-1.0 app.patch app-1.1.rebuilt"
)]
struct Cli {
    /// Worker threads, at least 1 (default: all cores).
    #[arg(long, global = true, value_name = "N", value_parser = parse_threads)]
    threads: Option<usize>,
    /// Print nothing but errors.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    quiet: bool,
    /// Print more detail.
    #[arg(short, long, global = true)]
    verbose: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Make a patch that turns OLD into NEW.
    #[command(
        after_help = "Examples:\n  oxdelta diff old.bin new.bin update.patch\n  \
                            oxdelta diff --codec lz4 old.img new.img img.patch\n  \
                            oxdelta diff --memory 256M disk-1.img disk-2.img disk.patch\n  \
                            oxdelta diff --sign release.key old new signed.patch"
    )]
    Diff(DiffArgs),
    /// Rebuild NEW from OLD and a patch; OUT is replaced atomically.
    #[command(
        after_help = "PATCH may be '-' to read the patch from standard input as it arrives.\n\
                            An existing OUT is replaced only with -f; OUT may then be OLD itself.\n\
                            OUT is never the patch. On any failure OUT is left as it was.\n\n\
                            Examples:\n  oxdelta apply old.bin update.patch new.bin\n  \
                            curl -s URL | oxdelta apply --pubkey release.pub old.bin - new.bin"
    )]
    Apply(ApplyArgs),
    /// Check a patch's structure, hashes and signature; with --old, also
    /// rebuild NEW (writing nothing) and check it against the whole-NEW hash.
    Verify(VerifyArgs),
    /// Show what a patch contains.
    Info(InfoArgs),
    /// Make a signing key pair: NAME.key (secret, mode 0600) and NAME.pub.
    Keygen(KeygenArgs),
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to standard output.
    #[command(after_help = "Example:\n  oxdelta completions bash > /etc/bash_completion.d/oxdelta")]
    Completions(CompletionsArgs),
    /// Print the man page (roff) to standard output.
    #[command(after_help = "Example:\n  oxdelta man > oxdelta.1 && man ./oxdelta.1")]
    Man,
    /// Sign an existing patch: a signed one in place, an unsigned one rewritten with its block.
    Sign(SignArgs),
}

// The argument structs carry no doc comment of their own: the variant's
// comment above is the subcommand's help text.

#[derive(Args, Debug)]
struct DiffArgs {
    /// The file the receiver has.
    old: PathBuf,
    /// The file the receiver should end up with.
    new: PathBuf,
    /// Where to write the patch (written atomically; never OLD or NEW).
    patch: PathBuf,
    /// Replace PATCH if it exists.
    #[arg(short, long)]
    force: bool,
    /// Stream codec: none, lz4 (fastest apply), zstd or zstd:LEVEL, or lzma2
    /// (smallest: zstd:19, and LZMA2 for each chunk where it is 3% smaller,
    /// which applies slower; format version 7). Default lzma2, or with the
    /// streaming engine zstd at a level chosen per chunk (18, or a fast
    /// setting where the chunk's streams are large; from a 256M budget,
    /// LZMA2 where a chunk's streams are small and it is 3% smaller).
    #[arg(long, value_parser = Codec::parse)]
    codec: Option<Codec>,
    /// Use the streaming engine within this memory budget, e.g. 256M (for
    /// inputs larger than RAM). Default: the in-memory engine when OLD and NEW
    /// fit comfortably in available memory, else streaming with 256M.
    /// (In-place patches always use the in-memory engine.)
    #[arg(long, value_name = "SIZE", value_parser = parse_memory, conflicts_with = "in_place")]
    memory: Option<u64>,
    /// NEW bytes per chunk, e.g. 4M (default: from NEW's size, 1M to 8M).
    #[arg(long, value_name = "SIZE", value_parser = parse_chunk_size)]
    chunk_size: Option<u32>,
    /// Sign the patch with this secret key (from `oxdelta keygen`).
    #[arg(long, value_name = "KEY")]
    sign: Option<PathBuf>,
    /// Make a patch that `apply --in-place` can apply inside OLD's own storage.
    #[arg(long)]
    in_place: bool,
    /// With --in-place: most OLD bytes the applier may have to save in its journal
    /// (default 16M); conflicts beyond it become literal bytes in the patch.
    #[arg(long, value_parser = parse_size, requires = "in_place")]
    stash_limit: Option<u64>,
}

#[derive(Args, Debug)]
struct ApplyArgs {
    /// The file the patch was made from (with --in-place: the TARGET rewritten in place).
    old: PathBuf,
    /// The patch, or '-' for standard input.
    patch: PathBuf,
    /// Where to write NEW (not with --in-place; never the patch).
    #[arg(required_unless_present = "in_place")]
    out: Option<PathBuf>,
    /// Replace OUT if it exists (OUT may then be OLD itself: NEW replaces
    /// it atomically).
    #[arg(short, long, conflicts_with = "in_place")]
    force: bool,
    /// Refuse the patch unless it is signed by this public key (NAME.pub, or a
    /// file of several, one per line). Default: the trusted keys in the file
    /// named by $OXDELTA_TRUSTED_KEYS, else ~/.config/oxdelta/trusted-keys, else
    /// /etc/oxdelta/trusted-keys, if one exists; without any, a signature is
    /// checked only against the key the patch carries (which proves nothing
    /// about who made it).
    #[arg(long, value_name = "PUB")]
    pubkey: Option<PathBuf>,
    /// Rewrite TARGET (a file or a block device) from OLD to NEW inside its own
    /// storage, crash-safe: re-run the same command after a kill or power loss to resume.
    #[arg(long, conflicts_with = "out")]
    in_place: bool,
    /// With --in-place: the journal (default TARGET.oxdelta-journal; required for block devices).
    #[arg(long, value_name = "PATH", requires = "in_place")]
    journal: Option<PathBuf>,
    /// With --in-place: NEW bytes rebuilt per batch (default 32M); bounds memory and
    /// the journal's scratch area.
    #[arg(long, value_name = "SIZE", value_parser = parse_batch_size, requires = "in_place")]
    batch_size: Option<u64>,
    /// Do not flush NEW to the disk before renaming it over OUT: faster, and OUT is
    /// still replaced atomically and untouched on any error, but a power cut soon
    /// after may leave OUT partly written. For tmpfs outputs, or many applies
    /// followed by one `sync`.
    #[arg(long, conflicts_with = "in_place")]
    no_sync: bool,
}

#[derive(Args, Debug)]
struct VerifyArgs {
    /// The patch.
    patch: PathBuf,
    /// Refuse the patch unless it is signed by this public key (NAME.pub, or a
    /// file of several, one per line). Default: the trusted keys in the file
    /// named by $OXDELTA_TRUSTED_KEYS, else ~/.config/oxdelta/trusted-keys, else
    /// /etc/oxdelta/trusted-keys, if one exists; without any, a signature is
    /// checked only against the key the patch carries (which proves nothing
    /// about who made it).
    #[arg(long, value_name = "PUB")]
    pubkey: Option<PathBuf>,
    /// Also check the patch against this OLD: every chunk rebuilt and verified, and
    /// the rebuilt NEW against the metadata's NEW hash (which apply does not recompute).
    #[arg(long, value_name = "OLD")]
    old: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct InfoArgs {
    /// The patch.
    patch: PathBuf,
    /// Print JSON for scripts.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
struct KeygenArgs {
    /// Path prefix of the two files.
    name: PathBuf,
}

#[derive(Args, Debug)]
struct CompletionsArgs {
    /// The shell.
    shell: clap_complete::Shell,
}

#[derive(Args, Debug)]
struct SignArgs {
    /// Secret key (from `oxdelta keygen`).
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    /// The patch.
    patch: PathBuf,
}

/// Without `--memory`: the in-memory engine if its estimated peak (5 bytes
/// per OLD byte for the text and suffix array, 1.25 per NEW byte for NEW
/// and the patch being built) is within 80% of the memory available now,
/// else the streaming engine with its default budget (or half the available
/// memory, if that is less). Says which it chose.
fn choose_engine(old: &Path, new: &Path, out: &Out) -> Result<Option<u64>> {
    let len = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.len())
            .with_context(|| format!("reading {}", p.display()))
    };
    let (o, n) = (len(old)?, len(new)?);
    let need = 5 * o + n + n / 4;
    let avail = mem_available();
    let fits = avail.is_none_or(|a| need <= a / 5 * 4);
    if fits {
        // The summary line names the engine; the reason is detail.
        out.detail(format!(
            "engine: suffix-array (needs about {} MiB{})",
            need >> 20,
            avail.map_or(String::new(), |a| format!(", {} MiB available", a >> 20))
        ));
        return Ok(None);
    }
    let budget = oxdelta::oxdelta_diff::stream::DEFAULT_BUDGET
        .min(avail.unwrap_or(u64::MAX) / 2)
        .max(oxdelta::oxdelta_diff::stream::MIN_BUDGET);
    out.info(format!(
        "engine: streaming with a {} MiB budget (the in-memory engine would need about {} MiB, {} MiB available; set --memory to choose)",
        budget >> 20,
        need >> 20,
        avail.unwrap_or(0) >> 20
    ));
    Ok(Some(budget))
}

/// `MemAvailable` from /proc/meminfo, in bytes (None where there is none).
fn mem_available() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `--threads`: a count of at least 1.
fn parse_threads(s: &str) -> std::result::Result<usize, String> {
    match s.trim().parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{s}' is not a thread count")),
    }
}

/// `--memory`: a size of at least the streaming engine's minimum budget.
fn parse_memory(s: &str) -> std::result::Result<u64, String> {
    let m = parse_size(s)?;
    let min = oxdelta::oxdelta_diff::stream::MIN_BUDGET;
    if m < min {
        return Err(format!("must be at least {} KiB", min >> 10));
    }
    Ok(m)
}

/// `--chunk-size`: 1 byte up to the format's largest chunk.
fn parse_chunk_size(s: &str) -> std::result::Result<u32, String> {
    let c = parse_size(s)?;
    let max = oxdelta::oxdelta_format::limits::MAX_CHUNK_NEW_LEN;
    match u32::try_from(c) {
        Ok(c) if (1..=max).contains(&c) => Ok(c),
        _ => Err(format!("must be between 1 and {max} bytes")),
    }
}

/// `--batch-size`: at least 1 byte.
fn parse_batch_size(s: &str) -> std::result::Result<u64, String> {
    match parse_size(s)? {
        0 => Err("must be at least 1 byte".into()),
        b => Ok(b),
    }
}

fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().find(|(_, c)| c.is_ascii_alphabetic()) {
        Some((i, _)) => {
            let m = match s[i..]
                .to_ascii_uppercase()
                .trim_end_matches("IB")
                .trim_end_matches('B')
            {
                "" => 1,
                "K" => 1 << 10,
                "M" => 1 << 20,
                "G" => 1 << 30,
                "T" => 1u64 << 40,
                u => return Err(format!("unknown size unit '{u}' (use K, M, G or T)")),
            };
            (&s[..i], m)
        }
        None => (s, 1),
    };
    let n: u64 = num
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a size (e.g. 256M)"))?;
    n.checked_mul(mult)
        .ok_or_else(|| format!("size '{s}' is too large"))
}

struct Out {
    quiet: bool,
    verbose: bool,
}

impl Out {
    fn info(&self, msg: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }
    fn detail(&self, msg: impl AsRef<str>) {
        if self.verbose && !self.quiet {
            eprintln!("{}", msg.as_ref());
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>()
                    .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("oxdelta: error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
            .context("setting up threads")?;
    }
    let out = Out {
        quiet: cli.quiet,
        verbose: cli.verbose,
    };
    match cli.cmd {
        Cmd::Diff(args) => diff(args, &out)?,
        Cmd::Apply(args) if args.in_place => apply_in_place(args, &out)?,
        Cmd::Apply(args) => apply(args, &out)?,
        Cmd::Verify(args) => verify(args, &out)?,
        Cmd::Info(args) => info(args)?,
        Cmd::Keygen(args) => keygen(args, &out)?,
        Cmd::Completions(args) => completions(args),
        Cmd::Man => man()?,
        Cmd::Sign(args) => sign(args, &out)?,
    }
    out.detail("done");
    Ok(())
}

/// `oxdelta diff`.
fn diff(args: DiffArgs, out: &Out) -> Result<()> {
    let DiffArgs {
        old,
        new,
        patch,
        force,
        codec,
        memory,
        chunk_size: chunk_len,
        sign,
        in_place,
        stash_limit,
    } = args;
    let key = sign.as_deref().map(read_secret).transpose()?;
    // Refused before any work (the library checks again when it commits).
    oxdelta::oxdelta_apply::output::check_output(&patch, &[("OLD", &old), ("NEW", &new)], force)
        .map_err(refusal)?;
    let memory = match memory {
        Some(m) => Some(m),
        None if in_place => None,
        None => choose_engine(&old, &new, out)?,
    };
    let codec = codec.unwrap_or(match memory {
        Some(_) => Codec::Zstd(oxdelta::oxdelta_diff::stream::DEFAULT_ZSTD_LEVEL),
        None => Codec::Lzma2,
    });
    let bar = progress::Bar::new(!out.quiet, out.verbose && !out.quiet);
    let opts = DiffOptions {
        codec,
        chunk_len,
        key,
        memory,
        progress: bar.progress(),
        overwrite: force,
    };
    let t = Instant::now();
    let r = if in_place {
        let mut ip = oxdelta::InPlaceDiffOptions::default();
        if let Some(l) = stash_limit {
            ip.stash_limit = l;
        }
        let (r, st) =
            oxdelta::diff_files_in_place(&old, &new, &patch, &opts, &ip).map_err(refusal)?;
        out.info(format!(
            "in-place: {} steps, {} conflict edges, {} cyclic groups (largest {}), \
             {} bytes to stash at apply time, {} bytes turned into literals",
            st.steps,
            st.edges,
            st.cyclic_components,
            st.largest_component,
            st.stash_bytes,
            st.converted_bytes
        ));
        r
    } else {
        oxdelta::diff_files(&old, &new, &patch, &opts).map_err(refusal)?
    };
    let secs = t.elapsed().as_secs_f64();
    let phases = bar.phase_times();
    bar.finish();
    out.info(format!(
        "diff: {} -> {} bytes, patch {} bytes ({:.2}% of NEW), {} chunks, {} engine, {:.2} s ({:.1} MB/s of NEW){}",
        r.old_len,
        r.new_len,
        r.patch_len,
        100.0 * r.patch_len as f64 / r.new_len.max(1) as f64,
        r.chunks,
        r.engine.name(),
        secs,
        r.new_len as f64 / 1e6 / secs.max(1e-9),
        if opts.key.is_some() { ", signed" } else { "" },
    ));
    if let Some(p) = phases {
        out.detail(p);
    }
    Ok(())
}

/// The library's error, with the command line's remedy where it has one
/// (`-f` for an existing output).
fn refusal(e: impl Into<oxdelta::Error>) -> anyhow::Error {
    match e.into() {
        oxdelta::Error::Apply(oxdelta::ApplyError::OutputExists { path }) => anyhow::anyhow!(
            "{} exists; refusing to replace it (use -f to overwrite)",
            path.display()
        ),
        e => anyhow::Error::new(e),
    }
}

/// A flag that Ctrl-C sets, for the appliers to stop at their next check.
fn cancel_on_ctrl_c() -> Arc<AtomicBool> {
    let cancel = Arc::new(AtomicBool::new(false));
    let c = cancel.clone();
    let _ = ctrlc::set_handler(move || c.store(true, Ordering::Relaxed));
    cancel
}

/// `oxdelta apply` to a new OUT.
fn apply(args: ApplyArgs, out: &Out) -> Result<()> {
    let cancel = cancel_on_ctrl_c();
    let dest = args.out.expect("clap requires OUT without --in-place");
    // A patch read from standard input may still be OUT, redirected.
    let patch_file = match args.patch.as_path() {
        p if p == Path::new("-") => Path::new("/dev/stdin"),
        p => p,
    };
    oxdelta::oxdelta_apply::output::check_output(&dest, &[("the patch", patch_file)], args.force)
        .map_err(refusal)?;
    let trust = Trust::load(args.pubkey.as_deref())?;
    // With several trusted keys, the patch's own key picks the one to
    // require; its head is read first (from standard input: kept, and
    // read again by the apply).
    let mut stdin_head = Vec::new();
    let trusted_key = match &trust {
        None => None,
        Some(t) if args.patch == Path::new("-") => {
            let signer;
            (stdin_head, signer) = peek_signer(&mut std::io::stdin().lock())?;
            Some(t.key_for(signer.as_ref())?)
        }
        Some(t) => Some(t.key_for_file(&args.patch)?),
    };
    let bar = progress::Bar::new(!out.quiet, out.verbose && !out.quiet);
    let opts = ApplyOptions {
        trusted_key,
        cancel: Some(cancel),
        progress: bar.progress(),
        durable: !args.no_sync,
        overwrite: args.force,
        ..ApplyOptions::default()
    };
    let t = Instant::now();
    let r = if args.patch == Path::new("-") {
        let stdin = std::io::Cursor::new(stdin_head).chain(std::io::stdin().lock());
        oxdelta::apply_reader(&args.old, stdin, &dest, &opts)
    } else {
        oxdelta::apply_file(&args.old, &args.patch, &dest, &opts)
    }
    .map_err(refusal)?;
    let secs = t.elapsed().as_secs_f64();
    let phases = bar.phase_times();
    bar.finish();
    out.info(format!(
        "apply: wrote {} ({} bytes, {} chunks, {}), verified BLAKE3, {:.2} s ({:.1} MB/s)",
        dest.display(),
        r.new_len,
        r.chunks,
        trust_note(r.key.as_ref(), opts.trusted_key.is_some()),
        secs,
        r.new_len as f64 / 1e6 / secs.max(1e-9)
    ));
    if let Some(p) = phases {
        out.detail(p);
    }
    Ok(())
}

/// `oxdelta apply --in-place`.
fn apply_in_place(args: ApplyArgs, out: &Out) -> Result<()> {
    let cancel = cancel_on_ctrl_c();
    let ApplyArgs {
        old,
        patch,
        pubkey,
        journal,
        batch_size,
        ..
    } = args;
    if patch == Path::new("-") {
        bail!("--in-place needs the patch as a file, not standard input");
    }
    let defaults = oxdelta::InPlaceApplyOptions::default();
    let trusted_key = match Trust::load(pubkey.as_deref())? {
        Some(t) => Some(t.key_for_file(&patch)?),
        None => None,
    };
    let bar = progress::Bar::new(!out.quiet, out.verbose && !out.quiet);
    let opts = oxdelta::InPlaceApplyOptions {
        trusted_key,
        journal,
        cancel: Some(cancel),
        batch_budget: batch_size.unwrap_or(defaults.batch_budget).max(1),
        progress: bar.progress(),
        ..defaults
    };
    let t = Instant::now();
    let r = oxdelta::apply_in_place(&old, &patch, &opts)
        .map_err(|e| match e {
            oxdelta::Error::Apply(oxdelta::ApplyError::Cancelled) => anyhow::anyhow!(
                "cancelled; the journal keeps the progress: run the same command again to resume"
            ),
            e => anyhow::Error::new(e),
        })
        .with_context(|| format!("{}", old.display()))?;
    let secs = t.elapsed().as_secs_f64();
    let phases = bar.phase_times();
    bar.finish();
    match r.outcome {
        oxdelta::InPlaceOutcome::AlreadyUpToDate => out.info(format!(
            "apply: {} is already up to date (it holds NEW; nothing written)",
            old.display()
        )),
        oxdelta::InPlaceOutcome::Patched => out.info(format!(
            "apply: patched {} in place{} ({} bytes, {} steps, {} already done, \
             {} bytes written, {} bytes stashed, {}), verified BLAKE3, {:.2} s",
            old.display(),
            if r.resumed {
                ", resumed from the journal"
            } else {
                ""
            },
            r.new_len,
            r.steps,
            r.steps_skipped,
            r.bytes_written,
            r.stash_bytes,
            trust_note(r.key.as_ref(), opts.trusted_key.is_some()),
            secs
        )),
    }
    if let Some(p) = phases {
        out.detail(p);
    }
    Ok(())
}

/// `oxdelta verify`.
fn verify(args: VerifyArgs, out: &Out) -> Result<()> {
    let VerifyArgs { patch, pubkey, old } = args;
    let trusted = match Trust::load(pubkey.as_deref())? {
        Some(t) => Some(t.key_for_file(&patch)?),
        None => None,
    };
    let info = oxdelta::verify_file(&patch, trusted.as_ref())
        .with_context(|| format!("{}", patch.display()))?;
    let is_trusted = trusted.is_some();
    let against = match &old {
        Some(old) => {
            let opts = ApplyOptions {
                trusted_key: trusted,
                ..ApplyOptions::default()
            };
            oxdelta::check_file(old, &patch, &opts)
                .with_context(|| format!("{} against {}", patch.display(), old.display()))?;
            format!(", applies to {} giving the NEW it names", old.display())
        }
        None => String::new(),
    };
    out.info(format!(
        "{}: OK ({} chunks, every payload hash verified{against}, {})",
        patch.display(),
        info.chunks,
        trust_note(info.key.as_ref(), is_trusted),
    ));
    Ok(())
}

/// `oxdelta info`: the head alone is read.
fn info(args: InfoArgs) -> Result<()> {
    let i = oxdelta::info_file(&args.patch).with_context(|| format!("{}", args.patch.display()))?;
    let mut so = std::io::stdout().lock();
    if args.json {
        writeln!(so, "{}", serde_json::to_string_pretty(&info_json(&i))?)?;
        Ok(())
    } else {
        write_info_text(&i, &mut so)
    }
}

/// `oxdelta keygen`.
fn keygen(args: KeygenArgs, out: &Out) -> Result<()> {
    let k = oxdelta::keygen(&args.name)?;
    out.info(format!(
        "wrote {} (secret, keep it private) and {} (public), key id {}",
        k.secret_path.display(),
        k.public_path.display(),
        k.public.id()
    ));
    Ok(())
}

/// `oxdelta completions`.
fn completions(args: CompletionsArgs) {
    clap_complete::generate(
        args.shell,
        &mut Cli::command(),
        "oxdelta",
        &mut std::io::stdout().lock(),
    );
}

/// `oxdelta man`.
fn man() -> Result<()> {
    clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout().lock())?;
    Ok(())
}

/// `oxdelta sign`.
fn sign(args: SignArgs, out: &Out) -> Result<()> {
    let sk = read_secret(&args.key)?;
    oxdelta::sign_file(&args.patch, &sk)?;
    out.info(format!(
        "signed {} with key {}",
        args.patch.display(),
        sk.public().id()
    ));
    Ok(())
}

fn read_secret(path: &Path) -> Result<SecretKey> {
    Ok(oxdelta::read_secret_key(path)?)
}

/// What a signature check proved, in the words of the summary lines.
fn trust_note(key: Option<&PublicKey>, trusted: bool) -> String {
    match key {
        None => "unsigned".into(),
        Some(k) if trusted => format!("signature verified (key {})", k.id()),
        Some(k) => format!(
            "signed by key {} (not checked against a trusted key; use --pubkey)",
            k.id()
        ),
    }
}

/// The keys a patch must be signed by: those of `--pubkey` (a file of one
/// or more public keys), else of the default trusted-keys file
/// ([`oxdelta::default_trusted_keys`]).
struct Trust {
    keys: Vec<PublicKey>,
    from: PathBuf,
}

impl Trust {
    fn load(pubkey: Option<&Path>) -> Result<Option<Trust>> {
        let from = match pubkey {
            Some(p) => p.to_path_buf(),
            None => match oxdelta::default_trusted_keys() {
                Some(p) => p,
                None => return Ok(None),
            },
        };
        let keys = oxdelta::read_public_keys(&from)?;
        Ok(Some(Trust { keys, from }))
    }

    /// The trusted key to require of a patch signed by `signer`: with one
    /// trusted key, that key (the library then refuses any other signer);
    /// with several, the one that `signer` is.
    fn key_for(&self, signer: Option<&PublicKey>) -> Result<PublicKey> {
        if let [k] = self.keys[..] {
            return Ok(k);
        }
        match signer {
            Some(s) if self.keys.contains(s) => Ok(*s),
            Some(s) => bail!(
                "the patch is signed by key {}, which is not one of the trusted keys in {}",
                s.id(),
                self.from.display()
            ),
            None => bail!(
                "the patch is unsigned, but a signature by one of the trusted keys in {} is required",
                self.from.display()
            ),
        }
    }

    /// [`Trust::key_for`] the signer of the patch file `patch` (its head
    /// alone is read).
    fn key_for_file(&self, patch: &Path) -> Result<PublicKey> {
        if let [k] = self.keys[..] {
            return Ok(k);
        }
        let h = oxdelta::read_head(patch).with_context(|| format!("{}", patch.display()))?;
        self.key_for(h.signature.public_key().as_ref())
    }
}

/// Reads a patch's head and signature block from `r` (at most their
/// bounded length); returns the bytes read and the signing key, if the
/// block parses (if not, the apply that reads the bytes again says why).
fn peek_signer(r: &mut impl std::io::Read) -> Result<(Vec<u8>, Option<PublicKey>)> {
    use oxdelta::oxdelta_format::head::{FIXED_HEADER_LEN, peek_prefix_lens};
    let mut buf = Vec::new();
    r.take(FIXED_HEADER_LEN as u64)
        .read_to_end(&mut buf)
        .context("reading the patch from standard input")?;
    let Ok((head_len, sig_len)) = peek_prefix_lens(&buf) else {
        return Ok((buf, None));
    };
    r.take(head_len + sig_len - FIXED_HEADER_LEN as u64)
        .read_to_end(&mut buf)
        .context("reading the patch from standard input")?;
    // A block that is absent (an unsigned version-11 patch) names no key.
    let signer = buf
        .get(head_len as usize..)
        .filter(|b| sig_len > 0 && b.len() as u64 >= sig_len)
        .and_then(|b| oxdelta::SignatureBlock::parse(&b[..sig_len as usize], head_len).ok())
        .and_then(|s| s.public_key());
    Ok((buf, signer))
}

/// `oxdelta info --json`: the fields of [`oxdelta::PatchInfo`], by name.
fn info_json(i: &oxdelta::PatchInfo) -> serde_json::Value {
    serde_json::json!({
        "format_version": i.format_version,
        "features_version": i.features_version,
        "head_bytes": i.head_bytes,
        "signature_bytes": i.signature_bytes,
        "patch_bytes": i.patch_bytes,
        "old_bytes": i.old_bytes,
        "old_blake3": hex(&i.old_blake3),
        "new_bytes": i.new_bytes,
        "new_blake3": hex(&i.new_blake3),
        "file_hash": i.file_hash,
        "engine": i.engine.name(),
        "codecs": i.codecs,
        "diff_filters": i.diff_filters,
        "add_modes": i.add_modes,
        "operand_split_chunks": i.operand_split_chunks,
        "ctrl_split_chunks": i.ctrl_split_chunks,
        "x86_literal_chunks": i.x86_literal_chunks,
        "shared_chunks": i.shared_chunks,
        "shared_section": i.shared_section.map(|sd| serde_json::json!({
            "ctrl_raw": sd.ctrl_raw,
            "ctrl_stored": sd.ctrl_stored,
            "lit_raw": sd.lit_raw,
            "lit_stored": sd.lit_stored,
            "gap_max": sd.gap_max,
            "margin": sd.margin,
        })),
        "chunks": i.chunks,
        "zero_chunks": i.zero_chunks,
        "largest_chunk_bytes": i.largest_chunk_bytes,
        "in_place": i.in_place,
        "signed": i.key.is_some(),
        "key_id": i.key.as_ref().map(|k| k.id()),
    })
}

/// The whole-file hash's name as `oxdelta info` prints it.
fn hash_name(i: &oxdelta::PatchInfo) -> &'static str {
    match i.file_hash {
        "blake3" => "BLAKE3",
        _ => "BLAKE3 blocks",
    }
}

/// `oxdelta info`: the fields of [`oxdelta::PatchInfo`] as text.
fn write_info_text(i: &oxdelta::PatchInfo, so: &mut impl Write) -> Result<()> {
    let n = i.chunks;
    if i.features_version < i.format_version {
        writeln!(
            so,
            "format version  {} (features of version {})",
            i.format_version, i.features_version
        )?;
    } else {
        writeln!(so, "format version  {}", i.format_version)?;
    }
    writeln!(
        so,
        "patch           {} bytes ({:.2}% of NEW): head {}, signature block {}, payloads {}",
        i.patch_bytes,
        100.0 * i.patch_bytes as f64 / i.new_bytes.max(1) as f64,
        i.head_bytes,
        i.signature_bytes,
        i.patch_bytes
            .saturating_sub(i.head_bytes + i.signature_bytes)
    )?;
    writeln!(
        so,
        "OLD             {} bytes, {} {}",
        i.old_bytes,
        hash_name(i),
        hex(&i.old_blake3)
    )?;
    writeln!(
        so,
        "NEW             {} bytes, {} {}",
        i.new_bytes,
        hash_name(i),
        hex(&i.new_blake3)
    )?;
    writeln!(so, "engine          {}", i.engine.name())?;
    writeln!(so, "codec           {}", i.codecs.join(", "))?;
    writeln!(
        so,
        "diff coding     filter {}; ADD {}; operand split in {} of {n} chunks",
        i.diff_filters.join(", "),
        i.add_modes.join(", "),
        i.operand_split_chunks,
    )?;
    writeln!(
        so,
        "stream coding   split control in {}, x86 literals in {} of {n} chunks",
        i.ctrl_split_chunks, i.x86_literal_chunks,
    )?;
    match &i.shared_section {
        Some(sd) => writeln!(
            so,
            "shared section  {} of {n} chunks; control {} -> {} bytes, \
             literals {} -> {} bytes (OLD gaps up to {} bytes, {} more on each side, \
             as context)",
            i.shared_chunks,
            sd.ctrl_raw,
            sd.ctrl_stored,
            sd.lit_raw,
            sd.lit_stored,
            sd.gap_max,
            sd.margin
        )?,
        None => writeln!(so, "shared section  none")?,
    }
    let zeros = match i.zero_chunks {
        0 => String::new(),
        z => format!(", {z} of zeros"),
    };
    writeln!(
        so,
        "chunks          {n} (largest {} bytes{zeros})",
        i.largest_chunk_bytes
    )?;
    writeln!(
        so,
        "in-place order  {}",
        if i.in_place { "yes" } else { "no" }
    )?;
    match &i.key {
        Some(k) => writeln!(so, "signature       Ed25519, key id {}", k.id())?,
        None => writeln!(so, "signature       none")?,
    }
    Ok(())
}
