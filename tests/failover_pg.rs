//! Failover on PostgreSQL (issue 16): two real daemons on one database,
//! one of them killed mid-load and mid-push; the same event at both at
//! once; a database that becomes unreachable and comes back.
//!
//! A PostgreSQL-only binary (its name ends in `_pg`): without
//! `IPNSYNC_TEST_PG` it skips, loudly.

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Response, StatusCode};
use ipnsync::store::Database;
use support::backend::{config_line, connect, fresh_postgres};
use support::daemon::{fixture, resign, set};
use support::process::{free_port, wait_listening};

// ---------------------------------------------------------------------
// A slow shop that records when each push started and ended.

#[derive(Debug, Clone)]
struct Push {
    /// `webhook-id`: `ipnsync-<outbox id>`.
    id: String,
    order: String,
    start: Instant,
    /// Set when the answer went out, or when the request was dropped (the
    /// sender died).
    end: Option<Instant>,
}

#[derive(Clone)]
struct SlowShop {
    url: String,
    pushes: Arc<Mutex<Vec<Push>>>,
}

/// Sets the push's end when the handler finishes or is dropped.
struct EndGuard {
    pushes: Arc<Mutex<Vec<Push>>>,
    index: usize,
}

impl Drop for EndGuard {
    fn drop(&mut self) {
        let mut p = self.pushes.lock().unwrap_or_else(|e| e.into_inner());
        p[self.index].end.get_or_insert_with(Instant::now);
    }
}

impl SlowShop {
    async fn start(delay: Duration) -> SlowShop {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let pushes: Arc<Mutex<Vec<Push>>> = Arc::default();
        let recorded = pushes.clone();
        tokio::spawn(support::http::serve(listener, move |req| {
            let pushes = recorded.clone();
            async move {
                let start = Instant::now();
                let id = req
                    .headers()
                    .get("webhook-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                let body = req
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let json: serde_json::Value =
                    serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                let order = json["order"].as_str().unwrap_or("").to_owned();
                let index = {
                    let mut p = pushes.lock().unwrap();
                    p.push(Push {
                        id,
                        order,
                        start,
                        end: None,
                    });
                    p.len() - 1
                };
                let _guard = EndGuard { pushes, index };
                tokio::time::sleep(delay).await;
                Response::builder()
                    .status(StatusCode::NO_CONTENT)
                    .body(Full::new(Bytes::new()))
                    .unwrap()
            }
        }));
        SlowShop { url, pushes }
    }

    fn pushes(&self) -> Vec<Push> {
        self.pushes.lock().unwrap().clone()
    }

    fn in_flight(&self) -> usize {
        self.pushes().iter().filter(|p| p.end.is_none()).count()
    }
}

// ---------------------------------------------------------------------
// Real daemons.

/// A daemon child process, SIGKILLed if the test ends without stopping it.
struct Proc {
    child: Option<Child>,
    port: u16,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap(); // SIGKILL: no drain, nothing released
            c.wait().unwrap();
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/ipn/lyra", self.port)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

fn write_config(
    dir: &std::path::Path,
    name: &str,
    db: &Database,
    shop: &str,
) -> (std::path::PathBuf, u16, u16) {
    let (port, admin) = (free_port(), free_port());
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(
        &path,
        format!(
            r#"listen = "127.0.0.1:{port}"
{}
[admin]
listen = "127.0.0.1:{admin}"
[dispatch]
retry_schedule = ["100ms", "200ms", "400ms", "400ms", "400ms", "400ms", "400ms", "400ms"]
poll_interval = "100ms"
claim_lease = "1s"
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
base_url = "{shop}"
key = "failover-secret"
concurrency = 4
timeout = "5s"
"#,
            config_line(db)
        ),
    )
    .unwrap();
    (path, port, admin)
}

async fn spawn(config: &std::path::Path, port: u16, admin: u16) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_ipnsync"))
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("daemon starts");
    let proc = Proc {
        child: Some(child),
        port,
    };
    wait_listening(port).await;
    eventually_ready(admin).await;
    proc
}

/// `/readyz` of a daemon's admin listener.
async fn ready(admin: u16) -> u16 {
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{admin}/readyz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

// ---------------------------------------------------------------------
// Notifications and checks.

const STEPS: [(&str, &str); 2] = [
    ("lyra-form/to-validate.txt", "AUTHORISED_TO_VALIDATE"),
    ("lyra-form/validated-merch-bo.txt", "AUTHORISED"),
];

fn ipn(template: &str, order: usize) -> Vec<u8> {
    resign(&fixture(template), |p| {
        set(p, "vads_order_id", &order.to_string());
        set(p, "vads_trans_uuid", &format!("{order:032x}"));
    })
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn post(http: &reqwest::Client, url: &str, body: Vec<u8>) -> Result<u16, String> {
    http.post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

/// Polls `f` every 50 ms until it holds; panics after `limit`.
async fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let started = Instant::now();
    while !f() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn count(db: &Database, sql: &str) -> i64 {
    connect(db).query_row(sql, [], |r| r.get(0)).unwrap()
}

fn pending(db: &Database) -> i64 {
    count(db, "SELECT COUNT(*) FROM outbox WHERE state <> 'delivered'")
}

/// (order, status) → events rows.
#[allow(clippy::let_and_return)] // the rows borrow the statement
fn events_per_key(db: &Database) -> HashMap<(String, String), i64> {
    let conn = connect(db);
    let mut stmt = conn
        .prepare("SELECT order_ref, status, COUNT(*) FROM events GROUP BY order_ref, status")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows
}

/// Every outbox row: (id, order, event id).
#[allow(clippy::let_and_return)] // the rows borrow the statement
fn outbox_rows(db: &Database) -> Vec<(i64, String, i64)> {
    let conn = connect(db);
    let mut stmt = conn
        .prepare("SELECT id, order_ref, event_id FROM outbox ORDER BY id")
        .unwrap();
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows
}

/// Pending outbox rows whose claim names `pid_part` (`:<pid>:`).
#[allow(clippy::let_and_return)] // the rows borrow the statement
fn claimed_by(db: &Database, pid_part: &str) -> Vec<i64> {
    let conn = connect(db);
    let mut stmt = conn
        .prepare("SELECT id FROM outbox WHERE state = 'pending' AND claimed_by LIKE ?1")
        .unwrap();
    let rows = stmt
        .query_map([format!("%{pid_part}%")], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows
}

fn outbox_id(push: &Push) -> i64 {
    push.id
        .strip_prefix("ipnsync-")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("webhook-id {:?}", push.id))
}

/// Per order: the shop saw its updates in outbox order (a repeat of the
/// same update allowed, an earlier one after a later one never), every
/// outbox row arrived, and no two pushes of one order overlapped in time.
fn check_shop(rows: &[(i64, String, i64)], pushes: &[Push]) {
    let ids: HashSet<i64> = rows.iter().map(|r| r.0).collect();
    let mut by_order: BTreeMap<&str, Vec<&Push>> = BTreeMap::new();
    for p in pushes {
        assert!(ids.contains(&outbox_id(p)), "{} is no outbox row", p.id);
        by_order.entry(&p.order).or_default().push(p);
    }
    let seen: HashSet<i64> = pushes.iter().map(outbox_id).collect();
    for (id, order, _) in rows {
        assert!(
            seen.contains(id),
            "update #{id} of order {order} never arrived"
        );
    }
    for (order, mut list) in by_order {
        list.sort_by_key(|p| p.start);
        for w in list.windows(2) {
            assert!(
                outbox_id(w[0]) <= outbox_id(w[1]),
                "order {order}: {} arrived after {}",
                w[1].id,
                w[0].id
            );
            let end = w[0].end.expect("every push ended");
            assert!(
                end <= w[1].start,
                "order {order}: {} began before {} ended (two pushers at once)",
                w[1].id,
                w[0].id
            );
        }
    }
}

/// Drops a test database (after its daemons are gone).
fn drop_database(db: &Database) {
    let Database::Postgres(pg) = db else { return };
    let name = pg.url.rsplit('/').next().unwrap().to_owned();
    let base = std::env::var("IPNSYNC_TEST_PG").unwrap();
    std::thread::spawn(move || {
        let config: postgres::Config = base.parse().unwrap();
        let mut client = config.connect(postgres::NoTls).unwrap();
        let _ = client.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    })
    .join()
    .unwrap();
}

// ---------------------------------------------------------------------

/// One client: takes the next order and sends its steps in sequence, each
/// to A or B in turn; a request that fails (A killed) goes to B, as a
/// platform retries. Records what was acknowledged.
async fn client(
    urls: [String; 2],
    next: Arc<AtomicUsize>,
    last: usize,
    acked: Arc<Mutex<HashSet<(usize, &'static str)>>>,
    failed_over: Arc<AtomicUsize>,
) {
    let http = http();
    loop {
        let order = next.fetch_add(1, Ordering::Relaxed);
        if order >= last {
            return;
        }
        for (i, (template, status)) in STEPS.iter().enumerate() {
            let body = ipn(template, order);
            let mut target = (order + i) % 2;
            let mut tries = 0;
            loop {
                match post(&http, &urls[target], body.clone()).await {
                    Ok(s) if (200..300).contains(&s) => {
                        acked.lock().unwrap().insert((order, status));
                        // Paced, so the load outlasts the first pushes.
                        tokio::time::sleep(Duration::from_millis(150)).await;
                        break;
                    }
                    other => {
                        tries += 1;
                        assert!(tries < 50, "order {order}: never acknowledged ({other:?})");
                        if target == 0 {
                            failed_over.fetch_add(1, Ordering::Relaxed);
                        }
                        target = 1; // B stays up
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_daemons_one_killed_mid_load_and_mid_push_lose_and_double_nothing() {
    let db = fresh_postgres();
    let shop = SlowShop::start(Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    let (cfg_a, port_a, admin_a) = write_config(dir.path(), "a", &db, &shop.url);
    let (cfg_b, port_b, admin_b) = write_config(dir.path(), "b", &db, &shop.url);
    let mut a = spawn(&cfg_a, port_a, admin_a).await;
    let b = spawn(&cfg_b, port_b, admin_b).await;

    const FIRST: usize = 800_000;
    const ORDERS: usize = 30;
    let next = Arc::new(AtomicUsize::new(FIRST));
    let acked = Arc::new(Mutex::new(HashSet::new()));
    let failed_over = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..6)
        .map(|_| {
            tokio::spawn(client(
                [a.url(), b.url()],
                next.clone(),
                FIRST + ORDERS,
                acked.clone(),
                failed_over.clone(),
            ))
        })
        .collect();

    // Kill A while orders are still coming in and pushes are in flight,
    // some of them A's (claimed by A in the database).
    let a_claim = format!(":{}:", a.pid());
    let started = Instant::now();
    loop {
        // A push of a row A holds is at the shop right now.
        let busy = acked.lock().unwrap().len() + 12 < ORDERS * STEPS.len() && {
            let held: HashSet<i64> = claimed_by(&db, &a_claim).into_iter().collect();
            shop.pushes()
                .iter()
                .any(|p| p.end.is_none() && held.contains(&outbox_id(p)))
        };
        if busy {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "A never had a push at the shop mid-load"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let in_flight_at_kill = shop.in_flight();
    a.kill9();

    for c in clients {
        c.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert_eq!(
        acked.len(),
        ORDERS * STEPS.len(),
        "every notification acknowledged in the end"
    );

    // B takes A's claims over once their lease ends, and drains it all.
    eventually("every update delivered", Duration::from_secs(120), || {
        pending(&db) == 0
    })
    .await;
    eventually("every push ended", Duration::from_secs(30), || {
        shop.in_flight() == 0
    })
    .await;

    // Every acknowledged notification is stored exactly once.
    let events = events_per_key(&db);
    for (order, status) in &acked {
        let n = events
            .get(&(order.to_string(), status.to_string()))
            .copied()
            .unwrap_or(0);
        assert_eq!(n, 1, "order {order} {status}: {n} events rows");
    }
    assert_eq!(
        events.len(),
        acked.len(),
        "nothing stored that was not sent"
    );
    let rows = outbox_rows(&db);
    assert!(
        rows.len() >= ORDERS,
        "{} updates for {ORDERS} orders",
        rows.len()
    );
    let pushes = shop.pushes();
    check_shop(&rows, &pushes);
    let repeats = pushes.len()
        - pushes
            .iter()
            .map(|p| p.id.clone())
            .collect::<HashSet<_>>()
            .len();
    eprintln!(
        "{} acknowledged, {} re-sent to B, {} updates, {} pushes in flight at the kill, {} repeated after it",
        acked.len(),
        failed_over.load(Ordering::Relaxed),
        rows.len(),
        in_flight_at_kill,
        repeats
    );

    // A restarted on the same config joins again; nothing is pushed twice
    // from then on.
    let restarted_at = Instant::now();
    let a = spawn(&cfg_a, port_a, admin_a).await;
    const MORE: usize = 10;
    let next = Arc::new(AtomicUsize::new(FIRST + ORDERS));
    let acked_more = Arc::new(Mutex::new(HashSet::new()));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            tokio::spawn(client(
                [a.url(), b.url()],
                next.clone(),
                FIRST + ORDERS + MORE,
                acked_more.clone(),
                failed_over.clone(),
            ))
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
    assert_eq!(acked_more.lock().unwrap().len(), MORE * STEPS.len());
    eventually("the new updates delivered", Duration::from_secs(60), || {
        pending(&db) == 0
    })
    .await;
    eventually("every push ended", Duration::from_secs(30), || {
        shop.in_flight() == 0
    })
    .await;
    let rows = outbox_rows(&db);
    let pushes = shop.pushes();
    check_shop(&rows, &pushes);
    let mut after: HashMap<String, usize> = HashMap::new();
    for p in pushes.iter().filter(|p| p.start >= restarted_at) {
        *after.entry(p.id.clone()).or_default() += 1;
    }
    assert!(after.len() >= MORE, "the new orders reached the shop");
    for (id, n) in after {
        assert_eq!(n, 1, "{id} pushed {n} times after A rejoined");
    }
    assert_eq!(events_per_key(&db).len(), (ORDERS + MORE) * STEPS.len());
    drop(a);
    drop(b);
    drop_database(&db);
}

async fn eventually_ready(admin: u16) {
    let started = Instant::now();
    while ready(admin).await != 200 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "daemon never ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_same_event_at_two_daemons_at_once_is_stored_once() {
    let db = fresh_postgres();
    let shop = SlowShop::start(Duration::from_millis(20)).await;
    let dir = tempfile::tempdir().unwrap();
    let (cfg_a, port_a, admin_a) = write_config(dir.path(), "a", &db, &shop.url);
    let (cfg_b, port_b, admin_b) = write_config(dir.path(), "b", &db, &shop.url);
    let a = spawn(&cfg_a, port_a, admin_a).await;
    let b = spawn(&cfg_b, port_b, admin_b).await;
    let http = http();
    let (url_a, url_b) = (a.url(), b.url());
    const ROUNDS: usize = 20;
    const FIRST: usize = 810_000;
    for order in FIRST..FIRST + ROUNDS {
        let body = ipn(STEPS[1].0, order);
        let (x, y) = tokio::join!(
            post(&http, &url_a, body.clone()),
            post(&http, &url_b, body.clone())
        );
        assert_eq!(x, Ok(200), "order {order} at A");
        assert_eq!(y, Ok(200), "order {order} at B");
    }
    eventually("every update delivered", Duration::from_secs(60), || {
        pending(&db) == 0
    })
    .await;
    eventually("every push ended", Duration::from_secs(30), || {
        shop.in_flight() == 0
    })
    .await;
    let conn = connect(&db);
    for order in FIRST..FIRST + ROUNDS {
        let order = order.to_string();
        let events: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM events WHERE order_ref = ?1",
                [&order],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(events, 1, "order {order}: one event");
        let deliveries: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.order_ref = ?1",
                [&order],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(deliveries, 2, "order {order}: both deliveries recorded");
        let updates: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE order_ref = ?1",
                [&order],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(updates, 1, "order {order}: one update");
    }
    drop(conn);
    let pushes = shop.pushes();
    check_shop(&outbox_rows(&db), &pushes);
    assert_eq!(pushes.len(), ROUNDS, "one shop update per event");
    drop(a);
    drop(b);
    drop_database(&db);
}

// ---------------------------------------------------------------------
// A TCP proxy in front of PostgreSQL that can be cut.

struct Proxy {
    port: u16,
    up: Arc<AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
}

impl Proxy {
    async fn start(upstream: String) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (cut, cuts) = tokio::sync::watch::channel(0u64);
        let is_up = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                // Seen before `up` is read: a cut that lands in between
                // still ends this connection (`cut` clears `up` first).
                let mut cuts = cuts.clone();
                cuts.borrow_and_update();
                if !is_up.load(Ordering::SeqCst) {
                    drop(inbound); // refused: closed at once
                    continue;
                }
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = tokio::net::TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Proxy { port, up, cut }
    }

    /// Drops every connection and refuses new ones.
    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unreachable_database_answers_503_and_recovers() {
    let db = fresh_postgres();
    let Database::Postgres(pg) = &db else {
        unreachable!()
    };
    let base: postgres::Config = std::env::var("IPNSYNC_TEST_PG").unwrap().parse().unwrap();
    let host = match base.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = base.get_ports().first().copied().unwrap_or(5432);
    let proxy = Proxy::start(format!("{host}:{port}")).await;
    let real = format!("@{host}:{port}/");
    assert!(pg.url.contains(&real), "{} names {real}", pg.url);
    let mut through = db.clone();
    if let Database::Postgres(p) = &mut through {
        p.url = p.url.replace(&real, &format!("@127.0.0.1:{}/", proxy.port));
    }
    let toml = format!(
        r#"{}
[[sources]]
name = "lyra"
kind = "lyra-form"
path = "/ipn/lyra"
mode = "TEST"
test_key = "1122334455667788"
"#,
        config_line(&through)
    );
    let config = ipnsync::config::Config::parse(&toml, &Default::default()).unwrap();
    let daemon = support::daemon::Daemon::start(config).await;
    let url = daemon.url("/ipn/lyra");
    let http = http();
    let readyz = format!("http://{}/readyz", daemon.admin);
    let readyz_status = || async {
        match http.get(&readyz).send().await {
            Ok(r) => {
                let status = r.status().as_u16();
                eprintln!(
                    "readyz: {status} {}",
                    r.text().await.unwrap_or_default().trim()
                );
                Ok(status)
            }
            Err(e) => Err(e.to_string()),
        }
    };
    let mut acked = Vec::new();

    const FIRST: usize = 820_000;
    // Up: stored, and ready once the dispatcher's first loop ran.
    assert_eq!(post(&http, &url, ipn(STEPS[0].0, FIRST)).await, Ok(200));
    acked.push(FIRST);
    let started = Instant::now();
    while readyz_status().await != Ok(200) {
        assert!(started.elapsed() < Duration::from_secs(30), "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Cut: 503 (the client's 10 s timeout would turn a hang into an error).
    proxy.cut();
    let cut_at = Instant::now();
    assert_eq!(post(&http, &url, ipn(STEPS[0].0, FIRST + 1)).await, Ok(503));
    let first_503 = cut_at.elapsed();
    assert_eq!(post(&http, &url, ipn(STEPS[0].0, FIRST + 2)).await, Ok(503));
    assert_eq!(readyz_status().await, Ok(503));

    // Restored: the platform's retries are taken and stored.
    proxy.restore();
    let restored_at = Instant::now();
    for order in [FIRST + 1, FIRST + 2, FIRST + 3] {
        let started = Instant::now();
        loop {
            match post(&http, &url, ipn(STEPS[0].0, order)).await {
                Ok(200) => break,
                Ok(503) => {}
                other => panic!("order {order}: {other:?} after the restore"),
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "order {order} never accepted after the restore"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        acked.push(order);
    }
    let recovered = restored_at.elapsed();
    let started = Instant::now();
    while readyz_status().await != Ok(200) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never ready again"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for order in &acked {
        let n: i64 = connect(&db)
            .query_row(
                "SELECT COUNT(*) FROM events WHERE order_ref = ?1",
                [order.to_string()],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(n, 1, "acknowledged order {order} stored once");
    }
    eprintln!(
        "first 503 after the cut in {first_503:?}; accepted again {recovered:?} after the restore"
    );
    daemon.stop().await;
    drop_database(&db);
}
