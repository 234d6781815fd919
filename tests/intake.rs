//! Intake end to end: the real server on port 0, a temporary database, and
//! every answer the foundation promises.

mod support;

use std::time::Duration;

use support::daemon::{config, fixture, resign, set, Daemon};

const DEMO: &str = ipnsync::config::DEFAULT_CONFIG;

const PRODUCTION: &str = r#"
body_limit = 4096
[[sources]]
name = "prod"
kind = "lyra-form"
path = "/ipn/prod"
mode = "PRODUCTION"
production_key = "1122334455667788"
"#;

#[tokio::test]
async fn every_fixture_is_accepted_and_stored_before_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(config(DEMO, dir.path())).await;
    let cases = [
        (
            "lyra-form/authorised.txt",
            "OK-Accepted payment, order has been updated.",
        ),
        (
            "lyra-form/to-validate.txt",
            "OK-Payment review, order has been updated.",
        ),
        (
            "lyra-form/refused.txt",
            "OK-Payment failure, order has been cancelled.",
        ),
    ];
    for (i, (name, expected)) in cases.iter().enumerate() {
        let (status, body) = d.post_form("/ipn/lyra", fixture(name)).await;
        assert_eq!((status, body.trim()), (200, *expected), "{name}");
        // The answer came after the commit: the row is visible right away.
        assert_eq!(d.count("SELECT COUNT(*) FROM events"), i as i64 + 1);
    }
    let first: i64 = d
        .reader()
        .query_row("SELECT MIN(id) FROM deliveries", [], |r| r.get(0))
        .unwrap();
    let stored = ipnsync::store::bodies::read_delivery_body(&d.reader(), first)
        .unwrap()
        .unwrap();
    assert_eq!(
        stored,
        fixture("lyra-form/authorised.txt"),
        "raw body read back verbatim"
    );
    assert!(
        d.count("SELECT LENGTH(body) FROM deliveries ORDER BY id LIMIT 1") < stored.len() as i64,
        "and stored compressed"
    );
    let peer: String = d
        .reader()
        .query_row("SELECT peer FROM deliveries LIMIT 1", [], |r| r.get(0))
        .unwrap();
    assert!(peer.starts_with("127.0.0.1:"));
    d.stop().await;
}

#[tokio::test]
async fn duplicates_and_back_office_resends_have_no_new_effect() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(config(DEMO, dir.path())).await;
    let body = fixture("lyra-form/authorised.txt");
    assert_eq!(d.post_form("/ipn/lyra", body.clone()).await.0, 200);
    let (status, text) = d.post_form("/ipn/lyra", body.clone()).await;
    assert_eq!(
        (status, text.trim()),
        (200, "OK-Accepted payment, already registered.")
    );

    // A manual resend from the back office: new vads_hash, other source.
    let resend = resign(&body, |p| {
        set(
            p,
            "vads_hash",
            "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
        );
        set(p, "vads_url_check_src", "BO");
    });
    let (status, text) = d.post_form("/ipn/lyra", resend).await;
    assert_eq!(
        (status, text.trim()),
        (200, "OK-Accepted payment, already registered.")
    );

    assert_eq!(d.count("SELECT COUNT(*) FROM events"), 1);
    assert_eq!(d.count("SELECT COUNT(*) FROM deliveries"), 3);
    assert_eq!(
        d.count("SELECT COUNT(*) FROM deliveries WHERE duplicate = 1"),
        2
    );

    // A new fact about the same transaction is a new event.
    let captured = resign(&body, |p| set(p, "vads_trans_status", "CAPTURED"));
    let (status, text) = d.post_form("/ipn/lyra", captured).await;
    assert_eq!(status, 200);
    assert_eq!(text.trim(), "OK-Notification recorded, order unchanged.");
    assert_eq!(d.count("SELECT COUNT(*) FROM events"), 2);
    d.stop().await;
}

#[tokio::test]
async fn refused_requests_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(config(DEMO, dir.path())).await;
    let good = fixture("lyra-form/authorised.txt");
    let text = String::from_utf8(good.clone()).unwrap();

    // Tampered amount: the signature no longer matches.
    let tampered = text.replace("vads_amount=2990", "vads_amount=1");
    let (status, body) = d.post_form("/ipn/lyra", tampered).await;
    assert_eq!(
        (status, body.trim()),
        (401, "KO-An error occurred while computing the signature.")
    );

    // No signature at all.
    let unsigned = text.split("&signature=").next().unwrap().to_owned();
    assert_eq!(d.post_form("/ipn/lyra", unsigned).await.0, 401);

    // Malformed bodies.
    for bad in [
        b"vads_amount=%ZZ&signature=x".to_vec(),
        b"vads_amount=%FF&signature=x".to_vec(),
        b"vads_amount=1&vads_amount=2&signature=x".to_vec(),
    ] {
        let (status, body) = d.post_form("/ipn/lyra", bad).await;
        assert_eq!(status, 400, "{body}");
        assert!(body.starts_with("KO-Malformed notification"), "{body}");
    }

    // Wrong content type.
    let resp = d
        .client
        .post(d.url("/ipn/lyra"))
        .header("content-type", "application/json")
        .body(good.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);

    // Unknown path and wrong method.
    assert_eq!(d.post_form("/ipn/other", good.clone()).await.0, 404);
    let resp = d.client.get(d.url("/ipn/lyra")).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 405);
    assert_eq!(resp.headers()["allow"], "POST");

    assert_eq!(d.count("SELECT COUNT(*) FROM events"), 0);
    assert_eq!(d.count("SELECT COUNT(*) FROM deliveries"), 0);
    // The daemon still serves.
    assert_eq!(d.post_form("/ipn/lyra", good).await.0, 200);
    d.stop().await;
}

#[tokio::test]
async fn mode_mismatch_is_forbidden_and_oversized_bodies_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(config(PRODUCTION, dir.path())).await;
    // Signed with the right key, but a TEST payment on a PRODUCTION source.
    let (status, body) = d
        .post_form("/ipn/prod", fixture("lyra-form/authorised.txt"))
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("TEST"), "{body}");

    // Over the 4 KiB limit, declared by Content-Length…
    let big = vec![b'a'; 5000];
    assert_eq!(d.post_form("/ipn/prod", big.clone()).await.0, 413);
    // …and streamed without a length (chunked).
    let mut req = b"POST /ipn/prod HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for chunk in big.chunks(1000) {
        req.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        req.extend_from_slice(chunk);
        req.extend_from_slice(b"\r\n");
    }
    req.extend_from_slice(b"0\r\n\r\n");
    let answer = raw_request(d.addr, &req).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert_eq!(d.count("SELECT COUNT(*) FROM deliveries"), 0);
    d.stop().await;
}

async fn raw_request(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn storage_trouble_and_overload_answer_503_and_nothing_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(DEMO, dir.path());
    c.writer.queue = 1;
    c.writer.sessions = 1; // one stuck writer, so that the queue fills
    let d = Daemon::start(c).await;
    // Let the daemon create the schema first.
    assert_eq!(
        d.post_form("/ipn/lyra", fixture("lyra-form/authorised.txt"))
            .await
            .0,
        200
    );

    // Another process holds the write lock: the writer cannot commit.
    let locker = d.reader();
    locker
        .execute_batch(support::backend::lock_writes_sql())
        .unwrap();
    let first = {
        let client = d.client.clone();
        let url = d.url("/ipn/lyra");
        tokio::spawn(async move {
            let r = client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(fixture("lyra-form/refused.txt"))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.text().await.unwrap())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await; // writer is now stuck on the lock
    let second = {
        let client = d.client.clone();
        let url = d.url("/ipn/lyra");
        tokio::spawn(async move {
            let r = client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(fixture("lyra-form/clearsale-fraud.txt"))
                .send()
                .await
                .unwrap();
            r.status().as_u16()
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await; // the queue (1) is now full
    let (status, body) = d
        .post_form("/ipn/lyra", fixture("lyra-form/to-validate.txt"))
        .await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("overloaded"), "{body}");

    // The stuck commit gives up after the busy timeout: 503, not 200.
    let (status, body) = first.await.unwrap();
    assert_eq!(status, 503, "{body}");
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    assert_eq!(
        second.await.unwrap(),
        200,
        "queued work commits once the lock is gone"
    );
    // The platform's retry of the refused ones now succeeds.
    assert_eq!(
        d.post_form("/ipn/lyra", fixture("lyra-form/refused.txt"))
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
    assert_eq!(d.count("SELECT COUNT(*) FROM events"), 4);
    d.stop().await;
}

#[tokio::test]
async fn restart_finds_every_acknowledged_notification() {
    let dir = tempfile::tempdir().unwrap();
    let mut acknowledged = Vec::new();
    {
        let d = Daemon::start(config(DEMO, dir.path())).await;
        let base = fixture("lyra-form/authorised.txt");
        let mut tasks = Vec::new();
        for i in 0..40 {
            let body = resign(&base, |p| {
                set(p, "vads_order_id", &format!("2000{i:02}"));
                set(p, "vads_trans_uuid", &format!("{i:032x}"));
            });
            let client = d.client.clone();
            let url = d.url("/ipn/lyra");
            tasks.push(tokio::spawn(async move {
                let r = client
                    .post(url)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                (i, r.status().as_u16())
            }));
        }
        for t in tasks {
            let (i, status) = t.await.unwrap();
            if status == 200 {
                acknowledged.push(format!("2000{i:02}"));
            }
        }
        d.stop().await;
    }
    assert_eq!(acknowledged.len(), 40);
    let d = Daemon::start(config(DEMO, dir.path())).await;
    let conn = d.reader();
    for order in &acknowledged {
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM events WHERE order_ref = ?1",
                [order],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            n, 1,
            "order {order} acknowledged but not found after restart"
        );
    }
    // And the restarted daemon still recognises them as duplicates.
    let again = resign(&fixture("lyra-form/authorised.txt"), |p| {
        set(p, "vads_order_id", "200007");
        set(p, "vads_trans_uuid", &format!("{:032x}", 7));
    });
    let (status, text) = d.post_form("/ipn/lyra", again).await;
    assert_eq!(
        (status, text.trim()),
        (200, "OK-Accepted payment, already registered.")
    );
    d.stop().await;
}

const REST: &str = r#"
[[sources]]
name = "rest"
kind = "lyra-rest"
path = "/ipn/rest"
mode = "TEST"
test_password = "testpassword_DEMOPRIVATEKEY23G4475zXZQ2UA5x7M"
"#;

fn rest_body(answer: &str, hash: &str, key: &str) -> Vec<u8> {
    ipnsync::providers::form::Form::from_pairs([
        ("kr-hash", hash),
        ("kr-hash-algorithm", "sha256_hmac"),
        ("kr-hash-key", key),
        ("kr-answer-type", "V4/Payment"),
        ("kr-answer", answer),
    ])
    .encode()
    .into_bytes()
}

#[tokio::test]
async fn rest_ipn_is_verified_before_its_json_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(config(REST, dir.path())).await;
    let k3 = String::from_utf8(fixture("lyra-rest/k3-answer.json")).unwrap();
    let hash = "88fb7b4838a73c2674ca00ee545454d78dd4b1b733a07c855a1d4460d4417f85";
    let (status, text) = d
        .post_form("/ipn/rest", rest_body(&k3, hash, "password"))
        .await;
    assert_eq!(
        (status, text.trim()),
        (200, "OK-Accepted payment, order has been updated.")
    );
    let order: String = d
        .reader()
        .query_row("SELECT order_ref FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(order, "myOrderId-618776");

    // A browser-return copy signed with the HMAC key is refused.
    let k2 = String::from_utf8(fixture("lyra-rest/k2-answer.json")).unwrap();
    let browser = rest_body(
        &k2,
        "4d57a308d7d8a89a989e8dc54613fe5f7d353a6c749a9769f5e9b9073d5720af",
        "sha256_hmac",
    );
    assert_eq!(d.post_form("/ipn/rest", browser).await.0, 401);
    // Unverified garbage JSON is never parsed: it is a signature failure.
    assert_eq!(
        d.post_form("/ipn/rest", rest_body("{not json", hash, "password"))
            .await
            .0,
        401
    );
    assert_eq!(d.count("SELECT COUNT(*) FROM events"), 1);
    d.stop().await;
}
