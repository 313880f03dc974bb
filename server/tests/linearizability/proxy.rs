//! A userspace TCP proxy for one directed peer link (member i dials member j
//! through it), which the test cuts and heals with real TCP effects:
//!
//! - `Up`: bytes flow.
//! - `Paused`: nothing is read from either side, so bytes wait in the kernel
//!   buffers and the sender's writes eventually block: a silent partition, as a
//!   network that drops packets looks to TCP before it gives up. Healing lets
//!   the stream resume where it stopped (no gap).
//! - `Down`: every connection through the proxy is closed and new ones are
//!   closed at once: a partition that the ends notice (reset).

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Up,
    Paused,
    Down,
}

pub struct Proxy {
    pub port: u16,
    mode: watch::Sender<Mode>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (mode, rx) = watch::channel(Mode::Up);
        let task = tokio::spawn(async move {
            loop {
                let Ok((conn, _)) = listener.accept().await else {
                    return;
                };
                if *rx.borrow() == Mode::Down {
                    drop(conn);
                    continue;
                }
                tokio::spawn(pipe(conn, target, rx.clone()));
            }
        });
        Proxy { port, mode, task }
    }

    pub fn set(&self, m: Mode) {
        self.mode.send_replace(m);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
        self.mode.send_replace(Mode::Down);
    }
}

async fn pipe(inbound: TcpStream, target: SocketAddr, rx: watch::Receiver<Mode>) {
    let Ok(outbound) = TcpStream::connect(target).await else {
        return;
    };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    let (ir, iw) = inbound.into_split();
    let (or, ow) = outbound.into_split();
    // Either direction ending (closed, or Down) ends both: dropping the halves
    // closes both connections.
    tokio::select! {
        _ = copy(ir, ow, rx.clone()) => {}
        _ = copy(or, iw, rx) => {}
    }
}

async fn copy(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut rx: watch::Receiver<Mode>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let mode = *rx.borrow_and_update();
        match mode {
            Mode::Down => return,
            Mode::Paused => {
                if rx.changed().await.is_err() {
                    return;
                }
            }
            Mode::Up => {
                tokio::select! {
                    r = from.read(&mut buf) => match r {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if to.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    },
                    c = rx.changed() => if c.is_err() { return },
                }
            }
        }
    }
}
