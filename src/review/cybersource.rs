//! Cybersource Decision Manager case actions (cybersource.md §8):
//! `POST {api_host}/risk/v1/decisions/{id}/actions` with ACCEPT (and
//! optionally CAPTURE) or REJECT (and optionally REVERSE).
//!
//! Authentication is Cybersource's HTTP Signature scheme: the request
//! carries `Host`, `Date` (RFC 7231), `Digest` (`SHA-256=` + base64 of the
//! body's SHA-256), `v-c-merchant-id` and
//!
//! ```text
//! Signature: keyid="<key id>", algorithm="HmacSHA256",
//!            headers="host date (request-target) digest v-c-merchant-id", signature="<b64>"
//! ```
//!
//! where the signature is base64(HMAC-SHA256(base64-decoded shared secret,
//! signing string)) and the signing string is those headers, in that order,
//! as `name: value` lines joined by `\n` — `(request-target)` being
//! `post <path>`. This is what Cybersource's own SDKs and samples send
//! (`(request-target)` with the parentheses, as in the HTTP Signatures
//! draft).
//!
//! The signer and [`interpret`] are pure; [`act`] does the I/O.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::{http_client, partial, snippet, transport_error, Action, GatewayError};
use crate::config::CybersourceApi;

/// The headers the signature covers, in signing order.
pub const SIGNED_HEADERS: &str = "host date (request-target) digest v-c-merchant-id";

/// The authentication headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHeaders {
    pub host: String,
    pub date: String,
    pub digest: String,
    pub merchant_id: String,
    pub signature: String,
}

/// `SHA-256=` + base64(SHA-256(body)).
pub fn digest(body: &[u8]) -> String {
    format!("SHA-256={}", STANDARD.encode(Sha256::digest(body)))
}

/// The string the HMAC covers, for a POST to `path`.
pub fn signing_string(
    host: &str,
    date: &str,
    path: &str,
    digest: &str,
    merchant_id: &str,
) -> String {
    format!(
        "host: {host}\ndate: {date}\n(request-target): post {path}\ndigest: {digest}\nv-c-merchant-id: {merchant_id}"
    )
}

/// Signs a POST of `body` to `path` on `host` at `date`.
pub fn sign(
    key_id: &str,
    secret: &[u8],
    merchant_id: &str,
    host: &str,
    date: &str,
    path: &str,
    body: &[u8],
) -> SignedHeaders {
    let digest = digest(body);
    let text = signing_string(host, date, path, &digest, merchant_id);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(text.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    SignedHeaders {
        host: host.to_owned(),
        date: date.to_owned(),
        digest,
        merchant_id: merchant_id.to_owned(),
        signature: format!(
            "keyid=\"{key_id}\", algorithm=\"HmacSHA256\", headers=\"{SIGNED_HEADERS}\", signature=\"{signature}\""
        ),
    }
}

/// The action body. `follow_up` adds CAPTURE to ACCEPT, REVERSE to REJECT
/// (the only pairs the API allows).
pub fn request_body(action: Action, comment: &str, follow_up: bool) -> Value {
    let (decision, extra) = match action {
        Action::Validate => ("ACCEPT", "CAPTURE"),
        Action::Deny => ("REJECT", "REVERSE"),
    };
    let mut body = json!({
        "decisionInformation": { "decision": decision, "comments": comment },
    });
    if follow_up {
        body["processingInformation"] = json!({ "actionList": [extra] });
    }
    body
}

/// Whether `id` can go into the URL path as is. Decision ids are digits;
/// anything else is refused rather than escaped into another path.
pub fn is_decision_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Reads the answer: the case's new `status` (or `HTTP <code>` when the
/// body names none) for a 2xx, otherwise why not, in Cybersource's words.
pub fn interpret(http_status: u16, body: &str) -> Result<String, GatewayError> {
    let json: Option<Value> = serde_json::from_str(body).ok();
    let field = |name: &str| {
        json.as_ref()
            .and_then(|j| j[name].as_str())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    if (200..300).contains(&http_status) {
        return Ok(field("status").unwrap_or_else(|| format!("HTTP {http_status}")));
    }
    let mut message = format!("HTTP {http_status}");
    let words: Vec<String> = ["status", "reason", "message"]
        .iter()
        .filter_map(|f| field(f))
        .collect();
    let rmsg = json
        .as_ref()
        .and_then(|j| j["response"]["rmsg"].as_str())
        .map(str::to_owned);
    match (words.is_empty(), rmsg) {
        (false, _) => message.push_str(&format!(": {}", words.join(": "))),
        (true, Some(r)) => message.push_str(&format!(": {r}")),
        (true, None) if !body.trim().is_empty() => {
            message.push_str(&format!(": {}", snippet(body)))
        }
        _ => {}
    }
    match http_status {
        401 | 403 => Err(GatewayError::Refused(format!(
            "{message} (authentication refused: check merchant_id, api_key_id and api_shared_secret)"
        ))),
        500.. => Err(GatewayError::Unreachable(message)),
        _ => Err(GatewayError::Refused(message)),
    }
}

/// Acts on each decision (the Decision Manager request ids notified for
/// the order, never the order number). Stops at the first failure; the
/// message then says which decisions were already acted on.
pub async fn act(
    api: &CybersourceApi,
    action: Action,
    decisions: &[String],
    comment: &str,
    follow_up: bool,
) -> Result<Vec<String>, GatewayError> {
    let client = http_client(api.timeout);
    let mut done: Vec<(String, String)> = Vec::new();
    for id in decisions {
        match act_on_one(&client, api, action, id, comment, follow_up).await {
            Ok(status) => done.push((id.clone(), status)),
            Err(e) => return Err(partial(e, &done, id)),
        }
    }
    Ok(done.into_iter().map(|(_, status)| status).collect())
}

async fn act_on_one(
    client: &reqwest::Client,
    api: &CybersourceApi,
    action: Action,
    id: &str,
    comment: &str,
    follow_up: bool,
) -> Result<String, GatewayError> {
    if !is_decision_id(id) {
        return Err(GatewayError::Refused(format!(
            "{id:?} is not a Decision Manager request id"
        )));
    }
    let url = reqwest::Url::parse(&format!("{}/risk/v1/decisions/{id}/actions", api.api_host))
        .map_err(|e| GatewayError::Refused(format!("api_host does not make a URL: {e}")))?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => return Err(GatewayError::Refused("api_host has no host".into())),
    };
    let body = serde_json::to_vec(&request_body(action, comment, follow_up))
        .expect("a JSON value serialises");
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let signed = sign(
        &api.key_id,
        api.shared_secret.expose(),
        &api.merchant_id,
        &host,
        &date,
        url.path(),
        &body,
    );
    let response = client
        .post(url)
        .header("host", &signed.host)
        .header("date", &signed.date)
        .header("digest", &signed.digest)
        .header("v-c-merchant-id", &signed.merchant_id)
        .header("signature", &signed.signature)
        .header("content-type", "application/json")
        .header("accept", "application/hal+json;charset=utf-8")
        .body(body)
        .send()
        .await
        .map_err(transport_error)?;
    let status = response.status().as_u16();
    let text = super::read_answer(response).await?;
    interpret(status, &text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently with Python's hmac/hashlib:
    ///
    /// ```text
    /// secret = base64.b64decode("aXBuc3luYy10ZXN0LXNoYXJlZC1zZWNyZXQtMzJieXQ=")
    /// digest = "SHA-256=" + b64(sha256(BODY))
    /// s = "host: apitest.cybersource.com\ndate: Thu, 18 Jul 2019 22:15:01 GMT\n"
    ///     "(request-target): post /risk/v1/decisions/7420157839246543904951/actions\n"
    ///     "digest: " + digest + "\nv-c-merchant-id: ipnsync_demo"
    /// b64(hmac.new(secret, s.encode(), hashlib.sha256).digest())
    /// ```
    const BODY: &[u8] = br#"{"decisionInformation":{"comments":"ipnsync operator alice","decision":"ACCEPT"},"processingInformation":{"actionList":["CAPTURE"]}}"#;
    const SECRET_B64: &str = "aXBuc3luYy10ZXN0LXNoYXJlZC1zZWNyZXQtMzJieXQ=";
    const DIGEST: &str = "SHA-256=M5NHvlFHAJrcJXwc7EF4XJ84dMjyEW/Wzq1fKYfyiFg=";
    const SIGNATURE: &str = "YqZ7v4oEjuR5nzYRns8QbSE/dMOeWo/hfqyzlXkbWkk=";

    #[test]
    fn signature_matches_an_independent_computation() {
        let secret = STANDARD.decode(SECRET_B64).unwrap();
        let h = sign(
            "key-1",
            &secret,
            "ipnsync_demo",
            "apitest.cybersource.com",
            "Thu, 18 Jul 2019 22:15:01 GMT",
            "/risk/v1/decisions/7420157839246543904951/actions",
            BODY,
        );
        assert_eq!(h.digest, DIGEST);
        assert_eq!(
            h.signature,
            format!(
                "keyid=\"key-1\", algorithm=\"HmacSHA256\", headers=\"host date (request-target) digest v-c-merchant-id\", signature=\"{SIGNATURE}\""
            )
        );
    }

    #[test]
    fn the_body_we_send_is_the_body_of_the_vector() {
        let body = request_body(Action::Validate, "ipnsync operator alice", true);
        assert_eq!(serde_json::to_vec(&body).unwrap(), BODY);
        assert_eq!(
            request_body(Action::Deny, "c", false),
            json!({"decisionInformation": {"decision": "REJECT", "comments": "c"}})
        );
        assert_eq!(
            request_body(Action::Deny, "c", true)["processingInformation"]["actionList"],
            json!(["REVERSE"])
        );
    }

    #[test]
    fn answers_and_ids() {
        assert_eq!(
            interpret(201, r#"{"id":"1","status":"ACCEPTED"}"#).unwrap(),
            "ACCEPTED"
        );
        assert_eq!(interpret(201, "").unwrap(), "HTTP 201");
        assert_eq!(
            interpret(
                400,
                r#"{"status":"INVALID_REQUEST","reason":"INVALID_DATA","message":"Case is not in review"}"#
            ),
            Err(GatewayError::Refused(
                "HTTP 400: INVALID_REQUEST: INVALID_DATA: Case is not in review".into()
            ))
        );
        assert!(matches!(
            interpret(401, r#"{"response":{"rmsg":"Authentication Failed"}}"#),
            Err(GatewayError::Refused(m)) if m.contains("Authentication Failed") && m.contains("api_key_id")
        ));
        assert!(matches!(
            interpret(502, ""),
            Err(GatewayError::Unreachable(_))
        ));
        assert!(is_decision_id("7420157839246543904951"));
        assert!(!is_decision_id("../../pts"));
        assert!(!is_decision_id(""));
    }
}
