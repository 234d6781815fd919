use super::*;
use crate::domain::outcome::test_support::{
    apply_decision, cmos_update, dm_payload_signed, dm_webhook, dm_with_status,
};
use crate::domain::outcome::without_effect;
use crate::domain::{assess, decide, OrderSnapshot, Verdict};
use Outcome::{Accepted, Canceled, Failed, Pending, Refunded, Rejected, Review};

/// Event type, payment status, reason → outcome (`None`: no effect) and
/// the rule that must have decided.
const WEBHOOK_TABLE: &[(&str, &str, &str, Option<Outcome>, &str)] = &[
    ("risk.profile.decision.review", "", "", Some(Review), "cs5"),
    (
        "risk.profile.decision.review",
        "AUTHORIZED_PENDING_REVIEW",
        "DECISION_PROFILE_REVIEW",
        Some(Review),
        "cs5",
    ),
    (
        "risk.profile.decision.review",
        "PENDING_REVIEW",
        "",
        Some(Review),
        "cs5",
    ),
    (
        "risk.profile.decision.reject",
        "",
        "",
        Some(Rejected),
        "cs4",
    ),
    (
        "risk.profile.decision.reject",
        "AUTHORIZED_RISK_DECLINED",
        "DECISION_PROFILE_REJECT",
        Some(Rejected),
        "cs4",
    ),
    (
        "risk.profile.decision.monitor",
        "",
        "",
        Some(Accepted),
        "cs7",
    ),
    (
        "risk.profile.decision.monitor",
        "AUTHORIZED",
        "",
        Some(Accepted),
        "cs7",
    ),
    // The payment status refines a monitor verdict.
    (
        "risk.profile.decision.monitor",
        "AUTHORIZED_PENDING_REVIEW",
        "",
        Some(Review),
        "cs5",
    ),
    (
        "risk.profile.decision.monitor",
        "PENDING_REVIEW",
        "",
        Some(Review),
        "cs5",
    ),
    (
        "risk.profile.decision.monitor",
        "AUTHORIZED_RISK_DECLINED",
        "",
        Some(Rejected),
        "cs4",
    ),
    (
        "risk.profile.decision.monitor",
        "DECLINED",
        "DECISION_PROFILE_REJECT",
        Some(Rejected),
        "cs4",
    ),
    (
        "risk.profile.decision.monitor",
        "DECLINED",
        "INSUFFICIENT_FUND",
        Some(Failed),
        "cs6",
    ),
    (
        "risk.profile.decision.review",
        "DECLINED",
        "DECISION_PROFILE_REJECT",
        Some(Rejected),
        "cs4",
    ),
    // An analyst's decision is the last word, whatever the payment status.
    (
        "risk.casemanagement.decision.accept",
        "",
        "",
        Some(Accepted),
        "cs2",
    ),
    (
        "risk.casemanagement.decision.accept",
        "AUTHORIZED_PENDING_REVIEW",
        "",
        Some(Accepted),
        "cs2",
    ),
    (
        "risk.casemanagement.decision.reject",
        "",
        "",
        Some(Rejected),
        "cs3",
    ),
    (
        "risk.casemanagement.decision.reject",
        "AUTHORIZED",
        "",
        Some(Rejected),
        "cs3",
    ),
    ("risk.casemanagement.addnote", "", "", None, "cs1"),
    ("risk.casemanagement.addnote", "AUTHORIZED", "", None, "cs1"),
    // Card-processing events (cs9, cs10).
    ("payments.payments.accept", "", "", Some(Accepted), "cs9"),
    (
        "payments.payments.reject",
        "DECLINED",
        "",
        Some(Rejected),
        "cs9",
    ),
    ("payments.reversals.accept", "", "", Some(Canceled), "cs9"),
    ("payments.reversals.reject", "", "", None, "cs10"),
    ("payments.captures.reject", "", "", Some(Failed), "cs9"),
    ("payments.credits.accept", "", "", Some(Refunded), "cs9"),
    ("payments.credits.reject", "", "", None, "cs10"),
    ("payments.payments.updated", "", "", None, "cs10"),
    ("payments.something.new", "", "", None, "cs1"),
    (
        "risk.casemanagement.decision.accept.5m",
        "",
        "",
        None,
        "cs1",
    ),
];

#[test]
fn webhook_table() {
    for (event, status, reason, expected, rule) in WEBHOOK_TABLE {
        let n = dm_with_status(event, status, reason);
        let a = assess(&n);
        assert_eq!(
            a.outcome,
            expected.unwrap_or(Pending),
            "{event} {status} {reason}"
        );
        assert!(
            a.rule.starts_with(rule),
            "{event} {status}: rule {}",
            a.rule
        );
        assert_eq!(
            without_effect(&n).is_some(),
            expected.is_none(),
            "{event} {status}"
        );
    }
}

#[test]
fn cmos_table() {
    for (decision, expected, rule) in [
        ("ACCEPT", Some(Accepted), "cs2"),
        ("REJECT", Some(Rejected), "cs3"),
        ("REVIEW", Some(Review), "cs5"),
        ("", None, "cs1"),
        ("ESCALATE", None, "cs1"),
    ] {
        let n = cmos_update(decision);
        let a = assess(&n);
        assert_eq!(a.outcome, expected.unwrap_or(Pending), "{decision}");
        assert!(a.rule.starts_with(rule), "{decision}: {}", a.rule);
        assert_eq!(without_effect(&n).is_some(), expected.is_none());
    }
}

#[test]
fn unknown_values_warn() {
    let a = assess(&dm_webhook("risk.something.new"));
    assert!(a.warnings[0].contains("unknown Cybersource event risk.something.new"));
    let a = assess(&dm_with_status("risk.profile.decision.review", "FUNNY", ""));
    assert!(a.warnings.iter().any(|w| w.contains("FUNNY")));
    assert!(assess(&cmos_update("ESCALATE")).warnings[0].contains("NewDecision ESCALATE"));
    assert!(assess(&dm_webhook("risk.casemanagement.addnote"))
        .warnings
        .is_empty());
}

#[test]
fn a_note_never_changes_an_order() {
    let note = dm_webhook("risk.casemanagement.addnote");
    for current in [None, Some(Review), Some(Accepted), Some(Rejected)] {
        let snapshot = OrderSnapshot {
            outcome: current,
            transaction_id: current.map(|_| "req-1".to_owned()),
            mode: None,
        };
        let d = decide(&snapshot, &note);
        assert!(
            matches!(&d.verdict, Verdict::Ignore { reason } if reason.contains("changes no order")),
            "{current:?}: {:?}",
            d.verdict
        );
        assert!(d.comment.contains("Order not changed (rule cs1: note only"));
    }
}

#[test]
fn review_then_case_decision_moves_the_order() {
    let mut order = OrderSnapshot::default();
    let review = dm_with_status(
        "risk.profile.decision.review",
        "AUTHORIZED_PENDING_REVIEW",
        "",
    );
    assert_eq!(
        apply_decision(&mut order, &review).applied_outcome(),
        Some(Review)
    );
    let note = dm_webhook("risk.casemanagement.addnote");
    assert_eq!(apply_decision(&mut order, &note).applied_outcome(), None);
    let accept = dm_webhook("risk.casemanagement.decision.accept");
    assert_eq!(
        apply_decision(&mut order, &accept).applied_outcome(),
        Some(Accepted)
    );
    // A late review (a profile retry) never reopens an accepted order.
    assert_eq!(apply_decision(&mut order, &review).applied_outcome(), None);
    // Nor does a late monitor, or a second accept.
    let monitor = dm_with_status("risk.profile.decision.monitor", "AUTHORIZED", "");
    assert_eq!(apply_decision(&mut order, &monitor).applied_outcome(), None);

    let mut rejected = OrderSnapshot::default();
    let reject = dm_webhook("risk.casemanagement.decision.reject");
    apply_decision(&mut rejected, &review);
    assert_eq!(
        apply_decision(&mut rejected, &reject).applied_outcome(),
        Some(Rejected)
    );
    assert_eq!(
        apply_decision(&mut rejected, &accept).applied_outcome(),
        None,
        "final"
    );
}

#[test]
fn a_payment_on_another_request_of_a_final_order_goes_to_review() {
    let mut order = OrderSnapshot::default();
    apply_decision(&mut order, &dm_webhook("risk.profile.decision.reject"));
    let mut other = dm_with_status("risk.profile.decision.monitor", "AUTHORIZED", "");
    other.transaction_id = "req-2".into();
    let d = apply_decision(&mut order, &other);
    assert_eq!(d.applied_outcome(), Some(Review));
    assert!(matches!(d.verdict, Verdict::Apply { note: Some(_), .. }));
}

/// Signed over the payload only: event type, payment status, reason →
/// outcome and rule. The event type alone never accepts or rejects.
const PAYLOAD_SIGNED_TABLE: &[(&str, &str, &str, Option<Outcome>, &str)] = &[
    // No decision in the signed payload: held for review.
    (
        "risk.casemanagement.decision.accept",
        "",
        "",
        Some(Review),
        "cs8",
    ),
    (
        "risk.casemanagement.decision.reject",
        "",
        "",
        Some(Review),
        "cs8",
    ),
    ("risk.profile.decision.reject", "", "", Some(Review), "cs8"),
    ("risk.profile.decision.monitor", "", "", Some(Review), "cs8"),
    // The signed status says the same: the rule stands.
    (
        "risk.casemanagement.decision.accept",
        "AUTHORIZED",
        "",
        Some(Accepted),
        "cs2",
    ),
    (
        "risk.casemanagement.decision.reject",
        "AUTHORIZED_RISK_DECLINED",
        "",
        Some(Rejected),
        "cs3",
    ),
    (
        "risk.profile.decision.reject",
        "AUTHORIZED_RISK_DECLINED",
        "DECISION_PROFILE_REJECT",
        Some(Rejected),
        "cs4",
    ),
    (
        "risk.profile.decision.reject",
        "DECLINED",
        "DECISION_PROFILE_REJECT",
        Some(Rejected),
        "cs4",
    ),
    (
        "risk.profile.decision.monitor",
        "AUTHORIZED",
        "",
        Some(Accepted),
        "cs7",
    ),
    (
        "risk.profile.decision.monitor",
        "DECLINED",
        "INSUFFICIENT_FUND",
        Some(Failed),
        "cs6",
    ),
    // A captured review turned into an accept or a reject: the signed status
    // says review.
    (
        "risk.casemanagement.decision.accept",
        "AUTHORIZED_PENDING_REVIEW",
        "DECISION_PROFILE_REVIEW",
        Some(Review),
        "cs8",
    ),
    (
        "risk.casemanagement.decision.reject",
        "AUTHORIZED_PENDING_REVIEW",
        "",
        Some(Review),
        "cs8",
    ),
    // A captured monitor (went through) turned into a reject, and back.
    (
        "risk.casemanagement.decision.reject",
        "AUTHORIZED",
        "",
        Some(Review),
        "cs8",
    ),
    (
        "risk.casemanagement.decision.accept",
        "AUTHORIZED_RISK_DECLINED",
        "",
        Some(Review),
        "cs8",
    ),
    // A review changes nothing the status would not: no check needed.
    ("risk.profile.decision.review", "", "", Some(Review), "cs5"),
    // Notes and unknown events still change nothing.
    ("risk.casemanagement.addnote", "", "", None, "cs1"),
    ("payments.something.new", "", "", None, "cs1"),
    // Card-processing events: the same rule.
    ("payments.payments.accept", "", "", Some(Review), "cs8"),
    (
        "payments.payments.accept",
        "AUTHORIZED",
        "",
        Some(Accepted),
        "cs9",
    ),
    (
        "payments.payments.accept",
        "DECLINED",
        "",
        Some(Review),
        "cs8",
    ),
    (
        "payments.payments.reject",
        "DECLINED",
        "",
        Some(Rejected),
        "cs9",
    ),
    (
        "payments.payments.reject",
        "AUTHORIZED",
        "",
        Some(Review),
        "cs8",
    ),
    (
        "payments.reversals.accept",
        "REVERSED",
        "",
        Some(Canceled),
        "cs9",
    ),
    (
        "payments.reversals.accept",
        "AUTHORIZED",
        "",
        Some(Review),
        "cs8",
    ),
    (
        "payments.captures.accept",
        "PENDING",
        "",
        Some(Review),
        "cs8",
    ),
    (
        "payments.credits.accept",
        "PENDING",
        "",
        Some(Review),
        "cs8",
    ),
    ("payments.payments.review", "", "", Some(Review), "cs9"),
];

#[test]
fn an_unsigned_event_type_alone_never_accepts_or_rejects() {
    for (event, status, reason, expected, rule) in PAYLOAD_SIGNED_TABLE {
        let n = dm_payload_signed(event, status, reason);
        let a = assess(&n);
        assert_eq!(
            a.outcome,
            expected.unwrap_or(Pending),
            "{event} {status} {reason}"
        );
        assert!(
            a.rule.starts_with(rule),
            "{event} {status}: rule {}",
            a.rule
        );
        assert_eq!(
            without_effect(&n).is_some(),
            expected.is_none(),
            "{event} {status}"
        );
        let warned = a
            .warnings
            .iter()
            .any(|w| w.contains("not covered by the signature"));
        assert_eq!(warned, *rule == "cs8", "{event} {status}: {:?}", a.warnings);
        if *rule == "cs8" {
            assert!(
                a.rule.contains("not covered by the signature"),
                "{}",
                a.rule
            );
        }
    }
}

#[test]
fn a_tampered_event_type_does_not_move_a_held_order() {
    let mut order = OrderSnapshot::default();
    let review = dm_payload_signed(
        "risk.profile.decision.review",
        "AUTHORIZED_PENDING_REVIEW",
        "DECISION_PROFILE_REVIEW",
    );
    assert_eq!(
        apply_decision(&mut order, &review).applied_outcome(),
        Some(Review)
    );
    // The same signed payload, with eventType rewritten.
    for event in [
        "risk.casemanagement.decision.accept",
        "risk.casemanagement.decision.reject",
        "risk.profile.decision.monitor",
        "risk.profile.decision.reject",
    ] {
        let forged = dm_payload_signed(event, "", "");
        let d = apply_decision(&mut order, &forged);
        assert_ne!(d.applied_outcome(), Some(Accepted), "{event}");
        assert_ne!(d.applied_outcome(), Some(Rejected), "{event}");
        assert!(
            d.comment.contains("not covered by the signature"),
            "{event}: {}",
            d.comment
        );
    }
    assert_eq!(order.outcome, Some(Review));
    // An unsigned accept is not news of a payment on a final order either.
    let mut rejected = OrderSnapshot::default();
    apply_decision(&mut rejected, &dm_webhook("risk.profile.decision.reject"));
    let mut other = dm_payload_signed("risk.casemanagement.decision.accept", "", "");
    other.transaction_id = "req-2".into();
    assert_eq!(
        apply_decision(&mut rejected, &other).applied_outcome(),
        None
    );
}

/// cs8 with confirmation: which unsigned event types are held for the
/// gateway (their claim), and which stay with cs8 as before.
#[test]
fn an_unsigned_event_type_without_a_signed_status_is_a_claim_to_confirm() {
    let claimed = |n: &Notification| unsigned_claim(n).map(|c| assess(&c).outcome);
    for (event, status, want) in [
        ("risk.casemanagement.decision.accept", "", Some(Accepted)),
        ("risk.casemanagement.decision.reject", "", Some(Rejected)),
        ("payments.payments.accept", "", Some(Accepted)),
        ("payments.payments.accept", "PENDING", Some(Accepted)),
        // A claimed review is what cs8 does anyway: nothing to confirm.
        ("risk.profile.decision.review", "", None),
        // A signed status speaks: cs8 decides as before.
        ("risk.casemanagement.decision.accept", "AUTHORIZED", None),
        ("risk.casemanagement.decision.accept", "DECLINED", None),
        ("risk.casemanagement.addnote", "", None),
    ] {
        let n = dm_payload_signed(event, status, "");
        assert_eq!(claimed(&n), want, "{event} {status}");
    }
    // Signed over the whole body: not a claim, the rules decide.
    assert_eq!(
        unsigned_claim(&dm_webhook("risk.casemanagement.decision.accept")),
        None
    );
}

#[test]
fn the_gateway_state_decides_never_the_unsigned_event_type() {
    let case_accept = dm_payload_signed("risk.casemanagement.decision.accept", "", "");
    let card_accept = dm_payload_signed("payments.payments.accept", "", "");
    for (stored, status, reason, want) in [
        (&case_accept, "AUTHORIZED", "", Some(Accepted)),
        (&case_accept, "AUTHORIZED_RISK_DECLINED", "", Some(Rejected)),
        (&case_accept, "PENDING_REVIEW", "", Some(Review)),
        (&case_accept, "REVERSED", "", Some(Canceled)),
        (&case_accept, "PENDING", "", None),
        (&case_accept, "SOMETHING_NEW", "", None),
        (&card_accept, "AUTHORIZED", "", Some(Accepted)),
        (&card_accept, "DECLINED", "", Some(Rejected)),
        (&card_accept, "AUTHORIZED_PENDING_REVIEW", "", Some(Review)),
        // Decision Manager's accept alone confirms a risk claim, never a
        // payment one: it says nothing about the funds.
        (&case_accept, "ACCEPTED", "", Some(Accepted)),
        (&card_accept, "ACCEPTED", "", None),
    ] {
        let got = from_gateway_state(stored, status, reason).map(|n| assess(&n).outcome);
        assert_eq!(got, want, "{status}");
    }
}
