//! Log output: human-readable by default, without timestamps under journald
//! (which adds its own), JSON for log shippers. The level comes from
//! `RUST_LOG` when set, else from the configuration's `log_level` (which a
//! SIGHUP reload can change), else `info`.

use std::io::IsTerminal;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{reload, EnvFilter, Layer, Registry};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

/// Lets the configuration set the level after logging has started.
pub struct LogControl {
    handle: Option<reload::Handle<EnvFilter, Registry>>,
    /// `RUST_LOG` wins over the configuration.
    from_env: bool,
}

impl LogControl {
    /// Applies the configuration's level (a `RUST_LOG`-style directive),
    /// unless `RUST_LOG` is set.
    pub fn apply_config_level(&self, level: Option<&str>) {
        let (Some(handle), Some(level), false) = (&self.handle, level, self.from_env) else {
            return;
        };
        match EnvFilter::try_new(level) {
            Ok(filter) => {
                let _ = handle.reload(filter);
            }
            Err(e) => tracing::warn!("log_level {level:?} ignored: {e}"),
        }
    }
}

pub fn init(format: LogFormat) -> LogControl {
    let from_env = std::env::var_os("RUST_LOG").is_some();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    // Logs go to stderr so that CLI output (`--json`) on stdout stays clean.
    let ansi = std::io::stderr().is_terminal() && !under_journald;
    let base = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let output = match (format, under_journald) {
        (LogFormat::Json, _) => base.json().flatten_event(true).boxed(),
        (LogFormat::Human, true) => base.without_time().boxed(),
        (LogFormat::Human, false) => base.boxed(),
    };
    // A second init (tests embedding the daemon) is harmless.
    let installed = tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .try_init()
        .is_ok();
    LogControl {
        handle: installed.then_some(handle),
        from_env,
    }
}
