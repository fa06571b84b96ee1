//! Evidence: the frame an incident started on, as a JPEG anyone can read,
//! published on `{prefix}/{node}/evidence/{event_id}` after the `start`
//! event; and on-demand snapshots.
//!
//! In: a decoded RGB frame and an [`Annotation`]: the subject's boxes, other
//! objects of the event (a thrower), the zone's outline, a caption
//! (`litter · static change · 00:12:31`), the camera's id (and its site's
//! address), and the regions to mask for privacy ([`privacy`]). Out: JPEG
//! bytes. The frame is scaled down to at most `max_width` pixels wide (never
//! up) first, so outlines and text have the same size whatever the camera's
//! resolution; then people's heads (and plates) are masked, the subject
//! never; then the drawing is done ([`crate::draw`]).
//!
//! With `[evidence] crop`, a close-up of the subject at the camera's own
//! resolution is set beside the frame (`crop`), masked the same way.
//!
//! Evidence is made to fit the broker's packet limit (`fit`): encoded again
//! at lower quality and scaled down, never cropped.
//!
//! Encoding a 1080p frame takes tens of milliseconds: callers run
//! [`render`] on a blocking thread, never on the async runtime.

mod crop;
mod fit;
pub mod privacy;

pub use crop::region as close_up_region;
pub use fit::{JpegBudget, MIN_WIDTH, refit, render_within};

use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image};

use crate::draw::{Corner, Painter, colour};
use crate::event::Masked;
use crate::geom::FracBox;
use crate::source::Frame;
pub use privacy::{Method, Policy};

/// The outline colour: a saturated yellow, bright enough to survive JPEG's
/// chroma subsampling on grey streets and dark asphalt.
pub const BOX_COLOUR: [u8; 3] = [255, 221, 0];

#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    #[error("frame buffer has {len} bytes, not {width}x{height} RGB")]
    Frame { width: u32, height: u32, len: usize },
    #[error("scaling the frame failed: {0}")]
    Resize(String),
    #[error("JPEG encoding failed: {0}")]
    Encode(#[from] image::ImageError),
    #[error(
        "the JPEG cannot be made to fit {max} bytes (smallest: {bytes} bytes at {MIN_WIDTH} px wide)"
    )]
    TooLarge { bytes: usize, max: usize },
}

/// How evidence is made (`[evidence]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EvidenceOptions {
    /// Wider frames are scaled down to this width, pixels.
    pub max_width: u32,
    /// JPEG quality, 1–100.
    pub quality: u8,
    /// A close-up of the subject beside the frame (`[evidence] crop`).
    pub crop: bool,
}

/// Outline thickness for an image `width` pixels wide: 2 px, 3 px from 1000 px up.
pub fn line_width(width: u32) -> u32 {
    if width >= 1000 { 3 } else { 2 }
}

/// A normalised box in pixels: inclusive `(x0, y0, x1, y1)`, clipped to the image.
/// `None` for a box that is not a number or lies wholly outside.
fn to_pixels(b: &FracBox, width: u32, height: u32) -> Option<(u32, u32, u32, u32)> {
    if b.0.iter().any(|v| !v.is_finite()) || width == 0 || height == 0 {
        return None;
    }
    let (l, r) = (b[0].min(b[2]), b[0].max(b[2]));
    let (t, btm) = (b[1].min(b[3]), b[1].max(b[3]));
    if r < 0.0 || btm < 0.0 || l > 1.0 || t > 1.0 {
        return None;
    }
    // Edges round to the nearest pixel boundary: `0.8 × 50` is 40 even though 0.8 as f32
    // is a hair above it.
    let edge = |v: f32, size: u32| (v as f64 * size as f64).clamp(0.0, size as f64).round() as u32;
    let x0 = edge(l, width).min(width - 1);
    let y0 = edge(t, height).min(height - 1);
    // The right and bottom edges are the last pixels the box covers (at least one).
    let x1 = edge(r, width).saturating_sub(1).clamp(x0, width - 1);
    let y1 = edge(btm, height).saturating_sub(1).clamp(y0, height - 1);
    Some((x0, y0, x1, y1))
}

/// Draws each box's outline, `thickness` pixels wide inside the box, on a packed RGB
/// image. Boxes are fractions of the image (`[x0, y0, x1, y1]`) and are clipped to it.
pub fn draw_boxes(
    data: &mut [u8],
    width: u32,
    height: u32,
    boxes: &[FracBox],
    thickness: u32,
    colour: [u8; 3],
) {
    if data.len() != width as usize * height as usize * 3 || thickness == 0 {
        return;
    }
    let stride = width as usize * 3;
    let mut fill = |x0: u32, y0: u32, x1: u32, y1: u32| {
        for y in y0..=y1 {
            let row = &mut data[y as usize * stride..(y as usize + 1) * stride];
            for px in row[x0 as usize * 3..(x1 as usize + 1) * 3].chunks_exact_mut(3) {
                px.copy_from_slice(&colour);
            }
        }
    };
    let t = thickness - 1;
    for b in boxes {
        let Some((x0, y0, x1, y1)) = to_pixels(b, width, height) else {
            continue;
        };
        fill(x0, y0, x1, (y0 + t).min(y1)); // top
        fill(x0, y1.saturating_sub(t).max(y0), x1, y1); // bottom
        fill(x0, y0, (x0 + t).min(x1), y1); // left
        fill(x1.saturating_sub(t).max(x0), y0, x1, y1); // right
    }
}

/// The size evidence of a `width × height` frame has: scaled down to `max_width`, aspect kept.
pub fn output_size(width: u32, height: u32, max_width: u32) -> (u32, u32) {
    if width <= max_width || width == 0 {
        return (width, height);
    }
    let h = (height as f64 * max_width as f64 / width as f64).round() as u32;
    (max_width, h.max(1))
}

/// What an evidence picture shows over its frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// The incident's subject: outlined in yellow, tagged with the text when it is not
    /// empty. Never masked.
    pub subjects: Vec<(FracBox, String)>,
    /// Other objects of the event (a thrower): outlined in magenta and tagged.
    pub others: Vec<(FracBox, String)>,
    /// The zone's polygon (fractions of the frame); empty: none drawn.
    pub zone: Vec<[f64; 2]>,
    /// What happened and when, along the bottom: `litter · static change · 00:12:31`.
    pub caption: String,
    /// The camera (and its address), in the top-left corner.
    pub camera: String,
    /// Regions masked for privacy.
    pub masked: Vec<Masked>,
    /// Boxes no mask touches: the subject, unless it is a person ([`privacy::subjects`]).
    pub kept: Vec<FracBox>,
    pub method: Method,
}

impl Annotation {
    /// Nothing drawn, `masked` masked with `method`: a snapshot.
    pub fn masks(masked: &[Masked], method: Method) -> Self {
        Self {
            masked: masked.to_vec(),
            method,
            ..Self::boxes(&[])
        }
    }

    /// Just outlines: `boxes` as untagged subjects.
    pub fn boxes(boxes: &[FracBox]) -> Self {
        Self {
            subjects: boxes.iter().map(|b| (*b, String::new())).collect(),
            others: Vec::new(),
            zone: Vec::new(),
            caption: String::new(),
            camera: String::new(),
            masked: Vec::new(),
            kept: boxes.to_vec(),
            method: Method::Pixelate,
        }
    }
}

/// `litter · static change · 00:12:31`: the event's type, its cause or level or source
/// when it has one, and `at`.
pub fn caption(event: &crate::event::Event, at: &str) -> String {
    let words = |s: &str| s.replace('_', " ");
    let mut parts = vec![words(&event.kind)];
    for key in ["level", "source", "cause"] {
        if let Some(v) = event.attributes.get(key) {
            parts.push(words(v));
            break;
        }
    }
    parts.push(at.to_string());
    parts.join(" · ")
}

/// `HH:MM:SS` of a duration (stream time).
pub fn clock(d: std::time::Duration) -> String {
    let s = d.as_secs();
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// The evidence JPEG of `frame`: scaled down, masked, annotated.
pub fn render(
    frame: &Frame,
    ann: &Annotation,
    opts: &EvidenceOptions,
) -> Result<Vec<u8>, EvidenceError> {
    let (ow, oh, pixels) = scaled(frame, opts.max_width)?;
    let mut img = image::RgbImage::from_raw(ow, oh, pixels).expect("scaled to its size");
    privacy::mask(&mut img, &ann.masked, &ann.kept, ann.method);
    annotate(&mut img, ann);
    if opts.crop {
        img = crop::beside(frame, ann, img);
    }
    let (ow, oh) = img.dimensions();
    Ok(jpeg(img.as_raw(), ow, oh, opts.quality)?)
}

/// Draws `ann` (all but the masks) on `img`. Without a font, only the outlines.
pub fn annotate(img: &mut image::RgbImage, ann: &Annotation) {
    let font = match crate::draw::font() {
        Ok(f) => f,
        Err(e) => {
            static WARNED: std::sync::Once = std::sync::Once::new();
            WARNED.call_once(|| tracing::warn!(error = %e, "evidence drawn without labels"));
            let (w, h) = img.dimensions();
            let boxes: Vec<FracBox> = ann
                .subjects
                .iter()
                .chain(&ann.others)
                .map(|(b, _)| *b)
                .collect();
            draw_boxes(img, w, h, &boxes, line_width(w), BOX_COLOUR);
            return;
        }
    };
    let mut p = Painter::new(img, &font);
    if ann.zone.len() >= 3 {
        p.polygon(&ann.zone, colour::ORANGE);
    }
    for (b, tag) in &ann.others {
        p.tagged(b, tag, colour::MAGENTA);
    }
    for (b, tag) in &ann.subjects {
        if tag.is_empty() {
            p.rect(b, colour::YELLOW);
        } else {
            p.tagged(b, tag, colour::YELLOW);
        }
    }
    if !ann.camera.is_empty() {
        p.corner(Corner::TopLeft, &ann.camera);
    }
    if !ann.caption.is_empty() {
        p.corner(Corner::BottomLeft, &ann.caption);
    }
}

fn check(frame: &Frame) -> Result<(), EvidenceError> {
    let (w, h) = (frame.width, frame.height);
    if frame.data.len() != w as usize * h as usize * 3 || w == 0 || h == 0 {
        return Err(EvidenceError::Frame {
            width: w,
            height: h,
            len: frame.data.len(),
        });
    }
    Ok(())
}

/// The frame's pixels scaled down to `max_width` (never up), with their size.
fn scaled(frame: &Frame, max_width: u32) -> Result<(u32, u32, Vec<u8>), EvidenceError> {
    check(frame)?;
    let (w, h) = (frame.width, frame.height);
    let (ow, oh) = output_size(w, h, max_width);
    if (ow, oh) == (w, h) {
        return Ok((w, h, frame.data.clone()));
    }
    let src = fast_image_resize::images::ImageRef::new(w, h, &frame.data, PixelType::U8x3)
        .map_err(|e| EvidenceError::Resize(e.to_string()))?;
    let mut dst = Image::new(ow, oh, PixelType::U8x3);
    let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
    Resizer::new()
        .resize(&src, &mut dst, &options)
        .map_err(|e| EvidenceError::Resize(e.to_string()))?;
    Ok((ow, oh, dst.into_vec()))
}

/// JPEG of packed RGB8 pixels at `quality` (1–100): evidence and on-demand snapshots.
pub fn jpeg(
    rgb: &[u8],
    width: u32,
    height: u32,
    quality: u8,
) -> Result<Vec<u8>, image::ImageError> {
    let mut out = Vec::with_capacity(rgb.len() / 8);
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality.clamp(1, 100)).encode(
        rgb,
        width,
        height,
        image::ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLACK: [u8; 3] = [0, 0, 0];

    fn px(data: &[u8], width: u32, x: u32, y: u32) -> [u8; 3] {
        let i = (y * width + x) as usize * 3;
        [data[i], data[i + 1], data[i + 2]]
    }

    fn coloured(data: &[u8]) -> usize {
        data.chunks_exact(3).filter(|p| *p == BOX_COLOUR).count()
    }

    #[test]
    fn an_outline_is_drawn_inside_the_box_and_nothing_else_changes() {
        let (w, h) = (100, 50);
        let mut img = vec![0u8; (w * h * 3) as usize];
        draw_boxes(
            &mut img,
            w,
            h,
            &[FracBox([0.1, 0.2, 0.5, 0.8])],
            2,
            BOX_COLOUR,
        );
        // Pixels 10..=49 across, 10..=39 down.
        for (x, y) in [
            (10, 20),
            (11, 20),
            (49, 20),
            (48, 20),
            (30, 10),
            (30, 11),
            (30, 39),
            (30, 38),
        ] {
            assert_eq!(px(&img, w, x, y), BOX_COLOUR, "({x}, {y})");
        }
        for (x, y) in [
            (12, 20),
            (47, 20),
            (30, 12),
            (30, 37),
            (30, 25),
            (9, 20),
            (50, 20),
            (30, 9),
            (30, 40),
        ] {
            assert_eq!(px(&img, w, x, y), BLACK, "({x}, {y})");
        }
        // A 40 × 30 box with a 2 px outline: 40·30 − 36·26 pixels.
        assert_eq!(coloured(&img), 40 * 30 - 36 * 26);
    }

    #[test]
    fn boxes_are_clipped_and_bad_ones_skipped() {
        let (w, h) = (64, 48);
        let mut img = vec![0u8; (w * h * 3) as usize];
        draw_boxes(
            &mut img,
            w,
            h,
            &[
                FracBox([f32::NAN, 0.0, 0.5, 0.5]),
                FracBox([1.2, 1.2, 1.5, 1.5]),
                FracBox([-0.3, -0.1, -0.05, 0.5]),
            ],
            3,
            BOX_COLOUR,
        );
        assert_eq!(coloured(&img), 0);
        // Larger than the frame: the outline runs along the frame's border.
        draw_boxes(
            &mut img,
            w,
            h,
            &[FracBox([-0.2, -0.1, 1.3, 1.5])],
            3,
            BOX_COLOUR,
        );
        assert_eq!(coloured(&img), (64 * 48 - 58 * 42) as usize);
        for (x, y) in [(0, 0), (63, 47), (2, 24), (61, 24)] {
            assert_eq!(px(&img, w, x, y), BOX_COLOUR);
        }
        assert_eq!(px(&img, w, 3, 24), BLACK);
        // A box smaller than two outlines is filled; a point is one pixel.
        let mut img = vec![0u8; (w * h * 3) as usize];
        draw_boxes(
            &mut img,
            w,
            h,
            &[FracBox([0.5, 0.5, 0.5, 0.5])],
            3,
            BOX_COLOUR,
        );
        assert_eq!(coloured(&img), 1);
        // Corners given in the wrong order still make the same box.
        let (mut a, mut b) = (
            vec![0u8; (w * h * 3) as usize],
            vec![0u8; (w * h * 3) as usize],
        );
        draw_boxes(
            &mut a,
            w,
            h,
            &[FracBox([0.1, 0.1, 0.6, 0.7])],
            2,
            BOX_COLOUR,
        );
        draw_boxes(
            &mut b,
            w,
            h,
            &[FracBox([0.6, 0.7, 0.1, 0.1])],
            2,
            BOX_COLOUR,
        );
        assert_eq!(a, b);
    }

    fn gradient(width: u32, height: u32) -> Frame {
        let mut data = Vec::with_capacity((width * height * 3) as usize);
        for y in 0..height {
            for x in 0..width {
                data.extend_from_slice(&[(x * 255 / width) as u8, (y * 255 / height) as u8, 60]);
            }
        }
        Frame {
            width,
            height,
            data,
            pts: std::time::Duration::ZERO,
            captured_at: std::time::SystemTime::now(),
            index: 0,
            decoded: None,
        }
    }

    fn decode(jpeg: &[u8]) -> image::RgbImage {
        image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)
            .expect("a valid JPEG")
            .to_rgb8()
    }

    #[test]
    fn wide_frames_are_scaled_down_and_keep_their_aspect() {
        assert_eq!(output_size(1920, 1080, 1280), (1280, 720));
        assert_eq!(output_size(768, 576, 1280), (768, 576));
        assert_eq!(output_size(810, 1080, 640), (640, 853));
        let opts = EvidenceOptions {
            max_width: 640,
            quality: 80,
            crop: false,
        };
        let boxes = [FracBox([0.25, 0.25, 0.75, 0.75])];
        let img =
            decode(&render(&gradient(1920, 1080), &Annotation::boxes(&boxes), &opts).unwrap());
        assert_eq!(img.dimensions(), (640, 360));
        // The outline is at the box's edge in the scaled image, 2 px wide, still yellow.
        let p = img.get_pixel(160, 180).0;
        assert!(p[0] > 200 && p[1] > 170 && p[2] < 90, "{p:?}");
        let inside = img.get_pixel(170, 180).0;
        assert!(inside[2] > 40 && inside[1] < 170, "{inside:?}");
        // Not enlarged.
        let small =
            decode(&render(&gradient(320, 240), &Annotation::boxes(&boxes), &opts).unwrap());
        assert_eq!(small.dimensions(), (320, 240));
    }

    #[test]
    fn quality_trades_size() {
        let frame = gradient(640, 480);
        let boxes = [FracBox([0.1, 0.1, 0.4, 0.9]), FracBox([0.5, 0.2, 0.9, 0.6])];
        let size = |quality| {
            render(
                &frame,
                &Annotation::boxes(&boxes),
                &EvidenceOptions {
                    max_width: 1280,
                    quality,
                    crop: false,
                },
            )
            .unwrap()
            .len()
        };
        assert!(size(30) < size(95), "{} vs {}", size(30), size(95));
    }

    #[test]
    fn a_frame_whose_buffer_does_not_match_is_refused() {
        let mut f = gradient(64, 48);
        f.data.truncate(100);
        let err = render(
            &f,
            &Annotation::boxes(&[]),
            &EvidenceOptions {
                max_width: 1280,
                quality: 80,
                crop: false,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("64x48"), "{err}");
    }
}
