//! The notification handler: route → content checks → bounded body read →
//! verify (pure, in `providers`) → commit (writer) → answer.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{HeaderMap, Method, Request, Response};
use tracing::{info, warn, Instrument};

use super::answer::{self, Body};
use super::AppState;
use crate::config::{Config, SourceConfig};
use crate::ops::logging::one_line;
use crate::ops::metrics as m;
use crate::providers::{BodyFormat, Headers, Refusal, Rejected, RequestFacts, Source};
use crate::store::{now_ms, NewNotification, SubmitError};

/// Headers kept with every stored delivery: never authorization headers,
/// signatures (`v-c-signature`) or secrets (`x-notification-secret`). In
/// byte order, the order of the keys in the stored JSON object.
const KEPT_HEADERS: &[&str] = &[
    "content-length",
    "content-type",
    "user-agent",
    // Cybersource webhooks: what, which subscription, which attempt.
    "v-c-event-type",
    "v-c-organization-id",
    "v-c-request-type",
    "v-c-retry-count",
    "v-c-transaction-trace-id",
    "v-c-webhook-id",
    "x-forwarded-for",
    // MPGS: the notification's id and attempt counter.
    "x-notification-attempt",
    "x-notification-id",
    "x-real-ip",
];

/// Providers read headers through this, without HTTP types.
impl Headers for HeaderMap {
    fn header(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(|v| v.to_str().ok())
    }
}

/// Request ids for log spans (per process, from 1).
static NEXT_REQUEST: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

pub async fn handle(state: &AppState, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let started = std::time::Instant::now();
    // One snapshot of the configuration for the whole request, even if a
    // reload happens meanwhile.
    let config = state.config.borrow().clone();
    let Some(source) = config.source_by_path(req.uri().path()) else {
        refused(None, peer, "not_found", req.uri().path());
        return answer::not_found();
    };
    // Every line logged for this request carries its id (and the event id
    // once stored), so one notification's lines can be grepped together.
    let span = tracing::info_span!(
        "ipn",
        request = NEXT_REQUEST.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        source = %source.name
    );
    let response = handle_source(state, &config, source, peer, req)
        .instrument(span)
        .await;
    m::record_for_source(
        m::REQUEST_SECONDS,
        &source.name,
        started.elapsed().as_secs_f64(),
    );
    response
}

async fn handle_source(
    state: &AppState,
    config: &std::sync::Arc<Config>,
    source: &SourceConfig,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Response<Body> {
    // The provider this source's requests go to (the one registration
    // point is `SourceConfig::provider`).
    let provider = source.provider();
    // Cybersource checks its webhook URL with a GET and wants a 200.
    let health_check = provider.answers_health_check();
    if health_check && req.method() == Method::GET {
        return answer::healthy();
    }
    if req.method() != Method::POST {
        refused(Some(source), peer, "method", req.method().as_str());
        return answer::method_not_allowed(if health_check { "GET, POST" } else { "POST" });
    }
    let format = provider.body_format();
    if !has_content_type(req.headers(), format) {
        refused(
            Some(source),
            peer,
            "content_type",
            content_type(req.headers()),
        );
        return answer::unsupported_media_type(format.mime());
    }
    let limit = config.body_limit;
    if let Some(len) = declared_length(req.headers()) {
        if len > limit as u64 {
            refused(Some(source), peer, "too_large", &len.to_string());
            return answer::too_large(limit);
        }
    }
    // The head stays with us (the providers read headers and the query);
    // only the body is consumed.
    let (parts, body) = req.into_parts();
    let headers = kept_headers(&parts.headers);
    let facts = RequestFacts {
        headers: &parts.headers,
        query: parts.uri.query(),
        peer: peer.ip(),
        now_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
    };
    let body = match read_body(body, limit, state.limits.body_read_timeout).await {
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

    let notifications = match provider.verify(&facts, &body) {
        Ok(n) => n,
        Err(Rejected { kind, detail }) => {
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

    let received_at = now_ms();
    // Held until the gateway confirms, per the source's `confirm`.
    let confirm = source.confirm;
    let news: Vec<NewNotification> = notifications
        .into_iter()
        .map(|notification| NewNotification {
            source: source.name.clone(),
            shop: source.shop.clone(),
            order_ref: strip_prefix(&notification.order_ref, &source.order_prefix).to_owned(),
            event_key: notification.event_key(),
            notification,
            received_at,
            peer: peer.to_string(),
            headers: headers.clone(),
            body: body.clone(),
        })
        .collect();
    // What the decision log line needs, taken before the notifications move
    // to the writer (rather than cloning them whole).
    let log_views: Vec<LogView> = news
        .iter()
        .map(|n| LogView::of(n, provider.as_ref()))
        .collect();
    // Every notification of the request is committed before the answer; if
    // any is not, the platform gets a 503 and retries the whole request
    // (the ones already stored are then duplicates without new effect).
    let mut receipts = Vec::with_capacity(news.len());
    for (result, view) in state
        .writer
        .submit_many_confirmed(news, confirm)
        .await
        .into_iter()
        .zip(&log_views)
    {
        match result {
            Ok(receipt) => {
                log_decision(source, view, &receipt);
                if view.live_at_gateway
                    && !receipt.duplicate
                    && matches!(
                        receipt.applied,
                        Some(crate::domain::Outcome::Rejected | crate::domain::Outcome::Canceled)
                    )
                {
                    // Committed: now cancel the transaction at the gateway
                    // (in the background), or say that someone must.
                    crate::review::after_live_rejection(
                        config.clone(),
                        source,
                        source.shop.as_deref().unwrap_or(""),
                        &view.order_ref,
                    );
                }
                receipts.push(receipt);
            }
            Err(e) => {
                warn!(source = %source.name, %peer, error = %one_line(&e.to_string()), "notification not stored, answering 503 so the platform retries");
                let reason = match e {
                    SubmitError::Overloaded => "overloaded",
                    SubmitError::ShuttingDown => "shutting down",
                    SubmitError::Storage(_) => "storage error",
                };
                metrics::counter!(m::UNAVAILABLE, "source" => source.name.clone(), "reason" => reason)
                    .increment(1);
                return answer::unavailable(reason);
            }
        }
    }
    answer::stored_many(&receipts)
}

/// The shop's order reference: the platform's, less the configured prefix.
/// A reference that is nothing but the prefix is kept whole, so that the
/// shop's reference is empty exactly when the platform sent none (the
/// decision rules ignore those).
fn strip_prefix<'a>(order_ref: &'a str, prefix: &str) -> &'a str {
    match order_ref.strip_prefix(prefix) {
        Some(rest) if !prefix.is_empty() && !rest.is_empty() => rest,
        _ => order_ref,
    }
}

/// What is kept of one notification for after its commit: its decision
/// line and the gateway cancel.
struct LogView {
    order_ref: String,
    /// A risk verdict about a transaction still alive at the gateway.
    live_at_gateway: bool,
    /// Only when the decision line is logged (INFO): copying them cost
    /// allocations on every notification (issue 18).
    line: Option<LineFacts>,
}

/// The facts the decision line shows besides the order.
struct LineFacts {
    transaction_id: String,
    status: String,
    origin: String,
    risk: String,
}

impl LogView {
    fn of(n: &NewNotification, provider: &dyn Source) -> LogView {
        LogView {
            order_ref: n.order_ref.clone(),
            live_at_gateway: crate::domain::outcome::live_at_gateway(&n.notification),
            line: tracing::enabled!(tracing::Level::INFO).then(|| LineFacts {
                transaction_id: n.notification.transaction_id.clone(),
                status: n.notification.status().to_owned(),
                origin: n.notification.origin().to_owned(),
                risk: provider.risk_summary(&n.notification),
            }),
        }
    }
}

fn log_decision(source: &SourceConfig, n: &LogView, r: &crate::store::IntakeReceipt) {
    let result = if r.duplicate {
        "duplicate"
    } else if r.applied.is_some() {
        "applied"
    } else {
        "ignored"
    };
    m::count_for_source(m::NOTIFICATIONS, &source.name, ("result", result));
    if let (Some(outcome), false) = (r.applied, r.duplicate) {
        m::count_for_source(m::OUTCOMES, &source.name, ("outcome", outcome.as_str()));
    }
    if let Some(line) = &n.line {
        log_line(source, &n.order_ref, line, r, result);
    }
    for w in &r.warnings {
        warn!(source = %source.name, event = r.event_id, order = %one_line(&n.order_ref), "{}", one_line(w));
    }
}

/// The decision line (INFO) of one stored notification.
fn log_line(
    source: &SourceConfig,
    order_ref: &str,
    n: &LineFacts,
    r: &crate::store::IntakeReceipt,
    result: &str,
) {
    info!(
        source = %source.name,
        event = r.event_id,
        // Values from the request: escaped and capped (one_line), so a
        // signed order id with CR/LF cannot forge a log line.
        order = %one_line(order_ref),
        transaction = %one_line(&n.transaction_id),
        status = %one_line(&n.status),
        origin = %one_line(&n.origin),
        risk = %one_line(&n.risk),
        outcome = %r.applied.unwrap_or(r.assessed),
        result,
        reason = %one_line(r.reason.as_deref().unwrap_or("")),
        batch = r.batch_size,
        // Debug-quoted: a multi-line comment stays on one log line.
        comment = ?r.comment,
        "notification {result}"
    );
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
        detail = %one_line(detail),
        "request refused"
    );
}

/// Whether the request's media type (parameters such as `charset` aside)
/// is the one the source's kind receives.
fn has_content_type(headers: &HeaderMap, format: BodyFormat) -> bool {
    let ct = content_type(headers);
    let got = ct.split(';').next().unwrap_or("").trim();
    got.eq_ignore_ascii_case(format.mime())
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

/// The [`KEPT_HEADERS`] a request has, as a JSON object of strings: what
/// `serde_json` writes for that map, its keys and values written straight
/// into one buffer (through a map, it took a dozen allocations per
/// notification). One pass over the request's few headers, each name
/// looked up in the sorted list: asking the map for each of the 13 names
/// parsed and hashed every name, a few thousand instructions per request
/// (issue 18, tenth pass). As `HeaderMap::get`, a name's first value is
/// the one kept, and it is left out when it is not visible ASCII.
fn kept_headers(headers: &HeaderMap) -> String {
    let mut found: [Option<Option<&str>>; KEPT_HEADERS.len()] = [None; KEPT_HEADERS.len()];
    for (name, value) in headers {
        if let Ok(i) = KEPT_HEADERS.binary_search(&name.as_str()) {
            // The first value of a name is the one `get` returns.
            found[i].get_or_insert(value.to_str().ok());
        }
    }
    let mut json = Vec::with_capacity(128);
    json.push(b'{');
    for (name, value) in KEPT_HEADERS.iter().zip(found) {
        if let Some(Some(v)) = value {
            if json.len() > 1 {
                json.push(b',');
            }
            // Writing a string into a `Vec` cannot fail.
            let _ = serde_json::to_writer(&mut json, name);
            json.push(b':');
            let _ = serde_json::to_writer(&mut json, v);
        }
    }
    json.push(b'}');
    String::from_utf8(json).expect("serde_json writes UTF-8")
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

#[cfg(test)]
mod tests {
    use super::{kept_headers, strip_prefix, KEPT_HEADERS};
    use hyper::header::{HeaderMap, HeaderName, HeaderValue};
    use proptest::prelude::*;

    /// What the stored headers were before they were written by hand:
    /// `serde_json`'s own object of the kept headers.
    fn through_serde(headers: &HeaderMap) -> String {
        let mut map = serde_json::Map::new();
        for name in KEPT_HEADERS {
            if let Some(v) = headers.get(*name).and_then(|v| v.to_str().ok()) {
                map.insert((*name).to_owned(), serde_json::Value::String(v.to_owned()));
            }
        }
        serde_json::Value::Object(map).to_string()
    }

    #[test]
    fn the_kept_headers_are_in_byte_order() {
        assert!(KEPT_HEADERS.windows(2).all(|w| w[0] < w[1]));
    }

    proptest! {
        #[test]
        fn kept_headers_are_stored_as_serde_json_wrote_them(
            sent in proptest::collection::vec(
                (
                    0..KEPT_HEADERS.len() + 3,
                    proptest::collection::vec(
                        prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff],
                        0..40,
                    ),
                ),
                0..24,
            ),
        ) {
            // Headers in any order, some names twice (the first value is
            // kept), values that are not visible ASCII (left out, as
            // `to_str` refuses them), and names that are never kept.
            let others = ["authorization", "v-c-signature", "x-notification-secret"];
            let mut headers = HeaderMap::new();
            for (i, value) in sent {
                let name = match KEPT_HEADERS.get(i) {
                    Some(kept) => kept,
                    None => others[i - KEPT_HEADERS.len()],
                };
                if let Ok(v) = HeaderValue::from_bytes(&value) {
                    headers.append(HeaderName::from_static(name), v);
                }
            }
            prop_assert_eq!(kept_headers(&headers), through_serde(&headers));
        }
    }

    #[test]
    fn the_prefix_is_stripped_but_never_to_nothing() {
        assert_eq!(strip_prefix("WEB-100042", "WEB-"), "100042");
        assert_eq!(strip_prefix("100042", "WEB-"), "100042");
        assert_eq!(strip_prefix("100042", ""), "100042");
        assert_eq!(strip_prefix("WEB-", "WEB-"), "WEB-");
        assert_eq!(strip_prefix("", "WEB-"), "");
    }
}
