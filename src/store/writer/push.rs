//! Recording the dispatcher's push results.

use crate::store::db::{params, Connection};

use super::super::{now_ms, StoreError};
use super::PushReport;
use crate::domain::Outcome;

/// Records a push attempt and moves the outbox row on.
pub(crate) fn record_push(conn: &Connection, report: &PushReport) -> Result<(), StoreError> {
    let now = now_ms();
    let (outbox_id, result, detail) = match report {
        PushReport::Delivered {
            outbox_id,
            detail,
            needs_operator,
            applied_outcome,
        } => {
            conn.prepare_cached("UPDATE outbox SET state = 'delivered', attempts = attempts + 1, delivered_at = ?2, last_error = NULL,
                        needs_operator = ?3, claimed_by = NULL, claimed_until = NULL
                 WHERE id = ?1")?.execute(
                params![outbox_id, now, needs_operator],
            )?;
            if let Some(applied) = applied_outcome {
                record_applied_outcome(conn, *outbox_id, *applied, now)?;
            }
            (*outbox_id, "delivered", detail.as_str())
        }
        PushReport::Retry {
            outbox_id,
            next_attempt_at,
            error,
        } => {
            conn.prepare_cached(
                "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3,
                        claimed_by = NULL, claimed_until = NULL WHERE id = ?1",
            )?
            .execute(params![outbox_id, next_attempt_at, error])?;
            (*outbox_id, "retry", error.as_str())
        }
        PushReport::Dead { outbox_id, error } => {
            conn.prepare_cached(
                "UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ?2,
                        claimed_by = NULL, claimed_until = NULL WHERE id = ?1",
            )?
            .execute(params![outbox_id, error])?;
            (*outbox_id, "dead", error.as_str())
        }
    };
    conn.prepare_cached(
        "INSERT INTO push_attempts (outbox_id, at, result, detail) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![outbox_id, now, result, truncate(detail, 2000)])?;
    Ok(())
}

/// The shop applied another outcome than the row's (the amount check put
/// the order in review instead of marking it paid): the order's outcome is
/// what the shop now shows, so `review list` lists it and a review action
/// can act on it. Only while the order still stands where this row left
/// it: a later decision already moved it on and must not be undone.
fn record_applied_outcome(
    conn: &Connection,
    outbox_id: i64,
    applied: Outcome,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE orders SET outcome = ?2, updated_at = ?3
         WHERE (shop, order_ref, event_id, outcome) =
               (SELECT shop, order_ref, event_id, outcome FROM outbox WHERE id = ?1)",
    )?
    .execute(params![outbox_id, applied, now])?;
    Ok(())
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
