//! `database`: a SQLite file (the embedded default) or a PostgreSQL URL
//! (several daemons on one database, issue 16).
//!
//! ```toml
//! database = "/var/lib/ipnsync/ipnsync.db"            # SQLite
//! database = "postgres://ipnsync@db.internal:5432/ipnsync"
//! database_password_file = "/etc/ipnsync/db-password"  # or _credential
//! database_pool = 8                                     # reader sessions
//! ```
//!
//! A password inside the URL is refused: the URL shows in logs and in
//! `check-config`, a password must not.

use std::fmt;
use std::path::{Path, PathBuf};

use super::secrets::{resolve_secret, Secret, SecretEnv, SecretOrigin};
use super::{invalid, ConfigError};

/// Reader sessions per daemon when `database_pool` is not given.
pub const DEFAULT_POOL: usize = 8;

#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(Postgres),
}

#[derive(Clone, PartialEq, Eq)]
pub struct Postgres {
    /// As written, without a password.
    pub url: String,
    pub password: Option<(Secret, SecretOrigin)>,
    /// Reader sessions this daemon may hold at once (the writer has one
    /// more of its own).
    pub pool: usize,
}

impl Database {
    /// The SQLite file, if that is the engine.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Database::Sqlite(p) => Some(p),
            Database::Postgres(_) => None,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }
}

impl From<PathBuf> for Database {
    fn from(p: PathBuf) -> Self {
        Database::Sqlite(p)
    }
}

impl From<&Path> for Database {
    fn from(p: &Path) -> Self {
        Database::Sqlite(p.to_path_buf())
    }
}

impl fmt::Display for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(p) => write!(f, "{}", p.display()),
            Database::Postgres(pg) => f.write_str(&pg.url),
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Database::Sqlite(p) => write!(f, "Sqlite({})", p.display()),
            Database::Postgres(pg) => write!(f, "Postgres({}, pool {})", pg.url, pg.pool),
        }
    }
}

/// Whether `value` names PostgreSQL rather than a file.
pub fn is_postgres_url(value: &str) -> bool {
    value.starts_with("postgres://") || value.starts_with("postgresql://")
}

impl Database {
    /// `--db` of the operator commands: a file, or a `postgres://` URL
    /// whose password (if the server asks for one) comes from `PGPASSWORD`,
    /// as for PostgreSQL's own tools.
    pub fn from_command_line(value: &Path) -> Result<Database, ConfigError> {
        let Some(text) = value.to_str().filter(|t| is_postgres_url(t)) else {
            return Ok(Database::Sqlite(value.to_path_buf()));
        };
        resolve(
            RawDatabase {
                value: text.to_owned(),
                password: std::env::var("PGPASSWORD").ok().filter(|p| !p.is_empty()),
                password_file: None,
                password_credential: None,
                pool: Some(2),
            },
            &SecretEnv::default(),
        )
    }
}

/// Whether a `postgres://` URL carries a password (`user:secret@host`, or
/// `?password=`). The URL is otherwise checked when the store connects.
fn url_has_password(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let (authority, query) = match rest.split_once('?') {
        Some((before, q)) => (before, q),
        None => (rest, ""),
    };
    let authority = authority.split('/').next().unwrap_or("");
    let in_userinfo = authority
        .rsplit_once('@')
        .is_some_and(|(userinfo, _)| userinfo.contains(':'));
    in_userinfo
        || query
            .split('&')
            .any(|kv| kv.split('=').next() == Some("password"))
}

pub(super) struct RawDatabase {
    pub value: String,
    pub password: Option<String>,
    pub password_file: Option<PathBuf>,
    pub password_credential: Option<String>,
    pub pool: Option<usize>,
}

pub(super) fn resolve(raw: RawDatabase, env: &SecretEnv) -> Result<Database, ConfigError> {
    let password = resolve_secret(
        "database_password",
        raw.password,
        raw.password_file,
        raw.password_credential,
        env,
    )?;
    if !is_postgres_url(&raw.value) {
        if password.is_some() || raw.pool.is_some() {
            return Err(invalid(
                "database",
                "database_password* and database_pool apply to a postgres:// database only",
            ));
        }
        if raw.value.is_empty() {
            return Err(invalid("database", "is empty"));
        }
        return Ok(Database::Sqlite(PathBuf::from(raw.value)));
    }
    if url_has_password(&raw.value) {
        return Err(invalid(
            "database",
            "the URL carries a password: give it as database_password_file or database_password_credential (the URL shows in logs and check-config)",
        ));
    }
    let pool = raw.pool.unwrap_or(DEFAULT_POOL);
    if pool == 0 {
        return Err(invalid("database_pool", "must be at least 1"));
    }
    Ok(Database::Postgres(Postgres {
        url: raw.value,
        password,
        pool,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(value: &str) -> RawDatabase {
        RawDatabase {
            value: value.into(),
            password: None,
            password_file: None,
            password_credential: None,
            pool: None,
        }
    }

    #[test]
    fn a_path_is_sqlite_and_a_url_is_postgres() {
        let env = SecretEnv::default();
        assert_eq!(
            resolve(raw("/var/lib/ipnsync/x.db"), &env).unwrap(),
            Database::Sqlite("/var/lib/ipnsync/x.db".into())
        );
        let mut r = raw("postgres://ipnsync@db:5432/ipnsync");
        r.password = Some("pw".into());
        match resolve(r, &env).unwrap() {
            Database::Postgres(pg) => {
                assert_eq!(pg.url, "postgres://ipnsync@db:5432/ipnsync");
                assert_eq!(pg.pool, DEFAULT_POOL);
                assert_eq!(pg.password.unwrap().0.expose(), "pw");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_echoing_it() {
        let err = resolve(raw("postgres://u:hunter2@db/x"), &SecretEnv::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("database_password_file"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }

    #[test]
    fn a_password_is_found_in_the_userinfo_or_the_query_only() {
        assert!(url_has_password("postgres://u:p@h/db"));
        assert!(url_has_password(
            "postgresql://h/db?sslmode=disable&password=x"
        ));
        assert!(!url_has_password("postgres://u@h:5432/db"));
        assert!(!url_has_password(
            "postgres://u@[::1]:5432/db?application_name=a:b"
        ));
    }

    #[test]
    fn postgres_settings_on_a_file_database_are_refused() {
        let mut r = raw("ipnsync.db");
        r.pool = Some(4);
        assert!(resolve(r, &SecretEnv::default()).is_err());
    }
}
