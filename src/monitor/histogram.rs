//! A fixed-bucket, log-scale histogram of durations: lock-free to record,
//! cheap to copy, and two copies subtract to give the samples in between.
//!
//! Buckets are a quarter octave wide (each bound is 2^(1/4) ≈ 1.19 times the
//! previous), from 1 µs to 2^36 µs (about 19 h); longer samples share one
//! overflow bucket. A percentile is the geometric middle of the bucket the
//! rank falls in, so it is within ±9 % of the true value (never above the
//! largest sample recorded). 145 buckets: about 1.2 KiB per histogram.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Buckets per doubling of the value.
const PER_OCTAVE: u32 = 4;
/// Octaves covered above 1 µs.
const OCTAVES: u32 = 36;
/// Bucket count: bucket `i` holds samples in `(2^((i-1)/4), 2^(i/4)]` µs; the last one
/// everything above `2^36` µs.
pub const BUCKETS: usize = (PER_OCTAVE * OCTAVES + 1) as usize;

/// Recorded durations, bucketed. One writer or many: every update is a single atomic add.
pub struct Histogram {
    buckets: [AtomicU64; BUCKETS],
    count: AtomicU64,
    max_us: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            count: AtomicU64::new(0),
            max_us: AtomicU64::new(0),
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count())
            .field("max_us", &self.max_us())
            .finish()
    }
}

/// The bucket a sample of `us` microseconds falls in.
fn bucket_of(us: u64) -> usize {
    if us <= 1 {
        return 0;
    }
    let i = (PER_OCTAVE as f64 * (us as f64).log2()).ceil() as usize;
    // Floating point may put an exact bound one bucket high; bounds are inclusive.
    let i = if i > 0 && upper_bound_us(i - 1) >= us as f64 {
        i - 1
    } else {
        i
    };
    i.min(BUCKETS - 1)
}

/// The largest value of bucket `i`, microseconds.
fn upper_bound_us(i: usize) -> f64 {
    (i as f64 / PER_OCTAVE as f64).exp2()
}

impl Histogram {
    pub fn record(&self, d: Duration) {
        let us = d.as_micros().min(u64::MAX as u128) as u64;
        self.buckets[bucket_of(us)].fetch_add(1, Relaxed);
        self.count.fetch_add(1, Relaxed);
        self.max_us.fetch_max(us, Relaxed);
    }

    /// Samples recorded.
    pub fn count(&self) -> u64 {
        self.count.load(Relaxed)
    }

    /// The largest sample recorded, microseconds (0 if none).
    pub fn max_us(&self) -> u64 {
        self.max_us.load(Relaxed)
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Relaxed)),
            max_us: self.max_us(),
        }
    }
}

/// A copy of a [`Histogram`]'s buckets at one moment.
#[derive(Clone, PartialEq, Eq)]
pub struct HistogramSnapshot {
    buckets: [u64; BUCKETS],
    /// The largest sample recorded up to this moment (since the histogram was made).
    max_us: u64,
}

impl Default for HistogramSnapshot {
    fn default() -> Self {
        Self {
            buckets: [0; BUCKETS],
            max_us: 0,
        }
    }
}

impl std::fmt::Debug for HistogramSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HistogramSnapshot")
            .field("count", &self.count())
            .field("max_us", &self.max_us)
            .finish()
    }
}

impl HistogramSnapshot {
    /// Samples in this snapshot.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Adds `other`'s samples in (another camera's histogram: the node's total).
    pub fn merge(&mut self, other: &HistogramSnapshot) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.max_us = self.max_us.max(other.max_us);
    }

    /// The samples recorded after `earlier` (a snapshot of the same histogram).
    pub fn since(&self, earlier: &HistogramSnapshot) -> HistogramSnapshot {
        HistogramSnapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].saturating_sub(earlier.buckets[i])),
            max_us: self.max_us,
        }
    }

    /// The `q` quantile (`0.5`: median, `0.99`: p99) of the samples, estimated from
    /// the buckets; `None` when there are none.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n);
        let mut seen = 0;
        let i = self
            .buckets
            .iter()
            .position(|&b| {
                seen += b;
                seen >= rank
            })
            .unwrap_or(BUCKETS - 1);
        let estimate_us = match i {
            0 => 1.0,
            i if i == BUCKETS - 1 => self.max_us as f64,
            // The geometric middle of the bucket.
            i => upper_bound_us(i) * (-0.5 / PER_OCTAVE as f64).exp2(),
        };
        let estimate_us = if self.max_us > 0 {
            estimate_us.min(self.max_us as f64)
        } else {
            estimate_us
        };
        Some(Duration::from_secs_f64(estimate_us / 1e6))
    }

    /// [`HistogramSnapshot::quantile`] in milliseconds, rounded to 0.01 ms.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        self.quantile(q)
            .map(|d| (d.as_secs_f64() * 1e5).round() / 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: f64) -> Duration {
        Duration::from_secs_f64(v / 1000.0)
    }

    #[test]
    fn buckets_are_contiguous_and_bounds_inclusive() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1), 0);
        assert_eq!(bucket_of(2), 4);
        assert_eq!(bucket_of(1024), 40);
        assert_eq!(bucket_of(1025), 41);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        let mut prev = 0;
        for us in 1..200_000u64 {
            let b = bucket_of(us);
            // Below 8 µs buckets are narrower than 1 µs: some hold no whole number.
            assert!(b == prev || b == prev + 1 || us <= 8, "{us}: {prev} -> {b}");
            assert!(b >= prev, "{us}: {prev} -> {b}");
            assert!(
                us as f64 <= upper_bound_us(b) * (1.0 + 1e-12),
                "{us} above bucket {b}"
            );
            if b > 0 {
                assert!(us as f64 > upper_bound_us(b - 1), "{us} below bucket {b}");
            }
            prev = b;
        }
    }

    #[test]
    fn percentiles_of_a_uniform_spread_are_within_the_bucket_error() {
        let h = Histogram::default();
        assert_eq!(h.snapshot().quantile(0.5), None);
        for i in 1..=1000 {
            h.record(ms(i as f64));
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 1000);
        assert_eq!(h.count(), 1000);
        assert_eq!(h.max_us(), 1_000_000);
        let p50 = s.quantile_ms(0.5).unwrap();
        let p99 = s.quantile_ms(0.99).unwrap();
        assert!((p50 - 500.0).abs() <= 500.0 * 0.095, "p50 {p50}");
        assert!((p99 - 990.0).abs() <= 990.0 * 0.095, "p99 {p99}");
        assert!(p50 < p99);
        // Never above the largest sample.
        assert!(s.quantile_ms(1.0).unwrap() <= 1000.0);
    }

    #[test]
    fn a_tail_shows_in_p99_not_in_p50() {
        let h = Histogram::default();
        for _ in 0..980 {
            h.record(ms(20.0));
        }
        for _ in 0..20 {
            h.record(ms(400.0));
        }
        let s = h.snapshot();
        let p50 = s.quantile_ms(0.5).unwrap();
        let p99 = s.quantile_ms(0.99).unwrap();
        assert!((18.0..=22.0).contains(&p50), "{p50}");
        assert!((360.0..=400.0).contains(&p99), "{p99}");
    }

    #[test]
    fn a_window_holds_only_the_samples_after_the_earlier_snapshot() {
        let h = Histogram::default();
        for _ in 0..100 {
            h.record(ms(5.0));
        }
        let before = h.snapshot();
        for _ in 0..10 {
            h.record(ms(80.0));
        }
        let window = h.snapshot().since(&before);
        assert_eq!(window.count(), 10);
        let p50 = window.quantile_ms(0.5).unwrap();
        assert!((72.0..=80.0).contains(&p50), "{p50}");
        assert_eq!(h.snapshot().since(&h.snapshot()).quantile(0.5), None);
    }

    #[test]
    fn merged_snapshots_hold_both_cameras_samples() {
        let (a, b) = (Histogram::default(), Histogram::default());
        for _ in 0..90 {
            a.record(ms(10.0));
        }
        for _ in 0..10 {
            b.record(ms(200.0));
        }
        let mut total = a.snapshot();
        total.merge(&b.snapshot());
        assert_eq!(total.count(), 100);
        let p50 = total.quantile_ms(0.5).unwrap();
        assert!((9.0..=11.0).contains(&p50), "{p50}");
        let p99 = total.quantile_ms(0.99).unwrap();
        assert!((180.0..=200.0).contains(&p99), "{p99}");
    }

    #[test]
    fn beyond_the_last_bound_reports_the_maximum() {
        let h = Histogram::default();
        let long = Duration::from_secs(3 * 24 * 3600);
        h.record(long);
        assert_eq!(h.snapshot().quantile(0.5), Some(long));
    }
}
