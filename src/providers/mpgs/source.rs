//! Mastercard Gateway webhooks (`mpgs`) as a [`Source`], through
//! `mpgs::verify` and `mpgs::notification`.

use super::{MpgsError, OrderRefField, ID_HEADER, SECRET_HEADER};
use crate::domain::{Facts, Notification};
use crate::providers::source::{pairs, BodyFormat, Rejected, RequestFacts, Source};

impl From<MpgsError> for Rejected {
    fn from(e: MpgsError) -> Self {
        Rejected {
            kind: e.refusal(),
            detail: e.to_string(),
        }
    }
}

/// What this provider's requests carry (`application/json`).
pub const BODY_FORMAT: BodyFormat = BodyFormat::Json;

/// An `mpgs` source.
pub struct MpgsSource<'a> {
    /// The current secret, then the previous one during a rotation.
    pub secrets: Vec<&'a str>,
    /// When set, the body's `merchant` must equal it.
    pub merchant_id: Option<&'a str>,
    pub order_ref: OrderRefField,
}

impl Source for MpgsSource<'_> {
    fn body_format(&self) -> BodyFormat {
        BODY_FORMAT
    }

    fn verify(
        &self,
        request: &RequestFacts<'_>,
        body: &[u8],
    ) -> Result<Vec<Notification>, Rejected> {
        super::verify(request.header(SECRET_HEADER), &self.secrets)?;
        Ok(vec![super::notification(
            body,
            request.header(ID_HEADER),
            self.merchant_id,
            self.order_ref,
        )?])
    }

    fn risk_summary(&self, n: &Notification) -> String {
        let Facts::Mpgs(f) = &n.facts else {
            return String::new();
        };
        pairs(&[
            ("type", &f.transaction_type),
            ("risk", &f.risk_gateway_code),
            ("review", &f.review_decision),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::outcome::test_support::{dm_with_status, mpgs_tx};
    use crate::providers::source::testing::{request, TestHeaders};
    use crate::providers::Refusal;

    fn source() -> MpgsSource<'static> {
        MpgsSource {
            secrets: vec!["current-secret", "previous-secret"],
            merchant_id: None,
            order_ref: OrderRefField::OrderId,
        }
    }

    #[test]
    fn every_configured_secret_is_accepted_and_only_those() {
        let refusal = |secret: Option<&str>| {
            let headers = TestHeaders(
                secret
                    .map(|s| vec![(SECRET_HEADER, s.to_owned())])
                    .unwrap_or_default(),
            );
            source()
                .verify(&request(&headers, None), b"[]")
                .unwrap_err()
                .kind
        };
        assert_eq!(refusal(None), Refusal::Unauthenticated);
        assert_eq!(refusal(Some("guess")), Refusal::Unauthenticated);
        // Past the secret check, the body is what is wrong.
        assert_eq!(refusal(Some("current-secret")), Refusal::Malformed);
        assert_eq!(refusal(Some("previous-secret")), Refusal::Malformed);
    }

    #[test]
    fn the_risk_summary_names_type_risk_and_review() {
        let n = mpgs_tx("PAYMENT", "SUCCESS", "APPROVED", "REVIEW", "PENDING");
        assert_eq!(
            source().risk_summary(&n),
            "type=PAYMENT;risk=REVIEW;review=PENDING"
        );
        let n = mpgs_tx("AUTHORIZATION", "SUCCESS", "APPROVED", "", "");
        assert_eq!(source().risk_summary(&n), "type=AUTHORIZATION");
        let other = dm_with_status("payments.payments.review", "DECLINED", "");
        assert_eq!(source().risk_summary(&other), "");
    }
}
