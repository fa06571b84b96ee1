//! `litter`: an item — a litter-class detection or a new still region from the
//! scene model — appears in the zone and stays for `dwell_s`. When a person
//! was next to it as it appeared and then walked away, the event names that
//! track (`cause = thrown`). The incident ends (`resolved`) once the spot has
//! been clean for `clear_s`. Items are kept by place, so flickering
//! detections and id switches never make a second incident.
//!
//! A still region is an item unless it is a tracked object itself (it came to
//! rest with the object: a parked bicycle, a person standing, see
//! [`super::regions`]); one that came to rest beside a parked bicycle or car is
//! an item. Its dwell counts from when it came to rest. A region something
//! moving hides keeps its item, but never makes a new one, and an incident
//! starts only on a frame where its item is in view: taking an item away
//! ends an incident, never starts one.

use std::collections::VecDeque;
use std::time::Duration;

use super::lifecycle::{NEVER, Step, Timing};
use super::regions::Owned;
use super::spots::{Spot, Spots};
use super::{ClassSet, Ctx, Rule, RuleEnv, RuleEvent, attributes, metrics};
use crate::config::LitterConfig;
use crate::event::Phase;
use crate::geom::PxBox;

/// How far back person positions are kept to find who was next to a new item,
/// beyond the scene model's `still_s` (a region is reported that long after it
/// came to rest, later if someone lingers beside it).
const LINGER: Duration = Duration::from_secs(8);

pub struct Litter {
    classes: ClassSet,
    throwers: ClassSet,
    static_change: bool,
    min_area: f32,
    max_area: f32,
    distance: f32,
    /// How long person positions are kept.
    lookback: Duration,
    spots: Spots<Item>,
    /// Still regions that are tracked objects (a parked bicycle), not items.
    owned: Owned,
    /// Recent frames: (pts, thrower-class tracks).
    history: VecDeque<(Duration, Vec<Seen>)>,
}

struct Item {
    /// Class (None = a still region) and score.
    class: Option<usize>,
    score: f32,
    area: f32,
    /// The person next to the item when it appeared.
    thrower: Option<Seen>,
}

/// A thrower-class track as it was seen.
#[derive(Debug, Clone, Copy)]
struct Seen {
    id: u64,
    class_id: usize,
    score: f32,
    bbox: PxBox,
}

struct Candidate {
    bbox: PxBox,
    class: Option<usize>,
    score: f32,
    area: f32,
    /// When the item appeared.
    since: Duration,
    /// In view (a still region can be hidden behind someone).
    in_view: bool,
}

impl Litter {
    pub fn new(c: &LitterConfig, labels: &[String], env: RuleEnv) -> Self {
        Self {
            classes: ClassSet::of(&c.classes, labels),
            throwers: ClassSet::of(&c.thrower_classes, labels),
            static_change: c.static_change,
            min_area: c.min_area,
            max_area: c.max_area,
            distance: c.thrower_distance,
            lookback: env.still + LINGER,
            owned: Owned::default(),
            // No updates: an item lies there until it is gone.
            spots: Spots::new(Timing::secs(c.dwell_s, c.clear_s, NEVER, c.cooldown_s)),
            history: VecDeque::new(),
        }
    }

    fn candidates(&mut self, ctx: &Ctx<'_>) -> Vec<Candidate> {
        let obs = ctx.obs;
        let frame = obs.width.max(1) as f32 * obs.height.max(1) as f32;
        let mut out: Vec<Candidate> = obs
            .detections
            .iter()
            .filter(|d| self.classes.contains(d.class_id) && ctx.holds(&d.bbox))
            .map(|d| Candidate {
                bbox: d.bbox,
                class: Some(d.class_id),
                score: d.score,
                area: d.bbox.area() / frame,
                since: obs.pts,
                in_view: true,
            })
            .collect();
        if self.static_change {
            for r in obs.regions {
                // Every region is judged, fitting or not: a region known to be
                // an object stays one while the detector misses the object.
                if self.owned.check(ctx, r, &self.classes)
                    || r.area < self.min_area
                    || r.area > self.max_area
                    || !ctx.holds(&r.bbox)
                    || r.is_cleared()
                {
                    continue;
                }
                out.push(Candidate {
                    bbox: r.bbox,
                    class: None,
                    score: 1.0,
                    area: r.area,
                    since: r.appeared,
                    in_view: !r.is_hidden(),
                });
            }
            self.owned.sweep(obs.regions);
        }
        out
    }

    /// The thrower-class track nearest to `item` around `when`, if one was next to it.
    fn who_was_there(&self, item: &PxBox, when: Duration) -> Option<Seen> {
        let c = item.center();
        self.history
            .iter()
            .filter(|(t, _)| {
                *t + Duration::from_secs(2) >= when && *t <= when + Spots::<Item>::GRACE
            })
            .flat_map(|(_, tracks)| tracks.iter())
            .map(|s| (s.bbox.distance_to(c) / s.bbox.height().max(1.0), s))
            .filter(|(d, _)| *d <= self.distance)
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, s)| *s)
    }

    fn remember_people(&mut self, ctx: &Ctx<'_>) {
        let pts = ctx.obs.pts;
        while self
            .history
            .front()
            .is_some_and(|(t, _)| pts.saturating_sub(*t) > self.lookback || *t > pts)
        {
            self.history.pop_front();
        }
        let mut v = Vec::new();
        v.extend(
            ctx.obs
                .tracks
                .iter()
                .filter(|t| t.visible && self.throwers.contains(t.class_id))
                .map(|t| Seen {
                    id: t.id,
                    class_id: t.class_id,
                    score: t.score,
                    bbox: t.bbox,
                }),
        );
        self.history.push_back((pts, v));
    }
}

/// The start of a litter incident; `distance` is how near (in the person's
/// heights) counts as next to the item.
fn start_event(ctx: &Ctx<'_>, spot: &Spot<Item>, distance: f32) -> RuleEvent {
    let a = spot.life.active().expect("an open incident");
    let mut ev = ctx.ongoing("litter", Phase::Start, a);
    ev.objects
        .push(ctx.object(spot.item.class, spot.item.score, &spot.bbox, None));
    let mut cause = "appeared";
    if let Some(then) = spot.item.thrower {
        // Walked away: gone, or now farther than twice "next to".
        let c = spot.bbox.center();
        let now = ctx.obs.tracks.iter().find(|t| t.id == then.id);
        let away =
            now.is_none_or(|t| t.bbox.distance_to(c) / t.height() > 2.0 * distance.max(0.25));
        if away {
            cause = "thrown";
            // Where they are now if they are in view, else where they were
            // seen beside the item (not where a lost track is guessed to be).
            let mut o = match now.filter(|t| t.visible) {
                Some(t) => ctx.track_object(t),
                None => ctx.object(Some(then.class_id), then.score, &then.bbox, Some(then.id)),
            };
            o.role = Some("thrower".into());
            ev.objects.push(o);
        }
    }
    ev.attributes = attributes([("cause", cause), ("source", source(spot.item.class))]);
    ev.metrics = metrics([
        ("area", spot.item.area as f64),
        (
            "dwell_s",
            ctx.obs.pts.saturating_sub(spot.first_seen).as_secs_f64(),
        ),
    ]);
    ev
}

fn source(class: Option<usize>) -> &'static str {
    if class.is_some() {
        "detection"
    } else {
        "static_change"
    }
}

impl Rule for Litter {
    fn observe(&mut self, ctx: &Ctx<'_>, out: &mut Vec<RuleEvent>) {
        let pts = ctx.obs.pts;
        self.remember_people(ctx);
        for c in self.candidates(ctx) {
            if !c.in_view {
                // Behind someone: it keeps its spot, it never makes one.
                self.spots.hidden(&c.bbox, pts);
                continue;
            }
            if let Some(s) = self.spots.sighted(&c.bbox, pts, c.since) {
                // A detection names the item better than a still region does.
                if c.class.is_some() || s.item.class.is_none() {
                    s.bbox = c.bbox;
                    s.item.class = c.class;
                    s.item.score = c.score;
                    s.item.area = c.area;
                }
                continue;
            }
            let thrower = self.who_was_there(&c.bbox, c.since);
            let item = Item {
                class: c.class,
                score: c.score,
                area: c.area,
                thrower,
            };
            self.spots.add(c.bbox, pts, c.since, item);
        }
        let distance = self.distance;
        self.spots
            .step(pts, ctx.obs.captured_at, |s, step| match step {
                Step::Start => out.push(start_event(ctx, s, distance)),
                Step::End(end) => {
                    let mut ev = ctx.ended("litter", &end, "resolved");
                    ev.objects
                        .push(ctx.object(s.item.class, s.item.score, &s.bbox, None));
                    ev.attributes
                        .extend(attributes([("source", source(s.item.class))]));
                    out.push(ev);
                }
                Step::Update | Step::None => {}
            });
    }

    fn close(&mut self, ctx: &Ctx<'_>, reason: &str, out: &mut Vec<RuleEvent>) {
        self.spots.close(ctx.obs.pts, |s, end| {
            let mut ev = ctx.ended("litter", &end, reason);
            ev.attributes
                .extend(attributes([("source", source(s.item.class))]));
            out.push(ev);
        });
        self.history.clear();
        self.owned.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    const ZONE: &str = r#"
id = "bus_stop"
polygon = [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]
[litter]
classes = ["cup", "bottle"]
dwell_s = 5
clear_s = 3
cooldown_s = 10
"#;
    const CUP_AT: [f32; 4] = [500.0, 780.0, 530.0, 810.0];
    const FPS: f64 = 5.0;

    fn t(i: usize) -> f64 {
        i as f64 / FPS
    }

    /// A cup lying at `CUP_AT` from `from` to `to` seconds, detected in 2 frames of 3.
    fn cup(i: usize, from: f64, to: f64) -> Frame {
        let mut f = Frame::default();
        if t(i) >= from && t(i) < to && i % 3 != 2 {
            f.detections.push(det(CUP, 0.42, CUP_AT));
        }
        f
    }

    #[test]
    fn a_flickering_detection_starts_once_after_dwell_and_ends_when_clean() {
        let mut sim = Sim::new(ZONE, FPS);
        let evs = sim.run_frames(125, |i| cup(i, 2.0, 15.0));
        assert_eq!(phases(&evs), vec!["start", "end"]);
        let (ts, start) = &evs[0];
        assert!((7.0..=7.4).contains(ts), "start at {ts}");
        assert_eq!(start.objects[0].class, "cup");
        assert_eq!(start.attributes["cause"], "appeared");
        assert_eq!(start.attributes["source"], "detection");
        let (te, end) = &evs[1];
        // Last seen 14.8, gone after the 1 s grace, clean for 3 s.
        assert!((18.0..=19.2).contains(te), "end at {te}");
        assert_eq!(end.incident, start.incident);
        assert_eq!(end.attributes["reason"], "resolved");
    }

    #[test]
    fn a_still_region_dates_back_and_a_detection_of_it_is_the_same_item() {
        let mut sim = Sim::with_still(ZONE, FPS, 2.0);
        // The scene model reports the region at 3 s (it lay still since 1 s); the
        // detector also sees a cup there from 4 s; the region's id changes at 6 s.
        let evs = sim.run_frames(50, |i| {
            let mut f = cup(i, 4.0, 100.0);
            if t(i) >= 3.0 {
                let id = if t(i) < 6.0 { 1 } else { 2 };
                f.regions.push((id, [495.0, 775.0, 535.0, 815.0], 0.0016));
            }
            f
        });
        assert_eq!(phases(&evs), vec!["start"]);
        let (ts, e) = &evs[0];
        assert!((6.0..=6.4).contains(ts), "start at {ts}");
        assert_eq!(e.attributes["source"], "detection");
    }

    #[test]
    fn the_person_who_dropped_it_and_walked_away_is_named() {
        let mut sim = Sim::with_still(ZONE, FPS, 2.0);
        // Person 7 walks left to right along y=600..800 at 100 px/s, passing the
        // item's spot (x≈515) at about 1 s; the item is reported still at 3 s.
        let evs = sim.run_frames(50, |i| {
            let x = 400.0 + 100.0 * t(i) as f32;
            let mut f = Frame::objects(vec![Obj::track(7, PERSON, [x, 600.0, x + 60.0, 800.0])]);
            if t(i) >= 3.0 {
                f.regions.push((1, CUP_AT, 0.0009));
            }
            f
        });
        assert_eq!(phases(&evs), vec!["start"]);
        let e = &evs[0].1;
        assert_eq!(e.attributes["cause"], "thrown");
        let thrower = e
            .objects
            .iter()
            .find(|o| o.role.as_deref() == Some("thrower"));
        assert_eq!(
            thrower.map(|o| (o.class.as_str(), o.track_id)),
            Some(("person", Some(7)))
        );
    }

    #[test]
    fn someone_standing_next_to_it_is_not_accused_and_a_standing_person_is_no_litter() {
        let mut sim = Sim::with_still(ZONE, FPS, 2.0);
        let person = [480.0, 600.0, 560.0, 790.0];
        let evs = sim.run_frames(50, |i| {
            let mut f = Frame::objects(vec![Obj::track(3, PERSON, person)]);
            // The person's own still region is covered by the track: ignored.
            f.regions.push((9, [482.0, 610.0, 558.0, 788.0], 0.0015));
            if t(i) >= 3.0 {
                f.regions.push((1, [600.0, 770.0, 630.0, 800.0], 0.0009));
            }
            f
        });
        assert_eq!(phases(&evs), vec!["start"]);
        assert_eq!(evs[0].1.attributes["cause"], "appeared");
        assert_eq!(evs[0].1.objects.len(), 1);
    }

    #[test]
    fn cooldown_then_a_new_item_at_the_same_spot_is_a_new_incident() {
        let mut sim = Sim::new(ZONE, FPS);
        // Lies 0–10 s (start 5, end ≈ 14); back at 16 (in cooldown until ≈ 24) and stays.
        let evs = sim.run_frames(200, |i| {
            let on = t(i) < 10.0 || t(i) >= 16.0;
            let mut f = Frame::default();
            if on {
                f.detections.push(det(BOTTLE, 0.6, CUP_AT));
            }
            f
        });
        assert_eq!(phases(&evs), vec!["start", "end", "start"]);
        assert_ne!(evs[0].1.incident, evs[2].1.incident);
        assert!(evs[2].0 >= 24.0, "second start at {}", evs[2].0);
    }

    #[test]
    fn outside_the_zone_or_the_size_range_nothing_happens() {
        let mut sim = Sim::with_still(ZONE, FPS, 2.0);
        let evs = sim.run_frames(60, |_| {
            let mut f = Frame::default();
            // Above the zone; and a region too big to be litter.
            f.detections
                .push(det(CUP, 0.8, [500.0, 100.0, 530.0, 130.0]));
            f.regions.push((1, [100.0, 600.0, 400.0, 900.0], 0.09));
            f
        });
        assert!(evs.is_empty(), "{evs:?}");
    }

    const BIKE_AT: [f32; 4] = [300.0, 680.0, 420.0, 800.0];

    /// A bicycle parked at 0 s: its track, and its own still region (came to
    /// rest at 0 s, reported from 2 s).
    fn parked_bicycle(i: usize) -> Frame {
        let mut f = Frame::default();
        // Someone in front of it from 14 s to 17 s: the tracker loses it, then
        // finds it again under a new id.
        if !(14.0..17.0).contains(&t(i)) {
            let id = if t(i) < 14.0 { 1 } else { 2 };
            f.objects.push(Obj::track(id, BICYCLE, BIKE_AT));
        }
        if t(i) >= 2.0 {
            f.regions.push((1, [305.0, 690.0, 415.0, 795.0], 0.008));
        }
        f
    }

    #[test]
    fn a_cup_put_down_beside_a_parked_bicycle_is_litter_and_the_bicycle_is_not() {
        let mut sim = Sim::with_still(ZONE, FPS, 2.0);
        let evs = sim.run_frames(150, |i| {
            let mut f = parked_bicycle(i);
            // Put down between its wheels at 10 s, reported from 12 s.
            if t(i) >= 12.0 {
                f.regions.push((2, [350.0, 770.0, 372.0, 795.0], 0.0006));
            }
            // Put down at 16 s, just before the tracker finds the bicycle again:
            // it came to rest with the new track, but spans a corner of its box.
            if t(i) >= 18.0 {
                f.regions.push((3, [385.0, 775.0, 405.0, 798.0], 0.0005));
            }
            f
        });
        assert_eq!(phases(&evs), vec!["start", "start"], "{evs:?}");
        let (t1, first) = &evs[0];
        assert!((15.0..=15.4).contains(t1), "start at {t1}");
        assert_eq!(first.objects[0].bbox.0, [0.35, 0.77, 0.372, 0.795]);
        assert_eq!(first.metrics["dwell_s"], 5.0);
        let (t2, second) = &evs[1];
        assert!((21.0..=21.4).contains(t2), "start at {t2}");
        assert_eq!(second.objects[0].bbox.0, [0.385, 0.775, 0.405, 0.798]);
    }

    #[test]
    fn taking_an_item_away_ends_its_incident_and_never_starts_one() {
        let mut sim = Sim::with_still(ZONE, FPS, 2.0);
        let b = [700.0, 780.0, 730.0, 810.0];
        let evs = sim.run_frames(250, |i| {
            let mut f = Frame::default();
            // A: put down at 0 s, reported from 2 s; someone takes it at 4.8 s
            // (hidden by their hand), from 5.2 s its place shows the clean
            // picture, at 7.2 s the region lets go. Its 5 s were up at 5 s.
            if (2.0..7.2).contains(&t(i)) {
                f.regions.push((1, CUP_AT, 0.0009));
            }
            if (4.8..5.2).contains(&t(i)) {
                f.hidden.push(1);
            }
            if (5.2..7.2).contains(&t(i)) {
                f.cleared.push(1);
            }
            // B: put down at 20 s, behind passers-by from 28 s to 34 s (longer
            // than grace and clear_s together), taken away at 40 s.
            if (22.0..40.0).contains(&t(i)) {
                f.regions.push((2, b, 0.0009));
            }
            if (28.0..34.0).contains(&t(i)) {
                f.hidden.push(2);
            }
            // C: someone who stood still walks off: their region is only ever
            // seen hidden, then cleared.
            if (45.0..48.0).contains(&t(i)) {
                f.regions.push((3, [100.0, 700.0, 140.0, 800.0], 0.004));
                if t(i) < 46.0 {
                    f.hidden.push(3);
                } else {
                    f.cleared.push(3);
                }
            }
            f
        });
        assert_eq!(phases(&evs), vec!["start", "end"], "{evs:?}");
        let (ts, start) = &evs[0];
        assert!((25.0..=25.4).contains(ts), "start at {ts}");
        assert_eq!(start.objects[0].bbox.0, [0.7, 0.78, 0.73, 0.81]);
        // Last seen at 39.8, gone after the 1 s grace, clean for 3 s.
        let (te, _) = &evs[1];
        assert!((43.6..=44.2).contains(te), "end at {te}");
    }

    #[test]
    fn a_thrower_out_of_sight_is_shown_where_they_were_beside_the_item() {
        let mut sim = Sim::with_still(ZONE, FPS, 2.0);
        // Person 7 walks past the item's spot at about 1 s; from 2 s the tracker
        // has lost them and only guesses where they went.
        let evs = sim.run_frames(50, |i| {
            let x = 400.0 + 100.0 * t(i) as f32;
            let mut p = Obj::track(7, PERSON, [x, 600.0, x + 60.0, 800.0]);
            p.visible = t(i) < 2.0;
            let mut f = Frame::objects(vec![p]);
            if t(i) >= 3.0 {
                f.regions.push((1, CUP_AT, 0.0009));
            }
            f
        });
        assert_eq!(phases(&evs), vec!["start"]);
        let e = &evs[0].1;
        assert_eq!(e.attributes["cause"], "thrown");
        let thrower = e
            .objects
            .iter()
            .find(|o| o.role.as_deref() == Some("thrower"))
            .expect("a thrower");
        assert_eq!(thrower.track_id, Some(7));
        let [x0, _, x1, _] = thrower.bbox.0;
        assert!(
            x0 <= 0.515 && x1 >= 0.5,
            "beside the item: {:?}",
            thrower.bbox
        );
    }
}
