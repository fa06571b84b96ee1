//! Recorded-sequence playback for rule tests: a 1000×1000 frame, a clock
//! that only moves with the frames, zones written as TOML.

use std::time::{Duration, SystemTime};

use super::{CameraRules, Observation, Region, RuleEnv, RuleEvent, TrackedObject};
use crate::config::ZoneConfig;
use crate::geom::{Detection, PxBox};

pub const PERSON: usize = 0;
pub const BICYCLE: usize = 1;
pub const CAR: usize = 2;
pub const CUP: usize = 4;
pub const BOTTLE: usize = 5;
pub const UMBRELLA: usize = 6;

pub fn labels() -> Vec<String> {
    [
        "person",
        "bicycle",
        "car",
        "motorcycle",
        "cup",
        "bottle",
        "umbrella",
        "dining table",
    ]
    .map(String::from)
    .to_vec()
}

/// A confirmed track in a test frame.
#[derive(Debug, Clone)]
pub struct Obj {
    pub id: u64,
    pub class_id: usize,
    pub bbox: [f32; 4],
    pub speed: f32,
    pub visible: bool,
    /// Seconds the object has been still before this frame (`None`: since it appeared).
    pub still_for: Option<f64>,
}

impl Obj {
    pub fn track(id: u64, class_id: usize, bbox: [f32; 4]) -> Self {
        Self {
            id,
            class_id,
            bbox,
            speed: 0.0,
            visible: true,
            still_for: None,
        }
    }
}

/// What one frame holds.
#[derive(Debug, Clone, Default)]
pub struct Frame {
    pub objects: Vec<Obj>,
    pub detections: Vec<Detection>,
    /// `(id, bbox, area)`; `since` is when the region was first in a frame of
    /// this run, and it came to rest `still_s` before that.
    pub regions: Vec<(u64, [f32; 4], f32)>,
    /// Ids of the regions something moving hides in this frame.
    pub hidden: Vec<u64>,
    /// Ids of the regions that show the clean picture again (being taken away).
    pub cleared: Vec<u64>,
}

impl Frame {
    pub fn objects(objects: Vec<Obj>) -> Self {
        Self {
            objects,
            ..Self::default()
        }
    }
}

pub struct Sim {
    rules: CameraRules,
    /// Stream time of the next frame.
    pts: Duration,
    step: Duration,
    /// Wall clock = epoch + offset + pts.
    offset: Duration,
    /// Per track id: stream time since which it has been still.
    first_seen: std::collections::HashMap<u64, Duration>,
    regions_since: std::collections::HashMap<u64, Duration>,
    still: Duration,
}

impl Sim {
    /// Rules of one zone (TOML of a `[[camera.zone]]` table) at `fps`.
    pub fn new(zone_toml: &str, fps: f64) -> Self {
        Self::with_still(zone_toml, fps, 0.0)
    }

    /// Like `new`, with the scene model's `still_s` (static regions date back by it).
    pub fn with_still(zone_toml: &str, fps: f64, still_s: f64) -> Self {
        let zone: ZoneConfig = toml::from_str(zone_toml).expect("zone TOML");
        zone.validate().expect("valid zone");
        let env = RuleEnv {
            still: Duration::from_secs_f64(still_s),
        };
        Self {
            rules: CameraRules::new(&[zone], &labels(), env, jiff::tz::TimeZone::UTC),
            pts: Duration::ZERO,
            step: Duration::from_secs_f64(1.0 / fps),
            offset: Duration::from_secs(1000),
            first_seen: Default::default(),
            regions_since: Default::default(),
            still: env.still,
        }
    }

    /// The wall clock of the next frame becomes `secs` after the epoch.
    pub fn jump_to_clock(&mut self, secs: u64) {
        self.offset = Duration::from_secs(secs).saturating_sub(self.pts);
    }

    /// Plays `n` frames; returns the events with the stream time (s) they came at.
    pub fn run_frames(
        &mut self,
        n: usize,
        mut frame: impl FnMut(usize) -> Frame,
    ) -> Vec<(f64, RuleEvent)> {
        let mut out = Vec::new();
        for i in 0..n {
            let f = frame(i);
            let pts = self.pts;
            let tracks: Vec<TrackedObject> = f
                .objects
                .iter()
                .map(|o| {
                    let seen = *self.first_seen.entry(o.id).or_insert(pts);
                    TrackedObject {
                        id: o.id,
                        class_id: o.class_id,
                        score: 0.9,
                        bbox: PxBox(o.bbox),
                        visible: o.visible,
                        speed: o.speed,
                        still_since: match o.still_for {
                            Some(s) => pts.saturating_sub(Duration::from_secs_f64(s)),
                            None => seen,
                        },
                    }
                })
                .collect();
            let regions: Vec<Region> = f
                .regions
                .iter()
                .map(|&(id, bbox, area)| {
                    let since = *self.regions_since.entry(id).or_insert(pts);
                    Region {
                        id,
                        bbox: PxBox(bbox),
                        area,
                        since,
                        appeared: since.saturating_sub(self.still),
                        hidden: if f.hidden.contains(&id) { 1.0 } else { 0.0 },
                        cleared: if f.cleared.contains(&id) { 1.0 } else { 0.0 },
                    }
                })
                .collect();
            let obs = Observation {
                pts,
                captured_at: SystemTime::UNIX_EPOCH + self.offset + pts,
                width: 1000,
                height: 1000,
                detections: &f.detections,
                tracks: &tracks,
                regions: &regions,
            };
            for e in self.rules.observe(&obs) {
                out.push((round(pts.as_secs_f64()), e));
            }
            self.pts += self.step;
        }
        out
    }

    /// Ends the stream.
    pub fn finish(&mut self) -> Vec<RuleEvent> {
        let pts = self.pts;
        self.rules
            .finish(SystemTime::UNIX_EPOCH + self.offset + pts, pts)
    }
}

fn round(s: f64) -> f64 {
    (s * 1000.0).round() / 1000.0
}

/// The phases of a run's events, in order.
pub fn phases(evs: &[(f64, RuleEvent)]) -> Vec<&'static str> {
    evs.iter().map(|(_, e)| e.phase.as_str()).collect()
}

pub fn det(class_id: usize, score: f32, bbox: [f32; 4]) -> Detection {
    Detection {
        class_id,
        score,
        bbox: PxBox(bbox),
    }
}
