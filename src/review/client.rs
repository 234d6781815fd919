//! The gateway clients' HTTP plumbing, over [`crate::outbound`]: one
//! client per action or read, and outbound failures as [`GatewayError`].

use super::GatewayError;
use crate::outbound::{self, ClientOptions, OutboundError};

/// The client for one action or read: the source's timeout for the whole
/// call, no redirects (a redirect would re-send the credentials
/// elsewhere).
pub(super) fn http_client(timeout: std::time::Duration) -> reqwest::Client {
    outbound::client(&ClientOptions::calls(timeout))
}

/// A request that got no HTTP answer: the gateway could not be reached
/// (outbound drops the URL and names the innermost cause).
pub(super) fn transport_error(e: reqwest::Error) -> GatewayError {
    GatewayError::Unreachable(OutboundError::transport(e).to_string())
}

/// Reads a gateway's answer, at most [`outbound::MAX_ANSWER_BYTES`]: a
/// misbehaving endpoint cannot make the daemon hold an unbounded body.
/// The status is left to each client (its API says which are answers).
pub(super) async fn read_answer(response: reqwest::Response) -> Result<String, GatewayError> {
    outbound::read_body_capped(response, outbound::MAX_ANSWER_BYTES)
        .await
        .map_err(|e| GatewayError::Unreachable(e.to_string()))
}

/// The first characters of a body that is not the expected JSON.
pub(super) fn snippet(body: &str) -> String {
    let s: String = body.chars().take(200).collect();
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
