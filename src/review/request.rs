//! What an operator asks: the action, the request as the CLI, the admin
//! API or the console received it, and the checks it passes before
//! anything is read or claimed.

use std::sync::Arc;

use super::ReviewError;
use crate::config::Config;
use crate::domain::Outcome;

/// Longest operator comment accepted (Lyra's `comment` takes 255).
pub const MAX_COMMENT_CHARS: usize = 255;
/// Longest actor name accepted.
pub const MAX_ACTOR_CHARS: usize = 64;
/// How long a claim outlives the longest the gateway calls may take: past
/// that, a claim left by a crashed process no longer blocks the order.
pub const CLAIM_MARGIN: std::time::Duration = std::time::Duration::from_secs(60);

/// What the operator decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Validate,
    Deny,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Validate => "validate",
            Action::Deny => "deny",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "validate" => Some(Action::Validate),
            "deny" => Some(Action::Deny),
            _ => None,
        }
    }

    /// The order's outcome once the action succeeded.
    pub fn outcome(self) -> Outcome {
        match self {
            Action::Validate => Outcome::Accepted,
            Action::Deny => Outcome::Canceled,
        }
    }

    pub(super) fn past(self) -> &'static str {
        match self {
            Action::Validate => "validated",
            Action::Deny => "denied",
        }
    }
}

/// Where the service finds the configuration and the database.
#[derive(Debug, Clone)]
pub struct ReviewContext {
    pub config: Arc<Config>,
    pub db: crate::store::Database,
}

/// One operator action, as the CLI or the admin API received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRequest {
    pub action: Action,
    pub order_ref: String,
    /// The shop; `None` = the only shop that has this order reference.
    pub shop: Option<String>,
    /// Who asks (recorded, and named in the shop's comment).
    pub actor: String,
    pub comment: Option<String>,
    /// Update the shop without asking the gateway (it was done in the
    /// gateway's back office, or its API is not subscribed).
    pub shop_only: bool,
    /// Cybersource: capture along with ACCEPT (validate only).
    pub capture: bool,
    /// Cybersource: reverse the authorisation along with REJECT (deny only).
    pub reverse: bool,
}

impl ReviewRequest {
    pub(super) fn check(&self) -> Result<(), ReviewError> {
        let bad = |m: String| Err(ReviewError::BadRequest(m));
        if self.order_ref.trim().is_empty() {
            return bad("the order reference is empty".into());
        }
        if self.actor.trim().is_empty()
            || self.actor.chars().count() > MAX_ACTOR_CHARS
            || self.actor.chars().any(char::is_control)
        {
            return bad(format!(
                "the actor must be 1 to {MAX_ACTOR_CHARS} printable characters"
            ));
        }
        if let Some(c) = &self.comment {
            if c.chars().count() > MAX_COMMENT_CHARS {
                return bad(format!(
                    "the comment is longer than {MAX_COMMENT_CHARS} characters"
                ));
            }
        }
        if self.capture && self.action != Action::Validate {
            return bad("capture goes with validate only".into());
        }
        if self.reverse && self.action != Action::Deny {
            return bad("reverse goes with deny only".into());
        }
        if self.shop_only && (self.capture || self.reverse) {
            return bad(
                "capture and reverse are gateway operations; shop_only asks no gateway".into(),
            );
        }
        Ok(())
    }

    /// The operator's comment without control characters; `None` if blank.
    pub(super) fn clean_comment(&self) -> Option<String> {
        let c: String = self
            .comment
            .as_deref()?
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let c = c.trim();
        (!c.is_empty()).then(|| c.to_owned())
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use super::*;

    pub fn request(action: Action) -> ReviewRequest {
        ReviewRequest {
            action,
            order_ref: "100042".into(),
            shop: None,
            actor: "alice".into(),
            comment: Some("called\nthe buyer".into()),
            shop_only: false,
            capture: false,
            reverse: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::request;
    use super::*;

    #[test]
    fn requests_are_checked_before_anything_happens() {
        assert!(request(Action::Validate).check().is_ok());
        let mut r = request(Action::Deny);
        r.capture = true;
        assert!(matches!(r.check(), Err(ReviewError::BadRequest(_))));
        let mut r = request(Action::Validate);
        r.actor = "x".repeat(MAX_ACTOR_CHARS + 1);
        assert!(r.check().is_err());
        let mut r = request(Action::Validate);
        r.comment = Some("c".repeat(MAX_COMMENT_CHARS + 1));
        assert_eq!(r.check().unwrap_err().http_status(), 400);
        let mut r = request(Action::Validate);
        r.shop_only = true;
        r.capture = true;
        assert!(r.check().is_err());
        assert_eq!(
            request(Action::Validate).clean_comment().as_deref(),
            Some("called the buyer")
        );
    }
}
