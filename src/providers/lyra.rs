//! Lyra-family IPNs (PayZen, Systempay, Sogecommerce, Scellius, Lyra Collect…).
//!
//! Two wire formats share one platform:
//! - the hosted-payment form IPN: `vads_*` fields plus `signature`
//!   (SHA-1 hex or HMAC-SHA-256 base64 over the sorted `vads_*` values);
//! - the REST / embedded-form IPN: `kr-answer` (JSON) plus `kr-hash`
//!   (hex HMAC-SHA-256 of the raw JSON string with the REST password).
//!
//! Both are verified over the exact received bytes before anything is parsed.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};
use sha2::Sha256;
use thiserror::Error;

use super::form::names::{id, Id};
use super::form::Form;
use super::{ct_eq, Refusal};
use crate::domain::{Facts, LyraFacts, Notification, Provider};

type HmacSha256 = Hmac<Sha256>;

/// The fields this module reads, by number (`form::names`): a lookup is
/// then an array read instead of a search by name.
const SIGNATURE: Id = id("signature");
const CTX_MODE: Id = id("vads_ctx_mode");
const SITE_ID: Id = id("vads_site_id");
const TRANS_ID: Id = id("vads_trans_id");
const TRANS_UUID: Id = id("vads_trans_uuid");
const TRANS_DATE: Id = id("vads_trans_date");
const OPERATION_TYPE: Id = id("vads_operation_type");
const URL_CHECK_SRC: Id = id("vads_url_check_src");
const RISK_ASSESSMENT_RESULT: Id = id("vads_risk_assessment_result");
const RISK_ANALYSIS_RESULT: Id = id("vads_risk_analysis_result");
const RISK_CONTROL: Id = id("vads_risk_control");
const RESULT: Id = id("vads_result");
const EXTRA_RESULT: Id = id("vads_extra_result");
const SEQUENCE_NUMBER: Id = id("vads_sequence_number");
const CARD_BRAND: Id = id("vads_card_brand");
const CARD_NUMBER: Id = id("vads_card_number");
const THREEDS_STATUS: Id = id("vads_threeds_status");
const ORDER_ID: Id = id("vads_order_id");
const EFFECTIVE_AMOUNT: Id = id("vads_effective_amount");
const AMOUNT: Id = id("vads_amount");
const EFFECTIVE_CURRENCY: Id = id("vads_effective_currency");
const CURRENCY: Id = id("vads_currency");

/// The signature algorithm chosen in the platform's back office.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SignAlgo {
    #[serde(rename = "SHA-1")]
    Sha1,
    #[serde(rename = "HMAC-SHA-256", alias = "SHA-256")]
    HmacSha256,
}

impl SignAlgo {
    pub fn as_str(self) -> &'static str {
        match self {
            SignAlgo::Sha1 => "SHA-1",
            SignAlgo::HmacSha256 => "HMAC-SHA-256",
        }
    }
}

/// The platform context a shop runs in; it selects the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Mode {
    Test,
    Production,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "TEST",
            Mode::Production => "PRODUCTION",
        }
    }
}

#[derive(Debug, Error, PartialEq, Eq)]
pub enum LyraError {
    #[error("no signature field")]
    MissingSignature,
    #[error("signature does not match ({algo} with the {mode} key)")]
    BadSignature {
        algo: &'static str,
        mode: &'static str,
    },
    #[error("kr-hash-key is {0:?}, an IPN must be signed with the REST password")]
    WrongHashKey(String),
    #[error("kr-hash-algorithm {0:?} is not supported")]
    WrongHashAlgorithm(String),
    #[error("notification is for mode {got:?}, this source is configured for {expected}")]
    ModeMismatch { expected: &'static str, got: String },
    #[error("site id {got:?} does not match the configured site id")]
    SiteMismatch { got: String },
    #[error("required field {0} is missing")]
    MissingField(&'static str),
    #[error("kr-answer is not valid JSON: {0}")]
    BadJson(String),
    /// Signed, but not shaped like a notification the platform sends (see
    /// [`shape`]): the boundary-shift forgery of a payment form.
    #[error("not a platform IPN: {0}")]
    Shape(String),
    /// `kr-hash-algorithm` absent: lyra.md §2.2 says to check it.
    #[error("kr-hash-algorithm is missing")]
    MissingHashAlgorithm,
    #[error("shopId {got:?} does not match the configured site id")]
    ShopMismatch { got: String },
}

impl LyraError {
    pub fn refusal(&self) -> Refusal {
        match self {
            LyraError::MissingSignature
            | LyraError::BadSignature { .. }
            | LyraError::WrongHashKey(_)
            | LyraError::WrongHashAlgorithm(_) => Refusal::Unauthenticated,
            LyraError::MissingHashAlgorithm => Refusal::Unauthenticated,
            LyraError::ModeMismatch { .. }
            | LyraError::SiteMismatch { .. }
            | LyraError::ShopMismatch { .. } => Refusal::Forbidden,
            LyraError::MissingField(_) | LyraError::BadJson(_) | LyraError::Shape(_) => {
                Refusal::Malformed
            }
        }
    }
}

/// The parameters a form source verifies with.
#[derive(Debug, Clone, Copy)]
pub struct FormVerifier<'a> {
    pub mode: Mode,
    pub algo: SignAlgo,
    /// The key of the configured mode.
    pub key: &'a str,
    /// When set, `vads_site_id` must equal it.
    pub site_id: Option<&'a str>,
}

/// The string the form signature is computed over:
/// every `vads_*` value, sorted byte-wise by name, `+`-joined, then `+KEY`.
pub fn form_signing_string(form: &Form, key: &str) -> String {
    let mut out = Vec::with_capacity(form.len() * 16 + key.len());
    signing_parts(form, key, |part| out.extend_from_slice(part));
    String::from_utf8(out).expect("whole values and separators")
}

/// Feeds the signing string to `sink` piece by piece. The form keeps its
/// fields sorted by name; `str` ordering is byte-wise, exactly the
/// platform's (PHP ksort) order.
fn signing_parts(form: &Form, key: &str, mut sink: impl FnMut(&[u8])) {
    for (_, value) in form.iter_vads_by_name() {
        sink(value.as_bytes());
        sink(b"+");
    }
    sink(key.as_bytes());
}

/// Hashes the signing string as one stream: the values and their `+` are
/// gathered into a stack buffer and handed to the hash a buffer at a time
/// (a hash `update` per value and per separator cost more than the
/// hashing itself), the key last, straight from the caller.
fn hash_signing_string(form: &Form, key: &str, mut update: impl FnMut(&[u8])) {
    let mut buffer = [0u8; 1024];
    let mut used = 0;
    for value in form.vads_values_by_name() {
        if used + value.len() + 1 > buffer.len() {
            update(&buffer[..used]);
            used = 0;
            if value.len() + 1 > buffer.len() {
                update(value);
                update(b"+");
                continue;
            }
        }
        buffer[used..used + value.len()].copy_from_slice(value);
        buffer[used + value.len()] = b'+';
        used += value.len() + 1;
    }
    update(&buffer[..used]);
    update(key.as_bytes());
}

/// The longest encoded signature: HMAC-SHA-256 in base64 (44), SHA-1 in
/// hex (40).
const SIGNATURE_MAX: usize = 44;

/// Computes the form signature into `out`; returns its length.
fn form_signature_into(
    form: &Form,
    key: &str,
    algo: SignAlgo,
    out: &mut [u8; SIGNATURE_MAX],
) -> usize {
    match algo {
        SignAlgo::Sha1 => {
            let mut h = Sha1::new();
            hash_signing_string(form, key, |p| h.update(p));
            hex::encode_to_slice(h.finalize(), &mut out[..40]).expect("40 hex digits");
            40
        }
        SignAlgo::HmacSha256 => {
            let mut mac =
                HmacSha256::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
            hash_signing_string(form, key, |p| mac.update(p));
            base64::engine::general_purpose::STANDARD
                .encode_slice(mac.finalize().into_bytes(), &mut out[..])
                .expect("44 base64 characters")
        }
    }
}

/// Computes the form signature as the platform does.
pub fn form_signature(form: &Form, key: &str, algo: SignAlgo) -> String {
    let mut out = [0u8; SIGNATURE_MAX];
    let len = form_signature_into(form, key, algo, &mut out);
    String::from_utf8(out[..len].to_vec()).expect("hex and base64 are ASCII")
}

/// Verifies a form IPN's signature, then its mode and site.
///
/// The signature is checked first, so an unsigned request learns nothing
/// about the source's configuration.
pub fn verify_form(form: &Form, v: &FormVerifier<'_>) -> Result<(), LyraError> {
    let received = form.known(SIGNATURE).ok_or(LyraError::MissingSignature)?;
    let mut expected = [0u8; SIGNATURE_MAX];
    let len = form_signature_into(form, v.key, v.algo, &mut expected);
    if !ct_eq(&expected[..len], received.as_bytes()) {
        return Err(LyraError::BadSignature {
            algo: v.algo.as_str(),
            mode: v.mode.as_str(),
        });
    }
    let ctx_mode = form.known_str(CTX_MODE);
    if ctx_mode != v.mode.as_str() {
        return Err(LyraError::ModeMismatch {
            expected: v.mode.as_str(),
            got: ctx_mode.to_owned(),
        });
    }
    if let Some(site) = v.site_id {
        let got = form.known_str(SITE_ID);
        if got != site {
            return Err(LyraError::SiteMismatch {
                got: got.to_owned(),
            });
        }
    }
    Ok(())
}

/// Turns a verified form IPN into a [`Notification`].
///
/// The form must be shaped like an IPN ([`shape::check`]): a payment form
/// signed by the shop, its values re-split and renamed, has the same
/// signature.
pub fn form_notification(form: &Form) -> Result<Notification, LyraError> {
    let trans_status = required(form, "vads_trans_status")?;
    shape::check(form, trans_status).map_err(|e| LyraError::Shape(e.to_string()))?;
    let value = |id| form.known_str(id);
    let transaction_number = value(TRANS_ID).to_owned();
    let transaction_id = match form.known(TRANS_UUID).filter(|u| !u.is_empty()) {
        Some(uuid) => uuid.to_owned(),
        None => format!(
            "{}/{}/{}",
            value(SITE_ID),
            value(TRANS_DATE),
            transaction_number
        ),
    };
    let facts = LyraFacts {
        trans_status: trans_status.to_owned(),
        operation_type: value(OPERATION_TYPE).to_owned(),
        url_check_src: value(URL_CHECK_SRC).to_owned(),
        risk_assessment: split_list(value(RISK_ASSESSMENT_RESULT)),
        risk_analysis: value(RISK_ANALYSIS_RESULT).to_owned(),
        risk_control: split_pairs(value(RISK_CONTROL)),
        result: value(RESULT).to_owned(),
        extra_result: value(EXTRA_RESULT).to_owned(),
        sequence_number: value(SEQUENCE_NUMBER).to_owned(),
        card_brand: value(CARD_BRAND).to_owned(),
        card_number: value(CARD_NUMBER).to_owned(),
        threeds_status: value(THREEDS_STATUS).to_owned(),
        ctx_mode: value(CTX_MODE).to_owned(),
        order_cycle: String::new(),
        unsigned_src: String::new(),
    };
    Ok(Notification {
        provider: Provider::LyraForm,
        order_ref: value(ORDER_ID).to_owned(),
        transaction_id,
        transaction_number,
        amount_minor: form
            .known(EFFECTIVE_AMOUNT)
            .filter(|a| !a.is_empty())
            .or_else(|| form.known(AMOUNT))
            .and_then(|a| a.parse().ok()),
        currency: form
            .known(EFFECTIVE_CURRENCY)
            .filter(|c| !c.is_empty())
            .unwrap_or_else(|| value(CURRENCY))
            .to_owned(),
        facts: Facts::Lyra(facts),
    })
}

fn required<'f>(form: &'f Form, name: &'static str) -> Result<&'f str, LyraError> {
    form.get(name)
        .filter(|v| !v.is_empty())
        .ok_or(LyraError::MissingField(name))
}

fn split_list(raw: &str) -> Vec<String> {
    raw.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn split_pairs(raw: &str) -> Vec<(String, String)> {
    raw.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| match item.split_once('=') {
            Some((control, result)) => (control.to_owned(), result.to_owned()),
            None => (item.to_owned(), String::new()),
        })
        .collect()
}

// ---------------------------------------------------------------- REST IPN

/// `hex_lower(HMAC-SHA-256(key, answer))`, the `kr-hash` formula.
pub fn rest_hash(answer: &str, key: &str) -> String {
    let mut mac = HmacSha256::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(answer.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// Checks `kr-hash` against `kr-answer` with the given key, accepting the
/// documented `\/` → `/` fallback for servers that escape slashes.
pub fn rest_hash_matches(answer: &str, key: &str, received: &str) -> bool {
    if ct_eq(rest_hash(answer, key).as_bytes(), received.as_bytes()) {
        return true;
    }
    answer.contains("\\/")
        && ct_eq(
            rest_hash(&answer.replace("\\/", "/"), key).as_bytes(),
            received.as_bytes(),
        )
}

/// Verifies a REST IPN: it must be signed with the REST password
/// (`kr-hash-key=password`), never with the browser-return key.
pub fn verify_rest(form: &Form, password: &str) -> Result<(), LyraError> {
    let hash = form.get("kr-hash").ok_or(LyraError::MissingSignature)?;
    let answer = form.get("kr-answer").ok_or(LyraError::MissingSignature)?;
    let hash_key = form.str("kr-hash-key");
    if hash_key != "password" {
        return Err(LyraError::WrongHashKey(hash_key.to_owned()));
    }
    // lyra.md §2.2: check it (the platform always sends it).
    let algorithm = form
        .get("kr-hash-algorithm")
        .ok_or(LyraError::MissingHashAlgorithm)?;
    if algorithm != "sha256_hmac" {
        return Err(LyraError::WrongHashAlgorithm(algorithm.to_owned()));
    }
    if !rest_hash_matches(answer, password, hash) {
        return Err(LyraError::BadSignature {
            algo: "HMAC-SHA-256",
            mode: "REST password",
        });
    }
    Ok(())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    #[serde(default)]
    shop_id: Option<String>,
    #[serde(default)]
    order_cycle: Option<String>,
    #[serde(default)]
    order_details: OrderDetails,
    #[serde(default)]
    transactions: Vec<Transaction>,
    #[serde(default)]
    order_status: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct OrderDetails {
    mode: Option<String>,
    order_id: Option<String>,
    order_total_amount: Option<i64>,
    order_currency: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Transaction {
    uuid: Option<String>,
    amount: Option<i64>,
    currency: Option<String>,
    detailed_status: Option<String>,
    operation_type: Option<String>,
    error_code: Option<String>,
    detailed_error_code: Option<String>,
    transaction_details: Option<TransactionDetails>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct TransactionDetails {
    sequence_number: Option<serde_json::Value>,
    card_details: Option<CardDetails>,
    fraud_management: Option<FraudManagement>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct CardDetails {
    effective_brand: Option<String>,
    pan: Option<String>,
    legacy_trans_id: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct FraudManagement {
    risk_control: Option<Vec<RiskControl>>,
    risk_assessments: Option<RiskAssessments>,
    risk_analysis: Option<Vec<RiskAnalysis>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RiskControl {
    name: Option<String>,
    result: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RiskAssessments {
    results: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RiskAnalysis {
    result: Option<String>,
}

/// Parses a *verified* `kr-answer` into a [`Notification`] (the first
/// transaction, mapped to `vads_*` terms as the official plugins do). When
/// `site_id` is set, the answer's `shopId` must equal it (else 403).
///
/// `kr-src` is outside `kr-hash`: it is kept for the comment
/// (`unsigned_src`) but never becomes the origin (`url_check_src` stays
/// empty), so a REST CANCELLED never counts as a back-office cancel of a
/// paid order.
pub fn rest_notification(
    form: &Form,
    expected_mode: Mode,
    site_id: Option<&str>,
) -> Result<Notification, LyraError> {
    let raw = form
        .get("kr-answer")
        .ok_or(LyraError::MissingField("kr-answer"))?;
    let answer: Answer =
        serde_json::from_str(raw).map_err(|e| LyraError::BadJson(e.to_string()))?;
    let mode = answer.order_details.mode.clone().unwrap_or_default();
    if mode != expected_mode.as_str() {
        return Err(LyraError::ModeMismatch {
            expected: expected_mode.as_str(),
            got: mode,
        });
    }
    if let Some(site) = site_id {
        let got = answer.shop_id.clone().unwrap_or_default();
        if got != site {
            return Err(LyraError::ShopMismatch { got });
        }
    }
    let tx = answer
        .transactions
        .into_iter()
        .next()
        .ok_or(LyraError::MissingField("transactions"))?;
    let status = tx
        .detailed_status
        .clone()
        .filter(|s| !s.is_empty())
        .or(answer.order_status.clone())
        .ok_or(LyraError::MissingField("detailedStatus"))?;
    let details = tx.transaction_details.unwrap_or_default();
    let card = details.card_details.unwrap_or_default();
    let fraud = details.fraud_management.unwrap_or_default();
    let transaction_number = card.legacy_trans_id.unwrap_or_default();
    let sequence_number = match details.sequence_number {
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(serde_json::Value::String(s)) => s,
        _ => String::new(),
    };
    let facts = LyraFacts {
        trans_status: status,
        operation_type: tx.operation_type.unwrap_or_default(),
        url_check_src: String::new(),
        risk_assessment: fraud
            .risk_assessments
            .and_then(|r| r.results)
            .unwrap_or_default(),
        risk_analysis: fraud
            .risk_analysis
            .and_then(|list| list.into_iter().find_map(|r| r.result))
            .unwrap_or_default(),
        risk_control: fraud
            .risk_control
            .unwrap_or_default()
            .into_iter()
            .map(|c| (c.name.unwrap_or_default(), c.result.unwrap_or_default()))
            .collect(),
        result: tx.error_code.unwrap_or_else(|| "00".to_owned()),
        extra_result: tx.detailed_error_code.unwrap_or_default(),
        sequence_number,
        card_brand: card.effective_brand.unwrap_or_default(),
        card_number: card.pan.unwrap_or_default(),
        threeds_status: String::new(),
        ctx_mode: mode,
        order_cycle: answer.order_cycle.unwrap_or_default(),
        unsigned_src: form.str("kr-src").to_owned(),
    };
    Ok(Notification {
        provider: Provider::LyraRest,
        order_ref: answer.order_details.order_id.unwrap_or_default(),
        transaction_id: tx.uuid.unwrap_or_else(|| transaction_number.clone()),
        transaction_number,
        amount_minor: tx.amount.or(answer.order_details.order_total_amount),
        currency: tx
            .currency
            .or(answer.order_details.order_currency)
            .unwrap_or_default(),
        facts: Facts::Lyra(facts),
    })
}

pub mod shape;

/// This provider as intake sees it (`providers::Source`).
pub mod source;

#[cfg(test)]
mod tests;
