//! Outbox drain benchmark: how many order updates per second the dispatcher
//! pushes to a local fake OpenCart 3 shop (session reused, one login).
//!
//! `cargo run --release --example drain -- [UPDATES] [CONCURRENCY] [--postgres URL] [--instances K] [--bin PATH]`
//!
//! By default the daemon runs inside this process, on a SQLite file.
//! `--postgres URL` puts the database on PostgreSQL instead (issue 16): URL
//! names a server and a user allowed to create databases (like
//! `IPNSYNC_TEST_PG`); the run creates a fresh database and drops it at the
//! end. `--instances K` runs K daemons as child processes
//! (`target/release/ipnsync serve`, or `--bin`) on the one database, so K
//! dispatchers share the outbox through their claims; `--instances 1`
//! measures one child daemon the same way (SQLite or PostgreSQL).

#[path = "../tests/support/fake_opencart.rs"]
#[allow(dead_code)]
mod fake_opencart;
#[path = "common/scratch_pg.rs"]
#[allow(dead_code)]
mod scratch_pg;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ipnsync::config::{Config, SecretEnv};
use ipnsync::domain::{Facts, LyraFacts, Notification, Provider};
use ipnsync::store::{self, NewNotification};

#[tokio::main]
async fn main() {
    let mut positional = Vec::new();
    let mut postgres = None;
    let mut instances: Option<usize> = None;
    let mut bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/ipnsync");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next().unwrap_or_else(|| {
                eprintln!("{arg} needs a value");
                std::process::exit(2)
            })
        };
        match arg.as_str() {
            "--postgres" => postgres = Some(value()),
            "--instances" => instances = Some(value().parse().expect("--instances K")),
            "--bin" => bin = value().into(),
            _ => positional.push(arg),
        }
    }
    let mut positional = positional.into_iter();
    let updates: u64 = positional
        .next()
        .and_then(|a| a.parse().ok())
        .unwrap_or(5000);
    let concurrency: usize = positional.next().and_then(|a| a.parse().ok()).unwrap_or(4);
    if instances == Some(0) || (instances.unwrap_or(1) > 1 && postgres.is_none()) {
        eprintln!("--instances: at least 1, and more than 1 only with --postgres");
        std::process::exit(2);
    }
    let pg = postgres
        .as_deref()
        .map(|url| scratch_pg::ScratchPg::create(url, "drain"));

    let shop = fake_opencart::start(fake_opencart::Version::OpenCart3, "bench-key").await;
    // Orders of the notifications' amount and currency (29.90 EUR): the
    // pushes pass the amount check and move the orders as in production.
    for id in 1..=updates {
        shop.add_order_with_total(id, 1, "29.9000", "EUR", "1.00000000");
    }
    let dir = tempfile::tempdir().unwrap();
    let database_lines = match &pg {
        Some(pg) => pg.config_lines(),
        None => format!(
            "database = {:?}\n",
            dir.path().join("drain.db").display().to_string()
        ),
    };
    let toml = format!(
        r#"{database_lines}
[admin]
listen = "off"
[dispatch]
poll_interval = "100ms"
[[sources]]
name = "lyra"
kind = "lyra-form"
path = "/ipn/lyra"
mode = "TEST"
test_key = "1122334455667788"
shop = "oc"
[[shops]]
name = "oc"
kind = "opencart3"
base_url = "{}"
username = "{}"
key = "bench-key"
concurrency = {concurrency}
"#,
        shop.base_url(),
        fake_opencart::USERNAME
    );
    let config = Config::parse(&toml, &SecretEnv::default()).unwrap();

    // Fill the outbox through the real writer, before the dispatcher runs.
    let conn = store::open_writer(&config.database).unwrap();
    let (writer, thread) =
        store::writer::spawn(conn, 8192, 512, Arc::new(tokio::sync::Notify::new()));
    let fill = Instant::now();
    // 256 concurrent submitters, like 256 platform connections.
    let mut tasks = Vec::new();
    for first in 1..=256u64.min(updates) {
        let w = writer.clone();
        tasks.push(tokio::spawn(async move {
            let mut id = first;
            while id <= updates {
                w.submit(notification(id)).await.unwrap();
                id += 256;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    drop(writer);
    thread.join().unwrap();
    eprintln!(
        "writer alone: {updates} notifications decided and committed in {:.2} s ({:.0}/s)",
        fill.elapsed().as_secs_f64(),
        updates as f64 / fill.elapsed().as_secs_f64()
    );

    let db = config.database.clone();
    let started;
    let stop_daemons: Box<dyn FnOnce() -> tokio::task::JoinHandle<()>> = match instances {
        // In this process.
        None => {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            started = Instant::now();
            let daemon = tokio::spawn(ipnsync::run(config, listener, async {
                let _ = stopped.await;
            }));
            Box::new(move || {
                let _ = stop.send(());
                tokio::spawn(async move { daemon.await.unwrap().unwrap() })
            })
        }
        // K child processes on the one database, started together (the
        // schema is already there: the writer above applied it).
        Some(k) => {
            started = Instant::now();
            let children: Vec<std::process::Child> = (0..k)
                .map(|i| {
                    let port = std::net::TcpListener::bind("127.0.0.1:0")
                        .unwrap()
                        .local_addr()
                        .unwrap()
                        .port();
                    let path = dir.path().join(format!("daemon{i}.toml"));
                    std::fs::write(&path, format!("listen = \"127.0.0.1:{port}\"\n{toml}"))
                        .unwrap();
                    std::process::Command::new(&bin)
                        .args(["serve", "--config"])
                        .arg(&path)
                        .env(
                            "RUST_LOG",
                            std::env::var("RUST_LOG").unwrap_or("warn".into()),
                        )
                        .stdout(std::process::Stdio::null())
                        .spawn()
                        .unwrap_or_else(|e| {
                            panic!("{}: {e} (run `cargo build --release` first)", bin.display())
                        })
                })
                .collect();
            Box::new(move || {
                tokio::task::spawn_blocking(move || {
                    for child in &children {
                        let _ = std::process::Command::new("kill")
                            .args(["-TERM", &child.id().to_string()])
                            .status();
                    }
                    for mut child in children {
                        let _ = child.wait();
                    }
                })
            })
        }
    };
    let reader = store::open_reader(&db).unwrap();
    loop {
        let delivered: i64 = reader
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE state = 'delivered'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if delivered as u64 == updates {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    drop(reader);
    stop_daemons().await.unwrap();
    let stored = (1..=updates)
        .filter(|id| shop.history(*id).len() == 1)
        .count();
    let dupes = (1..=updates)
        .filter(|id| shop.history(*id).len() > 1)
        .count();
    eprintln!("orders updated once: {stored}, more than once: {dupes}");
    println!(
        "drained {updates} updates to fake OpenCart 3 in {:.2} s: {:.0} pushes/s ({}, concurrency {concurrency}, logins {}, every order updated once: {})",
        elapsed.as_secs_f64(),
        updates as f64 / elapsed.as_secs_f64(),
        match (&pg, instances) {
            (None, None) => "SQLite, daemon in this process".to_owned(),
            (Some(_), None) => "PostgreSQL, daemon in this process".to_owned(),
            (None, Some(_)) => "SQLite, 1 daemon process".to_owned(),
            (Some(_), Some(k)) => format!(
                "PostgreSQL, {k} daemon process{} on one database",
                if k == 1 { "" } else { "es" }
            ),
        },
        shop.logins(),
        stored as u64 == updates
    );
}

fn notification(id: u64) -> NewNotification {
    let n = Notification {
        provider: Provider::LyraForm,
        order_ref: id.to_string(),
        transaction_id: format!("{id:032x}"),
        transaction_number: format!("{:06}", id % 1_000_000),
        amount_minor: Some(2990),
        currency: "978".into(),
        facts: Facts::Lyra(LyraFacts {
            trans_status: "AUTHORISED".into(),
            operation_type: "DEBIT".into(),
            url_check_src: "PAY".into(),
            ctx_mode: "TEST".into(),
            ..LyraFacts::default()
        }),
    };
    NewNotification {
        source: "lyra".into(),
        shop: Some("oc".into()),
        order_ref: id.to_string(),
        event_key: n.event_key(),
        notification: n,
        received_at: store::now_ms(),
        peer: "127.0.0.1:1".into(),
        headers: "{}".into(),
        body: Bytes::from_static(b"bench"),
    }
}
