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
//! only in the JSON, so the answers are classified by their text
//! ([`answers`]).
//!
//! The API key and the session token never appear in an error or a log
//! line: reqwest errors lose their URL ([`transport_error`]) and shop
//! answers to token-carrying requests are scrubbed of the token, because
//! OpenCart's not-found page echoes the query string in its breadcrumbs.

mod answers;
mod plan;
mod signing;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, ACCEPT, CONTENT_TYPE};
use reqwest::{StatusCode, Url};
use tokio::sync::Mutex;

use super::{
    http_client, read_body_capped, transport_error, PushError, Pushed, ShopUpdate, MAX_ANSWER_BYTES,
};
use crate::config::{Secret, ShopConfig, ShopKind, ShopStatus};
use crate::domain::Outcome;
use crate::ops::logging::one_line;
use answers::{classify_history, classify_login, classify_order_info, finish, partial, redact};
use plan::{History, OrderInfo, Plan, Rules};

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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
