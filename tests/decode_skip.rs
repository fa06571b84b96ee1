//! What the decoder leaves out never changes what the sampler takes.
//!
//! Real H.264 media with B frames (the sample video re-encoded by set-up, and
//! the still-street scenario clip): decoding only what the sampler may take
//! (`decode = "sampled"`, the default) hands on exactly the frames, at the
//! same stream index and time and with the same pixels, as decoding every
//! frame (`decode = "all"`), while decoding fewer frames. Key-frame decoding
//! hands on key frames only, each the very frame a full decode has at its
//! index. The grey work image made from the luma plane is the one the scene
//! model makes from the RGB frame.

mod common;

use std::sync::Arc;
use std::time::Duration;

use streetwatch::config::DecodeMode;
use streetwatch::monitor::CameraStats;
use streetwatch::source::FrameSource;
use streetwatch::source::ffmpeg::{FfmpegOptions, FfmpegSource, RgbMaker, Watchdog};

/// Every frame a source hands on (index, stream time, pixels), and how many it decoded.
fn play(
    path: &str,
    fps: f64,
    decode: DecodeMode,
    grey: Option<u32>,
) -> (Vec<streetwatch::source::Frame>, u64) {
    let mut opts = FfmpegOptions::new(fps);
    opts.decode = decode;
    opts.grey_width = grey;
    let stats = Arc::new(CameraStats::default());
    let mut src = FfmpegSource::open_with("skip", path, &opts, stats.clone(), Watchdog::new())
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut frames = Vec::new();
    while let Some(f) = src.next_frame().unwrap() {
        frames.push(f);
    }
    (frames, stats.snapshot().frames_decoded)
}

fn key(f: &streetwatch::source::Frame) -> (u64, Duration) {
    (f.index, f.pts)
}

fn clips() -> Vec<String> {
    vec![
        common::media("vtest.mp4").to_string_lossy().into_owned(),
        common::media("scenarios/static_object.mp4")
            .to_string_lossy()
            .into_owned(),
    ]
}

#[test]
fn skipped_frames_are_never_frames_the_sampler_takes() {
    for clip in clips() {
        for fps in [5.0, 3.0, 1.0] {
            let (all, decoded_all) = play(&clip, fps, DecodeMode::All, None);
            let (sampled, decoded_sampled) = play(&clip, fps, DecodeMode::Sampled, None);
            assert!(!all.is_empty(), "{clip}: nothing decoded");
            assert_eq!(
                all.iter().map(key).collect::<Vec<_>>(),
                sampled.iter().map(key).collect::<Vec<_>>(),
                "{clip} at {fps} fps: other frames taken"
            );
            for (a, s) in all.iter().zip(&sampled) {
                assert!(
                    a.data == s.data,
                    "{clip} at {fps} fps: frame {} differs",
                    a.index
                );
            }
            assert!(
                decoded_sampled < decoded_all,
                "{clip} at {fps} fps: nothing skipped ({decoded_sampled} of {decoded_all})"
            );
        }
    }
}

#[test]
fn keyframe_decoding_hands_on_key_frames_at_their_index() {
    for clip in clips() {
        let (every, _) = play(&clip, 60.0, DecodeMode::All, None);
        let (keys, decoded) = play(&clip, 60.0, DecodeMode::Keyframes, None);
        assert!(keys.len() >= 2, "{clip}: {} key frames", keys.len());
        assert_eq!(decoded, keys.len() as u64);
        assert!(keys.len() * 4 < every.len(), "{clip}: not only key frames");
        for k in &keys {
            let full = every
                .iter()
                .find(|f| f.index == k.index)
                .unwrap_or_else(|| panic!("{clip}: no frame {} in a full decode", k.index));
            assert_eq!(full.pts, k.pts, "{clip}: frame {}", k.index);
            assert!(full.data == k.data, "{clip}: frame {} differs", k.index);
        }
    }
}

#[test]
fn the_luma_work_image_is_the_scene_models_grey_image() {
    let clip = &clips()[0];
    let (rgb, _) = play(clip, 1.0, DecodeMode::Sampled, None);
    let (lazy, _) = play(clip, 1.0, DecodeMode::Sampled, Some(160));
    assert_eq!(rgb.len(), lazy.len());
    let mut maker = RgbMaker::new();
    for (r, mut l) in rgb.into_iter().zip(lazy) {
        assert!(!l.has_rgb(), "RGB made before it was asked for");
        let grey = l.grey().expect("a grey work image").clone();
        assert_eq!((grey.width, grey.height), (160, 120));
        // The same work image as the scene model's own downscale of the RGB frame.
        let mine = streetwatch::scene::grey_of_rgb(r.width, r.height, &r.data, (160, 120));
        let diffs: Vec<u32> = (grey.data.iter().zip(&mine))
            .map(|(&a, &b)| a.abs_diff(b) as u32)
            .collect();
        let mean = diffs.iter().sum::<u32>() as f64 / diffs.len() as f64;
        let max = diffs.iter().max().copied().unwrap_or(0);
        assert!(
            mean < 0.6 && max <= 3,
            "frame {}: mean {mean}, max {max}",
            r.index
        );
        // RGB on demand: the pixels the source would have converted at once.
        l.make_rgb(&mut maker).unwrap();
        assert!(l.data == r.data, "frame {}: RGB differs", r.index);
    }
}
