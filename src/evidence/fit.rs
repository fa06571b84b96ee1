//! Evidence that fits the broker's packet limit.
//!
//! A broker takes packets up to a size (AWS IoT Core 128 KB, Mosquitto's
//! `max_packet_size`, …); a 1080p JPEG easily exceeds it. A JPEG over the
//! budget is encoded again at lower quality, then scaled down a quarter at
//! a time (masked and drawn again at each size, so outlines, labels and
//! privacy masks stay as they were; nothing is cropped) until it fits or
//! would be narrower than [`MIN_WIDTH`].
//!
//! The budget is the largest JPEG payload the broker takes, shared as a
//! [`JpegBudget`]: the publisher sets it from the limit it knows (the
//! configuration, the broker's MQTT 5 CONNACK), cameras and snapshots read
//! it when they encode. A JPEG stored under an older, larger budget is made
//! smaller by the publisher with [`refit`] before it is published.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Annotation, EvidenceError, EvidenceOptions, jpeg, output_size, render, scaled};
use crate::source::Frame;

/// Narrower than this, evidence would show nothing useful: it is not made.
pub const MIN_WIDTH: u32 = 160;

/// Qualities tried, after the configured one (only those below it).
const LOWER_QUALITIES: [u8; 3] = [65, 50, 35];

/// Each smaller attempt is this much of the last width.
const SHRINK: f64 = 0.75;

/// The largest JPEG payload the broker takes, shared by the publisher (which sets it)
/// and whoever encodes JPEGs.
#[derive(Debug, Clone)]
pub struct JpegBudget(Arc<AtomicUsize>);

impl JpegBudget {
    pub fn new(bytes: usize) -> Self {
        Self(Arc::new(AtomicUsize::new(bytes)))
    }

    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    pub fn set(&self, bytes: usize) {
        self.0.store(bytes, Ordering::Relaxed);
    }
}

/// The qualities to try, best first.
fn qualities(configured: u8) -> impl Iterator<Item = u8> {
    std::iter::once(configured).chain(LOWER_QUALITIES.into_iter().filter(move |q| *q < configured))
}

/// Tries `encode(width, quality)` from `width` down, each width at every quality, until
/// the JPEG is at most `max_bytes`.
fn shrink_until(
    width: u32,
    quality: u8,
    max_bytes: usize,
    mut encode: impl FnMut(u32, u8) -> Result<Vec<u8>, EvidenceError>,
) -> Result<Vec<u8>, EvidenceError> {
    let mut w = width;
    let mut smallest = usize::MAX;
    loop {
        for q in qualities(quality) {
            let out = encode(w, q)?;
            if out.len() <= max_bytes {
                return Ok(out);
            }
            smallest = smallest.min(out.len());
        }
        let next = (w as f64 * SHRINK).round() as u32;
        if next < MIN_WIDTH {
            return Err(EvidenceError::TooLarge {
                bytes: smallest,
                max: max_bytes,
            });
        }
        w = next;
    }
}

/// [`render`], made smaller until the JPEG is at most `max_bytes`.
pub fn render_within(
    frame: &Frame,
    ann: &Annotation,
    opts: &EvidenceOptions,
    max_bytes: usize,
) -> Result<Vec<u8>, EvidenceError> {
    let (width, _) = output_size(frame.width, frame.height, opts.max_width);
    shrink_until(width, opts.quality, max_bytes, |w, q| {
        render(
            frame,
            ann,
            &EvidenceOptions {
                max_width: w,
                quality: q,
                crop: opts.crop,
            },
        )
    })
}

/// A stored JPEG (already masked and drawn) made smaller until it is at most `max_bytes`.
pub fn refit(stored: &[u8], quality: u8, max_bytes: usize) -> Result<Vec<u8>, EvidenceError> {
    let img = image::load_from_memory_with_format(stored, image::ImageFormat::Jpeg)?.to_rgb8();
    let frame = Frame {
        width: img.width(),
        height: img.height(),
        data: img.into_raw(),
        pts: std::time::Duration::ZERO,
        captured_at: std::time::UNIX_EPOCH,
        index: 0,
        decoded: None,
    };
    let width = frame.width;
    shrink_until(width, quality, max_bytes, |w, q| {
        let (w, h, pixels) = scaled(&frame, w)?;
        Ok(jpeg(&pixels, w, h, q)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evidence::{BOX_COLOUR, Method};
    use crate::geom::FracBox;

    /// A busy picture (noise compresses badly), as a street scene does.
    fn noisy(width: u32, height: u32) -> Frame {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let data = (0..width * height * 3)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 56) as u8
            })
            .collect();
        Frame {
            width,
            height,
            data,
            pts: std::time::Duration::ZERO,
            captured_at: std::time::UNIX_EPOCH,
            index: 0,
            decoded: None,
        }
    }

    fn decode(jpeg: &[u8]) -> image::RgbImage {
        image::load_from_memory(jpeg).unwrap().to_rgb8()
    }

    #[test]
    fn evidence_is_made_smaller_until_it_fits_and_keeps_its_boxes() {
        let frame = noisy(1280, 720);
        let opts = EvidenceOptions {
            max_width: 1280,
            quality: 80,
            crop: false,
        };
        let boxes = Annotation::boxes(&[FracBox([0.25, 0.25, 0.75, 0.75])]);
        let full = render(&frame, &boxes, &opts).unwrap();
        for max in [full.len(), full.len() / 2, 30_000, 12_000] {
            let jpeg = render_within(&frame, &boxes, &opts, max).unwrap();
            assert!(jpeg.len() <= max, "{} > {max}", jpeg.len());
            let img = decode(&jpeg);
            // Scaled, not cropped: the aspect is kept.
            let aspect = img.width() as f64 / img.height() as f64;
            assert!((aspect - 16.0 / 9.0).abs() < 0.02, "{:?}", img.dimensions());
            // The box's left edge is still drawn at a quarter of the width.
            let x = (img.width() as f64 * 0.25).round() as u32;
            let p = img.get_pixel(x, img.height() / 2).0;
            assert!(
                p[0] > 180 && p[1] > 150 && p[2] < 120,
                "{max}: {:?} at x {x}: {p:?} (box colour {BOX_COLOUR:?})",
                img.dimensions()
            );
        }
        assert_eq!(
            render_within(&frame, &boxes, &opts, full.len()).unwrap(),
            full,
            "what fits is left alone"
        );
        let err = render_within(&frame, &boxes, &opts, 500).unwrap_err();
        assert!(
            matches!(err, EvidenceError::TooLarge { max: 500, .. }),
            "{err}"
        );
    }

    /// The variance of the grey level inside `b` (fractions of the image).
    fn variance(img: &image::RgbImage, b: [f64; 4]) -> f64 {
        let (w, h) = (img.width() as f64, img.height() as f64);
        let v: Vec<f64> = (((b[1] * h) as u32)..((b[3] * h) as u32))
            .flat_map(|y| (((b[0] * w) as u32)..((b[2] * w) as u32)).map(move |x| (x, y)))
            .map(|(x, y)| img.get_pixel(x, y).0.iter().map(|c| *c as f64).sum::<f64>() / 3.0)
            .collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        v.iter().map(|g| (g - mean).powi(2)).sum::<f64>() / v.len() as f64
    }

    #[test]
    fn heads_stay_masked_at_every_size_evidence_is_made_to_fit() {
        use crate::event::{MaskKind, Masked};
        let frame = noisy(1280, 720);
        let opts = EvidenceOptions {
            max_width: 1280,
            quality: 80,
            crop: false,
        };
        let head = Masked {
            what: MaskKind::Head,
            bbox: FracBox([0.1, 0.1, 0.4, 0.5]),
        };
        for method in [Method::Pixelate, Method::Blur] {
            let ann = Annotation::masks(std::slice::from_ref(&head), method);
            let full = render(&frame, &ann, &opts).unwrap();
            for max in [full.len(), full.len() / 2, 30_000, 12_000] {
                let img = decode(&render_within(&frame, &ann, &opts, max).unwrap());
                // Well inside the mask, and a patch of street as large elsewhere.
                let masked = variance(&img, [0.15, 0.15, 0.35, 0.45]);
                let street = variance(&img, [0.6, 0.5, 0.8, 0.8]);
                assert!(
                    masked * 10.0 < street,
                    "{method:?} within {max} bytes, {:?}: masked {masked:.1}, street {street:.1}",
                    img.dimensions()
                );
            }
        }
    }

    #[test]
    fn a_stored_jpeg_is_refitted_smaller() {
        let frame = noisy(960, 540);
        let opts = EvidenceOptions {
            max_width: 960,
            quality: 90,
            crop: false,
        };
        let boxes = Annotation::boxes(&[FracBox([0.1, 0.1, 0.9, 0.9])]);
        let stored = render(&frame, &boxes, &opts).unwrap();
        let smaller = refit(&stored, 90, stored.len() / 3).unwrap();
        assert!(smaller.len() <= stored.len() / 3);
        let img = decode(&smaller);
        assert_eq!(img.width() * 9, img.height() * 16, "{:?}", img.dimensions());
        assert!(refit(b"not a jpeg", 80, 1000).is_err());
    }
}
