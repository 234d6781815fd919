//! A fake Cybersource REST API for Decision Manager case actions
//! (`POST /risk/v1/decisions/{id}/actions`) that checks the HTTP Signature
//! on its own: the `Digest` of the body, the signature rebuilt from the
//! header list it names, the merchant id. It records every call and can
//! accept, refuse, or never answer.
//!
//! It also serves the Conversion Detail Report
//! (`GET /reporting/v3/conversion-details?startTime=…&endTime=…`, signed
//! without `Digest`, the request target with its query): the
//! `conversionDetails[]` a test sets with
//! [`FakeCybersourceApi::set_conversions`], or 404 when there are none, as
//! the real API answers an empty window.
//!
//! And transaction details (`GET /tss/v2/transactions/{id}`, signed like
//! the report): the body a test sets with
//! [`FakeCybersourceApi::set_transaction`], or 404 for an unknown id.
//! [`details`] builds such a body in the shape Cybersource really answers:
//! no `applicationInformation.status`, no profile decision, the reply of
//! each service the request ran (`applications[]`) and the request's
//! overall `reasonCode` / `rCode` / `rFlag`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{HeaderMap, Request, Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Call {
    /// The decision id from the path.
    pub decision_id: String,
    /// Digest, signature and merchant id all checked out.
    pub verified: bool,
    /// Why not, when not.
    pub problem: String,
    pub body: Value,
}

#[derive(Debug, Clone)]
pub enum Mode {
    /// 201 with the case's new status.
    Accept,
    /// This status and body.
    Fail {
        status: u16,
        body: String,
    },
    Hang,
    /// Fails for this decision id only (as `Fail`), accepts the others.
    FailFor {
        id: String,
        status: u16,
        body: String,
    },
}

struct State {
    merchant_id: String,
    key_id: String,
    secret: Vec<u8>,
    mode: Mode,
    calls: Vec<Call>,
    conversions: Vec<Value>,
    /// Report calls: the query and whether the signature checked out.
    report_calls: Vec<(String, bool)>,
    /// Transaction details by id.
    transactions: std::collections::HashMap<String, Value>,
    /// Transaction details calls: the id and whether the signature checked out.
    transaction_calls: Vec<(String, bool)>,
}

/// What a transaction's details say, for [`details`].
#[derive(Debug, Clone, Copy)]
pub enum Tss {
    /// An approved authorisation, no Decision Manager.
    Authorised,
    /// Authorised, then rejected by Decision Manager (reason code 481).
    AuthorisedRiskRejected,
    /// Authorised, Decision Manager sent it to review (480).
    AuthorisedReview,
}

/// Transaction details of request `id` for order `order`, as Cybersource
/// answers them (`GET /tss/v2/transactions/{id}`): codes partly numbers,
/// partly strings, `riskInformation` without a profile.
pub fn details(id: &str, order: &str, what: Tss) -> Value {
    let auth = json!({"name": "ics_auth", "reasonCode": "100", "rCode": "1", "rFlag": "SOK",
        "rMessage": "Request was processed successfully.", "returnCode": 1010000});
    let (top, apps) = match what {
        Tss::Authorised => ((100, "1", "SOK"), vec![auth]),
        Tss::AuthorisedRiskRejected => (
            (481, "0", "DREJECT"),
            vec![
                json!({"name": "ics_decision", "reasonCode": "481", "rCode": "0", "rFlag": "DREJECT",
                       "rMessage": "Decision is REJECT.", "returnCode": 1320000}),
                auth,
            ],
        ),
        Tss::AuthorisedReview => (
            (480, "1", "DREVIEW"),
            vec![
                auth,
                json!({"name": "ics_decision", "reasonCode": "480", "rCode": "1", "rFlag": "DREVIEW",
                       "rMessage": "Decision is REVIEW.", "returnCode": 1320000}),
            ],
        ),
    };
    json!({
        "id": id,
        "submitTimeUTC": "2025-03-11T09:58:00Z",
        "merchantId": "ipnsync_demo",
        "applicationInformation": {
            "reasonCode": top.0, "rCode": top.1, "rFlag": top.2,
            "applications": apps,
        },
        "clientReferenceInformation": {"code": order, "applicationName": "REST API"},
        "orderInformation": {"amountDetails": {"totalAmount": "42.00", "currency": "EUR"}},
        "riskInformation": {"score": {}},
    })
}

#[derive(Clone)]
pub struct FakeCybersourceApi {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FakeCybersourceApi {
    /// `secret_b64` is the shared secret as the Business Center shows it.
    pub async fn start(merchant_id: &str, key_id: &str, secret_b64: &str) -> FakeCybersourceApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let fake = FakeCybersourceApi {
            addr: listener.local_addr().expect("local addr"),
            state: Arc::new(Mutex::new(State {
                merchant_id: merchant_id.to_owned(),
                key_id: key_id.to_owned(),
                secret: STANDARD.decode(secret_b64).expect("base64 secret"),
                mode: Mode::Accept,
                calls: Vec::new(),
                conversions: Vec::new(),
                report_calls: Vec::new(),
                transactions: Default::default(),
                transaction_calls: Vec::new(),
            })),
        };
        tokio::spawn(fake.clone().serve(listener));
        fake
    }

    /// The `api_host` to configure.
    pub fn api_host(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.lock().mode = mode;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("fake state")
    }

    async fn serve(self, listener: TcpListener) {
        super::http::serve(listener, move |req| {
            let fake = self.clone();
            async move { fake.handle(req).await }
        })
        .await;
    }

    /// The report's `conversionDetails[]`.
    pub fn set_conversions(&self, conversions: Vec<Value>) {
        self.lock().conversions = conversions;
    }

    /// Report calls so far: (query, signature verified).
    pub fn report_calls(&self) -> Vec<(String, bool)> {
        self.lock().report_calls.clone()
    }

    /// The transaction details `GET /tss/v2/transactions/{id}` answers.
    pub fn set_transaction(&self, id: &str, details: Value) {
        self.lock().transactions.insert(id.to_owned(), details);
    }

    /// Transaction details calls so far: (id, signature verified).
    pub fn transaction_calls(&self) -> Vec<(String, bool)> {
        self.lock().transaction_calls.clone()
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path().to_owned();
        if let Some(id) = path.strip_prefix("/tss/v2/transactions/") {
            let mut s = self.lock();
            let verified = req.method() == hyper::Method::GET
                && check(&s, req.headers(), "get", &path, b"").is_ok();
            s.transaction_calls.push((id.to_owned(), verified));
            if !verified {
                return reply(
                    401,
                    json!({"response": {"rmsg": "Authentication Failed"}}).to_string(),
                );
            }
            if let Mode::Fail { status, body } = &s.mode {
                return reply(*status, body.clone());
            }
            return match s.transactions.get(id) {
                Some(details) => reply(200, details.to_string()),
                None => reply(
                    404,
                    json!({"status": "NOT_FOUND", "message": "The requested resource does not exist"})
                        .to_string(),
                ),
            };
        }
        if path == "/reporting/v3/conversion-details" {
            let target = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default();
            let query = req.uri().query().unwrap_or("").to_owned();
            let mut s = self.lock();
            let verified = check(&s, req.headers(), "get", &target, b"").is_ok();
            s.report_calls.push((query, verified));
            if !verified {
                return reply(
                    401,
                    json!({"response": {"rmsg": "Authentication Failed"}}).to_string(),
                );
            }
            if let Mode::Fail { status, body } = &s.mode {
                return reply(*status, body.clone());
            }
            if s.conversions.is_empty() {
                return reply(404, json!({"message": "No conversions found"}).to_string());
            }
            return reply(
                200,
                json!({"organizationId": s.merchant_id, "conversionDetails": s.conversions})
                    .to_string(),
            );
        }
        let Some(id) = path
            .strip_prefix("/risk/v1/decisions/")
            .and_then(|rest| rest.strip_suffix("/actions"))
            .map(str::to_owned)
        else {
            return reply(404, json!({"status": "NOT_FOUND"}).to_string());
        };
        let method = req.method().as_str().to_ascii_lowercase();
        let headers = req.headers().clone();
        let raw = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        let (mode, verified) = {
            let mut s = self.lock();
            let problem = check(&s, &headers, &method, &path, &raw)
                .err()
                .unwrap_or_default();
            let verified = problem.is_empty();
            s.calls.push(Call {
                decision_id: id.clone(),
                verified,
                problem,
                body: body.clone(),
            });
            (s.mode.clone(), verified)
        };
        if !verified {
            return reply(
                401,
                json!({"response": {"rmsg": "Authentication Failed"}}).to_string(),
            );
        }
        match mode {
            Mode::Hang => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                reply(201, String::new())
            }
            Mode::Fail { status, body } => reply(status, body),
            Mode::FailFor {
                id: failing,
                status,
                body,
            } if failing == id => reply(status, body),
            Mode::Accept | Mode::FailFor { .. } => {
                let status = match body["decisionInformation"]["decision"].as_str() {
                    Some("ACCEPT") => "ACCEPTED",
                    Some("REJECT") => "REJECTED",
                    _ => {
                        return reply(
                            400,
                            json!({"status": "INVALID_REQUEST", "reason": "MISSING_FIELD",
                                   "message": "decisionInformation.decision is required"})
                            .to_string(),
                        )
                    }
                };
                reply(
                    201,
                    json!({"id": id, "status": status, "submitTimeUtc": "2026-11-24T10:00:00Z"})
                        .to_string(),
                )
            }
        }
    }
}

/// Cybersource's HTTP Signature check, implemented apart from the daemon's
/// signer: rebuilds the signing string from the header names the
/// `Signature` header lists.
fn check(
    s: &State,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<(), String> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
            .ok_or_else(|| format!("no {name} header"))
    };
    // A GET has no body, hence no digest.
    let expected_list = if method == "get" {
        "host date (request-target) v-c-merchant-id"
    } else {
        let expected_digest = format!("SHA-256={}", STANDARD.encode(Sha256::digest(body)));
        if get("digest")? != expected_digest {
            return Err("digest does not match the body".into());
        }
        "host date (request-target) digest v-c-merchant-id"
    };
    if get("v-c-merchant-id")? != s.merchant_id {
        return Err("wrong merchant id".into());
    }
    httpdate::parse_http_date(&get("date")?).map_err(|_| "date is not an HTTP date")?;
    let signature = get("signature")?;
    let params: Vec<(String, String)> = signature
        .split(", ")
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.trim_matches('"').to_owned()))
        .collect();
    let param = |k: &str| {
        params
            .iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| format!("signature has no {k}"))
    };
    if param("keyid")? != s.key_id {
        return Err("unknown keyid".into());
    }
    if param("algorithm")? != "HmacSHA256" {
        return Err("algorithm is not HmacSHA256".into());
    }
    let names = param("headers")?;
    if names != expected_list {
        return Err(format!("unexpected header list {names:?}"));
    }
    let lines: Vec<String> = names
        .split(' ')
        .map(|name| match name {
            "(request-target)" => Ok(format!("(request-target): {method} {path}")),
            other => get(other).map(|v| format!("{other}: {v}")),
        })
        .collect::<Result<_, _>>()?;
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&s.secret).expect("any key length");
    mac.update(lines.join("\n").as_bytes());
    let given = STANDARD
        .decode(param("signature")?)
        .map_err(|_| "signature is not base64")?;
    mac.verify_slice(&given)
        .map_err(|_| "signature does not match".to_owned())
}

fn reply(status: u16, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(StatusCode::from_u16(status).expect("status"))
        .header("content-type", "application/hal+json")
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}
