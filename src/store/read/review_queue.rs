//! The review queue: the orders waiting for a human (to validate or deny,
//! or to cancel at the gateway), the transactions an action is about, and
//! the record of past actions. Reads only; an action's claim and record
//! are [`crate::store::claims`].

use std::collections::HashMap;

use crate::store::db::{params, Connection, OptionalExtension};

use super::super::sql::notification_from_json;
use super::super::StoreError;
use crate::domain::{Facts, Notification, Outcome};

/// The outcomes an operator can validate or deny.
pub const IN_REVIEW: [Outcome; 2] = [Outcome::Review, Outcome::SuspectedFraud];

/// What an operator must do about a queued order: validate or deny it.
pub const TO_REVIEW: &str = "review";
/// What an operator must do about a queued order: the risk verdict
/// rejected it but its transaction is still alive at the gateway, which
/// captures it unless it is cancelled there (`ipnsync review deny`).
pub const CANCEL_AT_GATEWAY: &str = "cancel at the gateway";

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
    /// [`TO_REVIEW`] or [`CANCEL_AT_GATEWAY`].
    pub action_needed: &'static str,
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
         WHERE (o.outcome IN ('review', 'suspected_fraud')
                OR (o.outcome IN ('rejected', 'canceled') AND e.provider LIKE 'lyra%'
                    AND json_extract(e.notification, '$.facts.trans_status') IN
                        ('AUTHORISED', 'AUTHORISED_TO_VALIDATE', 'WAITING_AUTHORISATION',
                         'WAITING_AUTHORISATION_TO_VALIDATE', 'PARTIALLY_AUTHORISED')))
           AND (CAST(?1 AS TEXT) IS NULL OR o.shop = ?1)
         ORDER BY o.updated_at, o.shop, o.order_ref",
    )?;
    let rows = stmt
        .query_map(params![shop], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Outcome>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, String>(6)?,
                r.get::<_, i64>(7)?,
                r.get::<_, Option<i64>>(8)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut items = Vec::with_capacity(rows.len());
    for (shop, order_ref, outcome, transaction_id, source, provider, json, since, first) in rows {
        let action_needed = if IN_REVIEW.contains(&outcome) {
            TO_REVIEW
        } else if pending_gateway_cancel(conn, &shop, &order_ref)?.is_some() {
            CANCEL_AT_GATEWAY
        } else {
            continue;
        };
        items.push((
            shop,
            order_ref,
            outcome,
            transaction_id,
            source,
            provider,
            json,
            since,
            first,
            action_needed,
        ));
    }
    items
        .into_iter()
        .map(
            |(
                shop,
                order_ref,
                outcome,
                transaction_id,
                source,
                provider,
                json,
                since,
                first,
                action_needed,
            )| {
                let n = notification(&json)?;
                let card_brand = match &n.facts {
                    Facts::Lyra(l) => l.card_brand.clone(),
                    _ => String::new(),
                };
                Ok(ReviewItem {
                    shop,
                    order_ref,
                    outcome,
                    action_needed,
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

/// The transaction of a rejected or canceled order still to cancel at the
/// gateway, with its latest status: the risk verdict that set the outcome
/// was about a transaction alive at the gateway
/// ([`crate::domain::outcome::live_at_gateway`]), no later notification of
/// that transaction says it is over (a CANCELLED from the back office…),
/// and no successful deny (automatic or by an operator) was recorded since
/// the order got its outcome. `None` otherwise.
pub fn pending_gateway_cancel(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
) -> Result<Option<(String, String)>, StoreError> {
    let row = conn
        .query_row(
            "SELECT o.outcome, o.transaction_id, o.updated_at, e.notification
             FROM orders o JOIN events e ON e.id = o.event_id
             WHERE o.shop = ?1 AND o.order_ref = ?2",
            params![shop, order_ref],
            |r| {
                Ok((
                    r.get::<_, Outcome>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, String>(3)?,
                ))
            },
        )
        .optional()?;
    let Some((outcome, transaction_id, updated_at, json)) = row else {
        return Ok(None);
    };
    if !matches!(outcome, Outcome::Rejected | Outcome::Canceled)
        || !crate::domain::outcome::live_at_gateway(&notification(&json)?)
    {
        return Ok(None);
    }
    let latest: String = conn.query_row(
        "SELECT notification FROM events
         WHERE shop = ?1 AND order_ref = ?2 AND transaction_id = ?3 ORDER BY id DESC LIMIT 1",
        params![shop, order_ref, transaction_id],
        |r| r.get(0),
    )?;
    let status = match notification(&latest)?.facts {
        Facts::Lyra(l) => l.trans_status,
        _ => return Ok(None),
    };
    if !crate::domain::outcome::CANCELLABLE_STATUSES.contains(&status.as_str()) {
        return Ok(None);
    }
    let cancelled: i64 = conn.query_row(
        "SELECT COUNT(*) FROM review_actions
         WHERE shop = ?1 AND order_ref = ?2 AND action = 'deny' AND state = 'done'
           AND created_at >= ?3",
        params![shop, order_ref, updated_at],
        |r| r.get(0),
    )?;
    Ok((cancelled == 0).then_some((transaction_id, status)))
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
    /// What the stored notifications say about each of `transactions`
    /// (same order, same length).
    pub states: Vec<TransactionState>,
}

/// What the stored notifications of one transaction say, for the gateway
/// call that acts on it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TransactionState {
    /// Lyra: `vads_trans_status` of the latest notification (empty for
    /// other gateways).
    pub lyra_status: String,
    /// Cybersource: the latest non-empty Decision Manager request id
    /// (`CybersourceFacts::request_id`); empty when none was notified.
    pub request_id: String,
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
                    r.get::<_, Outcome>(0)?,
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
        "SELECT transaction_id, assessed, notification FROM events
         WHERE shop = ?1 AND order_ref = ?2 AND source = ?3 ORDER BY id",
    )?;
    let rows = stmt
        .query_map(params![shop, order_ref, source], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut known: HashMap<String, TransactionState> = HashMap::new();
    let mut history = Vec::with_capacity(rows.len());
    for (transaction, assessed, json) in rows {
        let n = notification(&json)?;
        let state = known.entry(transaction.clone()).or_default();
        match &n.facts {
            Facts::Lyra(l) => state.lyra_status = l.trans_status.clone(),
            Facts::Cybersource(c) if !c.request_id.is_empty() => {
                state.request_id = c.request_id.clone()
            }
            _ => {}
        }
        history.push((transaction, assessed));
    }
    let transactions = transactions_in_review(&history, &transaction_id);
    let states = transactions
        .iter()
        .map(|t| known.get(t).cloned().unwrap_or_default())
        .collect();
    Ok(TargetLookup::Found(ReviewTarget {
        shop,
        order_ref: order_ref.to_owned(),
        outcome,
        source,
        provider,
        transaction_id,
        transactions,
        states,
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
    /// `in_progress` (the gateway was being called; past `expires_at`, the
    /// process that called it never recorded the answer), `done`, `failed`.
    pub state: String,
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

/// Every action on `(shop, order_ref)`, oldest first.
pub fn order_review_actions(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
) -> Result<Vec<ReviewActionRecord>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, action, actor, comment, gateway, gateway_status, error, outcome, outbox_id,
                state, expires_at, created_at
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
                state: r.get(9)?,
                expires_at: r.get(10)?,
                created_at: r.get(11)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

fn notification(json: &str) -> Result<Notification, StoreError> {
    notification_from_json(json, "")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Provider;
    use crate::store::test_support::{lyra_in_shop as lyra, operator_db as db};
    use crate::store::writer::intake;

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
    fn the_cybersource_request_id_is_kept_apart_from_the_transaction_id() {
        use crate::domain::notification::CybersourceFacts;
        let (_dir, conn) = db();
        let mut n = lyra("9", "9", "", 1);
        n.source = "cybs".into();
        n.notification.provider = Provider::Cybersource;
        n.notification.facts = Facts::Cybersource(CybersourceFacts {
            event_type: "risk.profile.decision.review".into(),
            payment_status: "AUTHORIZED_PENDING_REVIEW".into(),
            reason: "DECISION_PROFILE_REVIEW".into(),
            ..CybersourceFacts::default()
        });
        n.event_key = n.notification.event_key();
        intake(&conn, &n).unwrap();
        let TargetLookup::Found(t) = review_target(&conn, None, "9").unwrap() else {
            panic!("found")
        };
        assert_eq!(t.outcome, Outcome::Review);
        assert_eq!(t.transactions, ["9"], "the order number stands in");
        assert_eq!(t.states[0].request_id, "", "but is no request id");
    }
}
