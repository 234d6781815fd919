//! Cybersource REST webhooks (`v-c-signature`) as a [`Source`], through
//! `verify_webhook` and `webhook_notification`.

use super::{CybersourceError, SigningKey, WebhookVerifier, SIGNATURE_HEADER};
use crate::domain::{Facts, Notification};
use crate::providers::source::{pairs, BodyFormat, Rejected, RequestFacts, Source};

impl From<CybersourceError> for Rejected {
    fn from(e: CybersourceError) -> Self {
        Rejected {
            kind: e.refusal(),
            detail: e.to_string(),
        }
    }
}

/// What this provider's requests carry (`application/json`).
pub const BODY_FORMAT: BodyFormat = BodyFormat::Json;

/// A `cybersource` source.
pub struct WebhookSource<'a> {
    /// Every valid key (two during a yearly rotation).
    pub keys: Vec<SigningKey<'a>>,
    /// Largest accepted `|now − t|`; `None` turns the replay check off.
    pub tolerance_secs: Option<u64>,
    /// When set, the body's `organizationId` must equal it.
    pub organization_id: Option<&'a str>,
}

impl Source for WebhookSource<'_> {
    fn body_format(&self) -> BodyFormat {
        BODY_FORMAT
    }

    /// Cybersource checks its webhook URL with a GET and wants a 200.
    fn answers_health_check(&self) -> bool {
        true
    }

    fn verify(
        &self,
        request: &RequestFacts<'_>,
        body: &[u8],
    ) -> Result<Vec<Notification>, Rejected> {
        let verifier = WebhookVerifier {
            keys: &self.keys,
            tolerance_secs: self.tolerance_secs,
            organization_id: self.organization_id,
        };
        let signed = super::verify_webhook(
            request.header(SIGNATURE_HEADER),
            body,
            request.now_unix,
            &verifier,
        )?;
        Ok(vec![super::webhook_notification(
            body,
            signed,
            verifier.organization_id,
        )?])
    }

    fn risk_summary(&self, n: &Notification) -> String {
        risk_summary(n)
    }
}

/// Event, decision, status and reason (webhooks and CMOS alike).
pub(crate) fn risk_summary(n: &Notification) -> String {
    let Facts::Cybersource(f) = &n.facts else {
        return String::new();
    };
    pairs(&[
        ("event", &f.event_type),
        ("decision", &f.new_decision),
        ("status", &f.payment_status),
        ("reason", &f.reason),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::outcome::test_support::{cmos_update, dm_with_status};
    use crate::providers::source::testing::{request, TestHeaders};
    use crate::providers::Refusal;

    fn source() -> WebhookSource<'static> {
        WebhookSource {
            keys: vec![SigningKey {
                id: "k",
                key: b"ipnsync-test-key",
            }],
            tolerance_secs: Some(900),
            organization_id: None,
        }
    }

    #[test]
    fn the_webhook_source_wants_a_signature_and_answers_health_checks() {
        let headers = TestHeaders(vec![]);
        let err = source()
            .verify(&request(&headers, None), b"{}")
            .unwrap_err();
        assert_eq!(err.kind, Refusal::Unauthenticated, "{err:?}");
        let headers = TestHeaders(vec![(SIGNATURE_HEADER, "t=1,keyid=other,sig=AA==".into())]);
        let err = source()
            .verify(&request(&headers, None), b"{}")
            .unwrap_err();
        assert_eq!(err.kind, Refusal::Unauthenticated, "{err:?}");
        assert!(source().answers_health_check());
        assert_eq!(source().body_format(), BodyFormat::Json);
    }

    #[test]
    fn the_risk_summary_names_event_decision_status_and_reason() {
        let n = dm_with_status("payments.payments.review", "DECLINED", "AVS_FAILED");
        assert_eq!(
            source().risk_summary(&n),
            "event=payments.payments.review;status=DECLINED;reason=AVS_FAILED"
        );
        assert_eq!(
            source().risk_summary(&cmos_update("REJECT")),
            "decision=REJECT"
        );
    }
}
