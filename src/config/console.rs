//! The `[console]` section: the operator web console on the admin listener.
//!
//! ```toml
//! [console]
//! session_lifetime = "8h"
//! secure_cookie = false
//! operators = [
//!   { name = "alice", password_hash = "$argon2id$v=19$m=19456,t=2,p=1$…" },
//!   { name = "bob", token_credential = "console-bob" },
//! ]
//! ```
//!
//! Without the section the console does not exist (its paths answer 404).
//! Each operator signs in with a password checked against an Argon2 hash
//! (`ipnsync hash-password`), or with a long token (a secret like any
//! other, compared in constant time).

use std::path::PathBuf;
use std::time::Duration;

use argon2::password_hash::PasswordHash;
use serde::Deserialize;

use super::{invalid, parse_duration, resolve_secret, ConfigError, Secret, SecretEnv};

/// Longest operator name (it is the review action's actor).
pub const MAX_OPERATOR_NAME: usize = 64;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConsole {
    pub(super) session_lifetime: Option<String>,
    pub(super) secure_cookie: Option<bool>,
    #[serde(default)]
    pub(super) operators: Vec<RawOperator>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawOperator {
    name: String,
    password_hash: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    token_credential: Option<String>,
}

/// The resolved `[console]` section.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// How long a sign-in lasts (no sliding renewal: an operator signs in
    /// again after it).
    pub session_lifetime: Duration,
    /// Mark the session cookie `Secure` (set it when the console is served
    /// over HTTPS by a reverse proxy).
    pub secure_cookie: bool,
    pub operators: Vec<Operator>,
}

/// One operator account.
#[derive(Debug, Clone)]
pub struct Operator {
    /// Recorded as the actor of every action the operator takes.
    pub name: String,
    pub credential: OperatorCredential,
}

/// How an operator proves who they are.
#[derive(Debug, Clone)]
pub enum OperatorCredential {
    /// An Argon2 PHC string (`$argon2id$…`): not a secret in itself, but
    /// kept out of `check-config` output all the same.
    PasswordHash(String),
    /// A token typed in the password field.
    Token(Secret),
}

impl ConsoleConfig {
    pub fn operator(&self, name: &str) -> Option<&Operator> {
        self.operators.iter().find(|o| o.name == name)
    }

    /// One line for `check-config`, without any hash or token.
    pub fn summary(&self) -> String {
        let names: Vec<String> = self
            .operators
            .iter()
            .map(|o| match o.credential {
                OperatorCredential::PasswordHash(_) => format!("{} (password)", o.name),
                OperatorCredential::Token(_) => format!("{} (token)", o.name),
            })
            .collect();
        format!(
            "/console/ on the admin listener, sessions of {}{}, operators: {}",
            super::format_duration(self.session_lifetime),
            if self.secure_cookie {
                ", Secure cookie"
            } else {
                ""
            },
            names.join(", ")
        )
    }
}

pub(super) fn resolve_console(
    raw: Option<RawConsole>,
    env: &SecretEnv,
    admin_on: bool,
) -> Result<Option<ConsoleConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    if !admin_on {
        return Err(invalid(
            "console",
            "the console is served by the admin listener, which is off ([admin] listen = \"off\")",
        ));
    }
    let session_lifetime = match raw.session_lifetime {
        Some(s) => parse_duration(&s).map_err(|p| invalid("console.session_lifetime", p))?,
        None => Duration::from_secs(8 * 3600),
    };
    if session_lifetime < Duration::from_secs(60)
        || session_lifetime > Duration::from_secs(7 * 86400)
    {
        return Err(invalid(
            "console.session_lifetime",
            "must be between 1m and 7d",
        ));
    }
    if raw.operators.is_empty() {
        return Err(invalid(
            "console.operators",
            "at least one operator is needed (or remove [console] to turn the console off)",
        ));
    }
    let mut operators: Vec<Operator> = Vec::new();
    for (i, op) in raw.operators.into_iter().enumerate() {
        let key = format!("console.operators[{i}]");
        let name = op.name.trim().to_owned();
        if name.is_empty()
            || name.chars().count() > MAX_OPERATOR_NAME
            || name.chars().any(char::is_control)
        {
            return Err(invalid(
                format!("{key}.name"),
                format!("must be 1 to {MAX_OPERATOR_NAME} printable characters"),
            ));
        }
        if operators.iter().any(|o| o.name == name) {
            return Err(invalid(
                format!("{key}.name"),
                format!("{name:?} is used twice"),
            ));
        }
        let token = resolve_secret(
            &format!("{key}.token"),
            op.token,
            op.token_file,
            op.token_credential,
            env,
        )?;
        let credential = match (op.password_hash, token) {
            (Some(hash), None) => {
                let hash = hash.trim().to_owned();
                let parsed = PasswordHash::new(&hash).map_err(|e| {
                    invalid(
                        format!("{key}.password_hash"),
                        format!("not a PHC hash string ({e}); make one with `ipnsync hash-password`"),
                    )
                })?;
                if !parsed.algorithm.as_str().starts_with("argon2") {
                    return Err(invalid(
                        format!("{key}.password_hash"),
                        "must be an Argon2 hash (`ipnsync hash-password`)",
                    ));
                }
                OperatorCredential::PasswordHash(hash)
            }
            (None, Some((token, _))) => {
                if token.expose().chars().count() < 16 {
                    return Err(invalid(
                        format!("{key}.token"),
                        "must be at least 16 characters (e.g. `openssl rand -hex 32`)",
                    ));
                }
                OperatorCredential::Token(token)
            }
            (Some(_), Some(_)) => {
                return Err(invalid(
                    key,
                    "give either password_hash or a token, not both",
                ))
            }
            (None, None) => {
                return Err(invalid(
                    key,
                    "needs password_hash (`ipnsync hash-password`) or token / token_file / token_credential",
                ))
            }
        };
        operators.push(Operator { name, credential });
    }
    Ok(Some(ConsoleConfig {
        session_lifetime,
        secure_cookie: raw.secure_cookie.unwrap_or(false),
        operators,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    const HASH: &str = "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$5xH1m6H8aJ1ZbwGqRRQxbA";

    fn parse(console: &str) -> Result<Config, ConfigError> {
        Config::parse(console, &SecretEnv::default())
    }

    #[test]
    fn absent_means_off_and_operators_are_checked() {
        assert!(parse("").unwrap().console.is_none());
        let c = parse(&format!(
            "[console]\noperators = [{{ name = \"alice\", password_hash = \"{HASH}\" }}, {{ name = \"bob\", token = \"0123456789abcdef0\" }}]\n"
        ))
        .unwrap();
        let console = c.console.unwrap();
        assert_eq!(console.session_lifetime, Duration::from_secs(8 * 3600));
        assert_eq!(console.operators.len(), 2);
        let summary = console.summary();
        assert!(
            summary.contains("alice (password), bob (token)"),
            "{summary}"
        );
        assert!(!summary.contains("argon2") && !summary.contains("0123456789abcdef0"));
    }

    #[test]
    fn a_console_off_loopback_is_warned_about() {
        let text = |listen: &str| {
            format!(
                "[admin]\nlisten = \"{listen}\"\n[console]\noperators = [{{ name = \"a\", password_hash = \"{HASH}\" }}]\n"
            )
        };
        let warned = |c: Config| {
            c.warnings
                .iter()
                .any(|w| w.starts_with("console: served on"))
        };
        assert!(warned(parse(&text("0.0.0.0:9090")).unwrap()));
        assert!(!warned(parse(&text("127.0.0.1:9090")).unwrap()));
    }

    #[test]
    fn bad_sections_name_the_key() {
        let err = |text: &str| parse(text).unwrap_err().to_string();
        assert!(err("[console]\n").starts_with("console.operators:"));
        assert!(
            err("[console]\noperators = [{ name = \"a\", password_hash = \"plain\" }]\n")
                .starts_with("console.operators[0].password_hash:")
        );
        assert!(
            err("[console]\noperators = [{ name = \"a\", token = \"short\" }]\n")
                .starts_with("console.operators[0].token:")
        );
        assert!(
            err("[console]\noperators = [{ name = \"a\" }]\n").starts_with("console.operators[0]:")
        );
        assert!(err(&format!(
            "[console]\noperators = [{{ name = \"a\", password_hash = \"{HASH}\" }}, {{ name = \"a\", password_hash = \"{HASH}\" }}]\n"
        ))
        .starts_with("console.operators[1].name:"));
        assert!(err(&format!(
            "[admin]\nlisten = \"off\"\n[console]\noperators = [{{ name = \"a\", password_hash = \"{HASH}\" }}]\n"
        ))
        .starts_with("console:"));
        assert!(err(&format!(
            "[console]\nsession_lifetime = \"1s\"\noperators = [{{ name = \"a\", password_hash = \"{HASH}\" }}]\n"
        ))
        .starts_with("console.session_lifetime:"));
    }
}
