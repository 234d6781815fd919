//! Operator write actions: `retry`, `replay`, `prune`.
//!
//! Each opens its own connection (the database must exist) and changes it
//! in short `BEGIN IMMEDIATE` transactions (see `store::operator`), so it is
//! safe while the daemon runs; the daemon's dispatcher notices new pending
//! outbox rows within its poll interval.

use std::time::Duration;

use clap::Args;
use serde_json::{json, Value};

use super::table::Table;
use super::{emit, json_document, shop_label, CliError};
use crate::config::parse_duration;
use crate::store::now_ms;
use crate::store::operator::{self, Replay};
use crate::store::read::{self, orders::StoredDecision};

#[derive(Debug, Clone, Args)]
pub struct RetryArgs {
    /// Outbox row ids to put back in the queue (see `ipnsync outbox --dead`).
    #[arg(required_unless_present = "all_dead", conflicts_with = "all_dead")]
    pub ids: Vec<i64>,
    /// Every dead row.
    #[arg(long)]
    pub all_dead: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ReplayArgs {
    /// The event (stored notification) to decide again.
    pub event_id: i64,
    /// Show the old and the new decision; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Apply even if a later notification of the order was applied since
    /// (the order moves back and the shop is told again).
    #[arg(long)]
    pub force: bool,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct PruneArgs {
    /// Clear raw bodies of deliveries received longer ago than this
    /// (e.g. 90d, 12h).
    #[arg(long, value_parser = parse_age)]
    pub older_than: Duration,
    /// Only count what would be cleared.
    #[arg(long)]
    pub dry_run: bool,
}

fn parse_age(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

// ------------------------------------------------------------------- retry

/// `ipnsync retry ID… | --all-dead`.
pub fn retry(db: &crate::store::Database, args: &RetryArgs) -> Result<(), CliError> {
    let mut conn = operator::open_operator(db)?;
    let ids = (!args.all_dead).then_some(args.ids.as_slice());
    let changed = operator::retry(&mut conn, ids)?;
    if changed == 0 {
        return Err(CliError::NothingToDo(if args.all_dead {
            "no dead outbox rows".to_owned()
        } else {
            "none of the given outbox rows is dead".to_owned()
        }));
    }
    emit(&format!(
        "{changed} outbox row(s) back to pending; the daemon picks them up within its poll interval\n"
    ))
}

// ------------------------------------------------------------------ replay

/// `ipnsync replay EVENT_ID`.
pub fn replay(db: &crate::store::Database, args: &ReplayArgs) -> Result<(), CliError> {
    let mut conn = if args.dry_run {
        read::open_read(db)?
    } else {
        operator::open_operator(db)?
    };
    let r = operator::replay(&mut conn, args.event_id, args.dry_run, args.force)?
        .ok_or_else(|| CliError::NotFound(format!("event {} is unknown", args.event_id)))?;
    if let Some(why) = &r.refused {
        return Err(CliError::NothingToDo(format!("replay refused: {why}")));
    }
    emit(&if args.json {
        json_document(&replay_json(&r))
    } else {
        replay_text(&r)
    })
}

fn decision_json(d: &StoredDecision) -> Value {
    json!({
        "assessed": d.assessed,
        "verdict": d.verdict,
        "outcome": d.outcome,
        "reason": d.reason,
        "comment": d.comment,
    })
}

fn replay_json(r: &Replay) -> Value {
    json!({
        "event_id": r.event_id,
        "shop": r.shop,
        "order": r.order_ref,
        "dry_run": r.dry_run,
        "current_outcome": r.current.map(|o| o.as_str()),
        "before": decision_json(&r.before),
        "after": decision_json(&r.after),
        "order_change": r.order_change.map(|to| json!({
            "from": r.current.map(|o| o.as_str()),
            "to": to.as_str(),
        })),
        "shop_update": r.shop_update,
        "outbox_id": r.outbox_id,
    })
}

fn replay_text(r: &Replay) -> String {
    let current = r.current.map_or("none", |o| o.as_str());
    let mut out = format!(
        "event {} (order {}, shop {}) decided again against the order's current outcome: {current}\n\n",
        r.event_id,
        r.order_ref,
        shop_label(&r.shop)
    );
    let (b, a) = (&r.before, &r.after);
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".to_owned());
    let mut t = Table::new(["", "BEFORE", "AFTER"]);
    t.row(["assessed", &b.assessed, &a.assessed])
        .row(["verdict", &b.verdict, &a.verdict])
        .row(["outcome", &opt(&b.outcome), &opt(&a.outcome)])
        .row(["reason", &opt(&b.reason), &opt(&a.reason)]);
    out.push_str(&t.render());
    // Comments are long: on their own lines, so they do not widen the table.
    out.push_str(&format!(
        "\ncomment before: “{}”\ncomment after:  “{}”\n\n",
        b.comment, a.comment
    ));
    let (order_verb, update_verb) = if r.dry_run {
        ("would move", "would be queued")
    } else {
        ("moved", "queued")
    };
    match r.order_change {
        Some(to) => out.push_str(&format!("order {order_verb} {current} → {to}")),
        None => out.push_str("order unchanged"),
    }
    match (r.shop_update, r.outbox_id) {
        (true, Some(id)) => out.push_str(&format!("; shop update #{id} {update_verb}")),
        (true, None) => out.push_str(&format!("; a shop update {update_verb}")),
        (false, _) if r.order_change.is_some() => out.push_str(" (no shop configured for it)"),
        (false, _) => {}
    }
    out.push('\n');
    if r.dry_run {
        out.push_str("dry run: nothing was changed\n");
    }
    out
}

// ------------------------------------------------------------------- prune

/// `ipnsync prune --older-than D`.
pub fn prune(db: &crate::store::Database, args: &PruneArgs) -> Result<(), CliError> {
    let age = i64::try_from(args.older_than.as_millis())
        .map_err(|_| CliError::Usage("--older-than is too large".to_owned()))?;
    let cutoff = now_ms().saturating_sub(age);
    let mut conn = if args.dry_run {
        read::open_read(db)?
    } else {
        operator::open_operator(db)?
    };
    let n = operator::prune_bodies(&mut conn, cutoff, args.dry_run)?;
    emit(&if args.dry_run {
        format!("{n} delivery body(ies) would be cleared (dry run)\n")
    } else {
        format!("{n} delivery body(ies) cleared\n")
    })
}
