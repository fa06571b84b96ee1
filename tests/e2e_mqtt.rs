//! End to end: the daemon decodes real video, runs the real model, applies a
//! real zone rule and publishes events to a real mosquitto, where a
//! subscriber receives them as valid JSON.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

fn config(broker: &str, outbox: &std::path::Path, clip: &std::path::Path) -> String {
    format!(
        r#"
[node]
id = "e2e-node"

[mqtt]
url = "{broker}"
topic_prefix = "swtest"

[outbox]
path = "{outbox}"

[[camera]]
id = "campus"
url = "{clip}"
fps = 2

[[camera.zone]]
id = "plaza"
polygon = [[0, 0], [1, 0], [1, 1], [0, 1]]

[camera.zone.congestion]
classes = ["person"]
levels.light = 4
levels.moderate = 8
levels.heavy = 12
min_duration_s = 1
clear_duration_s = 2
update_interval_s = 5
"#,
        outbox = outbox.display(),
        clip = clip.display()
    )
}

/// Checks one event against the v1 shape; returns it.
fn check_event(topic: &str, payload: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(payload).unwrap_or_else(|e| {
        panic!(
            "{topic}: not JSON ({e}): {}",
            String::from_utf8_lossy(payload)
        )
    });
    common::assert_schema_valid(&v);
    assert_eq!(v["schema"], "streetwatch.event/1", "{v}");
    assert_eq!(v["node"], "e2e-node");
    assert_eq!(v["camera"], "campus");
    assert_eq!(v["zone"], "plaza");
    assert_eq!(v["type"], "congestion");
    assert_eq!(topic, "swtest/e2e-node/events/campus/congestion");
    assert!(
        ["start", "update", "end"].contains(&v["phase"].as_str().unwrap()),
        "{v}"
    );
    assert!(
        uuid::Uuid::parse_str(v["id"].as_str().unwrap()).is_ok(),
        "{v}"
    );
    assert!(
        uuid::Uuid::parse_str(v["incident"].as_str().unwrap()).is_ok(),
        "{v}"
    );
    assert!(v["seq"].as_u64().unwrap() >= 1, "{v}");
    for key in ["ts", "started_at"] {
        let s = v[key].as_str().unwrap();
        s.parse::<jiff::Timestamp>()
            .unwrap_or_else(|e| panic!("{key} {s:?} is not RFC 3339: {e}"));
    }
    if v["phase"] == "end" {
        v["ended_at"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap();
    }
    for o in v["objects"].as_array().unwrap() {
        assert_eq!(o["class"], "person", "{o}");
        let s = o["score"].as_f64().unwrap();
        assert!((0.35..=1.0).contains(&s), "{o}");
        let b: Vec<f64> = o["box"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect();
        assert_eq!(b.len(), 4);
        assert!(b.iter().all(|x| (0.0..=1.0).contains(x)), "{o}");
        assert!(b[0] < b[2] && b[1] < b[3], "{o}");
    }
    v
}

#[test]
fn daemon_publishes_congestion_events_from_real_video_to_mosquitto() {
    let broker = common::Mosquitto::start();
    let sub = common::Subscriber::connect(broker.port, "swtest/#");
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.sqlite");
    let cfg = common::write_config(
        dir.path(),
        &config(&broker.url(), &outbox, &common::media("vtest.avi")),
    );

    let stderr = common::run_daemon_to_end(&cfg, "warn");
    assert!(stderr.contains("summary"), "{stderr}");

    let msgs = sub.drain(Duration::from_secs(2));
    let status: Vec<Value> = msgs
        .iter()
        .filter(|m| m.topic == "swtest/e2e-node/status")
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    assert!(status.iter().any(|s| s["state"] == "online"), "{status:?}");
    assert_eq!(
        status.last().unwrap()["state"],
        "offline",
        "clean shutdown says offline"
    );

    let events: Vec<Value> = msgs
        .iter()
        .filter(|m| m.topic.contains("/events/"))
        .map(|m| check_event(&m.topic, &m.payload))
        .collect();
    assert!(!events.is_empty(), "no events; stderr: {stderr}");

    // seq: exactly 1..=n, in order (one camera, one publisher, no broker outage).
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    let ids: HashSet<&str> = events.iter().map(|e| e["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), events.len(), "ids are unique");

    // Every incident starts first, ends last, and the run closes them all.
    let mut open: Vec<String> = Vec::new();
    for e in &events {
        let inc = e["incident"].as_str().unwrap().to_string();
        match e["phase"].as_str().unwrap() {
            "start" => {
                assert!(!open.contains(&inc));
                assert!(e["metrics"]["count"].as_f64().unwrap() >= 4.0, "{e}");
                assert!(e["objects"].as_array().unwrap().len() >= 4, "{e}");
                open.push(inc);
            }
            "update" => assert!(open.contains(&inc), "update before start: {e}"),
            _ => {
                assert!(open.contains(&inc), "end before start: {e}");
                open.retain(|i| *i != inc);
            }
        }
    }
    assert!(open.is_empty(), "incidents left open: {open:?}");

    // Delivered means acknowledged: nothing is left in the outbox.
    let conn = rusqlite::Connection::open(&outbox).unwrap();
    let left: i64 = conn
        .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
}

#[test]
fn events_wait_in_the_outbox_until_the_broker_is_back() {
    // The broker is down for the whole run: events are committed, not lost,
    // and the next run delivers them with their original ids and seqs.
    let port = common::free_port();
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.sqlite");
    let url = format!("mqtt://127.0.0.1:{port}");
    let cfg = common::write_config(
        dir.path(),
        &config(&url, &outbox, &common::media("vtest.avi")),
    );
    common::run_daemon_to_end(&cfg, "warn");
    let stored = common::stored_events(&outbox);
    assert!(
        !stored.is_empty(),
        "events were stored while the broker was down"
    );

    let broker = common::Mosquitto::start_on(port);
    let sub = common::Subscriber::connect(broker.port, "swtest/+/events/#");
    // A camera that ends at once: the run only delivers what is stored.
    let empty = dir.path().join("empty.toml");
    std::fs::write(
        &empty,
        config(&url, &outbox, &dir.path().join("no-such-clip.mp4")),
    )
    .unwrap();
    common::run_daemon_to_end(&empty, "warn");
    let got: Vec<(i64, String)> = sub
        .drain(Duration::from_secs(2))
        .iter()
        .map(|m| {
            let v = check_event(&m.topic, &m.payload);
            (
                v["seq"].as_i64().unwrap(),
                v["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, stored);
}

fn spawn_daemon(cfg: &std::path::Path) -> common::Daemon {
    common::Daemon(
        Command::new(common::bin())
            .args(["run", "--config"])
            .arg(cfg)
            .env("RUST_LOG", "warn")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn state(m: &common::Message) -> String {
    let v: Value = serde_json::from_slice(&m.payload).unwrap();
    v["state"].as_str().unwrap().to_string()
}

#[test]
fn last_will_says_offline_after_sigkill() {
    let broker = common::Mosquitto::start();
    let sub = common::Subscriber::connect(broker.port, "swtest/e2e-node/status");
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write_config(
        dir.path(),
        &config(
            &broker.url(),
            &dir.path().join("o.sqlite"),
            &common::media("vtest.avi"),
        ),
    );
    let mut child = spawn_daemon(&cfg);
    let online = sub.recv(Duration::from_secs(20)).expect("online status");
    assert_eq!(state(&online), "online");
    common::signal(child.id(), "KILL");
    child.wait().unwrap();
    let will = sub
        .recv(Duration::from_secs(10))
        .expect("Last Will after SIGKILL");
    assert_eq!(state(&will), "offline");
    // Retained: a subscriber arriving later learns the box is offline.
    let late = common::Subscriber::connect(broker.port, "swtest/e2e-node/status");
    let m = late.recv(Duration::from_secs(5)).expect("retained status");
    assert!(m.retain);
    assert_eq!(state(&m), "offline");
}

#[test]
fn sigkill_with_broker_down_loses_no_stored_event() {
    let port = common::free_port();
    let url = format!("mqtt://127.0.0.1:{port}");
    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.sqlite");
    let cfg = common::write_config(
        dir.path(),
        &config(&url, &outbox, &common::media("vtest.avi")),
    );

    // Broker down: the daemon stores events; kill it hard once some are stored.
    let mut child = spawn_daemon(&cfg);
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let stored = loop {
        let n: i64 = rusqlite::Connection::open(&outbox)
            .and_then(|c| c.query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0)))
            .unwrap_or(0);
        if n >= 2 {
            break n;
        }
        assert!(std::time::Instant::now() < deadline, "no events stored");
        assert!(
            child.try_wait().unwrap().is_none(),
            "daemon ended before storing events"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    common::signal(child.id(), "KILL");
    child.wait().unwrap();
    let ids: Vec<String> = common::stored_events(&outbox)
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    assert!(ids.len() as i64 >= stored);

    // Broker and daemon back: every stored event is delivered, same ids, in order.
    let broker = common::Mosquitto::start_on(port);
    let sub = common::Subscriber::connect(broker.port, "swtest/+/events/#");
    let mut child = spawn_daemon(&cfg);
    let mut got = Vec::new();
    while got.len() < ids.len() {
        let m = sub
            .recv(Duration::from_secs(30))
            .expect("stored events delivered");
        got.push(
            check_event(&m.topic, &m.payload)["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert_eq!(got, ids);
    common::signal(child.id(), "TERM");
    assert!(child.wait().unwrap().success());
}

#[test]
fn camera_status_and_stats_are_published() {
    let broker = common::Mosquitto::start();
    let sub = common::Subscriber::connect(broker.port, "swtest/e2e-node/#");
    let dir = tempfile::tempdir().unwrap();
    let text = config(
        &broker.url(),
        &dir.path().join("o.sqlite"),
        &common::media("vtest.avi"),
    )
    .replace(
        "topic_prefix = \"swtest\"",
        "topic_prefix = \"swtest\"\nstats_interval_s = 1",
    ) + "\n[[camera]]\nid = \"broken\"\nurl = \"/nonexistent/clip.mp4\"\n";
    let cfg = common::write_config(dir.path(), &text);
    let mut child = spawn_daemon(&cfg);

    let mut campus_online = false;
    let mut broken_error = None;
    let mut stats = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !(campus_online && broken_error.is_some() && stats.is_some()) {
        assert!(
            std::time::Instant::now() < deadline,
            "online {campus_online}, error {broken_error:?}, stats {stats:?}"
        );
        let Some(m) = sub.recv(Duration::from_secs(5)) else {
            continue;
        };
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        match m.topic.as_str() {
            "swtest/e2e-node/cameras/campus/status" => {
                campus_online |= v["state"] == "online";
            }
            "swtest/e2e-node/cameras/broken/status" if v["state"] == "error" => {
                broken_error = Some(v["reason"].as_str().unwrap().to_string());
            }
            // Each report is a snapshot: wait for one taken after the broken camera gave up.
            "swtest/e2e-node/stats" if v["cameras"]["broken"]["state"] == "error" => {
                stats = Some(v);
            }
            _ => {}
        }
    }
    common::signal(child.id(), "TERM");
    assert!(child.wait().unwrap().success());
    let reason = broken_error.unwrap();
    assert!(reason.contains("/nonexistent/clip.mp4"), "{reason}");
    // Retained: a subscriber arriving later learns each camera's last state.
    let late = common::Subscriber::connect(broker.port, "swtest/e2e-node/cameras/+/status");
    let retained: Vec<String> = late
        .drain(Duration::from_secs(1))
        .iter()
        .filter(|m| m.retain)
        .map(|m| m.topic.clone())
        .collect();
    assert!(
        retained.contains(&"swtest/e2e-node/cameras/broken/status".to_string()),
        "{retained:?}"
    );
    assert!(
        retained.contains(&"swtest/e2e-node/cameras/campus/status".to_string()),
        "{retained:?}"
    );
    let stats = stats.unwrap();
    assert_eq!(stats["cameras"]["broken"]["state"], "error");
    for key in [
        "fps_in",
        "fps_analysed",
        "frames_dropped",
        "inference_ms_mean",
        "latency_ms_max",
    ] {
        assert!(
            stats["cameras"]["campus"][key].is_number(),
            "{key}: {stats}"
        );
    }
    assert!(stats["outbox"]["depth"].is_u64(), "{stats}");
    assert!(
        stats["process"]["rss_bytes"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert!(stats["uptime_s"].is_u64(), "{stats}");
}
