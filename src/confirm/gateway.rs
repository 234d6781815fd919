//! The read side of the payment gateways, behind one type, so that the
//! confirmer (and later reconciliation) never matches on the platform.
//!
//! An enum rather than a `dyn` trait: the clients are async and few, and the
//! set of gateways is closed (one variant per platform with a read API).

use std::time::Duration;

use crate::config::{
    Confirm, CybersourceApi, LyraApi, MpgsApi, ReviewApi, SourceConfig, SourceKind, SourceSettings,
};
use crate::domain::{Notification, Provider};
use crate::providers::mpgs::OrderRefField;
use crate::review::{cybersource_read, lyra_read, mpgs_read, GatewayError};

/// What the gateway says about the transaction a notification names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// The gateway knows it: the notification rebuilt from the gateway's
    /// state (what the decision is made from), and that state in words.
    Found {
        notification: Box<Notification>,
        summary: String,
    },
    /// The gateway does not vouch for it (unknown transaction, another
    /// order's transaction): why, in the gateway's words.
    Unconfirmed(String),
    /// The gateway keeps a record of such decisions but, after the
    /// source's longest wait, has none of this one (a `cybersource-cmos`
    /// decision missing from the Conversion Detail Report): the order is
    /// held for review, a person decides. Why, in words.
    NoRecord(String),
}

/// A source's gateway read API.
#[derive(Debug, Clone)]
pub enum Gateway {
    /// REST V4 `Transaction/Get`.
    Lyra(LyraApi),
    /// Retrieve Order, with the source's order reference field.
    Mpgs(MpgsApi, OrderRefField),
    /// Transaction details, with the review API's credentials: confirms
    /// webhooks only (reconciliation reads the Conversion Detail Report,
    /// `reconcile::report_findings`, so [`Gateway::of`] leaves it out).
    Cybersource(CybersourceApi),
}

impl Gateway {
    /// The read API of `source`, if it has one.
    pub fn of(source: &SourceConfig) -> Option<Gateway> {
        match (&source.review_api, &source.mpgs_api, &source.settings) {
            (Some(ReviewApi::Lyra(api)), _, _) => Some(Gateway::Lyra(api.clone())),
            (_, Some(api), SourceSettings::Mpgs(m)) => {
                Some(Gateway::Mpgs(api.clone(), m.order_ref))
            }
            _ => None,
        }
    }

    /// The read API that confirms `source`'s notifications: [`Gateway::of`],
    /// or transaction details for a Cybersource webhook source.
    pub fn confirmer(source: &SourceConfig) -> Option<Gateway> {
        Gateway::of(source).or_else(|| match (&source.review_api, source.kind) {
            (Some(ReviewApi::Cybersource(api)), SourceKind::Cybersource) => {
                Some(Gateway::Cybersource(api.clone()))
            }
            _ => None,
        })
    }

    /// The read API of `source` when its `confirm` is on.
    pub fn confirming(source: &SourceConfig) -> Option<Gateway> {
        (source.confirm != Confirm::Off)
            .then(|| Gateway::confirmer(source))
            .flatten()
    }

    /// For logs and comments.
    pub fn name(&self) -> &'static str {
        match self {
            Gateway::Lyra(_) => "Lyra",
            Gateway::Mpgs(..) => "Mastercard Gateway",
            Gateway::Cybersource(_) => "Cybersource",
        }
    }

    /// The call made, for the timeline.
    pub fn call(&self) -> &'static str {
        match self {
            Gateway::Lyra(_) => "Transaction/Get",
            Gateway::Mpgs(..) => "Retrieve Order",
            Gateway::Cybersource(_) => "transaction details",
        }
    }

    pub fn timeout(&self) -> Duration {
        match self {
            Gateway::Lyra(a) => a.timeout,
            Gateway::Mpgs(a, _) => a.timeout,
            Gateway::Cybersource(a) => a.timeout,
        }
    }

    /// Asks the gateway about order `platform_order` (the platform's
    /// reference, prefix included): the transaction `stored` names when it
    /// is given (MPGS), else the order's last payment (Lyra `Order/Get`
    /// always: a second attempt may have replaced the notified one).
    pub async fn fetch_order(
        &self,
        source: &SourceConfig,
        platform_order: &str,
        stored: Option<&Notification>,
    ) -> Result<Lookup, GatewayError> {
        match self {
            Gateway::Lyra(api) => {
                let provider = match source.kind {
                    SourceKind::LyraRest => Provider::LyraRest,
                    _ => Provider::LyraForm,
                };
                lyra_read::fetch_order(api, platform_order, stored, (provider, source.mode)).await
            }
            Gateway::Mpgs(api, field) => match stored.filter(|s| s.mpgs().is_some()) {
                Some(s) => mpgs_read::fetch(api, *field, s).await,
                None => mpgs_read::fetch_order(api, *field, platform_order).await,
            },
            // By the transaction a notification names only: an order
            // without one is found through the Conversion Detail Report.
            Gateway::Cybersource(api) => match stored {
                Some(s) => cybersource_read::fetch_transaction(api, s).await,
                None => Err(GatewayError::Refused(format!(
                    "Cybersource transaction details need a transaction id; order {platform_order} has none"
                ))),
            },
        }
    }

    /// Asks the gateway about the transaction `stored` names.
    pub async fn fetch(&self, stored: &Notification) -> Result<Lookup, GatewayError> {
        match self {
            Gateway::Lyra(api) => lyra_read::fetch(api, stored).await,
            Gateway::Mpgs(api, field) => mpgs_read::fetch(api, *field, stored).await,
            Gateway::Cybersource(api) => cybersource_read::fetch_transaction(api, stored).await,
        }
    }
}
