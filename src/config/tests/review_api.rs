//! The review-action APIs of `[[sources]]`: keys, kinds, `cancel_at_gateway`.

use super::*;

const LYRA_WITH_API: &str = r#"
[[sources]]
name = "payzen"
kind = "lyra-form"
path = "/ipn"
site_id = "12345678"
mode = "TEST"
test_key = "k"
api_url = "https://api.payzen.eu/api-payment"
rest_password = "testpassword_secret123"
"#;

#[test]
fn lyra_review_api_takes_the_site_id_and_rest_password() {
    let c = parse(LYRA_WITH_API).unwrap();
    let Some(ReviewApi::Lyra(api)) = &c.sources[0].review_api else {
        panic!("lyra review api")
    };
    assert_eq!(api.api_url, "https://api.payzen.eu/api-payment/");
    assert_eq!(api.shop_id, "12345678");
    assert_eq!(api.password.expose(), "testpassword_secret123");
    assert_eq!(api.timeout, Duration::from_secs(30));
    let summary = c.summary();
    assert!(summary.contains("review actions: Lyra REST https://api.payzen.eu/api-payment/"));
    assert!(!summary.contains("testpassword_secret123"));
    assert!(
        parse(&LYRA_WITH_API.replace("site_id = \"12345678\"\n", ""))
            .unwrap_err()
            .to_string()
            .starts_with("sources[0].site_id: api_url needs site_id")
    );
    assert!(parse(&LYRA_WITH_API.replace("api_url", "# api_url"))
        .unwrap_err()
        .to_string()
        .starts_with("sources[0].api_url: rest_password needs api_url"));
    assert!(
        parse(&LYRA_WITH_API.replace("rest_password", "# rest_password"))
            .unwrap_err()
            .to_string()
            .starts_with("sources[0].rest_password: api_url needs rest_password")
    );
    assert!(parse(&LYRA_WITH_API.replace("https://api", "ftp://api")).is_err());
    // Without any review key, no review API.
    assert!(Config::embedded_default().sources[0].review_api.is_none());
}

#[test]
fn a_lyra_rest_source_reuses_its_rest_password() {
    let c = parse(
        r#"
[[sources]]
kind = "lyra-rest"
path = "/ipn"
site_id = "69876357"
mode = "TEST"
test_password = "testpassword_DEMOPRIVATEKEY23G4475zXZQ2UA5x7M"
api_url = "https://api.lyra.com/api-payment/"
api_timeout = "5s"
"#,
    )
    .unwrap();
    let Some(ReviewApi::Lyra(api)) = &c.sources[0].review_api else {
        panic!("lyra review api")
    };
    assert_eq!(
        api.password.expose(),
        "testpassword_DEMOPRIVATEKEY23G4475zXZQ2UA5x7M"
    );
    assert_eq!(api.timeout, Duration::from_secs(5));
}

#[test]
fn cybersource_review_api_needs_all_four_keys() {
    let full = r#"
[[sources]]
kind = "cybersource"
path = "/cybs"
keys = [{ id = "k", secret = "c2VjcmV0" }]
api_host = "https://apitest.cybersource.com/"
merchant_id = "mymid"
api_key_id = "08c94330-f618-42a3-b09d-e1e43be5efda"
api_shared_secret = "c2hhcmVkLXNlY3JldA=="
"#;
    let c = parse(full).unwrap();
    let Some(ReviewApi::Cybersource(api)) = &c.sources[0].review_api else {
        panic!("cybersource review api")
    };
    assert_eq!(api.api_host, "https://apitest.cybersource.com");
    assert_eq!(api.shared_secret.expose(), b"shared-secret");
    assert_eq!(format!("{api:?}").matches("***").count(), 1);
    assert!(!c.summary().contains("c2hhcmVkLXNlY3JldA=="));
    let err = parse(&full.replace("merchant_id = \"mymid\"\n", "")).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("sources[0].merchant_id: review actions need"));
    let err = parse(&full.replace("c2hhcmVkLXNlY3JldA==", "not base64!")).unwrap_err();
    assert!(err
        .to_string()
        .starts_with("sources[0].api_shared_secret: is not base64"));
}

#[test]
fn review_keys_belong_to_their_kinds() {
    let err = parse(
        r#"
[[sources]]
kind = "mpgs"
path = "/mpgs"
secret = "s"
api_url = "https://api.payzen.eu/api-payment/"
"#,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "sources[0].api_url: does not apply to kind mpgs"
    );
    let err = parse(&LYRA_WITH_API.replace("api_url", "api_host")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "sources[0].api_host: does not apply to kind lyra-form"
    );
}

#[test]
fn cancel_at_gateway_is_on_with_the_review_api_and_needs_it() {
    let c = parse(LYRA_WITH_API).unwrap();
    assert!(
        c.sources[0].cancel_at_gateway,
        "on by default with credentials"
    );
    assert!(c.summary().contains("cancel at the gateway: on"));
    let off = parse(&format!("{LYRA_WITH_API}cancel_at_gateway = false\n")).unwrap();
    assert!(!off.sources[0].cancel_at_gateway);
    let without_api = LYRA_WITH_API
        .replace("api_url", "# api_url")
        .replace("rest_password", "# rest_password");
    assert!(!parse(&without_api).unwrap().sources[0].cancel_at_gateway);
    assert!(parse(&format!("{without_api}cancel_at_gateway = true\n"))
        .unwrap_err()
        .to_string()
        .starts_with("sources[0].cancel_at_gateway: needs the review API"));
    let mpgs =
        "[[sources]]\nkind = \"mpgs\"\npath = \"/m\"\nsecret = \"s\"\ncancel_at_gateway = false\n";
    assert_eq!(
        parse(mpgs).unwrap_err().to_string(),
        "sources[0].cancel_at_gateway: does not apply to kind mpgs"
    );
}
