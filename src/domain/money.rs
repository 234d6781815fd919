//! Amounts and the amount check a shop push makes before it marks an order
//! paid: the notification's amount and currency against the order's own
//! total, as the shop reports it.
//!
//! Pure: the shop client reads the order and hands its figures in.

use serde::{Deserialize, Serialize};

use super::comment::{find_currency, format_amount};

/// An amount in minor units of an ISO 4217 currency (alpha code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    pub minor: i64,
    /// Alpha code (`EUR`), whatever form the platform sent.
    pub currency: String,
}

impl Money {
    /// `2990` + `978` (or `EUR`) → 29.90 EUR. `None` when the currency is
    /// not one the table knows: the minor unit's size is then unknown, and
    /// no comparison could be trusted.
    pub fn new(minor: i64, currency_code: &str) -> Option<Money> {
        let currency = find_currency(currency_code)?;
        Some(Money {
            minor,
            currency: currency.alpha.to_owned(),
        })
    }

    /// `29.90 EUR`.
    pub fn display(&self) -> String {
        format_amount(self.minor, &self.currency)
    }
}

/// What the amount check concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmountCheck {
    /// Same currency, totals within the tolerance.
    Matches,
    /// The order's figures differ: the text shows both.
    Mismatch(String),
    /// The shop's figures could not be read (no total, unknown currency):
    /// the text says which. Treated like a mismatch by callers that must
    /// not mark an order paid on a guess.
    Unreadable(String),
}

/// Compares what the platform says was paid with the order's total as the
/// shop reports it (`"101.0000"`, `"USD"`). `tolerance_minor` absorbs
/// currency rounding (e.g. a shop that stores 4 decimals).
pub fn check_amount(
    paid: &Money,
    order_total: &str,
    order_currency: &str,
    tolerance_minor: u32,
) -> AmountCheck {
    let Some(currency) = find_currency(order_currency) else {
        return AmountCheck::Unreadable(format!(
            "the order's currency {:?} is not a known ISO 4217 code",
            order_currency.trim()
        ));
    };
    let Some(total) = decimal_to_minor_rounded(order_total, currency.decimals) else {
        return AmountCheck::Unreadable(format!(
            "the order's total {:?} is not a decimal amount",
            order_total.trim()
        ));
    };
    let order = Money {
        minor: total,
        currency: currency.alpha.to_owned(),
    };
    if order.currency != paid.currency {
        return AmountCheck::Mismatch(format!(
            "paid {} but the order is {} (currency differs)",
            paid.display(),
            order.display()
        ));
    }
    if paid.minor.abs_diff(order.minor) > u64::from(tolerance_minor) {
        return AmountCheck::Mismatch(format!(
            "paid {} but the order total is {}",
            paid.display(),
            order.display()
        ));
    }
    AmountCheck::Matches
}

/// `"101.0000"` with 2 decimals → `10100`; extra decimals are rounded half
/// away from zero (shops store 4 decimals for currencies that have 2).
/// Never through `f64`.
pub fn decimal_to_minor_rounded(text: &str, decimals: u32) -> Option<i64> {
    let text = text.trim();
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    let valid = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !valid(int) || !valid(frac) || int.len() > 15 {
        return None;
    }
    let d = decimals as usize;
    let kept: String = frac.chars().chain(std::iter::repeat('0')).take(d).collect();
    let round_up = frac.as_bytes().get(d).is_some_and(|b| *b >= b'5');
    let value: i64 = format!("{int}{kept}").parse().ok()?;
    let value = value + i64::from(round_up);
    Some(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(minor: i64) -> Money {
        Money::new(minor, "978").unwrap()
    }

    #[test]
    fn numeric_and_alpha_codes_normalise_to_alpha() {
        assert_eq!(eur(4990).currency, "EUR");
        assert_eq!(Money::new(1, "usd").unwrap().currency, "USD");
        assert_eq!(Money::new(1, "999999"), None);
        assert_eq!(eur(4990).display(), "49.90 EUR");
    }

    #[test]
    fn shop_totals_parse_with_rounding() {
        let cases = [
            ("101.0000", 2, Some(10100)),
            ("49.9", 2, Some(4990)),
            ("49.905", 2, Some(4991)),
            ("49.9049", 2, Some(4990)),
            ("1200", 0, Some(1200)),
            ("1200.6", 0, Some(1201)),
            ("-5.00", 2, Some(-500)),
            ("", 2, None),
            ("1,00", 2, None),
            ("1e3", 2, None),
            (".5", 2, None),
        ];
        for (text, decimals, want) in cases {
            assert_eq!(decimal_to_minor_rounded(text, decimals), want, "{text}");
        }
    }

    #[test]
    fn amount_check_table() {
        assert_eq!(
            check_amount(&eur(10100), "101.0000", "EUR", 0),
            AmountCheck::Matches
        );
        assert_eq!(
            check_amount(&eur(10099), "101.0000", "EUR", 1),
            AmountCheck::Matches
        );
        let AmountCheck::Mismatch(text) = check_amount(&eur(4990), "101.0000", "USD", 0) else {
            panic!("currency differs")
        };
        assert_eq!(
            text,
            "paid 49.90 EUR but the order is 101.00 USD (currency differs)"
        );
        let AmountCheck::Mismatch(text) = check_amount(&eur(4990), "101.00", "EUR", 0) else {
            panic!("amount differs")
        };
        assert_eq!(text, "paid 49.90 EUR but the order total is 101.00 EUR");
        assert!(matches!(
            check_amount(&eur(4990), "n/a", "EUR", 0),
            AmountCheck::Unreadable(_)
        ));
        assert!(matches!(
            check_amount(&eur(4990), "49.90", "XXQ", 0),
            AmountCheck::Unreadable(_)
        ));
    }
}
