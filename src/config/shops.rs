//! `[[shops]]`: the shops that receive decisions, and the status each
//! outcome sets.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::customer_text::CustomerTexts;
use super::magento::OrderRules;
use super::{invalid, parse_duration, resolve_secret, ConfigError, Secret, SecretEnv};
use crate::domain::Outcome;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawShop {
    pub(super) name: String,
    pub(super) kind: String,
    pub(super) base_url: String,
    pub(super) username: Option<String>,
    pub(super) key: Option<String>,
    pub(super) key_file: Option<PathBuf>,
    pub(super) key_credential: Option<String>,
    pub(super) password: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) password_credential: Option<String>,
    pub(super) token: Option<String>,
    pub(super) token_file: Option<PathBuf>,
    pub(super) token_credential: Option<String>,
    pub(super) concurrency: Option<usize>,
    pub(super) timeout: Option<String>,
    pub(super) connect_timeout: Option<String>,
    #[serde(default)]
    pub(super) notify: Vec<String>,
    #[serde(default)]
    pub(super) statuses: BTreeMap<String, toml::Value>,
    pub(super) store_id: Option<u32>,
    pub(super) language: Option<String>,
    pub(super) currency: Option<String>,
    pub(super) lookup_by_increment_id: Option<bool>,
    /// Compare amount and currency with the order before marking it paid.
    pub(super) amount_check: Option<bool>,
    /// Difference allowed by the amount check, in minor units.
    pub(super) amount_tolerance: Option<u32>,
    /// Customer-facing texts per outcome (see `customer_text.rs`).
    #[serde(default)]
    pub(super) customer_text: BTreeMap<String, String>,
    /// OpenMage / Magento 2: invoice accepted payments (default true).
    pub(super) invoice_on_accept: Option<bool>,
    /// OpenMage / Magento 2: custom statuses assigned to a state.
    #[serde(default)]
    pub(super) state_statuses: BTreeMap<String, Vec<String>>,
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
    /// The amount check before a push that marks an order paid: `None` when
    /// off, else the difference allowed, in minor units (currency rounding).
    pub amount_tolerance: Option<u32>,
    /// OpenMage / Magento 2: statuses per state, invoice on accept.
    pub order_rules: OrderRules,
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
                        // Statuses of the state the order is in (or
                        // put in) for the outcome: a new order is
                        // `pending`; ipnsync holds a review order.
                        Outcome::Pending => "pending",
                        Outcome::Review | Outcome::SuspectedFraud => "holded",
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

pub(super) fn resolve_shop(
    i: usize,
    raw: RawShop,
    env: &SecretEnv,
    warnings: &mut Vec<String>,
) -> Result<(ShopConfig, CustomerTexts), ConfigError> {
    let key_prefix = format!("shops[{i}]");
    // A source names its shop; an empty name would read as "log only" on
    // some paths and as a shop on others.
    if raw.name.trim().is_empty() {
        return Err(invalid(format!("{key_prefix}.name"), "must not be empty"));
    }
    let customer_texts = CustomerTexts::parse(&key_prefix, raw.customer_text)?;
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
    let order_rules = if matches!(kind, ShopKind::OpenMage | ShopKind::Magento2) {
        super::magento::resolve(
            &key_prefix,
            raw.invoice_on_accept,
            raw.state_statuses,
            &statuses,
        )?
    } else if raw.invoice_on_accept.is_some() || !raw.state_statuses.is_empty() {
        return Err(invalid(
            format!("{key_prefix}.invoice_on_accept"),
            "invoice_on_accept and state_statuses apply to openmage and magento2 only",
        ));
    } else {
        OrderRules::default()
    };
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
    let shop = ShopConfig {
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
        amount_tolerance: raw
            .amount_check
            .unwrap_or(true)
            .then(|| raw.amount_tolerance.unwrap_or(0)),
        order_rules,
    };
    Ok((shop, customer_texts))
}
