//! Every message a daemon run publishes matches the schema `docs/asyncapi.yaml`
//! gives its topic, checked with a real JSON Schema validator against the
//! committed `docs/*.schema.json`.
//!
//! The run is made to say everything it can: a camera that works (events,
//! evidence) and one that cannot open its file (an `error` camera status), an
//! outbox bounded to two events while the broker is down (an `outbox_dropped`
//! alert once it is back), stats every second, and commands that succeed, fail
//! and cannot be parsed (results, a snapshot JPEG).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

const PREFIX: &str = "swp";
const NODE: &str = "schema-node";

fn config(broker: &str, dir: &Path) -> String {
    format!(
        r#"
[node]
id = "{NODE}"
[mqtt]
url = "{broker}"
topic_prefix = "{PREFIX}"
stats_interval_s = 1
[outbox]
path = "{dir}/outbox.sqlite"
max_events = 2

[[camera]]
id = "campus"
url = "{clip}"
fps = 2
loop = true
location = {{ lat = 39.9912, lon = 116.3075 }}
address = "12 Jingmi Rd"
grid = "0231-07"
heading_deg = 135
description = "bus stop"

[[camera.zone]]
id = "plaza"
polygon = [[0, 0], [1, 0], [1, 1], [0, 1]]
grid = "0231-08"

[camera.zone.congestion]
classes = ["person"]
levels = {{ light = 3, moderate = 6, heavy = 9 }}
min_duration_s = 1
clear_duration_s = 1
update_interval_s = 2

[[camera]]
id = "gone"
url = "{dir}/missing.mp4"
"#,
        dir = dir.display(),
        clip = common::media("vtest.avi").display()
    )
}

/// The schema file of each JSON topic below `{prefix}/{node}/`, as in
/// `docs/asyncapi.yaml`; `None` for the binary (JPEG) topics.
fn schema_of(suffix: &str) -> Option<&'static str> {
    let levels: Vec<&str> = suffix.split('/').collect();
    match levels.as_slice() {
        ["events", _camera, _type] => Some("event.schema.json"),
        ["incidents", _incident] => Some("event.schema.json"),
        ["evidence", _] | ["snapshots", _] => None,
        ["status"] => Some("status.schema.json"),
        ["info"] => Some("info.schema.json"),
        ["cameras", _camera, "status"] => Some("camera_status.schema.json"),
        ["stats"] => Some("stats.schema.json"),
        ["alerts"] => Some("alert.schema.json"),
        ["cmd", "result"] => Some("command_result.schema.json"),
        ["cmd", ..] => Some("command.schema.json"),
        _ => panic!("{suffix}: a topic docs/asyncapi.yaml does not list"),
    }
}

fn validator(file: &str) -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(file);
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema)
        .unwrap_or_else(|e| panic!("docs/{file} is not a valid JSON Schema: {e}"))
}

/// The lowest seq left in the outbox, once the outbox has some.
fn lowest_stored_seq(outbox: &Path) -> Option<i64> {
    let conn = rusqlite::Connection::open(outbox).ok()?;
    conn.query_row("SELECT MIN(seq) FROM outbox", [], |r| r.get(0))
        .ok()
        .flatten()
}

#[test]
fn every_message_a_daemon_publishes_matches_its_schema() {
    let mut broker = common::Mosquitto::start();
    let sub = common::Subscriber::connect_with(broker.port, &format!("{PREFIX}/#"), true);
    broker.stop();

    let dir = tempfile::tempdir().unwrap();
    let outbox = dir.path().join("outbox.sqlite");
    let cfg = common::write_config(dir.path(), &config(&broker.url(), dir.path()));
    let mut daemon = common::Daemon(
        std::process::Command::new(common::bin())
            .args(["run", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "warn")
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Events beyond the outbox bound of two while the broker is away: the oldest go.
    let deadline = Instant::now() + Duration::from_secs(300);
    while lowest_stored_seq(&outbox).is_none_or(|s| s < 2) {
        assert!(Instant::now() < deadline, "no event was dropped");
        assert!(daemon.try_wait().unwrap().is_none(), "daemon exited");
        std::thread::sleep(Duration::from_millis(200));
    }
    broker.restart();

    let result_topic = format!("{PREFIX}/{NODE}/cmd/result");
    let mut results = 0;
    let mut seen: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut messages = Vec::new();
    let mut take = |m: common::Message, seen: &mut BTreeMap<&'static str, usize>| {
        let suffix = m.topic[PREFIX.len() + NODE.len() + 2..].to_string();
        if let Some(file) = schema_of(&suffix) {
            *seen.entry(file).or_default() += 1;
        }
        messages.push(m);
    };
    // Wait for the node to be back (its status), then command it.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !seen.contains_key("stats.schema.json") {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = sub.recv(left).expect("stats after the broker came back");
        take(m, &mut seen);
    }
    for (verb, body) in [
        ("snapshot", r#"{"id": "s1", "camera": "campus"}"#),
        ("camera/disable", r#"{"id": "d1", "camera": "nope"}"#),
        ("reboot", r#"{"id": "x1"}"#),
        ("reload", "not json"),
        ("reload", r#"{"id": "r1"}"#),
    ] {
        common::publish(
            broker.port,
            &format!("{PREFIX}/{NODE}/cmd/{verb}"),
            body.as_bytes(),
        );
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while results < 5 || !seen.contains_key("alert.schema.json") {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = sub
            .recv(left)
            .unwrap_or_else(|| panic!("{results} command results, seen {seen:?}"));
        if m.topic == result_topic {
            results += 1;
        }
        take(m, &mut seen);
    }
    common::signal(daemon.id(), "TERM");
    assert!(daemon.wait().unwrap().success());
    for m in sub.drain(Duration::from_secs(2)) {
        take(m, &mut seen);
    }

    let validators: BTreeMap<&str, jsonschema::Validator> =
        seen.keys().map(|file| (*file, validator(file))).collect();
    let mut jpegs = 0;
    for m in &messages {
        let suffix = &m.topic[PREFIX.len() + NODE.len() + 2..];
        if suffix.starts_with("cmd/") && suffix != "cmd/result" {
            continue; // this test's own commands
        }
        let Some(file) = schema_of(suffix) else {
            assert!(
                m.payload.starts_with(&[0xff, 0xd8]),
                "{}: not a JPEG",
                m.topic
            );
            jpegs += 1;
            continue;
        };
        if m.payload.is_empty() && suffix.starts_with("incidents/") {
            continue; // an ended incident's cleared topic
        }
        let v: Value = serde_json::from_slice(&m.payload)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e})", m.topic));
        if let Err(e) = validators[file].validate(&v) {
            panic!("{} does not match docs/{file}: {e}\n{v}", m.topic);
        }
        if file == "event.schema.json" {
            assert_eq!(v["site"]["grid"], "0231-08", "the zone's grid: {v}");
            assert_eq!(v["site"]["address"], "12 Jingmi Rd", "{v}");
            assert_eq!(v["site"]["location"]["lat"], 39.9912, "{v}");
        }
    }
    for file in [
        "event.schema.json",
        "status.schema.json",
        "camera_status.schema.json",
        "stats.schema.json",
        "alert.schema.json",
        "command_result.schema.json",
        "info.schema.json",
    ] {
        assert!(seen.contains_key(file), "no message of {file}: {seen:?}");
    }
    assert!(jpegs >= 1, "no JPEG");
    assert!(
        messages
            .iter()
            .any(|m| m.topic.ends_with("/snapshots/campus")),
        "the snapshot"
    );
    let open_incident = messages
        .iter()
        .any(|m| m.topic.contains("/incidents/") && !m.payload.is_empty());
    assert!(open_incident, "an open incident's retained message");
    let error_status = messages.iter().any(|m| {
        m.topic.ends_with("/cameras/gone/status")
            && serde_json::from_slice::<Value>(&m.payload).unwrap()["state"] == "error"
    });
    assert!(error_status, "the camera without a file says error");
}
