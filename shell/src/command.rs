//! The shell's commands: their syntax, parsing and help.
//!
//! Parsing is separate from running (`exec.rs`) so that script mode can check a whole
//! script before touching the server, and so a REPL can reuse both halves. Flags come
//! before the positional arguments, getopt style: single letters, boolean ones may be
//! grouped (`create -es /a`), a value follows its flag as the next word or glued
//! (`-v3`), and `--` ends the flags (so `set -- /a -1` stores `-1`). A quoted word is
//! never a flag.

use crate::acl::{parse_acl, AclEntry};
use crate::data::DataArg;
use crate::error::ShellError;
use crate::quota;
use crate::script::{RawCommand, Word};
use zabkeeper_proto::path;

/// Node kinds for `create`, numbered as ZooKeeper's `CreateMode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Persistent = 0,
    Ephemeral = 1,
    PersistentSequential = 2,
    EphemeralSequential = 3,
    Container = 4,
    PersistentWithTtl = 5,
    PersistentSequentialWithTtl = 6,
}

impl Mode {
    pub fn is_sequential(self) -> bool {
        matches!(
            self,
            Mode::PersistentSequential
                | Mode::EphemeralSequential
                | Mode::PersistentSequentialWithTtl
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Create {
        path: String,
        data: DataArg,
        mode: Mode,
        ttl_ms: Option<i64>,
    },
    Get {
        path: String,
        stat: bool,
    },
    Set {
        path: String,
        data: DataArg,
        version: Option<i32>,
    },
    Stat {
        path: String,
    },
    Ls {
        path: String,
        stat: bool,
        recursive: bool,
    },
    Delete {
        path: String,
        version: Option<i32>,
    },
    DeleteAll {
        path: String,
    },
    Sync {
        path: String,
    },
    Tree {
        path: String,
    },
    Exists {
        path: String,
    },
    GetEphemerals {
        prefix: String,
    },
    GetAcl {
        path: String,
        stat: bool,
    },
    SetAcl {
        path: String,
        acl: Vec<AclEntry>,
        version: Option<i32>,
        stat: bool,
        recursive: bool,
    },
    AddAuth {
        scheme: String,
        auth: String,
    },
    /// Limits to set: (StatsTrack key, value); soft `count`/`bytes`, hard
    /// `countHardLimit`/`byteHardLimit`.
    SetQuota {
        path: String,
        limits: Vec<(&'static str, i64)>,
    },
    ListQuota {
        path: String,
    },
    /// `keys` empty: remove the quota; else reset those limits to -1.
    DelQuota {
        path: String,
        keys: Vec<&'static str>,
    },
    WhoAmI,
    Session,
    Help {
        command: Option<String>,
    },
}

impl Command {
    /// The command's name as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Create { .. } => "create",
            Command::Get { .. } => "get",
            Command::Set { .. } => "set",
            Command::Stat { .. } => "stat",
            Command::Ls { .. } => "ls",
            Command::Delete { .. } => "delete",
            Command::DeleteAll { .. } => "deleteall",
            Command::Sync { .. } => "sync",
            Command::Tree { .. } => "tree",
            Command::Exists { .. } => "exists",
            Command::GetEphemerals { .. } => "getEphemerals",
            Command::GetAcl { .. } => "getAcl",
            Command::SetAcl { .. } => "setAcl",
            Command::AddAuth { .. } => "addauth",
            Command::SetQuota { .. } => "setquota",
            Command::ListQuota { .. } => "listquota",
            Command::DelQuota { .. } => "delquota",
            Command::WhoAmI => "whoami",
            Command::Session => "session",
            Command::Help { .. } => "help",
        }
    }

    /// Whether running the command needs a server connection.
    pub fn needs_server(&self) -> bool {
        !matches!(self, Command::Help { .. })
    }
}

/// One line of help per command: (name, synopsis, description).
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("create", "create [-e] [-s] [-c] [-t TTL_MS] PATH [DATA]", "create a node (-e ephemeral, -s sequential, -c container, -t TTL); prints the created path"),
    ("get", "get [-s] PATH", "print a node's data (-s: and its stat)"),
    ("set", "set [-v VERSION] PATH DATA", "replace a node's data (only at VERSION when given)"),
    ("stat", "stat PATH", "print a node's stat"),
    ("ls", "ls [-s] [-R] PATH", "list children, one per line (-s: then the node's stat; -R: every descendant, as full paths)"),
    ("delete", "delete [-v VERSION] PATH", "delete a childless node (only at VERSION when given)"),
    ("deleteall", "deleteall PATH", "delete a node and all its descendants"),
    ("sync", "sync PATH", "bring the connected server up to date with the leader"),
    ("tree", "tree PATH", "draw PATH and all its descendants as a tree"),
    ("exists", "exists PATH", "print true or false (succeeds either way)"),
    ("getEphemerals", "getEphemerals [PATH]", "list this session's ephemeral nodes (under PATH when given)"),
    ("getAcl", "getAcl [-s] PATH", "print a node's ACL, each entry as 'scheme,'id then : perms (-s: and its stat); also getacl"),
    ("setAcl", "setAcl [-s] [-v VERSION] [-R] PATH ACL", "replace a node's ACL, ACL being scheme:id:perms[,...] with perms letters of crwda (-v: only at that ACL version, -R: the whole subtree, -s: print the stat); also setacl"),
    ("addauth", "addauth SCHEME AUTH", "add an identity to the session, e.g. addauth digest user:password (kept across reconnects)"),
    ("setquota", "setquota -n|-b|-N|-B VAL PATH", "set a quota on the subtree at PATH: -n node count, -b bytes (soft: logged by the server), -N, -B the same as hard limits (refused with QuotaExceeded); flags combine"),
    ("listquota", "listquota PATH", "print the quota limits on PATH and the subtree's current usage"),
    ("delquota", "delquota [-n|-b|-N|-B] PATH", "remove the quota on PATH, or only the limits named by the flags"),
    ("whoami", "whoami", "print this session's authenticated identities"),
    ("session", "session", "print the session id, timeout, server and last zxid seen"),
    ("help", "help [CMD]", "list commands, or describe one"),
];

/// Commands of the interactive shell only (they wait for events, read a block of
/// lines, or change the session): the REPL (`repl.rs`) runs them itself.
pub const INTERACTIVE_COMMANDS: &[(&str, &str, &str)] = &[
    ("get -w", "get [-s] -w PATH", "print a node's data and watch it: the event is printed when it fires (interactive only)"),
    ("watch", "watch [-r] PATH", "print events on PATH (-r: and its descendants) as they come, until Ctrl-C (interactive only)"),
    ("multi", "multi", "read ops (create, set, delete, check PATH VERSION) until a line `end`, then apply them atomically; `abort` cancels (interactive only)"),
    ("connect", "connect HOST:PORT[,HOST:PORT...]", "close this session and open one to the given servers (interactive only)"),
    ("close", "close", "close the session (its ephemeral nodes go); `connect` opens a new one (interactive only)"),
    ("quit", "quit", "close the session and leave the shell (also Ctrl-D) (interactive only)"),
];

fn find_help(name: &str) -> Option<&'static (&'static str, &'static str, &'static str)> {
    COMMANDS
        .iter()
        .chain(INTERACTIVE_COMMANDS.iter())
        .find(|(n, _, _)| *n == name)
}

/// Help text: all commands, or one.
pub fn help_text(command: Option<&str>) -> Result<String, ShellError> {
    let mut out = String::new();
    match command {
        None => {
            out.push_str(
                "DATA is text ('...' or \"...\" to include spaces or ;), @FILE, or 0xHEX\n",
            );
            for (_, synopsis, desc) in COMMANDS.iter().chain(INTERACTIVE_COMMANDS.iter()) {
                out.push_str(&format!("\t{synopsis}\n\t\t{desc}\n"));
            }
        }
        Some(name) => {
            let (_, synopsis, desc) = find_help(name)
                .ok_or_else(|| ShellError::Usage(format!("unknown command: {name}")))?;
            out.push_str(&format!("{synopsis}\n\t{desc}\n"));
        }
    }
    Ok(out)
}

/// Parses one command.
pub fn parse(raw: &RawCommand) -> Result<Command, ShellError> {
    let (name, args) = raw
        .words
        .split_first()
        .ok_or_else(|| ShellError::Usage("empty command".into()))?;
    if name.quoted {
        return Err(ShellError::Usage(format!("unknown command: {}", name.text)));
    }
    let name = name.text.as_str();
    let usage = |msg: &str| {
        let synopsis = COMMANDS
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|c| c.1)
            .unwrap_or("");
        ShellError::Usage(format!("{name}: {msg}\nusage: {synopsis}"))
    };
    let spec: &[(char, bool)] = match name {
        "create" => &[('e', false), ('s', false), ('c', false), ('t', true)],
        "get" => &[('s', false)],
        "set" | "delete" => &[('v', true)],
        "ls" => &[('s', false), ('R', false)],
        "getAcl" | "getacl" => &[('s', false)],
        "setAcl" | "setacl" => &[('s', false), ('v', true), ('R', false)],
        "addauth" | "listquota" => &[],
        "setquota" => &[('n', true), ('b', true), ('N', true), ('B', true)],
        "delquota" => &[('n', false), ('b', false), ('N', false), ('B', false)],
        "watch" | "multi" | "connect" | "close" | "quit" => {
            return Err(ShellError::Usage(format!(
                "{name}: only in the interactive shell"
            )))
        }
        "stat" | "deleteall" | "sync" | "tree" | "exists" | "getEphemerals" | "whoami"
        | "session" | "help" => &[],
        other => {
            return Err(ShellError::Usage(format!(
                "unknown command: {other} (try help)"
            )))
        }
    };
    let (flags, pos) = split_flags(args, spec).map_err(|m| usage(&m))?;
    let has = |c: char| flags.iter().any(|(f, _)| *f == c);
    let value = |c: char| {
        flags
            .iter()
            .rev()
            .find(|(f, _)| *f == c)
            .and_then(|(_, v)| v.clone())
    };
    let version = || -> Result<Option<i32>, ShellError> {
        value('v')
            .map(|v| {
                v.parse::<i32>()
                    .map_err(|_| usage(&format!("bad version: {v}")))
            })
            .transpose()
    };
    let arity = |min: usize, max: usize| -> Result<(), ShellError> {
        if pos.len() < min {
            Err(usage("missing argument"))
        } else if pos.len() > max {
            Err(usage(&format!("unexpected argument: {}", pos[max].text)))
        } else {
            Ok(())
        }
    };
    let path_at = |i: usize, sequential: bool| -> Result<String, ShellError> {
        let p = &pos[i].text;
        path::validate(p, sequential).map_err(|e| ShellError::Usage(e.to_string()))?;
        Ok(p.clone())
    };

    Ok(match name {
        "create" => {
            arity(1, 2)?;
            let (e, s, c) = (has('e'), has('s'), has('c'));
            let ttl_ms = value('t')
                .map(|t| match t.parse::<i64>() {
                    Ok(v) if v > 0 => Ok(v),
                    _ => Err(usage(&format!("bad TTL: {t}"))),
                })
                .transpose()?;
            let mode = match (e, s, c, ttl_ms.is_some()) {
                (false, false, false, false) => Mode::Persistent,
                (true, false, false, false) => Mode::Ephemeral,
                (false, true, false, false) => Mode::PersistentSequential,
                (true, true, false, false) => Mode::EphemeralSequential,
                (false, false, true, false) => Mode::Container,
                (false, false, false, true) => Mode::PersistentWithTtl,
                (false, true, false, true) => Mode::PersistentSequentialWithTtl,
                (_, _, true, _) => return Err(usage("-c cannot be combined with -e, -s or -t")),
                (true, _, _, true) => return Err(usage("-t cannot be combined with -e")),
            };
            let data = match pos.get(1) {
                Some(w) => DataArg::parse(w)?,
                None => DataArg::empty(),
            };
            Command::Create {
                path: path_at(0, mode.is_sequential())?,
                data,
                mode,
                ttl_ms,
            }
        }
        "get" => {
            arity(1, 1)?;
            Command::Get {
                path: path_at(0, false)?,
                stat: has('s'),
            }
        }
        "set" => {
            arity(2, 2)?;
            Command::Set {
                path: path_at(0, false)?,
                data: DataArg::parse(&pos[1])?,
                version: version()?,
            }
        }
        "stat" => {
            arity(1, 1)?;
            Command::Stat {
                path: path_at(0, false)?,
            }
        }
        "ls" => {
            arity(1, 1)?;
            Command::Ls {
                path: path_at(0, false)?,
                stat: has('s'),
                recursive: has('R'),
            }
        }
        "delete" => {
            arity(1, 1)?;
            Command::Delete {
                path: path_at(0, false)?,
                version: version()?,
            }
        }
        "deleteall" => {
            arity(1, 1)?;
            Command::DeleteAll {
                path: path_at(0, false)?,
            }
        }
        "sync" => {
            arity(1, 1)?;
            Command::Sync {
                path: path_at(0, false)?,
            }
        }
        "tree" => {
            arity(1, 1)?;
            Command::Tree {
                path: path_at(0, false)?,
            }
        }
        "exists" => {
            arity(1, 1)?;
            Command::Exists {
                path: path_at(0, false)?,
            }
        }
        "getEphemerals" => {
            arity(0, 1)?;
            Command::GetEphemerals {
                prefix: if pos.is_empty() {
                    "/".into()
                } else {
                    path_at(0, false)?
                },
            }
        }
        "getAcl" | "getacl" => {
            arity(1, 1)?;
            Command::GetAcl {
                path: path_at(0, false)?,
                stat: has('s'),
            }
        }
        "setAcl" | "setacl" => {
            arity(2, 2)?;
            if has('s') && has('R') {
                return Err(usage("-s cannot be combined with -R"));
            }
            Command::SetAcl {
                path: path_at(0, false)?,
                acl: parse_acl(&pos[1].text).map_err(|m| usage(&m))?,
                version: version()?,
                stat: has('s'),
                recursive: has('R'),
            }
        }
        "addauth" => {
            arity(2, 2)?;
            Command::AddAuth {
                scheme: pos[0].text.clone(),
                auth: pos[1].text.clone(),
            }
        }
        "setquota" => {
            arity(1, 1)?;
            let mut limits = Vec::new();
            for (flag, key) in QUOTA_FLAGS {
                if let Some(v) = value(flag) {
                    let n = v
                        .parse::<i64>()
                        .ok()
                        .filter(|n| *n >= 0)
                        .ok_or_else(|| usage(&format!("bad value for -{flag}: {v}")))?;
                    limits.push((key, n));
                }
            }
            if limits.is_empty() {
                return Err(usage("one of -n, -b, -N, -B is required"));
            }
            Command::SetQuota {
                path: path_at(0, false)?,
                limits,
            }
        }
        "listquota" => {
            arity(1, 1)?;
            Command::ListQuota {
                path: path_at(0, false)?,
            }
        }
        "delquota" => {
            arity(1, 1)?;
            Command::DelQuota {
                path: path_at(0, false)?,
                keys: QUOTA_FLAGS
                    .iter()
                    .filter(|(f, _)| has(*f))
                    .map(|(_, k)| *k)
                    .collect(),
            }
        }
        "whoami" => {
            arity(0, 0)?;
            Command::WhoAmI
        }
        "session" => {
            arity(0, 0)?;
            Command::Session
        }
        "help" => {
            arity(0, 1)?;
            let command = pos.first().map(|w| w.text.clone());
            if let Some(c) = &command {
                help_text(Some(c))?;
            }
            Command::Help { command }
        }
        _ => unreachable!("names are checked above"),
    })
}

/// zkCli's quota flags and the StatsTrack keys they set.
const QUOTA_FLAGS: [(char, &str); 4] = [
    ('n', quota::COUNT),
    ('b', quota::BYTES),
    ('N', quota::COUNT_HARD),
    ('B', quota::BYTES_HARD),
];

type Flags = Vec<(char, Option<String>)>;

/// Splits leading flags from positional words according to `spec` (letter, takes value).
fn split_flags<'a>(args: &'a [Word], spec: &[(char, bool)]) -> Result<(Flags, &'a [Word]), String> {
    let mut flags = Vec::new();
    let mut i = 0;
    while i < args.len() {
        let w = &args[i];
        if w.quoted || !w.text.starts_with('-') || w.text.len() == 1 {
            break;
        }
        i += 1;
        if w.text == "--" {
            break;
        }
        let letters: Vec<char> = w.text[1..].chars().collect();
        let mut j = 0;
        while j < letters.len() {
            let c = letters[j];
            let takes_value = spec
                .iter()
                .find(|(f, _)| *f == c)
                .map(|(_, v)| *v)
                .ok_or(format!("unknown flag -{c}"))?;
            if takes_value {
                let rest: String = letters[j + 1..].iter().collect();
                let v = if !rest.is_empty() {
                    rest
                } else {
                    let v = args.get(i).ok_or(format!("-{c} needs a value"))?;
                    i += 1;
                    v.text.clone()
                };
                flags.push((c, Some(v)));
                break;
            }
            flags.push((c, None));
            j += 1;
        }
    }
    Ok((flags, &args[i..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::script::split;

    fn p(src: &str) -> Result<Command, ShellError> {
        let cmds = split(src)?;
        assert_eq!(cmds.len(), 1, "{src}");
        parse(&cmds[0])
    }

    fn usage_err(src: &str) -> String {
        match p(src) {
            Err(ShellError::Usage(m)) => m,
            other => panic!("{src}: expected a usage error, got {other:?}"),
        }
    }

    #[test]
    fn create_modes_from_flags() {
        let mode = |src: &str| match p(src).unwrap() {
            Command::Create { mode, .. } => mode,
            c => panic!("{c:?}"),
        };
        assert_eq!(mode("create /a"), Mode::Persistent);
        assert_eq!(mode("create -e /a"), Mode::Ephemeral);
        assert_eq!(mode("create -s /a"), Mode::PersistentSequential);
        assert_eq!(mode("create -e -s /a"), Mode::EphemeralSequential);
        assert_eq!(mode("create -se /a"), Mode::EphemeralSequential);
        assert_eq!(mode("create -c /a"), Mode::Container);
        assert_eq!(mode("create -t 500 /a"), Mode::PersistentWithTtl);
        assert_eq!(
            mode("create -s -t500 /a"),
            Mode::PersistentSequentialWithTtl
        );
    }

    #[test]
    fn create_data_and_ttl() {
        assert_eq!(
            p("create -t 1000 /a 'x y'").unwrap(),
            Command::Create {
                path: "/a".into(),
                data: DataArg::Bytes(b"x y".to_vec()),
                mode: Mode::PersistentWithTtl,
                ttl_ms: Some(1000)
            }
        );
        assert_eq!(
            p("create /a 0x0001").unwrap(),
            Command::Create {
                path: "/a".into(),
                data: DataArg::Bytes(vec![0, 1]),
                mode: Mode::Persistent,
                ttl_ms: None
            }
        );
        assert_eq!(
            p("create /a @/etc/hostname").unwrap(),
            Command::Create {
                path: "/a".into(),
                data: DataArg::File("/etc/hostname".into()),
                mode: Mode::Persistent,
                ttl_ms: None
            }
        );
    }

    #[test]
    fn sequential_create_may_end_in_slash() {
        assert!(p("create -s /a/").is_ok());
        assert!(usage_err("create /a/").contains("must not end with /"));
    }

    #[test]
    fn bad_flag_combinations_and_values() {
        assert!(usage_err("create -c -e /a").contains("-c cannot be combined"));
        assert!(usage_err("create -e -t 10 /a").contains("-t cannot be combined"));
        assert!(usage_err("create -t x /a").contains("bad TTL"));
        assert!(usage_err("create -t 0 /a").contains("bad TTL"));
        assert!(usage_err("create -x /a").contains("unknown flag -x"));
        assert!(
            usage_err("set -v /a x").contains("bad version")
                || usage_err("set -v /a x").contains("missing argument")
        );
        assert!(usage_err("set -v abc /a x").contains("bad version: abc"));
        assert!(usage_err("delete -v").contains("-v needs a value"));
        assert!(usage_err("get -R /a").contains("unknown flag -R"));
    }

    #[test]
    fn arity_and_paths_are_checked() {
        assert!(usage_err("get").contains("missing argument"));
        assert!(usage_err("get /a /b").contains("unexpected argument: /b"));
        assert!(usage_err("set /a").contains("missing argument"));
        assert!(usage_err("whoami x").contains("unexpected argument"));
        assert!(usage_err("get a").contains("must start with /"));
        assert!(usage_err("ls /a//b").contains("empty node name"));
        assert!(usage_err("frobnicate /a").contains("unknown command: frobnicate"));
        assert!(usage_err("help nope").contains("unknown command: nope"));
    }

    #[test]
    fn versions_and_double_dash() {
        assert_eq!(
            p("set -v 3 /a x").unwrap(),
            Command::Set {
                path: "/a".into(),
                data: DataArg::Bytes(b"x".to_vec()),
                version: Some(3)
            }
        );
        assert_eq!(
            p("set -v -1 /a x").unwrap(),
            Command::Set {
                path: "/a".into(),
                data: DataArg::Bytes(b"x".to_vec()),
                version: Some(-1)
            }
        );
        assert_eq!(
            p("delete -v7 /a").unwrap(),
            Command::Delete {
                path: "/a".into(),
                version: Some(7)
            }
        );
        // Flags stop at the first positional word, and `--` ends them: data may start with '-'.
        assert_eq!(
            p("set /a -5").unwrap(),
            Command::Set {
                path: "/a".into(),
                data: DataArg::Bytes(b"-5".to_vec()),
                version: None
            }
        );
        assert_eq!(
            p("set -- /a -x").unwrap(),
            Command::Set {
                path: "/a".into(),
                data: DataArg::Bytes(b"-x".to_vec()),
                version: None
            }
        );
        // A quoted word is never a flag.
        assert!(usage_err("get '-s'").contains("must start with /"));
    }

    #[test]
    fn other_commands() {
        assert_eq!(
            p("ls -s -R /").unwrap(),
            Command::Ls {
                path: "/".into(),
                stat: true,
                recursive: true
            }
        );
        assert_eq!(
            p("get -s /a").unwrap(),
            Command::Get {
                path: "/a".into(),
                stat: true
            }
        );
        assert_eq!(
            p("getEphemerals").unwrap(),
            Command::GetEphemerals { prefix: "/".into() }
        );
        assert_eq!(
            p("getEphemerals /x").unwrap(),
            Command::GetEphemerals {
                prefix: "/x".into()
            }
        );
        assert_eq!(
            p("deleteall /a").unwrap(),
            Command::DeleteAll { path: "/a".into() }
        );
        assert_eq!(
            p("help get").unwrap(),
            Command::Help {
                command: Some("get".into())
            }
        );
        assert_eq!(p("session").unwrap(), Command::Session);
    }

    #[test]
    fn help_lists_every_command() {
        let all = help_text(None).unwrap();
        for (name, synopsis, _) in COMMANDS {
            assert!(all.contains(synopsis), "{name}");
        }
        assert!(help_text(Some("ls"))
            .unwrap()
            .starts_with("ls [-s] [-R] PATH"));
    }
}
