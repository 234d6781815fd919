//! The pages (GET): orders, one order's timeline, the review queue and
//! its confirmation page, dead updates. Reads only, on read-only
//! connections.

use hyper::{Response, StatusCode};
use serde::Deserialize;

use super::pages::{self, Nav, QueueRow};
use super::{timeline, Body, Ctx};
use crate::domain::Outcome;
use crate::review::{self, Action};
use crate::store::read::console as store_console;
use crate::store::read::orders as store_orders;
use crate::store::read::review_queue::IN_REVIEW;
use crate::store::{now_ms, StoreError};

/// Orders per page.
const PAGE_SIZE: usize = 50;
/// Most dead updates listed at once.
const DEAD_LIMIT: usize = 500;

pub(super) async fn orders(ctx: &Ctx<'_>, query: &str) -> Result<Response<Body>, StoreError> {
    let mut form: pages::OrdersForm = serde_urlencoded::from_str(query).unwrap_or_default();
    form.q = form.q.trim().to_owned();
    if Outcome::parse(&form.outcome).is_none() {
        form.outcome.clear();
    }
    let page: usize = form.page.parse().unwrap_or(1).clamp(1, 100_000);
    let since = pages::AGES
        .iter()
        .find(|(v, _, _)| *v == form.age)
        .map(|(_, _, ms)| now_ms() - ms);
    let (rows, shops) = {
        let f = form.clone();
        ctx.read(move |conn| {
            let q = store_console::OrderQuery {
                text: (!f.q.is_empty()).then_some(f.q.as_str()),
                shop: (!f.shop.is_empty()).then_some(f.shop.as_str()),
                outcome: (!f.outcome.is_empty()).then_some(f.outcome.as_str()),
                dead_only: f.dead == "1",
                updated_since: since,
                offset: (page - 1) * PAGE_SIZE,
                limit: PAGE_SIZE + 1,
            };
            Ok((
                store_console::search_orders(conn, &q)?,
                store_console::order_shops(conn)?,
            ))
        })
        .await?
    };
    let has_next = rows.len() > PAGE_SIZE;
    let rows = &rows[..rows.len().min(PAGE_SIZE)];
    let outcomes: Vec<&'static str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
    let view = pages::OrdersView {
        form: &form,
        rows,
        shops: &shops,
        outcomes: &outcomes,
        page,
        has_next,
    };
    ctx.page(StatusCode::OK, Nav::Orders, |f| pages::orders(f, &view))
        .await
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct OrderRef {
    shop: Option<String>,
    order: String,
    action: String,
}

pub(super) async fn order(ctx: &Ctx<'_>, query: &str) -> Result<Response<Body>, StoreError> {
    let q: OrderRef = serde_urlencoded::from_str(query).unwrap_or_default();
    let order_ref = q.order.clone();
    let shop = q.shop.clone();
    let found = ctx
        .read(move |conn| {
            let shop = match shop {
                Some(s) => s,
                None => match store_orders::shops_of_order(conn, &order_ref)?.as_slice() {
                    [one] => one.clone(),
                    [] => return Ok(Err(Vec::new())),
                    several => return Ok(Err(several.to_vec())),
                },
            };
            let Some(history) = store_orders::order_history(conn, &shop, &order_ref)? else {
                return Ok(Err(Vec::new()));
            };
            let operator = store_console::order_operator_actions(conn, &shop, &order_ref)?;
            Ok(Ok((history, operator)))
        })
        .await?;
    let (history, operator) = match found {
        Ok(found) => found,
        Err(shops) if !shops.is_empty() => {
            return ambiguous(ctx, &q.order, &shops).await;
        }
        Err(_) => {
            let text = format!(
                "Nothing is stored about order {:?}{}.",
                q.order,
                q.shop
                    .as_deref()
                    .map(|s| format!(" of shop {s:?}"))
                    .unwrap_or_default()
            );
            return ctx
                .page(StatusCode::NOT_FOUND, Nav::None, |f| {
                    pages::message(f, "Unknown order", &text)
                })
                .await;
        }
    };
    let entries = timeline::timeline(&history, &operator);
    let outcome = history
        .current
        .as_ref()
        .and_then(|c| Outcome::parse(&c.outcome));
    let status = outcome.and_then(|o| {
        ctx.config
            .shop(&history.shop)
            .and_then(|s| s.statuses.get(&o))
            .map(|s| format!("{} → {s}", o.as_str()))
    });
    let last_update = match history.outbox.last() {
        None if history.shop.is_empty() => "no shop: decisions are only logged".to_owned(),
        None => "no update queued".to_owned(),
        Some(o) => match o.state.as_str() {
            "delivered" => format!(
                "update #{} ({}) delivered {} UTC",
                o.id,
                o.outcome,
                crate::cli::table::utc_or_dash(o.delivered_at)
            ),
            "pending" => format!(
                "update #{} ({}) pending, {} attempt(s) so far",
                o.id, o.outcome, o.attempts
            ),
            _ => format!(
                "update #{} ({}) dead: the shop was not told",
                o.id, o.outcome
            ),
        },
    };
    let shop_state = pages::ShopState {
        status,
        last_update,
    };
    let view = pages::OrderView {
        history: &history,
        timeline: &entries,
        shop: &shop_state,
        in_review: outcome.is_some_and(|o| IN_REVIEW.contains(&o)),
    };
    ctx.page(StatusCode::OK, Nav::None, |f| pages::order(f, &view))
        .await
}

/// An order reference known in several shops: links to each.
async fn ambiguous(
    ctx: &Ctx<'_>,
    order_ref: &str,
    shops: &[String],
) -> Result<Response<Body>, StoreError> {
    ctx.page(StatusCode::OK, Nav::None, |f| {
        pages::ambiguous(f, order_ref, shops)
    })
    .await
}

/// The review queue with each order's risk findings and gateway.
async fn queue_rows(ctx: &Ctx<'_>) -> Result<Vec<QueueRow>, StoreError> {
    let config = ctx.config.clone();
    ctx.read(move |conn| {
        let items = crate::store::read::review_queue::review_queue(conn, None)?;
        items
            .into_iter()
            .map(|item| {
                let risk = store_console::current_notification(conn, &item.shop, &item.order_ref)?
                    .map(|n| timeline::risk_findings(&n))
                    .unwrap_or_default();
                let gateway = config
                    .sources
                    .iter()
                    .find(|s| s.name == item.source)
                    .and_then(|s| s.review_api.as_ref())
                    .map(|a| a.gateway());
                Ok(QueueRow {
                    amount: item
                        .amount_minor
                        .map(|m| crate::domain::comment::format_amount(m, &item.currency))
                        .unwrap_or_else(|| "unknown".into()),
                    expires_at: review::expiry::authorisation_expires_at(&item),
                    risk,
                    gateway,
                    item,
                })
            })
            .collect()
    })
    .await
}

pub(super) async fn review_queue(ctx: &Ctx<'_>) -> Result<Response<Body>, StoreError> {
    let rows = queue_rows(ctx).await?;
    ctx.page(StatusCode::OK, Nav::Review, |f| {
        pages::review_queue(f, &rows)
    })
    .await
}

pub(super) async fn confirm(ctx: &Ctx<'_>, query: &str) -> Result<Response<Body>, StoreError> {
    let q: OrderRef = serde_urlencoded::from_str(query).unwrap_or_default();
    let Some(action) = Action::parse(&q.action) else {
        return ctx
            .page(StatusCode::BAD_REQUEST, Nav::Review, |f| {
                pages::message(f, "Unknown action", "The action must be validate or deny.")
            })
            .await;
    };
    let shop = q.shop.unwrap_or_default();
    render_confirm(
        ctx,
        &shop,
        &q.order,
        action,
        None,
        "",
        false,
        StatusCode::OK,
    )
    .await
}

#[allow(clippy::too_many_arguments)]
pub(super) async fn render_confirm(
    ctx: &Ctx<'_>,
    shop: &str,
    order_ref: &str,
    action: Action,
    error: Option<&str>,
    comment: &str,
    shop_only: bool,
    status: StatusCode,
) -> Result<Response<Body>, StoreError> {
    let rows = queue_rows(ctx).await?;
    let Some(row) = rows
        .iter()
        .find(|r| r.item.shop == shop && r.item.order_ref == order_ref)
    else {
        let text = match error {
            Some(e) => e.to_owned(),
            None => format!(
                "Order {order_ref:?} is not waiting for review: there is nothing to {}.",
                action.as_str()
            ),
        };
        let status = if error.is_some() {
            status
        } else {
            StatusCode::CONFLICT
        };
        return ctx
            .page(status, Nav::Review, |f| {
                pages::message(f, "Not in the review queue", &text)
            })
            .await;
    };
    let view = pages::ConfirmView {
        row,
        action,
        error,
        comment,
        shop_only,
    };
    ctx.page(status, Nav::Review, |f| pages::confirm(f, &view))
        .await
}

pub(super) async fn dead(ctx: &Ctx<'_>) -> Result<Response<Body>, StoreError> {
    let rows = ctx
        .read(|conn| store_console::dead_updates(conn, DEAD_LIMIT))
        .await?;
    ctx.page(StatusCode::OK, Nav::Dead, |f| pages::dead(f, &rows))
        .await
}
