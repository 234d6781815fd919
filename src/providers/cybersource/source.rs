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
