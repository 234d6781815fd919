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
//! After a round that copied something, the database file's pages up to
//! its last [`KEEP_CACHED`] bytes leave the page cache
//! ([`drop_cached_history`]): see there why.
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

/// The database file's tail that stays in the page cache after a round
/// (≈ 7 000 notifications): the recent orders, events and index pages
/// that the dispatcher, the console and the next notifications of the
/// same orders read back.
pub const KEEP_CACHED: u64 = 16 << 20;

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
    let db_path = path.to_path_buf();
    let thread = std::thread::Builder::new()
        .name("ipnsync-checkpoint".into())
        .spawn(move || {
            let step = Duration::from_millis(50).min(every);
            let mut waited = Duration::ZERO;
            let mut copied_before = 0;
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

    /// Which of `path`'s pages the kernel holds in its page cache
    /// (`mincore` on a read-only mapping, which reads nothing itself).
    fn resident(path: &Path) -> Vec<bool> {
        use std::os::fd::AsRawFd;
        let file = std::fs::File::open(path).unwrap();
        let len = file.metadata().unwrap().len() as usize;
        // SAFETY: maps the file read-only, asks which pages are resident,
        // unmaps it; the mapping is never dereferenced.
        unsafe {
            let page = libc::sysconf(libc::_SC_PAGESIZE) as usize;
            let map = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(map, libc::MAP_FAILED);
            let mut vec = vec![0u8; len.div_ceil(page)];
            assert_eq!(libc::mincore(map, len, vec.as_mut_ptr()), 0);
            libc::munmap(map, len);
            vec.iter().map(|b| b & 1 == 1).collect()
        }
    }

    /// [`pair`] in the target directory: a tmpfs `/tmp` would keep every
    /// page whatever the advice, its pages being the storage.
    fn on_disk() -> (tempfile::TempDir, Connection, Connection) {
        let dir = tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/target")).unwrap();
        let (writer, checkpointer) = pair(&dir);
        (dir, writer, checkpointer)
    }

    /// After a checkpoint the database file's history leaves the page
    /// cache, its last `keep` bytes stay, and every row still reads back
    /// (from disk).
    #[test]
    fn a_round_drops_the_checkpointed_history_from_the_page_cache() {
        let (dir, writer, checkpointer) = on_disk();
        let path = dir.path().join("wal.db");
        write(&writer, 600);
        assert!(
            round(&checkpointer, &Handoff::default()) > 0,
            "frames copied"
        );
        let before = resident(&path);
        let cached = |pages: &[bool]| pages.iter().filter(|r| **r).count();
        assert!(
            cached(&before) > 500,
            "a fresh checkpoint leaves its pages cached"
        );

        let keep_pages = 64;
        let page = before.len() as u64 / (std::fs::metadata(&path).unwrap().len() / 4096);
        assert_eq!(page, 1, "4 KiB pages");
        assert!(drop_cached_history(&checkpointer, &path, keep_pages * 4096).unwrap());
        let after = resident(&path);
        let (history, tail) = after.split_at(after.len() - keep_pages as usize);
        assert_eq!(cached(history), 0, "history dropped");
        assert_eq!(
            cached(tail),
            cached(&before[before.len() - keep_pages as usize..])
        );

        let rows: i64 = checkpointer
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 600);
        // A file smaller than what is kept is left alone.
        assert!(!drop_cached_history(&checkpointer, &path, u64::MAX).unwrap());
    }

    /// Whether some process, this one included, holds a POSIX lock on
    /// the file behind `fd`: an open-file-description lock conflicts with
    /// every POSIX lock, the owner's own too.
    fn posix_locked(fd: std::os::fd::RawFd) -> bool {
        // SAFETY: F_OFD_GETLK fills `lock` only.
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = libc::F_WRLCK as libc::c_short;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        assert_eq!(unsafe { libc::fcntl(fd, libc::F_OFD_GETLK, &mut lock) }, 0);
        lock.l_type != libc::F_UNLCK as libc::c_short
    }

    /// The advice keeps SQLite's locks: it goes through SQLite's own
    /// descriptor, where opening and closing one of ours (the first
    /// version) dropped every lock this process held on the file, and
    /// another process then took the database as unused.
    #[test]
    fn dropping_the_history_keeps_this_processs_locks_on_the_database() {
        let (dir, writer, checkpointer) = on_disk();
        let path = dir.path().join("wal.db");
        write(&writer, 300);
        round(&checkpointer, &Handoff::default());
        let reader = Connection::open(&path).unwrap();
        reader.execute_batch("BEGIN").unwrap();
        let _: i64 = reader
            .query_row("SELECT COUNT(*) FROM t", [], |r| r.get(0))
            .unwrap();
        let (fd, _) = sqlite_descriptor(&checkpointer, &path).expect("SQLite's descriptor");
        assert!(posix_locked(fd), "a reader holds its shared lock");

        assert!(drop_cached_history(&checkpointer, &path, 0).unwrap());
        assert!(posix_locked(fd), "the locks survive the advice");

        // What the first version did, for contrast: the locks are gone.
        drop(std::fs::File::open(&path).unwrap());
        assert!(!posix_locked(fd), "closing any descriptor drops them");
        reader.execute_batch("COMMIT").unwrap();
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
