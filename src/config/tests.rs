use super::*;
use crate::domain::Outcome;
use crate::providers::lyra::Mode;
use crate::providers::mpgs::OrderRefField;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, &SecretEnv::default())
}

#[test]
fn embedded_default_is_the_documented_demo() {
    let c = Config::embedded_default();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.database, Database::Sqlite(PathBuf::from("ipnsync.db")));
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
        &ShopStatus::Code("holded".into())
    );
    assert_eq!(
        om.status_for(Outcome::Refunded),
        &ShopStatus::Code("closed".into())
    );
    // OpenCart: review is configured, suspected_fraud still falls back to
    // Pending (1). OpenMage: review and suspected fraud hold the order,
    // so their defaults are the holded state's status (no warning).
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0]
        .starts_with("shops[0].statuses.suspected_fraud: OpenCart has no review status"));

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

const NEW_SOURCES: &str = r#"
[[sources]]
name = "cybs"
kind = "cybersource"
path = "/ipn/cybersource"
organization_id = "ipnsync_demo"
keys = [
  { id = "key-2025", secret = "aXBuc3luYy10ZXN0LWtleS0zMi1ieXRlcy1sb25nISE=" },
  { id = "key-2024", secret_file = "old.key" },
]

[[sources]]
name = "cmos"
kind = "cybersource-cmos"
path = "/ipn/cybersource-cmos"
token_credential = "cmos-token"
allow_from = ["203.0.113.0/24", "2001:db8::/32"]
merchant_id = "ipnsync_demo"

[[sources]]
name = "mpgs"
kind = "mpgs"
path = "/ipn/mpgs"
secret = "current-secret-32-characters-xx"
previous_secret_credential = "mpgs-old"
merchant_id = "TESTMERCHANT01"
order_ref = "order.reference"
"#;

#[test]
fn new_source_kinds_resolve_every_secret() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("old.key"), "b2xkLWtleQ==\n").unwrap();
    std::fs::write(dir.path().join("cmos-token"), "a-token-of-24-characters\n").unwrap();
    std::fs::write(dir.path().join("mpgs-old"), "previous-secret").unwrap();
    let env = SecretEnv {
        credentials_directory: Some(dir.path().to_owned()),
        base_dir: Some(dir.path().to_owned()),
    };
    let c = Config::parse(NEW_SOURCES, &env).unwrap();

    let SourceSettings::Cybersource(cybs) = &c.sources[0].settings else {
        panic!("cybersource settings")
    };
    assert_eq!(c.sources[0].kind.body_format(), BodyFormat::Json);
    assert_eq!(cybs.keys.len(), 2);
    assert_eq!(
        cybs.keys[0].key.expose(),
        b"ipnsync-test-key-32-bytes-long!!"
    );
    assert_eq!(cybs.keys[1].key.expose(), b"old-key");
    assert_eq!(cybs.timestamp_tolerance, Some(Duration::from_secs(15 * 60)));
    assert_eq!(cybs.organization_id.as_deref(), Some("ipnsync_demo"));

    let SourceSettings::CybersourceCmos(cmos) = &c.sources[1].settings else {
        panic!("cmos settings")
    };
    assert_eq!(c.sources[1].kind.body_format(), BodyFormat::Form);
    assert_eq!(cmos.token.expose(), "a-token-of-24-characters");
    assert_eq!(cmos.allow_from.len(), 2);

    let SourceSettings::Mpgs(mpgs) = &c.sources[2].settings else {
        panic!("mpgs settings")
    };
    assert_eq!(mpgs.secrets.len(), 2);
    assert_eq!(mpgs.secrets[1].0.expose(), "previous-secret");
    assert_eq!(mpgs.order_ref, OrderRefField::OrderReference);
    assert_eq!(
        c.sources[2].secret_origins()[1].1,
        &SecretOrigin::Credential("mpgs-old".into())
    );

    let summary = c.summary();
    for secret in [
        "aXBuc3luYy10ZXN0",
        "b2xkLWtleQ",
        "a-token-of-24",
        "current-secret",
        "previous-secret",
    ] {
        assert!(!summary.contains(secret), "{summary}");
    }
    assert!(summary.contains("key-2025 (inline (discouraged)), key-2024 (file"));
    assert!(summary.contains("203.0.113.0/24, 2001:db8::/32"));
    assert!(!format!("{:?}", c.sources).contains("ipnsync-test-key"));
}

#[test]
fn new_source_kinds_name_the_offending_key() {
    let cases = [
        (
            r#"kind = "cybersource"
path = "/c""#,
            "sources[0].keys: cybersource needs at least one key",
        ),
        (
            r#"kind = "cybersource"
path = "/c"
keys = [{ id = "k", secret = "not base64!" }]"#,
            "sources[0].keys[0].secret: is not base64",
        ),
        (
            r#"kind = "cybersource"
path = "/c"
keys = [{ id = "k", secret = "aGk=" }, { id = "k", secret = "aGk=" }]"#,
            "sources[0].keys[1].id: \"k\" is used twice",
        ),
        (
            r#"kind = "cybersource"
path = "/c"
timestamp_tolerance = "soon"
keys = [{ id = "k", secret = "aGk=" }]"#,
            "sources[0].timestamp_tolerance",
        ),
        (
            r#"kind = "cybersource"
path = "/c"
mode = "TEST"
keys = [{ id = "k", secret = "aGk=" }]"#,
            "sources[0].mode: does not apply to kind cybersource",
        ),
        (
            r#"kind = "cybersource-cmos"
path = "/c""#,
            "sources[0].token: cybersource-cmos is not signed",
        ),
        (
            r#"kind = "cybersource-cmos"
path = "/c"
token = "short""#,
            "sources[0].token: must be at least 16 characters",
        ),
        (
            r#"kind = "cybersource-cmos"
path = "/c"
token = "0123456789abcdef"
allow_from = ["203.0.113.7/24"]"#,
            "sources[0].allow_from[0]",
        ),
        (
            r#"kind = "mpgs"
path = "/m""#,
            "sources[0].secret: mpgs needs secret",
        ),
        (
            r#"kind = "mpgs"
path = "/m"
secret = "s"
order_ref = "order.number""#,
            "sources[0].order_ref",
        ),
        (
            r#"kind = "mpgs"
path = "/m"
secret = "s"
keys = []"#,
            "sources[0].keys: does not apply to kind mpgs",
        ),
        (
            r#"kind = "lyra-form"
path = "/l"
mode = "TEST"
test_key = "k"
secret = "s""#,
            "sources[0].secret: does not apply to kind lyra-form",
        ),
        (
            r#"kind = "paypal"
path = "/p""#,
            "sources[0].kind: unknown kind \"paypal\"",
        ),
    ];
    for (source, expected) in cases {
        let err = parse(&format!("[[sources]]\n{source}\n"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with(expected), "{err}\n  expected: {expected}");
        assert!(!err.contains("aGk="));
    }
}

#[test]
fn timestamp_tolerance_can_be_switched_off() {
    let c = parse(
        r#"
[[sources]]
kind = "cybersource"
path = "/c"
timestamp_tolerance = "off"
keys = [{ id = "k", secret = "aGk=" }]
"#,
    )
    .unwrap();
    let SourceSettings::Cybersource(cybs) = &c.sources[0].settings else {
        panic!()
    };
    assert_eq!(cybs.timestamp_tolerance, None);
    assert_eq!(c.sources[0].secret_origins().len(), 1);
}

mod checks;
mod review_api;
