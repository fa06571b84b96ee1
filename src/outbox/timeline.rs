//! Jumps of the time of day, seen against the monotonic clock.
//!
//! Each row records the wall-clock time it was stored at, and its age is
//! measured against the time of day. A box without a real-time clock boots
//! in 1970 (or wherever its clock stopped) and steps to the real time when
//! NTP syncs; an operator may set the clock back. Rows stored before such a
//! step would look decades old (and be dropped by `max_age`) or young for
//! ever. So every reading of the clock is compared with the last one: when
//! the time of day moved more (or less) than monotonic time did, by more than
//! [`THRESHOLD`], that difference is a jump, and the rows stored in this run
//! before it are moved onto the new time line. Rows of earlier runs keep the
//! times they were stored with: nothing relates them to this run's clock.

use std::time::{Duration, Instant, SystemTime};

/// Differences below this are drift or slewing, not a jump.
pub const THRESHOLD: Duration = Duration::from_secs(2);

/// The last reading of both clocks.
#[derive(Debug, Clone, Copy)]
pub struct Timeline {
    wall: SystemTime,
    mono: Instant,
}

/// Signed milliseconds from `a` to `b`.
fn ms_between(a: SystemTime, b: SystemTime) -> i64 {
    match b.duration_since(a) {
        Ok(d) => d.as_millis().min(i64::MAX as u128) as i64,
        Err(e) => -(e.duration().as_millis().min(i64::MAX as u128) as i64),
    }
}

impl Timeline {
    pub fn new(wall: SystemTime, mono: Instant) -> Self {
        Self { wall, mono }
    }

    /// A new reading; the jump of the time of day since the last one in milliseconds
    /// (positive: forward), when it is more than [`THRESHOLD`].
    pub fn observe(&mut self, wall: SystemTime, mono: Instant) -> Option<i64> {
        let elapsed = mono.saturating_duration_since(self.mono).as_millis() as i64;
        let moved = ms_between(self.wall, wall);
        *self = Self { wall, mono };
        let jump = moved.saturating_sub(elapsed);
        (jump.unsigned_abs() > THRESHOLD.as_millis() as u64).then_some(jump)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jumps_are_what_the_time_of_day_did_beyond_elapsed_time() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let m0 = Instant::now();
        let s = Duration::from_secs;
        // (wall moved, mono moved, jump seen)
        for (wall, mono, jump) in [
            (t0 + s(10), m0 + s(10), None),
            (t0 + s(11), m0 + s(10), None),
            (t0 + s(3610), m0 + s(10), Some(3_600_000)),
            (t0, m0 + s(10), Some(-10_000)),
            (t0 + s(5), m0, Some(5_000)),
            (t0 - s(86_400), m0 + s(1), Some(-86_401_000)),
        ] {
            let mut t = Timeline::new(t0, m0);
            assert_eq!(t.observe(wall, mono), jump, "{wall:?} {mono:?}");
            // The next reading is measured from this one.
            assert_eq!(t.observe(wall + s(1), mono + s(1)), None);
        }
    }
}
