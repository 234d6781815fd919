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
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;
use tracing::{error, info, warn, Instrument};

use crate::config::{Config, CustomerTexts, DispatchConfig, ShopConfig};
use crate::domain::money::Money;
use crate::ops::admin::Health;
use crate::ops::logging::one_line;
use crate::ops::metrics as m;
use crate::shops::{PushError, Pushed, ShopClient, ShopUpdate};
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
    /// Rows pushed by this process whose result could not be recorded: the
    /// shop may have applied them, and no attempt row says so.
    unrecorded: HashSet<i64>,
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
        self.unrecorded.insert(id);
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
    texts: CustomerTexts,
    client: ShopClient,
    permits: Arc<Semaphore>,
}

pub struct Dispatcher {
    db_path: crate::store::Database,
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
                    texts: config
                        .customer_texts
                        .get(&cfg.name)
                        .cloned()
                        .unwrap_or_default(),
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

    /// Switches to a reloaded configuration: new clients (credentials,
    /// URLs, timeouts, fresh sessions), status tables, notify sets,
    /// concurrency, amount check and customer texts, for the next push and
    /// for retries of rows queued earlier. Pushes in flight finish with the
    /// clients they started with.
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
        // Whether the configuration sender is still there: once it is gone,
        // `changed()` would return at once, forever.
        let mut config_open = true;
        loop {
            if *shutdown.borrow() {
                break;
            }
            // `changed()` below only wakes the loop; the new configuration is
            // taken here (`has_changed` stays true until `borrow_and_update`).
            if self.config.has_changed().unwrap_or(false) {
                self.reconfigure();
                unknown_shops.clear();
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
            let rows = match queries::due_rows(
                &conn,
                self.clock.now_ms(),
                page,
                self.policy.claim_lease,
            ) {
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
                        error!(shop = %one_line(&row.shop), "outbox rows for a shop that is not configured stay pending until it is");
                    }
                    continue;
                };
                if !self.clock.may_go(row.id)
                    || !work.lock().expect("in-flight state").claim(&key, row.id)
                {
                    continue;
                }
                claimed += 1;
                let mut row = row;
                let unrecorded = work
                    .lock()
                    .expect("in-flight state")
                    .unrecorded
                    .contains(&row.id);
                row.earlier_result_unknown |= unrecorded;
                let done = {
                    let work = work.clone();
                    let wake = self.wake.clone();
                    let id = row.id;
                    move |recorded: bool| {
                        let mut w = work.lock().expect("in-flight state");
                        w.release(&key, id);
                        if recorded {
                            w.unrecorded.remove(&id);
                        } else {
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
                            warn!(outbox = row.id, error = %one_line(&e.to_string()), "push result not recorded; the update will be re-sent");
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
                // Waits without marking the new value seen, so that the
                // top of the loop reconfigures (the bug of issue 12 was
                // `changed()` here, which marked it seen first).
                open = wait_for_config(&self.config), if config_open => {
                    config_open = open;
                }
            }
        }
        let drain = async { while tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            warn!("pushes still in flight at shutdown; they stay pending and will be re-sent");
        }
        Ok(())
    }
}

/// Resolves once the configuration changed (`true`) or its sender is gone
/// (`false`), without marking the new value seen.
async fn wait_for_config(config: &watch::Receiver<Arc<Config>>) -> bool {
    let mut probe = config.clone();
    probe.changed().await.is_ok()
}

/// The update a row asks for, as this shop should apply it.
fn build_update(shop: &Shop, row: &DueRow) -> ShopUpdate {
    // A comment-only row keeps the order's status and tells nobody.
    let notify = !row.comment_only && shop.config.notifies(row.outcome);
    let amount = row
        .amount_minor
        .filter(|_| !row.comment_only)
        .and_then(|minor| Money::new(minor, &row.currency));
    let customer_text = if row.comment_only {
        String::new()
    } else {
        shop.texts
            .render(row.outcome, &row.order_ref, amount.as_ref())
    };
    ShopUpdate {
        outbox_id: row.id,
        event_id: row.event_id,
        order_ref: row.order_ref.clone(),
        outcome: row.outcome,
        // Comment-only rows are queued with previous = outcome, which no
        // real move has (see `ShopUpdate::is_comment_only`).
        previous_outcome: row.previous_outcome,
        status: shop.config.status_for(row.outcome).clone(),
        comment: row.comment.clone(),
        notify,
        provider: row.provider.clone(),
        transaction_id: row.transaction_id.clone(),
        provider_status: row.status.clone(),
        amount,
        customer_text,
        // An earlier attempt may have reached the shop: a timeout, a
        // dropped connection or a 5xx says nothing about what the shop did
        // (nor does a result this process could not record). A refusal
        // (wrong key, unknown order) applied nothing: after the operator's
        // fix and `retry`, the customer is notified as usual.
        earlier_attempt_unknown: row.earlier_result_unknown,
        // An operator's validation of an order the amount check put in
        // review is the answer to that check: checking again would put it
        // back in review, and the order could never be accepted.
        by_operator: row.by_operator,
    }
}

async fn push_one(shop: &Shop, row: &DueRow, policy: &DispatchConfig) -> PushReport {
    let _permit = shop
        .permits
        .acquire()
        .await
        .expect("semaphore never closed");
    let update = build_update(shop, row);
    // A client's own timeouts bound each HTTP call; this bounds a whole
    // multi-call update (login + unhold + cancel + comment).
    let limit = shop.config.timeout * 4 + shop.config.connect_timeout;
    let result = match tokio::time::timeout(limit, shop.client.push(&update)).await {
        Ok(r) => r,
        Err(_) => Err(PushError::unanswered(format!(
            "update not finished within {limit:?}"
        ))),
    };
    let report = classify(row, &update, result, policy, shop.config.timeout);
    let label = match &report {
        PushReport::Delivered { .. } => "delivered",
        PushReport::Retry { .. } => "retry",
        PushReport::Dead { .. } => "dead",
    };
    metrics::counter!(m::PUSHES, "shop" => row.shop.clone(), "result" => label).increment(1);
    if let PushReport::Delivered {
        needs_operator: Some(_),
        ..
    } = &report
    {
        metrics::counter!(m::PUSHES_NEED_OPERATOR, "shop" => row.shop.clone()).increment(1);
    }
    report
}

/// The attempt log line and report for an update the shop took.
fn delivered(row: &DueRow, update: &ShopUpdate, pushed: Pushed, attempt: u32) -> PushReport {
    let (shop, order) = (one_line(&row.shop), one_line(&row.order_ref));
    info!(
        outbox = row.id, shop = %shop, order = %order, outcome = %row.outcome,
        status = %one_line(&update.status.to_string()), attempt,
        "shop updated: {}", one_line(&pushed.detail)
    );
    if let Some(applied) = pushed.applied_outcome {
        warn!(
            outbox = row.id, shop = %shop, order = %order, outcome = %row.outcome,
            applied = %applied, "the shop applied another outcome than the update's"
        );
    }
    if let Some(reason) = &pushed.needs_operator {
        warn!(
            outbox = row.id, shop = %shop, order = %order, attempt,
            "shop update needs an operator: {}", one_line(reason)
        );
    }
    let mut detail = pushed.detail;
    if let Some(applied) = pushed.applied_outcome {
        detail.push_str(&format!("; order outcome set to {applied}"));
    }
    if let Some(reason) = &pushed.needs_operator {
        detail.push_str(&format!("; needs an operator: {reason}"));
    }
    PushReport::Delivered {
        outbox_id: row.id,
        detail,
        needs_operator: pushed.needs_operator,
        applied_outcome: pushed.applied_outcome.filter(|o| *o != row.outcome),
    }
}

fn classify(
    row: &DueRow,
    update: &ShopUpdate,
    result: Result<Pushed, PushError>,
    policy: &DispatchConfig,
    shop_timeout: Duration,
) -> PushReport {
    // The log counts every attempt, as `ipnsync outbox` does; the retry
    // schedule restarts after an operator's `retry` (`row.attempts`).
    let attempt = row.total_attempts + 1;
    let step = row.attempts + 1;
    let (shop, order) = (one_line(&row.shop), one_line(&row.order_ref));
    match result {
        Ok(pushed) => delivered(row, update, pushed, attempt),
        Err(PushError::Transient {
            reason,
            retry_after,
            unanswered,
        }) => {
            let unit: f64 = rand::thread_rng().gen();
            match retry::next_delay(
                &policy.retry_schedule,
                policy.jitter,
                step,
                retry_after,
                unit,
            ) {
                Some(delay) => {
                    let delay = retry::after_unanswered(delay, unanswered, shop_timeout);
                    warn!(
                        outbox = row.id, shop = %shop, order = %order, attempt,
                        retry_in = ?delay, "shop update failed, will retry: {}", one_line(&reason)
                    );
                    PushReport::Retry {
                        outbox_id: row.id,
                        next_attempt_at: now_ms() + delay.as_millis() as i64,
                        error: reason,
                    }
                }
                None => {
                    // `queries::due_rows` reads this prefix: such a row's
                    // last result is unknown (see `earlier_result_unknown`).
                    let error = format!("retries exhausted after {attempt} attempts: {reason}");
                    error!(outbox = row.id, shop = %shop, order = %order, attempt, "shop update dead: {}", one_line(&error));
                    PushReport::Dead {
                        outbox_id: row.id,
                        error,
                    }
                }
            }
        }
        Err(PushError::Permanent { reason }) => {
            error!(outbox = row.id, shop = %shop, order = %order, attempt, "shop update dead: {}", one_line(&reason));
            PushReport::Dead {
                outbox_id: row.id,
                error: reason,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{build_shops, build_update, InFlight};
    use crate::config::{Config, SecretEnv};
    use crate::domain::Outcome;
    use crate::store::queries::DueRow;

    fn row(outcome: Outcome, previous: Option<Outcome>, comment_only: bool) -> DueRow {
        DueRow {
            id: 3,
            shop: "hook".into(),
            order_ref: "100041".into(),
            event_id: 1,
            previous_outcome: previous,
            outcome,
            comment: "Outcome: accepted (rule h). Transaction 482911, CB 497010XXXXXX0055".into(),
            attempts: 0,
            total_attempts: 2,
            provider: "lyra".into(),
            transaction_id: "t".into(),
            status: "AUTHORISED".into(),
            amount_minor: Some(2990),
            currency: "978".into(),
            comment_only,
            by_operator: false,
            earlier_result_unknown: true,
        }
    }

    #[test]
    fn updates_carry_the_customer_text_amount_and_redelivery_flag() {
        let config = Config::parse(
            r#"
[[shops]]
name = "hook"
kind = "webhook"
base_url = "http://127.0.0.1:9/"
key = "k"
notify = ["accepted", "review"]
customer_text = { accepted = "Paid {amount} {currency} for {order}." }
"#,
            &SecretEnv::default(),
        )
        .unwrap();
        let shops = build_shops(&config);
        let shop = &shops["hook"];
        let u = build_update(shop, &row(Outcome::Accepted, Some(Outcome::Review), false));
        assert!(u.notify);
        assert_eq!(u.customer_text, "Paid 29.90 EUR for 100041.");
        assert_eq!(
            u.amount.as_ref().map(|m| m.display()).as_deref(),
            Some("29.90 EUR")
        );
        assert!(
            u.earlier_attempt_unknown,
            "an attempt with an unknown result"
        );
        let mut refused = row(Outcome::Accepted, Some(Outcome::Review), false);
        refused.earlier_result_unknown = false;
        assert!(
            !build_update(shop, &refused).earlier_attempt_unknown,
            "attempts the shop refused outright leave nothing unknown"
        );
        // An operator's validation: no amount check, but the amount is
        // still there (a webhook receiver gets it).
        let mut validated = row(Outcome::Accepted, Some(Outcome::Review), false);
        validated.by_operator = true;
        let v = build_update(shop, &validated);
        assert!(v.by_operator && v.amount.is_some());
        assert_eq!(v.amount_to_check(), None);
        assert!(u.amount_to_check().is_some());
        assert!(!u.is_comment_only());

        // An analyst's note: the order's status, nobody told, no amount.
        let note = build_update(shop, &row(Outcome::Review, Some(Outcome::Review), true));
        assert!(note.is_comment_only());
        assert!(!note.notify && note.amount.is_none() && note.customer_text.is_empty());
    }

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
