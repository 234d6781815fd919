//! The built-in state → statuses table of OpenMage and Magento 2
//! (`Sales/etc/config.xml`, shops.md A.8), written down here apart from
//! the client's, so the invariant "every status belongs to its state" is
//! checked against an independent copy.

/// Whether `status` is assigned to `state` on a fresh install, or in
/// `custom` (state, status) pairs the test's shop declares.
pub fn fits(state: &str, status: &str, custom: &[(&str, &str)]) -> bool {
    let builtin: &[&str] = match state {
        "new" => &["pending"],
        "pending_payment" => &["pending_payment"],
        "processing" => &["processing"],
        "complete" => &["complete"],
        "closed" => &["closed"],
        "canceled" => &["canceled"],
        "holded" => &["holded"],
        "payment_review" => &["payment_review", "fraud"],
        _ => &[],
    };
    builtin.contains(&status) || custom.contains(&(state, status))
}
