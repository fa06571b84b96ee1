//! Fair queues, batches, the beat, and a thread that dies, with stand-ins for the model.

use super::*;
use crate::detect::DetectError;

fn queues(
    waiting: &[usize],
) -> (
    Queues,
    Vec<oneshot::Receiver<Result<DetectOutput, ServiceError>>>,
) {
    let mut q = Queues::default();
    let mut rxs = Vec::new();
    for (c, &n) in waiting.iter().enumerate() {
        let mut cam = CameraQueue {
            camera: format!("cam{c}"),
            waiting: VecDeque::new(),
            analysed: 0,
            dropped: 0,
            stats: Some(Arc::new(CameraStats::default())),
        };
        for k in 0..n {
            let (reply, rx) = oneshot::channel();
            rxs.push(rx);
            cam.waiting.push_back(Request {
                frame: Arc::new(Frame {
                    width: 1,
                    height: 1,
                    data: vec![0; 3],
                    pts: Duration::ZERO,
                    captured_at: std::time::SystemTime::UNIX_EPOCH,
                    index: k as u64,
                    decoded: None,
                }),
                reply,
            });
        }
        q.cameras.push(cam);
    }
    (q, rxs)
}

fn order(batch: &[(usize, Request)]) -> Vec<(usize, u64)> {
    batch.iter().map(|(c, r)| (*c, r.frame.index)).collect()
}

#[test]
fn batches_take_one_frame_per_camera_per_round() {
    // Camera 0 has 3 frames waiting, camera 1 none, camera 2 one, camera 3 two.
    let (mut q, _rx) = queues(&[3, 0, 1, 2]);
    let mut batch = Vec::new();
    q.take_fair(&mut batch, 4);
    assert_eq!(order(&batch), vec![(0, 0), (2, 0), (3, 0), (0, 1)]);
    // The next batch starts after the camera served last.
    let mut batch = Vec::new();
    q.take_fair(&mut batch, 4);
    assert_eq!(order(&batch), vec![(3, 1), (0, 2)]);
    assert!(!q.any_waiting());
    for c in &q.cameras {
        assert_eq!(c.stats.as_ref().unwrap().detector_queue.load(Relaxed), 0);
    }
}

/// Runs one frame each time `go` lets it; reports each frame it takes on `took`.
struct Gated {
    go: std::sync::mpsc::Receiver<()>,
    took: std::sync::mpsc::Sender<()>,
}

impl Infer for Gated {
    fn detect(&mut self, _: RgbView<'_>) -> Result<DetectOutput, DetectError> {
        self.took.send(()).unwrap();
        self.go
            .recv()
            .map_err(|e| DetectError::Inference(e.to_string()))?;
        Ok(DetectOutput {
            detections: Vec::new(),
            elapsed: Duration::ZERO,
        })
    }
    fn detect_batch(&mut self, imgs: &[RgbView<'_>]) -> Result<Vec<DetectOutput>, DetectError> {
        imgs.iter().map(|i| self.detect(*i)).collect()
    }
    fn batch_refusal(&self) -> Option<&str> {
        Some("one at a time")
    }
    fn model_path(&self) -> &std::path::Path {
        std::path::Path::new("gated")
    }
    fn model_name(&self) -> &str {
        "gated"
    }
    fn labels(&self) -> &[String] {
        &[]
    }
}

#[tokio::test]
async fn the_beat_counts_runs_and_the_frames_waiting_or_running() {
    use crate::monitor::heartbeat::Sample;
    let (go_tx, go) = std::sync::mpsc::channel();
    let (took, took_rx) = std::sync::mpsc::channel();
    let beat = Arc::new(Beat::default());
    let opts = ServiceOptions::default();
    let (service, thread) = DetectorService::spawn_beating(Gated { go, took }, opts, beat.clone());
    let frame = Arc::new(Frame {
        width: 1,
        height: 1,
        data: vec![0; 3],
        pts: Duration::ZERO,
        captured_at: std::time::SystemTime::UNIX_EPOCH,
        index: 0,
        decoded: None,
    });
    let camera = service.camera("a");
    let answer = tokio::spawn(async move { camera.detect(frame).await });
    let took_rx = tokio::task::spawn_blocking(move || took_rx.recv().map(|_| took_rx))
        .await
        .unwrap()
        .unwrap();
    // The frame is in the detector's hands: work waits, nothing is done yet.
    assert_eq!(
        beat.sample(),
        Sample {
            done: 0,
            waiting: 1
        }
    );
    go_tx.send(()).unwrap();
    answer.await.unwrap().unwrap();
    assert_eq!(
        beat.sample(),
        Sample {
            done: 1,
            waiting: 0
        }
    );
    drop((go_tx, took_rx, service));
    thread.join().unwrap();
}

#[test]
fn a_batch_of_one_is_plain_round_robin() {
    let (mut q, _rx) = queues(&[2, 1, 2]);
    let mut served = Vec::new();
    loop {
        let mut batch = Vec::new();
        q.take_fair(&mut batch, 1);
        match batch.pop() {
            Some((c, r)) => served.push((c, r.frame.index)),
            None => break,
        }
    }
    assert_eq!(served, vec![(0, 0), (1, 0), (2, 0), (0, 1), (2, 1)]);
}

/// A stand-in model: finds nothing, and panics on frame `panic_at` (1-based).
struct Fragile {
    seen: u32,
    panic_at: u32,
    path: std::path::PathBuf,
    labels: Vec<String>,
}

impl Infer for Fragile {
    fn detect(&mut self, _: RgbView<'_>) -> Result<DetectOutput, DetectError> {
        self.seen += 1;
        if self.seen == self.panic_at {
            panic!("tensor shape mismatch in frame {}", self.seen);
        }
        Ok(DetectOutput {
            detections: Vec::new(),
            elapsed: Duration::from_millis(1),
        })
    }
    fn detect_batch(&mut self, imgs: &[RgbView<'_>]) -> Result<Vec<DetectOutput>, DetectError> {
        imgs.iter().map(|i| self.detect(*i)).collect()
    }
    fn batch_refusal(&self) -> Option<&str> {
        Some("a stand-in")
    }
    fn model_path(&self) -> &std::path::Path {
        &self.path
    }
    fn model_name(&self) -> &str {
        "fragile"
    }
    fn labels(&self) -> &[String] {
        &self.labels
    }
}

fn frame() -> Arc<Frame> {
    Arc::new(Frame {
        width: 2,
        height: 2,
        data: vec![0; 12],
        pts: Duration::ZERO,
        captured_at: std::time::SystemTime::UNIX_EPOCH,
        index: 0,
        decoded: None,
    })
}

#[tokio::test]
async fn a_dead_inference_thread_answers_every_camera_with_its_reason() {
    let fragile = Fragile {
        seen: 0,
        panic_at: 3,
        path: "fragile.onnx".into(),
        labels: vec!["person".into()],
    };
    let (service, thread) = DetectorService::spawn(fragile, 2);
    let (a, b) = (service.camera("a"), service.camera("b"));
    assert!(a.detect(frame()).await.is_ok());
    assert!(b.detect(frame()).await.is_ok());
    // The third frame kills the thread: its camera hears why, not silence.
    let err = a.detect(frame()).await.unwrap_err();
    assert_eq!(
        err,
        ServiceError::Died("tensor shape mismatch in frame 3".into())
    );
    assert!(
        thread.join().is_ok(),
        "the panic is caught and reported, not re-thrown"
    );
    // Every later frame, from any camera, is refused at once with the same reason.
    let err = b.detect(frame()).await.unwrap_err();
    assert!(
        matches!(&err, ServiceError::Died(r) if r.contains("frame 3")),
        "{err}"
    );
    assert_eq!(
        service.died().as_deref(),
        Some("tensor shape mismatch in frame 3")
    );
}
