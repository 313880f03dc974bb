//! Service discovery: instances register under `<base>/<service>/<id>` as ephemeral
//! nodes holding a JSON [`Instance`]; anyone can list them or keep a live
//! [`ServiceCache`].
//!
//! An instance disappears when its session ends (the node is ephemeral), so a crashed
//! process leaves the list within the session timeout.
//!
//! The cache follows the service's node through one persistent-recursive watch: each
//! event names a child, and the cache re-reads that child (present: insert or update,
//! missing: remove). Re-reading instead of trusting the event makes the cache converge
//! whatever order events and reads interleave in. The watch is set before the first
//! full listing, so no change between the two is missed; after a reconnect the cache
//! lists everything again, in case an event was lost with the connection. When the
//! session ends the cache keeps its last view and stops following.
//!
//! ```no_run
//! # use zabkeeper_client::{Client, Error, recipes::{Instance, ServiceDiscovery}};
//! # async fn demo(zk: Client) -> Result<(), Error> {
//! let discovery = ServiceDiscovery::new(&zk, "/services");
//! let me = Instance::new("api-1", "10.0.0.5", 8080).with("zone", "a");
//! let _registration = discovery.register("api", &me).await?;
//! let cache = discovery.cache("api").await?;
//! if let Some(target) = cache.round_robin() {
//!     println!("calling {}:{}", target.address, target.port);
//! }
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{child, ensure_path};
use crate::{AddWatchMode, Client, CreateMode, Error, EventType, SessionState};

/// One registered instance of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Unique within the service; the node's name (no `/`).
    pub id: String,
    pub address: String,
    pub port: u16,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

impl Instance {
    pub fn new(id: &str, address: &str, port: u16) -> Instance {
        Instance {
            id: id.to_string(),
            address: address.to_string(),
            port,
            metadata: BTreeMap::new(),
        }
    }

    /// Adds a metadata entry.
    pub fn with(mut self, key: &str, value: &str) -> Instance {
        self.metadata.insert(key.to_string(), value.to_string());
        self
    }
}

fn decode(data: &[u8]) -> Option<Instance> {
    serde_json::from_slice(data).ok()
}

/// Handle on the services under `base`.
#[derive(Debug, Clone)]
pub struct ServiceDiscovery {
    zk: Client,
    base: String,
}

impl ServiceDiscovery {
    pub fn new(zk: &Client, base: &str) -> ServiceDiscovery {
        ServiceDiscovery {
            zk: zk.clone(),
            base: base.to_string(),
        }
    }

    fn dir(&self, service: &str) -> Result<String, Error> {
        if service.is_empty() || service.contains('/') {
            return Err(Error::BadArguments);
        }
        Ok(child(&self.base, service))
    }

    /// Registers `instance` under `service` for as long as this session lives (or until
    /// the registration is dropped or `unregister`ed). `NodeExists` if another session
    /// has registered the same id.
    pub async fn register(
        &self,
        service: &str,
        instance: &Instance,
    ) -> Result<Registration, Error> {
        if instance.id.is_empty() || instance.id.contains('/') {
            return Err(Error::BadArguments);
        }
        let dir = self.dir(service)?;
        let path = child(&dir, &instance.id);
        let data = Bytes::from(serde_json::to_vec(instance).map_err(|_| Error::BadArguments)?);
        loop {
            match self
                .zk
                .create(&path, data.clone(), CreateMode::Ephemeral)
                .await
            {
                Ok(_) => break,
                Err(Error::NoNode) => ensure_path(&self.zk, &dir).await?,
                Err(Error::ConnectionLoss | Error::OperationTimeout) => continue,
                Err(Error::NodeExists) => match self.zk.exists(&path).await? {
                    // An earlier attempt whose answer was lost.
                    Some(s) if s.ephemeral_owner == self.zk.session_id() => break,
                    Some(_) => return Err(Error::NodeExists),
                    None => continue,
                },
                Err(e) => return Err(e),
            }
        }
        Ok(Registration {
            zk: self.zk.clone(),
            path,
            done: false,
        })
    }

    /// The instances registered now (read once).
    pub async fn instances(&self, service: &str) -> Result<Vec<Instance>, Error> {
        let dir = self.dir(service)?;
        Ok(read_all(&self.zk, &dir).await?.into_values().collect())
    }

    /// A live view of `service`'s instances.
    pub async fn cache(&self, service: &str) -> Result<ServiceCache, Error> {
        let dir = self.dir(service)?;
        ensure_path(&self.zk, &dir).await?;
        let events = self
            .zk
            .add_watch(&dir, AddWatchMode::PersistentRecursive)
            .await?;
        let (tx, rx) = watch::channel(Arc::new(read_all(&self.zk, &dir).await?));
        let task = tokio::spawn(follow(self.zk.clone(), dir, events, tx));
        Ok(ServiceCache {
            view: rx,
            task,
            next: AtomicUsize::new(0),
        })
    }
}

type View = BTreeMap<String, Instance>;

async fn read_all(zk: &Client, dir: &str) -> Result<View, Error> {
    let names = match super::retry(|| zk.get_children(dir)).await {
        Ok(n) => n,
        Err(Error::NoNode) => return Ok(View::new()),
        Err(e) => return Err(e),
    };
    let mut view = View::new();
    for name in names {
        let path = child(dir, &name);
        match super::retry(|| zk.get_data(&path)).await {
            Ok((data, _)) => {
                if let Some(i) = decode(&data) {
                    view.insert(name, i);
                }
            }
            Err(Error::NoNode) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(view)
}

/// Re-reads one child and updates the view.
async fn refresh(
    zk: &Client,
    dir: &str,
    name: &str,
    tx: &watch::Sender<Arc<View>>,
) -> Result<(), Error> {
    let found = match zk.get_data(&child(dir, name)).await {
        Ok((data, _)) => decode(&data),
        Err(Error::NoNode) => None,
        Err(e) => return Err(e),
    };
    tx.send_if_modified(|view| {
        let now = view.get(name);
        if now == found.as_ref() {
            return false;
        }
        let v = Arc::make_mut(view);
        match &found {
            Some(i) => v.insert(name.to_string(), i.clone()),
            None => v.remove(name),
        };
        true
    });
    Ok(())
}

async fn follow(
    zk: Client,
    dir: String,
    mut events: crate::PersistentWatch,
    tx: watch::Sender<Arc<View>>,
) {
    let states = zk.state_stream();
    tokio::pin!(states);
    let prefix = format!("{dir}/");
    let mut resync = false;
    let mut was_down = false;
    loop {
        if resync {
            match read_all(&zk, &dir).await {
                Ok(view) => {
                    tx.send_if_modified(|v| {
                        let changed = **v != view;
                        *v = Arc::new(view);
                        changed
                    });
                    resync = false;
                }
                Err(Error::SessionExpired | Error::Closed) => return,
                Err(e) => {
                    tracing::debug!(error = %e, dir, "service cache resync failed; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            }
        }
        tokio::select! {
            ev = events.next() => {
                let Some(ev) = ev else { return };
                if ev.event_type == EventType::None {
                    return; // session over
                }
                // Only direct children are instances.
                let Some(name) = ev.path.strip_prefix(&prefix) else { continue };
                if name.contains('/') {
                    continue;
                }
                if let Err(e) = refresh(&zk, &dir, name, &tx).await {
                    tracing::debug!(error = %e, "service cache refresh failed");
                    resync = true;
                }
            }
            st = states.next() => match st {
                None | Some(SessionState::Expired | SessionState::Closed) => return,
                Some(SessionState::Connected) => {
                    if was_down {
                        resync = true;
                    }
                    was_down = false;
                }
                Some(_) => was_down = true,
            },
        }
    }
}

/// A registration; dropping it unregisters (in the background).
#[derive(Debug)]
pub struct Registration {
    zk: Client,
    path: String,
    done: bool,
}

impl Registration {
    pub fn path(&self) -> &str {
        &self.path
    }

    pub async fn unregister(mut self) -> Result<(), Error> {
        self.done = true;
        super::delete_quietly(&self.zk, &self.path).await
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        if !self.done {
            super::spawn_delete(&self.zk, &self.path);
        }
    }
}

/// A local, self-updating view of one service's instances.
#[derive(Debug)]
pub struct ServiceCache {
    view: watch::Receiver<Arc<View>>,
    task: JoinHandle<()>,
    next: AtomicUsize,
}

impl ServiceCache {
    /// The instances as last seen, ordered by id.
    pub fn instances(&self) -> Vec<Instance> {
        self.view.borrow().values().cloned().collect()
    }

    /// The next instance in turn (ids in order, wrapping).
    pub fn round_robin(&self) -> Option<Instance> {
        let view = self.view.borrow();
        if view.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % view.len();
        view.values().nth(i).cloned()
    }

    /// An instance chosen uniformly at random.
    pub fn random(&self) -> Option<Instance> {
        let view = self.view.borrow();
        if view.is_empty() {
            return None;
        }
        let i = rand::random::<usize>() % view.len();
        view.values().nth(i).cloned()
    }

    /// Waits until `pred` holds for the instances, up to `timeout`; whether it does.
    pub async fn wait_until(
        &mut self,
        pred: impl Fn(&[Instance]) -> bool,
        timeout: Duration,
    ) -> bool {
        let wait = self.view.wait_for(|v| {
            let list: Vec<Instance> = v.values().cloned().collect();
            pred(&list)
        });
        matches!(tokio::time::timeout(timeout, wait).await, Ok(Ok(_)))
    }
}

impl Drop for ServiceCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}
