//! End to end: the daemon against a bare ONNX Runtime loop, in one run.
//!
//! `cargo test --bench e2e -- --bench [--rounds N --seconds S --cameras K]` (or
//! `make bench`; the loops' own code is a few calls into ONNX Runtime, so this
//! binary need not be a release build) needs the release daemon (`cargo build --release --bin
//! streetwatch`), a mosquitto and the ffmpeg CLI on the PATH, and the RTSP
//! server of the tests (`make setup` installs them all). In each round, in turn (the
//! order flips every round so the machine's drift hits every side alike):
//!
//! - **bare**: this binary again, as a child process, running nothing but
//!   `Session::run` of the default model on one 416×416 input, as many times as
//!   `vtest.avi` has frames, with the same `ort`, ONNX Runtime library, model
//!   and intra-op threads as the daemon;
//! - **python** (when the PyPI `onnxruntime` is in the set-up's conversion venv,
//!   `deploy/setup.sh check`): the same loop in Python;
//! - **1 camera**: `streetwatch run` on `vtest.avi` (768×576) with every frame
//!   analysed (a file is read as fast as it is analysed, the next frame looked at
//!   while the detector works on the last); by default and with `runs = 1`;
//! - **over capacity**: `--cameras` real-time cameras looping `vtest.avi` at
//!   5 fps each for `--seconds` (more than the box can analyse);
//!   once as the daemon runs by default (two inferences at once on the CPU when
//!   frames wait) and once with one at a time (`[detector] runs = 1`);
//! - **80 %**: real-time cameras (four, or more so that none takes more than 8
//!   of the clip's 10 fps) whose fps add up to 80 % of this box's
//!   capacity, for `--seconds`: capture-to-detection latency against inference
//!   time. The capacity is the daemon's own, the 1-camera run's frames/s in the
//!   same round (what `streetwatch bench` sizes a box by); the bare loop's rate
//!   is above it, so 80 % of that would be a queue, not a load.
//!   Also run both ways, and once more (default) from as many live cameras: real
//!   RTSP servers streaming the clip at 25 fps, as street cameras send, each
//!   started at a moment of its own so their frames fall at unrelated instants.
//!
//! Every figure is the whole process's, from the kernel (`wait4`): wall time,
//! CPU time, peak RSS. Frames/s is frames over the process's wall time (start-up
//! included on both sides). Inference and latency percentiles come from the
//! bare loop's own timing and the daemon's closing summary. Ratios to bare are
//! taken within a round, then the median over rounds is reported.
//!
//! The table goes to stdout and into `benches/RESULTS.md` between the
//! `e2e` markers, with the machine's description. Without `--bench` (as
//! `cargo test --all-targets` runs it) it only checks that the bare loop runs.

mod common;
#[path = "../tests/common/mod.rs"]
mod harness;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ort::session::Session;
use ort::value::TensorRef;

/// Frames in vtest.avi: the 1-camera run analyses every one.
const VTEST_FRAMES: usize = 795;
const ROLE: &str = "STREETWATCH_E2E_ROLE";

fn main() {
    if let Ok(role) = std::env::var(ROLE) {
        return child(&role);
    }
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        let r = run_bare(3, threads());
        assert_eq!(r.frames, 3, "{r:?}");
        assert!(r.p50_ms > 0.0, "{r:?}");
        return;
    }
    let opt = |name: &str, default: usize| {
        args.windows(2)
            .find(|w| w[0] == name)
            .map(|w| w[1].parse().unwrap_or_else(|_| panic!("{name} {}", w[1])))
            .unwrap_or(default)
    };
    let plan = Plan {
        rounds: opt("--rounds", 3),
        // Long enough that the second inference, which opens once frames have kept
        // waiting for about 7 s, serves most of an over-capacity run.
        seconds: opt("--seconds", 30) as u64,
        cameras: opt("--cameras", 12),
        threads: threads(),
    };
    bench(&plan);
}

/// The daemon's intra-op threads (its default: ONNX Runtime's, one per core).
fn threads() -> usize {
    std::env::var("STREETWATCH_E2E_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0)
}

struct Plan {
    rounds: usize,
    seconds: u64,
    cameras: usize,
    threads: usize,
}

// ---------------------------------------------------------------------------
// The bare loops (child processes)

fn child(role: &str) {
    let frames: usize = std::env::var("STREETWATCH_E2E_FRAMES")
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(role, "bare", "unknown role {role}");
    let model = common::cached("models/nanodet-m-416.onnx");
    let env = streetwatch::detect::load_runtime(&streetwatch::detect::runtime_path(None)).unwrap();
    let mut builder = Session::builder(env).unwrap();
    if threads() > 0 {
        builder = builder.with_intra_threads(threads()).unwrap();
    }
    // Session settings to try against ONNX Runtime's defaults (`spin=0,pattern=0,arena=0`).
    for knob in std::env::var("STREETWATCH_E2E_ORT")
        .unwrap_or_default()
        .split(',')
    {
        builder = match knob {
            "" => builder,
            "spin=0" => builder.with_intra_op_spinning(false).unwrap(),
            "pattern=0" => builder.with_memory_pattern(false).unwrap(),
            "arena=0" => {
                // SAFETY: the builder's options pointer is valid while it lives.
                let status = unsafe {
                    (ort::api().DisableCpuMemArena)(ort::AsPointer::ptr_mut(&mut builder))
                };
                assert!(status.0.is_null(), "DisableCpuMemArena failed");
                builder
            }
            other => panic!("unknown session setting {other}"),
        };
    }
    let mut session = builder.commit_from_file(&model).unwrap();
    let input = vec![0.5f32; 3 * 416 * 416];
    let mut times = Vec::with_capacity(frames);
    for _ in 0..frames {
        let t = Instant::now();
        let tensor = TensorRef::from_array_view(([1usize, 3, 416, 416], input.as_slice())).unwrap();
        let out = session.run(ort::inputs!["input" => tensor]).unwrap();
        drop(out);
        times.push(t.elapsed());
    }
    let (p50, p99) = percentiles(&mut times);
    println!("{{\"frames\":{frames},\"p50_ms\":{p50},\"p99_ms\":{p99}}}");
}

const PYTHON_LOOP: &str = r#"
import json, sys, time
import numpy as np
import onnxruntime as ort
model, frames, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
opts = ort.SessionOptions()
if threads > 0:
    opts.intra_op_num_threads = threads
s = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
x = np.full((1, 3, 416, 416), 0.5, dtype=np.float32)
times = []
for _ in range(frames):
    t = time.perf_counter()
    s.run(None, {"input": x})
    times.append((time.perf_counter() - t) * 1000)
times.sort()
pick = lambda q: times[min(len(times) - 1, max(0, int(-(-q * len(times) // 1)) - 1))]
print(json.dumps({"frames": frames, "p50_ms": pick(0.5), "p99_ms": pick(0.99)}))
"#;

fn percentiles(times: &mut [Duration]) -> (f64, f64) {
    times.sort();
    let pick = |q: f64| {
        let rank = ((q * times.len() as f64).ceil() as usize).clamp(1, times.len());
        times[rank - 1].as_secs_f64() * 1000.0
    };
    (pick(0.5), pick(0.99))
}

// ---------------------------------------------------------------------------
// Measuring a child process

/// One process's run, as the kernel and the process report it.
#[derive(Debug, Clone, Default)]
struct Run {
    frames: u64,
    wall_s: f64,
    cpu_s: f64,
    peak_rss_mb: f64,
    p50_ms: f64,
    p99_ms: f64,
    latency_p50_ms: Option<f64>,
    latency_p99_ms: Option<f64>,
    /// Frames the motion gate or a full queue kept from the detector, drops.
    dropped: u64,
}

impl Run {
    fn fps(&self) -> f64 {
        self.frames as f64 / self.wall_s
    }
    fn per_cpu_s(&self) -> f64 {
        self.frames as f64 / self.cpu_s
    }
}

/// Runs `cmd` to its end (or sends it SIGTERM after `stop_after`) and returns its
/// stdout and stderr with the kernel's figures.
fn measure(mut cmd: Command, stop_after: Option<Duration>) -> (Run, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    cmd.stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap());
    let start = Instant::now();
    // Reaped by `wait4` below, which also gives the child's rusage.
    #[expect(clippy::zombie_processes, reason = "reaped by wait4, for its rusage")]
    let child = cmd.spawn().expect("the command starts");
    let pid = child.id() as libc::pid_t;
    if let Some(after) = stop_after {
        std::thread::sleep(after);
        // SAFETY: `pid` is our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter; `pid` is our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let got = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let wall = start.elapsed();
    assert_eq!(got, pid, "wait4 failed");
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let run = Run {
        wall_s: wall.as_secs_f64(),
        cpu_s: tv(usage.ru_utime) + tv(usage.ru_stime),
        peak_rss_mb: usage.ru_maxrss as f64 / 1024.0,
        ..Run::default()
    };
    let (out, err) = (
        std::fs::read_to_string(out).unwrap_or_default(),
        std::fs::read_to_string(err).unwrap_or_default(),
    );
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    assert!(ok, "{cmd:?} failed ({status}):\n{out}\n{err}");
    (run, out, err)
}

fn run_bare(frames: usize, threads: usize) -> Run {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.env(ROLE, "bare")
        .env("STREETWATCH_E2E_FRAMES", frames.to_string())
        .env("STREETWATCH_E2E_THREADS", threads.to_string());
    loop_run(cmd)
}

fn loop_run(cmd: Command) -> Run {
    let (mut run, out, _) = measure(cmd, None);
    let v: serde_json::Value = serde_json::from_str(out.lines().last().unwrap_or("{}"))
        .unwrap_or_else(|e| panic!("loop output {out:?}: {e}"));
    run.frames = v["frames"].as_u64().unwrap();
    run.p50_ms = v["p50_ms"].as_f64().unwrap();
    run.p99_ms = v["p99_ms"].as_f64().unwrap();
    run
}

fn python() -> Option<PathBuf> {
    let py = streetwatch::cache_dir().join("venv-convert/bin/python");
    let ok = Command::new(&py)
        .args(["-c", "import onnxruntime, numpy"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(py)
}

fn run_python(py: &Path, frames: usize, threads: usize) -> Run {
    let mut cmd = Command::new(py);
    cmd.args(["-c", PYTHON_LOOP])
        .arg(common::cached("models/nanodet-m-416.onnx"))
        .arg(frames.to_string())
        .arg(threads.to_string());
    loop_run(cmd)
}

/// The daemon on `cameras` (url, fps, realtime) until the files end or `stop_after`,
/// with `[detector] runs = runs` (0: the daemon's default).
fn run_daemon(
    broker: u16,
    threads: usize,
    runs: usize,
    cameras: &[(&Path, f64, bool)],
    stop_after: Option<Duration>,
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = format!(
        "[node]\nid = \"bench\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{broker}\"\n\
         [outbox]\npath = \"{}\"\n[detector]\nintra_threads = {threads}\nruns = {runs}\n",
        dir.path().join("outbox.sqlite").display()
    );
    for (i, (url, fps, realtime)) in cameras.iter().enumerate() {
        cfg += &format!(
            "[[camera]]\nid = \"cam-{i}\"\nurl = \"{}\"\nfps = {fps}\nrealtime = {realtime}\nloop = {realtime}\n\
             [[camera.zone]]\nid = \"road\"\npolygon = [[0.0, 0.3], [1.0, 0.3], [1.0, 1.0], [0.0, 1.0]]\n\
             [camera.zone.congestion]\nclasses = [\"person\"]\nlevels = {{ light = 3, moderate = 6, heavy = 10 }}\n",
            url.display()
        );
    }
    let path = dir.path().join("bench.toml");
    std::fs::write(&path, cfg).unwrap();
    let mut cmd = Command::new(daemon());
    cmd.args(["--log-format", "json", "run", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn");
    let (mut run, _, err) = measure(cmd, stop_after);
    let summary = err
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["fields"]["summary"] == "node")
        .unwrap_or_else(|| panic!("no summary from the daemon:\n{err}"));
    let f = &summary["fields"];
    let totals = &f["totals"];
    run.frames = totals["frames_analysed"].as_u64().unwrap();
    run.dropped =
        totals["frames_dropped"].as_u64().unwrap() + totals["frames_shed"].as_u64().unwrap();
    run.p50_ms = f["inference_ms_p50"].as_f64().unwrap_or(0.0);
    run.p99_ms = f["inference_ms_p99"].as_f64().unwrap_or(0.0);
    run.latency_p50_ms = f["latency_ms_p50"].as_f64();
    run.latency_p99_ms = f["latency_ms_p99"].as_f64();
    run
}

fn daemon() -> PathBuf {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/streetwatch");
    assert!(
        p.exists(),
        "{} is missing: `cargo build --release --bin streetwatch` (make bench does)",
        p.display()
    );
    p
}

// ---------------------------------------------------------------------------
// The comparison

#[derive(Default)]
struct Round {
    bare: Run,
    python: Option<Run>,
    one: Run,
    /// The 1-camera run with one inference at a time (`runs = 1`).
    one_single: Run,
    over: Run,
    eighty: Run,
    /// The same two with one inference at a time (`runs = 1`).
    over_single: Run,
    eighty_single: Run,
    /// The 80 % load again, from live cameras: RTSP streams at 25 fps.
    eighty_live: Run,
    eighty_fps: f64,
    /// Cameras of the 80 % runs.
    eighty_cameras: usize,
}

impl Round {
    /// Where the daemon run of `step` goes.
    fn daemon(&mut self, step: &str) -> &mut Run {
        match step {
            "one" => &mut self.one,
            "one-single" => &mut self.one_single,
            "over" => &mut self.over,
            "over-single" => &mut self.over_single,
            "eighty" => &mut self.eighty,
            "eighty-single" => &mut self.eighty_single,
            "eighty-live" => &mut self.eighty_live,
            _ => unreachable!("no daemon run is called {step}"),
        }
    }
}

fn bench(plan: &Plan) {
    let broker = harness::Mosquitto::start();
    let vtest = common::cached("media/vtest.avi");
    let vtest_25 = vtest_at_25_fps(&vtest);
    let mut streams = LiveCameras::new(vtest_25);
    let py = python();
    let (load_before, started) = (loadavg(), Instant::now());
    let mut rounds = Vec::new();
    for r in 0..plan.rounds {
        let mut round = Round::default();
        let mut steps: Vec<&str> = vec![
            "bare",
            "python",
            "one",
            "one-single",
            "over",
            "over-single",
            "eighty",
            "eighty-single",
            "eighty-live",
        ];
        if r % 2 == 1 {
            steps[..6].reverse();
            steps[6..].reverse();
        }
        // The 80 % run needs this round's 1-camera rate: it always comes after it.
        for step in steps {
            eprintln!("round {}/{}: {step}", r + 1, plan.rounds);
            match step {
                "bare" => round.bare = run_bare(VTEST_FRAMES, plan.threads),
                "python" => {
                    round.python = py
                        .as_deref()
                        .map(|py| run_python(py, VTEST_FRAMES, plan.threads))
                }
                daemon => {
                    if daemon.starts_with("eighty") {
                        let capacity = round.one.fps();
                        // Enough cameras that each takes at most 8 of the clip's 10 fps: a
                        // camera asked for more than its source sends would make the load
                        // less than 80 %.
                        round.eighty_cameras = ((0.8 * capacity / 8.0).ceil() as usize).max(4);
                        round.eighty_fps =
                            ((0.8 * capacity / round.eighty_cameras as f64 * 10.0).round() / 10.0)
                                .clamp(0.1, 60.0);
                    }
                    // The watchers keep the live streams going for the run.
                    let (_watchers, urls) = match daemon {
                        "eighty-live" => streams.watch(round.eighty_cameras),
                        _ => (Watchers(Vec::new()), Vec::new()),
                    };
                    let real_time = Some(Duration::from_secs(plan.seconds));
                    let (cams, stop_after): (Vec<(&Path, f64, bool)>, _) = match daemon {
                        "one" | "one-single" => (vec![(vtest.as_path(), 60.0, false)], None),
                        "over" | "over-single" => {
                            (vec![(vtest.as_path(), 5.0, true); plan.cameras], real_time)
                        }
                        "eighty-live" => (
                            urls.iter()
                                .map(|u| (Path::new(u), round.eighty_fps, false))
                                .collect(),
                            real_time,
                        ),
                        _ => (
                            vec![(vtest.as_path(), round.eighty_fps, true); round.eighty_cameras],
                            real_time,
                        ),
                    };
                    let runs = usize::from(daemon.ends_with("-single"));
                    *round.daemon(daemon) =
                        run_daemon(broker.port, plan.threads, runs, &cams, stop_after);
                }
            }
        }
        rounds.push(round);
    }
    let table = report(plan, &rounds, py.is_some());
    let machine = machine(load_before, loadavg(), started.elapsed());
    let text = format!("{machine}\n{table}");
    println!("{text}");
    write_results(&text);
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn report(plan: &Plan, rounds: &[Round], python: bool) -> String {
    let med = |f: &dyn Fn(&Round) -> f64| median(rounds.iter().map(f).collect());
    let mut t = String::new();
    t += "| run | analysed frames/s | ratio to bare | per CPU-second | ratio to bare | peak RSS | inference p50 / p99 | capture→detection p50 / p99 |\n";
    t += "|---|---|---|---|---|---|---|---|\n";
    let ms = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.1}"));
    let mut row = |name: &str, get: &dyn Fn(&Round) -> Run| {
        let fps = med(&|r| get(r).fps());
        let fps_ratio = med(&|r| get(r).fps() / r.bare.fps());
        let cpu = med(&|r| get(r).per_cpu_s());
        let cpu_ratio = med(&|r| get(r).per_cpu_s() / r.bare.per_cpu_s());
        let rss = med(&|r| get(r).peak_rss_mb);
        let (p50, p99) = (med(&|r| get(r).p50_ms), med(&|r| get(r).p99_ms));
        let lat = |f: fn(&Run) -> Option<f64>| {
            let v: Vec<f64> = rounds.iter().filter_map(|r| f(&get(r))).collect();
            (!v.is_empty()).then(|| median(v))
        };
        let (l50, l99) = (lat(|r| r.latency_p50_ms), lat(|r| r.latency_p99_ms));
        t += &format!(
            "| {name} | {fps:.1} | {fps_ratio:.3} | {cpu:.1} | {cpu_ratio:.3} | {rss:.0} MB | {p50:.1} / {p99:.1} ms | {} / {} ms |\n",
            ms(l50),
            ms(l99)
        );
    };
    row("bare ONNX Runtime loop (Rust, `ort`)", &|r| r.bare.clone());
    if python {
        row("bare ONNX Runtime loop (Python, PyPI onnxruntime)", &|r| {
            r.python.clone().unwrap_or_default()
        });
    }
    row("streetwatch, 1 camera, every frame", &|r| r.one.clone());
    row(
        "streetwatch, 1 camera, every frame, one inference at a time (`runs = 1`)",
        &|r| r.one_single.clone(),
    );
    let over = format!(
        "streetwatch, {} real-time cameras × 5 fps (over capacity)",
        plan.cameras
    );
    row(&over, &|r| r.over.clone());
    row(
        &format!("{over}, one inference at a time (`runs = 1`)"),
        &|r| r.over_single.clone(),
    );
    let eighty = format!(
        "streetwatch, {} real-time cameras × {:.1} fps (80 % of its 1-camera rate)",
        med(&|r| r.eighty_cameras as f64),
        med(&|r| r.eighty_fps)
    );
    row(&eighty, &|r| r.eighty.clone());
    row(&format!("{eighty}, `runs = 1`"), &|r| {
        r.eighty_single.clone()
    });
    row(&format!("{eighty}, {EIGHTY_LIVE}"), &|r| {
        r.eighty_live.clone()
    });
    let gain = med(&|r| r.over.fps() / r.over_single.fps());
    t += &format!(
        "\nOver capacity, analysed frames/s with two inferences at once (the default on the CPU) / one at a time: {gain:.3} (median of the rounds' ratios).\n"
    );
    for (what, get) in [
        (
            String::new(),
            (|r: &Round| r.eighty.clone()) as fn(&Round) -> Run,
        ),
        (", `runs = 1`".into(), |r: &Round| r.eighty_single.clone()),
        (format!(", {EIGHTY_LIVE}"), |r: &Round| {
            r.eighty_live.clone()
        }),
    ] {
        let lat_ratio = med(&|r| {
            let run = get(r);
            run.latency_p99_ms.unwrap_or(f64::NAN) / run.p99_ms
        });
        // Inferences side by side take longer each: against the model's own p99 too.
        let bare_ratio = med(&|r| get(r).latency_p99_ms.unwrap_or(f64::NAN) / r.bare.p99_ms);
        let dropped = med(&|r| get(r).dropped as f64);
        t += &format!(
            "At 80 % of capacity{what}: capture→detection p99 / its own inference p99 = {lat_ratio:.2}, / the bare loop's inference p99 = {bare_ratio:.2} (medians of rounds; frames dropped or shed per run: {dropped:.0}).\n"
        );
    }
    t += &format!(
        "\n{} rounds, {} s per real-time run; frames/s over each process's whole wall time (start-up included), figures from `wait4`; medians over rounds, ratios taken within a round.\n",
        plan.rounds, plan.seconds
    );
    if !python {
        t += "The Python loop was skipped: the PyPI onnxruntime is not in the set-up's conversion venv (`deploy/setup.sh check` adds it).\n";
    }
    t
}

/// How the third 80 % run's cameras are described.
const EIGHTY_LIVE: &str = "live: RTSP streams at 25 fps";

/// vtest.avi's 795 frames, every one, at 25 fps (the rate of most street cameras,
/// where vtest.avi has 10), as H.264 with a key frame every 2 s and no B-frames,
/// as cameras send it: made once by the ffmpeg CLI into the cache.
fn vtest_at_25_fps(vtest: &Path) -> PathBuf {
    let out = streetwatch::cache_dir().join("bench/vtest-25fps.mp4");
    if out.exists() {
        return out;
    }
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let part = out.with_extension("part.mp4");
    let ok = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-r", "25", "-i"])
        .arg(vtest)
        .args([
            "-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast",
        ])
        .args(["-g", "50", "-bf", "0"])
        .arg(&part)
        .status()
        .expect("ffmpeg runs")
        .success();
    assert!(ok, "ffmpeg could not re-time vtest.avi to 25 fps");
    std::fs::rename(&part, &out).unwrap();
    out
}

/// Live cameras: real RTSP servers, each looping the 25 fps clip on a stream of
/// its own. A camera's frames come when its own clock says, whoever watches:
/// before each run, each stream is started by a watcher of its own (`ffmpeg -c
/// copy`, which decodes nothing) after a random pause, so the streams' frames
/// fall at unrelated instants of the 40 ms frame interval, as on a street, not at
/// instants the daemon's start-up chose; a new draw every run.
struct LiveCameras {
    clip: PathBuf,
    servers: Vec<harness::RtspServer>,
}

/// The watchers that keep a run's streams going; they stop when this is dropped.
struct Watchers(Vec<std::process::Child>);

impl LiveCameras {
    fn new(clip: PathBuf) -> Self {
        Self {
            clip,
            servers: Vec::new(),
        }
    }

    /// Starts `n` streams, each after a random pause of up to a second, and gives
    /// their URLs.
    fn watch(&mut self, n: usize) -> (Watchers, Vec<String>) {
        while self.servers.len() < n {
            let media = harness::RtspMedia::File(self.clip.clone());
            self.servers.push(harness::RtspServer::start(media));
        }
        let mut seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos() as u64;
        let mut watchers = Vec::new();
        for server in &self.servers[..n] {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            std::thread::sleep(Duration::from_millis((seed >> 33) % 1000));
            let watcher = Command::new("ffmpeg")
                .args([
                    "-nostdin",
                    "-loglevel",
                    "error",
                    "-rtsp_transport",
                    "tcp",
                    "-i",
                ])
                .arg(server.url())
                .args(["-c", "copy", "-f", "null", "-"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("ffmpeg runs");
            watchers.push(watcher);
        }
        std::thread::sleep(Duration::from_secs(2));
        let urls = self.servers[..n].iter().map(|s| s.url()).collect();
        (Watchers(watchers), urls)
    }
}

impl Drop for Watchers {
    fn drop(&mut self) {
        for w in &mut self.0 {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn machine(load_before: String, load_after: String, took: Duration) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    let lib = streetwatch::detect::runtime_path(None);
    let ort = streetwatch::detect::runtime_version(&lib).unwrap_or_else(|e| e.to_string());
    let commit = Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let date = Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    format!(
        "Measured {date} at commit {commit}: {cpu}, {cores} cores, Linux {kernel}, ONNX Runtime {ort} (CPU), \
         default model NanoDet-m 416, `vtest.avi` 768×576; load average {load_before} before, {load_after} after; {:.0} s in all.\n",
        took.as_secs_f64()
    )
}

const BEGIN: &str = "<!-- e2e:begin (written by benches/e2e.rs) -->";
const END: &str = "<!-- e2e:end -->";

/// Replaces the text between the markers in benches/RESULTS.md (or appends it).
fn write_results(text: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/RESULTS.md");
    let old = std::fs::read_to_string(&path).unwrap_or_default();
    let block = format!("{BEGIN}\n{text}{END}");
    let new = match (old.find(BEGIN), old.find(END)) {
        (Some(a), Some(b)) if a < b => format!("{}{block}{}", &old[..a], &old[b + END.len()..]),
        _ => format!("{old}\n## Latest `make bench`\n\n{block}\n"),
    };
    std::fs::write(&path, new).unwrap();
    eprintln!("written: {}", path.display());
}
