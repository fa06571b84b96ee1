//! Which still regions are things of their own. The scene model reports
//! whatever came to rest and differs from the clean picture; a parked car, a
//! bicycle or a person standing is such a region too, and so is a cup put
//! down beside them. A region lying in a tracked object's box is that object
//! only if it *appeared with it*: it came to rest when the object did (the
//! object arrived and stopped there), and it is the object's shape — with the
//! regions that came to rest at the same moment, it spans a good part of the
//! object's box.
//! One that came to rest while the object was already standing there, or
//! before the object came, is a thing next to it — exactly where litter
//! collects, beside parked bicycles and cars. So is a small thing that comes
//! to rest just as the tracker finds an object that was there all along (a
//! parked bicycle seen again once the person who dropped the thing has moved
//! on): it does not span the bicycle.
//!
//! The decision is remembered by region id ([`Owned`]): once a region is
//! known to be an object's, it stays that object's for the region's life, even
//! while the detector misses the object or its track is lost and found again.

use std::time::Duration;

use super::{ClassSet, Ctx, Region, TrackedObject};
use crate::geom::PxBox;

/// How much earlier than the tracker's `still_since` an object's own region
/// may have come to rest: the tracker marks an object still once its box
/// centre stays within a fraction of its height, a little before it stops.
const REST_BEFORE: Duration = Duration::from_secs(1);
/// How much later: the last parts of an object settle (a door shut, a coat).
const REST_AFTER: Duration = Duration::from_secs(3);

/// Regions that came to rest this close together came to rest together.
const TOGETHER: Duration = Duration::from_secs(1);

/// How much of an object's box its own regions span at least: a parked
/// bicycle against a wall of its colour differs from the clean picture only
/// in part, a cup beside it spans a small corner of its box.
const SPAN: f32 = 0.25;

/// Whether still region `r` is (part of) tracked object `t`: it lies mostly
/// (half its box or more) in `t`'s box, it came to rest when `t` did, and
/// with the `regions` that came to rest together with it in `t`'s box it
/// spans at least [`SPAN`] of that box.
pub fn part_of(r: &Region, t: &TrackedObject, regions: &[Region]) -> bool {
    let inside = |q: &Region| q.bbox.covered_by(&t.bbox) >= 0.5;
    if !inside(r)
        || r.appeared + REST_BEFORE < t.still_since
        || r.appeared > t.still_since + REST_AFTER
    {
        return false;
    }
    let span = regions
        .iter()
        .filter(|q| inside(q) && q.appeared.abs_diff(r.appeared) <= TOGETHER)
        .fold(r.bbox, |b, q| {
            PxBox([
                b[0].min(q.bbox[0]),
                b[1].min(q.bbox[1]),
                b[2].max(q.bbox[2]),
                b[3].max(q.bbox[3]),
            ])
        });
    span.intersection(&t.bbox) >= SPAN * t.bbox.area()
}

/// The ids of the regions known to be tracked objects, remembered while the
/// scene model reports them.
#[derive(Debug, Default)]
pub struct Owned {
    ids: Vec<u64>,
}

impl Owned {
    /// Whether `r` is part of a tracked object of a class not in `except`:
    /// judged on each frame until it is, then for the rest of its life.
    pub fn check(&mut self, ctx: &Ctx<'_>, r: &Region, except: &ClassSet) -> bool {
        if self.ids.contains(&r.id) {
            return true;
        }
        let owned = ctx.owner_of(r, except).is_some();
        if owned {
            self.ids.push(r.id);
        }
        owned
    }

    /// Forgets the regions the scene model no longer reports.
    pub fn sweep(&mut self, regions: &[Region]) {
        self.ids.retain(|id| regions.iter().any(|r| r.id == *id));
    }

    pub fn clear(&mut self) {
        self.ids.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    fn region(id: u64, b: [f32; 4], appeared: f64) -> Region {
        Region {
            id,
            bbox: PxBox(b),
            area: 0.001,
            since: secs(appeared + 2.0),
            appeared: secs(appeared),
            hidden: 0.0,
            cleared: 0.0,
        }
    }

    #[test]
    fn a_region_is_an_object_when_it_came_to_rest_with_it_and_spans_its_box() {
        // A bicycle that stopped at 10 s.
        let bike = TrackedObject {
            id: 1,
            class_id: 1,
            score: 0.6,
            bbox: PxBox([300.0, 680.0, 420.0, 800.0]),
            visible: true,
            speed: 0.0,
            still_since: secs(10.0),
        };
        let whole = [305.0, 690.0, 415.0, 795.0];
        let corner = [350.0, 770.0, 372.0, 795.0];
        let half = [305.0, 690.0, 360.0, 740.0];
        let other_half = region(2, [360.0, 740.0, 415.0, 795.0], 10.2);
        let cases = [
            ("its own region", region(1, whole, 10.0), vec![], true),
            (
                "settled just after it stopped",
                region(1, whole, 12.5),
                vec![],
                true,
            ),
            ("settled just before", region(1, whole, 9.2), vec![], true),
            (
                "was there before it came",
                region(1, whole, 7.0),
                vec![],
                false,
            ),
            (
                "put down later beside it",
                region(1, corner, 20.0),
                vec![],
                false,
            ),
            (
                "put down as it was found",
                region(1, corner, 10.0),
                vec![],
                false,
            ),
            (
                "a part, with the rest",
                region(1, half, 10.0),
                vec![other_half],
                true,
            ),
            (
                "mostly outside its box",
                region(1, [400.0, 690.0, 520.0, 795.0], 10.0),
                vec![],
                false,
            ),
        ];
        for (why, r, others, want) in cases {
            let mut all = others;
            all.push(r.clone());
            assert_eq!(part_of(&r, &bike, &all), want, "{why}");
        }
    }
}
