//! The forms that change something (POST): validate / deny through
//! `review::act` with the operator as actor, and the retry of a dead
//! update, which records who asked.

use hyper::{Response, StatusCode};

use super::reads::render_confirm;
use super::respond::{plain, redirect, Form};
use super::{pages, Body, Ctx};
use crate::ops::logging::one_line;
use crate::review::{self, Action, ReviewRequest};
use crate::store::operator::{self, Retried};
use crate::store::StoreError;

pub(super) async fn act(ctx: &Ctx<'_>, form: &Form) -> Response<Body> {
    let Some(action) = Action::parse(form.get("action")) else {
        return plain(
            StatusCode::BAD_REQUEST,
            "the action must be validate or deny\n",
        );
    };
    let (shop, order_ref) = (form.get("shop").to_owned(), form.get("order").to_owned());
    let comment = form.get("comment").to_owned();
    let shop_only = form.get("shop_only") == "1";
    let request = ReviewRequest {
        action,
        order_ref: order_ref.clone(),
        shop: Some(shop.clone()),
        actor: ctx.operator().to_owned(),
        comment: (!comment.trim().is_empty()).then(|| comment.clone()),
        shop_only,
        capture: false,
        reverse: false,
    };
    let operator = ctx.operator().to_owned();
    match review::act(&ctx.review_context(), request).await {
        Ok(report) => {
            // Posted values and gateway answers: escaped and capped, so a
            // CR/LF cannot write a log line of its own.
            tracing::info!(
                order = %one_line(&order_ref), shop = %one_line(&shop), operator = %one_line(&operator),
                action = action.as_str(), gateway = %report.gateway,
                status = %one_line(&report.gateway_status.join(", ")), moved = report.moved,
                outbox = ?report.outbox_id, "console: review action done"
            );
            ctx.flash(true, report_text(&report, &operator));
            redirect(&pages::order_url(&shop, &order_ref))
        }
        Err(e) => {
            tracing::warn!(
                order = %one_line(&order_ref), shop = %one_line(&shop), operator = %one_line(&operator),
                action = action.as_str(), error = %one_line(&e.to_string()),
                "console: review action not done"
            );
            let status =
                StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let message = e.to_string();
            render_confirm(
                ctx,
                &shop,
                &order_ref,
                action,
                Some(&message),
                &comment,
                shop_only,
                status,
            )
            .await
            .unwrap_or_else(|read| {
                plain(
                    status,
                    &format!("{message}\n(and the page could not be drawn: {read})\n"),
                )
            })
        }
    }
}

/// The flash message after a review action.
fn report_text(r: &review::ActionReport, operator: &str) -> String {
    let done = match r.action {
        Action::Validate => "validated",
        Action::Deny => "denied",
    };
    let via = if r.gateway == "none" {
        "in the shop only".to_owned()
    } else {
        format!("via {} ({})", r.gateway, r.gateway_status.join(", "))
    };
    let mut s = format!(
        "Payment of order {} {done} by {operator} {via}",
        r.order_ref
    );
    match (r.moved, r.outcome, r.outbox_id) {
        (true, Some(o), Some(id)) => s.push_str(&format!(
            ": order {} → {}, shop update #{id} queued.",
            r.previous_outcome.as_str(),
            o.as_str()
        )),
        (true, Some(o), None) => s.push_str(&format!(
            ": order {} → {}.",
            r.previous_outcome.as_str(),
            o.as_str()
        )),
        _ => s.push('.'),
    }
    if let Some(note) = &r.note {
        s.push_str(&format!(" Note: {note}."));
    }
    s
}

pub(super) async fn retry(ctx: &Ctx<'_>, form: &Form) -> Response<Body> {
    let Ok(id) = form.get("outbox_id").parse::<i64>() else {
        return plain(StatusCode::BAD_REQUEST, "outbox_id must be a number\n");
    };
    // Back to where the button was, never elsewhere.
    let back = match form.get("back") {
        b if b.starts_with("/console/") && !b.starts_with("/console//") => b.to_owned(),
        _ => "/console/dead".to_owned(),
    };
    let (db, operator) = (ctx.console.db.clone(), ctx.operator().to_owned());
    let done = tokio::task::spawn_blocking(move || {
        let mut conn = operator::open_operator(&db)?;
        operator::retry_dead_update(&mut conn, id, &operator)
    })
    .await
    .map_err(|e| StoreError::Corrupt(format!("the retry task failed: {e}")))
    .and_then(|r| r);
    match done {
        Ok(Retried::Queued { shop, order_ref }) => {
            tracing::info!(outbox = id, shop = %one_line(&shop), order = %one_line(&order_ref), operator = %one_line(ctx.operator()), "console: dead update retried");
            ctx.flash(
                true,
                format!("Update #{id} of order {order_ref} is queued again: the dispatcher sends it on its next round."),
            );
            redirect(&back)
        }
        Ok(Retried::NotDead) => {
            ctx.flash(
                false,
                format!(
                    "Update #{id} is not dead (already retried or delivered): nothing was done."
                ),
            );
            redirect(&back)
        }
        Err(e) => {
            tracing::error!(outbox = id, operator = %one_line(ctx.operator()), error = %one_line(&e.to_string()), "console: retry failed");
            ctx.flash(false, format!("Update #{id} was not retried: {e}"));
            redirect(&back)
        }
    }
}
