//! Which read API a source's notifications are checked against: the
//! source's gateway behind [`ReadGateway`] (`review::gateway`, beside the
//! review actions' clients), so that the confirmer and reconciliation never
//! match on the platform.

use crate::config::{Confirm, ReviewApi, SourceConfig, SourceKind, SourceSettings};
use crate::review::gateway::{CybersourceGateway, LyraGateway, MpgsGateway};
pub use crate::review::gateway::{Lookup, ReadGateway};

/// The read API of `source` that reconciliation asks about orders, if it
/// has one: Lyra REST V4, or Mastercard Gateway Retrieve Order. Cybersource
/// is left out: reconciliation reads its Conversion Detail Report
/// (`reconcile::report_findings`).
pub fn of(source: &SourceConfig) -> Option<Box<dyn ReadGateway>> {
    match (&source.review_api, &source.mpgs_api, &source.settings) {
        (Some(ReviewApi::Lyra(api)), _, _) => Some(Box::new(LyraGateway { api: api.clone() })),
        (_, Some(api), SourceSettings::Mpgs(m)) => Some(Box::new(MpgsGateway {
            api: api.clone(),
            order_ref: m.order_ref,
        })),
        _ => None,
    }
}

/// The read API that confirms `source`'s notifications: [`of`], or
/// transaction details for a Cybersource webhook source.
pub fn confirmer(source: &SourceConfig) -> Option<Box<dyn ReadGateway>> {
    of(source).or_else(|| match (&source.review_api, source.kind) {
        (Some(ReviewApi::Cybersource(api)), SourceKind::Cybersource) => {
            Some(Box::new(CybersourceGateway { api: api.clone() }) as Box<dyn ReadGateway>)
        }
        _ => None,
    })
}

/// The read API of `source` when its `confirm` is on.
pub fn confirming(source: &SourceConfig) -> Option<Box<dyn ReadGateway>> {
    (source.confirm != Confirm::Off)
        .then(|| confirmer(source))
        .flatten()
}
