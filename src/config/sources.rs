//! `[[sources]]`: the notification endpoints, their kinds and what each
//! kind verifies with.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::confirm::{self, Confirm, MpgsApi};
use super::source_auth::{resolve_cmos, resolve_cybersource, resolve_lyra, resolve_mpgs};
use super::{
    invalid, review, ConfigError, ReviewApi, Secret, SecretBytes, SecretEnv, SecretOrigin,
    ShopConfig,
};
use crate::providers::cidr::Cidr;
use crate::providers::lyra::{Mode, SignAlgo};
use crate::providers::mpgs::OrderRefField;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSource {
    pub(super) name: Option<String>,
    pub(super) kind: String,
    pub(super) path: String,
    pub(super) shop: Option<String>,
    pub(super) site_id: Option<String>,
    pub(super) mode: Option<String>,
    pub(super) algorithm: Option<String>,
    pub(super) order_prefix: Option<String>,
    pub(super) test_key: Option<String>,
    pub(super) test_key_file: Option<PathBuf>,
    pub(super) test_key_credential: Option<String>,
    pub(super) production_key: Option<String>,
    pub(super) production_key_file: Option<PathBuf>,
    pub(super) production_key_credential: Option<String>,
    pub(super) test_password: Option<String>,
    pub(super) test_password_file: Option<PathBuf>,
    pub(super) test_password_credential: Option<String>,
    pub(super) production_password: Option<String>,
    pub(super) production_password_file: Option<PathBuf>,
    pub(super) production_password_credential: Option<String>,
    // cybersource
    pub(super) keys: Option<Vec<RawSigningKey>>,
    pub(super) timestamp_tolerance: Option<String>,
    pub(super) organization_id: Option<String>,
    // cybersource-cmos
    pub(super) token: Option<String>,
    pub(super) token_file: Option<PathBuf>,
    pub(super) token_credential: Option<String>,
    pub(super) allow_from: Option<Vec<String>>,
    // cybersource-cmos, mpgs
    pub(super) merchant_id: Option<String>,
    // mpgs
    pub(super) secret: Option<String>,
    pub(super) secret_file: Option<PathBuf>,
    pub(super) secret_credential: Option<String>,
    pub(super) previous_secret: Option<String>,
    pub(super) previous_secret_file: Option<PathBuf>,
    pub(super) previous_secret_credential: Option<String>,
    pub(super) order_ref: Option<String>,
    // review actions (see `config/review.rs`): lyra-form, lyra-rest
    pub(super) api_url: Option<String>,
    pub(super) rest_password: Option<String>,
    pub(super) rest_password_file: Option<PathBuf>,
    pub(super) rest_password_credential: Option<String>,
    // review actions: cybersource
    pub(super) api_host: Option<String>,
    pub(super) api_key_id: Option<String>,
    pub(super) api_shared_secret: Option<String>,
    pub(super) api_shared_secret_file: Option<PathBuf>,
    pub(super) api_shared_secret_credential: Option<String>,
    // review actions: all of the above
    pub(super) api_timeout: Option<String>,
    // lyra-form, lyra-rest: cancel a risk-rejected live authorisation at the
    // gateway automatically (default: on when the review API is configured)
    pub(super) cancel_at_gateway: Option<bool>,
    // confirmation (see `config/confirm.rs`): lyra-form, lyra-rest, mpgs
    pub(super) confirm: Option<String>,
    // cybersource-cmos: how long a decision may be missing from the
    // Conversion Detail Report before it is held for review
    pub(super) confirm_max_wait: Option<String>,
    // the Mastercard Gateway read API: mpgs
    pub(super) gateway_url: Option<String>,
    pub(super) api_version: Option<String>,
    pub(super) api_password: Option<String>,
    pub(super) api_password_file: Option<PathBuf>,
    pub(super) api_password_credential: Option<String>,
}

/// One Cybersource signing key: `{ id = "keyId", secret_credential = "…" }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSigningKey {
    pub(super) id: String,
    pub(super) secret: Option<String>,
    pub(super) secret_file: Option<PathBuf>,
    pub(super) secret_credential: Option<String>,
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
    /// Cancel at the gateway, automatically, a transaction still alive
    /// there whose risk verdict rejected the order (Lyra, through the
    /// review API). On by default when the review API is configured.
    pub cancel_at_gateway: bool,
    /// Which notifications wait for the gateway's confirmation before they
    /// move an order (`confirm`).
    pub confirm: Confirm,
    /// Mastercard Gateway Retrieve Order (`gateway_url`, `api_password`);
    /// `None` = not configured.
    pub mpgs_api: Option<MpgsApi>,
    /// `cybersource-cmos`: how long a held decision waits for the
    /// Conversion Detail Report to list it (`confirm_max_wait`).
    pub confirm_max_wait: std::time::Duration,
}

impl SourceConfig {
    /// Where every secret of the source comes from, by config key (for
    /// `check-config` and the inline-secret warning).
    pub fn secret_origins(&self) -> Vec<(String, &SecretOrigin)> {
        let mut origins = self.verification_secret_origins();
        if let Some(api) = &self.review_api {
            origins.push(api.secret_origin());
        }
        if let Some(api) = &self.mpgs_api {
            origins.push(("api_password".to_owned(), &api.password_origin));
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

pub(super) fn resolve_source(
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
    let has_lyra_api = matches!(review_api, Some(ReviewApi::Lyra(_)));
    let cancel_at_gateway = match raw.cancel_at_gateway {
        Some(true) if !has_lyra_api => {
            return Err(invalid(
                format!("{key_prefix}.cancel_at_gateway"),
                "needs the review API (api_url and rest_password): without it, the orders to cancel are listed by `ipnsync review list`",
            ))
        }
        Some(on) => on,
        None => has_lyra_api,
    };
    let mpgs_api = confirm::resolve_mpgs_api(&key_prefix, kind, &raw, env)?;
    let confirm = confirm::resolve_confirm(
        &key_prefix,
        kind,
        &raw,
        review_api.as_ref(),
        mpgs_api.as_ref(),
    )?;
    let confirm_max_wait = confirm::resolve_confirm_max_wait(&key_prefix, kind, &raw)?;
    Ok(SourceConfig {
        confirm_max_wait,
        review_api,
        cancel_at_gateway,
        confirm,
        mpgs_api,
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

/// `check-config` warnings for a TEST and a PRODUCTION Lyra source that
/// update the same shop without distinct order prefixes: their order
/// references share one namespace. The state machine keeps a TEST
/// notification from changing an order a PRODUCTION one moved, but a test
/// can still take a reference first (and a TEST key circulates widely).
pub(super) fn mode_mixing_warnings(sources: &[SourceConfig]) -> Vec<String> {
    let lyra = |s: &&SourceConfig| matches!(s.kind, SourceKind::LyraForm | SourceKind::LyraRest);
    let mut warnings = Vec::new();
    for test in sources.iter().filter(lyra).filter(|s| s.mode == Mode::Test) {
        let Some(shop) = &test.shop else { continue };
        for production in sources
            .iter()
            .filter(lyra)
            .filter(|s| s.mode == Mode::Production && s.shop.as_ref() == Some(shop))
        {
            if test.order_prefix == production.order_prefix {
                warnings.push(format!(
                    "sources {:?} (TEST) and {:?} (PRODUCTION) both update shop {shop:?} without distinct order prefixes (order_prefix): \
                     a TEST notification never changes an order a PRODUCTION one moved, but test and real orders share references; \
                     give the test source its own shop or an order_prefix",
                    test.name, production.name
                ));
            }
        }
    }
    warnings
}
