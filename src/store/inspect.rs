//! What the operator command line reads and the few things it writes.
//!
//! The CLI runs as a separate process next to the daemon. Reads use a
//! read-only connection (WAL lets them see committed data while the daemon
//! writes). Operator actions (retry, replay, prune) use their own
//! connection and short `BEGIN IMMEDIATE` transactions: the daemon's writer
//! waits on its busy timeout for at most one such transaction, so intake
//! keeps answering while an operator works.

use std::path::Path;

use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};

use super::{migrations, now_ms, StoreError};
use crate::domain::{self, Notification, OrderSnapshot, Outcome, Verdict};

/// Opens an existing database read-only and checks it carries this
/// binary's schema. A missing file is an error: a reader never creates one.
pub fn open_read(path: &Path) -> Result<Connection, StoreError> {
    let conn = super::open_reader(path)?;
    check_schema(&conn)?;
    Ok(conn)
}

/// Opens an existing database for an operator action, with the daemon's
/// pragmas (WAL, `synchronous=FULL`, busy timeout). Unlike
/// [`super::open_writer`] it neither creates the file nor migrates it: an
/// operator action against a typo'd path or a database the daemon has not
/// migrated must fail rather than build an empty database.
pub fn open_operator(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(|source| StoreError::Open {
        path: path.display().to_string(),
        source,
    })?;
    super::configure(&conn)?;
    check_schema(&conn)?;
    let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Corrupt(format!(
            "journal_mode is {mode}, WAL required"
        )));
    }
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

fn check_schema(conn: &Connection) -> Result<(), StoreError> {
    let found: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if found > migrations::LATEST {
        return Err(StoreError::SchemaTooNew {
            found,
            known: migrations::LATEST,
        });
    }
    if found < migrations::LATEST {
        return Err(StoreError::Corrupt(format!(
            "schema version {found}, this binary expects {}: not an ipnsync database, or the daemon has not migrated it yet",
            migrations::LATEST
        )));
    }
    Ok(())
}

// ------------------------------------------------------------------ reads

/// One order as `ipnsync orders` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSummary {
    /// `""` for a source without a shop.
    pub shop: String,
    pub order_ref: String,
    pub outcome: String,
    /// The transaction that set the current outcome.
    pub transaction_id: String,
    pub event_id: i64,
    pub updated_at: i64,
    pub pending: u64,
    pub dead: u64,
}

/// Filters for [`orders`].
#[derive(Debug, Clone, Default)]
pub struct OrderFilter<'a> {
    pub outcome: Option<&'a str>,
    pub shop: Option<&'a str>,
    pub limit: usize,
}

/// Orders, most recently updated first.
pub fn orders(
    conn: &Connection,
    filter: &OrderFilter<'_>,
) -> Result<Vec<OrderSummary>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT o.shop, o.order_ref, o.outcome, o.transaction_id, o.event_id, o.updated_at,
                (SELECT COUNT(*) FROM outbox x
                 WHERE x.shop = o.shop AND x.order_ref = o.order_ref AND x.state = 'pending'),
                (SELECT COUNT(*) FROM outbox x
                 WHERE x.shop = o.shop AND x.order_ref = o.order_ref AND x.state = 'dead')
         FROM orders o
         WHERE (?1 IS NULL OR o.outcome = ?1) AND (?2 IS NULL OR o.shop = ?2)
         ORDER BY o.updated_at DESC, o.shop, o.order_ref
         LIMIT ?3",
    )?;
    let rows = stmt
        .query_map(
            params![filter.outcome, filter.shop, filter.limit as i64],
            order_summary,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn order_summary(r: &rusqlite::Row<'_>) -> rusqlite::Result<OrderSummary> {
    Ok(OrderSummary {
        shop: r.get(0)?,
        order_ref: r.get(1)?,
        outcome: r.get(2)?,
        transaction_id: r.get(3)?,
        event_id: r.get(4)?,
        updated_at: r.get(5)?,
        pending: r.get(6)?,
        dead: r.get(7)?,
    })
}

/// The shops in which an order reference has any history (events or an
/// order row). Used to resolve `show ORDER` without `--shop`.
pub fn shops_of_order(conn: &Connection, order_ref: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT shop FROM orders WHERE order_ref = ?1
         UNION SELECT shop FROM events WHERE order_ref = ?1
         ORDER BY 1",
    )?;
    let shops = stmt
        .query_map(params![order_ref], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(shops)
}

/// One stored notification and the decision taken on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub id: i64,
    pub source: String,
    pub status: String,
    pub origin: String,
    pub transaction_id: String,
    pub decision: StoredDecision,
    pub created_at: i64,
    pub replayed_at: Option<i64>,
}

/// The decision columns of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDecision {
    pub assessed: String,
    /// `applied` or `ignored`.
    pub verdict: String,
    /// The order's new outcome when applied.
    pub outcome: Option<String>,
    pub reason: Option<String>,
    pub comment: String,
}

/// One HTTP delivery of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub id: i64,
    pub event_id: i64,
    pub received_at: i64,
    pub peer: String,
    pub duplicate: bool,
    /// The raw body was removed by `prune`.
    pub body_pruned: bool,
}

/// One outbox row with everything the timeline shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxRecord {
    pub id: i64,
    pub event_id: i64,
    pub previous_outcome: Option<String>,
    pub outcome: String,
    pub state: String,
    pub attempts: u32,
    pub next_attempt_at: i64,
    pub last_error: Option<String>,
    pub created_at: i64,
    pub delivered_at: Option<i64>,
    /// Delivered, but a person must finish the job: why.
    pub needs_operator: Option<String>,
    /// A comment for the shop's history only (an analyst's note).
    pub comment_only: bool,
}

/// One push attempt of an outbox row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    pub id: i64,
    pub outbox_id: i64,
    pub at: i64,
    /// `delivered`, `retry` or `dead`.
    pub result: String,
    pub detail: Option<String>,
}

/// Everything stored about one order, each list in insertion order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderHistory {
    pub shop: String,
    pub order_ref: String,
    /// `None` when no notification was ever applied to the order.
    pub current: Option<OrderSummary>,
    pub events: Vec<EventRecord>,
    pub deliveries: Vec<DeliveryRecord>,
    pub outbox: Vec<OutboxRecord>,
    pub attempts: Vec<AttemptRecord>,
    /// Operator validate / deny actions (`ipnsync review`, admin API).
    pub review_actions: Vec<super::review::ReviewActionRecord>,
}

/// The history of `(shop, order_ref)`, or `None` when nothing is stored
/// about it. Read in one transaction so the parts agree with each other.
pub fn order_history(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
) -> Result<Option<OrderHistory>, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let current = tx
        .query_row(
            "SELECT o.shop, o.order_ref, o.outcome, o.transaction_id, o.event_id, o.updated_at,
                    (SELECT COUNT(*) FROM outbox x
                     WHERE x.shop = o.shop AND x.order_ref = o.order_ref AND x.state = 'pending'),
                    (SELECT COUNT(*) FROM outbox x
                     WHERE x.shop = o.shop AND x.order_ref = o.order_ref AND x.state = 'dead')
             FROM orders o WHERE o.shop = ?1 AND o.order_ref = ?2",
            params![shop, order_ref],
            order_summary,
        )
        .optional()?;
    let events = order_events(&tx, shop, order_ref)?;
    if current.is_none() && events.is_empty() {
        return Ok(None);
    }
    Ok(Some(OrderHistory {
        shop: shop.to_owned(),
        order_ref: order_ref.to_owned(),
        current,
        events,
        deliveries: order_deliveries(&tx, shop, order_ref)?,
        outbox: order_outbox(&tx, shop, order_ref)?,
        attempts: order_attempts(&tx, shop, order_ref)?,
        review_actions: super::review::order_review_actions(&tx, shop, order_ref)?,
    }))
}

fn order_events(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
) -> Result<Vec<EventRecord>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, source, status, origin, transaction_id, assessed, verdict, outcome, reason, comment,
                created_at, replayed_at
         FROM events WHERE shop = ?1 AND order_ref = ?2 ORDER BY id",
    )?;
    let rows = stmt
        .query_map(params![shop, order_ref], |r| {
            Ok(EventRecord {
                id: r.get(0)?,
                source: r.get(1)?,
                status: r.get(2)?,
                origin: r.get(3)?,
                transaction_id: r.get(4)?,
                decision: StoredDecision {
                    assessed: r.get(5)?,
                    verdict: r.get(6)?,
                    outcome: r.get(7)?,
                    reason: r.get(8)?,
                    comment: r.get(9)?,
                },
                created_at: r.get(10)?,
                replayed_at: r.get(11)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn order_deliveries(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT d.id, d.event_id, d.received_at, d.peer, d.duplicate,
                d.body IS NULL AND d.body_id IS NULL
         FROM deliveries d JOIN events e ON e.id = d.event_id
         WHERE e.shop = ?1 AND e.order_ref = ?2 ORDER BY d.id",
    )?;
    let rows = stmt
        .query_map(params![shop, order_ref], |r| {
            Ok(DeliveryRecord {
                id: r.get(0)?,
                event_id: r.get(1)?,
                received_at: r.get(2)?,
                peer: r.get(3)?,
                duplicate: r.get(4)?,
                body_pruned: r.get(5)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn order_outbox(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
) -> Result<Vec<OutboxRecord>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, event_id, previous_outcome, outcome, state, attempts, next_attempt_at, last_error,
                created_at, delivered_at, needs_operator, comment_only
         FROM outbox WHERE shop = ?1 AND order_ref = ?2 ORDER BY id",
    )?;
    let rows = stmt
        .query_map(params![shop, order_ref], |r| {
            Ok(OutboxRecord {
                id: r.get(0)?,
                event_id: r.get(1)?,
                previous_outcome: r.get(2)?,
                outcome: r.get(3)?,
                state: r.get(4)?,
                attempts: r.get(5)?,
                next_attempt_at: r.get(6)?,
                last_error: r.get(7)?,
                created_at: r.get(8)?,
                delivered_at: r.get(9)?,
                needs_operator: r.get(10)?,
                comment_only: r.get(11)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn order_attempts(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT a.id, a.outbox_id, a.at, a.result, a.detail
         FROM push_attempts a JOIN outbox o ON o.id = a.outbox_id
         WHERE o.shop = ?1 AND o.order_ref = ?2 ORDER BY a.id",
    )?;
    let rows = stmt
        .query_map(params![shop, order_ref], |r| {
            Ok(AttemptRecord {
                id: r.get(0)?,
                outbox_id: r.get(1)?,
                at: r.get(2)?,
                result: r.get(3)?,
                detail: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

// --------------------------------------------------------- operator writes

/// Puts dead outbox rows back to pending (all of them when `ids` is
/// `None`) in one short transaction. Returns how many rows changed. The
/// daemon's dispatcher polls the outbox and picks them up by itself.
pub fn retry(conn: &mut Connection, ids: Option<&[i64]>) -> Result<usize, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let changed = super::writer::retry_dead(&tx, ids)?;
    tx.commit()?;
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
    let snapshot = order_snapshot(&tx, &stored.shop, &stored.order_ref)?;
    let decision = domain::decide(&snapshot, &stored.notification);
    let after = stored_decision(&decision);
    let applied = decision.applied_outcome();
    let order_change = applied.filter(|o| Some(*o) != snapshot.outcome);
    let shop_update = order_change.is_some() && !stored.shop.is_empty();
    let later_applied: Option<i64> = tx.query_row(
        "SELECT MAX(id) FROM events
         WHERE shop = ?1 AND order_ref = ?2 AND id > ?3 AND verdict = 'applied'",
        params![stored.shop, stored.order_ref, event_id],
        |r| r.get(0),
    )?;
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
    update_event_decision(&tx, event_id, &replay.after, now)?;
    if let Some(new_outcome) = order_change {
        upsert_order(&tx, &stored, new_outcome, now)?;
        if shop_update {
            replay.outbox_id = Some(queue_update(
                &tx,
                &stored,
                snapshot.outcome,
                new_outcome,
                &decision.comment,
                now,
            )?);
        }
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
    let notification = serde_json::from_str(&json).map_err(|e| {
        StoreError::Corrupt(format!(
            "event {event_id}: stored notification is not readable: {e}"
        ))
    })?;
    Ok(Some(StoredEvent {
        id: event_id,
        shop,
        order_ref,
        transaction_id,
        notification,
        decision,
    }))
}

fn order_snapshot(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
) -> Result<OrderSnapshot, StoreError> {
    let row = conn
        .query_row(
            "SELECT outcome, transaction_id, mode FROM orders WHERE shop = ?1 AND order_ref = ?2",
            params![shop, order_ref],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                ))
            },
        )
        .optional()?;
    let Some((outcome, transaction_id, mode)) = row else {
        return Ok(OrderSnapshot::default());
    };
    let outcome = Outcome::parse(&outcome).ok_or_else(|| {
        StoreError::Corrupt(format!("unknown outcome {outcome:?} in the database"))
    })?;
    Ok(OrderSnapshot {
        outcome: Some(outcome),
        transaction_id: Some(transaction_id),
        mode,
    })
}

/// The decision in the events table's terms (same mapping as intake).
fn stored_decision(d: &domain::Decision) -> StoredDecision {
    let (verdict, outcome, reason) = match &d.verdict {
        Verdict::Apply { outcome, note } => {
            ("applied", Some(outcome.as_str().to_owned()), note.clone())
        }
        Verdict::Ignore { reason } => ("ignored", None, Some(reason.clone())),
    };
    StoredDecision {
        assessed: d.assessed.as_str().to_owned(),
        verdict: verdict.to_owned(),
        outcome,
        reason,
        comment: d.comment.clone(),
    }
}

fn update_event_decision(
    conn: &Connection,
    event_id: i64,
    d: &StoredDecision,
    now: i64,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE events SET assessed = ?2, verdict = ?3, outcome = ?4, reason = ?5, comment = ?6, replayed_at = ?7
         WHERE id = ?1",
        params![event_id, d.assessed, d.verdict, d.outcome, d.reason, d.comment, now],
    )?;
    Ok(())
}

fn upsert_order(
    conn: &Connection,
    e: &StoredEvent,
    outcome: Outcome,
    now: i64,
) -> Result<(), StoreError> {
    super::orders::upsert_order(
        conn,
        &e.shop,
        &e.order_ref,
        outcome,
        &e.transaction_id,
        e.id,
        now,
    )?;
    // As intake does: a replayed PRODUCTION notification that moves the
    // order marks it PRODUCTION, so no TEST notification moves it after.
    if let Some(mode) = e.notification.mode() {
        super::orders::remember_mode(conn, &e.shop, &e.order_ref, mode)?;
    }
    Ok(())
}

fn queue_update(
    conn: &Connection,
    e: &StoredEvent,
    previous: Option<Outcome>,
    outcome: Outcome,
    comment: &str,
    now: i64,
) -> Result<i64, StoreError> {
    super::orders::queue_update(
        conn,
        &e.shop,
        &e.order_ref,
        e.id,
        previous,
        outcome,
        comment,
        now,
    )
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
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::domain::{Facts, LyraFacts, Provider};
    use crate::store::writer::{intake, NewNotification};

    fn db() -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.db");
        drop(crate::store::open_writer(&path).unwrap());
        (dir, path)
    }

    fn notification(
        order: &str,
        status: &str,
        shop: Option<&str>,
        received_at: i64,
    ) -> NewNotification {
        let notification = Notification {
            provider: Provider::LyraForm,
            order_ref: order.into(),
            transaction_id: format!("uuid-{order}"),
            transaction_number: "000001".into(),
            amount_minor: Some(1000),
            currency: "978".into(),
            facts: Facts::Lyra(LyraFacts {
                trans_status: status.into(),
                operation_type: "DEBIT".into(),
                url_check_src: "PAY".into(),
                ..LyraFacts::default()
            }),
        };
        NewNotification {
            source: "lyra".into(),
            shop: shop.map(str::to_owned),
            order_ref: order.into(),
            event_key: notification.event_key(),
            notification,
            received_at,
            peer: "127.0.0.1:1".into(),
            headers: "{}".into(),
            body: Bytes::from_static(b"raw"),
        }
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn readers_and_operators_refuse_missing_or_foreign_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.db");
        assert!(matches!(open_read(&missing), Err(StoreError::Open { .. })));
        assert!(matches!(
            open_operator(&missing),
            Err(StoreError::Open { .. })
        ));
        assert!(!missing.exists(), "nothing was created");

        let foreign = dir.path().join("foreign.db");
        Connection::open(&foreign)
            .unwrap()
            .execute_batch("CREATE TABLE t (x)")
            .unwrap();
        assert!(matches!(open_read(&foreign), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn history_lists_everything_about_one_order() {
        let (_dir, path) = db();
        let conn = open_operator(&path).unwrap();
        intake(
            &conn,
            &notification("7", "AUTHORISED_TO_VALIDATE", Some("s"), 1),
        )
        .unwrap();
        intake(
            &conn,
            &notification("7", "AUTHORISED_TO_VALIDATE", Some("s"), 2),
        )
        .unwrap();
        intake(&conn, &notification("8", "REFUSED", Some("s"), 3)).unwrap();

        let reader = open_read(&path).unwrap();
        let h = order_history(&reader, "s", "7").unwrap().unwrap();
        assert_eq!(h.events.len(), 1);
        assert_eq!(h.deliveries.len(), 2);
        assert!(h.deliveries[1].duplicate);
        assert_eq!(h.outbox.len(), 1);
        assert_eq!(h.current.as_ref().unwrap().pending, 1);
        assert_eq!(order_history(&reader, "other", "7").unwrap(), None);
        assert_eq!(shops_of_order(&reader, "7").unwrap(), vec!["s".to_owned()]);

        let failed = OrderFilter {
            outcome: Some("failed"),
            shop: None,
            limit: 10,
        };
        let listed = orders(&reader, &failed).unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].order_ref, "8");
    }

    /// Stands in for a decision made by an older version of the rules: the
    /// order's outcome is set directly, as a past mapping might have left it.
    fn force_outcome(conn: &Connection, order: &str, outcome: &str) {
        conn.execute(
            "UPDATE orders SET outcome = ?2 WHERE order_ref = ?1",
            params![order, outcome],
        )
        .unwrap();
    }

    #[test]
    fn replay_redecides_against_the_current_order() {
        let (_dir, path) = db();
        let mut conn = open_operator(&path).unwrap();
        let paid = intake(&conn, &notification("7", "AUTHORISED", Some("s"), 1)).unwrap();
        force_outcome(&conn, "7", "pending");

        let dry = replay(&mut conn, paid.event_id, true, false)
            .unwrap()
            .unwrap();
        assert_eq!(dry.current, Some(Outcome::Pending));
        assert_eq!(dry.order_change, Some(Outcome::Accepted));
        assert!(dry.shop_update && dry.outbox_id.is_none());
        assert_eq!(
            count(&conn, "SELECT COUNT(*) FROM outbox"),
            1,
            "dry run changes nothing"
        );
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM events WHERE replayed_at IS NOT NULL"
            ),
            0
        );

        let real = replay(&mut conn, paid.event_id, false, false)
            .unwrap()
            .unwrap();
        let outbox_id = real.outbox_id.expect("update queued");
        let (prev, next): (String, String) = conn
            .query_row(
                "SELECT previous_outcome, outcome FROM outbox WHERE id = ?1",
                [outbox_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!((prev.as_str(), next.as_str()), ("pending", "accepted"));
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM orders WHERE outcome = 'accepted'"
            ),
            1
        );

        // Again: the order is now accepted, so the same event is ignored.
        let again = replay(&mut conn, paid.event_id, false, false)
            .unwrap()
            .unwrap();
        assert_eq!(again.after.verdict, "ignored");
        assert_eq!(again.order_change, None);
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM outbox"), 2);
        assert_eq!(replay(&mut conn, 999, true, false).unwrap(), None);
    }

    #[test]
    fn a_replayed_production_notification_marks_the_order_production() {
        let (_dir, path) = db();
        let mut conn = open_operator(&path).unwrap();
        let mut n = notification("9", "AUTHORISED", Some("s"), 1);
        if let Facts::Lyra(f) = &mut n.notification.facts {
            f.ctx_mode = "PRODUCTION".into();
        }
        let paid = intake(&conn, &n).unwrap();
        // Left by older rules: pending, and no mode remembered.
        conn.execute(
            "UPDATE orders SET outcome = 'pending', mode = NULL WHERE order_ref = '9'",
            [],
        )
        .unwrap();
        let r = replay(&mut conn, paid.event_id, false, false)
            .unwrap()
            .unwrap();
        assert_eq!(r.order_change, Some(Outcome::Accepted));
        let mode: Option<String> = conn
            .query_row("SELECT mode FROM orders WHERE order_ref = '9'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(mode.as_deref(), Some("PRODUCTION"));
    }

    #[test]
    fn replay_over_a_later_decision_needs_force() {
        let (_dir, path) = db();
        let mut conn = open_operator(&path).unwrap();
        let review = intake(
            &conn,
            &notification("5", "AUTHORISED_TO_VALIDATE", Some("s"), 1),
        )
        .unwrap();
        intake(&conn, &notification("5", "AUTHORISED", Some("s"), 2)).unwrap();
        // Older rules had left the order pending, say; the review event,
        // replayed, would now apply over the later accepted one.
        force_outcome(&conn, "5", "pending");
        let outbox_before = count(&conn, "SELECT COUNT(*) FROM outbox");
        let r = replay(&mut conn, review.event_id, false, false)
            .unwrap()
            .unwrap();
        assert!(r.refused.is_some(), "{r:?}");
        assert!(r.later_applied.is_some());
        assert_eq!(
            count(&conn, "SELECT COUNT(*) FROM outbox"),
            outbox_before,
            "nothing written"
        );
        let forced = replay(&mut conn, review.event_id, false, true)
            .unwrap()
            .unwrap();
        assert!(forced.refused.is_none());
        assert!(forced.outbox_id.is_some());
    }

    #[test]
    fn replay_of_a_log_only_event_queues_nothing() {
        let (_dir, path) = db();
        let mut conn = open_operator(&path).unwrap();
        let first = intake(&conn, &notification("9", "AUTHORISED", None, 1)).unwrap();
        force_outcome(&conn, "9", "pending");
        let r = replay(&mut conn, first.event_id, false, false)
            .unwrap()
            .unwrap();
        assert_eq!(r.order_change, Some(Outcome::Accepted));
        assert!(!r.shop_update);
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM outbox"), 0);
    }

    #[test]
    fn prune_clears_old_bodies_in_batches() {
        let (_dir, path) = db();
        let mut conn = open_operator(&path).unwrap();
        for i in 0..(PRUNE_BATCH + 3) {
            intake(&conn, &notification(&i.to_string(), "AUTHORISED", None, i)).unwrap();
        }
        intake(&conn, &notification("late", "AUTHORISED", None, 10_000)).unwrap();
        assert_eq!(
            prune_bodies(&mut conn, 10_000, true).unwrap(),
            PRUNE_BATCH as usize + 3
        );
        assert_eq!(
            count(&conn, "SELECT COUNT(*) FROM deliveries WHERE body IS NULL"),
            0
        );
        assert_eq!(
            prune_bodies(&mut conn, 10_000, false).unwrap(),
            PRUNE_BATCH as usize + 3
        );
        assert_eq!(
            count(
                &conn,
                "SELECT COUNT(*) FROM deliveries WHERE body IS NOT NULL"
            ),
            1
        );
        assert_eq!(prune_bodies(&mut conn, 10_000, false).unwrap(), 0);
    }

    #[test]
    fn retry_only_touches_dead_rows() {
        let (_dir, path) = db();
        let mut conn = open_operator(&path).unwrap();
        let r = intake(&conn, &notification("1", "AUTHORISED", Some("s"), 1)).unwrap();
        let id = r.outbox_id.unwrap();
        assert_eq!(
            retry(&mut conn, Some(&[id])).unwrap(),
            0,
            "pending is not dead"
        );
        conn.execute("UPDATE outbox SET state = 'dead' WHERE id = ?1", [id])
            .unwrap();
        assert_eq!(retry(&mut conn, None).unwrap(), 1);
        assert_eq!(
            count(&conn, "SELECT COUNT(*) FROM outbox WHERE state = 'pending'"),
            1
        );
    }
}
