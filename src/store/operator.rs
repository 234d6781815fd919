//! The operator's writes to the order history: retry dead shop updates,
//! replay a stored notification, prune raw bodies.
//!
//! The CLI runs as a separate process next to the daemon, and the console
//! inside it; both write on their own connection ([`open_operator`]) in
//! short `BEGIN IMMEDIATE` transactions: the daemon's writer waits on its
//! busy timeout for at most one such transaction, so intake keeps
//! answering while an operator works. A replay applies its decision
//! through [`super::apply`], exactly as intake does.

use rusqlite::OpenFlags;

use crate::store::db::{params, Connection, OptionalExtension, TransactionBehavior};

use super::apply::{self, Cause, Move, VerdictColumns};
use super::read::orders::StoredDecision;
use super::sql::notification_from_json;
use super::{now_ms, StoreError};
use crate::domain::{self, Notification, Outcome};

/// Opens an existing database for an operator action, with the daemon's
/// pragmas (WAL, `synchronous=FULL`, busy timeout). Unlike
/// [`super::open_writer`] it neither creates the file nor migrates it: an
/// operator action against a typo'd path or a database the daemon has not
/// migrated must fail rather than build an empty database.
pub fn open_operator<D: super::AsDatabase + ?Sized>(db: &D) -> Result<Connection, StoreError> {
    let db = &*db.as_database();
    let Some(path) = db.sqlite_path() else {
        // PostgreSQL: a pooled session; the schema must be in place.
        let conn = super::open_reader(db)?;
        super::read::check_schema(&conn)?;
        return Ok(conn);
    };
    let conn = rusqlite::Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|source| StoreError::Open {
        path: path.display().to_string(),
        source: source.into(),
    })?;
    super::configure(&conn)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "journal_mode is {mode}, WAL required"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    let conn = Connection::from(conn);
    super::read::check_schema(&conn)?;
    Ok(conn)
}

/// Puts dead outbox rows back to pending (all of them when `ids` is
/// `None`) in one short transaction. Returns how many rows changed. The
/// daemon's dispatcher polls the outbox and picks them up by itself.
pub fn retry(conn: &mut Connection, ids: Option<&[i64]>) -> Result<usize, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let changed = retry_dead(&tx, ids)?;
    tx.commit()?;
    Ok(changed)
}

/// Puts dead rows back in the queue (operator action). Returns how many
/// rows changed. The attempt counter is kept, so history stays truthful;
/// `schedule_base` restarts the retry schedule from its first step.
pub(crate) fn retry_dead(conn: &Connection, ids: Option<&[i64]>) -> Result<usize, StoreError> {
    let now = now_ms();
    let changed = match ids {
        None => conn
            .prepare_cached(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ?1, schedule_base = attempts WHERE state = 'dead'",
            )?
            .execute(params![now])?,
        Some(ids) => {
            let mut n = 0;
            for id in ids {
                n += conn.prepare_cached("UPDATE outbox SET state = 'pending', next_attempt_at = ?2, schedule_base = attempts\n                     WHERE id = ?1 AND state = 'dead'")?.execute(
                    params![id, now],
                )?;
            }
            n
        }
    };
    Ok(changed)
}

/// What re-deciding a stored notification gave (or would give).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replay {
    pub event_id: i64,
    pub shop: String,
    pub order_ref: String,
    /// The order's outcome the new decision was taken against.
    pub current: Option<Outcome>,
    pub before: StoredDecision,
    pub after: StoredDecision,
    /// The outcome the order moves to, when it changes.
    pub order_change: Option<Outcome>,
    /// Whether a shop update is (or, in a dry run, would be) queued.
    pub shop_update: bool,
    /// The queued outbox row; always `None` in a dry run.
    pub outbox_id: Option<i64>,
    pub dry_run: bool,
    /// A later event of the same order that was applied: replaying this one
    /// would move the order back past it.
    pub later_applied: Option<i64>,
    /// Set when the replay was refused and nothing was written (it would
    /// move the order back and `force` was not given).
    pub refused: Option<String>,
}

/// Re-decides event `event_id` with the current decision rules, e.g.
/// after a mapping change. `None` if there is no such event.
///
/// The order's state *before* that event is not stored, so the decision is
/// taken against the order's **current** snapshot. Replaying an old event
/// could therefore move an order back past a later decision; unless
/// `force` is given, such a replay is refused (`Replay::refused`) and
/// nothing is written. Run `--dry-run` first.
///
/// Without `dry_run`, one `BEGIN IMMEDIATE` transaction rewrites the
/// event's decision columns and `replayed_at`, and, when the new verdict
/// applies an outcome other than the current one, updates the order and
/// queues a shop update exactly as intake does.
pub fn replay(
    conn: &mut Connection,
    event_id: i64,
    dry_run: bool,
    force: bool,
) -> Result<Option<Replay>, StoreError> {
    // A dry run only reads, but inside one transaction so the event and the
    // order snapshot it is judged against are consistent.
    let behavior = if dry_run {
        TransactionBehavior::Deferred
    } else {
        TransactionBehavior::Immediate
    };
    let tx = conn.transaction_with_behavior(behavior)?;
    let Some(stored) = load_event(&tx, event_id)? else {
        return Ok(None);
    };
    let snapshot = apply::order_snapshot(&tx, &stored.shop, &stored.order_ref)?;
    let decision = domain::decide(&snapshot, &stored.notification);
    let columns = VerdictColumns::of(&decision.verdict, None);
    let after = StoredDecision::of(&decision, &columns);
    let applied = decision.applied_outcome();
    let order_change = applied.filter(|o| Some(*o) != snapshot.outcome);
    let shop_update = order_change.is_some() && !stored.shop.is_empty();
    let later_applied: Option<i64> = tx.query_row(
        "SELECT MAX(id) FROM events
         WHERE shop = ?1 AND order_ref = ?2 AND id > ?3 AND verdict = 'applied'",
        params![stored.shop, stored.order_ref, event_id],
        |r| r.get(0),
    )?;
    // A notification held for the gateway's confirmation, or decided by
    // it, takes effect only through the gateway's answer: replaying it would
    // apply the very claim the gateway has not (or has not yet) vouched for.
    let confirmation: Option<String> = tx
        .query_row(
            "SELECT COALESCE(result, state) FROM confirmations
             WHERE event_id = ?1 OR result_event_id = ?1",
            params![event_id],
            |r| r.get(0),
        )
        .optional()?;
    let mut replay = Replay {
        event_id,
        shop: stored.shop.clone(),
        order_ref: stored.order_ref.clone(),
        current: snapshot.outcome,
        before: stored.decision.clone(),
        after,
        order_change,
        shop_update,
        outbox_id: None,
        dry_run,
        later_applied,
        refused: None,
    };
    if let Some(confirmation) = confirmation {
        replay.refused = Some(format!(
            "event {event_id} is decided by the gateway's confirmation ({confirmation}), not by its own fields; `ipnsync reconcile --order {}` asks the gateway again",
            stored.order_ref
        ));
        return Ok(Some(replay));
    }
    if dry_run {
        return Ok(Some(replay)); // dropping `tx` rolls back
    }
    if let (Some(later), Some(to), false) = (later_applied, order_change, force) {
        // Each notification takes effect once: re-applying an old one over
        // a later decision is an explicit operator choice.
        replay.refused = Some(format!(
            "event {later} was applied to this order after event {event_id}; replaying would move it to {to} and push that to the shop again. Use --force if that is really wanted"
        ));
        return Ok(Some(replay));
    }
    let now = now_ms();
    apply::redecide_event(&tx, event_id, &decision, &columns, now)?;
    if let Some(to) = order_change {
        // As intake does: a replayed PRODUCTION notification that moves the
        // order marks it PRODUCTION, so no TEST notification moves it after.
        let cause = Cause::Event {
            event_id: stored.id,
            transaction_id: &stored.transaction_id,
            mode: stored.notification.mode(),
        };
        let m = Move {
            shop: &stored.shop,
            order_ref: &stored.order_ref,
            from: snapshot.outcome,
            to,
            comment: &decision.comment,
            now,
        };
        replay.outbox_id = apply::move_order(&tx, &m, cause)?;
    }
    tx.commit()?;
    Ok(Some(replay))
}

/// The stored parts of an event that replay needs.
struct StoredEvent {
    id: i64,
    shop: String,
    order_ref: String,
    transaction_id: String,
    notification: Notification,
    decision: StoredDecision,
}

fn load_event(conn: &Connection, event_id: i64) -> Result<Option<StoredEvent>, StoreError> {
    let row = conn
        .query_row(
            "SELECT shop, order_ref, transaction_id, notification, assessed, verdict, outcome, reason, comment
             FROM events WHERE id = ?1",
            params![event_id],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    StoredDecision {
                        assessed: r.get(4)?,
                        verdict: r.get(5)?,
                        outcome: r.get(6)?,
                        reason: r.get(7)?,
                        comment: r.get(8)?,
                    },
                ))
            },
        )
        .optional()?;
    let Some((shop, order_ref, transaction_id, json, decision)) = row else {
        return Ok(None);
    };
    let notification = notification_from_json(&json, &format!("event {event_id}"))?;
    Ok(Some(StoredEvent {
        id: event_id,
        shop,
        order_ref,
        transaction_id,
        notification,
        decision,
    }))
}

// ------------------------------------------------ the console's retry

/// What [`retry_dead_update`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retried {
    /// Back in the queue; the dispatcher sends it on its next poll.
    Queued { shop: String, order_ref: String },
    /// No such update, or it is not dead (already retried, delivered).
    NotDead,
}

/// Puts one dead update back in the queue and records who did it, in one
/// short transaction.
pub fn retry_dead_update(
    conn: &mut Connection,
    outbox_id: i64,
    actor: &str,
) -> Result<Retried, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let row: Option<(String, String)> = tx
        .query_row(
            "SELECT shop, order_ref FROM outbox WHERE id = ?1 AND state = 'dead'",
            params![outbox_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let Some((shop, order_ref)) = row else {
        return Ok(Retried::NotDead);
    };
    retry_dead(&tx, Some(&[outbox_id]))?;
    tx.execute(
        "INSERT INTO operator_actions (shop, order_ref, action, actor, outbox_id, created_at)
         VALUES (?1, ?2, 'retry', ?3, ?4, ?5)",
        params![shop, order_ref, actor, outbox_id, now_ms()],
    )?;
    tx.commit()?;
    Ok(Retried::Queued { shop, order_ref })
}

/// Deliveries looked at per transaction: small batches keep each write
/// lock short, so a large prune never makes the daemon's writer wait long
/// enough to answer 503.
const PRUNE_BATCH: i64 = super::retention::BATCH as i64;

/// Retention of raw bodies (`ipnsync prune`): clears the body of every
/// delivery received before `cutoff` (ms), with the background retention
/// task's code (`retention::bodies_batch`). Returns how many bodies were
/// (or, in a dry run, would be) cleared. Everything else about a delivery
/// is kept. A body shared in `bodies` (a CMOS document's) is unlinked from
/// those deliveries, and deleted once no delivery refers to it.
pub fn prune_bodies(
    conn: &mut Connection,
    cutoff: i64,
    dry_run: bool,
) -> Result<usize, StoreError> {
    if dry_run {
        return super::retention::bodies_due(conn, cutoff);
    }
    let n = super::retention::prune_bodies(conn, cutoff, PRUNE_BATCH as usize)?;
    super::retention::vacuum_step(conn)?;
    Ok(n)
}

#[cfg(test)]
mod tests;
