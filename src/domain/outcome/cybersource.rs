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
use crate::domain::{Facts, Notification};

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
    // Card-processing webhooks (`productId: cardProcessing`): the payment
    // itself, not a risk decision (rules cs9 and cs10).
    /// `payments.payments.accept`: paid, or authorised for auth-only.
    PaymentAccept,
    /// `payments.payments.review`: pending review.
    PaymentReview,
    /// `payments.payments.reject`: declined.
    PaymentReject,
    /// `payments.payments.partial.approval`: only part of the amount.
    PaymentPartial,
    /// `payments.payments.updated`: informational.
    PaymentUpdated,
    /// `payments.reversals.accept`: the authorisation was reversed.
    ReversalAccept,
    /// `payments.reversals.reject`: the reversal failed.
    ReversalReject,
    CaptureAccept,
    CaptureReview,
    CaptureReject,
    /// `payments.credits.accept` / `payments.refunds.accept`.
    CreditAccept,
    CreditReview,
    CreditReject,
    CreditPartial,
    VoidAccept,
    VoidReject,
}

/// Webhook event types (cybersource.md §3.1).
pub const EVENT_TYPES: &[(&str, DmSignal)] = &[
    ("risk.profile.decision.review", DmSignal::ProfileReview),
    ("risk.profile.decision.reject", DmSignal::ProfileReject),
    ("risk.profile.decision.monitor", DmSignal::ProfileMonitor),
    ("risk.casemanagement.decision.accept", DmSignal::CaseAccept),
    ("risk.casemanagement.decision.reject", DmSignal::CaseReject),
    ("risk.casemanagement.addnote", DmSignal::Note),
    ("payments.payments.accept", DmSignal::PaymentAccept),
    ("payments.payments.review", DmSignal::PaymentReview),
    ("payments.payments.reject", DmSignal::PaymentReject),
    (
        "payments.payments.partial.approval",
        DmSignal::PaymentPartial,
    ),
    ("payments.payments.updated", DmSignal::PaymentUpdated),
    ("payments.reversals.accept", DmSignal::ReversalAccept),
    ("payments.reversals.reject", DmSignal::ReversalReject),
    ("payments.captures.accept", DmSignal::CaptureAccept),
    ("payments.captures.review", DmSignal::CaptureReview),
    ("payments.captures.reject", DmSignal::CaptureReject),
    ("payments.credits.accept", DmSignal::CreditAccept),
    ("payments.credits.review", DmSignal::CreditReview),
    ("payments.credits.reject", DmSignal::CreditReject),
    ("payments.credits.partial.approval", DmSignal::CreditPartial),
    ("payments.refunds.accept", DmSignal::CreditAccept),
    ("payments.refunds.reject", DmSignal::CreditReject),
    ("payments.refunds.partial.approval", DmSignal::CreditPartial),
    ("payments.voids.accept", DmSignal::VoidAccept),
    ("payments.voids.reject", DmSignal::VoidReject),
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
/// Statuses of a reversed authorisation or a voided payment: canceled.
pub const CANCELED_STATUSES: &[&str] = &["REVERSED", "VOIDED"];

/// A capture, credit or refund submitted for settlement: says nothing
/// about the order by itself (never confirms an unsigned event type).
pub const STATUS_PENDING: &str = "PENDING";

/// [`CybersourceFacts::signed`] when the signature covered only the
/// `payload` member: `eventType` is outside it.
pub const SIGNED_PAYLOAD_ONLY: &str = "payload";

/// Whether the event type is unauthenticated: a webhook whose signature
/// covered only the payload. Anyone holding one captured notification could
/// change it within the replay window.
pub fn event_type_unsigned(f: &CybersourceFacts) -> bool {
    f.channel == CybersourceChannel::Webhook && f.signed == SIGNED_PAYLOAD_ONLY
}

/// [`CybersourceFacts::signed`] of a notification taken at its event
/// type's word until the gateway confirms it ([`unsigned_claim`]), and of
/// one rebuilt from transaction details ([`from_gateway_state`]). Never
/// stored as a webhook's own `signed`.
pub const SIGNED_CLAIM: &str = "claim";
pub const FROM_GATEWAY: &str = "gateway";

/// Confirmation of cs8 (issue 15): when only the payload was signed, the
/// event type claims an outcome other than review, and the signed payload
/// carries no status that could agree, the notification as if its event
/// type were authenticated: what the order becomes if the gateway confirms
/// it. `None` otherwise (cs8 does not apply, or a signed status speaks and
/// cs8 decides as always).
pub fn unsigned_claim(n: &Notification) -> Option<Notification> {
    let Facts::Cybersource(f) = &n.facts else {
        return None;
    };
    if !event_type_unsigned(f) || status_verdict(&f.payment_status, &f.reason).is_some() {
        return None;
    }
    let mut claimed = f.clone();
    claimed.signed = SIGNED_CLAIM.to_owned();
    match judge(&claimed).effect {
        Some(o) if o != Outcome::Review => Some(Notification {
            facts: Facts::Cybersource(claimed),
            ..n.clone()
        }),
        _ => None,
    }
}

/// The gateway's state of the transaction `stored` names (its payment
/// status and reason, from transaction details) as a notification the
/// same rules decide: the event type is the one of `stored`'s family
/// (Decision Manager or card processing) that says what the status says,
/// so the outcome comes from the gateway, never from the unsigned event
/// type. `None` when the status says nothing (unknown, `PENDING`).
pub fn from_gateway_state(
    stored: &Notification,
    status: &str,
    reason: &str,
) -> Option<Notification> {
    let Facts::Cybersource(f) = &stored.facts else {
        return None;
    };
    let card = DmSignal::of(f).is_some_and(DmSignal::is_card_processing);
    let event_type = match (status_verdict(status, reason)?, card) {
        // Decision Manager's accept alone (no payment service ran) says
        // nothing about the funds: it never confirms a card-processing
        // claim, only a risk one.
        (Outcome::Accepted, true) if status.eq_ignore_ascii_case("ACCEPTED") => return None,
        (Outcome::Accepted, true) => "payments.payments.accept",
        (Outcome::Accepted, false) => "risk.casemanagement.decision.accept",
        (Outcome::Rejected, false) => "risk.casemanagement.decision.reject",
        (Outcome::Rejected | Outcome::Failed, _) => "payments.payments.reject",
        (Outcome::Review, true) => "payments.payments.review",
        (Outcome::Review, false) => "risk.profile.decision.review",
        (Outcome::Canceled, _) => "payments.reversals.accept",
        _ => return None,
    };
    let facts = CybersourceFacts {
        channel: CybersourceChannel::Webhook,
        event_type: event_type.to_owned(),
        payment_status: status.to_owned(),
        reason: reason.to_owned(),
        signed: FROM_GATEWAY.to_owned(),
        ..f.clone()
    };
    Some(Notification {
        facts: Facts::Cybersource(facts),
        ..stored.clone()
    })
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
    } else if CANCELED_STATUSES.contains(&status) {
        Some(Outcome::Canceled)
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
        || status == STATUS_PENDING
        || [
            REJECTED_STATUSES,
            REVIEW_STATUSES,
            ACCEPTED_STATUSES,
            CANCELED_STATUSES,
        ]
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
        Some(signal) if signal.is_card_processing() => card_processing_rule(signal, &what),
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
    // A card-processing decline: the signed status says the payment did not
    // go through (DECLINED → failed), which is what the event's rejection
    // says too.
    let not_through = |o: Option<Outcome>| matches!(o, Some(Outcome::Rejected | Outcome::Failed));
    let card_processing = DmSignal::of(f).is_some_and(DmSignal::is_card_processing);
    if signed == Some(claimed)
        || (card_processing && not_through(signed) && not_through(Some(claimed)))
    {
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

impl DmSignal {
    /// A card-processing event (the payment), not a Decision Manager one.
    pub fn is_card_processing(self) -> bool {
        !matches!(
            self,
            DmSignal::ProfileReview
                | DmSignal::ProfileReject
                | DmSignal::ProfileMonitor
                | DmSignal::CaseAccept
                | DmSignal::CaseReject
                | DmSignal::CaseReview
                | DmSignal::Note
        )
    }
}

/// cs9 / cs10: what a card-processing event means. An accepted payment or
/// capture is accepted, a payment or capture held (or partly approved) is a
/// review, a declined payment is rejected, a failed capture failed, a
/// reversal or void canceled, a credit or refund refunded. A reversal, void
/// or credit that did not go through, or an `updated`, changes nothing
/// (cs10: the payment is as it was). cs8 then checks an unsigned event
/// type against the signed status.
fn card_processing_rule(signal: DmSignal, what: &str) -> (Option<Outcome>, String) {
    use DmSignal::*;
    let effect = match signal {
        PaymentAccept | CaptureAccept => Some(Outcome::Accepted),
        PaymentReview | PaymentPartial | CaptureReview => Some(Outcome::Review),
        PaymentReject => Some(Outcome::Rejected),
        CaptureReject => Some(Outcome::Failed),
        ReversalAccept | VoidAccept => Some(Outcome::Canceled),
        CreditAccept => Some(Outcome::Refunded),
        _ => None,
    };
    match effect {
        Some(outcome) => (
            Some(outcome),
            format!("cs9: card processing, {what}: {outcome}"),
        ),
        None => (
            None,
            format!("cs10: card processing, {what}: the payment is as it was"),
        ),
    }
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
            Some(
                DmSignal::CaseAccept
                    | DmSignal::ProfileMonitor
                    | DmSignal::PaymentAccept
                    | DmSignal::CaptureAccept
            )
        ))
        || ACCEPTED_STATUSES.contains(&f.payment_status.as_str())
        || f.payment_status == "AUTHORIZED_PENDING_REVIEW"
}

/// Whether the notification is the merchant's own reversal or void of the
/// payment (the only Cybersource news that may cancel a paid order): a
/// signed event type, or a signed status that says so.
pub(super) fn is_reversal(f: &CybersourceFacts) -> bool {
    matches!(
        DmSignal::of(f),
        Some(DmSignal::ReversalAccept | DmSignal::VoidAccept)
    ) && (!event_type_unsigned(f) || CANCELED_STATUSES.contains(&f.payment_status.as_str()))
}

#[cfg(test)]
mod tests;
