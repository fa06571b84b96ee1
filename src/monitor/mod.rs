//! Counters every stage updates, read by the summary (and later the stats topic).
//!
//! Plain atomics: each counter has one writer stage; readers take a snapshot.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Per-camera counters.
#[derive(Debug, Default)]
pub struct CameraStats {
    /// Frames the decoder produced.
    pub frames_decoded: AtomicU64,
    /// Frames chosen by the analytic-fps sampler.
    pub frames_sampled: AtomicU64,
    /// Sampled frames replaced before the pipeline took them (live sources only).
    pub frames_dropped: AtomicU64,
    /// Packets or frames that could not be decoded and were skipped.
    pub decode_errors: AtomicU64,
    /// Frames that went through the detector.
    pub frames_analysed: AtomicU64,
    /// Objects the detector found, summed over frames.
    pub detections: AtomicU64,
    /// Events this camera's rules produced.
    pub events: AtomicU64,
    /// Total inference time, microseconds (mean = this / frames_analysed).
    pub inference_us: AtomicU64,
}

/// A point-in-time copy of [`CameraStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct CameraSnapshot {
    pub frames_decoded: u64,
    pub frames_sampled: u64,
    pub frames_dropped: u64,
    pub decode_errors: u64,
    pub frames_analysed: u64,
    pub detections: u64,
    pub events: u64,
    pub inference_us: u64,
}

impl CameraStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    pub fn snapshot(&self) -> CameraSnapshot {
        CameraSnapshot {
            frames_decoded: self.frames_decoded.load(Relaxed),
            frames_sampled: self.frames_sampled.load(Relaxed),
            frames_dropped: self.frames_dropped.load(Relaxed),
            decode_errors: self.decode_errors.load(Relaxed),
            frames_analysed: self.frames_analysed.load(Relaxed),
            detections: self.detections.load(Relaxed),
            events: self.events.load(Relaxed),
            inference_us: self.inference_us.load(Relaxed),
        }
    }
}

impl CameraSnapshot {
    pub fn mean_inference_ms(&self) -> f64 {
        if self.frames_analysed == 0 {
            0.0
        } else {
            self.inference_us as f64 / self.frames_analysed as f64 / 1000.0
        }
    }
}
