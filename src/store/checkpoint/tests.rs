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

/// Rule `checkpoint-pace`, row by row: never before `every`; every
/// `every` unless the writer has been saturated for `SATURATED_STREAK`
/// checks in a row; then only after `SATURATED_EVERY` or
/// `SATURATED_COMMITS` commits.
#[test]
fn rounds_follow_the_writers_load() {
    let every = EVERY;
    let load = |commits, notifications| Load {
        commits,
        notifications,
    };
    let busy = load(100, 100 * SATURATED_BATCH);
    let streak = SATURATED_STREAK;
    let rows = [
        // (since the last round, load meanwhile, saturated checks in a row, due)
        (every / 2, load(0, 0), 0, false),
        (every / 2, busy, streak, false),
        (every, load(0, 0), 0, true),
        (every, load(50, 50), 0, true),
        (every, busy, streak - 1, true),
        (every, busy, streak, false),
        (every, busy, streak + 10, false),
        (SATURATED_EVERY - every, busy, streak, false),
        (SATURATED_EVERY, busy, streak, true),
        (
            every,
            load(SATURATED_COMMITS - 1, (SATURATED_COMMITS - 1) * 30),
            streak,
            false,
        ),
        (
            every,
            load(SATURATED_COMMITS, SATURATED_COMMITS * 30),
            streak,
            true,
        ),
    ];
    for (since, load, streak, expected) in rows {
        assert_eq!(
            due(since, every, load, streak),
            expected,
            "{since:?} after the last round, {load:?}, {streak} saturated checks"
        );
    }
    // A checkpointer slower than SATURATED_EVERY keeps its own pace.
    let slow = SATURATED_EVERY * 2;
    assert!(!due(SATURATED_EVERY, slow, busy, streak));
    assert!(due(slow, slow, busy, streak));
}

/// Saturated: commits carrying `SATURATED_BATCH` notifications or more on
/// average; an idle writer is not.
#[test]
fn a_writer_is_saturated_by_its_commits_size() {
    let load = |commits, notifications| Load {
        commits,
        notifications,
    };
    assert!(!saturated(load(0, 0)));
    assert!(!saturated(load(10, 10)));
    assert!(!saturated(load(10, 10 * SATURATED_BATCH - 1)));
    assert!(saturated(load(10, 10 * SATURATED_BATCH)));
    assert!(saturated(load(1, 64)));
}

/// The load between two readings never underflows, whatever order they
/// are taken in.
#[test]
fn the_load_between_two_readings_is_their_difference() {
    let handoff = Handoff::default();
    let start = handoff.load();
    handoff.committed(3);
    handoff.committed(5);
    let now = handoff.load();
    assert_eq!(
        now.since(start),
        Load {
            commits: 2,
            notifications: 8
        }
    );
    assert_eq!(start.since(now), Load::default());
}

/// The database file's length: a round copies the WAL's pages into it.
fn database_len(dir: &tempfile::TempDir) -> u64 {
    std::fs::metadata(dir.path().join("wal.db")).unwrap().len()
}

/// Rule `checkpoint-pace` over a run of checks, 100 ms apart: which of
/// them run a round, for a writer whose commits (`commits` per check,
/// `batch` notifications each) change as given.
fn rounds(phases: &[(usize, u64, u64)]) -> Vec<bool> {
    let mut load = Load::default();
    let mut pace = Pace::new(EVERY, load);
    let mut ran = Vec::new();
    for &(checks, commits, batch) in phases {
        for _ in 0..checks {
            load.commits += commits;
            load.notifications += commits * batch;
            ran.push(pace.check(EVERY, load));
        }
    }
    ran
}

/// Which checks of [`rounds`] ran one.
fn ran_at(ran: &[bool]) -> Vec<usize> {
    ran.iter()
        .enumerate()
        .filter(|(_, r)| **r)
        .map(|(i, _)| i)
        .collect()
}

/// Idle or lightly loaded, the writer gets a round at every check.
#[test]
fn rounds_run_at_every_check_below_saturation() {
    assert!(rounds(&[(20, 0, 0)]).iter().all(|r| *r));
    assert!(rounds(&[(20, 50, 1)]).iter().all(|r| *r));
    assert!(rounds(&[(20, 50, SATURATED_BATCH - 1)]).iter().all(|r| *r));
}

/// Saturated check after check: the first rounds while the streak
/// builds, then one per `SATURATED_EVERY`; with many commits, one per
/// `SATURATED_COMMITS`.
#[test]
fn a_saturated_writer_gets_rounds_at_the_slower_pace() {
    let per_second = (SATURATED_EVERY.as_millis() / EVERY.as_millis()) as usize;
    // 10 commits of 30 per check: the time bound.
    let ran = rounds(&[(40, 10, 30)]);
    let first = SATURATED_STREAK as usize - 1;
    let mut expected: Vec<usize> = (0..first).collect();
    expected.extend((first - 1 + per_second..40).step_by(per_second));
    assert_eq!(ran_at(&ran), expected);
    // 250 commits per check: the commit bound, every second check.
    let ran = rounds(&[(SATURATED_STREAK as usize, 10, 30), (10, 250, 30)]);
    assert_eq!(ran_at(&ran), [0, 1, 4, 6, 8, 10, 12]);
}

/// A lone saturated check (a stall of the disk: the commit after it
/// carries what piled up) does not slow the pace: the next rounds come at
/// the usual pace. The first version of the rule judged the load since
/// the last round: it held the rounds back after such a check, until the
/// mean since the last round fell below `SATURATED_BATCH` again, so that
/// the next round copied more and stalled the writer longer.
#[test]
fn a_lone_saturated_check_keeps_the_usual_pace() {
    let ran = rounds(&[(5, 50, 1), (1, 2, 60), (10, 50, 1)]);
    assert!(ran.iter().all(|r| *r), "{ran:?}");
    // Two in a row are not a streak either; three are.
    let ran = rounds(&[(5, 50, 1), (2, 10, 60), (3, 50, 1)]);
    assert!(ran.iter().all(|r| *r), "{ran:?}");
    let ran = rounds(&[(5, 50, 1), (3, 10, 60), (1, 10, 60)]);
    assert_eq!(ran_at(&ran), [0, 1, 2, 3, 4, 5, 6]);
}

/// The running checkpointer copies at its usual pace for a lightly
/// loaded writer (the pace's arithmetic is the tests above).
#[test]
fn a_lightly_loaded_writer_is_checkpointed_at_the_usual_pace() {
    let every = Duration::from_millis(20);
    let dir = tempfile::tempdir().unwrap();
    let (writer, checkpointer) = pair(&dir);
    drop(checkpointer);
    let handoff = Arc::new(Handoff::default());
    let running = spawn(&dir.path().join("wal.db"), every, None, handoff.clone()).unwrap();
    let started = std::time::Instant::now();
    while database_len(&dir) == 0 {
        assert!(started.elapsed() < Duration::from_secs(5), "a first round");
        std::thread::sleep(every);
    }
    let copied = database_len(&dir);
    write(&writer, 50);
    handoff.committed(1);
    let written = std::time::Instant::now();
    while database_len(&dir) == copied {
        handoff.committed(1);
        assert!(
            written.elapsed() < Duration::from_secs(5),
            "a round at the usual pace"
        );
        std::thread::sleep(every);
    }
    running.stop();
}
