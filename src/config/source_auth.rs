//! The kind-specific part of a `[[sources]]` entry: what a Lyra,
//! Cybersource, Cybersource CMOS or MPGS source verifies notifications with.

use std::time::Duration;

use base64::Engine;

use super::sources::RawSource;
use super::{
    invalid, parse_duration, resolve_secret, CmosSettings, ConfigError, CybersourceKey,
    CybersourceSettings, MpgsSettings, Secret, SecretBytes, SecretEnv, SecretOrigin, SourceKind,
    SourceSettings,
};
use crate::providers::cidr::Cidr;
use crate::providers::lyra::{Mode, SignAlgo};
use crate::providers::mpgs::OrderRefField;

/// The kind-specific part of a resolved source.
pub(super) struct ResolvedAuth {
    pub(super) mode: Mode,
    pub(super) algorithm: SignAlgo,
    pub(super) key: Secret,
    pub(super) key_origin: SecretOrigin,
    pub(super) settings: SourceSettings,
}

pub(super) fn resolve_lyra(
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

pub(super) fn resolve_cybersource(
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

pub(super) fn resolve_cmos(
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

pub(super) fn resolve_mpgs(
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
