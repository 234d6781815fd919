//! One connection type for both engines: SQLite (the embedded default)
//! and PostgreSQL (several daemons on one database, issue 16).
//!
//! The store writes each statement once, in the SQL both engines accept
//! (`?N` parameters, `ON CONFLICT`, `RETURNING`, `CAST(… AS BIGINT)`), and
//! runs it through [`Connection`]. The few places where the engines differ
//! (JSON paths, `MAX(a, b)`, locks, pragmas) ask [`Connection::backend`]
//! and say why beside the statement. The API copies the subset of
//! `rusqlite` the store used (`prepare_cached`, `query_row`, `params!`,
//! `OptionalExtension`, transactions), so reading a store function does not
//! depend on which engine runs it.
//!
//! - `value`: what is bound and read ([`Value`], [`ToSql`], [`FromSql`]).
//! - `lite`: the SQLite adapter; `kept`: the statements a SQLite
//!   connection keeps and binds without copying ([`Connection::prepare_kept`]);
//!   `gather`: the writer's VFS.
//! - `pg`: the PostgreSQL adapter (placeholders, lenient binds by column
//!   type, reconnect, the session settings every connection carries).
//! - `pool`: a bounded pool of PostgreSQL connections for the readers.

pub mod gather;
mod kept;
mod lite;
pub mod pg;
pub mod pool;
mod value;

use std::fmt;

pub use value::{FromSql, FromSqlError, ToSql, Value};

/// Which engine a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database error, from either engine or from reading a column.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", pg::describe(.0))]
    Postgres(#[from] postgres::Error),
    #[error("query returned no rows")]
    NoRows,
    #[error("column {index}: {source}")]
    Conversion {
        index: usize,
        #[source]
        source: FromSqlError,
    },
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// A UNIQUE or PRIMARY KEY constraint refused the row (SQLite).
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            Error::Sqlite(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
        )
    }

    /// Another transaction got in the way (PostgreSQL: serialization
    /// failure, deadlock, a unique key another daemon inserted first):
    /// running the same work again is the answer, not an error.
    pub fn is_conflict(&self) -> bool {
        match self {
            Error::Postgres(e) => pg::is_conflict(e),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `query_row(…).optional()`: no row is `None`, as in `rusqlite`.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Statement parameters: `params![a, b]`, `[x]`, `[]` or `()`.
pub trait Params {
    fn values(&self) -> Vec<Value<'_>>;

    /// `f` over [`Params::values`], which lists and arrays of parameters
    /// hand over from the stack: the writer binds a few statements per
    /// notification, and a list on the heap was an allocation each
    /// (issue 18).
    fn with_values<R>(&self, f: impl FnOnce(&[Value<'_>]) -> R) -> R {
        f(&self.values())
    }
}

/// Parameter lists up to this long are bound from the stack.
const VALUES_ON_STACK: usize = 16;

fn with_stack_values<'a, R>(
    len: usize,
    values: impl Iterator<Item = Value<'a>>,
    f: impl FnOnce(&[Value<'a>]) -> R,
) -> R {
    if len > VALUES_ON_STACK {
        return f(&values.collect::<Vec<_>>());
    }
    let mut on_stack = [Value::Null; VALUES_ON_STACK];
    for (slot, value) in on_stack.iter_mut().zip(values) {
        *slot = value;
    }
    f(&on_stack[..len])
}

impl Params for () {
    fn values(&self) -> Vec<Value<'_>> {
        Vec::new()
    }
}

impl Params for &[&dyn ToSql] {
    fn values(&self) -> Vec<Value<'_>> {
        self.iter().map(|p| p.to_value()).collect()
    }

    fn with_values<R>(&self, f: impl FnOnce(&[Value<'_>]) -> R) -> R {
        with_stack_values(self.len(), self.iter().map(|p| p.to_value()), f)
    }
}

/// `[]`: no parameters (one type for it, so that `[]` needs no annotation).
impl Params for [&dyn ToSql; 0] {
    fn values(&self) -> Vec<Value<'_>> {
        Vec::new()
    }
}

macro_rules! array_params {
    ($($n:literal)*) => {$(
        impl<T: ToSql> Params for [T; $n] {
            fn values(&self) -> Vec<Value<'_>> {
                self.iter().map(|p| p.to_value()).collect()
            }

            fn with_values<R>(&self, f: impl FnOnce(&[Value<'_>]) -> R) -> R {
                with_stack_values($n, self.iter().map(|p| p.to_value()), f)
            }
        }
    )*};
}
array_params!(1 2 3 4 5 6 7 8);

/// `params![a, b, …]`: a parameter list of mixed types.
#[macro_export]
#[doc(hidden)]
macro_rules! store_params {
    () => { &[] as &[&dyn $crate::store::db::ToSql] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::store::db::ToSql),+] as &[&dyn $crate::store::db::ToSql] };
}
pub use crate::store_params as params;

/// How a transaction starts. On SQLite `Immediate` takes the write lock
/// at once (`BEGIN IMMEDIATE`); on PostgreSQL every transaction is
/// `READ COMMITTED` and the store serialises what must be serial with
/// row and order locks (`store::apply::lock_order`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionBehavior {
    Deferred,
    Immediate,
}

/// A SQLite connection with the statements it keeps for its life
/// (`kept`: the writer's per-notification statements, bound without
/// copies). Derefs to the `rusqlite` connection.
pub struct Lite {
    /// Declared first: dropped, so finalized, before `conn` closes.
    /// Boxed: eight slots would make every connection value large.
    kept: Box<kept::KeptStatements>,
    conn: rusqlite::Connection,
}

impl std::ops::Deref for Lite {
    type Target = rusqlite::Connection;
    fn deref(&self) -> &rusqlite::Connection {
        &self.conn
    }
}

/// How many statements a SQLite connection keeps
/// ([`Connection::prepare_kept`]).
pub const KEPT_SLOTS: usize = kept::SLOTS;

/// A connection to either engine.
pub enum Connection {
    Sqlite(Lite),
    /// Boxed: a PostgreSQL session is several times a SQLite handle's size.
    Postgres(Box<pg::PgConnection>),
}

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Connection::Sqlite(_) => f.write_str("Connection(sqlite)"),
            Connection::Postgres(_) => f.write_str("Connection(postgres)"),
        }
    }
}

impl From<rusqlite::Connection> for Connection {
    fn from(conn: rusqlite::Connection) -> Self {
        Connection::Sqlite(Lite {
            kept: Box::default(),
            conn,
        })
    }
}

impl Connection {
    pub fn backend(&self) -> Backend {
        match self {
            Connection::Sqlite(_) => Backend::Sqlite,
            Connection::Postgres(_) => Backend::Postgres,
        }
    }

    /// Opens a SQLite file as `rusqlite` does (tests and tools; the daemon
    /// opens through `store::open_*`).
    pub fn open(path: impl AsRef<std::path::Path>) -> Result<Connection> {
        Ok(rusqlite::Connection::open(path)?.into())
    }

    /// An in-memory SQLite database (tests).
    pub fn open_in_memory() -> Result<Connection> {
        Ok(rusqlite::Connection::open_in_memory()?.into())
    }

    /// Sets a SQLite pragma; PostgreSQL has none.
    pub fn pragma_update<V: rusqlite::ToSql>(
        &self,
        schema: Option<rusqlite::DatabaseName<'_>>,
        name: &str,
        value: V,
    ) -> Result<()> {
        match self {
            Connection::Sqlite(c) => Ok(c.pragma_update(schema, name, value)?),
            Connection::Postgres(_) => Err(Error::Other(format!("PRAGMA {name}: SQLite only"))),
        }
    }

    /// What to prepare for `sql`, an `INSERT … RETURNING id` (`ON
    /// CONFLICT … DO NOTHING` allowed), to run with
    /// [`Statement::inserted_id`]: on SQLite the text without its
    /// `RETURNING` clause. SQLite buffers a `RETURNING` row in a temporary
    /// b-tree it creates for the statement and opens a statement journal
    /// for it, as for a trigger (a third of the writer's allocations,
    /// issue 18); the connection's last rowid says the same.
    pub fn insert_text<'s>(&self, sql: &'s str) -> &'s str {
        match (self, sql.trim_end().strip_suffix("RETURNING id")) {
            (Connection::Sqlite(_), Some(insert)) => insert,
            _ => sql,
        }
    }

    /// Runs `sql`, an `INSERT … RETURNING id`: the new row's id, `None`
    /// when a conflict clause skipped the row (see [`Self::insert_text`]).
    pub fn insert_returning_id<P: Params>(&self, sql: &str, params: P) -> Result<Option<i64>> {
        self.prepare_cached(self.insert_text(sql))?
            .inserted_id(params)
    }

    /// The SQLite connection, for what only SQLite has (pragmas, WAL
    /// checkpoints, incremental vacuum); `None` on PostgreSQL.
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Connection::Sqlite(c) => Some(&c.conn),
            Connection::Postgres(_) => None,
        }
    }

    /// A prepared statement, cached per connection.
    pub fn prepare_cached(&self, sql: &str) -> Result<Statement<'_>> {
        Ok(Statement(match self {
            Connection::Sqlite(c) => StatementInner::Sqlite(c.prepare_cached(sql)?, &c.conn),
            Connection::Postgres(c) => StatementInner::Postgres(c.prepare(sql)?, c),
        }))
    }

    /// The statement this connection keeps in `slot` (below
    /// [`KEPT_SLOTS`]), prepared from `sql` on first use: on SQLite one
    /// that binds without copying (`kept`, rule `bound-only-while-running`)
    /// and runs only through [`Statement::execute`],
    /// [`Statement::inserted_id`] and [`Statement::query_row`]. While the
    /// slot's statement is out, and on PostgreSQL, this is
    /// [`Connection::prepare_cached`]. A slot takes one text only.
    pub fn prepare_kept(&self, slot: usize, sql: &str) -> Result<Statement<'_>> {
        if let Connection::Sqlite(c) = self {
            if let Some(kept) = c.kept.take(&c.conn, slot, sql)? {
                return Ok(Statement(StatementInner::Kept(kept, &c.conn)));
            }
        }
        self.prepare_cached(sql)
    }

    /// [`Connection::prepare_cached`]: every statement is cached.
    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        self.prepare_cached(sql)
    }

    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    pub fn query_row<T, P, F>(&self, sql: &str, params: P, f: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// Several statements without parameters (schema scripts, `BEGIN`).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Connection::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Connection::Postgres(c) => c.batch_execute(sql),
        }
    }

    /// A transaction; rolled back when dropped without `commit`.
    pub fn transaction(&mut self) -> Result<Transaction<'_>> {
        self.transaction_with_behavior(TransactionBehavior::Deferred)
    }

    pub fn transaction_with_behavior(
        &mut self,
        behavior: TransactionBehavior,
    ) -> Result<Transaction<'_>> {
        self.begin(behavior)
    }

    /// A transaction on a shared reference (the caller makes sure none is
    /// open already).
    pub fn unchecked_transaction(&self) -> Result<Transaction<'_>> {
        self.begin(TransactionBehavior::Deferred)
    }

    fn begin(&self, behavior: TransactionBehavior) -> Result<Transaction<'_>> {
        match self {
            Connection::Sqlite(c) => c.execute_batch(match behavior {
                TransactionBehavior::Deferred => "BEGIN DEFERRED",
                TransactionBehavior::Immediate => "BEGIN IMMEDIATE",
            })?,
            Connection::Postgres(c) => c.begin()?,
        }
        Ok(Transaction {
            conn: self,
            finished: false,
        })
    }
}

/// An open transaction; derefs to its connection.
pub struct Transaction<'c> {
    conn: &'c Connection,
    finished: bool,
}

impl Transaction<'_> {
    pub fn commit(mut self) -> Result<()> {
        self.finished = true;
        match self.conn {
            Connection::Sqlite(c) => Ok(c.execute_batch("COMMIT")?),
            Connection::Postgres(c) => c.commit(),
        }
    }
}

impl<'c> Transaction<'c> {
    /// A savepoint inside this transaction: released by `commit`, rolled
    /// back to when dropped without it (the transaction goes on).
    pub fn savepoint(&self) -> Result<Savepoint<'c>> {
        self.conn.execute_batch("SAVEPOINT ipnsync_step")?;
        Ok(Savepoint {
            conn: self.conn,
            finished: false,
        })
    }
}

/// A savepoint; derefs to its connection.
pub struct Savepoint<'c> {
    conn: &'c Connection,
    finished: bool,
}

impl Savepoint<'_> {
    pub fn commit(mut self) -> Result<()> {
        self.finished = true;
        self.conn.execute_batch("RELEASE SAVEPOINT ipnsync_step")
    }
}

impl std::ops::Deref for Savepoint<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.conn.execute_batch(
                "ROLLBACK TO SAVEPOINT ipnsync_step; RELEASE SAVEPOINT ipnsync_step",
            );
        }
    }
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.finished {
            match self.conn {
                Connection::Sqlite(c) => {
                    if !c.is_autocommit() {
                        let _ = c.execute_batch("ROLLBACK");
                    }
                }
                Connection::Postgres(c) => c.rollback_quietly(),
            }
        }
    }
}

/// A prepared statement of either engine.
pub struct Statement<'c>(StatementInner<'c>);

enum StatementInner<'c> {
    Sqlite(rusqlite::CachedStatement<'c>, &'c rusqlite::Connection),
    Kept(kept::KeptGuard<'c>, &'c rusqlite::Connection),
    Postgres(postgres::Statement, &'c pg::PgConnection),
}

impl Statement<'_> {
    pub fn execute<P: Params>(&mut self, params: P) -> Result<usize> {
        params.with_values(|values| match &mut self.0 {
            StatementInner::Sqlite(s, _) => lite::execute(s, values),
            StatementInner::Kept(s, _) => s.execute(values),
            StatementInner::Postgres(s, c) => c.execute(s, values),
        })
    }

    /// Runs an insert prepared from [`Connection::insert_text`]: the new
    /// row's id, `None` when a conflict clause skipped the row. A SQLite
    /// connection is one thread's, so its last rowid is this statement's.
    pub fn inserted_id<P: Params>(&mut self, params: P) -> Result<Option<i64>> {
        if let StatementInner::Sqlite(_, conn) | StatementInner::Kept(_, conn) = &self.0 {
            let conn = *conn;
            let inserted = self.execute(params)?;
            return Ok((inserted == 1).then(|| conn.last_insert_rowid()));
        }
        self.query_row(params, |r| r.get::<_, i64>(0)).optional()
    }

    /// The first row, or [`Error::NoRows`].
    pub fn query_row<T, P, F>(&mut self, params: P, f: F) -> Result<T>
    where
        P: Params,
        F: FnOnce(&Row<'_>) -> Result<T>,
    {
        if let StatementInner::Kept(kept, _) = &mut self.0 {
            return params.with_values(|values| kept.query_row(values, |row| f(&Row::Kept(row))));
        }
        let mut rows = self.query(params)?;
        match rows.next()? {
            Some(row) => f(&row),
            None => Err(Error::NoRows),
        }
    }

    /// Every row through `f`, read at once.
    pub fn query_map<T, P, F>(
        &mut self,
        params: P,
        mut f: F,
    ) -> Result<std::vec::IntoIter<Result<T>>>
    where
        P: Params,
        F: FnMut(&Row<'_>) -> Result<T>,
    {
        let mut rows = self.query(params)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(f(&row));
        }
        Ok(out.into_iter())
    }

    pub fn query<P: Params>(&mut self, params: P) -> Result<Rows<'_>> {
        let inner = &mut self.0;
        // The values are bound (SQLite copies them) or sent (PostgreSQL)
        // here: the rows borrow the statement, not them.
        params.with_values(move |values| {
            Ok(Rows(match inner {
                StatementInner::Sqlite(s, _) => RowsInner::Sqlite(lite::query(s, values)?),
                // Its values are bound in place, so they may not outlive
                // this call (rule `bound-only-while-running`).
                StatementInner::Kept(..) => {
                    return Err(Error::Other(
                        "a kept statement reads through query_row only".into(),
                    ))
                }
                StatementInner::Postgres(s, c) => RowsInner::Postgres(c.query(s, values)?, 0),
            }))
        })
    }
}

/// The rows of a query.
pub struct Rows<'s>(RowsInner<'s>);

enum RowsInner<'s> {
    Sqlite(rusqlite::Rows<'s>),
    Postgres(Vec<postgres::Row>, usize),
}

impl Rows<'_> {
    #[allow(clippy::should_implement_trait)] // fallible, as rusqlite's
    pub fn next(&mut self) -> Result<Option<Row<'_>>> {
        match &mut self.0 {
            RowsInner::Sqlite(rows) => Ok(rows.next()?.map(Row::Sqlite)),
            RowsInner::Postgres(rows, at) => {
                let row = rows.get(*at);
                *at += 1;
                Ok(row.map(Row::Postgres))
            }
        }
    }
}

/// A column position (`usize` only, so that `get(0)` needs no suffix).
pub trait RowIndex {
    fn position(self) -> usize;
}

impl RowIndex for usize {
    fn position(self) -> usize {
        self
    }
}

/// One row of either engine.
pub enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Kept(&'r kept::KeptRow<'r>),
    Postgres(&'r postgres::Row),
}

impl Row<'_> {
    /// Column `index` as `T` (`get::<_, T>(i)`, as in `rusqlite`).
    pub fn get<I: RowIndex, T: FromSql>(&self, index: I) -> Result<T> {
        let index = index.position();
        let conversion = |source| Error::Conversion { index, source };
        match self {
            Row::Sqlite(r) => T::from_value(lite::value(r, index)?).map_err(conversion),
            Row::Kept(r) => T::from_value(r.value(index)?).map_err(conversion),
            Row::Postgres(r) => pg::with_value(r, index, |v| T::from_value(v).map_err(conversion)),
        }
    }
}
