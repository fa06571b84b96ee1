//! Counters every stage updates and each camera's connection state, read by
//! the summary (and later the stats and status topics).
//!
//! Plain atomics: each counter has one writer stage; readers take a snapshot.
//! The state has one writer too (the camera's source runner); every change is
//! logged as a `camera state` line with the camera id and the reason.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// What a camera's source is doing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum CameraState {
    /// Opening the source (first time or after a failure).
    #[default]
    Connecting,
    /// Frames are arriving.
    Online,
    /// The source is open but no frame came for `stall_timeout_s`; it is being reopened.
    Stalled,
    /// The source cannot be reached or ended; it is retried after a backoff (live) or done (file).
    Offline,
    /// The camera gave up: the source can never work as configured (unreadable file, no video).
    Error(String),
}

impl CameraState {
    /// The state's name as published: `connecting`, `online`, `stalled`, `offline`, `error`.
    pub fn name(&self) -> &'static str {
        match self {
            CameraState::Connecting => "connecting",
            CameraState::Online => "online",
            CameraState::Stalled => "stalled",
            CameraState::Offline => "offline",
            CameraState::Error(_) => "error",
        }
    }
}

impl std::fmt::Display for CameraState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CameraState::Error(reason) => write!(f, "error({reason})"),
            other => f.write_str(other.name()),
        }
    }
}

/// Per-camera counters.
#[derive(Debug, Default)]
pub struct CameraStats {
    /// Frames the decoder produced.
    pub frames_decoded: AtomicU64,
    /// Frames chosen by the analytic-fps sampler.
    pub frames_sampled: AtomicU64,
    /// Sampled frames replaced before the pipeline took them (live sources only).
    pub frames_dropped: AtomicU64,
    /// Damaged data: packets or frames that could not be decoded (skipped), packets the
    /// demuxer flagged corrupt and frames decoded with errors concealed.
    pub decode_errors: AtomicU64,
    /// Frames that went through the detector.
    pub frames_analysed: AtomicU64,
    /// Objects the detector found, summed over frames.
    pub detections: AtomicU64,
    /// Events this camera's rules produced.
    pub events: AtomicU64,
    /// Total inference time, microseconds (mean = this / frames_analysed).
    pub inference_us: AtomicU64,
    /// Times the source was reopened after it failed, stalled or ended (live sources).
    pub reconnects: AtomicU64,
    /// Capture-to-detection latency summed over `latency_frames`, microseconds.
    pub latency_us: AtomicU64,
    /// The largest capture-to-detection latency seen, microseconds.
    pub latency_max_us: AtomicU64,
    /// Frames whose latency was measured (live and real-time sources).
    pub latency_frames: AtomicU64,
    /// The connection state, changed only through [`CameraStats::set_state`].
    state: Mutex<CameraState>,
}

/// A point-in-time copy of [`CameraStats`]' counters.
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
    pub reconnects: u64,
    pub latency_us: u64,
    pub latency_max_us: u64,
    pub latency_frames: u64,
}

impl CameraStats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Relaxed);
    }

    /// Records one frame's capture-to-detection latency.
    pub fn record_latency(&self, latency: Duration) {
        let us = latency.as_micros().min(u64::MAX as u128) as u64;
        self.latency_us.fetch_add(us, Relaxed);
        self.latency_max_us.fetch_max(us, Relaxed);
        self.latency_frames.fetch_add(1, Relaxed);
    }

    pub fn state(&self) -> CameraState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes the state; a change is logged (`camera state`) with `reason`. True if it changed.
    pub fn set_state(&self, camera: &str, state: CameraState, reason: &str) -> bool {
        let mut cur = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if *cur == state {
            return false;
        }
        let from = std::mem::replace(&mut *cur, state.clone());
        drop(cur);
        match &state {
            CameraState::Error(_) => {
                tracing::error!(camera = %camera, state = %state, from = from.name(), reason, "camera state")
            }
            CameraState::Stalled | CameraState::Offline => {
                tracing::warn!(camera = %camera, state = %state, from = from.name(), reason, "camera state")
            }
            _ => {
                tracing::info!(camera = %camera, state = %state, from = from.name(), reason, "camera state")
            }
        }
        true
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
            reconnects: self.reconnects.load(Relaxed),
            latency_us: self.latency_us.load(Relaxed),
            latency_max_us: self.latency_max_us.load(Relaxed),
            latency_frames: self.latency_frames.load(Relaxed),
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

    /// Mean capture-to-detection latency, milliseconds (0 when none was measured).
    pub fn mean_latency_ms(&self) -> f64 {
        if self.latency_frames == 0 {
            0.0
        } else {
            self.latency_us as f64 / self.latency_frames as f64 / 1000.0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_changes_are_reported_once() {
        let s = CameraStats::default();
        assert_eq!(s.state(), CameraState::Connecting);
        assert!(s.set_state("cam", CameraState::Online, "first frame"));
        assert!(!s.set_state("cam", CameraState::Online, "again"));
        assert!(s.set_state("cam", CameraState::Error("no video".into()), "x"));
        assert_eq!(s.state().to_string(), "error(no video)");
    }

    #[test]
    fn latency_mean_and_max() {
        let s = CameraStats::default();
        s.record_latency(Duration::from_millis(10));
        s.record_latency(Duration::from_millis(30));
        let snap = s.snapshot();
        assert_eq!(snap.latency_max_us, 30_000);
        assert!((snap.mean_latency_ms() - 20.0).abs() < 1e-9);
    }
}
