//! File-system helpers shared by the log, snapshots and epochs: error
//! context, directory fsync and the write-temp/fsync/rename/fsync-dir dance
//! that makes a whole-file replacement atomic and durable.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::{Error, Result};

/// Attaches an operation name and a path to an I/O error.
pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { op, path, source }
}

/// Makes the directory entries of `dir` (creations, renames, deletions) durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<()> {
    let f = File::open(dir).map_err(io_err("open dir", dir))?;
    f.sync_all().map_err(io_err("fsync dir", dir))
}

/// Creates `dir` (and parents) and makes its entry in the parent durable.
pub(crate) fn create_dir_durable(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(io_err("create dir", dir))?;
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fsync_dir(parent)?;
    }
    Ok(())
}

/// Suffix of files being written; they are ignored and removed on open.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

/// Replaces `dir/name` with `bytes`: write `name.tmp`, fsync it, rename it
/// over `name`, fsync `dir`. A crash leaves either the old or the new file.
pub(crate) fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    write_atomic_parts(dir, name, &[bytes])
}

/// [`write_atomic`] of the concatenation of `parts`.
pub(crate) fn write_atomic_parts(dir: &Path, name: &str, parts: &[&[u8]]) -> Result<()> {
    let tmp: PathBuf = dir.join(format!("{name}{TMP_SUFFIX}"));
    let dst = dir.join(name);
    {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(io_err("create", &tmp))?;
        for part in parts {
            f.write_all(part).map_err(io_err("write", &tmp))?;
        }
        f.sync_all().map_err(io_err("fsync", &tmp))?;
    }
    fs::rename(&tmp, &dst).map_err(io_err("rename", &tmp))?;
    fsync_dir(dir)
}

/// Removes leftover `*.tmp` files of an interrupted `write_atomic`.
pub(crate) fn remove_tmp_files(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).map_err(io_err("read dir", dir))? {
        let entry = entry.map_err(io_err("read dir", dir))?;
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(TMP_SUFFIX) {
            let p = entry.path();
            tracing::info!(path = %p.display(), "removing leftover temporary file");
            fs::remove_file(&p).map_err(io_err("remove", &p))?;
        }
    }
    Ok(())
}

/// Parses `<prefix><16 hex digits>` into the zxid.
pub(crate) fn parse_zxid_name(name: &str, prefix: &str) -> Option<u64> {
    let hex = name.strip_prefix(prefix)?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// `<prefix><zxid as 16 lowercase hex digits>`.
pub(crate) fn zxid_name(prefix: &str, zxid: u64) -> String {
    format!("{prefix}{zxid:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zxid_names_round_trip_and_reject_junk() {
        let n = zxid_name("log.", 0x1_0000_002a);
        assert_eq!(n, "log.000000010000002a");
        assert_eq!(parse_zxid_name(&n, "log."), Some(0x1_0000_002a));
        assert_eq!(parse_zxid_name("log.2a", "log."), None);
        assert_eq!(parse_zxid_name("log.000000010000002a.tmp", "log."), None);
        assert_eq!(parse_zxid_name("snapshot.000000010000002a", "log."), None);
        assert_eq!(parse_zxid_name("log.00000001000000zz", "log."), None);
    }

    #[test]
    fn write_atomic_replaces_and_leaves_no_tmp() {
        let d = tempfile::tempdir().unwrap();
        write_atomic(d.path(), "f", b"one").unwrap();
        write_atomic(d.path(), "f", b"two").unwrap();
        assert_eq!(fs::read(d.path().join("f")).unwrap(), b"two");
        assert!(!d.path().join("f.tmp").exists());
        fs::write(d.path().join("g.tmp"), b"x").unwrap();
        remove_tmp_files(d.path()).unwrap();
        assert!(!d.path().join("g.tmp").exists());
        assert!(d.path().join("f").exists());
    }
}
