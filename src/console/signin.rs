//! Sign-in and sign-out: the sign-in form with its own anti-forgery
//! cookie, the rate limit, the Argon2 check off the async threads, the
//! session cookie.

use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use serde::Deserialize;

use super::auth::{self, LOGIN_COOKIE, SESSION_COOKIE};
use super::respond::{cookie_value, cross_site, html, plain, read_form, redirect, set_cookie};
use super::{pages, Body, Console, Ctx, Peer};
use crate::config::ConsoleConfig;
use crate::ops::logging::one_line;
use crate::store::now_ms;

/// How long the sign-in form stays valid.
const LOGIN_FORM_SECS: i64 = 3600;

pub(super) fn login_form(
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

pub(super) async fn login(
    console: &Console,
    cc: &ConsoleConfig,
    req: Request<Incoming>,
) -> Response<Body> {
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

pub(super) fn logout(ctx: &Ctx<'_>, cc: &ConsoleConfig) -> Response<Body> {
    ctx.console.sessions.close(&ctx.token);
    tracing::info!(operator = %one_line(ctx.operator()), "console: signed out");
    let mut resp = redirect("/console/login");
    set_cookie(
        &mut resp,
        &auth::set_cookie(SESSION_COOKIE, "", 0, cc.secure_cookie),
    );
    resp
}
