//! What the daemon writes to its log: one line per decision with the facts an
//! operator needs, WARN for refusals, and never a key or a signature.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::daemon::fixture;
use support::process::{free_port, lyra_config, terminate, wait_listening};

/// The Mastercard Gateway notification secret of the one-line log test.
const MPGS_SECRET: &str = "mpgs-secret-0123456789abcdef0123";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_decisions_and_refusals_but_no_secret() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        ipnsync::config::DEFAULT_CONFIG
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{port}"))
            .replace("listen = \"127.0.0.1:9090\"", "listen = \"off\"")
            .replace(
                "database = \"ipnsync.db\"",
                &format!("database = \"{}\"", dir.path().join("l.db").display()),
            ),
    )
    .unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_ipnsync"))
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(port).await;
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/ipn/lyra");
    let good = fixture("lyra-form/to-validate.txt");
    let text = String::from_utf8(good.clone()).unwrap();
    let signature = text.rsplit("signature=").next().unwrap().to_owned();
    let tampered = text.replace("vads_amount=2990", "vads_amount=1");
    for body in [good, tampered.into_bytes()] {
        client
            .post(&url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
    }
    terminate(&daemon);
    let mut log = String::new();
    daemon
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    daemon.wait().unwrap();

    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let decision = lines
        .iter()
        .find(|l| l["message"] == "notification applied")
        .expect("a decision line");
    assert_eq!(decision["level"], "INFO");
    assert_eq!(decision["order"], "100042");
    assert_eq!(decision["status"], "AUTHORISED_TO_VALIDATE");
    assert_eq!(decision["outcome"], "review");
    assert_eq!(decision["origin"], "PAY");
    assert!(decision["risk"]
        .as_str()
        .unwrap()
        .contains("MANUAL_VALIDATION"));
    assert!(decision["comment"]
        .as_str()
        .unwrap()
        .contains("to validate manually"));
    assert!(
        decision["span"]["request"].is_number(),
        "request span: {decision}"
    );
    let refused = lines
        .iter()
        .find(|l| l["message"] == "request refused")
        .expect("a refusal line");
    assert_eq!(refused["level"], "WARN");
    assert_eq!(refused["reason"], "signature");
    assert!(refused["peer"].as_str().unwrap().starts_with("127.0.0.1:"));

    assert!(
        !log.contains("1122334455667788"),
        "the key leaked into the log"
    );
    let decoded_signature = signature
        .replace("%2B", "+")
        .replace("%2F", "/")
        .replace("%3D", "=");
    assert!(
        !log.contains(&decoded_signature) && !log.contains(&signature),
        "a signature leaked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_keys_and_a_broken_file_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("config.toml");
    let write = |key: &str| {
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:{port}\"\ndatabase = \"{}\"\n[admin]\nlisten = \"off\"\n[[sources]]\nname = \"lyra\"\nkind = \"lyra-form\"\npath = \"/ipn/lyra\"\nmode = \"TEST\"\ntest_key = \"{key}\"\n",
                dir.path().join("h.db").display()
            ),
        )
        .unwrap()
    };
    write("1122334455667788");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_ipnsync"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port).await;
    let client = reqwest::Client::new();
    let post = |name: &'static str| {
        let client = client.clone();
        async move {
            client
                .post(format!("http://127.0.0.1:{port}/ipn/lyra"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(fixture(name))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let hup = || {
        Command::new("kill")
            .args(["-HUP", &daemon.id().to_string()])
            .status()
            .unwrap();
    };
    assert_eq!(post("lyra-form/authorised.txt").await, 200);

    write("8877665544332211");
    hup();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        post("lyra-form/refused.txt").await,
        401,
        "the new key is in force"
    );

    std::fs::write(&config, "this is not toml").unwrap();
    hup();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        post("lyra-form/refused.txt").await,
        401,
        "still running on the last good config"
    );

    write("1122334455667788");
    hup();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(post("lyra-form/refused.txt").await, 200);
    terminate(&daemon);
    assert!(daemon.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_config_sets_the_level_when_rust_log_is_unset() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        lyra_config(port, &dir.path().join("q.db"), "log_level = \"warn\"\n", ""),
    )
    .unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_ipnsync"))
        .args(["serve", "--config"])
        .arg(&config)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(port).await;
    let client = reqwest::Client::new();
    for body in [
        fixture("lyra-form/authorised.txt"),
        b"vads_amount=1&signature=x".to_vec(),
    ] {
        client
            .post(format!("http://127.0.0.1:{port}/ipn/lyra"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .unwrap();
    }
    terminate(&daemon);
    let mut log = String::new();
    daemon
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    daemon.wait().unwrap();
    assert!(
        log.contains("request refused"),
        "WARN lines are kept:\n{log}"
    );
    assert!(
        !log.contains("notification applied"),
        "INFO lines are filtered:\n{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_and_a_watchdog_fed_only_while_healthy() {
    use std::os::unix::net::UnixDatagram;
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let port = free_port();
    let db = dir.path().join("w.db");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, lyra_config(port, &db, "", "")).unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_ipnsync"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "600000")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Collects what the daemon tells systemd during `window`.
    let listen = |window: Duration| {
        let until = std::time::Instant::now() + window;
        let mut heard = Vec::new();
        let mut buf = [0u8; 256];
        while std::time::Instant::now() < until {
            if let Ok(n) = socket.recv(&mut buf) {
                heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
        heard
    };
    let first = listen(Duration::from_millis(1500));
    assert!(first.iter().any(|m| m == "READY=1"), "{first:?}");
    assert!(first.iter().any(|m| m == "WATCHDOG=1"), "{first:?}");

    // The database stops taking writes: the pings stop.
    let locker = rusqlite::Connection::open(&db).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let _ = listen(Duration::from_millis(300)); // a ping already in flight
    let stuck = listen(Duration::from_millis(1200));
    assert!(!stuck.iter().any(|m| m == "WATCHDOG=1"), "{stuck:?}");
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    let again = listen(Duration::from_millis(3000));
    assert!(again.iter().any(|m| m == "WATCHDOG=1"), "{again:?}");

    terminate(&daemon);
    assert!(daemon.wait().unwrap().success());
    let last = listen(Duration::from_millis(200));
    let _ = last;
}

/// Issue 12: SIGHUP reloads the shops, not only the sources. A wrong shop
/// key is fixed and accepted mapped to Complete (5): the next push and the
/// `retry` of the row that failed with the old key use both; a broken file
/// afterwards changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_a_shop_key_and_status_for_the_next_push_and_a_retry() {
    use support::daemon::{resign, set};
    use support::fake_opencart::{self, Version};
    let shop = fake_opencart::start(Version::OpenCart3, "right-key").await;
    for order in [100041, 100050, 100060] {
        shop.add_order_with_total(order, 1, "29.9000", "EUR", "1.00000000");
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("config.toml");
    let db = dir.path().join("s.db");
    let write = |key: &str, statuses: &str| {
        let tables = format!(
            "shop = \"oc\"\n[dispatch]\npoll_interval = \"50ms\"\nretry_schedule = [\"100ms\"]\n[[shops]]\nname = \"oc\"\nkind = \"opencart3\"\nbase_url = \"{}\"\nusername = \"{}\"\nkey = \"{key}\"\n{statuses}\n",
            shop.base_url(),
            fake_opencart::USERNAME
        );
        std::fs::write(&config, lyra_config(port, &db, "", &tables)).unwrap()
    };
    write("wrong-key", "");
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_ipnsync"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(port).await;
    let client = reqwest::Client::new();
    let post = |order: &'static str| {
        let client = client.clone();
        let body = resign(&fixture("lyra-form/authorised.txt"), |p| {
            set(p, "vads_order_id", order);
            set(p, "vads_trans_uuid", &format!("{:0>32}", order));
        });
        async move {
            client
                .post(format!("http://127.0.0.1:{port}/ipn/lyra"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let hup = || {
        Command::new("kill")
            .args(["-HUP", &daemon.id().to_string()])
            .status()
            .unwrap();
    };
    let state = |id: i64| -> Option<String> {
        let conn = rusqlite::Connection::open(&db).ok()?;
        conn.query_row("SELECT state FROM outbox WHERE id = ?1", [id], |r| r.get(0))
            .ok()
    };
    let wait = |what: &'static str, f: &dyn Fn() -> bool| {
        for _ in 0..400 {
            if f() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        panic!("timed out waiting for {what}");
    };
    assert_eq!(post("100041").await, 200);
    wait("the old key to be refused", &|| {
        state(1).as_deref() == Some("dead")
    });

    write("right-key", "statuses = { accepted = 5 }");
    hup();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(post("100050").await, 200);
    wait("the next push with the new key and status", &|| {
        shop.order_status(100050) == Some(5)
    });
    let retried = Command::new(env!("CARGO_BIN_EXE_ipnsync"))
        .args(["retry", "--all-dead", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(retried.status.success(), "{retried:?}");
    wait("the retry with the new key and status", &|| {
        shop.order_status(100041) == Some(5)
    });

    // A broken file is ignored: the running shops stay as they are.
    std::fs::write(&config, "this is not toml").unwrap();
    hup();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(post("100060").await, 200);
    wait("a push on the last good configuration", &|| {
        shop.order_status(100060) == Some(5)
    });
    terminate(&daemon);
    assert!(daemon.wait().unwrap().success());
}

/// Issue 12: every value that reaches a log line is escaped and capped. A
/// signed order id carrying CR/LF and a shop's multi-line HTML error page
/// (OpenCart answers its database-down page with HTTP 200) each stay on
/// their own single line of the human log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_values_and_shop_answers_stay_on_one_log_line() {
    use support::daemon::{resign, set};
    use support::fake_opencart::{self, Version};
    let shop = fake_opencart::start(Version::OpenCart3, "k").await;
    shop.add_order_with_total(100041, 1, "29.9000", "EUR", "1.00000000");
    shop.fail_next_with(1, 200, None);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("config.toml");
    let tables = format!(
        "shop = \"oc\"\n[dispatch]\npoll_interval = \"50ms\"\nretry_schedule = [\"100ms\"]\n[[shops]]\nname = \"oc\"\nkind = \"opencart3\"\nbase_url = \"{}\"\nusername = \"{}\"\nkey = \"k\"\n[[sources]]\nname = \"mpgs\"\nkind = \"mpgs\"\npath = \"/ipn/mpgs\"\nsecret = \"{MPGS_SECRET}\"\n",
        shop.base_url(),
        fake_opencart::USERNAME
    );
    std::fs::write(
        &config,
        lyra_config(port, &dir.path().join("o.db"), "", &tables),
    )
    .unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_ipnsync"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(port).await;
    let client = reqwest::Client::new();
    let body = resign(&fixture("lyra-form/authorised.txt"), |p| {
        set(p, "vads_order_id", "100041");
        set(p, "vads_trans_uuid", &"1".repeat(32));
    });
    let status = client
        .post(format!("http://127.0.0.1:{port}/ipn/lyra"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    // A Lyra order id cannot carry CR/LF any more (the form shape check
    // refuses it): a Mastercard Gateway webhook's order id, inside its
    // authenticated JSON, still can.
    let mpgs = String::from_utf8(fixture("mpgs/authorization-approved.json"))
        .unwrap()
        .replacen(
            "\"100000300\"",
            "\"100099\\r\\n2026-01-01T00:00:00Z ERROR forged entry\"",
            1,
        );
    let status = client
        .post(format!("http://127.0.0.1:{port}/ipn/mpgs"))
        .header("content-type", "application/json")
        .header("x-notification-secret", MPGS_SECRET)
        .header("x-notification-id", "n-1")
        .body(mpgs)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    for _ in 0..400 {
        if shop.order_status(100041) == Some(2) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        shop.order_status(100041),
        Some(2),
        "delivered after the outage page"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    terminate(&daemon);
    let mut log = String::new();
    daemon
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    daemon.wait().unwrap();
    for line in log.lines() {
        let level = line.split_whitespace().nth(1).unwrap_or_default();
        assert!(
            ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level),
            "a line that is not a log entry: {line:?}\n--- whole log ---\n{log}"
        );
    }
    let forged: Vec<&str> = log.lines().filter(|l| l.contains("forged entry")).collect();
    assert!(!forged.is_empty());
    assert!(
        forged.iter().all(|l| l.contains("100099\\r\\n")),
        "{forged:?}"
    );
    let outage = log
        .lines()
        .find(|l| l.contains("Fatal error"))
        .expect("the shop's answer is logged");
    assert!(
        outage.contains("shop update failed, will retry"),
        "{outage}"
    );
    assert!(outage.contains("<br />\\n<b>Fatal error"), "{outage}");
}

/// Issue 12: after an operator's `retry`, the log's attempt number is the
/// one `ipnsync outbox` shows (attempts are never reset), and a refused
/// connection says so instead of "error sending request".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attempt_numbers_after_a_retry_match_the_outbox() {
    use support::fake_opencart::{self, Version};
    let shop = fake_opencart::start(Version::OpenCart3, "k").await;
    shop.add_order_with_total(100041, 1, "29.9000", "EUR", "1.00000000");
    shop.fail_next(3);
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let db = dir.path().join("a.db");
    let config = dir.path().join("config.toml");
    let tables = format!(
        "shop = \"oc\"\n[dispatch]\npoll_interval = \"50ms\"\nretry_schedule = [\"100ms\", \"100ms\"]\njitter = 0.0\n[[shops]]\nname = \"oc\"\nkind = \"opencart3\"\nbase_url = \"{}\"\nusername = \"{}\"\nkey = \"k\"\n[[shops]]\nname = \"closed\"\nkind = \"webhook\"\nbase_url = \"http://127.0.0.1:{}/hook\"\nkey = \"whsec_AAEC\"\n[[sources]]\nname = \"lyra2\"\nkind = \"lyra-form\"\npath = \"/ipn/closed\"\nmode = \"TEST\"\ntest_key = \"1122334455667788\"\nshop = \"closed\"\n",
        shop.base_url(),
        fake_opencart::USERNAME,
        free_port()
    );
    std::fs::write(&config, lyra_config(port, &db, "", &tables)).unwrap();
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_ipnsync"))
        .args(["--log-format", "json", "serve", "--config"])
        .arg(&config)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_listening(port).await;
    let client = reqwest::Client::new();
    for path in ["/ipn/lyra", "/ipn/closed"] {
        let status = client
            .post(format!("http://127.0.0.1:{port}{path}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(fixture("lyra-form/authorised.txt"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 200);
    }
    let state = || -> Option<(String, i64)> {
        let conn = rusqlite::Connection::open(&db).ok()?;
        conn.query_row(
            "SELECT state, attempts FROM outbox WHERE shop = 'oc'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .ok()
    };
    for _ in 0..400 {
        if state().is_some_and(|(s, _)| s == "dead") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(state(), Some(("dead".to_owned(), 3)));
    let retried = Command::new(env!("CARGO_BIN_EXE_ipnsync"))
        .args(["retry", "--all-dead", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    assert!(retried.status.success(), "{retried:?}");
    for _ in 0..400 {
        if state().is_some_and(|(s, _)| s == "delivered") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(state(), Some(("delivered".to_owned(), 4)));
    terminate(&daemon);
    let mut log = String::new();
    daemon
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    daemon.wait().unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let updated = lines
        .iter()
        .find(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("shop updated"))
        })
        .expect("a delivery line");
    assert_eq!(updated["attempt"], 4, "{updated}");
    let refused = lines
        .iter()
        .find(|l| l["shop"] == "closed")
        .expect("a line about the closed shop");
    let message = refused["message"].as_str().unwrap();
    assert!(message.contains("connection refused"), "{message}");
    assert!(!message.contains("error sending request"), "{message}");
}
