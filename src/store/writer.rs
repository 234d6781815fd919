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

use crate::store::db::Connection;
use bytes::Bytes;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot, Notify};

use super::bodies;
use super::checkpoint::Handoff;
use super::confirm::{ConfirmReport, Recorded};
use super::files::FileWatch;
use crate::config::Confirm;
use crate::domain::{Notification, Outcome};

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
    /// The body as it will be stored (`store::bodies`: compressed), encoded
    /// on the request's task: compression is CPU work any core can do, and
    /// the one writer thread is the daemon's ceiling. Shared by the
    /// notifications of one request.
    stored_body: Arc<bodies::Encoded>,
    /// The notification as the events row stores it (JSON), serialised on
    /// the request's task for the same reason; `None` (it cannot fail in
    /// practice) leaves it to the writer, which reports the error.
    notification_json: Option<String>,
    /// What the notification alone decides (`domain::Prepared`), likewise.
    prepared: crate::domain::Prepared,
    /// The source's `confirm`: whether the decision waits for the gateway
    /// (`store::confirm`).
    confirm: Confirm,
}

enum Command {
    /// Shared with the submitting task, which holds it until the reply
    /// comes: the writer's copy is gone by then (`batch::answer` drops it
    /// before the reply is sent), so the notification's memory is freed
    /// on the request's thread, not on the writer's (issue 18: freeing it
    /// there was 5 % of the writer's time).
    Intake(
        Arc<Queued>,
        NewOrderDecision,
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

/// The decision on the notification's order if the order has no row yet
/// (`domain::Prepared::decide_new_order`), computed on the request's task
/// and taken (moved, not copied) by the writer when the snapshot it reads
/// is that of a new order; left there otherwise, and when a batch is run
/// again after a failure the writer decides itself. In the command, not in
/// the shared `Queued`, so that only the writer thread touches it.
type NewOrderDecision = std::cell::Cell<Option<crate::domain::Decision>>;

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
        let queued = Arc::new(Queued {
            stored_body: Arc::new(bodies::encode(&n.body)),
            notification_json: super::sql::notification_json(&n.notification).ok(),
            prepared: crate::domain::Prepared::of(&n.notification),
            n,
            shared_body: None,
            confirm: Confirm::Off,
        });
        let new_order = queued.prepared.decide_new_order(&queued.n.notification);
        self.send(Command::Intake(
            queued.clone(),
            Some(new_order).into(),
            reply,
        ))?;
        let receipt = rx
            .await
            .map_err(|_| SubmitError::Storage("writer stopped".into()))?;
        drop(queued); // here, after the writer's copy (see `Command::Intake`)
        receipt
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
        let stored_body = notifications
            .first()
            .map(|n| Arc::new(bodies::encode(&n.body)));
        let queued: Vec<_> = notifications
            .into_iter()
            .map(|n| {
                if let Some(e) = &failed {
                    return Err(e.clone());
                }
                let (reply, rx) = oneshot::channel();
                let queued = Arc::new(Queued {
                    stored_body: stored_body.clone().expect("one notification at least"),
                    notification_json: super::sql::notification_json(&n.notification).ok(),
                    prepared: crate::domain::Prepared::of(&n.notification),
                    n,
                    shared_body,
                    confirm,
                });
                let new_order = queued.prepared.decide_new_order(&queued.n.notification);
                self.send(Command::Intake(
                    queued.clone(),
                    Some(new_order).into(),
                    reply,
                ))
                .map(|()| (rx, queued))
                .inspect_err(|e| failed = Some(e.clone()))
            })
            .collect();
        let mut receipts = Vec::with_capacity(queued.len());
        for rx in queued {
            receipts.push(match rx {
                // The notification is dropped here, after the writer's copy
                // (see `Command::Intake`).
                Ok((rx, _queued)) => rx
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
    spawn_watched(conn, None, None, queue, batch_max, committed)
}

/// [`spawn`], checking before each batch and after each commit that the
/// database file is still the one at its path (`files`): while it is not,
/// nothing is written and every command fails (HTTP 503), since a commit
/// into a deleted or replaced file would be lost.
pub fn spawn_watched(
    conn: Connection,
    files: Option<Arc<FileWatch>>,
    handoff: Option<Arc<Handoff>>,
    queue: usize,
    batch_max: usize,
    committed: Arc<Notify>,
) -> (WriterHandle, JoinHandle<()>) {
    spawn_sessions(vec![conn], files, handoff, queue, batch_max, committed)
}

/// [`spawn_watched`] with one writer thread per connection, all taking
/// batches from the one queue (PostgreSQL, `[writer] sessions`: a session
/// commits one statement at a time, so several side by side multiply what
/// one daemon takes). They are safe together for the same reason several
/// daemons are: every decision takes its order's lock first
/// (`one-decision-per-order-at-a-time`). SQLite gets one connection: its
/// writes are serial anyway. The handle joins every thread.
pub fn spawn_sessions(
    conns: Vec<Connection>,
    files: Option<Arc<FileWatch>>,
    handoff: Option<Arc<Handoff>>,
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
    let rx = Arc::new(std::sync::Mutex::new(rx));
    let threads: Vec<JoinHandle<()>> = conns
        .into_iter()
        .enumerate()
        .map(|(i, conn)| {
            let (rx, queued, committed, files, handoff) = (
                rx.clone(),
                queued.clone(),
                committed.clone(),
                files.clone(),
                handoff.clone(),
            );
            std::thread::Builder::new()
                .name(if i == 0 {
                    "ipnsync-writer".into()
                } else {
                    format!("ipnsync-writer-{i}")
                })
                .spawn(move || run(conn, rx, batch_max, queued, committed, files, handoff))
                .expect("spawn writer thread")
        })
        .collect();
    let thread = std::thread::Builder::new()
        .name("ipnsync-writers".into())
        .spawn(move || {
            for t in threads {
                let _ = t.join();
            }
        })
        .expect("spawn writer joiner");
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
    rx: Arc<std::sync::Mutex<mpsc::Receiver<Message>>>,
    batch_max: usize,
    queued: Arc<AtomicUsize>,
    committed: Arc<Notify>,
    files: Option<Arc<FileWatch>>,
    handoff: Option<Arc<Handoff>>,
) {
    let mut batch = Vec::with_capacity(batch_max);
    // The last commit failure (disk full, read-only file, I/O error), to
    // log each change once rather than once per batch.
    let mut failing: Option<String> = None;
    let check = || files.as_deref().map_or(Ok(()), FileWatch::check);
    loop {
        {
            // One thread takes a batch at a time; it commits without the lock.
            let mut rx = rx.lock().unwrap_or_else(|e| e.into_inner());
            let Some(first) = rx.blocking_recv() else {
                break;
            };
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
        // The checkpointer paces its rounds by this (rule `checkpoint-pace`).
        if let Some(handoff) = &handoff {
            handoff.committed(size);
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
        // After the answers: the few frames the background checkpoint left
        // (`checkpoint::Handoff`), so that the next batch starts the WAL
        // over instead of a COMMIT copying it all later.
        if let (Some(handoff), Some(lite)) = (&handoff, conn.sqlite()) {
            if handoff.take() {
                super::checkpoint::finish_on_writer(lite);
            }
        }
    }
    // Leave a small WAL behind for the next start and for backups.
    if conn.sqlite().is_some() {
        let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
    }
}

mod batch;
mod intake;
mod push;

use batch::{commit_batch, fail_all};

use intake::intake_with_body;
#[cfg(test)]
pub(crate) use intake::{compact_event_key, intake, intake_confirmed};
pub(crate) use push::record_push;

#[cfg(test)]
mod tests;
