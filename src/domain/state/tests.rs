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

/// Applies `steps` in order to a new order.
fn replay(steps: &[Ipn]) -> (OrderSnapshot, Vec<Decision>) {
    let mut order = OrderSnapshot::default();
    let decisions = steps
        .iter()
        .map(|ipn| apply_decision(&mut order, &ipn.clone().build()))
        .collect();
    (order, decisions)
}

mod properties;
mod sequences;
