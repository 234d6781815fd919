//! Committing one batch of writer commands: all in one transaction (one
//! fsync), or one command per transaction when one of them fails.

use crate::store::db::{params, Connection, TransactionBehavior};

use super::super::apply::HotStatements;
use super::super::{now_ms, StoreError};
use super::{
    intake::OffWriter, intake_with_body, record_push, Command, IntakeReceipt, PushReport, Reply,
    SubmitError,
};
use crate::store::confirm::Recorded;

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

fn apply<'c>(
    conn: &'c Connection,
    hot: &mut HotStatements<'c>,
    cmd: &Command,
) -> Result<Done, StoreError> {
    match cmd {
        Command::Intake(q, new_order, _) => intake_with_body(
            conn,
            hot,
            &q.n,
            q.shared_body.as_ref(),
            OffWriter {
                stored: Some(&q.stored_body),
                notification_json: q.notification_json.as_deref(),
                prepared: Some(&q.prepared),
                new_order: Some(new_order),
            },
            q.confirm,
        )
        .map(Done::Intake),
        Command::Push(report, _) => record_push(conn, report).map(|()| Done::Unit),
        Command::Probe(_) => write_probe(conn).map(|()| Done::Unit),
        Command::Confirm(report, _) => {
            crate::store::confirm::record(conn, report).map(Done::Confirm)
        }
    }
}

/// [`run_once`], again when another daemon's transaction got in the way
/// (PostgreSQL: a deadlock between two daemons' order locks, a unique key
/// the other inserted first). The retry sees what the other committed.
fn run_in_transaction(conn: &mut Connection, cmds: &[Command]) -> Result<Vec<Done>, TxError> {
    const ATTEMPTS: usize = 5;
    let mut attempt = 1;
    loop {
        match run_once(conn, cmds) {
            Err(TxError::Command(_, e) | TxError::Transaction(e))
                if e.is_conflict() && attempt < ATTEMPTS =>
            {
                tracing::debug!(error = %e, attempt, "another daemon's transaction got in the way; running the batch again");
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn run_once(conn: &mut Connection, cmds: &[Command]) -> Result<Vec<Done>, TxError> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| TxError::Transaction(e.into()))?;
    let mut done = Vec::with_capacity(cmds.len());
    // The batch's statements, prepared once for all its notifications
    // (`apply::HotStatements`); let go before the commit.
    let mut hot = HotStatements::default();
    for (index, cmd) in cmds.iter().enumerate() {
        // On error the transaction is dropped, which rolls it back.
        done.push(apply(&tx, &mut hot, cmd).map_err(|e| TxError::Command(index, e))?);
    }
    drop(hot);
    let committing = std::time::Instant::now();
    tx.commit().map_err(|e| TxError::Transaction(e.into()))?;
    metrics::histogram!(crate::ops::metrics::COMMIT_SECONDS)
        .record(committing.elapsed().as_secs_f64());
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
pub(super) fn commit_batch(
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
            Command::Intake(_, _, tx) => {
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
        Command::Intake(_, _, tx) => Reply::Intake(tx, Err(err.clone())),
        Command::Push(_, tx) | Command::Probe(tx) => Reply::Unit(tx, Err(err.clone())),
        Command::Confirm(_, tx) => Reply::Confirm(tx, Err(err.clone())),
    }
}

pub(super) fn fail_all(batch: Vec<Command>, err: &SubmitError) -> Vec<Reply> {
    batch.into_iter().map(|c| fail_one(c, err)).collect()
}
