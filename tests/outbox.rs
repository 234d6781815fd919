//! Shop sync end to end: signed IPN → daemon → outbox → fake shop speaking
//! the real wire format.

mod support;

use std::time::Duration;

use support::daemon::{config, fixture, resign, set, Daemon};
use support::fake_magento2::{self, FakeMagento2};
use support::fake_opencart::{self, Version};
use support::fake_openmage::{self, FakeOpenMage};
use support::fake_webhook::{self, FakeWebhook};

const OC_KEY: &str = "oc-api-key";

/// A config with the demo Lyra source wired to one shop.
fn with_shop(shop: &str, schedule: &str) -> String {
    format!(
        r#"
[dispatch]
retry_schedule = {schedule}
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
timeout = "1s"
connect_timeout = "1s"
{shop}
"#
    )
}

const FAST: &str = r#"["100ms", "100ms", "200ms", "200ms", "400ms"]"#;

async fn eventually<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The recorded push attempts of an order, for a failing assertion's
/// message: they say whether a repeat followed a timeout.
fn attempts_of(d: &Daemon, order: &str) -> Vec<(i64, String, String)> {
    let conn = d.reader();
    let mut stmt = conn
        .prepare(
            "SELECT a.outbox_id, a.result, a.detail FROM push_attempts a
             JOIN outbox o ON o.id = a.outbox_id WHERE o.order_ref = ?1 ORDER BY a.id",
        )
        .unwrap();
    stmt.query_map([order], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn order_ipn(base: &str, order: &str, uuid: &str) -> Vec<u8> {
    resign(&fixture(base), |p| {
        set(p, "vads_order_id", order);
        set(p, "vads_trans_uuid", uuid);
    })
}

#[tokio::test]
async fn a_review_ipn_reaches_opencart_3_with_the_configured_status_and_comment() {
    let shop = fake_opencart::start(Version::OpenCart3, OC_KEY).await;
    // The order's total matches the payment: the amount check passes.
    shop.add_order_with_total(100042, 1, "29.9000", "EUR", "1.00000000");
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_shop(
        &format!(
            "kind = \"opencart3\"\nbase_url = \"{}\"\nusername = \"{}\"\nkey = \"{OC_KEY}\"\nstatuses = {{ review = 17 }}\nnotify = [\"accepted\"]",
            shop.base_url(),
            fake_opencart::USERNAME
        ),
        FAST,
    );
    let d = Daemon::start(config(&cfg, dir.path())).await;
    let (status, _) = d
        .post_form("/ipn/lyra", fixture("lyra-form/to-validate.txt"))
        .await;
    assert_eq!(status, 200);
    eventually("the review update", || shop.history(100042).len() == 1).await;
    let row = &shop.history(100042)[0];
    assert_eq!(row.status_id, 17);
    assert!(!row.notify);
    assert!(
        row.comment.contains("AUTHORISED_TO_VALIDATE"),
        "{}",
        row.comment
    );
    assert!(row.comment.contains("29.90 EUR"), "{}", row.comment);
    assert!(
        row.comment.contains("[ipnsync update #1]"),
        "{}",
        row.comment
    );

    // The merchant validates in the back office: accepted, customer notified.
    let (status, _) = d
        .post_form("/ipn/lyra", fixture("lyra-form/validated-merch-bo.txt"))
        .await;
    assert_eq!(status, 200);
    // Customer entry (notifies), then the operator's comment (does not).
    eventually("the accepted update", || shop.history(100042).len() == 3).await;
    let row = &shop.history(100042)[1];
    assert_eq!((row.status_id, row.notify), (2, true));
    assert!(!row.comment.contains("[ipnsync"), "{}", row.comment);
    let row = &shop.history(100042)[2];
    assert_eq!((row.status_id, row.notify), (2, false));
    assert_eq!(shop.order_status(100042), Some(2));
    assert_eq!(shop.logins(), 1, "the session is reused");
    d.stop().await;
}

#[tokio::test]
async fn a_review_ipn_reaches_opencart_4_0_and_4_1() {
    for version in [Version::OpenCart402, Version::OpenCart41] {
        let kind = match version {
            Version::OpenCart402 => "opencart4.0",
            _ => "opencart4.1",
        };
        let shop = fake_opencart::start(version, OC_KEY).await;
        shop.add_order(100042, 1);
        let dir = tempfile::tempdir().unwrap();
        let cfg = with_shop(
            &format!(
                "kind = \"{kind}\"\nbase_url = \"{}\"\nusername = \"{}\"\nkey = \"{OC_KEY}\"\nstatuses = {{ review = 17 }}",
                shop.base_url(),
                fake_opencart::USERNAME
            ),
            FAST,
        );
        let d = Daemon::start(config(&cfg, dir.path())).await;
        assert_eq!(
            d.post_form("/ipn/lyra", fixture("lyra-form/to-validate.txt"))
                .await
                .0,
            200
        );
        eventually(kind, || shop.order_status(100042) == Some(17)).await;
        assert!(shop.history(100042)[0]
            .comment
            .contains("to validate manually"));
        d.stop().await;
    }
}

#[tokio::test]
async fn a_review_ipn_holds_the_order_in_openmage_then_validation_releases_it() {
    let shop = FakeOpenMage::start().await;
    shop.add_order("100042", "processing", "processing");
    // The IPN's amount, so the amount check (on by default) lets it through.
    shop.edit("100042", |o| {
        o.grand_total = "29.9000".into();
        o.currency = "EUR".into();
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_shop(
        &format!(
            "kind = \"openmage\"\nbase_url = \"{}\"\nusername = \"{}\"\nkey = \"{}\"\nstatuses = {{ review = \"holded\" }}",
            shop.base_url(),
            fake_openmage::USER,
            fake_openmage::KEY
        ),
        FAST,
    );
    let d = Daemon::start(config(&cfg, dir.path())).await;
    assert_eq!(
        d.post_form("/ipn/lyra", fixture("lyra-form/to-validate.txt"))
            .await
            .0,
        200
    );
    eventually("hold", || shop.updates("100042").len() == 1).await;
    let order = shop.order("100042");
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("holded", "holded")
    );
    assert!(shop.updates("100042")[0]
        .comment
        .contains("to validate manually"));

    assert_eq!(
        d.post_form("/ipn/lyra", fixture("lyra-form/validated-merch-bo.txt"))
            .await
            .0,
        200
    );
    eventually("release", || shop.updates("100042").len() == 2).await;
    let order = shop.order("100042");
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("processing", "processing")
    );
    assert_eq!(shop.logins(), 1);
    d.stop().await;
}

#[tokio::test]
async fn a_review_ipn_reaches_magento_2_through_the_increment_id_lookup() {
    let shop = FakeMagento2::start().await;
    shop.add_order(7, "100042", "processing", "processing");
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_shop(
        &format!(
            "kind = \"magento2\"\nbase_url = \"{}\"\nusername = \"{}\"\npassword = \"{}\"",
            shop.base_url(),
            fake_magento2::ADMIN_USER,
            fake_magento2::ADMIN_PASSWORD
        ),
        FAST,
    );
    let d = Daemon::start(config(&cfg, dir.path())).await;
    assert_eq!(
        d.post_form("/ipn/lyra", fixture("lyra-form/to-validate.txt"))
            .await
            .0,
        200
    );
    eventually("magento update", || !shop.order(7).history.is_empty()).await;
    let order = shop.order(7);
    assert_eq!(order.state, "holded");
    assert_eq!(order.history[0].status, "holded");
    d.stop().await;
}

#[tokio::test]
async fn a_shop_down_for_a_while_gets_every_update_in_order() {
    let shop = FakeWebhook::start("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").await;
    shop.set_mode(fake_webhook::Mode::Fail {
        status: 503,
        retry_after: None,
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_shop(
        &format!(
            "kind = \"webhook\"\nbase_url = \"{}\"\nkey = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"",
            shop.url()
        ),
        r#"["100ms", "100ms", "100ms", "100ms", "100ms", "100ms", "100ms", "100ms", "100ms", "100ms", "100ms", "100ms"]"#,
    );
    let d = Daemon::start(config(&cfg, dir.path())).await;
    // Three orders, each with a review then an accepted update.
    for order in ["300001", "300002", "300003"] {
        let uuid = format!("{order:0>32}");
        assert_eq!(
            d.post_form(
                "/ipn/lyra",
                order_ipn("lyra-form/to-validate.txt", order, &uuid)
            )
            .await
            .0,
            200
        );
        assert_eq!(
            d.post_form(
                "/ipn/lyra",
                order_ipn("lyra-form/validated-merch-bo.txt", order, &uuid)
            )
            .await
            .0,
            200
        );
    }
    // The intake stayed fast and durable while the shop was down.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(d.count("SELECT COUNT(*) FROM push_attempts WHERE result = 'retry'") >= 3);
    assert_eq!(
        d.count("SELECT COUNT(*) FROM outbox WHERE state = 'delivered'"),
        0
    );

    // The fake records refused attempts too: only what comes after the
    // recovery was accepted.
    let failed_attempts = shop.received().len();
    shop.set_mode(fake_webhook::Mode::Accept);
    eventually("all six updates", || {
        d.count("SELECT COUNT(*) FROM outbox WHERE state = 'delivered'") == 6
    })
    .await;
    let accepted: Vec<_> = shop.received().split_off(failed_attempts);
    assert_eq!(accepted.len(), 6, "each update delivered once");
    for order in ["300001", "300002", "300003"] {
        let outcomes: Vec<String> = accepted
            .iter()
            .filter(|r| r.verified)
            .map(|r| r.json())
            .filter(|j| j["order"] == order)
            .map(|j| j["outcome"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(outcomes, ["review", "accepted"], "order {order}");
    }
    d.stop().await;
}

#[tokio::test]
async fn a_session_expiry_costs_one_relogin_not_a_failure() {
    let shop = fake_opencart::start(Version::OpenCart3, OC_KEY).await;
    shop.add_order(100041, 1);
    shop.add_order(100042, 1);
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_shop(
        &format!(
            "kind = \"opencart3\"\nbase_url = \"{}\"\nusername = \"{}\"\nkey = \"{OC_KEY}\"",
            shop.base_url(),
            fake_opencart::USERNAME
        ),
        FAST,
    );
    let d = Daemon::start(config(&cfg, dir.path())).await;
    assert_eq!(
        d.post_form("/ipn/lyra", fixture("lyra-form/authorised.txt"))
            .await
            .0,
        200
    );
    eventually("first", || shop.history(100041).len() == 1).await;
    shop.expire_sessions();
    assert_eq!(
        d.post_form("/ipn/lyra", fixture("lyra-form/to-validate.txt"))
            .await
            .0,
        200
    );
    eventually("second", || shop.history(100042).len() == 1).await;
    assert_eq!(shop.logins(), 2);
    assert_eq!(
        d.count("SELECT COUNT(*) FROM push_attempts WHERE result <> 'delivered'"),
        0
    );
    d.stop().await;
}

#[tokio::test]
async fn an_unknown_order_goes_dead_with_the_shops_own_text() {
    let shop = fake_opencart::start(Version::OpenCart3, OC_KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_shop(
        &format!(
            "kind = \"opencart3\"\nbase_url = \"{}\"\nusername = \"{}\"\nkey = \"{OC_KEY}\"",
            shop.base_url(),
            fake_opencart::USERNAME
        ),
        FAST,
    );
    let d = Daemon::start(config(&cfg, dir.path())).await;
    assert_eq!(
        d.post_form("/ipn/lyra", fixture("lyra-form/authorised.txt"))
            .await
            .0,
        200
    );
    eventually("dead row", || {
        d.count("SELECT COUNT(*) FROM outbox WHERE state = 'dead'") == 1
    })
    .await;
    let error: String = d
        .reader()
        .query_row("SELECT last_error FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert!(
        error.contains("Warning: Order could not be found!"),
        "{error}"
    );
    assert_eq!(
        d.count("SELECT attempts FROM outbox"),
        1,
        "permanent: no retries"
    );
    d.stop().await;
}

#[tokio::test]
async fn a_restart_in_the_middle_of_retries_resumes_them() {
    let shop = FakeWebhook::start("secret").await;
    shop.set_mode(fake_webhook::Mode::Fail {
        status: 500,
        retry_after: None,
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_shop(
        &format!(
            "kind = \"webhook\"\nbase_url = \"{}\"\nkey = \"secret\"",
            shop.url()
        ),
        r#"["100ms", "100ms", "100ms", "100ms", "100ms", "100ms", "100ms", "100ms", "100ms", "100ms"]"#,
    );
    let d = Daemon::start(config(&cfg, dir.path())).await;
    assert_eq!(
        d.post_form("/ipn/lyra", fixture("lyra-form/to-validate.txt"))
            .await
            .0,
        200
    );
    eventually("a failed attempt", || {
        d.count("SELECT COUNT(*) FROM push_attempts WHERE result = 'retry'") >= 1
    })
    .await;
    let db = d.db.clone();
    d.stop().await;
    let attempts_before: i64 = support::backend::connect(&db)
        .query_row("SELECT attempts FROM outbox", [], |r| r.get(0))
        .unwrap();

    let failed_attempts = shop.received().len();
    shop.set_mode(fake_webhook::Mode::Accept);
    let d = Daemon::start(config(&cfg, dir.path())).await;
    eventually("delivery after restart", || {
        d.count("SELECT COUNT(*) FROM outbox WHERE state = 'delivered'") == 1
    })
    .await;
    assert!(d.count("SELECT attempts FROM outbox") > attempts_before);
    let got = shop.received().split_off(failed_attempts);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["outcome"], "review");
    d.stop().await;
}

#[tokio::test]
async fn a_burst_of_updates_is_delivered_exactly_once_each() {
    let shop = fake_opencart::start(Version::OpenCart3, OC_KEY).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_shop(
        &format!(
            "kind = \"opencart3\"\nbase_url = \"{}\"\nusername = \"{}\"\nkey = \"{OC_KEY}\"\nconcurrency = 4",
            shop.base_url(),
            fake_opencart::USERNAME
        ),
        FAST,
    )
    // This test is about a burst, not timeouts: on a loaded machine a 1 s
    // timeout can expire on a request the shop then applies, and the one
    // login can time out and be made again.
    .replace("timeout = \"1s\"", "timeout = \"20s\"");
    let d = Daemon::start(config(&cfg, dir.path())).await;
    let mut tasks = Vec::new();
    for id in 1..=150u64 {
        shop.add_order(id, 1);
        let body = order_ipn(
            "lyra-form/authorised.txt",
            &id.to_string(),
            &format!("{id:032x}"),
        );
        let client = d.client.clone();
        let url = d.url("/ipn/lyra");
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    eventually("150 deliveries", || {
        d.count("SELECT COUNT(*) FROM outbox WHERE state = 'delivered'") == 150
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    for id in 1..=150u64 {
        assert_eq!(
            shop.history(id).len(),
            1,
            "order {id} updated exactly once; its attempts: {:?}",
            attempts_of(&d, &id.to_string())
        );
    }
    assert_eq!(shop.logins(), 1);
    d.stop().await;
}

#[tokio::test]
async fn a_hanging_shop_does_not_hold_up_intake_and_catches_up_in_order() {
    let shop = FakeWebhook::start("secret").await;
    shop.set_mode(fake_webhook::Mode::Hang);
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_shop(
        &format!("kind = \"webhook\"\nbase_url = \"{}\"\nkey = \"secret\"\nconcurrency = 2", shop.url()),
        r#"["100ms", "100ms", "100ms", "100ms", "100ms", "100ms", "100ms", "100ms", "100ms", "100ms"]"#,
    )
    .replace("timeout = \"1s\"", "timeout = \"300ms\"");
    let d = Daemon::start(config(&cfg, dir.path())).await;
    // While every push hangs until its timeout, intake keeps answering.
    for order in 400001..=400010u32 {
        let order = order.to_string();
        let uuid = format!("{order:0>32}");
        let (status, _) = d
            .post_form(
                "/ipn/lyra",
                order_ipn("lyra-form/to-validate.txt", &order, &uuid),
            )
            .await;
        assert_eq!(status, 200);
        let (status, _) = d
            .post_form(
                "/ipn/lyra",
                order_ipn("lyra-form/validated-merch-bo.txt", &order, &uuid),
            )
            .await;
        assert_eq!(status, 200);
    }
    eventually("timed-out attempts", || {
        d.count("SELECT COUNT(*) FROM push_attempts WHERE result = 'retry' AND detail LIKE '%timed out%'") >= 2
    })
    .await;
    let hung = shop.switch_mode(fake_webhook::Mode::Accept);
    eventually("all twenty updates", || {
        d.count("SELECT COUNT(*) FROM outbox WHERE state = 'delivered'") == 20
    })
    .await;
    let accepted: Vec<_> = shop.received().split_off(hung);
    for order in 400001..=400010u32 {
        // A receiver drops a redelivery by its `webhook-id` (Standard
        // Webhooks): on a loaded machine an answer can come after the 300 ms
        // timeout and the update is sent again, under the same id.
        let mut seen = std::collections::HashSet::new();
        let outcomes: Vec<String> = accepted
            .iter()
            .filter(|r| seen.insert(r.id.clone()))
            .map(|r| r.json())
            .filter(|j| j["order"].as_str() == Some(order.to_string().as_str()))
            .map(|j| j["outcome"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(outcomes, ["review", "accepted"], "order {order}");
    }
    d.stop().await;
}
