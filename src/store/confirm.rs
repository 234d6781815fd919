//! Confirmations (issue 15): the SQL of holding a notification until the
//! gateway vouches for it, and of recording what the gateway said.
//!
//! - [`must_wait`] and [`hold`] run inside the intake transaction: the
//!   held event is stored `ignored` with reason [`WAITING`] and a
//!   `confirmations` row, committed with it; the answer to the platform
//!   does not wait for the gateway.
//! - The confirmer reads due rows ([`due`], read-only connection), asks the
//!   gateway outside any transaction, and hands the answer to the writer
//!   ([`ConfirmReport`] → [`record`]), which decides from the fetched state
//!   through the same state machine, orders and outbox as intake, and
//!   records the decision as a new event (origin `confirmation`), so `show`
//!   has both: "waiting for confirmation", then the result.

use crate::store::db::{params, Connection, OptionalExtension};

use super::apply::{self, Cause, Move, NewEvent, VerdictColumns};
use super::sql::notification_from_json;
use super::{now_ms, StoreError};
use crate::config::Confirm;
use crate::confirm::gateway::Lookup;
use crate::domain::{self, Decision, Notification, OrderSnapshot, Outcome, Verdict};
use crate::ops::metrics::{CONFIRMATIONS, CONFIRMATION_LAG, RECONCILIATIONS};

/// The reason of a held event.
pub const WAITING: &str = "waiting for confirmation by the gateway";
/// The origin of the event a confirmation records.
pub const ORIGIN: &str = "confirmation";
/// The result of a confirmation whose decision the gateway never recorded.
pub const NO_RECORD: &str = "unrecorded";
/// The origin (and result) of an event reconciliation records.
pub const RECONCILED: &str = "reconciliation";

/// Whether `decision` must wait for the gateway under `confirm`: it would
/// move the order (to `accepted` only, for `success`).
pub fn must_wait(confirm: Confirm, decision: &Decision) -> bool {
    match (confirm, &decision.verdict) {
        (Confirm::Off | Confirm::Unsigned, _) | (_, Verdict::Ignore { .. }) => false,
        (Confirm::Success, Verdict::Apply { outcome, .. }) => *outcome == Outcome::Accepted,
        (Confirm::All, Verdict::Apply { .. }) => true,
    }
}

/// Queues the confirmation of the held event `event_id`, due now.
pub(crate) fn hold(
    conn: &Connection,
    event_id: i64,
    source: &str,
    shop: &str,
    order_ref: &str,
    now: i64,
) -> Result<i64, StoreError> {
    conn.insert_returning_id(
        "INSERT INTO confirmations (event_id, source, shop, order_ref, state, next_attempt_at, created_at)
         VALUES (?1, ?2, ?3, ?4, 'waiting', ?5, ?5) RETURNING id",
        params![event_id, source, shop, order_ref, now],
    )?
    .ok_or_else(|| StoreError::Corrupt("the confirmation row was not inserted".into()))
}

/// One confirmation to make.
#[derive(Debug, Clone)]
pub struct DueConfirmation {
    pub id: i64,
    pub event_id: i64,
    pub source: String,
    pub order_ref: String,
    pub attempts: u32,
    pub created_at: i64,
    /// The stored notification (the gateway is asked about it).
    pub notification: Notification,
}

/// Waiting confirmations due at `now`, oldest first.
pub fn due(conn: &Connection, now: i64, limit: usize) -> Result<Vec<DueConfirmation>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT c.id, c.event_id, c.source, c.order_ref, c.attempts, c.created_at, e.notification
         FROM confirmations c JOIN events e ON e.id = c.event_id
         WHERE c.state = 'waiting' AND c.next_attempt_at <= ?1
         ORDER BY c.next_attempt_at, c.id LIMIT ?2",
    )?;
    let rows = stmt.query_map(params![now, limit as i64], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
            r.get::<_, u32>(4)?,
            r.get::<_, i64>(5)?,
            r.get::<_, String>(6)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, event_id, source, order_ref, attempts, created_at, json) = row?;
        let notification = notification_from_json(&json, &format!("event {event_id}"))?;
        out.push(DueConfirmation {
            id,
            event_id,
            source,
            order_ref,
            attempts,
            created_at,
            notification,
        });
    }
    Ok(out)
}

/// When the next waiting confirmation is due, if any.
pub fn next_due_at(conn: &Connection) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT MIN(next_attempt_at) FROM confirmations WHERE state = 'waiting'")?
        .query_row([], |r| r.get(0))?)
}

/// How many confirmations wait.
pub fn waiting_count(conn: &Connection) -> Result<u64, StoreError> {
    Ok(conn
        .prepare_cached("SELECT COUNT(*) FROM confirmations WHERE state = 'waiting'")?
        .query_row([], |r| r.get(0))?)
}

/// What the confirmer found, for the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmReport {
    /// No usable answer: try again at `next_attempt_at`.
    Retry {
        id: i64,
        next_attempt_at: i64,
        error: String,
    },
    /// The gateway answered about the transaction.
    Settled {
        id: i64,
        /// `Lyra`, `Mastercard Gateway`: for the comment.
        gateway: String,
        lookup: Lookup,
    },
    /// Reconciliation: the gateway's current state of an order.
    Reconciled(Box<Reconciliation>),
}

/// The gateway's current state of one order, found by reconciliation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reconciliation {
    pub source: String,
    pub shop: String,
    pub order_ref: String,
    pub gateway: String,
    /// The gateway's state as a notification.
    pub notification: Notification,
    pub summary: String,
    /// Only for an order ipnsync already knows (a report lists every order
    /// of the merchant account, some perhaps of another shop or system).
    pub known_only: bool,
}

/// What [`record`] did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recorded {
    /// `confirmed`, `disagreed`, `unconfirmed`, `unrecorded`, `reconciliation` (the
    /// order moved), or `None` (a retry, a confirmation already settled, an
    /// order the gateway's state does not move).
    pub result: Option<&'static str>,
    /// The order's outcome before and after, when it moved.
    pub moved: Option<(Option<Outcome>, Outcome)>,
    pub event_id: Option<i64>,
    pub outbox_id: Option<i64>,
}

/// Records a confirmer's report (in the writer's transaction).
pub(crate) fn record(conn: &Connection, report: &ConfirmReport) -> Result<Recorded, StoreError> {
    let now = now_ms();
    let (id, gateway, lookup) = match report {
        ConfirmReport::Retry {
            id,
            next_attempt_at,
            error,
        } => {
            conn.prepare_cached(
                "UPDATE confirmations SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3
                 WHERE id = ?1 AND state = 'waiting'",
            )?
            .execute(params![id, next_attempt_at, error])?;
            return Ok(Recorded::default());
        }
        ConfirmReport::Settled {
            id,
            gateway,
            lookup,
        } => (*id, gateway, lookup),
        ConfirmReport::Reconciled(r) => return reconcile(conn, r, now),
    };
    let job = conn
        .prepare_cached(
            "SELECT c.event_id, c.source, c.shop, c.order_ref, c.created_at, e.notification, e.assessed, e.status
             FROM confirmations c JOIN events e ON e.id = c.event_id
             WHERE c.id = ?1 AND c.state = 'waiting'",
        )?
        .query_row(params![id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Outcome>(6)?,
                r.get::<_, String>(7)?,
            ))
        })
        .optional()?;
    // Settled already (a second confirmer, an operator): nothing to do.
    let Some((held_id, source, shop, order_ref, created_at, stored_json, notified, status)) = job
    else {
        return Ok(Recorded::default());
    };
    let stored = notification_from_json(&stored_json, &format!("event {held_id}"))?;
    let snapshot = apply::order_snapshot(conn, &shop, &order_ref)?;
    let (result, notification, decision, gateway_state) = match lookup {
        Lookup::Unconfirmed(why) => {
            tracing::warn!(
                source = %source, order = %crate::ops::logging::one_line(&order_ref), event = held_id, reason = %crate::ops::logging::one_line(why),
                "notification not confirmed by the gateway: not applied"
            );
            let comment = format!(
                "{gateway} does not confirm this notification ({status}): not applied. {why}"
            );
            let decision = Decision {
                assessed: notified,
                verdict: Verdict::Ignore {
                    reason: format!("not confirmed by {gateway}: {why}"),
                },
                comment,
                warnings: Vec::new(),
            };
            ("unconfirmed", stored, decision, why.clone())
        }
        Lookup::NoRecord(why) => {
            // The notification claims a decision the gateway's own record
            // does not hold: not applied, and not forgotten either; a
            // person looks (the order may be a forgery's target).
            tracing::warn!(
                source = %source, order = %crate::ops::logging::one_line(&order_ref), event = held_id, reason = %crate::ops::logging::one_line(why),
                "the gateway has no record of the notified decision: order held for review"
            );
            let decision = Decision {
                assessed: Outcome::Review,
                verdict: domain::transition(&snapshot, &stored, Outcome::Review),
                comment: format!(
                    "Held for review: the notification said {status} ({}), but {gateway} has no record of this decision: {why}.",
                    notified.as_str()
                ),
                warnings: Vec::new(),
            };
            (NO_RECORD, stored, decision, why.clone())
        }
        Lookup::Found {
            notification,
            summary,
        } => {
            let mut decision = domain::decide(&snapshot, notification);
            if decision.assessed == notified {
                decision
                    .comment
                    .push_str(&format!("\nConfirmed with {gateway}: {summary}."));
                (
                    "confirmed",
                    (**notification).clone(),
                    decision,
                    summary.clone(),
                )
            } else {
                // The message and the gateway disagree: a person decides,
                // with both states in front of them.
                tracing::warn!(
                    source = %source, order = %crate::ops::logging::one_line(&order_ref), event = held_id,
                    notified = notified.as_str(), gateway_says = decision.assessed.as_str(), state = %summary,
                    "the notification and the gateway disagree: order held for review"
                );
                let verdict = domain::transition(&snapshot, notification, Outcome::Review);
                let comment = format!(
                    "Held for review: the notification said {status} ({}), but {summary} ({}).",
                    notified.as_str(),
                    decision.assessed.as_str()
                );
                decision.verdict = verdict;
                decision.comment = comment;
                decision.assessed = Outcome::Review;
                (
                    "disagreed",
                    (**notification).clone(),
                    decision,
                    summary.clone(),
                )
            }
        }
    };
    let columns = VerdictColumns::of(&decision.verdict, None);
    let event_key = format!("{ORIGIN}:{held_id}");
    let event_id = apply::insert_event(
        conn,
        &NewEvent {
            source: &source,
            event_key: &event_key,
            shop: &shop,
            order_ref: &order_ref,
            notification: &notification,
            notification_json: None,
            origin: ORIGIN,
            decision: &decision,
            columns: &columns,
            now,
        },
    )?;
    let outcome = columns.outcome;
    let mut outbox_id = None;
    if let Some(to) = outcome {
        let cause = Cause::Event {
            event_id,
            transaction_id: &notification.transaction_id,
            mode: notification.mode(),
        };
        let m = Move {
            shop: &shop,
            order_ref: &order_ref,
            from: snapshot.outcome,
            to,
            comment: &decision.comment,
            now,
        };
        outbox_id = apply::move_order(conn, &m, cause)?;
    }
    conn.prepare_cached(
        "UPDATE confirmations SET state = 'done', result = ?2, gateway_state = ?3,
             result_event_id = ?4, finished_at = ?5, last_error = NULL
         WHERE id = ?1",
    )?
    .execute(params![id, result, gateway_state, event_id, now])?;
    metrics::counter!(CONFIRMATIONS, "source" => source.clone(), "result" => result).increment(1);
    metrics::histogram!(CONFIRMATION_LAG).record((now - created_at).max(0) as f64 / 1000.0);
    Ok(Recorded {
        result: Some(result),
        moved: outcome.map(|o| (snapshot.outcome, o)),
        event_id: Some(event_id),
        outbox_id,
    })
}

/// What the gateway's state would do to the order now: the decision, when
/// it moves the order to another outcome; `None` leaves it alone.
pub fn reconcile_decision(
    conn: &Connection,
    r: &Reconciliation,
) -> Result<Option<(OrderSnapshot, Decision)>, StoreError> {
    let snapshot = apply::order_snapshot(conn, &r.shop, &r.order_ref)?;
    if r.known_only && snapshot.outcome.is_none() {
        return Ok(None);
    }
    let decision = domain::decide(&snapshot, &r.notification);
    match decision.applied_outcome() {
        Some(o) if Some(o) != snapshot.outcome => Ok(Some((snapshot, decision))),
        _ => Ok(None),
    }
}

/// Records a reconciliation that moves the order, as an event of origin
/// `reconciliation` (same state machine, orders and outbox as intake); an
/// order the gateway's state does not move gets nothing.
pub(crate) fn reconcile(
    conn: &Connection,
    r: &Reconciliation,
    now: i64,
) -> Result<Recorded, StoreError> {
    let Some((snapshot, mut decision)) = reconcile_decision(conn, r)? else {
        return Ok(Recorded::default());
    };
    let event_key = format!("{RECONCILED}:{}", r.notification.event_key());
    let seen: Option<i64> = conn
        .prepare_cached(
            "SELECT id FROM events
              WHERE shop = ?1 AND order_ref = ?2 AND source = ?3 AND event_key = ?4",
        )?
        .query_row(params![r.shop, r.order_ref, r.source, event_key], |row| {
            row.get(0)
        })
        .optional()?;
    let (Some(outcome), None) = (decision.applied_outcome(), seen) else {
        return Ok(Recorded::default());
    };
    decision.comment.push_str(&format!(
        "\nFound by reconciliation with {}: {}.",
        r.gateway, r.summary
    ));
    let columns = VerdictColumns::of(&decision.verdict, None);
    let event_id = apply::insert_event(
        conn,
        &NewEvent {
            source: &r.source,
            event_key: &event_key,
            shop: &r.shop,
            order_ref: &r.order_ref,
            notification: &r.notification,
            notification_json: None,
            origin: RECONCILED,
            decision: &decision,
            columns: &columns,
            now,
        },
    )?;
    let cause = Cause::Event {
        event_id,
        transaction_id: &r.notification.transaction_id,
        mode: r.notification.mode(),
    };
    let m = Move {
        shop: &r.shop,
        order_ref: &r.order_ref,
        from: snapshot.outcome,
        to: outcome,
        comment: &decision.comment,
        now,
    };
    let outbox_id = apply::move_order(conn, &m, cause)?;
    tracing::info!(
        source = %r.source, shop = %r.shop, order = %crate::ops::logging::one_line(&r.order_ref),
        from = snapshot.outcome.map_or("new", Outcome::as_str), to = outcome.as_str(), state = %r.summary,
        "reconciliation moved the order"
    );
    metrics::counter!(RECONCILIATIONS, "source" => r.source.clone(), "result" => "moved")
        .increment(1);
    Ok(Recorded {
        result: Some(RECONCILED),
        moved: Some((snapshot.outcome, outcome)),
        event_id: Some(event_id),
        outbox_id,
    })
}

/// One order reconciliation looks at.
#[derive(Debug, Clone)]
pub struct ReconcileTarget {
    pub shop: String,
    pub order_ref: String,
    pub outcome: Option<Outcome>,
    /// The source of the event that set the order's outcome.
    pub source: String,
    /// That event's notification.
    pub stored: Option<Notification>,
}

/// Orders still `pending` or `review` that have not moved for `min_age`
/// but did within `max_age` (ms), without a confirmation waiting; with
/// `order`, that order in any state and age.
pub fn reconcile_targets(
    conn: &Connection,
    now: i64,
    min_age: i64,
    max_age: i64,
    order: Option<&str>,
) -> Result<Vec<ReconcileTarget>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT o.shop, o.order_ref, o.outcome, e.source, e.notification
         FROM orders o JOIN events e ON e.id = o.event_id
         WHERE CASE WHEN CAST(?4 AS TEXT) IS NOT NULL THEN o.order_ref = ?4
                    ELSE o.outcome IN ('pending', 'review')
                         AND o.updated_at <= CAST(?1 AS BIGINT) - CAST(?2 AS BIGINT)
                         AND o.updated_at >= CAST(?1 AS BIGINT) - CAST(?3 AS BIGINT) END
           AND NOT EXISTS (SELECT 1 FROM confirmations c WHERE c.state = 'waiting'
                           AND c.shop = o.shop AND c.order_ref = o.order_ref)
         ORDER BY o.updated_at, o.shop, o.order_ref",
    )?;
    let rows = stmt.query_map(params![now, min_age, max_age, order], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            // An outcome this binary does not know: none, the order is
            // still looked at.
            r.get::<_, Outcome>(2).ok(),
            r.get::<_, String>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (shop, order_ref, outcome, source, json) = row?;
        out.push(ReconcileTarget {
            shop,
            order_ref,
            outcome,
            source,
            stored: serde_json::from_str(&json).ok(),
        });
    }
    Ok(out)
}

/// Records one reconciliation from an operator command, in its own short
/// `BEGIN IMMEDIATE` transaction (safe while the daemon runs).
pub fn reconcile_now(conn: &mut Connection, r: &Reconciliation) -> Result<Recorded, StoreError> {
    let tx = conn.transaction_with_behavior(crate::store::db::TransactionBehavior::Immediate)?;
    let recorded = reconcile(&tx, r, now_ms())?;
    tx.commit()?;
    Ok(recorded)
}

#[cfg(test)]
mod tests;
