//! Mastercard Gateway (MPGS) transaction → one [`Outcome`] (rules m1 to m11).
//!
//! A notification is one transaction of an order. What it means depends on
//! the transaction's type first: a payment (authorisation, pay, capture)
//! decides the order; a refund or a void undoes it; authentication and
//! verification steps move no money and change nothing.

use super::{Judgement, Outcome};
use crate::domain::notification::MpgsFacts;

/// `transaction.type` of operations that take or reserve money.
pub const PAYMENT_TYPES: &[&str] = &[
    "AUTHORIZATION",
    "AUTHORIZATION_UPDATE",
    "PAYMENT",
    "CAPTURE",
];
/// `transaction.type` of a completed refund (m7).
pub const REFUND_TYPES: &[&str] = &["REFUND"];
/// `transaction.type` of a void that cancels the payment (m8).
pub const VOID_TYPES: &[&str] = &["VOID_AUTHORIZATION", "VOID_PAYMENT", "VOID_CAPTURE"];
/// `transaction.type` of steps that change no order (m1): 3-D Secure,
/// card verification, a refund only requested, a refund voided (someone
/// must look at that one by hand; the comment says so).
pub const NO_EFFECT_TYPES: &[&str] = &[
    "AUTHENTICATION",
    "VERIFICATION",
    "REFUND_REQUEST",
    "VOID_REFUND",
];

/// `response.gatewayCode` of an approved operation.
pub const APPROVED_CODES: &[&str] = &["APPROVED", "APPROVED_AUTO", "APPROVED_PENDING_SETTLEMENT"];
/// Approved for part of the amount only (m9).
pub const PARTIALLY_APPROVED: &str = "PARTIALLY_APPROVED";
/// `response.gatewayCode` without a final answer yet (m5).
pub const PENDING_CODES: &[&str] = &[
    "PENDING",
    "SUBMITTED",
    "DEFERRED_TRANSACTION_RECEIVED",
    "REFERRED",
];
/// `response.gatewayCode` of a declined or failed operation (m4).
pub const DECLINED_CODES: &[&str] = &[
    "DECLINED",
    "DECLINED_DO_NOT_CONTACT",
    "DECLINED_AVS",
    "DECLINED_CSC",
    "DECLINED_AVS_CSC",
    "DECLINED_PAYMENT_PLAN",
    "EXPIRED_CARD",
    "INSUFFICIENT_FUNDS",
    "INVALID_CSC",
    "AUTHENTICATION_FAILED",
    "NOT_ENROLLED_3D_SECURE",
    "BLOCKED",
    "CANCELLED",
    "ABORTED",
    "UNSPECIFIED_FAILURE",
    "TIMED_OUT",
    "ACQUIRER_SYSTEM_ERROR",
    "SYSTEM_ERROR",
    "NOT_SUPPORTED",
    "LOCK_FAILURE",
    "EXCEEDED_RETRY_LIMIT",
    "DUPLICATE_BATCH",
    "UNKNOWN",
];

/// Top-level `result` values.
pub const RESULT_SUCCESS: &str = "SUCCESS";
pub const FAILED_RESULTS: &[&str] = &["FAILURE", "ERROR"];
pub const PENDING_RESULTS: &[&str] = &["PENDING", "UNKNOWN"];

/// Risk gateway codes.
pub const RISK_REJECTED: &str = "REJECTED";
pub const RISK_REVIEW_REQUIRED: &str = "REVIEW_REQUIRED";
/// Risk passed or was not run (m11).
pub const RISK_CLEARED: &[&str] = &["ACCEPTED", "NOT_CHECKED"];
/// Review decisions.
pub const REVIEW_REJECTED: &str = "REJECTED";
/// A review that is not needed or that a person accepted (m11).
pub const REVIEW_CLEARED: &[&str] = &["NOT_REQUIRED", "ACCEPTED"];

fn is_known_type(t: &str) -> bool {
    [PAYMENT_TYPES, REFUND_TYPES, VOID_TYPES, NO_EFFECT_TYPES]
        .iter()
        .any(|list| list.contains(&t))
}

/// What the decision rules make of one MPGS transaction.
pub(super) fn judge(f: &MpgsFacts) -> Judgement {
    let mut warnings = Vec::new();
    let (effect, rule) = rules(f, &mut warnings);
    Judgement {
        effect,
        rule,
        warnings,
    }
}

fn rules(f: &MpgsFacts, warnings: &mut Vec<String>) -> (Option<Outcome>, String) {
    let ty = f.transaction_type.as_str();
    let code = f.gateway_code.as_str();
    let result = f.result.as_str();
    let risk = f.risk_gateway_code.as_str();
    let review = f.review_decision.as_str();

    if !is_known_type(ty) {
        warnings.push(format!(
            "unknown Mastercard Gateway transaction type {ty:?}; recorded without changing the order"
        ));
        return (
            None,
            format!("m1: unknown transaction type {ty:?}, recorded only"),
        );
    }
    if NO_EFFECT_TYPES.contains(&ty) {
        return (None, format!("m1: {ty} changes no order"));
    }
    let payment = PAYMENT_TYPES.contains(&ty);
    if payment && (risk == RISK_REJECTED || review == REVIEW_REJECTED) {
        let why = if risk == RISK_REJECTED {
            format!("risk {risk}")
        } else {
            format!("review {review}")
        };
        return (Some(Outcome::Rejected), format!("m2: {why} on {ty}"));
    }
    if payment && risk == RISK_REVIEW_REQUIRED && !REVIEW_CLEARED.contains(&review) {
        let review = if review.is_empty() {
            "not decided"
        } else {
            review
        };
        return (
            Some(Outcome::Review),
            format!("m3: risk {risk}, review {review}"),
        );
    }
    if payment && (FAILED_RESULTS.contains(&result) || DECLINED_CODES.contains(&code)) {
        return (
            Some(Outcome::Failed),
            format!("m4: {ty} result {result}, {}", or_none(code)),
        );
    }
    if PENDING_RESULTS.contains(&result) || PENDING_CODES.contains(&code) {
        return (
            None,
            format!(
                "m5: no final answer yet ({ty} result {result}, {})",
                or_none(code)
            ),
        );
    }
    let approved =
        result == RESULT_SUCCESS && (APPROVED_CODES.contains(&code) || code == PARTIALLY_APPROVED);
    if !payment && !approved {
        // A refused refund or void leaves the payment as it was.
        return (
            None,
            format!(
                "m6: the {ty} did not go through (result {result}, {})",
                or_none(code)
            ),
        );
    }
    if REFUND_TYPES.contains(&ty) {
        return (Some(Outcome::Refunded), format!("m7: {ty} {code}"));
    }
    if VOID_TYPES.contains(&ty) {
        return (Some(Outcome::Canceled), format!("m8: {ty} {code}"));
    }
    if !approved {
        warnings.push(format!(
            "unknown Mastercard Gateway result {result:?} / gateway code {code:?} on {ty}; recorded without changing the order"
        ));
        return (
            None,
            format!("unknown result {result:?} / gateway code {code:?}, recorded only"),
        );
    }
    if code == PARTIALLY_APPROVED {
        return (
            Some(Outcome::Review),
            format!("m9: {ty} {code}: only part of the amount was approved"),
        );
    }
    let risk_cleared =
        risk.is_empty() || RISK_CLEARED.contains(&risk) || REVIEW_CLEARED.contains(&review);
    if !risk_cleared {
        warnings.push(format!(
            "unknown Mastercard Gateway risk gateway code {risk:?}; an approved payment carrying it is suspected fraud"
        ));
        return (
            Some(Outcome::SuspectedFraud),
            format!("m10: {ty} {code} with risk {risk}"),
        );
    }
    let risk_part = match (risk, review) {
        ("", _) => "no risk assessment".to_owned(),
        (risk, "") => format!("risk {risk}"),
        (risk, review) => format!("risk {risk}, review {review}"),
    };
    (
        Some(Outcome::Accepted),
        format!("m11: {ty} {code}, {risk_part}"),
    )
}

fn or_none(code: &str) -> String {
    if code.is_empty() {
        "no gateway code".to_owned()
    } else {
        format!("gateway code {code}")
    }
}

/// Whether the transaction took or reserved money: an approved payment.
pub(super) fn reports_payment(f: &MpgsFacts) -> bool {
    PAYMENT_TYPES.contains(&f.transaction_type.as_str())
        && f.result == RESULT_SUCCESS
        && (APPROVED_CODES.contains(&f.gateway_code.as_str())
            || f.gateway_code == PARTIALLY_APPROVED)
}

/// Whether the transaction is a void: a merchant's operation, so it may
/// cancel a paid order (the Lyra rule asks for a back-office origin).
pub(super) fn is_void(f: &MpgsFacts) -> bool {
    VOID_TYPES.contains(&f.transaction_type.as_str())
}

#[cfg(test)]
mod tests;
