use proptest::prelude::*;

use super::super::{params, Connection, Error, OptionalExtension, Statement};

const INSERT: &str = "INSERT INTO t (id, txt, raw, num, real) VALUES (?1, ?2, ?3, ?4, ?5)";
const READ: &str = "SELECT txt, raw, num, real FROM t WHERE id = ?1";

fn table(conn: &Connection) {
    conn.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, txt TEXT, raw BLOB, num INTEGER, real REAL)",
    )
    .unwrap();
}

fn memory() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    table(&conn);
    conn
}

fn kept<'c>(conn: &'c Connection, slot: usize, sql: &str) -> Statement<'c> {
    let stmt = conn.prepare_kept(slot, sql).unwrap();
    assert!(
        matches!(stmt.0, super::super::StatementInner::Kept(..)),
        "slot {slot} should be kept"
    );
    stmt
}

type Row = (Option<String>, Option<Vec<u8>>, Option<i64>, Option<f64>);

fn rows(conn: &Connection) -> i64 {
    conn.query_row("SELECT COUNT(*) FROM t", params![], |r| r.get(0))
        .unwrap()
}

fn read_cached(conn: &Connection, id: i64) -> Row {
    conn.query_row(READ, params![id], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })
    .unwrap()
}

/// The bindings SQLite holds for the kept statement of `slot`, as it
/// expands them into its text.
fn expanded(conn: &Connection, slot: usize) -> String {
    let Connection::Sqlite(lite) = conn else {
        unreachable!()
    };
    let kept = lite.kept.slots[slot].get().expect("prepared");
    // SAFETY: a live statement; the string is SQLite's, freed below.
    unsafe {
        let text = rusqlite::ffi::sqlite3_expanded_sql(kept.stmt.as_ptr());
        let out = std::ffi::CStr::from_ptr(text)
            .to_string_lossy()
            .into_owned();
        rusqlite::ffi::sqlite3_free(text.cast());
        out
    }
}

#[test]
fn values_bound_in_place_are_stored_and_read_back() {
    let conn = memory();
    {
        // Values that die right after the call: SQLite must have copied
        // them into the row while the statement ran.
        let text = String::from("Outcome: accepted (rule h).");
        let bytes = vec![0u8, 1, 2, 255];
        kept(&conn, 0, INSERT)
            .execute(params![1, text, bytes, 42, 2.5])
            .unwrap();
    }
    kept(&conn, 0, INSERT)
        .execute(params![
            2,
            None::<String>,
            None::<Vec<u8>>,
            None::<i64>,
            None::<f64>
        ])
        .unwrap();
    assert_eq!(
        read_cached(&conn, 1),
        (
            Some("Outcome: accepted (rule h).".into()),
            Some(vec![0, 1, 2, 255]),
            Some(42),
            Some(2.5)
        )
    );
    assert_eq!(read_cached(&conn, 2), (None, None, None, None));

    let row = kept(&conn, 1, READ)
        .query_row(params![1], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap();
    assert_eq!(row, read_cached(&conn, 1));
}

#[test]
fn empty_text_and_bytes_stay_empty_not_null() {
    let conn = memory();
    kept(&conn, 0, INSERT)
        .execute(params![1, "", Vec::<u8>::new(), 0, 0.0])
        .unwrap();
    let (kind_txt, kind_raw): (String, String) = conn
        .query_row(
            "SELECT typeof(txt), typeof(raw) FROM t WHERE id = 1",
            params![],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((kind_txt.as_str(), kind_raw.as_str()), ("text", "blob"));
    let row = kept(&conn, 1, READ)
        .query_row(params![1], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?))
        })
        .unwrap();
    assert_eq!(row, (String::new(), Vec::new()));
}

#[test]
fn no_binding_outlives_the_call() {
    // Rule `bound-only-while-running`: after every call, successful or
    // not, the statement holds no pointer into the caller's memory.
    let conn = memory();
    kept(&conn, 0, INSERT)
        .execute(params![1, "kept text", vec![7u8], 3, 1.5])
        .unwrap();
    assert_eq!(
        expanded(&conn, 0),
        "INSERT INTO t (id, txt, raw, num, real) VALUES (NULL, NULL, NULL, NULL, NULL)"
    );
    // A failing run (the same key again) clears them too.
    let err = kept(&conn, 0, INSERT)
        .execute(params![1, "again", vec![8u8], 4, 2.5])
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
    assert!(!expanded(&conn, 0).contains("again"));
    kept(&conn, 1, READ)
        .query_row(params![1], |_| Ok(()))
        .unwrap();
    assert_eq!(
        expanded(&conn, 1),
        "SELECT txt, raw, num, real FROM t WHERE id = NULL"
    );
}

#[test]
fn a_duplicate_key_is_a_unique_violation_and_the_statement_goes_on() {
    // `apply::upsert_order` falls back to the upsert on exactly this error.
    let conn = memory();
    let mut stmt = kept(&conn, 0, INSERT);
    stmt.execute(params![1, "a", None::<Vec<u8>>, 1, None::<f64>])
        .unwrap();
    let err = stmt
        .execute(params![1, "b", None::<Vec<u8>>, 2, None::<f64>])
        .unwrap_err();
    assert!(err.is_unique_violation(), "{err}");
    assert!(
        err.to_string().contains("UNIQUE constraint failed"),
        "{err}"
    );
    stmt.execute(params![2, "c", None::<Vec<u8>>, 3, None::<f64>])
        .unwrap();
    drop(stmt);
    assert_eq!(rows(&conn), 2);
    assert_eq!(read_cached(&conn, 1).0.as_deref(), Some("a"));
}

#[test]
fn inserted_id_and_changes_come_from_the_kept_statement() {
    let conn = memory();
    let insert = "INSERT INTO t (txt) VALUES (?1) ON CONFLICT DO NOTHING";
    let id = kept(&conn, 0, insert).inserted_id(params!["x"]).unwrap();
    assert_eq!(id, Some(1));
    let updated = kept(&conn, 1, "UPDATE t SET num = ?2 WHERE txt = ?1")
        .execute(params!["x", 9])
        .unwrap();
    assert_eq!(updated, 1);
    let none = kept(&conn, 1, "UPDATE t SET num = ?2 WHERE txt = ?1")
        .execute(params!["nobody", 9])
        .unwrap();
    assert_eq!(none, 0);
}

#[test]
fn no_row_is_no_rows_and_a_wrong_parameter_count_runs_nothing() {
    let conn = memory();
    let missing = kept(&conn, 1, READ)
        .query_row(params![5], |r| r.get::<_, Option<String>>(0))
        .optional()
        .unwrap();
    assert_eq!(missing, None);
    let err = kept(&conn, 0, INSERT)
        .execute(params![1, "short"])
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Sqlite(rusqlite::Error::InvalidParameterCount(2, 5))
        ),
        "{err}"
    );
    assert_eq!(rows(&conn), 0);
    // Kept statements read one row; a query over many goes elsewhere.
    assert!(kept(&conn, 1, READ).query(params![1]).is_err());
}

#[test]
fn a_slot_already_out_is_prepared_through_the_cache() {
    let conn = memory();
    let mut first = kept(&conn, 0, INSERT);
    let mut second = conn.prepare_kept(0, INSERT).unwrap();
    assert!(matches!(second.0, super::super::StatementInner::Sqlite(..)));
    first
        .execute(params![1, "first", None::<Vec<u8>>, 1, None::<f64>])
        .unwrap();
    second
        .execute(params![2, "second", None::<Vec<u8>>, 2, None::<f64>])
        .unwrap();
    drop((first, second));
    // Given back: the next caller gets the kept one again.
    kept(&conn, 0, INSERT)
        .execute(params![3, "third", None::<Vec<u8>>, 3, None::<f64>])
        .unwrap();
    assert_eq!(read_cached(&conn, 2).0.as_deref(), Some("second"));
    assert_eq!(read_cached(&conn, 3).0.as_deref(), Some("third"));
}

/// A slot holds one text: a caller giving it another is a bug, which a
/// debug build reports (a release build prepares the text as usual).
#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "holds another statement")]
fn a_slot_given_another_text_is_refused() {
    let conn = memory();
    kept(&conn, 0, INSERT);
    let _ = conn.prepare_kept(0, READ);
}

#[test]
fn a_panic_while_reading_leaves_the_statement_usable() {
    let conn = memory();
    kept(&conn, 0, INSERT)
        .execute(params![1, "x", None::<Vec<u8>>, 1, None::<f64>])
        .unwrap();
    let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        kept(&conn, 1, READ).query_row(params![1], |_| -> super::super::Result<()> {
            panic!("reader failed")
        })
    }));
    assert!(caught.is_err());
    assert_eq!(
        expanded(&conn, 1),
        "SELECT txt, raw, num, real FROM t WHERE id = NULL"
    );
    let txt: String = kept(&conn, 1, READ)
        .query_row(params![1], |r| r.get(0))
        .unwrap();
    assert_eq!(txt, "x");
}

#[test]
fn a_schema_change_under_a_kept_statement_is_prepared_again() {
    let conn = memory();
    kept(&conn, 0, INSERT)
        .execute(params![1, "x", None::<Vec<u8>>, 1, None::<f64>])
        .unwrap();
    conn.execute_batch(
        "ALTER TABLE t ADD COLUMN extra TEXT DEFAULT 'd'; CREATE INDEX t_txt ON t (txt)",
    )
    .unwrap();
    kept(&conn, 0, INSERT)
        .execute(params![2, "y", None::<Vec<u8>>, 2, None::<f64>])
        .unwrap();
    let extra: String = conn
        .query_row("SELECT extra FROM t WHERE id = 2", params![], |r| r.get(0))
        .unwrap();
    assert_eq!(extra, "d");
}

#[test]
fn kept_statements_are_finalized_before_the_connection_closes() {
    // `sqlite3_close` refuses a connection with live statements and
    // `rusqlite` ignores the refusal: the connection would stay open, and
    // its WAL would stay behind. Closed properly, the last connection
    // checkpoints and removes the WAL.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kept.db");
    let conn = Connection::open(&path).unwrap();
    conn.execute_batch("PRAGMA journal_mode=WAL").unwrap();
    table(&conn);
    kept(&conn, 0, INSERT)
        .execute(params![1, "x", None::<Vec<u8>>, 1, None::<f64>])
        .unwrap();
    kept(&conn, 1, READ)
        .query_row(params![1], |_| Ok(()))
        .unwrap();
    let wal = path.with_file_name("kept.db-wal");
    assert!(wal.exists());
    drop(conn);
    assert!(!wal.exists(), "the connection did not close");
}

proptest! {
    /// Whatever the values, a kept statement stores and reads exactly what
    /// the cached (copying) path does.
    #[test]
    fn kept_and_cached_statements_agree(
        txt in proptest::option::of(any::<String>()),
        raw in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..300)),
        num in proptest::option::of(any::<i64>()),
        real in proptest::option::of(-1e300f64..1e300),
    ) {
        let conn = memory();
        kept(&conn, 0, INSERT).execute(params![1, txt, raw, num, real]).unwrap();
        conn.execute(INSERT, params![2, txt, raw, num, real]).unwrap();
        let through_kept: Row = kept(&conn, 1, READ)
            .query_row(params![1], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap();
        prop_assert_eq!(&through_kept, &read_cached(&conn, 2));
        prop_assert_eq!(through_kept, (txt, raw, num, real));
    }
}
