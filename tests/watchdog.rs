//! The watchdog pings stop when a stage stops making progress, and only then.
//!
//! The node runs in a child process (this test binary again, told so by
//! `STREETWATCH_WEDGE`) with a real `NOTIFY_SOCKET` that this process listens
//! on, the real model, a real clip and a real mosquitto. Once the pings have
//! started, this process creates a file, and in the child one stage really
//! stops: the detector thread blocks forever inside its next inference (a
//! detector that runs the real model and, once the file exists, never
//! returns), or the publisher loop blocks forever inside the commit hook it
//! calls for every event it stores. The other stage keeps running. The pings
//! must stop, the log must name the stuck stage, and `STATUS=` must say so;
//! the health file (`streetwatch health`, for containers) goes stale with them.
//!
//! A custom main (`harness = false`): the child mode is not a test of its own.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use streetwatch::config::Config;
use streetwatch::detect::{DetectError, DetectOutput, Infer, RgbView};
use streetwatch::node::{self, Hooks, ModelOpener, OpenDetector, Parts, options, systemd};

/// `WATCHDOG_USEC` for the child: checks (and pings) every half of it.
const WATCHDOG: Duration = Duration::from_secs(2);

fn main() {
    match std::env::var("STREETWATCH_WEDGE") {
        Ok(stage) => child(&stage),
        Err(_) => {
            for stage in ["detector", "publisher"] {
                println!("test pings_stop_when_the_{stage}_is_wedged ...");
                pings_stop_when_wedged(stage);
                println!("test pings_stop_when_the_{stage}_is_wedged ... ok");
            }
        }
    }
}

fn config(broker: &str, dir: &Path) -> String {
    // People on the campus road: congestion starts at once and updates often, so the
    // publisher always has events coming.
    format!(
        r#"
[node]
id = "wd-node"
[mqtt]
url = "{broker}"
topic_prefix = "swwd"
[outbox]
path = "{dir}/outbox.sqlite"
[evidence]
enabled = false
[[camera]]
id = "campus"
url = "{clip}"
fps = 4
loop = true
[[camera.zone]]
id = "all"
polygon = [[0, 0], [1, 0], [1, 1], [0, 1]]
[camera.zone.congestion]
levels = {{ light = 1, moderate = 3, heavy = 6 }}
min_duration_s = 0
update_interval_s = 0.5
"#,
        dir = dir.display(),
        clip = common::media("vtest.mp4").display()
    )
}

fn pings_stop_when_wedged(stage: &str) {
    let broker = common::Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write_config(dir.path(), &config(&broker.url(), dir.path()));
    let trigger = dir.path().join("wedge-now");
    let health_file = dir.path().join("alive");
    let health = || {
        Command::new(common::bin())
            .arg("health")
            .arg("--health-file")
            .arg(&health_file)
            .args(["--max-age", "3"])
            .output()
            .unwrap()
    };
    let notify = common::NotifySocket::bind();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .env("STREETWATCH_WEDGE", stage)
        .env("STREETWATCH_WEDGE_CONFIG", &cfg)
        .env("STREETWATCH_WEDGE_TRIGGER", &trigger)
        .env("STREETWATCH_HEALTH_FILE", &health_file)
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string())
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = common::LogWatch::new(child.stderr.take().unwrap());
    let _child = common::Daemon(child);

    // Healthy: the node is ready, events are being stored, and pings come.
    let ready = notify
        .wait_for(0, Duration::from_secs(60), "READY=1")
        .expect("READY=1");
    log.wait_for(0, Duration::from_secs(60), |l| l.contains("event stored"))
        .expect("events are stored before the wedge");
    let deadline = Instant::now() + 5 * WATCHDOG;
    while notify.pings(ready).len() < 3 {
        assert!(
            Instant::now() < deadline,
            "no steady pings before the wedge"
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let healthy = health();
    assert!(healthy.status.success(), "{healthy:?}");

    // One stage stops for good.
    std::fs::write(&trigger, stage).unwrap();
    let from_log = log.lines().len();
    let stuck = log
        .wait_for(from_log, Duration::from_secs(30), |l| {
            l.contains("stuck: work waits")
        })
        .unwrap_or_else(|| {
            panic!(
                "the {stage} was never called stuck:\n{}",
                log.lines().join("\n")
            )
        });
    let line = &log.lines()[stuck];
    assert!(line.contains(stage), "{line}");
    let other = if stage == "detector" {
        "publisher"
    } else {
        "detector"
    };
    assert!(!line.contains(other), "{line}");

    // No ping from then on, for longer than systemd would wait.
    let after = notify.notes().len();
    std::thread::sleep(2 * WATCHDOG);
    let late = notify.pings(after);
    assert!(
        late.is_empty(),
        "{} pings after the {stage} got stuck",
        late.len()
    );
    let notes = notify.notes();
    let status = notes[after..]
        .iter()
        .rev()
        .find_map(|(_, m)| m.lines().find(|l| l.starts_with("STATUS=")))
        .unwrap_or_else(|| panic!("no STATUS after the wedge: {notes:?}"));
    assert!(status.ends_with(&format!("stuck: {stage}")), "{status}");
    let stale = health();
    assert_eq!(stale.status.code(), Some(1), "{stale:?}");
    assert!(String::from_utf8_lossy(&stale.stdout).starts_with("unhealthy: "));
}

/// The child: the node, made of the real parts except the wedge.
fn child(stage: &str) {
    let var = |name: &str| PathBuf::from(std::env::var_os(name).unwrap());
    let config = Config::load(&var("STREETWATCH_WEDGE_CONFIG")).unwrap();
    let trigger = var("STREETWATCH_WEDGE_TRIGGER");
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
        .with_writer(std::io::stderr)
        .init();
    let mut parts = Parts::real(&config);
    let mut on_commit: streetwatch::mqtt::CommitHook = Box::new(|ev| {
        tracing::info!(seq = ev.seq, "event stored");
    });
    match stage {
        "detector" => {
            parts.detector = Arc::new(Wedging {
                inner: ModelOpener(options::detector(&config)),
                trigger,
            });
        }
        "publisher" => {
            on_commit = Box::new(move |ev| {
                tracing::info!(seq = ev.seq, "event stored");
                if trigger.exists() {
                    // The publisher loop calls this hook in line: it stops here for good.
                    tokio::task::block_in_place(forever);
                }
            });
        }
        other => panic!("no stage {other}"),
    }
    let hooks = Hooks {
        manager: systemd::Manager::from_env()
            .with_health_file(std::env::var_os("STREETWATCH_HEALTH_FILE").map(PathBuf::from)),
        ..Hooks::new(tokio_util::sync::CancellationToken::new(), on_commit)
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(node::run_with(config, parts, hooks)).unwrap();
}

fn forever() {
    loop {
        std::thread::park();
    }
}

/// Opens the real model; its detector blocks forever once `trigger` exists.
struct Wedging {
    inner: ModelOpener,
    trigger: PathBuf,
}

impl OpenDetector for Wedging {
    fn open(&self) -> Result<Box<dyn Infer>, DetectError> {
        Ok(Box::new(WedgingDetector {
            inner: self.inner.open()?,
            trigger: self.trigger.clone(),
        }))
    }
}

struct WedgingDetector {
    inner: Box<dyn Infer>,
    trigger: PathBuf,
}

impl WedgingDetector {
    fn maybe_wedge(&self) {
        if self.trigger.exists() {
            forever();
        }
    }
}

impl Infer for WedgingDetector {
    fn detect(&mut self, img: RgbView<'_>) -> Result<DetectOutput, DetectError> {
        self.maybe_wedge();
        self.inner.detect(img)
    }
    fn detect_batch(&mut self, imgs: &[RgbView<'_>]) -> Result<Vec<DetectOutput>, DetectError> {
        self.maybe_wedge();
        self.inner.detect_batch(imgs)
    }
    fn batch_refusal(&self) -> Option<&str> {
        self.inner.batch_refusal()
    }
    fn model_path(&self) -> &Path {
        self.inner.model_path()
    }
    fn model_name(&self) -> &str {
        self.inner.model_name()
    }
    fn labels(&self) -> &[String] {
        self.inner.labels()
    }
}
