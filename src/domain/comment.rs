//! The order-history comment: a few plain-text lines a merchant reads in the
//! shop's back office.
//!
//! ```text
//! Lyra, payment page: AUTHORISED_TO_VALIDATE (to validate manually).
//! Transaction 000042 (id uuid-1), 29.90 EUR, CB 497010XXXXXX0055.
//! Risk checks: ClearSale: waiting for manual analysis; Risk control SUSPECT_COUNTRY: warning.
//! Outcome: review (rule d: status AUTHORISED_TO_VALIDATE).
//! ```
//!
//! Every code is looked up in a word table below; an unknown code is shown
//! as is. Values come from a verified notification but are still cleaned
//! (no control characters, bounded length) so one odd field cannot break the
//! history layout. A card number that does not look masked is never printed.

mod cybersource;
mod mpgs;

pub use cybersource::{signal_words, DM_STATUS_WORDS};
pub use mpgs::{MPGS_REVIEW_WORDS, MPGS_RISK_WORDS, MPGS_TYPE_WORDS};

use std::borrow::Cow;
use std::fmt::Write;

use super::notification::{Facts, LyraFacts, Notification};
use super::outcome::{without_effect, Assessment, OPERATION_CREDIT};
// The `vads_url_check_src` words live with the Lyra vocabulary, below both
// this module and the state machine, which names the source too.
pub use super::outcome::{source_words, SOURCE_WORDS};
use super::state::Verdict;

/// `vads_trans_status` → its meaning (lyra.md §4).
pub const STATUS_WORDS: &[(&str, &str)] = &[
    ("ABANDONED", "abandoned by the buyer"),
    ("NOT_CREATED", "transaction not created"),
    ("CANCELLED", "cancelled by the merchant"),
    ("REFUSED", "declined"),
    ("EXPIRED", "authorisation expired without validation"),
    ("CAPTURE_FAILED", "capture failed"),
    ("AUTHORISED_TO_VALIDATE", "to validate manually"),
    (
        "WAITING_AUTHORISATION_TO_VALIDATE",
        "to validate manually, then to authorise",
    ),
    ("INITIAL", "waiting for the acquirer's answer"),
    ("WAITING_AUTHORISATION", "authorisation requested later"),
    ("UNDER_VERIFICATION", "verification in progress"),
    ("SUSPENDED", "capture temporarily blocked by the acquirer"),
    ("PRE_AUTHORISED", "pre-authorised"),
    ("WAITING_FOR_PAYMENT", "waiting for payment"),
    ("PENDING", "pending"),
    ("REFUND_TO_RETRY", "refund to retry"),
    ("CAPTURE_PENDING", "capture requested, not yet confirmed"),
    ("AUTHORISED", "authorised, waiting for capture"),
    ("CAPTURED", "captured"),
    ("ACCEPTED", "verification accepted"),
    ("PARTIALLY_AUTHORISED", "partially authorised"),
];

/// `vads_risk_assessment_result` actions (lyra.md §6.2).
pub const ASSESSMENT_WORDS: &[(&str, &str)] = &[
    ("ENABLE_3DS", "3-D Secure requested by risk rules"),
    ("DISABLE_3DS", "3-D Secure disabled by risk rules"),
    ("NO_PREFERENCE", "no 3-D Secure preference from risk rules"),
    (
        "NO_CHALLENGE_REQUESTED",
        "3-D Secure without challenge requested by risk rules",
    ),
    (
        "CHALLENGE_REQUESTED",
        "3-D Secure challenge requested by risk rules",
    ),
    (
        "CHALLENGE_MANDATE",
        "3-D Secure challenge required by risk rules",
    ),
    (
        "MANUAL_VALIDATION",
        "manual validation required by risk rules",
    ),
    ("REFUSE", "payment refused by risk rules"),
    (
        "RUN_RISK_ANALYSIS",
        "external risk analysis run by risk rules",
    ),
    ("INFORM", "alert raised by risk rules"),
];

/// `vads_risk_analysis_result` codes (lyra.md §6.3). `MISSING_MANDATORY_*`
/// codes are spelled out by [`analysis_words`].
pub const ANALYSIS_WORDS: &[(&str, &str)] = &[
    ("CAN", "ClearSale: cancelled by the shop"),
    (
        "RPM",
        "ClearSale: reproved for missing information or contact",
    ),
    (
        "RPA",
        "ClearSale: automatically reproved by analyser parameters",
    ),
    ("RPP", "ClearSale: reproved by shop or ClearSale policy"),
    ("FRD", "ClearSale: confirmed fraud"),
    ("REJECT", "Risk analyser (Cybersource): reject"),
    ("AMA", "ClearSale: waiting for manual analysis"),
    ("NVO", "ClearSale: new, waiting for a score"),
    ("SUS", "ClearSale: suspended on fraud suspicion"),
    ("REVIEW", "Risk analyser (Cybersource or Konduto): review"),
    ("ERR", "ClearSale: error"),
    (
        "INVALID_CREDENCIAL",
        "Risk analyser error: invalid credentials",
    ),
    (
        "COMUNICATION_PROBLEM",
        "Risk analyser error: communication problem",
    ),
    (
        "DATA_PROCESSING_PROBLEM",
        "Risk analyser error: data processing problem",
    ),
    ("APA", "ClearSale: automatically approved"),
    ("APM", "ClearSale: manually approved"),
    ("APP", "ClearSale: approved by policy"),
    ("ACCEPT", "Risk analyser (Cybersource): accept"),
    ("APPROVE", "Risk analyser (Konduto): approve"),
];

/// `vads_risk_control` results (lyra.md §6.1).
pub const CONTROL_RESULT_WORDS: &[(&str, &str)] = &[
    ("OK", "ok"),
    ("WARNING", "warning"),
    ("ERROR", "error (blocking)"),
];

/// `vads_result` codes worth explaining (lyra.md §3). `00` is not shown.
pub const RESULT_WORDS: &[(&str, &str)] = &[
    ("02", "contact the issuer"),
    ("05", "refused"),
    ("17", "cancelled"),
    ("30", "format error"),
    ("96", "technical error"),
];

/// An ISO 4217 currency the comment can format with its decimal point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Currency {
    pub numeric: u16,
    pub alpha: &'static str,
    /// Digits after the decimal point (minor units).
    pub decimals: u32,
}

const fn currency(numeric: u16, alpha: &'static str, decimals: u32) -> Currency {
    Currency {
        numeric,
        alpha,
        decimals,
    }
}

/// The currencies Lyra shops commonly use.
pub const CURRENCIES: &[Currency] = &[
    currency(978, "EUR", 2),
    currency(840, "USD", 2),
    currency(826, "GBP", 2),
    currency(756, "CHF", 2),
    currency(124, "CAD", 2),
    currency(36, "AUD", 2),
    currency(986, "BRL", 2),
    currency(604, "PEN", 2),
    currency(484, "MXN", 2),
    currency(32, "ARS", 2),
    currency(152, "CLP", 0),
    currency(170, "COP", 2),
    currency(392, "JPY", 0),
    currency(953, "XPF", 0),
    currency(356, "INR", 2),
];

/// Longest raw value printed; longer ones are cut with "…".
const MAX_VALUE_CHARS: usize = 64;
/// Longest sentence built from several values (rule, reason, note).
const MAX_SENTENCE_CHARS: usize = 400;
/// A masked PAN shows at most the 6- or 8-digit BIN and the last 4 digits.
const MAX_MASKED_PAN_DIGITS: usize = 12;
/// More consecutive digits than this cannot be a masked PAN.
const MAX_MASKED_PAN_DIGIT_RUN: usize = 10;
const MAX_MASKED_PAN_CHARS: usize = 24;

/// The order-history comment for one notification is built in two
/// steps: [`facts_lines`] (the notification alone), then [`with_verdict`].
///
/// The lines of the comment that the notification alone gives (all but
/// the verdict line), joined: what [`crate::domain::Prepared`] computes
/// before the order's state is known.
pub fn facts_lines(n: &Notification) -> String {
    let lines = match &n.facts {
        Facts::Lyra(f) => return lyra_lines(n, f),
        Facts::Cybersource(f) => cybersource::lines(n, f),
        Facts::Mpgs(f) => mpgs::lines(n, f),
    };
    let mut facts = String::with_capacity(lines.iter().flatten().map(|l| l.len() + 1).sum());
    for (i, line) in lines.iter().flatten().enumerate() {
        if i > 0 {
            facts.push('\n');
        }
        facts.push_str(line);
    }
    facts
}

/// The whole comment: `facts` ([`facts_lines`] of `n`), then the verdict
/// line on a line of its own.
pub fn with_verdict(facts: &str, n: &Notification, a: &Assessment, v: &Verdict) -> String {
    let verdict = verdict_line(n, a, v);
    let mut comment = String::with_capacity(facts.len() + 1 + verdict.len());
    if !facts.is_empty() {
        comment.push_str(facts);
        comment.push('\n');
    }
    comment.push_str(&verdict);
    comment
}

/// [`facts_lines`] of a Lyra notification, written into one string: it
/// is built for every notification (issue 18: piece by piece, it took
/// some twenty allocations).
fn lyra_lines(n: &Notification, f: &LyraFacts) -> String {
    let mut out = String::with_capacity(256);
    write_headline(&mut out, n, f);
    out.push('\n');
    write_transaction_line(&mut out, n, f);
    if let Some(risk) = risk_line(f) {
        out.push('\n');
        out.push_str(&risk);
    }
    out
}

/// Provider, mode, source and status, e.g.
/// `Lyra (TEST mode), back-office operation, refund: CAPTURED (captured).`
fn write_headline(out: &mut String, n: &Notification, f: &LyraFacts) {
    out.push_str(n.provider.display_name());
    if f.ctx_mode == "TEST" {
        out.push_str(" (TEST mode)");
    }
    if !n.origin().is_empty() {
        out.push_str(", ");
        write_source_label(out, n.origin());
    }
    // REST `kr-src` is not covered by kr-hash: shown, marked, never used.
    if !f.unsigned_src.is_empty() {
        let _ = write!(
            out,
            ", kr-src {} (not signed)",
            printable(&f.unsigned_src, MAX_VALUE_CHARS)
        );
    }
    if f.operation_type == OPERATION_CREDIT {
        out.push_str(", refund");
    }
    out.push_str(": ");
    write_status_label(out, n.status());
    write_result_label(out, &f.result);
    out.push('.');
}

/// Transaction, installment, amount and card, e.g.
/// `Transaction 000042 (id uuid-1), 29.90 EUR, VISA 497010XXXXXX0055.`
fn write_transaction_line(out: &mut String, n: &Notification, f: &LyraFacts) {
    write_transaction_label(out, n);
    if !f.sequence_number.is_empty() && f.sequence_number != "1" {
        let _ = write!(
            out,
            ", installment {}",
            printable(&f.sequence_number, MAX_VALUE_CHARS)
        );
    }
    if let Some(minor) = n.amount_minor {
        out.push_str(", ");
        write_amount(out, minor, &n.currency);
    }
    write_card_label(out, ", ", &f.card_brand, &f.card_number);
    out.push('.');
}

/// Every risk keyword, analyser code and control in words, or `None` when
/// the notification carries no risk data.
fn risk_line(f: &LyraFacts) -> Option<String> {
    let assessments = f.risk_assessment.iter().map(|a| assessment_words(a));
    let analysis = Some(f.risk_analysis.trim())
        .filter(|code| !code.is_empty())
        .map(analysis_words);
    let controls = f
        .risk_control
        .iter()
        .map(|(control, result)| control_words(control, result));
    let findings: Vec<String> = assessments.chain(analysis).chain(controls).collect();
    (!findings.is_empty()).then(|| format!("Risk checks: {}.", findings.join("; ")))
}

/// The line that tells the shop what to do about a rejected order whose
/// transaction is still alive at the gateway (see
/// [`crate::domain::outcome::live_at_gateway`]).
pub fn gateway_cancel_line(n: &Notification) -> String {
    format!(
        "Action needed: the transaction is still {} at {} and will be captured on its capture date unless it is cancelled at the gateway. \
         ipnsync cancels it itself when the source's review API is configured (the result follows on the order's timeline); \
         otherwise cancel it in the {} back office, or run `ipnsync review deny {}`.",
        printable(n.status(), MAX_VALUE_CHARS),
        n.provider.display_name(),
        n.provider.display_name(),
        printable(&n.order_ref, MAX_VALUE_CHARS)
    )
}

/// What happened to the order, and why.
fn verdict_line(n: &Notification, a: &Assessment, v: &Verdict) -> String {
    let rule = printable(&a.rule, MAX_SENTENCE_CHARS);
    if without_effect(n).is_some() {
        // A note or a step without effect: its "assessed pending" means
        // nothing to a merchant, the rule says it all.
        return format!("Order not changed (rule {rule}).");
    }
    match v {
        Verdict::Apply {
            outcome,
            note: None,
        } => format!("Outcome: {outcome} (rule {rule})."),
        Verdict::Apply {
            outcome,
            note: Some(note),
        } => format!(
            "Outcome: {outcome}, instead of {} (rule {rule}). Note: {}.",
            a.outcome,
            printable(note, MAX_SENTENCE_CHARS)
        ),
        Verdict::Ignore { reason } => format!(
            "Order not changed: {} (notification assessed {} by rule {rule}).",
            printable(reason, MAX_SENTENCE_CHARS),
            a.outcome
        ),
    }
}

// ------------------------------------------------------------- vocabulary

fn lookup(table: &[(&str, &'static str)], code: &str) -> Option<&'static str> {
    table
        .iter()
        .find(|(known, _)| *known == code)
        .map(|(_, words)| *words)
}

fn write_source_label(out: &mut String, source: &str) {
    match source_words(source) {
        Some(words) => out.push_str(words),
        None => {
            let _ = write!(out, "source {}", printable(source, MAX_VALUE_CHARS));
        }
    }
}

/// `AUTHORISED_TO_VALIDATE (to validate manually)`.
pub fn status_label(status: &str) -> String {
    let mut out = String::new();
    write_status_label(&mut out, status);
    out
}

fn write_status_label(out: &mut String, status: &str) {
    if status.is_empty() {
        out.push_str("no status");
        return;
    }
    let words = lookup(STATUS_WORDS, status).unwrap_or("unknown status");
    let _ = write!(out, "{} ({words})", printable(status, MAX_VALUE_CHARS));
}

/// `, result 05 (refused)`, nothing for a success or no result.
fn write_result_label(out: &mut String, result: &str) {
    if result.is_empty() || result == "00" {
        return;
    }
    let code = printable(result, MAX_VALUE_CHARS);
    let _ = match lookup(RESULT_WORDS, result) {
        Some(words) => write!(out, ", result {code} ({words})"),
        None => write!(out, ", result {code}"),
    };
}

pub fn assessment_words(action: &str) -> String {
    lookup(ASSESSMENT_WORDS, action).map_or_else(
        || {
            format!(
                "unknown risk rule action {}",
                printable(action, MAX_VALUE_CHARS)
            )
        },
        str::to_owned,
    )
}

pub fn analysis_words(code: &str) -> String {
    if let Some(words) = lookup(ANALYSIS_WORDS, code) {
        return words.to_owned();
    }
    match code.strip_prefix(super::outcome::MISSING_MANDATORY_PREFIX) {
        Some(missing) => format!(
            "Risk analyser error: missing mandatory {} ({})",
            printable(&missing.to_lowercase().replace('_', " "), MAX_VALUE_CHARS),
            printable(code, MAX_VALUE_CHARS)
        ),
        None => format!(
            "Risk analyser: unknown result {}",
            printable(code, MAX_VALUE_CHARS)
        ),
    }
}

pub fn control_words(control: &str, result: &str) -> String {
    let outcome = match lookup(CONTROL_RESULT_WORDS, result) {
        Some(words) => words.to_owned(),
        None if result.is_empty() => "no result".to_owned(),
        None => format!("result {}", printable(result, MAX_VALUE_CHARS)),
    };
    format!(
        "Risk control {}: {outcome}",
        printable(control, MAX_VALUE_CHARS)
    )
}

fn write_transaction_label(out: &mut String, n: &Notification) {
    let number = printable(&n.transaction_number, MAX_VALUE_CHARS);
    let id = printable(&n.transaction_id, MAX_VALUE_CHARS);
    let _ = if number.is_empty() && id.is_empty() {
        write!(out, "Transaction unknown")
    } else if number.is_empty() || number == id {
        write!(out, "Transaction {id}")
    } else if id.is_empty() {
        write!(out, "Transaction {number}")
    } else {
        write!(out, "Transaction {number} (id {id})")
    };
}

// ----------------------------------------------------------------- amount

/// The currency for an ISO 4217 numeric (`978`, `036`) or alpha (`EUR`) code.
pub fn find_currency(code: &str) -> Option<Currency> {
    let code = code.trim();
    if !code.is_empty() && code.len() <= 3 && code.bytes().all(|b| b.is_ascii_digit()) {
        let numeric: u16 = code.parse().ok()?;
        return CURRENCIES.iter().copied().find(|c| c.numeric == numeric);
    }
    CURRENCIES
        .iter()
        .copied()
        .find(|c| c.alpha.eq_ignore_ascii_case(code))
}

/// `2990` + `978` → `29.90 EUR`. For a currency the table does not know,
/// the decimal point's place is unknown, so the raw minor units are shown.
pub fn format_amount(minor: i64, currency_code: &str) -> String {
    let mut out = String::new();
    write_amount(&mut out, minor, currency_code);
    out
}

fn write_amount(out: &mut String, minor: i64, currency_code: &str) {
    let Some(currency) = find_currency(currency_code) else {
        let code = printable(currency_code.trim(), MAX_VALUE_CHARS);
        let _ = if code.is_empty() {
            write!(out, "{minor} minor units (no currency)")
        } else {
            write!(out, "{minor} minor units of currency {code}")
        };
        return;
    };
    let sign = if minor < 0 { "-" } else { "" };
    // unsigned_abs: i64::MIN has no positive i64 counterpart.
    let magnitude = minor.unsigned_abs();
    let _ = if currency.decimals == 0 {
        write!(out, "{sign}{magnitude} {}", currency.alpha)
    } else {
        let scale = 10u64.pow(currency.decimals);
        write!(
            out,
            "{sign}{}.{:0width$} {}",
            magnitude / scale,
            magnitude % scale,
            currency.alpha,
            width = currency.decimals as usize
        )
    };
}

// ------------------------------------------------------------------- card

/// `VISA 497010XXXXXX0055`; an unmasked number is replaced by a notice.
fn card_label(brand: &str, number: &str) -> Option<String> {
    let mut out = String::new();
    write_card_label(&mut out, "", brand, number);
    (!out.is_empty()).then_some(out)
}

/// [`card_label`] after `separator`, nothing when there is no card.
fn write_card_label(out: &mut String, separator: &str, brand: &str, number: &str) {
    let brand = printable(brand, MAX_VALUE_CHARS);
    let number = if number.is_empty() {
        None
    } else if looks_masked(number) {
        Some(number)
    } else {
        Some("(card number not shown: it is not masked)")
    };
    let _ = match (brand.is_empty(), number) {
        (true, None) => return,
        (false, None) => write!(out, "{separator}card {brand}"),
        (true, Some(number)) => write!(out, "{separator}card {number}"),
        (false, Some(number)) => write!(out, "{separator}{brand} {number}"),
    };
}

/// Whether `number` is a platform-masked PAN such as `497010XXXXXX0055`:
/// short, made only of digits and mask characters, with at least one mask
/// character, at most 12 digits (8-digit BIN + last 4) and no run of more
/// than 10 digits. Anything else might be a full PAN and is never printed,
/// whatever separators it uses.
pub fn looks_masked(number: &str) -> bool {
    let is_mask = |c: char| matches!(c, 'X' | 'x' | '*');
    number.chars().count() <= MAX_MASKED_PAN_CHARS
        && number.chars().all(|c| c.is_ascii_digit() || is_mask(c))
        && number.chars().any(is_mask)
        && number.chars().filter(char::is_ascii_digit).count() <= MAX_MASKED_PAN_DIGITS
        && longest_digit_run(number) <= MAX_MASKED_PAN_DIGIT_RUN
}

fn longest_digit_run(s: &str) -> usize {
    s.split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .max()
        .unwrap_or(0)
}

// --------------------------------------------------------------- cleaning

/// `value` without control characters (a newline would break the history
/// layout) and cut to `max` characters.
fn printable(value: &str, max: usize) -> Cow<'_, str> {
    // Nearly every value is short printable ASCII: borrowed as it is. (The
    // comment is built inside the writer's transaction for each
    // notification; a copy char by char was a measurable part of it.)
    if value.len() <= max && value.bytes().all(|b| (b' '..0x7f).contains(&b)) {
        return Cow::Borrowed(value);
    }
    let cleaned = value.chars().map(|c| if c.is_control() { ' ' } else { c });
    Cow::Owned(if value.chars().count() <= max {
        cleaned.collect()
    } else {
        cleaned.take(max - 1).chain(['…']).collect()
    })
}

#[cfg(test)]
mod tests;
