//! Fair admission: one peer address cannot take every connection slot.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use ipnsync::http::Limits;
use support::daemon::{config, fixture, Daemon};

const DEMO: &str = ipnsync::config::DEFAULT_CONFIG;

/// A greedy peer (127.0.0.1) opens three times as many idle connections as
/// the daemon serves in all; an honest peer (127.0.0.2) still gets its
/// notification stored. On a single global limit the honest peer's
/// connection was closed at accept.
#[tokio::test]
async fn a_greedy_peer_cannot_starve_an_honest_one() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        // Idle sockets would be kept for the whole test.
        header_read_timeout: Duration::from_secs(120),
        max_connections: 16,
        max_connections_per_peer: 4,
        ..Limits::default()
    };
    let d = Daemon::start_with(
        config(DEMO, dir.path()),
        ipnsync::RunOptions {
            limits: Some(limits),
            ..Default::default()
        },
    )
    .await;

    let mut greedy = Vec::new();
    for _ in 0..48 {
        greedy.push(TcpStream::connect(d.addr).await.unwrap());
    }
    // Every connection over its cap is closed by the daemon; the first four
    // stay open (they would only be cut by the header timeout).
    for (i, s) in greedy.iter_mut().enumerate().skip(4) {
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("greedy connection {i} was not closed"))
            .unwrap_or(0);
        assert_eq!(n, 0, "greedy connection {i} is closed without an answer");
    }

    let honest = reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .unwrap();
    for name in ["lyra-form/to-validate.txt", "lyra-form/refused.txt"] {
        let resp = honest
            .post(d.url("/ipn/lyra"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(fixture(name))
            .send()
            .await
            .expect("the honest peer is served");
        assert_eq!(resp.status(), 200, "{name}");
    }
    assert_eq!(
        d.count("SELECT COUNT(*) FROM deliveries WHERE peer LIKE '127.0.0.2:%'"),
        2
    );

    let (_, metrics) = d.admin_get("/metrics").await;
    assert!(
        metrics.contains(r#"ipnsync_connections_refused_total{reason="per_peer"}"#),
        "{metrics}"
    );
    drop(greedy);
    d.stop().await;
}
