//! The two persisted ZAB epochs.
//!
//! `acceptedEpoch` is the epoch a server promised in discovery (it will not
//! follow an older leader); `currentEpoch` is the epoch whose NEWLEADER it
//! acknowledged. Both must survive crashes or a server could vote twice in
//! one epoch. As in ZooKeeper each lives in its own file holding the number
//! as decimal text, replaced atomically (temp file, fsync, rename, fsync
//! directory). A missing file means epoch 0 (a fresh server). [`EpochStore::save`]
//! writes `acceptedEpoch` before `currentEpoch`, so a crash between the two
//! leaves `current <= accepted`, the order the protocol moves them in.
//!
//! Beside them, `leaseMark` holds ZAB's lease mark (`1` while this member may
//! have promised an old leader's read lease, see `zab/src/read_index.rs`;
//! missing or `0` otherwise), written the same way.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use super::fsutil::{create_dir_durable, io_err, write_atomic};
use super::{Error, Result};

/// The persisted epochs of one server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Epochs {
    pub accepted: u32,
    pub current: u32,
    /// ZAB's lease mark (`Persisted::lease_mark`).
    pub lease_mark: bool,
}

/// Where [`Epochs`] are kept.
pub trait EpochStore: Send {
    /// The stored epochs; 0 for an epoch never saved.
    fn load(&self) -> Result<Epochs>;
    /// Durably stores both epochs and the lease mark (each file only if its value
    /// changed).
    fn save(&mut self, epochs: Epochs) -> Result<()>;
}

const ACCEPTED: &str = "acceptedEpoch";
const CURRENT: &str = "currentEpoch";
const LEASE_MARK: &str = "leaseMark";

/// The files [`FileEpochStore`] keeps in its directory, in the order it reads them.
pub const FILES: [&str; 3] = [ACCEPTED, CURRENT, LEASE_MARK];

/// The value one of [`FILES`] holds (`text` is its contents), or why it is corrupt:
/// every file holds a decimal number, the lease mark only 0 or 1.
pub fn parse_file(name: &str, text: &str) -> std::result::Result<u32, String> {
    let n = text
        .trim()
        .parse::<u32>()
        .map_err(|e| format!("epoch file does not hold a number: {e}"))?;
    if name == LEASE_MARK && n > 1 {
        return Err(format!("lease mark is {n}, not 0 or 1"));
    }
    Ok(n)
}

/// Epoch files `DIR/acceptedEpoch` and `DIR/currentEpoch`.
#[derive(Debug)]
pub struct FileEpochStore {
    dir: PathBuf,
    /// What is on disk, to skip rewriting an unchanged file.
    cached: Epochs,
}

impl FileEpochStore {
    /// Opens (creating `dir` if needed) and reads the current values.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        create_dir_durable(&dir)?;
        let mut s = FileEpochStore {
            dir,
            cached: Epochs::default(),
        };
        s.cached = s.load()?;
        Ok(s)
    }

    /// What is on disk (as last loaded or saved), to change one value of it.
    pub fn stored(&self) -> Epochs {
        self.cached
    }

    fn read_one(&self, name: &str) -> Result<u32> {
        let path = self.dir.join(name);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        parse_file(name, &text).map_err(|reason| Error::Corrupt {
            path,
            offset: 0,
            reason,
        })
    }
}

impl EpochStore for FileEpochStore {
    fn load(&self) -> Result<Epochs> {
        Ok(Epochs {
            accepted: self.read_one(ACCEPTED)?,
            current: self.read_one(CURRENT)?,
            lease_mark: self.read_one(LEASE_MARK)? == 1,
        })
    }

    fn save(&mut self, epochs: Epochs) -> Result<()> {
        if epochs.accepted != self.cached.accepted {
            write_atomic(
                &self.dir,
                ACCEPTED,
                format!("{}\n", epochs.accepted).as_bytes(),
            )?;
            self.cached.accepted = epochs.accepted;
        }
        if epochs.current != self.cached.current {
            write_atomic(
                &self.dir,
                CURRENT,
                format!("{}\n", epochs.current).as_bytes(),
            )?;
            self.cached.current = epochs.current;
        }
        if epochs.lease_mark != self.cached.lease_mark {
            let text: &[u8] = if epochs.lease_mark { b"1\n" } else { b"0\n" };
            write_atomic(&self.dir, LEASE_MARK, text)?;
            self.cached.lease_mark = epochs.lease_mark;
        }
        Ok(())
    }
}

/// In-memory epochs for simulation; clones share the same "disk", so a
/// restarted simulated server sees what its previous incarnation saved.
#[derive(Debug, Clone, Default)]
pub struct MemoryEpochStore {
    disk: Arc<Mutex<Epochs>>,
}

impl EpochStore for MemoryEpochStore {
    fn load(&self) -> Result<Epochs> {
        Ok(*self.disk.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn save(&mut self, epochs: Epochs) -> Result<()> {
        *self.disk.lock().unwrap_or_else(PoisonError::into_inner) = epochs;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(store: &mut dyn EpochStore) {
        assert_eq!(store.load().unwrap(), Epochs::default());
        let e = Epochs {
            accepted: 7,
            current: 6,
            lease_mark: true,
        };
        store.save(e).unwrap();
        assert_eq!(store.load().unwrap(), e);
        let e2 = Epochs {
            accepted: 7,
            current: 7,
            lease_mark: false,
        };
        store.save(e2).unwrap();
        assert_eq!(store.load().unwrap(), e2);
    }

    #[test]
    fn file_epochs_round_trip_and_survive_reopen() {
        let d = tempfile::tempdir().unwrap();
        let mut s = FileEpochStore::open(d.path()).unwrap();
        round_trip(&mut s);
        drop(s);
        let s = FileEpochStore::open(d.path()).unwrap();
        assert_eq!(
            s.load().unwrap(),
            Epochs {
                accepted: 7,
                current: 7,
                lease_mark: false,
            }
        );
        assert_eq!(
            fs::read_to_string(d.path().join("leaseMark")).unwrap(),
            "0\n"
        );
        assert_eq!(
            fs::read_to_string(d.path().join("acceptedEpoch")).unwrap(),
            "7\n"
        );
        assert!(!d.path().join("acceptedEpoch.tmp").exists());
    }

    #[test]
    fn file_epochs_missing_files_are_zero_and_one_file_alone_is_read() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("acceptedEpoch"), "3\n").unwrap();
        let s = FileEpochStore::open(d.path()).unwrap();
        assert_eq!(
            s.load().unwrap(),
            Epochs {
                accepted: 3,
                current: 0,
                lease_mark: false,
            }
        );
    }

    #[test]
    fn file_epochs_garbage_is_corruption() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("currentEpoch"), "x1\n").unwrap();
        match FileEpochStore::open(d.path()) {
            Err(Error::Corrupt { path, .. }) => assert!(path.ends_with("currentEpoch")),
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn file_lease_mark_other_than_0_or_1_is_corruption() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join("leaseMark"), "2\n").unwrap();
        match FileEpochStore::open(d.path()) {
            Err(Error::Corrupt { path, .. }) => assert!(path.ends_with("leaseMark")),
            other => panic!("expected corruption, got {other:?}"),
        }
    }

    #[test]
    fn memory_epochs_round_trip_and_are_shared_by_clones() {
        let mut s = MemoryEpochStore::default();
        round_trip(&mut s);
        let clone = s.clone();
        assert_eq!(clone.load().unwrap().current, 7);
    }
}
