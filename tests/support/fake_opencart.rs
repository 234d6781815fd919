//! A fake OpenCart shop (3.0.5.1, 4.0.2.x or 4.1.0.4) for integration tests.
//!
//! It answers like the real shops recorded in
//! `reference/opencart-real/transcripts.md`: the same status codes,
//! `Content-Type` and body bytes, everything but the 4.1 auth failures
//! with HTTP 200, and the same database effect (a history row whose
//! comment is HTML-escaped and trimmed, `order_status_id` set unchecked,
//! missing fields read as `''`/0). 4.0.2 (not recorded) follows the shop
//! reference B.2: an HTML 404 for a bad or expired token.
//!
//! The 4.1 signature is verified with an implementation written here from
//! the reference text, independent of the client's, so that a client bug
//! shows up as the real shop's 403.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use md5::Digest as _;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Which OpenCart the fake is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    OpenCart3,
    OpenCart402,
    OpenCart41,
}

/// One `oc_order_history` row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    pub status_id: i64,
    pub comment: String,
    pub notify: bool,
}

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    /// The raw query string.
    pub query: String,
    pub host: String,
    pub content_type: String,
    /// The raw body.
    pub body: String,
}

impl Recorded {
    /// A decoded query value, as PHP's `$_GET` would hold it.
    pub fn query_value(&self, name: &str) -> Option<String> {
        last_value(&form_pairs(&self.query), name)
    }
    /// The decoded form fields, in order.
    pub fn fields(&self) -> Vec<(String, String)> {
        form_pairs(&self.body)
    }
}

/// How many requests of each kind arrived.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    pub login: usize,
    pub history: usize,
    /// 3.0 `api/order/info` reads.
    pub info: usize,
    pub total: usize,
}

pub const USERNAME: &str = "ipnsync";
/// The real 4.1.0.4 window: `time` within ±450 s of the server clock.
const CLOCK_WINDOW: i64 = 450;

const JSON: &str = "application/json";
const HTML: &str = "text/html; charset=utf-8";
const LOGIN_OK: &str = "Success: API session successfully started!";
const HISTORY_OK: &str = r#"{"success":"Success: You have modified orders!"}"#;
const ORDER_NOT_FOUND: &str = r#"{"error":"Warning: Order could not be found!"}"#;
const PERMISSION_30: &str = r#"{"error":"Warning: You do not have permission to access the API!"}"#;
const FORBIDDEN_41: &str = r#"{"error":"You do not have permission to access this page."}"#;
const CALL_NOT_FOUND_41: &str = r#"{"error":"API call not found"}"#;
/// OpenCart 4.0's `error/not_found` page (abridged; what matters is the
/// 404 and that it is HTML).
const NOT_FOUND_PAGE: &str = "<!DOCTYPE html>\n<html dir=\"ltr\" lang=\"en\">\n<head><meta charset=\"UTF-8\"/><title>Page Not Found!</title></head>\n<body>\n<div id=\"error-not-found\" class=\"container\">\n  <h1>Page Not Found!</h1>\n  <p>The page you requested cannot be found.</p>\n</div>\n</body>\n</html>\n";
/// A PHP fatal error page, for the simulated outage.
const OUTAGE_PAGE: &str = "<br />\n<b>Fatal error</b>:  Uncaught Exception: Error: Could not make a database link using oc@localhost! in /var/www/system/library/db/mysqli.php:10\n";

/// A running fake shop. Stops accepting connections when dropped.
pub struct FakeOpenCart {
    addr: SocketAddr,
    prefix: String,
    state: Arc<Mutex<State>>,
    server: JoinHandle<()>,
}

impl Drop for FakeOpenCart {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Starts a shop installed at the web root.
pub async fn start(version: Version, key: &str) -> FakeOpenCart {
    start_at(version, key, "/").await
}

/// Starts a shop installed in a subfolder such as `/shop/`.
pub async fn start_at(version: Version, key: &str, prefix: &str) -> FakeOpenCart {
    assert!(
        prefix.starts_with('/') && prefix.ends_with('/'),
        "prefix like /shop/"
    );
    let listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the fake shop");
    let addr = listener.local_addr().expect("local address");
    let state = Arc::new(Mutex::new(State::new(version, key)));
    let server = tokio::spawn(serve(listener, state.clone(), prefix.to_owned()));
    FakeOpenCart {
        addr,
        prefix: prefix.to_owned(),
        state,
        server,
    }
}

impl FakeOpenCart {
    /// The shop's URL, ending in `/`.
    pub fn base_url(&self) -> String {
        format!("http://{}{}", self.addr, self.prefix)
    }

    pub fn add_order(&self, id: u64, status_id: i64) {
        self.add_order_with_total(id, status_id, "0.0000", "USD", "1.00000000");
    }

    /// An order whose `oc_order` row says `total` (in the store's default
    /// currency, 4 decimals), `currency_code` and `currency_value`.
    pub fn add_order_with_total(
        &self,
        id: u64,
        status_id: i64,
        total: &str,
        currency: &str,
        currency_value: &str,
    ) {
        self.state().orders.insert(
            id,
            Order {
                status_id,
                history: Vec::new(),
                total: total.to_owned(),
                currency: currency.to_owned(),
                currency_value: currency_value.to_owned(),
            },
        );
    }

    pub fn order_status(&self, id: u64) -> Option<i64> {
        self.state().orders.get(&id).map(|o| o.status_id)
    }

    pub fn history(&self, id: u64) -> Vec<HistoryRow> {
        self.state()
            .orders
            .get(&id)
            .map(|o| o.history.clone())
            .unwrap_or_default()
    }

    /// Login requests received (successful or not).
    pub fn logins(&self) -> usize {
        self.state().calls.login
    }

    pub fn calls(&self) -> Calls {
        self.state().calls
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state().requests.clone()
    }

    /// Every session token the fake handed out.
    pub fn tokens_issued(&self) -> Vec<String> {
        self.state().tokens_issued.clone()
    }

    /// `oc_api_history` (4.1): the call names that passed authentication.
    pub fn api_history(&self) -> Vec<String> {
        self.state().api_history.clone()
    }

    // --------------------------------------------------- failure switches

    /// Answers the next `n` requests with a PHP fatal error (HTTP 500).
    pub fn fail_next(&self, n: usize) {
        self.fail_next_with(n, 500, None);
    }

    /// Answers the next `n` requests with `status` (and `Retry-After`).
    pub fn fail_next_with(&self, n: usize, status: u16, retry_after: Option<&str>) {
        let mut state = self.state();
        state.failures = n;
        state.failure_status = status;
        state.retry_after = retry_after.map(str::to_owned);
    }

    /// Holds the next `n` requests for `delay` before handling them (a
    /// slow PHP: the request is still processed afterwards).
    pub fn hang_next(&self, n: usize, delay: Duration) {
        let mut state = self.state();
        state.hangs = n;
        state.hang_for = delay;
    }

    /// Processes the next `n` API calls (logins excepted) at once, then
    /// holds each answer for `delay` (a PHP that finished its work but whose
    /// answer is late: the client times out although the shop applied the
    /// call).
    pub fn answer_late_next(&self, n: usize, delay: Duration) {
        let mut state = self.state();
        state.late_answers = n;
        state.late_by = delay;
    }

    /// Drops every API session, as the 1-hour purge does.
    pub fn expire_sessions(&self) {
        self.state().sessions.clear();
    }

    /// Sessions idle for longer than this are purged (default 1 h).
    pub fn set_session_ttl(&self, ttl: Duration) {
        self.state().session_ttl = ttl;
    }

    /// When on, a session is forgotten as soon as it is handed out.
    pub fn forget_new_sessions(&self, on: bool) {
        self.state().forget_sessions = on;
    }

    /// The API user's IP allow-list (default `127.0.0.1`).
    pub fn set_allowed_ips(&self, ips: &[&str]) {
        self.state().allowed_ips = ips.iter().map(|s| s.to_string()).collect();
    }

    /// Empties the allow-list: every caller's IP is refused.
    pub fn refuse_ips(&self) {
        self.set_allowed_ips(&[]);
    }

    /// Moves the shop's clock (4.1 time window).
    pub fn set_clock_offset(&self, seconds: i64) {
        self.state().clock_offset = seconds;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().expect("fake state lock")
    }
}

// ------------------------------------------------------------------ state

struct Order {
    status_id: i64,
    history: Vec<HistoryRow>,
    total: String,
    currency: String,
    currency_value: String,
}

struct State {
    version: Version,
    username: String,
    key: String,
    allowed_ips: Vec<String>,
    orders: HashMap<u64, Order>,
    /// token → last use.
    sessions: HashMap<String, Instant>,
    session_ttl: Duration,
    forget_sessions: bool,
    tokens_issued: Vec<String>,
    api_history: Vec<String>,
    clock_offset: i64,
    failures: usize,
    failure_status: u16,
    retry_after: Option<String>,
    hangs: usize,
    hang_for: Duration,
    late_answers: usize,
    late_by: Duration,
    calls: Calls,
    requests: Vec<Recorded>,
}

impl State {
    fn new(version: Version, key: &str) -> State {
        State {
            version,
            username: USERNAME.to_owned(),
            key: key.to_owned(),
            allowed_ips: vec!["127.0.0.1".to_owned()],
            orders: HashMap::new(),
            sessions: HashMap::new(),
            session_ttl: Duration::from_secs(3600),
            forget_sessions: false,
            tokens_issued: Vec::new(),
            api_history: Vec::new(),
            clock_offset: 0,
            failures: 0,
            failure_status: 500,
            retry_after: None,
            hangs: 0,
            hang_for: Duration::ZERO,
            late_answers: 0,
            late_by: Duration::ZERO,
            calls: Calls::default(),
            requests: Vec::new(),
        }
    }
}

/// A request as PHP's superglobals would present it.
struct Php {
    path: String,
    /// `$_GET`, cleaned.
    get: Vec<(String, String)>,
    /// `$_POST`, cleaned, in body order (empty unless form-encoded).
    post: Vec<(String, String)>,
    /// `$_SERVER['HTTP_HOST']`.
    host: String,
    remote_addr: String,
    /// `oc_get_ip()` (4.1): forwarding headers first.
    forwarded_ip: Option<String>,
}

impl Php {
    fn get(&self, name: &str) -> Option<String> {
        last_value(&self.get, name)
    }
    fn post(&self, name: &str) -> String {
        last_value(&self.post, name).unwrap_or_default()
    }
}

// ----------------------------------------------------------------- server

async fn serve(listener: TcpListener, state: Arc<Mutex<State>>, prefix: String) {
    loop {
        let Ok((stream, peer)) = listener.accept().await else {
            continue;
        };
        let state = state.clone();
        let prefix = prefix.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let state = state.clone();
                let prefix = prefix.clone();
                async move { Ok::<_, Infallible>(handle(&state, &prefix, peer.ip(), req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

type Reply = Response<Full<Bytes>>;

async fn handle(
    state: &Arc<Mutex<State>>,
    prefix: &str,
    peer: IpAddr,
    req: Request<Incoming>,
) -> Reply {
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let header = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let recorded = Recorded {
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        host: header("host"),
        content_type: header("content-type"),
        body: String::from_utf8_lossy(&body).into_owned(),
    };
    let hang = {
        let mut st = state.lock().expect("fake state lock");
        st.requests.push(recorded.clone());
        st.calls.total += 1;
        take(&mut st.hangs).then_some(st.hang_for)
    };
    // Like PHP, which runs a script to its end after the caller hung up
    // (ignore_user_abort only matters once it writes output), a request is
    // applied even when the client timed out meanwhile: in a spawned task,
    // because hyper drops a handler whose client left.
    let (state, prefix, headers) = (state.clone(), prefix.to_owned(), parts.headers);
    let (reply, late) = tokio::spawn(async move {
        if let Some(delay) = hang {
            tokio::time::sleep(delay).await;
        }
        let mut st = state.lock().expect("fake state lock");
        let reply = process(&mut st, &prefix, peer, &headers, &recorded);
        // Logins answer on time: the session is there, the API calls are slow.
        let login = recorded
            .query_value("route")
            .is_some_and(|r| r.contains("login"));
        let late = (!login && take(&mut st.late_answers)).then_some(st.late_by);
        (reply, late)
    })
    .await
    .expect("request handled");
    if let Some(delay) = late {
        tokio::time::sleep(delay).await;
    }
    reply
}

/// Handles one request against the shop's state.
fn process(
    st: &mut State,
    prefix: &str,
    peer: IpAddr,
    headers: &hyper::HeaderMap,
    recorded: &Recorded,
) -> Reply {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    if take(&mut st.failures) {
        let status = st.failure_status;
        let retry_after = st.retry_after.clone();
        let mut reply = respond(st.version, status, "text/html; charset=UTF-8", OUTAGE_PAGE);
        if let Some(v) = retry_after {
            reply.headers_mut().insert(
                "retry-after",
                HeaderValue::from_str(&v).expect("header value"),
            );
        }
        return reply;
    }
    let forwarded_ip = header("x-forwarded-for")
        .split(',')
        .next()
        .map(str::trim)
        .filter(|ip| !ip.is_empty())
        .map(str::to_owned);
    let is_form = recorded
        .content_type
        .starts_with("application/x-www-form-urlencoded");
    let php = Php {
        path: recorded.path.clone(),
        get: clean_pairs(form_pairs(&recorded.query)),
        post: if is_form {
            clean_pairs(form_pairs(&recorded.body))
        } else {
            Vec::new()
        },
        host: recorded.host.clone(),
        remote_addr: peer.to_string(),
        forwarded_ip,
    };
    if php.path != format!("{prefix}index.php") && php.path != prefix {
        return not_found(st.version);
    }
    match st.version {
        Version::OpenCart3 => route_30(st, &php),
        Version::OpenCart402 => route_402(st, &php),
        Version::OpenCart41 => route_41(st, &php),
    }
}

/// Decrements a countdown; true while it was running.
fn take(counter: &mut usize) -> bool {
    if *counter > 0 {
        *counter -= 1;
        true
    } else {
        false
    }
}

// -------------------------------------------------------------------- 3.0

fn route_30(st: &mut State, php: &Php) -> Reply {
    match php.get("route").as_deref() {
        Some("api/login") => {
            st.calls.login += 1;
            login_30(st, php)
        }
        Some("api/order/history") => {
            st.calls.history += 1;
            if !session_ok(st, php, &php.remote_addr) {
                return json(st.version, PERMISSION_30);
            }
            // 3.0 reads order_id from the query string only.
            let order_id = php_int(&php.get("order_id").unwrap_or_default());
            add_history(st, order_id, php)
        }
        Some("api/order/info") => {
            st.calls.info += 1;
            if !session_ok(st, php, &php.remote_addr) {
                return json(st.version, PERMISSION_30);
            }
            let order_id = php_int(&php.get("order_id").unwrap_or_default());
            order_info_30(st, order_id)
        }
        _ => not_found(st.version),
    }
}

/// 3.0 `api/order/info`: `getOrder()`'s row, MySQL values as strings.
fn order_info_30(st: &State, order_id: i64) -> Reply {
    let order = u64::try_from(order_id)
        .ok()
        .and_then(|id| st.orders.get(&id));
    let Some(order) = order else {
        return json(st.version, ORDER_NOT_FOUND);
    };
    let body = serde_json::json!({
        "order": {
            "order_id": order_id.to_string(),
            "store_id": "0",
            "firstname": "Test",
            "lastname": "Customer",
            "email": "customer@example.com",
            "order_status_id": order.status_id.to_string(),
            "total": order.total,
            "currency_code": order.currency,
            "currency_value": order.currency_value,
        },
        "success": "Success: You have modified orders!",
    });
    json(st.version, &body.to_string())
}

fn login_30(st: &mut State, php: &Php) -> Reply {
    let username = last_value(&php.post, "username").unwrap_or_else(|| "Default".to_owned());
    // A wrong user or key gets an empty array: the error is only set
    // inside the IP branch.
    if username != st.username || php.post("key") != st.key {
        return json(st.version, "[]");
    }
    if !st.allowed_ips.contains(&php.remote_addr) {
        let body = format!(
            r#"{{"error":{{"ip":"Warning: Your IP {} is not allowed to access this API!","key":"Warning: Incorrect API Key!"}}}}"#,
            php.remote_addr
        );
        return json(st.version, &body);
    }
    let token = open_session(st);
    json(
        st.version,
        &format!(r#"{{"success":"{LOGIN_OK}","api_token":"{token}"}}"#),
    )
}

// ------------------------------------------------------------------ 4.0.2

fn route_402(st: &mut State, php: &Php) -> Reply {
    match php.get("route").as_deref() {
        Some("api/account/login") => {
            st.calls.login += 1;
            let (username, key) = (php.post("username"), php.post("key"));
            if username.is_empty() || key.is_empty() || username != st.username || key != st.key {
                return json(st.version, r#"{"error":"Warning: Incorrect API Key!"}"#);
            }
            if !st.allowed_ips.contains(&php.remote_addr) {
                let body = format!(
                    r#"{{"error":"Warning: Your IP {} is not allowed to access this API!"}}"#,
                    php.remote_addr
                );
                return json(st.version, &body);
            }
            let token = open_session(st);
            json(
                st.version,
                &format!(r#"{{"success":"{LOGIN_OK}","api_token":"{token}"}}"#),
            )
        }
        Some("api/sale/order.addHistory") => {
            st.calls.history += 1;
            // No permission controller in the 4.0 catalog: a refused
            // token falls through to error/not_found.
            if !session_ok(st, php, &php.remote_addr) {
                return not_found(st.version);
            }
            let order_id = php_int(&php.post("order_id"));
            add_history(st, order_id, php)
        }
        _ => not_found(st.version),
    }
}

// -------------------------------------------------------------------- 4.1

fn route_41(st: &mut State, php: &Php) -> Reply {
    let route = php.get("route").unwrap_or_default();
    if !route.starts_with("api/") {
        return not_found(st.version);
    }
    // startup/session.php still purges the 3.0 session table, which 4.1
    // no longer creates.
    if php.get("api_token").is_some() {
        st.calls.history += 1;
        return respond(
            st.version,
            500,
            "text/html; charset=UTF-8",
            SESSION_TABLE_ERROR_41,
        );
    }
    if route == "api/login" {
        st.calls.login += 1;
    } else {
        st.calls.history += 1;
    }
    if !signed_41(st, php, &route) {
        return respond(st.version, 403, HTML, FORBIDDEN_41);
    }
    let call = php.get("call").unwrap_or_default();
    st.api_history.push(call.clone());
    if call != "history_add" {
        return json(st.version, CALL_NOT_FOUND_41);
    }
    let order_id = php_int(&php.post("order_id"));
    add_history(st, order_id, php)
}

/// `catalog/controller/startup/api.php`, as described in the reference.
fn signed_41(st: &State, php: &Php, route: &str) -> bool {
    if route != "api/order" && route != "api/subscription" {
        return false;
    }
    let names = [
        "call",
        "username",
        "store_id",
        "language",
        "currency",
        "time",
        "signature",
    ];
    let Some(values) = names
        .iter()
        .map(|n| php.get(n))
        .collect::<Option<Vec<String>>>()
    else {
        return false;
    };
    let [call, username, store_id, language, currency, time, signature] = &values[..] else {
        return false;
    };
    if *username != st.username {
        return false;
    }
    let ip = php
        .forwarded_ip
        .clone()
        .unwrap_or_else(|| php.remote_addr.clone());
    if !st.allowed_ips.contains(&ip) {
        return false;
    }
    let time = php_int(time);
    if (server_time(st) - time).abs() > CLOCK_WINDOW {
        return false;
    }
    // rtrim(dirname(PHP_SELF), '/') . '/'
    let dirname = match php.path.rfind('/') {
        Some(i) => &php.path[..i],
        None => "",
    };
    let base_path = format!("{}/", dirname.trim_end_matches('/'));
    let mut message = String::new();
    for line in [
        route.to_owned(),
        call.clone(),
        st.username.clone(),
        php.host.clone(),
        base_path,
        php_int(store_id).to_string(),
        language.clone(),
        currency.clone(),
        md5_hex(&http_build_query(&php.post)),
        time.to_string(),
    ] {
        message.push_str(&line);
        message.push('\n');
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(st.key.as_bytes()).expect("any key length");
    mac.update(message.as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    expected == *signature
}

fn server_time(st: &State) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    now.as_secs() as i64 + st.clock_offset
}

// ------------------------------------------------------------- shared

/// Purges idle sessions, then checks (and refreshes) the caller's token.
fn session_ok(st: &mut State, php: &Php, ip: &str) -> bool {
    let ttl = st.session_ttl;
    st.sessions.retain(|_, last| last.elapsed() <= ttl);
    let Some(token) = php.get("api_token") else {
        return false;
    };
    if !st.allowed_ips.iter().any(|a| a == ip) {
        return false;
    }
    match st.sessions.get_mut(&token) {
        Some(last) => {
            *last = Instant::now();
            true
        }
        None => false,
    }
}

fn open_session(st: &mut State) -> String {
    let token = hex::encode(rand::random::<[u8; 13]>());
    st.tokens_issued.push(token.clone());
    if !st.forget_sessions {
        st.sessions.insert(token.clone(), Instant::now());
    }
    token
}

/// `addOrderHistory`: no check that the status exists; missing fields are
/// `''`, i.e. 0.
fn add_history(st: &mut State, order_id: i64, php: &Php) -> Reply {
    let version = st.version;
    let order = u64::try_from(order_id)
        .ok()
        .and_then(|id| st.orders.get_mut(&id));
    let Some(order) = order else {
        return json(version, ORDER_NOT_FOUND);
    };
    let status_id = php_int(&php.post("order_status_id"));
    order.status_id = status_id;
    order.history.push(HistoryRow {
        status_id,
        comment: php.post("comment"),
        notify: php_int(&php.post("notify")) != 0,
    });
    json(version, HISTORY_OK)
}

// ------------------------------------------------------------ responses

fn json(version: Version, body: &str) -> Reply {
    respond(version, 200, JSON, body)
}

fn not_found(version: Version) -> Reply {
    respond(version, 404, HTML, NOT_FOUND_PAGE)
}

/// A response with the headers PHP and OpenCart add.
fn respond(version: Version, status: u16, content_type: &str, body: &str) -> Reply {
    let mut builder = Response::builder()
        .status(StatusCode::from_u16(status).expect("valid status"))
        .header("X-Powered-By", "PHP/8.2.36")
        .header("Expires", "Thu, 19 Nov 1981 08:52:00 GMT")
        .header(
            "Cache-Control",
            "no-store, no-cache, must-revalidate, post-check=0, pre-check=0",
        )
        .header("Pragma", "no-cache")
        .header("Content-Type", content_type);
    builder = match version {
        Version::OpenCart3 => builder
            .header("Set-Cookie", "language=en-gb; Max-Age=2592000; path=/")
            .header("Set-Cookie", "currency=USD; Max-Age=2592000; path=/"),
        Version::OpenCart402 | Version::OpenCart41 => builder
            .header(
                "Set-Cookie",
                "currency=USD; Max-Age=2592000; path=/; HttpOnly; SameSite=Lax",
            )
            .header("Access-Control-Allow-Origin", "*"),
    };
    builder
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("valid response")
}

// ------------------------------------------------------------------ PHP

/// Decodes `application/x-www-form-urlencoded` (`+` is a space).
fn form_pairs(encoded: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str(encoded).unwrap_or_default()
}

/// PHP array semantics: a repeated key keeps its first position and its
/// last value.
fn clean_pairs(pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (k, v) in pairs {
        let (k, v) = (clean(&k), clean(&v));
        match out.iter_mut().find(|(key, _)| *key == k) {
            Some(slot) => slot.1 = v,
            None => out.push((k, v)),
        }
    }
    out
}

fn last_value(pairs: &[(String, String)], name: &str) -> Option<String> {
    pairs
        .iter()
        .rev()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// `trim(htmlspecialchars($v, ENT_COMPAT, 'UTF-8'))`.
fn clean(value: &str) -> String {
    value
        .replace('&', "&amp;")
        .replace('"', "&quot;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .trim_matches(|c| matches!(c, ' ' | '\t' | '\n' | '\r' | '\0' | '\u{b}'))
        .to_owned()
}

/// `http_build_query` over string values: PHP `urlencode` of each.
fn http_build_query(pairs: &[(String, String)]) -> String {
    let urlencode = |s: &str| -> String {
        s.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn md5_hex(text: &str) -> String {
    hex::encode(md5::Md5::digest(text.as_bytes()))
}

/// PHP's `(int)` of a string: optional whitespace and sign, then digits.
fn php_int(value: &str) -> i64 {
    let s = value.trim_start();
    let (sign, digits) = match s.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, s.strip_prefix('+').unwrap_or(s)),
    };
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse::<i64>().map(|n| sign * n).unwrap_or(0)
}

/// Exchange 46, verbatim: what 4.1.0.4 answers to a 3.0-style call carrying
/// `api_token` (`Content-type: text/html; charset=UTF-8`).
const SESSION_TABLE_ERROR_41: &str = "Error: Error: Table 'oc4.oc_api_session' doesn't exist<br/>Error No: 1146<br/>DELETE FROM `oc_api_session` WHERE TIMESTAMPADD(HOUR, 1, `date_modified`) < NOW()\n\
File: <webroot-4.1.0.4>/system/library/db/mysqli.php\n\
Line: 122\n\
\n\
Backtrace: 0\n\
File: <webroot-4.1.0.4>/system/library/db.php\n\
Line: 54\n\
Class: Opencart\\System\\Library\\DB\\MySQLi\n\
Function: query\n\
\n\
Backtrace: 1\n\
File: <webroot-4.1.0.4>/catalog/model/setting/api.php\n\
Line: 120\n\
Class: Opencart\\System\\Library\\DB\n\
Function: query\n\
\n\
Backtrace: 2\n\
File: <webroot-4.1.0.4>/system/engine/loader.php\n\
Line: 351\n\
Class: Opencart\\Catalog\\Model\\Setting\\Api\n\
Function: cleanSessions\n\
\n\
Backtrace: 3\n\
File: <webroot-4.1.0.4>/system/engine/proxy.php\n\
Line: 91\n\
Class: Opencart\\System\\Engine\\Loader\n\
Function: Opencart\\System\\Engine\\{closure}\n\
\n\
Backtrace: 4\n\
File: <webroot-4.1.0.4>/catalog/controller/startup/session.php\n\
Line: 24\n\
Class: Opencart\\System\\Engine\\Proxy\n\
Function: __call\n\
\n\
Backtrace: 5\n\
File: <webroot-4.1.0.4>/system/engine/action.php\n\
Line: 96\n\
Class: Opencart\\Catalog\\Controller\\Startup\\Session\n\
Function: index\n\
\n\
Backtrace: 6\n\
File: <webroot-4.1.0.4>/system/framework.php\n\
Line: 224\n\
Class: Opencart\\System\\Engine\\Action\n\
Function: execute\n\
\n\
Backtrace: 7\n\
File: <webroot-4.1.0.4>/index.php\n\
Line: 21\n\
Function: require_once\n\
\n\
";
