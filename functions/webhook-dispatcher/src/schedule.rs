//! When a failed delivery is tried again: exponential steps over about a day (the schedule
//! Svix and Standard Webhooks senders use), each with ±20% jitter so an endpoint that comes back
//! after an outage is not hit by every delivery in the same second.

use std::time::Duration;

/// Delays after the 1st, 2nd, ... failed attempt: 8 attempts in all over about 27.5 hours.
pub const DEFAULT_DELAYS: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

#[derive(Debug, Clone)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
}

impl Default for RetrySchedule {
    fn default() -> Self {
        Self { delays: DEFAULT_DELAYS.to_vec() }
    }
}

impl RetrySchedule {
    /// A schedule of these delays (tests use zeros to retry at once).
    pub fn new(delays: Vec<Duration>) -> Self {
        Self { delays }
    }

    /// The delay before the next attempt after `failed` failed attempts (1 or more), jittered.
    pub fn delay_after(&self, failed: u32) -> Duration {
        let index = (failed.max(1) as usize - 1).min(self.delays.len().saturating_sub(1));
        let base = self.delays.get(index).copied().unwrap_or_default();
        base.mul_f64(0.8 + 0.4 * unit_random())
    }
}

/// A number in [0, 1).
fn unit_random() -> f64 {
    let mut bytes = [0u8; 4];
    // Without the OS's randomness the delay is simply not jittered.
    if getrandom::fill(&mut bytes).is_err() {
        return 0.5;
    }
    f64::from(u32::from_le_bytes(bytes)) / (f64::from(u32::MAX) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_schedule_spans_about_a_day_and_is_jittered() {
        let total: Duration = DEFAULT_DELAYS.iter().sum();
        assert!(total > Duration::from_secs(24 * 3600) && total < Duration::from_secs(30 * 3600), "{total:?}");
        let schedule = RetrySchedule::default();
        let delays: Vec<Duration> = (0..50).map(|_| schedule.delay_after(2)).collect();
        assert!(delays.iter().all(|d| *d >= Duration::from_secs(240) && *d <= Duration::from_secs(360)));
        assert!(delays.iter().any(|d| *d != delays[0]), "jitter varies the delay");
        // Past the end of the schedule, the last step repeats.
        assert!(schedule.delay_after(20) >= Duration::from_secs(8 * 3600));
    }
}
