//! What review actions read and write: the orders waiting for a human, the
//! transactions to act on, and the record of each action.
//!
//! Used by the CLI (its own process) and by the admin API (inside the
//! daemon). Both write the same way as `inspect::replay`: one short
//! `BEGIN IMMEDIATE` transaction on their own connection, which the writer
//! thread waits out on its busy timeout. The gateway is called *between*
//! the read and the write, never inside a transaction, so a slow gateway
//! never holds the database lock.

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{now_ms, StoreError};
use crate::domain::{Facts, Notification, Outcome};

/// The outcomes an operator can validate or deny.
pub const IN_REVIEW: [Outcome; 2] = [Outcome::Review, Outcome::SuspectedFraud];

/// One order waiting for a human (`ipnsync review list`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewItem {
    pub shop: String,
    pub order_ref: String,
    pub outcome: Outcome,
    /// The transaction that set the outcome.
    pub transaction_id: String,
    pub source: String,
    /// `lyra-form`, `cybersource`…
    pub provider: String,
    pub amount_minor: Option<i64>,
    pub currency: String,
    /// Lyra's `vads_card_brand` (`CB`, `VISA`…), empty when unknown.
    pub card_brand: String,
    /// When the order got its current outcome (ms).
    pub since: i64,
    /// When the transaction was first notified (ms): the best stored
    /// approximation of the transaction date, since the IPN follows the
    /// payment within seconds.
    pub first_seen_at: i64,
}

/// Orders in review or suspected of fraud, the longest waiting first.
pub fn review_queue(conn: &Connection, shop: Option<&str>) -> Result<Vec<ReviewItem>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT o.shop, o.order_ref, o.outcome, o.transaction_id, e.source, e.provider,
                e.notification, o.updated_at,
                (SELECT MIN(f.created_at) FROM events f
                 WHERE f.shop = o.shop AND f.order_ref = o.order_ref
                   AND f.transaction_id = o.transaction_id)
         FROM orders o JOIN events e ON e.id = o.event_id
         WHERE o.outcome IN ('review', 'suspected_fraud') AND (?1 IS NULL OR o.shop = ?1)
         ORDER BY o.updated_at, o.shop, o.order_ref",
    )?;
    let rows = stmt
        .query_map(params![shop], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, Option<i64>>(8)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(
            |(shop, order_ref, outcome, transaction_id, source, provider, json, since, first)| {
                let n = notification(&json)?;
                let card_brand = match &n.facts {
                    Facts::Lyra(l) => l.card_brand.clone(),
                    _ => String::new(),
                };
                Ok(ReviewItem {
                    shop,
                    order_ref,
                    outcome: parse_outcome(&outcome)?,
                    transaction_id,
                    source,
                    provider,
                    amount_minor: n.amount_minor,
                    currency: n.currency,
                    card_brand,
                    since,
                    first_seen_at: first.unwrap_or(since),
                })
            },
        )
        .collect()
}

/// The order an action is about, as it was read before the gateway call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewTarget {
    pub shop: String,
    pub order_ref: String,
    pub outcome: Outcome,
    /// The source of the notification that set the outcome: its gateway is
    /// the one to ask.
    pub source: String,
    pub provider: String,
    /// The transaction that set the outcome.
    pub transaction_id: String,
    /// The transactions to validate or deny (Lyra: one per installment), in
    /// the order they were first notified.
    pub transactions: Vec<String>,
}

/// What looking up an order for an action found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetLookup {
    Found(ReviewTarget),
    Unknown,
    /// The reference exists in several shops: the caller must name one.
    Ambiguous(Vec<String>),
}

/// Looks up `order_ref` (in `shop`, or the only shop that has it).
pub fn review_target(
    conn: &Connection,
    shop: Option<&str>,
    order_ref: &str,
) -> Result<TargetLookup, StoreError> {
    let tx = conn.unchecked_transaction()?;
    let shop = match shop {
        Some(s) => s.to_owned(),
        None => {
            let mut stmt = tx.prepare("SELECT shop FROM orders WHERE order_ref = ?1 ORDER BY 1")?;
            let mut shops = stmt
                .query_map(params![order_ref], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            match shops.len() {
                0 => return Ok(TargetLookup::Unknown),
                1 => shops.remove(0),
                _ => return Ok(TargetLookup::Ambiguous(shops)),
            }
        }
    };
    let row = tx
        .query_row(
            "SELECT o.outcome, o.transaction_id, e.source, e.provider
             FROM orders o JOIN events e ON e.id = o.event_id
             WHERE o.shop = ?1 AND o.order_ref = ?2",
            params![shop, order_ref],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            },
        )
        .optional()?;
    let Some((outcome, transaction_id, source, provider)) = row else {
        return Ok(TargetLookup::Unknown);
    };
    let mut stmt = tx.prepare(
        "SELECT transaction_id, assessed FROM events
         WHERE shop = ?1 AND order_ref = ?2 AND source = ?3 ORDER BY id",
    )?;
    let history = stmt
        .query_map(params![shop, order_ref, source], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let transactions = transactions_in_review(&history, &transaction_id);
    Ok(TargetLookup::Found(ReviewTarget {
        shop,
        order_ref: order_ref.to_owned(),
        outcome: parse_outcome(&outcome)?,
        source,
        provider,
        transaction_id,
        transactions,
    }))
}

/// The transactions whose latest notification assessed review or
/// suspected fraud, in order of first appearance: with installments every
/// one of them waits for validation. An earlier refused attempt, or a
/// transaction the gateway already settled, is left alone. When none
/// qualifies (an order moved to review by a note on a final order), the
/// transaction that set the outcome.
pub fn transactions_in_review(history: &[(String, String)], current: &str) -> Vec<String> {
    let mut order: Vec<&str> = Vec::new();
    let mut latest: HashMap<&str, &str> = HashMap::new();
    for (transaction, assessed) in history {
        if !latest.contains_key(transaction.as_str()) {
            order.push(transaction);
        }
        latest.insert(transaction, assessed);
    }
    let in_review: Vec<String> = order
        .into_iter()
        .filter(|t| !t.is_empty())
        .filter(|t| IN_REVIEW.iter().any(|o| o.as_str() == latest[t]))
        .map(str::to_owned)
        .collect();
    if in_review.is_empty() {
        vec![current.to_owned()]
    } else {
        in_review
    }
}

/// One action to record, successful or not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewReviewAction<'a> {
    pub shop: &'a str,
    pub order_ref: &'a str,
    /// `validate` or `deny`.
    pub action: &'a str,
    pub actor: &'a str,
    pub comment: Option<&'a str>,
    /// `lyra`, `cybersource`, or `none` for a shop-only action.
    pub gateway: &'a str,
    pub gateway_status: Option<&'a str>,
    /// Why it failed; `None` when it succeeded.
    pub error: Option<&'a str>,
}

/// The order change a successful action asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderMove<'a> {
    /// The outcome the order had when the action started: the move only
    /// happens if it still has it.
    pub from: Outcome,
    pub to: Outcome,
    /// The shop's order-history comment.
    pub comment: &'a str,
}

/// What recording an action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedAction {
    pub id: i64,
    /// The order's outcome after the transaction.
    pub outcome: Option<Outcome>,
    /// Whether this action moved the order.
    pub moved: bool,
    /// The queued shop update, when the order moved and has a shop.
    pub outbox_id: Option<i64>,
}

/// Records `action` and, for a success, moves the order and queues the
/// shop update (same columns as intake's), all in one `BEGIN IMMEDIATE`
/// transaction.
///
/// The move only happens if the order still has `from`: while the gateway
/// was being called, its own notification (a back-office AUTHORISED, a case
/// decision) may already have moved the order and queued that very update;
/// a second one would tell the shop twice.
pub fn record_action(
    conn: &mut Connection,
    action: &NewReviewAction<'_>,
    order_move: Option<&OrderMove<'_>>,
) -> Result<RecordedAction, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ms();
    let current = tx
        .query_row(
            "SELECT outcome, event_id FROM orders WHERE shop = ?1 AND order_ref = ?2",
            params![action.shop, action.order_ref],
            |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
        )
        .optional()?
        .map(|(o, e)| Ok::<_, StoreError>((parse_outcome(&o)?, e)))
        .transpose()?;
    let mut recorded = RecordedAction {
        id: 0,
        outcome: current.map(|(o, _)| o),
        moved: false,
        outbox_id: None,
    };
    if let (Some(m), Some((outcome, event_id))) = (order_move, current) {
        if outcome == m.from && m.from != m.to {
            tx.execute(
                "UPDATE orders SET outcome = ?3, updated_at = ?4 WHERE shop = ?1 AND order_ref = ?2",
                params![action.shop, action.order_ref, m.to.as_str(), now],
            )?;
            recorded.outcome = Some(m.to);
            recorded.moved = true;
            if !action.shop.is_empty() {
                // The update hangs off the event that set the outcome being
                // left: the shop sees which payment it is about.
                recorded.outbox_id = Some(super::orders::queue_update(
                    &tx,
                    action.shop,
                    action.order_ref,
                    event_id,
                    Some(m.from),
                    m.to,
                    m.comment,
                    now,
                )?);
            }
        }
    }
    tx.execute(
        "INSERT INTO review_actions (shop, order_ref, action, actor, comment, gateway, gateway_status,
                                     error, outcome, outbox_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            action.shop,
            action.order_ref,
            action.action,
            action.actor,
            action.comment,
            action.gateway,
            action.gateway_status,
            action.error,
            recorded
                .moved
                .then(|| recorded.outcome.map(Outcome::as_str))
                .flatten(),
            recorded.outbox_id,
            now
        ],
    )?;
    recorded.id = tx.last_insert_rowid();
    tx.commit()?;
    Ok(recorded)
}

/// One recorded action, for an order's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewActionRecord {
    pub id: i64,
    pub action: String,
    pub actor: String,
    pub comment: Option<String>,
    pub gateway: String,
    pub gateway_status: Option<String>,
    pub error: Option<String>,
    /// The outcome the order moved to, when this action moved it.
    pub outcome: Option<String>,
    pub outbox_id: Option<i64>,
    pub created_at: i64,
}

/// Every action on `(shop, order_ref)`, oldest first.
pub fn order_review_actions(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
) -> Result<Vec<ReviewActionRecord>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, action, actor, comment, gateway, gateway_status, error, outcome, outbox_id, created_at
         FROM review_actions WHERE shop = ?1 AND order_ref = ?2 ORDER BY id",
    )?;
    let rows = stmt
        .query_map(params![shop, order_ref], |r| {
            Ok(ReviewActionRecord {
                id: r.get(0)?,
                action: r.get(1)?,
                actor: r.get(2)?,
                comment: r.get(3)?,
                gateway: r.get(4)?,
                gateway_status: r.get(5)?,
                error: r.get(6)?,
                outcome: r.get(7)?,
                outbox_id: r.get(8)?,
                created_at: r.get(9)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn notification(json: &str) -> Result<Notification, StoreError> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Corrupt(format!("stored notification is not readable: {e}")))
}

fn parse_outcome(s: &str) -> Result<Outcome, StoreError> {
    Outcome::parse(s)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown outcome {s:?} in the database")))
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::domain::{LyraFacts, Provider};
    use crate::store::inspect::open_operator;
    use crate::store::writer::{intake, NewNotification};

    fn lyra(order: &str, uuid: &str, status: &str, at: i64) -> NewNotification {
        let notification = Notification {
            provider: Provider::LyraForm,
            order_ref: order.into(),
            transaction_id: uuid.into(),
            transaction_number: "000001".into(),
            amount_minor: Some(2990),
            currency: "978".into(),
            facts: Facts::Lyra(LyraFacts {
                trans_status: status.into(),
                operation_type: "DEBIT".into(),
                url_check_src: "PAY".into(),
                card_brand: "CB".into(),
                ..LyraFacts::default()
            }),
        };
        NewNotification {
            source: "lyra".into(),
            shop: Some("s".into()),
            order_ref: order.into(),
            event_key: notification.event_key(),
            notification,
            received_at: at,
            peer: "127.0.0.1:1".into(),
            headers: "{}".into(),
            body: Bytes::from_static(b"raw"),
        }
    }

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        drop(crate::store::open_writer(&path).unwrap());
        let conn = open_operator(&path).unwrap();
        (dir, conn)
    }

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn transactions_in_review_keep_installments_and_skip_settled_ones() {
        let h = pairs(&[
            ("refused", "failed"),
            ("a", "review"),
            ("b", "suspected_fraud"),
            ("c", "review"),
            ("c", "accepted"),
        ]);
        assert_eq!(transactions_in_review(&h, "a"), ["a", "b"]);
        assert_eq!(
            transactions_in_review(&pairs(&[("x", "accepted")]), "x"),
            ["x"]
        );
    }

    #[test]
    fn queue_target_and_a_recorded_move() {
        let (_dir, mut conn) = db();
        intake(&conn, &lyra("7", "u2", "AUTHORISED_TO_VALIDATE", 2)).unwrap();
        intake(&conn, &lyra("8", "u3", "AUTHORISED", 3)).unwrap();

        let queue = review_queue(&conn, None).unwrap();
        assert_eq!(queue.len(), 1);
        let item = &queue[0];
        assert_eq!(
            (item.order_ref.as_str(), item.outcome),
            ("7", Outcome::Review)
        );
        assert_eq!(
            (item.amount_minor, item.card_brand.as_str()),
            (Some(2990), "CB")
        );

        let TargetLookup::Found(t) = review_target(&conn, None, "7").unwrap() else {
            panic!("found")
        };
        assert_eq!(t.transactions, ["u2"]);
        assert_eq!(t.source, "lyra");
        assert_eq!(
            review_target(&conn, None, "9").unwrap(),
            TargetLookup::Unknown
        );

        let action = NewReviewAction {
            shop: "s",
            order_ref: "7",
            action: "validate",
            actor: "alice",
            comment: Some("ok"),
            gateway: "lyra",
            gateway_status: Some("AUTHORISED"),
            error: None,
        };
        let m = OrderMove {
            from: Outcome::Review,
            to: Outcome::Accepted,
            comment: "Payment validated",
        };
        let r = record_action(&mut conn, &action, Some(&m)).unwrap();
        assert!(r.moved && r.outbox_id.is_some());
        assert_eq!(r.outcome, Some(Outcome::Accepted));
        // The same move again finds the order moved: recorded, no update.
        let again = record_action(&mut conn, &action, Some(&m)).unwrap();
        assert!(!again.moved && again.outbox_id.is_none());
        let outbox: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE order_ref = '7'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(outbox, 2, "review, then accepted once");
        let actions = order_review_actions(&conn, "s", "7").unwrap();
        assert_eq!(actions.len(), 2);
        assert_eq!(actions[0].outcome.as_deref(), Some("accepted"));
        assert_eq!(actions[1].outcome, None);
        assert!(review_queue(&conn, None).unwrap().is_empty());
    }
}
