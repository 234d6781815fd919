//! What ipnsync does to an order for each outcome (shops.md A.8,
//! "Operation mapping for ipnsync"), and the account of what happened.
//!
//! OpenMage and Magento 2 share it: both order APIs have the same hold,
//! unhold and cancel verbs, followed by a history comment that sets the
//! configured status.

use crate::domain::Outcome;
use crate::shops::{Pushed, ShopUpdate};

/// An order-state step taken before the history comment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Hold,
    Unhold,
    Cancel,
}

impl Step {
    pub(crate) fn verb(self) -> &'static str {
        match self {
            Step::Hold => "hold",
            Step::Unhold => "unhold",
            Step::Cancel => "cancel",
        }
    }

    fn done(self) -> &'static str {
        match self {
            Step::Hold => "held",
            Step::Unhold => "released from hold",
            Step::Cancel => "canceled",
        }
    }
}

/// The steps before the comment.
///
/// - Review and suspected fraud put the order on hold so nobody ships it.
/// - Accepted, pending and refunded release it, but only if an earlier
///   review may have held it: a merchant's own hold is left alone.
/// - Canceled, rejected and failed release it first, because the shops'
///   cancel silently does nothing on a held order.
pub(crate) fn steps(outcome: Outcome, previous: Option<Outcome>) -> &'static [Step] {
    let was_reviewed = matches!(previous, Some(Outcome::Review | Outcome::SuspectedFraud));
    match outcome {
        Outcome::Review | Outcome::SuspectedFraud => &[Step::Hold],
        Outcome::Accepted | Outcome::Pending | Outcome::Refunded if was_reviewed => &[Step::Unhold],
        Outcome::Accepted | Outcome::Pending | Outcome::Refunded => &[],
        Outcome::Canceled | Outcome::Rejected | Outcome::Failed => &[Step::Unhold, Step::Cancel],
    }
}

/// What happened so far, for the comment and `Pushed.detail`.
#[derive(Debug)]
pub(crate) struct Progress {
    /// "OpenMage" or "Magento", for the texts.
    shop: &'static str,
    notes: Vec<String>,
    cancel_refused: Option<String>,
}

impl Progress {
    pub(crate) fn new(shop: &'static str) -> Self {
        Progress {
            shop,
            notes: Vec::new(),
            cancel_refused: None,
        }
    }

    pub(crate) fn done(&mut self, step: Step) {
        self.notes.push(step.done().to_owned());
    }

    /// The shop declined a step for a business reason (not holdable, not
    /// held, not cancellable). The update still goes through as a comment.
    pub(crate) fn refused(&mut self, step: Step, why: &str) {
        self.notes.push(format!("{} not done: {why}", step.verb()));
        if step == Step::Cancel {
            self.cancel_refused = Some(why.to_owned());
        }
    }

    /// The history comment: the caller's text, a note when the order could
    /// not be cancelled (the merchant has to act), and a marker that makes
    /// an at-least-once re-send recognisable.
    pub(crate) fn comment(&self, update: &ShopUpdate) -> String {
        let mut parts = Vec::with_capacity(3);
        if !update.comment.is_empty() {
            parts.push(update.comment.clone());
        }
        if let Some(why) = &self.cancel_refused {
            parts.push(format!(
                "ipnsync could not cancel the order in {}: {why}",
                self.shop
            ));
        }
        parts.push(format!("[ipnsync update #{}]", update.outbox_id));
        parts.join("\n")
    }

    pub(crate) fn finish(mut self, update: &ShopUpdate) -> Pushed {
        self.notes.push(format!(
            "comment added with status {}{}",
            update.status,
            if update.notify {
                ", customer notified"
            } else {
                ""
            }
        ));
        if self.cancel_refused.is_some() {
            self.notes.push(format!(
                "ipnsync could not cancel the order in {}",
                self.shop
            ));
        }
        Pushed::done(self.notes.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ShopStatus;

    fn update(comment: &str) -> ShopUpdate {
        ShopUpdate {
            outbox_id: 42,
            event_id: 7,
            order_ref: "100000001".into(),
            outcome: Outcome::Canceled,
            previous_outcome: None,
            status: ShopStatus::Code("canceled".into()),
            comment: comment.into(),
            notify: false,
            provider: "lyra".into(),
            transaction_id: "t1".into(),
            provider_status: "CANCELLED".into(),
            amount: None,
            customer_text: String::new(),
            earlier_attempt_unknown: false,
        }
    }

    #[test]
    fn review_holds_and_release_only_follows_a_review() {
        assert_eq!(steps(Outcome::Review, None), &[Step::Hold]);
        assert_eq!(
            steps(Outcome::SuspectedFraud, Some(Outcome::Pending)),
            &[Step::Hold]
        );
        assert_eq!(
            steps(Outcome::Accepted, Some(Outcome::Review)),
            &[Step::Unhold]
        );
        assert_eq!(
            steps(Outcome::Refunded, Some(Outcome::SuspectedFraud)),
            &[Step::Unhold]
        );
        assert!(steps(Outcome::Accepted, None).is_empty());
        assert!(steps(Outcome::Pending, Some(Outcome::Accepted)).is_empty());
    }

    #[test]
    fn final_failures_release_then_cancel() {
        for o in [Outcome::Canceled, Outcome::Rejected, Outcome::Failed] {
            assert_eq!(steps(o, None), &[Step::Unhold, Step::Cancel]);
        }
    }

    #[test]
    fn the_comment_carries_the_marker_and_the_cancel_note() {
        let u = update("Payment canceled");
        let mut p = Progress::new("OpenMage");
        assert_eq!(p.comment(&u), "Payment canceled\n[ipnsync update #42]");
        p.refused(Step::Unhold, "Unhold action is not available.");
        p.refused(Step::Cancel, "Order status not changed.");
        assert_eq!(
            p.comment(&u),
            "Payment canceled\nipnsync could not cancel the order in OpenMage: Order status not changed.\n[ipnsync update #42]"
        );
        let detail = p.finish(&u).detail;
        assert_eq!(
            detail,
            "unhold not done: Unhold action is not available.; cancel not done: Order status not changed.; \
             comment added with status canceled; ipnsync could not cancel the order in OpenMage"
        );
    }

    #[test]
    fn an_empty_comment_leaves_only_the_marker() {
        assert_eq!(
            Progress::new("Magento").comment(&update("")),
            "[ipnsync update #42]"
        );
    }
}
