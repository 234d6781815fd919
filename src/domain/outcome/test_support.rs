//! Notification builders shared by the domain tests.

use crate::domain::notification::{CybersourceChannel, CybersourceFacts, MpgsFacts};
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
        let Facts::Lyra(f) = &mut self.0.facts else {
            unreachable!("Ipn always holds Lyra facts")
        };
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

    /// The same facts from a REST IPN: `orderCycle` and the unsigned
    /// `kr-src` (never an origin).
    pub(crate) fn rest(mut self, order_cycle: &str, kr_src: &str) -> Ipn {
        self.0.provider = Provider::LyraRest;
        let f = self.facts();
        f.url_check_src = String::new();
        f.order_cycle = order_cycle.into();
        f.unsigned_src = kr_src.into();
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
        // As `store::apply` (`upsert_order`): the first mode sticks, except
        // that PRODUCTION replaces TEST.
        if let Some(mode) = n.mode() {
            if snapshot.mode.is_none() || mode == "PRODUCTION" {
                snapshot.mode = Some(mode.to_owned());
            }
        }
    }
    decision
}

/// A Cybersource webhook about order `100000123`, payment request `req-1`,
/// signed over the whole body (so its event type is authenticated).
pub(crate) fn dm_webhook(event_type: &str) -> Notification {
    Notification {
        provider: Provider::Cybersource,
        order_ref: "100000123".into(),
        transaction_id: "req-1".into(),
        transaction_number: "req-1".into(),
        amount_minor: None,
        currency: String::new(),
        facts: Facts::Cybersource(CybersourceFacts {
            event_type: event_type.into(),
            signed: "body".into(),
            ..CybersourceFacts::default()
        }),
    }
}

/// The same webhook with a payment status and an error reason.
pub(crate) fn dm_with_status(event_type: &str, status: &str, reason: &str) -> Notification {
    let mut n = dm_webhook(event_type);
    if let Facts::Cybersource(f) = &mut n.facts {
        f.payment_status = status.into();
        f.reason = reason.into();
    }
    n
}

/// The same webhook signed over its `payload` member only: the event type
/// is not authenticated (rule cs8).
pub(crate) fn dm_payload_signed(event_type: &str, status: &str, reason: &str) -> Notification {
    let mut n = dm_with_status(event_type, status, reason);
    if let Facts::Cybersource(f) = &mut n.facts {
        f.signed = "payload".into();
    }
    n
}

/// One CMOS update with this `NewDecision` (empty: notes only).
pub(crate) fn cmos_update(new_decision: &str) -> Notification {
    let mut n = dm_webhook("");
    if let Facts::Cybersource(f) = &mut n.facts {
        f.channel = CybersourceChannel::Cmos;
        f.new_decision = new_decision.into();
        f.original_decision = "REVIEW".into();
        f.reviewer = "Bill".into();
        f.signed.clear();
    }
    n
}

/// An MPGS transaction `1` of order `100000300`: type, result, gateway
/// code, risk code, review decision.
pub(crate) fn mpgs_tx(
    transaction_type: &str,
    result: &str,
    gateway_code: &str,
    risk: &str,
    review: &str,
) -> Notification {
    Notification {
        provider: Provider::Mpgs,
        order_ref: "100000300".into(),
        transaction_id: "1".into(),
        transaction_number: "1".into(),
        amount_minor: Some(10000),
        currency: "USD".into(),
        facts: Facts::Mpgs(MpgsFacts {
            merchant: "TESTMERCHANT01".into(),
            order_id: "100000300".into(),
            transaction_id: "1".into(),
            transaction_type: transaction_type.into(),
            result: result.into(),
            gateway_code: gateway_code.into(),
            risk_gateway_code: risk.into(),
            review_decision: review.into(),
            entry_point: "WEB_SERVICES_API".into(),
            ..MpgsFacts::default()
        }),
    }
}

/// A follow-on MPGS operation: transaction `id` acting on transaction `1`.
pub(crate) fn mpgs_follow_on(
    transaction_type: &str,
    id: &str,
    result: &str,
    code: &str,
) -> Notification {
    let mut n = mpgs_tx(transaction_type, result, code, "", "");
    n.transaction_number = id.into();
    if let Facts::Mpgs(f) = &mut n.facts {
        f.transaction_id = id.into();
        f.target_transaction_id = "1".into();
    }
    n
}
