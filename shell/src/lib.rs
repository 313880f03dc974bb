//! `zabkeeper-shell`: a zkCli-like command shell for zabkeeper.
//!
//! Layers, each reusable by a future interactive mode:
//! * [`script`]: splits text into commands and words (quoting, `;`, comments);
//! * [`command`]: parses words into a [`command::Command`] (flags, data literals, paths)
//!   and holds the help text;
//! * [`exec`]: runs a command against any [`backend::Backend`], giving text and JSON;
//! * [`runner`]: script mode (order, `--keep-going`, exit statuses, output);
//! * [`repl`]: the interactive shell (rustyline), reusing the layers above;
//! * [`client_backend`]: the [`backend::Backend`] over `zabkeeper_client::Client`.
//!
//! Output follows zkCli where zkCli has a format (`stat`), and is otherwise plain and
//! script-friendly; `exec.rs` lists the differences.

pub mod acl;
pub mod backend;
pub mod client_backend;
pub mod command;
pub mod data;
pub mod error;
pub mod exec;
pub mod format;
pub mod quota;
pub mod repl;
pub mod runner;
pub mod script;
