//! Source settings for review actions: the gateway API that validates or
//! denies a payment held for review (`ipnsync review`, `/admin/orders/…`).
//!
//! Kept apart from the notification settings: a source verifies
//! notifications without any of this, and gets review actions only when its
//! API credentials are configured.

use std::time::Duration;

use base64::Engine;

use super::{
    invalid, parse_duration, resolve_secret, ConfigError, RawSource, ResolvedAuth, Secret,
    SecretBytes, SecretEnv, SecretOrigin, SourceKind,
};

/// The Lyra plugins wait 45 s; an operator waiting at a terminal or an
/// HTTP client behind a proxy is better served by a shorter default.
const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(30);

/// A source's review-action API.
#[derive(Debug, Clone)]
pub enum ReviewApi {
    Lyra(LyraApi),
    Cybersource(CybersourceApi),
}

/// Lyra REST API V4 (`Transaction/Validate`, `Transaction/CancelOrRefund`).
#[derive(Debug, Clone)]
pub struct LyraApi {
    /// The brand's REST base, ending in `/` (e.g.
    /// `https://api.payzen.eu/api-payment/`): the host cannot be derived
    /// from the brand, so it is configured.
    pub api_url: String,
    /// HTTP Basic user: the shop id, i.e. the source's `site_id`.
    pub shop_id: String,
    /// HTTP Basic password: the REST API password of the source's mode.
    pub password: Secret,
    pub password_origin: SecretOrigin,
    pub timeout: Duration,
}

/// Cybersource REST (`POST /risk/v1/decisions/{id}/actions`), HTTP
/// Signature authentication.
#[derive(Debug, Clone)]
pub struct CybersourceApi {
    /// Scheme and host, without a trailing `/` (e.g.
    /// `https://apitest.cybersource.com`).
    pub api_host: String,
    /// `v-c-merchant-id`.
    pub merchant_id: String,
    /// The REST shared-secret key's id (`keyid`).
    pub key_id: String,
    /// The shared secret, base64-decoded.
    pub shared_secret: SecretBytes,
    pub secret_origin: SecretOrigin,
    pub timeout: Duration,
}

impl ReviewApi {
    /// The gateway's name, for messages and the `review_actions` table.
    pub fn gateway(&self) -> &'static str {
        match self {
            ReviewApi::Lyra(_) => "lyra",
            ReviewApi::Cybersource(_) => "cybersource",
        }
    }

    pub fn secret_origin(&self) -> (String, &SecretOrigin) {
        match self {
            ReviewApi::Lyra(l) => ("rest_password".to_owned(), &l.password_origin),
            ReviewApi::Cybersource(c) => ("api_shared_secret".to_owned(), &c.secret_origin),
        }
    }

    /// One line for `check-config`, without the secret.
    pub fn summary(&self) -> String {
        match self {
            ReviewApi::Lyra(l) => format!(
                "Lyra REST {} as shop {} (password: {}), timeout {}",
                l.api_url,
                l.shop_id,
                l.password_origin,
                super::format_duration(l.timeout)
            ),
            ReviewApi::Cybersource(c) => format!(
                "Cybersource {} merchant {} key {} (secret: {}), timeout {}",
                c.api_host,
                c.merchant_id,
                c.key_id,
                c.secret_origin,
                super::format_duration(c.timeout)
            ),
        }
    }
}

/// Review keys given to a kind that has no review API are errors, not
/// silently ignored (as for the notification keys).
pub(super) fn reject_foreign_fields(
    key_prefix: &str,
    kind: SourceKind,
    raw: &RawSource,
) -> Result<(), ConfigError> {
    use SourceKind::*;
    let lyra: &[SourceKind] = &[LyraForm, LyraRest];
    let fields: [(&str, bool, &[SourceKind]); 6] = [
        ("api_url", raw.api_url.is_some(), lyra),
        ("cancel_at_gateway", raw.cancel_at_gateway.is_some(), lyra),
        (
            "rest_password",
            raw.rest_password.is_some()
                || raw.rest_password_file.is_some()
                || raw.rest_password_credential.is_some(),
            lyra,
        ),
        // cybersource-cmos: the REST API confirms posts (Conversion
        // Detail Report) and acts on cases
        (
            "api_host",
            raw.api_host.is_some(),
            &[Cybersource, CybersourceCmos],
        ),
        (
            "api_key_id",
            raw.api_key_id.is_some()
                || raw.api_shared_secret.is_some()
                || raw.api_shared_secret_file.is_some()
                || raw.api_shared_secret_credential.is_some(),
            &[Cybersource, CybersourceCmos],
        ),
        (
            "api_timeout",
            raw.api_timeout.is_some(),
            // mpgs: its read API (`config/confirm.rs`)
            &[LyraForm, LyraRest, Cybersource, CybersourceCmos, Mpgs],
        ),
    ];
    for (name, given, kinds) in fields {
        if given && !kinds.contains(&kind) {
            return Err(invalid(
                format!("{key_prefix}.{name}"),
                format!("does not apply to kind {}", kind.as_str()),
            ));
        }
    }
    Ok(())
}

/// The source's review API, `None` when none of its keys is given.
pub(super) fn resolve(
    key_prefix: &str,
    kind: SourceKind,
    raw: &RawSource,
    auth: &ResolvedAuth,
    env: &SecretEnv,
) -> Result<Option<ReviewApi>, ConfigError> {
    let timeout = match &raw.api_timeout {
        Some(s) => {
            parse_duration(s).map_err(|p| invalid(format!("{key_prefix}.api_timeout"), p))?
        }
        None => DEFAULT_API_TIMEOUT,
    };
    if timeout.is_zero() {
        return Err(invalid(
            format!("{key_prefix}.api_timeout"),
            "must be more than 0",
        ));
    }
    match kind {
        SourceKind::LyraForm | SourceKind::LyraRest => {
            resolve_lyra(key_prefix, kind, raw, auth, env, timeout)
        }
        SourceKind::Cybersource | SourceKind::CybersourceCmos => {
            resolve_cybersource(key_prefix, raw, env, timeout)
        }
        SourceKind::Mpgs => Ok(None),
    }
}

fn resolve_lyra(
    key_prefix: &str,
    kind: SourceKind,
    raw: &RawSource,
    auth: &ResolvedAuth,
    env: &SecretEnv,
    timeout: Duration,
) -> Result<Option<ReviewApi>, ConfigError> {
    let password = resolve_secret(
        &format!("{key_prefix}.rest_password"),
        raw.rest_password.clone(),
        raw.rest_password_file.clone(),
        raw.rest_password_credential.clone(),
        env,
    )?;
    let Some(api_url) = &raw.api_url else {
        if password.is_some() {
            return Err(invalid(
                format!("{key_prefix}.api_url"),
                "rest_password needs api_url, the brand's REST API base (e.g. https://api.payzen.eu/api-payment/)",
            ));
        }
        return Ok(None);
    };
    let api_url = base_url(&format!("{key_prefix}.api_url"), api_url)?;
    let api_url = if api_url.ends_with('/') {
        api_url
    } else {
        format!("{api_url}/")
    };
    let shop_id = raw.site_id.clone().ok_or_else(|| {
        invalid(
            format!("{key_prefix}.site_id"),
            "api_url needs site_id: it is the shop id of the REST API's Basic authentication",
        )
    })?;
    // A REST source's IPN password (kr-hash) is the REST API password of
    // its mode, so it serves for both unless another one is given.
    let (password, password_origin) = match (password, kind) {
        (Some(p), _) => p,
        (None, SourceKind::LyraRest) => (auth.key.clone(), auth.key_origin.clone()),
        (None, _) => {
            return Err(invalid(
                format!("{key_prefix}.rest_password"),
                "api_url needs rest_password, rest_password_file or rest_password_credential (the REST API password of the source's mode)",
            ))
        }
    };
    Ok(Some(ReviewApi::Lyra(LyraApi {
        api_url,
        shop_id,
        password,
        password_origin,
        timeout,
    })))
}

fn resolve_cybersource(
    key_prefix: &str,
    raw: &RawSource,
    env: &SecretEnv,
    timeout: Duration,
) -> Result<Option<ReviewApi>, ConfigError> {
    let secret = resolve_secret(
        &format!("{key_prefix}.api_shared_secret"),
        raw.api_shared_secret.clone(),
        raw.api_shared_secret_file.clone(),
        raw.api_shared_secret_credential.clone(),
        env,
    )?;
    if raw.api_host.is_none() && raw.api_key_id.is_none() && secret.is_none() {
        return Ok(None);
    }
    let required = |name: &str, v: &Option<String>| {
        v.clone().filter(|v| !v.trim().is_empty()).ok_or_else(|| {
            invalid(
                format!("{key_prefix}.{name}"),
                "review actions need api_host, merchant_id, api_key_id and api_shared_secret",
            )
        })
    };
    let api_host = base_url(
        &format!("{key_prefix}.api_host"),
        &required("api_host", &raw.api_host)?,
    )?;
    let merchant_id = required("merchant_id", &raw.merchant_id)?;
    let key_id = required("api_key_id", &raw.api_key_id)?;
    let (text, secret_origin) = secret.ok_or_else(|| {
        invalid(
            format!("{key_prefix}.api_shared_secret"),
            "review actions need api_shared_secret, api_shared_secret_file or api_shared_secret_credential",
        )
    })?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.expose())
        .map_err(|_| {
            invalid(
                format!("{key_prefix}.api_shared_secret"),
                "is not base64 (give the shared secret exactly as the Business Center showed it)",
            )
        })?;
    if bytes.is_empty() {
        return Err(invalid(
            format!("{key_prefix}.api_shared_secret"),
            "decodes to an empty key",
        ));
    }
    Ok(Some(ReviewApi::Cybersource(CybersourceApi {
        api_host: api_host.trim_end_matches('/').to_owned(),
        merchant_id,
        key_id,
        shared_secret: SecretBytes(bytes),
        secret_origin,
        timeout,
    })))
}

/// An `http(s)://` URL without query or fragment.
fn base_url(key: &str, url: &str) -> Result<String, ConfigError> {
    let url = url.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| invalid(key, "must start with https:// (or http:// for a test)"))?;
    if rest.is_empty() || rest.starts_with('/') || rest.contains(['?', '#', '@']) {
        return Err(invalid(
            key,
            "must be a base URL like https://host/path/, without credentials, query or fragment",
        ));
    }
    Ok(url.to_owned())
}
