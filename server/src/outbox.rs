//! A connection's outbox: watch notifications and session ends that the core pushes to
//! a connection, with a bound on the bytes waiting in it.
//!
//! The core never blocks on a connection: it pushes while applying a txn, under the
//! tree's write lock. A client that stops reading its socket (a slow or stuck reader)
//! would therefore make its outbox grow without end while its connection task waits
//! for the socket. Each outbox counts the bytes queued in it (path length plus a fixed
//! overhead per notification); a push that would pass `max_queued_bytes` is dropped and
//! cuts the connection off instead (its `cutoff` token fires, the connection task is
//! abandoned wherever it waits, the socket closes). The session is not touched: the
//! client may reconnect and re-register its watches, as after any connection loss.

use crate::reply::Outgoing;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Bytes a queued notification is charged beyond its path (the event record, the
/// channel node, the frame header).
const EVENT_OVERHEAD: usize = 64;

struct Meter {
    queued: AtomicUsize,
    max: usize,
    overflowed: AtomicBool,
    cutoff: CancellationToken,
}

/// The core's end of a connection's outbox.
#[derive(Clone)]
pub struct OutboxTx {
    tx: mpsc::UnboundedSender<Outgoing>,
    meter: Arc<Meter>,
}

/// The connection's end.
pub struct OutboxRx {
    rx: mpsc::UnboundedReceiver<Outgoing>,
    meter: Arc<Meter>,
}

/// Creates an outbox holding at most `max_bytes` of notifications. The token fires when
/// a push passes that bound: the connection must then close.
pub fn outbox(max_bytes: usize) -> (OutboxTx, OutboxRx, CancellationToken) {
    let (tx, rx) = mpsc::unbounded_channel();
    let cutoff = CancellationToken::new();
    let meter = Arc::new(Meter {
        queued: AtomicUsize::new(0),
        max: max_bytes,
        overflowed: AtomicBool::new(false),
        cutoff: cutoff.clone(),
    });
    (
        OutboxTx {
            tx,
            meter: meter.clone(),
        },
        OutboxRx { rx, meter },
        cutoff,
    )
}

fn cost(out: &Outgoing) -> usize {
    match out {
        Outgoing::Event(e) => {
            let data = e
                .change
                .as_ref()
                .and_then(|c| c.data.as_ref())
                .map_or(0, |d| d.len());
            e.path.len() + data + EVENT_OVERHEAD
        }
        Outgoing::Close(_) => 0,
    }
}

impl OutboxTx {
    /// Queues `out` unless the outbox is over its bound (then the connection is cut off)
    /// or the connection is gone. Never blocks.
    pub fn push(&self, out: Outgoing) {
        let m = &self.meter;
        if m.overflowed.load(Ordering::Relaxed) {
            return;
        }
        let c = cost(&out);
        let before = m.queued.fetch_add(c, Ordering::AcqRel);
        if c > 0 && before + c > m.max {
            m.queued.fetch_sub(c, Ordering::AcqRel);
            if !m.overflowed.swap(true, Ordering::AcqRel) {
                tracing::warn!(
                    queued = before,
                    max = m.max,
                    "slow reader: notifications past max_queued_bytes, closing its connection"
                );
                m.cutoff.cancel();
            }
            return;
        }
        if self.tx.send(out).is_err() {
            m.queued.fetch_sub(c, Ordering::AcqRel);
        }
    }

    /// Bytes queued now.
    pub fn queued_bytes(&self) -> usize {
        self.meter.queued.load(Ordering::Acquire)
    }
}

impl OutboxRx {
    pub async fn recv(&mut self) -> Option<Outgoing> {
        let out = self.rx.recv().await?;
        self.meter.queued.fetch_sub(cost(&out), Ordering::AcqRel);
        Some(out)
    }

    pub fn try_recv(&mut self) -> Option<Outgoing> {
        let out = self.rx.try_recv().ok()?;
        self.meter.queued.fetch_sub(cost(&out), Ordering::AcqRel);
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reply::Event;
    use zabkeeper_proto::{ErrorCode, EventType};

    fn event(path: &str) -> Outgoing {
        Outgoing::Event(Event {
            event_type: EventType::NodeCreated,
            path: path.into(),
            zxid: 1,
            change: None,
        })
    }

    #[tokio::test]
    async fn bound_counts_queued_bytes_and_cuts_off_once() {
        let (tx, mut rx, cutoff) = outbox(3 * (EVENT_OVERHEAD + 2));
        for _ in 0..3 {
            tx.push(event("/a"));
        }
        assert!(!cutoff.is_cancelled());
        assert_eq!(rx.recv().await, Some(event("/a")));
        tx.push(event("/b")); // room again after a receive
        assert!(!cutoff.is_cancelled());
        tx.push(event("/c")); // over the bound
        assert!(cutoff.is_cancelled());
        tx.push(Outgoing::Close(ErrorCode::SessionExpired)); // nothing after the cut
        assert_eq!(rx.try_recv(), Some(event("/a")));
        assert_eq!(rx.try_recv(), Some(event("/a")));
        assert_eq!(rx.try_recv(), Some(event("/b")));
        assert_eq!(rx.try_recv(), None);
        assert_eq!(tx.queued_bytes(), 0);
    }

    #[tokio::test]
    async fn close_is_never_refused_before_overflow() {
        let (tx, mut rx, cutoff) = outbox(EVENT_OVERHEAD + 2);
        tx.push(event("/a"));
        tx.push(Outgoing::Close(ErrorCode::SessionMoved));
        assert!(!cutoff.is_cancelled());
        assert_eq!(rx.recv().await, Some(event("/a")));
        assert_eq!(
            rx.recv().await,
            Some(Outgoing::Close(ErrorCode::SessionMoved))
        );
    }
}
