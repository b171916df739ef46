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
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// Reads the key at `path`, creating it (mode 0600) when it does not exist yet.
    pub fn load_or_create(path: &Path) -> Result<Self, CryptoError> {
        let key_file_error = |source| CryptoError::KeyFile {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(text.trim()).ok_or_else(|| CryptoError::BadKey {
                path: path.display().to_string(),
            }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent).map_err(key_file_error)?;
                }
                let mut key = [0u8; KEY_LEN];
                OsRng.fill_bytes(&mut key);
                write_private_file(path, B64.encode(key).as_bytes()).map_err(key_file_error)?;
                Ok(Self::from_bytes(&key))
            }
            Err(err) => Err(key_file_error(err)),
        }
    }

    pub fn from_bytes(key: &[u8; KEY_LEN]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    fn from_base64(text: &str) -> Option<Self> {
        let bytes = B64.decode(text).ok()?;
        let key: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(Self::from_bytes(&key))
    }

    /// A fresh random key, for tests.
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
    fn key_file_is_created_private_and_reloaded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let first = MasterKey::load_or_create(&path).unwrap();
        let sealed = first.seal(b"x", "c");
        let again = MasterKey::load_or_create(&path).unwrap();
        assert_eq!(again.open(&sealed, "c").unwrap(), b"x");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
