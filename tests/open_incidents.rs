//! The retained open-incident topics on a real mosquitto: while a daemon runs,
//! `{prefix}/{node}/incidents/{incident}` mirrors the latest start/update of
//! each open incident and is cleared when it ends; after the run (which ends
//! every incident) a consumer that subscribes finds no open incident left.
//! A daemon killed with SIGKILL while an incident is open cannot end it; the
//! next start does (`reason = "stream_ended"`) and clears its topic.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

fn config(broker: &str, dir: &std::path::Path) -> String {
    config_with(broker, dir, "")
}

/// The congestion camera, with `camera_extra` lines added to its `[[camera]]`.
fn config_with(broker: &str, dir: &std::path::Path, camera_extra: &str) -> String {
    format!(
        r#"
[node]
id = "inc-node"
[mqtt]
url = "{broker}"
topic_prefix = "swi"
[outbox]
path = "{dir}/outbox.sqlite"
[evidence]
enabled = false

[[camera]]
id = "campus"
url = "{clip}"
fps = 2
grid = "0231-07"
{camera_extra}

[[camera.zone]]
id = "plaza"
polygon = [[0, 0], [1, 0], [1, 1], [0, 1]]

[camera.zone.congestion]
classes = ["person"]
levels = {{ light = 4, moderate = 8, heavy = 12 }}
min_duration_s = 1
clear_duration_s = 2
update_interval_s = 5
"#,
        dir = dir.display(),
        clip = common::media("vtest.avi").display()
    )
}

#[test]
fn open_incidents_are_retained_while_open_and_cleared_when_they_end() {
    let broker = common::Mosquitto::start();
    let sub = common::Subscriber::connect(broker.port, "swi/inc-node/#");
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write_config(dir.path(), &config(&broker.url(), dir.path()));
    common::run_daemon_to_end(&cfg, "warn");
    let msgs = sub.drain(Duration::from_secs(2));

    // Replay what arrived: the incidents topics must track the events exactly.
    let mut retained: HashMap<String, Vec<u8>> = HashMap::new();
    let mut ends = 0;
    for m in &msgs {
        if let Some(incident) = m.topic.strip_prefix("swi/inc-node/incidents/") {
            if m.payload.is_empty() {
                assert!(
                    retained.remove(incident).is_some(),
                    "{incident} cleared but never open"
                );
            } else {
                retained.insert(incident.to_string(), m.payload.clone());
            }
        } else if m.topic.starts_with("swi/inc-node/events/") {
            let e: Value = serde_json::from_slice(&m.payload).unwrap();
            let incident = e["incident"].as_str().unwrap();
            match e["phase"].as_str().unwrap() {
                "end" => {
                    ends += 1;
                    assert!(
                        !retained.contains_key(incident),
                        "{incident}: its end arrived before its topic was cleared"
                    );
                }
                _ => assert_eq!(
                    retained.get(incident),
                    Some(&m.payload),
                    "{incident}: the retained message is the event, published before it"
                ),
            }
        }
    }
    assert!(ends > 0, "the run ended no incident");
    assert!(retained.is_empty(), "left open: {:?}", retained.keys());

    // A consumer arriving now finds nothing open (no retained incident remains).
    let late = common::Subscriber::connect(broker.port, "swi/+/incidents/+");
    assert!(late.drain(Duration::from_secs(2)).is_empty());
}

#[test]
fn incidents_open_when_the_daemon_was_killed_are_ended_by_the_next_start() {
    let broker = common::Mosquitto::start();
    let dir = tempfile::tempdir().unwrap();
    let live = common::write_config(
        dir.path(),
        &config_with(&broker.url(), dir.path(), "loop = true\nrealtime = true"),
    );
    let sub = common::Subscriber::connect(broker.port, "swi/inc-node/#");
    let mut child = common::spawn_daemon(&live);
    // Wait until an incident is open (its retained topic holds its start).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let (topic, open) = loop {
        let m = sub
            .recv(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("an incident opens within 60 s");
        if m.topic.starts_with("swi/inc-node/incidents/") && !m.payload.is_empty() {
            let e: Value = serde_json::from_slice(&m.payload).unwrap();
            break (m.topic.clone(), e);
        }
    };
    common::signal(child.id(), "KILL");
    child.wait().unwrap();
    let incident = open["incident"].as_str().unwrap().to_string();

    // It is still open on the broker: the dead daemon could not end it.
    let look = common::Subscriber::connect(broker.port, "swi/inc-node/incidents/+");
    let retained = look.drain(Duration::from_secs(2));
    assert!(
        retained
            .iter()
            .any(|m| m.topic == topic && !m.payload.is_empty()),
        "{incident} is open on the broker after the kill"
    );
    drop(look);

    // The next start, with that camera switched off, ends it and clears its topic.
    let off = common::write_config(
        dir.path(),
        &config_with(&broker.url(), dir.path(), "enabled = false"),
    );
    let sub = common::Subscriber::connect(broker.port, "swi/inc-node/#");
    let mut child = common::spawn_daemon(&off);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let (mut cleared, mut end) = (false, None);
    while !(cleared && end.is_some()) {
        let Some(m) = sub.recv(deadline.saturating_duration_since(std::time::Instant::now()))
        else {
            break;
        };
        if m.topic == topic && m.payload.is_empty() {
            assert!(end.is_none(), "the topic is cleared before the end arrives");
            cleared = true;
        } else if m.topic.starts_with("swi/inc-node/events/") {
            let e: Value = serde_json::from_slice(&m.payload).unwrap();
            // The killed run's undelivered start may come first (redelivered).
            if e["incident"] == incident.as_str() && e["phase"] == "end" {
                end = Some(e);
            }
        }
    }
    common::signal(child.id(), "TERM");
    child.wait().unwrap();
    assert!(cleared, "{incident}: its retained topic was not cleared");
    let end = end.expect("the next start ends the incident");
    common::assert_schema_valid(&end);
    assert_eq!(end["phase"], "end");
    assert_eq!(end["attributes"]["reason"], "stream_ended");
    assert_eq!(end["started_at"], open["started_at"]);
    assert_eq!(end["site"]["grid"], "0231-07");
    assert!(end["seq"].as_u64().unwrap() > open["seq"].as_u64().unwrap());

    // A brain that subscribes now finds nothing open.
    let late = common::Subscriber::connect(broker.port, "swi/+/incidents/+");
    assert!(late.drain(Duration::from_secs(2)).is_empty());
}
