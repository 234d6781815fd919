//! The provider-neutral view of one verified notification.
//!
//! Providers turn their wire formats into a [`Notification`]; the decision
//! rules ([`super::outcome`]) and the order state machine ([`super::state`])
//! only ever see this type.

use serde::{Deserialize, Serialize};

/// Which payment platform family sent the notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Provider {
    /// Lyra hosted-payment form IPN (`vads_*`).
    LyraForm,
    /// Lyra REST / embedded-form IPN (`kr-answer`).
    LyraRest,
    Cybersource,
    Mpgs,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::LyraForm => "lyra-form",
            Provider::LyraRest => "lyra-rest",
            Provider::Cybersource => "cybersource",
            Provider::Mpgs => "mpgs",
        }
    }

    /// The name a merchant knows the platform by, for comments.
    pub fn display_name(self) -> &'static str {
        match self {
            Provider::LyraForm | Provider::LyraRest => "Lyra",
            Provider::Cybersource => "Cybersource",
            Provider::Mpgs => "Mastercard Gateway",
        }
    }
}

/// What a Lyra notification says, in `vads_*` terms (the REST IPN is mapped
/// onto the same names, as the official plugins do).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LyraFacts {
    /// `vads_trans_status`, e.g. `AUTHORISED`, `AUTHORISED_TO_VALIDATE`.
    pub trans_status: String,
    /// `vads_operation_type`: `DEBIT` or `CREDIT`.
    pub operation_type: String,
    /// `vads_url_check_src`: `PAY`, `BO`, `MERCH_BO`, `BATCH`, `REC`, `RETRY`…
    pub url_check_src: String,
    /// `vads_risk_assessment_result` split on `;` (empty items dropped).
    pub risk_assessment: Vec<String>,
    /// `vads_risk_analysis_result`, raw (ClearSale code, analyzer error…).
    pub risk_analysis: String,
    /// `vads_risk_control` as `(control, result)` pairs.
    pub risk_control: Vec<(String, String)>,
    /// `vads_result` (`00` success, `05` refused…).
    pub result: String,
    /// `vads_extra_result`.
    pub extra_result: String,
    /// `vads_sequence_number` (installments).
    pub sequence_number: String,
    /// `vads_card_brand`.
    pub card_brand: String,
    /// `vads_card_number`, already masked by the platform.
    pub card_number: String,
    /// `vads_threeds_status` / 3-D Secure result, for the comment.
    pub threeds_status: String,
    /// `vads_ctx_mode`: TEST or PRODUCTION.
    pub ctx_mode: String,
}

/// Provider-specific facts the decision rules read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Facts {
    Lyra(LyraFacts),
}

/// One verified notification, normalised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub provider: Provider,
    /// The shop's order reference as the platform sent it (`vads_order_id`).
    pub order_ref: String,
    /// Stable transaction identity: `vads_trans_uuid` when present, else
    /// `site_id/trans_date/trans_id`.
    pub transaction_id: String,
    /// The short transaction number a merchant sees (`vads_trans_id`).
    pub transaction_number: String,
    /// Amount in minor units, when the platform sent one.
    pub amount_minor: Option<i64>,
    /// Currency as sent (ISO 4217 numeric for the form IPN, alpha for REST).
    pub currency: String,
    pub facts: Facts,
}

impl Notification {
    pub fn lyra(&self) -> Option<&LyraFacts> {
        match &self.facts {
            Facts::Lyra(f) => Some(f),
        }
    }

    /// The raw provider status, for logs and the order table.
    pub fn status(&self) -> &str {
        match &self.facts {
            Facts::Lyra(f) => &f.trans_status,
        }
    }

    /// The provider's own "who caused this" marker (`vads_url_check_src`).
    pub fn origin(&self) -> &str {
        match &self.facts {
            Facts::Lyra(f) => &f.url_check_src,
        }
    }
}

impl Notification {
    /// The identity of the *event* this notification reports, used to
    /// recognise a second delivery of it.
    ///
    /// A platform retry and a manual back-office resend of the same event
    /// must collide, even though a resend changes `vads_hash`,
    /// `vads_url_check_src` and the signature; a genuinely new fact about
    /// the transaction (another status, operation, installment or risk
    /// verdict) must not. So the key is the SHA-256 of, in order and
    /// separated by U+001F: provider family, transaction identity (uuid),
    /// status, operation type, sequence number, risk assessment list, risk
    /// analysis result and risk control list.
    pub fn event_key(&self) -> String {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        let mut part = |s: &str| {
            h.update(s.as_bytes());
            h.update([0x1f]);
        };
        match &self.facts {
            Facts::Lyra(f) => {
                part("lyra");
                part(&self.transaction_id);
                part(&f.trans_status);
                part(&f.operation_type);
                part(&f.sequence_number);
                part(&f.risk_assessment.join(";"));
                part(&f.risk_analysis);
                let control: Vec<String> = f
                    .risk_control
                    .iter()
                    .map(|(c, r)| format!("{c}={r}"))
                    .collect();
                part(&control.join(";"));
            }
        }
        hex::encode(h.finalize())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Notification {
        Notification {
            provider: Provider::LyraForm,
            order_ref: "100042".into(),
            transaction_id: "uuid-1".into(),
            transaction_number: "000042".into(),
            amount_minor: Some(2990),
            currency: "978".into(),
            facts: Facts::Lyra(LyraFacts {
                trans_status: "AUTHORISED".into(),
                operation_type: "DEBIT".into(),
                url_check_src: "PAY".into(),
                ..LyraFacts::default()
            }),
        }
    }

    #[test]
    fn event_key_ignores_resend_markers_but_not_new_facts() {
        let original = sample();
        let mut resend = sample();
        let Facts::Lyra(f) = &mut resend.facts;
        f.url_check_src = "BO".into();
        // The REST and form IPN of one transaction describe the same event.
        resend.provider = Provider::LyraRest;
        assert_eq!(original.event_key(), resend.event_key());

        let mut captured = sample();
        let Facts::Lyra(f) = &mut captured.facts;
        f.trans_status = "CAPTURED".into();
        assert_ne!(original.event_key(), captured.event_key());

        let mut risk = sample();
        let Facts::Lyra(f) = &mut risk.facts;
        f.risk_analysis = "FRD".into();
        assert_ne!(original.event_key(), risk.event_key());
        assert_eq!(original.event_key().len(), 64);
    }
}
