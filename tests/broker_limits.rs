//! Brokers configured the way cities and clouds configure them: a packet
//! size limit (Mosquitto's `max_packet_size`, announced in its MQTT 5
//! CONNACK; `message_size_limit`, which MQTT 3.1.1 clients are never told
//! of), an event too large for any packet, an ACL that refuses the event
//! topic (MQTT 5 PUBACK reason codes). Each against a real mosquitto.

mod common;

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;
use streetwatch::mqtt::{PublisherReport, RetryPolicy, run_publisher};
use streetwatch::outbox::{Handover, Outbox};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// The demo video through the daemon, evidence at the camera's full width (768 px,
/// far over 30 000 bytes as it is encoded).
fn daemon_config(broker: &str, dir: &std::path::Path, mqtt_extra: &str) -> String {
    format!(
        r#"
[node]
id = "lim-node"

[mqtt]
url = "{broker}"
topic_prefix = "swl"
{mqtt_extra}

[outbox]
path = "{dir}/outbox.sqlite"

[evidence]
max_width = 768
quality = 90

{camera}"#,
        dir = dir.display(),
        camera = common::plaza_camera(&common::media("vtest.avi"))
    )
}

/// Runs the daemon on the demo video against a broker with a 30 000-byte limit and
/// checks that every event and one evidence per start arrived, each evidence a
/// JPEG within the limit, over one connection.
fn every_event_and_its_evidence_arrive_within(broker_conf: &str, mqtt_extra: &str) {
    const LIMIT: usize = 30_000;
    let port = common::free_port();
    let broker = common::Mosquitto::start_with(
        port,
        &format!("listener {port} 127.0.0.1\nallow_anonymous true\n{broker_conf}"),
    );
    let sub = common::Subscriber::connect(broker.port, "swl/#");
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::write_config(
        dir.path(),
        &daemon_config(&broker.url(), dir.path(), mqtt_extra),
    );
    let stderr = common::run_daemon_to_end(&cfg, "info");
    let msgs = sub.drain(Duration::from_secs(2));

    let connects = stderr.matches("connected to MQTT broker").count();
    assert_eq!(connects, 1, "one connection, no reconnect storm:\n{stderr}");
    assert!(!stderr.contains("dead letters"), "{stderr}");

    let events: Vec<Value> = msgs
        .iter()
        .filter(|m| m.topic.starts_with("swl/lim-node/events/"))
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(!seqs.is_empty(), "no events:\n{stderr}");
    assert_eq!(
        seqs,
        (1..=seqs.len() as u64).collect::<Vec<_>>(),
        "all, in order"
    );

    let starts: HashSet<String> = events
        .iter()
        .filter(|e| e["phase"] == "start")
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!starts.is_empty());
    let mut evidence = HashSet::new();
    for m in msgs
        .iter()
        .filter(|m| m.topic.starts_with("swl/lim-node/evidence/"))
    {
        let id = m.topic.rsplit('/').next().unwrap().to_string();
        assert!(m.payload.len() < LIMIT, "{id}: {} bytes", m.payload.len());
        let img = image::load_from_memory_with_format(&m.payload, image::ImageFormat::Jpeg)
            .unwrap_or_else(|e| panic!("evidence of {id} is not a JPEG: {e}"));
        // Made smaller by scaling the whole frame: its aspect (768x576) is kept.
        let (w, h) = (img.width(), img.height());
        assert!(w >= 160 && (w * 3).abs_diff(h * 4) <= 4, "{w}x{h}");
        assert!(evidence.insert(id), "evidence published once");
    }
    assert_eq!(evidence, starts, "one evidence per start event");

    let conn = rusqlite::Connection::open(dir.path().join("outbox.sqlite")).unwrap();
    for table in ["outbox", "evidence", "dead_letter"] {
        let left: i64 = conn
            .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
            .unwrap();
        assert_eq!(left, 0, "{table}");
    }
}

#[test]
fn mqtt5_broker_limit_from_its_connack_is_kept() {
    // Mosquitto announces max_packet_size in its MQTT 5 CONNACK; the node is told
    // nothing else. Without keeping to it the broker drops the connection at the
    // first evidence JPEG and the node reconnects for ever.
    every_event_and_its_evidence_arrive_within("max_packet_size 30000", r#"protocol = "5""#);
}

#[test]
fn mqtt311_broker_message_size_limit_is_kept_when_configured() {
    // With MQTT 3.1.1 the broker acknowledges a message over message_size_limit and
    // throws it away: the limit cannot be learnt, it is configured.
    every_event_and_its_evidence_arrive_within(
        "message_size_limit 30000",
        "max_packet_bytes = 30000",
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs a publisher with `opts` over `items` until it has drained; returns its report.
fn publish_all(
    opts: streetwatch::mqtt::PublisherOptions,
    outbox: Outbox,
    items: Vec<Handover>,
) -> PublisherReport {
    let rt = runtime();
    let (tx, rx) = mpsc::channel(64);
    let handle = rt.spawn(run_publisher(
        opts,
        outbox,
        rx,
        CancellationToken::new(),
        Box::new(|_| {}),
    ));
    rt.block_on(async move {
        for item in items {
            tx.send(item).await.unwrap();
        }
        drop(tx);
        handle.await.unwrap()
    })
}

fn plain(n: usize) -> Handover {
    Handover {
        event: common::sample_event("pole-1", "cam-a", n),
        evidence: None,
        captured_at: None,
    }
}

fn alerts(msgs: &[common::Message], name: &str) -> Vec<Value> {
    msgs.iter()
        .filter(|m| m.topic == "swd/pole-1/alerts")
        .map(|m| serde_json::from_slice::<Value>(&m.payload).unwrap())
        .filter(|a| a["alert"] == name)
        .collect()
}

fn dead_letters(outbox: &std::path::Path) -> Vec<(String, String)> {
    Outbox::open(outbox)
        .unwrap()
        .dead_letters()
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.reason))
        .collect()
}

#[test]
fn an_event_too_large_for_any_packet_is_a_dead_letter_and_blocks_nothing() {
    const LIMIT: usize = 8192;
    let port = common::free_port();
    let broker = common::Mosquitto::start_with(
        port,
        &format!("listener {port} 127.0.0.1\nallow_anonymous true\nmax_packet_size {LIMIT}"),
    );
    let sub = common::Subscriber::connect(broker.port, "swd/#");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.sqlite");
    let mut opts = common::publisher_options(broker.port, "swd", "pole-1");
    opts.protocol = streetwatch::mqtt::Protocol::V5;

    // The third event carries so many objects that its JSON is over the limit.
    let mut items: Vec<Handover> = (0..6).map(plain).collect();
    let big = &mut items[2].event;
    let object = big.objects[0].clone();
    big.objects = vec![object; 200];
    let big_id = big.id.to_string();
    let big_len = serde_json::to_vec(&*big).unwrap().len();
    assert!(big_len > LIMIT, "{big_len}");

    let report = publish_all(opts, Outbox::open(&path).unwrap(), items);
    let msgs = sub.drain(Duration::from_secs(2));
    let seqs: Vec<u64> = msgs
        .iter()
        .filter(|m| m.topic.starts_with("swd/pole-1/events/"))
        .map(|m| {
            serde_json::from_slice::<Value>(&m.payload).unwrap()["seq"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, vec![1, 2, 4, 5, 6], "the rest arrive, in order");
    assert_eq!((report.acked, report.dead_lettered), (5, 1), "{report:?}");
    assert_eq!(report.left_in_outbox, 0);

    let dead = alerts(&msgs, "dead_letter");
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["id"], big_id.as_str());
    assert_eq!(dead[0]["seq"], 3);
    assert_eq!(dead[0]["part"], "event");
    assert!(
        dead[0]["bytes"].as_u64().unwrap() as usize > LIMIT,
        "{}",
        dead[0]
    );
    assert!(
        dead[0]["reason"].as_str().unwrap().contains("8192"),
        "{}",
        dead[0]
    );
    let kept = dead_letters(&path);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].0, big_id, "kept for whoever looks, with its reason");
}

#[test]
fn refused_by_the_acl_is_retried_then_a_dead_letter_named_by_its_reason() {
    // The node may publish its status, alerts and stats, but not events: Mosquitto
    // answers each event's PUBACK with 0x87 (not authorized) under MQTT 5.
    let port = common::free_port();
    let broker_dir = tempfile::tempdir().unwrap();
    let acl = broker_dir.path().join("acl");
    std::fs::write(
        &acl,
        "topic read swd/#\n\
         topic write swd/pole-1/status\n\
         topic write swd/pole-1/alerts\n\
         topic write swd/pole-1/stats\n\
         topic readwrite swd/pole-1/cmd/#\n",
    )
    .unwrap();
    let broker = common::Mosquitto::start_with(
        port,
        &format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\nacl_file {}",
            acl.display()
        ),
    );
    let sub = common::Subscriber::connect(broker.port, "swd/#");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outbox.sqlite");
    let mut opts = common::publisher_options(broker.port, "swd", "pole-1");
    opts.protocol = streetwatch::mqtt::Protocol::V5;
    opts.retry = RetryPolicy {
        min: Duration::from_millis(200),
        max: Duration::from_millis(400),
        max_refusals: 3,
    };
    opts.drain_timeout = Duration::from_secs(20);

    let report = publish_all(
        opts,
        Outbox::open(&path).unwrap(),
        (0..3).map(plain).collect(),
    );
    let msgs = sub.drain(Duration::from_secs(2));
    assert!(
        !msgs.iter().any(|m| m.topic.contains("/events/")),
        "the ACL lets no event through"
    );
    assert_eq!(report.acked, 0, "a refusal is not a delivery: {report:?}");
    assert_eq!(report.dead_lettered, 3, "{report:?}");
    assert_eq!(report.left_in_outbox, 0);
    let dead = alerts(&msgs, "dead_letter");
    assert_eq!(dead.len(), 3, "{dead:?}");
    let mut seqs: Vec<u64> = dead.iter().map(|a| a["seq"].as_u64().unwrap()).collect();
    seqs.sort();
    assert_eq!(seqs, vec![1, 2, 3], "{dead:?}");
    for a in &dead {
        let reason = a["reason"].as_str().unwrap();
        assert!(
            reason.contains("not authorized")
                && reason.contains("0x87")
                && reason.contains("3 times"),
            "{reason}"
        );
    }
    assert_eq!(dead_letters(&path).len(), 3);
}

#[test]
fn two_boxes_with_one_client_id_are_told_apart_and_backed_off() {
    // Two nodes configured with the same client id take the session from each other
    // as soon as they connect. Each connection dies young: reconnects back off, and an
    // alert names the likely cause (MQTT 5 says: session taken over).
    let broker = common::Mosquitto::start();
    let sub = common::Subscriber::connect(broker.port, "swd/+/alerts");
    let rt = runtime();
    let shutdown = CancellationToken::new();
    let mut handles = Vec::new();
    let dirs: Vec<_> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    for (dir, node) in dirs.iter().zip(["pole-1", "pole-2"]) {
        let mut opts = common::publisher_options(broker.port, "swd", node);
        opts.client_id = "sw-same-id".into();
        opts.protocol = streetwatch::mqtt::Protocol::V5;
        opts.drain_timeout = Duration::from_millis(200);
        let outbox = Outbox::open(&dir.path().join("outbox.sqlite")).unwrap();
        let (tx, rx) = mpsc::channel(4);
        handles.push((
            tx,
            rt.spawn(run_publisher(
                opts,
                outbox,
                rx,
                shutdown.clone(),
                Box::new(|_| {}),
            )),
        ));
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(90);
    let alert = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let m = sub
            .recv(left)
            .expect("a connection_unstable alert from either node");
        let a: Value = serde_json::from_slice(&m.payload).unwrap();
        if a["alert"] == "connection_unstable" {
            break a;
        }
    };
    assert!(alert["disconnects"].as_u64().unwrap() >= 3, "{alert}");
    let cause = alert["likely_cause"].as_str().unwrap();
    assert!(
        cause.contains("same client id") && cause.contains("sw-same-id"),
        "{alert}"
    );
    shutdown.cancel();
    for (tx, handle) in handles {
        drop(tx);
        rt.block_on(handle).unwrap();
    }
}
