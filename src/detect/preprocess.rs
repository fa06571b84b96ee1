//! Frame → input tensor: resize (stretch or letterbox), channel order,
//! normalisation, layout. Also says where the frame landed in the input
//! ([`Geometry`]), so boxes map back to source pixels exactly.

use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image};

use super::manifest::{ColorOrder, InputSpec, Layout, ResizeMode};
use super::postprocess::Geometry;

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
            resized: Image::new(1, 1, PixelType::U8x3),
            inv_std: spec.std.map(|s| 1.0 / s),
        }
    }

    /// Where a `width × height` frame goes in the input: the resized size and the offset.
    pub fn placement(&self, width: u32, height: u32) -> ((u32, u32), (u32, u32)) {
        let (iw, ih) = (self.spec.width, self.spec.height);
        match self.spec.resize {
            ResizeMode::Stretch => ((iw, ih), (0, 0)),
            ResizeMode::Letterbox => {
                let s = (iw as f64 / width as f64).min(ih as f64 / height as f64);
                let nw = ((width as f64 * s).round() as u32).clamp(1, iw);
                let nh = ((height as f64 * s).round() as u32).clamp(1, ih);
                ((nw, nh), ((iw - nw) / 2, (ih - nh) / 2))
            }
        }
    }

    /// Writes the model input for `img` into `out` (`width × height × 3` values) and
    /// returns where the frame landed.
    pub fn run(&mut self, img: RgbView<'_>, out: &mut Vec<f32>) -> Result<Geometry, String> {
        out.clear();
        out.resize(self.input_len(), 0.0);
        self.run_into(img, out)
    }

    /// Values in one frame's input tensor (`width × height × 3`).
    pub fn input_len(&self) -> usize {
        self.spec.width as usize * self.spec.height as usize * 3
    }

    /// Like [`Preprocessor::run`], into a slice of exactly [`Preprocessor::input_len`]
    /// values (one frame's place in a batch).
    pub fn run_into(&mut self, img: RgbView<'_>, out: &mut [f32]) -> Result<Geometry, String> {
        if out.len() != self.input_len() {
            return Err(format!(
                "input buffer holds {} values, one frame needs {}",
                out.len(),
                self.input_len()
            ));
        }
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
        let ((nw, nh), (px0, py0)) = self.placement(img.width, img.height);
        if (self.resized.width(), self.resized.height()) != (nw, nh) {
            self.resized = Image::new(nw, nh, PixelType::U8x3);
        }
        // Convolution bilinear (widened kernel when shrinking) matches PIL's bilinear
        // resize, with which the reference detections were made.
        let options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear));
        self.resizer
            .resize(&src, &mut self.resized, &options)
            .map_err(|e| format!("resize failed: {e}"))?;

        let (w, h) = (self.spec.width as usize, self.spec.height as usize);
        let plane = w * h;
        // Source channel feeding tensor channel c.
        let src_ch: [usize; 3] = match self.spec.color {
            ColorOrder::Rgb => [0, 1, 2],
            ColorOrder::Bgr => [2, 1, 0],
        };
        let mean = self.spec.mean;
        let inv = self.inv_std;
        let pad = self.spec.pad_value as f32;
        let fill = [0, 1, 2].map(|c| (pad - mean[c]) * inv[c]);
        let full = (nw as usize, nh as usize) == (w, h);
        if !full {
            match self.spec.layout {
                Layout::Nchw => {
                    for (c, f) in fill.iter().enumerate() {
                        out[c * plane..(c + 1) * plane].fill(*f);
                    }
                }
                Layout::Nhwc => {
                    for o in out.chunks_exact_mut(3) {
                        o.copy_from_slice(&fill);
                    }
                }
            }
        }
        let px = self.resized.buffer();
        let (nw, px0, py0) = (nw as usize, px0 as usize, py0 as usize);
        for (y, row) in px.chunks_exact(nw * 3).enumerate() {
            let base = (y + py0) * w + px0;
            match self.spec.layout {
                Layout::Nchw => {
                    let (c0, rest) = out.split_at_mut(plane);
                    let (c1, c2) = rest.split_at_mut(plane);
                    let (c0, c1, c2) = (
                        &mut c0[base..base + nw],
                        &mut c1[base..base + nw],
                        &mut c2[base..base + nw],
                    );
                    for (i, p) in row.chunks_exact(3).enumerate() {
                        c0[i] = (p[src_ch[0]] as f32 - mean[0]) * inv[0];
                        c1[i] = (p[src_ch[1]] as f32 - mean[1]) * inv[1];
                        c2[i] = (p[src_ch[2]] as f32 - mean[2]) * inv[2];
                    }
                }
                Layout::Nhwc => {
                    let dst = &mut out[base * 3..(base + nw) * 3];
                    for (o, p) in dst.chunks_exact_mut(3).zip(row.chunks_exact(3)) {
                        for c in 0..3 {
                            o[c] = (p[src_ch[c]] as f32 - mean[c]) * inv[c];
                        }
                    }
                }
            }
        }
        Ok(Geometry {
            scale: (nw as f32 / img.width as f32, nh as f32 / img.height as f32),
            pad: (px0 as f32, py0 as f32),
            source: (img.width, img.height),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(layout: Layout, color: ColorOrder) -> InputSpec {
        InputSpec {
            name: None,
            layout,
            width: 2,
            height: 1,
            color,
            resize: ResizeMode::Stretch,
            pad_value: 114,
            mean: [10.0, 20.0, 30.0],
            std: [2.0, 4.0, 5.0],
        }
    }

    #[test]
    fn letterbox_centres_and_pads() {
        // A 2×1 frame into a 4×4 input: resized to 4×2, one band of 1 row above and below.
        let mut s = spec(Layout::Nchw, ColorOrder::Rgb);
        s.width = 4;
        s.height = 4;
        s.resize = ResizeMode::Letterbox;
        s.mean = [0.0; 3];
        s.std = [1.0; 3];
        let data = [200u8, 200, 200, 200, 200, 200];
        let mut p = Preprocessor::new(&s);
        let mut out = Vec::new();
        let g = p
            .run(
                RgbView {
                    width: 2,
                    height: 1,
                    data: &data,
                },
                &mut out,
            )
            .unwrap();
        assert_eq!(g.scale, (2.0, 2.0));
        assert_eq!(g.pad, (0.0, 1.0));
        let red = &out[..16];
        assert_eq!(&red[..4], &[114.0; 4]);
        assert_eq!(&red[4..12], &[200.0; 8]);
        assert_eq!(&red[12..], &[114.0; 4]);
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
