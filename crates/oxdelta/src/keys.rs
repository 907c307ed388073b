//! Signing key files, as `oxdelta keygen` writes them: `NAME.key` (the
//! secret, mode 0600 on Unix) and `NAME.pub`, one line of text each.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use oxdelta_format::{PublicKey, SecretKey};

use crate::{Error, Result, io};

/// The two files of a key pair made by [`keygen`].
#[derive(Clone, Debug)]
pub struct KeyPair {
    /// `NAME.key`, the secret key.
    pub secret_path: PathBuf,
    /// `NAME.pub`, the public key.
    pub public_path: PathBuf,
    /// The public key.
    pub public: PublicKey,
}

/// Makes a fresh Ed25519 key pair from the OS's randomness and writes
/// `NAME.key` and `NAME.pub` (`name` is a path prefix). Refuses to
/// overwrite either file.
pub fn keygen(name: &Path) -> Result<KeyPair> {
    let with_ext = |ext: &str| {
        let mut s = name.as_os_str().to_owned();
        s.push(".");
        s.push(ext);
        PathBuf::from(s)
    };
    let (secret_path, public_path) = (with_ext("key"), with_ext("pub"));
    for p in [&secret_path, &public_path] {
        if p.exists() {
            return Err(Error::Key {
                path: p.clone(),
                detail: "already exists; refusing to overwrite a key".into(),
            });
        }
    }
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| {
        io("drawing randomness for", &secret_path)(std::io::Error::other(e.to_string()))
    })?;
    let sk = SecretKey(seed);
    write_new(&secret_path, sk.to_text().as_bytes(), true)?;
    write_new(&public_path, sk.public().to_text().as_bytes(), false)?;
    Ok(KeyPair {
        secret_path,
        public_path,
        public: sk.public(),
    })
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
    let mut f = o.open(path).map_err(io("creating", path))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .map_err(io("writing", path))
}

/// Key files are one short line; more than this is not a key file.
const MAX_KEY_FILE: u64 = 4096;

fn read_text(path: &Path) -> Result<String> {
    let mut s = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_KEY_FILE).read_to_string(&mut s))
        .map_err(io("reading key", path))?;
    Ok(s)
}

/// Reads a secret key file (`NAME.key`).
pub fn read_secret_key(path: &Path) -> Result<SecretKey> {
    SecretKey::from_text(&read_text(path)?).map_err(|detail| Error::Key {
        path: path.to_path_buf(),
        detail,
    })
}

/// Reads a public key file (`NAME.pub`).
pub fn read_public_key(path: &Path) -> Result<PublicKey> {
    PublicKey::from_text(&read_text(path)?).map_err(|detail| Error::Key {
        path: path.to_path_buf(),
        detail,
    })
}

/// Reads a file of trusted public keys: one `NAME.pub` line per key
/// (`oxdelta-public-key-v1 <hex>`), blank lines and lines starting with
/// `#` ignored. At most [`MAX_KEYS_FILE`] bytes; at least one key.
pub fn read_public_keys(path: &Path) -> Result<Vec<PublicKey>> {
    let mut s = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_KEYS_FILE).read_to_string(&mut s))
        .map_err(io("reading keys", path))?;
    let bad = |detail: String| Error::Key {
        path: path.to_path_buf(),
        detail,
    };
    let keys = s
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .enumerate()
        .map(|(i, l)| PublicKey::from_text(l).map_err(|e| bad(format!("key {}: {e}", i + 1))))
        .collect::<Result<Vec<_>>>()?;
    if keys.is_empty() {
        return Err(bad("holds no public key".into()));
    }
    Ok(keys)
}

/// A file of trusted keys holds at most this many bytes (a few hundred
/// keys).
pub const MAX_KEYS_FILE: u64 = 64 << 10;

/// Where the command line looks for trusted keys when no `--pubkey` is
/// given, so that a device can require signatures without a flag: the
/// file named by the environment variable [`TRUSTED_KEYS_ENV`] (set but
/// empty: none), else `$XDG_CONFIG_HOME/oxdelta/trusted-keys` (by default
/// `~/.config/oxdelta/trusted-keys`), else `/etc/oxdelta/trusted-keys`;
/// the first that exists. `None` when there is none.
pub fn default_trusted_keys() -> Option<PathBuf> {
    if let Some(v) = std::env::var_os(TRUSTED_KEYS_ENV) {
        return (!v.is_empty()).then(|| PathBuf::from(v));
    }
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
    config
        .map(|c| c.join("oxdelta/trusted-keys"))
        .into_iter()
        .chain(std::iter::once(PathBuf::from("/etc/oxdelta/trusted-keys")))
        .find(|p| p.exists())
}

/// The environment variable naming a file of trusted keys
/// ([`default_trusted_keys`]).
pub const TRUSTED_KEYS_ENV: &str = "OXDELTA_TRUSTED_KEYS";
