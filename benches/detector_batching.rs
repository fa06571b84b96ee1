//! Batched against unbatched inference: frames per second through the detector.
//!
//! `cargo bench --bench detector_batching` (or `cargo test --bench detector_batching --
//! --bench`) measures, in one run and on one model (the default model's
//! dynamic-batch variant, `models/variants/dynbatch.onnx`), four different
//! real frames (two photos, two video frames; what four cameras send):
//! - one at a time: four `Detector::detect` calls;
//! - as one batch: one `Detector::detect_batch` of the four (`max_batch = 4`);
//! - through the `DetectorService`: four cameras, each with one frame in flight,
//!   `max_batch = 1` against `max_batch = 4` (`max_wait_ms = 5`).
//!
//! Rounds alternate between the two sides so machine load hits both alike;
//! reported: the best round per side, and the median of the per-round ratios
//! (each round's two sides ran back to back, under the same load). Without
//! `--bench` (as `cargo test --all-targets` runs it) it only checks that a
//! batch runs.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use streetwatch::detect::{Detector, DetectorOptions, DetectorService, RgbView, ServiceOptions};
use streetwatch::source::Frame;

fn detector() -> Detector {
    let model = common::cached("models/variants/dynbatch.onnx");
    Detector::open(&DetectorOptions::for_model(model)).expect("the dynbatch variant opens")
}

/// bus.jpg, scenetext01.jpg, and frames 200 and 400 of vtest.avi (a campus road).
fn frames() -> Vec<image::RgbImage> {
    let bus = streetwatch::detect::load_image(&common::cached("media/bus.jpg")).unwrap();
    let street = streetwatch::detect::load_image(&common::cached("media/scenetext01.jpg")).unwrap();
    vec![
        bus,
        street,
        common::vtest_frame_at(200),
        common::vtest_frame_at(400),
    ]
}

fn views(imgs: &[image::RgbImage]) -> Vec<RgbView<'_>> {
    imgs.iter()
        .map(|i| RgbView {
            width: i.width(),
            height: i.height(),
            data: i.as_raw(),
        })
        .collect()
}

/// Frames per second of `reps` rounds of the four frames, one at a time.
fn one_at_a_time(det: &mut Detector, v: &[RgbView<'_>], reps: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..reps {
        for f in v {
            det.detect(*f).unwrap();
        }
    }
    (reps * v.len()) as f64 / start.elapsed().as_secs_f64()
}

/// Frames per second of `reps` batches of the four frames.
fn batched(det: &mut Detector, v: &[RgbView<'_>], reps: usize) -> f64 {
    let start = Instant::now();
    for _ in 0..reps {
        assert_eq!(det.detect_batch(v).unwrap().len(), v.len());
    }
    (reps * v.len()) as f64 / start.elapsed().as_secs_f64()
}

/// Frames per second through the service: each of four cameras sends its frame again as
/// soon as the previous answer arrives (one in flight, as a camera task does), for `per`
/// frames per camera. Returns (frames/s, frames per inference).
fn service(
    rt: &tokio::runtime::Runtime,
    imgs: &[image::RgbImage],
    max_batch: usize,
    per: usize,
) -> (f64, f64) {
    let opts = ServiceOptions {
        depth: 2,
        max_batch,
        max_wait: Duration::from_millis(5),
        // One inference at a time: what batching alone does.
        runs: 1,
        ..ServiceOptions::default()
    };
    let (svc, thread) = DetectorService::spawn_with(detector(), opts);
    let frames: Vec<Arc<Frame>> = imgs
        .iter()
        .map(|i| {
            Arc::new(Frame {
                width: i.width(),
                height: i.height(),
                data: i.as_raw().clone(),
                pts: Duration::ZERO,
                captured_at: SystemTime::now(),
                index: 0,
                decoded: None,
            })
        })
        .collect();
    let start = Instant::now();
    rt.block_on(async {
        let tasks: Vec<_> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let (h, f) = (svc.camera(&format!("cam{i}")), f.clone());
                tokio::spawn(async move {
                    for _ in 0..per {
                        h.detect(f.clone()).await.unwrap();
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
    });
    let fps = (per * frames.len()) as f64 / start.elapsed().as_secs_f64();
    let per_inference = (per * frames.len()) as f64 / svc.inferences() as f64;
    drop(svc);
    thread.join().unwrap();
    (fps, per_inference)
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let imgs = frames();
    let v = views(&imgs);
    let mut det = detector();
    if !bench {
        batched(&mut det, &v, 1);
        println!("detector_batching: smoke run, one batch of 4 (run `cargo bench` to measure)");
        return;
    }
    // Warm-up: the first runs of each batch size allocate.
    one_at_a_time(&mut det, &v, 1);
    batched(&mut det, &v, 1);
    let (rounds, reps) = (8, 5);
    let (mut single, mut batch) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        single.push(one_at_a_time(&mut det, &v, reps));
        batch.push(batched(&mut det, &v, reps));
        println!(
            "round {}: one at a time {:.2} frames/s, batch of 4 {:.2} frames/s",
            r + 1,
            single[r],
            batch[r]
        );
    }
    let (s, b) = (best(&single), best(&batch));
    println!(
        "detector, best of {rounds} rounds of {} frames: one at a time {s:.2} frames/s ({:.1} ms/frame), batch of 4 {b:.2} frames/s ({:.1} ms/frame), ratio of bests {:.2}, median round ratio {:.2}",
        reps * 4,
        1000.0 / s,
        1000.0 / b,
        b / s,
        median_ratio(&batch, &single)
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (mut s1, mut s4) = (Vec::new(), Vec::new());
    let rounds = 5;
    for r in 0..rounds {
        let a = service(&rt, &imgs, 1, 10);
        let b = service(&rt, &imgs, 4, 10);
        println!(
            "service round {}: max_batch 1 {:.2} frames/s ({:.2} per inference), max_batch 4 {:.2} frames/s ({:.2} per inference)",
            r + 1,
            a.0,
            a.1,
            b.0,
            b.1
        );
        s1.push(a.0);
        s4.push(b.0);
    }
    let (a, b) = (best(&s1), best(&s4));
    println!(
        "service, four cameras, best of {rounds} rounds of 40 frames: max_batch 1 {a:.2} frames/s, max_batch 4 {b:.2} frames/s, ratio of bests {:.2}, median round ratio {:.2}",
        b / a,
        median_ratio(&s4, &s1)
    );
}

fn best(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

/// The median over rounds of `num[r] / den[r]`.
fn median_ratio(num: &[f64], den: &[f64]) -> f64 {
    let mut r: Vec<f64> = num.iter().zip(den).map(|(n, d)| n / d).collect();
    r.sort_by(f64::total_cmp);
    let m = r.len() / 2;
    if r.len() % 2 == 1 {
        r[m]
    } else {
        (r[m - 1] + r[m]) / 2.0
    }
}
