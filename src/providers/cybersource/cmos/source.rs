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
