//! Counters every stage updates and each camera's connection state, read by
//! the summary and the stats and status topics.
//!
//! Plain atomics: each counter has one writer stage; readers take a snapshot.
//! The state has one writer too (the camera's source runner); every change is
//! logged as a `camera state` line with the camera id and the reason.
//! Durations whose spread matters (inference time, capture-to-publish
//! latency) also go into a fixed-bucket [`Histogram`], from which the stats
//! report takes percentiles over each report's window.
//!
//! [`heartbeat`]: the beats the detector and the publisher keep, from which
//! the watchdog tells a busy stage from a wedged one.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::clock::SharedClock;

pub mod heartbeat;
mod histogram;

pub use histogram::{Histogram, HistogramSnapshot};

/// The reason given when a file (not a live source) has been played to its end.
pub const END_OF_STREAM: &str = "end of stream";

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

/// Declares every per-camera counter once: the atomic in [`Counters`], the
/// plain copy in [`CameraSnapshot`], the snapshot and how two snapshots add
/// up (`sum` counters add, `max` keeps the larger). A new counter is one line.
macro_rules! counters {
    ($( $(#[doc = $doc:literal])* $name:ident: $kind:ident, )*) => {
        /// Per-camera counters: plain atomics, each with one writer stage.
        #[derive(Debug, Default)]
        pub struct Counters {
            $( $(#[doc = $doc])* pub $name: AtomicU64, )*
        }

        /// A point-in-time copy of [`Counters`].
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
        pub struct CameraSnapshot {
            $( $(#[doc = $doc])* pub $name: u64, )*
        }

        impl Counters {
            pub fn snapshot(&self) -> CameraSnapshot {
                CameraSnapshot { $( $name: self.$name.load(Relaxed), )* }
            }
        }

        impl CameraSnapshot {
            /// Adds `other` in: counters are summed, maxima keep the larger.
            pub fn accumulate(&mut self, other: &CameraSnapshot) {
                $( self.$name = counters!(@merge $kind, self.$name, other.$name); )*
            }
        }
    };
    (@merge sum, $a:expr, $b:expr) => { $a.saturating_add($b) };
    (@merge max, $a:expr, $b:expr) => { $a.max($b) };
}

counters! {
    /// Frames the decoder produced.
    frames_decoded: sum,
    /// Frames chosen by the analytic-fps sampler.
    frames_sampled: sum,
    /// Sampled frames replaced before the pipeline took them (live sources only).
    frames_dropped: sum,
    /// Damaged data: packets or frames that could not be decoded (skipped), packets the
    /// demuxer flagged corrupt and frames decoded with errors concealed.
    decode_errors: sum,
    /// Frames that went through the detector.
    frames_analysed: sum,
    /// Frames the motion gate kept from the detector (nothing moved; the last result stood).
    frames_gated: sum,
    /// Objects the detector found, summed over frames.
    detections: sum,
    /// Events this camera's rules produced.
    events: sum,
    /// Total inference time, microseconds (mean = this / frames_analysed).
    inference_us: sum,
    /// Times the source was reopened after it failed, stalled or ended (live sources).
    reconnects: sum,
    /// Capture-to-detection latency summed over `latency_frames`, microseconds.
    latency_us: sum,
    /// The largest capture-to-detection latency seen, microseconds.
    latency_max_us: max,
    /// Frames whose latency was measured (live and real-time sources).
    latency_frames: sum,
    /// Frames of this camera waiting in the detector service's queue now (a gauge).
    detector_queue: sum,
    /// Frames the detector service dropped from this camera's full queue, oldest first.
    frames_shed: sum,
    /// The largest capture-to-PUBACK latency seen, microseconds (0: none measured).
    publish_latency_max_us: max,
    /// Events whose capture-to-PUBACK latency was measured.
    publish_latency_events: sum,
    /// This camera's events the broker acknowledged (replays of earlier runs included).
    events_published: sum,
    /// Times the camera was restarted after one of its threads died.
    restarts: sum,
    /// Time the source spent producing frames (reading, decoding, converting), microseconds.
    decode_us: sum,
    /// Time the scene model spent on this camera's frames, microseconds.
    scene_us: sum,
}

/// A camera's counters (reached through `Deref`), duration histograms and
/// connection state.
#[derive(Debug, Default)]
pub struct CameraStats {
    counters: Counters,
    /// Inference time per analysed frame.
    pub inference: Histogram,
    /// Capture-to-PUBACK latency of this camera's events (live and real-time sources).
    pub publish_latency: Histogram,
    /// Capture-to-detection latency per analysed frame (live and real-time sources).
    pub latency: Histogram,
    /// The connection state, changed only through [`CameraStats::set_state`].
    state: Mutex<CameraState>,
}

impl std::ops::Deref for CameraStats {
    type Target = Counters;
    fn deref(&self) -> &Counters {
        &self.counters
    }
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
        self.latency.record(latency);
    }

    /// Records one frame's inference time (its sum and its histogram).
    pub fn record_inference(&self, elapsed: Duration) {
        self.inference_us
            .fetch_add(elapsed.as_micros().min(u64::MAX as u128) as u64, Relaxed);
        self.inference.record(elapsed);
    }

    /// Records that the broker acknowledged one of this camera's events, and, when its
    /// frame's capture time is wall-clock time, how long after capture that was.
    pub fn record_published(&self, latency: Option<Duration>) {
        self.events_published.fetch_add(1, Relaxed);
        if let Some(latency) = latency {
            self.publish_latency.record(latency);
            let us = latency.as_micros().min(u64::MAX as u128) as u64;
            self.publish_latency_max_us.fetch_max(us, Relaxed);
            self.publish_latency_events.fetch_add(1, Relaxed);
        }
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
            // A file that played to its end is done, not in trouble.
            CameraState::Offline if reason == END_OF_STREAM => {
                tracing::info!(camera = %camera, state = %state, from = from.name(), reason, "camera state")
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

/// Builds the periodic `{prefix}/{node}/stats` document from the counters.
///
/// Rates (fps) and percentiles are computed over the window between two
/// consecutive reports; counters, means and maxima are since the start.
pub struct StatsReporter {
    /// Rates and uptime (monotonic reading), the report's `ts` (time of day).
    clock: SharedClock,
    started: std::time::Instant,
    last: Option<(std::time::Instant, Vec<CameraSnapshot>)>,
    /// Each camera's histograms at the previous report: (inference, capture-to-publish,
    /// capture-to-detection).
    last_histograms: std::collections::HashMap<String, [HistogramSnapshot; 3]>,
}

/// Outbox figures for a stats report.
#[derive(Debug, Clone, Copy, Default)]
pub struct OutboxFigures {
    pub depth: u64,
    pub oldest_age_s: Option<f64>,
    pub dropped_total: u64,
    /// Evidence JPEGs stored and not yet acknowledged.
    pub evidence_depth: u64,
    /// Their size, bytes.
    pub evidence_bytes: u64,
    /// Evidence JPEGs dropped by the limits since the outbox was created.
    pub evidence_dropped_total: u64,
}

impl StatsReporter {
    pub fn new(clock: SharedClock) -> Self {
        Self {
            started: clock.mono(),
            clock,
            last: None,
            last_histograms: Default::default(),
        }
    }

    pub fn report(
        &mut self,
        cameras: &[(String, std::sync::Arc<CameraStats>)],
        outbox: OutboxFigures,
    ) -> serde_json::Value {
        let now = self.clock.mono();
        let snaps: Vec<CameraSnapshot> = cameras.iter().map(|(_, s)| s.snapshot()).collect();
        let mut cams = serde_json::Map::new();
        let mut histograms = std::collections::HashMap::new();
        for (i, (id, stats)) in cameras.iter().enumerate() {
            let s = snaps[i];
            let rate = |f: fn(&CameraSnapshot) -> u64| match &self.last {
                Some((t, prev)) if prev.len() == snaps.len() => {
                    let dt = now.duration_since(*t).as_secs_f64();
                    if dt > 0.0 {
                        (f(&s).saturating_sub(f(&prev[i]))) as f64 / dt
                    } else {
                        0.0
                    }
                }
                _ => 0.0,
            };
            let round = |v: f64| (v * 100.0).round() / 100.0;
            let now_h = [
                stats.inference.snapshot(),
                stats.publish_latency.snapshot(),
                stats.latency.snapshot(),
            ];
            let [inference_window, publish_window, latency_window] =
                match self.last_histograms.get(id) {
                    Some(before) => std::array::from_fn(|k| now_h[k].since(&before[k])),
                    None => now_h.clone(),
                };
            let state = stats.state();
            cams.insert(
                id.clone(),
                serde_json::json!({
                    "state": state.name(),
                    "fps_in": round(rate(|c| c.frames_decoded)),
                    "fps_analysed": round(rate(|c| c.frames_analysed)),
                    "frames_dropped": s.frames_dropped,
                    "frames_shed": s.frames_shed,
                    "detector_queue": s.detector_queue,
                    "frames_gated": s.frames_gated,
                    "decode_errors": s.decode_errors,
                    "reconnects": s.reconnects,
                    "events": s.events,
                    "events_published": s.events_published,
                    "inference_ms_mean": round(s.mean_inference_ms()),
                    "inference_ms_p50": inference_window.quantile_ms(0.5),
                    "inference_ms_p99": inference_window.quantile_ms(0.99),
                    "latency_ms_mean": round(s.mean_latency_ms()),
                    "latency_ms_p50": latency_window.quantile_ms(0.5),
                    "latency_ms_p99": latency_window.quantile_ms(0.99),
                    "latency_ms_max": round(s.latency_max_us as f64 / 1000.0),
                    "publish_latency_ms_p50": publish_window.quantile_ms(0.5),
                    "publish_latency_ms_p99": publish_window.quantile_ms(0.99),
                    "publish_latency_ms_max": (s.publish_latency_events > 0)
                        .then(|| round(s.publish_latency_max_us as f64 / 1000.0)),
                }),
            );
            histograms.insert(id.clone(), now_h);
        }
        self.last = Some((now, snaps));
        self.last_histograms = histograms;
        let (rss, cpu) = process_usage();
        serde_json::json!({
            "schema": crate::wire::STATS,
            "ts": crate::event::rfc3339(self.clock.wall()),
            "uptime_s": now.duration_since(self.started).as_secs(),
            "cameras": cams,
            "outbox": {
                "depth": outbox.depth,
                "oldest_age_s": outbox.oldest_age_s,
                "dropped_total": outbox.dropped_total,
                "evidence_depth": outbox.evidence_depth,
                "evidence_bytes": outbox.evidence_bytes,
                "evidence_dropped_total": outbox.evidence_dropped_total,
            },
            "process": { "rss_bytes": rss, "cpu_s": cpu },
        })
    }
}

/// Resident memory (bytes) and CPU time used (seconds) of this process, from `/proc`.
pub fn process_usage() -> (Option<u64>, Option<f64>) {
    let page = 4096u64;
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map(|pages| pages * page);
    // Fields 14 and 15 (utime, stime) in clock ticks, after the parenthesised name.
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            let rest = &s[s.rfind(')')? + 2..];
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
            Some(ticks as f64 / 100.0)
        });
    (rss, cpu)
}

/// The retained `{prefix}/{node}/cameras/{camera}/status` payload, stamped `ts`.
pub fn camera_status_json(state: &CameraState, ts: std::time::SystemTime) -> serde_json::Value {
    let reason = match state {
        CameraState::Error(r) => Some(r.as_str()),
        _ => None,
    };
    serde_json::json!({
        "schema": crate::wire::CAMERA_STATUS,
        "state": state.name(),
        "reason": reason,
        "ts": crate::event::rfc3339(ts),
    })
}

#[cfg(test)]
mod report_tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::Arc;

    #[test]
    fn stats_report_has_rates_outbox_and_process() {
        let cam = Arc::new(CameraStats::default());
        let cams = vec![("gate".to_string(), cam.clone())];
        let t0 = std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let clock = ManualClock::new(t0);
        let mut r = StatsReporter::new(clock.shared());
        let first = r.report(&cams, OutboxFigures::default());
        assert_eq!(first["cameras"]["gate"]["fps_in"], 0.0);
        assert_eq!(first["uptime_s"], 0);
        CameraStats::add(&cam.frames_decoded, 50);
        clock.advance(Duration::from_secs(2));
        let second = r.report(
            &cams,
            OutboxFigures {
                depth: 3,
                oldest_age_s: Some(1.5),
                dropped_total: 2,
                evidence_bytes: 4096,
                ..Default::default()
            },
        );
        assert_eq!(second["cameras"]["gate"]["fps_in"], 25.0);
        assert_eq!(second["uptime_s"], 2);
        assert_eq!(
            second["ts"],
            crate::event::rfc3339(t0 + Duration::from_secs(2))
        );
        assert_eq!(second["outbox"]["depth"], 3);
        assert_eq!(second["outbox"]["evidence_bytes"], 4096);
        assert_eq!(second["cameras"]["gate"]["state"], "connecting");
        assert!(second["process"]["rss_bytes"].as_u64().unwrap() > 1 << 20);
    }

    #[test]
    fn percentiles_cover_the_window_and_the_maximum_the_whole_run() {
        let cam = Arc::new(CameraStats::default());
        let cams = vec![("gate".to_string(), cam.clone())];
        let mut r = StatsReporter::new(crate::clock::system());
        let empty = r.report(&cams, OutboxFigures::default());
        let gate = &empty["cameras"]["gate"];
        for key in [
            "inference_ms_p50",
            "inference_ms_p99",
            "latency_ms_p50",
            "latency_ms_p99",
            "publish_latency_ms_p50",
            "publish_latency_ms_p99",
            "publish_latency_ms_max",
        ] {
            assert!(gate[key].is_null(), "{key}: nothing measured yet: {gate}");
        }
        for ms in 1..=100 {
            cam.record_inference(Duration::from_millis(ms));
        }
        CameraStats::add(&cam.frames_analysed, 100);
        for ms in [10, 20, 30, 400] {
            cam.record_latency(Duration::from_millis(ms));
        }
        cam.record_published(Some(Duration::from_millis(900)));
        cam.record_published(None);
        let first = r.report(&cams, OutboxFigures::default());
        let gate = &first["cameras"]["gate"];
        let (p50, p99) = (
            gate["inference_ms_p50"].as_f64().unwrap(),
            gate["inference_ms_p99"].as_f64().unwrap(),
        );
        assert!((45.0..=55.0).contains(&p50), "{gate}");
        assert!(p50 <= p99 && p99 <= 100.0, "{gate}");
        assert_eq!(gate["inference_ms_mean"], 50.5);
        let p50 = gate["latency_ms_p50"].as_f64().unwrap();
        assert!((18.0..=22.0).contains(&p50), "{gate}");
        assert_eq!(gate["latency_ms_p99"], 400.0);
        assert_eq!(gate["events_published"], 2);
        assert_eq!(gate["publish_latency_ms_max"], 900.0);
        assert!(gate["publish_latency_ms_p99"].as_f64().unwrap() <= 900.0);
        // The next window holds only what came after: a replay after an outage.
        cam.record_inference(Duration::from_millis(7));
        cam.record_published(Some(Duration::from_secs(120)));
        let second = r.report(&cams, OutboxFigures::default());
        let gate = &second["cameras"]["gate"];
        let p50 = gate["inference_ms_p50"].as_f64().unwrap();
        assert!((6.3..=7.7).contains(&p50), "{gate}");
        assert_eq!(gate["publish_latency_ms_max"], 120_000.0);
        let p50 = gate["publish_latency_ms_p50"].as_f64().unwrap();
        assert!((109_000.0..=120_000.0).contains(&p50), "{gate}");
        // Nothing new: no percentiles, the maximum stays.
        let third = r.report(&cams, OutboxFigures::default());
        assert!(third["cameras"]["gate"]["inference_ms_p50"].is_null());
        assert!(third["cameras"]["gate"]["latency_ms_p99"].is_null());
        assert_eq!(
            third["cameras"]["gate"]["publish_latency_ms_max"],
            120_000.0
        );
    }

    #[test]
    fn camera_status_carries_the_error_reason() {
        let ts = std::time::UNIX_EPOCH + Duration::from_millis(1_800_000_000_250);
        let v = camera_status_json(&CameraState::Error("cannot open x".into()), ts);
        assert_eq!(v["state"], "error");
        assert_eq!(v["reason"], "cannot open x");
        assert_eq!(v["ts"], crate::event::rfc3339(ts));
        assert!(camera_status_json(&CameraState::Online, ts)["reason"].is_null());
    }
}
