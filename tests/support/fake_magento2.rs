//! A fake Magento 2 REST API (shops.md C): admin tokens that can be made to
//! expire (401), the order search, hold / unhold (400 with the model's
//! message when not available), cancel (`false` when not cancellable),
//! comments, and 404 for unknown entities. Switches for 500s and hangs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;

pub const ADMIN_USER: &str = "ipnsync";
pub const ADMIN_PASSWORD: &str = "admin-pass-1234";
pub const INTEGRATION_TOKEN: &str = "integration-token-5678";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub status: String,
    pub comment: String,
    pub notified: bool,
    pub visible_on_front: bool,
}

#[derive(Debug, Clone, Default)]
pub struct Order {
    pub increment_id: String,
    pub state: String,
    pub status: String,
    pub invoiced: bool,
    pub hold_before: Option<(String, String)>,
    pub history: Vec<HistoryRow>,
}

#[derive(Default)]
struct State {
    orders: HashMap<u64, Order>,
    tokens: Vec<String>,
    token_requests: usize,
    searches: usize,
    /// "METHOD /path" of every request except the token endpoint.
    requests: Vec<String>,
    fail_500: bool,
    hang: bool,
}

#[derive(Clone)]
pub struct FakeMagento2 {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FakeMagento2 {
    pub async fn start() -> FakeMagento2 {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let fake = FakeMagento2 {
            addr: listener.local_addr().expect("local addr"),
            state: Arc::default(),
        };
        tokio::spawn(fake.clone().serve(listener));
        fake
    }

    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn add_order(&self, entity_id: u64, increment_id: &str, state: &str, status: &str) {
        self.lock().orders.insert(
            entity_id,
            Order {
                increment_id: increment_id.to_owned(),
                state: state.to_owned(),
                status: status.to_owned(),
                ..Order::default()
            },
        );
    }

    pub fn set_invoiced(&self, entity_id: u64) {
        self.lock()
            .orders
            .get_mut(&entity_id)
            .expect("order")
            .invoiced = true;
    }

    pub fn order(&self, entity_id: u64) -> Order {
        self.lock().orders[&entity_id].clone()
    }

    pub fn token_requests(&self) -> usize {
        self.lock().token_requests
    }

    pub fn searches(&self) -> usize {
        self.lock().searches
    }

    pub fn requests(&self) -> Vec<String> {
        self.lock().requests.clone()
    }

    /// Every admin token issued so far stops working.
    pub fn expire_tokens(&self) {
        self.lock().tokens.clear();
    }

    pub fn set_fail_500(&self, on: bool) {
        self.lock().fail_500 = on;
    }

    pub fn set_hang(&self, on: bool) {
        self.lock().hang = on;
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
        let (fail, hang) = {
            let s = self.lock();
            (s.fail_500, s.hang)
        };
        if hang {
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        if fail {
            return reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"message": "Internal Error. Details are available in Magento log file."}),
            );
        }
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        let bearer = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);

        if method == Method::POST && path == "/rest/V1/integration/admin/token" {
            return self.admin_token(&body);
        }
        let mut s = self.lock();
        s.requests.push(format!("{method} {path}"));
        let authorised = bearer.is_some_and(|t| t == INTEGRATION_TOKEN || s.tokens.contains(&t));
        if !authorised {
            return reply(
                StatusCode::UNAUTHORIZED,
                json!({"message": "The consumer isn't authorized to access %resources.", "parameters": {"resources": "Magento_Sales::sales"}}),
            );
        }
        let Some(rest) = path.strip_prefix("/rest/V1/orders") else {
            return reply(
                StatusCode::NOT_FOUND,
                json!({"message": "Request does not match any route."}),
            );
        };
        if method == Method::GET && rest.is_empty() {
            s.searches += 1;
            return search(&s.orders, &query);
        }
        let mut parts = rest.trim_start_matches('/').splitn(2, '/');
        let id = parts.next().and_then(|id| id.parse::<u64>().ok());
        let action = parts.next().unwrap_or("");
        let Some(order) = id.and_then(|id| s.orders.get_mut(&id)) else {
            return reply(
                StatusCode::NOT_FOUND,
                json!({"message": "The entity that was requested doesn't exist. Verify the entity and try again."}),
            );
        };
        if method != Method::POST {
            return reply(
                StatusCode::NOT_FOUND,
                json!({"message": "Request does not match any route."}),
            );
        }
        match action {
            "hold" => hold(order),
            "unhold" => unhold(order),
            "cancel" => cancel(order),
            "comments" => add_comment(order, &body),
            _ => reply(
                StatusCode::NOT_FOUND,
                json!({"message": "Request does not match any route."}),
            ),
        }
    }

    fn admin_token(&self, body: &Value) -> Response<Full<Bytes>> {
        let mut s = self.lock();
        s.token_requests += 1;
        if body["username"] != ADMIN_USER || body["password"] != ADMIN_PASSWORD {
            return reply(
                StatusCode::UNAUTHORIZED,
                json!({"message": "The account sign-in was incorrect or your account is disabled temporarily. Please wait and try again later."}),
            );
        }
        let token = format!("admintoken{:04}", s.token_requests);
        s.tokens.push(token.clone());
        reply(StatusCode::OK, json!(token))
    }
}

/// `GET /rest/V1/orders?searchCriteria…`, supporting the single
/// `increment_id eq` filter the client sends.
fn search(orders: &HashMap<u64, Order>, query: &str) -> Response<Full<Bytes>> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).unwrap_or_default();
    let get = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let prefix = "searchCriteria[filter_groups][0][filters][0]";
    let field = get(&format!("{prefix}[field]"));
    let value = get(&format!("{prefix}[value]"));
    let condition = get(&format!("{prefix}[condition_type]")).unwrap_or("eq");
    let items: Vec<Value> = orders
        .iter()
        .filter(|(_, o)| field == Some("increment_id") && condition == "eq" && value == Some(o.increment_id.as_str()))
        .map(|(id, o)| json!({"entity_id": id, "increment_id": o.increment_id, "state": o.state, "status": o.status}))
        .collect();
    let total = items.len();
    reply(
        StatusCode::OK,
        json!({"items": items, "search_criteria": {}, "total_count": total}),
    )
}

fn hold(order: &mut Order) -> Response<Full<Bytes>> {
    if ["canceled", "payment_review", "complete", "closed", "holded"]
        .contains(&order.state.as_str())
    {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"message": "A hold action is not available."}),
        );
    }
    order.hold_before = Some((order.state.clone(), order.status.clone()));
    order.state = "holded".into();
    order.status = "holded".into();
    reply(StatusCode::OK, json!(true))
}

fn unhold(order: &mut Order) -> Response<Full<Bytes>> {
    if order.state != "holded" {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"message": "You cannot remove the hold."}),
        );
    }
    let (state, status) = order
        .hold_before
        .take()
        .unwrap_or_else(|| ("new".into(), "pending".into()));
    order.state = state;
    order.status = status;
    reply(StatusCode::OK, json!(true))
}

fn cancel(order: &mut Order) -> Response<Full<Bytes>> {
    let can_cancel = !order.invoiced
        && !["canceled", "holded", "payment_review", "complete", "closed"]
            .contains(&order.state.as_str());
    if !can_cancel {
        return reply(StatusCode::OK, json!(false));
    }
    order.state = "canceled".into();
    order.status = "canceled".into();
    reply(StatusCode::OK, json!(true))
}

fn add_comment(order: &mut Order, body: &Value) -> Response<Full<Bytes>> {
    let history = &body["statusHistory"];
    let Some(comment) = history["comment"].as_str() else {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"message": "\"comment\" is required. Enter and try again."}),
        );
    };
    let status = history["status"].as_str().unwrap_or_default().to_owned();
    if !status.is_empty() {
        order.status = status.clone();
    }
    order.history.push(HistoryRow {
        status,
        comment: comment.to_owned(),
        notified: history["is_customer_notified"].as_i64() == Some(1),
        visible_on_front: history["is_visible_on_front"].as_i64() == Some(1),
    });
    reply(StatusCode::OK, json!(true))
}

fn reply(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json; charset=utf-8")
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}
