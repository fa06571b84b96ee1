//! Step 5 and 6 of the scene model (see the module doc): held pixels that
//! let go, candidates, and the grouping of both into reported regions, with
//! the ghost and light tests that keep uncovered ground and shadows out.

use std::time::Duration;

use super::mask::{dilate3, gradient};
use super::{SceneModel, StaticRegion, Tracked};
use crate::geom::PxBox;

/// Correlation with the reference above which a still change is light, not an object.
const RELIT_NCC: f64 = 0.8;
/// Grey-level standard deviation (work image) below which a patch is too flat
/// for the light test.
const RELIT_MIN_STD: f64 = 4.0;

/// A group of held pixels found in this frame.
struct Found {
    component: usize,
    held: usize,
    bbox: [usize; 4],
}

impl SceneModel {
    /// Held pixels that match the reference again let go (the spot is clean);
    /// a held pixel where something else has lain still for `still_s` takes its
    /// new value. Moving (occluded) held pixels keep theirs.
    pub(super) fn release_held(&mut self, t: f64) {
        let thr = self.config.diff_threshold as i16;
        for i in 0..self.held.len() {
            if self.held[i] < 0 || self.moving[i] != 0 {
                continue;
            }
            if self.fg[i] == 0 {
                self.held[i] = -1;
            } else if t - self.still_since[i] >= self.config.still_s
                && (self.grey[i] as i16 - self.held[i]).abs() > thr
            {
                self.held[i] = self.grey[i] as i16;
            }
        }
    }

    /// Candidates: foreground pixels, not held, still for `still_s`. Candidates
    /// that stayed unclaimed for `absorb_s` go into the reference.
    pub(super) fn find_candidates(&mut self, t: f64) {
        self.cand.clear();
        self.cand.resize(self.grey.len(), 0);
        for i in 0..self.cand.len() {
            if self.held[i] >= 0 || self.fg[i] == 0 {
                continue;
            }
            let still = t - self.still_since[i];
            if still >= self.config.absorb_s {
                self.bg[i] = self.grey[i] as f32;
            } else if still >= self.config.still_s {
                self.cand[i] = 1;
            }
        }
    }

    /// Groups candidates and held pixels, promotes real candidates, absorbs ghosts
    /// and old regions, and matches the groups to the previous regions.
    pub(super) fn regions(&mut self, t: f64, pts: Duration) -> Vec<StaticRegion> {
        let (w, h) = (self.w, self.h);
        let n = w * h;
        self.scratch.clear();
        self.scratch.extend(
            self.held
                .iter()
                .zip(&self.cand)
                .map(|(&v, &c)| u8::from(v >= 0 || c != 0)),
        );
        if self.scratch.iter().all(|&m| m == 0) {
            self.tracked.clear();
            return Vec::new();
        }
        dilate3(&self.scratch, w, h, &mut self.scratch3, &mut self.scratch2);
        self.comps.label(&self.scratch2, w, h);

        let min_px = (self.config.min_area * n as f32).ceil().max(1.0) as usize;
        let mut found = Vec::new();
        for k in 0..self.comps.ranges.len() {
            let range = self.comps.ranges[k].clone();
            let (mut held, mut cand, mut moving) = (0usize, 0usize, false);
            for &p in &self.comps.pixels[range.clone()] {
                let p = p as usize;
                held += usize::from(self.held[p] >= 0);
                cand += usize::from(self.cand[p] != 0);
                moving |= self.moving[p] != 0;
            }
            if cand > 0 && !moving {
                // New objects are checked for being ghosts, and so is a large
                // addition to a region (a few pixels rejoining one are not: the
                // outline of a handful of pixels says nothing).
                if (held == 0 || cand >= min_px) && (self.is_ghost(k) || self.is_relit(k)) {
                    for &p in &self.comps.pixels[range.clone()] {
                        let p = p as usize;
                        if self.cand[p] != 0 {
                            self.bg[p] = self.grey[p] as f32;
                        }
                    }
                } else if held > 0 || cand >= min_px {
                    for &p in &self.comps.pixels[range.clone()] {
                        let p = p as usize;
                        if self.cand[p] != 0 {
                            self.held[p] = self.grey[p] as i16;
                        }
                    }
                    held += cand;
                }
            }
            if held < min_px {
                // What is left of a region too small to report (partly taken
                // away) lets go: as a candidate it is absorbed after `absorb_s`
                // unless it grows into a region again.
                for &p in &self.comps.pixels[range] {
                    self.held[p as usize] = -1;
                }
                continue;
            }
            let mut bbox = [usize::MAX, usize::MAX, 0, 0];
            for &p in &self.comps.pixels[range] {
                let p = p as usize;
                if self.held[p] >= 0 {
                    let (x, y) = (p % w, p / w);
                    bbox = [
                        bbox[0].min(x),
                        bbox[1].min(y),
                        bbox[2].max(x),
                        bbox[3].max(y),
                    ];
                }
            }
            found.push(Found {
                component: k,
                held,
                bbox,
            });
        }

        // Largest first, each takes the unclaimed previous region it overlaps most.
        found.sort_by(|a, b| b.held.cmp(&a.held).then(a.component.cmp(&b.component)));
        let mut claimed = vec![false; self.tracked.len()];
        let mut tracked = Vec::with_capacity(found.len());
        let mut out = Vec::with_capacity(found.len());
        let (sx, sy) = (self.src.0 as f32 / w as f32, self.src.1 as f32 / h as f32);
        for f in found {
            let best = self
                .tracked
                .iter()
                .enumerate()
                .filter(|(j, _)| !claimed[*j])
                .map(|(j, tr)| (j, overlap(&tr.bbox, &f.bbox)))
                .filter(|&(_, o)| o > 0)
                .max_by_key(|&(j, o)| (o, std::cmp::Reverse(j)));
            let (id, since) = match best {
                Some((j, _)) => {
                    claimed[j] = true;
                    (self.tracked[j].id, self.tracked[j].since)
                }
                None => {
                    self.next_id += 1;
                    (self.next_id - 1, pts)
                }
            };
            if t - since.as_secs_f64() >= self.config.absorb_s {
                for &p in &self.comps.pixels[self.comps.ranges[f.component].clone()] {
                    let p = p as usize;
                    if self.held[p] >= 0 {
                        self.bg[p] = self.held[p] as f32;
                        self.held[p] = -1;
                    }
                }
                continue;
            }
            let [x0, y0, x1, y1] = f.bbox;
            out.push(StaticRegion {
                id,
                bbox: PxBox([
                    x0 as f32 * sx,
                    y0 as f32 * sy,
                    ((x1 + 1) as f32 * sx).min(self.src.0 as f32),
                    ((y1 + 1) as f32 * sy).min(self.src.1 as f32),
                ]),
                area: f.held as f32 / n as f32,
                since,
            });
            tracked.push(Tracked {
                id,
                since,
                bbox: f.bbox,
            });
        }
        self.tracked = tracked;
        out.sort_by_key(|r| r.id);
        out
    }

    /// Light test of component `k` (candidates only): a shadow or a change of
    /// lighting keeps the ground's texture, only darker or brighter, while an
    /// object hides it. Relit if the candidates' grey levels correlate with the
    /// reference (normalised cross-correlation ≥ [`RELIT_NCC`]) where both are
    /// textured enough to tell; a flat patch is never called relit.
    pub(super) fn is_relit(&self, k: usize) -> bool {
        let (mut n, mut sg, mut sb, mut sgg, mut sbb, mut sgb) = (0.0f64, 0.0, 0.0, 0.0, 0.0, 0.0);
        for &p in &self.comps.pixels[self.comps.ranges[k].clone()] {
            let p = p as usize;
            if self.cand[p] == 0 {
                continue;
            }
            let (g, b) = (self.grey[p] as f64, self.bg[p] as f64);
            n += 1.0;
            sg += g;
            sb += b;
            sgg += g * g;
            sbb += b * b;
            sgb += g * b;
        }
        if n < 16.0 {
            return false;
        }
        let var_g = sgg / n - (sg / n).powi(2);
        let var_b = sbb / n - (sb / n).powi(2);
        let cov = sgb / n - (sg / n) * (sb / n);
        let textured = RELIT_MIN_STD * RELIT_MIN_STD;
        var_g >= textured && var_b >= textured && cov / (var_g * var_b).sqrt() >= RELIT_NCC
    }

    /// Ghost test of component `k` (candidates only): compares the gradient of
    /// the frame and of the reference along the candidates' outline (the
    /// candidates with a non-candidate 4-neighbour, and those neighbours).
    pub(super) fn is_ghost(&mut self, k: usize) -> bool {
        let (w, h) = (self.w, self.h);
        if self.band.len() != w * h {
            self.band.clear();
            self.band.resize(w * h, 0);
            self.band_gen = 0;
        }
        self.band_gen = self.band_gen.wrapping_add(1);
        if self.band_gen == 0 {
            self.band.fill(0);
            self.band_gen = 1;
        }
        let mark = self.band_gen;
        let (mut e_frame, mut e_ref) = (0.0f32, 0.0f32);
        let range = self.comps.ranges[k].clone();
        for idx in range {
            let p = self.comps.pixels[idx] as usize;
            if self.cand[p] == 0 {
                continue;
            }
            let (x, y) = (p % w, p / w);
            let mut neighbours = [usize::MAX; 4];
            if x > 0 {
                neighbours[0] = p - 1;
            }
            if x + 1 < w {
                neighbours[1] = p + 1;
            }
            if y > 0 {
                neighbours[2] = p - w;
            }
            if y + 1 < h {
                neighbours[3] = p + w;
            }
            let mut edge = false;
            for q in neighbours.into_iter().filter(|&q| q != usize::MAX) {
                if self.cand[q] == 0 {
                    edge = true;
                    if self.band[q] != mark {
                        self.band[q] = mark;
                        e_frame += gradient(|i| self.grey[i] as f32, w, h, q);
                        e_ref += gradient(|i| self.bg[i], w, h, q);
                    }
                }
            }
            if edge && self.band[p] != mark {
                self.band[p] = mark;
                e_frame += gradient(|i| self.grey[i] as f32, w, h, p);
                e_ref += gradient(|i| self.bg[i], w, h, p);
            }
        }
        e_ref > e_frame
    }
}

/// Intersection area of two inclusive pixel boxes (0 if disjoint).
fn overlap(a: &[usize; 4], b: &[usize; 4]) -> usize {
    let x0 = a[0].max(b[0]);
    let y0 = a[1].max(b[1]);
    let x1 = a[2].min(b[2]);
    let y1 = a[3].min(b[3]);
    if x1 < x0 || y1 < y0 {
        0
    } else {
        (x1 - x0 + 1) * (y1 - y0 + 1)
    }
}
