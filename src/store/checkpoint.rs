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
//! The writer's pass is short in frames, not in time: SQLite flushes the
//! database file only in a checkpoint that copies the whole WAL, so the
//! background passes, which never catch up under load, leave everything
//! they copied unflushed, and the writer's pass flushes it all (1 – 21 ms
//! at 5 000/s, 15 – 38 ms at saturation on the machine of
//! docs/PERFORMANCE.md's thirteenth pass). Flushing from this thread
//! instead was measured and not kept: on a disk that serves one request
//! at a time the background flush holds up the writer's WAL fsync just as
//! long, and an `fdatasync` on SQLite's own descriptor would take a write
//! error that SQLite's own flush must see.
//!
//! After a round that copied something, the database file's pages up to
//! its last [`KEEP_CACHED`] bytes leave the page cache
//! ([`drop_cached_history`]): see there why.
//!
//! **Rule `checkpoint-pace`:** rounds follow the writer's load ([`due`]).
//! While its commits carry one notification or a few, a round runs every
//! [`EVERY`]: each copies little, and its fsync of the database file
//! holds up the next commit's fsync only briefly (the p99 at 1 000/s).
//! Once its commits carry [`SATURATED_BATCH`] notifications or more on
//! average, check after check ([`SATURATED_STREAK`]), the writer is the
//! daemon's ceiling and every round's copy and flushes (the WAL's in the
//! round, the database file's in the writer's pass) compete with it;
//! rounds then wait until [`SATURATED_EVERY`] has passed or
//! [`SATURATED_COMMITS`] commits have been made, whichever comes first,
//! so that the WAL stays well below the writer's own auto-checkpoint. The
//! writer counts its commits in the [`Handoff`] it already shares with
//! this thread.
//!
//! The same timer checks that the database file is still the one at its
//! path ([`FileWatch`]), so a deleted or replaced file is reported within a
//! second even when no notification arrives; no checkpoint runs meanwhile.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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

/// Mean notifications per commit from which the writer counts as
/// saturated (rule `checkpoint-pace`): at 1 000/s and 5 000/s offered a
/// commit carries one or two; at saturation, tens.
pub const SATURATED_BATCH: u64 = 4;

/// The longest a saturated writer goes without a round (rule
/// `checkpoint-pace`). Interleaved runs at saturation in a slow-disk
/// spell (docs/PERFORMANCE.md, twelfth pass): against rounds every
/// 100 ms, the p99 fell from 16 – 21 to 10.5 – 13.5 ms and the p99.9
/// rose from 22 – 36 to 39 – 57 ms (fewer stalls, each longer);
/// throughput the same. Rounds every 250 or 400 ms kept the p99 where it
/// was. At 1 000/s a 1 s pace raised the p99, hence rounds every
/// [`EVERY`] there.
pub const SATURATED_EVERY: Duration = Duration::from_secs(1);

/// Saturated checks in a row after which the pace slows (see [`due`]).
pub const SATURATED_STREAK: u32 = 3;

/// Commits after which a saturated writer gets a round even before
/// [`SATURATED_EVERY`]: a commit writes about 20 – 30 WAL frames, so the
/// WAL stays near 15 000 frames at most, below
/// [`WRITER_AUTOCHECKPOINT_PAGES`] however fast the machine.
pub const SATURATED_COMMITS: u64 = 500;

/// Pages the WAL may reach before the writer checkpoints by itself
/// (≈ 80 MiB): only reached if the background checkpointer falls behind.
pub const WRITER_AUTOCHECKPOINT_PAGES: i64 = 20_000;

/// WAL frames (pages) from which the background checkpointer hands the end
/// of its checkpoint to the writer (≈ 16 MiB): below it the WAL is small
/// enough to wait for a quiet moment.
pub const HANDOFF_FRAMES: i64 = 4_096;

/// A catch-up pass that found fewer new frames than this leaves the writer
/// little to copy (its pass still flushes the database file: see the
/// module documentation).
const CAUGHT_UP_FRAMES: i64 = 256;

/// Catch-up passes at most, after the first: each copies what the writer
/// appended during the one before, so they shrink fast.
const CATCH_UP_PASSES: usize = 4;

/// The database file's tail that stays in the page cache after a round
/// (≈ 7 000 notifications): the recent orders, events and index pages
/// that the dispatcher, the console and the next notifications of the
/// same orders read back.
pub const KEEP_CACHED: u64 = 16 << 20;

/// What the writer and the checkpointer share: the checkpointer's request
/// that the writer finish a checkpoint (see the module documentation), set
/// by the checkpointer and taken by the writer; and the writer's count of
/// its commits and of the notifications they carried, by which the
/// checkpointer paces its rounds (rule `checkpoint-pace`).
#[derive(Debug, Default)]
pub struct Handoff {
    wanted: AtomicBool,
    commits: AtomicU64,
    notifications: AtomicU64,
}

impl Handoff {
    pub(crate) fn request(&self) {
        self.wanted.store(true, Ordering::Release);
    }

    /// Whether a checkpoint is wanted now (and clears the request).
    pub fn take(&self) -> bool {
        self.wanted.load(Ordering::Relaxed) && self.wanted.swap(false, Ordering::Acquire)
    }

    /// Counts one batch the writer took, carrying `notifications`:
    /// committed, or answered with a storage error (the disk or the file
    /// watch refused it; no round runs into a refused file anyway).
    pub fn committed(&self, notifications: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.notifications
            .fetch_add(notifications as u64, Ordering::Relaxed);
    }

    /// Commits and notifications counted so far.
    pub fn load(&self) -> Load {
        Load {
            commits: self.commits.load(Ordering::Relaxed),
            notifications: self.notifications.load(Ordering::Relaxed),
        }
    }
}

/// The writer's commits and the notifications they carried, counted since
/// the start ([`Handoff::load`]); the difference of two is the load between
/// them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    pub commits: u64,
    pub notifications: u64,
}

impl Load {
    fn since(self, earlier: Load) -> Load {
        Load {
            commits: self.commits.saturating_sub(earlier.commits),
            notifications: self.notifications.saturating_sub(earlier.notifications),
        }
    }
}

/// Whether the writer's commits carried [`SATURATED_BATCH`] notifications
/// or more on average over `load` (one check's interval).
fn saturated(load: Load) -> bool {
    load.commits > 0 && load.notifications >= load.commits * SATURATED_BATCH
}

/// Whether a round is due `since` after the last one, the writer having
/// made `load` meanwhile and been [`saturated`] over the last `streak`
/// checks, for rounds every `every` (rule `checkpoint-pace`). The pace
/// slows only after [`SATURATED_STREAK`] saturated checks in a row: a
/// lone one is as likely a stall of the disk, after which the commits
/// carry what piled up, and a round held back then would copy more and
/// stall the next commits longer.
fn due(since: Duration, every: Duration, load: Load, streak: u32) -> bool {
    if since < every {
        return false;
    }
    streak < SATURATED_STREAK
        || since >= SATURATED_EVERY.max(every)
        || load.commits >= SATURATED_COMMITS
}

/// The background thread's pace (rule `checkpoint-pace`): fed the writer's
/// counts at each check, it says whether a round runs then.
#[derive(Debug)]
struct Pace {
    every: Duration,
    since_round: Duration,
    at_round: Load,
    at_check: Load,
    /// Checks in a row over which the writer was [`saturated`].
    streak: u32,
}

impl Pace {
    /// The pace of rounds every `every`, the writer's counts being `load`.
    fn new(every: Duration, load: Load) -> Pace {
        Pace {
            every,
            since_round: Duration::ZERO,
            at_round: load,
            at_check: load,
            streak: 0,
        }
    }

    /// One check, `elapsed` after the one before, the writer's counts now
    /// being `load`: whether a round runs now (the pace then counts from
    /// it).
    fn check(&mut self, elapsed: Duration, load: Load) -> bool {
        self.since_round += elapsed;
        self.streak = if saturated(load.since(self.at_check)) {
            self.streak.saturating_add(1)
        } else {
            0
        };
        self.at_check = load;
        if !due(
            self.since_round,
            self.every,
            load.since(self.at_round),
            self.streak,
        ) {
            return false;
        }
        self.since_round = Duration::ZERO;
        self.at_round = load;
        true
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
/// the catch-up passes and the handoff. How many frames of the WAL are in
/// the database after it (SQLite's count, 0 when the round failed): a
/// change from the last round means it copied something.
fn round(conn: &Connection, handoff: &Handoff) -> i64 {
    let first = match passive(conn) {
        Ok(pass) => pass,
        Err(e) => {
            tracing::debug!(error = %e, "background checkpoint skipped");
            return 0;
        }
    };
    let mut copied = first.copied;
    if first.busy || first.log < HANDOFF_FRAMES {
        return copied;
    }
    let mut last = first.log;
    for _ in 0..CATCH_UP_PASSES {
        match passive(conn) {
            // A restarted WAL (fewer frames than before) needs nothing more.
            Ok(pass) if pass.busy || pass.log < last => return copied,
            Ok(pass) => {
                copied = pass.copied;
                let appended = pass.log - last;
                last = pass.log;
                if appended < CAUGHT_UP_FRAMES {
                    break;
                }
            }
            Err(_) => return copied,
        }
    }
    handoff.request();
    copied
}

/// Drops the database file's pages before its last `keep` bytes from the
/// kernel's page cache (`posix_fadvise(DONTNEED)`), after a checkpoint
/// copied and fsynced them. Nothing can be lost: the kernel drops only
/// clean pages (a dirty one is written back instead), and a later read
/// finds them on disk. Whether the advice was given.
///
/// Why: the file only grows (≈ 1.5 KB per notification), and everything
/// but its recent tail is history the daemon rarely reads again. Left
/// cached, each checkpoint needs fresh page-cache pages for the new part
/// of the file: from free memory while there is some, which on a virtual
/// machine that hands freed memory back to its host costs a host fault
/// per page (here the checkpointer's copy ran at ~0.5 GB/s instead of
/// ~6), and, once memory is full, by reclaiming older pages on the way.
/// Dropping the history hands the same pages back to the next round.
/// Interleaved runs (docs/PERFORMANCE.md, eighth pass): the checkpointer
/// went from 9 % to 3 % of the machine's time at saturation, and the
/// daemon's CPU per notification from 45 to 42 µs over 400 000
/// notifications (55 to 43 µs on a machine whose memory was all fresh).
///
/// The advice goes through the descriptor SQLite holds for `conn`
/// ([`sqlite_descriptor`]), never one of our own: closing *any*
/// descriptor of a file drops every POSIX lock the process holds on it,
/// SQLite's among them, and another process (the CLI) would then take
/// the database as unused (a first version did that; `tests/cli.rs`
/// caught it).
pub fn drop_cached_history(conn: &Connection, path: &Path, keep: u64) -> std::io::Result<bool> {
    let Some((fd, len)) = sqlite_descriptor(conn, path) else {
        return Ok(false);
    };
    let Some(drop) = len.checked_sub(keep).filter(|d| *d > 0) else {
        return Ok(false);
    };
    let drop = libc::off_t::try_from(drop).unwrap_or(libc::off_t::MAX);
    // SAFETY: a system call on SQLite's open descriptor (checked to be
    // the file's); it reads no memory of ours and closes nothing.
    match unsafe { libc::posix_fadvise(fd, 0, drop, libc::POSIX_FADV_DONTNEED) } {
        0 => Ok(true),
        errno => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

/// The descriptor SQLite's unix VFS holds on `conn`'s main database file
/// and the file's length, when it is `path`'s file (same device and
/// inode), else `None`. SQLite
/// hands out its file object (`SQLITE_FCNTL_FILE_POINTER`); the unix
/// VFS's (`unixFile`, private to SQLite) starts with three pointers and
/// then the descriptor. The device-and-inode check makes a different
/// layout (another SQLite, another VFS) a `None`, never a wrong file.
pub(crate) fn sqlite_descriptor(
    conn: &Connection,
    path: &Path,
) -> Option<(std::os::fd::RawFd, u64)> {
    use std::os::unix::fs::MetadataExt;
    let file = main_file_object(conn)?;
    // SAFETY: `file` points to SQLite's live file object, at least three
    // pointers and an int long for the unix VFS; only read.
    let fd = unsafe {
        file.cast::<u8>()
            .add(3 * std::mem::size_of::<*const ()>())
            .cast::<libc::c_int>()
            .read_unaligned()
    };
    // SAFETY: fstat writes into `st` only; a bad descriptor is an error.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if fd < 0 || unsafe { libc::fstat(fd, &mut st) } != 0 {
        return None;
    }
    let meta = std::fs::metadata(path).ok()?;
    (st.st_dev == meta.dev() && st.st_ino == meta.ino()).then_some((fd, meta.len()))
}

/// SQLite's file object of `conn`'s main database file
/// (`SQLITE_FCNTL_FILE_POINTER`), live as long as the connection.
pub(crate) fn main_file_object(conn: &Connection) -> Option<*mut rusqlite::ffi::sqlite3_file> {
    let mut file: *mut rusqlite::ffi::sqlite3_file = std::ptr::null_mut();
    // SAFETY: `handle` is the open connection's; the file control writes
    // one pointer into `file`.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_file_control(
            conn.handle(),
            c"main".as_ptr(),
            rusqlite::ffi::SQLITE_FCNTL_FILE_POINTER,
            (&mut file as *mut *mut rusqlite::ffi::sqlite3_file).cast(),
        )
    };
    (rc == rusqlite::ffi::SQLITE_OK && !file.is_null()).then_some(file)
}

pub struct Checkpointer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Starts a thread that checkpoints `path` every `every`, or less often
/// while the writer is saturated (rule `checkpoint-pace`, by the load the
/// writer counts in `handoff`), checks `files`, if given, every `every`,
/// and hands the end of a large checkpoint to the writer through
/// `handoff`.
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
    let db_path = path.to_path_buf();
    let thread = std::thread::Builder::new()
        .name("ipnsync-checkpoint".into())
        .spawn(move || {
            let step = Duration::from_millis(50).min(every);
            let mut waited = Duration::ZERO;
            let mut pace = Pace::new(every, handoff.load());
            let mut copied_before = 0;
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(step);
                waited += step;
                if waited < every {
                    continue;
                }
                let elapsed = std::mem::take(&mut waited);
                if let Some(Err(_)) = files.as_deref().map(FileWatch::check) {
                    continue; // logged by the check; nothing to checkpoint into
                }
                if !pace.check(elapsed, handoff.load()) {
                    continue;
                }
                let copied = round(&conn, &handoff);
                if copied != std::mem::replace(&mut copied_before, copied) && copied > 0 {
                    if let Err(e) = drop_cached_history(&conn, &db_path, KEEP_CACHED) {
                        tracing::debug!(error = %e, "page cache advice refused");
                    }
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

#[cfg(test)]
mod tests;
