//! The Lyra rules (a to h, and r1 for REST) and the Lyra vocabularies they
//! branch on (lyra.md §4, §5): `vads_trans_status` groups, risk
//! assessment actions, risk analysis codes, control results, and the
//! `vads_url_check_src` values (who caused the notification), which the
//! state machine and the comment both name.

use super::{Assessment, Judgement, Outcome};
use crate::domain::notification::LyraFacts;

// ------------------------------------------------------------ vocabularies

/// Rule a: the payment never happened or the merchant cancelled it.
pub const CANCELED_STATUSES: &[&str] = &["ABANDONED", "NOT_CREATED", "CANCELLED"];

/// Rule c: the payment was attempted and did not go through.
pub const FAILED_STATUSES: &[&str] = &["REFUSED", "EXPIRED", "CAPTURE_FAILED"];

/// Rule d: money is reserved but someone must validate it in the back office.
pub const TO_VALIDATE_STATUSES: &[&str] = &[
    "AUTHORISED_TO_VALIDATE",
    "WAITING_AUTHORISATION_TO_VALIDATE",
];

/// Rule e: the platform has no final answer yet.
pub const PENDING_STATUSES: &[&str] = &[
    "INITIAL",
    "WAITING_AUTHORISATION",
    "UNDER_VERIFICATION",
    "SUSPENDED",
    "PRE_AUTHORISED",
    "WAITING_FOR_PAYMENT",
    "PENDING",
    "REFUND_TO_RETRY",
    // The newest official SDK lists it as pending (lyra.md §4); older
    // plugins did not know it and failed the order.
    "CAPTURE_PENDING",
];

/// Rules f to h: the operation went through.
pub const SUCCESS_STATUSES: &[&str] =
    &["AUTHORISED", "CAPTURED", "ACCEPTED", "PARTIALLY_AUTHORISED"];

/// Which rule family a `vads_trans_status` belongs to (lyra.md §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusGroup {
    Canceled,
    Failed,
    ToValidate,
    Pending,
    Success,
}

impl StatusGroup {
    /// The group of `status`, or `None` for a status the daemon does not know.
    pub fn of(status: &str) -> Option<StatusGroup> {
        [
            (CANCELED_STATUSES, StatusGroup::Canceled),
            (FAILED_STATUSES, StatusGroup::Failed),
            (TO_VALIDATE_STATUSES, StatusGroup::ToValidate),
            (PENDING_STATUSES, StatusGroup::Pending),
            (SUCCESS_STATUSES, StatusGroup::Success),
        ]
        .into_iter()
        .find(|(statuses, _)| statuses.contains(&status))
        .map(|(_, group)| group)
    }
}

/// Whether `status` says the operation went through (money moved or is
/// reserved without a human step).
pub fn is_success_status(status: &str) -> bool {
    SUCCESS_STATUSES.contains(&status)
}

/// `vads_risk_assessment_result` action: the risk module refused the payment (rule b).
pub const ASSESSMENT_REFUSE: &str = "REFUSE";
/// `vads_risk_assessment_result` action: the transaction needs manual validation (rule d).
pub const ASSESSMENT_MANUAL_VALIDATION: &str = "MANUAL_VALIDATION";
/// `vads_risk_assessment_result` action: the risk module raised an alert (rule g).
pub const ASSESSMENT_INFORM: &str = "INFORM";

/// Risk-assessment actions that change no outcome: 3-D Secure steering and
/// the trigger of the external analysis. They only appear in the comment.
pub const INFORMATIONAL_ASSESSMENTS: &[&str] = &[
    "ENABLE_3DS",
    "DISABLE_3DS",
    "NO_PREFERENCE",
    "NO_CHALLENGE_REQUESTED",
    "CHALLENGE_REQUESTED",
    "CHALLENGE_MANDATE",
    "RUN_RISK_ANALYSIS",
];

/// Every risk-assessment action the daemon knows.
pub fn is_known_assessment(action: &str) -> bool {
    [
        ASSESSMENT_REFUSE,
        ASSESSMENT_MANUAL_VALIDATION,
        ASSESSMENT_INFORM,
    ]
    .contains(&action)
        || INFORMATIONAL_ASSESSMENTS.contains(&action)
}

/// What an external analyser's verdict (`vads_risk_analysis_result`) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnalysisClass {
    /// Rule a: the analysis was cancelled by the shop.
    Cancel,
    /// Rule b: the analyser reproved the payment.
    Reject,
    /// Rule d: the analyser wants a human to look.
    Review,
    /// Rule g: the analysis did not run properly, so the payment is unchecked.
    Error,
    /// Rule h: the analyser approved the payment.
    Approve,
}

/// Analyser codes (lyra.md §6.3): ClearSale, Cybersource Decision Manager,
/// Konduto, and the errors common to all analysers. Codes starting with
/// [`MISSING_MANDATORY_PREFIX`] are errors too.
pub const ANALYSIS_CODES: &[(&str, AnalysisClass)] = &[
    ("CAN", AnalysisClass::Cancel),
    ("RPM", AnalysisClass::Reject),
    ("RPA", AnalysisClass::Reject),
    ("RPP", AnalysisClass::Reject),
    ("FRD", AnalysisClass::Reject),
    ("REJECT", AnalysisClass::Reject),
    ("AMA", AnalysisClass::Review),
    ("NVO", AnalysisClass::Review),
    ("SUS", AnalysisClass::Review),
    ("REVIEW", AnalysisClass::Review),
    ("ERR", AnalysisClass::Error),
    ("INVALID_CREDENCIAL", AnalysisClass::Error),
    ("COMUNICATION_PROBLEM", AnalysisClass::Error),
    ("DATA_PROCESSING_PROBLEM", AnalysisClass::Error),
    ("APA", AnalysisClass::Approve),
    ("APM", AnalysisClass::Approve),
    // ClearSale "approved by policy": an approval like APA, even though
    // Lyra's forwarding of it is unconfirmed.
    ("APP", AnalysisClass::Approve),
    ("ACCEPT", AnalysisClass::Approve),
    // Konduto's approval, if Lyra forwards it unchanged.
    ("APPROVE", AnalysisClass::Approve),
];

/// `MISSING_MANDATORY_ORDER_INFO`, `…_SHIPPING_INFO`…: the analyser lacked data.
pub const MISSING_MANDATORY_PREFIX: &str = "MISSING_MANDATORY_";

/// How the daemon reads a `vads_risk_analysis_result`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnalysisReading {
    /// No external analysis ran.
    Absent,
    Known(AnalysisClass),
    /// A code the daemon does not know: treated as a risk finding (rule g).
    Unknown,
}

impl AnalysisReading {
    pub fn of(analysis: &str) -> AnalysisReading {
        let code = analysis.trim();
        if code.is_empty() {
            return AnalysisReading::Absent;
        }
        if code.starts_with(MISSING_MANDATORY_PREFIX) {
            return AnalysisReading::Known(AnalysisClass::Error);
        }
        ANALYSIS_CODES
            .iter()
            .find(|(known, _)| *known == code)
            .map_or(AnalysisReading::Unknown, |(_, class)| {
                AnalysisReading::Known(*class)
            })
    }
}

/// `vads_risk_control` results (lyra.md §6.1).
pub const CONTROL_OK: &str = "OK";
/// An informational control failed (rule g).
pub const CONTROL_WARNING: &str = "WARNING";
/// A blocking control failed (rule g).
pub const CONTROL_ERROR: &str = "ERROR";

/// `vads_operation_type` of a refund.
pub const OPERATION_CREDIT: &str = "CREDIT";

/// `vads_url_check_src` of an operation a merchant made in the back office.
pub const BACK_OFFICE_OPERATION: &str = "MERCH_BO";

/// `vads_url_check_src` → who or what caused the notification (lyra.md §5).
pub const SOURCE_WORDS: &[(&str, &str)] = &[
    ("PAY", "payment page"),
    ("BO", "manual resend from back office"),
    ("MERCH_BO", "back-office operation"),
    ("BATCH", "batch update"),
    ("BATCH_AUTO", "deferred authorisation batch"),
    ("REC", "recurring payment"),
    ("RETRY", "automatic retry"),
    ("DCF", "data-collection form"),
    ("PAYMENT_ORDER", "payment order"),
    ("VOICE_ORDER", "phone payment order"),
];

/// The words for a `vads_url_check_src`, if the daemon knows it.
pub fn source_words(source: &str) -> Option<&'static str> {
    SOURCE_WORDS
        .iter()
        .find(|(known, _)| *known == source)
        .map(|(_, words)| *words)
}

// ------------------------------------------------------------------ rules

/// The facts the rules look at, read once.
struct Signals<'a> {
    status: &'a str,
    group: Option<StatusGroup>,
    analysis: &'a str,
    reading: AnalysisReading,
    assessment: &'a [String],
    control: &'a [(String, String)],
    operation: &'a str,
}

impl<'a> Signals<'a> {
    fn of(f: &'a LyraFacts) -> Signals<'a> {
        Signals {
            status: &f.trans_status,
            group: StatusGroup::of(&f.trans_status),
            analysis: f.risk_analysis.trim(),
            reading: AnalysisReading::of(&f.risk_analysis),
            assessment: &f.risk_assessment,
            control: &f.risk_control,
            operation: &f.operation_type,
        }
    }

    fn has_assessment(&self, action: &str) -> bool {
        self.assessment.iter().any(|a| a == action)
    }

    fn analysis_is(&self, class: AnalysisClass) -> bool {
        self.reading == AnalysisReading::Known(class)
    }

    fn is_success(&self) -> bool {
        self.group == Some(StatusGroup::Success)
    }

    /// The first control that reported a warning or a blocking error.
    fn failed_control(&self) -> Option<&(String, String)> {
        self.control
            .iter()
            .find(|(_, result)| result == CONTROL_WARNING || result == CONTROL_ERROR)
    }
}

/// A rule: `Some(why)` when it matches.
type Rule = fn(&Signals) -> Option<String>;

/// The rules in the order they are tried; the first match decides.
const RULES: [(Outcome, Rule); 9] = [
    (Outcome::Canceled, rule_a_canceled),
    (Outcome::Rejected, rule_b_rejected),
    (Outcome::Failed, rule_c_failed),
    (Outcome::Review, rule_d_review),
    (Outcome::Pending, rule_e_pending),
    (Outcome::Refunded, rule_f_refunded),
    (Outcome::Accepted, rule_g0_validated),
    (Outcome::SuspectedFraud, rule_g_suspected_fraud),
    (Outcome::Accepted, rule_h_accepted),
];

fn rule_a_canceled(s: &Signals) -> Option<String> {
    if s.group == Some(StatusGroup::Canceled) {
        Some(format!("a: status {}", s.status))
    } else if s.analysis_is(AnalysisClass::Cancel) {
        Some(format!("a: risk analysis {}", s.analysis))
    } else {
        None
    }
}

fn rule_b_rejected(s: &Signals) -> Option<String> {
    if s.has_assessment(ASSESSMENT_REFUSE) {
        Some(format!("b: risk assessment {ASSESSMENT_REFUSE}"))
    } else if s.analysis_is(AnalysisClass::Reject) {
        Some(format!("b: risk analysis {}", s.analysis))
    } else {
        None
    }
}

fn rule_c_failed(s: &Signals) -> Option<String> {
    (s.group == Some(StatusGroup::Failed)).then(|| format!("c: status {}", s.status))
}

fn rule_d_review(s: &Signals) -> Option<String> {
    if s.group == Some(StatusGroup::ToValidate) {
        Some(format!("d: status {}", s.status))
    } else if s.has_assessment(ASSESSMENT_MANUAL_VALIDATION) && !s.is_success() {
        // On a success status the validation has already happened (see g0).
        Some(format!("d: risk assessment {ASSESSMENT_MANUAL_VALIDATION}"))
    } else if s.analysis_is(AnalysisClass::Review) {
        Some(format!("d: risk analysis {}", s.analysis))
    } else {
        None
    }
}

fn rule_e_pending(s: &Signals) -> Option<String> {
    (s.group == Some(StatusGroup::Pending)).then(|| format!("e: status {}", s.status))
}

fn rule_f_refunded(s: &Signals) -> Option<String> {
    (s.is_success() && s.operation == OPERATION_CREDIT)
        .then(|| format!("f: status {} on a {OPERATION_CREDIT} operation", s.status))
}

/// g0: `MANUAL_VALIDATION` on a success status. A transaction the risk
/// rules hold is created as AUTHORISED_TO_VALIDATE and leaves that status
/// only when someone validates it; the IPN that reports the validation
/// (usually MERCH_BO) still carries the assessment. A person has looked at
/// the payment and chose to take it, so informational risk signals (rule g)
/// do not send it back to review. Analyser verdicts (rules a, b, d) and
/// refunds (f) still come first.
fn rule_g0_validated(s: &Signals) -> Option<String> {
    (s.is_success() && s.has_assessment(ASSESSMENT_MANUAL_VALIDATION)).then(|| {
        format!(
            "g0: status {} after {ASSESSMENT_MANUAL_VALIDATION} (validated manually)",
            s.status
        )
    })
}

fn rule_g_suspected_fraud(s: &Signals) -> Option<String> {
    if !s.is_success() {
        return None;
    }
    if s.has_assessment(ASSESSMENT_INFORM) {
        return Some(format!(
            "g: risk assessment {ASSESSMENT_INFORM} on status {}",
            s.status
        ));
    }
    if let Some((control, result)) = s.failed_control() {
        return Some(format!(
            "g: risk control {control}={result} on status {}",
            s.status
        ));
    }
    match s.reading {
        AnalysisReading::Known(AnalysisClass::Error) => Some(format!(
            "g: risk analysis error {} on status {}",
            s.analysis, s.status
        )),
        AnalysisReading::Unknown => Some(format!(
            "g: unknown risk analysis result {} on status {}",
            s.analysis, s.status
        )),
        _ => None,
    }
}

fn rule_h_accepted(s: &Signals) -> Option<String> {
    if !s.is_success() {
        return None;
    }
    Some(match s.reading {
        AnalysisReading::Absent => format!("h: status {}, no risk finding", s.status),
        _ => format!("h: status {}, risk analysis {}", s.status, s.analysis),
    })
}

/// REST `orderCycle` once no further attempt can be made on the form token.
pub const ORDER_CYCLE_CLOSED: &str = "CLOSED";

/// Rule r1 (REST only): a payment that did not go through while the order
/// cycle is still open changes nothing. The buyer may retry with the same
/// form token (lyra.md §2.3: the official plugins do nothing then); failing
/// the order would send the retry's success to review.
pub(super) fn judge_lyra(f: &LyraFacts) -> Option<Judgement> {
    let cycle = f.order_cycle.as_str();
    if cycle.is_empty() || cycle == ORDER_CYCLE_CLOSED {
        return None;
    }
    matches!(
        StatusGroup::of(&f.trans_status),
        Some(StatusGroup::Canceled | StatusGroup::Failed)
    )
    .then(|| Judgement {
        effect: None,
        rule: format!(
            "r1: status {} with orderCycle {cycle}: the buyer may still pay with the same form token",
            f.trans_status
        ),
        warnings: Vec::new(),
    })
}

pub(super) fn assess_lyra(f: &LyraFacts) -> Assessment {
    let signals = Signals::of(f);
    let (outcome, rule) = RULES
        .iter()
        .find_map(|(outcome, rule)| rule(&signals).map(|why| (*outcome, why)))
        // Only a status outside every group gets here: wait for a known one
        // rather than guess.
        .unwrap_or_else(|| (Outcome::Pending, unknown_status_rule(signals.status)));
    let mut warnings = unknown_value_warnings(f, &signals);
    if signals.group.is_none() {
        warnings.insert(
            0,
            format!(
                "unknown Lyra transaction status {:?}; assessed {outcome} ({rule})",
                f.trans_status
            ),
        );
    }
    Assessment {
        outcome,
        rule,
        warnings,
    }
}

fn unknown_status_rule(status: &str) -> String {
    if status.is_empty() {
        "unknown status (none sent), kept pending".to_owned()
    } else {
        format!("unknown status {status}, kept pending")
    }
}

/// Values the platform may have added since these tables were written: an
/// operator should extend the tables (or learn the new code means nothing).
fn unknown_value_warnings(f: &LyraFacts, s: &Signals) -> Vec<String> {
    let assessments = f
        .risk_assessment
        .iter()
        .filter(|a| !is_known_assessment(a))
        .map(|a| format!("unknown Lyra risk assessment action {a:?}; it changes no outcome"));
    let analysis = (s.reading == AnalysisReading::Unknown).then(|| {
        format!(
            "unknown Lyra risk analysis result {:?}; a successful payment carrying it is suspected fraud",
            f.risk_analysis
        )
    });
    let controls = f
        .risk_control
        .iter()
        .filter(|(_, result)| ![CONTROL_OK, CONTROL_WARNING, CONTROL_ERROR].contains(&result.as_str()))
        .map(|(control, result)| {
            format!("unknown Lyra risk control result {result:?} for {control:?}; it changes no outcome")
        });
    assessments.chain(analysis).chain(controls).collect()
}
