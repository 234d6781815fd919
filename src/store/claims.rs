//! Review actions' claims and records: an action claims its order
//! ([`claim_order`]: an `in_progress` row), calls the gateway outside any
//! transaction, so a slow gateway never holds the database lock, then
//! records the answer ([`finish_action`]) and, for a success, moves the
//! order through [`super::apply`] (as an operator's move: [`Cause::Operator`]).
//!
//! Used by the CLI (its own process) and by the admin API (inside the
//! daemon). Both write the same way as `operator::replay`: short
//! `BEGIN IMMEDIATE` transactions on their own connection, which the writer
//! thread waits out on its busy timeout.

use crate::store::db::{params, Connection, OptionalExtension, TransactionBehavior};

use super::apply::{self, order_now, Cause, Move};
use super::{now_ms, StoreError};
use crate::domain::Outcome;

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
    let id: i64 = tx.query_row(
        "INSERT INTO review_actions (shop, order_ref, action, actor, comment, gateway, state,
                                     expires_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'in_progress', ?7, ?8) RETURNING id",
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
        |r| r.get(0),
    )?;
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
    recorded.id = tx.query_row(
        "INSERT INTO review_actions (shop, order_ref, action, actor, comment, gateway, state,
                                     outcome, outbox_id, created_at, finished_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'done', ?7, ?8, ?9, ?9) RETURNING id",
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
        |r| r.get(0),
    )?;
    tx.commit()?;
    Ok(Ok(recorded))
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
            let to = Move {
                shop: action.shop,
                order_ref: action.order_ref,
                from: Some(m.from),
                to: m.to,
                comment: m.comment,
                now,
            };
            let cause = Cause::Operator {
                order_event_id: event_id,
            };
            recorded.outbox_id = apply::move_order(tx, &to, cause)?;
            recorded.outcome = Some(m.to);
            recorded.moved = true;
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

#[cfg(test)]
mod tests;
