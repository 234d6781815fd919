//! OpenCart order-history client: 3.0.x, 4.0.2.x and 4.1+.
//!
//! Every version changes an order's status the same way, by adding an
//! order-history row (`addOrderHistory`), but each speaks its own dialect
//! (see the shop reference, section B):
//!
//! - **3.0.x**: `api/login` gives a session token; `api/order/history` takes
//!   it and the `order_id` in the query string. A stale token is refused
//!   with a JSON permission error (HTTP 200).
//! - **4.0.2.x**: `api/account/login`, then `api/sale/order.addHistory` with
//!   `order_id` in the body. A stale token falls through to an HTML 404.
//! - **4.1+**: no session; every call is signed with HMAC-SHA1 over a
//!   string that includes the host, the path and an md5 of the cleaned POST
//!   data ([`signing`]).
//!
//! OpenCart answers every API outcome with HTTP 200 and tells them apart
//! only in the JSON, so the answers are classified by their text.
//!
//! The API key and the session token never appear in an error or a log
//! line: reqwest errors lose their URL ([`transport_error`]) and shop
//! answers to token-carrying requests are scrubbed of the token, because
//! OpenCart's not-found page echoes the query string in its breadcrumbs.

mod signing;
#[cfg(test)]
mod tests;

use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use serde_json::Value;
use tokio::sync::Mutex;

use super::{
    http_client, read_body_capped, status_error, transport_error, PushError, Pushed, ShopUpdate,
    MAX_ANSWER_BYTES,
};
use crate::config::{Secret, ShopConfig, ShopKind, ShopStatus};

/// 3.0's answer to a bad, expired or IP-mismatched token.
const PERMISSION_ERROR: &str = "Warning: You do not have permission to access the API!";

/// What the 4.1 signature covers for the one operation ipnsync uses.
const SIGNED_ROUTE: &str = "api/order";
const SIGNED_CALL: &str = "history_add";

/// The OpenCart API dialect, from the configured shop kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dialect {
    V30,
    V402,
    V41,
}

impl Dialect {
    fn of(kind: ShopKind) -> Dialect {
        match kind {
            ShopKind::OpenCart40 => Dialect::V402,
            ShopKind::OpenCart41 => Dialect::V41,
            // `ShopClient::new` only builds this client for OpenCart kinds.
            _ => Dialect::V30,
        }
    }
}

/// Where the shop lives, split the way requests and the 4.1 signature need.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Site {
    /// The shop's directory URL, ending in `/`; `index.php?…` is appended.
    root: String,
    /// `$_SERVER['HTTP_HOST']`: the host plus any non-default port.
    host: String,
    /// `rtrim(dirname(PHP_SELF), '/') . '/'`: "/" at the web root.
    base_path: String,
}

impl Site {
    /// Accepts the shop's root with or without a trailing `/` or
    /// `index.php`; drops any query or fragment.
    fn parse(base_url: &str) -> Result<Site, String> {
        let mut url =
            Url::parse(base_url).map_err(|e| format!("invalid OpenCart base_url: {e}"))?;
        let host = url
            .host_str()
            .ok_or_else(|| "OpenCart base_url has no host".to_owned())?
            .to_owned();
        // `Url::port` is `None` for the scheme's default port, exactly when
        // the client's Host header (and so HTTP_HOST) carries no port.
        let host = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host,
        };
        let path = url.path();
        let dir = path.strip_suffix("index.php").unwrap_or(path);
        let base_path = format!("{}/", dir.trim_end_matches('/'));
        url.set_path(&base_path);
        url.set_query(None);
        url.set_fragment(None);
        Ok(Site {
            root: url.to_string(),
            host,
            base_path,
        })
    }
}

/// The history row to add, formatted for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
struct History {
    order_id: String,
    status_id: String,
    comment: String,
    notify: &'static str,
}

impl History {
    /// Checks what the shop would otherwise silently misread: OpenCart casts
    /// both ids to int, so a non-numeric order becomes order 0 ("not found")
    /// and a missing status becomes status 0 (a hidden "missing order").
    fn from_update(update: &ShopUpdate) -> Result<History, PushError> {
        let status_id = match &update.status {
            ShopStatus::Id(id) => id.to_string(),
            ShopStatus::Code(code) => {
                return Err(PushError::permanent(format!(
                    "OpenCart needs a numeric order_status_id, but the shop's status table gives {code:?}"
                )))
            }
        };
        let order_id: u64 = update.order_ref.trim().parse().map_err(|_| {
            PushError::permanent(format!(
                "OpenCart order ids are numbers, got {:?}",
                update.order_ref
            ))
        })?;
        Ok(History {
            order_id: order_id.to_string(),
            status_id,
            comment: comment_with_marker(&update.comment, update.outbox_id),
            notify: if update.notify { "1" } else { "0" },
        })
    }

    /// The POST fields, all of them always: OpenCart defaults a missing
    /// field to `''`, which would set status 0. `override=0` keeps the
    /// shop's fraud checks on.
    fn fields(&self, dialect: Dialect) -> Vec<(&'static str, &str)> {
        match dialect {
            Dialect::V30 => vec![
                ("order_status_id", &self.status_id),
                ("notify", self.notify),
                ("override", "0"),
                ("comment", &self.comment),
            ],
            Dialect::V402 | Dialect::V41 => vec![
                ("order_id", &self.order_id),
                ("order_status_id", &self.status_id),
                ("comment", &self.comment),
                ("notify", self.notify),
                ("override", "0"),
            ],
        }
    }
}

/// The history comment: the decision's text, then a marker line
/// `[ipnsync update #<outbox_id>]`.
///
/// Delivery is at least once: if ipnsync crashes after the shop applied an
/// update but before the outbox row was marked done, the update is sent
/// again, and OpenCart has no idempotency check (each call adds a history
/// row). The marker makes such a duplicate recognisable in the order's
/// history. OpenCart stores the comment HTML-escaped and trimmed.
fn comment_with_marker(comment: &str, outbox_id: i64) -> String {
    let marker = format!("[ipnsync update #{outbox_id}]");
    if comment.trim().is_empty() {
        marker
    } else {
        format!("{comment}\n{marker}")
    }
}

/// An HTTP answer, read in full.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

/// What an answer to the history call means, when it is not an error.
#[derive(Debug, PartialEq, Eq)]
enum Reply {
    Done(Pushed),
    /// The session token was refused: log in again.
    SessionRefused,
}

/// One configured OpenCart shop.
pub struct OpenCart {
    dialect: Dialect,
    http: reqwest::Client,
    /// Boxed so that `ShopClient`, an enum of every shop client, stays small.
    settings: Box<Settings>,
    /// The API session token (3.0, 4.0.2), kept until the shop refuses it.
    session: Mutex<Option<Secret>>,
}

/// The shop's fixed settings.
struct Settings {
    name: String,
    /// A bad `base_url` is reported on every push (the constructor cannot fail).
    site: Result<Site, String>,
    username: String,
    key: Option<Secret>,
    store_id: u32,
    language: String,
    currency: String,
}

impl OpenCart {
    pub fn new(cfg: &ShopConfig) -> Self {
        OpenCart {
            dialect: Dialect::of(cfg.kind),
            http: http_client(cfg),
            settings: Box::new(Settings {
                name: cfg.name.clone(),
                site: Site::parse(&cfg.base_url),
                username: cfg.username.clone(),
                key: cfg.credential.clone(),
                store_id: cfg.store_id,
                language: cfg.language.clone(),
                currency: cfg.currency.clone(),
            }),
            session: Mutex::new(None),
        }
    }

    /// Adds an order-history row that moves the order to `update.status`.
    pub async fn push(&self, update: &ShopUpdate) -> Result<Pushed, PushError> {
        let history = History::from_update(update)?;
        let settings = &self.settings;
        let site = settings
            .site
            .as_ref()
            .map_err(|e| PushError::permanent(e.clone()))?;
        let key = settings
            .key
            .as_ref()
            .ok_or_else(|| PushError::permanent("no OpenCart API key is configured"))?;
        match self.dialect {
            Dialect::V41 => self.push_signed(site, key, &history).await,
            Dialect::V30 | Dialect::V402 => self.push_with_session(site, key, &history).await,
        }
    }

    /// 3.0 and 4.0.2: reuse the session; when the shop refuses it (idle
    /// timeout, purge), log in again once and retry at once.
    async fn push_with_session(
        &self,
        site: &Site,
        key: &Secret,
        history: &History,
    ) -> Result<Pushed, PushError> {
        let token = self.session_token(site, key, None).await?;
        if let Reply::Done(pushed) = self.post_history(site, &token, history).await? {
            return Ok(pushed);
        }
        tracing::info!(shop = %self.settings.name, "OpenCart refused the API session; logging in again");
        let token = self.session_token(site, key, Some(&token)).await?;
        match self.post_history(site, &token, history).await? {
            Reply::Done(pushed) => Ok(pushed),
            Reply::SessionRefused => {
                self.forget_session(&token).await;
                Err(PushError::transient(
                    "OpenCart refused a session it had just opened (check the API user's IP allow-list)",
                ))
            }
        }
    }

    /// The current session token, logging in when there is none or when
    /// the one the caller used (`refused`) is still the current one.
    ///
    /// The lock is held across the login so that concurrent pushes wait for
    /// one login instead of each opening a session.
    async fn session_token(
        &self,
        site: &Site,
        key: &Secret,
        refused: Option<&Secret>,
    ) -> Result<Secret, PushError> {
        let mut slot = self.session.lock().await;
        if let Some(current) = slot.as_ref() {
            if refused != Some(current) {
                return Ok(current.clone());
            }
        }
        *slot = None;
        let fresh = self.login(site, key).await?;
        tracing::debug!(shop = %self.settings.name, "OpenCart API session started");
        *slot = Some(fresh.clone());
        Ok(fresh)
    }

    async fn forget_session(&self, token: &Secret) {
        let mut slot = self.session.lock().await;
        if slot.as_ref() == Some(token) {
            *slot = None;
        }
    }

    async fn login(&self, site: &Site, key: &Secret) -> Result<Secret, PushError> {
        let url = match self.dialect {
            Dialect::V402 => format!(
                "{}index.php?route=api/account/login&store_id={}&language={}",
                site.root,
                self.settings.store_id,
                signing::rawurlencode(&self.settings.language)
            ),
            _ => format!("{}index.php?route=api/login", site.root),
        };
        let answer = self
            .send(
                &url,
                &[("username", &self.settings.username), ("key", key.expose())],
            )
            .await?;
        classify_login(&answer)
    }

    async fn post_history(
        &self,
        site: &Site,
        token: &Secret,
        history: &History,
    ) -> Result<Reply, PushError> {
        let t = signing::rawurlencode(token.expose());
        let url = match self.dialect {
            // order_id is read only from the query string in 3.0.
            Dialect::V30 => format!(
                "{}index.php?route=api/order/history&api_token={t}&order_id={}&store_id={}",
                site.root, history.order_id, self.settings.store_id
            ),
            _ => format!(
                "{}index.php?route=api/sale/order.addHistory&api_token={t}&store_id={}&language={}",
                site.root,
                self.settings.store_id,
                signing::rawurlencode(&self.settings.language)
            ),
        };
        self.send(&url, &history.fields(self.dialect))
            .await
            .and_then(|answer| classify_history(self.dialect, &answer))
            .map_err(|e| redact(e, token.expose()))
    }

    /// 4.1+: one signed call, no session.
    async fn push_signed(
        &self,
        site: &Site,
        key: &Secret,
        history: &History,
    ) -> Result<Pushed, PushError> {
        let call = signing::SignedCall {
            route: SIGNED_ROUTE,
            call: SIGNED_CALL,
            username: &self.settings.username,
            store_id: self.settings.store_id,
            language: &self.settings.language,
            currency: &self.settings.currency,
        };
        let fields = history.fields(Dialect::V41);
        let time = unix_now();
        let signature = signing::sign(
            key.expose(),
            &site.host,
            &site.base_path,
            &call,
            &fields,
            time,
        );
        let enc = signing::rawurlencode;
        let url = format!(
            "{}index.php?route={SIGNED_ROUTE}&call={SIGNED_CALL}&username={}&store_id={}&language={}&currency={}&time={time}&signature={}",
            site.root,
            enc(call.username),
            call.store_id,
            enc(call.language),
            enc(call.currency),
            enc(&signature),
        );
        let answer = self.send(&url, &fields).await?;
        match classify_history(Dialect::V41, &answer)? {
            Reply::Done(pushed) => Ok(pushed),
            Reply::SessionRefused => Err(PushError::transient(
                "OpenCart 4.1 refused a session it does not use",
            )),
        }
    }

    /// POSTs a form. OpenCart reads only `$_POST`, so the body must be
    /// `application/x-www-form-urlencoded` (a JSON body is silently ignored).
    async fn send(&self, url: &str, fields: &[(&str, &str)]) -> Result<Answer, PushError> {
        let body = serde_urlencoded::to_string(fields).expect("string pairs always encode");
        let response = self
            .http
            .post(url)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(body)
            .send()
            .await
            .map_err(transport_error)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = read_body_capped(response, MAX_ANSWER_BYTES).await?;
        Ok(Answer {
            status,
            headers,
            body,
        })
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Reads a login answer: the token, or why there is none.
fn classify_login(answer: &Answer) -> Result<Secret, PushError> {
    if !answer.status.is_success() {
        return Err(status_error(answer.status, &answer.headers, &answer.body));
    }
    let Some(json) = parse_json(&answer.body) else {
        return Err(not_json(answer));
    };
    if let Some(token) = json
        .get("api_token")
        .and_then(Value::as_str)
        .filter(|t| !t.is_empty())
    {
        return Ok(Secret::new(token));
    }
    // 3.0 answers a wrong username or key with a bare `[]`.
    if json.as_array().is_some_and(Vec::is_empty) {
        return Err(PushError::permanent(
            "OpenCart refused the API credentials (login returned [])",
        ));
    }
    match error_text(&json) {
        Some(text) => Err(PushError::permanent(text)),
        None => Err(PushError::transient(format!(
            "unexpected answer to the OpenCart login (HTTP {})",
            answer.status.as_u16()
        ))),
    }
}

/// Reads an answer to the history call.
fn classify_history(dialect: Dialect, answer: &Answer) -> Result<Reply, PushError> {
    let json = parse_json(&answer.body);
    match (dialect, answer.status) {
        // Signature, IP, clock and user failures all look the same.
        (Dialect::V41, StatusCode::FORBIDDEN) => {
            let text = json
                .as_ref()
                .and_then(error_text)
                .unwrap_or_else(|| snippet(&answer.body));
            return Err(PushError::permanent(format!(
                "OpenCart refused the signed call (HTTP 403: {text}); check the API key, the IP allow-list and the clock"
            )));
        }
        // 4.0.2 has no permission page: a refused token falls through to
        // the not-found page.
        (Dialect::V402, StatusCode::NOT_FOUND) => return Ok(Reply::SessionRefused),
        (_, status) if !status.is_success() => {
            return Err(status_error(status, &answer.headers, &answer.body))
        }
        _ => {}
    }
    let Some(json) = json else {
        return match dialect {
            Dialect::V402 => Ok(Reply::SessionRefused),
            _ => Err(not_json(answer)),
        };
    };
    if let Some(success) = json.get("success").and_then(Value::as_str) {
        return Ok(Reply::Done(Pushed::done(success)));
    }
    match error_text(&json) {
        Some(text) if text == PERMISSION_ERROR && dialect != Dialect::V41 => {
            Ok(Reply::SessionRefused)
        }
        // Unknown order, unknown call…: the shop's own words, for good.
        Some(text) => Err(PushError::permanent(text)),
        None => Err(PushError::transient(format!(
            "unexpected OpenCart answer: {}",
            snippet(&answer.body)
        ))),
    }
}

/// Parses an OpenCart JSON answer.
///
/// A shop with `display_errors` on can print a BOM or PHP notices before
/// the JSON (the recorded 3.0.5.1 and 4.1.0.4 shops on PHP 8.2 did not, but
/// extensions do). OpenCart prints its JSON on one line at the very end,
/// so when the whole body does not parse, its last line is tried.
fn parse_json(body: &str) -> Option<Value> {
    let body = body.trim_start_matches('\u{feff}').trim();
    if let Ok(value) = serde_json::from_str(body) {
        return Some(value);
    }
    let last = body.rsplit('\n').next()?.trim();
    if last.starts_with('{') || last.starts_with('[') {
        serde_json::from_str(last).ok()
    } else {
        None
    }
}

/// The `error` of an answer: a string, or (3.0 login) an object of them.
/// In the IP-refused login, 3.0 also adds "Incorrect API Key!" although the
/// key was right, so the IP text alone is kept when present.
fn error_text(json: &Value) -> Option<String> {
    match json.get("error")? {
        Value::String(text) => Some(text.clone()),
        Value::Object(map) => {
            if let Some(ip) = map.get("ip").and_then(Value::as_str) {
                return Some(ip.to_owned());
            }
            let texts: Vec<&str> = map.values().filter_map(Value::as_str).collect();
            (!texts.is_empty()).then(|| texts.join(" "))
        }
        _ => None,
    }
}

/// An HTTP 200 whose body is not JSON: a PHP fatal error or a proxy page.
/// Transient, since the same request may well succeed later.
fn not_json(answer: &Answer) -> PushError {
    PushError::transient(format!(
        "OpenCart answered HTTP {} with something that is not JSON: {}",
        answer.status.as_u16(),
        snippet(&answer.body)
    ))
}

fn snippet(body: &str) -> String {
    body.chars().take(200).collect::<String>().trim().to_owned()
}

/// Removes a session token from an error text.
fn redact(error: PushError, token: &str) -> PushError {
    if token.is_empty() {
        return error;
    }
    match error {
        PushError::Transient {
            reason,
            retry_after,
        } => PushError::Transient {
            reason: reason.replace(token, "***"),
            retry_after,
        },
        PushError::Permanent { reason } => PushError::Permanent {
            reason: reason.replace(token, "***"),
        },
    }
}
