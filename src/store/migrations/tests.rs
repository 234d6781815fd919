use super::*;

#[test]
fn migrates_once_and_refuses_newer_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.db");
    let conn = crate::store::open_writer(&path).unwrap();
    let v: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(v, LATEST);
    apply(&conn).unwrap(); // idempotent
    let sync: i64 = conn
        .query_row("PRAGMA synchronous", [], |r| r.get(0))
        .unwrap();
    assert_eq!(sync, 2, "synchronous=FULL");
    conn.pragma_update(None, "user_version", LATEST + 1)
        .unwrap();
    drop(conn);
    assert!(matches!(
        crate::store::open_writer(&path),
        Err(StoreError::SchemaTooNew { .. })
    ));
}

#[test]
fn migration_3_keeps_past_actions_and_backfills_the_cybersource_request_id() {
    let conn = Connection::open_in_memory().unwrap();
    for sql in &MIGRATIONS[..2] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", 2).unwrap();
    conn.execute_batch(
        r#"
INSERT INTO events (id, source, event_key, provider, shop, order_ref, transaction_id, status,
                origin, notification, assessed, verdict, comment, created_at)
VALUES (1, 'cybs', 'k1', 'cybersource', 's', '42', 'req-1', 'review', 'x',
    '{"provider":"cybersource","order_ref":"42","transaction_id":"req-1","transaction_number":"req-1","amount_minor":null,"currency":"","facts":{"kind":"cybersource","channel":"webhook"}}',
    'review', 'applied', '', 1),
   (2, 'cybs', 'k2', 'cybersource', 's', '43', '43', 'review', 'x',
    '{"provider":"cybersource","order_ref":"43","transaction_id":"43","transaction_number":"","amount_minor":null,"currency":"","facts":{"kind":"cybersource","channel":"webhook"}}',
    'review', 'applied', '', 1);
INSERT INTO review_actions (shop, order_ref, action, actor, gateway, error, created_at)
VALUES ('s', '42', 'deny', 'a', 'cybersource', 'HTTP 400', 5),
   ('s', '42', 'deny', 'a', 'none', NULL, 6);
"#,
    )
    .unwrap();
    apply_sqlite(&conn).unwrap();
    let states: Vec<(String, Option<i64>)> = conn
        .prepare("SELECT state, finished_at FROM review_actions ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        states,
        [("failed".to_owned(), Some(5)), ("done".to_owned(), Some(6))]
    );
    let ids: Vec<String> = conn
        .prepare("SELECT json_extract(notification, '$.facts.request_id') FROM events ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids, ["req-1", ""], "never the order number");
}

#[test]
fn migration_11_leaves_old_bodies_verbatim_and_readable() {
    let conn = Connection::open_in_memory().unwrap();
    for sql in &MIGRATIONS[..9] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", 9).unwrap();
    conn.execute_batch(
        r#"
INSERT INTO events (id, source, event_key, provider, shop, order_ref, transaction_id, status,
                origin, notification, assessed, verdict, comment, created_at)
VALUES (1, 'lyra', x'00', 'lyra_form', 's', '42', 't', 'AUTHORISED', 'PAY', '{}', 'accepted',
    'applied', '', 1);
INSERT INTO bodies (id, sha256, body) VALUES (1, x'01', CAST('shared document' AS BLOB));
INSERT INTO deliveries (id, event_id, received_at, peer, duplicate, headers, body, body_id)
VALUES (1, 1, 1, 'p', 0, '{}', CAST('vads_order_id=42' AS BLOB), NULL),
   (2, 1, 1, 'p', 1, '{}', NULL, 1);
"#,
    )
    .unwrap();
    apply_sqlite(&conn).unwrap();
    let conn = db::Connection::from(conn);
    let read = |id| crate::store::bodies::read_delivery_body(&conn, id).unwrap();
    assert_eq!(read(1).as_deref(), Some(&b"vads_order_id=42"[..]));
    assert_eq!(read(2).as_deref(), Some(&b"shared document"[..]));
    let raw: Vec<u8> = conn
        .query_row("SELECT body FROM deliveries WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(raw, b"vads_order_id=42", "not rewritten");
}

#[test]
fn migration_13_keeps_every_event_and_dedupes_per_order_with_one_index() {
    let conn = Connection::open_in_memory().unwrap();
    for sql in &MIGRATIONS[..12] {
        conn.execute_batch(sql).unwrap();
    }
    conn.pragma_update(None, "user_version", 12).unwrap();
    conn.execute_batch(
        r#"
INSERT INTO events (id, source, event_key, provider, shop, order_ref, transaction_id, status,
                origin, notification, assessed, verdict, comment, created_at)
VALUES (1, 'lyra', x'0102', 'lyra_form', 's', '42', 't1', 'AUTHORISED', 'PAY', '{}', 'accepted',
    'applied', 'c1', 1),
   (2, 'lyra', x'0304', 'lyra_form', 's', '43', 't2', 'REFUSED', 'PAY', '{}', 'refused',
    'applied', 'c2', 2);
INSERT INTO deliveries (id, event_id, received_at, peer, duplicate, headers, body)
VALUES (1, 1, 1, 'p', 0, '{}', x'00'), (2, 2, 2, 'p', 0, '{}', x'00');
INSERT INTO orders (shop, order_ref, outcome, transaction_id, event_id, updated_at)
VALUES ('s', '42', 'accepted', 't1', 1, 1);
"#,
    )
    .unwrap();
    conn.pragma_update(None, "foreign_keys", true).unwrap();
    apply_sqlite(&conn).unwrap();
    let events: Vec<(i64, Vec<u8>, String)> = conn
        .prepare("SELECT id, event_key, comment FROM events ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        events,
        [
            (1, vec![1, 2], "c1".to_owned()),
            (2, vec![3, 4], "c2".to_owned())
        ]
    );
    let indexes: Vec<String> = conn
        .prepare("SELECT name FROM pragma_index_list('events') ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(indexes, ["events_dedupe"], "one index per notification");
    let again = "INSERT INTO events (source, event_key, provider, shop, order_ref, transaction_id,
                 status, origin, notification, assessed, verdict, comment, created_at)
         VALUES ('lyra', x'0102', 'lyra_form', 's', '42', 't1', 'AUTHORISED', 'PAY', '{}',
                 'accepted', 'applied', '', 3)";
    assert!(conn.execute(again, []).is_err(), "the same event twice");
    let plan: Vec<String> = conn
        .prepare(
            "EXPLAIN QUERY PLAN
               SELECT id FROM events WHERE shop = 's' AND order_ref = '42'
                  AND source = 'lyra' AND event_key = x'0102'",
        )
        .unwrap()
        .query_map([], |r| r.get(3))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let plan = plan.join(" / ");
    assert!(plan.contains("events_dedupe"), "{plan}");
    let enforced: bool = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert!(enforced, "foreign keys back on after the rebuild");
}
