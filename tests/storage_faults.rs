//! Storage faults: the database file deleted, moved or replaced while the
//! daemon runs, or not writable at start. Nothing may be acknowledged that
//! a restart would not find, and the daemon must not look healthy.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::daemon::{config, fixture, Daemon};
use support::process::{free_port, lyra_config, terminate, wait_listening};

const DEMO: &str = ipnsync::config::DEFAULT_CONFIG;

fn refused(i: usize) -> Vec<u8> {
    support::daemon::resign(&fixture("lyra-form/refused.txt"), |p| {
        support::daemon::set(p, "vads_order_id", &format!("2000{i}"));
        support::daemon::set(p, "vads_trans_uuid", &format!("{i:032x}"));
    })
}

/// The file is deleted: every later notification gets 503, `/readyz` says
/// why; before the fix they were answered 200 into the unlinked file and
/// gone after a restart.
#[tokio::test]
async fn a_deleted_database_file_stops_acknowledgements() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(config(DEMO, dir.path())).await;
    assert_eq!(d.post_form("/ipn/lyra", refused(0)).await.0, 200);

    std::fs::remove_file(d.db_path()).unwrap();
    for i in 1..=5 {
        let (status, body) = d.post_form("/ipn/lyra", refused(i)).await;
        assert_eq!(
            status, 503,
            "notification {i} must not be acknowledged: {body}"
        );
    }
    let (status, text) = d.admin_get("/readyz").await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("no longer at its path"), "{text}");
    d.stop().await;
}

/// A file moved away and back: refused while away, accepted again once the
/// very same file is back.
#[tokio::test]
async fn a_moved_database_file_is_refused_until_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(config(DEMO, dir.path())).await;
    assert_eq!(d.post_form("/ipn/lyra", refused(0)).await.0, 200);
    let aside = dir.path().join("aside.db");
    std::fs::rename(d.db_path(), &aside).unwrap();
    assert_eq!(d.post_form("/ipn/lyra", refused(1)).await.0, 503);
    std::fs::rename(&aside, d.db_path()).unwrap();
    assert_eq!(d.post_form("/ipn/lyra", refused(2)).await.0, 200);
    assert_eq!(d.admin_get("/readyz").await.0, 200);
    d.stop().await;
    let conn = rusqlite::Connection::open(dir.path().join("ipnsync.db")).unwrap();
    let stored: i64 = conn
        .query_row("SELECT COUNT(*) FROM events", [], |r| r.get(0))
        .unwrap();
    assert_eq!(stored, 2, "exactly the acknowledged ones");
}

/// Another file takes the path (a restore copied over it with `mv`): the
/// writes that would go to the old file are refused.
#[tokio::test]
async fn a_replaced_database_file_stops_acknowledgements() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(config(DEMO, dir.path())).await;
    assert_eq!(d.post_form("/ipn/lyra", refused(0)).await.0, 200);

    let copy = dir.path().join("restored.db");
    std::fs::copy(d.db_path(), &copy).unwrap();
    std::fs::rename(&copy, d.db_path()).unwrap();
    let (status, body) = d.post_form("/ipn/lyra", refused(1)).await;
    assert_eq!(status, 503, "{body}");
    let (status, text) = d.admin_get("/readyz").await;
    assert_eq!(status, 503, "{text}");
    assert!(text.contains("was replaced by another file"), "{text}");
    d.stop().await;
}

/// Runs `cmd` as an unprivileged user when the tests run as root (CI does):
/// file modes do not stop root, and the service never runs as root.
fn unprivileged(cmd: &mut Command) -> &mut Command {
    use std::os::unix::fs::MetadataExt;
    if std::fs::metadata("/proc/self")
        .map(|m| m.uid())
        .unwrap_or(1)
        == 0
    {
        cmd.uid(65534).gid(65534);
    }
    cmd
}

/// Reads datagrams until `stop` matches one (within 30 s), failing on
/// `forbidden`.
fn listen_until(
    socket: &UnixDatagram,
    stop: impl Fn(&str) -> bool,
    forbidden: &str,
) -> Vec<String> {
    let mut heard = Vec::new();
    let mut buf = [0u8; 1024];
    // A generous bound, so that a daemon that keeps pinging instead fails
    // the test rather than hanging it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the expected notification never came; heard {heard:?}"
        );
        let n = socket
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no notification from the daemon ({e}); heard {heard:?}"));
        let m = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert_ne!(m, forbidden, "after {heard:?}");
        let done = stop(&m);
        heard.push(m);
        if done {
            return heard;
        }
    }
}

fn notify_socket(dir: &std::path::Path) -> (std::path::PathBuf, UnixDatagram) {
    let path = dir.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o777)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    (path, socket)
}

/// The database file is not writable by the service's user (root-owned,
/// 0644, as the README's old install steps left files): the daemon starts,
/// answers 503, and never tells systemd it is ready; it says why instead.
/// (The directory stays writable, as the StateDirectory is, so SQLite can
/// open the file read-only.)
#[tokio::test]
async fn a_read_only_database_never_sends_ready() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let db = dir.path().join("ro.db");
    drop(ipnsync::store::open_writer(&db).unwrap()); // migrated, then closed
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o444)).unwrap();
    let port = free_port();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, lyra_config(port, &db, "", "")).unwrap();
    std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (sock_path, socket) = notify_socket(dir.path());

    let mut daemon = unprivileged(Command::new(env!("CARGO_BIN_EXE_ipnsync")).args([
        "serve",
        "--config",
        cfg.to_str().unwrap(),
    ]))
    .env("NOTIFY_SOCKET", &sock_path)
    .env("RUST_LOG", "info")
    .stdout(Stdio::null())
    .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
    .spawn()
    .unwrap();
    let heard = listen_until(
        &socket,
        |m| m.starts_with("STATUS=not ready: database not writable"),
        "READY=1",
    );
    assert!(heard.last().unwrap().contains("readonly"), "{heard:?}");
    wait_listening(port).await;
    let status = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{port}/ipn/lyra"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(fixture("lyra-form/authorised.txt"))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 503);
    // Still not ready a while later: the next tries fail the same way.
    listen_until(&socket, |m| m.starts_with("STATUS=not ready"), "READY=1");

    terminate(&daemon);
    daemon.wait().unwrap();
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(
        log.contains("ERROR") && log.contains("database not writable at start"),
        "{log}"
    );
}

/// The file is deleted under the running binary: the watchdog stops being
/// fed (each missed ping tells systemd why) and an ERROR says what happened.
#[tokio::test]
async fn a_deleted_database_file_starves_the_watchdog() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("ipnsync.db");
    let port = free_port();
    let cfg = dir.path().join("config.toml");
    std::fs::write(&cfg, lyra_config(port, &db, "", "")).unwrap();
    let (sock_path, socket) = notify_socket(dir.path());
    let mut daemon = Command::new(env!("CARGO_BIN_EXE_ipnsync"))
        .args(["serve", "--config", cfg.to_str().unwrap()])
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "600000")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    listen_until(&socket, |m| m == "READY=1", "");
    listen_until(&socket, |m| m == "WATCHDOG=1", "");

    std::fs::remove_file(&db).unwrap();
    // Pings may still be on their way; from the first missed one on, every
    // tick reports the fault instead of pinging.
    let heard = listen_until(&socket, |m| m.starts_with("STATUS=not healthy"), "");
    assert!(
        heard.last().unwrap().contains("no longer at its path"),
        "{heard:?}"
    );
    for _ in 0..3 {
        listen_until(
            &socket,
            |m| m.starts_with("STATUS=not healthy"),
            "WATCHDOG=1",
        );
    }

    terminate(&daemon);
    daemon.wait().unwrap();
    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(log.contains("ERROR"), "{log}");
    assert!(log.contains("is no longer at its path"), "{log}");
}
