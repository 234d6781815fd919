//! The order-history comment. (Placeholder; the readable version lands with
//! the decisions issue.)

use super::notification::Notification;
use super::outcome::Assessment;
use super::state::Verdict;

pub fn order_comment(n: &Notification, a: &Assessment, _v: &Verdict) -> String {
    format!(
        "{}: {} ({}), transaction {}",
        n.provider.display_name(),
        n.status(),
        a.outcome,
        n.transaction_id
    )
}
