//! The orchestration of one action: check the request, find the order,
//! claim it, ask its gateway (any [`super::ActionGateway`]: no match on the
//! platform here), record the answer.

use super::comment::{call_text, gateway_comment, gateway_name, shop_comment};
use super::error::gateway_error;
use super::gateway;
use super::report::report;
use super::{
    Action, ActionReport, GatewayError, ReviewContext, ReviewError, ReviewRequest, CLAIM_MARGIN,
};
use crate::config::{Config, ReviewApi};
use crate::ops::logging::one_line;
use crate::store::claims::{self, ClaimResult, GatewayResult, NewReviewAction, OrderMove};
use crate::store::read::review_queue::{
    self as store_review, ReviewItem, ReviewTarget, TargetLookup, IN_REVIEW,
};
use crate::store::{now_ms, operator, read, StoreError};

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
            let mut conn = operator::open_operator(&db)?;
            let order_move = OrderMove {
                from,
                to,
                comment: &text,
            };
            claims::record_shop_only(&mut conn, &record.borrow(), &order_move)
        })
        .await?
        .map_err(|refused| claim_refused(&request, refused))?;
        return Ok(report(&request, "none", target, Vec::new(), recorded));
    }

    let gateway = gateway::for_review(review_api(&ctx.config, &target)?);
    let record = OwnedAction {
        gateway: gateway.id(),
        ..record
    };
    // What to send the gateway, checked before anything is claimed.
    let subjects = gateway.subjects(&target, action)?;
    // At most two calls per transaction (Lyra: Get, then Validate).
    let calls = 2 * target.transactions.len().max(1) as u32;
    let expires_at = now_ms() + (gateway.timeout() * calls + CLAIM_MARGIN).as_millis() as i64;

    let claimed = {
        let (db, record, from) = (ctx.db.clone(), record.clone(), target.outcome);
        blocking(move || {
            let mut conn = operator::open_operator(&db)?;
            claims::claim_order(&mut conn, &record.borrow(), from, expires_at)
        })
        .await?
    };
    let claimed = match claimed {
        ClaimResult::Claimed(c) => c,
        refused => return Err(claim_refused(&request, refused)),
    };

    let text = gateway_comment(&request.actor, comment.as_deref());
    let answer: Result<Vec<(String, String)>, GatewayError> =
        gateway.act(&request, &subjects, &text).await;

    let statuses: Vec<String> = match &answer {
        Ok(done) => done.iter().map(|(_, s)| s.clone()).collect(),
        Err(_) => Vec::new(),
    };
    let ids: Vec<String> = subjects.iter().map(|s| s.id.clone()).collect();
    let call = match &answer {
        Ok(done) => Some(call_text(gateway.id(), done)),
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
            let mut conn = operator::open_operator(&db)?;
            let order_move = OrderMove {
                from,
                to,
                comment: &text,
            };
            let result = GatewayResult {
                gateway_status: status.as_deref(),
                error: error.as_deref(),
            };
            claims::finish_action(
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
                gateway: gateway_name(gateway.id()),
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
            return Err(gateway_error(gateway.id(), action, g));
        }
    };
    let mut report = report(&request, gateway.id(), target, statuses, recorded);
    if cancel_only {
        report.note = Some(format!(
            "the order stays {}: its transaction, still alive at the gateway after the risk verdict, is now cancelled there and will not be captured",
            report.previous_outcome
        ));
    }
    Ok(report)
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

/// The orders waiting for a human, the longest waiting first.
pub async fn queue(
    ctx: &ReviewContext,
    shop: Option<String>,
) -> Result<Vec<ReviewItem>, ReviewError> {
    let db = ctx.db.clone();
    blocking(move || {
        let conn = read::open_read(&db)?;
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
        let conn = read::open_read(&db)?;
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
