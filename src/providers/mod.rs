//! Per-provider verification and parsing. Pure: no I/O, no clock, no config
//! files. Each provider takes raw bytes plus the source's keys and returns a
//! verified [`crate::domain::Notification`] or a typed refusal, and plugs
//! into intake as a [`Source`] (its `source.rs`).

pub mod cidr;
pub mod cybersource;
pub mod form;
pub mod lyra;
pub mod mpgs;
pub mod source;

pub use source::{BodyFormat, Headers, Rejected, RequestFacts, Source};

use subtle::ConstantTimeEq;

/// Compares two byte strings in constant time (for equal lengths; lengths
/// are public: every signature of one algorithm has the same length).
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

/// How an HTTP layer should classify a refused notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Missing or wrong signature → 401.
    Unauthenticated,
    /// Signed correctly but not acceptable for this source (mode mismatch) → 403.
    Forbidden,
    /// Not a well-formed notification → 400.
    Malformed,
}

#[cfg(test)]
mod tests {
    use super::ct_eq;

    #[test]
    fn ct_eq_compares_bytes_and_length() {
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(ct_eq(b"", b""));
    }
}
