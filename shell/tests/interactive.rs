//! The interactive `zabkeeper-shell` driven through a pseudo-terminal (rexpect),
//! against a real server process.
//!
//! Each test starts its own server (as `tests/script.rs` does: `$ZABKEEPER_BIN` or the
//! workspace's debug build, `--zk-port 0`, a fresh data directory) and the shell with a
//! history file in a temporary directory. Every expectation has a 20 s bound (rexpect's
//! timeout), so a hung shell fails the test instead of hanging it. Changes "made by
//! another client" are made by running the shell in script mode (`-c`).

use rexpect::session::{spawn_command, PtySession};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const EXPECT_MS: u64 = 20_000;

fn server_binary() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("ZABKEEPER_BIN") {
            return PathBuf::from(bin);
        }
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .unwrap()
            .to_path_buf();
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "-p", "zabkeeper-server", "--bin", "zabkeeper"])
            .current_dir(&root)
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building the zabkeeper server failed");
        target.join("debug/zabkeeper")
    })
    .clone()
}

struct Server {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let child = Server::spawn(port, dir.path());
        Server {
            child,
            port,
            _dir: dir,
        }
    }

    /// Kills the server process (the data directory stays).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the server again on the same port and data directory.
    fn restart(&mut self) {
        self.child = Server::spawn(self.port, self._dir.path());
    }

    fn spawn(port: u16, dir: &std::path::Path) -> Child {
        let mut child = Command::new(server_binary())
            // tick 100 ms: session timeouts may be as short as 200 ms.
            .args([
                "--port",
                &port.to_string(),
                "--zk-port",
                "0",
                "--admin-port",
                "0",
                "--tick-ms",
                "100",
                "--data-dir",
            ])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start zabkeeper");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("zabkeeper exited with {status} before accepting on port {port}");
            }
            assert!(Instant::now() < deadline, "zabkeeper did not accept");
            std::thread::sleep(Duration::from_millis(50));
        }
        child
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Another client: the shell in script mode. Panics unless it succeeds.
    fn other(&self, script: &str) -> String {
        let out = Command::new(env!("CARGO_BIN_EXE_zabkeeper-shell"))
            .args(["--server", &self.addr(), "-c", script])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{script}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The interactive shell on a pseudo-terminal, with its history in `dir`.
fn interactive(server: &Server, dir: &tempfile::TempDir) -> PtySession {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zabkeeper-shell"));
    cmd.args(["--server", &server.addr()])
        .env("TERM", "xterm")
        .env(
            "ZABKEEPER_SHELL_HISTORY",
            dir.path().join("history").as_os_str(),
        );
    let mut p = spawn_command(cmd, Some(EXPECT_MS)).expect("spawn the shell on a pty");
    p.exp_string("(CONNECTED) 0] ")
        .expect("the first prompt names the state");
    p
}

/// Sends a signal to a process (`kill -SIG PID`).
fn signal(pid: i32, sig: &str) {
    let status = Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}");
}

/// Types `text` without a newline (rexpect buffers `send` until a flush).
fn keys(p: &mut PtySession, text: &str) {
    p.send(text).unwrap();
    p.flush().unwrap();
}

fn quit(mut p: PtySession) {
    p.send_line("quit").unwrap();
    p.exp_eof().expect("quit ends the shell");
}

#[test]
fn tab_completes_a_path_from_the_server() {
    let s = Server::start();
    s.other("create /app hello; create /apple x; create /other y");
    let dir = tempfile::tempdir().unwrap();
    let mut p = interactive(&s, &dir);
    // `/appl` is unique among /app, /apple, /other.
    keys(&mut p, "get /appl");
    keys(&mut p, "\t");
    p.exp_string("/apple").expect("completed to /apple");
    keys(&mut p, "\r");
    p.exp_string("\r\nx\r\n").unwrap();
    p.exp_string("(CONNECTED) 1] ").unwrap();
    // Completion of a unique prefix, then running it: the data proves the path.
    keys(&mut p, "get /oth");
    keys(&mut p, "\t");
    p.exp_string("/other").expect("completed to /other");
    keys(&mut p, "\r");
    p.exp_string("\r\ny\r\n").unwrap();
    p.exp_string("(CONNECTED) 2] ").unwrap();
    // Command names complete too.
    keys(&mut p, "dele");
    keys(&mut p, "\t");
    p.exp_string("delete").unwrap();
    p.send_control('u').unwrap();
    quit(p);
}

#[test]
fn get_ap_tab_shows_app() {
    let s = Server::start();
    s.other("create /app hello");
    let dir = tempfile::tempdir().unwrap();
    let mut p = interactive(&s, &dir);
    keys(&mut p, "get /ap");
    keys(&mut p, "\t");
    p.exp_string("/app").unwrap();
    keys(&mut p, "\r");
    p.exp_string("hello").expect("the completed path was read");
    quit(p);
}

#[test]
fn up_arrow_recalls_and_reruns_a_command_and_history_persists() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut p = interactive(&s, &dir);
    p.send_line("create /hist v1").unwrap();
    p.exp_string("(CONNECTED) 1] ").unwrap();
    p.send_line("delete /hist").unwrap();
    p.exp_string("(CONNECTED) 2] ").unwrap();
    assert_eq!(s.other("exists /hist"), "false\n");
    // Up twice: `create /hist v1`; Enter runs it again.
    keys(&mut p, "\x1b[A");
    keys(&mut p, "\x1b[A");
    keys(&mut p, "\r");
    p.exp_string("(CONNECTED) 3] ").unwrap();
    assert_eq!(s.other("get /hist"), "v1\n", "the recalled create ran");
    quit(p);
    let history = std::fs::read_to_string(dir.path().join("history")).unwrap();
    assert!(history.contains("create /hist v1"), "{history}");
    assert!(history.contains("delete /hist"), "{history}");
}

#[test]
fn watch_prints_another_clients_events_until_ctrl_c() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut p = interactive(&s, &dir);
    p.send_line("watch -r /w").unwrap();
    p.exp_string("watching /w").unwrap();
    s.other("create /w a; create /w/child b; set /w c");
    p.exp_string("type:NodeCreated path:/w\r\n").unwrap();
    p.exp_string("type:NodeCreated path:/w/child").unwrap();
    p.exp_string("type:NodeDataChanged path:/w").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("stopped watching /w").unwrap();
    p.exp_string("(CONNECTED) 1] ")
        .expect("the prompt comes back");
    // The shell still works, and the watch is gone: a change prints nothing now.
    p.send_line("get /w").unwrap();
    p.exp_string("\r\nc\r\n").unwrap();
    p.exp_string("(CONNECTED) 2] ").unwrap();
    quit(p);
}

#[test]
fn get_w_prints_the_event_when_it_fires() {
    let s = Server::start();
    s.other("create /g one");
    let dir = tempfile::tempdir().unwrap();
    let mut p = interactive(&s, &dir);
    p.send_line("get -w /g").unwrap();
    p.exp_string("one").unwrap();
    p.exp_string("(CONNECTED) 1] ").unwrap();
    s.other("set /g two");
    p.exp_string("WatchedEvent state:SyncConnected type:NodeDataChanged path:/g")
        .expect("the event is printed at the prompt");
    quit(p);
}

#[test]
fn multi_applies_a_block_atomically() {
    let s = Server::start();
    s.other("create /m x");
    let dir = tempfile::tempdir().unwrap();
    let mut p = interactive(&s, &dir);
    p.send_line("multi").unwrap();
    p.exp_string("multi> ").unwrap();
    p.send_line("create /m/a 1").unwrap();
    p.exp_string("multi> ").unwrap();
    p.send_line("set /m 2").unwrap();
    p.exp_string("multi> ").unwrap();
    p.send_line("end").unwrap();
    p.exp_string("create /m/a: ok").unwrap();
    p.exp_string("set /m: ok (version 1)").unwrap();
    p.exp_string("(CONNECTED) 1] ").unwrap();
    assert_eq!(s.other("get /m/a; get /m"), "1\n2\n");
    // A failing op: nothing of the block is applied.
    p.send_line("multi").unwrap();
    p.exp_string("multi> ").unwrap();
    p.send_line("create /m/b 1").unwrap();
    p.exp_string("multi> ").unwrap();
    p.send_line("check /m 99").unwrap();
    p.exp_string("multi> ").unwrap();
    p.send_line("end").unwrap();
    p.exp_string("multi failed, nothing applied: op 2").unwrap();
    p.exp_string("(CONNECTED) 2] ").unwrap();
    assert_eq!(s.other("exists /m/b"), "false\n");
    quit(p);
}

#[test]
fn errors_are_plain_and_the_prompt_continues_then_close_and_connect() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut p = interactive(&s, &dir);
    p.send_line("get /nope").unwrap();
    p.exp_string("Node does not exist: /nope").unwrap();
    p.exp_string("(CONNECTED) 1] ").unwrap();
    p.send_line("help watch").unwrap();
    p.exp_string("watch [-r] PATH").unwrap();
    p.send_line("create /t; create /t/u; tree /t").unwrap();
    // rexpect reads bytes as Latin-1: match the box characters' UTF-8 bytes that way.
    let drawn: String = "/t\r\n└── u\r\n".bytes().map(char::from).collect();
    p.exp_string(&drawn).unwrap();
    p.exp_string("(CONNECTED) 3] ").unwrap();
    p.send_line("create -e /eph").unwrap();
    p.exp_string("(CONNECTED) 4] ").unwrap();
    p.send_line("close").unwrap();
    p.exp_string("(CLOSED) 5] ").unwrap();
    assert_eq!(s.other("exists /eph"), "false\n", "close ends the session");
    p.send_line("ls /").unwrap();
    p.exp_string("not connected").unwrap();
    p.send_line(&format!("connect {}", s.addr())).unwrap();
    p.exp_string("(CONNECTED) 7] ").unwrap();
    p.send_line("session").unwrap();
    p.exp_string("(CONNECTED) 8] ").unwrap();
    quit(p);
}

#[test]
fn connection_loss_is_announced_and_the_prompt_survives() {
    let mut s = Server::start();
    s.other("create /kept v");
    let dir = tempfile::tempdir().unwrap();
    let mut p = interactive(&s, &dir);
    s.kill();
    p.exp_string("Connection lost; reconnecting")
        .expect("a notice while the prompt is shown");
    s.restart();
    // Whether the restarted server still knows the session is its business; either
    // way the shell says so plainly and keeps its prompt.
    let (_, said) = p
        .exp_regex("Reconnected; the session is intact|Session expired: [^\r]*")
        .expect("a notice once the server is back");
    eprintln!("notice after restart: {said}");
    p.send_line("get /kept").unwrap();
    if said.starts_with("Reconnected") {
        p.exp_string("v\r\n").unwrap();
        p.exp_string("(CONNECTED) 1] ").unwrap();
    } else {
        p.exp_string("the session has expired").unwrap();
        p.exp_string("(EXPIRED) 1] ").unwrap();
        p.send_line(&format!("connect {}", s.addr())).unwrap();
        p.exp_string("(CONNECTED) 2] ").unwrap();
    }
    quit(p);
}

#[test]
fn ctrl_c_at_the_prompt_drops_the_line_and_ctrl_d_leaves() {
    let s = Server::start();
    s.other("create /c v");
    let dir = tempfile::tempdir().unwrap();
    let mut p = interactive(&s, &dir);
    keys(&mut p, "delete /c");
    p.send_control('c').unwrap();
    // A fresh prompt, same count (entering raw mode drops typeahead, so wait for it).
    p.exp_string("(CONNECTED) 0] ").unwrap();
    p.send_line("get /c").unwrap();
    p.exp_string("v\r\n").expect("the shell lives on");
    p.exp_string("(CONNECTED) 1] ").unwrap();
    assert_eq!(s.other("get /c"), "v\n", "the dropped line did not run");
    p.send_control('d').unwrap();
    p.exp_eof().expect("Ctrl-D ends the shell");
}

#[test]
fn session_expiry_is_said_plainly_and_connect_starts_a_new_session() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zabkeeper-shell"));
    cmd.args(["--server", &s.addr(), "--timeout", "300"])
        .env("TERM", "xterm")
        .env(
            "ZABKEEPER_SHELL_HISTORY",
            dir.path().join("history").as_os_str(),
        );
    let mut p = spawn_command(cmd, Some(EXPECT_MS)).expect("spawn the shell on a pty");
    p.exp_string("(CONNECTED) 0] ").unwrap();
    p.send_line("create -e /mine x").unwrap();
    p.exp_string("(CONNECTED) 1] ").unwrap();
    // Freeze the shell past its 300 ms session timeout: the server expires the session.
    let pid = p.process.child_pid.as_raw();
    signal(pid, "-STOP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new(env!("CARGO_BIN_EXE_zabkeeper-shell"))
            .args(["--server", &s.addr(), "-c", "exists /mine"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if String::from_utf8_lossy(&out.stdout).trim() == "false" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the frozen shell's session never expired"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    signal(pid, "-CONT");
    p.exp_string("Session expired: its ephemeral nodes and watches are gone")
        .expect("expiry said plainly");
    p.send_line("get /mine").unwrap();
    p.exp_string("the session has expired").unwrap();
    p.exp_string("(EXPIRED) 2] ").unwrap();
    p.send_line(&format!("connect {}", s.addr())).unwrap();
    p.exp_string("(CONNECTED) 3] ").unwrap();
    quit(p);
}
