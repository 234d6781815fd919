//! Shop pushes a merchant can trust (issue 12), end to end: a reload that
//! reaches the dispatcher, at most one notification per update when the
//! shop answers late, customer texts apart from the operator's comment,
//! the amount check, and what an operator sees afterwards.

mod support;

use std::sync::Arc;
use std::time::Duration;

use support::daemon::{config, fixture, resign, set, Daemon};
use support::fake_opencart::{self, FakeOpenCart, Version};
use support::fake_webhook::FakeWebhook;

const OC_KEY: &str = "oc-api-key";
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const FAST: &str = r#"["100ms", "100ms", "100ms", "100ms", "100ms", "100ms"]"#;

/// The demo Lyra source wired to one shop (`shop` holds its kind, URL,
/// credentials and options).
fn with_shop(shop: &str, timeout: &str) -> String {
    format!(
        r#"
[dispatch]
retry_schedule = {FAST}
jitter = 0.0
poll_interval = "50ms"

[[sources]]
name = "lyra"
kind = "lyra-form"
path = "/ipn/lyra"
mode = "TEST"
test_key = "1122334455667788"
shop = "shop"

[[shops]]
name = "shop"
timeout = "{timeout}"
connect_timeout = "1s"
{shop}
"#
    )
}

fn opencart(shop: &FakeOpenCart, kind: &str, key: &str, extra: &str) -> String {
    format!(
        "kind = \"{kind}\"\nbase_url = \"{}\"\nusername = \"{}\"\nkey = \"{key}\"\n{extra}",
        shop.base_url(),
        fake_opencart::USERNAME
    )
}

async fn eventually<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..300 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// An AUTHORISED IPN (29.90 EUR unless `amount` says otherwise). `uuid`
/// is a short hex tag, left-padded to the 32 hex digits a real form IPN
/// carries (the form shape check refuses anything else).
fn paid(order: &str, uuid: &str, amount: &str) -> Vec<u8> {
    resign(&fixture("lyra-form/authorised.txt"), |p| {
        set(p, "vads_order_id", order);
        set(p, "vads_trans_uuid", &format!("{uuid:0>32}"));
        set(p, "vads_amount", amount);
        set(p, "vads_effective_amount", amount);
    })
}

fn outbox_state(d: &Daemon, id: i64) -> String {
    d.reader()
        .query_row("SELECT state FROM outbox WHERE id = ?1", [id], |r| r.get(0))
        .unwrap()
}

// ------------------------------------------------------------------ reload

/// A reload (what SIGHUP sends) with the right key and another status
/// reaches the next push and the retry of a row that failed before it.
#[tokio::test]
async fn a_reload_applies_a_new_shop_key_and_status_to_the_next_push_and_a_retry() {
    let shop = fake_opencart::start(Version::OpenCart3, OC_KEY).await;
    shop.add_order_with_total(100041, 1, "29.9000", "EUR", "1.00000000");
    shop.add_order_with_total(100050, 1, "29.9000", "EUR", "1.00000000");
    let dir = tempfile::tempdir().unwrap();
    let wrong = config(
        &with_shop(&opencart(&shop, "opencart3", "wrong-key", ""), "1s"),
        dir.path(),
    );
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(wrong.clone()));
    let d = Daemon::start_with(
        wrong,
        ipnsync::RunOptions {
            reload: Some(rx),
            ..Default::default()
        },
    )
    .await;
    let (status, _) = d.post_form("/ipn/lyra", paid("100041", "a1", "2990")).await;
    assert_eq!(status, 200);
    eventually("the refused update to go dead", || {
        outbox_state(&d, 1) == "dead"
    })
    .await;

    // The operator fixes the key and maps accepted to Complete (5).
    let right = config(
        &with_shop(
            &opencart(&shop, "opencart3", OC_KEY, "statuses = { accepted = 5 }"),
            "1s",
        ),
        dir.path(),
    );
    // The dispatcher takes a reload before it reads the outbox again.
    tx.send(Arc::new(right)).unwrap();
    let (status, _) = d.post_form("/ipn/lyra", paid("100050", "b1", "2990")).await;
    assert_eq!(status, 200);
    eventually("the next push with the new key", || {
        shop.order_status(100050) == Some(5)
    })
    .await;

    let mut conn = d.reader();
    assert_eq!(ipnsync::store::operator::retry(&mut conn, None).unwrap(), 1);
    eventually("the retried row with the new key and status", || {
        shop.order_status(100041) == Some(5)
    })
    .await;
    eventually("the retried row to be delivered", || {
        outbox_state(&d, 1) == "delivered"
    })
    .await;
    d.stop().await;
}

// --------------------------------------------------------------- slow shop

/// OpenCart 3 processes each call but answers after the client gave up,
/// three times: the order is read before each re-send, and the customer
/// gets one history row and one e-mail.
#[tokio::test]
async fn a_slow_opencart_3_gets_one_history_row_and_one_notification() {
    let shop = fake_opencart::start(Version::OpenCart3, OC_KEY).await;
    shop.add_order_with_total(100041, 1, "29.9000", "EUR", "1.00000000");
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_shop(
        &opencart(
            &shop,
            "opencart3",
            OC_KEY,
            "notify = [\"accepted\"]\namount_check = false",
        ),
        "400ms",
    );
    let d = Daemon::start(config(&cfg, dir.path())).await;
    shop.answer_late_next(3, Duration::from_millis(1200));
    let (status, _) = d.post_form("/ipn/lyra", paid("100041", "a1", "2990")).await;
    assert_eq!(status, 200);
    eventually("the update to be delivered", || {
        outbox_state(&d, 1) == "delivered"
    })
    .await;
    // Three late answers, so at least three timeouts (more only if the
    // machine is too slow to answer within the timeout at all).
    assert!(
        d.count("SELECT COUNT(*) FROM push_attempts WHERE result = 'retry'") >= 3,
        "three timeouts"
    );
    let history = shop.history(100041);
    assert_eq!(history.len(), 1, "{history:?}");
    assert!(history[0].notify);
    assert_eq!(shop.order_status(100041), Some(2));
    let detail: String = d
        .reader()
        .query_row(
            "SELECT detail FROM push_attempts WHERE result = 'delivered'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(detail.contains("already applied"), "{detail}");
    d.stop().await;
}

/// A request the shop applies after the daemon stopped waiting for it (a
/// PHP request runs on after its caller gave up): the retry must not read
/// the order before that stray request had its time, or it finds the order
/// unchanged and sends the update a second time, notifying the customer
/// twice. Rule "a stray request gets its time" in `dispatch::retry`.
#[tokio::test]
async fn a_request_the_shop_applies_after_the_timeout_is_not_sent_again() {
    let shop = fake_opencart::start(Version::OpenCart3, OC_KEY).await;
    shop.add_order_with_total(100041, 1, "29.9000", "EUR", "1.00000000");
    shop.add_order_with_total(100042, 1, "29.9000", "EUR", "1.00000000");
    let dir = tempfile::tempdir().unwrap();
    // Timeout 600 ms, first retry 100 ms later: without the rule the retry
    // reads the order at ~700 ms, before the stray request lands at 900 ms;
    // with it, at ~1,200 ms, after.
    let cfg = with_shop(
        &opencart(
            &shop,
            "opencart3",
            OC_KEY,
            "notify = [\"accepted\"]\namount_check = false",
        ),
        "600ms",
    );
    let d = Daemon::start(config(&cfg, dir.path())).await;
    // A first update opens the session, so that the held request below is
    // the history call itself, not the login.
    let (status, _) = d.post_form("/ipn/lyra", paid("100041", "a1", "2990")).await;
    assert_eq!(status, 200);
    eventually("the first update", || outbox_state(&d, 1) == "delivered").await;
    shop.hang_next(1, Duration::from_millis(900));
    let (status, _) = d.post_form("/ipn/lyra", paid("100042", "a2", "2990")).await;
    assert_eq!(status, 200);
    eventually("the second update", || outbox_state(&d, 2) == "delivered").await;
    // Past the stray request's landing, whatever the retry did.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // As with a late answer (above): the stray request's entry is the one
    // history row, and the customer was told once.
    let history = shop.history(100042);
    assert_eq!(history.len(), 1, "{history:?}");
    assert!(history[0].notify);
    let (gap_ms, detail): (i64, String) = d
        .reader()
        .query_row(
            "SELECT at - (SELECT at FROM push_attempts WHERE outbox_id = 2 AND result = 'retry'),
                    detail
             FROM push_attempts WHERE outbox_id = 2 AND result = 'delivered'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert!(detail.contains("already applied"), "{detail}");
    // The retry waited the shop's timeout, not the schedule's 100 ms.
    assert!(gap_ms >= 600, "retried {gap_ms} ms after the timeout");
    d.stop().await;
}

/// OpenCart 4.1 cannot be asked: re-sends go without a notification, and
/// the timeline says so.
#[tokio::test]
async fn a_slow_opencart_4_never_notifies_twice() {
    let shop = fake_opencart::start(Version::OpenCart41, OC_KEY).await;
    shop.add_order(100041, 1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_shop(
        &opencart(&shop, "opencart4.1", OC_KEY, "notify = [\"accepted\"]"),
        "400ms",
    );
    let d = Daemon::start(config(&cfg, dir.path())).await;
    shop.answer_late_next(3, Duration::from_millis(1200));
    let (status, _) = d.post_form("/ipn/lyra", paid("100041", "a1", "2990")).await;
    assert_eq!(status, 200);
    eventually("the update to be delivered", || {
        outbox_state(&d, 1) == "delivered"
    })
    .await;
    let history = shop.history(100041);
    assert_eq!(
        history.iter().filter(|r| r.notify).count(),
        1,
        "one notification: {history:?}"
    );
    let detail: String = d
        .reader()
        .query_row(
            "SELECT detail FROM push_attempts WHERE result = 'delivered'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        detail.contains("without notifying the customer"),
        "{detail}"
    );
    d.stop().await;
}

/// A webhook receiver that answers late gets the same id every time, and
/// re-sends say they may be repeats: it processes one update.
#[tokio::test]
async fn a_slow_webhook_receiver_processes_one_update() {
    let hook = FakeWebhook::start(WHSEC).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_shop(
        &format!(
            "kind = \"webhook\"\nbase_url = \"{}\"\nkey = \"{WHSEC}\"\nnotify = [\"accepted\"]",
            hook.url()
        ),
        "400ms",
    );
    let d = Daemon::start(config(&cfg, dir.path())).await;
    hook.answer_late_next(3, Duration::from_millis(1200));
    let (status, _) = d.post_form("/ipn/lyra", paid("100041", "a1", "2990")).await;
    assert_eq!(status, 200);
    eventually("the update to be delivered", || {
        outbox_state(&d, 1) == "delivered"
    })
    .await;
    let received = hook.received();
    assert!(received.len() >= 4, "three late answers, then one on time");
    assert!(received.iter().all(|r| r.id == received[0].id));
    assert_eq!(received[0].json()["redelivery"], false);
    assert!(received[1..].iter().all(|r| r.json()["redelivery"] == true));
    let processed = hook.processed();
    assert_eq!(processed.len(), 1);
    let body = processed[0].json();
    assert_eq!(
        body["customer_text"],
        "Your payment of 29.90 EUR for order 100041 has been received."
    );
    assert_eq!(body["notify"], true);
    d.stop().await;
}

// ----------------------------------------------------------- customer text

/// The entry that e-mails the customer holds the customer text only; the
/// operator's comment (rule, transaction, card mask, marker) is in an entry
/// that notifies nobody. A configured template is used as written.
#[tokio::test]
async fn customers_see_the_customer_text_never_the_operator_comment() {
    let shop = fake_opencart::start(Version::OpenCart3, OC_KEY).await;
    shop.add_order_with_total(100041, 1, "29.9000", "EUR", "1.00000000");
    shop.add_order_with_total(100050, 1, "29.9000", "EUR", "1.00000000");
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_shop(
        &opencart(&shop, "opencart3", OC_KEY, "notify = [\"accepted\"]"),
        "1s",
    );
    let d = Daemon::start(config(&cfg, dir.path())).await;
    let (status, _) = d.post_form("/ipn/lyra", paid("100041", "a1", "2990")).await;
    assert_eq!(status, 200);
    eventually("both entries", || shop.history(100041).len() == 2).await;
    let history = shop.history(100041);
    let (customer, operator) = (&history[0], &history[1]);
    assert!(customer.notify && !operator.notify, "{history:?}");
    assert_eq!(
        customer.comment,
        "Your payment of 29.90 EUR for order 100041 has been received."
    );
    for internal in ["rule", "a1", "XXXX", "[ipnsync", "Lyra", "Outcome"] {
        assert!(
            !customer.comment.contains(internal),
            "{internal:?} reached the customer: {}",
            customer.comment
        );
    }
    assert!(operator.comment.contains("[ipnsync update #1]"));
    assert!(operator.comment.contains("rule"), "{}", operator.comment);
    d.stop().await;

    // A merchant's own wording.
    let cfg = with_shop(
        &opencart(
            &shop,
            "opencart3",
            OC_KEY,
            "notify = [\"accepted\"]\ncustomer_text = { accepted = \"Merci ! {amount} {currency} reçus (commande {order}).\" }",
        ),
        "1s",
    );
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(config(&cfg, dir.path())).await;
    let (status, _) = d.post_form("/ipn/lyra", paid("100050", "b1", "2990")).await;
    assert_eq!(status, 200);
    eventually("both entries", || shop.history(100050).len() == 2).await;
    assert_eq!(
        shop.history(100050)[0].comment,
        "Merci ! 29.90 EUR reçus (commande 100050)."
    );
    d.stop().await;
}

// ------------------------------------------------------------- amount check

/// 49.90 EUR paid for a 101 USD order: the order goes to review (in the
/// shop and in ipnsync), the comment shows both figures, the customer is
/// told nothing, and the outbox row says a person must look.
#[tokio::test]
async fn an_amount_mismatch_puts_the_order_in_review_with_both_figures() {
    let shop = fake_opencart::start(Version::OpenCart3, OC_KEY).await;
    shop.add_order_with_total(100041, 1, "101.0000", "USD", "1.00000000");
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_shop(
        &opencart(
            &shop,
            "opencart3",
            OC_KEY,
            "notify = [\"accepted\", \"review\"]\nstatuses = { review = 17 }",
        ),
        "1s",
    );
    let d = Daemon::start(config(&cfg, dir.path())).await;
    let (status, _) = d.post_form("/ipn/lyra", paid("100041", "a1", "4990")).await;
    assert_eq!(status, 200);
    eventually("the update", || outbox_state(&d, 1) == "delivered").await;
    assert_eq!(shop.order_status(100041), Some(17));
    let history = shop.history(100041);
    assert_eq!(history.len(), 1, "{history:?}");
    assert!(!history[0].notify);
    assert!(
        history[0]
            .comment
            .contains("paid 49.90 EUR but the order is 101.00 USD"),
        "{}",
        history[0].comment
    );
    let outcome: String = d
        .reader()
        .query_row(
            "SELECT outcome FROM orders WHERE order_ref = '100041'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(outcome, "review", "review list and validate/deny see it");
    let needs: String = d
        .reader()
        .query_row("SELECT needs_operator FROM outbox WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert!(
        needs.contains("49.90 EUR") && needs.contains("101.00 USD"),
        "{needs}"
    );
    // What `ipnsync outbox --json` reads.
    let conn = d.reader();
    let rows = ipnsync::store::queries::outbox_rows(&conn, None, 10).unwrap();
    assert_eq!(rows[0].needs_operator.as_deref(), Some(needs.as_str()));
    assert_eq!(rows[0].state, "delivered", "finished, not retried");
    // And what the operator reads.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ipnsync"))
            .args(args)
            .arg("--db")
            .arg(d.db.to_string())
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let json: serde_json::Value = serde_json::from_str(&cli(&["outbox", "--json"])).unwrap();
    assert_eq!(json[0]["needs_operator"], needs.as_str());
    let table = cli(&["outbox"]);
    assert!(table.contains("needs operator: amount check"), "{table}");
    let show = cli(&["show", "100041"]);
    assert!(show.contains("order outcome set to review"), "{show}");
    assert!(show.contains("outcome      review"), "{show}");
    d.stop().await;
}

/// The amount check sends the order to review; the operator checks the
/// payment and validates it. That validation must reach the shop as
/// accepted: the operator has seen both figures, so the check does not
/// put the order back in review (before the fix it did, every time, and
/// the order could never be accepted).
#[tokio::test]
async fn an_operator_validation_after_an_amount_mismatch_reaches_the_shop_as_accepted() {
    let shop = fake_opencart::start(Version::OpenCart3, OC_KEY).await;
    shop.add_order_with_total(100041, 1, "101.0000", "USD", "1.00000000");
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(
        &with_shop(
            &opencart(
                &shop,
                "opencart3",
                OC_KEY,
                "statuses = { review = 17, accepted = 5 }",
            ),
            "1s",
        ),
        dir.path(),
    );
    let d = Daemon::start(cfg.clone()).await;
    let (status, _) = d.post_form("/ipn/lyra", paid("100041", "a1", "4990")).await;
    assert_eq!(status, 200);
    eventually("the mismatch", || outbox_state(&d, 1) == "delivered").await;
    assert_eq!(shop.order_status(100041), Some(17));

    let ctx = ipnsync::review::ReviewContext {
        db: d.db.clone(),
        config: Arc::new(cfg),
    };
    let report = ipnsync::review::validate(
        &ctx,
        ipnsync::review::ReviewRequest {
            action: ipnsync::review::Action::Validate,
            order_ref: "100041".into(),
            shop: None,
            actor: "alice".into(),
            comment: Some("customer paid the difference by transfer".into()),
            shop_only: true,
            capture: false,
            reverse: false,
        },
    )
    .await
    .expect("validate");
    let row = report.outbox_id.expect("a shop update");
    eventually("the validation", || outbox_state(&d, row) == "delivered").await;
    assert_eq!(
        shop.order_status(100041),
        Some(5),
        "{:?}",
        shop.history(100041)
    );
    let outcome: String = d
        .reader()
        .query_row(
            "SELECT outcome FROM orders WHERE order_ref = '100041'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(outcome, "accepted");
    let needs: Option<String> = d
        .reader()
        .query_row(
            "SELECT needs_operator FROM outbox WHERE id = ?1",
            [row],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(needs, None);
    d.stop().await;
}

/// A shop that refused the update outright (a wrong key: nothing was
/// applied) leaves nothing unknown: once the operator fixed the key and
/// retried, the customer is notified as usual. Only an attempt whose
/// result is unknown (a timeout, a dropped connection, a 5xx) makes a
/// re-send go without notification; before the fix any earlier attempt
/// did, and on OpenCart 4 the customer was never told.
#[tokio::test]
async fn a_retry_after_a_definite_refusal_still_notifies_the_customer() {
    let shop = fake_opencart::start(Version::OpenCart41, OC_KEY).await;
    shop.add_order(100041, 1);
    shop.add_order(100050, 1);
    let dir = tempfile::tempdir().unwrap();
    let shop_cfg = |key: &str| {
        config(
            &with_shop(
                &opencart(&shop, "opencart4.1", key, "notify = [\"accepted\"]"),
                "1s",
            ),
            dir.path(),
        )
    };
    let wrong = shop_cfg("wrong-key");
    let (tx, rx) = tokio::sync::watch::channel(Arc::new(wrong.clone()));
    let d = Daemon::start_with(
        wrong,
        ipnsync::RunOptions {
            reload: Some(rx),
            ..Default::default()
        },
    )
    .await;
    let (status, _) = d.post_form("/ipn/lyra", paid("100041", "a1", "2990")).await;
    assert_eq!(status, 200);
    eventually("the refused update to go dead", || {
        outbox_state(&d, 1) == "dead"
    })
    .await;
    assert!(shop.history(100041).is_empty(), "nothing was applied");

    tx.send(Arc::new(shop_cfg(OC_KEY))).unwrap();
    // Let the dispatcher take the reload before the row is due again.
    let (status, _) = d.post_form("/ipn/lyra", paid("100050", "b1", "2990")).await;
    assert_eq!(status, 200);
    let mut conn = d.reader();
    eventually("the next push with the new key", || {
        d.count("SELECT COUNT(*) FROM outbox WHERE id = 2 AND state = 'delivered'") == 1
    })
    .await;
    assert_eq!(ipnsync::store::operator::retry(&mut conn, None).unwrap(), 1);
    eventually("the retried row to be delivered", || {
        outbox_state(&d, 1) == "delivered"
    })
    .await;
    let history = shop.history(100041);
    assert_eq!(
        history.iter().filter(|r| r.notify).count(),
        1,
        "the customer is told once: {history:?}"
    );
    d.stop().await;
}
