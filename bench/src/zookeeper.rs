//! [`Session`] over ZooKeeper's own client protocol (`--protocol zookeeper`), written on the
//! project's `jute` crate, so one load generator drives zabkeeper's ZooKeeper port and Apache
//! ZooKeeper with byte-for-byte the same requests.
//!
//! Why not a ZooKeeper client crate: the bench needs nothing but framing, the handshake and
//! five request kinds, and `jute` already has every record (it is what the server's ZooKeeper
//! front-end decodes with); a thin client here also keeps the client-side cost per request
//! small and the same for both servers, which matters when client and servers share 2 cores.
//!
//! One TCP connection per session. A caller takes the next xid and queues its frame under one
//! lock, so frames go out in xid order; a writer task drains the queue and writes whatever is
//! queued in one `write_all` (pipelined requests share a syscall). A reader task matches each
//! reply to its request by xid (ZooKeeper answers a session's requests in order, but matching
//! by xid does not depend on it). A ping goes out every third of the session timeout. When the
//! connection breaks, every waiting request fails with the reason and later ones fail at once.

use crate::session::{Fail, Session};
use bytes::Bytes;
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;
use zabkeeper_jute::{
    decode_reply, encode_connect_request, encode_request, Acl, ConnectRequest, ConnectResponse,
    CreateRequest, DeleteRequest, FrameCodec, GetDataRequest, Id, Inbound, MultiOp, MultiResult,
    OpCode, Record, Request, Response, SetDataRequest, PING_XID, ZK_MAX_BUFFER,
};

/// Session timeout asked for, ms (the server negotiates it into its own bounds).
const SESSION_TIMEOUT_MS: i32 = 30_000;
/// ZooKeeper's NoNode.
const NO_NODE: i32 = -101;

type Reply = Result<(i32, Response), String>;

struct Shared {
    /// Next xid and the requests waiting for their reply, under one lock with the queueing
    /// so that frames are queued in xid order.
    state: Mutex<State>,
    closed: AtomicBool,
    timeout: Duration,
}

struct State {
    next_xid: i32,
    pending: HashMap<i32, (OpCode, oneshot::Sender<Reply>)>,
    /// `None` once the connection broke: the reason.
    broken: Option<String>,
    out: mpsc::UnboundedSender<Vec<u8>>,
}

#[derive(Clone)]
pub struct Zookeeper {
    shared: Arc<Shared>,
}

impl Zookeeper {
    pub async fn connect(server: &str, timeout: Duration) -> Result<Zookeeper, String> {
        let fail = |e: String| format!("{server}: {e}");
        let stream = tokio::time::timeout(timeout, TcpStream::connect(server))
            .await
            .map_err(|_| fail("connect timed out".into()))?
            .map_err(|e| fail(e.to_string()))?;
        stream.set_nodelay(true).map_err(|e| fail(e.to_string()))?;
        let (read, mut write) = stream.into_split();
        let hello = ConnectRequest {
            protocol_version: 0,
            last_zxid_seen: 0,
            time_out: SESSION_TIMEOUT_MS,
            session_id: 0,
            passwd: vec![0; 16],
            read_only: Some(false),
        };
        write
            .write_all(&encode_connect_request(&hello))
            .await
            .map_err(|e| fail(e.to_string()))?;
        let mut frames = FramedRead::new(read, FrameCodec::client(ZK_MAX_BUFFER + 1024));
        let first = tokio::time::timeout(timeout, frames.next())
            .await
            .map_err(|_| fail("no answer to the handshake".into()))?;
        let answer = match first {
            Some(Ok(Inbound::Frame(payload))) => {
                ConnectResponse::decode(&mut zabkeeper_jute::Reader::new(&payload))
                    .map_err(|e| fail(format!("bad handshake answer: {e}")))?
            }
            Some(Ok(Inbound::FourLetterWord(w))) => {
                return Err(fail(format!("unexpected {w} in a client connection")))
            }
            Some(Err(e)) => return Err(fail(e.to_string())),
            None => return Err(fail("closed during the handshake".into())),
        };
        if answer.session_id == 0 || answer.time_out <= 0 {
            return Err(fail("session refused".into()));
        }

        let (out, mut queue) = mpsc::unbounded_channel::<Vec<u8>>();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                next_xid: 1,
                pending: HashMap::new(),
                broken: None,
                out,
            }),
            closed: AtomicBool::new(false),
            timeout,
        });

        // Writer: everything queued so far in one write.
        let writer_shared = shared.clone();
        tokio::spawn(async move {
            let mut buf = Vec::with_capacity(64 * 1024);
            while let Some(frame) = queue.recv().await {
                buf.clear();
                buf.extend_from_slice(&frame);
                while let Ok(more) = queue.try_recv() {
                    buf.extend_from_slice(&more);
                }
                if let Err(e) = write.write_all(&buf).await {
                    writer_shared.broke(format!("write: {e}"));
                    return;
                }
            }
        });

        // Reader: match replies to requests.
        let reader_shared = shared.clone();
        tokio::spawn(async move {
            let why = loop {
                match frames.next().await {
                    Some(Ok(Inbound::Frame(payload))) => {
                        let mut sender = None;
                        let decoded = decode_reply(&payload, |xid| {
                            let mut st = reader_shared.state.lock().unwrap();
                            st.pending.remove(&xid).map(|(op, tx)| {
                                sender = Some(tx);
                                op
                            })
                        });
                        match decoded {
                            Ok((header, resp)) => {
                                if let Some(tx) = sender {
                                    let _ = tx.send(Ok((header.err, resp)));
                                }
                            }
                            Err(e) => break format!("bad reply: {e}"),
                        }
                    }
                    Some(Ok(Inbound::FourLetterWord(_))) => break "unexpected data".into(),
                    Some(Err(e)) => break format!("read: {e}"),
                    None => break "connection closed by the server".into(),
                }
            };
            reader_shared.broke(why);
        });

        // Pings keep the session alive when idle.
        let ping_shared = Arc::downgrade(&shared);
        let every = Duration::from_millis(answer.time_out as u64 / 3);
        tokio::spawn(async move {
            let ping = encode_request(PING_XID, &Request::Ping);
            loop {
                tokio::time::sleep(every).await;
                let Some(s) = ping_shared.upgrade() else {
                    return;
                };
                if s.closed.load(Ordering::Relaxed) {
                    return;
                }
                let st = s.state.lock().unwrap();
                if st.broken.is_some() || st.out.send(ping.clone()).is_err() {
                    return;
                }
            }
        });
        Ok(Zookeeper { shared })
    }

    /// Sends one request and waits for its reply: (err, body).
    async fn call(&self, req: Request) -> Reply {
        let op = OpCode::from_i32(req.op()).ok_or("unknown opcode")?;
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.shared.state.lock().unwrap();
            if let Some(why) = &st.broken {
                return Err(why.clone());
            }
            let xid = st.next_xid;
            st.next_xid = st.next_xid.wrapping_add(1).max(1);
            st.pending.insert(xid, (op, tx));
            if st.out.send(encode_request(xid, &req)).is_err() {
                st.pending.remove(&xid);
                return Err("connection closed".into());
            }
        }
        match tokio::time::timeout(self.shared.timeout, rx).await {
            Ok(Ok(reply)) => reply,
            Ok(Err(_)) => Err("connection closed".into()),
            Err(_) => Err("request timed out".into()),
        }
    }

    /// Closes the session (closeSession, then the connection).
    pub async fn close(&self) {
        let _ = self.call(Request::CloseSession).await;
        self.shared.closed.store(true, Ordering::Relaxed);
        self.shared.broke("session closed".into());
    }

    async fn expect_ok(&self, req: Request) -> Result<Response, Fail> {
        match self.call(req).await {
            Ok((0, resp)) => Ok(resp),
            Ok((NO_NODE, _)) => Err(Fail::NoNode),
            Ok((err, _)) => Err(Fail::Other(error_text(err))),
            Err(e) => Err(Fail::Other(e)),
        }
    }
}

impl Shared {
    /// Marks the connection broken and fails every waiting request.
    fn broke(&self, why: String) {
        let pending = {
            let mut st = self.state.lock().unwrap();
            st.broken.get_or_insert(why.clone());
            std::mem::take(&mut st.pending)
        };
        for (_, (_, tx)) in pending {
            let _ = tx.send(Err(why.clone()));
        }
    }
}

fn error_text(err: i32) -> String {
    match zabkeeper_proto::ErrorCode::from_code(err) {
        Some(code) => format!("{code} ({err})"),
        None => format!("error {err}"),
    }
}

fn open_acl() -> Vec<Acl> {
    vec![Acl {
        perms: 31,
        id: Id {
            scheme: "world".into(),
            id: "anyone".into(),
        },
    }]
}

impl Session for Zookeeper {
    async fn create(&self, path: &str, data: Bytes) -> Result<(), Fail> {
        self.expect_ok(Request::Create2(CreateRequest {
            path: path.into(),
            data: data.to_vec(),
            acl: open_acl(),
            flags: 0,
        }))
        .await
        .map(|_| ())
    }
    async fn set(&self, path: &str, data: Bytes) -> Result<(), Fail> {
        self.expect_ok(Request::SetData(SetDataRequest {
            path: path.into(),
            data: data.to_vec(),
            version: -1,
        }))
        .await
        .map(|_| ())
    }
    async fn get(&self, path: &str) -> Result<(), Fail> {
        match self
            .expect_ok(Request::GetData(GetDataRequest {
                path: path.into(),
                watch: false,
            }))
            .await?
        {
            Response::GetData(_) => Ok(()),
            other => Err(Fail::Other(format!("unexpected reply {other:?}"))),
        }
    }
    async fn multi_set(&self, a: &str, b: &str, data: Bytes) -> Result<(), Fail> {
        let set = |path: &str| {
            MultiOp::SetData(SetDataRequest {
                path: path.into(),
                data: data.to_vec(),
                version: -1,
            })
        };
        match self.expect_ok(Request::Multi(vec![set(a), set(b)])).await? {
            Response::Multi(results) => {
                match results.iter().find_map(|r| match r {
                    MultiResult::Error(e) if *e != 0 => Some(*e),
                    _ => None,
                }) {
                    None => Ok(()),
                    Some(NO_NODE) => Err(Fail::NoNode),
                    Some(e) => Err(Fail::Other(error_text(e))),
                }
            }
            other => Err(Fail::Other(format!("unexpected reply {other:?}"))),
        }
    }
    async fn delete(&self, path: &str) -> Result<(), Fail> {
        self.expect_ok(Request::Delete(DeleteRequest {
            path: path.into(),
            version: -1,
        }))
        .await
        .map(|_| ())
    }
}
