//! Lyra REST API V4: `Transaction/Validate`, `Transaction/Get` and
//! `Transaction/CancelOrRefund` (lyra.md §9).
//!
//! Validate is only for a transaction waiting for validation
//! (`AUTHORISED_TO_VALIDATE`, `WAITING_AUTHORISATION_TO_VALIDATE`). A
//! transaction that already succeeded (`AUTHORISED`, `CAPTURED`…: an order
//! held as `suspected_fraud`) is accepted the way the plugins' core
//! `acceptPayment` does it: `Transaction/Get`, checking that it is a
//! successful or pending DEBIT, and nothing else at the gateway.
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

use super::{http_client, partial, snippet, transport_error, Action, GatewayError};
use crate::config::LyraApi;

/// The error code of a shop without the REST API subscription.
pub const NOT_SUBSCRIBED: &str = "PSP_100";

/// The statuses of a transaction waiting for validation: the only ones
/// `Transaction/Validate` accepts.
pub const TO_VALIDATE: [&str; 2] = [
    "AUTHORISED_TO_VALIDATE",
    "WAITING_AUTHORISATION_TO_VALIDATE",
];

/// The statuses `Transaction/Get` must find to accept a payment after a
/// fraud flag: the plugins' success and pending groups (lyra.md §4), but
/// for the to-validate ones, which need `Transaction/Validate`.
pub const ACCEPTABLE: [&str; 12] = [
    "ACCEPTED",
    "AUTHORISED",
    "CAPTURED",
    "PARTIALLY_AUTHORISED",
    "INITIAL",
    "SUSPENDED",
    "UNDER_VERIFICATION",
    "WAITING_AUTHORISATION",
    "PRE_AUTHORISED",
    "WAITING_FOR_PAYMENT",
    "PENDING",
    "REFUND_TO_RETRY",
];

/// The web service of a Validate or a Deny.
pub fn service(action: Action) -> &'static str {
    match action {
        Action::Validate => "Transaction/Validate",
        Action::Deny => "Transaction/CancelOrRefund",
    }
}

/// Reads one transaction.
pub const GET: &str = "Transaction/Get";

/// The first call for one transaction, from its latest notified status:
/// validating a transaction that is not waiting for validation means
/// accepting it as it is (`Transaction/Get`). An unknown status (none
/// stored) keeps the plain Validate.
pub fn first_call(action: Action, stored_status: &str) -> &'static str {
    match action {
        Action::Validate if !stored_status.is_empty() && !TO_VALIDATE.contains(&stored_status) => {
            GET
        }
        _ => service(action),
    }
}

/// `{api_url}V4/{service}` (`api_url` ends in `/`, see config).
pub fn endpoint(api_url: &str, service: &str) -> String {
    format!("{api_url}V4/{service}")
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
    let answer = answer(http_status, body)?;
    let status = text(&answer, "detailedStatus");
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

/// What `Transaction/Get` found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Checked {
    /// A successful or pending DEBIT: accepted as it is.
    Acceptable(String),
    /// Waiting for validation after all: `Transaction/Validate` it.
    ToValidate(String),
}

/// Reads a `Transaction/Get` answer for an accept after a fraud flag.
pub fn interpret_get(http_status: u16, body: &str) -> Result<Checked, GatewayError> {
    let answer = answer(http_status, body)?;
    let (status, operation) = (
        text(&answer, "detailedStatus"),
        text(&answer, "operationType"),
    );
    if operation == "DEBIT" && TO_VALIDATE.contains(&status.as_str()) {
        return Ok(Checked::ToValidate(status));
    }
    if operation == "DEBIT" && ACCEPTABLE.contains(&status.as_str()) {
        return Ok(Checked::Acceptable(status));
    }
    let shown = |s: &str| {
        if s.is_empty() {
            "none".to_owned()
        } else {
            s.to_owned()
        }
    };
    Err(GatewayError::Refused(format!(
        "{GET} answered detailedStatus {} and operationType {}: not a successful or pending DEBIT, nothing to accept",
        shown(&status),
        shown(&operation)
    )))
}

fn text(answer: &Value, name: &str) -> String {
    answer[name].as_str().unwrap_or("").trim().to_owned()
}

/// The `answer` of a `SUCCESS` envelope, otherwise why not.
pub(super) fn answer(http_status: u16, body: &str) -> Result<Value, GatewayError> {
    let Ok(mut envelope) = serde_json::from_str::<Value>(body) else {
        let text = format!("HTTP {http_status}: {}", snippet(body));
        return Err(match http_status {
            401 | 403 => GatewayError::Refused(format!(
                "{text} (authentication refused: check site_id and rest_password)"
            )),
            500.. => GatewayError::Unreachable(text),
            _ => GatewayError::Refused(text),
        });
    };
    let answer = envelope["answer"].take();
    let field = |name: &str| text(&answer, name);
    match envelope["status"].as_str() {
        Some("SUCCESS") => Ok(answer),
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

/// One transaction acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Done {
    /// The web service that settled it (`Transaction/Get` for an accept
    /// after a fraud flag).
    pub service: &'static str,
    /// The transaction's `detailedStatus`.
    pub status: String,
}

/// Acts on each `(uuid, latest notified status)` in turn. Stops at the
/// first failure; the message then says which transactions were already
/// done, since those cannot be undone from here.
pub async fn act(
    api: &LyraApi,
    action: Action,
    transactions: &[(String, String)],
    comment: &str,
) -> Result<Vec<Done>, GatewayError> {
    let client = http_client(api.timeout);
    let call = |service: &'static str, body: Value| {
        let request = client
            .post(endpoint(&api.api_url, service))
            .basic_auth(&api.shop_id, Some(api.password.expose()))
            .json(&body);
        async move {
            let response = request.send().await.map_err(transport_error)?;
            let status = response.status().as_u16();
            let body = super::read_answer(response).await?;
            Ok::<_, GatewayError>((status, body))
        }
    };
    let mut done: Vec<(String, String)> = Vec::new();
    let mut results = Vec::new();
    for (uuid, stored) in transactions {
        let result = async {
            if first_call(action, stored) == GET {
                let (status, body) = call(GET, json!({ "uuid": uuid })).await?;
                match interpret_get(status, &body)? {
                    Checked::Acceptable(status) => {
                        return Ok(Done {
                            service: GET,
                            status,
                        })
                    }
                    Checked::ToValidate(_) => {}
                }
            }
            let (status, body) = call(service(action), request_body(action, uuid, comment)).await?;
            Ok(Done {
                service: service(action),
                status: interpret(action, status, &body)?,
            })
        }
        .await;
        match result {
            Ok(d) => {
                done.push((uuid.clone(), d.status.clone()));
                results.push(d);
            }
            Err(e) => return Err(partial(e, &done, uuid)),
        }
    }
    Ok(results)
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
            endpoint(
                "https://api.payzen.eu/api-payment/",
                service(Action::Validate)
            ),
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
    fn validate_calls_get_for_a_transaction_that_is_not_waiting_for_validation() {
        assert_eq!(
            first_call(Action::Validate, "AUTHORISED_TO_VALIDATE"),
            "Transaction/Validate"
        );
        assert_eq!(
            first_call(Action::Validate, "WAITING_AUTHORISATION_TO_VALIDATE"),
            "Transaction/Validate"
        );
        assert_eq!(first_call(Action::Validate, ""), "Transaction/Validate");
        assert_eq!(first_call(Action::Validate, "AUTHORISED"), GET);
        assert_eq!(first_call(Action::Validate, "CAPTURED"), GET);
        assert_eq!(
            first_call(Action::Deny, "AUTHORISED"),
            "Transaction/CancelOrRefund"
        );

        let get = |status: &str, operation: &str| {
            envelope(
                "SUCCESS",
                json!({"uuid": "u1", "detailedStatus": status, "operationType": operation}),
            )
        };
        assert_eq!(
            interpret_get(200, &get("CAPTURED", "DEBIT")),
            Ok(Checked::Acceptable("CAPTURED".into()))
        );
        assert_eq!(
            interpret_get(200, &get("UNDER_VERIFICATION", "DEBIT")),
            Ok(Checked::Acceptable("UNDER_VERIFICATION".into()))
        );
        assert_eq!(
            interpret_get(200, &get("AUTHORISED_TO_VALIDATE", "DEBIT")),
            Ok(Checked::ToValidate("AUTHORISED_TO_VALIDATE".into()))
        );
        assert_eq!(
            interpret_get(200, &get("AUTHORISED", "CREDIT")),
            Err(GatewayError::Refused(
                "Transaction/Get answered detailedStatus AUTHORISED and operationType CREDIT: not a successful or pending DEBIT, nothing to accept".into()
            ))
        );
        assert!(interpret_get(200, &get("EXPIRED", "DEBIT")).is_err());
        assert!(interpret_get(200, &get("CANCELLED", "DEBIT")).is_err());
    }
}
