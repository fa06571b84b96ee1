//! `streetwatch replay`: the events it writes are the ones `run` publishes to a
//! real mosquitto for the same clip (ids and wall-clock times aside), and its
//! annotated video decodes with FFmpeg to one picture per analysed frame, with
//! the zones drawn.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

/// The litter scenario's zone and rule (tests/scenarios/litter_drop.toml), with the
/// motion gate, and congestion of people over the whole picture: starts (with
/// evidence and masks), updates and ends. The camera has a site and the pavement
/// its own grid cell.
fn config(broker: &str, outbox: &Path, clip: &Path) -> String {
    format!(
        r#"
[node]
id = "replay-node"

[mqtt]
url = "{broker}"
topic_prefix = "swtest"

[outbox]
path = "{outbox}"

[evidence]
max_width = 640

[[camera]]
id = "street"
url = "{clip}"
fps = 5
address = "12 Jingmi Rd"
grid = "0231-07"

[camera.scene]
motion_gate = true
recheck_s = 2.0

[[camera.zone]]
id = "pavement"
grid = "0231-08"
polygon = [[0.3776, 0.4618], [0.6771, 0.4618], [0.6771, 0.6458], [0.5729, 0.5903], [0.4557, 0.5295], [0.3776, 0.4948]]
[camera.zone.litter]
classes = ["cup", "bottle"]
static_change = true
dwell_s = 5.0
clear_s = 3.0

[[camera.zone]]
id = "plaza"
polygon = [[0, 0], [1, 0], [1, 1], [0, 1]]
[camera.zone.congestion]
classes = ["person"]
levels.light = 3
levels.moderate = 6
levels.heavy = 10
min_duration_s = 1
clear_duration_s = 2
update_interval_s = 5
"#,
        outbox = outbox.display(),
        clip = clip.display()
    )
}

/// An event without what differs from run to run: its ids, its wall-clock times, and
/// the evidence topic (named by the id).
fn comparable(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    for key in ["id", "incident", "ts", "started_at", "ended_at"] {
        if o.contains_key(key) {
            o.insert(key.into(), Value::String("·".into()));
        }
    }
    if o.contains_key("evidence") {
        o.insert("evidence".into(), Value::String("evidence/·".into()));
    }
    v
}

#[test]
fn replay_writes_the_events_run_publishes_for_the_same_clip() {
    let clip = common::media("scenarios/litter_drop.mp4");
    let broker = common::Mosquitto::start();
    let sub = common::Subscriber::connect(broker.port, "swtest/replay-node/events/#");
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write_config(
        dir.path(),
        &config(&broker.url(), &dir.path().join("outbox.sqlite"), &clip),
    );
    common::run_daemon_to_end(&cfg, "warn");
    let published: Vec<Value> = sub
        .drain(Duration::from_secs(2))
        .iter()
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();

    // The broker is gone for the replay: it needs none.
    drop(broker);
    let events_out = dir.path().join("events.jsonl");
    let out = Command::new(common::bin())
        .args(["replay", "--config"])
        .arg(&cfg)
        .arg("--events-out")
        .arg(&events_out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // Not a terminal: plain progress lines, then the summary.
    assert!(stderr.contains("replay: "), "{stderr}");
    assert!(stderr.contains(" fps analysed"), "{stderr}");
    let replayed: Vec<Value> = std::fs::read_to_string(&events_out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    for v in &replayed {
        common::assert_schema_valid(v);
    }
    let kinds = |evs: &[Value]| {
        evs.iter()
            .map(|v| format!("{}/{}", v["type"], v["phase"]))
            .collect::<Vec<_>>()
    };
    assert!(
        kinds(&replayed).iter().any(|k| k == "\"litter\"/\"start\""),
        "{:?}",
        kinds(&replayed)
    );
    assert!(
        kinds(&replayed)
            .iter()
            .any(|k| k == "\"congestion\"/\"start\""),
        "{:?}",
        kinds(&replayed)
    );
    // Evidence events say what their JPEG masks: people's heads were in the picture.
    assert!(
        replayed
            .iter()
            .any(|v| v["masked"].as_array().is_some_and(|m| !m.is_empty())),
        "no event reports masked regions"
    );
    // Events say where, as `run`'s do: the camera's site, the zone's own grid.
    for v in &replayed {
        let grid = if v["zone"] == "pavement" {
            "0231-08"
        } else {
            "0231-07"
        };
        assert_eq!(
            v["site"],
            serde_json::json!({"address": "12 Jingmi Rd", "grid": grid}),
            "{v}"
        );
    }
    let published: Vec<Value> = published.into_iter().map(comparable).collect();
    let replayed: Vec<Value> = replayed.into_iter().map(comparable).collect();
    assert_eq!(published.len(), replayed.len());
    for (i, (p, r)) in published.iter().zip(&replayed).enumerate() {
        assert_eq!(p, r, "event {i} differs");
    }
}

fn probe_frames(video: &Path) -> (u64, String) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames,codec_name,width,height",
            "-of",
            "default=noprint_wrappers=1",
        ])
        .arg(video)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let frames = text
        .lines()
        .find_map(|l| l.strip_prefix("nb_read_frames="))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("ffprobe: {text}"));
    (frames, text)
}

#[test]
fn an_annotated_replay_is_h264_with_one_picture_per_analysed_frame() {
    // The scene model on RGB, and on the decoder's luma plane: there the frames the
    // motion gate holds have no RGB of their own until the replay asks for it.
    for from_luma in [false, true] {
        annotated_replay(from_luma);
    }
}

fn annotated_replay(from_luma: bool) {
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        "mqtt://127.0.0.1:1",
        &dir.path().join("outbox.sqlite"),
        &common::media("vtest.avi"),
    );
    let text = text.replace(
        "motion_gate = true\n",
        &format!("motion_gate = true\nfrom_luma = {from_luma}\n"),
    );
    assert!(text.contains("from_luma"), "{text}");
    let cfg = common::write_config(dir.path(), &text);
    let video = dir.path().join("annotated.mp4");
    let clip = common::media("scenarios/litter_drop.mp4");
    let out = Command::new(common::bin())
        .args(["replay", "--camera", "street", "--config"])
        .arg(&cfg)
        .arg("--clip")
        .arg(&clip)
        .arg("--annotate")
        .arg(&video)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let summary = stderr
        .lines()
        .find(|l| l.contains("frames analysed"))
        .unwrap_or_else(|| panic!("{stderr}"));
    let analysed = common::number_before(summary, "frames analysed");
    let drawn = common::number_before(summary, "frames drawn");
    let (frames, info) = probe_frames(&video);
    assert!(info.contains("codec_name=h264"), "{info}");
    assert!(
        info.contains("width=768") && info.contains("height=576"),
        "{info}"
    );
    // 50 s at 5 frames a second, each a picture of the video, whether the detector
    // ran on it or the motion gate held it.
    assert_eq!(drawn, 250, "{summary}");
    assert!(analysed > 0 && analysed < drawn, "{summary}");
    assert_eq!(frames, drawn, "{info}");

    // The first picture: the pavement zone outlined in the litter colour.
    let png = dir.path().join("first.png");
    let st = Command::new("ffmpeg")
        .args(["-v", "error", "-y", "-i"])
        .arg(&video)
        .args(["-frames:v", "1"])
        .arg(&png)
        .status()
        .unwrap();
    assert!(st.success());
    let img = image::open(&png).unwrap().to_rgb8();
    let orange = streetwatch::draw::colour::ORANGE.0;
    // The zone's left edge, x = 0.3776 × 768 = 290, from y = 266 to 285.
    let near = |x: u32, y: u32| {
        let p = img.get_pixel(x, y).0;
        p.iter()
            .zip(orange)
            .all(|(a, b)| (*a as i32 - b as i32).abs() <= 60)
    };
    assert!(near(290, 276), "{:?}", img.get_pixel(290, 276));
    assert!(!near(400, 330), "{:?}", img.get_pixel(400, 330));

    // Every picture, held by the gate or not, shows the street, not black: the
    // mean luma of each (FFmpeg's signalstats YAVG).
    let out = common::output_ok(
        Command::new("ffmpeg")
            .args(["-v", "error", "-i"])
            .arg(&video)
            .args([
                "-vf",
                "signalstats,metadata=print:key=lavfi.signalstats.YAVG:file=-",
                "-f",
                "null",
                "-",
            ]),
    );
    let means: Vec<f64> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("lavfi.signalstats.YAVG="))
        .map(|v| v.trim().parse().unwrap())
        .collect();
    assert_eq!(means.len() as u64, drawn, "one mean per picture");
    let darkest = means.iter().copied().fold(f64::INFINITY, f64::min);
    assert!(
        darkest > 40.0,
        "from_luma = {from_luma}: a picture is dark (mean luma {darkest:.1})"
    );
}

#[test]
fn replay_refuses_live_sources_and_unknown_cameras_with_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write_config(
        dir.path(),
        "[node]\nid = \"n\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n\
         [[camera]]\nid = \"gate\"\nurl = \"rtsp://10.0.0.9/stream\"\n",
    );
    for (args, want) in [
        (vec![], "camera[gate].url"),
        (vec!["--camera", "kerb"], "no camera \"kerb\""),
    ] {
        let out = Command::new(common::bin())
            .args(["replay", "--config"])
            .arg(&cfg)
            .args(&args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(want), "{args:?}: {stderr}");
    }
}
