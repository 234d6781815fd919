//! `[[sources]]`: the notification endpoints and their kinds. One table
//! per kind (`RawSource`, tagged by `kind`, each variant
//! `deny_unknown_fields`: a key another kind takes is refused by
//! construction); `source_auth.rs` holds each kind's table and
//! verification settings, `review.rs` and `confirm.rs` the gateway APIs.
//! `SourceConfig::provider` is where a kind is registered with intake.

use serde::Deserialize;

use super::confirm::{self, Confirm, MpgsApi, MpgsApiKeys};
use super::review::{self, ReviewKeys};
use super::source_auth::{
    resolve_cmos, resolve_cybersource, resolve_lyra, resolve_mpgs, RawCmos, RawCybersource,
    RawLyraForm, RawLyraRest, RawMpgs, ResolvedAuth, SourceSettings,
};
use super::{invalid, ConfigError, ReviewApi, Secret, SecretEnv, SecretOrigin, ShopConfig};
use crate::providers::cybersource::cmos::source::CmosSource;
use crate::providers::cybersource::cmos::CmosVerifier;
use crate::providers::cybersource::source::WebhookSource;
use crate::providers::cybersource::SigningKey;
use crate::providers::lyra::source::{FormSource, RestSource};
use crate::providers::lyra::{FormVerifier, Mode, SignAlgo};
use crate::providers::mpgs::source::MpgsSource;
use crate::providers::{BodyFormat, Source};

/// One `[[sources]]` table, by `kind`.
#[derive(Debug, Deserialize)]
#[serde(tag = "kind")]
pub(super) enum RawSource {
    #[serde(rename = "lyra-form")]
    LyraForm(RawLyraForm),
    #[serde(rename = "lyra-rest")]
    LyraRest(RawLyraRest),
    #[serde(rename = "cybersource")]
    Cybersource(RawCybersource),
    #[serde(rename = "cybersource-cmos")]
    CybersourceCmos(RawCmos),
    #[serde(rename = "mpgs")]
    Mpgs(RawMpgs),
}

/// `$body` with `$r` bound to the kind's table, whatever the kind (for the
/// keys every kind has).
macro_rules! each_kind {
    ($raw:expr, $r:ident => $body:expr) => {
        match $raw {
            RawSource::LyraForm($r) => $body,
            RawSource::LyraRest($r) => $body,
            RawSource::Cybersource($r) => $body,
            RawSource::CybersourceCmos($r) => $body,
            RawSource::Mpgs($r) => $body,
        }
    };
}

impl RawSource {
    fn kind(&self) -> SourceKind {
        match self {
            RawSource::LyraForm(_) => SourceKind::LyraForm,
            RawSource::LyraRest(_) => SourceKind::LyraRest,
            RawSource::Cybersource(_) => SourceKind::Cybersource,
            RawSource::CybersourceCmos(_) => SourceKind::CybersourceCmos,
            RawSource::Mpgs(_) => SourceKind::Mpgs,
        }
    }

    /// The keys each kind's table takes, for the error that names a key
    /// given to the wrong kind (read from the tables' own declarations).
    fn fields(kind: SourceKind) -> &'static [&'static str] {
        match kind {
            SourceKind::LyraForm => fields::of::<RawLyraForm>(),
            SourceKind::LyraRest => fields::of::<RawLyraRest>(),
            SourceKind::Cybersource => fields::of::<RawCybersource>(),
            SourceKind::CybersourceCmos => fields::of::<RawCmos>(),
            SourceKind::Mpgs => fields::of::<RawMpgs>(),
        }
    }
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

    /// The body the kind receives: its provider's.
    pub fn body_format(self) -> BodyFormat {
        use crate::providers::{cybersource, lyra, mpgs};
        match self {
            SourceKind::LyraForm | SourceKind::LyraRest => lyra::source::BODY_FORMAT,
            SourceKind::Cybersource => cybersource::source::BODY_FORMAT,
            SourceKind::CybersourceCmos => cybersource::cmos::source::BODY_FORMAT,
            SourceKind::Mpgs => mpgs::source::BODY_FORMAT,
        }
    }
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
    /// `cybersource-cmos`, and `cybersource` case decision webhooks: how
    /// long a held decision waits for the Conversion Detail Report to list
    /// it (`confirm_max_wait`).
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

impl SourceConfig {
    /// The provider that verifies this source's requests: the one place a
    /// kind is registered with intake (`http/intake.rs` only calls the
    /// [`Source`] it gets). Borrows the source's settings; cheap, so built
    /// per request rather than kept beside the configuration.
    pub fn provider(&self) -> Box<dyn Source + Send + Sync + '_> {
        match (&self.settings, self.kind) {
            (SourceSettings::Lyra, SourceKind::LyraForm) => Box::new(FormSource {
                verifier: FormVerifier {
                    mode: self.mode,
                    algo: self.algorithm,
                    key: self.key.expose(),
                    site_id: self.site_id.as_deref(),
                },
            }),
            (SourceSettings::Lyra, _) => Box::new(RestSource {
                password: self.key.expose(),
                mode: self.mode,
                site_id: self.site_id.as_deref(),
            }),
            (SourceSettings::Cybersource(c), _) => Box::new(WebhookSource {
                keys: c
                    .keys
                    .iter()
                    .map(|k| SigningKey {
                        id: &k.id,
                        key: k.key.expose(),
                    })
                    .collect(),
                tolerance_secs: c.timestamp_tolerance.map(|d| d.as_secs()),
                organization_id: c.organization_id.as_deref(),
            }),
            (SourceSettings::CybersourceCmos(c), _) => Box::new(CmosSource {
                verifier: CmosVerifier {
                    token: c.token.expose(),
                    allow_from: &c.allow_from,
                },
                merchant_id: c.merchant_id.as_deref(),
            }),
            (SourceSettings::Mpgs(m), _) => Box::new(MpgsSource {
                secrets: m.secrets.iter().map(|(s, _)| s.expose()).collect(),
                merchant_id: m.merchant_id.as_deref(),
                order_ref: m.order_ref,
            }),
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
    let kind = raw.kind();
    let path = each_kind!(&raw, r => &r.path);
    if !path.starts_with('/') {
        return Err(invalid(format!("{key_prefix}.path"), "must start with /"));
    }
    if path.contains('?') {
        return Err(invalid(
            format!("{key_prefix}.path"),
            "must not contain a query (a cybersource-cmos token goes in token_credential)",
        ));
    }
    if let Some(shop) = each_kind!(&raw, r => &r.shop) {
        if !shops.iter().any(|s| &s.name == shop) {
            return Err(invalid(
                format!("{key_prefix}.shop"),
                format!("no [[shops]] named {shop:?}"),
            ));
        }
    }
    let prefix = key_prefix.as_str();
    // The kind's own keys: what it verifies with, then the gateway APIs it
    // may have (review actions, the Mastercard read API).
    let (resolved, site_id, review_keys, mpgs_keys, cancel_at_gateway): (
        ResolvedAuth,
        Option<&String>,
        ReviewKeys<'_>,
        Option<MpgsApiKeys<'_>>,
        Option<bool>,
    ) = match &raw {
        RawSource::LyraForm(r) => (
            resolve_lyra(
                prefix,
                r.mode.as_deref(),
                r.algorithm.as_deref(),
                (r.test_key(), r.production_key()),
                env,
            )?,
            r.site_id.as_ref(),
            ReviewKeys::Lyra {
                rest: false,
                api_url: r.api_url.as_deref(),
                password: r.rest_password(),
                site_id: r.site_id.as_deref(),
                api_timeout: r.api_timeout.as_deref(),
            },
            None,
            r.cancel_at_gateway,
        ),
        RawSource::LyraRest(r) => (
            resolve_lyra(
                prefix,
                r.mode.as_deref(),
                None,
                (r.test_password(), r.production_password()),
                env,
            )?,
            r.site_id.as_ref(),
            ReviewKeys::Lyra {
                rest: true,
                api_url: r.api_url.as_deref(),
                password: r.rest_password(),
                site_id: r.site_id.as_deref(),
                api_timeout: r.api_timeout.as_deref(),
            },
            None,
            r.cancel_at_gateway,
        ),
        RawSource::Cybersource(r) => (
            resolve_cybersource(prefix, r, env)?,
            None,
            ReviewKeys::Cybersource {
                api_host: r.api_host.as_deref(),
                api_key_id: r.api_key_id.as_deref(),
                secret: r.api_shared_secret(),
                merchant_id: r.merchant_id.as_deref(),
                api_timeout: r.api_timeout.as_deref(),
            },
            None,
            None,
        ),
        RawSource::CybersourceCmos(r) => (
            resolve_cmos(prefix, r, env)?,
            None,
            // The REST API confirms posts (Conversion Detail Report) and
            // acts on cases.
            ReviewKeys::Cybersource {
                api_host: r.api_host.as_deref(),
                api_key_id: r.api_key_id.as_deref(),
                secret: r.api_shared_secret(),
                merchant_id: r.merchant_id.as_deref(),
                api_timeout: r.api_timeout.as_deref(),
            },
            None,
            None,
        ),
        RawSource::Mpgs(r) => (
            resolve_mpgs(prefix, r, env)?,
            None,
            // Its API timeout is the read API's (`confirm.rs`), checked
            // here too as before.
            ReviewKeys::None {
                api_timeout: r.api_timeout.as_deref(),
            },
            Some(MpgsApiKeys {
                gateway_url: r.gateway_url.as_deref(),
                api_version: r.api_version.as_deref(),
                password: r.api_password(),
                merchant_id: r.merchant_id.as_deref(),
                api_timeout: r.api_timeout.as_deref(),
            }),
            None,
        ),
    };
    let review_api = review::resolve(prefix, review_keys, &resolved, env)?;
    let has_lyra_api = matches!(review_api, Some(ReviewApi::Lyra(_)));
    let cancel_at_gateway = match cancel_at_gateway {
        Some(true) if !has_lyra_api => {
            return Err(invalid(
                format!("{key_prefix}.cancel_at_gateway"),
                "needs the review API (api_url and rest_password): without it, the orders to cancel are listed by `ipnsync review list`",
            ))
        }
        Some(on) => on,
        None => has_lyra_api,
    };
    let mpgs_api = confirm::resolve_mpgs_api(prefix, mpgs_keys, env)?;
    let confirm = confirm::resolve_confirm(
        prefix,
        kind,
        each_kind!(&raw, r => r.confirm.as_deref()),
        review_api.as_ref(),
        mpgs_api.as_ref(),
    )?;
    let confirm_max_wait = confirm::resolve_confirm_max_wait(
        prefix,
        match &raw {
            RawSource::CybersourceCmos(r) => r.confirm_max_wait.as_deref(),
            RawSource::Cybersource(r) => r.confirm_max_wait.as_deref(),
            _ => None,
        },
    )?;
    let site_id = site_id.cloned();
    let (name, path, shop, order_prefix) =
        each_kind!(raw, r => (r.name, r.path, r.shop, r.order_prefix));
    Ok(SourceConfig {
        confirm_max_wait,
        review_api,
        cancel_at_gateway,
        confirm,
        mpgs_api,
        name: name.unwrap_or_else(|| format!("source{i}")),
        kind,
        path,
        shop,
        site_id,
        mode: resolved.mode,
        algorithm: resolved.algorithm,
        order_prefix: order_prefix.unwrap_or_default(),
        key: resolved.key,
        key_origin: resolved.key_origin,
        settings: resolved.settings,
    })
}

/// The clearer message for a `[[sources]]` table serde refused, when there
/// is one: an unknown `kind`, or a key that belongs to another kind
/// (`sources[1].keys: does not apply to kind mpgs`). `None` leaves serde's
/// own message (with its line and column) to the caller.
pub(super) fn explain_error(text: &str) -> Option<ConfigError> {
    let table: toml::Table = toml::from_str(text).ok()?;
    let sources = table.get("sources")?.as_array()?;
    for (i, source) in sources.iter().enumerate() {
        let Some(source) = source.as_table() else {
            continue;
        };
        let Some(kind) = source.get("kind").and_then(|k| k.as_str()) else {
            continue;
        };
        let Some(kind) = SourceKind::parse(kind) else {
            return Some(invalid(
                format!("sources[{i}].kind"),
                format!(
                    "unknown kind {kind:?} (expected \"lyra-form\", \"lyra-rest\", \"cybersource\", \"cybersource-cmos\" or \"mpgs\")"
                ),
            ));
        };
        let own = RawSource::fields(kind);
        let foreign = source.keys().find(|key| {
            key.as_str() != "kind"
                && !own.contains(&key.as_str())
                && SourceKind::ALL
                    .into_iter()
                    .any(|other| RawSource::fields(other).contains(&key.as_str()))
        });
        if let Some(key) = foreign {
            // The historical message for the mistake users make most.
            let problem = if key == "algorithm" && kind == SourceKind::LyraRest {
                "does not apply to lyra-rest (kr-hash is always HMAC-SHA-256)".to_owned()
            } else {
                format!("does not apply to kind {}", kind.as_str())
            };
            return Some(invalid(format!("sources[{i}].{key}"), problem));
        }
    }
    None
}

/// The field names a table struct declares, read from its `Deserialize`
/// impl (which hands them to `deserialize_struct`): the one list of which
/// kind takes which key is the struct itself.
mod fields {
    use std::cell::Cell;

    use serde::de::{self, Deserialize, Deserializer, Visitor};

    pub(super) fn of<T: for<'de> Deserialize<'de>>() -> &'static [&'static str] {
        let seen = Cell::new(&[][..]);
        let _ = T::deserialize(Probe(&seen));
        seen.get()
    }

    struct Probe<'a>(&'a Cell<&'static [&'static str]>);

    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = de::value::Error;

        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(de::Error::custom("only a struct's field names are read"))
        }

        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _name: &'static str,
            fields: &'static [&'static str],
            _visitor: V,
        ) -> Result<V::Value, Self::Error> {
            self.0.set(fields);
            Err(de::Error::custom("field names read"))
        }

        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
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

#[cfg(test)]
mod tests;
