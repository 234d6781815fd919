//! When a held authorisation stops being capturable, where it is known.
//!
//! Assumption (documented in README "Review actions"): for a Lyra card
//! payment on CB, Visa or Mastercard, the authorisation expires 7 days after
//! the transaction date. ipnsync does not store the transaction date
//! (`vads_trans_date`); it uses when the transaction was first notified,
//! which follows the payment within seconds. For any other brand, and for
//! Cybersource and Mastercard Gateway, the validity depends on the acquirer
//! and the merchant's contract: unknown.

use crate::store::read::review_queue::ReviewItem;

/// How long a CB / Visa / Mastercard authorisation held at Lyra lasts.
pub const CARD_AUTHORISATION_DAYS: i64 = 7;

/// The card brands (`vads_card_brand`) the 7-day rule is assumed for.
const SEVEN_DAY_BRANDS: [&str; 4] = ["CB", "VISA", "VISA_ELECTRON", "MASTERCARD"];

const DAY_MS: i64 = 24 * 3600 * 1000;

/// When the authorisation behind `item` expires (ms), `None` if unknown.
pub fn authorisation_expires_at(item: &ReviewItem) -> Option<i64> {
    let lyra = matches!(item.provider.as_str(), "lyra-form" | "lyra-rest");
    let brand = item.card_brand.trim().to_ascii_uppercase();
    (lyra && SEVEN_DAY_BRANDS.contains(&brand.as_str()))
        .then(|| item.first_seen_at + CARD_AUTHORISATION_DAYS * DAY_MS)
}

/// `3d 4h`, `5h 12m`, `42m`, `0m` for a duration in ms (negative = 0).
pub fn human_duration(ms: i64) -> String {
    let minutes = ms.max(0) / 60_000;
    let (d, h, m) = (minutes / 1440, (minutes / 60) % 24, minutes % 60);
    match (d, h) {
        (0, 0) => format!("{m}m"),
        (0, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// The "time left" cell: `6d 23h`, `expired 2h 5m ago`, or `unknown`.
pub fn time_left(expires_at: Option<i64>, now: i64) -> String {
    match expires_at {
        None => "unknown".to_owned(),
        Some(at) if at <= now => format!("expired {} ago", human_duration(now - at)),
        Some(at) => human_duration(at - now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Outcome;

    fn item(provider: &str, brand: &str) -> ReviewItem {
        ReviewItem {
            shop: "s".into(),
            order_ref: "1".into(),
            outcome: Outcome::Review,
            transaction_id: "t".into(),
            source: "src".into(),
            provider: provider.into(),
            amount_minor: Some(100),
            currency: "978".into(),
            card_brand: brand.into(),
            since: 5 * DAY_MS,
            first_seen_at: DAY_MS,
            action_needed: crate::store::read::review_queue::TO_REVIEW,
        }
    }

    #[test]
    fn seven_days_for_lyra_cards_unknown_otherwise() {
        assert_eq!(
            authorisation_expires_at(&item("lyra-form", "CB")),
            Some(8 * DAY_MS)
        );
        assert_eq!(
            authorisation_expires_at(&item("lyra-rest", "mastercard")),
            Some(8 * DAY_MS)
        );
        assert_eq!(authorisation_expires_at(&item("lyra-form", "AMEX")), None);
        assert_eq!(authorisation_expires_at(&item("cybersource", "")), None);
    }

    #[test]
    fn durations_read_like_a_human_would_say_them() {
        assert_eq!(human_duration(0), "0m");
        assert_eq!(human_duration(42 * 60_000), "42m");
        assert_eq!(human_duration(5 * 3_600_000 + 12 * 60_000), "5h 12m");
        assert_eq!(human_duration(3 * DAY_MS + 4 * 3_600_000), "3d 4h");
        assert_eq!(time_left(None, 0), "unknown");
        assert_eq!(time_left(Some(DAY_MS), 0), "1d 0h");
        assert_eq!(time_left(Some(0), 3_600_000), "expired 1h 0m ago");
    }
}
