//! Which database engine a test binary runs on.
//!
//! Every test file runs on SQLite. A few are also built a second time as
//! `<name>_pg` (`[[test]]` entries in Cargo.toml with the same source):
//! that binary's daemons, CLI runs and checks use a fresh PostgreSQL
//! database per test, on the server `IPNSYNC_TEST_PG` names (a URL with a
//! user allowed to create databases; `.ci/run` starts a throw-away one and
//! always sets it). Without it, a `_pg` binary says loudly that it skipped
//! and ends with success.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use ipnsync::store::{Connection, Database};

/// Whether this test binary is a PostgreSQL one.
pub fn postgres() -> bool {
    env!("CARGO_CRATE_NAME").ends_with("_pg")
}

/// A fresh database for one test: a file in `dir`, or a new PostgreSQL
/// database.
/// The same `dir` gives the same database (a test that restarts its daemon
/// on the same directory finds its data).
pub fn fresh_database(dir: &Path) -> Database {
    if !postgres() {
        return Database::Sqlite(dir.join("ipnsync.db"));
    }
    static BY_DIR: Mutex<BTreeMap<std::path::PathBuf, Database>> = Mutex::new(BTreeMap::new());
    let mut known = BY_DIR.lock().unwrap_or_else(|e| e.into_inner());
    known
        .entry(dir.to_path_buf())
        .or_insert_with(fresh_postgres)
        .clone()
}

/// SQL that makes the database refuse the daemon's writes until the same
/// connection runs `COMMIT` (another process holding the write lock).
pub fn lock_writes_sql() -> &'static str {
    if postgres() {
        "BEGIN; LOCK TABLE events, deliveries, orders, outbox, health IN ACCESS EXCLUSIVE MODE"
    } else {
        "BEGIN EXCLUSIVE"
    }
}

/// A new, empty PostgreSQL database on the `IPNSYNC_TEST_PG` server.
pub fn fresh_postgres() -> Database {
    let Ok(base) = std::env::var("IPNSYNC_TEST_PG") else {
        skip_binary();
    };
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "ipnsync_test_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        rand_suffix()
    );
    let config: postgres::Config = base.parse().expect("IPNSYNC_TEST_PG is a postgres:// URL");
    let admin = config.clone();
    let create = name.clone();
    // The blocking client must not run on a thread driving tokio tasks.
    std::thread::spawn(move || {
        let mut client = admin
            .connect(postgres::NoTls)
            .expect("connect to IPNSYNC_TEST_PG");
        client
            .batch_execute(&format!("CREATE DATABASE {create}"))
            .expect("create a test database");
    })
    .join()
    .unwrap();
    let user = config.get_user().unwrap_or("postgres");
    let host = match config.get_hosts().first() {
        Some(postgres::config::Host::Tcp(h)) => h.clone(),
        _ => "127.0.0.1".into(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let password = config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    // Operator commands run with `--db postgres://…` read the password
    // where PostgreSQL's own tools do.
    if let Some(p) = &password {
        std::env::set_var("PGPASSWORD", p);
    }
    let toml = format!(
        "database = \"postgres://{user}@{host}:{port}/{name}\"\n{}database_pool = 4\n",
        password
            .map(|p| format!("database_password = \"{p}\"\n"))
            .unwrap_or_default()
    );
    let parsed = ipnsync::config::Config::parse(&toml, &Default::default())
        .expect("a postgres database config");
    parsed.database
}

fn rand_suffix() -> u32 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// Ends a `_pg` test binary without PostgreSQL: loudly, and with success
/// (a machine with only Rust runs `cargo test`; CI sets the variable).
fn skip_binary() -> ! {
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n*** SKIPPED: {} runs on PostgreSQL and IPNSYNC_TEST_PG is not set (.ci/run starts a server and sets it) ***\n",
        env!("CARGO_CRATE_NAME")
    );
    std::process::exit(0);
}

/// A connection for a test's own checks (read and write).
pub fn connect(db: &Database) -> Connection {
    match db {
        Database::Sqlite(path) => Connection::open(path).unwrap(),
        Database::Postgres(_) => ipnsync::store::open_session(db).unwrap(),
    }
}

/// The config line naming `db`, for tests that write a config file.
pub fn config_line(db: &Database) -> String {
    match db {
        Database::Sqlite(path) => format!("database = {:?}\n", path.display().to_string()),
        Database::Postgres(pg) => {
            let mut s = format!("database = {:?}\ndatabase_pool = {}\n", pg.url, pg.pool);
            if let Some((secret, _)) = &pg.password {
                s.push_str(&format!("database_password = {:?}\n", secret.expose()));
            }
            s
        }
    }
}

/// The password of the `IPNSYNC_TEST_PG` server, for a CLI run given
/// `--db postgres://…` (it reads `PGPASSWORD`, as PostgreSQL's tools do).
pub fn pg_password() -> Option<String> {
    let base = std::env::var("IPNSYNC_TEST_PG").ok()?;
    let config: postgres::Config = base.parse().ok()?;
    config
        .get_password()
        .map(|p| String::from_utf8_lossy(p).into_owned())
}

/// A trigger that makes updates of `column` on `table` fail with
/// `message` when `when` holds (a disk failure at a chosen moment).
pub fn failing_trigger_sql(table: &str, column: &str, when: &str, message: &str) -> String {
    if postgres() {
        format!(
            "CREATE FUNCTION fail_{table}() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION '{message}'; END $$;
             CREATE TRIGGER fail_{table} BEFORE UPDATE OF {column} ON {table}
             FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION fail_{table}();"
        )
    } else {
        format!(
            "CREATE TRIGGER fail_{table} BEFORE UPDATE OF {column} ON {table}
             WHEN {when}
             BEGIN SELECT RAISE(ABORT, '{message}'); END;"
        )
    }
}
