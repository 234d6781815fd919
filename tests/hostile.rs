//! Hostile input, property-tested: the parsers never panic, and nothing
//! without a valid signature gets through.

use ipnsync::providers::form::{self, Form};
use ipnsync::providers::lyra::{self, FormVerifier, Mode, SignAlgo};
use proptest::prelude::*;

const KEY: &str = "1122334455667788";

fn verifier(algo: SignAlgo) -> FormVerifier<'static> {
    FormVerifier {
        mode: Mode::Test,
        algo,
        key: KEY,
        site_id: None,
    }
}

fn field() -> impl Strategy<Value = (String, String)> {
    (
        prop_oneof!["vads_[a-z_]{1,20}", "[a-zA-Z_%+=&]{1,10}"],
        any::<String>(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Arbitrary bytes: an error or a form, never a panic.
    #[test]
    fn form_parser_never_panics(body in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = form::parse(&body);
    }

    /// Whatever decodes re-encodes to the same fields.
    #[test]
    fn form_round_trips(fields in proptest::collection::vec(field(), 0..40)) {
        let mut seen = std::collections::HashSet::new();
        let fields: Vec<_> = fields.into_iter().filter(|(n, _)| seen.insert(n.clone())).collect();
        let f = Form::from_pairs(fields);
        prop_assert_eq!(form::parse(f.encode().as_bytes()).unwrap(), f);
    }

    /// A random or altered signature never verifies, and a correct one
    /// always does, whatever the fields hold.
    #[test]
    fn only_the_right_signature_verifies(
        fields in proptest::collection::vec(field(), 0..30),
        forged in "[A-Za-z0-9+/=]{0,60}",
        hmac in any::<bool>(),
    ) {
        let algo = if hmac { SignAlgo::HmacSha256 } else { SignAlgo::Sha1 };
        let mut seen = std::collections::HashSet::new();
        let mut pairs: Vec<(String, String)> = fields
            .into_iter()
            .filter(|(n, _)| n != "signature" && n != "vads_ctx_mode" && seen.insert(n.clone()))
            .collect();
        pairs.push(("vads_ctx_mode".into(), "TEST".into()));
        let unsigned = Form::from_pairs(pairs.clone());
        let good = lyra::form_signature(&unsigned, KEY, algo);

        let mut with_forged = pairs.clone();
        with_forged.push(("signature".into(), forged.clone()));
        let result = lyra::verify_form(&Form::from_pairs(with_forged), &verifier(algo));
        prop_assert_eq!(result.is_ok(), forged == good);

        let mut signed = pairs;
        signed.push(("signature".into(), good));
        let body = Form::from_pairs(signed).encode();
        let parsed = form::parse(body.as_bytes()).unwrap();
        prop_assert!(lyra::verify_form(&parsed, &verifier(algo)).is_ok());
    }

    /// Changing any single vads_ value breaks the signature.
    #[test]
    fn any_tampered_value_is_refused(index in 0usize..68, extra in "[a-z0-9]{1,5}") {
        let body = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/lyra-form/authorised.txt")).unwrap();
        let parsed = form::parse(&body).unwrap();
        let pairs: Vec<(String, String)> = parsed.iter().map(|(n, v)| (n.to_owned(), v.to_owned())).collect();
        let i = index % pairs.len();
        prop_assume!(pairs[i].0 != "signature");
        let mut tampered = pairs.clone();
        tampered[i].1.push_str(&extra);
        prop_assert!(lyra::verify_form(&Form::from_pairs(tampered), &verifier(SignAlgo::HmacSha256)).is_err());
    }

    /// The REST answer is only parsed after the hash verifies; arbitrary
    /// (even signed) JSON never panics the mapper.
    #[test]
    fn rest_answers_never_panic(answer in any::<String>(), json in proptest::option::of(arb_json())) {
        let answer = json.unwrap_or(answer);
        let hash = lyra::rest_hash(&answer, "pw");
        let f = Form::from_pairs([
            ("kr-hash", hash.as_str()),
            ("kr-hash-key", "password"),
            ("kr-hash-algorithm", "sha256_hmac"),
            ("kr-answer", answer.as_str()),
        ]);
        prop_assert!(lyra::verify_rest(&f, "pw").is_ok());
        prop_assert!(lyra::verify_rest(&f, "other").is_err());
        let _ = lyra::rest_notification(&f, Mode::Test, None);
    }
}

fn arb_json() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        "[A-Z_]{0,12}".prop_map(serde_json::Value::from),
    ];
    let value = leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("orderDetails".to_owned()),
                    Just("transactions".to_owned()),
                    Just("detailedStatus".to_owned()),
                    Just("mode".to_owned()),
                    Just("transactionDetails".to_owned()),
                    Just("fraudManagement".to_owned()),
                    "[a-z]{1,8}",
                ],
                inner,
                0..5
            )
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    value.prop_map(|v| v.to_string())
}

mod json_and_xml {
    use ipnsync::providers::cybersource::{self, cmos, SignedPart};
    use ipnsync::providers::form::Form;
    use ipnsync::providers::mpgs::{self, OrderRefField};
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            "[A-Za-z_\\\\\"]{0,10}".prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(
                    prop_oneof![
                        Just("payload".to_owned()),
                        Just("data".to_owned()),
                        Just("eventType".to_owned()),
                        Just("order".to_owned()),
                        Just("transaction".to_owned()),
                        Just("risk".to_owned()),
                        Just("response".to_owned()),
                        Just("result".to_owned()),
                        "[a-zA-Z]{1,8}",
                    ],
                    inner,
                    0..6
                )
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The raw `payload` scanner never panics, and on any JSON object
        /// with a payload member it returns exactly that member's bytes.
        #[test]
        fn payload_scanner_finds_the_member_bytes(
            noise in proptest::collection::vec(any::<u8>(), 0..512),
            other in json_value(),
            payload in json_value(),
        ) {
            let _ = cybersource::payload_bytes(&noise);
            let payload_text = payload.to_string();
            let body = format!("{{\"eventType\":{other},\"payload\":{payload_text}}}");
            prop_assert_eq!(cybersource::payload_bytes(body.as_bytes()), Some(payload_text.as_bytes()));
        }

        /// No header a forger can write verifies without the key.
        #[test]
        fn forged_cybersource_signatures_are_refused(
            t in 0u64..4_000_000_000,
            key_id in "[a-z0-9-]{0,12}",
            sig in "[A-Za-z0-9+/=]{0,48}",
            junk in any::<String>(),
            body in any::<String>(),
        ) {
            let keys = [cybersource::SigningKey { id: "key-1", key: b"0123456789abcdef0123456789abcdef" }];
            let v = cybersource::WebhookVerifier { keys: &keys, tolerance_secs: None, organization_id: None };
            for header in [format!("t={t};keyId={key_id};sig={sig}"), format!("t={t};keyId=key-1;sig={sig}"), junk] {
                prop_assert!(cybersource::verify_webhook(Some(&header), body.as_bytes(), t, &v).is_err());
            }
        }

        /// Arbitrary (as if correctly signed) JSON never panics the mappers.
        #[test]
        fn json_mappers_never_panic(value in json_value(), raw in any::<String>()) {
            for body in [value.to_string(), raw] {
                let _ = cybersource::webhook_notification(body.as_bytes(), SignedPart::Body, None);
                let _ = mpgs::notification(body.as_bytes(), Some("id"), None, OrderRefField::OrderId);
            }
        }

        /// Arbitrary text and XML-looking input never panics the CMOS parser,
        /// and entity declarations are always refused.
        #[test]
        fn cmos_parser_never_panics(text in any::<String>(), tag in "[A-Za-z]{1,12}", value in "[^<&]{0,20}") {
            let _ = cmos::parse_document(&text);
            let doc = format!("<CaseManagementOrderStatus><Update><{tag}>{value}</{tag}></Update></CaseManagementOrderStatus>");
            let _ = cmos::notifications(&Form::from_pairs([("content", doc.as_str())]), None);
            let evil = format!("<!DOCTYPE x [<!ENTITY e \"{value}\">]><CaseManagementOrderStatus>&e;</CaseManagementOrderStatus>");
            prop_assert!(cmos::parse_document(&evil).is_err());
        }
    }
}
