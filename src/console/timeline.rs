//! An order's timeline as the console shows it: the same entries, order and
//! wording as `ipnsync show` (deliveries, decisions with their comments,
//! shop updates, push attempts with the shop's answers, review actions),
//! plus the console's retries with who asked. Texts are whole: the page
//! wraps them, where the terminal table clips.

use crate::domain::{Facts, Notification};
use crate::store::now_ms;
use crate::store::read::console::OperatorAction;
use crate::store::read::orders::OrderHistory;

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub at: i64,
    /// `delivery`, `decision`, `outbox`, `push`, `review`, `operator`.
    pub kind: &'static str,
    pub text: String,
    /// The readable comment (decision), the operator's words (review).
    pub more: Option<String>,
    /// Marks failures (a dead push, a failed review action).
    pub alert: bool,
}

pub fn timeline(h: &OrderHistory, operator: &[OperatorAction]) -> Vec<Entry> {
    // (at, rank, id): ties in the same millisecond follow cause and effect,
    // as in `ipnsync show`.
    let mut entries: Vec<((i64, u8, i64), Entry)> = Vec::new();
    for d in &h.deliveries {
        let mut s = format!("event {} from {}", d.event_id, d.peer);
        if d.duplicate {
            s.push_str(", duplicate");
        }
        if d.body_pruned {
            s.push_str(", body pruned");
        }
        entries.push((
            (d.received_at, 0, d.id),
            entry(d.received_at, "delivery", s),
        ));
    }
    for e in &h.events {
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
            s.push_str(&format!(", replayed {} UTC", crate::cli::table::utc(at)));
        }
        let mut x = entry(e.created_at, "decision", s);
        x.more = Some(d.comment.clone());
        entries.push(((e.created_at, 1, e.id), x));
    }
    for o in &h.outbox {
        let from = o.previous_outcome.as_deref().unwrap_or("new");
        let state = match o.state.as_str() {
            "pending" => format!(
                "pending, next attempt {} UTC",
                crate::cli::table::utc(o.next_attempt_at)
            ),
            "delivered" => format!(
                "delivered {} UTC",
                crate::cli::table::utc_or_dash(o.delivered_at)
            ),
            other => other.to_owned(),
        };
        let s = format!(
            "update #{} (event {}) {} → {}: {}, {} attempt(s)",
            o.id, o.event_id, from, o.outcome, state, o.attempts
        );
        let mut x = entry(o.created_at, "outbox", s);
        x.alert = o.state == "dead";
        entries.push(((o.created_at, 2, o.id), x));
    }
    for a in &h.attempts {
        let s = match a.detail.as_deref().filter(|d| !d.is_empty()) {
            Some(d) => format!("update #{} {}: {d}", a.outbox_id, a.result),
            None => format!("update #{} {}", a.outbox_id, a.result),
        };
        let mut x = entry(a.at, "push", s);
        x.alert = a.result == "dead";
        entries.push(((a.at, 3, a.id), x));
    }
    for r in &h.review_actions {
        let via = if r.gateway == "none" {
            "in the shop only".to_owned()
        } else {
            format!("via {}", r.gateway)
        };
        let mut s = format!("{} by {} {via}", r.action, r.actor);
        let mut alert = false;
        if r.state == "in_progress" {
            let expired = r.expires_at.is_some_and(|e| e <= now_ms());
            alert = expired;
            s.push_str(if expired {
                ": never finished (the gateway may have acted: check the order)"
            } else {
                ": in progress"
            });
        } else if let Some(error) = &r.error {
            alert = true;
            s.push_str(&format!(": failed: {error}"));
        } else {
            if let Some(status) = &r.gateway_status {
                s.push_str(&format!(": {status}"));
            }
            match (&r.outcome, r.outbox_id) {
                (Some(o), Some(id)) => s.push_str(&format!(" → {o}, update #{id}")),
                (Some(o), None) => s.push_str(&format!(" → {o}")),
                (None, _) => s.push_str(", order already moved"),
            }
        }
        let mut x = entry(r.created_at, "review", s);
        x.more = r.comment.clone();
        x.alert = alert;
        // Before the shop update it queued in the same millisecond.
        entries.push(((r.created_at, 1, r.id), x));
    }
    for a in operator {
        let s = match a.outbox_id {
            Some(id) => format!("{} of update #{id} by {}", a.action, a.actor),
            None => format!("{} by {}", a.action, a.actor),
        };
        entries.push(((a.created_at, 3, a.id), entry(a.created_at, "operator", s)));
    }
    entries.sort_by_key(|(k, _)| *k);
    entries.into_iter().map(|(_, e)| e).collect()
}

fn entry(at: i64, kind: &'static str, text: String) -> Entry {
    Entry {
        at,
        kind,
        text,
        more: None,
        alert: false,
    }
}

/// The risk findings of a notification, one readable item each: what the
/// operator weighs before validating.
pub fn risk_findings(n: &Notification) -> Vec<String> {
    let mut out = Vec::new();
    match &n.facts {
        Facts::Lyra(f) => {
            out.extend(f.risk_assessment.iter().cloned());
            if !f.risk_analysis.is_empty() {
                out.push(format!("analysis: {}", f.risk_analysis));
            }
            for (control, result) in &f.risk_control {
                if result != "OK" {
                    out.push(format!("{control}: {result}"));
                }
            }
        }
        Facts::Cybersource(f) => {
            for (k, v) in [
                ("decision", &f.new_decision),
                ("status", &f.payment_status),
                ("reason", &f.reason),
                ("event", &f.event_type),
            ] {
                if !v.is_empty() {
                    out.push(format!("{k}: {v}"));
                }
            }
        }
        Facts::Mpgs(f) => {
            if !f.risk_gateway_code.is_empty() {
                out.push(format!("risk: {}", f.risk_gateway_code));
            }
            if let Some(score) = f.risk_score {
                out.push(format!("score: {score}"));
            }
            if !f.review_decision.is_empty() {
                out.push(format!("review: {}", f.review_decision));
            }
            for (rule, recommendation) in &f.risk_rules {
                out.push(format!("{rule}: {recommendation}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{LyraFacts, Provider};
    use crate::store::read::orders::{AttemptRecord, EventRecord, OutboxRecord, StoredDecision};
    use crate::store::read::review_queue::ReviewActionRecord;

    #[test]
    fn entries_follow_time_then_cause_and_effect() {
        let h = OrderHistory {
            shop: "s".into(),
            order_ref: "1".into(),
            current: None,
            events: vec![EventRecord {
                id: 1,
                source: "lyra".into(),
                status: "AUTHORISED_TO_VALIDATE".into(),
                origin: "PAY".into(),
                transaction_id: "t".into(),
                decision: StoredDecision {
                    assessed: "review".into(),
                    verdict: "applied".into(),
                    outcome: Some("review".into()),
                    reason: None,
                    comment: "Lyra: to validate".into(),
                },
                created_at: 100,
                replayed_at: None,
            }],
            deliveries: vec![],
            outbox: vec![OutboxRecord {
                id: 5,
                event_id: 1,
                previous_outcome: None,
                outcome: "review".into(),
                state: "dead".into(),
                attempts: 2,
                next_attempt_at: 0,
                last_error: Some("HTTP 500".into()),
                created_at: 100,
                delivered_at: None,
                needs_operator: None,
                comment_only: false,
            }],
            attempts: vec![AttemptRecord {
                id: 9,
                outbox_id: 5,
                at: 200,
                result: "dead".into(),
                detail: Some("HTTP 500: order table locked".into()),
            }],
            review_actions: vec![ReviewActionRecord {
                id: 3,
                action: "validate".into(),
                actor: "alice".into(),
                comment: Some("called the buyer".into()),
                gateway: "lyra".into(),
                gateway_status: None,
                error: Some("Lyra refused".into()),
                outcome: None,
                outbox_id: None,
                state: "failed".into(),
                expires_at: None,
                created_at: 300,
            }],
        };
        let ops = [OperatorAction {
            id: 1,
            action: "retry".into(),
            actor: "bob".into(),
            outbox_id: Some(5),
            created_at: 250,
        }];
        let t = timeline(&h, &ops);
        let kinds: Vec<&str> = t.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, ["decision", "outbox", "push", "operator", "review"]);
        assert_eq!(t[0].more.as_deref(), Some("Lyra: to validate"));
        assert!(t[1].alert && t[2].alert && t[4].alert);
        assert_eq!(t[2].text, "update #5 dead: HTTP 500: order table locked");
        assert_eq!(t[3].text, "retry of update #5 by bob");
        assert_eq!(
            t[4].text,
            "validate by alice via lyra: failed: Lyra refused"
        );
    }

    #[test]
    fn lyra_risk_findings_skip_passed_controls() {
        let n = Notification {
            provider: Provider::LyraForm,
            order_ref: "1".into(),
            transaction_id: "t".into(),
            transaction_number: "1".into(),
            amount_minor: Some(100),
            currency: "978".into(),
            facts: Facts::Lyra(LyraFacts {
                risk_assessment: vec!["ENABLE_3DS".into(), "MANUAL_VALIDATION".into()],
                risk_control: vec![
                    ("CARD_FRAUD".into(), "OK".into()),
                    ("SUSPECT_COUNTRY".into(), "WARNING".into()),
                ],
                ..LyraFacts::default()
            }),
        };
        assert_eq!(
            risk_findings(&n),
            [
                "ENABLE_3DS",
                "MANUAL_VALIDATION",
                "SUSPECT_COUNTRY: WARNING"
            ]
        );
    }
}
