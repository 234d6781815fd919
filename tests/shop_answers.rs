//! Every shop client reads at most `MAX_ANSWER_BYTES` of an answer: a shop
//! (or whatever answers in its place) that sends a flood gets a transient
//! error and a closed connection, not hundreds of MB held per push.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ipnsync::config::{default_statuses, Secret, ShopConfig, ShopKind, ShopStatus};
use ipnsync::domain::Outcome;
use ipnsync::shops::{read_body_capped, ShopClient, ShopUpdate, MAX_ANSWER_BYTES};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the flood server sends per answer, unless the client hangs up.
const FLOOD_BYTES: usize = 64 * 1024 * 1024;

/// Answers every request with `status` and a close-delimited body of
/// `body_len` bytes (`Content-Length` too when `declare` is set); counts
/// the body bytes it managed to write.
struct Flood {
    url: String,
    written: Arc<AtomicUsize>,
}

async fn flood(status: &'static str, body_len: usize, declare: bool) -> Flood {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let written = Arc::new(AtomicUsize::new(0));
    let counter = written.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let counter = counter.clone();
            tokio::spawn(async move {
                // The request head, and whatever body came with it.
                let mut seen = Vec::new();
                let mut buf = [0u8; 8192];
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let length = if declare {
                    format!("Content-Length: {body_len}\r\n")
                } else {
                    String::new()
                };
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n{length}Connection: close\r\n\r\n"
                );
                if socket.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let chunk = vec![b'x'; 64 * 1024];
                let mut left = body_len;
                while left > 0 {
                    let n = left.min(chunk.len());
                    if socket.write_all(&chunk[..n]).await.is_err() {
                        return;
                    }
                    counter.fetch_add(n, Ordering::Relaxed);
                    left -= n;
                }
                let _ = socket.shutdown().await;
            });
        }
    });
    Flood { url, written }
}

fn config(kind: ShopKind, url: &str) -> ShopConfig {
    ShopConfig {
        name: "flooded".into(),
        kind,
        base_url: url.into(),
        username: "ipnsync".into(),
        credential: Some(Secret::new("a-credential-0123456789")),
        token: None,
        concurrency: 1,
        timeout: Duration::from_secs(20),
        connect_timeout: Duration::from_secs(2),
        notify: Vec::new(),
        statuses: default_statuses(kind),
        store_id: 0,
        language: "en-gb".into(),
        currency: "USD".into(),
        lookup_by_increment_id: true,
        amount_tolerance: None,
        order_rules: Default::default(),
    }
}

fn update(kind: ShopKind) -> ShopUpdate {
    ShopUpdate {
        outbox_id: 1,
        event_id: 1,
        order_ref: "100000001".into(),
        outcome: Outcome::Accepted,
        previous_outcome: None,
        status: default_statuses(kind)
            .get(&Outcome::Accepted)
            .cloned()
            .unwrap_or(ShopStatus::Id(2)),
        comment: "Payment accepted".into(),
        notify: false,
        provider: "lyra".into(),
        transaction_id: "abc".into(),
        provider_status: "AUTHORISED".into(),
        amount: None,
        customer_text: String::new(),
        earlier_attempt_unknown: false,
        by_operator: false,
    }
}

/// Far less than the flood got through: the client hung up early (the
/// socket buffers take a few MB at most).
fn assert_cut_short(what: &str, written: usize) {
    assert!(
        written < 16 * 1024 * 1024,
        "{what}: the client read {written} bytes of a {FLOOD_BYTES}-byte answer"
    );
}

#[tokio::test]
async fn every_shop_client_stops_reading_a_flood() {
    for kind in [
        ShopKind::OpenMage,
        ShopKind::OpenCart3,
        ShopKind::OpenCart41,
        ShopKind::Magento2,
    ] {
        let server = flood("200 OK", FLOOD_BYTES, false).await;
        let client = ShopClient::new(&config(kind, &server.url));
        let err = client
            .push(&update(kind))
            .await
            .expect_err("a flood is no answer");
        assert!(err.is_transient(), "{kind:?}: {err}");
        assert!(err.to_string().contains("larger than"), "{kind:?}: {err}");
        assert_cut_short(&format!("{kind:?}"), server.written.load(Ordering::Relaxed));
    }
    // A webhook receiver's error page is read for a snippet only.
    let server = flood("500 Internal Server Error", FLOOD_BYTES, false).await;
    let client = ShopClient::new(&config(ShopKind::Webhook, &server.url));
    let err = client.push(&update(ShopKind::Webhook)).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().starts_with("HTTP 500"), "{err}");
    assert_cut_short("webhook", server.written.load(Ordering::Relaxed));
}

#[tokio::test]
async fn read_body_capped_reads_up_to_the_cap() {
    let http = reqwest::Client::new();
    // Exactly the cap: read whole.
    let server = flood("200 OK", MAX_ANSWER_BYTES, false).await;
    let response = http.get(&server.url).send().await.unwrap();
    let body = read_body_capped(response, MAX_ANSWER_BYTES).await.unwrap();
    assert_eq!(body.len(), MAX_ANSWER_BYTES);
    // One byte more, sent without a length: refused once it arrives.
    let server = flood("200 OK", MAX_ANSWER_BYTES + 1, false).await;
    let response = http.get(&server.url).send().await.unwrap();
    let err = read_body_capped(response, MAX_ANSWER_BYTES)
        .await
        .unwrap_err();
    assert!(err.is_transient());
    assert_eq!(
        err.to_string(),
        format!("shop answer larger than {MAX_ANSWER_BYTES} bytes (HTTP 200)")
    );
    // Declared too large: refused before reading.
    let server = flood("502 Bad Gateway", FLOOD_BYTES, true).await;
    let response = http.get(&server.url).send().await.unwrap();
    let err = read_body_capped(response, 1024).await.unwrap_err();
    assert!(err
        .to_string()
        .contains("larger than 1024 bytes (HTTP 502)"));
    assert_cut_short("declared", server.written.load(Ordering::Relaxed));
}
