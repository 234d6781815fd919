//! Lyra REST API V4: `Transaction/Validate` and `Transaction/CancelOrRefund`
//! (lyra.md §9).
//!
//! `POST {api_url}V4/Transaction/<Service>`, JSON, HTTP Basic with the shop
//! id and the REST password. The answer is an envelope: `status` is
//! `SUCCESS` (then `answer.detailedStatus` is the transaction's new status)
//! or `ERROR` (then `answer.errorCode`, `errorMessage`, `detailedErrorCode`,
//! `detailedErrorMessage`). `PSP_100` means the shop has no web-service
//! subscription.
//!
//! The request builders and [`interpret`] are pure; [`act`] does the I/O.

use serde_json::{json, Value};

use super::{http_client, snippet, transport_error, Action, GatewayError};
use crate::config::LyraApi;

/// The error code of a shop without the REST API subscription.
pub const NOT_SUBSCRIBED: &str = "PSP_100";

/// The web service an action calls.
pub fn service(action: Action) -> &'static str {
    match action {
        Action::Validate => "Transaction/Validate",
        Action::Deny => "Transaction/CancelOrRefund",
    }
}

/// `{api_url}V4/{service}` (`api_url` ends in `/`, see config).
pub fn endpoint(api_url: &str, action: Action) -> String {
    format!("{api_url}V4/{}", service(action))
}

/// The request body for one transaction. Deny only cancels: a captured
/// payment is not refunded behind the operator's back.
pub fn request_body(action: Action, uuid: &str, comment: &str) -> Value {
    match action {
        Action::Validate => json!({ "uuid": uuid, "comment": comment }),
        Action::Deny => json!({
            "uuid": uuid,
            "resolutionMode": "CANCELLATION_ONLY",
            "comment": comment,
        }),
    }
}

/// The `detailedStatus` values that mean the action worked.
pub fn expected_statuses(action: Action) -> &'static [&'static str] {
    match action {
        Action::Validate => &["AUTHORISED", "WAITING_AUTHORISATION"],
        Action::Deny => &["CANCELLED"],
    }
}

/// Reads Lyra's answer: the transaction's `detailedStatus` when it is one
/// the action expects, otherwise why not, in the gateway's words.
pub fn interpret(action: Action, http_status: u16, body: &str) -> Result<String, GatewayError> {
    let Ok(envelope) = serde_json::from_str::<Value>(body) else {
        let text = format!("HTTP {http_status}: {}", snippet(body));
        return Err(match http_status {
            401 | 403 => GatewayError::Refused(format!(
                "{text} (authentication refused: check site_id and rest_password)"
            )),
            500.. => GatewayError::Unreachable(text),
            _ => GatewayError::Refused(text),
        });
    };
    let answer = &envelope["answer"];
    let field = |name: &str| answer[name].as_str().unwrap_or("").trim().to_owned();
    match envelope["status"].as_str() {
        Some("SUCCESS") => {
            let status = field("detailedStatus");
            if expected_statuses(action).contains(&status.as_str()) {
                return Ok(status);
            }
            let shown = if status.is_empty() { "none" } else { &status };
            Err(GatewayError::Refused(format!(
                "{} answered detailedStatus {shown}, expected {}",
                service(action),
                expected_statuses(action).join(" or ")
            )))
        }
        Some("ERROR") => {
            let code = field("errorCode");
            let mut message = format!("{code}: {}", field("errorMessage"));
            let (detail_code, detail) = (field("detailedErrorCode"), field("detailedErrorMessage"));
            if !detail_code.is_empty() || !detail.is_empty() {
                message.push_str(&format!(" ({detail_code}: {detail})"));
            }
            if code == NOT_SUBSCRIBED {
                Err(GatewayError::NotSubscribed(message))
            } else {
                Err(GatewayError::Refused(message))
            }
        }
        _ => Err(GatewayError::Refused(format!(
            "HTTP {http_status}: not a web-service answer: {}",
            snippet(body)
        ))),
    }
}

/// Calls the service for each transaction in turn. Stops at the first
/// failure; the message then says which transactions were already done,
/// since those cannot be undone from here.
pub async fn act(
    api: &LyraApi,
    action: Action,
    transactions: &[String],
    comment: &str,
) -> Result<Vec<String>, GatewayError> {
    let client = http_client(api.timeout);
    let url = endpoint(&api.api_url, action);
    let mut done: Vec<String> = Vec::new();
    for uuid in transactions {
        let result = async {
            let response = client
                .post(&url)
                .basic_auth(&api.shop_id, Some(api.password.expose()))
                .json(&request_body(action, uuid, comment))
                .send()
                .await
                .map_err(transport_error)?;
            let status = response.status().as_u16();
            let body = response.text().await.map_err(transport_error)?;
            interpret(action, status, &body)
        }
        .await;
        match result {
            Ok(status) => done.push(status),
            Err(e) => return Err(partial(e, transactions, &done, uuid)),
        }
    }
    Ok(done)
}

/// Prefixes an error with the transactions already acted on, if any.
fn partial(
    e: GatewayError,
    transactions: &[String],
    done: &[String],
    failed: &str,
) -> GatewayError {
    if done.is_empty() {
        return e;
    }
    let ok: Vec<String> = transactions
        .iter()
        .zip(done)
        .map(|(t, s)| format!("{t} → {s}"))
        .collect();
    let text = |m: String| {
        format!(
            "transaction {failed}: {m} (already done: {})",
            ok.join(", ")
        )
    };
    match e {
        GatewayError::NotSubscribed(m) => GatewayError::NotSubscribed(text(m)),
        GatewayError::Refused(m) => GatewayError::Refused(text(m)),
        GatewayError::Unreachable(m) => GatewayError::Unreachable(text(m)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn envelope(status: &str, answer: Value) -> String {
        json!({
            "webService": "Transaction/Validate", "version": "V4", "status": status,
            "answer": answer, "mode": "TEST", "_type": "V4/WebService/Response"
        })
        .to_string()
    }

    #[test]
    fn requests_follow_the_documented_shapes() {
        assert_eq!(
            endpoint("https://api.payzen.eu/api-payment/", Action::Validate),
            "https://api.payzen.eu/api-payment/V4/Transaction/Validate"
        );
        assert_eq!(
            request_body(Action::Deny, "u1", "c"),
            json!({"uuid": "u1", "resolutionMode": "CANCELLATION_ONLY", "comment": "c"})
        );
        assert_eq!(
            request_body(Action::Validate, "u1", "c"),
            json!({"uuid": "u1", "comment": "c"})
        );
    }

    #[test]
    fn answers_are_read_by_status_and_detailed_status() {
        let ok = envelope("SUCCESS", json!({"detailedStatus": "AUTHORISED"}));
        assert_eq!(interpret(Action::Validate, 200, &ok).unwrap(), "AUTHORISED");
        let waiting = envelope(
            "SUCCESS",
            json!({"detailedStatus": "WAITING_AUTHORISATION"}),
        );
        assert!(interpret(Action::Validate, 200, &waiting).is_ok());
        let cancelled = envelope("SUCCESS", json!({"detailedStatus": "CANCELLED"}));
        assert_eq!(
            interpret(Action::Deny, 200, &cancelled).unwrap(),
            "CANCELLED"
        );
        assert!(interpret(Action::Validate, 200, &cancelled).is_err());

        let captured = envelope("SUCCESS", json!({"detailedStatus": "CAPTURED"}));
        assert_eq!(
            interpret(Action::Validate, 200, &captured),
            Err(GatewayError::Refused(
                "Transaction/Validate answered detailedStatus CAPTURED, expected AUTHORISED or WAITING_AUTHORISATION".into()
            ))
        );

        let psp100 = envelope(
            "ERROR",
            json!({"errorCode": "PSP_100", "errorMessage": "web services not subscribed",
                   "detailedErrorCode": null, "detailedErrorMessage": null}),
        );
        assert_eq!(
            interpret(Action::Validate, 200, &psp100),
            Err(GatewayError::NotSubscribed(
                "PSP_100: web services not subscribed".into()
            ))
        );
        let other = envelope(
            "ERROR",
            json!({"errorCode": "PSP_010", "errorMessage": "transaction not found",
                   "detailedErrorCode": "X1", "detailedErrorMessage": "uuid unknown"}),
        );
        assert_eq!(
            interpret(Action::Deny, 200, &other),
            Err(GatewayError::Refused(
                "PSP_010: transaction not found (X1: uuid unknown)".into()
            ))
        );
        assert!(matches!(
            interpret(Action::Deny, 401, "Unauthorized"),
            Err(GatewayError::Refused(m)) if m.contains("rest_password")
        ));
        assert!(matches!(
            interpret(Action::Deny, 503, "<html>down</html>"),
            Err(GatewayError::Unreachable(_))
        ));
    }

    #[test]
    fn a_partial_failure_names_what_was_already_done() {
        let e = partial(
            GatewayError::Refused("PSP_010: no".into()),
            &["a".into(), "b".into()],
            &["AUTHORISED".into()],
            "b",
        );
        assert_eq!(
            e.to_string(),
            "transaction b: PSP_010: no (already done: a → AUTHORISED)"
        );
    }
}
