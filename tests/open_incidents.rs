//! The retained open-incident topics on a real mosquitto: while a daemon runs,
//! `{prefix}/{node}/incidents/{incident}` mirrors the latest start/update of
//! each open incident and is cleared when it ends; after the run (which ends
//! every incident) a consumer that subscribes finds no open incident left.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use serde_json::Value;

fn config(broker: &str, dir: &std::path::Path) -> String {
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
