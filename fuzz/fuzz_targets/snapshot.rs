//! The snapshot reader, from the file down: arbitrary bytes as a snapshot file (header,
//! length, CRC; `storage::snapshot::decode_file`, and the store's `latest` reading them
//! from disk) give an error or a body, never a panic; a body, and the bytes themselves
//! as a body, decode to a tree or an error, and a decoded tree serializes and decodes to
//! the same bytes. The bytes are also tried as a txn.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use zabkeeper_server::storage::snapshot::{decode_file, encode_file};
use zabkeeper_server::storage::{FileSnapshotStore, SnapshotStore};
use zabkeeper_server::tree::DataTree;
use zabkeeper_server::txn::Txn;

/// One directory for the whole run: each input replaces the file in it.
fn store() -> &'static (tempfile::TempDir, FileSnapshotStore) {
    static STORE: OnceLock<(tempfile::TempDir, FileSnapshotStore)> = OnceLock::new();
    STORE.get_or_init(|| {
        // In memory where there is room (/dev/shm): each input is written and read.
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::tempdir_in(shm).unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        let store = FileSnapshotStore::open(dir.path()).unwrap();
        (dir, store)
    })
}

fn check_tree(body: &[u8]) {
    if let Ok(tree) = DataTree::deserialize(body) {
        let mut again = Vec::new();
        tree.serialize(&mut again);
        let back = DataTree::deserialize(&again).expect("own serialization decodes");
        let mut third = Vec::new();
        back.serialize(&mut third);
        assert_eq!(third, again);
    }
}

fuzz_target!(|data: &[u8]| {
    // The bytes as a file.
    if let Ok((zxid, body)) = decode_file(data) {
        assert_eq!(
            encode_file(zxid, body),
            data,
            "a file that decodes is its encoding"
        );
        check_tree(body);
    }
    // The same through the store, named by the zxid its header claims.
    let zxid = data
        .get(16..24)
        .map_or(0, |z| u64::from_le_bytes(z.try_into().unwrap()));
    let (_, store) = store();
    for old in store.list().unwrap() {
        let _ = std::fs::remove_file(store.path_of(old));
    }
    std::fs::write(store.path_of(zxid), data).unwrap();
    match store.latest().unwrap() {
        Some((z, body)) => {
            assert_eq!(z, zxid);
            assert_eq!(decode_file(data), Ok((zxid, &body[..])));
        }
        None => assert!(decode_file(data).is_err()),
    }
    // The bytes as a body the file reader accepts (past the CRC), and as a txn.
    let file = encode_file(7, data);
    assert_eq!(decode_file(&file), Ok((7, data)));
    check_tree(data);
    let _ = Txn::decode(data);
});
