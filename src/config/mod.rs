//! Configuration: a TOML file (or the embedded demo default), resolved into
//! typed settings with every secret loaded.
//!
//! Secrets can be given three ways, checked in this order for a secret named
//! `X`: `X_credential = "name"` (a file in `$CREDENTIALS_DIRECTORY`, as set
//! up by systemd's `LoadCredential=`), `X_file = "/path"`, or `X = "value"`
//! inline (discouraged: it puts the secret in the config file). Errors name
//! the offending key (`sources[1].test_key_file`) and never echo a secret.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use thiserror::Error;

mod confirm;
mod console;
mod customer_text;
mod database;
mod duration;
mod magento;
mod retention;
mod review;
mod runtime;
mod secrets;
mod shops;
mod source_auth;
mod sources;

pub use crate::providers::BodyFormat;
pub use confirm::{Confirm, MpgsApi, ReconcileConfig};
pub use console::{ConsoleConfig, Operator, OperatorCredential};
pub use customer_text::CustomerTexts;
pub use database::{Database, Postgres as PostgresDatabase};
pub use duration::{format_duration, parse_duration};
pub use magento::{OrderRules, STATES as ORDER_STATES};
pub use review::{CybersourceApi, LyraApi, ReviewApi};
pub use runtime::{
    default_per_peer, DispatchConfig, Limits, WriterConfig, DEFAULT_MAX_CONNECTIONS_PER_PEER,
};
pub use secrets::{Secret, SecretBytes, SecretEnv, SecretOrigin};
pub use shops::{default_statuses, ShopConfig, ShopKind, ShopStatus};
pub use source_auth::{
    CmosSettings, CybersourceKey, CybersourceSettings, MpgsSettings, SourceSettings,
};
pub use sources::{SourceConfig, SourceKind};

use runtime::{
    resolve_admin_token, resolve_dispatch, resolve_http, RawAdmin, RawDispatch, RawHttp, RawWriter,
};
use secrets::resolve_secret;
use shops::{resolve_shop, RawShop};
use sources::{resolve_source, RawSource};

/// The configuration `ipnsync serve` runs on when no `--config` is given: a
/// working demo with one Lyra form source in TEST mode, signed with the
/// public documentation key, and no shop (decisions are only logged).
pub const DEFAULT_CONFIG: &str = include_str!("../default_config.toml");

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid TOML: {0}")]
    Toml(String),
    #[error("{key}: {problem}")]
    Invalid { key: String, problem: String },
}

fn invalid(key: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
    }
}

// ------------------------------------------------------------------ raw file

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_listen")]
    listen: String,
    /// A SQLite file, or a `postgres://` URL (`config::database`).
    #[serde(default = "default_database")]
    database: String,
    database_password: Option<String>,
    database_password_file: Option<PathBuf>,
    database_password_credential: Option<String>,
    database_pool: Option<usize>,
    #[serde(default = "default_body_limit")]
    body_limit: usize,
    /// A `RUST_LOG`-style directive; `RUST_LOG` itself wins when set.
    log_level: Option<String>,
    #[serde(default)]
    writer: RawWriter,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    dispatch: RawDispatch,
    /// The operator console; absent = off.
    console: Option<console::RawConsole>,
    /// Reconciliation with the gateways; absent = off.
    reconcile: Option<confirm::RawReconcile>,
    /// Retention; absent = nothing is removed.
    retention: Option<retention::RawRetention>,
    #[serde(default)]
    sources: Vec<RawSource>,
    #[serde(default)]
    shops: Vec<RawShop>,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_database() -> String {
    "ipnsync.db".into()
}
fn default_body_limit() -> usize {
    64 * 1024
}

// ---------------------------------------------------------------- resolved

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database: Database,
    pub body_limit: usize,
    /// Log level directive (`info`, `warn,ipnsync=debug`…), unless
    /// `RUST_LOG` is set.
    pub log_level: Option<String>,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`); `None` = off.
    pub admin_listen: Option<SocketAddr>,
    /// Bearer token of the admin API (`/admin/*`); `None` = the API is off
    /// (its routes answer 404).
    pub admin_token: Option<(Secret, SecretOrigin)>,
    /// The operator web console (`/console/` on the admin listener);
    /// `None` = off (its paths answer 404).
    pub console: Option<ConsoleConfig>,
    pub writer: WriterConfig,
    /// Protection of the notification listener against slow or abusive
    /// clients, and the shutdown drain period.
    pub http: Limits,
    pub dispatch: DispatchConfig,
    /// The reconciliation task (`[reconcile]`); `None` = off.
    pub reconcile: Option<ReconcileConfig>,
    /// The retention task (`[retention]`); `None` = off.
    pub retention: Option<crate::store::retention::Policy>,
    pub sources: Vec<SourceConfig>,
    pub shops: Vec<ShopConfig>,
    /// Each shop's customer texts, by shop name. Kept beside `shops`
    /// rather than in `ShopConfig` because only the dispatcher renders
    /// them and the shop clients never read them.
    pub customer_texts: BTreeMap<String, CustomerTexts>,
    /// Non-fatal findings for `check-config` and the startup log.
    pub warnings: Vec<String>,
}

impl Config {
    /// Reads and resolves a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, &SecretEnv::from_process(Some(path)))
    }

    /// The embedded demo configuration.
    pub fn embedded_default() -> Config {
        Config::parse(DEFAULT_CONFIG, &SecretEnv::default())
            .expect("embedded default config is valid")
    }

    pub fn parse(text: &str, env: &SecretEnv) -> Result<Config, ConfigError> {
        // A source table serde refuses gets the clearer message that names
        // its key (`sources[0].keys: does not apply to kind mpgs`) when
        // there is one.
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            sources::explain_error(text).unwrap_or_else(|| ConfigError::Toml(e.to_string()))
        })?;
        resolve(raw, env)
    }

    pub fn shop(&self, name: &str) -> Option<&ShopConfig> {
        self.shops.iter().find(|s| s.name == name)
    }

    pub fn source_by_path(&self, path: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.path == path)
    }

    /// A human summary without any secret, for `check-config`.
    pub fn summary(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(out, "listen      {}", self.listen);
        let _ = writeln!(
            out,
            "database    {}{}",
            self.database,
            match &self.database {
                Database::Postgres(pg) => format!(
                    " (PostgreSQL, {} reader sessions{})",
                    pg.pool,
                    pg.password
                        .as_ref()
                        .map(|(_, o)| format!(", password {o}"))
                        .unwrap_or_default()
                ),
                Database::Sqlite(_) => String::new(),
            }
        );
        let _ = writeln!(out, "body limit  {} bytes", self.body_limit);
        let _ = writeln!(
            out,
            "http        up to {} connections ({} per peer address), headers within {}, body within {}, drain {}",
            self.http.max_connections,
            self.http.max_connections_per_peer,
            format_duration(self.http.header_read_timeout),
            format_duration(self.http.body_read_timeout),
            format_duration(self.http.drain_timeout)
        );
        let _ = writeln!(
            out,
            "admin       {}",
            self.admin_listen
                .map(|a| format!("http://{a}/metrics, /healthz, /readyz"))
                .unwrap_or_else(|| "off".into())
        );
        let _ = writeln!(
            out,
            "admin API   {}",
            match &self.admin_token {
                Some((_, origin)) => format!("/admin/* with a bearer token ({origin})"),
                None => "off (no [admin] token)".to_owned(),
            }
        );
        let _ = writeln!(
            out,
            "console     {}",
            match &self.console {
                Some(c) => c.summary(),
                None => "off (no [console])".to_owned(),
            }
        );
        let _ = writeln!(
            out,
            "writer      queue {}, up to {} notifications per commit",
            self.writer.queue, self.writer.batch_max
        );
        let schedule: Vec<String> = self
            .dispatch
            .retry_schedule
            .iter()
            .map(|d| format_duration(*d))
            .collect();
        let total: Duration = self.dispatch.retry_schedule.iter().sum();
        let _ = writeln!(
            out,
            "retries     {} (±{:.0}% jitter, {:.1} h in all)",
            schedule.join(", "),
            self.dispatch.jitter * 100.0,
            total.as_secs_f64() / 3600.0
        );
        let _ = writeln!(out, "sources     {}", self.sources.len());
        for s in &self.sources {
            let shop = s.shop.as_deref().unwrap_or("(log only)");
            let _ = match &s.settings {
                SourceSettings::Lyra => writeln!(
                    out,
                    "  {:<12} {:<9} POST {}  mode {}  {}  site {}  key: {}  → {}",
                    s.name,
                    s.kind.as_str(),
                    s.path,
                    s.mode.as_str(),
                    match s.kind {
                        SourceKind::LyraForm => s.algorithm.as_str(),
                        _ => "kr-hash (REST password)",
                    },
                    s.site_id.as_deref().unwrap_or("(any)"),
                    s.key_origin,
                    shop
                ),
                SourceSettings::Cybersource(c) => writeln!(
                    out,
                    "  {:<12} {} POST {} (GET: health check)  v-c-signature, replay window {}  organization {}  keys: {}  → {shop}",
                    s.name,
                    s.kind.as_str(),
                    s.path,
                    c.timestamp_tolerance
                        .map(format_duration)
                        .unwrap_or_else(|| "off".into()),
                    c.organization_id.as_deref().unwrap_or("(any)"),
                    c.keys
                        .iter()
                        .map(|k| format!("{} ({})", k.id, k.origin))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                SourceSettings::CybersourceCmos(c) => writeln!(
                    out,
                    "  {:<12} {} POST {}?token=…  token: {}  peers {}  merchant {}  → {shop}",
                    s.name,
                    s.kind.as_str(),
                    s.path,
                    c.token_origin,
                    if c.allow_from.is_empty() {
                        "(any)".to_owned()
                    } else {
                        c.allow_from
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    },
                    c.merchant_id.as_deref().unwrap_or("(any)"),
                ),
                SourceSettings::Mpgs(m) => writeln!(
                    out,
                    "  {:<12} {:<9} POST {}  X-Notification-Secret: {}  merchant {}  order ref {}  → {shop}",
                    s.name,
                    s.kind.as_str(),
                    s.path,
                    m.secrets
                        .iter()
                        .map(|(_, o)| o.to_string())
                        .collect::<Vec<_>>()
                        .join(", then "),
                    m.merchant_id.as_deref().unwrap_or("(any)"),
                    m.order_ref.as_str(),
                ),
            };
            if let Some(api) = &s.review_api {
                let _ = writeln!(out, "      review actions: {}", api.summary());
            }
            if s.cancel_at_gateway {
                let _ = writeln!(
                    out,
                    "      cancel at the gateway: on (a risk-rejected authorisation is cancelled automatically)"
                );
            }
            if let Some(api) = &s.mpgs_api {
                let _ = writeln!(out, "      gateway API: {}", api.summary());
            }
            let _ = writeln!(
                out,
                "      {}",
                confirm::capability(s, self.reconcile.is_some())
            );
        }
        let _ = writeln!(
            out,
            "reconcile   {}",
            match &self.reconcile {
                Some(r) => format!(
                    "every {}, orders pending or in review for {} to {}",
                    format_duration(r.interval),
                    format_duration(r.min_age),
                    format_duration(r.max_age)
                ),
                None => "off (no [reconcile]; `ipnsync reconcile` works on demand)".to_owned(),
            }
        );
        let _ = writeln!(
            out,
            "retention   {}",
            match &self.retention {
                Some(r) => format!(
                    "every {}: bodies after {}, closed orders after {}",
                    format_duration(r.every),
                    r.bodies_after.map_or("never".to_owned(), format_duration),
                    r.closed_orders_after
                        .map_or("never".to_owned(), format_duration)
                ),
                None => "off (no [retention]; `ipnsync prune` works on demand)".to_owned(),
            }
        );
        let _ = writeln!(out, "shops       {}", self.shops.len());
        for shop in &self.shops {
            let _ = writeln!(
                out,
                "  {:<12} {:<11} {}  concurrency {}  timeout {}",
                shop.name,
                shop.kind.as_str(),
                shop.base_url,
                shop.concurrency,
                format_duration(shop.timeout)
            );
            for (outcome, status) in &shop.statuses {
                let _ = writeln!(
                    out,
                    "      {:<16} → {:<16}{}",
                    outcome.as_str(),
                    status.to_string(),
                    if shop.notifies(*outcome) {
                        " (notify customer)"
                    } else {
                        ""
                    }
                );
                if shop.notifies(*outcome) {
                    let texts = self.customer_texts.get(&shop.name);
                    let _ = writeln!(
                        out,
                        "        customer text: {:?}",
                        texts.cloned().unwrap_or_default().template(*outcome)
                    );
                }
            }
            let _ = writeln!(
                out,
                "      amount check     {}",
                match shop.amount_tolerance {
                    Some(0) => "on".to_owned(),
                    Some(t) => format!("on, tolerance {t} minor unit(s)"),
                    None => "off".to_owned(),
                }
            );
        }
        for w in &self.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        out
    }
}

fn resolve(raw: RawConfig, env: &SecretEnv) -> Result<Config, ConfigError> {
    let listen: SocketAddr = raw.listen.parse().map_err(|_| {
        invalid(
            "listen",
            format!("{:?} is not an address like 127.0.0.1:8080", raw.listen),
        )
    })?;
    if raw.body_limit < 1024 || raw.body_limit > 16 * 1024 * 1024 {
        return Err(invalid(
            "body_limit",
            "must be between 1024 and 16777216 bytes",
        ));
    }
    let writer = WriterConfig {
        queue: raw.writer.queue.unwrap_or(8192),
        batch_max: raw.writer.batch_max.unwrap_or(512),
        sessions: raw.writer.sessions.unwrap_or(4),
    };
    if writer.sessions == 0 {
        return Err(invalid("writer.sessions", "must be at least 1"));
    }
    if writer.queue == 0 {
        return Err(invalid("writer.queue", "must be at least 1"));
    }
    if writer.batch_max == 0 {
        return Err(invalid("writer.batch_max", "must be at least 1"));
    }
    let dispatch = resolve_dispatch(raw.dispatch)?;
    let http = resolve_http(raw.http)?;
    let log_level = match raw.log_level {
        Some(level) => {
            tracing_subscriber::EnvFilter::try_new(&level)
                .map_err(|e| invalid("log_level", format!("{level:?} is not a log level: {e}")))?;
            Some(level)
        }
        None => None,
    };
    let admin_listen = match raw.admin.listen.as_deref() {
        None => Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
        Some("off") => None,
        Some(addr) => Some(addr.parse().map_err(|_| {
            invalid(
                "admin.listen",
                format!("{addr:?} is not an address like 127.0.0.1:9090 (or \"off\")"),
            )
        })?),
    };
    let admin_token = resolve_admin_token(&raw.admin, env)?;
    let database = database::resolve(
        database::RawDatabase {
            value: raw.database,
            password: raw.database_password,
            password_file: raw.database_password_file,
            password_credential: raw.database_password_credential,
            pool: raw.database_pool,
        },
        env,
    )?;
    let console = console::resolve_console(raw.console, env, admin_listen.is_some())?;
    let mut warnings = Vec::new();
    let total: Duration = dispatch.retry_schedule.iter().sum();
    if total.mul_f64(1.0 - dispatch.jitter) < Duration::from_secs(24 * 3600) {
        warnings.push(format!(
            "dispatch.retry_schedule: retries may give up after {} (with -{:.0}% jitter), under 24 hours: a shop down for a day loses updates to the dead queue",
            format_duration(Duration::from_secs(total.mul_f64(1.0 - dispatch.jitter).as_secs())),
            dispatch.jitter * 100.0
        ));
    }
    if let Some(admin) = admin_listen {
        if !admin.ip().is_loopback() {
            warnings.push(format!(
                "admin.listen {admin} is not a loopback address: /metrics and /readyz will be reachable from the network"
            ));
            if console.is_some() {
                warnings.push(format!(
                    "console: served on {admin}, not loopback, over plain HTTP: publish it through a TLS reverse proxy instead (README, \"Operator console\")"
                ));
            }
        }
    }

    let mut shops = Vec::new();
    let mut customer_texts = BTreeMap::new();
    for (i, shop) in raw.shops.into_iter().enumerate() {
        let (resolved, texts) = resolve_shop(i, shop, env, &mut warnings)?;
        customer_texts.insert(resolved.name.clone(), texts);
        if shops.iter().any(|s: &ShopConfig| s.name == resolved.name) {
            return Err(invalid(
                format!("shops[{i}].name"),
                format!("{:?} is used twice", resolved.name),
            ));
        }
        shops.push(resolved);
    }

    let mut sources = Vec::new();
    for (i, source) in raw.sources.into_iter().enumerate() {
        let resolved = resolve_source(i, source, env, &shops)?;
        if sources
            .iter()
            .any(|s: &SourceConfig| s.path == resolved.path)
        {
            return Err(invalid(
                format!("sources[{i}].path"),
                format!("{:?} is used twice", resolved.path),
            ));
        }
        if sources
            .iter()
            .any(|s: &SourceConfig| s.name == resolved.name)
        {
            return Err(invalid(
                format!("sources[{i}].name"),
                format!("{:?} is used twice", resolved.name),
            ));
        }
        sources.push(resolved);
    }
    if sources.is_empty() {
        warnings.push("no [[sources]]: the daemon will refuse every notification".into());
    }
    warnings.extend(sources::mode_mixing_warnings(&sources));
    let reconcile = confirm::resolve_reconcile(raw.reconcile)?;
    let retention = retention::resolve(raw.retention)?;
    Ok(Config {
        reconcile,
        retention,
        listen,
        database,
        body_limit: raw.body_limit,
        admin_listen,
        log_level,
        http,
        admin_token,
        console,
        writer,
        dispatch,
        sources,
        shops,
        customer_texts,
        warnings,
    })
}

#[cfg(test)]
mod tests;
