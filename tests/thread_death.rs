//! Threads that die are seen: a panic on a camera's decode thread, or on the
//! shared detector thread, puts the camera(s) in `error` with the reason,
//! published (retained) on a real mosquitto, and the node restarts them with
//! backoff while the other cameras go on.
//!
//! The panics are injected through the node's seams ([`node::Parts`]): a
//! source opener and a detector that stand in for FFmpeg and the model.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use streetwatch::config::Config;
use streetwatch::detect::{DetectError, DetectOutput, Infer, RgbView};
use streetwatch::monitor::CameraStats;
use streetwatch::node::{self, OpenDetector, Parts, RunSummary};
use streetwatch::source::runner::{Opener, SourceOptions};
use streetwatch::source::{Frame, FrameSource, SourceError};
use tokio_util::sync::CancellationToken;

/// Frames of a flat grey picture, 25 per second of stream time. The first
/// source opened for `panics_on` panics at its `panic_at`th frame.
struct Script {
    panics_on: Option<&'static str>,
    panic_at: u64,
    opened: Mutex<HashMap<String, usize>>,
}

struct Grey {
    n: u64,
    panic_at: Option<u64>,
}

impl FrameSource for Grey {
    fn next_frame(&mut self) -> Result<Option<Frame>, SourceError> {
        self.n += 1;
        if self.panic_at == Some(self.n) {
            panic!("h264 slice header out of range at frame {}", self.n);
        }
        // Played at about stream speed, so a test sees states change.
        std::thread::sleep(Duration::from_millis(20));
        Ok(Some(Frame {
            width: 64,
            height: 48,
            data: vec![90; 64 * 48 * 3],
            pts: Duration::from_millis(self.n * 40),
            captured_at: SystemTime::now(),
            index: self.n,
            decoded: None,
        }))
    }
    fn is_live(&self) -> bool {
        false
    }
}

impl Opener for Script {
    fn open(
        &self,
        opts: &SourceOptions,
        _: &Arc<CameraStats>,
        _: &Arc<streetwatch::source::ffmpeg::Watchdog>,
    ) -> Result<Box<dyn FrameSource>, SourceError> {
        let mut opened = self.opened.lock().unwrap();
        let n = opened.entry(opts.camera.clone()).or_default();
        *n += 1;
        let panic_at =
            (self.panics_on == Some(opts.camera.as_str()) && *n == 1).then_some(self.panic_at);
        Ok(Box::new(Grey { n: 0, panic_at }))
    }
}

/// A detector that finds nothing; the first one opened panics at its `panic_at`th frame.
struct Model {
    panic_at: Option<u64>,
    opened: AtomicUsize,
    /// Frames the detectors opened after the first have seen.
    after: Arc<AtomicU64>,
}

struct Blind {
    seen: u64,
    panic_at: Option<u64>,
    /// Counts the frames seen (a detector opened after the first).
    counter: Option<Arc<AtomicU64>>,
    labels: Vec<String>,
}

impl Infer for Blind {
    fn detect(&mut self, _: RgbView<'_>) -> Result<DetectOutput, DetectError> {
        self.seen += 1;
        if let Some(c) = &self.counter {
            c.fetch_add(1, Ordering::SeqCst);
        }
        if self.panic_at == Some(self.seen) {
            panic!("CUDA error: an illegal memory access was encountered");
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
    fn model_path(&self) -> &Path {
        Path::new("blind.onnx")
    }
    fn model_name(&self) -> &str {
        "blind"
    }
    fn labels(&self) -> &[String] {
        &self.labels
    }
}

impl OpenDetector for Model {
    fn open(&self) -> Result<Box<dyn Infer>, DetectError> {
        let first = self.opened.fetch_add(1, Ordering::SeqCst) == 0;
        Ok(Box::new(Blind {
            seen: 0,
            panic_at: self.panic_at.filter(|_| first),
            counter: (!first).then(|| self.after.clone()),
            labels: vec!["person".into()],
        }))
    }
}

fn config(broker: &str, dir: &Path) -> Config {
    let text = format!(
        r#"
[node]
id = "pole"
[mqtt]
url = "{broker}"
topic_prefix = "swd"
[outbox]
path = "{dir}/outbox.sqlite"
[[camera]]
id = "a"
url = "stand-in://a"
fps = 10
[[camera]]
id = "b"
url = "stand-in://b"
fps = 10
"#,
        dir = dir.display()
    );
    Config::from_str_at(&text, &dir.join("streetwatch.toml")).unwrap()
}

/// The node on its own runtime thread until `stop` fires.
fn run_node(
    config: Config,
    opener: Arc<Script>,
    detector: Arc<Model>,
    stop: CancellationToken,
) -> std::thread::JoinHandle<RunSummary> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        let parts = Parts {
            opener,
            detector,
            clock: streetwatch::clock::system(),
        };
        rt.block_on(node::run_with(
            config,
            parts,
            node::Hooks::new(stop, Box::new(|_| {})),
        ))
        .expect("the node starts")
    })
}

/// Each camera's states as published, in order, with their reasons, until `done` says so.
fn watch_states(
    sub: &common::Subscriber,
    done: impl Fn(&HashMap<String, Vec<(String, Option<String>)>>) -> bool,
) -> HashMap<String, Vec<(String, Option<String>)>> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen: HashMap<String, Vec<(String, Option<String>)>> = HashMap::new();
    while !done(&seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = sub
            .recv(left)
            .unwrap_or_else(|| panic!("states so far: {seen:?}"));
        let camera = m.topic.split('/').nth(3).unwrap().to_string();
        let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
        let state = v["state"].as_str().unwrap().to_string();
        let reason = v["reason"].as_str().map(str::to_string);
        let list = seen.entry(camera).or_default();
        if list.last().map(|(s, _)| s) != Some(&state) {
            list.push((state, reason));
        }
    }
    seen
}

/// `online`, later `error`, later `online` again.
fn recovered(states: &[(String, Option<String>)]) -> bool {
    let names: Vec<&str> = states.iter().map(|(s, _)| s.as_str()).collect();
    names
        .iter()
        .position(|s| *s == "error")
        .is_some_and(|e| names[..e].contains(&"online") && names[e..].contains(&"online"))
}

#[test]
fn a_dead_decode_thread_puts_its_camera_in_error_and_it_is_restarted() {
    let broker = common::Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let sub = common::Subscriber::connect(broker.port, "swd/pole/cameras/+/status");
    let opener = Arc::new(Script {
        panics_on: Some("a"),
        panic_at: 100,
        opened: Mutex::new(HashMap::new()),
    });
    let model = Arc::new(Model {
        panic_at: None,
        opened: AtomicUsize::new(0),
        after: Arc::default(),
    });
    let stop = CancellationToken::new();
    let node = run_node(
        config(&broker.url(), dir.path()),
        opener.clone(),
        model.clone(),
        stop.clone(),
    );
    let seen = watch_states(&sub, |s| s.get("a").is_some_and(|a| recovered(a)));
    stop.cancel();
    let summary = node.join().unwrap();

    let a = &seen["a"];
    let (_, reason) = a.iter().find(|(s, _)| s == "error").unwrap();
    let reason = reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("decode thread died")
            && reason.contains("h264 slice header out of range at frame 100"),
        "{reason}"
    );
    // The other camera never noticed.
    assert!(
        seen.get("b")
            .is_none_or(|b| b.iter().all(|(s, _)| s != "error")),
        "{seen:?}"
    );
    assert_eq!(opener.opened.lock().unwrap()["a"], 2, "reopened once");
    assert_eq!(
        model.opened.load(Ordering::SeqCst),
        1,
        "the detector lived on"
    );
    let restarts: HashMap<_, _> = summary
        .cameras
        .iter()
        .map(|(id, s)| (id.as_str(), s.restarts))
        .collect();
    assert_eq!((restarts["a"], restarts["b"]), (1, 0));
}

#[test]
fn a_dead_detector_thread_puts_every_camera_in_error_and_a_new_one_takes_over() {
    let broker = common::Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let sub = common::Subscriber::connect(broker.port, "swd/pole/cameras/+/status");
    let opener = Arc::new(Script {
        panics_on: None,
        panic_at: 0,
        opened: Mutex::new(HashMap::new()),
    });
    let model = Arc::new(Model {
        panic_at: Some(150),
        opened: AtomicUsize::new(0),
        after: Arc::default(),
    });
    let stop = CancellationToken::new();
    let node = run_node(
        config(&broker.url(), dir.path()),
        opener.clone(),
        model.clone(),
        stop.clone(),
    );
    let seen = watch_states(&sub, |s| {
        ["a", "b"]
            .iter()
            .all(|c| s.get(*c).is_some_and(|l| recovered(l)))
    });
    // The new detector analyses: wait for a second's frames of both cameras.
    let deadline = Instant::now() + Duration::from_secs(20);
    while model.after.load(Ordering::SeqCst) < 20 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    stop.cancel();
    let summary = node.join().unwrap();

    for camera in ["a", "b"] {
        let (_, reason) = seen[camera].iter().find(|(s, _)| s == "error").unwrap();
        let reason = reason.as_deref().unwrap_or_default();
        assert!(
            reason.contains("detector thread died") && reason.contains("an illegal memory access"),
            "{camera}: {reason}"
        );
    }
    assert_eq!(model.opened.load(Ordering::SeqCst), 2, "one new detector");
    let after = model.after.load(Ordering::SeqCst);
    assert!(after >= 20, "the new detector saw {after} frames");
    // The first detector answered 149 frames; the cameras count the new one's answers too.
    let analysed: u64 = summary.cameras.iter().map(|(_, s)| s.frames_analysed).sum();
    assert!(analysed > 149 + 10, "{:?}", summary.cameras);
    for (id, s) in &summary.cameras {
        assert_eq!(s.restarts, 1, "{id}");
    }
}
