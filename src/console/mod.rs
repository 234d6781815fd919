//! The operator console: a few server-rendered pages under `/console/` on
//! the admin listener, for the people who decide about held payments and
//! watch what is stuck.
//!
//! - Off unless `[console]` is configured (its paths answer 404 like any
//!   unknown path), and on the admin listener, which binds loopback by
//!   default.
//! - Sign-in with the operators of the configuration ([`auth`]): an
//!   HttpOnly, SameSite=Strict session cookie, a CSRF token in every form,
//!   failed sign-ins limited per address and per name and logged (never
//!   the password), sessions that end after `session_lifetime`.
//! - Every change goes through the services the CLI and the admin API use:
//!   `review::act` for validate / deny (the operator's name is the actor),
//!   and a retry that records who asked (`store::read::console`, `store::operator`).
//! - A strict Content-Security-Policy: no script at all, styles from one
//!   file; every action is a plain form.

pub mod auth;
mod pages;
pub mod timeline;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use hyper::{Method, Request, Response, StatusCode};
use maud::Markup;

use crate::ops::logging::one_line;
use serde::Deserialize;
use tokio::sync::watch;

use crate::config::{Config, ConsoleConfig};
use crate::domain::Outcome;
use crate::review::{self, Action, ReviewContext, ReviewRequest};
use crate::store::operator::Retried;
use crate::store::read::console as store_console;
use crate::store::read::orders as store_orders;
use crate::store::read::review_queue::IN_REVIEW;
use crate::store::{now_ms, operator, read, StoreError};
use auth::{Flash, Session, LOGIN_COOKIE, SESSION_COOKIE};
use pages::{Frame, Nav, QueueRow};

/// Largest form body accepted (a comment and a few fields).
const BODY_LIMIT: usize = 16 * 1024;
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Orders per page.
const PAGE_SIZE: usize = 50;
/// Most dead updates listed at once.
const DEAD_LIMIT: usize = 500;
/// How long the sign-in form stays valid.
const LOGIN_FORM_SECS: i64 = 3600;

/// No script, no inline style, no framing, forms only to ourselves.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

type Body = Full<Bytes>;

/// The client's address, set by the admin listener on each request.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// What the console needs from the daemon, and its own state.
pub struct Console {
    /// The live configuration (SIGHUP may change operators).
    pub config: watch::Receiver<Arc<Config>>,
    pub db: PathBuf,
    pub sessions: auth::Sessions,
    pub limiter: auth::Limiter,
}

impl Console {
    pub fn new(config: watch::Receiver<Arc<Config>>, db: PathBuf) -> Console {
        Console {
            config,
            db,
            sessions: auth::Sessions::default(),
            limiter: auth::Limiter::default(),
        }
    }
}

/// Whether the admin listener should hand this path to the console.
pub fn handles(path: &str) -> bool {
    path == "/" || path == "/console" || path.starts_with("/console/")
}

/// Serves a request for which [`handles`] is true.
pub async fn route(console: &Console, req: Request<Incoming>) -> Response<Body> {
    let config = console.config.borrow().clone();
    let Some(cc) = config.console.as_ref() else {
        return not_found_plain();
    };
    let mut resp = dispatch(console, &config, cc, req).await;
    security_headers(&mut resp);
    resp
}

async fn dispatch(
    console: &Console,
    config: &Arc<Config>,
    cc: &ConsoleConfig,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match (path.as_str(), &method) {
        ("/" | "/console" | "/console/", &Method::GET) => return redirect("/console/orders"),
        ("/console/static/console.css", &Method::GET) => {
            let mut r = reply(StatusCode::OK, "text/css; charset=utf-8", pages::CSS.into());
            r.headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("max-age=3600"));
            return r;
        }
        ("/console/login", &Method::GET) => return login_form(cc, None, "", StatusCode::OK),
        ("/console/login", &Method::POST) => return login(console, cc, req).await,
        _ => {}
    }
    let token = cookie_value(&req, SESSION_COOKIE);
    let now = now_ms();
    let session = token
        .as_deref()
        .and_then(|t| console.sessions.get(t, cc, now));
    let (Some(token), Some(session)) = (token, session) else {
        if method == Method::GET {
            return redirect("/console/login");
        }
        // A form posted without a live session changes nothing.
        return plain(
            StatusCode::FORBIDDEN,
            "not signed in (or the session expired): sign in again\n",
        );
    };
    let ctx = Ctx {
        console,
        config,
        token,
        session,
    };
    if method == Method::POST {
        if cross_site(&req) {
            tracing::warn!(operator = %one_line(&ctx.session.operator), path = %one_line(&path), "console: cross-site form refused");
            return plain(StatusCode::FORBIDDEN, "cross-site request refused\n");
        }
        let form = match read_form(req).await {
            Ok(f) => f,
            Err(resp) => return resp,
        };
        if !auth::tokens_match(form.get("csrf"), &ctx.session.csrf) {
            tracing::warn!(operator = %one_line(&ctx.session.operator), path = %one_line(&path), "console: form without the session's CSRF token refused");
            return plain(
                StatusCode::FORBIDDEN,
                "this form is not from your session (reload the page and try again)\n",
            );
        }
        return match path.as_str() {
            "/console/logout" => logout(&ctx, cc),
            "/console/review/act" => act(&ctx, &form).await,
            "/console/retry" => retry(&ctx, &form).await,
            _ => not_found_plain(),
        };
    }
    if method != Method::GET {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST\n");
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    let result = match path.as_str() {
        "/console/orders" => orders(&ctx, &query).await,
        "/console/order" => order(&ctx, &query).await,
        "/console/review" => review_queue(&ctx).await,
        "/console/review/confirm" => confirm(&ctx, &query).await,
        "/console/dead" => dead(&ctx).await,
        _ => return not_found_plain(),
    };
    result.unwrap_or_else(|e| {
        tracing::error!(error = %one_line(&e.to_string()), path = %one_line(&path), "console: database read failed");
        plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("the database could not be read: {e}\n"),
        )
    })
}

/// A signed-in request.
struct Ctx<'a> {
    console: &'a Console,
    config: &'a Arc<Config>,
    token: String,
    session: Session,
}

impl Ctx<'_> {
    fn operator(&self) -> &str {
        &self.session.operator
    }

    /// Renders a page in the frame (counters, flash message).
    async fn page(
        &self,
        status: StatusCode,
        nav: Nav,
        body: impl FnOnce(&Frame<'_>) -> Markup,
    ) -> Result<Response<Body>, StoreError> {
        let counters = self.read(store_console::counters).await?;
        let flash = self.console.sessions.take_flash(&self.token);
        let frame = Frame {
            operator: &self.session.operator,
            csrf: &self.session.csrf,
            counters: &counters,
            flash: flash.as_ref().map(|f| (f.ok, f.text.as_str())),
            current: nav,
            now: now_ms(),
        };
        Ok(html(status, body(&frame)))
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&rusqlite::Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let db = self.console.db.clone();
        tokio::task::spawn_blocking(move || {
            let conn = read::open_read(&db)?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("the read task failed: {e}")))?
    }

    fn flash(&self, ok: bool, text: String) {
        self.console
            .sessions
            .set_flash(&self.token, Flash { ok, text });
    }

    fn review_context(&self) -> ReviewContext {
        ReviewContext {
            config: self.config.clone(),
            db: self.console.db.clone(),
        }
    }
}

// ------------------------------------------------------------------ sign-in

fn login_form(
    cc: &ConsoleConfig,
    error: Option<&str>,
    name: &str,
    status: StatusCode,
) -> Response<Body> {
    let token = auth::random_token();
    let mut resp = html(status, pages::login(error, &token, name));
    set_cookie(
        &mut resp,
        &auth::set_cookie(LOGIN_COOKIE, &token, LOGIN_FORM_SECS, cc.secure_cookie),
    );
    resp
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LoginForm {
    csrf: String,
    name: String,
    password: String,
}

async fn login(console: &Console, cc: &ConsoleConfig, req: Request<Incoming>) -> Response<Body> {
    let peer = req
        .extensions()
        .get::<Peer>()
        .map(|p| p.0.ip().to_string())
        .unwrap_or_else(|| "unknown".into());
    if cross_site(&req) {
        tracing::warn!(%peer, "console: cross-site sign-in refused");
        return plain(StatusCode::FORBIDDEN, "cross-site request refused\n");
    }
    let login_cookie = cookie_value(&req, LOGIN_COOKIE);
    let form = match read_form(req).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    let form = LoginForm {
        csrf: form.get("csrf").to_owned(),
        name: form.get("name").trim().to_owned(),
        password: form.get("password").to_owned(),
    };
    // The sign-in form's own anti-forgery check: a page elsewhere cannot
    // read our cookie, so it cannot sign a victim in as someone else.
    let fresh =
        login_cookie.is_some_and(|c| !form.csrf.is_empty() && auth::tokens_match(&c, &form.csrf));
    if !fresh {
        return login_form(
            cc,
            Some("The sign-in form expired. Please sign in again."),
            &form.name,
            StatusCode::FORBIDDEN,
        );
    }
    let now = now_ms();
    if let Some(until) = console.limiter.blocked_until(&peer, &form.name, now) {
        // The name is logged only if it is an operator's: a password typed
        // into the name field must not end up in the log.
        let operator = cc
            .operator(&form.name)
            .map_or("(not an operator)", |o| o.name.as_str());
        tracing::warn!(%peer, operator = %one_line(operator), reason = "too many failed sign-ins", "console: sign-in refused");
        let minutes = ((until - now) / 60_000).max(1);
        return login_form(
            cc,
            Some(&format!(
                "Too many failed sign-ins. Try again in {minutes} minute(s)."
            )),
            &form.name,
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    let credential = cc.operator(&form.name).map(|o| o.credential.clone());
    let known = credential.is_some();
    let tag = credential.as_ref().map(auth::credential_tag);
    let password = form.password.clone();
    // Argon2 takes tens of milliseconds of CPU: off the async threads.
    let ok = tokio::task::spawn_blocking(move || match credential {
        Some(c) => auth::check_credential(&c, &password),
        None => {
            auth::check_nobody(&password);
            false
        }
    })
    .await
    .unwrap_or(false);
    if !ok {
        console.limiter.failed(&peer, &form.name, now);
        let operator = if known {
            form.name.as_str()
        } else {
            "(not an operator)"
        };
        let reason = if known {
            "wrong password"
        } else {
            "unknown operator"
        };
        tracing::warn!(%peer, operator = %one_line(operator), reason, "console: sign-in refused");
        return login_form(
            cc,
            Some("Wrong operator name or password."),
            &form.name,
            StatusCode::UNAUTHORIZED,
        );
    }
    console.limiter.succeeded(&form.name);
    let lifetime = cc.session_lifetime.as_millis() as i64;
    let Some(tag) = tag else {
        return plain(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n");
    };
    let token = console.sessions.open(&form.name, tag, lifetime, now);
    tracing::info!(%peer, operator = %one_line(&form.name), "console: signed in");
    let mut resp = redirect("/console/orders");
    set_cookie(
        &mut resp,
        &auth::set_cookie(SESSION_COOKIE, &token, lifetime / 1000, cc.secure_cookie),
    );
    set_cookie(
        &mut resp,
        &auth::set_cookie(LOGIN_COOKIE, "", 0, cc.secure_cookie),
    );
    resp
}

fn logout(ctx: &Ctx<'_>, cc: &ConsoleConfig) -> Response<Body> {
    ctx.console.sessions.close(&ctx.token);
    tracing::info!(operator = %one_line(ctx.operator()), "console: signed out");
    let mut resp = redirect("/console/login");
    set_cookie(
        &mut resp,
        &auth::set_cookie(SESSION_COOKIE, "", 0, cc.secure_cookie),
    );
    resp
}

// -------------------------------------------------------------------- pages

async fn orders(ctx: &Ctx<'_>, query: &str) -> Result<Response<Body>, StoreError> {
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

async fn order(ctx: &Ctx<'_>, query: &str) -> Result<Response<Body>, StoreError> {
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

async fn review_queue(ctx: &Ctx<'_>) -> Result<Response<Body>, StoreError> {
    let rows = queue_rows(ctx).await?;
    ctx.page(StatusCode::OK, Nav::Review, |f| {
        pages::review_queue(f, &rows)
    })
    .await
}

async fn confirm(ctx: &Ctx<'_>, query: &str) -> Result<Response<Body>, StoreError> {
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
async fn render_confirm(
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

async fn dead(ctx: &Ctx<'_>) -> Result<Response<Body>, StoreError> {
    let rows = ctx
        .read(|conn| store_console::dead_updates(conn, DEAD_LIMIT))
        .await?;
    ctx.page(StatusCode::OK, Nav::Dead, |f| pages::dead(f, &rows))
        .await
}

// ------------------------------------------------------------------ actions

async fn act(ctx: &Ctx<'_>, form: &Form) -> Response<Body> {
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

async fn retry(ctx: &Ctx<'_>, form: &Form) -> Response<Body> {
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

// ------------------------------------------------------------------ helpers

/// A decoded form body: the first value of each name.
struct Form(Vec<(String, String)>);

impl Form {
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

async fn read_form(req: Request<Incoming>) -> Result<Form, Response<Body>> {
    let bytes = tokio::time::timeout(
        BODY_TIMEOUT,
        Limited::new(req.into_body(), BODY_LIMIT).collect(),
    )
    .await
    .map_err(|_| {
        plain(
            StatusCode::REQUEST_TIMEOUT,
            "the form did not arrive in time\n",
        )
    })?
    .map_err(|_| plain(StatusCode::PAYLOAD_TOO_LARGE, "the form is too large\n"))?
    .to_bytes();
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(&bytes)
        .map(Form)
        .map_err(|_| plain(StatusCode::BAD_REQUEST, "the form could not be read\n"))
}

/// Browsers say where a request comes from (`Sec-Fetch-Site`); a form
/// posted from another site is refused before anything else, on top of
/// the SameSite cookie and the CSRF token.
fn cross_site<B>(req: &Request<B>) -> bool {
    req.headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.eq_ignore_ascii_case("cross-site") || v.eq_ignore_ascii_case("same-site")
        })
}

fn cookie_value<B>(req: &Request<B>, name: &str) -> Option<String> {
    req.headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| auth::cookie(h, name).map(str::to_owned))
        .filter(|v| !v.is_empty())
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn html(status: StatusCode, markup: Markup) -> Response<Body> {
    reply(status, "text/html; charset=utf-8", markup.into_string())
}

fn plain(status: StatusCode, text: &str) -> Response<Body> {
    reply(status, "text/plain; charset=utf-8", text.to_owned())
}

fn not_found_plain() -> Response<Body> {
    plain(StatusCode::NOT_FOUND, "not found\n")
}

/// 303: the browser follows with a GET (post/redirect/get).
fn redirect(to: &str) -> Response<Body> {
    let mut resp = plain(StatusCode::SEE_OTHER, "");
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(LOCATION, v);
    }
    resp
}

fn set_cookie(resp: &mut Response<Body>, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(SET_COOKIE, v);
    }
}

fn security_headers(resp: &mut Response<Body>) {
    let h = resp.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}
