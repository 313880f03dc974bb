//! Peer messages and their wire encoding.
//!
//! [`Message`] is what the core speaks; [`Message::encode`] and
//! [`Message::decode`] map it to a protobuf envelope (prost derive, no
//! `.proto` file) with one `oneof` arm per message. Decoding never panics:
//! garbage, an empty envelope or an unknown enum value is a
//! [`ZabError::Decode`].

use bytes::Bytes;
use prost::Message as _;

use crate::{ServerId, Txn, ZabError, Zxid};

/// A vote in Fast Leader Election: "`leader`, whose last zxid is `zxid` and
/// whose current epoch is `epoch`, should lead". Votes are ordered by
/// `(epoch, zxid, leader)`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct Vote {
    /// The proposed leader.
    pub leader: ServerId,
    /// The proposed leader's last zxid.
    pub zxid: Zxid,
    /// The proposed leader's current epoch.
    pub epoch: u32,
}

impl Vote {
    fn key(&self) -> (u32, Zxid, ServerId) {
        (self.epoch, self.zxid, self.leader)
    }

    /// The vote an established member answers LOOKING peers with: the same
    /// for every member of the ensemble, whatever vote each one decided on,
    /// so that the out-of-election quorum check can match them (ZooKeeper
    /// compares only leader and epoch there, ZOOKEEPER-1732).
    pub fn established(leader: ServerId, epoch: u32) -> Vote {
        Vote {
            leader,
            zxid: Zxid::new(epoch, 0),
            epoch,
        }
    }

    /// Whether this vote wins over `other`.
    pub fn beats(&self, other: &Vote) -> bool {
        self.key() > other.key()
    }
}

/// The sender's state in a vote notification.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerState {
    /// Electing.
    Looking,
    /// Following the vote's leader.
    Following,
    /// Leading (the vote names the sender).
    Leading,
}

/// A message between two members.
#[derive(Clone, Debug, PartialEq)]
pub enum Message {
    /// FLE notification.
    Vote {
        /// The sender's current vote.
        vote: Vote,
        /// The sender's election round (logical clock).
        round: u64,
        /// The sender's state.
        state: PeerState,
    },
    /// Follower -> leader: start of discovery.
    FollowerInfo {
        /// The follower's accepted epoch.
        accepted_epoch: u32,
        /// The follower's last zxid.
        last_zxid: Zxid,
    },
    /// Leader -> follower: the proposed new epoch.
    LeaderInfo {
        /// The new epoch.
        epoch: u32,
    },
    /// Follower -> leader: epoch accepted; the follower's history summary.
    AckEpoch {
        /// The follower's current epoch (before the new one).
        current_epoch: u32,
        /// The follower's last zxid.
        last_zxid: Zxid,
        /// The last zxid of each epoch in the follower's history, ascending
        /// (its base/snapshot zxid included).
        epoch_ends: Vec<Zxid>,
        /// False when the follower had already accepted this epoch: it then
        /// syncs but does not count toward the leader's epoch quorum.
        counted: bool,
    },
    /// Leader -> follower: your history matches mine up to `after`; the
    /// transactions after it follow as `Proposal`s.
    Diff {
        /// The common prefix end.
        after: Zxid,
    },
    /// Leader -> follower: drop everything after `after`; the transactions
    /// after it follow as `Proposal`s.
    Trunc {
        /// The common prefix end.
        after: Zxid,
    },
    /// Leader -> follower: the leader's state machine at `zxid` (built by the
    /// runtime on `Action::SendSnapshot`).
    Snapshot {
        /// The last zxid applied in `data`.
        zxid: Zxid,
        /// The state machine, opaque to zab.
        data: Bytes,
    },
    /// Leader -> follower: a transaction (in sync or broadcast).
    Proposal {
        /// The transaction.
        txn: Txn,
    },
    /// Leader -> follower: end of sync; the follower's history now ends at
    /// `zxid` and belongs to `epoch`.
    NewLeader {
        /// The new epoch.
        epoch: u32,
        /// The leader's last zxid when the sync was sent.
        zxid: Zxid,
    },
    /// Follower -> leader: NEWLEADER's history is durable and the epoch
    /// persisted.
    AckNewLeader {
        /// The new epoch.
        epoch: u32,
    },
    /// Leader -> follower: established; everything up to `committed` is
    /// committed, serve clients.
    UpToDate {
        /// The leader's commit point.
        committed: Zxid,
    },
    /// Follower -> leader: everything up to `zxid` is durable (cumulative).
    Ack {
        /// Durable up to here.
        zxid: Zxid,
    },
    /// Leader -> follower: everything up to `zxid` is committed (cumulative).
    Commit {
        /// Committed up to here.
        zxid: Zxid,
    },
    /// Leader heartbeat.
    Ping,
    /// Follower answer to a heartbeat.
    Pong,
    /// Leader -> follower: a numbered heartbeat round, to confirm leadership
    /// for linearizable reads and to renew the lease.
    Heartbeat {
        /// The leader's epoch.
        epoch: u32,
        /// The round, increasing within a leadership.
        round: u64,
    },
    /// Follower -> leader: still following you in `epoch`.
    HeartbeatAck {
        /// The epoch of the heartbeat.
        epoch: u32,
        /// The round acknowledged.
        round: u64,
    },
    /// Follower -> leader: confirm leadership for the follower's read `id`.
    ReadIndex {
        /// The follower's read id.
        id: u64,
    },
    /// Leader -> follower: the read `id` may be served once applied up to
    /// `zxid`; `None` when the leader cannot confirm it.
    ReadIndexReply {
        /// The follower's read id.
        id: u64,
        /// The leader's commit point after confirmation.
        zxid: Option<Zxid>,
    },
}

mod wire {
    use bytes::Bytes;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Envelope {
        #[prost(
            oneof = "Body",
            tags = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19"
        )]
        pub body: Option<Body>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Body {
        #[prost(message, tag = "1")]
        Vote(Vote),
        #[prost(message, tag = "2")]
        FollowerInfo(FollowerInfo),
        #[prost(message, tag = "3")]
        LeaderInfo(Epoch),
        #[prost(message, tag = "4")]
        AckEpoch(AckEpoch),
        #[prost(message, tag = "5")]
        Diff(At),
        #[prost(message, tag = "6")]
        Trunc(At),
        #[prost(message, tag = "7")]
        Snapshot(Txn),
        #[prost(message, tag = "8")]
        Proposal(Txn),
        #[prost(message, tag = "9")]
        NewLeader(NewLeader),
        #[prost(message, tag = "10")]
        AckNewLeader(Epoch),
        #[prost(message, tag = "11")]
        UpToDate(At),
        #[prost(message, tag = "12")]
        Ack(At),
        #[prost(message, tag = "13")]
        Commit(At),
        #[prost(message, tag = "14")]
        Ping(Empty),
        #[prost(message, tag = "15")]
        Pong(Empty),
        #[prost(message, tag = "16")]
        Heartbeat(Round),
        #[prost(message, tag = "17")]
        HeartbeatAck(Round),
        #[prost(message, tag = "18")]
        ReadIndex(Read),
        #[prost(message, tag = "19")]
        ReadIndexReply(Read),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Round {
        #[prost(uint32, tag = "1")]
        pub epoch: u32,
        #[prost(uint64, tag = "2")]
        pub round: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Read {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, optional, tag = "2")]
        pub zxid: Option<u64>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Vote {
        #[prost(uint64, tag = "1")]
        pub leader: u64,
        #[prost(uint64, tag = "2")]
        pub zxid: u64,
        #[prost(uint32, tag = "3")]
        pub epoch: u32,
        #[prost(uint64, tag = "4")]
        pub round: u64,
        #[prost(uint32, tag = "5")]
        pub state: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct FollowerInfo {
        #[prost(uint32, tag = "1")]
        pub accepted_epoch: u32,
        #[prost(uint64, tag = "2")]
        pub last_zxid: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Epoch {
        #[prost(uint32, tag = "1")]
        pub epoch: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AckEpoch {
        #[prost(uint32, tag = "1")]
        pub current_epoch: u32,
        #[prost(uint64, tag = "2")]
        pub last_zxid: u64,
        #[prost(uint64, repeated, tag = "3")]
        pub epoch_ends: Vec<u64>,
        #[prost(bool, tag = "4")]
        pub counted: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct At {
        #[prost(uint64, tag = "1")]
        pub zxid: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Txn {
        #[prost(uint64, tag = "1")]
        pub zxid: u64,
        #[prost(bytes = "bytes", tag = "2")]
        pub data: Bytes,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NewLeader {
        #[prost(uint32, tag = "1")]
        pub epoch: u32,
        #[prost(uint64, tag = "2")]
        pub zxid: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Empty {}
}

impl Message {
    /// Encodes the message as a protobuf envelope.
    pub fn encode(&self) -> Vec<u8> {
        use wire::Body as B;
        let at = |z: &Zxid| wire::At { zxid: z.0 };
        let txn = |t: &Txn| wire::Txn {
            zxid: t.zxid.0,
            data: t.data.clone(),
        };
        let body = match self {
            Message::Vote { vote, round, state } => B::Vote(wire::Vote {
                leader: vote.leader,
                zxid: vote.zxid.0,
                epoch: vote.epoch,
                round: *round,
                state: match state {
                    PeerState::Looking => 0,
                    PeerState::Following => 1,
                    PeerState::Leading => 2,
                },
            }),
            Message::FollowerInfo {
                accepted_epoch,
                last_zxid,
            } => B::FollowerInfo(wire::FollowerInfo {
                accepted_epoch: *accepted_epoch,
                last_zxid: last_zxid.0,
            }),
            Message::LeaderInfo { epoch } => B::LeaderInfo(wire::Epoch { epoch: *epoch }),
            Message::AckEpoch {
                current_epoch,
                last_zxid,
                epoch_ends,
                counted,
            } => B::AckEpoch(wire::AckEpoch {
                current_epoch: *current_epoch,
                last_zxid: last_zxid.0,
                epoch_ends: epoch_ends.iter().map(|z| z.0).collect(),
                counted: *counted,
            }),
            Message::Diff { after } => B::Diff(at(after)),
            Message::Trunc { after } => B::Trunc(at(after)),
            Message::Snapshot { zxid, data } => B::Snapshot(wire::Txn {
                zxid: zxid.0,
                data: data.clone(),
            }),
            Message::Proposal { txn: t } => B::Proposal(txn(t)),
            Message::NewLeader { epoch, zxid } => B::NewLeader(wire::NewLeader {
                epoch: *epoch,
                zxid: zxid.0,
            }),
            Message::AckNewLeader { epoch } => B::AckNewLeader(wire::Epoch { epoch: *epoch }),
            Message::UpToDate { committed } => B::UpToDate(at(committed)),
            Message::Ack { zxid } => B::Ack(at(zxid)),
            Message::Commit { zxid } => B::Commit(at(zxid)),
            Message::Ping => B::Ping(wire::Empty {}),
            Message::Pong => B::Pong(wire::Empty {}),
            Message::Heartbeat { epoch, round } => B::Heartbeat(wire::Round {
                epoch: *epoch,
                round: *round,
            }),
            Message::HeartbeatAck { epoch, round } => B::HeartbeatAck(wire::Round {
                epoch: *epoch,
                round: *round,
            }),
            Message::ReadIndex { id } => B::ReadIndex(wire::Read {
                id: *id,
                zxid: None,
            }),
            Message::ReadIndexReply { id, zxid } => B::ReadIndexReply(wire::Read {
                id: *id,
                zxid: zxid.map(|z| z.0),
            }),
        };
        wire::Envelope { body: Some(body) }.encode_to_vec()
    }

    /// Decodes a message; never panics on bad input.
    pub fn decode(buf: &[u8]) -> Result<Message, ZabError> {
        use wire::Body as B;
        let env = wire::Envelope::decode(buf).map_err(|e| ZabError::Decode(e.to_string()))?;
        let body = env
            .body
            .ok_or_else(|| ZabError::Decode("empty envelope".into()))?;
        Ok(match body {
            B::Vote(v) => Message::Vote {
                vote: Vote {
                    leader: v.leader,
                    zxid: Zxid(v.zxid),
                    epoch: v.epoch,
                },
                round: v.round,
                state: match v.state {
                    0 => PeerState::Looking,
                    1 => PeerState::Following,
                    2 => PeerState::Leading,
                    s => return Err(ZabError::Decode(format!("unknown peer state {s}"))),
                },
            },
            B::FollowerInfo(f) => Message::FollowerInfo {
                accepted_epoch: f.accepted_epoch,
                last_zxid: Zxid(f.last_zxid),
            },
            B::LeaderInfo(e) => Message::LeaderInfo { epoch: e.epoch },
            B::AckEpoch(a) => Message::AckEpoch {
                current_epoch: a.current_epoch,
                last_zxid: Zxid(a.last_zxid),
                epoch_ends: a.epoch_ends.into_iter().map(Zxid).collect(),
                counted: a.counted,
            },
            B::Diff(a) => Message::Diff {
                after: Zxid(a.zxid),
            },
            B::Trunc(a) => Message::Trunc {
                after: Zxid(a.zxid),
            },
            B::Snapshot(t) => Message::Snapshot {
                zxid: Zxid(t.zxid),
                data: t.data,
            },
            B::Proposal(t) => Message::Proposal {
                txn: Txn {
                    zxid: Zxid(t.zxid),
                    data: t.data,
                },
            },
            B::NewLeader(n) => Message::NewLeader {
                epoch: n.epoch,
                zxid: Zxid(n.zxid),
            },
            B::AckNewLeader(e) => Message::AckNewLeader { epoch: e.epoch },
            B::UpToDate(a) => Message::UpToDate {
                committed: Zxid(a.zxid),
            },
            B::Ack(a) => Message::Ack { zxid: Zxid(a.zxid) },
            B::Commit(a) => Message::Commit { zxid: Zxid(a.zxid) },
            B::Ping(_) => Message::Ping,
            B::Pong(_) => Message::Pong,
            B::Heartbeat(r) => Message::Heartbeat {
                epoch: r.epoch,
                round: r.round,
            },
            B::HeartbeatAck(r) => Message::HeartbeatAck {
                epoch: r.epoch,
                round: r.round,
            },
            B::ReadIndex(r) => Message::ReadIndex { id: r.id },
            B::ReadIndexReply(r) => Message::ReadIndexReply {
                id: r.id,
                zxid: r.zxid.map(Zxid),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn samples() -> Vec<Message> {
        let z = Zxid::new(2, 5);
        vec![
            Message::Vote {
                vote: Vote {
                    leader: 3,
                    zxid: z,
                    epoch: 2,
                },
                round: 7,
                state: PeerState::Following,
            },
            Message::Vote {
                vote: Vote {
                    leader: 1,
                    zxid: Zxid::ZERO,
                    epoch: 0,
                },
                round: 1,
                state: PeerState::Looking,
            },
            Message::Vote {
                vote: Vote {
                    leader: 1,
                    zxid: z,
                    epoch: 9,
                },
                round: 1,
                state: PeerState::Leading,
            },
            Message::FollowerInfo {
                accepted_epoch: 4,
                last_zxid: z,
            },
            Message::LeaderInfo { epoch: 5 },
            Message::AckEpoch {
                current_epoch: 4,
                last_zxid: z,
                epoch_ends: vec![Zxid::ZERO, z],
                counted: true,
            },
            Message::AckEpoch {
                current_epoch: 4,
                last_zxid: z,
                epoch_ends: vec![],
                counted: false,
            },
            Message::Diff { after: z },
            Message::Trunc { after: z },
            Message::Snapshot {
                zxid: z,
                data: Bytes::from_static(b"state"),
            },
            Message::Proposal {
                txn: Txn {
                    zxid: z,
                    data: Bytes::from_static(b"x"),
                },
            },
            Message::NewLeader { epoch: 5, zxid: z },
            Message::AckNewLeader { epoch: 5 },
            Message::UpToDate { committed: z },
            Message::Ack { zxid: z },
            Message::Commit { zxid: z },
            Message::Ping,
            Message::Pong,
            Message::Heartbeat { epoch: 3, round: 9 },
            Message::HeartbeatAck { epoch: 3, round: 9 },
            Message::ReadIndex { id: 4 },
            Message::ReadIndexReply {
                id: 4,
                zxid: Some(z),
            },
            Message::ReadIndexReply { id: 5, zxid: None },
            Message::ReadIndexReply {
                id: 6,
                zxid: Some(Zxid::ZERO),
            },
        ]
    }

    #[test]
    fn round_trips() {
        for m in samples() {
            assert_eq!(Message::decode(&m.encode()).unwrap(), m, "{m:?}");
        }
    }

    #[test]
    fn rejects_empty_and_bad_state() {
        assert!(Message::decode(&[]).is_err());
        // Vote with state 7: field 1 (message) containing field 5 = 7.
        let bad = [0x0a, 0x02, 0x28, 0x07];
        assert!(Message::decode(&bad).is_err());
        assert!(Message::decode(&[0xff, 0xff, 0xff]).is_err());
    }

    proptest! {
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Message::decode(&bytes);
        }

        #[test]
        fn proposals_round_trip(zxid in any::<u64>(), data in proptest::collection::vec(any::<u8>(), 0..32)) {
            let m = Message::Proposal { txn: Txn { zxid: Zxid(zxid), data: Bytes::from(data) } };
            prop_assert_eq!(Message::decode(&m.encode()).unwrap(), m);
        }
    }
}
