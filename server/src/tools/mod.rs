//! Data tools, run as `zabkeeper <subcommand>`: what an operator needs to look
//! inside a data directory, check it, move a tree in and out as JSON, and back up
//! a running member.
//!
//! * `dump-log PATH` / `dump-snapshot PATH`: every txn (zxid, session, time, op)
//!   or every node (path, Stat, data) in readable lines, like ZooKeeper's
//!   `TxnLogToolkit` and `SnapshotFormatter`. `PATH` is a file or a data dir.
//! * `verify DATA_DIR`: checks the CRC of every log record and segment header and
//!   of every snapshot, that zxids increase across segments, and that every record
//!   decodes as a txn; each problem is printed with its file and byte offset, and
//!   the exit status is 1 if there was any (`datadir.rs`).
//! * `export DATA_DIR|ADMIN_ADDR`: the tree as JSON on standard output;
//!   `import FILE DATA_DIR` builds a fresh data dir from it (`tree_json.rs`).
//! * `backup ADMIN_ADDR FILE`: fetches `/backup` from a running member's admin
//!   port (a snapshot consistent at one zxid, taken after the member caught up
//!   with the leader); `restore FILE DATA_DIR` makes a data dir a new ensemble
//!   member (or a standalone server) starts from (`backup.rs`).
//!
//! Everything here reads data directories without changing them (no torn-tail
//! repair, no lock), so it is safe on a directory a server is using; writes go
//! only into an empty directory given to `import` or `restore`.

mod backup;
pub mod datadir;
mod dump;
mod http;
pub mod tree_json;

use crate::error::{Error, Result};
use std::path::PathBuf;
use std::process::ExitCode;

/// The data-tool subcommands of `zabkeeper`.
#[derive(clap::Subcommand, Debug)]
pub enum Tool {
    /// Print every txn of a log segment, or of every segment of a data dir.
    DumpLog {
        /// A `log.<zxid>` file, a `log/` directory or a data directory.
        path: PathBuf,
    },
    /// Print every node of a snapshot file (or the newest valid one of a data dir).
    DumpSnapshot {
        /// A `snapshot.<zxid>` file, a backup file or a data directory.
        path: PathBuf,
    },
    /// Check every checksum of a data directory; exit 1 if anything is wrong.
    Verify {
        /// The data directory (`data_dir`).
        dir: PathBuf,
    },
    /// Write the tree as JSON to standard output.
    Export {
        /// A data directory, or a running member's admin address (HOST:PORT).
        source: String,
    },
    /// Build a fresh data directory from a JSON tree written by `export`.
    Import {
        /// The JSON file (`-` for standard input).
        file: PathBuf,
        /// An empty or missing directory.
        dir: PathBuf,
    },
    /// Save a consistent snapshot of a running member to FILE.
    Backup {
        /// The member's admin address (HOST:PORT of `admin_port`).
        addr: String,
        file: PathBuf,
    },
    /// Turn a backup FILE into a data directory a new server or ensemble starts from.
    Restore {
        file: PathBuf,
        /// An empty or missing directory.
        dir: PathBuf,
    },
}

/// Runs a tool; its report goes to standard output, errors to standard error.
pub fn run(tool: Tool) -> ExitCode {
    let result = match tool {
        Tool::DumpLog { path } => dump::log(&path),
        Tool::DumpSnapshot { path } => dump::snapshot(&path),
        Tool::Verify { dir } => return verify(&dir),
        Tool::Export { source } => tree_json::export(&source),
        Tool::Import { file, dir } => tree_json::import(&file, &dir),
        Tool::Backup { addr, file } => backup::backup(&addr, &file),
        Tool::Restore { file, dir } => backup::restore(&file, &dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("zabkeeper: {e}");
            ExitCode::FAILURE
        }
    }
}

fn verify(dir: &std::path::Path) -> ExitCode {
    match datadir::verify(dir) {
        Ok(report) => {
            print!("{report}");
            if report.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("zabkeeper: {e}");
            ExitCode::from(2)
        }
    }
}

/// Refuses a directory that already holds data (import and restore start fresh).
fn require_empty_dir(dir: &std::path::Path) -> Result<()> {
    if !dir.exists() {
        return Ok(());
    }
    let mut entries = std::fs::read_dir(dir)?;
    if entries.next().is_some() {
        return Err(Error::Tool(format!(
            "{} is not empty: give a new directory",
            dir.display()
        )));
    }
    Ok(())
}
