//! The interactive shell: a rustyline loop over the script-mode command layer.
//!
//! Each line is split by [`crate::script`] (so `;`, quoting and comments work as in
//! script mode). Commands script mode knows go through [`crate::command::parse`] and
//! [`crate::exec::execute`]; the ones that only make sense at a terminal (`get -w`,
//! `watch`, `multi`, `connect`, `close`, `quit`) are run here. Errors are printed in plain
//! words and the prompt comes back; nothing ends the shell but `quit` or Ctrl-D.
//!
//! Threads: the tokio runtime has one worker thread, which runs the client's connection
//! task, the session-state notices and `get -w` event printers. The main thread runs
//! rustyline and drives each command with `Handle::block_on`; path completion does the
//! same from inside rustyline (with a short timeout, so a dead server cannot freeze
//! the line editor). Output that arrives while a prompt is shown (events, connection
//! notices) goes through rustyline's external printer, which redraws the prompt.
//!
//! Ctrl-C at the prompt clears the line (rustyline reads it as a key); during `watch` it
//! arrives as SIGINT, which a tokio signal handler (installed before the watch starts)
//! catches to end the watch; other commands are abandoned on Ctrl-C. The handler is
//! installed at start, so Ctrl-C never kills the shell (Ctrl-D or `quit` leave).

use crate::client_backend::{self, ClientBackend, MultiOp};
use crate::command::{self, Command, COMMANDS, INTERACTIVE_COMMANDS};
use crate::data::DataArg;
use crate::error::ShellError;
use crate::exec;
use crate::format::{escape_data, stat_text};
use crate::script::{self, RawCommand, Word};
use futures::StreamExt;
use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Context, Editor, ExternalPrinter, Helper};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::runtime::Handle;
use zabkeeper_client::SessionState;

/// How long tab completion may wait for the server.
const COMPLETION_TIMEOUT: Duration = Duration::from_millis(1500);

/// Where text printed while a prompt may be shown goes.
type Printer = Arc<Mutex<Option<Box<dyn ExternalPrinter + Send>>>>;

fn print_async(printer: &Printer, msg: String) {
    let mut guard = printer.lock().unwrap_or_else(|e| e.into_inner());
    match guard.as_mut() {
        Some(p) => {
            if p.print(msg.clone()).is_err() {
                eprintln!("{msg}");
            }
        }
        None => eprintln!("{msg}"),
    }
}

/// The history file: `$ZABKEEPER_SHELL_HISTORY`, else `~/.zabkeeper_shell_history`.
pub fn history_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ZABKEEPER_SHELL_HISTORY") {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".zabkeeper_shell_history"))
}

/// Completion of command names and of znode paths.
struct ShellHelper {
    session: Arc<Mutex<Option<ClientBackend>>>,
    handle: Handle,
}

/// Splits a typed path into (parent to list, name prefix to match).
pub fn completion_parent(word: &str) -> (String, &str) {
    match word.rfind('/') {
        Some(0) => ("/".to_string(), &word[1..]),
        Some(i) => (word[..i].to_string(), &word[i + 1..]),
        None => ("/".to_string(), word),
    }
}

/// All command names, for completion.
fn command_names() -> Vec<&'static str> {
    let mut v: Vec<&str> = COMMANDS
        .iter()
        .chain(INTERACTIVE_COMMANDS.iter())
        .map(|c| c.0)
        .filter(|n| !n.contains(' '))
        .collect();
    v.sort();
    v.dedup();
    v
}

impl Completer for ShellHelper {
    type Candidate = String;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        let before = &line[..pos];
        let start = before
            .rfind(|c: char| c.is_whitespace() || c == ';')
            .map(|i| i + 1)
            .unwrap_or(0);
        let word = &before[start..];
        let first_word = before[..start]
            .rsplit(';')
            .next()
            .map(|s| s.trim().is_empty())
            .unwrap_or(true);
        if first_word {
            let names = command_names()
                .into_iter()
                .filter(|n| n.starts_with(word))
                .map(|n| n.to_string())
                .collect();
            return Ok((start, names));
        }
        if !word.starts_with('/') {
            return Ok((start, Vec::new()));
        }
        let (parent, prefix) = completion_parent(word);
        let client = {
            let guard = self.session.lock().unwrap_or_else(|e| e.into_inner());
            match guard.as_ref() {
                Some(b) => b.client.clone(),
                None => return Ok((start, Vec::new())),
            }
        };
        let children = self.handle.block_on(async move {
            tokio::time::timeout(COMPLETION_TIMEOUT, client.get_children(&parent))
                .await
                .ok()
                .and_then(|r| r.ok())
                .map(|c| (parent, c))
        });
        let Some((parent, mut children)) = children else {
            return Ok((start, Vec::new()));
        };
        children.sort();
        let candidates = children
            .into_iter()
            .filter(|c| c.starts_with(prefix))
            .map(|c| zabkeeper_proto::path::join(&parent, &c))
            .collect();
        Ok((start, candidates))
    }
}

impl Hinter for ShellHelper {
    type Hint = String;
}
impl Highlighter for ShellHelper {}
impl Validator for ShellHelper {}
impl Helper for ShellHelper {}

/// What the loop should do after a line.
enum Next {
    Continue,
    Quit,
}

pub struct Repl {
    servers: String,
    timeout: Duration,
    rt: tokio::runtime::Runtime,
    session: Arc<Mutex<Option<ClientBackend>>>,
    printer: Printer,
    /// Commands entered, for the prompt's counter.
    count: u64,
}

impl Repl {
    pub fn new(servers: &str, timeout: Duration) -> Result<Repl, ShellError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| ShellError::Io(format!("cannot start runtime: {e}")))?;
        Ok(Repl {
            servers: servers.to_string(),
            timeout,
            rt,
            session: Arc::new(Mutex::new(None)),
            printer: Arc::new(Mutex::new(None)),
            count: 0,
        })
    }

    /// Runs the loop until `quit` or Ctrl-D; returns the exit status.
    pub fn run(mut self) -> i32 {
        let mut rl: Editor<ShellHelper, DefaultHistory> = match Editor::new() {
            Ok(rl) => rl,
            Err(e) => {
                eprintln!("cannot start the line editor: {e}");
                return 1;
            }
        };
        rl.set_helper(Some(ShellHelper {
            session: self.session.clone(),
            handle: self.rt.handle().clone(),
        }));
        if let Ok(p) = rl.create_external_printer() {
            *self.printer.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(p));
        }
        let history = history_path();
        if let Some(h) = &history {
            let _ = rl.load_history(h);
        }
        // Ctrl-C outside the line editor (during a command) must not kill the shell:
        // install the handler now; commands and `watch` listen for it themselves.
        let _keep = self.rt.block_on(async {
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        });
        println!("Connecting to {}", self.servers);
        let servers = self.servers.clone();
        self.connect(&servers);
        loop {
            let prompt = self.prompt();
            match rl.readline(&prompt) {
                Ok(line) => {
                    if line.trim().is_empty() {
                        continue;
                    }
                    let _ = rl.add_history_entry(line.as_str());
                    if let Some(h) = &history {
                        let _ = rl.save_history(h);
                    }
                    self.count += 1;
                    if let Next::Quit = self.line(&line, &mut rl) {
                        break;
                    }
                }
                Err(ReadlineError::Interrupted) => continue,
                Err(ReadlineError::Eof) => break,
                Err(e) => {
                    eprintln!("cannot read the line: {e}");
                    break;
                }
            }
        }
        self.close();
        0
    }

    fn prompt(&self) -> String {
        let guard = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let (server, state) = match guard.as_ref() {
            Some(b) => (
                b.client
                    .connected_server()
                    .unwrap_or_else(|| self.servers.clone()),
                state_name(b.state()),
            ),
            None => (self.servers.clone(), "CLOSED"),
        };
        format!("[zk: {server}({state}) {}] ", self.count)
    }

    /// Opens a session to `servers`, replacing any current one, and starts its notices.
    fn connect(&mut self, servers: &str) {
        self.close();
        let timeout = self.timeout;
        match self.rt.block_on(client_backend::connect(servers, timeout)) {
            Ok(b) => {
                self.servers = servers.to_string();
                let states = b.states();
                let printer = self.printer.clone();
                self.rt.spawn(notices(states, printer));
                *self.session.lock().unwrap_or_else(|e| e.into_inner()) = Some(b);
            }
            Err(e) => {
                self.servers = servers.to_string();
                eprintln!("{e}");
                eprintln!("Not connected: use connect HOST:PORT");
            }
        }
    }

    fn close(&mut self) {
        let old = self
            .session
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(b) = old {
            let _ = self.rt.block_on(async {
                tokio::time::timeout(Duration::from_secs(5), b.client.close()).await
            });
        }
    }

    /// The session to run a command on, or a plain error.
    fn with_session(&self) -> Result<ClientBackend, ShellError> {
        let guard = self.session.lock().unwrap_or_else(|e| e.into_inner());
        match guard.as_ref() {
            Some(b) if b.state() == SessionState::Expired => Err(ShellError::Connect(
                "the session has expired (its ephemeral nodes are gone): use connect HOST:PORT for a new one".into(),
            )),
            Some(b) => Ok(ClientBackend {
                client: b.client.clone(),
            }),
            None => Err(ShellError::Connect(
                "not connected: use connect HOST:PORT".into(),
            )),
        }
    }

    fn line(&mut self, line: &str, rl: &mut Editor<ShellHelper, DefaultHistory>) -> Next {
        let commands = match script::split(line) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("{e}");
                return Next::Continue;
            }
        };
        for raw in &commands {
            match self.one(raw, rl) {
                Ok(Next::Quit) => return Next::Quit,
                Ok(Next::Continue) => {}
                Err(e) => {
                    eprintln!("{e}");
                    // Later commands on the line may depend on this one.
                    break;
                }
            }
        }
        Next::Continue
    }

    fn one(
        &mut self,
        raw: &RawCommand,
        rl: &mut Editor<ShellHelper, DefaultHistory>,
    ) -> Result<Next, ShellError> {
        let Some(first) = raw.words.first() else {
            return Ok(Next::Continue);
        };
        let args = &raw.words[1..];
        let name = if first.quoted {
            ""
        } else {
            first.text.as_str()
        };
        match name {
            "quit" | "exit" => {
                no_args(name, args)?;
                Ok(Next::Quit)
            }
            "close" => {
                no_args(name, args)?;
                self.close();
                Ok(Next::Continue)
            }
            "connect" => {
                let [server] = args else {
                    return Err(usage("connect", "needs one HOST:PORT[,HOST:PORT...]"));
                };
                let server = server.text.clone();
                self.connect(&server);
                Ok(Next::Continue)
            }
            "watch" => {
                let (recursive, path) = match args {
                    [p] if !p.text.starts_with('-') || p.quoted => (false, p),
                    [f, p] if f.text == "-r" && !f.quoted => (true, p),
                    _ => return Err(usage("watch", "expected [-r] PATH")),
                };
                zabkeeper_proto::path::validate(&path.text, false)
                    .map_err(|e| ShellError::Usage(e.to_string()))?;
                self.watch(&path.text, recursive)?;
                Ok(Next::Continue)
            }
            "multi" => {
                no_args(name, args)?;
                self.multi(rl)?;
                Ok(Next::Continue)
            }
            "get" if has_w_flag(args) => {
                let stripped = strip_w_flag(raw);
                let Command::Get { path, stat } = command::parse(&stripped)? else {
                    unreachable!("get parses to Get")
                };
                self.get_watch(&path, stat)?;
                Ok(Next::Continue)
            }
            _ => {
                let cmd = command::parse(raw)?;
                let out = match exec::execute_local(&cmd) {
                    Some(r) => r?,
                    None => {
                        let b = self.with_session()?;
                        self.rt.block_on(interruptible(exec::execute(&b, &cmd)))?
                    }
                };
                print!("{}", out.text);
                Ok(Next::Continue)
            }
        }
    }

    fn get_watch(&self, path: &str, with_stat: bool) -> Result<(), ShellError> {
        let b = self.with_session()?;
        let (data, stat, event) = self
            .rt
            .block_on(b.get_data_watch(path))
            .map_err(|e| ShellError::op(path, e))?;
        println!("{}", escape_data(&data));
        if with_stat {
            print!("{}", stat_text(&stat));
        }
        let printer = self.printer.clone();
        self.rt.spawn(async move {
            if let Some(text) = event.await {
                print_async(&printer, format!("\nWATCHER::\n\n{text}"));
            }
        });
        Ok(())
    }

    fn watch(&self, path: &str, recursive: bool) -> Result<(), ShellError> {
        let b = self.with_session()?;
        self.rt.block_on(async {
            // Registered before the banner, so a Ctrl-C typed as soon as it shows is
            // caught rather than killing the shell.
            let mut interrupt =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
                    .map_err(|e| ShellError::Io(format!("cannot catch Ctrl-C: {e}")))?;
            let mut events = b
                .watch(path, recursive)
                .await
                .map_err(|e| ShellError::op(path, e))?;
            println!(
                "watching {path}{} (Ctrl-C to stop)",
                if recursive { " and below" } else { "" }
            );
            loop {
                tokio::select! {
                    ev = events.next() => match ev {
                        Some(text) => println!("{text}"),
                        None => {
                            println!("watch ended (session closed or expired)");
                            break;
                        }
                    },
                    _ = interrupt.recv() => {
                        println!();
                        break;
                    }
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), b.unwatch(path)).await;
            println!("stopped watching {path}");
            Ok(())
        })
    }

    fn multi(&self, rl: &mut Editor<ShellHelper, DefaultHistory>) -> Result<(), ShellError> {
        println!("multi: enter create/set/delete/check lines, then `end` (or `abort`)");
        let mut ops = Vec::new();
        loop {
            match rl.readline("multi> ") {
                Ok(line) => {
                    let t = line.trim();
                    if t.is_empty() {
                        continue;
                    }
                    if t == "end" {
                        break;
                    }
                    if t == "abort" {
                        println!("multi aborted; nothing applied");
                        return Ok(());
                    }
                    match script::split(t)
                        .and_then(|cs| cs.iter().map(multi_op).collect::<Result<Vec<_>, _>>())
                    {
                        Ok(mut o) => ops.append(&mut o),
                        Err(e) => eprintln!("{e} (line ignored)"),
                    }
                }
                Err(ReadlineError::Interrupted) | Err(ReadlineError::Eof) => {
                    println!("multi aborted; nothing applied");
                    return Ok(());
                }
                Err(e) => return Err(ShellError::Io(e.to_string())),
            }
        }
        if ops.is_empty() {
            println!("multi: no ops");
            return Ok(());
        }
        let b = self.with_session()?;
        match self.rt.block_on(b.multi(&ops)) {
            Ok(lines) => {
                for l in lines {
                    println!("{l}");
                }
                Ok(())
            }
            Err((i, e)) if i < ops.len() => Err(ShellError::Usage(format!(
                "multi failed, nothing applied: op {} ({}) {}",
                i + 1,
                ops[i].path(),
                ShellError::op(ops[i].path(), e)
            ))),
            Err((_, e)) => Err(ShellError::op("multi", e)),
        }
    }
}

/// Runs `fut` unless Ctrl-C comes first (a request waiting out a reconnection can be
/// abandoned; a write already sent may still be applied, as with any lost answer).
async fn interruptible<T>(
    fut: impl std::future::Future<Output = Result<T, ShellError>>,
) -> Result<T, ShellError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())
        .map_err(|e| ShellError::Io(format!("cannot catch Ctrl-C: {e}")))?;
    tokio::select! {
        r = fut => r,
        _ = interrupt.recv() => Err(ShellError::Io(
            "interrupted (a write may still be applied)".into(),
        )),
    }
}

/// Prints connection notices as the session's state changes.
async fn notices(
    states: impl futures::Stream<Item = SessionState> + Send + 'static,
    printer: Printer,
) {
    let mut states = Box::pin(states);
    // The first item is the state at subscription (connected).
    let _ = states.next().await;
    while let Some(s) = states.next().await {
        let msg = match s {
            SessionState::Disconnected | SessionState::Connecting => {
                "Connection lost; reconnecting (the session is kept while the server allows)"
            }
            SessionState::Connected => "Reconnected; the session is intact",
            SessionState::Expired => {
                "Session expired: its ephemeral nodes and watches are gone. Use connect HOST:PORT for a new session"
            }
            SessionState::Closed => break,
        };
        print_async(&printer, msg.to_string());
    }
}

fn state_name(s: SessionState) -> &'static str {
    match s {
        SessionState::Connecting => "CONNECTING",
        SessionState::Connected => "CONNECTED",
        SessionState::Disconnected => "DISCONNECTED",
        SessionState::Expired => "EXPIRED",
        SessionState::Closed => "CLOSED",
    }
}

fn usage(name: &str, msg: &str) -> ShellError {
    let synopsis = INTERACTIVE_COMMANDS
        .iter()
        .find(|c| c.0 == name)
        .map(|c| c.1)
        .unwrap_or(name);
    ShellError::Usage(format!("{name}: {msg}\nusage: {synopsis}"))
}

fn no_args(name: &str, args: &[Word]) -> Result<(), ShellError> {
    match args.first() {
        None => Ok(()),
        Some(w) => Err(usage(name, &format!("unexpected argument: {}", w.text))),
    }
}

/// Whether a `get`'s flags include `w` (flags come before the path).
fn has_w_flag(args: &[Word]) -> bool {
    args.iter()
        .take_while(|w| !w.quoted && w.text.starts_with('-') && w.text != "--")
        .any(|w| w.text[1..].contains('w'))
}

/// The same `get` without `w` in its flags, for the script-mode parser.
fn strip_w_flag(raw: &RawCommand) -> RawCommand {
    let mut out = raw.clone();
    let mut in_flags = true;
    out.words = raw
        .words
        .iter()
        .enumerate()
        .filter_map(|(i, w)| {
            if i == 0 || !in_flags {
                return Some(w.clone());
            }
            if w.quoted || !w.text.starts_with('-') || w.text == "--" {
                in_flags = false;
                return Some(w.clone());
            }
            let rest: String = w.text[1..].chars().filter(|c| *c != 'w').collect();
            if rest.is_empty() {
                None
            } else {
                let mut w = w.clone();
                w.text = format!("-{rest}");
                Some(w)
            }
        })
        .collect();
    out
}

/// One line of a `multi` block: create, set, delete (as in script mode) or
/// `check PATH VERSION`.
pub fn multi_op(raw: &RawCommand) -> Result<MultiOp, ShellError> {
    let name = raw.words.first().map(|w| w.text.as_str()).unwrap_or("");
    if name == "check" {
        let [_, p, v] = raw.words.as_slice() else {
            return Err(ShellError::Usage("check: expected PATH VERSION".into()));
        };
        zabkeeper_proto::path::validate(&p.text, false)
            .map_err(|e| ShellError::Usage(e.to_string()))?;
        let version = v
            .text
            .parse()
            .map_err(|_| ShellError::Usage(format!("check: bad version: {}", v.text)))?;
        return Ok(MultiOp::Check {
            path: p.text.clone(),
            version,
        });
    }
    let data = |d: &DataArg| d.load();
    Ok(match command::parse(raw)? {
        Command::Create {
            path,
            data: d,
            mode,
            ttl_ms,
        } => MultiOp::Create {
            path,
            data: data(&d)?,
            mode,
            ttl_ms,
        },
        Command::Set {
            path,
            data: d,
            version,
        } => MultiOp::Set {
            path,
            data: data(&d)?,
            version,
        },
        Command::Delete { path, version } => MultiOp::Delete { path, version },
        other => {
            return Err(ShellError::Usage(format!(
                "{}: not allowed in multi (create, set, delete, check)",
                other.name()
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(src: &str) -> RawCommand {
        script::split(src).unwrap().remove(0)
    }

    #[test]
    fn completion_lists_the_parent_of_what_is_typed() {
        assert_eq!(completion_parent("/"), ("/".to_string(), ""));
        assert_eq!(completion_parent("/ap"), ("/".to_string(), "ap"));
        assert_eq!(completion_parent("/app/"), ("/app".to_string(), ""));
        assert_eq!(completion_parent("/app/co"), ("/app".to_string(), "co"));
    }

    #[test]
    fn command_names_include_the_interactive_ones_once() {
        let names = command_names();
        for n in [
            "watch",
            "multi",
            "connect",
            "quit",
            "tree",
            "get",
            "deleteall",
        ] {
            assert_eq!(names.iter().filter(|x| **x == n).count(), 1, "{n}");
        }
        assert!(!names.iter().any(|n| n.contains(' ')));
    }

    #[test]
    fn get_w_is_recognised_and_stripped_for_the_parser() {
        assert!(has_w_flag(&raw("get -w /a").words[1..]));
        assert!(has_w_flag(&raw("get -sw /a").words[1..]));
        assert!(!has_w_flag(&raw("get -s /a").words[1..]));
        assert!(!has_w_flag(&raw("get -- -w").words[1..]));
        assert!(!has_w_flag(&raw("get '-w'").words[1..]));
        let parsed = |s: &str| command::parse(&strip_w_flag(&raw(s))).unwrap();
        assert_eq!(
            parsed("get -w /a"),
            Command::Get {
                path: "/a".into(),
                stat: false
            }
        );
        assert_eq!(
            parsed("get -sw /a"),
            Command::Get {
                path: "/a".into(),
                stat: true
            }
        );
    }

    #[test]
    fn multi_lines_become_ops() {
        assert_eq!(
            multi_op(&raw("create -e /a 0x01ff")).unwrap(),
            MultiOp::Create {
                path: "/a".into(),
                data: vec![1, 0xff],
                mode: crate::command::Mode::Ephemeral,
                ttl_ms: None
            }
        );
        assert_eq!(
            multi_op(&raw("set -v 3 /a x")).unwrap(),
            MultiOp::Set {
                path: "/a".into(),
                data: b"x".to_vec(),
                version: Some(3)
            }
        );
        assert_eq!(
            multi_op(&raw("delete /a")).unwrap(),
            MultiOp::Delete {
                path: "/a".into(),
                version: None
            }
        );
        assert_eq!(
            multi_op(&raw("check /a 7")).unwrap(),
            MultiOp::Check {
                path: "/a".into(),
                version: 7
            }
        );
        assert!(multi_op(&raw("check /a seven")).is_err());
        assert!(multi_op(&raw("get /a")).is_err());
        assert!(multi_op(&raw("create bad")).is_err());
    }
}
