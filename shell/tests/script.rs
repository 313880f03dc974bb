//! The `zabkeeper-shell` binary in script mode against a real server process.
//!
//! Each test starts its own `zabkeeper --port N --data-dir DIR` on a free port with a
//! fresh directory. The server binary is `$ZABKEEPER_BIN` if set, else the workspace's
//! debug build, rebuilt once per run with `cargo build -p zabkeeper-server --bin
//! zabkeeper` (as the client's tests do). Until the server is merged these fail at
//! startup with "building the zabkeeper server failed" or "exited before accepting".

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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
        let port = free_port();
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(server_binary())
            .args([
                "--port",
                &port.to_string(),
                "--zk-port",
                "0",
                "--admin-port",
                "0",
                "--data-dir",
            ])
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start zabkeeper");
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = child.try_wait().unwrap() {
                panic!("zabkeeper exited with {status} before accepting on port {port}");
            }
            assert!(
                Instant::now() < deadline,
                "zabkeeper did not accept on port {port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            child,
            port,
            _dir: dir,
        }
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Runs the shell with `-c script` and extra flags.
    fn sh(&self, flags: &[&str], script: &str) -> Run {
        shell(&self.addr(), flags, Some(script), None)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Run {
    status: i32,
    stdout: String,
    stderr: String,
}

fn shell(addr: &str, flags: &[&str], script: Option<&str>, stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zabkeeper-shell"));
    cmd.args(["--server", addr, "--timeout", "10000"])
        .args(flags);
    if let Some(s) = script {
        cmd.args(["-c", s]);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start zabkeeper-shell");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().unwrap();
    Run {
        status: status.code().expect("exited normally"),
        stdout: String::from_utf8(stdout).unwrap(),
        stderr: String::from_utf8(stderr).unwrap(),
    }
}

/// The value of a `name = value` line of a stat block.
fn stat_field<'a>(out: &'a str, name: &str) -> &'a str {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} = ")))
        .unwrap_or_else(|| panic!("no {name} in:\n{out}"))
}

#[test]
fn crud_sequence_prints_like_zkcli() {
    let s = Server::start();
    let r = s.sh(
        &[],
        "create /a x; get /a; set /a y; stat /a; ls /a; delete /a",
    );
    assert_eq!(r.status, 0, "stderr: {}", r.stderr);
    let mut lines = r.stdout.lines();
    assert_eq!(lines.next(), Some("/a"));
    assert_eq!(lines.next(), Some("x"));
    let stat: String = lines.map(|l| format!("{l}\n")).collect();
    let names: Vec<&str> = stat
        .lines()
        .map(|l| l.split(" = ").next().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "cZxid",
            "ctime",
            "mZxid",
            "mtime",
            "pZxid",
            "cversion",
            "dataVersion",
            "aclVersion",
            "ephemeralOwner",
            "dataLength",
            "numChildren"
        ]
    );
    assert!(stat_field(&stat, "cZxid").starts_with("0x"));
    assert_ne!(
        stat_field(&stat, "cZxid"),
        stat_field(&stat, "mZxid"),
        "set must move mZxid"
    );
    assert_eq!(stat_field(&stat, "dataVersion"), "1");
    assert_eq!(stat_field(&stat, "dataLength"), "1");
    assert_eq!(stat_field(&stat, "numChildren"), "0");
    assert_eq!(stat_field(&stat, "ephemeralOwner"), "0x0");
    assert!(
        stat_field(&stat, "mtime").ends_with(&format!(" {}", current_year())),
        "{stat}"
    );
    // The delete really happened.
    let r = s.sh(&[], "exists /a");
    assert_eq!((r.status, r.stdout.as_str()), (0, "false\n"));
}

fn current_year() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // Good for any date this code will meet: 365.2425 days a year.
    1970 + (secs as f64 / 31_556_952.0) as i64
}

#[test]
fn ephemeral_is_owned_by_the_session_and_gone_after_exit() {
    let s = Server::start();
    let r = s.sh(&[], "create -e /e data; stat /e; session; getEphemerals");
    assert_eq!(r.status, 0, "stderr: {}", r.stderr);
    let owner = stat_field(&r.stdout, "ephemeralOwner");
    assert_ne!(owner, "0x0");
    assert_eq!(stat_field(&r.stdout, "sessionId"), owner);
    assert!(
        r.stdout.lines().any(|l| l == "/e"),
        "getEphemerals lists /e:\n{}",
        r.stdout
    );
    // The first shell closed its session on exit, which deletes its ephemerals.
    let r = s.sh(&[], "exists /e");
    assert_eq!(r.stdout, "false\n", "stderr: {}", r.stderr);
}

fn sequence_suffix(path: &str, prefix: &str) -> u32 {
    let suffix = path
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("{path} does not start with {prefix}"));
    assert_eq!(suffix.len(), 10, "{path}");
    assert!(suffix.bytes().all(|b| b.is_ascii_digit()), "{path}");
    suffix.parse().unwrap()
}

#[test]
fn sequential_creates_get_increasing_ten_digit_suffixes() {
    let s = Server::start();
    let r = s.sh(
        &[],
        "create /s; create -s /s/n- a; create -s /s/n- b; create -s /s/n- c; ls /s",
    );
    assert_eq!(r.status, 0, "stderr: {}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines[0], "/s");
    let seqs: Vec<u32> = lines[1..4]
        .iter()
        .map(|p| sequence_suffix(p, "/s/n-"))
        .collect();
    assert!(seqs[0] < seqs[1] && seqs[1] < seqs[2], "{seqs:?}");
    let listed: Vec<String> = lines[4..].iter().map(|c| format!("/s/{c}")).collect();
    assert_eq!(listed, lines[1..4]);
}

#[test]
fn ephemeral_sequential() {
    let s = Server::start();
    let r = s.sh(
        &[],
        "create /q; create -e -s /q/lock- ; create -e -s /q/lock-; getEphemerals /q; stat /q",
    );
    assert_eq!(r.status, 0, "stderr: {}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    let (a, b) = (
        sequence_suffix(lines[1], "/q/lock-"),
        sequence_suffix(lines[2], "/q/lock-"),
    );
    assert!(a < b);
    assert_eq!(
        &lines[3..5],
        &lines[1..3],
        "getEphemerals lists both, sorted"
    );
    assert_eq!(stat_field(&r.stdout, "numChildren"), "2");
    let r = s.sh(&[], "ls /q");
    assert_eq!(
        r.stdout, "",
        "ephemeral sequential nodes die with their session"
    );
}

#[test]
fn missing_node_fails_with_zookeeper_words_and_status_1() {
    let s = Server::start();
    let r = s.sh(&[], "get /nope; create /never-reached");
    assert_eq!(r.status, 1);
    assert_eq!(r.stdout, "");
    assert_eq!(r.stderr, "Node does not exist: /nope\n");
    assert_eq!(
        s.sh(&[], "exists /never-reached").stdout,
        "false\n",
        "the script stops at the first failure"
    );

    let r = s.sh(&[], "create /dup; create /dup");
    assert_eq!(
        (r.status, r.stderr.as_str()),
        (1, "Node already exists: /dup\n")
    );
    let r = s.sh(&[], "create /dup/c; delete /dup");
    assert_eq!((r.status, r.stderr.as_str()), (1, "Node not empty: /dup\n"));
    let r = s.sh(&[], "set -v 42 /dup x");
    assert_eq!(
        (r.status, r.stderr.as_str()),
        (1, "version No is not valid : /dup\n")
    );
    let r = s.sh(&[], "delete /nope");
    assert_eq!(
        (r.status, r.stderr.as_str()),
        (1, "Node does not exist: /nope\n")
    );
}

#[test]
fn keep_going_runs_the_rest_and_fails_at_the_end() {
    let s = Server::start();
    let r = s.sh(
        &["--keep-going"],
        "get /nope; create /k v; stat /missing; get /k",
    );
    assert_eq!(r.status, 1);
    assert_eq!(r.stdout, "/k\nv\n");
    assert_eq!(
        r.stderr,
        "Node does not exist: /nope\nNode does not exist: /missing\n"
    );
}

#[test]
fn json_output_is_one_object_per_command() {
    let s = Server::start();
    let r = s.sh(
        &["--json", "--keep-going"],
        "create /j 0x00ff41; get -s /j; ls /; get /missing",
    );
    assert_eq!(r.status, 1);
    let objs: Vec<serde_json::Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(objs.len(), 4, "{}", r.stdout);
    assert_eq!(objs[0]["command"], "create");
    assert_eq!(objs[0]["ok"], true);
    assert_eq!(objs[0]["path"], "/j");
    assert_eq!(objs[1]["data_hex"], "00ff41");
    assert_eq!(objs[1]["data"], serde_json::Value::Null, "not UTF-8");
    assert_eq!(objs[1]["stat"]["dataLength"], 3);
    assert_eq!(objs[1]["stat"]["version"], 0);
    assert!(objs[2]["children"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "j"));
    assert_eq!(objs[3]["ok"], false);
    assert_eq!(objs[3]["code"], -101);
    assert_eq!(objs[3]["error"], "Node does not exist: /missing");
}

#[test]
fn binary_data_is_escaped_and_quoting_keeps_separators() {
    let s = Server::start();
    let r = s.sh(&[], r#"create /b 0x1b5b316d0a00ff; get /b; create /t 'semi; colon'; get /t; create /u "say \"hi\""; get /u"#);
    assert_eq!(r.status, 0, "stderr: {}", r.stderr);
    assert_eq!(
        r.stdout,
        "/b\n\\u{1b}[1m\\n\\0\\xff\n/t\nsemi; colon\n/u\nsay \"hi\"\n"
    );
    assert!(!r.stdout.bytes().any(|b| b < 0x20 && b != b'\n'));
}

#[test]
fn file_data_and_recursive_commands() {
    let s = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("blob");
    std::fs::write(&f, "from a file").unwrap();
    let script = format!("create /r; create /r/a @{}; create /r/a/x; create /r/b; get /r/a; ls -R /r; deleteall /r; exists /r", f.display());
    let r = s.sh(&[], &script);
    assert_eq!(r.status, 0, "stderr: {}", r.stderr);
    assert_eq!(
        r.stdout,
        "/r\n/r/a\n/r/a/x\n/r/b\nfrom a file\n/r\n/r/a\n/r/b\n/r/a/x\nfalse\n"
    );
}

#[test]
fn stdin_mode_reads_lines_and_skips_comments() {
    let s = Server::start();
    let script = "# set up\ncreate /in 'a b'\n\n   \nget /in ; sync /in\n# done\nexists /in # trailing comment\n";
    let r = shell(&s.addr(), &[], None, Some(script));
    assert_eq!(r.status, 0, "stderr: {}", r.stderr);
    assert_eq!(r.stdout, "/in\na b\nSync is OK\ntrue\n");
}

#[test]
fn usage_errors_exit_2_before_running_anything() {
    let s = Server::start();
    let r = s.sh(&[], "create /early; create -x /a");
    assert_eq!(r.status, 2);
    assert!(r.stderr.contains("unknown flag -x"), "{}", r.stderr);
    assert_eq!(s.sh(&[], "exists /early").stdout, "false\n");
    let r = shell(&s.addr(), &["--no-such-flag"], Some("ls /"), None);
    assert_eq!(r.status, 2);
}

#[test]
fn help_works_without_a_server_and_connection_failure_is_status_3() {
    let dead = format!("127.0.0.1:{}", free_port());
    let r = shell(&dead, &[], Some("help"), None);
    assert_eq!(r.status, 0, "stderr: {}", r.stderr);
    assert!(r
        .stdout
        .contains("create [-e] [-s] [-c] [-t TTL_MS] PATH [DATA]"));
    let r = shell(&dead, &["--timeout", "2000"], Some("ls /"), None);
    assert_eq!(r.status, 3, "stdout {} stderr {}", r.stdout, r.stderr);
    assert!(r.stderr.starts_with("Connection failed:"), "{}", r.stderr);
}

#[test]
fn acls_are_set_shown_and_enforced_across_sessions() {
    let s = Server::start();
    // The owner: addauth, a node only bob may touch, its ACL printed as zkCli does.
    let r = s.sh(
        &[],
        "addauth digest bob:secret; create /sec data; setAcl /sec auth::cdrwa; getAcl /sec; get /sec; whoami",
    );
    assert_eq!(r.status, 0, "stderr: {}", r.stderr);
    assert_eq!(
        r.stdout,
        "/sec\n'digest,'bob:fyVmFCwVbTJYrznoSu1koqYEYF0=\n: cdrwa\ndata\nip: 127.0.0.1\ndigest: bob\n"
    );
    // Another session without the digest is refused, in zkCli's words.
    let r = s.sh(&[], "get /sec");
    assert_eq!(r.status, 1);
    assert!(
        r.stderr.contains("Insufficient permission : /sec"),
        "{}",
        r.stderr
    );
    let r = s.sh(&[], "getAcl /sec");
    assert_eq!(r.status, 1, "{}", r.stdout);
    // With it, everything; setAcl -v checks the ACL version, -s prints the stat.
    let r = s.sh(
        &[],
        "addauth digest bob:secret; setAcl -s -v 1 /sec world:anyone:r,digest:bob:fyVmFCwVbTJYrznoSu1koqYEYF0=:cdrwa",
    );
    assert_eq!(r.status, 0, "stderr: {}", r.stderr);
    assert_eq!(stat_field(&r.stdout, "aclVersion"), "2");
    let r = s.sh(&[], "setAcl -v 1 /sec world:anyone:r");
    assert_eq!(r.status, 1);
    // READ without ADMIN: the digest hash is hidden.
    let r = s.sh(&[], "get /sec; getAcl /sec");
    assert_eq!(r.status, 0, "stderr: {}", r.stderr);
    assert_eq!(
        r.stdout,
        "data\n'world,'anyone\n: r\n'digest,'bob:x\n: cdrwa\n"
    );
    // An ACL the server refuses, and one the shell cannot parse.
    let r = s.sh(&[], "create /n; setAcl /n world:someone:r");
    assert_eq!(r.status, 1);
    assert!(r.stderr.contains("Acl is not valid : /n"), "{}", r.stderr);
    let r = s.sh(&[], "setAcl /n world:anyone:rq");
    assert_eq!(r.status, 2, "{}", r.stderr);
    assert!(r.stderr.contains("unknown perm type: q"), "{}", r.stderr);
}

#[test]
fn quotas_are_set_listed_enforced_and_removed() {
    let s = Server::start();
    let r = s.sh(
        &[],
        "create /q 12345; create /q/a ab; setquota -N 4 -B 20 /q; listquota /q",
    );
    assert_eq!(r.status, 0, "stderr: {}", r.stderr);
    assert!(
        r.stdout.contains(
            "absolute path is /zookeeper/quota/q/zookeeper_limits\nOutput quota for /q count=-1,bytes=-1=;byteHardLimit=20;countHardLimit=4\nOutput stat for /q count=2,bytes=7\n"
        ),
        "{}",
        r.stdout
    );
    // The fourth node fits, the fifth exceeds the hard count; bytes likewise.
    let r = s.sh(&[], "create /q/b; create /q/c");
    assert_eq!(r.status, 0, "stderr: {}", r.stderr);
    let r = s.sh(&[], "create /q/d");
    assert_eq!(r.status, 1);
    assert!(
        r.stderr.contains("Quota has exceeded : /q/d"),
        "{}",
        r.stderr
    );
    let r = s.sh(&[], "set /q/b 0123456789abcdef");
    assert_eq!(r.status, 1, "{}", r.stderr);
    let r = s.sh(&[], "listquota /q");
    assert!(
        r.stdout.contains("Output stat for /q count=4,bytes=7"),
        "{}",
        r.stdout
    );
    // No nested quotas; none under /zookeeper/quota.
    let r = s.sh(&[], "setquota -n 1 /q/a");
    assert_eq!(r.status, 2);
    assert!(
        r.stderr.contains("has a parent /q which has a quota"),
        "{}",
        r.stderr
    );
    // delquota -N lifts the count limit only; delquota removes the quota.
    let r = s.sh(&[], "delquota -N /q; create /q/d; listquota /q");
    assert_eq!(r.status, 0, "stderr: {}", r.stderr);
    assert!(
        r.stdout
            .contains("count=-1,bytes=-1=;byteHardLimit=20;countHardLimit=-1"),
        "{}",
        r.stdout
    );
    let r = s.sh(
        &[],
        "delquota /q; set /q/b 0123456789abcdefghij; ls /zookeeper/quota",
    );
    assert_eq!(r.status, 0, "stderr: {}", r.stderr);
    assert_eq!(r.stdout, "");
    let r = s.sh(&[], "listquota /q");
    assert_eq!(r.status, 2);
    assert!(
        r.stderr.contains("quota for /q does not exist."),
        "{}",
        r.stderr
    );
}
