//! Retention: what may be removed from the database, and when; the same
//! code for the background task ([`spawn`]) and `ipnsync prune`.
//!
//! Two phases, each a walk in id order from a cursor kept in
//! `retention_cursors`, so a pass costs what it removes, never the whole
//! history:
//!
//! - **bodies**: the raw body of every delivery received before the
//!   cutoff is cleared (the delivery row, its headers and every decision
//!   stay). A CMOS document's shared body goes once no delivery refers to
//!   it. Deliveries are numbered in arrival order, so the walk stops at the
//!   first one received after the cutoff.
//! - **events** (whole notifications of closed orders): an order is closed
//!   when its outcome can no longer wait for anything (not `pending`,
//!   `review` or `suspected_fraud`) and it has not moved since the cutoff.
//!   Its events before the cutoff, their deliveries, delivered outbox rows
//!   and push attempts are deleted, except what something still refers
//!   to: the order's current event (the order row points at it), an event
//!   whose outbox row a review or operator action names (the audit
//!   trail), and the event a kept confirmation names. An order with a
//!   pending or dead outbox row, a waiting confirmation or a review action
//!   in progress is not touched at all. The order row itself is kept:
//!   dedupe of a very late resend and the rules' view of the order need
//!   it. Orders skipped because they were open are looked at again by the
//!   next pass, which starts from the first event once the last one has
//!   reached the cutoff (at most once a day).
//!
//! Every batch is its own short `BEGIN IMMEDIATE` transaction on this
//! task's connection, with `synchronous=NORMAL`: the write lock is held for
//! a few milliseconds of b-tree work and no fsync, so the intake writer
//! waits at most about that long (a deletion lost in a power cut is redone
//! by the next pass; the intake writer's FULL commits stay as they were,
//! and the fsync of its next commit covers these frames too). Between
//! batches the task sleeps, so intake always gets the lock in between.
//!
//! Freed pages: a database created by this version uses
//! `auto_vacuum=INCREMENTAL`; after each batch the task returns up to
//! [`VACUUM_PAGES`] free pages to the file system. An older database keeps
//! `auto_vacuum=NONE` (switching needs a full `VACUUM`): SQLite reuses its
//! freed pages, the file does not shrink. PostgreSQL: one daemon at a time
//! runs a pass (a session advisory lock; the others skip theirs), and
//! autovacuum makes the freed space reusable.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::store::db::{params, Connection, OptionalExtension, TransactionBehavior};

use super::StoreError;

/// Rows looked at per transaction: a few milliseconds of work.
pub const BATCH: usize = 200;

/// Free pages handed back to the file system after each batch (4 MiB of
/// 4 KiB pages): small steps, like the deletions.
pub const VACUUM_PAGES: i64 = 1024;

/// Outcomes an order can still leave by itself or by an operator: never
/// closed.
const OPEN_OUTCOMES: &[&str] = &["pending", "review", "suspected_fraud"];

/// What the retention task does (`[retention]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Raw bodies are cleared this long after they were received.
    pub bodies_after: Option<Duration>,
    /// Closed orders' notifications are deleted this long after the order
    /// last moved (and after they arrived).
    pub closed_orders_after: Option<Duration>,
    /// How often the task runs.
    pub every: Duration,
    /// Pause between two batches.
    pub pause: Duration,
}

/// What one run (or one `prune`) removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    /// Delivery bodies cleared.
    pub bodies: usize,
    /// Events deleted (with their deliveries, delivered outbox rows and
    /// push attempts).
    pub events: usize,
    pub deliveries: usize,
    pub outbox: usize,
}

impl Removed {
    fn add(&mut self, other: Removed) {
        self.bodies += other.bodies;
        self.events += other.events;
        self.deliveries += other.deliveries;
        self.outbox += other.outbox;
    }
}

/// Opens the retention task's connection (also `ipnsync prune`'s):
/// `synchronous=NORMAL`, see the module comment.
/// PostgreSQL: a session of its own (the task holds it for its life).
pub fn open<D: super::AsDatabase + ?Sized>(db: &D) -> Result<Connection, StoreError> {
    let db = &*db.as_database();
    let Some(path) = db.sqlite_path() else {
        return super::open_session(db);
    };
    let conn = rusqlite::Connection::open(path).map_err(|source| StoreError::Open {
        path: path.display().to_string(),
        source: source.into(),
    })?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(Connection::from(conn))
}

fn cursor(conn: &Connection, phase: &str) -> Result<i64, StoreError> {
    Ok(conn
        .query_row(
            "SELECT last_id FROM retention_cursors WHERE phase = ?1",
            params![phase],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

fn set_cursor(conn: &Connection, phase: &str, last_id: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO retention_cursors (phase, last_id) VALUES (?1, ?2)
         ON CONFLICT (phase) DO UPDATE SET last_id = excluded.last_id",
    )?
    .execute(params![phase, last_id])?;
    Ok(())
}

/// Whether a batch reached the cutoff (nothing older is left to look at).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    More,
    Done,
}

/// Clears the bodies of up to `batch` deliveries received before `cutoff`
/// (ms), in one transaction.
pub fn bodies_batch(
    conn: &mut Connection,
    cutoff: i64,
    batch: usize,
) -> Result<(usize, Progress), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let from = cursor(&tx, "bodies")?;
    let rows: Vec<(i64, i64, bool, Option<i64>)> = tx
        .prepare_cached(
            "SELECT id, received_at, body IS NOT NULL, body_id FROM deliveries
              WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?
        .query_map(params![from, batch as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut last = from;
    let mut cleared = 0;
    let mut shared = BTreeSet::new();
    let mut progress = if rows.len() < batch {
        Progress::Done
    } else {
        Progress::More
    };
    for (id, received_at, inline, body_id) in rows {
        if received_at >= cutoff {
            progress = Progress::Done;
            break;
        }
        if inline || body_id.is_some() {
            tx.prepare_cached(
                "UPDATE deliveries SET body = NULL, body_id = NULL, body_codec = NULL WHERE id = ?1",
            )?
            .execute(params![id])?;
            cleared += 1;
        }
        shared.extend(body_id);
        last = id;
    }
    drop_unused_bodies(&tx, shared)?;
    if last != from {
        set_cursor(&tx, "bodies", last)?;
    }
    tx.commit()?;
    Ok((cleared, progress))
}

fn drop_unused_bodies(conn: &Connection, ids: BTreeSet<i64>) -> Result<(), StoreError> {
    for body_id in ids {
        conn.prepare_cached(
            "DELETE FROM bodies WHERE id = ?1
               AND NOT EXISTS (SELECT 1 FROM deliveries WHERE body_id = ?1)",
        )?
        .execute(params![body_id])?;
    }
    Ok(())
}

/// How many bodies [`bodies_batch`] would clear for `cutoff` (the dry run).
pub fn bodies_due(conn: &Connection, cutoff: i64) -> Result<usize, StoreError> {
    let from = cursor(conn, "bodies")?;
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM deliveries
          WHERE id > ?1 AND received_at < ?2 AND (body IS NOT NULL OR body_id IS NOT NULL)",
        params![from, cutoff],
        |r| r.get(0),
    )?;
    Ok(n as usize)
}

/// Clears every body received before `cutoff`, batch after batch (each
/// its own transaction): `ipnsync prune`.
pub fn prune_bodies(conn: &mut Connection, cutoff: i64, batch: usize) -> Result<usize, StoreError> {
    let mut total = 0;
    loop {
        let (n, progress) = bodies_batch(conn, cutoff, batch)?;
        total += n;
        if progress == Progress::Done {
            return Ok(total);
        }
    }
}

/// One order as retention sees it.
struct OrderState {
    current_event: i64,
    closed: bool,
}

fn order_state(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
    cutoff: i64,
) -> Result<Option<OrderState>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT event_id, outcome, updated_at FROM orders WHERE shop = ?1 AND order_ref = ?2",
        )?
        .query_row(params![shop, order_ref], |r| {
            let outcome: String = r.get(1)?;
            let updated_at: i64 = r.get(2)?;
            Ok(OrderState {
                current_event: r.get(0)?,
                closed: !OPEN_OUTCOMES.contains(&outcome.as_str()) && updated_at < cutoff,
            })
        })
        .optional()?)
}

/// Whether anything about the order still waits: an update not delivered
/// (pending or dead), a review action in progress.
fn order_busy(conn: &Connection, shop: &str, order_ref: &str) -> Result<bool, StoreError> {
    let outbox: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM outbox WHERE shop = ?1 AND order_ref = ?2
                                               AND state IN ('pending', 'dead'))",
        )?
        .query_row(params![shop, order_ref], |r| r.get(0))?;
    let review: bool = conn
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM review_actions WHERE shop = ?1 AND order_ref = ?2
                                                        AND state = 'in_progress')",
        )?
        .query_row(params![shop, order_ref], |r| r.get(0))?;
    Ok(outbox || review)
}

/// Deletes the old events of order (`shop`, `order_ref`) if it is closed;
/// returns what went.
fn retire_order(
    conn: &Connection,
    shop: &str,
    order_ref: &str,
    cutoff: i64,
) -> Result<Removed, StoreError> {
    let mut removed = Removed::default();
    // An event without an order row belongs to a log-only source or was
    // ignored before its order existed: nothing refers to it.
    let state = order_state(conn, shop, order_ref, cutoff)?;
    let keep_current = match &state {
        Some(s) if !s.closed => return Ok(removed),
        Some(s) => Some(s.current_event),
        None => None,
    };
    if order_busy(conn, shop, order_ref)? {
        return Ok(removed);
    }
    let events: Vec<i64> = conn
        .prepare_cached(
            "SELECT id FROM events WHERE shop = ?1 AND order_ref = ?2 AND created_at < ?3",
        )?
        .query_map(params![shop, order_ref, cutoff], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut doomed: BTreeSet<i64> = events.iter().copied().collect();
    if let Some(current) = keep_current {
        doomed.remove(&current);
    }
    // Confirmations: a waiting one keeps the whole order; a finished one
    // goes with its event, unless its event stays (then its result stays
    // too, being referred to).
    let mut confirmations = Vec::new();
    for &event in &events {
        let found: Option<(i64, String, Option<i64>)> = conn
            .prepare_cached(
                "SELECT id, state, result_event_id FROM confirmations WHERE event_id = ?1",
            )?
            .query_row(params![event], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        if let Some((id, state, result)) = found {
            if state == "waiting" {
                return Ok(Removed::default());
            }
            if doomed.contains(&event) {
                confirmations.push(id);
            } else if let Some(result) = result {
                doomed.remove(&result);
            }
        }
    }
    // Outbox rows named by a review or operator action keep their event.
    let named: Vec<i64> = conn
        .prepare_cached(
            "SELECT outbox_id FROM review_actions
              WHERE shop = ?1 AND order_ref = ?2 AND outbox_id IS NOT NULL
             UNION
             SELECT outbox_id FROM operator_actions
              WHERE shop = ?1 AND order_ref = ?2 AND outbox_id IS NOT NULL",
        )?
        .query_map(params![shop, order_ref], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for outbox_id in named {
        let event: Option<i64> = conn
            .prepare_cached("SELECT event_id FROM outbox WHERE id = ?1")?
            .query_row(params![outbox_id], |r| r.get(0))
            .optional()?;
        if let Some(event) = event {
            doomed.remove(&event);
        }
    }
    for id in confirmations {
        conn.prepare_cached("DELETE FROM confirmations WHERE id = ?1")?
            .execute(params![id])?;
    }
    for &event in &doomed {
        let outbox: Vec<i64> = conn
            .prepare_cached("SELECT id FROM outbox WHERE event_id = ?1")?
            .query_map(params![event], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for id in outbox {
            conn.prepare_cached("DELETE FROM push_attempts WHERE outbox_id = ?1")?
                .execute(params![id])?;
            removed.outbox += conn
                .prepare_cached("DELETE FROM outbox WHERE id = ?1")?
                .execute(params![id])?;
        }
        let shared: BTreeSet<i64> = conn
            .prepare_cached(
                "SELECT body_id FROM deliveries WHERE event_id = ?1 AND body_id IS NOT NULL",
            )?
            .query_map(params![event], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        removed.deliveries += conn
            .prepare_cached("DELETE FROM deliveries WHERE event_id = ?1")?
            .execute(params![event])?;
        drop_unused_bodies(conn, shared)?;
        removed.events += conn
            .prepare_cached("DELETE FROM events WHERE id = ?1")?
            .execute(params![event])?;
    }
    Ok(removed)
}

/// Looks at up to `batch` events from the `events` cursor; retires the
/// orders of those received before `cutoff`.
pub fn events_batch(
    conn: &mut Connection,
    cutoff: i64,
    batch: usize,
) -> Result<(Removed, Progress), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let from = cursor(&tx, "events")?;
    let rows: Vec<(i64, String, String, i64)> = tx
        .prepare_cached(
            "SELECT id, shop, order_ref, created_at FROM events WHERE id > ?1 ORDER BY id LIMIT ?2",
        )?
        .query_map(params![from, batch as i64], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<_, _>>()?;
    let mut progress = if rows.len() < batch {
        Progress::Done
    } else {
        Progress::More
    };
    let mut last = from;
    let mut removed = Removed::default();
    let mut seen = BTreeSet::new();
    for (id, shop, order_ref, created_at) in rows {
        if created_at >= cutoff {
            progress = Progress::Done;
            break;
        }
        last = id;
        // One look per order and batch: its later events in this batch
        // were handled with it.
        if seen.insert((shop.clone(), order_ref.clone())) {
            // One order's removal is all or nothing, and one that fails
            // (a reference this code does not know about: foreign keys
            // refuse it) is left whole instead of stopping retention.
            let sp = tx.savepoint()?;
            match retire_order(&sp, &shop, &order_ref, cutoff) {
                Ok(r) => {
                    sp.commit()?;
                    removed.add(r);
                }
                Err(e) => {
                    drop(sp); // rolls back
                    tracing::warn!(error = %e, order = %order_ref, "retention left an order whole");
                }
            }
        }
    }
    if last != from {
        set_cursor(&tx, "events", last)?;
    }
    tx.commit()?;
    Ok((removed, progress))
}

/// Starts the next `events` pass from the first event (orders skipped
/// because they were open are looked at again).
pub fn restart_events_pass(conn: &Connection) -> Result<(), StoreError> {
    set_cursor(conn, "events", 0)
}

/// One run: every phase the policy enables, batch after batch, pausing
/// between batches; stops early when `stop` is set.
pub fn run_once(
    conn: &mut Connection,
    policy: &Policy,
    now_ms: i64,
    stop: &AtomicBool,
) -> Result<Removed, StoreError> {
    let mut removed = Removed::default();
    if !pass_is_ours(conn)? {
        return Ok(removed);
    }
    let ms = |d: Duration| now_ms - d.as_millis() as i64;
    if let Some(after) = policy.bodies_after {
        loop {
            let (n, progress) = bodies_batch(conn, ms(after), BATCH)?;
            removed.bodies += n;
            vacuum_step(conn)?;
            if progress == Progress::Done || stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(policy.pause);
        }
    }
    if let Some(after) = policy.closed_orders_after {
        loop {
            let (n, progress) = events_batch(conn, ms(after), BATCH)?;
            removed.add(n);
            vacuum_step(conn)?;
            if progress == Progress::Done || stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(policy.pause);
        }
    }
    Ok(removed)
}

/// The background task.
pub struct Retention {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Starts the task: a run at start, then every `policy.every`.
pub fn spawn<D: super::AsDatabase + ?Sized>(
    db: &D,
    policy: Policy,
) -> Result<Retention, StoreError> {
    let mut conn = open(db)?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("ipnsync-retention".into())
        .spawn(move || {
            // A new events pass at most once a day: it re-reads the kept
            // events (current events of closed orders, open orders).
            const RESTART: Duration = Duration::from_secs(24 * 3600);
            let mut pass_began = Instant::now();
            let mut next = Instant::now();
            let mut counted: Option<Instant> = None;
            while !flag.load(Ordering::Relaxed) {
                if Instant::now() < next {
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                }
                next = Instant::now() + policy.every;
                let began = super::now_ms();
                match run_once(&mut conn, &policy, began, &flag) {
                    Ok(removed) => {
                        crate::ops::metrics::retention_run(began, &removed);
                        if removed != Removed::default() {
                            tracing::info!(
                                bodies = removed.bodies,
                                events = removed.events,
                                deliveries = removed.deliveries,
                                outbox = removed.outbox,
                                "retention run"
                            );
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "retention run failed; next run retries"),
                }
                // Counting rows scans an index: at most once a minute,
                // however often the task runs.
                let due = match counted {
                    Some(at) => at.elapsed() >= Duration::from_secs(60),
                    None => true,
                };
                if due {
                    counted = Some(Instant::now());
                    match footprint(&conn) {
                        Ok(f) => crate::ops::metrics::footprint(&f),
                        Err(e) => tracing::debug!(error = %e, "footprint not measured"),
                    }
                }
                if policy.closed_orders_after.is_some() && pass_began.elapsed() >= RESTART {
                    pass_began = Instant::now();
                    if let Err(e) = restart_events_pass(&conn) {
                        tracing::warn!(error = %e, "retention pass not restarted");
                    }
                }
            }
        })
        .expect("spawn retention thread");
    Ok(Retention { stop, thread })
}

impl Retention {
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

mod space;
#[cfg(test)]
mod tests;

use space::pass_is_ours;
pub use space::{footprint, vacuum_step, Footprint};
