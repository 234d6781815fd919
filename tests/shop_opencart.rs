mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use ipnsync::config::{Secret, ShopConfig, ShopKind, ShopStatus};
use ipnsync::domain::Outcome;
use ipnsync::shops::opencart::OpenCart;
use ipnsync::shops::{PushError, ShopUpdate};

use support::fake_opencart::{self as fake, FakeOpenCart, HistoryRow, Version};

const KEY: &str = "test-test-test-test-test-test-test-test";
const SUCCESS: &str = "Success: You have modified orders!";
const NOT_FOUND: &str = "Warning: Order could not be found!";

fn kind(version: Version) -> ShopKind {
    match version {
        Version::OpenCart3 => ShopKind::OpenCart3,
        Version::OpenCart402 => ShopKind::OpenCart40,
        Version::OpenCart41 => ShopKind::OpenCart41,
    }
}

fn config(version: Version, base_url: &str, key: &str) -> ShopConfig {
    ShopConfig {
        name: "oc".into(),
        kind: kind(version),
        base_url: base_url.into(),
        username: fake::USERNAME.into(),
        credential: Some(Secret::new(key)),
        token: None,
        concurrency: 4,
        timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        notify: Vec::new(),
        statuses: BTreeMap::new(),
        store_id: 0,
        language: "en-gb".into(),
        currency: "USD".into(),
        lookup_by_increment_id: false,
        amount_tolerance: None,
        order_rules: Default::default(),
    }
}

fn update(outbox_id: i64, order: u64, status: u32, comment: &str, notify: bool) -> ShopUpdate {
    ShopUpdate {
        outbox_id,
        event_id: outbox_id,
        order_ref: order.to_string(),
        outcome: Outcome::Accepted,
        previous_outcome: None,
        status: ShopStatus::Id(status),
        comment: comment.into(),
        notify,
        provider: "lyra".into(),
        transaction_id: "tx-1".into(),
        provider_status: "AUTHORISED".into(),
        amount: None,
        customer_text: format!("Your payment for order {order} has been received."),
        earlier_attempt_unknown: false,
        by_operator: false,
    }
}

/// A fake with order 12 in Pending, and a client for it.
async fn shop(version: Version) -> (FakeOpenCart, OpenCart) {
    let fake = fake::start(version, KEY).await;
    fake.add_order(12, 1);
    let client = OpenCart::new(&config(version, &fake.base_url(), KEY));
    (fake, client)
}

/// Neither the key nor any session token may leak into an error text.
fn assert_no_secret(fake: &FakeOpenCart, error: &PushError) {
    let text = format!("{error} {error:?}");
    assert!(!text.contains(KEY), "key leaked: {text}");
    for token in fake.tokens_issued() {
        assert!(!text.contains(&token), "token leaked: {text}");
    }
}

fn permanent_reason(error: PushError) -> String {
    match error {
        PushError::Permanent { reason } => reason,
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

/// Runs a scenario once per OpenCart version, as separate tests.
macro_rules! every_version {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use super::*;
            #[tokio::test]
            async fn opencart3() {
                super::$scenario(Version::OpenCart3).await
            }
            #[tokio::test]
            async fn opencart402() {
                super::$scenario(Version::OpenCart402).await
            }
            #[tokio::test]
            async fn opencart41() {
                super::$scenario(Version::OpenCart41).await
            }
        }
    )*};
}

every_version!(
    push_sets_status_notify_and_escaped_comment,
    unknown_order_is_permanent_with_the_shop_text,
    bad_key_is_permanent,
    refused_ip_is_permanent,
    server_error_is_transient,
    throttling_is_transient_with_retry_after,
    hanging_shop_is_transient,
    status_code_is_a_config_bug,
);

async fn push_sets_status_notify_and_escaped_comment(version: Version) {
    let (fake, client) = shop(version).await;
    let pushed = client
        .push(&update(
            42,
            12,
            2,
            r#"Paid & "ok" <b>x</b> café 'q'  "#,
            true,
        ))
        .await
        .unwrap();
    assert!(pushed.detail.starts_with(SUCCESS), "{}", pushed.detail);
    assert_eq!(fake.order_status(12), Some(2));
    // The customer's entry holds the customer text only; the operator's
    // comment is in an entry that notifies nobody.
    assert_eq!(
        fake.history(12),
        vec![
            HistoryRow {
                status_id: 2,
                comment: "Your payment for order 12 has been received.".into(),
                notify: true,
            },
            HistoryRow {
                status_id: 2,
                comment:
                    "Paid &amp; &quot;ok&quot; &lt;b&gt;x&lt;/b&gt; café 'q'  \n[ipnsync update #42]"
                        .into(),
                notify: false,
            }
        ]
    );

    client
        .push(&update(43, 12, 5, "Done", false))
        .await
        .unwrap();
    assert_eq!(fake.order_status(12), Some(5));
    let last = fake.history(12).pop().unwrap();
    assert_eq!((last.status_id, last.notify), (5, false));
    assert_eq!(last.comment, "Done\n[ipnsync update #43]");
}

async fn unknown_order_is_permanent_with_the_shop_text(version: Version) {
    let (fake, client) = shop(version).await;
    let error = client
        .push(&update(1, 999, 2, "x", false))
        .await
        .unwrap_err();
    assert_no_secret(&fake, &error);
    assert_eq!(permanent_reason(error), NOT_FOUND);
    assert!(fake.history(12).is_empty());
}

async fn bad_key_is_permanent(version: Version) {
    let fake = fake::start(version, KEY).await;
    fake.add_order(12, 1);
    let client = OpenCart::new(&config(version, &fake.base_url(), "wrong-test-test-test"));
    let error = client
        .push(&update(1, 12, 2, "x", false))
        .await
        .unwrap_err();
    assert_no_secret(&fake, &error);
    let reason = permanent_reason(error);
    let expected = match version {
        Version::OpenCart3 => "OpenCart refused the API credentials (login returned [])",
        Version::OpenCart402 => "Warning: Incorrect API Key!",
        Version::OpenCart41 => "You do not have permission to access this page.",
    };
    assert!(reason.contains(expected), "{reason}");
    assert_eq!(fake.order_status(12), Some(1));
}

async fn refused_ip_is_permanent(version: Version) {
    let (fake, client) = shop(version).await;
    fake.refuse_ips();
    let reason = permanent_reason(
        client
            .push(&update(1, 12, 2, "x", false))
            .await
            .unwrap_err(),
    );
    let expected = match version {
        Version::OpenCart41 => "check the API key, the IP allow-list and the clock",
        _ => "Warning: Your IP 127.0.0.1 is not allowed to access this API!",
    };
    assert!(reason.contains(expected), "{reason}");
}

async fn server_error_is_transient(version: Version) {
    let (fake, client) = shop(version).await;
    fake.fail_next(1);
    let error = client
        .push(&update(1, 12, 2, "x", false))
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert!(error.to_string().starts_with("HTTP 500"), "{error}");
    // The outage is over: the retry goes through.
    client.push(&update(1, 12, 2, "x", false)).await.unwrap();
    assert_eq!(fake.history(12).len(), 1);
}

async fn throttling_is_transient_with_retry_after(version: Version) {
    let (fake, client) = shop(version).await;
    fake.fail_next_with(1, 429, Some("120"));
    let error = client
        .push(&update(1, 12, 2, "x", false))
        .await
        .unwrap_err();
    assert!(
        matches!(error, PushError::Transient { retry_after: Some(d), .. } if d == Duration::from_secs(120)),
        "{error:?}"
    );
}

async fn hanging_shop_is_transient(version: Version) {
    let fake = fake::start(version, KEY).await;
    fake.add_order(12, 1);
    let mut cfg = config(version, &fake.base_url(), KEY);
    cfg.timeout = Duration::from_millis(300);
    let client = OpenCart::new(&cfg);
    fake.hang_next(1, Duration::from_secs(3));
    let error = client
        .push(&update(1, 12, 2, "x", false))
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert!(error.to_string().contains("timed out"), "{error}");
    assert_no_secret(&fake, &error);
}

async fn status_code_is_a_config_bug(version: Version) {
    let (fake, client) = shop(version).await;
    let mut bad = update(1, 12, 2, "x", false);
    bad.status = ShopStatus::Code("processing".into());
    let error = client.push(&bad).await.unwrap_err();
    assert!(!error.is_transient(), "{error:?}");
    assert_eq!(fake.calls().total, 0, "nothing may reach the shop");
}

// ------------------------------------------------------ sessions (3.0, 4.0.2)

macro_rules! every_session_version {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use super::*;
            #[tokio::test]
            async fn opencart3() {
                super::$scenario(Version::OpenCart3).await
            }
            #[tokio::test]
            async fn opencart402() {
                super::$scenario(Version::OpenCart402).await
            }
        }
    )*};
}

every_session_version!(
    token_is_reused_across_pushes,
    concurrent_pushes_share_one_login,
    expired_session_logs_in_again_once,
    session_refused_after_fresh_login_is_transient,
);

async fn token_is_reused_across_pushes(version: Version) {
    let (fake, client) = shop(version).await;
    for i in 0..5 {
        client.push(&update(i, 12, 2, "x", false)).await.unwrap();
    }
    assert_eq!(fake.logins(), 1);
    assert_eq!(fake.calls().history, 5);
    assert_eq!(fake.history(12).len(), 5);
}

async fn concurrent_pushes_share_one_login(version: Version) {
    let (fake, client) = shop(version).await;
    let client = Arc::new(client);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move { client.push(&update(i, 12, 2, "x", false)).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("push task").expect("push");
    }
    assert_eq!(fake.logins(), 1);
    assert_eq!(fake.history(12).len(), 8);
}

async fn expired_session_logs_in_again_once(version: Version) {
    let (fake, client) = shop(version).await;
    client
        .push(&update(1, 12, 2, "first", false))
        .await
        .unwrap();
    fake.expire_sessions();
    let pushed = client
        .push(&update(2, 12, 5, "second", false))
        .await
        .unwrap();
    assert_eq!(pushed.detail, SUCCESS);
    assert_eq!(fake.logins(), 2);
    // first push, refused push, retried push
    assert_eq!(fake.calls().history, 3);
    assert_eq!(fake.history(12).len(), 2);
    assert_eq!(fake.order_status(12), Some(5));
}

async fn session_refused_after_fresh_login_is_transient(version: Version) {
    let (fake, client) = shop(version).await;
    fake.forget_new_sessions(true);
    let error = client
        .push(&update(1, 12, 2, "x", false))
        .await
        .unwrap_err();
    assert!(error.is_transient(), "{error:?}");
    assert_no_secret(&fake, &error);
    assert_eq!(fake.logins(), 2, "exactly one re-login");
    assert!(fake.history(12).is_empty());

    // Once the shop keeps sessions again, the next push starts a new one.
    fake.forget_new_sessions(false);
    client.push(&update(1, 12, 2, "x", false)).await.unwrap();
    assert_eq!(fake.logins(), 3);
}

// ------------------------------------------------------------ wire formats

#[tokio::test]
async fn opencart3_sends_order_id_in_the_query_and_all_four_fields() {
    let (fake, client) = shop(Version::OpenCart3).await;
    client.push(&update(7, 12, 2, "a b", false)).await.unwrap();
    let requests = fake.requests();
    let [login, history] = &requests[..] else {
        panic!("{requests:?}")
    };
    assert_eq!(login.query, "route=api/login");
    assert_eq!(login.content_type, "application/x-www-form-urlencoded");
    assert_eq!(
        login.fields(),
        vec![
            ("username".into(), fake::USERNAME.into()),
            ("key".into(), KEY.into())
        ]
    );
    assert_eq!(
        history.query_value("route").as_deref(),
        Some("api/order/history")
    );
    assert_eq!(history.query_value("order_id").as_deref(), Some("12"));
    assert_eq!(history.query_value("store_id").as_deref(), Some("0"));
    assert_eq!(history.query_value("api_token"), fake.tokens_issued().pop());
    assert_eq!(
        history.body,
        "order_status_id=2&notify=0&override=0&comment=a+b%0A%5Bipnsync+update+%237%5D"
    );
}

#[tokio::test]
async fn opencart402_sends_order_id_in_the_body() {
    let (fake, client) = shop(Version::OpenCart402).await;
    client.push(&update(7, 12, 2, "x", false)).await.unwrap();
    let requests = fake.requests();
    assert_eq!(
        requests[0].query,
        "route=api/account/login&store_id=0&language=en-gb"
    );
    let history = &requests[1];
    assert_eq!(
        history.query_value("route").as_deref(),
        Some("api/sale/order.addHistory")
    );
    assert_eq!(history.query_value("language").as_deref(), Some("en-gb"));
    assert_eq!(history.query_value("order_id"), None);
    assert_eq!(
        history.body,
        "order_id=12&order_status_id=2&comment=x%0A%5Bipnsync+update+%237%5D&notify=0&override=0"
    );
}

// ------------------------------------------------------------------- 4.1

#[tokio::test]
async fn opencart41_signs_every_call_without_login() {
    let (fake, client) = shop(Version::OpenCart41).await;
    for i in 0..3 {
        client.push(&update(i, 12, 2, "x", false)).await.unwrap();
    }
    assert_eq!(fake.logins(), 0);
    assert_eq!(fake.api_history(), vec!["history_add"; 3]);
    let request = fake.requests().pop().unwrap();
    for name in [
        "call",
        "username",
        "store_id",
        "language",
        "currency",
        "time",
        "signature",
    ] {
        assert!(request.query_value(name).is_some(), "{name} missing");
    }
    // rawurlencoded: no raw `+`, `/` or `=` in the signature.
    let raw = request.query.split("signature=").nth(1).unwrap();
    assert!(!raw.contains(['+', '/', '=']), "{raw}");
}

#[tokio::test]
async fn opencart41_special_characters_pass_the_independent_verifier() {
    let (fake, client) = shop(Version::OpenCart41).await;
    let comment = "  Zahlung \"geprüft\" & <ok> — café ~*' \t";
    client.push(&update(9, 12, 2, comment, true)).await.unwrap();
    let row = fake.history(12).pop().unwrap();
    assert_eq!(
        row.comment,
        "Zahlung &quot;geprüft&quot; &amp; &lt;ok&gt; — café ~*' \t\n[ipnsync update #9]"
    );
    assert!(!row.notify, "the operator's entry notifies nobody");
    assert!(fake.history(12)[0].notify, "the customer's entry does");
}

#[tokio::test]
async fn opencart41_in_a_subfolder_signs_its_path() {
    let fake = fake::start_at(Version::OpenCart41, KEY, "/shop/").await;
    fake.add_order(12, 1);
    let base = fake.base_url();
    // With and without the trailing slash.
    for base_url in [base.clone(), base.trim_end_matches('/').to_owned()] {
        let client = OpenCart::new(&config(Version::OpenCart41, &base_url, KEY));
        client.push(&update(1, 12, 3, "x", false)).await.unwrap();
    }
    assert_eq!(fake.history(12).len(), 2);
    assert!(fake.requests().iter().all(|r| r.path == "/shop/index.php"));
}

#[tokio::test]
async fn opencart41_clock_skew_is_permanent_with_a_hint() {
    let (fake, client) = shop(Version::OpenCart41).await;
    fake.set_clock_offset(-1000);
    let reason = permanent_reason(
        client
            .push(&update(1, 12, 2, "x", false))
            .await
            .unwrap_err(),
    );
    assert!(reason.contains("HTTP 403"), "{reason}");
    assert!(reason.contains("the clock"), "{reason}");
    // Inside the ±450 s window it is accepted.
    fake.set_clock_offset(400);
    client.push(&update(1, 12, 2, "x", false)).await.unwrap();
}

#[tokio::test]
async fn opencart41_checks_the_ip_allow_list() {
    let (fake, client) = shop(Version::OpenCart41).await;
    fake.set_allowed_ips(&["10.0.0.1"]);
    let error = client
        .push(&update(1, 12, 2, "x", false))
        .await
        .unwrap_err();
    assert!(!error.is_transient(), "{error:?}");
    fake.set_allowed_ips(&["127.0.0.1"]);
    client.push(&update(1, 12, 2, "x", false)).await.unwrap();
}

#[tokio::test]
async fn opencart3_client_against_a_41_shop_fails_on_login() {
    // A misconfigured kind: 4.1 answers the 3.0 login with its plain 403
    // (exchange 45), which no retry can fix.
    let fake = fake::start(Version::OpenCart41, KEY).await;
    fake.add_order(12, 1);
    let client = OpenCart::new(&config(Version::OpenCart3, &fake.base_url(), KEY));
    let reason = permanent_reason(
        client
            .push(&update(1, 12, 2, "x", false))
            .await
            .unwrap_err(),
    );
    assert!(reason.starts_with("HTTP 403"), "{reason}");
}

#[tokio::test]
async fn non_numeric_order_reference_never_reaches_the_shop() {
    let (fake, client) = shop(Version::OpenCart3).await;
    let mut bad = update(1, 12, 2, "x", false);
    bad.order_ref = "ORD-12".into();
    assert!(!client.push(&bad).await.unwrap_err().is_transient());
    assert_eq!(fake.calls().total, 0);
}

// ------------------------------------- the fake against the recorded shops

/// Sends one request verbatim; returns status, Content-Type and body.
async fn raw_post(
    fake: &FakeOpenCart,
    host: Option<&str>,
    query: &str,
    content_type: &str,
    body: &str,
) -> (u16, String, String) {
    let mut request = reqwest::Client::new()
        .post(format!("{}index.php?{query}", fake.base_url()))
        .header(reqwest::header::CONTENT_TYPE, content_type)
        .body(body.to_owned());
    if let Some(host) = host {
        request = request.header(reqwest::header::HOST, host);
    }
    let response = request.send().await.expect("fake answers");
    let status = response.status().as_u16();
    let content_type = response.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    (status, content_type, response.text().await.unwrap())
}

const FORM: &str = "application/x-www-form-urlencoded";

/// Exchanges 1–16 and 22 of the OpenCart 3.0.5.1 recording.
#[tokio::test]
async fn fake_opencart3_answers_like_the_recording() {
    let fake = fake::start(Version::OpenCart3, KEY).await;
    for id in 1..=3 {
        fake.add_order(id, 1);
    }
    let post = |query: String, body: &'static str| {
        let fake = &fake;
        async move { raw_post(fake, None, &query, FORM, body).await }
    };
    let (status, content_type, body) = post(
        "route=api/login".into(),
        "username=ipnsync&key=test-test-test-test-test-test-test-test",
    )
    .await;
    assert_eq!((status, content_type.as_str()), (200, "application/json"));
    let prefix = r#"{"success":"Success: API session successfully started!","api_token":""#;
    let token = body
        .strip_prefix(prefix)
        .and_then(|t| t.strip_suffix("\"}"))
        .expect("login body")
        .to_owned();
    assert!(
        token.len() == 26 && token.chars().all(|c| c.is_ascii_hexdigit()),
        "{token}"
    );

    for refused in [
        "username=ipnsync&key=wrong-test-test-test",
        "username=nosuchuser&key=test-test-test-test-test-test-test-test",
        "key=test-test-test-test-test-test-test-test",
    ] {
        assert_eq!(
            post("route=api/login".into(), refused).await,
            (200, "application/json".into(), "[]".into())
        );
    }
    let json_login = raw_post(
        &fake,
        None,
        "route=api/login",
        "application/json",
        r#"{"username": "ipnsync", "key": "test-test-test-test-test-test-test-test"}"#,
    )
    .await;
    assert_eq!(json_login.2, "[]");

    let history = |order: &str| format!("route=api/order/history&api_token={token}{order}");
    let ok = (
        200,
        "application/json".to_owned(),
        r#"{"success":"Success: You have modified orders!"}"#.to_owned(),
    );
    let not_found = (
        200,
        "application/json".to_owned(),
        r#"{"error":"Warning: Order could not be found!"}"#.to_owned(),
    );
    let denied = (
        200,
        "application/json".to_owned(),
        r#"{"error":"Warning: You do not have permission to access the API!"}"#.to_owned(),
    );
    assert_eq!(post(history("&order_id=2"), "order_status_id=5&notify=0&override=0&comment=Paid+%26+%22ok%22+%3Cb%3Ex%3C%2Fb%3E+caf%C3%A9+%27q%27++").await, ok);
    assert_eq!(
        fake.history(2),
        vec![HistoryRow {
            status_id: 5,
            comment: "Paid &amp; &quot;ok&quot; &lt;b&gt;x&lt;/b&gt; café 'q'".into(),
            notify: false
        }]
    );
    assert_eq!(
        post(
            history("&order_id=999"),
            "order_status_id=2&notify=0&override=0&comment=x"
        )
        .await,
        not_found
    );
    assert_eq!(
        post(
            history(""),
            "order_status_id=2&notify=0&override=0&comment=x"
        )
        .await,
        not_found
    );
    assert_eq!(
        post(
            history(""),
            "order_id=1&order_status_id=3&notify=0&override=0&comment=x"
        )
        .await,
        not_found
    );
    assert_eq!(
        post(
            "route=api/order/history&api_token=notarealtoken0000000000000&order_id=1".into(),
            "order_status_id=3&notify=0&override=0&comment=x"
        )
        .await,
        denied
    );
    let token_in_body =
        format!("api_token={token}&order_status_id=3&notify=0&override=0&comment=x");
    assert_eq!(
        raw_post(
            &fake,
            None,
            "route=api/order/history&order_id=1",
            FORM,
            &token_in_body
        )
        .await,
        denied
    );
    // Exchange 16: a missing order_status_id sets status 0, unchecked.
    assert_eq!(
        post(history("&order_id=3"), "comment=status+omitted").await,
        ok
    );
    assert_eq!(fake.order_status(3), Some(0));
    assert_eq!(fake.history(1), vec![]);
}

/// Exchanges 23–25, 29–32, 34–36, 42, 43, 45 and 48 of the OpenCart
/// 4.1.0.4 recording, replayed byte for byte with the shop's clock set to
/// the recording's.
#[tokio::test]
async fn fake_opencart41_verifies_signatures_like_the_recording() {
    let fake = fake::start(Version::OpenCart41, KEY).await;
    for id in 1..=3 {
        fake.add_order(id, 1);
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    fake.set_clock_offset(1_795_460_961 - now);
    let ok = r#"{"success":"Success: You have modified orders!"}"#;
    let not_found = r#"{"error":"Warning: Order could not be found!"}"#;
    let forbidden = r#"{"error":"You do not have permission to access this page."}"#;
    let x5 = "order_id=1&order_status_id=5&comment=x&notify=0&override=0";
    let special = "order_id=2&order_status_id=5&comment=Paid+%26+%22ok%22+%3Cb%3Ex%3C%2Fb%3E+caf%C3%A9+%27q%27++&notify=0&override=0";
    let cases: [(&str, &str, &str, &str, u16, &str); 14] = [
        (
            "history_add",
            "1795460961",
            "1CYnzIFBXQ0IlyaJIq4%2BkMgYcXQ%3D",
            "order_id=1&order_status_id=2&comment=Payment+confirmed+by+ipnsync&notify=0&override=0",
            200,
            ok,
        ),
        (
            "history_add",
            "1795460961",
            "OkyNQoWPTY8YOB%2BCCQRLNR0ai78%3D",
            special,
            200,
            ok,
        ),
        (
            "history_add",
            "1795460962",
            "XBXxmjO%2BSYYP5TZdy61R2IUEdns%3D",
            &special.replacen("order_id=2", "order_id=3", 1),
            403,
            forbidden,
        ),
        (
            "history_add",
            "1795460965",
            "6NF%2BWDFhKQhO5X5mgewEpBAZlPc%3D",
            x5,
            403,
            forbidden,
        ),
        (
            "history_add",
            "1795459965",
            "IpzuYR6dRfOofcqGmcqL6%2FYTao0%3D",
            x5,
            403,
            forbidden,
        ),
        (
            "history_add",
            "1795460566",
            "rkTP%2BHcy%2FNWYq0CFao0M0XvrQ4E%3D",
            "order_id=1&order_status_id=3&comment=clock+skew+400s&notify=0&override=0",
            200,
            ok,
        ),
        (
            "history_add",
            "1795460966",
            "lDWSI4BpLgx19mZkdgyhjNENqWI%3D",
            "order_id=999&order_status_id=2&comment=x&notify=0&override=0",
            200,
            not_found,
        ),
        (
            "history_add",
            "1795460967",
            "KWVhS4XtFbFmhJM%2FMGZEMnNTthE%3D",
            x5,
            403,
            forbidden,
        ),
        (
            "history_add",
            "1795460967",
            "9gYt4%2FQd5GsV6ZQyeLC3fe6ycOs%3D",
            x5,
            403,
            forbidden,
        ),
        (
            "history_add",
            "1795460968",
            "2VB+y2PJsA7cTIOB+AdHM5QrFI0=",
            x5,
            403,
            forbidden,
        ),
        (
            "history",
            "1795460970",
            "OtgjSPh6g0PSQkEOeaXRctQFa14%3D",
            x5,
            200,
            r#"{"error":"API call not found"}"#,
        ),
        (
            "history_add",
            "1795460970",
            "afDoJ%2BEwrfbgo%2BtmKXv0zKQM6oo%3D",
            "order_id=3&comment=status+omitted",
            200,
            ok,
        ),
        (
            "history_add",
            "1795461000",
            "CvbTsyj6jyQBgIjkkKc711%2BzDLs%3D",
            "json",
            200,
            not_found,
        ),
        ("history_add", "1795460961", "", x5, 403, forbidden),
    ];
    for (i, (call, time, signature, body, status, answer)) in cases.into_iter().enumerate() {
        let query = if signature.is_empty() {
            format!("route=api/order&call={call}")
        } else {
            format!("route=api/order&call={call}&username=ipnsync&store_id=0&language=en-gb&currency=USD&time={time}&signature={signature}")
        };
        let (content_type, body) = if body == "json" {
            (
                "application/json",
                r#"{"order_id": 4, "order_status_id": 2, "comment": "json body", "notify": 0, "override": 0}"#,
            )
        } else {
            (FORM, body)
        };
        let got = raw_post(&fake, Some("127.0.0.1:8102"), &query, content_type, body).await;
        let expected_type = if status == 403 {
            "text/html; charset=utf-8"
        } else {
            "application/json"
        };
        assert_eq!(
            got,
            (status, expected_type.to_owned(), answer.to_owned()),
            "case {i}"
        );
    }
    assert_eq!(
        fake.history(2)[0].comment,
        "Paid &amp; &quot;ok&quot; &lt;b&gt;x&lt;/b&gt; café 'q'"
    );
    assert_eq!(fake.order_status(1), Some(3));
    assert_eq!(fake.order_status(3), Some(0));
    assert_eq!(fake.api_history().len(), 7);
    // Exchange 45: the 3.0 login gets the plain 403.
    let login = raw_post(
        &fake,
        None,
        "route=api/login",
        FORM,
        "username=ipnsync&key=x",
    )
    .await;
    assert_eq!((login.0, login.2.as_str()), (403, forbidden));
    // Exchange 46: a call carrying api_token crashes 4.1.0.4.
    let crash = raw_post(
        &fake,
        None,
        "route=api/order/history&api_token=abc&order_id=1",
        FORM,
        "order_status_id=5",
    )
    .await;
    assert_eq!(
        (crash.0, crash.1.as_str()),
        (500, "text/html; charset=UTF-8")
    );
    assert!(crash
        .2
        .starts_with("Error: Error: Table 'oc4.oc_api_session' doesn't exist"));
}

// ------------------------------------------ unknown results, amount check

fn review_config(version: Version, base_url: &str, tolerance: Option<u32>) -> ShopConfig {
    let mut cfg = config(version, base_url, KEY);
    cfg.statuses = ipnsync::config::default_statuses(kind(version));
    cfg.statuses.insert(Outcome::Review, ShopStatus::Id(17));
    cfg.amount_tolerance = tolerance;
    cfg
}

/// 3.0: after an attempt whose result is unknown, the order is read first;
/// an update it already shows is not sent again (no second e-mail).
#[tokio::test]
async fn opencart3_does_not_resend_an_update_the_order_already_shows() {
    let fake = fake::start(Version::OpenCart3, KEY).await;
    fake.add_order(12, 1);
    let client = OpenCart::new(&review_config(Version::OpenCart3, &fake.base_url(), None));
    client.push(&update(5, 12, 2, "Paid", true)).await.unwrap();
    let rows = fake.history(12).len();
    let mut again = update(5, 12, 2, "Paid", true);
    again.earlier_attempt_unknown = true;
    let pushed = client.push(&again).await.unwrap();
    assert!(
        pushed.detail.contains("already applied"),
        "{}",
        pushed.detail
    );
    assert_eq!(fake.history(12).len(), rows, "nothing sent again");
    assert_eq!(fake.calls().info, 1);
    assert_eq!(
        fake.history(12).iter().filter(|r| r.notify).count(),
        1,
        "one notification"
    );
}

/// 4.x cannot read the order: a re-send never notifies, and says so.
#[tokio::test]
async fn opencart41_resends_without_notifying() {
    let fake = fake::start(Version::OpenCart41, KEY).await;
    fake.add_order(12, 1);
    let client = OpenCart::new(&review_config(Version::OpenCart41, &fake.base_url(), None));
    let mut again = update(5, 12, 2, "Paid", true);
    again.earlier_attempt_unknown = true;
    let pushed = client.push(&again).await.unwrap();
    assert!(
        pushed.detail.contains("without notifying the customer"),
        "{}",
        pushed.detail
    );
    let history = fake.history(12);
    assert_eq!(history.len(), 1);
    assert!(!history[0].notify);
}

/// 3.0: 49.90 EUR paid for a 101 USD order puts it in review, with both
/// figures, and tells the customer nothing.
#[tokio::test]
async fn opencart3_amount_mismatch_puts_the_order_in_review() {
    let fake = fake::start(Version::OpenCart3, KEY).await;
    fake.add_order_with_total(12, 1, "101.0000", "USD", "1.00000000");
    let client = OpenCart::new(&review_config(
        Version::OpenCart3,
        &fake.base_url(),
        Some(0),
    ));
    let mut paid = update(8, 12, 2, "Paid", true);
    paid.amount = ipnsync::domain::money::Money::new(4990, "EUR");
    let pushed = client.push(&paid).await.unwrap();
    assert_eq!(pushed.applied_outcome, Some(Outcome::Review));
    let reason = pushed.needs_operator.expect("an operator must look");
    assert!(
        reason.contains("49.90 EUR") && reason.contains("101.00 USD"),
        "{reason}"
    );
    assert_eq!(fake.order_status(12), Some(17));
    let history = fake.history(12);
    assert_eq!(history.len(), 1);
    assert!(!history[0].notify);
    assert!(
        history[0]
            .comment
            .contains("paid 49.90 EUR but the order is 101.00 USD"),
        "{}",
        history[0].comment
    );

    // The order's own currency at its rate: 58.7059 USD × 0.85 = 49.90 EUR.
    fake.add_order_with_total(13, 1, "58.7059", "EUR", "0.85000000");
    let mut ok = update(9, 13, 2, "Paid", false);
    ok.amount = ipnsync::domain::money::Money::new(4990, "EUR");
    let pushed = client.push(&ok).await.unwrap();
    assert_eq!(pushed.applied_outcome, None);
    assert_eq!(fake.order_status(13), Some(2));
}
