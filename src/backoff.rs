//! The one retry schedule: exponential backoff with jitter.
//!
//! The nominal wait starts at `min` and doubles after every failed attempt up
//! to `max`; each actual wait is drawn at random between half and all of the
//! nominal one ("equal jitter"), so boxes that lost the same broker or camera
//! at the same moment do not all come back at the same instant, and no wait
//! is ever longer than `max`. [`Backoff::reset`] after a success starts again
//! from `min`. Used by camera sources, the MQTT connection and the node's
//! restarts of failed stages.
//!
//! A leaf module: it imports nothing of the crate.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    attempt: u32,
    /// xorshift64 state: jitter only, no need for a real random source.
    seed: u64,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (std::process::id() as u64) << 32;
        Self::with_seed(min, max, seed)
    }

    /// The same schedule with a chosen jitter seed (tests).
    pub fn with_seed(min: Duration, max: Duration, seed: u64) -> Self {
        Self {
            min: min.min(max),
            max,
            attempt: 0,
            seed: seed | 1,
        }
    }

    /// The nominal wait of the next attempt (before jitter).
    pub fn nominal(&self) -> Duration {
        self.min
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.max)
    }

    /// The wait before the next attempt: in `[nominal / 2, nominal]`.
    pub fn next_delay(&mut self) -> Duration {
        let d = self.nominal();
        self.attempt = self.attempt.saturating_add(1);
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let unit = (self.seed >> 11) as f64 / (1u64 << 53) as f64;
        d.mul_f64(0.5 + 0.5 * unit)
    }

    /// Failed attempts since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_with_jitter_up_to_the_cap() {
        let mut b = Backoff::new(Duration::from_millis(500), Duration::from_secs(4));
        let waits: Vec<Duration> = (0..8).map(|_| b.next_delay()).collect();
        let caps = [500, 1000, 2000, 4000, 4000, 4000, 4000, 4000];
        for (w, cap) in waits.iter().zip(caps) {
            let cap = Duration::from_millis(cap);
            assert!(
                *w >= cap / 2 && *w <= cap,
                "{w:?} not in [{:?}, {cap:?}]",
                cap / 2
            );
        }
        // Jitter: the capped waits are not all equal.
        assert!(waits[4..].windows(2).any(|p| p[0] != p[1]), "{waits:?}");
        assert_eq!(b.attempts(), 8);
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(500));
    }

    #[test]
    fn jitter_covers_the_lower_half_too() {
        let mut seen_low = false;
        for seed in 0..64 {
            let mut b = Backoff::with_seed(Duration::from_secs(1), Duration::from_secs(1), seed);
            seen_low |= b.next_delay() < Duration::from_millis(750);
        }
        assert!(seen_low, "waits never fall below 3/4 of the nominal wait");
    }

    #[test]
    fn a_minimum_above_the_cap_is_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(10), Duration::from_secs(2));
        assert!(b.next_delay() <= Duration::from_secs(2));
    }
}
