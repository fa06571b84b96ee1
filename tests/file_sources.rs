//! Files and image folders through the source runner: bad data never kills a
//! camera (truncated MP4, random bytes), a mid-stream resolution change is
//! followed, `loop` and `realtime` work, image folders play at their fps, and
//! an unavailable hardware decoder falls back to software.
//!
//! Clips are made here with the `ffmpeg` command line from the cached sample video.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use streetwatch::config::HwAccel;
use streetwatch::monitor::{CameraState, CameraStats};
use streetwatch::source::runner::SourceOptions;

fn options(camera: &str, url: &Path, fps: f64) -> SourceOptions {
    common::source_options(camera, &url.to_string_lossy(), fps)
}

fn ffmpeg(args: &[&str]) {
    common::output_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-y"])
            .args(args),
    );
}

fn truncate_copy(src: &Path, dst: &Path, len: usize) {
    let data = std::fs::read(src).unwrap();
    std::fs::write(dst, &data[..len.min(data.len())]).unwrap();
}

/// Deterministic noise (xorshift64), so a failure can be reproduced.
fn random_bytes(path: &Path, len: usize) {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn truncated_mp4_without_its_index_is_a_clear_camera_error() {
    // vtest.mp4 keeps its index (moov) at the end: cut, it cannot be opened at all.
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("vtest_truncated.mp4");
    truncate_copy(&common::media("vtest.mp4"), &clip, 2_000_000);
    let (frames, stats) =
        common::run_source(options("cut", &clip, 5.0), 1000, Duration::from_secs(10));
    assert!(frames.is_empty());
    match stats.state() {
        CameraState::Error(reason) => {
            assert!(reason.contains("camera cut"), "{reason}");
            assert!(reason.contains("vtest_truncated.mp4"), "{reason}");
        }
        other => panic!("expected error(...), got {other}"),
    }
}

#[test]
fn truncated_mp4_plays_what_is_there_then_ends() {
    // With the index first (faststart), a cut file holds decodable frames up to the cut.
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("vtest_faststart.mp4");
    ffmpeg(&[
        "-i",
        common::media("vtest.mp4").to_str().unwrap(),
        "-c",
        "copy",
        "-movflags",
        "+faststart",
        full.to_str().unwrap(),
    ]);
    let clip = dir.path().join("vtest_faststart_truncated.mp4");
    let len = std::fs::metadata(&full).unwrap().len() as usize / 3;
    truncate_copy(&full, &clip, len);
    let (frames, stats) =
        common::run_source(options("cut", &clip, 10.0), 10_000, Duration::from_secs(60));
    let snap = stats.snapshot();
    eprintln!(
        "truncated faststart mp4: {} frames, {snap:?}, state {}",
        frames.len(),
        stats.state()
    );
    // About a third of 795 frames, then a clean end.
    assert!(
        (150..=400).contains(&frames.len()),
        "{} frames",
        frames.len()
    );
    assert_eq!(
        stats.state(),
        CameraState::Offline,
        "end of stream, not an error"
    );
    assert!(frames.iter().all(|f| f.width == 768 && f.height == 576));
}

#[test]
fn garbage_inside_a_stream_is_skipped_and_counted() {
    // An MPEG-TS copy of the sample video with 64 KiB of noise written over it every
    // 1 MiB: the demuxer resyncs, broken packets and frames are skipped and counted.
    let dir = tempfile::tempdir().unwrap();
    let ts = dir.path().join("vtest.ts");
    ffmpeg(&[
        "-i",
        common::media("vtest.mp4").to_str().unwrap(),
        "-c",
        "copy",
        ts.to_str().unwrap(),
    ]);
    let mut data = std::fs::read(&ts).unwrap();
    let noise = dir.path().join("noise.bin");
    random_bytes(&noise, 64 * 1024);
    let noise = std::fs::read(&noise).unwrap();
    let mut at = 512 * 1024;
    while at + noise.len() < data.len() {
        data[at..at + noise.len()].copy_from_slice(&noise);
        at += 1024 * 1024;
    }
    let clip = dir.path().join("vtest_damaged.ts");
    std::fs::write(&clip, data).unwrap();
    let (frames, stats) = common::run_source(
        options("damaged", &clip, 10.0),
        10_000,
        Duration::from_secs(60),
    );
    let snap = stats.snapshot();
    eprintln!(
        "damaged ts: {} frames, {snap:?}, state {}",
        frames.len(),
        stats.state()
    );
    assert!(snap.decode_errors > 0, "{snap:?}");
    assert!(
        frames.len() > 600,
        "most of the 795 frames survive: {}",
        frames.len()
    );
    assert_eq!(stats.state(), CameraState::Offline, "played to its end");
}

#[test]
fn random_bytes_are_a_camera_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("noise_random.mp4");
    random_bytes(&junk, 1 << 20);
    let (frames, stats) =
        common::run_source(options("noise", &junk, 5.0), 1000, Duration::from_secs(20));
    let snap = stats.snapshot();
    eprintln!(
        "random bytes: {} frames, {snap:?}, state {}",
        frames.len(),
        stats.state()
    );
    assert!(
        frames.is_empty(),
        "noise decoded into {} frames",
        frames.len()
    );
    match stats.state() {
        CameraState::Error(reason) => assert!(reason.contains("camera noise"), "{reason}"),
        other => panic!("expected error(...), got {other}"),
    }
}

#[test]
fn resolution_change_mid_stream_is_followed() {
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small.ts");
    let large = dir.path().join("large.ts");
    for (out, size) in [(&small, "320x240"), (&large, "640x360")] {
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=size={size}:rate=10:duration=2"),
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            out.to_str().unwrap(),
        ]);
    }
    let clip = dir.path().join("testsrc_320x240_then_640x360.ts");
    ffmpeg(&[
        "-i",
        &format!("concat:{}|{}", small.display(), large.display()),
        "-c",
        "copy",
        clip.to_str().unwrap(),
    ]);
    let (frames, stats) = common::run_source(
        options("resize", &clip, 10.0),
        1000,
        Duration::from_secs(30),
    );
    let sizes: Vec<(u32, u32)> = frames.iter().map(|f| (f.width, f.height)).collect();
    let first_large = sizes
        .iter()
        .position(|s| *s == (640, 360))
        .unwrap_or_else(|| panic!("no 640x360 frame: {sizes:?}, {:?}", stats.snapshot()));
    assert!(first_large >= 15, "{sizes:?}");
    assert!(
        sizes[..first_large].iter().all(|s| *s == (320, 240)),
        "{sizes:?}"
    );
    assert!(
        sizes[first_large..].iter().all(|s| *s == (640, 360)),
        "{sizes:?}"
    );
    assert!(frames.len() >= 36, "{} frames", frames.len());
    // The joined clip's timestamps start again at the join; stream time does not.
    for w in frames.windows(2) {
        assert!(w[1].pts > w[0].pts, "{:?} → {:?}", w[0].pts, w[1].pts);
    }
    assert!(
        frames
            .iter()
            .all(|f| f.data.len() == (f.width * f.height * 3) as usize)
    );
    assert_eq!(stats.state(), CameraState::Offline);
}

fn short_clip(dir: &Path) -> PathBuf {
    let clip = dir.join("testsrc_2s_10fps.mp4");
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=160x120:rate=10:duration=2",
        "-c:v",
        "libx264",
        "-pix_fmt",
        "yuv420p",
        clip.to_str().unwrap(),
    ]);
    clip
}

#[test]
fn looped_file_plays_again_with_stream_time_going_on() {
    let dir = tempfile::tempdir().unwrap();
    let clip = short_clip(dir.path());
    let mut opts = options("loop", &clip, 10.0);
    opts.looping = true;
    let (frames, stats) = common::run_source(opts, 50, Duration::from_secs(20));
    assert_eq!(frames.len(), 50, "a 20-frame clip looped");
    for w in frames.windows(2) {
        assert!(
            w[1].pts > w[0].pts,
            "stream time goes back: {:?} → {:?}",
            w[0].pts,
            w[1].pts
        );
    }
    assert!(
        frames[49].pts >= Duration::from_millis(4800),
        "{:?}",
        frames[49].pts
    );
    assert_eq!(
        stats.snapshot().frames_decoded as usize,
        stats.snapshot().frames_sampled as usize
    );
}

#[test]
fn realtime_file_is_paced_to_stream_time() {
    let dir = tempfile::tempdir().unwrap();
    let clip = short_clip(dir.path());
    let mut opts = options("replay", &clip, 10.0);
    opts.realtime = true;
    let t0 = Instant::now();
    let (frames, _) = common::run_source(opts, 1000, Duration::from_secs(10));
    let took = t0.elapsed();
    assert_eq!(frames.len(), 20);
    // 20 frames at 10 fps: the last is due 1.9 s after the first.
    assert!(took >= Duration::from_millis(1800), "{took:?}");
    assert!(took < Duration::from_secs(4), "{took:?}");
}

#[test]
fn unavailable_hardware_decoder_falls_back_to_software() {
    let dir = tempfile::tempdir().unwrap();
    let clip = short_clip(dir.path());
    for hw in [
        HwAccel::Auto,
        HwAccel::Vaapi,
        HwAccel::Cuda,
        HwAccel::V4l2m2m,
    ] {
        let stats = Arc::new(CameraStats::default());
        let mut opts = streetwatch::source::ffmpeg::FfmpegOptions::new(10.0);
        opts.hwaccel = hw;
        let src = streetwatch::source::ffmpeg::FfmpegSource::open_with(
            "gpu",
            clip.to_str().unwrap(),
            &opts,
            stats.clone(),
            streetwatch::source::ffmpeg::Watchdog::new(),
        )
        .unwrap_or_else(|e| panic!("{hw:?}: {e}"));
        // This machine has no GPU and no mem2mem device: software decoding.
        assert_eq!(src.hwaccel(), None, "{hw:?}");
        drop(src);
        let mut o = options("gpu", &clip, 10.0);
        o.hwaccel = hw;
        let (frames, _) = common::run_source(o, 1000, Duration::from_secs(10));
        assert_eq!(frames.len(), 20, "{hw:?}");
    }
}

#[test]
fn image_folder_plays_at_its_fps() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["bus.jpg", "leuvenA.jpg", "leuvenB.jpg", "scenetext01.jpg"] {
        std::fs::copy(common::media(name), dir.path().join(name)).unwrap();
    }
    std::fs::write(dir.path().join("broken.jpg"), b"not a jpeg").unwrap();
    std::fs::write(dir.path().join("notes.txt"), b"ignored").unwrap();

    let (frames, stats) = common::run_source(
        options("stills", dir.path(), 2.0),
        100,
        Duration::from_secs(20),
    );
    assert_eq!(frames.len(), 4, "four photos (the broken one skipped)");
    assert_eq!(stats.snapshot().decode_errors, 1);
    // Name order: broken.jpg (skipped), bus.jpg, leuvenA.jpg, …; a file is 1/fps of time,
    // so the skipped one leaves a gap.
    assert_eq!(
        (frames[0].width, frames[0].height),
        (810, 1080),
        "bus.jpg first"
    );
    let pts: Vec<u128> = frames.iter().map(|f| f.pts.as_millis()).collect();
    assert_eq!(pts, vec![500, 1000, 1500, 2000]);

    // A glob, real-time: paced at 2 fps.
    let glob = dir.path().join("leuven?.jpg");
    let mut opts = options("stills", &glob, 2.0);
    opts.realtime = true;
    let t0 = Instant::now();
    let (frames, _) = common::run_source(opts, 100, Duration::from_secs(10));
    assert_eq!(frames.len(), 2);
    assert!(
        t0.elapsed() >= Duration::from_millis(450),
        "{:?}",
        t0.elapsed()
    );
}

#[test]
fn a_missing_v4l2_device_is_a_clear_camera_error() {
    // No capture device exists here; what can be checked is that `/dev/video*` goes
    // to FFmpeg's V4L2 demuxer and its failure names the camera and the device.
    use streetwatch::source::ffmpeg::forced_demuxer;
    assert_eq!(
        forced_demuxer("/dev/video0").as_deref(),
        Some("video4linux2,v4l2")
    );
    assert_eq!(forced_demuxer("/data/clip.mp4"), None);
    let err = streetwatch::source::ffmpeg::FfmpegSource::open_with(
        "usbcam",
        "/dev/video97",
        &streetwatch::source::ffmpeg::FfmpegOptions::new(5.0),
        Arc::new(CameraStats::default()),
        streetwatch::source::ffmpeg::Watchdog::new(),
    )
    .err()
    .expect("no such device");
    let msg = err.to_string();
    assert!(
        msg.contains("usbcam") && msg.contains("/dev/video97"),
        "{msg}"
    );
    assert!(msg.contains("No such file or directory"), "{msg}");
    // The V4L2 demuxer came from FFmpeg's device library, loaded for this camera.
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    assert!(maps.contains("libavdevice.so"), "libavdevice is not loaded");
}

#[test]
fn the_binary_does_not_link_ffmpegs_device_and_filter_libraries() {
    // They and the libraries behind them cost every process memory and start-up time;
    // libavdevice is loaded only when a `/dev/video*` camera opens (above).
    let out = std::process::Command::new("readelf")
        .args(["--dynamic", env!("CARGO_BIN_EXE_streetwatch")])
        .output()
        .expect("readelf (binutils) runs");
    assert!(out.status.success(), "{out:?}");
    let dynamic = String::from_utf8_lossy(&out.stdout);
    let needed: Vec<&str> = dynamic.lines().filter(|l| l.contains("(NEEDED)")).collect();
    assert!(
        needed.iter().any(|l| l.contains("libavformat.so")),
        "readelf shows no FFmpeg at all: {needed:?}"
    );
    for lib in ["libavdevice.so", "libavfilter.so"] {
        assert!(
            !needed.iter().any(|l| l.contains(lib)),
            "{lib} is linked: {needed:?}"
        );
    }
}
