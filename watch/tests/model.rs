//! Both watch tables against a brute-force model of the rules, over random sequences
//! of registrations, removals and events on a small tree of paths.

use std::collections::BTreeSet;

use proptest::prelude::*;
use zabkeeper_proto::wire::WatcherType;
use zabkeeper_proto::EventType;
use zabkeeper_watch::{ClientKind, ClientWatches, WatchKind, WatchManager};

const PATHS: [&str; 6] = ["/", "/a", "/a/b", "/a/b/c", "/ab", "/x"];
const EVENTS: [EventType; 5] = [
    EventType::NodeCreated,
    EventType::NodeDeleted,
    EventType::NodeDataChanged,
    EventType::NodeChildrenChanged,
    EventType::None,
];
const TYPES: [WatcherType; 6] = [
    WatcherType::Unspecified,
    WatcherType::Children,
    WatcherType::Data,
    WatcherType::Any,
    WatcherType::Persistent,
    WatcherType::PersistentRecursive,
];

fn is_ancestor_or_self(anc: &str, path: &str) -> bool {
    anc == path || anc == "/" || path.starts_with(&format!("{anc}/"))
}

fn is_node_event(e: EventType) -> bool {
    matches!(
        e,
        EventType::NodeCreated
            | EventType::NodeDeleted
            | EventType::NodeDataChanged
            | EventType::NodeChildrenChanged
    )
}

/// The server rules, written out plainly.
fn server_fires(kind: WatchKind, at: &str, path: &str, e: EventType) -> bool {
    if !is_node_event(e) {
        return false;
    }
    match kind {
        WatchKind::Data => at == path && e != EventType::NodeChildrenChanged,
        WatchKind::Child => {
            at == path && matches!(e, EventType::NodeChildrenChanged | EventType::NodeDeleted)
        }
        WatchKind::Persistent => at == path,
        WatchKind::PersistentRecursive => {
            is_ancestor_or_self(at, path) && e != EventType::NodeChildrenChanged
        }
    }
}

fn server_selected(kind: WatchKind, t: WatcherType) -> bool {
    match t {
        WatcherType::Unspecified => false,
        WatcherType::Any => true,
        WatcherType::Children => kind == WatchKind::Child,
        WatcherType::Data => kind == WatchKind::Data,
        WatcherType::Persistent => kind == WatchKind::Persistent,
        WatcherType::PersistentRecursive => kind == WatchKind::PersistentRecursive,
    }
}

#[derive(Debug, Clone)]
enum Step {
    Add(usize, u8, usize),
    Trigger(usize, usize),
    Remove(usize, u8, usize),
    Contains(usize, u8, usize),
    RemoveWatcher(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => (0..PATHS.len(), 0u8..3, 0..4usize).prop_map(|(p, w, k)| Step::Add(p, w, k)),
        3 => (0..PATHS.len(), 0..EVENTS.len()).prop_map(|(p, e)| Step::Trigger(p, e)),
        1 => (0..PATHS.len(), 0u8..3, 0..TYPES.len()).prop_map(|(p, w, t)| Step::Remove(p, w, t)),
        1 => (0..PATHS.len(), 0u8..3, 0..TYPES.len()).prop_map(|(p, w, t)| Step::Contains(p, w, t)),
        1 => (0u8..3).prop_map(Step::RemoveWatcher),
    ]
}

proptest! {
    #[test]
    fn server_manager_matches_model(steps in proptest::collection::vec(step(), 1..60)) {
        let mut m = WatchManager::new();
        let mut model: BTreeSet<(String, u8, WatchKind)> = BTreeSet::new();
        for s in steps {
            match s {
                Step::Add(p, w, k) => {
                    let kind = WatchKind::ALL[k];
                    let fresh = model.insert((PATHS[p].to_string(), w, kind));
                    prop_assert_eq!(m.add(PATHS[p], w, kind), fresh);
                }
                Step::Trigger(p, e) => {
                    let (path, e) = (PATHS[p], EVENTS[e]);
                    let fired: Vec<_> = model.iter().filter(|(at, _, k)| server_fires(*k, at, path, e)).cloned().collect();
                    let expected: BTreeSet<u8> = fired.iter().map(|(_, w, _)| *w).collect();
                    for f in &fired {
                        if matches!(f.2, WatchKind::Data | WatchKind::Child) {
                            model.remove(f);
                        }
                    }
                    let got = m.trigger(path, e);
                    prop_assert!(got.iter().all(|(_, ev)| *ev == e));
                    let got_w: Vec<u8> = got.iter().map(|(w, _)| *w).collect();
                    prop_assert_eq!(got_w, expected.into_iter().collect::<Vec<_>>(), "{:?} on {}", e, path);
                }
                Step::Remove(p, w, t) => {
                    let before = model.len();
                    model.retain(|(at, ww, k)| !(at == PATHS[p] && *ww == w && server_selected(*k, TYPES[t])));
                    prop_assert_eq!(m.remove(PATHS[p], w, TYPES[t]), model.len() != before);
                }
                Step::Contains(p, w, t) => {
                    let expected = model.iter().any(|(at, ww, k)| at == PATHS[p] && *ww == w && server_selected(*k, TYPES[t]));
                    prop_assert_eq!(m.contains(PATHS[p], w, TYPES[t]), expected);
                }
                Step::RemoveWatcher(w) => {
                    let before = model.len();
                    model.retain(|(_, ww, _)| *ww != w);
                    prop_assert_eq!(m.remove_watcher(w), before - model.len());
                }
            }
            prop_assert_eq!(m.len(), model.len());
            for kind in WatchKind::ALL {
                prop_assert_eq!(m.count(kind), model.iter().filter(|(_, _, k)| *k == kind).count());
            }
            let listed: usize = m.by_watcher().values().map(Vec::len).sum();
            prop_assert_eq!(listed, model.len());
        }
    }
}

const CLIENT_KINDS: [ClientKind; 5] = [
    ClientKind::Data,
    ClientKind::Exist,
    ClientKind::Child,
    ClientKind::Persistent,
    ClientKind::PersistentRecursive,
];

fn client_fires(kind: ClientKind, at: &str, path: &str, e: EventType) -> bool {
    if !is_node_event(e) {
        return false;
    }
    match kind {
        ClientKind::Data | ClientKind::Exist => at == path && e != EventType::NodeChildrenChanged,
        ClientKind::Child => {
            at == path && matches!(e, EventType::NodeChildrenChanged | EventType::NodeDeleted)
        }
        ClientKind::Persistent => at == path,
        ClientKind::PersistentRecursive => {
            is_ancestor_or_self(at, path) && e != EventType::NodeChildrenChanged
        }
    }
}

proptest! {
    #[test]
    fn client_registry_matches_model(
        steps in proptest::collection::vec((0..PATHS.len(), 0..5usize, 0..EVENTS.len(), any::<bool>()), 1..60)
    ) {
        let mut w = ClientWatches::new();
        let mut model: Vec<(String, ClientKind, u32)> = Vec::new();
        for (key, (p, k, e, add)) in steps.into_iter().enumerate() {
            let key = key as u32;
            if add {
                w.add(PATHS[p], CLIENT_KINDS[k], key);
                model.push((PATHS[p].to_string(), CLIENT_KINDS[k], key));
            } else {
                let (path, e) = (PATHS[p], EVENTS[e]);
                let mut expected: BTreeSet<u32> = BTreeSet::new();
                model.retain(|(at, kind, key)| {
                    if !client_fires(*kind, at, path, e) {
                        return true;
                    }
                    expected.insert(*key);
                    matches!(kind, ClientKind::Persistent | ClientKind::PersistentRecursive)
                });
                let got = w.materialize(e, path);
                let got_set: BTreeSet<u32> = got.iter().copied().collect();
                prop_assert_eq!(got.len(), got_set.len(), "each registration once");
                prop_assert_eq!(got_set, expected, "{:?} on {}", e, path);
            }
            prop_assert_eq!(w.len(), model.len());
            let paths = w.paths();
            let expect_paths = |kind| {
                model.iter().filter(|(_, k, _)| *k == kind).map(|(p, _, _)| p.clone()).collect::<BTreeSet<_>>().into_iter().collect::<Vec<_>>()
            };
            prop_assert_eq!(paths.data, expect_paths(ClientKind::Data));
            prop_assert_eq!(paths.exist, expect_paths(ClientKind::Exist));
            prop_assert_eq!(paths.child, expect_paths(ClientKind::Child));
            prop_assert_eq!(paths.persistent_recursive, expect_paths(ClientKind::PersistentRecursive));
        }
    }
}
