//! Comment lines for Mastercard Gateway notifications, e.g.
//!
//! ```text
//! Mastercard Gateway, web services API: authorisation, result SUCCESS, gateway code APPROVED.
//! Transaction 1, order 100000123, 100.00 USD, VISA 414767xxxxxx0003.
//! Risk checks: REVIEW_REQUIRED (review required), review PENDING (waiting for a reviewer), score 85; rule MERCHANT_BIN_RANGE: REVIEW.
//! Outcome: review (rule m3: risk REVIEW_REQUIRED, review PENDING).
//! ```

use super::{card_label, format_amount, lookup, printable, MAX_SENTENCE_CHARS, MAX_VALUE_CHARS};
use crate::domain::notification::{MpgsFacts, Notification};

/// `transaction.type` in words.
pub const MPGS_TYPE_WORDS: &[(&str, &str)] = &[
    ("AUTHORIZATION", "authorisation"),
    ("AUTHORIZATION_UPDATE", "authorisation update"),
    ("PAYMENT", "payment (authorisation and capture)"),
    ("CAPTURE", "capture"),
    ("REFUND", "refund"),
    ("REFUND_REQUEST", "refund requested"),
    ("VOID_AUTHORIZATION", "authorisation voided"),
    ("VOID_PAYMENT", "payment voided"),
    ("VOID_CAPTURE", "capture voided"),
    ("VOID_REFUND", "refund voided: check the order by hand"),
    ("AUTHENTICATION", "3-D Secure authentication"),
    ("VERIFICATION", "card verification"),
];

/// Risk gateway codes in words.
pub const MPGS_RISK_WORDS: &[(&str, &str)] = &[
    ("ACCEPTED", "accepted"),
    ("REJECTED", "rejected"),
    ("REVIEW_REQUIRED", "review required"),
    ("NOT_CHECKED", "not checked"),
];

/// Risk review decisions in words.
pub const MPGS_REVIEW_WORDS: &[(&str, &str)] = &[
    ("NOT_REQUIRED", "not required"),
    ("PENDING", "waiting for a reviewer"),
    ("ACCEPTED", "accepted by a reviewer"),
    ("REJECTED", "rejected by a reviewer"),
];

/// `gatewayEntryPoint` in words.
const ENTRY_POINT_WORDS: &[(&str, &str)] = &[
    ("WEB_SERVICES_API", "web services API"),
    ("CHECKOUT_VIA_WEBSITE", "hosted checkout"),
    ("MERCHANT_ADMINISTRATION", "Merchant Administration"),
];

/// A rule recommendation that says nothing.
const NO_ACTION: &str = "NO_ACTION";

pub(super) fn lines(n: &Notification, f: &MpgsFacts) -> Vec<Option<String>> {
    vec![
        Some(headline(f)),
        Some(transaction_line(n, f)),
        risk_line(f),
    ]
}

fn words_or_code(table: &[(&str, &'static str)], code: &str) -> String {
    match lookup(table, code) {
        Some(words) => words.to_owned(),
        None => printable(code, MAX_VALUE_CHARS).into_owned(),
    }
}

fn headline(f: &MpgsFacts) -> String {
    let mut who = "Mastercard Gateway".to_owned();
    if !f.entry_point.is_empty() {
        who.push_str(", ");
        who.push_str(&words_or_code(ENTRY_POINT_WORDS, &f.entry_point));
    }
    let what = if f.transaction_type.is_empty() {
        "no transaction type".to_owned()
    } else {
        words_or_code(MPGS_TYPE_WORDS, &f.transaction_type)
    };
    let mut parts = vec![what, format!("result {}", or_none(&f.result))];
    if !f.gateway_code.is_empty() {
        parts.push(format!(
            "gateway code {}",
            printable(&f.gateway_code, MAX_VALUE_CHARS)
        ));
    }
    format!("{who}: {}.", parts.join(", "))
}

fn or_none(value: &str) -> String {
    if value.is_empty() {
        "none".to_owned()
    } else {
        printable(value, MAX_VALUE_CHARS).into_owned()
    }
}

fn transaction_line(n: &Notification, f: &MpgsFacts) -> String {
    let mut first = format!("Transaction {}", or_none(&f.transaction_id));
    if !f.target_transaction_id.is_empty() && f.target_transaction_id != f.transaction_id {
        first.push_str(&format!(
            " on transaction {}",
            printable(&f.target_transaction_id, MAX_VALUE_CHARS)
        ));
    }
    let mut parts = vec![first];
    if !f.order_id.is_empty() {
        parts.push(format!("order {}", printable(&f.order_id, MAX_VALUE_CHARS)));
    }
    if !f.order_status.is_empty() {
        parts.push(format!(
            "order status {}",
            printable(&f.order_status, MAX_VALUE_CHARS)
        ));
    }
    if let Some(minor) = n.amount_minor {
        parts.push(format_amount(minor, &n.currency));
    }
    if let Some(card) = card_label(&f.card_brand, &f.card_number) {
        parts.push(card);
    }
    format!("{}.", parts.join(", "))
}

fn risk_line(f: &MpgsFacts) -> Option<String> {
    let mut findings = Vec::new();
    if !f.risk_gateway_code.is_empty() {
        let code = printable(&f.risk_gateway_code, MAX_VALUE_CHARS);
        findings.push(match lookup(MPGS_RISK_WORDS, &f.risk_gateway_code) {
            Some(words) => format!("{code} ({words})"),
            None => format!("{code} (unknown risk result)"),
        });
    }
    if !f.review_decision.is_empty() {
        let code = printable(&f.review_decision, MAX_VALUE_CHARS);
        findings.push(match lookup(MPGS_REVIEW_WORDS, &f.review_decision) {
            Some(words) => format!("review {code} ({words})"),
            None => format!("review {code}"),
        });
    }
    if let Some(score) = f.risk_score {
        findings.push(format!("score {score}"));
    }
    let mut line = findings.join(", ");
    let rules: Vec<String> = f
        .risk_rules
        .iter()
        .filter(|(_, recommendation)| recommendation != NO_ACTION)
        .map(|(name, recommendation)| {
            format!(
                "rule {}: {}",
                printable(name, MAX_VALUE_CHARS),
                or_none(recommendation)
            )
        })
        .collect();
    for rule in rules {
        if !line.is_empty() {
            line.push_str("; ");
        }
        line.push_str(&rule);
    }
    if !f.review_note.trim().is_empty() {
        if !line.is_empty() {
            line.push_str("; ");
        }
        line.push_str(&format!(
            "reviewer's note: {}",
            printable(f.review_note.trim(), MAX_SENTENCE_CHARS)
        ));
    }
    (!line.is_empty()).then(|| format!("Risk checks: {line}."))
}

#[cfg(test)]
mod tests;
