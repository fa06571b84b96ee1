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

/// A region's held pixels in this frame.
struct RegionPixels {
    count: usize,
    /// Held pixels something moving covers.
    hidden: usize,
    /// Held pixels (not moving) that show the clean picture.
    cleared: usize,
    /// Work-pixel box, inclusive: `x0, y0, x1, y1`.
    bbox: [usize; 4],
}

impl RegionPixels {
    fn new() -> Self {
        Self {
            count: 0,
            hidden: 0,
            cleared: 0,
            bbox: [usize::MAX, usize::MAX, 0, 0],
        }
    }

    fn add(&mut self, x: usize, y: usize, moving: bool, clean: bool) {
        self.count += 1;
        self.hidden += usize::from(moving);
        self.cleared += usize::from(!moving && clean);
        self.bbox = [
            self.bbox[0].min(x),
            self.bbox[1].min(y),
            self.bbox[2].max(x),
            self.bbox[3].max(y),
        ];
    }
}

/// How a region's pixels let go.
#[derive(Clone, Copy)]
enum Release {
    /// They are candidates again at once.
    Free,
    /// They start their still time anew.
    Anew,
    /// Into the reference.
    Absorb,
}

impl SceneModel {
    /// Held pixels that have matched the reference, unchanged, for `still_s`
    /// let go (the spot is clean: the same wait as for a new thing to count as
    /// lying there, so someone who stops in front of a thing for a moment and
    /// happens to look like the clean picture does not take it away); a held
    /// pixel where something else has lain still for `still_s` takes its new
    /// value. Moving (occluded) held pixels keep theirs.
    pub(super) fn release_held(&mut self, t: f64) {
        let thr = self.config.diff_threshold as i16;
        for i in 0..self.held.len() {
            if self.held[i] < 0
                || self.moving[i] != 0
                || t - self.still_since[i] < self.config.still_s
            {
                continue;
            }
            if self.fg[i] == 0 {
                self.held[i] = -1;
                self.owner[i] = 0;
            } else if (self.grey[i] as i16 - self.held[i]).abs() > thr {
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

    /// Groups candidates and held pixels, promotes real candidates (to a new
    /// region, or to the region they belong to), absorbs ghosts and old
    /// regions, and lets go of regions that are gone.
    pub(super) fn regions(&mut self, t: f64, pts: Duration) -> Vec<StaticRegion> {
        let (w, h) = (self.w, self.h);
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

        let min_px = self.min_px();
        for k in 0..self.comps.ranges.len() {
            let range = self.comps.ranges[k].clone();
            let (mut held, mut cand, mut moving) = (0usize, 0usize, false);
            for &p in &self.comps.pixels[range.clone()] {
                let p = p as usize;
                held += usize::from(self.held[p] >= 0);
                cand += usize::from(self.cand[p] != 0);
                moving |= self.moving[p] != 0;
            }
            if cand == 0 || moving {
                continue;
            }
            // New objects are checked for being ghosts, and so is a large
            // addition to a region (a few pixels rejoining one are not: the
            // outline of a handful of pixels says nothing).
            if (held == 0 || cand >= min_px) && (self.is_ghost(k) || self.is_relit(k)) {
                for &p in &self.comps.pixels[range] {
                    let p = p as usize;
                    if self.cand[p] != 0 {
                        self.bg[p] = self.grey[p] as f32;
                    }
                }
            } else if held > 0 || cand >= min_px {
                self.promote(k, min_px, t, pts);
            }
        }
        self.report(t, min_px)
    }

    /// Smallest region reported, in work pixels.
    fn min_px(&self) -> usize {
        (self.config.min_area * self.held.len() as f32)
            .ceil()
            .max(1.0) as usize
    }

    /// A new mark for [`SceneModel::marks`]: no pixel has it yet.
    fn fresh_mark(&mut self) -> u32 {
        if self.marks.len() != self.held.len() {
            self.marks.clear();
            self.marks.resize(self.held.len(), 0);
            self.mark = 0;
        }
        self.mark = self.mark.wrapping_add(1);
        if self.mark == 0 {
            self.marks.fill(0);
            self.mark = 1;
        }
        self.mark
    }

    /// Promotes the candidates of component `k`, group by group (candidates
    /// up to three pixels apart, as in the components). A group joins the
    /// region it touches while that region is young (reported less than
    /// `still_s` ago: an object's parts come to rest one after another);
    /// afterwards only a group of a few pixels (fewer than `min_px`) rejoins
    /// it. A larger group is a new region with its own id and times, even if
    /// it touches an older one: an item dropped beside a parked bicycle is not
    /// the bicycle.
    fn promote(&mut self, k: usize, min_px: usize, t: f64, pts: Duration) {
        let (w, h) = (self.w, self.h);
        let mark = self.fresh_mark();
        let range = self.comps.ranges[k].clone();
        let mut group = std::mem::take(&mut self.stack);
        for idx in range {
            let start = self.comps.pixels[idx] as usize;
            if self.cand[start] == 0 || self.marks[start] == mark {
                continue;
            }
            // The group of `start`, and how many pixels of each region lie
            // that close to it.
            group.clear();
            group.push(start as u32);
            self.marks[start] = mark;
            let mut near: Vec<(u64, usize)> = Vec::new();
            let mut i = 0;
            while let Some(&p) = group.get(i) {
                i += 1;
                let (x, y) = (p as usize % w, p as usize / w);
                for ny in y.saturating_sub(3)..=(y + 3).min(h - 1) {
                    for nx in x.saturating_sub(3)..=(x + 3).min(w - 1) {
                        let q = ny * w + nx;
                        if self.cand[q] != 0 && self.marks[q] != mark {
                            self.marks[q] = mark;
                            group.push(q as u32);
                        }
                        let o = self.owner[q];
                        if o != 0 {
                            match near.iter_mut().find(|(id, _)| *id == o) {
                                Some((_, n)) => *n += 1,
                                None => near.push((o, 1)),
                            }
                        }
                    }
                }
            }
            let still = self.config.still_s;
            let largest = |young_only: bool| {
                near.iter()
                    .filter(|(id, _)| {
                        !young_only
                            || self
                                .tracked
                                .iter()
                                .any(|r| r.id == *id && t - r.since.as_secs_f64() < still)
                    })
                    .max_by_key(|&&(id, n)| (n, std::cmp::Reverse(id)))
                    .map(|&(id, _)| id)
            };
            let owner = match largest(true) {
                Some(id) => id,
                None if group.len() < min_px => match largest(false) {
                    Some(id) => id,
                    // A few pixels on their own: not (yet) a region.
                    None => continue,
                },
                None => self.new_region(&group, pts),
            };
            for &p in &group {
                let p = p as usize;
                self.held[p] = self.grey[p] as i16;
                self.owner[p] = owner;
            }
        }
        self.stack = group;
    }

    /// A new region of the candidates `pixels`: it came to rest when most of
    /// them did.
    fn new_region(&mut self, pixels: &[u32], pts: Duration) -> u64 {
        let mut rest: Vec<f64> = pixels
            .iter()
            .map(|&p| self.still_since[p as usize])
            .collect();
        let mid = rest.len() / 2;
        let appeared = *rest.select_nth_unstable_by(mid, f64::total_cmp).1;
        let id = self.next_id;
        self.next_id += 1;
        self.tracked.push(Tracked {
            id,
            since: pts,
            appeared: Duration::from_secs_f64(appeared.max(0.0)),
            peak: 0,
        });
        id
    }

    /// Each region's held pixels this frame: how many, how many are hidden
    /// or cleared, and their box. Regions too small to report, regions that are mostly
    /// back to the clean picture, and regions older than `absorb_s` are let go
    /// (the last into the reference); the others are reported.
    fn report(&mut self, t: f64, min_px: usize) -> Vec<StaticRegion> {
        let (w, h) = (self.w, self.h);
        let n = w * h;
        let mut stats: Vec<RegionPixels> =
            self.tracked.iter().map(|_| RegionPixels::new()).collect();
        let mut slot = 0;
        for p in 0..n {
            let o = self.owner[p];
            if o == 0 {
                continue;
            }
            if self.tracked.get(slot).is_none_or(|r| r.id != o) {
                match self.tracked.iter().position(|r| r.id == o) {
                    Some(i) => slot = i,
                    None => {
                        // Not a region any more (cannot happen): let go.
                        self.held[p] = -1;
                        self.owner[p] = 0;
                        continue;
                    }
                }
            }
            stats[slot].add(p % w, p / w, self.moving[p] != 0, self.fg[p] == 0);
        }
        let (sx, sy) = (self.src.0 as f32 / w as f32, self.src.1 as f32 / h as f32);
        let mut out = Vec::with_capacity(self.tracked.len());
        let mut keep = Vec::with_capacity(self.tracked.len());
        for (mut r, s) in std::mem::take(&mut self.tracked).into_iter().zip(stats) {
            let gone = if s.count < min_px {
                // What is left of a region too small to report (partly taken
                // away) lets go: as a candidate it is absorbed after
                // `absorb_s` unless it grows into a region again.
                Some(Release::Free)
            } else if 2 * s.count < r.peak {
                // Most of it matches the clean picture again: it was taken
                // away. What is left (a stain, a shadow) starts anew, so it is
                // never the old thing coming back.
                Some(Release::Anew)
            } else if t - r.since.as_secs_f64() >= self.config.absorb_s {
                Some(Release::Absorb)
            } else {
                None
            };
            if let Some(how) = gone {
                self.release(r.id, how, t);
                continue;
            }
            r.peak = r.peak.max(s.count);
            let [x0, y0, x1, y1] = s.bbox;
            out.push(StaticRegion {
                id: r.id,
                bbox: PxBox([
                    x0 as f32 * sx,
                    y0 as f32 * sy,
                    ((x1 + 1) as f32 * sx).min(self.src.0 as f32),
                    ((y1 + 1) as f32 * sy).min(self.src.1 as f32),
                ]),
                area: s.count as f32 / n as f32,
                since: r.since,
                appeared: r.appeared,
                hidden: s.hidden as f32 / s.count as f32,
                cleared: s.cleared as f32 / s.count as f32,
            });
            keep.push(r);
        }
        self.tracked = keep;
        out.sort_by_key(|r| r.id);
        out
    }

    /// Lets go of every pixel of region `id`.
    fn release(&mut self, id: u64, how: Release, t: f64) {
        for p in 0..self.owner.len() {
            if self.owner[p] != id {
                continue;
            }
            match how {
                Release::Free => {}
                Release::Anew => self.still_since[p] = t,
                Release::Absorb => self.bg[p] = self.held[p] as f32,
            }
            self.held[p] = -1;
            self.owner[p] = 0;
        }
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
        let mark = self.fresh_mark();
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
                    if self.marks[q] != mark {
                        self.marks[q] = mark;
                        e_frame += gradient(|i| self.grey[i] as f32, w, h, q);
                        e_ref += gradient(|i| self.bg[i], w, h, q);
                    }
                }
            }
            if edge && self.marks[p] != mark {
                self.marks[p] = mark;
                e_frame += gradient(|i| self.grey[i] as f32, w, h, p);
                e_ref += gradient(|i| self.bg[i], w, h, p);
            }
        }
        e_ref > e_frame
    }
}
