//! `ipnsync review list | validate ORDER | deny ORDER`.
//!
//! `list` reads the database like the other listings. `validate` and
//! `deny` call the same service as the admin API (`crate::review::act`):
//! they need the configuration for the gateway credentials (`--config`;
//! `--db` then only replaces its database path) and write with one short
//! `BEGIN IMMEDIATE` transaction, so they are safe while the daemon runs.

use std::path::Path;
use std::sync::Arc;

use clap::{Args, Subcommand};

use super::table::{utc, Table};
use super::{database_path, emit, json_document, load_config, shop_label, CliError};
use crate::domain::comment::format_amount;
use crate::review::expiry::{authorisation_expires_at, human_duration, time_left};
use crate::review::{self, Action, ActionReport, ReviewContext, ReviewError, ReviewRequest};
use crate::store::now_ms;
use crate::store::read::review_queue::ReviewItem;

#[derive(Debug, Clone, Args)]
pub struct ReviewArgs {
    #[command(subcommand)]
    pub command: ReviewCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum ReviewCommand {
    /// Orders in review or suspected_fraud, the longest waiting first, with
    /// the time left before the authorisation expires where known.
    List(ListArgs),
    /// Validate the payment at the gateway, then move the order to accepted
    /// and queue the shop update.
    Validate(ValidateArgs),
    /// Deny (cancel) the payment at the gateway, then move the order to
    /// canceled and queue the shop update.
    Deny(DenyArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Only this shop ("" for sources without a shop).
    #[arg(long)]
    pub shop: Option<String>,
    /// One JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ActionArgs {
    /// The shop's order reference.
    pub order: String,
    /// The shop, when the same reference exists in several.
    #[arg(long)]
    pub shop: Option<String>,
    /// Why (recorded, sent to the gateway and shown in the shop).
    #[arg(long)]
    pub comment: Option<String>,
    /// Update the shop only, without asking the gateway (done in its back
    /// office, or its web services are not subscribed).
    #[arg(long)]
    pub shop_only: bool,
    /// Who acts (default: $SUDO_USER, else $USER).
    #[arg(long)]
    pub actor: Option<String>,
    /// One JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub common: ActionArgs,
    /// Cybersource: capture along with ACCEPT.
    #[arg(long)]
    pub capture: bool,
}

#[derive(Debug, Clone, Args)]
pub struct DenyArgs {
    #[command(flatten)]
    pub common: ActionArgs,
    /// Cybersource: reverse the authorisation along with REJECT.
    #[arg(long)]
    pub reverse: bool,
}

/// `ipnsync review …`.
pub fn run(config: Option<&Path>, db: Option<&Path>, args: &ReviewArgs) -> Result<(), CliError> {
    match &args.command {
        ReviewCommand::List(list) => list_orders(&database_path(config, db)?, list),
        ReviewCommand::Validate(v) => {
            act(config, db, Action::Validate, &v.common, v.capture, false)
        }
        ReviewCommand::Deny(d) => act(config, db, Action::Deny, &d.common, false, d.reverse),
    }
}

// -------------------------------------------------------------------- list

fn list_orders(db: &crate::store::Database, args: &ListArgs) -> Result<(), CliError> {
    let conn = crate::store::read::open_read(db)?;
    let items = crate::store::read::review_queue::review_queue(&conn, args.shop.as_deref())?;
    let now = now_ms();
    emit(&if args.json {
        json_document(&review::queue_json(&items, now))
    } else {
        queue_table(&items, now)
    })
}

fn queue_table(items: &[ReviewItem], now: i64) -> String {
    if items.is_empty() {
        return "no orders waiting for review\n".to_owned();
    }
    let mut t = Table::new([
        "SHOP",
        "ORDER",
        "OUTCOME",
        "TO DO",
        "AMOUNT",
        "SOURCE",
        "SINCE (UTC)",
        "WAITING",
        "AUTH EXPIRES IN",
    ]);
    for i in items {
        t.row([
            shop_label(&i.shop).to_owned(),
            i.order_ref.clone(),
            i.outcome.as_str().to_owned(),
            i.action_needed.to_owned(),
            i.amount_minor
                .map_or_else(|| "-".to_owned(), |m| format_amount(m, &i.currency)),
            i.source.clone(),
            utc(i.since),
            human_duration(now - i.since),
            time_left(authorisation_expires_at(i), now),
        ]);
    }
    let mut out = t.render();
    out.push_str(
        "\nAuthorisation expiry: Lyra CB/Visa/Mastercard payments, 7 days after the transaction was first notified; unknown otherwise.\n",
    );
    if items
        .iter()
        .any(|i| i.action_needed == crate::store::read::review_queue::CANCEL_AT_GATEWAY)
    {
        out.push_str(
            "\"cancel at the gateway\": the risk verdict rejected the order but the transaction is still alive at the gateway, which captures it unless it is cancelled: run `ipnsync review deny ORDER` (or cancel it in the gateway's back office).\n",
        );
    }
    out
}

// ------------------------------------------------------------ validate/deny

fn act(
    config: Option<&Path>,
    db: Option<&Path>,
    action: Action,
    args: &ActionArgs,
    capture: bool,
    reverse: bool,
) -> Result<(), CliError> {
    let config = load_config(config)?;
    let db = match db {
        Some(_) => super::database_path(None, db)?,
        None => config.database.clone(),
    };
    let ctx = ReviewContext {
        config: Arc::new(config),
        db,
    };
    let request = ReviewRequest {
        action,
        order_ref: args.order.clone(),
        shop: args.shop.clone(),
        actor: args.actor.clone().unwrap_or_else(default_actor),
        comment: args.comment.clone(),
        shop_only: args.shop_only,
        capture,
        reverse,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CliError::Output)?;
    let report = runtime
        .block_on(review::act(&ctx, request))
        .map_err(cli_error)?;
    emit(&if args.json {
        json_document(&review::report_json(&report))
    } else {
        report_text(&report)
    })
}

/// The operator's login: under `sudo`, the person rather than root.
fn default_actor() -> String {
    ["SUDO_USER", "USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .unwrap_or_else(|| "unknown".to_owned())
}

fn cli_error(e: ReviewError) -> CliError {
    match e {
        ReviewError::Store(s) => CliError::Store(s),
        ReviewError::UnknownOrder(_) => CliError::NotFound(e.to_string()),
        ReviewError::NotInReview { .. } | ReviewError::InProgress { .. } => {
            CliError::NothingToDo(e.to_string())
        }
        ReviewError::ActedNotRecorded { .. } => CliError::DoneNotRecorded(e.to_string()),
        ReviewError::BadRequest(_)
        | ReviewError::AmbiguousOrder { .. }
        | ReviewError::NotConfigured(_) => CliError::Usage(e.to_string()),
        ReviewError::NotSubscribed { .. }
        | ReviewError::NoDecisionId { .. }
        | ReviewError::Refused { .. }
        | ReviewError::Unreachable { .. }
        | ReviewError::Internal(_) => CliError::Remote(e.to_string()),
    }
}

fn report_text(r: &ActionReport) -> String {
    let mut out = format!(
        "order {} (shop {}): {}",
        r.order_ref,
        shop_label(&r.shop),
        r.action.as_str()
    );
    if r.gateway == "none" {
        out.push_str(" in the shop only\n");
    } else {
        let done: Vec<String> = r
            .transactions
            .iter()
            .zip(&r.gateway_status)
            .map(|(t, s)| format!("{t} → {s}"))
            .collect();
        out.push_str(&format!(" at {}: {}\n", r.gateway, done.join(", ")));
    }
    match (r.moved, r.outcome) {
        (true, Some(o)) => out.push_str(&format!("order moved {} → {o}", r.previous_outcome)),
        _ => out.push_str("order unchanged"),
    }
    match r.outbox_id {
        Some(id) => out.push_str(&format!("; shop update #{id} queued\n")),
        None if r.moved => out.push_str(" (no shop configured for it)\n"),
        None => out.push('\n'),
    }
    if let Some(note) = &r.note {
        out.push_str(&format!("note: {note}\n"));
    }
    out
}
