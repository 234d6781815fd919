use super::*;
use crate::domain::Facts;
use crate::store::read::review_queue::{
    order_review_actions, review_queue, review_target, TargetLookup, TransactionState,
};
use crate::store::test_support::{lyra_in_shop as lyra, operator_db as db};
use crate::store::writer::intake;

#[test]
fn queue_target_and_a_recorded_move() {
    let (_dir, mut conn) = db();
    intake(&conn, &lyra("7", "u2", "AUTHORISED_TO_VALIDATE", 2)).unwrap();
    intake(&conn, &lyra("8", "u3", "AUTHORISED", 3)).unwrap();

    let queue = review_queue(&conn, None).unwrap();
    assert_eq!(queue.len(), 1);
    let item = &queue[0];
    assert_eq!(
        (item.order_ref.as_str(), item.outcome),
        ("7", Outcome::Review)
    );
    assert_eq!(
        (item.amount_minor, item.card_brand.as_str()),
        (Some(2990), "CB")
    );

    let TargetLookup::Found(t) = review_target(&conn, None, "7").unwrap() else {
        panic!("found")
    };
    assert_eq!(t.transactions, ["u2"]);
    assert_eq!(t.source, "lyra");
    assert_eq!(
        review_target(&conn, None, "9").unwrap(),
        TargetLookup::Unknown
    );

    assert_eq!(
        t.states,
        [TransactionState {
            lyra_status: "AUTHORISED_TO_VALIDATE".into(),
            request_id: String::new(),
        }]
    );

    let action = validate("alice");
    let m = OrderMove {
        from: Outcome::Review,
        to: Outcome::Accepted,
        comment: "Payment validated",
    };
    let claimed = claimed(claim_order(&mut conn, &action, Outcome::Review, far()).unwrap());
    let busy = claim_order(&mut conn, &validate("bob"), Outcome::Review, far()).unwrap();
    assert!(
        matches!(&busy, ClaimResult::Busy(b) if b.id == claimed.id && b.actor == "alice"),
        "{busy:?}"
    );
    let r = finish_action(&mut conn, &action, &claimed, &ok(), Some(&m)).unwrap();
    assert!(r.moved && r.outbox_id.is_some() && r.moved_by.is_none());
    assert_eq!((r.id, r.outcome), (claimed.id, Some(Outcome::Accepted)));
    // The same action again finds the order moved: refused, no update.
    assert_eq!(
        claim_order(&mut conn, &action, Outcome::Review, far()).unwrap(),
        ClaimResult::Moved(Some(Outcome::Accepted))
    );
    let outbox: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM outbox WHERE order_ref = '7'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(outbox, 2, "review, then accepted once");
    let actions = order_review_actions(&conn, "s", "7").unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].outcome.as_deref(), Some("accepted"));
    assert_eq!(actions[0].state, "done");
    assert_eq!(actions[0].gateway_status.as_deref(), Some("AUTHORISED"));
    assert!(review_queue(&conn, None).unwrap().is_empty());
}

fn validate(actor: &str) -> NewReviewAction<'_> {
    NewReviewAction {
        shop: "s",
        order_ref: "7",
        action: "validate",
        actor,
        comment: Some("ok"),
        gateway: "lyra",
    }
}

fn ok() -> GatewayResult<'static> {
    GatewayResult {
        gateway_status: Some("AUTHORISED"),
        error: None,
    }
}

fn far() -> i64 {
    now_ms() + 60_000
}

fn claimed(c: ClaimResult) -> Claimed {
    match c {
        ClaimResult::Claimed(c) => c,
        other => panic!("not claimed: {other:?}"),
    }
}

const MOVE: OrderMove<'static> = OrderMove {
    from: Outcome::Review,
    to: Outcome::Accepted,
    comment: "Payment validated",
};

#[test]
fn a_failed_action_releases_the_order_and_a_stale_claim_does_not_block() {
    let (_dir, mut conn) = db();
    intake(&conn, &lyra("7", "u2", "AUTHORISED_TO_VALIDATE", 2)).unwrap();
    let a = claimed(claim_order(&mut conn, &validate("a"), Outcome::Review, far()).unwrap());
    let failed = GatewayResult {
        gateway_status: None,
        error: Some("PSP_010: no"),
    };
    let r = finish_action(&mut conn, &validate("a"), &a, &failed, Some(&MOVE)).unwrap();
    assert!(!r.moved && r.moved_by.is_none());
    assert_eq!(r.outcome, Some(Outcome::Review));
    // A claim whose holder died (expired) does not block the next one.
    let b = claim_order(&mut conn, &validate("b"), Outcome::Review, now_ms() - 1).unwrap();
    let b = claimed(b);
    let c = claimed(claim_order(&mut conn, &validate("c"), Outcome::Review, far()).unwrap());
    // A shop-only action waits for the live claim too.
    assert!(matches!(
        record_shop_only(&mut conn, &validate("d"), &MOVE).unwrap(),
        Err(ClaimResult::Busy(busy)) if busy.id == c.id
    ));
    let r = finish_action(&mut conn, &validate("c"), &c, &ok(), Some(&MOVE)).unwrap();
    assert!(r.moved);
    // The expired claim's holder comes back after all: the order was
    // moved by another action, not by a notification.
    let r = finish_action(&mut conn, &validate("b"), &b, &ok(), Some(&MOVE)).unwrap();
    assert!(!r.moved);
    assert_eq!(
        r.moved_by,
        Some(MovedBy::ReviewAction {
            id: c.id,
            actor: "c".into()
        })
    );
    let states: Vec<String> = order_review_actions(&conn, "s", "7")
        .unwrap()
        .into_iter()
        .map(|a| a.state)
        .collect();
    assert_eq!(states, ["failed", "done", "done"]);
}

#[test]
fn a_notification_that_moved_the_order_meanwhile_is_named() {
    let (_dir, mut conn) = db();
    intake(&conn, &lyra("7", "u2", "AUTHORISED_TO_VALIDATE", 2)).unwrap();
    let a = claimed(claim_order(&mut conn, &validate("a"), Outcome::Review, far()).unwrap());
    let mut confirm = lyra("7", "u2", "AUTHORISED", 3);
    if let Facts::Lyra(l) = &mut confirm.notification.facts {
        l.url_check_src = "MERCH_BO".into();
    }
    confirm.event_key = confirm.notification.event_key();
    intake(&conn, &confirm).unwrap();
    let (outcome, event_id) = order_now(&conn, "s", "7").unwrap().unwrap();
    assert_eq!(outcome, Outcome::Accepted, "the gateway's notification");
    let r = finish_action(&mut conn, &validate("a"), &a, &ok(), Some(&MOVE)).unwrap();
    assert!(!r.moved && r.outbox_id.is_none());
    assert_eq!(r.moved_by, Some(MovedBy::Notification { event_id }));
}
