//! Operating the daemon on a box, as systemd does it: a real `NOTIFY_SOCKET`
//! datagram socket hears `READY=1` once the cameras are started, `WATCHDOG=1` at
//! the `WATCHDOG_USEC` pace, `STATUS=` with cameras online and the outbox depth,
//! `RELOADING=1`/`READY=1` around a SIGHUP reload and `STOPPING=1` at shutdown.
//! SIGHUP adds a camera without touching the other. With `--log-format json`
//! every line on stderr is JSON, the run summary and a fatal error included.
//! The config comes from `$STREETWATCH_CONFIG` when `--config` is not given.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// `WATCHDOG_USEC` the daemon is started with: pings are due every half of it.
const WATCHDOG: Duration = Duration::from_secs(3);

fn config(broker: &str, dir: &Path, cameras: &[&str]) -> String {
    let mut text = format!(
        "[node]\nid = \"op-node\"\n[mqtt]\nurl = \"{broker}\"\ntopic_prefix = \"swop\"\n\
         [outbox]\npath = \"{}/outbox.sqlite\"\n",
        dir.display()
    );
    for id in cameras {
        text += &format!(
            "[[camera]]\nid = \"{id}\"\nurl = \"{}\"\nfps = 2\nloop = true\nrealtime = true\n",
            common::media("vtest.mp4").display()
        );
    }
    text
}

fn json_lines(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect()
}

/// Log lines with this message (and, if given, this camera).
fn logged(lines: &[Value], message: &str, camera: Option<&str>) -> Vec<Value> {
    lines
        .iter()
        .filter(|v| v["fields"]["message"] == message)
        .filter(|v| camera.is_none_or(|c| v["fields"]["camera"] == c))
        .cloned()
        .collect()
}

/// Waits for a retained or live `state` of camera `id` on `sub`.
fn camera_becomes(sub: &common::Subscriber, id: &str, state: &str) {
    let topic = format!("swop/op-node/cameras/{id}/status");
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Some(m) = sub.recv(deadline.saturating_duration_since(Instant::now())) {
        if m.topic == topic {
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            if v["state"] == state {
                return;
            }
        }
    }
    panic!("camera {id} never {state}");
}

#[test]
fn systemd_hears_ready_pings_status_reload_and_stopping() {
    let broker = common::Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write_config(dir.path(), &config(&broker.url(), dir.path(), &["a"]));
    let states = common::Subscriber::connect(broker.port, "swop/op-node/cameras/+/status");
    let notify = common::NotifySocket::bind();
    let mut child = Command::new(common::bin())
        .args(["--log-format", "json", "run"])
        .env("STREETWATCH_CONFIG", &cfg)
        .env("NOTIFY_SOCKET", &notify.path)
        .env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string())
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = common::LogWatch::new(child.stderr.take().unwrap());
    let mut daemon = common::Daemon(child);

    // READY once the model is loaded, the outbox open and the cameras started.
    let ready = notify
        .wait_for(0, Duration::from_secs(60), "READY=1")
        .expect("READY=1");
    let first = &notify.notes()[ready].1;
    assert!(first.contains("STATUS="), "{first}");
    assert!(
        first.contains("/1 cameras online, 0 events in the outbox"),
        "{first}"
    );
    assert!(dir.path().join("outbox.sqlite").exists());

    // Pings at the pace, each within WATCHDOG of the last; STATUS says who is online.
    camera_becomes(&states, "a", "online");
    let online = notify
        .wait_for(ready, Duration::from_secs(20), "STATUS=1/1 cameras online")
        .expect("STATUS with the camera online");
    let deadline = Instant::now() + 4 * WATCHDOG;
    while notify.pings(online).len() < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let pings = notify.pings(ready);
    assert!(pings.len() >= 5, "{} pings", pings.len());
    for pair in pings.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(gap < WATCHDOG, "a ping came {gap:?} after the last");
    }

    // SIGHUP adds camera b and leaves a alone.
    let before_reload = notify.notes().len();
    let log_before = log.lines().len();
    common::write_config(dir.path(), &config(&broker.url(), dir.path(), &["a", "b"]));
    common::signal(daemon.id(), "HUP");
    log.wait_for(log_before, Duration::from_secs(30), |l| {
        l.contains("configuration reloaded")
    })
    .expect("the reload is logged");
    let reloading = notify
        .wait_for(before_reload, Duration::from_secs(10), "RELOADING=1")
        .expect("RELOADING=1");
    notify
        .wait_for(reloading + 1, Duration::from_secs(10), "READY=1")
        .expect("READY=1 after the reload");
    camera_becomes(&states, "b", "online");
    notify
        .wait_for(
            reloading,
            Duration::from_secs(20),
            "STATUS=2/2 cameras online",
        )
        .expect("STATUS with both cameras online");

    // SIGTERM: STOPPING, exit 0.
    let before_stop = notify.notes().len();
    common::signal(daemon.id(), "TERM");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = daemon.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "the daemon did not stop");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status}");
    notify
        .wait_for(before_stop, Duration::from_secs(5), "STOPPING=1")
        .expect("STOPPING=1");

    // Every line on stderr is JSON; the reload started b only; a was never stopped
    // or opened again; the summary names both.
    std::thread::sleep(Duration::from_millis(300));
    let lines = json_lines(&log.lines());
    let reload = &logged(&lines, "configuration reloaded", None)[0]["fields"];
    assert_eq!(
        (&reload["started"], &reload["stopped"], &reload["restarted"]),
        (
            &Value::from("[\"b\"]"),
            &Value::from("[]"),
            &Value::from("[]")
        ),
        "{reload}"
    );
    assert_eq!(logged(&lines, "camera source opened", Some("a")).len(), 1);
    let summaries: Vec<&Value> = lines
        .iter()
        .filter(|v| v["fields"]["summary"] == "camera")
        .collect();
    let ids: Vec<&Value> = summaries.iter().map(|v| &v["fields"]["camera"]).collect();
    assert_eq!(ids, [&Value::from("a"), &Value::from("b")]);
    for s in &summaries {
        let c = &s["fields"]["counters"];
        assert!(c["frames_analysed"].as_u64().unwrap() > 0, "{s}");
        assert_eq!(
            (c["restarts"].as_u64(), c["reconnects"].as_u64()),
            (Some(0), Some(0)),
            "{s}"
        );
    }
    assert!(
        lines.iter().any(|v| v["fields"]["summary"] == "node"),
        "no node summary"
    );
}

#[test]
fn a_fatal_error_is_one_json_line_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write_config(dir.path(), "[node]\nid = \"x\"\n");
    let out = Command::new(common::bin())
        .args(["--log-format", "json", "run"])
        .env("STREETWATCH_CONFIG", &cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<String> = stderr.lines().map(str::to_string).collect();
    let v = json_lines(&lines);
    assert_eq!(v.len(), 1, "{stderr}");
    assert_eq!(v[0]["level"], "ERROR");
    assert_eq!(v[0]["fields"]["exit_code"], 2);
    let message = v[0]["fields"]["message"].as_str().unwrap();
    assert!(message.contains("missing field `mqtt`"), "{message}");
    assert!(message.contains(&cfg.display().to_string()), "{message}");

    // A wrong command line too.
    let out = Command::new(common::bin())
        .args(["--log-format", "json", "run", "--frobnicate"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<String> = stderr.lines().map(str::to_string).collect();
    let v = json_lines(&lines);
    assert!(
        v[0]["fields"]["usage"]
            .as_str()
            .unwrap()
            .contains("--frobnicate")
    );
}

#[test]
fn without_config_flag_or_variable_the_config_is_the_installed_one() {
    let out = Command::new(common::bin())
        .arg("check-config")
        .env_remove("STREETWATCH_CONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if Path::new("/etc/streetwatch/streetwatch.toml").exists() {
        return; // a box with the package installed: nothing to learn from an error
    }
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("/etc/streetwatch/streetwatch.toml"),
        "{stderr}"
    );
}

#[test]
fn version_names_commit_runtime_ffmpeg_and_the_model_sha256() {
    common::default_model();
    let out = Command::new(common::bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let commit = lines[0]
        .strip_prefix(&format!(
            "streetwatch {} (commit ",
            env!("CARGO_PKG_VERSION")
        ))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("{}", lines[0]));
    if let Ok(o) = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        && o.status.success()
    {
        assert_eq!(commit, String::from_utf8_lossy(&o.stdout).trim());
    }
    assert!(
        lines[1].starts_with(&format!(
            "ONNX Runtime {} (",
            streetwatch::detect::ORT_VERSION
        )),
        "{}",
        lines[1]
    );
    let avcodec = lines[2].strip_prefix("FFmpeg libavcodec ").unwrap();
    assert_eq!(avcodec.split('.').count(), 3, "{avcodec}");
    assert!(
        avcodec.split('.').all(|p| p.parse::<u32>().is_ok()),
        "{avcodec}"
    );
    let pinned = include_str!("../models/nanodet-m-416.sha256")
        .split_whitespace()
        .next()
        .unwrap();
    assert!(
        lines[3].starts_with("default model ") && lines[3].ends_with(&format!("sha256 {pinned}")),
        "{}",
        lines[3]
    );
}
