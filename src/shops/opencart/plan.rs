//! What to send for one update, decided before any history call (pure):
//! the history entries, whether an earlier attempt already applied the
//! update, and the amount check.
//!
//! - **Customer text apart.** When the customer is to be notified, the
//!   notifying entry carries only the update's customer text; the
//!   operator's comment (rule, transaction, card mask, marker) goes in a
//!   second entry with `notify=0`, whose comment OpenCart shows to nobody
//!   but the admin (the account page prints a history comment only when
//!   its `notify` is set).
//! - **At most one notification per update.** After an attempt whose
//!   result is unknown, 3.0 reads the order (`api/order/info`): if it
//!   already shows the update's status, and that status tells this update
//!   apart from the order's previous state, nothing is sent again. When
//!   the status cannot tell (same status as before, a comment only) or the
//!   shop cannot be read (4.x has no order read in its API), the update is
//!   re-sent with `notify=0`, and the attempt detail says so.
//! - **Amount check** (3.0, before a push that marks the order paid): the
//!   notification's amount against the order's total in the order's
//!   currency; a mismatch sets the shop's review status instead, with a
//!   comment that shows both figures.

use std::collections::BTreeMap;

use super::super::{PushError, Pushed, ShopUpdate};
use crate::config::ShopStatus;
use crate::domain::money::{check_amount, AmountCheck};
use crate::domain::Outcome;

/// The history row to add, formatted for the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct History {
    pub(super) order_id: String,
    pub(super) status_id: String,
    pub(super) comment: String,
    pub(super) notify: &'static str,
}

impl History {
    /// The POST fields, all of them always: OpenCart defaults a missing
    /// field to `''`, which would set status 0. `override=0` keeps the
    /// shop's fraud checks on.
    pub(super) fn fields(&self, dialect: super::Dialect) -> Vec<(&'static str, &str)> {
        match dialect {
            super::Dialect::V30 => vec![
                ("order_status_id", &self.status_id),
                ("notify", self.notify),
                ("override", "0"),
                ("comment", &self.comment),
            ],
            super::Dialect::V402 | super::Dialect::V41 => vec![
                ("order_id", &self.order_id),
                ("order_status_id", &self.status_id),
                ("comment", &self.comment),
                ("notify", self.notify),
                ("override", "0"),
            ],
        }
    }
}

/// The order as `api/order/info` (3.0) shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct OrderInfo {
    pub(super) status_id: u32,
    /// The total in the order's own currency (`total × currency_value`).
    pub(super) total: String,
    pub(super) currency: String,
}

/// The shop settings a plan needs.
pub(super) struct Rules<'a> {
    pub(super) statuses: &'a BTreeMap<Outcome, ShopStatus>,
    /// `None`: the amount check is off for this shop.
    pub(super) tolerance: Option<u32>,
}

impl Rules<'_> {
    /// Whether the push must read the order first (3.0 only): a comment
    /// only keeps the status the order has now, whatever the merchant set.
    pub(super) fn needs_order(&self, update: &ShopUpdate) -> bool {
        update.earlier_attempt_unknown || self.checks_amount(update) || update.is_comment_only()
    }

    fn checks_amount(&self, update: &ShopUpdate) -> bool {
        update.amount_to_check().is_some() && self.tolerance.is_some()
    }

    fn status_id(&self, outcome: Outcome) -> Option<u32> {
        match self.statuses.get(&outcome)? {
            ShopStatus::Id(id) => Some(*id),
            ShopStatus::Code(_) => None,
        }
    }
}

/// What to do for one update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Plan {
    /// An earlier attempt applied it: send nothing.
    AlreadyApplied(Pushed),
    Send {
        entries: Vec<History>,
        /// Said in the attempt detail after the shop's answer.
        notes: Vec<String>,
        applied_outcome: Option<Outcome>,
        needs_operator: Option<String>,
    },
}

/// Decides the plan. `order` is the order as the shop shows it right now,
/// when the dialect can read it and the update needs it.
pub(super) fn plan(
    update: &ShopUpdate,
    rules: &Rules<'_>,
    order: Option<&OrderInfo>,
) -> Result<Plan, PushError> {
    let mut target = match &update.status {
        ShopStatus::Id(id) => *id,
        ShopStatus::Code(code) => {
            return Err(PushError::permanent(format!(
            "OpenCart needs a numeric order_status_id, but the shop's status table gives {code:?}"
        )))
        }
    };
    // OpenCart casts the id to int: a non-numeric order would become
    // order 0 ("not found").
    let order_id: u64 = update.order_ref.trim().parse().map_err(|_| {
        PushError::permanent(format!(
            "OpenCart order ids are numbers, got {:?}",
            update.order_ref
        ))
    })?;
    // A comment only changes no status: OpenCart's history call always
    // sets one, so send the one the order shows now (3.0). 4.x cannot read
    // the order: the status of the order's outcome is the best guess.
    if let (true, Some(order)) = (update.is_comment_only(), order) {
        target = order.status_id;
    }
    let mut notes = Vec::new();
    let mut amount_problem = None;
    if rules.checks_amount(update) {
        match (order, update.amount_to_check()) {
            (Some(order), Some(paid)) => {
                let tolerance = rules.tolerance.unwrap_or(0);
                match check_amount(paid, &order.total, &order.currency, tolerance) {
                    AmountCheck::Matches => {}
                    AmountCheck::Mismatch(text) | AmountCheck::Unreadable(text) => {
                        amount_problem = Some(text)
                    }
                }
            }
            _ => notes.push("amount not checked: this OpenCart exposes no order to read".into()),
        }
    }
    let mut operator_comment = update.comment.clone();
    let mut applied_outcome = None;
    let mut needs_operator = None;
    if let Some(problem) = &amount_problem {
        let review = rules.status_id(Outcome::Review).ok_or_else(|| {
            PushError::permanent("the shop's review status is not an order_status_id")
        })?;
        target = review;
        applied_outcome = Some(Outcome::Review);
        let action = format!(
            "Amount check: {problem}. The order was put in review instead of being marked paid: compare the payment in the platform's back office with the order, then validate or deny it (ipnsync review)."
        );
        operator_comment = if operator_comment.trim().is_empty() {
            action
        } else {
            format!("{operator_comment}\n{action}")
        };
        needs_operator = Some(format!(
            "amount check: {problem}; the order is in review, not paid"
        ));
    }
    // A mismatch tells the customer nothing: a person decides first.
    let mut notify = update.notify && amount_problem.is_none();
    if update.earlier_attempt_unknown {
        let previous = rules.status_id(update.previous_outcome.unwrap_or(Outcome::Pending));
        let tells_apart = !update.is_comment_only() && previous != Some(target);
        match order {
            Some(order) if tells_apart && order.status_id == target => {
                let mut detail = format!(
                    "already applied by an earlier attempt (the order shows order_status_id {target}); nothing sent again"
                );
                if let Some(problem) = &amount_problem {
                    detail.push_str(&format!("; amount check: {problem}"));
                }
                return Ok(Plan::AlreadyApplied(Pushed {
                    detail,
                    needs_operator,
                    applied_outcome,
                }));
            }
            Some(_) if tells_apart => {}
            Some(_) => {
                if notify {
                    notes.push("re-sent without notifying the customer: an earlier attempt may have reached the shop, and the order's status cannot tell".into());
                }
                notify = false;
            }
            None => {
                if notify {
                    notes.push("re-sent without notifying the customer: an earlier attempt may have reached the shop, and OpenCart 4 cannot tell".into());
                }
                notify = false;
            }
        }
    }
    let entry = |comment: String, notify: bool| History {
        order_id: order_id.to_string(),
        status_id: target.to_string(),
        comment,
        notify: if notify { "1" } else { "0" },
    };
    let mut entries = Vec::new();
    if notify {
        entries.push(entry(update.customer_text.trim().to_owned(), true));
    }
    entries.push(entry(
        comment_with_marker(&operator_comment, update.outbox_id),
        false,
    ));
    Ok(Plan::Send {
        entries,
        notes,
        applied_outcome,
        needs_operator,
    })
}

/// The operator's history comment: the decision's text, then a marker line
/// `[ipnsync update #<outbox_id>]`.
///
/// Delivery is at least once (a crash after the shop applied an update but
/// before the outbox row was marked done sends it again) and OpenCart has
/// no idempotency check (each call adds a history row): the marker makes
/// such a duplicate recognisable. OpenCart stores the comment HTML-escaped
/// and trimmed. Never in the customer's entry.
pub(super) fn comment_with_marker(comment: &str, outbox_id: i64) -> String {
    let marker = format!("[ipnsync update #{outbox_id}]");
    if comment.trim().is_empty() {
        marker
    } else {
        format!("{comment}\n{marker}")
    }
}

/// `total × currency_value`, exactly, as decimal text: OpenCart stores an
/// order's total in the store's default currency and the rate to the
/// order's currency beside it (the customer paid `total × rate`).
pub(super) fn scaled_total(total: &str, rate: &str) -> Option<String> {
    let (t, t_scale) = parse_decimal(total)?;
    let (r, r_scale) = parse_decimal(rate)?;
    let product = t.checked_mul(r)?;
    let scale = t_scale + r_scale;
    let negative = product < 0;
    let digits = format!("{:0>width$}", product.unsigned_abs(), width = scale + 1);
    let (int, frac) = digits.split_at(digits.len() - scale);
    let sign = if negative { "-" } else { "" };
    Some(if frac.is_empty() {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    })
}

/// `"101.0000"` → (1010000, 4). At most 18 digits each side.
fn parse_decimal(text: &str) -> Option<(i128, usize)> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let valid = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !valid(int) || !valid(frac) || int.len() > 18 || frac.len() > 18 {
        return None;
    }
    let value: i128 = format!("{int}{frac}").parse().ok()?;
    Some((if negative { -value } else { value }, frac.len()))
}
