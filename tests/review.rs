//! Review actions end to end: the real daemon with a fake webhook shop,
//! fake gateway APIs that check authentication on their own, and the
//! compiled `ipnsync review …` (or the admin API) acting on an order held
//! for review while the daemon runs.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use support::daemon::{config, fixture, resign, set, Daemon};
use support::fake_cybersource_api::{self, FakeCybersourceApi};
use support::fake_lyra_api::{self, FakeLyraApi};
use support::fake_webhook::FakeWebhook;

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SITE_ID: &str = "12345678";
const REST_PASSWORD: &str = "testpassword_R3stApiPassw0rd";
const CYBS_KEY: &str = "aXBuc3luYy10ZXN0LWtleS0zMi1ieXRlcy1sb25nISE=";
const CYBS_KEY_ID: &str = "ipnsync-test-2025";
const CYBS_MERCHANT: &str = "ipnsync_demo";
const CYBS_API_KEY_ID: &str = "08c94330-0000-4000-8000-ipnsynctest01";
const CYBS_API_SECRET: &str = "aXBuc3luYy10ZXN0LXNoYXJlZC1zZWNyZXQtMzJieXQ=";
const TOKEN: &str = "admin-token-0123456789abcdef";
const UUID: &str = "5d6e7f8091a2b3c4d5e6f708192a3b4c";

struct Setup {
    daemon: Daemon,
    shop: FakeWebhook,
    lyra: FakeLyraApi,
    cybs: FakeCybersourceApi,
    config_path: PathBuf,
    _dir: tempfile::TempDir,
}

fn toml(
    dir: &Path,
    shop: &FakeWebhook,
    lyra: &FakeLyraApi,
    cybs: &FakeCybersourceApi,
    admin: &str,
) -> String {
    format!(
        r#"
{db}

[admin]
{admin}

[dispatch]
retry_schedule = ["100ms"]
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
        cybs_host = cybs.api_host(),
    )
}

async fn start_with_admin(admin: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let shop = FakeWebhook::start(WHSEC).await;
    let lyra = FakeLyraApi::start(SITE_ID, REST_PASSWORD).await;
    let cybs = FakeCybersourceApi::start(CYBS_MERCHANT, CYBS_API_KEY_ID, CYBS_API_SECRET).await;
    let text = toml(dir.path(), &shop, &lyra, &cybs, admin);
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, &text).unwrap();
    let daemon = Daemon::start(config(&text, dir.path())).await;
    Setup {
        daemon,
        shop,
        lyra,
        cybs,
        config_path,
        _dir: dir,
    }
}

async fn start() -> Setup {
    start_with_admin(&format!("token = \"{TOKEN}\"")).await
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }

    #[track_caller]
    fn code(self, expected: i32) -> Run {
        assert_eq!(
            self.code, expected,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// `ipnsync --config <the test config> ARGS…`, off the async runtime so the
/// in-process daemon and fakes keep serving.
async fn cli(s: &Setup, args: &[&str]) -> Run {
    let mut all: Vec<std::ffi::OsString> = vec!["--config".into(), s.config_path.clone().into()];
    all.extend(args.iter().map(Into::into));
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ipnsync"))
            .args(&all)
            .env("RUST_LOG", "warn")
            .env("USER", "tester")
            .env_remove("SUDO_USER")
            .output()
            .expect("run ipnsync")
    })
    .await
    .unwrap();
    Run {
        code: output.status.code().expect("exited"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// Waits up to 5 s for the shop to hold `n` updates; all must verify.
async fn shop_updates(shop: &FakeWebhook, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = shop.received();
        if got.len() >= n || std::time::Instant::now() > deadline {
            assert!(
                got.iter().all(|r| r.verified),
                "shop could not verify a push"
            );
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

async fn post_ipn(d: &Daemon, body: Vec<u8>) -> String {
    let (status, text) = d.post_form("/ipn/lyra", body).await;
    assert_eq!(status, 200, "{text}");
    text.trim().to_owned()
}

/// The order held for review, already pushed to the shop as `review`.
async fn order_in_review(s: &Setup) {
    s.lyra.set_transaction(UUID, "AUTHORISED_TO_VALIDATE");
    let answer = post_ipn(&s.daemon, fixture("lyra-form/to-validate.txt")).await;
    assert_eq!(answer, "OK-Payment review, order has been updated.");
    shop_updates(&s.shop, 1).await;
}

fn review_actions(show: &Value) -> Vec<Value> {
    show["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "review_action")
        .cloned()
        .collect()
}

// -------------------------------------------------------------------- Lyra

#[tokio::test]
async fn cli_validate_pushes_accepted_once_and_the_confirming_ipn_is_ignored() {
    let s = start().await;
    order_in_review(&s).await;

    let list = cli(&s, &["review", "list", "--json"]).await.code(0).json();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["order"], "100042");
    assert_eq!(list[0]["amount"], "29.90 EUR");
    assert_eq!(list[0]["outcome"], "review");
    let left = list[0]["time_left_seconds"].as_i64().unwrap();
    assert!((6 * 86400..=7 * 86400).contains(&left), "{left}");
    let table = cli(&s, &["review", "list"]).await.code(0).stdout;
    assert!(table.starts_with("SHOP  ORDER   OUTCOME"), "{table}");
    assert!(
        table.contains("29.90 EUR") && table.contains("6d 23h"),
        "{table}"
    );

    let run = cli(
        &s,
        &[
            "review",
            "validate",
            "100042",
            "--comment",
            "Called the buyer",
            "--actor",
            "alice",
        ],
    )
    .await
    .code(0);
    assert!(
        run.stdout.contains("order moved review → accepted"),
        "{}",
        run.stdout
    );

    let calls = s.lyra.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].service, "Transaction/Validate");
    assert!(calls[0].authorised, "Basic shop id + REST password");
    assert!(calls[0].content_type.starts_with("application/json"));
    assert_eq!(
        calls[0].body,
        json!({"uuid": UUID, "comment": "ipnsync operator alice: Called the buyer"})
    );

    let updates = shop_updates(&s.shop, 2).await;
    assert_eq!(outcomes(&updates), ["review", "accepted"]);
    assert_eq!(updates[1]["previous_outcome"], "review");
    let comment = updates[1]["comment"].as_str().unwrap();
    assert!(
        comment.starts_with(
            "Payment validated by operator alice via ipnsync: Lyra Transaction/Validate"
        ),
        "{comment}"
    );
    assert!(comment.contains("Called the buyer"), "{comment}");

    // The gateway confirms with its back-office notification: stored,
    // answered 200, and no second update for the shop.
    let confirm = resign(&fixture("lyra-form/validated-merch-bo.txt"), |p| {
        set(p, "vads_url_check_src", "MERCH_BO");
    });
    let answer = post_ipn(&s.daemon, confirm).await;
    assert_eq!(answer, "OK-Notification recorded, order unchanged.");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(s.shop.received().len(), 2, "the shop is told once");

    let show = cli(&s, &["show", "100042", "--json"]).await.code(0).json();
    assert_eq!(show["outcome"], "accepted");
    let actions = review_actions(&show);
    assert_eq!(actions.len(), 1);
    let a = &actions[0];
    assert_eq!(
        (
            &a["action"],
            &a["actor"],
            &a["gateway"],
            &a["gateway_status"],
            &a["outcome"]
        ),
        (
            &json!("validate"),
            &json!("alice"),
            &json!("lyra"),
            &json!("AUTHORISED"),
            &json!("accepted")
        )
    );
    assert_eq!(a["comment"], "Called the buyer");
    assert!(a["outbox_id"].is_i64() && a["error"].is_null());
    let last = show["timeline"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["kind"], "decision");
    assert_eq!(last["origin"], "MERCH_BO");
    assert_eq!(last["verdict"], "ignored");
    assert_eq!(last["reason"], "order is already accepted");

    let text = cli(&s, &["show", "100042"]).await.code(0).stdout;
    assert!(
        text.contains("review    validate by alice via lyra: AUTHORISED → accepted, update #2"),
        "{text}"
    );
    assert!(text.contains("“Called the buyer”"), "{text}");

    // Nothing left to review; a second validate has nothing to do.
    let table = cli(&s, &["review", "list"]).await.code(0).stdout;
    assert_eq!(table, "no orders waiting for review\n");
    let again = cli(&s, &["review", "validate", "100042"]).await.code(1);
    assert!(
        again.stderr.contains("is accepted, not in review"),
        "{}",
        again.stderr
    );
    assert_eq!(s.lyra.calls().len(), 1);
    assert_eq!(cli(&s, &["review", "validate", "999"]).await.code, 1);
    s.daemon.stop().await;
}

#[tokio::test]
async fn cli_deny_cancels_at_lyra_and_in_the_shop() {
    let s = start().await;
    order_in_review(&s).await;
    let report = cli(
        &s,
        &["review", "deny", "100042", "--actor", "bob", "--json"],
    )
    .await
    .code(0)
    .json();
    assert_eq!(report["outcome"], "canceled");
    assert_eq!(report["gateway_status"], json!(["CANCELLED"]));
    assert_eq!(report["transactions"], json!([UUID]));
    let calls = s.lyra.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].service, "Transaction/CancelOrRefund");
    assert_eq!(calls[0].body["resolutionMode"], "CANCELLATION_ONLY");
    assert_eq!(calls[0].body["uuid"], UUID);

    let updates = shop_updates(&s.shop, 2).await;
    assert_eq!(outcomes(&updates), ["review", "canceled"]);
    assert!(updates[1]["comment"]
        .as_str()
        .unwrap()
        .starts_with("Payment denied by operator bob via ipnsync"));

    // Lyra's CANCELLED notification of the same operation changes nothing.
    let cancelled = resign(&fixture("lyra-form/to-validate.txt"), |p| {
        set(p, "vads_trans_status", "CANCELLED");
        set(p, "vads_url_check_src", "MERCH_BO");
    });
    assert_eq!(
        post_ipn(&s.daemon, cancelled).await,
        "OK-Notification recorded, order unchanged."
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.shop.received().len(), 2);
    s.daemon.stop().await;
}

#[tokio::test]
async fn psp_100_changes_nothing_and_points_to_the_back_office_then_shop_only_updates_the_shop() {
    let s = start().await;
    s.lyra.set_mode(fake_lyra_api::Mode::NotSubscribed);
    order_in_review(&s).await;

    let run = cli(&s, &["review", "validate", "100042"]).await.code(1);
    assert!(run.stderr.contains("PSP_100"), "{}", run.stderr);
    assert!(run.stderr.contains("back office"), "{}", run.stderr);
    assert!(run.stderr.contains("--shop-only"), "{}", run.stderr);
    assert!(!run.stderr.contains(REST_PASSWORD));
    let list = cli(&s, &["review", "list", "--json"]).await.code(0).json();
    assert_eq!(list.as_array().unwrap().len(), 1, "still in review");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.shop.received().len(), 1, "no shop update");

    let run = cli(&s, &["review", "validate", "100042", "--shop-only"])
        .await
        .code(0);
    assert!(run.stdout.contains("in the shop only"), "{}", run.stdout);
    assert!(run.stdout.contains("note: shop only"), "{}", run.stdout);
    assert_eq!(s.lyra.calls().len(), 1, "the gateway is not asked again");
    let updates = shop_updates(&s.shop, 2).await;
    assert_eq!(outcomes(&updates), ["review", "accepted"]);
    assert!(updates[1]["comment"]
        .as_str()
        .unwrap()
        .contains("by operator tester via ipnsync: in the shop only, Lyra was not asked"));

    let show = cli(&s, &["show", "100042", "--json"]).await.code(0).json();
    let actions = review_actions(&show);
    assert_eq!(
        actions.len(),
        2,
        "the refused attempt is on the timeline too"
    );
    assert!(actions[0]["error"].as_str().unwrap().contains("PSP_100"));
    assert!(actions[0]["outcome"].is_null() && actions[0]["outbox_id"].is_null());
    assert_eq!(actions[1]["gateway"], "none");
    assert_eq!(actions[1]["outcome"], "accepted");
    // No secret in the database.
    let stored: String = s
        .daemon
        .reader()
        .prepare("SELECT coalesce(error, '') || coalesce(comment, '') FROM review_actions")
        .unwrap()
        .query_map([], |r| r.get::<_, String>(0))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
        .concat();
    assert!(!stored.contains(REST_PASSWORD));
    s.daemon.stop().await;
}

#[tokio::test]
async fn an_unexpected_status_or_a_hanging_gateway_is_an_error_without_effect() {
    let s = start().await;
    order_in_review(&s).await;

    s.lyra
        .set_mode(fake_lyra_api::Mode::Status("CAPTURED".to_owned()));
    let run = cli(&s, &["review", "validate", "100042"]).await.code(1);
    assert!(
        run.stderr
            .contains("Transaction/Validate answered detailedStatus CAPTURED, expected AUTHORISED or WAITING_AUTHORISATION"),
        "{}",
        run.stderr
    );

    s.lyra.set_mode(fake_lyra_api::Mode::Hang);
    let started = std::time::Instant::now();
    let run = cli(&s, &["review", "deny", "100042"]).await.code(1);
    assert!(
        run.stderr.contains("could not be reached: timed out"),
        "{}",
        run.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(10));

    let list = cli(&s, &["review", "list", "--json"]).await.code(0).json();
    assert_eq!(list[0]["outcome"], "review");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.shop.received().len(), 1);
    assert_eq!(
        s.daemon.count(
            "SELECT COUNT(*) FROM review_actions WHERE error IS NOT NULL AND outcome IS NULL"
        ),
        2
    );
    s.daemon.stop().await;
}

// ------------------------------------------------------------- Cybersource

#[tokio::test]
async fn cybersource_accept_with_capture_is_signed_and_reaches_the_shop_once() {
    let s = start().await;
    let post_cybs = |name: &'static str| {
        let d = &s.daemon;
        async move {
            let body = fixture(&format!("cybersource/{name}.json"));
            let sig = String::from_utf8(fixture(&format!("cybersource/{name}.sig"))).unwrap();
            let resp = d
                .client
                .post(d.url("/ipn/cybersource"))
                .header("content-type", "application/json")
                .header("v-c-signature", sig.trim())
                .body(body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            resp.text().await.unwrap().trim().to_owned()
        }
    };
    assert_eq!(
        post_cybs("profile-review").await,
        "OK-Payment review, order has been updated."
    );
    shop_updates(&s.shop, 1).await;

    let report = cli(
        &s,
        &[
            "review",
            "validate",
            "100000123",
            "--capture",
            "--comment",
            "fine",
            "--json",
        ],
    )
    .await
    .code(0)
    .json();
    assert_eq!(report["gateway"], "cybersource");
    assert_eq!(report["gateway_status"], json!(["ACCEPTED"]));
    let calls = s.cybs.calls();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].verified, "HTTP Signature: {}", calls[0].problem);
    assert_eq!(calls[0].decision_id, "7420157839246543904951");
    assert_eq!(
        calls[0].body,
        json!({
            "decisionInformation": {"decision": "ACCEPT", "comments": "ipnsync operator tester: fine"},
            "processingInformation": {"actionList": ["CAPTURE"]}
        })
    );
    let updates = shop_updates(&s.shop, 2).await;
    assert_eq!(outcomes(&updates), ["review", "accepted"]);
    assert!(updates[1]["comment"]
        .as_str()
        .unwrap()
        .contains("Cybersource Decision Manager ACCEPT with CAPTURE"));

    // The analyst decision webhook that follows changes nothing.
    assert_eq!(
        post_cybs("case-accept").await,
        "OK-Notification recorded, order unchanged."
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.shop.received().len(), 2);

    // --capture belongs to validate; --reverse to deny.
    assert_eq!(
        cli(&s, &["review", "deny", "100000123", "--capture"])
            .await
            .code,
        2
    );
    s.daemon.stop().await;
}

#[tokio::test]
async fn a_refused_cybersource_action_reports_the_gateway_text() {
    let s = start().await;
    let body = fixture("cybersource/profile-review.json");
    let sig = String::from_utf8(fixture("cybersource/profile-review.sig")).unwrap();
    let resp = s
        .daemon
        .client
        .post(s.daemon.url("/ipn/cybersource"))
        .header("content-type", "application/json")
        .header("v-c-signature", sig.trim())
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    s.cybs.set_mode(fake_cybersource_api::Mode::Fail {
        status: 400,
        body: json!({"status": "INVALID_REQUEST", "reason": "INVALID_DATA", "message": "Case is not in review"}).to_string(),
    });
    let run = cli(&s, &["review", "deny", "100000123", "--reverse"])
        .await
        .code(1);
    assert!(
        run.stderr
            .contains("Cybersource refused to deny: HTTP 400: INVALID_REQUEST: INVALID_DATA: Case is not in review"),
        "{}",
        run.stderr
    );
    assert_eq!(
        s.cybs.calls()[0].body["processingInformation"]["actionList"],
        json!(["REVERSE"])
    );
    s.daemon.stop().await;
}

/// Posts a Cybersource webhook, signed over the whole body (the form the
/// SFCC fork uses) with the test key.
async fn post_cybs_json(d: &Daemon, body: &Value) -> String {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let body = body.to_string();
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
    resp.text().await.unwrap().trim().to_owned()
}

/// A Decision Manager "review" webhook for `order`, with `data.id` when
/// given.
fn cybs_review(order: &str, id: Option<&str>) -> Value {
    let mut data = json!({
        "referenceNumber": order,
        "status": "AUTHORIZED_PENDING_REVIEW",
        "errorInformation": {"reason": "DECISION_PROFILE_REVIEW"}
    });
    if let Some(id) = id {
        data["id"] = json!(id);
    }
    json!({
        "webhookId": format!("wh-{order}-{}", id.unwrap_or("none")),
        "productId": "fraudManagementEssentials",
        "organizationId": CYBS_MERCHANT,
        "eventType": "risk.profile.decision.review",
        "eventDate": "2025-03-11T10:01:00Z",
        "requestType": "NEW",
        "payload": {"data": data}
    })
}

#[tokio::test]
async fn without_a_request_id_cybersource_is_not_asked_about_the_order_number() {
    use reqwest::Method;
    let s = start().await;
    // No data.id / requestId: transaction_id falls back to the order
    // number, which is no Decision Manager case id.
    assert_eq!(
        post_cybs_json(&s.daemon, &cybs_review("100000777", None)).await,
        "OK-Payment review, order has been updated."
    );
    shop_updates(&s.shop, 1).await;

    let run = cli(&s, &["review", "validate", "100000777"]).await.code(1);
    assert!(
        run.stderr.contains("no Decision Manager request id"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("--shop-only"), "{}", run.stderr);
    let (status, body) = admin(
        &s,
        Method::POST,
        "/admin/orders/hook/100000777/deny",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!((status, &body["error"]), (409, &json!("no_decision_id")));
    assert!(
        s.cybs.calls().is_empty(),
        "no case action on /risk/v1/decisions/<order number>: {:?}",
        s.cybs.calls()
    );
    let list = cli(&s, &["review", "list", "--json"]).await.code(0).json();
    assert_eq!(list[0]["outcome"], "review", "nothing changed");

    cli(&s, &["review", "deny", "100000777", "--shop-only"])
        .await
        .code(0);
    let updates = shop_updates(&s.shop, 2).await;
    assert_eq!(outcomes(&updates), ["review", "canceled"]);
    assert!(s.cybs.calls().is_empty());
    s.daemon.stop().await;
}

#[tokio::test]
async fn a_cybersource_failure_on_a_later_decision_names_the_ones_already_done() {
    let s = start().await;
    const FIRST: &str = "7420000000000000000001";
    const SECOND: &str = "7420000000000000000002";
    for id in [FIRST, SECOND] {
        post_cybs_json(&s.daemon, &cybs_review("100000888", Some(id))).await;
    }
    shop_updates(&s.shop, 1).await;
    s.cybs.set_mode(fake_cybersource_api::Mode::FailFor {
        id: SECOND.into(),
        status: 400,
        body: json!({"status": "INVALID_REQUEST", "reason": "INVALID_DATA", "message": "Case is not in review"}).to_string(),
    });
    let run = cli(&s, &["review", "validate", "100000888"]).await.code(1);
    assert!(
        run.stderr.contains(&format!(
            "transaction {SECOND}: HTTP 400: INVALID_REQUEST: INVALID_DATA: Case is not in review (already done: {FIRST} → ACCEPTED)"
        )),
        "{}",
        run.stderr
    );
    let ids: Vec<String> = s.cybs.calls().into_iter().map(|c| c.decision_id).collect();
    assert_eq!(ids, [FIRST, SECOND]);
    let show = cli(&s, &["show", "100000888", "--json"])
        .await
        .code(0)
        .json();
    let actions = review_actions(&show);
    assert_eq!(actions.len(), 1);
    assert!(
        actions[0]["error"]
            .as_str()
            .unwrap()
            .contains(&format!("already done: {FIRST} → ACCEPTED")),
        "the timeline says it too: {}",
        actions[0]
    );
    s.daemon.stop().await;
}

// ------------------------------------------------------ suspected fraud, races

#[tokio::test]
async fn validating_a_suspected_fraud_checks_the_transaction_instead_of_validating_it() {
    const FRAUD_UUID: &str = "1f2e3d4c5b6a79881726354a5b6c7d8e";
    let s = start().await;
    // The external analyser failed: an AUTHORISED payment, suspected.
    let suspected = resign(&fixture("lyra-form/clearsale-fraud.txt"), |p| {
        set(p, "vads_risk_analysis_result", "ERR");
    });
    post_ipn(&s.daemon, suspected).await;
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(outcomes(&updates), ["suspected_fraud"]);

    // A payment the gateway has cancelled meanwhile is not accepted.
    s.lyra.set_transaction(FRAUD_UUID, "CANCELLED");
    let run = cli(&s, &["review", "validate", "100043"]).await.code(1);
    assert!(
        run.stderr.contains("Transaction/Get answered detailedStatus CANCELLED and operationType DEBIT: not a successful or pending DEBIT"),
        "{}",
        run.stderr
    );

    s.lyra.set_transaction(FRAUD_UUID, "AUTHORISED");
    let report = cli(&s, &["review", "validate", "100043", "--json"])
        .await
        .code(0)
        .json();
    assert_eq!(report["previous_outcome"], "suspected_fraud");
    assert_eq!(report["outcome"], "accepted");
    assert_eq!(report["gateway_status"], json!(["AUTHORISED"]));
    let calls = s.lyra.calls();
    let services: Vec<&str> = calls.iter().map(|c| c.service.as_str()).collect();
    assert_eq!(
        services,
        ["Transaction/Get", "Transaction/Get"],
        "never Transaction/Validate"
    );
    assert_eq!(calls[1].body, json!({"uuid": FRAUD_UUID}));
    assert_eq!(
        s.lyra.transaction(FRAUD_UUID).as_deref(),
        Some("AUTHORISED")
    );
    let updates = shop_updates(&s.shop, 2).await;
    assert_eq!(outcomes(&updates), ["suspected_fraud", "accepted"]);
    assert!(
        updates[1]["comment"]
            .as_str()
            .unwrap()
            .contains("Lyra Transaction/Get (a successful payment, accepted despite the fraud flag), transaction 1f2e3d4c5b6a79881726354a5b6c7d8e → AUTHORISED"),
        "{}",
        updates[1]["comment"]
    );
    s.daemon.stop().await;
}

#[tokio::test]
async fn concurrent_actions_on_one_order_reach_the_gateway_once() {
    use reqwest::Method;
    let s = start().await;
    order_in_review(&s).await;
    // Slower than it takes to start the CLI, well within the 1 s timeout.
    s.lyra
        .set_mode(fake_lyra_api::Mode::Slow(Duration::from_millis(700)));
    let validate = "/admin/orders/hook/100042/validate";
    let first = admin(&s, Method::POST, validate, Some(TOKEN), None);
    let others = async {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while s.lyra.calls().is_empty() {
            assert!(std::time::Instant::now() < deadline, "no gateway call");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let deny = cli(&s, &["review", "deny", "100042"]).await;
        let again = admin(&s, Method::POST, validate, Some(TOKEN), None).await;
        (deny, again)
    };
    let ((status, report), (deny, (again_status, again))) = tokio::join!(first, others);
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["outcome"], "accepted");
    assert_eq!(report["note"], Value::Null);
    let deny = deny.code(1);
    assert!(
        deny.stderr
            .contains("validate by admin-api is already under way"),
        "{}",
        deny.stderr
    );
    assert_eq!(
        (again_status, &again["error"]),
        (409, &json!("action_in_progress"))
    );
    let calls = s.lyra.calls();
    assert_eq!(calls.len(), 1, "one gateway call: {calls:?}");
    assert_eq!(calls[0].service, "Transaction/Validate");
    let updates = shop_updates(&s.shop, 2).await;
    assert_eq!(outcomes(&updates), ["review", "accepted"]);
    let show = cli(&s, &["show", "100042", "--json"]).await.code(0).json();
    let actions = review_actions(&show);
    assert_eq!(actions.len(), 1, "the refused ones claimed nothing");
    assert_eq!(actions[0]["state"], "done");
    s.daemon.stop().await;
}

#[tokio::test]
async fn a_gateway_action_that_cannot_be_recorded_says_so_and_is_not_retried() {
    use reqwest::Method;
    let s = start().await;
    order_in_review(&s).await;
    // The claim is written; finishing it fails, as a full disk would.
    s.daemon
        .reader()
        .execute_batch(&support::backend::failing_trigger_sql(
            "review_actions",
            "state",
            "NEW.state = 'done'",
            "simulated disk failure",
        ))
        .unwrap();
    let validate = "/admin/orders/hook/100042/validate";
    let (status, body) = admin(&s, Method::POST, validate, Some(TOKEN), None).await;
    assert_eq!(
        (status, &body["error"]),
        (500, &json!("gateway_acted_not_recorded")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "Lyra acted (validate {UUID} → AUTHORISED) but ipnsync could not record it: "
        )) && message.contains("simulated disk failure")
            && message.contains("do not retry, check the order"),
        "{message}"
    );
    assert_eq!(s.lyra.transaction(UUID).as_deref(), Some("AUTHORISED"));

    // The claim stays: a retry does not reach the gateway again.
    let run = cli(&s, &["review", "validate", "100042"]).await.code(1);
    assert!(run.stderr.contains("already under way"), "{}", run.stderr);
    assert_eq!(s.lyra.calls().len(), 1);
    s.daemon.stop().await;
}

#[tokio::test]
async fn the_cli_exits_4_when_the_gateway_acted_but_nothing_was_recorded() {
    let s = start().await;
    order_in_review(&s).await;
    s.daemon
        .reader()
        .execute_batch(&support::backend::failing_trigger_sql(
            "review_actions",
            "state",
            "NEW.state = 'done'",
            "simulated disk failure",
        ))
        .unwrap();
    let run = cli(&s, &["review", "validate", "100042"]).await.code(4);
    assert!(
        run.stderr.contains("but ipnsync could not record it")
            && run.stderr.contains("do not retry"),
        "{}",
        run.stderr
    );
    let list = cli(&s, &["review", "list", "--json"]).await.code(0).json();
    assert_eq!(list[0]["outcome"], "review", "the order did not move");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(s.shop.received().len(), 1, "no shop update");
    s.daemon.stop().await;
}

// --------------------------------------------------------------- admin API

async fn admin(
    s: &Setup,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let mut req = s
        .daemon
        .client
        .request(method, format!("http://{}{}", s.daemon.admin, path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_owned());
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test]
async fn admin_api_needs_the_token_and_answers_with_clear_codes() {
    use reqwest::Method;
    let s = start().await;
    order_in_review(&s).await;
    let validate = "/admin/orders/hook/100042/validate";

    let (status, body) = admin(&s, Method::GET, "/admin/review", None, None).await;
    assert_eq!((status, &body["error"]), (401, &json!("unauthorized")));
    let (status, _) = admin(
        &s,
        Method::GET,
        "/admin/review",
        Some("wrong-token-0123456789"),
        None,
    )
    .await;
    assert_eq!(status, 401);
    let (status, _) = admin(&s, Method::POST, validate, None, Some("{}")).await;
    assert_eq!(status, 401);
    assert!(
        s.lyra.calls().is_empty(),
        "nothing happens without the token"
    );

    let (status, list) = admin(&s, Method::GET, "/admin/review", Some(TOKEN), None).await;
    assert_eq!(status, 200);
    assert_eq!(list[0]["order"], "100042");

    let (status, body) = admin(
        &s,
        Method::POST,
        validate,
        Some(TOKEN),
        Some("{\"actor\": 1}"),
    )
    .await;
    assert_eq!((status, &body["error"]), (400, &json!("bad_request")));
    let (status, body) = admin(
        &s,
        Method::POST,
        "/admin/orders/hook/999/validate",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!((status, &body["error"]), (404, &json!("unknown_order")));

    let (status, report) = admin(
        &s,
        Method::POST,
        validate,
        Some(TOKEN),
        Some(r#"{"comment": "all good", "actor": "carol"}"#),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["outcome"], "accepted");
    assert_eq!(report["moved"], true);
    assert_eq!(
        s.lyra.calls()[0].body["comment"],
        "ipnsync operator carol: all good"
    );
    let updates = shop_updates(&s.shop, 2).await;
    assert_eq!(outcomes(&updates), ["review", "accepted"]);

    let (status, body) = admin(&s, Method::POST, validate, Some(TOKEN), None).await;
    assert_eq!((status, &body["error"]), (409, &json!("not_in_review")));
    let (status, _) = admin(&s, Method::GET, validate, Some(TOKEN), None).await;
    assert_eq!(status, 405);

    s.lyra.set_mode(fake_lyra_api::Mode::NotSubscribed);
    let second = resign(&fixture("lyra-form/to-validate.txt"), |p| {
        set(p, "vads_order_id", "100043");
        set(p, "vads_trans_uuid", "00000000000000000000000000000043");
    });
    post_ipn(&s.daemon, second).await;
    let (status, body) = admin(
        &s,
        Method::POST,
        "/admin/orders/hook/100043/deny",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (502, &json!("gateway_not_subscribed"))
    );
    s.daemon.stop().await;
}

#[tokio::test]
async fn without_a_token_the_admin_api_does_not_exist() {
    let s = start_with_admin("").await;
    order_in_review(&s).await;
    let (status, body) = s.daemon.admin_get("/admin/review").await;
    assert_eq!((status, body.as_str()), (404, "not found\n"));
    let (status, _) = admin(
        &s,
        reqwest::Method::POST,
        "/admin/orders/hook/100042/validate",
        Some(TOKEN),
        None,
    )
    .await;
    assert_eq!(status, 404);
    assert!(s.lyra.calls().is_empty());
    // The other admin routes are unaffected.
    assert_eq!(s.daemon.admin_get("/healthz").await.0, 200);
    s.daemon.stop().await;
}

#[tokio::test]
async fn a_risk_rejected_authorisation_is_cancelled_at_the_gateway_automatically() {
    const FRAUD_UUID: &str = "1f2e3d4c5b6a79881726354a5b6c7d8e";
    let s = start().await;
    s.lyra.set_transaction(FRAUD_UUID, "AUTHORISED");
    // AUTHORISED + ClearSale FRD: rejected in the shop, still alive at Lyra.
    post_ipn(&s.daemon, fixture("lyra-form/clearsale-fraud.txt")).await;
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(outcomes(&updates), ["rejected"]);
    let comment = updates[0]["comment"].as_str().unwrap();
    assert!(comment.contains("Action needed"), "{comment}");

    // The source has the review API: the daemon cancels the transaction.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while s.lyra.transaction(FRAUD_UUID).as_deref() != Some("CANCELLED")
        && std::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let calls = s.lyra.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].service, "Transaction/CancelOrRefund");
    assert_eq!(calls[0].body["uuid"], FRAUD_UUID);
    assert_eq!(calls[0].body["resolutionMode"], "CANCELLATION_ONLY");

    // Recorded on the timeline; the order stays rejected, nothing else
    // pushed, nothing left to do.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let show = loop {
        let show = cli(&s, &["show", "100043", "--json"]).await.code(0).json();
        if review_actions(&show)
            .first()
            .is_some_and(|a| a["gateway_status"] == "CANCELLED")
            || std::time::Instant::now() > deadline
        {
            break show;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(show["outcome"], "rejected");
    let actions = review_actions(&show);
    assert_eq!(actions.len(), 1, "{actions:?}");
    assert_eq!(actions[0]["action"], "deny");
    assert_eq!(actions[0]["actor"], "ipnsync (automatic)");
    assert_eq!(actions[0]["gateway_status"], "CANCELLED");
    assert!(actions[0]["error"].is_null());
    let list = cli(&s, &["review", "list", "--json"]).await.code(0).json();
    assert_eq!(list, json!([]));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.shop.received().len(), 1);
}
