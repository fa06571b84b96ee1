//! Frame → input tensor: resize, channel order, normalisation, layout.

use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image};

use super::manifest::{ColorOrder, InputSpec, Layout};

/// An 8-bit RGB image, rows packed (`stride == width * 3`).
#[derive(Debug, Clone, Copy)]
pub struct RgbView<'a> {
    pub width: u32,
    pub height: u32,
    pub data: &'a [u8],
}

/// Reusable preprocessing state: the resizer and its output buffer live across frames.
pub struct Preprocessor {
    spec: InputSpec,
    resizer: Resizer,
    resized: Image<'static>,
    /// `1 / std` per channel, in tensor channel order.
    inv_std: [f32; 3],
}

impl Preprocessor {
    pub fn new(spec: &InputSpec) -> Self {
        Self {
            spec: spec.clone(),
            resizer: Resizer::new(),
            resized: Image::new(spec.width, spec.height, PixelType::U8x3),
            inv_std: spec.std.map(|s| 1.0 / s),
        }
    }

    /// Writes the model input for `img` into `out` (resized to `width × height × 3`).
    pub fn run(&mut self, img: RgbView<'_>, out: &mut Vec<f32>) -> Result<(), String> {
        let src = fast_image_resize::images::ImageRef::new(
            img.width,
            img.height,
            img.data,
            PixelType::U8x3,
        )
        .map_err(|e| {
            format!(
                "frame buffer does not match {}x{} RGB: {e}",
                img.width, img.height
            )
        })?;
        // Convolution bilinear (widened kernel when shrinking) matches PIL's bilinear
        // resize, with which the reference detections were made.
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        self.resizer
            .resize(&src, &mut self.resized, &options)
            .map_err(|e| format!("resize failed: {e}"))?;

        let (w, h) = (self.spec.width as usize, self.spec.height as usize);
        let plane = w * h;
        out.clear();
        out.resize(plane * 3, 0.0);
        // Source channel feeding tensor channel c.
        let src_ch: [usize; 3] = match self.spec.color {
            ColorOrder::Rgb => [0, 1, 2],
            ColorOrder::Bgr => [2, 1, 0],
        };
        let mean = self.spec.mean;
        let inv = self.inv_std;
        let px = self.resized.buffer();
        match self.spec.layout {
            Layout::Nchw => {
                let (c0, rest) = out.split_at_mut(plane);
                let (c1, c2) = rest.split_at_mut(plane);
                for (i, p) in px.chunks_exact(3).enumerate() {
                    c0[i] = (p[src_ch[0]] as f32 - mean[0]) * inv[0];
                    c1[i] = (p[src_ch[1]] as f32 - mean[1]) * inv[1];
                    c2[i] = (p[src_ch[2]] as f32 - mean[2]) * inv[2];
                }
            }
            Layout::Nhwc => {
                for (o, p) in out.chunks_exact_mut(3).zip(px.chunks_exact(3)) {
                    for c in 0..3 {
                        o[c] = (p[src_ch[c]] as f32 - mean[c]) * inv[c];
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::manifest::ResizeMode;

    fn spec(layout: Layout, color: ColorOrder) -> InputSpec {
        InputSpec {
            name: "x".into(),
            layout,
            width: 2,
            height: 1,
            color,
            resize: ResizeMode::Stretch,
            mean: [10.0, 20.0, 30.0],
            std: [2.0, 4.0, 5.0],
        }
    }

    #[test]
    fn bgr_nchw_reorders_and_normalises() {
        // Two pixels, already the input size: (R,G,B) = (100,50,40), (0,20,30).
        let data = [100u8, 50, 40, 0, 20, 30];
        let mut p = Preprocessor::new(&spec(Layout::Nchw, ColorOrder::Bgr));
        let mut out = Vec::new();
        p.run(
            RgbView {
                width: 2,
                height: 1,
                data: &data,
            },
            &mut out,
        )
        .unwrap();
        // Plane 0 is B, plane 1 G, plane 2 R.
        assert_eq!(out, vec![15.0, 10.0, 7.5, 0.0, 14.0, -6.0]);
    }

    #[test]
    fn rgb_nhwc_interleaves() {
        let data = [100u8, 50, 40, 0, 20, 30];
        let mut p = Preprocessor::new(&spec(Layout::Nhwc, ColorOrder::Rgb));
        let mut out = Vec::new();
        p.run(
            RgbView {
                width: 2,
                height: 1,
                data: &data,
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(out, vec![45.0, 7.5, 2.0, -5.0, 0.0, 0.0]);
    }

    #[test]
    fn wrong_buffer_size_is_an_error() {
        let mut p = Preprocessor::new(&spec(Layout::Nchw, ColorOrder::Rgb));
        let mut out = Vec::new();
        assert!(
            p.run(
                RgbView {
                    width: 4,
                    height: 4,
                    data: &[0; 5]
                },
                &mut out
            )
            .is_err()
        );
    }
}
