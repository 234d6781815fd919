//! Outbound HTTP: the one place that builds HTTP clients and reads what
//! the other side answered — shops (`shops::*`), the gateways' action and
//! read APIs (`review::*`, `confirm`), and `ipnsync send`.
//!
//! What every caller shares: rustls, our user agent, no redirects (a
//! redirect would re-send credentials to another host), timeouts; answers
//! read chunk by chunk up to a cap; a transport failure in plain words
//! without the URL (OpenCart tokens travel in the query); which HTTP
//! statuses are worth retrying; `Retry-After`. Callers turn an
//! [`OutboundError`] into their own error (`PushError`, `GatewayError`,
//! `CliError`) with their context.

use std::time::Duration;

use thiserror::Error;

/// Most bytes read from one answer. Shop and gateway APIs answer a few KiB
/// at most; a misbehaving peer (or whatever answers in its place) must not
/// make each concurrent call hold hundreds of MB.
pub const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// How long idle pooled connections are kept.
const POOL_IDLE: Duration = Duration::from_secs(60);

/// Whether a client follows redirects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirects {
    /// Never: the daemon's clients carry credentials.
    None,
    /// reqwest's default (up to 10): `ipnsync send`, which carries none of
    /// ours and always did.
    Follow,
}

/// How to build one client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// The whole request, answer included.
    pub timeout: Duration,
    /// Connecting only; `None` = bounded by `timeout` alone.
    pub connect_timeout: Option<Duration>,
    /// Keep this many idle connections per host (for [`POOL_IDLE`]): a
    /// long-lived client that pushes often. `None` = reqwest's defaults.
    pub idle_per_host: Option<usize>,
    pub redirects: Redirects,
}

impl ClientOptions {
    /// A client for a few calls with credentials: `timeout` for each,
    /// connecting in at most 10 s (or `timeout` if shorter), no redirects.
    pub fn calls(timeout: Duration) -> Self {
        ClientOptions {
            timeout,
            connect_timeout: Some(timeout.min(Duration::from_secs(10))),
            idle_per_host: None,
            redirects: Redirects::None,
        }
    }
}

/// Builds a client: rustls, `ipnsync/<version>` as user agent, `options`.
pub fn client(options: &ClientOptions) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .timeout(options.timeout)
        .user_agent(concat!("ipnsync/", env!("CARGO_PKG_VERSION")))
        .redirect(match options.redirects {
            Redirects::None => reqwest::redirect::Policy::none(),
            Redirects::Follow => reqwest::redirect::Policy::default(),
        });
    if let Some(connect) = options.connect_timeout {
        builder = builder.connect_timeout(connect);
    }
    if let Some(idle) = options.idle_per_host {
        builder = builder
            .pool_idle_timeout(POOL_IDLE)
            .pool_max_idle_per_host(idle.max(1));
    }
    // Only fails when the TLS backend cannot start, which rustls with its
    // bundled roots does not do: nothing an operator could fix at runtime.
    builder.build().expect("TLS backend initialises")
}

/// Why a call got no usable answer. Carries no URL, header or body beyond
/// the peer's own first words: safe for logs, the database and operators.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OutboundError {
    /// No HTTP answer (connect, TLS, timeout, a dropped connection):
    /// `what` is "timed out", "connection failed" or "request failed";
    /// `cause` the innermost error, in plain words for the common ones.
    #[error("{what}: {cause}")]
    Transport { what: &'static str, cause: String },
    /// The answer (declared or sent) was larger than the cap; it was
    /// dropped unread: whatever served it may be a proxy's page that goes
    /// away.
    #[error("answer larger than {cap} bytes (HTTP {status})")]
    TooLarge { cap: usize, status: u16 },
    /// An HTTP status that is not the API's own answer, with the first
    /// characters of the body.
    #[error("HTTP {status}: {snippet}")]
    Status {
        status: u16,
        snippet: String,
        /// The peer's `Retry-After`, for a retryable status.
        retry_after: Option<Duration>,
    },
}

impl OutboundError {
    /// Classifies a failure without an HTTP answer. reqwest's Display
    /// includes the URL — OpenCart tokens travel in the query — so it is
    /// stripped; its own text ("error sending request") says nothing: the
    /// cause is at the bottom of the source chain ("Connection refused",
    /// "dns error…", the TLS alert).
    pub fn transport(e: reqwest::Error) -> Self {
        let what = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            CONNECT_FAILED
        } else {
            "request failed"
        };
        let e = e.without_url();
        OutboundError::Transport {
            what,
            cause: root_cause(&e),
        }
    }

    /// An answer whose HTTP status says the API did not answer (a proxy's
    /// 502, a 429, a 404 page…).
    pub fn status(
        status: reqwest::StatusCode,
        headers: &reqwest::header::HeaderMap,
        body: &str,
    ) -> Self {
        let snippet: String = body.chars().take(300).collect();
        OutboundError::Status {
            status: status.as_u16(),
            snippet: snippet.trim().to_owned(),
            retry_after: if is_retryable_status(status.as_u16()) {
                retry_after(headers)
            } else {
                None
            },
        }
    }

    /// Whether asking again later may work: every transport failure and
    /// oversized answer, 429 and 5xx. Other statuses are the peer's final
    /// word.
    pub fn is_retryable(&self) -> bool {
        match self {
            OutboundError::Transport { .. } | OutboundError::TooLarge { .. } => true,
            OutboundError::Status { status, .. } => is_retryable_status(*status),
        }
    }

    /// Whether the request may have reached the peer without an answer
    /// coming back (a timeout, a connection dropped after connecting): the
    /// peer may still act on it. A failed connect sent nothing.
    pub fn unanswered(&self) -> bool {
        matches!(self, OutboundError::Transport { what, .. } if *what != CONNECT_FAILED)
    }

    /// The peer's `Retry-After`, when it sent one with a retryable status.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            OutboundError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

const CONNECT_FAILED: &str = "connection failed";

/// 429 and 5xx may pass; any other status will not change by itself.
pub fn is_retryable_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}

/// The most specific text in an error's source chain, in plain words for
/// the common I/O causes.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest: &(dyn std::error::Error + 'static) = e;
    let mut io_kind = None;
    let mut current = Some(e);
    while let Some(err) = current {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        deepest = err;
        current = err.source();
    }
    use std::io::ErrorKind as K;
    match io_kind {
        Some(K::ConnectionRefused) => "connection refused".to_owned(),
        Some(K::ConnectionReset) => "connection reset by the server".to_owned(),
        Some(K::ConnectionAborted) => "connection aborted".to_owned(),
        Some(K::TimedOut) => "timed out".to_owned(),
        Some(K::UnexpectedEof) => "the server closed the connection before answering".to_owned(),
        _ => deepest.to_string(),
    }
}

/// Reads a response body, chunk by chunk, up to `cap` bytes (UTF-8, invalid
/// sequences replaced, as `Response::text` does). A larger answer (declared
/// or sent) is [`OutboundError::TooLarge`] and the connection is dropped
/// unread.
pub async fn read_body_capped(
    mut response: reqwest::Response,
    cap: usize,
) -> Result<String, OutboundError> {
    let status = response.status().as_u16();
    let too_large = OutboundError::TooLarge { cap, status };
    if response
        .content_length()
        .is_some_and(|len| len > cap as u64)
    {
        return Err(too_large);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(OutboundError::transport)? {
        if body.len() + chunk.len() > cap {
            return Err(too_large);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// Parses `Retry-After` (seconds or an HTTP date; a date in the past is
/// none).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    at.duration_since(std::time::SystemTime::now()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
    use reqwest::StatusCode;

    fn headers(retry: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_str(retry).unwrap());
        h
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(
            retry_after(&headers(" 120 ")),
            Some(Duration::from_secs(120))
        );
        let future = std::time::SystemTime::now() + Duration::from_secs(3600);
        let wait = retry_after(&headers(&httpdate::fmt_http_date(future))).unwrap();
        assert!(wait > Duration::from_secs(3000) && wait <= Duration::from_secs(3600));
        assert_eq!(retry_after(&headers("Thu, 01 Jan 1970 00:00:00 GMT")), None);
        assert_eq!(retry_after(&headers("soon")), None);
        assert_eq!(retry_after(&HeaderMap::new()), None);
    }

    #[test]
    fn statuses_are_classified_and_only_retryable_ones_keep_retry_after() {
        let busy = OutboundError::status(
            StatusCode::TOO_MANY_REQUESTS,
            &headers("30"),
            "  slow down  ",
        );
        assert!(busy.is_retryable());
        assert_eq!(busy.retry_after(), Some(Duration::from_secs(30)));
        assert_eq!(busy.to_string(), "HTTP 429: slow down");
        let down = OutboundError::status(StatusCode::BAD_GATEWAY, &HeaderMap::new(), "");
        assert!(down.is_retryable());
        let gone = OutboundError::status(StatusCode::NOT_FOUND, &headers("30"), &"x".repeat(400));
        assert!(!gone.is_retryable());
        assert_eq!(gone.retry_after(), None);
        assert_eq!(gone.to_string(), format!("HTTP 404: {}", "x".repeat(300)));
        assert!(!is_retryable_status(400) && !is_retryable_status(302));
        assert!(OutboundError::TooLarge {
            cap: 1,
            status: 200
        }
        .is_retryable());
    }

    /// The error of a GET to `url` that gets no HTTP answer.
    async fn transport_failure(url: &str, timeout: Duration) -> OutboundError {
        let c = client(&ClientOptions::calls(timeout));
        OutboundError::transport(c.get(url).send().await.unwrap_err())
    }

    #[tokio::test]
    async fn a_refused_connection_is_retryable_and_says_so_without_the_url() {
        // A port nothing listens on: bind one, note it, close it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = transport_failure(
            &format!("http://127.0.0.1:{port}/x?token=s3cret"),
            Duration::from_secs(5),
        )
        .await;
        assert!(e.is_retryable());
        assert!(!e.unanswered(), "nothing was sent");
        assert_eq!(e.to_string(), "connection failed: connection refused");
    }

    #[tokio::test]
    async fn a_request_that_times_out_may_still_be_running_at_the_peer() {
        // A peer that accepts and reads but never answers.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let held = tokio::spawn(async move {
            let (socket, _) = listener.accept().await.unwrap();
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(socket);
        });
        let e = transport_failure(
            &format!("http://127.0.0.1:{port}/x"),
            Duration::from_millis(200),
        )
        .await;
        assert!(e.is_retryable());
        assert!(e.unanswered(), "{e}");
        assert!(
            !OutboundError::status(StatusCode::BAD_GATEWAY, &HeaderMap::new(), "").unanswered()
        );
        held.abort();
    }
}
