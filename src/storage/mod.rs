//! Backup storage: restic repositories written through rustic_core, recovery points, the item
//! catalog, retention and verify. It knows nothing of actix-web.
