//! What the operator console reads beyond [`super::orders`] and
//! [`super::review_queue`]: header counters, order search, dead updates,
//! operator actions. (Its one write, a retry that records the operator,
//! is [`crate::store::operator::retry_dead_update`].)

use crate::store::db::{params, Connection, OptionalExtension};

use super::super::sql::notification_from_json;
use super::super::StoreError;
use super::orders::{order_summary, OrderSummary};
use crate::domain::Notification;

/// The numbers in the console's header.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Orders waiting for a human (review or suspected fraud).
    pub review: u64,
    /// Shop updates not yet delivered (and not dead).
    pub pending: u64,
    /// Shop updates that gave up.
    pub dead: u64,
    /// When the last notification was received (ms), any source.
    pub last_notification: Option<i64>,
}

pub fn counters(conn: &Connection) -> Result<Counters, StoreError> {
    let (pending, _, dead) = super::super::queries::outbox_counts(conn)?;
    let review = conn.query_row(
        "SELECT COUNT(*) FROM orders WHERE outcome IN ('review', 'suspected_fraud')",
        [],
        |r| r.get(0),
    )?;
    // The newest delivery by rowid: one b-tree step, where MAX(received_at)
    // (no index) read every delivery, a cost that grew with history.
    let last_notification = conn
        .query_row(
            "SELECT received_at FROM deliveries ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get::<_, i64>(0),
        )
        .optional()?;
    Ok(Counters {
        review,
        pending,
        dead,
        last_notification,
    })
}

/// The orders page's search and filters. Every field is optional.
#[derive(Debug, Clone, Default)]
pub struct OrderQuery<'a> {
    /// An order reference (or its beginning) or a transaction id (whole).
    pub text: Option<&'a str>,
    pub shop: Option<&'a str>,
    pub outcome: Option<&'a str>,
    /// Only orders with a dead shop update.
    pub dead_only: bool,
    /// Only orders updated at or after this time (ms).
    pub updated_since: Option<i64>,
    pub offset: usize,
    pub limit: usize,
}

/// Orders matching `q`, most recently updated first.
pub fn search_orders(
    conn: &Connection,
    q: &OrderQuery<'_>,
) -> Result<Vec<OrderSummary>, StoreError> {
    let prefix = q.text.map(|t| format!("{}%", like_escape(t)));
    let mut stmt = conn.prepare(
        "SELECT o.shop, o.order_ref, o.outcome, o.transaction_id, o.event_id, o.updated_at,
                (SELECT COUNT(*) FROM outbox x
                 WHERE x.shop = o.shop AND x.order_ref = o.order_ref AND x.state = 'pending'),
                (SELECT COUNT(*) FROM outbox x
                 WHERE x.shop = o.shop AND x.order_ref = o.order_ref AND x.state = 'dead')
         FROM orders o
         WHERE (CAST(?1 AS TEXT) IS NULL
                OR o.order_ref LIKE ?2 ESCAPE '\\'
                OR o.transaction_id = ?1
                OR EXISTS (SELECT 1 FROM events e
                           WHERE e.shop = o.shop AND e.order_ref = o.order_ref
                             AND e.transaction_id = ?1))
           AND (CAST(?3 AS TEXT) IS NULL OR o.shop = ?3)
           AND (CAST(?4 AS TEXT) IS NULL OR o.outcome = ?4)
           AND (?5 = 0 OR EXISTS (SELECT 1 FROM outbox x
                                  WHERE x.shop = o.shop AND x.order_ref = o.order_ref
                                    AND x.state = 'dead'))
           AND (CAST(?6 AS BIGINT) IS NULL OR o.updated_at >= ?6)
         ORDER BY o.updated_at DESC, o.shop, o.order_ref
         LIMIT ?7 OFFSET ?8",
    )?;
    let rows = stmt
        .query_map(
            params![
                q.text,
                prefix,
                q.shop,
                q.outcome,
                q.dead_only,
                q.updated_since,
                q.limit as i64,
                q.offset as i64
            ],
            order_summary,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// `%`, `_` and `\` match themselves in a LIKE pattern with `ESCAPE '\'`.
fn like_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The shops that have orders, for the filter.
pub fn order_shops(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare("SELECT DISTINCT shop FROM orders ORDER BY shop")?;
    let shops = stmt
        .query_map([], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(shops)
}

/// The notification that set an order's current outcome (amount, risk
/// findings), `None` when the order has no row.
pub fn current_notification(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
) -> Result<Option<Notification>, StoreError> {
    let json: Option<String> = conn
        .query_row(
            "SELECT e.notification FROM orders o JOIN events e ON e.id = o.event_id
             WHERE o.shop = ?1 AND o.order_ref = ?2",
            params![shop, order_ref],
            |r| r.get(0),
        )
        .optional()?;
    json.map(|j| notification_from_json(&j, "")).transpose()
}

/// One shop update that gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadUpdate {
    pub id: i64,
    pub shop: String,
    pub order_ref: String,
    pub previous_outcome: Option<String>,
    pub outcome: String,
    pub attempts: u32,
    /// The shop's last answer (or why it could not be reached).
    pub last_error: Option<String>,
    pub created_at: i64,
    /// When the last attempt was made, if any was recorded.
    pub last_attempt_at: Option<i64>,
}

/// Dead updates, oldest first (they hold their orders in that order).
pub fn dead_updates(conn: &Connection, limit: usize) -> Result<Vec<DeadUpdate>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT x.id, x.shop, x.order_ref, x.previous_outcome, x.outcome, x.attempts, x.last_error,
                x.created_at, (SELECT MAX(a.at) FROM push_attempts a WHERE a.outbox_id = x.id)
         FROM outbox x WHERE x.state = 'dead' ORDER BY x.id LIMIT ?1",
    )?;
    let rows = stmt
        .query_map(params![limit as i64], |r| {
            Ok(DeadUpdate {
                id: r.get(0)?,
                shop: r.get(1)?,
                order_ref: r.get(2)?,
                previous_outcome: r.get(3)?,
                outcome: r.get(4)?,
                attempts: r.get(5)?,
                last_error: r.get(6)?,
                created_at: r.get(7)?,
                last_attempt_at: r.get(8)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// One recorded operator action (a retry), for the order's timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorAction {
    pub id: i64,
    pub action: String,
    pub actor: String,
    pub outbox_id: Option<i64>,
    pub created_at: i64,
}

pub fn order_operator_actions(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
) -> Result<Vec<OperatorAction>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, action, actor, outbox_id, created_at FROM operator_actions
         WHERE shop = ?1 AND order_ref = ?2 ORDER BY id",
    )?;
    let rows = stmt
        .query_map(params![shop, order_ref], |r| {
            Ok(OperatorAction {
                id: r.get(0)?,
                action: r.get(1)?,
                actor: r.get(2)?,
                outbox_id: r.get(3)?,
                created_at: r.get(4)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::operator::{open_operator, retry_dead_update, Retried};

    fn db() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        drop(crate::store::open_writer(&path).unwrap());
        let conn = open_operator(&path).unwrap();
        conn.execute_batch(
            r#"
INSERT INTO events (id, source, event_key, provider, shop, order_ref, transaction_id, status,
                    origin, notification, assessed, verdict, comment, created_at)
VALUES (1, 'lyra', 'k1', 'lyra-form', 'main', 'A_1', 'tx-a', 'AUTHORISED', 'PAY', '{}', 'accepted', 'applied', '', 10),
       (2, 'lyra', 'k2', 'lyra-form', 'main', 'A%2', 'tx-b', 'AUTHORISED', 'PAY', '{}', 'accepted', 'applied', '', 20),
       (3, 'lyra', 'k3', 'lyra-form', 'other', 'B3', 'tx-c', 'REFUSED', 'PAY', '{}', 'rejected', 'applied', '', 30),
       (4, 'lyra', 'k4', 'lyra-form', 'other', 'B3', 'tx-old', 'REFUSED', 'PAY', '{}', 'rejected', 'ignored', '', 5);
INSERT INTO deliveries (event_id, received_at, peer, duplicate, headers, body)
VALUES (1, 10, 'p', 0, '{}', x''), (3, 31, 'p', 0, '{}', x'');
INSERT INTO orders (shop, order_ref, outcome, transaction_id, event_id, updated_at)
VALUES ('main', 'A_1', 'accepted', 'tx-a', 1, 10),
       ('main', 'A%2', 'review', 'tx-b', 2, 20),
       ('other', 'B3', 'rejected', 'tx-c', 3, 30);
INSERT INTO outbox (id, shop, order_ref, event_id, outcome, comment, state, attempts, next_attempt_at, last_error, created_at)
VALUES (7, 'other', 'B3', 3, 'rejected', 'c', 'dead', 3, 0, 'HTTP 422: no such order', 30),
       (8, 'main', 'A_1', 1, 'accepted', 'c', 'pending', 0, 0, NULL, 10);
"#,
        )
        .unwrap();
        (dir, conn)
    }

    fn refs(rows: &[OrderSummary]) -> Vec<&str> {
        rows.iter().map(|o| o.order_ref.as_str()).collect()
    }

    #[test]
    fn search_filters_and_pages_newest_first() {
        let (_d, conn) = db();
        let all = |q: OrderQuery<'_>| search_orders(&conn, &q).unwrap();
        let q = OrderQuery {
            limit: 50,
            ..OrderQuery::default()
        };
        assert_eq!(refs(&all(q.clone())), ["B3", "A%2", "A_1"]);
        // A prefix of the order reference; `%` and `_` are literal.
        let text = |t| OrderQuery {
            text: Some(t),
            ..q.clone()
        };
        assert_eq!(refs(&all(text("A"))), ["A%2", "A_1"]);
        assert_eq!(refs(&all(text("A%"))), ["A%2"]);
        assert_eq!(refs(&all(text("A_"))), ["A_1"]);
        // A transaction id, current or earlier.
        assert_eq!(refs(&all(text("tx-b"))), ["A%2"]);
        assert_eq!(refs(&all(text("tx-old"))), ["B3"]);
        assert!(all(text("tx")).is_empty(), "transaction ids match whole");
        let f = OrderQuery {
            shop: Some("main"),
            outcome: Some("review"),
            ..q.clone()
        };
        assert_eq!(refs(&all(f)), ["A%2"]);
        let dead = OrderQuery {
            dead_only: true,
            ..q.clone()
        };
        assert_eq!(refs(&all(dead)), ["B3"]);
        let recent = OrderQuery {
            updated_since: Some(20),
            ..q.clone()
        };
        assert_eq!(refs(&all(recent)), ["B3", "A%2"]);
        let page2 = OrderQuery {
            limit: 2,
            offset: 2,
            ..q.clone()
        };
        assert_eq!(refs(&all(page2)), ["A_1"]);
        assert_eq!(order_shops(&conn).unwrap(), ["main", "other"]);
    }

    #[test]
    fn counters_and_dead_updates() {
        let (_d, conn) = db();
        assert_eq!(
            counters(&conn).unwrap(),
            Counters {
                review: 1,
                pending: 1,
                dead: 1,
                last_notification: Some(31),
            }
        );
        let dead = dead_updates(&conn, 10).unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].id, 7);
        assert_eq!(
            dead[0].last_error.as_deref(),
            Some("HTTP 422: no such order")
        );
    }

    #[test]
    fn a_retry_queues_the_update_once_and_records_the_operator() {
        let (_d, mut conn) = db();
        assert_eq!(
            retry_dead_update(&mut conn, 7, "alice").unwrap(),
            Retried::Queued {
                shop: "other".into(),
                order_ref: "B3".into()
            }
        );
        let state: String = conn
            .query_row("SELECT state FROM outbox WHERE id = 7", [], |r| r.get(0))
            .unwrap();
        assert_eq!(state, "pending");
        // Not dead any more, and a pending row is not retried.
        assert_eq!(
            retry_dead_update(&mut conn, 7, "bob").unwrap(),
            Retried::NotDead
        );
        assert_eq!(
            retry_dead_update(&mut conn, 8, "bob").unwrap(),
            Retried::NotDead
        );
        assert_eq!(
            retry_dead_update(&mut conn, 99, "bob").unwrap(),
            Retried::NotDead
        );
        let actions = order_operator_actions(&conn, "other", "B3").unwrap();
        assert_eq!(actions.len(), 1);
        assert_eq!(
            (
                actions[0].action.as_str(),
                actions[0].actor.as_str(),
                actions[0].outbox_id
            ),
            ("retry", "alice", Some(7))
        );
    }
}
