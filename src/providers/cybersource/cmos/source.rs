//! Cybersource's Case Management Order Status POST (`cybersource-cmos`) as
//! a [`Source`], through `cmos::verify` and `cmos::notifications`.

use super::{CmosError, CmosVerifier};
use crate::domain::Notification;
use crate::providers::form;
use crate::providers::source::{BodyFormat, Rejected, RequestFacts, Source};

impl From<CmosError> for Rejected {
    fn from(e: CmosError) -> Self {
        Rejected {
            kind: e.refusal(),
            detail: e.to_string(),
        }
    }
}

/// What this provider's requests carry (`application/x-www-form-urlencoded`).
pub const BODY_FORMAT: BodyFormat = BodyFormat::Form;

/// A `cybersource-cmos` source.
pub struct CmosSource<'a> {
    pub verifier: CmosVerifier<'a>,
    /// When set, the document's `MerchantID` must equal it.
    pub merchant_id: Option<&'a str>,
}

impl Source for CmosSource<'_> {
    fn body_format(&self) -> BodyFormat {
        BODY_FORMAT
    }

    fn verify(
        &self,
        request: &RequestFacts<'_>,
        body: &[u8],
    ) -> Result<Vec<Notification>, Rejected> {
        // The token rides in the query string: checked before the body is
        // even decoded.
        let query = form::parse(request.query.unwrap_or("").as_bytes())?;
        super::verify(query.get("token"), request.peer, &self.verifier)?;
        let form = form::parse(body)?;
        Ok(super::notifications(&form, self.merchant_id)?)
    }

    fn risk_summary(&self, n: &Notification) -> String {
        crate::providers::cybersource::source::risk_summary(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::source::testing::{request, TestHeaders};
    use crate::providers::Refusal;

    #[test]
    fn the_token_in_the_query_and_the_peer_are_checked_before_the_body() {
        let allowed = ["198.51.100.0/24".parse().unwrap()];
        let source = CmosSource {
            verifier: CmosVerifier {
                token: "0123456789abcdef",
                allow_from: &allowed,
            },
            merchant_id: None,
        };
        let headers = TestHeaders(vec![]);
        let refusal = |query| {
            source
                .verify(&request(&headers, query), b"not a CMOS body")
                .unwrap_err()
                .kind
        };
        assert_eq!(refusal(None), Refusal::Unauthenticated);
        assert_eq!(refusal(Some("token=wrong")), Refusal::Unauthenticated);
        // The right token from a peer (192.0.2.1) outside the allow-list.
        assert_eq!(refusal(Some("token=0123456789abcdef")), Refusal::Forbidden);
        assert_eq!(source.body_format(), BodyFormat::Form);
    }
}
