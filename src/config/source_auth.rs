//! The kind-specific part of a `[[sources]]` entry: each kind's table (the
//! keys it takes, `deny_unknown_fields`) and what a Lyra, Cybersource,
//! Cybersource CMOS or MPGS source verifies notifications with.
//!
//! Below `sources.rs`, which wires a whole source together: nothing here
//! knows about it.

use std::time::Duration;

use base64::Engine;
use serde::Deserialize;

use super::secrets::source_table;
use super::{invalid, parse_duration, ConfigError, Secret, SecretBytes, SecretEnv, SecretOrigin};
use crate::providers::cidr::Cidr;
use crate::providers::lyra::{Mode, SignAlgo};
use crate::providers::mpgs::OrderRefField;

source_table! {
    /// `kind = "lyra-form"`.
    RawLyraForm {
        site_id: Option<String>,
        mode: Option<String>,
        algorithm: Option<String>,
        // review actions (see `config/review.rs`)
        api_url: Option<String>,
        api_timeout: Option<String>,
        // cancel a risk-rejected live authorisation at the gateway
        // automatically (default: on when the review API is configured)
        cancel_at_gateway: Option<bool>,
    }
    secrets {
        test_key, test_key_file, test_key_credential;
        production_key, production_key_file, production_key_credential;
        rest_password, rest_password_file, rest_password_credential;
    }
}

source_table! {
    /// `kind = "lyra-rest"`.
    RawLyraRest {
        site_id: Option<String>,
        mode: Option<String>,
        // review actions (see `config/review.rs`)
        api_url: Option<String>,
        api_timeout: Option<String>,
        cancel_at_gateway: Option<bool>,
    }
    secrets {
        test_password, test_password_file, test_password_credential;
        production_password, production_password_file, production_password_credential;
        rest_password, rest_password_file, rest_password_credential;
    }
}

source_table! {
    /// `kind = "cybersource"`: REST webhooks.
    RawCybersource {
        keys: Option<Vec<RawSigningKey>>,
        timestamp_tolerance: Option<String>,
        organization_id: Option<String>,
        // review actions (see `config/review.rs`)
        merchant_id: Option<String>,
        api_host: Option<String>,
        api_key_id: Option<String>,
        api_timeout: Option<String>,
        // how long a case decision webhook may be missing from the
        // Conversion Detail Report before it is held for review
        confirm_max_wait: Option<String>,
    }
    secrets {
        api_shared_secret, api_shared_secret_file, api_shared_secret_credential;
    }
}

source_table! {
    /// `kind = "cybersource-cmos"`.
    RawCmos {
        allow_from: Option<Vec<String>>,
        merchant_id: Option<String>,
        // the REST API: confirmation through the Conversion Detail Report
        // and review actions (see `config/confirm.rs`, `config/review.rs`)
        api_host: Option<String>,
        api_key_id: Option<String>,
        api_timeout: Option<String>,
        // how long a decision may be missing from the Conversion Detail
        // Report before it is held for review
        confirm_max_wait: Option<String>,
    }
    secrets {
        token, token_file, token_credential;
        api_shared_secret, api_shared_secret_file, api_shared_secret_credential;
    }
}

source_table! {
    /// `kind = "mpgs"`.
    RawMpgs {
        merchant_id: Option<String>,
        order_ref: Option<String>,
        // the Mastercard Gateway read API (see `config/confirm.rs`)
        gateway_url: Option<String>,
        api_version: Option<String>,
        api_timeout: Option<String>,
    }
    secrets {
        secret, secret_file, secret_credential;
        previous_secret, previous_secret_file, previous_secret_credential;
        api_password, api_password_file, api_password_credential;
    }
}

/// One Cybersource signing key: `{ id = "keyId", secret_credential = "…" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSigningKey {
    pub(super) id: String,
    pub(super) secret: Option<String>,
    pub(super) secret_file: Option<std::path::PathBuf>,
    pub(super) secret_credential: Option<String>,
}

impl RawSigningKey {
    fn secret(&self) -> super::secrets::RawSecret<'_> {
        super::secrets::RawSecret {
            name: "secret",
            inline: &self.secret,
            file: &self.secret_file,
            credential: &self.secret_credential,
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

/// The kind-specific part of a resolved source.
pub(super) struct ResolvedAuth {
    pub(super) mode: Mode,
    pub(super) algorithm: SignAlgo,
    pub(super) key: Secret,
    pub(super) key_origin: SecretOrigin,
    pub(super) settings: SourceSettings,
}

/// A Lyra source's mode, algorithm and key: a form source's key or a REST
/// source's password, of the configured mode. `algorithm` is `None` for
/// lyra-rest (kr-hash is always HMAC-SHA-256).
pub(super) fn resolve_lyra(
    key_prefix: &str,
    mode: Option<&str>,
    algorithm: Option<&str>,
    (test, production): (super::secrets::RawSecret<'_>, super::secrets::RawSecret<'_>),
    env: &SecretEnv,
) -> Result<ResolvedAuth, ConfigError> {
    let mode = match mode {
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
    let algorithm = match algorithm {
        None | Some("HMAC-SHA-256") | Some("SHA-256") => SignAlgo::HmacSha256,
        Some("SHA-1") => SignAlgo::Sha1,
        Some(other) => {
            return Err(invalid(
                format!("{key_prefix}.algorithm"),
                format!("{other:?} is not \"SHA-1\" or \"HMAC-SHA-256\""),
            ))
        }
    };
    let secret = match mode {
        Mode::Test => test,
        Mode::Production => production,
    };
    let (key, key_origin) = secret.require(key_prefix, env, || {
        let name = secret.name;
        format!(
            "mode {} needs {name}, {name}_file or {name}_credential",
            mode.as_str()
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

pub(super) fn resolve_cybersource(
    key_prefix: &str,
    raw: &RawCybersource,
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
        let (text, origin) = k.secret().require(&name, env, || {
            "needs secret, secret_file or secret_credential".to_owned()
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

pub(super) fn resolve_cmos(
    key_prefix: &str,
    raw: &RawCmos,
    env: &SecretEnv,
) -> Result<ResolvedAuth, ConfigError> {
    let (token, token_origin) = raw.token().require(key_prefix, env, || {
        "cybersource-cmos is not signed and needs token, token_file or token_credential".to_owned()
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

pub(super) fn resolve_mpgs(
    key_prefix: &str,
    raw: &RawMpgs,
    env: &SecretEnv,
) -> Result<ResolvedAuth, ConfigError> {
    let current = raw.secret().require(key_prefix, env, || {
        "mpgs needs secret, secret_file or secret_credential (the Notification Secret from Merchant Administration)".to_owned()
    })?;
    let previous = raw.previous_secret().resolve(key_prefix, env)?;
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
