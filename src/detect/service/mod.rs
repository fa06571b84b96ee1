//! One detector for every camera, on its own thread.
//!
//! In: frames from camera tasks, each under its camera's name. Out: each
//! frame's detections (or why there are none), back to the task that sent it.
//!
//! Each camera has its own bounded queue; the thread serves cameras
//! round-robin, so a busy camera cannot starve a quiet one. When a camera's
//! queue is full its oldest frame is dropped (answered with
//! [`ServiceError::Dropped`] and counted): latency never grows without bound.
//! With a model whose batch dimension is dynamic and `max_batch > 1`, the
//! thread gathers up to `max_batch` frames in the same round-robin order (one
//! per camera per round), waiting at most `max_wait` for more once it has
//! one, and runs them as one inference. With a fixed batch of 1, or
//! `max_batch = 1`, frames run one at a time and nobody waits.
//!
//! Up to [`ServiceOptions::runs`] inferences run at once, each on a thread and
//! model session of its own ([`Infer::replica`]). The service starts with one;
//! the next opens, on its own thread while the others go on, only when frames
//! still wait once every run has taken its batch and did for more than half of
//! the last few seconds ([`ServiceOptions::busy_window`]): a loaded detector,
//! not two cameras that met once or every camera's first frame at start-up.
//! Two runs on two cores analyse more frames per second than one run using both
//! (ONNX Runtime's threads wait for each other inside an inference; two
//! inferences fill those gaps). A replica that cannot open leaves the service at
//! the runs it has, with a warning.
//!
//! If the inference thread dies (a panic in the model runtime or a decoder
//! bug), every waiting frame and every later request is answered with
//! [`ServiceError::Died`] and its reason, so no camera waits forever; the node
//! sees it and starts a new service.
//!
//! The thread runs anything that can [`Infer`]: the ONNX Runtime
//! [`Detector`], or a stand-in in tests.
//!
//! Per camera, the service keeps the number of frames analysed and dropped
//! ([`DetectorService::counts`]); a handle made with
//! [`DetectorService::camera_with_stats`] also keeps the camera's
//! [`CameraStats::detector_queue`] gauge and [`CameraStats::frames_shed`]
//! counter up to date.
//!
//! The service keeps a [`Beat`]: one unit done per inference run, and the
//! frames waiting or running as its backlog, so a watchdog can tell a busy
//! detector from a wedged one. A node passes the same beat to every service
//! it starts, so a restarted detector keeps beating on it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::{DetectOutput, RgbView};
use crate::monitor::CameraStats;
use crate::monitor::heartbeat::Beat;
use crate::source::Frame;

mod infer;
pub use infer::{Infer, Replicate};

/// Why the service gave no detections for a frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// A newer frame of the same camera arrived while this one waited: shed, counted.
    #[error("frame dropped: a newer frame of this camera replaced it in the queue")]
    Dropped,
    #[error("detector service stopped")]
    Stopped,
    /// The inference thread died; the reason is its panic message.
    #[error("the detector thread died: {0}")]
    Died(String),
    #[error("{0}")]
    Inference(String),
}

/// How the service queues and batches frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceOptions {
    /// Frames a camera may have waiting; the oldest is dropped beyond it (at least 1).
    pub depth: usize,
    /// Frames run in one inference at most; 1 runs them one at a time. Only a model with
    /// a dynamic batch dimension batches ([`Detector::batch_refusal`]).
    pub max_batch: usize,
    /// Once a batch holds a frame, how long to wait for more before running it.
    pub max_wait: Duration,
    /// Inferences that may run at once, each on a thread and session of its own (0: two
    /// on the CPU, one on any other provider). Another opens only when frames keep
    /// waiting while every run is busy, so a lone live camera never pays for it.
    pub runs: usize,
    /// How long, about, frames must keep waiting before another run opens: frames
    /// waited for more than half of a time that decays over this window. A burst (every
    /// camera's first frame at start-up, cameras back after an outage) does not count.
    pub busy_window: Duration,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        Self {
            depth: 2,
            max_batch: 1,
            max_wait: Duration::from_millis(5),
            runs: 0,
            busy_window: Duration::from_secs(10),
        }
    }
}

struct Request {
    frame: Arc<Frame>,
    reply: oneshot::Sender<Result<DetectOutput, ServiceError>>,
}

/// One camera's waiting frames and counters.
struct CameraQueue {
    camera: String,
    waiting: VecDeque<Request>,
    analysed: u64,
    dropped: u64,
    /// The camera's published counters, when its handle has them.
    stats: Option<Arc<CameraStats>>,
}

impl CameraQueue {
    /// Publishes the number of waiting frames.
    fn gauge(&self) {
        if let Some(s) = &self.stats {
            s.detector_queue.store(self.waiting.len() as u64, Relaxed);
        }
    }
}

#[derive(Default)]
struct Queues {
    cameras: Vec<CameraQueue>,
    /// Index of the camera served next (round-robin).
    next: usize,
    /// Set when every handle is gone: the thread finishes what waits and ends.
    closed: bool,
    /// Set when the inference thread died, with its panic message.
    died: Option<String>,
    /// Frames taken for the inferences in progress.
    running: usize,
    /// Inference threads serving now, and how many may.
    runs: usize,
    runs_max: usize,
    /// A thread is opening its detector to serve beside the others.
    opening: bool,
    /// The share of the recent time (decaying over the busy window) in which frames
    /// waited while every run was busy; when the last batch was taken and whether it
    /// left frames waiting.
    busy: f64,
    last_take: Option<Instant>,
    left_waiting: bool,
}

impl Queues {
    /// Another run could not open: none is opening, and none will be tried again.
    fn stay_at_runs(&mut self) {
        (self.opening, self.runs_max) = (false, self.runs);
    }

    fn any_waiting(&self) -> bool {
        self.cameras.iter().any(|c| !c.waiting.is_empty())
    }

    /// Frames waiting or running.
    fn backlog(&self) -> u64 {
        let waiting: usize = self.cameras.iter().map(|c| c.waiting.len()).sum();
        (waiting + self.running) as u64
    }

    /// Moves waiting frames into `batch` until it holds `max`: in rounds, one frame per
    /// camera per round, each round starting after the camera served last.
    fn take_fair(&mut self, batch: &mut Vec<(usize, Request)>, max: usize) {
        let n = self.cameras.len();
        while batch.len() < max {
            let (start, before) = (self.next, batch.len());
            for k in 0..n {
                if batch.len() >= max {
                    break;
                }
                let i = (start + k) % n;
                if let Some(req) = self.cameras[i].waiting.pop_front() {
                    self.cameras[i].gauge();
                    batch.push((i, req));
                    self.next = (i + 1) % n;
                }
            }
            if batch.len() == before {
                break;
            }
        }
    }
}

struct Shared {
    queues: Mutex<Queues>,
    wake: Condvar,
    /// Frames a camera may have waiting; the oldest is dropped beyond it.
    depth: usize,
    /// Frames per inference at most, as the model allows (1: no batching).
    max_batch: usize,
    /// Times the model has run so far (a batch is one).
    inferences: AtomicU64,
    /// Progress for the watchdog: runs done, frames waiting or running.
    beat: Arc<Beat>,
    /// Opens another detector to run beside the first, when the model runtime can.
    replicate: Option<Replicate>,
    /// See [`ServiceOptions::busy_window`].
    busy_window: Duration,
    /// The threads started beside the first; it joins them before it ends.
    beside: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The inference thread is gone: answer every waiting frame, refuse new ones.
    fn die(&self, reason: String) {
        tracing::error!(reason = %reason, "the detector thread died; every camera waiting on it is told");
        let mut q = self.lock();
        q.died = Some(reason.clone());
        for cam in &mut q.cameras {
            for req in cam.waiting.drain(..) {
                let _ = req.reply.send(Err(ServiceError::Died(reason.clone())));
            }
            cam.gauge();
        }
        // Nothing waits for this service any more; the node starts a new one.
        q.running = 0;
        self.beat.waiting(0);
        self.wake.notify_all();
    }

    /// The next frames to run together: up to `max` in fair order, gathered for at most
    /// `wait` after the first. `None`: closed and nothing waits.
    fn next_batch(&self, max: usize, wait: Duration) -> Option<Vec<(usize, Request)>> {
        let mut q = self.lock();
        while !q.any_waiting() {
            if q.closed || q.died.is_some() {
                return None;
            }
            q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
        }
        let mut batch = Vec::with_capacity(max);
        q.take_fair(&mut batch, max);
        let deadline = Instant::now() + wait;
        while batch.len() < max && !q.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            q = self
                .wake
                .wait_timeout(q, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
            q.take_fair(&mut batch, max);
        }
        q.running += batch.len();
        self.beat.waiting(q.backlog());
        Some(batch)
    }
}

/// Closes the queues when the last handle is dropped.
struct CloseOnDrop(Arc<Shared>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        let mut q = self.0.lock();
        q.closed = true;
        self.0.wake.notify_all();
    }
}

/// One detector shared by every camera, on its own thread so inference never blocks
/// the async runtime: fair between cameras, bounded per camera, batching across
/// cameras when the model allows it (see the module documentation).
#[derive(Clone)]
pub struct DetectorService {
    shared: Arc<Shared>,
    _close: Arc<CloseOnDrop>,
    /// The camera this handle queues for (see [`DetectorService::camera`]).
    camera: String,
    /// Where this camera's queue depth and drops are published.
    stats: Option<Arc<CameraStats>>,
}

/// A camera's counters in the service.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServiceCounts {
    pub analysed: u64,
    pub dropped: u64,
    /// Frames waiting now.
    pub queued: u64,
}

impl DetectorService {
    /// Starts the inference thread, one frame per inference; `depth` frames may wait per
    /// camera. The thread ends when every handle is dropped and the waiting frames are
    /// answered.
    pub fn spawn(detector: impl Infer, depth: usize) -> (Self, std::thread::JoinHandle<()>) {
        Self::spawn_with(
            detector,
            ServiceOptions {
                depth,
                max_batch: 1,
                ..ServiceOptions::default()
            },
        )
    }

    /// Starts the inference thread with `opts`. Batching is turned off, with a warning
    /// naming the model file, when the model cannot run several frames at once.
    pub fn spawn_with(
        detector: impl Infer,
        opts: ServiceOptions,
    ) -> (Self, std::thread::JoinHandle<()>) {
        Self::spawn_beating(detector, opts, Arc::default())
    }

    /// [`DetectorService::spawn_with`], keeping `beat` (see the module documentation).
    pub fn spawn_beating(
        mut detector: impl Infer,
        opts: ServiceOptions,
        beat: Arc<Beat>,
    ) -> (Self, std::thread::JoinHandle<()>) {
        let max_batch = match (opts.max_batch, detector.batch_refusal()) {
            (0 | 1, _) => 1,
            (n, Some(why)) => {
                tracing::warn!(
                    model = %detector.model_path().display(),
                    max_batch = n,
                    "batching is off for model {}: {why}; frames run one at a time",
                    detector.model_path().display()
                );
                1
            }
            (n, None) => {
                tracing::info!(
                    model = %detector.model_path().display(),
                    max_batch = n,
                    max_wait_ms = opts.max_wait.as_secs_f64() * 1000.0,
                    "batching frames of different cameras into one inference"
                );
                n
            }
        };
        let replicate = detector.replica();
        let runs_max = match (opts.runs, &replicate) {
            (_, None) => 1,
            (0, Some(_)) if detector.execution_provider() == "cpu" => 2,
            (0, Some(_)) => 1,
            (n, Some(_)) => n,
        };
        let shared = Arc::new(Shared {
            queues: Mutex::new(Queues {
                runs: 1,
                runs_max,
                ..Queues::default()
            }),
            wake: Condvar::new(),
            depth: opts.depth.max(1),
            max_batch,
            inferences: AtomicU64::new(0),
            beat,
            replicate,
            busy_window: opts.busy_window,
            beside: Mutex::default(),
        });
        let worker = shared.clone();
        let wait = if max_batch > 1 {
            opts.max_wait
        } else {
            Duration::ZERO
        };
        let handle = std::thread::Builder::new()
            .name("detector".into())
            .spawn(move || {
                serve_or_die(&worker, &mut detector, max_batch, wait);
                // The threads beside it end with it: the queues are closed or it died.
                loop {
                    let beside = std::mem::take(
                        &mut *worker.beside.lock().unwrap_or_else(|p| p.into_inner()),
                    );
                    if beside.is_empty() {
                        break;
                    }
                    for thread in beside {
                        let _ = thread.join();
                    }
                }
            })
            .expect("spawning the detector thread");
        let close = Arc::new(CloseOnDrop(shared.clone()));
        (
            Self {
                shared,
                _close: close,
                camera: String::new(),
                stats: None,
            },
            handle,
        )
    }

    /// Frames per inference at most, as configured and as the model allows.
    pub fn max_batch(&self) -> usize {
        self.shared.max_batch
    }

    /// Times the model has run so far; a batch of frames is one run.
    pub fn inferences(&self) -> u64 {
        self.shared.inferences.load(Relaxed)
    }

    /// A handle whose frames queue under `camera`.
    pub fn camera(&self, camera: &str) -> Self {
        Self {
            camera: camera.to_owned(),
            stats: None,
            ..self.clone()
        }
    }

    /// A handle whose frames queue under `camera` and which keeps `stats`'
    /// `detector_queue` gauge and `frames_shed` counter.
    pub fn camera_with_stats(&self, camera: &str, stats: Arc<CameraStats>) -> Self {
        Self {
            camera: camera.to_owned(),
            stats: Some(stats),
            ..self.clone()
        }
    }

    /// Frames analysed, dropped and waiting for `camera` so far.
    pub fn counts(&self, camera: &str) -> ServiceCounts {
        let q = self.shared.lock();
        q.cameras
            .iter()
            .find(|c| c.camera == camera)
            .map(|c| ServiceCounts {
                analysed: c.analysed,
                dropped: c.dropped,
                queued: c.waiting.len() as u64,
            })
            .unwrap_or_default()
    }

    /// Inferences that can run at once now: 1 until frames waited while one ran and a
    /// second opened (see [`ServiceOptions::runs`]).
    pub fn runs(&self) -> usize {
        self.shared.lock().runs
    }

    /// Why the inference thread died, if it did.
    pub fn died(&self) -> Option<String> {
        self.shared.lock().died.clone()
    }

    /// Detects objects in `frame`, queued under this handle's camera.
    pub async fn detect(&self, frame: Arc<Frame>) -> Result<DetectOutput, ServiceError> {
        let (reply, rx) = oneshot::channel();
        {
            let mut q = self.shared.lock();
            if let Some(reason) = &q.died {
                return Err(ServiceError::Died(reason.clone()));
            }
            if q.closed {
                return Err(ServiceError::Stopped);
            }
            let i = match q.cameras.iter().position(|c| c.camera == self.camera) {
                Some(i) => i,
                None => {
                    q.cameras.push(CameraQueue {
                        camera: self.camera.clone(),
                        waiting: VecDeque::new(),
                        analysed: 0,
                        dropped: 0,
                        stats: None,
                    });
                    q.cameras.len() - 1
                }
            };
            let cam = &mut q.cameras[i];
            if let Some(s) = &self.stats
                && !cam.stats.as_ref().is_some_and(|c| Arc::ptr_eq(c, s))
            {
                cam.stats = Some(s.clone());
            }
            if cam.waiting.len() >= self.shared.depth
                && let Some(old) = cam.waiting.pop_front()
            {
                cam.dropped += 1;
                if let Some(s) = &cam.stats {
                    CameraStats::add(&s.frames_shed, 1);
                }
                let _ = old.reply.send(Err(ServiceError::Dropped));
            }
            cam.waiting.push_back(Request { frame, reply });
            cam.gauge();
            self.shared.beat.waiting(q.backlog());
            self.shared.wake.notify_one();
        }
        match rx.await {
            Ok(result) => result,
            // The thread answers every frame it takes unless it dies with it in hand.
            Err(_) => {
                Err(ServiceError::Died(self.died().unwrap_or_else(|| {
                    "it ended with this frame unanswered".to_string()
                })))
            }
        }
    }
}

/// An inference thread's life: [`serve`], and a panic in it takes the service down
/// with its message.
fn serve_or_die(shared: &Arc<Shared>, detector: &mut dyn Infer, max_batch: usize, wait: Duration) {
    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        serve(shared, detector, max_batch, wait)
    }));
    if let Err(payload) = served {
        shared.die(crate::thread::panic_message(payload.as_ref()));
    }
}

/// An inference thread: batches in fair order until the queues close and empty.
fn serve(shared: &Arc<Shared>, detector: &mut dyn Infer, mut max_batch: usize, wait: Duration) {
    let (mut frames, mut inferences) = (0u64, 0u64);
    while let Some(batch) = shared.next_batch(max_batch, wait) {
        run_beside(shared, max_batch, wait);
        let before = inferences;
        frames += batch.len() as u64;
        inferences += 1;
        let views: Vec<RgbView<'_>> = batch
            .iter()
            .map(|(_, r)| RgbView {
                width: r.frame.width,
                height: r.frame.height,
                data: &r.frame.data,
            })
            .collect();
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run_batch(detector, &views, &mut max_batch, &mut inferences)
        }));
        let results = match ran {
            Ok(results) => results,
            Err(payload) => {
                // The runtime panicked with these frames in hand: say why to every
                // camera, these frames' first, then end the thread.
                let reason = crate::thread::panic_message(payload.as_ref());
                shared.die(reason.clone());
                for (_, req) in batch {
                    let _ = req.reply.send(Err(ServiceError::Died(reason.clone())));
                }
                return;
            }
        };
        drop(views);
        let runs = inferences - before;
        shared.inferences.fetch_add(runs, Relaxed);
        shared.beat.done(runs);
        {
            let mut q = shared.lock();
            for ((cam, _), r) in batch.iter().zip(&results) {
                if r.is_ok() {
                    q.cameras[*cam].analysed += 1;
                }
            }
            q.running = q.running.saturating_sub(batch.len());
            shared.beat.waiting(q.backlog());
        }
        for ((_, req), r) in batch.into_iter().zip(results) {
            let _ = req.reply.send(r);
        }
    }
    tracing::info!(
        thread = std::thread::current().name().unwrap_or("detector"),
        frames,
        inferences,
        mean_batch = %format!("{:.2}", frames as f64 / inferences.max(1) as f64),
        "detector stopped"
    );
}

/// Frames still wait while every inference thread is busy, they did for more than half
/// of the recent time ([`ServiceOptions::busy_window`]), and another run may open:
/// starts one. It opens its own detector first (as long as the first took to open),
/// while the others go on; if it cannot, the service stays at the runs it has.
fn run_beside(shared: &Arc<Shared>, max_batch: usize, wait: Duration) {
    if shared.replicate.is_none() {
        return;
    }
    let n = {
        let mut q = shared.lock();
        let now = Instant::now();
        if let Some(last) = q.last_take {
            // Frames left waiting at the last take waited until now (or until another
            // run took them: near enough).
            let window = shared.busy_window.as_secs_f64().max(1e-3);
            let keep = (-now.duration_since(last).as_secs_f64() / window).exp();
            q.busy = q.busy * keep + if q.left_waiting { 1.0 - keep } else { 0.0 };
        }
        q.last_take = Some(now);
        q.left_waiting = q.any_waiting();
        if q.opening || q.runs >= q.runs_max || !q.left_waiting || q.busy < 0.5 || q.died.is_some()
        {
            return;
        }
        q.opening = true;
        q.runs + 1
    };
    let worker = shared.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("detector-{n}"))
        .spawn(move || {
            let Some(replicate) = &worker.replicate else {
                return;
            };
            let mut detector = match replicate() {
                Ok(detector) => detector,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open another detector to run beside the first; inferences stay {}", n - 1);
                    worker.lock().stay_at_runs();
                    return;
                }
            };
            {
                let mut q = worker.lock();
                (q.opening, q.runs) = (false, q.runs + 1);
            }
            tracing::info!(
                runs = n,
                "frames waited while the detector was busy: {n} inferences run at once from now on"
            );
            serve_or_die(&worker, detector.as_mut(), max_batch, wait);
        });
    match spawned {
        Ok(thread) => shared
            .beside
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(thread),
        Err(e) => {
            tracing::warn!(error = %e, "cannot start another detector thread");
            shared.lock().stay_at_runs();
        }
    }
}

/// Runs one batch: as one inference when it can, else frame by frame (turning
/// batching off for good when single frames work where the batch failed).
fn run_batch(
    detector: &mut dyn Infer,
    views: &[RgbView<'_>],
    max_batch: &mut usize,
    inferences: &mut u64,
) -> Vec<Result<DetectOutput, ServiceError>> {
    let one = |detector: &mut dyn Infer, v: RgbView<'_>| {
        detector
            .detect(v)
            .map_err(|e| ServiceError::Inference(e.to_string()))
    };
    if views.len() == 1 {
        vec![one(detector, views[0])]
    } else {
        match detector.detect_batch(views) {
            Ok(outs) => outs.into_iter().map(Ok).collect(),
            Err(e) => {
                let singles: Vec<_> = views.iter().map(|v| one(detector, *v)).collect();
                // Frames that run alone but not together: the model does not batch.
                *inferences += singles.len() as u64;
                if singles.iter().all(Result::is_ok) {
                    tracing::warn!(
                        model = %detector.model_path().display(),
                        error = %e,
                        "batched inference failed where single frames work; batching is off from now on"
                    );
                    *max_batch = 1;
                }
                singles
            }
        }
    }
}

#[cfg(test)]
mod tests;
