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

mod actions;
pub mod auth;
mod pages;
mod reads;
mod respond;
mod signin;
pub mod timeline;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL};
use hyper::{Method, Request, Response, StatusCode};
use maud::Markup;
use tokio::sync::watch;

use crate::config::{Config, ConsoleConfig};
use crate::ops::logging::one_line;
use crate::review::ReviewContext;
use crate::store::read::console as store_console;
use crate::store::{now_ms, read, StoreError};
use auth::{Flash, Session, SESSION_COOKIE};
use pages::{Frame, Nav};
use respond::{cookie_value, cross_site, html, not_found_plain, plain, read_form, redirect, reply};

type Body = Full<Bytes>;

/// The client's address, set by the admin listener on each request.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// What the console needs from the daemon, and its own state.
pub struct Console {
    /// The live configuration (SIGHUP may change operators).
    pub config: watch::Receiver<Arc<Config>>,
    pub db: crate::store::Database,
    pub sessions: auth::Sessions,
    pub limiter: auth::Limiter,
}

impl Console {
    pub fn new(config: watch::Receiver<Arc<Config>>, db: crate::store::Database) -> Console {
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
    respond::security_headers(&mut resp);
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
        ("/console/login", &Method::GET) => {
            return signin::login_form(cc, None, "", StatusCode::OK)
        }
        ("/console/login", &Method::POST) => return signin::login(console, cc, req).await,
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
            "/console/logout" => signin::logout(&ctx, cc),
            "/console/review/act" => actions::act(&ctx, &form).await,
            "/console/retry" => actions::retry(&ctx, &form).await,
            _ => not_found_plain(),
        };
    }
    if method != Method::GET {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "use GET or POST\n");
    }
    let query = req.uri().query().unwrap_or("").to_owned();
    let result = match path.as_str() {
        "/console/orders" => reads::orders(&ctx, &query).await,
        "/console/order" => reads::order(&ctx, &query).await,
        "/console/review" => reads::review_queue(&ctx).await,
        "/console/review/confirm" => reads::confirm(&ctx, &query).await,
        "/console/dead" => reads::dead(&ctx).await,
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
        f: impl FnOnce(&crate::store::read::Reader) -> Result<T, StoreError> + Send + 'static,
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
