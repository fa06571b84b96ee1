//! Outbox throughput and publish latency against a real mosquitto on loopback.
//!
//! `cargo bench --bench outbox_publish` (or `cargo test --bench outbox_publish -- --bench`)
//! measures, in one run:
//! - durable commits per second: events committed to the SQLite outbox
//!   (WAL, `synchronous = FULL`: fsync per commit) with no broker;
//! - end-to-end publish latency p50/p99: from handing an event to the publisher
//!   to a subscriber receiving it, at a steady 200 events/s, and the
//!   throughput when events are handed over as fast as possible.
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it only checks that
//! a small burst goes through.

use std::sync::mpsc as std_mpsc;
use std::time::{Duration, Instant};

use streetwatch::event::Event;
use streetwatch::mqtt::{PublisherOptions, run_publisher};
use streetwatch::outbox::Outbox;
use tokio_util::sync::CancellationToken;

#[path = "../tests/common/mod.rs"]
mod harness;

/// A test event that carries when it was handed over (µs since the run's start).
fn event(n: usize, sent_us: u64) -> Event {
    let mut e = harness::sample_event("bench", "cam", n);
    e.metrics.insert("sent_us".into(), sent_us as f64);
    e
}

/// Subscribes to the bench's events; yields (receive time in µs since `t0`, payload).
fn subscribe(port: u16, t0: Instant) -> std_mpsc::Receiver<(u64, Vec<u8>)> {
    use rumqttc::{Client, Event as E, MqttOptions, Packet, QoS};
    let mut o = MqttOptions::new(format!("bench-sub-{port}"), "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(30));
    let (client, mut conn) = Client::new(o, 1024);
    let (tx, rx) = std_mpsc::channel();
    let (ready_tx, ready_rx) = std_mpsc::channel();
    std::thread::spawn(move || {
        for n in conn.iter() {
            match n {
                Ok(E::Incoming(Packet::ConnAck(_))) => {
                    client.subscribe("bench/#", QoS::AtLeastOnce).unwrap();
                }
                Ok(E::Incoming(Packet::SubAck(_))) => {
                    let _ = ready_tx.send(());
                }
                Ok(E::Incoming(Packet::Publish(p))) if p.topic.contains("/events/") => {
                    if tx
                        .send((t0.elapsed().as_micros() as u64, p.payload.to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("subscribed");
    rx
}

fn options(port: u16) -> PublisherOptions {
    PublisherOptions {
        keep_alive: Duration::from_secs(30),
        drain_timeout: Duration::from_secs(30),
        stats_interval: Duration::from_secs(3600),
        ..harness::publisher_options(port, "bench", "bench")
    }
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i] as f64 / 1000.0
}

/// Hands `n` events to a publisher at `rate` per second (0: as fast as possible);
/// returns per-event latencies (µs, sorted) and the wall time of the whole run.
fn publish_run(rt: &tokio::runtime::Runtime, n: usize, rate: f64) -> (Vec<u64>, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let broker = harness::Mosquitto::start();
    let port = broker.port;
    let t0 = Instant::now();
    let rx = subscribe(port, t0);
    let outbox = Outbox::open(&dir.path().join("o.sqlite")).unwrap();
    let (tx, events) = tokio::sync::mpsc::channel(1024);
    let handle = rt.spawn(run_publisher(
        options(port),
        outbox,
        events,
        CancellationToken::new(),
        Box::new(|_| {}),
    ));
    // Let the publisher connect first: the bench measures delivery, not connecting.
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    for i in 0..n {
        if rate > 0.0 {
            let due = start + Duration::from_secs_f64(i as f64 / rate);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        rt.block_on(tx.send(event(i, t0.elapsed().as_micros() as u64).into()))
            .unwrap();
    }
    let mut lat = Vec::with_capacity(n);
    while lat.len() < n {
        let (at, payload) = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("event delivered");
        let v: serde_json::Value = serde_json::from_slice(&payload).unwrap();
        let sent = v["metrics"]["sent_us"].as_f64().unwrap() as u64;
        lat.push(at.saturating_sub(sent));
    }
    let wall = start.elapsed();
    drop(tx);
    let report = rt.block_on(handle).unwrap();
    assert_eq!(report.left_in_outbox, 0);
    lat.sort_unstable();
    (lat, wall)
}

fn commit_throughput(n: usize) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let mut outbox = Outbox::open(&dir.path().join("o.sqlite")).unwrap();
    let start = Instant::now();
    for i in 0..n {
        outbox.commit(event(i, 0), "bench").unwrap();
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if !bench {
        let (lat, _) = publish_run(&rt, 50, 0.0);
        assert_eq!(lat.len(), 50);
        println!("outbox_publish: smoke run, 50 events delivered (run `cargo bench` to measure)");
        return;
    }
    let commits = commit_throughput(2000);
    println!("durable commits: {commits:.0} events/s (2000 events, fsync each)");
    let (lat, wall) = publish_run(&rt, 2000, 200.0);
    println!(
        "publish latency at 200 events/s: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms ({} events, {:.1} s)",
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
        lat.len(),
        wall.as_secs_f64()
    );
    let (lat, wall) = publish_run(&rt, 5000, 0.0);
    println!(
        "burst: {} events delivered in {:.2} s = {:.0} events/s end to end (p50 {:.1} ms, p99 {:.1} ms)",
        lat.len(),
        wall.as_secs_f64(),
        lat.len() as f64 / wall.as_secs_f64(),
        percentile(&lat, 0.5),
        percentile(&lat, 0.99)
    );
}
