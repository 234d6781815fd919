//! The Magento 2 REST client against a fake `rest/V1` that models the
//! order's state machine (issue 19): every test checks that the status
//! written belongs to the order's state.

mod support;

use std::time::Duration;

use ipnsync::config::{default_statuses, OrderRules, Secret, ShopConfig, ShopKind, ShopStatus};
use ipnsync::domain::money::Money;
use ipnsync::domain::Outcome;
use ipnsync::shops::magento2::Magento2;
use ipnsync::shops::{PushError, Pushed, ShopUpdate};
use support::fake_magento2::{
    FakeMagento2, HistoryRow, Order, ADMIN_PASSWORD, ADMIN_USER, INTEGRATION_TOKEN,
};
use support::order_states::fits;

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
        comment: format!(
            "Lyra: {outcome}\nTransaction t{outbox_id} (id uuid-{outbox_id}), 101.00 USD."
        ),
        notify: false,
        provider: "lyra".into(),
        transaction_id: format!("t{outbox_id}"),
        provider_status: "AUTHORISED".into(),
        amount: None,
        customer_text: String::new(),
        earlier_attempt_unknown: false,
        by_operator: false,
    }
}

async fn shop_with_order(state: &str, status: &str) -> (FakeMagento2, Magento2) {
    let fake = FakeMagento2::start().await;
    fake.add_order(ENTITY, INCREMENT, state, status);
    let client = Magento2::new(&config(&fake));
    (fake, client)
}

/// The invariant: the order's status belongs to its state.
fn assert_fits(order: &Order) {
    assert!(
        fits(&order.state, &order.status, &[]),
        "status {:?} does not belong to state {:?}",
        order.status,
        order.state
    );
}

async fn push(fake: &FakeMagento2, client: &Magento2, u: &ShopUpdate) -> Pushed {
    let pushed = client.push(u).await.expect("pushed");
    assert_fits(&fake.order(ENTITY));
    pushed
}

fn posted(fake: &FakeMagento2, suffix: &str) -> usize {
    fake.requests()
        .iter()
        .filter(|r| r.starts_with("POST") && r.ends_with(suffix))
        .count()
}

// ---------------------------------------------------------------- accepted

#[tokio::test]
async fn an_accepted_payment_invoices_the_order_so_it_is_processing_and_paid() {
    let (fake, client) = shop_with_order("new", "pending").await;
    let pushed = push(&fake, &client, &update(1, Outcome::Accepted, None)).await;
    let order = fake.order(ENTITY);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("processing", "processing")
    );
    assert_eq!(order.invoices, 1);
    assert_eq!(
        fake.requests(),
        [
            "GET /rest/V1/orders",
            "GET /rest/V1/orders/42",
            "POST /rest/V1/order/42/invoice",
            "GET /rest/V1/orders/42",
            "POST /rest/V1/orders/42/comments"
        ]
    );
    assert!(
        pushed
            .detail
            .starts_with("invoiced (offline capture); comment added with status processing"),
        "{}",
        pushed.detail
    );
}

#[tokio::test]
async fn an_already_invoiced_order_gets_only_the_comment() {
    let (fake, client) = shop_with_order("new", "pending").await;
    fake.set_invoiced(ENTITY);
    push(&fake, &client, &update(1, Outcome::Accepted, None)).await;
    assert_eq!(fake.order(ENTITY).invoices, 1);
    assert_eq!(posted(&fake, "/invoice"), 0);
}

#[tokio::test]
async fn with_invoicing_off_an_accepted_new_order_keeps_its_pending_label() {
    let fake = FakeMagento2::start().await;
    fake.add_order(ENTITY, INCREMENT, "new", "pending");
    let mut cfg = config(&fake);
    cfg.order_rules = OrderRules {
        invoice_on_accept: false,
        ..OrderRules::default()
    };
    Magento2::new(&cfg)
        .push(&update(1, Outcome::Accepted, None))
        .await
        .expect("pushed");
    let order = fake.order(ENTITY);
    assert_eq!(
        (order.state.as_str(), order.status.as_str(), order.invoices),
        ("new", "pending", 0)
    );
}

#[tokio::test]
async fn a_pending_payment_keeps_a_new_order_pending_not_pending_payment() {
    let (fake, client) = shop_with_order("new", "pending").await;
    push(&fake, &client, &update(1, Outcome::Pending, None)).await;
    assert_eq!(fake.order(ENTITY).status, "pending");
}

// ------------------------------------------------------------------ review

#[tokio::test]
async fn review_holds_the_order_with_a_status_of_the_holded_state() {
    let (fake, client) = shop_with_order("processing", "processing").await;
    push(&fake, &client, &update(1, Outcome::Review, None)).await;
    push(
        &fake,
        &client,
        &update(2, Outcome::SuspectedFraud, Some(Outcome::Review)),
    )
    .await;
    let order = fake.order(ENTITY);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("holded", "holded")
    );
    assert_eq!(posted(&fake, "/hold"), 1);
    assert_eq!(
        order.history.last(),
        Some(&HistoryRow {
            status: "holded".into(),
            comment: "Lyra: suspected_fraud\nTransaction t2 (id uuid-2), 101.00 USD.\nipnsync put the order on hold.\n[ipnsync update #2]".into(),
            notified: false,
            visible_on_front: false,
        })
    );
}

#[tokio::test]
async fn a_declared_custom_review_status_of_the_holded_state_is_written() {
    let fake = FakeMagento2::start().await;
    fake.add_order(ENTITY, INCREMENT, "new", "pending");
    let mut cfg = config(&fake);
    cfg.order_rules
        .custom
        .insert("holded".into(), vec!["ipnsync_fraud".into()]);
    let mut u = update(1, Outcome::SuspectedFraud, None);
    u.status = ShopStatus::Code("ipnsync_fraud".into());
    Magento2::new(&cfg).push(&u).await.expect("pushed");
    let order = fake.order(ENTITY);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("holded", "ipnsync_fraud")
    );
}

#[tokio::test]
async fn the_shops_own_payment_review_is_left_alone() {
    let (fake, client) = shop_with_order("payment_review", "fraud").await;
    push(&fake, &client, &update(1, Outcome::Review, None)).await;
    let pushed = push(
        &fake,
        &client,
        &update(2, Outcome::Canceled, Some(Outcome::Review)),
    )
    .await;
    let order = fake.order(ENTITY);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("payment_review", "fraud")
    );
    assert_eq!(posted(&fake, "/hold") + posted(&fake, "/cancel"), 0);
    assert!(pushed
        .needs_operator
        .expect("operator")
        .contains("Deny Payment"));
}

#[tokio::test]
async fn accepted_after_ipnsyncs_review_releases_the_hold_then_invoices() {
    let (fake, client) = shop_with_order("new", "pending").await;
    push(&fake, &client, &update(1, Outcome::Review, None)).await;
    push(
        &fake,
        &client,
        &update(2, Outcome::Accepted, Some(Outcome::Review)),
    )
    .await;
    let order = fake.order(ENTITY);
    assert_eq!(
        (order.state.as_str(), order.status.as_str(), order.invoices),
        ("processing", "processing", 1)
    );
    assert_eq!(posted(&fake, "/unhold"), 1);
}

#[tokio::test]
async fn a_merchants_hold_stays_and_the_acceptance_is_not_lost_on_unhold() {
    let (fake, client) = shop_with_order("new", "pending").await;
    fake.merchant_hold(ENTITY);
    let pushed = push(
        &fake,
        &client,
        &update(1, Outcome::Accepted, Some(Outcome::Review)),
    )
    .await;
    assert_eq!(fake.order(ENTITY).state, "holded");
    assert_eq!(posted(&fake, "/unhold"), 0);
    assert!(pushed
        .needs_operator
        .expect("operator")
        .contains("on hold, not by ipnsync"));
    fake.merchant_unhold(ENTITY);
    let order = fake.order(ENTITY);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("new", "pending")
    );
    assert!(fake.updates(ENTITY)[0]
        .comment
        .contains("Needs an operator:"));
}

#[tokio::test]
async fn a_merchant_who_releases_and_holds_again_owns_the_hold() {
    // Magento 2 writes no history row for hold / unhold: ipnsync tells the
    // merchant's hold by the status it finds (the state's default, not
    // the one ipnsync wrote).
    let fake = FakeMagento2::start().await;
    fake.add_order(ENTITY, INCREMENT, "new", "pending");
    let mut cfg = config(&fake);
    cfg.order_rules
        .custom
        .insert("holded".into(), vec!["ipnsync_review".into()]);
    let client = Magento2::new(&cfg);
    let mut review = update(1, Outcome::Review, None);
    review.status = ShopStatus::Code("ipnsync_review".into());
    client.push(&review).await.expect("held");
    fake.merchant_unhold(ENTITY);
    fake.merchant_hold(ENTITY);
    let pushed = client
        .push(&update(2, Outcome::Accepted, Some(Outcome::Review)))
        .await
        .expect("pushed");
    assert_eq!(fake.order(ENTITY).state, "holded");
    assert_eq!(posted(&fake, "/unhold"), 0);
    assert!(pushed.needs_operator.is_some());
}

#[tokio::test]
async fn a_review_on_a_merchants_hold_does_not_make_it_ipnsyncs() {
    let (fake, client) = shop_with_order("processing", "processing").await;
    fake.merchant_hold(ENTITY);
    push(&fake, &client, &update(1, Outcome::Review, None)).await;
    push(
        &fake,
        &client,
        &update(2, Outcome::Accepted, Some(Outcome::Review)),
    )
    .await;
    assert_eq!(fake.order(ENTITY).state, "holded");
    assert_eq!(posted(&fake, "/unhold"), 0);
}

// ------------------------------------------------------- cancel and refund

#[tokio::test]
async fn a_cancelled_payment_cancels_an_open_order() {
    let (fake, client) = shop_with_order("new", "pending").await;
    push(&fake, &client, &update(1, Outcome::Failed, None)).await;
    let order = fake.order(ENTITY);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("canceled", "canceled")
    );
}

#[tokio::test]
async fn a_cancel_on_an_invoiced_order_writes_no_status_and_needs_an_operator() {
    let (fake, client) = shop_with_order("new", "pending").await;
    fake.set_invoiced(ENTITY);
    let pushed = push(&fake, &client, &update(2, Outcome::Canceled, None)).await;
    let order = fake.order(ENTITY);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("processing", "processing")
    );
    assert!(pushed
        .needs_operator
        .expect("operator")
        .contains("cannot be cancelled"));
    assert_eq!(posted(&fake, "/cancel"), 0);
}

#[tokio::test]
async fn a_refused_cancel_is_not_delivered_but_surfaced_with_the_shops_answer() {
    let (fake, client) = shop_with_order("new", "pending").await;
    fake.edit(ENTITY, |o| o.locked = true);
    let pushed = push(&fake, &client, &update(1, Outcome::Rejected, None)).await;
    let why = pushed.needs_operator.expect("refusal surfaced");
    assert!(
        why.contains("Magento refused to cancel the order (Magento answered false: the order cannot be cancelled)"),
        "{why}"
    );
    assert_eq!(fake.order(ENTITY).status, "pending");
}

#[tokio::test]
async fn a_refused_invoice_is_surfaced_with_magentos_message() {
    let (fake, client) = shop_with_order("new", "pending").await;
    fake.edit(ENTITY, |o| o.locked = true);
    let pushed = push(&fake, &client, &update(1, Outcome::Accepted, None)).await;
    let why = pushed.needs_operator.expect("refusal surfaced");
    assert!(
        why.contains("The order does not allow an invoice to be created."),
        "{why}"
    );
    assert_eq!(fake.order(ENTITY).status, "pending");
}

#[tokio::test]
async fn a_refund_of_an_invoiced_order_creates_a_credit_memo_and_closes_it() {
    let (fake, client) = shop_with_order("new", "pending").await;
    push(&fake, &client, &update(1, Outcome::Accepted, None)).await;
    push(
        &fake,
        &client,
        &update(2, Outcome::Refunded, Some(Outcome::Accepted)),
    )
    .await;
    let order = fake.order(ENTITY);
    assert_eq!(
        (
            order.state.as_str(),
            order.status.as_str(),
            order.creditmemos
        ),
        ("closed", "closed", 1)
    );
    assert!(order.refunded);
}

#[tokio::test]
async fn a_refund_of_an_order_never_invoiced_cancels_it() {
    let (fake, client) = shop_with_order("new", "pending").await;
    push(&fake, &client, &update(1, Outcome::Refunded, None)).await;
    let order = fake.order(ENTITY);
    assert_eq!((order.state.as_str(), order.creditmemos), ("canceled", 0));
}

#[tokio::test]
async fn a_partial_refund_needs_an_operator() {
    let (fake, client) = shop_with_order("new", "pending").await;
    push(&fake, &client, &update(1, Outcome::Accepted, None)).await;
    let mut u = update(2, Outcome::Refunded, Some(Outcome::Accepted));
    u.amount = Money::new(2000, "USD");
    let pushed = push(&fake, &client, &u).await;
    assert!(pushed
        .needs_operator
        .expect("operator")
        .contains("partial refund of 20.00 USD"));
    assert_eq!(fake.order(ENTITY).creditmemos, 0);
    assert_eq!(posted(&fake, "/refund"), 0);
}

#[tokio::test]
async fn a_transient_failure_during_an_operation_is_retried_not_delivered() {
    let (fake, client) = shop_with_order("new", "pending").await;
    fake.set_slow("/invoice", Some(Duration::from_secs(2)));
    let err = client
        .push(&update(1, Outcome::Accepted, None))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    fake.set_slow("/invoice", None);
    push(&fake, &client, &update(1, Outcome::Accepted, None)).await;
    let order = fake.order(ENTITY);
    assert_eq!((order.invoices, fake.updates(ENTITY).len()), (1, 1));
}

#[tokio::test]
async fn a_payment_on_a_cancelled_order_is_never_relabelled() {
    let (fake, client) = shop_with_order("new", "pending").await;
    push(&fake, &client, &update(1, Outcome::Canceled, None)).await;
    let mut review = update(2, Outcome::Review, Some(Outcome::Canceled));
    review.transaction_id = "t2".into();
    push(&fake, &client, &review).await;
    let mut validated = update(3, Outcome::Accepted, Some(Outcome::Review));
    validated.transaction_id = "t2".into();
    let pushed = push(&fake, &client, &validated).await;
    let order = fake.order(ENTITY);
    assert_eq!(
        (order.state.as_str(), order.status.as_str(), order.invoices),
        ("canceled", "canceled", 0)
    );
    assert_eq!(posted(&fake, "/hold"), 0);
    let why = pushed.needs_operator.expect("flagged");
    assert!(
        why.contains("this payment: lyra transaction t2")
            && why.contains("Transaction t1 (id uuid-1)"),
        "{why}"
    );
}

// ------------------------------------------------------------- amount check

#[tokio::test]
async fn an_amount_mismatch_holds_the_order_for_review_instead_of_invoicing() {
    let fake = FakeMagento2::start().await;
    fake.add_order(ENTITY, INCREMENT, "new", "pending");
    let mut cfg = config(&fake);
    cfg.amount_tolerance = Some(0);
    let mut u = update(1, Outcome::Accepted, None);
    u.amount = Money::new(4990, "EUR");
    let pushed = Magento2::new(&cfg).push(&u).await.expect("pushed");
    let order = fake.order(ENTITY);
    assert_eq!(
        (order.state.as_str(), order.status.as_str(), order.invoices),
        ("holded", "holded", 0)
    );
    assert_eq!(pushed.applied_outcome, Some(Outcome::Review));
    let why = pushed.needs_operator.expect("operator");
    assert!(
        why.contains("49.90 EUR") && why.contains("101.00 USD"),
        "{why}"
    );
}

// ------------------------------------------- customer text, marker, retries

#[tokio::test]
async fn the_customer_gets_the_customer_text_and_the_operator_comment_stays_private() {
    let (fake, client) = shop_with_order("new", "pending").await;
    let mut u = update(1, Outcome::Accepted, None);
    u.notify = true;
    u.customer_text = "Your payment of 101.00 USD was received.".into();
    push(&fake, &client, &u).await;
    let rows = fake.order(ENTITY).history;
    assert_eq!(rows.len(), 2);
    assert_eq!(
        rows[0],
        HistoryRow {
            status: "processing".into(),
            comment: "Your payment of 101.00 USD was received.".into(),
            notified: true,
            visible_on_front: true,
        }
    );
    assert!(!rows[1].notified && !rows[1].visible_on_front);
    assert!(rows[1].comment.ends_with("[ipnsync update #1]"));
}

#[tokio::test]
async fn a_comment_saved_before_a_failure_is_not_written_again_on_retry() {
    let (fake, client) = shop_with_order("new", "pending").await;
    fake.set_comment_saves_then_fails(1);
    let first = client
        .push(&update(1, Outcome::Pending, None))
        .await
        .unwrap_err();
    assert!(first.is_transient(), "{first}");
    let mut retry = update(1, Outcome::Pending, None);
    retry.earlier_attempt_unknown = true;
    for _ in 0..5 {
        let pushed = push(&fake, &client, &retry).await;
        assert!(
            pushed.detail.starts_with("already in the order history"),
            "{}",
            pushed.detail
        );
    }
    assert_eq!(fake.updates(ENTITY).len(), 1);
}

#[tokio::test]
async fn a_slow_shop_gets_one_customer_entry_and_one_operator_comment() {
    let (fake, client) = shop_with_order("new", "pending").await;
    let mut u = update(1, Outcome::Accepted, None);
    u.notify = true;
    u.customer_text = "Paid, thank you.".into();
    fake.set_slow("/comments", Some(Duration::from_secs(2)));
    assert!(client.push(&u).await.unwrap_err().is_transient());
    fake.set_slow("/comments", None);
    u.earlier_attempt_unknown = true;
    push(&fake, &client, &u).await;
    push(&fake, &client, &u).await;
    let order = fake.order(ENTITY);
    assert_eq!(
        order.history.iter().filter(|h| h.notified).count(),
        1,
        "one e-mail"
    );
    assert_eq!((fake.updates(ENTITY).len(), order.invoices), (1, 1));
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

/// The same on Magento 2: an analyst's note during ipnsync's review keeps
/// the hold ipnsync's, so the acceptance releases it and invoices.
#[tokio::test]
async fn an_analysts_note_during_ipnsyncs_review_keeps_the_hold_ipnsyncs() {
    let (fake, client) = shop_with_order("new", "pending").await;
    push(&fake, &client, &update(1, Outcome::Review, None)).await;
    let mut note = update(2, Outcome::Review, Some(Outcome::Review));
    note.comment = "Cybersource: note by analyst1: customer called, all fine.".into();
    push(&fake, &client, &note).await;
    let pushed = push(
        &fake,
        &client,
        &update(3, Outcome::Accepted, Some(Outcome::Review)),
    )
    .await;
    assert_eq!(pushed.needs_operator, None, "{}", pushed.detail);
    let order = fake.order(ENTITY);
    assert_eq!(
        (order.state.as_str(), order.status.as_str(), order.invoices),
        ("processing", "processing", 1)
    );
    assert_eq!(posted(&fake, "/unhold"), 1);
}
