//! Fleet scale on a real broker: three nodes (each a daemon on a short file)
//! publish to one Mosquitto; two brain workers read in one shared-subscription
//! group (`$share/brain/…`). Every event reaches exactly one worker (a copy is
//! only ever a QoS 1 redelivery: same `id`, same content), and each node's
//! `seq` has no gap across the group. A plain subscriber beside the group sees
//! the same events: the group lost nothing.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use serde_json::Value;

const NODES: [&str; 3] = ["pole-a", "pole-b", "pole-c"];

fn config(node: &str, broker: &str, dir: &std::path::Path) -> String {
    format!(
        r#"
[node]
id = "{node}"
[mqtt]
url = "{broker}"
topic_prefix = "swf"
[outbox]
path = "{dir}/outbox.sqlite"
[evidence]
enabled = false

[[camera]]
id = "cam"
url = "{clip}"
fps = 1
grid = "grid-{node}"

[[camera.zone]]
id = "plaza"
polygon = [[0, 0], [1, 0], [1, 1], [0, 1]]

[camera.zone.congestion]
classes = ["person"]
levels = {{ light = 3, moderate = 6, heavy = 9 }}
min_duration_s = 1
clear_duration_s = 2
update_interval_s = 3
"#,
        dir = dir.display(),
        clip = common::media("vtest.avi").display()
    )
}

/// Events a subscriber received, schema-checked: (id, event).
fn events(msgs: &[common::Message]) -> Vec<(String, Value)> {
    msgs.iter()
        .filter(|m| m.topic.contains("/events/"))
        .map(|m| {
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            common::assert_schema_valid(&v);
            assert_eq!(
                v["site"]["grid"],
                format!("grid-{}", v["node"].as_str().unwrap())
            );
            (v["id"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

#[test]
fn three_nodes_two_workers_one_shared_group_every_event_once_no_gap() {
    let broker = common::Mosquitto::start();
    let group = "$share/brain/swf/+/events/#";
    let workers = [
        common::Subscriber::connect(broker.port, group),
        common::Subscriber::connect(broker.port, group),
    ];
    let observer = common::Subscriber::connect(broker.port, "swf/+/events/#");

    let dirs: Vec<tempfile::TempDir> = NODES.iter().map(|_| tempfile::tempdir().unwrap()).collect();
    let runs: Vec<_> = NODES
        .iter()
        .zip(&dirs)
        .map(|(node, dir)| {
            let cfg = common::write_config(dir.path(), &config(node, &broker.url(), dir.path()));
            std::thread::spawn(move || common::run_daemon_to_end(&cfg, "warn"))
        })
        .collect();
    // Events each node says it stored and delivered (its summary line).
    let mut stored: BTreeMap<&str, u64> = BTreeMap::new();
    for (node, run) in NODES.iter().zip(runs) {
        let stderr = run.join().unwrap();
        let line = stderr
            .lines()
            .find(|l| l.contains("summary"))
            .unwrap_or_else(|| panic!("{node}: no summary in {stderr}"));
        let n = common::number_before(line, "events (");
        let delivered: u64 = line
            .split("events (")
            .nth(1)
            .and_then(|rest| rest.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("delivered in {line}"));
        assert_eq!(delivered, n, "{node} delivered what it stored: {line}");
        stored.insert(*node, n);
    }

    let got: Vec<Vec<(String, Value)>> = workers
        .iter()
        .map(|w| events(&w.drain(Duration::from_secs(2))))
        .collect();
    let all = events(&observer.drain(Duration::from_secs(1)));

    // Exactly one worker per event; a second copy only as a redelivery of the same event.
    let mut copies: HashMap<&str, Vec<(usize, &Value)>> = HashMap::new();
    for (w, evs) in got.iter().enumerate() {
        assert!(
            !evs.is_empty(),
            "worker {w} got nothing: the group did not share"
        );
        for (id, v) in evs {
            copies.entry(id.as_str()).or_default().push((w, v));
        }
    }
    for (id, cs) in &copies {
        let (first_worker, first) = cs[0];
        for (w, v) in &cs[1..] {
            assert_eq!(*w, first_worker, "{id} reached two workers");
            assert_eq!(*v, first, "{id}: a copy that differs");
        }
    }

    // Per node: seq 1..=n across the group, n = what the node stored.
    let mut seqs: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for (_, v) in got.iter().flatten() {
        let node = v["node"].as_str().unwrap().to_string();
        seqs.entry(node)
            .or_default()
            .insert(v["seq"].as_u64().unwrap());
    }
    for node in NODES {
        let n = stored[node];
        assert!(n > 0, "{node} made no events");
        let want: BTreeSet<u64> = (1..=n).collect();
        assert_eq!(seqs.get(node), Some(&want), "{node}: seq across the group");
    }

    // The group received what a plain subscriber received: nothing lost in the sharing.
    let group_ids: BTreeSet<&str> = copies.keys().copied().collect();
    let observed: BTreeSet<&str> = all.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(group_ids, observed);
    assert_eq!(observed.len() as u64, stored.values().sum::<u64>());
}
