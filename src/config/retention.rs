//! `[retention]`: what the background retention task removes, and when
//! (`store::retention`). Absent or empty = nothing is ever removed.

use std::time::Duration;

use serde::Deserialize;

use super::duration::parse_duration;
use super::{invalid, ConfigError};
use crate::store::retention::Policy;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetention {
    /// Raw bodies are cleared this long after they arrived ("90d").
    bodies_after: Option<String>,
    /// Notifications of closed orders are deleted this long after the
    /// order last moved ("400d").
    closed_orders_after: Option<String>,
    /// How often the task runs (default 1h).
    interval: Option<String>,
}

/// Less than this would remove what a platform may still be resending
/// (Lyra retries for days) or what an operator is still looking at.
const MIN_AGE: Duration = Duration::from_secs(86400);

pub(super) fn resolve(raw: Option<RawRetention>) -> Result<Option<Policy>, ConfigError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let age = |name: &str, v: &Option<String>| -> Result<Option<Duration>, ConfigError> {
        let Some(s) = v else { return Ok(None) };
        let d = parse_duration(s).map_err(|p| invalid(format!("retention.{name}"), p))?;
        if d < MIN_AGE {
            return Err(invalid(format!("retention.{name}"), "must be at least 1d"));
        }
        Ok(Some(d))
    };
    let bodies_after = age("bodies_after", &raw.bodies_after)?;
    let closed_orders_after = age("closed_orders_after", &raw.closed_orders_after)?;
    let every = match &raw.interval {
        Some(s) => {
            let d = parse_duration(s).map_err(|p| invalid("retention.interval", p))?;
            if d < Duration::from_secs(1) {
                return Err(invalid("retention.interval", "must be at least 1s"));
            }
            d
        }
        None => Duration::from_secs(3600),
    };
    if bodies_after.is_none() && closed_orders_after.is_none() {
        return Ok(None);
    }
    Ok(Some(Policy {
        bodies_after,
        closed_orders_after,
        every,
        pause: Duration::from_millis(20),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<Policy>, ConfigError> {
        resolve(Some(toml::from_str(text).unwrap()))
    }

    #[test]
    fn ages_and_interval() {
        let p = parse("bodies_after = \"90d\"\nclosed_orders_after = \"400d\"\ninterval = \"10m\"")
            .unwrap()
            .unwrap();
        assert_eq!(p.bodies_after, Some(Duration::from_secs(90 * 86400)));
        assert_eq!(
            p.closed_orders_after,
            Some(Duration::from_secs(400 * 86400))
        );
        assert_eq!(p.every, Duration::from_secs(600));
        assert_eq!(parse("").unwrap(), None, "nothing to remove: no task");
        assert_eq!(
            parse("bodies_after = \"30d\"").unwrap().unwrap().every,
            Duration::from_secs(3600)
        );
    }

    #[test]
    fn refuses_ages_under_a_day() {
        assert!(parse("bodies_after = \"2h\"").is_err());
        assert!(parse("closed_orders_after = \"0s\"").is_err());
        assert!(parse("bodies_after = \"90d\"\ninterval = \"0s\"").is_err());
    }
}
