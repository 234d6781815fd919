//! What an OpenCart answer means. OpenCart answers every API outcome with
//! HTTP 200 and tells them apart only in its JSON (shop reference,
//! section B), so each answer is classified by its text here, without I/O;
//! and a session token is scrubbed from any error text before it leaves.

use serde_json::Value;

use super::plan::{self, OrderInfo, Plan};
use super::{Answer, Dialect, Reply};
use crate::config::Secret;
use crate::shops::{status_error, PushError, Pushed};
use reqwest::StatusCode;

/// 3.0's answer to a bad, expired or IP-mismatched token.
const PERMISSION_ERROR: &str = "Warning: You do not have permission to access the API!";

/// The result of a plan whose entries were all sent (or that needed none).
pub(super) fn finish(plan: &Plan, answers: &[String]) -> Pushed {
    match plan {
        Plan::AlreadyApplied(pushed) => pushed.clone(),
        Plan::Send {
            entries,
            notes,
            applied_outcome,
            needs_operator,
        } => {
            let mut detail = answers.first().cloned().unwrap_or_default();
            if entries.len() > 1 {
                detail.push_str(" (customer notified with the customer text; operator comment in an entry that notifies nobody)");
            }
            for note in notes {
                detail.push_str("; ");
                detail.push_str(note);
            }
            Pushed {
                detail,
                needs_operator: needs_operator.clone(),
                applied_outcome: *applied_outcome,
            }
        }
    }
}

/// The first entry (the status change and the customer's notification)
/// went through, a later one (the operator comment) did not: retrying the
/// whole update would notify the customer again, so the update counts as
/// delivered and a person is told what is missing.
pub(super) fn partial(plan: &Plan, answers: &[String], error: &PushError) -> Pushed {
    let mut pushed = finish(plan, answers);
    let missing = format!(
        "the status was set and the customer notified, but the operator comment could not be added to the shop's history ({error}); it is in `ipnsync show`"
    );
    pushed.detail.push_str(&format!("; {missing}"));
    pushed.needs_operator = Some(match pushed.needs_operator {
        Some(earlier) => format!("{earlier}; {missing}"),
        None => missing,
    });
    pushed
}

/// Reads a login answer: the token, or why there is none.
pub(super) fn classify_login(answer: &Answer) -> Result<Secret, PushError> {
    if !answer.status.is_success() {
        return Err(status_error(answer.status, &answer.headers, &answer.body));
    }
    let Some(json) = parse_json(&answer.body) else {
        return Err(not_json(answer));
    };
    if let Some(token) = json
        .get("api_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        return Ok(Secret::new(token));
    }
    // 3.0 answers a wrong username or key with a bare `[]`.
    if json.as_array().is_some_and(Vec::is_empty) {
        return Err(PushError::permanent(
            "OpenCart refused the API credentials (login returned [])",
        ));
    }
    match error_text(&json) {
        Some(text) => Err(PushError::permanent(text)),
        None => Err(PushError::transient(format!(
            "unexpected answer to the OpenCart login (HTTP {})",
            answer.status.as_u16()
        ))),
    }
}

/// Reads an answer to the history call.
pub(super) fn classify_history(
    dialect: Dialect,
    answer: &Answer,
) -> Result<Reply<Pushed>, PushError> {
    let json = parse_json(&answer.body);
    match (dialect, answer.status) {
        // Signature, IP, clock and user failures all look the same.
        (Dialect::V41, StatusCode::FORBIDDEN) => {
            let text = json
                .as_ref()
                .and_then(error_text)
                .unwrap_or_else(|| snippet(&answer.body));
            return Err(PushError::permanent(format!(
                "OpenCart refused the signed call (HTTP 403: {text}); check the API key, the IP allow-list and the clock"
            )));
        }
        // 4.0.2 has no permission page: a refused token falls through to
        // the not-found page.
        (Dialect::V402, StatusCode::NOT_FOUND) => return Ok(Reply::SessionRefused),
        (_, status) if !status.is_success() => {
            return Err(status_error(status, &answer.headers, &answer.body))
        }
        _ => {}
    }
    let Some(json) = json else {
        return match dialect {
            Dialect::V402 => Ok(Reply::SessionRefused),
            _ => Err(not_json(answer)),
        };
    };
    if let Some(success) = json.get("success").and_then(Value::as_str) {
        return Ok(Reply::Done(Pushed::done(success)));
    }
    match error_text(&json) {
        Some(text) if text == PERMISSION_ERROR && dialect != Dialect::V41 => {
            Ok(Reply::SessionRefused)
        }
        // Unknown order, unknown call…: the shop's own words, for good.
        Some(text) => Err(PushError::permanent(text)),
        None => Err(PushError::transient(format!(
            "unexpected OpenCart answer: {}",
            snippet(&answer.body)
        ))),
    }
}

/// Reads an answer to 3.0's `api/order/info`: `{"order": {…}, "success":
/// …}` with the columns of `oc_order` (MySQL values, so numbers come as
/// strings), or `{"error": …}`.
pub(super) fn classify_order_info(answer: &Answer) -> Result<Reply<OrderInfo>, PushError> {
    if !answer.status.is_success() {
        return Err(status_error(answer.status, &answer.headers, &answer.body));
    }
    let Some(json) = parse_json(&answer.body) else {
        return Err(not_json(answer));
    };
    if let Some(order) = json.get("order").filter(|o| o.is_object()) {
        let text = |name: &str| match order.get(name) {
            Some(Value::String(s)) => Some(s.trim().to_owned()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let status_id = text("order_status_id")
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or_else(|| {
                PushError::transient("OpenCart's order/info answer has no readable order_status_id")
            })?;
        let total = text("total").unwrap_or_default();
        let rate = text("currency_value").unwrap_or_else(|| "1".to_owned());
        return Ok(Reply::Done(OrderInfo {
            status_id,
            // An unreadable total stays as it is: the amount check then
            // says it cannot read it, and never marks the order paid.
            total: plan::scaled_total(&total, &rate).unwrap_or(total),
            currency: text("currency_code").unwrap_or_default(),
        }));
    }
    match error_text(&json) {
        Some(text) if text == PERMISSION_ERROR => Ok(Reply::SessionRefused),
        Some(text) => Err(PushError::permanent(text)),
        None => Err(PushError::transient(format!(
            "unexpected answer to OpenCart's order/info: {}",
            snippet(&answer.body)
        ))),
    }
}

/// Parses an OpenCart JSON answer.
///
/// A shop with `display_errors` on can print a BOM or PHP notices before
/// the JSON (the recorded 3.0.5.1 and 4.1.0.4 shops on PHP 8.2 did not, but
/// extensions do). OpenCart prints its JSON on one line at the very end,
/// so when the whole body does not parse, its last line is tried.
pub(super) fn parse_json(body: &str) -> Option<Value> {
    let body = body.trim_start_matches('\u{feff}').trim();
    if let Ok(value) = serde_json::from_str(body) {
        return Some(value);
    }
    let last = body.rsplit('\n').next()?.trim();
    if last.starts_with('{') || last.starts_with('[') {
        serde_json::from_str(last).ok()
    } else {
        None
    }
}

/// The `error` of an answer: a string, or (3.0 login) an object of them.
/// In the IP-refused login, 3.0 also adds "Incorrect API Key!" although the
/// key was right, so the IP text alone is kept when present.
fn error_text(json: &Value) -> Option<String> {
    match json.get("error")? {
        Value::String(text) => Some(text.clone()),
        Value::Object(map) => {
            if let Some(ip) = map.get("ip").and_then(Value::as_str) {
                return Some(ip.to_owned());
            }
            let texts: Vec<&str> = map.values().filter_map(Value::as_str).collect();
            (!texts.is_empty()).then(|| texts.join(" "))
        }
        _ => None,
    }
}

/// An HTTP 200 whose body is not JSON: a PHP fatal error or a proxy page.
/// Transient, since the same request may well succeed later.
fn not_json(answer: &Answer) -> PushError {
    PushError::transient(format!(
        "OpenCart answered HTTP {} with something that is not JSON: {}",
        answer.status.as_u16(),
        snippet(&answer.body)
    ))
}

fn snippet(body: &str) -> String {
    body.chars().take(200).collect::<String>().trim().to_owned()
}

/// Removes a session token from an error text.
pub(super) fn redact(error: PushError, token: &str) -> PushError {
    if token.is_empty() {
        return error;
    }
    match error {
        PushError::Transient {
            reason,
            retry_after,
            unanswered,
        } => PushError::Transient {
            reason: reason.replace(token, "***"),
            retry_after,
            unanswered,
        },
        PushError::Permanent { reason } => PushError::Permanent {
            reason: reason.replace(token, "***"),
        },
    }
}
