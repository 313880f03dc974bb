//! The server's watch table.
//!
//! Registrations are kept twice: by path (what `trigger` needs, one hash lookup for a
//! path nobody watches) and by watcher (what `remove_watcher` needs when a connection
//! closes). Each (path, watcher) pair holds a small bit set of kinds, so a watcher with
//! a data watch and a persistent watch on the same path is still told once.
//!
//! Recursive watches are the only ones that look beyond the changed path. A count of
//! them is kept so that, when there are none (the common case), `trigger` never walks
//! the ancestors at all; when there are some, it looks up each ancestor once.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::hash::Hash;

use zabkeeper_proto::wire::WatcherType;
use zabkeeper_proto::EventType;

use crate::self_and_ancestors;

/// How a watch was registered on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchKind {
    /// One-shot, from getData or exists (ZooKeeper keeps exists watches with data watches).
    Data,
    /// One-shot, from getChildren.
    Child,
    /// addWatch PERSISTENT: data and child events of the path, until removed.
    Persistent,
    /// addWatch PERSISTENT_RECURSIVE: data events of the path and every descendant.
    PersistentRecursive,
}

impl WatchKind {
    pub const ALL: [WatchKind; 4] = [
        WatchKind::Data,
        WatchKind::Child,
        WatchKind::Persistent,
        WatchKind::PersistentRecursive,
    ];

    fn bit(self) -> u8 {
        1 << (self as u8)
    }

    fn index(self) -> usize {
        self as usize
    }
}

const DATA: u8 = 1 << WatchKind::Data as u8;
const CHILD: u8 = 1 << WatchKind::Child as u8;
const PERSISTENT: u8 = 1 << WatchKind::Persistent as u8;
const RECURSIVE: u8 = 1 << WatchKind::PersistentRecursive as u8;
const ALL_KINDS: u8 = DATA | CHILD | PERSISTENT | RECURSIVE;

/// Kinds a `WatcherType` (removeWatches / checkWatches) selects, as ZooKeeper's
/// `DataTree.removeWatch`: `Any` includes the persistent kinds.
fn mask_of(kind: WatcherType) -> u8 {
    match kind {
        WatcherType::Unspecified => 0,
        WatcherType::Children => CHILD,
        WatcherType::Data => DATA,
        WatcherType::Any => ALL_KINDS,
        WatcherType::Persistent => PERSISTENT,
        WatcherType::PersistentRecursive => RECURSIVE,
    }
}

/// Which watches on the path itself an event fires, and which of them are one-shot.
fn fired_on_path(event: EventType) -> Option<(u8, u8)> {
    match event {
        EventType::NodeCreated | EventType::NodeDataChanged => {
            Some((DATA | PERSISTENT | RECURSIVE, DATA))
        }
        EventType::NodeDeleted => Some((ALL_KINDS, DATA | CHILD)),
        EventType::NodeChildrenChanged => Some((CHILD | PERSISTENT, CHILD)),
        _ => None,
    }
}

/// The server's watch table; `W` identifies a watcher (a connection id).
#[derive(Debug, Clone)]
pub struct WatchManager<W> {
    by_path: HashMap<String, HashMap<W, u8>>,
    by_watcher: HashMap<W, HashSet<String>>,
    counts: [usize; 4],
}

impl<W> Default for WatchManager<W> {
    fn default() -> Self {
        WatchManager {
            by_path: HashMap::new(),
            by_watcher: HashMap::new(),
            counts: [0; 4],
        }
    }
}

impl<W: Copy + Eq + Hash + Ord> WatchManager<W> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a watch; false when this watcher already had this kind on this path.
    pub fn add(&mut self, path: &str, watcher: W, kind: WatchKind) -> bool {
        let bits = self
            .by_path
            .entry(path.to_string())
            .or_default()
            .entry(watcher)
            .or_insert(0);
        if *bits & kind.bit() != 0 {
            return false;
        }
        *bits |= kind.bit();
        self.counts[kind.index()] += 1;
        self.by_watcher
            .entry(watcher)
            .or_default()
            .insert(path.to_string());
        true
    }

    /// Fires the watches an event on `path` reaches and drops the one-shot ones among
    /// them. Returns each watcher to notify once, in watcher order. Events other than
    /// the four node events fire nothing.
    pub fn trigger(&mut self, path: &str, event: EventType) -> Vec<(W, EventType)> {
        let Some((fires, one_shot)) = fired_on_path(event) else {
            return Vec::new();
        };
        let mut notify = BTreeSet::new();
        if let Some(watchers) = self.by_path.get_mut(path) {
            let mut emptied = Vec::new();
            for (w, bits) in watchers.iter_mut() {
                if *bits & fires == 0 {
                    continue;
                }
                notify.insert(*w);
                let dropped = *bits & one_shot;
                for kind in WatchKind::ALL {
                    if dropped & kind.bit() != 0 {
                        self.counts[kind.index()] -= 1;
                    }
                }
                *bits &= !one_shot;
                if *bits == 0 {
                    emptied.push(*w);
                }
            }
            for w in emptied {
                watchers.remove(&w);
                Self::forget_path(&mut self.by_watcher, w, path);
            }
            if watchers.is_empty() {
                self.by_path.remove(path);
            }
        }
        if fires & RECURSIVE != 0 && self.counts[WatchKind::PersistentRecursive.index()] > 0 {
            for ancestor in self_and_ancestors(path).skip(1) {
                if let Some(watchers) = self.by_path.get(ancestor) {
                    notify.extend(
                        watchers
                            .iter()
                            .filter(|(_, b)| **b & RECURSIVE != 0)
                            .map(|(w, _)| *w),
                    );
                }
            }
        }
        notify.into_iter().map(|w| (w, event)).collect()
    }

    /// Removes this watcher's watches of the given type on `path` (exactly `path`, not
    /// descendants). True if any was removed; the caller answers NoWatcher otherwise.
    pub fn remove(&mut self, path: &str, watcher: W, kind: WatcherType) -> bool {
        let mask = mask_of(kind);
        let Some(watchers) = self.by_path.get_mut(path) else {
            return false;
        };
        let Some(bits) = watchers.get_mut(&watcher) else {
            return false;
        };
        let removed = *bits & mask;
        if removed == 0 {
            return false;
        }
        for k in WatchKind::ALL {
            if removed & k.bit() != 0 {
                self.counts[k.index()] -= 1;
            }
        }
        *bits &= !mask;
        if *bits == 0 {
            watchers.remove(&watcher);
            if watchers.is_empty() {
                self.by_path.remove(path);
            }
            Self::forget_path(&mut self.by_watcher, watcher, path);
        }
        true
    }

    /// Whether this watcher has a watch of the given type on `path` (checkWatches).
    pub fn contains(&self, path: &str, watcher: W, kind: WatcherType) -> bool {
        self.by_path
            .get(path)
            .and_then(|ws| ws.get(&watcher))
            .is_some_and(|bits| bits & mask_of(kind) != 0)
    }

    /// Drops every watch of a watcher (its connection closed). Returns how many.
    pub fn remove_watcher(&mut self, watcher: W) -> usize {
        let Some(paths) = self.by_watcher.remove(&watcher) else {
            return 0;
        };
        let mut removed = 0;
        for path in paths {
            let Some(watchers) = self.by_path.get_mut(&path) else {
                continue;
            };
            if let Some(bits) = watchers.remove(&watcher) {
                for k in WatchKind::ALL {
                    if bits & k.bit() != 0 {
                        self.counts[k.index()] -= 1;
                        removed += 1;
                    }
                }
            }
            if watchers.is_empty() {
                self.by_path.remove(&path);
            }
        }
        removed
    }

    /// Number of registrations of one kind.
    pub fn count(&self, kind: WatchKind) -> usize {
        self.counts[kind.index()]
    }

    /// Number of registrations of every kind.
    pub fn len(&self) -> usize {
        self.counts.iter().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of distinct watched paths.
    pub fn path_count(&self) -> usize {
        self.by_path.len()
    }

    /// Number of distinct paths this watcher watches (what a per-session limit counts).
    pub fn paths_of(&self, watcher: W) -> usize {
        self.by_watcher.get(&watcher).map_or(0, |p| p.len())
    }

    /// Whether this watcher watches `path` with any kind.
    pub fn watches_path(&self, path: &str, watcher: W) -> bool {
        self.by_watcher
            .get(&watcher)
            .is_some_and(|p| p.contains(path))
    }

    /// Number of watchers with at least one watch.
    pub fn watcher_count(&self) -> usize {
        self.by_watcher.len()
    }

    /// Every watch, grouped by watcher, sorted (for `wchc`-style listings).
    pub fn by_watcher(&self) -> BTreeMap<W, Vec<(String, WatchKind)>> {
        let mut out: BTreeMap<W, Vec<(String, WatchKind)>> = BTreeMap::new();
        for (path, watchers) in &self.by_path {
            for (w, bits) in watchers {
                let list = out.entry(*w).or_default();
                list.extend(kinds_of(*bits).map(|k| (path.clone(), k)));
            }
        }
        out.values_mut().for_each(|l| l.sort());
        out
    }

    /// Every watch, grouped by path, sorted (for `wchp`-style listings).
    pub fn by_path(&self) -> BTreeMap<String, Vec<(W, WatchKind)>> {
        let mut out = BTreeMap::new();
        for (path, watchers) in &self.by_path {
            let mut list: Vec<(W, WatchKind)> = watchers
                .iter()
                .flat_map(|(w, bits)| kinds_of(*bits).map(move |k| (*w, k)))
                .collect();
            list.sort();
            out.insert(path.clone(), list);
        }
        out
    }

    fn forget_path(by_watcher: &mut HashMap<W, HashSet<String>>, watcher: W, path: &str) {
        if let Some(paths) = by_watcher.get_mut(&watcher) {
            paths.remove(path);
            if paths.is_empty() {
                by_watcher.remove(&watcher);
            }
        }
    }
}

fn kinds_of(bits: u8) -> impl Iterator<Item = WatchKind> {
    WatchKind::ALL
        .into_iter()
        .filter(move |k| bits & k.bit() != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventType::*;
    use WatchKind::*;

    fn fired(m: &mut WatchManager<u32>, path: &str, e: EventType) -> Vec<u32> {
        let got = m.trigger(path, e);
        assert!(got.iter().all(|(_, ev)| *ev == e));
        got.into_iter().map(|(w, _)| w).collect()
    }

    /// Checks the internal indexes agree with each other.
    fn check(m: &WatchManager<u32>) {
        let mut counts = [0usize; 4];
        for (path, ws) in &m.by_path {
            assert!(!ws.is_empty(), "empty entry kept for {path}");
            for (w, bits) in ws {
                assert_ne!(*bits, 0);
                assert!(m.by_watcher[w].contains(path));
                kinds_of(*bits).for_each(|k| counts[k.index()] += 1);
            }
        }
        assert_eq!(counts, m.counts);
        for (w, paths) in &m.by_watcher {
            assert!(!paths.is_empty());
            for p in paths {
                assert!(m.by_path[p].contains_key(w));
            }
        }
    }

    #[test]
    fn paths_of_counts_distinct_paths_and_follows_triggers() {
        let mut m = WatchManager::new();
        m.add("/a", 1u32, Data);
        m.add("/a", 1, Child);
        m.add("/b", 1, Persistent);
        m.add("/a", 2, Data);
        assert_eq!(m.paths_of(1), 2);
        assert!(m.watches_path("/b", 1) && !m.watches_path("/b", 2));
        fired(&mut m, "/a", NodeDeleted); // one-shot watches on /a go
        assert_eq!(m.paths_of(1), 1);
        assert_eq!(m.paths_of(2), 0);
        m.remove_watcher(1);
        assert_eq!(m.paths_of(1), 0);
    }

    #[test]
    fn data_watch_fires_once_on_created_and_changed() {
        let mut m = WatchManager::new();
        m.add("/a", 1, Data);
        assert_eq!(fired(&mut m, "/a", NodeCreated), vec![1]);
        assert_eq!(fired(&mut m, "/a", NodeDataChanged), Vec::<u32>::new());
        m.add("/a", 1, Data);
        assert_eq!(fired(&mut m, "/a", NodeDataChanged), vec![1]);
        assert_eq!(fired(&mut m, "/a", NodeDataChanged), Vec::<u32>::new());
        assert!(m.is_empty());
        check(&m);
    }

    #[test]
    fn data_watch_ignores_children_changed_and_other_paths() {
        let mut m = WatchManager::new();
        m.add("/a", 1, Data);
        assert!(fired(&mut m, "/a", NodeChildrenChanged).is_empty());
        assert!(fired(&mut m, "/a/b", NodeDataChanged).is_empty());
        assert!(fired(&mut m, "/ab", NodeDataChanged).is_empty());
        assert!(fired(&mut m, "/", NodeDataChanged).is_empty());
        assert_eq!(m.count(Data), 1);
        assert_eq!(fired(&mut m, "/a", NodeDeleted), vec![1]);
        check(&m);
    }

    #[test]
    fn child_watch_fires_on_children_changed_and_deleted_only() {
        let mut m = WatchManager::new();
        m.add("/a", 1, Child);
        assert!(fired(&mut m, "/a", NodeDataChanged).is_empty());
        assert!(fired(&mut m, "/a", NodeCreated).is_empty());
        assert_eq!(fired(&mut m, "/a", NodeChildrenChanged), vec![1]);
        assert!(fired(&mut m, "/a", NodeChildrenChanged).is_empty());
        m.add("/a", 1, Child);
        assert_eq!(fired(&mut m, "/a", NodeDeleted), vec![1]);
        assert!(m.is_empty());
        check(&m);
    }

    #[test]
    fn created_keeps_the_child_watch_of_the_same_watcher() {
        let mut m = WatchManager::new();
        m.add("/a", 1, Data);
        m.add("/a", 1, Child);
        assert_eq!(fired(&mut m, "/a", NodeCreated), vec![1]);
        assert_eq!(m.count(Data), 0);
        assert_eq!(m.count(Child), 1);
        assert!(m.contains("/a", 1, WatcherType::Children));
        check(&m);
    }

    #[test]
    fn deleted_fires_data_and_child_once_per_watcher() {
        let mut m = WatchManager::new();
        m.add("/a", 1, Data);
        m.add("/a", 1, Child);
        m.add("/a", 2, Child);
        m.add("/a", 3, Persistent);
        assert_eq!(fired(&mut m, "/a", NodeDeleted), vec![1, 2, 3]);
        assert_eq!(m.len(), 1, "only the persistent watch stays");
        assert!(m.contains("/a", 3, WatcherType::Persistent));
        check(&m);
    }

    #[test]
    fn persistent_fires_for_data_and_child_events_and_stays() {
        let mut m = WatchManager::new();
        m.add("/a", 7, Persistent);
        for e in [
            NodeCreated,
            NodeDataChanged,
            NodeChildrenChanged,
            NodeDeleted,
            NodeCreated,
        ] {
            assert_eq!(fired(&mut m, "/a", e), vec![7], "{e:?}");
        }
        assert!(
            fired(&mut m, "/a/b", NodeCreated).is_empty(),
            "not recursive"
        );
        assert_eq!(m.count(Persistent), 1);
        check(&m);
    }

    #[test]
    fn persistent_and_one_shot_on_same_path_notify_once_and_one_shot_goes() {
        let mut m = WatchManager::new();
        m.add("/a", 1, Persistent);
        m.add("/a", 1, Data);
        assert_eq!(m.trigger("/a", NodeDataChanged), vec![(1, NodeDataChanged)]);
        assert_eq!(m.count(Data), 0);
        assert_eq!(m.count(Persistent), 1);
        check(&m);
    }

    #[test]
    fn recursive_fires_on_path_and_descendants_never_for_children_changed() {
        let mut m = WatchManager::new();
        m.add("/a", 5, PersistentRecursive);
        assert_eq!(fired(&mut m, "/a", NodeCreated), vec![5]);
        assert_eq!(fired(&mut m, "/a/b", NodeCreated), vec![5]);
        assert_eq!(fired(&mut m, "/a/b/c", NodeDataChanged), vec![5]);
        assert_eq!(fired(&mut m, "/a/b/c", NodeDeleted), vec![5]);
        assert!(fired(&mut m, "/a", NodeChildrenChanged).is_empty());
        assert!(fired(&mut m, "/a/b", NodeChildrenChanged).is_empty());
        assert!(
            fired(&mut m, "/ab", NodeCreated).is_empty(),
            "sibling with a common prefix"
        );
        assert!(
            fired(&mut m, "/", NodeDataChanged).is_empty(),
            "ancestor of the watch"
        );
        assert_eq!(m.count(PersistentRecursive), 1);
        check(&m);
    }

    #[test]
    fn recursive_on_root_sees_everything() {
        let mut m = WatchManager::new();
        m.add("/", 1, PersistentRecursive);
        assert_eq!(fired(&mut m, "/x/y/z", NodeCreated), vec![1]);
        assert_eq!(fired(&mut m, "/", NodeDataChanged), vec![1]);
    }

    #[test]
    fn one_event_per_watcher_across_path_and_ancestors_sorted() {
        let mut m = WatchManager::new();
        m.add("/", 9, PersistentRecursive);
        m.add("/a", 9, PersistentRecursive);
        m.add("/a/b", 9, Data);
        m.add("/a/b", 3, Data);
        m.add("/a", 4, PersistentRecursive);
        m.add("/a/b", 2, Persistent);
        assert_eq!(
            m.trigger("/a/b", NodeDataChanged),
            vec![
                (2, NodeDataChanged),
                (3, NodeDataChanged),
                (4, NodeDataChanged),
                (9, NodeDataChanged)
            ]
        );
        assert_eq!(m.count(Data), 0);
        check(&m);
    }

    #[test]
    fn none_and_removal_events_fire_nothing() {
        let mut m = WatchManager::new();
        m.add("/a", 1, Data);
        m.add("/a", 1, Persistent);
        for e in [
            EventType::None,
            DataWatchRemoved,
            ChildWatchRemoved,
            PersistentWatchRemoved,
        ] {
            assert!(m.trigger("/a", e).is_empty());
        }
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn add_is_idempotent_per_kind() {
        let mut m = WatchManager::new();
        assert!(m.add("/a", 1, Data));
        assert!(!m.add("/a", 1, Data));
        assert!(m.add("/a", 1, Child));
        assert_eq!(m.len(), 2);
        assert_eq!(m.path_count(), 1);
        assert_eq!(m.watcher_count(), 1);
        check(&m);
    }

    #[test]
    fn remove_by_watcher_type() {
        let mut m = WatchManager::new();
        for k in WatchKind::ALL {
            m.add("/a", 1, k);
        }
        assert!(!m.remove("/a", 2, WatcherType::Any), "other watcher");
        assert!(!m.remove("/b", 1, WatcherType::Any), "other path");
        assert!(!m.remove("/a", 1, WatcherType::Unspecified));
        assert!(m.remove("/a", 1, WatcherType::Children));
        assert!(!m.remove("/a", 1, WatcherType::Children));
        assert!(m.contains("/a", 1, WatcherType::Data));
        assert!(m.remove("/a", 1, WatcherType::Data));
        assert!(!m.contains("/a", 1, WatcherType::Data));
        assert!(m.remove("/a", 1, WatcherType::PersistentRecursive));
        assert_eq!(m.count(PersistentRecursive), 0);
        assert!(m.contains("/a", 1, WatcherType::Any));
        assert!(m.remove("/a", 1, WatcherType::Persistent));
        assert!(!m.contains("/a", 1, WatcherType::Any));
        assert!(m.is_empty());
        assert_eq!(m.path_count(), 0);
        assert_eq!(m.watcher_count(), 0);
        check(&m);
    }

    #[test]
    fn remove_any_includes_persistent_kinds() {
        let mut m = WatchManager::new();
        m.add("/a", 1, Persistent);
        m.add("/a", 1, PersistentRecursive);
        m.add("/a", 2, Data);
        assert!(m.remove("/a", 1, WatcherType::Any));
        assert!(fired(&mut m, "/a/b", NodeCreated).is_empty());
        assert_eq!(fired(&mut m, "/a", NodeDataChanged), vec![2]);
        check(&m);
    }

    #[test]
    fn contains_checks_kind() {
        let mut m = WatchManager::new();
        m.add("/a", 1, Data);
        assert!(m.contains("/a", 1, WatcherType::Data));
        assert!(m.contains("/a", 1, WatcherType::Any));
        assert!(!m.contains("/a", 1, WatcherType::Children));
        assert!(!m.contains("/a", 1, WatcherType::Persistent));
        assert!(!m.contains("/a", 2, WatcherType::Data));
        assert!(!m.contains("/a/b", 1, WatcherType::Any));
    }

    #[test]
    fn remove_watcher_drops_everything_of_that_watcher_only() {
        let mut m = WatchManager::new();
        m.add("/a", 1, Data);
        m.add("/b", 1, Child);
        m.add("/", 1, PersistentRecursive);
        m.add("/a", 2, Data);
        assert_eq!(m.remove_watcher(1), 3);
        assert_eq!(m.remove_watcher(1), 0);
        assert_eq!(m.len(), 1);
        assert_eq!(fired(&mut m, "/a", NodeDataChanged), vec![2]);
        assert!(fired(&mut m, "/b/c", NodeCreated).is_empty());
        check(&m);
    }

    #[test]
    fn counts_and_listings() {
        let mut m = WatchManager::new();
        m.add("/a", 2, Data);
        m.add("/a", 1, Data);
        m.add("/a", 1, Persistent);
        m.add("/b", 1, Child);
        m.add("/c", 3, PersistentRecursive);
        assert_eq!(
            [
                m.count(Data),
                m.count(Child),
                m.count(Persistent),
                m.count(PersistentRecursive)
            ],
            [2, 1, 1, 1]
        );
        assert_eq!(m.len(), 5);
        let by_w = m.by_watcher();
        assert_eq!(
            by_w[&1],
            vec![
                ("/a".into(), Data),
                ("/a".into(), Persistent),
                ("/b".into(), Child)
            ]
        );
        assert_eq!(by_w[&3], vec![("/c".to_string(), PersistentRecursive)]);
        let by_p = m.by_path();
        assert_eq!(
            by_p.keys().cloned().collect::<Vec<_>>(),
            vec!["/a", "/b", "/c"]
        );
        assert_eq!(by_p["/a"], vec![(1, Data), (1, Persistent), (2, Data)]);
    }

    #[test]
    fn trigger_removes_one_shots_from_indexes() {
        let mut m = WatchManager::new();
        for w in 0..50u32 {
            m.add("/a", w, Data);
            m.add("/a/b", w, Child);
        }
        m.trigger("/a", NodeDataChanged);
        check(&m);
        assert_eq!(m.path_count(), 1);
        m.trigger("/a/b", NodeDeleted);
        check(&m);
        assert!(m.is_empty());
        assert_eq!(m.watcher_count(), 0);
    }
}
