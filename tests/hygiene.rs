//! HTTP hygiene: slow clients cannot hold a connection for ever, and the
//! connection limit holds.

mod support;

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use ipnsync::http::Limits;
use support::daemon::{config, fixture, Daemon};

const DEMO: &str = ipnsync::config::DEFAULT_CONFIG;

fn limits() -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(500),
        body_read_timeout: Duration::from_millis(500),
        max_connections: 2,
        max_connections_per_peer: 2,
        drain_timeout: Duration::from_secs(5),
    }
}

async fn start(dir: &std::path::Path) -> Daemon {
    Daemon::start_with(
        config(DEMO, dir),
        ipnsync::RunOptions {
            limits: Some(limits()),
            ..Default::default()
        },
    )
    .await
}

/// Reads until the server closes the connection or `limit` passes.
async fn read_until_closed(s: &mut TcpStream, limit: Duration) -> Option<String> {
    let mut out = Vec::new();
    match tokio::time::timeout(limit, s.read_to_end(&mut out)).await {
        Ok(_) => Some(String::from_utf8_lossy(&out).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn headers_sent_byte_by_byte_do_not_hold_a_connection() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path()).await;
    let mut s = TcpStream::connect(d.addr).await.unwrap();
    let started = Instant::now();
    let request = b"POST /ipn/lyra HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n";
    let closed = async {
        for byte in request {
            if s.write_all(&[*byte]).await.is_err() {
                break; // the server hung up on us: what we want
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        read_until_closed(&mut s, Duration::from_secs(5)).await
    };
    let answer = closed.await.expect("the server closes a slow connection");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    d.stop().await;
}

#[tokio::test]
async fn a_body_that_never_arrives_times_out_with_408() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path()).await;
    let mut s = TcpStream::connect(d.addr).await.unwrap();
    s.write_all(
        b"POST /ipn/lyra HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\nvads_amount=1",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let mut buf = [0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("answered before the client gave up")
        .unwrap();
    let answer = String::from_utf8_lossy(&buf[..n]);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(d.count("SELECT COUNT(*) FROM deliveries"), 0);
    d.stop().await;
}

#[tokio::test]
async fn connections_over_the_limit_are_closed_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path()).await;
    // Two idle keep-alive connections take both slots…
    let a = TcpStream::connect(d.addr).await.unwrap();
    let b = TcpStream::connect(d.addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // …so a third is closed without an answer.
    let mut c = TcpStream::connect(d.addr).await.unwrap();
    let _ = c
        .write_all(b"GET /ipn/lyra HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let answer = read_until_closed(&mut c, Duration::from_secs(2)).await;
    assert_eq!(answer.as_deref(), Some(""), "closed without an answer");

    // Once a slot is free, requests are served again.
    drop(a);
    drop(b);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        d.post_form("/ipn/lyra", fixture("lyra-form/authorised.txt"))
            .await
            .0,
        200
    );
    d.stop().await;
}

#[tokio::test]
async fn an_idle_connection_does_not_keep_its_slot() {
    let dir = tempfile::tempdir().unwrap();
    let d = start(dir.path()).await;
    let mut idle = TcpStream::connect(d.addr).await.unwrap();
    let closed = read_until_closed(&mut idle, Duration::from_secs(5)).await;
    assert_eq!(
        closed.as_deref(),
        Some(""),
        "idle connection closed by the server"
    );
    d.stop().await;
}
