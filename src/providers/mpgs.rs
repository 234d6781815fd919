//! Mastercard Gateway (MPGS) webhook notifications.
//!
//! The body is the REST-JSON "Retrieve Transaction" response of the
//! transaction that was created or updated. There is no signature: the
//! gateway sends a static shared secret in `X-Notification-Secret`, which is
//! compared in constant time (over SHA-256 digests, so its length does not
//! leak either) with every configured secret (two during a rotation).

use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::{ct_eq, Refusal};
use crate::domain::comment::find_currency;
use crate::domain::notification::MpgsFacts;
use crate::domain::{Facts, Notification, Provider};

pub const SECRET_HEADER: &str = "x-notification-secret";
pub const ID_HEADER: &str = "x-notification-id";

#[derive(Debug, Error, PartialEq, Eq)]
pub enum MpgsError {
    #[error("no X-Notification-Secret header")]
    MissingSecret,
    #[error("X-Notification-Secret does not match")]
    BadSecret,
    #[error("merchant {got:?} does not match the configured merchant")]
    MerchantMismatch { got: String },
    #[error("body is not a Mastercard Gateway notification: {0}")]
    BadJson(String),
    #[error("required field {0} is missing")]
    MissingField(&'static str),
}

impl MpgsError {
    pub fn refusal(&self) -> Refusal {
        match self {
            MpgsError::MissingSecret | MpgsError::BadSecret => Refusal::Unauthenticated,
            MpgsError::MerchantMismatch { .. } => Refusal::Forbidden,
            MpgsError::BadJson(_) | MpgsError::MissingField(_) => Refusal::Malformed,
        }
    }
}

/// Which body field is the shop's order reference.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OrderRefField {
    /// `order.id`, the merchant's order id (the default).
    #[default]
    OrderId,
    /// `order.reference`, which the Mastercard Magento 1 module looks up.
    OrderReference,
}

impl OrderRefField {
    pub fn as_str(self) -> &'static str {
        match self {
            OrderRefField::OrderId => "order.id",
            OrderRefField::OrderReference => "order.reference",
        }
    }
}

/// Checks `X-Notification-Secret` against every configured secret. All of
/// them are compared, so the time taken does not say which one matched.
pub fn verify(header: Option<&str>, secrets: &[&str]) -> Result<(), MpgsError> {
    let given = header.ok_or(MpgsError::MissingSecret)?;
    let given = Sha256::digest(given.as_bytes());
    let matched = secrets.iter().fold(false, |any, s| {
        ct_eq(&given, &Sha256::digest(s.as_bytes())) | any
    });
    if matched {
        Ok(())
    } else {
        Err(MpgsError::BadSecret)
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Body<'a> {
    merchant: Option<String>,
    result: Option<String>,
    gateway_entry_point: Option<String>,
    #[serde(borrow)]
    order: Option<Order<'a>>,
    response: Option<Response>,
    risk: Option<Risk>,
    #[serde(borrow)]
    transaction: Option<Transaction<'a>>,
    source_of_funds: Option<SourceOfFunds>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Order<'a> {
    id: Option<String>,
    reference: Option<String>,
    status: Option<String>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    currency: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Response {
    gateway_code: Option<String>,
    /// Older API versions nest the risk result here.
    risk: Option<RiskResponse>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Risk {
    response: Option<RiskResponse>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RiskResponse {
    gateway_code: Option<String>,
    review: Option<Review>,
    rule: Option<Vec<RiskRule>>,
    total_score: Option<i64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Review {
    decision: Option<String>,
    decision_reason: Option<String>,
    note: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RiskRule {
    name: Option<String>,
    recommendation: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Transaction<'a> {
    id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    target_transaction_id: Option<String>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    currency: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct SourceOfFunds {
    provided: Option<Provided>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Provided {
    card: Option<Card>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Card {
    brand: Option<String>,
    number: Option<String>,
}

/// Parses an *authenticated* notification into a [`Notification`], and
/// checks the merchant when the source names one.
///
/// The transaction identity the order state machine compares is
/// `transaction.targetTransactionId` when present (a capture, void or refund
/// of transaction 1 is about the payment of transaction 1), else
/// `transaction.id`; the event key uses `transaction.id` itself.
pub fn notification(
    body: &[u8],
    notification_id: Option<&str>,
    merchant_id: Option<&str>,
    order_ref: OrderRefField,
) -> Result<Notification, MpgsError> {
    // serde would also read a struct from a JSON array, by position.
    if !body.trim_ascii_start().starts_with(b"{") {
        return Err(MpgsError::BadJson("not a JSON object".into()));
    }
    let body: Body<'_> =
        serde_json::from_slice(body).map_err(|e| MpgsError::BadJson(e.to_string()))?;
    let merchant = body.merchant.unwrap_or_default();
    if let Some(expected) = merchant_id {
        if merchant != expected {
            return Err(MpgsError::MerchantMismatch { got: merchant });
        }
    }
    let order = body.order.ok_or(MpgsError::MissingField("order"))?;
    let order_id = order
        .id
        .filter(|i| !i.is_empty())
        .ok_or(MpgsError::MissingField("order.id"))?;
    let reference = match order_ref {
        OrderRefField::OrderId => order_id.clone(),
        OrderRefField::OrderReference => order
            .reference
            .filter(|r| !r.is_empty())
            .ok_or(MpgsError::MissingField("order.reference"))?,
    };
    let tx = body
        .transaction
        .ok_or(MpgsError::MissingField("transaction"))?;
    let transaction_id = tx
        .id
        .filter(|i| !i.is_empty())
        .ok_or(MpgsError::MissingField("transaction.id"))?;
    let transaction_type = tx
        .kind
        .filter(|t| !t.is_empty())
        .ok_or(MpgsError::MissingField("transaction.type"))?;
    let response = body.response.unwrap_or_default();
    // The current layout (`risk.response`) wins over the legacy one
    // (`response.risk`) when both are sent.
    let risk = body
        .risk
        .and_then(|r| r.response)
        .or(response.risk)
        .unwrap_or_default();
    let review = risk.review.unwrap_or_default();
    let card = body
        .source_of_funds
        .and_then(|s| s.provided)
        .and_then(|p| p.card)
        .unwrap_or_default();
    let currency = tx.currency.or(order.currency).unwrap_or_default();
    let amount_minor = tx
        .amount
        .or(order.amount)
        .and_then(|raw| decimal_to_minor(raw.get(), &currency));
    let target = tx.target_transaction_id.unwrap_or_default();
    let facts = MpgsFacts {
        merchant,
        notification_id: notification_id.unwrap_or_default().to_owned(),
        order_id,
        transaction_id: transaction_id.clone(),
        target_transaction_id: target.clone(),
        transaction_type,
        result: body.result.unwrap_or_default(),
        gateway_code: response.gateway_code.unwrap_or_default(),
        order_status: order.status.unwrap_or_default(),
        risk_gateway_code: risk.gateway_code.unwrap_or_default(),
        review_decision: review.decision.unwrap_or_default(),
        review_note: review
            .note
            .into_iter()
            .chain(review.decision_reason)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" | "),
        risk_score: risk.total_score,
        risk_rules: risk
            .rule
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                (
                    r.name.unwrap_or_default(),
                    r.recommendation.unwrap_or_default(),
                )
            })
            .collect(),
        entry_point: body.gateway_entry_point.unwrap_or_default(),
        card_brand: card.brand.unwrap_or_default(),
        card_number: card.number.unwrap_or_default(),
    };
    Ok(Notification {
        provider: Provider::Mpgs,
        order_ref: reference,
        transaction_id: if target.is_empty() {
            transaction_id.clone()
        } else {
            target
        },
        transaction_number: transaction_id,
        amount_minor,
        currency,
        facts: Facts::Mpgs(facts),
    })
}

/// `100.00` + `USD` → `10000`, from the JSON number's text (never through
/// `f64`). `None` for a currency whose minor unit is unknown, or a value
/// with more decimals than the currency has.
pub fn decimal_to_minor(text: &str, currency: &str) -> Option<i64> {
    let decimals = find_currency(currency)?.decimals as usize;
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let valid = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !valid(int) || !valid(frac) {
        return None;
    }
    let frac = frac.trim_end_matches('0');
    if frac.len() > decimals {
        return None;
    }
    let scaled = format!("{int}{frac:0<decimals$}");
    let value: i64 = scaled.parse().ok()?;
    Some(if negative { -value } else { value })
}

/// This provider as intake sees it (`providers::Source`).
pub mod source;

#[cfg(test)]
mod tests;
