//! Four cameras offering more frames than the model can analyse, through the
//! real daemon: three busy cameras replay a 50 fps clip in real time at
//! `fps = 50`, a quiet one the same clip at `fps = 0.5`. Every camera gets frames
//! analysed, the busy ones in equal shares; frames are shed (and counted per
//! camera, in the summary and on the stats topic) exactly where the load
//! exceeded what the detector could take: at the busy cameras, never at the
//! quiet one. Latency stays bounded because stale frames are replaced, not
//! queued. Once with the default model (fixed batch: `max_batch = 4` is
//! refused with a warning naming the model), once with its dynamic-batch
//! variant, where frames of different cameras run as one inference. And a
//! lone camera reading a file as fast as it is analysed: its next frame is
//! looked at, and waits at the detector, while the detector works on the last.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

/// The runs load both cores; one at a time.
static HEAVY: Mutex<()> = Mutex::new(());

const BUSY: [&str; 3] = ["busy1", "busy2", "busy3"];
const CLIP_S: u64 = 12;

/// The first minute of vtest.avi (10 fps) played 5× faster: 12 s at 50 fps, 600 frames.
fn fast_clip(dir: &Path) -> std::path::PathBuf {
    let out = dir.join("fast50.avi");
    let ok = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-i"])
        .arg(common::media("vtest.avi"))
        // Frame n at n/50 s (a 1/50 time base, so no timestamp is rounded away).
        .args([
            "-vf",
            "settb=1/50,setpts=N",
            "-r",
            "50",
            "-t",
            &CLIP_S.to_string(),
        ])
        .args(["-c:v", "mpeg4", "-q:v", "4", "-an"])
        .arg(&out)
        .status()
        .expect("ffmpeg runs")
        .success();
    assert!(ok, "ffmpeg could not make the 50 fps clip");
    out
}

/// Per camera, from the daemon's closing summary: (decoded, analysed, dropped, latency max ms).
fn summary(stderr: &str) -> HashMap<String, (u64, u64, u64, f64)> {
    stderr
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("streetwatch: camera ")?;
            let id = rest.split(':').next()?.to_string();
            let latency = l
                .split("max ")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN);
            Some((
                id,
                (
                    common::number_before(l, " frames decoded"),
                    common::number_before(l, " analysed"),
                    common::number_before(l, " dropped"),
                    latency,
                ),
            ))
        })
        .collect()
}

/// Runs the daemon on four real-time cameras over `model` with `[detector] max_batch = 4`;
/// returns its stderr and every stats report published meanwhile.
/// The four cameras through the daemon, with `[detector] runs = runs` (0: its default).
fn overload(model: &Path, runs: usize) -> (String, Vec<serde_json::Value>) {
    let broker = common::Mosquitto::start();
    let stats = common::Subscriber::connect(broker.port, "streetwatch/fair/stats");
    let dir = tempfile::tempdir().unwrap();
    let clip = fast_clip(dir.path());
    let mut text = format!(
        r#"
[node]
id = "fair"
[mqtt]
url = "{url}"
stats_interval_s = 1
[model]
path = "{model}"
[detector]
max_batch = 4
max_wait_ms = 5
runs = {runs}
[outbox]
path = "{dir}/outbox.sqlite"
"#,
        url = broker.url(),
        model = model.display(),
        dir = dir.path().display(),
    );
    for (id, fps) in BUSY.iter().map(|b| (*b, 50.0)).chain([("quiet", 0.5)]) {
        text.push_str(&format!(
            "[[camera]]\nid = \"{id}\"\nurl = \"{}\"\nfps = {fps}\nrealtime = true\n",
            clip.display()
        ));
    }
    let cfg = common::write_config(dir.path(), &text);
    let stderr = common::run_daemon_to_end(&cfg, "info");
    let reports = stats
        .drain(Duration::from_millis(500))
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    (stderr, reports)
}

/// Frames each inference thread served, from its `detector stopped` line.
fn served(stderr: &str) -> Vec<u64> {
    stderr
        .lines()
        .filter(|l| l.contains("detector stopped"))
        .map(|l| {
            l.split(" frames=")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .and_then(|v| v.parse().ok())
                .unwrap_or_else(|| panic!("{l}"))
        })
        .collect()
}

/// What must hold for any model: fair shares, drops exactly where the load was too
/// high, bounded latency, and the same picture on the stats topic.
fn assert_fair_and_shed_where_overloaded(stderr: &str, reports: &[serde_json::Value]) -> Waits {
    let cams = summary(stderr);
    assert_eq!(cams.len(), 4, "{stderr}");
    for l in stderr.lines().filter(|l| l.starts_with("streetwatch: ")) {
        println!("{l}");
    }
    let analysed: Vec<u64> = BUSY.iter().map(|b| cams[*b].1).collect();
    let (lo, hi) = (
        *analysed.iter().min().unwrap(),
        *analysed.iter().max().unwrap(),
    );
    // Each busy camera offers 50 frames/s for 12 s; the model takes far fewer in total.
    assert!(lo >= 20, "every busy camera is analysed: {cams:?}");
    assert!(
        hi as f64 <= lo as f64 * 1.5,
        "busy cameras offering the same load get shares within 1.5×: {cams:?}"
    );
    for b in BUSY {
        let (decoded, a, d, latency_max) = cams[b];
        assert!(
            d > 0,
            "{b} offered more than the detector could take: frames shed and counted: {cams:?}"
        );
        // At fps = 50 on a 50 fps clip every decoded frame is sampled.
        assert_eq!(
            a + d,
            decoded,
            "{b}: every frame analysed or counted as dropped: {cams:?}"
        );
        // A queue that grew would reach seconds by the end of 12 s at this overload.
        assert!(latency_max < 2000.0, "{b}: latency stays bounded: {cams:?}");
    }
    let (_, quiet_analysed, quiet_dropped, _) = cams["quiet"];
    assert_eq!(
        quiet_dropped, 0,
        "the quiet camera (0.5 fps) loses nothing: {cams:?}"
    );
    assert_eq!(
        quiet_analysed,
        CLIP_S / 2,
        "the quiet camera gets every frame analysed (one each 2 s of the 12 s clip): {cams:?}"
    );

    // The stats topic shows the same, while it happens.
    assert!(reports.len() >= 5, "a report every second: {reports:?}");
    let last = &reports.last().unwrap()["cameras"];
    for b in BUSY {
        assert!(
            last[b]["frames_dropped"].as_u64().unwrap() > 0,
            "{b} sheds, visibly: {last}"
        );
    }
    assert_eq!(last["quiet"]["frames_dropped"], 0, "{last}");
    let mut waits = Waits::default();
    for r in reports {
        for (id, c) in r["cameras"].as_object().unwrap() {
            // A camera task hands the detector one frame at a time, so overload is shed at
            // the camera (frames_dropped), never in the detector's queue.
            assert_eq!(c["frames_shed"], 0, "{id}: {c}");
            let q = c["detector_queue"].as_u64().unwrap();
            assert!(q <= 1, "{id}: at most one frame waits per camera: {c}");
            if BUSY.contains(&id.as_str()) {
                waits.busy_waiting += q;
            }
        }
        waits.reports += 1;
    }
    println!("{waits:?}");
    waits
}

/// Over all stats reports: how many, and busy cameras' frames seen waiting, summed.
#[derive(Debug, Default)]
struct Waits {
    reports: u64,
    busy_waiting: u64,
}

#[test]
fn four_cameras_over_capacity_are_all_analysed_and_shed_only_where_overloaded() {
    let _one = HEAVY.lock().unwrap_or_else(|p| p.into_inner());
    let model = common::default_model();
    let (stderr, reports) = overload(&model, 0);
    // The default model has a fixed batch of 1: max_batch = 4 is refused, by name.
    let warning = stderr
        .lines()
        .find(|l| l.contains("batching is off for model"))
        .unwrap_or_else(|| panic!("no warning that batching is off: {stderr}"));
    assert!(
        warning.contains(&model.display().to_string()) && warning.contains("fixed batch"),
        "{warning}"
    );
    let stopped = stderr
        .lines()
        .find(|l| l.contains("detector stopped"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(stopped.contains("mean_batch=1.00"), "{stopped}");
    // Frames waited: a second session opened and ran beside the first (the default on
    // the CPU), and both served frames.
    assert!(
        stderr.contains("2 inferences run at once from now on"),
        "{stderr}"
    );
    let served = served(&stderr);
    assert!(
        served.len() == 2 && served.iter().all(|&n| n > 0),
        "two inference threads, each ran frames: {served:?}\n{stderr}"
    );
    let waits = assert_fair_and_shed_where_overloaded(&stderr, &reports);
    // Three busy cameras, two runs: while both run, the third's frame waits its turn,
    // so reports see busy cameras in the queue.
    assert!(
        waits.busy_waiting >= waits.reports / 2,
        "busy cameras are seen waiting for the detector: {waits:?} in {reports:?}"
    );
}

#[test]
fn with_a_dynamic_batch_model_cameras_share_inferences_and_stay_fair() {
    let _one = HEAVY.lock().unwrap_or_else(|p| p.into_inner());
    let model = common::cached("models/variants/dynbatch.onnx");
    // One run, so every frame that waits joins the next batch.
    let (stderr, reports) = overload(&model, 1);
    assert!(
        stderr.contains("batching frames of different cameras into one inference"),
        "{stderr}"
    );
    assert!(!stderr.contains("batching is off"), "{stderr}");
    let stopped = stderr
        .lines()
        .find(|l| l.contains("detector stopped"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let mean: f64 = stopped
        .split("mean_batch=")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{stopped}"));
    // Three busy cameras always have a frame ready: batches of three or four.
    assert!(
        mean >= 2.5,
        "frames of several cameras run together: {stopped}"
    );
    let waits = assert_fair_and_shed_where_overloaded(&stderr, &reports);
    // Batched, the busy cameras' frames ride in the running batch, not in the queue:
    // they wait only while a batch gathers (5 ms), so reports rarely see them.
    assert!(
        waits.busy_waiting <= waits.reports,
        "busy cameras' frames do not queue behind a batch: {waits:?} in {reports:?}"
    );
}

/// Cameras started together open their sources [`streetwatch::node::START_SPACING`]
/// apart, in the order of the configuration: their first looks (the detector on
/// every frame until their tracks are confirmed) do not all queue at once. Three
/// cameras on 3 s of the sample video through the real daemon; the daemon's JSON log
/// says when each source opened.
#[test]
fn cameras_started_together_open_their_sources_spaced_in_config_order() {
    let _one = HEAVY.lock().unwrap_or_else(|p| p.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let clip = common::vtest_head(dir.path(), 3);
    let ids = ["north", "east", "south"];
    let mut text = format!(
        "[node]\nid = \"pole\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\n[outbox]\npath = \"{}\"\n",
        common::free_port(),
        dir.path().join("outbox.sqlite").display()
    );
    for id in ids {
        text += &format!(
            "[[camera]]\nid = \"{id}\"\nurl = \"{}\"\nfps = 5\nrealtime = false\n",
            clip.display()
        );
    }
    let cfg = common::write_config(dir.path(), &text);
    let out = common::output_ok(
        Command::new(common::bin())
            .args(["--log-format", "json", "run", "--config"])
            .arg(&cfg),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let opened: Vec<(String, jiff::Timestamp)> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["message"] == "camera source opened")
        .map(|v| {
            let camera = v["fields"]["camera"].as_str().unwrap().to_string();
            (camera, v["timestamp"].as_str().unwrap().parse().unwrap())
        })
        .collect();
    let order: Vec<&str> = opened.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(order, ids, "{stderr}");
    let spacing = streetwatch::node::START_SPACING.as_secs_f64();
    for pair in opened.windows(2) {
        let gap = pair[1].1.duration_since(pair[0].1).as_secs_f64();
        // Opening a file takes a few milliseconds, more for one than another.
        assert!(
            (spacing - 0.05..spacing + 1.0).contains(&gap),
            "{} opened {gap:.3} s after {}: {stderr}",
            pair[1].0,
            pair[0].0
        );
    }
}

/// A file read as fast as it is analysed (no motion gate) has its next frame looked
/// at while the detector works on the last, and handed to the detector at once:
/// the stats reports see that frame waiting in the detector's queue, which a camera
/// handing over one frame at a time never shows. Every frame is analysed, none is
/// dropped or shed, and the events are those of the same file analysed again.
#[test]
fn a_file_read_as_fast_as_analysed_keeps_its_next_frame_at_the_detector() {
    let _one = HEAVY.lock().unwrap_or_else(|p| p.into_inner());
    let broker = common::Mosquitto::start();
    let stats = common::Subscriber::connect(broker.port, "swahead/ahead/stats");
    let events = common::Subscriber::connect(broker.port, "swahead/+/events/#");
    let dir = tempfile::tempdir().unwrap();
    let clip = common::vtest_head(dir.path(), 40);
    let run = |name: &str| {
        let text = format!(
            r#"
[node]
id = "ahead"
[mqtt]
url = "{url}"
topic_prefix = "swahead"
stats_interval_s = 1
[outbox]
path = "{dir}/{name}.sqlite"

[[camera]]
id = "file"
url = "{clip}"
fps = 60
[[camera.zone]]
id = "road"
polygon = [[0.0, 0.3], [1.0, 0.3], [1.0, 1.0], [0.0, 1.0]]
[camera.zone.congestion]
classes = ["person"]
levels = {{ light = 3, moderate = 6, heavy = 10 }}
"#,
            url = broker.url(),
            dir = dir.path().display(),
            clip = clip.display(),
        );
        let cfg = common::write_config(dir.path(), &text);
        let stderr = common::run_daemon_to_end(&cfg, "info");
        let (decoded, analysed, dropped, _) = summary(&stderr)["file"];
        assert!(decoded >= 400, "{stderr}");
        assert_eq!((analysed, dropped), (decoded, 0), "{stderr}");
        let published: Vec<_> = events
            .drain(Duration::from_millis(500))
            .iter()
            .map(|m| {
                let e: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
                let s = |k: &str| e[k].to_string();
                (s("kind"), s("phase"), s("zone"), s("stream_time_s"))
            })
            .collect();
        (stderr, published)
    };
    let (stderr, first) = run("first");
    let reports: Vec<serde_json::Value> = stats
        .drain(Duration::from_millis(500))
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .filter(|r: &serde_json::Value| r["cameras"]["file"].is_object())
        .collect();
    let queued: Vec<u64> = reports
        .iter()
        .map(|r| r["cameras"]["file"]["detector_queue"].as_u64().unwrap())
        .collect();
    for r in &reports {
        assert_eq!(r["cameras"]["file"]["frames_shed"], 0, "{r}");
    }
    assert!(
        queued.len() >= 5 && queued.iter().all(|&q| q <= 1),
        "{queued:?}\n{stderr}"
    );
    assert!(
        queued.iter().filter(|&&q| q == 1).count() >= 2,
        "the next frame is seen waiting at the detector: {queued:?}\n{stderr}"
    );
    assert!(!first.is_empty(), "{stderr}");
    let (_, again) = run("again");
    assert_eq!(first, again);
}
