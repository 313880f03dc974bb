//! The operations the load generator sends, as a trait.
//!
//! The driver is written against [`Session`], so it is tested against an in-memory
//! fake, and each protocol (native now, ZooKeeper's wire later) is one implementation
//! (`native.rs` for the async client).

use bytes::Bytes;
use std::future::Future;

/// Why a request failed. Cleanup and setup need to tell a missing node apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fail {
    #[error("Node does not exist")]
    NoNode,
    #[error("{0}")]
    Other(String),
}

/// One session; clones share it (requests from clones are pipelined on it).
pub trait Session: Clone + Send + Sync + 'static {
    /// Creates a persistent node.
    fn create(&self, path: &str, data: Bytes) -> impl Future<Output = Result<(), Fail>> + Send;
    /// setData with any version.
    fn set(&self, path: &str, data: Bytes) -> impl Future<Output = Result<(), Fail>> + Send;
    /// getData.
    fn get(&self, path: &str) -> impl Future<Output = Result<(), Fail>> + Send;
    /// One multi of two setData (any version).
    fn multi_set(
        &self,
        a: &str,
        b: &str,
        data: Bytes,
    ) -> impl Future<Output = Result<(), Fail>> + Send;
    /// delete with any version.
    fn delete(&self, path: &str) -> impl Future<Output = Result<(), Fail>> + Send;
}

#[cfg(test)]
pub(crate) mod fake {
    //! A map behind a mutex, yielding once per call so workers interleave.
    use super::*;
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    pub struct FakeSession {
        nodes: Arc<Mutex<HashMap<String, Bytes>>>,
        gets: Arc<AtomicU64>,
        sets: Arc<AtomicU64>,
    }

    impl FakeSession {
        pub fn len(&self) -> usize {
            self.nodes.lock().unwrap().len()
        }
        pub fn gets(&self) -> u64 {
            self.gets.load(Ordering::Relaxed)
        }
        pub fn sets(&self) -> u64 {
            self.sets.load(Ordering::Relaxed)
        }
        fn set_one(&self, path: &str, data: Bytes) -> Result<(), Fail> {
            match self.nodes.lock().unwrap().get_mut(path) {
                Some(d) => {
                    *d = data;
                    self.sets.fetch_add(1, Ordering::Relaxed);
                    Ok(())
                }
                None => Err(Fail::NoNode),
            }
        }
    }

    impl Session for FakeSession {
        async fn create(&self, path: &str, data: Bytes) -> Result<(), Fail> {
            tokio::task::yield_now().await;
            let mut nodes = self.nodes.lock().unwrap();
            if nodes.contains_key(path) {
                return Err(Fail::Other("Node already exists".into()));
            }
            nodes.insert(path.to_string(), data);
            Ok(())
        }
        async fn set(&self, path: &str, data: Bytes) -> Result<(), Fail> {
            tokio::task::yield_now().await;
            self.set_one(path, data)
        }
        async fn get(&self, path: &str) -> Result<(), Fail> {
            tokio::task::yield_now().await;
            self.gets.fetch_add(1, Ordering::Relaxed);
            self.nodes
                .lock()
                .unwrap()
                .get(path)
                .map(|_| ())
                .ok_or(Fail::NoNode)
        }
        async fn multi_set(&self, a: &str, b: &str, data: Bytes) -> Result<(), Fail> {
            tokio::task::yield_now().await;
            self.set_one(a, data.clone())?;
            self.set_one(b, data)
        }
        async fn delete(&self, path: &str) -> Result<(), Fail> {
            tokio::task::yield_now().await;
            self.nodes
                .lock()
                .unwrap()
                .remove(path)
                .map(|_| ())
                .ok_or(Fail::NoNode)
        }
    }
}
