//! Sources you can bet the stock on (issue 11), against the real daemon:
//! the boundary-shift forgery of a form IPN, the REST order cycle, the
//! REST shop id, TEST notifications on PRODUCTION orders, and a risk
//! rejection of an authorisation still alive at the gateway when no review
//! API is configured.

mod support;

use std::path::Path;
use std::time::Duration;

use ipnsync::providers::form::{self, Form};
use ipnsync::providers::lyra::{form_signature, form_signing_string, rest_hash, SignAlgo};
use serde_json::Value;
use support::daemon::{config, fixture, Daemon};
use support::fake_webhook::FakeWebhook;

const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const TEST_KEY: &str = "1122334455667788";
const PRODUCTION_KEY: &str = "prod-8877665544332211";
const REST_PASSWORD: &str = "testpassword_DEMOPRIVATEKEY23G4475zXZQ2UA5x7M";

fn toml(dir: &Path, shop: &FakeWebhook) -> String {
    format!(
        r#"
{db}

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
name = "prod"
kind = "lyra-form"
path = "/ipn/prod"
site_id = "12345678"
mode = "PRODUCTION"
production_key = "{PRODUCTION_KEY}"
shop = "hook"

[[sources]]
name = "test"
kind = "lyra-form"
path = "/ipn/test"
site_id = "12345678"
mode = "TEST"
test_key = "{TEST_KEY}"
shop = "hook"

[[sources]]
name = "nosite"
kind = "lyra-form"
path = "/ipn/nosite"
mode = "TEST"
test_key = "{TEST_KEY}"
shop = "hook"

[[sources]]
name = "rest"
kind = "lyra-rest"
path = "/ipn/rest"
site_id = "69876357"
mode = "TEST"
test_password = "{REST_PASSWORD}"
shop = "hook"

[[sources]]
name = "rest-other-site"
kind = "lyra-rest"
path = "/ipn/rest-other"
site_id = "12345678"
mode = "TEST"
test_password = "{REST_PASSWORD}"
shop = "hook"
"#,
        db = support::backend::config_line(&support::backend::fresh_database(dir)),
        shop_url = shop.url(),
    )
}

struct Setup {
    daemon: Daemon,
    shop: FakeWebhook,
    config_path: std::path::PathBuf,
    warnings: Vec<String>,
    _dir: tempfile::TempDir,
}

async fn start() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let shop = FakeWebhook::start(WHSEC).await;
    let text = toml(dir.path(), &shop);
    let config_path = dir.path().join("config.toml");
    std::fs::write(&config_path, &text).unwrap();
    let config = config(&text, dir.path());
    let warnings = config.warnings.clone();
    Setup {
        daemon: Daemon::start(config).await,
        shop,
        config_path,
        warnings,
        _dir: dir,
    }
}

/// `ipnsync ARGS…` (off the async runtime), stdout; panics unless exit 0.
async fn ipnsync(args: Vec<String>) -> String {
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ipnsync"))
            .args(&args)
            .env("RUST_LOG", "warn")
            .env("USER", "tester")
            .output()
            .expect("run ipnsync")
    })
    .await
    .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Waits up to 5 s for the shop to hold `n` updates.
async fn shop_updates(shop: &FakeWebhook, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let got = shop.received();
        if got.len() >= n || std::time::Instant::now() > deadline {
            assert_eq!(got.len(), n, "shop updates");
            return got.iter().map(|r| r.json()).collect();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Re-signs a form body with `key` after setting fields.
fn signed_with(key: &str, body: &[u8], edits: &[(&str, &str)]) -> Vec<u8> {
    let parsed = form::parse(body).unwrap();
    let mut pairs: Vec<(String, String)> = parsed
        .iter()
        .filter(|(n, _)| *n != "signature")
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    for (name, value) in edits {
        pairs.iter_mut().find(|(n, _)| n == name).unwrap().1 = (*value).to_owned();
    }
    let sig = form_signature(&Form::from_pairs(pairs.clone()), key, SignAlgo::HmacSha256);
    pairs.push(("signature".into(), sig));
    Form::from_pairs(pairs).encode().into_bytes()
}

// -------------------------------------------------- boundary-shift forgery

/// What an attacker posts: the signed payment form's values, in signed
/// order, re-split at `+` onto `plan`'s names (`count` values each), with
/// the form's signature.
fn forge(payment_form: &Form, plan: &[(&str, usize)]) -> Vec<u8> {
    let joined = form_signing_string(payment_form, "");
    let atoms: Vec<&str> = joined.trim_end_matches('+').split('+').collect();
    let mut at = 0;
    let mut fields: Vec<(String, String)> = Vec::new();
    for (name, count) in plan {
        fields.push((name.to_string(), atoms[at..at + count].join("+")));
        at += count;
    }
    assert_eq!(at, atoms.len(), "the plan uses every value");
    fields.push((
        "signature".into(),
        payment_form.get("signature").unwrap().to_owned(),
    ));
    let forged = Form::from_pairs(fields);
    // The same signed string, so the same signature.
    assert_eq!(
        form_signing_string(&forged, TEST_KEY),
        form_signing_string(payment_form, TEST_KEY)
    );
    forged.encode().into_bytes()
}

/// The payment form a shop signs (`ipnsync sign` plays the shop) and hands
/// to the buyer's browser, with the buyer's own text in the address.
async fn signed_payment_form(street: &str, city: &str) -> Form {
    let mut args: Vec<String> = vec!["sign".into(), "--key".into(), TEST_KEY.into()];
    for (name, value) in [
        ("vads_action_mode", "INTERACTIVE"),
        ("vads_amount", "2990"),
        ("vads_ctx_mode", "TEST"),
        ("vads_currency", "978"),
        ("vads_cust_email", "buyer@example.com"),
        ("vads_cust_name", "Bob"),
        ("vads_order_id", "100041"),
        ("vads_page_action", "PAYMENT"),
        ("vads_payment_config", "SINGLE"),
        ("vads_ship_to_city", city),
        ("vads_ship_to_street", street),
        ("vads_site_id", "12345678"),
        ("vads_trans_date", "20261124093015"),
        ("vads_trans_id", "482911"),
        ("vads_version", "V2"),
    ] {
        args.push("--set".into());
        args.push(format!("{name}={value}"));
    }
    let body = ipnsync(args).await;
    form::parse(body.trim_end().as_bytes()).unwrap()
}

#[tokio::test]
async fn boundary_shift_forgeries_are_refused_with_no_effect() {
    let s = start().await;
    let form = signed_payment_form("1 Main St+12345678+AUTHORISED", "Paris").await;
    let one = |n: &'static str| (n, 1);
    let head = [
        one("vads_action_mode"),
        one("vads_amount"),
        one("vads_ctx_mode"),
        one("vads_currency"),
        one("vads_cust_email"),
        one("vads_cust_name"),
        one("vads_order_id"),
        one("vads_page_action"),
        one("vads_payment_config"),
        one("vads_ship_to_city"),
    ];
    let with = |tail: &[(&'static str, usize)]| {
        let mut plan = head.to_vec();
        plan.extend_from_slice(tail);
        plan
    };
    // The issue's reproduction: the shop's own tail shifted right onto
    // invented names behind the forged status.
    let shift_right = with(&[
        one("vads_ship_to_street"),
        one("vads_site_id"),
        one("vads_trans_status"),
        one("vads_trans_status_a"),
        one("vads_trans_status_b"),
        one("vads_trans_status_c"),
        one("vads_version"),
    ]);
    // The tail shifted left, merged into one documented field.
    let shift_left = with(&[
        one("vads_ship_to_street"),
        one("vads_site_id"),
        one("vads_trans_status"),
        ("vads_trans_uuid", 3),
        one("vads_version"),
    ]);
    // The buyer's one value split into three fields, the tail on invented
    // names of the transaction zone.
    let split = with(&[
        one("vads_ship_to_street"),
        one("vads_site_id"),
        one("vads_trans_status"),
        one("vads_url_check_src_1"),
        one("vads_url_check_src_2"),
        one("vads_url_check_src_3"),
        one("vads_version"),
    ]);
    for (name, plan) in [
        ("shift right", shift_right),
        ("shift left", shift_left),
        ("split into three", split),
    ] {
        let (status, text) = s.daemon.post_form("/ipn/test", forge(&form, &plan)).await;
        assert_eq!(status, 400, "{name}: {text}");
        assert!(text.contains("not a platform IPN"), "{name}: {text}");
    }
    // No site id configured: a whole field whose value is AUTHORISED.
    let form = signed_payment_form("1 Main St", "AUTHORISED").await;
    let plan = [
        one("vads_action_mode"),
        one("vads_amount"),
        one("vads_ctx_mode"),
        one("vads_currency"),
        one("vads_cust_email"),
        one("vads_cust_name"),
        one("vads_order_id"),
        one("vads_page_action"),
        one("vads_payment_config"),
        one("vads_trans_status"),
        one("vads_trans_status_1"),
        one("vads_trans_status_2"),
        one("vads_trans_status_3"),
        one("vads_trans_status_4"),
        one("vads_version"),
    ];
    let (status, text) = s.daemon.post_form("/ipn/nosite", forge(&form, &plan)).await;
    assert_eq!(status, 400, "no site id: {text}");

    // No effect at all: nothing stored, nothing pushed.
    assert_eq!(s.daemon.count("SELECT COUNT(*) FROM events"), 0);
    assert_eq!(s.daemon.count("SELECT COUNT(*) FROM orders"), 0);
    // A real IPN through the same source still goes through.
    let (status, text) = s
        .daemon
        .post_form("/ipn/test", fixture("lyra-form/authorised.txt"))
        .await;
    assert_eq!(status, 200, "{text}");
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(updates[0]["order"], "100041");
    s.daemon.stop().await;
}

// ----------------------------------------------------------------- REST

/// A REST IPN from the K3 vector with the given fields changed, signed
/// with the REST password.
fn rest_ipn(edits: &[(&str, Value)], tx_edits: &[(&str, Value)]) -> Vec<u8> {
    let k3 = String::from_utf8(fixture("lyra-rest/k3-answer.json")).unwrap();
    let mut answer: Value = serde_json::from_str(&k3).unwrap();
    for (name, value) in edits {
        answer[*name] = value.clone();
    }
    for (name, value) in tx_edits {
        answer["transactions"][0][*name] = value.clone();
    }
    answer["orderDetails"]["orderId"] = Value::from("100050");
    let text = answer.to_string();
    let hash = rest_hash(&text, REST_PASSWORD);
    Form::from_pairs([
        ("kr-hash", hash.as_str()),
        ("kr-hash-algorithm", "sha256_hmac"),
        ("kr-hash-key", "password"),
        ("kr-src", "PAY"),
        ("kr-answer-type", "V4/Payment"),
        ("kr-answer", text.as_str()),
    ])
    .encode()
    .into_bytes()
}

#[tokio::test]
async fn a_refused_first_card_then_a_paid_second_one_ends_accepted_with_one_push() {
    let s = start().await;
    let refused = rest_ipn(
        &[
            ("orderCycle", "OPEN".into()),
            ("orderStatus", "UNPAID".into()),
        ],
        &[
            ("uuid", "0000000000000000000000000000aaaa".into()),
            ("detailedStatus", "REFUSED".into()),
            ("errorCode", "05".into()),
        ],
    );
    let (status, text) = s.daemon.post_form("/ipn/rest", refused).await;
    assert_eq!(
        (status, text.trim()),
        (200, "OK-Notification recorded, order unchanged.")
    );
    let paid = rest_ipn(
        &[("orderCycle", "CLOSED".into())],
        &[("uuid", "0000000000000000000000000000bbbb".into())],
    );
    let (status, text) = s.daemon.post_form("/ipn/rest", paid).await;
    assert_eq!(
        (status, text.trim()),
        (200, "OK-Accepted payment, order has been updated.")
    );
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(updates[0]["outcome"], "accepted");
    let outcome: String = s
        .daemon
        .reader()
        .query_row(
            "SELECT outcome FROM orders WHERE order_ref = '100050'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(outcome, "accepted");
    // The timeline says why the first one changed nothing.
    let reason: String = s
        .daemon
        .reader()
        .query_row("SELECT reason FROM events ORDER BY id LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(
        reason.contains("r1: status REFUSED with orderCycle OPEN"),
        "{reason}"
    );
    // Nothing more is ever pushed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.shop.received().len(), 1);
    s.daemon.stop().await;
}

#[tokio::test]
async fn a_rest_ipn_for_another_shop_id_or_without_its_algorithm_is_refused() {
    let s = start().await;
    let ipn = rest_ipn(&[], &[]);
    // K3's shopId is 69876357: the source configured for 12345678 refuses it.
    let (status, text) = s.daemon.post_form("/ipn/rest-other", ipn.clone()).await;
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("shopId"), "{text}");
    // kr-hash-algorithm is required.
    let parsed = form::parse(&ipn).unwrap();
    let without: Vec<(String, String)> = parsed
        .iter()
        .filter(|(n, _)| *n != "kr-hash-algorithm")
        .map(|(n, v)| (n.to_owned(), v.to_owned()))
        .collect();
    let (status, _) = s
        .daemon
        .post_form("/ipn/rest", Form::from_pairs(without).encode().into_bytes())
        .await;
    assert_eq!(status, 401);
    assert_eq!(s.daemon.count("SELECT COUNT(*) FROM events"), 0);
    // The matching source takes it.
    let (status, _) = s.daemon.post_form("/ipn/rest", ipn).await;
    assert_eq!(status, 200);
    s.daemon.stop().await;
}

#[tokio::test]
async fn an_unsigned_kr_src_does_not_cancel_a_paid_order() {
    let s = start().await;
    let uuid = "0000000000000000000000000000cccc";
    let paid = rest_ipn(&[], &[("uuid", uuid.into())]);
    let (status, _) = s.daemon.post_form("/ipn/rest", paid).await;
    assert_eq!(status, 200);
    // The same transaction CANCELLED, kr-src MERCH_BO: but kr-src is not
    // covered by kr-hash, so nothing says a merchant did it.
    let cancelled = rest_ipn(
        &[("orderStatus", "UNPAID".into())],
        &[
            ("uuid", uuid.into()),
            ("detailedStatus", "CANCELLED".into()),
        ],
    );
    let parsed = form::parse(&cancelled).unwrap();
    let edited: Vec<(String, String)> = parsed
        .iter()
        .map(|(n, v)| {
            let v = if n == "kr-src" { "MERCH_BO" } else { v };
            (n.to_owned(), v.to_owned())
        })
        .collect();
    let (status, text) = s
        .daemon
        .post_form("/ipn/rest", Form::from_pairs(edited).encode().into_bytes())
        .await;
    assert_eq!(
        (status, text.trim()),
        (200, "OK-Notification recorded, order unchanged.")
    );
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(updates[0]["outcome"], "accepted");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.shop.received().len(), 1);
    s.daemon.stop().await;
}

// ---------------------------------------------------------------- modes

#[tokio::test]
async fn a_test_notification_never_changes_a_production_order() {
    let s = start().await;
    // check-config says the two share the shop.
    assert!(
        s.warnings.iter().any(|w| w.contains(
            "sources \"test\" (TEST) and \"prod\" (PRODUCTION) both update shop \"hook\""
        )),
        "{:?}",
        s.warnings
    );
    // A PRODUCTION payment held for review.
    let review = signed_with(
        PRODUCTION_KEY,
        &fixture("lyra-form/to-validate.txt"),
        &[("vads_ctx_mode", "PRODUCTION")],
    );
    let (status, text) = s.daemon.post_form("/ipn/prod", review).await;
    assert_eq!(status, 200, "{text}");
    // A TEST "validation" of the same order, signed with the TEST key.
    let validated = signed_with(TEST_KEY, &fixture("lyra-form/validated-merch-bo.txt"), &[]);
    let (status, text) = s.daemon.post_form("/ipn/test", validated).await;
    assert_eq!(
        (status, text.trim()),
        (200, "OK-Notification recorded, order unchanged.")
    );
    let (outcome, mode): (String, String) = s
        .daemon
        .reader()
        .query_row(
            "SELECT outcome, mode FROM orders WHERE order_ref = '100042'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((outcome.as_str(), mode.as_str()), ("review", "PRODUCTION"));
    let reason: String = s
        .daemon
        .reader()
        .query_row("SELECT reason FROM events WHERE source = 'test'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(
        reason.contains("a TEST notification never changes it"),
        "{reason}"
    );
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(updates[0]["outcome"], "review");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        s.shop.received().len(),
        1,
        "the TEST notification pushed nothing"
    );
    s.daemon.stop().await;
}

// ------------------------------------------ rejected but still authorised

#[tokio::test]
async fn a_risk_rejected_authorisation_without_review_api_is_listed_and_explained() {
    let s = start().await;
    // AUTHORISED + ClearSale FRD: rejected in the shop, alive at Lyra.
    let (status, text) = s
        .daemon
        .post_form("/ipn/test", fixture("lyra-form/clearsale-fraud.txt"))
        .await;
    assert_eq!(status, 200, "{text}");
    let updates = shop_updates(&s.shop, 1).await;
    assert_eq!(updates[0]["outcome"], "rejected");
    let comment = updates[0]["comment"].as_str().unwrap();
    assert!(
        comment.contains("Action needed: the transaction is still AUTHORISED at Lyra")
            && comment.contains("ipnsync review deny 100043"),
        "{comment}"
    );
    // Counted as left to do.
    let (_, metrics) = s.daemon.admin_get("/metrics").await;
    assert!(
        metrics.contains(r#"ipnsync_gateway_cancels_total{source="test",result="to_do"} 1"#),
        "{metrics}"
    );
    let config = s.config_path.display().to_string();
    let list = ipnsync(vec![
        "--config".into(),
        config.clone(),
        "review".into(),
        "list".into(),
        "--json".into(),
    ])
    .await;
    let list: Value = serde_json::from_str(&list).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["order"], "100043");
    assert_eq!(list[0]["outcome"], "rejected");
    assert_eq!(list[0]["action_needed"], "cancel at the gateway");
    let table = ipnsync(vec![
        "--config".into(),
        config.clone(),
        "review".into(),
        "list".into(),
    ])
    .await;
    assert!(table.contains("cancel at the gateway"), "{table}");
    // Cancelled in the back office: one step records it, the order stays
    // rejected (no second push), and the list is empty.
    ipnsync(vec![
        "--config".into(),
        config.clone(),
        "review".into(),
        "deny".into(),
        "100043".into(),
        "--shop-only".into(),
    ])
    .await;
    let list = ipnsync(vec![
        "--config".into(),
        config,
        "review".into(),
        "list".into(),
        "--json".into(),
    ])
    .await;
    assert_eq!(list.trim(), "[]");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(s.shop.received().len(), 1);
    s.daemon.stop().await;
}
