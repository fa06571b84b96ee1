//! Frame → small grey work image: an area-averaging (box filter) downscale of
//! the RGB frame, then luma. Averaging ~5×5 source pixels per work pixel (at
//! 768 px wide) is the model's noise filter: sensor and compression noise
//! shrink by the square root of the pixel count before any threshold is applied.

use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image};

/// The work-image size for a `width × height` source: `work_width` wide (never
/// wider than the source), height keeping the aspect ratio, both at least 1.
pub fn work_size(work_width: u32, width: u32, height: u32) -> (u32, u32) {
    let w = work_width.clamp(1, width.max(1));
    let h = ((height as f64 * w as f64 / width.max(1) as f64).round() as u32).max(1);
    (w, h)
}

/// The `size` grey work image of a packed RGB8 frame, as the scene model makes it
/// (empty if `rgb` is not `width * height * 3` bytes).
pub fn grey_of_rgb(width: u32, height: u32, rgb: &[u8], size: (u32, u32)) -> Vec<u8> {
    let mut out = Vec::new();
    if GreyScaler::new()
        .run(width, height, rgb, size, &mut out)
        .is_err()
    {
        out.clear();
    }
    out
}

/// Reusable downscaler: the resizer and its RGB output buffer live across frames.
pub(crate) struct GreyScaler {
    resizer: Resizer,
    small: Image<'static>,
}

impl GreyScaler {
    pub(crate) fn new() -> Self {
        Self {
            resizer: Resizer::new(),
            small: Image::new(1, 1, PixelType::U8x3),
        }
    }

    /// Writes the `out_w × out_h` grey image of the packed RGB8 frame into `out`.
    /// Fails if `rgb` is not `width * height * 3` bytes.
    pub(crate) fn run(
        &mut self,
        width: u32,
        height: u32,
        rgb: &[u8],
        (out_w, out_h): (u32, u32),
        out: &mut Vec<u8>,
    ) -> Result<(), String> {
        let src = fast_image_resize::images::ImageRef::new(width, height, rgb, PixelType::U8x3)
            .map_err(|e| format!("frame buffer does not match {width}x{height} RGB: {e}"))?;
        if (self.small.width(), self.small.height()) != (out_w, out_h) {
            self.small = Image::new(out_w, out_h, PixelType::U8x3);
        }
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Box));
        self.resizer
            .resize(&src, &mut self.small, &options)
            .map_err(|e| format!("resize failed: {e}"))?;
        out.clear();
        out.extend(
            self.small
                .buffer()
                .chunks_exact(3)
                .map(|p| luma(p[0], p[1], p[2])),
        );
        Ok(())
    }
}

/// BT.601 luma in integer arithmetic (weights sum to 256).
#[inline]
pub fn luma(r: u8, g: u8, b: u8) -> u8 {
    ((77 * r as u32 + 150 * g as u32 + 29 * b as u32 + 128) >> 8) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_size_keeps_aspect_and_never_upscales() {
        assert_eq!(work_size(160, 768, 576), (160, 120));
        assert_eq!(work_size(160, 1920, 1080), (160, 90));
        assert_eq!(work_size(160, 100, 50), (100, 50));
        assert_eq!(work_size(160, 4000, 10), (160, 1));
        assert_eq!(work_size(0, 640, 480), (1, 1));
    }

    #[test]
    fn box_downscale_averages_blocks() {
        // 8×4 source, left half black, right half white → 2×1: one black, one white.
        let (w, h) = (8u32, 4u32);
        let mut rgb = vec![0u8; (w * h * 3) as usize];
        for y in 0..h {
            for x in 4..w {
                let i = ((y * w + x) * 3) as usize;
                rgb[i..i + 3].copy_from_slice(&[255, 255, 255]);
            }
        }
        let mut s = GreyScaler::new();
        let mut out = Vec::new();
        s.run(w, h, &rgb, (2, 1), &mut out).unwrap();
        assert_eq!(out, vec![0, 255]);
        // Pure colours map to their luma weights.
        assert_eq!(luma(255, 0, 0), 77);
        assert_eq!(luma(0, 255, 0), 149);
        assert_eq!(luma(0, 0, 255), 29);
    }

    #[test]
    fn wrong_buffer_size_is_an_error() {
        let mut s = GreyScaler::new();
        let mut out = Vec::new();
        assert!(s.run(4, 4, &[0; 10], (2, 2), &mut out).is_err());
    }
}
