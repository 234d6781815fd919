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
