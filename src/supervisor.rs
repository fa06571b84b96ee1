//! The task tree of a running node.
//!
//! ```text
//! decode thread (per camera) ─ FrameSlot ─ camera task ─┬─ DetectorService (one thread)
//!                                                       └─ events ─ publisher task (outbox + MQTT)
//! ```
//!
//! Start-up checks everything that can be checked (model, labels, outbox)
//! before any camera starts, and reports it as a [`StartError`]. After that a
//! camera that fails is logged and ends on its own; the others go on. The
//! run ends when every camera has ended (files) or `shutdown` fires; then the
//! publisher drains the outbox for a bounded time and says `offline`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::analytics::{CameraRules, Observation, RuleEvent};
use crate::config::{CameraConfig, Config, ConfigError};
use crate::detect::{DetectError, Detector, DetectorOptions, DetectorService};
use crate::event::{Event, SCHEMA, rfc3339};
use crate::monitor::{CameraSnapshot, CameraStats};
use crate::mqtt::{CommitHook, PublisherOptions, PublisherReport, run_publisher};
use crate::outbox::{Outbox, OutboxError};
use crate::source::ffmpeg::FfmpegSource;
use crate::source::{FrameSlot, FrameSource, SlotMode, mask_credentials};

/// Problems found before any camera starts. All mean "fix the configuration or the box".
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Detector(#[from] DetectError),
    #[error(transparent)]
    Outbox(#[from] OutboxError),
}

/// What a run did, for the closing summary.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub cameras: Vec<(String, CameraSnapshot)>,
    pub publisher: PublisherReport,
    pub wall: Duration,
}

impl RunSummary {
    pub fn total(&self) -> CameraSnapshot {
        let mut t = CameraSnapshot::default();
        for (_, s) in &self.cameras {
            t.frames_decoded += s.frames_decoded;
            t.frames_sampled += s.frames_sampled;
            t.frames_dropped += s.frames_dropped;
            t.decode_errors += s.decode_errors;
            t.frames_analysed += s.frames_analysed;
            t.detections += s.detections;
            t.events += s.events;
            t.inference_us += s.inference_us;
        }
        t
    }
}

/// Opens the detector and checks every class a rule names exists in the model.
pub fn open_detector(config: &Config) -> Result<Detector, StartError> {
    let detector = Detector::open(&DetectorOptions::from_config(config))?;
    for (key, class) in config.referenced_classes() {
        if detector.manifest().class_id(&class).is_none() {
            return Err(config
                .key_error(
                    key,
                    format!(
                        "class {class:?} is not a label of model {:?} (labels: {})",
                        detector.manifest().name,
                        detector.manifest().labels.join(", ")
                    ),
                )
                .into());
        }
    }
    Ok(detector)
}

/// Runs the node until every camera ends or `shutdown` fires.
pub async fn run(
    config: Config,
    shutdown: CancellationToken,
    on_commit: CommitHook,
) -> Result<RunSummary, StartError> {
    let started = Instant::now();
    let detector = open_detector(&config)?;
    let manifest = detector.manifest().clone();
    let outbox = Outbox::open(&config.outbox.path)?;
    let pending = outbox.depth()?;
    if pending > 0 {
        tracing::info!(
            pending,
            "outbox holds events from an earlier run; they are delivered first"
        );
    }
    let pub_opts =
        PublisherOptions::from_config(&config).map_err(|m| config.key_error("mqtt.url", m))?;

    let cameras: Vec<&CameraConfig> = config.cameras.iter().filter(|c| c.enabled).collect();
    let (service, detector_thread) = DetectorService::spawn(detector, cameras.len() * 2);
    let (events_tx, events_rx) = mpsc::channel::<Event>(1024);
    let publisher = tokio::spawn(run_publisher(
        pub_opts,
        outbox,
        events_rx,
        shutdown.clone(),
        on_commit,
    ));

    let tracker = TaskTracker::new();
    let mut stats = Vec::new();
    for cam in cameras {
        let cam_stats = Arc::new(CameraStats::default());
        stats.push((cam.id.clone(), cam_stats.clone()));
        let task = CameraTask {
            camera: cam.clone(),
            node: config.node.id.clone(),
            rules: CameraRules::new(cam, &manifest),
            service: service.camera(&cam.id),
            events: events_tx.clone(),
            stats: cam_stats,
            shutdown: shutdown.child_token(),
        };
        let span = tracing::info_span!("camera", camera = %cam.id);
        tracker.spawn(task.run().instrument(span));
    }
    drop(events_tx);
    drop(service);
    tracker.close();
    tracker.wait().await;

    let report = publisher.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "publisher task failed");
        PublisherReport::default()
    });
    let _ = tokio::task::spawn_blocking(move || detector_thread.join()).await;
    Ok(RunSummary {
        cameras: stats
            .into_iter()
            .map(|(id, s)| (id, s.snapshot()))
            .collect(),
        publisher: report,
        wall: started.elapsed(),
    })
}

struct CameraTask {
    camera: CameraConfig,
    node: String,
    rules: CameraRules,
    service: DetectorService,
    events: mpsc::Sender<Event>,
    stats: Arc<CameraStats>,
    shutdown: CancellationToken,
}

impl CameraTask {
    async fn run(mut self) {
        let live = crate::source::ffmpeg::is_live_url(&self.camera.url);
        let slot = FrameSlot::new(if live {
            SlotMode::Latest
        } else {
            SlotMode::Block
        });
        let decode = {
            let slot = slot.clone();
            let camera = self.camera.clone();
            let stats = self.stats.clone();
            let stop = self.shutdown.clone();
            std::thread::Builder::new()
                .name(format!("decode-{}", camera.id))
                .spawn(move || decode_loop(&camera, &slot, &stats, &stop))
                .expect("spawning a decode thread")
        };
        // Closing the slot on shutdown wakes both sides.
        let closer = {
            let slot = slot.clone();
            let stop = self.shutdown.clone();
            tokio::spawn(async move {
                stop.cancelled().await;
                slot.close();
            })
        };

        let mut last: Option<(SystemTime, Duration)> = None;
        while let Some(frame) = slot.take().await {
            let frame = Arc::new(frame);
            let out = match self.service.detect(frame.clone()).await {
                Ok(out) => out,
                Err(e) => {
                    tracing::error!(error = %e, "detection failed; frame skipped");
                    continue;
                }
            };
            CameraStats::add(&self.stats.frames_analysed, 1);
            CameraStats::add(&self.stats.detections, out.detections.len() as u64);
            CameraStats::add(&self.stats.inference_us, out.elapsed.as_micros() as u64);
            let obs = Observation {
                pts: frame.pts,
                captured_at: frame.captured_at,
                width: frame.width,
                height: frame.height,
                detections: &out.detections,
            };
            let evs = self.rules.observe(&obs);
            last = Some((frame.captured_at, frame.pts));
            if !self.emit(evs).await {
                break;
            }
        }
        if let Some((at, pts)) = last {
            let evs = self.rules.finish(at, pts);
            self.emit(evs).await;
        }
        slot.close();
        closer.abort();
        let _ = tokio::task::spawn_blocking(move || decode.join()).await;
        tracing::info!(stats = ?self.stats.snapshot(), "camera stopped");
    }

    /// Hands rule events to the publisher. `false` if it is gone.
    async fn emit(&mut self, evs: Vec<RuleEvent>) -> bool {
        for ev in evs {
            CameraStats::add(&self.stats.events, 1);
            let event = to_event(&self.node, &self.camera.id, ev);
            if self.events.send(event).await.is_err() {
                tracing::error!("publisher stopped; camera cannot hand over events");
                return false;
            }
        }
        true
    }
}

fn to_event(node: &str, camera: &str, ev: RuleEvent) -> Event {
    Event {
        schema: SCHEMA.into(),
        id: uuid::Uuid::now_v7().to_string(),
        seq: 0,
        node: node.to_string(),
        camera: camera.to_string(),
        zone: ev.zone,
        kind: ev.kind.to_string(),
        phase: ev.phase,
        incident: ev.incident,
        ts: rfc3339(ev.ts),
        started_at: rfc3339(ev.started_at),
        ended_at: ev.ended_at.map(rfc3339),
        stream_time_s: (ev.stream_time.as_secs_f64() * 1000.0).round() / 1000.0,
        objects: ev.objects,
        metrics: ev.metrics,
    }
}

/// Runs on the camera's decode thread until the stream ends, fails, or the slot closes.
fn decode_loop(
    camera: &CameraConfig,
    slot: &FrameSlot,
    stats: &Arc<CameraStats>,
    stop: &CancellationToken,
) {
    let url = mask_credentials(&camera.url);
    let mut source = match FfmpegSource::open(&camera.id, &camera.url, camera.fps, stats.clone()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(camera = %camera.id, error = %e, "camera cannot start");
            slot.close();
            return;
        }
    };
    tracing::info!(camera = %camera.id, url = %url, fps = camera.fps, "camera started");
    while !stop.is_cancelled() {
        match source.next_frame() {
            Ok(Some(frame)) => match slot.put(frame) {
                Ok(true) => CameraStats::add(&stats.frames_dropped, 1),
                Ok(false) => {}
                Err(_) => break,
            },
            Ok(None) => {
                tracing::info!(camera = %camera.id, "end of stream");
                break;
            }
            Err(e) => {
                tracing::error!(camera = %camera.id, error = %e, "camera stream failed");
                break;
            }
        }
    }
    slot.close();
}
