//! The loop on a camera's decode thread: open the source, hand frames to the
//! slot, and when the source fails, stalls or ends, decide what comes next.
//!
//! In: [`SourceOptions`] (from `[[camera]]`), a stop token. Out: frames in the
//! [`FrameSlot`], counters and the camera state in [`CameraStats`].
//!
//! Live sources are reopened forever, with exponential backoff and jitter up
//! to `reconnect_max_s`; the daemon never restarts for a camera. A file that
//! cannot be read ends its camera with `error(reason)`; `loop = true` starts
//! it again at its end; `realtime = true` paces it to stream time. Stream time
//! (`Frame::pts`) keeps increasing across reconnects and loops, so rules that
//! measure durations never see time go backwards.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio_util::sync::CancellationToken;

use super::ffmpeg::{FfmpegOptions, FfmpegSource, Watchdog, is_live_url};
use super::images::{ImageSource, is_image_url};
use super::{Frame, FrameSlot, FrameSource, SlotMode, SourceError, mask_credentials};
use crate::backoff::Backoff;
use crate::config::{DecodeMode, HwAccel, RtspTransport};
use crate::monitor::{CameraState, CameraStats};

/// Everything the runner needs to know about one camera's source.
#[derive(Debug, Clone)]
pub struct SourceOptions {
    pub camera: String,
    /// The URL as configured, credentials included: never log it, use [`mask_credentials`].
    pub url: String,
    pub fps: f64,
    pub looping: bool,
    pub realtime: bool,
    pub stall_timeout: Duration,
    /// First wait before reopening a failed live source; doubles up to `reconnect_max`.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    pub hwaccel: HwAccel,
    pub rtsp_transport: RtspTransport,
    /// Frames larger than this (width × height) are refused: the camera goes to `error`.
    pub max_pixels: u64,
    /// Which frames are decoded (`[[camera]] decode`).
    pub decode: DecodeMode,
    /// Decoder threads; 0 sizes them for the stream.
    pub decoder_threads: u32,
    /// Hand frames on as the scene model's grey work image this wide plus the
    /// decoder's picture (RGB made on demand); `None`: as RGB.
    pub grey_width: Option<u32>,
}

impl SourceOptions {
    /// A network or device source (reconnected when it fails).
    pub fn is_live(&self) -> bool {
        is_live_url(&self.url)
    }

    /// Live and real-time sources (images included) run at their own pace: a slow pipeline drops stale
    /// frames. Files read as fast as the pipeline takes them.
    pub fn slot_mode(&self) -> SlotMode {
        if self.is_live() || self.realtime {
            SlotMode::Latest
        } else {
            SlotMode::Block
        }
    }

    fn ffmpeg(&self) -> FfmpegOptions {
        FfmpegOptions {
            fps: self.fps,
            stall_timeout: self.stall_timeout,
            hwaccel: self.hwaccel,
            rtsp_transport: self.rtsp_transport,
            max_pixels: self.max_pixels,
            decode: self.decode,
            threads: self.decoder_threads,
            grey_width: self.grey_width,
        }
    }
}

/// Sleeps up to `d`; returns early (false) when `stop` fires.
fn sleep_unless_stopped(stop: &CancellationToken, d: Duration) -> bool {
    let until = Instant::now() + d;
    while !stop.is_cancelled() {
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(Duration::from_millis(50)));
    }
    false
}

/// Why one connection of the source ended.
enum Ended {
    /// The slot was closed or the camera stopped: the runner is done.
    Stopped,
    /// End of stream, with the number of frames this connection delivered.
    Eof(u64),
    /// A read failed or stalled.
    Failed(SourceError),
}

/// Opens a camera's source: FFmpeg or an image folder, or a stand-in in tests.
pub trait Opener: Send + Sync {
    /// Opens the source of `opts`; `watchdog` interrupts a blocked open or read.
    fn open(
        &self,
        opts: &SourceOptions,
        stats: &Arc<CameraStats>,
        watchdog: &Arc<Watchdog>,
    ) -> Result<Box<dyn FrameSource>, SourceError>;
}

/// The sources streetwatch has: an image folder or glob, else FFmpeg.
#[derive(Debug, Clone, Copy, Default)]
pub struct DefaultOpener;

impl Opener for DefaultOpener {
    fn open(
        &self,
        opts: &SourceOptions,
        stats: &Arc<CameraStats>,
        watchdog: &Arc<Watchdog>,
    ) -> Result<Box<dyn FrameSource>, SourceError> {
        let cam = opts.camera.as_str();
        if is_image_url(&opts.url) {
            ImageSource::open(cam, &opts.url, opts.fps, stats.clone()).map(|s| Box::new(s) as _)
        } else {
            FfmpegSource::open_with(
                cam,
                &opts.url,
                &opts.ffmpeg(),
                stats.clone(),
                watchdog.clone(),
            )
            .map(|s| Box::new(s) as _)
        }
    }
}

/// Closes the slot when dropped, also when the decode thread unwinds from a
/// panic, so the camera task never waits for a frame that cannot come.
struct CloseOnDrop<'a>(&'a FrameSlot);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Runs the camera's source until it stops for good or `stop` fires; closes the slot at the end.
pub fn run(
    opts: &SourceOptions,
    slot: &FrameSlot,
    stats: &Arc<CameraStats>,
    stop: &CancellationToken,
) {
    run_with(&DefaultOpener, opts, slot, stats, stop)
}

/// [`run`], opening the source through `opener`.
pub fn run_with(
    opener: &dyn Opener,
    opts: &SourceOptions,
    slot: &FrameSlot,
    stats: &Arc<CameraStats>,
    stop: &CancellationToken,
) {
    let _close = CloseOnDrop(slot);
    let cam = opts.camera.as_str();
    let live = opts.is_live();
    let url = mask_credentials(&opts.url);
    let mut backoff = Backoff::new(opts.reconnect_min, opts.reconnect_max);
    // Stream time already delivered by earlier connections / loops.
    let mut clock = StreamClock::new();
    // Stopping the camera interrupts a blocked open or read.
    let dog = Watchdog::with_stop(stop.clone());

    while !stop.is_cancelled() && !slot.is_closed() {
        stats.set_state(cam, CameraState::Connecting, "opening");
        let mut source = match opener.open(opts, stats, &dog) {
            Ok(s) => s,
            Err(e) => {
                if stop.is_cancelled() {
                    break;
                }
                if !live || e.is_config() {
                    stats.set_state(cam, CameraState::Error(e.to_string()), "cannot open");
                    break;
                }
                stats.set_state(cam, CameraState::Offline, &e.to_string());
                let d = backoff.next_delay();
                tracing::info!(camera = %cam, retry_in_s = d.as_secs_f64(), "camera retrying");
                CameraStats::add(&stats.reconnects, 1);
                if !sleep_unless_stopped(stop, d) {
                    break;
                }
                continue;
            }
        };
        tracing::info!(camera = %cam, url = %url, fps = opts.fps, "camera source opened");
        clock.begin_connection(source.frame_interval(), live);
        match pump(
            opts,
            source.as_mut(),
            slot,
            stats,
            stop,
            &mut clock,
            &mut backoff,
        ) {
            Ended::Stopped => break,
            Ended::Eof(n) if !live => {
                if opts.looping && n > 0 {
                    tracing::debug!(camera = %cam, "end of file; looping");
                    continue;
                }
                if n == 0 && clock.delivered == 0 {
                    let reason = format!("camera {cam}: {url} holds no decodable frame");
                    stats.set_state(cam, CameraState::Error(reason), "nothing decoded");
                } else {
                    stats.set_state(cam, CameraState::Offline, crate::monitor::END_OF_STREAM);
                }
                break;
            }
            Ended::Failed(e) if !live || e.is_config() => {
                stats.set_state(cam, CameraState::Error(e.to_string()), "read failed");
                break;
            }
            ended => {
                let (state, reason) = match ended {
                    Ended::Failed(e @ SourceError::Stalled { .. }) => {
                        (CameraState::Stalled, e.to_string())
                    }
                    Ended::Failed(e) => (CameraState::Offline, e.to_string()),
                    _ => (CameraState::Offline, "the stream ended".to_string()),
                };
                drop(source);
                stats.set_state(cam, state, &reason);
                if stop.is_cancelled() {
                    break;
                }
                let d = backoff.next_delay();
                tracing::info!(camera = %cam, retry_in_s = d.as_secs_f64(), "camera retrying");
                CameraStats::add(&stats.reconnects, 1);
                if !sleep_unless_stopped(stop, d) {
                    break;
                }
            }
        }
    }
    if stop.is_cancelled() && !matches!(stats.state(), CameraState::Error(_)) {
        stats.set_state(cam, CameraState::Offline, "camera stopped");
    }
}

/// Makes stream time continuous across connections and loops, and paces real-time files.
struct StreamClock {
    /// Added to the pts of the current connection.
    base: Duration,
    /// The last pts handed out (continuous).
    last: Option<Duration>,
    /// When the last frame was handed out.
    last_at: Option<Instant>,
    /// Frames handed out over all connections.
    delivered: u64,
    /// Real-time pacing: wall instant of stream time `base`.
    origin: Option<Instant>,
    /// When this run started (capture time of non-real-time files is this plus pts).
    started: SystemTime,
    /// The current stream's nominal frame interval.
    interval: Duration,
}

impl StreamClock {
    fn new() -> Self {
        Self {
            base: Duration::ZERO,
            last: None,
            last_at: None,
            delivered: 0,
            origin: None,
            started: SystemTime::now(),
            interval: Duration::from_millis(40),
        }
    }

    /// A new connection or loop starts at pts 0: continue after the last frame, plus the
    /// wall-clock gap (a live outage) or one frame interval (a file's loop).
    fn begin_connection(&mut self, interval: Duration, live: bool) {
        self.interval = interval;
        if let (Some(last), Some(at)) = (self.last, self.last_at) {
            self.base = last
                + if live {
                    at.elapsed().max(interval)
                } else {
                    interval
                };
        }
        self.origin = None;
    }

    /// Makes `frame.pts` continuous (and never going back, even when a stream's own
    /// timestamps do, e.g. joined clips) and sets a file's capture time from it.
    fn stamp(&mut self, frame: &mut Frame, live: bool, realtime: bool) {
        if let Some(last) = self.last
            && frame.pts + self.base <= last
        {
            self.base = (last + self.interval).saturating_sub(frame.pts);
            self.origin = None;
        }
        frame.pts += self.base;
        if !live && !realtime {
            frame.captured_at = self.started + frame.pts;
        }
        self.last = Some(frame.pts);
        self.last_at = Some(Instant::now());
        self.delivered += 1;
    }

    /// Real-time files: how long to wait until `pts` (of this connection) is due.
    fn due_in(&mut self, pts: Duration) -> Duration {
        let origin = *self.origin.get_or_insert_with(|| {
            let now = Instant::now();
            now.checked_sub(pts).unwrap_or(now)
        });
        (origin + pts).saturating_duration_since(Instant::now())
    }
}

/// Moves frames from one open source to the slot until it ends, fails, or the camera stops.
fn pump(
    opts: &SourceOptions,
    source: &mut dyn FrameSource,
    slot: &FrameSlot,
    stats: &Arc<CameraStats>,
    stop: &CancellationToken,
    clock: &mut StreamClock,
    backoff: &mut Backoff,
) -> Ended {
    let live = opts.is_live();
    let mut n = 0u64;
    loop {
        if stop.is_cancelled() {
            return Ended::Stopped;
        }
        let mut frame = match source.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) if stop.is_cancelled() => return Ended::Stopped,
            Ok(None) => return Ended::Eof(n),
            Err(_) if stop.is_cancelled() => return Ended::Stopped,
            Err(e) => return Ended::Failed(e),
        };
        if opts.realtime && !live {
            let wait = clock.due_in(frame.pts);
            if !wait.is_zero() && !sleep_unless_stopped(stop, wait) {
                return Ended::Stopped;
            }
            frame.captured_at = SystemTime::now();
        }
        clock.stamp(&mut frame, live, opts.realtime);
        if n == 0 {
            stats.set_state(&opts.camera, CameraState::Online, "frames arriving");
            backoff.reset();
        }
        n += 1;
        match slot.put(frame) {
            Ok(true) => {
                CameraStats::add(&stats.frames_dropped, 1);
                tracing::debug!(
                    name: "frame_dropped",
                    camera = %opts.camera,
                    "sampled frame dropped: the camera had not taken the one before it"
                );
            }
            Ok(false) => {}
            Err(_) => return Ended::Stopped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_time_continues_across_connections() {
        let mut c = StreamClock::new();
        let mut f = Frame {
            width: 1,
            height: 1,
            data: vec![0; 3],
            pts: Duration::from_secs(5),
            captured_at: SystemTime::UNIX_EPOCH,
            index: 0,
            decoded: None,
        };
        c.begin_connection(Duration::from_millis(100), false);
        c.stamp(&mut f, false, false);
        assert_eq!(f.pts, Duration::from_secs(5));
        c.begin_connection(Duration::from_millis(100), false);
        f.pts = Duration::ZERO;
        c.stamp(&mut f, false, false);
        assert_eq!(f.pts, Duration::from_millis(5100));
        f.pts = Duration::from_millis(100);
        c.stamp(&mut f, false, false);
        assert_eq!(f.pts, Duration::from_millis(5200));
        // Timestamps that jump back inside one stream continue too.
        f.pts = Duration::from_millis(20);
        c.stamp(&mut f, false, false);
        assert_eq!(f.pts, Duration::from_millis(5300));
    }
}
