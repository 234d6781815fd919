//! Configuration: a TOML file (or the embedded demo default), resolved into
//! typed settings with every secret loaded.
//!
//! Secrets can be given three ways, checked in this order for a secret named
//! `X`: `X_credential = "name"` (a file in `$CREDENTIALS_DIRECTORY`, as set
//! up by systemd's `LoadCredential=`), `X_file = "/path"`, or `X = "value"`
//! inline (discouraged: it puts the secret in the config file). Errors name
//! the offending key (`sources[1].test_key_file`) and never echo a secret.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use serde::Deserialize;
use thiserror::Error;

use crate::domain::Outcome;
use crate::providers::cidr::Cidr;
use crate::providers::lyra::{Mode, SignAlgo};
use crate::providers::mpgs::OrderRefField;

/// The configuration `ipnsync serve` runs on when no `--config` is given: a
/// working demo with one Lyra form source in TEST mode, signed with the
/// public documentation key, and no shop (decisions are only logged).
pub const DEFAULT_CONFIG: &str = include_str!("default_config.toml");

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

/// A secret value. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Secret bytes (a decoded key). Its `Debug` never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBytes(***)")
    }
}

/// Where a secret came from, for `check-config` (never the value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretOrigin {
    Inline,
    File(PathBuf),
    Credential(String),
}

impl fmt::Display for SecretOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretOrigin::Inline => f.write_str("inline (discouraged)"),
            SecretOrigin::File(p) => write!(f, "file {}", p.display()),
            SecretOrigin::Credential(c) => write!(f, "credential {c}"),
        }
    }
}

// ------------------------------------------------------------------ raw file

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default = "default_database")]
    database: PathBuf,
    #[serde(default = "default_body_limit")]
    body_limit: usize,
    #[serde(default)]
    writer: RawWriter,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    admin: RawAdmin,
    #[serde(default)]
    dispatch: RawDispatch,
    #[serde(default)]
    sources: Vec<RawSource>,
    #[serde(default)]
    shops: Vec<RawShop>,
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}
fn default_database() -> PathBuf {
    "ipnsync.db".into()
}
fn default_body_limit() -> usize {
    64 * 1024
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawWriter {
    queue: Option<usize>,
    batch_max: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    max_connections: Option<usize>,
    header_read_timeout: Option<String>,
    body_read_timeout: Option<String>,
    drain_timeout: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAdmin {
    /// Address of the admin listener; `"off"` disables it.
    listen: Option<String>,
    /// Bearer token of the `/admin/*` API; without one the API is off.
    token: Option<String>,
    token_file: Option<PathBuf>,
    token_credential: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawDispatch {
    retry_schedule: Option<Vec<String>>,
    jitter: Option<f64>,
    poll_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSource {
    name: Option<String>,
    kind: String,
    path: String,
    shop: Option<String>,
    site_id: Option<String>,
    mode: Option<String>,
    algorithm: Option<String>,
    order_prefix: Option<String>,
    test_key: Option<String>,
    test_key_file: Option<PathBuf>,
    test_key_credential: Option<String>,
    production_key: Option<String>,
    production_key_file: Option<PathBuf>,
    production_key_credential: Option<String>,
    test_password: Option<String>,
    test_password_file: Option<PathBuf>,
    test_password_credential: Option<String>,
    production_password: Option<String>,
    production_password_file: Option<PathBuf>,
    production_password_credential: Option<String>,
    // cybersource
    keys: Option<Vec<RawSigningKey>>,
    timestamp_tolerance: Option<String>,
    organization_id: Option<String>,
    // cybersource-cmos
    token: Option<String>,
    token_file: Option<PathBuf>,
    token_credential: Option<String>,
    allow_from: Option<Vec<String>>,
    // cybersource-cmos, mpgs
    merchant_id: Option<String>,
    // mpgs
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    secret_credential: Option<String>,
    previous_secret: Option<String>,
    previous_secret_file: Option<PathBuf>,
    previous_secret_credential: Option<String>,
    order_ref: Option<String>,
    // review actions (see `config/review.rs`): lyra-form, lyra-rest
    api_url: Option<String>,
    rest_password: Option<String>,
    rest_password_file: Option<PathBuf>,
    rest_password_credential: Option<String>,
    // review actions: cybersource
    api_host: Option<String>,
    api_key_id: Option<String>,
    api_shared_secret: Option<String>,
    api_shared_secret_file: Option<PathBuf>,
    api_shared_secret_credential: Option<String>,
    // review actions: all of the above
    api_timeout: Option<String>,
}

/// One Cybersource signing key: `{ id = "keyId", secret_credential = "…" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSigningKey {
    id: String,
    secret: Option<String>,
    secret_file: Option<PathBuf>,
    secret_credential: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawShop {
    name: String,
    kind: String,
    base_url: String,
    username: Option<String>,
    key: Option<String>,
    key_file: Option<PathBuf>,
    key_credential: Option<String>,
    password: Option<String>,
    password_file: Option<PathBuf>,
    password_credential: Option<String>,
    token: Option<String>,
    token_file: Option<PathBuf>,
    token_credential: Option<String>,
    concurrency: Option<usize>,
    timeout: Option<String>,
    connect_timeout: Option<String>,
    #[serde(default)]
    notify: Vec<String>,
    #[serde(default)]
    statuses: BTreeMap<String, toml::Value>,
    store_id: Option<u32>,
    language: Option<String>,
    currency: Option<String>,
    lookup_by_increment_id: Option<bool>,
}

// ---------------------------------------------------------------- resolved

#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database: PathBuf,
    pub body_limit: usize,
    /// The admin listener (`/metrics`, `/healthz`, `/readyz`); `None` = off.
    pub admin_listen: Option<SocketAddr>,
    /// Bearer token of the admin API (`/admin/*`); `None` = the API is off
    /// (its routes answer 404).
    pub admin_token: Option<(Secret, SecretOrigin)>,
    pub writer: WriterConfig,
    /// Protection of the notification listener against slow or abusive
    /// clients, and the shutdown drain period.
    pub http: crate::http::Limits,
    pub dispatch: DispatchConfig,
    pub sources: Vec<SourceConfig>,
    pub shops: Vec<ShopConfig>,
    /// Non-fatal findings for `check-config` and the startup log.
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Notifications that may wait for the writer before intake answers 503.
    pub queue: usize,
    /// Most notifications committed in one transaction.
    pub batch_max: usize,
}

#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Delay before each retry; its length is the number of retries.
    pub retry_schedule: Vec<Duration>,
    /// ± fraction applied to each delay.
    pub jitter: f64,
    /// How often the dispatcher looks for due rows when nothing wakes it.
    pub poll_interval: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    LyraForm,
    LyraRest,
    /// Cybersource Decision Manager REST webhooks (`v-c-signature`).
    Cybersource,
    /// Cybersource's legacy Case Management Order Status XML POST.
    CybersourceCmos,
    /// Mastercard Gateway (MPGS) webhooks.
    Mpgs,
}

/// The body a source kind receives, for the `Content-Type` check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `application/json`.
    Json,
}

impl SourceKind {
    pub const ALL: [SourceKind; 5] = [
        SourceKind::LyraForm,
        SourceKind::LyraRest,
        SourceKind::Cybersource,
        SourceKind::CybersourceCmos,
        SourceKind::Mpgs,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::LyraForm => "lyra-form",
            SourceKind::LyraRest => "lyra-rest",
            SourceKind::Cybersource => "cybersource",
            SourceKind::CybersourceCmos => "cybersource-cmos",
            SourceKind::Mpgs => "mpgs",
        }
    }

    pub fn parse(s: &str) -> Option<SourceKind> {
        SourceKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn body_format(self) -> BodyFormat {
        match self {
            SourceKind::LyraForm | SourceKind::LyraRest | SourceKind::CybersourceCmos => {
                BodyFormat::Form
            }
            SourceKind::Cybersource | SourceKind::Mpgs => BodyFormat::Json,
        }
    }
}

/// What a source verifies with, beyond the fields every kind has.
#[derive(Debug, Clone)]
pub enum SourceSettings {
    /// Lyra sources use `mode`, `algorithm`, `site_id` and `key`.
    Lyra,
    Cybersource(CybersourceSettings),
    CybersourceCmos(CmosSettings),
    Mpgs(MpgsSettings),
}

#[derive(Debug, Clone)]
pub struct CybersourceSettings {
    /// Every valid signing key (two during a yearly rotation).
    pub keys: Vec<CybersourceKey>,
    /// Largest accepted distance between `t` and the daemon's clock;
    /// `None` = no replay check (`timestamp_tolerance = "off"`).
    pub timestamp_tolerance: Option<Duration>,
    /// When set, the body's `organizationId` must equal it (else 403).
    pub organization_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct CybersourceKey {
    /// The `keyId` the webhook's signature header names.
    pub id: String,
    /// The key, base64-decoded.
    pub key: SecretBytes,
    pub origin: SecretOrigin,
}

#[derive(Debug, Clone)]
pub struct CmosSettings {
    /// Must equal the request's `token` query parameter.
    pub token: Secret,
    pub token_origin: SecretOrigin,
    /// Peers allowed to post; empty = any.
    pub allow_from: Vec<Cidr>,
    /// When set, the document's `MerchantID` must equal it (else 403).
    pub merchant_id: Option<String>,
}

#[derive(Debug, Clone)]
pub struct MpgsSettings {
    /// The current secret, then the previous one during a rotation.
    pub secrets: Vec<(Secret, SecretOrigin)>,
    /// When set, the body's `merchant` must equal it (else 403).
    pub merchant_id: Option<String>,
    pub order_ref: OrderRefField,
}

#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub name: String,
    pub kind: SourceKind,
    pub path: String,
    /// The shop that receives this source's decisions; `None` = log only.
    pub shop: Option<String>,
    pub site_id: Option<String>,
    pub mode: Mode,
    pub algorithm: SignAlgo,
    /// Stripped from the platform's order reference before it is used as
    /// the shop's order id.
    pub order_prefix: String,
    /// The key (form) or REST password (rest) of the configured mode; for
    /// the other kinds their first secret (Cybersource's first key as
    /// configured, the CMOS token, the current MPGS secret). The full set is
    /// in `settings`.
    pub key: Secret,
    pub key_origin: SecretOrigin,
    /// Kind-specific settings. `mode`, `algorithm` and `site_id` only mean
    /// something for Lyra; other kinds have `mode` PRODUCTION.
    pub settings: SourceSettings,
    /// The gateway API that validates or denies payments held for review
    /// (`ipnsync review`, `/admin/orders/…`); `None` = not configured.
    pub review_api: Option<ReviewApi>,
}

impl SourceConfig {
    /// Where every secret of the source comes from, by config key (for
    /// `check-config` and the inline-secret warning).
    pub fn secret_origins(&self) -> Vec<(String, &SecretOrigin)> {
        let mut origins = self.verification_secret_origins();
        if let Some(api) = &self.review_api {
            origins.push(api.secret_origin());
        }
        origins
    }

    fn verification_secret_origins(&self) -> Vec<(String, &SecretOrigin)> {
        match &self.settings {
            SourceSettings::Lyra => vec![("key".to_owned(), &self.key_origin)],
            SourceSettings::Cybersource(c) => c
                .keys
                .iter()
                .map(|k| (format!("keys[{}]", k.id), &k.origin))
                .collect(),
            SourceSettings::CybersourceCmos(c) => vec![("token".to_owned(), &c.token_origin)],
            SourceSettings::Mpgs(m) => m
                .secrets
                .iter()
                .zip(["secret", "previous_secret"])
                .map(|((_, origin), name)| (name.to_owned(), origin))
                .collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShopKind {
    OpenMage,
    OpenCart3,
    OpenCart40,
    OpenCart41,
    Magento2,
    Webhook,
}

impl ShopKind {
    pub fn parse(s: &str) -> Option<ShopKind> {
        Some(match s {
            "openmage" => ShopKind::OpenMage,
            "opencart3" => ShopKind::OpenCart3,
            "opencart4.0" => ShopKind::OpenCart40,
            "opencart4.1" => ShopKind::OpenCart41,
            "magento2" => ShopKind::Magento2,
            "webhook" => ShopKind::Webhook,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            ShopKind::OpenMage => "openmage",
            ShopKind::OpenCart3 => "opencart3",
            ShopKind::OpenCart40 => "opencart4.0",
            ShopKind::OpenCart41 => "opencart4.1",
            ShopKind::Magento2 => "magento2",
            ShopKind::Webhook => "webhook",
        }
    }
    fn is_opencart(self) -> bool {
        matches!(
            self,
            ShopKind::OpenCart3 | ShopKind::OpenCart40 | ShopKind::OpenCart41
        )
    }
}

/// The status a shop is given for an outcome: a status string (OpenMage,
/// Magento 2, webhook) or an `order_status_id` (OpenCart).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShopStatus {
    Code(String),
    Id(u32),
}

impl fmt::Display for ShopStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShopStatus::Code(c) => f.write_str(c),
            ShopStatus::Id(i) => write!(f, "{i}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ShopConfig {
    pub name: String,
    pub kind: ShopKind,
    pub base_url: String,
    pub username: String,
    /// API key (OpenMage, OpenCart), password (Magento 2 admin), or the
    /// signing secret (webhook).
    pub credential: Option<Secret>,
    /// Magento 2 integration access token, used instead of username/password.
    pub token: Option<Secret>,
    pub concurrency: usize,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    /// Outcomes for which the shop should notify the customer.
    pub notify: Vec<Outcome>,
    pub statuses: BTreeMap<Outcome, ShopStatus>,
    pub store_id: u32,
    pub language: String,
    pub currency: String,
    pub lookup_by_increment_id: bool,
}

impl ShopConfig {
    pub fn status_for(&self, outcome: Outcome) -> &ShopStatus {
        self.statuses
            .get(&outcome)
            .expect("status table is complete after resolution")
    }
    pub fn notifies(&self, outcome: Outcome) -> bool {
        self.notify.contains(&outcome)
    }
}

/// The documented default status table of a shop kind.
pub fn default_statuses(kind: ShopKind) -> BTreeMap<Outcome, ShopStatus> {
    Outcome::ALL
        .into_iter()
        .map(|o| {
            let status = if kind.is_opencart() {
                ShopStatus::Id(match o {
                    Outcome::Pending | Outcome::Review | Outcome::SuspectedFraud => 1,
                    Outcome::Accepted => 2,
                    Outcome::Rejected => 8,
                    Outcome::Failed => 10,
                    Outcome::Canceled => 7,
                    Outcome::Refunded => 11,
                })
            } else {
                ShopStatus::Code(
                    match o {
                        Outcome::Pending => "pending_payment",
                        Outcome::Review => "payment_review",
                        Outcome::SuspectedFraud => "fraud",
                        Outcome::Accepted => "processing",
                        Outcome::Rejected | Outcome::Failed | Outcome::Canceled => "canceled",
                        Outcome::Refunded => "closed",
                    }
                    .to_owned(),
                )
            };
            (o, status)
        })
        .collect()
}

/// Where secrets are looked up; separated so tests need not touch the
/// process environment.
#[derive(Debug, Clone, Default)]
pub struct SecretEnv {
    pub credentials_directory: Option<PathBuf>,
    /// Relative `*_file` paths are resolved against this directory (the
    /// config file's own).
    pub base_dir: Option<PathBuf>,
}

impl SecretEnv {
    pub fn from_process(config_path: Option<&Path>) -> Self {
        SecretEnv {
            credentials_directory: std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from),
            base_dir: config_path.and_then(|p| p.parent().map(Path::to_path_buf)),
        }
    }
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
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError::Toml(e.to_string()))?;
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
        let _ = writeln!(out, "database    {}", self.database.display());
        let _ = writeln!(out, "body limit  {} bytes", self.body_limit);
        let _ = writeln!(
            out,
            "http        up to {} connections, headers within {}, body within {}, drain {}",
            self.http.max_connections,
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
            "retries     {} (±{:.0}% jitter, {} in all)",
            schedule.join(", "),
            self.dispatch.jitter * 100.0,
            format_duration(total)
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
        }
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
            }
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
    };
    if writer.queue == 0 {
        return Err(invalid("writer.queue", "must be at least 1"));
    }
    if writer.batch_max == 0 {
        return Err(invalid("writer.batch_max", "must be at least 1"));
    }
    let dispatch = resolve_dispatch(raw.dispatch)?;
    let http = resolve_http(raw.http)?;
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
    let mut warnings = Vec::new();
    if let Some(admin) = admin_listen {
        if !admin.ip().is_loopback() {
            warnings.push(format!(
                "admin.listen {admin} is not a loopback address: /metrics and /readyz will be reachable from the network"
            ));
        }
    }

    let mut shops = Vec::new();
    for (i, shop) in raw.shops.into_iter().enumerate() {
        let resolved = resolve_shop(i, shop, env, &mut warnings)?;
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
    Ok(Config {
        listen,
        database: raw.database,
        body_limit: raw.body_limit,
        admin_listen,
        http,
        admin_token,
        writer,
        dispatch,
        sources,
        shops,
        warnings,
    })
}

fn resolve_http(raw: RawHttp) -> Result<crate::http::Limits, ConfigError> {
    let defaults = crate::http::Limits::default();
    let duration = |key: &str, value: Option<String>, default: Duration| match value {
        Some(v) => parse_duration(&v).map_err(|p| invalid(format!("http.{key}"), p)),
        None => Ok(default),
    };
    let max_connections = raw.max_connections.unwrap_or(defaults.max_connections);
    if max_connections == 0 {
        return Err(invalid("http.max_connections", "must be at least 1"));
    }
    Ok(crate::http::Limits {
        max_connections,
        header_read_timeout: duration(
            "header_read_timeout",
            raw.header_read_timeout,
            defaults.header_read_timeout,
        )?,
        body_read_timeout: duration(
            "body_read_timeout",
            raw.body_read_timeout,
            defaults.body_read_timeout,
        )?,
        drain_timeout: duration("drain_timeout", raw.drain_timeout, defaults.drain_timeout)?,
    })
}

fn resolve_dispatch(raw: RawDispatch) -> Result<DispatchConfig, ConfigError> {
    let retry_schedule = match raw.retry_schedule {
        None => ["5s", "1m", "5m", "30m", "2h", "5h", "10h", "10h"]
            .iter()
            .map(|s| parse_duration(s).expect("default schedule parses"))
            .collect(),
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, s)| {
                parse_duration(s).map_err(|p| invalid(format!("dispatch.retry_schedule[{i}]"), p))
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let jitter = raw.jitter.unwrap_or(0.2);
    if !(0.0..=0.5).contains(&jitter) {
        return Err(invalid("dispatch.jitter", "must be between 0.0 and 0.5"));
    }
    let poll_interval = match raw.poll_interval {
        Some(s) => parse_duration(&s).map_err(|p| invalid("dispatch.poll_interval", p))?,
        None => Duration::from_secs(1),
    };
    Ok(DispatchConfig {
        retry_schedule,
        jitter,
        poll_interval,
    })
}

fn resolve_source(
    i: usize,
    raw: RawSource,
    env: &SecretEnv,
    shops: &[ShopConfig],
) -> Result<SourceConfig, ConfigError> {
    let key_prefix = format!("sources[{i}]");
    let kind = SourceKind::parse(&raw.kind).ok_or_else(|| {
        invalid(
            format!("{key_prefix}.kind"),
            format!(
                "unknown kind {:?} (expected \"lyra-form\", \"lyra-rest\", \"cybersource\", \"cybersource-cmos\" or \"mpgs\")",
                raw.kind
            ),
        )
    })?;
    if !raw.path.starts_with('/') {
        return Err(invalid(format!("{key_prefix}.path"), "must start with /"));
    }
    if raw.path.contains('?') {
        return Err(invalid(
            format!("{key_prefix}.path"),
            "must not contain a query (a cybersource-cmos token goes in token_credential)",
        ));
    }
    reject_foreign_fields(&key_prefix, kind, &raw)?;
    review::reject_foreign_fields(&key_prefix, kind, &raw)?;
    if let Some(shop) = &raw.shop {
        if !shops.iter().any(|s| &s.name == shop) {
            return Err(invalid(
                format!("{key_prefix}.shop"),
                format!("no [[shops]] named {shop:?}"),
            ));
        }
    }
    let resolved = match kind {
        SourceKind::LyraForm | SourceKind::LyraRest => resolve_lyra(&key_prefix, kind, &raw, env)?,
        SourceKind::Cybersource => resolve_cybersource(&key_prefix, &raw, env)?,
        SourceKind::CybersourceCmos => resolve_cmos(&key_prefix, &raw, env)?,
        SourceKind::Mpgs => resolve_mpgs(&key_prefix, &raw, env)?,
    };
    let review_api = review::resolve(&key_prefix, kind, &raw, &resolved, env)?;
    Ok(SourceConfig {
        review_api,
        name: raw.name.unwrap_or_else(|| format!("source{i}")),
        kind,
        path: raw.path,
        shop: raw.shop,
        site_id: raw.site_id,
        mode: resolved.mode,
        algorithm: resolved.algorithm,
        order_prefix: raw.order_prefix.unwrap_or_default(),
        key: resolved.key,
        key_origin: resolved.key_origin,
        settings: resolved.settings,
    })
}

/// The kind-specific part of a resolved source.
struct ResolvedAuth {
    mode: Mode,
    algorithm: SignAlgo,
    key: Secret,
    key_origin: SecretOrigin,
    settings: SourceSettings,
}

/// Every source key that only some kinds take, with those kinds: a key
/// given to another kind is an error rather than silently ignored.
fn reject_foreign_fields(
    key_prefix: &str,
    kind: SourceKind,
    raw: &RawSource,
) -> Result<(), ConfigError> {
    use SourceKind::*;
    let lyra: &[SourceKind] = &[LyraForm, LyraRest];
    let fields: [(&str, bool, &[SourceKind]); 26] = [
        ("site_id", raw.site_id.is_some(), lyra),
        ("mode", raw.mode.is_some(), lyra),
        ("algorithm", raw.algorithm.is_some(), &[LyraForm]),
        ("test_key", raw.test_key.is_some(), &[LyraForm]),
        ("test_key_file", raw.test_key_file.is_some(), &[LyraForm]),
        (
            "test_key_credential",
            raw.test_key_credential.is_some(),
            &[LyraForm],
        ),
        ("production_key", raw.production_key.is_some(), &[LyraForm]),
        (
            "production_key_file",
            raw.production_key_file.is_some(),
            &[LyraForm],
        ),
        (
            "production_key_credential",
            raw.production_key_credential.is_some(),
            &[LyraForm],
        ),
        ("test_password", raw.test_password.is_some(), &[LyraRest]),
        (
            "test_password_file",
            raw.test_password_file.is_some(),
            &[LyraRest],
        ),
        (
            "test_password_credential",
            raw.test_password_credential.is_some(),
            &[LyraRest],
        ),
        (
            "production_password",
            raw.production_password.is_some(),
            &[LyraRest],
        ),
        (
            "production_password_file",
            raw.production_password_file.is_some(),
            &[LyraRest],
        ),
        (
            "production_password_credential",
            raw.production_password_credential.is_some(),
            &[LyraRest],
        ),
        ("keys", raw.keys.is_some(), &[Cybersource]),
        (
            "timestamp_tolerance",
            raw.timestamp_tolerance.is_some(),
            &[Cybersource],
        ),
        (
            "organization_id",
            raw.organization_id.is_some(),
            &[Cybersource],
        ),
        ("token", raw.token.is_some(), &[CybersourceCmos]),
        ("token_file", raw.token_file.is_some(), &[CybersourceCmos]),
        (
            "token_credential",
            raw.token_credential.is_some(),
            &[CybersourceCmos],
        ),
        ("allow_from", raw.allow_from.is_some(), &[CybersourceCmos]),
        (
            "merchant_id",
            raw.merchant_id.is_some(),
            &[Cybersource, CybersourceCmos, Mpgs],
        ),
        (
            "secret",
            raw.secret.is_some() || raw.secret_file.is_some() || raw.secret_credential.is_some(),
            &[Mpgs],
        ),
        (
            "previous_secret",
            raw.previous_secret.is_some()
                || raw.previous_secret_file.is_some()
                || raw.previous_secret_credential.is_some(),
            &[Mpgs],
        ),
        ("order_ref", raw.order_ref.is_some(), &[Mpgs]),
    ];
    for (name, given, kinds) in fields {
        if given && !kinds.contains(&kind) {
            // The historical message for the mistake users make most.
            let problem = if name == "algorithm" && kind == LyraRest {
                "does not apply to lyra-rest (kr-hash is always HMAC-SHA-256)".to_owned()
            } else {
                format!("does not apply to kind {}", kind.as_str())
            };
            return Err(invalid(format!("{key_prefix}.{name}"), problem));
        }
    }
    Ok(())
}

fn resolve_lyra(
    key_prefix: &str,
    kind: SourceKind,
    raw: &RawSource,
    env: &SecretEnv,
) -> Result<ResolvedAuth, ConfigError> {
    let mode = match raw.mode.as_deref() {
        Some("TEST") => Mode::Test,
        Some("PRODUCTION") => Mode::Production,
        Some(other) => {
            return Err(invalid(
                format!("{key_prefix}.mode"),
                format!("{other:?} is not TEST or PRODUCTION"),
            ))
        }
        None => {
            return Err(invalid(
                format!("{key_prefix}.mode"),
                "is required (TEST or PRODUCTION)",
            ))
        }
    };
    let algorithm = match raw.algorithm.as_deref() {
        None | Some("HMAC-SHA-256") | Some("SHA-256") => SignAlgo::HmacSha256,
        Some("SHA-1") => SignAlgo::Sha1,
        Some(other) => {
            return Err(invalid(
                format!("{key_prefix}.algorithm"),
                format!("{other:?} is not \"SHA-1\" or \"HMAC-SHA-256\""),
            ))
        }
    };
    let (secret_name, inline, file, credential) = match (kind, mode) {
        (SourceKind::LyraForm, Mode::Test) => (
            "test_key",
            &raw.test_key,
            &raw.test_key_file,
            &raw.test_key_credential,
        ),
        (SourceKind::LyraForm, Mode::Production) => (
            "production_key",
            &raw.production_key,
            &raw.production_key_file,
            &raw.production_key_credential,
        ),
        (_, Mode::Test) => (
            "test_password",
            &raw.test_password,
            &raw.test_password_file,
            &raw.test_password_credential,
        ),
        (_, Mode::Production) => (
            "production_password",
            &raw.production_password,
            &raw.production_password_file,
            &raw.production_password_credential,
        ),
    };
    let (key, key_origin) = resolve_secret(
        &format!("{key_prefix}.{secret_name}"),
        inline.clone(),
        file.clone(),
        credential.clone(),
        env,
    )?
    .ok_or_else(|| {
        invalid(
            format!("{key_prefix}.{secret_name}"),
            format!(
                "mode {} needs {secret_name}, {secret_name}_file or {secret_name}_credential",
                mode.as_str()
            ),
        )
    })?;
    Ok(ResolvedAuth {
        mode,
        algorithm,
        key,
        key_origin,
        settings: SourceSettings::Lyra,
    })
}

fn resolve_cybersource(
    key_prefix: &str,
    raw: &RawSource,
    env: &SecretEnv,
) -> Result<ResolvedAuth, ConfigError> {
    let raw_keys = raw.keys.as_deref().unwrap_or_default();
    if raw_keys.is_empty() {
        return Err(invalid(
            format!("{key_prefix}.keys"),
            "cybersource needs at least one key: keys = [{ id = \"<keyId>\", secret_credential = \"…\" }]",
        ));
    }
    let mut keys: Vec<CybersourceKey> = Vec::new();
    // The first key's text stands as the source's `key` (see SourceConfig).
    let mut first_key = None;
    for (j, k) in raw_keys.iter().enumerate() {
        let name = format!("{key_prefix}.keys[{j}]");
        if k.id.trim().is_empty() {
            return Err(invalid(format!("{name}.id"), "is empty"));
        }
        if keys.iter().any(|other| other.id == k.id) {
            return Err(invalid(
                format!("{name}.id"),
                format!("{:?} is used twice", k.id),
            ));
        }
        let (text, origin) = resolve_secret(
            &format!("{name}.secret"),
            k.secret.clone(),
            k.secret_file.clone(),
            k.secret_credential.clone(),
            env,
        )?
        .ok_or_else(|| {
            invalid(
                format!("{name}.secret"),
                "needs secret, secret_file or secret_credential",
            )
        })?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.expose())
            .map_err(|_| {
                invalid(
                    format!("{name}.secret"),
                    "is not base64 (give the key exactly as Cybersource returned it at creation)",
                )
            })?;
        if bytes.is_empty() {
            return Err(invalid(format!("{name}.secret"), "decodes to an empty key"));
        }
        keys.push(CybersourceKey {
            id: k.id.clone(),
            key: SecretBytes(bytes),
            origin: origin.clone(),
        });
        first_key.get_or_insert((text, origin));
    }
    let timestamp_tolerance = match raw.timestamp_tolerance.as_deref() {
        None => Some(Duration::from_secs(
            crate::providers::cybersource::DEFAULT_TOLERANCE_SECS,
        )),
        Some("off") => None,
        Some(s) => Some(
            parse_duration(s)
                .map_err(|p| invalid(format!("{key_prefix}.timestamp_tolerance"), p))?,
        ),
    };
    let (key, key_origin) = first_key.expect("at least one key was resolved");
    Ok(ResolvedAuth {
        mode: Mode::Production,
        algorithm: SignAlgo::HmacSha256,
        key,
        key_origin,
        settings: SourceSettings::Cybersource(CybersourceSettings {
            keys,
            timestamp_tolerance,
            organization_id: raw.organization_id.clone(),
        }),
    })
}

fn resolve_cmos(
    key_prefix: &str,
    raw: &RawSource,
    env: &SecretEnv,
) -> Result<ResolvedAuth, ConfigError> {
    let (token, token_origin) = resolve_secret(
        &format!("{key_prefix}.token"),
        raw.token.clone(),
        raw.token_file.clone(),
        raw.token_credential.clone(),
        env,
    )?
    .ok_or_else(|| {
        invalid(
            format!("{key_prefix}.token"),
            "cybersource-cmos is not signed and needs token, token_file or token_credential",
        )
    })?;
    if token.expose().len() < 16 {
        return Err(invalid(
            format!("{key_prefix}.token"),
            "must be at least 16 characters: it is the only protection of an unsigned source",
        ));
    }
    let mut allow_from = Vec::new();
    for (j, net) in raw.allow_from.iter().flatten().enumerate() {
        allow_from.push(
            net.parse::<Cidr>()
                .map_err(|e| invalid(format!("{key_prefix}.allow_from[{j}]"), e.to_string()))?,
        );
    }
    Ok(ResolvedAuth {
        mode: Mode::Production,
        algorithm: SignAlgo::HmacSha256,
        key: token.clone(),
        key_origin: token_origin.clone(),
        settings: SourceSettings::CybersourceCmos(CmosSettings {
            token,
            token_origin,
            allow_from,
            merchant_id: raw.merchant_id.clone(),
        }),
    })
}

fn resolve_mpgs(
    key_prefix: &str,
    raw: &RawSource,
    env: &SecretEnv,
) -> Result<ResolvedAuth, ConfigError> {
    let current = resolve_secret(
        &format!("{key_prefix}.secret"),
        raw.secret.clone(),
        raw.secret_file.clone(),
        raw.secret_credential.clone(),
        env,
    )?
    .ok_or_else(|| {
        invalid(
            format!("{key_prefix}.secret"),
            "mpgs needs secret, secret_file or secret_credential (the Notification Secret from Merchant Administration)",
        )
    })?;
    let previous = resolve_secret(
        &format!("{key_prefix}.previous_secret"),
        raw.previous_secret.clone(),
        raw.previous_secret_file.clone(),
        raw.previous_secret_credential.clone(),
        env,
    )?;
    let order_ref = match raw.order_ref.as_deref() {
        None | Some("order.id") => OrderRefField::OrderId,
        Some("order.reference") => OrderRefField::OrderReference,
        Some(other) => {
            return Err(invalid(
                format!("{key_prefix}.order_ref"),
                format!("{other:?} is not \"order.id\" or \"order.reference\""),
            ))
        }
    };
    let (key, key_origin) = current.clone();
    Ok(ResolvedAuth {
        mode: Mode::Production,
        algorithm: SignAlgo::HmacSha256,
        key,
        key_origin,
        settings: SourceSettings::Mpgs(MpgsSettings {
            secrets: std::iter::once(current).chain(previous).collect(),
            merchant_id: raw.merchant_id.clone(),
            order_ref,
        }),
    })
}

fn resolve_shop(
    i: usize,
    raw: RawShop,
    env: &SecretEnv,
    warnings: &mut Vec<String>,
) -> Result<ShopConfig, ConfigError> {
    let key_prefix = format!("shops[{i}]");
    let kind = ShopKind::parse(&raw.kind).ok_or_else(|| {
        invalid(
            format!("{key_prefix}.kind"),
            format!(
                "unknown kind {:?} (expected openmage, opencart3, opencart4.0, opencart4.1, magento2 or webhook)",
                raw.kind
            ),
        )
    })?;
    if !(raw.base_url.starts_with("http://") || raw.base_url.starts_with("https://")) {
        return Err(invalid(
            format!("{key_prefix}.base_url"),
            "must start with http:// or https://",
        ));
    }
    let key = resolve_secret(
        &format!("{key_prefix}.key"),
        raw.key,
        raw.key_file,
        raw.key_credential,
        env,
    )?;
    let password = resolve_secret(
        &format!("{key_prefix}.password"),
        raw.password,
        raw.password_file,
        raw.password_credential,
        env,
    )?;
    let token = resolve_secret(
        &format!("{key_prefix}.token"),
        raw.token,
        raw.token_file,
        raw.token_credential,
        env,
    )?;
    let credential = match kind {
        ShopKind::Magento2 => {
            if token.is_none() && password.is_none() {
                return Err(invalid(
                    format!("{key_prefix}.password"),
                    "magento2 needs password (admin token flow) or token (integration token)",
                ));
            }
            password.map(|p| p.0)
        }
        _ => {
            let k = key.ok_or_else(|| {
                invalid(
                    format!("{key_prefix}.key"),
                    format!("{} needs key, key_file or key_credential", kind.as_str()),
                )
            })?;
            Some(k.0)
        }
    };
    let mut statuses = default_statuses(kind);
    for (name, value) in raw.statuses {
        let outcome = Outcome::parse(&name).ok_or_else(|| {
            invalid(format!("{key_prefix}.statuses.{name}"), "is not an outcome (pending, review, suspected_fraud, accepted, rejected, failed, canceled, refunded)")
        })?;
        let status = match (kind.is_opencart(), value) {
            (true, toml::Value::Integer(n)) if n > 0 && n <= u32::MAX as i64 => {
                ShopStatus::Id(n as u32)
            }
            (true, _) => {
                return Err(invalid(
                    format!("{key_prefix}.statuses.{name}"),
                    "must be a positive order_status_id",
                ))
            }
            (false, toml::Value::String(s)) if !s.is_empty() && s.len() <= 32 => {
                ShopStatus::Code(s)
            }
            (false, _) => {
                return Err(invalid(
                    format!("{key_prefix}.statuses.{name}"),
                    "must be a status code string of 1 to 32 characters",
                ))
            }
        };
        statuses.insert(outcome, status);
    }
    if matches!(kind, ShopKind::OpenMage | ShopKind::Magento2) {
        for o in [Outcome::Review, Outcome::SuspectedFraud] {
            if let ShopStatus::Code(code) = &statuses[&o] {
                if code == "payment_review" || code == "fraud" {
                    warnings.push(format!(
                        "{key_prefix}.statuses.{}: \"{code}\" belongs to the payment_review state, which no remote API can enter; ipnsync holds the order and sets this status on it, so the back office shows it without its Accept/Deny buttons. Consider \"holded\" or a custom status of the holded state.",
                        o.as_str()
                    ));
                }
            }
        }
    }
    if kind.is_opencart() {
        for o in [Outcome::Review, Outcome::SuspectedFraud] {
            if statuses[&o] == ShopStatus::Id(1) {
                warnings.push(format!(
                    "{key_prefix}.statuses.{}: OpenCart has no review status; {} orders will show as Pending (1). Create a custom status and set its id here.",
                    o.as_str(),
                    o.as_str()
                ));
            }
        }
    }
    let mut notify = Vec::new();
    for (j, name) in raw.notify.iter().enumerate() {
        notify.push(Outcome::parse(name).ok_or_else(|| {
            invalid(
                format!("{key_prefix}.notify[{j}]"),
                format!("{name:?} is not an outcome"),
            )
        })?);
    }
    let duration = |field: &str,
                    v: Option<String>,
                    default: u64|
     -> Result<Duration, ConfigError> {
        match v {
            Some(s) => parse_duration(&s).map_err(|p| invalid(format!("{key_prefix}.{field}"), p)),
            None => Ok(Duration::from_secs(default)),
        }
    };
    let concurrency = raw.concurrency.unwrap_or(4);
    if concurrency == 0 || concurrency > 64 {
        return Err(invalid(
            format!("{key_prefix}.concurrency"),
            "must be between 1 and 64",
        ));
    }
    Ok(ShopConfig {
        name: raw.name,
        kind,
        base_url: raw.base_url,
        username: raw.username.unwrap_or_else(|| "Default".into()),
        credential,
        token: token.map(|t| t.0),
        concurrency,
        timeout: duration("timeout", raw.timeout, 30)?,
        connect_timeout: duration("connect_timeout", raw.connect_timeout, 5)?,
        notify,
        statuses,
        store_id: raw.store_id.unwrap_or(0),
        language: raw.language.unwrap_or_else(|| "en-gb".into()),
        currency: raw.currency.unwrap_or_else(|| "USD".into()),
        lookup_by_increment_id: raw.lookup_by_increment_id.unwrap_or(true),
    })
}

/// `[admin] token`: at least 16 characters, since it is all that stands
/// between the loopback listener and operator actions on payments.
fn resolve_admin_token(
    raw: &RawAdmin,
    env: &SecretEnv,
) -> Result<Option<(Secret, SecretOrigin)>, ConfigError> {
    let token = resolve_secret(
        "admin.token",
        raw.token.clone(),
        raw.token_file.clone(),
        raw.token_credential.clone(),
        env,
    )?;
    if let Some((secret, _)) = &token {
        if secret.expose().chars().count() < 16 {
            return Err(invalid(
                "admin.token",
                "must be at least 16 characters (e.g. `openssl rand -hex 32`)",
            ));
        }
    }
    Ok(token)
}

fn resolve_secret(
    key: &str,
    inline: Option<String>,
    file: Option<PathBuf>,
    credential: Option<String>,
    env: &SecretEnv,
) -> Result<Option<(Secret, SecretOrigin)>, ConfigError> {
    let given = [inline.is_some(), file.is_some(), credential.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if given > 1 {
        return Err(invalid(
            key,
            format!("give only one of {key}, {key}_file, {key}_credential"),
        ));
    }
    let read = |path: &Path, what: String| -> Result<String, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| invalid(what.clone(), format!("cannot read {}: {e}", path.display())))?;
        // Files written with `echo` end in a newline; the plugins trim keys too.
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(invalid(what, format!("{} is empty", path.display())));
        }
        Ok(trimmed.to_owned())
    };
    if let Some(name) = credential {
        let dir = env.credentials_directory.as_ref().ok_or_else(|| {
            invalid(
                format!("{key}_credential"),
                "$CREDENTIALS_DIRECTORY is not set (use LoadCredential= in the systemd unit)",
            )
        })?;
        if name.contains('/') || name.is_empty() {
            return Err(invalid(
                format!("{key}_credential"),
                "must be a plain credential name",
            ));
        }
        let value = read(&dir.join(&name), format!("{key}_credential"))?;
        return Ok(Some((Secret(value), SecretOrigin::Credential(name))));
    }
    if let Some(path) = file {
        let path = match (&env.base_dir, path.is_relative()) {
            (Some(base), true) => base.join(path),
            _ => path,
        };
        let value = read(&path, format!("{key}_file"))?;
        return Ok(Some((Secret(value), SecretOrigin::File(path))));
    }
    if let Some(value) = inline {
        let value = value.trim().to_owned();
        if value.is_empty() {
            return Err(invalid(key, "is empty"));
        }
        return Ok(Some((Secret(value), SecretOrigin::Inline)));
    }
    Ok(None)
}

/// Parses `250ms`, `5s`, `10m`, `2h`, `1d`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{s:?} needs a unit (ms, s, m, h, d)"))?;
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s or 2h"))?;
    let secs = match unit {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("{s:?}: unit must be ms, s, m, h or d")),
    };
    Ok(Duration::from_secs(secs))
}

pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis() as u64;
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let s = ms / 1000;
    if s != 0 && s % 86400 == 0 {
        format!("{}d", s / 86400)
    } else if s != 0 && s % 3600 == 0 {
        format!("{}h", s / 3600)
    } else if s != 0 && s % 60 == 0 {
        format!("{}m", s / 60)
    } else {
        format!("{s}s")
    }
}

mod review;
pub use review::{CybersourceApi, LyraApi, ReviewApi};

#[cfg(test)]
mod tests;
