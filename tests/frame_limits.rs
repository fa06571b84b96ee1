//! `[[camera]] max_pixels`: a stream announcing frames larger than the limit is
//! refused with a camera error naming the camera, the size and the key, before a
//! frame of that size is decoded; other cameras keep running.
//!
//! The large stream is a real 16K UHD (15360×8640) PNG video made with the
//! `ffmpeg` command line (16384×16384 is past FFmpeg's own picture size limit:
//! it can neither encode nor decode it).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use streetwatch::monitor::CameraState;

fn ffmpeg(args: &[&str], out: &Path) {
    common::output_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-y"])
            .args(args)
            .arg(out),
    );
}

#[test]
fn a_16k_stream_is_refused_and_the_other_camera_runs_on() {
    let broker = common::Mosquitto::start();
    let sub = common::Subscriber::connect(broker.port, "swpx/#");
    let dir = tempfile::tempdir().unwrap();
    // One grey 16K UHD frame: a few hundred kilobytes once compressed.
    let big = dir.path().join("uhd16k.mkv");
    ffmpeg(
        &[
            "-f",
            "lavfi",
            "-i",
            "color=c=gray:s=15360x8640:r=1:d=1",
            "-vf",
            "format=gray",
            "-c:v",
            "png",
        ],
        &big,
    );
    let clip = common::vtest_head(dir.path(), 20);
    let cfg = common::write_config(
        dir.path(),
        &format!(
            r#"
[node]
id = "px-node"
[mqtt]
url = "{broker}"
topic_prefix = "swpx"
[outbox]
path = "{outbox}"

[[camera]]
id = "huge"
url = "{big}"

{campus}
"#,
            broker = broker.url(),
            outbox = dir.path().join("outbox.sqlite").display(),
            big = big.display(),
            campus = common::plaza_camera(&clip),
        ),
    );
    let stderr = common::run_daemon_to_end(&cfg, "info");
    let summary = |id: &str| {
        stderr
            .lines()
            .find(|l| l.starts_with(&format!("streetwatch: camera {id}:")))
            .unwrap_or_else(|| panic!("no summary line for {id}:\n{stderr}"))
            .to_string()
    };
    let huge = summary("huge");
    assert!(
        huge.contains(
            ": error(camera huge: the stream announces 15360x8640 frames (132710400 pixels), \
             more than [[camera]] max_pixels = 8294400; refused)"
        ),
        "{huge}"
    );
    assert_eq!(common::number_before(&huge, " frames decoded"), 0, "{huge}");
    let campus = summary("campus");
    assert!(campus.contains(": offline,"), "{campus}");
    assert!(
        common::number_before(&campus, " analysed") >= 39,
        "{campus}"
    );
    let events = sub
        .drain(Duration::from_secs(1))
        .into_iter()
        .filter(|m| m.topic.starts_with("swpx/px-node/events/campus/"))
        .count();
    assert!(events > 0, "the other camera's events arrive:\n{stderr}");
}

#[test]
fn a_low_limit_refuses_vtest_before_its_first_frame() {
    let mut opts =
        common::source_options("lowres", &common::media("vtest.avi").to_string_lossy(), 5.0);
    opts.max_pixels = 640 * 480;
    let (frames, stats) = common::run_source(opts, usize::MAX, Duration::from_secs(60));
    let frames = frames.len();
    assert_eq!(frames, 0, "no frame of a refused stream is handed on");
    assert_eq!(
        stats.state(),
        CameraState::Error(
            "camera lowres: the stream announces 768x576 frames (442368 pixels), \
             more than [[camera]] max_pixels = 307200; refused"
                .into()
        )
    );
}

#[test]
fn a_stream_that_grows_past_the_limit_mid_stream_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // One H.264 stream: a second of 320x240, then a second of 4096x2304 (over 4K UHD's
    // pixel count), as a camera switching resolution sends it.
    let mut stream = Vec::new();
    for (i, size) in ["320x240", "4096x2304"].iter().enumerate() {
        let part = dir.path().join(format!("part{i}.h264"));
        ffmpeg(
            &[
                "-f",
                "lavfi",
                "-i",
                &format!("color=c=blue:s={size}:r=5:d=1"),
                "-c:v",
                "libx264",
                "-pix_fmt",
                "yuv420p",
                "-f",
                "h264",
            ],
            &part,
        );
        stream.extend(std::fs::read(&part).unwrap());
    }
    let mixed = dir.path().join("switching.h264");
    std::fs::write(&mixed, stream).unwrap();
    let opts = common::source_options("switch", &mixed.to_string_lossy(), 5.0);
    let (frames, stats) = common::run_source(opts, usize::MAX, Duration::from_secs(60));
    let frames = frames.len();
    assert_eq!(
        stats.state(),
        CameraState::Error(
            "camera switch: the stream announces 4096x2304 frames (9437184 pixels), \
             more than [[camera]] max_pixels = 8294400; refused"
                .into()
        )
    );
    // Frames before the switch are handed on (those still in the decoder's frame
    // threads when the large one is refused are not).
    assert!((1..=5).contains(&frames), "{frames} frames");
}
