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
            // By name: a stable byte-wise sort of the received fields.
            let mut sorted = reference.clone();
            sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            prop_assert_eq!(&fields(&fast).1, &sorted);
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

/// A name near the known ones (`names`): known names, their neighbours
/// in byte order (a byte more or less, a case changed) and unknown
/// `vads_*` names, so that bodies mix the numbered path and the
/// byte-wise one.
fn near_known_name() -> impl Strategy<Value = String> {
    let known = || proptest::sample::select(names::NAMES).prop_map(str::to_owned);
    prop_oneof![
        6 => known(),
        1 => (known(), "[\\x00a-z_A]{1,3}").prop_map(|(n, tail)| n + &tail),
        1 => known().prop_map(|n| n[..n.len() - 1].to_owned()),
        1 => known().prop_map(|n| n.to_uppercase()),
        1 => "vads_(ext_info_|cust_|threeds_|trans_)[a-z_]{0,12}",
        1 => "[a-z_]{1,8}",
    ]
}

/// Bodies of such names, some repeated, in any order, with values and
/// names encoded in either of the ways a form allows (a name may arrive
/// as `vads%5Famount` and still be a known name once decoded).
fn near_known_body() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec((near_known_name(), ".{0,8}", any::<bool>(), 0..4u8), 0..40).prop_map(
        |fields| {
            let mut body = Vec::new();
            let mut seen = Vec::new();
            for (name, value, escape, repeat) in fields {
                // Sometimes the same name again (a duplicate).
                let name = match (repeat, seen.last()) {
                    (0, Some(previous)) => String::clone(previous),
                    _ => name,
                };
                seen.push(name.clone());
                if !body.is_empty() {
                    body.push(b'&');
                }
                let name_bytes = if escape {
                    name.bytes()
                        .flat_map(|b| format!("%{b:02X}").into_bytes())
                        .collect()
                } else {
                    serde_urlencoded::to_string([(name.as_str(), "")])
                        .unwrap()
                        .trim_end_matches('=')
                        .as_bytes()
                        .to_vec()
                };
                body.extend_from_slice(&name_bytes);
                body.push(b'=');
                let value = serde_urlencoded::to_string([("", value.as_str())]).unwrap();
                body.extend_from_slice(&value.as_bytes()[1..]);
            }
            body
        },
    )
}

/// What every decoder's form must answer, however it was indexed: each
/// name (known or not) finds the first of its fields, by name and by
/// number; the `vads_*` run is the by-name order's `vads_*` fields.
fn lookups_agree(form: &Form) -> Result<(), TestCaseError> {
    let received: Pairs = fields(form).0;
    for (name, _) in &received {
        let first = received
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str());
        prop_assert_eq!(form.get(name), first);
        if let Ok(id) = names::NAMES.binary_search(&name.as_str()) {
            prop_assert_eq!(form.known(id as names::Id), first);
        }
    }
    for (id, name) in names::NAMES.iter().enumerate() {
        let first = received
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str());
        prop_assert_eq!(form.known(id as names::Id), first);
    }
    let vads: Vec<(&str, &str)> = form
        .iter_by_name()
        .filter(|(n, _)| n.starts_with("vads_"))
        .collect();
    prop_assert_eq!(form.iter_vads_by_name().collect::<Vec<_>>(), vads.clone());
    let values: Vec<&[u8]> = vads.iter().map(|(_, v)| v.as_bytes()).collect();
    prop_assert_eq!(form.vads_values_by_name().collect::<Vec<_>>(), values);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    /// Known and unknown names mixed, repeated, unsorted, encoded or not:
    /// the decoders agree (errors included: a repeated name is refused
    /// with the same name), and a form's lookups by name, by number and
    /// in order agree with its fields.
    #[test]
    fn decoders_agree_on_near_known_names(body in near_known_body()) {
        agree(&body)?;
        if let Ok(form) = parse(&body) {
            lookups_agree(&form)?;
        }
    }

    /// `from_pairs` keeps repeated names (known ones too): the by-name
    /// order is a stable byte-wise sort, lookups find the first.
    #[test]
    fn from_pairs_orders_near_known_names(
        pairs in proptest::collection::vec((near_known_name(), "[a-z]{0,3}"), 0..40)
    ) {
        let form = Form::from_pairs(pairs.clone());
        let mut sorted = pairs.clone();
        sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        prop_assert_eq!(fields(&form), (pairs, sorted));
        lookups_agree(&form)?;
    }
}
