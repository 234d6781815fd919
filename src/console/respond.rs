//! Request and response plumbing: the form body (capped, with a
//! timeout), cookies, `Sec-Fetch-Site`, responses and the security
//! headers every answer carries.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};
use hyper::{Request, Response, StatusCode};
use maud::Markup;

use super::{auth, Body};

/// Largest form body accepted (a comment and a few fields).
const BODY_LIMIT: usize = 16 * 1024;
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// No script, no inline style, no framing, forms only to ourselves.
const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A decoded form body: the first value of each name.
pub(super) struct Form(Vec<(String, String)>);

impl Form {
    pub(super) fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

pub(super) async fn read_form(req: Request<Incoming>) -> Result<Form, Response<Body>> {
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
pub(super) fn cross_site<B>(req: &Request<B>) -> bool {
    req.headers()
        .get("sec-fetch-site")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.eq_ignore_ascii_case("cross-site") || v.eq_ignore_ascii_case("same-site")
        })
}

pub(super) fn cookie_value<B>(req: &Request<B>, name: &str) -> Option<String> {
    req.headers()
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|h| auth::cookie(h, name).map(str::to_owned))
        .filter(|v| !v.is_empty())
}

pub(super) fn reply(
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

pub(super) fn html(status: StatusCode, markup: Markup) -> Response<Body> {
    reply(status, "text/html; charset=utf-8", markup.into_string())
}

pub(super) fn plain(status: StatusCode, text: &str) -> Response<Body> {
    reply(status, "text/plain; charset=utf-8", text.to_owned())
}

pub(super) fn not_found_plain() -> Response<Body> {
    plain(StatusCode::NOT_FOUND, "not found\n")
}

/// 303: the browser follows with a GET (post/redirect/get).
pub(super) fn redirect(to: &str) -> Response<Body> {
    let mut resp = plain(StatusCode::SEE_OTHER, "");
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(LOCATION, v);
    }
    resp
}

pub(super) fn set_cookie(resp: &mut Response<Body>, cookie: &str) {
    if let Ok(v) = HeaderValue::from_str(cookie) {
        resp.headers_mut().append(SET_COOKIE, v);
    }
}

pub(super) fn security_headers(resp: &mut Response<Body>) {
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
