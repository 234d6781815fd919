use super::*;
use crate::domain::Facts;

/// The derived test vector of the protocol notes (cybersource.md §4.2).
const VECTOR_KEY_B64: &str = "aXBuc3luYy10ZXN0LWtleS0zMi1ieXRlcy1sb25nISE=";
const VECTOR_T: &str = "1735787046000";
const VECTOR_BODY: &str = r#"{"webhookId":"wh-1","productId":"decisionManager","organizationId":"mymid","eventType":"risk.casemanagement.decision.accept","eventDate":"2025-01-02T03:04:06Z","transactionTraceId":"tt-1","requestType":"NEW","payload":{"data":{"referenceNumber":"100000123","notes":[{"addedBy":"analyst","comment":"ok","date":"2025-01-02T03:04:05Z"}]}}}"#;
const FIXTURE_KEY_ID: &str = "ipnsync-test-2025";

fn key() -> Vec<u8> {
    STANDARD.decode(VECTOR_KEY_B64).unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/fixtures/cybersource/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn header(name: &str) -> String {
    String::from_utf8(fixture(&format!("{name}.sig")))
        .unwrap()
        .trim()
        .to_owned()
}

fn verifier<'a>(keys: &'a [SigningKey<'a>]) -> WebhookVerifier<'a> {
    WebhookVerifier {
        keys,
        tolerance_secs: Some(DEFAULT_TOLERANCE_SECS),
        organization_id: None,
    }
}

#[test]
fn the_reference_vector_verifies_over_payload_and_body() {
    let key = key();
    assert_eq!(key, b"ipnsync-test-key-32-bytes-long!!");
    let payload = payload_bytes(VECTOR_BODY.as_bytes()).unwrap();
    assert_eq!(
        payload,
        br#"{"data":{"referenceNumber":"100000123","notes":[{"addedBy":"analyst","comment":"ok","date":"2025-01-02T03:04:05Z"}]}}"#
    );
    assert_eq!(
        sign(&key, VECTOR_T, payload),
        "uH66msXSQz4I36Gu++S7/k4m6P0L+Orc6LQo+Dq815w="
    );
    assert_eq!(
        sign(&key, VECTOR_T, VECTOR_BODY.as_bytes()),
        "idtqPNGA/D/jCBANXSm/an5b8AzobxcOxiDhQ1bX9g0="
    );
    // The classic bug: the base64 text used as the key.
    assert_eq!(
        sign(VECTOR_KEY_B64.as_bytes(), VECTOR_T, payload),
        "OahfGemXkC2j8c0cOVCQ8mFWVzwCkvQM9gvtkv1xfnY="
    );

    let keys = [SigningKey {
        id: "bf44c857-b182-bb05-e053-34b8d30a7a72",
        key: &key,
    }];
    let now = 1_735_787_046;
    for (sig, part) in [
        (
            "uH66msXSQz4I36Gu++S7/k4m6P0L+Orc6LQo+Dq815w=",
            SignedPart::Payload,
        ),
        (
            "idtqPNGA/D/jCBANXSm/an5b8AzobxcOxiDhQ1bX9g0=",
            SignedPart::Body,
        ),
    ] {
        let h = format!("t={VECTOR_T};keyId=bf44c857-b182-bb05-e053-34b8d30a7a72;sig={sig}");
        assert_eq!(
            verify_webhook(Some(&h), VECTOR_BODY.as_bytes(), now, &verifier(&keys)),
            Ok(part)
        );
    }
    let wrong = format!(
        "t={VECTOR_T};keyId=bf44c857-b182-bb05-e053-34b8d30a7a72;sig=OahfGemXkC2j8c0cOVCQ8mFWVzwCkvQM9gvtkv1xfnY="
    );
    assert!(matches!(
        verify_webhook(Some(&wrong), VECTOR_BODY.as_bytes(), now, &verifier(&keys)),
        Err(CybersourceError::BadSignature(_))
    ));
    assert_eq!(
        fixture("reference-vector.json"),
        VECTOR_BODY.as_bytes(),
        "fixture is the vector"
    );
}

#[test]
fn every_fixture_is_signed_correctly() {
    let key = key();
    let keys = [
        SigningKey {
            id: "older-key",
            key: b"another key entirely",
        },
        SigningKey {
            id: FIXTURE_KEY_ID,
            key: &key,
        },
        SigningKey {
            id: "bf44c857-b182-bb05-e053-34b8d30a7a72",
            key: &key,
        },
    ];
    for (name, part, event) in [
        (
            "profile-review",
            SignedPart::Payload,
            "risk.profile.decision.review",
        ),
        (
            "profile-reject",
            SignedPart::Payload,
            "risk.profile.decision.reject",
        ),
        (
            "profile-monitor",
            SignedPart::Body,
            "risk.profile.decision.monitor",
        ),
        (
            "case-accept",
            SignedPart::Payload,
            "risk.casemanagement.decision.accept",
        ),
        (
            "case-reject",
            SignedPart::Payload,
            "risk.casemanagement.decision.reject",
        ),
        (
            "addnote",
            SignedPart::Payload,
            "risk.casemanagement.addnote",
        ),
        (
            "reference-vector",
            SignedPart::Payload,
            "risk.casemanagement.decision.accept",
        ),
    ] {
        let h = header(name);
        let t: u64 = parse_signature_header(&h).unwrap().t.parse().unwrap();
        let body = fixture(&format!("{name}.json"));
        let got = verify_webhook(Some(&h), &body, t / 1000 + 60, &verifier(&keys));
        assert_eq!(got, Ok(part), "{name}");
        let n = webhook_notification(&body, part, None).unwrap();
        assert_eq!(n.cybersource().unwrap().event_type, event, "{name}");
        assert!(!n.order_ref.is_empty());
    }
}

#[test]
fn parses_the_signature_header_strictly() {
    let h = parse_signature_header("t=1617830804768;keyId=bf44;sig=CzHY47nzJ+9l/vfk4CY=").unwrap();
    assert_eq!(
        h,
        SignatureHeader {
            t: "1617830804768",
            key_id: "bf44",
            sig: "CzHY47nzJ+9l/vfk4CY="
        }
    );
    // Order and spaces do not matter; unknown parts are ignored.
    let h = parse_signature_header(" sig=a== ; v=1 ; keyId=k ; t=1 ").unwrap();
    assert_eq!((h.t, h.key_id, h.sig), ("1", "k", "a=="));
    for bad in [
        "t=1;keyId=k",
        "t=1;sig=a",
        "keyId=k;sig=a",
        "t=1;t=2;keyId=k;sig=a",
        "t=1;keyId=k;sig=a;sig=b",
        "t=abc;keyId=k;sig=a",
        "t=1;keyId=k;sig",
        "",
    ] {
        assert!(
            matches!(
                parse_signature_header(bad),
                Err(CybersourceError::BadSignatureHeader(_))
            ),
            "{bad}"
        );
    }
}

#[test]
fn payload_bytes_are_the_exact_member() {
    let body = b"{\"a\":1, \"payload\" :  {\"x\": [1, 2]}  , \"b\":\"}\"}";
    assert_eq!(payload_bytes(body).unwrap(), b"{\"x\": [1, 2]}");
    let array = br#"{"payload":[{"data":{}}],"eventType":"e"}"#;
    assert_eq!(payload_bytes(array).unwrap(), br#"[{"data":{}}]"#);
    assert!(
        payload_bytes(br#"{"payload":{},"payload":{}}"#).is_none(),
        "twice"
    );
    assert!(payload_bytes(br#"{"other":{}}"#).is_none());
    assert!(payload_bytes(b"not json").is_none());
    assert!(payload_bytes(br#"["payload"]"#).is_none());
}

#[test]
fn hostile_webhooks_are_refused() {
    let key = key();
    let keys = [SigningKey {
        id: FIXTURE_KEY_ID,
        key: &key,
    }];
    let body = fixture("case-accept.json");
    let h = header("case-accept");
    let t: u64 = parse_signature_header(&h).unwrap().t.parse().unwrap();
    let now = t / 1000;
    let v = verifier(&keys);

    assert_eq!(
        verify_webhook(None, &body, now, &v),
        Err(CybersourceError::MissingSignature)
    );
    // An old (replayed) notification, and one from the future.
    for skew in [-(16 * 60), 16 * 60] {
        let err = verify_webhook(Some(&h), &body, (now as i64 + skew) as u64, &v).unwrap_err();
        assert!(matches!(err, CybersourceError::Stale { .. }), "{err}");
        assert_eq!(err.refusal(), Refusal::Unauthenticated);
    }
    // Within the window, and with the window off.
    assert!(verify_webhook(Some(&h), &body, now + 14 * 60, &v).is_ok());
    let off = WebhookVerifier {
        tolerance_secs: None,
        ..v
    };
    assert!(verify_webhook(Some(&h), &body, now + 365 * 86400, &off).is_ok());
    // An unknown keyId: named in the error (it is not a secret).
    let unknown = h.replace(FIXTURE_KEY_ID, "retired-2023");
    let err = verify_webhook(Some(&unknown), &body, now, &v).unwrap_err();
    assert_eq!(err, CybersourceError::UnknownKey("retired-2023".into()));
    assert_eq!(err.refusal(), Refusal::Unauthenticated);
    // Re-serialised JSON (what a proxy or a naive verifier would produce).
    let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
    let pretty = serde_json::to_vec_pretty(&value).unwrap();
    assert!(matches!(
        verify_webhook(Some(&h), &pretty, now, &v),
        Err(CybersourceError::BadSignature(_))
    ));
    // A decision flipped in the payload.
    let flipped = String::from_utf8(body.clone())
        .unwrap()
        .replace("100000123", "100000999");
    assert!(verify_webhook(Some(&h), flipped.as_bytes(), now, &v).is_err());
    // The signature of another timestamp.
    let moved = h.replace(&t.to_string(), &(t + 1000).to_string());
    assert!(verify_webhook(Some(&moved), &body, now, &v).is_err());
    // Error texts never carry the signature.
    let sig = parse_signature_header(&h).unwrap().sig.to_owned();
    for e in [
        verify_webhook(Some(&moved), &body, now, &v).unwrap_err(),
        verify_webhook(Some(&unknown), &body, now, &v).unwrap_err(),
    ] {
        assert!(!e.to_string().contains(&sig));
    }
}

#[test]
fn maps_a_case_decision_and_checks_the_organization() {
    let body = fixture("case-reject.json");
    let n = webhook_notification(&body, SignedPart::Payload, Some("ipnsync_demo")).unwrap();
    assert_eq!(n.order_ref, "100000124");
    assert_eq!(n.transaction_id, "7420158000006543904951");
    let Facts::Cybersource(f) = &n.facts else {
        panic!("cybersource facts")
    };
    assert_eq!(f.reviewer, "jdoe", "author of the last note");
    assert_eq!(f.notes.len(), 2);
    assert_eq!(f.signed, "payload");
    assert_eq!(f.request_id, "7420158000006543904951", "the case to act on");
    assert_eq!(n.status(), "reject");
    assert_eq!(n.origin(), "risk.casemanagement.decision.reject");

    let err = webhook_notification(&body, SignedPart::Payload, Some("other_org")).unwrap_err();
    assert_eq!(err.refusal(), Refusal::Forbidden);

    // Older token-style webhooks carry an array, and no request id: the
    // order reference stands for the transaction.
    let array = br#"{"eventType":"risk.casemanagement.decision.accept","payload":[{"organizationId":"o","data":{"referenceNumber":"42"}}]}"#;
    let n = webhook_notification(array, SignedPart::Body, Some("o")).unwrap();
    assert_eq!(
        (n.order_ref.as_str(), n.transaction_id.as_str()),
        ("42", "42")
    );
    // …but the order reference is no Decision Manager case id.
    assert_eq!(n.cybersource().unwrap().request_id, "");

    for (bad, refusal) in [
        (
            &br#"{"payload":{"data":{"referenceNumber":"1"}}}"#[..],
            Refusal::Malformed,
        ),
        (
            br#"{"eventType":"e","payload":{"data":{}}}"#,
            Refusal::Malformed,
        ),
        (br#"{"eventType":"e","payload":{}}"#, Refusal::Malformed),
        (
            br#"{"eventType":"e","encryptedRequest":"eyJ...","payload":{}}"#,
            Refusal::Malformed,
        ),
        (
            br#"{"eventType":"e","eventType":"f","payload":{}}"#,
            Refusal::Malformed,
        ),
        (b"[]", Refusal::Malformed),
    ] {
        let err = webhook_notification(bad, SignedPart::Body, None).unwrap_err();
        assert_eq!(err.refusal(), refusal, "{err}");
    }
}

/// Every card-processing event: the fixture verifies over the part it was
/// signed with, parses (flat payload: `id`, `status`,
/// `clientReferenceInformation.code`), and is decided per rules cs8 to cs10.
#[test]
fn card_processing_events_are_decided() {
    use crate::domain::{assess, outcome::without_effect, Outcome::*};
    let key = key();
    let keys = [SigningKey {
        id: FIXTURE_KEY_ID,
        key: &key,
    }];
    // (fixture, event, signed part, outcome or None for no effect, rule)
    let table = [
        (
            "cp-payment-accept",
            "payments.payments.accept",
            SignedPart::Payload,
            Some(Accepted),
            "cs9",
        ),
        (
            "cp-payment-review",
            "payments.payments.review",
            SignedPart::Payload,
            Some(Review),
            "cs9",
        ),
        // DECLINED (failed) agrees with the event's rejection.
        (
            "cp-payment-reject",
            "payments.payments.reject",
            SignedPart::Payload,
            Some(Rejected),
            "cs9",
        ),
        (
            "cp-payment-partial",
            "payments.payments.partial.approval",
            SignedPart::Payload,
            Some(Review),
            "cs9",
        ),
        (
            "cp-reversal-accept",
            "payments.reversals.accept",
            SignedPart::Payload,
            Some(Canceled),
            "cs9",
        ),
        (
            "cp-reversal-reject",
            "payments.reversals.reject",
            SignedPart::Payload,
            None,
            "cs10",
        ),
        // Signed over the whole body: the event type is authenticated.
        (
            "cp-capture-accept",
            "payments.captures.accept",
            SignedPart::Body,
            Some(Accepted),
            "cs9",
        ),
        (
            "cp-capture-review",
            "payments.captures.review",
            SignedPart::Payload,
            Some(Review),
            "cs9",
        ),
        (
            "cp-capture-reject",
            "payments.captures.reject",
            SignedPart::Payload,
            Some(Failed),
            "cs9",
        ),
        (
            "cp-credit-accept",
            "payments.credits.accept",
            SignedPart::Body,
            Some(Refunded),
            "cs9",
        ),
        (
            "cp-credit-review",
            "payments.credits.review",
            SignedPart::Payload,
            None,
            "cs10",
        ),
        (
            "cp-credit-reject",
            "payments.credits.reject",
            SignedPart::Payload,
            None,
            "cs10",
        ),
        (
            "cp-credit-partial",
            "payments.credits.partial.approval",
            SignedPart::Payload,
            None,
            "cs10",
        ),
    ];
    for (name, event, part, outcome, rule) in table {
        let h = header(name);
        let t: u64 = parse_signature_header(&h).unwrap().t.parse().unwrap();
        let body = fixture(&format!("{name}.json"));
        assert_eq!(
            verify_webhook(Some(&h), &body, t / 1000, &verifier(&keys)),
            Ok(part),
            "{name}"
        );
        let n = webhook_notification(&body, part, Some("ipnsync_demo")).unwrap();
        assert_eq!(n.order_ref, "100000400", "{name}");
        let f = n.cybersource().unwrap();
        assert_eq!(f.event_type, event);
        assert!(f.request_id.starts_with("74201600"), "{name}");
        let a = assess(&n);
        assert_eq!(a.outcome, outcome.unwrap_or(Pending), "{name}: {}", a.rule);
        assert!(a.rule.starts_with(rule), "{name}: {}", a.rule);
        assert_eq!(without_effect(&n).is_some(), outcome.is_none(), "{name}");
    }
    // The same capture and credit with only the payload signed: their
    // status (PENDING) confirms nothing, so cs8 holds them for review.
    for name in ["cp-capture-accept", "cp-credit-accept"] {
        let body = fixture(&format!("{name}.json"));
        let n = webhook_notification(&body, SignedPart::Payload, None).unwrap();
        let a = assess(&n);
        assert_eq!(a.outcome, Review, "{name}");
        assert!(a.rule.starts_with("cs8"), "{name}: {}", a.rule);
    }
}

#[test]
fn the_organization_comes_from_the_signed_part() {
    let body = |top: &str, inner: &str| {
        format!(
            r#"{{"organizationId":"{top}","eventType":"risk.casemanagement.addnote","payload":{{"organizationId":"{inner}","data":{{"referenceNumber":"1"}}}}}}"#
        )
        .into_bytes()
    };
    // Only the payload signed: the unsigned top-level member cannot
    // override the payload's to pass the check.
    let forged = body("ipnsync_demo", "someone_else");
    let err = webhook_notification(&forged, SignedPart::Payload, Some("ipnsync_demo")).unwrap_err();
    assert_eq!(err.refusal(), Refusal::Forbidden);
    assert!(
        err.to_string().contains("not covered by the signature"),
        "{err}"
    );
    // Both signed and disagreeing: refused too.
    let err = webhook_notification(&forged, SignedPart::Body, None).unwrap_err();
    assert_eq!(err.refusal(), Refusal::Forbidden);
    // Agreeing: fine; the signed payload's value is the one recorded.
    let n = webhook_notification(&body("o", "o"), SignedPart::Payload, Some("o")).unwrap();
    assert_eq!(n.cybersource().unwrap().organization_id, "o");
    // A payload naming another organization fails the configured check
    // even without a top-level member.
    let only_inner = br#"{"eventType":"risk.casemanagement.addnote","payload":{"organizationId":"x","data":{"referenceNumber":"1"}}}"#;
    let err = webhook_notification(only_inner, SignedPart::Payload, Some("o")).unwrap_err();
    assert!(matches!(err, CybersourceError::OrganizationMismatch { .. }));
}
