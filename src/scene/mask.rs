//! Binary-mask helpers on the work image: 3×3 dilation, 8-connected
//! components with their pixel lists, and the local gradient used by the
//! ghost test. Masks are `0`/`1` bytes, row-major, `w × h`.

use std::ops::Range;

/// Writes the 3×3 dilation of `mask` into `out` (separable: rows, then columns).
pub(crate) fn dilate3(mask: &[u8], w: usize, h: usize, tmp: &mut Vec<u8>, out: &mut Vec<u8>) {
    debug_assert_eq!(mask.len(), w * h);
    tmp.clear();
    tmp.resize(w * h, 0);
    out.clear();
    out.resize(w * h, 0);
    for (src, dst) in mask.chunks_exact(w).zip(tmp.chunks_exact_mut(w)) {
        for x in 0..w {
            let lo = x.saturating_sub(1);
            let hi = (x + 1).min(w - 1);
            dst[x] = src[lo] | src[x] | src[hi];
        }
    }
    for y in 0..h {
        let up = y.saturating_sub(1) * w;
        let mid = y * w;
        let down = (y + 1).min(h - 1) * w;
        for x in 0..w {
            out[mid + x] = tmp[up + x] | tmp[mid + x] | tmp[down + x];
        }
    }
}

/// The 8-connected components of a mask: component `k` is
/// `pixels[ranges[k].clone()]` (pixel indices `y * w + x`).
#[derive(Debug, Default)]
pub(crate) struct Components {
    pub(crate) pixels: Vec<u32>,
    pub(crate) ranges: Vec<Range<usize>>,
    seen: Vec<bool>,
    stack: Vec<u32>,
}

impl Components {
    /// Labels the set pixels of `mask` (flood fill, no recursion).
    pub(crate) fn label(&mut self, mask: &[u8], w: usize, h: usize) {
        self.pixels.clear();
        self.ranges.clear();
        self.seen.clear();
        self.seen.resize(w * h, false);
        for start in 0..w * h {
            if mask[start] == 0 || self.seen[start] {
                continue;
            }
            let first = self.pixels.len();
            self.seen[start] = true;
            self.stack.push(start as u32);
            while let Some(p) = self.stack.pop() {
                self.pixels.push(p);
                let (x, y) = (p as usize % w, p as usize / w);
                for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                    for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                        let q = ny * w + nx;
                        if mask[q] != 0 && !self.seen[q] {
                            self.seen[q] = true;
                            self.stack.push(q as u32);
                        }
                    }
                }
            }
            self.ranges.push(first..self.pixels.len());
        }
    }
}

/// Gradient magnitude `|∂x| + |∂y|` (central differences, clamped at the
/// borders) of the image `at` at pixel `i`.
#[inline]
pub(crate) fn gradient(at: impl Fn(usize) -> f32, w: usize, h: usize, i: usize) -> f32 {
    let (x, y) = (i % w, i / w);
    let l = y * w + x.saturating_sub(1);
    let r = y * w + (x + 1).min(w - 1);
    let u = y.saturating_sub(1) * w + x;
    let d = (y + 1).min(h - 1) * w + x;
    (at(r) - at(l)).abs() + (at(d) - at(u)).abs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(rows: &[&str]) -> (Vec<u8>, usize, usize) {
        let w = rows[0].len();
        let m = rows
            .iter()
            .flat_map(|r| r.bytes().map(|b| u8::from(b == b'#')))
            .collect();
        (m, w, rows.len())
    }

    #[test]
    fn dilation_grows_by_one_pixel_and_clips_at_borders() {
        let (m, w, h) = mask(&["#....", ".....", "....."]);
        let (mut tmp, mut out) = (Vec::new(), Vec::new());
        dilate3(&m, w, h, &mut tmp, &mut out);
        let (want, _, _) = mask(&["##...", "##...", "....."]);
        assert_eq!(out, want);
        let (m, w, h) = mask(&[".....", "..#..", "....."]);
        dilate3(&m, w, h, &mut tmp, &mut out);
        let (want, _, _) = mask(&[".###.", ".###.", ".###."]);
        assert_eq!(out, want);
    }

    #[test]
    fn components_are_eight_connected_with_their_pixels() {
        let (m, w, h) = mask(&["##...#", "..#..#", "......", "...##."]);
        let mut c = Components::default();
        c.label(&m, w, h);
        assert_eq!(c.ranges.len(), 3);
        let mut sets: Vec<Vec<u32>> = c
            .ranges
            .iter()
            .map(|r| {
                let mut v = c.pixels[r.clone()].to_vec();
                v.sort();
                v
            })
            .collect();
        sets.sort();
        assert_eq!(sets, vec![vec![0, 1, 8], vec![5, 11], vec![21, 22]]);
    }

    #[test]
    fn gradient_sees_a_step() {
        // 4×1 image 0 0 100 100: the step is seen at the two middle pixels only.
        let img = [0.0f32, 0.0, 100.0, 100.0];
        let g: Vec<f32> = (0..4).map(|i| gradient(|j| img[j], 4, 1, i)).collect();
        assert_eq!(g, vec![0.0, 100.0, 100.0, 0.0]);
    }
}
