//! Source settings for confirmation: asking the gateway's own API whether a
//! notification tells the truth before the order moves (`confirm`), and the
//! Mastercard Gateway read API it needs (Retrieve Order, mpgs.md §4).
//!
//! Lyra reads through the review API's credentials (`api_url`,
//! `rest_password`: REST V4 `Transaction/Get`); Mastercard Gateway has no
//! review API, so its read API has its own keys here.

use std::time::Duration;

use super::secrets::RawSecret;
use super::{invalid, parse_duration, ConfigError, Secret};
use super::{ReviewApi, SecretEnv, SecretOrigin, SourceKind};

/// The Mastercard modules wait 30 s or more; a confirmation is retried
/// anyway, so a shorter default keeps a slow gateway from holding jobs.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);
/// The API version of the reference sample (mpgs.md §3).
const DEFAULT_MPGS_VERSION: &str = "78";

/// Which notifications wait for the gateway's answer before they move an
/// order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Confirm {
    /// Applied as they come (signature checks only).
    #[default]
    Off,
    /// Those that would make the order `accepted`: the forgery worth making.
    Success,
    /// Every notification that would move the order.
    All,
    /// Only what the signature leaves unauthenticated: a Cybersource
    /// webhook whose event type is outside the signature and whose signed
    /// payload carries no status (rule cs8), confirmed through transaction
    /// details instead of waiting in review. The default of a Cybersource
    /// source with its REST API. (`success` and `all` also do this.)
    Unsigned,
}

impl Confirm {
    pub fn as_str(self) -> &'static str {
        match self {
            Confirm::Off => "off",
            Confirm::Success => "success",
            Confirm::All => "all",
            Confirm::Unsigned => "unsigned",
        }
    }

    fn parse(s: &str) -> Option<Confirm> {
        [
            Confirm::Off,
            Confirm::Success,
            Confirm::All,
            Confirm::Unsigned,
        ]
        .into_iter()
        .find(|c| c.as_str() == s)
    }
}

/// Mastercard Gateway REST, read-only (Retrieve Order).
#[derive(Debug, Clone)]
pub struct MpgsApi {
    /// Scheme and host, without a trailing `/` (e.g.
    /// `https://test-gateway.mastercard.com`): per deployment or bank.
    pub gateway_url: String,
    /// The REST API version in the path (`/api/rest/version/<v>/`).
    pub version: String,
    /// `merchant.<merchant_id>` is the Basic user.
    pub merchant_id: String,
    pub password: Secret,
    pub password_origin: SecretOrigin,
    pub timeout: Duration,
}

impl MpgsApi {
    /// One line for `check-config`, without the secret.
    pub fn summary(&self) -> String {
        format!(
            "Mastercard Gateway {} API v{} as merchant.{} (password: {}), timeout {}",
            self.gateway_url,
            self.version,
            self.merchant_id,
            self.password_origin,
            super::format_duration(self.timeout)
        )
    }
}

/// An mpgs source's read-API keys, as its table gives them.
pub(super) struct MpgsApiKeys<'a> {
    pub(super) gateway_url: Option<&'a str>,
    pub(super) api_version: Option<&'a str>,
    pub(super) password: RawSecret<'a>,
    pub(super) merchant_id: Option<&'a str>,
    pub(super) api_timeout: Option<&'a str>,
}

/// The MPGS read API, `None` when none of its keys is given (or the kind
/// has none: `keys` is `None`).
pub(super) fn resolve_mpgs_api(
    key_prefix: &str,
    keys: Option<MpgsApiKeys<'_>>,
    env: &SecretEnv,
) -> Result<Option<MpgsApi>, ConfigError> {
    let Some(raw) = keys else {
        return Ok(None);
    };
    let password = raw.password.resolve(key_prefix, env)?;
    let given = raw.gateway_url.is_some() || raw.api_version.is_some() || password.is_some();
    if !given {
        return Ok(None);
    }
    let needs = "the Mastercard Gateway API needs gateway_url, merchant_id and api_password (or api_password_file / api_password_credential)";
    let url = raw
        .gateway_url
        .ok_or_else(|| invalid(format!("{key_prefix}.gateway_url"), needs))?
        .trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| {
            invalid(
                format!("{key_prefix}.gateway_url"),
                "must start with https:// (or http:// for a test)",
            )
        })?;
    if rest.trim_end_matches('/').is_empty() || rest.contains(['?', '#', '@']) {
        return Err(invalid(
            format!("{key_prefix}.gateway_url"),
            "must be a base URL like https://test-gateway.mastercard.com, without credentials, query or fragment",
        ));
    }
    let merchant_id = raw
        .merchant_id
        .filter(|m| !m.trim().is_empty())
        .map(str::to_owned)
        .ok_or_else(|| invalid(format!("{key_prefix}.merchant_id"), needs))?;
    let (password, password_origin) =
        password.ok_or_else(|| invalid(format!("{key_prefix}.api_password"), needs))?;
    let version = raw.api_version.unwrap_or(DEFAULT_MPGS_VERSION).to_owned();
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(
            format!("{key_prefix}.api_version"),
            "must be the API version number, e.g. \"78\"",
        ));
    }
    let timeout = match raw.api_timeout {
        Some(s) => {
            parse_duration(s).map_err(|p| invalid(format!("{key_prefix}.api_timeout"), p))?
        }
        None => DEFAULT_TIMEOUT,
    };
    if timeout.is_zero() {
        return Err(invalid(
            format!("{key_prefix}.api_timeout"),
            "must be more than 0",
        ));
    }
    Ok(Some(MpgsApi {
        gateway_url: url.trim_end_matches('/').to_owned(),
        version,
        merchant_id,
        password,
        password_origin,
        timeout,
    }))
}

/// The source's `confirm`: given, or the default (`success` for a
/// Mastercard Gateway source with its API, whose webhooks carry only a
/// static secret; `off` otherwise). A confirmation the source cannot make
/// is an error, not a silent `off`.
pub(super) fn resolve_confirm(
    key_prefix: &str,
    kind: SourceKind,
    given: Option<&str>,
    review_api: Option<&ReviewApi>,
    mpgs_api: Option<&MpgsApi>,
) -> Result<Confirm, ConfigError> {
    let key = format!("{key_prefix}.confirm");
    let can = match kind {
        SourceKind::LyraForm | SourceKind::LyraRest => {
            matches!(review_api, Some(ReviewApi::Lyra(_)))
        }
        SourceKind::Mpgs => mpgs_api.is_some(),
        // Webhooks: transaction details, with the review API's credentials.
        SourceKind::Cybersource => matches!(review_api, Some(ReviewApi::Cybersource(_))),
        // Posts: the Conversion Detail Report, with the same credentials.
        SourceKind::CybersourceCmos => matches!(review_api, Some(ReviewApi::Cybersource(_))),
    };
    let Some(given) = given else {
        return Ok(match kind {
            SourceKind::Mpgs if can => Confirm::Success,
            // The whole post is unsigned (a token and an address): every
            // decision it claims waits for the gateway's own record.
            SourceKind::CybersourceCmos if can => Confirm::All,
            // Only the webhooks rule cs8 would otherwise leave in review.
            SourceKind::Cybersource if can => Confirm::Unsigned,
            _ => Confirm::Off,
        });
    };
    let confirm = Confirm::parse(given).ok_or_else(|| {
        invalid(
            &key,
            format!(
                "unknown value {given:?} (expected \"off\", \"success\", \"all\" or \"unsigned\")"
            ),
        )
    })?;
    if kind == SourceKind::CybersourceCmos && confirm == Confirm::Unsigned {
        return Err(invalid(
            &key,
            "a cybersource-cmos post is unsigned as a whole: use \"all\" (every decision it claims) or \"success\" (only ACCEPT)",
        ));
    }
    if confirm != Confirm::Off && !can {
        let why = match kind {
            SourceKind::LyraForm | SourceKind::LyraRest => {
                "needs the Lyra REST API (api_url and rest_password): confirmation reads Transaction/Get"
            }
            SourceKind::Mpgs => {
                "needs the Mastercard Gateway API (gateway_url, merchant_id, api_password): confirmation reads Retrieve Order"
            }
            SourceKind::Cybersource => {
                "needs the Cybersource REST API (api_host, merchant_id, api_key_id, api_shared_secret): confirmation reads transaction details"
            }
            SourceKind::CybersourceCmos => {
                "needs the Cybersource REST API (api_host, merchant_id, api_key_id, api_shared_secret): confirmation reads the Conversion Detail Report"
            }
        };
        return Err(invalid(&key, why));
    }
    Ok(confirm)
}

/// How long a `cybersource-cmos` decision (or a `cybersource` case
/// decision webhook) waits for the Conversion Detail Report to list it
/// before it is held for review: reports lag behind the
/// analyst's click (hours at worst), and two days also cover a daemon or
/// gateway outage in between.
pub const DEFAULT_CMOS_MAX_WAIT: Duration = Duration::from_secs(2 * 86400);

/// `confirm_max_wait` (cybersource-cmos and cybersource only).
pub(super) fn resolve_confirm_max_wait(
    key_prefix: &str,
    given: Option<&str>,
) -> Result<Duration, ConfigError> {
    // Only the Cybersource tables have the key (the others refuse it).
    let key = format!("{key_prefix}.confirm_max_wait");
    let Some(given) = given else {
        return Ok(DEFAULT_CMOS_MAX_WAIT);
    };
    let d = parse_duration(given).map_err(|p| invalid(&key, p))?;
    if d.is_zero() {
        return Err(invalid(&key, "must be more than 0"));
    }
    Ok(d)
}

/// `[reconcile]`: the background task that asks the gateways about orders
/// still `pending` or `review` (absent = off; `ipnsync reconcile` works
/// either way).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconcileConfig {
    /// How often the task runs.
    pub interval: Duration,
    /// An order is asked about once it has not moved for this long: its
    /// notification had time to arrive (Lyra retries for about an hour).
    pub min_age: Duration,
    /// …and no longer once it has not moved for this long.
    pub max_age: Duration,
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawReconcile {
    interval: Option<String>,
    min_age: Option<String>,
    max_age: Option<String>,
}

pub(super) fn resolve_reconcile(
    raw: Option<RawReconcile>,
) -> Result<Option<ReconcileConfig>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let duration = |name: &str, v: &Option<String>, default: Duration| match v {
        Some(s) => {
            let d = parse_duration(s).map_err(|p| invalid(format!("reconcile.{name}"), p))?;
            if d.is_zero() {
                return Err(invalid(format!("reconcile.{name}"), "must be more than 0"));
            }
            Ok(d)
        }
        None => Ok(default),
    };
    let interval = duration("interval", &raw.interval, Duration::from_secs(15 * 60))?;
    let min_age = duration("min_age", &raw.min_age, Duration::from_secs(2 * 3600))?;
    let max_age = duration("max_age", &raw.max_age, Duration::from_secs(30 * 86400))?;
    if max_age <= min_age {
        return Err(invalid(
            "reconcile.max_age",
            "must be more than reconcile.min_age",
        ));
    }
    Ok(Some(ReconcileConfig {
        interval,
        min_age,
        max_age,
    }))
}

/// One `check-config` line: what the source can confirm and reconcile, and
/// which credentials it misses for that.
pub(super) fn capability(source: &super::SourceConfig, reconcile_on: bool) -> String {
    let can_read = match source.kind {
        SourceKind::LyraForm | SourceKind::LyraRest => {
            matches!(source.review_api, Some(ReviewApi::Lyra(_)))
        }
        SourceKind::Mpgs => source.mpgs_api.is_some(),
        SourceKind::Cybersource | SourceKind::CybersourceCmos => false,
    };
    if source.kind == SourceKind::CybersourceCmos {
        let reconcile = if reconcile_on {
            "yes"
        } else {
            "on demand (no [reconcile])"
        };
        return match &source.review_api {
            Some(ReviewApi::Cybersource(_)) => format!(
                "confirm: {} (Conversion Detail Report, held for review after {} without a record), reconcile: {reconcile} (Conversion Detail Report)",
                source.confirm.as_str(),
                super::format_duration(source.confirm_max_wait)
            ),
            _ => "confirm: off, reconcile: no (the post is unsigned: give api_host, merchant_id, api_key_id and api_shared_secret so that the Conversion Detail Report confirms it)".to_owned(),
        };
    }
    if source.kind == SourceKind::Cybersource {
        return match (&source.review_api, reconcile_on) {
            (Some(ReviewApi::Cybersource(_)), true) => {
                format!("confirm: {} (case decisions: Conversion Detail Report, held for review after {} without a record; other events: transaction details), reconcile: yes (Conversion Detail Report)", source.confirm.as_str(), super::format_duration(source.confirm_max_wait))
            }
            (Some(ReviewApi::Cybersource(_)), false) => {
                format!("confirm: {} (case decisions: Conversion Detail Report, held for review after {} without a record; other events: transaction details), reconcile: on demand (Conversion Detail Report; no [reconcile])", source.confirm.as_str(), super::format_duration(source.confirm_max_wait))
            }
            _ => "confirm: off, reconcile: no (needs api_host, merchant_id, api_key_id and api_shared_secret)".to_owned(),
        };
    }
    if !can_read {
        let missing = match source.kind {
            SourceKind::LyraForm | SourceKind::LyraRest => {
                "needs api_url and rest_password (Lyra REST V4)"
            }
            SourceKind::Mpgs => "needs gateway_url, merchant_id and api_password (Retrieve Order)",
            _ => "not supported for this kind yet",
        };
        return format!("confirm: off, reconcile: no ({missing})");
    }
    format!(
        "confirm: {}, reconcile: {}",
        source.confirm.as_str(),
        if reconcile_on {
            "yes"
        } else {
            "on demand (`ipnsync reconcile`; no [reconcile])"
        }
    )
}

#[cfg(test)]
mod tests {
    use super::super::{Config, SecretEnv};
    use super::*;

    fn parse(source: &str, extra: &str) -> Result<Config, ConfigError> {
        Config::parse(
            &format!("{extra}\n[[sources]]\n{source}\n"),
            &SecretEnv::default(),
        )
    }

    const MPGS: &str = r#"name = "m"
kind = "mpgs"
path = "/m"
secret = "mpgs-secret-0123456789abcdef0123"
merchant_id = "TESTMERCHANT01""#;
    const LYRA: &str = r#"name = "l"
kind = "lyra-form"
path = "/l"
site_id = "12345678"
mode = "TEST"
test_key = "1122334455667788""#;

    #[test]
    fn mpgs_confirms_successes_by_default_once_its_api_is_configured() {
        let c = parse(MPGS, "").unwrap();
        assert_eq!(c.sources[0].confirm, Confirm::Off);
        assert!(c.sources[0].mpgs_api.is_none());
        let with_api = format!(
            "{MPGS}\ngateway_url = \"https://test-gateway.mastercard.com/\"\napi_password = \"s3cr3t-api-pw\""
        );
        let c = parse(&with_api, "").unwrap();
        assert_eq!(c.sources[0].confirm, Confirm::Success);
        let api = c.sources[0].mpgs_api.as_ref().unwrap();
        assert_eq!(api.gateway_url, "https://test-gateway.mastercard.com");
        assert_eq!(api.version, "78");
        assert!(!api.summary().contains("s3cr3t"), "{}", api.summary());
        let off = format!("{with_api}\nconfirm = \"off\"");
        assert_eq!(parse(&off, "").unwrap().sources[0].confirm, Confirm::Off);
    }

    const CYBS: &str = r#"name = "c"
kind = "cybersource"
path = "/c"
keys = [{ id = "k", secret = "c2VjcmV0" }]"#;
    const CYBS_API: &str = r#"
api_host = "https://apitest.cybersource.com"
merchant_id = "mymid"
api_key_id = "08c94330-f618-42a3-b09d-e1e43be5efda"
api_shared_secret = "c2hhcmVkLXNlY3JldA==""#;

    #[test]
    fn cybersource_confirms_unsigned_event_types_by_default_once_its_api_is_configured() {
        assert_eq!(parse(CYBS, "").unwrap().sources[0].confirm, Confirm::Off);
        let with_api = format!("{CYBS}{CYBS_API}");
        let c = parse(&with_api, "").unwrap();
        assert_eq!(c.sources[0].confirm, Confirm::Unsigned);
        for given in ["off", "success", "all", "unsigned"] {
            let c = parse(&format!("{with_api}\nconfirm = \"{given}\""), "").unwrap();
            assert_eq!(c.sources[0].confirm.as_str(), given);
        }
        let e = parse(&format!("{CYBS}\nconfirm = \"unsigned\""), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("api_shared_secret"), "{e}");
    }

    #[test]
    fn a_cybersource_source_waits_confirm_max_wait_for_case_decisions_in_the_report() {
        let with_api = format!("{CYBS}{CYBS_API}");
        let s = &parse(&with_api, "").unwrap().sources[0];
        assert_eq!(s.confirm_max_wait, DEFAULT_CMOS_MAX_WAIT);
        assert_eq!(
            capability(s, false),
            "confirm: unsigned (case decisions: Conversion Detail Report, held for review after 2d without a record; other events: transaction details), reconcile: on demand (Conversion Detail Report; no [reconcile])"
        );
        let c = parse(&format!("{with_api}\nconfirm_max_wait = \"6h\""), "").unwrap();
        assert_eq!(c.sources[0].confirm_max_wait, Duration::from_secs(6 * 3600));
        let e = parse(&format!("{with_api}\nconfirm_max_wait = \"0s\""), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sources[0].confirm_max_wait"), "{e}");
    }

    const CMOS: &str = r#"name = "cm"
kind = "cybersource-cmos"
path = "/cm"
token = "cmos-token-0123456789abcdef"
merchant_id = "mymid""#;

    #[test]
    fn cmos_confirms_every_decision_through_the_report_once_its_api_is_configured() {
        let c = parse(CMOS, "").unwrap();
        assert_eq!(c.sources[0].confirm, Confirm::Off);
        assert!(
            capability(&c.sources[0], false)
                .contains("confirm: off, reconcile: no (the post is unsigned"),
            "{}",
            capability(&c.sources[0], false)
        );
        let api = CYBS_API.replace("merchant_id = \"mymid\"\n", "");
        let with_api = format!("{CMOS}{api}");
        let c = parse(&with_api, "").unwrap();
        let s = &c.sources[0];
        assert_eq!(s.confirm, Confirm::All, "the whole post is unsigned");
        assert_eq!(s.confirm_max_wait, DEFAULT_CMOS_MAX_WAIT);
        assert!(matches!(s.review_api, Some(ReviewApi::Cybersource(_))));
        assert_eq!(
            capability(s, true),
            "confirm: all (Conversion Detail Report, held for review after 2d without a record), reconcile: yes (Conversion Detail Report)"
        );
        let c = parse(
            &format!("{with_api}\nconfirm = \"success\"\nconfirm_max_wait = \"6h\""),
            "",
        )
        .unwrap();
        assert_eq!(c.sources[0].confirm, Confirm::Success);
        assert_eq!(c.sources[0].confirm_max_wait, Duration::from_secs(6 * 3600));
        let e = parse(&format!("{with_api}\nconfirm = \"unsigned\""), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unsigned as a whole"), "{e}");
        let e = parse(&format!("{CMOS}\nconfirm = \"all\""), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Conversion Detail Report"), "{e}");
        let e = parse(&format!("{with_api}\nconfirm_max_wait = \"0s\""), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("confirm_max_wait"), "{e}");
        let e = parse(&format!("{LYRA}\nconfirm_max_wait = \"1h\""), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not apply to kind lyra-form"), "{e}");
    }

    #[test]
    fn a_confirmation_the_source_cannot_make_is_an_error() {
        let e = parse(&format!("{LYRA}\nconfirm = \"success\""), "")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("sources[0].confirm") && e.contains("api_url"),
            "{e}"
        );
        let e = parse(&format!("{MPGS}\nconfirm = \"all\""), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("gateway_url"), "{e}");
        let e = parse(&format!("{MPGS}\nconfirm = \"sometimes\""), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unknown value"), "{e}");
        let e = parse(&format!("{MPGS}\ngateway_url = \"https://g\""), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("sources[0].api_password"), "{e}");
        let e = parse(&format!("{LYRA}\napi_password = \"x\""), "")
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not apply to kind lyra-form"), "{e}");
    }

    #[test]
    fn reconcile_is_off_unless_configured_and_checks_its_ages() {
        assert!(parse(LYRA, "").unwrap().reconcile.is_none());
        let r = parse(LYRA, "[reconcile]\n").unwrap().reconcile.unwrap();
        assert_eq!(r.interval, Duration::from_secs(900));
        assert_eq!(r.min_age, Duration::from_secs(7200));
        let e = parse(LYRA, "[reconcile]\nmin_age = \"2d\"\nmax_age = \"1d\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("reconcile.max_age"), "{e}");
    }
}
