//! The retry schedule for shop pushes.

use std::time::Duration;

/// When to try again after the `attempt`-th failed attempt (1-based), or
/// `None` when the schedule is exhausted and the row goes dead.
///
/// The base delay is `schedule[attempt - 1]`, spread by ±`jitter` so that
/// rows which failed together (a shop outage) do not all return at once.
/// A shop's `Retry-After` is honoured but clamped to `[base, 2 × base]`:
/// a shop cannot make us hammer it, nor park a payment update for a day.
pub fn next_delay(
    schedule: &[Duration],
    jitter: f64,
    attempt: u32,
    retry_after: Option<Duration>,
    unit_random: f64,
) -> Option<Duration> {
    let base = *schedule.get(attempt.checked_sub(1)? as usize)?;
    let wanted = match retry_after {
        Some(ra) => ra.clamp(base, base * 2),
        None => base,
    };
    // unit_random in [0, 1) → factor in [1 - jitter, 1 + jitter).
    let factor = 1.0 + jitter * (2.0 * unit_random.clamp(0.0, 1.0) - 1.0);
    Some(wanted.mul_f64(factor.max(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schedule() -> Vec<Duration> {
        [5, 60, 300].map(Duration::from_secs).to_vec()
    }

    #[test]
    fn follows_schedule_then_gives_up() {
        let s = schedule();
        assert_eq!(
            next_delay(&s, 0.0, 1, None, 0.5),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            next_delay(&s, 0.0, 3, None, 0.5),
            Some(Duration::from_secs(300))
        );
        assert_eq!(next_delay(&s, 0.0, 4, None, 0.5), None);
        assert_eq!(next_delay(&s, 0.0, 0, None, 0.5), None);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let s = schedule();
        assert_eq!(
            next_delay(&s, 0.2, 2, None, 0.0),
            Some(Duration::from_secs(48))
        );
        let high = next_delay(&s, 0.2, 2, None, 0.999_999).unwrap();
        assert!(high < Duration::from_secs(72) && high > Duration::from_secs(71));
    }

    #[test]
    fn retry_after_is_clamped() {
        let s = schedule();
        assert_eq!(
            next_delay(&s, 0.0, 2, Some(Duration::from_secs(1)), 0.5),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            next_delay(&s, 0.0, 2, Some(Duration::from_secs(90)), 0.5),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            next_delay(&s, 0.0, 2, Some(Duration::from_secs(3600)), 0.5),
            Some(Duration::from_secs(120))
        );
    }
}
