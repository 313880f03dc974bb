//! Script mode: run parsed commands in order, print results, choose the exit status.
//!
//! The whole script is split and parsed before anything runs, so without
//! `--keep-going` a typo on line 9 fails the script (status 2) before line 1 touches
//! the server. With `--keep-going` a bad command is reported when its turn comes and
//! the rest still run; the status is then that of the first failure.
//!
//! The session is opened only when the first command that needs a server runs (so
//! `help` works without one), and it is closed at the end, which removes the script's
//! ephemeral nodes, as zkCli's do when it exits.

use crate::backend::Backend;
use crate::command::{parse, Command};
use crate::error::{ShellError, EXIT_OK};
use crate::exec::{execute, execute_local, Output};
use crate::script::RawCommand;
use serde_json::Value;
use std::future::Future;
use std::io::Write;

#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    pub keep_going: bool,
    pub json: bool,
}

/// A parsed command with its source text, or why it did not parse.
pub type Parsed = (String, Result<Command, ShellError>);

pub fn parse_all(raw: &[RawCommand]) -> Vec<Parsed> {
    raw.iter().map(|r| (r.source.clone(), parse(r))).collect()
}

/// Runs a script; returns the exit status. `connect` is called at most once.
/// `close` is called on the session when the script ends.
pub async fn run<B, C, F, X, XF>(
    script: Vec<Parsed>,
    connect: C,
    close: X,
    opts: RunOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) -> i32
where
    B: Backend,
    C: FnOnce() -> F,
    F: Future<Output = Result<B, ShellError>>,
    X: FnOnce(B) -> XF,
    XF: Future<Output = ()>,
{
    if !opts.keep_going {
        if let Some((source, Err(e))) = script.iter().find(|(_, p)| p.is_err()) {
            report(source, e, opts, out, err);
            return e.exit_code();
        }
    }
    let mut connect = Some(connect);
    let mut session: Option<B> = None;
    let mut status = EXIT_OK;
    for (source, parsed) in &script {
        let result = match parsed {
            Err(e) => Err(ShellError::Usage(e.to_string())),
            Ok(cmd) => match execute_local(cmd) {
                Some(r) => r,
                None => {
                    if session.is_none() {
                        if let Some(c) = connect.take() {
                            match c().await {
                                Ok(b) => session = Some(b),
                                Err(e) => {
                                    // Without a session nothing else can run.
                                    report(source, &e, opts, out, err);
                                    return e.exit_code();
                                }
                            }
                        }
                    }
                    match &session {
                        Some(b) => execute(b, cmd).await,
                        None => unreachable!("connect failures return above"),
                    }
                }
            },
        };
        match result {
            Ok(output) => print_output(source, parsed.as_ref().ok(), &output, opts, out),
            Err(e) => {
                report(source, &e, opts, out, err);
                if status == EXIT_OK {
                    status = e.exit_code();
                }
                if !opts.keep_going {
                    break;
                }
            }
        }
    }
    if let Some(b) = session {
        close(b).await;
    }
    let _ = out.flush();
    status
}

fn print_output(
    source: &str,
    cmd: Option<&Command>,
    output: &Output,
    opts: RunOptions,
    out: &mut impl Write,
) {
    if opts.json {
        let mut obj = serde_json::Map::new();
        obj.insert(
            "command".into(),
            Value::from(cmd.map(|c| c.name()).unwrap_or("")),
        );
        obj.insert("input".into(), Value::from(source));
        obj.insert("ok".into(), Value::Bool(true));
        obj.extend(output.json.clone());
        let _ = writeln!(out, "{}", Value::Object(obj));
    } else {
        let _ = out.write_all(output.text.as_bytes());
    }
}

fn report(
    source: &str,
    e: &ShellError,
    opts: RunOptions,
    out: &mut impl Write,
    err: &mut impl Write,
) {
    if opts.json {
        let obj = serde_json::json!({
            "command": source.split_whitespace().next().unwrap_or(""),
            "input": source,
            "ok": false,
            "error": e.to_string(),
            "code": e.code().map(|c| c.code()),
            "exit": e.exit_code(),
        });
        let _ = writeln!(out, "{obj}");
    }
    let _ = writeln!(err, "{e}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exec::fake::FakeTree;
    use crate::script::split;

    fn run_fake(src: &str, opts: RunOptions) -> (i32, String, String, bool) {
        let script = parse_all(&split(src).unwrap());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let connected = std::cell::Cell::new(false);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let status = rt.block_on(run(
            script,
            || {
                connected.set(true);
                async { Ok(FakeTree::new()) }
            },
            |_b| async {},
            opts,
            &mut out,
            &mut err,
        ));
        (
            status,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
            connected.get(),
        )
    }

    #[test]
    fn stops_at_first_failure_with_status_1() {
        let (status, out, err, _) =
            run_fake("create /a x; get /nope; get /a", RunOptions::default());
        assert_eq!(status, 1);
        assert_eq!(out, "/a\n");
        assert_eq!(err, "Node does not exist: /nope\n");
    }

    #[test]
    fn keep_going_runs_everything_and_fails_at_the_end() {
        let opts = RunOptions {
            keep_going: true,
            json: false,
        };
        let (status, out, err, _) = run_fake("get /nope; bogus; create /a x; get /a", opts);
        assert_eq!(status, 1);
        assert_eq!(out, "/a\nx\n");
        assert!(
            err.starts_with("Node does not exist: /nope\nunknown command: bogus"),
            "{err}"
        );
    }

    #[test]
    fn usage_error_fails_before_anything_runs() {
        let (status, out, err, connected) = run_fake("create /a x; get", RunOptions::default());
        assert_eq!(status, 2);
        assert_eq!(out, "");
        assert!(err.contains("get: missing argument"));
        assert!(
            !connected,
            "must not connect before the script is known to parse"
        );
    }

    #[test]
    fn help_needs_no_connection() {
        let (status, out, _, connected) = run_fake("help", RunOptions::default());
        assert_eq!(status, 0);
        assert!(out.contains("create [-e] [-s]"));
        assert!(!connected);
    }

    #[test]
    fn json_lines_per_command() {
        let opts = RunOptions {
            keep_going: true,
            json: true,
        };
        let (status, out, _, _) = run_fake("create /a x; get /a; delete /zz", opts);
        assert_eq!(status, 1);
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["command"], "create");
        assert_eq!(lines[0]["path"], "/a");
        assert_eq!(lines[1]["data"], "x");
        assert_eq!(lines[1]["ok"], true);
        assert_eq!(lines[2]["ok"], false);
        assert_eq!(lines[2]["code"], -101);
        assert_eq!(lines[2]["error"], "Node does not exist: /zz");
    }

    #[test]
    fn connect_failure_is_status_3() {
        let script = parse_all(&split("get /a").unwrap());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let status = rt.block_on(run(
            script,
            || async { Err::<FakeTree, _>(ShellError::Connect("refused".into())) },
            |_b| async {},
            RunOptions::default(),
            &mut out,
            &mut err,
        ));
        assert_eq!(status, 3);
        assert_eq!(
            String::from_utf8(err).unwrap(),
            "Connection failed: refused\n"
        );
    }
}
