//! Operations: metrics names and labels, health and readiness, reload.

mod support;

use std::sync::Arc;

use support::daemon::{config, fixture, Daemon};

const DEMO: &str = ipnsync::config::DEFAULT_CONFIG;

#[tokio::test]
async fn metrics_count_notifications_refusals_and_batches() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(config(DEMO, dir.path())).await;
    assert_eq!(
        d.post_form("/ipn/lyra", fixture("lyra-form/to-validate.txt"))
            .await
            .0,
        200
    );
    assert_eq!(
        d.post_form("/ipn/lyra", fixture("lyra-form/to-validate.txt"))
            .await
            .0,
        200
    );
    assert_eq!(
        d.post_form("/ipn/lyra", b"vads_amount=1&signature=x".to_vec())
            .await
            .0,
        401
    );

    let (status, text) = d.admin_get("/metrics").await;
    assert_eq!(status, 200);
    for expected in [
        r#"ipnsync_notifications_total{source="lyra-demo",result="applied"}"#,
        r#"ipnsync_notifications_total{source="lyra-demo",result="duplicate"}"#,
        r#"ipnsync_outcomes_total{source="lyra-demo",outcome="review"}"#,
        r#"ipnsync_refused_requests_total{source="lyra-demo",reason="signature"}"#,
        "ipnsync_request_duration_seconds_bucket",
        "ipnsync_commit_batch_size_bucket",
        "ipnsync_commit_duration_seconds_bucket",
        "ipnsync_outbox_pending 0",
        "ipnsync_outbox_dead 0",
        "ipnsync_outbox_oldest_pending_age_seconds",
        "ipnsync_writer_queue_depth",
    ] {
        assert!(text.contains(expected), "missing {expected} in\n{text}");
    }
    assert!(!text.contains("1122334455667788"), "no secret in metrics");
    // Which daemon and engine these figures are from (several daemons may
    // share one PostgreSQL database).
    let backend = if support::backend::postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    let info = format!("backend=\"{backend}\"");
    assert!(
        text.lines().any(|l| l.starts_with("ipnsync_instance_info{")
            && l.contains(&info)
            && l.ends_with(" 1")),
        "{text}"
    );
    if let ipnsync::store::Database::Postgres(pg) = &d.db {
        assert!(!text.contains(&pg.url), "no database URL in metrics");
    }
    d.stop().await;
}

#[tokio::test]
async fn health_and_readiness() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(config(DEMO, dir.path())).await;
    assert_eq!(d.admin_get("/healthz").await, (200, "ok\n".into()));
    // Give the dispatcher its first loop.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(d.admin_get("/readyz").await, (200, "ready\n".into()));

    // Another process holds the database's write lock: not ready.
    let locker = d.reader();
    locker
        .execute_batch(support::backend::lock_writes_sql())
        .unwrap();
    let (status, text) = d.admin_get("/readyz").await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("database"), "{text}");
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    // The stuck probe finishes (busy timeout) before the next one runs.
    let mut ready = false;
    for _ in 0..100 {
        if d.admin_get("/readyz").await.0 == 200 {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "ready again once the lock is gone");
    assert_eq!(d.admin_get("/nope").await.0, 404);
    d.stop().await;
}

#[tokio::test]
async fn a_reload_swaps_keys_without_dropping_requests() {
    let dir = tempfile::tempdir().unwrap();
    let first = config(DEMO, dir.path());
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(first.clone()));
    let d = Daemon::start_with(
        first.clone(),
        ipnsync::RunOptions {
            reload: Some(rx),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        d.post_form("/ipn/lyra", fixture("lyra-form/authorised.txt"))
            .await
            .0,
        200
    );

    // New key: the old fixtures no longer verify, requests keep being served.
    let rotated = DEMO.replace("1122334455667788", "8877665544332211");
    tx.send(Arc::new(config(&rotated, dir.path()))).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        d.post_form("/ipn/lyra", fixture("lyra-form/refused.txt"))
            .await
            .0,
        401
    );
    tx.send(Arc::new(first)).unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(
        d.post_form("/ipn/lyra", fixture("lyra-form/refused.txt"))
            .await
            .0,
        200
    );
    d.stop().await;
}

#[tokio::test]
async fn an_idle_metrics_connection_does_not_hold_up_the_stop() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(config(DEMO, dir.path())).await;
    // A scraper's keep-alive connection, left open after one request.
    let mut scraper = tokio::net::TcpStream::connect(d.admin).await.unwrap();
    scraper
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 256];
    let n = scraper.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Stopping closes it instead of waiting for it (the header read timeout
    // is 10 s, the writer's own join limit 30 s).
    tokio::time::timeout(std::time::Duration::from_secs(5), d.stop())
        .await
        .expect("the daemon stops without waiting for idle admin connections");
}
