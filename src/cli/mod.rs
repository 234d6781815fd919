//! The operator commands of the `ipnsync` binary.
//!
//! They run next to the daemon, against the same database (WAL lets them
//! read while it writes): [`inspect`] shows orders, their timeline and the
//! outbox; [`actions`] retries, replays and prunes; [`review`] lists,
//! validates and denies payments held for review; [`sign`] signs and sends
//! test notifications. `main.rs` only parses arguments and maps a
//! [`CliError`] to its exit code. Human output is rendered by [`table`];
//! `--json` prints one JSON document whose field names are documented in
//! `docs/CLI.md`.
//!
//! None of this touches SQL: everything goes through `store::read` and `store::operator`.

pub mod actions;
pub mod inspect;
pub mod reconcile;
pub mod review;
pub mod sign;
pub mod table;

use std::io::Write;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::config::{Config, ConfigError};
use crate::store::StoreError;

/// Exit status for success.
pub const EXIT_OK: u8 = 0;
/// Not found, nothing to do, or the remote side refused.
pub const EXIT_NOT_DONE: u8 = 1;
/// Usage or configuration error.
pub const EXIT_USAGE: u8 = 2;
/// The database could not be opened or read/written.
pub const EXIT_DATABASE: u8 = 3;
/// A review action was done at the gateway but could not be recorded:
/// unlike a database error, not to be retried.
pub const EXIT_DONE_NOT_RECORDED: u8 = 4;

/// Why an operator command did not succeed; each maps to one exit code.
#[derive(Debug, Error)]
pub enum CliError {
    /// The order, event or outbox row asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The request was valid but there was nothing to change.
    #[error("{0}")]
    NothingToDo(String),
    /// The remote endpoint refused the request or could not be reached.
    #[error("{0}")]
    Remote(String),
    #[error("{0}")]
    Usage(String),
    #[error("{path}: {source}")]
    Config { path: PathBuf, source: ConfigError },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Done at the remote end, but not recorded here: do not retry.
    #[error("{0}")]
    DoneNotRecorded(String),
    #[error("cannot write the output: {0}")]
    Output(#[from] std::io::Error),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::NotFound(_) | CliError::NothingToDo(_) | CliError::Remote(_) => EXIT_NOT_DONE,
            CliError::Usage(_) | CliError::Config { .. } => EXIT_USAGE,
            CliError::Store(_) => EXIT_DATABASE,
            CliError::DoneNotRecorded(_) => EXIT_DONE_NOT_RECORDED,
            CliError::Output(_) => EXIT_NOT_DONE,
        }
    }

    /// Whether the reader of our output went away (`ipnsync orders | head`):
    /// not worth a message, and not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, CliError::Output(e) if e.kind() == std::io::ErrorKind::BrokenPipe)
    }
}

/// The configuration file, or the embedded demo configuration.
pub fn load_config(path: Option<&Path>) -> Result<Config, CliError> {
    match path {
        Some(p) => Config::load(p).map_err(|source| CliError::Config {
            path: p.to_owned(),
            source,
        }),
        None => Ok(Config::embedded_default()),
    }
}

/// The database an operator command works on: `--db` when given (the
/// configuration is then not read at all, so a file whose secrets only
/// resolve under systemd does not get in the way), otherwise the
/// configuration's `database`.
pub fn database_path(
    config: Option<&Path>,
    db: Option<&Path>,
) -> Result<crate::store::Database, CliError> {
    match db {
        Some(db) => {
            crate::store::Database::from_command_line(db).map_err(|source| CliError::Config {
                path: PathBuf::from("--db"),
                source,
            })
        }
        None => Ok(load_config(config)?.database),
    }
}

/// Writes a command's output to stdout in one go.
pub fn emit(text: &str) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// One JSON document, pretty-printed, newline-terminated.
pub fn json_document(value: &serde_json::Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("a JSON value always serialises");
    text.push('\n');
    text
}

/// How an empty shop (a source without one) is shown to humans.
pub(crate) fn shop_label(shop: &str) -> &str {
    if shop.is_empty() {
        "-"
    } else {
        shop
    }
}
