use super::*;
use crate::domain::{Facts, LyraFacts, Provider};
use crate::store::writer::{intake_confirmed, NewNotification};

fn notification(status: &str) -> Notification {
    Notification {
        provider: Provider::LyraForm,
        order_ref: "1".into(),
        transaction_id: "u1".into(),
        transaction_number: "000001".into(),
        amount_minor: Some(1000),
        currency: "978".into(),
        facts: Facts::Lyra(LyraFacts {
            trans_status: status.into(),
            operation_type: "DEBIT".into(),
            url_check_src: "PAY".into(),
            ..LyraFacts::default()
        }),
    }
}

fn new(status: &str) -> NewNotification {
    let n = notification(status);
    NewNotification {
        source: "lyra".into(),
        shop: Some("shop".into()),
        order_ref: "1".into(),
        event_key: n.event_key(),
        notification: n,
        received_at: 1,
        peer: "127.0.0.1:1".into(),
        headers: "{}".into(),
        body: bytes::Bytes::from_static(b"raw"),
    }
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

fn setup() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let conn = crate::store::open_writer(&dir.path().join("c.db")).unwrap();
    (dir, conn)
}

fn settled(status: &str) -> ConfirmReport {
    ConfirmReport::Settled {
        id: 1,
        gateway: "Lyra".into(),
        lookup: Lookup::Found {
            notification: Box::new(notification(status)),
            summary: format!("Lyra: transaction u1 is {status}"),
        },
    }
}

#[test]
fn what_waits_for_the_gateway() {
    let (_dir, conn) = setup();
    let cases = [
        ("AUTHORISED", Confirm::Off, false),
        ("AUTHORISED", Confirm::Success, true),
        ("AUTHORISED", Confirm::All, true),
        ("REFUSED", Confirm::Success, false),
        ("REFUSED", Confirm::All, true),
    ];
    for (status, confirm, held) in cases {
        let d = domain::decide(&OrderSnapshot::default(), &notification(status));
        assert_eq!(must_wait(confirm, &d), held, "{status} {confirm:?}");
    }
    // A held notification moves nothing and queues nothing.
    let r = intake_confirmed(&conn, &new("AUTHORISED"), Confirm::Success).unwrap();
    assert_eq!((r.applied, r.outbox_id), (None, None));
    assert_eq!(r.reason.as_deref(), Some(WAITING));
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM orders"), 0);
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM confirmations"), 1);
}

#[test]
fn a_confirmation_applies_once_from_the_gateway_state() {
    let (_dir, conn) = setup();
    intake_confirmed(&conn, &new("AUTHORISED"), Confirm::Success).unwrap();
    let retry = ConfirmReport::Retry {
        id: 1,
        next_attempt_at: 5,
        error: "HTTP 503".into(),
    };
    assert_eq!(record(&conn, &retry).unwrap(), Recorded::default());
    assert_eq!(
        count(
            &conn,
            "SELECT attempts FROM confirmations WHERE state = 'waiting'"
        ),
        1
    );
    let r = record(&conn, &settled("CAPTURED")).unwrap();
    assert_eq!(r.result, Some("confirmed"));
    assert_eq!(r.moved, Some((None, Outcome::Accepted)));
    assert!(r.outbox_id.is_some());
    // A second answer for the same job changes nothing.
    assert_eq!(
        record(&conn, &settled("CAPTURED")).unwrap(),
        Recorded::default()
    );
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM outbox"), 1);
    let status: String = conn
        .query_row(
            "SELECT status FROM events WHERE origin = 'confirmation'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(status, "CAPTURED", "decided from the gateway's state");
}

#[test]
fn disagreement_holds_for_review_and_unconfirmed_changes_nothing() {
    let (_dir, conn) = setup();
    intake_confirmed(&conn, &new("AUTHORISED"), Confirm::Success).unwrap();
    let r = record(&conn, &settled("REFUSED")).unwrap();
    assert_eq!(r.result, Some("disagreed"));
    assert_eq!(r.moved, Some((None, Outcome::Review)));
    let comment: String = conn
        .query_row("SELECT comment FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        comment,
        "Held for review: the notification said AUTHORISED (accepted), but Lyra: transaction u1 is REFUSED (failed)."
    );

    let (_dir, conn) = setup();
    intake_confirmed(&conn, &new("AUTHORISED"), Confirm::Success).unwrap();
    let unknown = ConfirmReport::Settled {
        id: 1,
        gateway: "Lyra".into(),
        lookup: Lookup::Unconfirmed("no such transaction".into()),
    };
    let r = record(&conn, &unknown).unwrap();
    assert_eq!(
        (r.result, r.moved, r.outbox_id),
        (Some("unconfirmed"), None, None)
    );
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM orders"), 0);
}

#[test]
fn reconciliation_records_only_what_moves_the_order() {
    let (_dir, conn) = setup();
    let r = Reconciliation {
        source: "lyra".into(),
        shop: "shop".into(),
        order_ref: "1".into(),
        gateway: "Lyra".into(),
        notification: notification("AUTHORISED"),
        summary: "Lyra: order 1, transaction u1 is AUTHORISED".into(),
        known_only: false,
    };
    let unknown = Reconciliation {
        known_only: true,
        ..r.clone()
    };
    assert_eq!(reconcile(&conn, &unknown, 1).unwrap(), Recorded::default());
    let first = reconcile(&conn, &r, 1).unwrap();
    assert_eq!(first.moved, Some((None, Outcome::Accepted)));
    assert_eq!(reconcile(&conn, &r, 2).unwrap(), Recorded::default());
    assert_eq!(count(&conn, "SELECT COUNT(*) FROM outbox"), 1);
    assert_eq!(
        count(
            &conn,
            "SELECT COUNT(*) FROM events WHERE origin = 'reconciliation'"
        ),
        1
    );
}

#[test]
fn no_record_holds_the_order_for_review_with_why() {
    let (_dir, conn) = setup();
    intake_confirmed(&conn, &new("AUTHORISED"), Confirm::Success).unwrap();
    let report = ConfirmReport::Settled {
        id: 1,
        gateway: "Cybersource".into(),
        lookup: Lookup::NoRecord("request r1 is not in the report".into()),
    };
    let r = record(&conn, &report).unwrap();
    assert_eq!(r.result, Some(NO_RECORD));
    assert_eq!(r.moved, Some((None, Outcome::Review)), "never accepted");
    let comment: String = conn
        .query_row("SELECT comment FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        comment,
        "Held for review: the notification said AUTHORISED (accepted), but Cybersource has no record of this decision: request r1 is not in the report."
    );
    let (result, state): (String, String) = conn
        .query_row("SELECT result, state FROM confirmations", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    assert_eq!((result.as_str(), state.as_str()), ("unrecorded", "done"));
}
