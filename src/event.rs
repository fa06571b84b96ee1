//! The event the city brain receives, as JSON on
//! `{prefix}/{node}/events/{camera}/{type}`.
//!
//! An incident (one crowd, one litter item…) has one `incident` id and a
//! sequence of events: `start`, zero or more `update`s, `end`. Every event has
//! its own unique `id` and the node's `seq`, which grows by exactly one for
//! each event committed to the outbox and survives restarts: the consumer
//! de-duplicates by `id` and detects loss by a gap in `seq`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Schema identifier carried in every event; bumped on incompatible changes.
pub const SCHEMA: &str = "streetwatch.event/1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Start,
    Update,
    End,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::Update => "update",
            Phase::End => "end",
        }
    }
}

/// One detected object that the event is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventObject {
    /// The model's label.
    pub class: String,
    pub score: f32,
    /// `[x0, y0, x1, y1]` as fractions of the frame width and height.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// Tracker id, when the object is tracked.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub track_id: Option<u64>,
}

/// An event as the rules produce it, before the outbox gives it a `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub schema: String,
    /// Unique per event (UUID v7: time-ordered).
    pub id: String,
    /// Per-node sequence number; assigned when the event is committed to the outbox.
    pub seq: u64,
    pub node: String,
    pub camera: String,
    pub zone: String,
    /// Rule type: `crowding`, …
    #[serde(rename = "type")]
    pub kind: String,
    pub phase: Phase,
    /// Shared by the start, updates and end of one incident.
    pub incident: String,
    /// When this event happened (RFC 3339, UTC).
    pub ts: String,
    /// When the incident started (RFC 3339, UTC).
    pub started_at: String,
    /// When the incident ended; only on `end`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub ended_at: Option<String>,
    /// Position in the stream (seconds from its start) of the frame that produced this event.
    pub stream_time_s: f64,
    pub objects: Vec<EventObject>,
    /// Rule-specific numbers (`count`, `min_count`, …).
    pub metrics: BTreeMap<String, f64>,
}

impl Event {
    /// `{prefix}/{node}/events/{camera}/{type}`.
    pub fn topic(&self, prefix: &str) -> String {
        format!(
            "{prefix}/{}/events/{}/{}",
            self.node, self.camera, self.kind
        )
    }
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    match jiff::Timestamp::try_from(t) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => "1970-01-01T00:00:00.000Z".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_has_millis_and_utc() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn json_uses_wire_names() {
        let e = Event {
            schema: SCHEMA.into(),
            id: "i".into(),
            seq: 7,
            node: "n".into(),
            camera: "c".into(),
            zone: "z".into(),
            kind: "crowding".into(),
            phase: Phase::Start,
            incident: "inc".into(),
            ts: "t".into(),
            started_at: "t".into(),
            ended_at: None,
            stream_time_s: 1.5,
            objects: vec![EventObject {
                class: "person".into(),
                score: 0.5,
                bbox: [0.1, 0.2, 0.3, 0.4],
                track_id: None,
            }],
            metrics: BTreeMap::from([("count".to_string(), 3.0)]),
        };
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "crowding");
        assert_eq!(v["phase"], "start");
        assert_eq!(v["objects"][0]["box"][2], serde_json::json!(0.3f32));
        assert!(v.get("ended_at").is_none());
        assert_eq!(e.topic("sw"), "sw/n/events/c/crowding");
    }
}
