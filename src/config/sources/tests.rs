use super::super::{Config, SecretEnv};
use super::*;

fn parse_source(source: &str) -> Result<Config, ConfigError> {
    Config::parse(&format!("[[sources]]\n{source}\n"), &SecretEnv::default())
}

#[test]
fn each_kind_takes_the_keys_its_table_declares() {
    let mpgs = RawSource::fields(SourceKind::Mpgs);
    for key in [
        "name",
        "path",
        "secret",
        "secret_file",
        "previous_secret_credential",
        "api_password_credential",
        "gateway_url",
    ] {
        assert!(mpgs.contains(&key), "{key}");
    }
    assert!(!mpgs.contains(&"keys") && !mpgs.contains(&"kind"));
    let form = RawSource::fields(SourceKind::LyraForm);
    assert!(form.contains(&"test_key_file") && !form.contains(&"test_password"));
    let rest = RawSource::fields(SourceKind::LyraRest);
    assert!(rest.contains(&"test_password") && !rest.contains(&"algorithm"));
}

#[test]
fn a_secret_given_to_another_kind_is_named_by_its_own_key() {
    let lyra = "kind = \"lyra-form\"\npath = \"/l\"\nmode = \"TEST\"\ntest_key = \"k\"";
    for (key, value) in [
        ("secret_file", "\"x\""),
        ("previous_secret_credential", "\"x\""),
        ("api_shared_secret", "\"x\""),
        ("token_credential", "\"x\""),
    ] {
        let err = parse_source(&format!("{lyra}\n{key} = {value}"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            format!("sources[0].{key}: does not apply to kind lyra-form")
        );
    }
    let err = parse_source("kind = \"lyra-rest\"\npath = \"/r\"\nmode = \"TEST\"\ntest_password = \"p\"\nalgorithm = \"SHA-1\"")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("sources[0].algorithm: does not apply to lyra-rest"),
        "{err}"
    );
}

#[test]
fn a_key_no_kind_takes_keeps_the_parsers_message_and_line() {
    let err = parse_source("kind = \"mpgs\"\npath = \"/m\"\nsecret = \"s\"\nsecert_file = \"x\"")
        .unwrap_err()
        .to_string();
    assert!(err.contains("secert_file") && err.contains("line"), "{err}");
    let err = parse_source("path = \"/m\"").unwrap_err().to_string();
    assert!(err.contains("kind"), "{err}");
}

#[test]
fn the_registered_provider_follows_the_kind() {
    let c = parse_source(
        "kind = \"cybersource\"\npath = \"/c\"\nkeys = [{ id = \"k\", secret = \"aGk=\" }]",
    )
    .unwrap();
    let provider = c.sources[0].provider();
    assert!(provider.answers_health_check());
    assert_eq!(
        provider.body_format(),
        SourceKind::Cybersource.body_format()
    );
    let c = parse_source("kind = \"mpgs\"\npath = \"/m\"\nsecret = \"s\"").unwrap();
    assert!(!c.sources[0].provider().answers_health_check());
    for kind in SourceKind::ALL {
        assert_eq!(
            kind.body_format() == BodyFormat::Json,
            matches!(kind, SourceKind::Cybersource | SourceKind::Mpgs)
        );
    }
}
