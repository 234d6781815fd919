//! Prometheus metrics through the `metrics` facade.
//!
//! Counters and histograms are recorded where things happen (intake, writer,
//! dispatcher); outbox gauges are read from the database at scrape time so
//! they are right even after a restart or a CLI retry.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub const NOTIFICATIONS: &str = "ipnsync_notifications_total";
pub const OUTCOMES: &str = "ipnsync_outcomes_total";
pub const REFUSED: &str = "ipnsync_refused_requests_total";
pub const UNAVAILABLE: &str = "ipnsync_unavailable_total";
pub const PUSHES: &str = "ipnsync_pushes_total";
pub const PUSHES_NEED_OPERATOR: &str = "ipnsync_pushes_needing_operator_total";
pub const GATEWAY_CANCELS: &str = "ipnsync_gateway_cancels_total";
pub const CONFIRMATIONS: &str = "ipnsync_confirmations_total";
pub const CONFIRMATION_LAG: &str = "ipnsync_confirmation_lag_seconds";
pub const RECONCILIATIONS: &str = "ipnsync_reconciliations_total";
pub const REQUEST_SECONDS: &str = "ipnsync_request_duration_seconds";
pub const COMMIT_BATCH: &str = "ipnsync_commit_batch_size";
pub const COMMIT_SECONDS: &str = "ipnsync_commit_duration_seconds";
pub const WRITER_QUEUE: &str = "ipnsync_writer_queue_depth";
pub const OUTBOX_PENDING: &str = "ipnsync_outbox_pending";
pub const OUTBOX_DEAD: &str = "ipnsync_outbox_dead";
pub const OUTBOX_OLDEST_AGE: &str = "ipnsync_outbox_oldest_pending_age_seconds";
pub const DISPATCH_LOOPS: &str = "ipnsync_dispatcher_loops_total";
pub const CONNECTIONS_REFUSED: &str = "ipnsync_connections_refused_total";
pub const INSTANCE_INFO: &str = "ipnsync_instance_info";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder once and returns its handle.
pub fn handle() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(REQUEST_SECONDS.into()),
                &[
                    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
                ],
            )
            .expect("static buckets")
            .set_buckets_for_metric(
                Matcher::Full(COMMIT_SECONDS.into()),
                &[
                    0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0,
                ],
            )
            .expect("static buckets")
            .set_buckets_for_metric(
                Matcher::Full(COMMIT_BATCH.into()),
                &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0],
            )
            .expect("static buckets")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (an embedding program);
        // then our handle simply renders nothing of its own.
        let _ = metrics::set_global_recorder(recorder);
        describe();
        handle
    })
}

/// A counter or histogram with a `source` label and at most one other
/// label of a fixed value: what intake records for every notification.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct SourceKey {
    metric: &'static str,
    label: Option<(&'static str, &'static str)>,
}

/// Handles registered by one thread, per metric and source name.
type Handles<H> = RefCell<HashMap<SourceKey, HashMap<String, H>>>;

std::thread_local! {
    /// `metrics::counter!` with an owned label allocates the label, the
    /// key and the handle, and searches the registry, at every call: a few
    /// allocations per notification (issue 18). Handles are only taken
    /// while serving, after [`handle`] installed the recorder.
    static SOURCE_COUNTERS: Handles<metrics::Counter> = Default::default();
    static SOURCE_HISTOGRAMS: Handles<metrics::Histogram> = Default::default();
}

/// `use_it` on this thread's handle for `key` and `source`, registered by
/// `register` the first time.
fn with_handle<H>(
    handles: &'static std::thread::LocalKey<Handles<H>>,
    key: SourceKey,
    source: &str,
    register: impl FnOnce() -> H,
    use_it: impl FnOnce(&H),
) {
    handles.with_borrow_mut(|all| {
        let by_source = all.entry(key).or_default();
        match by_source.get(source) {
            Some(h) => use_it(h),
            None => use_it(by_source.entry(source.to_owned()).or_insert_with(register)),
        }
    });
}

/// Adds one to `metric{source, label}`, `label` a fixed name and value.
pub fn count_for_source(metric: &'static str, source: &str, label: (&'static str, &'static str)) {
    let key = SourceKey {
        metric,
        label: Some(label),
    };
    let register = || metrics::counter!(metric, "source" => source.to_owned(), label.0 => label.1);
    with_handle(&SOURCE_COUNTERS, key, source, register, |c| c.increment(1));
}

/// Records `value` in the histogram `metric{source}`.
pub fn record_for_source(metric: &'static str, source: &str, value: f64) {
    let key = SourceKey {
        metric,
        label: None,
    };
    let register = || metrics::histogram!(metric, "source" => source.to_owned());
    with_handle(&SOURCE_HISTOGRAMS, key, source, register, |h| {
        h.record(value)
    });
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_retention();
    describe_counter!(
        NOTIFICATIONS,
        "Verified notifications stored, by source and result (applied, ignored, duplicate)."
    );
    describe_counter!(
        OUTCOMES,
        "Decisions applied to orders, by source and outcome."
    );
    describe_counter!(
        REFUSED,
        "Requests refused before storage, by source and reason."
    );
    describe_counter!(
        UNAVAILABLE,
        "Notifications answered 503 (overload, storage, shutdown), by reason."
    );
    describe_counter!(
        CONNECTIONS_REFUSED,
        "Connections closed at accept, by limit reached (per_peer, global)."
    );
    describe_counter!(
        PUSHES,
        "Shop push attempts, by shop and result (delivered, retry, dead)."
    );
    describe_counter!(
        PUSHES_NEED_OPERATOR,
        "Updates a shop took only in part: a person must finish them (see `ipnsync outbox`), by shop."
    );
    describe_counter!(
        GATEWAY_CANCELS,
        "Risk-rejected orders whose transaction was still alive at the gateway, by source and result: to_do (no automatic cancel: listed in `review list`), cancelled, failed (listed too)."
    );
    describe_counter!(
        CONFIRMATIONS,
        "Gateway confirmations, by source and result (confirmed, disagreed: held for review, unconfirmed: the gateway does not vouch for it, unrecorded: a cybersource-cmos decision the Conversion Detail Report never listed, held for review, retry)."
    );
    describe_counter!(
        RECONCILIATIONS,
        "Orders asked about by reconciliation, by source and result (moved, unchanged, unknown: the gateway does not know it, error)."
    );
    describe_histogram!(
        CONFIRMATION_LAG,
        Unit::Seconds,
        "Time from a held notification to its settled confirmation."
    );
    describe_histogram!(
        REQUEST_SECONDS,
        Unit::Seconds,
        "Notification request latency, body read to answer."
    );
    describe_histogram!(
        COMMIT_BATCH,
        Unit::Count,
        "Commands committed per writer transaction."
    );
    describe_histogram!(
        COMMIT_SECONDS,
        Unit::Seconds,
        "Time of each writer COMMIT: the WAL fsync on SQLite, the flush on PostgreSQL. Every acknowledged notification waited for one; a slow disk shows here first."
    );
    describe_gauge!(
        WRITER_QUEUE,
        Unit::Count,
        "Commands waiting for the writer."
    );
    describe_gauge!(
        OUTBOX_PENDING,
        Unit::Count,
        "Outbox rows not yet delivered."
    );
    describe_gauge!(
        OUTBOX_DEAD,
        Unit::Count,
        "Outbox rows that gave up and wait for an operator."
    );
    describe_gauge!(
        OUTBOX_OLDEST_AGE,
        Unit::Seconds,
        "Age of the oldest pending outbox row."
    );
}

/// Names this daemon among those sharing a database (`instance`: what its
/// outbox claims carry) and its engine (`backend`: sqlite, postgres).
pub fn instance(instance: &str, backend: &'static str) {
    metrics::describe_gauge!(
        INSTANCE_INFO,
        "This daemon: its instance name (as in outbox claims) and database engine; always 1."
    );
    metrics::gauge!(INSTANCE_INFO, "instance" => instance.to_owned(), "backend" => backend)
        .set(1.0);
}

// ---------------------------------------------------------------- retention

pub const STORED_ROWS: &str = "ipnsync_stored_rows";
pub const DATABASE_BYTES: &str = "ipnsync_database_bytes";
pub const RETENTION_LAST_RUN: &str = "ipnsync_retention_last_run_timestamp_seconds";
pub const RETENTION_REMOVED: &str = "ipnsync_retention_last_run_removed";

fn describe_retention() {
    use metrics::{describe_gauge, Unit};
    describe_gauge!(
        STORED_ROWS,
        Unit::Count,
        "Rows stored, by table (counted after each retention run)."
    );
    describe_gauge!(
        DATABASE_BYTES,
        Unit::Bytes,
        "Database size: `used` pages, whole `file` (free pages included)."
    );
    describe_gauge!(
        RETENTION_LAST_RUN,
        Unit::Seconds,
        "When the last retention run started (Unix time)."
    );
    describe_gauge!(
        RETENTION_REMOVED,
        Unit::Count,
        "What the last retention run removed, by kind."
    );
}

/// Records a finished retention run that began at `began_ms`.
pub fn retention_run(began_ms: i64, removed: &crate::store::retention::Removed) {
    metrics::gauge!(RETENTION_LAST_RUN).set(began_ms as f64 / 1000.0);
    for (kind, n) in [
        ("bodies", removed.bodies),
        ("events", removed.events),
        ("deliveries", removed.deliveries),
        ("outbox", removed.outbox),
    ] {
        metrics::gauge!(RETENTION_REMOVED, "kind" => kind).set(n as f64);
    }
}

/// Records the database's rows and size.
pub fn footprint(f: &crate::store::retention::Footprint) {
    for (table, n) in [
        ("events", f.events),
        ("deliveries", f.deliveries),
        ("deliveries_with_body", f.bodies_kept),
        ("outbox", f.outbox),
    ] {
        metrics::gauge!(STORED_ROWS, "table" => table).set(n as f64);
    }
    metrics::gauge!(DATABASE_BYTES, "part" => "used").set(f.used_bytes as f64);
    metrics::gauge!(DATABASE_BYTES, "part" => "file").set(f.file_bytes as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cached handles count and record into the same series as the
    /// macros would, per source and label, however often they are used.
    #[test]
    fn source_handles_count_per_source_and_label() {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            for _ in 0..3 {
                count_for_source(NOTIFICATIONS, "lyra", ("result", "applied"));
            }
            count_for_source(NOTIFICATIONS, "lyra", ("result", "duplicate"));
            count_for_source(NOTIFICATIONS, "cyber", ("result", "applied"));
            record_for_source(REQUEST_SECONDS, "lyra", 0.25);
            record_for_source(REQUEST_SECONDS, "lyra", 0.75);
        });
        let text = handle.render();
        for line in [
            r#"ipnsync_notifications_total{source="lyra",result="applied"} 3"#,
            r#"ipnsync_notifications_total{source="lyra",result="duplicate"} 1"#,
            r#"ipnsync_notifications_total{source="cyber",result="applied"} 1"#,
            r#"ipnsync_request_duration_seconds_sum{source="lyra"} 1"#,
            r#"ipnsync_request_duration_seconds_count{source="lyra"} 2"#,
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
