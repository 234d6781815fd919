//! Read-only commands: `orders`, `show ORDER`, `outbox`.
//!
//! Each opens the database read-only (it must exist), asks
//! `store::read` / `store::queries`, and renders a table or one JSON
//! document. Times are Unix milliseconds in JSON, UTC text for humans.

use clap::Args;
use serde_json::{json, Value};

use super::table::{clip, utc, Table};
use super::{emit, json_document, shop_label, CliError};
use crate::domain::Outcome;
use crate::present::timeline::{items, Item, Style};
use crate::store::queries::{self, OutboxRow};
use crate::store::read::open_read;
use crate::store::read::orders::{self as store_orders, OrderFilter, OrderHistory, OrderSummary};

/// Longest error text a table cell shows; `--json` has the whole text.
const ERROR_WIDTH: usize = 80;

#[derive(Debug, Clone, Args)]
pub struct OrdersArgs {
    /// Only orders with this outcome (pending, review, suspected_fraud,
    /// accepted, rejected, failed, canceled, refunded).
    #[arg(long, value_parser = parse_outcome)]
    pub outcome: Option<Outcome>,
    /// Only this shop ("" for sources without a shop).
    #[arg(long)]
    pub shop: Option<String>,
    /// At most this many orders, most recently updated first.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ShowArgs {
    /// The shop's order reference (as the shop knows it, prefix stripped).
    pub order: String,
    /// The shop, when the same reference exists in several.
    #[arg(long)]
    pub shop: Option<String>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct OutboxArgs {
    /// Only rows that gave up (an operator must `retry` them).
    #[arg(long, conflicts_with = "pending")]
    pub dead: bool,
    /// Only rows still waiting to be delivered.
    #[arg(long)]
    pub pending: bool,
    /// At most this many rows, oldest first.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub fn parse_outcome(s: &str) -> Result<Outcome, String> {
    Outcome::parse(s).ok_or_else(|| {
        let all: Vec<&str> = Outcome::ALL.iter().map(|o| o.as_str()).collect();
        format!("unknown outcome {s:?} (expected one of {})", all.join(", "))
    })
}

// ------------------------------------------------------------------ orders

/// `ipnsync orders`.
pub fn orders(db: &crate::store::Database, args: &OrdersArgs) -> Result<(), CliError> {
    let conn = open_read(db)?;
    let filter = OrderFilter {
        outcome: args.outcome.map(Outcome::as_str),
        shop: args.shop.as_deref(),
        limit: args.limit,
    };
    let rows = store_orders::orders(&conn, &filter)?;
    emit(&if args.json {
        json_document(&Value::Array(rows.iter().map(order_json).collect()))
    } else {
        orders_table(&rows)
    })
}

fn order_json(o: &OrderSummary) -> Value {
    json!({
        "shop": o.shop,
        "order": o.order_ref,
        "outcome": o.outcome,
        "transaction_id": o.transaction_id,
        "event_id": o.event_id,
        "updated_at": o.updated_at,
        "pending": o.pending,
        "dead": o.dead,
    })
}

fn orders_table(rows: &[OrderSummary]) -> String {
    if rows.is_empty() {
        return "no orders\n".to_owned();
    }
    let mut t = Table::new([
        "SHOP",
        "ORDER",
        "OUTCOME",
        "TRANSACTION",
        "UPDATED (UTC)",
        "PENDING",
        "DEAD",
    ]);
    for o in rows {
        t.row([
            shop_label(&o.shop).to_owned(),
            o.order_ref.clone(),
            o.outcome.clone(),
            o.transaction_id.clone(),
            utc(o.updated_at),
            o.pending.to_string(),
            o.dead.to_string(),
        ]);
    }
    t.render()
}

// -------------------------------------------------------------------- show

/// `ipnsync show ORDER`: the order's whole story, oldest first.
pub fn show(db: &crate::store::Database, args: &ShowArgs) -> Result<(), CliError> {
    let conn = open_read(db)?;
    let shop = resolve_shop(&conn, &args.order, args.shop.as_deref())?;
    let history = store_orders::order_history(&conn, &shop, &args.order)?
        .ok_or_else(|| unknown_order(args))?;
    emit(&if args.json {
        json_document(&history_json(&history))
    } else {
        history_text(&history)
    })
}

fn unknown_order(args: &ShowArgs) -> CliError {
    match &args.shop {
        Some(shop) => CliError::NotFound(format!(
            "order {:?} of shop {:?} is unknown",
            args.order, shop
        )),
        None => CliError::NotFound(format!("order {:?} is unknown", args.order)),
    }
}

/// Without `--shop`, the order reference must name one shop's order.
fn resolve_shop(
    conn: &crate::store::read::Reader,
    order: &str,
    shop: Option<&str>,
) -> Result<String, CliError> {
    if let Some(shop) = shop {
        return Ok(shop.to_owned());
    }
    let mut shops = store_orders::shops_of_order(conn, order)?;
    match shops.len() {
        0 => Err(CliError::NotFound(format!("order {order:?} is unknown"))),
        1 => Ok(shops.remove(0)),
        _ => {
            let names: Vec<&str> = shops.iter().map(|s| shop_label(s)).collect();
            Err(CliError::Usage(format!(
                "order {order:?} exists in several shops ({}): pass --shop",
                names.join(", ")
            )))
        }
    }
}

/// How `ipnsync show` writes the shared timeline: table cells clip long
/// texts; the TIME column's header says UTC.
const SHOW: Style = Style {
    time_suffix: "",
    clip: Some(ERROR_WIDTH),
    update_notes: true,
};

/// The order's timeline; `show` reads no operator actions.
fn timeline(h: &OrderHistory) -> Vec<Item<'_>> {
    items(h, &[])
}

fn entry_json(item: &Item<'_>) -> Value {
    match item {
        Item::Delivery(d) => json!({
            "at": d.received_at,
            "kind": "delivery",
            "delivery_id": d.id,
            "event_id": d.event_id,
            "peer": d.peer,
            "duplicate": d.duplicate,
            "body_pruned": d.body_pruned,
        }),
        Item::Decision(e) => json!({
            "at": e.created_at,
            "kind": "decision",
            "event_id": e.id,
            "source": e.source,
            "status": e.status,
            "origin": e.origin,
            "transaction_id": e.transaction_id,
            "assessed": e.decision.assessed,
            "verdict": e.decision.verdict,
            "outcome": e.decision.outcome,
            "reason": e.decision.reason,
            "comment": e.decision.comment,
            "replayed_at": e.replayed_at,
        }),
        Item::Outbox(o) => json!({
            "at": o.created_at,
            "kind": "outbox",
            "outbox_id": o.id,
            "event_id": o.event_id,
            "previous_outcome": o.previous_outcome,
            "outcome": o.outcome,
            "state": o.state,
            "attempts": o.attempts,
            "next_attempt_at": o.next_attempt_at,
            "last_error": o.last_error,
            "needs_operator": o.needs_operator,
            "comment_only": o.comment_only,
            "delivered_at": o.delivered_at,
        }),
        Item::Push(a) => json!({
            "at": a.at,
            "kind": "push",
            "attempt_id": a.id,
            "outbox_id": a.outbox_id,
            "result": a.result,
            "detail": a.detail,
        }),
        Item::Review(r) => json!({
            "at": r.created_at,
            "kind": "review_action",
            "review_action_id": r.id,
            "action": r.action,
            "actor": r.actor,
            "comment": r.comment,
            "gateway": r.gateway,
            "gateway_status": r.gateway_status,
            "error": r.error,
            "outcome": r.outcome,
            "outbox_id": r.outbox_id,
            "state": r.state,
            "expires_at": r.expires_at,
        }),
        Item::Operator(a) => json!({
            "at": a.created_at,
            "kind": "operator_action",
            "operator_action_id": a.id,
            "action": a.action,
            "actor": a.actor,
            "outbox_id": a.outbox_id,
        }),
    }
}

fn history_json(h: &OrderHistory) -> Value {
    let current = h.current.as_ref();
    json!({
        "shop": h.shop,
        "order": h.order_ref,
        "outcome": current.map(|c| c.outcome.as_str()),
        "transaction_id": current.map(|c| c.transaction_id.as_str()),
        "updated_at": current.map(|c| c.updated_at),
        "pending": h.outbox.iter().filter(|o| o.state == "pending").count(),
        "dead": h.outbox.iter().filter(|o| o.state == "dead").count(),
        "timeline": timeline(h).iter().map(entry_json).collect::<Vec<_>>(),
    })
}

fn history_text(h: &OrderHistory) -> String {
    let mut head = Table::default();
    match &h.current {
        Some(c) => {
            head.row(["outcome", c.outcome.as_str()])
                .row(["transaction", c.transaction_id.as_str()])
                .row(["updated", &format!("{} UTC", utc(c.updated_at))]);
        }
        None => {
            head.row(["outcome", "none (no notification was applied)"]);
        }
    }
    let pending = h.outbox.iter().filter(|o| o.state == "pending").count();
    let dead = h.outbox.iter().filter(|o| o.state == "dead").count();
    head.row(["outbox", &format!("{pending} pending, {dead} dead")]);

    let mut t = Table::new(["TIME (UTC)", "WHAT", "DETAIL"]);
    let now = crate::store::now_ms();
    for item in timeline(h) {
        t.row([
            utc(item.at()),
            item.kind().to_owned(),
            item.text(&SHOW, now),
        ]);
        let more = item.more().map(|m| format!("“{m}”"));
        // A multi-line comment gets one row per line, so that every
        // line starts in the DETAIL column.
        for line in more.iter().flat_map(|m| m.lines()) {
            t.row([String::new(), String::new(), line.to_owned()]);
        }
    }
    let mut out = format!("order {}, shop {}\n", h.order_ref, shop_label(&h.shop));
    for line in head.render().lines() {
        out.push_str(&format!("  {line}\n"));
    }
    out.push('\n');
    out.push_str(&t.render());
    out
}

// ------------------------------------------------------------------ outbox

/// `ipnsync outbox`.
pub fn outbox(db: &crate::store::Database, args: &OutboxArgs) -> Result<(), CliError> {
    let conn = open_read(db)?;
    let state = if args.dead {
        Some("dead")
    } else if args.pending {
        Some("pending")
    } else {
        None
    };
    let rows = queries::outbox_rows(&conn, state, args.limit)?;
    emit(&if args.json {
        json_document(&Value::Array(rows.iter().map(outbox_json).collect()))
    } else {
        outbox_table(&rows)
    })
}

fn outbox_json(r: &OutboxRow) -> Value {
    json!({
        "id": r.id,
        "shop": r.shop,
        "order": r.order_ref,
        "outcome": r.outcome,
        "state": r.state,
        "attempts": r.attempts,
        "next_attempt_at": r.next_attempt_at,
        "last_error": r.last_error,
        "needs_operator": r.needs_operator,
        "comment_only": r.comment_only,
    })
}

fn outbox_table(rows: &[OutboxRow]) -> String {
    if rows.is_empty() {
        return "no outbox rows\n".to_owned();
    }
    let mut t = Table::new([
        "ID",
        "SHOP",
        "ORDER",
        "OUTCOME",
        "STATE",
        "ATTEMPTS",
        "NEXT ATTEMPT (UTC)",
        "LAST ERROR / NEEDS OPERATOR",
    ]);
    for r in rows {
        // Only a pending row has a meaningful next attempt.
        let next = if r.state == "pending" {
            utc(r.next_attempt_at)
        } else {
            "-".to_owned()
        };
        t.row([
            r.id.to_string(),
            shop_label(&r.shop).to_owned(),
            r.order_ref.clone(),
            r.outcome.clone(),
            r.state.clone(),
            r.attempts.to_string(),
            next,
            match (&r.last_error, &r.needs_operator) {
                (Some(e), _) => clip(e, ERROR_WIDTH),
                (None, Some(n)) => format!("needs operator: {}", clip(n, ERROR_WIDTH)),
                (None, None) => String::new(),
            },
        ]);
    }
    t.render()
}
