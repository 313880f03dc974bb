//! The client cache of data and children, kept valid by a watch, as Chubby's is.
//!
//! Enabled by [`crate::ConnectOptions::cache_capacity`] (entries; 0 = off) and read
//! through [`crate::Client::get_data_cached`] and
//! [`crate::Client::get_children_cached`]. Entries are filled from the answers to
//! those reads and dropped by an invalidation, least recently used first when full.
//!
//! Validity: on every connection the session task first opens a persistent
//! recursive watch on `/`, so the member sends an event for every change before the
//! answer to any later request that could see it. The session task handles frames in
//! order and drops the entries an event invalidates *before* it handles the next
//! frame, so by the time any answer carrying zxid Z reaches a caller, every entry
//! made stale by a change up to Z is gone: a cached read is never older than the
//! session's last seen zxid, and never older than what the session's own writes or
//! reads already returned.
//!
//! Two races are closed:
//! * A read answered with data from before a change whose event the member queued
//!   between running the read and sending its answer: each cacheable read in flight
//!   is tracked by key, an event for that key marks it dirty, and a dirty answer is
//!   returned to its caller but not cached.
//! * Changes while disconnected: persistent watches are not replayed after a
//!   reconnect, so the whole cache is dropped when the connection is lost (reads
//!   before the next connection are misses).
//!
//! Invalidation by event: NodeCreated(p) drops data(p) and children(parent(p));
//! NodeDeleted(p) drops data(p), children(p) and children(parent(p));
//! NodeDataChanged(p) drops data(p). (A recursive watch never sends
//! NodeChildrenChanged; a child's creation or deletion stands for it.)

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use bytes::Bytes;
use lru::LruCache;
use zabkeeper_proto::EventType;

use crate::types::Stat;

/// What a cache entry holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    Data,
    Children,
}

pub(crate) type Key = (Kind, String);

#[derive(Debug, Clone)]
pub(crate) enum Entry {
    Data(Bytes, Stat),
    Children(Vec<String>),
}

/// Counters of the cache, since the session started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    /// Entries dropped by a change (not by eviction).
    pub invalidations: u64,
    pub entries: usize,
    pub capacity: usize,
}

impl CacheStats {
    /// Hits over lookups (0 when nothing was looked up).
    pub fn hit_rate(&self) -> f64 {
        let total = self.hits + self.misses;
        if total == 0 {
            0.0
        } else {
            self.hits as f64 / total as f64
        }
    }
}

#[derive(Debug)]
struct Inner {
    lru: LruCache<Key, Entry>,
    /// Cacheable reads in flight by key: how many, and whether a change hit the key
    /// since the first was sent.
    in_flight: HashMap<Key, (usize, bool)>,
}

/// The cache shared by the handles (lookups) and the session task (fills and
/// invalidations). One short mutex: never held across an await.
#[derive(Debug)]
pub(crate) struct Cache {
    inner: Mutex<Inner>,
    capacity: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    invalidations: AtomicU64,
}

impl Cache {
    pub(crate) fn new(capacity: NonZeroUsize) -> Cache {
        Cache {
            inner: Mutex::new(Inner {
                lru: LruCache::new(capacity),
                in_flight: HashMap::new(),
            }),
            capacity: capacity.get(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            invalidations: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A lookup by a handle; counts a hit or a miss.
    pub(crate) fn get(&self, key: &Key) -> Option<Entry> {
        let found = self.lock().lru.get(key).cloned();
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        found
    }

    /// A cacheable read is being sent (session task).
    pub(crate) fn sent(&self, key: &Key) {
        let mut inner = self.lock();
        inner.in_flight.entry(key.clone()).or_insert((0, false)).0 += 1;
    }

    /// Its answer arrived (session task): cached unless a change hit the key meanwhile.
    pub(crate) fn answered(&self, key: Key, entry: Option<Entry>) {
        let mut inner = self.lock();
        let dirty = match inner.in_flight.get_mut(&key) {
            Some((n, dirty)) => {
                let d = *dirty;
                *n -= 1;
                if *n == 0 {
                    inner.in_flight.remove(&key);
                }
                d
            }
            None => true,
        };
        if let (false, Some(entry)) = (dirty, entry) {
            inner.lru.put(key, entry);
        }
    }

    /// A watch event (session task, before the next frame).
    pub(crate) fn invalidate(&self, event: EventType, path: &str) {
        let parent = zabkeeper_proto::path::parent(path).to_string();
        let keys: Vec<Key> = match event {
            EventType::NodeCreated => vec![(Kind::Data, path.into()), (Kind::Children, parent)],
            EventType::NodeDeleted => vec![
                (Kind::Data, path.into()),
                (Kind::Children, path.into()),
                (Kind::Children, parent),
            ],
            EventType::NodeDataChanged => vec![(Kind::Data, path.into())],
            EventType::NodeChildrenChanged => vec![(Kind::Children, path.into())],
            _ => return,
        };
        let mut inner = self.lock();
        for key in keys {
            if inner.lru.pop(&key).is_some() {
                self.invalidations.fetch_add(1, Ordering::Relaxed);
            }
            if let Some((_, dirty)) = inner.in_flight.get_mut(&key) {
                *dirty = true;
            }
        }
    }

    /// The connection was lost: changes may go unseen until the next one.
    pub(crate) fn clear(&self) {
        let mut inner = self.lock();
        inner.lru.clear();
        for (_, dirty) in inner.in_flight.values_mut() {
            *dirty = true;
        }
    }

    pub(crate) fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            invalidations: self.invalidations.load(Ordering::Relaxed),
            entries: self.lock().lru.len(),
            capacity: self.capacity,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(v: &'static str) -> Entry {
        Entry::Data(Bytes::from_static(v.as_bytes()), Stat::default())
    }

    fn key(k: Kind, p: &str) -> Key {
        (k, p.to_string())
    }

    #[test]
    fn fills_hits_invalidations_and_the_bound() {
        let c = Cache::new(NonZeroUsize::new(2).unwrap());
        assert!(c.get(&key(Kind::Data, "/a")).is_none());
        c.sent(&key(Kind::Data, "/a"));
        c.answered(key(Kind::Data, "/a"), Some(data("1")));
        assert!(c.get(&key(Kind::Data, "/a")).is_some());
        c.sent(&key(Kind::Children, "/"));
        c.answered(
            key(Kind::Children, "/"),
            Some(Entry::Children(vec!["a".into()])),
        );
        // A child created under / drops the listing of /, not /a's data.
        c.invalidate(EventType::NodeCreated, "/b");
        assert!(c.get(&key(Kind::Children, "/")).is_none());
        assert!(c.get(&key(Kind::Data, "/a")).is_some());
        c.invalidate(EventType::NodeDataChanged, "/a");
        assert!(c.get(&key(Kind::Data, "/a")).is_none());
        // Bounded: the least recently used goes.
        for p in ["/x", "/y", "/z"] {
            c.sent(&key(Kind::Data, p));
            c.answered(key(Kind::Data, p), Some(data("v")));
        }
        let s = c.stats();
        assert_eq!((s.entries, s.capacity, s.invalidations), (2, 2, 2));
        assert_eq!((s.hits, s.misses), (2, 3));
    }

    #[test]
    fn an_answer_raced_by_a_change_is_not_cached() {
        let c = Cache::new(NonZeroUsize::new(8).unwrap());
        c.sent(&key(Kind::Data, "/a"));
        c.invalidate(EventType::NodeDataChanged, "/a");
        c.answered(key(Kind::Data, "/a"), Some(data("old")));
        assert!(c.get(&key(Kind::Data, "/a")).is_none());
        // A lost connection dirties what is in flight and empties the cache.
        c.sent(&key(Kind::Data, "/b"));
        c.sent(&key(Kind::Data, "/c"));
        c.answered(key(Kind::Data, "/c"), Some(data("c")));
        c.clear();
        c.answered(key(Kind::Data, "/b"), Some(data("b")));
        assert!(c.get(&key(Kind::Data, "/b")).is_none());
        assert!(c.get(&key(Kind::Data, "/c")).is_none());
    }
}
