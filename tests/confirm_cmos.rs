//! Confirmation of `cybersource-cmos` posts (issue 15) end to end: the real
//! daemon, a fake webhook shop and a fake Cybersource REST API. A CMOS post
//! is unsigned (token and address only), so the analyst decision it claims
//! moves the order only once Cybersource's own record of analyst decisions,
//! the Conversion Detail Report, lists it; the decision is made from the
//! report's entry.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};
use support::daemon::{config, Daemon};
use support::fake_cybersource_api::{FakeCybersourceApi, Mode};
use support::fake_webhook::FakeWebhook;

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TOKEN: &str = "cmos-token-0123456789abcdef";
const MERCHANT: &str = "ipnsync_demo";
const API_KEY_ID: &str = "08c94330-0000-4000-8000-ipnsynctest01";
const API_SECRET: &str = "aXBuc3luYy10ZXN0LXNoYXJlZC1zZWNyZXQtMzJieXQ=";
const ORDER: &str = "100000123";
const REQUEST: &str = "4720554329436778504102";

struct Setup {
    daemon: Daemon,
    shop: FakeWebhook,
    cybs: FakeCybersourceApi,
    _dir: tempfile::TempDir,
}

fn toml(dir: &Path, shop: &FakeWebhook, cybs: &FakeCybersourceApi, max_wait: &str) -> String {
    format!(
        r#"
{db}

[dispatch]
retry_schedule = ["100ms", "200ms"]
jitter = 0.0
poll_interval = "50ms"

[[shops]]
name = "hook"
kind = "webhook"
base_url = "{shop_url}"
key = "{WHSEC}"

# confirm is not given: "all" is the default for a CMOS source with the
# REST API.
[[sources]]
name = "cmos"
kind = "cybersource-cmos"
path = "/ipn/cybersource-cmos"
shop = "hook"
token = "{TOKEN}"
merchant_id = "{MERCHANT}"
api_host = "{cybs_host}"
api_key_id = "{API_KEY_ID}"
api_shared_secret = "{API_SECRET}"
api_timeout = "1s"
confirm_max_wait = "{max_wait}"
"#,
        db = support::backend::config_line(&support::backend::fresh_database(dir)),
        shop_url = shop.url(),
        cybs_host = cybs.api_host(),
    )
}

/// A daemon whose CMOS decisions wait at most `max_wait` for the report.
async fn start(max_wait: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let shop = FakeWebhook::start(WHSEC).await;
    let cybs = FakeCybersourceApi::start(MERCHANT, API_KEY_ID, API_SECRET).await;
    let text = toml(dir.path(), &shop, &cybs, max_wait);
    let daemon = Daemon::start(config(&text, dir.path())).await;
    Setup {
        daemon,
        shop,
        cybs,
        _dir: dir,
    }
}

/// Posts one CMOS update for `ORDER` / `REQUEST` claiming `decision`, as
/// Cybersource posts it (form field `content`).
async fn post_cmos(d: &Daemon, decision: &str) {
    let xml = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><CaseManagementOrderStatus xmlns="http://reports.cybersource.com/reports/cmos/1.0" MerchantID="{MERCHANT}" Name="Case Management Order Status" Date="2026-11-24 10:00:05 GMT" Version="1.1"><Update MerchantReferenceNumber="{ORDER}" RequestID="{REQUEST}"><OriginalDecision>REVIEW</OriginalDecision><NewDecision>{decision}</NewDecision><Reviewer>mallory</Reviewer><ReviewerComments>looks fine</ReviewerComments></Update></CaseManagementOrderStatus>"#
    );
    let body = serde_urlencoded::to_string([("content", xml)]).unwrap();
    let (status, text) = d
        .post_form(&format!("/ipn/cybersource-cmos?token={TOKEN}"), body)
        .await;
    assert_eq!(
        status, 200,
        "the answer never waits for the gateway: {text}"
    );
}

/// The report's entry for `REQUEST` with this decision.
fn conversion(request: &str, decision: &str) -> Value {
    json!({
        "merchantReferenceNumber": ORDER,
        "conversionTime": "2026-11-24T10:00:00Z",
        "requestId": request,
        "originalDecision": "REVIEW",
        "newDecision": decision,
        "reviewer": "alice",
        "reviewerComments": "verified with the customer",
        "queue": "Review Queue",
        "profile": "Auths"
    })
}

/// Waits up to 10 s for `sql` (one integer) to be at least `n`.
async fn wait_count(d: &Daemon, sql: &str, n: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = d.count(sql);
        if got >= n {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{sql}: {got}, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Waits up to 10 s for the shop to hold `n` updates (all verified).
async fn shop_updates(shop: &FakeWebhook, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let got = shop.received();
        if got.len() >= n || std::time::Instant::now() > deadline {
            assert!(got.iter().all(|r| r.verified), "shop could not verify");
            assert_eq!(got.len(), n, "shop updates");
            return got.iter().map(|r| r.json()).collect();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn order_outcome(d: &Daemon) -> Option<String> {
    use ipnsync::store::db::OptionalExtension;
    d.reader()
        .query_row(
            "SELECT outcome FROM orders WHERE order_ref = ?1",
            [ORDER],
            |r| r.get(0),
        )
        .optional()
        .unwrap()
}

fn confirmation(d: &Daemon) -> (String, Option<String>) {
    d.reader()
        .query_row("SELECT state, result FROM confirmations", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap()
}

const SETTLED: &str = "SELECT COUNT(*) FROM confirmations WHERE state = 'done'";
const ATTEMPTS: &str =
    "SELECT COALESCE(MAX(attempts), 0) FROM confirmations WHERE state = 'waiting'";

#[tokio::test]
async fn a_cmos_accept_the_report_confirms_reaches_the_shop_once() {
    let s = start("1h").await;
    s.cybs.set_conversions(vec![
        conversion("1111111111111111111111", "REJECT"),
        conversion(REQUEST, "ACCEPT"),
    ]);
    post_cmos(&s.daemon, "ACCEPT").await;
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(updates[0]["outcome"], "accepted");
    let comment = updates[0]["comment"].as_str().unwrap();
    assert!(
        comment.contains(&format!(
            "Confirmed with Cybersource: Conversion Detail Report: request {REQUEST} REVIEW → ACCEPT by alice at 2026-11-24T10:00:00Z."
        )),
        "{comment}"
    );
    assert_eq!(
        confirmation(&s.daemon),
        ("done".into(), Some("confirmed".into()))
    );
    let calls = s.cybs.report_calls();
    assert_eq!(calls.len(), 1, "one report read");
    assert!(calls[0].1, "signed GET");
    assert!(calls[0].0.contains("startTime=") && calls[0].0.contains("endTime="));
    // The same post again (Cybersource retries): a duplicate, nothing more.
    post_cmos(&s.daemon, "ACCEPT").await;
    assert_eq!(s.daemon.count("SELECT COUNT(*) FROM confirmations"), 1);
    s.daemon.stop().await;
    assert_eq!(s.shop.received().len(), 1, "the shop is told once");
    assert_eq!(s.cybs.report_calls().len(), 1);
}

#[tokio::test]
async fn a_cmos_accept_the_report_contradicts_is_held_for_review_with_both() {
    let s = start("1h").await;
    s.cybs.set_conversions(vec![conversion(REQUEST, "REJECT")]);
    post_cmos(&s.daemon, "ACCEPT").await;
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(updates[0]["outcome"], "review", "never accepted");
    assert_eq!(
        updates[0]["comment"].as_str().unwrap(),
        format!("Held for review: the notification said ACCEPT (accepted), but Conversion Detail Report: request {REQUEST} REVIEW → REJECT by alice at 2026-11-24T10:00:00Z (rejected).")
    );
    assert_eq!(
        confirmation(&s.daemon),
        ("done".into(), Some("disagreed".into()))
    );
    assert_eq!(order_outcome(&s.daemon).as_deref(), Some("review"));
    s.daemon.stop().await;
}

#[tokio::test]
async fn a_cmos_post_for_a_request_the_report_never_lists_is_not_applied() {
    let s = start("1h").await;
    // The report knows other decisions, not this one.
    s.cybs
        .set_conversions(vec![conversion("1111111111111111111111", "ACCEPT")]);
    post_cmos(&s.daemon, "ACCEPT").await;
    // Asked, not listed, asked again: the order has not moved.
    wait_count(&s.daemon, ATTEMPTS, 2).await;
    assert_eq!(order_outcome(&s.daemon), None);
    assert!(s.shop.received().is_empty());
    assert!(s.cybs.report_calls().len() >= 2);
    let error: String = s
        .daemon
        .reader()
        .query_row("SELECT last_error FROM confirmations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        error,
        format!("request {REQUEST} is not in the Conversion Detail Report yet")
    );
    assert_eq!(confirmation(&s.daemon), ("waiting".into(), None));
    s.daemon.stop().await;
    assert!(s.shop.received().is_empty());
}

#[tokio::test]
async fn a_cmos_decision_still_missing_from_the_report_after_the_longest_wait_is_held_for_review() {
    let s = start("100ms").await;
    s.cybs
        .set_conversions(vec![conversion("1111111111111111111111", "ACCEPT")]);
    post_cmos(&s.daemon, "ACCEPT").await;
    wait_count(&s.daemon, SETTLED, 1).await;
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(updates[0]["outcome"], "review", "never accepted");
    let comment = updates[0]["comment"].as_str().unwrap();
    assert!(
        comment.starts_with(&format!("Held for review: the notification said ACCEPT (accepted), but Cybersource has no record of this decision: request {REQUEST} is not in the Conversion Detail Report")),
        "{comment}"
    );
    assert_eq!(
        confirmation(&s.daemon),
        ("done".into(), Some("unrecorded".into()))
    );
    assert_eq!(order_outcome(&s.daemon).as_deref(), Some("review"));
    s.daemon.stop().await;
}

#[tokio::test]
async fn the_gateway_being_down_delays_a_cmos_decision_but_loses_nothing() {
    // A max wait shorter than the outage: an unanswered report never
    // counts as "no record".
    let s = start("1s").await;
    s.cybs.set_mode(Mode::Fail {
        status: 503,
        body: json!({"message": "Service Unavailable"}).to_string(),
    });
    post_cmos(&s.daemon, "ACCEPT").await;
    wait_count(&s.daemon, ATTEMPTS, 3).await;
    assert_eq!(order_outcome(&s.daemon), None);
    assert!(s.shop.received().is_empty());
    let error: String = s
        .daemon
        .reader()
        .query_row("SELECT last_error FROM confirmations", [], |r| r.get(0))
        .unwrap();
    assert!(
        error.starts_with("Cybersource Conversion Detail Report: HTTP 503"),
        "{error}"
    );
    // Past the max wait by now, and still waiting.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(confirmation(&s.daemon).0, "waiting");
    s.cybs.set_conversions(vec![conversion(REQUEST, "ACCEPT")]);
    s.cybs.set_mode(Mode::Accept);
    wait_count(&s.daemon, SETTLED, 1).await;
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(updates[0]["outcome"], "accepted");
    assert_eq!(
        confirmation(&s.daemon),
        ("done".into(), Some("confirmed".into()))
    );
    s.daemon.stop().await;
    assert_eq!(s.shop.received().len(), 1, "once");
}
