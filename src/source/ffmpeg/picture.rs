//! A decoded picture kept for later, its small grey image now, its RGB on demand.
//!
//! In: a decoded software frame. Out: a [`Grey`] work image for the scene model
//! at once (the luma plane, box-filtered to the work size and mapped to the
//! grey levels the RGB converter gives: the luma of the RGB frame the scene
//! model would otherwise have downscaled), and a [`Picture`]: a reference to the decoder's frame (no copy)
//! that [`RgbMaker`] converts to packed RGB only if the frame goes to the
//! detector or into evidence, into a buffer reused across frames.

use std::fmt;
use std::sync::Mutex;

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use ff::format::Pixel;
use ffmpeg_next as ff;
use ffmpeg_next::ffi;

use crate::source::Grey;

/// A reference to a decoded frame's buffers (shared with the decoder, never written).
pub struct Picture {
    frame: *mut ffi::AVFrame,
}

// SAFETY: the frame's buffers are reference-counted with atomic counts and never
// written after decoding; the AVFrame struct itself is owned by this value alone.
unsafe impl Send for Picture {}
// SAFETY: `&Picture` only reads the frame.
unsafe impl Sync for Picture {}

impl Picture {
    /// A new reference to `src`'s buffers; `None` if FFmpeg has no memory.
    pub(super) fn reference(src: &ff::frame::Video) -> Option<Self> {
        // SAFETY: `src` is a valid frame; av_frame_clone returns null on failure.
        let frame = unsafe { ffi::av_frame_clone(src.as_ptr()) };
        (!frame.is_null()).then_some(Self { frame })
    }

    fn size(&self) -> (u32, u32) {
        // SAFETY: `frame` is valid while `self` lives.
        unsafe { ((*self.frame).width as u32, (*self.frame).height as u32) }
    }
}

impl Clone for Picture {
    fn clone(&self) -> Self {
        // SAFETY: as in `reference`; a failed clone is out of memory, which Rust aborts on too.
        let frame = unsafe { ffi::av_frame_clone(self.frame) };
        assert!(!frame.is_null(), "out of memory referencing a frame");
        Self { frame }
    }
}

impl Drop for Picture {
    fn drop(&mut self) {
        // SAFETY: `frame` came from av_frame_clone and is freed once.
        unsafe { ffi::av_frame_free(&mut self.frame) };
    }
}

impl fmt::Debug for Picture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (w, h) = self.size();
        write!(f, "Picture({w}x{h})")
    }
}

/// True for pixel formats whose first plane is 8-bit luma at full size.
pub(super) fn has_luma_plane(fmt: Pixel) -> bool {
    matches!(
        fmt,
        Pixel::YUV420P
            | Pixel::YUVJ420P
            | Pixel::YUV422P
            | Pixel::YUVJ422P
            | Pixel::YUV444P
            | Pixel::YUVJ444P
            | Pixel::YUV440P
            | Pixel::YUVJ440P
            | Pixel::YUV411P
            | Pixel::YUV410P
            | Pixel::NV12
            | Pixel::NV21
            | Pixel::GRAY8
    )
}

/// The grey level the scene model would read, through [`RgbMaker`], for each luma
/// level of a grey pixel of format `fmt`: the RGB converter's own range expansion
/// and rounding (FFmpeg's fast YUV→RGB path is up to two levels off the exact
/// expansion, in a pattern that repeats every 32 levels), so the grey made from the
/// luma plane is the grey the RGB frame would give. Made by converting a picture
/// whose column `x` has luma `x` and neutral chroma; `None` if FFmpeg cannot.
fn rgb_grey_levels(fmt: Pixel) -> Option<[u8; 256]> {
    let mut frame = ff::frame::Video::new(fmt, 256, 4);
    if frame.planes() == 0 || frame.width() != 256 {
        return None;
    }
    let stride = frame.stride(0);
    for (i, px) in frame.data_mut(0).iter_mut().enumerate() {
        *px = (i % stride).min(255) as u8;
    }
    for plane in 1..frame.planes() {
        frame.data_mut(plane).fill(128);
    }
    let picture = Picture::reference(&frame)?;
    let rgb = RgbMaker::new().make(&picture).ok()?;
    let mut levels = [0u8; 256];
    for (y, level) in levels.iter_mut().enumerate() {
        let p = &rgb[y * 3..y * 3 + 3];
        *level = crate::scene::luma(p[0], p[1], p[2]);
    }
    Some(levels)
}

/// The exact grey level of each luma level of `fmt`, for a format the RGB converter
/// cannot show [`rgb_grey_levels`] for: full-range formats as they are, others
/// expanded from 16–235 to 0–255.
fn exact_levels(fmt: Pixel) -> [u8; 256] {
    let full = matches!(
        fmt,
        Pixel::YUVJ420P | Pixel::YUVJ422P | Pixel::YUVJ444P | Pixel::YUVJ440P | Pixel::GRAY8
    );
    let mut levels = [0u8; 256];
    for (y, e) in levels.iter_mut().enumerate() {
        *e = if full {
            y as u8
        } else {
            ((y as f32 - 16.0) * 255.0 / 219.0)
                .round()
                .clamp(0.0, 255.0) as u8
        };
    }
    levels
}

/// Makes the grey work image of a frame from its luma plane; buffers live across frames.
pub(super) struct LumaScaler {
    resizer: Resizer,
    small: Image<'static>,
    /// Luma level → the grey level of the RGB frame, for the format last seen.
    levels: Option<(Pixel, [u8; 256])>,
}

impl LumaScaler {
    pub(super) fn new() -> Self {
        Self {
            resizer: Resizer::new(),
            small: Image::new(1, 1, PixelType::U8),
            levels: None,
        }
    }

    /// The `out_w × out_h` grey image of `frame`, whose format must have a luma plane
    /// ([`has_luma_plane`]).
    pub(super) fn run(
        &mut self,
        frame: &ff::frame::Video,
        (out_w, out_h): (u32, u32),
    ) -> Result<Grey, String> {
        let (w, h) = (frame.width(), frame.height());
        let stride = frame.stride(0);
        let plane = frame.data(0);
        if stride < w as usize || plane.len() < stride * h as usize {
            return Err(format!("luma plane smaller than {w}x{h}"));
        }
        // The plane as an image `stride` wide, cropped to the picture.
        let src = ImageRef::new(
            stride as u32,
            h,
            &plane[..stride * h as usize],
            PixelType::U8,
        )
        .map_err(|e| format!("luma plane of {w}x{h}: {e}"))?;
        if (self.small.width(), self.small.height()) != (out_w, out_h) {
            self.small = Image::new(out_w, out_h, PixelType::U8);
        }
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Box))
            .crop(0.0, 0.0, w as f64, h as f64);
        self.resizer
            .resize(&src, &mut self.small, &options)
            .map_err(|e| format!("luma downscale: {e}"))?;
        let fmt = frame.format();
        let levels = match &self.levels {
            Some((f, levels)) if *f == fmt => levels,
            _ => {
                let levels = rgb_grey_levels(fmt).unwrap_or_else(|| exact_levels(fmt));
                &self.levels.insert((fmt, levels)).1
            }
        };
        let data = self
            .small
            .buffer()
            .iter()
            .map(|&y| levels[y as usize])
            .collect();
        Ok(Grey {
            width: out_w,
            height: out_h,
            data,
        })
    }
}

/// RGB buffers of frames that ended, kept for the next conversions of any camera.
///
/// Every frame the detector or evidence sees needs a full-size RGB buffer; without
/// the pool each would be a fresh allocation (a fresh mapping, with the allocator
/// settings of [`crate::memory`]) and a page fault per 4 KiB of it. A [`Frame`]
/// gives its buffer back here when it is dropped (wherever that is: the camera
/// task, a replaced snapshot, the slot dropping a stale frame).
///
/// [`Frame`]: crate::source::Frame
static SPARE: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

/// Buffers kept at most: those of frames in flight at once come back and go out
/// again, so a few cover many cameras; more would only hold memory.
const SPARE_MAX: usize = 6;

/// Buffers smaller than this are not worth keeping.
const SPARE_MIN_BYTES: usize = 64 * 1024;

/// Keeps `buf` for a later frame, if it is frame-sized and the pool has room.
pub fn give_back(buf: Vec<u8>) {
    if buf.capacity() < SPARE_MIN_BYTES {
        return;
    }
    let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
    if spare.len() < SPARE_MAX {
        spare.push(buf);
    }
}

/// A kept buffer with room for `len` bytes, or a new empty one.
fn take_spare(len: usize) -> Vec<u8> {
    let mut spare = SPARE.lock().unwrap_or_else(|p| p.into_inner());
    // The smallest that fits, so one camera's small frames leave another's large ones.
    let best = spare
        .iter()
        .enumerate()
        .filter(|(_, b)| b.capacity() >= len)
        .min_by_key(|(_, b)| b.capacity())
        .map(|(i, _)| i);
    best.map(|i| spare.swap_remove(i)).unwrap_or_default()
}

/// Converts pictures to packed RGB8, reusing its conversion context; buffers come
/// from the pool frames give theirs back to ([`give_back`]).
pub struct RgbMaker {
    ctx: *mut ffi::SwsContext,
}

// SAFETY: the conversion context is used by one thread at a time (`&mut self`) and
// has no affinity to the thread that made it.
unsafe impl Send for RgbMaker {}

impl RgbMaker {
    pub fn new() -> Self {
        Self {
            ctx: std::ptr::null_mut(),
        }
    }

    /// The packed RGB8 pixels of `picture` (`width * height * 3` bytes).
    pub fn make(&mut self, picture: &Picture) -> Result<Vec<u8>, String> {
        let (w, h) = picture.size();
        if w == 0 || h == 0 {
            return Err("frame has no size".into());
        }
        // SAFETY: `picture.frame` is a valid software frame; sws_getCachedContext
        // frees and replaces the context when the size or format changed.
        let fmt = unsafe { (*picture.frame).format };
        // A decoded frame's format is a valid AVPixelFormat (as ffmpeg-next reads it too).
        let src_fmt = unsafe { std::mem::transmute::<i32, ffi::AVPixelFormat>(fmt) };
        // SAFETY: see above.
        self.ctx = unsafe {
            ffi::sws_getCachedContext(
                self.ctx,
                w as i32,
                h as i32,
                src_fmt,
                w as i32,
                h as i32,
                ffi::AVPixelFormat::AV_PIX_FMT_RGB24,
                ffi::SWS_BILINEAR,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null(),
            )
        };
        if self.ctx.is_null() {
            return Err(format!("no conversion from pixel format {fmt} at {w}x{h}"));
        }
        let len = w as usize * h as usize * 3;
        // Room past the end: SIMD converters may write whole vectors at a row's end.
        let mut buf = take_spare(len + 64);
        buf.clear();
        buf.reserve(len + 64);
        let dst = [
            buf.as_mut_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        ];
        let dst_stride = [(w * 3) as i32, 0, 0, 0];
        // SAFETY: source planes and strides are the frame's own; the destination has
        // `len + 64` bytes of capacity and a stride of one packed row.
        let rows = unsafe {
            ffi::sws_scale(
                self.ctx,
                (*picture.frame).data.as_ptr() as *const *const u8,
                (*picture.frame).linesize.as_ptr(),
                0,
                h as i32,
                dst.as_ptr(),
                dst_stride.as_ptr(),
            )
        };
        if rows != h as i32 {
            give_back(buf);
            return Err(format!("colour conversion wrote {rows} of {h} rows"));
        }
        // SAFETY: sws_scale wrote all `h` rows of `w * 3` bytes.
        unsafe { buf.set_len(len) };
        Ok(buf)
    }
}

impl Default for RgbMaker {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RgbMaker {
    fn drop(&mut self) {
        // SAFETY: null or a context from sws_getCachedContext, freed once.
        unsafe { ffi::sws_freeContext(self.ctx) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grey_levels_are_the_rgb_converters_own() {
        super::super::init();
        let limited = rgb_grey_levels(Pixel::YUV420P).expect("FFmpeg converts yuv420p");
        let full = rgb_grey_levels(Pixel::YUVJ420P).expect("FFmpeg converts yuvj420p");
        let exact = exact_levels(Pixel::YUV420P);
        // Never decreasing, black at 16 and white at 235 for limited range.
        assert!(limited.windows(2).all(|w| w[0] <= w[1]), "{limited:?}");
        assert!(limited[16] <= 1 && limited[235] >= 254, "{limited:?}");
        // Near the exact expansion, and near the identity for full range.
        for y in 0..256 {
            assert!(limited[y].abs_diff(exact[y]) <= 3, "{y}: {}", limited[y]);
            assert!(full[y].abs_diff(y as u8) <= 3, "{y}: {}", full[y]);
            assert_eq!(exact_levels(Pixel::YUVJ420P)[y], y as u8);
        }
    }
}
