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
        b"vads_order_id=100042&vads_trans_status=AUTHORISED_TO_VALIDATE&vads_trans_uuid=abc123&vads_trans_id=000042&vads_amount=2990&vads_currency=978&vads_risk_assessment_result=ENABLE_3DS%3BMANUAL_VALIDATION&vads_risk_control=CARD_FRAUD%3DOK%3BSUSPECT_COUNTRY%3DWARNING&vads_url_check_src=PAY&vads_operation_type=DEBIT",
    )
    .unwrap();
    let n = form_notification(&f).unwrap();
    assert_eq!(n.order_ref, "100042");
    assert_eq!(n.transaction_id, "abc123");
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
    let n = rest_notification(&good, Mode::Test).unwrap();
    assert_eq!(n.order_ref, "myOrderId-618776");
    assert_eq!(n.transaction_id, "017574bda28e4f1d8413b97fc65c8197");
    assert_eq!(n.transaction_number, "908967");
    assert_eq!(n.status(), "AUTHORISED");
    assert_eq!(n.amount_minor, Some(990));
    assert!(matches!(
        rest_notification(&good, Mode::Production),
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
