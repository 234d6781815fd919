use super::*;
use crate::domain::{Facts, LyraFacts, Provider};
use crate::store::db::params;
use crate::store::now_ms;
use crate::store::operator::retry_dead;

fn conn() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let conn = crate::store::open_writer(&dir.path().join("w.db")).unwrap();
    (dir, conn)
}

fn new(order: &str, uuid: &str, status: &str, shop: Option<&str>) -> NewNotification {
    let notification = Notification {
        provider: Provider::LyraForm,
        order_ref: order.into(),
        transaction_id: uuid.into(),
        transaction_number: "000001".into(),
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
        shop: shop.map(str::to_owned),
        order_ref: order.into(),
        event_key: notification.event_key(),
        notification,
        received_at: 1,
        peer: "127.0.0.1:1".into(),
        headers: "{}".into(),
        body: Bytes::from_static(b"raw"),
    }
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn intake_dedups_decides_and_queues_in_one_transaction() {
    let (_dir, conn) = conn();
    let first = intake(
        &conn,
        &new("1", "u1", "AUTHORISED_TO_VALIDATE", Some("shop")),
    )
    .unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.applied, Some(Outcome::Review));
    assert!(first.outbox_id.is_some());

    let again = intake(
        &conn,
        &new("1", "u1", "AUTHORISED_TO_VALIDATE", Some("shop")),
    )
    .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.event_id, first.event_id);
    assert_eq!(again.outbox_id, None);

    let accepted = intake(&conn, &new("1", "u1", "AUTHORISED", Some("shop"))).unwrap();
    assert_eq!(accepted.applied, Some(Outcome::Accepted));
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM events"), 2);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM deliveries"), 3);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM outbox"), 2);
    let prev: String = conn
        .query_row(
            "SELECT previous_outcome FROM outbox ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(prev, "review");
    assert_eq!(
        crate::store::queries::order_outcome(&conn, "shop", "1").unwrap(),
        Some(Outcome::Accepted)
    );
}

#[test]
fn log_only_sources_and_missing_order_refs_queue_nothing() {
    let (_dir, conn) = conn();
    let r = intake(&conn, &new("7", "u7", "AUTHORISED", None)).unwrap();
    assert_eq!(r.applied, Some(Outcome::Accepted));
    assert_eq!(r.outbox_id, None);
    let r = intake(&conn, &new("", "u8", "AUTHORISED", Some("shop"))).unwrap();
    assert_eq!(r.applied, None);
    assert!(r.reason.unwrap().contains("no order reference"));
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM outbox"), 0);
}

#[test]
fn later_rows_of_an_order_wait_for_earlier_ones() {
    let (_dir, conn) = conn();
    let a = intake(&conn, &new("1", "u1", "AUTHORISED_TO_VALIDATE", Some("s"))).unwrap();
    let b = intake(&conn, &new("1", "u1", "AUTHORISED", Some("s"))).unwrap();
    let c = intake(&conn, &new("2", "u2", "AUTHORISED", Some("s"))).unwrap();
    let due =
        crate::store::queries::due_rows(&conn, now_ms(), 10, std::time::Duration::from_secs(10))
            .unwrap();
    let ids: Vec<i64> = due.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![a.outbox_id.unwrap(), c.outbox_id.unwrap()]);

    // A retry scheduled in the future keeps the order's next row waiting.
    record_push(
        &conn,
        &PushReport::Retry {
            outbox_id: a.outbox_id.unwrap(),
            next_attempt_at: now_ms() + 60_000,
            error: "HTTP 500".into(),
        },
    )
    .unwrap();
    let due =
        crate::store::queries::due_rows(&conn, now_ms(), 10, std::time::Duration::from_secs(10))
            .unwrap();
    assert_eq!(
        due.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![c.outbox_id.unwrap()]
    );

    // Dead holds the order too, until an operator retries it.
    record_push(
        &conn,
        &PushReport::Dead {
            outbox_id: a.outbox_id.unwrap(),
            error: "gone".into(),
        },
    )
    .unwrap();
    assert!(crate::store::queries::due_rows(
        &conn,
        now_ms(),
        10,
        std::time::Duration::from_secs(10)
    )
    .unwrap()
    .iter()
    .all(|r| r.id != b.outbox_id.unwrap()));
    assert_eq!(retry_dead(&conn, None).unwrap(), 1);
    record_push(
        &conn,
        &PushReport::Delivered {
            outbox_id: a.outbox_id.unwrap(),
            detail: "ok".into(),
            needs_operator: None,
            applied_outcome: None,
        },
    )
    .unwrap();
    let due =
        crate::store::queries::due_rows(&conn, now_ms(), 10, std::time::Duration::from_secs(10))
            .unwrap();
    assert!(due.iter().any(|r| r.id == b.outbox_id.unwrap()));
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM push_attempts"), 3);
    assert_eq!(
        count(&conn, "SELECT attempts FROM outbox WHERE id = 1"),
        3,
        "attempts are never reset"
    );
}

#[tokio::test]
async fn the_writer_thread_group_commits_and_answers_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("g.db");
    let conn = crate::store::open_writer(&path).unwrap();
    let wake = Arc::new(Notify::new());
    let (handle, thread) = spawn(conn, 1024, 64, wake);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let h = handle.clone();
        tasks.push(tokio::spawn(async move {
            h.submit(new(&i.to_string(), &format!("u{i}"), "AUTHORISED", None))
                .await
        }));
    }
    let mut max_batch = 0;
    for t in tasks {
        let r = t.await.unwrap().unwrap();
        max_batch = max_batch.max(r.batch_size);
    }
    assert!((1..=64).contains(&max_batch));
    handle.probe().await.unwrap();
    drop(handle);
    thread.join().unwrap();
    let reader = crate::store::open_reader(&path).unwrap();
    assert_eq!(count(&reader, "SELECT COUNT(*) FROM events"), 200);
}

#[test]
fn an_applied_outcome_moves_the_order_only_while_it_stands_where_the_row_left_it() {
    let (_dir, conn) = conn();
    let paid = intake(&conn, &new("7", "u7", "AUTHORISED", Some("shop"))).unwrap();
    let outcome = |conn: &Connection| -> String {
        conn.query_row(
            "SELECT outcome FROM orders WHERE order_ref = '7'",
            [],
            |r| r.get(0),
        )
        .unwrap()
    };
    record_push(
        &conn,
        &PushReport::Delivered {
            outbox_id: paid.outbox_id.unwrap(),
            detail: "ok".into(),
            needs_operator: Some("amount check: paid 10.00 EUR but…".into()),
            applied_outcome: Some(Outcome::Review),
        },
    )
    .unwrap();
    assert_eq!(outcome(&conn), "review");
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM outbox WHERE needs_operator LIKE 'amount check%' AND state = 'delivered'"
        ),
        1
    );

    // A later decision moved the order on before the result came back:
    // the stale result must not undo it.
    let (_dir2, conn) = self::conn();
    let held = intake(
        &conn,
        &new("7", "u7", "AUTHORISED_TO_VALIDATE", Some("shop")),
    )
    .unwrap();
    intake(&conn, &new("7", "u8", "AUTHORISED", Some("shop"))).unwrap();
    let before = outcome(&conn);
    assert_eq!(before, "accepted");
    record_push(
        &conn,
        &PushReport::Delivered {
            outbox_id: held.outbox_id.unwrap(),
            detail: "ok".into(),
            needs_operator: None,
            applied_outcome: Some(Outcome::Review),
        },
    )
    .unwrap();
    assert_eq!(outcome(&conn), before);
}

#[test]
fn an_analyst_note_on_a_known_order_queues_a_comment_only_update() {
    use crate::domain::notification::{CybersourceChannel, CybersourceFacts};
    let (_dir, conn) = conn();
    intake(
        &conn,
        &new("9", "u9", "AUTHORISED_TO_VALIDATE", Some("shop")),
    )
    .unwrap();
    let note = |order: &str| {
        let mut n = new(order, "req-9", "", Some("shop"));
        n.notification.provider = Provider::Cybersource;
        n.notification.facts = Facts::Cybersource(CybersourceFacts {
            channel: CybersourceChannel::Webhook,
            event_type: "risk.casemanagement.addnote".into(),
            ..CybersourceFacts::default()
        });
        n.event_key = n.notification.event_key();
        n.source = "cybs".into();
        n
    };
    let r = intake(&conn, &note("9")).unwrap();
    assert_eq!(r.applied, None, "the order does not move");
    let id = r.outbox_id.expect("a comment-only row");
    let (previous, outcome, comment_only): (String, String, bool) = conn
        .query_row(
            "SELECT previous_outcome, outcome, comment_only FROM outbox WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (previous.as_str(), outcome.as_str(), comment_only),
        ("review", "review", true)
    );
    // A note about an order the daemon never saw: nothing to keep, no row.
    assert_eq!(intake(&conn, &note("10")).unwrap().outbox_id, None);
}

/// The wall clock is set back a day after a failed push: the retry stored
/// for 5 minutes later would wait a day and 5 minutes. The row is due as
/// soon as the clock reads earlier than its last attempt.
#[test]
fn a_retry_is_not_postponed_by_a_clock_set_back() {
    let (_dir, conn) = conn();
    let r = intake(&conn, &new("9", "u9", "AUTHORISED", Some("shop"))).unwrap();
    let id = r.outbox_id.unwrap();
    let attempted_at = now_ms();
    record_push(
        &conn,
        &PushReport::Retry {
            outbox_id: id,
            next_attempt_at: attempted_at + 300_000,
            error: "HTTP 503".into(),
        },
    )
    .unwrap();
    let due = |now: i64| -> Vec<i64> {
        crate::store::queries::due_rows(&conn, now, 10, std::time::Duration::from_secs(10))
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect()
    };
    assert!(due(attempted_at + 60_000).is_empty(), "waits for its delay");
    assert_eq!(due(attempted_at + 300_000), [id], "due after its delay");
    assert_eq!(
        due(attempted_at - 86_400_000),
        [id],
        "the clock went back a day: not postponed by a day"
    );

    // Seen from the clock set back a day: the attempt above lies a day in
    // the future. Tried again now, the row waits for its new delay, not
    // until the clock reaches that old attempt.
    conn.execute("UPDATE push_attempts SET at = at + 86400000", [])
        .unwrap();
    let now = now_ms();
    record_push(
        &conn,
        &PushReport::Retry {
            outbox_id: id,
            next_attempt_at: now + 300_000,
            error: "HTTP 503".into(),
        },
    )
    .unwrap();
    assert!(due(now + 60_000).is_empty(), "waits for its new delay");
    assert_eq!(due(now + 300_000), [id]);
}

#[test]
fn event_keys_are_stored_as_16_bytes() {
    let (_dir, conn) = conn();
    let n = new("1", "u1", "AUTHORISED", Some("shop"));
    intake(&conn, &n).unwrap();
    let (key, kind): (Vec<u8>, String) = conn
        .query_row("SELECT event_key, typeof(event_key) FROM events", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!(kind, "blob");
    assert_eq!(key.len(), 16);
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    assert!(n.event_key.starts_with(&hex), "the digest's first half");
}

#[test]
fn compact_keys_decode_hex_and_keep_anything_else() {
    let digest = "00ff10ab".repeat(8);
    assert_eq!(
        compact_event_key(&digest).as_bytes(),
        [0x00, 0xff, 0x10, 0xab].repeat(4)
    );
    assert_eq!(
        compact_event_key(&digest.to_uppercase()).as_bytes(),
        [0x00, 0xff, 0x10, 0xab].repeat(4)
    );
    assert_eq!(compact_event_key("k1").as_bytes(), b"k1");
    let not_hex = format!("{}zz", "0".repeat(30));
    assert_eq!(compact_event_key(&not_hex).as_bytes(), not_hex.as_bytes());
}

/// A database written before migration 8 (hex TEXT keys, deliveries, an
/// order and an outbox row referring to its events) opens, keeps every
/// row and reference, and still recognises a resent notification.
#[test]
fn migration_8_converts_keys_and_old_events_still_deduplicate() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    let n = new("1", "u1", "AUTHORISED", Some("shop"));
    let other = new("2", "u2", "REFUSED", None);
    {
        let old = Connection::open(&path).unwrap();
        old.execute_batch(&crate::store::migrations::first(7).join(";\n"))
            .unwrap();
        old.pragma_update(None, "user_version", 7).unwrap();
        old.execute(
            "INSERT INTO events (id, source, event_key, provider, shop, order_ref, transaction_id,
                                 status, origin, notification, assessed, verdict, outcome, comment, created_at)
             VALUES (7, 'lyra', ?1, 'lyra_form', 'shop', '1', 'u1', 'AUTHORISED', 'PAY', ?2,
                     'accepted', 'applied', 'accepted', 'c', 1),
                    (8, 'lyra', ?3, 'lyra_form', '', '2', 'u2', 'REFUSED', 'PAY', ?4,
                     'rejected', 'applied', 'rejected', 'c', 2),
                    (9, 'lyra', 'legacy', 'lyra_form', '', '3', 'u3', 'REFUSED', 'PAY', '{}',
                     'rejected', 'ignored', NULL, 'c', 3)",
            params![
                n.event_key,
                serde_json::to_string(&n.notification).unwrap(),
                other.event_key,
                serde_json::to_string(&other.notification).unwrap()
            ],
        )
        .unwrap();
        old.execute_batch(
            "INSERT INTO deliveries (event_id, received_at, peer, duplicate, headers, body)
                  VALUES (7, 1, 'p', 0, '{}', x'01'), (8, 2, 'p', 0, '{}', x'02');
             INSERT INTO orders (shop, order_ref, outcome, transaction_id, event_id, updated_at)
                  VALUES ('shop', '1', 'accepted', 'u1', 7, 1);
             INSERT INTO outbox (shop, order_ref, event_id, outcome, comment, state, next_attempt_at, created_at)
                  VALUES ('shop', '1', 7, 'accepted', 'c', 'pending', 1, 1);",
        )
        .unwrap();
    }
    let conn = crate::store::open_writer(&path).unwrap();
    let fk: bool = conn
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert!(fk, "enforcement is back on after migrating");
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM events"), 3);
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM events WHERE typeof(event_key) = 'blob' AND length(event_key) = 16"
        ),
        2
    );
    let legacy: Vec<u8> = conn
        .query_row("SELECT event_key FROM events WHERE id = 9", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(legacy, b"legacy");
    assert_eq!(
        count(&conn, "SELECT COUNT(*) FROM pragma_foreign_key_check"),
        0
    );

    let again = intake(&conn, &n).unwrap();
    assert!(again.duplicate, "the resend of a pre-migration event");
    assert_eq!(again.event_id, 7);
    assert!(intake(&conn, &other).unwrap().duplicate);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM outbox"), 1);
    // References into the rebuilt table are still enforced.
    assert!(conn
        .execute(
            "INSERT INTO deliveries (event_id, received_at, peer, duplicate, headers) VALUES (999, 1, 'p', 0, '{}')",
            [],
        )
        .is_err());
}

/// A writer thread on a new database at `path`, sharing a `Handoff` with
/// the test as it does with the checkpointer.
fn writer_with_handoff(
    path: &std::path::Path,
) -> (
    WriterHandle,
    std::thread::JoinHandle<()>,
    Arc<crate::store::checkpoint::Handoff>,
) {
    let conn = crate::store::open_writer(path).unwrap();
    let handoff = Arc::new(crate::store::checkpoint::Handoff::default());
    let (handle, thread) = spawn_watched(
        conn,
        None,
        Some(handoff.clone()),
        64,
        8,
        Arc::new(Notify::new()),
    );
    (handle, thread, handoff)
}

/// The checkpointer hands the end of a large checkpoint to the writer
/// (`checkpoint::Handoff`): the writer copies the WAL's last frames after
/// its next batch, so that the batch after starts the WAL over (its
/// header's checkpoint sequence number changes exactly then).
#[tokio::test(flavor = "multi_thread")]
async fn the_writer_finishes_a_handed_off_checkpoint_after_its_batch() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.db");
    let generation = || {
        let wal = std::fs::read(dir.path().join("w.db-wal")).unwrap();
        u32::from_be_bytes(wal[12..16].try_into().unwrap())
    };
    let (handle, thread, handoff) = writer_with_handoff(&path);
    let submit = |order: &'static str| {
        let handle = handle.clone();
        async move {
            handle
                .submit(new(order, order, "AUTHORISED", None))
                .await
                .unwrap()
        }
    };
    submit("1").await;
    let before = generation();
    submit("2").await;
    assert_eq!(generation(), before, "without a handoff the WAL grows");

    handoff.request();
    // The writer takes the request after this batch's answers, before it
    // takes the next batch.
    submit("3").await;
    submit("4").await;
    assert_ne!(generation(), before, "the WAL started over");

    drop(handle);
    thread.join().unwrap();
}

/// The decision computed on the request's task for a new order
/// (`OffWriter::new_order`) is taken only when the order has no row: a
/// planted decision, its comment marked, shows which one the writer used.
#[test]
fn the_new_order_decision_is_taken_only_for_an_order_without_a_row() {
    use super::intake::OffWriter;
    use crate::store::apply::HotStatements;
    let (_dir, conn) = conn();
    let run = |n: &NewNotification| {
        let prepared = crate::domain::Prepared::of(&n.notification);
        let mut planted = prepared.decide_new_order(&n.notification);
        planted.comment = "planted".into();
        let cell = std::cell::Cell::new(Some(planted));
        let off = OffWriter {
            prepared: Some(&prepared),
            new_order: Some(&cell),
            ..OffWriter::default()
        };
        let mut hot = HotStatements::default();
        let receipt = intake_with_body(&conn, &mut hot, n, None, off, Confirm::Off).unwrap();
        (receipt, cell.take().is_none())
    };
    let stored_comment = |id: i64| -> String {
        conn.query_row("SELECT comment FROM events WHERE id = ?1", [id], |r| {
            r.get(0)
        })
        .unwrap()
    };

    // A new order: the planted decision is the one stored and answered.
    let (first, taken) = run(&new("7", "u7", "AUTHORISED", Some("shop")));
    assert!(taken);
    assert_eq!(first.comment, "planted");
    assert_eq!(stored_comment(first.event_id), "planted");

    // The same order again, now with a row: the writer decides itself
    // and leaves the planted decision where it was.
    let (second, taken) = run(&new("7", "u7", "CAPTURED", Some("shop")));
    assert!(!taken);
    assert_ne!(second.comment, "planted");
    assert!(second.comment.contains("CAPTURED"), "{}", second.comment);
    assert_eq!(stored_comment(second.event_id), second.comment);
}

/// The writer counts its commits and the notifications they carried in
/// the `Handoff` it shares with the checkpointer (rule
/// `checkpoint-pace`), before it answers them.
#[tokio::test(flavor = "multi_thread")]
async fn the_writer_counts_its_commits_for_the_checkpointer() {
    use crate::store::checkpoint::Load;
    let dir = tempfile::tempdir().unwrap();
    let (handle, thread, handoff) = writer_with_handoff(&dir.path().join("w.db"));
    for order in ["1", "2", "3"] {
        handle
            .submit(new(order, order, "AUTHORISED", None))
            .await
            .unwrap();
    }
    assert_eq!(
        handoff.load(),
        Load {
            commits: 3,
            notifications: 3
        }
    );
    let many = (0..20)
        .map(|i| new(&format!("m{i}"), &format!("m{i}"), "AUTHORISED", None))
        .collect();
    handle.submit_many(many).await;
    let load = handoff.load();
    assert_eq!(load.notifications, 23);
    assert!((4..=23).contains(&load.commits), "{load:?}");

    drop(handle);
    thread.join().unwrap();
}
