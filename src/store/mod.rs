//! Durable storage: the only module that speaks SQL.
//!
//! # The interface
//!
//! The public items of these modules are the only way into the store, and
//! what a second backend (PostgreSQL, a later issue) implements; every
//! operation is named after what it does to orders, events and updates,
//! not after tables:
//!
//! | caller | operations |
//! |---|---|
//! | intake (`http`) | [`WriterHandle::submit`], [`submit_many_confirmed`](WriterHandle::submit_many_confirmed) → [`IntakeReceipt`] |
//! | dispatcher | [`queries::due_rows`], [`queries::next_due_at`]; [`WriterHandle::record_push`] |
//! | confirmer, reconciler | [`confirm::due`], [`confirm::next_due_at`], [`confirm::reconcile_targets`], [`confirm::reconcile_decision`]; [`WriterHandle::record_confirmation`], [`confirm::reconcile_now`] (CLI) |
//! | review actions | [`read::review_queue`] (queue, target, pending cancel); [`claims::claim_order`] → gateway → [`claims::finish_action`], [`claims::record_shop_only`] |
//! | CLI, console (reads) | [`read::orders`], [`read::console`], [`queries::outbox_rows`], [`queries::outbox_counts`] |
//! | CLI, console (writes) | [`operator::retry`], [`operator::retry_dead_update`], [`operator::replay`], [`operator::prune_bodies`] |
//! | daemon lifecycle | [`open_writer`], [`writer::spawn_watched`], [`checkpoint::spawn`], [`files::FileWatch`], [`read::open_read`], [`operator::open_operator`], [`open_reader`] |
//!
//! Why module functions and a writer handle rather than a `Store` trait:
//! the hot path (intake, push results, confirmations) already crosses the
//! boundary as messages to [`WriterHandle`], which names no SQL type, so a
//! second backend implements it by running the same commands in its own
//! transaction loop. The other operations are short, independent
//! transactions taking a connection; a trait with one implementation
//! would fix their signatures (blocking or async, connection or pool)
//! before the second backend shows what they need. Their callers outside
//! `store` still name `rusqlite::Connection` only through these functions'
//! arguments (the console's `read` helper and `cli::inspect::resolve_shop`).
//!
//! Inside, every decision path (intake, replay, confirmation,
//! reconciliation, review actions) applies its decision through `apply`:
//! one snapshot, one mapping of a verdict to columns, one way to move an
//! order and queue its shop update. `sql` reads and writes `Outcome` and
//! stored notifications. A backend is thus: the statements of `apply`,
//! `sql`, the writer's commands, and the reads.
//!
//! # Modules
//!
//! - [`files`]: notices when the database file is no longer the one at its
//!   path (deleted, moved, replaced), so nothing is acknowledged into it.
//! - [`bodies`]: how raw request bodies are stored (compressed) and read
//!   back: every reader of a body goes through it.
//! - [`retention`]: what may be removed, when, in small batches (the
//!   background task and `ipnsync prune`).
//! - [`migrations`]: the schema, embedded in the binary, applied at open.
//! - [`writer`]: the single writer thread that owns the write connection and
//!   commits queued work in batches (group commit): intake, push results,
//!   confirmations.
//! - `apply`: applying a decision to an order (shared by every path).
//! - [`queries`]: the dispatcher's reads (due rows) and outbox counts.
//! - [`confirm`]: confirmation and reconciliation (held notifications, the
//!   gateway's answers).
//! - [`read`]: what operators and the console read (orders, history,
//!   review queue, console lists).
//! - [`operator`]: what operators write (retry, replay, prune).
//! - [`claims`]: review actions' claims on orders and their records.
//! - [`checkpoint`]: WAL checkpoints on a timer.
//!
//! Every connection is opened with explicit pragmas (WAL, `synchronous=FULL`,
//! foreign keys, busy timeout) rather than trusting compile-time defaults:
//! a notification is acknowledged only after its commit is on disk.

mod apply;
pub mod bodies;
pub mod checkpoint;
pub mod claims;
pub mod confirm;
pub mod files;
pub mod migrations;
pub mod operator;
pub mod queries;
pub mod read;
pub mod retention;
mod sql;
#[cfg(test)]
mod test_support;
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
    Sql(#[source] rusqlite::Error),
    #[error("database schema version {found} is newer than this binary knows ({known}); refusing to run")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Body(#[from] bodies::BodyError),
}

impl From<rusqlite::Error> for StoreError {
    /// An unknown enum value read through `FromSql` is [`StoreError::Corrupt`].
    fn from(e: rusqlite::Error) -> Self {
        sql::classify(e)
    }
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
