//! Issue 19 end to end: signed Lyra IPNs → daemon → outbox → OpenMage and
//! Magento 2 fakes that model the order's state machine. A payment
//! invoices the order, a refund credits it, and the status always belongs
//! to the state.

mod support;

use std::time::Duration;

use support::daemon::{config, fixture, resign, set, Daemon};
use support::fake_magento2::{self, FakeMagento2};
use support::fake_openmage::{self, FakeOpenMage};
use support::order_states::fits;

fn with_shop(shop: &str) -> String {
    format!(
        r#"
[dispatch]
retry_schedule = ["100ms", "100ms", "200ms"]
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

async fn eventually<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

/// The authorised payment of order 100041 (29.90 EUR), refunded.
fn refund_ipn() -> Vec<u8> {
    resign(&fixture("lyra-form/authorised.txt"), |p| {
        set(p, "vads_operation_type", "CREDIT");
        set(p, "vads_trans_status", "CAPTURED");
        set(p, "vads_trans_uuid", "7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a");
        set(p, "vads_trans_date", "20261125093015");
    })
}

#[tokio::test]
async fn openmage_invoices_a_paid_order_and_credits_it_on_refund() {
    let shop = FakeOpenMage::start().await;
    shop.add_order("100041", "new", "pending");
    shop.edit("100041", |o| {
        o.grand_total = "29.9000".into();
        o.currency = "EUR".into();
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_shop(&format!(
        "kind = \"openmage\"\nbase_url = \"{}\"\nusername = \"{}\"\nkey = \"{}\"",
        shop.base_url(),
        fake_openmage::USER,
        fake_openmage::KEY
    ));
    let d = Daemon::start(config(&cfg, dir.path())).await;
    let (code, _) = d
        .post_form("/ipn/lyra", fixture("lyra-form/authorised.txt"))
        .await;
    assert_eq!(code, 200);
    eventually("payment", || shop.updates("100041").len() == 1).await;
    let order = shop.order("100041");
    assert_eq!(
        (order.state.as_str(), order.status.as_str(), order.invoices),
        ("processing", "processing", 1)
    );
    assert_eq!(d.post_form("/ipn/lyra", refund_ipn()).await.0, 200);
    eventually("refund", || shop.updates("100041").len() == 2).await;
    let order = shop.order("100041");
    assert_eq!(
        (
            order.state.as_str(),
            order.status.as_str(),
            order.creditmemos
        ),
        ("closed", "closed", 1)
    );
    assert!(fits(&order.state, &order.status, &[]));
    d.stop().await;
}

#[tokio::test]
async fn magento_2_invoices_a_paid_order_and_credits_it_on_refund() {
    let shop = FakeMagento2::start().await;
    shop.add_order(7, "100041", "new", "pending");
    shop.edit(7, |o| {
        o.grand_total = 29.9;
        o.currency = "EUR".into();
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = with_shop(&format!(
        "kind = \"magento2\"\nbase_url = \"{}\"\nusername = \"{}\"\npassword = \"{}\"",
        shop.base_url(),
        fake_magento2::ADMIN_USER,
        fake_magento2::ADMIN_PASSWORD
    ));
    let d = Daemon::start(config(&cfg, dir.path())).await;
    assert_eq!(
        d.post_form("/ipn/lyra", fixture("lyra-form/authorised.txt"))
            .await
            .0,
        200
    );
    eventually("payment", || shop.updates(7).len() == 1).await;
    assert_eq!(shop.order(7).invoices, 1);
    assert_eq!(d.post_form("/ipn/lyra", refund_ipn()).await.0, 200);
    eventually("refund", || shop.updates(7).len() == 2).await;
    let order = shop.order(7);
    assert_eq!(
        (
            order.state.as_str(),
            order.status.as_str(),
            order.creditmemos
        ),
        ("closed", "closed", 1)
    );
    d.stop().await;
}
