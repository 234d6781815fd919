//! The operator command line, end to end: the real daemon on port 0 builds
//! the database, the compiled `ipnsync` binary reads and changes it while
//! the daemon runs.

mod support;

use std::time::Duration;

use serde_json::Value;
use support::daemon::{config, fixture, Daemon};

const DEMO: &str = ipnsync::config::DEFAULT_CONFIG;
const DOC_KEY: &str = "1122334455667788";

/// The demo source, but its decisions go to a webhook shop on a closed
/// port: every push fails at once, and after one quick retry the update is
/// dead.
const DEAD_SHOP: &str = r#"
[dispatch]
retry_schedule = ["100ms"]
jitter = 0.0
poll_interval = "100ms"

[[sources]]
name = "lyra-shop"
kind = "lyra-form"
path = "/ipn/lyra"
site_id = "12345678"
mode = "TEST"
algorithm = "HMAC-SHA-256"
test_key = "1122334455667788"
shop = "main"

[[shops]]
name = "main"
kind = "webhook"
base_url = "http://127.0.0.1:9/"
key = "k"
"#;

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }

    #[track_caller]
    fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs the binary off the async runtime, so the in-process daemon keeps
/// serving meanwhile.
async fn ipnsync<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let output = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ipnsync"));
        cmd.args(&args).env("RUST_LOG", "warn");
        if let Some(p) = support::backend::pg_password() {
            cmd.env("PGPASSWORD", p);
        }
        cmd.output().expect("run ipnsync")
    })
    .await
    .unwrap();
    Run {
        code: output.status.code().expect("exited"),
        stdout: String::from_utf8(output.stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    }
}

/// `ipnsync ARGS… --db <the daemon's database>`.
async fn on_db(d: &Daemon, args: &[&str]) -> Run {
    let mut all: Vec<std::ffi::OsString> = args.iter().map(Into::into).collect();
    all.push("--db".into());
    all.push(d.db.to_string().into());
    ipnsync(all).await
}

fn fixture_path(name: &str) -> String {
    format!("{}/fixtures/{name}", env!("CARGO_MANIFEST_DIR"))
}

async fn post(d: &Daemon, name: &str) {
    let (status, body) = d.post_form("/ipn/lyra", fixture(name)).await;
    assert_eq!(status, 200, "{name}: {body}");
}

/// Polls `outbox --dead --json` until `n` rows are dead.
async fn dead_rows(d: &Daemon, n: usize) -> Vec<Value> {
    for _ in 0..200 {
        let rows = on_db(d, &["outbox", "--dead", "--json"]).await.ok().json();
        let rows = rows.as_array().unwrap().clone();
        if rows.len() >= n {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{n} dead outbox row(s) never appeared");
}

fn kinds(timeline: &Value) -> Vec<&str> {
    timeline
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn orders_and_show_read_the_live_database() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(config(DEMO, dir.path())).await;
    for name in [
        "to-validate",
        "to-validate",
        "validated-merch-bo",
        "authorised",
        "refused",
    ] {
        post(&d, &format!("lyra-form/{name}.txt")).await;
    }

    let table = on_db(&d, &["orders"]).await.ok().stdout;
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("SHOP  ORDER   OUTCOME"), "{table}");
    assert_eq!(lines.len(), 4, "{table}");
    let row = lines.iter().find(|l| l.contains("100042")).unwrap();
    assert!(row.starts_with("-     100042  accepted"), "{table}");
    assert!(row.contains("5d6e7f8091a2b3c4d5e6f708192a3b4c"));
    // Columns line up: every row has OUTCOME where the header has it.
    let col = lines[0].find("OUTCOME").unwrap();
    assert!(lines[1..]
        .iter()
        .all(|l| l[col - 2..col] == *"  " && &l[col..col + 1] != " "));

    let orders = on_db(&d, &["orders", "--json"]).await.ok().json();
    let orders = orders.as_array().unwrap();
    assert_eq!(orders.len(), 3);
    let o = orders.iter().find(|o| o["order"] == "100042").unwrap();
    assert_eq!(o["outcome"], "accepted");
    assert_eq!(o["shop"], "");
    assert_eq!(
        (o["pending"].as_u64(), o["dead"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(o["updated_at"].as_i64().unwrap() > 1_700_000_000_000);

    let failed = on_db(&d, &["orders", "--outcome", "failed", "--json"])
        .await
        .ok()
        .json();
    let failed = failed.as_array().unwrap();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["order"], "100044");
    let limited = on_db(&d, &["orders", "--limit", "1", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(limited.as_array().unwrap().len(), 1);
    assert_eq!(on_db(&d, &["orders", "--outcome", "paid"]).await.code, 2);

    let show = on_db(&d, &["show", "100042", "--json"]).await.ok().json();
    assert_eq!(show["outcome"], "accepted");
    assert_eq!(
        kinds(&show["timeline"]),
        ["delivery", "decision", "delivery", "delivery", "decision"]
    );
    let timeline = show["timeline"].as_array().unwrap();
    assert_eq!(timeline[2]["duplicate"], true);
    assert_eq!(timeline[1]["status"], "AUTHORISED_TO_VALIDATE");
    assert_eq!(timeline[1]["verdict"], "applied");
    assert_eq!(timeline[4]["origin"], "MERCH_BO");
    assert_eq!(timeline[4]["outcome"], "accepted");
    let times: Vec<i64> = timeline.iter().map(|e| e["at"].as_i64().unwrap()).collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "time order: {times:?}"
    );

    let text = on_db(&d, &["show", "100042"]).await.ok().stdout;
    assert!(
        text.starts_with("order 100042, shop -\n  outcome      accepted\n"),
        "{text}"
    );
    assert!(text.contains("duplicate"), "{text}");
    // The second event's id: 2 on SQLite; PostgreSQL's sequence also
    // gave one to the duplicate, whose insert found the event stored.
    let second = &timeline[4]["event_id"];
    assert!(
        text.contains(&format!("decision  event {second} AUTHORISED (MERCH_BO)")),
        "{text}"
    );
    assert!(!text.contains(DOC_KEY));
    // A comment's continuation lines start in the DETAIL column too.
    let detail = text
        .lines()
        .find_map(|l| l.find("DETAIL"))
        .expect("a header");
    let continued: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Transaction 4829"))
        .collect();
    assert!(!continued.is_empty(), "{text}");
    for line in continued {
        assert_eq!(
            line.find(|c: char| c != ' '),
            Some(detail),
            "not indented: {line:?}\n{text}"
        );
    }

    let unknown = on_db(&d, &["show", "999999"]).await;
    assert_eq!(unknown.code, 1, "{}", unknown.stderr);
    assert!(unknown.stderr.contains("unknown"), "{}", unknown.stderr);
    assert_eq!(
        on_db(&d, &["show", "100042", "--shop", "other"]).await.code,
        1
    );

    // Log-only sources queue nothing for shops.
    assert_eq!(
        on_db(&d, &["outbox", "--json"]).await.ok().json(),
        Value::Array(vec![])
    );
    assert_eq!(on_db(&d, &["outbox"]).await.ok().stdout, "no outbox rows\n");
    d.stop().await;
}

#[tokio::test]
async fn dead_updates_are_listed_shown_and_retried_while_the_daemon_runs() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(config(DEAD_SHOP, dir.path())).await;
    post(&d, "lyra-form/to-validate.txt").await;

    let dead = dead_rows(&d, 1).await;
    let row = &dead[0];
    assert_eq!(
        (row["shop"].as_str(), row["order"].as_str()),
        (Some("main"), Some("100042"))
    );
    assert_eq!(row["outcome"], "review");
    // However the shop fails (refused connection, or a client that refuses
    // for good), the update ends up dead with its error kept.
    let attempts = row["attempts"].as_i64().unwrap();
    assert!(attempts >= 1, "{row}");
    assert!(!row["last_error"].as_str().unwrap().is_empty(), "{row}");
    let id = row["id"].as_i64().unwrap().to_string();

    let table = on_db(&d, &["outbox", "--dead"]).await.ok().stdout;
    assert!(
        table.starts_with(
            "ID  SHOP  ORDER   OUTCOME  STATE  ATTEMPTS  NEXT ATTEMPT (UTC)  LAST ERROR"
        ),
        "{table}"
    );
    assert!(
        table.contains(&format!(
            "{id}   main  100042  review   dead   {attempts}         -"
        )),
        "{table}"
    );
    assert_eq!(
        on_db(&d, &["outbox", "--pending", "--json"])
            .await
            .ok()
            .json(),
        Value::Array(vec![])
    );
    assert_eq!(on_db(&d, &["outbox", "--dead", "--pending"]).await.code, 2);

    let orders = on_db(&d, &["orders", "--shop", "main", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(orders[0]["dead"], 1);
    let show = on_db(&d, &["show", "100042", "--json"]).await.ok().json();
    assert_eq!(show["shop"], "main");
    let timeline = kinds(&show["timeline"]);
    assert_eq!(timeline[..3], ["delivery", "decision", "outbox"]);
    assert_eq!(
        timeline.len(),
        3 + attempts as usize,
        "one entry per push attempt"
    );
    let results: Vec<&str> = show["timeline"].as_array().unwrap()[3..]
        .iter()
        .map(|e| e["result"].as_str().unwrap())
        .collect();
    assert_eq!(results.last(), Some(&"dead"));
    assert!(results[..results.len() - 1].iter().all(|r| *r == "retry"));
    let text = on_db(&d, &["show", "100042"]).await.ok().stdout;
    assert!(
        text.contains("\n  outbox       0 pending, 1 dead\n"),
        "{text}"
    );
    assert!(text.contains("push      update #1 dead: "), "{text}");

    // Back in the queue: the running dispatcher tries again and gives up again.
    let retried = on_db(&d, &["retry", &id]).await.ok();
    assert!(
        retried
            .stdout
            .starts_with("1 outbox row(s) back to pending"),
        "{}",
        retried.stdout
    );
    let mut after = attempts;
    for _ in 0..200 {
        let row = &on_db(&d, &["outbox", "--json"]).await.ok().json()[0];
        after = row["attempts"].as_i64().unwrap();
        if after > attempts && row["state"] == "dead" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(after, 2 * attempts, "the daemon picked the row up again");

    let nothing = on_db(&d, &["retry", "9999"]).await;
    assert_eq!(nothing.code, 1, "{}", nothing.stderr);
    assert!(nothing
        .stderr
        .contains("none of the given outbox rows is dead"));
    assert_eq!(
        on_db(&d, &["retry", "--all-dead"])
            .await
            .ok()
            .stdout
            .chars()
            .next(),
        Some('1')
    );
    assert_eq!(on_db(&d, &["retry"]).await.code, 2, "ids or --all-dead");
    let db = d.db.clone();
    d.stop().await;

    // With nothing dead, --all-dead has nothing to do.
    let conn = support::backend::connect(&db);
    conn.execute("UPDATE outbox SET state = 'delivered'", [])
        .unwrap();
    drop(conn);
    let none = ipnsync(["retry", "--all-dead", "--db", &db.to_string()]).await;
    assert_eq!(none.code, 1, "{}", none.stderr);
}

#[tokio::test]
async fn replay_dry_run_changes_nothing_and_replay_requeues() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(config(DEAD_SHOP, dir.path())).await;
    post(&d, "lyra-form/to-validate.txt").await; // event 1: review
    post(&d, "lyra-form/validated-merch-bo.txt").await; // event 2: accepted
                                                        // Stand in for an older version of the rules that left the order in
                                                        // review: the situation `replay` exists for.
    d.reader()
        .execute("UPDATE orders SET outcome = 'review'", [])
        .unwrap();

    let dry = on_db(&d, &["replay", "2", "--dry-run", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["current_outcome"], "review");
    assert_eq!(dry["before"]["verdict"], "applied");
    assert_eq!(dry["after"]["assessed"], "accepted");
    assert_eq!(dry["order_change"]["to"], "accepted");
    assert_eq!(dry["shop_update"], true);
    assert_eq!(dry["outbox_id"], Value::Null);
    let text = on_db(&d, &["replay", "2", "--dry-run"]).await.ok().stdout;
    assert!(text.contains("verdict   applied"), "{text}");
    assert!(
        text.contains("order would move review → accepted"),
        "{text}"
    );
    assert!(text.ends_with("dry run: nothing was changed\n"), "{text}");
    assert_eq!(d.count("SELECT COUNT(*) FROM outbox"), 2);
    assert_eq!(
        d.count("SELECT COUNT(*) FROM events WHERE replayed_at IS NOT NULL"),
        0
    );

    let real = on_db(&d, &["replay", "2", "--json"]).await.ok().json();
    let outbox_id = real["outbox_id"].as_i64().expect("update queued");
    assert_eq!(
        d.count(&format!(
            "SELECT COUNT(*) FROM outbox WHERE id = {outbox_id} AND previous_outcome = 'review'
             AND outcome = 'accepted' AND shop = 'main' AND order_ref = '100042' AND event_id = 2"
        )),
        1
    );
    assert_eq!(
        d.count("SELECT COUNT(*) FROM events WHERE id = 2 AND replayed_at IS NOT NULL"),
        1
    );
    let orders = on_db(&d, &["orders", "--json"]).await.ok().json();
    assert_eq!(orders[0]["outcome"], "accepted");

    // The order is accepted now: the same event changes nothing any more.
    let again = on_db(&d, &["replay", "2"]).await.ok().stdout;
    assert!(
        again
            .lines()
            .any(|l| l.starts_with("verdict") && l.trim_end().ends_with("ignored")),
        "{again}"
    );
    assert!(again.contains("order unchanged"), "{again}");
    assert_eq!(d.count("SELECT COUNT(*) FROM outbox"), 3);
    let show = on_db(&d, &["show", "100042", "--json"]).await.ok().json();
    let decision = show["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "decision" && e["event_id"] == 2)
        .unwrap()
        .clone();
    assert!(decision["replayed_at"].is_i64());
    assert_eq!(decision["reason"], "order is already accepted");

    assert_eq!(on_db(&d, &["replay", "99"]).await.code, 1);
    assert_eq!(on_db(&d, &["replay", "99", "--dry-run"]).await.code, 1);
    d.stop().await;
}

#[tokio::test]
async fn sign_reproduces_every_fixture_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, format!("{DOC_KEY}\n")).unwrap();
    for name in [
        "abandoned",
        "authorised",
        "clearsale-fraud",
        "refused",
        "to-validate",
        "validated-merch-bo",
    ] {
        let path = fixture_path(&format!("lyra-form/{name}.txt"));
        let expected = String::from_utf8(fixture(&format!("lyra-form/{name}.txt"))).unwrap();
        // From the embedded demo source, from --key and from --key-file.
        assert_eq!(
            ipnsync(["sign", &path]).await.ok().stdout,
            expected,
            "{name}"
        );
        assert_eq!(
            ipnsync(["sign", "--key", DOC_KEY, &path]).await.ok().stdout,
            expected
        );
        let run = ipnsync([
            "sign".as_ref(),
            "--key-file".as_ref(),
            key_file.as_os_str(),
            path.as_ref(),
        ])
        .await;
        assert_eq!(run.ok().stdout, expected);
    }
}

#[tokio::test]
async fn sign_edits_fields_and_uses_the_chosen_algorithm() {
    use ipnsync::providers::form::{self, Form};
    use ipnsync::providers::lyra::{form_signature, SignAlgo};

    let path = fixture_path("lyra-form/authorised.txt");
    let run = ipnsync([
        "sign",
        "--set",
        "vads_trans_status=CAPTURED",
        "--set",
        "vads_new=1",
        &path,
    ])
    .await
    .ok();
    let signed = form::parse(run.stdout.as_bytes()).unwrap();
    assert_eq!(signed.get("vads_trans_status"), Some("CAPTURED"));
    assert_eq!(signed.get("vads_new"), Some("1"));
    let names: Vec<&str> = signed.iter().map(|(n, _)| n).collect();
    assert_eq!(
        names.last(),
        Some(&"signature"),
        "signature is the last field"
    );
    let unsigned = Form::from_pairs(signed.iter().filter(|(n, _)| *n != "signature"));
    assert_eq!(
        signed.get("signature"),
        Some(form_signature(&unsigned, DOC_KEY, SignAlgo::HmacSha256).as_str())
    );

    let sha1 = ipnsync([
        "sign",
        "--algo",
        "SHA-1",
        "--set",
        "vads_order_id=7",
        "--set",
        "vads_amount=100",
    ])
    .await
    .ok();
    let signed = form::parse(sha1.stdout.as_bytes()).unwrap();
    let unsigned = Form::from_pairs([("vads_order_id", "7"), ("vads_amount", "100")]);
    assert_eq!(
        signed.get("signature"),
        Some(form_signature(&unsigned, DOC_KEY, SignAlgo::Sha1).as_str())
    );

    assert_eq!(
        ipnsync(["sign", "--set", "order=1"]).await.code,
        2,
        "only vads_* fields"
    );
    assert_eq!(ipnsync(["sign", "--algo", "MD5", &path]).await.code, 2);
    assert_eq!(ipnsync(["sign", "--source", "nope", &path]).await.code, 2);
    assert_eq!(ipnsync(["sign", "/no/such/file"]).await.code, 2);
}

#[tokio::test]
async fn send_posts_to_the_running_daemon() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(config(DEMO, dir.path())).await;
    let url = d.url("/ipn/lyra");
    let path = fixture_path("lyra-form/to-validate.txt");

    let ok = ipnsync(["send", &url, &path]).await.ok();
    assert!(ok.stdout.starts_with("HTTP 200 OK\nOK-"), "{}", ok.stdout);
    assert_eq!(d.count("SELECT COUNT(*) FROM events"), 1);

    // A new event made up on the command line.
    let captured = ipnsync(["send", &url, "--set", "vads_trans_status=CAPTURED", &path])
        .await
        .ok();
    assert!(captured.stdout.contains("OK-"), "{}", captured.stdout);
    assert_eq!(d.count("SELECT COUNT(*) FROM events"), 2);

    let refused = ipnsync(["send", &url, "--key", "0000000000000000", &path]).await;
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(refused.stdout.starts_with("HTTP 401"), "{}", refused.stdout);
    assert!(refused.stdout.contains("KO-"));
    assert!(
        !refused.stdout.contains("0000000000000000")
            && !refused.stderr.contains("0000000000000000")
    );
    assert_eq!(d.count("SELECT COUNT(*) FROM events"), 2);
    d.stop().await;

    let unreachable = ipnsync(["send", "http://127.0.0.1:9/ipn/lyra", &path]).await;
    assert_eq!(unreachable.code, 1, "{}", unreachable.stderr);
}

#[tokio::test]
async fn prune_clears_old_bodies_only() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(config(DEMO, dir.path())).await;
    post(&d, "lyra-form/authorised.txt").await;
    post(&d, "lyra-form/refused.txt").await;
    tokio::time::sleep(Duration::from_millis(20)).await;

    let none = on_db(&d, &["prune", "--older-than", "90d"]).await.ok();
    assert_eq!(none.stdout, "0 delivery body(ies) cleared\n");
    let dry = on_db(&d, &["prune", "--older-than", "10ms", "--dry-run"])
        .await
        .ok();
    assert_eq!(
        dry.stdout,
        "2 delivery body(ies) would be cleared (dry run)\n"
    );
    assert_eq!(
        d.count("SELECT COUNT(*) FROM deliveries WHERE body IS NULL"),
        0
    );

    let real = on_db(&d, &["prune", "--older-than", "10ms"]).await.ok();
    assert_eq!(real.stdout, "2 delivery body(ies) cleared\n");
    assert_eq!(
        d.count("SELECT COUNT(*) FROM deliveries WHERE body IS NULL"),
        2
    );
    let show = on_db(&d, &["show", "100041", "--json"]).await.ok().json();
    assert_eq!(show["timeline"][0]["body_pruned"], true);

    // The daemon still takes notifications afterwards.
    post(&d, "lyra-form/to-validate.txt").await;
    assert_eq!(
        d.count("SELECT COUNT(*) FROM deliveries WHERE body IS NOT NULL"),
        1
    );
    assert_eq!(
        on_db(&d, &["prune", "--older-than", "ninety"]).await.code,
        2
    );
    d.stop().await;
}

#[tokio::test]
async fn exit_codes_tell_missing_database_from_bad_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    for cmd in [
        &["orders"][..],
        &["show", "1"],
        &["outbox"],
        &["retry", "--all-dead"],
        &["replay", "1"],
        &["prune", "--older-than", "1d"],
    ] {
        let mut args: Vec<std::ffi::OsString> = cmd.iter().map(Into::into).collect();
        args.extend(["--db".into(), missing.clone().into_os_string()]);
        let run = ipnsync(args).await;
        assert_eq!(run.code, 3, "{cmd:?}: {}", run.stderr);
        assert!(run.stderr.starts_with("error: database"), "{}", run.stderr);
    }
    assert!(!missing.exists(), "no command creates the database");

    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "[[sources]]\nname = \"x\"\nkind = \"carrier-pigeon\"\n",
    )
    .unwrap();
    let run = ipnsync(["orders".as_ref(), "--config".as_ref(), bad.as_os_str()]).await;
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("bad.toml"), "{}", run.stderr);
    assert_eq!(
        ipnsync(["check-config".as_ref(), bad.as_os_str()])
            .await
            .code,
        2
    );

    // The database comes from the configuration when --db is absent.
    let cfg = dir.path().join("ok.toml");
    std::fs::write(
        &cfg,
        format!("database = {:?}\n{DEMO}", missing.display().to_string())
            .replace("database = \"ipnsync.db\"\n", ""),
    )
    .unwrap();
    let run = ipnsync(["orders".as_ref(), "-c".as_ref(), cfg.as_os_str()]).await;
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("missing.db"), "{}", run.stderr);

    assert_eq!(ipnsync(["orders", "--frobnicate"]).await.code, 2);
    assert_eq!(ipnsync(["serve", "--db", "x.db"]).await.code, 2);
    let check = ipnsync(["check-config"]).await.ok();
    assert!(check.stdout.ends_with("configuration OK\n"));
    let help = ipnsync(["retry", "--help"]).await.ok();
    assert!(help.stdout.contains("3  database error"), "{}", help.stdout);
}
