//! Watches that miss nothing: a persistent (optionally recursive) watch opened from
//! a zxid ([`crate::Client::watch_from`]).
//!
//! The member replays every change under the path after that zxid from its change
//! history, then sends the live ones (see the server's `history` module); each event
//! carries its zxid, the node's new Stat and, if asked, its data. The client keeps,
//! per watch, the zxid of the last event delivered and how many events of that zxid
//! it delivered. After a reconnect or a failover the watch is re-opened on the new
//! member from just before that zxid, and the events of that zxid already delivered
//! are skipped (every member records the same changes in the same order), so the
//! consumer sees each change exactly once, in zxid order.
//!
//! When the member's history no longer reaches back, the stream yields
//! `Err(Error::WatchHistoryGone)` and ends: re-read what the watch covers, then open a
//! new watch from the zxid of that read. The stream also ends when the session does
//! (after an `Err(SessionExpired)` if it expired).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures::Stream;
use tokio::sync::mpsc;
use zabkeeper_proto::{wire, EventType};

use crate::error::Error;
use crate::types::Stat;

/// One change seen by a watch opened from a zxid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeEvent {
    pub event_type: EventType,
    pub path: String,
    pub zxid: i64,
    /// The node's Stat after the change (None when it was deleted).
    pub stat: Option<Stat>,
    /// The node's data after the change, when the watch asked for data.
    pub data: Option<Bytes>,
}

/// The events of a watch opened from a zxid, in zxid order.
#[derive(Debug)]
pub struct ChangeStream {
    path: String,
    rx: mpsc::UnboundedReceiver<Result<ChangeEvent, Error>>,
}

impl ChangeStream {
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl Stream for ChangeStream {
    type Item = Result<ChangeEvent, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

/// The session task's side of one watch.
#[derive(Debug)]
pub(crate) struct ChangeWatch {
    path: String,
    recursive: bool,
    with_data: bool,
    /// zxid of the last event delivered (initially the zxid the watch starts from).
    last_zxid: i64,
    /// Events with `last_zxid` delivered so far.
    at_last: usize,
    /// Events with `last_zxid` still to skip in a replay.
    skip: usize,
    tx: mpsc::UnboundedSender<Result<ChangeEvent, Error>>,
}

impl ChangeWatch {
    pub(crate) fn new(
        path: &str,
        from_zxid: i64,
        recursive: bool,
        with_data: bool,
    ) -> (ChangeWatch, ChangeStream) {
        let (tx, rx) = mpsc::unbounded_channel();
        let w = ChangeWatch {
            path: path.to_string(),
            recursive,
            with_data,
            last_zxid: from_zxid,
            at_last: 0,
            skip: 0,
            tx,
        };
        (
            w,
            ChangeStream {
                path: path.to_string(),
                rx,
            },
        )
    }

    /// The request that (re)opens the watch where the consumer stands.
    pub(crate) fn request(&mut self, watch_id: u64) -> wire::AddWatchFromRequest {
        let from_zxid = if self.at_last == 0 {
            self.last_zxid
        } else {
            // Some events of `last_zxid` were delivered, maybe not all: replay that
            // txn and skip what was delivered.
            self.skip = self.at_last;
            self.last_zxid - 1
        };
        wire::AddWatchFromRequest {
            path: self.path.clone(),
            recursive: self.recursive,
            from_zxid,
            with_data: self.with_data,
            watch_id,
        }
    }

    /// Delivers an event unless it was delivered already. False once the consumer
    /// dropped the stream.
    pub(crate) fn deliver(&mut self, ev: wire::WatchEvent) -> bool {
        if ev.zxid < self.last_zxid {
            return true;
        }
        if ev.zxid == self.last_zxid {
            if self.skip > 0 {
                self.skip -= 1;
                return true;
            }
            self.at_last += 1;
        } else {
            self.last_zxid = ev.zxid;
            self.at_last = 1;
            self.skip = 0;
        }
        let Some(event_type) = EventType::from_code(ev.r#type) else {
            return true;
        };
        let change = ChangeEvent {
            event_type,
            path: ev.path,
            zxid: ev.zxid,
            stat: ev.stat.map(Into::into),
            data: ev.has_data.then_some(ev.data),
        };
        self.tx.send(Ok(change)).is_ok()
    }

    /// Ends the stream with an error.
    pub(crate) fn fail(self, e: Error) {
        let _ = self.tx.send(Err(e));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    fn ev(zxid: i64, path: &str) -> wire::WatchEvent {
        wire::WatchEvent {
            r#type: EventType::NodeDataChanged as i32,
            path: path.into(),
            zxid,
            watch_id: 1,
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_replay_after_a_reconnect_delivers_each_change_once() {
        let (mut w, mut s) = ChangeWatch::new("/a", 10, true, false);
        assert_eq!(w.request(1).from_zxid, 10);
        w.deliver(ev(11, "/a/x"));
        w.deliver(ev(12, "/a/x"));
        w.deliver(ev(12, "/a/y"));
        // Reconnect: from just before 12, skipping the two events of 12 delivered.
        assert_eq!(w.request(1).from_zxid, 11);
        w.deliver(ev(12, "/a/x"));
        w.deliver(ev(12, "/a/y"));
        w.deliver(ev(12, "/a/z"));
        w.deliver(ev(13, "/a/x"));
        w.deliver(ev(9, "/a/old"));
        drop(w);
        let got: Vec<(i64, String)> = s
            .by_ref()
            .map(|e| {
                let e = e.unwrap();
                (e.zxid, e.path)
            })
            .collect()
            .await;
        assert_eq!(
            got,
            vec![
                (11, "/a/x".into()),
                (12, "/a/x".into()),
                (12, "/a/y".into()),
                (12, "/a/z".into()),
                (13, "/a/x".into()),
            ]
        );
    }
}
