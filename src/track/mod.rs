//! Multi-object tracking: detections of successive frames → tracks with stable ids.
//!
//! A ByteTrack-style tracker. Pure and synchronous: no I/O, no clock; time is
//! the frame's stream time (`pts`), so the same detections always give the
//! same tracks, at any analysed frame rate.
//!
//! Per frame ([`Tracker::update`]):
//!
//! 1. every track's constant-velocity motion model (see `motion`) is advanced
//!    to the frame's `pts`; confirmed tracks unmatched for `max_lost` or
//!    longer are removed;
//! 2. detections scoring at least `high_score` are associated with all tracks
//!    (confirmed, lost and tentative) by IoU of the predicted box, only
//!    within the same class, IoU at least `match_iou`;
//! 3. detections in `[low_score, high_score)` are associated with the
//!    confirmed and lost tracks left over — a weak detection keeps a known
//!    object alive but never starts one;
//! 4. unmatched tentative tracks are dropped at once, unmatched confirmed
//!    tracks become [`TrackState::Lost`] (a lost track matched again keeps its
//!    id), tentative tracks matched `confirm_hits` frames in a row are
//!    confirmed and get the next id;
//! 5. unmatched high detections scoring at least `new_track_score` start
//!    tentative tracks.
//!
//! Assignment is optimal (largest total IoU): candidate pairs are split into
//! connected components and each component larger than one pair is solved
//! with the Hungarian algorithm (see `assign`). Scratch buffers are kept in
//! the tracker and reused, so a steady scene allocates nothing per frame.
//!
//! Rules and events only see confirmed ids ([`Tracker::confirmed`]): a
//! detector's one-frame false positive never becomes an id.

mod assign;
mod motion;
#[cfg(test)]
mod tests;

use std::time::Duration;

use crate::geom::{Detection, PxBox};

use assign::Assigner;
use motion::Motion;

/// Tracker thresholds; [`Default`] gives the values below.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrackerConfig {
    /// Detections at or above this score are associated first (0.5).
    pub high_score: f32,
    /// Detections in `[low_score, high_score)` only extend existing confirmed
    /// tracks (second association); lower ones are ignored (0.1).
    pub low_score: f32,
    /// Unmatched high detections at or above this score start a tentative
    /// track (0.6).
    pub new_track_score: f32,
    /// Minimum IoU between a track's predicted box and a detection to
    /// associate them (0.2).
    pub match_iou: f32,
    /// Consecutive matched frames before a tentative track is confirmed and
    /// gets an id (3).
    pub confirm_hits: u32,
    /// A confirmed track unmatched for this long is removed (2 s).
    pub max_lost: Duration,
    /// A track is "still" while its box centre stays within this × box
    /// height of where the still period began (0.3).
    pub still_radius: f32,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        Self {
            high_score: 0.4,
            low_score: 0.1,
            new_track_score: 0.45,
            match_iou: 0.2,
            confirm_hits: 3,
            max_lost: Duration::from_secs(2),
            still_radius: 0.3,
        }
    }
}

/// Where a track is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackState {
    /// Matched on fewer than `confirm_hits` consecutive frames; has no id and
    /// is never shown outside the tracker.
    Tentative,
    /// Matched on the latest frame.
    Confirmed,
    /// Confirmed before, unmatched on the latest frame (occluded, missed by
    /// the detector, or gone); removed after `max_lost`.
    Lost,
}

/// One tracked object.
#[derive(Debug, Clone)]
pub struct Track {
    /// 0 while tentative; confirmed tracks get 1, 2, 3… (per tracker, never
    /// reused, not even after a reset).
    pub id: u64,
    pub class_id: usize,
    /// Score of the last matched detection.
    pub score: f32,
    /// `[x0, y0, x1, y1]` px: the last matched detection; while
    /// [`Lost`](TrackState::Lost), the motion model's prediction.
    pub bbox: PxBox,
    /// Velocity of the box centre in px/s, from the motion model.
    pub velocity: [f32; 2],
    pub state: TrackState,
    /// `pts` of the first detection of the object.
    pub first_seen: Duration,
    /// `pts` of the last matched frame.
    pub last_seen: Duration,
    /// Number of matched frames.
    pub hits: u32,
    /// `pts` since which the box centre stayed within `still_radius` × box
    /// height of where it was then.
    pub still_since: Duration,
}

impl Track {
    /// Speed of the box centre, px/s.
    pub fn speed(&self) -> f32 {
        self.velocity[0].hypot(self.velocity[1])
    }

    /// How long the object has been still at stream time `now`.
    pub fn still_for(&self, now: Duration) -> Duration {
        now.saturating_sub(self.still_since)
    }

    /// Confirmed and matched on the latest update (an unmatched confirmed
    /// track is [`Lost`](TrackState::Lost)).
    pub fn visible(&self) -> bool {
        self.state == TrackState::Confirmed
    }

    /// Centre of the box, px.
    pub fn centre(&self) -> [f32; 2] {
        centre(self.bbox)
    }
}

/// A track with the tracker's private state.
#[derive(Debug, Clone)]
struct Slot {
    track: Track,
    motion: Motion,
    /// Box centre when the current still period began.
    still_anchor: [f32; 2],
}

impl Slot {
    fn new(det: &Detection, pts: Duration) -> Self {
        let motion = Motion::new(det.bbox);
        Self {
            track: Track {
                id: 0,
                class_id: det.class_id,
                score: det.score,
                bbox: det.bbox,
                velocity: motion.velocity(),
                state: TrackState::Tentative,
                first_seen: pts,
                last_seen: pts,
                hits: 1,
                still_since: pts,
            },
            motion,
            still_anchor: centre(det.bbox),
        }
    }

    fn matched(&mut self, det: &Detection, pts: Duration, still_radius: f32) {
        self.motion.update(det.bbox);
        let t = &mut self.track;
        t.score = det.score;
        t.bbox = det.bbox;
        t.velocity = self.motion.velocity();
        t.last_seen = pts;
        t.hits = t.hits.saturating_add(1);
        if t.state == TrackState::Lost {
            t.state = TrackState::Confirmed;
        }
        let c = centre(det.bbox);
        let radius = still_radius * (det.bbox[3] - det.bbox[1]);
        let (dx, dy) = (c[0] - self.still_anchor[0], c[1] - self.still_anchor[1]);
        if dx * dx + dy * dy > radius * radius {
            self.still_anchor = c;
            t.still_since = pts;
        }
    }

    fn unmatched(&mut self) {
        self.motion.freeze_size();
        let t = &mut self.track;
        t.state = TrackState::Lost;
        t.bbox = self.motion.bbox();
        t.velocity = self.motion.velocity();
    }
}

/// The tracker of one camera.
#[derive(Debug)]
pub struct Tracker {
    config: TrackerConfig,
    /// Confirmed and lost tracks, ascending id.
    tracks: Vec<Slot>,
    /// Tentative tracks, oldest first.
    tentative: Vec<Slot>,
    next_id: u64,
    last_pts: Option<Duration>,
    // Scratch, reused between frames.
    /// Predicted boxes: `tracks` then `tentative`.
    predicted: Vec<PxBox>,
    /// Whether each track (same indexing) was matched this frame.
    track_matched: Vec<bool>,
    high: Vec<usize>,
    low: Vec<usize>,
    det_used: Vec<bool>,
    rows: Vec<usize>,
    pairs: Vec<(usize, usize)>,
    assigner: Assigner,
}

impl Tracker {
    /// A tracker with no tracks; the first confirmed track gets id 1.
    pub fn new(config: TrackerConfig) -> Self {
        Self {
            config,
            tracks: Vec::new(),
            tentative: Vec::new(),
            next_id: 1,
            last_pts: None,
            predicted: Vec::new(),
            track_matched: Vec::new(),
            high: Vec::new(),
            low: Vec::new(),
            det_used: Vec::new(),
            rows: Vec::new(),
            pairs: Vec::new(),
            assigner: Assigner::default(),
        }
    }

    /// The thresholds this tracker runs with.
    pub fn config(&self) -> &TrackerConfig {
        &self.config
    }

    /// One analysed frame. `pts` must not go backwards (if it does, treat it as a stream restart: reset).
    ///
    /// Detections with a non-finite score or box, or an empty box, are ignored.
    pub fn update(&mut self, pts: Duration, detections: &[Detection]) {
        let dt = match self.last_pts {
            Some(last) if pts < last => {
                self.reset();
                Duration::ZERO
            }
            Some(last) => pts - last,
            None => Duration::ZERO,
        };
        self.last_pts = Some(pts);
        let cfg = self.config;

        // 1. Expire, predict.
        let max_lost = cfg.max_lost;
        self.tracks
            .retain(|s| pts.saturating_sub(s.track.last_seen) < max_lost);
        self.tentative
            .retain(|s| pts.saturating_sub(s.track.last_seen) < max_lost);
        let confirmed = self.tracks.len();
        let all = confirmed + self.tentative.len();
        self.predicted.clear();
        for s in self.tracks.iter_mut().chain(self.tentative.iter_mut()) {
            s.motion.predict(dt);
            self.predicted.push(s.motion.bbox());
        }
        self.track_matched.clear();
        self.track_matched.resize(all, false);

        // Split detections by score.
        self.high.clear();
        self.low.clear();
        self.det_used.clear();
        self.det_used.resize(detections.len(), false);
        for (i, d) in detections.iter().enumerate() {
            let b = d.bbox;
            let valid = d.score.is_finite()
                && b.0.iter().all(|v| v.is_finite())
                && b[2] > b[0]
                && b[3] > b[1];
            if !valid || d.score < cfg.low_score {
                continue;
            }
            if d.score >= cfg.high_score {
                self.high.push(i);
            } else {
                self.low.push(i);
            }
        }

        // 2. High detections with every track.
        self.rows.clear();
        self.rows.extend(0..all);
        self.associate(detections, Pass::High, pts);

        // 3. Low detections with the confirmed and lost tracks left over.
        self.rows.clear();
        self.rows
            .extend((0..confirmed).filter(|&r| !self.track_matched[r]));
        self.associate(detections, Pass::Low, pts);

        // 4. Lose, drop, confirm.
        for (s, &m) in self.tracks.iter_mut().zip(&self.track_matched) {
            if !m {
                s.unmatched();
            }
        }
        let matched = &self.track_matched[confirmed..];
        let mut k = 0;
        let tracks = &mut self.tracks;
        let next_id = &mut self.next_id;
        let confirm_hits = cfg.confirm_hits;
        self.tentative.retain_mut(|s| {
            let keep = matched[k];
            k += 1;
            if keep && s.track.hits >= confirm_hits {
                promote(s, next_id);
                tracks.push(s.clone());
                return false;
            }
            keep
        });

        // 5. New tentative tracks.
        for &i in &self.high {
            let d = &detections[i];
            if self.det_used[i] || d.score < cfg.new_track_score {
                continue;
            }
            let mut s = Slot::new(d, pts);
            if s.track.hits >= cfg.confirm_hits {
                promote(&mut s, &mut self.next_id);
                self.tracks.push(s);
            } else {
                self.tentative.push(s);
            }
        }
    }

    /// A frame the detector did not see, because the motion gate found that
    /// nothing moved since the last analysed frame: the objects are where
    /// they were. Time moves on, but nothing is matched: visible confirmed
    /// tracks stay visible where they are, lost tracks keep ageing towards
    /// removal, and tentative tracks gain no hit — a one-frame false
    /// detection is never confirmed by frames the detector did not look at.
    pub fn hold(&mut self, pts: Duration) {
        match self.last_pts {
            Some(last) if pts < last => {
                self.reset();
                return;
            }
            _ => {}
        }
        self.last_pts = Some(pts);
        let max_lost = self.config.max_lost;
        self.tracks.retain_mut(|s| {
            if s.track.state == TrackState::Confirmed {
                s.track.last_seen = pts;
            }
            pts.saturating_sub(s.track.last_seen) < max_lost
        });
        self.tentative
            .retain(|s| pts.saturating_sub(s.track.last_seen) < max_lost);
    }

    /// Matches `self.rows` (track indices) with the detections of `pass`.
    fn associate(&mut self, detections: &[Detection], pass: Pass, pts: Duration) {
        let cols = match pass {
            Pass::High => &self.high,
            Pass::Low => &self.low,
        };
        if self.rows.is_empty() || cols.is_empty() {
            return;
        }
        let confirmed = self.tracks.len();
        let min_iou = self.config.match_iou;
        self.assigner.begin(self.rows.len(), cols.len());
        for (r, &t) in self.rows.iter().enumerate() {
            let class_id = if t < confirmed {
                self.tracks[t].track.class_id
            } else {
                self.tentative[t - confirmed].track.class_id
            };
            let p = self.predicted[t];
            for (c, &i) in cols.iter().enumerate() {
                let d = &detections[i];
                if d.class_id != class_id {
                    continue;
                }
                let overlap = p.iou(&d.bbox);
                if overlap >= min_iou && overlap > 0.0 {
                    self.assigner.add(r, c, overlap);
                }
            }
        }
        self.pairs.clear();
        self.assigner.solve(&mut self.pairs);
        let radius = self.config.still_radius;
        for &(r, c) in &self.pairs {
            let t = self.rows[r];
            let i = cols[c];
            let slot = if t < confirmed {
                &mut self.tracks[t]
            } else {
                &mut self.tentative[t - confirmed]
            };
            slot.matched(&detections[i], pts, radius);
            self.track_matched[t] = true;
            self.det_used[i] = true;
        }
    }

    /// Whether some object is still undecided: seen, but not yet on `confirm_hits`
    /// frames in a row. Only another look by the detector can settle it.
    pub fn has_tentative(&self) -> bool {
        !self.tentative.is_empty()
    }

    /// Confirmed and Lost tracks only — never tentative ones. Rules and events only ever see these ids.
    ///
    /// In ascending id order.
    pub fn confirmed(&self) -> impl Iterator<Item = &Track> {
        self.tracks.iter().map(|s| &s.track)
    }

    /// Forgets every track (a stream restart). Ids are not reused: the next
    /// confirmed track continues the numbering.
    pub fn reset(&mut self) {
        self.tracks.clear();
        self.tentative.clear();
        self.last_pts = None;
    }
}

#[derive(Debug, Clone, Copy)]
enum Pass {
    High,
    Low,
}

fn promote(s: &mut Slot, next_id: &mut u64) {
    s.track.id = *next_id;
    *next_id += 1;
    s.track.state = TrackState::Confirmed;
}

fn centre(b: PxBox) -> [f32; 2] {
    [(b[0] + b[2]) * 0.5, (b[1] + b[3]) * 0.5]
}
