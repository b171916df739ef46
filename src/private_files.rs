//! Files only Skyvault's own user may read: the data folder (0700), the SQLite database and its
//! journal files (0600) and the master key (0600). Anyone else on the machine who could read them
//! would hold every sealed secret together with the key that opens it. This module only creates
//! folders and narrows modes; it never widens them and never deletes anything.

use std::io;
use std::path::Path;

/// Creates `dir` and any missing parents with mode 0700. An existing folder is left as it is.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Creates `dir` as `create_private_dir` does, or narrows an existing one to its owner: folders
/// made by older versions (or by hand) were readable by everyone.
pub fn secure_dir(dir: &Path) -> io::Result<()> {
    create_private_dir(dir)?;
    restrict_to_owner(dir);
    Ok(())
}

/// Creates an empty `file` with mode 0600 unless it exists, then narrows it to its owner. SQLite
/// gives its `-wal` and `-shm` files the mode of the database file, so they follow.
pub fn secure_file(file: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(file)?;
    restrict_to_owner(file);
    Ok(())
}

/// Removes every permission of the group and of others from an existing file or folder; a missing
/// one is left missing. A mode it may not change (a folder owned by someone else, a read-only
/// mount) is reported in the log rather than stopping the start: the operator chose that place.
pub fn restrict_to_owner(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match std::fs::metadata(path) {
            Ok(metadata) => metadata.permissions().mode(),
            Err(err) if err.kind() == io::ErrorKind::NotFound => return,
            Err(err) => {
                tracing::warn!("cannot read the permissions of {}: {err}", path.display());
                return;
            }
        };
        if mode & 0o077 == 0 {
            return;
        }
        match std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o077)) {
            Ok(()) => tracing::info!(
                "{} was open to other users; now only Skyvault's own user may use it",
                path.display()
            ),
            Err(err) => tracing::warn!(
                "{} is open to other users and its permissions cannot be narrowed: {err}",
                path.display()
            ),
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
#[cfg(unix)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn new_folders_and_files_are_private_and_old_ones_are_narrowed() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("a").join("data");
        secure_dir(&data).unwrap();
        assert_eq!(mode(&data), 0o700);
        let db = data.join("skyvault.sqlite");
        secure_file(&db).unwrap();
        assert_eq!(mode(&db), 0o600);

        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(&db, b"kept").unwrap();
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        secure_dir(&data).unwrap();
        secure_file(&db).unwrap();
        assert_eq!(mode(&data), 0o700);
        assert_eq!(mode(&db), 0o600);
        assert_eq!(std::fs::read(&db).unwrap(), b"kept");
    }
}
