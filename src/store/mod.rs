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
//! a notification is acknowledged only after its commit is on disk. The
//! writer's connection alone opens through [`db::gather`], which turns a
//! commit's WAL writes into one `pwrite` and needs that `FULL`.

mod apply;
pub mod bodies;
pub mod checkpoint;
pub mod claims;
pub mod confirm;
pub mod db;
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

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::OpenFlags;
use thiserror::Error;

pub use crate::config::Database;
pub use db::{Backend, Connection};
pub use writer::{IntakeReceipt, NewNotification, PushReport, SubmitError, WriterHandle};

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open { path: String, source: db::Error },
    #[error("database: {0}")]
    Sql(#[source] db::Error),
    #[error("database schema version {found} is newer than this binary knows ({known}); refusing to run")]
    SchemaTooNew { found: i64, known: i64 },
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error(transparent)]
    Body(#[from] bodies::BodyError),
}

impl StoreError {
    /// Another daemon's transaction got in the way (PostgreSQL): the same
    /// work, run again, succeeds or finds what the other one did.
    pub fn is_conflict(&self) -> bool {
        matches!(self, StoreError::Sql(e) | StoreError::Open { source: e, .. } if e.is_conflict())
    }
}

impl From<db::Error> for StoreError {
    /// An unknown enum value read through `FromSql` is [`StoreError::Corrupt`].
    fn from(e: db::Error) -> Self {
        sql::classify(e)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        sql::classify(db::Error::Sqlite(e))
    }
}

fn configure(conn: &rusqlite::Connection) -> Result<(), rusqlite::Error> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// What names a database to the `open_*` functions: a [`Database`], or a
/// SQLite file's path (tests and tools).
pub trait AsDatabase {
    fn as_database(&self) -> std::borrow::Cow<'_, Database>;
}

impl AsDatabase for Database {
    fn as_database(&self) -> std::borrow::Cow<'_, Database> {
        std::borrow::Cow::Borrowed(self)
    }
}

impl AsDatabase for Path {
    fn as_database(&self) -> std::borrow::Cow<'_, Database> {
        std::borrow::Cow::Owned(Database::Sqlite(self.to_path_buf()))
    }
}

impl AsDatabase for std::path::PathBuf {
    fn as_database(&self) -> std::borrow::Cow<'_, Database> {
        self.as_path().as_database()
    }
}

fn open_error(db: &Database, source: impl Into<db::Error>) -> StoreError {
    StoreError::Open {
        path: db.to_string(),
        source: source.into(),
    }
}

/// Opens the database for writing and applies pending migrations. SQLite:
/// WAL with `synchronous=FULL`. PostgreSQL: a session of its own (not from
/// the readers' pool) with `synchronous_commit=on`.
pub fn open_writer<D: AsDatabase + ?Sized>(db: &D) -> Result<Connection, StoreError> {
    let db = &*db.as_database();
    let conn = match db {
        Database::Sqlite(path) => Connection::from(open_sqlite_writer(path)?),
        Database::Postgres(_) => {
            let target = pg_target(db)?;
            Connection::Postgres(Box::new(
                db::pg::PgConnection::open(target).map_err(|e| open_error(db, e))?,
            ))
        }
    };
    migrations::apply(&conn)?;
    Ok(conn)
}

fn open_sqlite_writer(path: &Path) -> Result<rusqlite::Connection, StoreError> {
    // The writer's WAL writes are gathered into one `pwrite` per commit
    // (`db::gather`); that VFS needs `synchronous=FULL`, set below and
    // never changed on this connection (rule `gathered-until-sync`).
    let opened = match db::gather::name() {
        Some(vfs) => {
            rusqlite::Connection::open_with_flags_and_vfs(path, rusqlite::OpenFlags::default(), vfs)
        }
        None => rusqlite::Connection::open(path),
    };
    let conn =
        opened.map_err(|source| open_error(&Database::Sqlite(path.to_path_buf()), source))?;
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
    Ok(conn)
}

/// Opens a reading connection (dispatcher, CLI, console). SQLite: a
/// read-only connection (WAL lets it read while the daemon writes).
/// PostgreSQL: a session from this process's bounded pool for `db`.
pub fn open_reader<D: AsDatabase + ?Sized>(db: &D) -> Result<Connection, StoreError> {
    let db = &*db.as_database();
    match db {
        Database::Sqlite(path) => {
            let conn = rusqlite::Connection::open_with_flags(
                path,
                OpenFlags::SQLITE_OPEN_READ_ONLY
                    | OpenFlags::SQLITE_OPEN_NO_MUTEX
                    | OpenFlags::SQLITE_OPEN_URI,
            )
            .map_err(|source| open_error(db, source))?;
            configure(&conn)?;
            Ok(Connection::from(conn))
        }
        Database::Postgres(_) => Ok(Connection::Postgres(Box::new(
            pg_pool(db)?.get().map_err(|e| open_error(db, e))?,
        ))),
    }
}

/// A connection of its own for a long-lived task (retention): SQLite
/// opens the file as the writer does; PostgreSQL opens a session outside
/// the readers' pool.
pub fn open_session<D: AsDatabase + ?Sized>(db: &D) -> Result<Connection, StoreError> {
    let db = &*db.as_database();
    match db {
        Database::Sqlite(_) => open_reader(db),
        Database::Postgres(_) => Ok(Connection::Postgres(Box::new(
            db::pg::PgConnection::open(pg_target(db)?).map_err(|e| open_error(db, e))?,
        ))),
    }
}

/// The connection target of a PostgreSQL database.
fn pg_target(db: &Database) -> Result<Arc<db::pg::PgTarget>, StoreError> {
    Ok(pg_pool(db)?.target().clone())
}

/// The readers' pool of a PostgreSQL database: one per database and
/// process, however many tasks open readers (the bound is per daemon).
fn pg_pool(db: &Database) -> Result<Arc<db::pool::PgPool>, StoreError> {
    let Database::Postgres(pg) = db else {
        unreachable!("pg_pool is only asked for a PostgreSQL database")
    };
    type Pools = Mutex<HashMap<(String, Option<String>), Arc<db::pool::PgPool>>>;
    static POOLS: OnceLock<Pools> = OnceLock::new();
    let password = pg.password.as_ref().map(|(s, _)| s.expose().to_owned());
    let key = (pg.url.clone(), password.clone());
    let mut pools = POOLS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(p) = pools.get(&key) {
        return Ok(p.clone());
    }
    let target = db::pg::PgTarget::new(&pg.url, password.as_deref())
        .map_err(|e| open_error(db, db::Error::Other(e)))?;
    let pool = db::pool::PgPool::new(target, pg.pool);
    pools.insert(key, pool.clone());
    Ok(pool)
}

/// This daemon's name among those sharing a database (host, process and a
/// random part): what its outbox claims carry (`claimed_by`) and what its
/// log says at start.
pub fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_else(|_| "host".into());
        format!(
            "{host}:{}:{:04x}",
            std::process::id(),
            rand::random::<u16>()
        )
    })
}

/// Milliseconds since the Unix epoch: the time unit of every stored column.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
