//! Cybersource Decision Manager notifications.
//!
//! - REST webhooks (this module): JSON signed with `v-c-signature:
//!   t=…;keyId=…;sig=…`, `sig` = base64 HMAC-SHA256 with the base64-decoded
//!   key of `keyId` over `t + "." + payload`. The official plugins sign the
//!   `payload` member, a newer SFCC fork the whole body: both are accepted,
//!   over the exact received bytes (never re-serialised JSON).
//! - The legacy Case Management Order Status XML ([`cmos`]): unsigned,
//!   protected by a secret token and an optional peer allow-list.

pub mod cmos;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use serde_json::value::RawValue;
use sha2::Sha256;
use thiserror::Error;

use super::{ct_eq, Refusal};
use crate::domain::notification::{CaseNote, CybersourceChannel, CybersourceFacts};
use crate::domain::{Facts, Notification, Provider};

type HmacSha256 = Hmac<Sha256>;

/// The signature header.
pub const SIGNATURE_HEADER: &str = "v-c-signature";

/// Default replay window: how far `t` may be from the daemon's clock.
pub const DEFAULT_TOLERANCE_SECS: u64 = 15 * 60;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum CybersourceError {
    #[error("no v-c-signature header")]
    MissingSignature,
    #[error("v-c-signature is malformed: {0}")]
    BadSignatureHeader(&'static str),
    // keyId is an identifier, not a secret: naming it helps an operator
    // who forgot to configure a rotated key.
    #[error("v-c-signature names keyId {0:?}, which is not configured")]
    UnknownKey(String),
    #[error("signature does not match (keyId {0:?})")]
    BadSignature(String),
    #[error(
        "signature timestamp is {age_secs}s away from now, more than the {tolerance_secs}s allowed"
    )]
    Stale { age_secs: u64, tolerance_secs: u64 },
    #[error("organizationId {got:?} does not match the configured organization")]
    OrganizationMismatch { got: String },
    #[error("the top-level organizationId{} differs from the payload's", if *.unsigned { " (not covered by the signature)" } else { "" })]
    OrganizationDisagrees { unsigned: bool },
    #[error("the body is encrypted (message-level encryption is not supported)")]
    Encrypted,
    #[error("body is not a Cybersource webhook: {0}")]
    BadJson(String),
    #[error("required field {0} is missing")]
    MissingField(&'static str),
}

impl CybersourceError {
    pub fn refusal(&self) -> Refusal {
        match self {
            CybersourceError::MissingSignature
            | CybersourceError::BadSignatureHeader(_)
            | CybersourceError::UnknownKey(_)
            | CybersourceError::BadSignature(_)
            | CybersourceError::Stale { .. } => Refusal::Unauthenticated,
            CybersourceError::OrganizationMismatch { .. }
            | CybersourceError::OrganizationDisagrees { .. } => Refusal::Forbidden,
            CybersourceError::Encrypted
            | CybersourceError::BadJson(_)
            | CybersourceError::MissingField(_) => Refusal::Malformed,
        }
    }
}

/// One configured signing key: its `keyId` and the raw key bytes (the
/// base64 string Cybersource returned at creation, decoded).
#[derive(Clone, Copy)]
pub struct SigningKey<'a> {
    pub id: &'a str,
    pub key: &'a [u8],
}

/// What a webhook source verifies with.
#[derive(Clone, Copy)]
pub struct WebhookVerifier<'a> {
    /// Every valid key: during a yearly rotation, the old and the new one.
    pub keys: &'a [SigningKey<'a>],
    /// Largest accepted `|now − t|`; `None` turns the replay check off.
    pub tolerance_secs: Option<u64>,
    /// When set, the body's `organizationId` must equal it.
    pub organization_id: Option<&'a str>,
}

/// The parsed `v-c-signature` header. `t` stays as received: it is signed
/// as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignatureHeader<'a> {
    pub t: &'a str,
    pub key_id: &'a str,
    pub sig: &'a str,
}

/// Parses `t=…;keyId=…;sig=…`: `;`-separated, each part split on its
/// *first* `=` (the base64 `sig` ends in `=`). Each of the three must be
/// present exactly once; other parts are ignored.
pub fn parse_signature_header(value: &str) -> Result<SignatureHeader<'_>, CybersourceError> {
    let (mut t, mut key_id, mut sig) = (None, None, None);
    for part in value.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, v) = part
            .split_once('=')
            .ok_or(CybersourceError::BadSignatureHeader("a part has no ="))?;
        let slot = match name.trim() {
            "t" => &mut t,
            "keyId" => &mut key_id,
            "sig" => &mut sig,
            _ => continue,
        };
        if slot.replace(v.trim()).is_some() {
            return Err(CybersourceError::BadSignatureHeader("a part appears twice"));
        }
    }
    let header = SignatureHeader {
        t: t.ok_or(CybersourceError::BadSignatureHeader("no t"))?,
        key_id: key_id.ok_or(CybersourceError::BadSignatureHeader("no keyId"))?,
        sig: sig.ok_or(CybersourceError::BadSignatureHeader("no sig"))?,
    };
    if header.t.is_empty() || !header.t.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CybersourceError::BadSignatureHeader("t is not a number"));
    }
    Ok(header)
}

/// `base64(HMAC-SHA256(key, t + "." + message))`.
pub fn sign(key: &[u8], t: &str, message: &[u8]) -> String {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(t.as_bytes());
    mac.update(b".");
    mac.update(message);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The exact bytes of the top-level `payload` member, as received.
///
/// This is a syntax-only scan: nothing in the body is trusted yet. A body
/// that is not a JSON object, that has no `payload`, or that has it twice
/// (which `payload` would be signed?) yields `None`.
pub fn payload_bytes(body: &[u8]) -> Option<&[u8]> {
    #[derive(Deserialize)]
    struct Envelope<'a> {
        #[serde(borrow)]
        payload: &'a RawValue,
    }
    let text = std::str::from_utf8(body).ok()?;
    // serde would also read a struct from a JSON array (by position): only
    // an object has members.
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let envelope: Envelope<'_> = serde_json::from_str(text).ok()?;
    let raw = envelope.payload.get();
    // `raw` borrows from `text`: find its place to return the body's bytes.
    let start = raw.as_ptr() as usize - text.as_ptr() as usize;
    Some(&body[start..start + raw.len()])
}

/// Which bytes a verified signature covered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedPart {
    /// `t + "." + payload member` (the official plugins).
    Payload,
    /// `t + "." + whole body`.
    Body,
}

impl SignedPart {
    pub fn as_str(self) -> &'static str {
        match self {
            SignedPart::Payload => "payload",
            SignedPart::Body => "body",
        }
    }
}

/// Verifies a webhook: the signature over the raw bytes first, then the
/// replay window. `now_unix` is the daemon's clock in seconds, passed in so
/// this stays a pure function.
pub fn verify_webhook(
    signature: Option<&str>,
    body: &[u8],
    now_unix: u64,
    v: &WebhookVerifier<'_>,
) -> Result<SignedPart, CybersourceError> {
    let header = parse_signature_header(signature.ok_or(CybersourceError::MissingSignature)?)?;
    let key = v
        .keys
        .iter()
        .find(|k| k.id == header.key_id)
        .ok_or_else(|| CybersourceError::UnknownKey(header.key_id.to_owned()))?;
    let received = header.sig.as_bytes();
    // Both candidates are always computed and compared, so the time taken
    // does not tell which one matched.
    let by_payload = payload_bytes(body)
        .map(|payload| ct_eq(sign(key.key, header.t, payload).as_bytes(), received))
        .unwrap_or(false);
    let by_body = ct_eq(sign(key.key, header.t, body).as_bytes(), received);
    let part = match (by_payload, by_body) {
        (true, _) => SignedPart::Payload,
        (false, true) => SignedPart::Body,
        (false, false) => return Err(CybersourceError::BadSignature(header.key_id.to_owned())),
    };
    if let Some(tolerance_secs) = v.tolerance_secs {
        // `t` is in milliseconds; a value too large to be a time is stale.
        let t_secs = header
            .t
            .parse::<u64>()
            .map(|ms| ms / 1000)
            .unwrap_or(u64::MAX);
        let age_secs = now_unix.abs_diff(t_secs);
        if age_secs > tolerance_secs {
            return Err(CybersourceError::Stale {
                age_secs,
                tolerance_secs,
            });
        }
    }
    Ok(part)
}

// ------------------------------------------------------------------- body

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WebhookBody {
    #[serde(default)]
    event_type: Option<String>,
    #[serde(default)]
    organization_id: Option<String>,
    #[serde(default)]
    payload: Option<Payload>,
    #[serde(default)]
    encrypted_request: Option<serde_json::Value>,
    #[serde(default)]
    enc_data: Option<serde_json::Value>,
}

/// The payload is an object, or (older, token-style webhooks) an array of
/// them. `Many` is tried first: serde would read an array as a struct too.
#[derive(Deserialize)]
#[serde(untagged)]
enum Payload {
    Many(Vec<PayloadItem>),
    One(Box<PayloadItem>),
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct PayloadItem {
    data: Option<CaseData>,
    organization_id: Option<String>,
    // Card-processing webhooks may carry the payment at the payload's top
    // level (cybersource.md §3.1: `payload.id` / `payload.transactionId`,
    // `payload.status`) rather than under `data`.
    id: Option<String>,
    transaction_id: Option<String>,
    status: Option<String>,
    client_reference_information: Option<ClientReference>,
    error_information: Option<ErrorInformation>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ClientReference {
    code: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct CaseData {
    reference_number: Option<String>,
    /// A payment's merchant reference (card-processing payloads).
    client_reference_information: Option<ClientReference>,
    /// The payment's request id, when sent.
    id: Option<String>,
    request_id: Option<String>,
    status: Option<String>,
    error_information: Option<ErrorInformation>,
    notes: Option<Vec<Note>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorInformation {
    reason: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Note {
    added_by: Option<String>,
    comment: Option<String>,
    date: Option<String>,
}

/// Parses a *verified* webhook body into a [`Notification`], and checks the
/// organization when the source names one.
///
/// The transaction identity is the payment's request id when the payload
/// carries one (`data.id` or `data.requestId`), else the order reference:
/// every Decision Manager event about an order is about the one payment
/// its case was opened for.
pub fn webhook_notification(
    body: &[u8],
    signed: SignedPart,
    organization_id: Option<&str>,
) -> Result<Notification, CybersourceError> {
    if !body.trim_ascii_start().starts_with(b"{") {
        return Err(CybersourceError::BadJson("not a JSON object".into()));
    }
    let parsed: WebhookBody =
        serde_json::from_slice(body).map_err(|e| CybersourceError::BadJson(e.to_string()))?;
    if parsed.encrypted_request.is_some() || parsed.enc_data.is_some() {
        return Err(CybersourceError::Encrypted);
    }
    let item = match parsed
        .payload
        .ok_or(CybersourceError::MissingField("payload"))?
    {
        Payload::One(item) => *item,
        Payload::Many(items) => items
            .into_iter()
            .next()
            .ok_or(CybersourceError::MissingField("payload[0]"))?,
    };
    let organization = organization(parsed.organization_id, item.organization_id, signed)?;
    if let Some(expected) = organization_id {
        if organization != expected {
            return Err(CybersourceError::OrganizationMismatch { got: organization });
        }
    }
    let event_type = parsed
        .event_type
        .filter(|e| !e.is_empty())
        .ok_or(CybersourceError::MissingField("eventType"))?;
    let flat = item.status.is_some()
        || item.id.is_some()
        || item.transaction_id.is_some()
        || item.client_reference_information.is_some();
    let data = match item.data {
        Some(data) => data,
        // A card-processing payload without `data`: the payment itself.
        None if flat => CaseData::default(),
        None => return Err(CybersourceError::MissingField("payload.data")),
    };
    let code = |c: Option<ClientReference>| c.and_then(|c| c.code).filter(|r| !r.is_empty());
    let order_ref = data
        .reference_number
        .filter(|r| !r.is_empty())
        .or_else(|| code(data.client_reference_information))
        .or_else(|| code(item.client_reference_information))
        .ok_or(CybersourceError::MissingField(
            "payload.data.referenceNumber",
        ))?;
    let notes: Vec<CaseNote> = data
        .notes
        .unwrap_or_default()
        .into_iter()
        .map(|n| CaseNote {
            added_by: n.added_by.unwrap_or_default(),
            comment: n.comment.unwrap_or_default(),
            date: n.date.unwrap_or_default(),
        })
        .collect();
    let request_id = data
        .id
        .or(data.request_id)
        .or(item.id)
        .or(item.transaction_id)
        .unwrap_or_default();
    let facts = CybersourceFacts {
        channel: CybersourceChannel::Webhook,
        event_type,
        payment_status: data.status.or(item.status).unwrap_or_default(),
        reason: data
            .error_information
            .or(item.error_information)
            .and_then(|e| e.reason)
            .unwrap_or_default(),
        reviewer: notes
            .iter()
            .rev()
            .find(|n| !n.added_by.is_empty())
            .map(|n| n.added_by.clone())
            .unwrap_or_default(),
        notes,
        organization_id: organization,
        signed: signed.as_str().to_owned(),
        request_id: request_id.clone(),
        ..CybersourceFacts::default()
    };
    Ok(Notification {
        provider: Provider::Cybersource,
        transaction_id: if request_id.is_empty() {
            order_ref.clone()
        } else {
            request_id.clone()
        },
        transaction_number: request_id,
        order_ref,
        amount_minor: None,
        currency: String::new(),
        facts: Facts::Cybersource(facts),
    })
}

/// The organization a webhook is about, read from what the signature
/// covered. With the whole body signed, the top-level `organizationId` and
/// the payload's are both authenticated: when both are present they must
/// agree. With only the payload signed, the payload's member is the one
/// that counts; an unsigned top-level member that names another
/// organization is refused rather than ignored (someone edited it), and one
/// that names the same adds nothing. When the signed part names no
/// organization, the top-level member is all there is: it is compared as
/// sent (the signing key itself is created per organization).
fn organization(
    top: Option<String>,
    in_payload: Option<String>,
    signed: SignedPart,
) -> Result<String, CybersourceError> {
    match (top, in_payload) {
        (Some(top), Some(inner)) if top != inner => Err(CybersourceError::OrganizationDisagrees {
            unsigned: signed == SignedPart::Payload,
        }),
        (_, Some(inner)) => Ok(inner),
        (Some(top), None) => Ok(top),
        (None, None) => Ok(String::new()),
    }
}

/// This provider as intake sees it (`providers::Source`).
pub mod source;

#[cfg(test)]
mod tests;
