//! Opening a video decoder: the hardware decoder `hwaccel` asks for when the
//! box has it (VAAPI, CUDA, V4L2 M2M), else FFmpeg's software decoder, with
//! the reason logged.

use ff::format::Pixel;
use ffmpeg_next as ff;
use ffmpeg_next::ffi;

use crate::config::HwAccel;

/// True for pixel formats whose data lives on a device (frames must be copied to memory).
pub(super) fn is_hw_format(fmt: Pixel) -> bool {
    let raw: ffi::AVPixelFormat = fmt.into();
    // SAFETY: av_pix_fmt_desc_get accepts any value and returns null for unknown ones.
    let desc = unsafe { ffi::av_pix_fmt_desc_get(raw) };
    // AV_PIX_FMT_FLAG_HWACCEL = 1 << 3 (libavutil/pixdesc.h).
    !desc.is_null() && unsafe { (*desc).flags } & (1 << 3) != 0
}

/// The hardware decoders `hwaccel = "auto"` tries, in order.
const AUTO_ORDER: [HwAccel; 3] = [HwAccel::Vaapi, HwAccel::Cuda, HwAccel::V4l2m2m];

fn hw_name(h: HwAccel) -> &'static str {
    match h {
        HwAccel::None => "none",
        HwAccel::Auto => "auto",
        HwAccel::Vaapi => "vaapi",
        HwAccel::Cuda => "cuda",
        HwAccel::V4l2m2m => "v4l2m2m",
    }
}

/// Makes the decoder refuse (before allocating it) any picture over `max_pixels`. Set
/// before opening: frame threads copy the context when it opens.
fn limit_pixels(ctx: &mut ff::codec::context::Context, max_pixels: u64) {
    // SAFETY: a plain field of a valid, not yet opened codec context.
    unsafe { (*ctx.as_mut_ptr()).max_pixels = i64::try_from(max_pixels).unwrap_or(i64::MAX) };
}

/// Decoder threads for a `width × height` stream at `fps` frames per second: one per
/// 1920×1080 at 30 fps of pixel rate, at least one, at most `cores`. One core decodes
/// such a stream in real time with room to spare; more threads per decoder only cost
/// memory (each holds frames of its own) and, with many cameras, fight over the cores.
pub fn decoder_threads(width: u32, height: u32, fps: f64, cores: usize) -> u32 {
    let rate = width as f64 * height as f64 * fps.clamp(1.0, 240.0);
    let n = (rate / (1920.0 * 1080.0 * 30.0)).ceil() as u32;
    n.clamp(1, cores.max(1) as u32)
}

/// Opens a decoder for `parameters`, trying `hwaccel` first. A hardware decoder that
/// cannot be used is logged with its reason and software decoding is used instead.
/// The decoder refuses pictures over `max_pixels`.
pub(super) fn open_decoder(
    camera: &str,
    parameters: &ff::codec::Parameters,
    hwaccel: HwAccel,
    max_pixels: u64,
    threads: u32,
) -> Result<(ff::decoder::Video, Option<&'static str>), ff::Error> {
    let tries: &[HwAccel] = match hwaccel {
        HwAccel::None => &[],
        HwAccel::Auto => &AUTO_ORDER,
        HwAccel::Vaapi => &[HwAccel::Vaapi],
        HwAccel::Cuda => &[HwAccel::Cuda],
        HwAccel::V4l2m2m => &[HwAccel::V4l2m2m],
    };
    let mut reasons = Vec::new();
    for &h in tries {
        match open_hw_decoder(parameters, h, max_pixels) {
            Ok(d) => {
                tracing::info!(camera = %camera, hwaccel = hw_name(h), "hardware decoding");
                return Ok((d, Some(hw_name(h))));
            }
            Err(reason) => reasons.push(format!("{}: {reason}", hw_name(h))),
        }
    }
    if !reasons.is_empty() {
        tracing::warn!(
            camera = %camera,
            hwaccel = hw_name(hwaccel),
            reason = %reasons.join("; "),
            "hardware decoding unavailable; decoding in software"
        );
    }
    let mut ctx = ff::codec::context::Context::from_parameters(parameters.clone())?;
    ctx.set_threading(threading_config(threads));
    limit_pixels(&mut ctx, max_pixels);
    Ok((ctx.decoder().video()?, None))
}

/// Frame threading with `threads` threads (one: no decoder threads of its own).
fn threading_config(threads: u32) -> ff::codec::threading::Config {
    ff::codec::threading::Config {
        kind: ff::codec::threading::Type::Frame,
        count: threads.max(1) as usize,
        ..Default::default()
    }
}

fn open_hw_decoder(
    parameters: &ff::codec::Parameters,
    h: HwAccel,
    max_pixels: u64,
) -> Result<ff::decoder::Video, String> {
    let codec_id = parameters.id();
    if h == HwAccel::V4l2m2m {
        // A separate decoder (`h264_v4l2m2m`, …) talking to a /dev/video* mem2mem device.
        let base = ff::decoder::find(codec_id)
            .ok_or_else(|| format!("no decoder for {codec_id:?}"))?
            .name()
            .to_string();
        let name = format!("{base}_v4l2m2m");
        let codec =
            ff::decoder::find_by_name(&name).ok_or_else(|| format!("FFmpeg has no {name}"))?;
        let mut ctx = ff::codec::context::Context::new_with_codec(codec);
        ctx.set_parameters(parameters.clone())
            .map_err(|e| e.to_string())?;
        limit_pixels(&mut ctx, max_pixels);
        return ctx
            .decoder()
            .open_as(codec)
            .and_then(|o| o.video())
            .map_err(|e| format!("{name}: {e}"));
    }
    let (kind, label) = match h {
        HwAccel::Vaapi => (ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_VAAPI, "VAAPI"),
        HwAccel::Cuda => (ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_CUDA, "CUDA"),
        _ => return Err("not a hardware decoder".into()),
    };
    let codec =
        ff::decoder::find(codec_id).ok_or_else(|| format!("no decoder for {codec_id:?}"))?;
    // The codec must list a device-context configuration for this device type.
    let mut supported = false;
    for i in 0.. {
        // SAFETY: avcodec_get_hw_config returns null past the last entry.
        let cfg = unsafe { ffi::avcodec_get_hw_config(codec.as_ptr(), i) };
        if cfg.is_null() {
            break;
        }
        // AV_CODEC_HW_CONFIG_METHOD_HW_DEVICE_CTX = 0x01 (libavcodec/codec.h).
        if unsafe { (*cfg).device_type == kind && (*cfg).methods & 0x01 != 0 } {
            supported = true;
            break;
        }
    }
    if !supported {
        return Err(format!("{} cannot decode with {label}", codec.name()));
    }
    let mut device: *mut ffi::AVBufferRef = std::ptr::null_mut();
    // SAFETY: out-pointer to a null buffer ref; default device, no options.
    let r = unsafe {
        ffi::av_hwdevice_ctx_create(&mut device, kind, std::ptr::null(), std::ptr::null_mut(), 0)
    };
    if r < 0 {
        return Err(format!("no {label} device: {}", ff::Error::from(r)));
    }
    let mut ctx = ff::codec::context::Context::from_parameters(parameters.clone())
        .map_err(|e| e.to_string())?;
    // SAFETY: the codec context takes its own reference to the device; ours is released.
    unsafe {
        (*ctx.as_mut_ptr()).hw_device_ctx = ffi::av_buffer_ref(device);
        ffi::av_buffer_unref(&mut device);
    }
    limit_pixels(&mut ctx, max_pixels);
    ctx.decoder().video().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoder_threads_follow_the_pixel_rate() {
        // (width, height, fps, cores) → threads
        let table = [
            (768, 576, 10.0, 2, 1),
            (1920, 1080, 30.0, 2, 1),
            (1920, 1080, 60.0, 8, 2),
            (3840, 2160, 30.0, 8, 4),
            (3840, 2160, 30.0, 2, 2),
            (0, 0, 25.0, 4, 1),
        ];
        for (w, h, fps, cores, want) in table {
            assert_eq!(decoder_threads(w, h, fps, cores), want, "{w}x{h}@{fps}");
        }
    }
}
