//! Provider fields → one canonical [`Outcome`].
//!
//! [`assess`] reads only the notification itself, never the order's
//! history (that is [`super::state`]'s job). The Lyra rules are an ordered
//! list (`lyra::RULES`, a to h): the first one that matches wins. Cybersource
//! ([`cybersource`], cs1–cs8) and Mastercard Gateway ([`mpgs`], m1–m11)
//! have their own ordered rules. Every vocabulary the rules branch on is a
//! `const` table, so a reader finds a code by searching for it.
//! `docs/decisions.md` explains each rule to merchants.
//!
//! Some notifications must never change an order, whatever its state: a
//! Decision Manager note, a 3-D Secure step, a refused refund.
//! [`without_effect`] names them; the state machine ignores them (they are
//! still stored, and their comment says why), and [`assess`] reports them
//! as `pending` with the rule that matched.

pub mod cybersource;
mod lyra;
pub mod mpgs;

use serde::{Deserialize, Serialize};

use super::notification::{Facts, Notification};
use lyra::{assess_lyra, judge_lyra};
pub use lyra::{
    is_known_assessment, is_success_status, source_words, AnalysisClass, AnalysisReading,
    StatusGroup, ANALYSIS_CODES, ASSESSMENT_INFORM, ASSESSMENT_MANUAL_VALIDATION,
    ASSESSMENT_REFUSE, BACK_OFFICE_OPERATION, CANCELED_STATUSES, CONTROL_ERROR, CONTROL_OK,
    CONTROL_WARNING, FAILED_STATUSES, INFORMATIONAL_ASSESSMENTS, MISSING_MANDATORY_PREFIX,
    OPERATION_CREDIT, ORDER_CYCLE_CLOSED, PENDING_STATUSES, SOURCE_WORDS, SUCCESS_STATUSES,
    TO_VALIDATE_STATUSES,
};

/// The canonical answer to "what do I do with this order now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pending,
    Review,
    SuspectedFraud,
    Accepted,
    Rejected,
    Failed,
    Canceled,
    Refunded,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Pending,
        Outcome::Review,
        Outcome::SuspectedFraud,
        Outcome::Accepted,
        Outcome::Rejected,
        Outcome::Failed,
        Outcome::Canceled,
        Outcome::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Review => "review",
            Outcome::SuspectedFraud => "suspected_fraud",
            Outcome::Accepted => "accepted",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
            Outcome::Canceled => "canceled",
            Outcome::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Rejected, failed, canceled and refunded orders never change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Outcome::Rejected | Outcome::Failed | Outcome::Canceled | Outcome::Refunded
        )
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one notification and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub outcome: Outcome,
    /// The rule that matched, in words (for logs and the comment).
    pub rule: String,
    pub warnings: Vec<String>,
}

/// A provider rule's conclusion: the outcome, or `None` for a notification
/// that is recorded without changing the order.
pub(crate) struct Judgement {
    pub effect: Option<Outcome>,
    pub rule: String,
    pub warnings: Vec<String>,
}

fn judge(notification: &Notification) -> Option<Judgement> {
    match &notification.facts {
        Facts::Lyra(f) => judge_lyra(f),
        Facts::Cybersource(f) => Some(cybersource::judge(f)),
        Facts::Mpgs(f) => Some(mpgs::judge(f)),
    }
}

/// Decides what one notification means, from its own fields only.
pub fn assess(notification: &Notification) -> Assessment {
    match (&notification.facts, judge(notification)) {
        (_, Some(j)) => Assessment {
            // A notification without effect is recorded as pending; the
            // state machine never applies it (see `without_effect`).
            outcome: j.effect.unwrap_or(Outcome::Pending),
            rule: j.rule,
            warnings: j.warnings,
        },
        (Facts::Lyra(f), None) => assess_lyra(f),
        (_, None) => unreachable!("every non-Lyra provider has a judge"),
    }
}

/// `Some(why)` when the notification must leave the order as it is,
/// whatever the order's state: a Decision Manager note or an unknown event
/// (Cybersource); a 3-D Secure or verification step, a pending answer, a
/// refused refund or void, an unknown transaction type (MPGS); a REST
/// non-success while the order cycle is open (Lyra rule r1).
pub fn without_effect(notification: &Notification) -> Option<String> {
    judge(notification)
        .filter(|j| j.effect.is_none())
        .map(|j| j.rule)
}

/// Whether the notification is a comment for the order's history and
/// nothing else: a Decision Manager note (webhook `addnote`, or a CMOS
/// update without a decision). It changes no order (see
/// [`without_effect`]), but the shop's history should show it, as a
/// comment that keeps the order's status and notifies nobody. 3-D Secure
/// steps and other events without effect are not comments: they stay in
/// ipnsync's own timeline.
pub fn comment_only(notification: &Notification) -> bool {
    match &notification.facts {
        Facts::Cybersource(f) => cybersource::DmSignal::of(f) == Some(cybersource::DmSignal::Note),
        Facts::Lyra(_) | Facts::Mpgs(_) => false,
    }
}

/// Whether the notification says money was taken or reserved: a Lyra
/// success status, an accepted or monitored Decision Manager verdict, an
/// approved MPGS payment. A final order that receives such news on another
/// transaction goes to review (see [`super::state`]).
pub fn reports_payment(notification: &Notification) -> bool {
    match &notification.facts {
        Facts::Lyra(f) => is_success_status(&f.trans_status),
        Facts::Cybersource(f) => cybersource::reports_payment(f),
        Facts::Mpgs(f) => mpgs::reports_payment(f),
    }
}

/// Lyra statuses of a transaction still alive at the gateway and still
/// cancellable: authorised (or to be), not captured yet. At its capture
/// date the platform captures it, whatever the shop's order says.
pub const CANCELLABLE_STATUSES: &[&str] = &[
    "AUTHORISED",
    "AUTHORISED_TO_VALIDATE",
    "WAITING_AUTHORISATION",
    "WAITING_AUTHORISATION_TO_VALIDATE",
    "PARTIALLY_AUTHORISED",
];

/// Whether the notification's risk verdict rejects or cancels an order
/// whose transaction is still alive at the gateway (rules a and b on an
/// authorised Lyra transaction: `AUTHORISED` + `FRD`, `REFUSE`, `CAN`…):
/// unless someone cancels it there, the money is taken anyway.
pub fn live_at_gateway(notification: &Notification) -> bool {
    match &notification.facts {
        Facts::Lyra(f) => {
            CANCELLABLE_STATUSES.contains(&f.trans_status.as_str())
                && matches!(
                    assess(notification).outcome,
                    Outcome::Rejected | Outcome::Canceled
                )
        }
        _ => false,
    }
}

/// Whether a cancellation comes from the merchant's own operation, the only
/// kind that may cancel a paid order: a Lyra back-office operation
/// (`MERCH_BO`), an MPGS void (made by the merchant, through the API or
/// Merchant Administration), a Cybersource reversal or void.
pub fn is_merchant_cancellation(notification: &Notification) -> bool {
    match &notification.facts {
        Facts::Lyra(f) => f.url_check_src == BACK_OFFICE_OPERATION,
        Facts::Cybersource(f) => cybersource::is_reversal(f),
        Facts::Mpgs(f) => mpgs::is_void(f),
    }
}

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
