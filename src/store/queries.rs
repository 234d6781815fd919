//! Read-only queries: the dispatcher's work list and what the CLI shows.

use crate::store::db::{params, Connection, OptionalExtension};

use super::StoreError;
use crate::domain::Outcome;

/// An outbox row that may be pushed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueRow {
    pub id: i64,
    pub shop: String,
    pub order_ref: String,
    pub event_id: i64,
    pub previous_outcome: Option<Outcome>,
    pub outcome: Outcome,
    pub comment: String,
    /// Attempts made since the row was queued or an operator last retried
    /// it: the position in the retry schedule.
    pub attempts: u32,
    /// Every attempt ever made (what `ipnsync outbox` shows): the log's
    /// attempt number, and whether an earlier one may have reached the shop.
    pub total_attempts: u32,
    pub provider: String,
    pub transaction_id: String,
    pub status: String,
    /// What the notification says was paid (minor units), and in which
    /// currency as sent (numeric or alpha).
    pub amount_minor: Option<i64>,
    pub currency: String,
    /// A comment for the shop's history only: no status change, nobody
    /// notified (`outcome` is the order's outcome when it was queued).
    pub comment_only: bool,
    /// Queued by an operator's review action (validate / deny), not by a
    /// notification: the operator has checked the payment, so the amount
    /// check does not second-guess it.
    pub by_operator: bool,
    /// An earlier attempt's result is unknown: it failed in a way that
    /// says nothing about what the shop did (a timeout, a dropped
    /// connection, a 5xx: recorded as `retry`, or as `dead` once the
    /// retries ran out). An attempt the shop refused outright (a wrong key,
    /// an unknown order: dead at once) applied nothing.
    pub earlier_result_unknown: bool,
}

/// The condition of an outbox row `o` that is due at `?1` (now): pending,
/// its next attempt reached (or its latest attempt in the future: the
/// clock went back), and the first undelivered row of its order. One text
/// for the read and the claim, so that they cannot disagree.
macro_rules! due_now {
    () => {
        "o.state = 'pending'
           AND (o.next_attempt_at <= ?1
                OR (SELECT a.at FROM push_attempts a WHERE a.outbox_id = o.id
                    ORDER BY a.id DESC LIMIT 1) > ?1)
           AND NOT EXISTS (SELECT 1 FROM outbox p
                           WHERE p.shop = o.shop AND p.order_ref = o.order_ref
                             AND p.id < o.id AND p.state <> 'delivered')"
    };
}

/// Pending rows due at `now`, oldest first, that are the *first* undelivered
/// row of their order: a later update waits until the earlier one is
/// delivered (a dead row holds its order until an operator retries it).
///
/// A row whose latest attempt is recorded *after* `now` is due too: the wall
/// clock was set back since, so its stored `next_attempt_at` would wait
/// longer than the schedule asked (by as much as the clock went back). Only
/// the latest attempt counts: once the row has been tried again on the new
/// clock, its new `next_attempt_at` holds. The
/// running dispatcher measures its own waits on the monotonic clock
/// (`dispatch::retry::RetryClock`); this bound is for rows left by a
/// previous run.
///
/// Several daemons on one PostgreSQL (**rule `one-pusher-per-order`**):
/// the rows are first claimed for this daemon (`claimed_by`, until now +
/// `lease`) with `FOR UPDATE SKIP LOCKED`, and only this daemon's claims
/// are returned. A row claimed by another daemon whose claim has not lapsed
/// is not due here; this daemon's own claims are renewed at every call
/// (so a push longer than the lease keeps its claim while the daemon
/// lives). Since only the first undelivered row of an order can be due,
/// one order is pushed by one daemon at a time, in order. SQLite (one
/// daemon) claims nothing: the dispatcher's memory is enough.
pub fn due_rows(
    conn: &Connection,
    now: i64,
    limit: usize,
    lease: std::time::Duration,
) -> Result<Vec<DueRow>, StoreError> {
    let me = match conn.backend() {
        crate::store::Backend::Postgres => {
            let me = super::instance_id();
            claim_due(conn, me, now, limit, lease)?;
            Some(me)
        }
        crate::store::Backend::Sqlite => None,
    };
    let mut stmt =
        conn.prepare_cached(concat!(
        "SELECT o.id, o.shop, o.order_ref, o.event_id, o.previous_outcome, o.outcome, o.comment,
                o.attempts - o.schedule_base,
                e.provider, e.transaction_id, e.status,
                o.attempts, CAST(json_extract(e.notification, '$.amount_minor') AS BIGINT),
                COALESCE(json_extract(e.notification, '$.currency'), ''), o.comment_only,
                EXISTS (SELECT 1 FROM review_actions r WHERE r.outbox_id = o.id),
                EXISTS (SELECT 1 FROM push_attempts a WHERE a.outbox_id = o.id
                          AND (a.result = 'retry'
                               OR (a.result = 'dead' AND a.detail LIKE 'retries exhausted%')))
         FROM outbox o JOIN events e ON e.id = o.event_id
         WHERE ", due_now!(), "
           AND (CAST(?3 AS TEXT) IS NULL OR (o.claimed_by = ?3 AND o.claimed_until > ?1))
         ORDER BY o.id
         LIMIT ?2"
    ))?;
    let rows = stmt
        .query_map(params![now, limit as i64, me], |r| {
            Ok(DueRow {
                id: r.get(0)?,
                shop: r.get(1)?,
                order_ref: r.get(2)?,
                event_id: r.get(3)?,
                previous_outcome: r.get(4)?,
                outcome: r.get(5)?,
                comment: r.get(6)?,
                attempts: r.get(7)?,
                provider: r.get(8)?,
                transaction_id: r.get(9)?,
                status: r.get(10)?,
                total_attempts: r.get(11)?,
                amount_minor: r.get(12)?,
                currency: r.get(13)?,
                comment_only: r.get(14)?,
                by_operator: r.get(15)?,
                earlier_result_unknown: r.get(16)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Claims (or renews) up to `limit` due rows for daemon `me` (see
/// [`due_rows`]). One statement: the claim commits on its own.
fn claim_due(
    conn: &Connection,
    me: &str,
    now: i64,
    limit: usize,
    lease: std::time::Duration,
) -> Result<(), StoreError> {
    let until = now.saturating_add(i64::try_from(lease.as_millis()).unwrap_or(i64::MAX));
    conn.prepare_cached(concat!(
        "UPDATE outbox SET claimed_by = ?2, claimed_until = ?3
             WHERE id IN (
                 SELECT o.id FROM outbox o
                 WHERE ",
        due_now!(),
        "
                   AND (o.claimed_until IS NULL OR o.claimed_until <= ?1 OR o.claimed_by = ?2)
                 ORDER BY o.id
                 LIMIT ?4
                 FOR UPDATE SKIP LOCKED)"
    ))?
    .execute(params![now, me, until, limit as i64])?;
    Ok(())
}

/// When the earliest pending row that may be pushed (the first undelivered
/// row of its order) becomes due, if any. Rows waiting behind an earlier
/// one are not counted: they are not due until that one is delivered.
pub fn next_due_at(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT MIN(o.next_attempt_at) FROM outbox o
             WHERE o.state = 'pending'
               AND NOT EXISTS (SELECT 1 FROM outbox p
                               WHERE p.shop = o.shop AND p.order_ref = o.order_ref
                                 AND p.id < o.id AND p.state <> 'delivered')",
            [],
            |r| r.get::<_, Option<i64>>(0),
        )
        .optional()?
        .flatten())
}

/// Counts per outbox state: (pending, delivered, dead).
pub fn outbox_counts(conn: &Connection) -> Result<(u64, u64, u64), StoreError> {
    let mut stmt = conn.prepare_cached("SELECT state, COUNT(*) FROM outbox GROUP BY state")?;
    let mut counts = (0, 0, 0);
    for row in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, u64>(1)?)))? {
        let (state, n) = row?;
        match state.as_str() {
            "pending" => counts.0 = n,
            "delivered" => counts.1 = n,
            "dead" => counts.2 = n,
            _ => {}
        }
    }
    Ok(counts)
}

/// Counts of stored events and deliveries.
pub fn intake_counts(conn: &Connection) -> Result<(u64, u64), StoreError> {
    let events = conn.query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))?;
    let deliveries = conn.query_row("SELECT COUNT(*) FROM deliveries", [], |r| r.get(0))?;
    Ok((events, deliveries))
}

/// The current outcome of an order as the daemon sees it.
pub fn order_outcome(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
) -> Result<Option<Outcome>, StoreError> {
    // An outcome this binary does not know reads as none here (as before).
    let s: Option<Option<Outcome>> = conn
        .query_row(
            "SELECT outcome FROM orders WHERE shop = ?1 AND order_ref = ?2",
            params![shop, order_ref],
            |r| Ok(r.get::<_, Outcome>(0).ok()),
        )
        .optional()?;
    Ok(s.flatten())
}

/// One outbox row as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub shop: String,
    pub order_ref: String,
    pub outcome: String,
    pub state: String,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    /// Delivered, but a person must finish the job: why.
    pub needs_operator: Option<String>,
    pub comment_only: bool,
}

/// Outbox rows, optionally only one state, oldest first.
pub fn outbox_rows(
    conn: &Connection,
    state: Option<&str>,
    limit: usize,
) -> Result<Vec<OutboxRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, shop, order_ref, outcome, state, attempts, next_attempt_at, last_error,
                needs_operator, comment_only
         FROM outbox WHERE (CAST(?1 AS TEXT) IS NULL OR state = ?1) ORDER BY id LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![state, limit as i64], |r| {
            Ok(OutboxRow {
                id: r.get(0)?,
                shop: r.get(1)?,
                order_ref: r.get(2)?,
                outcome: r.get(3)?,
                state: r.get(4)?,
                attempts: r.get(5)?,
                next_attempt_at: r.get(6)?,
                last_error: r.get(7)?,
                needs_operator: r.get(8)?,
                comment_only: r.get(9)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// Creation time (ms) of the oldest pending outbox row.
pub fn oldest_pending_created_at(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn.query_row(
        "SELECT MIN(created_at) FROM outbox WHERE state = 'pending'",
        [],
        |r| r.get::<_, Option<i64>>(0),
    )?)
}
