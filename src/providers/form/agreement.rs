use super::*;
use proptest::prelude::*;

/// Bytes a form body is made of, with the separators and escapes
/// frequent enough that most bodies are near-valid forms.
fn body() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(
        prop_oneof![
            4 => proptest::sample::select(b"&=%+".to_vec()),
            4 => proptest::sample::select(b"0123456789abcdefABCDEF".to_vec()),
            4 => proptest::sample::select(b"vads_xyz".to_vec()),
            1 => any::<u8>(),
        ],
        0..160,
    )
}

/// Well-formed bodies: arbitrary names and values, encoded.
fn encoded() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(("[a-z_\\x00-\\x7f]{0,20}|.{0,6}", ".{0,12}"), 0..24)
        .prop_map(|pairs| serde_urlencoded::to_string(pairs).unwrap().into_bytes())
}

type Pairs = Vec<(String, String)>;

/// The fields in received order, then by name.
fn fields(form: &Form) -> (Pairs, Pairs) {
    let own = |(n, v): (&str, &str)| (n.to_owned(), v.to_owned());
    (
        form.iter().map(own).collect(),
        form.iter_by_name().map(own).collect(),
    )
}

fn agree(body: &[u8]) -> Result<(), TestCaseError> {
    let strict = parse_strict(body);
    match parse_fast(body) {
        Some(fast) => {
            let strict = strict.expect("the strict decoder accepts what the fast one does");
            prop_assert_eq!(fields(&fast), fields(&strict));
            let reference: Vec<(String, String)> = serde_urlencoded::from_bytes(body).unwrap();
            prop_assert_eq!(&fields(&fast).0, &reference);
            for (name, value) in &reference {
                prop_assert_eq!(fast.get(name), Some(value.as_str()));
            }
            prop_assert_eq!(parse(body), Ok(fast));
        }
        None => {
            prop_assert!(strict.is_err() || std::str::from_utf8(body).is_err());
            prop_assert_eq!(parse(body), strict);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn fast_decoder_agrees_with_strict(body in body()) {
        agree(&body)?;
    }

    #[test]
    fn fast_decoder_agrees_on_encoded_forms(body in encoded()) {
        agree(&body)?;
    }

    /// Sorting by 16-byte keys orders names as a byte-wise stable sort
    /// does, and lookups find the first of equal names, whatever the
    /// names share (long common prefixes, NUL bytes, prefixes of each
    /// other).
    #[test]
    fn keyed_order_is_byte_wise_order(
        pairs in proptest::collection::vec(
            ("(vads_threeds_ca|ab)[\\x00a-c]{0,20}", "[a-z]{0,3}"), 0..30)
    ) {
        let form = Form::from_pairs(pairs.clone());
        let mut sorted = pairs.clone();
        sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        let ours: Vec<(String, String)> =
            form.iter_by_name().map(|(n, v)| (n.into(), v.into())).collect();
        prop_assert_eq!(ours, sorted);
        for (name, _) in &pairs {
            let first = pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
            prop_assert_eq!(form.get(name), first);
        }
        prop_assert_eq!(form.get("ab\u{0}"), pairs.iter().find(|(n, _)| n == "ab\u{0}").map(|(_, v)| v.as_str()));
    }
}
