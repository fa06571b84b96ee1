//! streetwatch — an edge daemon for street cameras.
//!
//! Per camera, data flows one way; only acknowledgements (PUBACK → outbox
//! delete), commands (MQTT → node) and cancellation flow back:
//!
//! ```text
//!  source (decode thread) ─▶ FrameSlot ─▶ camera task ─────────────────┐
//!    FFmpeg / image folder    one frame     pipeline (pure):            │
//!                                            scene model, motion gate,  │
//!                                            tracker, zones + rules     │
//!                                   ◀──── detections ──── DetectorService (one thread,
//!                                                          every camera, ONNX Runtime)
//!       Handover (event + evidence JPEG) ─▶ publisher ─▶ outbox (SQLite) ─▶ MQTT broker
//!                                           (owns the outbox)   ◀── PUBACK ──┘
//!                                               │ commands
//!                                               ▼
//!                                             node ─▶ start / stop / reload cameras
//! ```
//!
//! | module        | owns                                                                 |
//! |---------------|----------------------------------------------------------------------|
//! | [`node`]      | the composition root: reads [`config`], builds and supervises every stage, carries out commands, restarts dead threads |
//! | [`config`]    | the TOML schema, defaults, `${ENV}` expansion, validation (a leaf: imports nothing of the crate) |
//! | [`source`]    | decoding (FFmpeg, image folders) into RGB frames, analytic-fps sampling, reconnects, the frame slot |
//! | [`pipeline`]  | one camera's analysis frame by frame, with no I/O, and the async shell that feeds it |
//! | [`scene`]     | the clean-picture model: still changes and motion (pure)              |
//! | [`detect`]    | ONNX Runtime loading, model manifests, pre/post-processing, NMS, the shared detector service |
//! | [`track`]     | the multi-object tracker (pure)                                      |
//! | [`analytics`] | zones, rules and the incident lifecycle (pure; time comes from frames) |
//! | [`event`]     | the event JSON sent to the city brain                                 |
//! | [`evidence`]  | the JPEG of an incident's first frame, boxes drawn                    |
//! | [`outbox`]    | the durable SQLite queue and per-node sequence numbers               |
//! | [`mqtt`]      | the broker connection: the delivery window (packet id → outbox row, pure), publishing from the outbox, acks, status, stats, commands in |
//! | [`monitor`]   | per-camera counters, camera states, the stats report                  |
//! | [`geom`]      | boxes in pixels and in fractions of the frame; the detection          |
//! | [`clock`], [`backoff`], [`thread`] | the one clock, the one retry schedule, panic messages |

pub mod analytics;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod detect;
pub mod event;
pub mod evidence;
pub mod geom;
pub mod monitor;
pub mod mqtt;
pub mod node;
pub mod outbox;
pub mod pipeline;
pub mod scene;
pub mod source;
pub mod thread;
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
