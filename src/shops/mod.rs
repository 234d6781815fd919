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
    ///
    /// `unanswered`: a request went out and no answer came back (a
    /// timeout, a dropped connection): the shop may still be working on
    /// it, so the next attempt waits at least the shop's timeout before it
    /// reads the order to see whether it was applied (`dispatch::classify`).
    #[error("{reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
        unanswered: bool,
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
            unanswered: false,
        }
    }
    /// A request that went out and got no answer in time: the shop may
    /// still apply it.
    pub fn unanswered(reason: impl Into<String>) -> Self {
        PushError::Transient {
            reason: reason.into(),
            retry_after: None,
            unanswered: true,
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

// The shop modules' HTTP plumbing is `crate::outbound`'s; these wrappers
// only say it in the dispatcher's terms (transient / permanent).

use crate::outbound::{self, ClientOptions, OutboundError, Redirects};
pub use crate::outbound::{retry_after, MAX_ANSWER_BYTES};

impl From<OutboundError> for PushError {
    /// Retryable failures (transport, oversized answers, 429, 5xx) are
    /// transient, with the shop's `Retry-After`; any other status is the
    /// shop's final word.
    fn from(e: OutboundError) -> Self {
        let reason = match &e {
            OutboundError::TooLarge { .. } => format!("shop {e}"),
            _ => e.to_string(),
        };
        if e.is_retryable() {
            PushError::Transient {
                reason,
                retry_after: e.retry_after(),
                unanswered: e.unanswered(),
            }
        } else {
            PushError::Permanent { reason }
        }
    }
}

/// Classifies a transport-level failure (no HTTP answer): always transient.
pub fn transport_error(e: reqwest::Error) -> PushError {
    OutboundError::transport(e).into()
}

/// Reads a shop's answer, at most `cap` bytes ([`outbound::read_body_capped`]);
/// a larger one is a transient error.
pub async fn read_body_capped(
    response: reqwest::Response,
    cap: usize,
) -> Result<String, PushError> {
    Ok(outbound::read_body_capped(response, cap).await?)
}

/// Classifies an HTTP status that is not the API's own answer:
/// 429 and 5xx are transient, other 4xx permanent.
pub fn status_error(
    status: reqwest::StatusCode,
    headers: &reqwest::header::HeaderMap,
    body: &str,
) -> PushError {
    OutboundError::status(status, headers, body).into()
}

/// The HTTP client every shop module uses: per-shop timeouts, connection
/// reuse (as many idle connections as pushes may run at once), no
/// redirects.
pub fn http_client(cfg: &ShopConfig) -> reqwest::Client {
    outbound::client(&ClientOptions {
        timeout: cfg.timeout,
        connect_timeout: Some(cfg.connect_timeout),
        idle_per_host: Some(cfg.concurrency),
        redirects: Redirects::None,
    })
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
