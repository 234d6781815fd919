use proptest::prelude::*;

use super::test_support::Ipn;
use super::*;
use crate::domain::{LyraFacts, Provider};

/// One row: the notification's fields (wire form) → outcome and the letter
/// of the rule that must have decided it (`?` = the unknown-status fallback).
struct Row {
    status: &'static str,
    operation: &'static str,
    assessment: &'static str,
    analysis: &'static str,
    control: &'static str,
    outcome: Outcome,
    rule: char,
}

const fn row(status: &'static str, outcome: Outcome, rule: char) -> Row {
    Row {
        status,
        operation: "DEBIT",
        assessment: "",
        analysis: "",
        control: "",
        outcome,
        rule,
    }
}

const fn credit(status: &'static str, outcome: Outcome, rule: char) -> Row {
    Row {
        operation: "CREDIT",
        ..row(status, outcome, rule)
    }
}

const fn assessment(status: &'static str, list: &'static str, outcome: Outcome, rule: char) -> Row {
    Row {
        assessment: list,
        ..row(status, outcome, rule)
    }
}

const fn analysis(status: &'static str, code: &'static str, outcome: Outcome, rule: char) -> Row {
    Row {
        analysis: code,
        ..row(status, outcome, rule)
    }
}

const fn control(status: &'static str, pairs: &'static str, outcome: Outcome, rule: char) -> Row {
    Row {
        control: pairs,
        ..row(status, outcome, rule)
    }
}

use Outcome::{Accepted, Canceled, Failed, Pending, Refunded, Rejected, Review, SuspectedFraud};

const STATUS_ROWS: &[Row] = &[
    row("ABANDONED", Canceled, 'a'),
    row("NOT_CREATED", Canceled, 'a'),
    row("CANCELLED", Canceled, 'a'),
    row("REFUSED", Failed, 'c'),
    row("EXPIRED", Failed, 'c'),
    row("CAPTURE_FAILED", Failed, 'c'),
    row("AUTHORISED_TO_VALIDATE", Review, 'd'),
    row("WAITING_AUTHORISATION_TO_VALIDATE", Review, 'd'),
    row("INITIAL", Pending, 'e'),
    row("WAITING_AUTHORISATION", Pending, 'e'),
    row("UNDER_VERIFICATION", Pending, 'e'),
    row("SUSPENDED", Pending, 'e'),
    row("PRE_AUTHORISED", Pending, 'e'),
    row("WAITING_FOR_PAYMENT", Pending, 'e'),
    row("PENDING", Pending, 'e'),
    row("REFUND_TO_RETRY", Pending, 'e'),
    row("CAPTURE_PENDING", Pending, 'e'),
    row("AUTHORISED", Accepted, 'h'),
    row("CAPTURED", Accepted, 'h'),
    row("ACCEPTED", Accepted, 'h'),
    row("PARTIALLY_AUTHORISED", Accepted, 'h'),
    row("BRAND_NEW_STATUS", Pending, '?'),
    row("authorised", Pending, '?'),
    row("", Pending, '?'),
    // Refunds: a success on a CREDIT operation; anything else keeps its rule.
    credit("CAPTURED", Refunded, 'f'),
    credit("AUTHORISED", Refunded, 'f'),
    credit("ACCEPTED", Refunded, 'f'),
    credit("PARTIALLY_AUTHORISED", Refunded, 'f'),
    credit("REFUSED", Failed, 'c'),
    credit("CANCELLED", Canceled, 'a'),
    credit("UNDER_VERIFICATION", Pending, 'e'),
    credit("REFUND_TO_RETRY", Pending, 'e'),
];

const ASSESSMENT_ROWS: &[Row] = &[
    assessment("AUTHORISED", "ENABLE_3DS", Accepted, 'h'),
    assessment("AUTHORISED", "DISABLE_3DS", Accepted, 'h'),
    assessment("AUTHORISED", "NO_PREFERENCE", Accepted, 'h'),
    assessment("AUTHORISED", "NO_CHALLENGE_REQUESTED", Accepted, 'h'),
    assessment("AUTHORISED", "CHALLENGE_REQUESTED", Accepted, 'h'),
    assessment("AUTHORISED", "CHALLENGE_MANDATE", Accepted, 'h'),
    assessment("AUTHORISED", "RUN_RISK_ANALYSIS", Accepted, 'h'),
    // g0 ('0'): a success status after manual validation means someone validated it.
    assessment("AUTHORISED", "MANUAL_VALIDATION", Accepted, '0'),
    assessment("CAPTURED", "MANUAL_VALIDATION", Accepted, '0'),
    assessment("AUTHORISED", "INFORM", SuspectedFraud, 'g'),
    assessment("CAPTURED", "INFORM", SuspectedFraud, 'g'),
    assessment("AUTHORISED", "REFUSE", Rejected, 'b'),
    assessment("AUTHORISED", "ENABLE_3DS;MANUAL_VALIDATION", Accepted, '0'),
    assessment(
        "AUTHORISED_TO_VALIDATE",
        "ENABLE_3DS;MANUAL_VALIDATION",
        Review,
        'd',
    ),
    assessment(
        "AUTHORISED",
        "CHALLENGE_REQUESTED;INFORM",
        SuspectedFraud,
        'g',
    ),
    assessment("AUTHORISED", "INFORM;MANUAL_VALIDATION", Accepted, '0'),
    assessment("AUTHORISED", "MANUAL_VALIDATION;REFUSE", Rejected, 'b'),
    assessment(
        "AUTHORISED",
        "RUN_RISK_ANALYSIS;INFORM;ENABLE_3DS",
        SuspectedFraud,
        'g',
    ),
    assessment("AUTHORISED", "SOMETHING_NEW", Accepted, 'h'),
    assessment("REFUSED", "REFUSE", Rejected, 'b'),
    assessment("REFUSED", "MANUAL_VALIDATION", Failed, 'c'),
    assessment("ABANDONED", "REFUSE", Canceled, 'a'),
    assessment("INITIAL", "INFORM", Pending, 'e'),
    assessment("INITIAL", "MANUAL_VALIDATION", Review, 'd'),
    // An unknown status still obeys the risk rules checked before it.
    assessment("BRAND_NEW_STATUS", "REFUSE", Rejected, 'b'),
    assessment("BRAND_NEW_STATUS", "MANUAL_VALIDATION", Review, 'd'),
    assessment("BRAND_NEW_STATUS", "INFORM", Pending, '?'),
    assessment("BRAND_NEW_STATUS", "ENABLE_3DS", Pending, '?'),
];

const ANALYSIS_ROWS: &[Row] = &[
    analysis("AUTHORISED", "APA", Accepted, 'h'),
    analysis("AUTHORISED", "APM", Accepted, 'h'),
    analysis("AUTHORISED", "APP", Accepted, 'h'),
    analysis("AUTHORISED", "ACCEPT", Accepted, 'h'),
    analysis("AUTHORISED", "APPROVE", Accepted, 'h'),
    analysis("CAPTURED", " APA ", Accepted, 'h'),
    analysis("AUTHORISED", "RPM", Rejected, 'b'),
    analysis("AUTHORISED", "RPA", Rejected, 'b'),
    analysis("AUTHORISED", "RPP", Rejected, 'b'),
    analysis("AUTHORISED", "FRD", Rejected, 'b'),
    analysis("AUTHORISED", "REJECT", Rejected, 'b'),
    analysis("AUTHORISED", "AMA", Review, 'd'),
    analysis("AUTHORISED", "NVO", Review, 'd'),
    analysis("AUTHORISED", "SUS", Review, 'd'),
    analysis("AUTHORISED", "REVIEW", Review, 'd'),
    analysis("AUTHORISED", "CAN", Canceled, 'a'),
    analysis("AUTHORISED", "ERR", SuspectedFraud, 'g'),
    analysis("AUTHORISED", "INVALID_CREDENCIAL", SuspectedFraud, 'g'),
    analysis("AUTHORISED", "COMUNICATION_PROBLEM", SuspectedFraud, 'g'),
    analysis("AUTHORISED", "DATA_PROCESSING_PROBLEM", SuspectedFraud, 'g'),
    analysis(
        "AUTHORISED",
        "MISSING_MANDATORY_ORDER_INFO",
        SuspectedFraud,
        'g',
    ),
    analysis(
        "AUTHORISED",
        "MISSING_MANDATORY_SHIPPING_INFO",
        SuspectedFraud,
        'g',
    ),
    analysis(
        "AUTHORISED",
        "MISSING_MANDATORY_SHIPPING_ADDRESS_INFO",
        SuspectedFraud,
        'g',
    ),
    analysis(
        "AUTHORISED",
        "MISSING_MANDATORY_BILLING_INFO",
        SuspectedFraud,
        'g',
    ),
    analysis(
        "AUTHORISED",
        "MISSING_MANDATORY_BILLING_ADDRESS_INFO",
        SuspectedFraud,
        'g',
    ),
    analysis(
        "AUTHORISED",
        "MISSING_MANDATORY_CARD_INFO",
        SuspectedFraud,
        'g',
    ),
    analysis(
        "AUTHORISED",
        "MISSING_MANDATORY_CUSTOMER_INFO",
        SuspectedFraud,
        'g',
    ),
    analysis(
        "AUTHORISED",
        "MISSING_MANDATORY_SOMETHING_NEW",
        SuspectedFraud,
        'g',
    ),
    analysis("AUTHORISED", "XYZ", SuspectedFraud, 'g'),
    analysis("AUTHORISED", "DECLINE", SuspectedFraud, 'g'),
    analysis("AUTHORISED", "apa", SuspectedFraud, 'g'),
    // Before the status group: the analyser's verdict wins…
    analysis("INITIAL", "FRD", Rejected, 'b'),
    analysis("INITIAL", "AMA", Review, 'd'),
    analysis("CANCELLED", "FRD", Canceled, 'a'),
    analysis("REFUSED", "CAN", Canceled, 'a'),
    // …after it, the status group wins.
    analysis("REFUSED", "AMA", Failed, 'c'),
    analysis("REFUSED", "ERR", Failed, 'c'),
    analysis("INITIAL", "XYZ", Pending, 'e'),
    analysis("AUTHORISED_TO_VALIDATE", "APA", Review, 'd'),
    analysis("BRAND_NEW_STATUS", "CAN", Canceled, 'a'),
    analysis("BRAND_NEW_STATUS", "FRD", Rejected, 'b'),
    analysis("BRAND_NEW_STATUS", "AMA", Review, 'd'),
    analysis("BRAND_NEW_STATUS", "ERR", Pending, '?'),
    analysis("BRAND_NEW_STATUS", "APA", Pending, '?'),
];

const CONTROL_ROWS: &[Row] = &[
    control("AUTHORISED", "CARD_FRAUD=OK", Accepted, 'h'),
    control("AUTHORISED", "SUSPECT_COUNTRY=WARNING", SuspectedFraud, 'g'),
    control("AUTHORISED", "IP_FRAUD=ERROR", SuspectedFraud, 'g'),
    control(
        "AUTHORISED",
        "CARD_FRAUD=OK;SUSPECT_COUNTRY=WARNING",
        SuspectedFraud,
        'g',
    ),
    control(
        "CAPTURED",
        "CARD_FRAUD=OK;BIN_FRAUD=OK;ECB=OK",
        Accepted,
        'h',
    ),
    control("AUTHORISED", "BIN_FRAUD=SOMETHING_NEW", Accepted, 'h'),
    control("AUTHORISED", "BIN_FRAUD", Accepted, 'h'),
    control("REFUSED", "CARD_FRAUD=ERROR", Failed, 'c'),
    control("INITIAL", "SUSPECT_COUNTRY=WARNING", Pending, 'e'),
];

fn check(rows: &[Row]) {
    for r in rows {
        let n = Ipn::new(r.status)
            .operation(r.operation)
            .assessment(r.assessment)
            .analysis(r.analysis)
            .control(r.control)
            .build();
        let a = assess(&n);
        let what = format!(
            "status {:?} operation {} assessment {:?} analysis {:?} control {:?}",
            r.status, r.operation, r.assessment, r.analysis, r.control
        );
        assert_eq!(a.outcome, r.outcome, "{what}: rule {}", a.rule);
        let expected_rule = match r.rule {
            '?' => "unknown status".to_owned(),
            '0' => "g0: ".to_owned(),
            letter => format!("{letter}: "),
        };
        assert!(
            a.rule.starts_with(&expected_rule),
            "{what}: rule {:?}",
            a.rule
        );
    }
}

#[test]
fn every_status() {
    check(STATUS_ROWS);
}

#[test]
fn every_risk_assessment_action() {
    check(ASSESSMENT_ROWS);
}

#[test]
fn every_risk_analysis_code() {
    check(ANALYSIS_ROWS);
}

#[test]
fn every_risk_control_result() {
    check(CONTROL_ROWS);
}

#[test]
fn every_status_in_the_tables_has_a_row() {
    let groups = [
        CANCELED_STATUSES,
        FAILED_STATUSES,
        TO_VALIDATE_STATUSES,
        PENDING_STATUSES,
        SUCCESS_STATUSES,
    ];
    for status in groups.concat() {
        assert!(
            STATUS_ROWS.iter().any(|r| r.status == status),
            "{status} has no row"
        );
    }
    for (code, _) in ANALYSIS_CODES {
        assert!(
            ANALYSIS_ROWS.iter().any(|r| r.analysis == *code),
            "{code} has no row"
        );
    }
}

#[test]
fn rules_name_what_matched() {
    let rule = |n: Ipn| assess(&n.build()).rule;
    assert_eq!(
        rule(Ipn::new("AUTHORISED").assessment("REFUSE")),
        "b: risk assessment REFUSE"
    );
    assert_eq!(
        rule(Ipn::new("AUTHORISED").analysis("FRD")),
        "b: risk analysis FRD"
    );
    assert_eq!(
        rule(Ipn::new("AUTHORISED").control("SUSPECT_COUNTRY=WARNING")),
        "g: risk control SUSPECT_COUNTRY=WARNING on status AUTHORISED"
    );
    assert_eq!(
        rule(Ipn::new("CAPTURED").operation("CREDIT")),
        "f: status CAPTURED on a CREDIT operation"
    );
    assert_eq!(
        rule(Ipn::new("AUTHORISED")),
        "h: status AUTHORISED, no risk finding"
    );
    assert_eq!(
        rule(Ipn::new("AUTHORISED").analysis("APA")),
        "h: status AUTHORISED, risk analysis APA"
    );
    assert_eq!(rule(Ipn::new("NEW")), "unknown status NEW, kept pending");
}

#[test]
fn unknown_status_warns_even_when_a_risk_rule_decides() {
    let a = assess(&Ipn::new("BRAND_NEW_STATUS").build());
    assert_eq!(
        a.warnings,
        ["unknown Lyra transaction status \"BRAND_NEW_STATUS\"; assessed pending (unknown status BRAND_NEW_STATUS, kept pending)"]
    );
    let a = assess(&Ipn::new("BRAND_NEW_STATUS").analysis("FRD").build());
    assert_eq!(a.outcome, Outcome::Rejected);
    assert_eq!(a.warnings.len(), 1);
    assert!(a.warnings[0].contains("assessed rejected (b: risk analysis FRD)"));
}

#[test]
fn unknown_risk_values_warn() {
    let a = assess(
        &Ipn::new("AUTHORISED")
            .assessment("ENABLE_3DS;NEW_ACTION")
            .analysis("XYZ")
            .control("CARD_FRAUD=OK;BIN_FRAUD=MAYBE")
            .build(),
    );
    assert_eq!(
        a.warnings,
        [
            "unknown Lyra risk assessment action \"NEW_ACTION\"; it changes no outcome",
            "unknown Lyra risk analysis result \"XYZ\"; a successful payment carrying it is suspected fraud",
            "unknown Lyra risk control result \"MAYBE\" for \"BIN_FRAUD\"; it changes no outcome",
        ]
    );
}

#[test]
fn known_values_do_not_warn() {
    let a = assess(
        &Ipn::new("AUTHORISED")
            .assessment("ENABLE_3DS;INFORM")
            .analysis("MISSING_MANDATORY_CARD_INFO")
            .control("CARD_FRAUD=OK;IP_FRAUD=WARNING;ECB=ERROR")
            .build(),
    );
    assert!(a.warnings.is_empty(), "{:?}", a.warnings);
}

#[test]
fn provider_family_does_not_change_the_rules() {
    let mut rest = Ipn::new("AUTHORISED").analysis("AMA").build();
    rest.provider = Provider::LyraRest;
    assert_eq!(assess(&rest).outcome, Outcome::Review);
}

#[test]
fn outcome_names_round_trip() {
    for o in Outcome::ALL {
        assert_eq!(Outcome::parse(o.as_str()), Some(o));
        assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{o}\""));
    }
}

fn arbitrary_facts() -> impl Strategy<Value = LyraFacts> {
    let text = || any::<String>();
    let known_or_any = |known: &'static [&'static str]| {
        prop_oneof![
            proptest::sample::select(known).prop_map(str::to_owned),
            any::<String>()
        ]
    };
    (
        known_or_any(SUCCESS_STATUSES),
        known_or_any(&["DEBIT", "CREDIT"]),
        text(),
        prop::collection::vec(text(), 0..4),
        known_or_any(&["APA", "FRD", "MISSING_MANDATORY_", "ERR"]),
        prop::collection::vec((text(), text()), 0..4),
        (text(), text(), text(), text(), text(), text()),
    )
        .prop_map(
            |(
                trans_status,
                operation_type,
                url_check_src,
                risk_assessment,
                risk_analysis,
                risk_control,
                rest,
            )| {
                let (result, extra_result, sequence_number, card_brand, card_number, ctx_mode) =
                    rest;
                LyraFacts {
                    trans_status,
                    operation_type,
                    url_check_src,
                    risk_assessment,
                    risk_analysis,
                    risk_control,
                    result,
                    extra_result,
                    sequence_number,
                    card_brand,
                    card_number,
                    threeds_status: String::new(),
                    ctx_mode,
                    order_cycle: String::new(),
                    unsigned_src: String::new(),
                }
            },
        )
}

proptest! {
    /// Property 3: any field content assesses (and comments) without panicking.
    #[test]
    fn assess_never_panics(
        facts in arbitrary_facts(),
        transaction_id in any::<String>(),
        transaction_number in any::<String>(),
        amount_minor in any::<Option<i64>>(),
        currency in any::<String>(),
    ) {
        let n = Ipn::new("")
            .with(|n, f| {
                *f = facts;
                n.transaction_id = transaction_id;
                n.transaction_number = transaction_number;
                n.amount_minor = amount_minor;
                n.currency = currency;
            })
            .build();
        let a = assess(&n);
        prop_assert!(!a.rule.is_empty());
        let d = crate::domain::decide(&crate::domain::OrderSnapshot::default(), &n);
        prop_assert!(!d.comment.is_empty());
    }
}
