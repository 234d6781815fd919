//! The JSON views of review: a done action, the queue, an error (CLI
//! `--json` and the admin API).

use serde_json::{json, Value};

use super::{expiry, ActionReport, ReviewError};
use crate::domain::comment::format_amount;
use crate::domain::Outcome;
use crate::store::read::review_queue::ReviewItem;

/// The JSON of a successful action (CLI `--json` and the admin API).
pub fn report_json(r: &ActionReport) -> Value {
    json!({
        "action_id": r.action_id,
        "action": r.action.as_str(),
        "shop": r.shop,
        "order": r.order_ref,
        "gateway": r.gateway,
        "gateway_status": r.gateway_status,
        "transactions": r.transactions,
        "previous_outcome": r.previous_outcome.as_str(),
        "outcome": r.outcome.map(Outcome::as_str),
        "moved": r.moved,
        "outbox_id": r.outbox_id,
        "note": r.note,
    })
}

/// The JSON of the review queue at `now` (ms).
pub fn queue_json(items: &[ReviewItem], now: i64) -> Value {
    Value::Array(
        items
            .iter()
            .map(|i| {
                let expires = expiry::authorisation_expires_at(i);
                json!({
                    "shop": i.shop,
                    "order": i.order_ref,
                    "outcome": i.outcome.as_str(),
                    "action_needed": i.action_needed,
                    "source": i.source,
                    "provider": i.provider,
                    "transaction_id": i.transaction_id,
                    "amount_minor": i.amount_minor,
                    "currency": i.currency,
                    "amount": i.amount_minor.map(|m| format_amount(m, &i.currency)),
                    "since": i.since,
                    "age_seconds": (now - i.since).max(0) / 1000,
                    "authorisation_expires_at": expires,
                    "time_left_seconds": expires.map(|e| (e - now) / 1000),
                })
            })
            .collect(),
    )
}

/// The JSON error body of the admin API.
pub fn error_json(e: &ReviewError) -> Value {
    json!({ "error": e.code(), "message": e.to_string() })
}
