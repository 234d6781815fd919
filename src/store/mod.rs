//! Durable storage: the only module that speaks SQL.
//!
//! - [`files`]: notices when the database file is no longer the one at its
//!   path (deleted, moved, replaced), so nothing is acknowledged into it.
//! - [`bodies`]: how raw request bodies are stored (compressed) and read
//!   back: every reader of a body goes through it.
//! - [`retention`]: what may be removed, when, in small batches (the
//!   background task and `ipnsync prune`).
//! - [`migrations`]: the schema, embedded in the binary, applied at open.
//! - [`writer`]: the single writer thread that owns the write connection and
//!   commits queued work in batches (group commit).
//! - [`queries`]: read-only queries for the dispatcher and the CLI.
//! - [`review`]: review actions (orders waiting for a human, what an
//!   operator's validate / deny recorded).
//!
//! Every connection is opened with explicit pragmas (WAL, `synchronous=FULL`,
//! foreign keys, busy timeout) rather than trusting compile-time defaults:
//! a notification is acknowledged only after its commit is on disk.

pub mod bodies;
pub mod checkpoint;
pub mod confirm;
pub mod console;
pub mod files;
pub mod inspect;
pub mod migrations;
mod orders;
pub mod queries;
pub mod retention;
pub mod review;
pub mod writer;

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};
use thiserror::Error;

pub use writer::{IntakeReceipt, NewNotification, PushReport, SubmitError, WriterHandle};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database schema version {found} is newer than this binary knows ({known}); refusing to run")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Body(#[from] bodies::BodyError),
}

fn configure(conn: &Connection) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Opens the database for writing, switches it to WAL with
/// `synchronous=FULL`, and applies pending migrations.
pub fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.display().to_string(),
        source,
    })?;
    configure(&conn)?;
    // A new database hands the pages retention frees back to the file
    // system in small steps (`retention::vacuum_step`). This only takes
    // before the first table exists; an older database keeps its mode
    // (switching needs a full VACUUM) and reuses freed pages internally.
    // Only an empty file is touched: on an existing one the pragma would do
    // nothing but still need a write (a read-only file must keep opening,
    // so that the daemon can say it is not writable).
    let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0))?;
    if pages == 0 {
        conn.pragma_update(None, "auto_vacuum", "INCREMENTAL")?;
    }
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "journal_mode is {mode}, WAL required"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Checkpoints normally run in the background (`checkpoint`), not
    // inside a commit that notifications are waiting on.
    conn.pragma_update(
        None,
        "wal_autocheckpoint",
        checkpoint::WRITER_AUTOCHECKPOINT_PAGES,
    )?;
    migrations::apply(&conn)?;
    Ok(conn)
}

/// Opens a read-only connection (dispatcher, CLI). WAL lets it read while
/// the daemon writes.
pub fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|source| StoreError::Open {
        path: path.display().to_string(),
        source,
    })?;
    configure(&conn)?;
    Ok(conn)
}

/// Milliseconds since the Unix epoch: the time unit of every stored column.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
