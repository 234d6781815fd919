//! What ipnsync does to an OpenMage / Magento 2 order for an outcome,
//! decided from the order as the shop reports it *now* (shops.md A.8):
//! its state, status, invoiced / paid / refunded totals, hold and history.
//!
//! Both shops keep a *state* apart from the status label, and their APIs
//! write any status on any state. So the push reads the order, applies at
//! most one state-changing operation (invoice, credit memo, hold, unhold,
//! cancel), reads it again, and decides again until nothing is left to do;
//! then it writes a status that belongs to the state the order is in, or
//! keeps the current one. What it cannot do (an invoiced order to cancel, a
//! merchant's hold, a payment on a cancelled order) becomes "needs an
//! operator": a person must finish, and the comment says what to do.
//!
//! The table lives in docs/decisions.md ("OpenMage and Magento 2: state,
//! outcome → operation"); `decide` is its code, and its tests walk every
//! (state, outcome) pair through a model of the shop to check that every
//! status written belongs to the order's state at that point.

use crate::config::OrderRules;
use crate::domain::comment::find_currency;
use crate::domain::money::{decimal_to_minor_rounded, Money};
use crate::domain::Outcome;

/// The line ipnsync adds to its comment when the order stays on hold
/// because of ipnsync (a review): it tells ipnsync's hold from the
/// merchant's, which ipnsync never releases.
pub(crate) const HOLD_TAG: &str = "ipnsync put the order on hold.";
/// Prefix of the comment line that says what a person must do.
pub(crate) const OPERATOR_TAG: &str = "Needs an operator: ";
/// Prefix of the comment line of a failed amount check.
pub(crate) const AMOUNT_TAG: &str = "Amount check failed: ";

/// The marker that makes an update recognisable in the order's history.
pub(crate) fn marker(outbox_id: i64) -> String {
    format!("[ipnsync update #{outbox_id}]")
}

/// One status-history row, as the shop reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HistoryEntry {
    /// The row's id: rows are ordered by it, newest last.
    pub id: i64,
    pub status: String,
    pub comment: String,
    pub notified: bool,
}

/// The order as the shop reports it. Amounts are in ten-thousandths (the
/// shops store 4 decimals), 0 when the shop reports none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct OrderView {
    pub state: String,
    pub status: String,
    /// `grand_total` and `order_currency_code` as the shop wrote them, for
    /// the amount check.
    pub grand_total: String,
    pub currency: String,
    pub grand: i64,
    pub invoiced: i64,
    pub paid: i64,
    pub refunded: i64,
    pub history: Vec<HistoryEntry>,
}

/// `"101.5000"` → 1015000.
pub(crate) fn ten_thousandths(text: &str) -> Option<i64> {
    decimal_to_minor_rounded(text, 4)
}

impl OrderView {
    /// Something is left to invoice.
    fn to_invoice(&self) -> bool {
        self.invoiced < self.grand
    }

    /// Paid and not yet refunded.
    fn refundable(&self) -> i64 {
        self.paid - self.refunded
    }

    fn newest_marker_row(&self) -> Option<&HistoryEntry> {
        self.history
            .iter()
            .filter(|h| h.comment.contains("[ipnsync update #"))
            .max_by_key(|h| h.id)
    }

    /// The history row that carries this update's marker: it was delivered.
    pub(crate) fn delivered(&self, outbox_id: i64) -> Option<&HistoryEntry> {
        let marker = marker(outbox_id);
        self.history.iter().find(|h| h.comment.contains(&marker))
    }

    /// The order is on hold because ipnsync held it: ipnsync's newest
    /// comment says so, the status is still the one it wrote, and nobody
    /// changed the order since (OpenMage writes an empty row for every
    /// hold, unhold or state change; a merchant's plain comment with the
    /// same status is fine). A merchant's hold — or a merchant who
    /// released and held it again, or relabelled it (Magento 2 writes no
    /// rows) — is never ipnsync's to release.
    pub(crate) fn held_by_ipnsync(&self) -> bool {
        if self.state != "holded" {
            return false;
        }
        let Some(ours) = self.newest_marker_row() else {
            return false;
        };
        ours.comment.contains(HOLD_TAG)
            && ours.status == self.status
            && self
                .history
                .iter()
                .filter(|h| h.id > ours.id)
                .all(|h| !h.comment.is_empty() && h.status == ours.status)
    }

    /// A customer entry with exactly `text` was written after ipnsync's
    /// newest marker: an earlier attempt of this update got that far.
    pub(crate) fn has_customer_entry_since_last_marker(&self, text: &str) -> bool {
        let since = self.newest_marker_row().map_or(i64::MIN, |h| h.id);
        self.history
            .iter()
            .any(|h| h.id > since && h.notified && h.comment == text)
    }

    /// The payment facts of ipnsync's newest comment about another
    /// transaction than `except` (its `Transaction …` line, else its first
    /// line): the earlier transaction, for a payment that arrives on a
    /// cancelled order.
    pub(crate) fn earlier_transaction(&self, except: &str) -> Option<String> {
        let row = self
            .history
            .iter()
            .filter(|h| h.comment.contains("[ipnsync update #"))
            .filter(|h| except.is_empty() || !h.comment.contains(except))
            .max_by_key(|h| h.id)?;
        let first = row.comment.lines().next().unwrap_or_default();
        Some(
            match row.comment.lines().find(|l| l.starts_with("Transaction")) {
                Some(t) => format!("{} — {t}", first.trim_end_matches('.')),
                None => first.to_owned(),
            },
        )
    }
}

/// A state-changing operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Hold,
    Unhold,
    Cancel,
    /// An invoice for what is left to invoice, captured offline.
    Invoice,
    /// A credit memo for what is paid, refunded offline.
    CreditMemo,
}

impl Op {
    pub(crate) fn verb(self) -> &'static str {
        match self {
            Op::Hold => "hold",
            Op::Unhold => "unhold",
            Op::Cancel => "cancel",
            Op::Invoice => "invoice",
            Op::CreditMemo => "create a credit memo for",
        }
    }

    pub(crate) fn done(self) -> &'static str {
        match self {
            Op::Hold => "held",
            Op::Unhold => "released from hold",
            Op::Cancel => "canceled",
            Op::Invoice => "invoiced (offline capture)",
            Op::CreditMemo => "credit memo created (offline refund)",
        }
    }
}

/// Which status the final comment writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusChoice {
    /// The status configured for the outcome, if it belongs to the state.
    Configured,
    /// The order's current status (no relabelling).
    Keep,
}

/// The next step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    Apply(Op),
    Finish {
        status: StatusChoice,
        needs_operator: Option<String>,
    },
}

/// A refund against what the order has paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RefundSize {
    /// All of it (or the notification named no amount).
    Full,
    /// Less than what is paid, or in another currency: the text says so.
    Partial(String),
}

/// What `decide` needs besides the order and the outcome.
pub(crate) struct Ctx<'a> {
    pub rules: &'a OrderRules,
    /// Operations already applied in this push (each is applied once).
    pub done: &'a [Op],
    /// ipnsync held the order before this push started.
    pub held_by_ipnsync: bool,
    pub refund: RefundSize,
    /// "lyra transaction tx1 (CAPTURED)", for operator texts.
    pub this_payment: String,
    /// This update's transaction id (to find the earlier one).
    pub transaction_id: String,
}

fn finish(status: StatusChoice) -> Next {
    Next::Finish {
        status,
        needs_operator: None,
    }
}

fn operator(text: String) -> Next {
    Next::Finish {
        status: StatusChoice::Keep,
        needs_operator: Some(text),
    }
}

/// The next operation for `outcome` on the order as it is now, or the
/// final comment's status (and what a person must do).
pub(crate) fn decide(o: &OrderView, outcome: Outcome, ctx: &Ctx) -> Next {
    let did = |op| ctx.done.contains(&op);
    let open = matches!(o.state.as_str(), "new" | "pending_payment" | "processing");
    let ours = o.state == "holded" && (did(Op::Hold) || ctx.held_by_ipnsync);
    let merchant_hold = o.state == "holded" && !ours;
    let releases = !matches!(
        outcome,
        Outcome::Review | Outcome::SuspectedFraud | Outcome::Pending
    );
    if ours && releases && !did(Op::Unhold) {
        return Next::Apply(Op::Unhold);
    }
    if merchant_hold && releases {
        return operator(format!(
            "the order is on hold, not by ipnsync, so ipnsync left it held and only added this comment ({}). Release it when you are ready, then {}.",
            ctx.this_payment,
            match outcome {
                Outcome::Accepted => "create the invoice (capture offline)",
                Outcome::Refunded => "create a credit memo (refund offline), or cancel it if it was never invoiced",
                _ => "cancel it",
            }
        ));
    }
    if o.state == "payment_review" && releases {
        return operator(format!(
            "the order is in the shop's own payment review, which no API can leave ({}). Use Accept Payment or Deny Payment on the order page.",
            ctx.this_payment
        ));
    }
    match outcome {
        Outcome::Accepted => match o.state.as_str() {
            _ if open && o.to_invoice() && ctx.rules.invoice_on_accept && !did(Op::Invoice) => {
                Next::Apply(Op::Invoice)
            }
            // OpenMage's invoice API captures offline only for methods that
            // are not online gateways; a gateway's invoice stays unpaid.
            _ if (open || o.state == "complete") && o.paid < o.invoiced => Next::Finish {
                status: StatusChoice::Configured,
                needs_operator: Some(format!(
                    "the order is invoiced but its invoice is not paid ({}): open the invoice and capture it (offline), so the paid amount is right.",
                    ctx.this_payment
                )),
            },
            _ if open || o.state == "complete" => finish(StatusChoice::Configured),
            state => paid_but(state, o, ctx),
        },
        Outcome::Pending => match o.state.as_str() {
            "new" | "pending_payment" => finish(StatusChoice::Configured),
            _ => finish(StatusChoice::Keep),
        },
        Outcome::Review | Outcome::SuspectedFraud => match o.state.as_str() {
            _ if open && !did(Op::Hold) => Next::Apply(Op::Hold),
            "holded" if ours => finish(StatusChoice::Configured),
            "holded" | "payment_review" => finish(StatusChoice::Keep),
            "complete" => operator(format!(
                "the order is complete (shipped) and its payment is now under review ({}): check the payment with the provider before anything else leaves.",
                ctx.this_payment
            )),
            "canceled" | "closed" => paid_but(&o.state, o, ctx),
            state => operator(format!(
                "ipnsync could not hold the order (state {state}) for review ({}): hold it yourself.",
                ctx.this_payment
            )),
        },
        Outcome::Canceled | Outcome::Rejected | Outcome::Failed => match o.state.as_str() {
            _ if open && o.to_invoice() && !did(Op::Cancel) => Next::Apply(Op::Cancel),
            "canceled" => finish(StatusChoice::Configured),
            "closed" => finish(StatusChoice::Keep),
            state => operator(format!(
                "the payment is {} ({}) but the order is {} ({}), so it cannot be cancelled. Refund it with a credit memo, or check the payment with the provider.",
                outcome.as_str(),
                ctx.this_payment,
                if o.state == "complete" { "complete" } else { "invoiced" },
                state
            )),
        },
        Outcome::Refunded => match o.state.as_str() {
            "closed" => finish(StatusChoice::Configured),
            "canceled" => finish(StatusChoice::Keep),
            _ if (open || o.state == "complete") && o.refundable() > 0 => match &ctx.refund {
                _ if did(Op::CreditMemo) => finish(StatusChoice::Keep),
                RefundSize::Full => Next::Apply(Op::CreditMemo),
                RefundSize::Partial(why) => operator(format!(
                    "{why} ({}): create a credit memo for the refunded items or amount yourself (refund offline).",
                    ctx.this_payment
                )),
            },
            _ if open && o.invoiced == 0 && !did(Op::Cancel) => Next::Apply(Op::Cancel),
            state => operator(format!(
                "the payment was refunded ({}) but the order ({state}) has nothing paid that a credit memo could refund (an invoice not yet paid?): settle the invoice and create the credit memo yourself.",
                ctx.this_payment
            )),
        },
    }
}

/// A payment (or a review of one) on an order that is cancelled or closed:
/// never relabelled, a person decides.
fn paid_but(state: &str, o: &OrderView, ctx: &Ctx) -> Next {
    let earlier = o
        .earlier_transaction(&ctx.transaction_id)
        .map(|e| format!(" Earlier: {e}."))
        .unwrap_or_default();
    operator(format!(
        "a payment arrived for an order that is {state}: this payment: {}.{earlier} ipnsync did not relabel the order: refund the payment with the provider, or re-create the order for it.",
        ctx.this_payment
    ))
}

/// The status the final comment writes: the configured one if it belongs
/// to the order's state, else the current one if it does (or is one ipnsync
/// does not know: it never wrote it), else the state's default. So every
/// status ipnsync writes belongs to the order's state.
pub(crate) fn status_to_write(
    rules: &OrderRules,
    configured: &str,
    choice: StatusChoice,
    o: &OrderView,
) -> String {
    if choice == StatusChoice::Configured && rules.belongs(configured, &o.state) {
        return configured.to_owned();
    }
    let current_fits =
        !o.status.is_empty() && (rules.belongs(&o.status, &o.state) || !rules.is_known(&o.status));
    if current_fits {
        return o.status.clone();
    }
    OrderRules::default_status(&o.state)
        .map(str::to_owned)
        .unwrap_or_else(|| o.status.clone())
}

/// Whether a refund notification covers all that the order has paid.
pub(crate) fn refund_size(o: &OrderView, amount: Option<&Money>, tolerance: u32) -> RefundSize {
    let Some(amount) = amount else {
        return RefundSize::Full;
    };
    let Some(currency) = find_currency(&amount.currency) else {
        return RefundSize::Full;
    };
    if !o.currency.trim().eq_ignore_ascii_case(currency.alpha) {
        return RefundSize::Partial(format!(
            "the refund is in {} but the order is in {}",
            currency.alpha,
            o.currency.trim()
        ));
    }
    let scale = 10_i64.pow(4u32.saturating_sub(currency.decimals));
    let refunded = amount.minor.saturating_mul(scale);
    let slack = i64::from(tolerance).saturating_mul(scale);
    if refunded + slack >= o.refundable() {
        RefundSize::Full
    } else {
        RefundSize::Partial(format!(
            "partial refund of {} on an order that has {} {:.2} paid",
            amount.display(),
            o.currency.trim(),
            o.refundable() as f64 / 10_000.0
        ))
    }
}

#[cfg(test)]
mod tests;
