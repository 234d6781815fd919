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

#[derive(Debug, Clone, Default)]
pub struct Order {
    pub state: String,
    pub status: String,
    /// Fully invoiced: `canCancel()` is false.
    pub invoiced: bool,
    pub hold_before: Option<(String, String)>,
    pub history: Vec<HistoryRow>,
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

    pub fn set_invoiced(&self, increment_id: &str) {
        self.lock()
            .orders
            .get_mut(increment_id)
            .expect("order")
            .invoiced = true;
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
        let xml = match std::str::from_utf8(&body).ok().and_then(parse_call) {
            Some((method, params)) => self.dispatch(&method, &params),
            None => fault(631, "Failed to parse request"),
        };
        reply(StatusCode::OK, "text/xml; charset=UTF-8", &xml)
    }

    fn dispatch(&self, method: &str, params: &[Val]) -> String {
        match method {
            "login" => self.login(params),
            "call" => self.call(params),
            "endSession" => success("<boolean>1</boolean>"),
            other => fault(620, &format!("Method \"{other}\" does not exist")),
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

    fn call(&self, params: &[Val]) -> String {
        let mut s = self.lock();
        // Zend checks `(string, string, array)` strictly.
        let [Val::Str(session), Val::Str(method), Val::Array(args)] = params else {
            return fault(623, "Calling parameters do not match signature");
        };
        s.calls.push(method.clone());
        if !s.sessions.contains(session) {
            return fault(5, "Session expired. Try to relogin.");
        }
        let Some(Val::Str(increment_id)) = args.first() else {
            return fault(
                6,
                "Required parameter is missing, for more details see \"exception.log\".",
            );
        };
        let Some(order) = s.orders.get_mut(increment_id) else {
            return fault(100, "Requested order not exists.");
        };
        let result = match method.as_str() {
            "sales_order.addComment" => add_comment(order, &args[1..]),
            "sales_order.hold" => hold(order),
            "sales_order.unhold" => unhold(order),
            "sales_order.cancel" => cancel(order),
            _ => Err((3, "Invalid api path.".into())),
        };
        match result {
            Ok(()) => success("<boolean>1</boolean>"),
            Err((code, text)) => fault(code, &text),
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
    if ["canceled", "payment_review", "complete", "closed", "holded"]
        .contains(&order.state.as_str())
    {
        return Err((103, "Hold action is not available.".into()));
    }
    order.hold_before = Some((order.state.clone(), order.status.clone()));
    order.state = "holded".into();
    order.status = "holded".into();
    Ok(())
}

fn unhold(order: &mut Order) -> ApiResult {
    if order.state != "holded" {
        return Err((103, "Unhold action is not available.".into()));
    }
    let (state, status) = order
        .hold_before
        .take()
        .unwrap_or_else(|| ("new".into(), "pending".into()));
    order.state = state;
    order.status = status;
    Ok(())
}

/// `$order->cancel()` silently does nothing when `!canCancel()`; the API
/// then notices the state did not change.
fn cancel(order: &mut Order) -> ApiResult {
    const NOT_CHANGED: &str = "Order status not changed. Details in error message.";
    if order.state == "canceled" {
        return Err((103, NOT_CHANGED.into()));
    }
    let can_cancel = !order.invoiced
        && !["holded", "payment_review", "complete", "closed"].contains(&order.state.as_str());
    if !can_cancel {
        return Err((103, NOT_CHANGED.into()));
    }
    order.state = "canceled".into();
    order.status = "canceled".into();
    order.history.push(HistoryRow {
        status: "canceled".into(),
        comment: String::new(),
        notified: false,
    });
    Ok(())
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
