//! The other sections' checks: `[admin]`, `log_level`, `[dispatch]`'s
//! retry schedule, sources sharing a shop, OpenMage / Magento 2 statuses.

use super::*;

#[test]
fn the_admin_token_is_optional_long_and_never_shown() {
    assert!(Config::embedded_default().admin_token.is_none());
    let c = parse("[admin]\ntoken = \"0123456789abcdef-secret\"\n").unwrap();
    let (token, _) = c.admin_token.as_ref().unwrap();
    assert_eq!(token.expose(), "0123456789abcdef-secret");
    assert!(c
        .summary()
        .contains("admin API   /admin/* with a bearer token"));
    assert!(!c.summary().contains("0123456789abcdef-secret"));
    let err = parse("[admin]\ntoken = \"short\"\n").unwrap_err();
    assert!(err
        .to_string()
        .starts_with("admin.token: must be at least 16"));
}

#[test]
fn log_level_is_validated() {
    let c = parse("log_level = \"warn,ipnsync=debug\"").unwrap();
    assert_eq!(c.log_level.as_deref(), Some("warn,ipnsync=debug"));
    assert!(parse("").unwrap().log_level.is_none());
    let err = parse("log_level = \"ipnsync=loud\"").unwrap_err();
    assert!(err.to_string().starts_with("log_level: "), "{err}");
}

#[test]
fn a_retry_schedule_shorter_than_a_day_is_flagged() {
    let default = parse("").unwrap();
    let total: Duration = default.dispatch.retry_schedule.iter().sum();
    assert!(total.mul_f64(1.0 - default.dispatch.jitter) >= Duration::from_secs(24 * 3600));
    assert!(default
        .warnings
        .iter()
        .all(|w| !w.contains("retry_schedule")));
    let short = parse("[dispatch]\nretry_schedule = [\"1m\", \"1h\"]\n").unwrap();
    assert!(
        short
            .warnings
            .iter()
            .any(|w| w.starts_with("dispatch.retry_schedule: ")),
        "{:?}",
        short.warnings
    );
}

#[test]
fn test_and_production_sources_sharing_a_shop_are_flagged() {
    let text = |prefix: &str| {
        format!(
            r#"
[[shops]]
name = "main"
kind = "webhook"
base_url = "http://127.0.0.1:1/"
key = "k"

[[sources]]
name = "prod"
kind = "lyra-form"
path = "/a"
mode = "PRODUCTION"
production_key = "x"
shop = "main"

[[sources]]
name = "test"
kind = "lyra-rest"
path = "/b"
mode = "TEST"
test_password = "y"
shop = "main"
order_prefix = "{prefix}"
"#
        )
    };
    let c = parse(&text("")).unwrap();
    let mixing: Vec<&String> = c
        .warnings
        .iter()
        .filter(|w| w.contains("(TEST) and"))
        .collect();
    assert_eq!(mixing.len(), 1, "{:?}", c.warnings);
    assert!(mixing[0].starts_with(
        "sources \"test\" (TEST) and \"prod\" (PRODUCTION) both update shop \"main\""
    ));
    let c = parse(&text("TEST-")).unwrap();
    assert!(
        !c.warnings.iter().any(|w| w.contains("(TEST) and")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn openmage_and_magento_statuses_must_belong_to_their_state() {
    let shop = |extra: &str| {
        format!(
            "[[shops]]\nname = \"om\"\nkind = \"openmage\"\nbase_url = \"http://127.0.0.1:2/\"\nusername = \"api\"\nkey = \"k\"\n{extra}\n"
        )
    };
    // The old defaults' review labels now refuse to load.
    let err = parse(&shop("statuses = { review = \"payment_review\" }"))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("shops[0].statuses.review: \"payment_review\" belongs to the payment_review state, but a review order is in the holded state."),
        "{err}"
    );
    // A custom status declared under its state loads, with invoicing off.
    let c = parse(&shop(
        "statuses = { suspected_fraud = \"ipnsync_fraud\" }\nstate_statuses = { holded = [\"ipnsync_fraud\"] }\ninvoice_on_accept = false",
    ))
    .unwrap();
    let om = c.shop("om").unwrap();
    assert!(om.order_rules.belongs("ipnsync_fraud", "holded"));
    assert!(!om.order_rules.invoice_on_accept);
    // Undeclared, it does not.
    assert!(parse(&shop("statuses = { suspected_fraud = \"ipnsync_fraud\" }")).is_err());
    // The keys mean nothing to other shops.
    let err = parse(
        "[[shops]]\nname = \"w\"\nkind = \"webhook\"\nbase_url = \"http://127.0.0.1:2/\"\nkey = \"k\"\ninvoice_on_accept = true\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("apply to openmage and magento2 only"), "{err}");
}

#[test]
fn a_shop_without_a_name_is_refused() {
    // Intake used to treat `name = ""` as a shop, the other decision paths
    // as "log only": refused at load instead.
    let err = parse(
        r#"
[[shops]]
name = " "
kind = "webhook"
base_url = "http://127.0.0.1:1/"
key = "k"
"#,
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "shops[0].name: must not be empty");
}
