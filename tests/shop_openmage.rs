//! The OpenMage XML-RPC client against a fake `/api/xmlrpc/` that models
//! the order's state machine (issue 19): every test checks that the status
//! written belongs to the order's state.

mod support;

use std::time::Duration;

use ipnsync::config::{default_statuses, OrderRules, Secret, ShopConfig, ShopKind, ShopStatus};
use ipnsync::domain::money::Money;
use ipnsync::domain::Outcome;
use ipnsync::shops::openmage::OpenMage;
use ipnsync::shops::{PushError, Pushed, ShopUpdate};
use support::fake_openmage::{FakeOpenMage, HistoryRow, Order, KEY, USER};
use support::order_states::fits;

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

async fn shop_with_order(state: &str, status: &str) -> (FakeOpenMage, OpenMage) {
    let fake = FakeOpenMage::start().await;
    fake.add_order(ORDER, state, status);
    let client = OpenMage::new(&config(&fake));
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

async fn push(fake: &FakeOpenMage, client: &OpenMage, u: &ShopUpdate) -> Pushed {
    let pushed = client.push(u).await.expect("pushed");
    assert_fits(&fake.order(ORDER));
    pushed
}

fn calls_after_login(fake: &FakeOpenMage) -> Vec<String> {
    fake.calls().into_iter().filter(|c| c != "login").collect()
}

// ---------------------------------------------------------------- accepted

#[tokio::test]
async fn an_accepted_payment_invoices_the_order_so_it_is_processing_and_paid() {
    let (fake, client) = shop_with_order("new", "pending").await;
    let pushed = push(&fake, &client, &update(1, Outcome::Accepted, None)).await;
    let order = fake.order(ORDER);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("processing", "processing")
    );
    assert!(order.invoiced, "the paid amount is updated");
    assert_eq!(order.invoices, 1);
    assert_eq!(
        calls_after_login(&fake),
        [
            "sales_order.info",
            "sales_order_invoice.create",
            "sales_order.info",
            "sales_order.addComment"
        ]
    );
    assert!(
        pushed
            .detail
            .starts_with("invoiced (offline capture); comment added with status processing"),
        "{}",
        pushed.detail
    );
    assert_eq!(pushed.needs_operator, None);
    let last = order.history.last().expect("comment");
    assert!(
        last.comment
            .ends_with("ipnsync: invoiced (offline capture).\n[ipnsync update #1]"),
        "{}",
        last.comment
    );
}

#[tokio::test]
async fn an_online_gateways_unpaid_invoice_needs_an_operator() {
    // sales_order_invoice.create registers no capture: a gateway method's
    // invoice stays unpaid (Invoice::register), so the paid amount is not
    // updated and a later refund has nothing to credit.
    let (fake, client) = shop_with_order("new", "pending").await;
    fake.edit(ORDER, |o| o.gateway = true);
    let pushed = push(&fake, &client, &update(1, Outcome::Accepted, None)).await;
    let why = pushed.needs_operator.expect("capture it");
    assert!(why.contains("invoice is not paid"), "{why}");
    let order = fake.order(ORDER);
    assert_eq!(
        (order.state.as_str(), order.invoices, order.paid),
        ("processing", 1, false)
    );
    let pushed = push(
        &fake,
        &client,
        &update(2, Outcome::Refunded, Some(Outcome::Accepted)),
    )
    .await;
    assert!(pushed
        .needs_operator
        .expect("operator")
        .contains("nothing paid"));
    let order = fake.order(ORDER);
    assert_eq!(
        (
            order.state.as_str(),
            order.status.as_str(),
            order.creditmemos
        ),
        ("processing", "processing", 0)
    );
}

#[tokio::test]
async fn an_already_invoiced_order_gets_only_the_comment() {
    let (fake, client) = shop_with_order("new", "pending").await;
    fake.set_invoiced(ORDER);
    push(&fake, &client, &update(1, Outcome::Accepted, None)).await;
    assert_eq!(fake.order(ORDER).invoices, 1, "no second invoice");
    assert!(!calls_after_login(&fake).contains(&"sales_order_invoice.create".to_owned()));
}

#[tokio::test]
async fn with_invoicing_off_an_accepted_new_order_keeps_its_pending_label() {
    let fake = FakeOpenMage::start().await;
    fake.add_order(ORDER, "new", "pending");
    let mut cfg = config(&fake);
    cfg.order_rules = OrderRules {
        invoice_on_accept: false,
        ..OrderRules::default()
    };
    let pushed = OpenMage::new(&cfg)
        .push(&update(1, Outcome::Accepted, None))
        .await
        .expect("pushed");
    let order = fake.order(ORDER);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("new", "pending")
    );
    assert_eq!(order.invoices, 0);
    assert!(
        pushed.detail.contains("not processing: the order is new"),
        "{}",
        pushed.detail
    );
}

#[tokio::test]
async fn a_pending_payment_keeps_a_new_order_pending_not_pending_payment() {
    let (fake, client) = shop_with_order("new", "pending").await;
    push(&fake, &client, &update(1, Outcome::Pending, None)).await;
    let order = fake.order(ORDER);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("new", "pending")
    );
}

// ------------------------------------------------------------------ review

#[tokio::test]
async fn review_holds_the_order_with_a_status_of_the_holded_state() {
    let (fake, client) = shop_with_order("new", "pending").await;
    for (id, outcome) in [(1, Outcome::Review), (2, Outcome::SuspectedFraud)] {
        push(&fake, &client, &update(id, outcome, None)).await;
        let order = fake.order(ORDER);
        assert_eq!(
            (order.state.as_str(), order.status.as_str()),
            ("holded", "holded")
        );
    }
    let last = fake.order(ORDER).history.last().cloned().expect("comment");
    assert!(
        last.comment.contains("ipnsync put the order on hold."),
        "{}",
        last.comment
    );
    assert_eq!(
        calls_after_login(&fake)
            .iter()
            .filter(|c| *c == "sales_order.hold")
            .count(),
        1,
        "held once"
    );
}

#[tokio::test]
async fn a_declared_custom_review_status_of_the_holded_state_is_written() {
    let fake = FakeOpenMage::start().await;
    fake.add_order(ORDER, "processing", "processing");
    let mut cfg = config(&fake);
    cfg.order_rules
        .custom
        .insert("holded".into(), vec!["ipnsync_review".into()]);
    let mut u = update(1, Outcome::Review, None);
    u.status = ShopStatus::Code("ipnsync_review".into());
    OpenMage::new(&cfg).push(&u).await.expect("pushed");
    let order = fake.order(ORDER);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("holded", "ipnsync_review")
    );
    assert!(fits(
        &order.state,
        &order.status,
        &[("holded", "ipnsync_review")]
    ));
}

#[tokio::test]
async fn the_shops_own_payment_review_is_left_alone() {
    let (fake, client) = shop_with_order("payment_review", "payment_review").await;
    push(&fake, &client, &update(1, Outcome::SuspectedFraud, None)).await;
    let order = fake.order(ORDER);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("payment_review", "payment_review")
    );
    assert!(!calls_after_login(&fake).contains(&"sales_order.hold".to_owned()));
    // Accepting it is the admin's Accept Payment: a person's job.
    let pushed = push(&fake, &client, &update(2, Outcome::Accepted, None)).await;
    assert!(pushed
        .needs_operator
        .expect("operator")
        .contains("Accept Payment"));
    assert_eq!(fake.order(ORDER).invoices, 0);
}

#[tokio::test]
async fn accepted_after_ipnsyncs_review_releases_the_hold_then_invoices() {
    let (fake, client) = shop_with_order("new", "pending").await;
    push(&fake, &client, &update(1, Outcome::Review, None)).await;
    let pushed = push(
        &fake,
        &client,
        &update(2, Outcome::Accepted, Some(Outcome::Review)),
    )
    .await;
    let order = fake.order(ORDER);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("processing", "processing")
    );
    assert_eq!(order.invoices, 1);
    assert!(
        pushed
            .detail
            .starts_with("released from hold; invoiced (offline capture); comment added"),
        "{}",
        pushed.detail
    );
}

#[tokio::test]
async fn a_merchants_hold_stays_and_the_acceptance_is_not_lost_on_unhold() {
    let (fake, client) = shop_with_order("new", "pending").await;
    fake.merchant_hold(ORDER);
    let pushed = push(
        &fake,
        &client,
        &update(1, Outcome::Accepted, Some(Outcome::Review)),
    )
    .await;
    let order = fake.order(ORDER);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("holded", "holded")
    );
    assert!(!calls_after_login(&fake).contains(&"sales_order.unhold".to_owned()));
    let why = pushed.needs_operator.expect("a person must invoice");
    assert!(
        why.contains("on hold, not by ipnsync") && why.contains("create the invoice"),
        "{why}"
    );
    // The admin releases it: OpenMage restores new/pending, and the
    // acceptance is still there to read in the history.
    fake.merchant_unhold(ORDER);
    let order = fake.order(ORDER);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("new", "pending")
    );
    assert!(fake.updates(ORDER)[0]
        .comment
        .contains("Needs an operator:"));
}

#[tokio::test]
async fn a_merchants_note_on_ipnsyncs_hold_does_not_stop_the_release() {
    let (fake, client) = shop_with_order("new", "pending").await;
    push(&fake, &client, &update(1, Outcome::Review, None)).await;
    fake.edit(ORDER, |o| {
        o.history.push(HistoryRow {
            status: "holded".into(),
            comment: "Called the customer, all fine.".into(),
            notified: false,
        })
    });
    push(
        &fake,
        &client,
        &update(2, Outcome::Accepted, Some(Outcome::Review)),
    )
    .await;
    let order = fake.order(ORDER);
    assert_eq!((order.state.as_str(), order.invoices), ("processing", 1));
}

#[tokio::test]
async fn a_merchant_who_releases_and_holds_again_owns_the_hold() {
    let (fake, client) = shop_with_order("new", "pending").await;
    push(&fake, &client, &update(1, Outcome::Review, None)).await;
    fake.merchant_unhold(ORDER);
    fake.merchant_hold(ORDER);
    let pushed = push(
        &fake,
        &client,
        &update(2, Outcome::Accepted, Some(Outcome::Review)),
    )
    .await;
    assert_eq!(fake.order(ORDER).state, "holded");
    assert!(pushed.needs_operator.is_some());
    assert_eq!(
        calls_after_login(&fake)
            .iter()
            .filter(|c| *c == "sales_order.unhold")
            .count(),
        0
    );
}

#[tokio::test]
async fn a_review_on_a_merchants_hold_does_not_make_it_ipnsyncs() {
    let (fake, client) = shop_with_order("processing", "processing").await;
    fake.merchant_hold(ORDER);
    push(&fake, &client, &update(1, Outcome::Review, None)).await;
    push(
        &fake,
        &client,
        &update(2, Outcome::Accepted, Some(Outcome::Review)),
    )
    .await;
    let order = fake.order(ORDER);
    assert_eq!(order.state, "holded", "never released without the merchant");
}

// ------------------------------------------------------- cancel and refund

#[tokio::test]
async fn a_cancelled_payment_cancels_an_open_order() {
    let (fake, client) = shop_with_order("new", "pending").await;
    push(&fake, &client, &update(1, Outcome::Canceled, None)).await;
    let order = fake.order(ORDER);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("canceled", "canceled")
    );
}

#[tokio::test]
async fn a_cancel_on_an_invoiced_order_writes_no_status_and_needs_an_operator() {
    let (fake, client) = shop_with_order("new", "pending").await;
    fake.set_invoiced(ORDER);
    let pushed = push(&fake, &client, &update(2, Outcome::Canceled, None)).await;
    let order = fake.order(ORDER);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("processing", "processing")
    );
    let why = pushed.needs_operator.expect("needs an operator");
    assert!(
        why.contains("cannot be cancelled") && why.contains("credit memo"),
        "{why}"
    );
    assert!(fake.updates(ORDER)[0]
        .comment
        .contains("Needs an operator:"));
}

#[tokio::test]
async fn a_refused_cancel_is_not_delivered_but_surfaced_with_the_shops_text() {
    let (fake, client) = shop_with_order("new", "pending").await;
    fake.edit(ORDER, |o| o.locked = true);
    let pushed = push(&fake, &client, &update(1, Outcome::Rejected, None)).await;
    let why = pushed.needs_operator.expect("refusal surfaced");
    assert!(
        why.contains("OpenMage refused to cancel the order (fault 103: Order status not changed. Details in error message.)"),
        "{why}"
    );
    let order = fake.order(ORDER);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("new", "pending"),
        "no label that lies"
    );
}

#[tokio::test]
async fn a_refused_invoice_is_surfaced_with_the_shops_text() {
    let (fake, client) = shop_with_order("new", "pending").await;
    fake.edit(ORDER, |o| o.locked = true);
    let pushed = push(&fake, &client, &update(1, Outcome::Accepted, None)).await;
    let why = pushed.needs_operator.expect("refusal surfaced");
    assert!(
        why.contains("refused to invoice the order (fault 102: Cannot do invoice for order.)"),
        "{why}"
    );
    assert_eq!(fake.order(ORDER).status, "pending");
}

#[tokio::test]
async fn a_refund_of_an_invoiced_order_creates_a_credit_memo_and_closes_it() {
    let (fake, client) = shop_with_order("new", "pending").await;
    push(&fake, &client, &update(1, Outcome::Accepted, None)).await;
    let pushed = push(
        &fake,
        &client,
        &update(2, Outcome::Refunded, Some(Outcome::Accepted)),
    )
    .await;
    let order = fake.order(ORDER);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("closed", "closed")
    );
    assert_eq!(order.creditmemos, 1);
    assert!(order.refunded, "total_refunded is set");
    assert!(
        pushed
            .detail
            .starts_with("credit memo created (offline refund)"),
        "{}",
        pushed.detail
    );
}

#[tokio::test]
async fn a_refund_of_an_order_never_invoiced_cancels_it() {
    let (fake, client) = shop_with_order("new", "pending").await;
    push(
        &fake,
        &client,
        &update(1, Outcome::Refunded, Some(Outcome::Accepted)),
    )
    .await;
    let order = fake.order(ORDER);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("canceled", "canceled")
    );
    assert_eq!(order.creditmemos, 0);
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
    let order = fake.order(ORDER);
    assert_eq!((order.state.as_str(), order.creditmemos), ("processing", 0));
}

#[tokio::test]
async fn a_payment_on_a_cancelled_order_is_never_relabelled() {
    let (fake, client) = shop_with_order("new", "pending").await;
    push(&fake, &client, &update(1, Outcome::Canceled, None)).await;
    // Another transaction: first put in review, then accepted.
    let review = push(
        &fake,
        &client,
        &update(2, Outcome::Review, Some(Outcome::Canceled)),
    )
    .await;
    let mut validated = update(3, Outcome::Accepted, Some(Outcome::Review));
    validated.transaction_id = "t2".into();
    let accepted = push(&fake, &client, &validated).await;
    let order = fake.order(ORDER);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("canceled", "canceled")
    );
    assert!(!calls_after_login(&fake).contains(&"sales_order.hold".to_owned()));
    assert_eq!(order.invoices, 0);
    for pushed in [review, accepted] {
        let why = pushed.needs_operator.expect("flagged");
        assert!(
            why.contains("a payment arrived for an order that is canceled"),
            "{why}"
        );
    }
    let last = fake.updates(ORDER).pop().expect("comment").comment;
    assert!(
        last.contains("this payment: lyra transaction t2 (AUTHORISED)"),
        "{last}"
    );
    assert!(
        last.contains("Earlier: Lyra: canceled — Transaction t1 (id uuid-1)"),
        "{last}"
    );
}

// ------------------------------------------------------------- amount check

#[tokio::test]
async fn an_amount_mismatch_holds_the_order_for_review_instead_of_invoicing() {
    let fake = FakeOpenMage::start().await;
    fake.add_order(ORDER, "new", "pending");
    let mut cfg = config(&fake);
    cfg.amount_tolerance = Some(0);
    let client = OpenMage::new(&cfg);
    let mut u = update(1, Outcome::Accepted, None);
    u.amount = Money::new(4990, "EUR");
    u.notify = true;
    u.customer_text = "Your payment was received.".into();
    let pushed = push(&fake, &client, &u).await;
    let order = fake.order(ORDER);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("holded", "holded")
    );
    assert_eq!(order.invoices, 0);
    assert_eq!(pushed.applied_outcome, Some(Outcome::Review));
    let why = pushed.needs_operator.expect("operator");
    assert!(
        why.contains("49.90 EUR") && why.contains("101.00 USD"),
        "{why}"
    );
    assert!(
        order.history.iter().all(|h| !h.notified),
        "no customer told it is paid"
    );
    // The same amount passes.
    let (fake, _) = shop_with_order("new", "pending").await;
    let mut cfg = config(&fake);
    cfg.amount_tolerance = Some(0);
    let mut u = update(1, Outcome::Accepted, None);
    u.amount = Money::new(10100, "USD");
    let pushed = OpenMage::new(&cfg).push(&u).await.expect("pushed");
    assert_eq!(pushed.applied_outcome, None);
    assert_eq!(fake.order(ORDER).invoices, 1);
}

// ------------------------------------------- customer text, marker, retries

#[tokio::test]
async fn the_customer_gets_the_customer_text_and_the_operator_comment_notifies_nobody() {
    let (fake, client) = shop_with_order("new", "pending").await;
    let mut u = update(1, Outcome::Accepted, None);
    u.notify = true;
    u.customer_text = "Your payment of 101.00 USD was received.".into();
    push(&fake, &client, &u).await;
    let rows: Vec<HistoryRow> = fake
        .order(ORDER)
        .history
        .into_iter()
        .filter(|h| !h.comment.is_empty())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(
        rows[0],
        HistoryRow {
            status: "processing".into(),
            comment: "Your payment of 101.00 USD was received.".into(),
            notified: true,
        }
    );
    assert!(!rows[1].notified);
    assert!(
        rows[1].comment.contains("Transaction t1")
            && rows[1].comment.ends_with("[ipnsync update #1]")
    );
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
            pushed
                .detail
                .starts_with("already in the order history ([ipnsync update #1])"),
            "{}",
            pushed.detail
        );
    }
    assert_eq!(fake.updates(ORDER).len(), 1, "one row, not six");
}

#[tokio::test]
async fn a_slow_shop_gets_one_customer_entry_and_one_operator_comment() {
    let (fake, client) = shop_with_order("new", "pending").await;
    let mut u = update(1, Outcome::Accepted, None);
    u.notify = true;
    u.customer_text = "Paid, thank you.".into();
    // The shop processes the customer entry, then answers too late.
    fake.set_slow("sales_order.addComment", Some(Duration::from_secs(2)));
    let err = client.push(&u).await.unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
    fake.set_slow("sales_order.addComment", None);
    u.earlier_attempt_unknown = true;
    let pushed = push(&fake, &client, &u).await;
    assert!(
        pushed.detail.contains("customer entry already written"),
        "{}",
        pushed.detail
    );
    push(&fake, &client, &u).await;
    let order = fake.order(ORDER);
    assert_eq!(
        order.history.iter().filter(|h| h.notified).count(),
        1,
        "one e-mail"
    );
    assert_eq!(fake.updates(ORDER).len(), 1);
    assert_eq!(order.invoices, 1, "invoiced once");
}

#[tokio::test]
async fn a_transient_fault_during_an_operation_is_retried_not_delivered() {
    let (fake, client) = shop_with_order("new", "pending").await;
    fake.set_slow("sales_order_invoice.create", Some(Duration::from_secs(2)));
    let err = client
        .push(&update(1, Outcome::Accepted, None))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    fake.set_slow("sales_order_invoice.create", None);
    // The invoice went through; the retry reads that and only comments.
    push(&fake, &client, &update(1, Outcome::Accepted, None)).await;
    let order = fake.order(ORDER);
    assert_eq!((order.invoices, fake.updates(ORDER).len()), (1, 1));
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
            "sales_order.info",
            "sales_order.addComment",
            // fault 5, then one login and the push from the start
            "sales_order.info",
            "login",
            "sales_order.info",
            "sales_order_invoice.create",
            "sales_order.info",
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
    let fake = FakeOpenMage::start().await;
    fake.add_order(ORDER, "new", "pending");
    let mut cfg = config(&fake);
    // A payment module's status, assigned to the new state in the shop.
    cfg.order_rules
        .custom
        .insert("new".into(), vec!["payzen_to_validate".into()]);
    let client = OpenMage::new(&cfg);
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

/// Issue 12 on OpenMage: an analyst's note (a comment-only update: the
/// order keeps its outcome) adds one history entry with the order's status
/// as it is, notifies nobody, and operates on nothing — no invoice for an
/// accepted order, no relabel of an invoiced one.
#[tokio::test]
async fn an_analysts_note_is_a_comment_with_the_status_kept() {
    let (fake, client) = shop_with_order("processing", "processing").await;
    fake.set_invoiced(ORDER);
    let mut note = update(7, Outcome::Accepted, Some(Outcome::Accepted));
    note.comment = "Cybersource: note by analyst1: customer called, all fine.".into();
    assert!(note.is_comment_only());
    let pushed = push(&fake, &client, &note).await;
    assert!(pushed.detail.contains("comment only"), "{}", pushed.detail);
    let order = fake.order(ORDER);
    assert_eq!(order.invoices, 1, "no second invoice");
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("processing", "processing")
    );
    let updates = fake.updates(ORDER);
    assert_eq!(updates.len(), 1, "{updates:?}");
    assert!(!updates[0].notified);
    assert!(updates[0].comment.contains("customer called, all fine."));
    assert!(!calls_after_login(&fake)
        .iter()
        .any(|c| c.contains("invoice") || c.contains("cancel") || c.contains("hold")));
}

/// An analyst's note on an order ipnsync holds for review (the usual case:
/// notes are written during the review) keeps the hold ipnsync's: the
/// acceptance that follows releases it and invoices. Before the fix the
/// note became ipnsync's newest comment without the hold line, so the hold
/// passed for the merchant's and the acceptance only asked for an operator.
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
    let order = fake.order(ORDER);
    assert_eq!(
        (order.state.as_str(), order.status.as_str()),
        ("processing", "processing")
    );
    assert_eq!(order.invoices, 1);
}
