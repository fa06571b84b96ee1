//! Many real-time cameras on one box, against one camera, in the same run.
//!
//! `make bench-cameras` (`cargo bench --bench many_cameras`): `CAMERAS`
//! (default 16) cameras play the still-street scenario clip
//! (`media/scenarios/static_object.mp4`, 768×576 H.264 at 10 fps: a still
//! street where a barrier is left and a motorcycle parked) in a loop at stream
//! speed (`loop = true`, `realtime = true`), analysed at 5 fps with the
//! scenario's zones and the motion gate on; then the same cameras with the
//! scene model's grey image made from the decoder's luma plane
//! (`[camera.scene] from_luma = true`); then the same cameras each at its own
//! point of the clip (the clip rotated by a multiple of 2 s, at its key frames),
//! as independent streets would be: on one clip all sixteen see the barrier put
//! down within the few seconds that the node spaces their openings by
//! (`node::START_SPACING`), and wake the detector close together; then one
//! camera alone, the first way. Each side is a child process of this bench running the
//! real node for `SECONDS` (default 65) with no broker listening (events wait in
//! the outbox), so its memory is its own.
//!
//! Per camera per second of wall time it reports: CPU time of the decode
//! threads (reading, decoding and converting; FFmpeg's own decoder threads
//! inherit the decode thread's name and are counted with it), of the camera
//! tasks (the async runtime: scene model, motion gate, tracker, rules), and of
//! the detector (ONNX Runtime's threads), all from `/proc/self/task`; the
//! scene model's own time and inference time from the camera counters;
//! frames decoded, sampled, dropped (and dropped after the first 5 s, once
//! every camera has had its first look), gated and analysed; the largest RSS
//! seen;
//! and the incidents started per camera, which must be the single camera's.
//! Ratios are per camera: N cameras over one, and luma over RGB.
//!
//! Run without `--bench` (as `cargo test --all-targets` does) it runs two
//! cameras for a few seconds, to prove the harness still works.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

/// What one child run measured.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Run {
    cameras: usize,
    seconds: f64,
    /// CPU seconds by thread group: decode, tasks, detector, other.
    cpu: BTreeMap<String, f64>,
    /// Counter sums over all cameras.
    decoded: u64,
    sampled: u64,
    dropped: u64,
    gated: u64,
    analysed: u64,
    inference_us: u64,
    scene_us: u64,
    decode_us: u64,
    max_rss_kib: u64,
    /// Frames dropped after the first [`WARMUP`] of the run.
    dropped_late: u64,
    /// Incidents started per camera, by `type/zone`.
    starts: BTreeMap<String, BTreeMap<String, u64>>,
}

fn cached(rel: &str) -> PathBuf {
    let p = streetwatch::cache_dir().join(rel);
    assert!(
        p.exists(),
        "{} is missing: run `make setup` and `deploy/setup.sh test-assets` first",
        p.display()
    );
    p
}

/// The `[daemon] camera` snippet of a scenario: its scene settings and zones.
fn scenario_snippet(name: &str) -> String {
    let path = cached(&format!("media/scenarios/{name}.toml"));
    let text = std::fs::read_to_string(&path).unwrap();
    let v: toml::Value = toml::from_str(&text).unwrap();
    v["daemon"]["camera"]
        .as_str()
        .unwrap_or_else(|| panic!("{} has no [daemon] camera", path.display()))
        .to_string()
}

fn config(cameras: usize, clips: &[PathBuf], snippet: &str, outbox: &Path, port: u16) -> String {
    let mut s = format!(
        "[node]\nid = \"bench\"\n\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n\n\
         [outbox]\npath = \"{}\"\n",
        outbox.display()
    );
    for i in 1..=cameras {
        s += &format!(
            "\n[[camera]]\nid = \"cam-{i:02}\"\nurl = \"{}\"\nfps = 5\nloop = true\nrealtime = true\n\n{snippet}\n",
            clips[(i - 1) % clips.len()].display()
        );
    }
    s
}

/// Drops in the first seconds of a run, while the cameras open and take their first
/// looks, are counted apart from the rest.
const WARMUP: Duration = Duration::from_secs(5);

/// The clip started at each of its key frames (every 2 s): `clip` played from
/// `k × 2 s` to its end, then from its start to `k × 2 s`, stream-copied by the
/// `ffmpeg` command. Cameras on these play the same street, each at its own point,
/// as independent cameras would; on one clip they would all move at once.
fn rotations(clip: &Path, dir: &Path) -> Vec<PathBuf> {
    let mut out = vec![clip.to_path_buf()];
    for k in 1..15 {
        let offset = 2 * k;
        let list = dir.join(format!("rotate-{offset}.txt"));
        let c = clip.display();
        std::fs::write(
            &list,
            format!("file '{c}'\ninpoint {offset}\nfile '{c}'\noutpoint {offset}\n"),
        )
        .unwrap();
        let path = dir.join(format!("rotated-{offset}.mp4"));
        let status = Command::new("ffmpeg")
            .args([
                "-loglevel",
                "error",
                "-y",
                "-f",
                "concat",
                "-safe",
                "0",
                "-i",
            ])
            .arg(&list)
            .args(["-c", "copy"])
            .arg(&path)
            .status()
            .expect("the ffmpeg command (deploy/setup.sh installs it) runs");
        assert!(
            status.success(),
            "ffmpeg could not rotate {c} by {offset} s"
        );
        out.push(path);
    }
    out
}

/// Counts the `frame_dropped` events of the source runners after [`WARMUP`].
struct LateDrops {
    started: Instant,
    count: Arc<std::sync::atomic::AtomicU64>,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LateDrops {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().name() == "frame_dropped" && self.started.elapsed() >= WARMUP {
            self.count
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    }
}

/// CPU seconds of this process's threads, grouped by what they run.
fn thread_cpu() -> BTreeMap<String, f64> {
    // SAFETY: sysconf has no preconditions.
    let tick = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    let mut out = BTreeMap::new();
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let name = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) else {
            continue;
        };
        let secs = (u.parse::<u64>().unwrap_or(0) + s.parse::<u64>().unwrap_or(0)) as f64 / tick;
        let group = if name.starts_with("decode-") {
            "decode"
        } else if name.starts_with("tokio-") {
            // The runtime's workers: "tokio-rt-worker", "tokio-runtime-worker" in older tokio.
            "tasks"
        } else if name.starts_with("detector") {
            "detector"
        } else {
            "other"
        };
        *out.entry(group.to_string()).or_insert(0.0) += secs;
    }
    out
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The child: runs the node with `cameras` cameras for `seconds`, prints a [`Run`] as JSON.
fn child(cameras: usize, seconds: f64, luma: bool, spread: bool) {
    let clip = cached("media/scenarios/static_object.mp4");
    let mut snippet = scenario_snippet("static_object");
    if luma {
        assert!(snippet.contains("[camera.scene]\n"), "{snippet}");
        snippet = snippet.replace("[camera.scene]\n", "[camera.scene]\nfrom_luma = true\n");
    }
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let clips = if spread {
        rotations(&clip, dir.path())
    } else {
        vec![clip]
    };
    let text = config(
        cameras,
        &clips,
        &snippet,
        &dir.path().join("outbox.db"),
        port,
    );
    let path = dir.path().join("bench.toml");
    let config = streetwatch::config::Config::from_str_at(&text, &path).unwrap();
    let starts: Arc<Mutex<BTreeMap<String, BTreeMap<String, u64>>>> = Arc::default();
    let late = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (summary, wall, max_rss) = rt.block_on(async {
        let shutdown = CancellationToken::new();
        let hook = {
            let starts = starts.clone();
            Box::new(move |ev: &streetwatch::event::Event| {
                if ev.phase == streetwatch::event::Phase::Start {
                    let mut s = starts.lock().unwrap();
                    *s.entry(ev.camera.clone())
                        .or_default()
                        .entry(format!("{}/{}", ev.kind, ev.zone))
                        .or_default() += 1;
                }
            })
        };
        let hooks = streetwatch::node::Hooks::new(shutdown.clone(), hook);
        let started = Instant::now();
        {
            use tracing_subscriber::layer::SubscriberExt;
            use tracing_subscriber::util::SubscriberInitExt;
            let only_drops = tracing_subscriber::filter::Targets::new()
                .with_target("streetwatch::source::runner", tracing::Level::DEBUG);
            let layer = LateDrops {
                started,
                count: late.clone(),
            };
            tracing_subscriber::registry()
                .with(tracing_subscriber::Layer::with_filter(layer, only_drops))
                .init();
        }
        let node = tokio::spawn(streetwatch::node::run(config, hooks));
        let mut max_rss = 0;
        while started.elapsed().as_secs_f64() < seconds {
            tokio::time::sleep(Duration::from_millis(500)).await;
            max_rss = max_rss.max(rss_kib());
        }
        let cpu = thread_cpu();
        let dropped_late = late.load(std::sync::atomic::Ordering::Relaxed);
        let wall = started.elapsed().as_secs_f64();
        shutdown.cancel();
        let summary = node.await.unwrap().unwrap();
        (summary, (wall, cpu, dropped_late), max_rss)
    });
    let (wall, cpu, dropped_late) = wall;
    let t = summary.total();
    let run = Run {
        cameras,
        seconds: wall,
        cpu,
        decoded: t.frames_decoded,
        sampled: t.frames_sampled,
        dropped: t.frames_dropped,
        gated: t.frames_gated,
        analysed: t.frames_analysed,
        inference_us: t.inference_us,
        scene_us: t.scene_us,
        decode_us: t.decode_us,
        max_rss_kib: max_rss,
        dropped_late,
        starts: std::mem::take(&mut *starts.lock().unwrap()),
    };
    println!("RUN {}", serde_json::to_string(&run).unwrap());
}

fn spawn_child(cameras: usize, seconds: f64, luma: bool, spread: bool) -> Run {
    let exe = std::env::current_exe().unwrap();
    let out = Command::new(exe)
        .args(["--child", &cameras.to_string(), &seconds.to_string()])
        .args(luma.then_some("--luma"))
        .args(spread.then_some("--spread"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("the bench can run itself");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout.lines().find_map(|l| l.strip_prefix("RUN "));
    match line {
        Some(json) => serde_json::from_str(json).unwrap(),
        None => panic!(
            "child run with {cameras} cameras failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// One row per measure: value per camera per second (or per run), for runs `one`
/// and `many` (labelled `a` and `b`), and their ratio.
fn report((a, one): (&str, &Run), (b, many): (&str, &Run)) {
    let per = |r: &Run, v: f64| v / r.cameras as f64 / r.seconds;
    let cpu = |r: &Run, g: &str| r.cpu.get(g).copied().unwrap_or(0.0) * 1000.0;
    let rows: Vec<(&str, f64, f64)> = vec![
        (
            "decode threads CPU, ms/s",
            per(one, cpu(one, "decode")),
            per(many, cpu(many, "decode")),
        ),
        (
            "decode (source next_frame wall), ms/s",
            per(one, one.decode_us as f64 / 1000.0),
            per(many, many.decode_us as f64 / 1000.0),
        ),
        (
            "camera tasks CPU (scene, gate, rules), ms/s",
            per(one, cpu(one, "tasks")),
            per(many, cpu(many, "tasks")),
        ),
        (
            "scene model, ms/s",
            per(one, one.scene_us as f64 / 1000.0),
            per(many, many.scene_us as f64 / 1000.0),
        ),
        (
            "detector CPU, ms/s",
            per(one, cpu(one, "detector")),
            per(many, cpu(many, "detector")),
        ),
        (
            "inference (wall), ms/s",
            per(one, one.inference_us as f64 / 1000.0),
            per(many, many.inference_us as f64 / 1000.0),
        ),
        (
            "other threads CPU, ms/s",
            per(one, cpu(one, "other")),
            per(many, cpu(many, "other")),
        ),
        (
            "frames decoded /s",
            per(one, one.decoded as f64),
            per(many, many.decoded as f64),
        ),
        (
            "frames sampled /s",
            per(one, one.sampled as f64),
            per(many, many.sampled as f64),
        ),
        (
            "frames dropped /s",
            per(one, one.dropped as f64),
            per(many, many.dropped as f64),
        ),
        (
            "frames gated /s",
            per(one, one.gated as f64),
            per(many, many.gated as f64),
        ),
        (
            "frames analysed /s",
            per(one, one.analysed as f64),
            per(many, many.analysed as f64),
        ),
    ];
    println!("\n| per camera per second | {a} | {b} | ratio |");
    println!("|---|---|---|---|");
    for (name, a, b) in rows {
        let ratio = if a > 0.0 {
            format!("{:.2}", b / a)
        } else {
            "–".into()
        };
        println!("| {name} | {a:.2} | {b:.2} | {ratio} |");
    }
    let (ra, rb) = (
        one.max_rss_kib as f64 / 1024.0,
        many.max_rss_kib as f64 / 1024.0,
    );
    println!(
        "| RSS (largest seen, whole process), MB | {ra:.0} | {rb:.0} | {:.2} |",
        rb / ra
    );
    println!(
        "| dropped / sampled | {:.3} | {:.3} | |",
        one.dropped as f64 / one.sampled.max(1) as f64,
        many.dropped as f64 / many.sampled.max(1) as f64
    );
    println!(
        "| frames dropped after the first {} s (all cameras) | {} | {} | |",
        WARMUP.as_secs(),
        one.dropped_late,
        many.dropped_late
    );
    let busy = |r: &Run| r.cpu.values().sum::<f64>() / r.seconds;
    println!(
        "| process CPU, cores busy | {:.2} | {:.2} | |",
        busy(one),
        busy(many)
    );
}

/// Whether every camera of `many` started what the single camera did, as `seen`
/// tells it from a camera's incidents started (by `type/zone`).
fn compare<T: PartialEq + std::fmt::Debug>(
    one: &Run,
    many: &Run,
    what: &str,
    seen: impl Fn(&BTreeMap<String, u64>) -> T,
) {
    let reference = seen(&one.starts.values().next().cloned().unwrap_or_default());
    let differ: Vec<_> = many
        .starts
        .iter()
        .filter(|(_, s)| seen(s) != reference)
        .collect();
    let silent = many.cameras - many.starts.len();
    if differ.is_empty() && silent == 0 {
        println!(
            "{what}: every one of the {} cameras started the single camera's {reference:?}; per camera: {:?}",
            many.cameras,
            many.starts.values().collect::<Vec<_>>()
        );
    } else {
        println!(
            "{what}: DIFFERENT from the single camera's {reference:?}: {differ:?}; cameras without incidents: {silent}"
        );
    }
}

/// The incidents started, with how many of each.
fn incidents(s: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    s.clone()
}

/// The kinds (type and zone) of the incidents started. Cameras at other points of
/// the clip see its events at other times of the run, so how many of each fall in
/// the run differs.
fn kinds(s: &BTreeMap<String, u64>) -> Vec<String> {
    s.keys().cloned().collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--child") {
        // The child is the daemon: the same allocator settings as its `main`.
        streetwatch::memory::tune();
        let cameras = args[i + 1].parse().unwrap();
        let seconds = args[i + 2].parse().unwrap();
        let flag = |f: &str| args.iter().any(|a| a == f);
        child(cameras, seconds, flag("--luma"), flag("--spread"));
        return;
    }
    let env = |k: &str, d: f64| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    if !args.iter().any(|a| a == "--bench") {
        let run = spawn_child(2, 4.0, true, true);
        assert!(run.sampled > 0, "nothing sampled: {run:?}");
        println!("many_cameras: harness works (2 cameras, 4 s; `--bench` for the measurement)");
        return;
    }
    let cameras = env("CAMERAS", 16.0) as usize;
    let seconds = env("SECONDS", 65.0);
    eprintln!(
        "{cameras} cameras for {seconds} s (scene on RGB), {cameras} cameras (scene on luma), \
         {cameras} cameras each at its own point of the clip, then 1 camera, {seconds} s each …"
    );
    let many = spawn_child(cameras, seconds, false, false);
    let many_luma = spawn_child(cameras, seconds, true, false);
    let spread = spawn_child(cameras, seconds, false, true);
    let one = spawn_child(1, seconds, false, false);
    let n = format!("{cameras} cameras");
    report(("1 camera", &one), (&n, &many));
    report(
        (&format!("{n}, scene on RGB"), &many),
        (&format!("{n}, scene on luma"), &many_luma),
    );
    report(
        (&format!("{n} on one clip"), &many),
        (&format!("{n}, each at its own point"), &spread),
    );
    println!(
        "\nruns of {:.0} s each; incidents started by the single camera: {:?}",
        many.seconds,
        one.starts.values().next()
    );
    compare(&one, &many, "scene on RGB", incidents);
    compare(&one, &many_luma, "scene on luma", incidents);
    compare(
        &one,
        &spread,
        "each camera at its own point of the clip",
        kinds,
    );
}
