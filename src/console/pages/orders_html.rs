//! The orders list (search, filters, pages) and one order's page (state,
//! shop state, review buttons, timeline).

use maud::{html, Markup};

use super::{iso, layout, order_url, query, retry_form, shop_label, Frame};
use crate::cli::table::utc;
use crate::console::timeline::Entry;
use crate::store::read::orders::{OrderHistory, OrderSummary};

/// The orders page's filters, as given in the query string.
#[derive(Debug, Default, Clone, serde::Deserialize)]
#[serde(default)]
pub struct OrdersForm {
    pub q: String,
    pub shop: String,
    pub outcome: String,
    pub dead: String,
    pub age: String,
    pub page: String,
}

/// The age filter's choices: (value, label, milliseconds).
pub const AGES: [(&str, &str, i64); 4] = [
    ("1h", "last hour", 3_600_000),
    ("24h", "last 24 hours", 86_400_000),
    ("7d", "last 7 days", 7 * 86_400_000),
    ("30d", "last 30 days", 30 * 86_400_000),
];

pub struct OrdersView<'a> {
    pub form: &'a OrdersForm,
    pub rows: &'a [OrderSummary],
    pub shops: &'a [String],
    pub outcomes: &'a [&'static str],
    pub page: usize,
    pub has_next: bool,
}

pub fn orders(frame: &Frame<'_>, v: &OrdersView<'_>) -> Markup {
    let f = v.form;
    let page_link = |page: usize| {
        format!(
            "/console/orders{}",
            query(&[
                ("q", &f.q),
                ("shop", &f.shop),
                ("outcome", &f.outcome),
                ("dead", &f.dead),
                ("age", &f.age),
                ("page", &page.to_string()),
            ])
        )
    };
    layout(
        frame,
        "Orders",
        html! {
            form.filters method="get" action="/console/orders" role="search" {
                p {
                    label for="q" { "Order or transaction" }
                    input #q type="search" name="q" value=(f.q) placeholder="100042 or a transaction id";
                }
                p {
                    label for="shop" { "Shop" }
                    select #shop name="shop" {
                        option value="" { "any" }
                        @for s in v.shops {
                            option value=(s) selected[*s == f.shop] { (shop_label(s)) }
                        }
                    }
                }
                p {
                    label for="outcome" { "Outcome" }
                    select #outcome name="outcome" {
                        option value="" { "any" }
                        @for o in v.outcomes {
                            option value=(o) selected[*o == f.outcome] { (o) }
                        }
                    }
                }
                p {
                    label for="age" { "Updated" }
                    select #age name="age" {
                        option value="" { "any time" }
                        @for (value, label, _) in AGES {
                            option value=(value) selected[value == f.age] { (label) }
                        }
                    }
                }
                p.check {
                    input #dead type="checkbox" name="dead" value="1" checked[f.dead == "1"];
                    label for="dead" { "with dead updates" }
                }
                p { button type="submit" { "Search" } }
            }
            @if v.rows.is_empty() {
                p #no-orders { "No order matches." }
            } @else {
                table #orders {
                    caption.visually-hidden { "Orders, most recently updated first" }
                    thead {
                        tr {
                            th scope="col" { "Order" }
                            th scope="col" { "Shop" }
                            th scope="col" { "Outcome" }
                            th scope="col" { "Transaction" }
                            th scope="col" { "Updated (UTC)" }
                            th scope="col" { "Pushes" }
                        }
                    }
                    tbody {
                        @for o in v.rows {
                            tr {
                                td { a href=(order_url(&o.shop, &o.order_ref)) { (o.order_ref) } }
                                td { (shop_label(&o.shop)) }
                                td { span class={ "outcome " (o.outcome) } { (o.outcome) } }
                                td.mono { (o.transaction_id) }
                                td { (utc(o.updated_at)) }
                                td {
                                    @if o.dead > 0 { span.badge.alert { (o.dead) " dead" } " " }
                                    @if o.pending > 0 { span.badge { (o.pending) " pending" } }
                                    @if o.dead == 0 && o.pending == 0 { "up to date" }
                                }
                            }
                        }
                    }
                }
            }
            nav.pages aria-label="Pages" {
                @if v.page > 1 {
                    a rel="prev" href=(page_link(v.page - 1)) { "← Newer" }
                }
                span { "Page " (v.page) }
                @if v.has_next {
                    a rel="next" href=(page_link(v.page + 1)) { "Older →" }
                }
            }
        },
    )
}

/// The shop's side of an order: what its status should be and whether it
/// got it.
pub struct ShopState {
    /// The shop status the current outcome maps to (`17`, `payment_review`).
    pub status: Option<String>,
    /// The latest update's state in words.
    pub last_update: String,
}

pub struct OrderView<'a> {
    pub history: &'a OrderHistory,
    pub timeline: &'a [Entry],
    pub shop: &'a ShopState,
    pub in_review: bool,
}

pub fn order(frame: &Frame<'_>, v: &OrderView<'_>) -> Markup {
    let h = v.history;
    let title = format!("Order {}", h.order_ref);
    let dead: Vec<_> = h.outbox.iter().filter(|o| o.state == "dead").collect();
    let pending = h.outbox.iter().filter(|o| o.state == "pending").count();
    layout(
        frame,
        &title,
        html! {
            dl.facts #order-facts {
                div { dt { "Shop" } dd { (shop_label(&h.shop)) } }
                @match &h.current {
                    Some(c) => {
                        div { dt { "Outcome" } dd #outcome { span class={ "outcome " (c.outcome) } { (c.outcome) } } }
                        div { dt { "Transaction" } dd.mono { (c.transaction_id) } }
                        div { dt { "Updated" } dd { (utc(c.updated_at)) " UTC" } }
                    }
                    None => {
                        div { dt { "Outcome" } dd #outcome { "none (no notification was applied)" } }
                    }
                }
                div {
                    dt { "Shop status" }
                    dd #shop-status {
                        @if let Some(s) = &v.shop.status { (s) ", " }
                        (v.shop.last_update)
                    }
                }
                div { dt { "Outbox" } dd { (pending) " pending, " (dead.len()) " dead" } }
            }
            @if v.in_review {
                section.actions aria-labelledby="review-h" {
                    h2 #review-h { "Held for review" }
                    p { "Decide about this payment:" }
                    p {
                        a.button.primary href={ "/console/review/confirm" (query(&[("shop", &h.shop), ("order", &h.order_ref), ("action", "validate")])) } { "Validate payment…" }
                        " "
                        a.button.danger href={ "/console/review/confirm" (query(&[("shop", &h.shop), ("order", &h.order_ref), ("action", "deny")])) } { "Deny payment…" }
                    }
                }
            }
            @if !dead.is_empty() {
                section.actions aria-labelledby="dead-h" {
                    h2 #dead-h { "Dead updates" }
                    @for o in &dead {
                        div.dead {
                            p { "Update #" (o.id) ": " (o.previous_outcome.as_deref().unwrap_or("new")) " → " (o.outcome) ", gave up after " (o.attempts) " attempt(s)." }
                            @if let Some(e) = &o.last_error { pre.error-text { (e) } }
                            (retry_form(frame.csrf, o.id, &order_url(&h.shop, &h.order_ref)))
                        }
                    }
                }
            }
            h2 { "Timeline" }
            ol.timeline #timeline {
                @for e in v.timeline {
                    li class=(entry_class(e)) {
                        time datetime=(iso(e.at)) { (utc(e.at)) }
                        " "
                        span.kind { (e.kind) }
                        " "
                        span.text { (e.text) }
                        @if let Some(more) = &e.more {
                            blockquote { (more) }
                        }
                    }
                }
            }
        },
    )
}

fn entry_class(e: &Entry) -> String {
    if e.alert {
        format!("entry {} alert", e.kind)
    } else {
        format!("entry {}", e.kind)
    }
}
