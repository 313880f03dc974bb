//! `zabkeeper-workload`: the client side of the fault tests (`docker/faults.sh`).
//!
//! `run` drives several sessions against an ensemble while faults are injected from
//! outside, recording every operation as an invoke/complete history (`history.rs`);
//! `check` then reads what each member holds and checks the history against it
//! (`check.rs`): acknowledged writes on every member, linearizability and session
//! guarantees of the register operations (`consistency.rs`), mutual exclusion of the
//! lock, the queue's exactly-once delivery, and the time from a heal to the first
//! write.

mod check;
mod consistency;
mod error;
mod history;
mod run;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use zabkeeper_client::recipes::Queue;
use zabkeeper_client::{Client, ConnectOptions, Error as ZkError};

use error::{Error, Result};

#[derive(Parser, Debug)]
#[command(name = "zabkeeper-workload")]
enum Args {
    /// Run the workload and record its history.
    Run {
        #[command(flatten)]
        common: Common,
        /// Concurrent sessions.
        #[arg(long, default_value_t = 6)]
        clients: usize,
        /// More sessions, this many per member, pinned to it and only reading.
        #[arg(long, default_value_t = 0)]
        readers_per_member: usize,
        /// How long to run, in seconds.
        #[arg(long, default_value_t = 20.0)]
        duration_s: f64,
        /// Requested session timeout in ms.
        #[arg(long, default_value_t = 4000)]
        session_timeout_ms: u64,
        /// End the run early once this file exists.
        #[arg(long)]
        stop_file: Option<PathBuf>,
    },
    /// Check a recorded history against what every member holds.
    Check {
        #[command(flatten)]
        common: Common,
        /// Each member's address, checked one by one (default: every `--servers` entry).
        #[arg(long, value_delimiter = ',')]
        members: Vec<String>,
        /// When the fault was healed (ms since the Unix epoch), to report recovery time.
        #[arg(long)]
        heal_ms: Option<f64>,
        /// The first write after the heal must be acknowledged within this many seconds
        /// (the default: a failure detection and two election rounds at the default
        /// 1.5 s election timeout, one full client request timeout of 5 s for a request
        /// caught in the fault, and slack for a container's start).
        #[arg(long, default_value_t = 15.0)]
        max_heal_to_write_s: f64,
        /// Also write the report as JSON here.
        #[arg(long)]
        report: Option<PathBuf>,
    },
}

#[derive(clap::Args, Debug)]
struct Common {
    /// Connect string: every member, host:port,...
    #[arg(long, default_value = "127.0.0.1:2281,127.0.0.1:2282,127.0.0.1:2283")]
    servers: String,
    /// Root node of the run.
    #[arg(long, default_value = "/workload")]
    prefix: String,
    /// The history file (JSON lines).
    #[arg(long)]
    history: PathBuf,
}

fn plan(
    c: &Common,
    clients: usize,
    duration_s: f64,
    session_ms: u64,
    stop_file: Option<PathBuf>,
) -> run::Plan {
    run::Plan {
        servers: c.servers.clone(),
        clients,
        duration: Duration::from_secs_f64(duration_s),
        prefix: c.prefix.clone(),
        session_timeout: Duration::from_millis(session_ms),
        request_timeout: Duration::from_secs(5),
        registers: 4,
        readers_per_member: 0,
        stop_file,
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    match Args::parse() {
        Args::Run {
            common,
            clients,
            readers_per_member,
            duration_s,
            session_timeout_ms,
            stop_file,
        } => {
            let plan = run::Plan {
                readers_per_member,
                ..plan(&common, clients, duration_s, session_timeout_ms, stop_file)
            };
            let go = async {
                run::prepare(&plan).await?;
                let rec = history::Recorder::create(&common.history)?;
                run::run(plan, rec).await;
                Ok::<_, Error>(())
            };
            match go.await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("zabkeeper-workload: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Args::Check {
            common,
            members,
            heal_ms,
            max_heal_to_write_s,
            report,
        } => match check(&common, members, heal_ms.map(|h| (h, max_heal_to_write_s))).await {
            Ok(r) => {
                let json = serde_json::to_string_pretty(&r).expect("report serializes");
                if let Some(path) = report {
                    let _ = std::fs::write(path, &json);
                }
                println!("{json}");
                if r.violations.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("zabkeeper-workload: check: {e}");
                ExitCode::from(2)
            }
        },
    }
}

/// Retries a call whose answer was lost (the member may still be catching up).
async fn settle<T, F, Fut>(what: &str, mut call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = std::result::Result<T, ZkError>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match call().await {
            Ok(v) => return Ok(v),
            Err(e) if run::uncertain(&e) && tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => return Err(Error::Unreachable(format!("{what}: {e}"))),
        }
    }
}

async fn connect(servers: &str) -> Result<Client> {
    let opts = ConnectOptions {
        session_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(10),
        ..Default::default()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        match Client::connect(servers, opts.clone()).await {
            Ok(c) => return Ok(c),
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => return Err(Error::Unreachable(format!("{servers}: {e}"))),
        }
    }
}

/// `heal`: when the fault healed (ms since the Unix epoch) and the bound on the first
/// write after it (s).
async fn check(
    c: &Common,
    members: Vec<String>,
    heal: Option<(f64, f64)>,
) -> Result<check::Report> {
    let plan = plan(c, 0, 0.0, 4000, None);
    let ops = history::operations(&history::read(&c.history)?)?;
    let mut r = check::Report::default();
    check::tally(&ops, &mut r);
    let members = if members.is_empty() {
        c.servers.split(',').map(str::to_string).collect()
    } else {
        members
    };
    // Every member alone: caught up with the leader, it holds every acknowledged write.
    let mut registers: Vec<Vec<(String, i64)>> = Vec::new();
    let created = plan.created_dir();
    let regs_paths: Vec<String> = (0..plan.registers).map(|k| plan.register(k)).collect();
    for m in &members {
        let zk = connect(m).await?;
        settle("sync", || zk.sync(&plan.prefix)).await?;
        let present: HashSet<String> = settle("list", || zk.get_children(&created))
            .await?
            .into_iter()
            .collect();
        let missing = check::missing_creates(&ops, &present);
        if !missing.is_empty() {
            r.violations.push(format!(
                "member {m} lacks {} acknowledged creates, e.g. {:?}",
                missing.len(),
                &missing[..missing.len().min(5)]
            ));
        }
        let mut regs = Vec::new();
        for path in &regs_paths {
            let (data, stat) = settle("read", || zk.get_data(path)).await?;
            regs.push((String::from_utf8_lossy(&data).into_owned(), stat.mzxid));
        }
        registers.push(regs);
        let _ = zk.close().await;
    }
    if registers.windows(2).any(|w| w[0] != w[1]) {
        r.violations
            .push(format!("members disagree on the registers: {registers:?}"));
    }
    // Drain the queue: what is left must be accounted for too.
    let zk = connect(&c.servers).await?;
    let q = Queue::new(&zk, &plan.queue_dir());
    let mut drained = Vec::new();
    while let Some(item) = settle("drain", || q.take()).await? {
        drained.push(String::from_utf8_lossy(&item).into_owned());
    }
    let _ = zk.close().await;
    check::check_queue(&ops, &drained, &mut r);
    check::check_lock(&ops, &mut r);
    check::check_consistency(&ops, &format!("{}/r/", plan.prefix), &mut r);
    r.longest_write_gap_ms = check::longest_write_gap(&ops);
    if let Some((heal_ms, bound_s)) = heal {
        check::check_recovery(&ops, heal_ms, bound_s * 1000.0, &mut r);
    }
    Ok(r)
}
