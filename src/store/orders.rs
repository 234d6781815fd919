//! The two writes every decision path shares (intake, replay, review
//! actions): moving an order to a new outcome, and queueing the matching
//! shop update in the outbox. One definition, so the columns cannot drift.

use rusqlite::{params, Connection};

use super::StoreError;
use crate::domain::Outcome;

/// Sets the order's outcome and the event and transaction that set it,
/// creating the order row on its first decision.
#[allow(clippy::too_many_arguments)]
pub(crate) fn upsert_order(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
    outcome: Outcome,
    transaction_id: &str,
    event_id: i64,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO orders (shop, order_ref, outcome, transaction_id, event_id, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (shop, order_ref) DO UPDATE SET
             outcome = excluded.outcome, transaction_id = excluded.transaction_id,
             event_id = excluded.event_id, updated_at = excluded.updated_at",
    )?
    .execute(params![
        shop,
        order_ref,
        outcome.as_str(),
        transaction_id,
        event_id,
        now
    ])?;
    Ok(())
}

/// Queues a shop update, due now. Returns the outbox row id, which is also
/// the update's idempotency key towards the shop.
#[allow(clippy::too_many_arguments)]
pub(crate) fn queue_update(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
    event_id: i64,
    previous: Option<Outcome>,
    outcome: Outcome,
    comment: &str,
    now: i64,
) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "INSERT INTO outbox (shop, order_ref, event_id, previous_outcome, outcome, comment, state,
                             attempts, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?7, ?7)",
    )?
    .execute(params![
        shop,
        order_ref,
        event_id,
        previous.map(Outcome::as_str),
        outcome.as_str(),
        comment,
        now
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Records the mode of a notification that moved the order: the first one
/// sticks, except that PRODUCTION replaces TEST (a real payment on an order
/// a test touched first makes it a production order; the reverse never
/// happens, the state machine ignores TEST on PRODUCTION).
pub(crate) fn remember_mode(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
    mode: &str,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE orders SET mode = CASE WHEN mode IS NULL OR ?3 = 'PRODUCTION' THEN ?3 ELSE mode END
         WHERE shop = ?1 AND order_ref = ?2",
    )?
    .execute(params![shop, order_ref, mode])?;
    Ok(())
}

/// Queues a comment for the order's shop history that changes nothing:
/// the order keeps `current` (its outcome now), nobody is notified. Used
/// for the notifications that are comments only (an analyst's note).
pub(crate) fn queue_comment(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
    event_id: i64,
    current: Outcome,
    comment: &str,
    now: i64,
) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "INSERT INTO outbox (shop, order_ref, event_id, previous_outcome, outcome, comment, state,
                             attempts, next_attempt_at, created_at, comment_only)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, 'pending', 0, ?6, ?6, 1)",
    )?
    .execute(params![
        shop,
        order_ref,
        event_id,
        current.as_str(),
        comment,
        now
    ])?;
    Ok(conn.last_insert_rowid())
}
