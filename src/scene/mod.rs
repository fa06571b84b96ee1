//! The static-change scene model: a slowly updated *clean reference* of a
//! camera's view, the new regions that differ from it and stay still, and a
//! motion measure.
//!
//! Litter that lies still is what motion-based systems miss. This model finds
//! it without a detector: whatever appears and then stops changing is reported
//! as a [`StaticRegion`] with a stable id until it goes away again (the pixels
//! match the reference: "the spot is clean") or it has been there for
//! [`SceneConfig::absorb_s`] (it becomes part of the reference). The motion
//! measure lets the daemon skip detection on frames where nothing moves.
//!
//! Pure and synchronous: no I/O, no clock. Time is the frame's `pts`, so a
//! recorded sequence replays deterministically.
//!
//! How one frame is processed, on a small grey work image
//! ([`SceneConfig::work_width`] wide, box-filtered from the RGB frame by
//! [`SceneModel::update`], or, with `[camera.scene] from_luma`, handed in by
//! [`SceneModel::update_grey`] as the decoder made it from the frame's luma
//! plane, with no RGB frame at all):
//!
//! 1. **Exposure.** The median ratio frame / reference estimates a global
//!    gain (auto-exposure, a cloud); beyond ±3 % the reference is scaled by it,
//!    so exposure changes neither create regions nor lose the ones reported.
//! 2. **Motion.** Pixels that changed by more than `diff_threshold` since the
//!    previous frame; their fraction is [`SceneUpdate::motion`]. Dilated by one
//!    pixel, they reset each pixel's "still since" time.
//! 3. **Foreground.** Pixels that differ from the reference by more than
//!    `diff_threshold`. Motion spreads from moving pixels over the flat,
//!    foreground inside of their object: a flat object's inside does not change
//!    from frame to frame while it moves (only its edges do), yet it is not
//!    still. If more than `max_area` of the frame is foreground, nothing is
//!    reported; if that much is foreground and not moving, the view changed as
//!    a whole (camera moved, lights switched) and the reference is re-learnt.
//! 4. **Reference update** (selective): only where a pixel is neither moving
//!    nor foreground nor part of a region, with a slow rate that follows
//!    daylight drift. During warm-up it is fast, and only a pixel that is
//!    foreground after something moved there keeps its reference: a thing put
//!    down in the first seconds is reported once warm-up is over, while what
//!    the first frame showed and has since left is a ghost (below).
//! 5. **Static pixels.** Foreground and still for `still_s` → a candidate.
//!    Candidates are grouped (8-connected after a 3×3 dilation). A group with
//!    moving pixels in or next to it waits. A new group is then checked for
//!    being a *ghost* (below) or *light*: a shadow or relit patch keeps the
//!    ground's texture (its grey levels correlate with the reference's) where
//!    an object hides it. Both go into the reference at once. A real group of
//!    at least `min_area` becomes *held*: its pixels keep their region while
//!    something passes or stops in front of them and let go only when they
//!    have matched the reference again for `still_s` (or something else has
//!    lain there that long).
//! 6. **Regions.** Each held pixel belongs to one region, so ids persist. A
//!    promoted group joins the region it touches while that region is young
//!    (reported less than `still_s` ago: an object's parts come to rest one
//!    after another), or when it is only a few pixels (fewer than the
//!    smallest region) rejoining it; anything larger is a new region even if
//!    it touches an old one: a cup put down beside a parked bicycle is not the
//!    bicycle. A region reports when it *appeared* (the median time its
//!    pixels came to rest), how much of it is *hidden* (something moving
//!    covers it) and how much is *cleared* (shows the clean picture again:
//!    a removal is seen as such the moment it happens). It is let go when it is too small to report, when less than
//!    half of its largest self is left (the rest matches the clean picture
//!    again: it was taken away, and what is left starts its still time anew,
//!    so a removal never looks like something put down), or after `absorb_s`
//!    (into the reference).
//!
//! **Ghosts.** When something that was part of the reference leaves (a car
//! parked during warm-up drives off), the uncovered ground differs from the
//! reference and is still, exactly like a dropped object. The difference is
//! along the group's outline: a real object adds an edge to the current frame
//! there that the reference lacks, while a ghost's outline is an edge of the
//! reference that the current frame lacks. A group whose outline has more
//! gradient in the reference than in the frame is a ghost; it is copied into
//! the reference at once and never reported.

pub mod area;
mod grey;
mod mask;
mod regions;

use std::time::Duration;

use crate::geom::PxBox;

pub use area::MotionArea;
use grey::GreyScaler;
pub use grey::{grey_of_rgb, luma, work_size};
use mask::{Components, dilate3};

/// Tuning of the scene model; the defaults suit 5–10 fps street cameras.
#[derive(Debug, Clone, PartialEq)]
pub struct SceneConfig {
    /// Analysis width in pixels (height keeps the aspect ratio; never wider than the frame).
    pub work_width: u32,
    /// Grey-level difference (after area averaging) that counts as changed.
    pub diff_threshold: u8,
    /// Seconds a changed pixel must be unchanged frame-to-frame to be static.
    pub still_s: f64,
    /// Smallest region reported, as a fraction of the frame area.
    pub min_area: f32,
    /// A change larger than this fraction of the frame is global (lighting,
    /// camera moved): the reference is re-learnt and nothing is reported.
    pub max_area: f32,
    /// Seconds after which a static region is absorbed into the reference.
    pub absorb_s: f64,
    /// Seconds of fast learning after the first frame (and after a re-learn);
    /// no region is reported meanwhile.
    pub warmup_s: f64,
}

impl Default for SceneConfig {
    fn default() -> Self {
        Self {
            work_width: 160,
            diff_threshold: 25,
            still_s: 2.0,
            min_area: 0.0005,
            max_area: 0.5,
            absorb_s: 1800.0,
            warmup_s: 3.0,
        }
    }
}

/// A new, still region of the view that differs from the clean reference.
#[derive(Debug, Clone, PartialEq)]
pub struct StaticRegion {
    /// Stable while the region persists; never reused by the same model.
    pub id: u64,
    pub bbox: PxBox,
    /// Changed pixels / frame pixels.
    pub area: f32,
    /// `pts` of the frame where the region was first reported.
    pub since: Duration,
    /// When its pixels came to rest (most of them: the median): the moment
    /// the thing was put down, `still_s` or more before `since`.
    pub appeared: Duration,
    /// Share of its pixels that something moving covers in this frame (a
    /// passer-by in front of it, someone taking it away): kept, not seen.
    pub hidden: f32,
    /// Share of its pixels that show the clean picture again: it is being
    /// taken away (its pixels let go once they have for `still_s`; until
    /// then it may be someone who looks like the ground standing in front).
    pub cleared: f32,
}

/// What the scene model says about one frame.
#[derive(Debug, Clone, Default)]
pub struct SceneUpdate {
    /// Fraction of work pixels that changed since the previous frame, `0..=1`
    /// (0 for the first frame after a reset).
    pub motion: f32,
    /// The static regions present in this frame.
    pub regions: Vec<StaticRegion>,
}

/// Time constant of the reference during warm-up, as a fraction of `warmup_s`.
const WARMUP_TAU_FRACTION: f64 = 0.2;
/// Time constant of the reference after warm-up (seconds): slow enough that a
/// dropped object is never learnt, fast enough to follow daylight.
const DRIFT_TAU_S: f64 = 30.0;
/// Global gain changes smaller than this are left to the selective update.
const GAIN_DEADBAND: f32 = 0.03;
/// Reference pixels darker than this do not vote on the gain (their ratio is noise).
const GAIN_MIN_LEVEL: f32 = 20.0;
/// Gain histogram: `GAIN_BINS` bins of width `1 / GAIN_SCALE` from `GAIN_LOW`.
const GAIN_BINS: usize = 256;
const GAIN_LOW: f32 = 0.5;
const GAIN_SCALE: f32 = 128.0;

/// A region the model keeps.
#[derive(Debug, Clone)]
struct Tracked {
    id: u64,
    /// When it was first reported.
    since: Duration,
    /// When its pixels came to rest.
    appeared: Duration,
    /// The most held pixels it has had.
    peak: usize,
}

/// Per-camera scene model. Feed it every analysed frame with [`SceneModel::update`].
pub struct SceneModel {
    config: SceneConfig,
    scaler: GreyScaler,
    /// Source frame size the state belongs to (`(0, 0)` before the first frame).
    src: (u32, u32),
    /// Work image size.
    w: usize,
    h: usize,
    /// `pts` (seconds) of the previous frame; `None` right after a reset.
    last_t: Option<f64>,
    /// When the current learning phase (first frame or re-learn) started.
    learn_from: f64,
    grey: Vec<u8>,
    prev: Vec<u8>,
    /// The clean reference.
    bg: Vec<f32>,
    /// Start of each pixel's current run of frames without change.
    still_since: Vec<f64>,
    /// Grey level of a held (region) pixel, or -1.
    held: Vec<i16>,
    /// Id of the region a held pixel belongs to, or 0.
    owner: Vec<u64>,
    moving: Vec<u8>,
    fg: Vec<u8>,
    cand: Vec<u8>,
    scratch: Vec<u8>,
    scratch2: Vec<u8>,
    scratch3: Vec<u8>,
    /// Per-pixel marks of one pass over a component (`== mark`: visited),
    /// so no pass has to clear them.
    marks: Vec<u32>,
    mark: u32,
    stack: Vec<u32>,
    comps: Components,
    tracked: Vec<Tracked>,
    next_id: u64,
    /// Where motion counts ([`SceneModel::set_motion_area`]); empty: everywhere.
    area: area::MotionArea,
    /// `area` on the work image (empty when `area` is, or before the first frame).
    area_mask: Vec<u8>,
}

impl SceneModel {
    pub fn new(config: SceneConfig) -> Self {
        Self {
            config,
            scaler: GreyScaler::new(),
            src: (0, 0),
            w: 0,
            h: 0,
            last_t: None,
            learn_from: 0.0,
            grey: Vec::new(),
            prev: Vec::new(),
            bg: Vec::new(),
            still_since: Vec::new(),
            held: Vec::new(),
            owner: Vec::new(),
            moving: Vec::new(),
            fg: Vec::new(),
            cand: Vec::new(),
            scratch: Vec::new(),
            scratch2: Vec::new(),
            scratch3: Vec::new(),
            marks: Vec::new(),
            mark: 0,
            stack: Vec::new(),
            comps: Components::default(),
            tracked: Vec::new(),
            next_id: 1,
            area: area::MotionArea::default(),
            area_mask: Vec::new(),
        }
    }

    /// Counts motion ([`SceneUpdate::motion`]) only inside `area` (the zones), still
    /// as a fraction of the whole picture; an empty area counts it everywhere.
    pub fn set_motion_area(&mut self, area: area::MotionArea) {
        self.area = area;
        self.area_mask = self.area_mask_for(self.w, self.h);
    }

    fn area_mask_for(&self, w: usize, h: usize) -> Vec<u8> {
        if self.area.is_empty() || w == 0 {
            Vec::new()
        } else {
            self.area.mask(w, h)
        }
    }

    /// The configuration the model runs with.
    pub fn config(&self) -> &SceneConfig {
        &self.config
    }

    /// Forgets the reference and all regions; the next frame starts a new warm-up.
    /// Region ids are not reused afterwards.
    pub fn reset(&mut self) {
        self.last_t = None;
        self.tracked.clear();
    }

    /// Analyses one frame. `rgb` is packed RGB8, `width * height * 3` bytes (the
    /// daemon's `Frame::data`). A size change, or a `pts` earlier than the previous
    /// frame's, resets the model; a buffer of the wrong length is ignored (empty update).
    pub fn update(&mut self, pts: Duration, width: u32, height: u32, rgb: &[u8]) -> SceneUpdate {
        let expected = width as usize * height as usize * 3;
        if width == 0 || height == 0 || rgb.len() != expected {
            return SceneUpdate::default();
        }
        self.resize(width, height);
        let size = (self.w as u32, self.h as u32);
        if self
            .scaler
            .run(width, height, rgb, size, &mut self.grey)
            .is_err()
        {
            return SceneUpdate::default();
        }
        self.analyse(pts)
    }

    /// [`SceneModel::update`] on the frame's grey work image, already made (by the
    /// decoder, from its luma plane): `grey` is `work_w × work_h` bytes, the size
    /// [`work_size`] gives for a `width × height` frame and this model's
    /// `work_width`. A work image of another size is ignored (empty update).
    pub fn update_grey(
        &mut self,
        pts: Duration,
        (width, height): (u32, u32),
        (work_w, work_h): (u32, u32),
        grey: &[u8],
    ) -> SceneUpdate {
        if width == 0 || height == 0 {
            return SceneUpdate::default();
        }
        let want = work_size(self.config.work_width, width, height);
        if (work_w, work_h) != want || grey.len() != (work_w * work_h) as usize {
            return SceneUpdate::default();
        }
        self.resize(width, height);
        self.grey.clear();
        self.grey.extend_from_slice(grey);
        self.analyse(pts)
    }

    /// A new source size starts over with a work image of its own size.
    fn resize(&mut self, width: u32, height: u32) {
        if (width, height) != self.src {
            self.reset();
            self.src = (width, height);
            let (w, h) = work_size(self.config.work_width, width, height);
            (self.w, self.h) = (w as usize, h as usize);
            self.area_mask = self.area_mask_for(self.w, self.h);
        }
    }

    /// The model's work on the grey image in `self.grey`.
    fn analyse(&mut self, pts: Duration) -> SceneUpdate {
        let t = pts.as_secs_f64();
        if self.last_t.is_some_and(|last| t < last) {
            self.reset();
        }
        let Some(last_t) = self.last_t else {
            self.start(t);
            return SceneUpdate::default();
        };
        self.last_t = Some(t);
        let dt = t - last_t;

        self.compensate_exposure();
        let motion = self.find_motion(t);
        self.find_foreground();
        self.spread_motion(t);
        let warm = t - self.learn_from < self.config.warmup_s;
        let limit = self.config.max_area * self.grey.len() as f32;
        if !warm && self.fg.iter().filter(|&&f| f != 0).count() as f32 > limit {
            // A change too big to be an object: nothing is reported. Once it is
            // still, it is the new view.
            let still_fg = (self.fg.iter().zip(&self.moving))
                .filter(|&(&f, &m)| f != 0 && m == 0)
                .count();
            if still_fg as f32 > limit {
                self.relearn(t);
            } else {
                std::mem::swap(&mut self.prev, &mut self.grey);
            }
            return SceneUpdate {
                motion,
                regions: Vec::new(),
            };
        }
        self.learn(dt, warm);
        let regions = if warm {
            Vec::new()
        } else {
            self.release_held(t);
            self.find_candidates(t);
            self.regions(t, pts)
        };
        std::mem::swap(&mut self.prev, &mut self.grey);
        SceneUpdate { motion, regions }
    }

    /// First frame (after a reset): it is the reference; warm-up starts.
    fn start(&mut self, t: f64) {
        let n = self.grey.len();
        self.prev.clone_from(&self.grey);
        self.bg.clear();
        self.bg.extend(self.grey.iter().map(|&g| g as f32));
        self.still_since.clear();
        self.still_since.resize(n, t);
        self.held.clear();
        self.held.resize(n, -1);
        self.owner.clear();
        self.owner.resize(n, 0);
        self.tracked.clear();
        self.learn_from = t;
        self.last_t = Some(t);
    }

    /// The whole view changed: the current frame becomes the reference and a
    /// new warm-up starts; all regions are dropped.
    fn relearn(&mut self, t: f64) {
        for (b, &g) in self.bg.iter_mut().zip(&self.grey) {
            *b = g as f32;
        }
        self.still_since.fill(t);
        self.held.fill(-1);
        self.owner.fill(0);
        self.tracked.clear();
        self.learn_from = t;
        std::mem::swap(&mut self.prev, &mut self.grey);
    }

    /// Scales the reference by the global gain between it and the frame when
    /// that gain is outside the dead band. The gain is the median of the per-pixel
    /// ratios, so anything covering less than half the view does not move it.
    fn compensate_exposure(&mut self) {
        let mut hist = [0u32; GAIN_BINS];
        let mut votes = 0u32;
        for ((&g, &b), &held) in self.grey.iter().zip(&self.bg).zip(&self.held) {
            if b < GAIN_MIN_LEVEL || held >= 0 {
                continue;
            }
            let bin = ((g as f32 / b - GAIN_LOW) * GAIN_SCALE).clamp(0.0, (GAIN_BINS - 1) as f32);
            hist[bin as usize] += 1;
            votes += 1;
        }
        if votes < (self.grey.len() / 10) as u32 {
            return;
        }
        let half = votes.div_ceil(2);
        let mut acc = 0;
        let Some(median) = hist.iter().position(|&c| {
            acc += c;
            acc >= half
        }) else {
            return;
        };
        let gain = GAIN_LOW + (median as f32 + 0.5) / GAIN_SCALE;
        if (gain - 1.0).abs() > GAIN_DEADBAND {
            for b in &mut self.bg {
                *b = (*b * gain).min(255.0);
            }
        }
    }

    /// Marks moving pixels (changed since the previous frame, dilated), restarts
    /// their still time, and returns the fraction that changed.
    fn find_motion(&mut self, t: f64) -> f32 {
        let thr = self.config.diff_threshold;
        self.scratch.clear();
        self.scratch.extend(
            self.grey
                .iter()
                .zip(&self.prev)
                .map(|(&a, &b)| u8::from(a.abs_diff(b) > thr)),
        );
        let changed = if self.area_mask.is_empty() {
            self.scratch.iter().filter(|&&m| m != 0).count()
        } else {
            (self.scratch.iter().zip(&self.area_mask))
                .filter(|&(&m, &a)| m & a != 0)
                .count()
        };
        dilate3(
            &self.scratch,
            self.w,
            self.h,
            &mut self.scratch2,
            &mut self.moving,
        );
        for (s, &m) in self.still_since.iter_mut().zip(&self.moving) {
            if m != 0 {
                *s = t;
            }
        }
        changed as f32 / self.grey.len() as f32
    }

    /// Marks foreground pixels (different from the reference).
    fn find_foreground(&mut self) {
        let thr = self.config.diff_threshold as f32;
        self.fg.clear();
        self.fg.extend(
            self.grey
                .iter()
                .zip(&self.bg)
                .map(|(&g, &b)| u8::from((g as f32 - b).abs() > thr)),
        );
    }

    /// Extends motion over the flat inside of moving objects: from each moving
    /// pixel into 4-neighbours that are foreground and within a few grey levels
    /// of it. The inside of a flat object does not change from frame to frame
    /// while it moves (only its edges do); it moves with its edges, and its
    /// pixels are not still. Textured objects change inside anyway, and an edge
    /// stops the spread, so a pedestrian passing a dropped object does not reach it.
    fn spread_motion(&mut self, t: f64) {
        let (w, h) = (self.w, self.h);
        let step = (self.config.diff_threshold / 4) as i16;
        let mut stack = std::mem::take(&mut self.stack);
        stack.clear();
        stack.extend((0..self.moving.len() as u32).filter(|&i| self.moving[i as usize] != 0));
        while let Some(p) = stack.pop() {
            let p = p as usize;
            let (x, y) = (p % w, p / w);
            let v = self.grey[p] as i16;
            for (ok, q) in [
                (x > 0, p.wrapping_sub(1)),
                (x + 1 < w, p + 1),
                (y > 0, p.wrapping_sub(w)),
                (y + 1 < h, p + w),
            ] {
                if ok
                    && self.moving[q] == 0
                    && self.fg[q] != 0
                    && (self.grey[q] as i16 - v).abs() <= step
                {
                    self.moving[q] = 1;
                    self.still_since[q] = t;
                    stack.push(q as u32);
                }
            }
        }
        self.stack = stack;
    }

    /// Selective running average: pixels that move, differ or are held keep
    /// their reference. During warm-up the rest is learnt fast, and so are
    /// pixels that differ but have not changed since the warm-up began (the
    /// first frame was noisy there, or the light drifted); a pixel that differs
    /// after something moved there keeps its reference, since something may
    /// have been put down: once warm-up is over, the ghost test tells that
    /// from something that was there in the first frame and has left.
    fn learn(&mut self, dt: f64, warm: bool) {
        let tau = if warm {
            self.config.warmup_s * WARMUP_TAU_FRACTION
        } else {
            DRIFT_TAU_S
        };
        let alpha = if tau > 0.0 {
            (1.0 - (-dt.max(0.0) / tau).exp()) as f32
        } else {
            1.0
        };
        for i in 0..self.bg.len() {
            let keep = if warm {
                self.fg[i] != 0 && self.still_since[i] > self.learn_from
            } else {
                self.fg[i] != 0 || self.held[i] >= 0
            };
            if self.moving[i] != 0 || keep {
                continue;
            }
            self.bg[i] += alpha * (self.grey[i] as f32 - self.bg[i]);
        }
    }
}

#[cfg(test)]
mod tests;
