//! Provider fields → one canonical [`Outcome`].
//!
//! [`assess`] reads only the notification itself, never the order's
//! history (that is [`super::state`]'s job). The Lyra rules are an ordered
//! list ([`RULES`], a to h): the first one that matches wins. Cybersource
//! ([`cybersource`], cs1–cs8) and Mastercard Gateway ([`mpgs`], m1–m11)
//! have their own ordered rules. Every vocabulary the rules branch on is a
//! `const` table, so a reader finds a code by searching for it.
//! `docs/decisions.md` explains each rule to merchants.
//!
//! Some notifications must never change an order, whatever its state: a
//! Decision Manager note, a 3-D Secure step, a refused refund.
//! [`without_effect`] names them; the state machine ignores them (they are
//! still stored, and their comment says why), and [`assess`] reports them
//! as `pending` with the rule that matched.

pub mod cybersource;
pub mod mpgs;

use serde::{Deserialize, Serialize};

use super::notification::{Facts, LyraFacts, Notification};

/// The canonical answer to "what do I do with this order now?".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pending,
    Review,
    SuspectedFraud,
    Accepted,
    Rejected,
    Failed,
    Canceled,
    Refunded,
}

impl Outcome {
    pub const ALL: [Outcome; 8] = [
        Outcome::Pending,
        Outcome::Review,
        Outcome::SuspectedFraud,
        Outcome::Accepted,
        Outcome::Rejected,
        Outcome::Failed,
        Outcome::Canceled,
        Outcome::Refunded,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Review => "review",
            Outcome::SuspectedFraud => "suspected_fraud",
            Outcome::Accepted => "accepted",
            Outcome::Rejected => "rejected",
            Outcome::Failed => "failed",
            Outcome::Canceled => "canceled",
            Outcome::Refunded => "refunded",
        }
    }

    pub fn parse(s: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s)
    }

    /// Rejected, failed, canceled and refunded orders never change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Outcome::Rejected | Outcome::Failed | Outcome::Canceled | Outcome::Refunded
        )
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one notification and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assessment {
    pub outcome: Outcome,
    /// The rule that matched, in words (for logs and the comment).
    pub rule: String,
    pub warnings: Vec<String>,
}

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

/// A provider rule's conclusion: the outcome, or `None` for a notification
/// that is recorded without changing the order.
pub(crate) struct Judgement {
    pub effect: Option<Outcome>,
    pub rule: String,
    pub warnings: Vec<String>,
}

/// REST `orderCycle` once no further attempt can be made on the form token.
pub const ORDER_CYCLE_CLOSED: &str = "CLOSED";

/// Rule r1 (REST only): a payment that did not go through while the order
/// cycle is still open changes nothing. The buyer may retry with the same
/// form token (lyra.md §2.3: the official plugins do nothing then); failing
/// the order would send the retry's success to review.
fn judge_lyra(f: &LyraFacts) -> Option<Judgement> {
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

fn judge(notification: &Notification) -> Option<Judgement> {
    match &notification.facts {
        Facts::Lyra(f) => judge_lyra(f),
        Facts::Cybersource(f) => Some(cybersource::judge(f)),
        Facts::Mpgs(f) => Some(mpgs::judge(f)),
    }
}

/// Decides what one notification means, from its own fields only.
pub fn assess(notification: &Notification) -> Assessment {
    match (&notification.facts, judge(notification)) {
        (_, Some(j)) => Assessment {
            // A notification without effect is recorded as pending; the
            // state machine never applies it (see `without_effect`).
            outcome: j.effect.unwrap_or(Outcome::Pending),
            rule: j.rule,
            warnings: j.warnings,
        },
        (Facts::Lyra(f), None) => assess_lyra(f),
        (_, None) => unreachable!("every non-Lyra provider has a judge"),
    }
}

/// `Some(why)` when the notification must leave the order as it is,
/// whatever the order's state: a Decision Manager note or an unknown event
/// (Cybersource); a 3-D Secure or verification step, a pending answer, a
/// refused refund or void, an unknown transaction type (MPGS); a REST
/// non-success while the order cycle is open (Lyra rule r1).
pub fn without_effect(notification: &Notification) -> Option<String> {
    judge(notification)
        .filter(|j| j.effect.is_none())
        .map(|j| j.rule)
}

/// Whether the notification is a comment for the order's history and
/// nothing else: a Decision Manager note (webhook `addnote`, or a CMOS
/// update without a decision). It changes no order (see
/// [`without_effect`]), but the shop's history should show it, as a
/// comment that keeps the order's status and notifies nobody. 3-D Secure
/// steps and other events without effect are not comments: they stay in
/// ipnsync's own timeline.
pub fn comment_only(notification: &Notification) -> bool {
    match &notification.facts {
        Facts::Cybersource(f) => cybersource::DmSignal::of(f) == Some(cybersource::DmSignal::Note),
        Facts::Lyra(_) | Facts::Mpgs(_) => false,
    }
}

/// Whether the notification says money was taken or reserved: a Lyra
/// success status, an accepted or monitored Decision Manager verdict, an
/// approved MPGS payment. A final order that receives such news on another
/// transaction goes to review (see [`super::state`]).
pub fn reports_payment(notification: &Notification) -> bool {
    match &notification.facts {
        Facts::Lyra(f) => is_success_status(&f.trans_status),
        Facts::Cybersource(f) => cybersource::reports_payment(f),
        Facts::Mpgs(f) => mpgs::reports_payment(f),
    }
}

/// Lyra statuses of a transaction still alive at the gateway and still
/// cancellable: authorised (or to be), not captured yet. At its capture
/// date the platform captures it, whatever the shop's order says.
pub const CANCELLABLE_STATUSES: &[&str] = &[
    "AUTHORISED",
    "AUTHORISED_TO_VALIDATE",
    "WAITING_AUTHORISATION",
    "WAITING_AUTHORISATION_TO_VALIDATE",
    "PARTIALLY_AUTHORISED",
];

/// Whether the notification's risk verdict rejects or cancels an order
/// whose transaction is still alive at the gateway (rules a and b on an
/// authorised Lyra transaction: `AUTHORISED` + `FRD`, `REFUSE`, `CAN`…):
/// unless someone cancels it there, the money is taken anyway.
pub fn live_at_gateway(notification: &Notification) -> bool {
    match &notification.facts {
        Facts::Lyra(f) => {
            CANCELLABLE_STATUSES.contains(&f.trans_status.as_str())
                && matches!(
                    assess(notification).outcome,
                    Outcome::Rejected | Outcome::Canceled
                )
        }
        _ => false,
    }
}

/// Whether a cancellation comes from the merchant's own operation, the only
/// kind that may cancel a paid order: a Lyra back-office operation
/// (`MERCH_BO`), an MPGS void (made by the merchant, through the API or
/// Merchant Administration), a Cybersource reversal or void.
pub fn is_merchant_cancellation(notification: &Notification) -> bool {
    match &notification.facts {
        Facts::Lyra(f) => f.url_check_src == super::state::BACK_OFFICE_OPERATION,
        Facts::Cybersource(f) => cybersource::is_reversal(f),
        Facts::Mpgs(f) => mpgs::is_void(f),
    }
}

fn assess_lyra(f: &LyraFacts) -> Assessment {
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

#[cfg(test)]
pub(crate) mod test_support;
#[cfg(test)]
mod tests;
