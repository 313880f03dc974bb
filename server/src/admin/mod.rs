//! The admin HTTP port: Prometheus metrics, JSON commands in the spirit of
//! ZooKeeper's AdminServer, and consistent backups.
//!
//! Routes (GET, HTTP/1.1, on `bind:admin_port`; `admin_port = 0` turns it off):
//! * `/metrics`: Prometheus text format (see `metrics.rs`).
//! * `/commands`: the command names; `/commands/<name>`: one JSON object per
//!   command (`commands.rs`): `ruok`, `stat`, `srvr`, `conf`, `cons`, `leader`,
//!   `voting_view`, `wchs`, `snapshot` (takes one now and answers when written).
//! * `/backup`: the tree as a snapshot file (the data directory's own format,
//!   CRC-checked), consistent at the zxid in its header. A member first syncs
//!   with the leader (as the `sync` request does), so the backup holds every write
//!   acknowledged anywhere before the request arrived; `zabkeeper backup` saves it
//!   and `zabkeeper restore` turns it into a data directory.
//!
//! hyper 1.x serves it directly (no framework): a handful of GET routes, each a
//! read of the core, do not need routing or middleware layers. Commands that
//! wait (snapshot, backup) do so on their own connection task, never in the
//! pipeline.

mod commands;

use crate::core::Core;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

pub use commands::COMMANDS;

/// Binds the admin port unless it is 0.
pub async fn bind(config: &crate::config::Config) -> crate::error::Result<Option<TcpListener>> {
    match config.admin_port {
        0 => Ok(None),
        port => Ok(Some(TcpListener::bind((config.bind, port)).await?)),
    }
}

/// Serves admin requests until shutdown.
pub async fn serve(listener: TcpListener, core: Arc<Core>, shutdown: CancellationToken) {
    loop {
        let (stream, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let core = core.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let core = core.clone();
                async move { Ok::<_, Infallible>(route(&core, req).await) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::select! {
                r = conn => if let Err(e) = r {
                    debug!(%peer, error = %e, "admin connection ended");
                },
                _ = shutdown.cancelled() => {}
            }
        });
    }
}

type Reply = Response<Full<Bytes>>;

fn reply(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Reply {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

fn json(status: StatusCode, value: &serde_json::Value) -> Reply {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    reply(status, "application/json", text)
}

async fn route(core: &Arc<Core>, req: Request<hyper::body::Incoming>) -> Reply {
    if req.method() != Method::GET {
        return json(
            StatusCode::METHOD_NOT_ALLOWED,
            &serde_json::json!({"error": "only GET is served"}),
        );
    }
    let path = req.uri().path().trim_end_matches('/');
    match path {
        "/metrics" => reply(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            core.metrics.encode(&core.gauges()),
        ),
        "/commands" | "" => json(StatusCode::OK, &serde_json::json!({ "commands": COMMANDS })),
        "/backup" => match commands::backup(core).await {
            Ok((zxid, file)) => {
                let mut r = reply(StatusCode::OK, "application/octet-stream", file);
                if let Ok(v) = format!("{zxid:#x}").parse() {
                    r.headers_mut().insert("x-zabkeeper-zxid", v);
                }
                r
            }
            Err(e) => json(
                StatusCode::SERVICE_UNAVAILABLE,
                &serde_json::json!({"error": e}),
            ),
        },
        other => match other.strip_prefix("/commands/") {
            Some(name) => match commands::run(core, name).await {
                Some(Ok(v)) => json(StatusCode::OK, &v),
                Some(Err(e)) => json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    &serde_json::json!({"command": name, "error": e}),
                ),
                None => json(
                    StatusCode::NOT_FOUND,
                    &serde_json::json!({"error": format!("unknown command `{name}`"), "commands": COMMANDS}),
                ),
            },
            None => json(
                StatusCode::NOT_FOUND,
                &serde_json::json!({"error": format!("no route {other}")}),
            ),
        },
    }
}
