//! The configuration file: one TOML document, `deny_unknown_fields` everywhere.
//!
//! In: the file's text. `${NAME}` and `${NAME:-default}` are replaced by
//! environment variables before parsing, so secrets and per-box values need
//! not be written into the file. Relative paths are taken relative to the
//! file's folder.
//!
//! Out: [`Config`], checked by [`Config::validate`]. Every error names the
//! key it is about (`camera[gate].fps`), and the binary exits with code 2.

use std::path::{Path, PathBuf};

use serde::Deserialize;

mod env;
mod polygon;
mod privacy;
mod rules;
mod site;
mod validate;
mod values;

use env::expand_env;
pub use privacy::{PrivacyConfig, PrivacyMethod};
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
    #[serde(default)]
    pub privacy: PrivacyConfig,
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
    /// The largest packet the broker takes, bytes; evidence and snapshots are made to
    /// fit it. Default: what the broker's MQTT 5 CONNACK says, else 256 KiB.
    #[serde(default)]
    pub max_packet_bytes: Option<u32>,
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
    /// Inferences run at once at most, each on its own session (0: two on the CPU, one
    /// on any other provider). More than one opens only when frames wait.
    #[serde(default)]
    pub runs: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            ort_library: None,
            intra_threads: 0,
            providers: default_providers(),
            max_batch: default_max_batch(),
            max_wait_ms: default_max_wait_ms(),
            runs: 0,
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
    /// A close-up of the incident's subject, at the camera's own resolution, set
    /// beside the full frame in the same JPEG.
    #[serde(default)]
    pub crop: bool,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            max_width: default_evidence_max_width(),
            quality: default_evidence_quality(),
            max_outbox_mb: default_evidence_max_outbox_mb(),
            crop: false,
        }
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
    /// Largest frame (width × height) the camera may announce; a stream with larger
    /// frames is refused before any frame of that size is decoded.
    #[serde(default = "default_max_pixels")]
    pub max_pixels: i64,
    /// Which frames of the stream are decoded at all.
    #[serde(default)]
    pub decode: DecodeMode,
    /// Decoder threads; 0 sizes them for the stream (one per 1080p30 of pixel rate).
    #[serde(default)]
    pub decoder_threads: u32,
    #[serde(default)]
    pub tracker: TrackerConfig,
    #[serde(default)]
    pub scene: SceneConfig,
    #[serde(default, rename = "zone")]
    pub zones: Vec<ZoneConfig>,
    /// Where the camera stands (WGS-84), for the city brain's map.
    #[serde(default)]
    pub location: Option<Location>,
    /// The street address the camera looks at, as a dispatcher reads it.
    #[serde(default)]
    pub address: Option<String>,
    /// The city's grid (street-management cell) id the camera's view belongs to.
    #[serde(default)]
    pub grid: Option<String>,
    /// Compass direction the camera looks in, degrees clockwise from north (0..360).
    #[serde(default)]
    pub heading_deg: Option<f64>,
    /// Free text: what the camera sees (`"bus stop, north side"`).
    #[serde(default)]
    pub description: Option<String>,
}

/// `[[camera]] location = { lat, lon }`: WGS-84 degrees.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Location {
    pub lat: f64,
    pub lon: f64,
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

/// `[[camera]] decode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecodeMode {
    /// Every frame.
    All,
    /// Frames no other frame refers to are skipped unless the sampler wants them.
    #[default]
    Sampled,
    /// Key frames only (a still-scene camera analysed at the key frame rate or less).
    Keyframes,
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
/// 4K UHD, 3840 × 2160.
pub const DEFAULT_MAX_PIXELS: i64 = 3840 * 2160;
fn default_max_pixels() -> i64 {
    DEFAULT_MAX_PIXELS
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
        Self::parse_with_env(text, path, &|name| std::env::var(name).ok())
    }

    /// [`Config::from_str_at`], with environment references looked up by `env`.
    fn parse_with_env(text: &str, path: &Path, env: env::Lookup) -> Result<Config, ConfigError> {
        let parse_err = |message: String| ConfigError::Parse {
            path: path.to_owned(),
            message,
        };
        let mut doc = toml::de::DeTable::parse(text)
            .map_err(|e| parse_err(e.to_string().trim_end().to_owned()))?;
        expand_env(doc.get_mut(), env).map_err(|e| ConfigError::Invalid {
            path: path.to_owned(),
            key: e.key,
            message: e.message,
        })?;
        let mut config =
            Config::deserialize(toml::de::Deserializer::from(doc)).map_err(|mut e| {
                // Spans point into `text`: the message quotes the line as written.
                e.set_input(Some(text));
                parse_err(e.to_string().trim_end().to_owned())
            })?;
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
            let blank = cam.url.trim().is_empty();
            if !blank && !cam.url.contains("://") && Path::new(&cam.url).is_relative() {
                cam.url = base.join(&cam.url).to_string_lossy().into_owned();
            }
        }
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

#[cfg(test)]
mod tests;
