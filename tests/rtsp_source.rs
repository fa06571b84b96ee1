//! Live sources against a real RTSP peer (GStreamer's RTSP server, see
//! `tests/support/rtsp_server.py`) and a real HTTP MJPEG peer
//! (`tests/support/mjpeg_server.py`): frames arrive at the configured fps, a
//! killed or frozen server is noticed within the stall timeout, a restarted
//! one is picked up again within the backoff cap, and a dead camera does not
//! slow a live one.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{RtspMedia, RtspServer};
use streetwatch::config::RtspTransport;
use streetwatch::monitor::{CameraState, CameraStats};
use streetwatch::source::ffmpeg::FfmpegSource;
use streetwatch::source::runner::{self, SourceOptions};
use streetwatch::source::{Frame, FrameSlot, FrameSource};
use tokio_util::sync::CancellationToken;

const PATTERN: RtspMedia = RtspMedia::TestPattern {
    fps: 10,
    width: 320,
    height: 240,
};

fn options(camera: &str, url: &str, fps: f64) -> SourceOptions {
    common::source_options(camera, url, fps)
}

/// A source runner on its own thread, and a consumer that takes frames as they come.
struct Camera {
    slot: FrameSlot,
    stats: Arc<CameraStats>,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
    rt: tokio::runtime::Runtime,
}

impl Camera {
    fn start(opts: SourceOptions) -> Camera {
        common::init_logs();
        let slot = FrameSlot::new(opts.slot_mode());
        let stats = Arc::new(CameraStats::default());
        let stop = CancellationToken::new();
        let thread = {
            let (slot, stats, stop) = (slot.clone(), stats.clone(), stop.clone());
            std::thread::spawn(move || runner::run(&opts, &slot, &stats, &stop))
        };
        Camera {
            slot,
            stats,
            stop,
            thread: Some(thread),
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap(),
        }
    }

    /// The next frame, if one comes within `timeout`.
    fn frame(&self, timeout: Duration) -> Option<Frame> {
        self.rt
            .block_on(async { tokio::time::timeout(timeout, self.slot.take()).await })
            .ok()
            .flatten()
    }

    /// Takes every frame for `d`; returns them.
    fn frames_for(&self, d: Duration) -> Vec<Frame> {
        let until = Instant::now() + d;
        let mut out = Vec::new();
        while let Some(left) = until.checked_duration_since(Instant::now()) {
            if let Some(f) = self.frame(left) {
                out.push(f);
            }
        }
        out
    }

    /// Waits until the state satisfies `pred`; how long it took.
    fn wait_state(&self, timeout: Duration, pred: impl Fn(&CameraState) -> bool) -> Duration {
        let t0 = Instant::now();
        while !pred(&self.stats.state()) {
            assert!(
                t0.elapsed() < timeout,
                "state still {} after {timeout:?}",
                self.stats.state()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        t0.elapsed()
    }

    fn stop(&mut self) {
        self.stop.cancel();
        self.slot.close();
        if let Some(t) = self.thread.take() {
            let t0 = Instant::now();
            t.join().unwrap();
            assert!(
                t0.elapsed() < Duration::from_secs(3),
                "the runner took {:?} to stop",
                t0.elapsed()
            );
        }
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.stop.cancel();
        self.slot.close();
    }
}

#[test]
fn ffmpeg_source_decodes_the_rtsp_test_pattern() {
    let server = RtspServer::start(PATTERN);
    let stats = Arc::new(CameraStats::default());
    let mut src = FfmpegSource::open("rtsp-pattern", &server.url(), 10.0, stats.clone())
        .expect("opening the RTSP stream");
    assert!(src.is_live());
    let started = Instant::now();
    let mut frames = Vec::new();
    while frames.len() < 10 {
        assert!(started.elapsed() < Duration::from_secs(10), "too slow");
        let f = src.next_frame().unwrap().expect("the live stream goes on");
        frames.push(f);
    }
    assert!(frames.iter().all(|f| f.width == 320 && f.height == 240));
    assert!(frames.iter().all(|f| f.data.len() == 320 * 240 * 3));
    // Stream time advances one frame interval (100 ms) per frame.
    let span = frames[9].pts - frames[0].pts;
    assert!(
        (Duration::from_millis(800)..=Duration::from_millis(1000)).contains(&span),
        "{span:?}"
    );
}

#[test]
fn rtsp_file_mount_serves_the_sample_video() {
    let server = RtspServer::start(RtspMedia::File(common::media("vtest.mp4")));
    let mut cam = Camera::start(options("campus", &server.url(), 10.0));
    cam.wait_state(Duration::from_secs(15), |s| *s == CameraState::Online);
    let f = cam.frame(Duration::from_secs(5)).expect("a frame");
    assert_eq!((f.width, f.height), (768, 576));
    assert_eq!(f.data.len(), 768 * 576 * 3);
    cam.stop();
}

#[test]
fn rtsp_over_udp_works_too() {
    let server = RtspServer::start(PATTERN);
    let mut opts = options("udp", &server.url(), 5.0);
    opts.rtsp_transport = RtspTransport::Udp;
    let mut cam = Camera::start(opts);
    cam.wait_state(Duration::from_secs(10), |s| *s == CameraState::Online);
    let frames = cam.frames_for(Duration::from_secs(2));
    assert!(frames.len() >= 8, "{} frames in 2 s over UDP", frames.len());
    cam.stop();
}

#[test]
fn http_mjpeg_camera_delivers_its_configured_fps() {
    // MJPEG over HTTP carries no timestamps: stream time is the wall clock.
    let server = common::MjpegServer::start(10);
    let mut cam = Camera::start(options("mjpeg", &server.url(), 5.0));
    cam.wait_state(Duration::from_secs(10), |s| *s == CameraState::Online);
    cam.frames_for(Duration::from_secs(1));
    let frames = cam.frames_for(Duration::from_secs(3));
    assert!(
        (13..=17).contains(&frames.len()),
        "{} frames in 3 s",
        frames.len()
    );
    assert!(frames.iter().all(|f| (f.width, f.height) == (320, 240)));
    cam.stop();
}

#[test]
fn rtsp_camera_delivers_its_configured_fps() {
    let server = RtspServer::start(PATTERN);
    let mut cam = Camera::start(options("pattern", &server.url(), 5.0));
    cam.wait_state(Duration::from_secs(10), |s| *s == CameraState::Online);
    // Packets read while probing the stream are decoded in a burst: let it pass.
    cam.frames_for(Duration::from_secs(1));
    let frames = cam.frames_for(Duration::from_secs(3));
    // 5 fps sampled from a 10 fps stream, for 3 s.
    assert!(
        (13..=17).contains(&frames.len()),
        "{} frames in 3 s",
        frames.len()
    );
    for w in frames.windows(2) {
        let step = w[1].pts - w[0].pts;
        assert!(
            (Duration::from_millis(150)..=Duration::from_millis(250)).contains(&step),
            "sampled frames {step:?} apart"
        );
    }
    let decoded = cam
        .stats
        .frames_decoded
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(decoded >= 2 * frames.len() as u64 - 2, "{decoded} decoded");
    // Capture time is the wall clock at decode: a frame is fresh when it is taken.
    let f = cam.frame(Duration::from_secs(2)).unwrap();
    let age = std::time::SystemTime::now()
        .duration_since(f.captured_at)
        .unwrap();
    assert!(age < Duration::from_millis(300), "frame is {age:?} old");
    cam.stop();
}

#[test]
fn killed_server_is_noticed_and_a_restarted_one_picked_up_without_restart() {
    let mut server = RtspServer::start(PATTERN);
    let opts = options("flaky", &server.url(), 5.0);
    let (stall, cap) = (opts.stall_timeout, opts.reconnect_max);
    let mut cam = Camera::start(opts);
    cam.wait_state(Duration::from_secs(10), |s| *s == CameraState::Online);
    let before = cam.frames_for(Duration::from_secs(1));
    assert!(!before.is_empty());

    server.kill();
    let noticed = cam.wait_state(stall + Duration::from_secs(1), |s| {
        matches!(
            s,
            CameraState::Offline | CameraState::Stalled | CameraState::Connecting
        ) && *s != CameraState::Online
    });
    eprintln!("server killed: camera left `online` after {noticed:?}");
    // While the server is down, attempts keep failing and are counted.
    std::thread::sleep(Duration::from_secs(1));
    assert_ne!(cam.stats.state(), CameraState::Online);
    let reconnects = cam
        .stats
        .reconnects
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(reconnects >= 1, "{reconnects}");

    // A frame decoded before the kill may still wait in the slot: not the one we want.
    let _ = cam.frame(Duration::from_millis(10));
    server.restart();
    let t0 = Instant::now();
    let f = cam
        // The next attempt comes within the cap; opening takes about a second more.
        .frame(cap + Duration::from_secs(2))
        .expect("frames flow again after the restart, within the backoff cap + 2 s");
    let back = t0.elapsed();
    eprintln!("server restarted: first frame after {back:?} (cap {cap:?})");
    assert_eq!(cam.stats.state(), CameraState::Online);
    // Stream time kept going forward across the reconnect.
    assert!(f.pts > before.last().unwrap().pts, "{:?}", f.pts);
    let after = cam.frames_for(Duration::from_secs(2));
    assert!(
        after.len() >= 8,
        "{} frames in 2 s after the restart",
        after.len()
    );
    cam.stop();
}

#[test]
fn frozen_server_is_detected_as_a_stall_within_the_timeout() {
    let server = RtspServer::start(PATTERN);
    let opts = options("frozen", &server.url(), 5.0);
    let stall = opts.stall_timeout;
    let mut cam = Camera::start(opts);
    cam.wait_state(Duration::from_secs(10), |s| *s == CameraState::Online);
    // The connection stays open, nothing arrives: only the stall timeout can tell.
    server.freeze();
    tracing::info!("frozen");
    let t = cam.wait_state(stall + Duration::from_secs(2), |s| {
        *s == CameraState::Stalled
    });
    eprintln!("frozen server: `stalled` after {t:?} (timeout {stall:?})");
    assert!(
        t >= stall - Duration::from_millis(300),
        "stalled too early: {t:?}"
    );
    server.thaw();
    assert!(
        cam.frame(Duration::from_secs(10)).is_some(),
        "frames flow again once the server answers"
    );
    cam.stop();
}

#[test]
fn dead_cameras_do_not_slow_a_live_one() {
    let server = RtspServer::start(PATTERN);
    // A port nobody listens on, and a peer that accepts connections and never answers.
    let refused = format!("rtsp://127.0.0.1:{}/cam", common::free_port());
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!(
        "rtsp://admin:secret@127.0.0.1:{}/cam",
        silent.local_addr().unwrap().port()
    );
    let _held = std::thread::spawn(move || {
        let conns: Vec<_> = silent.incoming().take(20).collect();
        std::thread::sleep(Duration::from_secs(30));
        drop(conns);
    });
    let mut dead1 = Camera::start(options("refused", &refused, 5.0));
    let mut dead2 = Camera::start(options("silent", &silent_url, 5.0));
    let mut live = Camera::start(options("live", &server.url(), 5.0));
    live.wait_state(Duration::from_secs(10), |s| *s == CameraState::Online);
    live.frames_for(Duration::from_secs(1));
    let frames = live.frames_for(Duration::from_secs(4));
    assert!(
        (18..=22).contains(&frames.len()),
        "live camera: {} frames in 4 s",
        frames.len()
    );
    // The whole time: no gap between two frames longer than two frame intervals.
    for w in frames.windows(2) {
        let gap = w[1].captured_at.duration_since(w[0].captured_at).unwrap();
        assert!(
            gap < Duration::from_millis(400),
            "a {gap:?} gap in the live camera"
        );
    }
    for dead in [&dead1, &dead2] {
        assert!(
            matches!(
                dead.stats.state(),
                CameraState::Offline | CameraState::Connecting
            ),
            "{}",
            dead.stats.state()
        );
        assert!(
            dead.stats
                .reconnects
                .load(std::sync::atomic::Ordering::Relaxed)
                >= 1
        );
    }
    live.stop();
    // Stopping is prompt even while a camera waits on a peer that never answers.
    dead1.stop();
    dead2.stop();
}
