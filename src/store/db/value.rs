//! The values the store binds and reads, the same for both engines.
//!
//! SQLite types values per row; PostgreSQL types them per column and
//! checks every bind against it. The store writes one SQL text for both,
//! so a value is bound and read by what it *is* (an integer, text, bytes),
//! and each engine's adapter converts at its edge: an integer bound where
//! PostgreSQL expects `int4` or `boolean` is narrowed there (checked), an
//! `EXISTS` or `int4` column reads as an integer. A store type (such as
//! `Outcome`) implements [`ToSql`] and [`FromSql`] once.

use std::fmt;

/// One value, borrowed from the caller (a bind) or from the row (a read).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Null,
    Integer(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl Value<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Value::Null => "NULL",
            Value::Integer(_) => "an integer",
            Value::Real(_) => "a real",
            Value::Text(_) => "text",
            Value::Blob(_) => "bytes",
        }
    }
}

/// A value the store can bind as a statement parameter.
pub trait ToSql {
    fn to_value(&self) -> Value<'_>;
}

/// Why a column could not be read as the type asked for.
#[derive(Debug)]
pub enum FromSqlError {
    /// The column holds another kind of value (`expected`, found `found`).
    InvalidType {
        expected: &'static str,
        found: &'static str,
    },
    /// An integer that does not fit the type asked for.
    OutOfRange(i64),
    /// The store's own type refused the value (an unknown outcome).
    Other(Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl fmt::Display for FromSqlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FromSqlError::InvalidType { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            FromSqlError::OutOfRange(v) => write!(f, "integer {v} out of range"),
            FromSqlError::Other(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for FromSqlError {}

/// A type the store can read from a column.
pub trait FromSql: Sized {
    fn from_value(value: Value<'_>) -> Result<Self, FromSqlError>;
}

fn invalid<T>(expected: &'static str, found: Value<'_>) -> Result<T, FromSqlError> {
    Err(FromSqlError::InvalidType {
        expected,
        found: found.kind(),
    })
}

// ---- binds ----

impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_value(&self) -> Value<'_> {
        (**self).to_value()
    }
}

impl<T: ToSql> ToSql for Option<T> {
    fn to_value(&self) -> Value<'_> {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}

impl ToSql for Value<'_> {
    fn to_value(&self) -> Value<'_> {
        *self
    }
}

impl ToSql for str {
    fn to_value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl ToSql for String {
    fn to_value(&self) -> Value<'_> {
        Value::Text(self)
    }
}

impl ToSql for [u8] {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl ToSql for Vec<u8> {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl<const N: usize> ToSql for [u8; N] {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(self)
    }
}

impl ToSql for bool {
    fn to_value(&self) -> Value<'_> {
        Value::Integer(i64::from(*self))
    }
}

impl ToSql for f64 {
    fn to_value(&self) -> Value<'_> {
        Value::Real(*self)
    }
}

macro_rules! integer_to_sql {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn to_value(&self) -> Value<'_> {
                Value::Integer(i64::from(*self))
            }
        }
    )*};
}
integer_to_sql!(i8, i16, i32, i64, u8, u16, u32);

impl ToSql for u64 {
    /// Counts and ids: beyond `i64::MAX` is saturated (never reached).
    fn to_value(&self) -> Value<'_> {
        Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl ToSql for usize {
    fn to_value(&self) -> Value<'_> {
        Value::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

// ---- reads ----

impl<T: FromSql> FromSql for Option<T> {
    fn from_value(value: Value<'_>) -> Result<Self, FromSqlError> {
        match value {
            Value::Null => Ok(None),
            v => T::from_value(v).map(Some),
        }
    }
}

impl FromSql for i64 {
    fn from_value(value: Value<'_>) -> Result<Self, FromSqlError> {
        match value {
            Value::Integer(i) => Ok(i),
            v => invalid("an integer", v),
        }
    }
}

macro_rules! integer_from_sql {
    ($($t:ty),*) => {$(
        impl FromSql for $t {
            fn from_value(value: Value<'_>) -> Result<Self, FromSqlError> {
                let i = i64::from_value(value)?;
                <$t>::try_from(i).map_err(|_| FromSqlError::OutOfRange(i))
            }
        }
    )*};
}
integer_from_sql!(i32, u32, u64, usize, u16, u8);

impl FromSql for bool {
    fn from_value(value: Value<'_>) -> Result<Self, FromSqlError> {
        Ok(i64::from_value(value)? != 0)
    }
}

impl FromSql for f64 {
    fn from_value(value: Value<'_>) -> Result<Self, FromSqlError> {
        match value {
            Value::Real(r) => Ok(r),
            Value::Integer(i) => Ok(i as f64),
            v => invalid("a real", v),
        }
    }
}

impl FromSql for String {
    fn from_value(value: Value<'_>) -> Result<Self, FromSqlError> {
        match value {
            Value::Text(s) => Ok(s.to_owned()),
            v => invalid("text", v),
        }
    }
}

impl FromSql for Vec<u8> {
    /// Bytes; text reads as its UTF-8 bytes (SQLite keeps a text value in
    /// a BLOB column as text).
    fn from_value(value: Value<'_>) -> Result<Self, FromSqlError> {
        match value {
            Value::Blob(b) => Ok(b.to_vec()),
            Value::Text(s) => Ok(s.as_bytes().to_vec()),
            v => invalid("bytes", v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_narrow_with_a_check_and_flags_read_as_integers() {
        assert_eq!(i32::from_value(Value::Integer(7)).unwrap(), 7);
        assert!(matches!(
            u32::from_value(Value::Integer(-1)),
            Err(FromSqlError::OutOfRange(-1))
        ));
        assert!(bool::from_value(Value::Integer(1)).unwrap());
        assert!(!bool::from_value(Value::Integer(0)).unwrap());
        assert_eq!(Option::<i64>::from_value(Value::Null).unwrap(), None);
        assert!(String::from_value(Value::Integer(1)).is_err());
        assert_eq!(true.to_value(), Value::Integer(1));
        assert_eq!(Some("a").to_value(), Value::Text("a"));
        assert_eq!(None::<i64>.to_value(), Value::Null);
    }
}
