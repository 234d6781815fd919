//! Pre-fills a database with N realistic stored notifications, quickly and
//! not via HTTP, so the load generator can measure a daemon with history
//! (`loadgen --db PATH`).
//!
//! Each notification is a unique 68-field Lyra form IPN (≈ 1.9 KB, the
//! fixture with its order id, transaction uuid/number and amount changed),
//! parsed and normalised by the real provider code and committed by the real
//! writer (same schema, same indexes, same group commit), so the database is
//! what a daemon that took N notifications would hold. Signing is skipped
//! (nothing verifies a prefilled body). Order references and transaction
//! uuids count from START (default 1); the load generator's uuids carry a
//! high tag, so its notifications are never duplicates of prefilled ones.
//! Several runs with different STARTs add to one database.
//!
//! `cargo run --release --example prefill -- PATH N [START [AGE_DAYS]]`
//!
//! AGE_DAYS (default 0) dates the deliveries that many days back, so
//! retention (`[retention] bodies_after`) has old bodies to clear while
//! the load generator runs (`loadgen --config-extra`).
//!
//! Prints the rate and the bytes stored per notification (file size / N,
//! after a checkpoint).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use ipnsync::providers::form::{self, Form};
use ipnsync::providers::lyra;
use ipnsync::store::{self, NewNotification};

const SUBMITTERS: u64 = 512;

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(n)) = (args.next(), args.next().and_then(|a| a.parse::<u64>().ok()))
    else {
        eprintln!("usage: prefill PATH N [START]");
        std::process::exit(2);
    };
    let start: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let age_days: i64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(0);
    let path = PathBuf::from(path);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(fill(path, start, n, age_days * 86_400_000));
}

async fn fill(path: PathBuf, start: u64, n: u64, age_ms: i64) {
    let template = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/lyra-form/authorised.txt"
    ))
    .unwrap();
    let template: Vec<(String, String)> = form::parse(&template)
        .unwrap()
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let template = Arc::new(template);

    let conn = store::open_writer(&path).unwrap();
    let (writer, thread) =
        store::writer::spawn(conn, 16_384, 1024, Arc::new(tokio::sync::Notify::new()));
    let began = Instant::now();
    let mut tasks = Vec::new();
    for lane in 0..SUBMITTERS.min(n) {
        let w = writer.clone();
        let template = template.clone();
        tasks.push(tokio::spawn(async move {
            let mut i = lane;
            while i < n {
                w.submit(notification(&template, start + i, age_ms))
                    .await
                    .unwrap();
                i += SUBMITTERS;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    drop(writer);
    thread.join().unwrap();
    let secs = began.elapsed().as_secs_f64();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let events: u64 = conn
        .query_row("SELECT MAX(id) FROM events", [], |r| r.get(0))
        .unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    println!(
        "prefilled {n} notifications in {secs:.1} s ({:.0}/s); database {:.1} MiB, {events} events, {:.0} bytes per notification",
        n as f64 / secs,
        size as f64 / 1_048_576.0,
        size as f64 / events as f64
    );
}

fn notification(template: &[(String, String)], id: u64, age_ms: i64) -> NewNotification {
    let pairs = template.iter().map(|(k, v)| {
        let v = match k.as_str() {
            "vads_order_id" => id.to_string(),
            "vads_trans_uuid" => format!("{id:032x}"),
            "vads_trans_id" => format!("{:06}", id % 900_000),
            "vads_amount" | "vads_effective_amount" => format!("{}", 100 + id % 50_000),
            _ => v.clone(),
        };
        (k.clone(), v)
    });
    let body = Form::from_pairs(pairs).encode();
    let parsed = form::parse(body.as_bytes()).unwrap();
    let notification = lyra::form_notification(&parsed).unwrap();
    NewNotification {
        source: "lyra".into(),
        shop: None,
        order_ref: notification.order_ref.clone(),
        event_key: notification.event_key(),
        notification,
        received_at: store::now_ms() - age_ms,
        peer: "127.0.0.1:40000".into(),
        headers: r#"{"content-type":"application/x-www-form-urlencoded","user-agent":"prefill"}"#
            .into(),
        body: Bytes::from(body),
    }
}
