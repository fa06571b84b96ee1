//! The publisher against a real mosquitto: every event (and every evidence
//! JPEG) delivered, through broker outages, in order per camera, duplicates
//! only as QoS 1 allows.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;
use streetwatch::event::{Event, Phase};
use streetwatch::mqtt::{PublisherOptions, PublisherReport, run_publisher};
use streetwatch::outbox::{Handover, Outbox};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

fn options(port: u16) -> PublisherOptions {
    common::publisher_options(port, "swd", "pole-1")
}

fn event(camera: &str, n: usize) -> Event {
    common::sample_event("pole-1", camera, n)
}

/// Received events in arrival order, schema-checked.
fn received(msgs: &[common::Message]) -> Vec<Value> {
    msgs.iter()
        .filter(|m| m.topic.starts_with("swd/pole-1/events/"))
        .map(|m| {
            let v: Value = serde_json::from_slice(&m.payload).unwrap();
            common::assert_schema_valid(&v);
            assert_eq!(
                m.topic,
                format!(
                    "swd/pole-1/events/{}/congestion",
                    v["camera"].as_str().unwrap()
                )
            );
            v
        })
        .collect()
}

/// The evidence of a start event: a real photo with a box drawn, as the cameras make it.
fn evidence_jpeg() -> Vec<u8> {
    let photo = image::open(common::media("bus.jpg")).unwrap().to_rgb8();
    let frame = streetwatch::source::Frame {
        width: photo.width(),
        height: photo.height(),
        data: photo.into_raw(),
        pts: Duration::ZERO,
        captured_at: SystemTime::now(),
        index: 0,
        decoded: None,
    };
    let opts = streetwatch::evidence::EvidenceOptions {
        max_width: 640,
        quality: 80,
        crop: false,
    };
    streetwatch::evidence::render(
        &frame,
        &streetwatch::evidence::Annotation::boxes(&[streetwatch::geom::FracBox([
            0.1, 0.2, 0.3, 0.4,
        ])]),
        &opts,
    )
    .unwrap()
}

/// A start event with its evidence; the JPEG's first bytes are made unique to the event
/// (in a JPEG comment), so a mix-up would show.
fn start_with_evidence(camera: &str, n: usize, jpeg: &[u8]) -> Handover {
    let mut e = event(camera, n);
    e.phase = Phase::Start;
    // SOI, then a COM segment naming the event, then the rest of the JPEG.
    let comment = format!("event {}", e.id);
    let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xFE];
    bytes.extend_from_slice(&((comment.len() + 2) as u16).to_be_bytes());
    bytes.extend_from_slice(comment.as_bytes());
    bytes.extend_from_slice(&jpeg[2..]);
    Handover {
        event: e,
        evidence: Some(bytes),
        captured_at: Some(SystemTime::now()),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

fn start_publisher(
    rt: &tokio::runtime::Runtime,
    port: u16,
    outbox: Outbox,
) -> (
    mpsc::Sender<Handover>,
    tokio::task::JoinHandle<PublisherReport>,
) {
    let (tx, rx) = mpsc::channel(64);
    let handle = rt.spawn(run_publisher(
        options(port),
        outbox,
        rx,
        CancellationToken::new(),
        Box::new(|_| {}),
    ));
    (tx, handle)
}

#[test]
fn a_thousand_events_arrive_valid_and_in_order() {
    let broker = common::Mosquitto::start();
    let sub = common::Subscriber::connect(broker.port, "swd/#");
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (tx, handle) = start_publisher(
        &rt,
        broker.port,
        Outbox::open(&dir.path().join("o.sqlite")).unwrap(),
    );
    rt.block_on(async {
        for n in 0..1000 {
            tx.send(event(["north", "south"][n % 2], n).into())
                .await
                .unwrap();
        }
    });
    drop(tx);
    let report = rt.block_on(handle).unwrap();
    assert_eq!(
        (report.committed, report.acked, report.left_in_outbox),
        (1000, 1000, 0)
    );

    let events = received(&sub.drain(Duration::from_secs(2)));
    assert_eq!(events.len(), 1000, "no broker outage: exactly once each");
    let seqs: Vec<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=1000).collect::<Vec<u64>>());
    // Stored order is hand-over order: n follows seq.
    for e in &events {
        assert_eq!(
            e["metrics"]["n"].as_f64().unwrap() as u64 + 1,
            e["seq"].as_u64().unwrap()
        );
    }
}

#[test]
fn broker_down_for_20_seconds_loses_nothing() {
    let mut broker = common::Mosquitto::start();
    let sub = common::Subscriber::connect_with(broker.port, "swd/#", true);
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (tx, handle) = start_publisher(
        &rt,
        broker.port,
        Outbox::open(&dir.path().join("o.sqlite")).unwrap(),
    );

    // 20 events/s for 30 s; the broker is down from 5 s to 25 s.
    let total = 600usize;
    let start = Instant::now();
    let mut stopped = false;
    let mut restarted = false;
    for n in 0..total {
        let due = start + Duration::from_millis(50 * n as u64);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        let t = start.elapsed();
        if !stopped && t >= Duration::from_secs(5) {
            broker.stop();
            stopped = true;
        }
        if stopped && !restarted && t >= Duration::from_secs(25) {
            broker.restart();
            restarted = true;
        }
        rt.block_on(tx.send(event(["north", "south", "east"][n % 3], n).into()))
            .unwrap();
    }
    assert!(stopped && restarted);
    drop(tx);
    let report = rt.block_on(handle).unwrap();
    assert_eq!(report.committed, total as u64);
    assert_eq!(
        report.left_in_outbox, 0,
        "everything acknowledged after the outage"
    );

    let events = received(&sub.drain(Duration::from_secs(3)));
    // Zero lost.
    let seqs: HashSet<u64> = events.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(
        seqs,
        (1..=total as u64).collect::<HashSet<u64>>(),
        "every seq arrived"
    );
    // Duplicates carry the same id as the original.
    let mut by_seq: HashMap<u64, &str> = HashMap::new();
    for e in &events {
        let id = e["id"].as_str().unwrap();
        let first = *by_seq.entry(e["seq"].as_u64().unwrap()).or_insert(id);
        assert_eq!(first, id, "a redelivery keeps its id");
    }
    // Per camera, first arrivals are in stored order.
    let mut last: HashMap<String, u64> = HashMap::new();
    let mut seen = HashSet::new();
    for e in &events {
        let seq = e["seq"].as_u64().unwrap();
        if !seen.insert(seq) {
            continue;
        }
        let cam = e["camera"].as_str().unwrap().to_string();
        let prev = last.insert(cam.clone(), seq).unwrap_or(0);
        assert!(seq > prev, "camera {cam}: seq {seq} arrived after {prev}");
    }
    let dups = events.len() - seqs.len();
    assert!(
        dups <= 64,
        "duplicates bounded by the in-flight window: {dups}"
    );
}

#[test]
fn events_handed_over_while_cameras_stop_are_delivered() {
    let broker = common::Mosquitto::start();
    let sub = common::Subscriber::connect(broker.port, "swd/#");
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let shutdown = CancellationToken::new();
    let (tx, rx) = mpsc::channel(64);
    let handle = rt.spawn(run_publisher(
        options(broker.port),
        Outbox::open(&dir.path().join("o.sqlite")).unwrap(),
        rx,
        shutdown.clone(),
        Box::new(|_| {}),
    ));
    rt.block_on(async {
        tx.send(event("north", 0).into()).await.unwrap();
        shutdown.cancel();
        // A camera closing its open incidents as it stops.
        tokio::time::sleep(Duration::from_millis(300)).await;
        for n in 1..4 {
            tx.send(event("north", n).into())
                .await
                .expect("the publisher still takes events while cameras stop");
        }
    });
    drop(tx);
    let report = rt.block_on(handle).unwrap();
    assert_eq!(
        (report.committed, report.acked, report.left_in_outbox),
        (4, 4, 0)
    );
    assert_eq!(received(&sub.drain(Duration::from_secs(2))).len(), 4);
}

#[test]
fn evidence_waits_out_a_broker_outage_with_its_events() {
    let mut broker = common::Mosquitto::start();
    let sub = common::Subscriber::connect_with(broker.port, "swd/#", true);
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let (tx, handle) = start_publisher(
        &rt,
        broker.port,
        Outbox::open(&dir.path().join("o.sqlite")).unwrap(),
    );
    let jpeg = evidence_jpeg();
    let mut sent: HashMap<String, Vec<u8>> = HashMap::new();
    let mut hand_over = |n: usize| {
        let h = start_with_evidence(["north", "south"][n % 2], n, &jpeg);
        sent.insert(h.event.id.clone(), h.evidence.clone().unwrap());
        rt.block_on(tx.send(h)).unwrap();
        rt.block_on(tx.send(event("north", 1000 + n).into()))
            .unwrap();
    };
    for n in 0..3 {
        hand_over(n);
    }
    std::thread::sleep(Duration::from_millis(500));
    // Down: events and evidence pile up in the outbox.
    broker.stop();
    for n in 3..15 {
        hand_over(n);
        std::thread::sleep(Duration::from_millis(100));
    }
    broker.restart();
    drop(tx);
    let report = rt.block_on(handle).unwrap();
    assert_eq!(report.committed, 30);
    assert_eq!((report.acked, report.evidence_acked), (30, 15));
    assert_eq!((report.left_in_outbox, report.evidence_left), (0, 0));

    let msgs = sub.drain(Duration::from_secs(3));
    let events = received(&msgs);
    let starts: HashSet<String> = events
        .iter()
        .filter(|e| e["phase"] == "start")
        .map(|e| {
            let id = e["id"].as_str().unwrap().to_string();
            assert_eq!(e["evidence"], format!("evidence/{id}"), "{e}");
            id
        })
        .collect();
    assert_eq!(starts.len(), 15);
    let mut first_arrival: HashMap<String, usize> = HashMap::new();
    for (i, m) in msgs.iter().enumerate() {
        if let Some(id) = m.topic.strip_prefix("swd/pole-1/evidence/") {
            assert_eq!(&m.payload, &sent[id], "evidence of {id} arrives unchanged");
            first_arrival.entry(id.to_string()).or_insert(i);
        }
    }
    assert_eq!(
        first_arrival.keys().cloned().collect::<HashSet<_>>(),
        starts,
        "every start's evidence arrived"
    );
    // First deliveries: each JPEG after its event.
    for (id, at) in &first_arrival {
        let event_at = msgs
            .iter()
            .position(|m| {
                m.topic.starts_with("swd/pole-1/events/")
                    && serde_json::from_slice::<Value>(&m.payload).unwrap()["id"] == id.as_str()
            })
            .unwrap();
        assert!(event_at < *at, "evidence of {id} before its event");
    }
}

#[test]
fn the_schema_check_rejects_malformed_events() {
    let good = serde_json::to_value(event("north", 1)).unwrap();
    let mut with_seq = good.clone();
    with_seq["seq"] = 1.into();
    assert!(common::schema_accepts(&with_seq));
    for (key, bad) in [
        ("seq", Value::from(0)),
        ("phase", Value::from("begin")),
        ("ts", Value::from("yesterday")),
        ("id", Value::from("not-a-uuid")),
        ("schema", Value::from("streetwatch.event/2")),
    ] {
        let mut e = with_seq.clone();
        e[key] = bad.clone();
        assert!(!common::schema_accepts(&e), "{key} = {bad} accepted");
    }
    let mut e = with_seq.clone();
    e["objects"][0]["box"][2] = 1.5.into();
    assert!(!common::schema_accepts(&e), "box outside 0..1 accepted");
    let mut e = with_seq;
    e["surprise"] = true.into();
    assert!(
        common::schema_accepts(&e),
        "a field a newer node adds is accepted (docs/mqtt.md, compatibility)"
    );
}

#[test]
fn a_full_outbox_drops_the_oldest_counts_them_and_says_so() {
    let mut broker = common::Mosquitto::start();
    // A persistent session: messages published while this subscriber is away wait for it.
    let sub = common::Subscriber::connect_with(broker.port, "swd/#", true);
    broker.stop();

    let dir = tempfile::tempdir().unwrap();
    let limits = streetwatch::outbox::Limits {
        max_events: 50,
        max_age: Duration::from_secs(3600),
        ..Default::default()
    };
    let outbox = Outbox::open_with(
        &dir.path().join("o.sqlite"),
        limits,
        streetwatch::clock::system(),
    )
    .unwrap();
    let rt = runtime();
    let (tx, handle) = start_publisher(&rt, broker.port, outbox);
    rt.block_on(async {
        for n in 0..80 {
            tx.send(event("north", n).into()).await.unwrap();
        }
    });
    broker.restart();
    drop(tx);
    let report = rt.block_on(handle).unwrap();
    assert_eq!(report.committed, 80);
    assert_eq!(report.left_in_outbox, 0);

    let msgs = sub.drain(Duration::from_secs(3));
    let seqs: Vec<u64> = received(&msgs)
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(
        seqs,
        (31..=80).collect::<Vec<u64>>(),
        "the newest 50 kept, in order"
    );
    let alerts: Vec<Value> = msgs
        .iter()
        .filter(|m| m.topic == "swd/pole-1/alerts")
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["alert"], "outbox_dropped");
    assert_eq!(alerts[0]["dropped"], 30);
    assert_eq!(alerts[0]["up_to_seq"], 30);
}

#[test]
fn evidence_beyond_its_byte_budget_is_dropped_counted_and_announced() {
    let mut broker = common::Mosquitto::start();
    let sub = common::Subscriber::connect_with(broker.port, "swd/#", true);
    broker.stop();

    let jpeg = evidence_jpeg();
    let items: Vec<Handover> = (0..10)
        .map(|n| start_with_evidence("north", n, &jpeg))
        .collect();
    let size = items[0].evidence.as_ref().unwrap().len() as u64;
    // Room for three and a half JPEGs: the newest three are kept, all events are.
    let limits = streetwatch::outbox::Limits {
        max_evidence_bytes: size * 7 / 2,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    let outbox = Outbox::open_with(
        &dir.path().join("o.sqlite"),
        limits,
        streetwatch::clock::system(),
    )
    .unwrap();
    let ids: Vec<String> = items.iter().map(|h| h.event.id.clone()).collect();
    let rt = runtime();
    let (tx, handle) = start_publisher(&rt, broker.port, outbox);
    rt.block_on(async {
        for h in items {
            tx.send(h).await.unwrap();
        }
    });
    broker.restart();
    drop(tx);
    let report = rt.block_on(handle).unwrap();
    assert_eq!((report.acked, report.evidence_acked), (10, 3));
    assert_eq!((report.left_in_outbox, report.evidence_left), (0, 0));

    let msgs = sub.drain(Duration::from_secs(3));
    assert_eq!(received(&msgs).len(), 10, "every event kept");
    let evidence: HashSet<&str> = msgs
        .iter()
        .filter_map(|m| m.topic.strip_prefix("swd/pole-1/evidence/"))
        .collect();
    let newest: HashSet<&str> = ids[7..].iter().map(String::as_str).collect();
    assert_eq!(evidence, newest);
    let alerts: Vec<Value> = msgs
        .iter()
        .filter(|m| m.topic == "swd/pole-1/alerts")
        .map(|m| serde_json::from_slice(&m.payload).unwrap())
        .collect();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["alert"], "evidence_dropped");
    assert_eq!(alerts[0]["dropped"], 7);
    assert_eq!(alerts[0]["dropped_total"], 7);
    assert_eq!(alerts[0]["up_to_seq"], 7);
}

#[test]
fn mqtt5_delivers_with_content_type_and_stats_expire() {
    use rumqttc::v5::mqttbytes::QoS as QoS5;
    use rumqttc::v5::mqttbytes::v5::Packet as P5;
    use rumqttc::v5::{Client, Event as E5, MqttOptions};

    let broker = common::Mosquitto::start();
    // An MQTT 5 subscriber, to see the properties.
    let mut o = MqttOptions::new(format!("v5-sub-{}", broker.port), "127.0.0.1", broker.port);
    o.set_keep_alive(Duration::from_secs(30));
    // Room for evidence JPEGs (the client's default limit is far smaller).
    o.set_max_packet_size(Some(1 << 20));
    let (client, mut conn) = Client::new(o, 64);
    let (tx, rx) = std::sync::mpsc::channel();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for n in conn.iter() {
            match n {
                Ok(E5::Incoming(P5::ConnAck(_))) => {
                    client.subscribe("swd/#", QoS5::AtLeastOnce).unwrap()
                }
                Ok(E5::Incoming(P5::SubAck(_))) => {
                    let _ = ready_tx.send(());
                }
                Ok(E5::Incoming(P5::Publish(p))) => {
                    if tx.send(p).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let rt = runtime();
    let mut opts = options(broker.port);
    opts.protocol = streetwatch::mqtt::Protocol::V5;
    opts.stats_interval = Duration::from_secs(1);
    let (events_tx, events) = mpsc::channel(64);
    let handle = rt.spawn(run_publisher(
        opts,
        Outbox::open(&dir.path().join("o.sqlite")).unwrap(),
        events,
        CancellationToken::new(),
        Box::new(|_| {}),
    ));
    rt.block_on(async {
        for n in 0..100 {
            events_tx.send(event("north", n).into()).await.unwrap();
        }
        events_tx
            .send(start_with_evidence("north", 100, &evidence_jpeg()))
            .await
            .unwrap();
        // Long enough for a stats report.
        tokio::time::sleep(Duration::from_millis(2500)).await;
    });
    drop(events_tx);
    let report = rt.block_on(handle).unwrap();
    assert_eq!((report.acked, report.left_in_outbox), (101, 0));
    assert_eq!(report.evidence_acked, 1);

    let mut events_seen = 0;
    let mut evidence_seen = 0;
    let mut stats_seen = 0;
    let mut status_seen = 0;
    while let Ok(p) = rx.recv_timeout(Duration::from_secs(2)) {
        let topic = String::from_utf8_lossy(&p.topic).into_owned();
        let props = p.properties.clone().unwrap_or_default();
        if topic.starts_with("swd/pole-1/evidence/") {
            assert_eq!(props.content_type.as_deref(), Some("image/jpeg"));
            assert_eq!(
                props.message_expiry_interval, None,
                "evidence never expires"
            );
            assert_eq!(&p.payload[..2], &[0xFF, 0xD8], "a JPEG");
            evidence_seen += 1;
            continue;
        }
        assert_eq!(
            props.content_type.as_deref(),
            Some("application/json"),
            "{topic}"
        );
        if topic.starts_with("swd/pole-1/events/") {
            let v: Value = serde_json::from_slice(&p.payload).unwrap();
            common::assert_schema_valid(&v);
            assert_eq!(props.message_expiry_interval, None, "events never expire");
            events_seen += 1;
        } else if topic == "swd/pole-1/stats" {
            let left = props.message_expiry_interval.expect("stats expire");
            assert!(left <= 2, "{left}");
            stats_seen += 1;
        } else if topic == "swd/pole-1/status" {
            status_seen += 1;
        }
    }
    assert_eq!(events_seen, 101);
    assert_eq!(evidence_seen, 1);
    assert!(stats_seen >= 1);
    assert!(status_seen >= 1);
}
