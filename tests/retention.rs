//! Built-in retention end to end: the real daemon with `[retention]`, its
//! background task removing exactly what it may while notifications keep
//! arriving.

mod support;

use std::time::Duration;

use support::daemon::{config, fixture, resign, set, Daemon};

fn retention_config() -> String {
    format!(
        "{}\n[retention]\nbodies_after = \"1d\"\nclosed_orders_after = \"2d\"\ninterval = \"1s\"\n",
        ipnsync::config::DEFAULT_CONFIG
    )
}

/// The to-validate fixture for order `order`, as transaction `n`.
fn in_review(order: &str, n: u32) -> Vec<u8> {
    resign(&fixture("lyra-form/to-validate.txt"), |p| {
        set(p, "vads_order_id", order);
        set(p, "vads_trans_id", &format!("{n:06}"));
        set(p, "vads_trans_uuid", &format!("{n:032x}"));
    })
}

/// A new accepted order.
fn authorised(order: u32) -> Vec<u8> {
    resign(&fixture("lyra-form/authorised.txt"), |p| {
        set(p, "vads_order_id", &order.to_string());
        set(p, "vads_trans_id", &format!("{:06}", order % 900_000));
        set(
            p,
            "vads_trans_uuid",
            &format!("{:032x}", 0xabc0_0000 + order),
        );
    })
}

fn events_of(d: &Daemon, order: &str) -> i64 {
    d.count(&format!(
        "SELECT COUNT(*) FROM events WHERE order_ref = '{order}'"
    ))
}

#[tokio::test]
async fn retention_removes_what_it_may_while_intake_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    // Off until the rows are aged: the first run happens at start.
    let mut cfg = config(&retention_config(), dir.path());
    let policy = cfg.retention.take().expect("[retention] parsed");
    let d = Daemon::start(cfg.clone()).await;
    let ok = |(status, body): (u16, String)| assert_eq!(status, 200, "{body}");
    // Closed: in review, then validated (accepted).
    ok(
        d.post_form("/ipn/lyra", fixture("lyra-form/to-validate.txt"))
            .await,
    );
    ok(
        d.post_form("/ipn/lyra", fixture("lyra-form/validated-merch-bo.txt"))
            .await,
    );
    // Open: still in review after two notifications.
    ok(d.post_form("/ipn/lyra", in_review("200001", 1)).await);
    ok(d.post_form("/ipn/lyra", in_review("200001", 2)).await);
    // Closed but too recent to lose its notifications (aged 1.5 days).
    ok(d.post_form("/ipn/lyra", in_review("200002", 3)).await);
    ok(d.post_form("/ipn/lyra", fixture("lyra-form/refused.txt"))
        .await);
    d.stop().await;

    let db = d_path(&cfg);
    let conn = rusqlite::Connection::open(&db).unwrap();
    let day = 86_400_000i64;
    conn.execute_batch(&format!(
        "UPDATE deliveries SET received_at = received_at - 3 * {day};
         UPDATE events SET created_at = created_at - 3 * {day};
         UPDATE orders SET updated_at = updated_at - 3 * {day};
         UPDATE events SET created_at = created_at + {day} + {day} / 2 WHERE order_ref IN ('200002', '100044');
         UPDATE orders SET updated_at = updated_at + {day} + {day} / 2 WHERE order_ref IN ('200002', '100044');"
    ))
    .unwrap();
    let before: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM events WHERE order_ref = '100042'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(before, 2);
    drop(conn);

    cfg.retention = Some(policy);
    let d = Daemon::start(cfg).await;
    // Intake keeps working while the task runs.
    let mut fresh = Vec::new();
    for i in 0..40u32 {
        let body = authorised(300_000 + i);
        ok(d.post_form("/ipn/lyra", body.clone()).await);
        fresh.push(body);
    }
    let mut done = false;
    for _ in 0..300 {
        if events_of(&d, "100042") == 1
            && d.count("SELECT COUNT(*) FROM deliveries WHERE body IS NOT NULL") == 40
        {
            done = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(done, "retention ran");

    // The closed, old order keeps its current event (its order row points
    // at it) and the order row; the first notification and its delivery went.
    assert_eq!(
        d.count("SELECT COUNT(*) FROM orders WHERE order_ref = '100042'"),
        1
    );
    assert_eq!(
        d.count("SELECT COUNT(*) FROM orders o JOIN events e ON e.id = o.event_id WHERE o.order_ref = '100042'"),
        1
    );
    assert_eq!(
        d.count("SELECT COUNT(*) FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.order_ref = '100042'"),
        1
    );
    // The open order and the recent ones keep every notification.
    assert_eq!(events_of(&d, "200001"), 2, "open order");
    assert_eq!(events_of(&d, "200002"), 1, "recent");
    assert_eq!(events_of(&d, "100044"), 1, "recent");
    // Every body older than a day went, every new one is there, verbatim.
    assert_eq!(
        d.count("SELECT COUNT(*) FROM deliveries WHERE body IS NULL AND received_at < strftime('%s','now') * 1000 - 86400000"),
        d.count("SELECT COUNT(*) FROM deliveries WHERE received_at < strftime('%s','now') * 1000 - 86400000")
    );
    let reader = d.reader();
    let ids: Vec<i64> = reader
        .prepare("SELECT d.id FROM deliveries d JOIN events e ON e.id = d.event_id WHERE CAST(e.order_ref AS INTEGER) >= 300000 ORDER BY d.id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids.len(), fresh.len());
    for (id, body) in ids.into_iter().zip(&fresh) {
        let stored = ipnsync::store::bodies::read_delivery_body(&reader, id)
            .unwrap()
            .unwrap();
        assert_eq!(&stored, body);
    }
    assert_eq!(d.count("SELECT COUNT(*) FROM pragma_foreign_key_check"), 0);
    drop(reader);

    // The metrics tell what it did and what is stored.
    let (_, metrics) = d.admin_get("/metrics").await;
    assert!(
        metrics.contains("ipnsync_retention_last_run_timestamp_seconds"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ipnsync_stored_rows{table=\"events\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("ipnsync_database_bytes{part=\"file\"}"),
        "{metrics}"
    );
    // A resend of the closed order's current notification is still a duplicate.
    ok(
        d.post_form("/ipn/lyra", fixture("lyra-form/validated-merch-bo.txt"))
            .await,
    );
    assert_eq!(events_of(&d, "100042"), 1);
    d.stop().await;
}

fn d_path(cfg: &ipnsync::config::Config) -> std::path::PathBuf {
    cfg.database
        .sqlite_path()
        .expect("a SQLite test")
        .to_path_buf()
}
