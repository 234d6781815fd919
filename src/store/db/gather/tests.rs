use std::cell::Cell;

use rusqlite::{Connection, OpenFlags};

thread_local! {
    /// Writes this thread's gathered WAL files made to the unix VFS.
    pub(super) static INNER_WRITES: Cell<u64> = const { Cell::new(0) };
}

fn inner_writes() -> u64 {
    INNER_WRITES.with(Cell::get)
}

/// A connection as the daemon's writer opens it: this VFS, WAL, FULL.
fn writer(path: &std::path::Path) -> Connection {
    let conn =
        Connection::open_with_flags_and_vfs(path, OpenFlags::default(), super::name().unwrap())
            .unwrap();
    conn.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA wal_autocheckpoint=0;",
    )
    .unwrap();
    conn
}

/// A connection of another part of the daemon: the default VFS.
fn other(path: &std::path::Path) -> Connection {
    Connection::open(path).unwrap()
}

fn row(i: i64) -> String {
    format!("{i:08}-{}", "x".repeat(300 + (i % 7) as usize * 50))
}

/// Inserts rows `ids` (each `row(id)`) on `conn`, or on the transaction
/// it derefs from.
fn insert(conn: &Connection, ids: std::ops::Range<i64>) {
    for i in ids {
        conn.execute("INSERT INTO t (id, v) VALUES (?1, ?2)", (i, row(i)))
            .unwrap();
    }
}

fn wal_len(path: &std::path::Path) -> u64 {
    std::fs::metadata(path.with_extension("db-wal"))
        .unwrap()
        .len()
}

#[test]
fn a_commit_reaches_the_wal_in_one_write() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let conn = writer(&path);
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX t_v ON t (v);",
    )
    .unwrap();
    let (len, writes) = (wal_len(&path), inner_writes());
    let tx = conn.unchecked_transaction().unwrap();
    insert(&tx, 0..60);
    tx.commit().unwrap();
    // Through the unix VFS alone, each of these frames is two writes.
    let frames = (wal_len(&path) - len) / (4096 + 24);
    assert!((10..=29).contains(&frames), "{frames} frames");
    assert_eq!(inner_writes() - writes, 1, "one write for the whole commit");
}

#[test]
fn a_commit_larger_than_what_is_gathered_is_written_in_parts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let conn = writer(&path);
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    let (len, writes) = (wal_len(&path), inner_writes());
    let tx = conn.unchecked_transaction().unwrap();
    insert(&tx, 0..1_000);
    tx.commit().unwrap();
    let bytes = wal_len(&path) - len;
    let parts = inner_writes() - writes;
    assert!(bytes > 4 * super::MAX_GATHERED as u64, "{bytes} bytes");
    assert_eq!(
        parts,
        bytes.div_ceil(super::MAX_GATHERED as u64 / 4120 * 4120)
    );
    let n: i64 = other(&path)
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1_000);
}

#[test]
fn every_commit_is_in_the_file_when_another_connection_reads_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let conn = writer(&path);
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    let reader = other(&path);
    for batch in 0..30_i64 {
        let tx = conn.unchecked_transaction().unwrap();
        insert(&tx, batch * 20..batch * 20 + 20);
        tx.commit().unwrap();
        // The reader has its own file descriptor: it sees only what reached
        // the file, and the commit's frames must all be there.
        let (n, sum): (i64, i64) = reader
            .query_row("SELECT count(*), sum(length(v)) FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        let expected: i64 = (0..batch * 20 + 20).map(|i| row(i).len() as i64).sum();
        assert_eq!((n, sum), (batch * 20 + 20, expected));
    }
    // The checkpoint copies the WAL into the database: it reads the frames
    // back from the file.
    other(&path)
        .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        .unwrap();
    let check: String = other(&path)
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn a_transaction_larger_than_the_cache_spills_reads_back_and_rolls_back() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let conn = writer(&path);
    // A cache of 8 pages: the transactions below spill frames into the WAL
    // before their commit, and read them back from it.
    conn.execute_batch("PRAGMA cache_size=8; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT);")
        .unwrap();
    let fill = |range: std::ops::Range<i64>| {
        let tx = conn.unchecked_transaction().unwrap();
        insert(&tx, range.clone());
        // Read back what this transaction wrote, spilled pages included.
        let n: i64 = tx
            .query_row(
                "SELECT count(*) FROM t WHERE id >= ?1",
                [range.start],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, range.end - range.start);
        tx
    };
    fill(0..2_000).commit().unwrap();
    fill(2_000..4_000).rollback().unwrap();
    fill(4_000..5_000).commit().unwrap();
    let reader = other(&path);
    let ids: Vec<i64> = reader
        .prepare("SELECT id FROM t ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(ids, (0..2_000).chain(4_000..5_000).collect::<Vec<_>>());
    let check: String = reader
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
}

#[test]
fn the_database_file_itself_is_the_unix_vfs_s() {
    // Only WAL files are wrapped: the database file answers the unix VFS's
    // file controls as before (the checkpointer finds its descriptor so).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let conn = writer(&path);
    conn.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        .unwrap();
    let file = crate::store::checkpoint::main_file_object(&conn).unwrap();
    // SAFETY: SQLite returned the main database's live file object.
    let methods = unsafe { (*file).pMethods };
    assert!(
        !std::ptr::eq(methods, super::methods()),
        "the database file is not wrapped"
    );
    assert!(crate::store::checkpoint::sqlite_descriptor(&conn, &path).is_some());
}

#[derive(Debug, Clone)]
enum Step {
    /// A transaction inserting rows of these sizes; committed or rolled back.
    Transaction { sizes: Vec<usize>, commit: bool },
    /// Another connection checkpoints (0 passive, 1 full, 2 restart, 3
    /// truncate), as the daemon's checkpointer does.
    Checkpoint(u8),
}

fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    prop_oneof![
        4 => (proptest::collection::vec(1usize..6_000, 1..40), any::<bool>())
            .prop_map(|(sizes, commit)| Step::Transaction { sizes, commit }),
        1 => (0u8..4).prop_map(Step::Checkpoint),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Whatever mix of small and large, committed and rolled-back
    /// transactions (a 16-page cache makes the large ones spill) and
    /// checkpoints from another connection: after every step, a connection
    /// on the default VFS reads exactly the committed rows, and the file
    /// passes `integrity_check` at the end.
    #[test]
    fn readers_always_see_exactly_the_committed_rows(
        steps in proptest::collection::vec(step(), 1..30),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("g.db");
        let conn = writer(&path);
        conn.execute_batch("PRAGMA cache_size=16; CREATE TABLE t (id INTEGER PRIMARY KEY, v BLOB)")
            .unwrap();
        let reader = other(&path);
        let checkpointer = other(&path);
        let mut committed: Vec<(i64, usize)> = Vec::new();
        let mut next = 0_i64;
        for step in steps {
            match step {
                Step::Transaction { sizes, commit } => {
                    let tx = conn.unchecked_transaction().unwrap();
                    let mut added = Vec::new();
                    for size in sizes {
                        let value = vec![(next % 251) as u8; size];
                        tx.execute("INSERT INTO t (id, v) VALUES (?1, ?2)", (next, value)).unwrap();
                        added.push((next, size));
                        next += 1;
                    }
                    if commit {
                        tx.commit().unwrap();
                        committed.extend(added);
                    } else {
                        tx.rollback().unwrap();
                    }
                }
                Step::Checkpoint(mode) => {
                    let mode = ["PASSIVE", "FULL", "RESTART", "TRUNCATE"][mode as usize];
                    // Busy is an answer, not an error: the writer is idle
                    // here, but a checkpoint may still find readers.
                    let _ = checkpointer.execute_batch(&format!("PRAGMA wal_checkpoint({mode})"));
                }
            }
            let seen: Vec<(i64, usize)> = reader
                .prepare("SELECT id, length(v), v FROM t ORDER BY id")
                .unwrap()
                .query_map([], |r| {
                    let id: i64 = r.get(0)?;
                    let v: Vec<u8> = r.get(2)?;
                    assert!(v.iter().all(|&b| b == (id % 251) as u8), "row {id} damaged");
                    Ok((id, r.get::<_, i64>(1)? as usize))
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            proptest::prop_assert_eq!(&seen, &committed);
        }
        drop(conn);
        let check: String = other(&path).query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
        proptest::prop_assert_eq!(check, "ok");
    }
}
