//! What a successful action did ([`ActionReport`]), told from what the
//! store recorded.

use super::{Action, ReviewRequest};
use crate::domain::Outcome;
use crate::store::claims::{MovedBy, RecordedAction};
use crate::store::read::review_queue::ReviewTarget;

/// What a successful action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionReport {
    /// The `review_actions` row.
    pub action_id: i64,
    pub action: Action,
    pub shop: String,
    pub order_ref: String,
    /// `lyra`, `cybersource`, or `none` (shop only).
    pub gateway: String,
    /// What the gateway answered, per transaction (empty when shop only).
    pub gateway_status: Vec<String>,
    pub transactions: Vec<String>,
    pub previous_outcome: Outcome,
    /// The order's outcome now.
    pub outcome: Option<Outcome>,
    /// Whether this action moved the order (not if the gateway's own
    /// notification got there first).
    pub moved: bool,
    /// The queued shop update.
    pub outbox_id: Option<i64>,
    /// Something the operator should know (what was not done).
    pub note: Option<String>,
}

/// The report of a recorded action.
pub(super) fn report(
    request: &ReviewRequest,
    gateway: &str,
    target: ReviewTarget,
    statuses: Vec<String>,
    recorded: RecordedAction,
) -> ActionReport {
    let action = request.action;
    let now = recorded.outcome.map_or("gone", Outcome::as_str);
    let note = if request.shop_only {
        Some(format!(
            "shop only: the gateway was not asked; make sure the payment is {} in its back office",
            action.past()
        ))
    } else {
        match &recorded.moved_by {
            None => None,
            Some(MovedBy::Notification { event_id })
                if recorded.outcome == Some(action.outcome()) =>
            {
                Some(format!(
                    "the order was already {now} (the gateway's notification arrived first, event {event_id}): no second shop update"
                ))
            }
            Some(MovedBy::Notification { event_id }) => Some(format!(
                "a notification (event {event_id}) moved the order to {now} while the gateway was called: this action queued no shop update; check the order"
            )),
            Some(MovedBy::ReviewAction { id, actor }) => Some(format!(
                "review action #{id} by {actor} moved the order to {now} while the gateway was called: this action queued no shop update; check the order"
            )),
            Some(MovedBy::Unknown) => Some(format!(
                "the order became {now} while the gateway was called: this action queued no shop update; check the order"
            )),
        }
    };
    ActionReport {
        action_id: recorded.id,
        action,
        shop: target.shop,
        order_ref: target.order_ref,
        gateway: gateway.to_owned(),
        gateway_status: statuses,
        transactions: if request.shop_only {
            Vec::new()
        } else {
            target.transactions
        },
        previous_outcome: target.outcome,
        outcome: recorded.outcome,
        moved: recorded.moved,
        outbox_id: recorded.outbox_id,
        note,
    }
}
