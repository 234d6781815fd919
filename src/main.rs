//! The `ipnsync` command line: argument parsing and exit codes. Everything
//! it does lives in the library (`ipnsync::cli`, `ipnsync::run_with`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ipnsync::cli::{self, actions, inspect, reconcile, review, sign, CliError};
use ipnsync::config::Config;
use ipnsync::ops::logging::{self, LogFormat};

/// Shown under every command's `--help`: scripts rely on these.
const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  not found, nothing to do, or the remote refused
  2  usage or configuration error
  3  database error";

#[derive(Parser)]
#[command(
    name = "ipnsync",
    version,
    about = "Payment notifications in, shop order updates out",
    after_help = EXIT_CODES
)]
struct Cli {
    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormatArg::Human)]
    log_format: LogFormatArg,
    /// Configuration file (TOML); the embedded demo configuration when
    /// omitted. The operator commands take the database path from it.
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Database file for the operator commands, instead of the
    /// configuration's `database` (the configuration is then not read).
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon (on the embedded demo configuration without --config).
    Serve,
    /// Validate a configuration file and print its effective settings
    /// (never a secret).
    CheckConfig {
        /// Configuration file (TOML); --config, else the embedded default,
        /// when omitted.
        file: Option<PathBuf>,
    },
    /// List orders: outcome, last transaction, pending and dead updates.
    #[command(after_help = EXIT_CODES)]
    Orders(inspect::OrdersArgs),
    /// Show one order's timeline: deliveries, decisions, shop updates and
    /// every push attempt. Exits 1 if the order is unknown.
    #[command(after_help = EXIT_CODES)]
    Show(inspect::ShowArgs),
    /// List outbox rows (shop updates) and their delivery state.
    #[command(after_help = EXIT_CODES)]
    Outbox(inspect::OutboxArgs),
    /// Put dead shop updates back in the queue. Exits 1 if none was dead.
    #[command(after_help = EXIT_CODES)]
    Retry(actions::RetryArgs),
    /// Decide a stored notification again with the current rules, against
    /// the order's current outcome (its state before the event is not
    /// stored). Use --dry-run first.
    #[command(after_help = EXIT_CODES)]
    Replay(actions::ReplayArgs),
    /// Clear the raw bodies of old deliveries (retention).
    #[command(after_help = EXIT_CODES)]
    Prune(actions::PruneArgs),
    /// Payments held for review: list them, validate or deny them at the
    /// gateway and in the shop.
    #[command(after_help = EXIT_CODES)]
    Review(review::ReviewArgs),
    /// Ask the gateways about orders still pending or in review (or one
    /// order) and record what moves them, with the shop update.
    #[command(after_help = EXIT_CODES)]
    Reconcile(reconcile::ReconcileArgs),
    /// Sign a Lyra form notification and print it.
    #[command(after_help = EXIT_CODES)]
    Sign(sign::SignArgs),
    /// Sign a Lyra form notification, POST it, print the answer. Exits 0
    /// only for a 2xx answer.
    #[command(after_help = EXIT_CODES)]
    Send(sign::SendArgs),
    /// Read a console operator's password from the first line of stdin and
    /// print its Argon2id hash, for `[console] operators` `password_hash`.
    /// E.g. `read -rs PW && printf '%s\n' "$PW" | ipnsync hash-password`.
    HashPassword,
}

fn load(path: Option<&PathBuf>) -> Result<Config, String> {
    match path {
        Some(p) => Config::load(p).map_err(|e| format!("{}: {e}", p.display())),
        None => Ok(Config::embedded_default()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log = logging::init(match cli.log_format {
        LogFormatArg::Human => LogFormat::Human,
        LogFormatArg::Json => LogFormat::Json,
    });
    let (config, db) = (cli.config.as_deref(), cli.db.as_deref());
    let database = || cli::database_path(config, db);
    let result = match &cli.command {
        Command::Serve => {
            return without_db(db).map_or_else(fail, |()| serve(cli.config.clone(), log))
        }
        Command::CheckConfig { file } => {
            return without_db(db).map_or_else(fail, |()| {
                check_config(file.as_ref().or(cli.config.as_ref()))
            })
        }
        Command::Orders(args) => database().and_then(|p| inspect::orders(&p, args)),
        Command::Show(args) => database().and_then(|p| inspect::show(&p, args)),
        Command::Outbox(args) => database().and_then(|p| inspect::outbox(&p, args)),
        Command::Retry(args) => database().and_then(|p| actions::retry(&p, args)),
        Command::Replay(args) => database().and_then(|p| actions::replay(&p, args)),
        Command::Prune(args) => database().and_then(|p| actions::prune(&p, args)),
        Command::Review(args) => review::run(config, db, args),
        Command::Reconcile(args) => reconcile::run(config, db, args),
        Command::Sign(args) => without_db(db).and_then(|()| sign::sign(config, args)),
        Command::Send(args) => without_db(db).and_then(|()| sign::send(config, args)),
        Command::HashPassword => return without_db(db).map_or_else(fail, |()| hash_password()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // `ipnsync orders | head`: the reader has what it wanted.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn fail(e: CliError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(e.exit_code())
}

/// `--db` is for the commands that read or change the database; anywhere
/// else it would be silently ignored, so refuse it.
fn without_db(db: Option<&Path>) -> Result<(), CliError> {
    match db {
        Some(_) => Err(CliError::Usage(
            "--db applies to orders, show, outbox, retry, replay, prune and review; the daemon takes `database` from its configuration"
                .to_owned(),
        )),
        None => Ok(()),
    }
}

/// `ipnsync hash-password`: the first line of stdin (without its line
/// ending) → an Argon2id PHC string on stdout. The password is never
/// printed or logged.
fn hash_password() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().read_line(&mut line) {
        eprintln!("error: cannot read the password from stdin: {e}");
        return ExitCode::from(2);
    }
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        eprintln!("error: the password on stdin is empty");
        return ExitCode::from(2);
    }
    if password.chars().count() < 12 {
        eprintln!("warning: a password under 12 characters is easy to guess");
    }
    match ipnsync::console::auth::hash_password(password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: hashing failed: {e}");
            ExitCode::from(1)
        }
    }
}

fn check_config(file: Option<&PathBuf>) -> ExitCode {
    match load(file) {
        Ok(config) => {
            print!("{}", config.summary());
            println!("configuration OK");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn serve(config: Option<PathBuf>, log: logging::LogControl) -> ExitCode {
    let path_for_reload = config.clone();
    let config = match load(config.as_ref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    log.apply_config_level(config.log_level.as_deref());
    if config.database.sqlite_path() == Some(std::path::Path::new("ipnsync.db"))
        && config
            .sources
            .iter()
            .any(|s| s.key_origin == ipnsync::config::SecretOrigin::Inline)
    {
        tracing::info!(
            "running the embedded demo configuration (see README.md to configure a real shop)"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
        let options = ipnsync::RunOptions {
            reload: Some(reload_on_sighup(path_for_reload, &config, log)),
            ..Default::default()
        };
        ipnsync::run_with(config, listener, shutdown_signal(), options)
            .await
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutdown requested");
}

/// On SIGHUP, re-reads the configuration file and hands it to the daemon.
/// A file that does not validate is logged and ignored: the daemon keeps
/// running on the configuration it has.
fn reload_on_sighup(
    path: Option<PathBuf>,
    current: &Config,
    log: logging::LogControl,
) -> tokio::sync::watch::Receiver<std::sync::Arc<Config>> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = tokio::sync::watch::channel(std::sync::Arc::new(current.clone()));
    let (listen, database, admin) = (
        current.listen,
        current.database.clone(),
        current.admin_listen,
    );
    tokio::spawn(async move {
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            let Some(path) = &path else {
                tracing::info!("SIGHUP: running the embedded configuration, nothing to reload");
                continue;
            };
            match Config::load(path) {
                Ok(next) => {
                    if next.listen != listen
                        || next.database != database
                        || next.admin_listen != admin
                    {
                        tracing::warn!("SIGHUP: listen, admin and database changes take effect at the next restart");
                    }
                    for w in &next.warnings {
                        tracing::warn!("config: {w}");
                    }
                    tracing::info!(
                        sources = next.sources.len(),
                        shops = next.shops.len(),
                        "SIGHUP: configuration reloaded"
                    );
                    log.apply_config_level(next.log_level.as_deref());
                    let _ = tx.send(std::sync::Arc::new(next));
                }
                // A TOML error spans several lines (the line, a caret):
                // keep it on the one log line.
                Err(e) => tracing::error!(
                    "SIGHUP: {}: {}; keeping the running configuration",
                    ipnsync::ops::logging::one_line(&path.display().to_string()),
                    ipnsync::ops::logging::one_line(&e.to_string())
                ),
            }
        }
    });
    rx
}
