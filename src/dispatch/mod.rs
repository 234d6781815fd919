//! The outbox dispatcher: delivers committed order updates to the shops in
//! the background, never on the request path.
//!
//! Guarantees:
//! - **In order per order.** Only the oldest undelivered row of an order is
//!   eligible (`store::queries::due_rows`), and at most one push per order
//!   is in flight.
//! - **Bounded per shop.** Each shop has a semaphore of `concurrency` permits.
//! - **At least once.** A row is marked delivered in a commit right after
//!   the shop accepts it; a crash between the two re-sends it after restart.
//!   The comment carries the update's id, so a repeat is recognisable in the
//!   shop's history.

pub mod retry;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::{error, info, warn, Instrument};

use crate::config::{Config, DispatchConfig, ShopConfig};
use crate::ops::admin::Health;
use crate::ops::metrics as m;
use crate::shops::{PushError, ShopClient, ShopUpdate};
use crate::store::queries::{self, DueRow};
use crate::store::{now_ms, PushReport, StoreError, WriterHandle};

/// What the dispatcher has in flight, shared with the push tasks.
#[derive(Default)]
struct InFlight {
    /// Orders with a push in flight: at most one per order.
    orders: HashSet<(String, String)>,
    /// Rows whose push finished since the last outbox read began. A read
    /// that started before such a row's result was committed may still list
    /// it as due; this set keeps it from being pushed twice.
    finished: HashSet<i64>,
    /// Rows whose last result could not be recorded, and when they may go
    /// again.
    held_back: HashMap<i64, Instant>,
}

impl InFlight {
    fn claim(&mut self, order: &(String, String), id: i64) -> bool {
        if let Some(until) = self.held_back.get(&id) {
            if Instant::now() < *until {
                return false;
            }
            self.held_back.remove(&id);
        }
        !self.finished.contains(&id) && self.orders.insert(order.clone())
    }

    fn hold_back(&mut self, id: i64, until: Instant) {
        self.held_back.insert(id, until);
    }

    fn release(&mut self, order: &(String, String), id: i64) {
        self.finished.insert(id);
        self.orders.remove(order);
    }
}

/// How long a row waits after its push result could not be committed.
const RECORD_FAILURE_BACKOFF: Duration = Duration::from_secs(30);

struct Shop {
    config: ShopConfig,
    client: ShopClient,
    permits: Arc<Semaphore>,
}

pub struct Dispatcher {
    db_path: PathBuf,
    config: watch::Receiver<Arc<Config>>,
    policy: DispatchConfig,
    shops: HashMap<String, Arc<Shop>>,
    writer: WriterHandle,
    wake: Arc<Notify>,
    health: Arc<Health>,
    /// Measures retry waits on the monotonic clock (wall-clock jumps).
    clock: Arc<retry::RetryClock>,
}

fn build_shops(config: &Config) -> HashMap<String, Arc<Shop>> {
    config
        .shops
        .iter()
        .map(|cfg| {
            (
                cfg.name.clone(),
                Arc::new(Shop {
                    client: ShopClient::new(cfg),
                    permits: Arc::new(Semaphore::new(cfg.concurrency)),
                    config: cfg.clone(),
                }),
            )
        })
        .collect()
}

impl Dispatcher {
    /// `wake` is notified by the writer whenever a commit added or
    /// completed outbox work; `config` delivers reloaded configurations.
    pub fn new(
        mut config: watch::Receiver<Arc<Config>>,
        writer: WriterHandle,
        wake: Arc<Notify>,
        health: Arc<Health>,
    ) -> Dispatcher {
        let current = config.borrow_and_update().clone();
        Dispatcher {
            db_path: current.database.clone(),
            policy: current.dispatch.clone(),
            shops: build_shops(&current),
            config,
            writer,
            wake,
            health,
            clock: Arc::new(retry::RetryClock::system()),
        }
    }

    /// Switches to a reloaded configuration. Pushes in flight finish with
    /// the clients they started with.
    fn reconfigure(&mut self) {
        let next = self.config.borrow_and_update().clone();
        self.policy = next.dispatch.clone();
        self.shops = build_shops(&next);
        info!(shops = self.shops.len(), "dispatcher reconfigured");
    }

    /// Runs until `shutdown` turns true; then lets in-flight pushes finish
    /// for up to `grace` (unfinished ones stay pending and are re-sent after
    /// the restart).
    pub async fn run(
        mut self,
        mut shutdown: watch::Receiver<bool>,
        grace: Duration,
    ) -> Result<(), StoreError> {
        let conn = crate::store::open_reader(&self.db_path)?;
        let work: Arc<Mutex<InFlight>> = Arc::default();
        let mut tasks = JoinSet::new();
        let mut unknown_shops = HashSet::new();
        loop {
            if *shutdown.borrow() {
                break;
            }
            if self.config.has_changed().unwrap_or(false) {
                self.reconfigure();
            }
            self.health.beat();
            metrics::counter!(m::DISPATCH_LOOPS).increment(1);
            // The database file left its path: results could not be
            // recorded, and every push would be repeated. Wait it out.
            let paused = self.writer.file_fault().is_some();
            // Pushes that finished before this read are committed, so the
            // read sees their new state; only later finishers can be stale.
            let busy = {
                let mut w = work.lock().expect("in-flight state");
                w.finished.clear();
                w.orders.len()
            };
            let page = 256 + busy;
            let rows = match queries::due_rows(&conn, self.clock.now_ms(), page) {
                Ok(_) if paused => Vec::new(),
                Ok(rows) => rows,
                Err(e) => {
                    error!(error = %e, "cannot read the outbox");
                    Vec::new()
                }
            };
            let listed = rows.len();
            let mut claimed = 0;
            for row in rows {
                let key = (row.shop.clone(), row.order_ref.clone());
                let Some(shop) = self.shops.get(&row.shop).cloned() else {
                    // A reload may have dropped or renamed the shop by
                    // mistake: keep its updates queued, say so once.
                    if unknown_shops.insert(row.shop.clone()) {
                        error!(shop = %row.shop, "outbox rows for a shop that is not configured stay pending until it is");
                    }
                    continue;
                };
                if !self.clock.may_go(row.id)
                    || !work.lock().expect("in-flight state").claim(&key, row.id)
                {
                    continue;
                }
                claimed += 1;
                let done = {
                    let work = work.clone();
                    let wake = self.wake.clone();
                    let id = row.id;
                    move |recorded: bool| {
                        let mut w = work.lock().expect("in-flight state");
                        w.release(&key, id);
                        if !recorded {
                            w.hold_back(id, Instant::now() + RECORD_FAILURE_BACKOFF);
                        }
                        drop(w);
                        wake.notify_one();
                    }
                };
                let writer = self.writer.clone();
                let policy = self.policy.clone();
                let clock = self.clock.clone();
                // The event id ties these lines to the notification's own.
                let span = tracing::info_span!("push", outbox = row.id, event = row.event_id);
                tasks.spawn(async move {
                    let report = push_one(&shop, &row, &policy).instrument(span).await;
                    if let PushReport::Retry { next_attempt_at, .. } = &report {
                        clock.scheduled(row.id, *next_attempt_at);
                    }
                    let recorded = match writer.record_push(report).await {
                        Ok(()) => true,
                        Err(e) => {
                            // The row stays pending; it is pushed again once
                            // the database takes writes (after a pause, so
                            // a storage outage does not flood the shop).
                            warn!(outbox = row.id, error = %e, "push result not recorded; the update will be re-sent");
                            false
                        }
                    };
                    done(recorded);
                });
            }
            while tasks.try_join_next().is_some() {}
            let sleep_for = if claimed == listed && listed == page {
                // A full page went out: there may be more due right now.
                Duration::ZERO
            } else {
                match queries::next_due_at(&conn) {
                    // Due rows that were not claimed are in flight or held
                    // back: the end of a push wakes us, no need to poll.
                    Ok(Some(at)) if at <= now_ms() => self.policy.poll_interval,
                    Ok(Some(at)) => {
                        Duration::from_millis((at - now_ms()) as u64).min(self.policy.poll_interval)
                    }
                    _ => self.policy.poll_interval,
                }
            };
            tokio::select! {
                () = self.wake.notified() => {}
                () = tokio::time::sleep(sleep_for) => {}
                _ = shutdown.changed() => {}
                _ = self.config.changed() => {}
            }
        }
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            warn!("pushes still in flight at shutdown; they stay pending and will be re-sent");
        }
        Ok(())
    }
}

async fn push_one(shop: &Shop, row: &DueRow, policy: &DispatchConfig) -> PushReport {
    let _permit = shop
        .permits
        .acquire()
        .await
        .expect("semaphore never closed");
    let update = ShopUpdate {
        outbox_id: row.id,
        event_id: row.event_id,
        order_ref: row.order_ref.clone(),
        outcome: row.outcome,
        previous_outcome: row.previous_outcome,
        status: shop.config.status_for(row.outcome).clone(),
        comment: row.comment.clone(),
        notify: shop.config.notifies(row.outcome),
        provider: row.provider.clone(),
        transaction_id: row.transaction_id.clone(),
        provider_status: row.status.clone(),
    };
    // A client's own timeouts bound each HTTP call; this bounds a whole
    // multi-call update (login + unhold + cancel + comment).
    let limit = shop.config.timeout * 4 + shop.config.connect_timeout;
    let result = match tokio::time::timeout(limit, shop.client.push(&update)).await {
        Ok(r) => r,
        Err(_) => Err(PushError::transient(format!(
            "update not finished within {limit:?}"
        ))),
    };
    let attempt = row.attempts + 1;
    let report = classify(row, &update, result, attempt, policy);
    let label = match &report {
        PushReport::Delivered { .. } => "delivered",
        PushReport::Retry { .. } => "retry",
        PushReport::Dead { .. } => "dead",
    };
    metrics::counter!(m::PUSHES, "shop" => row.shop.clone(), "result" => label).increment(1);
    report
}

fn classify(
    row: &DueRow,
    update: &ShopUpdate,
    result: Result<crate::shops::Pushed, PushError>,
    attempt: u32,
    policy: &DispatchConfig,
) -> PushReport {
    match result {
        Ok(pushed) => {
            info!(
                outbox = row.id, shop = %row.shop, order = %row.order_ref, outcome = %row.outcome,
                status = %update.status, attempt, "shop updated: {}", pushed.detail
            );
            PushReport::Delivered {
                outbox_id: row.id,
                detail: pushed.detail,
            }
        }
        Err(PushError::Transient {
            reason,
            retry_after,
        }) => {
            let unit: f64 = rand::thread_rng().gen();
            match retry::next_delay(
                &policy.retry_schedule,
                policy.jitter,
                attempt,
                retry_after,
                unit,
            ) {
                Some(delay) => {
                    warn!(
                        outbox = row.id, shop = %row.shop, order = %row.order_ref, attempt,
                        retry_in = ?delay, "shop update failed, will retry: {reason}"
                    );
                    PushReport::Retry {
                        outbox_id: row.id,
                        next_attempt_at: now_ms() + delay.as_millis() as i64,
                        error: reason,
                    }
                }
                None => {
                    let error = format!("retries exhausted after {attempt} attempts: {reason}");
                    error!(outbox = row.id, shop = %row.shop, order = %row.order_ref, "shop update dead: {error}");
                    PushReport::Dead {
                        outbox_id: row.id,
                        error,
                    }
                }
            }
        }
        Err(PushError::Permanent { reason }) => {
            error!(outbox = row.id, shop = %row.shop, order = %row.order_ref, attempt, "shop update dead: {reason}");
            PushReport::Dead {
                outbox_id: row.id,
                error: reason,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::InFlight;

    fn order(n: &str) -> (String, String) {
        ("shop".to_owned(), n.to_owned())
    }

    #[test]
    fn a_row_whose_result_was_not_recorded_waits_before_going_again() {
        let mut w = InFlight::default();
        let later = std::time::Instant::now() + std::time::Duration::from_secs(60);
        assert!(w.claim(&order("1"), 10));
        w.release(&order("1"), 10);
        w.hold_back(10, later);
        w.finished.clear();
        assert!(!w.claim(&order("1"), 10), "held back");
        w.hold_back(10, std::time::Instant::now());
        assert!(w.claim(&order("1"), 10), "free once the pause is over");
    }

    #[test]
    fn one_push_per_order_and_no_second_push_from_a_stale_read() {
        let mut w = InFlight::default();
        assert!(w.claim(&order("1"), 10));
        assert!(!w.claim(&order("1"), 11), "one push per order at a time");
        assert!(w.claim(&order("2"), 20));
        // Row 10 finishes while a read that still lists it is in progress.
        w.release(&order("1"), 10);
        assert!(
            !w.claim(&order("1"), 10),
            "a stale listing of a finished row is skipped"
        );
        assert!(w.claim(&order("1"), 11), "the order's next row may go");
        // The next read starts after the result was committed.
        w.finished.clear();
        w.release(&order("1"), 11);
        assert!(w.claim(&order("3"), 30));
    }
}
