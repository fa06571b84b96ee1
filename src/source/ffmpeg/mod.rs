//! FFmpeg-backed source: files, RTSP (TCP or UDP), HTTP(S)/MJPEG and V4L2 through libavformat.
//!
//! Every blocking FFmpeg call (open, read) is bounded by an interrupt
//! callback ([`Watchdog`]): it returns once no frame has been decoded for the
//! stall timeout, or when the camera is stopped, so a peer that goes silent
//! without closing the connection cannot hang the decode thread.

use std::sync::Arc;
use std::sync::Once;
use std::time::{Duration, Instant, SystemTime};

use ffmpeg_next as ff;
use ffmpeg_next::ffi;

use super::{
    Decoded, Frame, FrameSource, Sampler, SourceError, check_frame_size, mask_credentials,
};
use crate::config::{DecodeMode, HwAccel, RtspTransport};
use crate::monitor::CameraStats;

mod hw;
mod input;
mod picture;
mod skip;
pub mod timestamps;
mod watchdog;

pub use hw::decoder_threads;
use hw::{is_hw_format, open_decoder};
pub use input::forced_demuxer;
use input::{OpenFail, announced_size, open_input};
use picture::{LumaScaler, has_luma_plane};
pub use picture::{Picture, RgbMaker, give_back};
use skip::{Discard, Skipper};
pub use watchdog::Watchdog;

static INIT: Once = Once::new();

fn init() {
    INIT.call_once(|| {
        // Failure here means the libraries are unusable; opening will report it.
        let _ = ff::init();
        ff::util::log::set_level(ff::util::log::Level::Fatal);
    });
}

/// True for URLs whose frames arrive in real time (as opposed to files read on demand).
pub fn is_live_url(url: &str) -> bool {
    [
        "rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://",
    ]
    .iter()
    .any(|p| url.starts_with(p))
        || url.starts_with("/dev/video")
}

/// Added to the stall timeout while connecting (handshakes, waiting for a key frame).
pub const OPEN_GRACE: Duration = Duration::from_secs(5);

/// How to open a source, beyond its URL.
#[derive(Debug, Clone)]
pub struct FfmpegOptions {
    /// Frames per second to hand on (sampled by stream time).
    pub fps: f64,
    /// Live sources: no decoded frame for this long ⇒ reads fail with [`SourceError::Stalled`].
    /// Also bounds opening.
    pub stall_timeout: Duration,
    pub hwaccel: HwAccel,
    pub rtsp_transport: RtspTransport,
    /// Frames larger than this (width × height) are refused before they are decoded.
    pub max_pixels: u64,
    /// Which frames are decoded: all, the ones the sampler may take, or key frames.
    pub decode: DecodeMode,
    /// Decoder threads; 0 sizes them for the stream ([`decoder_threads`]).
    pub threads: u32,
    /// Hand on sampled frames as a grey work image this wide (the scene model's
    /// `work_width`) and the decoder's picture, RGB made on demand; `None`: as RGB.
    pub grey_width: Option<u32>,
}

impl FfmpegOptions {
    pub fn new(fps: f64) -> Self {
        Self {
            fps,
            stall_timeout: Duration::from_secs(10),
            hwaccel: HwAccel::None,
            rtsp_transport: RtspTransport::Tcp,
            max_pixels: crate::config::DEFAULT_MAX_PIXELS.unsigned_abs(),
            decode: DecodeMode::Sampled,
            threads: 0,
            grey_width: None,
        }
    }
}

/// Decodes one camera URL with FFmpeg, yielding sampled RGB frames.
pub struct FfmpegSource {
    camera: String,
    // `input` and `decoder` are declared before `watchdog` so they are dropped first:
    // the format context calls back into the watchdog until it is closed.
    input: ff::format::context::Input,
    decoder: ff::decoder::Video,
    watchdog: Arc<Watchdog>,
    stream_index: usize,
    time_base: f64,
    live: bool,
    stall_timeout: Duration,
    max_pixels: u64,
    sampler: Sampler,
    stats: Arc<CameraStats>,
    decoded: ff::frame::Video,
    /// Software copy of a hardware frame.
    transferred: ff::frame::Video,
    grey_width: Option<u32>,
    luma: LumaScaler,
    rgb: RgbMaker,
    first_pts: Option<i64>,
    opened_at: SystemTime,
    /// The live stream carries no timestamps (MJPEG over HTTP): stream time is the wall
    /// clock since this instant (its first frame).
    wall_clock_since: Option<Option<Instant>>,
    frames_seen: u64,
    eof_sent: bool,
    /// Nominal frame interval, for streams without timestamps.
    fallback_interval: f64,
    /// The hardware decoder in use, if any.
    hwaccel: Option<&'static str>,
    skipper: Skipper,
    /// The decoder's current `skip_frame` level.
    discard: Discard,
}

impl FfmpegSource {
    /// Opens `url` with default options (TCP for RTSP, 10 s stall timeout, software decoding).
    pub fn open(
        camera: &str,
        url: &str,
        fps: f64,
        stats: Arc<CameraStats>,
    ) -> Result<Self, SourceError> {
        Self::open_with(
            camera,
            url,
            &FfmpegOptions::new(fps),
            stats,
            Watchdog::new(),
        )
    }

    /// Opens `url`. `watchdog` bounds opening and reading; stopping it makes them return.
    pub fn open_with(
        camera: &str,
        url: &str,
        options: &FfmpegOptions,
        stats: Arc<CameraStats>,
        watchdog: Arc<Watchdog>,
    ) -> Result<Self, SourceError> {
        init();
        let live = is_live_url(url);
        let open_err = |message: String| SourceError::Open {
            camera: camera.to_string(),
            url: mask_credentials(url),
            message,
        };
        let mut opts = ff::Dictionary::new();
        if url.starts_with("rtsp://") || url.starts_with("rtsps://") {
            let transport = match options.rtsp_transport {
                RtspTransport::Tcp => "tcp",
                RtspTransport::Udp => "udp",
            };
            opts.set("rtsp_transport", transport);
        }
        if live {
            // Socket I/O timeout in microseconds (rtsp, http, tcp): a silent peer fails the read.
            let us = options.stall_timeout.as_micros().max(1).to_string();
            opts.set("timeout", &us);
            // Probe one second of a live stream, not five: reconnects come back sooner, and
            // the decoder learns anything the probe missed from the stream itself.
            opts.set("analyzeduration", "1000000");
            if url.starts_with("http://") || url.starts_with("https://") {
                opts.set("reconnect", "0");
            }
            // Connecting and probing the stream take a few round trips and a key frame.
            watchdog.arm(options.stall_timeout + OPEN_GRACE);
        } else {
            watchdog.disarm();
        }
        let too_large = |(width, height)| SourceError::TooLarge {
            camera: camera.to_string(),
            width,
            height,
            max_pixels: options.max_pixels,
        };
        let input = open_input(url, opts, &watchdog, options.max_pixels).map_err(|e| {
            let e = match e {
                OpenFail::TooLarge(w, h) => return too_large((w, h)),
                OpenFail::Demuxer(why) => return open_err(why),
                OpenFail::Ff(e) => e,
            };
            if watchdog.is_stopped() {
                open_err("stopped".into())
            } else if watchdog.fired() {
                open_err(format!(
                    "no answer within {:.1} s",
                    (options.stall_timeout + OPEN_GRACE).as_secs_f64()
                ))
            } else {
                open_err(e.to_string())
            }
        })?;
        if live {
            // The first frame is due within the stall timeout from now.
            watchdog.arm(options.stall_timeout);
        }
        let stream = input
            .streams()
            .best(ff::media::Type::Video)
            .ok_or_else(|| SourceError::NoVideo {
                camera: camera.to_string(),
                url: mask_credentials(url),
            })?;
        let stream_index = stream.index();
        let tb = stream.time_base();
        let time_base = timestamps::time_base(tb.numerator(), tb.denominator()).unwrap_or(0.0);
        let rate = stream.avg_frame_rate();
        let fallback_interval = if rate.numerator() > 0 && rate.denominator() > 0 {
            rate.denominator() as f64 / rate.numerator() as f64
        } else {
            1.0 / 25.0
        };
        // AVFMT_NOTIMESTAMPS = 0x0080 (libavformat/avformat.h): e.g. mpjpeg. Whatever
        // numbers such a demuxer makes up, a live stream's real clock is the wall clock.
        // SAFETY: `input` owns a valid, opened format context.
        let no_timestamps = live && unsafe { (*(*input.as_ptr()).iformat).flags } & 0x0080 != 0;
        // SAFETY: the stream belongs to `input`, open.
        let (w, h) = unsafe { announced_size(stream.as_ptr()) };
        check_frame_size(camera, w, h, options.max_pixels)?;
        let parameters = stream.parameters();
        let threads = match options.threads {
            0 => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                decoder_threads(w, h, 1.0 / fallback_interval, cores)
            }
            n => n,
        };
        let (decoder, hwaccel) = open_decoder(
            camera,
            &parameters,
            options.hwaccel,
            options.max_pixels,
            threads,
        )
        .map_err(|e| open_err(format!("no decoder: {e}")))?;
        tracing::debug!(camera = %camera, threads, decode = ?options.decode, "decoder opened");
        Ok(Self {
            camera: camera.to_string(),
            input,
            decoder,
            watchdog,
            stream_index,
            time_base,
            live,
            stall_timeout: options.stall_timeout,
            max_pixels: options.max_pixels,
            sampler: Sampler::new(options.fps),
            stats,
            decoded: ff::frame::Video::empty(),
            transferred: ff::frame::Video::empty(),
            grey_width: options.grey_width,
            luma: LumaScaler::new(),
            rgb: RgbMaker::new(),
            first_pts: None,
            opened_at: SystemTime::now(),
            wall_clock_since: no_timestamps.then_some(None),
            frames_seen: 0,
            eof_sent: false,
            fallback_interval,
            hwaccel,
            skipper: Skipper::new(options.decode, timestamps::clamp_secs(1.0 / options.fps)),
            discard: Discard::Nothing,
        })
    }

    /// The hardware decoder in use (`vaapi`, `cuda`, `v4l2m2m`), or `None` for software.
    pub fn hwaccel(&self) -> Option<&'static str> {
        self.hwaccel
    }

    /// Stream time of the frame in `self.decoded`.
    fn frame_pts(&mut self) -> Duration {
        if let Some(since) = self.wall_clock_since.as_mut() {
            return since.get_or_insert_with(Instant::now).elapsed();
        }
        match self.decoded.timestamp().or(self.decoded.pts()) {
            Some(ts) if self.time_base > 0.0 => {
                let first = *self.first_pts.get_or_insert(ts);
                timestamps::since_first(ts, first, self.time_base)
            }
            _ => timestamps::clamp_secs(self.frames_seen as f64 * self.fallback_interval),
        }
    }

    /// Converts `self.decoded` to packed RGB.
    fn convert(&mut self, pts: Duration, index: u64) -> Result<Frame, String> {
        let src = if is_hw_format(self.decoded.format()) {
            // SAFETY: both frames are valid; the transfer allocates the destination.
            let r = unsafe {
                ffi::av_frame_unref(self.transferred.as_mut_ptr());
                ffi::av_hwframe_transfer_data(
                    self.transferred.as_mut_ptr(),
                    self.decoded.as_ptr(),
                    0,
                )
            };
            if r < 0 {
                return Err(format!("copying a hardware frame: {}", ff::Error::from(r)));
            }
            &self.transferred
        } else {
            &self.decoded
        };
        let (fmt, w, h) = (src.format(), src.width(), src.height());
        if w == 0 || h == 0 {
            return Err("frame has no size".into());
        }
        let picture = Picture::reference(src).ok_or("out of memory referencing a frame")?;
        // The scene model's grey image from the luma plane; RGB later, if at all.
        // Formats without an 8-bit luma plane are converted now.
        let (data, decoded) = match self.grey_width.filter(|_| has_luma_plane(fmt)) {
            Some(gw) => {
                let size = crate::scene::work_size(gw, w, h);
                let grey = self.luma.run(src, size)?;
                let picture = Some(picture);
                (Vec::new(), Some(Decoded { grey, picture }))
            }
            None => (self.rgb.make(&picture)?, None),
        };
        let captured_at = if self.live {
            SystemTime::now()
        } else {
            self.opened_at + pts
        };
        Ok(Frame {
            width: w,
            height: h,
            data,
            pts,
            captured_at,
            index,
            decoded,
        })
    }

    /// Refuses a stream whose size changed past the limit: the demuxer's parameters or the
    /// decoder's (a decoder refuses such a picture itself, but may keep the size it saw).
    fn check_size_now(&self) -> Result<(), SourceError> {
        // SAFETY: the stream index is one of `input`'s; the decoder context is open.
        let (pw, ph) =
            unsafe { announced_size(*(*self.input.as_ptr()).streams.add(self.stream_index)) };
        check_frame_size(&self.camera, pw, ph, self.max_pixels)?;
        // SAFETY: reading plain fields of the open decoder context.
        let (w, h, cw, ch) = unsafe {
            let c = &*self.decoder.as_ptr();
            (c.width, c.height, c.coded_width, c.coded_height)
        };
        let dim = |v: i32| v.max(0) as u32;
        check_frame_size(&self.camera, dim(w), dim(h), self.max_pixels)?;
        check_frame_size(&self.camera, dim(cw), dim(ch), self.max_pixels)
    }

    /// Stream time of a raw timestamp of this stream, once the first frame set its origin.
    fn stream_time(&self, ts: i64) -> Option<Duration> {
        if self.wall_clock_since.is_some() || self.time_base <= 0.0 {
            return None;
        }
        let first = self.first_pts?;
        Some(timestamps::since_first(ts, first, self.time_base))
    }

    /// Tells the decoder which frames it may leave undecoded from the next packet on.
    fn set_discard(&mut self, level: Discard) {
        if level == self.discard {
            return;
        }
        let value = match level {
            Discard::Nothing => ffi::AVDiscard::AVDISCARD_DEFAULT,
            Discard::NonRef => ffi::AVDiscard::AVDISCARD_NONREF,
            Discard::NonKey => ffi::AVDiscard::AVDISCARD_NONKEY,
        };
        // SAFETY: the decoder's codec context is open and owned by us; FFmpeg reads
        // `skip_frame` when it decodes the next packet (frame threads copy it then).
        unsafe { (*self.decoder.as_mut_ptr()).skip_frame = value };
        self.discard = level;
    }

    /// The error for a read that failed: a stall if the watchdog fired.
    fn read_error(&self, e: ff::Error) -> SourceError {
        if self.watchdog.fired() && !self.watchdog.is_stopped() {
            SourceError::Stalled {
                camera: self.camera.clone(),
                after: self.stall_timeout,
            }
        } else {
            SourceError::Read {
                camera: self.camera.clone(),
                message: e.to_string(),
            }
        }
    }

    /// Feeds the decoder the next packet of our stream. `false` at end of input.
    fn feed(&mut self) -> Result<bool, SourceError> {
        let mut packet = ff::Packet::empty();
        let mut read_errors = 0u32;
        loop {
            if self.watchdog.is_stopped() {
                return Ok(false);
            }
            match packet.read(&mut self.input) {
                Ok(()) => {
                    if packet.stream() != self.stream_index {
                        continue;
                    }
                    if packet.is_corrupt() {
                        // The demuxer saw damage (e.g. lost TS packets): the decoder conceals it.
                        CameraStats::add(&self.stats.decode_errors, 1);
                    }
                    self.check_size_now()?;
                    let raw = packet.pts();
                    let pts = raw.and_then(|ts| self.stream_time(ts));
                    let level = self.skipper.packet(raw, pts, self.sampler.next_due());
                    self.set_discard(level);
                    if let Err(e) = self.decoder.send_packet(&packet) {
                        self.check_size_now()?;
                        CameraStats::add(&self.stats.decode_errors, 1);
                        tracing::debug!(camera = %self.camera, error = %e, "undecodable packet skipped");
                        continue;
                    }
                    return Ok(true);
                }
                Err(ff::Error::Eof) => {
                    // Some demuxers (RTSP) report an interrupted read as the end of input.
                    if self.live && self.watchdog.fired() && !self.watchdog.is_stopped() {
                        return Err(self.read_error(ff::Error::Eof));
                    }
                    return Ok(false);
                }
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {
                    if self.watchdog.should_interrupt() {
                        return Err(self.read_error(ff::Error::Exit));
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    // Corrupt data inside a file: count it and read on. A live stream's
                    // read error is fatal for this connection (the runner reconnects).
                    if self.live || self.watchdog.is_stopped() {
                        return Err(self.read_error(e));
                    }
                    CameraStats::add(&self.stats.decode_errors, 1);
                    read_errors += 1;
                    if read_errors > 1000 {
                        return Err(SourceError::Read {
                            camera: self.camera.clone(),
                            message: format!("1000 read errors in a row, last: {e}"),
                        });
                    }
                }
            }
        }
    }
}

impl FrameSource for FfmpegSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        let began = Instant::now();
        let frame = self.decode_next();
        let spent = began.elapsed().as_micros() as u64;
        CameraStats::add(&self.stats.decode_us, spent);
        frame
    }

    fn is_live(&self) -> bool {
        self.live
    }

    fn frame_interval(&self) -> Duration {
        timestamps::clamp_secs(self.fallback_interval)
    }
}

impl FfmpegSource {
    /// The next sampled frame: decodes until the sampler takes one.
    fn decode_next(&mut self) -> Result<Option<Frame>, SourceError> {
        loop {
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => {
                    // A frame re-arms the stall timer, unless it already fired: RTSP hands out
                    // the packet it held back when interrupted, which is no sign of life.
                    if self.live && !self.watchdog.fired() {
                        self.watchdog.arm(self.stall_timeout);
                    }
                    let pts = self.frame_pts();
                    tracing::trace!(camera = %self.camera, ?pts, "decoded");
                    // SAFETY: `decoded` holds a frame the decoder just produced.
                    let damaged = unsafe {
                        let f = self.decoded.as_ptr();
                        (*f).decode_error_flags != 0 || (*f).flags & ffi::AV_FRAME_FLAG_CORRUPT != 0
                    };
                    if damaged {
                        CameraStats::add(&self.stats.decode_errors, 1);
                    }
                    // Checked before the frame is copied off a device or converted.
                    check_frame_size(
                        &self.camera,
                        self.decoded.width(),
                        self.decoded.height(),
                        self.max_pixels,
                    )?;
                    let raw = self.decoded.timestamp().or(self.decoded.pts());
                    let index = self.skipper.index(raw, self.frames_seen);
                    self.frames_seen += 1;
                    CameraStats::add(&self.stats.frames_decoded, 1);
                    if !self.sampler.take(pts) {
                        continue;
                    }
                    match self.convert(pts, index) {
                        Ok(frame) => {
                            CameraStats::add(&self.stats.frames_sampled, 1);
                            return Ok(Some(frame));
                        }
                        Err(message) => {
                            CameraStats::add(&self.stats.decode_errors, 1);
                            tracing::debug!(camera = %self.camera, %message, "frame skipped");
                        }
                    }
                }
                Err(ff::Error::Eof) => return Ok(None),
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => {
                    if self.eof_sent {
                        return Ok(None);
                    }
                    if !self.feed()? {
                        self.eof_sent = true;
                        if self.decoder.send_eof().is_err() {
                            return Ok(None);
                        }
                    }
                }
                Err(e) => {
                    // A broken frame (or one over the size limit: refused): skip it.
                    self.check_size_now()?;
                    CameraStats::add(&self.stats.decode_errors, 1);
                    tracing::debug!(camera = %self.camera, error = %e, "decode error");
                    if self.eof_sent {
                        return Ok(None);
                    }
                    if !self.feed()? {
                        self.eof_sent = true;
                        let _ = self.decoder.send_eof();
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_fires_after_its_deadline_and_on_stop() {
        let dog = Watchdog::new();
        assert!(!dog.should_interrupt());
        dog.arm(Duration::from_millis(20));
        assert!(!dog.should_interrupt());
        std::thread::sleep(Duration::from_millis(40));
        assert!(dog.should_interrupt());
        assert!(dog.fired());
        let dog = Watchdog::new();
        dog.stop();
        assert!(dog.should_interrupt());
        assert!(!dog.fired());
    }
}
