//! `zabkeeper`: the server binary.

use clap::Parser;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use zabkeeper_server::config::{Config, Member};
use zabkeeper_server::server::Server;

/// A ZooKeeper-class coordination service. With no arguments: a standalone server on
/// 127.0.0.1:2281 with its data in ./zabkeeper-data.
#[derive(Parser, Debug)]
#[command(name = "zabkeeper", version, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// TOML configuration file; flags given here override its keys.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory (config key `data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Native client port (config key `port`).
    #[arg(long)]
    port: Option<u16>,
    /// ZooKeeper-protocol port, 0 for none (config key `zk_port`).
    #[arg(long)]
    zk_port: Option<u16>,
    /// Address to bind the client ports to (config key `bind`).
    #[arg(long)]
    bind: Option<IpAddr>,
    /// Tick in milliseconds; session timeouts are negotiated into [2, 20] ticks (config key `tick_ms`).
    #[arg(long)]
    tick_ms: Option<u64>,
    /// Largest client frame in bytes (config key `max_frame`).
    #[arg(long)]
    max_frame: Option<usize>,
    /// Most client connections at once (config key `max_connections`).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Txns between snapshots (config key `snap_count`).
    #[arg(long)]
    snap_count: Option<u64>,
    /// Snapshots to keep (config key `snap_retain`).
    #[arg(long)]
    snap_retain: Option<usize>,
    /// Interval of the container and TTL check in ms (config key `container_check_ms`).
    #[arg(long)]
    container_check_ms: Option<u64>,
    /// This member's id in an ensemble (config key `id`).
    #[arg(long)]
    id: Option<u64>,
    /// Ensemble members as ID=HOST:PEER_PORT:CLIENT_PORT, comma-separated (config key `members`).
    #[arg(long, value_delimiter = ',')]
    members: Vec<String>,
    /// Replication tick in ms (config key `zab_tick_ms`).
    #[arg(long)]
    zab_tick_ms: Option<u64>,
    /// Leader silence that starts an election, in ms (config key `election_timeout_ms`).
    #[arg(long)]
    election_timeout_ms: Option<u64>,
    /// Txns a leader keeps for syncing followers by DIFF; further behind is SNAP
    /// (config key `sync_diff_window`).
    #[arg(long)]
    sync_diff_window: Option<usize>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Print a running member's id, role, epoch and last zxid (exit 1 if unreachable).
    Status {
        /// Native client address of the member.
        #[arg(default_value = "127.0.0.1:2281")]
        addr: String,
    },
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
            snap_count,
            snap_retain,
            container_check_ms,
            zab_tick_ms,
            election_timeout_ms,
            sync_diff_window
        );
        if self.id.is_some() {
            c.id = self.id;
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
                ExitCode::SUCCESS
            }
            _ => {
                println!("{addr} unreachable");
                ExitCode::FAILURE
            }
        }
    })
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let args = Args::parse();
    if let Some(Command::Status { addr }) = &args.command {
        return status(addr);
    }
    let config = match args.into_config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("zabkeeper: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("zabkeeper: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
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
