//! An order's timeline in words: which entries, in which order, and the
//! text of each (deliveries, decisions, shop updates, push attempts, review
//! actions, operator actions). `ipnsync show` and the console's order page
//! both render this; they differ only in the [`Style`] each passes (a
//! terminal table clips long texts and says "UTC" once in its header; a
//! page wraps whole texts and says "UTC" after each time).

use crate::cli::table::{clip, utc, utc_or_dash};
use crate::store::read::console::OperatorAction;
use crate::store::read::orders::{
    AttemptRecord, DeliveryRecord, EventRecord, OrderHistory, OutboxRecord,
};
use crate::store::read::review_queue::ReviewActionRecord;

/// How the texts are written for one kind of screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Style {
    /// Written after every time (the terminal's header says it once).
    pub time_suffix: &'static str,
    /// Longest error or shop answer shown; `None`: whole.
    pub clip: Option<usize>,
    /// Whether an update's line says "comment only" and "needs an
    /// operator". The console's timeline never did (its order page shows
    /// the update's state beside it); kept so neither output changes.
    pub update_notes: bool,
}

impl Style {
    fn clip(&self, text: &str) -> String {
        match self.clip {
            Some(max) => clip(text, max),
            None => text.to_owned(),
        }
    }
}

/// One entry of an order's timeline, borrowed from the stored history.
#[derive(Debug, Clone, Copy)]
pub enum Item<'a> {
    Delivery(&'a DeliveryRecord),
    Decision(&'a EventRecord),
    Outbox(&'a OutboxRecord),
    Push(&'a AttemptRecord),
    Review(&'a ReviewActionRecord),
    Operator(&'a OperatorAction),
}

/// Every entry of `h` and of `operator`, oldest first.
pub fn items<'a>(h: &'a OrderHistory, operator: &'a [OperatorAction]) -> Vec<Item<'a>> {
    let mut items: Vec<Item<'a>> = h
        .deliveries
        .iter()
        .map(Item::Delivery)
        .chain(h.events.iter().map(Item::Decision))
        .chain(h.outbox.iter().map(Item::Outbox))
        .chain(h.attempts.iter().map(Item::Push))
        .chain(h.review_actions.iter().map(Item::Review))
        .chain(operator.iter().map(Item::Operator))
        .collect();
    // Stable: equal keys keep the order above.
    items.sort_by_key(Item::sort_key);
    items
}

impl Item<'_> {
    pub fn at(&self) -> i64 {
        match self {
            Item::Delivery(d) => d.received_at,
            Item::Decision(e) => e.created_at,
            Item::Outbox(o) => o.created_at,
            Item::Push(a) => a.at,
            Item::Review(r) => r.created_at,
            Item::Operator(a) => a.created_at,
        }
    }

    /// Ties in time (same millisecond) follow cause and effect: a delivery
    /// leads to a decision, which queues an update, which is pushed.
    fn sort_key(&self) -> (i64, u8, i64) {
        match self {
            Item::Delivery(d) => (d.received_at, 0, d.id),
            Item::Decision(e) => (e.created_at, 1, e.id),
            Item::Outbox(o) => (o.created_at, 2, o.id),
            Item::Push(a) => (a.at, 3, a.id),
            // Before the shop update it queued in the same millisecond.
            Item::Review(r) => (r.created_at, 1, r.id),
            Item::Operator(a) => (a.created_at, 3, a.id),
        }
    }

    /// What the entry is: `delivery`, `decision`, `outbox`, `push`,
    /// `review`, `operator`.
    pub fn kind(&self) -> &'static str {
        match self {
            Item::Delivery(_) => "delivery",
            Item::Decision(_) => "decision",
            Item::Outbox(_) => "outbox",
            Item::Push(_) => "push",
            Item::Review(_) => "review",
            Item::Operator(_) => "operator",
        }
    }

    /// The entry in one line. `now` tells a review action still in
    /// progress from one that never finished.
    pub fn text(&self, style: &Style, now: i64) -> String {
        match self {
            Item::Delivery(d) => delivery_text(d),
            Item::Decision(e) => decision_text(e, style),
            Item::Outbox(o) => outbox_text(o, style),
            Item::Push(a) => match a.detail.as_deref().filter(|d| !d.is_empty()) {
                Some(d) => format!("update #{} {}: {}", a.outbox_id, a.result, style.clip(d)),
                None => format!("update #{} {}", a.outbox_id, a.result),
            },
            Item::Review(r) => review_text(r, style, now),
            Item::Operator(a) => match a.outbox_id {
                Some(id) => format!("{} of update #{id} by {}", a.action, a.actor),
                None => format!("{} by {}", a.action, a.actor),
            },
        }
    }

    /// What follows the line: a decision's order-history comment, the
    /// operator's words on a review action.
    pub fn more(&self) -> Option<&str> {
        match self {
            Item::Decision(e) => Some(&e.decision.comment),
            Item::Review(r) => r.comment.as_deref(),
            _ => None,
        }
    }

    /// Whether the entry reports a failure: a dead update or push, a
    /// review action that failed or never finished.
    pub fn alert(&self, now: i64) -> bool {
        match self {
            Item::Outbox(o) => o.state == "dead",
            Item::Push(a) => a.result == "dead",
            Item::Review(r) if r.state == "in_progress" => never_finished(r, now),
            Item::Review(r) => r.error.is_some(),
            _ => false,
        }
    }
}

fn delivery_text(d: &DeliveryRecord) -> String {
    let mut s = format!("event {} from {}", d.event_id, d.peer);
    if d.duplicate {
        s.push_str(", duplicate");
    }
    if d.body_pruned {
        s.push_str(", body pruned");
    }
    s
}

fn decision_text(e: &EventRecord, style: &Style) -> String {
    let d = &e.decision;
    let mut s = format!(
        "event {} {} ({}) via {}: assessed {}, {}",
        e.id, e.status, e.origin, e.source, d.assessed, d.verdict
    );
    if let Some(outcome) = &d.outcome {
        s.push_str(&format!(" → {outcome}"));
    }
    if let Some(reason) = &d.reason {
        s.push_str(&format!(" ({reason})"));
    }
    if let Some(at) = e.replayed_at {
        s.push_str(&format!(", replayed {}{}", utc(at), style.time_suffix));
    }
    s
}

fn outbox_text(o: &OutboxRecord, style: &Style) -> String {
    let from = o.previous_outcome.as_deref().unwrap_or("new");
    let suffix = style.time_suffix;
    let state = match o.state.as_str() {
        "pending" => format!("pending, next attempt {}{suffix}", utc(o.next_attempt_at)),
        "delivered" => format!("delivered {}{suffix}", utc_or_dash(o.delivered_at)),
        other => other.to_owned(),
    };
    let mut s = if o.comment_only && style.update_notes {
        format!(
            "update #{} (event {}) comment only, order stays {}: {}, {} attempt(s)",
            o.id, o.event_id, o.outcome, state, o.attempts
        )
    } else {
        format!(
            "update #{} (event {}) {} → {}: {}, {} attempt(s)",
            o.id, o.event_id, from, o.outcome, state, o.attempts
        )
    };
    if let Some(reason) = o.needs_operator.as_deref().filter(|_| style.update_notes) {
        s.push_str(&format!("; needs an operator: {}", style.clip(reason)));
    }
    s
}

fn review_text(r: &ReviewActionRecord, style: &Style, now: i64) -> String {
    let via = if r.gateway == "none" {
        "in the shop only".to_owned()
    } else {
        format!("via {}", r.gateway)
    };
    let mut s = format!("{} by {} {via}", r.action, r.actor);
    if r.state == "in_progress" {
        s.push_str(if never_finished(r, now) {
            ": never finished (the gateway may have acted: check the order)"
        } else {
            ": in progress"
        });
        return s;
    }
    if let Some(error) = &r.error {
        s.push_str(&format!(": failed: {}", style.clip(error)));
        return s;
    }
    if let Some(status) = &r.gateway_status {
        s.push_str(&format!(": {status}"));
    }
    match (&r.outcome, r.outbox_id) {
        (Some(o), Some(id)) => s.push_str(&format!(" → {o}, update #{id}")),
        (Some(o), None) => s.push_str(&format!(" → {o}")),
        (None, _) => s.push_str(", order already moved"),
    }
    s
}

/// A claim whose time ran out before the action was recorded.
fn never_finished(r: &ReviewActionRecord, now: i64) -> bool {
    r.expires_at.is_some_and(|e| e <= now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TERMINAL: Style = Style {
        time_suffix: "",
        clip: Some(20),
        update_notes: true,
    };
    const PAGE: Style = Style {
        time_suffix: " UTC",
        clip: None,
        update_notes: false,
    };

    fn update(comment_only: bool, needs_operator: Option<&str>) -> OutboxRecord {
        OutboxRecord {
            id: 7,
            event_id: 3,
            previous_outcome: Some("review".into()),
            outcome: "accepted".into(),
            state: "delivered".into(),
            attempts: 1,
            next_attempt_at: 0,
            last_error: None,
            created_at: 0,
            delivered_at: Some(86_400_000),
            needs_operator: needs_operator.map(str::to_owned),
            comment_only,
        }
    }

    #[test]
    fn the_style_decides_times_clipping_and_update_notes() {
        let o = update(
            false,
            Some("invoice by hand: the shop refused the credit memo"),
        );
        let item = Item::Outbox(&o);
        assert_eq!(
            item.text(&TERMINAL, 0),
            "update #7 (event 3) review → accepted: delivered 1970-01-02 00:00:00, 1 attempt(s); needs an operator: invoice by hand: th…"
        );
        assert_eq!(
            item.text(&PAGE, 0),
            "update #7 (event 3) review → accepted: delivered 1970-01-02 00:00:00 UTC, 1 attempt(s)"
        );
        let note = update(true, None);
        assert_eq!(
            Item::Outbox(&note).text(&TERMINAL, 0),
            "update #7 (event 3) comment only, order stays accepted: delivered 1970-01-02 00:00:00, 1 attempt(s)"
        );
        let a = AttemptRecord {
            id: 1,
            outbox_id: 7,
            at: 0,
            result: "retry".into(),
            detail: Some("HTTP 503: the shop is down for maintenance".into()),
        };
        assert_eq!(
            Item::Push(&a).text(&TERMINAL, 0),
            "update #7 retry: HTTP 503: the shop …"
        );
        assert_eq!(
            Item::Push(&a).text(&PAGE, 0),
            "update #7 retry: HTTP 503: the shop is down for maintenance"
        );
    }

    #[test]
    fn a_review_claim_never_finished_is_an_alert_once_expired() {
        let r = ReviewActionRecord {
            id: 1,
            action: "deny".into(),
            actor: "alice".into(),
            comment: None,
            gateway: "none".into(),
            gateway_status: None,
            error: None,
            outcome: None,
            outbox_id: None,
            state: "in_progress".into(),
            expires_at: Some(1_000),
            created_at: 0,
        };
        let item = Item::Review(&r);
        assert_eq!(
            item.text(&PAGE, 999),
            "deny by alice in the shop only: in progress"
        );
        assert!(!item.alert(999));
        assert_eq!(
            item.text(&PAGE, 1_000),
            "deny by alice in the shop only: never finished (the gateway may have acted: check the order)"
        );
        assert!(item.alert(1_000));
    }
}
