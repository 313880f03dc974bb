//! Measures failover: kill -9 of the leader of a 3-member loopback ensemble to the
//! first acknowledged write, by a client that retries at once against the other
//! members. Prints each run and the median.
//!
//! `FAILOVER_FAULT=stop` freezes the leader (SIGSTOP) instead: its connections stay
//! open, so the others notice only by the election timeout. The frozen member is
//! killed after the write (it would otherwise wake as a stale leader mid-run).
//!
//! `FAILOVER_LINEARIZABLE=1` keeps a client reading linearizably from the leader
//! (so the leader holds its read lease) until the fault: the successor then waits
//! for the lease to run out.
//!
//! `FAILOVER_LOG_DIR=DIR` keeps each member's log (`RUST_LOG=info`) as
//! `DIR/<id>.log`, for the time line of an election.
//!
//! ```sh
//! cargo build --release --bin zabkeeper
//! cargo run --release -p zabkeeper-server --example failover -- [RUNS] [BINARY]
//! ```

use futures::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;
use zabkeeper_proto::frame::Codec;
use zabkeeper_proto::wire::{self, client_frame, request::Op, server_frame};

type Io = Framed<TcpStream, Codec<wire::ServerFrame, wire::ClientFrame>>;

async fn connect(addr: SocketAddr) -> Option<Io> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let mut io: Io = Framed::new(stream, Codec::new(1 << 20));
    let req = wire::ConnectRequest {
        timeout_ms: 10_000,
        ..Default::default()
    };
    io.send(wire::ClientFrame {
        kind: Some(client_frame::Kind::Connect(req)),
    })
    .await
    .ok()?;
    match tokio::time::timeout(Duration::from_secs(2), io.next()).await {
        Ok(Some(Ok(wire::ServerFrame {
            kind: Some(server_frame::Kind::Connect(c)),
        }))) if c.error == 0 => Some(io),
        _ => None,
    }
}

async fn create(io: &mut Io, path: &str) -> bool {
    let op = Op::Create(wire::CreateRequest {
        path: path.into(),
        ..Default::default()
    });
    let req = wire::Request {
        xid: 1,
        consistency: 0,
        op: Some(op),
        ..Default::default()
    };
    if io
        .send(wire::ClientFrame {
            kind: Some(client_frame::Kind::Request(req)),
        })
        .await
        .is_err()
    {
        return false;
    }
    loop {
        match tokio::time::timeout(Duration::from_secs(2), io.next()).await {
            Ok(Some(Ok(wire::ServerFrame {
                kind: Some(server_frame::Kind::Response(r)),
            }))) => return r.error == 0,
            Ok(Some(Ok(_))) => continue,
            _ => return false,
        }
    }
}

/// Linearizable reads of `/` from `addr`, one after another, until one fails (the
/// member is gone). Returns how many succeeded.
async fn read_linearizably(addr: SocketAddr) -> u64 {
    let Some(mut io) = connect(addr).await else {
        return 0;
    };
    let mut n = 0;
    loop {
        let req = wire::Request {
            xid: n as i32 + 2,
            consistency: wire::Consistency::Linearizable as i32,
            op: Some(Op::GetData(wire::PathWatchRequest {
                path: "/".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let frame = wire::ClientFrame {
            kind: Some(client_frame::Kind::Request(req)),
        };
        if io.send(frame).await.is_err() {
            return n;
        }
        match io.next().await {
            Some(Ok(wire::ServerFrame {
                kind: Some(server_frame::Kind::Response(r)),
            })) if r.error == 0 => n += 1,
            _ => return n,
        }
    }
}

async fn role(addr: SocketAddr) -> Option<String> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let mut io: Io = Framed::new(stream, Codec::new(1 << 20));
    io.send(wire::ClientFrame {
        kind: Some(client_frame::Kind::Probe(wire::Empty {})),
    })
    .await
    .ok()?;
    match io.next().await {
        Some(Ok(wire::ServerFrame {
            kind: Some(server_frame::Kind::Response(r)),
        })) => match r.result {
            Some(wire::response::Result::ServerState(s)) if s.serving => Some(s.role),
            _ => None,
        },
        _ => None,
    }
}

fn spawn(bin: &str, id: usize, spec: &str, dir: &std::path::Path) -> Child {
    let log = std::env::var_os("FAILOVER_LOG_DIR").map(|d| {
        let path = std::path::Path::new(&d).join(format!("{id}.log"));
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open the member's log")
    });
    Command::new(bin)
        .args(["--id", &id.to_string(), "--members", spec])
        .args(["--zk-port", "0", "--admin-port", "0", "--data-dir"])
        .arg(dir.join(id.to_string()))
        .env("RUST_LOG", if log.is_some() { "info" } else { "warn" })
        .stdout(Stdio::null())
        .stderr(log.map_or_else(Stdio::null, Stdio::from))
        .spawn()
        .expect("spawn zabkeeper")
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10);
    let bin = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "target/release/zabkeeper".into());
    let freeze = std::env::var("FAILOVER_FAULT").is_ok_and(|f| f == "stop");
    let linearizable = std::env::var("FAILOVER_LINEARIZABLE").is_ok_and(|v| v == "1");
    let dir = tempfile::tempdir().unwrap();
    let spec = "1=127.0.0.1:23881:23281,2=127.0.0.1:23882:23282,3=127.0.0.1:23883:23283";
    let addrs: Vec<SocketAddr> = (1..=3)
        .map(|i| format!("127.0.0.1:{}", 23280 + i).parse().unwrap())
        .collect();
    let mut children: Vec<Option<Child>> = (1..=3)
        .map(|i| Some(spawn(&bin, i, spec, dir.path())))
        .collect();
    let mut times = Vec::new();
    for run in 0..runs {
        // Wait for an established leader, then write through it once.
        let leader = loop {
            let mut found = None;
            for (i, a) in addrs.iter().enumerate() {
                if role(*a).await.as_deref() == Some("leading") {
                    found = Some(i);
                }
            }
            if let Some(l) = found {
                break l;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let mut io = connect(addrs[leader]).await.expect("connect to the leader");
        assert!(create(&mut io, &format!("/before-{run}")).await);
        let reader = linearizable.then(|| {
            let addr = addrs[leader];
            tokio::spawn(read_linearizably(addr))
        });
        if reader.is_some() {
            // Long enough for lease rounds to be acked and renewed.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let mut child = children[leader].take().unwrap();
        let killed = Instant::now();
        let killed_at = std::time::SystemTime::now();
        if freeze {
            // SAFETY: a plain signal to our own child's pid.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGSTOP) };
        } else {
            child.kill().unwrap();
        }
        let mut next = (leader + 1) % 3;
        let took = loop {
            if let Some(mut io) = connect(addrs[next]).await {
                if create(&mut io, &format!("/after-{run}")).await {
                    break killed.elapsed();
                }
            }
            next = if (next + 1) % 3 == leader {
                (next + 2) % 3
            } else {
                (next + 1) % 3
            };
        };
        if freeze {
            child.kill().unwrap();
        }
        child.wait().unwrap();
        if let Some(reader) = reader {
            let reads = reader.await.unwrap_or(0);
            assert!(
                reads > 0,
                "no linearizable read was answered before the fault"
            );
        }
        println!(
            "run {run}: leader {} {} at {}, first acknowledged write after {} ms",
            leader + 1,
            if freeze { "frozen" } else { "killed" },
            humantime_utc(killed_at),
            took.as_millis()
        );
        times.push(took);
        children[leader] = Some(spawn(&bin, leader + 1, spec, dir.path()));
        // Let the restarted member rejoin before the next run.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    times.sort();
    println!(
        "median failover over {runs} runs: {} ms",
        times[times.len() / 2].as_millis()
    );
    for c in children.iter_mut().flatten() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// `HH:MM:SS.ffffff` UTC, to line runs up with the members' logs.
fn humantime_utc(t: std::time::SystemTime) -> String {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let s = d.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_micros()
    )
}
