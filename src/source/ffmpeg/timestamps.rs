//! FFmpeg timestamps → stream time.
//!
//! In: a frame's timestamp in stream ticks, the stream's first timestamp and its
//! time base (seconds per tick, from the demuxer: any value a file or peer
//! sends, zero or negative included). Out: the frame's time since the first
//! frame, never negative and never past [`MAX_STREAM_TIME`], so later sums of
//! stream times cannot overflow.

use std::time::Duration;

/// Latest stream time handed on: about 136 years, far past any real stream, far
/// below what adding stream times together can overflow.
pub const MAX_STREAM_TIME: Duration = Duration::from_secs(1 << 32);

/// Seconds per tick of a `numerator / denominator` time base; `None` unless positive
/// and finite.
pub fn time_base(numerator: i32, denominator: i32) -> Option<f64> {
    let tb = f64::from(numerator) / f64::from(denominator);
    (tb.is_finite() && tb > 0.0).then_some(tb)
}

/// `seconds` as stream time: NaN and negatives are 0, anything past [`MAX_STREAM_TIME`]
/// is [`MAX_STREAM_TIME`].
pub fn clamp_secs(seconds: f64) -> Duration {
    if seconds.is_nan() || seconds <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(seconds)
        .unwrap_or(MAX_STREAM_TIME)
        .min(MAX_STREAM_TIME)
}

/// Stream time of timestamp `ts` in a stream whose first timestamp is `first`.
pub fn since_first(ts: i64, first: i64, time_base: f64) -> Duration {
    // i128: the difference of two i64 timestamps cannot overflow.
    clamp_secs((i128::from(ts) - i128::from(first)) as f64 * time_base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_and_extreme_timestamps() {
        let tb = time_base(1, 90_000).unwrap();
        assert_eq!(since_first(90_000 * 3, 0, tb), Duration::from_secs(3));
        assert_eq!(since_first(1000, 1000 + 90_000, tb), Duration::ZERO);
        assert_eq!(since_first(i64::MAX, i64::MIN, tb), MAX_STREAM_TIME);
        assert_eq!(since_first(i64::MIN, i64::MAX, tb), Duration::ZERO);
        for (num, den) in [(0, 1), (1, 0), (-1, 25), (1, -25), (0, 0), (i32::MIN, -1)] {
            let tb = time_base(num, den);
            assert!(tb.is_none_or(|t| t > 0.0 && t.is_finite()), "{num}/{den}");
        }
        assert_eq!(time_base(0, 0), None);
        assert_eq!(time_base(1, 0), None);
        assert_eq!(time_base(-1, 25), None);
        for s in [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -1.0,
            f64::MAX,
            1e300,
        ] {
            assert!(clamp_secs(s) <= MAX_STREAM_TIME, "{s}");
        }
        assert_eq!(clamp_secs(f64::INFINITY), MAX_STREAM_TIME);
        assert_eq!(clamp_secs(f64::NAN), Duration::ZERO);
    }

    proptest::proptest! {
        #[test]
        fn any_timestamps_and_time_base_give_a_bounded_time(
            ts in proptest::prelude::any::<i64>(),
            first in proptest::prelude::any::<i64>(),
            num in proptest::prelude::any::<i32>(),
            den in proptest::prelude::any::<i32>(),
        ) {
            if let Some(tb) = time_base(num, den) {
                let t = since_first(ts, first, tb);
                proptest::prop_assert!(t <= MAX_STREAM_TIME);
                // Two stream times added together (a reconnect's base plus a pts) still fit.
                proptest::prop_assert!(t.checked_add(MAX_STREAM_TIME).is_some());
                if ts <= first {
                    proptest::prop_assert_eq!(t, Duration::ZERO);
                }
            }
        }

        #[test]
        fn any_seconds_give_a_bounded_time(s in proptest::prelude::any::<f64>()) {
            proptest::prop_assert!(clamp_secs(s) <= MAX_STREAM_TIME);
        }
    }
}
