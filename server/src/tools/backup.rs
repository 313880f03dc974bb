//! `backup` and `restore`.
//!
//! A backup is the admin port's `/backup` answer saved as is: a snapshot file
//! (magic, zxid, length, body, CRC32C; `storage/snapshot.rs`). The member serving
//! it first syncs with the leader, then serialises its tree under the tree's read
//! lock, so the file is the exact state after one zxid and holds every write any
//! member acknowledged before the request reached it.
//!
//! `restore` checks the file (CRC, and that the tree decodes) and writes a data
//! directory: the snapshot, an empty log whose base is the snapshot's zxid, and
//! both epochs set to that zxid's epoch, so a server started on it (or each member
//! of a new ensemble, every one restored from the same file) continues after that
//! zxid in a new epoch. Sessions in the backup come back too; a new leader gives
//! each a full timeout and then expires the ones no client resumes.

use super::http;
use crate::error::{Error, Result};
use crate::storage::snapshot::decode_file;
use crate::tree::DataTree;
use std::path::Path;
use std::time::Duration;

/// Checks a backup file's bytes; its zxid and tree.
pub fn tree_of_backup(bytes: &[u8]) -> Result<(u64, DataTree)> {
    let (zxid, body) =
        decode_file(bytes).map_err(|e| Error::Tool(format!("not a valid backup: {e}")))?;
    let tree = DataTree::deserialize(body)
        .map_err(|e| Error::Tool(format!("backup tree does not decode: {e}")))?;
    if tree.last_applied_zxid() as u64 != zxid {
        return Err(Error::Tool(format!(
            "backup header zxid {zxid:#x} differs from its tree's {:#x}",
            tree.last_applied_zxid()
        )));
    }
    Ok((zxid, tree))
}

/// `zabkeeper backup ADDR FILE`.
pub fn backup(addr: &str, file: &Path) -> Result<()> {
    let bytes = http::get(addr, "/backup", Duration::from_secs(300))?;
    let (zxid, tree) = tree_of_backup(&bytes)?;
    let tmp = file.with_extension("partial");
    std::fs::write(&tmp, &bytes)?;
    std::fs::File::open(&tmp)?.sync_all()?;
    std::fs::rename(&tmp, file)?;
    println!(
        "backup of {addr} at zxid {zxid:#x}: {} nodes, {} bytes, in {}",
        tree.node_count(),
        bytes.len(),
        file.display()
    );
    Ok(())
}

/// `zabkeeper restore FILE DIR`.
pub fn restore(file: &Path, dir: &Path) -> Result<()> {
    let bytes = std::fs::read(file)?;
    let (zxid, tree) = tree_of_backup(&bytes)?;
    super::tree_json::write_data_dir(&tree, dir)?;
    println!(
        "restored {} nodes at zxid {zxid:#x} into {}",
        tree.node_count(),
        dir.display()
    );
    Ok(())
}
