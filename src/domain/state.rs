//! The per-order state machine: may this notification's outcome replace the
//! order's current one?
//!
//! Notifications arrive late, twice, out of order and from several sources
//! (payment page, back office, batches, retries). The machine keeps an order
//! from moving backwards: once paid, only news that really undoes the
//! payment counts; once final, nothing does, except that a *new* successful
//! payment is never dropped silently. `docs/decisions.md` has the table.

use super::notification::Notification;
use super::outcome::{
    is_merchant_cancellation, reports_payment, source_words, without_effect, Outcome,
    BACK_OFFICE_OPERATION,
};

/// What the daemon knows about an order before a notification is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderSnapshot {
    /// `None` for an order never seen before.
    pub outcome: Option<Outcome>,
    /// The transaction that set the current outcome.
    pub transaction_id: Option<String>,
    /// `PRODUCTION` once a production notification moved the order, else
    /// the mode of the first notification that did (`None`: unknown).
    pub mode: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The order moves to `outcome`; `note` explains an unusual move.
    Apply {
        outcome: Outcome,
        note: Option<String>,
    },
    /// Recorded, answered 2xx, no shop update.
    Ignore { reason: String },
}

/// Decides whether the order moves to `assessed`, the outcome of `n`.
pub fn transition(current: &OrderSnapshot, n: &Notification, assessed: Outcome) -> Verdict {
    // A note, a 3-D Secure step, a refused refund…: stored and commented,
    // never an order change, not even on a new order.
    if let Some(why) = without_effect(n) {
        return ignore(format!("this notification changes no order ({why})"));
    }
    // Stored for the record, but there is no order to move.
    if n.order_ref.is_empty() {
        return ignore("the notification carries no order reference".to_owned());
    }
    // TEST keys circulate far more widely than production keys: a TEST
    // notification never moves an order a PRODUCTION one moved.
    if test_on_production(current, n) {
        return ignore(
            "the order was moved by a PRODUCTION notification; a TEST notification never changes it"
                .to_owned(),
        );
    }
    match current.outcome {
        None => apply(assessed),
        // Same outcome: nothing to tell the shop (a duplicate, a resend, or
        // a second installment that changes nothing).
        Some(previous) if previous == assessed => ignore(format!("order is already {previous}")),
        Some(Outcome::Pending | Outcome::Review | Outcome::SuspectedFraud) => apply(assessed),
        Some(Outcome::Accepted) => from_accepted(current, n, assessed),
        Some(previous) => from_final(current, previous, n, assessed),
    }
}

/// Whether `n` is a TEST notification about an order a PRODUCTION
/// notification moved.
pub fn test_on_production(current: &OrderSnapshot, n: &Notification) -> bool {
    current.mode.as_deref() == Some(PRODUCTION) && n.mode() == Some(TEST)
}

const PRODUCTION: &str = "PRODUCTION";
const TEST: &str = "TEST";

/// A paid order only moves for news that undoes the payment itself.
fn from_accepted(current: &OrderSnapshot, n: &Notification, assessed: Outcome) -> Verdict {
    match assessed {
        // A refund is a new CREDIT transaction, so it never carries the
        // paying transaction's id.
        Outcome::Refunded => apply(assessed),
        // Magento 2 / PrestaShop rule (lyra.md §5): an ABANDONED or a
        // CANCELLED from the payment page, a batch or a resend is old news
        // about an attempt; only the merchant's own back-office operation
        // cancels a paid order.
        Outcome::Canceled if !is_merchant_cancellation(n) => ignore(format!(
            "order is accepted; {} ({}) does not cancel a paid order, only a back-office operation ({BACK_OFFICE_OPERATION}) does",
            n.status(),
            origin_label(n.origin())
        )),
        // A late fraud verdict, a failed capture or a cancellation undoes
        // the payment only when it is about the transaction that paid; on
        // another one it is a late report of an earlier attempt.
        Outcome::Rejected | Outcome::Failed | Outcome::Canceled => {
            if is_other_transaction(current, n) {
                ignore(format!(
                    "order is accepted by transaction {}; {assessed} on transaction {} does not undo that payment",
                    current.transaction_id.as_deref().unwrap_or("(unknown)"),
                    n.transaction_id
                ))
            } else {
                apply(assessed)
            }
        }
        Outcome::Pending | Outcome::Review | Outcome::SuspectedFraud | Outcome::Accepted => ignore(format!(
            "order is accepted; a {assessed} notification ({}) does not undo an accepted payment",
            n.status()
        )),
    }
}

/// A final order never changes, but money arriving on a new transaction must
/// reach a human: the order goes to review with a note.
fn from_final(
    current: &OrderSnapshot,
    previous: Outcome,
    n: &Notification,
    assessed: Outcome,
) -> Verdict {
    if reports_success(n, assessed) && is_other_transaction(current, n) {
        return Verdict::Apply {
            outcome: Outcome::Review,
            note: Some(format!(
                "order was {previous}, but transaction {} reports a successful payment ({}, assessed {assessed}); \
                 set to review so that someone checks whether it is a new payment (reinstate the order or refund the buyer) \
                 or a resend of an older one",
                n.transaction_id,
                n.status()
            )),
        };
    }
    ignore(format!(
        "order is {previous}, which is final; a later {assessed} notification ({}) does not change it",
        n.status()
    ))
}

/// Whether `n` says money was taken or reserved (a success status, an
/// approved payment) and assessed to anything but a refund.
fn reports_success(n: &Notification, assessed: Outcome) -> bool {
    reports_payment(n)
        && matches!(
            assessed,
            Outcome::Accepted | Outcome::SuspectedFraud | Outcome::Review
        )
}

/// Whether `n` is about another transaction than the one that set the
/// order's outcome. An order whose transaction is unknown counts as another
/// one, so a success on it is never dropped.
fn is_other_transaction(current: &OrderSnapshot, n: &Notification) -> bool {
    current.transaction_id.as_deref() != Some(n.transaction_id.as_str())
}

fn origin_label(origin: &str) -> String {
    match source_words(origin) {
        Some(words) => words.to_owned(),
        None if origin.is_empty() => "no source given".to_owned(),
        None => format!("source {origin}"),
    }
}

fn apply(outcome: Outcome) -> Verdict {
    Verdict::Apply {
        outcome,
        note: None,
    }
}

fn ignore(reason: String) -> Verdict {
    Verdict::Ignore { reason }
}

#[cfg(test)]
mod tests;
