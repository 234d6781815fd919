//! The single writer: one thread owns the write connection and commits
//! queued work in batches.
//!
//! Intake handlers hand a [`NewNotification`] to [`WriterHandle::submit`]
//! and wait for the reply; the writer drains up to `batch_max` queued
//! commands, runs them in one `BEGIN IMMEDIATE … COMMIT` (one fsync for the
//! whole batch, `synchronous=FULL`), and only then answers every waiter. A
//! full queue is refused at once ([`SubmitError::Overloaded`] → HTTP 503) so
//! the platform retries instead of timing out.
//!
//! If one command of a batch fails, the batch is committed again one
//! command per transaction: the bad one fails alone, the rest still commit.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, Notify};

use super::confirm::{ConfirmReport, Recorded};
use super::files::FileWatch;
use super::{now_ms, StoreError};
use crate::config::Confirm;
use crate::domain::{self, Notification, OrderSnapshot, Outcome, Verdict};

/// A verified notification on its way to disk.
#[derive(Debug, Clone)]
pub struct NewNotification {
    pub source: String,
    /// The shop that gets the decision, `None` for a log-only source.
    pub shop: Option<String>,
    /// The shop's order reference (prefix already stripped).
    pub order_ref: String,
    /// Identity of the event for deduplication (see `domain::event_key`).
    pub event_key: String,
    pub notification: Notification,
    pub received_at: i64,
    pub peer: String,
    /// JSON object of the request headers worth keeping.
    pub headers: String,
    /// The request body, verbatim.
    pub body: Bytes,
}

/// What the writer committed for one notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeReceipt {
    pub event_id: i64,
    /// An earlier delivery of the same event exists: nothing new happened.
    pub duplicate: bool,
    pub assessed: Outcome,
    /// The order's new outcome when the notification was applied.
    pub applied: Option<Outcome>,
    /// Why the notification was ignored, or a note on an unusual move.
    pub reason: Option<String>,
    pub comment: String,
    pub warnings: Vec<String>,
    /// The outbox row that will carry the update to the shop.
    pub outbox_id: Option<i64>,
    /// How many commands shared this commit.
    pub batch_size: usize,
}

/// The result of one push attempt, recorded by the dispatcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushReport {
    Delivered {
        outbox_id: i64,
        detail: String,
        /// The shop took what it could; a person must finish (the reason).
        needs_operator: Option<String>,
        /// The shop client applied this outcome instead of the row's
        /// (the amount check put the order in review): the order's
        /// outcome becomes this one.
        applied_outcome: Option<Outcome>,
    },
    Retry {
        outbox_id: i64,
        next_attempt_at: i64,
        error: String,
    },
    Dead {
        outbox_id: i64,
        error: String,
    },
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum SubmitError {
    #[error("the writer queue is full")]
    Overloaded,
    #[error("the daemon is shutting down")]
    ShuttingDown,
    #[error("storage failed: {0}")]
    Storage(String),
}

/// A notification on the writer's queue.
struct Queued {
    n: NewNotification,
    /// Set when the request carried several notifications (a CMOS document,
    /// one per `<Update>`): the SHA-256 of its body, which is then stored
    /// once in `bodies` and referred to by each delivery, instead of once
    /// per notification.
    shared_body: Option<[u8; 32]>,
    /// The source's `confirm`: whether the decision waits for the gateway
    /// (`store::confirm`).
    confirm: Confirm,
}

enum Command {
    Intake(
        Box<Queued>,
        oneshot::Sender<Result<IntakeReceipt, SubmitError>>,
    ),
    Push(PushReport, oneshot::Sender<Result<(), SubmitError>>),
    /// A gateway's answer to a held notification (`store::confirm`).
    Confirm(
        Box<ConfirmReport>,
        oneshot::Sender<Result<Recorded, SubmitError>>,
    ),
    /// Writes the health row; answers once it and everything queued before
    /// it is durable (readiness probe).
    Probe(oneshot::Sender<Result<(), SubmitError>>),
}

/// What travels on the writer's queue.
enum Message {
    Command(Command),
    /// Stop taking new work; commit what is queued, then end the thread.
    Close,
}

/// A cheap, cloneable handle to the writer thread.
#[derive(Clone)]
pub struct WriterHandle {
    tx: mpsc::Sender<Message>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    files: Option<Arc<FileWatch>>,
}

impl WriterHandle {
    /// Queues a notification and waits until it is committed.
    pub async fn submit(&self, n: NewNotification) -> Result<IntakeReceipt, SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Intake(
            Box::new(Queued {
                n,
                shared_body: None,
                confirm: Confirm::Off,
            }),
            reply,
        ))?;
        rx.await
            .map_err(|_| SubmitError::Storage("writer stopped".into()))?
    }

    /// Queues several notifications of one request back to back, then waits
    /// until each is committed: they keep their order in the writer (and
    /// usually share one commit). One result per notification, in order.
    /// Once one cannot be queued, the rest are not queued either (and get
    /// the same error), so a retry of the request replays them in order.
    pub async fn submit_many(
        &self,
        notifications: Vec<NewNotification>,
    ) -> Vec<Result<IntakeReceipt, SubmitError>> {
        self.submit_many_confirmed(notifications, Confirm::Off)
            .await
    }

    /// [`submit_many`](Self::submit_many) for a source whose `confirm`
    /// may hold the decisions until the gateway vouches for them.
    pub async fn submit_many_confirmed(
        &self,
        notifications: Vec<NewNotification>,
        confirm: Confirm,
    ) -> Vec<Result<IntakeReceipt, SubmitError>> {
        let mut failed: Option<SubmitError> = None;
        // The notifications of one request (a CMOS document's updates)
        // share its body: stored once, under its SHA-256, hashed here on
        // the request's task rather than on the writer thread.
        let shared_body: Option<[u8; 32]> = (notifications.len() > 1).then(|| {
            use sha2::{Digest, Sha256};
            debug_assert!(notifications
                .iter()
                .all(|n| n.body == notifications[0].body));
            Sha256::digest(&notifications[0].body).into()
        });
        let queued: Vec<_> = notifications
            .into_iter()
            .map(|n| {
                if let Some(e) = &failed {
                    return Err(e.clone());
                }
                let (reply, rx) = oneshot::channel();
                let queued = Queued {
                    n,
                    shared_body,
                    confirm,
                };
                self.send(Command::Intake(Box::new(queued), reply))
                    .map(|()| rx)
                    .inspect_err(|e| failed = Some(e.clone()))
            })
            .collect();
        let mut receipts = Vec::with_capacity(queued.len());
        for rx in queued {
            receipts.push(match rx {
                Ok(rx) => rx
                    .await
                    .unwrap_or_else(|_| Err(SubmitError::Storage("writer stopped".into()))),
                Err(e) => Err(e),
            });
        }
        receipts
    }

    /// Records a push result and waits until it is committed.
    pub async fn record_push(&self, report: PushReport) -> Result<(), SubmitError> {
        let (reply, rx) = oneshot::channel();
        // Push results must not be dropped for want of room: wait for it.
        self.queued.fetch_add(1, Ordering::Relaxed);
        if self
            .tx
            .send(Message::Command(Command::Push(report, reply)))
            .await
            .is_err()
        {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(SubmitError::ShuttingDown);
        }
        rx.await
            .map_err(|_| SubmitError::Storage("writer stopped".into()))?
    }

    /// Makes a real write and waits until it, and everything queued before
    /// it, is committed: proves the database is writable (readiness).
    /// Records a confirmer's report and waits until it is committed. Like
    /// push results, never refused for want of room.
    pub async fn record_confirmation(
        &self,
        report: ConfirmReport,
    ) -> Result<Recorded, SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.queued.fetch_add(1, Ordering::Relaxed);
        if self
            .tx
            .send(Message::Command(Command::Confirm(Box::new(report), reply)))
            .await
            .is_err()
        {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(SubmitError::ShuttingDown);
        }
        rx.await
            .map_err(|_| SubmitError::Storage("writer stopped".into()))?
    }

    pub async fn probe(&self) -> Result<(), SubmitError> {
        let (reply, rx) = oneshot::channel();
        self.send(Command::Probe(reply))?;
        rx.await
            .map_err(|_| SubmitError::Storage("writer stopped".into()))?
    }

    /// Asks the writer to finish: everything already queued is committed
    /// and answered, later submissions get [`SubmitError::ShuttingDown`],
    /// and the thread ends even while other handles are still alive.
    pub async fn close(&self) {
        let _ = self.tx.send(Message::Close).await;
    }

    fn send(&self, cmd: Command) -> Result<(), SubmitError> {
        self.queued.fetch_add(1, Ordering::Relaxed);
        self.tx.try_send(Message::Command(cmd)).map_err(|e| {
            self.queued.fetch_sub(1, Ordering::Relaxed);
            match e {
                mpsc::error::TrySendError::Full(_) => SubmitError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => SubmitError::ShuttingDown,
            }
        })
    }

    /// Commands waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Why the database file the writer holds is no longer the one at the
    /// configured path, as last checked (see [`FileWatch`]).
    pub fn file_fault(&self) -> Option<super::files::FileFault> {
        self.files.as_ref().and_then(|f| f.fault())
    }
}

/// Starts the writer thread on an open write connection. The thread ends
/// once every handle is dropped and the queue is drained. `committed` is
/// notified after every commit that added outbox work.
pub fn spawn(
    conn: Connection,
    queue: usize,
    batch_max: usize,
    committed: Arc<Notify>,
) -> (WriterHandle, JoinHandle<()>) {
    spawn_watched(conn, None, queue, batch_max, committed)
}

/// [`spawn`], checking before each batch and after each commit that the
/// database file is still the one at its path (`files`): while it is not,
/// nothing is written and every command fails (HTTP 503), since a commit
/// into a deleted or replaced file would be lost.
pub fn spawn_watched(
    conn: Connection,
    files: Option<Arc<FileWatch>>,
    queue: usize,
    batch_max: usize,
    committed: Arc<Notify>,
) -> (WriterHandle, JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(queue);
    let queued = Arc::new(AtomicUsize::new(0));
    let handle = WriterHandle {
        tx,
        queued: queued.clone(),
        capacity: queue,
        files: files.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("ipnsync-writer".into())
        .spawn(move || run(conn, rx, batch_max, queued, committed, files))
        .expect("spawn writer thread");
    (handle, thread)
}

enum Reply {
    Intake(
        oneshot::Sender<Result<IntakeReceipt, SubmitError>>,
        Result<IntakeReceipt, SubmitError>,
    ),
    Unit(
        oneshot::Sender<Result<(), SubmitError>>,
        Result<(), SubmitError>,
    ),
    Confirm(
        oneshot::Sender<Result<Recorded, SubmitError>>,
        Result<Recorded, SubmitError>,
    ),
}

impl Reply {
    fn fail_if_ok(self, err: &SubmitError) -> Reply {
        match self {
            Reply::Intake(tx, Ok(_)) => Reply::Intake(tx, Err(err.clone())),
            Reply::Unit(tx, Ok(())) => Reply::Unit(tx, Err(err.clone())),
            Reply::Confirm(tx, Ok(_)) => Reply::Confirm(tx, Err(err.clone())),
            other => other,
        }
    }
}

fn run(
    mut conn: Connection,
    mut rx: mpsc::Receiver<Message>,
    batch_max: usize,
    queued: Arc<AtomicUsize>,
    committed: Arc<Notify>,
    files: Option<Arc<FileWatch>>,
) {
    let mut batch = Vec::with_capacity(batch_max);
    // The last commit failure (disk full, read-only file, I/O error), to
    // log each change once rather than once per batch.
    let mut failing: Option<String> = None;
    let check = || files.as_deref().map_or(Ok(()), FileWatch::check);
    while let Some(first) = rx.blocking_recv() {
        match first {
            Message::Command(cmd) => batch.push(cmd),
            // Refuse new work; what is already queued is still received.
            Message::Close => rx.close(),
        }
        while batch.len() < batch_max {
            match rx.try_recv() {
                Ok(Message::Command(cmd)) => batch.push(cmd),
                Ok(Message::Close) => rx.close(),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let size = batch.len();
        queued.fetch_sub(size, Ordering::Relaxed);
        metrics::histogram!(crate::ops::metrics::COMMIT_BATCH).record(size as f64);
        let (replies, outbox_work) = match check() {
            // Writing into a file that left its path would be lost.
            Err(fault) => (
                fail_all(
                    std::mem::take(&mut batch),
                    &SubmitError::Storage(fault.to_string()),
                ),
                false,
            ),
            Ok(()) => {
                let mut write_error = None;
                let (replies, work) = commit_batch(&mut conn, batch.drain(..), &mut write_error);
                match (&write_error, &failing) {
                    (Some(e), None) => {
                        tracing::error!(error = %e, "the database does not take writes: notifications are answered 503, /readyz fails and the watchdog is not fed")
                    }
                    (None, Some(_)) => tracing::info!("the database takes writes again"),
                    _ => {}
                }
                failing = write_error;
                match check() {
                    // Committed, but into a file that left its path during
                    // the batch: not durable where a restart will look.
                    Err(fault) => {
                        let err = SubmitError::Storage(fault.to_string());
                        (
                            replies.into_iter().map(|r| r.fail_if_ok(&err)).collect(),
                            false,
                        )
                    }
                    Ok(()) => (replies, work),
                }
            }
        };
        if outbox_work {
            committed.notify_one();
        }
        for reply in replies {
            // A waiter that went away (client hung up) is not an error: the
            // data is committed either way.
            match reply {
                Reply::Intake(tx, mut result) => {
                    if let Ok(r) = &mut result {
                        r.batch_size = size;
                    }
                    let _ = tx.send(result);
                }
                Reply::Unit(tx, result) => {
                    let _ = tx.send(result);
                }
                Reply::Confirm(tx, result) => {
                    let _ = tx.send(result);
                }
            }
        }
    }
    // Leave a small WAL behind for the next start and for backups.
    let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
}

/// What one command produced inside a transaction (durable only once the
/// transaction commits).
enum Done {
    Intake(IntakeReceipt),
    Unit,
    Confirm(Recorded),
}

/// Why a transaction did not commit.
enum TxError {
    /// BEGIN or COMMIT failed (lock, disk): nothing in it can succeed now.
    Transaction(StoreError),
    /// Command `index` failed; the others may be fine on their own.
    Command(usize, StoreError),
}

fn apply(conn: &Connection, cmd: &Command) -> Result<Done, StoreError> {
    match cmd {
        Command::Intake(q, _) => {
            intake_with_body(conn, &q.n, q.shared_body.as_ref(), q.confirm).map(Done::Intake)
        }
        Command::Push(report, _) => record_push(conn, report).map(|()| Done::Unit),
        Command::Probe(_) => write_probe(conn).map(|()| Done::Unit),
        Command::Confirm(report, _) => super::confirm::record(conn, report).map(Done::Confirm),
    }
}

fn run_in_transaction(conn: &mut Connection, cmds: &[Command]) -> Result<Vec<Done>, TxError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| TxError::Transaction(e.into()))?;
    let mut done = Vec::with_capacity(cmds.len());
    for (index, cmd) in cmds.iter().enumerate() {
        // On error the transaction is dropped, which rolls it back.
        done.push(apply(&tx, cmd).map_err(|e| TxError::Command(index, e))?);
    }
    tx.commit().map_err(|e| TxError::Transaction(e.into()))?;
    Ok(done)
}

/// Commits a batch: all of it in one transaction (one fsync), or, if one
/// command fails, each command in its own transaction so that the bad one
/// fails alone. (Savepoints per command would do the same, but they make
/// SQLite journal every touched page a second time; failures are rare.)
///
/// `write_error` is set when a transaction itself could not be opened or
/// committed (the database does not take writes), as opposed to one bad
/// command.
fn commit_batch(
    conn: &mut Connection,
    batch: impl Iterator<Item = Command>,
    write_error: &mut Option<String>,
) -> (Vec<Reply>, bool) {
    let batch: Vec<Command> = batch.collect();
    match run_in_transaction(conn, &batch) {
        Ok(done) => return answer(batch.into_iter().zip(done.into_iter().map(Ok))),
        Err(TxError::Transaction(e)) => {
            *write_error = Some(e.to_string());
            let err = SubmitError::Storage(e.to_string());
            return (fail_all(batch, &err), false);
        }
        Err(TxError::Command(index, e)) => {
            tracing::warn!(error = %e, command = index, "a command failed; committing the batch one by one");
        }
    }
    let mut results = Vec::with_capacity(batch.len());
    let mut broken: Option<SubmitError> = None;
    for cmd in &batch {
        let result = match &broken {
            Some(err) => Err(err.clone()),
            None => match run_in_transaction(conn, std::slice::from_ref(cmd)) {
                Ok(mut done) => Ok(done.remove(0)),
                Err(TxError::Command(_, e)) => Err(SubmitError::Storage(e.to_string())),
                Err(TxError::Transaction(e)) => {
                    *write_error = Some(e.to_string());
                    let err = SubmitError::Storage(e.to_string());
                    broken = Some(err.clone());
                    Err(err)
                }
            },
        };
        results.push(result);
    }
    answer(batch.into_iter().zip(results))
}

/// Pairs each command's reply channel with its result; also tells whether
/// the committed work gives the dispatcher something new to do.
fn answer(pairs: impl Iterator<Item = (Command, Result<Done, SubmitError>)>) -> (Vec<Reply>, bool) {
    let mut outbox_work = false;
    let replies = pairs
        .map(|(cmd, result)| match cmd {
            Command::Intake(_, tx) => {
                let result = result.map(|done| match done {
                    Done::Intake(receipt) => receipt,
                    Done::Unit | Done::Confirm(_) => unreachable!("intake yields a receipt"),
                });
                if let Ok(r) = &result {
                    outbox_work |= r.outbox_id.is_some();
                }
                Reply::Intake(tx, result)
            }
            Command::Push(report, tx) => {
                // A delivered or dead row may unblock the order's next one.
                outbox_work |= result.is_ok() && !matches!(report, PushReport::Retry { .. });
                Reply::Unit(tx, result.map(|_| ()))
            }
            Command::Probe(tx) => Reply::Unit(tx, result.map(|_| ())),
            Command::Confirm(_, tx) => {
                let result = result.map(|done| match done {
                    Done::Confirm(recorded) => recorded,
                    _ => unreachable!("a confirmation yields a record"),
                });
                if let Ok(r) = &result {
                    outbox_work |= r.outbox_id.is_some();
                }
                Reply::Confirm(tx, result)
            }
        })
        .collect();
    (replies, outbox_work)
}

fn write_probe(conn: &Connection) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO health (id, checked_at) VALUES (1, ?1)
         ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
    )?
    .execute(params![now_ms()])?;
    Ok(())
}

fn fail_one(cmd: Command, err: &SubmitError) -> Reply {
    match cmd {
        Command::Intake(_, tx) => Reply::Intake(tx, Err(err.clone())),
        Command::Push(_, tx) | Command::Probe(tx) => Reply::Unit(tx, Err(err.clone())),
        Command::Confirm(_, tx) => Reply::Confirm(tx, Err(err.clone())),
    }
}

fn fail_all(batch: Vec<Command>, err: &SubmitError) -> Vec<Reply> {
    batch.into_iter().map(|c| fail_one(c, err)).collect()
}

/// Records one notification: deduplicate, decide, update the order, queue
/// the shop update. Runs inside the batch transaction. (The writer itself
/// goes through [`intake_with_body`]; tests of other modules call this.)
#[cfg(test)]
pub(crate) fn intake(conn: &Connection, n: &NewNotification) -> Result<IntakeReceipt, StoreError> {
    intake_with_body(conn, n, None, Confirm::Off)
}

/// [`intake`] for a source whose `confirm` is `confirm`.
#[cfg(test)]
pub(crate) fn intake_confirmed(
    conn: &Connection,
    n: &NewNotification,
    confirm: Confirm,
) -> Result<IntakeReceipt, StoreError> {
    intake_with_body(conn, n, None, confirm)
}

/// [`intake`], storing the body in `bodies` under `shared_body` (its
/// SHA-256) when given, once however many deliveries refer to it.
fn intake_with_body(
    conn: &Connection,
    n: &NewNotification,
    shared_body: Option<&[u8; 32]>,
    confirm: Confirm,
) -> Result<IntakeReceipt, StoreError> {
    let shop = n.shop.as_deref().unwrap_or("");
    let key = compact_event_key(&n.event_key);
    let existing = conn.prepare_cached("SELECT id, assessed, outcome, reason, comment FROM events WHERE source = ?1 AND event_key = ?2")?.query_row(
            params![n.source, key.as_bytes()],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, Option<String>>(3)?,
                    r.get::<_, String>(4)?,
                ))
            },
        )
        .optional()?;
    if let Some((event_id, assessed, outcome, reason, comment)) = existing {
        insert_delivery(conn, event_id, n, true, shared_body)?;
        return Ok(IntakeReceipt {
            event_id,
            duplicate: true,
            assessed: parse_outcome(&assessed)?,
            applied: outcome.as_deref().map(parse_outcome).transpose()?,
            reason,
            comment,
            warnings: Vec::new(),
            outbox_id: None,
            batch_size: 0,
        });
    }

    let snapshot = conn
        .prepare_cached(
            "SELECT outcome, transaction_id, mode FROM orders WHERE shop = ?1 AND order_ref = ?2",
        )?
        .query_row(params![shop, n.order_ref], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
            ))
        })
        .optional()?
        .map(|(outcome, transaction_id, mode)| {
            Ok::<_, StoreError>(OrderSnapshot {
                outcome: Some(parse_outcome(&outcome)?),
                transaction_id: Some(transaction_id),
                mode,
            })
        })
        .transpose()?
        .unwrap_or_default();

    // A Cybersource event type outside the signature (rule cs8) would send
    // the order to review; with confirmation on, its claim is held for the
    // gateway instead: the held event records what it claimed, so that the
    // gateway's answer can agree or disagree with it.
    let claim = (confirm != Confirm::Off)
        .then(|| domain::outcome::cybersource::unsigned_claim(&n.notification))
        .flatten();
    let decision = domain::decide(&snapshot, claim.as_ref().unwrap_or(&n.notification));
    // Confirmation (issue 15): a decision the source's `confirm` holds is
    // stored as ignored, "waiting for confirmation", with a confirmation
    // job in this same transaction; the confirmer decides it later from
    // the gateway's state (`store::confirm::record`).
    let hold = (claim.is_some() && matches!(decision.verdict, Verdict::Apply { .. }))
        || super::confirm::must_wait(confirm, &decision);
    let (verdict, outcome, reason) = match &decision.verdict {
        _ if hold => ("ignored", None, Some(super::confirm::WAITING.to_owned())),
        Verdict::Apply { outcome, note } => ("applied", Some(*outcome), note.clone()),
        Verdict::Ignore { reason } => ("ignored", None, Some(reason.clone())),
    };
    let now = now_ms();
    let notification_json = serde_json::to_string(&n.notification)
        .map_err(|e| StoreError::Corrupt(format!("cannot serialise notification: {e}")))?;
    conn.prepare_cached("INSERT INTO events (source, event_key, provider, shop, order_ref, transaction_id, status, origin,
                             notification, assessed, verdict, outcome, reason, comment, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)")?.execute(
        params![
            n.source,
            key.as_bytes(),
            n.notification.provider.as_str(),
            shop,
            n.order_ref,
            n.notification.transaction_id,
            n.notification.status(),
            n.notification.origin(),
            notification_json,
            decision.assessed.as_str(),
            verdict,
            outcome.map(Outcome::as_str),
            reason,
            decision.comment,
            now,
        ],
    )?;
    let event_id = conn.last_insert_rowid();
    insert_delivery(conn, event_id, n, false, shared_body)?;
    if hold {
        super::confirm::hold(conn, event_id, &n.source, shop, &n.order_ref, now)?;
    }

    let mut outbox_id = None;
    // An analyst's note changes no order, but belongs in the shop's
    // history: a comment-only update, on an order the daemon knows (its
    // current outcome gives the status the comment keeps).
    if let (None, Some(_), Some(current)) = (outcome, &n.shop, snapshot.outcome) {
        if domain::outcome::comment_only(&n.notification) {
            outbox_id = Some(super::orders::queue_comment(
                conn,
                shop,
                &n.order_ref,
                event_id,
                current,
                &decision.comment,
                now,
            )?);
        }
    }
    if let Some(new_outcome) = outcome {
        let tx_id = &n.notification.transaction_id;
        super::orders::upsert_order(conn, shop, &n.order_ref, new_outcome, tx_id, event_id, now)?;
        if let Some(mode) = n.notification.mode() {
            super::orders::remember_mode(conn, shop, &n.order_ref, mode)?;
        }
        if n.shop.is_some() {
            outbox_id = Some(super::orders::queue_update(
                conn,
                shop,
                &n.order_ref,
                event_id,
                snapshot.outcome,
                new_outcome,
                &decision.comment,
                now,
            )?);
        }
    }
    Ok(IntakeReceipt {
        event_id,
        duplicate: false,
        assessed: decision.assessed,
        applied: outcome,
        reason,
        comment: decision.comment,
        warnings: decision.warnings,
        outbox_id,
        batch_size: 0,
    })
}

/// The stored form of an event key (migration 8): the first 16 bytes of
/// the hex SHA-256 `domain` computes, as a BLOB, instead of 64 hex
/// characters (half the row's key bytes, a quarter of the index's). 128 bits
/// keep accidental collisions out of reach (≈ 2⁻⁶⁴ at 4 billion events),
/// and only signed notifications reach the key. A key that is not hex (the
/// daemon writes none) is kept byte for byte, as migration 8 does.
pub(crate) enum CompactKey<'a> {
    Digest([u8; 16]),
    Verbatim(&'a [u8]),
}

impl CompactKey<'_> {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            CompactKey::Digest(d) => d,
            CompactKey::Verbatim(b) => b,
        }
    }
}

pub(crate) fn compact_event_key(key: &str) -> CompactKey<'_> {
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let raw = key.as_bytes();
    if raw.len() >= 32 {
        let mut out = [0u8; 16];
        let decoded = raw[..32]
            .chunks_exact(2)
            .zip(out.iter_mut())
            .all(|(pair, o)| match (nibble(pair[0]), nibble(pair[1])) {
                (Some(hi), Some(lo)) => {
                    *o = hi << 4 | lo;
                    true
                }
                _ => false,
            });
        if decoded {
            return CompactKey::Digest(out);
        }
    }
    CompactKey::Verbatim(raw)
}

fn insert_delivery(
    conn: &Connection,
    event_id: i64,
    n: &NewNotification,
    duplicate: bool,
    shared_body: Option<&[u8; 32]>,
) -> Result<(), StoreError> {
    let (inline, body_id) = match shared_body {
        None => (Some(super::bodies::encode(&n.body)), None),
        Some(digest) => (None, Some(shared_body_id(conn, digest, &n.body)?)),
    };
    let (body, codec) = match &inline {
        Some(e) => (Some(e.bytes.as_slice()), e.codec),
        None => (None, None),
    };
    conn.prepare_cached(
        "INSERT INTO deliveries (event_id, received_at, peer, duplicate, headers, body, body_id, body_codec)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        event_id,
        n.received_at,
        n.peer,
        duplicate,
        n.headers,
        body,
        body_id,
        codec
    ])?;
    Ok(())
}

/// The `bodies` row holding `body` (SHA-256 `digest`), inserted if new:
/// every update of a document, and every resend of it, share one copy.
fn shared_body_id(conn: &Connection, digest: &[u8; 32], body: &[u8]) -> Result<i64, StoreError> {
    let found = conn
        .prepare_cached("SELECT id FROM bodies WHERE sha256 = ?1")?
        .query_row(params![&digest[..]], |r| r.get(0))
        .optional()?;
    if let Some(id) = found {
        return Ok(id);
    }
    let stored = super::bodies::encode(body);
    conn.prepare_cached("INSERT INTO bodies (sha256, body, body_codec) VALUES (?1, ?2, ?3)")?
        .execute(params![&digest[..], stored.bytes, stored.codec])?;
    Ok(conn.last_insert_rowid())
}

fn parse_outcome(s: &str) -> Result<Outcome, StoreError> {
    Outcome::parse(s)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown outcome {s:?} in the database")))
}

/// Records a push attempt and moves the outbox row on.
pub(crate) fn record_push(conn: &Connection, report: &PushReport) -> Result<(), StoreError> {
    let now = now_ms();
    let (outbox_id, result, detail) = match report {
        PushReport::Delivered {
            outbox_id,
            detail,
            needs_operator,
            applied_outcome,
        } => {
            conn.prepare_cached("UPDATE outbox SET state = 'delivered', attempts = attempts + 1, delivered_at = ?2, last_error = NULL,
                        needs_operator = ?3
                 WHERE id = ?1")?.execute(
                params![outbox_id, now, needs_operator],
            )?;
            if let Some(applied) = applied_outcome {
                record_applied_outcome(conn, *outbox_id, *applied, now)?;
            }
            (*outbox_id, "delivered", detail.as_str())
        }
        PushReport::Retry {
            outbox_id,
            next_attempt_at,
            error,
        } => {
            conn.prepare_cached("UPDATE outbox SET attempts = attempts + 1, next_attempt_at = ?2, last_error = ?3 WHERE id = ?1")?.execute(
                params![outbox_id, next_attempt_at, error],
            )?;
            (*outbox_id, "retry", error.as_str())
        }
        PushReport::Dead { outbox_id, error } => {
            conn.prepare_cached("UPDATE outbox SET state = 'dead', attempts = attempts + 1, last_error = ?2 WHERE id = ?1")?.execute(
                params![outbox_id, error],
            )?;
            (*outbox_id, "dead", error.as_str())
        }
    };
    conn.prepare_cached(
        "INSERT INTO push_attempts (outbox_id, at, result, detail) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![outbox_id, now, result, truncate(detail, 2000)])?;
    Ok(())
}

/// The shop applied another outcome than the row's (the amount check put
/// the order in review instead of marking it paid): the order's outcome is
/// what the shop now shows, so `review list` lists it and a review action
/// can act on it. Only while the order still stands where this row left
/// it: a later decision already moved it on and must not be undone.
fn record_applied_outcome(
    conn: &Connection,
    outbox_id: i64,
    applied: Outcome,
    now: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE orders SET outcome = ?2, updated_at = ?3
         WHERE (shop, order_ref, event_id, outcome) =
               (SELECT shop, order_ref, event_id, outcome FROM outbox WHERE id = ?1)",
    )?
    .execute(params![outbox_id, applied.as_str(), now])?;
    Ok(())
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Puts dead rows back in the queue (operator action). Returns how many
/// rows changed. The attempt counter is kept, so history stays truthful;
/// `schedule_base` restarts the retry schedule from its first step.
pub fn retry_dead(conn: &Connection, ids: Option<&[i64]>) -> Result<usize, StoreError> {
    let now = now_ms();
    let changed = match ids {
        None => conn
            .prepare_cached(
                "UPDATE outbox SET state = 'pending', next_attempt_at = ?1, schedule_base = attempts WHERE state = 'dead'",
            )?
            .execute(params![now])?,
        Some(ids) => {
            let mut n = 0;
            for id in ids {
                n += conn.prepare_cached("UPDATE outbox SET state = 'pending', next_attempt_at = ?2, schedule_base = attempts\n                     WHERE id = ?1 AND state = 'dead'")?.execute(
                    params![id, now],
                )?;
            }
            n
        }
    };
    Ok(changed)
}

#[cfg(test)]
mod tests;
