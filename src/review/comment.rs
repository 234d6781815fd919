//! What review actions say, in words: the reason the gateway records, the
//! calls made, and the shop's order-history comment.

use super::lyra;
use super::{Action, ReviewRequest};
use crate::store::read::review_queue::ReviewTarget;

pub(super) fn gateway_name(gateway: &str) -> &'static str {
    match gateway {
        "lyra" => "Lyra",
        "cybersource" => "Cybersource",
        _ => "the gateway",
    }
}

/// What the gateway records as the reason (the back office shows it).
pub(super) fn gateway_comment(actor: &str, comment: Option<&str>) -> String {
    match comment {
        Some(c) => format!("ipnsync operator {actor}: {c}"),
        None => format!("ipnsync operator {actor}"),
    }
}

/// The Cybersource call, in words.
pub(super) fn cybersource_call(request: &ReviewRequest) -> String {
    match request.action {
        Action::Validate if request.capture => "Decision Manager ACCEPT with CAPTURE",
        Action::Validate => "Decision Manager ACCEPT",
        Action::Deny if request.reverse => "Decision Manager REJECT with REVERSE",
        Action::Deny => "Decision Manager REJECT",
    }
    .to_owned()
}

/// The gateway calls that settled the transactions, in words:
/// `Lyra Transaction/Validate`, `Cybersource Decision Manager ACCEPT`…
pub(super) fn call_text(gateway: &str, done: &[(String, String)]) -> String {
    let mut calls: Vec<&str> = Vec::new();
    for (call, _) in done {
        if !calls.contains(&call.as_str()) {
            calls.push(call);
        }
    }
    let calls: Vec<String> = calls
        .into_iter()
        .map(|c| {
            if c == lyra::GET {
                format!("{c} (a successful payment, accepted despite the fraud flag)")
            } else {
                c.to_owned()
            }
        })
        .collect();
    format!("{} {}", gateway_name(gateway), calls.join(" + "))
}

/// The shop's order-history comment, in words. `call` is `None` for a
/// shop-only action; `ids` are what the gateway was asked about.
pub(super) fn shop_comment(
    request: &ReviewRequest,
    call: Option<&str>,
    target: &ReviewTarget,
    ids: &[String],
    statuses: &[String],
    comment: Option<&str>,
) -> String {
    let action = request.action;
    let what = match call {
        None => format!(
            "in the shop only, {} was not asked (done in its back office)",
            gateway_name_for_source(&target.provider)
        ),
        Some(call) => {
            let per_transaction: Vec<String> = ids
                .iter()
                .zip(statuses)
                .map(|(t, s)| format!("transaction {t} → {s}"))
                .collect();
            format!("{call}, {}", per_transaction.join(", "))
        }
    };
    let mut text = format!(
        "Payment {} by operator {} via ipnsync: {what}.",
        action.past(),
        request.actor
    );
    if let Some(c) = comment {
        text.push_str(&format!(" Comment: “{c}”"));
    }
    text
}

pub(super) fn gateway_name_for_source(provider: &str) -> &'static str {
    match provider {
        "lyra-form" | "lyra-rest" => "Lyra",
        "cybersource" => "Cybersource",
        "mpgs" => "Mastercard Gateway",
        _ => "the gateway",
    }
}

#[cfg(test)]
mod tests {
    use super::super::request::test_support::request;
    use super::*;
    use crate::domain::Outcome;

    #[test]
    fn the_shop_comment_says_who_did_what_in_words() {
        let target = ReviewTarget {
            shop: "main".into(),
            order_ref: "100042".into(),
            outcome: Outcome::Review,
            source: "lyra".into(),
            provider: "lyra-form".into(),
            transaction_id: "u1".into(),
            transactions: vec!["u1".into()],
            states: vec![Default::default()],
        };
        let r = request(Action::Validate);
        let done = [("Transaction/Validate".to_owned(), "AUTHORISED".to_owned())];
        let call = call_text("lyra", &done);
        let ids = ["u1".to_owned()];
        let c = shop_comment(
            &r,
            Some(&call),
            &target,
            &ids,
            &["AUTHORISED".into()],
            Some("ok"),
        );
        assert_eq!(
            c,
            "Payment validated by operator alice via ipnsync: Lyra Transaction/Validate, transaction u1 → AUTHORISED. Comment: “ok”"
        );
        let done = [("Transaction/Get".to_owned(), "CAPTURED".to_owned())];
        assert_eq!(
            call_text("lyra", &done),
            "Lyra Transaction/Get (a successful payment, accepted despite the fraud flag)"
        );
        let mut r = request(Action::Deny);
        r.shop_only = true;
        let c = shop_comment(&r, None, &target, &[], &[], None);
        assert_eq!(
            c,
            "Payment denied by operator alice via ipnsync: in the shop only, Lyra was not asked (done in its back office)."
        );
    }
}
