//! Outbox drain benchmark: how many order updates per second the dispatcher
//! pushes to a local fake OpenCart 3 shop (session reused, one login).
//!
//! `cargo run --release --example drain -- [UPDATES] [CONCURRENCY]`

#[path = "../tests/support/fake_opencart.rs"]
#[allow(dead_code)]
mod fake_opencart;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ipnsync::config::{Config, SecretEnv};
use ipnsync::domain::{Facts, LyraFacts, Notification, Provider};
use ipnsync::store::{self, NewNotification};

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let updates: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5000);
    let concurrency: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4);

    let shop = fake_opencart::start(fake_opencart::Version::OpenCart3, "bench-key").await;
    for id in 1..=updates {
        shop.add_order(id, 1);
    }
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        r#"
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
    let mut config = Config::parse(&toml, &SecretEnv::default()).unwrap();
    config.database = dir.path().join("drain.db").into();

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

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let db = config.database.clone();
    let started = Instant::now();
    let daemon = tokio::spawn(ipnsync::run(config, listener, async {
        let _ = stopped.await;
    }));
    let reader = rusqlite::Connection::open(db.sqlite_path().unwrap()).unwrap();
    loop {
        let delivered: u64 = reader
            .query_row(
                "SELECT COUNT(*) FROM outbox WHERE state = 'delivered'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        if delivered == updates {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let elapsed = started.elapsed();
    let _ = stop.send(());
    daemon.await.unwrap().unwrap();
    let stored = (1..=updates)
        .filter(|id| shop.history(*id).len() == 1)
        .count();
    let dupes = (1..=updates)
        .filter(|id| shop.history(*id).len() > 1)
        .count();
    eprintln!("orders updated once: {stored}, more than once: {dupes}");
    println!(
        "drained {updates} updates to fake OpenCart 3 in {:.2} s: {:.0} pushes/s (concurrency {concurrency}, logins {}, every order updated once: {})",
        elapsed.as_secs_f64(),
        updates as f64 / elapsed.as_secs_f64(),
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
