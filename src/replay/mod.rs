//! Replays: the configured cameras on their files, with no broker and no
//! outbox, for people who tune rules.
//!
//! The real camera tasks run exactly as `run` runs them: the same
//! [`CameraTask`] (source, pipeline, motion gate, evidence within the
//! configured packet limit) and the same detector service, built from the
//! same options. What the tasks hand over is
//! numbered as the outbox numbers it (`seq` from 1, `evidence` set when a JPEG
//! was made) and given to the caller, event by event, instead of being stored
//! and published; so the events are the ones `run` publishes for the same
//! input, but for their ids and wall-clock times.
//!
//! Optionally every analysed frame of one camera is drawn ([`overlay`]) and
//! encoded to an H.264 video ([`video`]) on a thread of its own.

pub mod overlay;
pub mod video;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{CameraConfig, Config, ConfigError};
use crate::detect::DetectorService;
use crate::event::Event;
use crate::monitor::{CameraSnapshot, CameraStats};
use crate::node::{StartError, options};
use crate::outbox::Handover;
use crate::pipeline::CameraPipeline;
use crate::pipeline::task::{CameraExit, CameraTask, Tapped};
use crate::source::runner::DefaultOpener;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("writing events: {0}")]
    Events(std::io::Error),
    #[error("annotated video: {0}")]
    Video(#[from] video::VideoError),
    #[error("camera {camera}: {reason}")]
    Camera { camera: String, reason: String },
}

/// Which cameras a replay runs, on which files.
#[derive(Debug, Clone)]
pub struct Plan {
    pub config: Config,
    pub cameras: Vec<CameraConfig>,
}

/// The enabled cameras of `config`, or only `camera`; `clip` replaces the one
/// camera's file. Live sources are refused: a replay reads files.
pub fn plan(
    config: Config,
    camera: Option<&str>,
    clip: Option<&Path>,
) -> Result<Plan, ConfigError> {
    let mut cameras: Vec<CameraConfig> = match camera {
        Some(id) => {
            let Some(c) = config.cameras.iter().find(|c| c.id == id) else {
                let ids: Vec<&str> = config.cameras.iter().map(|c| c.id.as_str()).collect();
                return Err(config.key_error(
                    "camera",
                    format!("no camera {id:?} (cameras: {})", ids.join(", ")),
                ));
            };
            vec![c.clone()]
        }
        None => config
            .cameras
            .iter()
            .filter(|c| c.enabled)
            .cloned()
            .collect(),
    };
    if let Some(clip) = clip {
        if cameras.len() != 1 {
            return Err(config.key_error(
                "camera",
                format!(
                    "--clip replaces one camera's file, and {} cameras are selected: name one with --camera",
                    cameras.len()
                ),
            ));
        }
        cameras[0].url = clip.display().to_string();
    }
    if cameras.is_empty() {
        return Err(config.key_error("camera", "no enabled camera to replay"));
    }
    for c in &mut cameras {
        let source = options::source(c);
        if source.is_live() {
            return Err(config.key_error(
                format!("camera[{}].url", c.id),
                format!(
                    "{} is a live source; a replay reads files (give --clip)",
                    c.url
                ),
            ));
        }
        // A replay reads as fast as it analyses, from the start to the end, once.
        c.realtime = false;
        c.looping = false;
    }
    Ok(Plan { config, cameras })
}

/// Where a camera's replay is.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    pub camera: String,
    /// Stream time of the last analysed frame.
    pub position: Duration,
    /// The file's length, when FFmpeg knows it.
    pub duration: Option<Duration>,
    pub analysed: u64,
}

/// What a replay did.
#[derive(Debug, Clone)]
pub struct Summary {
    pub events: u64,
    pub cameras: Vec<(String, CameraSnapshot)>,
    /// Frames written to the annotated video.
    pub video_frames: Option<i64>,
    pub wall: Duration,
}

/// Takes each event with its evidence JPEG.
pub type EventSink<'a> = dyn FnMut(&Event, Option<&[u8]>) -> std::io::Result<()> + Send + 'a;

/// Where a replay's results go.
pub struct Outputs<'a> {
    /// Each event, in the order the outbox would number them, with its evidence JPEG.
    pub events: &'a mut EventSink<'a>,
    /// Called about twice a second, and once at the end.
    pub progress: &'a mut (dyn FnMut(&[Progress]) + Send),
    /// Draw every analysed frame into this H.264 video (one camera only).
    pub annotate: Option<PathBuf>,
}

/// Runs `plan` to the end of every camera's file.
pub async fn run(plan: Plan, out: Outputs<'_>) -> Result<Summary, ReplayError> {
    let started = std::time::Instant::now();
    let Plan { config, cameras } = plan;
    if out.annotate.is_some() && cameras.len() != 1 {
        return Err(config
            .key_error(
                "camera",
                "--annotate draws one camera: name it with --camera",
            )
            .into());
    }
    let detector = crate::node::open_detector(&config)?;
    let labels = detector.manifest().labels.clone();
    let (service, detector_thread) =
        DetectorService::spawn_with(detector, options::service(&config));
    let (events_tx, mut events_rx) = mpsc::channel::<Handover>(1024);
    let stop = CancellationToken::new();
    let clock = crate::clock::system();
    let mut tasks = JoinSet::new();
    let mut watched = Vec::new();
    let mut encoder = None;
    let jpeg_budget = options::jpeg_budget(&config);
    for cam in &cameras {
        let stats = Arc::new(CameraStats::default());
        let (position_tx, position) = watch::channel(Duration::ZERO);
        let source = options::source(cam);
        let tap = match &out.annotate {
            Some(path) => {
                let (tx, rx) = mpsc::channel::<Tapped>(8);
                let drawer =
                    overlay::Overlay::new(cam, labels.clone(), options::privacy(&config.privacy));
                let (path, fps) = (path.clone(), cam.fps);
                encoder = Some(std::thread::spawn(move || encode(rx, drawer, &path, fps)));
                Some(tx)
            }
            None => None,
        };
        let task = CameraTask {
            pipeline: CameraPipeline::new(
                options::pipeline(&config, cam, &labels),
                stats.clone(),
                clock.clone(),
            ),
            source: source.clone(),
            opener: Arc::new(DefaultOpener),
            detector: service.camera_with_stats(&cam.id, stats.clone()),
            events: events_tx.clone(),
            stats: stats.clone(),
            stop: stop.child_token(),
            // No snapshots in a replay: nothing asks.
            snapshots: Default::default(),
            position: Some(position_tx),
            evidence: options::evidence(&config.evidence),
            tap,
            jpeg_budget: jpeg_budget.clone(),
            start_after: Duration::ZERO,
        };
        let span = tracing::info_span!("camera", camera = %cam.id);
        let id = cam.id.clone();
        tasks.spawn(tracing::Instrument::instrument(
            async move { (id, task.run().await) },
            span,
        ));
        watched.push(Watched {
            camera: cam.id.clone(),
            duration: video::duration(&cam.url),
            stats,
            position,
        });
    }
    drop(events_tx);
    drop(service);

    let progress = |watched: &[Watched]| watched.iter().map(Watched::progress).collect::<Vec<_>>();
    let mut seq = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut failure = None;
    loop {
        tokio::select! {
            handover = events_rx.recv() => {
                let Some(Handover { mut event, evidence, .. }) = handover else { break };
                seq += 1;
                event.seq = seq;
                if evidence.is_some() {
                    event.evidence = Some(event.evidence_suffix());
                }
                if let Err(e) = (out.events)(&event, evidence.as_deref()) {
                    failure = Some(ReplayError::Events(e));
                    stop.cancel();
                    break;
                }
            }
            _ = tick.tick() => (out.progress)(&progress(&watched)),
        }
    }
    (out.progress)(&progress(&watched));
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((_, CameraExit::Done)) => {}
            Ok((camera, CameraExit::Died(reason))) => {
                failure.get_or_insert(ReplayError::Camera { camera, reason });
            }
            Err(e) => {
                failure.get_or_insert(ReplayError::Camera {
                    camera: "?".into(),
                    reason: e.to_string(),
                });
            }
        }
    }
    let _ = tokio::task::spawn_blocking(move || detector_thread.join()).await;
    let video_frames = match encoder {
        Some(handle) => {
            let joined = tokio::task::spawn_blocking(move || handle.join())
                .await
                .map_err(|e| ReplayError::Camera {
                    camera: cameras[0].id.clone(),
                    reason: e.to_string(),
                })?;
            match joined {
                Ok(r) => Some(r?),
                Err(p) => {
                    return Err(ReplayError::Camera {
                        camera: cameras[0].id.clone(),
                        reason: format!(
                            "the video thread died: {}",
                            crate::thread::panic_message(p.as_ref())
                        ),
                    });
                }
            }
        }
        None => None,
    };
    if let Some(e) = failure {
        return Err(e);
    }
    Ok(Summary {
        events: seq,
        cameras: watched
            .iter()
            .map(|w| (w.camera.clone(), w.stats.snapshot()))
            .collect(),
        video_frames,
        wall: started.elapsed(),
    })
}

/// A running camera, as progress reports see it.
struct Watched {
    camera: String,
    duration: Option<Duration>,
    stats: Arc<CameraStats>,
    /// Stream time of the latest frame the camera took.
    position: watch::Receiver<Duration>,
}

impl Watched {
    fn progress(&self) -> Progress {
        Progress {
            camera: self.camera.clone(),
            position: *self.position.borrow(),
            duration: self.duration,
            analysed: self.stats.snapshot().frames_analysed,
        }
    }
}

/// Draws and encodes every tapped frame until the camera ends. Frames the source
/// delivers are drawn in order; the video's rate is the camera's analysis `fps`.
fn encode(
    mut rx: mpsc::Receiver<Tapped>,
    mut drawer: overlay::Overlay,
    path: &Path,
    fps: f64,
) -> Result<i64, video::VideoError> {
    let mut writer: Option<video::VideoWriter> = None;
    while let Some(t) = rx.blocking_recv() {
        let img = drawer.draw(&t);
        let w = match &mut writer {
            Some(w) => w,
            None => writer.insert(video::VideoWriter::create(
                path,
                img.width(),
                img.height(),
                fps,
            )?),
        };
        w.push(&img, t.frame.pts)?;
    }
    match writer {
        Some(w) => {
            let n = w.frames();
            w.finish()?;
            Ok(n)
        }
        None => Ok(0),
    }
}
