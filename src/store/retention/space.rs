//! What retention gives back and measures: freed pages (SQLite's
//! incremental vacuum), the database's footprint for the metrics, and which
//! daemon runs the passes when several share a PostgreSQL database.

use super::VACUUM_PAGES;
use crate::store::db::Connection;
use crate::store::StoreError;

/// Returns up to [`VACUUM_PAGES`] free pages to the file system when the
/// database uses incremental auto-vacuum; does nothing otherwise.
pub fn vacuum_step(conn: &Connection) -> Result<(), StoreError> {
    if conn.sqlite().is_none() {
        return Ok(()); // PostgreSQL's autovacuum makes freed space reusable
    }
    let mode: i64 = conn.query_row("PRAGMA auto_vacuum", [], |r| r.get(0))?;
    if mode == 2 {
        // Stepped to the end: each step of this pragma frees one page, so
        // a single step (`query_row`, `execute_batch`) frees only one.
        let mut stmt =
            conn.prepare_cached(&format!("PRAGMA incremental_vacuum({VACUUM_PAGES})"))?;
        let mut rows = stmt.query([])?;
        while rows.next()?.is_some() {}
    }
    Ok(())
}

/// Rows and bytes, for the metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Footprint {
    pub events: i64,
    pub deliveries: i64,
    pub bodies_kept: i64,
    pub outbox: i64,
    /// Pages in use × page size.
    pub used_bytes: i64,
    /// The file, free pages included.
    pub file_bytes: i64,
}

/// Counts rows (index scans: done once a run, in the background, never on
/// the intake path) and the database's size.
pub fn footprint(conn: &Connection) -> Result<Footprint, StoreError> {
    let count =
        |sql: &str| -> Result<i64, StoreError> { Ok(conn.query_row(sql, [], |r| r.get(0))?) };
    let (used_bytes, file_bytes) = if conn.sqlite().is_some() {
        let page_size = count("PRAGMA page_size")?;
        let pages = count("PRAGMA page_count")?;
        let free = count("PRAGMA freelist_count")?;
        ((pages - free) * page_size, pages * page_size)
    } else {
        let size = count("SELECT CAST(pg_database_size(current_database()) AS BIGINT)")?;
        (size, size)
    };
    Ok(Footprint {
        events: count("SELECT COUNT(*) FROM events")?,
        deliveries: count("SELECT COUNT(*) FROM deliveries")?,
        bodies_kept: count(
            "SELECT COUNT(*) FROM deliveries WHERE id > COALESCE((SELECT last_id FROM retention_cursors WHERE phase = 'bodies'), 0)",
        )?,
        outbox: count("SELECT COUNT(*) FROM outbox")?,
        used_bytes,
        file_bytes,
    })
}

/// PostgreSQL: whether this daemon holds the retention lock (taken once,
/// kept for the session: the daemon that got it runs every pass, and
/// another takes over when its session ends). SQLite: always.
pub(super) fn pass_is_ours(conn: &Connection) -> Result<bool, StoreError> {
    if conn.sqlite().is_some() {
        return Ok(true);
    }
    Ok(conn.query_row(
        "SELECT pg_try_advisory_lock(7305733113920190417)",
        [],
        |r| r.get(0),
    )?)
}
