//! Frame sources: decoding video into RGB frames at the camera's analytic fps.
//!
//! In: a camera URL. Out: [`Frame`]s through a [`FrameSlot`]. [`runner`] drives a
//! camera's source on its decode thread: reconnects, stalls, loops, state.
//!
//! Decoding runs on a blocking thread per camera. Frames are sampled by
//! stream time (PTS) before colour conversion, so frames that will not be
//! analysed cost only their decode, and the decoder skips the ones no other
//! frame needs ([`ffmpeg`]). With `[camera.scene] from_luma`, a sampled frame
//! of the FFmpeg source comes as its small grey work image for the scene
//! model plus a reference to the decoder's picture ([`Decoded`]); its RGB
//! pixels are made only if the frame goes to the detector or into evidence
//! ([`Frame::make_rgb`]). Live sources hand frames over through a
//! latest-frame slot: a slow consumer makes stale frames be replaced and
//! counted, never queued. Files are read as fast as the pipeline takes them,
//! every sampled frame analysed.

pub mod ffmpeg;
pub mod images;
pub mod runner;
mod slot;

use std::time::{Duration, SystemTime};

pub use slot::{FrameSlot, SlotMode};

/// A decoded frame, RGB 8-bit, rows packed (`data.len() == width * height * 3`),
/// or, until [`Frame::make_rgb`], its [`Decoded`] picture with `data` empty.
#[derive(Debug, Clone)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
    /// Stream time of this frame, from the first frame of the stream.
    pub pts: Duration,
    /// Wall-clock time the frame was captured (live) or the stream start plus `pts` (files).
    pub captured_at: SystemTime,
    /// Frame index in the stream (counts frames that were not sampled or not decoded too).
    pub index: u64,
    /// The decoder's grey work image and, while `data` is empty, its picture.
    pub decoded: Option<Decoded>,
}

/// A small grey image (one byte per pixel, rows packed, full range).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grey {
    pub width: u32,
    pub height: u32,
    pub data: Vec<u8>,
}

/// What a decoder hands on besides RGB: the scene model's work image, and the
/// picture to make RGB from if the frame needs it.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub grey: Grey,
    pub picture: Option<ffmpeg::Picture>,
}

impl Drop for Frame {
    /// The frame's RGB buffer goes back to the pool the decoders take theirs from.
    fn drop(&mut self) {
        ffmpeg::give_back(std::mem::take(&mut self.data));
    }
}

impl Frame {
    /// Whether `data` holds the frame's RGB pixels.
    pub fn has_rgb(&self) -> bool {
        self.data.len() == self.width as usize * self.height as usize * 3
    }

    /// The scene model's work image, if the decoder made it.
    pub fn grey(&self) -> Option<&Grey> {
        self.decoded.as_ref().map(|d| &d.grey)
    }

    /// Fills `data` with the RGB pixels from the decoder's picture (nothing to do if
    /// they are there) and lets go of the picture.
    pub fn make_rgb(&mut self, maker: &mut ffmpeg::RgbMaker) -> Result<(), String> {
        if self.has_rgb() {
            return Ok(());
        }
        let picture = self
            .decoded
            .as_mut()
            .and_then(|d| d.picture.take())
            .ok_or("the frame has neither RGB pixels nor a picture")?;
        self.data = maker.make(&picture)?;
        Ok(())
    }

    /// Lets go of the decoder's picture (its buffer goes back to the decoder).
    pub fn release_picture(&mut self) {
        if let Some(d) = self.decoded.as_mut() {
            d.picture = None;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("camera {camera}: cannot open {url}: {message}")]
    Open {
        camera: String,
        url: String,
        message: String,
    },
    #[error("camera {camera}: {url} has no video stream")]
    NoVideo { camera: String, url: String },
    #[error("camera {camera}: read error: {message}")]
    Read { camera: String, message: String },
    #[error("camera {camera}: stalled: no frame for {:.1} s", after.as_secs_f64())]
    Stalled { camera: String, after: Duration },
    #[error(
        "camera {camera}: the stream announces {width}x{height} frames ({} pixels), more than [[camera]] max_pixels = {max_pixels}; refused",
        u64::from(*width) * u64::from(*height)
    )]
    TooLarge {
        camera: String,
        width: u32,
        height: u32,
        max_pixels: u64,
    },
}

impl SourceError {
    /// The source can never work with this camera's configuration (reconnecting will
    /// not help): the camera goes to `error`.
    pub fn is_config(&self) -> bool {
        matches!(self, SourceError::TooLarge { .. })
    }
}

/// Refuses a frame size over `max_pixels` (width × height) before anything of that size
/// is allocated. A size not known yet (0) passes.
pub fn check_frame_size(
    camera: &str,
    width: u32,
    height: u32,
    max_pixels: u64,
) -> Result<(), SourceError> {
    if u64::from(width) * u64::from(height) > max_pixels {
        return Err(SourceError::TooLarge {
            camera: camera.to_string(),
            width,
            height,
            max_pixels,
        });
    }
    Ok(())
}

/// Something that yields frames. `Ok(None)` means the stream ended.
///
/// Sources are created and used on their camera's decode thread (FFmpeg
/// contexts are not `Send`).
pub trait FrameSource {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError>;
    /// Whether the source is live (frames arrive at their own pace and may be dropped).
    fn is_live(&self) -> bool;
    /// The nominal time between two frames of the stream.
    fn frame_interval(&self) -> Duration {
        Duration::from_millis(40)
    }
}

/// Chooses which frames to analyse: at most `fps` per second of stream time.
#[derive(Debug, Clone)]
pub struct Sampler {
    interval: Duration,
    next_due: Option<Duration>,
}

impl Sampler {
    pub fn new(fps: f64) -> Self {
        Self {
            interval: Duration::from_secs_f64(1.0 / fps),
            next_due: None,
        }
    }

    /// The stream time from which the next frame will be taken (`None`: the next one is).
    pub fn next_due(&self) -> Option<Duration> {
        self.next_due
    }

    /// True if the frame at `pts` should be analysed.
    pub fn take(&mut self, pts: Duration) -> bool {
        match self.next_due {
            Some(due) if pts < due => {
                // A stream that jumps backwards (reconnect, loop) starts over.
                if due.saturating_sub(pts) > self.interval * 4 {
                    self.next_due = Some(pts + self.interval);
                    return true;
                }
                false
            }
            Some(due) => {
                // Keep the cadence, but do not try to catch up after a gap.
                let next = due + self.interval;
                self.next_due = Some(if next <= pts {
                    pts + self.interval
                } else {
                    next
                });
                true
            }
            None => {
                self.next_due = Some(pts + self.interval);
                true
            }
        }
    }
}

/// Query parameters whose value is a secret (compared without case).
const SECRET_PARAMS: [&str; 8] = [
    "password", "passwd", "pwd", "pass", "secret", "token", "auth", "api_key",
];

/// Hides the secrets in a camera URL so it can be logged: the password in
/// `scheme://user:pass@host/…` (also one holding `/` or `@`, as cameras accept) and
/// the values of `password=`, `pwd=` and the like in the query.
pub fn mask_credentials(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let mut out = mask_userinfo(head);
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some((k, v))
                    if !v.is_empty() && SECRET_PARAMS.iter().any(|s| k.eq_ignore_ascii_case(s)) =>
                {
                    format!("{k}=***")
                }
                _ => p.to_string(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

/// `scheme://user:***@rest`: the user info ends at the last `@` (a password may hold
/// `/` or `@`); without a `:` before it there is no password.
fn mask_userinfo(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    match rest.rfind('@') {
        Some(at) if rest[..at].contains(':') => {
            let user = rest[..at].split(':').next().unwrap_or("");
            format!("{}://{}:***@{}", &url[..scheme_end], user, &rest[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn sampler_takes_fps_frames_per_second_of_stream_time() {
        let mut s = Sampler::new(5.0);
        // 25 fps stream for 2 s → 10 frames at 5 fps.
        let taken = (0..50).filter(|i| s.take(ms(i * 40))).count();
        assert_eq!(taken, 10);
    }

    #[test]
    fn sampler_does_not_burst_after_a_gap() {
        let mut s = Sampler::new(5.0);
        assert!(s.take(ms(0)));
        assert!(s.take(ms(5000)));
        assert!(!s.take(ms(5040)));
        assert!(s.take(ms(5200)));
    }

    #[test]
    fn sampler_restarts_when_stream_time_goes_back() {
        let mut s = Sampler::new(5.0);
        assert!(s.take(ms(10_000)));
        assert!(s.take(ms(0)));
    }

    #[test]
    fn frames_over_max_pixels_are_refused_naming_camera_size_and_key() {
        let uhd = 3840 * 2160;
        for (w, h, max, ok) in [
            (3840, 2160, uhd, true),
            (3841, 2160, uhd, false),
            (0, 0, uhd, true),
            (u32::MAX, u32::MAX, u64::MAX, true),
            (u32::MAX, 2, u64::from(u32::MAX), false),
            (768, 576, 640 * 480, false),
        ] {
            let r = check_frame_size("gate", w, h, max);
            assert_eq!(r.is_ok(), ok, "{w}x{h} / {max}");
            if let Err(e) = r {
                assert!(e.is_config());
                let m = e.to_string();
                for part in ["camera gate", &format!("{w}x{h}"), "max_pixels"] {
                    assert!(m.contains(part), "{m}");
                }
            }
        }
    }

    #[test]
    fn credentials_are_masked() {
        assert_eq!(
            mask_credentials("rtsp://admin:secret@10.0.0.5:554/stream1"),
            "rtsp://admin:***@10.0.0.5:554/stream1"
        );
        assert_eq!(mask_credentials("rtsp://cam/x"), "rtsp://cam/x");
        assert_eq!(mask_credentials("/data/a@b.mp4"), "/data/a@b.mp4");
        for (url, masked) in [
            (
                "rtsp://admin:pa/ss@10.0.0.5/live",
                "rtsp://admin:***@10.0.0.5/live",
            ),
            ("rtsp://admin:p@ss@cam:554/1", "rtsp://admin:***@cam:554/1"),
            (
                "http://cam/video.cgi?user=admin&password=s3cret&res=hd",
                "http://cam/video.cgi?user=admin&password=***&res=hd",
            ),
            (
                "http://cam/mjpg?usr=admin&PWD=s3cret",
                "http://cam/mjpg?usr=admin&PWD=***",
            ),
            (
                "rtsp://u:p@cam/x?token=abc&channel=1",
                "rtsp://u:***@cam/x?token=***&channel=1",
            ),
            ("rtsp://user@cam/x", "rtsp://user@cam/x"),
            ("http://cam/x?a=1&b", "http://cam/x?a=1&b"),
        ] {
            assert_eq!(mask_credentials(url), masked, "{url}");
        }
    }

    proptest::proptest! {
        #[test]
        fn no_password_survives_masking(
            user in "[a-z]{1,8}",
            pass in "[A-Z][A-Za-z0-9/@:#%!]{3,15}",
            host in "[a-z0-9.]{1,12}",
            form in 0..4usize,
        ) {
            let url = match form {
                0 => format!("rtsp://{user}:{pass}@{host}:554/stream"),
                1 => format!("http://{host}/cgi?user={user}&password={pass}"),
                2 => format!("http://{host}/cgi?pwd={pass}&user={user}"),
                _ => format!("rtsp://{user}:{pass}@{host}/s?channel=1&passwd={pass}"),
            };
            let masked = mask_credentials(&url);
            proptest::prop_assert!(!masked.contains(&pass), "{url} -> {masked}");
        }

        #[test]
        fn masking_any_text_never_panics(url in ".{0,80}") {
            let _ = mask_credentials(&url);
        }
    }
}
