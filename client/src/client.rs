//! The application's handle: typed calls turned into requests for the session task.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::Stream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use zabkeeper_proto::wire::{self, request::Op as W, response::Result as R};
use zabkeeper_proto::ErrorCode;

use crate::change_watch::{ChangeStream, ChangeWatch};
use crate::connection::AttemptError;
use crate::error::Error;
use crate::options::{parse_servers, ConnectOptions};
use crate::session::{attempt_all, backoff, Command, Effect, Session, Shared};
use crate::types::*;
use crate::watches::{OneshotWatch, PersistentWatch, WatchReg};

/// A session with a zabkeeper ensemble. Cheap to clone: clones share the session.
/// The session is closed when `close` is called or the last clone is dropped.
#[derive(Clone)]
pub struct Client {
    shared: Arc<Shared>,
    commands: mpsc::UnboundedSender<Command>,
    consistency: wire::Consistency,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("session_id", &format_args!("{:#x}", self.session_id()))
            .field("state", &self.state())
            .finish()
    }
}

fn validate(path: &str) -> Result<(), Error> {
    zabkeeper_proto::path::validate(path, false)?;
    Ok(())
}

fn missing(what: &str) -> Error {
    Error::Protocol(format!("answer without {what}"))
}

impl Client {
    /// Connects to one of `servers` (`"host:port,host:port"`), creating a session (or
    /// resuming `opts.session`). Keeps trying the members, with back-off, for up to the
    /// session timeout; then fails with the last refusal or `ConnectionLoss`.
    pub async fn connect(servers: &str, opts: ConnectOptions) -> Result<Client, Error> {
        let servers = parse_servers(servers)?;
        let deadline = Instant::now() + opts.session_timeout.max(opts.connect_timeout);
        let shared = Arc::new(Shared::new(servers, opts));
        let mut round = 0;
        let conn = loop {
            match attempt_all(&shared).await {
                Ok(conn) => break conn,
                Err(AttemptError::Refused(
                    code @ (ErrorCode::SessionExpired | ErrorCode::AuthFailed),
                    _,
                )) => {
                    shared.state.send_replace(SessionState::Expired);
                    return Err(code.into());
                }
                Err(e) => {
                    let pause = backoff(round);
                    if Instant::now() + pause >= deadline {
                        tracing::debug!(error = ?e, "giving up connecting");
                        return Err(match e {
                            AttemptError::Refused(code, _) => code.into(),
                            AttemptError::Failed(_) => Error::ConnectionLoss,
                        });
                    }
                    tokio::time::sleep(pause).await;
                    round += 1;
                }
            }
        };
        shared.set_state(SessionState::Connected);
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(Session::new(shared.clone(), rx).run(conn));
        Ok(Client {
            shared,
            commands: tx,
            consistency: wire::Consistency::Session,
        })
    }

    /// A handle on the same session whose reads are linearizable (served under the
    /// leader's lease or after a read-index round) instead of session-consistent.
    pub fn linearizable(&self) -> Client {
        Client {
            consistency: wire::Consistency::Linearizable,
            ..self.clone()
        }
    }

    pub fn session_id(&self) -> i64 {
        self.shared.session().id
    }

    pub fn session_password(&self) -> Vec<u8> {
        self.shared.session().password.to_vec()
    }

    /// The timeout the server granted.
    pub fn session_timeout(&self) -> Duration {
        self.shared.session().timeout
    }

    /// The highest zxid seen from the servers (never decreases).
    pub fn last_zxid(&self) -> i64 {
        self.shared.last_zxid()
    }

    /// The member the session is attached to right now.
    pub fn connected_server(&self) -> Option<String> {
        self.shared.session().server
    }

    /// What the session task shares, for the recipes: a view that, unlike a handle,
    /// does not keep the session open.
    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    pub fn state(&self) -> SessionState {
        *self.shared.state.borrow()
    }

    /// The current state, then each change; ends after `Expired` or `Closed`. States that
    /// change faster than the stream is polled are coalesced to the latest.
    pub fn state_stream(&self) -> impl Stream<Item = SessionState> + Send + 'static {
        let rx = self.shared.state.subscribe();
        futures::stream::unfold((rx, true, false), |(mut rx, first, done)| async move {
            if done {
                return None;
            }
            if !first {
                rx.changed().await.ok()?;
            }
            let s = *rx.borrow_and_update();
            Some((s, (rx, false, s.is_terminal())))
        })
    }

    /// The error for a call the session task can no longer take.
    fn ended(&self) -> Error {
        match self.state() {
            SessionState::Expired => Error::SessionExpired,
            _ => Error::Closed,
        }
    }

    async fn call(&self, op: W, effect: Effect) -> Result<wire::Response, Error> {
        // The server closes a connection that sends a frame over its limit, failing every
        // call in flight with it; refuse such a request here instead. Room is left for
        // the frame's length prefix and the request's xid and tags.
        if op.encoded_len() + 32 > self.shared.opts.max_frame {
            return Err(Error::BadArguments);
        }
        let (reply, rx) = oneshot::channel();
        let consistency = self.consistency as i32;
        self.commands
            .send(Command::Request {
                op,
                consistency,
                effect,
                reply,
            })
            .map_err(|_| self.ended())?;
        match tokio::time::timeout(self.shared.opts.request_timeout, rx).await {
            Err(_) => Err(Error::OperationTimeout),
            Ok(Err(_)) => Err(self.ended()),
            Ok(Ok(r)) => r,
        }
    }

    /// Sends and returns the result part of a successful answer.
    async fn request(&self, op: W, effect: Effect) -> Result<Option<R>, Error> {
        let resp = self.call(op, effect).await?;
        if resp.error != 0 {
            return Err(Error::from_code(resp.error));
        }
        Ok(resp.result)
    }

    /// Creates a node; returns its path (with the sequence suffix for sequential modes).
    pub async fn create(
        &self,
        path: &str,
        data: impl Into<Bytes>,
        mode: CreateMode,
    ) -> Result<String, Error> {
        Ok(self
            .create_with(path, data, CreateOptions::new(mode))
            .await?
            .0)
    }

    /// Creates a node with an ACL and/or TTL; returns its path and Stat.
    pub async fn create_with(
        &self,
        path: &str,
        data: impl Into<Bytes>,
        opts: CreateOptions,
    ) -> Result<(String, Stat), Error> {
        let req = opts.to_wire(path, data.into())?;
        match self.request(W::Create(req), Effect::None).await? {
            Some(R::Create(c)) => Ok((c.path, c.stat.unwrap_or_default().into())),
            _ => Err(missing("created path")),
        }
    }

    /// Deletes a node; `None` matches any version.
    pub async fn delete(&self, path: &str, version: Option<i32>) -> Result<(), Error> {
        validate(path)?;
        let req = wire::DeleteRequest {
            path: path.to_string(),
            version: version.unwrap_or(-1),
        };
        self.request(W::Delete(req), Effect::None).await?;
        Ok(())
    }

    /// The node's Stat, or `None` if it does not exist.
    pub async fn exists(&self, path: &str) -> Result<Option<Stat>, Error> {
        self.exists_inner(path, Effect::None).await
    }

    async fn exists_inner(&self, path: &str, effect: Effect) -> Result<Option<Stat>, Error> {
        validate(path)?;
        let watch = matches!(effect, Effect::Watch { .. });
        let req = wire::PathWatchRequest {
            path: path.to_string(),
            watch,
        };
        match self.request(W::Exists(req), effect).await {
            Ok(Some(R::Stat(s))) => Ok(Some(s.into())),
            Ok(_) => Err(missing("stat")),
            Err(Error::NoNode) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Like `exists`, and leaves a watch: fires on creation if the node is missing, on
    /// change or deletion if it exists.
    pub async fn exists_w(&self, path: &str) -> Result<(Option<Stat>, OneshotWatch), Error> {
        let (watch, tx) = OneshotWatch::new(path);
        let stat = self
            .exists_inner(
                path,
                Effect::Watch {
                    path: path.to_string(),
                    reg: WatchReg::Exists(tx),
                },
            )
            .await?;
        Ok((stat, watch))
    }

    /// `get_data` through the client cache (see `ConnectOptions::cache_capacity`; a
    /// plain `get_data` when it is off). A hit is answered locally and is never older
    /// than the session's last seen zxid; a miss reads from the member and fills the
    /// cache. Session-consistent even on a `linearizable()` handle.
    pub async fn get_data_cached(&self, path: &str) -> Result<(Bytes, Stat), Error> {
        let Some(cache) = &self.shared.cache else {
            return self.get_data(path).await;
        };
        validate(path)?;
        let key = (crate::cache::Kind::Data, path.to_string());
        if let Some(crate::cache::Entry::Data(data, stat)) = cache.get(&key) {
            return Ok((data, stat));
        }
        self.get_data_inner(path, Effect::CacheFill { key }).await
    }

    /// `get_children` through the client cache, as [`Client::get_data_cached`].
    pub async fn get_children_cached(&self, path: &str) -> Result<Vec<String>, Error> {
        let Some(cache) = &self.shared.cache else {
            return self.get_children(path).await;
        };
        validate(path)?;
        let key = (crate::cache::Kind::Children, path.to_string());
        if let Some(crate::cache::Entry::Children(children)) = cache.get(&key) {
            return Ok(children);
        }
        Ok(self
            .children_inner(path, false, Effect::CacheFill { key })
            .await?
            .0)
    }

    /// The client cache's counters (None when the cache is off).
    pub fn cache_stats(&self) -> Option<crate::CacheStats> {
        self.shared.cache.as_ref().map(|c| c.stats())
    }

    pub async fn get_data(&self, path: &str) -> Result<(Bytes, Stat), Error> {
        self.get_data_inner(path, Effect::None).await
    }

    async fn get_data_inner(&self, path: &str, effect: Effect) -> Result<(Bytes, Stat), Error> {
        validate(path)?;
        let watch = matches!(effect, Effect::Watch { .. });
        let req = wire::PathWatchRequest {
            path: path.to_string(),
            watch,
        };
        match self.request(W::GetData(req), effect).await? {
            Some(R::GetData(d)) => Ok((d.data, d.stat.ok_or_else(|| missing("stat"))?.into())),
            _ => Err(missing("data")),
        }
    }

    /// Like `get_data`, and leaves a watch that fires on change or deletion.
    pub async fn get_data_w(&self, path: &str) -> Result<((Bytes, Stat), OneshotWatch), Error> {
        let (watch, tx) = OneshotWatch::new(path);
        let r = self
            .get_data_inner(
                path,
                Effect::Watch {
                    path: path.to_string(),
                    reg: WatchReg::GetData(tx),
                },
            )
            .await?;
        Ok((r, watch))
    }

    /// Sets the data; `None` matches any version. Returns the new Stat.
    pub async fn set_data(
        &self,
        path: &str,
        data: impl Into<Bytes>,
        version: Option<i32>,
    ) -> Result<Stat, Error> {
        validate(path)?;
        let req = wire::SetDataRequest {
            path: path.to_string(),
            data: data.into(),
            version: version.unwrap_or(-1),
        };
        match self.request(W::SetData(req), Effect::None).await? {
            Some(R::Stat(s)) => Ok(s.into()),
            _ => Err(missing("stat")),
        }
    }

    async fn children_inner(
        &self,
        path: &str,
        with_stat: bool,
        effect: Effect,
    ) -> Result<(Vec<String>, Stat), Error> {
        validate(path)?;
        let watch = matches!(effect, Effect::Watch { .. });
        let req = wire::GetChildrenRequest {
            path: path.to_string(),
            watch,
            with_stat,
        };
        match self.request(W::GetChildren(req), effect).await? {
            Some(R::GetChildren(c)) => {
                let stat = match (with_stat, c.stat) {
                    (true, None) => return Err(missing("stat")),
                    (_, stat) => stat.unwrap_or_default().into(),
                };
                Ok((c.children, stat))
            }
            _ => Err(missing("children")),
        }
    }

    /// The names of the node's children (unordered, as ZooKeeper).
    pub async fn get_children(&self, path: &str) -> Result<Vec<String>, Error> {
        Ok(self.children_inner(path, false, Effect::None).await?.0)
    }

    /// The children and the node's Stat (ZooKeeper's getChildren2).
    pub async fn get_children2(&self, path: &str) -> Result<(Vec<String>, Stat), Error> {
        self.children_inner(path, true, Effect::None).await
    }

    /// Like `get_children`, and leaves a watch that fires when a child is added or
    /// removed, or the node is deleted.
    pub async fn get_children_w(&self, path: &str) -> Result<(Vec<String>, OneshotWatch), Error> {
        let (watch, tx) = OneshotWatch::new(path);
        let effect = Effect::Watch {
            path: path.to_string(),
            reg: WatchReg::Children(tx),
        };
        Ok((self.children_inner(path, false, effect).await?.0, watch))
    }

    /// Number of descendants of the node (not counting itself).
    pub async fn get_all_children_number(&self, path: &str) -> Result<i32, Error> {
        validate(path)?;
        match self
            .request(
                W::GetAllChildrenNumber(wire::PathRequest {
                    path: path.to_string(),
                }),
                Effect::None,
            )
            .await?
        {
            Some(R::Count(c)) => Ok(c.count),
            _ => Err(missing("count")),
        }
    }

    /// Paths of this session's ephemeral nodes under `prefix` (`/` for all).
    pub async fn get_ephemerals(&self, prefix: &str) -> Result<Vec<String>, Error> {
        validate(prefix)?;
        match self
            .request(
                W::GetEphemerals(wire::PathRequest {
                    path: prefix.to_string(),
                }),
                Effect::None,
            )
            .await?
        {
            Some(R::Paths(p)) => Ok(p.paths),
            _ => Err(missing("paths")),
        }
    }

    pub async fn get_acl(&self, path: &str) -> Result<(Vec<Acl>, Stat), Error> {
        validate(path)?;
        match self
            .request(
                W::GetAcl(wire::PathRequest {
                    path: path.to_string(),
                }),
                Effect::None,
            )
            .await?
        {
            Some(R::GetAcl(a)) => Ok((
                a.acl.into_iter().map(Acl::from).collect(),
                a.stat.ok_or_else(|| missing("stat"))?.into(),
            )),
            _ => Err(missing("acl")),
        }
    }

    /// Replaces the ACL; `version` is the expected aversion (`None` matches any).
    pub async fn set_acl(
        &self,
        path: &str,
        acl: &[Acl],
        version: Option<i32>,
    ) -> Result<Stat, Error> {
        validate(path)?;
        let req = wire::SetAclRequest {
            path: path.to_string(),
            acl: acl.iter().map(wire::Acl::from).collect(),
            aversion: version.unwrap_or(-1),
        };
        match self.request(W::SetAcl(req), Effect::None).await? {
            Some(R::Stat(s)) => Ok(s.into()),
            _ => Err(missing("stat")),
        }
    }

    /// Waits until the connected member has caught up with the leader's commit point.
    pub async fn sync(&self, path: &str) -> Result<(), Error> {
        validate(path)?;
        self.request(
            W::Sync(wire::PathRequest {
                path: path.to_string(),
            }),
            Effect::None,
        )
        .await?;
        Ok(())
    }

    /// Applies all ops atomically or none. On failure the error is `Error::Multi` with
    /// the failing op's index and code and ZooKeeper's per-op results.
    pub async fn multi(&self, ops: Vec<Op>) -> Result<Vec<OpResult>, Error> {
        let wire_ops = ops.iter().map(Op::to_wire).collect::<Result<Vec<_>, _>>()?;
        let resp = self
            .call(W::Multi(wire::MultiRequest { ops: wire_ops }), Effect::None)
            .await?;
        multi_outcome(resp, &ops)
    }

    /// Several reads answered together; each succeeds or fails on its own.
    pub async fn multi_read(&self, ops: Vec<ReadOp>) -> Result<Vec<ReadResult>, Error> {
        let ops = ops
            .iter()
            .map(ReadOp::to_wire)
            .collect::<Result<Vec<_>, _>>()?;
        match self
            .request(W::MultiRead(wire::MultiRequest { ops }), Effect::None)
            .await?
        {
            Some(R::Multi(m)) => m.results.into_iter().map(ReadResult::from_wire).collect(),
            _ => Err(missing("results")),
        }
    }

    /// Adds a persistent (or persistent-recursive) watch: a stream of events until
    /// removed or the session ends.
    /// A persistent watch that misses nothing: every change to `path` (and, with
    /// `recursive`, below it; a recursive watch never reports NodeChildrenChanged)
    /// after `from_zxid`, in zxid order, each with its zxid, the node's new Stat and,
    /// with `with_data`, its data. Changes between `from_zxid` and now come first,
    /// from the member's history; after a reconnect or failover the watch resumes
    /// from the last change delivered, so each change is seen exactly once. Use the
    /// zxid of a read (`Stat::mzxid`, `pzxid`, or [`Client::last_zxid`]) as
    /// `from_zxid` to see everything after it.
    ///
    /// Fails with [`Error::WatchHistoryGone`] (or the stream later yields it) when the
    /// member's history (`watch_history`) no longer reaches back: re-read, then open
    /// a new watch from a fresh zxid.
    pub async fn watch_from(
        &self,
        path: &str,
        from_zxid: i64,
        recursive: bool,
        with_data: bool,
    ) -> Result<ChangeStream, Error> {
        validate(path)?;
        let id = self
            .shared
            .next_watch_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (watch, stream) = ChangeWatch::new(path, from_zxid, recursive, with_data);
        let req = wire::AddWatchFromRequest {
            path: path.to_string(),
            recursive,
            from_zxid,
            with_data,
            watch_id: id,
        };
        self.request(
            W::AddWatchFrom(req),
            Effect::ChangeWatch {
                id,
                watch: Some(Box::new(watch)),
            },
        )
        .await?;
        Ok(stream)
    }

    pub async fn add_watch(
        &self,
        path: &str,
        mode: AddWatchMode,
    ) -> Result<PersistentWatch, Error> {
        validate(path)?;
        let (watch, tx) = PersistentWatch::new(path);
        let reg = match mode {
            AddWatchMode::Persistent => WatchReg::Persistent(tx),
            AddWatchMode::PersistentRecursive => WatchReg::Recursive(tx),
        };
        let req = wire::AddWatchRequest {
            path: path.to_string(),
            mode: mode as i32,
        };
        self.request(
            W::AddWatch(req),
            Effect::Watch {
                path: path.to_string(),
                reg,
            },
        )
        .await?;
        Ok(watch)
    }

    /// Removes this session's watches of a type on `path`, on the server and here; the
    /// removed watches get a `*WatchRemoved` event. `NoWatcher` if the server had none.
    pub async fn remove_watches(&self, path: &str, kind: WatcherType) -> Result<(), Error> {
        validate(path)?;
        if kind == WatcherType::Unspecified {
            return Err(Error::BadArguments);
        }
        let req = wire::RemoveWatchesRequest {
            path: path.to_string(),
            r#type: kind as i32,
        };
        self.request(
            W::RemoveWatches(req),
            Effect::RemoveWatches {
                path: path.to_string(),
                kind,
            },
        )
        .await?;
        Ok(())
    }

    /// Adds credentials to the session (ZooKeeper's addAuthInfo), re-sent on reconnect.
    pub async fn add_auth(&self, scheme: &str, auth: impl Into<Bytes>) -> Result<(), Error> {
        let auth = auth.into();
        let req = wire::AuthRequest {
            scheme: scheme.to_string(),
            auth: auth.clone(),
        };
        self.request(
            W::Auth(req),
            Effect::Auth {
                scheme: scheme.to_string(),
                auth,
            },
        )
        .await?;
        Ok(())
    }

    /// The identities the server associates with this session: (scheme, user) pairs.
    pub async fn who_am_i(&self) -> Result<Vec<(String, String)>, Error> {
        match self
            .request(W::WhoAmI(wire::Empty {}), Effect::None)
            .await?
        {
            Some(R::WhoAmI(w)) => Ok(w
                .clients
                .into_iter()
                .map(|c| (c.auth_scheme, c.user))
                .collect()),
            _ => Err(missing("identities")),
        }
    }

    /// Closes the session: its ephemeral nodes go, its watches end with a `Closed`
    /// event, and every later call fails with `Closed`. Idempotent.
    pub async fn close(&self) -> Result<(), Error> {
        let (reply, rx) = oneshot::channel();
        if self.commands.send(Command::Close { reply }).is_err() {
            return Ok(());
        }
        match tokio::time::timeout(self.shared.opts.request_timeout, rx).await {
            Ok(_) => Ok(()),
            Err(_) => Err(Error::OperationTimeout),
        }
    }
}

/// Reads a multi's answer: all applied, or the failing op and ZooKeeper's per-op codes.
fn multi_outcome(resp: wire::Response, ops: &[Op]) -> Result<Vec<OpResult>, Error> {
    let results = match resp.result {
        Some(R::Multi(m)) if m.results.len() == ops.len() => {
            let results = m.results.into_iter().zip(ops);
            results
                .map(|(r, op)| OpResult::from_wire(r, op))
                .collect::<Result<Vec<_>, _>>()?
        }
        Some(R::Multi(m)) => {
            return Err(Error::Protocol(format!(
                "{} results for {} ops",
                m.results.len(),
                ops.len()
            )))
        }
        None if resp.error != 0 => return Err(Error::from_code(resp.error)),
        _ => return Err(missing("results")),
    };
    let is_failure = |r: &OpResult| matches!(r, OpResult::Error(c) if *c != 0);
    if resp.error == 0 && !results.iter().any(is_failure) {
        return Ok(results);
    }
    // The failing op is the first with a code other than Ok / RuntimeInconsistency
    // (ZooKeeper marks the ops after it with RuntimeInconsistency).
    let rt = ErrorCode::RuntimeInconsistency.code();
    let index = results
        .iter()
        .position(|r| matches!(r, OpResult::Error(c) if *c != 0 && *c != rt))
        .or_else(|| results.iter().position(is_failure));
    let code = match index.map(|i| &results[i]) {
        Some(OpResult::Error(c)) => *c,
        _ => resp.error,
    };
    let code = ErrorCode::from_code(code).unwrap_or(ErrorCode::SystemError);
    Err(Error::Multi {
        index: index.unwrap_or(0),
        code,
        results,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wire::op_result::Result as OR;

    /// Compile-time check: handles and every call's future can move across threads
    /// (`tokio::spawn`).
    #[allow(dead_code)]
    fn everything_is_send(c: &Client) {
        fn send<T: Send + Sync>(_: &T) {}
        fn fut<T: Send>(_: T) {}
        send(c);
        fut(c.create("/a", "", CreateMode::Persistent));
        fut(c.create_with("/a", "", CreateOptions::default()));
        fut(c.delete("/a", None));
        fut(c.exists("/a"));
        fut(c.exists_w("/a"));
        fut(c.get_data("/a"));
        fut(c.get_data_w("/a"));
        fut(c.set_data("/a", "", None));
        fut(c.get_children("/a"));
        fut(c.get_children2("/a"));
        fut(c.get_children_w("/a"));
        fut(c.get_all_children_number("/a"));
        fut(c.get_ephemerals("/"));
        fut(c.get_acl("/a"));
        fut(c.set_acl("/a", &[], None));
        fut(c.sync("/"));
        fut(c.multi(vec![]));
        fut(c.multi_read(vec![]));
        fut(c.add_watch("/", AddWatchMode::Persistent));
        fut(c.remove_watches("/", WatcherType::Any));
        fut(c.add_auth("digest", ""));
        fut(c.who_am_i());
        fut(c.close());
        fut(c.state_stream());
    }

    fn resp(error: i32, results: Vec<wire::OpResult>) -> wire::Response {
        wire::Response {
            xid: 1,
            zxid: 1,
            error,
            result: Some(R::Multi(wire::MultiResponse { results })),
        }
    }

    fn code(error: i32) -> wire::OpResult {
        wire::OpResult {
            error,
            result: None,
        }
    }

    fn ops(n: usize) -> Vec<Op> {
        (0..n).map(|_| Op::check("/a", 0)).collect()
    }

    #[test]
    fn multi_success() {
        let ok = wire::OpResult {
            error: 0,
            result: Some(OR::Check(wire::Empty {})),
        };
        let del = wire::OpResult {
            error: 0,
            result: Some(OR::Delete(wire::Empty {})),
        };
        let sent = vec![Op::check("/a", 0), Op::delete("/a", None)];
        let r = multi_outcome(resp(0, vec![ok.clone(), del]), &sent);
        assert_eq!(r, Ok(vec![OpResult::Check, OpResult::Delete]));
        let r = multi_outcome(resp(0, vec![ok]), &sent);
        assert!(
            matches!(r, Err(Error::Protocol(_))),
            "one result for two ops"
        );
    }

    #[test]
    fn multi_failure_names_the_failing_op() {
        let r = multi_outcome(resp(-103, vec![code(0), code(-103), code(-2)]), &ops(3));
        assert_eq!(
            r,
            Err(Error::Multi {
                index: 1,
                code: ErrorCode::BadVersion,
                results: vec![
                    OpResult::Error(0),
                    OpResult::Error(-103),
                    OpResult::Error(-2)
                ],
            })
        );
        // The same when the server leaves the top-level code at 0.
        let r = multi_outcome(resp(0, vec![code(-101), code(-2)]), &ops(2));
        assert!(matches!(
            r,
            Err(Error::Multi {
                index: 0,
                code: ErrorCode::NoNode,
                ..
            })
        ));
    }

    #[test]
    fn multi_error_without_results_is_plain() {
        let r = wire::Response {
            xid: 1,
            zxid: 1,
            error: -102,
            result: None,
        };
        assert_eq!(multi_outcome(r, &ops(1)), Err(Error::NoAuth));
        let r = wire::Response {
            xid: 1,
            zxid: 1,
            error: 0,
            result: None,
        };
        assert!(matches!(multi_outcome(r, &ops(1)), Err(Error::Protocol(_))));
    }
}
