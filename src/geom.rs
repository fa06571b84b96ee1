//! Boxes, in the two coordinate spaces the pipeline uses, and the detection.
//!
//! A box is `[x0, y0, x1, y1]`, top-left and bottom-right corners. Inside the
//! node every box is a [`PxBox`], in pixels of the source frame: the detector
//! maps its output back to them, and the tracker, the scene model and the
//! rules work in them. A box that leaves the node (an event's objects, the
//! evidence drawing) is a [`FracBox`], as fractions of the frame's width and
//! height, so a consumer needs no frame size. The two are different types so
//! that one can never be taken for the other; [`PxBox::to_frac`] and
//! [`FracBox::to_px`] convert.
//!
//! A leaf module: it imports nothing of the crate.

use std::ops::{Index, IndexMut};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A box in source-frame pixels.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PxBox(pub [f32; 4]);

/// A box as fractions (0..1) of the frame's width and height.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(transparent)]
#[schemars(inline)]
pub struct FracBox(pub [f32; 4]);

/// One detected object: a class, a score and where it is, in source pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub class_id: usize,
    pub score: f32,
    pub bbox: PxBox,
}

impl Detection {
    pub fn area(&self) -> f32 {
        self.bbox.area()
    }
}

impl Index<usize> for PxBox {
    type Output = f32;
    fn index(&self, i: usize) -> &f32 {
        &self.0[i]
    }
}

impl IndexMut<usize> for PxBox {
    fn index_mut(&mut self, i: usize) -> &mut f32 {
        &mut self.0[i]
    }
}

impl Index<usize> for FracBox {
    type Output = f32;
    fn index(&self, i: usize) -> &f32 {
        &self.0[i]
    }
}

impl From<[f32; 4]> for PxBox {
    fn from(b: [f32; 4]) -> Self {
        PxBox(b)
    }
}

impl PxBox {
    pub const fn new(x0: f32, y0: f32, x1: f32, y1: f32) -> Self {
        PxBox([x0, y0, x1, y1])
    }

    pub fn width(&self) -> f32 {
        (self.0[2] - self.0[0]).max(0.0)
    }

    pub fn height(&self) -> f32 {
        (self.0[3] - self.0[1]).max(0.0)
    }

    /// Area (0 when empty or inverted).
    pub fn area(&self) -> f32 {
        self.width() * self.height()
    }

    /// Area where the two boxes overlap.
    pub fn intersection(&self, other: &PxBox) -> f32 {
        let (a, b) = (&self.0, &other.0);
        let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
        let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
        iw * ih
    }

    /// Intersection over union.
    pub fn iou(&self, other: &PxBox) -> f32 {
        let inter = self.intersection(other);
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// The fraction of this box that `other` covers.
    pub fn covered_by(&self, other: &PxBox) -> f32 {
        let a = self.area();
        if a > 0.0 {
            self.intersection(other) / a
        } else {
            0.0
        }
    }

    pub fn center(&self) -> (f32, f32) {
        ((self.0[0] + self.0[2]) * 0.5, (self.0[1] + self.0[3]) * 0.5)
    }

    pub fn contains_point(&self, (x, y): (f32, f32)) -> bool {
        let b = &self.0;
        x >= b[0] && x <= b[2] && y >= b[1] && y <= b[3]
    }

    /// Distance from point `p` to the box (0 inside).
    pub fn distance_to(&self, (x, y): (f32, f32)) -> f32 {
        let b = &self.0;
        let dx = (b[0] - x).max(0.0).max(x - b[2]);
        let dy = (b[1] - y).max(0.0).max(y - b[3]);
        (dx * dx + dy * dy).sqrt()
    }

    /// As fractions of a `width` × `height` frame, rounded to 4 decimals and clamped to 0..1.
    pub fn to_frac(&self, width: u32, height: u32) -> FracBox {
        let (w, h) = (width.max(1) as f32, height.max(1) as f32);
        let r = |v: f32| ((v * 10_000.0).round() / 10_000.0).clamp(0.0, 1.0);
        let b = &self.0;
        FracBox([r(b[0] / w), r(b[1] / h), r(b[2] / w), r(b[3] / h)])
    }
}

impl FracBox {
    /// In pixels of a `width` × `height` frame.
    pub fn to_px(&self, width: u32, height: u32) -> PxBox {
        let (w, h) = (width as f32, height as f32);
        let b = &self.0;
        PxBox([b[0] * w, b[1] * h, b[2] * w, b[3] * h])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlap_measures() {
        let a = PxBox::new(0.0, 0.0, 10.0, 10.0);
        let b = PxBox::new(5.0, 0.0, 15.0, 10.0);
        assert_eq!(a.intersection(&b), 50.0);
        assert!((a.iou(&b) - 50.0 / 150.0).abs() < 1e-6);
        assert_eq!(a.covered_by(&b), 0.5);
        assert_eq!(PxBox::new(3.0, 3.0, 1.0, 1.0).area(), 0.0);
        assert_eq!(a.iou(&PxBox::new(20.0, 20.0, 30.0, 30.0)), 0.0);
        assert_eq!(a.distance_to((13.0, 14.0)), 5.0);
        assert_eq!(a.distance_to((5.0, 5.0)), 0.0);
    }

    #[test]
    fn pixels_and_fractions_convert_both_ways() {
        let px = PxBox::new(192.0, 144.0, 576.0, 432.0);
        let frac = px.to_frac(768, 576);
        assert_eq!(frac, FracBox([0.25, 0.25, 0.75, 0.75]));
        assert_eq!(frac.to_px(768, 576), px);
        // Outside the frame is clamped, not wrapped.
        assert_eq!(
            PxBox::new(-5.0, 0.0, 900.0, 10.0).to_frac(768, 576).0[2],
            1.0
        );
    }
}
