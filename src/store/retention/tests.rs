use bytes::Bytes;

use super::*;
use crate::domain::{Facts, LyraFacts, Notification, Provider};
use crate::store::writer::{intake, NewNotification};

const DAY: i64 = 86_400_000;

fn db() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    drop(crate::store::open_writer(&path).unwrap());
    let conn = open(&path).unwrap();
    (dir, conn)
}

/// A Lyra notification for `order` of shop `s` with `status` and its
/// own transaction number (`n`), so every call is a new event.
fn notification(order: &str, status: &str, n: u32, body: &'static [u8]) -> NewNotification {
    let notification = Notification {
        provider: Provider::LyraForm,
        order_ref: order.into(),
        transaction_id: format!("uuid-{order}-{n}"),
        transaction_number: format!("{n:06}"),
        amount_minor: Some(1000),
        currency: "978".into(),
        facts: Facts::Lyra(LyraFacts {
            trans_status: status.into(),
            operation_type: "DEBIT".into(),
            url_check_src: "PAY".into(),
            ..LyraFacts::default()
        }),
    };
    NewNotification {
        source: "lyra".into(),
        shop: Some("s".into()),
        order_ref: order.into(),
        event_key: notification.event_key(),
        notification,
        received_at: crate::store::now_ms(),
        peer: "127.0.0.1:1".into(),
        headers: "{}".into(),
        body: Bytes::from_static(body),
    }
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// Moves everything stored so far `days` into the past.
fn age_everything(conn: &Connection, days: i64) {
    conn.execute_batch(&format!(
        "UPDATE deliveries SET received_at = received_at - {days} * {DAY};
         UPDATE events SET created_at = created_at - {days} * {DAY};
         UPDATE orders SET updated_at = updated_at - {days} * {DAY};"
    ))
    .unwrap();
}

const BODY: &[u8] = b"vads_order_id=1&vads_trans_status=AUTHORISED&vads_site_id=12345678";

#[test]
fn bodies_before_the_cutoff_are_cleared_once_and_never_rescanned() {
    let (_dir, mut conn) = db();
    for i in 0..7 {
        intake(&conn, &notification(&i.to_string(), "AUTHORISED", 1, BODY)).unwrap();
    }
    age_everything(&conn, 100);
    intake(&conn, &notification("new", "AUTHORISED", 1, BODY)).unwrap();
    let cutoff = crate::store::now_ms() - 90 * DAY;
    assert_eq!(bodies_due(&conn, cutoff).unwrap(), 7);
    // Batches of 3: three transactions, the cursor carried between them.
    assert_eq!(
        bodies_batch(&mut conn, cutoff, 3).unwrap(),
        (3, Progress::More)
    );
    assert_eq!(
        bodies_batch(&mut conn, cutoff, 3).unwrap(),
        (3, Progress::More)
    );
    assert_eq!(
        bodies_batch(&mut conn, cutoff, 3).unwrap(),
        (1, Progress::Done)
    );
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM deliveries WHERE body IS NULL"),
        7
    );
    let newest: i64 = count(&conn, "SELECT MAX(id) FROM deliveries");
    assert_eq!(
        crate::store::bodies::read_delivery_body(&conn, newest)
            .unwrap()
            .as_deref(),
        Some(BODY),
        "the new body is kept, and reads back verbatim"
    );
    assert_eq!(
        cursor(&conn, "bodies").unwrap(),
        newest - 1,
        "the next pass starts after what this one finished"
    );
    assert_eq!(prune_bodies(&mut conn, cutoff, 3).unwrap(), 0);
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM deliveries"),
        8,
        "rows stay"
    );
}

/// The state of the order in the events left.
fn events_of(conn: &Connection, order: &str) -> i64 {
    conn.query_row(
        "SELECT COUNT(*) FROM events WHERE order_ref = ?1",
        [order],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn closed_orders_lose_their_old_notifications_and_nothing_else_does() {
    let (_dir, mut conn) = db();
    // closed: two notifications, the update delivered (with attempts).
    intake(
        &conn,
        &notification("closed", "AUTHORISED_TO_VALIDATE", 1, BODY),
    )
    .unwrap();
    intake(&conn, &notification("closed", "AUTHORISED", 2, BODY)).unwrap();
    // open: in review.
    intake(
        &conn,
        &notification("open", "AUTHORISED_TO_VALIDATE", 1, BODY),
    )
    .unwrap();
    intake(
        &conn,
        &notification("open", "AUTHORISED_TO_VALIDATE", 2, BODY),
    )
    .unwrap();
    // pending / dead outbox rows on otherwise closed orders.
    for order in ["pending", "dead"] {
        intake(
            &conn,
            &notification(order, "AUTHORISED_TO_VALIDATE", 1, BODY),
        )
        .unwrap();
        intake(&conn, &notification(order, "AUTHORISED", 2, BODY)).unwrap();
    }
    // reviewed: an operator action names its first update.
    intake(
        &conn,
        &notification("reviewed", "AUTHORISED_TO_VALIDATE", 1, BODY),
    )
    .unwrap();
    intake(&conn, &notification("reviewed", "AUTHORISED", 2, BODY)).unwrap();
    conn.execute_batch(
        "UPDATE outbox SET state = 'delivered';
         INSERT INTO push_attempts (outbox_id, at, result)
              SELECT id, 1, 'delivered' FROM outbox;
         UPDATE outbox SET state = 'pending' WHERE order_ref = 'pending';
         UPDATE outbox SET state = 'dead' WHERE order_ref = 'dead'
                                            AND id = (SELECT MIN(id) FROM outbox WHERE order_ref = 'dead');
         INSERT INTO operator_actions (shop, order_ref, action, actor, outbox_id, created_at)
              SELECT 's', 'reviewed', 'retry', 'ana', MIN(id), 1 FROM outbox WHERE order_ref = 'reviewed';",
    )
    .unwrap();
    assert!(
        count(
            &conn,
            "SELECT COUNT(*) FROM outbox WHERE order_ref = 'closed'"
        ) >= 1
    );
    age_everything(&conn, 400);
    // A recent order, closed but not old enough.
    intake(
        &conn,
        &notification("recent", "AUTHORISED_TO_VALIDATE", 1, BODY),
    )
    .unwrap();
    intake(&conn, &notification("recent", "AUTHORISED", 2, BODY)).unwrap();

    let cutoff = crate::store::now_ms() - 365 * DAY;
    let (removed, progress) = events_batch(&mut conn, cutoff, 1000).unwrap();
    assert_eq!(progress, Progress::Done);
    // closed: the first event with its delivery, outbox row, attempts.
    assert_eq!(events_of(&conn, "closed"), 1, "its current event stays");
    let current: i64 = count(
        &conn,
        "SELECT event_id FROM orders WHERE order_ref = 'closed'",
    );
    assert_eq!(
        count(
            &conn,
            "SELECT MAX(id) FROM events WHERE order_ref = 'closed'"
        ),
        current
    );
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM deliveries d JOIN events e ON e.id = d.event_id WHERE e.order_ref = 'closed'"),
        1
    );
    // reviewed: the event the operator action names stays too, so nothing went.
    assert_eq!(events_of(&conn, "reviewed"), 2);
    for order in ["open", "pending", "dead", "recent"] {
        assert_eq!(events_of(&conn, order), 2, "{order} untouched");
    }
    assert_eq!(removed.events, 1);
    assert_eq!(removed.deliveries, 1);
    assert!(removed.outbox >= 1);
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM pragma_foreign_key_check"),
        0
    );
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM orders"),
        6,
        "orders are kept"
    );

    // The dead row is retried and delivered: the next pass takes it.
    conn.execute(
        "UPDATE outbox SET state = 'delivered' WHERE order_ref = 'dead'",
        [],
    )
    .unwrap();
    assert_eq!(
        events_batch(&mut conn, cutoff, 1000).unwrap().0.events,
        0,
        "cursor moved on"
    );
    restart_events_pass(&conn).unwrap();
    assert_eq!(events_batch(&mut conn, cutoff, 1000).unwrap().0.events, 1);
    assert_eq!(events_of(&conn, "dead"), 1);
    assert_eq!(events_of(&conn, "pending"), 2);

    // A resend of the retired notification is still a duplicate of
    // nothing the order cannot judge: the order row decides it.
    let again = intake(&conn, &notification("closed", "AUTHORISED", 2, BODY)).unwrap();
    assert!(again.duplicate, "its current event still dedupes");
}

#[test]
fn a_waiting_confirmation_keeps_its_order() {
    let (_dir, mut conn) = db();
    intake(&conn, &notification("c", "AUTHORISED_TO_VALIDATE", 1, BODY)).unwrap();
    intake(&conn, &notification("c", "AUTHORISED", 2, BODY)).unwrap();
    conn.execute_batch(
        "UPDATE outbox SET state = 'delivered';
         INSERT INTO confirmations (event_id, source, shop, order_ref, state, next_attempt_at, created_at)
              SELECT MIN(id), 'lyra', 's', 'c', 'waiting', 0, 0 FROM events;",
    )
    .unwrap();
    age_everything(&conn, 400);
    let cutoff = crate::store::now_ms() - 365 * DAY;
    assert_eq!(
        events_batch(&mut conn, cutoff, 10).unwrap().0,
        Removed::default()
    );
    assert_eq!(events_of(&conn, "c"), 2);
    conn.execute("UPDATE confirmations SET state = 'done'", [])
        .unwrap();
    restart_events_pass(&conn).unwrap();
    assert_eq!(events_batch(&mut conn, cutoff, 10).unwrap().0.events, 1);
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM confirmations"),
        0,
        "went with its event"
    );
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM pragma_foreign_key_check"),
        0
    );
}

#[test]
fn freed_pages_go_back_to_the_file_system() {
    let (dir, mut conn) = db();
    let big: &'static [u8] = Box::leak(
        (0..200_000u32)
            .flat_map(|i| i.wrapping_mul(2_654_435_761).to_le_bytes())
            .collect::<Vec<u8>>()
            .into_boxed_slice(),
    );
    for i in 0..5 {
        intake(&conn, &notification(&i.to_string(), "AUTHORISED", 1, big)).unwrap();
    }
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let pages = count(&conn, "PRAGMA page_count");
    age_everything(&conn, 100);
    prune_bodies(&mut conn, crate::store::now_ms() - 90 * DAY, 2).unwrap();
    for _ in 0..10 {
        vacuum_step(&conn).unwrap();
    }
    assert_eq!(count(&conn, "PRAGMA auto_vacuum"), 2, "incremental");
    assert!(
        count(&conn, "PRAGMA page_count") < pages / 2,
        "{pages} → {}",
        count(&conn, "PRAGMA page_count")
    );
    let f = footprint(&conn).unwrap();
    assert_eq!((f.events, f.deliveries, f.bodies_kept), (5, 5, 0));
    drop(dir);
}
