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
//!                                             node ─▶ start / stop / reload cameras,
//!                                                     restart dead threads, notify systemd
//! ```
//!
//! | module        | owns                                                                 |
//! |---------------|----------------------------------------------------------------------|
//! | [`node`]      | the composition root: reads [`config`], builds and supervises every stage, carries out commands (MQTT and SIGHUP), restarts dead threads, tells systemd it is ready and alive (the watchdog is fed only while the stages' heartbeats move) |
//! | [`config`]    | the TOML schema, defaults, `${ENV}` expansion, validation (a leaf: imports nothing of the crate) |
//! | [`source`]    | decoding (FFmpeg, image folders) into RGB frames, analytic-fps sampling, reconnects, the frame slot |
//! | [`pipeline`]  | one camera's analysis frame by frame, with no I/O, and the async shell that feeds it |
//! | [`scene`]     | the clean-picture model: still changes and motion (pure)              |
//! | [`detect`]    | ONNX Runtime loading, model manifests, pre/post-processing, NMS, the shared detector service |
//! | [`track`]     | the multi-object tracker (pure)                                      |
//! | [`analytics`] | zones, rules and the incident lifecycle (pure; time comes from frames) |
//! | [`event`]     | the event JSON sent to the city brain, with the site it happened at   |
//! | [`wire`]      | every other payload's type and JSON Schema (status, stats, alerts, commands, info) |
//! | [`evidence`]  | the JPEG of an incident's first frame: heads masked, zone, boxes and caption drawn, within the broker's packet limit |
//! | [`preview`]   | pictures of what a camera sees: zones, rules, detections, anchor points, legend |
//! | [`replay`]    | the cameras on their files without broker or outbox: events as JSON lines, an annotated H.264 video |
//! | [`draw`]      | outlines, polygons and labels on frames (imageproc, ab_glyph, a Debian font) |
//! | [`outbox`]    | the durable SQLite queue and per-node sequence numbers               |
//! | [`mqtt`]      | the broker connection: the delivery window (packet id → outbox row, pure), publishing from the outbox, acks, status, stats, commands in |
//! | [`sizing`]    | `streetwatch bench`: per-stage cost of the configured cameras, how many this box sustains |
//! | [`monitor`]   | per-camera counters, camera states, the stats report, the stages' heartbeats |
//! | [`geom`]      | boxes in pixels and in fractions of the frame; the detection          |
//! | [`logs`], [`about`] | stderr in text or JSON lines; what `--version` says |
//! | [`clock`], [`backoff`], [`thread`] | the one clock, the one retry schedule, panic messages |

pub mod about;
pub mod analytics;
pub mod backoff;
pub mod clock;
pub mod config;
pub mod detect;
pub mod draw;
pub mod event;
pub mod evidence;
pub mod geom;
pub mod logs;
pub mod memory;
pub mod monitor;
pub mod mqtt;
pub mod node;
pub mod outbox;
pub mod pipeline;
pub mod preview;
pub mod replay;
pub mod scene;
pub mod sizing;
pub mod source;
pub mod thread;
pub mod track;
pub mod wire;

/// Where set-up puts the ONNX Runtime library, the default model and sample media.
/// `STREETWATCH_CACHE` overrides it; otherwise `~/.cache/streetwatch`.
pub fn cache_dir() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("STREETWATCH_CACHE").filter(|v| !v.is_empty()) {
        return dir.into();
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "/var/lib/streetwatch".into());
    std::path::Path::new(&home).join(".cache/streetwatch")
}

/// Where the Debian package installs the ONNX Runtime library and the default model.
pub const INSTALL_DIR: &str = "/usr/lib/streetwatch";

/// Which file to use of those a box may have, in this order: the configured path,
/// the environment variable's, the installed one, the developer cache's. The
/// installed file is taken only if it exists; when it does not, the cache's path is
/// returned even if missing, so the error names where set-up puts it.
pub fn locate(
    configured: Option<&std::path::Path>,
    env: Option<std::ffi::OsString>,
    installed: std::path::PathBuf,
    cache: std::path::PathBuf,
    exists: impl Fn(&std::path::Path) -> bool,
) -> std::path::PathBuf {
    if let Some(p) = configured {
        return p.to_owned();
    }
    if let Some(p) = env.filter(|v| !v.is_empty()) {
        return p.into();
    }
    if exists(&installed) { installed } else { cache }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    #[test]
    fn files_are_found_config_first_then_environment_installed_cache() {
        let installed = PathBuf::from("/usr/lib/streetwatch/m.onnx");
        let cache = PathBuf::from("/home/dev/.cache/streetwatch/m.onnx");
        let everything = |_: &Path| true;
        let only_cache = |p: &Path| p.starts_with("/home");
        let nothing = |_: &Path| false;
        let cfg = Some(Path::new("/etc/streetwatch/own.onnx"));
        let env = || Some(std::ffi::OsString::from("/srv/env.onnx"));
        for (configured, env, exists, want) in [
            (
                cfg,
                env(),
                &everything as &dyn Fn(&Path) -> bool,
                "/etc/streetwatch/own.onnx",
            ),
            (None, env(), &everything, "/srv/env.onnx"),
            (
                None,
                Some("".into()),
                &everything,
                "/usr/lib/streetwatch/m.onnx",
            ),
            (None, None, &everything, "/usr/lib/streetwatch/m.onnx"),
            (
                None,
                None,
                &only_cache,
                "/home/dev/.cache/streetwatch/m.onnx",
            ),
            // Nothing anywhere: the cache's path, which the error names.
            (None, None, &nothing, "/home/dev/.cache/streetwatch/m.onnx"),
        ] {
            let got = super::locate(configured, env, installed.clone(), cache.clone(), exists);
            assert_eq!(got, Path::new(want));
        }
    }
}
