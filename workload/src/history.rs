//! The history a workload run records: one JSON object per line, one line per event.
//!
//! Every operation is an `invoke` event followed by exactly one completion from the
//! same client: `ok` (it happened), `fail` (it certainly did not happen) or `info`
//! (unknown: the answer was lost to a connection failure, a timeout or the session's
//! end, so the operation may or may not have taken effect). This is the shape
//! linearizability checkers (Knossos, Porcupine, the consistency checker of issue 4)
//! take: a client has at most one operation outstanding, and an `info` operation is
//! concurrent with everything after its invocation.
//!
//! Operations (`op`) and their fields:
//!
//! | op | key | value on invoke | value on ok | zxid on ok |
//! |---|---|---|---|---|
//! | `create` | unique node path | its data | its data | czxid |
//! | `write` | register node path | value written | value written | mzxid |
//! | `read` | register node path | - | value read (`null`: no node) | mzxid read |
//! | `lread` | register node path | - | as `read`, a linearizable read | mzxid read |
//! | `acquire` | lock directory | - | fencing token (decimal) | token |
//! | `release` | lock directory | fencing token | fencing token | - |
//! | `put` | queue directory | item | item | - |
//! | `take` | queue directory | - | item taken (`null`: queue empty) | - |
//!
//! `read`s are plain (session-consistent) reads: the checker puts them through a
//! session check (no read misses a write whose zxid is at or below the `seen_zxid` of
//! its invocation) rather than the linearizability search, which takes the register
//! writes and the `lread`s; `version` on register writes and reads gives the
//! register's (data, version) state. Registers start empty at version 0.
//!
//! `time_ms` is wall-clock time (ms since the Unix epoch, fractional), so the
//! history lines up with fault injections timed by a script on the same host.

use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};

/// What an event says about its operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Invoke,
    Ok,
    Fail,
    Info,
}

/// One line of the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub time_ms: f64,
    pub client: usize,
    #[serde(rename = "type")]
    pub kind: Kind,
    pub op: String,
    pub key: String,
    #[serde(default)]
    pub value: Option<String>,
    #[serde(default)]
    pub zxid: Option<i64>,
    /// The member the client was connected to (invoke) or the error (fail, info).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// On invoke: the highest zxid the session had seen when it sent the operation
    /// (what a session-consistency check of plain reads needs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_zxid: Option<i64>,
    /// On a register's `write`/`read` ok: the node's version after / as read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<i32>,
}

pub fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// Appends events to a file, one JSON line each, shared by every client task.
#[derive(Clone)]
pub struct Recorder {
    out: Arc<Mutex<std::io::BufWriter<std::fs::File>>>,
}

impl Recorder {
    pub fn create(path: &Path) -> Result<Recorder> {
        let f =
            std::fs::File::create(path).map_err(|e| Error::Io(path.display().to_string(), e))?;
        Ok(Recorder {
            out: Arc::new(Mutex::new(std::io::BufWriter::new(f))),
        })
    }

    pub fn record(&self, e: &Event) {
        let line = serde_json::to_string(e).expect("events serialize");
        // A short critical section: one line per event, never interleaved.
        let mut out = self.out.lock().unwrap();
        let _ = writeln!(out, "{line}");
    }

    pub fn flush(&self) -> Result<()> {
        self.out
            .lock()
            .unwrap()
            .flush()
            .map_err(|e| Error::Io("history".into(), e))
    }
}

/// Reads a history file.
pub fn read(path: &Path) -> Result<Vec<Event>> {
    let f = std::fs::File::open(path).map_err(|e| Error::Io(path.display().to_string(), e))?;
    let mut out = Vec::new();
    for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(|e| Error::Io(path.display().to_string(), e))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(
            serde_json::from_str(&line)
                .map_err(|e| Error::BadHistory(format!("line {}: {e}", n + 1)))?,
        );
    }
    Ok(out)
}

/// An operation: its invocation and its completion (`None` if the run ended first,
/// which counts as `info`).
#[derive(Debug, Clone)]
pub struct Operation {
    pub invoke: Event,
    pub done: Option<Event>,
}

impl Operation {
    pub fn outcome(&self) -> Kind {
        self.done.as_ref().map_or(Kind::Info, |d| d.kind)
    }
}

/// Pairs every invocation with its client's next completion.
pub fn operations(events: &[Event]) -> Result<Vec<Operation>> {
    let mut open: std::collections::HashMap<usize, usize> = Default::default();
    let mut ops: Vec<Operation> = Vec::new();
    for e in events {
        match e.kind {
            Kind::Invoke => {
                if open.insert(e.client, ops.len()).is_some() {
                    return Err(Error::BadHistory(format!(
                        "client {} invoked twice without a completion",
                        e.client
                    )));
                }
                ops.push(Operation {
                    invoke: e.clone(),
                    done: None,
                });
            }
            _ => {
                let i = open.remove(&e.client).ok_or_else(|| {
                    Error::BadHistory(format!("client {} completed nothing", e.client))
                })?;
                if ops[i].invoke.op != e.op {
                    return Err(Error::BadHistory(format!(
                        "client {} invoked {} but completed {}",
                        e.client, ops[i].invoke.op, e.op
                    )));
                }
                ops[i].done = Some(e.clone());
            }
        }
    }
    Ok(ops)
}
