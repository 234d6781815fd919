use super::*;

fn fixture(name: &str) -> Form {
    let path = format!("{}/fixtures/cybersource/{name}", env!("CARGO_MANIFEST_DIR"));
    let body = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    crate::providers::form::parse(&body).unwrap()
}

#[test]
fn parses_every_update_in_order() {
    let ns = notifications(&fixture("cmos-updates.txt"), Some("ipnsync_demo")).unwrap();
    assert_eq!(ns.len(), 3);
    let refs: Vec<&str> = ns.iter().map(|n| n.order_ref.as_str()).collect();
    assert_eq!(refs, ["100000200", "100000201", "100000202"]);
    let first = ns[0].cybersource().unwrap();
    assert_eq!(first.channel, CybersourceChannel::Cmos);
    assert_eq!(first.original_decision, "REVIEW");
    assert_eq!(first.new_decision, "ACCEPT");
    assert_eq!(first.reviewer, "jdoe");
    assert_eq!(
        first.reviewer_comments,
        "Verified with the buyer & the issuer."
    );
    assert_eq!(
        first.notes,
        vec![CaseNote {
            added_by: "jdoe".into(),
            comment: "Took ownership.".into(),
            date: "2025-03-12 10:30:25".into()
        }]
    );
    assert_eq!(ns[0].transaction_id, "4720554329436778504102");
    assert_eq!(ns[1].cybersource().unwrap().new_decision, "REJECT");
    let note = ns[2].cybersource().unwrap();
    assert!(note.new_decision.is_empty(), "notes only");
    assert_eq!(ns[2].status(), "NOTE");
    // The FollowonResult's inner RequestID and Decision are not the update's.
    assert_ne!(first.new_decision, "Accept");
}

#[test]
fn refuses_entities_and_internal_dtds() {
    for name in [
        "cmos-hostile-entities.txt",
        "cmos-hostile-xxe.txt",
        "cmos-hostile-undeclared-entity.txt",
    ] {
        let err = notifications(&fixture(name), None).unwrap_err();
        assert_eq!(err.refusal(), Refusal::Malformed, "{name}: {err}");
    }
    for (xml, expected) in [
        (
            r#"<!DOCTYPE Other SYSTEM "x.dtd"><CaseManagementOrderStatus/>"#,
            CmosError::WrongDoctype("Other".into()),
        ),
        (r#"<Other/>"#, CmosError::WrongRoot),
        ("", CmosError::WrongRoot),
        (
            r#"<CaseManagementOrderStatus><Update RequestID="1"/></CaseManagementOrderStatus>"#,
            CmosError::MissingReference,
        ),
    ] {
        let form = Form::from_pairs([("content", xml)]);
        assert_eq!(notifications(&form, None).unwrap_err(), expected, "{xml}");
    }
    let unclosed = Form::from_pairs([(
        "content",
        "<CaseManagementOrderStatus><Update></CaseManagementOrderStatus>",
    )]);
    assert!(matches!(
        notifications(&unclosed, None),
        Err(CmosError::BadXml(_))
    ));
    let truncated = Form::from_pairs([(
        "content",
        r#"<CaseManagementOrderStatus><Update MerchantReferenceNumber="1"><NewDecision>ACCEPT"#,
    )]);
    assert!(matches!(
        notifications(&truncated, None),
        Err(CmosError::BadXml(_))
    ));
    assert_eq!(
        notifications(&Form::default(), None).unwrap_err(),
        CmosError::MissingContent
    );
}

#[test]
fn checks_merchant_token_and_peer() {
    let err = notifications(&fixture("cmos-updates.txt"), Some("someone_else")).unwrap_err();
    assert_eq!(err.refusal(), Refusal::Forbidden);

    let nets: Vec<Cidr> = vec!["203.0.113.0/24".parse().unwrap()];
    let v = CmosVerifier {
        token: "a-long-secret-token-123",
        allow_from: &nets,
    };
    let inside: IpAddr = "203.0.113.10".parse().unwrap();
    let outside: IpAddr = "198.51.100.1".parse().unwrap();
    assert_eq!(verify(Some("a-long-secret-token-123"), inside, &v), Ok(()));
    assert_eq!(
        verify(Some("a-long-secret-token-124"), inside, &v),
        Err(CmosError::BadToken)
    );
    assert_eq!(verify(Some(""), inside, &v), Err(CmosError::BadToken));
    assert_eq!(verify(None, inside, &v), Err(CmosError::MissingToken));
    let err = verify(Some("a-long-secret-token-123"), outside, &v).unwrap_err();
    assert_eq!(err.refusal(), Refusal::Forbidden);
    // A wrong token from outside is a 401: the allow-list is not revealed.
    assert_eq!(
        verify(Some("nope"), outside, &v).unwrap_err().refusal(),
        Refusal::Unauthenticated
    );
    let open = CmosVerifier {
        allow_from: &[],
        ..v
    };
    assert_eq!(
        verify(Some("a-long-secret-token-123"), outside, &open),
        Ok(())
    );
}

#[test]
fn limits_updates_and_depth() {
    let many = format!(
        "<CaseManagementOrderStatus>{}</CaseManagementOrderStatus>",
        r#"<Update MerchantReferenceNumber="1"/>"#.repeat(MAX_UPDATES + 1)
    );
    assert_eq!(parse_document(&many), Err(CmosError::TooManyUpdates));
    let deep = format!(
        "<CaseManagementOrderStatus>{}{}</CaseManagementOrderStatus>",
        "<a>".repeat(20),
        "</a>".repeat(20)
    );
    assert!(matches!(parse_document(&deep), Err(CmosError::BadXml(_))));
}

#[test]
fn a_document_without_updates_is_one_note_about_no_order() {
    let xml = r#"<?xml version="1.0"?><CaseManagementOrderStatus xmlns="http://reports.cybersource.com/reports/cmos/1.0" MerchantID="ipnsync_demo" Version="1.1"></CaseManagementOrderStatus>"#;
    let body = format!("content={}", urlencoding(xml));
    let form = crate::providers::form::parse(body.as_bytes()).unwrap();
    let ns = notifications(&form, Some("ipnsync_demo")).unwrap();
    assert_eq!(ns.len(), 1, "stored, never an empty list");
    let n = &ns[0];
    assert!(n.order_ref.is_empty());
    let f = n.cybersource().unwrap();
    assert_eq!(f.channel, CybersourceChannel::Cmos);
    assert!(f.new_decision.is_empty());
    assert_eq!(f.organization_id, "ipnsync_demo");
    assert!(crate::domain::outcome::without_effect(n).is_some());
    // The merchant is still checked.
    assert!(matches!(
        notifications(&form, Some("someone_else")),
        Err(CmosError::MerchantMismatch { .. })
    ));
}

fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
