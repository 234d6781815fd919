use super::answers::parse_json;
use super::signing::{self, SignedCall};
use super::*;
use crate::domain::Outcome;

const VECTOR_TIME: u64 = 1_767_225_600;

fn vector_call(username: &str) -> SignedCall<'_> {
    SignedCall {
        route: "api/order",
        call: "history_add",
        username,
        store_id: 0,
        language: "en-gb",
        currency: "USD",
    }
}

fn fields(comment: &str) -> Vec<(&str, &str)> {
    vec![
        ("order_id", "12"),
        ("order_status_id", "2"),
        ("comment", comment),
        ("notify", "0"),
        ("override", "0"),
    ]
}

// ------------------------------------------------------------- signing

#[test]
fn reference_vector_1() {
    let body = fields("Payment received");
    assert_eq!(
        serde_urlencoded::to_string(&body).unwrap(),
        "order_id=12&order_status_id=2&comment=Payment+received&notify=0&override=0"
    );
    assert_eq!(
        signing::cleaned_post_md5(&body),
        "8ba903c48bbf75f2428c8e3aee85af43"
    );
    let call = vector_call("Default");
    assert_eq!(
        signing::string_to_sign("shop.example", "/", &call, &body, VECTOR_TIME),
        "api/order\nhistory_add\nDefault\nshop.example\n/\n0\nen-gb\nUSD\n8ba903c48bbf75f2428c8e3aee85af43\n1767225600\n"
    );
    let signature = signing::sign(
        "test-api-key",
        "shop.example",
        "/",
        &call,
        &body,
        VECTOR_TIME,
    );
    assert_eq!(signature, "tKQzrTCABRyUDUtI47SrPPe7t78=");
    assert_eq!(
        signing::rawurlencode(&signature),
        "tKQzrTCABRyUDUtI47SrPPe7t78%3D"
    );
}

#[test]
fn reference_vector_2_hashes_the_cleaned_post() {
    let body = fields(r#"Payment "review" passed & ok"#);
    assert_eq!(
        serde_urlencoded::to_string(&body).unwrap(),
        "order_id=12&order_status_id=2&comment=Payment+%22review%22+passed+%26+ok&notify=0&override=0"
    );
    assert_eq!(
        signing::cleaned_post_query(&body),
        "order_id=12&order_status_id=2&comment=Payment+%26quot%3Breview%26quot%3B+passed+%26amp%3B+ok&notify=0&override=0"
    );
    assert_eq!(
        signing::cleaned_post_md5(&body),
        "06aa1b2940a9d3cd26f9b96f428b0eb9"
    );
    let signature = signing::sign(
        "test-api-key",
        "shop.example",
        "/",
        &vector_call("Default"),
        &body,
        VECTOR_TIME,
    );
    assert_eq!(signature, "1w//OkgIFqRQZMH6BkUSuPLEYoI=");
    assert_eq!(
        signing::rawurlencode(&signature),
        "1w%2F%2FOkgIFqRQZMH6BkUSuPLEYoI%3D"
    );
}

/// Exchange 24 of the real 4.1.0.4 transcripts: host with a port, and a
/// comment with trailing spaces that the server trims before hashing.
#[test]
fn real_shop_transcript_24() {
    let body = vec![
        ("order_id", "2"),
        ("order_status_id", "5"),
        ("comment", "Paid & \"ok\" <b>x</b> café 'q'  "),
        ("notify", "0"),
        ("override", "0"),
    ];
    assert_eq!(
        serde_urlencoded::to_string(&body).unwrap(),
        "order_id=2&order_status_id=5&comment=Paid+%26+%22ok%22+%3Cb%3Ex%3C%2Fb%3E+caf%C3%A9+%27q%27++&notify=0&override=0"
    );
    assert_eq!(
        signing::cleaned_post_md5(&body),
        "7c46e9e9c98f6487dde0dce992e00cc3"
    );
    let signature = signing::sign(
        "test-test-test-test-test-test-test-test",
        "127.0.0.1:8102",
        "/",
        &vector_call("ipnsync"),
        &body,
        1_795_460_961,
    );
    assert_eq!(signature, "OkyNQoWPTY8YOB+CCQRLNR0ai78=");
    assert_eq!(
        signing::rawurlencode(&signature),
        "OkyNQoWPTY8YOB%2BCCQRLNR0ai78%3D"
    );
}

#[test]
fn php_urlencode_matches_http_build_query() {
    assert_eq!(
        signing::php_urlencode("a b~c*d-e_f.g/é"),
        "a+b%7Ec%2Ad-e_f.g%2F%C3%A9"
    );
    assert_eq!(signing::rawurlencode("a b~+/="), "a%20b~%2B%2F%3D");
}

#[test]
fn php_clean_escapes_then_trims_like_php() {
    assert_eq!(
        signing::php_clean(" <a href=\"x\">'&amp;'</a>\n"),
        "&lt;a href=&quot;x&quot;&gt;'&amp;amp;'&lt;/a&gt;"
    );
    // PHP's trim leaves Unicode spaces alone.
    assert_eq!(signing::php_clean("\u{a0}x\t\0"), "\u{a0}x");
}

// ---------------------------------------------------------------- site

#[test]
fn site_is_derived_from_base_url() {
    let cases = [
        (
            "http://127.0.0.1:8102",
            "http://127.0.0.1:8102/",
            "127.0.0.1:8102",
            "/",
        ),
        (
            "https://shop.example/",
            "https://shop.example/",
            "shop.example",
            "/",
        ),
        (
            "https://shop.example:443/shop",
            "https://shop.example/shop/",
            "shop.example",
            "/shop/",
        ),
        (
            "https://shop.example:8443/shop/",
            "https://shop.example:8443/shop/",
            "shop.example:8443",
            "/shop/",
        ),
        (
            "http://shop.example/a/b/index.php?x=1",
            "http://shop.example/a/b/",
            "shop.example",
            "/a/b/",
        ),
    ];
    for (base_url, root, host, base_path) in cases {
        let site = Site::parse(base_url).unwrap();
        assert_eq!(
            site,
            Site {
                root: root.into(),
                host: host.into(),
                base_path: base_path.into()
            },
            "{base_url}"
        );
    }
    assert!(Site::parse("not a url").is_err());
}

// -------------------------------------------------------------- update

fn update(status: ShopStatus, order_ref: &str) -> ShopUpdate {
    ShopUpdate {
        outbox_id: 42,
        event_id: 7,
        order_ref: order_ref.into(),
        outcome: Outcome::Accepted,
        previous_outcome: None,
        status,
        comment: "Payment accepted".into(),
        notify: true,
        provider: "lyra".into(),
        transaction_id: "t1".into(),
        provider_status: "AUTHORISED".into(),
        amount: None,
        customer_text: String::new(),
        earlier_attempt_unknown: false,
        by_operator: false,
    }
}

fn statuses() -> BTreeMap<Outcome, ShopStatus> {
    crate::config::default_statuses(ShopKind::OpenCart3)
        .into_iter()
        .map(|(o, st)| {
            (
                o,
                if o == Outcome::Review {
                    ShopStatus::Id(17)
                } else {
                    st
                },
            )
        })
        .collect()
}

fn rules(statuses: &BTreeMap<Outcome, ShopStatus>, tolerance: Option<u32>) -> Rules<'_> {
    Rules {
        statuses,
        tolerance,
    }
}

fn entries(p: &Plan) -> Vec<(String, String, &'static str)> {
    match p {
        Plan::Send { entries, .. } => entries
            .iter()
            .map(|h| (h.status_id.clone(), h.comment.clone(), h.notify))
            .collect(),
        Plan::AlreadyApplied(_) => panic!("expected entries, got {p:?}"),
    }
}

#[test]
fn history_fields_carry_everything_with_the_marker() {
    let st = statuses();
    let mut u = update(ShopStatus::Id(2), "12");
    u.notify = false;
    let Plan::Send { entries, .. } = plan::plan(&u, &rules(&st, None), None).unwrap() else {
        panic!("sends")
    };
    let comment = "Payment accepted\n[ipnsync update #42]";
    assert_eq!(
        entries[0].fields(Dialect::V30),
        vec![
            ("order_status_id", "2"),
            ("notify", "0"),
            ("override", "0"),
            ("comment", comment)
        ]
    );
    assert_eq!(
        entries[0].fields(Dialect::V41),
        vec![
            ("order_id", "12"),
            ("order_status_id", "2"),
            ("comment", comment),
            ("notify", "0"),
            ("override", "0")
        ]
    );
    assert_eq!(plan::comment_with_marker("  ", 5), "[ipnsync update #5]");
}

#[test]
fn the_customer_entry_carries_only_the_customer_text() {
    let st = statuses();
    let mut u = update(ShopStatus::Id(2), "12");
    u.customer_text = "Your payment for order 12 has been received.".into();
    let p = plan::plan(&u, &rules(&st, None), None).unwrap();
    assert_eq!(
        entries(&p),
        vec![
            (
                "2".into(),
                "Your payment for order 12 has been received.".into(),
                "1"
            ),
            (
                "2".into(),
                "Payment accepted\n[ipnsync update #42]".into(),
                "0"
            ),
        ]
    );
}

#[test]
fn a_resend_after_an_unknown_result_never_notifies_twice() {
    let st = statuses();
    let mut u = update(ShopStatus::Id(2), "12");
    u.customer_text = "Thanks".into();
    u.earlier_attempt_unknown = true;
    // 4.x: the order cannot be read.
    let p = plan::plan(&u, &rules(&st, None), None).unwrap();
    assert_eq!(entries(&p).len(), 1);
    assert_eq!(entries(&p)[0].2, "0");
    let Plan::Send { notes, .. } = &p else {
        unreachable!()
    };
    assert!(notes[0].contains("OpenCart 4 cannot tell"), "{notes:?}");
    // 3.0, the order shows the update's status: nothing again.
    let shown = |status_id| OrderInfo {
        status_id,
        total: "1.00".into(),
        currency: "EUR".into(),
    };
    let p = plan::plan(&u, &rules(&st, None), Some(&shown(2))).unwrap();
    assert!(matches!(p, Plan::AlreadyApplied(_)), "{p:?}");
    // 3.0, the order does not show it: sent normally.
    let p = plan::plan(&u, &rules(&st, None), Some(&shown(1))).unwrap();
    assert_eq!(entries(&p).len(), 2);
    // 3.0, the status cannot tell (same as the previous outcome's).
    u.previous_outcome = Some(Outcome::Review);
    u.status = ShopStatus::Id(17);
    u.outcome = Outcome::SuspectedFraud;
    let st2: BTreeMap<_, _> = st
        .iter()
        .map(|(o, s)| {
            (
                *o,
                if *o == Outcome::SuspectedFraud {
                    ShopStatus::Id(17)
                } else {
                    s.clone()
                },
            )
        })
        .collect();
    let p = plan::plan(&u, &rules(&st2, None), Some(&shown(17))).unwrap();
    assert_eq!(entries(&p).len(), 1, "re-sent, notify off");
    assert_eq!(entries(&p)[0].2, "0");
}

#[test]
fn an_amount_mismatch_sets_review_with_both_figures() {
    let st = statuses();
    let mut u = update(ShopStatus::Id(2), "12");
    u.amount = crate::domain::money::Money::new(4990, "EUR");
    u.customer_text = "Thanks".into();
    let order = OrderInfo {
        status_id: 1,
        total: "101.00000000".into(),
        currency: "USD".into(),
    };
    let p = plan::plan(&u, &rules(&st, Some(0)), Some(&order)).unwrap();
    let Plan::Send {
        entries: sent,
        applied_outcome,
        needs_operator,
        ..
    } = &p
    else {
        panic!("{p:?}")
    };
    assert_eq!(*applied_outcome, Some(Outcome::Review));
    assert_eq!(sent.len(), 1, "the customer is told nothing");
    assert_eq!(sent[0].status_id, "17");
    assert_eq!(sent[0].notify, "0");
    assert!(
        sent[0]
            .comment
            .contains("paid 49.90 EUR but the order is 101.00 USD"),
        "{}",
        sent[0].comment
    );
    assert!(needs_operator.as_deref().unwrap().contains("49.90 EUR"));
    // Matching figures (rate applied) mark it paid.
    let order = OrderInfo {
        status_id: 1,
        total: plan::scaled_total("58.7059", "0.85000000").unwrap(),
        currency: "EUR".into(),
    };
    let p = plan::plan(&u, &rules(&st, Some(1)), Some(&order)).unwrap();
    assert_eq!(entries(&p)[0].0, "2");
    // Check off: no review.
    let p = plan::plan(&u, &rules(&st, None), None).unwrap();
    assert_eq!(entries(&p)[0].0, "2");
}

#[test]
fn scaled_totals_are_exact() {
    assert_eq!(
        plan::scaled_total("101.0000", "1.00000000").as_deref(),
        Some("101.000000000000")
    );
    assert_eq!(plan::scaled_total("10", "2").as_deref(), Some("20"));
    assert_eq!(plan::scaled_total("0.5", "0.5").as_deref(), Some("0.25"));
    assert_eq!(plan::scaled_total("x", "1"), None);
}

#[test]
fn config_bugs_are_permanent() {
    let st = statuses();
    let code = plan::plan(
        &update(ShopStatus::Code("processing".into()), "12"),
        &rules(&st, None),
        None,
    )
    .unwrap_err();
    assert!(!code.is_transient(), "{code}");
    let order =
        plan::plan(&update(ShopStatus::Id(2), "A-12"), &rules(&st, None), None).unwrap_err();
    assert!(!order.is_transient(), "{order}");
}

// ------------------------------------------------------------- answers

fn answer(status: u16, body: &str) -> Answer {
    Answer {
        status: StatusCode::from_u16(status).unwrap(),
        headers: HeaderMap::new(),
        body: body.into(),
    }
}

#[test]
fn login_answers() {
    let ok = answer(
        200,
        r#"{"success":"Success: API session successfully started!","api_token":"be6d854acf22a56aa5676e4ce8"}"#,
    );
    assert_eq!(
        classify_login(&ok).unwrap().expose(),
        "be6d854acf22a56aa5676e4ce8"
    );
    assert_eq!(
        classify_login(&answer(200, "[]")).unwrap_err(),
        PushError::permanent("OpenCart refused the API credentials (login returned [])")
    );
    let ip = r#"{"error":{"ip":"Warning: Your IP 127.0.0.2 is not allowed to access this API!","key":"Warning: Incorrect API Key!"}}"#;
    assert_eq!(
        classify_login(&answer(200, ip)).unwrap_err(),
        PushError::permanent("Warning: Your IP 127.0.0.2 is not allowed to access this API!")
    );
    assert_eq!(
        classify_login(&answer(200, r#"{"error":"Warning: Incorrect API Key!"}"#)).unwrap_err(),
        PushError::permanent("Warning: Incorrect API Key!")
    );
    assert!(classify_login(&answer(200, "<html>oops</html>"))
        .unwrap_err()
        .is_transient());
    assert!(classify_login(&answer(503, "busy"))
        .unwrap_err()
        .is_transient());
}

#[test]
fn history_answers() {
    let success = r#"{"success":"Success: You have modified orders!"}"#;
    let done = Reply::Done(Pushed::done("Success: You have modified orders!"));
    let permission = r#"{"error":"Warning: You do not have permission to access the API!"}"#;
    let not_found = r#"{"error":"Warning: Order could not be found!"}"#;
    for dialect in [Dialect::V30, Dialect::V402, Dialect::V41] {
        assert_eq!(
            classify_history(dialect, &answer(200, success)).unwrap(),
            done
        );
        assert_eq!(
            classify_history(dialect, &answer(200, not_found)).unwrap_err(),
            PushError::permanent("Warning: Order could not be found!")
        );
        assert!(classify_history(dialect, &answer(500, "Error: …"))
            .unwrap_err()
            .is_transient());
        assert!(classify_history(dialect, &answer(429, "slow down"))
            .unwrap_err()
            .is_transient());
    }
    assert_eq!(
        classify_history(Dialect::V30, &answer(200, permission)).unwrap(),
        Reply::SessionRefused
    );
    assert!(classify_history(Dialect::V30, &answer(200, "<b>Fatal</b>"))
        .unwrap_err()
        .is_transient());
    assert_eq!(
        classify_history(
            Dialect::V402,
            &answer(404, "<!DOCTYPE html><h1>Page Not Found!</h1>")
        )
        .unwrap(),
        Reply::SessionRefused
    );
    assert_eq!(
        classify_history(Dialect::V402, &answer(200, "<html>")).unwrap(),
        Reply::SessionRefused
    );

    let forbidden = classify_history(
        Dialect::V41,
        &answer(
            403,
            r#"{"error":"You do not have permission to access this page."}"#,
        ),
    )
    .unwrap_err();
    assert!(!forbidden.is_transient());
    assert!(forbidden
        .to_string()
        .contains("You do not have permission to access this page."));
    assert!(forbidden.to_string().contains("the clock"));
    assert_eq!(
        classify_history(
            Dialect::V41,
            &answer(200, r#"{"error":"API call not found"}"#)
        )
        .unwrap_err(),
        PushError::permanent("API call not found")
    );
}

#[test]
fn json_after_php_noise_is_still_read() {
    let body = "\u{feff}<br />\n<b>Deprecated</b>: something in x.php on line 3<br />\n{\"success\":\"ok\"}";
    assert_eq!(parse_json(body).unwrap()["success"], "ok");
    assert!(parse_json("<html>\n<p>no</p>").is_none());
}

#[test]
fn tokens_are_redacted_from_errors() {
    let e = redact(
        PushError::permanent("HTTP 404: <a href=\"index.php?api_token=abc123\">"),
        "abc123",
    );
    assert!(!e.to_string().contains("abc123"));
}

#[test]
fn a_comment_only_update_keeps_the_status_and_notifies_nobody() {
    let st = statuses();
    let mut u = update(ShopStatus::Id(17), "12");
    u.outcome = Outcome::Review;
    u.previous_outcome = Some(Outcome::Review);
    u.notify = false;
    u.comment = "Analyst note: waiting for the buyer".into();
    let p = plan::plan(&u, &rules(&st, Some(0)), None).unwrap();
    assert_eq!(
        entries(&p),
        vec![(
            "17".into(),
            "Analyst note: waiting for the buyer\n[ipnsync update #42]".into(),
            "0"
        )]
    );
    // Re-sent after an unknown result: the status cannot tell, and nobody
    // is notified anyway, so it goes again as it is.
    u.earlier_attempt_unknown = true;
    let shown = OrderInfo {
        status_id: 17,
        total: "1".into(),
        currency: "EUR".into(),
    };
    let p = plan::plan(&u, &rules(&st, Some(0)), Some(&shown)).unwrap();
    assert_eq!(entries(&p).len(), 1);
}

#[test]
fn a_comment_only_update_keeps_the_status_the_merchant_set() {
    let st = statuses();
    let mut u = update(ShopStatus::Id(17), "12");
    u.outcome = Outcome::Review;
    u.previous_outcome = Some(Outcome::Review);
    u.notify = false;
    u.comment = "Analyst note: waiting for the buyer".into();
    assert!(
        rules(&st, None).needs_order(&u),
        "3.0 reads the order first"
    );
    // The merchant moved the order to Complete (5) in the admin meanwhile.
    let shown = OrderInfo {
        status_id: 5,
        total: "1".into(),
        currency: "EUR".into(),
    };
    let p = plan::plan(&u, &rules(&st, None), Some(&shown)).unwrap();
    assert_eq!(entries(&p).len(), 1);
    assert_eq!(entries(&p)[0].0, "5", "the merchant's status is kept");
}
