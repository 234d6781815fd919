//! The retry schedule for shop pushes, and the clock it is measured with.
//!
//! A retry is stored as a wall-clock time (`next_attempt_at`, so that it
//! survives a restart and `ipnsync outbox` can show it), but the wall clock
//! jumps: set back a day, it would postpone a pending retry by a day; set
//! forward, it would fire every pending retry at once. So while the daemon
//! runs, [`RetryClock`] measures each wait it scheduled on the monotonic
//! clock, which does not jump, and the wall time only decides for rows it did
//! not schedule itself (queued by intake, retried by an operator, or left by
//! a previous run; for those `store::queries::due_rows` also treats a row
//! whose last attempt lies in the future as due: the clock went back).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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

/// The rule **a stray request gets its time**: after a request that went
/// out unanswered (a timeout, a dropped connection), the shop may still be
/// working on it — a PHP request runs on after its caller gave up — and
/// the next attempt reads the order to tell whether it was applied. Read
/// too soon, the order does not show it yet and the update is sent twice.
/// So that attempt waits at least the shop's own timeout: the stray
/// request had that long once, it gets as long again.
pub fn after_unanswered(delay: Duration, unanswered: bool, shop_timeout: Duration) -> Duration {
    if unanswered {
        delay.max(shop_timeout)
    } else {
        delay
    }
}

/// Where the retry schedule reads the time: the wall clock (Unix ms, what is
/// stored) and a monotonic clock (what waits are measured with). Injected in
/// tests.
pub trait Clock: Send + Sync {
    fn wall_ms(&self) -> i64;
    fn monotonic(&self) -> Instant;
}

/// The system's clocks.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall_ms(&self) -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }
    fn monotonic(&self) -> Instant {
        Instant::now()
    }
}

/// The dispatcher's view of time, immune to wall-clock jumps while the
/// daemon runs. Shared between the dispatch loop and its push tasks.
pub struct RetryClock {
    clock: Arc<dyn Clock>,
    /// Wall and monotonic time when the clock was created.
    anchor: (i64, Instant),
    /// Retries this process scheduled: outbox id → when it may go again.
    timers: Mutex<HashMap<i64, Instant>>,
}

impl RetryClock {
    pub fn new(clock: Arc<dyn Clock>) -> RetryClock {
        let anchor = (clock.wall_ms(), clock.monotonic());
        RetryClock {
            clock,
            anchor,
            timers: Mutex::default(),
        }
    }

    pub fn system() -> RetryClock {
        RetryClock::new(Arc::new(SystemClock))
    }

    /// The time to compare stored `next_attempt_at` values with: the wall
    /// clock, but never behind the wall time at start plus the monotonic time
    /// elapsed since, so a clock set back does not hide a due row. (A clock
    /// set forward lists rows early; [`RetryClock::may_go`] holds back the
    /// ones whose wait this process measures.)
    pub fn now_ms(&self) -> i64 {
        let elapsed = self
            .clock
            .monotonic()
            .saturating_duration_since(self.anchor.1);
        self.clock
            .wall_ms()
            .max(self.anchor.0 + elapsed.as_millis() as i64)
    }

    /// Records that row `outbox_id` failed and must wait until
    /// `next_attempt_at` (wall ms, as stored): the wait is measured from now
    /// on the monotonic clock.
    pub fn scheduled(&self, outbox_id: i64, next_attempt_at: i64) {
        let wait = Duration::from_millis((next_attempt_at - self.clock.wall_ms()).max(0) as u64);
        let due = self.clock.monotonic() + wait;
        self.timers
            .lock()
            .expect("retry timers")
            .insert(outbox_id, due);
    }

    /// Whether a row listed as due may be pushed now: a row whose retry this
    /// process scheduled waits for its full delay on the monotonic clock,
    /// whatever the wall clock says.
    pub fn may_go(&self, outbox_id: i64) -> bool {
        let mut timers = self.timers.lock().expect("retry timers");
        match timers.get(&outbox_id) {
            Some(due) if self.clock.monotonic() < *due => false,
            Some(_) => {
                timers.remove(&outbox_id);
                true
            }
            None => true,
        }
    }
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
    fn a_stray_request_gets_the_shop_timeout_before_the_next_look() {
        let (five, thirty) = (Duration::from_secs(5), Duration::from_secs(30));
        assert_eq!(after_unanswered(five, true, thirty), thirty);
        assert_eq!(after_unanswered(five, false, thirty), five);
        // A later step of the schedule is already longer: unchanged.
        assert_eq!(after_unanswered(thirty * 10, true, thirty), thirty * 10);
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

    /// A clock the test moves by hand.
    struct FakeClock {
        wall: Mutex<i64>,
        start: Instant,
        mono: Mutex<Duration>,
    }

    impl FakeClock {
        fn new(wall: i64) -> Arc<FakeClock> {
            Arc::new(FakeClock {
                wall: Mutex::new(wall),
                start: Instant::now(),
                mono: Mutex::new(Duration::ZERO),
            })
        }
        /// Time passes: both clocks move.
        fn pass(&self, d: Duration) {
            *self.wall.lock().unwrap() += d.as_millis() as i64;
            *self.mono.lock().unwrap() += d;
        }
        /// Someone sets the wall clock; the monotonic one does not move.
        fn set_wall(&self, by_ms: i64) {
            *self.wall.lock().unwrap() += by_ms;
        }
    }

    impl Clock for FakeClock {
        fn wall_ms(&self) -> i64 {
            *self.wall.lock().unwrap()
        }
        fn monotonic(&self) -> Instant {
            self.start + *self.mono.lock().unwrap()
        }
    }

    const DAY_MS: i64 = 86_400_000;
    const T0: i64 = 1_700_000_000_000;

    /// A retry scheduled 5 minutes out is due 5 minutes later, by a clock
    /// that was set back a day in between.
    #[test]
    fn a_clock_set_back_does_not_postpone_a_retry() {
        let fake = FakeClock::new(T0);
        let clock = RetryClock::new(fake.clone());
        let next_attempt_at = fake.wall_ms() + 300_000;
        clock.scheduled(7, next_attempt_at);
        fake.pass(Duration::from_secs(60));
        fake.set_wall(-DAY_MS);
        fake.pass(Duration::from_secs(239));
        assert!(clock.now_ms() < next_attempt_at, "not due yet");
        fake.pass(Duration::from_secs(1));
        assert!(
            clock.now_ms() >= next_attempt_at,
            "due after 5 minutes, though the wall clock reads a day earlier"
        );
        assert!(clock.may_go(7));
    }

    /// A clock set forward a day lists the row as due at once, but it waits
    /// for its 5 minutes all the same.
    #[test]
    fn a_clock_set_forward_does_not_bring_a_retry_forward() {
        let fake = FakeClock::new(T0);
        let clock = RetryClock::new(fake.clone());
        let next_attempt_at = fake.wall_ms() + 300_000;
        clock.scheduled(7, next_attempt_at);
        fake.set_wall(DAY_MS);
        assert!(clock.now_ms() >= next_attempt_at, "the wall clock says due");
        assert!(!clock.may_go(7), "the schedule says wait");
        fake.pass(Duration::from_secs(299));
        assert!(!clock.may_go(7));
        fake.pass(Duration::from_secs(1));
        assert!(clock.may_go(7), "due after its 5 minutes");
        assert!(clock.may_go(7), "and stays free (timer forgotten)");
    }

    #[test]
    fn rows_this_process_did_not_schedule_follow_the_stored_time() {
        let fake = FakeClock::new(T0);
        let clock = RetryClock::new(fake.clone());
        assert!(clock.may_go(1));
        assert_eq!(clock.now_ms(), T0);
        fake.pass(Duration::from_secs(2));
        assert_eq!(clock.now_ms(), T0 + 2000);
        fake.set_wall(DAY_MS);
        assert_eq!(
            clock.now_ms(),
            T0 + 2000 + DAY_MS,
            "a later wall clock wins"
        );
    }
}
