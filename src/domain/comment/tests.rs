use proptest::prelude::*;

use super::*;
use crate::domain::outcome::test_support::{apply_decision, Ipn};
use crate::domain::outcome::{
    is_known_assessment, ANALYSIS_CODES, CANCELED_STATUSES, FAILED_STATUSES,
    INFORMATIONAL_ASSESSMENTS, PENDING_STATUSES, SUCCESS_STATUSES, TO_VALIDATE_STATUSES,
};
use crate::domain::{decide, OrderSnapshot, Outcome};

fn comment_on_new_order(ipn: Ipn) -> String {
    decide(&OrderSnapshot::default(), &ipn.build()).comment
}

#[test]
fn to_validate_with_every_kind_of_risk_data() {
    let comment = comment_on_new_order(
        Ipn::new("AUTHORISED_TO_VALIDATE")
            .card("CB", "497010XXXXXX0055")
            .assessment("ENABLE_3DS;MANUAL_VALIDATION")
            .analysis("AMA")
            .control("CARD_FRAUD=OK;SUSPECT_COUNTRY=WARNING"),
    );
    assert_eq!(
        comment,
        "Lyra, payment page: AUTHORISED_TO_VALIDATE (to validate manually).\n\
         Transaction 000042 (id uuid-1), 29.90 EUR, CB 497010XXXXXX0055.\n\
         Risk checks: 3-D Secure requested by risk rules; manual validation required by risk rules; \
         ClearSale: waiting for manual analysis; Risk control CARD_FRAUD: ok; Risk control SUSPECT_COUNTRY: warning.\n\
         Outcome: review (rule d: status AUTHORISED_TO_VALIDATE)."
    );
}

#[test]
fn a_plain_accepted_payment() {
    let comment = comment_on_new_order(
        Ipn::new("CAPTURED")
            .source("BATCH")
            .card("VISA", "497011XXXXXX0210"),
    );
    assert_eq!(
        comment,
        "Lyra, batch update: CAPTURED (captured).\n\
         Transaction 000042 (id uuid-1), 29.90 EUR, VISA 497011XXXXXX0210.\n\
         Outcome: accepted (rule h: status CAPTURED, no risk finding)."
    );
}

#[test]
fn a_refund_in_test_mode_on_a_rest_ipn() {
    let comment = comment_on_new_order(
        Ipn::new("CAPTURED")
            .source("MERCH_BO")
            .operation("CREDIT")
            .transaction("c97b7e6f3dbc4c239baf283654f34710")
            .with(|n, f| {
                n.provider = crate::domain::Provider::LyraRest;
                n.transaction_number = "908733".into();
                n.amount_minor = Some(250);
                n.currency = "EUR".into();
                f.ctx_mode = "TEST".into();
            }),
    );
    assert_eq!(
        comment,
        "Lyra (TEST mode), back-office operation, refund: CAPTURED (captured).\n\
         Transaction 908733 (id c97b7e6f3dbc4c239baf283654f34710), 2.50 EUR.\n\
         Outcome: refunded (rule f: status CAPTURED on a CREDIT operation)."
    );
}

#[test]
fn a_refused_installment_with_an_analyser_error() {
    let comment = comment_on_new_order(
        Ipn::new("REFUSED")
            .source("BATCH_AUTO")
            .analysis("MISSING_MANDATORY_BILLING_ADDRESS_INFO")
            .with(|n, f| {
                f.result = "05".into();
                f.sequence_number = "2".into();
                n.amount_minor = Some(150000);
                n.currency = "152".into();
            }),
    );
    assert_eq!(
        comment,
        "Lyra, deferred authorisation batch: REFUSED (declined), result 05 (refused).\n\
         Transaction 000042 (id uuid-1), installment 2, 150000 CLP.\n\
         Risk checks: Risk analyser error: missing mandatory billing address info (MISSING_MANDATORY_BILLING_ADDRESS_INFO).\n\
         Outcome: failed (rule c: status REFUSED)."
    );
}

#[test]
fn an_ignored_notification_says_why() {
    let mut order = OrderSnapshot::default();
    apply_decision(&mut order, &Ipn::new("AUTHORISED").build());
    let late = apply_decision(&mut order, &Ipn::new("ABANDONED").build());
    assert_eq!(
        late.comment,
        "Lyra, payment page: ABANDONED (abandoned by the buyer).\n\
         Transaction 000042 (id uuid-1), 29.90 EUR.\n\
         Order not changed: order is accepted; ABANDONED (payment page) does not cancel a paid order, \
         only a back-office operation (MERCH_BO) does (notification assessed canceled by rule a: status ABANDONED)."
    );
}

#[test]
fn a_flagged_success_carries_its_note() {
    let mut order = OrderSnapshot::default();
    apply_decision(
        &mut order,
        &Ipn::new("CANCELLED").source("MERCH_BO").build(),
    );
    let flagged = apply_decision(
        &mut order,
        &Ipn::new("AUTHORISED").transaction("uuid-2").build(),
    );
    assert_eq!(
        flagged.comment,
        "Lyra, payment page: AUTHORISED (authorised, waiting for capture).\n\
         Transaction 000042 (id uuid-2), 29.90 EUR.\n\
         Outcome: review, instead of accepted (rule h: status AUTHORISED, no risk finding). \
         Note: order was canceled, but transaction uuid-2 reports a successful payment (AUTHORISED, assessed accepted); \
         set to review so that someone checks whether it is a new payment (reinstate the order or refund the buyer) \
         or a resend of an older one."
    );
}

#[test]
fn unknown_codes_are_shown_as_sent() {
    let comment = comment_on_new_order(
        Ipn::new("NEW_STATUS")
            .source("NEW_SOURCE")
            .assessment("NEW_ACTION")
            .analysis("XYZ")
            .control("NEW_CONTROL=MAYBE;OTHER="),
    );
    assert_eq!(
        comment,
        "Lyra, source NEW_SOURCE: NEW_STATUS (unknown status).\n\
         Transaction 000042 (id uuid-1), 29.90 EUR.\n\
         Risk checks: unknown risk rule action NEW_ACTION; Risk analyser: unknown result XYZ; \
         Risk control NEW_CONTROL: result MAYBE; Risk control OTHER: no result.\n\
         Outcome: pending (rule unknown status NEW_STATUS, kept pending)."
    );
}

#[test]
fn missing_values_are_left_out() {
    let comment = comment_on_new_order(Ipn::new("").source("").with(|n, f| {
        n.transaction_number = String::new();
        n.transaction_id = String::new();
        n.amount_minor = None;
        f.result = String::new();
    }));
    assert_eq!(
        comment,
        "Lyra: no status.\nTransaction unknown.\nOutcome: pending (rule unknown status (none sent), kept pending)."
    );
}

#[test]
fn amounts_are_formatted_for_humans() {
    let cases = [
        (2990, "978", "29.90 EUR"),
        (2990, "EUR", "29.90 EUR"),
        (2990, "eur", "29.90 EUR"),
        (5, "840", "0.05 USD"),
        (100, "826", "1.00 GBP"),
        (123456, "756", "1234.56 CHF"),
        (990, "124", "9.90 CAD"),
        (990, "036", "9.90 AUD"),
        (990, "36", "9.90 AUD"),
        (990, "986", "9.90 BRL"),
        (990, "604", "9.90 PEN"),
        (990, "484", "9.90 MXN"),
        (990, "032", "9.90 ARS"),
        (990, "152", "990 CLP"),
        (990, "170", "9.90 COP"),
        (990, "392", "990 JPY"),
        (990, "953", "990 XPF"),
        (990, "356", "9.90 INR"),
        (-2990, "978", "-29.90 EUR"),
        (0, "978", "0.00 EUR"),
        (i64::MIN, "978", "-92233720368547758.08 EUR"),
        (2990, "999", "2990 minor units of currency 999"),
        (2990, "SEK", "2990 minor units of currency SEK"),
        (2990, "", "2990 minor units (no currency)"),
    ];
    for (minor, code, expected) in cases {
        assert_eq!(format_amount(minor, code), expected, "{minor} {code}");
    }
}

#[test]
fn only_masked_card_numbers_are_printed() {
    for masked in [
        "497010XXXXXX0055",
        "49701012XXXX0055",
        "4970********0055",
        "XXXX",
        "FR76XXXXXXXXXXXX1234",
    ] {
        assert_eq!(looks_masked(masked), !masked.starts_with("FR"), "{masked}");
    }
    for unmasked in [
        "4970101234567890",
        "49701012345XXXX0",
        "4970 1012 3456 7890",
        "4970-1012-3456-7890",
        "4970X1012X3456X7890",
        "497010XXXXXX0055\n",
        "",
    ] {
        assert!(!looks_masked(unmasked), "{unmasked:?}");
    }
    let comment = comment_on_new_order(Ipn::new("AUTHORISED").card("VISA", "4970101234567890"));
    assert!(
        comment.contains("VISA (card number not shown: it is not masked)"),
        "{comment}"
    );
    assert!(!comment.contains("4970101234567890"));
    let comment = comment_on_new_order(Ipn::new("AUTHORISED").card("", "497010XXXXXX0055"));
    assert!(comment.contains(", card 497010XXXXXX0055."), "{comment}");
}

#[test]
fn odd_values_cannot_break_the_layout() {
    let long = "A".repeat(500);
    let comment = comment_on_new_order(
        Ipn::new("AUTHORISED\nOutcome: accepted")
            .analysis(&long)
            .with(|n, _| n.transaction_number = "00\r0042".into()),
    );
    assert_eq!(comment.lines().count(), 4, "{comment}");
    assert!(comment.contains("AUTHORISED Outcome: accepted (unknown status)"));
    assert!(comment.contains("Transaction 00 0042"));
    assert!(comment.contains(&format!(
        "unknown result {}…",
        "A".repeat(MAX_VALUE_CHARS - 1)
    )));
    assert!(!comment.contains(&"A".repeat(MAX_SENTENCE_CHARS)));
}

#[test]
fn every_code_the_rules_know_has_words() {
    let statuses = [
        CANCELED_STATUSES,
        FAILED_STATUSES,
        TO_VALIDATE_STATUSES,
        PENDING_STATUSES,
        SUCCESS_STATUSES,
    ]
    .concat();
    for status in &statuses {
        assert!(lookup(STATUS_WORDS, status).is_some(), "status {status}");
    }
    assert_eq!(
        STATUS_WORDS.len(),
        statuses.len(),
        "a status has words but no rule"
    );
    for (code, _) in ANALYSIS_CODES {
        assert!(lookup(ANALYSIS_WORDS, code).is_some(), "analysis {code}");
    }
    assert_eq!(
        ANALYSIS_WORDS.len(),
        ANALYSIS_CODES.len(),
        "an analysis code has words but no rule"
    );
    for action in INFORMATIONAL_ASSESSMENTS
        .iter()
        .chain(&["REFUSE", "MANUAL_VALIDATION", "INFORM"])
    {
        assert!(
            lookup(ASSESSMENT_WORDS, action).is_some(),
            "assessment {action}"
        );
    }
    assert!(ASSESSMENT_WORDS
        .iter()
        .all(|(action, _)| is_known_assessment(action)));
}

/// `docs/decisions.md` must list exactly what the code does: every word
/// table row, rule-vocabulary row and default shop status appears in it.
#[test]
fn decisions_doc_matches_the_code() {
    let doc = include_str!("../../../docs/decisions.md");
    let word_tables = [
        SOURCE_WORDS,
        STATUS_WORDS,
        ASSESSMENT_WORDS,
        ANALYSIS_WORDS,
        CONTROL_RESULT_WORDS,
        RESULT_WORDS,
    ];
    for (code, words) in word_tables.concat() {
        let row = format!("| `{code}` | {words} |");
        assert!(doc.contains(&row), "docs/decisions.md lacks the row {row}");
    }
    for c in CURRENCIES {
        let row = format!("| {:03} | {} | {} |", c.numeric, c.alpha, c.decimals);
        assert!(doc.contains(&row), "docs/decisions.md lacks the row {row}");
    }
    for (statuses, rule) in [
        (CANCELED_STATUSES, "a"),
        (FAILED_STATUSES, "c"),
        (TO_VALIDATE_STATUSES, "d"),
        (PENDING_STATUSES, "e"),
        (SUCCESS_STATUSES, "f, g, h"),
    ] {
        for status in statuses {
            let row = format!("| `{status}` | {rule} |");
            assert!(doc.contains(&row), "docs/decisions.md lacks the row {row}");
        }
    }
    for (code, class) in ANALYSIS_CODES {
        let row = format!("| `{code}` | {class:?} |");
        assert!(doc.contains(&row), "docs/decisions.md lacks the row {row}");
    }
    use crate::config::{default_statuses, ShopKind};
    let opencart = default_statuses(ShopKind::OpenCart41);
    let openmage = default_statuses(ShopKind::OpenMage);
    assert_eq!(openmage, default_statuses(ShopKind::Magento2));
    for outcome in Outcome::ALL {
        let row = format!(
            "| {outcome} | {} | {} |",
            opencart[&outcome], openmage[&outcome]
        );
        assert!(doc.contains(&row), "docs/decisions.md lacks the row {row}");
    }
}

proptest! {
    /// Property 4: whatever the platform puts in the card number, the
    /// comment never shows a PAN-long run of digits.
    #[test]
    fn no_pan_leaks(card_number in prop_oneof![
        any::<String>(),
        "[0-9]{12,19}",
        "[0-9X* -]{10,30}",
        "[0-9]{6}X{2,6}[0-9]{4,9}",
    ]) {
        let comment = comment_on_new_order(Ipn::new("AUTHORISED").card("VISA", &card_number));
        prop_assert!(longest_digit_run(&comment) < 13, "{}", comment);
    }
}

#[test]
fn printable_borrows_only_what_needs_no_cleaning() {
    use std::borrow::Cow;
    let exact = "A".repeat(MAX_VALUE_CHARS);
    assert!(matches!(printable(&exact, MAX_VALUE_CHARS), Cow::Borrowed(s) if s == exact));
    let over = "A".repeat(MAX_VALUE_CHARS + 1);
    assert_eq!(
        printable(&over, MAX_VALUE_CHARS),
        format!("{}…", "A".repeat(MAX_VALUE_CHARS - 1))
    );
    // DEL and a tab are control characters; é is not ASCII but printable.
    assert_eq!(printable("a\u{7f}b\tc", MAX_VALUE_CHARS), "a b c");
    assert!(matches!(printable("café", MAX_VALUE_CHARS), Cow::Owned(s) if s == "café"));
    // 64 two-byte characters: over 64 bytes, not over 64 characters.
    let accents = "é".repeat(MAX_VALUE_CHARS);
    assert_eq!(printable(&accents, MAX_VALUE_CHARS), accents);
}
