use super::*;

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/mpgs/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse(name: &str) -> Notification {
    notification(
        &fixture(name),
        Some("notif-1"),
        Some("TESTMERCHANT01"),
        OrderRefField::OrderId,
    )
    .unwrap()
}

#[test]
fn compares_the_secret_with_every_configured_one() {
    let secrets = ["current-secret-32-characters-long", "previous-secret"];
    assert_eq!(
        verify(Some("current-secret-32-characters-long"), &secrets),
        Ok(())
    );
    assert_eq!(verify(Some("previous-secret"), &secrets), Ok(()));
    assert_eq!(
        verify(Some("previous-secreT"), &secrets),
        Err(MpgsError::BadSecret)
    );
    assert_eq!(verify(Some(""), &secrets), Err(MpgsError::BadSecret));
    assert_eq!(verify(None, &secrets), Err(MpgsError::MissingSecret));
    assert_eq!(
        MpgsError::BadSecret.refusal(),
        Refusal::Unauthenticated,
        "401"
    );
}

#[test]
fn reads_the_review_sample() {
    let n = parse("authorization-review-required.json");
    assert_eq!(n.order_ref, "100000300");
    assert_eq!(n.transaction_id, "1");
    assert_eq!(n.amount_minor, Some(10000));
    assert_eq!(n.currency, "USD");
    let f = n.mpgs().unwrap();
    assert_eq!(f.transaction_type, "AUTHORIZATION");
    assert_eq!(f.result, "SUCCESS");
    assert_eq!(f.gateway_code, "APPROVED");
    assert_eq!(f.risk_gateway_code, "REVIEW_REQUIRED");
    assert_eq!(f.review_decision, "PENDING");
    assert_eq!(f.risk_score, Some(85));
    assert_eq!(
        f.risk_rules[0],
        ("MERCHANT_BIN_RANGE".into(), "REVIEW".into())
    );
    assert_eq!(f.card_number, "414767xxxxxx0003");
    assert_eq!(f.notification_id, "notif-1");
    assert_eq!(n.status(), "APPROVED");
    assert_eq!(n.origin(), "WEB_SERVICES_API");
}

#[test]
fn reads_risk_from_the_legacy_place_and_prefers_the_current_one() {
    let n = parse("payment-legacy-risk.json");
    assert_eq!(n.mpgs().unwrap().risk_gateway_code, "ACCEPTED");
    let both = br#"{"order":{"id":"1"},"transaction":{"id":"1","type":"PAYMENT"},
        "response":{"gatewayCode":"APPROVED","risk":{"gatewayCode":"ACCEPTED"}},
        "risk":{"response":{"gatewayCode":"REJECTED"}}}"#;
    let n = notification(both, None, None, OrderRefField::OrderId).unwrap();
    assert_eq!(n.mpgs().unwrap().risk_gateway_code, "REJECTED");
}

#[test]
fn a_follow_on_operation_names_the_payment_it_acts_on() {
    let n = parse("void-authorization.json");
    assert_eq!(n.transaction_id, "1", "the voided authorisation");
    assert_eq!(n.transaction_number, "2");
    assert_eq!(n.mpgs().unwrap().transaction_id, "2");
}

#[test]
fn order_reference_field_is_configurable() {
    let body = fixture("authorization-approved.json");
    let n = notification(&body, None, None, OrderRefField::OrderReference).unwrap();
    assert_eq!(n.order_ref, "R-100000300");
    assert_eq!(n.mpgs().unwrap().order_id, "100000300");
}

#[test]
fn refuses_other_merchants_and_incomplete_bodies() {
    let body = fixture("authorization-approved.json");
    let err = notification(&body, None, Some("OTHER"), OrderRefField::OrderId).unwrap_err();
    assert_eq!(err.refusal(), Refusal::Forbidden);
    for bad in [
        &b"not json"[..],
        br#"{"transaction":{"id":"1","type":"PAYMENT"}}"#,
        br#"{"order":{"id":""},"transaction":{"id":"1","type":"PAYMENT"}}"#,
        br#"{"order":{"id":"1"},"transaction":{"type":"PAYMENT"}}"#,
        br#"{"order":{"id":"1"},"transaction":{"id":"1"}}"#,
        br#"{"order":{"id":"1"},"order":{"id":"2"},"transaction":{"id":"1","type":"PAYMENT"}}"#,
    ] {
        let err = notification(bad, None, None, OrderRefField::OrderId).unwrap_err();
        assert_eq!(err.refusal(), Refusal::Malformed, "{err}");
    }
    let err = notification(
        br#"{"order":{"id":"1"},"transaction":{"id":"1","type":"PAYMENT"}}"#,
        None,
        None,
        OrderRefField::OrderReference,
    )
    .unwrap_err();
    assert_eq!(err, MpgsError::MissingField("order.reference"));
}

#[test]
fn amounts_are_decimal_never_float() {
    assert_eq!(decimal_to_minor("100.00", "USD"), Some(10000));
    assert_eq!(decimal_to_minor("0.1", "EUR"), Some(10));
    assert_eq!(decimal_to_minor("19.99", "EUR"), Some(1999));
    assert_eq!(decimal_to_minor("1234", "JPY"), Some(1234));
    assert_eq!(decimal_to_minor("-5.5", "USD"), Some(-550));
    assert_eq!(
        decimal_to_minor("1.005", "USD"),
        None,
        "more decimals than cents"
    );
    assert_eq!(decimal_to_minor("1.50", "JPY"), None);
    assert_eq!(decimal_to_minor("1e2", "USD"), None);
    assert_eq!(decimal_to_minor("10.00", "SEK"), None, "minor unit unknown");
    // 0.1 + 0.2 style values stay exact.
    assert_eq!(
        decimal_to_minor("9007199254740.99", "USD"),
        Some(900719925474099)
    );
}
