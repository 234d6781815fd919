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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::outcome::test_support::{mpgs_tx, Ipn};
    use crate::providers::lyra::{form_signature, SignAlgo};
    use crate::providers::source::testing::{request, TestHeaders};
    use crate::providers::Refusal;

    fn signed(fields: &[(&str, &str)], key: &str) -> Vec<u8> {
        let unsigned = serde_urlencoded::to_string(fields).unwrap();
        let form = form::parse(unsigned.as_bytes()).unwrap();
        let signature = form_signature(&form, key, SignAlgo::HmacSha256);
        let mut all = fields.to_vec();
        all.push(("signature", &signature));
        serde_urlencoded::to_string(&all).unwrap().into_bytes()
    }

    fn source(mode: Mode) -> FormSource<'static> {
        FormSource {
            verifier: FormVerifier {
                mode,
                algo: SignAlgo::HmacSha256,
                key: "1122334455667788",
                site_id: None,
            },
        }
    }

    #[test]
    fn the_form_source_verifies_with_its_key_and_mode() {
        let headers = TestHeaders(vec![]);
        let body = signed(&[("vads_ctx_mode", "PRODUCTION")], "1122334455667788");
        let err = source(Mode::Test)
            .verify(&request(&headers, None), &body)
            .unwrap_err();
        assert_eq!(err.kind, Refusal::Forbidden, "{err:?}");
        let forged = signed(&[("vads_ctx_mode", "TEST")], "another-key");
        let err = source(Mode::Test)
            .verify(&request(&headers, None), &forged)
            .unwrap_err();
        assert_eq!(err.kind, Refusal::Unauthenticated, "{err:?}");
        let err = source(Mode::Test)
            .verify(&request(&headers, None), b"vads_a=%zz")
            .unwrap_err();
        assert_eq!(err.kind, Refusal::Malformed, "{err:?}");
        assert_eq!(source(Mode::Test).body_format(), BodyFormat::Form);
        assert!(!source(Mode::Test).answers_health_check());
    }

    #[test]
    fn the_risk_summary_lists_assessments_analysis_and_controls_not_ok() {
        let n = Ipn::new("AUTHORISED")
            .assessment("ENABLE_3DS;MANUAL_VALIDATION")
            .analysis("FRAUD")
            .control("CARD_FRAUD=OK;SUSPECT_COUNTRY=WARNING")
            .build();
        assert_eq!(
            source(Mode::Test).risk_summary(&n),
            "ENABLE_3DS;MANUAL_VALIDATION;analysis=FRAUD;SUSPECT_COUNTRY=WARNING"
        );
        assert_eq!(
            source(Mode::Test).risk_summary(&Ipn::new("AUTHORISED").build()),
            ""
        );
        // Another provider's facts are not this source's to summarise.
        let other = mpgs_tx("PAYMENT", "SUCCESS", "APPROVED", "REVIEW", "");
        assert_eq!(source(Mode::Test).risk_summary(&other), "");
    }
}
