//! Intake inside the writer's transaction: decide, store the event unless
//! it is known (deduplicate) and its delivery, and apply the decision
//! (`store::apply`).
//! (`insert_delivery`, `shared_body_id` and the compact event key are
//! the storage of deliveries and bodies.)

use crate::store::bodies::{self, Encoded};
use crate::store::db::{params, Connection, OptionalExtension};

use super::super::apply::{self, Cause, Hot, HotStatements, Move, NewEvent, VerdictColumns};
use super::super::confirm as confirmation;
use super::super::{now_ms, StoreError};
use super::{IntakeReceipt, NewNotification};
use crate::config::Confirm;
use crate::domain::{self, Outcome, Verdict};

/// Records one notification: deduplicate, decide, update the order, queue
/// the shop update. Runs inside the batch transaction. (The writer itself
/// goes through [`intake_with_body`]; tests of other modules call this.)
#[cfg(test)]
pub(crate) fn intake(conn: &Connection, n: &NewNotification) -> Result<IntakeReceipt, StoreError> {
    let mut hot = HotStatements::default();
    intake_with_body(conn, &mut hot, n, None, OffWriter::default(), Confirm::Off)
}

/// [`intake`] for a source whose `confirm` is `confirm`.
#[cfg(test)]
pub(crate) fn intake_confirmed(
    conn: &Connection,
    n: &NewNotification,
    confirm: Confirm,
) -> Result<IntakeReceipt, StoreError> {
    let mut hot = HotStatements::default();
    intake_with_body(conn, &mut hot, n, None, OffWriter::default(), confirm)
}

/// What intake's caller computed off the writer thread: the writer's
/// handle does it on the request's task, since the one writer thread is
/// the daemon's ceiling (issue 18). Each `None` is computed here instead.
#[derive(Default, Clone, Copy)]
pub(super) struct OffWriter<'a> {
    /// The body encoded for storage (`store::bodies`: compressed).
    pub stored: Option<&'a Encoded>,
    /// The notification as the events row stores it (JSON).
    pub notification_json: Option<&'a str>,
    /// What the notification alone decides (`domain::Prepared`).
    pub prepared: Option<&'a domain::Prepared>,
    /// The decision if the order is new (`Prepared::decide_new_order`),
    /// taken from the cell when the snapshot says the order has no row.
    pub new_order: Option<&'a std::cell::Cell<Option<domain::Decision>>>,
}

/// [`intake`], storing the body in `bodies` under `shared_body` (its
/// SHA-256) when given, once however many deliveries refer to it, with
/// what the caller computed beforehand (`off`), with the batch's
/// statements (`hot`).
pub(super) fn intake_with_body<'c>(
    conn: &'c Connection,
    hot: &mut HotStatements<'c>,
    n: &NewNotification,
    shared_body: Option<&[u8; 32]>,
    off: OffWriter<'_>,
    confirm: Confirm,
) -> Result<IntakeReceipt, StoreError> {
    let shop = n.shop.as_deref().unwrap_or("");
    let key = compact_event_key(&n.event_key);
    // Several daemons on one PostgreSQL: the same event arriving at two of
    // them waits here for the other's commit, whose row its insert then
    // finds.
    apply::lock_order(conn, shop, &n.order_ref)?;
    let snapshot = apply::read_snapshot_in(conn, hot, shop, &n.order_ref)?; // locked above

    // A Cybersource event type outside the signature (rule cs8) would send
    // the order to review; with confirmation on, its claim is held for the
    // gateway instead: the held event records what it claimed, so that the
    // gateway's answer can agree or disagree with it.
    let claim = (confirm != Confirm::Off)
        .then(|| domain::outcome::cybersource::unsigned_claim(&n.notification))
        .flatten();
    let decision = match (&claim, off.prepared) {
        (Some(claim), _) => domain::decide(&snapshot, claim),
        (None, Some(prepared)) => off
            .new_order
            .filter(|_| snapshot == domain::OrderSnapshot::default())
            .and_then(std::cell::Cell::take)
            .unwrap_or_else(|| domain::decide_prepared(&snapshot, &n.notification, prepared)),
        (None, None) => domain::decide(&snapshot, &n.notification),
    };
    // Confirmation (issue 15): a decision the source's `confirm` holds is
    // stored as ignored, "waiting for confirmation", with a confirmation
    // job in this same transaction; the confirmer decides it later from
    // the gateway's state (`store::confirm::record`).
    let hold = (claim.is_some() && matches!(decision.verdict, Verdict::Apply { .. }))
        || confirmation::must_wait(confirm, &decision);
    let columns = VerdictColumns::of(&decision.verdict, hold.then_some(confirmation::WAITING));
    let now = now_ms();
    let key_bytes = key.as_bytes();
    // The dedupe (`events_dedupe`, migration 13: per order, so that the
    // index grows at its right edge as new orders come) is the insert
    // itself: a new event is stored, a known one writes nothing and is
    // looked up below. The decision above is thrown away for a duplicate:
    // deciding is pure, and duplicates are rare, so a new notification
    // pays one search of the index instead of a lookup and then an insert.
    let inserted = apply::insert_event_if_new(
        conn,
        hot,
        &NewEvent {
            source: &n.source,
            event_key: &key_bytes,
            shop,
            order_ref: &n.order_ref,
            notification: &n.notification,
            notification_json: off.notification_json,
            origin: n.notification.origin(),
            decision: &decision,
            columns: &columns,
            now,
        },
    )?;
    let Some(event_id) = inserted else {
        return duplicate(conn, hot, n, shop, key_bytes, shared_body, off.stored);
    };
    insert_delivery(conn, hot, event_id, n, false, shared_body, off.stored)?;
    if hold {
        confirmation::hold(conn, event_id, &n.source, shop, &n.order_ref, now)?;
    }

    let mut outbox_id = None;
    // An analyst's note changes no order, but belongs in the shop's
    // history: a comment-only update, on an order the daemon knows (its
    // current outcome gives the status the comment keeps).
    if let (None, false, Some(current)) = (columns.outcome, shop.is_empty(), snapshot.outcome) {
        if domain::outcome::comment_only(&n.notification) {
            outbox_id = Some(apply::queue_comment(
                conn,
                shop,
                &n.order_ref,
                event_id,
                current,
                &decision.comment,
                now,
            )?);
        }
    }
    if let Some(to) = columns.outcome {
        let cause = Cause::Event {
            event_id,
            transaction_id: &n.notification.transaction_id,
            mode: n.notification.mode(),
        };
        let m = Move {
            shop,
            order_ref: &n.order_ref,
            from: snapshot.outcome,
            to,
            comment: &decision.comment,
            now,
        };
        outbox_id = apply::move_order_in(conn, hot, &m, cause)?;
    }
    Ok(IntakeReceipt {
        event_id,
        duplicate: false,
        assessed: decision.assessed,
        applied: columns.outcome,
        reason: columns.reason,
        comment: decision.comment,
        warnings: decision.warnings,
        outbox_id,
        batch_size: 0,
    })
}

/// A delivery of an event stored already: recorded as a duplicate
/// delivery of it, answered with the decision taken the first time.
fn duplicate<'c>(
    conn: &'c Connection,
    hot: &mut HotStatements<'c>,
    n: &NewNotification,
    shop: &str,
    key: &[u8],
    shared_body: Option<&[u8; 32]>,
    stored: Option<&Encoded>,
) -> Result<IntakeReceipt, StoreError> {
    let (event_id, assessed, applied, reason, comment) = conn
        .prepare_cached(
            "SELECT id, assessed, outcome, reason, comment FROM events
              WHERE shop = ?1 AND order_ref = ?2 AND source = ?3 AND event_key = ?4",
        )?
        .query_row(params![shop, n.order_ref, n.source, key], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Outcome>(1)?,
                r.get::<_, Option<Outcome>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?;
    insert_delivery(conn, hot, event_id, n, true, shared_body, stored)?;
    Ok(IntakeReceipt {
        event_id,
        duplicate: true,
        assessed,
        applied,
        reason,
        comment,
        warnings: Vec::new(),
        outbox_id: None,
        batch_size: 0,
    })
}

/// The stored form of an event key (migration 8): the first 16 bytes of
/// the hex SHA-256 `domain` computes, as a BLOB, instead of 64 hex
/// characters (half the row's key bytes, a quarter of the index's). 128 bits
/// keep accidental collisions out of reach (≈ 2⁻⁶⁴ at 4 billion events),
/// and only signed notifications reach the key. A key that is not hex (the
/// daemon writes none) is kept byte for byte, as migration 8 does.
pub(crate) enum CompactKey<'a> {
    Digest([u8; 16]),
    Verbatim(&'a [u8]),
}

impl CompactKey<'_> {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        match self {
            CompactKey::Digest(d) => d,
            CompactKey::Verbatim(b) => b,
        }
    }
}

pub(crate) fn compact_event_key(key: &str) -> CompactKey<'_> {
    fn nibble(b: u8) -> Option<u8> {
        match b {
            b'0'..=b'9' => Some(b - b'0'),
            b'a'..=b'f' => Some(b - b'a' + 10),
            b'A'..=b'F' => Some(b - b'A' + 10),
            _ => None,
        }
    }
    let raw = key.as_bytes();
    if raw.len() >= 32 {
        let mut out = [0u8; 16];
        let decoded = raw[..32]
            .chunks_exact(2)
            .zip(out.iter_mut())
            .all(|(pair, o)| match (nibble(pair[0]), nibble(pair[1])) {
                (Some(hi), Some(lo)) => {
                    *o = hi << 4 | lo;
                    true
                }
                _ => false,
            });
        if decoded {
            return CompactKey::Digest(out);
        }
    }
    CompactKey::Verbatim(raw)
}

fn insert_delivery<'c>(
    conn: &'c Connection,
    hot: &mut HotStatements<'c>,
    event_id: i64,
    n: &NewNotification,
    duplicate: bool,
    shared_body: Option<&[u8; 32]>,
    stored: Option<&Encoded>,
) -> Result<(), StoreError> {
    let encoded_here;
    let stored = match stored {
        Some(e) => e,
        None => {
            encoded_here = bodies::encode(&n.body);
            &encoded_here
        }
    };
    let (inline, body_id) = match shared_body {
        None => (Some(stored), None),
        Some(digest) => (None, Some(shared_body_id(conn, digest, stored)?)),
    };
    let (body, codec) = match inline {
        Some(e) => (Some(e.bytes.as_slice()), e.codec),
        None => (None, None),
    };
    hot.get(
        conn,
        Hot::InsertDelivery,
        "INSERT INTO deliveries (event_id, received_at, peer, duplicate, headers, body, body_id, body_codec)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        event_id,
        n.received_at,
        n.peer,
        duplicate,
        n.headers,
        body,
        body_id,
        codec
    ])?;
    Ok(())
}

/// The `bodies` row holding `body` (SHA-256 `digest`), inserted if new:
/// every update of a document, and every resend of it, share one copy.
fn shared_body_id(
    conn: &Connection,
    digest: &[u8; 32],
    stored: &Encoded,
) -> Result<i64, StoreError> {
    let found = conn
        .prepare_cached("SELECT id FROM bodies WHERE sha256 = ?1")?
        .query_row(params![&digest[..]], |r| r.get(0))
        .optional()?;
    if let Some(id) = found {
        return Ok(id);
    }
    conn.insert_returning_id(
        "INSERT INTO bodies (sha256, body, body_codec) VALUES (?1, ?2, ?3) RETURNING id",
        params![&digest[..], &stored.bytes, stored.codec],
    )?
    .ok_or_else(|| StoreError::Corrupt("the body row was not inserted".into()))
}
