//! Fixtures the store's unit tests share.

use crate::store::db::Connection;
use bytes::Bytes;

use crate::domain::{Facts, LyraFacts, Notification, Provider};
use crate::store::writer::NewNotification;

/// A migrated database in a temporary directory.
pub(crate) fn db() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("i.db");
    drop(crate::store::open_writer(&path).unwrap());
    (dir, path)
}

pub(crate) fn notification(
    order: &str,
    status: &str,
    shop: Option<&str>,
    received_at: i64,
) -> NewNotification {
    let notification = Notification {
        provider: Provider::LyraForm,
        order_ref: order.into(),
        transaction_id: format!("uuid-{order}"),
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
        received_at,
        peer: "127.0.0.1:1".into(),
        headers: "{}".into(),
        body: Bytes::from_static(b"raw"),
    }
}

pub(crate) fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// A Lyra notification for shop `s` (amount 29.90, card CB).
pub(crate) fn lyra_in_shop(order: &str, uuid: &str, status: &str, at: i64) -> NewNotification {
    let notification = Notification {
        provider: Provider::LyraForm,
        order_ref: order.into(),
        transaction_id: uuid.into(),
        transaction_number: "000001".into(),
        amount_minor: Some(2990),
        currency: "978".into(),
        facts: Facts::Lyra(LyraFacts {
            trans_status: status.into(),
            operation_type: "DEBIT".into(),
            url_check_src: "PAY".into(),
            card_brand: "CB".into(),
            ..LyraFacts::default()
        }),
    };
    NewNotification {
        source: "lyra".into(),
        shop: Some("s".into()),
        order_ref: order.into(),
        event_key: notification.event_key(),
        notification,
        received_at: at,
        peer: "127.0.0.1:1".into(),
        headers: "{}".into(),
        body: Bytes::from_static(b"raw"),
    }
}

/// A migrated database and an operator connection to it.
pub(crate) fn operator_db() -> (tempfile::TempDir, Connection) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    drop(crate::store::open_writer(&path).unwrap());
    let conn = crate::store::operator::open_operator(&path).unwrap();
    (dir, conn)
}
