//! `[shops.customer_text]`: the short text a customer sees in the history
//! entry that notifies them, per outcome.
//!
//! The operator's comment (rule names, transaction ids, card masks, the
//! update marker) must never reach a customer, so the entry that e-mails
//! the customer carries this text instead. Templates may use `{order}`,
//! `{amount}` and `{currency}`; nothing else is substituted, so a template
//! cannot pull internal facts into a customer's mailbox.

use std::collections::BTreeMap;

use super::{invalid, ConfigError};
use crate::domain::money::Money;
use crate::domain::Outcome;

/// Longest template accepted: it is one line in an e-mail.
const MAX_TEMPLATE_CHARS: usize = 500;

/// The placeholders a template may use.
const PLACEHOLDERS: &[&str] = &["order", "amount", "currency"];

/// A shop's customer texts, one per outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerTexts {
    templates: BTreeMap<Outcome, String>,
}

impl Default for CustomerTexts {
    fn default() -> Self {
        CustomerTexts {
            templates: Outcome::ALL
                .into_iter()
                .map(|o| (o, default_template(o).to_owned()))
                .collect(),
        }
    }
}

/// The plain default for an outcome. Review and suspected fraud read the
/// same: a customer is never told they are suspected.
pub fn default_template(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Pending => "Your payment for order {order} is being processed.",
        Outcome::Review | Outcome::SuspectedFraud => {
            "Your payment for order {order} is being verified. We will contact you if we need anything."
        }
        Outcome::Accepted => {
            "Your payment of {amount} {currency} for order {order} has been received."
        }
        Outcome::Rejected => "Your payment for order {order} was declined.",
        Outcome::Failed => "Your payment for order {order} did not go through.",
        Outcome::Canceled => "Your payment for order {order} has been canceled.",
        Outcome::Refunded => "Your payment for order {order} has been refunded.",
    }
}

/// What an outcome's text says when the notification carried no amount
/// and the template needs one: the default without the figures.
fn without_amount(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Accepted => "Your payment for order {order} has been received.",
        other => default_template(other),
    }
}

impl CustomerTexts {
    /// Reads `customer_text = { accepted = "…", … }` over the defaults.
    pub(super) fn parse(
        key_prefix: &str,
        raw: BTreeMap<String, String>,
    ) -> Result<CustomerTexts, ConfigError> {
        let mut texts = CustomerTexts::default();
        for (name, template) in raw {
            let key = format!("{key_prefix}.customer_text.{name}");
            let outcome = Outcome::parse(&name).ok_or_else(|| {
                invalid(&key, "is not an outcome (pending, review, suspected_fraud, accepted, rejected, failed, canceled, refunded)")
            })?;
            check_template(&template).map_err(|why| invalid(&key, why))?;
            texts.templates.insert(outcome, template);
        }
        Ok(texts)
    }

    /// The template in force for `outcome` (for `check-config`).
    pub fn template(&self, outcome: Outcome) -> &str {
        self.templates
            .get(&outcome)
            .map(String::as_str)
            .unwrap_or_else(|| default_template(outcome))
    }

    /// The text for `outcome` about `order`, paid `amount` if known.
    pub fn render(&self, outcome: Outcome, order: &str, amount: Option<&Money>) -> String {
        let template = self.template(outcome);
        let needs_amount = template.contains("{amount}") || template.contains("{currency}");
        let (template, figures) = match (needs_amount, amount) {
            (true, None) => (without_amount(outcome), None),
            (_, Some(m)) => (template, Some(split_amount(m))),
            (false, None) => (template, None),
        };
        let (amount, currency) = figures.unwrap_or_default();
        substitute(template, order, &amount, &currency)
    }
}

/// `49.90 EUR` → (`49.90`, `EUR`).
fn split_amount(m: &Money) -> (String, String) {
    let shown = m.display();
    match shown.rsplit_once(' ') {
        Some((amount, currency)) => (amount.to_owned(), currency.to_owned()),
        None => (shown, String::new()),
    }
}

/// One pass over the template: a substituted value is never read again as
/// a template (an order reference containing `{amount}` stays as it is).
fn substitute(template: &str, order: &str, amount: &str, currency: &str) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open..];
        let value = PLACEHOLDERS.iter().find_map(|p| {
            after
                .strip_prefix(&format!("{{{p}}}"))
                .map(|tail| (*p, tail))
        });
        match value {
            Some((name, tail)) => {
                out.push_str(match name {
                    "order" => order,
                    "amount" => amount,
                    _ => currency,
                });
                rest = tail;
            }
            None => {
                out.push('{');
                rest = &after[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn check_template(template: &str) -> Result<(), String> {
    if template.trim().is_empty() {
        return Err("must not be empty".into());
    }
    if template.chars().count() > MAX_TEMPLATE_CHARS {
        return Err(format!("is longer than {MAX_TEMPLATE_CHARS} characters"));
    }
    if template.chars().any(char::is_control) {
        return Err("must be one line without control characters".into());
    }
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Err("has a '{' without '}'".into());
        };
        let name = &after[..close];
        if !PLACEHOLDERS.contains(&name) {
            return Err(format!(
                "unknown placeholder {{{name}}} (use {{order}}, {{amount}}, {{currency}})"
            ));
        }
        rest = &after[close + 1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eur(minor: i64) -> Money {
        Money::new(minor, "EUR").unwrap()
    }

    #[test]
    fn defaults_name_the_order_and_the_amount_only() {
        let t = CustomerTexts::default();
        assert_eq!(
            t.render(Outcome::Accepted, "100000042", Some(&eur(4990))),
            "Your payment of 49.90 EUR for order 100000042 has been received."
        );
        assert_eq!(
            t.render(Outcome::Accepted, "42", None),
            "Your payment for order 42 has been received.",
            "no dangling placeholder without an amount"
        );
        assert_eq!(
            t.render(Outcome::SuspectedFraud, "42", None),
            t.render(Outcome::Review, "42", None),
            "a customer is never told they are suspected"
        );
    }

    #[test]
    fn configured_templates_are_checked_and_used() {
        let raw = BTreeMap::from([(
            "accepted".to_owned(),
            "Merci ! {amount} {currency} reçus pour {order}.".to_owned(),
        )]);
        let t = CustomerTexts::parse("shops[0]", raw).unwrap();
        assert_eq!(
            t.render(Outcome::Accepted, "7", Some(&eur(100))),
            "Merci ! 1.00 EUR reçus pour 7."
        );
        for bad in ["", "{transaction_id}", "open {order", "two\nlines"] {
            let raw = BTreeMap::from([("accepted".to_owned(), bad.to_owned())]);
            let e = CustomerTexts::parse("shops[0]", raw)
                .unwrap_err()
                .to_string();
            assert!(e.contains("shops[0].customer_text.accepted"), "{e}");
        }
        let raw = BTreeMap::from([("paid".to_owned(), "x".to_owned())]);
        assert!(CustomerTexts::parse("shops[0]", raw).is_err());
    }

    #[test]
    fn a_value_is_never_expanded_twice() {
        let t = CustomerTexts::default();
        assert_eq!(
            t.render(Outcome::Refunded, "{amount}", Some(&eur(1))),
            "Your payment for order {amount} has been refunded."
        );
    }
}
