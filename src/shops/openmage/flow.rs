//! The push both OpenMage and Magento 2 share: read the order, stop if the
//! update is already in its history, check the amount, apply the
//! operations `plan::decide` asks for (reading the order after each), then
//! write the customer's entry (when the customer is notified) and the
//! operator's comment with the marker.
//!
//! The shop-specific calls sit behind [`OrderApi`].

use super::plan::{
    decide, marker, refund_size, status_to_write, Ctx, HistoryEntry, Next, Op, OrderView,
    StatusChoice, AMOUNT_TAG, HOLD_TAG, OPERATOR_TAG,
};
use crate::config::OrderRules;
use crate::domain::money::{check_amount, AmountCheck};
use crate::domain::Outcome;
use crate::ops::logging::one_line;
use crate::shops::{PushError, Pushed, ShopUpdate};

/// Most operations one push applies (unhold, then invoice or cancel, with
/// room to spare): a shop that does not change state as asked cannot make
/// the push loop.
const MAX_OPS: usize = 4;

/// An operation the shop refused, or a failure of the call itself.
#[derive(Debug)]
pub(crate) enum OpError {
    /// The order refused it (not cancellable, not holdable…): the shop's
    /// text. Retrying cannot help; a person must act.
    Refused(String),
    Push(PushError),
}

impl From<PushError> for OpError {
    fn from(e: PushError) -> Self {
        OpError::Push(e)
    }
}

/// One status-history entry to write.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entry<'a> {
    pub status: &'a str,
    pub text: &'a str,
    pub notify: bool,
    /// Shown in the customer's account (Magento 2; OpenMage's API has no
    /// such flag and its entries are never shown there).
    pub visible_on_front: bool,
}

/// One order in one shop.
pub(crate) trait OrderApi {
    /// "OpenMage" or "Magento", for texts.
    fn shop(&self) -> &'static str;
    async fn read(&self) -> Result<OrderView, PushError>;
    async fn apply(&self, op: Op, update: &ShopUpdate) -> Result<(), OpError>;
    async fn comment(&self, entry: Entry<'_>) -> Result<(), PushError>;
}

/// The shop's settings the push needs.
pub(crate) struct Settings<'a> {
    pub name: &'a str,
    pub rules: &'a OrderRules,
    /// The status configured for review: what an amount mismatch applies.
    pub review_status: String,
    /// `None`: amount check off.
    pub amount_tolerance: Option<u32>,
}

pub(crate) async fn push<A: OrderApi>(
    api: &A,
    update: &ShopUpdate,
    settings: &Settings<'_>,
) -> Result<Pushed, PushError> {
    let shop = api.shop();
    let mut order = api.read().await?;
    if let Some(row) = order.delivered(update.outbox_id) {
        return Ok(already_delivered(row, update.outbox_id));
    }
    if update.is_comment_only() {
        return comment_only(api, update, &order).await;
    }

    // The amount check, before anything marks the order paid.
    let mut outcome = update.outcome;
    let mut configured = update.status.to_string();
    let mut amount_problem = None;
    if outcome == Outcome::Accepted {
        if let (Some(paid), Some(tolerance)) = (update.amount_to_check(), settings.amount_tolerance)
        {
            match check_amount(paid, &order.grand_total, &order.currency, tolerance) {
                AmountCheck::Matches => {}
                AmountCheck::Mismatch(why) | AmountCheck::Unreadable(why) => {
                    outcome = Outcome::Review;
                    configured = settings.review_status.clone();
                    amount_problem = Some(why);
                }
            }
        }
    }

    let held_by_ipnsync = order.held_by_ipnsync();
    let refund = refund_size(
        &order,
        update.amount.as_ref(),
        settings.amount_tolerance.unwrap_or(0),
    );
    let this_payment = format!(
        "{} transaction {} ({})",
        update.provider, update.transaction_id, update.provider_status
    );
    let mut done: Vec<Op> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut needs_operator: Vec<String> = Vec::new();
    let mut choice = StatusChoice::Keep;
    let mut finished = false;
    while done.len() <= MAX_OPS {
        let ctx = Ctx {
            rules: settings.rules,
            done: &done,
            held_by_ipnsync,
            refund: refund.clone(),
            this_payment: this_payment.clone(),
            transaction_id: update.transaction_id.clone(),
        };
        match decide(&order, outcome, &ctx) {
            Next::Finish {
                status,
                needs_operator: person,
            } => {
                choice = status;
                needs_operator.extend(person);
                finished = true;
                break;
            }
            Next::Apply(op) => match api.apply(op, update).await {
                Ok(()) => {
                    done.push(op);
                    notes.push(op.done().to_owned());
                    order = api.read().await?;
                }
                Err(OpError::Refused(why)) => {
                    tracing::warn!(shop = %settings.name, order = %one_line(&update.order_ref), operation = op.verb(), reason = %one_line(&why), "{shop} refused the operation");
                    notes.push(format!("{} refused: {why}", op.verb()));
                    needs_operator.push(format!(
                        "{shop} refused to {} the order ({why}); the {} is not applied: do it on the order page.",
                        op.verb(),
                        outcome.as_str()
                    ));
                    order = api.read().await?;
                    finished = true;
                    break;
                }
                Err(OpError::Push(e)) => return Err(e),
            },
        }
    }
    if !finished {
        needs_operator.push(format!(
            "ipnsync stopped after {} operations and the order is still {}: check it.",
            done.len(),
            order.state
        ));
    }
    if let Some(why) = &amount_problem {
        needs_operator.insert(
            0,
            format!(
                "{AMOUNT_TAG}{why}. The order was put in review instead of being marked paid: check the payment with the provider, then validate or deny it."
            ),
        );
    }
    let status = status_to_write(settings.rules, &configured, choice, &order);
    let needs_operator = (!needs_operator.is_empty()).then(|| needs_operator.join(" "));
    let still_ours = order.state == "holded"
        && (done.contains(&Op::Hold) || (held_by_ipnsync && !done.contains(&Op::Unhold)));

    // The customer's entry first, the operator's comment (with the marker)
    // last: once the marker is there, the whole update is.
    let mut detail = notes;
    let notify_customer = update.notify
        && amount_problem.is_none()
        && needs_operator.is_none()
        && !update.customer_text.trim().is_empty();
    if update.notify && !notify_customer {
        detail.push(if update.customer_text.trim().is_empty() {
            "customer not notified (no customer text)".into()
        } else {
            "customer not notified (the update did not apply as is)".into()
        });
    }
    if notify_customer {
        if order.has_customer_entry_since_last_marker(&update.customer_text) {
            detail.push("customer entry already written by an earlier attempt".into());
        } else {
            api.comment(Entry {
                status: &status,
                text: &update.customer_text,
                notify: true,
                visible_on_front: true,
            })
            .await?;
            detail.push("customer notified".into());
        }
    }
    let mut lines: Vec<String> = Vec::new();
    if !update.comment.is_empty() {
        lines.push(update.comment.clone());
    }
    if !done.is_empty() {
        let did: Vec<&str> = done.iter().map(|op| op.done()).collect();
        lines.push(format!("ipnsync: {}.", did.join(", ")));
    }
    if still_ours {
        lines.push(HOLD_TAG.to_owned());
    }
    if let Some(text) = &needs_operator {
        lines.push(format!("{OPERATOR_TAG}{text}"));
    }
    lines.push(marker(update.outbox_id));
    api.comment(Entry {
        status: &status,
        text: &lines.join("\n"),
        notify: false,
        visible_on_front: false,
    })
    .await?;
    let kept = if status == configured {
        String::new()
    } else {
        format!(
            " (not {configured}: the order is {})",
            if order.state.is_empty() {
                "in an unknown state"
            } else {
                &order.state
            }
        )
    };
    detail.push(format!("comment added with status {status}{kept}"));
    Ok(Pushed {
        detail: detail.join("; "),
        needs_operator,
        applied_outcome: amount_problem.map(|_| Outcome::Review),
    })
}

/// An analyst's note: a history entry with the order's status as it is,
/// notifying nobody (and keeping ipnsync's hold ipnsync's). No operation, no amount check, no status change, even
/// when the configured status for the order's outcome differs from it (the
/// order's state is the shop's business here).
async fn comment_only<A: OrderApi>(
    api: &A,
    update: &ShopUpdate,
    order: &OrderView,
) -> Result<Pushed, PushError> {
    // The note becomes ipnsync's newest comment: on an order ipnsync holds,
    // it must say so again, or the hold would pass for the merchant's and
    // the decision that ends the review could not release it.
    let hold = if order.held_by_ipnsync() {
        format!("\n{HOLD_TAG}")
    } else {
        String::new()
    };
    let text = format!("{}{hold}\n{}", update.comment, marker(update.outbox_id));
    api.comment(Entry {
        status: &order.status,
        text: &text,
        notify: false,
        visible_on_front: false,
    })
    .await?;
    Ok(Pushed::done(format!(
        "comment only, status kept ({})",
        order.status
    )))
}

/// The update's marker is already in the order's history (an earlier
/// attempt got through though its answer was lost): nothing is sent again;
/// what that attempt recorded for an operator is recovered from its text.
fn already_delivered(row: &HistoryEntry, outbox_id: i64) -> Pushed {
    let needs_operator = row
        .comment
        .lines()
        .find_map(|l| l.strip_prefix(OPERATOR_TAG))
        .map(str::to_owned);
    Pushed {
        detail: format!(
            "already in the order history ({}): not sent again",
            marker(outbox_id)
        ),
        needs_operator,
        applied_outcome: row.comment.contains(AMOUNT_TAG).then_some(Outcome::Review),
    }
}
