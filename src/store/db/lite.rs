//! The SQLite adapter: binds [`Value`]s and reads columns as them.

use rusqlite::types::{ToSqlOutput, ValueRef};

use super::{Error, Result, Value};

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Borrowed(match *self {
            Value::Null => ValueRef::Null,
            Value::Integer(i) => ValueRef::Integer(i),
            Value::Real(r) => ValueRef::Real(r),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

pub(super) fn execute(stmt: &mut rusqlite::Statement<'_>, values: &[Value<'_>]) -> Result<usize> {
    Ok(stmt.execute(rusqlite::params_from_iter(values.iter()))?)
}

pub(super) fn query<'s>(
    stmt: &'s mut rusqlite::Statement<'_>,
    values: &[Value<'_>],
) -> Result<rusqlite::Rows<'s>> {
    Ok(stmt.query(rusqlite::params_from_iter(values.iter()))?)
}

/// Column `index` of a SQLite row.
pub(super) fn value<'r>(row: &'r rusqlite::Row<'_>, index: usize) -> Result<Value<'r>> {
    from_sqlite(row.get_ref(index)?)
}

/// A SQLite column value as the store reads it (also `kept`'s rows).
/// Text that is not UTF-8 (SQLite does not check) is an error, as
/// `rusqlite` reading a `String` makes it.
pub(super) fn from_sqlite(value: ValueRef<'_>) -> Result<Value<'_>> {
    Ok(match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Integer(i),
        ValueRef::Real(r) => Value::Real(r),
        ValueRef::Text(t) => Value::Text(
            std::str::from_utf8(t).map_err(|e| Error::Sqlite(rusqlite::Error::Utf8Error(e)))?,
        ),
        ValueRef::Blob(b) => Value::Blob(b),
    })
}
