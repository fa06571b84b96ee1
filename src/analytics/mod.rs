//! Zones and rules: detections in, incident events out.
//!
//! Pure and synchronous: no I/O, no clock. Time comes from the frames
//! (`pts` for durations, `captured_at` for timestamps), so recorded
//! detection sequences replay deterministically in tests and benches.

pub mod zone;

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::config::{CameraConfig, CrowdingConfig};
use crate::detect::{Detection, Manifest};
use crate::event::{EventObject, Phase};

pub use zone::Zone;

/// What the rules see of one analysed frame.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub pts: Duration,
    pub captured_at: SystemTime,
    pub width: u32,
    pub height: u32,
    pub detections: &'a [Detection],
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
}

/// All rules of one camera.
pub struct CameraRules {
    rules: Vec<CrowdingRule>,
}

impl CameraRules {
    /// Builds the rules of `camera`. Class names must already be checked against `manifest`.
    pub fn new(camera: &CameraConfig, manifest: &Manifest) -> Self {
        let labels: Arc<[String]> = manifest.labels.clone().into();
        let rules = camera
            .zones
            .iter()
            .filter_map(|z| {
                z.crowding.as_ref().map(|c| {
                    let classes = c
                        .classes
                        .iter()
                        .filter_map(|name| manifest.class_id(name))
                        .collect();
                    CrowdingRule::new(Zone::new(&z.id, &z.polygon), c, classes, labels.clone())
                })
            })
            .collect();
        Self { rules }
    }

    /// Feeds one analysed frame to every rule.
    pub fn observe(&mut self, obs: &Observation<'_>) -> Vec<RuleEvent> {
        let mut out = Vec::new();
        for r in &mut self.rules {
            r.observe(obs, &mut out);
        }
        out
    }

    /// Ends every open incident (the stream ended or the camera is stopping).
    pub fn finish(&mut self, at: SystemTime, pts: Duration) -> Vec<RuleEvent> {
        let mut out = Vec::new();
        for r in &mut self.rules {
            r.finish(at, pts, &mut out);
        }
        out
    }
}

fn to_event_object(d: &Detection, labels: &[String], w: u32, h: u32) -> EventObject {
    let (w, h) = (w.max(1) as f32, h.max(1) as f32);
    let r = |v: f32| (v * 10_000.0).round() / 10_000.0;
    EventObject {
        class: labels
            .get(d.class_id)
            .cloned()
            .unwrap_or_else(|| d.class_id.to_string()),
        score: (d.score * 1000.0).round() / 1000.0,
        bbox: [
            r(d.bbox[0] / w),
            r(d.bbox[1] / h),
            r(d.bbox[2] / w),
            r(d.bbox[3] / h),
        ],
        track_id: None,
    }
}

fn new_incident_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

enum CrowdState {
    Idle {
        /// Stream time since when the count has been at or above the threshold.
        above_since: Option<Duration>,
    },
    Active {
        incident: String,
        started_at: SystemTime,
        started_pts: Duration,
        below_since: Option<Duration>,
        last_update: Duration,
        last_count: u32,
        peak: u32,
    },
}

/// `crowding`: at least `min_count` objects of the configured classes with their
/// bottom-centre inside the zone for `min_duration_s`; ends after `clear_duration_s` below.
pub struct CrowdingRule {
    zone: Zone,
    classes: HashSet<usize>,
    min_count: u32,
    min_duration: Duration,
    clear_duration: Duration,
    update_interval: Duration,
    /// The model's labels, for naming objects in events.
    labels: Arc<[String]>,
    state: CrowdState,
}

impl CrowdingRule {
    pub fn new(
        zone: Zone,
        c: &CrowdingConfig,
        classes: HashSet<usize>,
        labels: Arc<[String]>,
    ) -> Self {
        Self {
            zone,
            classes,
            min_count: c.min_count,
            min_duration: Duration::from_secs_f64(c.min_duration_s),
            clear_duration: Duration::from_secs_f64(c.clear_duration_s),
            update_interval: Duration::from_secs_f64(c.update_interval_s),
            labels,
            state: CrowdState::Idle { above_since: None },
        }
    }

    fn event(
        &self,
        phase: Phase,
        incident: &str,
        obs: &Observation<'_>,
        started_at: SystemTime,
        inside: &[&Detection],
        metrics: BTreeMap<String, f64>,
    ) -> RuleEvent {
        RuleEvent {
            kind: "crowding",
            zone: self.zone.id.clone(),
            phase,
            incident: incident.to_string(),
            ts: obs.captured_at,
            started_at,
            ended_at: (phase == Phase::End).then_some(obs.captured_at),
            stream_time: obs.pts,
            objects: inside
                .iter()
                .map(|d| to_event_object(d, &self.labels, obs.width, obs.height))
                .collect(),
            metrics,
        }
    }

    fn observe(&mut self, obs: &Observation<'_>, out: &mut Vec<RuleEvent>) {
        let (w, h) = (obs.width.max(1) as f32, obs.height.max(1) as f32);
        let inside: Vec<&Detection> = obs
            .detections
            .iter()
            .filter(|d| self.classes.contains(&d.class_id))
            .filter(|d| {
                let x = (d.bbox[0] + d.bbox[2]) * 0.5 / w;
                let y = d.bbox[3] / h;
                self.zone.contains(x, y)
            })
            .collect();
        let count = inside.len() as u32;
        let crowded = count >= self.min_count;
        let metrics = |count: u32, extra: &[(&str, f64)]| {
            let mut m = BTreeMap::from([
                ("count".to_string(), count as f64),
                ("min_count".to_string(), self.min_count as f64),
            ]);
            for (k, v) in extra {
                m.insert(k.to_string(), *v);
            }
            m
        };

        match &mut self.state {
            CrowdState::Idle { above_since } => {
                if !crowded {
                    *above_since = None;
                    return;
                }
                let since = *above_since.get_or_insert(obs.pts);
                if obs.pts.saturating_sub(since) < self.min_duration {
                    return;
                }
                let started_at = obs
                    .captured_at
                    .checked_sub(obs.pts - since)
                    .unwrap_or(obs.captured_at);
                let incident = new_incident_id();
                let ev = self.event(
                    Phase::Start,
                    &incident,
                    obs,
                    started_at,
                    &inside,
                    metrics(count, &[]),
                );
                out.push(ev);
                self.state = CrowdState::Active {
                    incident,
                    started_at,
                    started_pts: since,
                    below_since: None,
                    last_update: obs.pts,
                    last_count: count,
                    peak: count,
                };
            }
            CrowdState::Active {
                incident,
                started_at,
                started_pts,
                below_since,
                last_update,
                last_count,
                peak,
            } => {
                *peak = (*peak).max(count);
                if crowded {
                    *below_since = None;
                    if obs.pts.saturating_sub(*last_update) >= self.update_interval
                        && count != *last_count
                    {
                        let (incident, started_at, peak) = (incident.clone(), *started_at, *peak);
                        let ev = self.event(
                            Phase::Update,
                            &incident,
                            obs,
                            started_at,
                            &inside,
                            metrics(count, &[("peak", peak as f64)]),
                        );
                        out.push(ev);
                        if let CrowdState::Active {
                            last_update,
                            last_count,
                            ..
                        } = &mut self.state
                        {
                            *last_update = obs.pts;
                            *last_count = count;
                        }
                    }
                    return;
                }
                let since = *below_since.get_or_insert(obs.pts);
                if obs.pts.saturating_sub(since) < self.clear_duration {
                    return;
                }
                let duration = since.saturating_sub(*started_pts).as_secs_f64();
                let (incident, started_at, peak) = (incident.clone(), *started_at, *peak);
                let ev = self.event(
                    Phase::End,
                    &incident,
                    obs,
                    started_at,
                    &inside,
                    metrics(count, &[("peak", peak as f64), ("duration_s", duration)]),
                );
                out.push(ev);
                self.state = CrowdState::Idle { above_since: None };
            }
        }
    }

    fn finish(&mut self, at: SystemTime, pts: Duration, out: &mut Vec<RuleEvent>) {
        if let CrowdState::Active {
            incident,
            started_at,
            started_pts,
            peak,
            ..
        } = &self.state
        {
            out.push(RuleEvent {
                kind: "crowding",
                zone: self.zone.id.clone(),
                phase: Phase::End,
                incident: incident.clone(),
                ts: at,
                started_at: *started_at,
                ended_at: Some(at),
                stream_time: pts,
                objects: Vec::new(),
                metrics: BTreeMap::from([
                    ("peak".to_string(), *peak as f64),
                    ("min_count".to_string(), self.min_count as f64),
                    (
                        "duration_s".to_string(),
                        pts.saturating_sub(*started_pts).as_secs_f64(),
                    ),
                    ("stream_ended".to_string(), 1.0),
                ]),
            });
        }
        self.state = CrowdState::Idle { above_since: None };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PERSON: usize = 0;
    const CAR: usize = 2;

    fn rule() -> CrowdingRule {
        let cfg = CrowdingConfig {
            classes: vec!["person".into()],
            min_count: 3,
            min_duration_s: 2.0,
            clear_duration_s: 3.0,
            update_interval_s: 5.0,
        };
        // Bottom half of the frame.
        let zone = Zone::new("road", &[[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]);
        CrowdingRule::new(zone, &cfg, HashSet::from([PERSON]), labels().into())
    }

    fn labels() -> Vec<String> {
        ["person", "bicycle", "car"].map(String::from).to_vec()
    }

    /// `n` people standing in the zone (feet at y = 0.9) plus one outside and one car inside.
    fn scene(n: usize) -> Vec<Detection> {
        let mut d: Vec<Detection> = (0..n)
            .map(|i| Detection {
                class_id: PERSON,
                score: 0.8,
                bbox: [10.0 + 50.0 * i as f32, 60.0, 40.0 + 50.0 * i as f32, 90.0],
            })
            .collect();
        d.push(Detection {
            class_id: PERSON,
            score: 0.9,
            bbox: [0.0, 0.0, 10.0, 30.0],
        });
        d.push(Detection {
            class_id: CAR,
            score: 0.9,
            bbox: [0.0, 60.0, 90.0, 95.0],
        });
        d
    }

    /// Runs `counts[i]` people at 1 frame per second; returns (second, phase, count).
    fn run(r: &mut CrowdingRule, counts: &[usize]) -> Vec<(u64, Phase, f64)> {
        let mut out = Vec::new();
        for (sec, &n) in counts.iter().enumerate() {
            let dets = scene(n);
            let obs = Observation {
                pts: Duration::from_secs(sec as u64),
                captured_at: SystemTime::UNIX_EPOCH + Duration::from_secs(1000 + sec as u64),
                width: 1000,
                height: 100,
                detections: &dets,
            };
            let mut evs = Vec::new();
            r.observe(&obs, &mut evs);
            out.extend(
                evs.into_iter()
                    .map(|e| (sec as u64, e.phase, e.metrics["count"])),
            );
        }
        out
    }

    #[test]
    fn starts_after_min_duration_and_counts_only_zone_and_class() {
        let mut r = rule();
        let got = run(&mut r, &[3, 3, 3, 3]);
        // Above from t=0; 2 s later (t=2) it starts, counting 3 (not the outsider, not the car).
        assert_eq!(got, vec![(2, Phase::Start, 3.0)]);
    }

    #[test]
    fn short_spike_does_not_start() {
        let mut r = rule();
        assert!(run(&mut r, &[5, 5, 0, 5, 0, 5, 0]).is_empty());
    }

    #[test]
    fn ends_after_clear_duration_with_hysteresis() {
        let mut r = rule();
        // Start at 2; dips of < 3 s do not end it; then 3 s below ends it at t=10.
        let got = run(&mut r, &[3, 3, 3, 1, 1, 3, 1, 1, 1, 1, 1, 1]);
        let phases: Vec<(u64, Phase)> = got.iter().map(|(t, p, _)| (*t, *p)).collect();
        assert_eq!(phases, vec![(2, Phase::Start), (9, Phase::End)]);
    }

    #[test]
    fn updates_are_throttled_and_only_on_change() {
        let mut r = rule();
        let got = run(&mut r, &[3, 3, 3, 4, 4, 4, 4, 4, 5, 5, 5, 5, 5, 5]);
        assert_eq!(
            got,
            vec![
                (2, Phase::Start, 3.0),
                (7, Phase::Update, 4.0),
                (12, Phase::Update, 5.0)
            ]
        );
    }

    #[test]
    fn one_incident_id_from_start_to_end_and_a_new_one_after() {
        let mut r = rule();
        let mut ids = Vec::new();
        for (sec, n) in [3, 3, 3, 0, 0, 0, 0, 3, 3, 3].into_iter().enumerate() {
            let dets = scene(n);
            let obs = Observation {
                pts: Duration::from_secs(sec as u64),
                captured_at: SystemTime::UNIX_EPOCH,
                width: 1000,
                height: 100,
                detections: &dets,
            };
            let mut evs = Vec::new();
            r.observe(&obs, &mut evs);
            ids.extend(evs.into_iter().map(|e| (e.phase, e.incident)));
        }
        assert_eq!(ids.len(), 3);
        assert_eq!(ids[0].1, ids[1].1);
        assert_ne!(ids[1].1, ids[2].1);
        assert_eq!(ids[2].0, Phase::Start);
    }

    #[test]
    fn finish_closes_an_open_incident() {
        let mut r = rule();
        run(&mut r, &[3, 3, 3]);
        let mut evs = Vec::new();
        r.finish(SystemTime::UNIX_EPOCH, Duration::from_secs(3), &mut evs);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].phase, Phase::End);
        assert_eq!(evs[0].metrics["duration_s"], 3.0);
        evs.clear();
        r.finish(SystemTime::UNIX_EPOCH, Duration::from_secs(4), &mut evs);
        assert!(evs.is_empty());
    }
}
