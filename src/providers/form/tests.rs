use super::*;

#[test]
fn decodes_plus_and_percent_once() {
    let form = parse(b"a=Jean+Dupont&b=abc%2Bdef&c=%2541&d=").unwrap();
    assert_eq!(form.get("a"), Some("Jean Dupont"));
    assert_eq!(form.get("b"), Some("abc+def"));
    assert_eq!(form.get("c"), Some("%41"), "decoded exactly once");
    assert_eq!(form.get("d"), Some(""));
    assert_eq!(form.len(), 4);
}

#[test]
fn keeps_utf8_and_field_without_equals() {
    let form = parse("n=%C3%A9t%C3%A9&flag".as_bytes()).unwrap();
    assert_eq!(form.get("n"), Some("été"));
    assert_eq!(form.get("flag"), Some(""));
}

#[test]
fn refuses_ambiguous_input() {
    assert_eq!(parse(b"a=%G1"), Err(FormError::BadPercent(0)));
    assert_eq!(parse(b"x=1&a=%4"), Err(FormError::BadPercent(1)));
    assert_eq!(parse(b"a=%FF"), Err(FormError::InvalidUtf8(0)));
    assert_eq!(
        parse(b"a=1&a=2"),
        Err(FormError::DuplicateField("a".into()))
    );
    assert_eq!(parse(b"=1"), Err(FormError::EmptyName));
}

#[test]
fn limits_field_count() {
    let body: Vec<String> = (0..=MAX_FIELDS).map(|i| format!("f{i}=1")).collect();
    assert_eq!(
        parse(body.join("&").as_bytes()),
        Err(FormError::TooManyFields)
    );
}

#[test]
fn lookups_and_order_survive_the_single_buffer() {
    let form = parse(b"vads_b=2&signature=s&vads_a=%C3%A9&vads_c=").unwrap();
    let received: Vec<_> = form.iter().collect();
    assert_eq!(
        received,
        [
            ("vads_b", "2"),
            ("signature", "s"),
            ("vads_a", "é"),
            ("vads_c", "")
        ]
    );
    let sorted: Vec<_> = form.iter_by_name().map(|(n, _)| n).collect();
    assert_eq!(sorted, ["signature", "vads_a", "vads_b", "vads_c"]);
    assert_eq!(form.get("vads_a"), Some("é"));
    assert_eq!(form.get("vads_c"), Some(""));
    assert_eq!(form.get("vads_"), None);
    assert_eq!(form.get("vads_d"), None);
    assert_eq!(form.get("a"), None);
    // A split multi-byte character is refused, not glued to its neighbour.
    assert_eq!(parse(b"a=%C3&b=%A9"), Err(FormError::InvalidUtf8(0)));
    assert_eq!(parse(b"%C3=%A9"), Err(FormError::InvalidUtf8(0)));
    assert_eq!(
        parse(b"x=1&&n=%C3%A9&a%C3=%A9"),
        Err(FormError::InvalidUtf8(3))
    );
    assert_eq!(parse(b"x=1&a=%FF%FF&b=2"), Err(FormError::InvalidUtf8(1)));
}

#[test]
fn from_pairs_keeps_the_first_of_equal_names() {
    let form = Form::from_pairs([("a", "1"), ("b", "2"), ("a", "3")]);
    assert_eq!(form.get("a"), Some("1"));
    assert_eq!(form.len(), 3);
}

#[test]
fn encode_round_trips() {
    let form = parse(b"a=Jean+Dupont&b=abc%2Bdef&c=").unwrap();
    assert_eq!(parse(form.encode().as_bytes()).unwrap(), form);
}

#[test]
fn from_pairs_finds_known_names_past_any_small_index() {
    // `from_pairs` has no field limit: a known name's field index is
    // kept whole, however far it is.
    let mut pairs: Vec<(String, String)> = (0..70_000)
        .map(|i| (format!("f{i}"), String::new()))
        .collect();
    pairs.push(("vads_amount".into(), "2990".into()));
    let form = Form::from_pairs(pairs);
    assert_eq!(form.get("vads_amount"), Some("2990"));
    assert_eq!(form.get("f69999"), Some(""));
    assert_eq!(
        form.iter_vads_by_name().collect::<Vec<_>>(),
        [("vads_amount", "2990")]
    );
}
