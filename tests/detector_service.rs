//! One detector service for all cameras, with the real model on real frames:
//! per-camera bounded queues, round-robin between cameras, the oldest frame
//! of a camera dropped (and counted) when it sends faster than the model runs,
//! the queue depth published per camera, and frames of several cameras run as
//! one inference when the model has a dynamic batch dimension.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use std::sync::atomic::Ordering::Relaxed;

use streetwatch::detect::{
    Detection, Detector, DetectorOptions, DetectorService, RgbView, ServiceError, ServiceOptions,
};
use streetwatch::monitor::CameraStats;
use streetwatch::source::Frame;

fn frame() -> Arc<Frame> {
    photo("bus.jpg")
}

fn photo(name: &str) -> Arc<Frame> {
    let img = streetwatch::detect::load_image(&common::media(name)).unwrap();
    Arc::new(Frame {
        width: img.width(),
        height: img.height(),
        data: img.into_raw(),
        pts: Duration::ZERO,
        captured_at: SystemTime::now(),
        index: 0,
        decoded: None,
    })
}

fn service(depth: usize) -> (DetectorService, std::thread::JoinHandle<()>) {
    let det = Detector::open(&DetectorOptions::for_model(common::default_model())).unwrap();
    DetectorService::spawn(det, depth)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_flooding_cameras_are_all_analysed_and_drops_are_counted_per_camera() {
    let (svc, thread) = service(1);
    let f = frame();
    let cams = ["north", "south", "east", "west"];
    let stats: Vec<Arc<CameraStats>> = cams.iter().map(|_| Arc::default()).collect();
    let mut tasks = Vec::new();
    for (cam, stats) in cams.iter().copied().zip(&stats) {
        let h = svc.camera_with_stats(cam, stats.clone());
        for _ in 0..12 {
            let (h, f) = (h.clone(), f.clone());
            tasks.push((cam, tokio::spawn(async move { h.detect(f).await })));
        }
    }
    let mut ok = std::collections::HashMap::<&str, u64>::new();
    for (cam, t) in tasks {
        match t.await.unwrap() {
            Ok(out) => {
                assert!(!out.detections.is_empty(), "bus.jpg holds a bus and people");
                *ok.entry(cam).or_default() += 1;
            }
            Err(ServiceError::Dropped) => {}
            Err(e) => panic!("{cam}: {e}"),
        }
    }
    for (cam, stats) in cams.iter().copied().zip(&stats) {
        let c = svc.counts(cam);
        assert!(c.analysed >= 1, "{cam} was never analysed: {c:?}");
        assert_eq!(c.analysed, ok.get(cam).copied().unwrap_or(0), "{cam}");
        assert_eq!(c.analysed + c.dropped, 12, "{cam}: {c:?}");
        assert!(c.dropped >= 8, "{cam}: 12 frames at once, depth 1: {c:?}");
        // The published counters say the same; nothing waits any more.
        let snap = stats.snapshot();
        assert_eq!(snap.frames_shed, c.dropped, "{cam}");
        assert_eq!((snap.detector_queue, c.queued), (0, 0), "{cam}");
    }
    drop(svc);
    thread.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_camera_cannot_starve_a_quiet_one() {
    // One run, so the order frames finish in is the order they were served in.
    let det = Detector::open(&DetectorOptions::for_model(common::default_model())).unwrap();
    let opts = ServiceOptions {
        depth: 8,
        runs: 1,
        ..ServiceOptions::default()
    };
    let (svc, thread) = DetectorService::spawn_with(det, opts);
    let f = frame();
    let order = Arc::new(Mutex::new(Vec::new()));
    let busy_stats = Arc::new(CameraStats::default());
    let busy = svc.camera_with_stats("busy", busy_stats.clone());
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (h, f, order) = (busy.clone(), f.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            h.detect(f).await.unwrap();
            order.lock().unwrap().push(format!("busy-{i}"));
        }));
    }
    // Let the busy camera fill its queue and the first inference start.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let waiting = busy_stats.detector_queue.load(Relaxed);
    assert!(
        (1..=8).contains(&waiting),
        "the busy camera's frames are seen waiting: {waiting}"
    );
    let quiet = svc.camera("quiet");
    {
        let (f, order) = (f.clone(), order.clone());
        tasks.push(tokio::spawn(async move {
            quiet.detect(f).await.unwrap();
            order.lock().unwrap().push("quiet".to_string());
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let order = order.lock().unwrap().clone();
    let pos = order.iter().position(|n| n == "quiet").unwrap();
    // FIFO would serve it after all 8 busy frames; round-robin right after the one running.
    assert!(pos <= 2, "quiet camera served at position {pos}: {order:?}");
    assert_eq!(svc.counts("busy").analysed, 8);
    assert_eq!(svc.counts("busy").dropped, 0);
    assert_eq!(busy_stats.detector_queue.load(Relaxed), 0);
    assert_eq!(busy_stats.frames_shed.load(Relaxed), 0);
    drop((svc, busy));
    thread.join().unwrap();
}

fn dynbatch() -> Detector {
    let model = common::cached("models/variants/dynbatch.onnx");
    Detector::open(&DetectorOptions::for_model(model)).unwrap()
}

/// Four real photos, most of them with something to find.
const PHOTOS: [&str; 4] = ["bus.jpg", "zidane.jpg", "scenetext01.jpg", "leuvenA.jpg"];

fn photos() -> Vec<Arc<Frame>> {
    PHOTOS.iter().map(|n| photo(n)).collect()
}

/// What `detector` finds in each frame on its own, outside any service.
fn found_alone(detector: &mut Detector, frames: &[Arc<Frame>]) -> Vec<Vec<Detection>> {
    let found: Vec<Vec<Detection>> = frames
        .iter()
        .map(|f| {
            detector
                .detect(RgbView {
                    width: f.width,
                    height: f.height,
                    data: &f.data,
                })
                .unwrap()
                .detections
        })
        .collect();
    assert!(
        found.iter().filter(|d| !d.is_empty()).count() >= 3,
        "{found:?}"
    );
    found
}

/// Same classes in the same order, boxes within 0.5 px, scores within 1e-3.
fn assert_close(what: &str, want: &[Detection], got: &[Detection]) {
    assert_eq!(want.len(), got.len(), "{what}: {got:?} vs {want:?}");
    for (w, g) in want.iter().zip(got) {
        assert_eq!(w.class_id, g.class_id, "{what}: {got:?} vs {want:?}");
        assert!((w.score - g.score).abs() <= 1e-3, "{what}: {g:?} vs {w:?}");
        for (a, b) in w.bbox.0.iter().zip(g.bbox.0) {
            assert!((a - b).abs() <= 0.5, "{what}: {g:?} vs {w:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_of_four_cameras_run_as_one_inference_and_each_gets_its_own_detections() {
    let (names, frames) = (PHOTOS, photos());
    let mut alone = dynbatch();
    let want = found_alone(&mut alone, &frames);
    // A long wait: the four frames, sent together, are sure to make one batch.
    let opts = ServiceOptions {
        depth: 2,
        max_batch: 4,
        max_wait: Duration::from_secs(5),
        ..ServiceOptions::default()
    };
    let (svc, thread) = DetectorService::spawn_with(dynbatch(), opts);
    assert_eq!(svc.max_batch(), 4);
    let tasks: Vec<_> = names
        .iter()
        .zip(&frames)
        .map(|(cam, f)| {
            let (h, f) = (svc.camera(cam), f.clone());
            tokio::spawn(async move { h.detect(f).await })
        })
        .collect();
    let mut outs = Vec::new();
    for t in tasks {
        outs.push(t.await.unwrap().unwrap());
    }
    assert_eq!(svc.inferences(), 1, "four frames, one inference");
    for ((name, want), out) in names.iter().zip(&want).zip(&outs) {
        assert_close(name, want, &out.detections);
        assert_eq!(svc.counts(name).analysed, 1, "{name}");
        // Each frame is charged its share of the one batch.
        assert_eq!(out.elapsed, outs[0].elapsed, "{name}");
    }
    drop(svc);
    thread.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lone_frame_waits_at_most_max_wait_for_company() {
    let opts = ServiceOptions {
        depth: 2,
        max_batch: 4,
        max_wait: Duration::from_millis(300),
        ..ServiceOptions::default()
    };
    let (svc, thread) = DetectorService::spawn_with(dynbatch(), opts);
    let start = std::time::Instant::now();
    let out = svc.camera("only").detect(frame()).await.unwrap();
    let took = start.elapsed();
    assert!(!out.detections.is_empty());
    assert_eq!(svc.inferences(), 1);
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(30),
        "a batch of one runs once max_wait has passed: {took:?}"
    );
    drop(svc);
    thread.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fixed_batch_model_runs_one_frame_at_a_time_whatever_max_batch_says() {
    let det = Detector::open(&DetectorOptions::for_model(common::default_model())).unwrap();
    assert!(det.batch_refusal().unwrap().contains("fixed batch"));
    let opts = ServiceOptions {
        depth: 2,
        max_batch: 4,
        max_wait: Duration::from_secs(5),
        ..ServiceOptions::default()
    };
    let (svc, thread) = DetectorService::spawn_with(det, opts);
    assert_eq!(svc.max_batch(), 1);
    let tasks: Vec<_> = ["a", "b", "c", "d"]
        .iter()
        .map(|cam| {
            let h = svc.camera(cam);
            tokio::spawn(async move { h.detect(frame()).await })
        })
        .collect();
    for t in tasks {
        assert!(!t.await.unwrap().unwrap().detections.is_empty());
    }
    assert_eq!(svc.inferences(), 4);
    drop(svc);
    thread.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_runs_at_once_give_every_camera_its_own_photos_detections() {
    let (names, frames) = (PHOTOS, photos());
    let opts = DetectorOptions::for_model(common::default_model());
    let mut alone = Detector::open(&opts).unwrap();
    let want = found_alone(&mut alone, &frames);
    // A replica is the same model, thresholds and provider on a session of its own.
    let mut replica = alone.replica().open().unwrap();
    assert_eq!(replica.provider(), alone.provider());
    let got = found_alone(&mut replica, &frames);
    for ((name, want), got) in names.iter().zip(&want).zip(&got) {
        assert_close(name, want, got);
    }
    drop(replica);

    // Two runs on the CPU by default; the second opens once frames keep waiting (here
    // for 0.2 s rather than the daemon's 10).
    let opts = ServiceOptions {
        busy_window: Duration::from_millis(200),
        ..ServiceOptions::default()
    };
    let (svc, thread) = DetectorService::spawn_with(alone, opts);
    assert_eq!(svc.runs(), 1, "one run until frames wait");
    // Eight cameras (each photo twice) at once, round after round: a busy detector.
    for round in 0..10 {
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let (h, f) = (svc.camera(&format!("cam{i}")), frames[i % 4].clone());
                tokio::spawn(async move { h.detect(f).await })
            })
            .collect();
        for (i, t) in tasks.into_iter().enumerate() {
            let out = t.await.unwrap().unwrap();
            let name = names[i % 4];
            assert_close(
                &format!("{name}, round {round}"),
                &want[i % 4],
                &out.detections,
            );
        }
    }
    assert_eq!(
        svc.runs(),
        2,
        "frames of eight cameras kept waiting: a second run opened"
    );
    assert_eq!(svc.inferences(), 80);
    drop(svc);
    thread.join().unwrap();
}
