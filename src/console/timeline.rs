//! An order's timeline as the console shows it: the same entries, order and
//! wording as `ipnsync show` (both written by [`crate::present::timeline`]:
//! deliveries, decisions with their comments, shop updates, push attempts
//! with the shop's answers, review actions), plus the console's retries
//! with who asked. Texts are whole: the page wraps them, where the
//! terminal table clips.

use crate::domain::{Facts, Notification};
use crate::present::timeline::{items, Style};
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

/// How the console writes the shared timeline: whole texts (the page
/// wraps them), "UTC" after each time.
const PAGE: Style = Style {
    time_suffix: " UTC",
    clip: None,
    update_notes: false,
};

pub fn timeline(h: &OrderHistory, operator: &[OperatorAction]) -> Vec<Entry> {
    let now = now_ms();
    items(h, operator)
        .into_iter()
        .map(|item| Entry {
            at: item.at(),
            kind: item.kind(),
            text: item.text(&PAGE, now),
            more: item.more().map(str::to_owned),
            alert: item.alert(now),
        })
        .collect()
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
