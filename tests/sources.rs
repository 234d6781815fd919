//! Cybersource (REST webhooks and CMOS XML) and Mastercard Gateway sources
//! end to end: the real server on port 0, a temporary database and a fake
//! webhook shop that verifies what it receives.

mod support;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use support::daemon::{config, fixture, Daemon};
use support::fake_webhook::FakeWebhook;

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const CYBS_KEY: &str = "aXBuc3luYy10ZXN0LWtleS0zMi1ieXRlcy1sb25nISE=";
const CYBS_KEY_ID: &str = "ipnsync-test-2025";
const CMOS_TOKEN: &str = "cmos-token-0123456789abcdef";
const MPGS_SECRET: &str = "mpgs-secret-0123456789abcdef0123";

/// The three new sources, all pushing to the fake shop. `{window}` is the
/// Cybersource replay window, `{allow}` the CMOS peer allow-list.
fn sources_config(shop_url: &str, window: &str, allow: &str) -> String {
    format!(
        r#"
[dispatch]
poll_interval = "50ms"
retry_schedule = ["100ms"]

[[shops]]
name = "hook"
kind = "webhook"
base_url = "{shop_url}"
key = "{WHSEC}"

[[sources]]
name = "cybs"
kind = "cybersource"
path = "/ipn/cybersource"
shop = "hook"
organization_id = "ipnsync_demo"
timestamp_tolerance = "{window}"
keys = [
  {{ id = "retired-2024", secret = "b2xkLWtleS1ieXRlcw==" }},
  {{ id = "{CYBS_KEY_ID}", secret = "{CYBS_KEY}" }},
]

[[sources]]
name = "cmos"
kind = "cybersource-cmos"
path = "/ipn/cybersource-cmos"
shop = "hook"
token = "{CMOS_TOKEN}"
allow_from = [{allow}]
merchant_id = "ipnsync_demo"

[[sources]]
name = "mpgs"
kind = "mpgs"
path = "/ipn/mpgs"
shop = "hook"
secret = "{MPGS_SECRET}"
merchant_id = "TESTMERCHANT01"
"#
    )
}

struct Setup {
    daemon: Daemon,
    shop: FakeWebhook,
    _dir: tempfile::TempDir,
}

async fn start(window: &str, allow: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let shop = FakeWebhook::start(WHSEC).await;
    let toml = sources_config(&shop.url(), window, allow);
    let daemon = Daemon::start(config(&toml, dir.path())).await;
    Setup {
        daemon,
        shop,
        _dir: dir,
    }
}

/// POSTs `body` with these headers; returns the status and the body text.
async fn post(d: &Daemon, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, String) {
    let mut req = d.client.post(d.url(path)).body(body);
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    let resp = req.send().await.expect("request sent");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

fn cybs_signature(name: &str) -> String {
    String::from_utf8(fixture(&format!("cybersource/{name}.sig")))
        .unwrap()
        .trim()
        .to_owned()
}

async fn post_cybs(d: &Daemon, body: Vec<u8>, signature: &str) -> (u16, String) {
    post(
        d,
        "/ipn/cybersource",
        &[
            ("content-type", "application/json"),
            ("v-c-signature", signature),
            ("v-c-event-type", "risk"),
        ],
        body,
    )
    .await
}

async fn post_cybs_fixture(d: &Daemon, name: &str) -> (u16, String) {
    let body = fixture(&format!("cybersource/{name}.json"));
    post_cybs(d, body, &cybs_signature(name)).await
}

/// The fixture signed over the whole body (the other accepted reading),
/// with its own `t`: the event type is then covered by the signature.
async fn post_cybs_body_signed(d: &Daemon, name: &str) -> (u16, String) {
    use base64::Engine;
    let body = fixture(&format!("cybersource/{name}.json"));
    let key = base64::engine::general_purpose::STANDARD
        .decode(CYBS_KEY)
        .unwrap();
    let t = cybs_signature(name)
        .split(';')
        .find_map(|p| p.strip_prefix("t="))
        .unwrap()
        .to_owned();
    let sig = ipnsync::providers::cybersource::sign(&key, &t, &body);
    post_cybs(d, body, &format!("t={t};keyId={CYBS_KEY_ID};sig={sig}")).await
}

async fn post_mpgs(d: &Daemon, name: &str, secret: &str, id: &str) -> (u16, String) {
    post(
        d,
        "/ipn/mpgs",
        &[
            ("content-type", "application/json; charset=utf-8"),
            ("x-notification-secret", secret),
            ("x-notification-id", id),
            ("x-notification-attempt", "1"),
        ],
        fixture(&format!("mpgs/{name}")),
    )
    .await
}

async fn post_cmos(d: &Daemon, query: &str, body: Vec<u8>) -> (u16, String) {
    post(
        d,
        &format!("/ipn/cybersource-cmos{query}"),
        &[("content-type", "application/x-www-form-urlencoded")],
        body,
    )
    .await
}

/// Waits up to 5 s for the fake shop to hold `n` updates: (order, outcome).
async fn shop_updates(shop: &FakeWebhook, n: usize) -> Vec<(String, String, Value)> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = shop.received();
        if got.len() >= n || std::time::Instant::now() > deadline {
            assert!(
                got.iter().all(|r| r.verified),
                "shop could not verify a push"
            );
            return got
                .iter()
                .map(|r| {
                    let json = r.json();
                    (
                        json["order"].as_str().unwrap().to_owned(),
                        json["outcome"].as_str().unwrap().to_owned(),
                        json,
                    )
                })
                .collect();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn pairs(updates: &[(String, String, Value)]) -> Vec<(&str, &str)> {
    updates
        .iter()
        .map(|(o, out, _)| (o.as_str(), out.as_str()))
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn sign_now(body: &[u8], at_ms: u64) -> String {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD
        .decode(CYBS_KEY)
        .unwrap();
    let t = at_ms.to_string();
    let payload = ipnsync::providers::cybersource::payload_bytes(body).unwrap();
    let sig = ipnsync::providers::cybersource::sign(&key, &t, payload);
    format!("t={t};keyId={CYBS_KEY_ID};sig={sig}")
}

// ------------------------------------------------------------- cybersource

#[tokio::test]
async fn cybersource_review_then_case_accept_reach_the_shop_in_order() {
    let s = start("off", "").await;
    let d = &s.daemon;
    let (status, text) = post_cybs_fixture(d, "profile-review").await;
    assert_eq!(
        (status, text.trim()),
        (200, "OK-Payment review, order has been updated.")
    );
    // A note: stored, commented, no order change; the shop's history gets
    // it as a comment only (status kept, nobody notified).
    let (status, text) = post_cybs_fixture(d, "addnote").await;
    assert_eq!(
        (status, text.trim()),
        (200, "OK-Notification recorded, order unchanged.")
    );
    // Signed over the whole body: the event type is authenticated.
    let (status, _) = post_cybs_body_signed(d, "case-accept").await;
    assert_eq!(status, 200);
    // A retry of the accept is a duplicate.
    let (status, text) = post_cybs_body_signed(d, "case-accept").await;
    assert_eq!(
        (status, text.trim()),
        (200, "OK-Accepted payment, already registered.")
    );

    let updates = shop_updates(&s.shop, 3).await;
    assert_eq!(
        pairs(&updates),
        [
            ("100000123", "review"),
            ("100000123", "review"),
            ("100000123", "accepted")
        ]
    );
    let note = &updates[1].2;
    assert_eq!(note["comment_only"], true);
    assert_eq!(note["notify"], false);
    assert_eq!(note["previous_outcome"], "review");
    assert_eq!(note["customer_text"], "");
    assert!(
        note["comment"]
            .as_str()
            .unwrap()
            .contains("Waiting for the buyer to call back."),
        "{note}"
    );
    let accepted = &updates[2].2;
    assert_eq!(accepted["previous_outcome"], "review");
    assert_eq!(accepted["provider"], "cybersource");
    let comment = accepted["comment"].as_str().unwrap();
    assert!(
        comment.starts_with(
            "Cybersource Decision Manager: case accepted by analyst jdoe — note: Called the buyer, all fine."
        ),
        "{comment}"
    );
    assert_eq!(
        d.count("SELECT COUNT(*) FROM events WHERE source = 'cybs'"),
        3
    );
    assert_eq!(
        d.count("SELECT COUNT(*) FROM deliveries WHERE duplicate = 1"),
        1
    );
    let note_comment: String = d
        .reader()
        .query_row(
            "SELECT comment FROM events WHERE status = 'addnote'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(note_comment.contains("Waiting for the buyer to call back."));
    // Signatures never reach the database.
    let headers: String = d
        .reader()
        .query_row("SELECT headers FROM deliveries LIMIT 1", [], |r| r.get(0))
        .unwrap();
    assert!(headers.contains("v-c-event-type") && !headers.contains("v-c-signature"));
    // Nothing else reaches the shop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.shop.received().len(), 3);
    s.daemon.stop().await;
}

#[tokio::test]
async fn cybersource_profile_verdicts_and_health_check() {
    let s = start("off", "").await;
    let d = &s.daemon;
    let health = d
        .client
        .get(d.url("/ipn/cybersource"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let put = d
        .client
        .put(d.url("/ipn/cybersource"))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 405);
    assert_eq!(put.headers()["allow"], "GET, POST");
    // Other sources have no health check.
    let get = d.client.get(d.url("/ipn/mpgs")).send().await.unwrap();
    assert_eq!(get.status().as_u16(), 405);

    for name in ["profile-reject", "profile-monitor"] {
        assert_eq!(post_cybs_fixture(d, name).await.0, 200, "{name}");
    }
    assert_eq!(post_cybs_body_signed(d, "case-reject").await.0, 200);
    let mut updates = pairs(&shop_updates(&s.shop, 3).await)
        .into_iter()
        .map(|(o, out)| (o.to_owned(), out.to_owned()))
        .collect::<Vec<_>>();
    updates.sort();
    assert_eq!(
        updates,
        [
            ("100000124".into(), "rejected".into()),
            ("100000125".into(), "rejected".into()),
            ("100000126".into(), "accepted".into()),
        ]
    );
    let monitor: String = d
        .reader()
        .query_row(
            "SELECT comment FROM events WHERE order_ref = '100000126'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(monitor.contains("MONITOR (a monitor rule flagged the payment; it went through)"));
    s.daemon.stop().await;
}

#[tokio::test]
async fn cybersource_unsigned_event_type_never_accepts_or_rejects() {
    let s = start("off", "").await;
    let d = &s.daemon;
    let (status, _) = post_cybs_fixture(d, "profile-review").await;
    assert_eq!(status, 200);
    assert_eq!(
        pairs(&shop_updates(&s.shop, 1).await),
        [("100000123", "review")]
    );

    // The captured review with its (unsigned) eventType rewritten: the
    // payload-only signature still verifies.
    let body = String::from_utf8(fixture("cybersource/profile-review.json")).unwrap();
    for forged_event in [
        "risk.casemanagement.decision.accept",
        "risk.casemanagement.decision.reject",
    ] {
        let forged = body.replace("risk.profile.decision.review", forged_event);
        let (status, text) =
            post_cybs(d, forged.into_bytes(), &cybs_signature("profile-review")).await;
        assert_eq!(status, 200, "{forged_event}: {text}");
    }
    // A payload-only case decision without a decision in its payload is
    // held for review too, on an order of its own.
    let (status, _) = post_cybs_fixture(d, "case-reject").await;
    assert_eq!(status, 200);
    let updates = shop_updates(&s.shop, 2).await;
    assert_eq!(
        pairs(&updates),
        [("100000123", "review"), ("100000124", "review")]
    );
    let comment = updates[1].2["comment"].as_str().unwrap();
    assert!(
        comment.contains("not covered by the signature"),
        "{comment}"
    );
    assert_eq!(
        d.count("SELECT COUNT(*) FROM events WHERE comment LIKE '%not covered by the signature%'"),
        3
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.shop.received().len(), 2, "nothing accepted or rejected");
    s.daemon.stop().await;
}

#[tokio::test]
async fn cybersource_hostile_requests_are_refused_without_effect() {
    let s = start("15m", "").await;
    let d = &s.daemon;
    let body = fixture("cybersource/case-accept.json");

    // Signed now: accepted.
    let fresh = sign_now(&body, now_ms());
    let mut ok_body = body.clone();
    let (status, _) = post_cybs(d, ok_body.clone(), &fresh).await;
    assert_eq!(status, 200);
    assert_eq!(d.count("SELECT COUNT(*) FROM events"), 1);

    let stale = sign_now(&body, now_ms() - 16 * 60 * 1000);
    let unknown_key = fresh.replace(CYBS_KEY_ID, "not-configured");
    let value: Value = serde_json::from_slice(&body).unwrap();
    let reserialised = serde_json::to_vec_pretty(&value).unwrap();
    let other_org = String::from_utf8(body.clone())
        .unwrap()
        .replace("ipnsync_demo", "someone_else")
        .into_bytes();
    let other_org_sig = sign_now(&other_org, now_ms());
    let cases: Vec<(&str, Vec<u8>, String, u16)> = vec![
        (
            "the fixture's own old timestamp",
            body.clone(),
            cybs_signature("case-accept"),
            401,
        ),
        ("a replay 16 minutes late", body.clone(), stale, 401),
        ("an unknown keyId", body.clone(), unknown_key, 401),
        ("re-serialised JSON", reserialised, fresh.clone(), 401),
        ("no signature", body.clone(), String::new(), 401),
        ("another organization", other_org, other_org_sig, 403),
        (
            "not JSON at all",
            b"{\"payload\":{}".to_vec(),
            fresh.clone(),
            401,
        ),
    ];
    for (what, body, signature, expected) in cases {
        let (status, text) = if signature.is_empty() {
            post(
                d,
                "/ipn/cybersource",
                &[("content-type", "application/json")],
                body,
            )
            .await
        } else {
            post_cybs(d, body, &signature).await
        };
        assert_eq!(status, expected, "{what}: {text}");
        assert!(
            !text.contains("sig="),
            "{what}: the answer echoes the signature"
        );
    }
    // A form body is not what this source receives.
    ok_body.truncate(10);
    let (status, _) = post(
        d,
        "/ipn/cybersource",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("v-c-signature", &fresh),
        ],
        ok_body,
    )
    .await;
    assert_eq!(status, 415);
    assert_eq!(d.count("SELECT COUNT(*) FROM events"), 1, "no effect");
    assert_eq!(d.count("SELECT COUNT(*) FROM deliveries"), 1);
    s.daemon.stop().await;
}

// -------------------------------------------------------------------- cmos

#[tokio::test]
async fn cmos_updates_are_stored_one_event_each_before_the_answer() {
    let s = start("off", r#""127.0.0.0/8", "::1/128""#).await;
    let d = &s.daemon;
    let body = fixture("cybersource/cmos-updates.txt");
    let (status, text) = post_cmos(d, &format!("?token={CMOS_TOKEN}"), body.clone()).await;
    assert_eq!(
        (status, text.trim()),
        (200, "OK-3 notifications recorded, 2 order updates.")
    );
    // Committed before the answer.
    assert_eq!(
        d.count("SELECT COUNT(*) FROM events WHERE source = 'cmos'"),
        3
    );
    assert_eq!(
        d.count("SELECT COUNT(*) FROM events WHERE verdict = 'ignored'"),
        1
    );
    let updates = shop_updates(&s.shop, 2).await;
    let mut got = pairs(&updates);
    got.sort();
    assert_eq!(got, [("100000200", "accepted"), ("100000201", "rejected")]);
    let rejected = updates.iter().find(|u| u.0 == "100000201").unwrap();
    assert!(rejected.2["comment"]
        .as_str()
        .unwrap()
        .starts_with("Cybersource Decision Manager (order status report): case rejected by analyst Bill (was REVIEW) — note: some reason. | Order mis-typed."));

    // The platform resends the document: three duplicates, nothing new.
    let (status, _) = post_cmos(d, &format!("?token={CMOS_TOKEN}"), body).await;
    assert_eq!(status, 200);
    assert_eq!(d.count("SELECT COUNT(*) FROM events"), 3);
    assert_eq!(
        d.count("SELECT COUNT(*) FROM deliveries WHERE duplicate = 1"),
        3
    );
    s.daemon.stop().await;
}

#[tokio::test]
async fn cmos_document_without_updates_is_stored_without_effect() {
    let s = start("off", "").await;
    let d = &s.daemon;
    let xml = r#"<?xml version="1.0" encoding="UTF-8"?><CaseManagementOrderStatus xmlns="http://reports.cybersource.com/reports/cmos/1.0" MerchantID="ipnsync_demo" Name="Case Management Order Status" Date="2025-03-12 10:31:26 GMT" Version="1.1"></CaseManagementOrderStatus>"#;
    let encoded: String = xml
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let body = format!("content={encoded}").into_bytes();
    let (status, text) = post_cmos(d, &format!("?token={CMOS_TOKEN}"), body.clone()).await;
    assert_eq!(
        (status, text.trim()),
        (200, "OK-Notification recorded, order unchanged.")
    );
    // Committed before the answer: one event about no order, its delivery
    // verbatim.
    let (order_ref, verdict, comment): (String, String, String) = d
        .reader()
        .query_row(
            "SELECT order_ref, verdict, comment FROM events WHERE source = 'cmos'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((order_ref.as_str(), verdict.as_str()), ("", "ignored"));
    assert!(
        comment.contains("a document without any Update"),
        "{comment}"
    );
    let id: i64 = d
        .reader()
        .query_row("SELECT id FROM deliveries", [], |r| r.get(0))
        .unwrap();
    let stored = ipnsync::store::bodies::read_delivery_body(&d.reader(), id)
        .unwrap()
        .unwrap();
    assert_eq!(stored, body);
    // Resent: one more delivery of the same event.
    let (status, _) = post_cmos(d, &format!("?token={CMOS_TOKEN}"), body).await;
    assert_eq!(status, 200);
    assert_eq!(d.count("SELECT COUNT(*) FROM events"), 1);
    assert_eq!(d.count("SELECT COUNT(*) FROM deliveries"), 2);
    assert_eq!(d.count("SELECT COUNT(*) FROM orders"), 0);
    assert_eq!(d.count("SELECT COUNT(*) FROM outbox"), 0);
    s.daemon.stop().await;
}

#[tokio::test]
async fn cmos_hostile_requests_are_refused_without_effect() {
    let s = start("off", "").await;
    let d = &s.daemon;
    let good = fixture("cybersource/cmos-updates.txt");
    let token = format!("?token={CMOS_TOKEN}");
    let cases: Vec<(&str, String, Vec<u8>, u16)> = vec![
        ("no token", String::new(), good.clone(), 401),
        (
            "a wrong token",
            "?token=cmos-token-0123456789abcdeF".into(),
            good.clone(),
            401,
        ),
        (
            "entity expansion",
            token.clone(),
            fixture("cybersource/cmos-hostile-entities.txt"),
            400,
        ),
        (
            "external entity",
            token.clone(),
            fixture("cybersource/cmos-hostile-xxe.txt"),
            400,
        ),
        (
            "undeclared entity",
            token.clone(),
            fixture("cybersource/cmos-hostile-undeclared-entity.txt"),
            400,
        ),
        ("no content field", token.clone(), b"other=1".to_vec(), 400),
        (
            "not XML",
            token.clone(),
            b"content=%3CCaseManagementOrderStatus%3E%3CUpdate%3E".to_vec(),
            400,
        ),
    ];
    for (what, query, body, expected) in cases {
        let (status, text) = post_cmos(d, &query, body).await;
        assert_eq!(status, expected, "{what}: {text}");
    }
    let (status, _) = post(
        d,
        &format!("/ipn/cybersource-cmos{token}"),
        &[("content-type", "application/json")],
        good,
    )
    .await;
    assert_eq!(status, 415);
    assert_eq!(d.count("SELECT COUNT(*) FROM events"), 0);
    assert_eq!(d.count("SELECT COUNT(*) FROM deliveries"), 0);
    s.daemon.stop().await;
}

#[tokio::test]
async fn cmos_peer_outside_the_allow_list_is_forbidden() {
    let s = start("off", r#""192.0.2.0/24""#).await;
    let d = &s.daemon;
    let body = fixture("cybersource/cmos-updates.txt");
    let (status, _) = post_cmos(d, &format!("?token={CMOS_TOKEN}"), body.clone()).await;
    assert_eq!(status, 403);
    // Without the token the allow-list is not even reached.
    let (status, _) = post_cmos(d, "", body).await;
    assert_eq!(status, 401);
    assert_eq!(d.count("SELECT COUNT(*) FROM events"), 0);
    s.daemon.stop().await;
}

// -------------------------------------------------------------------- mpgs

#[tokio::test]
async fn mpgs_review_required_reaches_the_shop_as_review_then_accepted() {
    let s = start("off", "").await;
    let d = &s.daemon;
    let (status, text) =
        post_mpgs(d, "authorization-review-required.json", MPGS_SECRET, "n-1").await;
    assert_eq!(
        (status, text.trim()),
        (200, "OK-Payment review, order has been updated.")
    );
    // The same notification again (same X-Notification-Id), then resent
    // under a new id: both duplicates.
    for id in ["n-1", "n-1-resend"] {
        let (status, text) =
            post_mpgs(d, "authorization-review-required.json", MPGS_SECRET, id).await;
        assert_eq!(status, 200, "{text}");
    }
    assert_eq!(d.count("SELECT COUNT(*) FROM events"), 1);
    assert_eq!(
        d.count("SELECT COUNT(*) FROM deliveries WHERE duplicate = 1"),
        2
    );
    // The reviewer accepts in Merchant Administration; the 3-D Secure step
    // and the capture change nothing more.
    for (name, id) in [
        ("authorization-review-accepted.json", "n-2"),
        ("authentication.json", "n-3"),
        ("capture.json", "n-4"),
    ] {
        assert_eq!(post_mpgs(d, name, MPGS_SECRET, id).await.0, 200, "{name}");
    }
    let updates = shop_updates(&s.shop, 2).await;
    assert_eq!(
        pairs(&updates),
        [("100000300", "review"), ("100000300", "accepted")]
    );
    let review = updates[0].2["comment"].as_str().unwrap();
    assert!(
        review.contains("Risk checks: REVIEW_REQUIRED (review required), review PENDING (waiting for a reviewer), score 85; rule MERCHANT_BIN_RANGE: REVIEW."),
        "{review}"
    );
    assert!(review.contains("100.00 USD, VISA 414767xxxxxx0003"));
    // Then a refund.
    assert_eq!(post_mpgs(d, "refund.json", MPGS_SECRET, "n-5").await.0, 200);
    let updates = shop_updates(&s.shop, 3).await;
    assert_eq!(updates[2].1, "refunded");
    let headers: String = d
        .reader()
        .query_row("SELECT headers FROM deliveries LIMIT 1", [], |r| r.get(0))
        .unwrap();
    assert!(headers.contains("\"x-notification-id\":\"n-1\""));
    assert!(!headers.contains(MPGS_SECRET) && !headers.contains("x-notification-secret"));
    s.daemon.stop().await;
}

#[tokio::test]
async fn mpgs_rejections_failures_and_voids() {
    let s = start("off", "").await;
    let d = &s.daemon;
    // Each fixture is order 100000300: use one daemon per scenario's order
    // by reading outcomes from the events table instead of the shop.
    for (name, outcome) in [
        ("authorization-risk-rejected.json", "rejected"),
        ("authorization-declined.json", "failed"),
        ("payment-legacy-risk.json", "accepted"),
        ("void-authorization.json", "canceled"),
        ("authentication.json", "pending"),
    ] {
        let (status, _) = post_mpgs(d, name, MPGS_SECRET, name).await;
        assert_eq!(status, 200, "{name}");
        let assessed: String = d
            .reader()
            .query_row(
                "SELECT assessed FROM events ORDER BY id DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(assessed, outcome, "{name}");
    }
    s.daemon.stop().await;
}

#[tokio::test]
async fn mpgs_hostile_requests_are_refused_without_effect() {
    let s = start("off", "").await;
    let d = &s.daemon;
    let (status, _) = post_mpgs(d, "authorization-approved.json", "wrong-secret", "n-1").await;
    assert_eq!(status, 401);
    let (status, _) = post(
        d,
        "/ipn/mpgs",
        &[("content-type", "application/json")],
        fixture("mpgs/authorization-approved.json"),
    )
    .await;
    assert_eq!(status, 401, "no secret");
    let other_merchant = String::from_utf8(fixture("mpgs/authorization-approved.json"))
        .unwrap()
        .replace("TESTMERCHANT01", "OTHERMERCHANT")
        .into_bytes();
    let (status, _) = post(
        d,
        "/ipn/mpgs",
        &[
            ("content-type", "application/json"),
            ("x-notification-secret", MPGS_SECRET),
        ],
        other_merchant,
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = post(
        d,
        "/ipn/mpgs",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("x-notification-secret", MPGS_SECRET),
        ],
        fixture("mpgs/authorization-approved.json"),
    )
    .await;
    assert_eq!(status, 415);
    let (status, _) = post(
        d,
        "/ipn/mpgs",
        &[
            ("content-type", "application/json"),
            ("x-notification-secret", MPGS_SECRET),
        ],
        br#"{"merchant":"TESTMERCHANT01","order":{}}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(d.count("SELECT COUNT(*) FROM events"), 0);
    assert_eq!(d.count("SELECT COUNT(*) FROM deliveries"), 0);
    s.daemon.stop().await;
}

#[tokio::test]
async fn cybersource_card_processing_webhooks_reach_the_shop() {
    let s = start("off", "").await;
    let d = &s.daemon;
    // A paid card payment (payload signed, status AUTHORIZED agrees).
    let (status, text) = post_cybs_fixture(d, "cp-payment-accept").await;
    assert_eq!(
        (status, text.trim()),
        (200, "OK-Accepted payment, order has been updated.")
    );
    // A credit (whole body signed): refunded.
    let (status, _) = post_cybs_fixture(d, "cp-credit-accept").await;
    assert_eq!(status, 200);
    // A failed reversal changes nothing.
    let (status, text) = post_cybs_fixture(d, "cp-reversal-reject").await;
    assert_eq!(
        (status, text.trim()),
        (200, "OK-Notification recorded, order unchanged.")
    );
    let updates = shop_updates(&s.shop, 2).await;
    assert_eq!(
        pairs(&updates),
        [("100000400", "accepted"), ("100000400", "refunded")]
    );
    let comment = updates[0].2["comment"].as_str().unwrap();
    assert!(
        comment.starts_with("Cybersource card processing: payment accepted."),
        "{comment}"
    );
}

#[tokio::test]
async fn cybersource_organization_comes_from_the_signed_payload() {
    let s = start("off", "").await;
    // Only the payload is signed; it names another organization, the
    // unsigned top-level member the configured one.
    let body = br#"{"organizationId":"ipnsync_demo","eventType":"risk.casemanagement.decision.accept","payload":{"organizationId":"someone_else","data":{"referenceNumber":"100000999"}}}"#.to_vec();
    let signature = sign_now(&body, now_ms());
    let (status, text) = post_cybs(&s.daemon, body, &signature).await;
    assert_eq!(status, 403, "{text}");
    assert_eq!(s.daemon.count("SELECT COUNT(*) FROM events"), 0);
}
