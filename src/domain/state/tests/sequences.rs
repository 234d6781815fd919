//! Sequences of notifications on one order, and cases that need more than
//! one table row.

use super::*;

#[test]
fn to_validate_then_validated_in_the_back_office_is_accepted() {
    let (order, decisions) = replay(&[
        Ipn::new("AUTHORISED_TO_VALIDATE").assessment("MANUAL_VALIDATION"),
        Ipn::new("AUTHORISED").source("MERCH_BO"),
    ]);
    assert_eq!(decisions[0].applied_outcome(), Some(Review));
    assert_eq!(decisions[1].applied_outcome(), Some(Accepted));
    assert_eq!(order.outcome, Some(Accepted));
}

#[test]
fn a_late_abandon_from_the_payment_page_is_ignored() {
    let (order, decisions) = replay(&[Ipn::new("AUTHORISED"), Ipn::new("ABANDONED").source("PAY")]);
    assert_eq!(decisions[1].applied_outcome(), None);
    assert_eq!(order.outcome, Some(Accepted));
}

#[test]
fn a_back_office_cancellation_cancels_a_paid_order() {
    let (order, decisions) = replay(&[
        Ipn::new("AUTHORISED"),
        Ipn::new("CANCELLED").source("MERCH_BO"),
    ]);
    assert_eq!(decisions[1].applied_outcome(), Some(Canceled));
    assert_eq!(order.outcome, Some(Canceled));
}

#[test]
fn an_older_to_validate_after_capture_changes_nothing() {
    let (order, decisions) = replay(&[
        Ipn::new("CAPTURED").source("BATCH"),
        Ipn::new("AUTHORISED_TO_VALIDATE").source("RETRY"),
    ]);
    assert!(matches!(&decisions[1].verdict, Verdict::Ignore { .. }));
    assert_eq!(order.outcome, Some(Accepted));
}

#[test]
fn a_duplicate_is_ignored_as_already_in_its_outcome() {
    let (order, decisions) = replay(&[Ipn::new("AUTHORISED"), Ipn::new("AUTHORISED")]);
    assert_eq!(
        decisions[1].verdict,
        Verdict::Ignore {
            reason: "order is already accepted".into()
        }
    );
    assert_eq!(order.outcome, Some(Accepted));
}

#[test]
fn refunded_is_final() {
    let refund = || other(Ipn::new("CAPTURED").operation("CREDIT").source("MERCH_BO"));
    let (order, decisions) = replay(&[
        Ipn::new("CAPTURED"),
        refund(),
        Ipn::new("CANCELLED").source("MERCH_BO"),
        Ipn::new("CAPTURE_FAILED").source("BATCH"),
        Ipn::new("AUTHORISED").analysis("FRD").source("BATCH"),
        refund().source("BO"),
        // A second (partial) refund is a third transaction.
        refund().transaction("uuid-3"),
    ]);
    assert_eq!(decisions[1].applied_outcome(), Some(Refunded));
    assert!(decisions[2..].iter().all(|d| d.applied_outcome().is_none()));
    assert_eq!(order.outcome, Some(Refunded));
}

#[test]
fn a_resend_of_the_payment_after_a_refund_is_flagged_not_dropped() {
    // The order remembers only the refund's transaction, so the paying
    // transaction's success looks like a new payment: flag, don't guess.
    let (order, decisions) = replay(&[
        Ipn::new("CAPTURED"),
        other(Ipn::new("CAPTURED").operation("CREDIT").source("MERCH_BO")),
        Ipn::new("CAPTURED").source("BO"),
    ]);
    assert!(matches!(
        &decisions[2].verdict,
        Verdict::Apply {
            outcome: Review,
            note: Some(_)
        }
    ));
    assert_eq!(order.outcome, Some(Review));
}

#[test]
fn a_success_on_another_transaction_of_a_canceled_order_goes_to_review() {
    let (order, decisions) = replay(&[
        Ipn::new("ABANDONED"),
        other(Ipn::new("AUTHORISED")),
        other(Ipn::new("AUTHORISED").source("RETRY")),
    ]);
    assert_eq!(decisions[0].applied_outcome(), Some(Canceled));
    let flagged = &decisions[1];
    assert_eq!(flagged.assessed, Accepted);
    assert!(matches!(
        &flagged.verdict,
        Verdict::Apply {
            outcome: Review,
            note: Some(_)
        }
    ));
    assert!(flagged
        .warnings
        .iter()
        .any(|w| w.starts_with("order was canceled, but transaction uuid-2")));
    assert!(
        flagged.comment.contains("Note: order was canceled"),
        "{}",
        flagged.comment
    );
    // The order is now review on transaction uuid-2, so the resend applies:
    // from review every outcome applies.
    assert_eq!(decisions[2].applied_outcome(), Some(Accepted));
    assert_eq!(order.outcome, Some(Accepted));
}

#[test]
fn a_late_refusal_of_an_earlier_attempt_does_not_fail_a_paid_order() {
    let (order, decisions) = replay(&[
        other(Ipn::new("AUTHORISED")),
        Ipn::new("REFUSED").source("RETRY"),
    ]);
    assert!(matches!(&decisions[1].verdict, Verdict::Ignore { .. }));
    assert_eq!(order.outcome, Some(Accepted));
}

#[test]
fn a_second_installment_with_the_same_outcome_sends_nothing() {
    let (order, decisions) = replay(&[
        Ipn::new("CAPTURED"),
        other(Ipn::new("AUTHORISED").source("BATCH_AUTO"))
            .with(|_, f| f.sequence_number = "2".into()),
    ]);
    assert_eq!(decisions[1].applied_outcome(), None);
    assert_eq!(order.transaction_id.as_deref(), Some(PAYING));
}

#[test]
fn a_notification_without_an_order_reference_moves_no_order() {
    let mut n = Ipn::new("AUTHORISED").build();
    n.order_ref.clear();
    assert_eq!(
        transition(&OrderSnapshot::default(), &n, Outcome::Accepted),
        Verdict::Ignore {
            reason: "the notification carries no order reference".into()
        }
    );
}

#[test]
fn a_rest_failure_while_the_order_cycle_is_open_changes_nothing() {
    // The first card is refused (OPEN: the buyer may retry with the same
    // form token), the second one pays (CLOSED): accepted, no review.
    let (order, decisions) = replay(&[
        Ipn::new("REFUSED")
            .rest("OPEN", "PAY")
            .transaction("uuid-1"),
        Ipn::new("AUTHORISED")
            .rest("CLOSED", "PAY")
            .transaction("uuid-2"),
    ]);
    assert_eq!(decisions[0].applied_outcome(), None);
    assert_eq!(decisions[0].assessed, Pending);
    assert!(
        decisions[0]
            .comment
            .contains("rule r1: status REFUSED with orderCycle OPEN"),
        "{}",
        decisions[0].comment
    );
    assert_eq!(decisions[1].applied_outcome(), Some(Accepted));
    assert_eq!(order.outcome, Some(Accepted));
    // Once the cycle is closed, a failure fails the order.
    let (order, _) = replay(&[Ipn::new("REFUSED").rest("CLOSED", "PAY")]);
    assert_eq!(order.outcome, Some(Failed));
    // An open cycle never holds back a success or a pending status.
    for status in ["AUTHORISED", "AUTHORISED_TO_VALIDATE", "CAPTURE_PENDING"] {
        let (order, _) = replay(&[Ipn::new(status).rest("OPEN", "PAY")]);
        assert!(order.outcome.is_some(), "{status}");
    }
}

#[test]
fn an_unsigned_kr_src_never_cancels_a_paid_order() {
    // kr-src MERCH_BO is outside kr-hash: the origin is unknown.
    let (order, decisions) = replay(&[
        Ipn::new("AUTHORISED").rest("CLOSED", "PAY"),
        Ipn::new("CANCELLED").rest("CLOSED", "MERCH_BO"),
    ]);
    assert_eq!(decisions[1].applied_outcome(), None);
    assert_eq!(order.outcome, Some(Accepted));
    assert!(
        decisions[1]
            .comment
            .contains("kr-src MERCH_BO (not signed)"),
        "{}",
        decisions[1].comment
    );
    // A signed form IPN from the back office still does.
    let (order, _) = replay(&[
        Ipn::new("AUTHORISED").rest("CLOSED", "PAY"),
        Ipn::new("CANCELLED").source("MERCH_BO"),
    ]);
    assert_eq!(order.outcome, Some(Canceled));
}

#[test]
fn capture_pending_is_pending() {
    let (order, decisions) = replay(&[Ipn::new("CAPTURE_PENDING")]);
    assert_eq!(order.outcome, Some(Pending));
    assert!(
        decisions[0].warnings.is_empty(),
        "{:?}",
        decisions[0].warnings
    );
}

#[test]
fn a_test_notification_never_moves_a_production_order() {
    let test = |ipn: Ipn| ipn.with(|_, f| f.ctx_mode = "TEST".into());
    // PRODUCTION put the order in review; a TEST success is ignored, WARN.
    let (order, decisions) = replay(&[
        Ipn::new("AUTHORISED_TO_VALIDATE"),
        test(Ipn::new("AUTHORISED").source("MERCH_BO")),
    ]);
    assert_eq!(order.outcome, Some(Review));
    assert_eq!(order.mode.as_deref(), Some("PRODUCTION"));
    assert_eq!(decisions[1].applied_outcome(), None);
    assert!(
        decisions[1]
            .comment
            .contains("a TEST notification never changes it"),
        "{}",
        decisions[1].comment
    );
    assert!(decisions[1]
        .warnings
        .iter()
        .any(|w| w.contains("TEST notification")));
    // A TEST order is not protected from PRODUCTION: a real payment on a
    // reference a test used first applies, and the order becomes PRODUCTION.
    let (order, decisions) = replay(&[
        test(Ipn::new("AUTHORISED_TO_VALIDATE")),
        Ipn::new("AUTHORISED").source("MERCH_BO"),
        test(Ipn::new("CANCELLED").source("MERCH_BO")),
    ]);
    assert_eq!(decisions[1].applied_outcome(), Some(Accepted));
    assert_eq!(decisions[2].applied_outcome(), None);
    assert_eq!(order.mode.as_deref(), Some("PRODUCTION"));
    // TEST on TEST behaves as ever.
    let (order, _) = replay(&[
        test(Ipn::new("AUTHORISED_TO_VALIDATE")),
        test(Ipn::new("AUTHORISED").source("MERCH_BO")),
    ]);
    assert_eq!(order.outcome, Some(Accepted));
}

#[test]
fn a_risk_rejection_of_a_live_authorisation_says_to_cancel_it() {
    use crate::domain::outcome::live_at_gateway;
    for ipn in [
        Ipn::new("AUTHORISED").analysis("FRD"),
        Ipn::new("AUTHORISED").analysis("RPM"),
        Ipn::new("AUTHORISED").analysis("CAN"),
        Ipn::new("AUTHORISED").assessment("REFUSE"),
        Ipn::new("AUTHORISED_TO_VALIDATE").analysis("FRD"),
    ] {
        assert!(live_at_gateway(&ipn.clone().build()));
        let (_, decisions) = replay(&[Ipn::new("INITIAL"), ipn]);
        let d = &decisions[1];
        assert!(matches!(d.applied_outcome(), Some(Rejected | Canceled)));
        assert!(
            d.comment
                .contains("Action needed: the transaction is still")
                && d.comment.contains("ipnsync review deny 100042"),
            "{}",
            d.comment
        );
        assert!(
            d.warnings.iter().any(|w| w.contains("still")),
            "{:?}",
            d.warnings
        );
    }
    // Nothing alive at the gateway: no such line.
    for ipn in [
        Ipn::new("REFUSED").analysis("FRD"),
        Ipn::new("CANCELLED"),
        Ipn::new("CAPTURED").operation("CREDIT"),
        Ipn::new("AUTHORISED"),
    ] {
        assert!(!live_at_gateway(&ipn.clone().build()));
        let (_, decisions) = replay(&[ipn]);
        assert!(!decisions[0].comment.contains("Action needed"));
    }
}
