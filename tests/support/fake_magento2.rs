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

/// One order, modelled on Magento 2's `Order` for whole orders: state
/// apart from status, invoices (offline capture: paid), credit memos,
/// shipment, and the hold that remembers the state before it. Unlike
/// OpenMage, state changes write no history rows.
#[derive(Debug, Clone)]
pub struct Order {
    pub increment_id: String,
    pub state: String,
    pub status: String,
    pub grand_total: f64,
    pub currency: String,
    pub invoiced: bool,
    pub refunded: bool,
    pub shipped: bool,
    /// A payment module set `getActionFlag(cancel | invoice | hold)` to
    /// false: the order refuses those though its state allows them.
    pub locked: bool,
    pub invoices: usize,
    pub creditmemos: usize,
    pub hold_before: Option<(String, String)>,
    pub history: Vec<HistoryRow>,
}

impl Default for Order {
    fn default() -> Self {
        Order {
            increment_id: String::new(),
            state: "new".into(),
            status: "pending".into(),
            grand_total: 101.0,
            currency: "USD".into(),
            invoiced: false,
            refunded: false,
            shipped: false,
            locked: false,
            invoices: 0,
            creditmemos: 0,
            hold_before: None,
            history: Vec::new(),
        }
    }
}

impl Order {
    fn set_state(&mut self, state: &str, status: &str) {
        self.state = state.into();
        self.status = status.into();
    }

    fn held_or_review(&self) -> bool {
        self.state == "holded" || self.state == "payment_review"
    }

    fn finished(&self) -> bool {
        ["canceled", "complete", "closed"].contains(&self.state.as_str())
    }

    /// `canCancel()`.
    pub fn can_cancel(&self) -> bool {
        !self.locked && !self.held_or_review() && !self.invoiced && !self.finished()
    }

    /// `canHold()`.
    pub fn can_hold(&self) -> bool {
        !self.locked && !self.held_or_review() && !self.finished()
    }

    /// `canInvoice()`.
    pub fn can_invoice(&self) -> bool {
        !self.locked && !self.held_or_review() && !self.finished() && !self.invoiced
    }

    /// `canCreditmemo()`.
    pub fn can_creditmemo(&self) -> bool {
        !self.held_or_review()
            && !["canceled", "closed"].contains(&self.state.as_str())
            && self.invoiced
            && !self.refunded
    }
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
    /// Requests whose path ends with this are processed, then answered
    /// after the delay.
    slow: Option<(String, Duration)>,
    /// Comment requests that save the row, then fail with a 500 (as when
    /// the e-mail after the save throws).
    comment_saves_then_fails: usize,
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

    /// Edits an order in place (totals, flags, a merchant's action).
    pub fn edit(&self, entity_id: u64, f: impl FnOnce(&mut Order)) {
        f(self.lock().orders.get_mut(&entity_id).expect("order"));
    }

    /// The admin invoiced it (captured): a new order becomes processing.
    pub fn set_invoiced(&self, entity_id: u64) {
        self.edit(entity_id, |o| {
            o.invoiced = true;
            o.invoices += 1;
            if o.state == "new" {
                o.set_state("processing", "processing");
            }
        });
    }

    /// The admin's Hold button.
    pub fn merchant_hold(&self, entity_id: u64) {
        self.edit(entity_id, |o| {
            assert!(o.can_hold(), "the admin has no Hold button here");
            o.hold_before = Some((o.state.clone(), o.status.clone()));
            o.set_state("holded", "holded");
        });
    }

    /// The admin's Unhold button.
    pub fn merchant_unhold(&self, entity_id: u64) {
        self.edit(entity_id, |o| {
            let _ = unhold(o);
        });
    }

    /// The next `n` comment requests save their row, then answer 500.
    pub fn set_comment_saves_then_fails(&self, n: usize) {
        self.lock().comment_saves_then_fails = n;
    }

    /// The history rows ipnsync's updates wrote (they carry its marker),
    /// oldest first.
    pub fn updates(&self, entity_id: u64) -> Vec<HistoryRow> {
        self.order(entity_id)
            .history
            .into_iter()
            .filter(|h| h.comment.contains("[ipnsync update #"))
            .collect()
    }

    /// Requests whose path ends with `suffix` are processed, then answered
    /// after `delay` (`None`: at once again).
    pub fn set_slow(&self, suffix: &str, delay: Option<Duration>) {
        self.lock().slow = delay.map(|d| (suffix.to_owned(), d));
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
        let (answer, delay) = {
            let mut s = self.lock();
            s.requests.push(format!("{method} {path}"));
            let authorised =
                bearer.is_some_and(|t| t == INTEGRATION_TOKEN || s.tokens.contains(&t));
            if !authorised {
                return reply(
                    StatusCode::UNAUTHORIZED,
                    json!({"message": "The consumer isn't authorized to access %resources.", "parameters": {"resources": "Magento_Sales::sales"}}),
                );
            }
            let delay = s
                .slow
                .as_ref()
                .filter(|(suffix, _)| path.ends_with(suffix.as_str()))
                .map(|(_, d)| *d);
            (route(&mut s, &method, &path, &query, &body), delay)
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        answer
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

/// The order routes: `orders` (search), `orders/{id}` (read),
/// `orders/{id}/hold|unhold|cancel|comments`, `order/{id}/invoice|refund`.
fn route(
    s: &mut State,
    method: &Method,
    path: &str,
    query: &str,
    body: &Value,
) -> Response<Full<Bytes>> {
    let no_route = || {
        reply(
            StatusCode::NOT_FOUND,
            json!({"message": "Request does not match any route."}),
        )
    };
    let (rest, documents) = if let Some(rest) = path.strip_prefix("/rest/V1/orders") {
        (rest, false)
    } else if let Some(rest) = path.strip_prefix("/rest/V1/order/") {
        (rest, true)
    } else {
        return no_route();
    };
    if *method == Method::GET && rest.is_empty() && !documents {
        s.searches += 1;
        return search(&s.orders, query);
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
    let entity_id = id.unwrap_or_default();
    match (method.clone(), documents, action) {
        (Method::GET, false, "") => reply(StatusCode::OK, order_json(entity_id, order)),
        (Method::POST, false, "hold") => hold(order),
        (Method::POST, false, "unhold") => unhold(order),
        (Method::POST, false, "cancel") => cancel(order),
        (Method::POST, false, "comments") => {
            let answer = add_comment(order, body);
            if s.comment_saves_then_fails > 0 && answer.status() == StatusCode::OK {
                s.comment_saves_then_fails -= 1;
                return reply(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"message": "Internal Error. Details are available in Magento log file."}),
                );
            }
            answer
        }
        (Method::POST, true, "invoice") => invoice(order, body),
        (Method::POST, true, "refund") => refund(order),
        _ => no_route(),
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
    if !order.can_hold() {
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
    if !order.can_cancel() {
        return reply(StatusCode::OK, json!(false));
    }
    order.state = "canceled".into();
    order.status = "canceled".into();
    reply(StatusCode::OK, json!(true))
}

/// `POST order/{id}/invoice`: the InvoiceOrder service; refused (400)
/// when `!canInvoice()`; with `capture: false` the invoice is paid offline
/// and the order moves to processing (complete if shipped).
fn invoice(order: &mut Order, body: &Value) -> Response<Full<Bytes>> {
    if !order.can_invoice() {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"message": "Invoice Document Validation Error(s):\nThe order does not allow an invoice to be created."}),
        );
    }
    assert_eq!(
        body["capture"],
        json!(false),
        "ipnsync never captures online"
    );
    order.invoiced = true;
    order.invoices += 1;
    if order.shipped {
        order.set_state("complete", "complete");
    } else {
        order.set_state("processing", "processing");
    }
    reply(StatusCode::OK, json!(order.invoices))
}

/// `POST order/{id}/refund`: the RefundOrder service (offline credit
/// memo); refused (400) when `!canCreditmemo()`; closes the order.
fn refund(order: &mut Order) -> Response<Full<Bytes>> {
    if !order.can_creditmemo() {
        return reply(
            StatusCode::BAD_REQUEST,
            json!({"message": "Creditmemo Document Validation Error(s):\nThe order does not allow a creditmemo to be created."}),
        );
    }
    order.refunded = true;
    order.creditmemos += 1;
    order.set_state("closed", "closed");
    reply(StatusCode::OK, json!(order.creditmemos))
}

/// `GET orders/{id}`: numbers as JSON numbers, NULL fields left out,
/// `status_histories` newest first.
fn order_json(entity_id: u64, order: &Order) -> Value {
    let mut v = json!({
        "entity_id": entity_id,
        "increment_id": order.increment_id,
        "state": order.state,
        "status": order.status,
        "grand_total": order.grand_total,
        "order_currency_code": order.currency,
        "status_histories": order.history.iter().enumerate().rev().map(|(i, h)| json!({
            "entity_id": i + 1,
            "parent_id": entity_id,
            "comment": h.comment,
            "status": h.status,
            "is_customer_notified": u8::from(h.notified),
            "is_visible_on_front": u8::from(h.visible_on_front),
        })).collect::<Vec<_>>(),
    });
    if order.invoiced {
        v["total_invoiced"] = json!(order.grand_total);
        v["total_paid"] = json!(order.grand_total);
    }
    if order.refunded {
        v["total_refunded"] = json!(order.grand_total);
    }
    if let Some((state, status)) = &order.hold_before {
        v["hold_before_state"] = json!(state);
        v["hold_before_status"] = json!(status);
    }
    v
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
