//! Notification builders shared by the domain tests.

use crate::domain::{Facts, LyraFacts, Notification, OrderSnapshot, Provider};

/// A Lyra form IPN with sensible defaults: a 29.90 EUR DEBIT on transaction
/// `uuid-1` from the payment page, no risk data.
#[derive(Debug, Clone)]
pub(crate) struct Ipn(Notification);

impl Ipn {
    pub(crate) fn new(status: &str) -> Ipn {
        Ipn(Notification {
            provider: Provider::LyraForm,
            order_ref: "100042".into(),
            transaction_id: "uuid-1".into(),
            transaction_number: "000042".into(),
            amount_minor: Some(2990),
            currency: "978".into(),
            facts: Facts::Lyra(LyraFacts {
                trans_status: status.into(),
                operation_type: "DEBIT".into(),
                url_check_src: "PAY".into(),
                result: "00".into(),
                sequence_number: "1".into(),
                ctx_mode: "PRODUCTION".into(),
                ..LyraFacts::default()
            }),
        })
    }

    fn facts(&mut self) -> &mut LyraFacts {
        let Facts::Lyra(f) = &mut self.0.facts;
        f
    }

    pub(crate) fn source(mut self, source: &str) -> Ipn {
        self.facts().url_check_src = source.into();
        self
    }

    pub(crate) fn operation(mut self, operation: &str) -> Ipn {
        self.facts().operation_type = operation.into();
        self
    }

    /// `risk_assessment` from the wire form, `ENABLE_3DS;MANUAL_VALIDATION`.
    pub(crate) fn assessment(mut self, list: &str) -> Ipn {
        self.facts().risk_assessment = list
            .split(';')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        self
    }

    pub(crate) fn analysis(mut self, code: &str) -> Ipn {
        self.facts().risk_analysis = code.into();
        self
    }

    /// `risk_control` from the wire form, `CARD_FRAUD=OK;SUSPECT_COUNTRY=WARNING`.
    pub(crate) fn control(mut self, pairs: &str) -> Ipn {
        self.facts().risk_control = pairs
            .split(';')
            .filter(|s| !s.is_empty())
            .map(|pair| {
                let (control, result) = pair.split_once('=').unwrap_or((pair, ""));
                (control.to_owned(), result.to_owned())
            })
            .collect();
        self
    }

    pub(crate) fn card(mut self, brand: &str, number: &str) -> Ipn {
        let f = self.facts();
        f.card_brand = brand.into();
        f.card_number = number.into();
        self
    }

    /// Any other change; the facts are lent separately from the notification.
    pub(crate) fn with(mut self, change: impl FnOnce(&mut Notification, &mut LyraFacts)) -> Ipn {
        let mut facts = std::mem::take(self.facts());
        change(&mut self.0, &mut facts);
        *self.facts() = facts;
        self
    }

    pub(crate) fn transaction(mut self, id: &str) -> Ipn {
        self.0.transaction_id = id.into();
        self
    }

    pub(crate) fn build(self) -> Notification {
        self.0
    }
}

/// What the store's writer does after a decision: an applied outcome
/// becomes the order's state, together with the transaction that set it.
pub(crate) fn apply_decision(
    snapshot: &mut OrderSnapshot,
    n: &Notification,
) -> crate::domain::Decision {
    let decision = crate::domain::decide(snapshot, n);
    if let Some(outcome) = decision.applied_outcome() {
        snapshot.outcome = Some(outcome);
        snapshot.transaction_id = Some(n.transaction_id.clone());
    }
    decision
}
