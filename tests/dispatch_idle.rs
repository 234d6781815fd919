//! The dispatcher sleeps when nothing can be pushed: a dead row holding its
//! order's next update, or a slow push in flight, must not make it poll the
//! database in a tight loop. (Its own test binary: the loop counter is a
//! process-wide metric.)

mod support;

use std::time::Duration;

use support::daemon::{config, fixture, Daemon};
use support::fake_webhook::{self, FakeWebhook};

fn loops(metrics: &str) -> u64 {
    metrics
        .lines()
        .find(|l| l.starts_with("ipnsync_dispatcher_loops_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_dead_row_and_a_slow_push_do_not_make_the_dispatcher_spin() {
    let shop = FakeWebhook::start("secret").await;
    // 404: permanent, so the first update goes dead and holds the second.
    shop.set_mode(fake_webhook::Mode::Fail {
        status: 404,
        retry_after: None,
    });
    let dir = tempfile::tempdir().unwrap();
    let cfg = format!(
        "[http]\ndrain_timeout = \"1s\"\n[dispatch]\npoll_interval = \"100ms\"\n[[sources]]\nname = \"lyra\"\nkind = \"lyra-form\"\npath = \"/ipn/lyra\"\nmode = \"TEST\"\ntest_key = \"1122334455667788\"\nshop = \"hook\"\n[[shops]]\nname = \"hook\"\nkind = \"webhook\"\nbase_url = \"{}\"\nkey = \"secret\"\ntimeout = \"2s\"\n",
        shop.url()
    );
    let d = Daemon::start(config(&cfg, dir.path())).await;
    assert_eq!(
        d.post_form("/ipn/lyra", fixture("lyra-form/to-validate.txt"))
            .await
            .0,
        200
    );
    assert_eq!(
        d.post_form("/ipn/lyra", fixture("lyra-form/validated-merch-bo.txt"))
            .await
            .0,
        200
    );
    for _ in 0..100 {
        if d.count("SELECT COUNT(*) FROM outbox WHERE state = 'dead'") == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        d.count("SELECT COUNT(*) FROM outbox WHERE state = 'pending'"),
        1
    );
    let before = loops(&d.admin_get("/metrics").await.1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let blocked = loops(&d.admin_get("/metrics").await.1) - before;
    // About one read per poll interval (10 in a second), not hundreds.
    assert!(
        blocked <= 30,
        "{blocked} outbox reads in one second behind a dead row"
    );

    // A push that hangs for its whole timeout: same.
    shop.set_mode(fake_webhook::Mode::Hang);
    assert_eq!(
        d.post_form("/ipn/lyra", fixture("lyra-form/authorised.txt"))
            .await
            .0,
        200
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = loops(&d.admin_get("/metrics").await.1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let in_flight = loops(&d.admin_get("/metrics").await.1) - before;
    assert!(
        in_flight <= 30,
        "{in_flight} outbox reads in one second during a slow push"
    );
    d.stop().await;
}
