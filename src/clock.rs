//! Time, injected: the one [`Clock`] every stage that needs the time of day
//! or elapsed time asks, so tests can move time on instead of sleeping.
//!
//! Two readings, because they answer different questions. [`Clock::wall`] is
//! the time of day (event timestamps, what is written into the outbox); it
//! can jump when NTP corrects it on a box without a real-time clock.
//! [`Clock::mono`] only moves forward at the rate of real time (rates, ages,
//! timeouts). [`SystemClock`] reads the system; [`ManualClock`] is moved by
//! hand.
//!
//! A leaf module: it imports nothing of the crate.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The time of day.
    fn wall(&self) -> SystemTime;
    /// A monotonic instant.
    fn mono(&self) -> Instant;
}

/// A shared clock handle, as stages hold it.
pub type SharedClock = Arc<dyn Clock>;

/// The system's clocks.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }
    fn mono(&self) -> Instant {
        Instant::now()
    }
}

/// The clock of a running node.
pub fn system() -> SharedClock {
    Arc::new(SystemClock)
}

/// A clock that moves only when told to. Both readings advance together with
/// [`ManualClock::advance`]; [`ManualClock::set_wall`] jumps the time of day
/// alone, as NTP does.
#[derive(Debug, Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<(SystemTime, Instant)>>,
}

impl ManualClock {
    /// A clock whose time of day starts at `wall`.
    pub fn new(wall: SystemTime) -> Self {
        Self {
            inner: Arc::new(Mutex::new((wall, Instant::now()))),
        }
    }

    pub fn advance(&self, d: Duration) {
        let mut t = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        t.0 += d;
        t.1 += d;
    }

    /// Sets the time of day; the monotonic reading does not move.
    pub fn set_wall(&self, wall: SystemTime) {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).0 = wall;
    }

    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn wall(&self) -> SystemTime {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).0
    }
    fn mono(&self) -> Instant {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_when_told() {
        let start = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let c = ManualClock::new(start);
        let m0 = c.mono();
        c.advance(Duration::from_secs(5));
        assert_eq!(c.wall(), start + Duration::from_secs(5));
        assert_eq!(c.mono() - m0, Duration::from_secs(5));
        // An NTP step back moves the time of day only.
        c.set_wall(start);
        assert_eq!(c.wall(), start);
        assert_eq!(c.mono() - m0, Duration::from_secs(5));
    }
}
