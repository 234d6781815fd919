//! The admin API's review routes, served on the admin listener:
//!
//! - `GET /admin/review`: the orders waiting for a human (JSON array);
//! - `POST /admin/orders/{shop}/{order}/validate|deny`, optional JSON body
//!   `{"comment", "shop_only", "actor", "capture", "reverse"}` (`-` as the
//!   shop means a source without a shop).
//!
//! Every route needs `Authorization: Bearer <[admin] token>`, compared in
//! constant time. Without a configured token the routes do not exist (404
//! like any unknown path): the API is never open. Answers are JSON; errors
//! are `{"error": code, "message": text}` with 400, 401, 404, 409, 500, 502.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::ops::logging::one_line;
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::{Action, ReviewContext, ReviewError, ReviewRequest};
use crate::config::{Config, Secret};
use crate::providers::ct_eq;

/// Largest accepted request body: a comment and a few flags.
const BODY_LIMIT: usize = 16 * 1024;
/// How long a client may take to send it.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Who the shop's comment names when the caller gives no `actor`.
pub const DEFAULT_ACTOR: &str = "admin-api";

/// What the routes need from the daemon.
pub struct AdminApi {
    /// The live configuration (SIGHUP changes the token and credentials).
    pub config: watch::Receiver<Arc<Config>>,
    pub db: crate::store::Database,
}

/// The optional body of an action.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionBody {
    comment: Option<String>,
    #[serde(default)]
    shop_only: bool,
    actor: Option<String>,
    #[serde(default)]
    capture: bool,
    #[serde(default)]
    reverse: bool,
}

type Body = Full<Bytes>;

fn json_reply(status: StatusCode, value: &Value) -> Response<Body> {
    let mut body = serde_json::to_string_pretty(value).expect("JSON serialises");
    body.push('\n');
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn error_reply(status: StatusCode, code: &str, message: impl Into<String>) -> Response<Body> {
    json_reply(status, &json!({ "error": code, "message": message.into() }))
}

/// The same answer as any unknown path of the admin listener.
fn not_found() -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from_static(b"not found\n")));
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Handles a request whose path starts with `/admin/`.
pub async fn route(api: &AdminApi, req: Request<Incoming>) -> Response<Body> {
    let config = api.config.borrow().clone();
    let Some((token, _)) = &config.admin_token else {
        return not_found();
    };
    if !authorised(token, req.headers().get(hyper::header::AUTHORIZATION)) {
        let mut resp = error_reply(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong bearer token",
        );
        resp.headers_mut().insert(
            hyper::header::WWW_AUTHENTICATE,
            hyper::header::HeaderValue::from_static("Bearer"),
        );
        return resp;
    }
    let ctx = ReviewContext {
        config,
        db: api.db.clone(),
    };
    let path = req.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_start_matches("/admin/").split('/').collect();
    match segments.as_slice() {
        ["review"] => {
            if req.method() != Method::GET {
                return method_not_allowed("GET");
            }
            match super::queue(&ctx, None).await {
                Ok(items) => json_reply(
                    StatusCode::OK,
                    &super::queue_json(&items, crate::store::now_ms()),
                ),
                Err(e) => review_error(&e),
            }
        }
        ["orders", shop, order, action] => {
            let Some(action) = Action::parse(action) else {
                return not_found();
            };
            if req.method() != Method::POST {
                return method_not_allowed("POST");
            }
            let (shop, order) = match (decode_segment(shop), decode_segment(order)) {
                (Some(s), Some(o)) => (s, o),
                _ => {
                    return error_reply(
                        StatusCode::BAD_REQUEST,
                        "bad_request",
                        "bad percent-encoding in the path",
                    )
                }
            };
            let body = match read_body(req).await {
                Ok(b) => b,
                Err(resp) => return resp,
            };
            let request = ReviewRequest {
                action,
                order_ref: order,
                shop: Some(if shop == "-" { String::new() } else { shop }),
                actor: body.actor.unwrap_or_else(|| DEFAULT_ACTOR.to_owned()),
                comment: body.comment,
                shop_only: body.shop_only,
                capture: body.capture,
                reverse: body.reverse,
            };
            let (order, shop, actor) = (
                request.order_ref.clone(),
                request.shop.clone().unwrap_or_default(),
                request.actor.clone(),
            );
            // The daemon's log is the API's audit trail (the CLI's is the
            // operator's terminal); the timeline has both.
            match super::act(&ctx, request).await {
                Ok(report) => {
                    tracing::info!(
                        order = %one_line(&order), shop = %one_line(&shop), actor = %one_line(&actor), action = action.as_str(), gateway = %report.gateway,
                        status = %one_line(&report.gateway_status.join(", ")), moved = report.moved,
                        outbox = ?report.outbox_id, "admin API: review action done"
                    );
                    json_reply(StatusCode::OK, &super::report_json(&report))
                }
                Err(e) => {
                    tracing::warn!(
                        order = %one_line(&order), shop = %one_line(&shop), actor = %one_line(&actor), action = action.as_str(), error = %one_line(&e.to_string()),
                        "admin API: review action not done"
                    );
                    review_error(&e)
                }
            }
        }
        _ => not_found(),
    }
}

/// `Authorization: Bearer <token>`, compared in constant time: both sides
/// are hashed first, so neither the content nor the length of the token
/// shows in the timing.
fn authorised(expected: &Secret, header: Option<&hyper::header::HeaderValue>) -> bool {
    let Some((scheme, given)) = header
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
    else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer")
        && ct_eq(
            &Sha256::digest(given.trim().as_bytes()),
            &Sha256::digest(expected.expose().as_bytes()),
        )
}

fn method_not_allowed(allowed: &'static str) -> Response<Body> {
    let mut resp = error_reply(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("use {allowed}"),
    );
    resp.headers_mut().insert(
        hyper::header::ALLOW,
        hyper::header::HeaderValue::from_static(allowed),
    );
    resp
}

fn review_error(e: &ReviewError) -> Response<Body> {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_reply(status, &super::error_json(e))
}

/// The optional JSON body: empty means every default.
async fn read_body(req: Request<Incoming>) -> Result<ActionBody, Response<Body>> {
    let collected = tokio::time::timeout(
        BODY_TIMEOUT,
        Limited::new(req.into_body(), BODY_LIMIT).collect(),
    )
    .await
    .map_err(|_| {
        error_reply(
            StatusCode::REQUEST_TIMEOUT,
            "timeout",
            "the body did not arrive in time",
        )
    })?
    .map_err(|_| {
        error_reply(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("the body is limited to {BODY_LIMIT} bytes"),
        )
    })?
    .to_bytes();
    if collected.iter().all(u8::is_ascii_whitespace) {
        return Ok(ActionBody::default());
    }
    serde_json::from_slice(&collected).map_err(|e| {
        error_reply(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("the body is not the expected JSON object: {e}"),
        )
    })
}

/// Percent-decodes one path segment; `None` for a bad escape or invalid
/// UTF-8.
fn decode_segment(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_are_checked_whole() {
        let token = Secret::new("0123456789abcdef0123");
        let h = |v: &str| hyper::header::HeaderValue::from_str(v).unwrap();
        assert!(authorised(&token, Some(&h("Bearer 0123456789abcdef0123"))));
        assert!(authorised(&token, Some(&h("bearer 0123456789abcdef0123"))));
        assert!(!authorised(&token, Some(&h("Bearer 0123456789abcdef012"))));
        assert!(!authorised(&token, Some(&h("Basic 0123456789abcdef0123"))));
        assert!(!authorised(&token, Some(&h("0123456789abcdef0123"))));
        assert!(!authorised(&token, None));
    }

    #[test]
    fn path_segments_are_percent_decoded_strictly() {
        assert_eq!(decode_segment("A%2F1").as_deref(), Some("A/1"));
        assert_eq!(decode_segment("100042").as_deref(), Some("100042"));
        assert_eq!(decode_segment("%zz"), None);
        assert_eq!(decode_segment("%4"), None);
        assert_eq!(decode_segment("%ff"), None);
    }
}
