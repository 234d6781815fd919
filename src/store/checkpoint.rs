//! WAL checkpoints off the commit path.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that crosses the
//! threshold: that commit (and every notification waiting on it) pays for
//! copying the WAL into the database and an extra fsync, tens of
//! milliseconds. Here a separate connection runs PASSIVE checkpoints on a
//! timer instead; in WAL mode they proceed alongside the writer, and the
//! writer's own auto-checkpoint stays as a far-off safety net.
//!
//! A checkpoint copies the WAL into the database, but only the writer can
//! start the WAL over, at the beginning of a transaction, and only when
//! every frame has been copied. Under steady load that never happens by
//! itself: the writer has always appended a few more frames by the time a
//! background checkpoint ends, so the WAL grew until the writer's own
//! auto-checkpoint fired inside a COMMIT and copied everything still new
//! (25 – 50 ms, the saturation p99.9 of issue 18). Hence the **handoff**:
//! once the WAL is large, the background thread copies it, catches up
//! with what was appended meanwhile, and then asks the writer
//! ([`Handoff`]) to copy the last few frames itself, between two batches,
//! after their answers went out; the writer's next transaction then starts
//! the WAL over.
//!
//! The same timer checks that the database file is still the one at its
//! path ([`FileWatch`]), so a deleted or replaced file is reported within a
//! second even when no notification arrives; no checkpoint runs meanwhile.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use super::files::FileWatch;
use super::StoreError;

/// How often the background thread checkpoints (and checks the file's
/// identity). Often, so that each round copies little: a round's fsync of
/// the database file holds up the writer's WAL fsync on the same disk, and
/// 100 ms of WAL is a short one (at 1 000/s ≈ 500 frames). Interleaved
/// runs at 1 000/s (docs/PERFORMANCE.md, sixth pass): median p99 1.96 ms
/// every 100 ms against 3.22 ms every 500 ms. An idle round finds nothing
/// to copy and costs a few system calls.
pub const EVERY: Duration = Duration::from_millis(100);

/// Pages the WAL may reach before the writer checkpoints by itself
/// (≈ 80 MiB): only reached if the background checkpointer falls behind.
pub const WRITER_AUTOCHECKPOINT_PAGES: i64 = 20_000;

/// WAL frames (pages) from which the background checkpointer hands the end
/// of its checkpoint to the writer (≈ 16 MiB): below it the WAL is small
/// enough to wait for a quiet moment.
pub const HANDOFF_FRAMES: i64 = 4_096;

/// A catch-up pass that found fewer new frames than this leaves so little
/// that the writer copies the rest in well under a millisecond.
const CAUGHT_UP_FRAMES: i64 = 256;

/// Catch-up passes at most, after the first: each copies what the writer
/// appended during the one before, so they shrink fast.
const CATCH_UP_PASSES: usize = 4;

/// The checkpointer's request that the writer finish a checkpoint (see the
/// module documentation): set by the checkpointer, taken by the writer.
#[derive(Debug, Default)]
pub struct Handoff(AtomicBool);

impl Handoff {
    pub(crate) fn request(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// Whether a checkpoint is wanted now (and clears the request).
    pub fn take(&self) -> bool {
        self.0.load(Ordering::Relaxed) && self.0.swap(false, Ordering::Acquire)
    }
}

/// Run by the writer when [`Handoff::take`] says so, between batches: copies
/// the frames the background passes left, so that the next transaction
/// starts the WAL over. Best effort: a busy checkpoint (a reader still on
/// old frames) leaves the WAL as it is, for the next round.
pub fn finish_on_writer(conn: &Connection) {
    let started = std::time::Instant::now();
    match passive(conn) {
        Ok(Pass { log, copied, busy }) => tracing::debug!(
            log,
            copied,
            busy,
            micros = started.elapsed().as_micros() as u64,
            "writer finished the checkpoint"
        ),
        Err(e) => tracing::debug!(error = %e, "writer checkpoint skipped"),
    }
}

/// What one `PRAGMA wal_checkpoint(PASSIVE)` reports.
struct Pass {
    /// Frames in the WAL.
    log: i64,
    /// Frames of it now copied into the database.
    copied: i64,
    /// Whether a reader or another checkpoint kept it from finishing.
    busy: bool,
}

fn passive(conn: &Connection) -> rusqlite::Result<Pass> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
        Ok(Pass {
            busy: r.get::<_, i64>(0)? != 0,
            log: r.get(1)?,
            copied: r.get(2)?,
        })
    })
}

/// One round of the background thread: a checkpoint and, on a large WAL,
/// the catch-up passes and the handoff.
fn round(conn: &Connection, handoff: &Handoff) {
    let first = match passive(conn) {
        Ok(pass) => pass,
        Err(e) => {
            tracing::debug!(error = %e, "background checkpoint skipped");
            return;
        }
    };
    if first.busy || first.log < HANDOFF_FRAMES {
        return;
    }
    let mut last = first.log;
    for _ in 0..CATCH_UP_PASSES {
        match passive(conn) {
            // A restarted WAL (fewer frames than before) needs nothing more.
            Ok(pass) if pass.busy || pass.log < last => return,
            Ok(pass) => {
                let appended = pass.log - last;
                last = pass.log;
                if appended < CAUGHT_UP_FRAMES {
                    break;
                }
            }
            Err(_) => return,
        }
    }
    handoff.request();
}

pub struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Starts a thread that checkpoints `path` every `every` (and checks
/// `files`, if given, at the same pace), handing the end of a large
/// checkpoint to the writer through `handoff`.
pub fn spawn(
    path: &Path,
    every: Duration,
    files: Option<Arc<FileWatch>>,
    handoff: Arc<Handoff>,
) -> Result<Checkpointer, StoreError> {
    let conn = Connection::open(path).map_err(|source| StoreError::Open {
        path: path.display().to_string(),
        source: source.into(),
    })?;
    conn.busy_timeout(Duration::from_secs(1))?;
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = std::thread::Builder::new()
        .name("ipnsync-checkpoint".into())
        .spawn(move || {
            let step = Duration::from_millis(50).min(every);
            let mut waited = Duration::ZERO;
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(step);
                waited += step;
                if waited < every {
                    continue;
                }
                waited = Duration::ZERO;
                if let Some(Err(_)) = files.as_deref().map(FileWatch::check) {
                    continue; // logged by the check; nothing to checkpoint into
                }
                round(&conn, &handoff);
            }
        })
        .expect("spawn checkpoint thread");
    Ok(Checkpointer { stop, thread })
}

impl Checkpointer {
    pub fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer connection as the daemon's (WAL, `synchronous=FULL`) on a
    /// fresh file, and the checkpointer's own connection to it.
    fn pair(dir: &tempfile::TempDir) -> (Connection, Connection) {
        let path = dir.path().join("wal.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .unwrap();
        writer
            .execute_batch(
                "PRAGMA synchronous=FULL;
                 PRAGMA wal_autocheckpoint=0;
                 CREATE TABLE t (x BLOB);",
            )
            .unwrap();
        (writer, Connection::open(&path).unwrap())
    }

    /// `pages` WAL frames' worth of rows, in transactions of 100.
    fn write(conn: &Connection, pages: i64) {
        for _ in 0..(pages + 99) / 100 {
            let tx = conn.unchecked_transaction().unwrap();
            for _ in 0..100 {
                tx.execute("INSERT INTO t VALUES (zeroblob(3500))", [])
                    .unwrap();
            }
            tx.commit().unwrap();
        }
    }

    /// The WAL header's checkpoint sequence number: it changes exactly
    /// when the WAL starts over (reading it checkpoints nothing).
    fn wal_generation(dir: &tempfile::TempDir) -> u32 {
        let wal = std::fs::read(dir.path().join("wal.db-wal")).unwrap();
        u32::from_be_bytes(wal[12..16].try_into().unwrap())
    }

    /// A background round that ends short of the WAL's end, as under
    /// steady load, where the writer commits while the round copies. The
    /// same end state without threads: a reader that began before the
    /// writer's last commit keeps the round from copying that commit.
    fn round_behind_the_writer(
        writer: &Connection,
        checkpointer: &Connection,
        reader: &Connection,
        handoff: &Handoff,
    ) {
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        write(writer, 100);
        round(checkpointer, handoff);
        reader.execute_batch("COMMIT").unwrap();
    }

    /// Under steady load the writer appends during every background
    /// checkpoint, so the WAL is never all copied when a transaction
    /// starts: it never starts over, and grows until the writer's own
    /// auto-checkpoint copies it all inside a COMMIT (issue 18's 25 – 50 ms
    /// stalls). After the handoff the writer copies the few frames left
    /// between two batches, and its next batch starts the WAL over.
    #[test]
    fn under_steady_writes_the_wal_starts_over_only_after_the_handoff() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, checkpointer) = pair(&dir);
        let reader = Connection::open(dir.path().join("wal.db")).unwrap();
        write(&writer, HANDOFF_FRAMES + 100);
        let generation = wal_generation(&dir);

        // Without the handoff (what the checkpointer did before): the WAL
        // is copied again and again, and never starts over.
        for _ in 0..3 {
            round_behind_the_writer(&writer, &checkpointer, &reader, &Handoff::default());
            write(&writer, 100);
        }
        assert_eq!(wal_generation(&dir), generation, "the WAL kept growing");

        // With it: the round asks the writer, which finishes after its
        // batch; the next batch starts the WAL over.
        let handoff = Handoff::default();
        round_behind_the_writer(&writer, &checkpointer, &reader, &handoff);
        assert!(handoff.take(), "a large WAL is handed to the writer");
        assert!(!handoff.take(), "the request is taken once");
        finish_on_writer(&writer);
        write(&writer, 100);
        assert_ne!(wal_generation(&dir), generation, "the WAL started over");
    }

    #[test]
    fn a_small_wal_is_not_handed_to_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, checkpointer) = pair(&dir);
        let handoff = Handoff::default();
        write(&writer, 200);
        let generation = wal_generation(&dir);
        round(&checkpointer, &handoff);
        assert!(!handoff.take());
        // Copied all the same, and no commit came in between: the next
        // one starts the WAL over by itself.
        write(&writer, 100);
        assert_ne!(wal_generation(&dir), generation);
    }
}
