//! The confirmer: the background task that asks the gateway about every
//! notification held for confirmation, and hands the answer to the writer.
//!
//! Like the dispatcher: it reads due rows (`store::confirm::due`), works
//! outside any database transaction, records each result through the
//! writer (a confirmation moves the order through the same state machine
//! and outbox as intake), and retries an unreachable gateway with the
//! `[dispatch]` retry schedule. Rows live in the database, so a restart
//! loses nothing: they are due again at once. An exhausted schedule does
//! not drop the job: it keeps the last delay, since a payment confirmation
//! has no "dead" state that is safer than asking again.

pub mod case_decision;
pub mod gateway;
pub mod reconcile;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::Config;
use crate::ops::logging::one_line;
use crate::ops::metrics::CONFIRMATIONS;
use crate::store::confirm::{self as store_confirm, ConfirmReport, DueConfirmation};
use crate::store::writer::WriterHandle;
use crate::store::{self, now_ms};

/// How many due confirmations one pass takes.
const BATCH: usize = 32;
/// The longest the confirmer sleeps without looking at the table (rows a
/// restart or another process queued).
const MAX_IDLE: Duration = Duration::from_secs(5);

/// Runs until `stop` turns true.
pub async fn run(
    config: watch::Receiver<Arc<Config>>,
    db: crate::store::Database,
    writer: WriterHandle,
    mut stop: watch::Receiver<bool>,
) {
    let reader = {
        let db = db.clone();
        match tokio::task::spawn_blocking(move || store::open_reader(&db)).await {
            Ok(Ok(c)) => Arc::new(std::sync::Mutex::new(c)),
            Ok(Err(e)) => {
                tracing::error!(error = %e, "confirmer: cannot open the database; confirmations wait");
                return;
            }
            Err(e) => {
                tracing::error!(error = %e, "confirmer: cannot open the database");
                return;
            }
        }
    };
    loop {
        if *stop.borrow() {
            return;
        }
        let config = config.borrow().clone();
        let conn = reader.clone();
        let due = tokio::task::spawn_blocking(move || {
            let conn = conn.lock().expect("reader");
            let now = now_ms();
            let rows = store_confirm::due(&conn, now, BATCH)?;
            let next = store_confirm::next_due_at(&conn)?;
            Ok::<_, crate::store::StoreError>((rows, next))
        })
        .await;
        let (rows, next) = match due {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "confirmer: cannot read the confirmations");
                (Vec::new(), None)
            }
            Err(_) => (Vec::new(), None),
        };
        let mut worked = !rows.is_empty();
        let mut unrecorded = false;
        for row in rows {
            if *stop.borrow() {
                return;
            }
            let report = confirm_one(&config, &row).await;
            if let Err(e) = writer.record_confirmation(report).await {
                tracing::warn!(error = %e, confirmation = row.id, "confirmer: the result was not recorded; asked again later");
                // The row stays due: going straight back would ask the
                // gateway again at once, in a loop, for as long as the
                // database refuses writes. Wait the longest idle pause.
                worked = false;
                unrecorded = true;
                break;
            }
        }
        if worked {
            continue;
        }
        let wait = next
            .filter(|_| !unrecorded)
            .map(|at| {
                Duration::from_millis((at - now_ms()).clamp(10, MAX_IDLE.as_millis() as i64) as u64)
            })
            .unwrap_or(MAX_IDLE);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = stop.changed() => {}
        }
    }
}

/// Asks the gateway about one held notification.
async fn confirm_one(config: &Config, row: &DueConfirmation) -> ConfirmReport {
    // An analyst's case decision (a CMOS post, or a case accept/reject
    // webhook whose event type was outside the signature): the Conversion
    // Detail Report, the gateway's record of such decisions, not a
    // transaction read (`case_decision`).
    if let Some((source, api)) = config
        .sources
        .iter()
        .find(|s| s.name == row.source)
        .and_then(|s| case_decision::route(s, &row.notification).map(|api| (s, api)))
    {
        return case_decision::confirm_one(config, source, api, row).await;
    }
    let gateway = config
        .sources
        .iter()
        .find(|s| s.name == row.source)
        .and_then(gateway::confirmer);
    let Some(gateway) = gateway else {
        // The source lost its API (or was removed) since: wait for an
        // operator to configure it again rather than guess.
        return retry(
            config,
            row,
            format!(
                "source {} has no gateway API configured: cannot confirm",
                row.source
            ),
        );
    };
    match gateway.fetch(&row.notification).await {
        Ok(lookup) => ConfirmReport::Settled {
            id: row.id,
            gateway: gateway.name().to_owned(),
            lookup,
        },
        Err(e) => {
            let error = format!("{} {}: {e}", gateway.name(), gateway.call());
            retry(config, row, error)
        }
    }
}

fn retry(config: &Config, row: &DueConfirmation, error: String) -> ConfirmReport {
    let report = retry_later(config, row, error, now_ms());
    if let ConfirmReport::Retry {
        next_attempt_at,
        error,
        ..
    } = &report
    {
        tracing::warn!(
            source = %row.source, order = %one_line(&row.order_ref), event = row.event_id, attempt = row.attempts + 1,
            error = %one_line(error), retry_in_ms = next_attempt_at - now_ms(),
            "confirmation: the gateway did not answer; the order waits"
        );
    }
    report
}

/// Asked again on the `[dispatch]` retry schedule, the last delay
/// repeating: a confirmation has no "dead" state safer than asking again.
pub(super) fn retry_later(
    config: &Config,
    row: &DueConfirmation,
    error: String,
    now: i64,
) -> ConfirmReport {
    let schedule = &config.dispatch.retry_schedule;
    let delay = schedule
        .get(row.attempts as usize)
        .or(schedule.last())
        .copied()
        .unwrap_or(Duration::from_secs(60));
    metrics::counter!(CONFIRMATIONS, "source" => row.source.clone(), "result" => "retry")
        .increment(1);
    ConfirmReport::Retry {
        id: row.id,
        next_attempt_at: now + delay.as_millis() as i64,
        error,
    }
}
