//! Applying a decision to an order: the one place every decision path
//! (intake, replay, confirmation, reconciliation, review actions) writes
//! through, so the columns and the rules cannot drift between them.
//!
//! A path reads the order ([`order_snapshot`], [`order_now`]), lets
//! `domain` decide, records the decision on its event ([`insert_event`],
//! or [`redecide_event`] for a replay), then moves the order and queues
//! the shop update ([`move_order`]) or, for a note that changes nothing,
//! queues a comment ([`queue_comment`]). What differs between the paths
//! on purpose is a named parameter, not a copy:
//!
//! - [`Cause`]: a notification moves the order *as an event* (the order
//!   remembers the event, its transaction and its mode); an operator's
//!   review action moves only the outcome, and the shop update hangs off
//!   the event that set the outcome being left.
//! - `held` in [`VerdictColumns::of`]: a decision waiting for the gateway
//!   is stored ignored, with the waiting reason, whatever it decided.
//!
//! Everything here runs inside the caller's transaction.

use crate::store::db::{params, Connection, OptionalExtension, Statement, ToSql};

use super::sql::notification_json;
use super::StoreError;
use crate::domain::{Decision, Notification, OrderSnapshot, Outcome, Verdict};

/// The statements intake runs for every notification, taken once per
/// batch and held until it ends ([`Hot`] names them). Through the
/// connection's own cache, each use hashed the SQL text twice, copied it
/// into a new key and relinked the cache's list: 11 % of the writer's
/// instructions (issue 18). On SQLite they are the connection's kept
/// statements ([`Connection::prepare_kept`]), which bind without copying
/// the values. Anything else, or a caller without a batch (a
/// `HotStatements::default()` of its own), prepares as before.
#[derive(Default)]
pub(crate) struct HotStatements<'c> {
    slots: [Option<Statement<'c>>; 7],
}

/// The statements of [`HotStatements`]: each slot holds the one text its
/// callers prepare for it.
#[derive(Clone, Copy)]
pub(crate) enum Hot {
    Snapshot,
    InsertEvent,
    InsertEventIfNew,
    InsertDelivery,
    UpsertOrder,
    InsertOrder,
    UpdateOrder,
}

// Each statement has a slot of the connection's kept statements.
const _: () = assert!((Hot::UpdateOrder as usize) < crate::store::db::KEPT_SLOTS);

impl<'c> HotStatements<'c> {
    /// Statement `which`, whose text is `sql`, prepared on first use.
    pub(crate) fn get(
        &mut self,
        conn: &'c Connection,
        which: Hot,
        sql: &str,
    ) -> Result<&mut Statement<'c>, StoreError> {
        let slot = &mut self.slots[which as usize];
        if slot.is_none() {
            *slot = Some(conn.prepare_kept(which as usize, sql)?);
        }
        Ok(slot.as_mut().expect("prepared above"))
    }
}

/// Takes the order's lock until the transaction ends (**rule
/// `one-decision-per-order-at-a-time`**). SQLite has one writer at a time
/// already (`BEGIN IMMEDIATE`); on PostgreSQL several daemons decide at
/// once, so every path that reads an order to decide on it (intake before
/// its dedupe check, replay, confirmation, reconciliation, review actions:
/// all through [`order_snapshot`] / [`order_now`]) first takes a
/// transaction-level advisory lock on the order. A second daemon deciding
/// on the same order waits for the first to commit, then sees its result
/// (`READ COMMITTED` reads what committed before each statement), so no
/// decision is taken on a stale state and the same event is stored once.
pub(crate) fn lock_order(conn: &Connection, shop: &str, order_ref: &str) -> Result<(), StoreError> {
    if conn.backend() == crate::store::Backend::Postgres {
        conn.prepare_cached("SELECT pg_advisory_xact_lock(?1)")?
            .query_row([order_lock_key(shop, order_ref)], |_| Ok(()))?;
    }
    Ok(())
}

/// The advisory lock key of an order: 64 bits of SHA-256 over shop and
/// order (a collision only makes two orders wait for each other).
fn order_lock_key(shop: &str, order_ref: &str) -> i64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(shop.as_bytes());
    h.update([0x1f]);
    h.update(order_ref.as_bytes());
    let d = h.finalize();
    i64::from_be_bytes(d[..8].try_into().expect("8 bytes"))
}

/// The order as the state machine needs it; the default (no outcome) when
/// the order has no row yet. Takes the order's lock ([`lock_order`]).
pub(crate) fn order_snapshot(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
) -> Result<OrderSnapshot, StoreError> {
    lock_order(conn, shop, order_ref)?;
    read_snapshot(conn, shop, order_ref)
}

/// [`order_snapshot`] for a caller that holds the order's lock already
/// (intake takes it before its dedupe check: one round trip less).
pub(crate) fn read_snapshot(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
) -> Result<OrderSnapshot, StoreError> {
    read_snapshot_in(conn, &mut HotStatements::default(), shop, order_ref)
}

/// [`read_snapshot`] with a batch's statements.
pub(crate) fn read_snapshot_in<'c>(
    conn: &'c Connection,
    hot: &mut HotStatements<'c>,
    shop: &str,
    order_ref: &str,
) -> Result<OrderSnapshot, StoreError> {
    let row = hot
        .get(
            conn,
            Hot::Snapshot,
            "SELECT outcome, transaction_id, mode FROM orders WHERE shop = ?1 AND order_ref = ?2",
        )?
        .query_row(params![shop, order_ref], |r| {
            Ok(OrderSnapshot {
                outcome: Some(r.get::<_, Outcome>(0)?),
                transaction_id: Some(r.get(1)?),
                mode: r.get(2)?,
            })
        })
        .optional()?;
    Ok(row.unwrap_or_default())
}

/// The order's outcome and the event that set it (what a claim compares).
/// Takes the order's lock ([`lock_order`]).
pub(crate) fn order_now(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
) -> Result<Option<(Outcome, i64)>, StoreError> {
    lock_order(conn, shop, order_ref)?;
    Ok(conn
        .prepare_cached("SELECT outcome, event_id FROM orders WHERE shop = ?1 AND order_ref = ?2")?
        .query_row(params![shop, order_ref], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// A decision in the events table's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VerdictColumns {
    /// `applied` or `ignored`.
    pub verdict: &'static str,
    /// The order's new outcome when applied.
    pub outcome: Option<Outcome>,
    /// Why it was ignored, or the note on an unusual move.
    pub reason: Option<String>,
}

impl VerdictColumns {
    /// The columns of `verdict`; `held` (the reason) stores a decision
    /// that waits for the gateway as ignored, whatever it decided.
    pub(crate) fn of(verdict: &Verdict, held: Option<&str>) -> VerdictColumns {
        match verdict {
            _ if held.is_some() => VerdictColumns {
                verdict: "ignored",
                outcome: None,
                reason: held.map(str::to_owned),
            },
            Verdict::Apply { outcome, note } => VerdictColumns {
                verdict: "applied",
                outcome: Some(*outcome),
                reason: note.clone(),
            },
            Verdict::Ignore { reason } => VerdictColumns {
                verdict: "ignored",
                outcome: None,
                reason: Some(reason.clone()),
            },
        }
    }
}

/// A new `events` row: a notification and the decision taken on it.
pub(crate) struct NewEvent<'a> {
    pub source: &'a str,
    /// The deduplication key: a BLOB for intake (the compact key), text
    /// for the events a confirmation or reconciliation writes.
    pub event_key: &'a dyn ToSql,
    pub shop: &'a str,
    pub order_ref: &'a str,
    pub notification: &'a Notification,
    /// `notification` as stored JSON, when the caller serialised it
    /// already: intake does it on the request's task, off the one writer
    /// thread (issue 18); else `insert_event` does.
    pub notification_json: Option<&'a str>,
    /// `notification.origin()` for intake; `confirmation` or
    /// `reconciliation` for the events those write.
    pub origin: &'a str,
    pub decision: &'a Decision,
    pub columns: &'a VerdictColumns,
    pub now: i64,
}

/// Inserts the event; returns its id.
pub(crate) fn insert_event(conn: &Connection, e: &NewEvent<'_>) -> Result<i64, StoreError> {
    let mut hot = HotStatements::default();
    insert_event_row(conn, &mut hot, Hot::InsertEvent, e, INSERT_EVENT)?
        .ok_or_else(|| StoreError::Corrupt("INSERT … RETURNING id returned no row".into()))
}

/// [`insert_event`], unless the same event (`events_dedupe`: shop, order,
/// source, key) is stored already: then `None`, and nothing is written.
/// Intake inserts first and looks for the earlier delivery only when this
/// says there is one, so a new notification (nearly every one) costs one
/// search of the dedupe index instead of two (issue 18).
pub(crate) fn insert_event_if_new<'c>(
    conn: &'c Connection,
    hot: &mut HotStatements<'c>,
    e: &NewEvent<'_>,
) -> Result<Option<i64>, StoreError> {
    insert_event_row(conn, hot, Hot::InsertEventIfNew, e, INSERT_EVENT_IF_NEW)
}

const INSERT_EVENT: &str =
    "INSERT INTO events (source, event_key, provider, shop, order_ref, transaction_id, status, origin,
                         notification, assessed, verdict, outcome, reason, comment, created_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15) RETURNING id";

const INSERT_EVENT_IF_NEW: &str =
    "INSERT INTO events (source, event_key, provider, shop, order_ref, transaction_id, status, origin,
                         notification, assessed, verdict, outcome, reason, comment, created_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)
     ON CONFLICT (shop, order_ref, source, event_key) DO NOTHING RETURNING id";

fn insert_event_row<'c>(
    conn: &'c Connection,
    hot: &mut HotStatements<'c>,
    which: Hot,
    e: &NewEvent<'_>,
    sql: &str,
) -> Result<Option<i64>, StoreError> {
    let serialised;
    let json = match e.notification_json {
        Some(json) => json,
        None => {
            serialised = notification_json(e.notification)?;
            &serialised
        }
    };
    Ok(hot
        .get(conn, which, conn.insert_text(sql))?
        .inserted_id(params![
            e.source,
            e.event_key,
            e.notification.provider.as_str(),
            e.shop,
            e.order_ref,
            e.notification.transaction_id,
            e.notification.status(),
            e.origin,
            json,
            e.decision.assessed,
            e.columns.verdict,
            e.columns.outcome,
            e.columns.reason,
            e.decision.comment,
            e.now,
        ])?)
}

/// Rewrites a stored event's decision (replay), stamping `replayed_at`.
pub(crate) fn redecide_event(
    conn: &Connection,
    event_id: i64,
    decision: &Decision,
    columns: &VerdictColumns,
    now: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE events SET assessed = ?2, verdict = ?3, outcome = ?4, reason = ?5, comment = ?6, replayed_at = ?7
         WHERE id = ?1",
        params![
            event_id,
            decision.assessed,
            columns.verdict,
            columns.outcome,
            columns.reason,
            decision.comment,
            now
        ],
    )?;
    Ok(())
}

/// What moves the order.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cause<'a> {
    /// A notification (intake, replay, confirmation, reconciliation): the
    /// order's row is created if new and remembers this event, its
    /// transaction and, when the notification has one, its mode (see
    /// [`upsert_order`]); the shop update hangs off this event.
    Event {
        event_id: i64,
        transaction_id: &'a str,
        mode: Option<&'a str>,
    },
    /// An operator's review action on an existing order: only the outcome
    /// moves (the order keeps the event and transaction that set it, which
    /// the action is about); the shop update hangs off `order_event_id`,
    /// that event, so the shop sees which payment it is about.
    Operator { order_event_id: i64 },
}

/// One move of an order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Move<'a> {
    /// `""` for a log-only source: the order moves, no shop update.
    pub shop: &'a str,
    pub order_ref: &'a str,
    /// The outcome being left (`None`: a new order).
    pub from: Option<Outcome>,
    pub to: Outcome,
    /// The shop's order-history comment.
    pub comment: &'a str,
    pub now: i64,
}

/// Moves the order to `m.to` and, when it has a shop, queues the shop
/// update, due now. Returns the outbox row id (also the update's
/// idempotency key towards the shop).
pub(crate) fn move_order(
    conn: &Connection,
    m: &Move<'_>,
    cause: Cause<'_>,
) -> Result<Option<i64>, StoreError> {
    move_order_in(conn, &mut HotStatements::default(), m, cause)
}

/// [`move_order`] with a batch's statements.
pub(crate) fn move_order_in<'c>(
    conn: &'c Connection,
    hot: &mut HotStatements<'c>,
    m: &Move<'_>,
    cause: Cause<'_>,
) -> Result<Option<i64>, StoreError> {
    let hangs_off = match cause {
        Cause::Event {
            event_id,
            transaction_id,
            mode,
        } => {
            upsert_order(conn, hot, m, transaction_id, event_id, mode)?;
            event_id
        }
        Cause::Operator { order_event_id } => {
            conn.prepare_cached(
                "UPDATE orders SET outcome = ?3, updated_at = ?4 WHERE shop = ?1 AND order_ref = ?2",
            )?
            .execute(params![m.shop, m.order_ref, m.to, m.now])?;
            order_event_id
        }
    };
    if m.shop.is_empty() {
        return Ok(None);
    }
    queue_update(conn, m, hangs_off).map(Some)
}

/// The order's mode after a move carrying `$new` (SQL), the order's being
/// `$old`: the first mode sticks, PRODUCTION replaces it, no mode keeps
/// it. Written once for the UPDATE and the upsert of [`upsert_order`].
/// (`COALESCE` rather than `CASE WHEN $new IS NULL`: PostgreSQL cannot
/// tell a parameter's type from an `IS NULL` test alone.)
macro_rules! order_mode {
    ($old:literal, $new:literal) => {
        concat!(
            "COALESCE(CASE WHEN ",
            $old,
            " IS NULL OR ",
            $new,
            " = 'PRODUCTION' THEN ",
            $new,
            " END, ",
            $old,
            ")"
        )
    };
}

/// Sets the order's outcome and the event and transaction that set it,
/// creating the order row on its first decision, and remembers the mode
/// of the notification that moved it: the first one
/// sticks, except that PRODUCTION replaces TEST (a real payment on an
/// order a test touched first makes it a production order; the reverse
/// never happens, the state machine ignores TEST on PRODUCTION). A
/// notification without a mode leaves the order's as it is.
///
/// The mode is written by the same statement as the outcome
/// ([`order_mode!`]): the row is found and written once per applied
/// notification (issue 18).
///
/// The snapshot the decision was taken on says whether the row exists
/// (`m.from`), so the common cases are a plain UPDATE or, on SQLite, a
/// plain INSERT: an upsert's DO UPDATE arm makes SQLite open a statement
/// journal for every execution (the arm may write a row whose foreign key
/// is then checked), and search the key twice; that was 6 % of the
/// writer's instructions (issue 18, ninth pass). Should the snapshot be
/// wrong (a caller that moves an order it did not read), the upsert still
/// runs: an UPDATE that found no row, or an INSERT that found one (SQLite
/// checks the key before it writes, so the failed INSERT changed nothing),
/// falls back to it. PostgreSQL takes the upsert for a new order: a failed
/// statement there would abort the whole transaction.
fn upsert_order<'c>(
    conn: &'c Connection,
    hot: &mut HotStatements<'c>,
    m: &Move<'_>,
    transaction_id: &str,
    event_id: i64,
    mode: Option<&str>,
) -> Result<(), StoreError> {
    let values = params![
        m.shop,
        m.order_ref,
        m.to,
        transaction_id,
        event_id,
        m.now,
        mode
    ];
    if m.from.is_some() {
        let updated = hot
            .get(
                conn,
                Hot::UpdateOrder,
                concat!(
                    "UPDATE orders SET outcome = ?3, transaction_id = ?4, event_id = ?5, updated_at = ?6, mode = ",
                    order_mode!("mode", "?7"),
                    " WHERE shop = ?1 AND order_ref = ?2"
                ),
            )?
            .execute(values)?;
        if updated == 1 {
            return Ok(());
        }
    } else if conn.backend() == crate::store::Backend::Sqlite {
        match hot
            .get(
                conn,
                Hot::InsertOrder,
                "INSERT INTO orders (shop, order_ref, outcome, transaction_id, event_id, updated_at, mode)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(values)
        {
            Ok(_) => return Ok(()),
            Err(e) if e.is_unique_violation() => {}
            Err(e) => return Err(e.into()),
        }
    }
    hot.get(
        conn,
        Hot::UpsertOrder,
        concat!(
            "INSERT INTO orders (shop, order_ref, outcome, transaction_id, event_id, updated_at, mode)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (shop, order_ref) DO UPDATE SET
                 outcome = excluded.outcome, transaction_id = excluded.transaction_id,
                 event_id = excluded.event_id, updated_at = excluded.updated_at, mode = ",
            order_mode!("orders.mode", "excluded.mode")
        ),
    )?
    .execute(values)?;
    Ok(())
}

/// Queues the shop update of `m`, hanging off `event_id`.
fn queue_update(conn: &Connection, m: &Move<'_>, event_id: i64) -> Result<i64, StoreError> {
    conn.insert_returning_id(
        "INSERT INTO outbox (shop, order_ref, event_id, previous_outcome, outcome, comment, state,
                             attempts, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', 0, ?7, ?7) RETURNING id",
        params![
            m.shop,
            m.order_ref,
            event_id,
            m.from,
            m.to,
            m.comment,
            m.now
        ],
    )?
    .ok_or_else(|| StoreError::Corrupt("the outbox row was not inserted".into()))
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
    conn.insert_returning_id(
        "INSERT INTO outbox (shop, order_ref, event_id, previous_outcome, outcome, comment, state,
                             attempts, next_attempt_at, created_at, comment_only)
         VALUES (?1, ?2, ?3, ?4, ?4, ?5, 'pending', 0, ?6, ?6, 1) RETURNING id",
        params![shop, order_ref, event_id, current, comment, now],
    )?
    .ok_or_else(|| StoreError::Corrupt("the outbox row was not inserted".into()))
}

#[cfg(test)]
mod tests;
