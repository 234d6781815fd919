//! What review actions read and write: the orders waiting for a human, the
//! transactions to act on, and the record of each action.
//!
//! Used by the CLI (its own process) and by the admin API (inside the
//! daemon). Both write the same way as `inspect::replay`: short
//! `BEGIN IMMEDIATE` transactions on their own connection, which the writer
//! thread waits out on its busy timeout. An action claims its order
//! ([`claim_order`]: an `in_progress` row), calls the gateway outside any
//! transaction, so a slow gateway never holds the database lock, then
//! records the answer ([`finish_action`]).

use std::collections::HashMap;

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{now_ms, StoreError};
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
           AND (?1 IS NULL OR o.shop = ?1)
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
    let mut items = Vec::with_capacity(rows.len());
    for (shop, order_ref, outcome, transaction_id, source, provider, json, since, first) in rows {
        let outcome = parse_outcome(&outcome)?;
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
                    r.get::<_, String>(0)?,
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
    if !matches!(
        parse_outcome(&outcome)?,
        Outcome::Rejected | Outcome::Canceled
    ) || !crate::domain::outcome::live_at_gateway(&notification(&json)?)
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
        outcome: parse_outcome(&outcome)?,
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

/// One action, as it is claimed (or recorded, for a shop-only action).
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
}

/// What the gateway answered, recorded when the action finishes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GatewayResult<'a> {
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

/// Another action holding the order (an unexpired `in_progress` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionInProgress {
    pub id: i64,
    pub action: String,
    pub actor: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// The order, claimed for one gateway call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The `review_actions` row (`in_progress`).
    pub id: i64,
    /// The event that set the order's outcome when it was claimed: if it
    /// changed by the time the answer is recorded, a notification moved
    /// the order meanwhile.
    pub event_id: i64,
    pub at: i64,
}

/// What trying to claim an order found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimResult {
    Claimed(Claimed),
    /// The order no longer has the outcome the action was asked on (`None`:
    /// the order is gone).
    Moved(Option<Outcome>),
    /// Another action on the order is under way.
    Busy(ActionInProgress),
}

/// Who moved the order while the gateway was being called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MovedBy {
    /// A notification (the gateway's own confirmation, usually).
    Notification { event_id: i64 },
    /// Another review action (one whose claim had expired).
    ReviewAction { id: i64, actor: String },
    /// Something else (an operator replay…).
    Unknown,
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
    /// Why a successful action did not move the order.
    pub moved_by: Option<MovedBy>,
}

/// Claims `(shop, order_ref)` for one gateway call, in a short
/// `BEGIN IMMEDIATE` transaction: refused if the order no longer has
/// `from`, or if another action's `in_progress` row has not expired yet;
/// otherwise inserts this action's row as `in_progress` until `expires_at`
/// (ms; the gateway timeout plus a margin: past it, a claim left by a
/// crashed process stops blocking the order).
pub fn claim_order(
    conn: &mut Connection,
    action: &NewReviewAction<'_>,
    from: Outcome,
    expires_at: i64,
) -> Result<ClaimResult, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ms();
    let current = order_now(&tx, action.shop, action.order_ref)?;
    let event_id = match current {
        Some((outcome, event_id)) if outcome == from => event_id,
        other => return Ok(ClaimResult::Moved(other.map(|(o, _)| o))),
    };
    if let Some(busy) = in_progress(&tx, action.shop, action.order_ref, now)? {
        return Ok(ClaimResult::Busy(busy));
    }
    tx.execute(
        "INSERT INTO review_actions (shop, order_ref, action, actor, comment, gateway, state,
                                     expires_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'in_progress', ?7, ?8)",
        params![
            action.shop,
            action.order_ref,
            action.action,
            action.actor,
            action.comment,
            action.gateway,
            expires_at,
            now
        ],
    )?;
    let id = tx.last_insert_rowid();
    tx.commit()?;
    Ok(ClaimResult::Claimed(Claimed {
        id,
        event_id,
        at: now,
    }))
}

/// Finishes a claimed action in one `BEGIN IMMEDIATE` transaction: the row
/// becomes `done` (or `failed`, with the error) and, for a success, the
/// order moves and the shop update is queued (same columns as intake's).
///
/// The move only happens if the order still has `from`: while the gateway
/// was being called, its own notification (a back-office AUTHORISED, a case
/// decision) may already have moved the order and queued that very update;
/// a second one would tell the shop twice. [`RecordedAction::moved_by`]
/// then says who moved it.
pub fn finish_action(
    conn: &mut Connection,
    action: &NewReviewAction<'_>,
    claimed: &Claimed,
    result: &GatewayResult<'_>,
    order_move: Option<&OrderMove<'_>>,
) -> Result<RecordedAction, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ms();
    let order_move = order_move.filter(|_| result.error.is_none());
    let mut recorded = apply_move(&tx, action, order_move, now)?;
    recorded.id = claimed.id;
    if order_move.is_some() && !recorded.moved {
        recorded.moved_by = Some(moved_by(&tx, action, claimed)?);
    }
    let changed = tx.execute(
        "UPDATE review_actions
            SET state = ?2, gateway_status = ?3, error = ?4, outcome = ?5, outbox_id = ?6,
                finished_at = ?7
          WHERE id = ?1 AND state = 'in_progress'",
        params![
            claimed.id,
            if result.error.is_some() {
                "failed"
            } else {
                "done"
            },
            result.gateway_status,
            result.error,
            moved_to(&recorded),
            recorded.outbox_id,
            now
        ],
    )?;
    if changed != 1 {
        return Err(StoreError::Corrupt(format!(
            "review action #{} is no longer in progress",
            claimed.id
        )));
    }
    tx.commit()?;
    Ok(recorded)
}

/// Records a shop-only action (no gateway call, so nothing to claim): in
/// one `BEGIN IMMEDIATE` transaction, refused while another action holds
/// the order, otherwise recorded as `done` with the move (see
/// [`finish_action`]).
pub fn record_shop_only(
    conn: &mut Connection,
    action: &NewReviewAction<'_>,
    order_move: &OrderMove<'_>,
) -> Result<Result<RecordedAction, ClaimResult>, StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let now = now_ms();
    match order_now(&tx, action.shop, action.order_ref)? {
        Some((outcome, _)) if outcome == order_move.from => {}
        other => return Ok(Err(ClaimResult::Moved(other.map(|(o, _)| o)))),
    }
    if let Some(busy) = in_progress(&tx, action.shop, action.order_ref, now)? {
        return Ok(Err(ClaimResult::Busy(busy)));
    }
    let mut recorded = apply_move(&tx, action, Some(order_move), now)?;
    tx.execute(
        "INSERT INTO review_actions (shop, order_ref, action, actor, comment, gateway, state,
                                     outcome, outbox_id, created_at, finished_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'done', ?7, ?8, ?9, ?9)",
        params![
            action.shop,
            action.order_ref,
            action.action,
            action.actor,
            action.comment,
            action.gateway,
            moved_to(&recorded),
            recorded.outbox_id,
            now
        ],
    )?;
    recorded.id = tx.last_insert_rowid();
    tx.commit()?;
    Ok(Ok(recorded))
}

/// The order's outcome and the event that set it.
fn order_now(
    tx: &Connection,
    shop: &str,
    order_ref: &str,
) -> Result<Option<(Outcome, i64)>, StoreError> {
    tx.query_row(
        "SELECT outcome, event_id FROM orders WHERE shop = ?1 AND order_ref = ?2",
        params![shop, order_ref],
        |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)),
    )
    .optional()?
    .map(|(o, e)| Ok((parse_outcome(&o)?, e)))
    .transpose()
}

/// The unexpired `in_progress` action on the order, if any.
fn in_progress(
    tx: &Connection,
    shop: &str,
    order_ref: &str,
    now: i64,
) -> Result<Option<ActionInProgress>, StoreError> {
    Ok(tx
        .query_row(
            "SELECT id, action, actor, created_at, expires_at FROM review_actions
             WHERE shop = ?1 AND order_ref = ?2 AND state = 'in_progress' AND expires_at > ?3
             ORDER BY id DESC LIMIT 1",
            params![shop, order_ref, now],
            |r| {
                Ok(ActionInProgress {
                    id: r.get(0)?,
                    action: r.get(1)?,
                    actor: r.get(2)?,
                    created_at: r.get(3)?,
                    expires_at: r.get(4)?,
                })
            },
        )
        .optional()?)
}

/// Moves the order if it still has `from` and queues the shop update.
fn apply_move(
    tx: &Connection,
    action: &NewReviewAction<'_>,
    order_move: Option<&OrderMove<'_>>,
    now: i64,
) -> Result<RecordedAction, StoreError> {
    let current = order_now(tx, action.shop, action.order_ref)?;
    let mut recorded = RecordedAction {
        id: 0,
        outcome: current.map(|(o, _)| o),
        moved: false,
        outbox_id: None,
        moved_by: None,
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
                    tx,
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
    Ok(recorded)
}

/// Who moved the order since `claimed`: another review action that
/// finished since, else a notification if the order's event changed.
fn moved_by(
    tx: &Connection,
    action: &NewReviewAction<'_>,
    claimed: &Claimed,
) -> Result<MovedBy, StoreError> {
    let other = tx
        .query_row(
            "SELECT id, actor FROM review_actions
             WHERE shop = ?1 AND order_ref = ?2 AND id <> ?3 AND outcome IS NOT NULL
               AND finished_at >= ?4
             ORDER BY finished_at DESC, id DESC LIMIT 1",
            params![action.shop, action.order_ref, claimed.id, claimed.at],
            |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
        )
        .optional()?;
    if let Some((id, actor)) = other {
        return Ok(MovedBy::ReviewAction { id, actor });
    }
    Ok(match order_now(tx, action.shop, action.order_ref)? {
        Some((_, event_id)) if event_id != claimed.event_id => MovedBy::Notification { event_id },
        _ => MovedBy::Unknown,
    })
}

fn moved_to(recorded: &RecordedAction) -> Option<&'static str> {
    recorded
        .moved
        .then(|| recorded.outcome.map(Outcome::as_str))
        .flatten()
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

        assert_eq!(
            t.states,
            [TransactionState {
                lyra_status: "AUTHORISED_TO_VALIDATE".into(),
                request_id: String::new(),
            }]
        );

        let action = validate("alice");
        let m = OrderMove {
            from: Outcome::Review,
            to: Outcome::Accepted,
            comment: "Payment validated",
        };
        let claimed = claimed(claim_order(&mut conn, &action, Outcome::Review, far()).unwrap());
        let busy = claim_order(&mut conn, &validate("bob"), Outcome::Review, far()).unwrap();
        assert!(
            matches!(&busy, ClaimResult::Busy(b) if b.id == claimed.id && b.actor == "alice"),
            "{busy:?}"
        );
        let r = finish_action(&mut conn, &action, &claimed, &ok(), Some(&m)).unwrap();
        assert!(r.moved && r.outbox_id.is_some() && r.moved_by.is_none());
        assert_eq!((r.id, r.outcome), (claimed.id, Some(Outcome::Accepted)));
        // The same action again finds the order moved: refused, no update.
        assert_eq!(
            claim_order(&mut conn, &action, Outcome::Review, far()).unwrap(),
            ClaimResult::Moved(Some(Outcome::Accepted))
        );
        let outbox: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE order_ref = '7'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(outbox, 2, "review, then accepted once");
        let actions = order_review_actions(&conn, "s", "7").unwrap();
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].outcome.as_deref(), Some("accepted"));
        assert_eq!(actions[0].state, "done");
        assert_eq!(actions[0].gateway_status.as_deref(), Some("AUTHORISED"));
        assert!(review_queue(&conn, None).unwrap().is_empty());
    }

    fn validate(actor: &str) -> NewReviewAction<'_> {
        NewReviewAction {
            shop: "s",
            order_ref: "7",
            action: "validate",
            actor,
            comment: Some("ok"),
            gateway: "lyra",
        }
    }

    fn ok() -> GatewayResult<'static> {
        GatewayResult {
            gateway_status: Some("AUTHORISED"),
            error: None,
        }
    }

    fn far() -> i64 {
        now_ms() + 60_000
    }

    fn claimed(c: ClaimResult) -> Claimed {
        match c {
            ClaimResult::Claimed(c) => c,
            other => panic!("not claimed: {other:?}"),
        }
    }

    const MOVE: OrderMove<'static> = OrderMove {
        from: Outcome::Review,
        to: Outcome::Accepted,
        comment: "Payment validated",
    };

    #[test]
    fn a_failed_action_releases_the_order_and_a_stale_claim_does_not_block() {
        let (_dir, mut conn) = db();
        intake(&conn, &lyra("7", "u2", "AUTHORISED_TO_VALIDATE", 2)).unwrap();
        let a = claimed(claim_order(&mut conn, &validate("a"), Outcome::Review, far()).unwrap());
        let failed = GatewayResult {
            gateway_status: None,
            error: Some("PSP_010: no"),
        };
        let r = finish_action(&mut conn, &validate("a"), &a, &failed, Some(&MOVE)).unwrap();
        assert!(!r.moved && r.moved_by.is_none());
        assert_eq!(r.outcome, Some(Outcome::Review));
        // A claim whose holder died (expired) does not block the next one.
        let b = claim_order(&mut conn, &validate("b"), Outcome::Review, now_ms() - 1).unwrap();
        let b = claimed(b);
        let c = claimed(claim_order(&mut conn, &validate("c"), Outcome::Review, far()).unwrap());
        // A shop-only action waits for the live claim too.
        assert!(matches!(
            record_shop_only(&mut conn, &validate("d"), &MOVE).unwrap(),
            Err(ClaimResult::Busy(busy)) if busy.id == c.id
        ));
        let r = finish_action(&mut conn, &validate("c"), &c, &ok(), Some(&MOVE)).unwrap();
        assert!(r.moved);
        // The expired claim's holder comes back after all: the order was
        // moved by another action, not by a notification.
        let r = finish_action(&mut conn, &validate("b"), &b, &ok(), Some(&MOVE)).unwrap();
        assert!(!r.moved);
        assert_eq!(
            r.moved_by,
            Some(MovedBy::ReviewAction {
                id: c.id,
                actor: "c".into()
            })
        );
        let states: Vec<String> = order_review_actions(&conn, "s", "7")
            .unwrap()
            .into_iter()
            .map(|a| a.state)
            .collect();
        assert_eq!(states, ["failed", "done", "done"]);
    }

    #[test]
    fn a_notification_that_moved_the_order_meanwhile_is_named() {
        let (_dir, mut conn) = db();
        intake(&conn, &lyra("7", "u2", "AUTHORISED_TO_VALIDATE", 2)).unwrap();
        let a = claimed(claim_order(&mut conn, &validate("a"), Outcome::Review, far()).unwrap());
        let mut confirm = lyra("7", "u2", "AUTHORISED", 3);
        if let Facts::Lyra(l) = &mut confirm.notification.facts {
            l.url_check_src = "MERCH_BO".into();
        }
        confirm.event_key = confirm.notification.event_key();
        intake(&conn, &confirm).unwrap();
        let (outcome, event_id) = order_now(&conn, "s", "7").unwrap().unwrap();
        assert_eq!(outcome, Outcome::Accepted, "the gateway's notification");
        let r = finish_action(&mut conn, &validate("a"), &a, &ok(), Some(&MOVE)).unwrap();
        assert!(!r.moved && r.outbox_id.is_none());
        assert_eq!(r.moved_by, Some(MovedBy::Notification { event_id }));
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
