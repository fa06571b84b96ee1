//! Zones: polygons in normalised image coordinates, the anchor point that
//! decides whether an object is inside, and inertia (frames inside before it
//! counts).

use std::collections::HashMap;
use std::time::Duration;

use crate::config::Anchor;
use crate::geom::PxBox;

/// A polygon zone; corners are fractions of the frame width and height.
#[derive(Debug, Clone)]
pub struct Zone {
    pub id: String,
    corners: Vec<(f32, f32)>,
    anchor: Anchor,
    /// Polygon area, as a fraction of the frame.
    area: f32,
}

impl Zone {
    pub fn new(id: impl Into<String>, polygon: &[[f64; 2]]) -> Self {
        let corners: Vec<(f32, f32)> = polygon
            .iter()
            .map(|[x, y]| (*x as f32, *y as f32))
            .collect();
        let n = corners.len();
        let twice: f32 = (0..n)
            .map(|i| {
                let (a, b) = (corners[i], corners[(i + 1) % n]);
                a.0 * b.1 - b.0 * a.1
            })
            .sum();
        Self {
            id: id.into(),
            corners,
            anchor: Anchor::BottomCenter,
            area: (twice * 0.5).abs(),
        }
    }

    pub fn with_anchor(mut self, anchor: Anchor) -> Self {
        self.anchor = anchor;
        self
    }

    /// Zone area as a fraction of the frame area.
    pub fn area(&self) -> f32 {
        self.area
    }

    /// Even-odd point-in-polygon test; points on an edge may fall either side.
    pub fn contains(&self, x: f32, y: f32) -> bool {
        let n = self.corners.len();
        let mut inside = false;
        let mut j = n - 1;
        for i in 0..n {
            let (xi, yi) = self.corners[i];
            let (xj, yj) = self.corners[j];
            if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                inside = !inside;
            }
            j = i;
        }
        inside
    }

    /// Whether a box (source pixels, in a `w`×`h` frame) has its anchor point inside.
    pub fn holds(&self, bbox: &PxBox, w: f32, h: f32) -> bool {
        let x = (bbox[0] + bbox[2]) * 0.5 / w;
        let y = match self.anchor {
            Anchor::BottomCenter => bbox[3],
            Anchor::Center => (bbox[1] + bbox[3]) * 0.5,
            Anchor::TopCenter => bbox[1],
        } / h;
        self.contains(x, y)
    }
}

/// Which tracks are in a zone, after inertia.
#[derive(Debug, Default)]
pub struct ZoneGate {
    inertia: u32,
    /// Track id → (consecutive frames inside, stream time of the first of them).
    inside: HashMap<u64, (u32, Duration)>,
    /// Reused between frames: ids seen this frame.
    seen: Vec<u64>,
}

impl ZoneGate {
    pub fn new(inertia: u32) -> Self {
        Self {
            inertia: inertia.max(1),
            ..Self::default()
        }
    }

    /// Updates membership from this frame's tracks (`(id, anchor inside)`).
    pub fn update(&mut self, pts: Duration, tracks: impl Iterator<Item = (u64, bool)>) {
        self.seen.clear();
        for (id, inside) in tracks {
            if inside {
                let e = self.inside.entry(id).or_insert((0, pts));
                e.0 = e.0.saturating_add(1);
                self.seen.push(id);
            } else {
                self.inside.remove(&id);
            }
        }
        if self.inside.len() != self.seen.len() {
            self.seen.sort_unstable();
            let seen = &self.seen;
            self.inside.retain(|id, _| seen.binary_search(id).is_ok());
        }
    }

    /// The stream time since when track `id` has been in the zone, once it counts as in.
    pub fn entered(&self, id: u64) -> Option<Duration> {
        self.inside
            .get(&id)
            .and_then(|&(n, since)| (n >= self.inertia).then_some(since))
    }

    pub fn reset(&mut self) {
        self.inside.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_and_concave_polygons() {
        let sq = Zone::new("sq", &[[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]);
        assert!(sq.contains(0.5, 0.75));
        assert!(!sq.contains(0.5, 0.25));
        assert!((sq.area() - 0.5).abs() < 1e-6);
        // An L shape: the notch at top-right is outside.
        let l = Zone::new(
            "l",
            &[
                [0.0, 0.0],
                [0.5, 0.0],
                [0.5, 0.5],
                [1.0, 0.5],
                [1.0, 1.0],
                [0.0, 1.0],
            ],
        );
        assert!(l.contains(0.25, 0.25));
        assert!(!l.contains(0.75, 0.25));
        assert!(l.contains(0.75, 0.75));
        assert!((l.area() - 0.75).abs() < 1e-6);
    }

    #[test]
    fn the_anchor_point_decides() {
        // Bottom half of a 100×100 frame; a box from y=30 to y=60 straddles the edge.
        let poly = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]];
        let b = PxBox([40.0, 30.0, 60.0, 60.0]);
        assert!(Zone::new("z", &poly).holds(&b, 100.0, 100.0));
        assert!(
            !Zone::new("z", &poly)
                .with_anchor(Anchor::TopCenter)
                .holds(&b, 100.0, 100.0)
        );
        assert!(
            !Zone::new("z", &poly)
                .with_anchor(Anchor::Center)
                .holds(&b, 100.0, 100.0)
        );
    }

    #[test]
    fn inertia_needs_consecutive_frames_inside() {
        let mut g = ZoneGate::new(3);
        let t = Duration::from_secs;
        g.update(t(0), [(1, true), (2, true)].into_iter());
        g.update(t(1), [(1, true), (2, false)].into_iter());
        assert_eq!(g.entered(1), None);
        g.update(t(2), [(1, true), (2, true)].into_iter());
        assert_eq!(g.entered(1), Some(t(0)));
        // Track 2 left at t=1: its count started again at t=2.
        assert_eq!(g.entered(2), None);
        // A track missing from the frame is forgotten.
        g.update(t(3), [(2, true)].into_iter());
        assert_eq!(g.entered(1), None);
        g.update(t(4), [(2, true)].into_iter());
        assert_eq!(g.entered(2), Some(t(2)));
    }
}
