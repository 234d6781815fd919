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

mod plan;
mod signing;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
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
use crate::domain::Outcome;
use crate::ops::logging::one_line;
use plan::{History, OrderInfo, Plan, Rules};

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

/// An HTTP answer, read in full.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

/// What an answer means, when it is not an error.
#[derive(Debug, PartialEq, Eq)]
enum Reply<T> {
    Done(T),
    /// The session token was refused: log in again.
    SessionRefused,
}

/// How far one push got, kept across a re-login so that an entry the shop
/// already took is not sent twice.
#[derive(Default)]
struct Progress {
    plan: Option<Plan>,
    /// The shop's answer to each entry sent so far.
    answers: Vec<String>,
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
    /// The status table (the review status the amount check may set, and
    /// the previous outcome's status, which tells whether an update shows).
    statuses: BTreeMap<Outcome, ShopStatus>,
    amount_tolerance: Option<u32>,
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
                statuses: cfg.statuses.clone(),
                amount_tolerance: cfg.amount_tolerance,
            }),
            session: Mutex::new(None),
        }
    }

    fn rules(&self) -> Rules<'_> {
        Rules {
            statuses: &self.settings.statuses,
            tolerance: self.settings.amount_tolerance,
        }
    }

    /// Adds the order-history rows that move the order to `update.status`
    /// (see [`plan`]: customer text apart, at most one notification, the
    /// amount check).
    pub async fn push(&self, update: &ShopUpdate) -> Result<Pushed, PushError> {
        // Configuration bugs (a status code, a non-numeric order) are
        // reported before any call.
        plan::plan(update, &self.rules(), None)?;
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
            Dialect::V41 => {
                let plan = plan::plan(update, &self.rules(), None)?;
                self.push_signed(site, key, &plan).await
            }
            Dialect::V30 | Dialect::V402 => self.push_with_session(site, key, update).await,
        }
    }

    /// 3.0 and 4.0.2: reuse the session; when the shop refuses it (idle
    /// timeout, purge), log in again once and go on where the push was.
    async fn push_with_session(
        &self,
        site: &Site,
        key: &Secret,
        update: &ShopUpdate,
    ) -> Result<Pushed, PushError> {
        let mut progress = Progress::default();
        let token = self.session_token(site, key, None).await?;
        if let Reply::Done(pushed) = self
            .push_in_session(site, &token, update, &mut progress)
            .await?
        {
            return Ok(pushed);
        }
        tracing::info!(shop = %one_line(&self.settings.name), "OpenCart refused the API session; logging in again");
        let token = self.session_token(site, key, Some(&token)).await?;
        match self
            .push_in_session(site, &token, update, &mut progress)
            .await?
        {
            Reply::Done(pushed) => Ok(pushed),
            Reply::SessionRefused => {
                self.forget_session(&token).await;
                Err(PushError::transient(
                    "OpenCart refused a session it had just opened (check the API user's IP allow-list)",
                ))
            }
        }
    }

    /// One session's worth of a push: read the order when the plan needs
    /// it (3.0), then send the entries not sent yet.
    async fn push_in_session(
        &self,
        site: &Site,
        token: &Secret,
        update: &ShopUpdate,
        progress: &mut Progress,
    ) -> Result<Reply<Pushed>, PushError> {
        if progress.plan.is_none() {
            let rules = self.rules();
            let order = if self.dialect == Dialect::V30 && rules.needs_order(update) {
                match self
                    .order_info(site, token, update.order_ref.trim())
                    .await?
                {
                    Reply::Done(order) => Some(order),
                    Reply::SessionRefused => return Ok(Reply::SessionRefused),
                }
            } else {
                None
            };
            progress.plan = Some(plan::plan(update, &rules, order.as_ref())?);
        }
        let plan = progress.plan.as_ref().expect("planned above");
        let Plan::Send { entries, .. } = plan else {
            return Ok(Reply::Done(finish(plan, &progress.answers)));
        };
        while let Some(history) = entries.get(progress.answers.len()) {
            match self.post_history(site, token, history).await {
                Ok(Reply::Done(pushed)) => progress.answers.push(pushed.detail),
                Ok(Reply::SessionRefused) => return Ok(Reply::SessionRefused),
                Err(e) if progress.answers.is_empty() => return Err(e),
                Err(e) => return Ok(Reply::Done(partial(plan, &progress.answers, &e))),
            }
        }
        Ok(Reply::Done(finish(plan, &progress.answers)))
    }

    /// 3.0 `api/order/info`: the order's status and total, read in the
    /// push (never cached: the amount check compares with the order as it
    /// is now).
    async fn order_info(
        &self,
        site: &Site,
        token: &Secret,
        order_id: &str,
    ) -> Result<Reply<OrderInfo>, PushError> {
        let t = signing::rawurlencode(token.expose());
        let url = format!(
            "{}index.php?route=api/order/info&api_token={t}&order_id={}&store_id={}",
            site.root,
            signing::rawurlencode(order_id),
            self.settings.store_id
        );
        self.send(&url, &[])
            .await
            .and_then(|answer| classify_order_info(&answer))
            .map_err(|e| redact(e, token.expose()))
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
    ) -> Result<Reply<Pushed>, PushError> {
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

    /// 4.1+: one signed call per entry, no session.
    async fn push_signed(
        &self,
        site: &Site,
        key: &Secret,
        plan: &Plan,
    ) -> Result<Pushed, PushError> {
        let Plan::Send { entries, .. } = plan else {
            return Ok(finish(plan, &[]));
        };
        let mut answers = Vec::new();
        for history in entries {
            match self.post_signed(site, key, history).await {
                Ok(pushed) => answers.push(pushed.detail),
                Err(e) if answers.is_empty() => return Err(e),
                Err(e) => return Ok(partial(plan, &answers, &e)),
            }
        }
        Ok(finish(plan, &answers))
    }

    async fn post_signed(
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

/// The result of a plan whose entries were all sent (or that needed none).
fn finish(plan: &Plan, answers: &[String]) -> Pushed {
    match plan {
        Plan::AlreadyApplied(pushed) => pushed.clone(),
        Plan::Send {
            entries,
            notes,
            applied_outcome,
            needs_operator,
        } => {
            let mut detail = answers.first().cloned().unwrap_or_default();
            if entries.len() > 1 {
                detail.push_str(" (customer notified with the customer text; operator comment in an entry that notifies nobody)");
            }
            for note in notes {
                detail.push_str("; ");
                detail.push_str(note);
            }
            Pushed {
                detail,
                needs_operator: needs_operator.clone(),
                applied_outcome: *applied_outcome,
            }
        }
    }
}

/// The first entry (the status change and the customer's notification)
/// went through, a later one (the operator comment) did not: retrying the
/// whole update would notify the customer again, so the update counts as
/// delivered and a person is told what is missing.
fn partial(plan: &Plan, answers: &[String], error: &PushError) -> Pushed {
    let mut pushed = finish(plan, answers);
    let missing = format!(
        "the status was set and the customer notified, but the operator comment could not be added to the shop's history ({error}); it is in `ipnsync show`"
    );
    pushed.detail.push_str(&format!("; {missing}"));
    pushed.needs_operator = Some(match pushed.needs_operator {
        Some(earlier) => format!("{earlier}; {missing}"),
        None => missing,
    });
    pushed
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
fn classify_history(dialect: Dialect, answer: &Answer) -> Result<Reply<Pushed>, PushError> {
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

/// Reads an answer to 3.0's `api/order/info`: `{"order": {…}, "success":
/// …}` with the columns of `oc_order` (MySQL values, so numbers come as
/// strings), or `{"error": …}`.
fn classify_order_info(answer: &Answer) -> Result<Reply<OrderInfo>, PushError> {
    if !answer.status.is_success() {
        return Err(status_error(answer.status, &answer.headers, &answer.body));
    }
    let Some(json) = parse_json(&answer.body) else {
        return Err(not_json(answer));
    };
    if let Some(order) = json.get("order").filter(|o| o.is_object()) {
        let text = |name: &str| match order.get(name) {
            Some(Value::String(s)) => Some(s.trim().to_owned()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        };
        let status_id = text("order_status_id")
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or_else(|| {
                PushError::transient("OpenCart's order/info answer has no readable order_status_id")
            })?;
        let total = text("total").unwrap_or_default();
        let rate = text("currency_value").unwrap_or_else(|| "1".to_owned());
        return Ok(Reply::Done(OrderInfo {
            status_id,
            // An unreadable total stays as it is: the amount check then
            // says it cannot read it, and never marks the order paid.
            total: plan::scaled_total(&total, &rate).unwrap_or(total),
            currency: text("currency_code").unwrap_or_default(),
        }));
    }
    match error_text(&json) {
        Some(text) if text == PERMISSION_ERROR => Ok(Reply::SessionRefused),
        Some(text) => Err(PushError::permanent(text)),
        None => Err(PushError::transient(format!(
            "unexpected answer to OpenCart's order/info: {}",
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
