use proptest::prelude::*;

use super::*;
use crate::domain::outcome::test_support::{apply_decision, Ipn};
use crate::domain::outcome::{
    CANCELED_STATUSES, FAILED_STATUSES, PENDING_STATUSES, SUCCESS_STATUSES, TO_VALIDATE_STATUSES,
};
use crate::domain::{assess, decide, Decision};
use Outcome::{Accepted, Canceled, Failed, Pending, Refunded, Rejected, Review, SuspectedFraud};

/// The order's current transaction in every table row; `other()` is another.
const PAYING: &str = "uuid-1";

fn other(ipn: Ipn) -> Ipn {
    ipn.transaction("uuid-2")
}

#[derive(Debug)]
enum Expect {
    Apply(Outcome),
    /// Applied as review with a note.
    Flagged,
    /// Ignored, the reason containing this text.
    Ignore(&'static str),
}

fn snapshot(outcome: Option<Outcome>) -> OrderSnapshot {
    OrderSnapshot {
        outcome,
        transaction_id: outcome.map(|_| PAYING.to_owned()),
        mode: None,
    }
}

fn check(rows: Vec<(Option<Outcome>, Ipn, Expect)>) {
    for (current, ipn, expect) in rows {
        let n = ipn.build();
        let assessed = assess(&n).outcome;
        let verdict = transition(&snapshot(current), &n, assessed);
        let what = format!(
            "{current:?} + {} ({assessed}) from {} on {}",
            n.status(),
            n.origin(),
            n.transaction_id
        );
        match (&expect, &verdict) {
            (
                Expect::Apply(want),
                Verdict::Apply {
                    outcome,
                    note: None,
                },
            ) => assert_eq!(outcome, want, "{what}"),
            (
                Expect::Flagged,
                Verdict::Apply {
                    outcome,
                    note: Some(_),
                },
            ) => assert_eq!(*outcome, Review, "{what}"),
            (Expect::Ignore(text), Verdict::Ignore { reason }) => {
                assert!(
                    reason.contains(text),
                    "{what}: reason {reason:?} lacks {text:?}"
                )
            }
            _ => panic!("{what}: expected {expect:?}, got {verdict:?}"),
        }
    }
}

#[test]
fn a_new_order_takes_any_outcome() {
    check(vec![
        (None, Ipn::new("INITIAL"), Expect::Apply(Pending)),
        (
            None,
            Ipn::new("AUTHORISED_TO_VALIDATE"),
            Expect::Apply(Review),
        ),
        (
            None,
            Ipn::new("AUTHORISED").assessment("INFORM"),
            Expect::Apply(SuspectedFraud),
        ),
        (None, Ipn::new("AUTHORISED"), Expect::Apply(Accepted)),
        (
            None,
            Ipn::new("AUTHORISED").analysis("FRD"),
            Expect::Apply(Rejected),
        ),
        (None, Ipn::new("REFUSED"), Expect::Apply(Failed)),
        (None, Ipn::new("ABANDONED"), Expect::Apply(Canceled)),
        (
            None,
            Ipn::new("CAPTURED").operation("CREDIT"),
            Expect::Apply(Refunded),
        ),
    ]);
}

#[test]
fn an_open_order_takes_any_other_outcome() {
    let mut rows = Vec::new();
    for current in [Pending, Review, SuspectedFraud] {
        rows.extend([
            (
                Some(current),
                other(Ipn::new("AUTHORISED")),
                Expect::Apply(Accepted),
            ),
            (
                Some(current),
                Ipn::new("ABANDONED"),
                Expect::Apply(Canceled),
            ),
            (Some(current), Ipn::new("EXPIRED"), Expect::Apply(Failed)),
            (
                Some(current),
                Ipn::new("AUTHORISED").analysis("RPA"),
                Expect::Apply(Rejected),
            ),
            (
                Some(current),
                Ipn::new("CAPTURED").operation("CREDIT"),
                Expect::Apply(Refunded),
            ),
        ]);
    }
    rows.extend([
        (Some(Review), Ipn::new("INITIAL"), Expect::Apply(Pending)),
        (
            Some(Pending),
            Ipn::new("AUTHORISED").analysis("ERR"),
            Expect::Apply(SuspectedFraud),
        ),
        (
            Some(SuspectedFraud),
            Ipn::new("AUTHORISED").analysis("AMA"),
            Expect::Apply(Review),
        ),
        (
            Some(Pending),
            Ipn::new("WAITING_AUTHORISATION"),
            Expect::Ignore("order is already pending"),
        ),
        (
            Some(Review),
            other(Ipn::new("AUTHORISED_TO_VALIDATE")),
            Expect::Ignore("order is already review"),
        ),
    ]);
    check(rows);
}

#[test]
fn a_paid_order_moves_only_for_news_that_undoes_the_payment() {
    let accepted = Some(Accepted);
    check(vec![
        (
            accepted,
            Ipn::new("AUTHORISED").analysis("FRD").source("BATCH"),
            Expect::Apply(Rejected),
        ),
        (
            accepted,
            Ipn::new("CAPTURE_FAILED").source("BATCH"),
            Expect::Apply(Failed),
        ),
        (
            accepted,
            Ipn::new("CANCELLED").source("MERCH_BO"),
            Expect::Apply(Canceled),
        ),
        (
            accepted,
            other(Ipn::new("CAPTURED").operation("CREDIT").source("MERCH_BO")),
            Expect::Apply(Refunded),
        ),
        (
            accepted,
            Ipn::new("CANCELLED").source("PAY"),
            Expect::Ignore("CANCELLED (payment page) does not cancel"),
        ),
        (
            accepted,
            Ipn::new("ABANDONED").source("PAY"),
            Expect::Ignore("only a back-office operation"),
        ),
        (
            accepted,
            Ipn::new("CANCELLED").source("BO"),
            Expect::Ignore("manual resend from back office"),
        ),
        (
            accepted,
            Ipn::new("CANCELLED").source(""),
            Expect::Ignore("no source given"),
        ),
        (
            accepted,
            other(Ipn::new("CANCELLED").source("MERCH_BO")),
            Expect::Ignore("does not undo that payment"),
        ),
        (
            accepted,
            other(Ipn::new("REFUSED")),
            Expect::Ignore("failed on transaction uuid-2 does not undo"),
        ),
        (
            accepted,
            other(Ipn::new("AUTHORISED").assessment("REFUSE")),
            Expect::Ignore("does not undo that payment"),
        ),
        (
            accepted,
            Ipn::new("AUTHORISED_TO_VALIDATE"),
            Expect::Ignore("does not undo an accepted payment"),
        ),
        (
            accepted,
            Ipn::new("INITIAL"),
            Expect::Ignore("a pending notification (INITIAL)"),
        ),
        (
            accepted,
            Ipn::new("AUTHORISED").assessment("INFORM"),
            Expect::Ignore("does not undo an accepted payment"),
        ),
        (
            accepted,
            Ipn::new("CAPTURED"),
            Expect::Ignore("order is already accepted"),
        ),
        (
            accepted,
            other(Ipn::new("AUTHORISED")),
            Expect::Ignore("order is already accepted"),
        ),
    ]);
}

#[test]
fn a_final_order_never_moves_but_flags_a_new_success() {
    let mut rows = Vec::new();
    for current in [Rejected, Failed, Canceled, Refunded] {
        rows.extend([
            (
                Some(current),
                other(Ipn::new("AUTHORISED")),
                Expect::Flagged,
            ),
            (
                Some(current),
                other(Ipn::new("CAPTURED").assessment("INFORM")),
                Expect::Flagged,
            ),
            (
                Some(current),
                other(Ipn::new("AUTHORISED").analysis("AMA")),
                Expect::Flagged,
            ),
            (
                Some(current),
                other(Ipn::new("PARTIALLY_AUTHORISED")),
                Expect::Flagged,
            ),
            (
                Some(current),
                Ipn::new("AUTHORISED"),
                Expect::Ignore("which is final"),
            ),
            (
                Some(current),
                Ipn::new("INITIAL"),
                Expect::Ignore("which is final"),
            ),
            // Money not yet taken: nothing to flag.
            (
                Some(current),
                other(Ipn::new("AUTHORISED_TO_VALIDATE")),
                Expect::Ignore("which is final"),
            ),
            (
                Some(current),
                other(Ipn::new("WAITING_AUTHORISATION")),
                Expect::Ignore("which is final"),
            ),
        ]);
    }
    rows.extend([
        (
            Some(Canceled),
            other(Ipn::new("CAPTURED").operation("CREDIT")),
            Expect::Ignore("which is final"),
        ),
        (
            Some(Canceled),
            other(Ipn::new("REFUSED")),
            Expect::Ignore("order is canceled, which is final"),
        ),
        (
            Some(Refunded),
            other(Ipn::new("CAPTURED").operation("CREDIT")),
            Expect::Ignore("order is already refunded"),
        ),
        (
            Some(Canceled),
            Ipn::new("CANCELLED").source("MERCH_BO"),
            Expect::Ignore("order is already canceled"),
        ),
    ]);
    check(rows);
}

#[test]
fn the_flag_note_says_why() {
    let n = other(Ipn::new("AUTHORISED")).build();
    let verdict = transition(&snapshot(Some(Canceled)), &n, Accepted);
    assert_eq!(
        verdict,
        Verdict::Apply {
            outcome: Review,
            note: Some(
                "order was canceled, but transaction uuid-2 reports a successful payment (AUTHORISED, assessed accepted); \
                 set to review so that someone checks whether it is a new payment (reinstate the order or refund the buyer) \
                 or a resend of an older one"
                    .into()
            ),
        }
    );
}

#[test]
fn an_order_without_a_known_transaction_still_flags_a_success() {
    let current = OrderSnapshot {
        outcome: Some(Failed),
        transaction_id: None,
        mode: None,
    };
    let verdict = transition(&current, &Ipn::new("AUTHORISED").build(), Accepted);
    assert!(matches!(
        verdict,
        Verdict::Apply {
            outcome: Review,
            note: Some(_)
        }
    ));
}

// ----------------------------------------------------- sequences on one order

fn replay(steps: &[Ipn]) -> (OrderSnapshot, Vec<Decision>) {
    let mut order = OrderSnapshot::default();
    let decisions = steps
        .iter()
        .map(|ipn| apply_decision(&mut order, &ipn.clone().build()))
        .collect();
    (order, decisions)
}

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

// ------------------------------------------------------------------- properties

fn any_status() -> impl Strategy<Value = String> {
    let known = [
        CANCELED_STATUSES,
        FAILED_STATUSES,
        TO_VALIDATE_STATUSES,
        PENDING_STATUSES,
        SUCCESS_STATUSES,
        &["BRAND_NEW_STATUS"],
    ]
    .concat();
    proptest::sample::select(known).prop_map(str::to_owned)
}

/// A notification about one order, from a small pool of realistic values so
/// that replays hit every branch of the machine.
fn any_ipn(transactions: &'static [&'static str]) -> impl Strategy<Value = Ipn> {
    (
        any_status(),
        proptest::sample::select(&["PAY", "BO", "MERCH_BO", "BATCH", "RETRY"][..]),
        proptest::sample::select(transactions),
        proptest::sample::select(&["", "APA", "AMA", "FRD", "CAN", "ERR", "XYZ"][..]),
        proptest::sample::select(&["", "INFORM", "REFUSE", "MANUAL_VALIDATION", "ENABLE_3DS"][..]),
        proptest::sample::select(&["DEBIT", "CREDIT"][..]),
    )
        .prop_map(
            |(status, source, transaction, analysis, assessment, operation)| {
                Ipn::new(&status)
                    .source(source)
                    .transaction(transaction)
                    .analysis(analysis)
                    .assessment(assessment)
                    .operation(operation)
            },
        )
}

proptest! {
    /// Property 1: replaying the same (shuffled) list twice gives the same
    /// decisions and the same final order.
    #[test]
    fn replay_is_deterministic(
        steps in prop::collection::vec(any_ipn(&["uuid-1", "uuid-2", "uuid-3"]), 1..12).prop_shuffle()
    ) {
        let (first_order, first) = replay(&steps);
        let (second_order, second) = replay(&steps);
        prop_assert_eq!(first_order, second_order);
        prop_assert_eq!(first, second);
    }

    /// Property 2: once final, no notification on the same transaction moves
    /// the order.
    #[test]
    fn a_final_order_stays_put_on_its_transaction(
        start in proptest::sample::select(&[Rejected, Failed, Canceled, Refunded][..]),
        steps in prop::collection::vec(any_ipn(&[PAYING]), 1..12),
    ) {
        let mut order = snapshot(Some(start));
        for ipn in steps {
            let decision = apply_decision(&mut order, &ipn.build());
            prop_assert!(decision.applied_outcome().is_none(), "{:?}", decision);
        }
        prop_assert_eq!(order, snapshot(Some(start)));
    }

    /// Whatever arrives, the order ends in an outcome the machine allows:
    /// an applied move out of a final state is always a flagged review.
    #[test]
    fn leaving_a_final_state_is_always_flagged(
        steps in prop::collection::vec(any_ipn(&["uuid-1", "uuid-2"]), 1..12)
    ) {
        let mut order = OrderSnapshot::default();
        for ipn in steps {
            let before = order.outcome;
            let decision = decide(&order, &ipn.clone().build());
            if before.is_some_and(Outcome::is_final) {
                if let Verdict::Apply { outcome, note } = &decision.verdict {
                    prop_assert_eq!(*outcome, Review);
                    prop_assert!(note.is_some());
                }
            }
            apply_decision(&mut order, &ipn.build());
        }
    }
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
