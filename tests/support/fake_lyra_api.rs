//! A fake Lyra REST API V4 (`Transaction/Validate`, `Transaction/Get`,
//! `Transaction/CancelOrRefund`) that checks HTTP Basic auth on its own,
//! records every call, and answers with the documented envelope: success,
//! `PSP_100`, an unexpected `detailedStatus`, or never.
//!
//! Like the real gateway it knows its transactions (tests seed them with
//! [`FakeLyraApi::set_transaction`]): an unknown uuid is an error, and
//! `Transaction/Validate` is refused unless the transaction waits for
//! validation (`AUTHORISED_TO_VALIDATE`, `WAITING_AUTHORISATION_TO_VALIDATE`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// One call the fake received.
#[derive(Debug, Clone)]
pub struct Call {
    /// `Transaction/Validate` or `Transaction/CancelOrRefund`.
    pub service: String,
    /// The Basic credentials matched.
    pub authorised: bool,
    pub content_type: String,
    pub body: Value,
}

/// What the fake answers.
#[derive(Debug, Clone)]
pub enum Mode {
    /// `SUCCESS` with the status the service produces (Validate →
    /// AUTHORISED, CancelOrRefund → CANCELLED).
    Success,
    /// `ERROR` / `PSP_100`: web services not subscribed.
    NotSubscribed,
    /// `SUCCESS` with this `detailedStatus`.
    Status(String),
    /// Never answers.
    Hang,
    /// Waits this long, then answers as [`Mode::Success`].
    Slow(Duration),
    /// 503 Service Unavailable, an HTML page (the gateway is down).
    Down,
}

/// The statuses `Transaction/Validate` accepts.
const TO_VALIDATE: [&str; 2] = [
    "AUTHORISED_TO_VALIDATE",
    "WAITING_AUTHORISATION_TO_VALIDATE",
];

struct State {
    shop_id: String,
    password: String,
    mode: Mode,
    calls: Vec<Call>,
    /// uuid → `detailedStatus`.
    transactions: HashMap<String, String>,
    /// uuid → `orderDetails.orderId`, when a test names the order.
    orders: HashMap<String, String>,
    /// `(order id, uuid)` in the order the tests created them, for
    /// `Order/Get`.
    order_list: Vec<(String, String)>,
}

#[derive(Clone)]
pub struct FakeLyraApi {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FakeLyraApi {
    pub async fn start(shop_id: &str, password: &str) -> FakeLyraApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let fake = FakeLyraApi {
            addr: listener.local_addr().expect("local addr"),
            state: Arc::new(Mutex::new(State {
                shop_id: shop_id.to_owned(),
                password: password.to_owned(),
                mode: Mode::Success,
                calls: Vec::new(),
                transactions: HashMap::new(),
                orders: HashMap::new(),
                order_list: Vec::new(),
            })),
        };
        tokio::spawn(fake.clone().serve(listener));
        fake
    }

    /// The brand's REST base, as configured in `api_url`.
    pub fn api_url(&self) -> String {
        format!("http://{}/api-payment/", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.lock().mode = mode;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// Makes the gateway know transaction `uuid` with this `detailedStatus`.
    pub fn set_transaction(&self, uuid: &str, status: &str) {
        self.lock()
            .transactions
            .insert(uuid.to_owned(), status.to_owned());
    }

    /// Makes the gateway know transaction `uuid` of order `order_id`:
    /// `Transaction/Get` then answers `orderDetails.orderId`.
    pub fn set_order_transaction(&self, uuid: &str, order_id: &str, status: &str) {
        let mut s = self.lock();
        s.transactions.insert(uuid.to_owned(), status.to_owned());
        if s.orders
            .insert(uuid.to_owned(), order_id.to_owned())
            .is_none()
        {
            s.order_list.push((order_id.to_owned(), uuid.to_owned()));
        }
    }

    /// The transaction's `detailedStatus` now, if known.
    pub fn transaction(&self, uuid: &str) -> Option<String> {
        self.lock().transactions.get(uuid).cloned()
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

    async fn handle(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let Some(service) = req
            .uri()
            .path()
            .strip_prefix("/api-payment/V4/")
            .map(str::to_owned)
        else {
            return reply(StatusCode::NOT_FOUND, "no such web service".into());
        };
        let header = |name: &str| {
            req.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (authorization, content_type) = (header("authorization"), header("content-type"));
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let (mode, authorised) = {
            let mut s = self.lock();
            let authorised = basic_matches(&authorization, &s.shop_id, &s.password);
            s.calls.push(Call {
                service: service.clone(),
                authorised,
                content_type,
                body: body.clone(),
            });
            (s.mode.clone(), authorised)
        };
        if !authorised {
            return reply(StatusCode::UNAUTHORIZED, "Unauthorized".into());
        }
        if !matches!(
            service.as_str(),
            "Transaction/Validate" | "Transaction/Get" | "Transaction/CancelOrRefund" | "Order/Get"
        ) {
            return reply(StatusCode::NOT_FOUND, "no such web service".into());
        }
        let envelope = |status: &str, answer: Value| {
            json!({
                "webService": service, "version": "V4", "applicationVersion": "6.0.0",
                "status": status, "answer": answer, "ticket": null,
                "serverDate": "2026-11-24T10:00:00+00:00", "applicationProvider": "PAYZEN",
                "metadata": null, "mode": "TEST", "serverUrl": "https://api.payzen.eu",
                "_type": "V4/WebService/Response"
            })
            .to_string()
        };
        let order_id = body["uuid"]
            .as_str()
            .and_then(|u| self.lock().orders.get(u).cloned());
        let transaction = |detailed: &str| {
            let mut t = json!({
                "uuid": body["uuid"], "detailedStatus": detailed,
                "operationType": "DEBIT", "_type": "V4/PaymentTransaction"
            });
            if let Some(order_id) = &order_id {
                t["orderDetails"] = json!({ "orderId": order_id, "_type": "V4/OrderDetails" });
            }
            t
        };
        let error = |code: &str, message: String| {
            envelope(
                "ERROR",
                json!({
                    "errorCode": code, "errorMessage": message,
                    "detailedErrorCode": null, "detailedErrorMessage": null,
                    "_type": "V4/WebService/WebServiceError"
                }),
            )
        };
        let mode = match mode {
            Mode::Slow(delay) => {
                tokio::time::sleep(delay).await;
                Mode::Success
            }
            other => other,
        };
        if service == "Order/Get" && matches!(mode, Mode::Success) {
            // The order's transactions, oldest first (`answer.transactions`).
            let order_id = body["orderId"].as_str().unwrap_or("").to_owned();
            let s = self.lock();
            let transactions: Vec<Value> = s
                .order_list
                .iter()
                .filter(|(o, _)| *o == order_id)
                .map(|(o, uuid)| {
                    json!({
                        "uuid": uuid, "detailedStatus": s.transactions.get(uuid),
                        "operationType": "DEBIT", "amount": 2990, "currency": "EUR",
                        "orderDetails": { "orderId": o, "_type": "V4/OrderDetails" },
                        "_type": "V4/PaymentTransaction"
                    })
                })
                .collect();
            drop(s);
            if transactions.is_empty() {
                return reply(
                    StatusCode::OK,
                    error("PSP_010", format!("order {order_id:?} not found")),
                );
            }
            return reply(
                StatusCode::OK,
                envelope(
                    "SUCCESS",
                    json!({ "orderId": order_id, "transactions": transactions, "_type": "V4/OrderTransactions" }),
                ),
            );
        }
        match mode {
            Mode::Down => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                "<html><body>Service Unavailable</body></html>".into(),
            ),
            Mode::Hang => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                reply(StatusCode::OK, String::new())
            }
            Mode::NotSubscribed => reply(
                StatusCode::OK,
                envelope(
                    "ERROR",
                    json!({
                        "errorCode": "PSP_100",
                        "errorMessage": "web services are not subscribed for this shop",
                        "detailedErrorCode": null,
                        "detailedErrorMessage": null,
                        "_type": "V4/WebService/WebServiceError"
                    }),
                ),
            ),
            Mode::Status(s) => reply(StatusCode::OK, envelope("SUCCESS", transaction(&s))),
            Mode::Slow(_) => unreachable!("handled above"),
            Mode::Success => {
                let uuid = body["uuid"].as_str().unwrap_or("").to_owned();
                let mut state = self.lock();
                let Some(current) = state.transactions.get(&uuid).cloned() else {
                    // The error code is the fake's: what matters is that
                    // the gateway refuses.
                    return reply(
                        StatusCode::OK,
                        error("PSP_010", format!("transaction {uuid:?} not found")),
                    );
                };
                let detailed = match service.as_str() {
                    "Transaction/Get" => current,
                    "Transaction/Validate" if TO_VALIDATE.contains(&current.as_str()) => {
                        current.trim_end_matches("_TO_VALIDATE").to_owned()
                    }
                    "Transaction/Validate" => {
                        return reply(
                            StatusCode::OK,
                            error(
                                "FAKE_NOT_TO_VALIDATE",
                                format!(
                                    "transaction {uuid} is {current}: only a transaction to validate can be validated"
                                ),
                            ),
                        )
                    }
                    _ if body["resolutionMode"] == "CANCELLATION_ONLY" => "CANCELLED".to_owned(),
                    _ => "REFUNDED".to_owned(),
                };
                state.transactions.insert(uuid, detailed.clone());
                reply(StatusCode::OK, envelope("SUCCESS", transaction(&detailed)))
            }
        }
    }
}

/// `Authorization: Basic base64(shop_id:password)`, decoded on our own.
fn basic_matches(header: &str, shop_id: &str, password: &str) -> bool {
    let Some(b64) = header.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = STANDARD.decode(b64.trim()) else {
        return false;
    };
    decoded == format!("{shop_id}:{password}").as_bytes()
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json;charset=utf-8")
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}
