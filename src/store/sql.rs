//! The enums and documents stored as text, to and from SQL, once.
//!
//! `Outcome` is a `TEXT` column in `orders`, `events`, `outbox` and
//! `review_actions`: [`ToSql`] writes [`Outcome::as_str`], [`FromSql`]
//! reads it back, and a value this binary does not know is a
//! [`StoreError::Corrupt`] (through [`UnknownOutcome`]), never a silent
//! default. A stored notification is a JSON `TEXT` column:
//! [`notification_json`] / [`notification_from_json`].

use super::db::{self, FromSql, FromSqlError, ToSql, Value};
use super::StoreError;
use crate::domain::{Notification, Outcome};

impl ToSql for Outcome {
    fn to_value(&self) -> Value<'_> {
        Value::Text(self.as_str())
    }
}

impl FromSql for Outcome {
    fn from_value(value: Value<'_>) -> Result<Self, FromSqlError> {
        let s = String::from_value(value)?;
        Outcome::parse(&s).ok_or_else(|| FromSqlError::Other(Box::new(UnknownOutcome(s))))
    }
}

/// An outcome column holding a value this binary does not know.
#[derive(Debug, thiserror::Error)]
#[error("unknown outcome {0:?} in the database")]
pub struct UnknownOutcome(pub String);

/// An unknown outcome read through [`FromSql`] is corrupt data, not a
/// database failure: the same error the per-module parsers gave.
pub(crate) fn classify(e: db::Error) -> StoreError {
    if let db::Error::Conversion {
        source: FromSqlError::Other(inner),
        ..
    } = &e
    {
        if let Some(u) = inner.downcast_ref::<UnknownOutcome>() {
            return StoreError::Corrupt(u.to_string());
        }
    }
    StoreError::Sql(e)
}

/// The stored form of a notification (`events.notification`).
pub(crate) fn notification_json(n: &Notification) -> Result<String, StoreError> {
    // Sized for a whole Lyra notification (≈ 500 bytes): grown from
    // nothing, the text was copied four times over (issue 18).
    let mut json = Vec::with_capacity(640);
    serde_json::to_writer(&mut json, n)
        .map_err(|e| StoreError::Corrupt(format!("cannot serialise notification: {e}")))?;
    // serde_json writes UTF-8 only.
    String::from_utf8(json).map_err(|e| StoreError::Corrupt(format!("notification JSON: {e}")))
}

/// A stored notification read back; `what` names it in the error
/// (`event 12`, or empty).
pub(crate) fn notification_from_json(json: &str, what: &str) -> Result<Notification, StoreError> {
    serde_json::from_str(json).map_err(|e| {
        if what.is_empty() {
            StoreError::Corrupt(format!("stored notification is not readable: {e}"))
        } else {
            StoreError::Corrupt(format!("{what}: stored notification is not readable: {e}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_round_trip_and_an_unknown_one_is_corrupt() {
        let conn = db::Connection::open_in_memory().unwrap();
        for o in Outcome::ALL {
            let back: Outcome = conn.query_row("SELECT ?1", [o], |r| r.get(0)).unwrap();
            assert_eq!(back, o);
        }
        let err = conn
            .query_row("SELECT 'paid?'", [], |r| r.get::<_, Outcome>(0))
            .map_err(classify)
            .unwrap_err();
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m == "unknown outcome \"paid?\" in the database"),
            "{err:?}"
        );
    }
}
