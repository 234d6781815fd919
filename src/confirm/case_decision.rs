//! Confirming an analyst's case decision (issue 15) through the gateway's
//! own record of such decisions, the Conversion Detail Report
//! (`GET /reporting/v3/conversion-details`, cybersource.md §6). Two
//! notifications claim one without proving it:
//!
//! - a `cybersource-cmos` post: unsigned as a whole (a token and an address
//!   are all that protect it);
//! - a Cybersource webhook `risk.casemanagement.decision.accept` /
//!   `.reject` whose signature covered only the payload (rule cs8): the
//!   event type, the only part that says accept or reject, is outside it.
//!
//! Both are looked up the same way ([`route`] says which rows come here):
//!
//! - The report is read over a window around the notification's arrival
//!   ([`window`]); the entries of its request id are looked at ([`judge`],
//!   pure): the latest decides. The same decision → confirmed, decided from
//!   the report's entry; another → held for review with both (the store's
//!   disagreement path); another order's request → not applied.
//! - Not (yet) listed: reports lag behind the analyst's click, so the job
//!   waits on the `[dispatch]` retry schedule, like an unreachable gateway;
//!   once the source's `confirm_max_wait` has passed since the
//!   notification, the order is held for review, "the gateway has no
//!   record of this decision" ([`Lookup::NoRecord`]).
//! - Gateway down or refusing: asked again, nothing lost, and the wait
//!   only ends on an answer (a report that could not be read never turns
//!   into "no record").
//!
//! Transaction details (`/tss/v2/transactions/{id}`) are not asked for a
//! case decision: they hold the original request's replies (Decision
//! Manager's `ics_decision` stays DREVIEW / 480 after the analyst's
//! accept), not the analyst's later decision, so they would contradict
//! every genuine accept. They still confirm the other webhooks
//! (`payments.payments.*`: the payment's status is what they show).

use std::time::Duration;

use super::gateway::Lookup;
use crate::config::{Config, CybersourceApi, ReviewApi, SourceConfig, SourceKind};
use crate::domain::notification::CybersourceChannel;
use crate::domain::outcome::cybersource::DmSignal;
use crate::domain::{Facts, Notification};
use crate::ops::logging::one_line;
use crate::review::cybersource_read::{self, Conversion};
use crate::store::confirm::{ConfirmReport, DueConfirmation};
use crate::store::now_ms;

/// For the comment and logs.
pub const GATEWAY: &str = "Cybersource";

/// How far before the post the report is read: the decision precedes the
/// post it causes; the official OpenCart cron reads one day.
const BEFORE_MS: i64 = 23 * 3600 * 1000;
/// …and after it: clocks differ, the post may be sent before the report
/// entry's time is stamped.
const AFTER_MS: i64 = 3600 * 1000;

/// The report window (ms) for a post received at `received`, asked at
/// `now`: 24 h at most, never in the future.
pub fn window(received: i64, now: i64) -> (i64, i64) {
    let end = (received + AFTER_MS).min(now).max(received - BEFORE_MS + 1);
    (received - BEFORE_MS, end)
}

/// The REST API that confirms `held` through the report, if it goes
/// there: every decision of a `cybersource-cmos` source, and a case
/// decision webhook (accept or reject) of a `cybersource` source. Other
/// webhooks (`payments.*`, profile decisions) are confirmed through
/// transaction details (`confirm::gateway`).
pub fn route<'a>(source: &'a SourceConfig, held: &Notification) -> Option<&'a CybersourceApi> {
    let Some(ReviewApi::Cybersource(api)) = &source.review_api else {
        return None;
    };
    match source.kind {
        SourceKind::CybersourceCmos => Some(api),
        SourceKind::Cybersource if is_case_decision_webhook(held) => Some(api),
        _ => None,
    }
}

/// A webhook reporting an analyst's accept or reject of a case.
fn is_case_decision_webhook(n: &Notification) -> bool {
    let Facts::Cybersource(f) = &n.facts else {
        return false;
    };
    f.channel == CybersourceChannel::Webhook
        && matches!(
            DmSignal::of(f),
            Some(DmSignal::CaseAccept | DmSignal::CaseReject)
        )
}

/// What the report says about the decision `stored` claims; `None` when it
/// does not list the post's request id (yet).
pub fn judge(stored: &Notification, report: &[Conversion]) -> Option<Lookup> {
    let Facts::Cybersource(f) = &stored.facts else {
        return Some(Lookup::Unconfirmed(
            "not a Cybersource notification".to_owned(),
        ));
    };
    let request_id = if f.request_id.is_empty() {
        &stored.transaction_number
    } else {
        &f.request_id
    };
    if request_id.is_empty() {
        return Some(Lookup::Unconfirmed(
            "the notification names no request id to look up in the Conversion Detail Report"
                .to_owned(),
        ));
    }
    // The latest decision on the case is the gateway's current one (an
    // analyst may have changed their mind); report times are ISO 8601 UTC,
    // so they compare as text; on a tie, the report's order.
    let entry = report
        .iter()
        .filter(|c| c.request_id == *request_id && !c.new_decision.trim().is_empty())
        .reduce(|a, b| {
            if b.conversion_time >= a.conversion_time {
                b
            } else {
                a
            }
        })?;
    if !entry.merchant_reference_number.is_empty()
        && entry.merchant_reference_number != stored.order_ref
    {
        return Some(Lookup::Unconfirmed(format!(
            "Cybersource request {request_id} belongs to order {}, not {}",
            entry.merchant_reference_number, stored.order_ref
        )));
    }
    let summary = format!(
        "Conversion Detail Report: request {request_id} {} → {}{}{}",
        if entry.original_decision.is_empty() {
            "?"
        } else {
            &entry.original_decision
        },
        entry.new_decision.trim().to_ascii_uppercase(),
        if entry.reviewer.is_empty() {
            String::new()
        } else {
            format!(" by {}", entry.reviewer)
        },
        if entry.conversion_time.is_empty() {
            String::new()
        } else {
            format!(" at {}", entry.conversion_time)
        },
    );
    // Decided from the report's entry, shaped like the CMOS update it is
    // (rules cs2/cs3, as reconciliation reads the report): the notification
    // only said which case. A webhook's unsigned event type goes, so that
    // cs8 cannot apply to the gateway's own word.
    let facts = crate::domain::notification::CybersourceFacts {
        channel: CybersourceChannel::Cmos,
        event_type: String::new(),
        signed: String::new(),
        new_decision: entry.new_decision.trim().to_ascii_uppercase(),
        original_decision: entry.original_decision.clone(),
        reviewer: entry.reviewer.clone(),
        reviewer_comments: entry.reviewer_comments.clone(),
        ..f.clone()
    };
    Some(Lookup::Found {
        notification: Box::new(Notification {
            facts: Facts::Cybersource(facts),
            ..stored.clone()
        }),
        summary,
    })
}

/// Confirms one held case decision (CMOS post or webhook) through the
/// report.
pub async fn confirm_one(
    config: &Config,
    source: &SourceConfig,
    api: &CybersourceApi,
    row: &DueConfirmation,
) -> ConfirmReport {
    let now = now_ms();
    let (start, end) = window(row.created_at, now);
    let report = match cybersource_read::conversion_entries(api, start, end).await {
        Ok(r) => r,
        Err(e) => {
            let error = format!("{GATEWAY} Conversion Detail Report: {e}");
            tracing::warn!(
                source = %row.source, order = %one_line(&row.order_ref), event = row.event_id,
                error = %one_line(&error), "confirmation: the gateway did not answer; the order waits"
            );
            return super::retry_later(config, row, error, now);
        }
    };
    if let Some(lookup) = judge(&row.notification, &report) {
        return ConfirmReport::Settled {
            id: row.id,
            gateway: GATEWAY.to_owned(),
            lookup,
        };
    }
    let waited = Duration::from_millis((now - row.created_at).max(0) as u64);
    let request = match &row.notification.facts {
        Facts::Cybersource(f) => f.request_id.clone(),
        _ => String::new(),
    };
    if waited >= source.confirm_max_wait {
        return ConfirmReport::Settled {
            id: row.id,
            gateway: GATEWAY.to_owned(),
            lookup: Lookup::NoRecord(format!(
                "request {request} is not in the Conversion Detail Report {} to {} ({} after the notification)",
                cybersource_read::report_time(start),
                cybersource_read::report_time(end),
                crate::config::format_duration(source.confirm_max_wait)
            )),
        };
    }
    // Reports lag: not an error, the job waits.
    tracing::info!(
        source = %row.source, order = %one_line(&row.order_ref), event = row.event_id, request = %one_line(&request),
        "confirmation: the decision is not in the Conversion Detail Report yet; the order waits"
    );
    super::retry_later(
        config,
        row,
        format!("request {request} is not in the Conversion Detail Report yet"),
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::notification::{CybersourceChannel, CybersourceFacts};
    use crate::domain::{assess, Outcome, Provider};

    fn post(decision: &str) -> Notification {
        Notification {
            provider: Provider::Cybersource,
            order_ref: "100000123".into(),
            transaction_id: "4720554329436778504102".into(),
            transaction_number: "4720554329436778504102".into(),
            amount_minor: None,
            currency: String::new(),
            facts: Facts::Cybersource(CybersourceFacts {
                channel: CybersourceChannel::Cmos,
                new_decision: decision.into(),
                original_decision: "REVIEW".into(),
                reviewer: "mallory".into(),
                request_id: "4720554329436778504102".into(),
                ..Default::default()
            }),
        }
    }

    fn entry(request: &str, order: &str, decision: &str, at: &str) -> Conversion {
        Conversion {
            merchant_reference_number: order.into(),
            conversion_time: at.into(),
            request_id: request.into(),
            original_decision: "REVIEW".into(),
            new_decision: decision.into(),
            reviewer: "alice".into(),
            reviewer_comments: "checked".into(),
        }
    }

    const REQ: &str = "4720554329436778504102";

    fn outcome(l: &Lookup) -> Option<Outcome> {
        match l {
            Lookup::Found { notification, .. } => Some(assess(notification).outcome),
            _ => None,
        }
    }

    #[test]
    fn the_report_decides_and_the_latest_entry_of_the_request_stands() {
        let stored = post("ACCEPT");
        let other = entry("999", "100000999", "ACCEPT", "2026-11-24T10:00:00Z");
        // Agrees: decided from the report's entry (its reviewer).
        let report = [
            other.clone(),
            entry(REQ, "100000123", "accept", "2026-11-24T10:00:00Z"),
        ];
        let got = judge(&stored, &report).unwrap();
        assert_eq!(outcome(&got), Some(Outcome::Accepted));
        let Lookup::Found {
            notification,
            summary,
        } = &got
        else {
            unreachable!()
        };
        assert_eq!(notification.cybersource().unwrap().reviewer, "alice");
        assert_eq!(
            summary,
            "Conversion Detail Report: request 4720554329436778504102 REVIEW → ACCEPT by alice at 2026-11-24T10:00:00Z"
        );
        // Another decision: the report's, so the store sees a disagreement.
        let report = [entry(REQ, "100000123", "REJECT", "2026-11-24T10:00:00Z")];
        assert_eq!(
            outcome(&judge(&stored, &report).unwrap()),
            Some(Outcome::Rejected)
        );
        // The analyst changed their mind: the latest stands, whatever the order.
        let report = [
            entry(REQ, "100000123", "REJECT", "2026-11-24T11:00:00Z"),
            entry(REQ, "100000123", "ACCEPT", "2026-11-24T10:00:00Z"),
        ];
        assert_eq!(
            outcome(&judge(&stored, &report).unwrap()),
            Some(Outcome::Rejected)
        );
        // Not listed (or listed without a decision): not yet.
        assert_eq!(judge(&stored, &[other]), None);
        assert_eq!(
            judge(
                &stored,
                &[entry(REQ, "100000123", " ", "2026-11-24T10:00:00Z")]
            ),
            None
        );
        assert_eq!(judge(&stored, &[]), None);
    }

    /// A case decision webhook signed over the payload only (rule cs8).
    fn webhook(event_type: &str) -> Notification {
        let mut n = post("");
        if let Facts::Cybersource(f) = &mut n.facts {
            f.channel = CybersourceChannel::Webhook;
            f.event_type = event_type.into();
            f.original_decision.clear();
            f.signed = crate::domain::outcome::cybersource::SIGNED_PAYLOAD_ONLY.into();
        }
        n
    }

    #[test]
    fn a_case_decision_webhook_is_decided_by_the_report_never_by_its_unsigned_event_type() {
        let stored = webhook("risk.casemanagement.decision.accept");
        // As stored, cs8 holds it for review: the event type is unsigned.
        assert_eq!(assess(&stored).outcome, Outcome::Review);
        let report = [entry(REQ, "100000123", "ACCEPT", "2026-11-24T10:00:00Z")];
        let got = judge(&stored, &report).unwrap();
        assert_eq!(outcome(&got), Some(Outcome::Accepted), "{got:?}");
        let Lookup::Found { notification, .. } = &got else {
            unreachable!()
        };
        let f = notification.cybersource().unwrap();
        assert_eq!(
            (f.channel, f.event_type.as_str(), f.signed.as_str()),
            (CybersourceChannel::Cmos, "", ""),
            "the report's entry, not the webhook's unsigned event type"
        );
        assert_eq!(f.request_id, REQ);
        // The report says reject: the gateway's word, whatever the event type.
        let report = [entry(REQ, "100000123", "REJECT", "2026-11-24T10:00:00Z")];
        assert_eq!(
            outcome(&judge(&stored, &report).unwrap()),
            Some(Outcome::Rejected)
        );
        assert_eq!(judge(&stored, &[]), None, "not listed yet");
    }

    #[test]
    fn only_case_decisions_are_routed_to_the_report() {
        let api = r#"
api_host = "https://apitest.cybersource.com"
merchant_id = "mymid"
api_key_id = "08c94330-f618-42a3-b09d-e1e43be5efda"
api_shared_secret = "c2hhcmVkLXNlY3JldA==""#;
        let text = format!(
            r#"[[sources]]
name = "c"
kind = "cybersource"
path = "/c"
keys = [{{ id = "k", secret = "c2VjcmV0" }}]{api}

[[sources]]
name = "bare"
kind = "cybersource"
path = "/b"
keys = [{{ id = "k", secret = "c2VjcmV0" }}]

[[sources]]
name = "cm"
kind = "cybersource-cmos"
path = "/cm"
token = "cmos-token-0123456789abcdef"{api}
"#
        );
        let config = Config::parse(&text, &crate::config::SecretEnv::default()).unwrap();
        let [webhooks, bare, cmos] = &config.sources[..] else {
            panic!("three sources")
        };
        for case in [
            "risk.casemanagement.decision.accept",
            "risk.casemanagement.decision.reject",
        ] {
            assert!(route(webhooks, &webhook(case)).is_some(), "{case}");
            assert!(route(bare, &webhook(case)).is_none(), "no API: {case}");
        }
        // The payment's own events: transaction details show their status.
        for other in [
            "payments.payments.accept",
            "payments.payments.reject",
            "risk.profile.decision.reject",
        ] {
            assert!(route(webhooks, &webhook(other)).is_none(), "{other}");
        }
        assert!(route(cmos, &post("ACCEPT")).is_some());
        assert!(route(cmos, &post("")).is_some());
    }

    #[test]
    fn another_orders_request_or_no_request_id_confirms_nothing() {
        let report = [entry(REQ, "100000999", "ACCEPT", "2026-11-24T10:00:00Z")];
        let got = judge(&post("ACCEPT"), &report).unwrap();
        assert!(
            matches!(&got, Lookup::Unconfirmed(why) if why.contains("belongs to order 100000999, not 100000123")),
            "{got:?}"
        );
        let mut stored = post("ACCEPT");
        stored.transaction_number.clear();
        if let Facts::Cybersource(f) = &mut stored.facts {
            f.request_id.clear();
        }
        assert!(matches!(
            judge(&stored, &report),
            Some(Lookup::Unconfirmed(_))
        ));
    }

    #[test]
    fn the_window_surrounds_the_post_and_never_reaches_the_future() {
        let h = 3600 * 1000;
        let received = 100 * h;
        assert_eq!(
            window(received, received + 5 * h),
            (received - 23 * h, received + h)
        );
        assert_eq!(
            window(received, received + 1000),
            (received - 23 * h, received + 1000)
        );
        let (start, end) = window(received, received + 30 * 86_400_000);
        assert_eq!(end - start, 24 * h, "one day at most");
    }
}
