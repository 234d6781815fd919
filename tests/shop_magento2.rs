//! The Magento 2 REST client against a fake `rest/V1`.

mod support;

use std::time::Duration;

use ipnsync::config::{default_statuses, Secret, ShopConfig, ShopKind};
use ipnsync::domain::Outcome;
use ipnsync::shops::magento2::Magento2;
use ipnsync::shops::{PushError, ShopUpdate};
use support::fake_magento2::{
    FakeMagento2, HistoryRow, ADMIN_PASSWORD, ADMIN_USER, INTEGRATION_TOKEN,
};

const ENTITY: u64 = 42;
const INCREMENT: &str = "000000042";

fn config(fake: &FakeMagento2) -> ShopConfig {
    ShopConfig {
        name: "magento-test".into(),
        kind: ShopKind::Magento2,
        base_url: fake.base_url(),
        username: ADMIN_USER.into(),
        credential: Some(Secret::new(ADMIN_PASSWORD)),
        token: None,
        concurrency: 2,
        timeout: Duration::from_millis(500),
        connect_timeout: Duration::from_millis(500),
        notify: vec![Outcome::Accepted],
        statuses: default_statuses(ShopKind::Magento2),
        store_id: 0,
        language: "en-gb".into(),
        currency: "USD".into(),
        lookup_by_increment_id: true,
        amount_tolerance: None,
        order_rules: Default::default(),
    }
}

fn update(outbox_id: i64, outcome: Outcome, previous: Option<Outcome>) -> ShopUpdate {
    ShopUpdate {
        outbox_id,
        event_id: outbox_id * 10,
        order_ref: INCREMENT.into(),
        outcome,
        previous_outcome: previous,
        status: default_statuses(ShopKind::Magento2)[&outcome].clone(),
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

async fn shop_with_order(state: &str, status: &str) -> (FakeMagento2, Magento2) {
    let fake = FakeMagento2::start().await;
    fake.add_order(ENTITY, INCREMENT, state, status);
    let client = Magento2::new(&config(&fake));
    (fake, client)
}

#[tokio::test]
async fn review_holds_the_order_and_comments_with_the_configured_status() {
    let (fake, client) = shop_with_order("processing", "processing").await;
    let pushed = client
        .push(&update(1, Outcome::Review, None))
        .await
        .expect("delivered");
    let order = fake.order(ENTITY);
    assert_eq!(order.state, "holded");
    assert_eq!(order.status, "payment_review");
    assert_eq!(
        order.history.last(),
        Some(&HistoryRow {
            status: "payment_review".into(),
            comment: "Lyra: review\n[ipnsync update #1]".into(),
            notified: false,
            visible_on_front: false,
        })
    );
    assert_eq!(
        fake.requests(),
        [
            "GET /rest/V1/orders",
            "POST /rest/V1/orders/42/hold",
            "POST /rest/V1/orders/42/comments"
        ]
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
        .push(&update(1, Outcome::SuspectedFraud, None))
        .await
        .expect("delivered");
    assert_eq!(fake.order(ENTITY).status, "fraud");
    assert!(
        pushed
            .detail
            .contains("hold not done: A hold action is not available."),
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
    client
        .push(&update(2, Outcome::Accepted, Some(Outcome::Review)))
        .await
        .expect("delivered");
    let order = fake.order(ENTITY);
    assert_eq!(order.state, "processing");
    assert_eq!(order.status, "processing");
    let last = order.history.last().expect("comment");
    assert_eq!(last.comment, "Lyra: accepted\n[ipnsync update #2]");
    assert!(last.notified);
}

#[tokio::test]
async fn accepted_after_review_tolerates_an_order_that_is_not_held() {
    let (fake, client) = shop_with_order("processing", "processing").await;
    let pushed = client
        .push(&update(1, Outcome::Accepted, Some(Outcome::Review)))
        .await
        .expect("delivered");
    assert!(
        pushed
            .detail
            .contains("unhold not done: You cannot remove the hold."),
        "{}",
        pushed.detail
    );
    assert_eq!(fake.order(ENTITY).history.len(), 1);
}

#[tokio::test]
async fn cancel_releases_a_held_order_then_cancels_and_comments() {
    let (fake, client) = shop_with_order("processing", "processing").await;
    client
        .push(&update(1, Outcome::Review, None))
        .await
        .expect("held");
    let pushed = client
        .push(&update(2, Outcome::Rejected, Some(Outcome::Review)))
        .await
        .expect("delivered");
    let order = fake.order(ENTITY);
    assert_eq!(order.state, "canceled");
    assert_eq!(
        order.history.last().expect("comment").comment,
        "Lyra: rejected\n[ipnsync update #2]"
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
    fake.set_invoiced(ENTITY);
    let pushed = client
        .push(&update(3, Outcome::Canceled, None))
        .await
        .expect("delivered, not dead");
    let order = fake.order(ENTITY);
    assert_eq!(order.state, "processing");
    let comment = &order.history.last().expect("comment").comment;
    assert!(
        comment.starts_with("Lyra: canceled\nipnsync could not cancel the order in Magento: "),
        "{comment}"
    );
    assert!(comment.ends_with("\n[ipnsync update #3]"), "{comment}");
    assert!(
        pushed
            .detail
            .contains("ipnsync could not cancel the order in Magento"),
        "{}",
        pushed.detail
    );
}

#[tokio::test]
async fn one_token_and_one_search_serve_many_pushes() {
    let (fake, client) = shop_with_order("new", "pending").await;
    for id in 1..=4 {
        client
            .push(&update(id, Outcome::Pending, None))
            .await
            .expect("delivered");
    }
    assert_eq!(fake.token_requests(), 1);
    assert_eq!(fake.searches(), 1);
    assert_eq!(fake.order(ENTITY).history.len(), 4);
}

#[tokio::test]
async fn an_expired_token_is_renewed_once() {
    let (fake, client) = shop_with_order("new", "pending").await;
    client
        .push(&update(1, Outcome::Pending, None))
        .await
        .expect("delivered");
    fake.expire_tokens();
    client
        .push(&update(2, Outcome::Accepted, None))
        .await
        .expect("delivered after renewal");
    assert_eq!(fake.token_requests(), 2);
    assert_eq!(fake.order(ENTITY).status, "processing");
}

#[tokio::test]
async fn an_integration_token_needs_no_login() {
    let fake = FakeMagento2::start().await;
    fake.add_order(ENTITY, INCREMENT, "new", "pending");
    let mut cfg = config(&fake);
    cfg.token = Some(Secret::new(INTEGRATION_TOKEN));
    cfg.credential = None;
    Magento2::new(&cfg)
        .push(&update(1, Outcome::Accepted, None))
        .await
        .expect("delivered");
    assert_eq!(fake.token_requests(), 0);
}

#[tokio::test]
async fn a_refused_integration_token_is_permanent() {
    let fake = FakeMagento2::start().await;
    fake.add_order(ENTITY, INCREMENT, "new", "pending");
    let mut cfg = config(&fake);
    cfg.token = Some(Secret::new("revoked-token"));
    let err = Magento2::new(&cfg)
        .push(&update(1, Outcome::Accepted, None))
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    assert!(err.to_string().contains("Magento_Sales::sales"), "{err}");
    assert_eq!(
        fake.token_requests(),
        0,
        "an integration token is never swapped for an admin one"
    );
}

#[tokio::test]
async fn a_wrong_admin_password_is_permanent_without_the_password() {
    let fake = FakeMagento2::start().await;
    let mut cfg = config(&fake);
    cfg.credential = Some(Secret::new("wrong-password-1"));
    let err = Magento2::new(&cfg)
        .push(&update(1, Outcome::Accepted, None))
        .await
        .unwrap_err();
    assert!(!err.is_transient());
    let text = err.to_string();
    assert!(text.contains("admin login refused"), "{text}");
    assert!(!text.contains("wrong-password-1"));
}

#[tokio::test]
async fn an_unknown_increment_id_is_permanent() {
    let fake = FakeMagento2::start().await;
    let client = Magento2::new(&config(&fake));
    let err = client
        .push(&update(1, Outcome::Accepted, None))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        PushError::permanent(format!("order {INCREMENT} not found"))
    );
}

#[tokio::test]
async fn an_unknown_entity_id_is_permanent_with_magentos_message() {
    let fake = FakeMagento2::start().await;
    let mut cfg = config(&fake);
    cfg.lookup_by_increment_id = false;
    let mut u = update(1, Outcome::Accepted, None);
    u.order_ref = "999".into();
    let err = Magento2::new(&cfg).push(&u).await.unwrap_err();
    assert_eq!(
        err,
        PushError::permanent(
            "Magento HTTP 404: The entity that was requested doesn't exist. Verify the entity and try again."
        )
    );
    assert_eq!(fake.searches(), 0);
}

#[tokio::test]
async fn without_lookup_the_order_ref_is_the_entity_id() {
    let fake = FakeMagento2::start().await;
    fake.add_order(ENTITY, INCREMENT, "new", "pending");
    let mut cfg = config(&fake);
    cfg.lookup_by_increment_id = false;
    let mut u = update(1, Outcome::Accepted, None);
    u.order_ref = ENTITY.to_string();
    Magento2::new(&cfg).push(&u).await.expect("delivered");
    assert_eq!(fake.order(ENTITY).status, "processing");
    let mut bad = u.clone();
    bad.order_ref = "42/../../store".into();
    assert!(!Magento2::new(&cfg)
        .push(&bad)
        .await
        .unwrap_err()
        .is_transient());
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
