//! The one interface intake talks to: a [`Source`] verifies a request's raw
//! bytes and turns them into notifications, and summarises the risk
//! findings of what it produced. Each provider implements it in its own
//! module (`lyra/source.rs`, `cybersource/source.rs`,
//! `cybersource/cmos/source.rs`, `mpgs/source.rs`); `config` builds the one
//! for a configured source (`SourceConfig::provider`), so intake never
//! matches on a kind.
//!
//! Pure like the rest of `providers`: the clock and the peer come in
//! through [`RequestFacts`], nothing is read here.

use std::net::IpAddr;

use super::Refusal;
use crate::domain::Notification;

/// The body a source receives, for the `Content-Type` check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `application/json`.
    Json,
}

impl BodyFormat {
    /// The media type a request must declare.
    pub fn mime(self) -> &'static str {
        match self {
            BodyFormat::Form => "application/x-www-form-urlencoded",
            BodyFormat::Json => "application/json",
        }
    }
}

/// Header lookup by (lower-case) name; the HTTP layer implements it for its
/// header map, so providers need no HTTP types.
pub trait Headers {
    /// The header's value, `None` when absent or not visible ASCII.
    fn header(&self, name: &str) -> Option<&str>;
}

/// What a provider may look at besides the body.
pub struct RequestFacts<'a> {
    pub headers: &'a (dyn Headers + Sync),
    /// The raw query string (a `cybersource-cmos` token).
    pub query: Option<&'a str>,
    pub peer: IpAddr,
    /// The daemon's clock, Unix seconds: providers do not read clocks.
    pub now_unix: u64,
}

impl RequestFacts<'_> {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.header(name)
    }
}

/// A refused request: how to answer it and a secret-free reason (every
/// provider error maps to one the same way: its own classification, its
/// own message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub kind: Refusal,
    pub detail: String,
}

impl From<super::form::FormError> for Rejected {
    fn from(e: super::form::FormError) -> Self {
        Rejected {
            kind: Refusal::Malformed,
            detail: e.to_string(),
        }
    }
}

/// A configured notification source, as intake sees it.
pub trait Source {
    /// What the body must be (`Content-Type`).
    fn body_format(&self) -> BodyFormat;

    /// Whether a GET on the path is a health check answered 200 (the
    /// platform checks its webhook URL that way).
    fn answers_health_check(&self) -> bool {
        false
    }

    /// Pure verification of the raw body: one notification, or several
    /// when one request carries several (a CMOS document).
    fn verify(
        &self,
        request: &RequestFacts<'_>,
        body: &[u8],
    ) -> Result<Vec<Notification>, Rejected>;

    /// The risk findings of a notification this source produced, compact,
    /// for the decision log line (empty for another provider's facts).
    fn risk_summary(&self, notification: &Notification) -> String;
}

/// `k=v` pairs joined by `;`, empty values left out.
pub(crate) fn pairs(fields: &[(&str, &String)]) -> String {
    fields
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// Requests for the providers' `Source` tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::{Headers, RequestFacts};

    /// Headers as `(lower-case name, value)` pairs.
    pub(crate) struct TestHeaders(pub(crate) Vec<(&'static str, String)>);

    impl Headers for TestHeaders {
        fn header(&self, name: &str) -> Option<&str> {
            self.0
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_str())
        }
    }

    /// A request from 192.0.2.1 at `now_unix` 1_700_000_000.
    pub(crate) fn request<'a>(
        headers: &'a TestHeaders,
        query: Option<&'a str>,
    ) -> RequestFacts<'a> {
        RequestFacts {
            headers,
            query,
            peer: "192.0.2.1".parse().unwrap(),
            now_unix: 1_700_000_000,
        }
    }
}
