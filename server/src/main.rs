//! `zabkeeper`: the server binary.

use clap::Parser;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use zabkeeper_server::config::Config;
use zabkeeper_server::server::Server;

/// A ZooKeeper-class coordination service. With no arguments: a standalone server on
/// 127.0.0.1:2281 with its data in ./zabkeeper-data.
#[derive(Parser, Debug)]
#[command(name = "zabkeeper", version)]
struct Args {
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
            container_check_ms
        );
        c.validate()?;
        Ok(c)
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = match Args::parse().into_config() {
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
