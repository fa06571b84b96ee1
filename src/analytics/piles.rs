//! `piled_materials`: a large new still region (sand, bricks, rubbish bags —
//! whatever the model has no class for) that stays for `min_duration_s`.
//! Kept by place like litter; ends once the place has been clear for `clear_s`.
//! A region that is a tracked object (a parked car, see [`super::regions`]) is
//! no pile; one hidden behind someone keeps its pile but never makes one.

use super::lifecycle::{NEVER, Step, Timing};
use super::regions::Owned;
use super::spots::Spots;
use super::{ClassSet, Ctx, Rule, RuleEvent, attributes, metrics};
use crate::config::PilesConfig;
use crate::event::Phase;

pub struct Piles {
    min_area: f32,
    /// Each pile's area (fraction of the frame).
    spots: Spots<f32>,
    /// Still regions that are tracked objects.
    owned: Owned,
}

impl Piles {
    pub fn new(c: &PilesConfig, _labels: &[String]) -> Self {
        Self {
            min_area: c.min_area,
            owned: Owned::default(),
            spots: Spots::new(Timing::secs(
                c.min_duration_s,
                c.clear_s,
                NEVER,
                c.cooldown_s,
            )),
        }
    }
}

impl Rule for Piles {
    fn observe(&mut self, ctx: &Ctx<'_>, out: &mut Vec<RuleEvent>) {
        let pts = ctx.obs.pts;
        let none = ClassSet::default();
        for r in ctx.obs.regions {
            if self.owned.check(ctx, r, &none)
                || r.area < self.min_area
                || !ctx.holds(&r.bbox)
                || r.is_cleared()
            {
                continue;
            }
            if r.is_hidden() {
                self.spots.hidden(&r.bbox, pts);
                continue;
            }
            let since = r.appeared;
            match self.spots.sighted(&r.bbox, pts, since) {
                Some(p) => {
                    p.bbox = r.bbox;
                    p.item = r.area;
                }
                None => self.spots.add(r.bbox, pts, since, r.area),
            }
        }
        self.spots
            .step(pts, ctx.obs.captured_at, |p, step| match step {
                Step::Start => {
                    let a = p.life.active().expect("an open incident");
                    let mut ev = ctx.ongoing("piled_materials", Phase::Start, a);
                    ev.objects.push(ctx.object(None, 1.0, &p.bbox, None));
                    ev.attributes = attributes([("source", "static_change")]);
                    ev.metrics = metrics([
                        ("area", p.item as f64),
                        ("dwell_s", pts.saturating_sub(p.first_seen).as_secs_f64()),
                    ]);
                    out.push(ev);
                }
                Step::End(end) => {
                    let mut ev = ctx.ended("piled_materials", &end, "resolved");
                    ev.objects.push(ctx.object(None, 1.0, &p.bbox, None));
                    ev.attributes
                        .extend(attributes([("source", "static_change")]));
                    ev.metrics.extend(metrics([("area", p.item as f64)]));
                    out.push(ev);
                }
                Step::Update | Step::None => {}
            });
        self.owned.sweep(ctx.obs.regions);
    }

    fn close(&mut self, ctx: &Ctx<'_>, reason: &str, out: &mut Vec<RuleEvent>) {
        self.spots.close(ctx.obs.pts, |_, end| {
            let mut ev = ctx.ended("piled_materials", &end, reason);
            ev.attributes
                .extend(attributes([("source", "static_change")]));
            out.push(ev);
        });
        self.owned.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::*;

    const ZONE: &str = r#"
id = "verge"
polygon = [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]
[piled_materials]
min_area = 0.01
min_duration_s = 6
clear_s = 3
"#;
    const PILE: [f32; 4] = [200.0, 700.0, 400.0, 850.0];

    #[test]
    fn a_large_still_region_starts_after_min_duration_and_ends_when_cleared() {
        let mut sim = Sim::with_still(ZONE, 1.0, 2.0);
        let evs = sim.run_frames(30, |i| {
            let mut f = Frame::default();
            if (4..20).contains(&i) {
                // Seen from 4 s: it has lain still since 2 s.
                f.regions.push((1 + i as u64 / 7, PILE, 0.03));
            }
            // A small one nearby is not a pile.
            f.regions.push((99, [600.0, 800.0, 620.0, 820.0], 0.0004));
            f
        });
        let got: Vec<(f64, &str)> = evs.iter().map(|(t, e)| (*t, e.phase.as_str())).collect();
        // Start at 2 + 6 = 8; last seen 19, missing past the 1 s grace at 21, clear 3 s ⇒ 24.
        assert_eq!(got, vec![(8.0, "start"), (24.0, "end")]);
        assert_eq!(evs[0].1.metrics["area"], 0.03);
        assert_eq!(evs[0].1.objects[0].bbox.0, [0.2, 0.7, 0.4, 0.85]);
    }

    #[test]
    fn a_parked_car_is_not_a_pile() {
        let mut sim = Sim::new(ZONE, 1.0);
        let evs = sim.run_frames(20, |_| {
            let mut f = Frame::objects(vec![Obj::track(5, CAR, [190.0, 690.0, 410.0, 860.0])]);
            f.regions.push((1, PILE, 0.03));
            f
        });
        assert!(evs.is_empty());
    }
}
