//! The store's format version: a small `FORMAT` file beside RocksDB's own files, written once
//! when a store is created and checked before RocksDB opens the directory.
//!
//! - A store stamped with a newer version than this build knows is refused, untouched (RocksDB
//!   is not even opened, so nothing is created or rewritten): a downgrade cannot silently
//!   misread data written by a newer layout.
//! - A store with no stamp but with RocksDB files was written before the stamp existed; its
//!   layout is format 1, so it is stamped 1 (the migration from "unversioned").
//! - A future layout change adds a step to [`migrate`] from each older version.
//!
//! The stamp is written to a temporary file, fsynced, renamed into place and the directory
//! fsynced, so a crash leaves either no stamp or a whole one.

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use crate::store::StoreError;

/// The format this build writes and reads.
pub const CURRENT: u32 = 1;
/// The oldest format this build migrates from.
pub const OLDEST: u32 = 1;
/// The stamp's file name in the data directory.
pub const FILE: &str = "FORMAT";
const PREFIX: &str = "raftka-store-format ";

/// Checks (and, for a new or pre-stamp store, writes) the format stamp of the store in `dir`,
/// before RocksDB opens it.
///
/// # Errors
/// [`StoreError::NewerFormat`] for a store written by a newer build;
/// [`StoreError::UnsupportedFormat`] for one older than this build can migrate; I/O errors.
pub fn check_and_stamp(dir: &Path) -> Result<(), StoreError> {
    match read(dir)? {
        Some(v) if v > CURRENT => Err(StoreError::NewerFormat {
            found: v,
            supported: CURRENT,
        }),
        Some(v) if v < OLDEST => Err(StoreError::UnsupportedFormat {
            found: v,
            oldest: OLDEST,
        }),
        Some(v) if v < CURRENT => migrate(dir, v),
        Some(_) => Ok(()),
        // No stamp: a new store, or one written before stamps existed (format 1).
        None => {
            fs::create_dir_all(dir)?;
            write(dir, CURRENT)
        }
    }
}

/// Upgrades a store from format `from` to [`CURRENT`], one version at a time. There is no
/// older format than 1 yet, so there is no step.
fn migrate(dir: &Path, from: u32) -> Result<(), StoreError> {
    tracing::info!(from, to = CURRENT, "migrating the store format");
    write(dir, CURRENT)
}

/// The stamped version, `None` when there is no stamp.
///
/// # Errors
/// A stamp that does not parse is [`StoreError::Corrupt`].
pub fn read(dir: &Path) -> Result<Option<u32>, StoreError> {
    let text = match fs::read_to_string(dir.join(FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    text.trim()
        .strip_prefix(PREFIX)
        .and_then(|v| v.trim().parse().ok())
        .map(Some)
        .ok_or_else(|| StoreError::Corrupt(format!("bad {FILE} stamp: {:?}", text.trim())))
}

/// Writes the stamp durably: temporary file, fsync, rename, fsync of the directory.
fn write(dir: &Path, version: u32) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{FILE}.tmp"));
    {
        let mut f = fs::File::create(&tmp)?;
        writeln!(f, "{PREFIX}{version}")?;
        f.sync_all()?;
    }
    fs::rename(&tmp, dir.join(FILE))?;
    fs::File::open(dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_store_is_stamped_with_the_current_format() -> Result<(), StoreError> {
        let dir = tempfile::tempdir()?;
        let store_dir = dir.path().join("data");
        check_and_stamp(&store_dir)?;
        assert_eq!(read(&store_dir)?, Some(CURRENT));
        // Idempotent.
        check_and_stamp(&store_dir)?;
        assert_eq!(read(&store_dir)?, Some(CURRENT));
        Ok(())
    }

    #[test]
    fn a_store_from_before_the_stamp_is_stamped_and_keeps_its_data() -> Result<(), StoreError> {
        let dir = tempfile::tempdir()?;
        let store = crate::store::Store::open(dir.path())?;
        store.drop_group(1)?; // a synced write, so the RocksDB files exist
        drop(store);
        fs::remove_file(dir.path().join(FILE))?;
        let store = crate::store::Store::open(dir.path())?;
        assert_eq!(read(dir.path())?, Some(CURRENT));
        drop(store);
        Ok(())
    }

    #[test]
    fn a_newer_or_unreadable_stamp_is_refused_and_left_as_it_is() -> Result<(), StoreError> {
        let dir = tempfile::tempdir()?;
        fs::write(dir.path().join(FILE), "raftka-store-format 7\n")?;
        match check_and_stamp(dir.path()) {
            Err(StoreError::NewerFormat {
                found: 7,
                supported,
            }) => assert_eq!(supported, CURRENT),
            other => panic!("expected NewerFormat, got {other:?}"),
        }
        assert_eq!(
            fs::read_to_string(dir.path().join(FILE))?,
            "raftka-store-format 7\n"
        );
        fs::write(dir.path().join(FILE), "something else")?;
        assert!(matches!(
            check_and_stamp(dir.path()),
            Err(StoreError::Corrupt(_))
        ));
        Ok(())
    }
}
