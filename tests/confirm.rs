//! Confirmation end to end (issue 15): the real daemon, a fake webhook
//! shop, and fake gateway APIs (Lyra REST V4 `Transaction/Get`, Mastercard
//! Gateway Retrieve Order, Cybersource transaction details and Conversion
//! Detail Report). A notification the source's `confirm` holds is
//! acknowledged at once, but moves the order only once the gateway's own
//! state agrees; the decision is made from that state.

mod support;

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use support::daemon::{config, fixture, Daemon};
use support::fake_cybersource_api::{self as fake_cybs, FakeCybersourceApi, Tss};
use support::fake_lyra_api::{self, FakeLyraApi};
use support::fake_mpgs_api::{self, FakeMpgsApi};
use support::fake_webhook::FakeWebhook;

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SITE_ID: &str = "12345678";
const REST_PASSWORD: &str = "testpassword_R3stApiPassw0rd";
const MPGS_SECRET: &str = "mpgs-secret-0123456789abcdef0123";
const MPGS_MERCHANT: &str = "TESTMERCHANT01";
const MPGS_PASSWORD: &str = "mpgs-api-password-0123456789abcd";
/// `vads_trans_uuid` and `vads_order_id` of `lyra-form/authorised.txt`.
const UUID: &str = "9b0c5a1f2e3d4c5b6a79881726354abc";
const ORDER: &str = "100041";
const CYBS_KEY: &str = "aXBuc3luYy10ZXN0LWtleS0zMi1ieXRlcy1sb25nISE=";
const CYBS_KEY_ID: &str = "ipnsync-test-2025";
const CYBS_MERCHANT: &str = "ipnsync_demo";
const CYBS_API_KEY_ID: &str = "08c94330-0000-4000-8000-ipnsynctest01";
const CYBS_API_SECRET: &str = "aXBuc3luYy10ZXN0LXNoYXJlZC1zZWNyZXQtMzJieXQ=";

struct Setup {
    daemon: Daemon,
    shop: FakeWebhook,
    lyra: FakeLyraApi,
    mpgs: FakeMpgsApi,
    cybs: FakeCybersourceApi,
    text: String,
    dir: tempfile::TempDir,
}

fn toml(
    dir: &Path,
    shop: &FakeWebhook,
    lyra: &FakeLyraApi,
    mpgs: &FakeMpgsApi,
    cybs: &FakeCybersourceApi,
    cybs_max_wait: &str,
) -> String {
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

[[sources]]
name = "lyra"
kind = "lyra-form"
path = "/ipn/lyra"
site_id = "{SITE_ID}"
mode = "TEST"
test_key = "1122334455667788"
shop = "hook"
api_url = "{lyra_url}"
rest_password = "{REST_PASSWORD}"
api_timeout = "1s"
confirm = "success"

# confirm is not given: "success" is the default for an MPGS source with
# its API.
[[sources]]
name = "mpgs"
kind = "mpgs"
path = "/ipn/mpgs"
shop = "hook"
secret = "{MPGS_SECRET}"
merchant_id = "{MPGS_MERCHANT}"
gateway_url = "{mpgs_url}"
api_password = "{MPGS_PASSWORD}"
api_timeout = "1s"

# confirm is not given: "unsigned" is the default for a Cybersource source
# with its REST API (only what rule cs8 would leave in review).
[[sources]]
name = "cybs"
kind = "cybersource"
path = "/ipn/cybersource"
shop = "hook"
timestamp_tolerance = "off"
keys = [{{ id = "{CYBS_KEY_ID}", secret = "{CYBS_KEY}" }}]
api_host = "{cybs_host}"
merchant_id = "{CYBS_MERCHANT}"
api_key_id = "{CYBS_API_KEY_ID}"
api_shared_secret = "{CYBS_API_SECRET}"
api_timeout = "1s"
confirm_max_wait = "{cybs_max_wait}"
"#,
        db = support::backend::config_line(&support::backend::fresh_database(dir)),
        shop_url = shop.url(),
        lyra_url = lyra.api_url(),
        mpgs_url = mpgs.gateway_url(),
        cybs_host = cybs.api_host(),
    )
}

async fn start() -> Setup {
    start_with("2d").await
}

/// A daemon whose Cybersource case decisions wait at most `cybs_max_wait`
/// for the Conversion Detail Report.
async fn start_with(cybs_max_wait: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let shop = FakeWebhook::start(WHSEC).await;
    let lyra = FakeLyraApi::start(SITE_ID, REST_PASSWORD).await;
    let mpgs = FakeMpgsApi::start(MPGS_MERCHANT, MPGS_PASSWORD).await;
    let cybs = FakeCybersourceApi::start(CYBS_MERCHANT, CYBS_API_KEY_ID, CYBS_API_SECRET).await;
    let text = toml(dir.path(), &shop, &lyra, &mpgs, &cybs, cybs_max_wait);
    let daemon = Daemon::start(config(&text, dir.path())).await;
    Setup {
        daemon,
        shop,
        lyra,
        mpgs,
        cybs,
        text,
        dir,
    }
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

/// The events of one order, oldest first: (origin, verdict, outcome,
/// reason, comment).
fn events(d: &Daemon, order: &str) -> Vec<(String, String, Option<String>, String, String)> {
    d.reader()
        .prepare(
            "SELECT origin, verdict, outcome, COALESCE(reason, ''), comment FROM events
             WHERE order_ref = ?1 ORDER BY id",
        )
        .unwrap()
        .query_map([order], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn order_outcome(d: &Daemon, order: &str) -> Option<String> {
    use ipnsync::store::db::OptionalExtension;
    d.reader()
        .query_row(
            "SELECT outcome FROM orders WHERE order_ref = ?1",
            [order],
            |r| r.get(0),
        )
        .optional()
        .unwrap()
}

const SETTLED: &str = "SELECT COUNT(*) FROM confirmations WHERE state = 'done'";

// -------------------------------------------------------------------- Lyra

#[tokio::test]
async fn a_validly_signed_authorised_ipn_the_gateway_does_not_know_is_not_applied() {
    let s = start().await;
    // Signed with the shop's key, shaped like an IPN, but Lyra has no such
    // transaction: the forgery the signature alone cannot catch.
    let (status, text) = s
        .daemon
        .post_form("/ipn/lyra", fixture("lyra-form/authorised.txt"))
        .await;
    assert_eq!(status, 200, "the IPN answer never waits for the gateway");
    assert!(text.starts_with("OK-"), "{text}");
    wait_count(&s.daemon, SETTLED, 1).await;

    let calls = s.lyra.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].service, "Transaction/Get");
    assert!(calls[0].authorised);
    assert_eq!(calls[0].body["uuid"], UUID);

    let events = events(&s.daemon, ORDER);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        (events[0].1.as_str(), events[0].3.as_str()),
        ("ignored", "waiting for confirmation by the gateway")
    );
    assert_eq!(events[1].0, "confirmation");
    assert_eq!(events[1].1, "ignored");
    assert!(
        events[1]
            .3
            .starts_with("not confirmed by Lyra: Lyra Transaction/Get does not know transaction"),
        "{}",
        events[1].3
    );
    assert_eq!(
        order_outcome(&s.daemon, ORDER),
        None,
        "the order never moved"
    );
    assert_eq!(
        s.daemon.count("SELECT COUNT(*) FROM outbox"),
        0,
        "nothing for the shop"
    );
    assert!(s.shop.received().is_empty());
    s.daemon.stop().await;
}

#[tokio::test]
async fn a_transaction_of_another_order_does_not_confirm() {
    let s = start().await;
    // A real transaction, replayed onto another order number.
    s.lyra.set_order_transaction(UUID, "100099", "AUTHORISED");
    let (status, _) = s
        .daemon
        .post_form("/ipn/lyra", fixture("lyra-form/authorised.txt"))
        .await;
    assert_eq!(status, 200);
    wait_count(&s.daemon, SETTLED, 1).await;
    let events = events(&s.daemon, ORDER);
    assert!(
        events[1]
            .3
            .contains("belongs to order 100099, not to order 100041"),
        "{events:?}"
    );
    assert_eq!(order_outcome(&s.daemon, ORDER), None);
    s.daemon.stop().await;
}

#[tokio::test]
async fn the_gateway_being_down_delays_the_order_but_loses_nothing_even_across_a_restart() {
    let s = start().await;
    s.lyra.set_order_transaction(UUID, ORDER, "CAPTURED");
    s.lyra.set_mode(fake_lyra_api::Mode::Down);
    let (status, _) = s
        .daemon
        .post_form("/ipn/lyra", fixture("lyra-form/authorised.txt"))
        .await;
    assert_eq!(status, 200);
    // Asked, refused, asked again: still waiting, nothing pushed.
    wait_count(
        &s.daemon,
        "SELECT COALESCE(MAX(attempts), 0) FROM confirmations WHERE state = 'waiting'",
        2,
    )
    .await;
    assert_eq!(order_outcome(&s.daemon, ORDER), None);
    assert!(s.shop.received().is_empty());
    let error: String = s
        .daemon
        .reader()
        .query_row("SELECT last_error FROM confirmations", [], |r| r.get(0))
        .unwrap();
    assert!(
        error.starts_with("Lyra Transaction/Get: HTTP 503"),
        "{error}"
    );

    // A restart while the gateway is down: the job is in the database.
    let Setup {
        daemon,
        shop,
        lyra,
        mpgs: _mpgs,
        cybs: _cybs,
        text,
        dir,
    } = s;
    daemon.stop().await;
    let daemon = Daemon::start(config(&text, dir.path())).await;
    lyra.set_mode(fake_lyra_api::Mode::Success);
    wait_count(&daemon, SETTLED, 1).await;

    let updates = shop_updates(&shop, 1).await;
    assert_eq!(updates[0]["outcome"], "accepted");
    let comment = updates[0]["comment"].as_str().unwrap();
    assert!(
        comment.contains("Confirmed with Lyra: Lyra: transaction 9b0c5a1f2e3d4c5b6a79881726354abc is CAPTURED (DEBIT)."),
        "{comment}"
    );
    assert_eq!(order_outcome(&daemon, ORDER).as_deref(), Some("accepted"));
    let events = events(&daemon, ORDER);
    assert_eq!(events.len(), 2);
    assert_eq!(
        (
            events[1].0.as_str(),
            events[1].1.as_str(),
            events[1].2.as_deref()
        ),
        ("confirmation", "applied", Some("accepted"))
    );

    // A redelivery of the same IPN changes nothing and is not asked again.
    let calls = lyra.calls().len();
    let (status, _) = daemon
        .post_form("/ipn/lyra", fixture("lyra-form/authorised.txt"))
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        daemon.count("SELECT COUNT(*) FROM confirmations"),
        1,
        "a duplicate holds nothing"
    );
    daemon.stop().await;
    assert_eq!(lyra.calls().len(), calls);
    assert_eq!(shop.received().len(), 1, "the shop is told once");
}

#[tokio::test]
async fn show_tells_waiting_for_confirmation_then_the_result() {
    let s = start().await;
    s.lyra.set_mode(fake_lyra_api::Mode::Down);
    s.lyra.set_order_transaction(UUID, ORDER, "AUTHORISED");
    let (status, _) = s
        .daemon
        .post_form("/ipn/lyra", fixture("lyra-form/authorised.txt"))
        .await;
    assert_eq!(status, 200);
    let config_path = s.dir.path().join("config.toml");
    std::fs::write(&config_path, &s.text).unwrap();
    let show = |args: Vec<&'static str>| {
        let config_path = config_path.clone();
        tokio::task::spawn_blocking(move || {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_ipnsync"))
                .arg("--config")
                .arg(&config_path)
                .args(args)
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap()
        })
    };
    let text = show(vec!["show", ORDER]).await.unwrap();
    assert!(
        text.contains("waiting for confirmation by the gateway"),
        "{text}"
    );
    s.lyra.set_mode(fake_lyra_api::Mode::Success);
    wait_count(&s.daemon, SETTLED, 1).await;
    let text = show(vec!["show", ORDER]).await.unwrap();
    assert!(text.contains("confirmation"), "{text}");
    assert!(text.contains("accepted"), "{text}");
    shop_updates(&s.shop, 1).await;
    s.daemon.stop().await;
}

// -------------------------------------------------------------------- MPGS

async fn post_mpgs(d: &Daemon, body: Vec<u8>, id: &str) -> u16 {
    d.client
        .post(d.url("/ipn/mpgs"))
        .header("content-type", "application/json; charset=utf-8")
        .header("x-notification-secret", MPGS_SECRET)
        .header("x-notification-id", id)
        .header("x-notification-attempt", "1")
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn mpgs_fixture(name: &str) -> Value {
    serde_json::from_slice(&fixture(&format!("mpgs/{name}"))).unwrap()
}

#[tokio::test]
async fn an_mpgs_webhook_is_decided_from_retrieve_order() {
    let s = start().await;
    // The gateway agrees: accepted, once, with its state in the comment.
    s.mpgs
        .set_order(&[mpgs_fixture("authorization-approved.json")]);
    let body = fixture("mpgs/authorization-approved.json");
    assert_eq!(post_mpgs(&s.daemon, body, "n-1").await, 200);
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(updates[0]["outcome"], "accepted");
    let comment = updates[0]["comment"].as_str().unwrap();
    assert!(
        comment.contains("Confirmed with Mastercard Gateway: Mastercard Gateway: order 100000300 is AUTHORIZED, transaction 1 AUTHORIZATION SUCCESS (APPROVED)"),
        "{comment}"
    );
    let calls = s.mpgs.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "GET");
    assert_eq!(
        calls[0].path,
        "/api/rest/version/78/merchant/TESTMERCHANT01/order/100000300"
    );
    assert!(calls[0].authorised, "Basic merchant.<id> + API password");
    s.daemon.stop().await;
}

#[tokio::test]
async fn an_mpgs_webhook_that_disagrees_with_retrieve_order_is_held_for_review_with_both_states() {
    let s = start().await;
    // The webhook says APPROVED; the gateway's order says the transaction
    // was declined.
    let mut declined = mpgs_fixture("authorization-approved.json");
    declined["result"] = "FAILURE".into();
    declined["response"]["gatewayCode"] = "DECLINED".into();
    declined["order"]["status"] = "FAILED".into();
    s.mpgs.set_order(&[declined]);
    let body = fixture("mpgs/authorization-approved.json");
    assert_eq!(post_mpgs(&s.daemon, body, "n-1").await, 200);
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(updates[0]["outcome"], "review", "never accepted");
    let comment = updates[0]["comment"].as_str().unwrap();
    assert_eq!(
        comment,
        "Held for review: the notification said APPROVED (accepted), but Mastercard Gateway: order 100000300 is FAILED, transaction 1 AUTHORIZATION FAILURE (DECLINED), risk ACCEPTED review NOT_REQUIRED (failed)."
    );
    let result: String = s
        .daemon
        .reader()
        .query_row("SELECT result FROM confirmations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(result, "disagreed");
    let (_, status): (String, String) = s
        .daemon
        .reader()
        .query_row(
            "SELECT origin, status FROM events WHERE origin = 'confirmation'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(status, "DECLINED", "the gateway's state is recorded");
    s.daemon.stop().await;
}

#[tokio::test]
async fn an_mpgs_order_the_gateway_does_not_know_is_not_applied() {
    let s = start().await;
    s.mpgs.set_mode(fake_mpgs_api::Mode::Normal);
    let body = fixture("mpgs/authorization-approved.json");
    assert_eq!(post_mpgs(&s.daemon, body, "n-1").await, 200);
    wait_count(&s.daemon, SETTLED, 1).await;
    let events = events(&s.daemon, "100000300");
    assert!(
        events[1]
            .3
            .contains("does not know order 100000300: INVALID_REQUEST: Unable to find order"),
        "{events:?}"
    );
    assert_eq!(order_outcome(&s.daemon, "100000300"), None);
    assert!(s.shop.received().is_empty());
    s.daemon.stop().await;
}

// ------------------------------------------------------------- Cybersource

const CYBS_ORDER: &str = "100077";
const CYBS_REQUEST: &str = "7420157839246543904951";

/// A Decision Manager `eventType` webhook for `CYBS_ORDER` whose signature
/// covers only the `payload` member (the official plugins' reading), and
/// whose payload carries no payment status: rule cs8.
async fn post_cybs_payload_signed(d: &Daemon, event_type: &str) {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let payload = format!(
        r#"{{"data":{{"id":"{CYBS_REQUEST}","referenceNumber":"{CYBS_ORDER}","notes":[{{"addedBy":"alice","comment":"ok","date":"2025-03-11T10:00:00Z"}}]}}}}"#
    );
    let body = format!(
        r#"{{"webhookId":"wh-1","productId":"decisionManager","organizationId":"{CYBS_MERCHANT}","eventType":"{event_type}","eventDate":"2025-03-11T10:01:00Z","transactionTraceId":"tt-1","requestType":"NEW","payload":{payload}}}"#
    );
    let t = "1741773600000";
    let key = STANDARD.decode(CYBS_KEY).unwrap();
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).unwrap();
    mac.update(format!("{t}.{payload}").as_bytes());
    let sig = STANDARD.encode(mac.finalize().into_bytes());
    let resp = d
        .client
        .post(d.url("/ipn/cybersource"))
        .header("content-type", "application/json")
        .header(
            "v-c-signature",
            format!("t={t};keyId={CYBS_KEY_ID};sig={sig}"),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200, "the answer never waits");
}

/// Transaction details of `CYBS_REQUEST` as Cybersource answers them.
fn cybs_real(what: Tss) -> Value {
    fake_cybs::details(CYBS_REQUEST, CYBS_ORDER, what)
}

/// Transaction details of `CYBS_REQUEST` with this payment status (the
/// OpenAPI model's optional `status`, which some answers carry).
fn cybs_details(status: &str) -> Value {
    serde_json::json!({
        "id": CYBS_REQUEST,
        "submitTimeUTC": "2025-03-11T09:58:00Z",
        "clientReferenceInformation": {"code": CYBS_ORDER},
        "applicationInformation": {"status": status, "reasonCode": "100"},
        "riskInformation": {"profile": {"name": "default", "decision": "REVIEW"}}
    })
}

/// The Conversion Detail Report's entry for `CYBS_REQUEST`: an analyst's
/// decision on the case.
fn cybs_conversion(request: &str, decision: &str) -> Value {
    serde_json::json!({
        "merchantReferenceNumber": CYBS_ORDER,
        "conversionTime": "2025-03-11T10:00:00Z",
        "requestId": request,
        "originalDecision": "REVIEW",
        "newDecision": decision,
        "reviewer": "alice",
        "reviewerComments": "verified with the customer",
        "queue": "Review Queue",
        "profile": "Auths"
    })
}

fn confirmation_state(d: &Daemon) -> (String, Option<String>) {
    d.reader()
        .query_row("SELECT state, result FROM confirmations", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap()
}

const CYBS_ATTEMPTS: &str =
    "SELECT COALESCE(MAX(attempts), 0) FROM confirmations WHERE state = 'waiting'";

// A case decision webhook is confirmed through the Conversion Detail Report
// (the record of analyst decisions), never through transaction details,
// which still show Decision Manager's REVIEW after the analyst's accept.

#[tokio::test]
async fn a_case_accept_signed_payload_only_is_confirmed_through_the_conversion_detail_report() {
    let s = start().await;
    // What production shows after an analyst's accept: transaction details
    // still hold the original request's DREVIEW; the report holds the accept.
    s.cybs
        .set_transaction(CYBS_REQUEST, cybs_real(Tss::AuthorisedReview));
    s.cybs.set_conversions(vec![
        cybs_conversion("1111111111111111111111", "REJECT"),
        cybs_conversion(CYBS_REQUEST, "ACCEPT"),
    ]);
    post_cybs_payload_signed(&s.daemon, "risk.casemanagement.decision.accept").await;
    // Accepted once Cybersource's own record agrees, not sent to review.
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(updates[0]["outcome"], "accepted");
    let comment = updates[0]["comment"].as_str().unwrap();
    assert!(
        comment.contains(&format!(
            "Confirmed with Cybersource: Conversion Detail Report: request {CYBS_REQUEST} REVIEW → ACCEPT by alice at 2025-03-11T10:00:00Z."
        )),
        "{comment}"
    );
    let calls = s.cybs.report_calls();
    assert_eq!(calls.len(), 1, "one report read");
    assert!(calls[0].1, "signed GET");
    assert!(
        s.cybs.transaction_calls().is_empty(),
        "transaction details are not asked about a case decision"
    );
    let events = events(&s.daemon, CYBS_ORDER);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(
        (events[0].1.as_str(), events[0].3.as_str()),
        ("ignored", "waiting for confirmation by the gateway")
    );
    assert_eq!(
        (events[1].0.as_str(), events[1].2.as_deref()),
        ("confirmation", Some("accepted"))
    );
    assert_eq!(
        confirmation_state(&s.daemon),
        ("done".into(), Some("confirmed".into()))
    );
    // The same webhook again (Cybersource retries): a duplicate, nothing more.
    post_cybs_payload_signed(&s.daemon, "risk.casemanagement.decision.accept").await;
    assert_eq!(s.daemon.count("SELECT COUNT(*) FROM confirmations"), 1);
    assert_eq!(
        order_outcome(&s.daemon, CYBS_ORDER).as_deref(),
        Some("accepted")
    );
    s.daemon.stop().await;
    assert_eq!(s.shop.received().len(), 1, "the shop is told once");
    assert_eq!(s.cybs.report_calls().len(), 1);
}

#[tokio::test]
async fn a_case_accept_the_report_contradicts_is_held_for_review_with_both_states() {
    let s = start().await;
    // Transaction details would agree (an approved authorisation): only the
    // report says what the analyst decided.
    s.cybs
        .set_transaction(CYBS_REQUEST, cybs_real(Tss::Authorised));
    s.cybs
        .set_conversions(vec![cybs_conversion(CYBS_REQUEST, "REJECT")]);
    post_cybs_payload_signed(&s.daemon, "risk.casemanagement.decision.accept").await;
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(updates[0]["outcome"], "review", "never accepted");
    let comment = updates[0]["comment"].as_str().unwrap();
    assert!(
        comment.starts_with("Held for review: the notification said")
            && comment.contains(&format!(
                "(accepted), but Conversion Detail Report: request {CYBS_REQUEST} REVIEW → REJECT by alice at 2025-03-11T10:00:00Z (rejected)."
            )),
        "{comment}"
    );
    assert_eq!(
        confirmation_state(&s.daemon),
        ("done".into(), Some("disagreed".into()))
    );
    assert_eq!(
        order_outcome(&s.daemon, CYBS_ORDER).as_deref(),
        Some("review")
    );
    assert!(s.cybs.transaction_calls().is_empty());
    s.daemon.stop().await;
}

#[tokio::test]
async fn a_case_reject_the_report_confirms_is_rejected() {
    let s = start().await;
    s.cybs
        .set_conversions(vec![cybs_conversion(CYBS_REQUEST, "REJECT")]);
    post_cybs_payload_signed(&s.daemon, "risk.casemanagement.decision.reject").await;
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(updates[0]["outcome"], "rejected");
    assert_eq!(
        confirmation_state(&s.daemon),
        ("done".into(), Some("confirmed".into()))
    );
    assert!(s.cybs.transaction_calls().is_empty());
    s.daemon.stop().await;
}

#[tokio::test]
async fn a_case_accept_not_in_the_report_yet_waits_then_applies_once_listed() {
    let s = start().await;
    post_cybs_payload_signed(&s.daemon, "risk.casemanagement.decision.accept").await;
    // Asked, not listed, asked again: the order has not moved.
    wait_count(&s.daemon, CYBS_ATTEMPTS, 2).await;
    assert_eq!(order_outcome(&s.daemon, CYBS_ORDER), None);
    assert!(s.shop.received().is_empty());
    let error: String = s
        .daemon
        .reader()
        .query_row("SELECT last_error FROM confirmations", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        error,
        format!("request {CYBS_REQUEST} is not in the Conversion Detail Report yet")
    );
    assert_eq!(confirmation_state(&s.daemon), ("waiting".into(), None));
    // The report catches up: the held accept is applied.
    s.cybs
        .set_conversions(vec![cybs_conversion(CYBS_REQUEST, "ACCEPT")]);
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(updates[0]["outcome"], "accepted");
    assert!(s.cybs.transaction_calls().is_empty());
    s.daemon.stop().await;
}

#[tokio::test]
async fn a_case_accept_still_missing_from_the_report_after_the_longest_wait_is_held_for_review() {
    let s = start_with("100ms").await;
    // Transaction details know the payment: they are not what decides.
    s.cybs
        .set_transaction(CYBS_REQUEST, cybs_real(Tss::Authorised));
    post_cybs_payload_signed(&s.daemon, "risk.casemanagement.decision.accept").await;
    wait_count(&s.daemon, SETTLED, 1).await;
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(updates[0]["outcome"], "review", "never accepted");
    let comment = updates[0]["comment"].as_str().unwrap();
    assert!(
        comment.contains(&format!("(accepted), but Cybersource has no record of this decision: request {CYBS_REQUEST} is not in the Conversion Detail Report")),
        "{comment}"
    );
    assert_eq!(
        confirmation_state(&s.daemon),
        ("done".into(), Some("unrecorded".into()))
    );
    assert_eq!(
        order_outcome(&s.daemon, CYBS_ORDER).as_deref(),
        Some("review")
    );
    s.daemon.stop().await;
}

// Card-processing webhooks (`payments.payments.*`) keep transaction
// details: the payment's status is what they show.

#[tokio::test]
async fn a_payment_accept_signed_payload_only_is_confirmed_through_transaction_details() {
    let s = start().await;
    s.cybs
        .set_transaction(CYBS_REQUEST, cybs_real(Tss::Authorised));
    post_cybs_payload_signed(&s.daemon, "payments.payments.accept").await;
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(updates[0]["outcome"], "accepted");
    let comment = updates[0]["comment"].as_str().unwrap();
    assert!(
        comment.contains(&format!(
            "Confirmed with Cybersource: transaction {CYBS_REQUEST} AUTHORIZED (ics_auth 100 SOK)."
        )),
        "{comment}"
    );
    assert_eq!(
        s.cybs.transaction_calls(),
        [(CYBS_REQUEST.to_owned(), true)],
        "one signed GET /tss/v2/transactions/{{id}}"
    );
    assert!(s.cybs.report_calls().is_empty(), "no report read");
    assert_eq!(
        order_outcome(&s.daemon, CYBS_ORDER).as_deref(),
        Some("accepted")
    );
    s.daemon.stop().await;
}

#[tokio::test]
async fn transaction_details_with_a_status_still_decide_from_it() {
    let s = start().await;
    s.cybs
        .set_transaction(CYBS_REQUEST, cybs_details("AUTHORIZED"));
    post_cybs_payload_signed(&s.daemon, "payments.payments.accept").await;
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(updates[0]["outcome"], "accepted");
    let comment = updates[0]["comment"].as_str().unwrap();
    assert!(
        comment.contains(&format!(
            "Confirmed with Cybersource: transaction {CYBS_REQUEST} AUTHORIZED, profile decision REVIEW."
        )),
        "{comment}"
    );
    s.daemon.stop().await;
}

#[tokio::test]
async fn a_payment_accept_cybersource_says_rejected_is_held_for_review_never_accepted() {
    let s = start().await;
    s.cybs
        .set_transaction(CYBS_REQUEST, cybs_real(Tss::AuthorisedRiskRejected));
    post_cybs_payload_signed(&s.daemon, "payments.payments.accept").await;
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(updates[0]["outcome"], "review", "never accepted");
    let comment = updates[0]["comment"].as_str().unwrap();
    assert!(
        comment.starts_with("Held for review: the notification said")
            && comment.contains(&format!(
                "(accepted), but transaction {CYBS_REQUEST} AUTHORIZED_RISK_DECLINED (ics_auth 100 SOK, ics_decision 481 DREJECT)"
            )),
        "{comment}"
    );
    assert_eq!(
        confirmation_state(&s.daemon),
        ("done".into(), Some("disagreed".into()))
    );
    s.daemon.stop().await;
}

#[tokio::test]
async fn a_payment_accept_for_a_transaction_cybersource_does_not_know_is_not_applied() {
    let s = start().await;
    post_cybs_payload_signed(&s.daemon, "payments.payments.accept").await;
    wait_count(&s.daemon, SETTLED, 1).await;
    let events = events(&s.daemon, CYBS_ORDER);
    assert_eq!(events.len(), 2, "{events:?}");
    assert!(
        events[1].3.contains(&format!(
            "not confirmed by Cybersource: Cybersource knows no transaction {CYBS_REQUEST}"
        )),
        "{events:?}"
    );
    assert_eq!(order_outcome(&s.daemon, CYBS_ORDER), None);
    assert!(s.shop.received().is_empty());
    s.daemon.stop().await;
}
