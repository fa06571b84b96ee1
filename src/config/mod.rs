//! The configuration file: one TOML document, `deny_unknown_fields` everywhere.
//!
//! In: the file's text. `${NAME}` and `${NAME:-default}` are replaced by
//! environment variables before parsing, so secrets and per-box values need
//! not be written into the file. Relative paths are taken relative to the
//! file's folder.
//!
//! Out: [`Config`], checked by [`Config::validate`]. Every error names the
//! key it is about (`camera[gate].fps`), and the binary exits with code 2.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod env;
mod rules;
mod values;

pub use env::expand_env;
pub use rules::{
    Anchor, CongestionConfig, DwellConfig, Levels, LitterConfig, ParkingConfig, PilesConfig,
    SceneConfig, TimeWindow, TrackerConfig, ZoneConfig,
};
pub use values::{ALL_PROVIDERS, BrokerUrl, Protocol, Provider, default_providers};

/// A configuration that could not be used. The binary maps every variant to exit code 2.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("config file {path}: `{key}`: {message}")]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub node: NodeConfig,
    pub mqtt: MqttConfig,
    #[serde(default)]
    pub model: ModelConfig,
    #[serde(default)]
    pub detector: DetectorConfig,
    #[serde(default)]
    pub outbox: OutboxConfig,
    #[serde(default)]
    pub evidence: EvidenceConfig,
    #[serde(default, rename = "camera")]
    pub cameras: Vec<CameraConfig>,
    /// The file this was read from; relative paths were resolved against its folder.
    #[serde(skip)]
    pub source_path: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    /// This box's name in topics and events; unique in the city.
    pub id: String,
    /// IANA time zone for zone schedules (`"Asia/Shanghai"`); default: the system's.
    #[serde(default)]
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host[:port]` or `mqtts://host[:port]`.
    pub url: String,
    /// First topic level of everything this node publishes.
    #[serde(default = "default_topic_prefix")]
    pub topic_prefix: String,
    /// MQTT client id; defaults to `streetwatch-{node.id}`.
    #[serde(default)]
    pub client_id: Option<String>,
    /// Seconds between keep-alive pings.
    #[serde(default = "default_keep_alive_s")]
    pub keep_alive_s: u64,
    /// Events sent but not yet acknowledged by the broker, at most.
    #[serde(default = "default_max_inflight")]
    pub max_inflight: u16,
    /// PEM file of the CA(s) that sign the broker's certificate (`mqtts://`);
    /// defaults to the system's roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (with `client_key`).
    #[serde(default)]
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<PathBuf>,
    /// Refuse to connect without TLS.
    #[serde(default)]
    pub require_tls: bool,
    /// `"3.1.1"` or `"5"` (content types and message expiry on every message).
    #[serde(default)]
    pub protocol: Protocol,
    /// Seconds between `{prefix}/{node}/stats` reports.
    #[serde(default = "default_stats_interval_s")]
    pub stats_interval_s: f64,
    /// MQTT user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Environment variable holding the password (never written in the config).
    #[serde(default)]
    pub password_env: Option<String>,
    /// File holding the password (first line).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

fn default_topic_prefix() -> String {
    "streetwatch".into()
}
fn default_keep_alive_s() -> u64 {
    30
}
fn default_max_inflight() -> u16 {
    32
}
fn default_stats_interval_s() -> f64 {
    30.0
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// The `.onnx` file; defaults to the default model in the cache.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// The model manifest; defaults to `<model>.toml` beside the model.
    #[serde(default)]
    pub manifest: Option<PathBuf>,
    /// Detections scoring below this are ignored; defaults to the manifest's value.
    #[serde(default)]
    pub min_score: Option<f32>,
    /// IoU above which two boxes of one class are the same object.
    #[serde(default)]
    pub nms_iou: Option<f32>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectorConfig {
    /// `libonnxruntime.so` to load; defaults to `$ORT_DYLIB_PATH`, then the cached 1.31.1.
    #[serde(default)]
    pub ort_library: Option<PathBuf>,
    /// Threads ONNX Runtime uses for one inference; 0 lets it choose.
    #[serde(default)]
    pub intra_threads: usize,
    /// Execution providers to try, in order (`tensorrt`, `cuda`, `openvino`, `cpu`).
    #[serde(default = "default_providers")]
    pub providers: Vec<Provider>,
    /// Frames of different cameras run in one inference at most; 1 = no batching. Only a
    /// model with a dynamic batch dimension batches (else a warning says it is off).
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Once a batch holds one frame, milliseconds to wait for frames of other cameras.
    #[serde(default = "default_max_wait_ms")]
    pub max_wait_ms: u64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            ort_library: None,
            intra_threads: 0,
            providers: default_providers(),
            max_batch: default_max_batch(),
            max_wait_ms: default_max_wait_ms(),
        }
    }
}

fn default_max_batch() -> usize {
    1
}
fn default_max_wait_ms() -> u64 {
    5
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboxConfig {
    /// The SQLite file that holds events until the broker acknowledges them.
    #[serde(default = "default_outbox_path")]
    pub path: PathBuf,
    /// At most this many undelivered events are kept; beyond it the oldest are dropped
    /// (counted, and announced on `{prefix}/{node}/alerts`).
    #[serde(default = "default_outbox_max_events")]
    pub max_events: u64,
    /// Undelivered events older than this (hours) are dropped the same way.
    #[serde(default = "default_outbox_max_age_h")]
    pub max_age_h: f64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            path: default_outbox_path(),
            max_events: default_outbox_max_events(),
            max_age_h: default_outbox_max_age_h(),
        }
    }
}

/// `[evidence]`: a JPEG of the frame each incident started on, with the event's boxes
/// drawn, published on `{prefix}/{node}/evidence/{event_id}` after its `start` event.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvidenceConfig {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Frames wider than this are scaled down to it (never up), pixels.
    #[serde(default = "default_evidence_max_width")]
    pub max_width: u32,
    /// JPEG quality, 1–100.
    #[serde(default = "default_evidence_quality")]
    pub quality: u8,
    /// Undelivered evidence kept in the outbox at most, MiB; beyond it the oldest is
    /// dropped (counted and announced), the events are kept.
    #[serde(default = "default_evidence_max_outbox_mb")]
    pub max_outbox_mb: u64,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_width: default_evidence_max_width(),
            quality: default_evidence_quality(),
            max_outbox_mb: default_evidence_max_outbox_mb(),
        }
    }
}

impl EvidenceConfig {
    /// The key and the problem, if a value is out of range.
    fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if !(16..=16384).contains(&self.max_width) {
            return Err(("evidence.max_width", "must be from 16 to 16384 pixels"));
        }
        if !(1..=100).contains(&self.quality) {
            return Err(("evidence.quality", "must be from 1 to 100"));
        }
        if self.max_outbox_mb == 0 {
            return Err(("evidence.max_outbox_mb", "must be at least 1"));
        }
        Ok(())
    }
}

fn default_evidence_max_width() -> u32 {
    1280
}
fn default_evidence_quality() -> u8 {
    80
}
fn default_evidence_max_outbox_mb() -> u64 {
    512
}

fn default_outbox_max_events() -> u64 {
    1_000_000
}
fn default_outbox_max_age_h() -> f64 {
    24.0 * 30.0
}

fn default_outbox_path() -> PathBuf {
    "/var/lib/streetwatch/outbox.sqlite".into()
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub id: String,
    /// `rtsp://…`, `http://…`, a file path, or `/dev/videoN`.
    pub url: String,
    /// Frames per second to analyse (the stream may deliver more).
    #[serde(default = "default_fps")]
    pub fps: f64,
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Files: start again at the end (replays). Images: cycle through the folder.
    #[serde(default, rename = "loop")]
    pub looping: bool,
    /// Files: deliver frames at stream speed, like a live camera (stale frames are dropped).
    #[serde(default)]
    pub realtime: bool,
    /// Live sources: no frame for this long ⇒ the source is reopened.
    #[serde(default = "default_stall_timeout_s")]
    pub stall_timeout_s: f64,
    /// Longest wait between two attempts to reopen a failed live source.
    #[serde(default = "default_reconnect_max_s")]
    pub reconnect_max_s: f64,
    /// Hardware decoder to try first; software decoding is the fallback.
    #[serde(default)]
    pub hwaccel: HwAccel,
    /// RTSP over TCP (interleaved, the default: survives NAT and loss) or UDP.
    #[serde(default)]
    pub rtsp_transport: RtspTransport,
    #[serde(default)]
    pub tracker: TrackerConfig,
    #[serde(default)]
    pub scene: SceneConfig,
    #[serde(default, rename = "zone")]
    pub zones: Vec<ZoneConfig>,
}

/// `[[camera]] hwaccel`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HwAccel {
    #[default]
    None,
    /// The first of vaapi, cuda, v4l2m2m that works.
    Auto,
    Vaapi,
    Cuda,
    V4l2m2m,
}

/// `[[camera]] rtsp_transport`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RtspTransport {
    #[default]
    Tcp,
    Udp,
}

fn default_fps() -> f64 {
    5.0
}
fn default_stall_timeout_s() -> f64 {
    10.0
}
fn default_reconnect_max_s() -> f64 {
    30.0
}
fn default_true() -> bool {
    true
}

impl Config {
    /// Reads, expands, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::from_str_at(&text, path)
    }

    /// Parses `text` as if it had been read from `path` (used for relative paths and messages).
    pub fn from_str_at(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let parse_err = |message: String| ConfigError::Parse {
            path: path.to_owned(),
            message,
        };
        let text = expand_env(text).map_err(parse_err)?;
        let mut config: Config =
            toml::from_str(&text).map_err(|e| parse_err(e.to_string().trim_end().to_owned()))?;
        config.source_path = path.to_owned();
        config.resolve_paths();
        config.validate()?;
        Ok(config)
    }

    fn resolve_paths(&mut self) {
        let base = self
            .source_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        if let Some(p) = self.model.path.as_mut() {
            resolve(p);
        }
        if let Some(p) = self.model.manifest.as_mut() {
            resolve(p);
        }
        if let Some(p) = self.detector.ort_library.as_mut() {
            resolve(p);
        }
        for p in [
            &mut self.mqtt.ca_file,
            &mut self.mqtt.client_cert,
            &mut self.mqtt.client_key,
            &mut self.mqtt.password_file,
        ]
        .into_iter()
        .flatten()
        {
            resolve(p);
        }
        resolve(&mut self.outbox.path);
        for cam in &mut self.cameras {
            if !cam.url.contains("://") && Path::new(&cam.url).is_relative() {
                cam.url = base.join(&cam.url).to_string_lossy().into_owned();
            }
        }
    }

    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.source_path.clone(),
            key: key.into(),
            message: message.into(),
        }
    }

    /// Checks what the types alone cannot: ranges, uniqueness, polygons, URLs.
    pub fn validate(&self) -> Result<(), ConfigError> {
        check_id(&self.node.id).map_err(|m| self.invalid("node.id", m))?;
        if let Some(tz) = &self.node.timezone {
            jiff::tz::TimeZone::get(tz).map_err(|e| {
                self.invalid(
                    "node.timezone",
                    format!("{tz:?} is not a known IANA time zone ({e})"),
                )
            })?;
        }
        if self.mqtt.topic_prefix.is_empty()
            || self.mqtt.topic_prefix.contains(['+', '#'])
            || self.mqtt.topic_prefix.starts_with('/')
            || self.mqtt.topic_prefix.ends_with('/')
        {
            return Err(self.invalid(
                "mqtt.topic_prefix",
                "must be non-empty, without `+`, `#` or a leading/trailing `/`",
            ));
        }
        let broker = BrokerUrl::parse(&self.mqtt.url).map_err(|e| self.invalid("mqtt.url", e))?;
        if self.mqtt.require_tls && !broker.tls {
            return Err(self.invalid(
                "mqtt.url",
                "a plaintext broker (mqtt://) is refused because mqtt.require_tls = true; use mqtts://",
            ));
        }
        if !broker.tls {
            for (key, set) in [
                ("mqtt.ca_file", self.mqtt.ca_file.is_some()),
                ("mqtt.client_cert", self.mqtt.client_cert.is_some()),
            ] {
                if set {
                    return Err(self.invalid(key, "only applies to an mqtts:// broker"));
                }
            }
        }
        if self.mqtt.client_cert.is_some() != self.mqtt.client_key.is_some() {
            return Err(self.invalid(
                "mqtt.client_cert",
                "client_cert and client_key go together (mutual TLS needs both)",
            ));
        }
        if self.mqtt.password_env.is_some() && self.mqtt.password_file.is_some() {
            return Err(self.invalid(
                "mqtt.password_env",
                "set password_env or password_file, not both",
            ));
        }
        if (self.mqtt.password_env.is_some() || self.mqtt.password_file.is_some())
            && self.mqtt.username.is_none()
        {
            return Err(self.invalid("mqtt.username", "a password needs a username"));
        }
        if !(self.mqtt.stats_interval_s.is_finite() && self.mqtt.stats_interval_s >= 1.0) {
            return Err(self.invalid("mqtt.stats_interval_s", "must be at least 1 second"));
        }
        if self.mqtt.max_inflight == 0 {
            return Err(self.invalid("mqtt.max_inflight", "must be at least 1"));
        }
        if let Some(s) = self.model.min_score
            && !(0.0..=1.0).contains(&s)
        {
            return Err(self.invalid("model.min_score", "must be between 0 and 1"));
        }
        if let Some(s) = self.model.nms_iou
            && !(s > 0.0 && s <= 1.0)
        {
            return Err(self.invalid("model.nms_iou", "must be in (0, 1]"));
        }
        if self.outbox.max_events == 0 {
            return Err(self.invalid("outbox.max_events", "must be at least 1"));
        }
        if !(self.outbox.max_age_h.is_finite() && self.outbox.max_age_h > 0.0) {
            return Err(self.invalid("outbox.max_age_h", "must be > 0 hours"));
        }
        self.evidence
            .check()
            .map_err(|(key, message)| self.invalid(key, message))?;
        if self.detector.providers.is_empty() {
            return Err(self.invalid(
                "detector.providers",
                "needs at least one provider (e.g. [\"cpu\"])",
            ));
        }
        if !(1..=64).contains(&self.detector.max_batch) {
            return Err(self.invalid(
                "detector.max_batch",
                "must be between 1 (no batching) and 64",
            ));
        }
        if self.detector.max_wait_ms > 1000 {
            return Err(self.invalid(
                "detector.max_wait_ms",
                "must be at most 1000 ms (every batched frame may wait this long)",
            ));
        }
        if self.cameras.is_empty() {
            return Err(self.invalid("camera", "at least one [[camera]] is needed"));
        }
        let mut camera_ids = HashSet::new();
        for (i, cam) in self.cameras.iter().enumerate() {
            let key = format!("camera[{i}]");
            check_id(&cam.id).map_err(|m| self.invalid(format!("{key}.id"), m))?;
            if !camera_ids.insert(cam.id.as_str()) {
                return Err(self.invalid(
                    format!("{key}.id"),
                    format!("camera id {:?} is used twice", cam.id),
                ));
            }
            let key = format!("camera[{}]", cam.id);
            if cam.url.trim().is_empty() {
                return Err(self.invalid(format!("{key}.url"), "must not be empty"));
            }
            if !(cam.fps > 0.0 && cam.fps <= 60.0) {
                return Err(self.invalid(format!("{key}.fps"), "must be > 0 and ≤ 60"));
            }
            for (name, v) in [
                ("stall_timeout_s", cam.stall_timeout_s),
                ("reconnect_max_s", cam.reconnect_max_s),
            ] {
                if !(v.is_finite() && (0.1..=3600.0).contains(&v)) {
                    return Err(self.invalid(
                        format!("{key}.{name}"),
                        "must be between 0.1 and 3600 seconds",
                    ));
                }
            }
            for r in [cam.tracker.validate(), cam.scene.validate()] {
                r.map_err(|(k, m)| self.invalid(format!("{key}.{k}"), m))?;
            }
            let mut zone_ids = HashSet::new();
            for (j, zone) in cam.zones.iter().enumerate() {
                let zkey = format!("{key}.zone[{j}]");
                check_id(&zone.id).map_err(|m| self.invalid(format!("{zkey}.id"), m))?;
                if !zone_ids.insert(zone.id.as_str()) {
                    return Err(self.invalid(
                        format!("{zkey}.id"),
                        format!("zone id {:?} is used twice in this camera", zone.id),
                    ));
                }
                let zkey = format!("{key}.zone[{}]", zone.id);
                zone.validate()
                    .map_err(|(k, m)| self.invalid(format!("{zkey}.{k}"), m))?;
                if !cam.scene.enabled && zone.uses_static_change() {
                    return Err(self.invalid(
                        format!("{key}.scene.enabled"),
                        format!(
                            "zone {:?} has rules that read still changes (piled_materials, or static_change = true): \
                             keep the scene model on, or set static_change = false",
                            zone.id
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// The class names every rule refers to, with the key that names them, for checking
    /// against the model's labels once the model is loaded.
    pub fn referenced_classes(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for cam in &self.cameras {
            for zone in &cam.zones {
                for (suffix, class) in zone.classes() {
                    out.push((
                        format!("camera[{}].zone[{}].{suffix}", cam.id, zone.id),
                        class,
                    ));
                }
            }
        }
        out
    }

    /// Error for a key whose value is only found wrong after start-up checks (e.g. labels).
    pub fn key_error(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        self.invalid(key, message)
    }
}

/// Ids appear in MQTT topics: keep them to letters, digits, `-`, `_` and `.`.
fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("must not be empty".into());
    }
    if id.len() > 64 {
        return Err("must be at most 64 characters".into());
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(format!(
            "{id:?} contains {c:?}; use letters, digits, `-`, `_` and `.` (ids are MQTT topic levels)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[node]
id = "pole-17"
[mqtt]
url = "mqtt://127.0.0.1:1883"
[outbox]
path = "/tmp/x.sqlite"
[[camera]]
id = "gate"
url = "clip.mp4"
fps = 4
[[camera.zone]]
id = "road"
polygon = [[0, 0.5], [1, 0.5], [1, 1], [0, 1]]
[camera.zone.congestion]
levels = { light = 3, moderate = 6, heavy = 10 }
"#;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_str_at(text, Path::new("/etc/streetwatch/test.toml"))
    }

    #[test]
    fn good_config_parses_with_defaults_and_resolves_paths() {
        let c = parse(GOOD).unwrap();
        assert_eq!(c.mqtt.topic_prefix, "streetwatch");
        assert_eq!(c.cameras[0].url, "/etc/streetwatch/clip.mp4");
        let zone = &c.cameras[0].zones[0];
        assert_eq!(zone.anchor, Anchor::BottomCenter);
        assert_eq!(zone.inertia, 1);
        let crowd = zone.congestion.as_ref().unwrap();
        assert_eq!(crowd.classes, vec!["person".to_string()]);
        assert_eq!(crowd.levels.light, 3.0);
        assert_eq!(crowd.min_duration_s, 5.0);
        assert!(c.cameras[0].scene.enabled && !c.cameras[0].scene.motion_gate);
        assert_eq!(c.cameras[0].tracker.confirm_frames, 3);
        assert_eq!(
            c.referenced_classes(),
            vec![(
                "camera[gate].zone[road].congestion.classes".to_string(),
                "person".to_string()
            )]
        );
    }

    #[test]
    fn unknown_key_is_named() {
        let err = parse(&GOOD.replace("fps = 4", "fsp = 4")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown field `fsp`"), "{msg}");
    }

    #[test]
    fn missing_url_is_named() {
        let err = parse(&GOOD.replace("url = \"clip.mp4\"", "")).unwrap_err();
        assert!(err.to_string().contains("missing field `url`"), "{err}");
    }

    #[test]
    fn bad_values_name_their_key() {
        for (from, to, key) in [
            ("fps = 4", "fps = 0", "camera[gate].fps"),
            ("id = \"road\"", "id = \"ro ad\"", "camera[gate].zone[0].id"),
            (
                "[1, 1], [0, 1]]",
                "[1, 1.5], [0, 1]]",
                "camera[gate].zone[road].polygon",
            ),
            (
                "moderate = 6",
                "moderate = 2",
                "camera[gate].zone[road].congestion.levels",
            ),
            (
                "polygon = [[0, 0.5]",
                "schedule = [\"7-19\"]\npolygon = [[0, 0.5]",
                "camera[gate].zone[road].schedule",
            ),
            (
                "fps = 4",
                "fps = 4\n[camera.tracker]\nlow_score = 0.9",
                "camera[gate].tracker.low_score",
            ),
            (
                "fps = 4",
                "fps = 4\n[camera.scene]\nrecheck_s = -1",
                "camera[gate].scene.recheck_s",
            ),
            (
                "id = \"pole-17\"",
                "id = \"pole-17\"\ntimezone = \"Mars/Olympus\"",
                "node.timezone",
            ),
            (
                "[camera.zone.congestion]",
                "[camera.zone.piled_materials]\n[camera.scene]\nenabled = false\n[camera.zone.congestion]",
                "camera[gate].scene.enabled",
            ),
            ("mqtt://127.0.0.1:1883", "http://127.0.0.1:1883", "mqtt.url"),
        ] {
            let err = parse(&GOOD.replace(from, to)).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { key: k, .. } if k == key),
                "{to}: {err}"
            );
        }
    }

    #[test]
    fn source_options_parse_and_are_checked() {
        let c = parse(GOOD).unwrap();
        let cam = &c.cameras[0];
        assert_eq!((cam.stall_timeout_s, cam.reconnect_max_s), (10.0, 30.0));
        assert_eq!(cam.hwaccel, HwAccel::None);
        assert_eq!(cam.rtsp_transport, RtspTransport::Tcp);
        assert!(!cam.looping && !cam.realtime);
        let text = GOOD.replace(
            "fps = 4",
            "fps = 4\nloop = true\nrealtime = true\nhwaccel = \"v4l2m2m\"\nrtsp_transport = \"udp\"\nstall_timeout_s = 3\nreconnect_max_s = 8",
        );
        let cam = &parse(&text).unwrap().cameras[0];
        assert!(cam.looping && cam.realtime);
        assert_eq!(cam.hwaccel, HwAccel::V4l2m2m);
        assert_eq!(cam.rtsp_transport, RtspTransport::Udp);
        assert_eq!((cam.stall_timeout_s, cam.reconnect_max_s), (3.0, 8.0));

        let err = parse(&GOOD.replace("fps = 4", "fps = 4\nhwaccel = \"gpu\"")).unwrap_err();
        assert!(err.to_string().contains("unknown variant `gpu`"), "{err}");
        let err = parse(&GOOD.replace("fps = 4", "fps = 4\nstall_timeout_s = 0")).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { key, .. } if key == "camera[gate].stall_timeout_s"),
            "{err}"
        );
    }

    #[test]
    fn batching_keys_default_to_off_and_are_checked() {
        let c = parse(GOOD).unwrap();
        assert_eq!((c.detector.max_batch, c.detector.max_wait_ms), (1, 5));
        let text = format!("[detector]\nmax_batch = 4\nmax_wait_ms = 8\n{GOOD}");
        let c = parse(&text).unwrap();
        assert_eq!((c.detector.max_batch, c.detector.max_wait_ms), (4, 8));
        for (line, key) in [
            ("max_batch = 0", "detector.max_batch"),
            ("max_batch = 65", "detector.max_batch"),
            ("max_wait_ms = 1001", "detector.max_wait_ms"),
        ] {
            let err = parse(&format!("[detector]\n{line}\n{GOOD}")).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Invalid { key: k, .. } if k == key),
                "{line}: {err}"
            );
        }
    }

    #[test]
    fn duplicate_camera_ids_are_refused() {
        let text = format!("{GOOD}\n[[camera]]\nid = \"gate\"\nurl = \"other.mp4\"\n");
        let err = parse(&text).unwrap_err();
        assert!(err.to_string().contains("used twice"), "{err}");
    }
}
