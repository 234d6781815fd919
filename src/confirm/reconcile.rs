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
//!
//! The background task backs off per order ([`Backoff`]): an order the
//! gateway left as it was is asked again after one `interval`, then two,
//! four… (at most a day apart), until it moves or passes `max_age`. A long
//! review (an MPGS or Cybersource analyst may take days) so costs a few
//! calls a day, not one per pass. The schedule lives in memory: after a
//! restart every eligible order is asked once more, then backs off again.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::gateway::{self, Lookup};
use crate::config::{Config, ReviewApi};
use crate::ops::logging::one_line;
use crate::ops::metrics::RECONCILIATIONS;
use crate::review::cybersource_read;
use crate::store::confirm::{reconcile_targets, ConfirmReport, ReconcileTarget, Reconciliation};
use crate::store::writer::WriterHandle;
use crate::store::{self, now_ms};

/// What the gateway said about one order.
#[derive(Debug, Clone)]
pub enum Finding {
    /// Its current state, to decide from.
    State(Box<Reconciliation>),
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
    let Some(gateway) = gateway::of(source) else {
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
        }) => Finding::State(Box::new(Reconciliation {
            source: source.name.clone(),
            shop: target.shop.clone(),
            order_ref: target.order_ref.clone(),
            gateway: gateway.name().to_owned(),
            notification: *notification,
            summary,
            known_only: false,
        })),
        Ok(Lookup::Unconfirmed(why) | Lookup::NoRecord(why)) => Finding::Unknown(why),
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

/// How far back the Conversion Detail Report is read on each pass (the
/// official OpenCart cron reads the last day); decisions seen before are
/// recognised by their event key.
pub const REPORT_WINDOW_MS: i64 = 24 * 3600 * 1000;

/// The analyst decisions of the Conversion Detail Report of every
/// Cybersource source with its REST API, over the last day, as findings
/// about the orders ipnsync knows; `order` keeps that order only.
pub async fn report_findings(config: &Config, now: i64, order: Option<&str>) -> Vec<Finding> {
    let mut out = Vec::new();
    for source in &config.sources {
        let Some(ReviewApi::Cybersource(api)) = &source.review_api else {
            continue;
        };
        match cybersource_read::conversions(api, now - REPORT_WINDOW_MS, now).await {
            Ok(decisions) => {
                for n in decisions {
                    let order_ref = n
                        .order_ref
                        .strip_prefix(source.order_prefix.as_str())
                        .unwrap_or(&n.order_ref)
                        .to_owned();
                    if order.is_some_and(|o| o != order_ref) {
                        continue;
                    }
                    let f = n.cybersource().cloned().unwrap_or_default();
                    let summary = format!(
                        "Conversion Detail Report: request {} {} → {}{}",
                        f.request_id,
                        if f.original_decision.is_empty() {
                            "?"
                        } else {
                            &f.original_decision
                        },
                        f.new_decision,
                        if f.reviewer.is_empty() {
                            String::new()
                        } else {
                            format!(" by {}", f.reviewer)
                        }
                    );
                    out.push(Finding::State(Box::new(Reconciliation {
                        source: source.name.clone(),
                        shop: source.shop.clone().unwrap_or_default(),
                        order_ref,
                        gateway: "Cybersource".into(),
                        notification: n,
                        summary,
                        known_only: true,
                    })));
                }
            }
            Err(e) => {
                metrics::counter!(RECONCILIATIONS, "source" => source.name.clone(), "result" => "error")
                    .increment(1);
                out.push(Finding::Error(format!(
                    "source {}: Cybersource conversion detail report: {e}",
                    source.name
                )));
            }
        }
    }
    out
}

/// Longest wait between two questions about the same order.
const MAX_BACKOFF_MS: i64 = 24 * 60 * 60 * 1000;

/// When the background task may next ask the gateway about each order:
/// `(due, delay)` by `(shop, order_ref)`. An order not in the map is due.
#[derive(Debug, Default)]
pub(crate) struct Backoff {
    next: HashMap<(String, String), (i64, i64)>,
}

impl Backoff {
    fn is_due(&self, key: &(String, String), now: i64) -> bool {
        self.next.get(key).map_or(true, |(due, _)| now >= *due)
    }

    /// The gateway was asked and the order did not move (or no answer):
    /// wait `base` the first time, then twice as long as the last time.
    fn asked(&mut self, key: (String, String), now: i64, base: i64) {
        let delay = match self.next.get(&key) {
            None => base,
            Some((_, last)) => last.saturating_mul(2),
        }
        .clamp(1, MAX_BACKOFF_MS.max(base));
        self.next.insert(key, (now.saturating_add(delay), delay));
    }

    /// Orders that moved, or are no longer eligible, start afresh if they
    /// ever come back.
    fn forget(&mut self, key: &(String, String)) {
        self.next.remove(key);
    }

    fn keep_only(&mut self, eligible: &HashSet<(String, String)>) {
        self.next.retain(|k, _| eligible.contains(k));
    }
}

/// The daemon's reconciliation task: every `[reconcile] interval`, until
/// `stop` turns true. Without `[reconcile]` it only watches for a reload
/// that adds it.
pub async fn run(
    config: watch::Receiver<Arc<Config>>,
    db: crate::store::Database,
    writer: WriterHandle,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Backoff::default();
    loop {
        let current = config.borrow().clone();
        let wait = match &current.reconcile {
            None => Duration::from_secs(60),
            Some(r) => {
                pass(&current, &db, &writer, r, &stop, &mut backoff).await;
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
    db: &crate::store::Database,
    writer: &WriterHandle,
    r: &crate::config::ReconcileConfig,
    stop: &watch::Receiver<bool>,
    backoff: &mut Backoff,
) {
    let base = (r.interval.as_millis() as i64).max(1);
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
    let eligible: HashSet<(String, String)> = targets
        .iter()
        .map(|t| (t.shop.clone(), t.order_ref.clone()))
        .collect();
    backoff.keep_only(&eligible);
    for target in targets {
        if *stop.borrow() {
            return;
        }
        let key = (target.shop.clone(), target.order_ref.clone());
        if !backoff.is_due(&key, now_ms()) {
            continue;
        }
        let finding = look_up(config, &target).await;
        backoff.asked(key.clone(), now_ms(), base);
        match finding {
            Finding::State(state) => {
                let result = writer
                    .record_confirmation(ConfirmReport::Reconciled(state))
                    .await;
                match result {
                    Ok(r) if r.moved.is_none() => {
                        metrics::counter!(RECONCILIATIONS, "source" => target.source.clone(), "result" => "unchanged")
                            .increment(1);
                    }
                    Ok(_) => backoff.forget(&key),
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
    for finding in report_findings(config, now_ms(), None).await {
        match finding {
            Finding::State(state) => {
                if let Err(e) = writer
                    .record_confirmation(ConfirmReport::Reconciled(state))
                    .await
                {
                    tracing::warn!(error = %e, "reconciliation: report decision not recorded");
                }
            }
            Finding::Error(e) | Finding::Unknown(e) => {
                tracing::warn!(error = %one_line(&e), "reconciliation: the report was not read; asked again next time")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(order: &str) -> (String, String) {
        ("shop".to_owned(), order.to_owned())
    }

    #[test]
    fn an_unchanged_order_is_asked_again_after_doubling_waits_up_to_a_day() {
        let mut b = Backoff::default();
        let k = key("1");
        assert!(b.is_due(&k, 0), "never asked: due");
        b.asked(k.clone(), 0, 1_000);
        assert!(!b.is_due(&k, 999));
        assert!(b.is_due(&k, 1_000));
        b.asked(k.clone(), 1_000, 1_000);
        assert!(!b.is_due(&k, 2_999), "second wait is twice the first");
        assert!(b.is_due(&k, 3_000));
        for _ in 0..40 {
            b.asked(k.clone(), 0, 1_000);
        }
        assert!(!b.is_due(&k, MAX_BACKOFF_MS - 1));
        assert!(b.is_due(&k, MAX_BACKOFF_MS), "capped at a day");
    }

    #[test]
    fn orders_that_moved_or_left_the_list_start_afresh() {
        let mut b = Backoff::default();
        b.asked(key("1"), 0, 1_000);
        b.asked(key("2"), 0, 1_000);
        b.forget(&key("1"));
        assert!(b.is_due(&key("1"), 1));
        b.keep_only(&HashSet::from([key("1")]));
        assert!(b.is_due(&key("2"), 1), "no longer eligible: forgotten");
        b.asked(key("2"), 1, 1_000);
        assert!(
            !b.is_due(&key("2"), 2),
            "back in the list: first wait again"
        );
    }
}
