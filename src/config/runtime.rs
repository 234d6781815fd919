//! The daemon's own sections: `[writer]`, `[dispatch]`, `[http]` and
//! `[admin]`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{
    invalid, parse_duration, resolve_secret, ConfigError, Secret, SecretEnv, SecretOrigin,
};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWriter {
    pub(super) queue: Option<usize>,
    pub(super) batch_max: Option<usize>,
    pub(super) sessions: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawHttp {
    pub(super) max_connections: Option<usize>,
    pub(super) max_connections_per_peer: Option<usize>,
    pub(super) header_read_timeout: Option<String>,
    pub(super) body_read_timeout: Option<String>,
    pub(super) drain_timeout: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    /// Address of the admin listener; `"off"` disables it.
    pub(super) listen: Option<String>,
    /// Bearer token of the `/admin/*` API; without one the API is off.
    pub(super) token: Option<String>,
    pub(super) token_file: Option<PathBuf>,
    pub(super) token_credential: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDispatch {
    pub(super) retry_schedule: Option<Vec<String>>,
    pub(super) jitter: Option<f64>,
    pub(super) poll_interval: Option<String>,
    pub(super) claim_lease: Option<String>,
}

/// Limits that protect the listener from slow or abusive clients.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Time allowed to send the request headers.
    pub header_read_timeout: Duration,
    /// Time allowed to send the body once headers are in.
    pub body_read_timeout: Duration,
    /// Connections served at once; more are closed at accept.
    pub max_connections: usize,
    /// Connections served at once from one peer address; more from it are
    /// closed at accept, so one address cannot take every slot. Behind a
    /// reverse proxy the peer is the proxy: raise it to `max_connections`.
    pub max_connections_per_peer: usize,
    /// Time in-flight requests get to finish at shutdown.
    pub drain_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            max_connections: 1024,
            max_connections_per_peer: DEFAULT_MAX_CONNECTIONS_PER_PEER,
            drain_timeout: Duration::from_secs(20),
        }
    }
}

/// Default per-peer cap: a quarter of the global limit (256 of 1024). More
/// than a platform's sender holds at once even in a burst (each
/// notification is one short request), and one abusive address still leaves
/// three quarters of the slots to everyone else.
pub const DEFAULT_MAX_CONNECTIONS_PER_PEER: usize = 256;

/// The per-peer cap when none is configured: a quarter of `max_connections`.
pub fn default_per_peer(max_connections: usize) -> usize {
    (max_connections / 4).max(1)
}

#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// Notifications that may wait for the writer before intake answers 503.
    pub queue: usize,
    /// Most notifications committed in one transaction.
    pub batch_max: usize,
    /// PostgreSQL: writer sessions committing batches side by side (each
    /// statement is a round trip to the server, so one session is bound
    /// by latency, not by the server). SQLite has one writer.
    pub sessions: usize,
}

#[derive(Debug, Clone)]
pub struct DispatchConfig {
    /// Delay before each retry; its length is the number of retries.
    pub retry_schedule: Vec<Duration>,
    /// ± fraction applied to each delay.
    pub jitter: f64,
    /// How often the dispatcher looks for due rows when nothing wakes it.
    pub poll_interval: Duration,
    /// Several daemons on one PostgreSQL: how long a daemon's claim on the
    /// update it pushes lasts without renewal (it renews at every look, so
    /// only a daemon that stopped lets it lapse; another one then takes the
    /// update over).
    pub claim_lease: Duration,
}

pub(super) fn resolve_http(raw: RawHttp) -> Result<Limits, ConfigError> {
    let defaults = Limits::default();
    let duration = |key: &str, value: Option<String>, default: Duration| match value {
        Some(v) => parse_duration(&v).map_err(|p| invalid(format!("http.{key}"), p)),
        None => Ok(default),
    };
    let max_connections = raw.max_connections.unwrap_or(defaults.max_connections);
    if max_connections == 0 {
        return Err(invalid("http.max_connections", "must be at least 1"));
    }
    // One address may not hold every slot; by default it gets a quarter.
    let max_connections_per_peer = match raw.max_connections_per_peer {
        None => default_per_peer(max_connections),
        Some(0) => {
            return Err(invalid(
                "http.max_connections_per_peer",
                "must be at least 1",
            ))
        }
        Some(n) if n > max_connections => {
            return Err(invalid(
                "http.max_connections_per_peer",
                format!("must not exceed http.max_connections ({max_connections})"),
            ))
        }
        Some(n) => n,
    };
    Ok(Limits {
        max_connections,
        max_connections_per_peer,
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

pub(super) fn resolve_dispatch(raw: RawDispatch) -> Result<DispatchConfig, ConfigError> {
    let retry_schedule = match raw.retry_schedule {
        None => ["5s", "1m", "5m", "30m", "2h", "5h", "10h", "10h", "10h"]
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
    let claim_lease = match raw.claim_lease {
        Some(s) => parse_duration(&s).map_err(|p| invalid("dispatch.claim_lease", p))?,
        None => Duration::from_secs(10).max(poll_interval * 3),
    };
    if claim_lease < poll_interval * 2 {
        return Err(invalid(
            "dispatch.claim_lease",
            "must be at least twice dispatch.poll_interval (a live daemon renews its claims at every look)",
        ));
    }
    Ok(DispatchConfig {
        retry_schedule,
        jitter,
        poll_interval,
        claim_lease,
    })
}

/// `[admin] token`: at least 16 characters, since it is all that stands
/// between the loopback listener and operator actions on payments.
pub(super) fn resolve_admin_token(
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

#[cfg(test)]
mod tests {
    use super::*;

    fn http(max: Option<usize>, per_peer: Option<usize>) -> Result<Limits, ConfigError> {
        resolve_http(RawHttp {
            max_connections: max,
            max_connections_per_peer: per_peer,
            ..RawHttp::default()
        })
    }

    #[test]
    fn the_per_peer_cap_defaults_below_the_global_limit_and_never_above_it() {
        let l = http(None, None).unwrap();
        assert_eq!(l.max_connections, 1024);
        assert_eq!(l.max_connections_per_peer, 256);
        assert_eq!(http(Some(10), None).unwrap().max_connections_per_peer, 2);
        assert_eq!(http(Some(2), None).unwrap().max_connections_per_peer, 1);
        assert_eq!(http(Some(10), Some(3)).unwrap().max_connections_per_peer, 3);
        let err = http(Some(10), Some(11)).unwrap_err().to_string();
        assert!(err.contains("http.max_connections_per_peer"), "{err}");
        assert!(http(None, Some(0)).is_err());
    }
}
