//! Why a review action was not done ([`ReviewError`], each with its HTTP
//! status and stable code), and why a gateway call failed
//! ([`GatewayError`], the clients' error).

use thiserror::Error;

use super::comment::gateway_name;
use super::Action;
use crate::domain::Outcome;
use crate::store::claims::ActionInProgress;
use crate::store::{now_ms, StoreError};

/// Why an action was not done. Each maps to an HTTP status and a CLI exit
/// code. No variant ever carries a secret: gateway texts are the gateway's
/// answers, and requests are never echoed.
#[derive(Debug, Error)]
pub enum ReviewError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnknownOrder(String),
    #[error("order {order:?} exists in several shops ({}): name the shop", shops.join(", "))]
    AmbiguousOrder { order: String, shops: Vec<String> },
    #[error("order {order:?} is {outcome}, not in review or suspected_fraud: nothing to {action}")]
    NotInReview {
        order: String,
        outcome: Outcome,
        action: &'static str,
    },
    /// No API credentials for the order's source.
    #[error("{0}")]
    NotConfigured(String),
    /// The shop has no web-service subscription at the gateway (Lyra
    /// `PSP_100`): the operator must act in the back office.
    #[error("{gateway} refused: {message}. The gateway's web services are not subscribed for this shop: {action} the payment in the {gateway} back office, then update the shop with shop_only (CLI: --shop-only)")]
    NotSubscribed {
        gateway: &'static str,
        action: &'static str,
        message: String,
    },
    #[error("{gateway} refused to {action}: {message}")]
    Refused {
        gateway: &'static str,
        action: &'static str,
        message: String,
    },
    #[error("{gateway} could not be reached: {message}")]
    Unreachable {
        gateway: &'static str,
        message: String,
    },
    /// Another action holds the order (its gateway call is under way).
    #[error("order {order:?}: {} by {} is already under way (review action #{}, started {}s ago): nothing was done; check the order once it is finished", busy.action, busy.actor, busy.id, (now_ms() - busy.created_at).max(0) / 1000)]
    InProgress {
        order: String,
        busy: ActionInProgress,
    },
    /// No Decision Manager request id was notified for the order: the case
    /// cannot be named to the API (the order number is not its id).
    #[error("Cybersource: order {order:?} has no Decision Manager request id (its notification carried no payload.data.id or requestId), so the case cannot be acted on through the API: {action} it in the Business Center's Case Management, then update the shop with shop_only (CLI: --shop-only)")]
    NoDecisionId { order: String, action: &'static str },
    /// The gateway did the action, but recording it (and moving the order)
    /// failed: retrying would ask the gateway again.
    #[error("{gateway} acted ({done}) but ipnsync could not record it: {message}; do not retry, check the order (once the payment is confirmed, update the shop with shop_only, CLI: --shop-only)")]
    ActedNotRecorded {
        gateway: &'static str,
        done: String,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ReviewError {
    /// The admin API's answer.
    pub fn http_status(&self) -> u16 {
        match self {
            ReviewError::BadRequest(_)
            | ReviewError::AmbiguousOrder { .. }
            | ReviewError::NotConfigured(_) => 400,
            ReviewError::UnknownOrder(_) => 404,
            ReviewError::NotInReview { .. }
            | ReviewError::InProgress { .. }
            | ReviewError::NoDecisionId { .. } => 409,
            ReviewError::NotSubscribed { .. }
            | ReviewError::Refused { .. }
            | ReviewError::Unreachable { .. } => 502,
            ReviewError::ActedNotRecorded { .. }
            | ReviewError::Store(_)
            | ReviewError::Internal(_) => 500,
        }
    }

    /// A stable machine-readable code for the admin API's JSON.
    pub fn code(&self) -> &'static str {
        match self {
            ReviewError::BadRequest(_) => "bad_request",
            ReviewError::AmbiguousOrder { .. } => "ambiguous_order",
            ReviewError::NotConfigured(_) => "gateway_not_configured",
            ReviewError::UnknownOrder(_) => "unknown_order",
            ReviewError::NotInReview { .. } => "not_in_review",
            ReviewError::NotSubscribed { .. } => "gateway_not_subscribed",
            ReviewError::Refused { .. } => "gateway_refused",
            ReviewError::Unreachable { .. } => "gateway_unreachable",
            ReviewError::InProgress { .. } => "action_in_progress",
            ReviewError::NoDecisionId { .. } => "no_decision_id",
            ReviewError::ActedNotRecorded { .. } => "gateway_acted_not_recorded",
            ReviewError::Store(_) => "database",
            ReviewError::Internal(_) => "internal",
        }
    }
}

/// Why a gateway call failed (the clients' error; [`act`] adds context).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GatewayError {
    /// Web services not subscribed (Lyra `PSP_100`).
    #[error("{0}")]
    NotSubscribed(String),
    /// The gateway answered and said no, or answered something unexpected.
    #[error("{0}")]
    Refused(String),
    /// No usable answer: connection, timeout, a 5xx.
    #[error("{0}")]
    Unreachable(String),
}

pub(super) fn gateway_error(gateway: &'static str, action: Action, e: GatewayError) -> ReviewError {
    let gateway = gateway_name(gateway);
    match e {
        GatewayError::NotSubscribed(message) => ReviewError::NotSubscribed {
            gateway,
            action: action.as_str(),
            message,
        },
        GatewayError::Refused(message) => ReviewError::Refused {
            gateway,
            action: action.as_str(),
            message,
        },
        GatewayError::Unreachable(message) => ReviewError::Unreachable { gateway, message },
    }
}

/// Prefixes an error with what was already acted on (`(id, status)`), if
/// anything: those cannot be undone from here.
pub(super) fn partial(e: GatewayError, done: &[(String, String)], failed: &str) -> GatewayError {
    if done.is_empty() {
        return e;
    }
    let ok: Vec<String> = done.iter().map(|(t, s)| format!("{t} → {s}")).collect();
    let text = |m: String| {
        format!(
            "transaction {failed}: {m} (already done: {})",
            ok.join(", ")
        )
    };
    match e {
        GatewayError::NotSubscribed(m) => GatewayError::NotSubscribed(text(m)),
        GatewayError::Refused(m) => GatewayError::Refused(text(m)),
        GatewayError::Unreachable(m) => GatewayError::Unreachable(text(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_map_to_http_statuses_and_codes() {
        let e = gateway_error(
            "lyra",
            Action::Validate,
            GatewayError::NotSubscribed("PSP_100: web services not subscribed".into()),
        );
        assert_eq!((e.http_status(), e.code()), (502, "gateway_not_subscribed"));
        assert!(e.to_string().contains("back office"), "{e}");
        let e = ReviewError::NotInReview {
            order: "1".into(),
            outcome: Outcome::Accepted,
            action: "validate",
        };
        assert_eq!(e.http_status(), 409);
        let e = ReviewError::ActedNotRecorded {
            gateway: "Lyra",
            done: "validate u1 → AUTHORISED".into(),
            message: "database: disk I/O error".into(),
        };
        assert_eq!(
            (e.http_status(), e.code()),
            (500, "gateway_acted_not_recorded")
        );
        assert_eq!(
            e.to_string(),
            "Lyra acted (validate u1 → AUTHORISED) but ipnsync could not record it: database: disk I/O error; do not retry, check the order (once the payment is confirmed, update the shop with shop_only, CLI: --shop-only)"
        );
    }

    #[test]
    fn a_partial_failure_names_what_was_already_done() {
        let e = partial(
            GatewayError::Refused("PSP_010: no".into()),
            &[("a".into(), "AUTHORISED".into())],
            "b",
        );
        assert_eq!(
            e.to_string(),
            "transaction b: PSP_010: no (already done: a → AUTHORISED)"
        );
        let e = GatewayError::Unreachable("timed out".into());
        assert_eq!(partial(e.clone(), &[], "a"), e);
    }
}
