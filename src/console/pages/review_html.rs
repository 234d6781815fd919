//! The review queue and the confirmation page of a validate / deny.

use maud::{html, Markup};

use super::{layout, order_url, query, shop_label, Frame};
use crate::cli::table::utc;
use crate::review::expiry::human_duration;
use crate::store::read::review_queue::{ReviewItem, CANCEL_AT_GATEWAY};

/// One order of the review queue with what the operator weighs.
pub struct QueueRow {
    pub item: ReviewItem,
    pub amount: String,
    pub risk: Vec<String>,
    pub expires_at: Option<i64>,
    /// The gateway the order's source acts through, `None` if its API is
    /// not configured (then only "shop only" is possible).
    pub gateway: Option<&'static str>,
}

fn expiry_cell(row: &QueueRow, now: i64) -> Markup {
    html! {
        @match row.expires_at {
            None => { span title="Depends on the acquirer: check its terms" { "unknown" } }
            Some(at) if at <= now => { strong.alert { "expired " (human_duration(now - at)) " ago" } }
            Some(at) => { span title={ (utc(at)) " UTC" } { "in " (human_duration(at - now)) } }
        }
    }
}

pub fn review_queue(frame: &Frame<'_>, rows: &[QueueRow]) -> Markup {
    layout(
        frame,
        "Review queue",
        html! {
            @if rows.is_empty() {
                p #queue-empty { "No payment is waiting for a decision." }
            } @else {
                p { "Payments held for review or suspected of fraud, and rejected payments still to cancel at the gateway, the longest waiting first." }
                table #queue {
                    thead {
                        tr {
                            th scope="col" { "Order" }
                            th scope="col" { "Shop" }
                            th scope="col" { "Outcome" }
                            th scope="col" { "Amount" }
                            th scope="col" { "Risk findings" }
                            th scope="col" { "Waiting" }
                            th scope="col" { "Authorisation expires" }
                            th scope="col" { "Decide" }
                        }
                    }
                    tbody {
                        @for r in rows {
                            @let i = &r.item;
                            tr {
                                td { a href=(order_url(&i.shop, &i.order_ref)) { (i.order_ref) } }
                                td { (shop_label(&i.shop)) }
                                td { span class={ "outcome " (i.outcome.as_str()) } { (i.outcome.as_str()) } }
                                td.num { (r.amount) }
                                td {
                                    @if r.risk.is_empty() { "none reported" }
                                    @else { ul.risk { @for f in &r.risk { li { (f) } } } }
                                }
                                td { (human_duration(frame.now - i.since)) }
                                td { (expiry_cell(r, frame.now)) }
                                td.decide {
                                    // A risk-rejected order still authorised at
                                    // the gateway: nothing to validate (it is
                                    // not in review), one step to take.
                                    @if i.action_needed == CANCEL_AT_GATEWAY {
                                        p.todo { "Rejected, but still authorised at the gateway: cancel it there." }
                                        a.button.danger href={ "/console/review/confirm" (query(&[("shop", &i.shop), ("order", &i.order_ref), ("action", "deny")])) } aria-label={ "Cancel the transaction of order " (i.order_ref) " at the gateway" } { "Cancel at the gateway…" }
                                    } @else {
                                        a.button.primary href={ "/console/review/confirm" (query(&[("shop", &i.shop), ("order", &i.order_ref), ("action", "validate")])) } aria-label={ "Validate payment of order " (i.order_ref) } { "Validate…" }
                                        " "
                                        a.button.danger href={ "/console/review/confirm" (query(&[("shop", &i.shop), ("order", &i.order_ref), ("action", "deny")])) } aria-label={ "Deny payment of order " (i.order_ref) } { "Deny…" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub struct ConfirmView<'a> {
    pub row: &'a QueueRow,
    pub action: crate::review::Action,
    pub error: Option<&'a str>,
    pub comment: &'a str,
    pub shop_only: bool,
}

pub fn confirm(frame: &Frame<'_>, v: &ConfirmView<'_>) -> Markup {
    let i = &v.row.item;
    let validate = v.action == crate::review::Action::Validate;
    let (verb, title) = if validate {
        (
            "Validate",
            format!("Validate the payment of order {}?", i.order_ref),
        )
    } else {
        (
            "Deny",
            format!("Deny the payment of order {}?", i.order_ref),
        )
    };
    layout(
        frame,
        &title,
        html! {
            @if let Some(e) = v.error {
                div #action-error .flash .error role="alert" { p { strong { "Nothing was done. " } } p { (e) } }
            }
            dl.facts {
                div { dt { "Shop" } dd { (shop_label(&i.shop)) } }
                div { dt { "Order" } dd { a href=(order_url(&i.shop, &i.order_ref)) { (i.order_ref) } } }
                div { dt { "Outcome" } dd { (i.outcome.as_str()) } }
                div { dt { "Amount" } dd { (v.row.amount) } }
                div { dt { "Transaction" } dd.mono { (i.transaction_id) } }
                div {
                    dt { "Risk findings" }
                    dd { @if v.row.risk.is_empty() { "none reported" } @else { (v.row.risk.join(", ")) } }
                }
                div { dt { "Authorisation expires" } dd { (expiry_cell(v.row, frame.now)) } }
            }
            p {
                @if validate {
                    "The payment will be validated "
                } @else {
                    "The payment will be cancelled (never refunded) "
                }
                @match v.row.gateway {
                    Some(g) => { "at " (g) ", then the shop is updated " }
                    None => { "in the shop only: this source has no gateway API configured, so do it in the gateway's back office too " }
                }
                @if i.action_needed == CANCEL_AT_GATEWAY {
                    "(the order stays " (i.outcome.as_str()) ": only its transaction is cancelled). This is recorded under your name."
                } @else {
                    "(order → " (v.action.outcome().as_str()) "). This is recorded under your name."
                }
            }
            form.confirm method="post" action="/console/review/act" {
                input type="hidden" name="csrf" value=(frame.csrf);
                input type="hidden" name="shop" value=(i.shop);
                input type="hidden" name="order" value=(i.order_ref);
                input type="hidden" name="action" value=(v.action.as_str());
                p {
                    label for="comment" { "Comment (optional, sent to the gateway and the shop)" }
                    textarea #comment name="comment" rows="3" maxlength="255" { (v.comment) }
                }
                p.check {
                    input #shop_only type="checkbox" name="shop_only" value="1" checked[v.shop_only || v.row.gateway.is_none()];
                    label for="shop_only" { "Shop only: I already did it in the gateway's back office (the gateway is not asked)" }
                }
                p {
                    button.primary[validate].danger[!validate] type="submit" #confirm-action { (verb) " payment" }
                    " "
                    a href="/console/review" { "Cancel" }
                }
            }
        },
    )
}
