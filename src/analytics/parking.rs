//! `illegal_parking`: bicycles or motorcycles (configurable) standing still
//! for `min_stationary_s` in a no-parking zone. One incident per zone with
//! the count; stillness is kept by place, so a track id switch of a parked
//! bike does not restart its clock.

use std::time::Duration;

use super::lifecycle::{Lifecycle, Step, Timing};
use super::spots::Persistence;
use super::{ClassSet, Ctx, Rule, RuleEvent, metrics};
use crate::config::ParkingConfig;
use crate::event::Phase;

/// A track must itself be still this long before it inherits a place's history.
const SETTLED: Duration = Duration::from_secs(1);

pub struct Parking {
    classes: ClassSet,
    min_stationary: Duration,
    min_count: usize,
    life: Lifecycle,
    places: Persistence,
    reported: usize,
    peak: usize,
}

impl Parking {
    pub fn new(c: &ParkingConfig, labels: &[String]) -> Self {
        Self {
            classes: ClassSet::of(&c.classes, labels),
            min_stationary: Duration::from_secs_f64(c.min_stationary_s),
            min_count: c.min_count as usize,
            life: Lifecycle::new(Timing::secs(
                0.0,
                c.clear_s,
                c.update_interval_s,
                c.cooldown_s,
            )),
            places: Persistence::new(Duration::from_secs_f64(c.clear_s.max(2.0)), 0.5),
            reported: 0,
            peak: 0,
        }
    }
}

impl Rule for Parking {
    fn observe(&mut self, ctx: &Ctx<'_>, out: &mut Vec<RuleEvent>) {
        let pts = ctx.obs.pts;
        let mut parked = Vec::new();
        let mut longest = Duration::ZERO;
        for (t, _) in ctx.tracks_in(&self.classes) {
            let still = pts.saturating_sub(t.still_since);
            if still < SETTLED.min(self.min_stationary) {
                continue;
            }
            let since = self.places.observe(pts, t.class_id, t.bbox, t.still_since);
            let parked_for = pts.saturating_sub(since);
            if parked_for >= self.min_stationary {
                longest = longest.max(parked_for);
                parked.push(t);
            }
        }
        self.places.sweep(pts);
        let count = parked.len();
        let holds = count >= self.min_count;
        if self.life.active().is_some() {
            self.peak = self.peak.max(count);
        }
        let step = self.life.step(
            pts,
            ctx.obs.captured_at,
            holds,
            count != self.reported,
            None,
        );
        let mut ev = match step {
            Step::None => return,
            Step::Start | Step::Update => {
                let a = self.life.active().expect("an open incident");
                let phase = if step == Step::Start {
                    self.peak = count;
                    Phase::Start
                } else {
                    Phase::Update
                };
                let mut ev = ctx.ongoing("illegal_parking", phase, a);
                ev.objects = parked.iter().map(|t| ctx.track_object(t)).collect();
                self.reported = count;
                ev
            }
            Step::End(end) => {
                let ev = ctx.ended("illegal_parking", &end, "resolved");
                self.reported = 0;
                ev
            }
        };
        ev.metrics.extend(metrics([
            ("count", count as f64),
            ("peak", self.peak as f64),
            ("parked_s", longest.as_secs_f64().round()),
        ]));
        out.push(ev);
    }

    fn close(&mut self, ctx: &Ctx<'_>, reason: &str, out: &mut Vec<RuleEvent>) {
        if let Some(Step::End(end)) = self.life.close(ctx.obs.pts) {
            let mut ev = ctx.ended("illegal_parking", &end, reason);
            ev.metrics.extend(metrics([("peak", self.peak as f64)]));
            out.push(ev);
        }
        self.places.clear();
        self.reported = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    const ZONE: &str = r#"
id = "pavement"
polygon = [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]
[illegal_parking]
classes = ["bicycle", "motorcycle"]
min_stationary_s = 5
clear_s = 3
update_interval_s = 2
"#;

    fn bike(id: u64, x: f32) -> Obj {
        Obj::track(id, BICYCLE, [x, 800.0, x + 80.0, 880.0])
    }

    #[test]
    fn parked_bikes_start_update_with_the_count_and_end_when_gone() {
        let mut sim = Sim::new(ZONE, 1.0);
        let evs = sim.run_frames(20, |i| {
            let mut v = vec![bike(1, 100.0)];
            if i >= 2 {
                v.push(bike(2, 300.0));
            }
            if i >= 12 {
                v.clear();
            }
            Frame::objects(v)
        });
        let got: Vec<(f64, &str, f64)> = evs
            .iter()
            .map(|(t, e)| (*t, e.phase.as_str(), e.metrics["count"]))
            .collect();
        // Bike 1 parked at 5, bike 2 at 7; both gone at 12 ⇒ end 3 s later.
        assert_eq!(
            got,
            vec![
                (5.0, "start", 1.0),
                (7.0, "update", 2.0),
                (15.0, "end", 0.0)
            ]
        );
        assert_eq!(evs[1].1.objects.len(), 2);
        assert_eq!(evs[1].1.objects[1].track_id, Some(2));
    }

    #[test]
    fn a_track_id_switch_keeps_the_parked_time() {
        let mut sim = Sim::new(ZONE, 1.0);
        // At 8 s the tracker loses bike 1 and re-finds it as bike 9 (still for 0 s).
        let evs = sim.run_frames(20, |i| {
            let b = if i < 8 {
                bike(1, 100.0)
            } else {
                let mut b = bike(9, 102.0);
                b.still_for = Some((i - 8) as f64);
                b
            };
            Frame::objects(vec![b])
        });
        assert_eq!(phases(&evs), vec!["start"]);
    }

    #[test]
    fn moving_bikes_and_other_classes_are_not_parked() {
        let mut sim = Sim::new(ZONE, 1.0);
        let evs = sim.run_frames(20, |i| {
            let mut moving = bike(1, 50.0 * i as f32);
            moving.still_for = Some(0.0);
            Frame::objects(vec![
                moving,
                Obj::track(2, CAR, [500.0, 700.0, 700.0, 900.0]),
            ])
        });
        assert!(evs.is_empty(), "{evs:?}");
    }

    #[test]
    fn inertia_and_anchor_keep_bikes_on_the_edge_out() {
        let zone = ZONE.replace("polygon", "inertia = 3\nanchor = \"center\"\npolygon");
        let mut sim = Sim::new(&zone, 1.0);
        // Centre at y=470 (outside), feet inside: with a centre anchor it never counts.
        let evs = sim.run_frames(10, |_| {
            Frame::objects(vec![Obj::track(1, BICYCLE, [100.0, 420.0, 180.0, 520.0])])
        });
        assert!(evs.is_empty());
    }
}
