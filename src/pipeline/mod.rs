//! One camera's analysis, frame by frame, with no I/O.
//!
//! A [`CameraPipeline`] owns everything a camera decides: the scene model
//! (still changes, motion), the motion gate, the tracker, the zones and their
//! rules, and the turning of rule events into [`Event`]s. It is driven one
//! frame at a time and never waits, reads a file or talks to a thread, so
//! tests play frames and detector results into it and look at what comes
//! out; [`task`] is the short async shell that feeds it from the camera's
//! frame slot and the detector.
//!
//! Per frame:
//!
//! 1. [`CameraPipeline::frame`]: the scene model looks at the frame. When the
//!    motion gate is on, nothing moved (motion below `motion_threshold`; with
//!    [`GateOptions::zones_only`], motion inside the zones), the
//!    last detection is younger than `recheck` and the tracker has no
//!    undecided (tentative) object, the frame is *held*: the
//!    detector is skipped, the tracker is told that time passed without a
//!    sighting ([`Tracker::hold`]), the rules see the last detections still
//!    standing, and the frame's events come back at once ([`Step::Done`]).
//!    Otherwise the answer is [`Step::Detect`].
//! 2. [`CameraPipeline::detected`] takes the detector's result for that
//!    frame: the tracker matches it, the rules observe, events come back. A
//!    frame the detector could not take ([`Detected::Skipped`]) produces
//!    nothing and changes nothing but the scene model. Without the motion
//!    gate the next frame may be looked at before the last one's result has
//!    come ([`CameraPipeline::looks_ahead`]): results are then taken in the
//!    order the frames were looked at.
//! 3. [`CameraPipeline::finish`] ends every open incident when the stream
//!    ends or the camera stops.
//!
//! Counters go into the camera's [`CameraStats`]; wall-clock time (latency,
//! event ids) comes from the injected [`Clock`].

mod looks;
pub mod task;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::analytics::{CameraRules, Observation, Region, RuleEnv, RuleEvent, TrackedObject};
use crate::clock::SharedClock;
use crate::config::ZoneConfig;
use crate::event::{Event, Phase, SCHEMA, Site, rfc3339};
use crate::evidence::Policy;
use crate::geom::Detection;
use crate::monitor::CameraStats;
use crate::scene::{MotionArea, SceneConfig, SceneModel, StaticRegion};
use crate::source::Frame;
use crate::track::{Track, Tracker, TrackerConfig};
use looks::Looks;

/// The motion gate: skip the detector while nothing moves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GateOptions {
    /// Fraction of the picture that must change between frames to count as motion.
    pub motion_threshold: f32,
    /// Run the detector at least this often, so still objects are re-checked.
    pub recheck: Duration,
    /// Only motion inside the zones counts (still as a fraction of the picture): a
    /// tree waving outside every zone does not wake the detector.
    pub zones_only: bool,
}

/// Everything a camera's pipeline is built from.
#[derive(Debug, Clone)]
pub struct PipelineOptions {
    pub node: String,
    pub camera: String,
    pub tracker: TrackerConfig,
    /// The scene model; `None` when `[camera.scene] enabled = false`.
    pub scene: Option<SceneConfig>,
    /// The motion gate; `None` when off (it needs the scene model).
    pub gate: Option<GateOptions>,
    pub zones: Vec<ZoneConfig>,
    /// The camera's site; a zone's own `grid` and `address` are laid over it.
    pub site: Site,
    /// The model's labels (rule classes are already checked against them).
    pub labels: Vec<String>,
    pub rule_env: RuleEnv,
    /// Time zone of zone schedules and rule hours.
    pub tz: jiff::tz::TimeZone,
    /// Capture times are wall-clock times (a live source, or a file played at stream
    /// speed), so capture-to-detection latency is measured and events carry it.
    pub timed: bool,
    /// What pictures leaving the box mask (`[privacy]`); `None`: nothing.
    pub privacy: Option<Policy>,
}

/// What to do with a frame after [`CameraPipeline::frame`].
#[derive(Debug)]
pub enum Step {
    /// Run the detector on the frame, then call [`CameraPipeline::detected`].
    Detect,
    /// The motion gate held the frame; these are its events.
    Done(Vec<Outgoing>),
}

/// The detector's answer for a frame [`Step::Detect`] asked about.
#[derive(Debug, Clone)]
pub enum Detected {
    /// The objects found, and how long inference took.
    Found {
        detections: Vec<Detection>,
        inference: Duration,
    },
    /// No answer for this frame (a newer frame replaced it, or inference failed):
    /// the frame is skipped.
    Skipped,
}

/// An event to hand over, and whether its frame is its evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    pub event: Event,
    /// A `start` event: the frame it came from, with its objects drawn, is its evidence.
    pub evidence: bool,
}

/// The part of a frame the pipeline keeps between [`CameraPipeline::frame`] and
/// [`CameraPipeline::detected`].
#[derive(Debug, Clone)]
struct Looking {
    pts: Duration,
    captured_at: SystemTime,
    width: u32,
    height: u32,
    regions: Vec<Region>,
}

pub struct CameraPipeline {
    node: String,
    camera: String,
    /// Zone id → the zone's effective site, carried by its events.
    sites: std::collections::HashMap<String, Site>,
    scene: Option<SceneModel>,
    gate: Option<GateOptions>,
    tracker: Tracker,
    rules: CameraRules,
    timed: bool,
    stats: Arc<CameraStats>,
    clock: SharedClock,
    /// The frames waiting for their detections, oldest first.
    looking: std::collections::VecDeque<Looking>,
    /// The last detector result; the rules see it again on held frames.
    detections: Vec<Detection>,
    /// Stream time of the last detector result.
    detected_at: Option<Duration>,
    /// Capture time and stream time of the last frame that reached the rules.
    last: Option<(SystemTime, Duration)>,
    /// Scratch: the confirmed tracks of the current frame.
    tracks: Vec<TrackedObject>,
    /// What pictures show and hide: see [`CameraPipeline::annotation`].
    looks: Looks,
}

impl CameraPipeline {
    pub fn new(opts: PipelineOptions, stats: Arc<CameraStats>, clock: SharedClock) -> Self {
        let gate = opts.gate.filter(|_| opts.scene.is_some());
        let looks = Looks::new(&opts);
        let sites = opts
            .zones
            .iter()
            .map(|z| {
                let site = opts.site.for_zone(z.grid.as_deref(), z.address.as_deref());
                (z.id.clone(), site)
            })
            .collect();
        let mut scene = opts.scene.map(SceneModel::new);
        if let (Some(scene), Some(gate)) = (&mut scene, gate)
            && gate.zones_only
        {
            scene.set_motion_area(MotionArea::new(
                opts.zones.iter().map(|z| z.polygon.as_slice()),
            ));
        }
        Self {
            looks,
            sites,
            scene,
            gate,
            tracker: Tracker::new(opts.tracker),
            rules: CameraRules::new(&opts.zones, &opts.labels, opts.rule_env, opts.tz),
            timed: opts.timed,
            node: opts.node,
            camera: opts.camera,
            stats,
            clock,
            looking: std::collections::VecDeque::new(),
            detections: Vec::new(),
            detected_at: None,
            last: None,
            tracks: Vec::new(),
        }
    }

    /// Whether a frame may be looked at while an earlier one still waits for its
    /// detections: only without the motion gate, whose decision about a frame
    /// depends on the detections of the frames before it.
    pub fn looks_ahead(&self) -> bool {
        self.gate.is_none()
    }

    /// Whether capture times are wall-clock times (latencies are measured).
    pub fn timed(&self) -> bool {
        self.timed
    }

    /// Looks at a new frame: the scene model, then the motion gate.
    pub fn frame(&mut self, frame: &Frame) -> Step {
        let began = self.clock.mono();
        let size = (frame.width, frame.height);
        let scene = self.scene.as_mut().map(|s| match frame.grey() {
            Some(g) => s.update_grey(frame.pts, size, (g.width, g.height), &g.data),
            None => s.update(frame.pts, frame.width, frame.height, &frame.data),
        });
        let spent = self.clock.mono().saturating_duration_since(began);
        CameraStats::add(&self.stats.scene_us, spent.as_micros() as u64);
        let motion = scene.as_ref().map(|s| s.motion);
        let looking = Looking {
            pts: frame.pts,
            captured_at: frame.captured_at,
            width: frame.width,
            height: frame.height,
            regions: scene
                .map(|s| s.regions.into_iter().map(Region::from).collect())
                .unwrap_or_default(),
        };
        if let (Some(gate), Some(motion)) = (self.gate, motion) {
            let due = self
                .detected_at
                .is_none_or(|t| frame.pts.saturating_sub(t) >= gate.recheck);
            // A tentative track needs the detector's next look to be confirmed or
            // dropped: held frames never decide it.
            if motion < gate.motion_threshold && !due && !self.tracker.has_tentative() {
                CameraStats::add(&self.stats.frames_gated, 1);
                self.tracker.hold(frame.pts);
                let events = self.observe(&looking);
                return Step::Done(events);
            }
        }
        self.looking.push_back(looking);
        Step::Detect
    }

    /// The detector's result for the oldest frame [`CameraPipeline::frame`] asked
    /// about and has no result yet.
    pub fn detected(&mut self, result: Detected) -> Vec<Outgoing> {
        let Some(looking) = self.looking.pop_front() else {
            return Vec::new();
        };
        let Detected::Found {
            detections,
            inference,
        } = result
        else {
            return Vec::new();
        };
        CameraStats::add(&self.stats.frames_analysed, 1);
        if self.timed {
            let latency = self
                .clock
                .wall()
                .duration_since(looking.captured_at)
                .unwrap_or_default();
            self.stats.record_latency(latency);
        }
        CameraStats::add(&self.stats.detections, detections.len() as u64);
        self.stats.record_inference(inference);
        self.tracker.update(looking.pts, &detections);
        self.detections = detections;
        self.detected_at = Some(looking.pts);
        self.observe(&looking)
    }

    /// The frame just looked at ([`Step::Detect`]) has no picture to detect on: it
    /// is skipped and waits for no result. Results for frames before it still come
    /// to [`CameraPipeline::detected`]; like [`Detected::Skipped`], it changes nothing
    /// but the scene model.
    pub fn skip_newest(&mut self) {
        self.looking.pop_back();
    }

    /// Ends every open incident: the stream ended or the camera is stopping.
    pub fn finish(&mut self) -> Vec<Outgoing> {
        self.looking.clear();
        match self.last.take() {
            Some((at, pts)) => {
                let evs = self.rules.finish(at, pts);
                self.outgoing(evs)
            }
            None => Vec::new(),
        }
    }

    /// The last detector result (source pixels), which the rules see until the next.
    pub fn detections(&self) -> &[Detection] {
        &self.detections
    }

    /// The confirmed tracks as the rules saw them on the last frame.
    pub fn tracks(&self) -> &[TrackedObject] {
        &self.tracks
    }

    fn observe(&mut self, frame: &Looking) -> Vec<Outgoing> {
        self.tracks.clear();
        self.tracks
            .extend(self.tracker.confirmed().map(TrackedObject::from));
        let obs = Observation {
            pts: frame.pts,
            captured_at: frame.captured_at,
            width: frame.width,
            height: frame.height,
            detections: &self.detections,
            tracks: &self.tracks,
            regions: &frame.regions,
        };
        let evs = self.rules.observe(&obs);
        self.last = Some((frame.captured_at, frame.pts));
        self.looks.size = (frame.width, frame.height);
        self.outgoing(evs)
    }

    fn outgoing(&self, evs: Vec<RuleEvent>) -> Vec<Outgoing> {
        CameraStats::add(&self.stats.events, evs.len() as u64);
        evs.into_iter()
            .map(|ev| {
                let event = self.to_event(ev);
                Outgoing {
                    evidence: event.phase == Phase::Start,
                    event,
                }
            })
            .collect()
    }

    /// A rule event as the city brain receives it (the outbox adds `seq`).
    fn to_event(&self, ev: RuleEvent) -> Event {
        Event {
            schema: SCHEMA.into(),
            id: crate::event::new_id(self.clock.wall()),
            seq: 0,
            node: self.node.clone(),
            camera: self.camera.clone(),
            site: self.sites.get(&ev.zone).cloned().unwrap_or_default(),
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
            masked: Vec::new(),
        }
    }
}

/// What the rules see of a track.
impl From<&Track> for TrackedObject {
    fn from(t: &Track) -> Self {
        Self {
            id: t.id,
            class_id: t.class_id,
            score: t.score,
            bbox: t.bbox,
            visible: t.visible(),
            speed: t.speed(),
            still_since: t.still_since,
        }
    }
}

/// What the rules see of a still region.
impl From<StaticRegion> for Region {
    fn from(r: StaticRegion) -> Self {
        Self {
            id: r.id,
            bbox: r.bbox,
            area: r.area,
            since: r.since,
            appeared: r.appeared,
            hidden: r.hidden,
            cleared: r.cleared,
        }
    }
}

#[cfg(test)]
mod tests;
