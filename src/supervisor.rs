//! The task tree of a running node.
//!
//! ```text
//! decode thread (per camera) ─ FrameSlot ─ camera task ─┬─ DetectorService (one thread)
//!                                                       └─ events ─ publisher task (outbox + MQTT)
//! ```
//!
//! Start-up checks everything that can be checked (model, labels, outbox)
//! before any camera starts, and reports it as a [`StartError`]. After that a
//! camera that fails is logged and ends on its own; the others go on.
//! Commands from the publisher (`camera/enable`, `camera/disable`,
//! `snapshot`, `reload`) are executed here, between camera tasks. The run
//! ends when every camera has ended (files) and none is merely disabled, or
//! when `shutdown` fires; then the publisher drains the outbox for a bounded
//! time and says `offline`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::analytics::{CameraRules, Observation, Region, RuleEvent, TrackedObject};
use crate::config::{CameraConfig, Config, ConfigError};
use crate::detect::Detection;
use crate::detect::{DetectError, Detector, DetectorOptions, DetectorService, ServiceOptions};
use crate::event::{Event, Phase, SCHEMA, rfc3339};
use crate::evidence::EvidenceOptions;
use crate::monitor::{CameraSnapshot, CameraState, CameraStats};
use crate::mqtt::commands::{Command, ControlRequest, Reply};
use crate::mqtt::{CommitHook, PublisherOptions, PublisherReport, run_publisher};
use crate::outbox::{Handover, Outbox, OutboxError};
use crate::scene::SceneModel;
use crate::source::runner::{self, SourceOptions};
use crate::source::{Frame, FrameSlot};
use crate::track::Tracker;

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
    /// Each camera's state when the run ended (`offline` after a file's end, `error(…)`, …).
    pub states: Vec<(String, CameraState)>,
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
            t.frames_gated += s.frames_gated;
            t.detections += s.detections;
            t.events += s.events;
            t.inference_us += s.inference_us;
            t.reconnects += s.reconnects;
            t.latency_us += s.latency_us;
            t.latency_max_us = t.latency_max_us.max(s.latency_max_us);
            t.latency_frames += s.latency_frames;
            t.frames_shed += s.frames_shed;
            t.publish_latency_max_us = t.publish_latency_max_us.max(s.publish_latency_max_us);
            t.publish_latency_events += s.publish_latency_events;
            t.events_published += s.events_published;
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
    let outbox = Outbox::open_with(
        &config.outbox.path,
        crate::outbox::Limits {
            max_events: config.outbox.max_events,
            max_age: Duration::from_secs_f64(config.outbox.max_age_h * 3600.0),
            max_evidence_bytes: config.evidence.max_outbox_mb.saturating_mul(1 << 20),
        },
    )?;
    let pending = outbox.depth()?;
    if pending > 0 {
        tracing::info!(
            pending,
            "outbox holds events from an earlier run; they are delivered first"
        );
    }
    let mut pub_opts = PublisherOptions::from_config(&config)?;

    let (service, detector_thread) =
        DetectorService::spawn_with(detector, ServiceOptions::from_config(&config.detector));
    let (events_tx, events_rx) = mpsc::channel::<Handover>(1024);
    let (control_tx, control_rx) = mpsc::channel::<ControlRequest>(8);
    // Counters exist before the publisher starts, so its first report names every camera.
    let stats: Vec<(String, Arc<CameraStats>)> = config
        .cameras
        .iter()
        .map(|c| (c.id.clone(), Arc::new(CameraStats::default())))
        .collect();
    let (list_tx, list_rx) = watch::channel(stats.clone());
    pub_opts.cameras = list_rx;
    pub_opts.control = Some(control_tx);
    let publisher = tokio::spawn(run_publisher(
        pub_opts,
        outbox,
        events_rx,
        shutdown.clone(),
        on_commit,
    ));

    let mut cameras = Cameras {
        node: config.node.id.clone(),
        manifest,
        service,
        events: events_tx,
        shutdown: shutdown.clone(),
        stats,
        running: HashMap::new(),
        disabled: HashSet::new(),
        tasks: JoinSet::new(),
        generation: 0,
        list_tx,
        config,
    };
    cameras.start_configured();
    cameras.supervise(control_rx).await;
    let stats = std::mem::take(&mut cameras.stats);
    // Dropping the last event sender and detector handle lets both wind down.
    drop(cameras);

    let report = publisher.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "publisher task failed");
        PublisherReport::default()
    });
    let _ = tokio::task::spawn_blocking(move || detector_thread.join()).await;
    Ok(RunSummary {
        states: stats
            .iter()
            .map(|(id, s)| (id.clone(), s.state()))
            .collect(),
        cameras: stats
            .into_iter()
            .map(|(id, s)| (id, s.snapshot()))
            .collect(),
        publisher: report,
        wall: started.elapsed(),
    })
}

/// A camera task that is running.
struct Running {
    token: CancellationToken,
    latest: watch::Receiver<Option<Arc<Frame>>>,
    /// Tells this run apart from an earlier one of the same camera still winding down.
    generation: u64,
}

/// The node's cameras: which run, which are disabled, and the commands that change that.
struct Cameras {
    config: Config,
    node: String,
    manifest: crate::detect::Manifest,
    service: DetectorService,
    events: mpsc::Sender<Handover>,
    shutdown: CancellationToken,
    /// Counters of every camera this run has known, in order (kept across restarts).
    stats: Vec<(String, Arc<CameraStats>)>,
    running: HashMap<String, Running>,
    /// Cameras stopped by `camera/disable` until `camera/enable`.
    disabled: HashSet<String>,
    tasks: JoinSet<(String, u64)>,
    generation: u64,
    /// What the publisher reports on (status and stats topics).
    list_tx: watch::Sender<Vec<(String, Arc<CameraStats>)>>,
}

impl Cameras {
    fn stats_of(&mut self, id: &str) -> Arc<CameraStats> {
        if let Some((_, s)) = self.stats.iter().find(|(i, _)| i == id) {
            return s.clone();
        }
        let s = Arc::new(CameraStats::default());
        self.stats.push((id.to_string(), s.clone()));
        s
    }

    fn publish_list(&mut self) {
        let ids: Vec<String> = self.config.cameras.iter().map(|c| c.id.clone()).collect();
        let list = ids
            .iter()
            .map(|id| (id.clone(), self.stats_of(id)))
            .collect();
        self.list_tx.send_replace(list);
    }

    fn start_configured(&mut self) {
        let ids: Vec<String> = self
            .config
            .cameras
            .iter()
            .filter(|c| c.enabled)
            .map(|c| c.id.clone())
            .collect();
        for id in ids {
            self.start(&id);
        }
        self.publish_list();
    }

    fn start(&mut self, id: &str) {
        let Some(cam) = self.config.cameras.iter().find(|c| c.id == id).cloned() else {
            return;
        };
        self.generation += 1;
        let generation = self.generation;
        let token = self.shutdown.child_token();
        let (latest_tx, latest) = watch::channel(None);
        let stats = self.stats_of(id);
        let task = CameraTask {
            tracker: Tracker::new(cam.tracker.to_tracker()),
            scene: scene_model(&cam),
            rules: CameraRules::new(
                &cam,
                &self.manifest,
                crate::analytics::time_zone(self.config.node.timezone.as_deref()),
            ),
            node: self.node.clone(),
            service: self.service.camera_with_stats(id, stats.clone()),
            events: self.events.clone(),
            stats,
            shutdown: token.clone(),
            latest: latest_tx,
            evidence: EvidenceOptions::from_config(&self.config.evidence),
            timed: {
                let source = SourceOptions::from_camera(&cam);
                source.is_live() || source.realtime
            },
            camera: cam,
        };
        let span = tracing::info_span!("camera", camera = %id);
        let id = id.to_string();
        self.tasks.spawn({
            let id = id.clone();
            async move {
                task.run().instrument(span).await;
                (id, generation)
            }
        });
        self.running.insert(
            id,
            Running {
                token,
                latest,
                generation,
            },
        );
    }

    fn stop(&mut self, id: &str) -> bool {
        match self.running.remove(id) {
            Some(r) => {
                r.token.cancel();
                true
            }
            None => false,
        }
    }

    /// Runs until every camera has ended (and none is merely disabled) or shutdown.
    async fn supervise(&mut self, mut control: mpsc::Receiver<ControlRequest>) {
        loop {
            if self.tasks.is_empty() && self.disabled.is_empty() {
                break;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                Some(done) = self.tasks.join_next() => {
                    if let Ok((id, generation)) = done
                        && self.running.get(&id).is_some_and(|r| r.generation == generation)
                    {
                        self.running.remove(&id);
                    }
                }
                Some(req) = control.recv() => {
                    let outcome = self.execute(req.command).await;
                    let _ = req.reply.send(outcome);
                }
            }
        }
        control.close();
        for r in self.running.values() {
            r.token.cancel();
        }
        while self.tasks.join_next().await.is_some() {}
    }

    fn known(&self, id: &str) -> Result<(), String> {
        if self.config.cameras.iter().any(|c| c.id == id) {
            Ok(())
        } else {
            Err(format!("no camera {id:?} on this node"))
        }
    }

    async fn execute(&mut self, cmd: Command) -> Result<Reply, String> {
        let reply = |result: serde_json::Value| Reply {
            result,
            attachment: None,
        };
        match cmd {
            Command::CameraDisable { camera } => {
                self.known(&camera)?;
                let was_running = self.stop(&camera);
                let changed = self.disabled.insert(camera.clone()) || was_running;
                tracing::info!(camera = %camera, "camera disabled by command");
                Ok(reply(
                    serde_json::json!({"camera": camera, "enabled": false, "changed": changed}),
                ))
            }
            Command::CameraEnable { camera } => {
                self.known(&camera)?;
                self.disabled.remove(&camera);
                let changed = !self.running.contains_key(&camera);
                if changed {
                    self.start(&camera);
                    tracing::info!(camera = %camera, "camera enabled by command");
                }
                Ok(reply(
                    serde_json::json!({"camera": camera, "enabled": true, "changed": changed}),
                ))
            }
            Command::Snapshot { camera } => {
                self.known(&camera)?;
                let frame = self
                    .running
                    .get(&camera)
                    .and_then(|r| r.latest.borrow().clone())
                    .ok_or_else(|| format!("camera {camera:?} has no frame yet (not running?)"))?;
                let jpeg = tokio::task::spawn_blocking({
                    let frame = frame.clone();
                    move || crate::evidence::jpeg(&frame.data, frame.width, frame.height, 85)
                })
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("JPEG encoding failed: {e}"))?;
                let suffix = format!("snapshots/{camera}");
                Ok(Reply {
                    result: serde_json::json!({
                        "camera": camera,
                        "topic_suffix": suffix,
                        "width": frame.width,
                        "height": frame.height,
                        "bytes": jpeg.len(),
                        "captured_at": rfc3339(frame.captured_at),
                        "stream_time_s": frame.pts.as_secs_f64(),
                    }),
                    attachment: Some((suffix, jpeg)),
                })
            }
            Command::Reload => self.reload().map(reply),
        }
    }

    /// Re-reads the config file; applies camera changes, refuses anything that needs a restart.
    fn reload(&mut self) -> Result<serde_json::Value, String> {
        let path = self.config.source_path.clone();
        let new = Config::load(&path).map_err(|e| format!("{e}; nothing was changed"))?;
        let sections = |c: &Config| {
            [
                ("node", format!("{:?}", c.node)),
                ("mqtt", format!("{:?}", c.mqtt)),
                ("model", format!("{:?}", c.model)),
                ("detector", format!("{:?}", c.detector)),
                ("outbox", format!("{:?}", c.outbox)),
                ("evidence", format!("{:?}", c.evidence)),
            ]
        };
        let changed: Vec<&str> = sections(&self.config)
            .into_iter()
            .zip(sections(&new))
            .filter(|(a, b)| a.1 != b.1)
            .map(|(a, _)| a.0)
            .collect();
        if !changed.is_empty() {
            return Err(format!(
                "changes to [{}] need a restart; nothing was changed",
                changed.join("], [")
            ));
        }
        for (key, class) in new.referenced_classes() {
            if self.manifest.class_id(&class).is_none() {
                return Err(format!(
                    "`{key}`: class {class:?} is not a label of the model; nothing was changed"
                ));
            }
        }
        let old = std::mem::replace(&mut self.config, new);
        let (mut started, mut stopped, mut restarted) = (Vec::new(), Vec::new(), Vec::new());
        for cam in &old.cameras {
            if !self.config.cameras.iter().any(|c| c.id == cam.id) {
                self.stop(&cam.id);
                self.disabled.remove(&cam.id);
                stopped.push(cam.id.clone());
            }
        }
        for cam in self.config.cameras.clone() {
            let before = old.cameras.iter().find(|c| c.id == cam.id);
            let same = before.is_some_and(|b| format!("{b:?}") == format!("{cam:?}"));
            if same && (self.running.contains_key(&cam.id) || !cam.enabled) {
                continue;
            }
            let was_running = self.stop(&cam.id);
            if cam.enabled && !self.disabled.contains(&cam.id) {
                self.start(&cam.id);
                if was_running {
                    &mut restarted
                } else {
                    &mut started
                }
                .push(cam.id.clone());
            } else if was_running {
                stopped.push(cam.id.clone());
            }
        }
        self.publish_list();
        tracing::info!(?started, ?stopped, ?restarted, "configuration reloaded");
        Ok(serde_json::json!({"started": started, "stopped": stopped, "restarted": restarted}))
    }
}

struct CameraTask {
    camera: CameraConfig,
    node: String,
    tracker: Tracker,
    /// `None` when `[camera.scene] enabled = false`.
    scene: Option<SceneModel>,
    rules: CameraRules,
    service: DetectorService,
    events: mpsc::Sender<Handover>,
    stats: Arc<CameraStats>,
    shutdown: CancellationToken,
    /// The latest analysed frame, for snapshots.
    latest: watch::Sender<Option<Arc<Frame>>>,
    /// How evidence of start events is made; `None`: no evidence.
    evidence: Option<EvidenceOptions>,
    /// Capture times are wall-clock times (a live source, or a file played at
    /// stream speed), so capture-to-detection and capture-to-publish latencies
    /// are measured.
    timed: bool,
}

impl CameraTask {
    async fn run(mut self) {
        let source = SourceOptions::from_camera(&self.camera);
        let slot = FrameSlot::new(source.slot_mode());
        let decode = {
            let slot = slot.clone();
            let stats = self.stats.clone();
            let stop = self.shutdown.clone();
            std::thread::Builder::new()
                .name(format!("decode-{}", source.camera))
                .spawn(move || runner::run(&source, &slot, &stats, &stop))
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
        let gate = &self.camera.scene;
        let (gated, recheck, motion_threshold) = (
            gate.enabled && gate.motion_gate,
            Duration::from_secs_f64(gate.recheck_s),
            gate.motion_threshold,
        );
        // The last detector result and when it ran, for frames the motion gate skips.
        let mut detections: Vec<Detection> = Vec::new();
        let mut detected_at: Option<Duration> = None;
        let mut tracks: Vec<TrackedObject> = Vec::new();
        let mut regions: Vec<Region> = Vec::new();
        while let Some(frame) = slot.take().await {
            let frame = Arc::new(frame);
            let scene = self
                .scene
                .as_mut()
                .map(|s| s.update(frame.pts, frame.width, frame.height, &frame.data));
            let still = scene.as_ref().is_some_and(|s| s.motion < motion_threshold);
            let due = detected_at.is_none_or(|t| frame.pts.saturating_sub(t) >= recheck);
            if gated && still && !due {
                // Nothing moved since the last detection: its objects are still there.
                CameraStats::add(&self.stats.frames_gated, 1);
            } else {
                let out = match self.service.detect(frame.clone()).await {
                    Ok(out) => out,
                    Err(e) => {
                        tracing::error!(error = %e, "detection failed; frame skipped");
                        continue;
                    }
                };
                CameraStats::add(&self.stats.frames_analysed, 1);
                if self.timed {
                    let latency = SystemTime::now()
                        .duration_since(frame.captured_at)
                        .unwrap_or_default();
                    self.stats.record_latency(latency);
                }
                CameraStats::add(&self.stats.detections, out.detections.len() as u64);
                self.stats.record_inference(out.elapsed);
                detections = out.detections;
                detected_at = Some(frame.pts);
            }
            self.tracker.update(frame.pts, &detections);
            tracks.clear();
            tracks.extend(self.tracker.confirmed().map(TrackedObject::from));
            regions.clear();
            if let Some(s) = scene {
                regions.extend(s.regions.into_iter().map(Region::from));
            }
            let obs = Observation {
                pts: frame.pts,
                captured_at: frame.captured_at,
                width: frame.width,
                height: frame.height,
                detections: &detections,
                tracks: &tracks,
                regions: &regions,
            };
            let evs = self.rules.observe(&obs);
            self.latest.send_replace(Some(frame.clone()));
            last = Some((frame.captured_at, frame.pts));
            if !self.emit(evs, Some(&frame)).await {
                break;
            }
        }
        if let Some((at, pts)) = last {
            let evs = self.rules.finish(at, pts);
            self.emit(evs, None).await;
        }
        slot.close();
        closer.abort();
        let _ = tokio::task::spawn_blocking(move || decode.join()).await;
        tracing::info!(state = %self.stats.state(), stats = ?self.stats.snapshot(), "camera stopped");
    }

    /// Hands rule events to the publisher, each `start` with its evidence: `frame`, the
    /// frame the events came from (`None` when there is none, at the run's end), with the
    /// event's boxes drawn. `false` if the publisher is gone.
    async fn emit(&mut self, evs: Vec<RuleEvent>, frame: Option<&Arc<Frame>>) -> bool {
        if evs.is_empty() {
            return true;
        }
        let captured_at = frame.filter(|_| self.timed).map(|f| f.captured_at);
        for ev in evs {
            CameraStats::add(&self.stats.events, 1);
            let event = to_event(&self.node, &self.camera.id, ev);
            let evidence = match (event.phase, frame, self.evidence) {
                (Phase::Start, Some(frame), Some(opts)) => evidence_of(&event, frame, opts).await,
                _ => None,
            };
            let handover = Handover {
                event,
                evidence,
                captured_at,
            };
            if self.events.send(handover).await.is_err() {
                tracing::error!("publisher stopped; camera cannot hand over events");
                return false;
            }
        }
        true
    }
}

/// The scene model of a camera, unless disabled.
fn scene_model(cam: &CameraConfig) -> Option<SceneModel> {
    let c = &cam.scene;
    c.enabled.then(|| SceneModel::new(c.to_model()))
}

/// The evidence JPEG of `event`, encoded on a blocking thread; `None` (logged) if it fails.
async fn evidence_of(event: &Event, frame: &Arc<Frame>, opts: EvidenceOptions) -> Option<Vec<u8>> {
    let boxes: Vec<[f32; 4]> = event.objects.iter().map(|o| o.bbox).collect();
    let frame = frame.clone();
    let jpeg = tokio::task::spawn_blocking(move || crate::evidence::render(&frame, &boxes, &opts))
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
    jpeg.map_err(
        |e| tracing::warn!(error = %e, event = %event.id, "event published without evidence"),
    )
    .ok()
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
        attributes: ev.attributes,
        evidence: None,
    }
}
