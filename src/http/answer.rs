//! The answers intake gives. Bodies are short `OK-…` / `KO-…` texts, as the
//! official Lyra plugins answer, so they read well in the platform's
//! back-office notification log and failure e-mails.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE, RETRY_AFTER};
use hyper::{Response, StatusCode};

use crate::domain::Outcome;
use crate::store::IntakeReceipt;

pub type Body = Full<Bytes>;

pub fn text(status: StatusCode, body: impl Into<String>) -> Response<Body> {
    let mut body = body.into();
    body.push('\n');
    with_body(status, Bytes::from(body))
}

/// [`text`] of a fixed line (`line` ends with its newline): the answers to
/// nearly every notification, sent without copying them (issue 18).
fn static_text(status: StatusCode, line: &'static str) -> Response<Body> {
    debug_assert!(line.ends_with('\n'));
    with_body(status, Bytes::from_static(line.as_bytes()))
}

fn with_body(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// 200 for a committed notification, worded after what happened.
pub fn stored(receipt: &IntakeReceipt) -> Response<Body> {
    let failure = |o: Outcome| matches!(o, Outcome::Rejected | Outcome::Failed | Outcome::Canceled);
    let line = if receipt.duplicate {
        match receipt.applied.unwrap_or(receipt.assessed) {
            o if failure(o) => "OK-Payment failure, already registered.\n",
            _ => "OK-Accepted payment, already registered.\n",
        }
    } else {
        match receipt.applied {
            Some(Outcome::Accepted) | Some(Outcome::Refunded) => {
                "OK-Accepted payment, order has been updated.\n"
            }
            Some(o) if failure(o) => "OK-Payment failure, order has been cancelled.\n",
            Some(o) => {
                return text(
                    StatusCode::OK,
                    format!(
                        "OK-Payment {}, order has been updated.",
                        o.as_str().replace('_', " ")
                    ),
                )
            }
            None => "OK-Notification recorded, order unchanged.\n",
        }
    };
    static_text(StatusCode::OK, line)
}

pub fn unauthenticated() -> Response<Body> {
    text(
        StatusCode::UNAUTHORIZED,
        "KO-An error occurred while computing the signature.",
    )
}

pub fn forbidden(detail: &str) -> Response<Body> {
    text(StatusCode::FORBIDDEN, format!("KO-{detail}"))
}

pub fn malformed(detail: &str) -> Response<Body> {
    text(
        StatusCode::BAD_REQUEST,
        format!("KO-Malformed notification: {detail}"),
    )
}

pub fn too_large(limit: usize) -> Response<Body> {
    text(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("KO-Notification larger than {limit} bytes."),
    )
}

/// 200 for several notifications of one request (a CMOS document), all
/// committed. Providers always yield at least one notification (a CMOS
/// document without `<Update>` is one without effect), so that every
/// verified delivery is stored; were none stored, nothing may be
/// acknowledged.
pub fn stored_many(receipts: &[IntakeReceipt]) -> Response<Body> {
    match receipts {
        [one] => stored(one),
        [] => unavailable("nothing was stored"),
        many => {
            let applied = many
                .iter()
                .filter(|r| !r.duplicate && r.applied.is_some())
                .count();
            text(
                StatusCode::OK,
                format!(
                    "OK-{} notifications recorded, {applied} order updates.",
                    many.len()
                ),
            )
        }
    }
}

/// 200 for a platform's health check (Cybersource GETs its webhook URL).
pub fn healthy() -> Response<Body> {
    text(StatusCode::OK, "OK")
}

/// 415, naming the type the source expects.
pub fn unsupported_media_type(expected: &str) -> Response<Body> {
    text(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("KO-Expected Content-Type {expected}."),
    )
}

pub fn not_found() -> Response<Body> {
    text(
        StatusCode::NOT_FOUND,
        "KO-No notification source at this path.",
    )
}

pub fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, format!("KO-Use {allow}."));
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
}

/// 503: the platform should retry later. Nothing was acknowledged.
pub fn unavailable(detail: &str) -> Response<Body> {
    let mut resp = text(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("KO-Temporarily unavailable ({detail}), please retry."),
    );
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("30"));
    resp
}

pub fn timeout() -> Response<Body> {
    text(
        StatusCode::REQUEST_TIMEOUT,
        "KO-Request body not received in time.",
    )
}
