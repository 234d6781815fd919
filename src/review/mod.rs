//! Review actions: an operator validates or denies a payment held for
//! review, at the gateway and in the shop.
//!
//! One service, [`act`] (and its [`validate`] / [`deny`] shorthands), used
//! by both the CLI (`ipnsync review`) and the admin API ([`http`]):
//!
//! 1. read the order (it must be in `review` or `suspected_fraud`) and the
//!    transactions to act on (`store::review`);
//! 2. claim the order in one short transaction: a `review_actions` row in
//!    state `in_progress`, refused while another action's claim is live, so
//!    a double click, the CLI racing the API or validate racing deny never
//!    reach the gateway twice;
//! 3. ask the gateway of the source that notified it ([`lyra`]: REST V4
//!    Validate, Get or CancelOrRefund; [`cybersource`]: Decision Manager
//!    case action on the notified request id), outside any database
//!    transaction — or skip it with `shop_only` (then 2 and 4 are one
//!    transaction);
//! 4. in a second short transaction: finish the row (`done` or `failed`,
//!    with the gateway's answer) and, on success, move the order (validate
//!    → accepted, deny → canceled) and queue the shop update. If that
//!    transaction fails after the gateway acted, the error says so
//!    ([`ReviewError::ActedNotRecorded`]): retrying would act twice.
//!
//! The gateway then notifies the same change (a MERCH_BO AUTHORISED IPN, a
//! case decision webhook). The state machine ignores it as "order is
//! already accepted/canceled", so the shop is told once.

pub mod cybersource;
pub mod cybersource_read;
pub mod cybersource_tss;
pub mod expiry;
pub mod http;
pub mod lyra;
pub mod lyra_read;
pub mod mpgs_read;

use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Value};
use thiserror::Error;

use crate::config::{Config, ReviewApi};
use crate::domain::comment::format_amount;
use crate::domain::Outcome;
use crate::ops::logging::one_line;
use crate::ops::metrics::GATEWAY_CANCELS;
use crate::store::review::{
    self as store_review, ActionInProgress, ClaimResult, GatewayResult, MovedBy, NewReviewAction,
    OrderMove, RecordedAction, ReviewItem, ReviewTarget, TargetLookup, IN_REVIEW,
};
use crate::store::{inspect, now_ms, StoreError};

/// Longest operator comment accepted (Lyra's `comment` takes 255).
pub const MAX_COMMENT_CHARS: usize = 255;
/// Longest actor name accepted.
pub const MAX_ACTOR_CHARS: usize = 64;
/// How long a claim outlives the longest the gateway calls may take: past
/// that, a claim left by a crashed process no longer blocks the order.
pub const CLAIM_MARGIN: std::time::Duration = std::time::Duration::from_secs(60);

/// What the operator decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Validate,
    Deny,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Validate => "validate",
            Action::Deny => "deny",
        }
    }

    pub fn parse(s: &str) -> Option<Action> {
        match s {
            "validate" => Some(Action::Validate),
            "deny" => Some(Action::Deny),
            _ => None,
        }
    }

    /// The order's outcome once the action succeeded.
    pub fn outcome(self) -> Outcome {
        match self {
            Action::Validate => Outcome::Accepted,
            Action::Deny => Outcome::Canceled,
        }
    }

    fn past(self) -> &'static str {
        match self {
            Action::Validate => "validated",
            Action::Deny => "denied",
        }
    }
}

/// Where the service finds the configuration and the database.
#[derive(Debug, Clone)]
pub struct ReviewContext {
    pub config: Arc<Config>,
    pub db: PathBuf,
}

/// One operator action, as the CLI or the admin API received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRequest {
    pub action: Action,
    pub order_ref: String,
    /// The shop; `None` = the only shop that has this order reference.
    pub shop: Option<String>,
    /// Who asks (recorded, and named in the shop's comment).
    pub actor: String,
    pub comment: Option<String>,
    /// Update the shop without asking the gateway (it was done in the
    /// gateway's back office, or its API is not subscribed).
    pub shop_only: bool,
    /// Cybersource: capture along with ACCEPT (validate only).
    pub capture: bool,
    /// Cybersource: reverse the authorisation along with REJECT (deny only).
    pub reverse: bool,
}

impl ReviewRequest {
    fn check(&self) -> Result<(), ReviewError> {
        let bad = |m: String| Err(ReviewError::BadRequest(m));
        if self.order_ref.trim().is_empty() {
            return bad("the order reference is empty".into());
        }
        if self.actor.trim().is_empty()
            || self.actor.chars().count() > MAX_ACTOR_CHARS
            || self.actor.chars().any(char::is_control)
        {
            return bad(format!(
                "the actor must be 1 to {MAX_ACTOR_CHARS} printable characters"
            ));
        }
        if let Some(c) = &self.comment {
            if c.chars().count() > MAX_COMMENT_CHARS {
                return bad(format!(
                    "the comment is longer than {MAX_COMMENT_CHARS} characters"
                ));
            }
        }
        if self.capture && self.action != Action::Validate {
            return bad("capture goes with validate only".into());
        }
        if self.reverse && self.action != Action::Deny {
            return bad("reverse goes with deny only".into());
        }
        if self.shop_only && (self.capture || self.reverse) {
            return bad(
                "capture and reverse are gateway operations; shop_only asks no gateway".into(),
            );
        }
        Ok(())
    }

    /// The operator's comment without control characters; `None` if blank.
    fn clean_comment(&self) -> Option<String> {
        let c: String = self
            .comment
            .as_deref()?
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let c = c.trim();
        (!c.is_empty()).then(|| c.to_owned())
    }
}

/// What a successful action did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionReport {
    /// The `review_actions` row.
    pub action_id: i64,
    pub action: Action,
    pub shop: String,
    pub order_ref: String,
    /// `lyra`, `cybersource`, or `none` (shop only).
    pub gateway: String,
    /// What the gateway answered, per transaction (empty when shop only).
    pub gateway_status: Vec<String>,
    pub transactions: Vec<String>,
    pub previous_outcome: Outcome,
    /// The order's outcome now.
    pub outcome: Option<Outcome>,
    /// Whether this action moved the order (not if the gateway's own
    /// notification got there first).
    pub moved: bool,
    /// The queued shop update.
    pub outbox_id: Option<i64>,
    /// Something the operator should know (what was not done).
    pub note: Option<String>,
}

/// Why an action was not done. Each maps to an HTTP status and a CLI exit
/// code. No variant ever carries a secret: gateway texts are the gateway's
/// answers, and requests are never echoed.
#[derive(Debug, Error)]
pub enum ReviewError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    UnknownOrder(String),
    #[error("order {order:?} exists in several shops ({}): name the shop", shops.join(", "))]
    AmbiguousOrder { order: String, shops: Vec<String> },
    #[error("order {order:?} is {outcome}, not in review or suspected_fraud: nothing to {action}")]
    NotInReview {
        order: String,
        outcome: Outcome,
        action: &'static str,
    },
    /// No API credentials for the order's source.
    #[error("{0}")]
    NotConfigured(String),
    /// The shop has no web-service subscription at the gateway (Lyra
    /// `PSP_100`): the operator must act in the back office.
    #[error("{gateway} refused: {message}. The gateway's web services are not subscribed for this shop: {action} the payment in the {gateway} back office, then update the shop with shop_only (CLI: --shop-only)")]
    NotSubscribed {
        gateway: &'static str,
        action: &'static str,
        message: String,
    },
    #[error("{gateway} refused to {action}: {message}")]
    Refused {
        gateway: &'static str,
        action: &'static str,
        message: String,
    },
    #[error("{gateway} could not be reached: {message}")]
    Unreachable {
        gateway: &'static str,
        message: String,
    },
    /// Another action holds the order (its gateway call is under way).
    #[error("order {order:?}: {} by {} is already under way (review action #{}, started {}s ago): nothing was done; check the order once it is finished", busy.action, busy.actor, busy.id, (now_ms() - busy.created_at).max(0) / 1000)]
    InProgress {
        order: String,
        busy: ActionInProgress,
    },
    /// No Decision Manager request id was notified for the order: the case
    /// cannot be named to the API (the order number is not its id).
    #[error("Cybersource: order {order:?} has no Decision Manager request id (its notification carried no payload.data.id or requestId), so the case cannot be acted on through the API: {action} it in the Business Center's Case Management, then update the shop with shop_only (CLI: --shop-only)")]
    NoDecisionId { order: String, action: &'static str },
    /// The gateway did the action, but recording it (and moving the order)
    /// failed: retrying would ask the gateway again.
    #[error("{gateway} acted ({done}) but ipnsync could not record it: {message}; do not retry, check the order (once the payment is confirmed, update the shop with shop_only, CLI: --shop-only)")]
    ActedNotRecorded {
        gateway: &'static str,
        done: String,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ReviewError {
    /// The admin API's answer.
    pub fn http_status(&self) -> u16 {
        match self {
            ReviewError::BadRequest(_)
            | ReviewError::AmbiguousOrder { .. }
            | ReviewError::NotConfigured(_) => 400,
            ReviewError::UnknownOrder(_) => 404,
            ReviewError::NotInReview { .. }
            | ReviewError::InProgress { .. }
            | ReviewError::NoDecisionId { .. } => 409,
            ReviewError::NotSubscribed { .. }
            | ReviewError::Refused { .. }
            | ReviewError::Unreachable { .. } => 502,
            ReviewError::ActedNotRecorded { .. }
            | ReviewError::Store(_)
            | ReviewError::Internal(_) => 500,
        }
    }

    /// A stable machine-readable code for the admin API's JSON.
    pub fn code(&self) -> &'static str {
        match self {
            ReviewError::BadRequest(_) => "bad_request",
            ReviewError::AmbiguousOrder { .. } => "ambiguous_order",
            ReviewError::NotConfigured(_) => "gateway_not_configured",
            ReviewError::UnknownOrder(_) => "unknown_order",
            ReviewError::NotInReview { .. } => "not_in_review",
            ReviewError::NotSubscribed { .. } => "gateway_not_subscribed",
            ReviewError::Refused { .. } => "gateway_refused",
            ReviewError::Unreachable { .. } => "gateway_unreachable",
            ReviewError::InProgress { .. } => "action_in_progress",
            ReviewError::NoDecisionId { .. } => "no_decision_id",
            ReviewError::ActedNotRecorded { .. } => "gateway_acted_not_recorded",
            ReviewError::Store(_) => "database",
            ReviewError::Internal(_) => "internal",
        }
    }
}

/// Why a gateway call failed (the clients' error; [`act`] adds context).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum GatewayError {
    /// Web services not subscribed (Lyra `PSP_100`).
    #[error("{0}")]
    NotSubscribed(String),
    /// The gateway answered and said no, or answered something unexpected.
    #[error("{0}")]
    Refused(String),
    /// No usable answer: connection, timeout, a 5xx.
    #[error("{0}")]
    Unreachable(String),
}

/// Validates a payment (see [`act`]).
pub async fn validate(
    ctx: &ReviewContext,
    mut request: ReviewRequest,
) -> Result<ActionReport, ReviewError> {
    request.action = Action::Validate;
    act(ctx, request).await
}

/// Denies a payment (see [`act`]).
pub async fn deny(
    ctx: &ReviewContext,
    mut request: ReviewRequest,
) -> Result<ActionReport, ReviewError> {
    request.action = Action::Deny;
    act(ctx, request).await
}

/// Does one review action: claim the order, ask the gateway, then record
/// the answer, move the order and queue the shop update. A gateway failure
/// is recorded on the order's timeline, changes nothing else, and is
/// returned.
pub async fn act(ctx: &ReviewContext, request: ReviewRequest) -> Result<ActionReport, ReviewError> {
    request.check()?;
    let (target, cancel_only) = find_target(ctx, &request).await?;
    let comment = request.clean_comment();
    let action = request.action;
    // A cancellation at the gateway leaves the order as it is (it is
    // already rejected or canceled in the shop).
    let to = if cancel_only {
        target.outcome
    } else {
        action.outcome()
    };
    let record = OwnedAction {
        shop: target.shop.clone(),
        order_ref: target.order_ref.clone(),
        action,
        actor: request.actor.clone(),
        comment: comment.clone(),
        gateway: "none",
    };

    if request.shop_only {
        // Nothing to wait for: the claim and the record are one transaction.
        let text = shop_comment(&request, None, &target, &[], &[], comment.as_deref());
        let (db, from) = (ctx.db.clone(), target.outcome);
        let recorded = blocking(move || {
            let mut conn = inspect::open_operator(&db)?;
            let order_move = OrderMove {
                from,
                to,
                comment: &text,
            };
            store_review::record_shop_only(&mut conn, &record.borrow(), &order_move)
        })
        .await?
        .map_err(|refused| claim_refused(&request, refused))?;
        return Ok(report(&request, "none", target, Vec::new(), recorded));
    }

    let api = review_api(&ctx.config, &target)?.clone();
    let gateway = api.gateway();
    let record = OwnedAction { gateway, ..record };
    // What to send each gateway, checked before anything is claimed.
    let (lyra_transactions, decisions, timeout) = match &api {
        ReviewApi::Lyra(l) => {
            let t: Vec<(String, String)> = target
                .transactions
                .iter()
                .zip(&target.states)
                .map(|(t, s)| (t.clone(), s.lyra_status.clone()))
                .collect();
            (t, Vec::new(), l.timeout)
        }
        ReviewApi::Cybersource(c) => (Vec::new(), decision_ids(&target, action)?, c.timeout),
    };
    // At most two calls per transaction (Lyra: Get, then Validate).
    let calls = 2 * target.transactions.len().max(1) as u32;
    let expires_at = now_ms() + (timeout * calls + CLAIM_MARGIN).as_millis() as i64;

    let claimed = {
        let (db, record, from) = (ctx.db.clone(), record.clone(), target.outcome);
        blocking(move || {
            let mut conn = inspect::open_operator(&db)?;
            store_review::claim_order(&mut conn, &record.borrow(), from, expires_at)
        })
        .await?
    };
    let claimed = match claimed {
        ClaimResult::Claimed(c) => c,
        refused => return Err(claim_refused(&request, refused)),
    };

    let text = gateway_comment(&request.actor, comment.as_deref());
    let answer: Result<Vec<(String, String)>, GatewayError> = match &api {
        ReviewApi::Lyra(api) => {
            lyra::act(api, action, &lyra_transactions, &text)
                .await
                .map(|done| {
                    done.into_iter()
                        .map(|d| (d.service.to_owned(), d.status))
                        .collect()
                })
        }
        ReviewApi::Cybersource(api) => {
            let follow_up = request.capture || request.reverse;
            let call = cybersource_call(&request);
            cybersource::act(api, action, &decisions, &text, follow_up)
                .await
                .map(|statuses| statuses.into_iter().map(|s| (call.clone(), s)).collect())
        }
    };

    let statuses: Vec<String> = match &answer {
        Ok(done) => done.iter().map(|(_, s)| s.clone()).collect(),
        Err(_) => Vec::new(),
    };
    let ids = match &api {
        ReviewApi::Lyra(_) => target.transactions.clone(),
        ReviewApi::Cybersource(_) => decisions.clone(),
    };
    let call = match &answer {
        Ok(done) => Some(call_text(gateway, done)),
        Err(_) => None,
    };
    let error = answer.as_ref().err().map(ToString::to_string);
    let text = shop_comment(
        &request,
        call.as_deref(),
        &target,
        &ids,
        &statuses,
        comment.as_deref(),
    );
    let finished = {
        let (db, record, from) = (ctx.db.clone(), record.clone(), target.outcome);
        let status = (!statuses.is_empty()).then(|| statuses.join(", "));
        let error = error.clone();
        let claimed = claimed.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inspect::open_operator(&db)?;
            let order_move = OrderMove {
                from,
                to,
                comment: &text,
            };
            let result = GatewayResult {
                gateway_status: status.as_deref(),
                error: error.as_deref(),
            };
            store_review::finish_action(
                &mut conn,
                &record.borrow(),
                &claimed,
                &result,
                (!cancel_only).then_some(&order_move),
            )
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("the recording task failed: {e}")))
        .and_then(|r| r)
    };

    let recorded = match (answer, finished) {
        (Ok(_), Ok(recorded)) => recorded,
        (Ok(_), Err(e)) => {
            let done: Vec<String> = ids
                .iter()
                .zip(&statuses)
                .map(|(t, s)| format!("{t} → {s}"))
                .collect();
            tracing::error!(
                order = %one_line(&target.order_ref), shop = %one_line(&target.shop), action = action.as_str(),
                review_action = claimed.id, error = %one_line(&e.to_string()),
                "the gateway acted but the review action could not be recorded"
            );
            return Err(ReviewError::ActedNotRecorded {
                gateway: gateway_name(gateway),
                done: format!("{} {}", action.as_str(), done.join(", ")),
                message: e.to_string(),
            });
        }
        (Err(g), finished) => {
            if let Err(e) = finished {
                tracing::warn!(
                    order = %one_line(&target.order_ref), shop = %one_line(&target.shop), review_action = claimed.id,
                    error = %one_line(&e.to_string()), "a failed review action could not be recorded"
                );
            }
            return Err(gateway_error(gateway, action, g));
        }
    };
    let mut report = report(&request, gateway, target, statuses, recorded);
    if cancel_only {
        report.note = Some(format!(
            "the order stays {}: its transaction, still alive at the gateway after the risk verdict, is now cancelled there and will not be captured",
            report.previous_outcome
        ));
    }
    Ok(report)
}

/// The actor of the automatic cancellations (`cancel_at_gateway`).
pub const AUTOMATIC_ACTOR: &str = "ipnsync (automatic)";

/// Cancels at the gateway the transaction of a risk-rejected order that is
/// still alive there (the source's `cancel_at_gateway`): the same path as
/// an operator's `review deny`, recorded on the order's timeline as a
/// review action by [`AUTOMATIC_ACTOR`]. A failure leaves the order in
/// `review list` as "cancel at the gateway".
pub async fn cancel_at_gateway(
    ctx: &ReviewContext,
    shop: &str,
    order_ref: &str,
) -> Result<ActionReport, ReviewError> {
    act(
        ctx,
        ReviewRequest {
            action: Action::Deny,
            order_ref: order_ref.to_owned(),
            shop: Some(shop.to_owned()),
            actor: AUTOMATIC_ACTOR.to_owned(),
            comment: Some(
                "risk verdict rejected the order; cancelling the authorisation so that it is not captured"
                    .to_owned(),
            ),
            shop_only: false,
            capture: false,
            reverse: false,
        },
    )
    .await
}

/// What the daemon does right after committing a risk rejection of a
/// transaction still alive at the gateway: cancel it there (in the
/// background, when the source's `cancel_at_gateway` is on), or say loudly
/// that someone must (WARN, metric; the order is in `review list`).
pub fn after_live_rejection(
    config: std::sync::Arc<Config>,
    source: &crate::config::SourceConfig,
    shop: &str,
    order_ref: &str,
) {
    let (shop, order_ref) = (shop.to_owned(), order_ref.to_owned());
    if !source.cancel_at_gateway {
        metrics::counter!(GATEWAY_CANCELS, "source" => source.name.clone(), "result" => "to_do")
            .increment(1);
        tracing::warn!(
            source = %source.name, shop = %one_line(&shop), order = %one_line(&order_ref),
            "the risk verdict rejected the order but its transaction is still alive at the gateway, which will capture it: cancel it (ipnsync review deny ORDER, or the gateway's back office)"
        );
        return;
    }
    let source_name = source.name.clone();
    let ctx = ReviewContext {
        db: config.database.clone(),
        config,
    };
    tokio::spawn(async move {
        let result = cancel_at_gateway(&ctx, &shop, &order_ref).await;
        let label = if result.is_ok() {
            "cancelled"
        } else {
            "failed"
        };
        metrics::counter!(GATEWAY_CANCELS, "source" => source_name.clone(), "result" => label)
            .increment(1);
        match result {
            Ok(r) => tracing::info!(
                source = %source_name, shop = %one_line(&shop), order = %one_line(&order_ref), review_action = r.action_id,
                status = %one_line(&r.gateway_status.join(", ")),
                "transaction of a risk-rejected order cancelled at the gateway"
            ),
            Err(e) => tracing::warn!(
                source = %source_name, shop = %one_line(&shop), order = %one_line(&order_ref), error = %one_line(&e.to_string()),
                "could not cancel the transaction of a risk-rejected order at the gateway: it stays in `review list` as \"cancel at the gateway\""
            ),
        }
    });
}

/// The action's columns, owned, to move into a blocking task.
#[derive(Debug, Clone)]
struct OwnedAction {
    shop: String,
    order_ref: String,
    action: Action,
    actor: String,
    comment: Option<String>,
    gateway: &'static str,
}

impl OwnedAction {
    fn borrow(&self) -> NewReviewAction<'_> {
        NewReviewAction {
            shop: &self.shop,
            order_ref: &self.order_ref,
            action: self.action.as_str(),
            actor: &self.actor,
            comment: self.comment.as_deref(),
            gateway: self.gateway,
        }
    }
}

/// The Decision Manager request ids to act on, one per transaction. The
/// order number (what `transaction_id` falls back to when the webhook named
/// no request id) is never one: without an id, the action is refused.
fn decision_ids(target: &ReviewTarget, action: Action) -> Result<Vec<String>, ReviewError> {
    let ids: Vec<String> = target.states.iter().map(|s| s.request_id.clone()).collect();
    if ids.is_empty() || ids.iter().any(String::is_empty) {
        return Err(ReviewError::NoDecisionId {
            order: target.order_ref.clone(),
            action: action.as_str(),
        });
    }
    Ok(ids)
}

/// Why a claim was refused, as an error.
fn claim_refused(request: &ReviewRequest, refused: ClaimResult) -> ReviewError {
    match refused {
        ClaimResult::Busy(busy) => ReviewError::InProgress {
            order: request.order_ref.clone(),
            busy,
        },
        ClaimResult::Moved(Some(outcome)) => ReviewError::NotInReview {
            order: request.order_ref.clone(),
            outcome,
            action: request.action.as_str(),
        },
        ClaimResult::Moved(None) => {
            ReviewError::UnknownOrder(format!("order {:?} is unknown", request.order_ref))
        }
        ClaimResult::Claimed(_) => ReviewError::Internal("a granted claim was refused".into()),
    }
}

/// The report of a recorded action.
fn report(
    request: &ReviewRequest,
    gateway: &str,
    target: ReviewTarget,
    statuses: Vec<String>,
    recorded: RecordedAction,
) -> ActionReport {
    let action = request.action;
    let now = recorded.outcome.map_or("gone", Outcome::as_str);
    let note = if request.shop_only {
        Some(format!(
            "shop only: the gateway was not asked; make sure the payment is {} in its back office",
            action.past()
        ))
    } else {
        match &recorded.moved_by {
            None => None,
            Some(MovedBy::Notification { event_id })
                if recorded.outcome == Some(action.outcome()) =>
            {
                Some(format!(
                    "the order was already {now} (the gateway's notification arrived first, event {event_id}): no second shop update"
                ))
            }
            Some(MovedBy::Notification { event_id }) => Some(format!(
                "a notification (event {event_id}) moved the order to {now} while the gateway was called: this action queued no shop update; check the order"
            )),
            Some(MovedBy::ReviewAction { id, actor }) => Some(format!(
                "review action #{id} by {actor} moved the order to {now} while the gateway was called: this action queued no shop update; check the order"
            )),
            Some(MovedBy::Unknown) => Some(format!(
                "the order became {now} while the gateway was called: this action queued no shop update; check the order"
            )),
        }
    };
    ActionReport {
        action_id: recorded.id,
        action,
        shop: target.shop,
        order_ref: target.order_ref,
        gateway: gateway.to_owned(),
        gateway_status: statuses,
        transactions: if request.shop_only {
            Vec::new()
        } else {
            target.transactions
        },
        previous_outcome: target.outcome,
        outcome: recorded.outcome,
        moved: recorded.moved,
        outbox_id: recorded.outbox_id,
        note,
    }
}

/// The orders waiting for a human, the longest waiting first.
pub async fn queue(
    ctx: &ReviewContext,
    shop: Option<String>,
) -> Result<Vec<ReviewItem>, ReviewError> {
    let db = ctx.db.clone();
    blocking(move || {
        let conn = inspect::open_read(&db)?;
        store_review::review_queue(&conn, shop.as_deref())
    })
    .await
}

/// The order an action is about, and whether it is a cancellation at the
/// gateway of a risk-rejected order (deny only): the order keeps its
/// outcome, only the transaction is cancelled.
async fn find_target(
    ctx: &ReviewContext,
    request: &ReviewRequest,
) -> Result<(ReviewTarget, bool), ReviewError> {
    let db = ctx.db.clone();
    let (shop, order) = (request.shop.clone(), request.order_ref.clone());
    let deny = request.action == Action::Deny;
    let (lookup, pending) = blocking(move || {
        let conn = inspect::open_read(&db)?;
        let lookup = store_review::review_target(&conn, shop.as_deref(), &order)?;
        let pending = match &lookup {
            TargetLookup::Found(t) if deny && !IN_REVIEW.contains(&t.outcome) => {
                store_review::pending_gateway_cancel(&conn, &t.shop, &t.order_ref)?
            }
            _ => None,
        };
        Ok::<_, StoreError>((lookup, pending))
    })
    .await?;
    let order = request.order_ref.clone();
    let target = match lookup {
        TargetLookup::Found(t) => t,
        TargetLookup::Unknown => {
            return Err(ReviewError::UnknownOrder(match &request.shop {
                Some(shop) => format!("order {order:?} of shop {shop:?} is unknown"),
                None => format!("order {order:?} is unknown"),
            }))
        }
        TargetLookup::Ambiguous(shops) => return Err(ReviewError::AmbiguousOrder { order, shops }),
    };
    if let Some((transaction, status)) = pending {
        // Only the transaction that the risk verdict was about.
        let target = ReviewTarget {
            transactions: vec![transaction],
            states: vec![store_review::TransactionState {
                lyra_status: status,
                ..Default::default()
            }],
            ..target
        };
        return Ok((target, true));
    }
    if !IN_REVIEW.contains(&target.outcome) {
        return Err(ReviewError::NotInReview {
            order,
            outcome: target.outcome,
            action: request.action.as_str(),
        });
    }
    Ok((target, false))
}

fn review_api<'a>(config: &'a Config, target: &ReviewTarget) -> Result<&'a ReviewApi, ReviewError> {
    let source = config
        .sources
        .iter()
        .find(|s| s.name == target.source)
        .ok_or_else(|| {
            ReviewError::NotConfigured(format!(
                "order {:?} was notified by source {:?}, which is not in the configuration: act in the gateway's back office, then use shop_only (CLI: --shop-only)",
                target.order_ref, target.source
            ))
        })?;
    source.review_api.as_ref().ok_or_else(|| {
        let keys = match source.kind {
            crate::config::SourceKind::Cybersource
            | crate::config::SourceKind::CybersourceCmos => {
                "api_host, merchant_id, api_key_id and api_shared_secret"
            }
            crate::config::SourceKind::LyraForm | crate::config::SourceKind::LyraRest => {
                "api_url and rest_password"
            }
            _ => "nothing: this kind of source has no review API",
        };
        ReviewError::NotConfigured(format!(
            "source {:?} has no review API configured (it needs {keys}): act in the gateway's back office, then use shop_only (CLI: --shop-only)",
            source.name
        ))
    })
}

fn gateway_error(gateway: &'static str, action: Action, e: GatewayError) -> ReviewError {
    let gateway = gateway_name(gateway);
    match e {
        GatewayError::NotSubscribed(message) => ReviewError::NotSubscribed {
            gateway,
            action: action.as_str(),
            message,
        },
        GatewayError::Refused(message) => ReviewError::Refused {
            gateway,
            action: action.as_str(),
            message,
        },
        GatewayError::Unreachable(message) => ReviewError::Unreachable { gateway, message },
    }
}

fn gateway_name(gateway: &str) -> &'static str {
    match gateway {
        "lyra" => "Lyra",
        "cybersource" => "Cybersource",
        _ => "the gateway",
    }
}

/// What the gateway records as the reason (the back office shows it).
fn gateway_comment(actor: &str, comment: Option<&str>) -> String {
    match comment {
        Some(c) => format!("ipnsync operator {actor}: {c}"),
        None => format!("ipnsync operator {actor}"),
    }
}

/// The Cybersource call, in words.
fn cybersource_call(request: &ReviewRequest) -> String {
    match request.action {
        Action::Validate if request.capture => "Decision Manager ACCEPT with CAPTURE",
        Action::Validate => "Decision Manager ACCEPT",
        Action::Deny if request.reverse => "Decision Manager REJECT with REVERSE",
        Action::Deny => "Decision Manager REJECT",
    }
    .to_owned()
}

/// The gateway calls that settled the transactions, in words:
/// `Lyra Transaction/Validate`, `Cybersource Decision Manager ACCEPT`…
fn call_text(gateway: &str, done: &[(String, String)]) -> String {
    let mut calls: Vec<&str> = Vec::new();
    for (call, _) in done {
        if !calls.contains(&call.as_str()) {
            calls.push(call);
        }
    }
    let calls: Vec<String> = calls
        .into_iter()
        .map(|c| {
            if c == lyra::GET {
                format!("{c} (a successful payment, accepted despite the fraud flag)")
            } else {
                c.to_owned()
            }
        })
        .collect();
    format!("{} {}", gateway_name(gateway), calls.join(" + "))
}

/// The shop's order-history comment, in words. `call` is `None` for a
/// shop-only action; `ids` are what the gateway was asked about.
fn shop_comment(
    request: &ReviewRequest,
    call: Option<&str>,
    target: &ReviewTarget,
    ids: &[String],
    statuses: &[String],
    comment: Option<&str>,
) -> String {
    let action = request.action;
    let what = match call {
        None => format!(
            "in the shop only, {} was not asked (done in its back office)",
            gateway_name_for_source(&target.provider)
        ),
        Some(call) => {
            let per_transaction: Vec<String> = ids
                .iter()
                .zip(statuses)
                .map(|(t, s)| format!("transaction {t} → {s}"))
                .collect();
            format!("{call}, {}", per_transaction.join(", "))
        }
    };
    let mut text = format!(
        "Payment {} by operator {} via ipnsync: {what}.",
        action.past(),
        request.actor
    );
    if let Some(c) = comment {
        text.push_str(&format!(" Comment: “{c}”"));
    }
    text
}

/// Prefixes an error with what was already acted on (`(id, status)`), if
/// anything: those cannot be undone from here.
fn partial(e: GatewayError, done: &[(String, String)], failed: &str) -> GatewayError {
    if done.is_empty() {
        return e;
    }
    let ok: Vec<String> = done.iter().map(|(t, s)| format!("{t} → {s}")).collect();
    let text = |m: String| {
        format!(
            "transaction {failed}: {m} (already done: {})",
            ok.join(", ")
        )
    };
    match e {
        GatewayError::NotSubscribed(m) => GatewayError::NotSubscribed(text(m)),
        GatewayError::Refused(m) => GatewayError::Refused(text(m)),
        GatewayError::Unreachable(m) => GatewayError::Unreachable(text(m)),
    }
}

fn gateway_name_for_source(provider: &str) -> &'static str {
    match provider {
        "lyra-form" | "lyra-rest" => "Lyra",
        "cybersource" => "Cybersource",
        "mpgs" => "Mastercard Gateway",
        _ => "the gateway",
    }
}

/// Runs database work off the async runtime (the daemon's admin API shares
/// it with intake).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, ReviewError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ReviewError::Internal(e.to_string()))?
        .map_err(ReviewError::Store)
}

/// The client for one action: the source's timeout for the whole call,
/// no redirects (a redirect would re-send the credentials elsewhere).
fn http_client(timeout: std::time::Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(timeout.min(std::time::Duration::from_secs(10)))
        .timeout(timeout)
        .user_agent(concat!("ipnsync/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("TLS backend initialises")
}

/// A request that got no HTTP answer. reqwest's text carries the URL,
/// which holds no secret here, but is dropped to keep messages short.
fn transport_error(e: reqwest::Error) -> GatewayError {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    // The innermost cause says what happened ("Connection refused").
    let e = e.without_url();
    let mut cause: &dyn std::error::Error = &e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    let detail = if cause.to_string() == e.to_string() {
        e.to_string()
    } else {
        format!("{e}: {cause}")
    };
    GatewayError::Unreachable(format!("{what}: {detail}"))
}

/// Reads a gateway's answer, at most [`crate::shops::MAX_ANSWER_BYTES`]: a
/// misbehaving endpoint cannot make the daemon hold an unbounded body.
async fn read_answer(response: reqwest::Response) -> Result<String, GatewayError> {
    crate::shops::read_body_capped(response, crate::shops::MAX_ANSWER_BYTES)
        .await
        .map_err(|e| GatewayError::Unreachable(e.to_string()))
}

/// The first characters of a body that is not the expected JSON.
fn snippet(body: &str) -> String {
    let s: String = body.chars().take(200).collect();
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

// -------------------------------------------------------------------- JSON

/// The JSON of a successful action (CLI `--json` and the admin API).
pub fn report_json(r: &ActionReport) -> Value {
    json!({
        "action_id": r.action_id,
        "action": r.action.as_str(),
        "shop": r.shop,
        "order": r.order_ref,
        "gateway": r.gateway,
        "gateway_status": r.gateway_status,
        "transactions": r.transactions,
        "previous_outcome": r.previous_outcome.as_str(),
        "outcome": r.outcome.map(Outcome::as_str),
        "moved": r.moved,
        "outbox_id": r.outbox_id,
        "note": r.note,
    })
}

/// The JSON of the review queue at `now` (ms).
pub fn queue_json(items: &[ReviewItem], now: i64) -> Value {
    Value::Array(
        items
            .iter()
            .map(|i| {
                let expires = expiry::authorisation_expires_at(i);
                json!({
                    "shop": i.shop,
                    "order": i.order_ref,
                    "outcome": i.outcome.as_str(),
                    "action_needed": i.action_needed,
                    "source": i.source,
                    "provider": i.provider,
                    "transaction_id": i.transaction_id,
                    "amount_minor": i.amount_minor,
                    "currency": i.currency,
                    "amount": i.amount_minor.map(|m| format_amount(m, &i.currency)),
                    "since": i.since,
                    "age_seconds": (now - i.since).max(0) / 1000,
                    "authorisation_expires_at": expires,
                    "time_left_seconds": expires.map(|e| (e - now) / 1000),
                })
            })
            .collect(),
    )
}

/// The JSON error body of the admin API.
pub fn error_json(e: &ReviewError) -> Value {
    json!({ "error": e.code(), "message": e.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(action: Action) -> ReviewRequest {
        ReviewRequest {
            action,
            order_ref: "100042".into(),
            shop: None,
            actor: "alice".into(),
            comment: Some("called\nthe buyer".into()),
            shop_only: false,
            capture: false,
            reverse: false,
        }
    }

    #[test]
    fn requests_are_checked_before_anything_happens() {
        assert!(request(Action::Validate).check().is_ok());
        let mut r = request(Action::Deny);
        r.capture = true;
        assert!(matches!(r.check(), Err(ReviewError::BadRequest(_))));
        let mut r = request(Action::Validate);
        r.actor = "x".repeat(MAX_ACTOR_CHARS + 1);
        assert!(r.check().is_err());
        let mut r = request(Action::Validate);
        r.comment = Some("c".repeat(MAX_COMMENT_CHARS + 1));
        assert_eq!(r.check().unwrap_err().http_status(), 400);
        let mut r = request(Action::Validate);
        r.shop_only = true;
        r.capture = true;
        assert!(r.check().is_err());
        assert_eq!(
            request(Action::Validate).clean_comment().as_deref(),
            Some("called the buyer")
        );
    }

    #[test]
    fn the_shop_comment_says_who_did_what_in_words() {
        let target = ReviewTarget {
            shop: "main".into(),
            order_ref: "100042".into(),
            outcome: Outcome::Review,
            source: "lyra".into(),
            provider: "lyra-form".into(),
            transaction_id: "u1".into(),
            transactions: vec!["u1".into()],
            states: vec![Default::default()],
        };
        let r = request(Action::Validate);
        let done = [("Transaction/Validate".to_owned(), "AUTHORISED".to_owned())];
        let call = call_text("lyra", &done);
        let ids = ["u1".to_owned()];
        let c = shop_comment(
            &r,
            Some(&call),
            &target,
            &ids,
            &["AUTHORISED".into()],
            Some("ok"),
        );
        assert_eq!(
            c,
            "Payment validated by operator alice via ipnsync: Lyra Transaction/Validate, transaction u1 → AUTHORISED. Comment: “ok”"
        );
        let done = [("Transaction/Get".to_owned(), "CAPTURED".to_owned())];
        assert_eq!(
            call_text("lyra", &done),
            "Lyra Transaction/Get (a successful payment, accepted despite the fraud flag)"
        );
        let mut r = request(Action::Deny);
        r.shop_only = true;
        let c = shop_comment(&r, None, &target, &[], &[], None);
        assert_eq!(
            c,
            "Payment denied by operator alice via ipnsync: in the shop only, Lyra was not asked (done in its back office)."
        );
    }

    #[test]
    fn errors_map_to_http_statuses_and_codes() {
        let e = gateway_error(
            "lyra",
            Action::Validate,
            GatewayError::NotSubscribed("PSP_100: web services not subscribed".into()),
        );
        assert_eq!((e.http_status(), e.code()), (502, "gateway_not_subscribed"));
        assert!(e.to_string().contains("back office"), "{e}");
        let e = ReviewError::NotInReview {
            order: "1".into(),
            outcome: Outcome::Accepted,
            action: "validate",
        };
        assert_eq!(e.http_status(), 409);
        let e = ReviewError::ActedNotRecorded {
            gateway: "Lyra",
            done: "validate u1 → AUTHORISED".into(),
            message: "database: disk I/O error".into(),
        };
        assert_eq!(
            (e.http_status(), e.code()),
            (500, "gateway_acted_not_recorded")
        );
        assert_eq!(
            e.to_string(),
            "Lyra acted (validate u1 → AUTHORISED) but ipnsync could not record it: database: disk I/O error; do not retry, check the order (once the payment is confirmed, update the shop with shop_only, CLI: --shop-only)"
        );
    }

    #[test]
    fn a_partial_failure_names_what_was_already_done() {
        let e = partial(
            GatewayError::Refused("PSP_010: no".into()),
            &[("a".into(), "AUTHORISED".into())],
            "b",
        );
        assert_eq!(
            e.to_string(),
            "transaction b: PSP_010: no (already done: a → AUTHORISED)"
        );
        let e = GatewayError::Unreachable("timed out".into());
        assert_eq!(partial(e.clone(), &[], "a"), e);
    }
}
