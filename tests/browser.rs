//! The console in a real headless Chromium (Debian's `chromium` +
//! `chromium-driver`, driven over WebDriver): an operator signs in, finds
//! an order, validates a held payment against the fake Lyra API with a
//! fake shop, retries a dead update, and signs out — clicking links and
//! buttons and typing into fields as a person would. The pages have no
//! JavaScript, so this is also the proof that every action works without.
//!
//! Without Chromium it prints `SKIPPED browser tests: …` and passes, unless
//! `IPNSYNC_TEST_BROWSER=1` (CI), where that is a failure. With
//! `IPNSYNC_SCREENSHOTS=1` it writes the README's screenshots to
//! `docs/img/`.

mod support;

use std::time::Duration;

use fantoccini::{Client, Locator};
use support::console::{Setup, ALICE_PASSWORD};
use support::daemon::{fixture, resign, set};
use support::webdriver::{self, Browser};

/// Waits for an element of the next page (page loads are not timed).
async fn find(b: &Client, css: &str) -> fantoccini::elements::Element {
    b.wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| {
            panic!("no {css} on the page: {e}");
        })
}

async fn text(b: &Client, css: &str) -> String {
    find(b, css).await.text().await.unwrap()
}

async fn path_and_query(b: &Client) -> String {
    let url = b.current_url().await.unwrap();
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

async fn screenshot(b: &Client, name: &str) {
    if std::env::var("IPNSYNC_SCREENSHOTS").is_ok_and(|v| v == "1") {
        let png = b.screenshot().await.unwrap();
        let dir = format!("{}/docs/img", env!("CARGO_MANIFEST_DIR"));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(format!("{dir}/{name}"), png).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_finds_an_order_validates_a_held_payment_and_retries_a_dead_update() {
    let Some((chromium, driver)) = webdriver::available() else {
        return;
    };
    let s = Setup::start(true).await;
    s.order_in_review().await;
    // A second order waits too, so the queue has a choice.
    let second = resign(&fixture("lyra-form/to-validate.txt"), |f| {
        set(f, "vads_order_id", "100044");
        set(f, "vads_trans_uuid", "0a1b2c3d4e5f60718293a4b5c6d7e8f9");
        set(f, "vads_trans_id", "482913");
        set(f, "vads_amount", "15900");
        set(f, "vads_effective_amount", "15900");
    });
    let (status, body) = s.daemon.post_form("/ipn/lyra", second).await;
    assert_eq!(status, 200, "{body}");
    s.wait_shop_updates(2).await;
    s.dead_update().await;

    let browser = Browser::start(&chromium, &driver).await;
    let b = &browser.client;

    // Sign in: the console sends an anonymous visitor to the form.
    b.goto(&s.admin_url("/console/")).await.unwrap();
    find(b, "#password").await;
    assert_eq!(path_and_query(b).await, "/console/login");
    find(b, "#name").await.send_keys("alice").await.unwrap();
    find(b, "#password")
        .await
        .send_keys(ALICE_PASSWORD)
        .await
        .unwrap();
    find(b, "main form button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    assert_eq!(text(b, "#operator").await, "alice");
    assert_eq!(path_and_query(b).await, "/console/orders");
    assert_eq!(text(b, "#count-review").await, "2");
    assert_eq!(text(b, "#count-dead").await, "1");

    // Find the order by its reference, open it.
    find(b, "#q").await.send_keys("100042").await.unwrap();
    find(b, "form.filters button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    find(b, "#orders").await;
    assert_eq!(
        path_and_query(b).await,
        "/console/orders?q=100042&shop=&outcome=&age="
    );
    let rows = b.find_all(Locator::Css("#orders tbody tr")).await.unwrap();
    assert_eq!(rows.len(), 1, "only the order searched for");
    find(b, "#orders a[href*='order=100042']")
        .await
        .click()
        .await
        .unwrap();
    let timeline = text(b, "#timeline").await;
    assert!(
        timeline.contains("AUTHORISED_TO_VALIDATE (PAY) via lyra"),
        "{timeline}"
    );
    assert!(
        timeline.contains("manual validation required by risk rules"),
        "{timeline}"
    );
    assert_eq!(text(b, "#outcome").await, "review");
    screenshot(b, "console-order.png").await;

    // The review queue: validate 100042, with a comment, after confirming.
    find(b, "nav a[href='/console/review']")
        .await
        .click()
        .await
        .unwrap();
    let queue = text(b, "#queue").await;
    assert!(
        queue.contains("29.90 EUR") && queue.contains("MANUAL_VALIDATION"),
        "{queue}"
    );
    assert!(
        queue.contains("100044") && queue.contains("159.00 EUR"),
        "{queue}"
    );
    screenshot(b, "console-review-queue.png").await;
    find(b, "a[aria-label='Validate payment of order 100042']")
        .await
        .click()
        .await
        .unwrap();
    find(b, "#comment")
        .await
        .send_keys("Called the buyer, all good")
        .await
        .unwrap();
    assert!(s.lyra.calls().is_empty(), "nothing before the confirmation");
    find(b, "#confirm-action").await.click().await.unwrap();
    let flash = text(b, "#flash").await;
    assert!(
        flash.contains("Payment of order 100042 validated by alice via lyra (AUTHORISED)"),
        "{flash}"
    );
    assert_eq!(text(b, "#outcome").await, "accepted");
    let calls = s.lyra.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].service, "Transaction/Validate");
    assert_eq!(
        calls[0].body["comment"],
        "ipnsync operator alice: Called the buyer, all good"
    );
    s.wait_for(
        |s| {
            s.delivered()
                .contains(&("100042".into(), "accepted".into()))
        },
        "the shop to get the validated order",
    )
    .await;
    assert!(text(b, "#timeline")
        .await
        .contains("validate by alice via lyra: AUTHORISED → accepted"));

    // Dead updates: the shop's answer, then Retry.
    find(b, "nav a[href='/console/dead']")
        .await
        .click()
        .await
        .unwrap();
    let dead = text(b, "#dead").await;
    assert!(
        dead.contains("100041") && dead.contains("HTTP 500"),
        "{dead}"
    );
    find(b, "#dead button[type=submit]")
        .await
        .click()
        .await
        .unwrap();
    let flash = text(b, "#flash").await;
    assert!(flash.contains("of order 100041 is queued again"), "{flash}");
    s.wait_for(
        |s| {
            s.delivered()
                .contains(&("100041".into(), "accepted".into()))
        },
        "the retried update to reach the shop",
    )
    .await;
    assert_eq!(s.dead_count(), 0);

    // Sign out: back to the form, and the console is closed again.
    find(b, ".signout button").await.click().await.unwrap();
    find(b, "#password").await;
    b.goto(&s.admin_url("/console/orders")).await.unwrap();
    find(b, "#password").await;
    assert_eq!(path_and_query(b).await, "/console/login");

    browser.close().await;
    s.daemon.stop().await;
}
