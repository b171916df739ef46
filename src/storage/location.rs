//! Where repositories live: a local folder (`file:///srv/skyvault/storage`, the default
//! `./data/storage`) or an S3-compatible bucket (`s3://bucket/prefix` plus endpoint, region and
//! keys). Each customer gets its own repository below the location, named by the customer id;
//! an encrypted plan's repository sits beside it, named `<customer id>-encrypted-<repository id>`.
//! This module only turns settings into `rustic_backend` options; it never touches the network,
//! and never prints a secret key (its `Debug` redacts it).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use rustic_backend::BackendOptions;

use crate::ids::CustomerId;

use super::catalog::RepositoryRef;
use super::error::{StorageError, StorageResult};

/// The default location when `SKYVAULT_STORAGE` is not set.
pub const DEFAULT_LOCATION: &str = "./data/storage";

#[derive(Clone, PartialEq, Eq)]
pub enum StorageLocation {
    Folder(PathBuf),
    S3(S3Location),
}

#[derive(Clone, PartialEq, Eq, Default)]
pub struct S3Location {
    pub bucket: String,
    /// Key prefix inside the bucket, without leading or trailing slash; may be empty.
    pub prefix: String,
    /// e.g. `https://s3.eu-central-1.amazonaws.com` or `http://127.0.0.1:9000`.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

impl fmt::Debug for StorageLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Folder(path) => f.debug_tuple("Folder").field(path).finish(),
            Self::S3(s3) => f
                .debug_struct("S3")
                .field("bucket", &s3.bucket)
                .field("prefix", &s3.prefix)
                .field("endpoint", &s3.endpoint)
                .field("region", &s3.region)
                .field("access_key_id", &s3.access_key_id)
                .field(
                    "secret_access_key",
                    &s3.secret_access_key.as_ref().map(|_| "***"),
                )
                .finish(),
        }
    }
}

impl Default for StorageLocation {
    fn default() -> Self {
        Self::Folder(PathBuf::from(DEFAULT_LOCATION))
    }
}

impl StorageLocation {
    /// Parses `file:///abs/path`, a bare path, or `s3://bucket/prefix`. S3 endpoint, region and keys
    /// come from separate settings (`with_s3_settings`) so that secrets never sit inside a URL.
    pub fn parse(text: &str) -> StorageResult<Self> {
        let invalid = |reason: &str| StorageError::Location {
            location: text.to_string(),
            reason: reason.to_string(),
        };
        if let Some(rest) = text.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(invalid("the bucket name is missing"));
            }
            return Ok(Self::S3(S3Location {
                bucket: bucket.to_string(),
                prefix: prefix.trim_matches('/').to_string(),
                ..S3Location::default()
            }));
        }
        let path = match text.strip_prefix("file://") {
            Some(path) if path.starts_with('/') => path,
            Some(_) => {
                return Err(invalid(
                    "a file:// location needs an absolute path (file:///…)",
                ));
            }
            None if text.contains("://") => {
                return Err(invalid("only file:// and s3:// locations are supported"));
            }
            None => text,
        };
        if path.is_empty() {
            return Err(invalid("the folder is empty"));
        }
        Ok(Self::Folder(PathBuf::from(path)))
    }

    /// Fills in the S3 connection settings; has no effect on a folder location.
    pub fn with_s3_settings(
        mut self,
        endpoint: Option<String>,
        region: Option<String>,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
    ) -> Self {
        if let Self::S3(s3) = &mut self {
            s3.endpoint = endpoint;
            s3.region = region;
            s3.access_key_id = access_key_id;
            s3.secret_access_key = secret_access_key;
        }
        self
    }

    /// A human-readable description of one customer's repository, stored in the catalog and shown
    /// to operators (for `restic -r …`). Holds no secret.
    pub fn describe_repository(&self, customer: CustomerId) -> String {
        self.describe(RepositoryRef::Customer(customer))
    }

    /// The same for any repository of a customer (an encrypted plan's included).
    pub fn describe(&self, repository: RepositoryRef) -> String {
        match self {
            Self::Folder(path) => path.join(repository.to_string()).display().to_string(),
            Self::S3(s3) => format!("s3:{}/{}", s3.bucket, s3_root(&s3.prefix, repository)),
        }
    }

    /// The rustic_backend options for one repository.
    pub fn backend_options(&self, repository: RepositoryRef) -> BackendOptions {
        match self {
            Self::Folder(path) => BackendOptions::default()
                .repository(path.join(repository.to_string()).display().to_string()),
            Self::S3(_) => BackendOptions::default()
                .repository("opendal:s3")
                .options(self.opendal_options(repository).1),
        }
    }

    /// The customer's repository as an OpenDAL service and its options: the same place rustic's
    /// backend writes to, for the files rustic_core does not know (restic's lock files).
    pub(crate) fn opendal_options(
        &self,
        repository: RepositoryRef,
    ) -> (&'static str, BTreeMap<String, String>) {
        match self {
            Self::Folder(path) => {
                let root = path.join(repository.to_string()).display().to_string();
                ("fs", BTreeMap::from([("root".to_string(), root)]))
            }
            Self::S3(s3) => {
                let mut options = BTreeMap::new();
                options.insert("bucket".to_string(), s3.bucket.clone());
                options.insert(
                    "root".to_string(),
                    format!("/{}", s3_root(&s3.prefix, repository)),
                );
                // S3-compatible servers (MinIO, Garage, Ceph) often want a region even when it
                // means nothing; "us-east-1" is what they accept.
                options.insert(
                    "region".to_string(),
                    s3.region.clone().unwrap_or_else(|| "us-east-1".to_string()),
                );
                if let Some(endpoint) = &s3.endpoint {
                    options.insert("endpoint".to_string(), endpoint.clone());
                }
                if let Some(key) = &s3.access_key_id {
                    options.insert("access_key_id".to_string(), key.clone());
                }
                if let Some(secret) = &s3.secret_access_key {
                    options.insert("secret_access_key".to_string(), secret.clone());
                }
                ("s3", options)
            }
        }
    }
}

fn s3_root(prefix: &str, repository: RepositoryRef) -> String {
    if prefix.is_empty() {
        repository.to_string()
    } else {
        format!("{prefix}/{repository}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_folders_and_buckets() {
        assert_eq!(
            StorageLocation::parse("file:///srv/backups").unwrap(),
            StorageLocation::Folder(PathBuf::from("/srv/backups"))
        );
        assert_eq!(
            StorageLocation::parse("./data/storage").unwrap(),
            StorageLocation::Folder(PathBuf::from("./data/storage"))
        );
        let StorageLocation::S3(s3) = StorageLocation::parse("s3://bucket/a/b/").unwrap() else {
            panic!("expected S3");
        };
        assert_eq!((s3.bucket.as_str(), s3.prefix.as_str()), ("bucket", "a/b"));
        assert!(StorageLocation::parse("ftp://x").is_err());
        assert!(StorageLocation::parse("file://relative").is_err());
        assert!(StorageLocation::parse("s3:///prefix").is_err());
    }

    #[test]
    fn debug_never_shows_the_secret_key() {
        let location = StorageLocation::parse("s3://b").unwrap().with_s3_settings(
            None,
            None,
            Some("AKIA".into()),
            Some("very-secret".into()),
        );
        assert!(!format!("{location:?}").contains("very-secret"));
    }
}
