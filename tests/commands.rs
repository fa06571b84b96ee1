//! Remote commands over a real mosquitto: results for every command, garbage
//! refused without effect, snapshots, camera enable/disable, reload.

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

fn config(broker: &str, dir: &std::path::Path, fps: u32) -> String {
    let clip = common::media("vtest.avi");
    config_of(broker, dir, fps, &clip.display().to_string()) + "loop = true\nrealtime = true\n"
}

/// The node with one camera `campus` on `url`, whose table the caller may go on.
fn config_of(broker: &str, dir: &std::path::Path, fps: u32, url: &str) -> String {
    format!(
        r#"
[node]
id = "cmd-node"
[mqtt]
url = "{broker}"
topic_prefix = "swc"
[outbox]
path = "{dir}/outbox.sqlite"
[[camera]]
id = "campus"
url = "{url}"
fps = {fps}
"#,
        dir = dir.display(),
    )
}

/// Waits for the next message on `topic` (others are skipped).
fn next_on(sub: &common::Subscriber, topic: &str) -> common::Message {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = sub
            .recv(left)
            .unwrap_or_else(|| panic!("nothing on {topic}"));
        if m.topic == topic {
            return m;
        }
    }
}

fn command(port: u16, sub: &common::Subscriber, verb: &str, payload: &str) -> Value {
    common::publish(
        port,
        &format!("swc/cmd-node/cmd/{verb}"),
        payload.as_bytes(),
    );
    next_result(sub)
}

/// The next command result.
fn next_result(sub: &common::Subscriber) -> Value {
    let m = next_on(sub, "swc/cmd-node/cmd/result");
    serde_json::from_slice(&m.payload).unwrap()
}

/// The daemon on `cfg`, once its camera is online; and the command results.
fn start_daemon(port: u16, cfg: &std::path::Path) -> (common::Daemon, common::Subscriber) {
    let results = common::Subscriber::connect(port, "swc/cmd-node/cmd/result");
    let states = common::Subscriber::connect(port, "swc/cmd-node/cameras/+/status");
    let daemon = common::Daemon(
        std::process::Command::new(common::bin())
            .args(["run", "--config"])
            .arg(cfg)
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    camera_state(&states, "online");
    (daemon, results)
}

/// Stops the daemon as systemd would; it must exit cleanly.
fn stop_daemon(mut daemon: common::Daemon) {
    common::signal(daemon.id(), "TERM");
    let status = daemon.wait().unwrap();
    assert!(status.success(), "{status}");
}

fn camera_state(sub: &common::Subscriber, want: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = next_on(sub, "swc/cmd-node/cameras/campus/status");
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        if v["state"] == want {
            return;
        }
        assert!(Instant::now() < deadline, "camera never {want}");
    }
}

/// Asks for a snapshot until one succeeds: a camera just (re)started has no frame yet.
fn snapshot_once_running(port: u16, results: &common::Subscriber) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = command(port, results, "snapshot", r#"{"camera": "campus"}"#);
        if r["ok"] == true {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "camera never analysed again: {r}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn commands_steer_the_node_and_garbage_changes_nothing() {
    let broker = common::Mosquitto::start();
    let port = broker.port;
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write_config(dir.path(), &config(&broker.url(), dir.path(), 2));
    let snaps = common::Subscriber::connect(port, "swc/cmd-node/snapshots/#");
    let (mut daemon, results) = start_daemon(port, &cfg);

    // Garbage: each gets an error result, with the request id when it could be read.
    let r = command(port, &results, "reload", "{not json");
    assert_eq!(r["ok"], false);
    assert!(r["error"].as_str().unwrap().contains("not JSON"), "{r}");
    let r = command(port, &results, "reboot", r#"{"id": "g2"}"#);
    assert_eq!(
        (r["ok"].clone(), r["id"].clone()),
        (Value::from(false), Value::from("g2"))
    );
    assert!(
        r["error"].as_str().unwrap().contains("unknown command"),
        "{r}"
    );
    let huge = format!(r#"{{"id": "g3", "camera": "{}"}}"#, "x".repeat(1 << 20));
    let r = command(port, &results, "snapshot", &huge);
    assert_eq!(r["ok"], false);
    assert!(r["error"].as_str().unwrap().contains("larger"), "{r}");
    let r = command(
        port,
        &results,
        "camera/disable",
        r#"{"id": "g4", "camera": "nope"}"#,
    );
    assert_eq!(r["ok"], false);
    assert!(r["error"].as_str().unwrap().contains("nope"), "{r}");
    let r = command(port, &results, "snapshot", r#"{"id": "g5"}"#);
    assert!(r["error"].as_str().unwrap().contains("camera"), "{r}");

    // Snapshot: a JPEG of the latest frame.
    let r = command(
        port,
        &results,
        "snapshot",
        r#"{"id": "s1", "camera": "campus"}"#,
    );
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(r["id"], "s1");
    assert_eq!(
        (
            r["result"]["width"].as_u64(),
            r["result"]["height"].as_u64()
        ),
        (Some(768), Some(576))
    );
    let jpeg = next_on(&snaps, "swc/cmd-node/snapshots/campus").payload;
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8], "a JPEG");
    assert_eq!(jpeg.len() as u64, r["result"]["bytes"].as_u64().unwrap());
    let img = image::load_from_memory(&jpeg).unwrap();
    assert_eq!((img.width(), img.height()), (768, 576));

    // Disable, then enable.
    let r = command(
        port,
        &results,
        "camera/disable",
        r#"{"id": "d1", "camera": "campus"}"#,
    );
    assert_eq!(
        (r["ok"].clone(), r["result"]["changed"].clone()),
        (Value::from(true), Value::from(true)),
        "{r}"
    );
    let r = command(port, &results, "snapshot", r#"{"camera": "campus"}"#);
    assert_eq!(r["ok"], false, "a disabled camera has no frame: {r}");
    let r = command(
        port,
        &results,
        "camera/enable",
        r#"{"id": "e1", "camera": "campus"}"#,
    );
    assert_eq!(r["ok"], true, "{r}");
    // Analysing again: a snapshot succeeds once a frame went through. (The retained
    // status may not show the short offline spell: it carries the latest state.)
    snapshot_once_running(port, &results);

    // Reload: a camera setting applies; a broker change is refused and changes nothing.
    std::fs::write(&cfg, config(&broker.url(), dir.path(), 3)).unwrap();
    let r = command(port, &results, "reload", r#"{"id": "r1"}"#);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        r["result"]["restarted"],
        serde_json::json!(["campus"]),
        "{r}"
    );
    std::fs::write(&cfg, config("mqtt://127.0.0.1:1", dir.path(), 3)).unwrap();
    let r = command(port, &results, "reload", r#"{"id": "r2"}"#);
    assert_eq!(r["ok"], false, "{r}");
    assert!(r["error"].as_str().unwrap().contains("[mqtt]"), "{r}");
    std::fs::write(&cfg, "this is not toml").unwrap();
    let r = command(port, &results, "reload", "");
    assert_eq!(r["ok"], false, "{r}");

    // Still working after all of it (once the restarted camera analysed a frame).
    snapshot_once_running(port, &results);
    assert!(daemon.try_wait().unwrap().is_none(), "daemon still running");
    stop_daemon(daemon);
}

/// A clip of one still frame of the sample video, `seconds` long at 10 fps.
fn still_clip(dir: &std::path::Path, seconds: u32) -> std::path::PathBuf {
    let (frame, clip) = (dir.join("still.png"), dir.join("still.avi"));
    common::output_ok(
        std::process::Command::new("ffmpeg")
            .args(["-nostdin", "-v", "error", "-y", "-ss", "5", "-i"])
            .arg(common::media("vtest.avi"))
            .args(["-frames:v", "1"])
            .arg(&frame),
    );
    common::output_ok(
        std::process::Command::new("ffmpeg")
            .args([
                "-nostdin",
                "-v",
                "error",
                "-y",
                "-loop",
                "1",
                "-framerate",
                "10",
                "-i",
            ])
            .arg(&frame)
            .args(["-t", &seconds.to_string(), "-c:v", "mpeg4", "-q:v", "3"])
            .arg(&clip),
    );
    clip
}

fn snapshot_captured_at(r: &Value) -> std::time::SystemTime {
    let at = r["result"]["captured_at"].as_str().unwrap();
    let t: jiff::Timestamp = at.parse().unwrap();
    std::time::SystemTime::from(t)
}

#[test]
fn a_snapshot_shows_the_street_now_though_the_motion_gate_holds_every_frame() {
    let broker = common::Mosquitto::start();
    let port = broker.port;
    let dir = tempfile::tempdir().unwrap();
    let clip = still_clip(dir.path(), 60);
    // Nothing moves: after its first look the detector sees no frame for a minute, and
    // with the scene model working on the luma plane no held frame is made RGB.
    let text = config_of(&broker.url(), dir.path(), 5, &clip.display().to_string())
        + "loop = true\nrealtime = true\n[[camera.zone]]\nid = \"all\"\npolygon = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]\n\
         [camera.scene]\nmotion_gate = true\nrecheck_s = 60\nfrom_luma = true\n";
    let cfg = common::write_config(dir.path(), &text);
    let (daemon, results) = start_daemon(port, &cfg);
    // Each snapshot is of a frame taken after it was asked for (frames come every
    // 200 ms), though the detector saw none of them.
    let mut taken = vec![snapshot_once_running(port, &results)];
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(1700));
        let asked = std::time::SystemTime::now();
        let r = command(port, &results, "snapshot", r#"{"camera": "campus"}"#);
        assert_eq!(r["ok"], true, "{r}");
        let at = snapshot_captured_at(&r);
        let early = asked.duration_since(at).unwrap_or_default();
        assert!(
            early < Duration::from_secs(1),
            "the snapshot asked for at {asked:?} is of a frame {early:?} older: {r}"
        );
        taken.push(r);
    }
    let times: Vec<_> = taken.iter().map(snapshot_captured_at).collect();
    assert!(
        times.windows(2).all(|w| w[1] > w[0]),
        "four snapshots, four frames: {taken:?}"
    );
    stop_daemon(daemon);
}

#[test]
fn a_camera_that_sends_nothing_fails_its_snapshot_and_holds_up_no_other_command() {
    use common::{RtspMedia, RtspServer};
    let server = RtspServer::start(RtspMedia::TestPattern {
        fps: 10,
        width: 320,
        height: 240,
    });
    let broker = common::Mosquitto::start();
    let port = broker.port;
    let dir = tempfile::tempdir().unwrap();
    let text = config_of(&broker.url(), dir.path(), 5, &server.url());
    let cfg = common::write_config(dir.path(), &text);
    let (daemon, results) = start_daemon(port, &cfg);
    snapshot_once_running(port, &results);

    server.freeze();
    std::thread::sleep(Duration::from_secs(1));
    let asked = Instant::now();
    common::publish(
        port,
        "swc/cmd-node/cmd/snapshot",
        br#"{"id": "s", "camera": "campus"}"#,
    );
    common::publish(
        port,
        "swc/cmd-node/cmd/camera/enable",
        br#"{"id": "e", "camera": "campus"}"#,
    );
    let r = next_result(&results);
    assert_eq!(
        r["id"], "e",
        "the enable is answered while the snapshot waits: {r}"
    );
    assert_eq!(r["ok"], true, "{r}");
    let r = next_result(&results);
    assert_eq!(
        (r["id"].as_str(), r["ok"].as_bool()),
        (Some("s"), Some(false)),
        "{r}"
    );
    let error = r["error"].as_str().unwrap();
    assert!(
        error.contains("campus") && error.contains("took no frame within 2.0 s"),
        "{r}"
    );
    assert!(asked.elapsed() >= Duration::from_secs(2), "{r}");

    // Eight more at once (as many as the node takes in progress) all give up; the
    // ones that gave up do not count against the next.
    for i in 0..8 {
        let payload = format!(r#"{{"id": "m{i}", "camera": "campus"}}"#);
        common::publish(port, "swc/cmd-node/cmd/snapshot", payload.as_bytes());
    }
    for _ in 0..8 {
        let r = next_result(&results);
        assert!(
            r["error"].as_str().unwrap_or("").contains("took no frame"),
            "{r}"
        );
    }
    let r = command(port, &results, "snapshot", r#"{"camera": "campus"}"#);
    assert!(
        r["error"].as_str().unwrap_or("").contains("took no frame"),
        "{r}"
    );

    server.thaw();
    snapshot_once_running(port, &results);
    stop_daemon(daemon);
}
