//! The client's watch registry.
//!
//! Every watch the application holds is one registration with a key chosen by the
//! client (it maps the key to the future or stream that waits). A notification from the
//! server carries only (event type, path); [`ClientWatches::materialize`] decides which
//! registrations it resolves, with ZooKeeper's rules (`ZKWatchManager.materialize`),
//! and removes the one-shot ones it resolved.
//!
//! Unlike the server, the client keeps `exists` watches apart from data watches: after a
//! reconnect, `SetWatches` must say whether the client last saw the node (data watch:
//! fire NodeDeleted / NodeDataChanged if it changed) or saw it missing (exist watch:
//! fire NodeCreated if it now exists).

use std::collections::{BTreeSet, HashMap};

use zabkeeper_proto::wire::WatcherType;
use zabkeeper_proto::EventType;

use crate::self_and_ancestors;

/// How a watch was registered by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientKind {
    /// getData, or exists on a node that exists.
    Data,
    /// exists on a node that does not exist.
    Exist,
    /// getChildren.
    Child,
    /// addWatch PERSISTENT.
    Persistent,
    /// addWatch PERSISTENT_RECURSIVE.
    PersistentRecursive,
}

impl ClientKind {
    fn is_one_shot(self) -> bool {
        matches!(
            self,
            ClientKind::Data | ClientKind::Exist | ClientKind::Child
        )
    }

    /// Whether removeWatches of this type removes this kind (ZooKeeper: `Data` covers
    /// exist watches, `Any` covers everything).
    pub fn selected_by(self, kind: WatcherType) -> bool {
        match kind {
            WatcherType::Unspecified => false,
            WatcherType::Any => true,
            WatcherType::Data => matches!(self, ClientKind::Data | ClientKind::Exist),
            WatcherType::Children => self == ClientKind::Child,
            WatcherType::Persistent => self == ClientKind::Persistent,
            WatcherType::PersistentRecursive => self == ClientKind::PersistentRecursive,
        }
    }

    /// Whether an event on the watched path itself resolves a watch of this kind.
    fn fires_on_path(self, event: EventType) -> bool {
        use EventType::*;
        match self {
            ClientKind::Data | ClientKind::Exist => {
                matches!(event, NodeCreated | NodeDataChanged | NodeDeleted)
            }
            ClientKind::Child => matches!(event, NodeChildrenChanged | NodeDeleted),
            ClientKind::Persistent => {
                matches!(
                    event,
                    NodeCreated | NodeDataChanged | NodeDeleted | NodeChildrenChanged
                )
            }
            ClientKind::PersistentRecursive => {
                matches!(event, NodeCreated | NodeDataChanged | NodeDeleted)
            }
        }
    }
}

/// Paths to re-register after a reconnect, one list per `SetWatchesRequest` field,
/// each sorted and without duplicates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchPaths {
    pub data: Vec<String>,
    pub exist: Vec<String>,
    pub child: Vec<String>,
    pub persistent: Vec<String>,
    pub persistent_recursive: Vec<String>,
}

impl WatchPaths {
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
            && self.exist.is_empty()
            && self.child.is_empty()
            && self.persistent.is_empty()
            && self.persistent_recursive.is_empty()
    }
}

/// The client's registrations; `K` is the client's key for one waiting future/stream.
#[derive(Debug, Clone)]
pub struct ClientWatches<K> {
    /// Registrations per path, in registration order.
    by_path: HashMap<String, Vec<(ClientKind, K)>>,
    recursive: usize,
    len: usize,
}

impl<K> Default for ClientWatches<K> {
    fn default() -> Self {
        ClientWatches {
            by_path: HashMap::new(),
            recursive: 0,
            len: 0,
        }
    }
}

impl<K: Copy + Eq> ClientWatches<K> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, path: &str, kind: ClientKind, key: K) {
        self.by_path
            .entry(path.to_string())
            .or_default()
            .push((kind, key));
        self.len += 1;
        if kind == ClientKind::PersistentRecursive {
            self.recursive += 1;
        }
    }

    /// The registrations a notification resolves: those on the path itself in
    /// registration order, then recursive ones on each ancestor from the nearest up.
    /// One-shot registrations returned are removed.
    pub fn materialize(&mut self, event: EventType, path: &str) -> Vec<K> {
        let mut out = Vec::new();
        if let Some(regs) = self.by_path.get_mut(path) {
            let mut removed = 0;
            regs.retain(|(kind, key)| {
                if !kind.fires_on_path(event) {
                    return true;
                }
                out.push(*key);
                let keep = !kind.is_one_shot();
                if !keep {
                    removed += 1;
                }
                keep
            });
            self.len -= removed;
            if regs.is_empty() {
                self.by_path.remove(path);
            }
        }
        let recursive_event = matches!(
            event,
            EventType::NodeCreated | EventType::NodeDataChanged | EventType::NodeDeleted
        );
        if recursive_event && self.recursive > 0 {
            for ancestor in self_and_ancestors(path).skip(1) {
                if let Some(regs) = self.by_path.get(ancestor) {
                    out.extend(
                        regs.iter()
                            .filter(|(k, _)| *k == ClientKind::PersistentRecursive)
                            .map(|(_, key)| *key),
                    );
                }
            }
        }
        out
    }

    /// Removes the registrations on exactly `path` that `kind` selects; returns them.
    pub fn remove(&mut self, path: &str, kind: WatcherType) -> Vec<(ClientKind, K)> {
        self.remove_where(path, |k, _| k.selected_by(kind))
    }

    /// Removes one registration by key (its receiver went away). True if found.
    pub fn remove_key(&mut self, path: &str, key: K) -> bool {
        !self.remove_where(path, |_, k| k == key).is_empty()
    }

    /// Whether any registration on exactly `path` is selected by `kind`.
    pub fn contains(&self, path: &str, kind: WatcherType) -> bool {
        self.by_path
            .get(path)
            .is_some_and(|regs| regs.iter().any(|(k, _)| k.selected_by(kind)))
    }

    /// Removes and returns every registration (session expired or closed).
    pub fn drain(&mut self) -> Vec<(String, ClientKind, K)> {
        self.len = 0;
        self.recursive = 0;
        let mut out: Vec<_> = self
            .by_path
            .drain()
            .flat_map(|(path, regs)| {
                regs.into_iter()
                    .map(move |(kind, key)| (path.clone(), kind, key))
            })
            .collect();
        out.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
        out
    }

    /// The paths to present in `SetWatches` after a reconnect.
    pub fn paths(&self) -> WatchPaths {
        let mut sets: [BTreeSet<&str>; 5] = Default::default();
        for (path, regs) in &self.by_path {
            for (kind, _) in regs {
                sets[*kind as usize].insert(path);
            }
        }
        let [data, exist, child, persistent, persistent_recursive] =
            sets.map(|s| s.into_iter().map(str::to_string).collect::<Vec<_>>());
        WatchPaths {
            data,
            exist,
            child,
            persistent,
            persistent_recursive,
        }
    }

    /// Number of registrations.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn remove_where(
        &mut self,
        path: &str,
        pred: impl Fn(ClientKind, K) -> bool,
    ) -> Vec<(ClientKind, K)> {
        let Some(regs) = self.by_path.get_mut(path) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        regs.retain(|(k, key)| {
            if pred(*k, *key) {
                out.push((*k, *key));
                false
            } else {
                true
            }
        });
        if regs.is_empty() {
            self.by_path.remove(path);
        }
        self.len -= out.len();
        self.recursive -= out
            .iter()
            .filter(|(k, _)| *k == ClientKind::PersistentRecursive)
            .count();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ClientKind::*;
    use EventType::*;

    fn setup() -> ClientWatches<u32> {
        let mut w = ClientWatches::new();
        w.add("/a", Data, 1);
        w.add("/a", Exist, 2);
        w.add("/a", Child, 3);
        w.add("/a", Persistent, 4);
        w.add("/", PersistentRecursive, 5);
        w.add("/a", PersistentRecursive, 6);
        w
    }

    #[test]
    fn created_and_data_changed_resolve_data_and_exist() {
        for e in [NodeCreated, NodeDataChanged] {
            let mut w = setup();
            assert_eq!(w.materialize(e, "/a"), vec![1, 2, 4, 6, 5], "{e:?}");
            assert_eq!(
                w.materialize(e, "/a"),
                vec![4, 6, 5],
                "one-shots gone after {e:?}"
            );
            assert_eq!(w.len(), 4);
            assert!(w.contains("/a", WatcherType::Children));
        }
    }

    #[test]
    fn deleted_resolves_data_exist_and_child() {
        let mut w = setup();
        assert_eq!(w.materialize(NodeDeleted, "/a"), vec![1, 2, 3, 4, 6, 5]);
        assert_eq!(w.materialize(NodeDeleted, "/a"), vec![4, 6, 5]);
        assert_eq!(w.len(), 3);
    }

    #[test]
    fn children_changed_resolves_child_and_persistent_never_recursive() {
        let mut w = setup();
        assert_eq!(w.materialize(NodeChildrenChanged, "/a"), vec![3, 4]);
        assert_eq!(w.materialize(NodeChildrenChanged, "/a"), vec![4]);
        assert!(w.materialize(NodeChildrenChanged, "/a/b").is_empty());
        assert!(w.contains("/a", WatcherType::Data));
    }

    #[test]
    fn descendants_reach_only_recursive_watches() {
        let mut w = setup();
        assert_eq!(w.materialize(NodeCreated, "/a/b/c"), vec![6, 5]);
        assert_eq!(
            w.materialize(NodeDataChanged, "/ab"),
            vec![5],
            "prefix is not an ancestor"
        );
        assert_eq!(w.len(), 6);
    }

    #[test]
    fn removal_and_none_events_resolve_nothing() {
        let mut w = setup();
        for e in [
            EventType::None,
            DataWatchRemoved,
            ChildWatchRemoved,
            PersistentWatchRemoved,
        ] {
            assert!(w.materialize(e, "/a").is_empty(), "{e:?}");
        }
        assert_eq!(w.len(), 6);
    }

    #[test]
    fn several_one_shots_on_a_path_all_resolve_once_in_order() {
        let mut w = ClientWatches::new();
        w.add("/x", Data, 10);
        w.add("/x", Data, 11);
        w.add("/x", Exist, 12);
        assert_eq!(w.materialize(NodeDataChanged, "/x"), vec![10, 11, 12]);
        assert!(w.materialize(NodeDataChanged, "/x").is_empty());
        assert!(w.is_empty());
    }

    #[test]
    fn remove_by_type() {
        let mut w = setup();
        assert_eq!(
            w.remove("/a", WatcherType::Data),
            vec![(Data, 1), (Exist, 2)]
        );
        assert_eq!(w.remove("/a", WatcherType::Data), vec![]);
        assert_eq!(w.remove("/a", WatcherType::Children), vec![(Child, 3)]);
        assert_eq!(
            w.remove("/a", WatcherType::PersistentRecursive),
            vec![(PersistentRecursive, 6)]
        );
        assert_eq!(w.materialize(NodeCreated, "/a/b"), vec![5]);
        assert_eq!(w.remove("/a", WatcherType::Any), vec![(Persistent, 4)]);
        assert_eq!(w.remove("/", WatcherType::Unspecified), vec![]);
        assert_eq!(w.remove("/", WatcherType::Persistent), vec![]);
        assert_eq!(
            w.remove("/", WatcherType::Any),
            vec![(PersistentRecursive, 5)]
        );
        assert!(w.is_empty());
        assert!(w.materialize(NodeCreated, "/a/b").is_empty());
    }

    #[test]
    fn remove_key_drops_one_registration() {
        let mut w = setup();
        assert!(w.remove_key("/", 5));
        assert!(!w.remove_key("/", 5));
        assert!(!w.remove_key("/a", 5));
        assert_eq!(w.materialize(NodeCreated, "/a/b"), vec![6]);
    }

    #[test]
    fn paths_for_set_watches() {
        let mut w = setup();
        w.add("/b", Data, 7);
        w.add("/a", Data, 8);
        let p = w.paths();
        assert_eq!(p.data, vec!["/a", "/b"]);
        assert_eq!(p.exist, vec!["/a"]);
        assert_eq!(p.child, vec!["/a"]);
        assert_eq!(p.persistent, vec!["/a"]);
        assert_eq!(p.persistent_recursive, vec!["/", "/a"]);
        assert!(!p.is_empty());
        assert!(ClientWatches::<u32>::new().paths().is_empty());
    }

    #[test]
    fn drain_returns_everything() {
        let mut w = setup();
        let all = w.drain();
        assert_eq!(all.len(), 6);
        assert_eq!(all[0], ("/".to_string(), PersistentRecursive, 5));
        assert!(w.is_empty());
        assert!(w.materialize(NodeCreated, "/a").is_empty());
    }
}
