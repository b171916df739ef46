//! Small repository files (snapshots, locks) written by Skyvault itself, in restic's format: JSON,
//! zstd-compressed behind a `2` byte in format-2 repositories, sealed with the repository's master
//! key (a random 16-byte nonce, AES-256-CTR, Poly1305-AES over the ciphertext), and named by the
//! SHA-256 of the stored bytes. Writing them here, rather than through rustic_core, gives the
//! caller the new file's id at once (rustic_core's `save_snapshots` does not return it) and lets
//! Skyvault write lock files, which rustic_core does not know.

use std::sync::Arc;

use aes256ctr_poly1305aes::Aes256CtrPoly1305Aes;
use aes256ctr_poly1305aes::aead::Aead;
use rand::RngCore;
use rustic_core::{FileType, Id, WriteBackend};
use serde::Serialize;
use serde::de::DeserializeOwned;
use sha2::{Digest, Sha256};

use super::error::{StorageError, StorageResult};

type Nonce = aes256ctr_poly1305aes::aead::Nonce<Aes256CtrPoly1305Aes>;

/// The repository's master key, sealing and opening JSON files as restic does.
#[derive(Clone)]
pub(crate) struct RepositoryCipher {
    key: aes256ctr_poly1305aes::Key,
}

impl RepositoryCipher {
    pub(crate) fn new(master_key: &rustic_core::repofile::MasterKey) -> Self {
        let mut key = aes256ctr_poly1305aes::Key::default();
        key[0..32].copy_from_slice(&master_key.encrypt);
        key[32..48].copy_from_slice(&master_key.mac.k);
        key[48..64].copy_from_slice(&master_key.mac.r);
        Self { key }
    }

    /// `value` as the bytes of a repository file, and the id that names them.
    pub(crate) fn seal_json<T: Serialize>(&self, value: &T) -> StorageResult<(Id, Vec<u8>)> {
        let json = serde_json::to_vec(value)
            .map_err(|err| StorageError::Invalid(format!("repository file: {err}")))?;
        let mut plain = vec![2u8];
        plain.extend(zstd::encode_all(json.as_slice(), 3)?);
        let sealed = self.seal(&plain)?;
        let id: Id = hex::encode(Sha256::digest(&sealed))
            .parse()
            .map_err(|_| StorageError::Invalid("file id".into()))?;
        Ok((id, sealed))
    }

    /// The JSON value in a repository file; `None` when it does not open with this key or does
    /// not hold such JSON.
    pub(crate) fn open_json<T: DeserializeOwned>(&self, data: &[u8]) -> Option<T> {
        self.open(data)
            .and_then(decompress)
            .and_then(|json| serde_json::from_slice(&json).ok())
    }

    fn seal(&self, plain: &[u8]) -> StorageResult<Vec<u8>> {
        let mut nonce = Nonce::default();
        rand::rng().fill_bytes(&mut nonce);
        let sealed = Aes256CtrPoly1305Aes::new(&self.key)
            .encrypt(&nonce, plain)
            .map_err(|_| StorageError::Invalid("a repository file could not be sealed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    fn open(&self, data: &[u8]) -> Option<Vec<u8>> {
        if data.len() < 32 {
            return None;
        }
        Aes256CtrPoly1305Aes::new(&self.key)
            .decrypt(Nonce::from_slice(&data[..16]), &data[16..])
            .ok()
    }
}

/// Sealed files of the types rustic_core's backend knows (snapshots). Blocking.
#[derive(Clone)]
pub(crate) struct SealedFiles {
    backend: Arc<dyn WriteBackend>,
    cipher: RepositoryCipher,
}

impl SealedFiles {
    pub(crate) fn new(backend: Arc<dyn WriteBackend>, cipher: RepositoryCipher) -> Self {
        Self { backend, cipher }
    }

    /// Writes `value` as a new file of type `tpe` and returns its id.
    pub(crate) fn save<T: Serialize>(&self, tpe: FileType, value: &T) -> StorageResult<Id> {
        let (id, sealed) = self.cipher.seal_json(value)?;
        self.backend.write_bytes(tpe, &id, false, sealed.into())?;
        Ok(id)
    }

    /// Reads and opens a file; `None` when it does not open with this key.
    pub(crate) fn load<T: DeserializeOwned>(
        &self,
        tpe: FileType,
        id: &Id,
    ) -> StorageResult<Option<T>> {
        let data = self.backend.read_full(tpe, id)?;
        Ok(self.cipher.open_json(&data))
    }
}

/// restic and rustic read JSON plain (starting with `{` or `[`) or as a `2` byte and zstd.
fn decompress(plain: Vec<u8>) -> Option<Vec<u8>> {
    match plain.first() {
        Some(2) => zstd::decode_all(&plain[1..]).ok(),
        Some(b'{' | b'[') => Some(plain),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_json_opens_only_with_the_same_key() {
        let cipher = RepositoryCipher::new(&rustic_core::repofile::MasterKey::new());
        let (id, sealed) = cipher.seal_json(&serde_json::json!({"time": 1})).unwrap();
        assert_eq!(id.to_hex().as_str(), hex::encode(Sha256::digest(&sealed)));
        let opened: serde_json::Value = cipher.open_json(&sealed).unwrap();
        assert_eq!(opened["time"], 1);
        let other = RepositoryCipher::new(&rustic_core::repofile::MasterKey::new());
        assert!(other.open_json::<serde_json::Value>(&sealed).is_none());
        assert_eq!(decompress(b"x".to_vec()), None);
    }
}
