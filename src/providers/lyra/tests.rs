//! Every published Lyra test vector (see `shared/reference/lyra.md`).

use super::*;
use crate::providers::form;

const DOC_KEY: &str = "1122334455667788";
const REST_PASSWORD: &str = "testpassword_DEMOPRIVATEKEY23G4475zXZQ2UA5x7M";
const RETURN_KEY: &str = "38453613e7f44dc58732bad3dca2bca3";

fn vector_a() -> Form {
    Form::from_pairs([
        ("vads_action_mode", "INTERACTIVE"),
        ("vads_amount", "5124"),
        ("vads_ctx_mode", "TEST"),
        ("vads_currency", "978"),
        ("vads_page_action", "PAYMENT"),
        ("vads_payment_config", "SINGLE"),
        ("vads_site_id", "12345678"),
        ("vads_trans_date", "20170129130025"),
        ("vads_trans_id", "123456"),
        ("vads_version", "V2"),
    ])
}

#[test]
fn vector_a_official_example() {
    let f = vector_a();
    assert_eq!(
        form_signing_string(&f, DOC_KEY),
        "INTERACTIVE+5124+TEST+978+PAYMENT+SINGLE+12345678+20170129130025+123456+V2+1122334455667788"
    );
    assert_eq!(
        form_signature(&f, DOC_KEY, SignAlgo::Sha1),
        "59c96b34c74b9375c332b0b6a32e6deeec87de2b"
    );
    assert_eq!(
        form_signature(&f, DOC_KEY, SignAlgo::HmacSha256),
        "ycA5Do5tNvsnKdc/eP1bj2xa19z9q3iWPy9/rpesfS0="
    );
}

#[test]
fn vector_b_sepa_example() {
    let f = Form::from_pairs(vector_a().iter().map(|(n, v)| {
        let v = match n {
            "vads_amount" => "1524",
            "vads_trans_date" => "20090501193530",
            "vads_trans_id" => "654321",
            _ => v,
        };
        (n.to_owned(), v.to_owned())
    }));
    assert_eq!(
        form_signature(&f, DOC_KEY, SignAlgo::Sha1),
        "606b369759fac4f0864144c803c73676cbe470ff"
    );
    assert_eq!(
        form_signature(&f, DOC_KEY, SignAlgo::HmacSha256),
        "O1ycab+xOkAmToSWeEE2hj39aAKCQ2IxGK+JxKv8iUI="
    );
}

fn vector_c(with_empty: bool) -> Form {
    let mut pairs = vec![
        ("vads_action_mode", "INTERACTIVE"),
        ("vads_amount", "10"),
        ("vads_ctx_mode", "TEST"),
        ("vads_currency", "978"),
        ("vads_cust_email", "test@example.com"),
        ("vads_cust_id", ""),
        ("vads_page_action", "PAYMENT"),
        ("vads_payment_config", "SINGLE"),
        ("vads_site_id", "12345678"),
        ("vads_trans_date", "20200513114252"),
        ("vads_trans_id", "000001"),
        ("vads_url_cancel", "http://my-app.vm:8000/paiement/done?payum_token=hN5XJXj5sp-VZKYzsAHgbP5rbm9rHS7OVLtAgDD19oM"),
        ("vads_url_check", "http://my-app.vm:8000/paiement/notify?payum_token=51qV9QqdpT6KUdswfVBeHT6fNSQY9PF5znyzHGeQwYA"),
        ("vads_url_return", "http://my-app.vm:8000/payment/capture/rQD3r-35NKHJHOCea6kLqt3768dZt2ZhWOwbzNpLvV4"),
        ("vads_version", "V2"),
    ];
    if !with_empty {
        pairs.retain(|(n, _)| *n != "vads_cust_id");
    }
    Form::from_pairs(pairs)
}

#[test]
fn vector_c_empty_fields_are_signed() {
    let f = vector_c(true);
    assert!(form_signing_string(&f, DOC_KEY).contains("test@example.com++PAYMENT"));
    assert_eq!(
        form_signature(&f, DOC_KEY, SignAlgo::HmacSha256),
        "f8B2q09tV5R2aSVFkscjGMVemd56VUJsSxtErQZQaQs="
    );
    assert_eq!(
        form_signature(&f, DOC_KEY, SignAlgo::Sha1),
        "9dbc88d61adc120350456a284b0a0263c45af298"
    );
    // The known-wrong value a receiver that drops empty fields produces.
    assert_eq!(
        form_signature(&vector_c(false), DOC_KEY, SignAlgo::HmacSha256),
        "LQnpkXL6nVz84c7FG1voyMIoBacOTkxZnl6zPhucPQM="
    );
}

const VECTOR_D_BODY: &str = "vads_amount=2990&vads_ctx_mode=TEST&vads_currency=978&vads_cust_name=Jean+Dupont&vads_ext_info_session_id=abc%2Bdef&vads_extra_result=&vads_site_id=12345678&vads_threeds_cavvAlgorithm=2&vads_threeds_cavv=&vads_trans_id=xneDZL&vads_trans_status=AUTHORISED&signature=x";

#[test]
fn vector_d_wire_level() {
    let f = form::parse(VECTOR_D_BODY.as_bytes()).unwrap();
    assert_eq!(
        form_signing_string(&f, DOC_KEY),
        "2990+TEST+978+Jean Dupont+abc+def++12345678++2+xneDZL+AUTHORISED+1122334455667788"
    );
    assert_eq!(
        form_signature(&f, DOC_KEY, SignAlgo::Sha1),
        "595751795f0c45340c7368524b58ac99828471f6"
    );
    let hmac = form_signature(&f, DOC_KEY, SignAlgo::HmacSha256);
    assert_eq!(hmac, "jO2LtI7HlEIFErRYo3yEO1xbkMwYSXPp9sXkWWGIEq0=");
    for wrong in [
        "/oiuOeN3+WPWRTgQghEnx7nsX93oyvR3SLDnPizlMgE=",
        "+BSJDb8CLIpljL19OAdyIV90eAjFS2B35iNSiQthpIQ=",
        "IAXR3TJmFjHjOwJviX4LgyLG3tmmQOfhCA7sC5S1IWY=",
    ] {
        assert_ne!(hmac, wrong);
    }
}

fn signed(body_without_signature: &str, algo: SignAlgo) -> Form {
    let f = form::parse(body_without_signature.as_bytes()).unwrap();
    let sig = form_signature(&f, DOC_KEY, algo);
    let mut pairs: Vec<(String, String)> = f.iter().map(|(n, v)| (n.into(), v.into())).collect();
    pairs.push(("signature".into(), sig));
    Form::from_pairs(pairs)
}

fn verifier(mode: Mode, algo: SignAlgo) -> FormVerifier<'static> {
    FormVerifier {
        mode,
        algo,
        key: DOC_KEY,
        site_id: Some("12345678"),
    }
}

#[test]
fn verify_form_accepts_good_and_refuses_bad() {
    let body = "vads_ctx_mode=TEST&vads_site_id=12345678&vads_trans_status=AUTHORISED";
    let good = signed(body, SignAlgo::HmacSha256);
    assert_eq!(
        verify_form(&good, &verifier(Mode::Test, SignAlgo::HmacSha256)),
        Ok(())
    );

    // SHA-1 is never accepted by a source configured for HMAC, and vice versa.
    let err = verify_form(&good, &verifier(Mode::Test, SignAlgo::Sha1)).unwrap_err();
    assert_eq!(err.refusal(), Refusal::Unauthenticated);
    let sha1 = signed(body, SignAlgo::Sha1);
    assert!(verify_form(&sha1, &verifier(Mode::Test, SignAlgo::HmacSha256)).is_err());
    assert_eq!(
        verify_form(&sha1, &verifier(Mode::Test, SignAlgo::Sha1)),
        Ok(())
    );

    let unsigned = form::parse(body.as_bytes()).unwrap();
    assert_eq!(
        verify_form(&unsigned, &verifier(Mode::Test, SignAlgo::HmacSha256)),
        Err(LyraError::MissingSignature)
    );
}

#[test]
fn verify_form_refuses_mode_mismatch_after_signature() {
    let good = signed(
        "vads_ctx_mode=TEST&vads_site_id=12345678&vads_trans_status=AUTHORISED",
        SignAlgo::HmacSha256,
    );
    let err = verify_form(&good, &verifier(Mode::Production, SignAlgo::HmacSha256)).unwrap_err();
    assert_eq!(err.refusal(), Refusal::Forbidden);
    let other_site = signed(
        "vads_ctx_mode=TEST&vads_site_id=87654321&vads_trans_status=AUTHORISED",
        SignAlgo::HmacSha256,
    );
    assert_eq!(
        verify_form(&other_site, &verifier(Mode::Test, SignAlgo::HmacSha256)),
        Err(LyraError::SiteMismatch {
            got: "87654321".into()
        })
    );
}

#[test]
fn form_notification_maps_fields() {
    let f = form::parse(
        b"vads_ctx_mode=TEST&vads_site_id=12345678&vads_trans_date=20261124093015&vads_version=V2&vads_order_id=100042&vads_trans_status=AUTHORISED_TO_VALIDATE&vads_trans_uuid=0123456789abcdef0123456789abcdef&vads_trans_id=000042&vads_amount=2990&vads_currency=978&vads_risk_assessment_result=ENABLE_3DS%3BMANUAL_VALIDATION&vads_risk_control=CARD_FRAUD%3DOK%3BSUSPECT_COUNTRY%3DWARNING&vads_url_check_src=PAY&vads_operation_type=DEBIT",
    )
    .unwrap();
    let n = form_notification(&f).unwrap();
    assert_eq!(n.order_ref, "100042");
    assert_eq!(n.transaction_id, "0123456789abcdef0123456789abcdef");
    assert_eq!(n.transaction_number, "000042");
    assert_eq!(n.amount_minor, Some(2990));
    let l = n.lyra().unwrap();
    assert_eq!(l.risk_assessment, vec!["ENABLE_3DS", "MANUAL_VALIDATION"]);
    assert_eq!(
        l.risk_control,
        vec![
            ("CARD_FRAUD".to_owned(), "OK".to_owned()),
            ("SUSPECT_COUNTRY".to_owned(), "WARNING".to_owned())
        ]
    );
    assert_eq!(
        form_notification(&form::parse(b"vads_order_id=1").unwrap()),
        Err(LyraError::MissingField("vads_trans_status"))
    );
}

fn answer(name: &str) -> String {
    let path = format!(
        "{}/fixtures/lyra-rest/{name}-answer.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn rest_vectors_k1_to_k4() {
    let k2 = answer("k2");
    let expected_k12 = "4d57a308d7d8a89a989e8dc54613fe5f7d353a6c749a9769f5e9b9073d5720af";
    assert_eq!(rest_hash(&k2, RETURN_KEY), expected_k12);
    let k1 = answer("k1");
    assert_eq!(k1.matches("\\/").count(), 44);
    assert_ne!(
        rest_hash(&k1, RETURN_KEY),
        expected_k12,
        "raw K1 must not match"
    );
    assert!(
        rest_hash_matches(&k1, RETURN_KEY, expected_k12),
        "K1 matches after \\/ fallback"
    );
    assert_eq!(
        rest_hash(&answer("k3"), REST_PASSWORD),
        "88fb7b4838a73c2674ca00ee545454d78dd4b1b733a07c855a1d4460d4417f85"
    );
    assert_eq!(
        rest_hash(&answer("k4"), REST_PASSWORD),
        "9074a0bd1b926fd78ed91eec074affc8d844ed26439fc471e0ca4e6723fa049e"
    );
}

fn rest_form(answer: &str, hash: &str, hash_key: &str) -> Form {
    Form::from_pairs([
        ("kr-hash", hash),
        ("kr-hash-algorithm", "sha256_hmac"),
        ("kr-hash-key", hash_key),
        ("kr-answer-type", "V4/Payment"),
        ("kr-answer", answer),
    ])
}

#[test]
fn verify_rest_requires_password_key() {
    let k3 = answer("k3");
    let good = rest_form(
        &k3,
        "88fb7b4838a73c2674ca00ee545454d78dd4b1b733a07c855a1d4460d4417f85",
        "password",
    );
    assert_eq!(verify_rest(&good, REST_PASSWORD), Ok(()));
    let n = rest_notification(&good, Mode::Test, None).unwrap();
    assert_eq!(n.order_ref, "myOrderId-618776");
    assert_eq!(n.transaction_id, "017574bda28e4f1d8413b97fc65c8197");
    assert_eq!(n.transaction_number, "908967");
    assert_eq!(n.status(), "AUTHORISED");
    assert_eq!(n.amount_minor, Some(990));
    assert!(matches!(
        rest_notification(&good, Mode::Production, None),
        Err(LyraError::ModeMismatch { .. })
    ));

    // A browser-return copy (K2, signed with the HMAC key) is refused here.
    let k2 = answer("k2");
    let browser = rest_form(
        &k2,
        "4d57a308d7d8a89a989e8dc54613fe5f7d353a6c749a9769f5e9b9073d5720af",
        "sha256_hmac",
    );
    assert_eq!(
        verify_rest(&browser, REST_PASSWORD),
        Err(LyraError::WrongHashKey("sha256_hmac".into()))
    );
    let tampered = rest_form(
        &k3.replace("990", "991"),
        "88fb7b4838a73c2674ca00ee545454d78dd4b1b733a07c855a1d4460d4417f85",
        "password",
    );
    assert!(matches!(
        verify_rest(&tampered, REST_PASSWORD),
        Err(LyraError::BadSignature { .. })
    ));
}

// ------------------------------------------------- boundary-shift forgery

/// The payment form a shop signs and hands to the buyer's browser: the
/// buyer typed `street` (shipping address) and `name`.
fn payment_form(name: &str, street: &str, city: &str) -> Vec<(String, String)> {
    [
        ("vads_action_mode", "INTERACTIVE"),
        ("vads_amount", "2990"),
        ("vads_ctx_mode", "TEST"),
        ("vads_currency", "978"),
        ("vads_cust_email", "buyer@example.com"),
        ("vads_cust_name", name),
        ("vads_order_id", "100041"),
        ("vads_page_action", "PAYMENT"),
        ("vads_payment_config", "SINGLE"),
        ("vads_ship_to_city", city),
        ("vads_ship_to_street", street),
        ("vads_site_id", "12345678"),
        ("vads_trans_date", "20261124093015"),
        ("vads_trans_id", "482911"),
        ("vads_version", "V2"),
    ]
    .into_iter()
    .map(|(n, v)| (n.to_owned(), v.to_owned()))
    .collect()
}

/// Re-splits the signed form's `+`-joined values (in their signed order)
/// onto `plan`'s names, `count` atoms each, and copies the signature: what
/// an attacker holding the payment form posts.
fn forge(signed: &[(String, String)], plan: &[(&str, usize)]) -> Form {
    let form = Form::from_pairs(signed.iter().cloned());
    let joined = form_signing_string(&form, "");
    let atoms: Vec<&str> = joined.trim_end_matches('+').split('+').collect();
    let mut at = 0;
    let mut fields: Vec<(String, String)> = Vec::new();
    for (name, count) in plan {
        fields.push((name.to_string(), atoms[at..at + count].join("+")));
        at += count;
    }
    assert_eq!(at, atoms.len(), "the plan uses every value");
    for pair in fields.windows(2) {
        assert!(pair[0].0 < pair[1].0, "names sort in the signed order");
    }
    let signature = form_signature(&form, DOC_KEY, SignAlgo::HmacSha256);
    fields.push(("signature".into(), signature));
    Form::from_pairs(fields)
}

#[test]
fn boundary_shift_forgeries_are_refused() {
    let site = Some("12345678");
    let one = |n| (n, 1);
    // The shop's values before the buyer's street, under their own names.
    let head = |name_atoms: &[(&'static str, usize)]| -> Vec<(&'static str, usize)> {
        let mut plan = vec![
            one("vads_action_mode"),
            one("vads_amount"),
            one("vads_ctx_mode"),
            one("vads_currency"),
            one("vads_cust_email"),
        ];
        plan.extend_from_slice(name_atoms);
        plan.extend([
            one("vads_order_id"),
            one("vads_page_action"),
            one("vads_payment_config"),
            one("vads_ship_to_city"),
        ]);
        plan
    };
    // A buyer who also typed every IPN-only value in the address.
    let full_street =
        "1 Main St+12345678+20261124093015+482911+AUTHORISED+9b0c5a1f2e3d4c5b6a79881726354abc+PAY";
    let forged_tx = [
        one("vads_ship_to_street"),
        one("vads_site_id"),
        one("vads_trans_date"),
        one("vads_trans_id"),
        one("vads_trans_status"),
        one("vads_trans_uuid"),
        one("vads_url_check_src"),
    ];
    let with = |mut plan: Vec<(&'static str, usize)>, rest: &[(&'static str, usize)]| {
        plan.extend_from_slice(rest);
        plan
    };
    let name_debit = [one("vads_cust_name"), one("vads_operation_type")];
    struct Case {
        name: &'static str,
        signed: Vec<(String, String)>,
        plan: Vec<(&'static str, usize)>,
        site: Option<&'static str>,
        why: &'static str,
    }
    let cases = [
        Case {
            // The reproduction: the shop's own tail pushed right onto
            // invented names behind the forged status.
            name: "shift right",
            signed: payment_form("Bob", "1 Main St+12345678+AUTHORISED", "Paris"),
            plan: with(
                head(&[one("vads_cust_name")]),
                &[
                    one("vads_ship_to_street"),
                    one("vads_site_id"),
                    one("vads_trans_status"),
                    one("vads_trans_status_a"),
                    one("vads_trans_status_b"),
                    one("vads_trans_status_c"),
                    one("vads_version"),
                ],
            ),
            site,
            why: "vads_trans_date is missing",
        },
        Case {
            // Every IPN-only field forged valid from the buyer's text; the
            // shop's tail (site id, date, trans id) shifted onto invented
            // names after vads_url_check_src.
            name: "shift right, complete",
            signed: payment_form("Bob+DEBIT", full_street, "Paris"),
            plan: with(
                with(head(&name_debit), &forged_tx),
                &[
                    one("vads_url_check_src_a"),
                    one("vads_url_check_src_b"),
                    one("vads_url_check_src_c"),
                    one("vads_version"),
                ],
            ),
            site,
            why: "undocumented field vads_url_check_src_a",
        },
        Case {
            // The same, the tail merged left into the last documented field
            // before vads_version.
            name: "shift left, merged",
            signed: payment_form("Bob+DEBIT", full_street, "Paris"),
            plan: with(
                with(head(&name_debit), &forged_tx),
                &[("vads_validation_mode", 3), one("vads_version")],
            ),
            site,
            why: "field vads_validation_mode is not one of 0, 1, (empty)",
        },
        Case {
            // One value split into three fields.
            name: "split into three",
            signed: payment_form("Bob", "1 Main St+12345678+AUTHORISED", "Paris"),
            plan: with(
                head(&[one("vads_cust_name")]),
                &[
                    one("vads_ship_to_street"),
                    one("vads_site_id"),
                    one("vads_trans_status"),
                    ("vads_trans_uuid", 3),
                    one("vads_version"),
                ],
            ),
            site,
            why: "vads_trans_date is missing",
        },
        Case {
            // No site id configured: a field whose whole value is
            // AUTHORISED (the city) is enough; no vads_site_id at all.
            name: "no site id",
            signed: payment_form("Bob", "1 Main St", "AUTHORISED"),
            plan: vec![
                one("vads_action_mode"),
                one("vads_amount"),
                one("vads_ctx_mode"),
                one("vads_currency"),
                one("vads_cust_email"),
                one("vads_cust_name"),
                one("vads_order_id"),
                one("vads_page_action"),
                one("vads_payment_config"),
                one("vads_trans_status"),
                one("vads_trans_status_1"),
                one("vads_trans_status_2"),
                one("vads_trans_status_3"),
                one("vads_trans_status_4"),
                one("vads_version"),
            ],
            site: None,
            why: "vads_site_id is missing",
        },
    ];
    for case in cases {
        let forged = forge(&case.signed, &case.plan);
        // The forgery carries a valid signature: the old daemon accepted it.
        let v = FormVerifier {
            mode: Mode::Test,
            algo: SignAlgo::HmacSha256,
            key: DOC_KEY,
            site_id: case.site,
        };
        assert_eq!(verify_form(&forged, &v), Ok(()), "{}", case.name);
        assert!(required(&forged, "vads_trans_status").is_ok());
        let err = form_notification(&forged).unwrap_err();
        assert_eq!(err.refusal(), Refusal::Malformed, "{}", case.name);
        let text = err.to_string();
        assert!(text.contains(case.why), "{}: {text}", case.name);
    }
}

#[test]
fn real_ipns_have_the_shape() {
    for name in [
        "authorised",
        "abandoned",
        "clearsale-fraud",
        "refused",
        "to-validate",
        "validated-merch-bo",
    ] {
        let path = format!(
            "{}/fixtures/lyra-form/{name}.txt",
            env!("CARGO_MANIFEST_DIR")
        );
        let body = std::fs::read(path).unwrap();
        let f = form::parse(body.trim_ascii_end()).unwrap();
        assert!(form_notification(&f).is_ok(), "{name}");
    }
}

#[test]
fn undocumented_names_before_the_strict_zone_are_tolerated() {
    let path = format!(
        "{}/fixtures/lyra-form/authorised.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let body = std::fs::read(path).unwrap();
    let f = form::parse(body.trim_ascii_end()).unwrap();
    let with = |name: &str, value: &str| {
        Form::from_pairs(
            f.iter()
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .chain([(name.to_owned(), value.to_owned())]),
        )
    };
    // A field Lyra may add later, sorting among the free fields: accepted.
    assert!(form_notification(&with("vads_new_feature", "x+y")).is_ok());
    // The same in the strict zone: refused.
    assert!(matches!(
        form_notification(&with("vads_trans_extra", "x")),
        Err(LyraError::Shape(_))
    ));
    // A documented field with a value outside its format: refused.
    assert!(matches!(
        form_notification(&with("vads_validation_mode", "2")),
        Err(LyraError::Shape(_))
    ));
}

#[test]
fn rest_checks_algorithm_shop_id_and_keeps_kr_src_unsigned() {
    let k3 = answer("k3");
    let hash = "88fb7b4838a73c2674ca00ee545454d78dd4b1b733a07c855a1d4460d4417f85";
    let without_algorithm = Form::from_pairs([
        ("kr-hash", hash),
        ("kr-hash-key", "password"),
        ("kr-answer", k3.as_str()),
    ]);
    let err = verify_rest(&without_algorithm, REST_PASSWORD).unwrap_err();
    assert_eq!(err, LyraError::MissingHashAlgorithm);
    assert_eq!(err.refusal(), Refusal::Unauthenticated);

    let good = Form::from_pairs([
        ("kr-hash", hash),
        ("kr-hash-algorithm", "sha256_hmac"),
        ("kr-hash-key", "password"),
        ("kr-src", "MERCH_BO"),
        ("kr-answer", k3.as_str()),
    ]);
    assert_eq!(verify_rest(&good, REST_PASSWORD), Ok(()));
    let err = rest_notification(&good, Mode::Test, Some("12345678")).unwrap_err();
    assert_eq!(
        err,
        LyraError::ShopMismatch {
            got: "69876357".into()
        }
    );
    assert_eq!(err.refusal(), Refusal::Forbidden);
    let n = rest_notification(&good, Mode::Test, Some("69876357")).unwrap();
    let f = n.lyra().unwrap();
    assert_eq!(f.url_check_src, "");
    assert_eq!(f.unsigned_src, "MERCH_BO");
    assert_eq!(f.order_cycle, "CLOSED");
    assert_eq!(n.origin(), "");
}
