use crate::domain::outcome::test_support::{mpgs_follow_on, mpgs_tx};
use crate::domain::{decide, Facts, Notification, OrderSnapshot};

fn comment(n: &Notification) -> String {
    decide(&OrderSnapshot::default(), n).comment
}

#[test]
fn a_review_case_in_words() {
    let mut n = mpgs_tx(
        "AUTHORIZATION",
        "SUCCESS",
        "APPROVED",
        "REVIEW_REQUIRED",
        "PENDING",
    );
    if let Facts::Mpgs(f) = &mut n.facts {
        f.risk_score = Some(85);
        f.risk_rules = vec![
            ("MERCHANT_BIN_RANGE".into(), "REVIEW".into()),
            ("MSO_3D_SECURE".into(), "NO_ACTION".into()),
        ];
        f.card_brand = "VISA".into();
        f.card_number = "414767xxxxxx0003".into();
        f.order_status = "AUTHORIZED".into();
    }
    assert_eq!(
        comment(&n),
        "Mastercard Gateway, web services API: authorisation, result SUCCESS, gateway code APPROVED.\n\
         Transaction 1, order 100000300, order status AUTHORIZED, 100.00 USD, VISA 414767xxxxxx0003.\n\
         Risk checks: REVIEW_REQUIRED (review required), review PENDING (waiting for a reviewer), score 85; rule MERCHANT_BIN_RANGE: REVIEW.\n\
         Outcome: review (rule m3: risk REVIEW_REQUIRED, review PENDING)."
    );
}

#[test]
fn follow_on_operations_and_steps_without_effect() {
    let void = mpgs_follow_on("VOID_AUTHORIZATION", "2", "SUCCESS", "APPROVED");
    let text = comment(&void);
    assert!(text.starts_with(
        "Mastercard Gateway, web services API: authorisation voided, result SUCCESS, gateway code APPROVED.\n\
         Transaction 2 on transaction 1, order 100000300, 100.00 USD.\n"
    ), "{text}");
    let step = mpgs_tx("AUTHENTICATION", "SUCCESS", "APPROVED", "", "");
    assert!(
        comment(&step).ends_with("Order not changed (rule m1: AUTHENTICATION changes no order).")
    );
    let unmasked = {
        let mut n = mpgs_tx("PAYMENT", "SUCCESS", "APPROVED", "", "");
        if let Facts::Mpgs(f) = &mut n.facts {
            f.card_number = "4147670000000003".into();
        }
        n
    };
    assert!(!comment(&unmasked).contains("4147670000000003"));
}

/// `docs/decisions.md` lists every word table and vocabulary row of the
/// Cybersource and Mastercard Gateway rules.
#[test]
fn decisions_doc_lists_the_new_tables() {
    use crate::domain::comment::{
        signal_words, DM_STATUS_WORDS, MPGS_REVIEW_WORDS, MPGS_RISK_WORDS, MPGS_TYPE_WORDS,
    };
    use crate::domain::outcome::{cybersource, mpgs};
    let doc = include_str!("../../../../docs/decisions.md");
    for (code, words) in [
        DM_STATUS_WORDS,
        MPGS_TYPE_WORDS,
        MPGS_RISK_WORDS,
        MPGS_REVIEW_WORDS,
    ]
    .concat()
    {
        let row = format!("| `{code}` | {words} |");
        assert!(doc.contains(&row), "docs/decisions.md lacks the row {row}");
    }
    for (event, signal) in cybersource::EVENT_TYPES {
        let row = format!("| `{event}` | {} |", signal_words(*signal));
        assert!(doc.contains(&row), "docs/decisions.md lacks the row {row}");
    }
    let flat = doc.split_whitespace().collect::<Vec<_>>().join(" ");
    for code in mpgs::DECLINED_CODES {
        assert!(
            flat.contains(&format!("{code},")) || flat.contains(&format!("{code}.")),
            "{code}"
        );
    }
    for list in [
        mpgs::PAYMENT_TYPES,
        mpgs::VOID_TYPES,
        mpgs::NO_EFFECT_TYPES,
        cybersource::REJECTED_STATUSES,
        cybersource::REVIEW_STATUSES,
    ] {
        for code in list {
            assert!(flat.contains(code), "docs/decisions.md never names {code}");
        }
    }
}
