use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, &SecretEnv::default())
}

#[test]
fn embedded_default_is_the_documented_demo() {
    let c = Config::embedded_default();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.database, PathBuf::from("ipnsync.db"));
    assert_eq!(c.body_limit, 65536);
    let s = &c.sources[0];
    assert_eq!(s.path, "/ipn/lyra");
    assert_eq!(s.mode, Mode::Test);
    assert_eq!(s.key.expose(), "1122334455667788");
    assert!(s.shop.is_none());
    let total: Duration = c.dispatch.retry_schedule.iter().sum();
    assert!(total >= Duration::from_secs(24 * 3600));
}

#[test]
fn summary_never_shows_a_secret() {
    let c = Config::embedded_default();
    let summary = c.summary();
    assert!(summary.contains("/ipn/lyra"));
    assert!(summary.contains("inline (discouraged)"));
    assert!(!summary.contains("1122334455667788"));
    assert_eq!(format!("{:?}", c.sources[0].key), "Secret(***)");
}

#[test]
fn errors_name_the_key() {
    let err = parse(
        r#"
[[sources]]
kind = "lyra-form"
path = "/ipn"
mode = "LIVE"
test_key = "k"
"#,
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "sources[0].mode: \"LIVE\" is not TEST or PRODUCTION"
    );

    let err = parse(
        r#"
[[sources]]
kind = "lyra-form"
path = "/ipn"
mode = "PRODUCTION"
test_key = "k"
"#,
    )
    .unwrap_err();
    assert!(err
        .to_string()
        .starts_with("sources[0].production_key: mode PRODUCTION needs"));

    let err = parse("listen = \"nowhere\"").unwrap_err();
    assert!(err.to_string().starts_with("listen:"));

    let err = parse("bogus = 1").unwrap_err();
    assert!(err.to_string().contains("bogus"), "{err}");
}

#[test]
fn secrets_from_file_and_credentials() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("lyra.key"), "filekey\n").unwrap();
    std::fs::write(dir.path().join("cred"), "credkey").unwrap();
    let env = SecretEnv {
        credentials_directory: Some(dir.path().to_owned()),
        base_dir: Some(dir.path().to_owned()),
    };
    let c = Config::parse(
        r#"
[[sources]]
kind = "lyra-form"
path = "/a"
mode = "TEST"
test_key_file = "lyra.key"

[[sources]]
kind = "lyra-rest"
path = "/b"
mode = "PRODUCTION"
production_password_credential = "cred"
"#,
        &env,
    )
    .unwrap();
    assert_eq!(c.sources[0].key.expose(), "filekey");
    assert_eq!(c.sources[1].key.expose(), "credkey");
    assert_eq!(
        c.sources[1].key_origin,
        SecretOrigin::Credential("cred".into())
    );

    let err = Config::parse(
        "[[sources]]\nkind = \"lyra-form\"\npath = \"/a\"\nmode = \"TEST\"\ntest_key_file = \"missing\"\n",
        &env,
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("sources[0].test_key_file: cannot read"),
        "{err}"
    );

    let err = Config::parse(
        "[[sources]]\nkind = \"lyra-form\"\npath = \"/a\"\nmode = \"TEST\"\ntest_key = \"x\"\ntest_key_file = \"lyra.key\"\n",
        &env,
    )
    .unwrap_err();
    assert!(err.to_string().contains("give only one of"), "{err}");
}

#[test]
fn shop_status_tables_and_warnings() {
    let c = parse(
        r#"
[[shops]]
name = "oc"
kind = "opencart3"
base_url = "http://127.0.0.1:1/"
key = "k"
statuses = { review = 17 }
notify = ["accepted"]

[[shops]]
name = "om"
kind = "openmage"
base_url = "http://127.0.0.1:2/"
username = "api"
key = "k"

[[sources]]
kind = "lyra-form"
path = "/a"
mode = "TEST"
test_key = "x"
shop = "oc"
"#,
    )
    .unwrap();
    let oc = c.shop("oc").unwrap();
    assert_eq!(oc.status_for(Outcome::Review), &ShopStatus::Id(17));
    assert_eq!(oc.status_for(Outcome::Accepted), &ShopStatus::Id(2));
    assert_eq!(oc.status_for(Outcome::Refunded), &ShopStatus::Id(11));
    assert!(oc.notifies(Outcome::Accepted));
    assert!(!oc.notifies(Outcome::Review));
    let om = c.shop("om").unwrap();
    assert_eq!(
        om.status_for(Outcome::SuspectedFraud),
        &ShopStatus::Code("fraud".into())
    );
    assert_eq!(
        om.status_for(Outcome::Refunded),
        &ShopStatus::Code("closed".into())
    );
    // review is configured, suspected_fraud still falls back to Pending (1).
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("suspected_fraud"));

    let err = parse(
        "[[sources]]\nkind = \"lyra-form\"\npath = \"/a\"\nmode = \"TEST\"\ntest_key = \"x\"\nshop = \"nope\"\n",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "sources[0].shop: no [[shops]] named \"nope\""
    );
}

#[test]
fn durations() {
    assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
    assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
    assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
    assert_eq!(parse_duration("1d"), Ok(Duration::from_secs(86400)));
    assert!(parse_duration("5").is_err());
    assert!(parse_duration("5w").is_err());
    assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
    assert_eq!(format_duration(Duration::from_secs(90)), "90s");
}
