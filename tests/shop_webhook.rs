//! The Standard Webhooks client against a fake receiver that verifies the
//! signature on its own.

mod support;

use std::time::Duration;

use ipnsync::config::{default_statuses, Secret, ShopConfig, ShopKind, ShopStatus};
use ipnsync::domain::Outcome;
use ipnsync::shops::webhook::Webhook;
use ipnsync::shops::{PushError, ShopUpdate};
use serde_json::json;
use support::fake_webhook::{verify_at, FakeWebhook, Mode};

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn config(url: String, secret: &str) -> ShopConfig {
    ShopConfig {
        name: "webhook-test".into(),
        kind: ShopKind::Webhook,
        base_url: url,
        username: "Default".into(),
        credential: Some(Secret::new(secret)),
        token: None,
        concurrency: 2,
        timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        notify: Vec::new(),
        statuses: default_statuses(ShopKind::Webhook),
        store_id: 0,
        language: "en-gb".into(),
        currency: "USD".into(),
        lookup_by_increment_id: true,
        amount_tolerance: None,
        order_rules: Default::default(),
    }
}

fn update() -> ShopUpdate {
    ShopUpdate {
        outbox_id: 17,
        event_id: 5,
        order_ref: "100000001".into(),
        outcome: Outcome::Accepted,
        previous_outcome: Some(Outcome::Review),
        status: ShopStatus::Code("processing".into()),
        comment: "Payment accepted after review".into(),
        notify: true,
        provider: "lyra".into(),
        transaction_id: "abc123".into(),
        provider_status: "AUTHORISED".into(),
        amount: None,
        customer_text: String::new(),
        earlier_attempt_unknown: false,
        by_operator: false,
    }
}

async fn receiver(secret: &str) -> (FakeWebhook, Webhook) {
    let fake = FakeWebhook::start(secret).await;
    let client = Webhook::new(&config(fake.url(), secret));
    (fake, client)
}

#[test]
fn the_fake_verifier_accepts_the_specification_example() {
    let (id, ts, sig) = (
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "1614265330",
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    );
    let body = br#"{"test": 2432232314}"#;
    assert!(verify_at(WHSEC, id, ts, sig, body, 1614265330));
    assert!(verify_at(
        WHSEC,
        id,
        ts,
        &format!("v1,bm9wZQ== {sig}"),
        body,
        1614265330
    ));
    assert!(
        !verify_at(WHSEC, id, ts, sig, body, 1614265330 + 301),
        "stale timestamp"
    );
    assert!(
        !verify_at(WHSEC, id, ts, sig, br#"{"test": 1}"#, 1614265330),
        "other body"
    );
}

#[tokio::test]
async fn delivers_a_signed_json_body() {
    let (fake, client) = receiver(WHSEC).await;
    let pushed = client.push(&update()).await.expect("delivered");
    assert_eq!(pushed.detail, "HTTP 204");
    let got = fake.received();
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert!(r.verified, "signature {} did not verify", r.signature);
    assert_eq!(r.id, "ipnsync-17");
    assert_eq!(r.content_type, "application/json");
    assert_eq!(
        r.json(),
        json!({
            "type": "order.updated",
            "id": "ipnsync-17",
            "order": "100000001",
            "outcome": "accepted",
            "previous_outcome": "review",
            "status": "processing",
            "comment": "Payment accepted after review",
            "customer_text": "",
            "notify": true,
            "comment_only": false,
            "redelivery": false,
            "amount": null,
            "currency": null,
            "provider": "lyra",
            "transaction_id": "abc123",
            "provider_status": "AUTHORISED",
            "outbox_id": 17,
            "event_id": 5
        })
    );
    assert!(
        r.body
            .starts_with(r#"{"type":"order.updated","id":"ipnsync-17","#),
        "stable field order"
    );
}

#[tokio::test]
async fn a_new_order_has_a_null_previous_outcome() {
    let (fake, client) = receiver(WHSEC).await;
    let mut u = update();
    u.previous_outcome = None;
    client.push(&u).await.expect("delivered");
    assert_eq!(
        fake.received()[0].json()["previous_outcome"],
        serde_json::Value::Null
    );
}

#[tokio::test]
async fn a_raw_secret_is_used_as_bytes() {
    let (fake, client) = receiver("not-a-standard-secret").await;
    client.push(&update()).await.expect("delivered");
    assert!(fake.received()[0].verified);
}

#[tokio::test]
async fn a_whsec_secret_is_base64_decoded() {
    // Signed with the decoded key, so a receiver holding the raw string
    // (wrongly) must not verify it.
    let fake = FakeWebhook::start(WHSEC.trim_start_matches("whsec_")).await;
    let client = Webhook::new(&config(fake.url(), WHSEC));
    let err = client.push(&update()).await.unwrap_err();
    assert!(!fake.received()[0].verified);
    assert!(
        !err.is_transient(),
        "401 from the receiver is permanent: {err}"
    );
}

#[tokio::test]
async fn retries_keep_the_webhook_id() {
    let (fake, client) = receiver(WHSEC).await;
    fake.set_mode(Mode::Fail {
        status: 503,
        retry_after: Some("120".into()),
    });
    let err = client.push(&update()).await.unwrap_err();
    assert_eq!(
        err,
        PushError::Transient {
            reason: r#"HTTP 503: {"error":"receiver says no"}"#.into(),
            retry_after: Some(Duration::from_secs(120)),
            unanswered: false,
        }
    );
    fake.set_mode(Mode::Accept);
    client.push(&update()).await.expect("delivered on retry");
    let got = fake.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].id, got[1].id);
    assert!(got.iter().all(|r| r.verified));
}

#[tokio::test]
async fn gone_is_permanent() {
    let (fake, client) = receiver(WHSEC).await;
    fake.set_mode(Mode::Fail {
        status: 410,
        retry_after: None,
    });
    let err = client.push(&update()).await.unwrap_err();
    assert!(!err.is_transient());
    assert!(err.to_string().starts_with("HTTP 410 Gone"), "{err}");
}

#[tokio::test]
async fn other_client_errors_are_permanent_with_the_body() {
    let (fake, client) = receiver(WHSEC).await;
    fake.set_mode(Mode::Fail {
        status: 422,
        retry_after: None,
    });
    let err = client.push(&update()).await.unwrap_err();
    assert_eq!(
        err,
        PushError::permanent(r#"HTTP 422: {"error":"receiver says no"}"#)
    );
}

#[tokio::test]
async fn timeouts_rate_limits_and_server_errors_are_transient() {
    let (fake, client) = receiver(WHSEC).await;
    for status in [408, 429, 500, 502] {
        fake.set_mode(Mode::Fail {
            status,
            retry_after: None,
        });
        let err = client.push(&update()).await.unwrap_err();
        assert!(err.is_transient(), "{status}: {err}");
    }
}

#[tokio::test]
async fn a_hanging_receiver_is_transient() {
    let (fake, client) = receiver(WHSEC).await;
    fake.set_mode(Mode::Hang);
    let err = client.push(&update()).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn an_unreachable_receiver_is_transient() {
    let fake = FakeWebhook::start(WHSEC).await;
    // A port nothing listens on: bind, note it, close.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", closed.local_addr().expect("addr"));
    drop(closed);
    let err = Webhook::new(&config(url, WHSEC))
        .push(&update())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(fake.received().is_empty());
}
