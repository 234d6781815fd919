//! The per-order state machine. (Placeholder; the full rules land with the
//! decisions issue.)

use super::notification::Notification;
use super::outcome::Outcome;

/// What the daemon knows about an order before a notification is applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderSnapshot {
    /// `None` for an order never seen before.
    pub outcome: Option<Outcome>,
    /// The transaction that set the current outcome.
    pub transaction_id: Option<String>,
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

pub fn transition(current: &OrderSnapshot, _n: &Notification, assessed: Outcome) -> Verdict {
    match current.outcome {
        Some(prev) if prev.is_final() => Verdict::Ignore {
            reason: format!("order is already {prev}"),
        },
        Some(prev) if prev == assessed => Verdict::Ignore {
            reason: format!("order is already {prev}"),
        },
        _ => Verdict::Apply {
            outcome: assessed,
            note: None,
        },
    }
}
