use super::*;
use crate::domain::outcome::test_support::{apply_decision, mpgs_follow_on, mpgs_tx};
use crate::domain::outcome::without_effect;
use crate::domain::{assess, decide, OrderSnapshot, Verdict};
use Outcome::{Accepted, Canceled, Failed, Pending, Refunded, Rejected, Review, SuspectedFraud};

/// Type, result, gateway code, risk, review → outcome (`None`: no effect)
/// and the rule that must have decided.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<Outcome>,
    &'static str,
);

#[rustfmt::skip]
const TABLE: &[Row] = &[
    // m2: rejected by risk, whatever else.
    ("AUTHORIZATION", "FAILURE", "BLOCKED", "REJECTED", "", Some(Rejected), "m2"),
    ("AUTHORIZATION", "SUCCESS", "APPROVED", "REJECTED", "", Some(Rejected), "m2"),
    ("PAYMENT", "SUCCESS", "APPROVED", "REVIEW_REQUIRED", "REJECTED", Some(Rejected), "m2"),
    // m3: waiting for a reviewer.
    ("AUTHORIZATION", "SUCCESS", "APPROVED", "REVIEW_REQUIRED", "PENDING", Some(Review), "m3"),
    ("AUTHORIZATION", "SUCCESS", "APPROVED", "REVIEW_REQUIRED", "", Some(Review), "m3"),
    // m4: failed.
    ("AUTHORIZATION", "FAILURE", "DECLINED", "ACCEPTED", "NOT_REQUIRED", Some(Failed), "m4"),
    ("PAYMENT", "FAILURE", "INSUFFICIENT_FUNDS", "", "", Some(Failed), "m4"),
    ("PAYMENT", "ERROR", "", "", "", Some(Failed), "m4"),
    ("AUTHORIZATION", "SUCCESS", "EXPIRED_CARD", "", "", Some(Failed), "m4"),
    ("CAPTURE", "FAILURE", "SYSTEM_ERROR", "", "", Some(Failed), "m4"),
    // m5: no final answer.
    ("AUTHORIZATION", "PENDING", "PENDING", "", "", None, "m5"),
    ("PAYMENT", "UNKNOWN", "", "", "", None, "m5"),
    ("AUTHORIZATION", "SUCCESS", "SUBMITTED", "", "", None, "m5"),
    // m6: a refused refund or void changes nothing.
    ("REFUND", "FAILURE", "DECLINED", "", "", None, "m6"),
    ("VOID_AUTHORIZATION", "FAILURE", "UNSPECIFIED_FAILURE", "", "", None, "m6"),
    // m7, m8: refunds and voids by transaction type.
    ("REFUND", "SUCCESS", "APPROVED", "", "", Some(Refunded), "m7"),
    ("REFUND", "SUCCESS", "APPROVED", "ACCEPTED", "NOT_REQUIRED", Some(Refunded), "m7"),
    ("VOID_AUTHORIZATION", "SUCCESS", "APPROVED", "", "", Some(Canceled), "m8"),
    ("VOID_PAYMENT", "SUCCESS", "APPROVED", "", "", Some(Canceled), "m8"),
    ("VOID_CAPTURE", "SUCCESS", "APPROVED", "", "", Some(Canceled), "m8"),
    // A refund's own risk verdict does not reject the paid order.
    ("REFUND", "FAILURE", "BLOCKED", "REJECTED", "", None, "m6"),
    // m9 to m11: approved payments.
    ("AUTHORIZATION", "SUCCESS", "PARTIALLY_APPROVED", "ACCEPTED", "", Some(Review), "m9"),
    ("AUTHORIZATION", "SUCCESS", "APPROVED", "SYSTEM_ERROR", "", Some(SuspectedFraud), "m10"),
    ("AUTHORIZATION", "SUCCESS", "APPROVED", "ACCEPTED", "NOT_REQUIRED", Some(Accepted), "m11"),
    ("AUTHORIZATION", "SUCCESS", "APPROVED", "NOT_CHECKED", "", Some(Accepted), "m11"),
    ("AUTHORIZATION", "SUCCESS", "APPROVED", "REVIEW_REQUIRED", "ACCEPTED", Some(Accepted), "m11"),
    ("AUTHORIZATION", "SUCCESS", "APPROVED", "REVIEW_REQUIRED", "NOT_REQUIRED", Some(Accepted), "m11"),
    ("PAYMENT", "SUCCESS", "APPROVED_AUTO", "", "", Some(Accepted), "m11"),
    ("CAPTURE", "SUCCESS", "APPROVED", "", "", Some(Accepted), "m11"),
    ("AUTHORIZATION_UPDATE", "SUCCESS", "APPROVED_PENDING_SETTLEMENT", "ACCEPTED", "", Some(Accepted), "m11"),
    // m1: steps without effect, and unknown types.
    ("AUTHENTICATION", "SUCCESS", "APPROVED", "", "", None, "m1"),
    ("VERIFICATION", "SUCCESS", "APPROVED", "", "", None, "m1"),
    ("REFUND_REQUEST", "SUCCESS", "APPROVED", "", "", None, "m1"),
    ("VOID_REFUND", "SUCCESS", "APPROVED", "", "", None, "m1"),
    ("CHARGEBACK", "SUCCESS", "APPROVED", "", "", None, "m1"),
    // Fallback: an unknown result or gateway code.
    ("AUTHORIZATION", "SUCCESS", "SOMETHING_NEW", "", "", None, "unknown"),
];

#[test]
fn table() {
    for (ty, result, code, risk, review, expected, rule) in TABLE {
        let n = mpgs_tx(ty, result, code, risk, review);
        let a = assess(&n);
        let what = format!("{ty} {result} {code} {risk} {review}");
        assert_eq!(a.outcome, expected.unwrap_or(Pending), "{what}: {}", a.rule);
        assert!(a.rule.starts_with(rule), "{what}: rule {}", a.rule);
        assert_eq!(without_effect(&n).is_some(), expected.is_none(), "{what}");
    }
}

#[test]
fn unknown_values_warn() {
    for n in [
        mpgs_tx("CHARGEBACK", "SUCCESS", "APPROVED", "", ""),
        mpgs_tx("AUTHORIZATION", "SUCCESS", "SOMETHING_NEW", "", ""),
        mpgs_tx("AUTHORIZATION", "SUCCESS", "APPROVED", "SYSTEM_ERROR", ""),
    ] {
        assert_eq!(assess(&n).warnings.len(), 1, "{:?}", n.mpgs());
    }
    assert!(assess(&mpgs_tx(
        "AUTHORIZATION",
        "SUCCESS",
        "APPROVED",
        "ACCEPTED",
        ""
    ))
    .warnings
    .is_empty());
}

#[test]
fn review_then_a_reviewers_decision() {
    let mut order = OrderSnapshot::default();
    let review = mpgs_tx(
        "AUTHORIZATION",
        "SUCCESS",
        "APPROVED",
        "REVIEW_REQUIRED",
        "PENDING",
    );
    assert_eq!(
        apply_decision(&mut order, &review).applied_outcome(),
        Some(Review)
    );
    // The same transaction, reviewed: a new event (its key differs) that
    // accepts the order.
    let accepted = mpgs_tx(
        "AUTHORIZATION",
        "SUCCESS",
        "APPROVED",
        "REVIEW_REQUIRED",
        "ACCEPTED",
    );
    assert_ne!(review.event_key(), accepted.event_key());
    assert_eq!(
        apply_decision(&mut order, &accepted).applied_outcome(),
        Some(Accepted)
    );
    // A capture of the authorisation changes nothing more.
    let capture = mpgs_follow_on("CAPTURE", "2", "SUCCESS", "APPROVED");
    assert_eq!(apply_decision(&mut order, &capture).applied_outcome(), None);
    // A refused refund neither.
    let refused = mpgs_follow_on("REFUND", "3", "FAILURE", "DECLINED");
    assert_eq!(apply_decision(&mut order, &refused).applied_outcome(), None);
    // The refund does.
    let refund = mpgs_follow_on("REFUND", "4", "SUCCESS", "APPROVED");
    assert_eq!(
        apply_decision(&mut order, &refund).applied_outcome(),
        Some(Refunded)
    );
}

#[test]
fn a_void_cancels_the_paid_order_it_voids() {
    let mut order = OrderSnapshot::default();
    let auth = mpgs_tx(
        "AUTHORIZATION",
        "SUCCESS",
        "APPROVED",
        "ACCEPTED",
        "NOT_REQUIRED",
    );
    apply_decision(&mut order, &auth);
    let void = mpgs_follow_on("VOID_AUTHORIZATION", "2", "SUCCESS", "APPROVED");
    let d = decide(&order, &void);
    assert_eq!(d.applied_outcome(), Some(Canceled), "{:?}", d.verdict);

    // A void of another authorisation (say, an earlier abandoned one) does not.
    let mut other = void.clone();
    other.transaction_id = "7".into();
    let d = decide(&order, &other);
    assert!(
        matches!(d.verdict, Verdict::Ignore { .. }),
        "{:?}",
        d.verdict
    );
}

#[test]
fn a_second_approved_payment_on_a_failed_order_goes_to_review() {
    let mut order = OrderSnapshot::default();
    apply_decision(
        &mut order,
        &mpgs_tx("AUTHORIZATION", "FAILURE", "DECLINED", "", ""),
    );
    let mut retry = mpgs_tx("AUTHORIZATION", "SUCCESS", "APPROVED", "ACCEPTED", "");
    retry.transaction_id = "2".into();
    let d = apply_decision(&mut order, &retry);
    assert_eq!(d.applied_outcome(), Some(Review));
    assert!(
        d.comment.contains("Note: order was failed"),
        "{}",
        d.comment
    );
}

#[test]
fn event_key_is_order_transaction_and_state() {
    let a = mpgs_tx(
        "AUTHORIZATION",
        "SUCCESS",
        "APPROVED",
        "ACCEPTED",
        "NOT_REQUIRED",
    );
    let mut resent = a.clone();
    if let crate::domain::Facts::Mpgs(f) = &mut resent.facts {
        f.notification_id = "another-delivery".into();
        f.order_status = "CAPTURED".into();
    }
    assert_eq!(
        a.event_key(),
        resent.event_key(),
        "redelivery and late resend"
    );
    let capture = mpgs_follow_on("CAPTURE", "2", "SUCCESS", "APPROVED");
    assert_ne!(a.event_key(), capture.event_key());
    let mut other_order = a.clone();
    if let crate::domain::Facts::Mpgs(f) = &mut other_order.facts {
        f.order_id = "100000301".into();
    }
    assert_ne!(a.event_key(), other_order.event_key());
}
