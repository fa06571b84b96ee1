//! `street_vending` and `outside_business`: people who stay in a carriageway
//! or shop-front zone together with still objects (a stall, tables, goods —
//! detections of `object_classes` or new still regions) for `min_dwell_s`,
//! during the configured hours. One incident per zone; presence is kept by
//! place, so a vendor's track id switch does not restart the clock.

use std::time::Duration;

use super::lifecycle::{Lifecycle, Step, Timing};
use super::regions::Owned;
use super::spots::Persistence;
use super::{ClassSet, Ctx, Rule, RuleEvent, metrics};
use crate::config::{DwellConfig, TimeWindow};
use crate::event::Phase;

pub struct Dwell {
    kind: &'static str,
    people: ClassSet,
    objects: ClassSet,
    /// Either set: what a still region may not be (someone standing is not goods).
    tracked: ClassSet,
    static_change: bool,
    min_dwell: Duration,
    min_people: usize,
    min_objects: usize,
    hours: Vec<TimeWindow>,
    life: Lifecycle,
    people_places: Persistence,
    object_places: Persistence,
    reported: (usize, usize),
    /// Still regions that are tracked objects (someone standing), not goods.
    owned: Owned,
}

impl Dwell {
    pub fn new(
        kind: &'static str,
        c: &DwellConfig,
        labels: &[String],
        hours: Vec<TimeWindow>,
    ) -> Self {
        let grace = Duration::from_secs_f64(c.clear_s.max(2.0));
        let all: Vec<String> = c
            .people_classes
            .iter()
            .chain(&c.object_classes)
            .cloned()
            .collect();
        Self {
            kind,
            people: ClassSet::of(&c.people_classes, labels),
            objects: ClassSet::of(&c.object_classes, labels),
            tracked: ClassSet::of(&all, labels),
            static_change: c.static_change,
            min_dwell: Duration::from_secs_f64(c.min_dwell_s),
            min_people: c.min_people as usize,
            min_objects: c.min_objects as usize,
            hours,
            life: Lifecycle::new(Timing::secs(
                0.0,
                c.clear_s,
                c.update_interval_s,
                c.cooldown_s,
            )),
            people_places: Persistence::new(grace, 1.0),
            object_places: Persistence::new(grace, 0.5),
            reported: (0, 0),
            owned: Owned::default(),
        }
    }
}

impl Rule for Dwell {
    fn observe(&mut self, ctx: &Ctx<'_>, out: &mut Vec<RuleEvent>) {
        let pts = ctx.obs.pts;
        let mut objects = Vec::new();
        let mut people = 0usize;
        let mut things = 0usize;
        let mut longest = Duration::ZERO;
        for (t, entered) in ctx.tracks_in(&self.tracked) {
            let (since, is_person) = if self.people.contains(t.class_id) {
                (
                    self.people_places.observe(pts, t.class_id, t.bbox, entered),
                    true,
                )
            } else if self.objects.contains(t.class_id) && t.still_since < pts {
                (
                    self.object_places
                        .observe(pts, t.class_id, t.bbox, t.still_since.max(entered)),
                    false,
                )
            } else {
                continue;
            };
            let stayed = pts.saturating_sub(since);
            if stayed >= self.min_dwell {
                longest = longest.max(stayed);
                if is_person {
                    people += 1;
                } else {
                    things += 1;
                }
                objects.push(ctx.track_object(t));
            }
        }
        if self.static_change {
            for r in ctx.obs.regions {
                if self.owned.check(ctx, r, &ClassSet::default()) || !ctx.holds(&r.bbox) {
                    continue;
                }
                let stayed = pts.saturating_sub(r.appeared);
                if stayed >= self.min_dwell {
                    longest = longest.max(stayed);
                    things += 1;
                    objects.push(ctx.object(None, 1.0, &r.bbox, None));
                }
            }
            self.owned.sweep(ctx.obs.regions);
        }
        self.people_places.sweep(pts);
        self.object_places.sweep(pts);
        let holds = people >= self.min_people && things >= self.min_objects;
        let changed = (people, things) != self.reported;
        let step = self
            .life
            .step(pts, ctx.obs.captured_at, holds, changed, None);
        let mut ev = match step {
            Step::None => return,
            Step::Start | Step::Update => {
                let a = self.life.active().expect("an open incident");
                let phase = if step == Step::Start {
                    Phase::Start
                } else {
                    Phase::Update
                };
                let mut ev = ctx.ongoing(self.kind, phase, a);
                ev.objects = objects;
                self.reported = (people, things);
                ev
            }
            Step::End(end) => {
                let ev = ctx.ended(self.kind, &end, "resolved");
                self.reported = (0, 0);
                ev
            }
        };
        ev.metrics.extend(metrics([
            ("people", people as f64),
            ("objects", things as f64),
            ("dwell_s", longest.as_secs_f64().round()),
        ]));
        out.push(ev);
    }

    fn close(&mut self, ctx: &Ctx<'_>, reason: &str, out: &mut Vec<RuleEvent>) {
        if let Some(Step::End(end)) = self.life.close(ctx.obs.pts) {
            out.push(ctx.ended(self.kind, &end, reason));
        }
        self.people_places.clear();
        self.object_places.clear();
        self.reported = (0, 0);
        self.owned.clear();
    }

    fn hours(&self) -> &[TimeWindow] {
        &self.hours
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    const ZONE: &str = r#"
id = "carriageway"
polygon = [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]
[street_vending]
object_classes = ["umbrella", "dining table"]
min_dwell_s = 10
clear_s = 4
update_interval_s = 5
"#;

    fn vendor(id: u64) -> Obj {
        // Moves about a little at the stall.
        Obj::track(id, PERSON, [300.0, 600.0, 360.0, 780.0])
    }

    fn stall() -> Obj {
        Obj::track(50, UMBRELLA, [250.0, 500.0, 450.0, 700.0])
    }

    #[test]
    fn a_vendor_with_a_stall_starts_after_the_dwell_and_ends_when_gone() {
        let mut sim = Sim::new(ZONE, 1.0);
        let evs = sim.run_frames(30, |i| {
            Frame::objects(if i < 20 {
                vec![vendor(1), stall()]
            } else {
                vec![]
            })
        });
        let got: Vec<(f64, &str)> = evs.iter().map(|(t, e)| (*t, e.phase.as_str())).collect();
        assert_eq!(got, vec![(10.0, "start"), (24.0, "end")]);
        assert_eq!(evs[0].1.kind, "street_vending");
        assert_eq!(evs[0].1.metrics["people"], 1.0);
        assert_eq!(evs[0].1.metrics["objects"], 1.0);
    }

    #[test]
    fn a_person_alone_or_passers_by_are_no_vendor() {
        let mut sim = Sim::new(ZONE, 1.0);
        // One person standing without goods; others walking through (each 3 s in the zone).
        let evs = sim.run_frames(30, |i| {
            let walker = Obj::track(100 + i as u64 / 3, PERSON, [600.0, 600.0, 660.0, 780.0]);
            Frame::objects(vec![vendor(1), walker])
        });
        assert!(evs.is_empty(), "{evs:?}");
    }

    #[test]
    fn goods_seen_only_as_a_still_region_count() {
        let mut sim = Sim::with_still(ZONE, 1.0, 2.0);
        let evs = sim.run_frames(15, |_| {
            let mut f = Frame::objects(vec![vendor(1)]);
            f.regions.push((4, [380.0, 700.0, 480.0, 790.0], 0.01));
            f
        });
        // The region dates back 2 s, so it has stayed 10 s already at 8 s; the vendor at 10.
        assert_eq!(phases(&evs), vec!["start"]);
        assert_eq!(evs[0].0, 10.0);
    }

    #[test]
    fn the_vendor_s_id_switch_does_not_restart_or_duplicate() {
        let mut sim = Sim::new(ZONE, 1.0);
        let evs = sim.run_frames(40, |i| {
            let id = if i < 15 { 1 } else { 2 };
            Frame::objects(vec![vendor(id), stall()])
        });
        assert_eq!(phases(&evs), vec!["start"]);
    }

    #[test]
    fn only_during_its_hours() {
        // Clock 1000 s after the epoch = 00:16 UTC; the rule works 06:00–10:00.
        let zone = ZONE.replace("clear_s = 4", "clear_s = 4\nhours = [\"06:00-10:00\"]");
        let mut sim = Sim::new(&zone, 1.0);
        assert!(
            sim.run_frames(30, |_| Frame::objects(vec![vendor(1), stall()]))
                .is_empty()
        );
        sim.jump_to_clock(6 * 3600);
        let evs = sim.run_frames(30, |_| Frame::objects(vec![vendor(1), stall()]));
        // The vendor was already there before the hours began: it starts at once, at 06:00.
        assert_eq!(phases(&evs), vec!["start"]);
        assert_eq!(evs[0].0, 30.0);
    }

    #[test]
    fn outside_business_is_the_same_rule_under_its_own_name() {
        let zone = ZONE.replace("[street_vending]", "[outside_business]");
        let mut sim = Sim::new(&zone, 1.0);
        let evs = sim.run_frames(12, |_| Frame::objects(vec![vendor(1), stall()]));
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].1.kind, "outside_business");
    }
}
