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
use oxdelta::{ApplyOptions, Codec, DiffOptions, Patch, PublicKey, SecretKey};

#[derive(Parser, Debug)]
#[command(
    name = "oxdelta",
    version,
    about = "Binary diff and patch for big files: small, signed, chunked patches, applied atomically.",
    after_help = "Exit codes: 0 success, 1 failure (the output is left as it was), 2 usage error.\n\n\
                  Example:\n  oxdelta diff app-1.0 app-1.1 app.patch\n  oxdelta apply app-1.0 app.patch app-1.1.rebuilt"
)]
struct Cli {
    /// Worker threads (default: all cores).
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,
    /// Print nothing but errors.
    #[arg(short, long, global = true)]
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
                            OUT may be OLD itself. On any failure OUT is left as it was.\n\n\
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
    /// Sign an existing patch in place.
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
    /// Where to write the patch (written atomically).
    patch: PathBuf,
    /// Stream codec: none, lz4 (fastest apply), zstd or zstd:LEVEL (smallest;
    /// default zstd:19, or zstd:16 with the streaming engine).
    #[arg(long, value_parser = Codec::parse)]
    codec: Option<Codec>,
    /// Use the streaming engine within this memory budget, e.g. 256M (for
    /// inputs larger than RAM). Default: the in-memory engine when OLD and NEW
    /// fit comfortably in available memory, else streaming with 256M.
    /// (In-place patches always use the in-memory engine.)
    #[arg(long, value_name = "SIZE", value_parser = parse_size, conflicts_with = "in_place")]
    memory: Option<u64>,
    /// NEW bytes per chunk, e.g. 4M (default: from NEW's size, 1M to 8M).
    #[arg(long, value_parser = parse_size)]
    chunk_size: Option<u64>,
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
    /// Where to write NEW (not with --in-place).
    #[arg(required_unless_present = "in_place")]
    out: Option<PathBuf>,
    /// Refuse the patch unless it is signed by this public key.
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
    #[arg(long, value_parser = parse_size, requires = "in_place")]
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
    /// Require a signature by this public key.
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
        if n == 0 {
            bail!("--threads must be at least 1");
        }
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
        codec,
        memory,
        chunk_size,
        sign,
        in_place,
        stash_limit,
    } = args;
    let key = sign.as_deref().map(read_secret).transpose()?;
    let chunk_len = chunk_size
        .map(|c| {
            let max = u64::from(oxdelta::oxdelta_format::limits::MAX_CHUNK_NEW_LEN);
            if c == 0 || c > max {
                bail!("--chunk-size must be between 1 and {max} bytes");
            }
            Ok(c as u32)
        })
        .transpose()?;
    let memory = match memory {
        Some(m) => {
            if m < oxdelta::oxdelta_diff::stream::MIN_BUDGET {
                bail!(
                    "--memory must be at least {} KiB",
                    oxdelta::oxdelta_diff::stream::MIN_BUDGET >> 10
                );
            }
            Some(m)
        }
        None if in_place => None,
        None => choose_engine(&old, &new, out)?,
    };
    let codec = codec.unwrap_or(match memory {
        Some(_) => Codec::Zstd(oxdelta::oxdelta_diff::stream::DEFAULT_ZSTD_LEVEL),
        None => Codec::Zstd(oxdelta::oxdelta_format::codec::DEFAULT_ZSTD_LEVEL),
    });
    let bar = progress::Bar::new(!out.quiet, out.verbose && !out.quiet);
    let opts = DiffOptions {
        codec,
        chunk_len,
        key,
        memory,
        progress: bar.progress(),
    };
    let t = Instant::now();
    let r = if in_place {
        let mut ip = oxdelta::InPlaceDiffOptions::default();
        if let Some(l) = stash_limit {
            ip.stash_limit = l;
        }
        let (r, st) = oxdelta::diff_files_in_place(&old, &new, &patch, &opts, &ip)?;
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
        oxdelta::diff_files(&old, &new, &patch, &opts)?
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
    let bar = progress::Bar::new(!out.quiet, out.verbose && !out.quiet);
    let opts = ApplyOptions {
        trusted_key: args.pubkey.as_deref().map(read_public).transpose()?,
        cancel: Some(cancel),
        progress: bar.progress(),
        durable: !args.no_sync,
        ..ApplyOptions::default()
    };
    let t = Instant::now();
    let r = if args.patch == Path::new("-") {
        oxdelta::apply_reader(&args.old, std::io::stdin().lock(), &dest, &opts)
    } else {
        oxdelta::apply_file(&args.old, &args.patch, &dest, &opts)
    }
    .map_err(anyhow::Error::new)?;
    let secs = t.elapsed().as_secs_f64();
    let phases = bar.phase_times();
    bar.finish();
    out.info(format!(
        "apply: wrote {} ({} bytes, {} chunks{}), verified BLAKE3, {:.2} s ({:.1} MB/s)",
        dest.display(),
        r.new_len,
        r.chunks,
        if r.signed { ", signature verified" } else { "" },
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
    let trusted_key = pubkey.as_deref().map(read_public).transpose()?;
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
             {} bytes written, {} bytes stashed{}), verified BLAKE3, {:.2} s",
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
            if r.signed { ", signature verified" } else { "" },
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
    let trusted = pubkey.as_deref().map(read_public).transpose()?;
    let bytes = oxdelta::read_patch(&patch)?;
    let p = oxdelta::verify_bytes(&bytes, trusted.as_ref())
        .with_context(|| format!("{}", patch.display()))?;
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
        p.head.chunks.len(),
        match p.signature.public_key() {
            Some(k) => format!("signed by key {}", k.id()),
            None => "unsigned".into(),
        }
    ));
    Ok(())
}

/// `oxdelta info`.
fn info(args: InfoArgs) -> Result<()> {
    let bytes = oxdelta::read_patch(&args.patch)?;
    let p = Patch::parse(&bytes).with_context(|| format!("{}", args.patch.display()))?;
    let summary = InfoSummary::new(&p, bytes.len() as u64);
    let mut so = std::io::stdout().lock();
    if args.json {
        writeln!(so, "{}", serde_json::to_string_pretty(&summary.json())?)?;
        Ok(())
    } else {
        summary.write_text(&mut so)
    }
}

/// `oxdelta keygen`.
fn keygen(args: KeygenArgs, out: &Out) -> Result<()> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    let sk = SecretKey(seed);
    let key_path = with_ext(&args.name, "key");
    let pub_path = with_ext(&args.name, "pub");
    for p in [&key_path, &pub_path] {
        if p.exists() {
            bail!(
                "{} already exists; refusing to overwrite a key",
                p.display()
            );
        }
    }
    write_new(&key_path, sk.to_text().as_bytes(), true)?;
    write_new(&pub_path, sk.public().to_text().as_bytes(), false)?;
    out.info(format!(
        "wrote {} (secret, keep it private) and {} (public), key id {}",
        key_path.display(),
        pub_path.display(),
        sk.public().id()
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

fn with_ext(name: &Path, ext: &str) -> PathBuf {
    let mut s = name.as_os_str().to_owned();
    s.push(".");
    s.push(ext);
    PathBuf::from(s)
}

fn write_new(path: &Path, data: &[u8], secret: bool) -> Result<()> {
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let _ = secret;
    let mut f = o
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(data)
        .and_then(|_| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

fn read_text(path: &Path, what: &str) -> Result<String> {
    let mut s = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(4096).read_to_string(&mut s))
        .with_context(|| format!("reading {what} {}", path.display()))?;
    Ok(s)
}

fn read_secret(path: &Path) -> Result<SecretKey> {
    SecretKey::from_text(&read_text(path, "secret key")?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn read_public(path: &Path) -> Result<PublicKey> {
    PublicKey::from_text(&read_text(path, "public key")?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// What `oxdelta info` reports about a patch, shown as text or JSON.
struct InfoSummary<'p> {
    head: &'p oxdelta::oxdelta_format::Head,
    key: Option<PublicKey>,
    patch_len: u64,
    codecs: Vec<&'static str>,
    filters: Vec<&'static str>,
    modes: Vec<&'static str>,
    /// Chunks with split operands, split control, x86 literals, and in the
    /// shared section.
    split: usize,
    ctrl_split: usize,
    lit_x86: usize,
    shared: usize,
}

/// The distinct values of `f` over the chunks, sorted.
fn distinct(
    chunks: &[oxdelta::oxdelta_format::ChunkEntry],
    f: impl Fn(&oxdelta::oxdelta_format::ChunkEntry) -> &'static str,
) -> Vec<&'static str> {
    let mut v: Vec<&'static str> = chunks.iter().map(f).collect();
    v.sort_unstable();
    v.dedup();
    v
}

impl<'p> InfoSummary<'p> {
    fn new(p: &'p Patch<'_>, patch_len: u64) -> Self {
        let h = &p.head;
        let count = |f: fn(&oxdelta::oxdelta_format::ChunkEntry) -> bool| {
            h.chunks.iter().filter(|c| f(c)).count()
        };
        InfoSummary {
            head: h,
            key: p.signature.public_key(),
            patch_len,
            codecs: distinct(&h.chunks, |c| c.codec.name()),
            filters: distinct(&h.chunks, |c| c.diff_filter.name()),
            modes: distinct(&h.chunks, |c| c.add_mode.name()),
            split: count(|c| c.operand_split),
            ctrl_split: count(|c| c.ctrl_split),
            lit_x86: count(|c| c.lit_x86),
            shared: count(|c| c.shared),
        }
    }

    fn json(&self) -> serde_json::Value {
        let h = self.head;
        let sd = &h.shared;
        serde_json::json!({
            "format_version": h.version,
            "patch_bytes": self.patch_len,
            "old_bytes": h.meta.old_len,
            "old_blake3": hex(&h.meta.old_hash),
            "new_bytes": h.meta.new_len,
            "new_blake3": hex(&h.meta.new_hash),
            "engine": h.meta.engine.name(),
            "codecs": self.codecs,
            "diff_filters": self.filters,
            "add_modes": self.modes,
            "operand_split_chunks": self.split,
            "ctrl_split_chunks": self.ctrl_split,
            "x86_literal_chunks": self.lit_x86,
            "shared_chunks": self.shared,
            "shared_section": sd.is_present().then(|| serde_json::json!({
                "ctrl_raw": sd.ctrl.raw,
                "ctrl_stored": sd.ctrl.stored,
                "lit_raw": sd.lit.raw,
                "lit_stored": sd.lit.stored,
                "gap_max": sd.gap_max,
                "margin": sd.margin,
            })),
            "chunks": h.chunks.len(),
            "largest_chunk_bytes": h.max_chunk_new_len,
            "in_place": h.is_in_place(),
            "signed": self.key.is_some(),
            "key_id": self.key.as_ref().map(|k| k.id()),
        })
    }

    fn write_text(&self, so: &mut impl Write) -> Result<()> {
        let h = self.head;
        let (sd, n) = (&h.shared, h.chunks.len());
        let patch_len = self.patch_len;
        writeln!(so, "format version  {}", h.version)?;
        writeln!(
            so,
            "patch           {patch_len} bytes ({:.2}% of NEW)",
            100.0 * patch_len as f64 / h.meta.new_len.max(1) as f64
        )?;
        writeln!(
            so,
            "OLD             {} bytes, BLAKE3 {}",
            h.meta.old_len,
            hex(&h.meta.old_hash)
        )?;
        writeln!(
            so,
            "NEW             {} bytes, BLAKE3 {}",
            h.meta.new_len,
            hex(&h.meta.new_hash)
        )?;
        writeln!(so, "engine          {}", h.meta.engine.name())?;
        writeln!(so, "codec           {}", self.codecs.join(", "))?;
        writeln!(
            so,
            "diff coding     filter {}; ADD {}; operand split in {} of {n} chunks",
            self.filters.join(", "),
            self.modes.join(", "),
            self.split,
        )?;
        writeln!(
            so,
            "stream coding   split control in {}, x86 literals in {} of {n} chunks",
            self.ctrl_split, self.lit_x86,
        )?;
        if sd.is_present() {
            writeln!(
                so,
                "shared section  {} of {n} chunks; control {} -> {} bytes, \
                 literals {} -> {} bytes (OLD gaps up to {} bytes, {} more on each side, \
                 as context)",
                self.shared,
                sd.ctrl.raw,
                sd.ctrl.stored,
                sd.lit.raw,
                sd.lit.stored,
                sd.gap_max,
                sd.margin
            )?;
        } else {
            writeln!(so, "shared section  none")?;
        }
        writeln!(
            so,
            "chunks          {n} (largest {} bytes)",
            h.max_chunk_new_len
        )?;
        writeln!(
            so,
            "in-place order  {}",
            if h.is_in_place() { "yes" } else { "no" }
        )?;
        match &self.key {
            Some(k) => writeln!(so, "signature       Ed25519, key id {}", k.id())?,
            None => writeln!(so, "signature       none")?,
        }
        Ok(())
    }
}
