//! `zabkeeper-bench`: a load generator for zabkeeper (not a test: it measures).
//!
//! One session per client, `--pipeline` requests in flight per session, workloads as in
//! the ZooKeeper anchor (`workload.rs`), latency per request in an HDR histogram, and
//! optionally the server's CPU time and memory from `/proc`. `run-standalone.sh` runs the
//! standard matrix against a fresh server.

mod driver;
mod native;
mod procstat;
mod report;
mod session;
mod workload;

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

#[derive(Parser, Debug)]
#[command(name = "zabkeeper-bench", about = "Load generator for zabkeeper")]
struct Args {
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
    /// Server process to read CPU time and RSS of.
    #[arg(long)]
    server_pid: Option<u32>,
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
    /// Connect and request timeout, seconds.
    #[arg(long, default_value_t = 30.0)]
    timeout_s: f64,
    /// Seed for the mixed workload's choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() {
    let args = Args::parse();
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
    match rt.block_on(run(&args)) {
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

fn check(args: &Args) -> Result<(), String> {
    if args.protocol == Protocol::Zookeeper {
        return Err("--protocol zookeeper is not implemented yet (only native)".into());
    }
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

async fn run(args: &Args) -> Result<Report, String> {
    let servers: Vec<&str> = args
        .servers
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if servers.is_empty() {
        return Err("no servers".into());
    }
    let server_cpu_before = args.server_pid.and_then(procstat::cpu_seconds);
    let client_cpu_before = procstat::own_cpu_seconds();
    let timeout = Duration::from_secs_f64(args.timeout_s);

    let mut sessions = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        sessions.push(native::Native::connect(servers[i % servers.len()], timeout).await?);
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
    let outcome = driver::measure(&sessions, &root, &plan).await;
    let cleanup_failures = driver::cleanup(&sessions, &root, &plan, &outcome.issued).await;
    for s in &sessions {
        s.close().await;
    }

    let (ops_per_s, p50_us, p99_us, p999_us, max_us) = report::summarize(&outcome, args.duration_s);
    let rss = args.server_pid.and_then(procstat::rss_kib);
    let delta = |before: Option<f64>, after: Option<f64>| before.zip(after).map(|(b, a)| a - b);
    Ok(Report {
        protocol: "native".into(),
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
        server_cpu_s: delta(
            server_cpu_before,
            args.server_pid.and_then(procstat::cpu_seconds),
        ),
        server_rss_mib: rss.map(|(r, _)| r as f64 / 1024.0),
        server_peak_rss_mib: rss.map(|(_, p)| p as f64 / 1024.0),
        client_cpu_s: delta(client_cpu_before, procstat::own_cpu_seconds()),
        cleanup_failures,
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
    fn zookeeper_protocol_is_refused_clearly_for_now() {
        let err = check(&args(&["--protocol", "zookeeper"])).unwrap_err();
        assert!(err.contains("not implemented"), "{err}");
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
