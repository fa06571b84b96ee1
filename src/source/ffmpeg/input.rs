//! Opening an FFmpeg input: the demuxer to force, the open and the stream probe,
//! both bounded by the [`Watchdog`] and by the camera's `max_pixels`.
//!
//! In: a URL, demuxer options, the watchdog, the pixel limit. Out: an open
//! format context, or why it could not be opened.

use std::ffi::{CString, c_void};
use std::sync::Arc;

use ffmpeg_next as ff;
use ffmpeg_next::ffi;

use super::watchdog::{Watchdog, interrupt_cb};

/// FFmpeg's device library, loaded the first time a `/dev/video*` camera opens.
///
/// The binary does not link `libavdevice`: it pulls in `libavfilter` and some two
/// hundred libraries behind it (speech synthesis, SVG, tracker music, audio
/// servers), about 37 MB of resident memory in every process, for a demuxer
/// only a USB camera needs. The library is the one that goes with the linked
/// `libavformat` (the same major version in every FFmpeg release), and it stays
/// loaded for the life of the process.
fn load_devices() -> Result<(), String> {
    static LOADED: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    LOADED
        .get_or_init(|| {
            // SAFETY: a version query with no preconditions.
            let major = unsafe { ffi::avformat_version() } >> 16;
            let name = format!("libavdevice.so.{major}");
            // SAFETY: libavdevice's initialisers only register with the libavformat
            // this process already has loaded.
            let lib = unsafe { libloading::Library::new(&name) }.map_err(|e| {
                format!("V4L2 capture needs FFmpeg's device library {name} (Debian: libavdevice{major}): {e}")
            })?;
            // SAFETY: `avdevice_register_all` takes nothing and returns nothing in every
            // FFmpeg since 4.0.
            unsafe {
                let register = lib
                    .get::<unsafe extern "C" fn()>(b"avdevice_register_all")
                    .map_err(|e| format!("{name} is not FFmpeg's device library: {e}"))?;
                register();
            }
            // Its demuxers are registered in libavformat: it must never be unloaded.
            std::mem::forget(lib);
            Ok(())
        })
        .clone()
}

/// The demuxer to force for `url`: V4L2 for `/dev/video*` (a device is not probed
/// like a file), none otherwise.
fn input_format(url: &str) -> Result<*const ffi::AVInputFormat, String> {
    if !url.starts_with("/dev/video") {
        return Ok(std::ptr::null());
    }
    load_devices()?;
    // SAFETY: the lookup returns a static or null.
    let found = unsafe { ffi::av_find_input_format(c"video4linux2".as_ptr()) };
    if found.is_null() {
        return Err("FFmpeg's device library has no video4linux2 demuxer".into());
    }
    Ok(found)
}

/// Name of the demuxer forced for `url` (`video4linux2,v4l2` for `/dev/video*`), if any.
pub fn forced_demuxer(url: &str) -> Option<String> {
    let f = input_format(url).ok()?;
    // SAFETY: a non-null AVInputFormat is static and its name a static C string.
    (!f.is_null()).then(|| unsafe {
        std::ffi::CStr::from_ptr((*f).name)
            .to_string_lossy()
            .into_owned()
    })
}

/// Why [`open_input`] failed.
pub(super) enum OpenFail {
    Ff(ff::Error),
    /// The container announces a video stream of this size, over the limit.
    TooLarge(u32, u32),
    /// The demuxer `url` needs cannot be had (V4L2 without FFmpeg's device library).
    Demuxer(String),
}

impl From<ff::Error> for OpenFail {
    fn from(e: ff::Error) -> Self {
        OpenFail::Ff(e)
    }
}

/// The size a stream's codec parameters announce (0 when not known).
///
/// # Safety
/// `st` must point to a valid stream of an open format context.
pub(super) unsafe fn announced_size(st: *const ffi::AVStream) -> (u32, u32) {
    // SAFETY: per the contract, `st` and its codec parameters are valid.
    let par = unsafe { &*(*st).codecpar };
    (par.width.max(0) as u32, par.height.max(0) as u32)
}

/// `avformat_open_input` + `avformat_find_stream_info` with an interrupt callback and options.
/// A video stream whose container announces more than `max_pixels` is refused before the
/// stream info is probed, and probing decodes no picture over `max_pixels`.
pub(super) fn open_input(
    url: &str,
    opts: ff::Dictionary,
    dog: &Arc<Watchdog>,
    max_pixels: u64,
) -> Result<ff::format::context::Input, OpenFail> {
    let path = CString::new(url).map_err(|_| ff::Error::InvalidData)?;
    let format = input_format(url).map_err(OpenFail::Demuxer)?;
    // SAFETY: the same sequence as `ffmpeg_next::format::input_with_dictionary`, plus an
    // interrupt callback whose opaque pointer outlives the context (see `FfmpegSource`).
    unsafe {
        let mut ps = ffi::avformat_alloc_context();
        if ps.is_null() {
            return Err(ff::Error::Other {
                errno: ff::util::error::ENOMEM,
            }
            .into());
        }
        (*ps).interrupt_callback = ffi::AVIOInterruptCB {
            callback: Some(interrupt_cb),
            opaque: Arc::as_ptr(dog) as *mut c_void,
        };
        let mut dict = opts.disown();
        let res = ffi::avformat_open_input(&mut ps, path.as_ptr(), format, &mut dict);
        ff::Dictionary::own(dict);
        if res < 0 {
            // avformat_open_input frees the context on failure.
            return Err(ff::Error::from(res).into());
        }
        let n = (*ps).nb_streams as usize;
        for i in 0..n {
            let st = *(*ps).streams.add(i);
            if (*(*st).codecpar).codec_type != ffi::AVMediaType::AVMEDIA_TYPE_VIDEO {
                continue;
            }
            let (w, h) = announced_size(st);
            if u64::from(w) * u64::from(h) > max_pixels {
                ffi::avformat_close_input(&mut ps);
                return Err(OpenFail::TooLarge(w, h));
            }
        }
        // Probing may decode a picture: each stream's probe decoder gets the limit too.
        let limit =
            CString::new(max_pixels.min(i64::MAX as u64).to_string()).expect("digits hold no NUL");
        let mut probe_opts: Vec<*mut ffi::AVDictionary> = vec![std::ptr::null_mut(); n];
        for d in probe_opts.iter_mut() {
            ffi::av_dict_set(d, c"max_pixels".as_ptr(), limit.as_ptr(), 0);
        }
        let res = ffi::avformat_find_stream_info(
            ps,
            if n == 0 {
                std::ptr::null_mut()
            } else {
                probe_opts.as_mut_ptr()
            },
        );
        for d in probe_opts.iter_mut() {
            ffi::av_dict_free(d);
        }
        if res < 0 {
            ffi::avformat_close_input(&mut ps);
            return Err(ff::Error::from(res).into());
        }
        Ok(ff::format::context::Input::wrap(ps))
    }
}
