//! The info (birth) message, retained on `{prefix}/{node}/info`: what the node
//! runs and what each camera watches, so a consumer can build its map of
//! cameras, zones and rules with no side channel.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::INFO;
use crate::event::Site;

/// The detector model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ModelInfo {
    /// The manifest's name (`nanodet-m-416`).
    pub name: String,
    /// sha256 of the `.onnx` file, hex.
    #[schemars(regex(pattern = r"^[0-9a-f]{64}$"))]
    pub sha256: String,
    /// Its labels, by class id.
    pub labels: Vec<String>,
}

/// One rule of a zone with its key settings (durations in seconds, thresholds,
/// classes), named as in the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RuleInfo {
    /// `litter`, `congestion`, `illegal_parking`, `street_vending`,
    /// `outside_business`, `piled_materials`: the `type` of its events.
    #[serde(rename = "type")]
    #[schemars(regex(pattern = r"^[a-z_]+$"))]
    pub kind: String,
    pub settings: BTreeMap<String, serde_json::Value>,
}

/// One zone of a camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ZoneInfo {
    pub id: String,
    /// Corners as fractions of the frame width and height, `[x, y]`.
    pub polygon: Vec<[f64; 2]>,
    /// `bottom_center`, `center` or `top_center`.
    pub anchor: String,
    /// Local times the rules apply (`"HH:MM-HH:MM"`); empty: always.
    pub schedule: Vec<String>,
    /// The zone's effective site, as its events carry it.
    pub site: Site,
    pub rules: Vec<RuleInfo>,
}

/// One configured camera.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct CameraInfo {
    pub id: String,
    /// Whether the config starts it (a `camera/disable` command is not reflected).
    pub enabled: bool,
    /// Frames analysed per second.
    pub fps: f64,
    pub site: Site,
    pub zones: Vec<ZoneInfo>,
}

/// `{prefix}/{node}/info` (QoS 1, retained): published on every connection and
/// after every `reload`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[schemars(title = "streetwatch node info")]
pub struct Info {
    #[schemars(extend("const" = INFO))]
    pub schema: String,
    pub node: String,
    pub version: String,
    /// The git commit the daemon was built from (`unknown` when it was not recorded).
    pub commit: String,
    #[schemars(extend("format" = "date-time"))]
    pub started_at: String,
    #[schemars(extend("format" = "date-time"))]
    pub ts: String,
    pub model: ModelInfo,
    /// The ONNX Runtime version loaded.
    pub onnxruntime: String,
    /// The execution provider the detector runs on (`cpu`, `cuda`, …).
    pub execution_provider: String,
    /// The FFmpeg libavcodec version (`61.19.101`).
    pub ffmpeg: String,
    /// IANA time zone of schedules (`Asia/Shanghai`), or `UTC`.
    pub timezone: String,
    pub cameras: Vec<CameraInfo>,
}
