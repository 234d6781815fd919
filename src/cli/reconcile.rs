//! `ipnsync reconcile [--dry-run] [--order ORDER [--source NAME]]`: asks
//! the gateways about orders still `pending` or `review` past
//! `[reconcile] min_age` (or one order, in any state), and records what
//! moves them as a `reconciliation` event with its shop update, like the
//! daemon's background task. Needs the configuration for the gateway
//! credentials; writes one short transaction per order.

use std::path::Path;

use clap::Args;
use serde_json::{json, Value};

use super::{emit, json_document, load_config, shop_label, CliError};
use crate::confirm::reconcile::{look_up, report_findings, Finding};
use crate::domain::Outcome;
use crate::store::confirm::{self as store_confirm, ReconcileTarget};
use crate::store::{now_ms, operator};

/// Without `[reconcile]`, the same defaults as its keys.
const DEFAULT_MIN_AGE_MS: i64 = 2 * 3600 * 1000;
const DEFAULT_MAX_AGE_MS: i64 = 30 * 86400 * 1000;

#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    /// Only this order (any state or age); with --source, also an order
    /// ipnsync never heard of.
    #[arg(long)]
    pub order: Option<String>,
    /// The source whose gateway to ask about an order ipnsync has no
    /// record of (its shop gets the update).
    #[arg(long, requires = "order")]
    pub source: Option<String>,
    /// Ask the gateways and say what would change, without recording it.
    #[arg(long)]
    pub dry_run: bool,
    /// One JSON array instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `ipnsync reconcile`.
pub fn run(config: Option<&Path>, db: Option<&Path>, args: &ReconcileArgs) -> Result<(), CliError> {
    let config = load_config(config)?;
    let db = match db {
        Some(_) => super::database_path(None, db)?,
        None => config.database.clone(),
    };
    let mut conn = operator::open_operator(&db)?;
    let (min_age, max_age) = config
        .reconcile
        .as_ref()
        .map_or((DEFAULT_MIN_AGE_MS, DEFAULT_MAX_AGE_MS), |r| {
            (r.min_age.as_millis() as i64, r.max_age.as_millis() as i64)
        });
    let mut targets =
        store_confirm::reconcile_targets(&conn, now_ms(), min_age, max_age, args.order.as_deref())?;
    if let Some(name) = &args.source {
        let source = config
            .sources
            .iter()
            .find(|s| &s.name == name)
            .ok_or_else(|| CliError::Usage(format!("no source named {name:?}")))?;
        targets.retain(|t| &t.source == name);
        if targets.is_empty() {
            targets.push(ReconcileTarget {
                shop: source.shop.clone().unwrap_or_default(),
                order_ref: args.order.clone().unwrap_or_default(),
                outcome: None,
                source: name.clone(),
                stored: None,
            });
        }
    }
    if targets.is_empty() {
        if let Some(order) = &args.order {
            return Err(CliError::NotFound(format!(
                "order {order} is unknown: name its source with --source to ask the gateway"
            )));
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Output)?;
    let mut findings: Vec<(ReconcileTarget, Finding, bool)> = targets
        .into_iter()
        .map(|t| {
            let f = runtime.block_on(look_up(&config, &t));
            (t, f, false)
        })
        .collect();
    // Cybersource: the analyst decisions of the Conversion Detail Report.
    if args.source.is_none() {
        let report = runtime.block_on(report_findings(&config, now_ms(), args.order.as_deref()));
        for f in report {
            let target = match &f {
                Finding::State(s) => ReconcileTarget {
                    shop: s.shop.clone(),
                    order_ref: s.order_ref.clone(),
                    outcome: None,
                    source: s.source.clone(),
                    stored: None,
                },
                _ => ReconcileTarget {
                    shop: String::new(),
                    order_ref: "(report)".into(),
                    outcome: None,
                    source: String::new(),
                    stored: None,
                },
            };
            findings.push((target, f, true));
        }
    }
    let mut rows = Vec::new();
    let mut failed = 0;
    for (target, finding, from_report) in findings {
        let (result, detail, moved, outbox) = match finding {
            Finding::State(state) => {
                let change = if args.dry_run {
                    store_confirm::reconcile_decision(&conn, &state)?
                        .and_then(|(s, d)| d.applied_outcome().map(|o| (s.outcome, o)))
                        .map(|m| (m, None))
                } else {
                    let r = store_confirm::reconcile_now(&mut conn, &state)?;
                    r.moved.map(|m| (m, r.outbox_id))
                };
                match change {
                    Some((m, outbox)) => (
                        if args.dry_run { "would_move" } else { "moved" },
                        state.summary,
                        Some(m),
                        outbox,
                    ),
                    None => ("unchanged", state.summary, None, None),
                }
            }
            Finding::Unknown(why) => ("unknown", why, None, None),
            Finding::Error(e) => {
                failed += 1;
                ("error", e, None, None)
            }
        };
        // A report decision about an order ipnsync does not know, or
        // already has: not worth a line.
        if from_report && result == "unchanged" {
            continue;
        }
        rows.push((target, result, detail, moved, outbox));
    }
    emit(&if args.json {
        let items: Vec<Value> = rows
            .iter()
            .map(|(t, result, detail, moved, outbox)| {
                json!({
                    "shop": t.shop, "order": t.order_ref, "source": t.source,
                    "outcome": t.outcome.map(Outcome::as_str),
                    "result": result, "gateway": detail,
                    "new_outcome": moved.map(|(_, to)| to.as_str()),
                    "outbox_id": outbox,
                })
            })
            .collect();
        json_document(&Value::Array(items))
    } else if rows.is_empty() {
        "no orders to reconcile\n".to_owned()
    } else {
        let mut out = String::new();
        for (t, result, detail, moved, outbox) in &rows {
            let order = format!("{} {}", shop_label(&t.shop), t.order_ref);
            let line = match (result, moved) {
                (_, Some((from, to))) => format!(
                    "{order}: {} {} → {}{} ({detail})",
                    if args.dry_run { "would move" } else { "moved" },
                    from.map_or("new", Outcome::as_str),
                    to.as_str(),
                    outbox.map_or(String::new(), |id| format!(", update #{id}")),
                ),
                _ => format!("{order}: {result} ({detail})"),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    })?;
    if failed > 0 && failed == rows.len() {
        return Err(CliError::Remote(
            "no gateway answered (see the lines above)".into(),
        ));
    }
    Ok(())
}
