//! Reconciliation: asking the gateways about orders that never heard back.
//!
//! An order still `pending` or `review` some time after its last move
//! (`[reconcile] min_age`, up to `max_age`) may have missed its
//! notification (the daemon was down longer than the platform retries, a
//! firewall dropped it) or have been decided elsewhere (an analyst in
//! Merchant Administration, a back-office validation without an IPN). The
//! gateway's current state is fetched and, when it moves the order, recorded
//! as an event of origin `reconciliation` through the same state machine and
//! outbox as a notification; an unchanged order gets nothing.
//!
//! Used by the daemon's background task ([`run`], through the writer) and
//! by `ipnsync reconcile` (its own short transaction).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::gateway::{Gateway, Lookup};
use crate::config::Config;
use crate::ops::logging::one_line;
use crate::ops::metrics::RECONCILIATIONS;
use crate::store::confirm::{reconcile_targets, ConfirmReport, ReconcileTarget, Reconciliation};
use crate::store::writer::WriterHandle;
use crate::store::{self, now_ms};

/// What the gateway said about one order.
#[derive(Debug, Clone)]
pub enum Finding {
    /// Its current state, to decide from.
    State(Reconciliation),
    /// The gateway does not know the order (or its transaction).
    Unknown(String),
    /// No answer, or no read API for the order's source.
    Error(String),
}

/// Asks the gateway of `target`'s source about it.
pub async fn look_up(config: &Config, target: &ReconcileTarget) -> Finding {
    let Some(source) = config.sources.iter().find(|s| s.name == target.source) else {
        return Finding::Error(format!("no source named {:?} any more", target.source));
    };
    let Some(gateway) = Gateway::of(source) else {
        return Finding::Error(format!(
            "source {} has no gateway API configured (see check-config)",
            source.name
        ));
    };
    let platform_order = match &target.stored {
        Some(n) => n.order_ref.clone(),
        None => format!("{}{}", source.order_prefix, target.order_ref),
    };
    let finding = match gateway
        .fetch_order(source, &platform_order, target.stored.as_ref())
        .await
    {
        Ok(Lookup::Found {
            notification,
            summary,
        }) => Finding::State(Reconciliation {
            source: source.name.clone(),
            shop: target.shop.clone(),
            order_ref: target.order_ref.clone(),
            gateway: gateway.name().to_owned(),
            notification,
            summary,
        }),
        Ok(Lookup::Unconfirmed(why)) => Finding::Unknown(why),
        Err(e) => Finding::Error(format!("{} {}: {e}", gateway.name(), gateway.call())),
    };
    let result = match &finding {
        Finding::State(_) => None,
        Finding::Unknown(_) => Some("unknown"),
        Finding::Error(_) => Some("error"),
    };
    if let Some(result) = result {
        metrics::counter!(RECONCILIATIONS, "source" => source.name.clone(), "result" => result)
            .increment(1);
    }
    finding
}

/// The daemon's reconciliation task: every `[reconcile] interval`, until
/// `stop` turns true. Without `[reconcile]` it only watches for a reload
/// that adds it.
pub async fn run(
    config: watch::Receiver<Arc<Config>>,
    db: PathBuf,
    writer: WriterHandle,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let current = config.borrow().clone();
        let wait = match &current.reconcile {
            None => Duration::from_secs(60),
            Some(r) => {
                pass(&current, &db, &writer, r, &stop).await;
                r.interval
            }
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            return;
        }
    }
}

async fn pass(
    config: &Config,
    db: &std::path::Path,
    writer: &WriterHandle,
    r: &crate::config::ReconcileConfig,
    stop: &watch::Receiver<bool>,
) {
    let (min_age, max_age) = (r.min_age.as_millis() as i64, r.max_age.as_millis() as i64);
    let db = db.to_owned();
    let targets = tokio::task::spawn_blocking(move || {
        let conn = store::open_reader(&db)?;
        reconcile_targets(&conn, now_ms(), min_age, max_age, None)
    })
    .await;
    let targets = match targets {
        Ok(Ok(t)) => t,
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "reconciliation: cannot read the orders");
            return;
        }
        Err(_) => return,
    };
    for target in targets {
        if *stop.borrow() {
            return;
        }
        match look_up(config, &target).await {
            Finding::State(state) => {
                let result = writer
                    .record_confirmation(ConfirmReport::Reconciled(state))
                    .await;
                match result {
                    Ok(r) if r.moved.is_none() => {
                        metrics::counter!(RECONCILIATIONS, "source" => target.source.clone(), "result" => "unchanged")
                            .increment(1);
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, order = %one_line(&target.order_ref), "reconciliation: not recorded")
                    }
                }
            }
            Finding::Unknown(why) => tracing::warn!(
                source = %target.source, order = %one_line(&target.order_ref), reason = %one_line(&why),
                "reconciliation: the gateway does not know the order; left as it is"
            ),
            Finding::Error(e) => tracing::warn!(
                source = %target.source, order = %one_line(&target.order_ref), error = %one_line(&e),
                "reconciliation: no answer from the gateway; asked again next time"
            ),
        }
    }
}
