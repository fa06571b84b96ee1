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

/// What a [`Meter`]'s replicas do.
#[derive(Clone, Copy, PartialEq)]
enum Replicas {
    None,
    Open,
    FailToOpen,
    Panic,
}

/// A stand-in model that takes 30 ms a frame and counts how many frames it runs at
/// once, over it and every replica of it.
#[derive(Clone)]
struct Meter {
    now: Arc<std::sync::atomic::AtomicUsize>,
    most: Arc<std::sync::atomic::AtomicUsize>,
    opened: Arc<std::sync::atomic::AtomicUsize>,
    provider: &'static str,
    replicas: Replicas,
    panics: bool,
}

impl Meter {
    fn new(provider: &'static str, replicas: Replicas) -> Self {
        Self {
            now: Arc::default(),
            most: Arc::default(),
            opened: Arc::default(),
            provider,
            replicas,
            panics: false,
        }
    }
    fn most(&self) -> usize {
        self.most.load(Relaxed)
    }
    fn opened(&self) -> usize {
        self.opened.load(Relaxed)
    }
}

impl Infer for Meter {
    fn detect(&mut self, _: RgbView<'_>) -> Result<DetectOutput, DetectError> {
        let n = self.now.fetch_add(1, Relaxed) + 1;
        self.most.fetch_max(n, Relaxed);
        std::thread::sleep(Duration::from_millis(30));
        self.now.fetch_sub(1, Relaxed);
        assert!(!self.panics, "the replica's runtime failed");
        Ok(DetectOutput {
            detections: Vec::new(),
            elapsed: Duration::from_millis(30),
        })
    }
    fn detect_batch(&mut self, imgs: &[RgbView<'_>]) -> Result<Vec<DetectOutput>, DetectError> {
        imgs.iter().map(|i| self.detect(*i)).collect()
    }
    fn batch_refusal(&self) -> Option<&str> {
        Some("a stand-in")
    }
    fn model_path(&self) -> &std::path::Path {
        std::path::Path::new("meter.onnx")
    }
    fn model_name(&self) -> &str {
        "meter"
    }
    fn labels(&self) -> &[String] {
        &[]
    }
    fn execution_provider(&self) -> &str {
        self.provider
    }
    fn replica(&self) -> Option<Replicate> {
        if self.replicas == Replicas::None {
            return None;
        }
        let me = self.clone();
        Some(Box::new(move || {
            me.opened.fetch_add(1, Relaxed);
            match me.replicas {
                Replicas::FailToOpen => Err("out of device memory".into()),
                kind => Ok(Box::new(Meter {
                    replicas: Replicas::None,
                    panics: kind == Replicas::Panic,
                    ..me.clone()
                }) as Box<dyn Infer>),
            }
        }))
    }
}

/// `n` cameras send `rounds` frames each at once; every answer is returned.
async fn cameras(
    service: &DetectorService,
    n: usize,
    rounds: usize,
) -> Vec<Result<DetectOutput, ServiceError>> {
    let mut answers = Vec::new();
    for _ in 0..rounds {
        let sent: Vec<_> = (0..n)
            .map(|c| {
                let camera = service.camera(&format!("cam{c}"));
                tokio::spawn(async move { camera.detect(frame()).await })
            })
            .collect();
        for s in sent {
            answers.push(s.await.unwrap());
        }
    }
    answers
}

/// `n` runs at most; frames that keep waiting for 0.3 s (ten frames) open another.
fn runs(n: usize) -> ServiceOptions {
    ServiceOptions {
        runs: n,
        busy_window: Duration::from_millis(300),
        ..ServiceOptions::default()
    }
}

#[tokio::test]
async fn a_second_run_opens_only_when_frames_wait_and_then_runs_beside_the_first() {
    let meter = Meter::new("cpu", Replicas::Open);
    let (service, thread) = DetectorService::spawn_with(meter.clone(), runs(0));
    // One camera, one frame at a time: nothing ever waits, nothing more is opened.
    let one = service.camera("cam0");
    for _ in 0..5 {
        one.detect(frame()).await.unwrap();
    }
    assert_eq!((meter.opened(), meter.most()), (0, 1));
    // Two cameras whose frames meet every 0.1 s: one waits 30 ms each time, but that
    // is not a loaded detector, and nothing opens.
    let other = service.camera("cam1");
    for _ in 0..15 {
        let (a, b) = tokio::join!(one.detect(frame()), other.detect(frame()));
        a.unwrap();
        b.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!((meter.opened(), meter.most(), service.runs()), (0, 1, 1));
    // Eight cameras at once, again and again: frames keep waiting, a second run opens
    // (on the CPU, two by default) and runs beside the first; never a third.
    let answers = cameras(&service, 8, 12).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(meter.opened(), 1, "one replica, opened once");
    assert_eq!(meter.most(), 2, "two frames ran at once, never more");
    assert_eq!(service.runs(), 2);
    assert_eq!(service.inferences(), 5 + 2 * 15 + 96);
    drop((one, other, service));
    thread.join().unwrap();
}

#[tokio::test]
async fn runs_are_as_many_as_configured_and_one_off_the_cpu() {
    // On another provider (a GPU's memory is the limit) one run, unless configured.
    let gpu = Meter::new("cuda", Replicas::Open);
    let (service, thread) = DetectorService::spawn_with(gpu.clone(), runs(0));
    assert!(cameras(&service, 8, 4).await.iter().all(Result::is_ok));
    assert_eq!((gpu.opened(), gpu.most()), (0, 1));
    drop(service);
    thread.join().unwrap();

    let three = Meter::new("cuda", Replicas::Open);
    let (service, thread) = DetectorService::spawn_with(three.clone(), runs(3));
    assert!(cameras(&service, 8, 16).await.iter().all(Result::is_ok));
    assert_eq!(three.opened(), 2);
    assert!((2..=3).contains(&three.most()), "{}", three.most());
    drop(service);
    thread.join().unwrap();

    let one = Meter::new("cpu", Replicas::Open);
    let (service, thread) = DetectorService::spawn_with(one.clone(), runs(1));
    assert!(cameras(&service, 8, 4).await.iter().all(Result::is_ok));
    assert_eq!((one.opened(), one.most()), (0, 1));
    drop(service);
    thread.join().unwrap();
}

#[tokio::test]
async fn a_replica_that_cannot_open_leaves_the_service_at_one_run() {
    let meter = Meter::new("cpu", Replicas::FailToOpen);
    let (service, thread) = DetectorService::spawn_with(meter.clone(), runs(2));
    let answers = cameras(&service, 8, 12).await;
    assert!(answers.iter().all(Result::is_ok), "{answers:?}");
    assert_eq!(
        meter.opened(),
        1,
        "tried once, not at every frame that waited"
    );
    assert_eq!(meter.most(), 1);
    drop(service);
    thread.join().unwrap();
}

#[tokio::test]
async fn a_replica_that_dies_takes_the_service_down_with_its_reason() {
    let meter = Meter::new("cpu", Replicas::Panic);
    let (service, thread) = DetectorService::spawn_with(meter.clone(), runs(2));
    let answers = cameras(&service, 8, 12).await;
    let died: Vec<_> = answers
        .iter()
        .filter_map(|a| match a {
            Err(ServiceError::Died(reason)) => Some(reason.clone()),
            _ => None,
        })
        .collect();
    assert!(!died.is_empty(), "{answers:?}");
    assert!(
        died.iter().all(|r| r == "the replica's runtime failed"),
        "{died:?}"
    );
    assert_eq!(
        service.died().as_deref(),
        Some("the replica's runtime failed")
    );
    // The first thread ends too, having joined the one beside it.
    thread.join().unwrap();
    assert!(matches!(
        service.camera("cam9").detect(frame()).await,
        Err(ServiceError::Died(_))
    ));
}

#[tokio::test]
async fn a_burst_of_first_frames_opens_nothing_but_a_load_that_lasts_does() {
    let meter = Meter::new("cpu", Replicas::Open);
    let opts = ServiceOptions {
        busy_window: Duration::from_secs(1),
        ..runs(2)
    };
    let (service, thread) = DetectorService::spawn_with(meter.clone(), opts);
    // Twelve cameras' first frames at once, as at start-up: frames wait for 0.33 s.
    let first: Vec<_> = (0..12)
        .map(|c| {
            let camera = service.camera(&format!("cam{c}"));
            tokio::spawn(async move { camera.detect(frame()).await })
        })
        .collect();
    for f in first {
        f.await.unwrap().unwrap();
    }
    assert_eq!((meter.opened(), service.runs()), (0, 1));
    // Eight cameras that keep the detector busy for two seconds and more: it opens.
    assert!(cameras(&service, 8, 10).await.iter().all(Result::is_ok));
    assert_eq!((meter.opened(), service.runs()), (1, 2));
    drop(service);
    thread.join().unwrap();
}
