//! Zones and rules: tracks, detections and still regions in, incident events out.
//!
//! Pure and synchronous: no I/O, no clock. Time comes from the frames
//! (`pts` for durations, `captured_at` for timestamps and time of day), so
//! recorded sequences replay deterministically in tests and benches.
//!
//! Rules only see confirmed tracks ([`TrackedObject`]); things that lie still
//! (litter, piles, parked bikes, stalls) are remembered by place
//! ([`spots`]), so a flickering detection or a track id switch never opens a
//! second incident.

pub mod congestion;
pub mod dwell;
pub mod lifecycle;
pub mod litter;
pub mod parking;
pub mod piles;
pub mod regions;
pub mod spots;
pub mod zone;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::{TimeWindow, ZoneConfig};
use crate::event::{EventObject, Phase};
use crate::geom::{Detection, PxBox};

pub use zone::{Zone, ZoneGate};

/// A confirmed track as the rules see it.
#[derive(Debug, Clone, PartialEq)]
pub struct TrackedObject {
    /// Tracker id (only confirmed tracks have one).
    pub id: u64,
    pub class_id: usize,
    pub score: f32,
    /// Source pixels; while the track is lost, the motion model's prediction.
    pub bbox: PxBox,
    /// Matched in this frame (else briefly lost: occluded or missed).
    pub visible: bool,
    /// Speed of the box centre, pixels per second.
    pub speed: f32,
    /// Stream time since when the object has stayed in place.
    pub still_since: Duration,
}

impl TrackedObject {
    pub fn height(&self) -> f32 {
        (self.bbox[3] - self.bbox[1]).max(1.0)
    }
}

/// A still change found by the scene model.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    pub id: u64,
    pub bbox: PxBox,
    /// Changed pixels, fraction of the frame.
    pub area: f32,
    /// When it was first reported (it had been still for the scene model's `still_s` by then).
    pub since: Duration,
    /// When it came to rest: the moment the thing was put down.
    pub appeared: Duration,
    /// Share of it that something moving covers in this frame.
    pub hidden: f32,
    /// Share of it that shows the clean picture again in this frame.
    pub cleared: f32,
}

impl Region {
    /// Most of it shows the clean picture again: it is being taken away. No
    /// sighting at all, so a removal only ever ends an incident.
    pub fn is_cleared(&self) -> bool {
        self.cleared >= 0.5
    }

    /// Most of it is not seen, mostly behind something moving (a passer-by):
    /// it is still there as far as anyone can tell.
    pub fn is_hidden(&self) -> bool {
        !self.is_cleared() && self.hidden + self.cleared >= 0.5
    }
}

/// What the rules see of one analysed frame.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub pts: Duration,
    pub captured_at: SystemTime,
    pub width: u32,
    pub height: u32,
    /// This frame's detections (all classes, after the model's thresholds and NMS).
    pub detections: &'a [Detection],
    /// Confirmed tracks, visible or briefly lost.
    pub tracks: &'a [TrackedObject],
    /// Still changes from the scene model.
    pub regions: &'a [Region],
}

impl Observation<'_> {
    fn size(&self) -> (f32, f32) {
        (self.width.max(1) as f32, self.height.max(1) as f32)
    }
}

/// An incident event as a rule emits it; the supervisor adds node, ids and seq.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleEvent {
    pub kind: &'static str,
    pub zone: String,
    pub phase: Phase,
    pub incident: String,
    pub ts: SystemTime,
    pub started_at: SystemTime,
    pub ended_at: Option<SystemTime>,
    pub stream_time: Duration,
    pub objects: Vec<EventObject>,
    pub metrics: BTreeMap<String, f64>,
    pub attributes: BTreeMap<String, String>,
}

/// Class ids a rule cares about.
#[derive(Debug, Clone, Default)]
pub struct ClassSet(Vec<bool>);

impl ClassSet {
    pub fn of(names: &[String], manifest_labels: &[String]) -> Self {
        let mut v = vec![false; manifest_labels.len()];
        for n in names {
            if let Some(i) = manifest_labels.iter().position(|l| l == n) {
                v[i] = true;
            }
        }
        Self(v)
    }

    pub fn contains(&self, class_id: usize) -> bool {
        self.0.get(class_id).copied().unwrap_or(false)
    }
}

/// Everything a rule gets for one frame.
pub struct Ctx<'a> {
    pub obs: &'a Observation<'a>,
    pub zone: &'a Zone,
    pub gate: &'a ZoneGate,
    pub labels: &'a [String],
}

impl Ctx<'_> {
    /// An object of the event, its box as fractions of the frame.
    pub fn object(
        &self,
        class: Option<usize>,
        score: f32,
        bbox: &PxBox,
        track_id: Option<u64>,
    ) -> EventObject {
        EventObject {
            class: match class {
                Some(c) => self.labels.get(c).cloned().unwrap_or_else(|| c.to_string()),
                None => "static_change".into(),
            },
            score: ((score * 1000.0).round() / 1000.0).clamp(0.0, 1.0),
            bbox: bbox.to_frac(self.obs.width, self.obs.height),
            track_id,
            role: None,
        }
    }

    pub fn track_object(&self, t: &TrackedObject) -> EventObject {
        self.object(Some(t.class_id), t.score, &t.bbox, Some(t.id))
    }

    /// Confirmed tracks of `classes` whose anchor has been in the zone (after inertia).
    pub fn tracks_in<'b>(
        &'b self,
        classes: &'b ClassSet,
    ) -> impl Iterator<Item = (&'b TrackedObject, Duration)> + 'b {
        self.obs.tracks.iter().filter_map(move |t| {
            if !classes.contains(t.class_id) {
                return None;
            }
            self.gate.entered(t.id).map(|since| (t, since))
        })
    }

    /// The confirmed track of a class not in `except` that still region `r` is
    /// part of (see [`regions::part_of`]): a person standing, a parked car.
    pub fn owner_of(&self, r: &Region, except: &ClassSet) -> Option<&TrackedObject> {
        self.obs
            .tracks
            .iter()
            .find(|t| !except.contains(t.class_id) && regions::part_of(r, t, self.obs.regions))
    }

    pub fn holds(&self, bbox: &PxBox) -> bool {
        let (w, h) = self.obs.size();
        self.zone.holds(bbox, w, h)
    }

    /// A `start` or `update` event of the open incident `a`.
    pub fn ongoing(&self, kind: &'static str, phase: Phase, a: &lifecycle::Active) -> RuleEvent {
        let mut ev = self.event(kind, phase, &a.incident);
        ev.started_at = a.started_at;
        ev
    }

    /// The `end` event of an incident that ended for `reason`, with its duration.
    pub fn ended(&self, kind: &'static str, end: &lifecycle::Ended, reason: &str) -> RuleEvent {
        let mut ev = self.event(kind, Phase::End, &end.incident);
        ev.started_at = end.started_at;
        ev.attributes = attributes([("reason", reason)]);
        ev.metrics = metrics([("duration_s", end.duration.as_secs_f64())]);
        ev
    }

    /// An event of this zone at this frame.
    pub fn event(&self, kind: &'static str, phase: Phase, incident: &str) -> RuleEvent {
        RuleEvent {
            kind,
            zone: self.zone.id.clone(),
            phase,
            incident: incident.to_string(),
            ts: self.obs.captured_at,
            started_at: self.obs.captured_at,
            ended_at: (phase == Phase::End).then_some(self.obs.captured_at),
            stream_time: self.obs.pts,
            objects: Vec::new(),
            metrics: BTreeMap::new(),
            attributes: BTreeMap::new(),
        }
    }
}

/// Shared by every rule: the metrics and attributes of an event.
pub fn metrics<const N: usize>(m: [(&str, f64); N]) -> BTreeMap<String, f64> {
    m.into_iter()
        .map(|(k, v)| (k.to_string(), (v * 1000.0).round() / 1000.0))
        .collect()
}

pub fn attributes<const N: usize>(m: [(&str, &str); N]) -> BTreeMap<String, String> {
    m.into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// One rule of one zone.
pub trait Rule: Send {
    fn observe(&mut self, ctx: &Ctx<'_>, out: &mut Vec<RuleEvent>);
    /// Ends every open incident at once (`reason`: `schedule`, `stream_ended`) and forgets
    /// what was pending.
    fn close(&mut self, ctx: &Ctx<'_>, reason: &str, out: &mut Vec<RuleEvent>);
    /// The rule's own hours, if it has some; else the zone's schedule applies.
    fn hours(&self) -> &[TimeWindow] {
        &[]
    }
}

struct ZoneRules {
    zone: Zone,
    gate: ZoneGate,
    schedule: Vec<TimeWindow>,
    rules: Vec<Box<dyn Rule>>,
}

/// All rules of one camera.
pub struct CameraRules {
    zones: Vec<ZoneRules>,
    labels: Arc<[String]>,
    tz: jiff::tz::TimeZone,
}

/// What every rule of a camera needs to know besides its own config.
#[derive(Debug, Clone, Copy)]
pub struct RuleEnv {
    /// How long the scene model waits before it reports a still change: a
    /// region is reported at least this long after it came to rest.
    pub still: Duration,
}

impl CameraRules {
    /// Builds rules for `zones` against a model's `labels` (class names already checked).
    pub fn new(
        zones: &[ZoneConfig],
        labels: &[String],
        env: RuleEnv,
        tz: jiff::tz::TimeZone,
    ) -> Self {
        let labels: Arc<[String]> = labels.to_vec().into();
        let zones = zones
            .iter()
            .map(|z| ZoneRules {
                zone: Zone::new(&z.id, &z.polygon).with_anchor(z.anchor),
                gate: ZoneGate::new(z.inertia),
                schedule: windows(&z.schedule),
                rules: build_rules(z, &labels, env),
            })
            .collect();
        Self { zones, labels, tz }
    }

    /// Feeds one analysed frame to every rule.
    pub fn observe(&mut self, obs: &Observation<'_>) -> Vec<RuleEvent> {
        let mut out = Vec::new();
        let minute = self.minute_of_day(obs.captured_at);
        let (w, h) = obs.size();
        for z in &mut self.zones {
            z.gate.update(
                obs.pts,
                obs.tracks
                    .iter()
                    .map(|t| (t.id, z.zone.holds(&t.bbox, w, h))),
            );
            let ctx = Ctx {
                obs,
                zone: &z.zone,
                gate: &z.gate,
                labels: &self.labels,
            };
            for r in &mut z.rules {
                let hours = if r.hours().is_empty() {
                    &z.schedule[..]
                } else {
                    r.hours()
                };
                if hours.is_empty() || hours.iter().any(|w| w.contains(minute)) {
                    r.observe(&ctx, &mut out);
                } else {
                    r.close(&ctx, "schedule", &mut out);
                }
            }
        }
        out
    }

    /// Ends every open incident (the stream ended or the camera is stopping).
    pub fn finish(&mut self, at: SystemTime, pts: Duration) -> Vec<RuleEvent> {
        let mut out = Vec::new();
        let obs = Observation {
            pts,
            captured_at: at,
            width: 1,
            height: 1,
            detections: &[],
            tracks: &[],
            regions: &[],
        };
        for z in &mut self.zones {
            let ctx = Ctx {
                obs: &obs,
                zone: &z.zone,
                gate: &z.gate,
                labels: &self.labels,
            };
            for r in &mut z.rules {
                r.close(&ctx, "stream_ended", &mut out);
            }
            z.gate.reset();
        }
        out
    }

    fn minute_of_day(&self, at: SystemTime) -> u16 {
        jiff::Timestamp::try_from(at)
            .map(|ts| {
                let t = ts.to_zoned(self.tz.clone()).time();
                t.hour() as u16 * 60 + t.minute() as u16
            })
            .unwrap_or(0)
    }
}

fn windows(list: &[String]) -> Vec<TimeWindow> {
    // Validated with the config.
    list.iter()
        .filter_map(|w| TimeWindow::parse(w).ok())
        .collect()
}

fn build_rules(z: &ZoneConfig, labels: &[String], env: RuleEnv) -> Vec<Box<dyn Rule>> {
    let mut rules: Vec<Box<dyn Rule>> = Vec::new();
    if let Some(c) = &z.litter {
        rules.push(Box::new(litter::Litter::new(c, labels, env)));
    }
    if let Some(c) = &z.congestion {
        rules.push(Box::new(congestion::Congestion::new(c, labels)));
    }
    if let Some(c) = &z.illegal_parking {
        rules.push(Box::new(parking::Parking::new(c, labels)));
    }
    if let Some(c) = &z.street_vending {
        rules.push(Box::new(dwell::Dwell::new(
            "street_vending",
            c,
            labels,
            windows(&c.hours),
        )));
    }
    if let Some(c) = &z.outside_business {
        rules.push(Box::new(dwell::Dwell::new(
            "outside_business",
            c,
            labels,
            windows(&c.hours),
        )));
    }
    if let Some(c) = &z.piled_materials {
        rules.push(Box::new(piles::Piles::new(c, labels)));
    }
    rules
}

/// The time zone for schedules: `node.timezone`, else the system's.
pub fn time_zone(name: Option<&str>) -> jiff::tz::TimeZone {
    match name {
        Some(n) => jiff::tz::TimeZone::get(n).unwrap_or_else(|e| {
            tracing::warn!(timezone = n, error = %e, "unknown time zone; schedules use UTC");
            jiff::tz::TimeZone::UTC
        }),
        None => jiff::tz::TimeZone::system(),
    }
}

#[cfg(test)]
pub(crate) mod testkit;

/// The same life, run through every rule: a short gap (hysteresis) does not
/// end an incident, a re-appearance during the cooldown opens none, a
/// condition that goes away just as it would have held long enough opens
/// none (a removal never starts an incident), and the zone's schedule closes
/// and blocks them.
#[cfg(test)]
mod every_rule {
    use super::testkit::*;

    /// A rule's name, its config, and a frame where its condition holds (or not).
    type Case = (&'static str, String, fn(bool) -> Frame);

    /// Each rule with a config whose timings are the same.
    fn rules() -> Vec<Case> {
        let timing = "clear_s = 3\ncooldown_s = 10";
        vec![
            (
                "litter",
                format!("[litter]\nclasses = [\"cup\"]\ndwell_s = 2\n{timing}"),
                |on| {
                    let mut f = Frame::default();
                    if on {
                        f.detections.push(det(CUP, 0.5, [500.0, 780.0, 530.0, 810.0]));
                    }
                    f
                },
            ),
            (
                "congestion",
                "[congestion]\nlevels = { light = 2, moderate = 4, heavy = 6 }\nmin_duration_s = 2\nclear_duration_s = 3\ncooldown_s = 10".into(),
                |on| {
                    Frame::objects(if on {
                        vec![
                            Obj::track(1, PERSON, [100.0, 700.0, 150.0, 800.0]),
                            Obj::track(2, PERSON, [300.0, 700.0, 350.0, 800.0]),
                        ]
                    } else {
                        vec![]
                    })
                },
            ),
            (
                "illegal_parking",
                format!("[illegal_parking]\nmin_stationary_s = 2\n{timing}"),
                |on| {
                    Frame::objects(if on {
                        vec![Obj::track(1, BICYCLE, [100.0, 800.0, 180.0, 880.0])]
                    } else {
                        vec![]
                    })
                },
            ),
            (
                "street_vending",
                format!("[street_vending]\nobject_classes = [\"umbrella\"]\nmin_dwell_s = 2\n{timing}"),
                |on| {
                    Frame::objects(if on {
                        vec![
                            Obj::track(1, PERSON, [300.0, 600.0, 360.0, 780.0]),
                            Obj::track(2, UMBRELLA, [250.0, 500.0, 450.0, 700.0]),
                        ]
                    } else {
                        vec![]
                    })
                },
            ),
            (
                "outside_business",
                format!("[outside_business]\nmin_people = 0\nobject_classes = [\"umbrella\"]\nmin_dwell_s = 2\n{timing}"),
                |on| {
                    Frame::objects(if on {
                        vec![Obj::track(2, UMBRELLA, [250.0, 500.0, 450.0, 700.0])]
                    } else {
                        vec![]
                    })
                },
            ),
            (
                "piled_materials",
                format!("[piled_materials]\nmin_duration_s = 2\n{timing}"),
                |on| {
                    let mut f = Frame::default();
                    if on {
                        f.regions.push((1, [200.0, 700.0, 400.0, 850.0], 0.03));
                    }
                    f
                },
            ),
        ]
    }

    fn zone(rule: &str, schedule: &str) -> String {
        format!("id = \"z\"\npolygon = [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]\n{schedule}\n{rule}\n")
    }

    #[test]
    fn hysteresis_cooldown_and_no_duplicate_for_every_rule() {
        for (name, rule, frame) in rules() {
            let mut sim = Sim::new(&zone(&rule, ""), 1.0);
            // On 0–9, a 1 s gap at 10 (shorter than clear), on 11–19, off 20–25 (ends at
            // 23 or so), back at 26: inside the 10 s cooldown, so no start before ~33.
            let evs = sim.run_frames(45, |i| frame(!(i == 10 || (20..26).contains(&i))));
            let got: Vec<(f64, &str)> = evs.iter().map(|(t, e)| (*t, e.phase.as_str())).collect();
            let starts: Vec<f64> = got.iter().filter(|g| g.1 == "start").map(|g| g.0).collect();
            let ends: Vec<f64> = got.iter().filter(|g| g.1 == "end").map(|g| g.0).collect();
            assert_eq!(starts.len(), 2, "{name}: {got:?}");
            assert_eq!(ends.len(), 1, "{name}: {got:?}");
            assert!(starts[0] <= 3.0, "{name}: {got:?}");
            assert!((22.0..=25.0).contains(&ends[0]), "{name}: {got:?}");
            assert!(starts[1] >= 32.0, "{name}: cooldown ignored: {got:?}");
            let first = &evs[0].1.incident;
            assert!(
                evs.iter()
                    .filter(|(t, _)| *t <= ends[0])
                    .all(|(_, e)| &e.incident == first),
                "{name}: {got:?}"
            );
            assert!(evs.iter().all(|(_, e)| e.kind == name), "{name}");
        }
    }

    #[test]
    fn a_condition_gone_when_it_would_have_held_long_enough_starts_nothing() {
        for (name, rule, frame) in rules() {
            let mut sim = Sim::new(&zone(&rule, ""), 1.0);
            // On at 0 and 1; the 2 s would be up at 2, when it is gone (the
            // item taken away, the crowd left): no incident then, or after.
            let evs = sim.run_frames(20, |i| frame(i < 2));
            assert!(evs.is_empty(), "{name}: {evs:?}");
        }
    }

    #[test]
    fn schedules_close_and_block_every_rule() {
        for (name, rule, frame) in rules() {
            // The clock starts at 00:16:40 UTC; the zone works 01:00–02:00.
            let mut sim = Sim::new(&zone(&rule, "schedule = [\"01:00-02:00\"]"), 1.0);
            assert!(sim.run_frames(20, |_| frame(true)).is_empty(), "{name}");
            sim.jump_to_clock(3600);
            let evs = sim.run_frames(10, |_| frame(true));
            assert_eq!(phases(&evs), vec!["start"], "{name}");
            sim.jump_to_clock(7200);
            let evs = sim.run_frames(10, |_| frame(true));
            assert_eq!(phases(&evs), vec!["end"], "{name}");
            assert_eq!(evs[0].1.attributes["reason"], "schedule", "{name}");
        }
    }
}
