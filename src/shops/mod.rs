//! Shop API clients: one module per shop API, one [`ShopClient`] per
//! configured shop. The dispatcher hands each a [`ShopUpdate`] and learns
//! whether the shop took it, should be asked again later, or refused it
//! for good.

pub mod magento2;
pub mod opencart;
pub mod openmage;
pub mod webhook;

use std::time::Duration;

use thiserror::Error;

use crate::config::{ShopConfig, ShopKind, ShopStatus};
use crate::domain::money::Money;
use crate::domain::Outcome;

/// One order update, as the shop should apply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopUpdate {
    /// Stable id of this update (the outbox row): the idempotency key.
    pub outbox_id: i64,
    /// The stored notification that caused it.
    pub event_id: i64,
    /// The shop's order reference (OpenMage/Magento increment id,
    /// OpenCart order_id).
    pub order_ref: String,
    pub outcome: Outcome,
    /// The order's outcome before this update (`None` for a new order).
    pub previous_outcome: Option<Outcome>,
    /// The shop status configured for `outcome`.
    pub status: ShopStatus,
    /// The order-history comment.
    pub comment: String,
    /// Whether the shop should e-mail the customer.
    pub notify: bool,
    pub provider: String,
    pub transaction_id: String,
    /// The provider's raw status (`AUTHORISED_TO_VALIDATE`…).
    pub provider_status: String,
    /// What the notification says was paid, when it carried an amount in a
    /// known currency: the amount check compares it with the order's total
    /// before a push that marks the order paid (unless `by_operator`).
    pub amount: Option<Money>,
    /// The short text a customer may see (the history entry that notifies
    /// them): no rule names, transaction ids, card masks or markers. The
    /// operator's `comment` goes in an entry that notifies nobody.
    pub customer_text: String,
    /// An earlier attempt at this update may have reached the shop (it
    /// timed out or the connection dropped after the request was sent):
    /// look at the order before sending again, where the shop can tell.
    pub earlier_attempt_unknown: bool,
    /// Queued by an operator's review action (validate / deny), not by a
    /// notification: the operator has checked the payment, so the amount
    /// check does not run (it would put a validated order back in review,
    /// forever).
    pub by_operator: bool,
}

impl ShopUpdate {
    /// A comment for the order's history only (an analyst's note): keep
    /// the order's status (`status` is the one of its current outcome),
    /// notify nobody, check no amount, create no invoice. The dispatcher
    /// builds these with `previous_outcome == Some(outcome)`, which no real
    /// move has (the state machine never applies the outcome an order
    /// already has), so no extra field is needed; `notify` is false and
    /// `amount` is `None` for them.
    pub fn is_comment_only(&self) -> bool {
        self.previous_outcome == Some(self.outcome)
    }

    /// Whether this update marks the order paid: the amount check runs
    /// before such a push, when the notification carried an amount.
    pub fn marks_paid(&self) -> bool {
        self.outcome == Outcome::Accepted && !self.is_comment_only()
    }

    /// Whether the amount check runs before this push: it marks the order
    /// paid, carries an amount, and no operator already decided.
    pub fn amount_to_check(&self) -> Option<&Money> {
        self.amount
            .as_ref()
            .filter(|_| self.marks_paid() && !self.by_operator)
    }
}

/// What the shop said when it accepted an update (for the attempt log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    pub detail: String,
    /// The shop took what it could, but a person must finish the job
    /// (e.g. a cancel the shop refuses on an invoiced order): the reason,
    /// shown to operators (WARN, metric, `outbox`, `review list`). The
    /// update is not retried.
    pub needs_operator: Option<String>,
    /// The client applied another outcome than the update's: the amount
    /// check found a mismatch and the order was put in review instead of
    /// being marked paid. The store then records this as the order's
    /// outcome (so `review list` shows it and validate/deny can act).
    pub applied_outcome: Option<Outcome>,
}

impl Pushed {
    pub fn done(detail: impl Into<String>) -> Self {
        Pushed {
            detail: detail.into(),
            needs_operator: None,
            applied_outcome: None,
        }
    }
}

/// Why a push failed, and whether trying again can help.
#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum PushError {
    /// Connect errors, timeouts, 5xx, 429, a session that could not be
    /// renewed right now: retry on the schedule (`retry_after` from the
    /// shop's `Retry-After`, when it sent one).
    #[error("{reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    /// Unknown order, permission denied, invalid status: retrying cannot
    /// help; the row goes dead with the shop's own text.
    #[error("{reason}")]
    Permanent { reason: String },
}

impl PushError {
    pub fn transient(reason: impl Into<String>) -> Self {
        PushError::Transient {
            reason: reason.into(),
            retry_after: None,
        }
    }
    pub fn permanent(reason: impl Into<String>) -> Self {
        PushError::Permanent {
            reason: reason.into(),
        }
    }
    pub fn is_transient(&self) -> bool {
        matches!(self, PushError::Transient { .. })
    }
}

/// Classifies a transport-level failure (no HTTP answer): always transient.
pub fn transport_error(e: reqwest::Error) -> PushError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    // reqwest's Display includes the URL; our URLs carry no secrets in the
    // path, but OpenCart tokens travel in the query, so strip it. Its own
    // text ("error sending request") says nothing: the cause is at the
    // bottom of the source chain ("Connection refused", "dns error…").
    let e = e.without_url();
    PushError::transient(format!("{what}: {}", root_cause(&e)))
}

/// The most specific text in an error's source chain, in plain words for
/// the common I/O causes.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest: &(dyn std::error::Error + 'static) = e;
    let mut io_kind = None;
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        deepest = err;
        current = err.source();
    }
    use std::io::ErrorKind as K;
    match io_kind {
        Some(K::ConnectionRefused) => "connection refused".to_owned(),
        Some(K::ConnectionReset) => "connection reset by the shop".to_owned(),
        Some(K::ConnectionAborted) => "connection aborted".to_owned(),
        Some(K::TimedOut) => "timed out".to_owned(),
        Some(K::UnexpectedEof) => "the shop closed the connection before answering".to_owned(),
        _ => deepest.to_string(),
    }
}

/// Most bytes read from one shop answer. The APIs answer a few KiB at most;
/// a misbehaving shop (or whatever answers in its place) must not make each
/// concurrent push hold hundreds of MB.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// Reads a response body, chunk by chunk, up to `cap` bytes (UTF-8, invalid
/// sequences replaced, as `Response::text` does). A larger answer (declared
/// or sent) is a transient error and the connection is dropped unread:
/// whatever served it may be a proxy's page that goes away.
pub async fn read_body_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<String, PushError> {
    let status = response.status().as_u16();
    let too_large = || {
        PushError::transient(format!(
            "shop answer larger than {cap} bytes (HTTP {status})"
        ))
    };
    if response
        .content_length()
        .is_some_and(|len| len > cap as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport_error)? {
        if body.len() + chunk.len() > cap {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Classifies an HTTP status that is not the API's own answer:
/// 429 and 5xx are transient, other 4xx permanent.
pub fn status_error(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> PushError {
    let snippet: String = body.chars().take(300).collect();
    let reason = format!("HTTP {}: {}", status.as_u16(), snippet.trim());
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error() {
        PushError::Transient {
            reason,
            retry_after: retry_after(headers),
        }
    } else {
        PushError::Permanent { reason }
    }
}

/// Parses `Retry-After` (seconds or an HTTP date).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    at.duration_since(std::time::SystemTime::now()).ok()
}

/// The HTTP client every shop module uses: per-shop timeouts, connection
/// reuse, rustls.
pub fn http_client(cfg: &ShopConfig) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(cfg.connect_timeout)
        .timeout(cfg.timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(cfg.concurrency.max(1))
        .user_agent(concat!("ipnsync/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("TLS backend initialises")
}

/// A configured shop's client.
pub enum ShopClient {
    OpenMage(openmage::OpenMage),
    OpenCart(opencart::OpenCart),
    Magento2(magento2::Magento2),
    Webhook(webhook::Webhook),
}

impl ShopClient {
    pub fn new(cfg: &ShopConfig) -> ShopClient {
        match cfg.kind {
            ShopKind::OpenMage => ShopClient::OpenMage(openmage::OpenMage::new(cfg)),
            ShopKind::OpenCart3 | ShopKind::OpenCart40 | ShopKind::OpenCart41 => {
                ShopClient::OpenCart(opencart::OpenCart::new(cfg))
            }
            ShopKind::Magento2 => ShopClient::Magento2(magento2::Magento2::new(cfg)),
            ShopKind::Webhook => ShopClient::Webhook(webhook::Webhook::new(cfg)),
        }
    }

    pub async fn push(&self, update: &ShopUpdate) -> Result<Pushed, PushError> {
        match self {
            ShopClient::OpenMage(c) => c.push(update).await,
            ShopClient::OpenCart(c) => c.push(update).await,
            ShopClient::Magento2(c) => c.push(update).await,
            ShopClient::Webhook(c) => c.push(update).await,
        }
    }
}
