//! The `ipnsync` command line. Everything it does lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use ipnsync::config::Config;
use ipnsync::ops::logging::{self, LogFormat};

#[derive(Parser)]
#[command(
    name = "ipnsync",
    version,
    about = "Payment notifications in, shop order updates out"
)]
struct Cli {
    /// Log output format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormatArg::Human)]
    log_format: LogFormatArg,
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
    Serve {
        /// Configuration file (TOML).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file and print its effective settings
    /// (never a secret).
    CheckConfig {
        /// Configuration file (TOML); the embedded default when omitted.
        file: Option<PathBuf>,
    },
}

fn load(path: Option<&PathBuf>) -> Result<Config, String> {
    match path {
        Some(p) => Config::load(p).map_err(|e| format!("{}: {e}", p.display())),
        None => Ok(Config::embedded_default()),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(match cli.log_format {
        LogFormatArg::Human => LogFormat::Human,
        LogFormatArg::Json => LogFormat::Json,
    });
    match cli.command {
        Command::CheckConfig { file } => match load(file.as_ref()) {
            Ok(config) => {
                print!("{}", config.summary());
                println!("configuration OK");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Serve { config } => {
            let path_for_reload = config.clone();
            let config = match load(config.as_ref()) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            if config.database == std::path::Path::new("ipnsync.db")
                && config
                    .sources
                    .iter()
                    .any(|s| s.key_origin == ipnsync::config::SecretOrigin::Inline)
            {
                tracing::info!("running the embedded demo configuration (see README.md to configure a real shop)");
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
                    reload: Some(reload_on_sighup(path_for_reload, &config)),
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
                    let _ = tx.send(std::sync::Arc::new(next));
                }
                Err(e) => tracing::error!(
                    "SIGHUP: {}: {e}; keeping the running configuration",
                    path.display()
                ),
            }
        }
    });
    rx
}
