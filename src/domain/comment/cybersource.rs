//! Comment lines for Cybersource Decision Manager notifications, e.g.
//!
//! ```text
//! Cybersource Decision Manager: case accepted by analyst jdoe — note: Called the buyer, all fine.
//! Order 100000123, payment request 7816113601776026104501.
//! Outcome: accepted (rule cs2: case accepted (event risk.casemanagement.decision.accept)).
//! ```

use super::{lookup, printable, MAX_SENTENCE_CHARS, MAX_VALUE_CHARS};
use crate::domain::notification::{CybersourceChannel, CybersourceFacts, Notification};
use crate::domain::outcome::cybersource::DmSignal;

/// What a Decision Manager signal says, in words.
pub fn signal_words(signal: DmSignal) -> &'static str {
    match signal {
        DmSignal::ProfileReview => "profile decision REVIEW (held for an analyst's review)",
        DmSignal::ProfileReject => "profile decision REJECT (rejected by the decision profile)",
        DmSignal::ProfileMonitor => {
            "profile decision MONITOR (a monitor rule flagged the payment; it went through)"
        }
        DmSignal::CaseAccept => "case accepted",
        DmSignal::CaseReject => "case rejected",
        DmSignal::CaseReview => "case sent back to review",
        DmSignal::Note => "case note added",
        DmSignal::PaymentAccept => "payment accepted",
        DmSignal::PaymentReview => "payment held for review",
        DmSignal::PaymentReject => "payment rejected",
        DmSignal::PaymentPartial => "payment partially approved",
        DmSignal::PaymentUpdated => "payment updated (informational)",
        DmSignal::ReversalAccept => "authorisation reversed",
        DmSignal::ReversalReject => "authorisation reversal failed",
        DmSignal::CaptureAccept => "capture accepted",
        DmSignal::CaptureReview => "capture held for review",
        DmSignal::CaptureReject => "capture rejected",
        DmSignal::CreditAccept => "credit (refund) accepted",
        DmSignal::CreditReview => "credit (refund) held for review",
        DmSignal::CreditReject => "credit (refund) rejected",
        DmSignal::CreditPartial => "credit (refund) partially approved",
        DmSignal::VoidAccept => "payment voided",
        DmSignal::VoidReject => "void failed",
    }
}

/// Payment statuses (REST `status`) in words.
pub const DM_STATUS_WORDS: &[(&str, &str)] = &[
    ("AUTHORIZED", "authorised"),
    ("PARTIAL_AUTHORIZED", "partially authorised"),
    ("ACCEPTED", "accepted by Decision Manager"),
    ("AUTHORIZED_PENDING_REVIEW", "authorised, held for review"),
    ("PENDING_REVIEW", "held for review, not authorised yet"),
    (
        "AUTHORIZED_RISK_DECLINED",
        "authorised, then declined by Decision Manager: reverse the authorisation",
    ),
    ("REJECTED", "rejected by Decision Manager"),
    ("DECLINED", "declined"),
    ("REVERSED", "authorisation reversed"),
    ("VOIDED", "voided"),
    ("PENDING", "submitted for settlement"),
];

const MAX_NOTES: usize = 5;

pub(super) fn lines(n: &Notification, f: &CybersourceFacts) -> Vec<Option<String>> {
    vec![
        Some(headline(f, n.order_ref.is_empty())),
        Some(transaction_line(n, f)),
    ]
}

fn headline(f: &CybersourceFacts, no_order: bool) -> String {
    let card_processing = DmSignal::of(f).is_some_and(DmSignal::is_card_processing);
    let who = match f.channel {
        CybersourceChannel::Webhook if card_processing => "Cybersource card processing",
        CybersourceChannel::Webhook => "Cybersource Decision Manager",
        CybersourceChannel::Cmos => "Cybersource Decision Manager (order status report)",
    };
    // A CMOS document without any `<Update>`: about no order at all.
    if f.channel == CybersourceChannel::Cmos && no_order {
        return format!("{who}: a document without any Update.");
    }
    let signal = DmSignal::of(f);
    let mut what = match signal {
        Some(s) => signal_words(s).to_owned(),
        None if f.channel == CybersourceChannel::Cmos => format!(
            "unknown decision {}",
            printable(&f.new_decision, MAX_VALUE_CHARS)
        ),
        None => format!(
            "unknown event {}",
            printable(&f.event_type, MAX_VALUE_CHARS)
        ),
    };
    let by_analyst = matches!(
        signal,
        Some(DmSignal::CaseAccept | DmSignal::CaseReject | DmSignal::CaseReview | DmSignal::Note)
    );
    if by_analyst && !f.reviewer.is_empty() {
        let by = if signal == Some(DmSignal::Note) {
            " by"
        } else {
            " by analyst"
        };
        what.push_str(&format!("{by} {}", printable(&f.reviewer, MAX_VALUE_CHARS)));
    }
    if !f.original_decision.is_empty() && signal != Some(DmSignal::Note) {
        what.push_str(&format!(
            " (was {})",
            printable(&f.original_decision, MAX_VALUE_CHARS)
        ));
    }
    let mut line = format!("{who}: {what}");
    if let Some(notes) = notes_text(f) {
        line.push_str(" — note: ");
        line.push_str(&notes);
    }
    if !line.ends_with(['.', '!', '?']) {
        line.push('.');
    }
    line
}

/// The reviewer's comments and every note, `|`-separated; a note by
/// someone other than the reviewer names its author.
fn notes_text(f: &CybersourceFacts) -> Option<String> {
    let mut parts = Vec::new();
    if !f.reviewer_comments.trim().is_empty() {
        parts.push(f.reviewer_comments.trim().to_owned());
    }
    for note in f
        .notes
        .iter()
        .filter(|n| !n.comment.trim().is_empty())
        .take(MAX_NOTES)
    {
        let comment = note.comment.trim();
        if note.added_by.is_empty() || note.added_by == f.reviewer {
            parts.push(comment.to_owned());
        } else {
            parts.push(format!("{comment} ({})", note.added_by));
        }
    }
    (!parts.is_empty()).then(|| printable(&parts.join(" | "), MAX_SENTENCE_CHARS).into_owned())
}

/// `Order 100000123, payment request 742…, payment status … (…), reason ….`
fn transaction_line(n: &Notification, f: &CybersourceFacts) -> String {
    let mut parts = vec![if n.order_ref.is_empty() {
        "No order reference".to_owned()
    } else {
        format!("Order {}", printable(&n.order_ref, MAX_VALUE_CHARS))
    }];
    if !n.transaction_number.is_empty() {
        parts.push(format!(
            "payment request {}",
            printable(&n.transaction_number, MAX_VALUE_CHARS)
        ));
    }
    if !f.payment_status.is_empty() {
        let status = printable(&f.payment_status, MAX_VALUE_CHARS);
        parts.push(match lookup(DM_STATUS_WORDS, &f.payment_status) {
            Some(words) => format!("payment status {status} ({words})"),
            None => format!("payment status {status} (unknown status)"),
        });
    }
    if !f.reason.is_empty() {
        parts.push(format!("reason {}", printable(&f.reason, MAX_VALUE_CHARS)));
    }
    format!("{}.", parts.join(", "))
}

#[cfg(test)]
mod tests;
