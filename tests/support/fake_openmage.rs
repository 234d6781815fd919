//! A fake OpenMage `/api/xmlrpc/`: the real wire format (shops.md A.4,
//! faults with HTTP 200), the order semantics of `Mage_Sales_Model_Order_Api`
//! (A.2) and switches for session expiry, 500s and hangs.
//!
//! The XML-RPC parsing here is written separately from the client's codec,
//! so a bug in one is not mirrored by the other.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use quick_xml::events::Event;
use quick_xml::Reader;
use tokio::net::TcpListener;

pub const USER: &str = "ipnsync";
pub const KEY: &str = "api-key-1234";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub status: String,
    pub comment: String,
    pub notified: bool,
}

/// One order, modelled on `Mage_Sales_Model_Order` for whole orders: the
/// state apart from the status, invoices (captured offline: paid), credit
/// memos, shipment, and the hold that remembers the state before it.
#[derive(Debug, Clone)]
pub struct Order {
    pub state: String,
    pub status: String,
    pub grand_total: String,
    pub currency: String,
    /// Fully invoiced.
    pub invoiced: bool,
    /// The invoice is paid (captured, online or offline).
    pub paid: bool,
    pub refunded: bool,
    pub shipped: bool,
    /// The payment method is an online gateway that can capture: the
    /// API's invoice (no capture case) is registered but not paid.
    pub gateway: bool,
    /// A payment module set `getActionFlag(cancel | invoice | hold)` to
    /// false: the order refuses those though its state allows them.
    pub locked: bool,
    pub invoices: usize,
    pub creditmemos: usize,
    pub hold_before: Option<(String, String)>,
    /// Oldest first; `sales_order.info` lists it newest first.
    pub history: Vec<HistoryRow>,
}

impl Default for Order {
    fn default() -> Self {
        Order {
            state: "new".into(),
            status: "pending".into(),
            grand_total: "101.0000".into(),
            currency: "USD".into(),
            invoiced: false,
            paid: false,
            refunded: false,
            shipped: false,
            gateway: false,
            locked: false,
            invoices: 0,
            creditmemos: 0,
            hold_before: None,
            history: Vec::new(),
        }
    }
}

impl Order {
    /// `_setState($state, true|$status, '')`: the state change writes its
    /// own history row with an empty comment.
    fn set_state(&mut self, state: &str, status: &str) {
        self.state = state.into();
        self.status = status.into();
        self.history.push(HistoryRow {
            status: status.into(),
            comment: String::new(),
            notified: false,
        });
    }

    fn held_or_review(&self) -> bool {
        self.state == "holded" || self.state == "payment_review"
    }

    fn finished(&self) -> bool {
        ["canceled", "complete", "closed"].contains(&self.state.as_str())
    }

    /// `canCancel()`: not in review, not held, not fully invoiced, not
    /// canceled / complete / closed.
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

    /// `canCreditmemo()`: something paid and not refunded, not held, not
    /// in review, not canceled or closed.
    pub fn can_creditmemo(&self) -> bool {
        !self.held_or_review()
            && !["canceled", "closed"].contains(&self.state.as_str())
            && self.paid
            && !self.refunded
    }
}

/// Slow answers for one method: processed at once, answered after a delay
/// (longer than the client's timeout, the client sees a timeout).
#[derive(Default, Clone)]
struct Slow {
    method: String,
    delay: Duration,
}

#[derive(Default)]
struct State {
    orders: HashMap<String, Order>,
    sessions: Vec<String>,
    logins: usize,
    /// `login` or the `call`ed method name, in order.
    calls: Vec<String>,
    fail_500: bool,
    hang: bool,
    slow: Option<Slow>,
    /// addComment calls that save the row, then fail (as when the e-mail
    /// after the save throws).
    comment_saves_then_fails: usize,
}

#[derive(Clone)]
pub struct FakeOpenMage {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
}

impl FakeOpenMage {
    pub async fn start() -> FakeOpenMage {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let fake = FakeOpenMage {
            addr: listener.local_addr().expect("local addr"),
            state: Arc::default(),
        };
        tokio::spawn(fake.clone().serve(listener));
        fake
    }

    /// The shop's base URL (the client appends `api/xmlrpc/`).
    pub fn base_url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    pub fn add_order(&self, increment_id: &str, state: &str, status: &str) {
        self.lock().orders.insert(
            increment_id.to_owned(),
            Order {
                state: state.to_owned(),
                status: status.to_owned(),
                ..Order::default()
            },
        );
    }

    /// Edits an order in place (totals, flags, a merchant's action).
    pub fn edit(&self, increment_id: &str, f: impl FnOnce(&mut Order)) {
        f(self.lock().orders.get_mut(increment_id).expect("order"));
    }

    /// The admin created the invoice (captured): fully invoiced and paid;
    /// a new order becomes processing.
    pub fn set_invoiced(&self, increment_id: &str) {
        self.edit(increment_id, |o| {
            o.invoiced = true;
            o.paid = true;
            o.invoices += 1;
            if o.state == "new" {
                o.set_state("processing", "processing");
            }
        });
    }

    /// The admin's Hold button.
    pub fn merchant_hold(&self, increment_id: &str) {
        self.edit(increment_id, |o| {
            assert!(o.can_hold(), "the admin has no Hold button here");
            o.hold_before = Some((o.state.clone(), o.status.clone()));
            o.set_state("holded", "holded");
        });
    }

    /// The admin's Unhold button.
    pub fn merchant_unhold(&self, increment_id: &str) {
        self.edit(increment_id, |o| {
            let _ = unhold(o);
        });
    }

    /// The history rows ipnsync's updates wrote (they carry its marker),
    /// oldest first.
    pub fn updates(&self, increment_id: &str) -> Vec<HistoryRow> {
        self.order(increment_id)
            .history
            .into_iter()
            .filter(|h| h.comment.contains("[ipnsync update #"))
            .collect()
    }

    pub fn order(&self, increment_id: &str) -> Order {
        self.lock().orders[increment_id].clone()
    }

    pub fn logins(&self) -> usize {
        self.lock().logins
    }

    pub fn calls(&self) -> Vec<String> {
        self.lock().calls.clone()
    }

    /// Every session expires, as after an hour idle.
    pub fn expire_sessions(&self) {
        self.lock().sessions.clear();
    }

    pub fn set_fail_500(&self, on: bool) {
        self.lock().fail_500 = on;
    }

    pub fn set_hang(&self, on: bool) {
        self.lock().hang = on;
    }

    /// Calls of `method` are processed, then answered after `delay`
    /// (`None`: at once again).
    pub fn set_slow(&self, method: &str, delay: Option<Duration>) {
        self.lock().slow = delay.map(|delay| Slow {
            method: method.to_owned(),
            delay,
        });
    }

    /// The next `n` addComment calls save their row, then fail with
    /// fault 1.
    pub fn set_comment_saves_then_fails(&self, n: usize) {
        self.lock().comment_saves_then_fails = n;
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
                "text/html",
                "<h1>There has been an error processing your request</h1>",
            );
        }
        if req.uri().path() != "/api/xmlrpc/" || req.method() != hyper::Method::POST {
            return reply(StatusCode::NOT_FOUND, "text/html", "<h1>404 Not Found</h1>");
        }
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let (xml, delay) = match std::str::from_utf8(&body).ok().and_then(parse_call) {
            Some((method, params)) => self.dispatch(&method, &params),
            None => (fault(631, "Failed to parse request"), None),
        };
        if let Some(delay) = delay {
            tokio::time::sleep(delay).await;
        }
        reply(StatusCode::OK, "text/xml; charset=UTF-8", &xml)
    }

    fn dispatch(&self, method: &str, params: &[Val]) -> (String, Option<Duration>) {
        match method {
            "login" => (self.login(params), None),
            "call" => self.call(params),
            "endSession" => (success("<boolean>1</boolean>"), None),
            other => (
                fault(620, &format!("Method \"{other}\" does not exist")),
                None,
            ),
        }
    }

    fn login(&self, params: &[Val]) -> String {
        let mut s = self.lock();
        s.calls.push("login".into());
        let [Val::Str(user), Val::Str(key)] = params else {
            return fault(623, "Calling parameters do not match signature");
        };
        if user != USER || key != KEY {
            return fault(2, "Access denied.");
        }
        s.logins += 1;
        let session = format!("{:064x}", 0xabc0 + s.logins);
        s.sessions.push(session.clone());
        success(&format!("<string>{session}</string>"))
    }

    fn call(&self, params: &[Val]) -> (String, Option<Duration>) {
        let mut s = self.lock();
        // Zend checks `(string, string, array)` strictly.
        let [Val::Str(session), Val::Str(method), Val::Array(args)] = params else {
            return (
                fault(623, "Calling parameters do not match signature"),
                None,
            );
        };
        s.calls.push(method.clone());
        if !s.sessions.contains(session) {
            return (fault(5, "Session expired. Try to relogin."), None);
        }
        let delay = s
            .slow
            .as_ref()
            .filter(|slow| &slow.method == method)
            .map(|slow| slow.delay);
        let Some(Val::Str(increment_id)) = args.first() else {
            return (
                fault(
                    6,
                    "Required parameter is missing, for more details see \"exception.log\".",
                ),
                delay,
            );
        };
        let fail_after_save = method == "sales_order.addComment" && s.comment_saves_then_fails > 0;
        if fail_after_save {
            s.comment_saves_then_fails -= 1;
        }
        let Some(order) = s.orders.get_mut(increment_id) else {
            // The invoice resource's code for an unknown order is 103.
            let code = if method.starts_with("sales_order.") {
                100
            } else {
                103
            };
            return (fault(code, "Requested order not exists."), delay);
        };
        let result = match method.as_str() {
            "sales_order.info" => return (success(&info(order)), delay),
            "sales_order.addComment" => add_comment(order, &args[1..]),
            "sales_order.hold" => hold(order),
            "sales_order.unhold" => unhold(order),
            "sales_order.cancel" => cancel(order),
            "sales_order_invoice.create" => {
                return match invoice(order) {
                    Ok(id) => (success(&format!("<string>{id}</string>")), delay),
                    Err((code, text)) => (fault(code, &text), delay),
                }
            }
            "sales_order_creditmemo.create" => {
                return match creditmemo(order) {
                    Ok(id) => (success(&format!("<string>{id}</string>")), delay),
                    Err((code, text)) => (fault(code, &text), delay),
                }
            }
            _ => Err((3, "Invalid api path.".into())),
        };
        match result {
            Ok(()) if fail_after_save => (
                fault(1, "SMTP Error: Could not connect to SMTP host."),
                delay,
            ),
            Ok(()) => (success("<boolean>1</boolean>"), delay),
            Err((code, text)) => (fault(code, &text), delay),
        }
    }
}

type ApiResult = Result<(), (i64, String)>;

/// `addStatusHistoryComment`: sets the status with no validation, never
/// touches the state.
fn add_comment(order: &mut Order, args: &[Val]) -> ApiResult {
    let status = match args.first() {
        Some(Val::Str(s)) => s.clone(),
        _ => String::new(),
    };
    let comment = match args.get(1) {
        Some(Val::Str(s)) => s.clone(),
        _ => String::new(),
    };
    // PHP truthiness: the string "false" is true.
    let notify = match args.get(2) {
        Some(Val::Bool(b)) => *b,
        Some(Val::Int(i)) => *i != 0,
        Some(Val::Str(s)) => !s.is_empty() && s != "0",
        _ => false,
    };
    order.status = status.clone();
    order.history.push(HistoryRow {
        status,
        comment: comment.clone(),
        notified: notify && !comment.is_empty(),
    });
    Ok(())
}

fn hold(order: &mut Order) -> ApiResult {
    if !order.can_hold() {
        return Err((103, "Hold action is not available.".into()));
    }
    order.hold_before = Some((order.state.clone(), order.status.clone()));
    order.set_state("holded", "holded");
    Ok(())
}

/// Restores `hold_before_state` / `hold_before_status`.
fn unhold(order: &mut Order) -> ApiResult {
    if order.state != "holded" {
        return Err((103, "Unhold action is not available.".into()));
    }
    let (state, status) = order
        .hold_before
        .take()
        .unwrap_or_else(|| ("new".into(), "pending".into()));
    order.set_state(&state, &status);
    Ok(())
}

/// `$order->cancel()` silently does nothing when `!canCancel()`; the API
/// then notices the state did not change.
fn cancel(order: &mut Order) -> ApiResult {
    const NOT_CHANGED: &str = "Order status not changed. Details in error message.";
    if order.state == "canceled" || !order.can_cancel() {
        return Err((103, NOT_CHANGED.into()));
    }
    order.set_state("canceled", "canceled");
    Ok(())
}

/// `sales_order_invoice.create`: refused with `data_invalid` when
/// `!canInvoice()`; registered and paid offline; `_checkState` then moves
/// a new order to processing (complete if already shipped).
fn invoice(order: &mut Order) -> Result<String, (i64, String)> {
    if !order.can_invoice() {
        return Err((102, "Cannot do invoice for order.".into()));
    }
    order.invoiced = true;
    // `Invoice::register()` without a capture case pays it only when the
    // method is not a gateway that can capture.
    order.paid = !order.gateway;
    order.invoices += 1;
    if order.shipped {
        order.set_state("complete", "complete");
    } else if order.state == "new" {
        order.set_state("processing", "processing");
    }
    Ok(format!("10000000{}", order.invoices))
}

/// `sales_order_creditmemo.create`: refused when `!canCreditmemo()`;
/// refunds offline; `_checkState` closes the fully refunded order.
fn creditmemo(order: &mut Order) -> Result<String, (i64, String)> {
    if !order.can_creditmemo() {
        return Err((
            106,
            "Credit memo for requested order can not be created.".into(),
        ));
    }
    order.refunded = true;
    order.creditmemos += 1;
    order.set_state("closed", "closed");
    Ok(format!("10000000{}", order.creditmemos))
}

fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn member(name: &str, value: Option<&str>) -> String {
    let value = match value {
        Some(v) => format!("<string>{}</string>", esc(v)),
        None => "<nil/>".to_owned(),
    };
    format!("<member><name>{name}</name><value>{value}</value></member>")
}

/// `sales_order.info`: every attribute a string, NULL as `<nil/>`, the
/// status history newest first.
fn info(order: &Order) -> String {
    let total = order.grand_total.as_str();
    let invoiced = order.invoiced.then_some(total);
    let paid = order.paid.then_some(total);
    let refunded = order.refunded.then_some(total);
    let hold = order.hold_before.clone();
    let mut history = String::new();
    // Newest first; no entity_id (the API resource ignores it globally).
    for (i, row) in order.history.iter().enumerate().rev() {
        let created = format!("2026-12-01 00:{:02}:00", i % 60);
        history.push_str(&format!(
            "<value><struct>{}{}{}{}{}</struct></value>",
            member("created_at", Some(&created)),
            member("status", Some(&row.status)),
            member(
                "comment",
                (!row.comment.is_empty()).then_some(row.comment.as_str())
            ),
            member(
                "is_customer_notified",
                Some(if row.notified { "1" } else { "0" })
            ),
            member("is_visible_on_front", Some("0")),
        ));
    }
    format!(
        "<struct>{}{}{}{}{}{}{}{}{}{}<member><name>status_history</name><value><array><data>{history}</data></array></value></member></struct>",
        member("state", Some(&order.state)),
        member("status", Some(&order.status)),
        member("grand_total", Some(total)),
        member("order_currency_code", Some(&order.currency)),
        member("total_invoiced", invoiced),
        member("total_paid", paid),
        member("total_refunded", refunded),
        member("total_qty_ordered", Some("1.0000")),
        member("hold_before_state", hold.as_ref().map(|h| h.0.as_str())),
        member("hold_before_status", hold.as_ref().map(|h| h.1.as_str())),
    )
}

fn reply(status: StatusCode, content_type: &str, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("response")
}

fn success(value: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse><params><param><value>{value}</value></param></params></methodResponse>\n")
}

fn fault(code: i64, text: &str) -> String {
    let text = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;");
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse><fault><value><struct>\
         <member><name>faultCode</name><value><int>{code}</int></value></member>\
         <member><name>faultString</name><value><string>{text}</string></value></member>\
         </struct></value></fault></methodResponse>\n"
    )
}

// ------------------------------------------------------------ request parsing

/// The parameter types the fake distinguishes.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    Str(String),
    Bool(bool),
    Int(i64),
    Array(Vec<Val>),
    Other,
}

/// A flat element tree: (name, text, children).
struct El {
    name: String,
    text: String,
    kids: Vec<El>,
}

/// `(methodName, params)` of a `methodCall`, or `None` if malformed.
fn parse_call(xml: &str) -> Option<(String, Vec<Val>)> {
    let root = tree(xml)?;
    if root.name != "methodCall" {
        return None;
    }
    let method = root
        .kids
        .iter()
        .find(|k| k.name == "methodName")?
        .text
        .trim()
        .to_owned();
    let params = match root.kids.iter().find(|k| k.name == "params") {
        Some(p) => p
            .kids
            .iter()
            .map(|param| param.kids.first().map(val))
            .collect::<Option<Vec<_>>>()?,
        None => Vec::new(),
    };
    Some((method, params))
}

fn val(value: &El) -> Val {
    let Some(typed) = value.kids.first() else {
        return Val::Str(value.text.clone());
    };
    match typed.name.as_str() {
        "string" => Val::Str(typed.text.clone()),
        "boolean" => Val::Bool(typed.text.trim() == "1"),
        "int" | "i4" => typed
            .text
            .trim()
            .parse()
            .map(Val::Int)
            .unwrap_or(Val::Other),
        "array" => Val::Array(
            typed
                .kids
                .iter()
                .filter(|d| d.name == "data")
                .flat_map(|d| d.kids.iter().map(val))
                .collect(),
        ),
        _ => Val::Other,
    }
}

fn tree(xml: &str) -> Option<El> {
    let mut reader = Reader::from_str(xml);
    let mut open: Vec<El> = Vec::new();
    loop {
        match reader.read_event().ok()? {
            Event::Start(e) => open.push(El {
                name: String::from_utf8(e.name().as_ref().to_vec()).ok()?,
                text: String::new(),
                kids: Vec::new(),
            }),
            Event::Empty(e) => {
                let el = El {
                    name: String::from_utf8(e.name().as_ref().to_vec()).ok()?,
                    text: String::new(),
                    kids: Vec::new(),
                };
                open.last_mut()?.kids.push(el);
            }
            Event::End(_) => {
                let done = open.pop()?;
                match open.last_mut() {
                    Some(parent) => parent.kids.push(done),
                    None => return Some(done),
                }
            }
            Event::Text(t) => {
                if let Some(el) = open.last_mut() {
                    el.text.push_str(&t.unescape().ok()?);
                }
            }
            Event::Eof => return None,
            _ => {}
        }
    }
}
