//! Load generator: pre-signs N unique, realistic Lyra IPNs, fires them at
//! concurrency C over keep-alive connections, and reports throughput,
//! latency percentiles, every non-2xx, the machine's idle share during the
//! run (and the share the hypervisor took) and the generator's own CPU per
//! request (it shares the cores with the server); then checks the database
//! holds exactly the acknowledged notifications. The same generator measures a
//! minimal hyper server (read the body, answer 200) as the baseline, and
//! nginx (`return 200`) as a second one when it is installed.
//!
//! ```text
//! cargo build --release && cargo run --release --example loadgen -- [-n N] [-c C] [--rate R]
//! ```
//!
//! The daemon under test runs as a child process (`target/release/ipnsync`)
//! with a temporary database, so its memory can be read from /proc; the
//! baseline runs as a child process of this example (`--baseline-server`).
//!
//! `--db PATH` runs the daemon on an existing database instead (e.g. one
//! filled by `examples/prefill` to 1M notifications; copy it first, the run
//! adds to it), and `--bin PATH` runs another build of the daemon (an older
//! one, for a before/after in the same run). `--no-baseline` skips the
//! baseline. `--config-extra TOML` appends to the daemon's configuration
//! (e.g. `$'[retention]\nbodies_after = "1d"\ninterval = "1s"'` to measure
//! with retention running; `prefill … AGE_DAYS` makes old rows for it).
//!
//! `--postgres URL` runs the daemon on PostgreSQL instead (issue 16): URL
//! names a server and a user allowed to create databases (like
//! `IPNSYNC_TEST_PG`); the run creates a fresh database there, gives the
//! daemon `database = "postgres://user@host:port/db"` and
//! `database_password`, checks it the same way at the end, and drops it.
//! `--instances K` (PostgreSQL only) starts K daemons on that one database,
//! each on its own port; request i goes to daemon i mod K (every
//! connection of the generator holds one keep-alive connection to each).

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use ipnsync::providers::form::{self, Form};
use ipnsync::providers::lyra::{form_signature, SignAlgo};

#[path = "common/scratch_pg.rs"]
mod scratch_pg;
use scratch_pg::ScratchPg;

struct Args {
    n: usize,
    c: usize,
    rate: Option<f64>,
    /// Fire at an already-running server instead (no baseline, no checks).
    target: Option<SocketAddr>,
    db: Option<std::path::PathBuf>,
    bin: Option<std::path::PathBuf>,
    baseline: bool,
    config_extra: String,
    /// A PostgreSQL server URL (a user that may create databases).
    postgres: Option<String>,
    /// Daemons on the one database (PostgreSQL only).
    instances: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        n: 20_000,
        c: 64,
        rate: None,
        target: None,
        db: None,
        bin: None,
        baseline: true,
        config_extra: String::new(),
        postgres: None,
        instances: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "-n" => a.n = value()?.parse().map_err(|_| "bad -n")?,
            "-c" => a.c = value()?.parse().map_err(|_| "bad -c")?,
            "--rate" => a.rate = Some(value()?.parse().map_err(|_| "bad --rate")?),
            "--target" => a.target = Some(value()?.parse().map_err(|_| "bad --target")?),
            "--db" => a.db = Some(value()?.into()),
            "--bin" => a.bin = Some(value()?.into()),
            "--no-baseline" => a.baseline = false,
            "--config-extra" => a.config_extra = value()?,
            "--postgres" => a.postgres = Some(value()?),
            "--instances" => a.instances = value()?.parse().map_err(|_| "bad --instances")?,
            "--baseline-server" => {
                baseline_server(value()?.parse().map_err(|_| "bad address")?);
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.instances == 0 {
        return Err("--instances must be at least 1".into());
    }
    if a.instances > 1 && a.postgres.is_none() {
        return Err("--instances > 1 needs --postgres (SQLite is one daemon's)".into());
    }
    if a.postgres.is_some() && a.db.is_some() {
        return Err("--db is a SQLite file: not with --postgres".into());
    }
    Ok(a)
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        eprintln!("{e}");
        std::process::exit(2)
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(args));
}

async fn run(args: Args) {
    let bodies = presign(args.n);
    println!(
        "pre-signed {} unique IPNs ({} bytes each on average)",
        bodies.len(),
        bodies.iter().map(Vec::len).sum::<usize>() / bodies.len()
    );

    if let Some(addr) = args.target {
        fire(&[addr], "/ipn/lyra", &bodies, &args, &[])
            .await
            .print(&format!("target {addr}"));
        return;
    }

    // Baselines first: same generator, same bodies, servers that do
    // nothing: the hyper one always, nginx when it is installed.
    let base = if args.baseline {
        Some(baseline(&bodies, &args).await)
    } else {
        None
    };
    let nginx = if args.baseline {
        nginx_baseline(&bodies, &args).await
    } else {
        None
    };

    // ipnsync with a fresh (or the given, prefilled) database, or a fresh
    // PostgreSQL database (dropped when `pg` is).
    let dir = tempfile::tempdir().unwrap();
    let pg = args
        .postgres
        .as_deref()
        .map(|url| ScratchPg::create(url, "loadgen"));
    let db = args
        .db
        .clone()
        .unwrap_or_else(|| dir.path().join("load.db"));
    let store = match &pg {
        Some(pg) => Store::Postgres(pg),
        None => Store::Sqlite(&db),
    };
    let events_before = store.count_events();
    let mut db_bytes_before = store.bytes();
    let database_lines = match &pg {
        Some(pg) => pg.config_lines(),
        None => format!("database = \"{}\"\n", db.display()),
    };
    let bin = args.bin.clone().unwrap_or_else(|| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/ipnsync")
    });
    let mut daemons = Vec::new();
    let mut addrs = Vec::new();
    // One after the other: the first applies the migrations.
    for k in 0..args.instances {
        let port = free_port();
        let config = dir.path().join(if k == 0 {
            "config.toml".to_owned()
        } else {
            format!("config{k}.toml")
        });
        std::fs::write(
            &config,
            format!(
                r#"listen = "127.0.0.1:{port}"
{database_lines}[admin]
listen = "off"
[[sources]]
name = "lyra"
kind = "lyra-form"
path = "/ipn/lyra"
mode = "TEST"
test_key = "1122334455667788"
{}
"#,
                args.config_extra
            ),
        )
        .unwrap();
        let daemon = Command::new(&bin)
            .args(["serve", "--config"])
            .arg(&config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("{}: {e} (run `cargo build --release` first)", bin.display())
            });
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        wait_listening(addr).await;
        daemons.push(daemon);
        addrs.push(addr);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    if pg.is_some() {
        // The schema the daemon created is not this run's.
        db_bytes_before = store.bytes();
    }
    let commits_before = store.commits();
    let pids: Vec<u32> = daemons.iter().map(Child::id).collect();
    let idle_rss: Vec<u64> = pids.iter().map(|p| rss_kib(*p)).collect();
    let cpu_before: Vec<CpuTime> = pids.iter().map(|p| cpu_time(*p)).collect();
    let result = fire(&addrs, "/ipn/lyra", &bodies, &args, &pids).await;
    let cpu_after: Vec<CpuTime> = pids.iter().map(|p| cpu_time(*p)).collect();
    result.print(&match &pg {
        None => "ipnsync (verify + commit, synchronous=FULL)".to_owned(),
        Some(_) => format!(
            "ipnsync on PostgreSQL, {} daemon{} on one database (verify + commit, synchronous_commit=on)",
            args.instances,
            if args.instances == 1 { "" } else { "s" }
        ),
    });
    println!(
        "  ipnsync resident memory{}: idle {} MiB, peak under load {:.1} MiB",
        if pids.len() > 1 { " per daemon" } else { "" },
        idle_rss
            .iter()
            .map(|r| format!("{:.1}", *r as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" / "),
        result.peak_rss_kib as f64 / 1024.0
    );
    let (all_ns, writer_ns) = cpu_before
        .iter()
        .zip(&cpu_after)
        .fold((0, 0), |(a, w), (b, e)| {
            (
                a + e.all_ns.saturating_sub(b.all_ns),
                w + e.writer_ns.saturating_sub(b.writer_ns),
            )
        });
    println!(
        "  ipnsync CPU per request: {:.1} µs, of which the writer thread {:.1} µs",
        all_ns as f64 / 1000.0 / bodies.len() as f64,
        writer_ns as f64 / 1000.0 / bodies.len() as f64,
    );
    if let Some(base) = &base {
        println!(
            "  ratio ipnsync / baseline throughput: {:.2}",
            result.throughput() / base.throughput()
        );
    }
    if let Some(nginx) = &nginx {
        println!(
            "  ratio ipnsync / nginx throughput: {:.2}",
            result.throughput() / nginx.throughput()
        );
    }
    for daemon in &mut daemons {
        sigterm(daemon.id());
    }
    for daemon in &mut daemons {
        let _ = daemon.wait();
    }

    // Every acknowledged notification is in the database, and nothing else.
    let (events, stored) = store.stored_since(events_before);
    let added = store.bytes().saturating_sub(db_bytes_before);
    println!(
        "  database: {} events before the run, {} after, {:.0} bytes per notification overall, {:.0} per notification of this run",
        events_before,
        events_before + events,
        store.bytes() as f64 / (events_before + events).max(1) as f64,
        added as f64 / events.max(1) as f64
    );
    if let Some(commits) = store.commits() {
        // The daemons have ended: their sessions' statistics are in.
        let commits = commits - commits_before.unwrap_or(0);
        println!(
            "  PostgreSQL: {commits} transactions committed in the database during the run ({:.1} notifications per commit)",
            events as f64 / commits.max(1) as f64
        );
    }
    let missing = result
        .acknowledged
        .iter()
        .filter(|i| !stored.contains(&order_ref(**i)))
        .count();
    println!(
        "  database check: {events} events stored, {} acknowledged, {missing} acknowledged but missing → {}",
        result.acknowledged.len(),
        if missing == 0 && events == result.acknowledged.len() && stored.len() == events {
            "OK"
        } else {
            "MISMATCH"
        }
    );
}

/// The database under test, for the counts and the check.
enum Store<'a> {
    Sqlite(&'a std::path::Path),
    Postgres(&'a ScratchPg),
}

impl Store<'_> {
    fn count_events(&self) -> usize {
        match self {
            Store::Sqlite(db) => count_events(db),
            // Ids are not a count on PostgreSQL (a retried batch leaves gaps
            // in the sequence); without tables yet, 0.
            Store::Postgres(pg) => pg.with_client(|c| {
                c.query_one("SELECT COUNT(*) FROM events", &[])
                    .map(|r| r.get::<_, i64>(0) as usize)
                    .unwrap_or(0)
            }),
        }
    }

    fn bytes(&self) -> u64 {
        match self {
            Store::Sqlite(db) => db_bytes(db),
            Store::Postgres(pg) => pg.with_client(|c| {
                c.query_one("SELECT pg_database_size(current_database())", &[])
                    .map(|r| r.get::<_, i64>(0) as u64)
                    .unwrap_or(0)
            }),
        }
    }

    /// Transactions committed in the database so far (PostgreSQL's
    /// statistics: every session's, the readers' too).
    fn commits(&self) -> Option<i64> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(pg) => Some(pg.with_client(|c| {
                c.query_one(
                    "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
                    &[],
                )
                .map(|r| r.get::<_, i64>(0))
                .unwrap_or(0)
            })),
        }
    }

    /// This run's events (after the `before` of an earlier run) and their
    /// distinct order references.
    fn stored_since(&self, before: usize) -> (usize, std::collections::HashSet<String>) {
        match self {
            Store::Sqlite(db) => {
                let conn = rusqlite::Connection::open(db).unwrap();
                conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                    .unwrap();
                let events = count_events(db) - before;
                // Only this run's orders (the prefill's are 1, 2, …; these
                // 5 000 000 + i).
                let mut stmt = conn
                    .prepare("SELECT order_ref FROM events WHERE id > ?1")
                    .unwrap();
                let stored = stmt
                    .query_map([before as i64], |r| r.get(0))
                    .unwrap()
                    .map(Result::unwrap)
                    .collect();
                (events, stored)
            }
            // A fresh database: every event is this run's.
            Store::Postgres(pg) => pg.with_client(|c| {
                let rows = c.query("SELECT order_ref FROM events", &[]).unwrap();
                let events = rows.len();
                (events, rows.iter().map(|r| r.get::<_, String>(0)).collect())
            }),
        }
    }
}

async fn baseline(bodies: &[Vec<u8>], args: &Args) -> Outcome {
    let port = free_port();
    let baseline = Command::new(std::env::current_exe().unwrap())
        .args(["--baseline-server", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    measure_baseline(
        port,
        baseline,
        "baseline (hyper, read body, 200)",
        bodies,
        args,
    )
    .await
}

/// Fires the bodies at a baseline server just started on `port`, prints
/// the outcome, and stops it with SIGTERM (nginx's fast stop: SIGKILL
/// would leave its workers behind, SIGQUIT waits for keep-alive
/// connections).
async fn measure_baseline(
    port: u16,
    mut server: Child,
    name: &str,
    bodies: &[Vec<u8>],
    args: &Args,
) -> Outcome {
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(addr).await;
    let outcome = fire(&[addr], "/ipn/lyra", bodies, args, &[server.id()]).await;
    outcome.print(name);
    sigterm(server.id());
    let _ = server.wait();
    outcome
}

/// nginx answering `return 200` to the same requests (the issue's reference
/// point), when an `nginx` binary is installed: two workers (one per core
/// here), no logs, keep-alive as long as the run. `None` without nginx.
async fn nginx_baseline(bodies: &[Vec<u8>], args: &Args) -> Option<Outcome> {
    let exe = ["/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())?;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let d = dir.path().display();
    // Run as root (CI, benchmarks), nginx would hand its workers to
    // `nobody`, who cannot read the temp directory: keep them as the caller.
    let user = if is_root() { "user root root;\n" } else { "" };
    std::fs::write(
        dir.path().join("nginx.conf"),
        format!(
            "{user}daemon off;\nworker_processes 2;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n  access_log off;\n  keepalive_requests 1000000;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
             server {{ listen 127.0.0.1:{port}; location / {{ return 200 \"OK\"; }} }}\n}}\n"
        ),
    )
    .unwrap();
    let nginx = Command::new(&exe)
        .args(["-p"])
        .arg(dir.path())
        .args(["-c"])
        .arg(dir.path().join("nginx.conf"))
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    Some(measure_baseline(port, nginx, "baseline (nginx, return 200)", bodies, args).await)
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(1).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Events stored (their highest id: ids only grow), 0 without a database.
fn count_events(db: &std::path::Path) -> usize {
    if !db.exists() {
        return 0;
    }
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT COALESCE(MAX(id), 0) FROM events", [], |r| {
        r.get::<_, i64>(0)
    })
    .map(|n| n as usize)
    .unwrap_or(0)
}

fn db_bytes(db: &std::path::Path) -> u64 {
    std::fs::metadata(db).map(|m| m.len()).unwrap_or(0)
}

/// Differs from one run to the next (the second of the start), so a run
/// on a database an earlier run added to measures new notifications, not
/// duplicates.
fn run_tag() -> u64 {
    static TAG: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TAG.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() % 1_000_000)
    })
}

fn order_ref(i: usize) -> String {
    format!("5{:06}{i:07}", run_tag())
}

fn presign(n: usize) -> Vec<Vec<u8>> {
    let template = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fixtures/lyra-form/authorised.txt"
    ))
    .unwrap();
    let parsed = form::parse(&template).unwrap();
    (0..n)
        .map(|i| {
            let mut pairs: Vec<(String, String)> = parsed
                .iter()
                .filter(|(k, _)| *k != "signature")
                .map(|(k, v)| {
                    let v = match k {
                        "vads_order_id" => order_ref(i),
                        // Tagged: never the uuid of a prefilled notification
                        // (`examples/prefill` numbers them 1, 2, …), or the
                        // run would measure duplicates.
                        "vads_trans_uuid" => format!(
                            "{:032x}",
                            (0x10u128 << 120) | (run_tag() as u128) << 32 | i as u128
                        ),
                        "vads_trans_id" => format!("{:06}", i % 900_000),
                        "vads_amount" | "vads_effective_amount" => format!("{}", 100 + i % 50_000),
                        _ => v.to_owned(),
                    };
                    (k.to_owned(), v)
                })
                .collect();
            let sig = form_signature(
                &Form::from_pairs(pairs.clone()),
                "1122334455667788",
                SignAlgo::HmacSha256,
            );
            pairs.push(("signature".into(), sig));
            Form::from_pairs(pairs).encode().into_bytes()
        })
        .collect()
}

struct Outcome {
    latencies_us: Vec<u64>,
    non_2xx: std::collections::BTreeMap<String, usize>,
    acknowledged: Vec<usize>,
    elapsed: Duration,
    peak_rss_kib: u64,
    /// The machine's idle share during the run, the part of it spent
    /// waiting for I/O, and the host's steal (`/proc/stat`): a server that
    /// leaves cores idle at saturation is waiting on something, not short
    /// of CPU.
    idle: MachineIdle,
    /// This generator's own CPU per request (it shares the cores).
    generator_us: f64,
}

impl Outcome {
    fn throughput(&self) -> f64 {
        self.latencies_us.len() as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self, name: &str) {
        let mut l = self.latencies_us.clone();
        l.sort_unstable();
        let pct = |p: f64| {
            l.get(((l.len() as f64 * p) as usize).min(l.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0) as f64
                / 1000.0
        };
        println!("{name}");
        println!(
            "  {} requests in {:.2} s: {:.0} req/s; latency p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
            l.len(),
            self.elapsed.as_secs_f64(),
            self.throughput(),
            pct(0.50),
            pct(0.99),
            pct(0.999),
            l.last().copied().unwrap_or(0) as f64 / 1000.0
        );
        println!(
            "  machine {:.0} % idle during the run ({:.0} % waiting for I/O), {:.1} % taken by the host; the generator's CPU per request {:.1} µs",
            self.idle.idle * 100.0,
            self.idle.iowait * 100.0,
            self.idle.steal * 100.0,
            self.generator_us
        );
        if self.non_2xx.is_empty() {
            println!("  every answer was 2xx");
        } else {
            println!("  non-2xx answers: {:?}", self.non_2xx);
        }
    }
}

/// Sends every body once. Closed loop at concurrency C, or, with `--rate`,
/// open loop: request i is due at `i / rate` and its latency counts from
/// then (no coordinated omission). Request i goes to `addrs[i % len]`.
/// The peak memory is the highest any one of `pids` reached.
async fn fire(
    addrs: &[SocketAddr],
    path: &str,
    bodies: &[Vec<u8>],
    args: &Args,
    pids: &[u32],
) -> Outcome {
    let bodies: Arc<Vec<Bytes>> = Arc::new(bodies.iter().map(|b| Bytes::from(b.clone())).collect());
    let (tx, rx) = tokio::sync::mpsc::channel::<(usize, Option<Instant>)>(args.c * 4);
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let started = Instant::now();
    let rate = args.rate;
    let n = bodies.len();
    match rate {
        // Open loop: the pacer is an OS thread, not a tokio timer. tokio's
        // timer wheel ticks in whole milliseconds, so a request due at t
        // left up to a millisecond late, and that lateness (counted as
        // latency from the due time, as open loop must) put a millisecond
        // of the generator's into every percentile. `thread::sleep` wakes
        // within tens of microseconds. Lateness still counts, so a stall
        // cannot hide itself.
        Some(r) => {
            std::thread::spawn(move || {
                for i in 0..n {
                    let due = started + Duration::from_secs_f64(i as f64 / r);
                    if let Some(wait) = due.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    if tx.blocking_send((i, Some(due))).is_err() {
                        break;
                    }
                }
            });
        }
        // Closed loop: latency counts from when a worker takes the request.
        // The feeder stays a task on the runtime, as in every earlier run
        // (a thread waking once per freed slot slows the generator, which
        // would flatter the ratio to the baselines).
        None => {
            tokio::spawn(async move {
                for i in 0..n {
                    if tx.send((i, None)).await.is_err() {
                        break;
                    }
                }
            });
        }
    }
    let machine_before = machine_ticks();
    let generator_before = cpu_time(std::process::id()).all_ns;
    let stop_sampling = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let memory = {
        let stop = stop_sampling.clone();
        let pids = pids.to_vec();
        tokio::spawn(async move {
            let mut peak = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for pid in &pids {
                    peak = peak.max(rss_kib(*pid));
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        })
    };
    let workers: Vec<_> = (0..args.c)
        .map(|_| {
            tokio::spawn(worker(
                addrs.to_vec(),
                path.to_owned(),
                rx.clone(),
                bodies.clone(),
            ))
        })
        .collect();
    let mut out = Outcome {
        latencies_us: Vec::with_capacity(n),
        non_2xx: Default::default(),
        acknowledged: Vec::with_capacity(n),
        elapsed: Duration::ZERO,
        peak_rss_kib: 0,
        idle: MachineIdle::default(),
        generator_us: 0.0,
    };
    for w in workers {
        let part = w.await.unwrap();
        out.latencies_us.extend(part.latencies_us);
        out.acknowledged.extend(part.acknowledged);
        for (k, v) in part.non_2xx {
            *out.non_2xx.entry(k).or_default() += v;
        }
    }
    out.elapsed = started.elapsed();
    out.idle = machine_ticks().idle_since(&machine_before);
    out.generator_us = cpu_time(std::process::id())
        .all_ns
        .saturating_sub(generator_before) as f64
        / 1000.0
        / n.max(1) as f64;
    stop_sampling.store(true, std::sync::atomic::Ordering::Relaxed);
    out.peak_rss_kib = memory.await.unwrap();
    out
}

type Queue = Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<(usize, Option<Instant>)>>>;

/// One keep-alive connection per server, sending requests one after
/// another (request i to server i mod the number of servers).
async fn worker(
    addrs: Vec<SocketAddr>,
    path: String,
    rx: Queue,
    bodies: Arc<Vec<Bytes>>,
) -> Outcome {
    let mut out = Outcome {
        latencies_us: Vec::new(),
        non_2xx: Default::default(),
        acknowledged: Vec::new(),
        elapsed: Duration::ZERO,
        peak_rss_kib: 0,
        idle: MachineIdle::default(),
        generator_us: 0.0,
    };
    let mut senders = Vec::with_capacity(addrs.len());
    for addr in &addrs {
        senders.push(connect(*addr).await);
    }
    loop {
        let next = rx.lock().await.recv().await;
        let Some((i, due)) = next else { break };
        let addr = addrs[i % addrs.len()];
        let sender = &mut senders[i % addrs.len()];
        let due = due.unwrap_or_else(Instant::now);
        let req = Request::post(path.as_str())
            .header("host", "loadgen")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(bodies[i].clone()))
            .unwrap();
        if sender.ready().await.is_err() {
            *sender = connect(addr).await;
        }
        match sender.send_request(req).await {
            Ok(resp) => {
                let status = resp.status();
                let _ = resp.into_body().collect().await;
                out.latencies_us.push(due.elapsed().as_micros() as u64);
                if status.is_success() {
                    out.acknowledged.push(i);
                } else {
                    *out.non_2xx.entry(status.as_u16().to_string()).or_default() += 1;
                }
            }
            Err(e) => {
                out.latencies_us.push(due.elapsed().as_micros() as u64);
                *out.non_2xx.entry(format!("error: {e}")).or_default() += 1;
                *sender = connect(addr).await;
            }
        }
    }
    out
}

async fn connect(addr: SocketAddr) -> http1::SendRequest<Full<Bytes>> {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.set_nodelay(true).unwrap();
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    sender
}

/// The baseline: read the whole body, answer 200 `OK`. Same runtime shape
/// as the daemon (multi-threaded tokio, hyper http1, keep-alive).
fn baseline_server(addr: SocketAddr) {
    use hyper::server::conn::http1 as server;
    use hyper::service::service_fn;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = service_fn(|req: Request<hyper::body::Incoming>| async move {
                    let _ = req.into_body().collect().await;
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"OK\n"),
                    )))
                });
                let _ = server::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn wait_listening(addr: SocketAddr) {
    for _ in 0..200 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("nothing listening on {addr}");
}

/// Resident set size of a process in KiB (Linux).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Shares of the machine's time, between two `/proc/stat` readings.
#[derive(Default)]
struct MachineIdle {
    idle: f64,
    iowait: f64,
    /// Time the hypervisor ran something else on this machine's virtual
    /// CPUs ("steal"). On the benchmark's virtual machine it comes in
    /// slices every 100 ms when the disk is flushed thousands of times a
    /// second (docs/PERFORMANCE.md, fourteenth pass): a run with steal
    /// had fewer cores than it seems, and its tail shows the slices.
    steal: f64,
}

/// The machine's `cpu` line of `/proc/stat`: all ticks, idle, iowait,
/// steal.
struct MachineTicks {
    all: u64,
    idle: u64,
    iowait: u64,
    steal: u64,
}

fn machine_ticks() -> MachineTicks {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: Vec<u64> = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    MachineTicks {
        // user nice system idle iowait irq softirq steal (guest time is
        // already inside user).
        all: ticks.iter().take(8).sum(),
        idle: ticks.get(3).copied().unwrap_or(0),
        iowait: ticks.get(4).copied().unwrap_or(0),
        steal: ticks.get(7).copied().unwrap_or(0),
    }
}

impl MachineTicks {
    fn idle_since(&self, before: &MachineTicks) -> MachineIdle {
        let all = self.all.saturating_sub(before.all).max(1) as f64;
        let iowait = self.iowait.saturating_sub(before.iowait) as f64;
        MachineIdle {
            idle: (self.idle.saturating_sub(before.idle) as f64 + iowait) / all,
            iowait: iowait / all,
            steal: self.steal.saturating_sub(before.steal) as f64 / all,
        }
    }
}

/// On-CPU time of a process's threads, from the scheduler's own
/// accounting (`/proc/PID/task/TID/schedstat`, nanoseconds): all of them,
/// and the writer thread's alone.
struct CpuTime {
    all_ns: u64,
    writer_ns: u64,
}

fn cpu_time(pid: u32) -> CpuTime {
    let mut t = CpuTime {
        all_ns: 0,
        writer_ns: 0,
    };
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return t;
    };
    for task in tasks.flatten() {
        let dir = task.path();
        let ns: u64 = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
            .unwrap_or(0);
        t.all_ns += ns;
        if std::fs::read_to_string(dir.join("comm")).is_ok_and(|c| c.trim() == "ipnsync-writer") {
            t.writer_ns += ns;
        }
    }
    t
}

/// Asks the daemon to stop the way systemd does.
fn sigterm(pid: u32) {
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
}
