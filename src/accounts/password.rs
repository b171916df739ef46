//! Argon2id password hashes in PHC string form. Hashing is slow on purpose, so it runs on a
//! blocking thread and never stalls the web workers.

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

use super::AccountError;

pub async fn hash_password(password: &str) -> Result<String, AccountError> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|hash| hash.to_string())
            .map_err(|_| AccountError::Hashing)
    })
    .await
    .map_err(|_| AccountError::Hashing)?
}

/// True when `password` matches `phc`. A malformed stored hash never matches.
pub async fn verify_password(password: &str, phc: &str) -> bool {
    let password = password.to_string();
    let phc = phc.to_string();
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// A hash of a random password, verified against when an account does not exist, so a wrong
/// email takes as long as a wrong password and does not reveal which accounts exist.
pub async fn dummy_verify(password: &str) {
    const DUMMY: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2t5dmF1bHRkdW1teQ$7rCM3nOlMhFMRuUDHa1DKxp6xOXT0QbSAHmlMmXtl9I";
    let _ = verify_password(password, DUMMY).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hash_is_argon2id_and_verifies() {
        let hash = hash_password("correct horse battery").await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash).await);
        assert!(!verify_password("wrong horse battery", &hash).await);
        assert!(!verify_password("x", "not a hash").await);
    }
}
