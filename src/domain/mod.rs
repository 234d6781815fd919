//! Pure decision logic: what a verified notification means for an order.
//!
//! Nothing here does I/O. The store's writer calls [`decide_prepared`]
//! inside the transaction that records the notification, so the decision,
//! the order's new state and the outbox row are committed together; what
//! needs no order state ([`Prepared`]) was computed before, on the
//! request's task.

pub mod comment;
pub mod money;
pub mod notification;
pub mod outcome;
pub mod state;

pub use notification::{Facts, LyraFacts, Notification, Provider};
pub use outcome::{assess, Assessment, Outcome};
pub use state::{transition, OrderSnapshot, Verdict};

/// Everything the daemon concluded from one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The outcome the notification's fields map to, before the order's
    /// history is considered.
    pub assessed: Outcome,
    /// What happens to the order.
    pub verdict: Verdict,
    /// The order-history comment for the shop.
    pub comment: String,
    /// Things an operator should see at WARN (unknown status, a success on a
    /// final order…).
    pub warnings: Vec<String>,
}

impl Decision {
    /// The outcome the order moves to, if the notification is applied.
    pub fn applied_outcome(&self) -> Option<Outcome> {
        match &self.verdict {
            Verdict::Apply { outcome, .. } => Some(*outcome),
            Verdict::Ignore { .. } => None,
        }
    }
}

fn verdict_outcome(v: &Verdict) -> &'static str {
    match v {
        Verdict::Apply { outcome, .. } => outcome.as_str(),
        Verdict::Ignore { .. } => "unchanged",
    }
}

/// The part of a decision that the notification alone gives: its
/// assessment and the facts lines of its comment. Intake computes it on
/// the request's task (`store::WriterHandle::submit`), so that the one
/// writer thread, the daemon's ceiling, only adds what needs the order's
/// state: the transition and the verdict line (issue 18).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    assessment: Assessment,
    facts: String,
}

impl Prepared {
    pub fn of(notification: &Notification) -> Prepared {
        Prepared {
            assessment: assess(notification),
            facts: comment::facts_lines(notification),
        }
    }

    /// The decision on an order the daemon has never seen
    /// (`OrderSnapshot::default()`), which is what the first notification
    /// of every payment meets. Intake computes it off the writer with the
    /// rest and the writer takes it as it is when the order has no row
    /// (`store::writer`: one transition, comment and set of warnings less
    /// to build on the one writer thread, issue 18). Deciding is pure, so
    /// it is the decision the writer would take.
    pub fn decide_new_order(&self, notification: &Notification) -> Decision {
        decide_prepared(&OrderSnapshot::default(), notification, self)
    }
}

/// Decides what `notification` means for an order currently in `current`.
pub fn decide(current: &OrderSnapshot, notification: &Notification) -> Decision {
    decide_prepared(current, notification, &Prepared::of(notification))
}

/// [`decide`], from what [`Prepared::of`] computed for `notification`
/// beforehand (it must be that notification's).
pub fn decide_prepared(
    current: &OrderSnapshot,
    notification: &Notification,
    prepared: &Prepared,
) -> Decision {
    let assessment = &prepared.assessment;
    let verdict = transition(current, notification, assessment.outcome);
    let mut warnings = assessment.warnings.clone();
    if state::test_on_production(current, notification) {
        warnings.push(
            "a TEST notification about an order a PRODUCTION notification moved: recorded and ignored (is a TEST source attached to a production shop?)"
                .to_owned(),
        );
    }
    if let Verdict::Apply {
        note: Some(note), ..
    } = &verdict
    {
        warnings.push(note.clone());
    }
    let mut comment = comment::with_verdict(&prepared.facts, notification, assessment, &verdict);
    if let Verdict::Apply {
        outcome: Outcome::Rejected | Outcome::Canceled,
        ..
    } = &verdict
    {
        if outcome::live_at_gateway(notification) {
            comment.push('\n');
            comment.push_str(&comment::gateway_cancel_line(notification));
            warnings.push(format!(
                "order {} is {} but transaction {} is still {} at the gateway: it must be cancelled there",
                notification.order_ref,
                verdict_outcome(&verdict),
                notification.transaction_id,
                notification.status()
            ));
        }
    }
    Decision {
        assessed: assessment.outcome,
        verdict,
        comment,
        warnings,
    }
}
