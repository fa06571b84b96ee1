//! The composition root: one running node.
//!
//! ```text
//!             ┌────────────── node (this module) ──────────────┐
//!  Config ──▶ │ options: Config → each stage's options          │
//!             │ cameras: which cameras run (pure decisions)     │
//!             └──┬──────────────┬──────────────────────┬────────┘
//!                │ start/stop   │ spawn                │ spawn, commands ◀─┐
//!                ▼              ▼                      ▼                   │
//!   camera task (pipeline)  DetectorService      publisher (owns outbox) ──┘
//!   decode thread ─ slot      one thread            MQTT connection
//! ```
//!
//! [`run`] checks everything that can be checked before any camera starts
//! (model, rule classes, outbox, TLS files) and reports it as a
//! [`StartError`]. Then it starts the detector service, the publisher and
//! every enabled camera, and supervises: it carries out the commands the
//! publisher hands over (`camera/enable`, `camera/disable`, `snapshot`,
//! `reload`), restarts with backoff a camera whose decode or detector thread
//! died (starting a new detector service first when that one died), and
//! ends when every camera has ended and none is disabled or waiting for a
//! restart, or when `shutdown` fires. Then the publisher drains the outbox
//! for a bounded time and says `offline`.
//!
//! Cameras started together (at start, by a reload, restarts due at once)
//! open their sources [`START_SPACING`] apart: a camera's first look asks
//! the detector for several frames in a row (until its tracks are
//! confirmed), and sixteen such first looks at once queue at the one
//! detector for longer than a frame interval, so every camera would drop
//! frames in its first seconds.
//!
//! What the node is made of comes in as [`Parts`]: the real sources and the
//! real model, or stand-ins that tests use to make threads die or wedge. What
//! the process around it hands in comes as [`Hooks`]: the shutdown signal,
//! the commit hook, commands of the box itself (SIGHUP: `reload`, carried out
//! exactly as the MQTT command) and the service manager, which hears `READY`
//! once the cameras are started, a watchdog ping at its pace as long as the
//! detector service and the publisher are making progress ([`systemd`]), and
//! `STOPPING` when the node begins to stop.

pub mod cameras;
mod commands;
mod hub;
pub mod info;
pub mod options;
pub mod systemd;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::clock::SharedClock;
use crate::config::{Config, ConfigError};
use crate::detect::{DetectError, Detector, DetectorOptions, DetectorService, Infer};
use crate::monitor::HistogramSnapshot;
use crate::monitor::heartbeat::{Beat, Beats};
use crate::monitor::{CameraSnapshot, CameraState, CameraStats};
use crate::mqtt::commands::ControlRequest;
use crate::mqtt::{CommitHook, PublisherReport, run_publisher};
use crate::outbox::{Handover, Outbox, OutboxError};
use crate::pipeline::CameraPipeline;
use crate::pipeline::task::{CameraExit, CameraTask, SnapshotRequests};
use crate::source::runner::{DefaultOpener, Opener};
use cameras::{Action, CameraSet};
use hub::Hub;

/// Time between the openings of cameras started together (see the module doc).
pub const START_SPACING: Duration = Duration::from_millis(250);
/// The last of the cameras started together opens at most this long after the first.
pub const START_SPREAD_MAX: Duration = Duration::from_secs(4);
/// Snapshot requests a camera holds before it refuses more: each is answered by the
/// same next frame, so more would only be more of the same.
const SNAPSHOTS_WAITING: usize = 8;

/// The spacing of `n` cameras started together: [`START_SPACING`], or less so
/// that the last one opens within [`START_SPREAD_MAX`].
fn start_spacing(n: usize) -> Duration {
    match n {
        0 | 1 => Duration::ZERO,
        n => START_SPACING.min(START_SPREAD_MAX / (n as u32 - 1)),
    }
}

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
    /// Inference time per analysed frame, every camera's, over the whole run.
    pub inference: HistogramSnapshot,
    /// Capture-to-detection latency, every camera's, over the whole run (live and
    /// real-time sources).
    pub latency: HistogramSnapshot,
}

impl RunSummary {
    /// Every camera's counters added up.
    pub fn total(&self) -> CameraSnapshot {
        let mut t = CameraSnapshot::default();
        for (_, s) in &self.cameras {
            t.accumulate(s);
        }
        t
    }
}

/// Opens the detector: the model, or a stand-in in tests.
pub trait OpenDetector: Send + Sync {
    fn open(&self) -> Result<Box<dyn Infer>, DetectError>;
}

/// The ONNX Runtime detector of `[model]` and `[detector]`.
pub struct ModelOpener(pub DetectorOptions);

impl OpenDetector for ModelOpener {
    fn open(&self) -> Result<Box<dyn Infer>, DetectError> {
        Ok(Box::new(Detector::open(&self.0)?))
    }
}

/// What a node is made of besides its configuration.
#[derive(Clone)]
pub struct Parts {
    /// Opens camera sources.
    pub opener: Arc<dyn Opener>,
    /// Opens the detector (again, when its thread died).
    pub detector: Arc<dyn OpenDetector>,
    pub clock: SharedClock,
}

impl Parts {
    /// The real thing: FFmpeg and image sources, the configured model, the system clock.
    pub fn real(config: &Config) -> Self {
        Self {
            opener: Arc::new(DefaultOpener),
            detector: Arc::new(ModelOpener(options::detector(config))),
            clock: crate::clock::system(),
        }
    }
}

/// What the process around a node hands it, besides the configuration and the parts.
pub struct Hooks {
    /// Fires once to stop the node.
    pub shutdown: CancellationToken,
    /// Called with every event once it is committed to the outbox.
    pub on_commit: CommitHook,
    /// Commands of the box itself (SIGHUP: reload), carried out like MQTT commands.
    pub commands: Option<mpsc::Receiver<ControlRequest>>,
    /// Told when the node is ready, how it is, that it is alive, and that it stops.
    pub manager: systemd::Manager,
}

impl Hooks {
    /// Stops on `shutdown`, tells every commit to `on_commit`; no local commands, no
    /// service manager.
    pub fn new(shutdown: CancellationToken, on_commit: CommitHook) -> Self {
        Self {
            shutdown,
            on_commit,
            commands: None,
            manager: systemd::Manager::none(),
        }
    }
}

/// Opens the configured detector and checks every class a rule names exists in the model.
pub fn open_detector(config: &Config) -> Result<Detector, StartError> {
    let detector = Detector::open(&options::detector(config))?;
    let m = detector.manifest();
    options::check_classes(config, &m.name, &m.labels)?;
    Ok(detector)
}

/// Runs the node until every camera ends or `hooks.shutdown` fires.
pub async fn run(config: Config, hooks: Hooks) -> Result<RunSummary, StartError> {
    let parts = Parts::real(&config);
    run_with(config, parts, hooks).await
}

/// [`run`], made of `parts`.
pub async fn run_with(
    config: Config,
    parts: Parts,
    hooks: Hooks,
) -> Result<RunSummary, StartError> {
    let Hooks {
        shutdown,
        on_commit,
        commands,
        manager,
    } = hooks;
    let manager = Arc::new(manager);
    let started = Instant::now();
    let infer = parts.detector.open()?;
    let labels = infer.labels().to_vec();
    options::check_classes(&config, infer.model_name(), &labels)?;
    let mut outbox = Outbox::open_with(
        &config.outbox.path,
        options::outbox_limits(&config),
        parts.clock.clone(),
    )?;
    outbox.end_left_open(&config.mqtt.topic_prefix);
    let pending = outbox.depth()?;
    if pending > 0 {
        tracing::info!(
            pending,
            "outbox holds events from an earlier run; they are delivered first"
        );
    }
    // Counters exist before the publisher starts, so its first report names every camera.
    let stats: Vec<(String, Arc<CameraStats>)> = config
        .cameras
        .iter()
        .map(|c| (c.id.clone(), Arc::new(CameraStats::default())))
        .collect();
    let (list_tx, list_rx) = watch::channel(stats.clone());
    let (control_tx, control_rx) = mpsc::channel::<ControlRequest>(8);
    let mut pub_opts = options::publisher(&config, list_rx, parts.clock.clone())?;
    pub_opts.control = Some(control_tx);
    let jpeg_budget = pub_opts.jpeg_budget.clone();
    let facts = info::Facts::gather(
        &config,
        infer.model_name(),
        &labels,
        infer.execution_provider(),
    );
    let info = info::Sender::new(facts, parts.clock.clone(), &config);
    pub_opts.info = Some(info.tx.subscribe());

    let mut status = systemd::Status::new(list_tx.subscribe(), &config.outbox.path);
    let service_options = options::service(&config);
    let detector_beat = Arc::new(Beat::default());
    let (service, detector_thread) =
        DetectorService::spawn_beating(infer, service_options, detector_beat.clone());
    let (events_tx, events_rx) = mpsc::channel::<Handover>(1024);
    let mut beats = Beats::default();
    beats.watch("detector", detector_beat.clone());
    let (on_commit, publisher_probe) = systemd::publisher_beat(on_commit, &events_tx);
    beats.watch_with("publisher", publisher_probe);
    let publisher = tokio::spawn(run_publisher(
        pub_opts,
        outbox,
        events_rx,
        shutdown.clone(),
        on_commit,
    ));

    let mut node = Node {
        set: CameraSet::new(config),
        labels,
        stats,
        live: HashMap::new(),
        tasks: JoinSet::new(),
        task_ids: HashMap::new(),
        detector: Hub {
            service,
            threads: vec![detector_thread],
            open: parts.detector.clone(),
            options: service_options,
            beat: detector_beat,
        },
        events: events_tx,
        shutdown: shutdown.clone(),
        list_tx,
        parts,
        manager: manager.clone(),
        watching: CancellationToken::new(),
        jpeg_budget,
        info,
    };
    let start = node.set.start_configured(Instant::now());
    node.apply(start).await;
    node.publish_list();
    manager.ready(&status.line());
    let watcher = tokio::spawn(systemd::watch(
        manager,
        beats,
        status,
        node.watching.clone(),
    ));
    node.supervise(control_rx, commands).await;
    let _ = watcher.await;

    let stats = std::mem::take(&mut node.stats);
    let threads = std::mem::take(&mut node.detector.threads);
    // Dropping the last event sender and detector handle lets both wind down.
    drop(node);
    let report = publisher.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "publisher task failed");
        PublisherReport::default()
    });
    for t in threads {
        let _ = tokio::task::spawn_blocking(move || t.join()).await;
    }
    let (mut inference, mut latency) = (HistogramSnapshot::default(), HistogramSnapshot::default());
    for (_, s) in &stats {
        inference.merge(&s.inference.snapshot());
        latency.merge(&s.latency.snapshot());
    }
    Ok(RunSummary {
        inference,
        latency,
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

/// A camera run in progress.
struct Live {
    token: CancellationToken,
    /// Where snapshot requests go; the camera answers with its next frame.
    snapshots: SnapshotRequests,
    generation: u64,
}

struct Node {
    set: CameraSet,
    /// The model's labels, for rule classes.
    labels: Vec<String>,
    /// Counters of every camera this run has known, in order (kept across restarts).
    stats: Vec<(String, Arc<CameraStats>)>,
    live: HashMap<String, Live>,
    tasks: JoinSet<CameraExit>,
    /// Which camera run each task is, also when it panics.
    task_ids: HashMap<tokio::task::Id, (String, u64)>,
    detector: Hub,
    events: mpsc::Sender<Handover>,
    shutdown: CancellationToken,
    /// What the publisher reports on (status and stats topics).
    list_tx: watch::Sender<Vec<(String, Arc<CameraStats>)>>,
    parts: Parts,
    /// The service manager: told about reloads and the stop.
    manager: Arc<systemd::Manager>,
    /// Cancelled when the node begins to stop: the watchdog checks end.
    watching: CancellationToken,
    /// The largest JPEG the broker takes (evidence and snapshots are made to fit it).
    jpeg_budget: crate::evidence::JpegBudget,
    /// The info message, made again after a reload.
    info: info::Sender,
}

impl Node {
    fn stats_of(&mut self, id: &str) -> Arc<CameraStats> {
        if let Some((_, s)) = self.stats.iter().find(|(i, _)| i == id) {
            return s.clone();
        }
        let s = Arc::new(CameraStats::default());
        self.stats.push((id.to_string(), s.clone()));
        s
    }

    fn publish_list(&mut self) {
        let ids: Vec<String> = self
            .set
            .config()
            .cameras
            .iter()
            .map(|c| c.id.clone())
            .collect();
        let list = ids
            .iter()
            .map(|id| (id.clone(), self.stats_of(id)))
            .collect();
        self.list_tx.send_replace(list);
    }

    async fn apply(&mut self, actions: Vec<Action>) {
        let starts = actions
            .iter()
            .filter(|a| matches!(a, Action::Start { .. }))
            .count();
        let spacing = start_spacing(starts);
        let mut after = Duration::ZERO;
        for action in actions {
            match action {
                Action::Stop { camera } => {
                    if let Some(live) = self.live.remove(&camera) {
                        live.token.cancel();
                    }
                }
                Action::Start { camera, generation } => {
                    self.start(camera, generation, after).await;
                    after += spacing;
                }
            }
        }
    }

    /// Starts camera `id`, opening its source `after` from now.
    async fn start(&mut self, id: String, generation: u64, after: Duration) {
        let Some(cam) = self.set.camera(&id).cloned() else {
            return;
        };
        let stats = self.stats_of(&id);
        let service = match self.detector.alive().await {
            Ok(s) => s,
            Err(reason) => {
                stats.set_state(&id, CameraState::Error(reason.clone()), "no detector");
                self.died(&id, generation, &reason);
                return;
            }
        };
        let opts = options::pipeline(self.set.config(), &cam, &self.labels);
        let token = self.shutdown.child_token();
        let snapshots = SnapshotRequests::default();
        let task = CameraTask {
            pipeline: CameraPipeline::new(opts, stats.clone(), self.parts.clock.clone()),
            source: options::source(&cam),
            opener: self.parts.opener.clone(),
            detector: service.camera_with_stats(&id, stats.clone()),
            events: self.events.clone(),
            stats,
            stop: token.clone(),
            snapshots: snapshots.clone(),
            position: None,
            evidence: options::evidence(&self.set.config().evidence),
            tap: None,
            jpeg_budget: self.jpeg_budget.clone(),
            start_after: after,
        };
        let span = tracing::info_span!("camera", camera = %id);
        let handle = self.tasks.spawn(task.run().instrument(span));
        self.task_ids.insert(handle.id(), (id.clone(), generation));
        self.live.insert(
            id,
            Live {
                token,
                snapshots,
                generation,
            },
        );
    }

    /// A thread of camera `id` died: schedule its restart.
    fn died(&mut self, id: &str, generation: u64, reason: &str) {
        if let Some(wait) = self.set.died(id, generation, Instant::now()) {
            CameraStats::add(&self.stats_of(id).restarts, 1);
            tracing::error!(camera = %id, reason, retry_in_s = wait.as_secs_f64(), "camera restarting after its thread died");
        }
        if self
            .live
            .get(id)
            .is_some_and(|l| l.generation == generation)
        {
            self.live.remove(id);
        }
    }

    /// A camera task ended (or panicked).
    fn finished(&mut self, joined: Result<(tokio::task::Id, CameraExit), tokio::task::JoinError>) {
        let (task, exit) = match joined {
            Ok((task, exit)) => (task, exit),
            Err(e) => {
                let Some((id, generation)) = self.task_ids.remove(&e.id()) else {
                    return;
                };
                let reason = if e.is_panic() {
                    let payload = e.into_panic();
                    format!(
                        "its task died: {}",
                        crate::thread::panic_message(payload.as_ref())
                    )
                } else {
                    "its task was cancelled".to_string()
                };
                self.stats_of(&id).set_state(
                    &id,
                    CameraState::Error(reason.clone()),
                    "camera task died",
                );
                self.died(&id, generation, &reason);
                return;
            }
        };
        let Some((id, generation)) = self.task_ids.remove(&task) else {
            return;
        };
        match exit {
            CameraExit::Done => {
                if self.set.ended(&id, generation) {
                    self.live.remove(&id);
                }
            }
            CameraExit::Died(reason) => self.died(&id, generation, &reason),
        }
    }

    /// Runs until every camera has ended (and none is disabled or due to restart) or shutdown.
    /// Commands come from the publisher (MQTT) and from the box itself (`local`).
    async fn supervise(
        &mut self,
        mut control: mpsc::Receiver<ControlRequest>,
        mut local: Option<mpsc::Receiver<ControlRequest>>,
    ) {
        loop {
            if !self.set.active() {
                break;
            }
            let restart = self.set.next_restart();
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                Some(joined) = self.tasks.join_next_with_id() => self.finished(joined),
                Some(req) = control.recv() => self.serve(req).await,
                Some(req) = recv(&mut local) => self.serve(req).await,
                _ = sleep_until(restart), if restart.is_some() => {
                    let due = self.set.due(Instant::now());
                    self.apply(due).await;
                }
            }
        }
        self.manager.stopping();
        self.watching.cancel();
        control.close();
        for live in self.live.values() {
            live.token.cancel();
        }
        while self.tasks.join_next().await.is_some() {}
    }
}

/// The next command on `commands`; never, when there are none.
async fn recv(commands: &mut Option<mpsc::Receiver<ControlRequest>>) -> Option<ControlRequest> {
    match commands {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cameras_started_together_are_spaced_within_the_spread() {
        assert_eq!(start_spacing(0), Duration::ZERO);
        assert_eq!(start_spacing(1), Duration::ZERO);
        assert_eq!(start_spacing(16), START_SPACING);
        // 64 cameras: the last opens START_SPREAD_MAX after the first, not 15.75 s.
        let s = start_spacing(64);
        assert!(s < START_SPACING);
        let last = s * 63;
        assert!(last <= START_SPREAD_MAX && START_SPREAD_MAX - last < Duration::from_micros(1));
    }
}
