//! Cybersource REST, read side: the Conversion Detail Report
//! (`GET /reporting/v3/conversion-details?startTime=…&endTime=…`,
//! cybersource.md §6), where an analyst's case decision shows up even when
//! no webhook is configured (the official plugins poll it).
//!
//! A GET is signed like the case actions ([`super::cybersource`]) without a
//! body, hence without `Digest`: `headers="host date (request-target)
//! v-c-merchant-id"`, the request target being `get <path>?<query>`.
//!
//! Each `conversionDetails[]` entry with a `newDecision` becomes a
//! notification shaped like one CMOS `<Update>` (the same fields: order
//! reference, request id, original and new decision, reviewer and
//! comments), so rules cs2/cs3 decide it as they decide CMOS.
//!
//! Transaction details (`GET /tss/v2/transactions/{id}`, signed the same
//! way) confirm a webhook whose event type the signature did not cover
//! (rule cs8): the transaction's state, derived by
//! [`super::cybersource_tss`] (`applicationInformation.status` when given,
//! else the services' replies `applications[]`, else the request's reason
//! code and flags, else the profile decision), decides through the same
//! rules as a signed status; a state that cannot be derived confirms
//! nothing.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::Deserialize;
use sha2::Sha256;

use super::gateway::Lookup;
use super::{http_client, read_answer, snippet, transport_error, GatewayError};
use crate::config::CybersourceApi;
use crate::domain::notification::{CybersourceChannel, CybersourceFacts};
use crate::domain::{Facts, Notification, Provider};

/// The headers a GET's signature covers, in signing order.
pub const SIGNED_HEADERS: &str = "host date (request-target) v-c-merchant-id";
/// The report's path.
pub const PATH: &str = "/reporting/v3/conversion-details";

/// The `Signature` header of a GET of `target` (path and query).
pub fn sign_get(
    api_key_id: &str,
    secret: &[u8],
    merchant_id: &str,
    host: &str,
    date: &str,
    target: &str,
) -> String {
    let text = format!(
        "host: {host}\ndate: {date}\n(request-target): get {target}\nv-c-merchant-id: {merchant_id}"
    );
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(text.as_bytes());
    let signature = STANDARD.encode(mac.finalize().into_bytes());
    format!(
        "keyid=\"{api_key_id}\", algorithm=\"HmacSHA256\", headers=\"{SIGNED_HEADERS}\", signature=\"{signature}\""
    )
}

/// Unix ms as the report's `yyyy-MM-ddTHH:mm:ssZ`.
pub fn report_time(ms: i64) -> String {
    format!("{}Z", crate::cli::table::utc(ms).replace(' ', "T"))
}

/// The path and query of the report over `[start, end)` (ms).
pub fn target(merchant_id: &str, start: i64, end: i64) -> String {
    let query = serde_urlencoded::to_string([
        ("startTime", report_time(start)),
        ("endTime", report_time(end)),
        ("organizationId", merchant_id.to_owned()),
    ])
    .expect("strings encode");
    format!("{PATH}?{query}")
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Report {
    conversion_details: Vec<Conversion>,
}

/// One `conversionDetails[]` entry: an analyst's decision on a case.
#[derive(Debug, Clone, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct Conversion {
    pub merchant_reference_number: String,
    /// `yyyy-MM-ddTHH:mm:ssZ`.
    pub conversion_time: String,
    pub request_id: String,
    pub original_decision: String,
    pub new_decision: String,
    pub reviewer: String,
    pub reviewer_comments: String,
}

/// Reads the report: one notification per decision, in the report's order.
pub fn interpret(
    organization_id: &str,
    http_status: u16,
    body: &str,
) -> Result<Vec<Notification>, GatewayError> {
    Ok(entries(http_status, body)?
        .into_iter()
        .filter(|c| !c.new_decision.trim().is_empty() && !c.merchant_reference_number.is_empty())
        .map(|c| Notification {
            provider: Provider::Cybersource,
            order_ref: c.merchant_reference_number.clone(),
            transaction_id: if c.request_id.is_empty() {
                c.merchant_reference_number.clone()
            } else {
                c.request_id.clone()
            },
            transaction_number: c.request_id.clone(),
            amount_minor: None,
            currency: String::new(),
            facts: Facts::Cybersource(CybersourceFacts {
                channel: CybersourceChannel::Cmos,
                new_decision: c.new_decision.trim().to_ascii_uppercase(),
                original_decision: c.original_decision,
                reviewer: c.reviewer,
                reviewer_comments: c.reviewer_comments,
                organization_id: organization_id.to_owned(),
                request_id: c.request_id,
                ..Default::default()
            }),
        })
        .collect())
}

/// Reads the report's entries as they are (a 404 is an empty window).
pub fn entries(http_status: u16, body: &str) -> Result<Vec<Conversion>, GatewayError> {
    match http_status {
        200 => {}
        // No conversion in the window.
        404 => return Ok(Vec::new()),
        401 | 403 => {
            return Err(GatewayError::Refused(format!(
                "HTTP {http_status}: authentication refused (check merchant_id, api_key_id and api_shared_secret)"
            )))
        }
        500.. => {
            return Err(GatewayError::Unreachable(format!(
                "HTTP {http_status}: {}",
                snippet(body)
            )))
        }
        _ => {
            return Err(GatewayError::Refused(format!(
                "HTTP {http_status}: {}",
                snippet(body)
            )))
        }
    }
    let report: Report = serde_json::from_str(body).map_err(|e| {
        GatewayError::Refused(format!(
            "not a conversion detail report ({e}): {}",
            snippet(body)
        ))
    })?;
    Ok(report.conversion_details)
}

/// The path of transaction details.
pub const TRANSACTION_PATH: &str = "/tss/v2/transactions/";

/// Reads transaction details about the transaction `stored` names.
pub fn interpret_transaction(
    stored: &Notification,
    http_status: u16,
    body: &str,
) -> Result<Lookup, GatewayError> {
    match http_status {
        200 => {}
        404 => {
            return Ok(Lookup::Unconfirmed(format!(
                "Cybersource knows no transaction {}",
                stored.transaction_id
            )))
        }
        401 | 403 => {
            return Err(GatewayError::Refused(format!(
                "HTTP {http_status}: authentication refused (check merchant_id, api_key_id and api_shared_secret)"
            )))
        }
        500.. => {
            return Err(GatewayError::Unreachable(format!(
                "HTTP {http_status}: {}",
                snippet(body)
            )))
        }
        _ => {
            return Err(GatewayError::Refused(format!(
                "HTTP {http_status}: {}",
                snippet(body)
            )))
        }
    }
    let t: serde_json::Value = serde_json::from_str(body)
        .ok()
        .filter(serde_json::Value::is_object)
        .ok_or_else(|| {
            GatewayError::Refused(format!("not transaction details: {}", snippet(body)))
        })?;
    let code = t["clientReferenceInformation"]["code"]
        .as_str()
        .unwrap_or_default();
    // A genuine transaction of another order proves nothing about this one.
    if !code.is_empty() && code != stored.order_ref {
        return Ok(Lookup::Unconfirmed(format!(
            "Cybersource transaction {} belongs to order {code}, not {}",
            stored.transaction_id, stored.order_ref
        )));
    }
    // The status when given, else what the services' replies say
    // (`cybersource_tss`): real answers rarely carry a status.
    let state = super::cybersource_tss::derive(&t["applicationInformation"], &t["riskInformation"]);
    let (status, reason) = (state.status, state.reason);
    let id = t["id"]
        .as_str()
        .filter(|id| !id.is_empty())
        .unwrap_or(&stored.transaction_id);
    let profile = t["riskInformation"]["profile"]["decision"]
        .as_str()
        .unwrap_or_default();
    let summary = format!(
        "transaction {id} {}{}{}",
        if status.is_empty() {
            "without a readable state"
        } else {
            &status
        },
        if state.evidence.is_empty() {
            String::new()
        } else {
            format!(" ({})", state.evidence)
        },
        if profile.is_empty() || state.evidence.starts_with("profile decision") {
            String::new()
        } else {
            format!(", profile decision {profile}")
        }
    );
    Ok(
        match crate::domain::outcome::cybersource::from_gateway_state(stored, &status, &reason) {
            Some(n) => Lookup::Found {
                notification: Box::new(n),
                summary,
            },
            None => Lookup::Unconfirmed(format!("{summary}: the state decides nothing")),
        },
    )
}

/// Fetches transaction details of the transaction `stored` names (its
/// request id).
pub async fn fetch_transaction(
    api: &CybersourceApi,
    stored: &Notification,
) -> Result<Lookup, GatewayError> {
    let id = match &stored.facts {
        Facts::Cybersource(f) if !f.request_id.is_empty() => f.request_id.clone(),
        _ => stored.transaction_id.clone(),
    };
    // Request ids are digits: anything else would change the path.
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Ok(Lookup::Unconfirmed(format!(
            "no transaction id to ask Cybersource about ({id:?})"
        )));
    }
    let target = format!("{TRANSACTION_PATH}{id}");
    let (status, body) = signed_get(api, &target).await?;
    interpret_transaction(stored, status, &body)
}

/// Fetches the report over `[start, end)` (ms).
pub async fn conversions(
    api: &CybersourceApi,
    start: i64,
    end: i64,
) -> Result<Vec<Notification>, GatewayError> {
    let target = target(&api.merchant_id, start, end);
    let (status, body) = signed_get(api, &target).await?;
    interpret(&api.merchant_id, status, &body)
}

/// Fetches the report's entries over `[start, end)` (ms).
pub async fn conversion_entries(
    api: &CybersourceApi,
    start: i64,
    end: i64,
) -> Result<Vec<Conversion>, GatewayError> {
    let target = target(&api.merchant_id, start, end);
    let (status, body) = signed_get(api, &target).await?;
    entries(status, &body)
}

/// A signed GET of `target` (path and query): the HTTP status and body.
async fn signed_get(api: &CybersourceApi, target: &str) -> Result<(u16, String), GatewayError> {
    let url = reqwest::Url::parse(&format!("{}{target}", api.api_host))
        .map_err(|e| GatewayError::Refused(format!("api_host does not make a URL: {e}")))?;
    let host = match (url.host_str(), url.port()) {
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (Some(h), None) => h.to_owned(),
        (None, _) => return Err(GatewayError::Refused("api_host has no host".into())),
    };
    let date = httpdate::fmt_http_date(std::time::SystemTime::now());
    let signature = sign_get(
        &api.key_id,
        api.shared_secret.expose(),
        &api.merchant_id,
        &host,
        &date,
        target,
    );
    let response = http_client(api.timeout)
        .get(url)
        .header("host", &host)
        .header("date", &date)
        .header("v-c-merchant-id", &api.merchant_id)
        .header("signature", signature)
        .header("accept", "application/hal+json;charset=utf-8")
        .send()
        .await
        .map_err(transport_error)?;
    let status = response.status().as_u16();
    let body = read_answer(response).await?;
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_is_asked_for_a_window_and_read_as_cmos_updates() {
        assert_eq!(
            target("ipnsync_demo", 0, 86_400_000),
            "/reporting/v3/conversion-details?startTime=1970-01-01T00%3A00%3A00Z&endTime=1970-01-02T00%3A00%3A00Z&organizationId=ipnsync_demo"
        );
        let body = r#"{"conversionDetails": [
            {"merchantReferenceNumber": "42", "conversionTime": "2026-11-24T10:00:00Z",
             "requestId": "7420157839246543904951", "originalDecision": "REVIEW",
             "newDecision": "ACCEPT", "reviewer": "alice", "reviewerComments": "ok", "queue": "q", "profile": "p"},
            {"merchantReferenceNumber": "43", "requestId": "1", "originalDecision": "REVIEW", "newDecision": ""}
        ]}"#;
        let got = interpret("ipnsync_demo", 200, body).unwrap();
        assert_eq!(got.len(), 1, "an entry without a decision is no decision");
        assert_eq!(got[0].order_ref, "42");
        assert_eq!(got[0].status(), "ACCEPT");
        assert_eq!(
            crate::domain::assess(&got[0]).outcome,
            crate::domain::Outcome::Accepted
        );
        assert!(interpret("x", 404, "").unwrap().is_empty());
        assert!(interpret("x", 401, "").is_err());
        assert!(matches!(
            interpret("x", 502, ""),
            Err(GatewayError::Unreachable(_))
        ));
    }

    #[test]
    fn transaction_details_decide_from_the_payment_status_of_the_order() {
        let stored = crate::domain::outcome::test_support::dm_payload_signed(
            "risk.casemanagement.decision.accept",
            "",
            "",
        );
        let details = |status: &str, code: &str| {
            format!(
                r#"{{"id": "req-1", "clientReferenceInformation": {{"code": "{code}"}},
                    "applicationInformation": {{"status": "{status}"}},
                    "riskInformation": {{"profile": {{"decision": "REVIEW"}}}}}}"#
            )
        };
        let outcome = |l: Lookup| match l {
            Lookup::Found { notification, .. } => {
                Some(crate::domain::assess(&notification).outcome)
            }
            Lookup::Unconfirmed(_) | Lookup::NoRecord(_) => None,
        };
        let got = interpret_transaction(&stored, 200, &details("AUTHORIZED", "100000123")).unwrap();
        assert_eq!(outcome(got), Some(crate::domain::Outcome::Accepted));
        let got = interpret_transaction(
            &stored,
            200,
            &details("AUTHORIZED_RISK_DECLINED", "100000123"),
        )
        .unwrap();
        assert_eq!(outcome(got), Some(crate::domain::Outcome::Rejected));
        // Only the profile's decision: REVIEW.
        let got = interpret_transaction(
            &stored,
            200,
            r#"{"id": "req-1", "riskInformation": {"profile": {"decision": "REVIEW"}}}"#,
        )
        .unwrap();
        assert_eq!(outcome(got), Some(crate::domain::Outcome::Review));
        // Another order's transaction, an unknown one: not confirmed.
        let got = interpret_transaction(&stored, 200, &details("AUTHORIZED", "999")).unwrap();
        assert!(
            matches!(&got, Lookup::Unconfirmed(why) if why.contains("belongs to order 999")),
            "{got:?}"
        );
        assert!(matches!(
            interpret_transaction(&stored, 404, "").unwrap(),
            Lookup::Unconfirmed(_)
        ));
        assert!(matches!(
            interpret_transaction(&stored, 503, ""),
            Err(GatewayError::Unreachable(_))
        ));
        assert!(matches!(
            interpret_transaction(&stored, 401, ""),
            Err(GatewayError::Refused(_))
        ));
    }

    /// Transaction details as Cybersource answers them: no `status`, no
    /// profile decision, the services' replies instead.
    fn real_details(top: (&str, &str, &str), apps: serde_json::Value) -> String {
        serde_json::json!({
            "id": "req-1",
            "submitTimeUTC": "2026-11-24T09:58:00Z",
            "clientReferenceInformation": {"code": "100000123"},
            "applicationInformation": {
                "reasonCode": top.0, "rCode": top.1, "rFlag": top.2, "applications": apps
            },
            "riskInformation": {"score": {}},
        })
        .to_string()
    }

    #[test]
    fn transaction_details_without_status_are_decided_from_the_services() {
        let stored = crate::domain::outcome::test_support::dm_payload_signed(
            "risk.casemanagement.decision.accept",
            "",
            "",
        );
        let auth = serde_json::json!({"name": "ics_auth", "reasonCode": "100", "rCode": "1",
            "rFlag": "SOK", "rMessage": "Request was processed successfully.", "returnCode": 1010000});
        let dm_reject = serde_json::json!({"name": "ics_decision", "reasonCode": "481", "rCode": "0",
            "rFlag": "DREJECT", "rMessage": "Decision is REJECT.", "returnCode": 1320000});
        let outcome = |l: &Lookup| match l {
            Lookup::Found { notification, .. } => Some(crate::domain::assess(notification).outcome),
            Lookup::Unconfirmed(_) | Lookup::NoRecord(_) => None,
        };
        // Authorised, then rejected by Decision Manager: never accepted.
        let body = real_details(
            ("481", "0", "DREJECT"),
            serde_json::json!([dm_reject, auth]),
        );
        let got = interpret_transaction(&stored, 200, &body).unwrap();
        assert_eq!(outcome(&got), Some(crate::domain::Outcome::Rejected));
        let Lookup::Found { summary, .. } = &got else {
            unreachable!()
        };
        assert_eq!(
            summary,
            "transaction req-1 AUTHORIZED_RISK_DECLINED (ics_auth 100 SOK, ics_decision 481 DREJECT)"
        );
        // A plain approved authorisation.
        let body = real_details(("100", "1", "SOK"), serde_json::json!([auth]));
        let got = interpret_transaction(&stored, 200, &body).unwrap();
        assert_eq!(outcome(&got), Some(crate::domain::Outcome::Accepted));
        // Nothing to derive a state from: not confirmed.
        let body = r#"{"id": "req-1", "applicationInformation": {"applications": [{"name": "ics_pa_enroll"}]},
                       "riskInformation": {"providers": {}}}"#;
        let got = interpret_transaction(&stored, 200, body).unwrap();
        assert!(
            matches!(&got, Lookup::Unconfirmed(why) if why.contains("without a readable state")),
            "{got:?}"
        );
        // Not JSON, or not an object: refused (asked again), never applied.
        assert!(matches!(
            interpret_transaction(&stored, 200, "[]"),
            Err(GatewayError::Refused(_))
        ));
    }
}
