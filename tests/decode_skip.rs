//! What the decoder leaves out never changes what the sampler takes.
//!
//! Real H.264 media with B frames (the sample video re-encoded by set-up, and
//! the still-street scenario clip): decoding only what the sampler may take
//! (`decode = "sampled"`, the default) hands on exactly the frames, at the
//! same stream index and time and with the same pixels, as decoding every
//! frame (`decode = "all"`), while decoding fewer frames. Key-frame decoding
//! hands on key frames only, each the very frame a full decode has at its
//! index. The grey work image made from the luma plane is the one the scene
//! model makes from the RGB frame, within the RGB conversion's rounding, and
//! the scene model finds the same still objects on it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use streetwatch::config::DecodeMode;
use streetwatch::geom::PxBox;
use streetwatch::monitor::CameraStats;
use streetwatch::scene::{SceneConfig, SceneModel};
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
        // The scene model's own downscale of the RGB frame. The two differ by the
        // RGB conversion's rounding (FFmpeg's fast YUV→RGB path reads about one
        // level darker) and where RGB clips a bright, coloured pixel that luma keeps:
        // on this clip at most 1.23 levels on average, 7 at the 99th percentile
        // (80 frames), against the 25 levels the scene model calls a change.
        let mine = streetwatch::scene::grey_of_rgb(r.width, r.height, &r.data, (160, 120));
        let mut diffs: Vec<i32> = (grey.data.iter().zip(&mine))
            .map(|(&a, &b)| a as i32 - b as i32)
            .collect();
        let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
        diffs.sort_by_key(|d| d.abs());
        let p99 = diffs[diffs.len() * 99 / 100].abs();
        let threshold = SceneConfig::default().diff_threshold as i32;
        assert!(
            mean.abs() < 1.5 && p99 <= threshold / 3,
            "frame {}: mean difference {mean:.2}, 99th percentile {p99}",
            r.index
        );
        // RGB on demand: the pixels the source would have converted at once.
        l.make_rgb(&mut maker).unwrap();
        assert!(l.data == r.data, "frame {}: RGB differs", r.index);
    }
}

/// The static regions a scene model finds in `path` at 5 fps: (id, box, since).
fn regions(path: &str, luma: bool) -> Vec<(u64, PxBox, Duration)> {
    let config = SceneConfig::default();
    let mut opts = FfmpegOptions::new(5.0);
    opts.grey_width = luma.then_some(config.work_width);
    let stats = Arc::new(CameraStats::default());
    let mut src = FfmpegSource::open_with("luma", path, &opts, stats, Watchdog::new())
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut model = SceneModel::new(config);
    let mut found: Vec<(u64, PxBox, Duration)> = Vec::new();
    while let Some(f) = src.next_frame().unwrap() {
        let update = match f.grey() {
            Some(g) => {
                assert!(
                    luma && !f.has_rgb(),
                    "frame {}: grey only when asked",
                    f.index
                );
                model.update_grey(f.pts, (f.width, f.height), (g.width, g.height), &g.data)
            }
            None => model.update(f.pts, f.width, f.height, &f.data),
        };
        for r in update.regions {
            if !found.iter().any(|(id, ..)| *id == r.id) {
                found.push((r.id, r.bbox, r.since));
            }
        }
    }
    found
}

#[test]
fn the_scene_model_finds_the_same_still_objects_on_luma_as_on_rgb() {
    let clip = common::media("scenarios/static_object.mp4");
    let clip = clip.to_str().unwrap();
    let on_rgb = regions(clip, false);
    let on_luma = regions(clip, true);
    assert!(
        !on_rgb.is_empty(),
        "the still-street clip has a still object"
    );
    assert_eq!(
        on_rgb.len(),
        on_luma.len(),
        "regions on RGB {on_rgb:?}, on luma {on_luma:?}"
    );
    for ((_, a, since_a), (_, b, since_b)) in on_rgb.iter().zip(&on_luma) {
        assert!(a.iou(b) > 0.6, "region {a:?} on RGB, {b:?} on luma");
        let apart = since_a.abs_diff(*since_b);
        assert!(
            apart <= Duration::from_millis(400),
            "reported at {since_a:?} on RGB, {since_b:?} on luma"
        );
    }
}
