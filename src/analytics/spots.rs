//! Place-keyed memory. Incidents about things that lie still (litter, piles,
//! parked bikes, a stall) are tied to where they are, not to tracker ids or
//! region ids, so a re-detection, a flicker or a track id switch never opens a
//! second incident for the same thing.

use std::time::{Duration, SystemTime};

use super::lifecycle::{Ended, Lifecycle, Step, Timing};
use crate::geom::PxBox;

/// Same place: overlapping enough, or one's centre inside the other.
pub fn same_place(a: &PxBox, b: &PxBox) -> bool {
    a.iou(b) >= 0.3 || a.contains_point(b.center()) || b.contains_point(a.center())
}

/// Things that lie still (litter, piles), each with its own incident, kept by
/// place. Sightings up to `GRACE` apart keep a spot present: detections flicker
/// and still regions are re-numbered. A place hidden behind something moving
/// keeps its spot too, but an incident only starts on a frame where its thing
/// is in view: never on the frame it is taken away, nor during the grace after.
pub struct Spots<T> {
    timing: Timing,
    list: Vec<Spot<T>>,
}

pub struct Spot<T> {
    pub bbox: PxBox,
    /// Since when the thing has lain there.
    pub first_seen: Duration,
    /// The last frame it was seen or its place was hidden.
    pub last_seen: Duration,
    /// The last frame it was in view.
    pub last_in_view: Duration,
    pub life: Lifecycle,
    /// What the rule keeps about the thing.
    pub item: T,
}

impl<T> Spots<T> {
    pub const GRACE: Duration = Duration::from_secs(1);

    pub fn new(timing: Timing) -> Self {
        Self {
            timing,
            list: Vec::new(),
        }
    }

    /// The spot at the place of `bbox`, if there is one, marked as seen at
    /// `pts` and as lying there since `since` at the latest.
    pub fn sighted(
        &mut self,
        bbox: &PxBox,
        pts: Duration,
        since: Duration,
    ) -> Option<&mut Spot<T>> {
        let s = self.list.iter_mut().find(|s| same_place(&s.bbox, bbox))?;
        s.last_seen = pts;
        s.last_in_view = pts;
        s.first_seen = s.first_seen.min(since);
        Some(s)
    }

    /// Something moving hides the place of `bbox`: a spot there is kept as if
    /// seen, but not in view. Whether there is one.
    pub fn hidden(&mut self, bbox: &PxBox, pts: Duration) -> bool {
        match self.list.iter_mut().find(|s| same_place(&s.bbox, bbox)) {
            Some(s) => {
                s.last_seen = pts;
                true
            }
            None => false,
        }
    }

    /// A new spot, seen at `pts`, lying there since `since`.
    pub fn add(&mut self, bbox: PxBox, pts: Duration, since: Duration, item: T) {
        self.list.push(Spot {
            bbox,
            first_seen: since,
            last_seen: pts,
            last_in_view: pts,
            life: Lifecycle::new(self.timing),
            item,
        });
    }

    /// One frame for every spot's incident: `on` gets each start and end.
    /// Spots that are gone, with no incident and no cooldown left, are forgotten.
    pub fn step(&mut self, pts: Duration, at: SystemTime, mut on: impl FnMut(&Spot<T>, Step)) {
        self.list.retain_mut(|s| {
            let seen = pts.saturating_sub(s.last_seen) <= Self::GRACE;
            // Open: kept while seen or hidden; not yet: starts only in view.
            let holds = if s.life.active().is_some() {
                seen
            } else {
                s.last_in_view == pts
            };
            let step = s.life.step(pts, at, holds, false, Some(s.first_seen));
            if matches!(step, Step::Start | Step::End(_)) {
                on(s, step);
            }
            seen || s.life.active().is_some() || !s.life.is_quiet(pts)
        });
    }

    /// Ends every open incident (the camera stopped or the schedule closed)
    /// and forgets all spots.
    pub fn close(&mut self, pts: Duration, mut on: impl FnMut(&Spot<T>, Ended)) {
        for s in &mut self.list {
            if let Some(Step::End(end)) = s.life.close(pts) {
                on(s, end);
            }
        }
        self.list.clear();
    }
}

/// Remembers since when something of a class has stayed at a place, across
/// track id switches and short gaps (up to `grace`).
#[derive(Debug, Default)]
pub struct Persistence {
    grace: Duration,
    /// How far (in box heights) the centre may be from the remembered one.
    radius: f32,
    places: Vec<Place>,
}

#[derive(Debug, Clone)]
struct Place {
    class_id: usize,
    bbox: PxBox,
    since: Duration,
    last_seen: Duration,
}

impl Persistence {
    pub fn new(grace: Duration, radius: f32) -> Self {
        Self {
            grace,
            radius,
            places: Vec::new(),
        }
    }

    /// Something of `class_id` is at `bbox` now and has been there (by its own
    /// account) since `since`; returns since when the place has been occupied.
    pub fn observe(
        &mut self,
        pts: Duration,
        class_id: usize,
        bbox: PxBox,
        since: Duration,
    ) -> Duration {
        let (cx, cy) = bbox.center();
        let near = |p: &Place| {
            let (px, py) = p.bbox.center();
            let h = (bbox[3] - bbox[1]).max(p.bbox[3] - p.bbox[1]).max(1.0);
            p.class_id == class_id
                && ((cx - px).powi(2) + (cy - py).powi(2)).sqrt() <= self.radius * h
        };
        match self.places.iter_mut().find(|p| near(p)) {
            Some(p) => {
                p.since = p.since.min(since);
                p.bbox = bbox;
                p.last_seen = pts;
                p.since
            }
            None => {
                self.places.push(Place {
                    class_id,
                    bbox,
                    since,
                    last_seen: pts,
                });
                since
            }
        }
    }

    /// Forgets places unseen for longer than `grace`.
    pub fn sweep(&mut self, pts: Duration) {
        let grace = self.grace;
        self.places
            .retain(|p| pts.saturating_sub(p.last_seen) <= grace);
    }

    pub fn clear(&mut self) {
        self.places.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_id_at_the_same_place_keeps_the_old_since() {
        let s = Duration::from_secs;
        let mut p = Persistence::new(s(5), 0.5);
        let b = PxBox([100.0, 100.0, 120.0, 140.0]);
        assert_eq!(p.observe(s(10), 1, b, s(3)), s(3));
        // Same place, a new track that claims it only arrived at 12.
        let moved = PxBox([102.0, 101.0, 122.0, 141.0]);
        assert_eq!(p.observe(s(12), 1, moved, s(12)), s(3));
        // Another class at the same place is another thing.
        assert_eq!(p.observe(s(12), 2, b, s(12)), s(12));
        // Far away: another place.
        assert_eq!(
            p.observe(s(12), 1, PxBox([300.0, 100.0, 320.0, 140.0]), s(11)),
            s(11)
        );
        // Unseen past the grace: forgotten.
        p.sweep(s(18));
        assert_eq!(p.observe(s(18), 1, b, s(18)), s(18));
    }

    #[test]
    fn a_flickering_thing_keeps_one_spot_and_one_incident() {
        use crate::analytics::lifecycle::{NEVER, Timing};
        let s = Duration::from_secs;
        let at = SystemTime::UNIX_EPOCH;
        let mut spots = Spots::new(Timing::secs(3.0, 2.0, NEVER, 0.0));
        let mut log = Vec::new();
        let b = PxBox([100.0, 100.0, 120.0, 120.0]);
        for t in 0..20u64 {
            // Seen at 0..=9 except at 4 (a flicker shorter than the grace).
            if t < 10 && t != 4 {
                let nudged = PxBox([b[0] + t as f32, b[1], b[2] + t as f32, b[3]]);
                if spots.sighted(&nudged, s(t), s(t)).is_none() {
                    spots.add(nudged, s(t), s(t), t);
                }
            }
            spots.step(s(t), at, |spot, step| {
                log.push((t, spot.item, matches!(step, Step::Start)))
            });
        }
        // Starts at 3 (first seen at 0). Last seen at 9, missing past the 1 s grace
        // from 11, clear for 2 s ⇒ ends at 13.
        assert_eq!(log, vec![(3, 0, true), (13, 0, false)]);
        assert!(spots.list.is_empty(), "a gone, quiet spot is forgotten");
    }

    #[test]
    fn a_hidden_place_keeps_its_spot_and_an_incident_starts_only_in_view() {
        use crate::analytics::lifecycle::{NEVER, Timing};
        let s = Duration::from_secs;
        let at = SystemTime::UNIX_EPOCH;
        let mut spots = Spots::new(Timing::secs(3.0, 2.0, NEVER, 0.0));
        let mut log = Vec::new();
        let b = PxBox([100.0, 100.0, 120.0, 120.0]);
        for t in 0..20u64 {
            // In view at 0, 1 and 6; hidden 2–5 (its 3 s are up at 3, out of
            // view) and 7–11; gone from 12.
            if matches!(t, 0 | 1 | 6) && spots.sighted(&b, s(t), s(0)).is_none() {
                spots.add(b, s(t), s(0), ());
            }
            if matches!(t, 2..=5 | 7..=11) {
                assert!(spots.hidden(&b, s(t)));
            }
            spots.step(s(t), at, |_, step| {
                log.push((t, matches!(step, Step::Start)))
            });
        }
        // Starts when next in view; kept while hidden; last kept at 11,
        // missing past the grace from 13, clear for 2 s ⇒ ends at 15.
        assert_eq!(log, vec![(6, true), (15, false)]);
        assert!(!spots.hidden(&b, s(20)), "forgotten");
    }

    #[test]
    fn same_place_is_overlap_or_a_centre_inside() {
        let a = PxBox::new(0.0, 0.0, 10.0, 10.0);
        assert!(same_place(&a, &PxBox::new(5.0, 0.0, 15.0, 10.0)));
        assert!(same_place(&a, &PxBox::new(4.0, 4.0, 6.0, 6.0)));
        assert!(!same_place(&a, &PxBox::new(20.0, 20.0, 30.0, 30.0)));
    }
}
