//! Permissions of the files that hold contact data or the keys to it: the data directory,
//! the SQLite database (with its -wal and -shm files) and the data key file are for the
//! service's own user only. The database is sealed field by field, but it also holds
//! addresses, names and who was told what, and a readable key file opens everything.
//!
//! Only Unix has these modes; elsewhere the functions create what is missing and check
//! nothing.

use std::fs;
use std::path::Path;

use anyhow::Context;

/// Creates `dir` (and missing parents) as 0700, or tightens an existing one that group or
/// others can reach.
pub fn private_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;
    tighten(dir, "directory")
}

/// Creates the SQLite database file empty as 0600 when it is missing, so SQLite (which
/// gives its -wal and -shm files the mode of the database) never creates it world-readable;
/// and tightens the database, -wal and -shm files that exist.
pub fn private_database(db: &Path) -> anyhow::Result<()> {
    if !db.exists() {
        if let Some(parent) = db.parent().filter(|p| !p.as_os_str().is_empty())
            && !parent.exists()
        {
            private_dir(parent)?;
        }
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(false);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        options
            .open(db)
            .with_context(|| format!("cannot create the SQLite database {}", db.display()))?;
    }
    let name = db.as_os_str().to_os_string();
    for suffix in ["", "-wal", "-shm"] {
        let mut path = name.clone();
        path.push(suffix);
        let path = Path::new(&path);
        if path.exists() {
            tighten(path, "database file")?;
        }
    }
    Ok(())
}

/// Refuses a secret file that group or others may read or write: the operator has to fix
/// it rather than the service carrying on with a key others may already have copied.
pub fn check_secret_file(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .permissions()
            .mode()
            & 0o777;
        if mode & 0o066 != 0 {
            anyhow::bail!(
                "the data key file {} has mode {mode:04o}: group or others can read or change it. Run `chmod 600 {}` (and consider the key exposed if others could read it: rotate it)",
                path.display(),
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Takes group and other permissions away, logging the change.
fn tighten(path: &Path, what: &str) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(path)
            .with_context(|| format!("cannot read {}", path.display()))?
            .permissions()
            .mode()
            & 0o7777;
        if mode & 0o077 != 0 {
            let tight = mode & 0o700;
            fs::set_permissions(path, fs::Permissions::from_mode(tight)).with_context(|| {
                format!(
                    "the {what} {} has mode {mode:04o} and cannot be made private (chmod {tight:o} it, or run as its owner)",
                    path.display()
                )
            })?;
            tracing::warn!(path = %path.display(), from = %format!("{mode:04o}"), to = %format!("{tight:04o}"),
                "tightened the permissions of the {what}: only the service's user may reach it");
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).unwrap().permissions().mode() & 0o7777
    }

    fn scratch() -> std::path::PathBuf {
        let p = std::env::temp_dir().join(format!(
            "varsel-files-{}",
            crate::crypto::hex_encode(&crate::crypto::random_bytes::<8>())
        ));
        fs::create_dir_all(&p).unwrap();
        p
    }

    #[test]
    fn a_new_directory_and_database_are_private_and_wide_ones_are_tightened() {
        let root = scratch();
        let dir = root.join("a/b");
        private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        let db = dir.join("varsel.db");
        private_database(&db).unwrap();
        assert_eq!(mode(&db), 0o600);
        assert_eq!(fs::metadata(&db).unwrap().len(), 0);

        fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(&db, fs::Permissions::from_mode(0o644)).unwrap();
        let wal = dir.join("varsel.db-wal");
        fs::write(&wal, b"x").unwrap();
        fs::set_permissions(&wal, fs::Permissions::from_mode(0o664)).unwrap();
        private_dir(&dir).unwrap();
        private_database(&db).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&db), 0o600);
        assert_eq!(mode(&wal), 0o600);
        assert_eq!(
            fs::read(&wal).unwrap(),
            b"x",
            "tightening leaves the content"
        );
        fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_key_file_others_can_read_or_write_is_refused_with_the_fix() {
        let root = scratch();
        let key = root.join("keys.json");
        fs::write(&key, "{}").unwrap();
        for (m, refused) in [(0o600, false), (0o400, false), (0o640, true), (0o602, true)] {
            fs::set_permissions(&key, fs::Permissions::from_mode(m)).unwrap();
            match check_secret_file(&key) {
                Ok(()) => assert!(!refused, "{m:o} passed"),
                Err(e) => {
                    assert!(refused, "{m:o} refused: {e}");
                    assert!(
                        e.to_string()
                            .contains(&format!("chmod 600 {}", key.display())),
                        "{e}"
                    );
                }
            }
        }
        fs::remove_dir_all(root).unwrap();
    }
}
