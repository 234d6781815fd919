//! Lyra fields → one canonical [`Outcome`]. (Placeholder rules; the full
//! table lands with the decisions issue.)

use serde::{Deserialize, Serialize};

use super::notification::{Facts, Notification};

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

pub fn assess(notification: &Notification) -> Assessment {
    let Facts::Lyra(f) = &notification.facts;
    let outcome = match f.trans_status.as_str() {
        "AUTHORISED" | "CAPTURED" | "ACCEPTED" => Outcome::Accepted,
        "AUTHORISED_TO_VALIDATE" => Outcome::Review,
        "REFUSED" => Outcome::Failed,
        "CANCELLED" | "ABANDONED" => Outcome::Canceled,
        _ => Outcome::Pending,
    };
    Assessment {
        outcome,
        rule: format!("status {}", f.trans_status),
        warnings: Vec::new(),
    }
}
