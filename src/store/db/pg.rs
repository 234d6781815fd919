//! The PostgreSQL adapter: one client, its statement cache, reconnects,
//! and the conversion of [`Value`]s by the column type the server reports.
//!
//! Every connection starts with `synchronous_commit = on` (a commit the
//! daemon acknowledges is flushed, on the primary and on a synchronous
//! standby if the cluster has one), a statement timeout (a stuck lock
//! turns into an error and a 503, not a hung writer) and an
//! idle-in-transaction timeout (a daemon that stops mid-transaction
//! releases its locks); every connection also probes a silent server
//! (TCP keepalives after 30 s, `tcp_user_timeout`), so a host that
//! vanished ends its sessions in about a minute.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use postgres::error::SqlState;
use postgres::types::{IsNull, ToSql as PgToSql, Type};
use postgres::{Client, NoTls};

use super::pool::PgPool;
use super::{Error, Result, Value};

/// Where a PostgreSQL database is and how to log in (the password never
/// shows in `Debug` or `Display`).
#[derive(Clone)]
pub struct PgTarget {
    config: postgres::Config,
    /// The URL as the operator wrote it, without a password.
    shown: String,
}

impl PgTarget {
    /// `url` (`postgres://user@host:port/db?…`, no password in it) and the
    /// password given apart.
    pub fn new(url: &str, password: Option<&str>) -> Result<PgTarget, String> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
        if config.get_password().is_some() {
            return Err("the URL carries a password: give it as database_password_file or database_password_credential instead (a URL is printed in logs and by check-config)".into());
        }
        if let Some(p) = password {
            config.password(p);
        }
        if config.get_application_name().is_none() {
            config.application_name("ipnsync");
        }
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        // A database host that disappears without a reset (a failover that
        // moves its address, a lost VM) would otherwise hold a session that
        // waits for an answer until the system's keepalive gives up, two
        // hours by default: the writer stuck, intake answering 503 long
        // after a new primary is up. Probes after 30 s of silence, three
        // 10 s apart, and unacknowledged data for 30 s end the session;
        // the daemon reconnects. The URL's own values win.
        let given = |name: &str| url.contains(&format!("{name}="));
        if !given("keepalives_idle") {
            config.keepalives_idle(Duration::from_secs(30));
        }
        if !given("keepalives_interval") {
            config.keepalives_interval(Duration::from_secs(10));
        }
        if !given("keepalives_retries") {
            config.keepalives_retries(3);
        }
        if !given("tcp_user_timeout") {
            config.tcp_user_timeout(Duration::from_secs(30));
        }
        // Session settings (see the module comment). `options` replaces
        // what the URL gave, so keep it.
        let mut options = config.get_options().unwrap_or("").to_owned();
        options.push_str(
            " -c synchronous_commit=on -c statement_timeout=30000 -c idle_in_transaction_session_timeout=60000 -c lock_timeout=5000",
        );
        config.options(options.trim());
        Ok(PgTarget {
            config,
            shown: url.to_owned(),
        })
    }

    pub(crate) fn connect(&self) -> Result<Client> {
        off_runtime(|| Ok(self.config.connect(NoTls)?))
    }
}

impl fmt::Display for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.shown)
    }
}

impl fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgTarget({})", self.shown)
    }
}

/// One PostgreSQL session: its client (reopened after the server or the
/// network dropped it, between transactions), its prepared statements, and
/// the pool it goes back to, if any.
pub struct PgConnection {
    target: Arc<PgTarget>,
    client: RefCell<Option<Client>>,
    statements: RefCell<HashMap<String, postgres::Statement>>,
    in_transaction: Cell<bool>,
    pool: Option<Arc<PgPool>>,
}

impl PgConnection {
    pub fn open(target: Arc<PgTarget>) -> Result<PgConnection> {
        let client = target.connect()?;
        Ok(PgConnection::from_client(target, client, None))
    }

    pub(super) fn from_client(
        target: Arc<PgTarget>,
        client: Client,
        pool: Option<Arc<PgPool>>,
    ) -> PgConnection {
        PgConnection {
            target,
            client: RefCell::new(Some(client)),
            statements: RefCell::new(HashMap::new()),
            in_transaction: Cell::new(false),
            pool,
        }
    }

    /// The client, reconnected first if the last one was lost and no
    /// transaction was open on it (one that was is failed, not resumed).
    fn with_client<T: Send>(&self, f: impl FnOnce(&mut Client) -> Result<T> + Send) -> Result<T> {
        let mut slot = self.client.borrow_mut();
        let lost = slot.as_ref().map_or(true, Client::is_closed);
        if lost {
            if self.in_transaction.get() {
                return Err(Error::Other(
                    "the database connection was lost mid-transaction".into(),
                ));
            }
            self.statements.borrow_mut().clear();
            if let Some(old) = slot.take() {
                dispose(old);
            }
            *slot = Some(self.target.connect()?);
        }
        let client = slot.as_mut().expect("connected above");
        off_runtime(move || f(client))
    }

    pub(super) fn prepare(&self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.statements.borrow().get(sql) {
            if self
                .client
                .borrow()
                .as_ref()
                .is_some_and(|c| !c.is_closed())
            {
                return Ok(s.clone());
            }
        }
        let translated = json_paths(&placeholders(sql));
        let stmt = self.with_client(|c| Ok(c.prepare(&translated)?))?;
        self.statements
            .borrow_mut()
            .insert(sql.to_owned(), stmt.clone());
        Ok(stmt)
    }

    pub(super) fn execute(
        &self,
        stmt: &postgres::Statement,
        values: &[Value<'_>],
    ) -> Result<usize> {
        let params = bind(values);
        let refs: Vec<&(dyn PgToSql + Sync)> = params.iter().map(|p| p as _).collect();
        let n = self.with_client(|c| Ok(c.execute(stmt, &refs)?))?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }

    pub(super) fn query(
        &self,
        stmt: &postgres::Statement,
        values: &[Value<'_>],
    ) -> Result<Vec<postgres::Row>> {
        let params = bind(values);
        let refs: Vec<&(dyn PgToSql + Sync)> = params.iter().map(|p| p as _).collect();
        self.with_client(|c| Ok(c.query(stmt, &refs)?))
    }

    pub(super) fn batch_execute(&self, sql: &str) -> Result<()> {
        self.with_client(|c| Ok(c.batch_execute(sql)?))
    }

    pub(super) fn begin(&self) -> Result<()> {
        self.batch_execute("BEGIN")?;
        self.in_transaction.set(true);
        Ok(())
    }

    pub(super) fn commit(&self) -> Result<()> {
        let result = self.batch_execute("COMMIT");
        self.in_transaction.set(false);
        result
    }

    pub(super) fn rollback_quietly(&self) {
        if let Some(c) = self.client.borrow_mut().as_mut() {
            if !c.is_closed() {
                let _ = off_runtime(move || c.batch_execute("ROLLBACK"));
            }
        }
        self.in_transaction.set(false);
    }

    /// Whether the session is usable and idle (may go back to a pool).
    fn reusable(&self) -> bool {
        !self.in_transaction.get()
            && self
                .client
                .borrow()
                .as_ref()
                .is_some_and(|c| !c.is_closed())
    }
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        let reusable = self.reusable();
        let client = self.client.borrow_mut().take();
        match (self.pool.take(), client) {
            (Some(pool), Some(c)) if reusable => pool.give_back(Some(c)),
            (pool, client) => {
                if let Some(c) = client {
                    dispose(c);
                }
                if let Some(pool) = pool {
                    pool.give_back(None);
                }
            }
        }
    }
}

/// Runs `f` where the blocking client may block: the synchronous client
/// drives its own runtime and refuses to run on a thread that is driving
/// tokio tasks (it panics there). The store's threads (writer, retention,
/// `spawn_blocking`) are not such threads; a call made from async code
/// (the dispatcher's next-due read, a console read done in place, an
/// integration test's check) runs on a short-lived thread of its own
/// instead.
///
/// On a multi-threaded runtime the calling worker is first handed over
/// (`block_in_place`): a worker that simply waited would keep the tasks
/// queued on it (the one it woke last cannot be stolen by another
/// worker) from running for as long as the database call takes, and a
/// call that needs one of those tasks — a proxy in front of the database,
/// anything in-process on the way — would never end.
pub(super) fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        return f();
    };
    let on_a_thread_of_its_own = || {
        std::thread::scope(|s| match s.spawn(f).join() {
            Ok(v) => v,
            Err(panic) => std::panic::resume_unwind(panic),
        })
    };
    match runtime.runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(on_a_thread_of_its_own)
        }
        _ => on_a_thread_of_its_own(),
    }
}

/// Drops a client (its `Drop` talks to the server: off the runtime).
pub(super) fn dispose(client: Client) {
    off_runtime(move || drop(client));
}

/// A message for an error, with the server's code and detail when it has
/// them (`tokio_postgres`'s own text is only "db error").
pub(super) fn describe(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut s = format!(
                "PostgreSQL {}: {} ({})",
                db.severity(),
                db.message(),
                db.code().code()
            );
            if let Some(detail) = db.detail() {
                s.push_str(": ");
                s.push_str(detail);
            }
            s
        }
        None => match e.source() {
            Some(inner) => format!("PostgreSQL: {e}: {inner}"),
            None => format!("PostgreSQL: {e}"),
        },
    }
}

pub(super) fn is_conflict(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(c) if *c == SqlState::T_R_SERIALIZATION_FAILURE
            || *c == SqlState::T_R_DEADLOCK_DETECTED
            || *c == SqlState::UNIQUE_VIOLATION
    )
}

/// `?N` → `$N`, and a bare `?` → the next `$k`, outside quotes and
/// comments: the store writes SQLite's placeholders.
pub(crate) fn placeholders(sql: &str) -> String {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut next_bare = 0u32;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\'' | b'"' => {
                let end = bytes[i + 1..]
                    .iter()
                    .position(|&c| c == b)
                    .map_or(bytes.len(), |p| i + 1 + p + 1);
                out.push_str(&sql[i..end]);
                i = end;
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                let end = bytes[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(bytes.len(), |p| i + p);
                out.push_str(&sql[i..end]);
                i = end;
            }
            b'?' => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|c| c.is_ascii_digit())
                    .count();
                out.push('$');
                if digits == 0 {
                    next_bare += 1;
                    out.push_str(&next_bare.to_string());
                } else {
                    out.push_str(&sql[i + 1..i + 1 + digits]);
                }
                i += 1 + digits;
            }
            _ => {
                let start = i;
                while i < bytes.len() && !matches!(bytes[i], b'\'' | b'"' | b'-' | b'?') {
                    i += 1;
                }
                if i == start {
                    // A lone '-'.
                    i += 1;
                }
                out.push_str(&sql[start..i]);
            }
        }
    }
    out
}

/// SQLite's `json_extract(col, '$.a.b')` as PostgreSQL's
/// `(col::jsonb #>> '{a,b}')`: the value as text (the store `CAST`s a
/// number it reads, which both engines accept). Only the store's own
/// simple form is rewritten: a column, then a literal `$.`-path.
pub(crate) fn json_paths(sql: &str) -> String {
    const CALL: &str = "json_extract(";
    let mut out = String::with_capacity(sql.len());
    let mut rest = sql;
    while let Some(at) = rest.find(CALL) {
        out.push_str(&rest[..at]);
        let after = &rest[at + CALL.len()..];
        let parsed = after.split_once(", '$.").and_then(|(column, tail)| {
            let (path, tail) = tail.split_once("')")?;
            let simple = |s: &str| {
                !s.is_empty()
                    && s.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            };
            (simple(column) && simple(path)).then_some((column, path, tail))
        });
        match parsed {
            Some((column, path, tail)) => {
                out.push_str(&format!(
                    "({column}::jsonb #>> '{{{}}}')",
                    path.replace('.', ",")
                ));
                rest = tail;
            }
            None => {
                out.push_str(CALL);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A store value bound to whatever type the server inferred for the
/// parameter: integers narrow (checked) to `int4`/`int2`/`boolean`, text
/// goes into `bytea` as its bytes; anything else is an error naming both.
#[derive(Debug)]
struct Bind<'a>(Value<'a>);

fn bind<'a>(values: &'a [Value<'a>]) -> Vec<Bind<'a>> {
    values.iter().map(|v| Bind(*v)).collect()
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl PgToSql for Bind<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        let mismatch = || -> BoxError { format!("cannot bind {:?} as {ty}", kind(&self.0)).into() };
        match self.0 {
            Value::Null => Ok(IsNull::Yes),
            Value::Integer(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(i)?.to_sql(ty, out),
                Type::BOOL => (i != 0).to_sql(ty, out),
                Type::FLOAT8 => (i as f64).to_sql(ty, out),
                _ if <&str as PgToSql>::accepts(ty) => i.to_string().as_str().to_sql(ty, out),
                _ => Err(mismatch()),
            },
            Value::Real(r) => match *ty {
                Type::FLOAT8 => r.to_sql(ty, out),
                Type::FLOAT4 => (r as f32).to_sql(ty, out),
                _ => Err(mismatch()),
            },
            Value::Text(s) => match *ty {
                Type::BYTEA => s.as_bytes().to_sql(ty, out),
                _ if <&str as PgToSql>::accepts(ty) => s.to_sql(ty, out),
                _ => Err(mismatch()),
            },
            Value::Blob(b) => match *ty {
                Type::BYTEA => b.to_sql(ty, out),
                _ => Err(mismatch()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

fn kind(v: &Value<'_>) -> &'static str {
    match v {
        Value::Null => "NULL",
        Value::Integer(_) => "an integer",
        Value::Real(_) => "a real",
        Value::Text(_) => "text",
        Value::Blob(_) => "bytes",
    }
}

/// Column `index` of a PostgreSQL row as a [`Value`], by its type.
pub(super) fn with_value<T>(
    row: &postgres::Row,
    index: usize,
    f: impl FnOnce(Value<'_>) -> Result<T>,
) -> Result<T> {
    let Some(column) = row.columns().get(index) else {
        return Err(Error::Other(format!("no column {index}")));
    };
    let ty = column.type_().clone();
    let v = match ty {
        Type::INT8 => row.try_get::<_, Option<i64>>(index)?.map(Value::Integer),
        Type::INT4 => row.try_get::<_, Option<i32>>(index)?.map(|i| Value::Integer(i.into())),
        Type::INT2 => row.try_get::<_, Option<i16>>(index)?.map(|i| Value::Integer(i.into())),
        Type::BOOL => row.try_get::<_, Option<bool>>(index)?.map(|b| Value::Integer(b.into())),
        Type::FLOAT8 => row.try_get::<_, Option<f64>>(index)?.map(Value::Real),
        Type::FLOAT4 => row.try_get::<_, Option<f32>>(index)?.map(|r| Value::Real(r.into())),
        Type::BYTEA => {
            let b = row.try_get::<_, Option<&[u8]>>(index)?;
            return f(b.map_or(Value::Null, Value::Blob));
        }
        _ if <&str as postgres::types::FromSql>::accepts(&ty) => {
            let s = row.try_get::<_, Option<&str>>(index)?;
            return f(s.map_or(Value::Null, Value::Text));
        }
        other => {
            return Err(Error::Other(format!(
                "column {index} ({}) has type {other}, which the store does not read (CAST it to BIGINT or TEXT)",
                column.name()
            )))
        }
    };
    f(v.unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests;
