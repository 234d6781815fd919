//! The notification handler: route → content checks → bounded body read →
//! verify (pure, in `providers`) → commit (writer) → answer.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Request, Response};
use tracing::{info, warn};

use super::answer::{self, Body};
use super::AppState;
use crate::config::{Config, SourceConfig, SourceKind};
use crate::domain::Notification;
use crate::ops::metrics as m;
use crate::providers::form;
use crate::providers::lyra::{self, FormVerifier, LyraError};
use crate::providers::Refusal;
use crate::store::{now_ms, NewNotification, SubmitError};

/// Headers kept with every stored delivery (never authorization headers).
const KEPT_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "user-agent",
    "x-forwarded-for",
    "x-real-ip",
];

pub async fn handle(state: &AppState, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let started = std::time::Instant::now();
    // One snapshot of the configuration for the whole request, even if a
    // reload happens meanwhile.
    let config = state.config.borrow().clone();
    let path = req.uri().path().to_owned();
    let Some(source) = config.source_by_path(&path) else {
        refused(None, peer, "not_found", &path);
        return answer::not_found();
    };
    let response = handle_source(state, &config, source, peer, req).await;
    metrics::histogram!(m::REQUEST_SECONDS, "source" => source.name.clone())
        .record(started.elapsed().as_secs_f64());
    response
}

async fn handle_source(
    state: &AppState,
    config: &Config,
    source: &SourceConfig,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    if req.method() != Method::POST {
        refused(Some(source), peer, "method", req.method().as_str());
        return answer::method_not_allowed("POST");
    }
    if !is_form(req.headers()) {
        refused(
            Some(source),
            peer,
            "content_type",
            content_type(req.headers()),
        );
        return answer::unsupported_media_type();
    }
    let limit = config.body_limit;
    if let Some(len) = declared_length(req.headers()) {
        if len > limit as u64 {
            refused(Some(source), peer, "too_large", &len.to_string());
            return answer::too_large(limit);
        }
    }
    let headers = kept_headers(req.headers());
    let body = match read_body(req.into_body(), limit, state.limits.body_read_timeout).await {
        Ok(b) => b,
        Err(BodyError::TooLarge) => {
            refused(Some(source), peer, "too_large", "");
            return answer::too_large(limit);
        }
        Err(BodyError::Timeout) => {
            refused(Some(source), peer, "timeout", "");
            return answer::timeout();
        }
        Err(BodyError::Io(e)) => {
            refused(Some(source), peer, "body_read", &e);
            return answer::malformed("body could not be read");
        }
    };

    let notification = match verify(source, &body) {
        Ok(n) => n,
        Err(Refused { kind, detail }) => {
            let reason = match kind {
                Refusal::Unauthenticated => "signature",
                Refusal::Forbidden => "forbidden",
                Refusal::Malformed => "malformed",
            };
            refused(Some(source), peer, reason, &detail);
            return match kind {
                Refusal::Unauthenticated => answer::unauthenticated(),
                Refusal::Forbidden => answer::forbidden(&detail),
                Refusal::Malformed => answer::malformed(&detail),
            };
        }
    };

    let order_ref = strip_prefix(&notification.order_ref, &source.order_prefix).to_owned();
    let new = NewNotification {
        source: source.name.clone(),
        shop: source.shop.clone(),
        order_ref,
        event_key: notification.event_key(),
        notification,
        received_at: now_ms(),
        peer: peer.to_string(),
        headers,
        body,
    };
    let log_view = new.clone();
    match state.writer.submit(new).await {
        Ok(receipt) => {
            log_decision(source, &log_view, &receipt);
            answer::stored(&receipt)
        }
        Err(e) => {
            warn!(source = %source.name, %peer, error = %e, "notification not stored, answering 503 so the platform retries");
            let reason = match e {
                SubmitError::Overloaded => "overloaded",
                SubmitError::ShuttingDown => "shutting down",
                SubmitError::Storage(_) => "storage error",
            };
            metrics::counter!(m::UNAVAILABLE, "source" => source.name.clone(), "reason" => reason)
                .increment(1);
            answer::unavailable(reason)
        }
    }
}

struct Refused {
    kind: Refusal,
    detail: String,
}

impl From<LyraError> for Refused {
    fn from(e: LyraError) -> Self {
        Refused {
            kind: e.refusal(),
            detail: e.to_string(),
        }
    }
}

/// Pure verification of the raw body for the source's kind.
fn verify(source: &SourceConfig, body: &[u8]) -> Result<Notification, Refused> {
    let form = form::parse(body).map_err(|e| Refused {
        kind: Refusal::Malformed,
        detail: e.to_string(),
    })?;
    match source.kind {
        SourceKind::LyraForm => {
            lyra::verify_form(
                &form,
                &FormVerifier {
                    mode: source.mode,
                    algo: source.algorithm,
                    key: source.key.expose(),
                    site_id: source.site_id.as_deref(),
                },
            )?;
            Ok(lyra::form_notification(&form)?)
        }
        SourceKind::LyraRest => {
            lyra::verify_rest(&form, source.key.expose())?;
            Ok(lyra::rest_notification(&form, source.mode)?)
        }
    }
}

fn strip_prefix<'a>(order_ref: &'a str, prefix: &str) -> &'a str {
    if prefix.is_empty() {
        order_ref
    } else {
        order_ref.strip_prefix(prefix).unwrap_or(order_ref)
    }
}

fn log_decision(source: &SourceConfig, n: &NewNotification, r: &crate::store::IntakeReceipt) {
    let facts = n.notification.lyra();
    let risk = facts
        .map(|f| {
            let mut parts = f.risk_assessment.clone();
            if !f.risk_analysis.is_empty() {
                parts.push(format!("analysis={}", f.risk_analysis));
            }
            for (c, v) in &f.risk_control {
                if v != "OK" {
                    parts.push(format!("{c}={v}"));
                }
            }
            parts.join(";")
        })
        .unwrap_or_default();
    let result = if r.duplicate {
        "duplicate"
    } else if r.applied.is_some() {
        "applied"
    } else {
        "ignored"
    };
    metrics::counter!(m::NOTIFICATIONS, "source" => source.name.clone(), "result" => result)
        .increment(1);
    if let (Some(outcome), false) = (r.applied, r.duplicate) {
        metrics::counter!(m::OUTCOMES, "source" => source.name.clone(), "outcome" => outcome.as_str()).increment(1);
    }
    info!(
        source = %source.name,
        event = r.event_id,
        order = %n.order_ref,
        transaction = %n.notification.transaction_id,
        status = %n.notification.status(),
        origin = %n.notification.origin(),
        risk = %risk,
        outcome = %r.applied.unwrap_or(r.assessed),
        result,
        reason = r.reason.as_deref().unwrap_or(""),
        batch = r.batch_size,
        // Debug-quoted: a multi-line comment stays on one log line.
        comment = ?r.comment,
        "notification {result}"
    );
    for w in &r.warnings {
        warn!(source = %source.name, event = r.event_id, order = %n.order_ref, "{w}");
    }
}

/// Logs a refused request at WARN and counts it: source, peer and reason,
/// never a key or a signature (the detail texts come from typed errors that
/// carry neither).
fn refused(source: Option<&SourceConfig>, peer: SocketAddr, reason: &'static str, detail: &str) {
    let name = source.map(|s| s.name.as_str()).unwrap_or("-");
    metrics::counter!(m::REFUSED, "source" => name.to_owned(), "reason" => reason).increment(1);
    warn!(
        source = name,
        %peer,
        reason,
        detail,
        "request refused"
    );
}

fn is_form(headers: &HeaderMap) -> bool {
    let ct = content_type(headers);
    let mime = ct.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/x-www-form-urlencoded")
}

fn content_type(headers: &HeaderMap) -> &str {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

fn kept_headers(headers: &HeaderMap) -> String {
    let mut map = serde_json::Map::new();
    for name in KEPT_HEADERS {
        if let Some(v) = headers.get(*name).and_then(|v| v.to_str().ok()) {
            map.insert((*name).to_owned(), serde_json::Value::String(v.to_owned()));
        }
    }
    serde_json::Value::Object(map).to_string()
}

enum BodyError {
    TooLarge,
    Timeout,
    Io(String),
}

async fn read_body(body: Incoming, limit: usize, timeout: Duration) -> Result<Bytes, BodyError> {
    let limited = Limited::new(body, limit);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => Err(BodyError::Timeout),
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(BodyError::TooLarge)
            } else {
                Err(BodyError::Io(e.to_string()))
            }
        }
    }
}
