use super::*;
use crate::store::test_support::{db, notification};
use crate::store::writer::intake;

fn order_row(conn: &Connection, order: &str) -> (Outcome, String, i64, Option<String>) {
    conn.query_row(
        "SELECT outcome, transaction_id, event_id, mode FROM orders WHERE order_ref = ?1",
        [order],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
    )
    .unwrap()
}

/// The two causes differ on purpose: a notification makes its event
/// the order's, an operator's move changes the outcome only, and its
/// update hangs off the event that set the outcome being left.
#[test]
fn an_operator_move_keeps_the_orders_event_and_a_notification_takes_it() {
    let (_dir, path) = db();
    let conn = crate::store::operator::open_operator(&path).unwrap();
    let first = intake(
        &conn,
        &notification("7", "AUTHORISED_TO_VALIDATE", Some("s"), 1),
    )
    .unwrap();
    let m = Move {
        shop: "s",
        order_ref: "7",
        from: Some(Outcome::Review),
        to: Outcome::Accepted,
        comment: "validated",
        now: 5,
    };
    let cause = Cause::Operator {
        order_event_id: first.event_id,
    };
    let outbox = move_order(&conn, &m, cause)
        .unwrap()
        .expect("a shop update");
    let (outcome, tx, event, _) = order_row(&conn, "7");
    assert_eq!(
        (outcome, tx.as_str(), event),
        (Outcome::Accepted, "uuid-7", first.event_id)
    );
    let (hangs_off, previous): (i64, Outcome) = conn
        .query_row(
            "SELECT event_id, previous_outcome FROM outbox WHERE id = ?1",
            [outbox],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((hangs_off, previous), (first.event_id, Outcome::Review));

    let cause = Cause::Event {
        event_id: first.event_id,
        transaction_id: "uuid-other",
        mode: Some("TEST"),
    };
    let back = Move {
        from: Some(Outcome::Accepted),
        to: Outcome::Review,
        ..m
    };
    move_order(&conn, &back, cause).unwrap();
    let (outcome, tx, _, mode) = order_row(&conn, "7");
    assert_eq!(
        (outcome, tx.as_str(), mode.as_deref()),
        (Outcome::Review, "uuid-other", Some("TEST"))
    );
}

#[test]
fn a_log_only_order_moves_without_a_shop_update() {
    let (_dir, path) = db();
    let conn = crate::store::operator::open_operator(&path).unwrap();
    let m = Move {
        shop: "",
        order_ref: "9",
        from: None,
        to: Outcome::Accepted,
        comment: "paid",
        now: 1,
    };
    let cause = Cause::Event {
        event_id: 1,
        transaction_id: "t",
        mode: None,
    };
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    assert_eq!(move_order(&conn, &m, cause).unwrap(), None);
    assert_eq!(
        order_snapshot(&conn, "", "9").unwrap().outcome,
        Some(Outcome::Accepted)
    );
    let rows: i64 = conn
        .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 0);
}

/// The order's mode, move after move (`upsert_order`): the first mode
/// sticks, PRODUCTION replaces TEST and is never replaced, and a move
/// without a mode keeps the order's. Each row: the mode the move
/// carries, the order's mode after it. Every sequence runs twice: with
/// the `from` a snapshot gives (a new order is inserted, a known one
/// updated), and with the opposite one, which the upsert behind both
/// plain statements must absorb (an UPDATE of a missing row, an INSERT
/// of an existing one).
#[test]
fn the_orders_mode_is_the_first_one_until_production() {
    let (_dir, path) = db();
    let conn = crate::store::operator::open_operator(&path).unwrap();
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    /// The mode a move carries, and the order's mode after it.
    type Step = (Option<&'static str>, Option<&'static str>);
    let moves: &[(&str, &[Step])] = &[
        ("a", &[(None, None), (Some("TEST"), Some("TEST"))]),
        (
            "b",
            &[
                (Some("TEST"), Some("TEST")),
                (None, Some("TEST")),
                (Some("PRODUCTION"), Some("PRODUCTION")),
                (Some("TEST"), Some("PRODUCTION")),
                (None, Some("PRODUCTION")),
            ],
        ),
        ("c", &[(Some("PRODUCTION"), Some("PRODUCTION"))]),
    ];
    for (order, steps) in moves {
        for truthful in [true, false] {
            let order = &format!("{order}-{truthful}");
            mode_steps(&conn, order, steps, truthful);
        }
    }
}

fn mode_steps(
    conn: &Connection,
    order: &str,
    steps: &[(Option<&'static str>, Option<&'static str>)],
    truthful: bool,
) {
    for (i, (carried, expected)) in steps.iter().enumerate() {
        let exists = i > 0;
        let m = Move {
            shop: "",
            order_ref: order,
            from: (exists == truthful).then_some(Outcome::Accepted),
            to: Outcome::Accepted,
            comment: "c",
            now: i as i64,
        };
        let cause = Cause::Event {
            event_id: i as i64 + 1,
            transaction_id: "t",
            mode: *carried,
        };
        move_order(conn, &m, cause).unwrap();
        let (_, _, event, mode) = order_row(conn, order);
        assert_eq!(
            (event, mode.as_deref()),
            (i as i64 + 1, *expected),
            "order {order}, move {i} carrying {carried:?}"
        );
    }
}

#[test]
fn verdict_columns_store_a_held_decision_as_ignored() {
    let apply = Verdict::Apply {
        outcome: Outcome::Accepted,
        note: None,
    };
    let held = VerdictColumns::of(&apply, Some("waiting"));
    assert_eq!(
        (held.verdict, held.outcome, held.reason.as_deref()),
        ("ignored", None, Some("waiting"))
    );
    let applied = VerdictColumns::of(&apply, None);
    assert_eq!(
        (applied.verdict, applied.outcome),
        ("applied", Some(Outcome::Accepted))
    );
}

/// On SQLite the insert runs without its `RETURNING` clause and the id
/// is the connection's last rowid: the new row's, and none when the
/// conflict clause skipped the row, even after an insert into another
/// table moved the last rowid elsewhere.
#[test]
fn insert_returning_id_gives_the_new_rows_id_and_none_for_a_skipped_row() {
    let (_dir, path) = db();
    let conn = crate::store::operator::open_operator(&path).unwrap();
    let tx = conn.unchecked_transaction().unwrap();
    tx.execute_batch(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, k TEXT UNIQUE);
         CREATE TABLE other (id INTEGER PRIMARY KEY, x TEXT);
         INSERT INTO t (id, k) VALUES (40, 'seed');",
    )
    .unwrap();
    let sql = "INSERT INTO t (k) VALUES (?1) ON CONFLICT (k) DO NOTHING RETURNING id";
    let first = tx.insert_returning_id(sql, params!["a"]).unwrap();
    assert_eq!(first, Some(41));
    tx.execute("INSERT INTO other (id, x) VALUES (900, 'y')", [])
        .unwrap();
    assert_eq!(tx.insert_returning_id(sql, params!["a"]).unwrap(), None);
    // Through a batch's statements, twice with one preparation.
    let mut hot = HotStatements::default();
    let mut insert = |k: &str| {
        hot.get(&tx, Hot::InsertDelivery, tx.insert_text(sql))
            .unwrap()
            .inserted_id(params![k])
            .unwrap()
    };
    for (k, id) in [("b", 42), ("c", 43)] {
        assert_eq!(insert(k), Some(id));
    }
    assert_eq!(insert("b"), None);
    drop(hot);
    let keys: Vec<(i64, String)> = tx
        .prepare("SELECT id, k FROM t ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let expected = [(40, "seed"), (41, "a"), (42, "b"), (43, "c")];
    assert_eq!(keys, expected.map(|(i, k)| (i, k.to_owned())).to_vec());
}
