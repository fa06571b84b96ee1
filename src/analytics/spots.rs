//! Place-keyed memory. Incidents about things that lie still (litter, piles,
//! parked bikes, a stall) are tied to where they are, not to tracker ids or
//! region ids, so a re-detection, a flicker or a track id switch never opens a
//! second incident for the same thing.

use std::time::Duration;

/// Box geometry helpers; boxes are `[x0, y0, x1, y1]` in source pixels.
pub mod geom {
    pub use crate::detect::postprocess::{area, intersection, iou};

    /// Fraction of `a` covered by `b`.
    pub fn covered(a: &[f32; 4], b: &[f32; 4]) -> f32 {
        let aa = area(a);
        if aa > 0.0 {
            intersection(a, b) / aa
        } else {
            0.0
        }
    }

    pub fn center(b: &[f32; 4]) -> (f32, f32) {
        ((b[0] + b[2]) * 0.5, (b[1] + b[3]) * 0.5)
    }

    pub fn contains_point(b: &[f32; 4], (x, y): (f32, f32)) -> bool {
        x >= b[0] && x <= b[2] && y >= b[1] && y <= b[3]
    }

    /// Same place: overlapping enough, or one's centre inside the other.
    pub fn same_place(a: &[f32; 4], b: &[f32; 4]) -> bool {
        iou(a, b) >= 0.3 || contains_point(a, center(b)) || contains_point(b, center(a))
    }

    /// Distance from point `p` to box `b` (0 inside).
    pub fn distance_to(b: &[f32; 4], (x, y): (f32, f32)) -> f32 {
        let dx = (b[0] - x).max(0.0).max(x - b[2]);
        let dy = (b[1] - y).max(0.0).max(y - b[3]);
        (dx * dx + dy * dy).sqrt()
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
    bbox: [f32; 4],
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
        bbox: [f32; 4],
        since: Duration,
    ) -> Duration {
        let (cx, cy) = geom::center(&bbox);
        let near = |p: &Place| {
            let (px, py) = geom::center(&p.bbox);
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
        let b = [100.0, 100.0, 120.0, 140.0];
        assert_eq!(p.observe(s(10), 1, b, s(3)), s(3));
        // Same place, a new track that claims it only arrived at 12.
        let moved = [102.0, 101.0, 122.0, 141.0];
        assert_eq!(p.observe(s(12), 1, moved, s(12)), s(3));
        // Another class at the same place is another thing.
        assert_eq!(p.observe(s(12), 2, b, s(12)), s(12));
        // Far away: another place.
        assert_eq!(
            p.observe(s(12), 1, [300.0, 100.0, 320.0, 140.0], s(11)),
            s(11)
        );
        // Unseen past the grace: forgotten.
        p.sweep(s(18));
        assert_eq!(p.observe(s(18), 1, b, s(18)), s(18));
    }

    #[test]
    fn geometry() {
        let a = [0.0, 0.0, 10.0, 10.0];
        let b = [5.0, 0.0, 15.0, 10.0];
        assert!((geom::iou(&a, &b) - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(geom::covered(&a, &b), 0.5);
        assert!(geom::same_place(&a, &[4.0, 4.0, 6.0, 6.0]));
        assert!(!geom::same_place(&a, &[20.0, 20.0, 30.0, 30.0]));
        assert_eq!(geom::distance_to(&a, (13.0, 14.0)), 5.0);
        assert_eq!(geom::distance_to(&a, (3.0, 4.0)), 0.0);
    }
}
