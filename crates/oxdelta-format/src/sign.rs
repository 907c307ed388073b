//! The signature block and key files.
//!
//! A patch is signed by signing its head: the head holds the BLAKE3 of
//! every payload and of every NEW chunk, so one Ed25519 signature over
//! `SIGNING_CONTEXT || BLAKE3(head)` covers the whole patch and can be
//! checked before a single payload byte is read. The signature block has a
//! fixed size, so signing an existing patch rewrites 128 bytes in place.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

use crate::error::{Error, ErrorKind, Result};

/// Bytes of the signature block.
pub const SIGNATURE_BLOCK_LEN: usize = 128;

/// Prefix of the signed message; binds the signature to this use.
pub const SIGNING_CONTEXT: &[u8] = b"oxdelta patch head v1\0";

const KIND_NONE: u8 = 0;
const KIND_ED25519: u8 = 1;

/// The signature block that follows the head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SignatureBlock {
    /// The patch is not signed (the block is all zeros).
    Unsigned,
    /// An Ed25519 signature and the public key that made it.
    Ed25519 {
        /// Signer's public key.
        public_key: [u8; 32],
        /// Signature over `SIGNING_CONTEXT || BLAKE3(head)`.
        signature: [u8; 64],
    },
}

impl SignatureBlock {
    /// Parses the block from its [`SIGNATURE_BLOCK_LEN`] bytes; `base` is
    /// its offset in the patch, for error messages.
    pub fn parse(buf: &[u8], base: u64) -> Result<SignatureBlock> {
        let mut c = crate::cursor::Cursor::new(buf, base);
        let at = c.offset();
        let kind = c.u8("signature kind")?;
        c.reserved_zero(7, "reserved signature bytes")?;
        let public_key: [u8; 32] = c.array("public key")?;
        let signature: [u8; 64] = c.array("signature")?;
        c.reserved_zero(24, "reserved signature bytes")?;
        match kind {
            KIND_NONE if public_key == [0; 32] && signature == [0; 64] => {
                Ok(SignatureBlock::Unsigned)
            }
            KIND_NONE => Err(Error::invalid(
                "signature block",
                "all zeros for an unsigned patch",
                "key or signature bytes",
                at,
            )),
            KIND_ED25519 => Ok(SignatureBlock::Ed25519 {
                public_key,
                signature,
            }),
            k => Err(Error::invalid(
                "signature kind",
                "0 (none) or 1 (Ed25519)",
                k,
                at,
            )),
        }
    }

    /// The block's bytes.
    pub fn to_bytes(&self) -> [u8; SIGNATURE_BLOCK_LEN] {
        let mut b = [0u8; SIGNATURE_BLOCK_LEN];
        if let SignatureBlock::Ed25519 {
            public_key,
            signature,
        } = self
        {
            b[0] = KIND_ED25519;
            b[8..40].copy_from_slice(public_key);
            b[40..104].copy_from_slice(signature);
        }
        b
    }

    /// Signs `head` (the head's bytes) with `key`. Deterministic: the same
    /// head and key always give the same block.
    pub fn sign(head: &[u8], key: &SecretKey) -> SignatureBlock {
        let sk = SigningKey::from_bytes(&key.0);
        let sig = sk.sign(&signed_message(head));
        SignatureBlock::Ed25519 {
            public_key: sk.verifying_key().to_bytes(),
            signature: sig.to_bytes(),
        }
    }

    /// Checks the block against `head`. With `trusted` set, the patch must
    /// be signed by that key; without, an unsigned patch passes and a signed
    /// one must carry a valid signature by the key it names.
    pub fn verify(&self, head: &[u8], trusted: Option<&PublicKey>) -> Result<()> {
        let sig_err = |m: String| Error::new(ErrorKind::Signature(m));
        match (self, trusted) {
            (SignatureBlock::Unsigned, None) => Ok(()),
            (SignatureBlock::Unsigned, Some(k)) => Err(sig_err(format!(
                "patch is unsigned, but a signature by key {} is required",
                k.id()
            ))),
            (
                SignatureBlock::Ed25519 {
                    public_key,
                    signature,
                },
                trusted,
            ) => {
                if let Some(k) = trusted {
                    if k.0 != *public_key {
                        return Err(sig_err(format!(
                            "patch is signed by key {}, not by the trusted key {}",
                            PublicKey(*public_key).id(),
                            k.id()
                        )));
                    }
                }
                let vk = VerifyingKey::from_bytes(public_key).map_err(|_| {
                    sig_err("the public key in the patch is not a valid Ed25519 key".into())
                })?;
                vk.verify_strict(&signed_message(head), &Signature::from_bytes(signature))
                    .map_err(|_| {
                        sig_err("signature does not match the patch (forged or damaged)".into())
                    })
            }
        }
    }

    /// The signer's key, if signed.
    pub fn public_key(&self) -> Option<PublicKey> {
        match self {
            SignatureBlock::Unsigned => None,
            SignatureBlock::Ed25519 { public_key, .. } => Some(PublicKey(*public_key)),
        }
    }
}

fn signed_message(head: &[u8]) -> Vec<u8> {
    let mut m = SIGNING_CONTEXT.to_vec();
    m.extend_from_slice(blake3::hash(head).as_bytes());
    m
}

const SECRET_PREFIX: &str = "oxdelta-secret-key-v1 ";
const PUBLIC_PREFIX: &str = "oxdelta-public-key-v1 ";

/// An Ed25519 secret key (32 bytes of seed).
#[derive(Clone)]
pub struct SecretKey(pub [u8; 32]);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(public {})", self.public().id())
    }
}

/// An Ed25519 public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PublicKey(pub [u8; 32]);

impl SecretKey {
    /// The matching public key.
    pub fn public(&self) -> PublicKey {
        PublicKey(SigningKey::from_bytes(&self.0).verifying_key().to_bytes())
    }

    /// Key file text: `oxdelta-secret-key-v1 <64 hex digits>\n`.
    pub fn to_text(&self) -> String {
        format!("{SECRET_PREFIX}{}\n", hex(&self.0))
    }

    /// Parses key file text.
    pub fn from_text(s: &str) -> std::result::Result<SecretKey, String> {
        parse_key(s, SECRET_PREFIX, "secret").map(SecretKey)
    }
}

impl PublicKey {
    /// Key file text: `oxdelta-public-key-v1 <64 hex digits>\n`.
    pub fn to_text(&self) -> String {
        format!("{PUBLIC_PREFIX}{}\n", hex(&self.0))
    }

    /// Parses key file text.
    pub fn from_text(s: &str) -> std::result::Result<PublicKey, String> {
        let k = parse_key(s, PUBLIC_PREFIX, "public")?;
        VerifyingKey::from_bytes(&k).map_err(|_| "not a valid Ed25519 public key".to_string())?;
        Ok(PublicKey(k))
    }

    /// Short key id: the first 8 bytes of BLAKE3(key), in hex.
    pub fn id(&self) -> String {
        hex(&blake3::hash(&self.0).as_bytes()[..8])
    }
}

fn parse_key(s: &str, prefix: &str, kind: &str) -> std::result::Result<[u8; 32], String> {
    let body = s.trim_end().strip_prefix(prefix).ok_or_else(|| {
        format!(
            "not an oxdelta {kind} key (expected a line starting '{}')",
            prefix.trim_end()
        )
    })?;
    unhex32(body).ok_or_else(|| format!("{kind} key: expected 64 hex digits"))
}

/// Lower-case hex of `b`.
pub fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    let s = s.as_bytes();
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in s.chunks(2).enumerate() {
        let d = |c: u8| (c as char).to_digit(16).map(|v| v as u8);
        out[i] = d(pair[0])? << 4 | d(pair[1])?;
    }
    Some(out)
}
