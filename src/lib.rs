//! streetwatch — an edge daemon for street cameras.
//!
//! Per camera, data flows one way:
//!
//! ```text
//! source (decode thread) → FrameSlot → camera task → detector service
//!        → analytics (zones, rules) → Event (+ evidence JPEG) → outbox (SQLite) → MQTT publisher
//! ```
//!
//! Only acknowledgements (MQTT PUBACK → outbox delete) and cancellation flow back.
//!
//! | module        | owns                                                              |
//! |---------------|-------------------------------------------------------------------|
//! | [`config`]    | the TOML schema, defaults, `${ENV}` expansion, validation          |
//! | [`source`]    | decoding (FFmpeg) into RGB frames, analytic-fps sampling, slots   |
//! | [`detect`]    | ONNX Runtime loading, model manifests, pre/post-processing, NMS   |
//! | [`analytics`] | zones and rules: pure, synchronous, time comes from frames        |
//! | [`event`]     | the event JSON sent to the city brain                              |
//! | [`evidence`]  | the JPEG of an incident's first frame, boxes drawn                 |
//! | [`outbox`]    | the durable SQLite queue and per-node sequence numbers            |
//! | [`mqtt`]      | broker connection, publishing from the outbox, acks                |
//! | [`monitor`]   | per-camera counters and the run summary                            |
//! | [`supervisor`]| the task tree: cameras, detector, publisher, shutdown             |

pub mod analytics;
pub mod config;
pub mod detect;
pub mod event;
pub mod evidence;
pub mod monitor;
pub mod mqtt;
pub mod outbox;
pub mod scene;
pub mod source;
pub mod supervisor;
pub mod track;

/// Where set-up puts the ONNX Runtime library, the default model and sample media.
/// `STREETWATCH_CACHE` overrides it; otherwise `~/.cache/streetwatch`.
pub fn cache_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("STREETWATCH_CACHE").filter(|v| !v.is_empty()) {
        return dir.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/var/lib/streetwatch".into());
    std::path::Path::new(&home).join(".cache/streetwatch")
}
