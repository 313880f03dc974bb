//! `zabkeeper`: the server binary.

use clap::Parser;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use zabkeeper_server::config::{Config, Member};
use zabkeeper_server::server::Server;

/// A ZooKeeper-class coordination service. With no arguments: a standalone server on
/// 127.0.0.1:2281 with its data in ./zabkeeper-data.
///
/// Every flag can also come from an environment variable, `ZABKEEPER_` and the flag's
/// name in capitals with `_` (`--data-dir` is `ZABKEEPER_DATA_DIR`, `--members` is
/// `ZABKEEPER_MEMBERS`): flags win over the environment, which wins over the file.
#[derive(Parser, Debug)]
#[command(name = "zabkeeper", version, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML configuration file; flags given here override its keys.
    #[arg(long, env = "ZABKEEPER_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (config key `data_dir`).
    #[arg(long, env = "ZABKEEPER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Native client port (config key `port`).
    #[arg(long, env = "ZABKEEPER_PORT")]
    port: Option<u16>,
    /// ZooKeeper-protocol port, 0 for none (config key `zk_port`).
    #[arg(long, env = "ZABKEEPER_ZK_PORT")]
    zk_port: Option<u16>,
    /// Native protocol over TLS on this port (config key `tls_port`).
    #[arg(long)]
    tls_port: Option<u16>,
    /// ZooKeeper protocol over TLS on this port (config key `zk_tls_port`).
    #[arg(long)]
    zk_tls_port: Option<u16>,
    /// The plain client ports require TLS too (config key `tls_required`).
    #[arg(long)]
    tls_required: bool,
    /// Server certificate chain, PEM (config key `tls_cert`).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// Private key of the certificate, PEM (config key `tls_key`).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// CA certificate(s) for client and member certificates, PEM (config key `tls_ca`).
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Member-to-member traffic over mutual TLS (config key `peer_tls`).
    #[arg(long)]
    peer_tls: bool,
    /// Address to bind the client ports to (config key `bind`).
    #[arg(long, env = "ZABKEEPER_BIND")]
    bind: Option<IpAddr>,
    /// Tick in milliseconds; session timeouts are negotiated into [2, 20] ticks (config key `tick_ms`).
    #[arg(long, env = "ZABKEEPER_TICK_MS")]
    tick_ms: Option<u64>,
    /// Largest client frame in bytes (config key `max_frame`).
    #[arg(long, env = "ZABKEEPER_MAX_FRAME")]
    max_frame: Option<usize>,
    /// Most client connections at once (config key `max_connections`).
    #[arg(long, env = "ZABKEEPER_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Most client connections from one address, 0 for no limit (config key `max_connections_per_ip`).
    #[arg(long)]
    max_connections_per_ip: Option<usize>,
    /// Requests of one connection awaiting answers before its socket is no longer read
    /// (config key `max_outstanding_requests`).
    #[arg(long)]
    max_outstanding_requests: Option<usize>,
    /// Distinct paths one session may watch (config key `max_watches_per_session`).
    #[arg(long)]
    max_watches_per_session: Option<usize>,
    /// Bytes of notifications a connection that does not read may have queued before it
    /// is closed (config key `max_queued_bytes`).
    #[arg(long)]
    max_queued_bytes: Option<usize>,
    /// Requests per second a session may send before it is cut off, 0 for no limit
    /// (config key `max_session_requests_per_sec`).
    #[arg(long)]
    max_session_requests_per_sec: Option<u64>,
    /// Txns between snapshots (config key `snap_count`).
    #[arg(long, env = "ZABKEEPER_SNAP_COUNT")]
    snap_count: Option<u64>,
    /// Snapshots to keep (config key `snap_retain`).
    #[arg(long, env = "ZABKEEPER_SNAP_RETAIN")]
    snap_retain: Option<usize>,
    /// Interval of the container and TTL check in ms (config key `container_check_ms`).
    #[arg(long, env = "ZABKEEPER_CONTAINER_CHECK_MS")]
    container_check_ms: Option<u64>,
    /// This member's id in an ensemble (config key `id`).
    #[arg(long, env = "ZABKEEPER_ID")]
    id: Option<u64>,
    /// Ensemble members as ID=HOST:PEER_PORT:CLIENT_PORT, comma-separated (config key `members`).
    #[arg(long, env = "ZABKEEPER_MEMBERS", value_delimiter = ',')]
    members: Vec<String>,
    /// Replication tick in ms (config key `zab_tick_ms`).
    #[arg(long, env = "ZABKEEPER_ZAB_TICK_MS")]
    zab_tick_ms: Option<u64>,
    /// Leader silence that starts an election, in ms (config key `election_timeout_ms`).
    #[arg(long, env = "ZABKEEPER_ELECTION_TIMEOUT_MS")]
    election_timeout_ms: Option<u64>,
    /// Txns a leader keeps for syncing followers by DIFF; further behind is SNAP
    /// (config key `sync_diff_window`).
    #[arg(long, env = "ZABKEEPER_SYNC_DIFF_WINDOW")]
    sync_diff_window: Option<usize>,
    /// Changes kept for watches opened from a zxid (config key `watch_history`).
    #[arg(long)]
    watch_history: Option<usize>,
    /// The leader's lease for linearizable reads in ms, 0 = off; below the election
    /// timeout (config key `read_lease_ms`).
    #[arg(long, env = "ZABKEEPER_READ_LEASE_MS")]
    read_lease_ms: Option<u64>,
    /// The super user's digest id, `super:base64(sha1("super:password"))` (config key
    /// `super_digest`): after `addauth digest super:password` every ACL check passes.
    #[arg(long, env = "ZABKEEPER_SUPER_DIGEST")]
    super_digest: Option<String>,
    /// Admin HTTP port for /metrics and /commands/<name>, 0 for none (config key `admin_port`).
    #[arg(long, env = "ZABKEEPER_ADMIN_PORT")]
    admin_port: Option<u16>,
    /// Log filter such as `info` or `zabkeeper_server=debug` (config key `log_level`;
    /// the RUST_LOG environment variable wins).
    #[arg(long, env = "ZABKEEPER_LOG_LEVEL")]
    log_level: Option<String>,
    /// Log format: `text` or `json` (config key `log_format`).
    #[arg(long, env = "ZABKEEPER_LOG_FORMAT")]
    log_format: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Print a running member's id, role, epoch and last zxid. Exit status: 0 when it
    /// serves clients, 3 when it answers but does not serve (no established epoch),
    /// 1 when unreachable. Usable as a container health check.
    Status {
        /// Native client address of the member.
        #[arg(default_value = "127.0.0.1:2281")]
        addr: String,
    },
    #[command(flatten)]
    Tool(zabkeeper_server::tools::Tool),
}

impl Args {
    fn into_config(self) -> Result<Config, zabkeeper_server::error::Error> {
        let mut c = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f { c.$f = v; } )* };
        }
        set!(
            data_dir,
            port,
            zk_port,
            bind,
            tick_ms,
            max_frame,
            max_connections,
            max_connections_per_ip,
            max_outstanding_requests,
            max_watches_per_session,
            max_queued_bytes,
            max_session_requests_per_sec,
            snap_count,
            snap_retain,
            container_check_ms,
            zab_tick_ms,
            election_timeout_ms,
            sync_diff_window,
            watch_history,
            admin_port,
            log_format
        );
        if self.read_lease_ms.is_some() {
            c.read_lease_ms = self.read_lease_ms;
        }
        if self.log_level.is_some() {
            c.log_level = self.log_level;
        }
        if self.id.is_some() {
            c.id = self.id;
        }
        set!(tls_port, zk_tls_port);
        for (flag, key) in [
            (self.tls_cert, &mut c.tls_cert),
            (self.tls_key, &mut c.tls_key),
            (self.tls_ca, &mut c.tls_ca),
        ] {
            if flag.is_some() {
                *key = flag;
            }
        }
        c.tls_required |= self.tls_required;
        c.peer_tls |= self.peer_tls;
        if self.super_digest.is_some() {
            c.super_digest = self.super_digest;
        }
        if !self.members.is_empty() {
            c.members = self
                .members
                .iter()
                .map(|m| Member::parse(m))
                .collect::<Result<_, _>>()?;
        }
        c.validate()?;
        Ok(c)
    }
}

/// `zabkeeper status ADDR`: one probe frame, one answer.
fn status(addr: &str) -> ExitCode {
    use futures::{SinkExt, StreamExt};
    use zabkeeper_proto::wire;
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zabkeeper: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        let probe = async {
            let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
            let mut io = tokio_util::codec::Framed::new(
                stream,
                zabkeeper_proto::frame::Codec::<wire::ServerFrame, wire::ClientFrame>::new(1 << 20),
            );
            let frame = wire::ClientFrame {
                kind: Some(wire::client_frame::Kind::Probe(wire::Empty {})),
            };
            io.send(frame).await.ok()?;
            match io.next().await {
                Some(Ok(wire::ServerFrame {
                    kind: Some(wire::server_frame::Kind::Response(r)),
                })) => match r.result {
                    Some(wire::response::Result::ServerState(s)) => Some(s),
                    _ => None,
                },
                _ => None,
            }
        };
        match tokio::time::timeout(std::time::Duration::from_secs(5), probe).await {
            Ok(Some(s)) => {
                println!(
                    "{addr} id={} role={} epoch={} zxid={:#x} serving={}",
                    s.id, s.role, s.epoch, s.last_zxid, s.serving
                );
                if s.serving {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(3)
                }
            }
            _ => {
                println!("{addr} unreachable");
                ExitCode::FAILURE
            }
        }
    })
}

/// Logs to standard error: the filter from RUST_LOG, else `log_level`, else `info`;
/// `log_format = "json"` gives one JSON object per line.
fn init_logging(level: Option<&str>, format: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .ok()
        .or_else(|| level.and_then(|l| EnvFilter::try_new(l).ok()))
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init();
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match args.command {
        Some(Command::Status { addr }) => {
            init_logging(Some("warn"), "text");
            return status(&addr);
        }
        Some(Command::Tool(tool)) => {
            init_logging(Some("warn"), "text");
            return zabkeeper_server::tools::run(tool);
        }
        None => {}
    }
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zabkeeper: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(config.log_level.as_deref(), &config.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zabkeeper: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    zabkeeper_server::memory_trim::spawn();
    runtime.block_on(async move {
        let server = match Server::start(config).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
        wait_for_signal().await;
        tracing::info!("shutting down");
        server.shutdown().await;
        tracing::info!("stopped");
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
