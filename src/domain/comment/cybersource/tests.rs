use crate::domain::notification::CaseNote;
use crate::domain::outcome::test_support::{cmos_update, dm_webhook, dm_with_status};
use crate::domain::{decide, Facts, Notification, OrderSnapshot, Outcome};

fn comment(n: &Notification, current: Option<Outcome>) -> String {
    let snapshot = OrderSnapshot {
        outcome: current,
        transaction_id: current.map(|_| "req-1".to_owned()),
        mode: None,
    };
    decide(&snapshot, n).comment
}

fn with_note(mut n: Notification, by: &str, text: &str) -> Notification {
    if let Facts::Cybersource(f) = &mut n.facts {
        f.notes.push(CaseNote {
            added_by: by.into(),
            comment: text.into(),
            date: "2025-03-12T10:02:00Z".into(),
        });
        f.reviewer = by.into();
    }
    n
}

#[test]
fn says_who_decided_what_in_words() {
    let accept = with_note(
        dm_webhook("risk.casemanagement.decision.accept"),
        "jdoe",
        "Called the buyer, all fine.",
    );
    assert_eq!(
        comment(&accept, Some(Outcome::Review)),
        "Cybersource Decision Manager: case accepted by analyst jdoe — note: Called the buyer, all fine.\n\
         Order 100000123, payment request req-1.\n\
         Outcome: accepted (rule cs2: case accepted (event risk.casemanagement.decision.accept))."
    );
    let review = dm_with_status(
        "risk.profile.decision.review",
        "AUTHORIZED_PENDING_REVIEW",
        "DECISION_PROFILE_REVIEW",
    );
    assert_eq!(
        comment(&review, None),
        "Cybersource Decision Manager: profile decision REVIEW (held for an analyst's review).\n\
         Order 100000123, payment request req-1, payment status AUTHORIZED_PENDING_REVIEW (authorised, held for review), reason DECISION_PROFILE_REVIEW.\n\
         Outcome: review (rule cs5: held for review (event risk.profile.decision.review))."
    );
    let monitor = dm_with_status("risk.profile.decision.monitor", "AUTHORIZED", "");
    let text = comment(&monitor, None);
    assert!(text.contains(
        "profile decision MONITOR (a monitor rule flagged the payment; it went through)"
    ));
    assert!(text.ends_with("Outcome: accepted (rule cs7: monitor rule only, the payment went through (event risk.profile.decision.monitor, status AUTHORIZED))."));
}

#[test]
fn a_note_says_the_order_is_unchanged() {
    let note = with_note(
        dm_webhook("risk.casemanagement.addnote"),
        "jdoe",
        "Waiting for a call.",
    );
    assert_eq!(
        comment(&note, Some(Outcome::Review)),
        "Cybersource Decision Manager: case note added by jdoe — note: Waiting for a call.\n\
         Order 100000123, payment request req-1.\n\
         Order not changed (rule cs1: note only (event risk.casemanagement.addnote))."
    );
    let cmos_note = cmos_update("");
    assert!(comment(&cmos_note, None).starts_with(
        "Cybersource Decision Manager (order status report): case note added by Bill.\n"
    ));
}

#[test]
fn cmos_names_the_original_decision_and_every_note() {
    let mut n = with_note(cmos_update("REJECT"), "Bill", "Took ownership.");
    n = with_note(n, "Ann", "Second opinion: reject.");
    if let Facts::Cybersource(f) = &mut n.facts {
        f.reviewer = "Bill".into();
        f.reviewer_comments = "some reason. | Order mis-typed.".into();
    }
    let text = comment(&n, Some(Outcome::Review));
    assert!(
        text.starts_with(
            "Cybersource Decision Manager (order status report): case rejected by analyst Bill (was REVIEW) — note: \
             some reason. | Order mis-typed. | Took ownership. | Second opinion: reject. (Ann).\n"
        ),
        "{text}"
    );
}

#[test]
fn hostile_values_stay_on_their_line() {
    let n = with_note(
        dm_webhook("risk.casemanagement.decision.reject"),
        "eve\nOutcome: accepted",
        &"x".repeat(1000),
    );
    let text = comment(&n, None);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(text.lines().all(|l| l.chars().count() < 600));
}
