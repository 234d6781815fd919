//! The order list and one order's whole history (`ipnsync orders` /
//! `show`, the console's order page).

use crate::store::db::{params, Connection, OptionalExtension};

use super::super::StoreError;

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
         WHERE (CAST(?1 AS TEXT) IS NULL OR o.outcome = ?1) AND (CAST(?2 AS TEXT) IS NULL OR o.shop = ?2)
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

pub(in crate::store) fn order_summary(
    r: &crate::store::db::Row<'_>,
) -> crate::store::db::Result<OrderSummary> {
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
///
/// Every index on events and orders starts with the shop, so a lookup by
/// the order reference alone would read the whole history. The shops are
/// few: they are walked through the index instead, one seek each (a
/// "loose index scan"), and the order is looked up in each one.
pub fn shops_of_order(conn: &Connection, order_ref: &str) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare(SHOPS_OF_ORDER)?;
    let shops = stmt
        .query_map(params![order_ref], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(shops)
}

const SHOPS_OF_ORDER: &str = "WITH RECURSIVE shops(shop) AS (
         SELECT (SELECT MIN(shop) FROM events)
         UNION ALL
         SELECT (SELECT MIN(e.shop) FROM events e WHERE e.shop > shops.shop)
           FROM shops WHERE shops.shop IS NOT NULL
     )
     SELECT shop FROM shops
      WHERE shop IS NOT NULL
        AND (EXISTS (SELECT 1 FROM events e WHERE e.shop = shops.shop AND e.order_ref = ?1)
             OR EXISTS (SELECT 1 FROM orders o WHERE o.shop = shops.shop AND o.order_ref = ?1))
      ORDER BY 1";

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

impl StoredDecision {
    /// A decision in these terms (what a replay shows).
    pub(crate) fn of(
        d: &crate::domain::Decision,
        columns: &crate::store::apply::VerdictColumns,
    ) -> StoredDecision {
        StoredDecision {
            assessed: d.assessed.as_str().to_owned(),
            verdict: columns.verdict.to_owned(),
            outcome: columns.outcome.map(|o| o.as_str().to_owned()),
            reason: columns.reason.clone(),
            comment: d.comment.clone(),
        }
    }
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
    pub review_actions: Vec<super::review_queue::ReviewActionRecord>,
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
        review_actions: super::review_queue::order_review_actions(&tx, shop, order_ref)?,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::operator::open_operator;
    use crate::store::read::open_read;
    use crate::store::test_support::{db, notification};
    use crate::store::writer::intake;

    #[test]
    fn the_shops_of_an_order_are_found_through_the_index_not_by_reading_the_history() {
        let (_dir, path) = db();
        let conn = open_operator(&path).unwrap();
        let mut n = 0;
        for (order, shop) in [("7", "b"), ("7", "a"), ("8", "c"), ("9", "a")] {
            n += 1;
            intake(&conn, &notification(order, "AUTHORISED", Some(shop), n)).unwrap();
        }
        let reader = open_read(&path).unwrap();
        assert_eq!(shops_of_order(&reader, "7").unwrap(), ["a", "b"]);
        assert_eq!(shops_of_order(&reader, "8").unwrap(), ["c"]);
        assert!(shops_of_order(&reader, "10").unwrap().is_empty());

        let plan: Vec<String> = reader
            .prepare(&format!("EXPLAIN QUERY PLAN {SHOPS_OF_ORDER}"))
            .unwrap()
            .query_map(params!["7"], |r| r.get(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // "SCAN shops" is the handful of rows of the walk itself.
        let whole_tables: Vec<&String> = plan
            .iter()
            .filter(|step| {
                step.strip_prefix("SCAN ")
                    .and_then(|rest| rest.split(' ').next())
                    .is_some_and(|t| ["events", "e", "orders", "o"].contains(&t))
            })
            .collect();
        assert!(whole_tables.is_empty(), "reads a whole table: {plan:#?}");
        assert!(plan.len() > 3, "{plan:#?}");
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
}
