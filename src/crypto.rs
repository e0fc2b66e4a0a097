//! Field encryption and blind indexes for contact data.
//!
//! Phone numbers and e-mail addresses are sealed with XChaCha20-Poly1305 (random 192-bit nonces
//! are safe at any volume we will see). The associated data binds each ciphertext to its table,
//! column and row, so a value copied into another row or column fails to open instead of
//! silently moving a contact to another household. Each sealed value carries the id of the key
//! that sealed it, so keys can rotate while old rows stay readable.
//!
//! Lookup and dedupe use a keyed blind index (HMAC-SHA-256 over tenant, column and the
//! normalised value). Its key never rotates: rotating it would break dedupe across rows.
//!
//! An optional master key, kept outside the data directory (the environment, a secrets
//! mount), wraps the key file with the same AEAD, so a copy of the data directory or of its
//! backups opens nothing without it.
//!
//! Each tenant has its own random data key, stored in the database wrapped (sealed) with the
//! key file's current key; its values are sealed with a key derived from it by HKDF-SHA256
//! and carry the key id `-tenant_id`. Deleting the wrapped key makes copies of that tenant's
//! sealed values unreadable (crypto-shredding), all of them once the key-file key that
//! wrapped it is retired (a backup holds the wrapped key too); rotating the key file
//! re-wraps the tenant keys and leaves their values as they are.

use std::collections::HashMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use anyhow::{Context, bail};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

const NONCE_LEN: usize = 24;

/// Where a sealed value lives; becomes the AEAD associated data.
#[derive(Debug, Clone, Copy)]
pub struct FieldRef<'a> {
    pub table: &'a str,
    pub column: &'a str,
    pub row: i64,
}

impl FieldRef<'_> {
    fn associated_data(&self) -> Vec<u8> {
        format!("{}:{}:{}", self.table, self.column, self.row).into_bytes()
    }
}

/// A sealed value as stored: ciphertext (nonce first) and the id of the key that sealed it:
/// a key of the key file when positive, the data key of tenant `-key_id` when negative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    pub key_id: i64,
    pub ciphertext: Vec<u8>,
}

impl Sealed {
    /// The tenant whose data key sealed it, if one did.
    pub fn tenant(&self) -> Option<i64> {
        (self.key_id < 0).then_some(-self.key_id)
    }
}

/// The key id a tenant's sealed values carry.
pub fn tenant_key_id(tenant_id: i64) -> i64 {
    -tenant_id
}

/// Where a tenant's wrapped data key lives; the associated data it is wrapped under.
pub fn tenant_key_field(tenant_id: i64) -> FieldRef<'static> {
    FieldRef {
        table: "tenant_keys",
        column: "key",
        row: tenant_id,
    }
}

/// Binds the sealing key derived from a tenant's data key to its purpose and tenant.
fn tenant_sealing_key(tenant_id: i64, data_key: &[u8; 32]) -> [u8; 32] {
    let mut out = [0u8; 32];
    Hkdf::<Sha256>::new(None, data_key)
        .expand(
            format!("varsel:tenant:{tenant_id}:seal:1").as_bytes(),
            &mut out,
        )
        .expect("32 bytes is a valid HKDF-SHA256 output length");
    out
}

#[derive(Serialize, Deserialize, Clone)]
struct KeyEntry {
    id: i64,
    key: String,
    created_at: i64,
}

#[derive(Serialize, Deserialize, Clone)]
struct KeyFile {
    version: u32,
    current: i64,
    index_key: String,
    keys: Vec<KeyEntry>,
}

/// The key file as stored when a master key wraps it: `KeyFile` as JSON, sealed.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WrappedKeyFile {
    /// The wrapping scheme: 1 is XChaCha20-Poly1305 under the master key.
    wrapped: u32,
    /// Nonce, then ciphertext, hex-encoded.
    sealed: String,
}

/// Binds the wrapped key file to what it is, so no other value sealed under the master key
/// could pass for it.
const WRAP_AD: &[u8] = b"varsel:keys.json:1";

/// The 32-byte key that wraps the key file. Never printed.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Reads base64 (standard alphabet, padding optional, surrounding whitespace ignored)
    /// of exactly 32 bytes, as `openssl rand -base64 32` prints it.
    pub fn parse(text: &str) -> Result<Self, String> {
        let bytes = base64_decode(text.trim())
            .ok_or_else(|| "is not base64 (make one with `openssl rand -base64 32`)".to_string())?;
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            format!(
                "must be 32 bytes of base64, not {} (make one with `openssl rand -base64 32`)",
                bytes.len()
            )
        })?;
        Ok(Self(key))
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new((&self.0).into())
    }
}

/// What `Keyring::load_or_create` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyFileOpened {
    Loaded,
    /// There was none: a new one was written.
    Created,
    /// A plain file and a master key: the file is now wrapped.
    Wrapped,
}

/// The data keys: every sealing key ever used (to open old rows), the current one, and the
/// blind-index key.
#[derive(Clone)]
pub struct Keyring {
    file: KeyFile,
    path: PathBuf,
    master: Option<MasterKey>,
    /// Whether the file on disk is wrapped with the master key.
    wrapped: bool,
    /// The sealing keys derived from the tenants' data keys unwrapped so far, by tenant;
    /// shared by every clone (the store installs them, see `Store::ensure_tenant_key`).
    tenants: Arc<RwLock<HashMap<i64, [u8; 32]>>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("path", &self.path)
            .field("current", &self.file.current)
            .field("key_ids", &self.key_ids())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("the value was sealed with key {0}, which is not in the key file")]
    UnknownKey(i64),
    #[error("a sealed value failed to open: wrong key, or the value was moved or tampered with")]
    Open,
    #[error("the data key of tenant {0} is not loaded (deleted with the tenant, or not yet read)")]
    NoTenantKey(i64),
}

impl Keyring {
    /// Loads the key file, or creates one (mode 0600) when there is none; with a master key,
    /// a plain file is wrapped and a new one written wrapped. Says what it did so the caller
    /// can tell the operator.
    pub fn load_or_create(
        path: &Path,
        master: Option<&MasterKey>,
    ) -> anyhow::Result<(Self, KeyFileOpened)> {
        if path.exists() {
            let mut ring = Self::load(path, master)?;
            if ring.master.is_some() && !ring.wrapped {
                ring.save()?;
                return Ok((ring, KeyFileOpened::Wrapped));
            }
            return Ok((ring, KeyFileOpened::Loaded));
        }
        let file = KeyFile {
            version: 1,
            current: 1,
            index_key: hex_encode(&random_bytes::<32>()),
            keys: vec![KeyEntry {
                id: 1,
                key: hex_encode(&random_bytes::<32>()),
                created_at: now_unix(),
            }],
        };
        let mut ring = Self {
            file,
            path: path.to_path_buf(),
            master: master.cloned(),
            wrapped: false,
            tenants: Arc::default(),
        };
        ring.save()?;
        Ok((ring, KeyFileOpened::Created))
    }

    /// Whether the key file at `path` is wrapped with a master key; reads nothing secret.
    pub fn file_is_wrapped(path: &Path) -> anyhow::Result<bool> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("cannot read the data key file {}", path.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .with_context(|| format!("the data key file {} is not valid", path.display()))?;
        Ok(value.get("wrapped").is_some())
    }

    /// Loads the key file; a wrapped one needs the master key that wrapped it. A plain file
    /// stays as it is (`load_or_create` wraps it).
    pub fn load(path: &Path, master: Option<&MasterKey>) -> anyhow::Result<Self> {
        crate::files::check_secret_file(path)?;
        let text = fs::read_to_string(path)
            .with_context(|| format!("cannot read the data key file {}", path.display()))?;
        let invalid = || format!("the data key file {} is not valid", path.display());
        let value: serde_json::Value = serde_json::from_str(&text).with_context(invalid)?;
        let wrapped = value.get("wrapped").is_some();
        let file: KeyFile = if wrapped {
            let w: WrappedKeyFile = serde_json::from_value(value).with_context(invalid)?;
            if w.wrapped != 1 {
                bail!(
                    "the data key file {} is wrapped with unknown scheme {}",
                    path.display(),
                    w.wrapped
                );
            }
            let Some(master) = master else {
                bail!(
                    "the data key file {} is wrapped with a master key: set VARSEL_MASTER_KEY or VARSEL_MASTER_KEY_FILE to the master key",
                    path.display()
                );
            };
            let plain = hex::decode(&w.sealed)
                .ok()
                .filter(|b| b.len() > NONCE_LEN)
                .and_then(|b| {
                    let (nonce, ct) = b.split_at(NONCE_LEN);
                    master
                        .cipher()
                        .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: WRAP_AD })
                        .ok()
                })
                .with_context(|| {
                    format!(
                        "the master key does not open the data key file {}: it is not the master key that wrapped it, or the file was changed",
                        path.display()
                    )
                })?;
            serde_json::from_slice(&plain).with_context(invalid)?
        } else {
            serde_json::from_value(value).with_context(invalid)?
        };
        if file.version != 1 {
            bail!(
                "the data key file {} has unknown version {}",
                path.display(),
                file.version
            );
        }
        decode_key(&file.index_key).context("the blind-index key is not 32 hex-encoded bytes")?;
        for k in &file.keys {
            decode_key(&k.key)
                .with_context(|| format!("key {} is not 32 hex-encoded bytes", k.id))?;
        }
        if !file.keys.iter().any(|k| k.id == file.current) {
            bail!(
                "the data key file names current key {} but does not hold it",
                file.current
            );
        }
        Ok(Self {
            file,
            path: path.to_path_buf(),
            master: master.cloned(),
            wrapped,
            tenants: Arc::default(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the file on disk is wrapped with a master key.
    pub fn is_wrapped(&self) -> bool {
        self.wrapped
    }

    pub fn current_key_id(&self) -> i64 {
        self.file.current
    }

    pub fn key_ids(&self) -> Vec<i64> {
        self.file.keys.iter().map(|k| k.id).collect()
    }

    /// Adds a fresh sealing key and makes it current. Old keys stay so old rows still open;
    /// the caller re-seals the stored values and may then retire them.
    pub fn rotate(&mut self) -> anyhow::Result<i64> {
        let id = self.file.keys.iter().map(|k| k.id).max().unwrap_or(0) + 1;
        self.file.keys.push(KeyEntry {
            id,
            key: hex_encode(&random_bytes::<32>()),
            created_at: now_unix(),
        });
        self.file.current = id;
        self.save()?;
        Ok(id)
    }

    /// Drops every key but the current one; `rotation::retire_old_keys` first checks that no
    /// stored value still uses another.
    pub fn retire_old_keys(&mut self) -> anyhow::Result<usize> {
        let before = self.file.keys.len();
        let current = self.file.current;
        self.file.keys.retain(|k| k.id == current);
        self.save()?;
        Ok(before - self.file.keys.len())
    }

    /// Writes the key file (wrapped when there is a master key) through a temporary file
    /// and a rename, so a crash leaves the old file or the new one, never half of one.
    fn save(&mut self) -> anyhow::Result<()> {
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let tmp = self.path.with_extension("tmp");
        // A temporary file left by a crash keeps its mode when opened again; start afresh so
        // the key file is always born 0600.
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("cannot remove {}", tmp.display()));
            }
            _ => {}
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options
            .open(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        let plain = serde_json::to_string_pretty(&self.file)?;
        let text = match &self.master {
            None => plain,
            Some(master) => {
                let nonce = random_bytes::<NONCE_LEN>();
                let ct = master
                    .cipher()
                    .encrypt(
                        XNonce::from_slice(&nonce),
                        Payload {
                            msg: plain.as_bytes(),
                            aad: WRAP_AD,
                        },
                    )
                    .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
                let mut sealed = nonce.to_vec();
                sealed.extend_from_slice(&ct);
                serde_json::to_string_pretty(&WrappedKeyFile {
                    wrapped: 1,
                    sealed: hex_encode(&sealed),
                })?
            }
        };
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &self.path)
            .with_context(|| format!("cannot write {}", self.path.display()))?;
        self.wrapped = self.master.is_some();
        Ok(())
    }

    fn cipher(&self, id: i64) -> Result<XChaCha20Poly1305, CryptoError> {
        if id < 0 {
            let tenants = self.tenants.read().unwrap_or_else(|e| e.into_inner());
            let key = tenants.get(&-id).ok_or(CryptoError::NoTenantKey(-id))?;
            return Ok(XChaCha20Poly1305::new(key.into()));
        }
        let entry = self
            .file
            .keys
            .iter()
            .find(|k| k.id == id)
            .ok_or(CryptoError::UnknownKey(id))?;
        let key = decode_key(&entry.key).map_err(|_| CryptoError::UnknownKey(id))?;
        Ok(XChaCha20Poly1305::new((&key).into()))
    }

    /// Seals with the key file's current key: what wraps the tenants' data keys. A tenant's
    /// values go through `seal_for`; values older versions sealed this way still open.
    pub fn seal(&self, field: FieldRef<'_>, plaintext: &str) -> Sealed {
        let cipher = self
            .cipher(self.file.current)
            .expect("load() checked that the current key exists and decodes");
        seal_with(&cipher, self.file.current, field, plaintext)
    }

    /// Seals a value of `tenant_id` with the key derived from its data key, which must be
    /// installed (`Store::ensure_tenant_key`).
    pub fn seal_for(
        &self,
        tenant_id: i64,
        field: FieldRef<'_>,
        plaintext: &str,
    ) -> Result<Sealed, CryptoError> {
        let id = tenant_key_id(tenant_id);
        Ok(seal_with(&self.cipher(id)?, id, field, plaintext))
    }

    /// Whether the tenant's data key is installed.
    pub fn has_tenant_key(&self, tenant_id: i64) -> bool {
        let tenants = self.tenants.read().unwrap_or_else(|e| e.into_inner());
        tenants.contains_key(&tenant_id)
    }

    /// A fresh random data key for a tenant, wrapped with the current key of the key file;
    /// `install_tenant_key` makes it usable once it is stored.
    pub fn new_tenant_key(&self, tenant_id: i64) -> Sealed {
        self.seal(
            tenant_key_field(tenant_id),
            &hex_encode(&random_bytes::<32>()),
        )
    }

    /// Unwraps a tenant's stored data key and keeps the key derived from it.
    pub fn install_tenant_key(&self, tenant_id: i64, wrapped: &Sealed) -> Result<(), CryptoError> {
        if wrapped.key_id < 0 {
            return Err(CryptoError::Open);
        }
        let hex = self.open(tenant_key_field(tenant_id), wrapped)?;
        let data_key = decode_key(&hex).map_err(|_| CryptoError::Open)?;
        let key = tenant_sealing_key(tenant_id, &data_key);
        let mut tenants = self.tenants.write().unwrap_or_else(|e| e.into_inner());
        tenants.insert(tenant_id, key);
        Ok(())
    }
}

fn seal_with(
    cipher: &XChaCha20Poly1305,
    key_id: i64,
    field: FieldRef<'_>,
    plaintext: &str,
) -> Sealed {
    let nonce = random_bytes::<NONCE_LEN>();
    let aad = field.associated_data();
    let ct = cipher
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext.as_bytes(),
                aad: &aad,
            },
        )
        .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory buffers");
    let mut out = Vec::with_capacity(NONCE_LEN + ct.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&ct);
    Sealed {
        key_id,
        ciphertext: out,
    }
}

impl Keyring {
    /// Opens a value sealed with a key of the key file, or with an installed tenant key.
    pub fn open(&self, field: FieldRef<'_>, sealed: &Sealed) -> Result<String, CryptoError> {
        let cipher = self.cipher(sealed.key_id)?;
        if sealed.ciphertext.len() < NONCE_LEN {
            return Err(CryptoError::Open);
        }
        let (nonce, ct) = sealed.ciphertext.split_at(NONCE_LEN);
        let aad = field.associated_data();
        let plain = cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| CryptoError::Open)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Open)
    }

    /// Keyed, deterministic index of a normalised value, scoped to one tenant and column so
    /// equal values in different tenants cannot be linked.
    pub fn blind_index(&self, tenant_id: i64, column: &str, normalized: &str) -> Vec<u8> {
        let key = decode_key(&self.file.index_key).expect("load() validated the index key");
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&key).expect("HMAC accepts keys of any length");
        mac.update(&tenant_id.to_be_bytes());
        mac.update(column.as_bytes());
        mac.update(&[0]);
        mac.update(normalized.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }
}

/// A random bearer secret (API token, session, verification link) with a readable prefix.
pub fn new_secret(prefix: &str) -> String {
    format!("{prefix}_{}", hex_encode(&random_bytes::<32>()))
}

/// How secrets are stored: they carry 256 bits of entropy, so a plain SHA-256 suffices and
/// lets lookup be a single indexed equality.
pub fn secret_hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

/// Compares without an early exit, so timing does not reveal how much of a guess was right
/// (the lengths are not secret: every secret compared has a fixed length).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    buf
}

/// Lower-case hex, the spelling of keys, hashes and tokens everywhere; a slice rather than
/// `hex::encode`'s generic argument, so every caller passes a borrow alike.
pub fn hex_encode(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

fn decode_key(hex: &str) -> anyhow::Result<[u8; 32]> {
    let bytes = hex::decode(hex).ok().context("not hex digits")?;
    bytes
        .as_slice()
        .try_into()
        .map_err(|_| anyhow::anyhow!("expected 64 hex digits"))
}

/// Standard-alphabet base64, padding optional; `None` for anything else (including bits
/// left over in the last character, so each key has one spelling).
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let digits = text
        .strip_suffix("==")
        .or_else(|| text.strip_suffix('='))
        .unwrap_or(text);
    if digits.len() % 4 == 1 || (digits.len() < text.len() && !text.len().is_multiple_of(4)) {
        return None;
    }
    let value = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for group in digits.as_bytes().chunks(4) {
        let mut acc = 0u32;
        for &c in group {
            acc = acc << 6 | value(c)?;
        }
        let bits = group.len() * 6;
        let whole = bits / 8;
        let spare = bits - whole * 8;
        if acc & ((1 << spare) - 1) != 0 {
            return None;
        }
        let acc = acc >> spare;
        for i in (0..whole).rev() {
            out.push((acc >> (8 * i)) as u8);
        }
    }
    Some(out)
}

fn now_unix() -> i64 {
    jiff::Timestamp::now().as_second()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring() -> (Keyring, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let (ring, opened) = Keyring::load_or_create(&dir.path().join("keys.json"), None).unwrap();
        assert_eq!(opened, KeyFileOpened::Created);
        assert!(!ring.is_wrapped());
        (ring, dir)
    }

    const FIELD: FieldRef<'static> = FieldRef {
        table: "subscriptions",
        column: "phone",
        row: 7,
    };

    #[test]
    fn seal_then_open_round_trips_and_hides_the_value() {
        let (ring, _dir) = ring();
        let sealed = ring.seal(FIELD, "+46701234567");
        assert!(!sealed.ciphertext.windows(12).any(|w| w == b"+46701234567"));
        assert_eq!(ring.open(FIELD, &sealed).unwrap(), "+46701234567");
    }

    #[test]
    fn a_value_moved_to_another_row_or_column_does_not_open() {
        let (ring, _dir) = ring();
        let sealed = ring.seal(FIELD, "+46701234567");
        let other_row = FieldRef { row: 8, ..FIELD };
        let other_col = FieldRef {
            column: "email",
            ..FIELD
        };
        assert!(matches!(
            ring.open(other_row, &sealed),
            Err(CryptoError::Open)
        ));
        assert!(matches!(
            ring.open(other_col, &sealed),
            Err(CryptoError::Open)
        ));
        let mut tampered = sealed.clone();
        tampered.ciphertext[30] ^= 1;
        assert!(matches!(
            ring.open(FIELD, &tampered),
            Err(CryptoError::Open)
        ));
    }

    #[test]
    fn rotation_keeps_old_values_readable_and_seals_with_the_new_key() {
        let (mut ring, dir) = ring();
        let old = ring.seal(FIELD, "a@example.com");
        let new_id = ring.rotate().unwrap();
        assert_eq!(new_id, 2);
        let reloaded = Keyring::load(&dir.path().join("keys.json"), None).unwrap();
        assert_eq!(reloaded.open(FIELD, &old).unwrap(), "a@example.com");
        assert_eq!(reloaded.seal(FIELD, "x").key_id, 2);
        let mut ring = reloaded;
        assert_eq!(ring.retire_old_keys().unwrap(), 1);
        assert!(matches!(
            ring.open(FIELD, &old),
            Err(CryptoError::UnknownKey(1))
        ));
    }

    #[test]
    fn a_tenant_seals_with_its_own_key_which_opens_only_where_it_is_installed() {
        let (ring, _dir) = ring();
        assert!(matches!(
            ring.seal_for(1, FIELD, "x"),
            Err(CryptoError::NoTenantKey(1))
        ));
        let (wrapped1, wrapped2) = (ring.new_tenant_key(1), ring.new_tenant_key(2));
        assert_eq!(
            wrapped1.key_id, 1,
            "wrapped with the key file's current key"
        );
        assert!(
            matches!(
                ring.install_tenant_key(2, &wrapped1),
                Err(CryptoError::Open)
            ),
            "a wrapped key is bound to its tenant"
        );
        ring.install_tenant_key(1, &wrapped1).unwrap();
        ring.install_tenant_key(2, &wrapped2).unwrap();
        let sealed = ring.seal_for(1, FIELD, "+46701234567").unwrap();
        assert_eq!((sealed.key_id, sealed.tenant()), (-1, Some(1)));
        assert_eq!(ring.open(FIELD, &sealed).unwrap(), "+46701234567");
        let as_other_tenant = Sealed {
            key_id: -2,
            ..sealed.clone()
        };
        assert!(matches!(
            ring.open(FIELD, &as_other_tenant),
            Err(CryptoError::Open)
        ));

        // Another process with the same key file opens it once it has the wrapped key, and
        // not without it.
        let fresh = Keyring::load(ring.path(), None).unwrap();
        assert!(matches!(
            fresh.open(FIELD, &sealed),
            Err(CryptoError::NoTenantKey(1))
        ));
        fresh.install_tenant_key(1, &wrapped1).unwrap();
        assert_eq!(fresh.open(FIELD, &sealed).unwrap(), "+46701234567");
    }

    #[test]
    fn a_tenant_sealing_key_is_derived_per_tenant() {
        let data_key = [7u8; 32];
        let one = tenant_sealing_key(1, &data_key);
        assert_ne!(one, data_key);
        assert_ne!(one, tenant_sealing_key(2, &data_key));
        assert_eq!(one, tenant_sealing_key(1, &data_key));
    }

    #[test]
    fn blind_index_is_stable_per_tenant_and_differs_across_tenants() {
        let (ring, _dir) = ring();
        let a = ring.blind_index(1, "phone", "+46701234567");
        assert_eq!(a, ring.blind_index(1, "phone", "+46701234567"));
        assert_ne!(a, ring.blind_index(2, "phone", "+46701234567"));
        assert_ne!(a, ring.blind_index(1, "email", "+46701234567"));
    }

    #[cfg(unix)]
    #[test]
    fn key_file_is_created_private() {
        use std::os::unix::fs::PermissionsExt;
        let (ring, _dir) = ring();
        let mode = fs::metadata(ring.path()).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    fn master(byte: u8) -> MasterKey {
        MasterKey([byte; 32])
    }

    #[test]
    fn a_master_key_wraps_a_plain_key_file_and_is_needed_to_open_it() {
        let (mut plain, dir) = ring();
        let path = dir.path().join("keys.json");
        let sealed = plain.seal(FIELD, "+46701234567");
        let secret = plain.file.keys[0].key.clone();
        assert!(!Keyring::file_is_wrapped(&path).unwrap());

        let (mut ring, opened) = Keyring::load_or_create(&path, Some(&master(7))).unwrap();
        assert_eq!(opened, KeyFileOpened::Wrapped);
        assert!(ring.is_wrapped() && Keyring::file_is_wrapped(&path).unwrap());
        let on_disk = fs::read_to_string(&path).unwrap();
        assert!(!on_disk.contains(&secret) && !on_disk.contains(&plain.file.index_key));
        assert_eq!(ring.open(FIELD, &sealed).unwrap(), "+46701234567");

        let missing = Keyring::load(&path, None).unwrap_err().to_string();
        assert!(missing.contains("VARSEL_MASTER_KEY"), "{missing}");
        let wrong = Keyring::load(&path, Some(&master(8)))
            .unwrap_err()
            .to_string();
        assert!(wrong.contains("the master key does not open"), "{wrong}");

        // Rotation writes the file wrapped again; the same master key opens it.
        ring.rotate().unwrap();
        let (again, opened) = Keyring::load_or_create(&path, Some(&master(7))).unwrap();
        assert_eq!(opened, KeyFileOpened::Loaded);
        assert_eq!(again.key_ids(), [1, 2]);
        assert_eq!(again.open(FIELD, &sealed).unwrap(), "+46701234567");
        assert!(plain.rotate().is_ok(), "a plain keyring still writes plain");
        assert!(!Keyring::file_is_wrapped(&path).unwrap());
    }

    #[test]
    fn a_new_key_file_is_written_wrapped_when_there_is_a_master_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.json");
        let (ring, opened) = Keyring::load_or_create(&path, Some(&master(1))).unwrap();
        assert_eq!(opened, KeyFileOpened::Created);
        assert!(ring.is_wrapped());
        let sealed = ring.seal(FIELD, "a@example.com");
        let reloaded = Keyring::load(&path, Some(&master(1))).unwrap();
        assert_eq!(reloaded.open(FIELD, &sealed).unwrap(), "a@example.com");
        let mut text = fs::read_to_string(&path).unwrap();
        text = text.replacen("\"sealed\": \"", "\"sealed\": \"00", 1);
        fs::write(&path, text).unwrap();
        let changed = Keyring::load(&path, Some(&master(1)))
            .unwrap_err()
            .to_string();
        assert!(changed.contains("or the file was changed"), "{changed}");
    }

    #[test]
    fn master_keys_read_as_openssl_prints_them() {
        let key = MasterKey::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
        assert_eq!(key.0.to_vec(), (0u8..32).collect::<Vec<_>>());
        assert_eq!(format!("{key:?}"), "MasterKey(..)");
        let unpadded = MasterKey::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").unwrap();
        assert_eq!(unpadded.0, key.0);
        let short = MasterKey::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd").unwrap_err();
        assert!(short.contains("not 30"), "{short}");
        for bad in [
            "",
            "AAEC AwQF",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=",
            "@@@@",
        ] {
            assert!(MasterKey::parse(bad).is_err(), "{bad:?}");
        }
    }

    /// The encoder the decoder is checked against.
    fn base64_encode(bytes: &[u8], pad: bool) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let b = [
                chunk[0],
                chunk.get(1).copied().unwrap_or(0),
                chunk.get(2).copied().unwrap_or(0),
            ];
            let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
                } else if pad {
                    out.push('=');
                }
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn base64_decodes_what_it_encodes(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..80), pad in proptest::bool::ANY) {
            proptest::prop_assert_eq!(base64_decode(&base64_encode(&bytes, pad)), Some(bytes));
        }

        #[test]
        fn base64_accepts_only_canonical_spellings(text in "[A-Za-z0-9+/=]{0,12}|\\PC{0,12}") {
            if let Some(bytes) = base64_decode(&text) {
                proptest::prop_assert!(text == base64_encode(&bytes, true) || text == base64_encode(&bytes, false), "{text:?}");
            }
        }

        #[test]
        fn master_key_parsing_never_panics(text in "\\PC{0,60}") {
            if let Ok(key) = MasterKey::parse(&text) {
                let spelled = text.trim();
                proptest::prop_assert!(spelled == base64_encode(&key.0, true) || spelled == base64_encode(&key.0, false));
            }
        }
    }

    #[test]
    fn constant_time_eq_matches_slice_equality() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(constant_time_eq(b"", b""));
    }
}
