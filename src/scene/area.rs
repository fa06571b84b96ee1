//! Where motion counts: the zones' polygons (fractions of the frame) rasterised
//! onto the work image, so the motion gate wakes the detector only for motion
//! inside a zone. Pure: polygons in, a `0`/`1` mask out.

/// Polygons whose inside counts for motion; corners are fractions of the frame.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MotionArea {
    polygons: Vec<Vec<(f32, f32)>>,
}

impl MotionArea {
    /// The area covered by `polygons` (each `[[x, y], …]`, fractions of the frame).
    pub fn new<'a>(polygons: impl IntoIterator<Item = &'a [[f64; 2]]>) -> Self {
        Self {
            polygons: polygons
                .into_iter()
                .map(|p| p.iter().map(|[x, y]| (*x as f32, *y as f32)).collect())
                .collect(),
        }
    }

    /// Whether no polygon was given (motion anywhere counts).
    pub fn is_empty(&self) -> bool {
        self.polygons.is_empty()
    }

    /// The mask of a `w × h` work image: `1` where a pixel's centre lies in a
    /// polygon, grown by one pixel all round (motion at a zone's edge counts, and a
    /// zone thinner than a work pixel keeps its pixels: the one holding its first
    /// corner at least).
    pub fn mask(&self, w: usize, h: usize) -> Vec<u8> {
        let mut inside = vec![0u8; w * h];
        if w == 0 || h == 0 {
            return inside;
        }
        let (fw, fh) = (w as f32, h as f32);
        for p in &self.polygons {
            let mut any = false;
            for (i, m) in inside.iter_mut().enumerate() {
                let (x, y) = ((i % w) as f32 + 0.5, (i / w) as f32 + 0.5);
                if contains(p, x / fw, y / fh) {
                    *m = 1;
                    any = true;
                }
            }
            if let (false, Some(&(x, y))) = (any, p.first()) {
                let px = ((x * fw) as usize).min(w - 1);
                let py = ((y * fh) as usize).min(h - 1);
                inside[py * w + px] = 1;
            }
        }
        let (mut tmp, mut out) = (Vec::new(), Vec::new());
        super::mask::dilate3(&inside, w, h, &mut tmp, &mut out);
        out
    }
}

/// Even-odd point-in-polygon test (as the zones' own).
fn contains(corners: &[(f32, f32)], x: f32, y: f32) -> bool {
    let n = corners.len();
    let mut inside = false;
    let mut j = n.wrapping_sub(1);
    for i in 0..n {
        let ((xi, yi), (xj, yj)) = (corners[i], corners[j]);
        if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
            inside = !inside;
        }
        j = i;
    }
    inside
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(mask: &[u8], w: usize) -> Vec<String> {
        mask.chunks(w)
            .map(|r| r.iter().map(|&m| if m == 1 { '#' } else { '.' }).collect())
            .collect()
    }

    #[test]
    fn masks_cover_the_zones_and_one_pixel_round_them() {
        let bottom = [[0.0, 0.75], [1.0, 0.75], [1.0, 1.0], [0.0, 1.0]];
        let corner = [[0.0, 0.0], [0.25, 0.0], [0.25, 0.25], [0.0, 0.25]];
        // Thinner than a pixel: only the pixel of its first corner (then grown).
        let thin = [[0.52, 0.52], [0.53, 0.52], [0.53, 0.53]];
        type Polygons<'a> = &'a [&'a [[f64; 2]]];
        let cases: [(Polygons, [&str; 8]); 4] = [
            (
                &[&bottom],
                [
                    "........", "........", "........", "........", "........", "########",
                    "########", "########",
                ],
            ),
            (
                &[&corner],
                [
                    "###.....", "###.....", "###.....", "........", "........", "........",
                    "........", "........",
                ],
            ),
            (
                &[&corner, &bottom],
                [
                    "###.....", "###.....", "###.....", "........", "........", "########",
                    "########", "########",
                ],
            ),
            (
                &[&thin],
                [
                    "........", "........", "........", "...###..", "...###..", "...###..",
                    "........", "........",
                ],
            ),
        ];
        for (polygons, want) in cases {
            let area = MotionArea::new(polygons.iter().copied());
            assert_eq!(picture(&area.mask(8, 8), 8), want, "{polygons:?}");
        }
    }

    #[test]
    fn no_zone_is_no_area() {
        assert!(MotionArea::default().is_empty());
        assert!(!MotionArea::new([&[[0.0, 0.0], [1.0, 0.0], [1.0, 1.0]][..]]).is_empty());
    }
}
