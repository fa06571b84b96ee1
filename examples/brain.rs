//! A reference consumer: the city brain's side of streetwatch, in one file.
//!
//! It reads events with a shared subscription (run several in one `--group`
//! to spread the load), drops QoS 1 redeliveries by event `id`, reports gaps
//! in each node's `seq`, joins each start event to its evidence JPEG (saved
//! under `--evidence-dir`), keeps the table of open incidents from the
//! retained `{prefix}/+/incidents/+` topics, learns every camera's site from
//! the retained `info` messages, and prints the line a dispatcher acts on:
//!
//! ```text
//! dispatch grid 0231-07: litter at 12 Jingmi Rd (bus stop), camera gate, evidence saved to evidence/0195….jpg
//! resolved grid 0231-07: litter at 12 Jingmi Rd, camera gate, after 252 s (resolved)
//! ```
//!
//! Payloads are read with the crate's own types (`streetwatch::event::Event`,
//! `streetwatch::wire::Info`), which ignore fields a newer node adds.
//!
//! `cargo run --release --example brain -- --url mqtt://127.0.0.1:1883`

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use rumqttc::{Client, Event as MqttEvent, MqttOptions, Packet, QoS};
use streetwatch::event::{Event, Phase};
use streetwatch::wire::Info;

#[derive(Parser, Debug)]
struct Args {
    /// The broker: `mqtt://host[:port]`.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    url: String,
    /// `[mqtt] topic_prefix` of the nodes.
    #[arg(long, default_value = "streetwatch")]
    prefix: String,
    /// Shared-subscription group: workers in one group share the events.
    #[arg(long, default_value = "brain")]
    group: String,
    /// Where evidence JPEGs are saved, as `{event id}.jpg`.
    #[arg(long, default_value = "evidence")]
    evidence_dir: PathBuf,
}

/// What the brain does with one message: lines to print, files to write.
#[derive(Debug, Default, PartialEq)]
struct Outcome {
    lines: Vec<String>,
    save: Option<(PathBuf, Vec<u8>)>,
}

/// The brain's state. Pure: messages in, [`Outcome`]s out.
#[derive(Default)]
struct Brain {
    prefix: String,
    evidence_dir: PathBuf,
    /// Event ids seen (a real brain keeps them for days, or a unique key in its store).
    seen: HashSet<String>,
    /// Highest seq per node.
    last_seq: HashMap<String, u64>,
    /// Open incidents: incident id → its latest start/update.
    open: BTreeMap<String, Event>,
    /// Start events waiting for their evidence, by event id.
    waiting: HashMap<String, Event>,
    /// Evidence that came before its event, by event id.
    early_evidence: HashMap<String, Vec<u8>>,
    /// Cameras from the info messages: (node, camera) → grid, for the map line.
    cameras: BTreeMap<(String, String), String>,
}

impl Brain {
    fn new(prefix: &str, evidence_dir: PathBuf) -> Self {
        Self {
            prefix: prefix.into(),
            evidence_dir,
            ..Default::default()
        }
    }

    fn handle(&mut self, topic: &str, payload: &[u8]) -> Outcome {
        let Some(rest) = topic
            .strip_prefix(&self.prefix)
            .and_then(|t| t.strip_prefix('/'))
        else {
            return Outcome::default();
        };
        let levels: Vec<&str> = rest.split('/').collect();
        match levels.as_slice() {
            [_node, "events", ..] => match serde_json::from_slice::<Event>(payload) {
                Ok(e) => self.event(e),
                Err(e) => line(format!("ignored {topic}: {e}")),
            },
            [_node, "evidence", id] => self.evidence(id, payload.to_vec()),
            [_node, "incidents", incident] => self.retained_incident(incident, payload),
            [node, "info"] => match serde_json::from_slice::<Info>(payload) {
                Ok(info) => self.info(node, info),
                Err(e) => line(format!("ignored {topic}: {e}")),
            },
            _ => Outcome::default(),
        }
    }

    fn event(&mut self, e: Event) -> Outcome {
        if !self.seen.insert(e.id.clone()) {
            return Outcome::default(); // a QoS 1 redelivery
        }
        let mut out = Outcome::default();
        let last = self.last_seq.entry(e.node.clone()).or_insert(0);
        if e.seq > *last + 1 && *last > 0 {
            out.lines.push(format!(
                "gap: node {} seq {}..{} never arrived (dropped by its outbox, see its alerts)",
                e.node,
                *last + 1,
                e.seq - 1
            ));
        }
        *last = (*last).max(e.seq);
        match e.phase {
            Phase::Start | Phase::Update => {
                let new = self.open.insert(e.incident.clone(), e.clone()).is_none();
                if e.phase == Phase::Start && new {
                    match self.early_evidence.remove(&e.id) {
                        Some(jpeg) => out = merge(out, self.dispatch(&e, Some(jpeg))),
                        None if e.evidence.is_some() => {
                            self.waiting.insert(e.id.clone(), e);
                        }
                        None => out = merge(out, self.dispatch(&e, None)),
                    }
                }
            }
            Phase::End => {
                self.open.remove(&e.incident);
                let reason = e.attributes.get("reason").map_or("ended", String::as_str);
                let took = match (ts(&e.started_at), e.ended_at.as_deref().and_then(ts)) {
                    (Some(a), Some(b)) => format!(", after {} s", (b - a).get_seconds()),
                    _ => String::new(),
                };
                out.lines.push(format!(
                    "resolved grid {}: {} at {}, camera {}{took} ({reason})",
                    e.site.grid.as_deref().unwrap_or("?"),
                    e.kind,
                    e.site.address.as_deref().unwrap_or("an unknown address"),
                    e.camera,
                ));
            }
        }
        out
    }

    fn evidence(&mut self, id: &str, jpeg: Vec<u8>) -> Outcome {
        match self.waiting.remove(id) {
            Some(e) => self.dispatch(&e, Some(jpeg)),
            None if self.seen.contains(id) => Outcome::default(), // a redelivered JPEG
            None => {
                self.early_evidence.insert(id.to_string(), jpeg);
                Outcome::default()
            }
        }
    }

    fn dispatch(&self, e: &Event, jpeg: Option<Vec<u8>>) -> Outcome {
        let at = match (&e.site.address, &e.site.description) {
            (Some(a), Some(d)) => format!("{a} ({d})"),
            (Some(a), None) => a.clone(),
            (None, Some(d)) => d.clone(),
            (None, None) => "an unknown address".into(),
        };
        let (evidence, save) = match jpeg {
            Some(jpeg) => {
                let path = self.evidence_dir.join(format!("{}.jpg", e.id));
                (
                    format!("evidence saved to {}", path.display()),
                    Some((path, jpeg)),
                )
            }
            None => ("no evidence".to_string(), None),
        };
        Outcome {
            lines: vec![format!(
                "dispatch grid {}: {} at {at}, camera {}, {evidence}",
                e.site.grid.as_deref().unwrap_or("?"),
                e.kind,
                e.camera,
            )],
            save,
        }
    }

    fn retained_incident(&mut self, incident: &str, payload: &[u8]) -> Outcome {
        if payload.is_empty() {
            self.open.remove(incident);
            return Outcome::default();
        }
        match serde_json::from_slice::<Event>(payload) {
            Ok(e) => {
                let l = format!(
                    "open: grid {} {} at {}, camera {}, since {}",
                    e.site.grid.as_deref().unwrap_or("?"),
                    e.kind,
                    e.site.address.as_deref().unwrap_or("an unknown address"),
                    e.camera,
                    e.started_at
                );
                let known = self.open.insert(incident.to_string(), e).is_some();
                if known { Outcome::default() } else { line(l) }
            }
            Err(e) => line(format!("ignored incident {incident}: {e}")),
        }
    }

    fn info(&mut self, node: &str, info: Info) -> Outcome {
        let mut out = Outcome::default();
        for cam in info.cameras {
            let grid = cam.site.grid.clone().unwrap_or_else(|| "?".into());
            let key = (node.to_string(), cam.id.clone());
            if self.cameras.insert(key, grid.clone()).as_ref() != Some(&grid) {
                out.lines.push(format!(
                    "map: node {node} camera {} in grid {grid} at {}, {} zones",
                    cam.id,
                    cam.site.address.as_deref().unwrap_or("an unknown address"),
                    cam.zones.len()
                ));
            }
        }
        out
    }
}

fn line(s: String) -> Outcome {
    Outcome {
        lines: vec![s],
        save: None,
    }
}

fn merge(mut a: Outcome, b: Outcome) -> Outcome {
    a.lines.extend(b.lines);
    a.save = a.save.or(b.save);
    a
}

fn ts(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let broker = streetwatch::mqtt::BrokerUrl::parse(&args.url).map_err(anyhow::Error::msg)?;
    anyhow::ensure!(!broker.tls, "this example speaks plain mqtt:// only");
    std::fs::create_dir_all(&args.evidence_dir)?;
    let id = format!("brain-{}", std::process::id());
    let mut opts = MqttOptions::new(id, broker.host.clone(), broker.port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(8 << 20, 8 << 20);
    let (client, mut connection) = Client::new(opts, 256);
    let p = &args.prefix;
    let shared = format!("$share/{}/{p}", args.group);
    let mut brain = Brain::new(p, args.evidence_dir.clone());
    for n in connection.iter() {
        match n {
            Ok(MqttEvent::Incoming(Packet::ConnAck(_))) => {
                for filter in [
                    format!("{shared}/+/events/#"),
                    format!("{shared}/+/evidence/#"),
                    format!("{p}/+/incidents/+"),
                    format!("{p}/+/info"),
                ] {
                    client.subscribe(filter, QoS::AtLeastOnce)?;
                }
                eprintln!("brain: listening on {} as group {}", args.url, args.group);
            }
            Ok(MqttEvent::Incoming(Packet::Publish(m))) => {
                let out = brain.handle(&m.topic, &m.payload);
                if let Some((path, jpeg)) = out.save {
                    std::fs::write(&path, jpeg)?;
                }
                for l in out.lines {
                    println!("{l}");
                }
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("brain: {e}; reconnecting");
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A litter event of node `pole`, camera `gate`, as the node publishes it.
    fn event(seq: u64, id: &str, incident: &str, phase: &str, evidence: bool) -> Vec<u8> {
        let mut v = serde_json::json!({
            "schema": "streetwatch.event/1", "id": id, "seq": seq, "node": "pole",
            "camera": "gate", "zone": "stop",
            "site": {"address": "12 Jingmi Rd", "grid": "0231-07", "description": "bus stop"},
            "type": "litter", "phase": phase, "incident": incident,
            "ts": "2026-01-01T00:04:12.000Z", "started_at": "2026-01-01T00:00:00.000Z",
            "stream_time_s": 1.0, "objects": [], "metrics": {},
            "a_field_from_a_newer_node": true,
        });
        if evidence {
            v["evidence"] = format!("evidence/{id}").into();
        }
        if phase == "end" {
            v["ended_at"] = "2026-01-01T00:04:12.000Z".into();
            v["attributes"] = serde_json::json!({"reason": "resolved"});
        }
        serde_json::to_vec(&v).unwrap()
    }

    fn brain() -> Brain {
        Brain::new("sw", "ev".into())
    }

    #[test]
    fn a_start_is_dispatched_once_its_evidence_is_in_whatever_the_order() {
        for evidence_first in [false, true] {
            let mut b = brain();
            let start = event(1, "e1", "i1", "start", true);
            let (first, second) = if evidence_first {
                (
                    b.handle("sw/pole/evidence/e1", b"JPEG"),
                    b.handle("sw/pole/events/gate/litter", &start),
                )
            } else {
                (
                    b.handle("sw/pole/events/gate/litter", &start),
                    b.handle("sw/pole/evidence/e1", b"JPEG"),
                )
            };
            assert_eq!(first, Outcome::default());
            assert_eq!(
                second.lines,
                [
                    "dispatch grid 0231-07: litter at 12 Jingmi Rd (bus stop), camera gate, evidence saved to ev/e1.jpg"
                ]
            );
            assert_eq!(second.save, Some(("ev/e1.jpg".into(), b"JPEG".to_vec())));
        }
    }

    #[test]
    fn redeliveries_are_dropped_gaps_reported_ends_resolved() {
        let mut b = brain();
        let t = "sw/pole/events/gate/litter";
        assert_eq!(
            b.handle(t, &event(1, "e1", "i1", "start", false))
                .lines
                .len(),
            1
        );
        assert_eq!(
            b.handle(t, &event(1, "e1", "i1", "start", false)),
            Outcome::default()
        );
        assert_eq!(b.open.len(), 1);
        let end = b.handle(t, &event(4, "e4", "i1", "end", false));
        assert_eq!(
            end.lines,
            [
                "gap: node pole seq 2..3 never arrived (dropped by its outbox, see its alerts)",
                "resolved grid 0231-07: litter at 12 Jingmi Rd, camera gate, after 252 s (resolved)",
            ]
        );
        assert!(b.open.is_empty());
    }

    #[test]
    fn the_open_table_follows_the_retained_incidents() {
        let mut b = brain();
        let out = b.handle(
            "sw/pole/incidents/i1",
            &event(3, "e3", "i1", "update", false),
        );
        assert_eq!(
            out.lines,
            [
                "open: grid 0231-07 litter at 12 Jingmi Rd, camera gate, since 2026-01-01T00:00:00.000Z"
            ]
        );
        assert!(b.open.contains_key("i1"));
        b.handle("sw/pole/incidents/i1", b"");
        assert!(b.open.is_empty());
    }
}
