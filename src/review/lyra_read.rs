//! Lyra REST API V4, read side: `Transaction/Get` by uuid, to confirm what a
//! notification claims (lyra.md §9; same endpoint, Basic auth and envelope
//! as the review actions in [`super::lyra`]).
//!
//! The request builder and [`interpret`] are pure; [`fetch`] does the I/O.

use serde_json::{json, Value};

use super::gateway::Lookup;
use super::lyra::{answer, endpoint, GET};
use super::{http_client, read_answer, transport_error, GatewayError};
use crate::config::LyraApi;
use crate::domain::{Facts, LyraFacts, Notification, Provider};
use crate::providers::lyra::Mode;

/// The `Transaction/Get` body for one transaction.
pub fn request_body(uuid: &str) -> Value {
    json!({ "uuid": uuid })
}

/// Reads a `Transaction/Get` answer about the transaction `stored` names,
/// and returns the notification as the gateway sees it: the stored one with
/// the gateway's `detailedStatus`, `operationType` and amount. The risk
/// fields stay the notification's: they can only hold an order back, never
/// accept it.
///
/// An `ERROR` envelope other than `PSP_100` (not subscribed), or a
/// transaction of another order, is [`Lookup::Unconfirmed`]: the gateway
/// does not vouch for this notification. Authentication and server errors
/// are errors (retried): they say nothing about the transaction.
pub fn interpret(
    stored: &Notification,
    http_status: u16,
    body: &str,
) -> Result<Lookup, GatewayError> {
    let answer = match answer(http_status, body) {
        Ok(a) => a,
        // 200 + ERROR envelope: the gateway answered about this uuid.
        Err(GatewayError::Refused(m)) if http_status == 200 => {
            return Ok(Lookup::Unconfirmed(format!(
                "Lyra {GET} does not know transaction {}: {m}",
                stored.transaction_id
            )))
        }
        Err(e) => return Err(e),
    };
    let text = |v: &Value| v.as_str().unwrap_or("").trim().to_owned();
    let status = text(&answer["detailedStatus"]);
    let operation = text(&answer["operationType"]);
    if status.is_empty() {
        return Err(GatewayError::Refused(format!(
            "Lyra {GET} answered no detailedStatus for transaction {}",
            stored.transaction_id
        )));
    }
    let order_id = text(&answer["orderDetails"]["orderId"]);
    if !order_id.is_empty() && order_id != stored.order_ref {
        return Ok(Lookup::Unconfirmed(format!(
            "Lyra {GET}: transaction {} belongs to order {order_id}, not to order {}",
            stored.transaction_id, stored.order_ref
        )));
    }
    let mut fetched = stored.clone();
    if let Some(amount) = answer["amount"].as_i64() {
        fetched.amount_minor = Some(amount);
    }
    let Facts::Lyra(facts) = &mut fetched.facts else {
        return Err(GatewayError::Refused(
            "not a Lyra notification: cannot confirm it with Lyra".into(),
        ));
    };
    facts.trans_status = status.clone();
    if !operation.is_empty() {
        facts.operation_type = operation.clone();
    }
    let summary = if operation.is_empty() {
        format!("Lyra: transaction {} is {status}", stored.transaction_id)
    } else {
        format!(
            "Lyra: transaction {} is {status} ({operation})",
            stored.transaction_id
        )
    };
    Ok(Lookup::Found {
        notification: Box::new(fetched),
        summary,
    })
}

/// Reads an order.
pub const ORDER_GET: &str = "Order/Get";

/// Reads an `Order/Get` answer (`answer.transactions[]`, each a
/// `V4/PaymentTransaction`) about order `order_id`: its last DEBIT
/// transaction, as a notification. `base` is the order's stored
/// notification, whose facts (card, mode, risk) are kept when it names the
/// same transaction; otherwise the notification is built from the answer
/// alone, with the source's `kind` and `mode`.
pub fn interpret_order(
    order_id: &str,
    base: Option<&Notification>,
    fresh: (Provider, Mode),
    http_status: u16,
    body: &str,
) -> Result<Lookup, GatewayError> {
    let answer = match answer(http_status, body) {
        Ok(a) => a,
        Err(GatewayError::Refused(m)) if http_status == 200 => {
            return Ok(Lookup::Unconfirmed(format!(
                "Lyra {ORDER_GET} does not know order {order_id}: {m}"
            )))
        }
        Err(e) => return Err(e),
    };
    let text = |v: &Value| v.as_str().unwrap_or("").trim().to_owned();
    let transactions = answer["transactions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let Some(tx) = transactions
        .iter()
        .rev()
        .find(|t| matches!(text(&t["operationType"]).as_str(), "DEBIT" | ""))
    else {
        return Ok(Lookup::Unconfirmed(format!(
            "Lyra {ORDER_GET}: order {order_id} has no payment transaction"
        )));
    };
    let uuid = text(&tx["uuid"]);
    let status = text(&tx["detailedStatus"]);
    if uuid.is_empty() || status.is_empty() {
        return Err(GatewayError::Refused(format!(
            "Lyra {ORDER_GET} answered a transaction without uuid or detailedStatus for order {order_id}"
        )));
    }
    let mut n = match base.filter(|b| b.transaction_id == uuid) {
        Some(b) => b.clone(),
        None => Notification {
            provider: fresh.0,
            order_ref: order_id.to_owned(),
            transaction_id: uuid.clone(),
            transaction_number: String::new(),
            amount_minor: None,
            currency: text(&tx["currency"]),
            facts: Facts::Lyra(LyraFacts {
                ctx_mode: fresh.1.as_str().to_owned(),
                ..Default::default()
            }),
        },
    };
    if let Some(amount) = tx["amount"].as_i64() {
        n.amount_minor = Some(amount);
    }
    if let Facts::Lyra(f) = &mut n.facts {
        f.trans_status = status.clone();
        f.operation_type = "DEBIT".to_owned();
    }
    Ok(Lookup::Found {
        notification: Box::new(n),
        summary: format!("Lyra: order {order_id}, transaction {uuid} is {status}"),
    })
}

/// Asks Lyra about order `order_id` (see [`interpret_order`]).
pub async fn fetch_order(
    api: &LyraApi,
    order_id: &str,
    base: Option<&Notification>,
    fresh: (Provider, Mode),
) -> Result<Lookup, GatewayError> {
    let response = http_client(api.timeout)
        .post(endpoint(&api.api_url, ORDER_GET))
        .basic_auth(&api.shop_id, Some(api.password.expose()))
        .json(&json!({ "orderId": order_id, "operationType": "DEBIT" }))
        .send()
        .await
        .map_err(transport_error)?;
    let status = response.status().as_u16();
    let body = read_answer(response).await?;
    interpret_order(order_id, base, fresh, status, &body)
}

/// Asks Lyra about the transaction `stored` names.
pub async fn fetch(api: &LyraApi, stored: &Notification) -> Result<Lookup, GatewayError> {
    let response = http_client(api.timeout)
        .post(endpoint(&api.api_url, GET))
        .basic_auth(&api.shop_id, Some(api.password.expose()))
        .json(&request_body(&stored.transaction_id))
        .send()
        .await
        .map_err(transport_error)?;
    let status = response.status().as_u16();
    let body = read_answer(response).await?;
    interpret(stored, status, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(status: &str) -> Notification {
        Notification {
            provider: Provider::LyraForm,
            order_ref: "100042".into(),
            transaction_id: "u1".into(),
            transaction_number: "000001".into(),
            amount_minor: Some(1000),
            currency: "978".into(),
            facts: Facts::Lyra(LyraFacts {
                trans_status: status.into(),
                operation_type: "DEBIT".into(),
                ..Default::default()
            }),
        }
    }

    fn envelope(status: &str, answer: Value) -> String {
        json!({"webService": GET, "version": "V4", "status": status, "answer": answer}).to_string()
    }

    #[test]
    fn the_gateway_state_replaces_the_notified_one() {
        let body = envelope(
            "SUCCESS",
            json!({"uuid": "u1", "detailedStatus": "REFUSED", "operationType": "DEBIT",
                   "amount": 900, "orderDetails": {"orderId": "100042"}}),
        );
        let Lookup::Found {
            notification,
            summary,
        } = interpret(&stored("AUTHORISED"), 200, &body).unwrap()
        else {
            panic!("found")
        };
        assert_eq!(notification.status(), "REFUSED");
        assert_eq!(notification.amount_minor, Some(900));
        assert_eq!(summary, "Lyra: transaction u1 is REFUSED (DEBIT)");
    }

    #[test]
    fn unknown_transactions_and_other_orders_are_unconfirmed() {
        let missing = envelope(
            "ERROR",
            json!({"errorCode": "PSP_010", "errorMessage": "transaction not found"}),
        );
        assert!(matches!(
            interpret(&stored("AUTHORISED"), 200, &missing),
            Ok(Lookup::Unconfirmed(m)) if m.contains("does not know transaction u1")
        ));
        let other = envelope(
            "SUCCESS",
            json!({"detailedStatus": "AUTHORISED", "orderDetails": {"orderId": "9"}}),
        );
        assert!(matches!(
            interpret(&stored("AUTHORISED"), 200, &other),
            Ok(Lookup::Unconfirmed(m)) if m.contains("belongs to order 9")
        ));
    }

    #[test]
    fn order_get_reads_the_last_payment_transaction() {
        let body = envelope(
            "SUCCESS",
            json!({"orderId": "100042", "transactions": [
                {"uuid": "u0", "detailedStatus": "REFUSED", "operationType": "DEBIT", "amount": 1000, "currency": "EUR"},
                {"uuid": "u1", "detailedStatus": "CAPTURED", "operationType": "DEBIT", "amount": 1000, "currency": "EUR"},
                {"uuid": "r1", "detailedStatus": "CAPTURED", "operationType": "CREDIT", "amount": 1000, "currency": "EUR"}
            ]}),
        );
        let Lookup::Found {
            notification,
            summary,
        } = interpret_order(
            "100042",
            None,
            (Provider::LyraRest, Mode::Production),
            200,
            &body,
        )
        .unwrap()
        else {
            panic!("found")
        };
        assert_eq!(summary, "Lyra: order 100042, transaction u1 is CAPTURED");
        assert_eq!(notification.transaction_id, "u1");
        assert_eq!(notification.provider, Provider::LyraRest);
        assert_eq!(notification.mode(), Some("PRODUCTION"));
        assert_eq!(notification.amount_minor, Some(1000));
        // The stored notification of the same transaction keeps its facts.
        let base = stored("AUTHORISED");
        let Lookup::Found { notification, .. } = interpret_order(
            "100042",
            Some(&base),
            (Provider::LyraRest, Mode::Production),
            200,
            &body.replace("\"u1\"", "\"u1x\""),
        )
        .unwrap() else {
            panic!("found")
        };
        assert_eq!(
            notification.provider,
            Provider::LyraRest,
            "not the same uuid"
        );
        let empty = envelope("SUCCESS", json!({"orderId": "1", "transactions": []}));
        assert!(matches!(
            interpret_order("1", None, (Provider::LyraForm, Mode::Test), 200, &empty),
            Ok(Lookup::Unconfirmed(_))
        ));
    }

    #[test]
    fn transport_and_account_problems_are_errors_to_retry() {
        let psp100 = envelope(
            "ERROR",
            json!({"errorCode": "PSP_100", "errorMessage": "x"}),
        );
        assert!(matches!(
            interpret(&stored("AUTHORISED"), 200, &psp100),
            Err(GatewayError::NotSubscribed(_))
        ));
        assert!(interpret(&stored("AUTHORISED"), 503, "<html>").is_err());
        assert!(interpret(&stored("AUTHORISED"), 401, "Unauthorized").is_err());
    }
}
