//! Lyra as a [`Source`]: form IPNs (`lyra-form`) and REST IPNs
//! (`lyra-rest`), through the parse and verify functions of `lyra.rs`.

use super::{FormVerifier, LyraError, Mode};
use crate::domain::{Facts, Notification};
use crate::providers::form;
use crate::providers::source::{BodyFormat, Rejected, RequestFacts, Source};

impl From<LyraError> for Rejected {
    fn from(e: LyraError) -> Self {
        Rejected {
            kind: e.refusal(),
            detail: e.to_string(),
        }
    }
}

/// What this provider's requests carry (`application/x-www-form-urlencoded`).
pub const BODY_FORMAT: BodyFormat = BodyFormat::Form;

/// A `lyra-form` source: a signed `vads_*` form.
pub struct FormSource<'a> {
    pub verifier: FormVerifier<'a>,
}

impl Source for FormSource<'_> {
    fn body_format(&self) -> BodyFormat {
        BODY_FORMAT
    }

    fn verify(&self, _: &RequestFacts<'_>, body: &[u8]) -> Result<Vec<Notification>, Rejected> {
        let form = form::parse(body)?;
        super::verify_form(&form, &self.verifier)?;
        Ok(vec![super::form_notification(&form)?])
    }

    fn risk_summary(&self, n: &Notification) -> String {
        risk_summary(n)
    }
}

/// A `lyra-rest` source: `kr-answer` signed with `kr-hash`.
pub struct RestSource<'a> {
    /// The REST password of the configured mode.
    pub password: &'a str,
    pub mode: Mode,
    /// When set, the answer's `shopId` must equal it.
    pub site_id: Option<&'a str>,
}

impl Source for RestSource<'_> {
    fn body_format(&self) -> BodyFormat {
        BODY_FORMAT
    }

    fn verify(&self, _: &RequestFacts<'_>, body: &[u8]) -> Result<Vec<Notification>, Rejected> {
        let form = form::parse(body)?;
        super::verify_rest(&form, self.password)?;
        Ok(vec![super::rest_notification(
            &form,
            self.mode,
            self.site_id,
        )?])
    }

    fn risk_summary(&self, n: &Notification) -> String {
        risk_summary(n)
    }
}

/// The risk assessment, the analysis result and every risk control that is
/// not `OK`.
fn risk_summary(n: &Notification) -> String {
    let Facts::Lyra(f) = &n.facts else {
        return String::new();
    };
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
}
