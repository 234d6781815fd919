use std::collections::BTreeMap;

use super::*;

const STATES: [&str; 8] = crate::config::ORDER_STATES;

fn order(state: &str, invoiced: bool) -> OrderView {
    OrderView {
        state: state.into(),
        status: OrderRules::default_status(state).unwrap_or("x").into(),
        grand_total: "101.0000".into(),
        currency: "USD".into(),
        grand: 1_010_000,
        invoiced: if invoiced { 1_010_000 } else { 0 },
        paid: if invoiced { 1_010_000 } else { 0 },
        refunded: 0,
        history: Vec::new(),
    }
}

fn ctx<'a>(rules: &'a OrderRules, done: &'a [Op], ours: bool) -> Ctx<'a> {
    Ctx {
        rules,
        done,
        held_by_ipnsync: ours,
        refund: RefundSize::Full,
        this_payment: "lyra transaction t2 (AUTHORISED)".into(),
        transaction_id: "t2".into(),
    }
}

/// What the shop does to the state (Mage_Sales_Model_Order, simplified
/// to whole orders): enough to walk a decision to its end.
fn apply(o: &mut OrderView, op: Op, hold_before: &mut Option<(String, String)>) {
    match op {
        Op::Hold => {
            *hold_before = Some((o.state.clone(), o.status.clone()));
            o.state = "holded".into();
            o.status = "holded".into();
        }
        Op::Unhold => {
            let (state, status) = hold_before
                .take()
                .unwrap_or(("new".into(), "pending".into()));
            o.state = state;
            o.status = status;
        }
        Op::Cancel => {
            o.state = "canceled".into();
            o.status = "canceled".into();
        }
        Op::Invoice => {
            o.invoiced = o.grand;
            o.paid = o.grand;
            o.state = "processing".into();
            o.status = "processing".into();
        }
        Op::CreditMemo => {
            o.refunded = o.paid;
            o.state = "closed".into();
            o.status = "closed".into();
        }
    }
}

fn configured(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Pending => "pending",
        Outcome::Review | Outcome::SuspectedFraud => "holded",
        Outcome::Accepted => "processing",
        Outcome::Rejected | Outcome::Failed | Outcome::Canceled => "canceled",
        Outcome::Refunded => "closed",
    }
}

/// Walks the decision: (ops, final state, status written, operator?).
fn walk(
    mut o: OrderView,
    outcome: Outcome,
    ours: bool,
    rules: &OrderRules,
) -> (Vec<Op>, String, String, bool) {
    let mut done = Vec::new();
    let mut hold_before = Some(("processing".to_owned(), "processing".to_owned()));
    for _ in 0..5 {
        match decide(&o, outcome, &ctx(rules, &done, ours)) {
            Next::Apply(op) => {
                apply(&mut o, op, &mut hold_before);
                done.push(op);
            }
            Next::Finish {
                status,
                needs_operator,
            } => {
                let written = status_to_write(rules, configured(outcome), status, &o);
                return (done, o.state, written, needs_operator.is_some());
            }
        }
    }
    panic!("no end for {outcome:?}");
}

#[test]
fn every_status_written_belongs_to_the_state_after_the_operations() {
    let rules = OrderRules::default();
    for state in STATES {
        for invoiced in [false, true] {
            for ours in [false, true] {
                for outcome in Outcome::ALL {
                    let (ops, after, status, _) =
                        walk(order(state, invoiced), outcome, ours, &rules);
                    assert!(
                        rules.belongs(&status, &after),
                        "{state} (invoiced {invoiced}, ours {ours}) + {outcome:?}: {ops:?} → {after}/{status}"
                    );
                }
            }
        }
    }
}

/// state, invoiced, held by ipnsync, outcome → ops, final state,
/// status written, needs an operator.
type Row = (
    &'static str,
    bool,
    bool,
    Outcome,
    &'static [Op],
    &'static str,
    &'static str,
    bool,
);

/// The table of docs/decisions.md, row by row.
#[test]
fn the_state_outcome_table() {
    use Outcome::*;
    let rules = OrderRules::default();
    let no_invoice = OrderRules {
        invoice_on_accept: false,
        custom: BTreeMap::new(),
    };
    let rows: &[Row] = &[
        // state, invoiced, held by ipnsync, outcome → ops, state, status, operator
        (
            "new",
            false,
            false,
            Accepted,
            &[Op::Invoice],
            "processing",
            "processing",
            false,
        ),
        (
            "pending_payment",
            false,
            false,
            Accepted,
            &[Op::Invoice],
            "processing",
            "processing",
            false,
        ),
        (
            "processing",
            true,
            false,
            Accepted,
            &[],
            "processing",
            "processing",
            false,
        ),
        (
            "complete",
            true,
            false,
            Accepted,
            &[],
            "complete",
            "complete",
            false,
        ),
        (
            "holded",
            false,
            true,
            Accepted,
            &[Op::Unhold, Op::Invoice],
            "processing",
            "processing",
            false,
        ),
        (
            "holded",
            false,
            false,
            Accepted,
            &[],
            "holded",
            "holded",
            true,
        ),
        (
            "payment_review",
            false,
            false,
            Accepted,
            &[],
            "payment_review",
            "payment_review",
            true,
        ),
        (
            "canceled",
            false,
            false,
            Accepted,
            &[],
            "canceled",
            "canceled",
            true,
        ),
        (
            "closed",
            true,
            false,
            Accepted,
            &[],
            "closed",
            "closed",
            true,
        ),
        ("new", false, false, Pending, &[], "new", "pending", false),
        (
            "processing",
            true,
            false,
            Pending,
            &[],
            "processing",
            "processing",
            false,
        ),
        (
            "new",
            false,
            false,
            Review,
            &[Op::Hold],
            "holded",
            "holded",
            false,
        ),
        (
            "processing",
            true,
            false,
            SuspectedFraud,
            &[Op::Hold],
            "holded",
            "holded",
            false,
        ),
        (
            "holded",
            false,
            false,
            Review,
            &[],
            "holded",
            "holded",
            false,
        ),
        (
            "payment_review",
            false,
            false,
            Review,
            &[],
            "payment_review",
            "payment_review",
            false,
        ),
        (
            "canceled",
            false,
            false,
            Review,
            &[],
            "canceled",
            "canceled",
            true,
        ),
        (
            "complete",
            true,
            false,
            SuspectedFraud,
            &[],
            "complete",
            "complete",
            true,
        ),
        (
            "new",
            false,
            false,
            Canceled,
            &[Op::Cancel],
            "canceled",
            "canceled",
            false,
        ),
        (
            "processing",
            true,
            false,
            Canceled,
            &[],
            "processing",
            "processing",
            true,
        ),
        (
            "holded",
            false,
            true,
            Rejected,
            &[Op::Unhold, Op::Cancel],
            "canceled",
            "canceled",
            false,
        ),
        (
            "holded",
            false,
            false,
            Failed,
            &[],
            "holded",
            "holded",
            true,
        ),
        (
            "payment_review",
            false,
            false,
            Failed,
            &[],
            "payment_review",
            "payment_review",
            true,
        ),
        (
            "canceled",
            false,
            false,
            Failed,
            &[],
            "canceled",
            "canceled",
            false,
        ),
        (
            "complete",
            true,
            false,
            Canceled,
            &[],
            "complete",
            "complete",
            true,
        ),
        (
            "processing",
            true,
            false,
            Refunded,
            &[Op::CreditMemo],
            "closed",
            "closed",
            false,
        ),
        (
            "complete",
            true,
            false,
            Refunded,
            &[Op::CreditMemo],
            "closed",
            "closed",
            false,
        ),
        (
            "new",
            false,
            false,
            Refunded,
            &[Op::Cancel],
            "canceled",
            "canceled",
            false,
        ),
        (
            "closed",
            true,
            false,
            Refunded,
            &[],
            "closed",
            "closed",
            false,
        ),
        (
            "canceled",
            false,
            false,
            Refunded,
            &[],
            "canceled",
            "canceled",
            false,
        ),
        (
            "holded",
            true,
            false,
            Refunded,
            &[],
            "holded",
            "holded",
            true,
        ),
    ];
    for &(state, invoiced, ours, outcome, ops, after, status, op) in rows {
        let got = walk(order(state, invoiced), outcome, ours, &rules);
        assert_eq!(
            got,
            (ops.to_vec(), after.to_owned(), status.to_owned(), op),
            "{state} invoiced={invoiced} ours={ours} {outcome:?}"
        );
    }
    // An invoice that is not paid (an online gateway's): a person
    // captures it.
    let mut unpaid = order("processing", true);
    unpaid.paid = 0;
    assert_eq!(
        walk(unpaid, Accepted, false, &rules),
        (vec![], "processing".into(), "processing".into(), true)
    );
    // Invoicing off: the comment keeps the new order's status.
    assert_eq!(
        walk(order("new", false), Accepted, false, &no_invoice),
        (vec![], "new".into(), "pending".into(), false)
    );
}

#[test]
fn a_partial_refund_needs_an_operator() {
    let rules = OrderRules::default();
    let o = order("processing", true);
    let part = Money::new(5000, "USD").unwrap();
    let size = refund_size(&o, Some(&part), 0);
    assert!(
        matches!(&size, RefundSize::Partial(t) if t.starts_with("partial refund of 50.00 USD")),
        "{size:?}"
    );
    let mut c = ctx(&rules, &[], false);
    c.refund = size;
    assert!(matches!(
        decide(&o, Outcome::Refunded, &c),
        Next::Finish {
            needs_operator: Some(_),
            ..
        }
    ));
    let all = Money::new(10100, "USD").unwrap();
    assert_eq!(refund_size(&o, Some(&all), 0), RefundSize::Full);
    let close = Money::new(10099, "USD").unwrap();
    assert_eq!(refund_size(&o, Some(&close), 1), RefundSize::Full);
    let eur = Money::new(10100, "EUR").unwrap();
    assert!(matches!(
        refund_size(&o, Some(&eur), 0),
        RefundSize::Partial(_)
    ));
    assert_eq!(refund_size(&o, None, 0), RefundSize::Full);
}

fn row(id: i64, status: &str, comment: &str, notified: bool) -> HistoryEntry {
    HistoryEntry {
        id,
        status: status.into(),
        comment: comment.into(),
        notified,
    }
}

#[test]
fn ipnsyncs_hold_is_told_from_the_merchants() {
    let mut o = order("holded", false);
    o.history = vec![
        row(1, "holded", "", false),
        row(
            2,
            "holded",
            &format!("Lyra: review\n{HOLD_TAG}\n[ipnsync update #3]"),
            false,
        ),
    ];
    assert!(o.held_by_ipnsync());
    // The merchant released and held it again (OpenMage writes rows).
    let mut again = o.clone();
    again.history.push(row(3, "pending", "", false));
    again.history.push(row(4, "holded", "", false));
    assert!(!again.held_by_ipnsync());
    // Or relabelled it (Magento 2 writes no row for hold / unhold).
    let mut relabelled = o.clone();
    relabelled.status = "my_hold".into();
    assert!(!relabelled.held_by_ipnsync());
    // A merchant's note on the held order changes nothing.
    let mut noted = o.clone();
    noted
        .history
        .push(row(3, "holded", "Called the customer", false));
    assert!(noted.held_by_ipnsync());
    // A merchant's hold that ipnsync only commented on.
    let mut merchant = o.clone();
    merchant.history[1].comment = "Lyra: accepted\n[ipnsync update #3]".into();
    assert!(!merchant.held_by_ipnsync());
}

#[test]
fn the_marker_and_the_customer_entry_are_found() {
    let mut o = order("processing", true);
    o.history = vec![
        row(1, "processing", "Thanks!", true),
        row(
            2,
            "processing",
            "Lyra: accepted\n[ipnsync update #12]",
            false,
        ),
        row(3, "processing", "Refunded, sorry", true),
    ];
    assert_eq!(o.delivered(12).map(|h| h.id), Some(2));
    assert!(o.delivered(1).is_none(), "#1 is not #12");
    assert!(!o.has_customer_entry_since_last_marker("Thanks!"));
    assert!(o.has_customer_entry_since_last_marker("Refunded, sorry"));
}

#[test]
fn the_earlier_transaction_is_quoted() {
    let mut o = order("canceled", false);
    o.history = vec![row(
        1,
        "canceled",
        "Lyra, payment page: CANCELLED (cancelled by the merchant).\nTransaction 000042 (id t1), 29.90 EUR.\nOutcome: canceled.\n[ipnsync update #1]",
        false,
    )];
    assert_eq!(
        o.earlier_transaction("000042"),
        None,
        "the same transaction"
    );
    assert_eq!(
        o.earlier_transaction("t2").as_deref(),
        Some("Lyra, payment page: CANCELLED (cancelled by the merchant) — Transaction 000042 (id t1), 29.90 EUR.")
    );
}
