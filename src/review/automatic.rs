//! Cancelling at the gateway, without an operator, the transaction of a
//! risk-rejected order that is still alive there.

use super::{act, Action, ActionReport, ReviewContext, ReviewError, ReviewRequest};
use crate::config::Config;
use crate::ops::logging::one_line;
use crate::ops::metrics::GATEWAY_CANCELS;

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
