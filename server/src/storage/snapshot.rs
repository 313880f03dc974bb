//! Snapshot files: `DIR/snapshot/snapshot.<zxid as 16 hex>`.
//!
//! Layout, little-endian:
//! ```text
//! [8 magic "ZABKSNAP"][u32 version = 1][u32 reserved = 0][u64 zxid][u64 body len][body][u32 crc32c of everything before]
//! ```
//! A snapshot is written to `snapshot.<zxid>.tmp`, fsynced, renamed and the
//! directory fsynced, so a crash never leaves a half-written file under the
//! final name. Bit rot or a truncated copy is still caught by the length and
//! the trailing CRC; [`FileSnapshotStore::latest`] then falls back to the
//! next older snapshot with a warning. Validation loads the whole file, which
//! is fine for bodies that are a serialised in-memory tree.

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::fsutil::{
    create_dir_durable, fsync_dir, io_err, parse_zxid_name, remove_tmp_files, write_atomic_parts,
    zxid_name,
};
use super::{Result, SnapshotStore};

const MAGIC: &[u8; 8] = b"ZABKSNAP";
const VERSION: u32 = 1;
const HEADER: usize = 32;
const TRAILER: usize = 4;
const PREFIX: &str = "snapshot.";

/// Snapshots stored as files in one directory.
#[derive(Debug)]
pub struct FileSnapshotStore {
    dir: PathBuf,
}

impl FileSnapshotStore {
    /// Opens (creating if needed) the snapshot directory and removes
    /// leftovers of interrupted saves.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        create_dir_durable(&dir)?;
        remove_tmp_files(&dir)?;
        Ok(FileSnapshotStore { dir })
    }

    /// Path of the snapshot file for `zxid`.
    pub fn path_of(&self, zxid: u64) -> PathBuf {
        self.dir.join(zxid_name(PREFIX, zxid))
    }

    /// Maps and checks one snapshot: `Ok(Err(reason))` when it is corrupt.
    ///
    /// The file is mapped rather than read: a 100 MB snapshot copied into fresh heap
    /// costs the copy and the zeroing of every new page, a third of a restart's
    /// kernel time. The body is a `Bytes` owning the map.
    fn load(&self, zxid: u64) -> Result<std::result::Result<Bytes, String>> {
        let path = self.path_of(zxid);
        let file = fs::File::open(&path).map_err(io_err("open", &path))?;
        let len = file.metadata().map_err(io_err("stat", &path))?.len();
        if len == 0 {
            return Ok(Err("file of 0 bytes is shorter than a snapshot".into()));
        }
        // SAFETY: a snapshot file is written under a temporary name, synced and renamed
        // into place; nothing writes or truncates it afterwards (purge unlinks it,
        // which leaves a mapping valid). So the mapped bytes never change under us.
        let map = unsafe { memmap2::Mmap::map(&file) }.map_err(io_err("map", &path))?;
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(decode(&map, zxid).map(|(start, len)| Bytes::from_owner(map).slice(start..start + len)))
    }
}

/// The bytes of a snapshot file for `zxid` (the format above): what backups carry.
pub fn encode_file(zxid: u64, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + body.len() + TRAILER);
    out.extend_from_slice(&header(zxid, body.len()));
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Checks a snapshot file's bytes whatever its name: `(zxid, body)` or why not.
pub fn decode_file(bytes: &[u8]) -> std::result::Result<(u64, &[u8]), String> {
    if bytes.len() < HEADER {
        return Err(format!(
            "file of {} bytes is shorter than a snapshot",
            bytes.len()
        ));
    }
    let mut z = [0u8; 8];
    z.copy_from_slice(&bytes[16..24]);
    let zxid = u64::from_le_bytes(z);
    let (start, len) = decode(bytes, zxid)?;
    Ok((zxid, &bytes[start..start + len]))
}

fn header(zxid: u64, len: usize) -> [u8; HEADER] {
    let mut header = [0u8; HEADER];
    header[0..8].copy_from_slice(MAGIC);
    header[8..12].copy_from_slice(&VERSION.to_le_bytes());
    header[16..24].copy_from_slice(&zxid.to_le_bytes());
    header[24..32].copy_from_slice(&(len as u64).to_le_bytes());
    header
}

/// Checks a snapshot file's bytes; returns the body's range.
fn decode(bytes: &[u8], zxid: u64) -> std::result::Result<(usize, usize), String> {
    if bytes.len() < HEADER + TRAILER {
        return Err(format!(
            "file of {} bytes is shorter than a snapshot",
            bytes.len()
        ));
    }
    if &bytes[0..8] != MAGIC {
        return Err("bad magic".into());
    }
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(b)
    };
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != VERSION {
        return Err(format!("unsupported version {version}"));
    }
    if word(16) != zxid {
        return Err(format!(
            "header zxid {:#x} does not match the file name",
            word(16)
        ));
    }
    let len = word(24);
    if len != (bytes.len() - HEADER - TRAILER) as u64 {
        return Err(format!(
            "body length {len} does not match file size {}",
            bytes.len()
        ));
    }
    let crc_at = bytes.len() - TRAILER;
    let stored = u32::from_le_bytes([
        bytes[crc_at],
        bytes[crc_at + 1],
        bytes[crc_at + 2],
        bytes[crc_at + 3],
    ]);
    let actual = crc32c::crc32c(&bytes[..crc_at]);
    if stored != actual {
        return Err(format!(
            "crc mismatch (stored {stored:#010x}, computed {actual:#010x})"
        ));
    }
    Ok((HEADER, len as usize))
}

impl SnapshotStore for FileSnapshotStore {
    fn save(&mut self, zxid: u64, body: &[u8]) -> Result<()> {
        let header = header(zxid, body.len());
        let crc = crc32c::crc32c_append(crc32c::crc32c(&header), body);
        write_atomic_parts(
            &self.dir,
            &zxid_name(PREFIX, zxid),
            &[&header, body, &crc.to_le_bytes()],
        )
    }

    fn latest(&self) -> Result<Option<(u64, Bytes)>> {
        for zxid in self.list()?.into_iter().rev() {
            match self.load(zxid)? {
                Ok(body) => return Ok(Some((zxid, body))),
                Err(reason) => tracing::warn!(
                    file = %self.path_of(zxid).display(),
                    %reason,
                    "skipping corrupt snapshot"
                ),
            }
        }
        Ok(None)
    }

    fn list(&self) -> Result<Vec<u64>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(io_err("read dir", &self.dir))? {
            let entry = entry.map_err(io_err("read dir", &self.dir))?;
            if let Some(z) = parse_zxid_name(&entry.file_name().to_string_lossy(), PREFIX) {
                out.push(z);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn purge(&mut self, keep: usize) -> Result<Vec<u64>> {
        let all = self.list()?;
        let mut valid = 0;
        let mut oldest_kept = None;
        for &zxid in all.iter().rev() {
            if self.load(zxid)?.is_ok() {
                valid += 1;
                oldest_kept = Some(zxid);
                if valid == keep.max(1) {
                    break;
                }
            }
        }
        let Some(oldest_kept) = oldest_kept else {
            return Ok(Vec::new());
        };
        let deleted: Vec<u64> = all.into_iter().filter(|z| *z < oldest_kept).collect();
        for &zxid in &deleted {
            let path = self.path_of(zxid);
            tracing::info!(file = %path.display(), "purging snapshot");
            fs::remove_file(&path).map_err(io_err("remove", &path))?;
        }
        if !deleted.is_empty() {
            fsync_dir(&self.dir)?;
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn file_snapshot_detects_truncation_and_bit_flips_everywhere() {
        let d = tempfile::tempdir().unwrap();
        let mut s = FileSnapshotStore::open(d.path()).unwrap();
        let body: Vec<u8> = (0..100u8).collect();
        s.save(5, &body).unwrap();
        let good = fs::read(s.path_of(5)).unwrap();
        assert_eq!(good.len(), HEADER + body.len() + TRAILER);
        assert_eq!(decode(&good, 5), Ok((HEADER, body.len())));
        assert!(decode(&good, 6).is_err(), "zxid must match the name");
        for cut in 0..good.len() {
            assert!(
                decode(&good[..cut], 5).is_err(),
                "cut at {cut} not detected"
            );
        }
        for at in 0..good.len() {
            let mut bad = good.clone();
            bad[at] ^= 0x10;
            assert!(decode(&bad, 5).is_err(), "flip at {at} not detected");
        }
    }

    #[test]
    fn encoded_file_is_what_save_writes() {
        let d = tempfile::tempdir().unwrap();
        let mut s = FileSnapshotStore::open(d.path()).unwrap();
        s.save(0x1_0000_0007, b"tree bytes").unwrap();
        let on_disk = fs::read(s.path_of(0x1_0000_0007)).unwrap();
        assert_eq!(encode_file(0x1_0000_0007, b"tree bytes"), on_disk);
        assert_eq!(
            decode_file(&on_disk),
            Ok((0x1_0000_0007, &b"tree bytes"[..]))
        );
        let mut bad = on_disk.clone();
        bad[40] ^= 1;
        assert!(decode_file(&bad).unwrap_err().contains("crc"));
        assert!(decode_file(&on_disk[..10]).is_err());
    }

    #[test]
    fn file_snapshot_corrupt_newest_on_disk_falls_back() {
        let d = tempfile::tempdir().unwrap();
        let mut s = FileSnapshotStore::open(d.path()).unwrap();
        s.save(1, b"one").unwrap();
        s.save(2, b"two").unwrap();
        let f = fs::OpenOptions::new()
            .write(true)
            .open(s.path_of(2))
            .unwrap();
        f.write_all_at(b"X", HEADER as u64).unwrap();
        drop(f);
        let s = FileSnapshotStore::open(d.path()).unwrap();
        assert_eq!(s.latest().unwrap(), Some((1, Bytes::from_static(b"one"))));
        fs::write(d.path().join("snapshot.0000000000000003.tmp"), b"junk").unwrap();
        let s = FileSnapshotStore::open(d.path()).unwrap();
        assert_eq!(s.list().unwrap(), vec![1, 2]);
    }
}
