//! `zabkeeper-shell`: run zkCli-like commands against a zabkeeper server.
//!
//! Interactive when standard input is a terminal and no `-c` is given (`repl.rs`).
//! Script mode: `-c "CMD; CMD"` or commands on standard input when it is not a terminal.
//! Exit status: 0 success, 1 a command failed, 2 usage error, 3 connection failure.

use clap::Parser;
use std::io::{IsTerminal, Read};
use std::time::Duration;
use zabkeeper_shell::error::{ShellError, EXIT_USAGE};
use zabkeeper_shell::runner::{parse_all, run, RunOptions};
use zabkeeper_shell::{client_backend, script};

#[derive(Parser, Debug)]
#[command(
    name = "zabkeeper-shell",
    about = "zkCli-like shell for zabkeeper (interactive, or script mode)",
    args_override_self = true
)]
struct Args {
    /// Servers to try, comma separated.
    #[arg(long, default_value = "127.0.0.1:2281")]
    server: String,
    /// Connection and per-request timeout, milliseconds.
    #[arg(long, default_value_t = 10_000)]
    timeout: u64,
    /// Commands to run, separated by `;` or newlines.
    #[arg(short = 'c', long = "command")]
    command: Option<String>,
    /// Run every command even after a failure; exit non-zero at the end if any failed.
    #[arg(long)]
    keep_going: bool,
    /// Print one JSON object per command result.
    #[arg(long)]
    json: bool,
}

fn main() {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let _ = e.print();
            std::process::exit(if e.use_stderr() { EXIT_USAGE } else { 0 });
        }
    };
    std::process::exit(real_main(args));
}

fn real_main(args: Args) -> i32 {
    let text = match args.command {
        Some(c) => c,
        None if !std::io::stdin().is_terminal() => {
            let mut s = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut s) {
                eprintln!("cannot read commands from stdin: {e}");
                return EXIT_USAGE;
            }
            s
        }
        None => {
            let timeout = Duration::from_millis(args.timeout.max(1));
            return match zabkeeper_shell::repl::Repl::new(&args.server, timeout) {
                Ok(r) => r.run(),
                Err(e) => {
                    eprintln!("{e}");
                    1
                }
            };
        }
    };
    let commands = match script::split(&text) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return e.exit_code();
        }
    };
    let opts = RunOptions {
        keep_going: args.keep_going,
        json: args.json,
    };
    let timeout = Duration::from_millis(args.timeout.max(1));
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}", ShellError::Io(format!("cannot start runtime: {e}")));
            return 1;
        }
    };
    let server = args.server.clone();
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    rt.block_on(run(
        parse_all(&commands),
        || client_backend::connect(&server, timeout),
        |b| async move {
            let _ = b.client.close().await;
        },
        opts,
        &mut out,
        &mut err,
    ))
}
