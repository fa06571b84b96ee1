//! FFmpeg-backed source: files, RTSP (TCP), HTTP and V4L2 through libavformat.

use std::sync::Arc;
use std::sync::Once;
use std::time::{Duration, SystemTime};

use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;

use super::{Frame, FrameSource, Sampler, SourceError, mask_credentials};
use crate::monitor::CameraStats;

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

/// Decodes one camera URL with FFmpeg, yielding sampled RGB frames.
pub struct FfmpegSource {
    camera: String,
    input: ff::format::context::Input,
    decoder: ff::decoder::Video,
    stream_index: usize,
    time_base: f64,
    live: bool,
    sampler: Sampler,
    stats: Arc<CameraStats>,
    scaler: Option<(Pixel, u32, u32, scaling::Context)>,
    decoded: ff::frame::Video,
    rgb: ff::frame::Video,
    first_pts: Option<i64>,
    opened_at: SystemTime,
    frames_seen: u64,
    eof_sent: bool,
    /// Nominal frame interval, for streams without timestamps.
    fallback_interval: f64,
}

impl FfmpegSource {
    pub fn open(
        camera: &str,
        url: &str,
        fps: f64,
        stats: Arc<CameraStats>,
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
            opts.set("rtsp_transport", "tcp");
        }
        if live {
            // Socket I/O timeout in microseconds: a stalled peer fails the read.
            opts.set("timeout", "10000000");
        }
        let input =
            ff::format::input_with_dictionary(&url, opts).map_err(|e| open_err(e.to_string()))?;
        let stream = input
            .streams()
            .best(ff::media::Type::Video)
            .ok_or_else(|| SourceError::NoVideo {
                camera: camera.to_string(),
                url: mask_credentials(url),
            })?;
        let stream_index = stream.index();
        let tb = stream.time_base();
        let time_base = if tb.denominator() != 0 {
            tb.numerator() as f64 / tb.denominator() as f64
        } else {
            0.0
        };
        let rate = stream.avg_frame_rate();
        let fallback_interval = if rate.numerator() > 0 && rate.denominator() > 0 {
            rate.denominator() as f64 / rate.numerator() as f64
        } else {
            1.0 / 25.0
        };
        let ctx = ff::codec::context::Context::from_parameters(stream.parameters())
            .map_err(|e| open_err(format!("codec parameters: {e}")))?;
        let decoder = ctx
            .decoder()
            .video()
            .map_err(|e| open_err(format!("no decoder: {e}")))?;
        Ok(Self {
            camera: camera.to_string(),
            input,
            decoder,
            stream_index,
            time_base,
            live,
            sampler: Sampler::new(fps),
            stats,
            scaler: None,
            decoded: ff::frame::Video::empty(),
            rgb: ff::frame::Video::empty(),
            first_pts: None,
            opened_at: SystemTime::now(),
            frames_seen: 0,
            eof_sent: false,
            fallback_interval,
        })
    }

    /// Stream time of the frame in `self.decoded`.
    fn frame_pts(&mut self) -> Duration {
        let fallback = self.frames_seen as f64 * self.fallback_interval;
        let secs = match self.decoded.timestamp().or(self.decoded.pts()) {
            Some(ts) if self.time_base > 0.0 => {
                let first = *self.first_pts.get_or_insert(ts);
                (ts - first) as f64 * self.time_base
            }
            _ => fallback,
        };
        Duration::from_secs_f64(secs.max(0.0))
    }

    /// Converts `self.decoded` to packed RGB.
    fn convert(&mut self, pts: Duration) -> Result<Frame, String> {
        let (fmt, w, h) = (
            self.decoded.format(),
            self.decoded.width(),
            self.decoded.height(),
        );
        if w == 0 || h == 0 {
            return Err("frame has no size".into());
        }
        let stale =
            !matches!(&self.scaler, Some((f, sw, sh, _)) if *f == fmt && *sw == w && *sh == h);
        if stale {
            let ctx =
                scaling::Context::get(fmt, w, h, Pixel::RGB24, w, h, scaling::Flags::BILINEAR)
                    .map_err(|e| format!("no conversion from {fmt:?} {w}x{h}: {e}"))?;
            self.scaler = Some((fmt, w, h, ctx));
        }
        let (_, _, _, scaler) = self.scaler.as_mut().expect("scaler set above");
        scaler
            .run(&self.decoded, &mut self.rgb)
            .map_err(|e| format!("colour conversion: {e}"))?;
        let stride = self.rgb.stride(0);
        let row = w as usize * 3;
        let plane = self.rgb.data(0);
        let mut data = Vec::with_capacity(row * h as usize);
        for y in 0..h as usize {
            data.extend_from_slice(&plane[y * stride..y * stride + row]);
        }
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
            index: self.frames_seen,
        })
    }

    /// Feeds the decoder the next packet of our stream. `false` at end of input.
    fn feed(&mut self) -> Result<bool, SourceError> {
        let mut packet = ff::Packet::empty();
        loop {
            match packet.read(&mut self.input) {
                Ok(()) => {
                    if packet.stream() != self.stream_index {
                        continue;
                    }
                    if let Err(e) = self.decoder.send_packet(&packet) {
                        CameraStats::add(&self.stats.decode_errors, 1);
                        tracing::debug!(camera = %self.camera, error = %e, "undecodable packet skipped");
                        continue;
                    }
                    return Ok(true);
                }
                Err(ff::Error::Eof) => return Ok(false),
                Err(ff::Error::Other { errno }) if errno == ff::util::error::EAGAIN => continue,
                Err(e) => {
                    // Corrupt data inside a file: count it and read on. A live stream's
                    // read error is fatal for this connection.
                    if self.live {
                        return Err(SourceError::Read {
                            camera: self.camera.clone(),
                            message: e.to_string(),
                        });
                    }
                    CameraStats::add(&self.stats.decode_errors, 1);
                    if self
                        .stats
                        .decode_errors
                        .load(std::sync::atomic::Ordering::Relaxed)
                        > 10_000
                    {
                        return Err(SourceError::Read {
                            camera: self.camera.clone(),
                            message: format!("too many read errors, last: {e}"),
                        });
                    }
                }
            }
        }
    }
}

impl FrameSource for FfmpegSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        loop {
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => {
                    let pts = self.frame_pts();
                    self.frames_seen += 1;
                    CameraStats::add(&self.stats.frames_decoded, 1);
                    if !self.sampler.take(pts) {
                        continue;
                    }
                    match self.convert(pts) {
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
                    // A broken frame: skip it.
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

    fn is_live(&self) -> bool {
        self.live
    }
}
