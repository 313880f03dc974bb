//! Watches as the application sees them, and their routing inside the connection task.
//!
//! A one-shot watch ([`OneshotWatch`]) is a future that resolves with the event that
//! fired it; a persistent watch ([`PersistentWatch`]) is a stream of events. Both are
//! fed by the connection task through channels, in the order notifications arrive, and
//! a notification is routed before the task looks at the next frame, so an event
//! always reaches its channel before the answer to any request the server answered
//! after it.
//!
//! A watch is registered locally only when the server's answer to the registering
//! call arrives (as ZooKeeper's client does), which is also when the server has
//! registered it: a notification after that answer finds it.
//!
//! Connection blips do not resolve watches: they are re-registered after a reconnect
//! (`SetWatches`), and the session state is on [`crate::Client::state_stream`]. When
//! the session ends (expired or closed) every watch gets one final event with type
//! `None` and that state, and persistent streams end. `remove_watches` resolves the
//! removed watches with a `*WatchRemoved` event.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::Stream;
use tokio::sync::{mpsc, oneshot};
use zabkeeper_proto::{EventType, KeeperState};
use zabkeeper_watch::{ClientKind, ClientWatches, WatchPaths};

use crate::types::{WatchedEvent, WatcherType};

/// A one-shot watch: resolves once, with the event that fired it.
#[derive(Debug)]
pub struct OneshotWatch {
    path: String,
    rx: oneshot::Receiver<WatchedEvent>,
}

impl OneshotWatch {
    pub(crate) fn new(path: &str) -> (OneshotWatch, oneshot::Sender<WatchedEvent>) {
        let (tx, rx) = oneshot::channel();
        (
            OneshotWatch {
                path: path.to_string(),
                rx,
            },
            tx,
        )
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

impl Future for OneshotWatch {
    type Output = WatchedEvent;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<WatchedEvent> {
        Pin::new(&mut self.rx).poll(cx).map(|r| {
            // The connection task is gone without a final event: report the handle closed.
            r.unwrap_or_else(|_| WatchedEvent {
                event_type: EventType::None,
                state: KeeperState::Closed,
                path: self.path.clone(),
                zxid: 0,
            })
        })
    }
}

/// A persistent (or persistent-recursive) watch: a stream of events until removed or
/// until the session ends.
#[derive(Debug)]
pub struct PersistentWatch {
    path: String,
    rx: mpsc::UnboundedReceiver<WatchedEvent>,
}

impl PersistentWatch {
    pub(crate) fn new(path: &str) -> (PersistentWatch, mpsc::UnboundedSender<WatchedEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            PersistentWatch {
                path: path.to_string(),
                rx,
            },
            tx,
        )
    }

    pub fn path(&self) -> &str {
        &self.path
    }
}

impl Stream for PersistentWatch {
    type Item = WatchedEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchedEvent>> {
        self.rx.poll_recv(cx)
    }
}

/// What a registering call hands to the connection task.
#[derive(Debug)]
pub(crate) enum WatchReg {
    GetData(oneshot::Sender<WatchedEvent>),
    /// Data watch if the node exists, exist watch if the answer is NoNode.
    Exists(oneshot::Sender<WatchedEvent>),
    Children(oneshot::Sender<WatchedEvent>),
    Persistent(mpsc::UnboundedSender<WatchedEvent>),
    Recursive(mpsc::UnboundedSender<WatchedEvent>),
}

impl WatchReg {
    pub(crate) fn is_closed(&self) -> bool {
        match self {
            WatchReg::GetData(s) | WatchReg::Exists(s) | WatchReg::Children(s) => s.is_closed(),
            WatchReg::Persistent(s) | WatchReg::Recursive(s) => s.is_closed(),
        }
    }
}

#[derive(Debug)]
enum Sink {
    Once(oneshot::Sender<WatchedEvent>),
    Stream(mpsc::UnboundedSender<WatchedEvent>),
}

impl Sink {
    fn is_closed(&self) -> bool {
        match self {
            Sink::Once(s) => s.is_closed(),
            Sink::Stream(s) => s.is_closed(),
        }
    }

    /// Sends; false if the receiver is gone.
    fn send(self, ev: WatchedEvent) -> bool {
        match self {
            Sink::Once(s) => s.send(ev).is_ok(),
            Sink::Stream(s) => s.send(ev).is_ok(),
        }
    }
}

/// The connection task's watch table: registry plus the channel of each registration.
#[derive(Debug, Default)]
pub(crate) struct Watches {
    registry: ClientWatches<u64>,
    /// Each registration's channel and the path it was registered on.
    sinks: HashMap<u64, (String, Sink)>,
    next_key: u64,
}

impl Watches {
    /// Registers the watch a successful call asked for. `node_missing` is true when the
    /// answer was NoNode (only an exists watch survives that).
    pub(crate) fn register(&mut self, path: &str, reg: WatchReg, node_missing: bool) {
        if reg.is_closed() {
            return;
        }
        let (kind, sink) = match (reg, node_missing) {
            (WatchReg::Exists(s), true) => (ClientKind::Exist, Sink::Once(s)),
            (_, true) => return,
            (WatchReg::GetData(s) | WatchReg::Exists(s), false) => {
                (ClientKind::Data, Sink::Once(s))
            }
            (WatchReg::Children(s), false) => (ClientKind::Child, Sink::Once(s)),
            (WatchReg::Persistent(s), false) => (ClientKind::Persistent, Sink::Stream(s)),
            (WatchReg::Recursive(s), false) => (ClientKind::PersistentRecursive, Sink::Stream(s)),
        };
        let key = self.next_key;
        self.next_key += 1;
        self.registry.add(path, kind, key);
        self.sinks.insert(key, (path.to_string(), sink));
    }

    /// Routes a notification to the registrations it resolves.
    pub(crate) fn deliver(&mut self, ev: &WatchedEvent) {
        for key in self.registry.materialize(ev.event_type, &ev.path) {
            match self.sinks.remove(&key) {
                Some((path, Sink::Stream(s))) => {
                    if s.send(ev.clone()).is_ok() {
                        self.sinks.insert(key, (path, Sink::Stream(s)));
                    } else {
                        // The application dropped the stream; stop routing to it.
                        self.registry.remove_key(&path, key);
                    }
                }
                Some((_, sink @ Sink::Once(_))) => {
                    sink.send(ev.clone());
                }
                None => {}
            }
        }
    }

    /// Removes the registrations `kind` selects on `path`, telling each it was removed.
    pub(crate) fn remove(&mut self, path: &str, kind: WatcherType, zxid: i64) {
        for (k, key) in self.registry.remove(path, kind) {
            let event_type = match k {
                ClientKind::Data | ClientKind::Exist => EventType::DataWatchRemoved,
                ClientKind::Child => EventType::ChildWatchRemoved,
                ClientKind::Persistent | ClientKind::PersistentRecursive => {
                    EventType::PersistentWatchRemoved
                }
            };
            if let Some((_, sink)) = self.sinks.remove(&key) {
                sink.send(WatchedEvent {
                    event_type,
                    state: KeeperState::SyncConnected,
                    path: path.to_string(),
                    zxid,
                });
            }
        }
    }

    /// Ends every watch with a final state event (session expired or closed).
    pub(crate) fn finish(&mut self, state: KeeperState) {
        for (path, _, key) in self.registry.drain() {
            if let Some((_, sink)) = self.sinks.remove(&key) {
                sink.send(WatchedEvent {
                    event_type: EventType::None,
                    state,
                    path,
                    zxid: 0,
                });
            }
        }
        self.sinks.clear();
    }

    /// Paths to re-register after a reconnect, after dropping watches nobody waits on.
    pub(crate) fn paths_to_restore(&mut self) -> WatchPaths {
        let dead: Vec<(u64, String)> = self
            .sinks
            .iter()
            .filter(|(_, (_, s))| s.is_closed())
            .map(|(k, (p, _))| (*k, p.clone()))
            .collect();
        for (key, path) in dead {
            self.sinks.remove(&key);
            self.registry.remove_key(&path, key);
        }
        self.registry.paths()
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.registry.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{FutureExt, StreamExt};

    fn ev(event_type: EventType, path: &str, zxid: i64) -> WatchedEvent {
        WatchedEvent {
            event_type,
            state: KeeperState::SyncConnected,
            path: path.into(),
            zxid,
        }
    }

    #[test]
    fn one_shot_resolves_once_with_the_event() {
        let mut w = Watches::default();
        let (fut, tx) = OneshotWatch::new("/a");
        w.register("/a", WatchReg::GetData(tx), false);
        w.deliver(&ev(EventType::NodeChildrenChanged, "/a", 4));
        assert_eq!(w.len(), 1, "children events do not fire data watches");
        w.deliver(&ev(EventType::NodeDataChanged, "/a", 5));
        w.deliver(&ev(EventType::NodeDataChanged, "/a", 6));
        assert_eq!(
            fut.now_or_never(),
            Some(ev(EventType::NodeDataChanged, "/a", 5))
        );
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn exists_on_missing_node_registers_an_exist_watch() {
        let mut w = Watches::default();
        let (fut, tx) = OneshotWatch::new("/a");
        w.register("/a", WatchReg::Exists(tx), true);
        assert_eq!(w.paths_to_restore().exist, vec!["/a"]);
        w.deliver(&ev(EventType::NodeCreated, "/a", 9));
        assert_eq!(
            fut.now_or_never().unwrap().event_type,
            EventType::NodeCreated
        );
    }

    #[test]
    fn failed_get_data_registers_nothing() {
        let mut w = Watches::default();
        let (_fut, tx) = OneshotWatch::new("/a");
        w.register("/a", WatchReg::GetData(tx), true);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn persistent_stream_sees_every_event_in_order_and_recursive_sees_descendants() {
        let mut w = Watches::default();
        let (mut p, tx) = PersistentWatch::new("/a");
        w.register("/a", WatchReg::Persistent(tx), false);
        let (mut r, tx) = PersistentWatch::new("/a");
        w.register("/a", WatchReg::Recursive(tx), false);
        let events = [
            ev(EventType::NodeCreated, "/a", 1),
            ev(EventType::NodeChildrenChanged, "/a", 2),
            ev(EventType::NodeCreated, "/a/b", 2),
            ev(EventType::NodeDataChanged, "/a", 3),
        ];
        for e in &events {
            w.deliver(e);
        }
        let got: Vec<_> = std::iter::from_fn(|| p.next().now_or_never().flatten()).collect();
        assert_eq!(
            got,
            vec![events[0].clone(), events[1].clone(), events[3].clone()]
        );
        let got: Vec<_> = std::iter::from_fn(|| r.next().now_or_never().flatten()).collect();
        assert_eq!(
            got,
            vec![events[0].clone(), events[2].clone(), events[3].clone()]
        );
    }

    #[test]
    fn dropped_streams_and_futures_are_forgotten() {
        let mut w = Watches::default();
        let (r, tx) = PersistentWatch::new("/a");
        w.register("/a", WatchReg::Recursive(tx), false);
        let (f, tx) = OneshotWatch::new("/b");
        w.register("/b", WatchReg::GetData(tx), false);
        drop(r);
        w.deliver(&ev(EventType::NodeCreated, "/a/x", 1));
        assert_eq!(w.len(), 1);
        drop(f);
        assert!(w.paths_to_restore().is_empty());
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn remove_sends_removal_events() {
        let mut w = Watches::default();
        let (f, tx) = OneshotWatch::new("/a");
        w.register("/a", WatchReg::Children(tx), false);
        let (mut p, tx) = PersistentWatch::new("/a");
        w.register("/a", WatchReg::Persistent(tx), false);
        w.remove("/a", WatcherType::Any, 7);
        assert_eq!(
            f.now_or_never().unwrap().event_type,
            EventType::ChildWatchRemoved
        );
        assert_eq!(
            p.next().now_or_never().unwrap().unwrap().event_type,
            EventType::PersistentWatchRemoved
        );
        assert_eq!(p.next().now_or_never(), Some(None), "stream ends");
    }

    #[test]
    fn finish_sends_final_state_and_ends_streams() {
        let mut w = Watches::default();
        let (f, tx) = OneshotWatch::new("/a");
        w.register("/a", WatchReg::GetData(tx), false);
        let (mut p, tx) = PersistentWatch::new("/");
        w.register("/", WatchReg::Recursive(tx), false);
        w.finish(KeeperState::Expired);
        let e = f.now_or_never().unwrap();
        assert_eq!(
            (e.event_type, e.state, e.path.as_str()),
            (EventType::None, KeeperState::Expired, "/a")
        );
        assert_eq!(
            p.next().now_or_never().unwrap().unwrap().state,
            KeeperState::Expired
        );
        assert_eq!(p.next().now_or_never(), Some(None));
    }
}
