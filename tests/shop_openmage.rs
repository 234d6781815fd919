//! The OpenMage XML-RPC client against a fake `/api/xmlrpc/`.

mod support;

use std::time::Duration;

use ipnsync::config::{default_statuses, Secret, ShopConfig, ShopKind, ShopStatus};
use ipnsync::domain::Outcome;
use ipnsync::shops::openmage::OpenMage;
use ipnsync::shops::{PushError, ShopUpdate};
use support::fake_openmage::{FakeOpenMage, HistoryRow, KEY, USER};

const ORDER: &str = "100000001";

fn config(fake: &FakeOpenMage) -> ShopConfig {
    ShopConfig {
        name: "openmage-test".into(),
        kind: ShopKind::OpenMage,
        base_url: fake.base_url(),
        username: USER.into(),
        credential: Some(Secret::new(KEY)),
        token: None,
        concurrency: 2,
        timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        notify: vec![Outcome::Accepted],
        statuses: default_statuses(ShopKind::OpenMage),
        store_id: 0,
        language: "en-gb".into(),
        currency: "USD".into(),
        lookup_by_increment_id: true,
        amount_tolerance: None,
        order_rules: Default::default(),
    }
}

fn update(outbox_id: i64, outcome: Outcome, previous: Option<Outcome>) -> ShopUpdate {
    let cfg_statuses = default_statuses(ShopKind::OpenMage);
    ShopUpdate {
        outbox_id,
        event_id: outbox_id * 10,
        order_ref: ORDER.into(),
        outcome,
        previous_outcome: previous,
        status: cfg_statuses[&outcome].clone(),
        comment: format!("Lyra: {outcome}"),
        notify: outcome == Outcome::Accepted,
        provider: "lyra".into(),
        transaction_id: "tx1".into(),
        provider_status: "AUTHORISED".into(),
        amount: None,
        customer_text: String::new(),
        earlier_attempt_unknown: false,
    }
}

async fn shop_with_order(state: &str, status: &str) -> (FakeOpenMage, OpenMage) {
    let fake = FakeOpenMage::start().await;
    fake.add_order(ORDER, state, status);
    let client = OpenMage::new(&config(&fake));
    (fake, client)
}

#[tokio::test]
async fn review_holds_the_order_and_comments_with_the_configured_status() {
    let (fake, client) = shop_with_order("processing", "processing").await;
    let pushed = client
        .push(&update(1, Outcome::Review, None))
        .await
        .expect("delivered");
    let order = fake.order(ORDER);
    assert_eq!(order.state, "holded");
    assert_eq!(order.status, "payment_review");
    assert_eq!(
        order.history.last(),
        Some(&HistoryRow {
            status: "payment_review".into(),
            comment: "Lyra: review\n[ipnsync update #1]".into(),
            notified: false,
        })
    );
    assert_eq!(
        fake.calls(),
        ["login", "sales_order.hold", "sales_order.addComment"]
    );
    assert!(
        pushed
            .detail
            .starts_with("held; comment added with status payment_review"),
        "{}",
        pushed.detail
    );
}

#[tokio::test]
async fn review_of_an_order_that_cannot_be_held_still_gets_the_comment() {
    let (fake, client) = shop_with_order("payment_review", "payment_review").await;
    let pushed = client
        .push(&update(2, Outcome::SuspectedFraud, None))
        .await
        .expect("delivered");
    let order = fake.order(ORDER);
    assert_eq!(order.state, "payment_review");
    assert_eq!(order.status, "fraud");
    assert!(
        pushed
            .detail
            .contains("hold not done: Hold action is not available."),
        "{}",
        pushed.detail
    );
}

#[tokio::test]
async fn accepted_after_review_releases_the_hold_then_comments() {
    let (fake, client) = shop_with_order("processing", "processing").await;
    client
        .push(&update(1, Outcome::Review, None))
        .await
        .expect("held");
    let pushed = client
        .push(&update(2, Outcome::Accepted, Some(Outcome::Review)))
        .await
        .expect("delivered");
    let order = fake.order(ORDER);
    assert_eq!(order.state, "processing");
    assert_eq!(order.status, "processing");
    let last = order.history.last().expect("comment");
    assert_eq!(last.comment, "Lyra: accepted\n[ipnsync update #2]");
    assert!(last.notified, "notify is sent as a boolean 1");
    assert!(
        pushed
            .detail
            .starts_with("released from hold; comment added"),
        "{}",
        pushed.detail
    );
}

#[tokio::test]
async fn accepted_without_review_only_comments() {
    let (fake, client) = shop_with_order("new", "pending").await;
    client
        .push(&update(1, Outcome::Accepted, None))
        .await
        .expect("delivered");
    assert_eq!(fake.calls(), ["login", "sales_order.addComment"]);
    assert_eq!(fake.order(ORDER).status, "processing");
}

#[tokio::test]
async fn accepted_after_review_tolerates_an_order_that_is_not_held() {
    let (fake, client) = shop_with_order("processing", "processing").await;
    let pushed = client
        .push(&update(3, Outcome::Accepted, Some(Outcome::Review)))
        .await
        .expect("delivered");
    assert!(pushed
        .detail
        .contains("unhold not done: Unhold action is not available."));
    assert_eq!(fake.order(ORDER).history.len(), 1);
}

#[tokio::test]
async fn cancel_releases_a_held_order_then_cancels_and_comments() {
    let (fake, client) = shop_with_order("processing", "processing").await;
    client
        .push(&update(1, Outcome::Review, None))
        .await
        .expect("held");
    let pushed = client
        .push(&update(2, Outcome::Canceled, Some(Outcome::Review)))
        .await
        .expect("delivered");
    let order = fake.order(ORDER);
    assert_eq!(order.state, "canceled");
    assert_eq!(order.status, "canceled");
    assert_eq!(
        order.history.last().expect("comment").comment,
        "Lyra: canceled\n[ipnsync update #2]"
    );
    assert_eq!(
        fake.calls()[3..],
        [
            "sales_order.unhold",
            "sales_order.cancel",
            "sales_order.addComment"
        ]
    );
    assert!(
        pushed
            .detail
            .starts_with("released from hold; canceled; comment added"),
        "{}",
        pushed.detail
    );
}

#[tokio::test]
async fn an_order_that_cannot_be_cancelled_gets_a_comment_saying_so() {
    let (fake, client) = shop_with_order("processing", "processing").await;
    fake.set_invoiced(ORDER);
    let pushed = client
        .push(&update(4, Outcome::Failed, None))
        .await
        .expect("delivered, not dead");
    let order = fake.order(ORDER);
    assert_eq!(
        order.state, "processing",
        "the state never changes through addComment"
    );
    assert_eq!(order.status, "canceled");
    assert_eq!(
        order.history.last().expect("comment").comment,
        "Lyra: failed\nipnsync could not cancel the order in OpenMage: Order status not changed. Details in error message.\n[ipnsync update #4]"
    );
    assert!(
        pushed
            .detail
            .contains("ipnsync could not cancel the order in OpenMage"),
        "{}",
        pushed.detail
    );
}

#[tokio::test]
async fn one_session_serves_many_pushes() {
    let (fake, client) = shop_with_order("new", "pending").await;
    for id in 1..=5 {
        client
            .push(&update(id, Outcome::Pending, None))
            .await
            .expect("delivered");
    }
    assert_eq!(fake.logins(), 1);
    assert_eq!(fake.order(ORDER).history.len(), 5);
}

#[tokio::test]
async fn an_expired_session_means_exactly_one_new_login() {
    let (fake, client) = shop_with_order("new", "pending").await;
    client
        .push(&update(1, Outcome::Pending, None))
        .await
        .expect("delivered");
    fake.expire_sessions();
    client
        .push(&update(2, Outcome::Accepted, None))
        .await
        .expect("delivered after re-login");
    assert_eq!(fake.logins(), 2);
    assert_eq!(
        fake.calls(),
        [
            "login",
            "sales_order.addComment",
            "sales_order.addComment",
            "login",
            "sales_order.addComment"
        ]
    );
    assert_eq!(fake.order(ORDER).status, "processing");
}

#[tokio::test]
async fn concurrent_pushes_after_expiry_share_one_login() {
    let (fake, client) = shop_with_order("new", "pending").await;
    client
        .push(&update(1, Outcome::Pending, None))
        .await
        .expect("delivered");
    fake.expire_sessions();
    let (two, three) = (
        update(2, Outcome::Pending, None),
        update(3, Outcome::Pending, None),
    );
    let (a, b) = tokio::join!(client.push(&two), client.push(&three));
    a.expect("first delivered");
    b.expect("second delivered");
    assert_eq!(fake.logins(), 2);
}

#[tokio::test]
async fn an_unknown_order_is_permanent_with_the_shops_text() {
    let fake = FakeOpenMage::start().await;
    let client = OpenMage::new(&config(&fake));
    let err = client
        .push(&update(1, Outcome::Accepted, None))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PushError::permanent("OpenMage fault 100: Requested order not exists.")
    );
}

#[tokio::test]
async fn a_wrong_api_key_is_permanent_and_names_the_acl() {
    let fake = FakeOpenMage::start().await;
    fake.add_order(ORDER, "new", "pending");
    let mut cfg = config(&fake);
    cfg.credential = Some(Secret::new("wrong-key-9876"));
    let err = OpenMage::new(&cfg)
        .push(&update(1, Outcome::Accepted, None))
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(
        text.contains("access denied") && text.contains("sales/order/change"),
        "{text}"
    );
    assert!(!text.contains("wrong-key-9876"), "no key in errors");
}

#[tokio::test]
async fn http_500_is_transient() {
    let (fake, client) = shop_with_order("new", "pending").await;
    fake.set_fail_500(true);
    let err = client
        .push(&update(1, Outcome::Accepted, None))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().starts_with("HTTP 500"), "{err}");
    fake.set_fail_500(false);
    client
        .push(&update(1, Outcome::Accepted, None))
        .await
        .expect("delivered once it is back");
}

#[tokio::test]
async fn a_hanging_shop_is_transient() {
    let (fake, client) = shop_with_order("new", "pending").await;
    fake.set_hang(true);
    let err = client
        .push(&update(1, Outcome::Accepted, None))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn comments_with_markup_arrive_unchanged() {
    let (fake, client) = shop_with_order("new", "pending").await;
    let mut u = update(7, Outcome::Pending, None);
    u.comment = "3-D Secure <b>failed</b> & \"retry\" — ok".into();
    u.status = ShopStatus::Code("payzen_to_validate".into());
    client.push(&u).await.expect("delivered");
    let order = fake.order(ORDER);
    assert_eq!(order.status, "payzen_to_validate");
    assert_eq!(
        order.history.last().expect("comment").comment,
        "3-D Secure <b>failed</b> & \"retry\" — ok\n[ipnsync update #7]"
    );
}

#[tokio::test]
async fn the_fake_refuses_scalar_args_like_the_real_server() {
    // Guards the fake itself: the client's array args are only proven right
    // if a scalar would have failed.
    let fake = FakeOpenMage::start().await;
    let http = reqwest::Client::new();
    let post = |body: String| {
        http.post(format!("{}api/xmlrpc/", fake.base_url()))
            .body(body)
            .send()
    };
    let login = post(format!(
        "<methodCall><methodName>login</methodName><params><param><value><string>{USER}</string></value></param><param><value><string>{KEY}</string></value></param></params></methodCall>"
    ))
    .await
    .expect("login")
    .text()
    .await
    .expect("body");
    let session = login
        .split("<string>")
        .nth(1)
        .and_then(|s| s.split('<').next())
        .expect("session");
    let answer = post(format!(
        "<methodCall><methodName>call</methodName><params><param><value><string>{session}</string></value></param><param><value><string>sales_order.hold</string></value></param><param><value><string>{ORDER}</string></value></param></params></methodCall>"
    ))
    .await
    .expect("call");
    assert_eq!(answer.status(), 200, "faults come with HTTP 200");
    assert!(answer
        .text()
        .await
        .expect("body")
        .contains("<int>623</int>"));
}
