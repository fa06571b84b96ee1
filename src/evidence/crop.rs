//! The close-up beside the full frame (`[evidence] crop = true`): the region
//! around the incident's subject, cut from the frame at the camera's own
//! resolution (a bottle 20 pixels wide in a scaled-down evidence picture is
//! 40 wide in a 1080p frame), masked for privacy exactly like the frame, scaled
//! to the evidence picture's height (keeping its aspect) and set to its right
//! behind a white rule.
//! The subject keeps its yellow outline in the close-up.
//!
//! In: the frame, the annotation, the evidence picture drawn so far. Out: the
//! wider picture. Pure.

use image::RgbImage;
use image::imageops::FilterType;

use super::{Annotation, privacy};
use crate::geom::FracBox;
use crate::source::Frame;

/// The close-up's region is at least this many source pixels on its longer side.
const MIN_SIDE: f32 = 96.0;

/// White rule between the frame and the close-up, pixels.
const RULE: u32 = 4;

/// The region shown close up, in source pixels `(x, y, w, h)`: every subject box with
/// half its size again around it, at least [`MIN_SIDE`] on its longer side, within
/// the frame. `None` without a subject.
pub fn region(subjects: &[FracBox], width: u32, height: u32) -> Option<(u32, u32, u32, u32)> {
    let first = subjects.first()?;
    let mut u = first.0;
    for b in &subjects[1..] {
        u = [
            u[0].min(b.0[0]),
            u[1].min(b.0[1]),
            u[2].max(b.0[2]),
            u[3].max(b.0[3]),
        ];
    }
    let (fw, fh) = (width as f32, height as f32);
    let (x0, y0, x1, y1) = (u[0] * fw, u[1] * fh, u[2] * fw, u[3] * fh);
    let side = ((x1 - x0).max(y1 - y0) * 2.0).max(MIN_SIDE);
    let (cx, cy) = ((x0 + x1) / 2.0, (y0 + y1) / 2.0);
    let (w, h) = (side.min(fw), side.min(fh));
    let left = (cx - w / 2.0).clamp(0.0, fw - w);
    let top = (cy - h / 2.0).clamp(0.0, fh - h);
    let (x, y) = (left.round() as u32, top.round() as u32);
    let (w, h) = (
        (w.round() as u32).clamp(1, width - x),
        (h.round() as u32).clamp(1, height - y),
    );
    Some((x, y, w, h))
}

/// `left` (the evidence picture) with the close-up of `ann`'s subjects from `frame`
/// to its right; `left` unchanged without a subject.
pub fn beside(frame: &Frame, ann: &Annotation, left: RgbImage) -> RgbImage {
    let subjects: Vec<FracBox> = ann.subjects.iter().map(|(b, _)| *b).collect();
    let Some((x, y, w, h)) = region(&subjects, frame.width, frame.height) else {
        return left;
    };
    let Some(mut full) = RgbImage::from_raw(frame.width, frame.height, frame.data.clone()) else {
        return left;
    };
    privacy::mask(&mut full, &ann.masked, &ann.kept, ann.method);
    let mut close = image::imageops::crop_imm(&full, x, y, w, h).to_image();
    // The subject's outline, in the close-up's own fractions.
    let inside: Vec<FracBox> = subjects
        .iter()
        .map(|b| {
            let f = |v: f32, o: u32, n: u32, s: u32| {
                ((v * s as f32 - o as f32) / n as f32).clamp(0.0, 1.0)
            };
            FracBox([
                f(b.0[0], x, w, frame.width),
                f(b.0[1], y, h, frame.height),
                f(b.0[2], x, w, frame.width),
                f(b.0[3], y, h, frame.height),
            ])
        })
        .collect();
    let lw = super::line_width(w);
    super::draw_boxes(&mut close, w, h, &inside, lw, super::BOX_COLOUR);
    // One scale for both sides (the close-up keeps its aspect): the picture's height,
    // or less if that would make it wider than twice the frame part.
    let (lw_, lh) = left.dimensions();
    let scale = (lh as f64 / h as f64).min(2.0 * lw_ as f64 / w as f64);
    let cw = ((w as f64 * scale).round() as u32).max(1);
    let ch = ((h as f64 * scale).round() as u32).clamp(1, lh);
    let close = image::imageops::resize(&close, cw, ch, FilterType::Triangle);
    let mut out = RgbImage::from_pixel(lw_ + RULE + cw, lh, image::Rgb([255, 255, 255]));
    image::imageops::replace(&mut out, &left, 0, 0);
    image::imageops::replace(&mut out, &close, (lw_ + RULE) as i64, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{MaskKind, Masked};
    use crate::evidence::Method;

    #[test]
    fn the_region_surrounds_the_subjects_within_the_frame() {
        let b = |a: [f32; 4]| FracBox(a);
        // A 40×20 px box in a 1000×500 frame: a square twice its longer side, at least
        // MIN_SIDE, around its centre.
        assert_eq!(
            region(&[b([0.5, 0.5, 0.54, 0.54])], 1000, 500),
            Some((472, 212, 96, 96))
        );
        // Two subjects: one region around both.
        let (x, y, w, h) = region(
            &[b([0.1, 0.1, 0.2, 0.2]), b([0.3, 0.3, 0.4, 0.4])],
            1000,
            1000,
        )
        .unwrap();
        assert!(
            x <= 100 && y <= 100 && x + w >= 400 && y + h >= 400,
            "{x} {y} {w} {h}"
        );
        // At the corner: kept inside.
        let (x, y, w, h) = region(&[b([0.95, 0.95, 1.0, 1.0])], 640, 480).unwrap();
        assert!(x + w <= 640 && y + h <= 480 && w >= 96, "{x} {y} {w} {h}");
        assert_eq!(region(&[], 640, 480), None);
    }

    #[test]
    fn the_close_up_is_the_subject_at_source_resolution_and_heads_stay_masked() {
        // A 400×200 frame: a fine 1-px checkerboard everywhere.
        let (fw, fh) = (400u32, 200u32);
        let mut data = Vec::with_capacity((fw * fh * 3) as usize);
        for y in 0..fh {
            for x in 0..fw {
                let v = if (x + y) % 2 == 0 { 250 } else { 5 };
                data.extend([v, v, v]);
            }
        }
        let frame = Frame {
            data,
            width: fw,
            height: fh,
            pts: std::time::Duration::ZERO,
            captured_at: std::time::UNIX_EPOCH,
            index: 0,
            decoded: None,
        };
        let subject = FracBox([0.45, 0.45, 0.55, 0.55]);
        // A head right beside the subject, inside the close-up's region.
        let head = FracBox([0.56, 0.40, 0.60, 0.50]);
        let ann = Annotation {
            masked: vec![Masked {
                what: MaskKind::Head,
                bbox: head,
            }],
            kept: vec![subject],
            method: Method::Pixelate,
            ..Annotation::boxes(&[subject])
        };
        let left = RgbImage::from_pixel(200, 100, image::Rgb([0, 0, 0]));
        let out = beside(&frame, &ann, left);
        let (w, h) = out.dimensions();
        assert_eq!(h, 100);
        assert!(w > 200 + RULE, "a close-up to the right: {w}");
        assert_eq!(out.get_pixel(200, 50).0, [255, 255, 255], "the rule");
        // The close-up: 96 source px shown 100 px high, so the checkerboard survives
        // inside the subject (high variance) and the head beside it is flat.
        let (x, y, cw, ch) = region(&[subject], fw, fh).unwrap();
        let at = |fx: f32, fy: f32| {
            let px = ((fx * fw as f32 - x as f32) / cw as f32 * (w - 200 - RULE) as f32) as u32;
            let py = ((fy * fh as f32 - y as f32) / ch as f32 * h as f32) as u32;
            (200 + RULE + px, py)
        };
        let variance = |(x0, y0): (u32, u32), (x1, y1): (u32, u32)| {
            let v: Vec<f64> = (y0..y1)
                .flat_map(|y| (x0..x1).map(move |x| (x, y)))
                .map(|(x, y)| out.get_pixel(x, y).0[0] as f64)
                .collect();
            let mean = v.iter().sum::<f64>() / v.len() as f64;
            v.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / v.len() as f64
        };
        let subject_var = variance(at(0.47, 0.47), at(0.53, 0.53));
        let head_var = variance(at(0.57, 0.42), at(0.59, 0.48));
        assert!(subject_var > 1000.0, "subject detail kept: {subject_var}");
        assert!(
            head_var < subject_var / 10.0,
            "head masked: {head_var} vs {subject_var}"
        );
    }
}
