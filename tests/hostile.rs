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
        let _ = lyra::rest_notification(&f, Mode::Test);
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
