//! The event the city brain receives, as JSON on
//! `{prefix}/{node}/events/{camera}/{type}`.
//!
//! An incident (one crowd, one litter item…) has one `incident` id and a
//! sequence of events: `start`, zero or more `update`s, `end`. Every event has
//! its own unique `id` and the node's `seq`, which grows by exactly one for
//! each event committed to the outbox and survives restarts: the consumer
//! de-duplicates by `id` and detects loss by a gap in `seq`.
//!
//! Consumers ignore fields they do not know (`docs/mqtt.md`, compatibility):
//! the types here and the schema accept them, so a newer node's optional
//! additions reach an older consumer unharmed.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::geom::FracBox;

/// Schema identifier carried in every event; bumped on incompatible changes.
pub const SCHEMA: &str = "streetwatch.event/1";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct EventObject {
    /// The model's label.
    pub class: String,
    /// Detector confidence, 0..1.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub score: f32,
    /// `[x0, y0, x1, y1]` as fractions of the frame width and height.
    #[serde(rename = "box")]
    #[schemars(extend("items" = {"type": "number", "minimum": 0.0, "maximum": 1.0}))]
    pub bbox: FracBox,
    /// Tracker id, when the object is tracked.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub track_id: Option<u64>,
    /// What the object is to the incident when it is not the subject: `thrower`
    /// (litter: the person who was next to the item when it appeared and walked away).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub role: Option<String>,
}

/// What a masked region hid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum MaskKind {
    /// The top part of a person's box.
    Head,
    /// A licence plate (models that detect plates).
    Plate,
}

/// A region of the evidence JPEG that was pixelated or blurred for privacy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Masked {
    pub what: MaskKind,
    /// `[x0, y0, x1, y1]` as fractions of the frame width and height.
    #[serde(rename = "box")]
    #[schemars(extend("items" = {"type": "number", "minimum": 0.0, "maximum": 1.0}))]
    pub bbox: FracBox,
}

/// A WGS-84 position, degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Location {
    #[schemars(range(min = -90.0, max = 90.0))]
    pub lat: f64,
    #[schemars(range(min = -180.0, max = 180.0))]
    pub lon: f64,
}

/// Where a camera (or one of its zones) is, as configured: `[[camera]] location`,
/// `address`, `grid`, `heading_deg`, `description`, with a zone's own `grid` and
/// `address` over the camera's. Only configured values; nothing is derived.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Site {
    /// Where the camera stands.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub location: Option<Location>,
    /// The street address a dispatcher sends someone to.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub address: Option<String>,
    /// The city's grid (street-management cell) id: whose cleaner or officer goes.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub grid: Option<String>,
    /// Direction the camera looks in, degrees clockwise from north.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(range(min = 0.0, max = 360.0))]
    pub heading_deg: Option<f64>,
    /// What the camera sees, in words.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub description: Option<String>,
}

impl Site {
    /// This site with a zone's own `grid` and `address` where it names them.
    pub fn for_zone(&self, grid: Option<&str>, address: Option<&str>) -> Site {
        Site {
            grid: grid.map(str::to_owned).or_else(|| self.grid.clone()),
            address: address.map(str::to_owned).or_else(|| self.address.clone()),
            ..self.clone()
        }
    }
}

/// An incident event, as published. The outbox assigns `seq` when it stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "streetwatch event", extend("$id" = "https://streetwatch.invalid/event.schema.json"))]
pub struct Event {
    /// Always `streetwatch.event/1` for this version of the schema.
    #[schemars(extend("const" = SCHEMA))]
    pub schema: String,
    /// Unique per event (UUID v7: time-ordered). A redelivery carries the same id.
    #[schemars(extend("format" = "uuid"))]
    pub id: String,
    /// Per-node sequence number: +1 for each event stored, never reused, survives restarts.
    #[schemars(range(min = 1))]
    pub seq: u64,
    pub node: String,
    pub camera: String,
    pub zone: String,
    /// Where it happened: the camera's configured site, with the zone's `grid` and
    /// `address` when the zone names its own. Always present; empty when nothing is
    /// configured.
    #[serde(default)]
    pub site: Site,
    /// Rule type: `litter`, `congestion`, `illegal_parking`, `street_vending`,
    /// `outside_business`, `piled_materials`.
    #[serde(rename = "type")]
    #[schemars(regex(pattern = r"^[a-z_]+$"))]
    pub kind: String,
    pub phase: Phase,
    /// Shared by the start, updates and end of one incident.
    #[schemars(extend("format" = "uuid"))]
    pub incident: String,
    /// When this event happened (RFC 3339, UTC).
    #[schemars(extend("format" = "date-time"))]
    pub ts: String,
    /// When the incident started (RFC 3339, UTC).
    #[schemars(extend("format" = "date-time"))]
    pub started_at: String,
    /// When the incident ended; only on `end`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(extend("format" = "date-time"))]
    pub ended_at: Option<String>,
    /// Position in the stream (seconds from its start) of the frame that produced this event.
    #[schemars(range(min = 0.0))]
    pub stream_time_s: f64,
    pub objects: Vec<EventObject>,
    /// Rule-specific numbers (`count`, `occupancy`, `dwell_s`, …).
    pub metrics: BTreeMap<String, f64>,
    /// Rule-specific words: `level` (congestion: light, moderate, heavy), `cause`
    /// (litter: thrown, appeared), `source` (detection, static_change), `reason` (on `end`:
    /// resolved, schedule, stream_ended).
    #[serde(skip_serializing_if = "BTreeMap::is_empty", default)]
    pub attributes: BTreeMap<String, String>,
    /// Where this event's evidence JPEG (its frame, with the objects' boxes drawn) is
    /// published, relative to `{prefix}/{node}/`: `evidence/{id}`. Only on `start` events,
    /// when evidence is enabled; the JPEG follows the event on that topic.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(regex(pattern = r"^evidence/[0-9A-Za-z-]+$"))]
    pub evidence: Option<String>,
    /// The regions of the evidence JPEG that were masked for privacy (`[privacy]`):
    /// people's heads and licence plates. Never the incident's subject. Only on events
    /// that carry evidence; absent when nothing was masked.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub masked: Vec<Masked>,
}

/// The JSON Schema of [`Event`], as committed in `docs/event.schema.json`.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Event)).expect("schema encodes")
}

impl Event {
    /// The `end` of this event's incident, at `now`, for an incident a run left open
    /// when it died (it could not end it itself): `reason = "stream_ended"`, as when a
    /// stream ends, with the last `start`/`update`'s site, metrics and words. No
    /// objects (nothing is seen at this moment) and no evidence.
    pub fn ended_by_restart(&self, now: std::time::SystemTime) -> Event {
        let mut attributes = self.attributes.clone();
        attributes.insert("reason".into(), "stream_ended".into());
        Event {
            id: new_id(now),
            seq: 0,
            phase: Phase::End,
            ts: rfc3339(now),
            ended_at: Some(rfc3339(now)),
            objects: Vec::new(),
            attributes,
            evidence: None,
            ..self.clone()
        }
    }

    /// `{prefix}/{node}/events/{camera}/{type}`.
    pub fn topic(&self, prefix: &str) -> String {
        format!(
            "{prefix}/{}/events/{}/{}",
            self.node, self.camera, self.kind
        )
    }

    /// `evidence/{id}`: where this event's evidence goes, below `{prefix}/{node}/`.
    pub fn evidence_suffix(&self) -> String {
        format!("evidence/{}", self.id)
    }

    /// `{prefix}/{node}/evidence/{id}`.
    pub fn evidence_topic(&self, prefix: &str) -> String {
        format!("{prefix}/{}/{}", self.node, self.evidence_suffix())
    }
}

/// A new event id: a UUID v7 whose time part is `at`, so ids sort by time.
pub fn new_id(at: std::time::SystemTime) -> String {
    let since_epoch = at.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let ts = uuid::Timestamp::from_unix(
        uuid::NoContext,
        since_epoch.as_secs(),
        since_epoch.subsec_nanos(),
    );
    uuid::Uuid::new_v7(ts).to_string()
}

/// RFC 3339 with milliseconds, UTC.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    match jiff::Timestamp::try_from(t) {
        Ok(ts) => format!("{ts:.3}"),
        Err(_) => "1970-01-01T00:00:00.000Z".into(),
    }
}

/// A `crowding` start of camera `c`, zone `z`, node `n` at 2026-01-01, for tests
/// of the stages that carry events without reading them.
#[cfg(test)]
pub(crate) fn sample(id: &str, incident: &str) -> Event {
    Event {
        schema: SCHEMA.into(),
        id: id.into(),
        seq: 0,
        node: "n".into(),
        camera: "c".into(),
        zone: "z".into(),
        site: Site::default(),
        kind: "crowding".into(),
        phase: Phase::Start,
        incident: incident.into(),
        ts: "2026-01-01T00:00:00.000Z".into(),
        started_at: "2026-01-01T00:00:00.000Z".into(),
        ended_at: None,
        stream_time_s: 0.0,
        objects: vec![],
        metrics: Default::default(),
        attributes: Default::default(),
        evidence: None,
        masked: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn committed_schema_is_the_generated_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/event.schema.json");
        let generated = serde_json::to_string_pretty(&json_schema()).unwrap() + "\n";
        if std::env::var_os("STREETWATCH_WRITE_SCHEMA").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == generated,
            "docs/event.schema.json is stale: regenerate with \
             STREETWATCH_WRITE_SCHEMA=1 cargo test --lib committed_schema"
        );
    }

    #[test]
    fn a_zone_overrides_grid_and_address_only() {
        let camera = Site {
            location: Some(Location {
                lat: 39.9,
                lon: 116.4,
            }),
            address: Some("12 Jingmi Rd".into()),
            grid: Some("0231-07".into()),
            heading_deg: Some(90.0),
            description: Some("bus stop".into()),
        };
        for (grid, address, want_grid, want_address) in [
            (None, None, Some("0231-07"), Some("12 Jingmi Rd")),
            (Some("0231-08"), None, Some("0231-08"), Some("12 Jingmi Rd")),
            (
                None,
                Some("14 Jingmi Rd"),
                Some("0231-07"),
                Some("14 Jingmi Rd"),
            ),
        ] {
            let got = camera.for_zone(grid, address);
            assert_eq!(got.grid.as_deref(), want_grid);
            assert_eq!(got.address.as_deref(), want_address);
            assert_eq!(
                (got.location, got.heading_deg),
                (camera.location, camera.heading_deg)
            );
            assert_eq!(got.description, camera.description);
        }
        let bare = Site::default().for_zone(Some("g"), None);
        assert_eq!(
            bare,
            Site {
                grid: Some("g".into()),
                ..Site::default()
            }
        );
    }

    #[test]
    fn an_event_stored_before_sites_existed_reads_with_an_empty_site() {
        let mut v = serde_json::to_value(sample("i", "inc")).unwrap();
        v.as_object_mut().unwrap().remove("site");
        let e: Event = serde_json::from_value(v).unwrap();
        assert_eq!(e.site, Site::default());
    }

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
            site: Site::default(),
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
                bbox: FracBox([0.1, 0.2, 0.3, 0.4]),
                track_id: None,
                role: None,
            }],
            metrics: BTreeMap::from([("count".to_string(), 3.0)]),
            attributes: BTreeMap::new(),
            evidence: None,
            masked: Vec::new(),
        };
        let v: serde_json::Value = serde_json::to_value(&e).unwrap();
        assert_eq!(v["type"], "crowding");
        assert_eq!(v["phase"], "start");
        assert_eq!(v["objects"][0]["box"][2], serde_json::json!(0.3f32));
        assert!(v.get("ended_at").is_none());
        assert!(v.get("attributes").is_none());
        assert!(v["objects"][0].get("role").is_none());
        assert!(v.get("evidence").is_none());
        assert_eq!(v["site"], serde_json::json!({}));
        assert_eq!(e.topic("sw"), "sw/n/events/c/crowding");
        assert_eq!(e.evidence_topic("sw"), "sw/n/evidence/i");
    }
}
