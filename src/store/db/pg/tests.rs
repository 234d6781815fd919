use super::*;

#[test]
fn placeholders_become_numbered_outside_quotes_and_comments() {
    assert_eq!(
        placeholders("SELECT ?1, ?2 FROM t WHERE a = ?1"),
        "SELECT $1, $2 FROM t WHERE a = $1"
    );
    assert_eq!(placeholders("VALUES (?, ?, ?)"), "VALUES ($1, $2, $3)");
    assert_eq!(
        placeholders("SELECT '?1' || ?1 -- what ?2\n, \"a?\" FROM t WHERE x - 1 > ?2"),
        "SELECT '?1' || $1 -- what ?2\n, \"a?\" FROM t WHERE x - 1 > $2"
    );
    assert_eq!(
        placeholders("SELECT json_extract(n, '$.a') WHERE b = ?10"),
        "SELECT json_extract(n, '$.a') WHERE b = $10"
    );
}

#[test]
fn json_paths_become_jsonb_text_lookups() {
    assert_eq!(
        json_paths("SELECT CAST(json_extract(e.notification, '$.amount_minor') AS BIGINT), json_extract(n, '$.facts.trans_status') IN ('A')"),
        "SELECT CAST((e.notification::jsonb #>> '{amount_minor}') AS BIGINT), (n::jsonb #>> '{facts,trans_status}') IN ('A')"
    );
    assert_eq!(json_paths("SELECT 1"), "SELECT 1");
}

/// Regression (CI hung for 90 minutes in `failover_pg`): the
/// dispatcher's database read blocked its worker while the task that
/// worker had just woken — the test's proxy in front of PostgreSQL —
/// sat in that worker's own slot, which no other worker may take.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_call_from_a_task_lets_the_tasks_it_waits_for_run() {
    let outcome = tokio::spawn(async {
        let (tx, rx) = std::sync::mpsc::channel();
        // Spawned from a worker: queued in that worker's own slot.
        tokio::spawn(async move {
            let _ = tx.send(());
        });
        off_runtime(move || rx.recv_timeout(Duration::from_secs(10)))
    })
    .await
    .unwrap();
    assert!(
        outcome.is_ok(),
        "the woken task never ran while the blocking call waited for it"
    );
}

#[test]
fn a_blocking_call_runs_in_place_outside_a_runtime_and_on_a_thread_within_one() {
    let here = std::thread::current().id();
    assert_eq!(off_runtime(|| std::thread::current().id()), here);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let there = runtime.block_on(async { off_runtime(|| std::thread::current().id()) });
    assert_ne!(there, here);
}

#[test]
fn a_vanished_database_host_is_noticed_in_a_minute_unless_the_url_says_otherwise() {
    let t = PgTarget::new("postgres://u@localhost/db", None).unwrap();
    assert!(t.config.get_keepalives());
    assert_eq!(t.config.get_keepalives_idle(), Duration::from_secs(30));
    assert_eq!(
        t.config.get_keepalives_interval(),
        Some(Duration::from_secs(10))
    );
    assert_eq!(t.config.get_keepalives_retries(), Some(3));
    assert_eq!(
        t.config.get_tcp_user_timeout(),
        Some(&Duration::from_secs(30))
    );
    let t = PgTarget::new(
        "postgres://u@localhost/db?keepalives_idle=300&tcp_user_timeout=5",
        None,
    )
    .unwrap();
    assert_eq!(t.config.get_keepalives_idle(), Duration::from_secs(300));
    assert_eq!(
        t.config.get_tcp_user_timeout(),
        Some(&Duration::from_secs(5))
    );
    assert_eq!(t.config.get_keepalives_retries(), Some(3));
}

#[test]
fn a_url_with_a_password_is_refused_and_the_password_never_shows() {
    let err = PgTarget::new("postgres://u:secret@localhost/db", None).unwrap_err();
    assert!(err.contains("database_password_file"), "{err}");
    assert!(!err.contains("secret"), "{err}");
    let t = PgTarget::new("postgres://u@localhost:5433/db", Some("hunter2")).unwrap();
    assert_eq!(t.to_string(), "postgres://u@localhost:5433/db");
    assert!(!format!("{t:?}").contains("hunter2"));
}
