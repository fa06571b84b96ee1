//! The async shell around a [`CameraPipeline`]: one task per camera.
//!
//! It starts the camera's decode thread (the source runner, which owns
//! reconnects and the camera's connection state), takes frames from the
//! one-frame slot, asks the detector when the pipeline wants it, renders
//! the evidence JPEG of each `start` event off the runtime, and hands events
//! to the publisher. It decides nothing itself. A file read as fast as it is
//! analysed keeps up to two frames at the detector when the pipeline
//! [looks ahead](CameraPipeline::looks_ahead): the next frame is looked at
//! while the detector works on the last, and the answers are taken in order.
//!
//! A snapshot is asked for, not kept: the task answers a request with the next
//! frame it takes, made RGB for it, so no camera holds a full RGB frame between
//! snapshots and a snapshot shows the street as it is, not as it was when the
//! detector last looked.
//!
//! A thread that dies is seen: the decode thread closes the slot as it
//! unwinds and its panic comes back from `join`; a dead detector answers
//! [`ServiceError::Died`]. Either way the camera's open incidents are ended,
//! its state becomes `error(reason)` and the task returns
//! [`CameraExit::Died`], for the node to restart it with backoff.

use std::future::Future;
use std::sync::Arc;

use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{CameraPipeline, Detected, Outgoing, Step};
use crate::detect::{DetectOutput, DetectorService, ServiceError};
use crate::event::Masked;
use crate::evidence::{Annotation, EvidenceOptions, JpegBudget, Method};
use crate::monitor::{CameraState, CameraStats};
use crate::outbox::Handover;
use crate::source::ffmpeg::RgbMaker;
use crate::source::runner::{self, Opener, SourceOptions};
use crate::source::{Frame, FrameSlot, SlotMode};

/// Runs the detector on a frame: the shared [`DetectorService`], or a stand-in in tests.
/// The answer does not borrow the detector, so a camera can have a frame at the
/// detector while it looks at the next one.
pub trait Detect: Send + Sync + 'static {
    fn detect(
        &self,
        frame: Arc<Frame>,
    ) -> impl Future<Output = Result<DetectOutput, ServiceError>> + Send + 'static;
}

impl Detect for DetectorService {
    fn detect(
        &self,
        frame: Arc<Frame>,
    ) -> impl Future<Output = Result<DetectOutput, ServiceError>> + Send + 'static {
        let service = self.clone();
        async move { DetectorService::detect(&service, frame).await }
    }
}

/// What a frame taken from the slot became.
enum Looked {
    /// The motion gate held it: its events.
    Held(Arc<Frame>, Vec<Outgoing>),
    /// It goes to the detector.
    Detect(Arc<Frame>),
    /// It has no picture: skipped, nothing waits for it.
    NoPicture,
}

/// What the camera task does next.
enum Next {
    /// A frame from the slot (`None`: the slot is closed).
    Frame(Option<Frame>),
    /// The oldest frame at the detector has its answer.
    Answered(Result<DetectOutput, ServiceError>),
}

/// A frame taken for a snapshot (it has RGB pixels) and what a snapshot of it masks.
#[derive(Debug, Clone)]
pub struct Latest {
    pub frame: Arc<Frame>,
    pub masked: Vec<Masked>,
    pub method: Method,
}

/// Snapshot requests waiting for a camera's next frame: the node adds them, the
/// camera task answers them. Requests whose asker gave up are dropped, so a camera
/// that takes no frame for a while does not fill up with dead ones.
#[derive(Debug, Clone, Default)]
pub struct SnapshotRequests(Arc<std::sync::Mutex<Waiting>>);

#[derive(Debug, Default)]
struct Waiting {
    requests: Vec<oneshot::Sender<Latest>>,
    /// The camera task ended: no frame will come.
    ended: bool,
}

/// Why a snapshot request was not taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotAsked {
    /// This many requests already wait for the camera's next frame.
    Full(usize),
    /// The camera task has ended.
    Ended,
}

impl SnapshotRequests {
    /// Adds a request for the camera's next frame, unless `max` already wait.
    pub fn ask(&self, max: usize) -> Result<oneshot::Receiver<Latest>, NotAsked> {
        let mut w = self.lock();
        if w.ended {
            return Err(NotAsked::Ended);
        }
        w.requests.retain(|r| !r.is_closed());
        if w.requests.len() >= max {
            return Err(NotAsked::Full(w.requests.len()));
        }
        let (tx, rx) = oneshot::channel();
        w.requests.push(tx);
        Ok(rx)
    }

    /// Whether a request waits for a frame (those whose asker gave up are dropped).
    fn waiting(&self) -> bool {
        let mut w = self.lock();
        w.requests.retain(|r| !r.is_closed());
        !w.requests.is_empty()
    }

    /// Answers every waiting request with the frame `latest` makes (only made if
    /// one waits).
    fn answer(&self, latest: impl FnOnce() -> Latest) {
        let requests = std::mem::take(&mut self.lock().requests);
        if requests.is_empty() {
            return;
        }
        let latest = latest();
        for reply in requests {
            let _ = reply.send(latest.clone());
        }
    }

    /// No more frames: every waiting request is told so, and later ones are refused.
    fn end(&self) {
        let mut w = self.lock();
        w.ended = true;
        w.requests.clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // The lock guards a list: one that panicked mid-update is still a list.
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// How a camera task ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraExit {
    /// The source ended or failed for good, or the camera was stopped: nothing to restart.
    Done,
    /// One of the camera's threads (decode, detector) died: restart it.
    Died(String),
}

/// One camera's task and what it talks to.
pub struct CameraTask<D: Detect> {
    pub pipeline: CameraPipeline,
    pub source: SourceOptions,
    pub opener: Arc<dyn Opener>,
    pub detector: D,
    /// Where events go: the publisher, which commits them to the outbox.
    pub events: mpsc::Sender<Handover>,
    pub stats: Arc<CameraStats>,
    pub stop: CancellationToken,
    /// Snapshot requests: each is answered with the next frame the task takes.
    pub snapshots: SnapshotRequests,
    /// Stream time of the latest frame the task took (replays report progress by
    /// it); `None` for the daemon.
    pub position: Option<watch::Sender<Duration>>,
    /// How evidence of start events is made; `None`: no evidence.
    pub evidence: Option<EvidenceOptions>,
    /// Every analysed frame with what the pipeline made of it (replays draw them);
    /// `None` for the daemon.
    pub tap: Option<mpsc::Sender<Tapped>>,
    /// The largest JPEG the broker takes (evidence is made to fit it).
    pub jpeg_budget: JpegBudget,
    /// How long to wait before opening the source (the node spaces the cameras it
    /// starts together; see [`crate::node`]). The camera stays `connecting` meanwhile.
    pub start_after: std::time::Duration,
}

/// An analysed frame and what the pipeline made of it.
#[derive(Debug, Clone)]
pub struct Tapped {
    pub frame: Arc<Frame>,
    /// The detections the rules saw (source pixels).
    pub detections: Vec<crate::geom::Detection>,
    /// The confirmed tracks.
    pub tracks: Vec<crate::analytics::TrackedObject>,
    /// The motion gate held the frame: the detector did not run on it.
    pub held: bool,
    /// The events of this frame.
    pub events: Vec<crate::event::Event>,
}

impl<D: Detect> CameraTask<D> {
    pub async fn run(mut self) -> CameraExit {
        if !self.start_after.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(self.start_after) => {}
                _ = self.stop.cancelled() => return CameraExit::Done,
            }
        }
        let slot = FrameSlot::new(self.source.slot_mode());
        let decode = {
            let (slot, stats, stop) = (slot.clone(), self.stats.clone(), self.stop.clone());
            let (opener, source) = (self.opener.clone(), self.source.clone());
            std::thread::Builder::new()
                .name(format!("decode-{}", source.camera))
                .spawn(move || runner::run_with(opener.as_ref(), &source, &slot, &stats, &stop))
        };
        let decode = match decode {
            Ok(handle) => handle,
            Err(e) => return self.died(format!("cannot start its decode thread: {e}")),
        };
        // Closing the slot on stop wakes both sides.
        let closer = {
            let (slot, stop) = (slot.clone(), self.stop.clone());
            tokio::spawn(async move {
                stop.cancelled().await;
                slot.close();
            })
        };

        let mut died: Option<String> = None;
        let mut rgb = RgbMaker::new();
        // A file read as fast as it is analysed has its next frame ready at once: the
        // pipeline looks at it while the detector works on the last one (without the
        // motion gate). A live or real-time camera hands over one frame at a time, so
        // under load its stale frames are replaced in the slot instead of queueing.
        let ahead = if self.pipeline.looks_ahead() && self.source.slot_mode() == SlotMode::Block {
            2
        } else {
            1
        };
        // The frames at the detector, oldest first, with their answers to come.
        let mut waiting: std::collections::VecDeque<(Arc<Frame>, JoinHandle<_>)> =
            std::collections::VecDeque::new();
        let mut open = true;
        loop {
            let room = open && waiting.len() < ahead;
            // The oldest answer first; a new frame while it is being worked on.
            let next = match waiting.front_mut() {
                Some((_, answer)) if !room => Next::Answered(joined(answer.await)),
                Some((_, answer)) => tokio::select! {
                    biased;
                    answer = answer => Next::Answered(joined(answer)),
                    frame = slot.take() => Next::Frame(frame),
                },
                None if room => Next::Frame(slot.take().await),
                None => break,
            };
            match next {
                Next::Frame(None) => open = false,
                Next::Frame(Some(frame)) => match self.look(frame, &mut rgb) {
                    Looked::Held(frame, out) => {
                        if !self.deliver(&frame, out, true).await {
                            break;
                        }
                    }
                    Looked::Detect(frame) => {
                        let answer = tokio::spawn(self.detector.detect(frame.clone()));
                        waiting.push_back((frame, answer));
                    }
                    Looked::NoPicture => {}
                },
                Next::Answered(answer) => {
                    let Some((frame, _)) = waiting.pop_front() else {
                        unreachable!("an answer comes only for a frame at the detector");
                    };
                    match answer {
                        Ok(found) => {
                            let out = self.pipeline.detected(Detected::Found {
                                detections: found.detections,
                                inference: found.elapsed,
                            });
                            if !self.deliver(&frame, out, false).await {
                                break;
                            }
                        }
                        Err(ServiceError::Died(reason)) => {
                            died = Some(format!("the detector thread died: {reason}"));
                            break;
                        }
                        Err(ServiceError::Stopped) => break,
                        Err(e) => {
                            tracing::warn!(error = %e, "detection failed; frame skipped");
                            self.pipeline.detected(Detected::Skipped);
                        }
                    }
                }
            }
        }
        self.snapshots.end();
        let ends = self.pipeline.finish();
        self.emit(ends, None).await;
        slot.close();
        closer.abort();
        let joined = tokio::task::spawn_blocking(move || decode.join()).await;
        if let Ok(Err(payload)) = joined {
            let reason = crate::thread::panic_message(payload.as_ref());
            died = Some(format!("its decode thread died: {reason}"));
        }
        match died {
            Some(reason) => self.died(reason),
            None => {
                tracing::info!(state = %self.stats.state(), stats = ?self.stats.snapshot(), "camera stopped");
                CameraExit::Done
            }
        }
    }

    /// Looks at a frame taken from the slot: the pipeline's scene model and motion
    /// gate, then RGB only for a frame the detector sees, that is an event's evidence,
    /// that a snapshot was asked for, or that a tap (a replay drawing every frame) takes.
    fn look(&mut self, mut frame: Frame, rgb: &mut RgbMaker) -> Looked {
        if let Some(position) = &self.position {
            position.send_replace(frame.pts);
        }
        let step = self.pipeline.frame(&frame);
        let wanted = self.tap.is_some()
            || self.snapshots.waiting()
            || match &step {
                Step::Detect => true,
                Step::Done(out) => self.evidence.is_some() && out.iter().any(|o| o.evidence),
            };
        let made = if wanted { frame.make_rgb(rgb) } else { Ok(()) };
        frame.release_picture();
        if let Err(e) = &made {
            tracing::warn!(error = %e, "frame has no picture; skipped");
        }
        let frame = Arc::new(frame);
        match step {
            Step::Detect if made.is_err() => {
                self.pipeline.skip_newest();
                Looked::NoPicture
            }
            Step::Detect => Looked::Detect(frame),
            Step::Done(out) => Looked::Held(frame, out),
        }
    }

    /// Hands on what the pipeline made of `frame`: snapshot requests, the tap, then
    /// the events. `false` if the publisher is gone.
    async fn deliver(&mut self, frame: &Arc<Frame>, out: Vec<Outgoing>, held: bool) -> bool {
        if frame.has_rgb() {
            self.snapshots.answer(|| Latest {
                frame: frame.clone(),
                masked: self.pipeline.masks(&[]),
                method: self.pipeline.mask_method(),
            });
        }
        if let Some(tap) = &self.tap {
            let tapped = Tapped {
                frame: frame.clone(),
                detections: self.pipeline.detections().to_vec(),
                tracks: self.pipeline.tracks().to_vec(),
                held,
                events: out.iter().map(|o| o.event.clone()).collect(),
            };
            if tap.send(tapped).await.is_err() {
                self.tap = None;
            }
        }
        self.emit(out, Some(frame)).await
    }

    fn died(&self, reason: String) -> CameraExit {
        self.stats.set_state(
            &self.source.camera,
            CameraState::Error(reason.clone()),
            "a thread of the camera died",
        );
        CameraExit::Died(reason)
    }

    /// Hands events to the publisher, each `start` with its evidence: `frame`, the
    /// frame the events came from (`None` at the stream's end), with the event's
    /// boxes drawn. `false` if the publisher is gone.
    async fn emit(&mut self, out: Vec<Outgoing>, frame: Option<&Arc<Frame>>) -> bool {
        let timed = self.pipeline.timed();
        let captured_at = frame.filter(|_| timed).map(|f| f.captured_at);
        for Outgoing {
            mut event,
            evidence,
        } in out
        {
            let evidence = match (evidence, frame, self.evidence) {
                (true, Some(frame), Some(opts)) => {
                    let ann = self.pipeline.annotation(&event);
                    let masked = ann.masked.clone();
                    let jpeg = evidence_of(&event, ann, frame, opts, self.jpeg_budget.get()).await;
                    // The event says what its evidence hides; no evidence, nothing hidden.
                    if jpeg.is_some() {
                        event.masked = masked;
                    }
                    jpeg
                }
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

/// A detector answer from its task; a task that panicked or was cancelled is a
/// detector that died.
fn joined(
    answer: Result<Result<DetectOutput, ServiceError>, tokio::task::JoinError>,
) -> Result<DetectOutput, ServiceError> {
    answer.unwrap_or_else(|e| Err(ServiceError::Died(format!("its answer was lost: {e}"))))
}

/// The evidence JPEG of `event`, at most `max_bytes`, encoded on a blocking thread;
/// `None` (logged) if it fails.
async fn evidence_of(
    event: &crate::event::Event,
    ann: Annotation,
    frame: &Arc<Frame>,
    opts: EvidenceOptions,
    max_bytes: usize,
) -> Option<Vec<u8>> {
    let frame = frame.clone();
    let jpeg = tokio::task::spawn_blocking(move || {
        crate::evidence::render_within(&frame, &ann, &opts, max_bytes)
    })
    .await
    .map_err(|e| e.to_string())
    .and_then(|r| r.map_err(|e| e.to_string()));
    jpeg.map_err(
        |e| tracing::warn!(error = %e, event = %event.id, "event published without evidence"),
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_requests_drop_dead_askers_and_end_with_the_camera() {
        let requests = SnapshotRequests::default();
        let first = requests.ask(2).unwrap();
        let second = requests.ask(2).unwrap();
        assert_eq!(requests.ask(2).unwrap_err(), NotAsked::Full(2));
        // An asker that gave up frees its place.
        drop(first);
        let mut third = requests.ask(2).unwrap();
        assert!(requests.waiting());
        drop(second);
        // A request waiting when the camera ends is told no frame comes.
        let mut fourth = requests.ask(2).unwrap();
        requests.end();
        assert!(fourth.try_recv().is_err());
        assert!(third.try_recv().is_err());
        assert_eq!(requests.ask(2).unwrap_err(), NotAsked::Ended);
        assert!(!requests.waiting());
        // With no one waiting no snapshot frame is made.
        requests.answer(|| unreachable!("no request waits"));
    }
}
