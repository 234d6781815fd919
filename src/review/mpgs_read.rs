//! Mastercard Gateway REST, read side: Retrieve Order (mpgs.md §4), to
//! confirm what a webhook claims and to reconcile orders in review.
//!
//! `GET {gateway_url}/api/rest/version/{v}/merchant/{id}/order/{order}`,
//! HTTP Basic `merchant.<id>` + the API password. The answer is the order
//! (`id`, `reference`, `status`, `amount`, `currency`, the order's current
//! `risk`) with its operations in `transaction[]`, each shaped like a
//! Retrieve Transaction answer. The one the webhook named is rebuilt into
//! a Retrieve Transaction document (with the order's current status and
//! risk, where an analyst's review decision lands) and read by the same
//! parser as the webhook ([`crate::providers::mpgs::notification`]), so a
//! confirmed notification is decided by the same rules m1–m11.
//!
//! Amounts stay the gateway's JSON text (`RawValue`), never `f64`.

use serde_json::value::RawValue;
use std::collections::BTreeMap;

use super::gateway::Lookup;
use super::{http_client, read_answer, snippet, transport_error, GatewayError};
use crate::config::MpgsApi;
use crate::domain::Notification;
use crate::providers::mpgs::OrderRefField;

type Object = BTreeMap<String, Box<RawValue>>;

/// `…/api/rest/version/{v}/merchant/{id}/order/{order}`, the order id
/// percent-encoded as one path segment.
pub fn order_url(api: &MpgsApi, order_id: &str) -> String {
    format!(
        "{}/api/rest/version/{}/merchant/{}/order/{}",
        api.gateway_url,
        api.version,
        segment(&api.merchant_id),
        segment(order_id)
    )
}

fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn text(object: &Object, name: &str) -> Option<String> {
    object
        .get(name)
        .and_then(|v| serde_json::from_str::<String>(v.get()).ok())
}

/// Reads a Retrieve Order answer about the webhook `stored`.
pub fn interpret(
    stored: &Notification,
    order_ref: OrderRefField,
    http_status: u16,
    body: &str,
) -> Result<Lookup, GatewayError> {
    let Some(facts) = stored.mpgs() else {
        return Err(GatewayError::Refused(
            "not a Mastercard Gateway notification: cannot confirm it with Retrieve Order".into(),
        ));
    };
    let merchant = (!facts.merchant.is_empty()).then_some(facts.merchant.as_str());
    let lookup = interpret_order(
        &Wanted {
            order_id: &facts.order_id,
            transaction_id: Some(&facts.transaction_id),
            merchant,
            notification_id: &facts.notification_id,
        },
        order_ref,
        http_status,
        body,
    )?;
    if let Lookup::Found { notification, .. } = &lookup {
        if notification.order_ref != stored.order_ref {
            return Ok(Lookup::Unconfirmed(format!(
                "Mastercard Gateway Retrieve Order: transaction {} belongs to order {}, not to order {}",
                facts.transaction_id, notification.order_ref, stored.order_ref
            )));
        }
    }
    Ok(lookup)
}

/// What to read in a Retrieve Order answer.
pub struct Wanted<'a> {
    pub order_id: &'a str,
    /// The transaction; `None` = the order's last one (reconciliation of an
    /// order no notification named).
    pub transaction_id: Option<&'a str>,
    /// Checked against the answer's `merchant` when given.
    pub merchant: Option<&'a str>,
    pub notification_id: &'a str,
}

/// Reads a Retrieve Order answer.
pub fn interpret_order(
    w: &Wanted<'_>,
    order_ref: OrderRefField,
    http_status: u16,
    body: &str,
) -> Result<Lookup, GatewayError> {
    let parsed: Option<Object> = serde_json::from_str(body).ok();
    let error_of = |o: &Object| {
        o.get("error")
            .and_then(|e| serde_json::from_str::<Object>(e.get()).ok())
            .map(|e| {
                [text(&e, "cause"), text(&e, "explanation")]
                    .into_iter()
                    .flatten()
                    .collect::<Vec<_>>()
                    .join(": ")
            })
    };
    match http_status {
        200 => {}
        401 | 403 => {
            return Err(GatewayError::Refused(format!(
                "HTTP {http_status}: authentication refused (check merchant_id and api_password)"
            )))
        }
        // The gateway does not know the order (INVALID_REQUEST "Unable to
        // find order"), or the request is wrong for it.
        400 | 404 => {
            let why = parsed
                .as_ref()
                .and_then(error_of)
                .unwrap_or_else(|| snippet(body));
            return Ok(Lookup::Unconfirmed(format!(
                "Mastercard Gateway Retrieve Order does not know order {}: {why}",
                w.order_id
            )));
        }
        _ => {
            return Err(GatewayError::Unreachable(format!(
                "HTTP {http_status}: {}",
                snippet(body)
            )))
        }
    }
    let Some(order) = parsed else {
        return Err(GatewayError::Refused(format!(
            "Retrieve Order answered something that is not a JSON object: {}",
            snippet(body)
        )));
    };
    let transactions: Vec<Object> = order
        .get("transaction")
        .and_then(|t| serde_json::from_str(t.get()).ok())
        .unwrap_or_default();
    let id_of = |t: &Object| {
        t.get("transaction")
            .and_then(|x| serde_json::from_str::<Object>(x.get()).ok())
            .and_then(|x| text(&x, "id"))
    };
    let wanted = match w.transaction_id {
        Some(id) => id.to_owned(),
        None => match transactions.last().and_then(id_of) {
            Some(id) => id,
            None => {
                return Ok(Lookup::Unconfirmed(format!(
                    "Mastercard Gateway Retrieve Order: order {} has no transaction",
                    w.order_id
                )))
            }
        },
    };
    let Some(entry) = transactions
        .into_iter()
        .find(|t| id_of(t).as_deref() == Some(wanted.as_str()))
    else {
        return Ok(Lookup::Unconfirmed(format!(
            "Mastercard Gateway Retrieve Order: order {} has no transaction {wanted}",
            w.order_id
        )));
    };
    let document = transaction_document(&order, entry)
        .map_err(|e| GatewayError::Refused(format!("cannot rebuild the transaction: {e}")))?;
    let fetched = crate::providers::mpgs::notification(
        document.as_bytes(),
        Some(w.notification_id),
        w.merchant,
        order_ref,
    )
    .map_err(|e| {
        GatewayError::Refused(format!(
            "Retrieve Order's transaction {wanted} cannot be read: {e}"
        ))
    })?;
    let f = fetched.mpgs().expect("an MPGS notification");
    let mut summary = format!(
        "Mastercard Gateway: order {} is {}, transaction {} {} {} ({})",
        w.order_id,
        if f.order_status.is_empty() {
            "?"
        } else {
            &f.order_status
        },
        f.transaction_id,
        f.transaction_type,
        f.result,
        if f.gateway_code.is_empty() {
            "no gateway code"
        } else {
            &f.gateway_code
        },
    );
    if !f.risk_gateway_code.is_empty() || !f.review_decision.is_empty() {
        summary.push_str(&format!(
            ", risk {} review {}",
            f.risk_gateway_code, f.review_decision
        ));
    }
    Ok(Lookup::Found {
        notification: Box::new(fetched),
        summary,
    })
}

/// One `transaction[]` entry as a Retrieve Transaction document: the
/// order's identity and current status, amount and risk over the entry's.
fn transaction_document(order: &Object, mut entry: Object) -> Result<String, serde_json::Error> {
    let mut order_part: Object = entry
        .get("order")
        .and_then(|o| serde_json::from_str(o.get()).ok())
        .unwrap_or_default();
    for name in ["id", "reference", "status", "amount", "currency"] {
        if let Some(v) = order.get(name) {
            order_part.insert(name.to_owned(), v.clone());
        }
    }
    entry.insert(
        "order".to_owned(),
        RawValue::from_string(serde_json::to_string(&order_part)?)?,
    );
    // The order's risk is where Merchant Administration records an
    // analyst's decision: it is newer than the entry's copy.
    for name in ["risk", "merchant", "sourceOfFunds"] {
        match (order.get(name), name) {
            (Some(v), "risk") => {
                entry.insert(name.to_owned(), v.clone());
            }
            (Some(v), _) if !entry.contains_key(name) => {
                entry.insert(name.to_owned(), v.clone());
            }
            _ => {}
        }
    }
    serde_json::to_string(&entry)
}

/// Asks the gateway about the order `stored` names.
pub async fn fetch(
    api: &MpgsApi,
    order_ref: OrderRefField,
    stored: &Notification,
) -> Result<Lookup, GatewayError> {
    let order_id = stored.mpgs().map(|f| f.order_id.as_str()).unwrap_or("");
    let (status, body) = get_order(api, order_id).await?;
    interpret(stored, order_ref, status, &body)
}

/// Asks the gateway about order `order_id` (its last transaction).
pub async fn fetch_order(
    api: &MpgsApi,
    order_ref: OrderRefField,
    order_id: &str,
) -> Result<Lookup, GatewayError> {
    let (status, body) = get_order(api, order_id).await?;
    let wanted = Wanted {
        order_id,
        transaction_id: None,
        merchant: Some(&api.merchant_id),
        notification_id: "",
    };
    interpret_order(&wanted, order_ref, status, &body)
}

async fn get_order(api: &MpgsApi, order_id: &str) -> Result<(u16, String), GatewayError> {
    let response = http_client(api.timeout)
        .get(order_url(api, order_id))
        .basic_auth(
            format!("merchant.{}", api.merchant_id),
            Some(api.password.expose()),
        )
        .send()
        .await
        .map_err(transport_error)?;
    let status = response.status().as_u16();
    Ok((status, read_answer(response).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn webhook(gateway_code: &str) -> Notification {
        let body = format!(
            r#"{{"merchant":"M1","result":"SUCCESS","order":{{"id":"100","amount":10.00,"currency":"USD","status":"CAPTURED"}},
               "response":{{"gatewayCode":"{gateway_code}"}},"transaction":{{"id":"1","type":"PAYMENT","amount":10.00,"currency":"USD"}}}}"#
        );
        crate::providers::mpgs::notification(
            body.as_bytes(),
            Some("n1"),
            None,
            OrderRefField::OrderId,
        )
        .unwrap()
    }

    fn order(gateway_code: &str, result: &str, status: &str) -> String {
        format!(
            r#"{{"id":"100","reference":"100","status":"{status}","amount":10.00,"currency":"USD","merchant":"M1","result":"SUCCESS",
               "transaction":[{{"result":"{result}","response":{{"gatewayCode":"{gateway_code}"}},
                                "transaction":{{"id":"1","type":"PAYMENT","amount":10.00,"currency":"USD"}}}}]}}"#
        )
    }

    #[test]
    fn the_order_s_transaction_is_read_like_a_webhook() {
        let stored = webhook("APPROVED");
        let body = order("DECLINED", "FAILURE", "FAILED");
        let Lookup::Found {
            notification,
            summary,
        } = interpret(&stored, OrderRefField::OrderId, 200, &body).unwrap()
        else {
            panic!("found")
        };
        assert_eq!(notification.status(), "DECLINED");
        assert_eq!(notification.amount_minor, Some(1000));
        assert_eq!(
            summary,
            "Mastercard Gateway: order 100 is FAILED, transaction 1 PAYMENT FAILURE (DECLINED)"
        );
    }

    #[test]
    fn unknown_orders_and_transactions_are_unconfirmed() {
        let stored = webhook("APPROVED");
        let missing = r#"{"error":{"cause":"INVALID_REQUEST","explanation":"Unable to find order"},"result":"ERROR"}"#;
        assert!(matches!(
            interpret(&stored, OrderRefField::OrderId, 400, missing),
            Ok(Lookup::Unconfirmed(m)) if m.contains("Unable to find order")
        ));
        let body = order("APPROVED", "SUCCESS", "CAPTURED").replace(r#""id":"1""#, r#""id":"2""#);
        assert!(matches!(
            interpret(&stored, OrderRefField::OrderId, 200, &body),
            Ok(Lookup::Unconfirmed(m)) if m.contains("has no transaction 1")
        ));
        assert!(interpret(&stored, OrderRefField::OrderId, 502, "bad gateway").is_err());
        assert!(interpret(&stored, OrderRefField::OrderId, 401, "").is_err());
    }

    #[test]
    fn order_ids_are_one_path_segment() {
        assert_eq!(segment("A/1 b"), "A%2F1%20b");
    }
}
