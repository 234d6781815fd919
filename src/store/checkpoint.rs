//! WAL checkpoints off the commit path.
//!
//! SQLite's automatic checkpoint runs inside the COMMIT that crosses the
//! threshold: that commit (and every notification waiting on it) pays for
//! copying the WAL into the database and an extra fsync, tens of
//! milliseconds. Here a separate connection runs PASSIVE checkpoints on a
//! timer instead; in WAL mode they proceed alongside the writer, and the
//! writer's own auto-checkpoint stays as a far-off safety net.
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

/// Pages the WAL may reach before the writer checkpoints by itself
/// (≈ 80 MiB): only reached if the background checkpointer falls behind.
pub const WRITER_AUTOCHECKPOINT_PAGES: i64 = 20_000;

pub struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Starts a thread that checkpoints `path` every `every` (and checks
/// `files`, if given, at the same pace).
pub fn spawn(
    path: &Path,
    every: Duration,
    files: Option<Arc<FileWatch>>,
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
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::debug!(error = %e, "background checkpoint skipped");
                }
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
