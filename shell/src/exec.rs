//! Running one parsed command against a session, producing text and JSON.
//!
//! Every command yields an [`Output`]: the text zkCli would print, and the same result as
//! JSON fields (for `--json`). Printing is the caller's job, so a REPL can reuse this.
//!
//! Choices where zkCli has none or differs:
//! * `create` prints only the created path (handy as `$(zabkeeper-shell -c 'create -s ...')`).
//! * `ls` prints children sorted, one per line; `ls -R` prints the node and every
//!   descendant as full paths, breadth first (zkCli's `ZKUtil.listSubTreeBFS`).
//! * `exists` prints `true` or `false` and succeeds either way.
//! * `deleteall` lists the subtree breadth first and deletes it deepest first; a
//!   descendant that vanished meanwhile is not an error, and `/` itself is never deleted.

use crate::acl::{entry_text, perm_string, AclEntry};
use crate::backend::Backend;
use crate::command::{help_text, Command, Mode};
use crate::data::to_hex;
use crate::error::{OpError, ShellError};
use crate::format::{escape_data, stat_json, stat_text};
use crate::quota;
use serde_json::{json, Map, Value};
use zabkeeper_proto::{path, ErrorCode};

/// A command's result: what to print, and the same as JSON fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Output {
    pub text: String,
    pub json: Map<String, Value>,
}

impl Output {
    fn new(text: String, json: Value) -> Output {
        let json = match json {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        Output { text, json }
    }
}

/// Runs a command that needs no server (`help`); `None` for the others.
pub fn execute_local(cmd: &Command) -> Option<Result<Output, ShellError>> {
    match cmd {
        Command::Help { command } => Some(
            help_text(command.as_deref()).map(|t| Output::new(t.clone(), json!({ "help": t }))),
        ),
        _ => None,
    }
}

/// Maps a backend error to a shell error about `path`.
fn on(path: &str) -> impl Fn(OpError) -> ShellError + '_ {
    move |e| ShellError::op(path, e)
}

/// Runs one command.
pub async fn execute<B: Backend>(b: &B, cmd: &Command) -> Result<Output, ShellError> {
    if let Some(local) = execute_local(cmd) {
        return local;
    }
    Ok(match cmd {
        Command::Create {
            path,
            data,
            mode,
            ttl_ms,
        } => {
            let bytes = data.load()?;
            let created = b
                .create(path, bytes, *mode, *ttl_ms)
                .await
                .map_err(on(path))?;
            Output::new(format!("{created}\n"), json!({ "path": created }))
        }
        Command::Get { path, stat } => {
            let (data, s) = b.get_data(path).await.map_err(on(path))?;
            let mut text = format!("{}\n", escape_data(&data));
            let mut j = json!({
                "path": path,
                "data": std::str::from_utf8(&data).ok(),
                "data_hex": to_hex(&data),
            });
            if *stat {
                text.push_str(&stat_text(&s));
                j["stat"] = stat_json(&s);
            }
            Output::new(text, j)
        }
        Command::Set {
            path,
            data,
            version,
        } => {
            let bytes = data.load()?;
            let s = b.set_data(path, bytes, *version).await.map_err(on(path))?;
            Output::new(
                String::new(),
                json!({ "path": path, "stat": stat_json(&s) }),
            )
        }
        Command::Stat { path } => match b.exists(path).await.map_err(on(path))? {
            Some(s) => Output::new(
                stat_text(&s),
                json!({ "path": path, "stat": stat_json(&s) }),
            ),
            None => return Err(ShellError::op(path, OpError::new(ErrorCode::NoNode))),
        },
        Command::Exists { path } => {
            let s = b.exists(path).await.map_err(on(path))?;
            let mut j = json!({ "path": path, "exists": s.is_some() });
            if let Some(s) = &s {
                j["stat"] = stat_json(s);
            }
            Output::new(format!("{}\n", s.is_some()), j)
        }
        Command::Ls {
            path,
            stat,
            recursive,
        } => {
            if *recursive {
                let all = subtree_bfs(b, path).await?;
                let text: String = all.iter().map(|p| format!("{p}\n")).collect();
                Output::new(text, json!({ "path": path, "paths": all }))
            } else {
                let mut children = b.get_children(path).await.map_err(on(path))?;
                children.sort();
                let mut text: String = children.iter().map(|c| format!("{c}\n")).collect();
                let mut j = json!({ "path": path, "children": children });
                if *stat {
                    let s = b
                        .exists(path)
                        .await
                        .map_err(on(path))?
                        .ok_or_else(|| ShellError::op(path, OpError::new(ErrorCode::NoNode)))?;
                    text.push_str(&stat_text(&s));
                    j["stat"] = stat_json(&s);
                }
                Output::new(text, j)
            }
        }
        Command::Tree { path } => {
            let (text, paths) = draw_tree(b, path).await?;
            Output::new(text, json!({ "path": path, "paths": paths }))
        }
        Command::Delete { path, version } => {
            b.delete(path, *version).await.map_err(on(path))?;
            Output::new(String::new(), json!({ "path": path }))
        }
        Command::DeleteAll { path } => {
            let all = subtree_bfs(b, path).await?;
            let mut deleted = 0u64;
            for p in all.iter().rev() {
                if p == "/" {
                    continue;
                }
                match b.delete(p, None).await {
                    Ok(()) => deleted += 1,
                    Err(e) if e.code == ErrorCode::NoNode && p != path => {}
                    Err(e) => return Err(ShellError::op(p, e)),
                }
            }
            Output::new(String::new(), json!({ "path": path, "deleted": deleted }))
        }
        Command::Sync { path } => {
            b.sync(path).await.map_err(on(path))?;
            Output::new("Sync is OK\n".into(), json!({ "path": path }))
        }
        Command::GetEphemerals { prefix } => {
            let mut paths = b.get_ephemerals(prefix).await.map_err(on(prefix))?;
            paths.sort();
            let text: String = paths.iter().map(|p| format!("{p}\n")).collect();
            Output::new(text, json!({ "prefix": prefix, "paths": paths }))
        }
        Command::GetAcl { path, stat } => {
            let (list, s) = b.get_acl(path).await.map_err(on(path))?;
            let mut text: String = list.iter().map(entry_text).collect();
            let mut j = json!({ "path": path, "acl": acl_json(&list) });
            if *stat {
                text.push_str(&stat_text(&s));
                j["stat"] = stat_json(&s);
            }
            Output::new(text, j)
        }
        Command::SetAcl {
            path,
            acl,
            version,
            stat,
            recursive,
        } => {
            if *recursive {
                // zkCli's -R: the node, then every descendant, each at any version
                // unless -v was given (which then applies to every node, as in zkCli).
                let all = subtree_bfs(b, path).await?;
                for p in &all {
                    match b.set_acl(p, acl, *version).await {
                        Ok(_) => {}
                        Err(e) if e.code == ErrorCode::NoNode && p != path => {}
                        Err(e) => return Err(ShellError::op(p, e)),
                    }
                }
                Output::new(
                    String::new(),
                    json!({ "path": path, "acl": acl_json(acl), "paths": all }),
                )
            } else {
                let s = b.set_acl(path, acl, *version).await.map_err(on(path))?;
                let text = if *stat { stat_text(&s) } else { String::new() };
                Output::new(
                    text,
                    json!({ "path": path, "acl": acl_json(acl), "stat": stat_json(&s) }),
                )
            }
        }
        Command::AddAuth { scheme, auth } => {
            b.add_auth(scheme, auth.as_bytes()).await.map_err(on(""))?;
            Output::new(String::new(), json!({ "scheme": scheme }))
        }
        Command::SetQuota { path, limits } => set_quota(b, path, limits).await?,
        Command::ListQuota { path } => {
            let dir = quota::quota_dir(path);
            let limits_path = format!("{dir}/{}", quota::LIMITS);
            let (limits, _) = b.get_data(&limits_path).await.map_err(|e| {
                if e.code == ErrorCode::NoNode {
                    ShellError::Usage(format!("quota for {path} does not exist."))
                } else {
                    ShellError::op(&limits_path, e)
                }
            })?;
            let limits = quota::StatsTrack::parse(&limits);
            let stats_path = format!("{dir}/{}", quota::STATS);
            let stats = match b.get_data(&stats_path).await {
                Ok((d, _)) => Some(quota::StatsTrack::parse(&d)),
                Err(e) if e.code == ErrorCode::NoNode => None,
                Err(e) => return Err(ShellError::op(&stats_path, e)),
            };
            let mut text = format!(
                "absolute path is {limits_path}\nOutput quota for {path} {}\n",
                limits.text()
            );
            let mut j = json!({
                "path": path,
                "limits": {
                    "count": limits.get(quota::COUNT),
                    "bytes": limits.get(quota::BYTES),
                    "count_hard": limits.get(quota::COUNT_HARD),
                    "bytes_hard": limits.get(quota::BYTES_HARD),
                },
            });
            if let Some(st) = stats {
                text.push_str(&format!("Output stat for {path} {}\n", st.text()));
                j["usage"] =
                    json!({ "count": st.get(quota::COUNT), "bytes": st.get(quota::BYTES) });
            }
            Output::new(text, j)
        }
        Command::DelQuota { path, keys } => del_quota(b, path, keys).await?,
        Command::WhoAmI => {
            let ids = b.who_am_i().await.map_err(on(""))?;
            let text: String = ids.iter().map(|(s, u)| format!("{s}: {u}\n")).collect();
            let list: Vec<Value> = ids
                .iter()
                .map(|(s, u)| json!({ "scheme": s, "user": u }))
                .collect();
            Output::new(text, json!({ "identities": list }))
        }
        Command::Session => {
            let s = b.session();
            let text = format!(
                "sessionId = 0x{:x}\nsessionTimeout = {}\nserver = {}\nlastZxidSeen = 0x{:x}\n",
                s.session_id,
                s.timeout_ms,
                s.server.as_deref().unwrap_or("(none)"),
                s.last_zxid
            );
            Output::new(
                text,
                json!({ "session_id": format!("0x{:x}", s.session_id), "timeout_ms": s.timeout_ms, "server": s.server, "last_zxid": s.last_zxid }),
            )
        }
        Command::Help { .. } => unreachable!("handled by execute_local"),
    })
}

/// zkCli's `setquota`: the node must exist and neither an ancestor nor a descendant may
/// have a quota already; then the `/zookeeper/quota/<path>` nodes, the limits (merged
/// into existing ones) and, for a new quota, the stats node the server fills in.
async fn set_quota<B: Backend>(
    b: &B,
    path: &str,
    limits: &[(&'static str, i64)],
) -> Result<Output, ShellError> {
    if path == quota::QUOTA_ROOT || path.starts_with(&format!("{}/", quota::QUOTA_ROOT)) {
        return Err(ShellError::Usage(format!(
            "cannot set a quota under the path of {}",
            quota::QUOTA_ROOT
        )));
    }
    if path == "/" {
        return Err(ShellError::Usage("cannot set a quota on /".into()));
    }
    if b.exists(path).await.map_err(on(path))?.is_none() {
        return Err(ShellError::op(path, OpError::new(ErrorCode::NoNode)));
    }
    let limits_of = |p: &str| format!("{}/{}", quota::quota_dir(p), quota::LIMITS);
    let mut ancestor = path::parent(path);
    while ancestor != "/" {
        if b.exists(&limits_of(ancestor))
            .await
            .map_err(on(ancestor))?
            .is_some()
        {
            return Err(ShellError::Usage(format!(
                "{path} has a parent {ancestor} which has a quota"
            )));
        }
        ancestor = path::parent(ancestor);
    }
    let dir = quota::quota_dir(path);
    if b.exists(&dir).await.map_err(on(&dir))?.is_some() {
        for p in subtree_bfs(b, &dir).await? {
            if path::name(&p) == quota::LIMITS && path::parent(&p) != dir {
                let child = &path::parent(&p)[quota::QUOTA_ROOT.len()..];
                return Err(ShellError::Usage(format!(
                    "{path} has a child {child} which has a quota"
                )));
            }
        }
    }
    // The quota directory, one level at a time (some may exist already).
    let mut at = quota::QUOTA_ROOT.to_string();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        at = format!("{at}/{part}");
        match b.create(&at, Vec::new(), Mode::Persistent, None).await {
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::NodeExists => {}
            Err(e) => return Err(ShellError::op(&at, e)),
        }
    }
    let limits_path = limits_of(path);
    let (mut track, existed) = match b.get_data(&limits_path).await {
        Ok((d, _)) => (quota::StatsTrack::parse(&d), true),
        Err(e) if e.code == ErrorCode::NoNode => {
            let mut t = quota::StatsTrack::default();
            t.set(quota::COUNT, -1);
            t.set(quota::BYTES, -1);
            (t, false)
        }
        Err(e) => return Err(ShellError::op(&limits_path, e)),
    };
    for (key, v) in limits {
        track.set(key, *v);
    }
    let data = track.text().into_bytes();
    if existed {
        b.set_data(&limits_path, data, None)
            .await
            .map_err(on(&limits_path))?;
    } else {
        b.create(&limits_path, data, Mode::Persistent, None)
            .await
            .map_err(on(&limits_path))?;
        let stats_path = format!("{dir}/{}", quota::STATS);
        match b
            .create(
                &stats_path,
                b"count=0,bytes=0".to_vec(),
                Mode::Persistent,
                None,
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.code == ErrorCode::NodeExists => {}
            Err(e) => return Err(ShellError::op(&stats_path, e)),
        }
    }
    Ok(Output::new(
        String::new(),
        json!({ "path": path, "limits": track.text() }),
    ))
}

/// zkCli's `delquota`: without flags the limits and stats nodes go, and the quota
/// directories left empty above them; with flags those limits are reset to -1.
async fn del_quota<B: Backend>(
    b: &B,
    path: &str,
    keys: &[&'static str],
) -> Result<Output, ShellError> {
    let dir = quota::quota_dir(path);
    let limits_path = format!("{dir}/{}", quota::LIMITS);
    let (data, _) = b.get_data(&limits_path).await.map_err(|e| {
        if e.code == ErrorCode::NoNode {
            ShellError::Usage(format!("quota for {path} does not exist."))
        } else {
            ShellError::op(&limits_path, e)
        }
    })?;
    if !keys.is_empty() {
        let mut track = quota::StatsTrack::parse(&data);
        for key in keys {
            track.set(key, -1);
        }
        b.set_data(&limits_path, track.text().into_bytes(), None)
            .await
            .map_err(on(&limits_path))?;
        return Ok(Output::new(
            String::new(),
            json!({ "path": path, "limits": track.text() }),
        ));
    }
    for node in [quota::LIMITS, quota::STATS] {
        let p = format!("{dir}/{node}");
        match b.delete(&p, None).await {
            Ok(()) => {}
            Err(e) if e.code == ErrorCode::NoNode => {}
            Err(e) => return Err(ShellError::op(&p, e)),
        }
    }
    // Trim the quota directories that are now empty (zkCli's trimProcQuotas).
    let mut at = dir;
    while at != quota::QUOTA_ROOT {
        match b.get_children(&at).await {
            Ok(c) if c.is_empty() => {
                if b.delete(&at, None).await.is_err() {
                    break;
                }
            }
            _ => break,
        }
        at = path::parent(&at).to_string();
    }
    Ok(Output::new(
        String::new(),
        json!({ "path": path, "removed": true }),
    ))
}

fn acl_json(list: &[AclEntry]) -> Vec<Value> {
    list.iter()
        .map(|a| json!({ "scheme": a.scheme, "id": a.id, "perms": perm_string(a.perms) }))
        .collect()
}

/// The node and all its descendants, breadth first, children sorted.
async fn subtree_bfs<B: Backend>(b: &B, root: &str) -> Result<Vec<String>, ShellError> {
    let mut out = vec![root.to_string()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        match b.get_children(&p).await {
            Ok(mut children) => {
                children.sort();
                out.extend(children.iter().map(|c| path::join(&p, c)));
            }
            // A descendant deleted meanwhile simply has no subtree.
            Err(e) if e.code == ErrorCode::NoNode && i > 0 => {}
            Err(e) => return Err(ShellError::op(&p, e)),
        }
        i += 1;
    }
    Ok(out)
}

/// Draws the subtree at `root` with box characters, children sorted, depth first; also
/// returns every path drawn. A node deleted while the tree is walked is drawn without
/// children (only the root's absence is an error).
async fn draw_tree<B: Backend>(b: &B, root: &str) -> Result<(String, Vec<String>), ShellError> {
    let mut children = b.get_children(root).await.map_err(on(root))?;
    children.sort();
    let mut text = format!("{root}\n");
    let mut paths = vec![root.to_string()];
    draw_level(b, frames(root, "", &children), &mut text, &mut paths).await?;
    Ok((text, paths))
}

/// (full path, line prefix, indent for its children, name)
type Frame = (String, String, String, String);

fn frames(parent: &str, indent: &str, children: &[String]) -> Vec<Frame> {
    let n = children.len();
    children
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let last = i + 1 == n;
            (
                path::join(parent, c),
                format!("{indent}{}", if last { "└── " } else { "├── " }),
                format!("{indent}{}", if last { "    " } else { "│   " }),
                c.clone(),
            )
        })
        .collect()
}

/// Draws a level's children (line, then subtree) depth first, with an explicit stack
/// (async recursion would need boxing).
async fn draw_level<B: Backend>(
    b: &B,
    first: Vec<Frame>,
    text: &mut String,
    paths: &mut Vec<String>,
) -> Result<(), ShellError> {
    let mut stack: Vec<std::vec::IntoIter<Frame>> = vec![first.into_iter()];
    while let Some(level) = stack.last_mut() {
        let Some((full, line, indent, name)) = level.next() else {
            stack.pop();
            continue;
        };
        text.push_str(&format!("{line}{name}\n"));
        paths.push(full.clone());
        let mut children = match b.get_children(&full).await {
            Ok(c) => c,
            Err(e) if e.code == ErrorCode::NoNode => continue,
            Err(e) => return Err(ShellError::op(&full, e)),
        };
        children.sort();
        stack.push(frames(&full, &indent, &children).into_iter());
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod fake {
    //! An in-memory tree with ZooKeeper's rules, enough to test the commands.
    use super::*;
    use crate::backend::SessionInfo;
    use crate::command::Mode;
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use zabkeeper_proto::wire::Stat;

    #[derive(Default)]
    pub struct FakeTree {
        nodes: RefCell<BTreeMap<String, (Vec<u8>, Stat)>>,
        /// ACLs set by set_acl (others are world:anyone:cdrwa); not enforced.
        acls: RefCell<BTreeMap<String, Vec<AclEntry>>>,
        auths: RefCell<Vec<(String, Vec<u8>)>>,
        zxid: RefCell<i64>,
    }

    pub const SESSION: i64 = 0x1234;

    impl FakeTree {
        pub fn new() -> FakeTree {
            let t = FakeTree::default();
            t.nodes
                .borrow_mut()
                .insert("/".into(), (Vec::new(), Stat::default()));
            t
        }

        fn children_of(&self, p: &str) -> Vec<String> {
            self.nodes
                .borrow()
                .keys()
                .filter(|k| k.as_str() != "/" && path::parent(k) == p)
                .map(|k| path::name(k).to_string())
                .collect()
        }
    }

    fn err(code: ErrorCode) -> OpError {
        OpError::new(code)
    }

    impl Backend for FakeTree {
        async fn create(
            &self,
            p: &str,
            data: Vec<u8>,
            mode: Mode,
            _ttl: Option<i64>,
        ) -> Result<String, OpError> {
            let parent = path::parent(p).to_string();
            let mut nodes = self.nodes.borrow_mut();
            let (_, pstat) = nodes.get_mut(&parent).ok_or(err(ErrorCode::NoNode))?;
            if pstat.ephemeral_owner != 0 {
                return Err(err(ErrorCode::NoChildrenForEphemerals));
            }
            let full = if mode.is_sequential() {
                format!("{p}{:010}", pstat.cversion)
            } else {
                p.to_string()
            };
            if nodes.contains_key(&full) {
                return Err(err(ErrorCode::NodeExists));
            }
            *self.zxid.borrow_mut() += 1;
            let z = *self.zxid.borrow();
            let pstat = &mut nodes.get_mut(&parent).unwrap().1;
            pstat.cversion += 1;
            pstat.num_children += 1;
            pstat.pzxid = z;
            let owner = if matches!(mode, Mode::Ephemeral | Mode::EphemeralSequential) {
                SESSION
            } else {
                0
            };
            let stat = Stat {
                czxid: z,
                mzxid: z,
                pzxid: z,
                ephemeral_owner: owner,
                data_length: data.len() as i32,
                ..Stat::default()
            };
            nodes.insert(full.clone(), (data, stat));
            Ok(full)
        }
        async fn get_data(&self, p: &str) -> Result<(Vec<u8>, Stat), OpError> {
            self.nodes
                .borrow()
                .get(p)
                .cloned()
                .ok_or(err(ErrorCode::NoNode))
        }
        async fn set_data(
            &self,
            p: &str,
            data: Vec<u8>,
            version: Option<i32>,
        ) -> Result<Stat, OpError> {
            *self.zxid.borrow_mut() += 1;
            let z = *self.zxid.borrow();
            let mut nodes = self.nodes.borrow_mut();
            let (d, s) = nodes.get_mut(p).ok_or(err(ErrorCode::NoNode))?;
            if version.is_some_and(|v| v != -1 && v != s.version) {
                return Err(err(ErrorCode::BadVersion));
            }
            s.version += 1;
            s.mzxid = z;
            s.data_length = data.len() as i32;
            *d = data;
            Ok(*s)
        }
        async fn exists(&self, p: &str) -> Result<Option<Stat>, OpError> {
            Ok(self.nodes.borrow().get(p).map(|n| n.1))
        }
        async fn get_children(&self, p: &str) -> Result<Vec<String>, OpError> {
            if !self.nodes.borrow().contains_key(p) {
                return Err(err(ErrorCode::NoNode));
            }
            let mut c = self.children_of(p);
            c.reverse(); // unsorted on purpose: the shell sorts
            Ok(c)
        }
        async fn delete(&self, p: &str, version: Option<i32>) -> Result<(), OpError> {
            let v = self
                .nodes
                .borrow()
                .get(p)
                .map(|n| n.1.version)
                .ok_or(err(ErrorCode::NoNode))?;
            if version.is_some_and(|x| x != -1 && x != v) {
                return Err(err(ErrorCode::BadVersion));
            }
            if !self.children_of(p).is_empty() {
                return Err(err(ErrorCode::NotEmpty));
            }
            let mut nodes = self.nodes.borrow_mut();
            nodes.remove(p);
            nodes.get_mut(path::parent(p)).unwrap().1.num_children -= 1;
            Ok(())
        }
        async fn sync(&self, _p: &str) -> Result<(), OpError> {
            Ok(())
        }
        async fn get_ephemerals(&self, prefix: &str) -> Result<Vec<String>, OpError> {
            Ok(self
                .nodes
                .borrow()
                .iter()
                .filter(|(k, n)| n.1.ephemeral_owner == SESSION && k.starts_with(prefix))
                .map(|(k, _)| k.clone())
                .collect())
        }
        async fn who_am_i(&self) -> Result<Vec<(String, String)>, OpError> {
            let mut ids = vec![("ip".to_string(), "127.0.0.1".to_string())];
            for (scheme, auth) in self.auths.borrow().iter() {
                let text = String::from_utf8_lossy(auth);
                ids.push((scheme.clone(), text.split(':').next().unwrap_or("").into()));
            }
            Ok(ids)
        }
        async fn get_acl(&self, p: &str) -> Result<(Vec<AclEntry>, Stat), OpError> {
            let s = self
                .nodes
                .borrow()
                .get(p)
                .map(|n| n.1)
                .ok_or(err(ErrorCode::NoNode))?;
            let list = self.acls.borrow().get(p).cloned().unwrap_or_else(|| {
                vec![AclEntry {
                    perms: 31,
                    scheme: "world".into(),
                    id: "anyone".into(),
                }]
            });
            Ok((list, s))
        }
        async fn set_acl(
            &self,
            p: &str,
            acl: &[AclEntry],
            version: Option<i32>,
        ) -> Result<Stat, OpError> {
            let mut nodes = self.nodes.borrow_mut();
            let s = &mut nodes.get_mut(p).ok_or(err(ErrorCode::NoNode))?.1;
            if version.is_some_and(|v| v != -1 && v != s.aversion) {
                return Err(err(ErrorCode::BadVersion));
            }
            if acl.is_empty() {
                return Err(err(ErrorCode::InvalidAcl));
            }
            s.aversion += 1;
            self.acls.borrow_mut().insert(p.to_string(), acl.to_vec());
            Ok(*s)
        }
        async fn add_auth(&self, scheme: &str, auth: &[u8]) -> Result<(), OpError> {
            if scheme != "digest" && scheme != "ip" {
                return Err(err(ErrorCode::AuthFailed));
            }
            self.auths
                .borrow_mut()
                .push((scheme.to_string(), auth.to_vec()));
            Ok(())
        }
        fn session(&self) -> SessionInfo {
            SessionInfo {
                session_id: SESSION,
                timeout_ms: 10_000,
                server: Some("127.0.0.1:2281".into()),
                last_zxid: *self.zxid.borrow(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{FakeTree, SESSION};
    use super::*;
    use crate::command::parse;
    use crate::script::split;

    fn run(t: &FakeTree, src: &str) -> Result<Output, ShellError> {
        let cmd = parse(&split(src).unwrap()[0]).unwrap();
        futures_lite(execute(t, &cmd))
    }

    /// Polls a future that never waits (the fake backend is synchronous).
    fn futures_lite<F: std::future::Future>(f: F) -> F::Output {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(f)
    }

    fn text(t: &FakeTree, src: &str) -> String {
        run(t, src).unwrap_or_else(|e| panic!("{src}: {e}")).text
    }

    #[test]
    fn acl_commands_print_and_set_like_zkcli() {
        let t = FakeTree::new();
        text(&t, "create /a x");
        text(&t, "create /a/b y");
        assert_eq!(text(&t, "getAcl /a"), "'world,'anyone\n: cdrwa\n");
        assert_eq!(text(&t, "setAcl /a digest:bob:h=:rw,ip:10.0.0.0/8:r"), "");
        assert_eq!(
            text(&t, "getacl /a"),
            "'digest,'bob:h=\n: rw\n'ip,'10.0.0.0/8\n: r\n"
        );
        let out = run(&t, "getAcl -s /a").unwrap();
        assert!(out.text.contains("aclVersion = 1"), "{}", out.text);
        assert_eq!(out.json["acl"][0]["perms"], "rw");
        // -v checks the ACL version; -R covers the subtree.
        let e = run(&t, "setAcl -v 0 /a world:anyone:r").unwrap_err();
        assert!(e.to_string().contains("version No is not valid"), "{e}");
        text(&t, "setAcl -R /a world:anyone:ra");
        assert_eq!(text(&t, "getAcl /a/b"), "'world,'anyone\n: ra\n");
        assert!(text(&t, "setAcl -s -v 2 /a world:anyone:cdrwa").contains("aclVersion = 3"));
        // addauth shows in whoami; a refused scheme is an error.
        text(&t, "addauth digest bob:pw");
        assert_eq!(text(&t, "whoami"), "ip: 127.0.0.1\ndigest: bob\n");
        assert!(run(&t, "addauth kerberos x").is_err());
        // Bad ACL syntax is a usage error before anything is sent.
        for bad in [
            "setAcl /a world:anyone",
            "setAcl /a world:anyone:rz",
            "setAcl -s -R /a world:anyone:r",
            "addauth digest",
        ] {
            let cmd = parse(&split(bad).unwrap()[0]);
            assert!(matches!(cmd, Err(ShellError::Usage(_))), "{bad}: {cmd:?}");
        }
    }

    #[test]
    fn tree_is_drawn_with_box_characters_depth_first() {
        let t = FakeTree::new();
        for p in ["/a", "/a/x", "/a/x/deep", "/a/y", "/b", "/a/w"] {
            run(&t, &format!("create {p}")).unwrap();
        }
        let out = run(&t, "tree /").unwrap();
        assert_eq!(
            out.text,
            "/\n├── a\n│   ├── w\n│   ├── x\n│   │   └── deep\n│   └── y\n└── b\n"
        );
        assert_eq!(out.json["paths"][4], "/a/x/deep");
        let sub = run(&t, "tree /a/x").unwrap();
        assert_eq!(sub.text, "/a/x\n└── deep\n");
        assert!(matches!(run(&t, "tree /nope"), Err(ShellError::Op { .. })));
    }

    #[test]
    fn crud_sequence() {
        let t = FakeTree::new();
        assert_eq!(text(&t, "create /a x"), "/a\n");
        assert_eq!(text(&t, "get /a"), "x\n");
        assert_eq!(text(&t, "set /a 'y z'"), "");
        assert_eq!(text(&t, "get /a"), "y z\n");
        let stat = text(&t, "stat /a");
        assert!(
            stat.contains("dataVersion = 1\n") && stat.contains("dataLength = 3\n"),
            "{stat}"
        );
        assert_eq!(text(&t, "ls /a"), "");
        assert_eq!(text(&t, "delete /a"), "");
        assert_eq!(
            run(&t, "get /a").unwrap_err().to_string(),
            "Node does not exist: /a"
        );
    }

    #[test]
    fn errors_carry_the_path_and_zookeeper_words() {
        let t = FakeTree::new();
        text(&t, "create /a");
        text(&t, "create /a/b");
        assert_eq!(
            run(&t, "create /a").unwrap_err().to_string(),
            "Node already exists: /a"
        );
        assert_eq!(
            run(&t, "delete /a").unwrap_err().to_string(),
            "Node not empty: /a"
        );
        assert_eq!(
            run(&t, "set -v 5 /a x").unwrap_err().to_string(),
            "version No is not valid : /a"
        );
        assert_eq!(
            run(&t, "stat /zz").unwrap_err().to_string(),
            "Node does not exist: /zz"
        );
        assert_eq!(run(&t, "stat /zz").unwrap_err().exit_code(), 1);
    }

    #[test]
    fn get_escapes_binary_and_json_keeps_bytes() {
        let t = FakeTree::new();
        text(&t, "create /b 0x00411b0aff");
        let out = run(&t, "get /b").unwrap();
        assert_eq!(out.text, "\\0A\\u{1b}\\n\\xff\n");
        assert_eq!(out.json["data_hex"], "00411b0aff");
        assert_eq!(out.json["data"], Value::Null);
        let out = run(&t, "get -s /b").unwrap();
        assert!(out.text.contains("cZxid = 0x1\n"));
        assert_eq!(out.json["stat"]["dataLength"], 5);
    }

    #[test]
    fn ls_sorted_stat_and_recursive() {
        let t = FakeTree::new();
        for p in ["/r", "/r/b", "/r/a", "/r/a/x", "/r/c"] {
            text(&t, &format!("create {p}"));
        }
        assert_eq!(text(&t, "ls /r"), "a\nb\nc\n");
        assert!(text(&t, "ls -s /r").starts_with("a\nb\nc\ncZxid = "));
        assert_eq!(text(&t, "ls -R /r"), "/r\n/r/a\n/r/b\n/r/c\n/r/a/x\n");
        assert_eq!(
            run(&t, "ls /r").unwrap().json["children"],
            json!(["a", "b", "c"])
        );
    }

    #[test]
    fn deleteall_removes_the_subtree_only() {
        let t = FakeTree::new();
        for p in ["/r", "/r/a", "/r/a/x", "/r/b", "/keep"] {
            text(&t, &format!("create {p}"));
        }
        assert_eq!(run(&t, "deleteall /r").unwrap().json["deleted"], 4);
        assert_eq!(text(&t, "exists /r"), "false\n");
        assert_eq!(text(&t, "ls /"), "keep\n");
        assert_eq!(
            run(&t, "deleteall /r").unwrap_err().to_string(),
            "Node does not exist: /r"
        );
    }

    #[test]
    fn sequential_and_ephemeral() {
        let t = FakeTree::new();
        text(&t, "create /q");
        assert_eq!(text(&t, "create -s /q/n-"), "/q/n-0000000000\n");
        assert_eq!(text(&t, "create -e -s /q/n-"), "/q/n-0000000001\n");
        assert_eq!(text(&t, "getEphemerals"), "/q/n-0000000001\n");
        assert!(
            text(&t, "stat /q/n-0000000001").contains(&format!("ephemeralOwner = 0x{SESSION:x}\n"))
        );
    }

    #[test]
    fn exists_sync_session_whoami_help() {
        let t = FakeTree::new();
        assert_eq!(text(&t, "exists /nope"), "false\n");
        assert_eq!(run(&t, "exists /").unwrap().json["exists"], true);
        assert_eq!(text(&t, "sync /"), "Sync is OK\n");
        assert!(text(&t, "session").starts_with("sessionId = 0x1234\n"));
        assert_eq!(text(&t, "whoami"), "ip: 127.0.0.1\n");
        assert!(text(&t, "help set").starts_with("set [-v VERSION] PATH DATA"));
    }

    #[test]
    fn file_data_is_read_at_run_time() {
        let t = FakeTree::new();
        let f = std::env::temp_dir().join(format!("zk-shell-exec-{}", std::process::id()));
        std::fs::write(&f, b"from file").unwrap();
        text(&t, &format!("create /f @{}", f.display()));
        std::fs::remove_file(&f).unwrap();
        assert_eq!(text(&t, "get /f"), "from file\n");
        assert_eq!(
            run(&t, &format!("set /f @{}", f.display()))
                .unwrap_err()
                .exit_code(),
            1
        );
    }
}
