//! End to end: the daemon decodes real video, runs the real model, applies a
//! real zone rule and publishes events to a real mosquitto, where a
//! subscriber receives them as valid JSON, each start followed by its
//! evidence JPEG.

mod common;

use std::collections::HashSet;
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

[evidence]
max_width = 640
quality = 75

{camera}"#,
        outbox = outbox.display(),
        camera = common::plaza_camera(clip)
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
    // Evidence exactly on start events, named by the event's id.
    if v["phase"] == "start" {
        assert_eq!(
            v["evidence"].as_str(),
            Some(format!("evidence/{}", v["id"].as_str().unwrap()).as_str()),
            "{v}"
        );
    } else {
        assert!(v.get("evidence").is_none(), "{v}");
    }
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

    // One evidence JPEG per start event, after it, on evidence/{its id}: the frame
    // (768x576, scaled to max_width 640) with the event's boxes outlined.
    let starts: Vec<&Value> = events.iter().filter(|e| e["phase"] == "start").collect();
    assert!(!starts.is_empty());
    let evidence: Vec<(usize, &common::Message)> = msgs
        .iter()
        .enumerate()
        .filter(|(_, m)| m.topic.starts_with("swtest/e2e-node/evidence/"))
        .collect();
    assert_eq!(evidence.len(), starts.len(), "one evidence per start event");
    for start in &starts {
        let id = start["id"].as_str().unwrap();
        let topic = format!("swtest/e2e-node/evidence/{id}");
        let (at, jpeg) = evidence
            .iter()
            .find(|(_, m)| m.topic == topic)
            .unwrap_or_else(|| panic!("no evidence for {id}"));
        let event_at = msgs
            .iter()
            .position(|m| {
                m.topic.contains("/events/")
                    && serde_json::from_slice::<Value>(&m.payload).unwrap()["id"] == id
            })
            .unwrap();
        assert!(*at > event_at, "evidence of {id} arrived before its event");
        check_evidence(start, &jpeg.payload);
    }

    // Delivered means acknowledged: nothing is left in the outbox.
    let conn = rusqlite::Connection::open(&outbox).unwrap();
    for table in ["outbox", "evidence"] {
        let left: i64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0, "{table}");
    }
}

/// A valid JPEG of the expected size with the event's boxes outlined in yellow.
fn check_evidence(event: &Value, jpeg: &[u8]) {
    let img = image::load_from_memory_with_format(jpeg, image::ImageFormat::Jpeg)
        .unwrap_or_else(|e| panic!("evidence of {} is not a JPEG: {e}", event["id"]))
        .to_rgb8();
    assert_eq!(img.dimensions(), (640, 480));
    let yellow = |x: u32, y: u32| {
        let [r, g, b] = img.get_pixel(x.min(639), y.min(479)).0.map(i32::from);
        // Yellow after JPEG's chroma subsampling: bright red and green, much less blue.
        r > 150 && g > 130 && (r + g) / 2 - b > 70
    };
    let objects = event["objects"].as_array().unwrap();
    let outlined = objects
        .iter()
        .filter(|o| {
            let b: Vec<f64> = o["box"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect();
            let (x0, x1) = (
                (b[0] * 640.0).round() as u32,
                ((b[2] * 640.0).round() as u32).saturating_sub(1),
            );
            let ym = ((b[1] + b[3]) / 2.0 * 480.0) as u32;
            // The left and right edges, 2 px wide, at mid-height.
            (0..2).any(|d| yellow(x0 + d, ym)) && (0..2).any(|d| yellow(x1.saturating_sub(d), ym))
        })
        .count();
    // Boxes of a crowd overlap; most outlines are still visible where expected.
    assert!(
        outlined * 2 > objects.len(),
        "{outlined} of {} boxes outlined in evidence of {}",
        objects.len(),
        event["id"]
    );
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
    let evidence_sub = common::Subscriber::connect(broker.port, "swtest/+/evidence/#");
    // A camera that ends at once: the run only delivers what is stored.
    let empty = dir.path().join("empty.toml");
    std::fs::write(
        &empty,
        config(&url, &outbox, &dir.path().join("no-such-clip.mp4")),
    )
    .unwrap();
    common::run_daemon_to_end(&empty, "warn");
    let delivered: Vec<Value> = sub
        .drain(Duration::from_secs(2))
        .iter()
        .map(|m| check_event(&m.topic, &m.payload))
        .collect();
    let got: Vec<(i64, String)> = delivered
        .iter()
        .map(|v| {
            (
                v["seq"].as_i64().unwrap(),
                v["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(got, stored);
    // Each start's evidence waited in the outbox with it and was delivered after it.
    let starts: HashSet<String> = delivered
        .iter()
        .filter(|v| v["phase"] == "start")
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!starts.is_empty());
    let evidence = evidence_sub.drain(Duration::from_secs(1));
    let ids: HashSet<String> = evidence
        .iter()
        .map(|m| m.topic.rsplit('/').next().unwrap().to_string())
        .collect();
    assert_eq!(evidence.len(), starts.len());
    assert_eq!(ids, starts);
    for start in delivered.iter().filter(|v| v["phase"] == "start") {
        let topic = format!("swtest/e2e-node/evidence/{}", start["id"].as_str().unwrap());
        let m = evidence.iter().find(|m| m.topic == topic).unwrap();
        check_evidence(start, &m.payload);
    }
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
    let mut child = common::spawn_daemon(&cfg);
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
    let mut child = common::spawn_daemon(&cfg);
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
    let mut child = common::spawn_daemon(&cfg);
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
    let mut child = common::spawn_daemon(&cfg);

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
        // Evidence is JPEG; everything else here is JSON.
        if m.topic.starts_with("swtest/e2e-node/evidence/") {
            continue;
        }
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

#[test]
fn stats_give_percentiles_queues_and_capture_to_publish_latency() {
    let broker = common::Mosquitto::start();
    let sub = common::Subscriber::connect(broker.port, "swtest/e2e-node/stats");
    let dir = tempfile::tempdir().unwrap();
    // Played at stream speed, the file's capture times are wall-clock times.
    let text = config(
        &broker.url(),
        &dir.path().join("o.sqlite"),
        &common::media("vtest.avi"),
    )
    .replace(
        "topic_prefix = \"swtest\"",
        "topic_prefix = \"swtest\"\nstats_interval_s = 1",
    )
    .replace("fps = 2\n", "fps = 2\nrealtime = true\n");
    let cfg = common::write_config(dir.path(), &text);
    let mut child = common::spawn_daemon(&cfg);

    // The first report whose window holds both an inference and an acknowledged event.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let stats = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no stats report with a capture-to-publish latency"
        );
        let Some(m) = sub.recv(Duration::from_secs(5)) else {
            continue;
        };
        let v: Value = serde_json::from_slice(&m.payload).unwrap();
        let cam = &v["cameras"]["campus"];
        if cam["publish_latency_ms_p50"].is_number() && cam["inference_ms_p50"].is_number() {
            break v;
        }
    };
    common::signal(child.id(), "TERM");
    assert!(child.wait().unwrap().success());

    let cam = &stats["cameras"]["campus"];
    let ms = |key: &str| {
        cam[key]
            .as_f64()
            .unwrap_or_else(|| panic!("{key}: {stats}"))
    };
    assert!(ms("inference_ms_p50") > 0.0, "{stats}");
    assert!(ms("inference_ms_p50") <= ms("inference_ms_p99"), "{stats}");
    let (p50, p99, max) = (
        ms("publish_latency_ms_p50"),
        ms("publish_latency_ms_p99"),
        ms("publish_latency_ms_max"),
    );
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{stats}");
    // A local broker acknowledges within seconds of capture.
    assert!(max < 30_000.0, "{stats}");
    assert!(cam["events_published"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(stats["handover"]["capacity"], 1024, "{stats}");
    for (section, key) in [
        ("handover", "queued"),
        ("mqtt", "queued"),
        ("mqtt", "inflight"),
        ("mqtt", "evidence_published"),
        ("outbox", "depth"),
        ("outbox", "evidence_depth"),
        ("outbox", "evidence_bytes"),
        ("outbox", "evidence_dropped_total"),
    ] {
        assert!(stats[section][key].is_u64(), "{section}.{key}: {stats}");
    }
    assert!(stats["mqtt"]["inflight"].as_u64().unwrap() <= 32, "{stats}");
}
