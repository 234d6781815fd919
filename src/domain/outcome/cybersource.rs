//! Cybersource Decision Manager → one [`Outcome`] (rules cs1 to cs8).
//!
//! Decision Manager only ever reports a *risk* decision: a profile's verdict
//! when the payment was made, or an analyst's verdict on the case later. The
//! webhook's event type (or the CMOS `NewDecision`) says which; the payment
//! status, when the payload carries one, refines a profile verdict.
//!
//! When the signature covered only the `payload` member (the official
//! plugins' reading), the top-level `eventType` is not authenticated: cs8
//! then lets it accept or reject an order only when the signed payment
//! status says the same.

use super::{Judgement, Outcome};
use crate::domain::notification::{CybersourceChannel, CybersourceFacts};

/// What a webhook event or a CMOS update reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmSignal {
    /// The decision profile sent the payment to manual review.
    ProfileReview,
    /// The decision profile rejected the payment.
    ProfileReject,
    /// A monitor rule matched: the payment went through, flagged only.
    ProfileMonitor,
    /// An analyst accepted the case.
    CaseAccept,
    /// An analyst rejected the case.
    CaseReject,
    /// An analyst sent the case back to a review queue (CMOS only).
    CaseReview,
    /// A note on the case, no decision.
    Note,
}

/// Webhook event types (cybersource.md §3.1).
pub const EVENT_TYPES: &[(&str, DmSignal)] = &[
    ("risk.profile.decision.review", DmSignal::ProfileReview),
    ("risk.profile.decision.reject", DmSignal::ProfileReject),
    ("risk.profile.decision.monitor", DmSignal::ProfileMonitor),
    ("risk.casemanagement.decision.accept", DmSignal::CaseAccept),
    ("risk.casemanagement.decision.reject", DmSignal::CaseReject),
    ("risk.casemanagement.addnote", DmSignal::Note),
];

/// CMOS `<NewDecision>` values (cybersource.md §5); an update without one
/// is a note.
pub const CASE_DECISIONS: &[(&str, DmSignal)] = &[
    ("ACCEPT", DmSignal::CaseAccept),
    ("REJECT", DmSignal::CaseReject),
    ("REVIEW", DmSignal::CaseReview),
];

/// Payment statuses (REST `status`) that mean Decision Manager rejected
/// the payment (cs4). `REJECTED` is the standalone `/risk/v1/decisions` one.
pub const REJECTED_STATUSES: &[&str] = &["AUTHORIZED_RISK_DECLINED", "REJECTED"];
/// Payment statuses that mean the payment waits for an analyst (cs5).
pub const REVIEW_STATUSES: &[&str] = &["AUTHORIZED_PENDING_REVIEW", "PENDING_REVIEW"];
/// `DECLINED` is a rejection with this reason (cs4), a failure otherwise (cs6).
pub const STATUS_DECLINED: &str = "DECLINED";
pub const REASON_PROFILE_REJECT: &str = "DECISION_PROFILE_REJECT";
/// Payment statuses of a payment that went through (cs7).
pub const ACCEPTED_STATUSES: &[&str] = &["AUTHORIZED", "PARTIAL_AUTHORIZED", "ACCEPTED"];

/// [`CybersourceFacts::signed`] when the signature covered only the
/// `payload` member: `eventType` is outside it.
pub const SIGNED_PAYLOAD_ONLY: &str = "payload";

/// Whether the event type is unauthenticated: a webhook whose signature
/// covered only the payload. Anyone holding one captured notification could
/// change it within the replay window.
pub fn event_type_unsigned(f: &CybersourceFacts) -> bool {
    f.channel == CybersourceChannel::Webhook && f.signed == SIGNED_PAYLOAD_ONLY
}

/// What the payment status (and reason) alone say, `None` when the payload
/// carries no status or an unknown one. The same statuses as cs4 to cs7.
fn status_verdict(status: &str, reason: &str) -> Option<Outcome> {
    if REJECTED_STATUSES.contains(&status)
        || (status == STATUS_DECLINED && reason == REASON_PROFILE_REJECT)
    {
        Some(Outcome::Rejected)
    } else if REVIEW_STATUSES.contains(&status) {
        Some(Outcome::Review)
    } else if status == STATUS_DECLINED {
        Some(Outcome::Failed)
    } else if ACCEPTED_STATUSES.contains(&status) {
        Some(Outcome::Accepted)
    } else {
        None
    }
}

impl DmSignal {
    pub fn of(f: &CybersourceFacts) -> Option<DmSignal> {
        match f.channel {
            CybersourceChannel::Webhook => lookup(EVENT_TYPES, &f.event_type),
            CybersourceChannel::Cmos if f.new_decision.is_empty() => Some(DmSignal::Note),
            CybersourceChannel::Cmos => lookup(CASE_DECISIONS, &f.new_decision),
        }
    }
}

fn lookup(table: &[(&str, DmSignal)], code: &str) -> Option<DmSignal> {
    table.iter().find(|(c, _)| *c == code).map(|(_, s)| *s)
}

fn is_known_status(status: &str) -> bool {
    status == STATUS_DECLINED
        || [REJECTED_STATUSES, REVIEW_STATUSES, ACCEPTED_STATUSES]
            .iter()
            .any(|list| list.contains(&status))
}

/// What the decision rules make of one Cybersource notification.
pub(super) fn judge(f: &CybersourceFacts) -> Judgement {
    let mut warnings = Vec::new();
    let status = f.payment_status.as_str();
    if !status.is_empty() && !is_known_status(status) {
        warnings.push(format!(
            "unknown Cybersource payment status {status:?}; it changes no outcome"
        ));
    }
    let signal = DmSignal::of(f);
    let what = match f.channel {
        CybersourceChannel::Webhook => format!("event {}", f.event_type),
        CybersourceChannel::Cmos if f.new_decision.is_empty() => {
            "update without NewDecision".into()
        }
        CybersourceChannel::Cmos => format!("NewDecision {}", f.new_decision),
    };
    let (effect, rule) = match signal {
        None => {
            warnings.insert(
                0,
                format!("unknown Cybersource {what}; recorded without changing the order"),
            );
            (None, format!("cs1: unknown {what}, recorded only"))
        }
        Some(DmSignal::Note) => (None, format!("cs1: note only ({what})")),
        Some(DmSignal::CaseAccept) => (
            Some(Outcome::Accepted),
            format!("cs2: case accepted ({what})"),
        ),
        Some(DmSignal::CaseReject) => (
            Some(Outcome::Rejected),
            format!("cs3: case rejected ({what})"),
        ),
        Some(signal) => profile_rule(signal, status, &f.reason, &what),
    };
    let (effect, rule) = match effect {
        Some(claimed) if claimed != Outcome::Review && event_type_unsigned(f) => {
            unsigned_event_rule(f, claimed, rule, &mut warnings)
        }
        _ => (effect, rule),
    };
    Judgement {
        effect,
        rule,
        warnings,
    }
}

/// cs8: only the payload was signed, so the event type that says `claimed`
/// is not authenticated. The signed payment status decides: when it says
/// the same, the rule that matched stands; otherwise (it says something
/// else, or the payload carries none) the order is held for review, so that
/// a human looks, and a warning is logged. A claimed review needs no check:
/// it is what cs8 would do anyway.
fn unsigned_event_rule(
    f: &CybersourceFacts,
    claimed: Outcome,
    rule: String,
    warnings: &mut Vec<String>,
) -> (Option<Outcome>, String) {
    let status = f.payment_status.as_str();
    let signed = status_verdict(status, &f.reason);
    if signed == Some(claimed) {
        return (Some(claimed), rule);
    }
    let event = &f.event_type;
    let why = match signed {
        Some(signed) => format!("the signed payment status {status} says {signed}, not {claimed}"),
        None => "the signed payload carries no decision".to_owned(),
    };
    warnings.push(format!(
        "Cybersource event type {event} is not covered by the signature (only the payload was \
         signed) and {why}; the order is held for review instead of {claimed}"
    ));
    (
        Some(Outcome::Review),
        format!(
            "cs8: event type {event} not covered by the signature (only the payload was signed), \
             and {why}; held for review"
        ),
    )
}

/// cs4 to cs7: a profile verdict, refined by the payment status.
fn profile_rule(
    signal: DmSignal,
    status: &str,
    reason: &str,
    what: &str,
) -> (Option<Outcome>, String) {
    if signal == DmSignal::ProfileReject {
        return (
            Some(Outcome::Rejected),
            format!("cs4: profile rejected ({what})"),
        );
    }
    if REJECTED_STATUSES.contains(&status) {
        return (Some(Outcome::Rejected), format!("cs4: status {status}"));
    }
    if status == STATUS_DECLINED && reason == REASON_PROFILE_REJECT {
        return (
            Some(Outcome::Rejected),
            format!("cs4: status {status} with reason {reason}"),
        );
    }
    if matches!(signal, DmSignal::ProfileReview | DmSignal::CaseReview) {
        return (
            Some(Outcome::Review),
            format!("cs5: held for review ({what})"),
        );
    }
    if REVIEW_STATUSES.contains(&status) {
        return (Some(Outcome::Review), format!("cs5: status {status}"));
    }
    if status == STATUS_DECLINED {
        let why = if reason.is_empty() {
            String::new()
        } else {
            format!(" with reason {reason}")
        };
        return (Some(Outcome::Failed), format!("cs6: status {status}{why}"));
    }
    // Only MONITOR is left: the payment went through, a monitor rule
    // flagged it. The comment says so; the order is not held.
    let status_part = if status.is_empty() {
        String::new()
    } else {
        format!(", status {status}")
    };
    (
        Some(Outcome::Accepted),
        format!("cs7: monitor rule only, the payment went through ({what}{status_part})"),
    )
}

/// Whether the notification says money was taken or reserved: an analyst
/// accepted the case, a monitor let it through, or the payment status says
/// authorised (possibly held for review). An unsigned event type (cs8)
/// counts for nothing: only the signed status does.
pub(super) fn reports_payment(f: &CybersourceFacts) -> bool {
    (!event_type_unsigned(f)
        && matches!(
            DmSignal::of(f),
            Some(DmSignal::CaseAccept | DmSignal::ProfileMonitor)
        ))
        || ACCEPTED_STATUSES.contains(&f.payment_status.as_str())
        || f.payment_status == "AUTHORIZED_PENDING_REVIEW"
}

#[cfg(test)]
mod tests;
