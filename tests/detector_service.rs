//! One detector service for all cameras, with the real model on a real frame:
//! per-camera bounded queues, round-robin between cameras, the oldest frame
//! of a camera dropped (and counted) when it sends faster than the model runs.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use streetwatch::detect::{Detector, DetectorOptions, DetectorService, ServiceError};
use streetwatch::source::Frame;

fn frame() -> Arc<Frame> {
    let img = streetwatch::detect::load_image(&common::media("bus.jpg")).unwrap();
    Arc::new(Frame {
        width: img.width(),
        height: img.height(),
        data: img.into_raw(),
        pts: Duration::ZERO,
        captured_at: SystemTime::now(),
        index: 0,
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
    let mut tasks = Vec::new();
    for cam in cams {
        let h = svc.camera(cam);
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
    for cam in cams {
        let c = svc.counts(cam);
        assert!(c.analysed >= 1, "{cam} was never analysed: {c:?}");
        assert_eq!(c.analysed, ok.get(cam).copied().unwrap_or(0), "{cam}");
        assert_eq!(c.analysed + c.dropped, 12, "{cam}: {c:?}");
        assert!(c.dropped >= 8, "{cam}: 12 frames at once, depth 1: {c:?}");
    }
    drop(svc);
    thread.join().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_camera_cannot_starve_a_quiet_one() {
    let (svc, thread) = service(8);
    let f = frame();
    let order = Arc::new(Mutex::new(Vec::new()));
    let busy = svc.camera("busy");
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
    drop((svc, busy));
    thread.join().unwrap();
}
