//! Privacy: which parts of a picture are masked before it leaves the box, and
//! the masking itself.
//!
//! In: what was detected on the frame (labels and boxes, fractions of the
//! frame) and, for evidence, the event's objects. Out: the regions to mask
//! ([`regions`], pure), then the picture with those regions pixelated or
//! blurred ([`mask`]).
//!
//! What is masked: the top `head_fraction` of every box of a `head_classes`
//! class (people's heads), and every box of a `plate_classes` class (licence
//! plates, where the model has them). What never is: the subject of the
//! incident (an event object with no role: the litter item, the parked bike).
//! Its box is kept out of every mask, pixel for pixel, even where a passer-by's
//! head overlaps it. People are never such a subject: the heads of a crowd
//! (congestion) or of a vendor are masked like everyone else's. A litter
//! `thrower` is masked too unless the policy says `mask_thrower = false`.

use image::RgbImage;

use crate::draw::frac_rect;
use crate::event::{EventObject, MaskKind, Masked};
use crate::geom::FracBox;

/// How a region is masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Blocks of about a quarter of the region's longer side, each its mean colour.
    Pixelate,
    /// A Gaussian blur with a sigma of a sixth of the region's longer side.
    Blur,
}

/// What is masked (`[privacy]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub method: Method,
    pub head_classes: Vec<String>,
    /// The top part of a head-class box that is masked, 0..1 of its height.
    pub head_fraction: f32,
    pub plate_classes: Vec<String>,
    pub mask_thrower: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            method: Method::Pixelate,
            head_classes: vec!["person".into()],
            head_fraction: 0.25,
            plate_classes: vec!["license_plate".into(), "licence_plate".into()],
            mask_thrower: true,
        }
    }
}

/// Two boxes are the same object when they overlap this much (intersection over union).
const SAME: f32 = 0.5;

fn iou(a: &FracBox, b: &FracBox) -> f32 {
    // Fractions scaled to a square "frame" keep the ratio of areas.
    a.to_px(1000, 1000).iou(&b.to_px(1000, 1000))
}

/// The top `fraction` of a box.
fn head(b: &FracBox, fraction: f32) -> FracBox {
    let (top, bottom) = (b[1].min(b[3]), b[1].max(b[3]));
    FracBox([b[0], top, b[2], top + (bottom - top) * fraction])
}

/// The regions to mask on a frame where `seen` were detected (label, box), for an
/// event with `objects` (none for snapshots and previews). The subject's boxes are
/// what [`mask`] must keep: see [`subjects`].
pub fn regions<'a>(
    policy: &Policy,
    seen: impl IntoIterator<Item = (&'a str, FracBox)>,
    objects: &[EventObject],
) -> Vec<Masked> {
    let subjects = subjects(policy, objects);
    let throwers: Vec<FracBox> = objects
        .iter()
        .filter(|o| o.role.as_deref() == Some("thrower"))
        .map(|o| o.bbox)
        .collect();
    let spared = |b: &FracBox| {
        subjects.iter().any(|s| iou(s, b) > SAME)
            || (!policy.mask_thrower && throwers.iter().any(|t| iou(t, b) > SAME))
    };
    let mut out = Vec::new();
    let mut heads: Vec<FracBox> = Vec::new();
    for (label, b) in seen {
        let kind = if policy.head_classes.iter().any(|c| c == label) {
            MaskKind::Head
        } else if policy.plate_classes.iter().any(|c| c == label) {
            MaskKind::Plate
        } else {
            continue;
        };
        if spared(&b) {
            continue;
        }
        let region = match kind {
            MaskKind::Head => {
                heads.push(b);
                head(&b, policy.head_fraction)
            }
            MaskKind::Plate => b,
        };
        out.push(Masked {
            what: kind,
            bbox: round(region),
        });
    }
    // A thrower the detector did not see on this frame is masked all the same.
    if policy.mask_thrower {
        for t in &throwers {
            if !heads.iter().any(|h| iou(h, t) > SAME) && !spared(t) {
                out.push(Masked {
                    what: MaskKind::Head,
                    bbox: round(head(t, policy.head_fraction)),
                });
            }
        }
    }
    out
}

/// The boxes no mask may touch: the event's objects that have no role and are not
/// of a class whose heads are masked.
pub fn subjects(policy: &Policy, objects: &[EventObject]) -> Vec<FracBox> {
    objects
        .iter()
        .filter(|o| o.role.is_none() && !policy.head_classes.contains(&o.class))
        .map(|o| o.bbox)
        .collect()
}

/// Four decimals, as events carry boxes.
fn round(b: FracBox) -> FracBox {
    FracBox(b.0.map(|v| (v * 10_000.0).round() / 10_000.0))
}

/// Masks `regions` of `img` with `method`, leaving every pixel inside a `keep` box as
/// it was.
pub fn mask(img: &mut RgbImage, regions: &[Masked], keep: &[FracBox], method: Method) {
    let (w, h) = img.dimensions();
    let kept: Vec<_> = keep.iter().filter_map(|b| frac_rect(b, w, h)).collect();
    for m in regions {
        let Some(r) = frac_rect(&m.bbox, w, h) else {
            continue;
        };
        let (x0, y0, rw, rh) = (r.left() as u32, r.top() as u32, r.width(), r.height());
        let rw = rw.min(w - x0);
        let rh = rh.min(h - y0);
        let crop = image::imageops::crop_imm(&*img, x0, y0, rw, rh).to_image();
        let masked = match method {
            Method::Pixelate => pixelate(&crop),
            Method::Blur => {
                let sigma = (rw.max(rh) as f32 / 6.0).max(2.0);
                imageproc::filter::gaussian_blur_f32(&crop, sigma)
            }
        };
        for (x, y, p) in masked.enumerate_pixels() {
            let (ix, iy) = ((x0 + x) as i32, (y0 + y) as i32);
            let in_kept = kept
                .iter()
                .any(|k| ix >= k.left() && ix <= k.right() && iy >= k.top() && iy <= k.bottom());
            if !in_kept {
                img.put_pixel(x0 + x, y0 + y, *p);
            }
        }
    }
}

/// Each block of the image replaced by its mean colour.
fn pixelate(img: &RgbImage) -> RgbImage {
    let (w, h) = img.dimensions();
    let block = w.max(h).div_ceil(4).max(3);
    let mut out = img.clone();
    for by in (0..h).step_by(block as usize) {
        for bx in (0..w).step_by(block as usize) {
            let (bw, bh) = (block.min(w - bx), block.min(h - by));
            let mut sum = [0u64; 3];
            for y in by..by + bh {
                for x in bx..bx + bw {
                    for (s, v) in sum.iter_mut().zip(img.get_pixel(x, y).0) {
                        *s += v as u64;
                    }
                }
            }
            let n = (bw * bh) as u64;
            let mean = image::Rgb(sum.map(|s| (s / n) as u8));
            for y in by..by + bh {
                for x in bx..bx + bw {
                    out.put_pixel(x, y, mean);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests;
