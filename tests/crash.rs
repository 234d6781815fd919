//! Crash test: `kill -9` the daemon at random moments while notifications
//! stream in, restart it, and check that nothing acknowledged was lost, that
//! every shop update arrived, and that no order's updates arrived out of
//! order.

mod support;

use std::collections::{HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::Rng;
use support::daemon::{fixture, resign, set};
use support::fake_webhook::FakeWebhook;
use support::process::{free_port, lyra_config, terminate, wait_listening};

const ROUNDS: usize = 10;

fn spawn_daemon(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_ipnsync"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("daemon starts")
}

fn ipn(template: &str, order: usize) -> Vec<u8> {
    resign(&fixture(template), |p| {
        set(p, "vads_order_id", &order.to_string());
        set(p, "vads_trans_uuid", &format!("{order:032x}"));
    })
}

/// Each client takes the next order and sends its two notifications in
/// sequence (review, then the validation), recording what was acknowledged.
async fn client(
    port: u16,
    next_order: Arc<AtomicUsize>,
    acked: Arc<Mutex<HashSet<(usize, &'static str)>>>,
    stop: Arc<AtomicBool>,
) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/ipn/lyra");
    while !stop.load(Ordering::Relaxed) {
        let order = next_order.fetch_add(1, Ordering::Relaxed);
        for (template, step) in [
            ("lyra-form/to-validate.txt", "review"),
            ("lyra-form/validated-merch-bo.txt", "accepted"),
        ] {
            let sent = http
                .post(&url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(ipn(template, order))
                .send()
                .await;
            match sent {
                Ok(r) if r.status().is_success() => {
                    acked.lock().unwrap().insert((order, step));
                }
                // Killed mid-request, or not up yet: not acknowledged.
                _ => return,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_loses_nothing_and_keeps_order() {
    let shop = FakeWebhook::start("crash-secret").await;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let db = dir.path().join("crash.db");
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"listen = "127.0.0.1:{port}"
database = "{}"
[admin]
listen = "off"
[dispatch]
retry_schedule = ["50ms", "50ms", "100ms", "100ms", "200ms", "200ms", "400ms", "400ms"]
poll_interval = "50ms"
[[sources]]
name = "lyra"
kind = "lyra-form"
path = "/ipn/lyra"
mode = "TEST"
test_key = "1122334455667788"
shop = "hook"
[[shops]]
name = "hook"
kind = "webhook"
base_url = "{}"
key = "crash-secret"
concurrency = 4
"#,
            db.display(),
            shop.url()
        ),
    )
    .unwrap();

    let next_order = Arc::new(AtomicUsize::new(500_000));
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let mut rng = rand::thread_rng();
    for _ in 0..ROUNDS {
        let mut daemon = spawn_daemon(&config);
        wait_listening(port).await;
        let stop = Arc::new(AtomicBool::new(false));
        let clients: Vec<_> = (0..6)
            .map(|_| {
                tokio::spawn(client(
                    port,
                    next_order.clone(),
                    acked.clone(),
                    stop.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.gen_range(100..500))).await;
        daemon.kill().unwrap(); // SIGKILL: no drain, no checkpoint
        daemon.wait().unwrap();
        stop.store(true, Ordering::Relaxed);
        for c in clients {
            c.await.unwrap();
        }
    }

    // A last, clean run drains the outbox.
    let mut daemon = spawn_daemon(&config);
    wait_listening(port).await;
    let reader = rusqlite::Connection::open(&db).unwrap();
    let pending = |r: &rusqlite::Connection| -> i64 {
        r.query_row(
            "SELECT COUNT(*) FROM outbox WHERE state <> 'delivered'",
            [],
            |x| x.get(0),
        )
        .unwrap()
    };
    for _ in 0..400 {
        if pending(&reader) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(pending(&reader), 0, "every update delivered in the end");
    terminate(&daemon);
    daemon.wait().unwrap();

    // 1. Every acknowledged notification is stored.
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= ROUNDS,
        "the test acknowledged too little to mean anything"
    );
    let mut stmt = reader
        .prepare("SELECT order_ref, status FROM events")
        .unwrap();
    let stored: HashSet<(usize, String)> = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?.parse().unwrap(), r.get(1)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    for (order, step) in &acked {
        let status = if *step == "review" {
            "AUTHORISED_TO_VALIDATE"
        } else {
            "AUTHORISED"
        };
        assert!(
            stored.contains(&(*order, status.to_owned())),
            "acknowledged {order}/{step} lost"
        );
    }

    // 2. Every outbox row reached the shop; a repeat (a kill between the
    //    shop's answer and our commit) carries the same webhook-id, so the
    //    receiver applies each update once.
    let mut stmt = reader
        .prepare("SELECT id, order_ref, outcome FROM outbox ORDER BY id")
        .unwrap();
    let rows: Vec<(i64, String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let received = shop.received();
    let mut first_seen: HashMap<String, usize> = HashMap::new();
    for (i, r) in received.iter().enumerate() {
        assert!(r.verified, "signed");
        first_seen.entry(r.id.clone()).or_insert(i);
    }
    for (id, _, _) in &rows {
        assert!(
            first_seen.contains_key(&format!("ipnsync-{id}")),
            "update #{id} never arrived"
        );
    }
    assert_eq!(
        first_seen.len(),
        rows.len(),
        "nothing arrived that the outbox does not hold"
    );
    let repeats = received.len() - first_seen.len();
    eprintln!(
        "{} acknowledged notifications, {} updates, {} repeated deliveries after kills",
        acked.len(),
        rows.len(),
        repeats
    );

    // 3. Per order, the shop saw the updates in outbox order.
    let mut by_order: HashMap<&str, Vec<i64>> = HashMap::new();
    for (id, order, _) in &rows {
        by_order.entry(order).or_default().push(*id);
    }
    for (order, ids) in by_order {
        let positions: Vec<usize> = ids
            .iter()
            .map(|id| first_seen[&format!("ipnsync-{id}")])
            .collect();
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "order {order} updates out of order"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let db = dir.path().join("term.db");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, lyra_config(port, &db, "", "")).unwrap();
    let mut daemon = spawn_daemon(&config);
    wait_listening(port).await;
    let next_order = Arc::new(AtomicUsize::new(700_000));
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(client(
                port,
                next_order.clone(),
                acked.clone(),
                stop.clone(),
            ))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    terminate(&daemon);
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || daemon.wait().unwrap())
        .await
        .unwrap();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(25),
        "within the stop timeout"
    );
    let acked = acked.lock().unwrap().clone();
    assert!(!acked.is_empty());
    let conn = rusqlite::Connection::open(&db).unwrap();
    let stored: i64 = conn
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert!(
        stored as usize >= acked.len(),
        "{stored} stored < {} acknowledged",
        acked.len()
    );
    for (order, step) in &acked {
        let status = if *step == "review" {
            "AUTHORISED_TO_VALIDATE"
        } else {
            "AUTHORISED"
        };
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM events WHERE order_ref = ?1 AND status = ?2",
                rusqlite::params![order.to_string(), status],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "acknowledged {order}/{step} lost");
    }
    // The WAL was checkpointed on the way out.
    let wal = std::fs::metadata(dir.path().join("term.db-wal"))
        .map(|m| m.len())
        .unwrap_or(0);
    assert_eq!(wal, 0, "WAL truncated at shutdown");
}
