//! The workloads, shaped like the ZooKeeper anchor's (`shared/anchors/zookeeper-3.8-loopback.md`)
//! so the numbers compare:
//!
//! * `set`: setData (any version) of the value on the client's own 16 nodes, round-robin;
//! * `get`: getData of those nodes, round-robin;
//! * `mixed`: per request, getData with probability `read_ratio`, else setData, on a
//!   random own node;
//! * `create`: create of new unique persistent nodes holding the value (deleted after
//!   the run, outside the measured window);
//! * `multi` (zabkeeper only, no anchor row): one multi of two setData on two
//!   consecutive own nodes, round-robin.
//!
//! All nodes live under one fresh root per run, `/zkbench-<pid>-<millis>`, so runs
//! never collide and cleanup is a subtree delete.

use clap::ValueEnum;

/// Own nodes per client for set / get / mixed / multi.
pub const NODES_PER_CLIENT: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    Create,
    Set,
    Get,
    Mixed,
    Multi,
}

impl OpKind {
    /// Whether the clients need their own nodes before the run.
    pub fn needs_nodes(self) -> bool {
        !matches!(self, OpKind::Create)
    }
}

/// One request to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Create(String),
    Set(String),
    Get(String),
    Multi(String, String),
}

/// The path of a client's own node.
pub fn own_node(root: &str, client: usize, n: usize) -> String {
    format!("{root}/c{client}-n{n}")
}

/// The path of the `seq`th node a client creates.
pub fn created_node(root: &str, client: usize, seq: u64) -> String {
    format!("{root}/c{client}-k{seq}")
}

/// The `seq`th request of a client. `coin` is a uniform draw in [0, 1) and `pick` a
/// uniform node index, used by `mixed` only (so this stays a pure function).
pub fn request(
    op: OpKind,
    root: &str,
    client: usize,
    seq: u64,
    read_ratio: f64,
    coin: f64,
    pick: usize,
) -> Request {
    let rr = (seq % NODES_PER_CLIENT as u64) as usize;
    match op {
        OpKind::Create => Request::Create(created_node(root, client, seq)),
        OpKind::Set => Request::Set(own_node(root, client, rr)),
        OpKind::Get => Request::Get(own_node(root, client, rr)),
        OpKind::Mixed => {
            let node = own_node(root, client, pick % NODES_PER_CLIENT);
            if coin < read_ratio {
                Request::Get(node)
            } else {
                Request::Set(node)
            }
        }
        OpKind::Multi => Request::Multi(
            own_node(root, client, rr),
            own_node(root, client, (rr + 1) % NODES_PER_CLIENT),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_get_round_robin_over_16_own_nodes() {
        let paths: Vec<Request> = (0..17)
            .map(|s| request(OpKind::Set, "/r", 3, s, 0.9, 0.0, 0))
            .collect();
        assert_eq!(paths[0], Request::Set("/r/c3-n0".into()));
        assert_eq!(paths[15], Request::Set("/r/c3-n15".into()));
        assert_eq!(paths[16], Request::Set("/r/c3-n0".into()));
        assert_eq!(
            request(OpKind::Get, "/r", 0, 5, 0.9, 0.0, 0),
            Request::Get("/r/c0-n5".into())
        );
    }

    #[test]
    fn mixed_follows_the_coin() {
        assert_eq!(
            request(OpKind::Mixed, "/r", 1, 0, 0.9, 0.89, 20),
            Request::Get("/r/c1-n4".into())
        );
        assert_eq!(
            request(OpKind::Mixed, "/r", 1, 0, 0.9, 0.9, 3),
            Request::Set("/r/c1-n3".into())
        );
        // read_ratio 1.0 never writes, 0.0 never reads.
        assert!(matches!(
            request(OpKind::Mixed, "/r", 1, 0, 1.0, 0.999, 0),
            Request::Get(_)
        ));
        assert!(matches!(
            request(OpKind::Mixed, "/r", 1, 0, 0.0, 0.0, 0),
            Request::Set(_)
        ));
    }

    #[test]
    fn creates_are_unique_per_client_and_seq() {
        let a = request(OpKind::Create, "/r", 0, 7, 0.9, 0.0, 0);
        let b = request(OpKind::Create, "/r", 1, 7, 0.9, 0.0, 0);
        let c = request(OpKind::Create, "/r", 0, 8, 0.9, 0.0, 0);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_eq!(a, Request::Create("/r/c0-k7".into()));
    }

    #[test]
    fn multi_touches_two_neighbours() {
        assert_eq!(
            request(OpKind::Multi, "/r", 2, 15, 0.9, 0.0, 0),
            Request::Multi("/r/c2-n15".into(), "/r/c2-n0".into())
        );
    }
}
