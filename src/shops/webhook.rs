//! A generic webhook for custom backends, signed the Standard Webhooks way
//! (<https://www.standardwebhooks.com/>, the scheme Svix uses), so a
//! receiver can verify it with an off-the-shelf library.
//!
//! `webhook-id` is `ipnsync-<outbox_id>`: stable across retries so the
//! receiver can deduplicate. The timestamp and signature are fresh on every
//! attempt, as the specification asks.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use hmac::{Hmac, Mac};
use reqwest::header::CONTENT_TYPE;
use reqwest::StatusCode;
use serde::Serialize;
use sha2::Sha256;

use super::{
    http_client, read_body_capped, status_error, transport_error, PushError, Pushed, ShopUpdate,
    MAX_ANSWER_BYTES,
};
use crate::config::ShopConfig;
use crate::domain::Outcome;

/// The prefix of Standard Webhooks secrets; the rest is the base64 key.
const SECRET_PREFIX: &str = "whsec_";

pub struct Webhook {
    name: String,
    http: reqwest::Client,
    url: String,
    /// The HMAC key; `None` sends unsigned requests.
    key: Option<Vec<u8>>,
}

/// The JSON body. A struct, so the field order is stable.
#[derive(Debug, Serialize)]
struct Payload<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    order: &'a str,
    outcome: Outcome,
    previous_outcome: Option<Outcome>,
    status: String,
    /// The operator's comment (rule, transaction, marker): never for a
    /// customer's eyes.
    comment: &'a str,
    /// The short text a customer may be shown when `notify` is true.
    customer_text: &'a str,
    notify: bool,
    /// A comment for the order's history only: keep the status, tell nobody.
    comment_only: bool,
    /// An earlier attempt of this update may have reached the receiver:
    /// deduplicate on `id` before notifying anyone.
    redelivery: bool,
    /// What the notification says was paid (`49.90`, `EUR`), when known.
    amount: Option<String>,
    currency: Option<&'a str>,
    provider: &'a str,
    transaction_id: &'a str,
    provider_status: &'a str,
    outbox_id: i64,
    event_id: i64,
}

impl Webhook {
    pub fn new(cfg: &ShopConfig) -> Self {
        let key = cfg.credential.as_ref().map(|s| {
            signing_key(s.expose()).unwrap_or_else(|| {
                // Still usable (as raw bytes), but the receiver will most
                // likely reject every signature: say so once, up front.
                tracing::warn!(shop = %cfg.name, "webhook secret starts with whsec_ but the rest is not valid base64; using it as raw bytes");
                s.expose().as_bytes().to_vec()
            })
        });
        Webhook {
            name: cfg.name.clone(),
            http: http_client(cfg),
            url: cfg.base_url.clone(),
            key,
        }
    }

    pub async fn push(&self, update: &ShopUpdate) -> Result<Pushed, PushError> {
        let id = message_id(update.outbox_id);
        let body = serde_json::to_vec(&payload(&id, update)).expect("payload serialises");
        let timestamp = unix_now();
        let mut request = self
            .http
            .post(&self.url)
            .header(CONTENT_TYPE, "application/json")
            .header("webhook-id", &id)
            .header("webhook-timestamp", timestamp.to_string());
        if let Some(key) = &self.key {
            request = request.header("webhook-signature", sign(key, &id, timestamp, &body));
        }
        let response = request.body(body).send().await.map_err(transport_error)?;
        let status = response.status();
        if status.is_success() {
            tracing::debug!(shop = %self.name, webhook_id = %id, status = status.as_u16(), "webhook delivered");
            return Ok(Pushed::done(format!("HTTP {}", status.as_u16())));
        }
        let headers = response.headers().clone();
        // Only a snippet is shown: an answer too large reads as empty.
        let text = read_body_capped(response, MAX_ANSWER_BYTES)
            .await
            .unwrap_or_default();
        Err(classify(status, &headers, &text))
    }
}

/// 410 Gone means "stop sending" in webhook conventions; 408 is a timeout
/// on the receiver's side and worth retrying; the rest follows the shared
/// rule (429 and 5xx transient, other 4xx permanent).
fn classify(status: StatusCode, headers: &reqwest::header::HeaderMap, body: &str) -> PushError {
    match status {
        StatusCode::GONE => PushError::permanent(format!(
            "HTTP 410 Gone: the receiver no longer accepts these webhooks {}",
            body.chars().take(300).collect::<String>().trim()
        )),
        StatusCode::REQUEST_TIMEOUT => PushError::Transient {
            reason: "HTTP 408 Request Timeout".to_owned(),
            retry_after: super::retry_after(headers),
            // The receiver answered: it is not working on it any more.
            unanswered: false,
        },
        _ => status_error(status, headers, body),
    }
}

fn message_id(outbox_id: i64) -> String {
    format!("ipnsync-{outbox_id}")
}

fn payload<'a>(id: &'a str, u: &'a ShopUpdate) -> Payload<'a> {
    Payload {
        kind: "order.updated",
        id,
        order: &u.order_ref,
        outcome: u.outcome,
        previous_outcome: u.previous_outcome,
        status: u.status.to_string(),
        comment: &u.comment,
        customer_text: &u.customer_text,
        notify: u.notify,
        comment_only: u.is_comment_only(),
        redelivery: u.earlier_attempt_unknown,
        amount: u
            .amount
            .as_ref()
            .map(|m| m.display().split(' ').next().unwrap_or_default().to_owned()),
        currency: u.amount.as_ref().map(|m| m.currency.as_str()),
        provider: &u.provider,
        transaction_id: &u.transaction_id,
        provider_status: &u.provider_status,
        outbox_id: u.outbox_id,
        event_id: u.event_id,
    }
}

/// The HMAC key for a configured secret: `whsec_<base64>` is decoded, as
/// Standard Webhooks libraries do; anything else is used as raw bytes.
/// `None` if a `whsec_` secret is not valid base64.
fn signing_key(secret: &str) -> Option<Vec<u8>> {
    match secret.strip_prefix(SECRET_PREFIX) {
        Some(encoded) => BASE64.decode(encoded).ok(),
        None => Some(secret.as_bytes().to_vec()),
    }
}

/// `v1,<base64(HMAC-SHA256(key, "<id>.<timestamp>.<body>"))>`.
fn sign(key: &[u8], id: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ShopStatus;

    #[test]
    fn signature_matches_the_standard_webhooks_example() {
        // The published example of the specification and its libraries.
        let key = signing_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid secret");
        assert_eq!(
            sign(
                &key,
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            ),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn secrets_without_the_prefix_are_raw_bytes() {
        assert_eq!(signing_key("plain secret"), Some(b"plain secret".to_vec()));
        assert_eq!(signing_key("whsec_AAEC"), Some(vec![0, 1, 2]));
        assert_eq!(signing_key("whsec_not base64!"), None);
    }

    #[test]
    fn the_body_has_a_stable_field_order() {
        let update = ShopUpdate {
            outbox_id: 9,
            event_id: 4,
            order_ref: "100000001".into(),
            outcome: Outcome::Accepted,
            previous_outcome: Some(Outcome::Review),
            status: ShopStatus::Code("processing".into()),
            comment: "Payment \"ok\"".into(),
            notify: true,
            provider: "lyra".into(),
            transaction_id: "abc".into(),
            provider_status: "AUTHORISED".into(),
            amount: crate::domain::money::Money::new(4990, "978"),
            customer_text: "Thanks".into(),
            earlier_attempt_unknown: false,
            by_operator: false,
        };
        let id = message_id(update.outbox_id);
        let json = serde_json::to_string(&payload(&id, &update)).expect("serialises");
        assert_eq!(
            json,
            r#"{"type":"order.updated","id":"ipnsync-9","order":"100000001","outcome":"accepted","previous_outcome":"review","status":"processing","comment":"Payment \"ok\"","customer_text":"Thanks","notify":true,"comment_only":false,"redelivery":false,"amount":"49.90","currency":"EUR","provider":"lyra","transaction_id":"abc","provider_status":"AUTHORISED","outbox_id":9,"event_id":4}"#
        );
    }

    #[test]
    fn statuses_are_classified() {
        let none = reqwest::header::HeaderMap::new();
        assert!(!classify(StatusCode::GONE, &none, "").is_transient());
        assert!(!classify(StatusCode::BAD_REQUEST, &none, "bad").is_transient());
        assert!(classify(StatusCode::REQUEST_TIMEOUT, &none, "").is_transient());
        assert!(classify(StatusCode::TOO_MANY_REQUESTS, &none, "").is_transient());
        assert!(classify(StatusCode::BAD_GATEWAY, &none, "").is_transient());
    }
}
