//! One TCP connection to one member: the handshake and the writer half.
//!
//! Reading and writing are decoupled: a small task owns the write half and drains a
//! channel of frames (flushing once per burst, so pipelined requests share syscalls),
//! while the session task reads. The session task therefore never blocks on a full
//! socket while the server blocks writing answers back to it.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::codec::{FramedRead, FramedWrite};
use zabkeeper_proto::frame::Codec;
use zabkeeper_proto::{wire, ErrorCode};

pub(crate) type ClientCodec = Codec<wire::ServerFrame, wire::ClientFrame>;

/// Why an attempt on one member failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AttemptError {
    /// The member answered the handshake with this code.
    Refused(ErrorCode, String),
    /// Could not reach it, it hung up, timed out or spoke nonsense.
    Failed(String),
}

/// An established connection.
pub(crate) struct Conn {
    pub server: String,
    pub accepted: wire::ConnectResponse,
    pub reader: FramedRead<OwnedReadHalf, ClientCodec>,
    pub writer: mpsc::UnboundedSender<wire::ClientFrame>,
    writer_task: JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.writer_task.abort();
    }
}

impl Conn {
    /// Queues a frame for writing; false when the writer has failed.
    pub(crate) fn send(&self, frame: wire::ClientFrame) -> bool {
        self.writer.send(frame).is_ok()
    }
}

/// Connects to `server` and performs the handshake, all within `limit`.
pub(crate) async fn attempt(
    server: &str,
    request: wire::ConnectRequest,
    max_frame: usize,
    limit: Duration,
) -> Result<Conn, AttemptError> {
    match tokio::time::timeout(limit, handshake(server, request, max_frame)).await {
        Ok(r) => r,
        Err(_) => Err(AttemptError::Failed(format!(
            "{server}: no handshake within {limit:?}"
        ))),
    }
}

async fn handshake(
    server: &str,
    request: wire::ConnectRequest,
    max_frame: usize,
) -> Result<Conn, AttemptError> {
    let failed = |what: &str, e: &dyn std::fmt::Display| {
        AttemptError::Failed(format!("{server}: {what}: {e}"))
    };
    let stream = TcpStream::connect(server)
        .await
        .map_err(|e| failed("connect", &e))?;
    stream
        .set_nodelay(true)
        .map_err(|e| failed("set_nodelay", &e))?;
    let (read, write) = stream.into_split();
    let mut reader = FramedRead::new(read, ClientCodec::new(max_frame));
    let mut sink = FramedWrite::new(write, ClientCodec::new(max_frame));
    let hello = wire::ClientFrame {
        kind: Some(wire::client_frame::Kind::Connect(request)),
    };
    sink.send(hello)
        .await
        .map_err(|e| failed("send handshake", &e))?;
    let accepted = match reader.next().await {
        Some(Ok(wire::ServerFrame {
            kind: Some(wire::server_frame::Kind::Connect(resp)),
        })) => resp,
        Some(Ok(other)) => return Err(failed("handshake", &format!("unexpected frame {other:?}"))),
        Some(Err(e)) => return Err(failed("handshake", &e)),
        None => return Err(failed("handshake", &"connection closed")),
    };
    if accepted.error != 0 {
        let code = ErrorCode::from_code(accepted.error).unwrap_or(ErrorCode::SystemError);
        return Err(AttemptError::Refused(code, accepted.message));
    }
    let (writer, mut frames) = mpsc::unbounded_channel::<wire::ClientFrame>();
    let writer_task = tokio::spawn(async move {
        while let Some(frame) = frames.recv().await {
            if sink.feed(frame).await.is_err() {
                return;
            }
            while let Ok(frame) = frames.try_recv() {
                if sink.feed(frame).await.is_err() {
                    return;
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
    });
    Ok(Conn {
        server: server.to_string(),
        accepted,
        reader,
        writer,
        writer_task,
    })
}
