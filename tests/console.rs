//! The operator console's handlers, over HTTP against the real daemon: off
//! unless configured, sign-in and sessions, CSRF and cross-site requests
//! (which change nothing), and every action (validate, deny, shop only,
//! retry) going through the same services as the CLI and the admin API.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};

use support::console::{Client, Setup, ALICE_PASSWORD, BOB_TOKEN, UUID};
use support::fake_lyra_api::Mode as LyraMode;

// ------------------------------------------------------------ log capture

/// Everything the daemons of this test binary log (one global subscriber).
fn logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("ipnsync=info")
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log_text() -> String {
    String::from_utf8_lossy(&logs().lock().unwrap()).into_owned()
}

// ------------------------------------------------------------------ helpers

fn review_actions(s: &Setup) -> Vec<(String, String, String)> {
    s.daemon
        .reader()
        .prepare("SELECT action, actor, state FROM review_actions ORDER BY id")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

async fn signed_in(s: &Setup) -> Client {
    let mut c = Client::new(s);
    let answer = c.sign_in("alice", ALICE_PASSWORD).await;
    assert_eq!(answer.status, 303, "{}", answer.body);
    c
}

fn act_form<'a>(csrf: &'a str, action: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("csrf", csrf),
        ("shop", "hook"),
        ("order", "100042"),
        ("action", action),
        ("comment", "Called the buyer"),
    ]
}

// -------------------------------------------------------------------- tests

#[tokio::test]
async fn without_a_console_section_its_paths_do_not_exist() {
    let s = Setup::start(false).await;
    let mut c = Client::new(&s);
    for path in ["/", "/console/", "/console/login", "/console/orders"] {
        assert_eq!(c.get(path).await.status, 404, "{path}");
    }
    let post = c
        .post(
            "/console/login",
            &[("name", "alice"), ("password", ALICE_PASSWORD)],
        )
        .await;
    assert_eq!(post.status, 404);
    assert_eq!(
        c.get("/healthz").await.status,
        200,
        "the rest of admin stays"
    );
    s.daemon.stop().await;
}

#[tokio::test]
async fn sign_in_sets_a_strict_session_cookie_and_pages_carry_a_strict_csp() {
    let s = Setup::start(true).await;
    let mut c = Client::new(&s);
    let root = c.get("/").await;
    assert_eq!((root.status, root.location()), (303, "/console/orders"));
    let page = c.get("/console/orders").await;
    assert_eq!((page.status, page.location()), (303, "/console/login"));

    let form = c.get("/console/login").await;
    assert_eq!(form.status, 200);
    let csp = form.header("content-security-policy");
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        !csp.contains("unsafe-inline") && !csp.contains("script-src"),
        "{csp}"
    );
    assert!(!form.body.contains("<script"), "no script at all");
    assert_eq!(form.header("x-frame-options"), "DENY");

    let answer = c.sign_in("alice", ALICE_PASSWORD).await;
    assert_eq!((answer.status, answer.location()), (303, "/console/orders"));
    let cookie = answer
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.starts_with("ipnsync_console="))
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/console/"), "{cookie}");
    assert!(
        cookie.contains("Max-Age=3600"),
        "session_lifetime: {cookie}"
    );

    let page = c.get("/console/orders").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Signed in as"), "{}", page.body);
    assert!(page.body.contains(">alice<"));
    assert_eq!(page.header("cache-control"), "no-store");

    // A token operator signs in with the token in the password field.
    let mut bob = Client::new(&s);
    assert_eq!(bob.sign_in("bob", BOB_TOKEN).await.status, 303);
    assert!(bob.get("/console/orders").await.body.contains(">bob<"));

    // Sign out: the session is gone for good, even with the old cookie.
    let old = c.cookies.clone();
    let csrf = c.session_csrf().await;
    let out = c.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!((out.status, out.location()), (303, "/console/login"));
    assert!(!c.cookies.contains_key("ipnsync_console"), "cookie deleted");
    c.cookies = old;
    assert_eq!(c.get("/console/orders").await.location(), "/console/login");
    s.daemon.stop().await;
}

#[tokio::test]
async fn failed_sign_ins_are_refused_logged_without_the_password_and_rate_limited() {
    let _ = logs();
    let s = Setup::start(true).await;
    let mut c = Client::new(&s);
    let wrong = "Tr0ub4dor&3-guess";
    for _ in 0..5 {
        let a = c.sign_in("alice", wrong).await;
        assert_eq!(a.status, 401, "{}", a.body);
        assert!(a.body.contains("Wrong operator name or password."));
        assert!(!c.cookies.contains_key("ipnsync_console"));
    }
    // The name is now blocked, even with the right password.
    let a = c.sign_in("alice", ALICE_PASSWORD).await;
    assert_eq!(a.status, 429, "{}", a.body);
    assert!(a.body.contains("Too many failed sign-ins"));
    assert!(!c.cookies.contains_key("ipnsync_console"));
    // Another operator is not.
    assert_eq!(c.sign_in("bob", BOB_TOKEN).await.status, 303);

    // A password typed as the name is not logged either.
    let typo = "my-secret-password-as-name";
    assert_eq!(c.sign_in(typo, "x").await.status, 401);

    let log = log_text();
    assert!(log.contains("console: sign-in refused"), "{log}");
    assert!(log.contains("wrong password") && log.contains("too many failed sign-ins"));
    assert!(log.contains("unknown operator"));
    for secret in [wrong, ALICE_PASSWORD, BOB_TOKEN, typo] {
        assert!(!log.contains(secret), "{secret:?} logged");
    }
    s.daemon.stop().await;
}

#[tokio::test]
async fn the_sign_in_form_needs_its_own_anti_forgery_token() {
    let s = Setup::start(true).await;
    let mut c = Client::new(&s);
    // Posted without having loaded the form (a forged cross-site sign-in).
    let a = c
        .post(
            "/console/login",
            &[
                ("csrf", "x"),
                ("name", "alice"),
                ("password", ALICE_PASSWORD),
            ],
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(!c.cookies.contains_key("ipnsync_console"));
    // With the form's cookie but another token.
    c.get("/console/login").await;
    let a = c
        .post(
            "/console/login",
            &[
                ("csrf", "forged"),
                ("name", "alice"),
                ("password", ALICE_PASSWORD),
            ],
        )
        .await;
    assert_eq!(a.status, 403);
    assert!(!c.cookies.contains_key("ipnsync_console"));
    s.daemon.stop().await;
}

#[tokio::test]
async fn unauthenticated_and_cross_site_requests_change_nothing() {
    let s = Setup::start(true).await;
    s.order_in_review().await;
    s.dead_update().await;
    let dead_id: i64 = s
        .daemon
        .reader()
        .query_row("SELECT id FROM outbox WHERE state = 'dead'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let dead_id = dead_id.to_string();

    let mut alice = signed_in(&s).await;
    let csrf = alice.session_csrf().await;

    // Not signed in: the right token is no use without the session.
    let mut anon = Client::new(&s);
    let a = anon
        .post("/console/review/act", &act_form(&csrf, "validate"))
        .await;
    assert_eq!(a.status, 403);
    let a = anon
        .post(
            "/console/retry",
            &[("csrf", &csrf), ("outbox_id", &dead_id)],
        )
        .await;
    assert_eq!(a.status, 403);
    // A forged cookie.
    anon.cookies
        .insert("ipnsync_console".into(), "0".repeat(64));
    let a = anon
        .post("/console/review/act", &act_form(&csrf, "deny"))
        .await;
    assert_eq!(a.status, 403);

    // Signed in, but without or with a wrong CSRF token.
    for token in ["", "wrong"] {
        let a = alice
            .post("/console/review/act", &act_form(token, "validate"))
            .await;
        assert_eq!(a.status, 403, "{token:?}");
        let a = alice
            .post(
                "/console/retry",
                &[("csrf", token), ("outbox_id", &dead_id)],
            )
            .await;
        assert_eq!(a.status, 403, "{token:?}");
        let a = alice.post("/console/logout", &[("csrf", token)]).await;
        assert_eq!(a.status, 403, "{token:?}");
    }
    // Signed in with the right token, but sent by another site.
    let a = alice
        .post_with(
            "/console/review/act",
            &act_form(&csrf, "validate"),
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(a.status, 403);
    let a = alice
        .post_with(
            "/console/retry",
            &[("csrf", &csrf), ("outbox_id", &dead_id)],
            &[("sec-fetch-site", "cross-site")],
        )
        .await;
    assert_eq!(a.status, 403);

    // Nothing changed: no gateway call, no action, order and outbox as before.
    assert!(s.lyra.calls().is_empty());
    assert!(review_actions(&s).is_empty());
    assert_eq!(s.outcome("100042"), "review");
    assert_eq!(s.dead_count(), 1);
    assert_eq!(s.daemon.count("SELECT COUNT(*) FROM operator_actions"), 0);
    // And the session still works (logout was refused too).
    assert_eq!(alice.get("/console/orders").await.status, 200);
    s.daemon.stop().await;
}

#[tokio::test]
async fn orders_search_filters_and_the_order_page_shows_the_timeline() {
    let s = Setup::start(true).await;
    s.order_in_review().await;
    s.dead_update().await;
    let mut c = signed_in(&s).await;

    let all = c.get("/console/orders").await;
    assert_eq!(all.status, 200);
    let (i41, i42) = (
        all.body.find(">100041<").unwrap(),
        all.body.find(">100042<").unwrap(),
    );
    assert!(i41 < i42, "newest first");
    assert!(all.body.contains("1 dead"));

    let by_ref = c.get("/console/orders?q=100042").await.body;
    assert!(by_ref.contains(">100042<") && !by_ref.contains(">100041<"));
    let by_tx = c.get(&format!("/console/orders?q={UUID}")).await.body;
    assert!(by_tx.contains(">100042<") && !by_tx.contains(">100041<"));
    let dead = c.get("/console/orders?dead=1").await.body;
    assert!(dead.contains(">100041<") && !dead.contains(">100042<"));
    let review = c
        .get("/console/orders?outcome=review&shop=hook&age=1h")
        .await
        .body;
    assert!(review.contains(">100042<") && !review.contains(">100041<"));
    let none = c.get("/console/orders?shop=elsewhere").await.body;
    assert!(none.contains("No order matches."));
    let page2 = c.get("/console/orders?page=2").await.body;
    assert!(page2.contains("No order matches.") && page2.contains("← Newer"));
    // Search text is escaped, never markup.
    let xss = c
        .get("/console/orders?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .await
        .body;
    assert!(!xss.contains("<script>") && xss.contains("&lt;script&gt;"));

    let order = c.get("/console/order?shop=hook&order=100042").await;
    assert_eq!(order.status, 200);
    let b = &order.body;
    assert!(b.contains("Order 100042"));
    assert!(
        b.contains("AUTHORISED_TO_VALIDATE (PAY) via lyra: assessed review, applied → review"),
        "{b}"
    );
    assert!(b.contains("delivery") && b.contains("push"));
    assert!(b.contains("Validate payment…") && b.contains("Deny payment…"));
    // The header counters.
    assert!(b.contains("id=\"count-review\">1<"), "{b}");
    assert!(b.contains("class=\"alert\" id=\"count-dead\">1<"), "{b}");

    let dead_order = c.get("/console/order?order=100041").await.body;
    assert!(
        dead_order.contains("HTTP 500"),
        "the shop's answer: {dead_order}"
    );
    assert!(dead_order.contains(">Retry<"));

    let unknown = c.get("/console/order?shop=hook&order=999").await;
    assert_eq!(unknown.status, 404);
    s.daemon.stop().await;
}

#[tokio::test]
async fn validate_from_the_review_queue_goes_to_the_gateway_and_the_shop_as_the_operator() {
    let s = Setup::start(true).await;
    s.order_in_review().await;
    let mut c = signed_in(&s).await;

    let queue = c.get("/console/review").await.body;
    assert!(queue.contains(">100042<"), "{queue}");
    assert!(queue.contains("29.90 EUR"));
    assert!(queue.contains("MANUAL_VALIDATION") && queue.contains("SUSPECT_COUNTRY: WARNING"));
    assert!(queue.contains("in 6d 23h"), "authorisation expiry: {queue}");

    let confirm = c
        .get("/console/review/confirm?shop=hook&order=100042&action=validate")
        .await;
    assert_eq!(confirm.status, 200);
    assert!(confirm
        .body
        .contains("Validate the payment of order 100042?"));
    assert!(
        s.lyra.calls().is_empty(),
        "the confirmation page does nothing"
    );
    let csrf = confirm.csrf();

    let done = c
        .post("/console/review/act", &act_form(&csrf, "validate"))
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(done.location(), "/console/order?shop=hook&order=100042");
    let calls = s.lyra.calls();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].service, "Transaction/Validate");
    assert_eq!(
        calls[0].body["comment"],
        "ipnsync operator alice: Called the buyer"
    );
    assert_eq!(s.outcome("100042"), "accepted");
    assert_eq!(
        review_actions(&s),
        [("validate".into(), "alice".into(), "done".into())]
    );
    s.wait_shop_updates(2).await;
    assert_eq!(s.delivered()[1], ("100042".into(), "accepted".into()));

    let page = c.get(done.location()).await.body;
    assert!(
        page.contains("Payment of order 100042 validated by alice via lyra (AUTHORISED)"),
        "{page}"
    );
    assert!(
        page.contains("validate by alice via lyra: AUTHORISED → accepted"),
        "{page}"
    );
    // Shown once.
    assert!(!c
        .get(done.location())
        .await
        .body
        .contains("validated by alice via lyra ("));

    // Done twice (a second tab): refused, nothing more at the gateway.
    let again = c
        .post("/console/review/act", &act_form(&csrf, "validate"))
        .await;
    assert_eq!(again.status, 409, "{}", again.body);
    assert!(again.body.contains("not in review"), "{}", again.body);
    assert_eq!(s.lyra.calls().len(), 1);
    s.daemon.stop().await;
}

#[tokio::test]
async fn deny_shop_only_skips_the_gateway_and_a_refusal_changes_nothing() {
    let s = Setup::start(true).await;
    s.order_in_review().await;
    let mut c = Client::new(&s);
    assert_eq!(c.sign_in("bob", BOB_TOKEN).await.status, 303);
    let csrf = c.session_csrf().await;

    // The gateway refuses (web services not subscribed): shown, nothing done.
    s.lyra.set_mode(LyraMode::NotSubscribed);
    let refused = c
        .post("/console/review/act", &act_form(&csrf, "deny"))
        .await;
    assert_eq!(refused.status, 502, "{}", refused.body);
    assert!(refused.body.contains("Nothing was done."));
    assert!(refused.body.contains("shop_only"), "{}", refused.body);
    assert_eq!(s.outcome("100042"), "review");

    let mut form = act_form(&csrf, "deny");
    form.push(("shop_only", "1"));
    let done = c.post("/console/review/act", &form).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(s.lyra.calls().len(), 1, "only the refused call");
    assert_eq!(s.outcome("100042"), "canceled");
    assert_eq!(
        review_actions(&s),
        [
            ("deny".into(), "bob".into(), "failed".into()),
            ("deny".into(), "bob".into(), "done".into())
        ]
    );
    s.wait_shop_updates(2).await;
    assert_eq!(s.delivered()[1], ("100042".into(), "canceled".into()));
    let page = c.get(done.location()).await.body;
    assert!(page.contains("denied by bob in the shop only"), "{page}");
    s.daemon.stop().await;
}

#[tokio::test]
async fn retry_puts_a_dead_update_back_and_records_the_operator() {
    let s = Setup::start(true).await;
    s.dead_update().await;
    let mut c = signed_in(&s).await;
    let page = c.get("/console/dead").await;
    assert!(page.body.contains(">100041<"));
    assert!(
        page.body.contains("HTTP 500"),
        "the shop's answer: {}",
        page.body
    );
    let csrf = page.csrf();
    let id: i64 = s
        .daemon
        .reader()
        .query_row("SELECT id FROM outbox WHERE state = 'dead'", [], |r| {
            r.get(0)
        })
        .unwrap();
    let id = id.to_string();

    let done = c
        .post(
            "/console/retry",
            &[
                ("csrf", &csrf),
                ("outbox_id", &id),
                ("back", "/console/dead"),
            ],
        )
        .await;
    assert_eq!((done.status, done.location()), (303, "/console/dead"));
    s.wait_for(
        |s| {
            s.delivered()
                .contains(&("100041".into(), "accepted".into()))
        },
        "the retried update to reach the shop",
    )
    .await;
    assert_eq!(s.dead_count(), 0);
    let after = c.get("/console/dead").await.body;
    assert!(after.contains(&format!("Update #{id} of order 100041 is queued again")));
    assert!(after.contains("No shop update has given up."));
    let actor: String = s
        .daemon
        .reader()
        .query_row(
            "SELECT actor FROM operator_actions WHERE action = 'retry' AND outbox_id = ?1",
            [id.parse::<i64>().unwrap()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(actor, "alice");
    let order = c.get("/console/order?shop=hook&order=100041").await.body;
    assert!(
        order.contains(&format!("retry of update #{id} by alice")),
        "{order}"
    );

    // Again: not dead any more, nothing done; an open redirect is refused.
    let again = c
        .post(
            "/console/retry",
            &[
                ("csrf", &csrf),
                ("outbox_id", &id),
                ("back", "https://evil.example/"),
            ],
        )
        .await;
    assert_eq!((again.status, again.location()), (303, "/console/dead"));
    assert!(c.get("/console/dead").await.body.contains("is not dead"));
    assert_eq!(s.daemon.count("SELECT COUNT(*) FROM operator_actions"), 1);
    s.daemon.stop().await;
}

#[tokio::test]
async fn hash_password_reads_stdin_and_prints_a_verifiable_argon2id_hash() {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    let run = |input: &'static [u8]| {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ipnsync"))
            .arg("hash-password")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    };
    let out = tokio::task::spawn_blocking(move || run(b"a long operator passphrase\n"))
        .await
        .unwrap();
    assert!(out.status.success());
    let hash = String::from_utf8(out.stdout).unwrap();
    let hash = hash.trim();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("passphrase"));
    let parsed = PasswordHash::new(hash).unwrap();
    assert!(argon2::Argon2::default()
        .verify_password(b"a long operator passphrase", &parsed)
        .is_ok());
    // The configuration takes it as it is.
    let text =
        format!("[console]\noperators = [{{ name = \"alice\", password_hash = \"{hash}\" }}]\n");
    ipnsync::config::Config::parse(&text, &Default::default()).unwrap();

    let empty = tokio::task::spawn_blocking(move || run(b"\n"))
        .await
        .unwrap();
    assert_eq!(empty.status.code(), Some(2));
}

/// Values an operator types (or a stored order id) reach the console's log
/// lines escaped: a CR/LF in the posted order reference cannot write a
/// forged line of its own.
#[tokio::test]
async fn a_cr_lf_in_a_posted_order_reference_stays_on_one_log_line() {
    logs();
    let s = Setup::start(true).await;
    let mut c = signed_in(&s).await;
    let csrf = c.session_csrf().await;
    let forged = "100042\r\nERROR forged: console line";
    let form = vec![
        ("csrf", csrf.as_str()),
        ("shop", "hook\nINFO forged shop"),
        ("order", forged),
        ("action", "validate"),
    ];
    let answer = c.post("/console/review/act", &form).await;
    assert_eq!(answer.status, 404, "{}", answer.body);
    let log = log_text();
    assert!(
        log.contains("console: review action not done"),
        "the refusal is logged: {log}"
    );
    for line in log.lines() {
        assert!(
            !line.starts_with("ERROR forged") && !line.starts_with("INFO forged"),
            "a forged log line: {line:?}"
        );
    }
    s.daemon.stop().await;
}

/// A risk-rejected order still authorised at Lyra (the automatic
/// cancellation failed) is in the review queue to be cancelled at the
/// gateway: the console says so and offers that one step, not a
/// "Validate" that can only be refused (it is not in review).
#[tokio::test]
async fn the_queue_offers_a_cancel_at_the_gateway_not_a_validate_for_a_risk_rejected_order() {
    const FRAUD_UUID: &str = "1f2e3d4c5b6a79881726354a5b6c7d8e";
    let s = Setup::start(true).await;
    s.lyra.set_transaction(FRAUD_UUID, "AUTHORISED");
    s.lyra.set_mode(LyraMode::NotSubscribed);
    let (status, text) = s
        .daemon
        .post_form(
            "/ipn/lyra",
            support::daemon::fixture("lyra-form/clearsale-fraud.txt"),
        )
        .await;
    assert_eq!(status, 200, "{text}");
    s.wait_for(
        |s| {
            review_actions(s)
                .iter()
                .any(|(_, _, state)| state == "failed")
        },
        "the automatic cancellation to fail",
    )
    .await;
    let mut c = signed_in(&s).await;
    let page = c.get("/console/review").await.body;
    assert!(page.contains(">100043<"), "{page}");
    assert!(page.contains("cancel at the gateway"), "{page}");
    assert!(
        !page.contains("Validate payment of order 100043"),
        "no validate for a rejected order: {page}"
    );
    assert!(page.contains("action=deny"), "{page}");
    s.daemon.stop().await;
}
