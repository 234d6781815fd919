//! The console's HTML, server-rendered with maud (every value is escaped
//! unless marked otherwise, and nothing here marks it). Plain forms and
//! links: every action works without JavaScript, and the pages carry no
//! script at all, so the Content-Security-Policy can forbid scripts.

use maud::{html, Markup, DOCTYPE};

use super::timeline::Entry;
use crate::cli::table::utc;
use crate::review::expiry::human_duration;
use crate::store::read::console::{Counters, DeadUpdate};
use crate::store::read::orders::{OrderHistory, OrderSummary};
use crate::store::read::review_queue::{ReviewItem, CANCEL_AT_GATEWAY};

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
