//! Properties of the state machine over random notification sequences.

use proptest::prelude::*;

use super::*;

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
    /// What intake computes off the writer for a new order
    /// (`Prepared::decide_new_order`) is exactly what the writer would
    /// decide on an order without a row.
    #[test]
    fn the_new_order_decision_is_the_decision_on_no_order(ipn in any_ipn(&["uuid-1", "uuid-2"])) {
        let n = ipn.build();
        let prepared = crate::domain::Prepared::of(&n);
        prop_assert_eq!(prepared.decide_new_order(&n), decide(&OrderSnapshot::default(), &n));
    }

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
