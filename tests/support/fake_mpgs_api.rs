//! A fake Mastercard Gateway REST API: Retrieve Order
//! (`GET /api/rest/version/<v>/merchant/<id>/order/<order>`, mpgs.md §4),
//! HTTP Basic `merchant.<id>` + API password checked on its own, every call
//! recorded.
//!
//! Tests seed orders with [`FakeMpgsApi::set_order`] from Retrieve
//! Transaction documents (the webhook fixtures): the answer is the order's
//! fields (`id`, `reference`, `status`, `amount`, `currency`, `merchant`,
//! the latest transaction's `risk`, `result`) with every document in
//! `transaction[]`, as the real gateway lays it out. An unknown order is
//! `400` with `{"error": {"cause": "INVALID_REQUEST", "explanation":
//! "Unable to find order"}, "result": "ERROR"}`. [`Mode::Down`] answers 503,
//! [`Mode::Slow`] waits first.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;

#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub authorised: bool,
}

#[derive(Debug, Clone)]
pub enum Mode {
    Normal,
    /// 503 Service Unavailable.
    Down,
    /// Waits, then answers as [`Mode::Normal`].
    Slow(Duration),
}

struct State {
    merchant: String,
    password: String,
    mode: Mode,
    calls: Vec<Call>,
    /// order id → Retrieve Order answer.
    orders: HashMap<String, Value>,
}

#[derive(Clone)]
pub struct FakeMpgsApi {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FakeMpgsApi {
    pub async fn start(merchant: &str, password: &str) -> FakeMpgsApi {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let fake = FakeMpgsApi {
            addr: listener.local_addr().expect("local addr"),
            state: Arc::new(Mutex::new(State {
                merchant: merchant.to_owned(),
                password: password.to_owned(),
                mode: Mode::Normal,
                calls: Vec::new(),
                orders: HashMap::new(),
            })),
        };
        tokio::spawn(fake.clone().serve(listener));
        fake
    }

    /// The `gateway_url` to configure.
    pub fn gateway_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set_mode(&self, mode: Mode) {
        self.lock().mode = mode;
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    /// The gateway's order, built from its transactions (Retrieve
    /// Transaction documents, oldest first).
    pub fn set_order(&self, transactions: &[Value]) {
        let last = transactions.last().expect("one transaction at least");
        let order = &last["order"];
        let mut answer = json!({
            "id": order["id"], "reference": order["reference"], "status": order["status"],
            "amount": order["amount"], "currency": order["currency"],
            "merchant": last["merchant"], "result": "SUCCESS",
            "transaction": transactions,
        });
        if !last["risk"].is_null() {
            answer["risk"] = last["risk"].clone();
        }
        let id = order["id"].as_str().expect("order.id").to_owned();
        self.lock().orders.insert(id, answer);
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
        let path = req.uri().path().to_owned();
        let authorization = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let (mode, authorised, merchant) = {
            let mut s = self.lock();
            let authorised = basic_matches(
                &authorization,
                &format!("merchant.{}", s.merchant),
                &s.password,
            );
            s.calls.push(Call {
                method: req.method().to_string(),
                path: path.clone(),
                authorised,
            });
            (s.mode.clone(), authorised, s.merchant.clone())
        };
        match mode {
            Mode::Down => return reply(StatusCode::SERVICE_UNAVAILABLE, "down".into()),
            Mode::Slow(d) => tokio::time::sleep(d).await,
            Mode::Normal => {}
        }
        if !authorised {
            return reply(
                StatusCode::UNAUTHORIZED,
                json!({"error": {"cause": "INVALID_REQUEST", "explanation": "Invalid credentials."}, "result": "ERROR"}).to_string(),
            );
        }
        let prefix = format!("/merchant/{merchant}/order/");
        let order_id = path
            .strip_prefix("/api/rest/version/")
            .and_then(|rest| rest.split_once('/'))
            .and_then(|(_, rest)| format!("/{rest}").strip_prefix(&prefix).map(str::to_owned));
        let Some(order_id) = order_id.filter(|_| req.method() == Method::GET) else {
            return reply(StatusCode::NOT_FOUND, "no such operation".into());
        };
        match self.lock().orders.get(&order_id) {
            Some(order) => reply(StatusCode::OK, order.to_string()),
            None => reply(
                StatusCode::BAD_REQUEST,
                json!({"error": {"cause": "INVALID_REQUEST", "explanation": "Unable to find order",
                                 "field": "orderId", "validationType": "INVALID"}, "result": "ERROR"})
                .to_string(),
            ),
        }
    }
}

fn basic_matches(header: &str, user: &str, password: &str) -> bool {
    let Some(b64) = header.strip_prefix("Basic ") else {
        return false;
    };
    let Ok(decoded) = STANDARD.decode(b64.trim()) else {
        return false;
    };
    decoded == format!("{user}:{password}").as_bytes()
}

fn reply(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json;charset=UTF-8")
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}
