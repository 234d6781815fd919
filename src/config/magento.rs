//! OpenMage and Magento 2: which status belongs to which order *state*
//! (shops.md A.8), and the per-shop switches of the state-aware push.
//!
//! Both shops keep a state (`new`, `processing`, `holded`…) apart from the
//! status label, and their APIs write any status on any state without a
//! check. ipnsync therefore knows the built-in table, plus the statuses a
//! merchant assigned to a state (System › Order Statuses › Assign Status to
//! State), declared in `state_statuses`; it never writes a status that does
//! not belong to the order's state after its operation.

use std::collections::BTreeMap;

use super::{invalid, ConfigError, ShopStatus};
use crate::domain::Outcome;

/// The order states of `Mage_Sales_Model_Order` / Magento 2's `Order`.
pub const STATES: [&str; 8] = [
    "new",
    "pending_payment",
    "processing",
    "complete",
    "closed",
    "canceled",
    "holded",
    "payment_review",
];

/// The statuses a fresh install assigns to each state; the first is the
/// state's default status (`Sales/etc/config.xml`).
fn builtin(state: &str) -> &'static [&'static str] {
    match state {
        "new" => &["pending"],
        "pending_payment" => &["pending_payment"],
        "processing" => &["processing"],
        "complete" => &["complete"],
        "closed" => &["closed"],
        "canceled" => &["canceled"],
        "holded" => &["holded"],
        "payment_review" => &["payment_review", "fraud"],
        _ => &[],
    }
}

/// The per-shop rules of the OpenMage / Magento 2 push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRules {
    /// Accepted payments get an invoice (offline capture), so the order
    /// becomes `processing` and its paid amount is updated.
    pub invoice_on_accept: bool,
    /// Custom statuses assigned to a state, beyond the built-in ones:
    /// state → statuses.
    pub custom: BTreeMap<String, Vec<String>>,
}

impl Default for OrderRules {
    fn default() -> Self {
        OrderRules {
            invoice_on_accept: true,
            custom: BTreeMap::new(),
        }
    }
}

impl OrderRules {
    /// Whether `status` is assigned to `state`.
    pub fn belongs(&self, status: &str, state: &str) -> bool {
        builtin(state).contains(&status)
            || self
                .custom
                .get(state)
                .is_some_and(|s| s.iter().any(|c| c == status))
    }

    /// Whether ipnsync knows which state(s) `status` belongs to.
    pub fn is_known(&self, status: &str) -> bool {
        STATES.iter().any(|state| self.belongs(status, state))
    }

    /// The state's default status (what the shop itself sets on entering
    /// it); `None` for a state ipnsync does not know.
    pub fn default_status(state: &str) -> Option<&'static str> {
        builtin(state).first().copied()
    }
}

/// The state(s) an outcome's status must belong to: the state ipnsync puts
/// (or finds) the order in for that outcome.
fn expected_states(outcome: Outcome) -> &'static [&'static str] {
    match outcome {
        Outcome::Pending => &["new", "pending_payment"],
        Outcome::Review | Outcome::SuspectedFraud => &["holded"],
        Outcome::Accepted => &["processing"],
        Outcome::Rejected | Outcome::Failed | Outcome::Canceled => &["canceled"],
        Outcome::Refunded => &["closed"],
    }
}

/// Resolves `invoice_on_accept` and `state_statuses`, and refuses a status
/// table that would put a label on an order whose state it does not belong
/// to (an "orphan" label: e.g. "Payment Review" on a held order, which the
/// back office shows without its Accept/Deny buttons).
pub(super) fn resolve(
    key_prefix: &str,
    invoice_on_accept: Option<bool>,
    state_statuses: BTreeMap<String, Vec<String>>,
    statuses: &BTreeMap<Outcome, ShopStatus>,
) -> Result<OrderRules, ConfigError> {
    let mut custom = BTreeMap::new();
    for (state, list) in state_statuses {
        if !STATES.contains(&state.as_str()) {
            return Err(invalid(
                format!("{key_prefix}.state_statuses.{state}"),
                format!("is not an order state (one of {})", STATES.join(", ")),
            ));
        }
        for status in &list {
            if status.is_empty() || status.len() > 32 {
                return Err(invalid(
                    format!("{key_prefix}.state_statuses.{state}"),
                    "status codes are 1 to 32 characters",
                ));
            }
        }
        custom.insert(state, list);
    }
    let rules = OrderRules {
        invoice_on_accept: invoice_on_accept.unwrap_or(true),
        custom,
    };
    for (outcome, status) in statuses {
        let ShopStatus::Code(code) = status else {
            continue;
        };
        let wanted = expected_states(*outcome);
        if wanted.iter().any(|state| rules.belongs(code, state)) {
            continue;
        }
        let owner: Vec<&str> = STATES
            .iter()
            .copied()
            .filter(|state| rules.belongs(code, state))
            .collect();
        let found = if owner.is_empty() {
            "is not a built-in status and is not declared in state_statuses".to_owned()
        } else {
            format!("belongs to the {} state", owner.join(" / "))
        };
        let hint = match outcome {
            Outcome::Review | Outcome::SuspectedFraud => format!(
                " ipnsync puts {} orders on hold, so the label would lie (\"Payment Review\" on a held order shows no Accept/Deny buttons). Use \"holded\", or create a status such as \"Payment review (ipnsync)\" / \"Suspected fraud (ipnsync)\", assign it to the holded state, and declare it: state_statuses = {{ holded = [\"{code}\"] }}.",
                outcome.as_str()
            ),
            _ => format!(
                " Use a status of that state; a custom one must be assigned to it in the shop and declared: state_statuses = {{ {} = [\"{code}\"] }}.",
                wanted[0]
            ),
        };
        return Err(invalid(
            format!("{key_prefix}.statuses.{}", outcome.as_str()),
            format!(
                "\"{code}\" {found}, but a {} order is in the {} state.{hint}",
                outcome.as_str(),
                wanted.join(" or ")
            ),
        ));
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: &[(Outcome, &str)]) -> BTreeMap<Outcome, ShopStatus> {
        pairs
            .iter()
            .map(|(o, s)| (*o, ShopStatus::Code((*s).to_owned())))
            .collect()
    }

    #[test]
    fn built_in_statuses_belong_to_their_state_only() {
        let rules = OrderRules::default();
        assert!(rules.belongs("pending", "new"));
        assert!(!rules.belongs("pending_payment", "new"));
        assert!(rules.belongs("fraud", "payment_review"));
        assert!(!rules.belongs("payment_review", "holded"));
        assert!(!rules.is_known("payzen_to_validate"));
        assert_eq!(OrderRules::default_status("holded"), Some("holded"));
        assert_eq!(OrderRules::default_status("weird"), None);
    }

    #[test]
    fn declared_custom_statuses_belong_to_their_state() {
        let rules = resolve(
            "shops[0]",
            None,
            BTreeMap::from([("holded".to_owned(), vec!["ipnsync_review".to_owned()])]),
            &table(&[(Outcome::Review, "ipnsync_review")]),
        )
        .expect("valid");
        assert!(rules.belongs("ipnsync_review", "holded"));
        assert!(rules.invoice_on_accept);
    }

    #[test]
    fn an_orphan_label_is_refused() {
        let err = resolve(
            "shops[1]",
            None,
            BTreeMap::new(),
            &table(&[(Outcome::Review, "payment_review")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("shops[1].statuses.review: \"payment_review\" belongs to the payment_review state, but a review order is in the holded state."),
            "{err}"
        );
        assert!(err.contains("Payment review (ipnsync)"), "{err}");
        let err = resolve(
            "shops[0]",
            Some(false),
            BTreeMap::new(),
            &table(&[
                (Outcome::Pending, "pending_payment"),
                (Outcome::Accepted, "payzen_ok"),
            ]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("shops[0].statuses.accepted: \"payzen_ok\" is not a built-in status and is not declared in state_statuses"),
            "{err}"
        );
    }

    #[test]
    fn unknown_states_are_refused() {
        let err = resolve(
            "shops[0]",
            None,
            BTreeMap::from([("on_hold".to_owned(), vec!["x".to_owned()])]),
            &BTreeMap::new(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("shops[0].state_statuses.on_hold: is not an order state"),
            "{err}"
        );
    }
}
