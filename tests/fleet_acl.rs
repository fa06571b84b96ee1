//! Remote control, secured: a real mosquitto with the fleet's password file
//! and exactly the ACL the docs give (`docs/mosquitto/fleet.acl`). The node
//! logs in with a username and password; only the central service may
//! command it; another node's credentials cannot; the node cannot publish
//! under another node's prefix; a retained command is never run; snapshots
//! are made like evidence (`[evidence]` size), and not at all when evidence
//! is off.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

const CENTRAL: (&str, &str) = ("central", "central-secret");
const POLE_1: (&str, &str) = ("pole-1", "pole-1-secret");
const POLE_2: (&str, &str) = ("pole-2", "pole-2-secret");

/// A broker that takes only the fleet's users, under the documented ACL.
fn fleet_broker(dir: &Path) -> common::Mosquitto {
    let passwords = dir.join("passwords");
    for (i, (user, password)) in [CENTRAL, POLE_1, POLE_2].into_iter().enumerate() {
        let mut cmd = Command::new("mosquitto_passwd");
        cmd.arg("-b");
        if i == 0 {
            cmd.arg("-c");
        }
        let ok = cmd
            .arg(&passwords)
            .args([user, password])
            .stdout(Stdio::null())
            .status()
            .expect("mosquitto_passwd (Debian's mosquitto package)")
            .success();
        assert!(ok, "mosquitto_passwd {user}");
    }
    let acl = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/mosquitto/fleet.acl");
    let port = common::free_port();
    common::Mosquitto::start_with(
        port,
        &format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}",
            passwords.display(),
            acl.display()
        ),
    )
}

fn node_config(port: u16, dir: &Path, evidence: &str) -> String {
    std::fs::write(dir.join("mqtt-password"), format!("{}\n", POLE_1.1)).unwrap();
    format!(
        r#"
[node]
id = "pole-1"
[mqtt]
url = "mqtt://127.0.0.1:{port}"
username = "pole-1"
password_file = "{dir}/mqtt-password"
[outbox]
path = "{dir}/outbox.sqlite"
[evidence]
{evidence}
[[camera]]
id = "campus"
url = "{clip}"
fps = 2
loop = true
realtime = true
"#,
        dir = dir.display(),
        clip = common::media("vtest.avi").display()
    )
}

fn spawn(cfg: &Path) -> (common::Daemon, common::LogWatch) {
    let mut child = Command::new(common::bin())
        .args(["run", "--config"])
        .arg(cfg)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let logs = common::LogWatch::new(child.stderr.take().unwrap());
    (common::Daemon(child), logs)
}

/// Publishes a command to pole-1 as `login`.
fn send(port: u16, login: (&str, &str), verb: &str, body: &str) {
    common::publish_as(
        port,
        Some(login),
        &format!("streetwatch/pole-1/cmd/{verb}"),
        body.as_bytes(),
        false,
    );
}

/// The result with `id`, skipping everything else (kept in `seen`).
fn result_of(sub: &common::Subscriber, id: &str, seen: &mut Vec<common::Message>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = sub
            .recv(left)
            .unwrap_or_else(|| panic!("no result for {id}"));
        seen.push(m.clone());
        if m.topic == "streetwatch/pole-1/cmd/result" {
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            if v["id"] == id {
                return v;
            }
        }
    }
}

/// Waits until the node says it is online (logged in, subscribed to its commands).
fn online(sub: &common::Subscriber, seen: &mut Vec<common::Message>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let m = sub
            .recv(left)
            .unwrap_or_else(|| panic!("the node never came online: {seen:?}"));
        seen.push(m.clone());
        if m.topic == "streetwatch/pole-1/status"
            && serde_json::from_slice::<Value>(&m.payload).unwrap()["state"] == "online"
        {
            return;
        }
    }
}

/// Asks for a snapshot as the central service until the camera has a frame.
fn snapshot(port: u16, sub: &common::Subscriber, seen: &mut Vec<common::Message>) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    for n in 0.. {
        let id = format!("snap-{n}");
        send(
            port,
            CENTRAL,
            "snapshot",
            &format!(r#"{{"id": "{id}", "camera": "campus"}}"#),
        );
        let r = result_of(sub, &id, seen);
        if r["ok"] == true || !r["error"].as_str().unwrap().contains("no frame yet") {
            return r;
        }
        assert!(Instant::now() < deadline, "camera never analysed: {r}");
        std::thread::sleep(Duration::from_millis(300));
    }
    unreachable!()
}

fn results_with_id(seen: &[common::Message], id: &str) -> usize {
    seen.iter()
        .filter(|m| m.topic == "streetwatch/pole-1/cmd/result")
        .filter(|m| serde_json::from_slice::<Value>(&m.payload).unwrap()["id"] == id)
        .count()
}

#[test]
fn only_the_central_service_commands_a_node_under_the_fleet_acl() {
    let dir = tempfile::tempdir().unwrap();
    let broker = fleet_broker(dir.path());
    let port = broker.port;
    // Anonymous clients are refused: the central service logs in.
    let central = common::Subscriber::connect_as(port, "streetwatch/#", false, Some(CENTRAL));

    // A retained command left on the broker would run at every reconnection: it is ignored.
    common::publish_as(
        port,
        Some(CENTRAL),
        "streetwatch/pole-1/cmd/camera/disable",
        br#"{"id": "retained", "camera": "campus"}"#,
        true,
    );
    let cfg = common::write_config(
        dir.path(),
        &node_config(port, dir.path(), "max_width = 320\nquality = 70"),
    );
    let (_daemon, logs) = spawn(&cfg);
    let mut seen = Vec::new();
    online(&central, &mut seen);

    // The node logged in with its password (its status is online) and obeys the
    // central service; its snapshot is made like evidence, 320 px wide.
    let r = snapshot(port, &central, &mut seen);
    assert_eq!(r["ok"], true, "{r}");
    assert_eq!(
        (
            r["result"]["width"].as_u64(),
            r["result"]["height"].as_u64()
        ),
        (Some(320), Some(240)),
        "{r}"
    );
    let jpeg = seen
        .iter()
        .find(|m| m.topic == "streetwatch/pole-1/snapshots/campus")
        .map(|m| m.payload.clone())
        .unwrap_or_else(|| {
            central
                .recv(Duration::from_secs(10))
                .filter(|m| m.topic == "streetwatch/pole-1/snapshots/campus")
                .expect("the snapshot")
                .payload
        });
    let img = image::load_from_memory(&jpeg).unwrap();
    assert_eq!((img.width(), img.height()), (320, 240));
    assert!(
        logs.wait_for(0, Duration::from_secs(5), |l| l
            .contains("retained command ignored"))
            .is_some(),
        "{:#?}",
        logs.lines()
    );
    assert_eq!(results_with_id(&seen, "retained"), 0, "never run");

    // Another node's credentials cannot command this node (the broker drops it) …
    send(
        port,
        POLE_2,
        "camera/disable",
        r#"{"id": "intruder", "camera": "campus"}"#,
    );
    // … nor can the node command itself.
    send(
        port,
        POLE_1,
        "camera/disable",
        r#"{"id": "self", "camera": "campus"}"#,
    );
    // This node cannot publish under another node's prefix.
    common::publish_as(
        port,
        Some(POLE_1),
        "streetwatch/pole-2/events/gate/congestion",
        b"{}",
        false,
    );
    // The camera still runs: a later command from the central service is answered
    // with a frame, and nothing else was answered or forwarded meanwhile.
    let r = snapshot(port, &central, &mut seen);
    assert_eq!(r["ok"], true, "camera not disabled: {r}");
    seen.extend(central.drain(Duration::from_secs(1)));
    for id in ["intruder", "self", "retained"] {
        assert_eq!(results_with_id(&seen, id), 0, "{id} was run");
    }
    assert!(
        !seen
            .iter()
            .any(|m| m.topic.starts_with("streetwatch/pole-2/")),
        "published under another node's prefix"
    );
    assert!(
        seen.iter().any(|m| m.topic == "streetwatch/pole-1/status"),
        "the node's own topics go through"
    );
}

#[test]
fn no_snapshot_leaves_a_box_whose_evidence_is_off() {
    let dir = tempfile::tempdir().unwrap();
    let broker = fleet_broker(dir.path());
    let port = broker.port;
    let central = common::Subscriber::connect_as(port, "streetwatch/#", false, Some(CENTRAL));
    let cfg = common::write_config(
        dir.path(),
        &node_config(port, dir.path(), "enabled = false"),
    );
    let (_daemon, _logs) = spawn(&cfg);
    let mut seen = Vec::new();
    online(&central, &mut seen);
    let r = snapshot(port, &central, &mut seen);
    assert_eq!(r["ok"], false, "{r}");
    assert!(
        r["error"].as_str().unwrap().contains("enabled = false"),
        "{r}"
    );
    seen.extend(central.drain(Duration::from_secs(1)));
    assert!(!seen.iter().any(|m| m.topic.contains("/snapshots/")));
}
