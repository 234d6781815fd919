//! Schema migrations, embedded in the binary and applied in order at open.
//! SQLite: `PRAGMA user_version` records how many have run. Never edit a
//! released migration: append a new one.
//!
//! PostgreSQL (issue 16) starts at the schema these migrations build
//! (`schema_pg.sql`: the same tables, columns, constraints and index
//! names, in PostgreSQL's types), recorded in `schema_version`. A
//! migration after [`PG_BASE`] is appended here *and* to [`PG_MIGRATIONS`]
//! in PostgreSQL's dialect, so that both engines have the same meaning at
//! every version.

use rusqlite::Connection;

use super::db;
use super::StoreError;

const MIGRATIONS: &[&str] = &[
    // 1: notifications (events), every delivery of them, order state, outbox.
    r#"
CREATE TABLE events (
    id             INTEGER PRIMARY KEY,
    source         TEXT    NOT NULL,
    event_key      TEXT    NOT NULL,
    provider       TEXT    NOT NULL,
    shop           TEXT    NOT NULL,   -- '' when the source has no shop
    order_ref      TEXT    NOT NULL,
    transaction_id TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    origin         TEXT    NOT NULL,   -- vads_url_check_src / kr-src
    notification   TEXT    NOT NULL,   -- JSON of domain::Notification
    assessed       TEXT    NOT NULL,   -- outcome of the fields alone
    verdict        TEXT    NOT NULL CHECK (verdict IN ('applied', 'ignored')),
    outcome        TEXT,               -- the order's new outcome when applied
    reason         TEXT,               -- why ignored, or a note on an unusual move
    comment        TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    replayed_at    INTEGER,            -- set when an operator re-decided it
    UNIQUE (source, event_key)
);
CREATE INDEX events_by_order ON events (shop, order_ref, id);

CREATE TABLE deliveries (
    id           INTEGER PRIMARY KEY,
    event_id     INTEGER NOT NULL REFERENCES events (id),
    received_at  INTEGER NOT NULL,
    peer         TEXT    NOT NULL,
    duplicate    INTEGER NOT NULL,
    headers      TEXT    NOT NULL,     -- JSON object of the headers that matter
    body         BLOB                  -- verbatim; NULL once pruned
);
CREATE INDEX deliveries_by_event ON deliveries (event_id);

CREATE TABLE orders (
    shop           TEXT    NOT NULL,
    order_ref      TEXT    NOT NULL,
    outcome        TEXT    NOT NULL,
    transaction_id TEXT    NOT NULL,
    event_id       INTEGER NOT NULL REFERENCES events (id),
    updated_at     INTEGER NOT NULL,
    PRIMARY KEY (shop, order_ref)
) WITHOUT ROWID;

CREATE TABLE outbox (
    id               INTEGER PRIMARY KEY,
    shop             TEXT    NOT NULL,
    order_ref        TEXT    NOT NULL,
    event_id         INTEGER NOT NULL REFERENCES events (id),
    previous_outcome TEXT,
    outcome          TEXT    NOT NULL,
    comment          TEXT    NOT NULL,
    state            TEXT    NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts         INTEGER NOT NULL DEFAULT 0,
    schedule_base    INTEGER NOT NULL DEFAULT 0,  -- attempts when an operator last retried it
    next_attempt_at  INTEGER NOT NULL,
    last_error       TEXT,
    created_at       INTEGER NOT NULL,
    delivered_at     INTEGER
);
CREATE INDEX outbox_due ON outbox (state, next_attempt_at);
CREATE INDEX outbox_by_order ON outbox (shop, order_ref, id);

CREATE TABLE push_attempts (
    id         INTEGER PRIMARY KEY,
    outbox_id  INTEGER NOT NULL REFERENCES outbox (id),
    at         INTEGER NOT NULL,
    result     TEXT    NOT NULL CHECK (result IN ('delivered', 'retry', 'dead')),
    detail     TEXT
);
CREATE INDEX push_attempts_by_outbox ON push_attempts (outbox_id);

-- Written by readiness probes: proves the database takes writes.
CREATE TABLE health (
    id         INTEGER PRIMARY KEY CHECK (id = 1),
    checked_at INTEGER NOT NULL
);
"#,
    // 2: operator review actions (validate / deny through the gateway's API).
    r#"
CREATE TABLE review_actions (
    id             INTEGER PRIMARY KEY,
    shop           TEXT    NOT NULL,
    order_ref      TEXT    NOT NULL,
    action         TEXT    NOT NULL CHECK (action IN ('validate', 'deny')),
    actor          TEXT    NOT NULL,   -- who asked (CLI user, API caller)
    comment        TEXT,               -- the operator's words, as given
    gateway        TEXT    NOT NULL,   -- 'lyra', 'cybersource', or 'none' (shop only)
    gateway_status TEXT,               -- what the gateway answered (detailedStatus…)
    error          TEXT,               -- why it failed; NULL on success
    outcome        TEXT,               -- the order's new outcome when it moved
    outbox_id      INTEGER REFERENCES outbox (id),
    created_at     INTEGER NOT NULL
);
CREATE INDEX review_actions_by_order ON review_actions (shop, order_ref, id);
"#,
    // 3: review actions claim their order before calling the gateway
    // (`in_progress` until `expires_at`), and Cybersource notifications keep
    // the Decision Manager request id apart from `transaction_id`.
    r#"
ALTER TABLE review_actions ADD COLUMN state TEXT NOT NULL DEFAULT 'done'
    CHECK (state IN ('in_progress', 'done', 'failed'));
ALTER TABLE review_actions ADD COLUMN expires_at INTEGER;   -- an in_progress claim stops blocking then
ALTER TABLE review_actions ADD COLUMN finished_at INTEGER;  -- when the gateway's answer was recorded
UPDATE review_actions SET state = 'failed' WHERE error IS NOT NULL;
UPDATE review_actions SET finished_at = created_at;

-- Before migration 3 the request id was only in transaction_number (both
-- the webhook and the CMOS parsers set it to the request id, or '').
UPDATE events
   SET notification = json_set(notification, '$.facts.request_id',
                               json_extract(notification, '$.transaction_number'))
 WHERE provider = 'cybersource'
   AND json_extract(notification, '$.facts.request_id') IS NULL;
"#,
    // 4: operator actions other than review actions (the console's retries of
    // dead updates), with who took them: the order page's audit trail.
    r#"
CREATE TABLE operator_actions (
    id         INTEGER PRIMARY KEY,
    shop       TEXT    NOT NULL,
    order_ref  TEXT    NOT NULL,
    action     TEXT    NOT NULL,   -- 'retry'
    actor      TEXT    NOT NULL,   -- the signed-in operator
    outbox_id  INTEGER REFERENCES outbox (id),
    created_at INTEGER NOT NULL
);
CREATE INDEX operator_actions_by_order ON operator_actions (shop, order_ref, id);
"#,
    // 5: the mode (TEST / PRODUCTION) of the notifications that moved an
    // order: a TEST notification never changes a PRODUCTION order. NULL
    // for orders moved only by notifications without a mode (Cybersource,
    // MPGS) and for orders from before this migration.
    r#"
ALTER TABLE orders ADD COLUMN mode TEXT CHECK (mode IN ('TEST', 'PRODUCTION'));
"#,
    // 6: shop pushes a merchant can trust (issue 12): an outbox row may carry
    // a comment only (an analyst's note: no status change, nobody
    // notified), and a delivered row may need a person to finish the job
    // (`needs_operator`: the reason, shown by `ipnsync outbox`).
    r#"
ALTER TABLE outbox ADD COLUMN comment_only INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN needs_operator TEXT;
"#,
    // 7: request bodies stored once: a CMOS document carries one notification
    // per <Update>, and each delivery used to keep its own copy of the whole
    // document (200 updates, 200 copies). Such deliveries now refer to one
    // `bodies` row by `body_id` (their `body` stays NULL); the row is keyed
    // by SHA-256, so a resent document adds no copy either. Single-
    // notification requests keep their body inline, as before.
    r#"
CREATE TABLE bodies (
    id      INTEGER PRIMARY KEY,
    sha256  BLOB    NOT NULL UNIQUE,
    body    BLOB    NOT NULL
);
ALTER TABLE deliveries ADD COLUMN body_id INTEGER REFERENCES bodies (id);
CREATE INDEX deliveries_by_body ON deliveries (body_id) WHERE body_id IS NOT NULL;
"#,
    // 8: compact event keys (issues 18/20). The dedupe key was the 64-char
    // hex SHA-256 of the event as TEXT, in the row and again in the UNIQUE
    // index: 2 × 64 bytes per notification, and long random keys for every
    // index compare. It is now the first 16 bytes of that digest as a BLOB
    // (`writer::compact_event_key`; 128 bits, and only signed
    // notifications reach it). SQLite cannot change a column's type or a
    // UNIQUE constraint in place, so the table is rebuilt (the documented
    // procedure; `apply` turns foreign keys off around a migration and
    // checks them before it commits). Keys that are not hex (none are
    // written by the daemon) keep their bytes, as the writer does.
    r#"
CREATE TABLE events_v8 (
    id             INTEGER PRIMARY KEY,
    source         TEXT    NOT NULL,
    event_key      BLOB    NOT NULL,   -- first 16 bytes of the event's SHA-256
    provider       TEXT    NOT NULL,
    shop           TEXT    NOT NULL,   -- '' when the source has no shop
    order_ref      TEXT    NOT NULL,
    transaction_id TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    origin         TEXT    NOT NULL,   -- vads_url_check_src / kr-src
    notification   TEXT    NOT NULL,   -- JSON of domain::Notification
    assessed       TEXT    NOT NULL,   -- outcome of the fields alone
    verdict        TEXT    NOT NULL CHECK (verdict IN ('applied', 'ignored')),
    outcome        TEXT,               -- the order's new outcome when applied
    reason         TEXT,               -- why ignored, or a note on an unusual move
    comment        TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    replayed_at    INTEGER,            -- set when an operator re-decided it
    UNIQUE (source, event_key)
);
INSERT INTO events_v8
SELECT id, source,
       CASE WHEN length(event_key) >= 32 AND unhex(substr(event_key, 1, 32)) IS NOT NULL
            THEN unhex(substr(event_key, 1, 32))
            ELSE CAST(event_key AS BLOB) END,
       provider, shop, order_ref, transaction_id, status, origin, notification, assessed,
       verdict, outcome, reason, comment, created_at, replayed_at
  FROM events ORDER BY id;
DROP TABLE events;
ALTER TABLE events_v8 RENAME TO events;
CREATE INDEX events_by_order ON events (shop, order_ref, id);
"#,
    // 9: confirmations (issue 15): a notification the source's `confirm`
    // holds is recorded as an ignored event waiting for the gateway; the
    // confirmer fetches the gateway's state (retried with backoff, survives
    // restarts) and records the decision as a new event (`result_event_id`).
    r#"
CREATE TABLE confirmations (
    id              INTEGER PRIMARY KEY,
    event_id        INTEGER NOT NULL UNIQUE REFERENCES events (id),
    source          TEXT    NOT NULL,
    shop            TEXT    NOT NULL,
    order_ref       TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('waiting', 'done')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    result          TEXT    CHECK (result IN ('confirmed', 'disagreed', 'unconfirmed')),
    gateway_state   TEXT,
    result_event_id INTEGER REFERENCES events (id),
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
CREATE INDEX confirmations_due ON confirmations (next_attempt_at) WHERE state = 'waiting';
"#,
    // 10: confirmation result `unrecorded` (issue 15, cybersource-cmos): the
    // gateway keeps a record of such decisions but never listed this one
    // (the order is held for review). SQLite cannot change a CHECK in
    // place: the table is rebuilt, rows and ids kept.
    r#"
CREATE TABLE confirmations_unrecorded (
    id              INTEGER PRIMARY KEY,
    event_id        INTEGER NOT NULL UNIQUE REFERENCES events (id),
    source          TEXT    NOT NULL,
    shop            TEXT    NOT NULL,
    order_ref       TEXT    NOT NULL,
    state           TEXT    NOT NULL CHECK (state IN ('waiting', 'done')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT,
    result          TEXT    CHECK (result IN ('confirmed', 'disagreed', 'unconfirmed', 'unrecorded')),
    gateway_state   TEXT,
    result_event_id INTEGER REFERENCES events (id),
    created_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
INSERT INTO confirmations_unrecorded
    SELECT id, event_id, source, shop, order_ref, state, attempts, next_attempt_at, last_error,
           result, gateway_state, result_event_id, created_at, finished_at
    FROM confirmations;
DROP TABLE confirmations;
ALTER TABLE confirmations_unrecorded RENAME TO confirmations;
CREATE INDEX confirmations_due ON confirmations (next_attempt_at) WHERE state = 'waiting';
"#,
    // 11: compact storage and built-in retention (issue 20). Bodies are
    // stored compressed (`store::bodies`); `body_codec` says how (NULL:
    // verbatim, as every earlier row stays: nothing is rewritten). The
    // retention task remembers how far it has walked each table, so a pass
    // never rescans what an earlier one finished (`store::retention`).
    r#"
ALTER TABLE deliveries ADD COLUMN body_codec INTEGER;
ALTER TABLE bodies ADD COLUMN body_codec INTEGER;
CREATE TABLE retention_cursors (
    phase   TEXT    PRIMARY KEY,   -- 'bodies', 'events'
    last_id INTEGER NOT NULL       -- every row up to this id is done
) WITHOUT ROWID;
"#,
    // 12: several daemons on one database (issue 16, PostgreSQL): a
    // dispatcher claims the outbox row it pushes until `claimed_until`, so
    // that no other daemon pushes the same order meanwhile; a daemon that
    // dies mid-push lets the claim lapse and another takes the row over.
    // (One SQLite daemon keeps its claims in memory; the columns stay
    // NULL there.)
    r#"
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;       -- the daemon instance pushing it
ALTER TABLE outbox ADD COLUMN claimed_until INTEGER; -- its claim lapses then (ms)
"#,
    // 13: an append-friendly dedupe key (issues 18/20). The UNIQUE
    // (source, event_key) index was keyed by a digest: every notification
    // inserted into a random leaf of a b-tree as large as the history, so
    // each commit wrote (and each checkpoint copied) one more page per
    // notification, and the cost grew with the database. The dedupe is now
    // per order, (shop, order_ref, source, event_key): shops number their
    // orders in increasing order, so new entries land at the right edge of
    // the index, beside their neighbours. The same index serves every
    // by-order read, so `events_by_order` goes: one index per
    // notification instead of two. (Every delivery of an event carries the
    // same signed order reference, so it finds its first delivery there.)
    // SQLite cannot drop a UNIQUE constraint in place: the table is rebuilt
    // as in migration 8.
    r#"
CREATE TABLE events_v13 (
    id             INTEGER PRIMARY KEY,
    source         TEXT    NOT NULL,
    event_key      BLOB    NOT NULL,   -- first 16 bytes of the event's SHA-256
    provider       TEXT    NOT NULL,
    shop           TEXT    NOT NULL,   -- '' when the source has no shop
    order_ref      TEXT    NOT NULL,
    transaction_id TEXT    NOT NULL,
    status         TEXT    NOT NULL,
    origin         TEXT    NOT NULL,   -- vads_url_check_src / kr-src
    notification   TEXT    NOT NULL,   -- JSON of domain::Notification
    assessed       TEXT    NOT NULL,   -- outcome of the fields alone
    verdict        TEXT    NOT NULL CHECK (verdict IN ('applied', 'ignored')),
    outcome        TEXT,               -- the order's new outcome when applied
    reason         TEXT,               -- why ignored, or a note on an unusual move
    comment        TEXT    NOT NULL,
    created_at     INTEGER NOT NULL,
    replayed_at    INTEGER             -- set when an operator re-decided it
);
INSERT INTO events_v13
SELECT id, source, event_key, provider, shop, order_ref, transaction_id, status, origin,
       notification, assessed, verdict, outcome, reason, comment, created_at, replayed_at
  FROM events ORDER BY id;
DROP TABLE events;
ALTER TABLE events_v13 RENAME TO events;
CREATE UNIQUE INDEX events_dedupe ON events (shop, order_ref, source, event_key);
"#,
];

/// The PostgreSQL schema at version [`PG_BASE`].
const PG_SCHEMA: &str = include_str!("schema_pg.sql");

/// The version `schema_pg.sql` creates.
const PG_BASE: i64 = 12;

/// PostgreSQL migrations after [`PG_BASE`], in order.
const PG_MIGRATIONS: &[&str] = &[
    // 13: the dedupe key per order (see migration 13 above).
    r#"
ALTER TABLE events DROP CONSTRAINT events_source_event_key;
DROP INDEX events_by_order;
CREATE UNIQUE INDEX events_dedupe ON events (shop, order_ref, source, event_key);
"#,
];

const _: () = assert!(PG_BASE + PG_MIGRATIONS.len() as i64 == LATEST);

/// Brings either engine's schema to [`LATEST`].
pub fn apply(conn: &db::Connection) -> Result<(), StoreError> {
    match conn {
        db::Connection::Sqlite(c) => apply_sqlite(c),
        db::Connection::Postgres(_) => apply_postgres(conn),
    }
}

/// The schema version of a database, either engine.
pub fn version(conn: &db::Connection) -> Result<i64, StoreError> {
    match conn {
        db::Connection::Sqlite(c) => Ok(c.query_row("PRAGMA user_version", [], |r| r.get(0))?),
        db::Connection::Postgres(_) => {
            let exists: bool = conn.query_row(
                "SELECT to_regclass('schema_version') IS NOT NULL",
                (),
                |r| r.get(0),
            )?;
            if !exists {
                return Ok(0);
            }
            Ok(conn.query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                (),
                |r| r.get(0),
            )?)
        }
    }
}

/// Creates or migrates a PostgreSQL schema. Daemons starting together on
/// an empty database take turns: a transaction-level advisory lock makes
/// the second one wait, then find the schema in place.
fn apply_postgres(conn: &db::Connection) -> Result<(), StoreError> {
    let tx = conn.unchecked_transaction()?;
    // Any constant: the lock every ipnsync schema change takes.
    tx.execute_batch("SELECT pg_advisory_xact_lock(7305733113920190416)")?;
    let current = version(&tx)?;
    if up_to_date(current)? {
        return Ok(());
    }
    if current == 0 {
        tx.execute_batch(PG_SCHEMA)?;
        tx.execute(
            "INSERT INTO schema_version (version) VALUES (?1)",
            [PG_BASE],
        )?;
    }
    let from = current.max(PG_BASE);
    for (i, sql) in PG_MIGRATIONS
        .iter()
        .enumerate()
        .skip((from - PG_BASE) as usize)
    {
        tx.execute_batch(sql)?;
        tx.execute(
            "UPDATE schema_version SET version = ?1",
            [PG_BASE + i as i64 + 1],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// Whether a database at `current` needs nothing; one newer than this
/// binary is refused.
fn up_to_date(current: i64) -> Result<bool, StoreError> {
    if current > LATEST {
        return Err(StoreError::SchemaTooNew {
            found: current,
            known: LATEST,
        });
    }
    Ok(current == LATEST)
}

/// The first `n` migrations (tests build databases as older binaries left
/// them).
#[cfg(test)]
pub(crate) fn first(n: usize) -> &'static [&'static str] {
    &MIGRATIONS[..n]
}

/// The schema version this binary writes.
pub const LATEST: i64 = MIGRATIONS.len() as i64;

pub(crate) fn apply_sqlite(conn: &Connection) -> Result<(), StoreError> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if up_to_date(current)? {
        return Ok(());
    }
    // A migration may rebuild a table that others refer to (SQLite's
    // procedure for changing a table: create, copy, drop, rename), which
    // foreign key enforcement would refuse half-way. Enforcement is off
    // while migrating (it cannot change inside a transaction), and each
    // migration proves before committing that every reference still holds.
    let enforced: bool = conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
    conn.pragma_update(None, "foreign_keys", false)?;
    let result = apply_from(conn, current);
    conn.pragma_update(None, "foreign_keys", enforced)?;
    result
}

/// Migrations that rebuild one table copying every row with its id (by
/// number, and the table). Nothing refers to a row by anything but its id,
/// so counting the table's rows before and after proves every reference
/// still holds: the full foreign key check reads every row of every table
/// (on a database of millions of notifications, with the rebuilt table in
/// the WAL, tens of minutes).
const REBUILDS_KEEPING_IDS: &[(usize, &str)] = &[(13, "events")];

fn apply_from(conn: &Connection, current: i64) -> Result<(), StoreError> {
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let number = index + 1;
        let tx = conn.unchecked_transaction()?;
        let rebuilt = REBUILDS_KEEPING_IDS
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, table)| *table);
        let count = |table: &str| -> Result<i64, StoreError> {
            Ok(tx.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?)
        };
        let before = rebuilt.map(count).transpose()?;
        if rebuilt.is_some() {
            tracing::info!(
                migration = number,
                rows = before,
                "rebuilding a table (once, at upgrade: about a minute per few million notifications)"
            );
        }
        tx.execute_batch(sql)?;
        match (rebuilt, before) {
            (Some(table), Some(before)) => {
                let after = count(table)?;
                if after != before {
                    return Err(StoreError::Corrupt(format!(
                        "migration {number} copied {after} of {before} rows of {table}"
                    )));
                }
            }
            _ => {
                let broken: i64 =
                    tx.query_row("SELECT COUNT(*) FROM pragma_foreign_key_check", [], |r| {
                        r.get(0)
                    })?;
                if broken > 0 {
                    return Err(StoreError::Corrupt(format!(
                        "migration {number} would leave {broken} broken references"
                    )));
                }
            }
        }
        tx.pragma_update(None, "user_version", number as i64)?;
        tx.commit()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
