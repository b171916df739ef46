//! The master key and the sealing of secrets at rest (client secrets, repository passwords).
//! The key lives outside the database — a file in the data folder with mode 0600, or the file
//! named by `SKYVAULT_MASTER_KEY_FILE` — so a stolen database alone reveals no secret.
//! This module never logs or displays a key or a plaintext.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, OsRng, Payload, rand_core::RngCore};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const KEY_LEN: usize = 32;
const NONCE_LEN: usize = 24;
/// Sealed values start with a version so the scheme can change without guessing.
const PREFIX: &str = "sv1:";

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("cannot read or write the master key file {path}: {source}")]
    KeyFile {
        path: String,
        source: std::io::Error,
    },
    #[error("the master key file {path} must hold exactly 32 bytes (base64), found something else")]
    BadKey { path: String },
    #[error("a sealed secret is damaged or was sealed with another master key")]
    Unseal,
}

/// The process's master key. Cloning shares nothing mutable; the key is read once at start-up.
#[derive(Clone)]
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    /// Kept only to derive purpose-bound subkeys (e.g. the session cookie signing key).
    raw: [u8; KEY_LEN],
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Reads the key at `path`; `None` when there is no file. Whether a missing key may be
    /// replaced by a new one is for the caller to decide (see `key_custody`): never when the
    /// database already holds secrets.
    pub fn load(path: &Path) -> Result<Option<Self>, CryptoError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                Self::from_base64(text.trim())
                    .map(Some)
                    .ok_or_else(|| CryptoError::BadKey {
                        path: path.display().to_string(),
                    })
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(CryptoError::KeyFile {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Writes this key to `path` (mode 0600) so that the file is, at every instant, either the old
    /// content or this whole key: a temporary file beside it, flushed to disk, then renamed over it.
    pub fn write_file(&self, path: &Path) -> Result<(), CryptoError> {
        let temporary = self.write_temporary(path)?;
        std::fs::rename(&temporary, path).map_err(|source| key_file_error(path, source))?;
        sync_parent(path).map_err(|source| key_file_error(path, source))
    }

    /// Writes this key to `path` only if there is no file there yet (never half a key): false
    /// when another process was first, whose key is then the one to use.
    pub fn write_new_file(&self, path: &Path) -> Result<bool, CryptoError> {
        let temporary = self.write_temporary(path)?;
        // A hard link, unlike a rename, never replaces an existing file.
        let linked = std::fs::hard_link(&temporary, path);
        let _ = std::fs::remove_file(&temporary);
        match linked {
            Ok(()) => {
                sync_parent(path).map_err(|source| key_file_error(path, source))?;
                Ok(true)
            }
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(source) => Err(key_file_error(path, source)),
        }
    }

    /// `<path>.tmp` holding this key, flushed to disk, in a folder only its owner can read.
    fn write_temporary(&self, path: &Path) -> Result<std::path::PathBuf, CryptoError> {
        crate::private_files::create_private_dir(parent_dir(path))
            .map_err(|source| key_file_error(path, source))?;
        let mut temporary = path.as_os_str().to_owned();
        // Named per process, so two processes starting at once never share one.
        temporary.push(format!(".{}.tmp", std::process::id()));
        let temporary = std::path::PathBuf::from(temporary);
        // A leftover from a crash during an earlier write holds nothing anyone relies on.
        match std::fs::remove_file(&temporary) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                return Err(key_file_error(path, err));
            }
            _ => {}
        }
        write_private_file(&temporary, B64.encode(self.raw).as_bytes())
            .map_err(|source| key_file_error(path, source))?;
        Ok(temporary)
    }

    /// A keyed hash of a fixed label: equal for the same key, different for any other, and it
    /// reveals nothing of the key. Recorded in the database to recognise the right key file.
    pub fn check_value(&self) -> String {
        hex::encode(&self.derive_subkey("skyvault master key check v1")[..32])
    }

    pub fn from_bytes(key: &[u8; KEY_LEN]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
            raw: *key,
        }
    }

    fn from_base64(text: &str) -> Option<Self> {
        let bytes = B64.decode(text).ok()?;
        let key: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(Self::from_bytes(&key))
    }

    /// A key for one purpose, derived deterministically so every node computes the same one.
    pub fn derive_subkey(&self, purpose: &str) -> [u8; 64] {
        use sha2::{Digest, Sha512};
        let mut hasher = Sha512::new();
        hasher.update(b"skyvault-subkey\0");
        hasher.update(purpose.as_bytes());
        hasher.update([0u8]);
        hasher.update(self.raw);
        hasher.finalize().into()
    }

    /// A fresh random key (a first start, a rotation, tests).
    pub fn random() -> Self {
        let mut key = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut key);
        Self::from_bytes(&key)
    }

    /// Seals `plaintext`. `context` (e.g. "customer:<id>:repository") is bound into the tag, so a
    /// sealed value copied into another row does not open there.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let sealed = self
            .cipher
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: context.as_bytes(),
                },
            )
            // Encryption with a valid key and nonce length cannot fail; an empty result would fail
            // to open later rather than leak anything.
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        format!("{PREFIX}{}", B64.encode(out))
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<Vec<u8>, CryptoError> {
        let body = sealed.strip_prefix(PREFIX).ok_or(CryptoError::Unseal)?;
        let bytes = B64.decode(body).map_err(|_| CryptoError::Unseal)?;
        if bytes.len() < NONCE_LEN {
            return Err(CryptoError::Unseal);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        self.cipher
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Unseal)
    }

    pub fn open_string(&self, sealed: &str, context: &str) -> Result<String, CryptoError> {
        String::from_utf8(self.open(sealed, context)?).map_err(|_| CryptoError::Unseal)
    }
}

fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

fn key_file_error(path: &Path, source: std::io::Error) -> CryptoError {
    CryptoError::KeyFile {
        path: path.display().to_string(),
        source,
    }
}

fn parent_dir(path: &Path) -> &Path {
    path.parent()
        .filter(|parent| !parent.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Makes a rename or link of `path` durable.
pub(crate) fn sync_parent(path: &Path) -> std::io::Result<()> {
    sync_dir(parent_dir(path))
}

/// Makes a rename in `dir` durable: without it a crash can bring back the old directory entry.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    std::fs::File::open(dir)?.sync_all()?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secret_opens_only_with_same_key_and_context() {
        let key = MasterKey::random();
        let sealed = key.seal(b"client-secret", "org:1");
        assert_eq!(key.open(&sealed, "org:1").unwrap(), b"client-secret");
        assert!(key.open(&sealed, "org:2").is_err());
        assert!(MasterKey::random().open(&sealed, "org:1").is_err());
        assert!(!sealed.contains("client-secret"));
    }

    #[test]
    fn key_file_is_written_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys").join("master.key");
        assert!(MasterKey::load(&path).unwrap().is_none());
        let first = MasterKey::random();
        first.write_file(&path).unwrap();
        let sealed = first.seal(b"x", "c");
        let again = MasterKey::load(&path).unwrap().unwrap();
        assert_eq!(again.open(&sealed, "c").unwrap(), b"x");
        assert_eq!(again.check_value(), first.check_value());
        assert_ne!(MasterKey::random().check_value(), first.check_value());
        let names: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, ["master.key"]);
        assert!(!MasterKey::random().write_new_file(&path).unwrap());
        assert_eq!(
            MasterKey::load(&path).unwrap().unwrap().check_value(),
            first.check_value()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = std::fs::metadata(path.parent().unwrap())
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[test]
    fn a_damaged_key_file_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(
            MasterKey::load(&path),
            Err(CryptoError::BadKey { .. })
        ));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key");
    }
}
