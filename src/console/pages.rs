//! The console's HTML, server-rendered with maud (every value is escaped
//! unless marked otherwise, and nothing here marks it). Plain forms and
//! links: every action works without JavaScript, and the pages carry no
//! script at all, so the Content-Security-Policy can forbid scripts.

use maud::{html, Markup, DOCTYPE};

mod orders_html;
mod review_html;

use crate::cli::table::utc;
use crate::review::expiry::human_duration;
use crate::store::read::console::{Counters, DeadUpdate};
pub use orders_html::{order, orders, OrderView, OrdersForm, OrdersView, ShopState, AGES};
pub use review_html::{confirm, review_queue, ConfirmView, QueueRow};

/// What every signed-in page shows in its header.
pub struct Frame<'a> {
    pub operator: &'a str,
    pub csrf: &'a str,
    pub counters: &'a Counters,
    pub flash: Option<(bool, &'a str)>,
    /// Which navigation entry is current.
    pub current: Nav,
    pub now: i64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Orders,
    Review,
    Dead,
    None,
}

/// `?a=b&c=d` (or nothing) from pairs, percent-encoded.
pub fn query(pairs: &[(&str, &str)]) -> String {
    let kept: Vec<(&str, &str)> = pairs
        .iter()
        .copied()
        .filter(|(_, v)| !v.is_empty())
        .collect();
    if kept.is_empty() {
        return String::new();
    }
    format!("?{}", serde_urlencoded::to_string(kept).unwrap_or_default())
}

pub fn order_url(shop: &str, order_ref: &str) -> String {
    // The shop is always given, even empty (a source without a shop).
    format!(
        "/console/order?{}",
        serde_urlencoded::to_string([("shop", shop), ("order", order_ref)]).unwrap_or_default()
    )
}

fn shop_label(shop: &str) -> &str {
    if shop.is_empty() {
        "(no shop)"
    } else {
        shop
    }
}

/// A `datetime` attribute: ISO 8601 in UTC.
fn iso(at: i64) -> String {
    format!("{}Z", utc(at).replace(' ', "T"))
}

fn ago(now: i64, at: i64) -> String {
    format!("{} ago", human_duration(now - at))
}

fn page(title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · ipnsync" }
                link rel="stylesheet" href="/console/static/console.css";
            }
            body { (body) }
        }
    }
}

pub fn layout(frame: &Frame<'_>, title: &str, main: Markup) -> Markup {
    let c = frame.counters;
    let nav = |target: Nav, href: &str, label: &str, count: Option<u64>| {
        html! {
            li {
                a href=(href) aria-current=[(frame.current == target).then_some("page")] {
                    (label)
                    @if let Some(n) = count {
                        " " span.badge.alert[n > 0] { (n) }
                    }
                }
            }
        }
    };
    page(
        title,
        html! {
            a.skip href="#main" { "Skip to content" }
            header.top {
                a.brand href="/console/orders" { "ipnsync" }
                nav aria-label="Main" {
                    ul {
                        (nav(Nav::Orders, "/console/orders", "Orders", None))
                        (nav(Nav::Review, "/console/review", "Review queue", Some(c.review)))
                        (nav(Nav::Dead, "/console/dead", "Dead updates", Some(c.dead)))
                    }
                }
                dl.counters aria-label="Counters" {
                    div { dt { "Waiting for review" } dd #count-review { (c.review) } }
                    div { dt { "Pending pushes" } dd #count-pending { (c.pending) } }
                    div { dt { "Dead updates" } dd #count-dead .alert[c.dead > 0] { (c.dead) } }
                    div {
                        dt { "Last notification" }
                        dd #last-notification {
                            @match c.last_notification {
                                Some(at) => {
                                    time datetime=(iso(at)) title={ (utc(at)) " UTC" } { (ago(frame.now, at)) }
                                }
                                None => { "never" }
                            }
                        }
                    }
                }
                form.signout method="post" action="/console/logout" {
                    input type="hidden" name="csrf" value=(frame.csrf);
                    span { "Signed in as " strong #operator { (frame.operator) } }
                    " "
                    button type="submit" { "Sign out" }
                }
            }
            main #main {
                @if let Some((ok, text)) = frame.flash {
                    p #flash .flash .ok[ok] .error[!ok] role="status" { (text) }
                }
                h1 { (title) }
                (main)
            }
        },
    )
}

pub fn login(error: Option<&str>, login_token: &str, name: &str) -> Markup {
    page(
        "Sign in",
        html! {
            main.login #main {
                h1 { "ipnsync console" }
                @if let Some(e) = error {
                    p #flash .flash .error role="alert" { (e) }
                }
                form method="post" action="/console/login" {
                    input type="hidden" name="csrf" value=(login_token);
                    p {
                        label for="name" { "Operator" }
                        input #name type="text" name="name" value=(name) autocomplete="username"
                            required autofocus maxlength="64";
                    }
                    p {
                        label for="password" { "Password or token" }
                        input #password type="password" name="password" autocomplete="current-password"
                            required maxlength="1024";
                    }
                    p { button type="submit" { "Sign in" } }
                }
            }
        },
    )
}
fn retry_form(csrf: &str, outbox_id: i64, back: &str) -> Markup {
    html! {
        form.inline method="post" action="/console/retry" {
            input type="hidden" name="csrf" value=(csrf);
            input type="hidden" name="outbox_id" value=(outbox_id);
            input type="hidden" name="back" value=(back);
            button type="submit" aria-label={ "Retry update #" (outbox_id) } { "Retry" }
        }
    }
}

pub fn dead(frame: &Frame<'_>, rows: &[DeadUpdate]) -> Markup {
    layout(
        frame,
        "Dead updates",
        html! {
            @if rows.is_empty() {
                p #dead-empty { "No shop update has given up." }
            } @else {
                p { "Shop updates that gave up, oldest first. Each holds the later updates of its order: fix the cause (the shop's answer is below), then retry." }
                table #dead {
                    thead {
                        tr {
                            th scope="col" { "Update" }
                            th scope="col" { "Order" }
                            th scope="col" { "Shop" }
                            th scope="col" { "Change" }
                            th scope="col" { "Attempts" }
                            th scope="col" { "Shop's answer" }
                            th scope="col" { span.visually-hidden { "Action" } }
                        }
                    }
                    tbody {
                        @for d in rows {
                            tr {
                                td { "#" (d.id) }
                                td { a href=(order_url(&d.shop, &d.order_ref)) { (d.order_ref) } }
                                td { (shop_label(&d.shop)) }
                                td { (d.previous_outcome.as_deref().unwrap_or("new")) " → " (d.outcome) }
                                td {
                                    (d.attempts)
                                    @if let Some(at) = d.last_attempt_at { br; small { "last " (utc(at)) " UTC" } }
                                }
                                td { pre.error-text { (d.last_error.as_deref().unwrap_or("(no answer recorded)")) } }
                                td { (retry_form(frame.csrf, d.id, "/console/dead")) }
                            }
                        }
                    }
                }
            }
        },
    )
}

/// An order reference that several shops have: one link per shop.
pub fn ambiguous(frame: &Frame<'_>, order_ref: &str, shops: &[String]) -> Markup {
    layout(
        frame,
        &format!("Order {order_ref}"),
        html! {
            p #message { "Several shops have an order " (order_ref) ": choose one." }
            ul #shops {
                @for s in shops {
                    li { a href=(order_url(s, order_ref)) { (shop_label(s)) } }
                }
            }
        },
    )
}

/// A page saying what is missing (unknown order…).
pub fn message(frame: &Frame<'_>, title: &str, text: &str) -> Markup {
    layout(frame, title, html! { p #message { (text) } })
}

/// The stylesheet (served as a file: the CSP allows no inline style).
pub const CSS: &str = include_str!("console.css");
