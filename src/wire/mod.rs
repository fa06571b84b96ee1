//! Every JSON payload on the node's topics besides events, as Rust types: what
//! the node publishes (node status, camera status, stats, alerts, command
//! results, the info message) and what it takes in (commands). Events and the
//! retained open-incident messages are [`crate::event::Event`]s.
//!
//! The types are the contract: their JSON Schemas are generated from them
//! ([`schemas`]) and committed in `docs/` beside `docs/event.schema.json`, a
//! test keeps the files fresh, and consumers (the reference consumer in
//! `examples/`) read payloads with them. Each published payload carries a
//! `schema` name with a major version (`streetwatch.stats/1`); the
//! compatibility policy in `docs/mqtt.md` says what bumps it. Payloads other
//! than events allow fields a newer node adds: consumers ignore what they do
//! not know.
//!
//! Pure: types and schema generation only; the publisher builds the documents.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod info;

pub use info::{CameraInfo, Info, ModelInfo, RuleInfo, ZoneInfo};

/// `schema` of `{prefix}/{node}/status`.
pub const STATUS: &str = "streetwatch.status/1";
/// `schema` of `{prefix}/{node}/cameras/{camera}/status`.
pub const CAMERA_STATUS: &str = "streetwatch.camera_status/1";
/// `schema` of `{prefix}/{node}/stats`.
pub const STATS: &str = "streetwatch.stats/1";
/// `schema` of `{prefix}/{node}/alerts`.
pub const ALERT: &str = "streetwatch.alert/1";
/// `schema` of `{prefix}/{node}/cmd/result`.
pub const COMMAND_RESULT: &str = "streetwatch.command_result/1";
/// `schema` of `{prefix}/{node}/info`.
pub const INFO: &str = "streetwatch.info/1";

/// Node availability.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    Online,
    Offline,
}

/// `{prefix}/{node}/status` (retained): `online` on every connection, `offline` as
/// the Last Will and on a clean shutdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "streetwatch node status")]
pub struct NodeStatus {
    #[schemars(extend("const" = STATUS))]
    pub schema: String,
    pub state: NodeState,
    /// The daemon's version.
    pub version: String,
    /// When the daemon started (RFC 3339, UTC).
    #[schemars(extend("format" = "date-time"))]
    pub started_at: String,
    #[schemars(extend("format" = "date-time"))]
    pub ts: String,
}

/// A camera's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CameraStateName {
    /// Opening the source.
    Connecting,
    /// Frames arrive.
    Online,
    /// Open, but no frame for `stall_timeout_s`: being reopened.
    Stalled,
    /// Unreachable or ended; live sources are retried with backoff.
    Offline,
    /// Cannot work as configured; `reason` says why.
    Error,
}

/// `{prefix}/{node}/cameras/{camera}/status` (retained): published when the state
/// changes and again after every reconnection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "streetwatch camera status")]
pub struct CameraStatus {
    #[schemars(extend("const" = CAMERA_STATUS))]
    pub schema: String,
    pub state: CameraStateName,
    /// Why the camera is in `error`; `null` otherwise. Credentials in URLs are masked.
    #[serde(default)]
    pub reason: Option<String>,
    #[schemars(extend("format" = "date-time"))]
    pub ts: String,
}

/// One camera in the stats report. Rates and percentiles cover the window since
/// the previous report (`null`: nothing measured in it); counters, means and
/// maxima are since the daemon started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CameraCounters {
    pub state: CameraStateName,
    pub fps_in: f64,
    pub fps_analysed: f64,
    pub frames_dropped: u64,
    pub frames_shed: u64,
    pub detector_queue: u64,
    pub frames_gated: u64,
    pub decode_errors: u64,
    pub reconnects: u64,
    pub events: u64,
    pub events_published: u64,
    pub inference_ms_mean: f64,
    pub inference_ms_p50: Option<f64>,
    pub inference_ms_p99: Option<f64>,
    pub latency_ms_mean: f64,
    pub latency_ms_max: f64,
    pub publish_latency_ms_p50: Option<f64>,
    pub publish_latency_ms_p99: Option<f64>,
    pub publish_latency_ms_max: Option<f64>,
}

/// The outbox in the stats report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OutboxStats {
    pub depth: u64,
    pub oldest_age_s: Option<f64>,
    pub dropped_total: u64,
    pub evidence_depth: u64,
    pub evidence_bytes: u64,
    pub evidence_dropped_total: u64,
    /// Commits that failed in this run (disk full, read-only, locked, damaged).
    pub errors_total: u64,
    /// Events waiting in memory because the outbox cannot be written.
    pub memory_queued: u64,
    /// The last commit failed.
    pub failing: bool,
    /// Messages the broker would not take, moved to the dead letters, since the outbox was created.
    pub dead_lettered_total: u64,
}

/// The cameras' queue to the publisher in the stats report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HandoverStats {
    pub queued: u64,
    pub capacity: u64,
}

/// The broker connection in the stats report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct MqttStats {
    pub connected: bool,
    pub queued: u64,
    pub inflight: u64,
    /// Events acknowledged in this run.
    pub published: u64,
    /// Evidence JPEGs acknowledged in this run.
    pub evidence_published: u64,
}

/// The process in the stats report; `null` where `/proc` could not tell.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ProcessStats {
    pub rss_bytes: Option<u64>,
    pub cpu_s: Option<f64>,
}

/// `{prefix}/{node}/stats` (QoS 0, not retained), every `[mqtt] stats_interval_s`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "streetwatch stats")]
pub struct Stats {
    #[schemars(extend("const" = STATS))]
    pub schema: String,
    #[schemars(extend("format" = "date-time"))]
    pub ts: String,
    pub uptime_s: u64,
    /// Camera id → its counters.
    pub cameras: BTreeMap<String, CameraCounters>,
    pub outbox: OutboxStats,
    pub handover: HandoverStats,
    pub mqtt: MqttStats,
    pub process: ProcessStats,
}

/// `{prefix}/{node}/alerts` (QoS 1, not retained): something an operator must act on.
/// `alert` names it; the other fields depend on it:
///
/// | `alert` | fields |
/// |---|---|
/// | `outbox_dropped`, `evidence_dropped` | `dropped`, `dropped_total`, `up_to_seq` |
/// | `dead_letter` | `seq`, `id`, `part`, `topic`, `bytes`, `reason`, `dead_lettered_total` |
/// | `connection_unstable` | `disconnects`, `last_error`, `likely_cause` |
/// | `outbox_error` | `error`, `may_pass`, `memory_queue` |
/// | `outbox_recovered` | `failed_s`, `dropped`, `errors_total` |
/// | `outbox_replaced` | `error`, `moved_to`, `seq_from` |
///
/// New alert names may appear without a major version change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "streetwatch alert")]
pub struct Alert {
    #[schemars(extend("const" = ALERT))]
    pub schema: String,
    /// What happened: `outbox_dropped`, `dead_letter`, `outbox_error`, …
    #[schemars(regex(pattern = r"^[a-z_]+$"))]
    pub alert: String,
    #[schemars(extend("format" = "date-time"))]
    pub ts: String,
    /// Events (or JPEGs) lost this time.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dropped: Option<u64>,
    /// Dropped since the outbox was created.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dropped_total: Option<u64>,
    /// The highest event seq concerned.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub up_to_seq: Option<u64>,
    /// The dead letter's event seq.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub seq: Option<u64>,
    /// The dead letter's event id.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub id: Option<String>,
    /// `event` or `evidence`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub part: Option<String>,
    /// The topic the dead letter was for.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub topic: Option<String>,
    /// The dead letter's payload size.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub bytes: Option<u64>,
    /// Why the broker would not take it.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub dead_lettered_total: Option<u64>,
    /// Connections the broker closed soon after accepting them, in a row.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub disconnects: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub last_error: Option<String>,
    /// The most likely reason (a packet limit, a client id used twice, an ACL).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub likely_cause: Option<String>,
    /// The storage error.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
    /// Whether the storage error may pass by itself (a lock, a full disk).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub may_pass: Option<bool>,
    /// Events kept in memory at most meanwhile.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub memory_queue: Option<u64>,
    /// How long commits failed.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub failed_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub errors_total: Option<u64>,
    /// Where the damaged outbox file was moved.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub moved_to: Option<String>,
    /// The first seq of the new outbox.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub seq_from: Option<u64>,
}

/// A command's body on `{prefix}/{node}/cmd/{verb}` (`reload`, `snapshot`,
/// `camera/enable`, `camera/disable`). Unknown fields are refused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "streetwatch command")]
pub struct CommandRequest {
    /// Comes back in the result.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    #[schemars(length(max = 128))]
    pub id: Option<String>,
    /// The camera, for every verb but `reload`.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub camera: Option<String>,
}

/// `{prefix}/{node}/cmd/result` (QoS 1, not retained): exactly one per command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "streetwatch command result")]
pub struct CommandResult {
    #[schemars(extend("const" = COMMAND_RESULT))]
    pub schema: String,
    /// The request's `id`; `null` when it had none or it could not be read.
    #[serde(default)]
    pub id: Option<String>,
    pub verb: String,
    pub ok: bool,
    /// What the command did (when `ok`); its fields depend on the verb.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result: Option<serde_json::Value>,
    /// Why it was refused or failed (when not `ok`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<String>,
}

/// Each committed schema file (below `docs/`) and its schema.
pub fn schemas() -> Vec<(&'static str, serde_json::Value)> {
    fn one<T: JsonSchema>(file: &str) -> serde_json::Value {
        let mut s = serde_json::to_value(schemars::schema_for!(T)).expect("schema encodes");
        s["$id"] = format!("https://streetwatch.invalid/{file}").into();
        s
    }
    vec![
        ("event.schema.json", crate::event::json_schema()),
        (
            "status.schema.json",
            one::<NodeStatus>("status.schema.json"),
        ),
        (
            "camera_status.schema.json",
            one::<CameraStatus>("camera_status.schema.json"),
        ),
        ("stats.schema.json", one::<Stats>("stats.schema.json")),
        ("alert.schema.json", one::<Alert>("alert.schema.json")),
        (
            "command.schema.json",
            one::<CommandRequest>("command.schema.json"),
        ),
        (
            "command_result.schema.json",
            one::<CommandResult>("command_result.schema.json"),
        ),
        ("info.schema.json", one::<Info>("info.schema.json")),
    ]
}

#[cfg(test)]
mod tests;
