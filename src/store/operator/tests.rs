use super::*;
use crate::domain::Facts;
use crate::store::read::open_read;
use crate::store::test_support::{count, db, notification};
use crate::store::writer::intake;

#[test]
fn readers_and_operators_refuse_missing_or_foreign_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    assert!(matches!(open_read(&missing), Err(StoreError::Open { .. })));
    assert!(matches!(
        open_operator(&missing),
        Err(StoreError::Open { .. })
    ));
    assert!(!missing.exists(), "nothing was created");

    let foreign = dir.path().join("foreign.db");
    Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    assert!(matches!(open_read(&foreign), Err(StoreError::Corrupt(_))));
}

/// Stands in for a decision made by an older version of the rules: the
/// order's outcome is set directly, as a past mapping might have left it.
fn force_outcome(conn: &Connection, order: &str, outcome: &str) {
    conn.execute(
        "UPDATE orders SET outcome = ?2 WHERE order_ref = ?1",
        params![order, outcome],
    )
    .unwrap();
}

#[test]
fn replay_redecides_against_the_current_order() {
    let (_dir, path) = db();
    let mut conn = open_operator(&path).unwrap();
    let paid = intake(&conn, &notification("7", "AUTHORISED", Some("s"), 1)).unwrap();
    force_outcome(&conn, "7", "pending");

    let dry = replay(&mut conn, paid.event_id, true, false)
        .unwrap()
        .unwrap();
    assert_eq!(dry.current, Some(Outcome::Pending));
    assert_eq!(dry.order_change, Some(Outcome::Accepted));
    assert!(dry.shop_update && dry.outbox_id.is_none());
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM outbox"),
        1,
        "dry run changes nothing"
    );
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM events WHERE replayed_at IS NOT NULL"
        ),
        0
    );

    let real = replay(&mut conn, paid.event_id, false, false)
        .unwrap()
        .unwrap();
    let outbox_id = real.outbox_id.expect("update queued");
    let (prev, next): (String, String) = conn
        .query_row(
            "SELECT previous_outcome, outcome FROM outbox WHERE id = ?1",
            [outbox_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((prev.as_str(), next.as_str()), ("pending", "accepted"));
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM orders WHERE outcome = 'accepted'"
        ),
        1
    );

    // Again: the order is now accepted, so the same event is ignored.
    let again = replay(&mut conn, paid.event_id, false, false)
        .unwrap()
        .unwrap();
    assert_eq!(again.after.verdict, "ignored");
    assert_eq!(again.order_change, None);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM outbox"), 2);
    assert_eq!(replay(&mut conn, 999, true, false).unwrap(), None);
}

#[test]
fn a_replayed_production_notification_marks_the_order_production() {
    let (_dir, path) = db();
    let mut conn = open_operator(&path).unwrap();
    let mut n = notification("9", "AUTHORISED", Some("s"), 1);
    if let Facts::Lyra(f) = &mut n.notification.facts {
        f.ctx_mode = "PRODUCTION".into();
    }
    let paid = intake(&conn, &n).unwrap();
    // Left by older rules: pending, and no mode remembered.
    conn.execute(
        "UPDATE orders SET outcome = 'pending', mode = NULL WHERE order_ref = '9'",
        [],
    )
    .unwrap();
    let r = replay(&mut conn, paid.event_id, false, false)
        .unwrap()
        .unwrap();
    assert_eq!(r.order_change, Some(Outcome::Accepted));
    let mode: Option<String> = conn
        .query_row("SELECT mode FROM orders WHERE order_ref = '9'", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(mode.as_deref(), Some("PRODUCTION"));
}

#[test]
fn replay_over_a_later_decision_needs_force() {
    let (_dir, path) = db();
    let mut conn = open_operator(&path).unwrap();
    let review = intake(
        &conn,
        &notification("5", "AUTHORISED_TO_VALIDATE", Some("s"), 1),
    )
    .unwrap();
    intake(&conn, &notification("5", "AUTHORISED", Some("s"), 2)).unwrap();
    // Older rules had left the order pending, say; the review event,
    // replayed, would now apply over the later accepted one.
    force_outcome(&conn, "5", "pending");
    let outbox_before = count(&conn, "SELECT COUNT(*) FROM outbox");
    let r = replay(&mut conn, review.event_id, false, false)
        .unwrap()
        .unwrap();
    assert!(r.refused.is_some(), "{r:?}");
    assert!(r.later_applied.is_some());
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM outbox"),
        outbox_before,
        "nothing written"
    );
    let forced = replay(&mut conn, review.event_id, false, true)
        .unwrap()
        .unwrap();
    assert!(forced.refused.is_none());
    assert!(forced.outbox_id.is_some());
}

#[test]
fn replay_of_a_log_only_event_queues_nothing() {
    let (_dir, path) = db();
    let mut conn = open_operator(&path).unwrap();
    let first = intake(&conn, &notification("9", "AUTHORISED", None, 1)).unwrap();
    force_outcome(&conn, "9", "pending");
    let r = replay(&mut conn, first.event_id, false, false)
        .unwrap()
        .unwrap();
    assert_eq!(r.order_change, Some(Outcome::Accepted));
    assert!(!r.shop_update);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM outbox"), 0);
}

#[test]
fn prune_clears_old_bodies_in_batches() {
    let (_dir, path) = db();
    let mut conn = open_operator(&path).unwrap();
    for i in 0..(PRUNE_BATCH + 3) {
        intake(&conn, &notification(&i.to_string(), "AUTHORISED", None, i)).unwrap();
    }
    intake(&conn, &notification("late", "AUTHORISED", None, 10_000)).unwrap();
    assert_eq!(
        prune_bodies(&mut conn, 10_000, true).unwrap(),
        PRUNE_BATCH as usize + 3
    );
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM deliveries WHERE body IS NULL"),
        0
    );
    assert_eq!(
        prune_bodies(&mut conn, 10_000, false).unwrap(),
        PRUNE_BATCH as usize + 3
    );
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM deliveries WHERE body IS NOT NULL"
        ),
        1
    );
    assert_eq!(prune_bodies(&mut conn, 10_000, false).unwrap(), 0);
}

#[test]
fn retry_only_touches_dead_rows() {
    let (_dir, path) = db();
    let mut conn = open_operator(&path).unwrap();
    let r = intake(&conn, &notification("1", "AUTHORISED", Some("s"), 1)).unwrap();
    let id = r.outbox_id.unwrap();
    assert_eq!(
        retry(&mut conn, Some(&[id])).unwrap(),
        0,
        "pending is not dead"
    );
    conn.execute("UPDATE outbox SET state = 'dead' WHERE id = ?1", [id])
        .unwrap();
    assert_eq!(retry(&mut conn, None).unwrap(), 1);
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM outbox WHERE state = 'pending'"),
        1
    );
}

/// A notification held for the gateway's confirmation is decided by the
/// gateway's answer only: replaying it (even with `--force`) must not apply
/// the claim the gateway has not vouched for.
#[test]
fn replay_refuses_a_notification_the_gateway_decides() {
    let (_dir, path) = db();
    let mut conn = open_operator(&path).unwrap();
    let held = crate::store::writer::intake_confirmed(
        &conn,
        &notification("9", "AUTHORISED", Some("s"), 1),
        crate::config::Confirm::Success,
    )
    .unwrap();
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM outbox"), 0, "held");
    for (dry_run, force) in [(true, false), (false, false), (false, true)] {
        let r = replay(&mut conn, held.event_id, dry_run, force)
            .unwrap()
            .unwrap();
        assert!(
            r.refused
                .as_deref()
                .is_some_and(|w| w.contains("confirmation (waiting)")),
            "{:?}",
            r.refused
        );
        assert!(r.outbox_id.is_none());
    }
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM outbox"), 0);
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM orders WHERE outcome = 'accepted'"
        ),
        0,
        "the order did not move"
    );
}
