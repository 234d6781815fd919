//! SQLite statements a connection keeps for its life and binds without
//! copying (issue 18).
//!
//! `rusqlite` binds every text and blob with `SQLITE_TRANSIENT`: SQLite
//! copies the value into memory of its own, and frees it on the next
//! bind. The writer binds about thirty values per notification, twenty of
//! them text (the event's JSON and comment among them), and those copies,
//! with `rusqlite`'s conversions around them, were 15 % of the writer's
//! instructions. `rusqlite` 0.32 keeps its `sqlite3_stmt` private, so the
//! few statements the writer runs for every notification
//! (`store::apply::Hot`) are prepared here, on the connection's handle,
//! and kept in slots of the connection until it closes.
//!
//! **Rule `bound-only-while-running`:** a kept statement is bound with
//! `SQLITE_STATIC` (SQLite reads the caller's memory in place), so its
//! values are bound, the statement run to its end or its first row, the
//! row read, and the statement reset and its bindings cleared, all inside
//! one call that borrows the values. No binding outlives the call, so no
//! pointer into freed memory is ever left in a statement.
//!
//! A kept statement is used by one [`super::Statement`] at a time: while
//! one is out, asking for the same slot again gets `None`, and the caller
//! prepares through the connection's cache as before.

use std::cell::{Cell, OnceCell};
use std::ffi::{c_char, c_int, c_uint, CStr};
use std::ptr::NonNull;

use rusqlite::ffi;
use rusqlite::types::ValueRef;

use super::{Error, Result, Value};

/// How many statements a connection keeps (`store::apply::Hot` has 7).
pub const SLOTS: usize = 8;

/// The kept statements of one connection. Declared before the
/// `rusqlite::Connection` in [`super::Lite`], so that they are finalized
/// before it closes (`sqlite3_close` refuses a connection with live
/// statements, and `rusqlite` ignores that refusal on drop).
#[derive(Default)]
pub struct KeptStatements {
    slots: [OnceCell<Kept>; SLOTS],
}

impl KeptStatements {
    /// The statement of `slot`, prepared from `sql` on first use; `None`
    /// while it is out already. A slot holds the one text its callers
    /// give it: another text gets `None` too (the caller then prepares
    /// it as usual) and fails debug builds, since it is a caller's bug.
    pub fn take<'k>(
        &'k self,
        conn: &rusqlite::Connection,
        slot: usize,
        sql: &str,
    ) -> Result<Option<KeptGuard<'k>>> {
        let cell = &self.slots[slot];
        let kept = match cell.get() {
            Some(kept) => kept,
            None => {
                // SAFETY: the handle is the open connection this set of
                // statements belongs to (see `Lite`).
                let kept = unsafe { Kept::prepare(conn.handle(), sql)? };
                cell.get_or_init(|| kept)
            }
        };
        if kept.sql().trim() != sql.trim() {
            debug_assert!(false, "slot {slot} holds another statement than {sql:?}");
            return Ok(None);
        }
        if kept.busy.replace(true) {
            return Ok(None);
        }
        Ok(Some(KeptGuard { kept }))
    }
}

/// One kept `sqlite3_stmt`.
pub struct Kept {
    stmt: NonNull<ffi::sqlite3_stmt>,
    busy: Cell<bool>,
}

// SAFETY: a kept statement lives in its connection's `Lite` and is only
// reached through it; the connection is `Send` and not `Sync`, so the
// statement moves between threads with it and is used by one at a time.
// SQLite is built thread-safe (`rusqlite` checks at open).
unsafe impl Send for Kept {}

impl Drop for Kept {
    fn drop(&mut self) {
        // SAFETY: the statement is ours and its connection is still open
        // (`KeptStatements` is dropped before it).
        unsafe { ffi::sqlite3_finalize(self.stmt.as_ptr()) };
    }
}

impl Kept {
    /// Prepares `sql` (one statement) on `db`, as one the connection
    /// keeps (`SQLITE_PREPARE_PERSISTENT`).
    unsafe fn prepare(db: *mut ffi::sqlite3, sql: &str) -> Result<Kept> {
        let len =
            c_int::try_from(sql.len()).map_err(|_| Error::Other("statement too long".into()))?;
        let mut stmt = std::ptr::null_mut();
        let mut tail: *const c_char = std::ptr::null();
        let rc = ffi::sqlite3_prepare_v3(
            db,
            sql.as_ptr().cast(),
            len,
            ffi::SQLITE_PREPARE_PERSISTENT as c_uint,
            &mut stmt,
            &mut tail,
        );
        if rc != ffi::SQLITE_OK {
            return Err(failure(db, rc));
        }
        let Some(stmt) = NonNull::new(stmt) else {
            return Err(Error::Other("an empty statement cannot be kept".into()));
        };
        let kept = Kept {
            stmt,
            busy: Cell::new(false),
        };
        let consumed = tail.offset_from(sql.as_ptr().cast()) as usize;
        if !sql[consumed..].trim().is_empty() {
            return Err(Error::Other(format!(
                "one statement at a time: {:?} follows it",
                &sql[consumed..]
            )));
        }
        Ok(kept)
    }

    fn sql(&self) -> &str {
        // SAFETY: SQLite keeps the text as long as the statement.
        unsafe {
            let text = ffi::sqlite3_sql(self.stmt.as_ptr());
            CStr::from_ptr(text).to_str().unwrap_or("")
        }
    }

    fn db(&self) -> *mut ffi::sqlite3 {
        // SAFETY: a live statement.
        unsafe { ffi::sqlite3_db_handle(self.stmt.as_ptr()) }
    }
}

/// A kept statement while one caller has it; given back when dropped.
pub struct KeptGuard<'k> {
    kept: &'k Kept,
}

impl Drop for KeptGuard<'_> {
    fn drop(&mut self) {
        self.kept.busy.set(false);
    }
}

impl KeptGuard<'_> {
    /// Runs the statement, which returns no rows, with `values`: the rows
    /// it changed.
    pub fn execute(&mut self, values: &[Value<'_>]) -> Result<usize> {
        self.run(values, |step| match step {
            Step::Done => Ok(()),
            Step::Row(_) => Err(Error::Sqlite(rusqlite::Error::ExecuteReturnedResults)),
        })?;
        // SAFETY: the connection of a live statement.
        Ok(unsafe { ffi::sqlite3_changes64(self.kept.db()) } as usize)
    }

    /// The statement's first row through `f`, or [`Error::NoRows`].
    pub fn query_row<T>(
        &mut self,
        values: &[Value<'_>],
        f: impl FnOnce(&KeptRow<'_>) -> Result<T>,
    ) -> Result<T> {
        self.run(values, |step| match step {
            Step::Done => Err(Error::NoRows),
            Step::Row(row) => f(&row),
        })
    }

    /// Binds `values`, steps once, hands the outcome to `then`, and resets
    /// the statement and clears its bindings whatever happened (rule
    /// `bound-only-while-running`).
    fn run<T>(
        &mut self,
        values: &[Value<'_>],
        then: impl FnOnce(Step<'_>) -> Result<T>,
    ) -> Result<T> {
        let stmt = self.kept.stmt.as_ptr();
        let db = self.kept.db();
        // Reset and cleared on every way out, a panic in `then` included.
        let _reset = ResetOnDrop(stmt);
        {
            // SAFETY: `stmt` is live; each value outlives this call, and
            // the bindings are cleared before it returns (`_reset`).
            unsafe {
                let expected = ffi::sqlite3_bind_parameter_count(stmt) as usize;
                if values.len() != expected {
                    return Err(Error::Sqlite(rusqlite::Error::InvalidParameterCount(
                        values.len(),
                        expected,
                    )));
                }
                for (i, value) in values.iter().enumerate() {
                    let rc = bind(stmt, i as c_int + 1, value)?;
                    if rc != ffi::SQLITE_OK {
                        return Err(failure(db, rc));
                    }
                }
                match ffi::sqlite3_step(stmt) {
                    ffi::SQLITE_DONE => then(Step::Done),
                    ffi::SQLITE_ROW => then(Step::Row(KeptRow {
                        stmt,
                        _kept: self.kept,
                    })),
                    rc => Err(failure(db, rc)),
                }
            }
        }
    }
}

/// Resets a kept statement and clears its bindings when dropped.
struct ResetOnDrop(*mut ffi::sqlite3_stmt);

impl Drop for ResetOnDrop {
    fn drop(&mut self) {
        // SAFETY: a live statement; resetting also ends one that stopped
        // at its first row.
        unsafe {
            ffi::sqlite3_reset(self.0);
            ffi::sqlite3_clear_bindings(self.0);
        }
    }
}

enum Step<'r> {
    Done,
    Row(KeptRow<'r>),
}

/// The row a kept statement stopped at.
pub struct KeptRow<'r> {
    stmt: *mut ffi::sqlite3_stmt,
    _kept: &'r Kept,
}

impl KeptRow<'_> {
    /// Column `index`, borrowed from SQLite until the statement moves on,
    /// converted as `lite` converts rusqlite's (`lite::from_sqlite`).
    pub fn value(&self, index: usize) -> Result<Value<'_>> {
        // SAFETY: the statement is on a row (it is only built then) and
        // stays there while the row is borrowed; SQLite keeps a column's
        // bytes until the statement steps, resets or converts the column,
        // and each column is read in one type only.
        unsafe {
            let count = ffi::sqlite3_column_count(self.stmt) as usize;
            if index >= count {
                return Err(Error::Sqlite(rusqlite::Error::InvalidColumnIndex(index)));
            }
            let col = index as c_int;
            super::lite::from_sqlite(match ffi::sqlite3_column_type(self.stmt, col) {
                ffi::SQLITE_NULL => ValueRef::Null,
                ffi::SQLITE_INTEGER => ValueRef::Integer(ffi::sqlite3_column_int64(self.stmt, col)),
                ffi::SQLITE_FLOAT => ValueRef::Real(ffi::sqlite3_column_double(self.stmt, col)),
                ffi::SQLITE_TEXT => ValueRef::Text(column_bytes(
                    self.stmt,
                    col,
                    ffi::sqlite3_column_text(self.stmt, col),
                )),
                _ => ValueRef::Blob(column_bytes(
                    self.stmt,
                    col,
                    ffi::sqlite3_column_blob(self.stmt, col).cast(),
                )),
            })
        }
    }
}

/// The `len` bytes at `data`, as `sqlite3_column_bytes` gives them (an
/// empty value may come back as a null pointer).
unsafe fn column_bytes<'a>(stmt: *mut ffi::sqlite3_stmt, col: c_int, data: *const u8) -> &'a [u8] {
    let len = ffi::sqlite3_column_bytes(stmt, col) as usize;
    if data.is_null() || len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(data, len)
    }
}

/// Binds one value in place (`SQLITE_STATIC`).
unsafe fn bind(stmt: *mut ffi::sqlite3_stmt, at: c_int, value: &Value<'_>) -> Result<c_int> {
    Ok(match *value {
        Value::Null => ffi::sqlite3_bind_null(stmt, at),
        Value::Integer(i) => ffi::sqlite3_bind_int64(stmt, at, i),
        Value::Real(r) => ffi::sqlite3_bind_double(stmt, at, r),
        Value::Text(s) => {
            let (bytes, len) = in_place(s.as_bytes())?;
            ffi::sqlite3_bind_text(stmt, at, bytes.cast(), len, ffi::SQLITE_STATIC())
        }
        Value::Blob(b) => {
            let (bytes, len) = in_place(b)?;
            ffi::sqlite3_bind_blob(stmt, at, bytes.cast(), len, ffi::SQLITE_STATIC())
        }
    })
}

/// The pointer and length SQLite reads `bytes` from. An empty value
/// points at a static empty string, as `rusqlite` does, never at a
/// dangling one; a value too long for SQLite's `int` is `SQLITE_TOOBIG`.
fn in_place(bytes: &[u8]) -> Result<(*const u8, c_int)> {
    const EMPTY: &[u8] = b"\0";
    let len = c_int::try_from(bytes.len()).map_err(|_| {
        Error::Sqlite(rusqlite::Error::SqliteFailure(
            ffi::Error::new(ffi::SQLITE_TOOBIG),
            None,
        ))
    })?;
    let at = if bytes.is_empty() {
        EMPTY.as_ptr()
    } else {
        bytes.as_ptr()
    };
    Ok((at, len))
}

/// The connection's error for `rc`, as `rusqlite` reports it (the
/// extended code, which `Error::is_unique_violation` reads, and SQLite's
/// message).
fn failure(db: *mut ffi::sqlite3, rc: c_int) -> Error {
    // SAFETY: `db` is open; the message is copied before anything else
    // runs on it.
    let (extended, message) = unsafe {
        (
            ffi::sqlite3_extended_errcode(db),
            CStr::from_ptr(ffi::sqlite3_errmsg(db))
                .to_string_lossy()
                .into_owned(),
        )
    };
    // The extended code when it is `rc`'s (`rc` may be primary only).
    let code = if extended & 0xff == rc & 0xff {
        extended
    } else {
        rc
    };
    Error::Sqlite(rusqlite::Error::SqliteFailure(
        ffi::Error::new(code),
        Some(message),
    ))
}

#[cfg(test)]
mod tests;
