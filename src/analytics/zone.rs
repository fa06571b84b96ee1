//! Zones: polygons in normalised image coordinates.

/// A polygon zone; corners are fractions of the frame width and height.
#[derive(Debug, Clone)]
pub struct Zone {
    pub id: String,
    corners: Vec<(f32, f32)>,
}

impl Zone {
    pub fn new(id: impl Into<String>, polygon: &[[f64; 2]]) -> Self {
        Self {
            id: id.into(),
            corners: polygon
                .iter()
                .map(|[x, y]| (*x as f32, *y as f32))
                .collect(),
        }
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn square_and_concave_polygons() {
        let sq = Zone::new("sq", &[[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]);
        assert!(sq.contains(0.5, 0.75));
        assert!(!sq.contains(0.5, 0.25));
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
    }
}
