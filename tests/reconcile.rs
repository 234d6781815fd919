//! Reconciliation end to end (issue 15): orders that never heard back are
//! brought up to date from the gateway's own state, by the daemon's
//! background task (`[reconcile]`) and by `ipnsync reconcile`, with one shop
//! update each, recorded as a `reconciliation` event.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::daemon::{config, fixture, resign, set, Daemon};
use support::fake_cybersource_api::FakeCybersourceApi;
use support::fake_lyra_api::FakeLyraApi;
use support::fake_mpgs_api::FakeMpgsApi;
use support::fake_webhook::FakeWebhook;

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SITE_ID: &str = "12345678";
const REST_PASSWORD: &str = "testpassword_R3stApiPassw0rd";
const CYBS_KEY: &str = "aXBuc3luYy10ZXN0LWtleS0zMi1ieXRlcy1sb25nISE=";
const CYBS_KEY_ID: &str = "ipnsync-test-2025";
const CYBS_MERCHANT: &str = "ipnsync_demo";
const CYBS_API_KEY_ID: &str = "08c94330-0000-4000-8000-ipnsynctest01";
const CYBS_API_SECRET: &str = "aXBuc3luYy10ZXN0LXNoYXJlZC1zZWNyZXQtMzJieXQ=";
const MPGS_SECRET: &str = "mpgs-secret-0123456789abcdef0123";
const MPGS_MERCHANT: &str = "TESTMERCHANT01";
const MPGS_PASSWORD: &str = "mpgs-api-password-0123456789abcd";
/// `vads_trans_uuid` and `vads_order_id` of `lyra-form/authorised.txt`.
const UUID: &str = "9b0c5a1f2e3d4c5b6a79881726354abc";
const ORDER: &str = "100041";

struct Setup {
    daemon: Daemon,
    shop: FakeWebhook,
    lyra: FakeLyraApi,
    mpgs: FakeMpgsApi,
    cybs: FakeCybersourceApi,
    config_path: PathBuf,
    _dir: tempfile::TempDir,
}

fn toml(
    dir: &Path,
    shop: &FakeWebhook,
    lyra: &FakeLyraApi,
    mpgs: &FakeMpgsApi,
    cybs: &FakeCybersourceApi,
    reconcile: &str,
) -> String {
    format!(
        r#"
{db}

[dispatch]
retry_schedule = ["100ms"]
jitter = 0.0
poll_interval = "50ms"

{reconcile}

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
"#,
        db = support::backend::config_line(&support::backend::fresh_database(dir)),
        shop_url = shop.url(),
        lyra_url = lyra.api_url(),
        mpgs_url = mpgs.gateway_url(),
        cybs_host = cybs.api_host(),
    )
}

async fn start(reconcile: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let shop = FakeWebhook::start(WHSEC).await;
    let lyra = FakeLyraApi::start(SITE_ID, REST_PASSWORD).await;
    let mpgs = FakeMpgsApi::start(MPGS_MERCHANT, MPGS_PASSWORD).await;
    let cybs = FakeCybersourceApi::start(CYBS_MERCHANT, CYBS_API_KEY_ID, CYBS_API_SECRET).await;
    let text = toml(dir.path(), &shop, &lyra, &mpgs, &cybs, reconcile);
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, &text).unwrap();
    let daemon = Daemon::start(config(&text, dir.path())).await;
    // Ready = the database is migrated and takes writes.
    while daemon.admin_get("/readyz").await.0 != 200 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Setup {
        daemon,
        shop,
        lyra,
        mpgs,
        cybs,
        config_path,
        _dir: dir,
    }
}

/// Reconciliation every 100 ms, of orders that have not moved for 1 ms.
const EAGER: &str = "[reconcile]\ninterval = \"100ms\"\nmin_age = \"1ms\"\nmax_age = \"1h\"";

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

fn outcomes(updates: &[Value]) -> Vec<&str> {
    updates
        .iter()
        .map(|u| u["outcome"].as_str().unwrap())
        .collect()
}

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn cli(s: &Setup, args: &[&str]) -> Run {
    let mut all: Vec<std::ffi::OsString> = vec!["--config".into(), s.config_path.clone().into()];
    all.extend(args.iter().map(Into::into));
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ipnsync"))
            .args(&all)
            .env("RUST_LOG", "warn")
            .output()
            .expect("run ipnsync")
    })
    .await
    .unwrap();
    Run {
        code: output.status.code().expect("exited"),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

#[tokio::test]
async fn a_pending_order_whose_ipn_never_came_is_accepted_by_the_background_task_once() {
    let s = start(EAGER).await;
    // Lyra authorised the payment; its IPN never reaches ipnsync.
    s.lyra.set_order_transaction(UUID, ORDER, "AUTHORISED");
    let pending = resign(&fixture("lyra-form/authorised.txt"), |p| {
        set(p, "vads_trans_status", "WAITING_AUTHORISATION");
    });
    let (status, _) = s.daemon.post_form("/ipn/lyra", pending).await;
    assert_eq!(status, 200);

    let updates = shop_updates(&s.shop, 2).await;
    assert_eq!(outcomes(&updates), ["pending", "accepted"]);
    let comment = updates[1]["comment"].as_str().unwrap();
    assert!(
        comment.contains("Found by reconciliation with Lyra: Lyra: order 100041, transaction 9b0c5a1f2e3d4c5b6a79881726354abc is AUTHORISED."),
        "{comment}"
    );
    assert!(s
        .lyra
        .calls()
        .iter()
        .any(|c| c.service == "Order/Get" && c.body["orderId"] == ORDER && c.authorised));

    // The late IPN is recorded and changes nothing; the next passes find
    // the order accepted and leave it alone.
    let (status, _) = s
        .daemon
        .post_form("/ipn/lyra", fixture("lyra-form/authorised.txt"))
        .await;
    assert_eq!(status, 200);
    let show = cli(&s, &["show", ORDER, "--json"]).await;
    assert_eq!(show.code, 0);
    let show: Value = serde_json::from_str(&show.stdout).unwrap();
    assert_eq!(show["outcome"], "accepted");
    let origins: Vec<&str> = show["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "decision")
        .map(|e| e["origin"].as_str().unwrap())
        .collect();
    assert_eq!(origins, ["PAY", "reconciliation", "PAY"]);
    s.daemon.stop().await;
    assert_eq!(s.shop.received().len(), 2, "one push from reconciliation");
}

#[tokio::test]
async fn an_mpgs_analyst_decision_without_webhook_reaches_the_shop() {
    let s = start(EAGER).await;
    let required: Value =
        serde_json::from_slice(&fixture("mpgs/authorization-review-required.json")).unwrap();
    s.mpgs.set_order(&[required]);
    let status = s
        .daemon
        .client
        .post(s.daemon.url("/ipn/mpgs"))
        .header("content-type", "application/json")
        .header("x-notification-secret", MPGS_SECRET)
        .header("x-notification-id", "n-1")
        .body(fixture("mpgs/authorization-review-required.json"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    assert_eq!(outcomes(&shop_updates(&s.shop, 1).await), ["review"]);
    // Still pending review at the gateway: passes leave the order alone.
    while s.mpgs.calls().len() < 2 {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(s.shop.received().len(), 1);

    // The analyst accepts in Merchant Administration; no webhook says so.
    let accepted: Value =
        serde_json::from_slice(&fixture("mpgs/authorization-review-accepted.json")).unwrap();
    s.mpgs.set_order(&[accepted]);
    let updates = shop_updates(&s.shop, 2).await;
    assert_eq!(outcomes(&updates), ["review", "accepted"]);
    let comment = updates[1]["comment"].as_str().unwrap();
    assert!(
        comment.contains("Found by reconciliation with Mastercard Gateway"),
        "{comment}"
    );
    assert!(s.mpgs.calls().iter().all(|c| c.authorised));
    s.daemon.stop().await;
}

#[tokio::test]
async fn the_reconcile_command_asks_about_an_order_ipnsync_never_heard_of() {
    let s = start("").await;
    s.lyra.set_order_transaction(UUID, ORDER, "CAPTURED");

    let unknown = cli(&s, &["reconcile", "--order", ORDER]).await;
    assert_eq!(
        unknown.code, 1,
        "an unknown order needs its source: {unknown:?}"
    );
    assert!(unknown.stderr.contains("--source"), "{}", unknown.stderr);

    let dry = cli(
        &s,
        &[
            "reconcile",
            "--order",
            ORDER,
            "--source",
            "lyra",
            "--dry-run",
        ],
    )
    .await;
    assert_eq!(dry.code, 0);
    assert_eq!(
        dry.stdout,
        "hook 100041: would move new → accepted (Lyra: order 100041, transaction 9b0c5a1f2e3d4c5b6a79881726354abc is CAPTURED)\n"
    );
    assert_eq!(s.daemon.count("SELECT COUNT(*) FROM outbox"), 0);

    let run = cli(&s, &["reconcile", "--order", ORDER, "--source", "lyra"]).await;
    assert_eq!(run.code, 0);
    assert_eq!(
        run.stdout,
        "hook 100041: moved new → accepted, update #1 (Lyra: order 100041, transaction 9b0c5a1f2e3d4c5b6a79881726354abc is CAPTURED)\n"
    );
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(outcomes(&updates), ["accepted"]);

    let again = cli(&s, &["reconcile", "--order", ORDER, "--json"]).await;
    assert_eq!(again.code, 0);
    let again: Value = serde_json::from_str(&again.stdout).unwrap();
    assert_eq!(again[0]["result"], "unchanged");
    assert_eq!(again[0]["outcome"], "accepted");

    // Without [reconcile], the daemon never asks on its own.
    let nothing = cli(&s, &["reconcile"]).await;
    assert_eq!(nothing.stdout, "no orders to reconcile\n");
    s.daemon.stop().await;
    assert_eq!(s.shop.received().len(), 1);
}

/// A signed Decision Manager "review" webhook for `order` (case `id`).
async fn post_cybs_review(d: &Daemon, order: &str, id: &str) {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let body = serde_json::json!({
        "webhookId": format!("wh-{order}"),
        "productId": "fraudManagementEssentials",
        "organizationId": CYBS_MERCHANT,
        "eventType": "risk.profile.decision.review",
        "eventDate": "2025-03-11T10:01:00Z",
        "requestType": "NEW",
        "payload": {"data": {"id": id, "referenceNumber": order,
            "status": "AUTHORIZED_PENDING_REVIEW",
            "errorInformation": {"reason": "DECISION_PROFILE_REVIEW"}}}
    })
    .to_string();
    let t = "1741773600000";
    let key = STANDARD.decode(CYBS_KEY).unwrap();
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(&key).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
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
    assert_eq!(resp.status().as_u16(), 200);
}

#[tokio::test]
async fn a_cybersource_analyst_decision_found_only_in_the_conversion_report_reaches_the_shop() {
    let s = start(EAGER).await;
    const ID: &str = "7420157839246543904951";
    post_cybs_review(&s.daemon, "100000888", ID).await;
    assert_eq!(outcomes(&shop_updates(&s.shop, 1).await), ["review"]);

    // The analyst accepts the case; no webhook is subscribed for it. The
    // report also lists an order of the merchant account ipnsync never
    // saw: left alone.
    s.cybs.set_conversions(vec![
        serde_json::json!({"merchantReferenceNumber": "100000888", "conversionTime": "2026-11-24T10:00:00Z",
            "requestId": ID, "originalDecision": "REVIEW", "newDecision": "ACCEPT",
            "reviewer": "alice", "reviewerComments": "Buyer called", "queue": "Review", "profile": "Default"}),
        serde_json::json!({"merchantReferenceNumber": "555", "requestId": "7420157839246543900000",
            "originalDecision": "REVIEW", "newDecision": "REJECT", "reviewer": "bob"}),
    ]);
    let updates = shop_updates(&s.shop, 2).await;
    assert_eq!(outcomes(&updates), ["review", "accepted"]);
    let comment = updates[1]["comment"].as_str().unwrap();
    assert!(
        comment.contains(
            "Found by reconciliation with Cybersource: Conversion Detail Report: request 7420157839246543904951 REVIEW → ACCEPT by alice."
        ),
        "{comment}"
    );
    let calls = s.cybs.report_calls();
    assert!(calls.iter().all(|(_, verified)| *verified), "{calls:?}");
    assert!(
        calls[0].0.contains("organizationId=ipnsync_demo"),
        "{calls:?}"
    );
    // Later passes read the same report again: nothing new.
    let seen = calls.len();
    while s.cybs.report_calls().len() < seen + 2 {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        s.daemon.count("SELECT COUNT(*) FROM orders"),
        1,
        "no order is created from the report"
    );
    s.daemon.stop().await;
    assert_eq!(s.shop.received().len(), 2);
}
