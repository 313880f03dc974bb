//! Requests sent and not yet answered, matched to answers by xid.
//!
//! The server answers a session's requests in the order they were sent, so the
//! queue is FIFO and an answer must match the oldest entry. An answer that does not
//! is a protocol violation: the connection is dropped, since nothing after it can be
//! trusted. Pings are the one tolerance: their answers are matched to the oldest
//! outstanding ping wherever it is, so a server that answers pings out of band
//! still works.

use std::collections::VecDeque;

/// xid of pings (ZooKeeper's).
pub(crate) const PING_XID: i32 = -2;
/// xid of the SetWatches sent after a reconnect (ZooKeeper's).
pub(crate) const SET_WATCHES_XID: i32 = -8;
/// xid of auth requests re-sent after a reconnect (ZooKeeper's).
pub(crate) const AUTH_XID: i32 = -4;

/// An answer whose xid is not the one expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unexpected {
    pub expected: Option<i32>,
    pub got: i32,
}

#[derive(Debug)]
pub(crate) struct InFlight<T> {
    queue: VecDeque<(i32, T)>,
    next_xid: i32,
}

impl<T> InFlight<T> {
    pub(crate) fn new() -> Self {
        InFlight {
            queue: VecDeque::new(),
            next_xid: 1,
        }
    }

    /// A fresh positive xid (wraps to 1, never reaching the reserved negative ones).
    pub(crate) fn next_xid(&mut self) -> i32 {
        let xid = self.next_xid;
        self.next_xid = if xid == i32::MAX { 1 } else { xid + 1 };
        xid
    }

    pub(crate) fn push(&mut self, xid: i32, item: T) {
        self.queue.push_back((xid, item));
    }

    /// The entry an answer with this xid completes.
    pub(crate) fn complete(&mut self, xid: i32) -> Result<T, Unexpected> {
        match self.queue.front() {
            Some((front, _)) if *front == xid => {
                Ok(self.queue.pop_front().expect("front exists").1)
            }
            _ if xid == PING_XID => match self.queue.iter().position(|(x, _)| *x == PING_XID) {
                Some(i) => Ok(self.queue.remove(i).expect("index in range").1),
                None => Err(Unexpected {
                    expected: self.queue.front().map(|e| e.0),
                    got: xid,
                }),
            },
            front => Err(Unexpected {
                expected: front.map(|e| e.0),
                got: xid,
            }),
        }
    }

    /// Removes every entry, oldest first.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.queue.drain(..).map(|(_, t)| t)
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_match_in_send_order() {
        let mut q = InFlight::new();
        let a = q.next_xid();
        let b = q.next_xid();
        q.push(a, "a");
        q.push(b, "b");
        assert_eq!(
            q.complete(b),
            Err(Unexpected {
                expected: Some(a),
                got: b
            })
        );
        assert_eq!(q.complete(a), Ok("a"));
        assert_eq!(q.complete(b), Ok("b"));
        assert_eq!(
            q.complete(b),
            Err(Unexpected {
                expected: None,
                got: b
            })
        );
    }

    #[test]
    fn pings_may_be_answered_out_of_band() {
        let mut q = InFlight::new();
        q.push(1, "req");
        q.push(PING_XID, "ping");
        q.push(2, "req2");
        assert_eq!(q.complete(PING_XID), Ok("ping"));
        assert_eq!(
            q.complete(PING_XID),
            Err(Unexpected {
                expected: Some(1),
                got: PING_XID
            })
        );
        assert_eq!(q.complete(1), Ok("req"));
        assert_eq!(q.len(), 1);
    }

    #[test]
    fn xids_are_positive_and_wrap() {
        let mut q: InFlight<()> = InFlight::new();
        assert_eq!(q.next_xid(), 1);
        q.next_xid = i32::MAX;
        assert_eq!(q.next_xid(), i32::MAX);
        assert_eq!(q.next_xid(), 1);
    }

    #[test]
    fn drain_empties_in_order() {
        let mut q = InFlight::new();
        q.push(1, 'x');
        q.push(2, 'y');
        assert_eq!(q.drain().collect::<String>(), "xy");
        assert_eq!(q.len(), 0);
    }
}
