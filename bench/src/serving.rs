//! `wait-serving`: how long after a launch every server serves, for start-up and restart
//! times.
//!
//! A server serves once a fresh session on it gets a create acknowledged (so for an
//! ensemble member: it has a leader, the leader has a quorum, and writes commit). Each
//! server is polled on its own every 2 ms (connect, create, delete) until that works; the
//! result is the time from `since` (the launch, in Unix ms, taken by the caller before it
//! started the processes) to the moment the last server answered.

use crate::session::Fail;
use crate::Connect;
use bytes::Bytes;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// Waits until every server acknowledged a create; returns the Unix ms when the last did.
pub async fn wait<S: Connect>(servers: &[&str], timeout: Duration) -> Result<u128, String> {
    let deadline = Instant::now() + timeout;
    let mut tasks = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        let server = server.to_string();
        tasks.push(tokio::spawn(async move {
            let path = format!("/zkbench-ready-{}-{i}", std::process::id());
            let mut last = String::from("never connected");
            while Instant::now() < deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                match S::open(&server, left.min(Duration::from_secs(2))).await {
                    Ok(s) => {
                        let r = s.create(&path, Bytes::new()).await;
                        let done = unix_ms();
                        let ok = match r {
                            Ok(()) => true,
                            Err(Fail::Other(e)) if e.contains("exists") => true,
                            Err(e) => {
                                last = e.to_string();
                                false
                            }
                        };
                        if ok {
                            let _ = s.delete(&path).await;
                            s.shut().await;
                            return Ok(done);
                        }
                        s.shut().await;
                    }
                    Err(e) => last = e,
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Err(format!(
                "{server} not serving within the timeout (last: {last})"
            ))
        }));
    }
    let mut last = 0;
    for t in tasks {
        last = last.max(t.await.map_err(|e| e.to_string())??);
    }
    Ok(last)
}
