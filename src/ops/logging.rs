//! Log output: human-readable by default, without timestamps under journald
//! (which adds its own), JSON for log shippers. The level comes from
//! `RUST_LOG` when set, else from the configuration's `log_level` (which a
//! SIGHUP reload can change), else `info`.

use std::fmt;
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

/// Most characters of one value in a log line; the rest is cut and marked.
pub const MAX_LOG_VALUE_CHARS: usize = 300;

/// A value fit for a one-line log entry: control characters escaped
/// (`\n`, `\r`, `\t`, `\u{1b}`…), at most [`MAX_LOG_VALUE_CHARS`]
/// characters, a cut marked with `…`.
///
/// Every value that comes from outside (shop answers, order references,
/// actor names, request paths) goes through this before it reaches a log
/// line: a signed order id carrying `\r\n` must not forge a log entry, and
/// a shop's HTML error page must not spill over hundreds of lines.
pub fn one_line(value: &str) -> OneLine<'_> {
    OneLine(value)
}

/// [`one_line`]'s value: escaped as it is written into the log line, so a
/// log field costs no copy of its own (intake logs seven per request).
#[derive(Debug, Clone, Copy)]
pub struct OneLine<'a>(&'a str);

impl fmt::Display for OneLine<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write;
        for (n, c) in self.0.chars().enumerate() {
            if n == MAX_LOG_VALUE_CHARS {
                return f.write_char('…');
            }
            match c {
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                '\\' => f.write_str("\\\\")?,
                // Unicode line and paragraph separators and bidi controls break
                // lines or reorder text in some viewers: escape them too.
                c if c.is_control()
                    || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}') =>
                {
                    write!(f, "\\u{{{:x}}}", c as u32)?
                }
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_on_one_line_and_short() {
        assert_eq!(
            one_line("42\r\nINFO forged entry").to_string(),
            "42\\r\\nINFO forged entry"
        );
        assert_eq!(one_line("a\tb\u{1b}[31m").to_string(), "a\\tb\\u{1b}[31m");
        assert_eq!(one_line("back\\slash").to_string(), "back\\\\slash");
        assert_eq!(one_line("x\u{2028}y").to_string(), "x\\u{2028}y");
        let long = "é".repeat(1000);
        let cut = one_line(&long).to_string();
        assert_eq!(cut.chars().count(), MAX_LOG_VALUE_CHARS + 1);
        assert!(cut.ends_with('…'));
        assert_eq!(one_line("plain").to_string(), "plain");
    }
}
