//! `export` and `import`: the tree as JSON, for moving data between clusters,
//! seeding a test environment, or reading it with other tools.
//!
//! Format (`version` 1): `{"format": "zabkeeper-tree", "version": 1, "zxid": N,
//! "nodes": [...]}` with nodes parents first, each `{"path", "data" (UTF-8 text)
//! or "data_base64", "acl": [{"perms", "scheme", "id"}], "kind": "persistent" |
//! "container" | "ttl" | "ephemeral", "ttl_ms" (ttl nodes), "stat": {...}}`. The
//! special nodes (`/`, `/zookeeper`, ...) are not listed: every tree has them.
//!
//! Import rebuilds the tree in a fresh data directory as one snapshot: each node
//! is created by a txn (data, ACL, kind kept; versions and times start anew, as
//! after a copy). Ephemeral nodes are skipped, since the sessions that own them
//! do not exist in the new tree; the count is reported.

use super::datadir::load_tree;
use super::dump::walk;
use crate::error::{Error, Result};
use crate::request::Acl;
use crate::storage::{EpochStore, Epochs, FileEpochStore, FileSnapshotStore, SnapshotStore};
use crate::tree::{DataTree, EphemeralKind, SPECIAL_PATHS};
use crate::txn::{Txn, TxnBody};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;
use zabkeeper_proto::{CONTAINER_EPHEMERAL_OWNER, TTL_EPHEMERAL_OWNER_PREFIX};

#[derive(Debug, Serialize, Deserialize)]
pub struct TreeJson {
    pub format: String,
    pub version: u32,
    pub zxid: i64,
    pub nodes: Vec<NodeJson>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct NodeJson {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_base64: Option<String>,
    pub acl: Vec<AclJson>,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ephemeral_owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<StatJson>,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct AclJson {
    pub perms: i32,
    pub scheme: String,
    pub id: String,
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct StatJson {
    pub czxid: i64,
    pub mzxid: i64,
    pub pzxid: i64,
    pub ctime: i64,
    pub mtime: i64,
    pub version: i32,
    pub cversion: i32,
    pub aversion: i32,
}

/// The tree as JSON.
pub fn to_json(tree: &DataTree) -> TreeJson {
    let mut nodes = Vec::new();
    walk(tree, "/", &mut |path| {
        if SPECIAL_PATHS.contains(&path) {
            return;
        }
        let (Ok((data, s)), Ok((acl, _))) = (tree.get_data(path), tree.get_acl(path)) else {
            return;
        };
        let (data, data_base64) = match std::str::from_utf8(&data) {
            Ok(text) => (Some(text.to_string()), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(&data)),
            ),
        };
        let (kind, ttl_ms, owner) = match EphemeralKind::of(s.ephemeral_owner) {
            EphemeralKind::Persistent => ("persistent", None, None),
            EphemeralKind::Container => ("container", None, None),
            EphemeralKind::Ttl(ttl) => ("ttl", Some(ttl), None),
            EphemeralKind::Ephemeral(owner) => ("ephemeral", None, Some(format!("{owner:#x}"))),
        };
        nodes.push(NodeJson {
            path: path.to_string(),
            data,
            data_base64,
            acl: acl
                .into_iter()
                .map(|a| AclJson {
                    perms: a.perms,
                    scheme: a.scheme,
                    id: a.id,
                })
                .collect(),
            kind: kind.into(),
            ttl_ms,
            ephemeral_owner: owner,
            stat: Some(StatJson {
                czxid: s.czxid,
                mzxid: s.mzxid,
                pzxid: s.pzxid,
                ctime: s.ctime,
                mtime: s.mtime,
                version: s.version,
                cversion: s.cversion,
                aversion: s.aversion,
            }),
        });
    });
    TreeJson {
        format: "zabkeeper-tree".into(),
        version: 1,
        zxid: tree.last_applied_zxid(),
        nodes,
    }
}

/// What `from_json` built.
#[derive(Debug)]
pub struct Built {
    pub tree: DataTree,
    pub created: usize,
    pub skipped_ephemerals: usize,
}

/// Builds a tree from JSON: one create txn per node, zxids `(1 << 32) | n`.
pub fn from_json(json: &TreeJson) -> Result<Built> {
    if json.format != "zabkeeper-tree" || json.version != 1 {
        return Err(Error::Tool(format!(
            "not a zabkeeper-tree version 1 file (format `{}`, version {})",
            json.format, json.version
        )));
    }
    let mut tree = DataTree::new();
    let (mut created, mut skipped) = (0, 0);
    let now = crate::now_ms();
    for node in &json.nodes {
        if SPECIAL_PATHS.contains(&node.path.as_str()) {
            continue;
        }
        zabkeeper_proto::path::validate(&node.path, false)
            .map_err(|e| Error::Tool(format!("node `{}`: bad path: {e:?}", node.path)))?;
        let owner = match (node.kind.as_str(), node.ttl_ms) {
            ("persistent", _) => 0,
            ("container", _) => CONTAINER_EPHEMERAL_OWNER,
            ("ttl", Some(ttl)) if ttl > 0 => TTL_EPHEMERAL_OWNER_PREFIX | ttl,
            ("ephemeral", _) => {
                skipped += 1;
                continue;
            }
            (other, _) => {
                return Err(Error::Tool(format!(
                    "node `{}`: unknown kind `{other}` (or a ttl node without ttl_ms)",
                    node.path
                )))
            }
        };
        let data = match (&node.data, &node.data_base64) {
            (Some(text), None) => bytes::Bytes::from(text.clone().into_bytes()),
            (None, Some(b64)) => base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| Error::Tool(format!("node `{}`: data_base64: {e}", node.path)))?
                .into(),
            (None, None) => bytes::Bytes::new(),
            (Some(_), Some(_)) => {
                return Err(Error::Tool(format!(
                    "node `{}` has both data and data_base64",
                    node.path
                )))
            }
        };
        let acl: Vec<Acl> = if node.acl.is_empty() {
            Acl::open()
        } else {
            node.acl
                .iter()
                .map(|a| Acl {
                    perms: a.perms,
                    scheme: a.scheme.clone(),
                    id: a.id.clone(),
                })
                .collect()
        };
        let parent = zabkeeper_proto::path::parent(&node.path);
        let parent_stat = tree.exists(parent).ok_or_else(|| {
            Error::Tool(format!(
                "node `{}` comes before its parent (or the parent is ephemeral)",
                node.path
            ))
        })?;
        created += 1;
        let txn = Txn {
            session_id: 0,
            cxid: 0,
            zxid: (1i64 << 32) | created as i64,
            time_ms: node.stat.as_ref().map(|s| s.ctime).unwrap_or(now),
            request_number: 0,
            acked_below: 0,
            body: TxnBody::Create {
                path: node.path.clone(),
                data,
                acl,
                ephemeral_owner: owner,
                parent_cversion: parent_stat.cversion + 1,
            },
        };
        let applied = tree.apply(&txn);
        if let crate::tree::TxnResult::Error(code) = applied.result {
            return Err(Error::Tool(format!(
                "node `{}` cannot be created: {code:?}",
                node.path
            )));
        }
    }
    Ok(Built {
        tree,
        created,
        skipped_ephemerals: skipped,
    })
}

/// `zabkeeper export SOURCE`: JSON of a data directory's tree or a member's.
pub fn export(source: &str) -> Result<()> {
    let tree = if Path::new(source).is_dir() {
        load_tree(Path::new(source))?.tree
    } else {
        let file = super::http::get(source, "/backup", Duration::from_secs(120))?;
        super::backup::tree_of_backup(&file)?.1
    };
    let json = to_json(&tree);
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &json)
        .map_err(|e| Error::Tool(format!("cannot write JSON: {e}")))?;
    std::io::Write::write_all(&mut out, b"\n")?;
    Ok(())
}

/// `zabkeeper import FILE DIR`: a fresh data directory holding the tree of FILE.
pub fn import(file: &Path, dir: &Path) -> Result<()> {
    let text = if file.as_os_str() == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s)?;
        s
    } else {
        std::fs::read_to_string(file)?
    };
    let json: TreeJson =
        serde_json::from_str(&text).map_err(|e| Error::Tool(format!("{}: {e}", file.display())))?;
    let built = from_json(&json)?;
    let zxid = write_data_dir(&built.tree, dir)?;
    println!(
        "imported {} nodes into {} at zxid {zxid:#x}{}",
        built.created,
        dir.display(),
        if built.skipped_ephemerals > 0 {
            format!(
                " ({} ephemeral nodes skipped: their sessions do not exist here)",
                built.skipped_ephemerals
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

/// Writes `tree` as the only state of a new data directory: one snapshot, an empty
/// log whose base is the snapshot's zxid, and both epochs set to the zxid's epoch
/// (a server or ensemble started on it continues in a later epoch). Returns the zxid.
pub fn write_data_dir(tree: &DataTree, dir: &Path) -> Result<u64> {
    super::require_empty_dir(dir)?;
    std::fs::create_dir_all(dir)?;
    let zxid = tree.last_applied_zxid() as u64;
    let mut body = Vec::new();
    tree.serialize(&mut body);
    FileSnapshotStore::open(dir.join("snapshot"))?.save(zxid, &body)?;
    let mut log = crate::storage::FileTxnLog::open(
        dir.join("log"),
        crate::storage::LogOptions {
            segment_size: 64 * 1024,
            ..Default::default()
        },
    )?;
    crate::storage::TxnLog::reset(&mut log, zxid)?;
    let epoch = (zxid >> 32) as u32;
    FileEpochStore::open(dir)?.save(Epochs {
        accepted: epoch,
        current: epoch,
        lease_mark: false,
    })?;
    Ok(zxid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(tree: &mut DataTree, zxid: i64, path: &str, data: &[u8], owner: i64) {
        let parent = zabkeeper_proto::path::parent(path);
        let cversion = tree.exists(parent).unwrap().cversion + 1;
        let txn = Txn {
            session_id: 0,
            cxid: 0,
            zxid,
            time_ms: 1000,
            request_number: 0,
            acked_below: 0,
            body: TxnBody::Create {
                path: path.into(),
                data: bytes::Bytes::copy_from_slice(data),
                acl: Acl::open(),
                ephemeral_owner: owner,
                parent_cversion: cversion,
            },
        };
        assert!(!matches!(
            tree.apply(&txn).result,
            crate::tree::TxnResult::Error(_)
        ));
    }

    #[test]
    fn json_round_trip_keeps_data_acl_and_kind() {
        let mut t = DataTree::new();
        create(&mut t, 1, "/a", b"text", 0);
        create(&mut t, 2, "/a/bin", &[0, 159, 146, 150], 0);
        create(&mut t, 3, "/c", b"", CONTAINER_EPHEMERAL_OWNER);
        create(&mut t, 4, "/c/x", b"1", 0);
        create(&mut t, 5, "/ttl", b"t", TTL_EPHEMERAL_OWNER_PREFIX | 5000);
        let json = to_json(&t);
        let text = serde_json::to_string(&json).unwrap();
        assert!(text.contains("\"data_base64\":\"AJ+Slg==\""), "{text}");
        let back: TreeJson = serde_json::from_str(&text).unwrap();
        let built = from_json(&back).unwrap();
        assert_eq!(built.created, 5);
        let t2 = built.tree;
        assert_eq!(t2.get_data("/a").unwrap().0.as_ref(), b"text");
        assert_eq!(
            t2.get_data("/a/bin").unwrap().0.as_ref(),
            &[0, 159, 146, 150]
        );
        assert_eq!(
            t2.exists("/c").unwrap().ephemeral_owner,
            CONTAINER_EPHEMERAL_OWNER
        );
        assert_eq!(
            EphemeralKind::of(t2.exists("/ttl").unwrap().ephemeral_owner),
            EphemeralKind::Ttl(5000)
        );
        assert_eq!(t2.node_count(), t.node_count());
    }

    #[test]
    fn import_refuses_orphans_and_unknown_kinds() {
        let orphan = TreeJson {
            format: "zabkeeper-tree".into(),
            version: 1,
            zxid: 0,
            nodes: vec![NodeJson {
                path: "/x/y".into(),
                data: None,
                data_base64: None,
                acl: vec![],
                kind: "persistent".into(),
                ttl_ms: None,
                ephemeral_owner: None,
                stat: None,
            }],
        };
        let e = from_json(&orphan).unwrap_err().to_string();
        assert!(e.contains("/x/y") && e.contains("parent"), "{e}");
        let bad_kind: TreeJson = serde_json::from_str(
            r#"{"format":"zabkeeper-tree","version":1,"zxid":0,"nodes":[{"path":"/a","acl":[],"kind":"weird"}]}"#,
        )
        .unwrap();
        assert!(from_json(&bad_kind)
            .unwrap_err()
            .to_string()
            .contains("weird"));
    }
}
