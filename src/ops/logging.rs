//! Log output: human-readable by default, without timestamps under journald
//! (which adds its own), JSON for log shippers. Level from `RUST_LOG`
//! (default `info`).

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Human,
    Json,
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let under_journald = std::env::var_os("JOURNAL_STREAM").is_some();
    // Logs go to stderr so that CLI output (`--json`) on stdout stays clean.
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let result = match (format, under_journald) {
        (LogFormat::Json, _) => builder.json().flatten_event(true).try_init(),
        (LogFormat::Human, true) => builder.without_time().with_ansi(false).try_init(),
        (LogFormat::Human, false) => builder.try_init(),
    };
    // A second init (tests) is harmless.
    let _ = result;
}
