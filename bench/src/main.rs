//! `zabkeeper-bench`: a load generator for zabkeeper (not a test: it measures).
//!
//! One session per client, `--pipeline` requests in flight per session, workloads as in
//! the ZooKeeper anchor (`workload.rs`), latency per request in an HDR histogram, and
//! optionally the server's CPU time and memory from `/proc`. `run-standalone.sh` runs the
//! standard matrix against a fresh server, `compare.sh` the side-by-side matrix against
//! Apache ZooKeeper, `targets.sh` the start-up, fsync and memory targets.
//!
//! Subcommands for those targets: `fsync-probe` (the disk's cost of one durable write,
//! `probe.rs`), `wait-serving` (launch to serving, `serving.rs`) and `populate` (a big tree,
//! `populate.rs`).

mod driver;
mod native;
mod populate;
mod probe;
mod procstat;
mod report;
mod serving;
mod session;
mod workload;
mod zookeeper;

use clap::{Parser, ValueEnum};
use driver::Plan;
use report::Report;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use workload::OpKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Protocol {
    Native,
    Zookeeper,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// `size` bytes then fdatasync, `count` times, in a fresh file in `dir`; prints the
    /// latency percentiles of a growing file and of a preallocated one.
    FsyncProbe {
        #[arg(long, default_value = ".")]
        dir: std::path::PathBuf,
        #[arg(long, default_value_t = 1024)]
        size: usize,
        #[arg(long, default_value_t = 2000)]
        count: usize,
    },
    /// Waits until every server acknowledges a create from a fresh session; prints the ms
    /// from `--since-unix-ms` (the launch) to when the last one did.
    WaitServing {
        #[arg(long)]
        servers: String,
        #[arg(long, value_enum, default_value_t = Protocol::Native)]
        protocol: Protocol,
        #[arg(long)]
        since_unix_ms: u128,
        #[arg(long, default_value_t = 60.0)]
        timeout_s: f64,
    },
    /// Creates `parents` x `children` nodes of `value-size` bytes under `--root`; prints
    /// nodes created, seconds and nodes/s.
    Populate {
        #[arg(long)]
        servers: String,
        #[arg(long, value_enum, default_value_t = Protocol::Native)]
        protocol: Protocol,
        #[arg(long, default_value = "/populate")]
        root: String,
        #[arg(long, default_value_t = 1000)]
        parents: u64,
        #[arg(long, default_value_t = 1000)]
        children: u64,
        #[arg(long, default_value_t = 100)]
        value_size: usize,
        #[arg(long, default_value_t = 4)]
        clients: usize,
        #[arg(long, default_value_t = 64)]
        pipeline: usize,
    },
}

/// Read consistency of the native client's reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Consistency {
    /// ZooKeeper's: served by the connected member after the session's writes.
    Session,
    /// Linearizable: the leader's lease or a read-index round (native protocol only).
    Linearizable,
}

#[derive(Parser, Debug)]
#[command(
    name = "zabkeeper-bench",
    about = "Load generator for zabkeeper",
    args_conflicts_with_subcommands = true
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Servers; client i connects to server i mod n.
    #[arg(long, default_value = "127.0.0.1:2281")]
    servers: String,
    /// Sessions (one per client).
    #[arg(long, default_value_t = 1)]
    clients: usize,
    /// Requests in flight per session.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    #[arg(long, value_enum, default_value_t = OpKind::Set)]
    op: OpKind,
    /// Value size in bytes for create / set.
    #[arg(long, default_value_t = 1024)]
    value_size: usize,
    /// Share of reads in `mixed`.
    #[arg(long, default_value_t = 0.9)]
    read_ratio: f64,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration_s: f64,
    /// Unmeasured seconds before the window.
    #[arg(long, default_value_t = 2.0)]
    warmup_s: f64,
    /// Server process(es) to read CPU time and RSS of (comma-separated or repeated: the
    /// figures are summed over them, e.g. over every member of an ensemble).
    #[arg(long, value_delimiter = ',')]
    server_pid: Vec<u32>,
    /// Print one JSON line instead of text.
    #[arg(long)]
    json: bool,
    /// Print one Markdown table row (anchor table columns) with this topology label.
    #[arg(long, value_name = "TOPOLOGY")]
    markdown: Option<String>,
    /// Print the Markdown table header and exit.
    #[arg(long)]
    markdown_header: bool,
    #[arg(long, value_enum, default_value_t = Protocol::Native)]
    protocol: Protocol,
    /// Consistency of reads (get, and the reads of `mixed`).
    #[arg(long, value_enum, default_value_t = Consistency::Session)]
    consistency: Consistency,
    /// Connect and request timeout, seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout_s: f64,
    /// Seed for the mixed workload's choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Read through the client cache of this many entries (0: off; native only); the
    /// report gives its hit rate. Writes (in `mixed`) invalidate it as they would any
    /// client's.
    #[arg(long, default_value_t = 0)]
    cache: usize,
}

fn main() {
    let args = Args::parse();
    if let Some(cmd) = &args.command {
        std::process::exit(subcommand(cmd));
    }
    if args.markdown_header {
        println!("{}", Report::MARKDOWN_HEADER);
        return;
    }
    if let Err(msg) = check(&args) {
        eprintln!("zabkeeper-bench: {msg}");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads.max(1))
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = match args.protocol {
        Protocol::Native => rt.block_on(run::<native::Native>(&args)),
        Protocol::Zookeeper => rt.block_on(run::<zookeeper::Zookeeper>(&args)),
    };
    match result {
        Ok(report) => {
            if args.json {
                println!("{}", report.json());
            } else if let Some(topology) = &args.markdown {
                println!("{}", report.markdown_row(topology));
            } else {
                print!("{}", report.text());
            }
        }
        Err(msg) => {
            eprintln!("zabkeeper-bench: {msg}");
            std::process::exit(1);
        }
    }
}

fn servers_list(servers: &str) -> Vec<&str> {
    servers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Runs a subcommand; returns the exit status.
fn subcommand(cmd: &Command) -> i32 {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result: Result<String, String> = match cmd {
        Command::FsyncProbe { dir, size, count } => probe::run(dir, *size, (*count).max(1))
            .map(|results| {
                let mut s = String::new();
                for r in results {
                    s.push_str(&format!(
                        "fsync-probe {} {} B x {}: p50 {} us  p99 {} us  p99.9 {} us  max {} us\n",
                        r.shape,
                        size,
                        r.hist.len(),
                        r.hist.value_at_quantile(0.5),
                        r.hist.value_at_quantile(0.99),
                        r.hist.value_at_quantile(0.999),
                        r.hist.max()
                    ));
                }
                s.trim_end().to_string()
            })
            .map_err(|e| format!("fsync-probe in {}: {e}", dir.display())),
        Command::WaitServing {
            servers,
            protocol,
            since_unix_ms,
            timeout_s,
        } => {
            let list = servers_list(servers);
            let timeout = Duration::from_secs_f64(timeout_s.max(0.001));
            let done = match protocol {
                Protocol::Native => rt.block_on(serving::wait::<native::Native>(&list, timeout)),
                Protocol::Zookeeper => {
                    rt.block_on(serving::wait::<zookeeper::Zookeeper>(&list, timeout))
                }
            };
            done.map(|t| t.saturating_sub(*since_unix_ms).to_string())
        }
        Command::Populate {
            servers,
            protocol,
            root,
            parents,
            children,
            value_size,
            clients,
            pipeline,
        } => {
            let shape = populate::Shape {
                root: root.clone(),
                parents: *parents,
                children: *children,
                value_size: *value_size,
                pipeline: *pipeline,
            };
            let list = servers_list(servers);
            let made = match protocol {
                Protocol::Native => {
                    rt.block_on(populate_with::<native::Native>(&list, *clients, &shape))
                }
                Protocol::Zookeeper => rt.block_on(populate_with::<zookeeper::Zookeeper>(
                    &list, *clients, &shape,
                )),
            };
            made.map(|(n, secs)| {
                format!(
                    "populate: {n} nodes in {secs:.1} s ({:.0} nodes/s)",
                    n as f64 / secs
                )
            })
        }
    };
    match result {
        Ok(text) => {
            println!("{text}");
            0
        }
        Err(msg) => {
            eprintln!("zabkeeper-bench: {msg}");
            1
        }
    }
}

async fn populate_with<S: Connect>(
    servers: &[&str],
    clients: usize,
    shape: &populate::Shape,
) -> Result<(u64, f64), String> {
    if servers.is_empty() {
        return Err("no servers".into());
    }
    let mut sessions = Vec::new();
    for i in 0..clients.max(1) {
        sessions.push(S::open(servers[i % servers.len()], Duration::from_secs(60)).await?);
    }
    let made = populate::run(&sessions, shape).await;
    for s in &sessions {
        s.shut().await;
    }
    made
}

fn check(args: &Args) -> Result<(), String> {
    if args.clients == 0 || args.pipeline == 0 {
        return Err("--clients and --pipeline must be at least 1".into());
    }
    if !(0.0..=1.0).contains(&args.read_ratio) {
        return Err("--read-ratio must be within 0..1".into());
    }
    let positive = |x: f64| x.is_finite() && x > 0.0;
    let valid = positive(args.duration_s)
        && positive(args.timeout_s)
        && args.warmup_s.is_finite()
        && args.warmup_s >= 0.0;
    if !valid {
        return Err("--duration-s and --timeout-s must be > 0, --warmup-s >= 0".into());
    }
    if args.value_size > zabkeeper_proto::DEFAULT_MAX_FRAME {
        return Err("--value-size is larger than a frame".into());
    }
    Ok(())
}

/// How the bench opens and closes a session of each protocol.
pub(crate) trait Connect: session::Session {
    const PROTOCOL: &'static str;
    fn open(
        server: &str,
        timeout: Duration,
    ) -> impl std::future::Future<Output = Result<Self, String>> + Send;
    fn shut(&self) -> impl std::future::Future<Output = ()> + Send;
    /// The same session with linearizable reads, where the protocol has them.
    fn linearizable(self) -> Result<Self, String> {
        Err(format!(
            "--consistency linearizable needs --protocol native, not {}",
            Self::PROTOCOL
        ))
    }
    /// Opens a session whose reads go through a client cache of `entries`.
    fn open_cached(
        server: &str,
        timeout: Duration,
        entries: usize,
    ) -> impl std::future::Future<Output = Result<Self, String>> + Send {
        let _ = (server, timeout, entries);
        let msg = format!("--cache needs --protocol native, not {}", Self::PROTOCOL);
        async move { Err(msg) }
    }
    /// (hits, misses) of the client cache, where there is one.
    fn cache_counts(&self) -> Option<(u64, u64)> {
        None
    }
}

impl Connect for native::Native {
    const PROTOCOL: &'static str = "native";
    async fn open(server: &str, timeout: Duration) -> Result<Self, String> {
        native::Native::connect(server, timeout, 0).await
    }
    async fn open_cached(server: &str, timeout: Duration, entries: usize) -> Result<Self, String> {
        native::Native::connect(server, timeout, entries).await
    }
    fn cache_counts(&self) -> Option<(u64, u64)> {
        native::Native::cache_counts(self)
    }
    async fn shut(&self) {
        self.close().await
    }
    fn linearizable(self) -> Result<Self, String> {
        Ok(self.linearizable_reads())
    }
}

impl Connect for zookeeper::Zookeeper {
    const PROTOCOL: &'static str = "zookeeper";
    async fn open(server: &str, timeout: Duration) -> Result<Self, String> {
        zookeeper::Zookeeper::connect(server, timeout).await
    }
    async fn shut(&self) {
        self.close().await
    }
}

async fn run<S: Connect>(args: &Args) -> Result<Report, String> {
    let servers: Vec<&str> = args
        .servers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if servers.is_empty() {
        return Err("no servers".into());
    }
    let pids = &args.server_pid;
    let server_cpu_before = procstat::cpu_seconds_sum(pids);
    let client_cpu_before = procstat::own_cpu_seconds();
    let timeout = Duration::from_secs_f64(args.timeout_s);

    let mut sessions = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let server = servers[i % servers.len()];
        let s = if args.cache > 0 {
            S::open_cached(server, timeout, args.cache).await?
        } else {
            S::open(server, timeout).await?
        };
        sessions.push(match args.consistency {
            Consistency::Session => s,
            Consistency::Linearizable => s.linearizable()?,
        });
    }
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let root = format!("/zkbench-{}-{millis}", std::process::id());
    let plan = Plan {
        op: args.op,
        pipeline: args.pipeline,
        value_size: args.value_size,
        read_ratio: args.read_ratio,
        warmup: Duration::from_secs_f64(args.warmup_s),
        duration: Duration::from_secs_f64(args.duration_s),
        seed: args.seed,
    };
    driver::setup(&sessions, &root, &plan)
        .await
        .map_err(|e| format!("setup: {e}"))?;
    // Server CPU over the measured window only, for CPU per request.
    let t0 = tokio::time::Instant::now();
    let window_cpu = async {
        tokio::time::sleep_until(t0 + plan.warmup).await;
        let before = procstat::cpu_seconds_sum(pids);
        tokio::time::sleep_until(t0 + plan.warmup + plan.duration).await;
        before
            .zip(procstat::cpu_seconds_sum(pids))
            .map(|(b, a)| a - b)
    };
    let (outcome, server_cpu_window_s) =
        tokio::join!(driver::measure(&sessions, &root, &plan), window_cpu);
    let counts: Vec<(u64, u64)> = sessions.iter().filter_map(|s| s.cache_counts()).collect();
    let (cache_hits, cache_misses) = if args.cache > 0 {
        (
            Some(counts.iter().map(|c| c.0).sum()),
            Some(counts.iter().map(|c| c.1).sum()),
        )
    } else {
        (None, None)
    };
    let cleanup_failures = driver::cleanup(&sessions, &root, &plan, &outcome.issued).await;
    for s in &sessions {
        s.shut().await;
    }

    let (ops_per_s, p50_us, p99_us, p999_us, max_us) = report::summarize(&outcome, args.duration_s);
    let rss = procstat::rss_kib_sum(pids);
    let delta = |before: Option<f64>, after: Option<f64>| before.zip(after).map(|(b, a)| a - b);
    Ok(Report {
        protocol: S::PROTOCOL.into(),
        servers: args.servers.clone(),
        op: args.op,
        clients: args.clients,
        pipeline: args.pipeline,
        value_size: args.value_size,
        read_ratio: args.read_ratio,
        warmup_s: args.warmup_s,
        duration_s: args.duration_s,
        ok: outcome.ok,
        errors: outcome.errors,
        ops_per_s,
        p50_us,
        p99_us,
        p999_us,
        max_us,
        first_error: outcome.first_error.clone(),
        server_cpu_s: delta(server_cpu_before, procstat::cpu_seconds_sum(pids)),
        server_cpu_window_s,
        server_cpu_us_per_op: server_cpu_window_s
            .filter(|_| outcome.ok > 0)
            .map(|s| s * 1e6 / outcome.ok as f64),
        server_rss_mib: rss.map(|(r, _)| r as f64 / 1024.0),
        server_peak_rss_mib: rss.map(|(_, p)| p as f64 / 1024.0),
        client_cpu_s: delta(client_cpu_before, procstat::own_cpu_seconds()),
        cleanup_failures,
        cache_hits,
        cache_misses,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("zabkeeper-bench").chain(extra.iter().copied()))
            .unwrap()
    }

    #[test]
    fn defaults_match_the_anchor_runs() {
        let a = args(&[]);
        assert_eq!(a.servers, "127.0.0.1:2281");
        assert_eq!((a.clients, a.pipeline, a.value_size), (1, 1, 1024));
        assert_eq!((a.read_ratio, a.duration_s, a.warmup_s), (0.9, 10.0, 2.0));
        assert_eq!(a.protocol, Protocol::Native);
        assert!(check(&a).is_ok());
    }

    #[test]
    fn zookeeper_protocol_is_accepted() {
        let a = args(&["--protocol", "zookeeper", "--servers", "127.0.0.1:2181"]);
        assert_eq!(a.protocol, Protocol::Zookeeper);
        assert!(check(&a).is_ok());
    }

    #[test]
    fn bad_numbers_are_refused() {
        for bad in [
            &["--clients", "0"][..],
            &["--pipeline", "0"],
            &["--read-ratio", "1.5"],
            &["--duration-s", "0"],
            &["--warmup-s=-1"],
            &["--value-size", "99999999"],
        ] {
            assert!(check(&args(bad)).is_err(), "{bad:?}");
        }
        assert!(Args::try_parse_from(["zabkeeper-bench", "--op", "frob"]).is_err());
    }
}
