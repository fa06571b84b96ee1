//! The configuration, turned into each stage's options.
//!
//! This is the only place that reads [`Config`] for the running node: every
//! stage takes its own options type and knows nothing of the TOML file. Files
//! the configuration names (TLS material, the password file) are read here,
//! once, so a missing one is a start-up error naming its key.

use std::time::Duration;

use crate::analytics::RuleEnv;
use crate::clock::SharedClock;
use crate::config::{self, CameraConfig, Config, ConfigError};
use crate::detect::{DetectorOptions, ServiceOptions, manifest};
use crate::evidence::EvidenceOptions;
use crate::mqtt::{CameraList, PublisherOptions, Secret, TlsFiles};
use crate::outbox::Limits;
use crate::pipeline::{GateOptions, PipelineOptions};
use crate::source::runner::SourceOptions;

/// How to open the detector: `[model]` and `[detector]`.
pub fn detector(c: &Config) -> DetectorOptions {
    DetectorOptions {
        model: c
            .model
            .path
            .clone()
            .unwrap_or_else(manifest::default_model_path),
        manifest: c.model.manifest.clone(),
        ort_library: c.detector.ort_library.clone(),
        intra_threads: c.detector.intra_threads,
        min_score: c.model.min_score,
        nms_iou: c.model.nms_iou,
        providers: c.detector.providers.clone(),
    }
}

/// `[detector] max_batch`, `max_wait_ms` and `runs`. A camera has one frame in flight at a
/// time, so a queue of 2 per camera is plenty.
pub fn service(c: &Config) -> ServiceOptions {
    ServiceOptions {
        depth: 2,
        max_batch: c.detector.max_batch,
        max_wait: Duration::from_millis(c.detector.max_wait_ms),
        runs: c.detector.runs,
        ..ServiceOptions::default()
    }
}

/// `[outbox]` and `[evidence] max_outbox_mb`.
pub fn outbox_limits(c: &Config) -> Limits {
    Limits {
        max_events: c.outbox.max_events,
        max_age: Duration::from_secs_f64(c.outbox.max_age_h * 3600.0),
        max_evidence_bytes: c.evidence.max_outbox_mb.saturating_mul(1 << 20),
    }
}

/// The options of an enabled `[evidence]` section; `None` when it is disabled.
pub fn evidence(c: &config::EvidenceConfig) -> Option<EvidenceOptions> {
    c.enabled.then_some(EvidenceOptions {
        max_width: c.max_width,
        quality: c.quality,
        crop: c.crop,
    })
}

/// A camera's source.
pub fn source(cam: &CameraConfig) -> SourceOptions {
    let reconnect_max = Duration::from_secs_f64(cam.reconnect_max_s);
    SourceOptions {
        camera: cam.id.clone(),
        url: cam.url.clone(),
        fps: cam.fps,
        looping: cam.looping,
        realtime: cam.realtime,
        stall_timeout: Duration::from_secs_f64(cam.stall_timeout_s),
        reconnect_min: Duration::from_millis(500).min(reconnect_max),
        reconnect_max,
        hwaccel: cam.hwaccel,
        rtsp_transport: cam.rtsp_transport,
        max_pixels: cam.max_pixels.unsigned_abs(),
        decode: cam.decode,
        decoder_threads: cam.decoder_threads,
        grey_width: scene(&cam.scene)
            .filter(|_| cam.scene.from_luma)
            .map(|s| s.work_width),
    }
}

/// `[camera.tracker]` over the tracker's own settings.
pub fn tracker(c: &config::TrackerConfig) -> crate::track::TrackerConfig {
    crate::track::TrackerConfig {
        high_score: c.high_score,
        low_score: c.low_score,
        new_track_score: c.new_track_score,
        confirm_hits: c.confirm_frames,
        max_lost: Duration::from_secs_f64(c.lost_timeout_s),
        ..Default::default()
    }
}

/// `[camera.scene]` over the scene model's own settings; `None` when it is off.
pub fn scene(c: &config::SceneConfig) -> Option<crate::scene::SceneConfig> {
    c.enabled.then(|| crate::scene::SceneConfig {
        diff_threshold: c.diff_threshold,
        still_s: c.still_s,
        absorb_s: c.absorb_s,
        ..Default::default()
    })
}

/// The motion gate, when `[camera.scene]` turns it on (it needs the scene model).
pub fn gate(c: &config::SceneConfig) -> Option<GateOptions> {
    (c.enabled && c.motion_gate).then(|| GateOptions {
        motion_threshold: c.motion_threshold,
        recheck: Duration::from_secs_f64(c.recheck_s),
        zones_only: c.motion_in_zones,
    })
}

/// Everything a camera's pipeline is built from; `labels` are the model's.
pub fn pipeline(c: &Config, cam: &CameraConfig, labels: &[String]) -> PipelineOptions {
    let source = source(cam);
    PipelineOptions {
        node: c.node.id.clone(),
        camera: cam.id.clone(),
        tracker: tracker(&cam.tracker),
        scene: scene(&cam.scene),
        gate: gate(&cam.scene),
        zones: cam.zones.clone(),
        site: site(cam),
        labels: labels.to_vec(),
        rule_env: RuleEnv {
            still: Duration::from_secs_f64(cam.scene.still_s.max(0.0)),
        },
        tz: crate::analytics::time_zone(c.node.timezone.as_deref()),
        timed: source.is_live() || source.realtime,
        privacy: privacy(&c.privacy),
    }
}

/// `[privacy]`: what pictures leaving the box mask; `None` when it is off.
pub fn privacy(c: &config::PrivacyConfig) -> Option<crate::evidence::Policy> {
    use crate::evidence::Method;
    c.enabled.then(|| crate::evidence::Policy {
        method: match c.method {
            config::PrivacyMethod::Pixelate => Method::Pixelate,
            config::PrivacyMethod::Blur => Method::Blur,
        },
        head_classes: c.head_classes.clone(),
        head_fraction: c.head_fraction as f32,
        plate_classes: c.plate_classes.clone(),
        mask_thrower: c.mask_thrower,
    })
}

/// A camera's configured site, as events carry it.
pub fn site(cam: &CameraConfig) -> crate::event::Site {
    crate::event::Site {
        location: cam.location.map(|l| crate::event::Location {
            lat: l.lat,
            lon: l.lon,
        }),
        address: cam.address.clone(),
        grid: cam.grid.clone(),
        heading_deg: cam.heading_deg,
        description: cam.description.clone(),
    }
}

/// Every class a rule names must be one of the model's labels.
pub fn check_classes(c: &Config, model: &str, labels: &[String]) -> Result<(), ConfigError> {
    for (key, class) in c.referenced_classes() {
        if !labels.contains(&class) {
            return Err(c.key_error(
                key,
                format!(
                    "class {class:?} is not a label of model {model:?} (labels: {})",
                    labels.join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// Files and folders the configuration names that `run` would trip on, checked
/// without changing anything (for `check-config`): the model, its manifest and
/// the ONNX Runtime library, set or found by default, and the outbox's folder.
/// TLS material and the password file are read by [`publisher`]. Cameras are
/// not: a camera that cannot be opened never stops the others.
pub fn check_files(c: &Config) -> Result<(), ConfigError> {
    use std::path::Path;
    let readable = |key: &str, path: &Path, what: &str, hint: &str| {
        let problem = match std::fs::File::open(path) {
            Ok(f) if f.metadata().is_ok_and(|m| m.is_dir()) => "is a folder".to_string(),
            Ok(_) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "not found".to_string(),
            Err(e) => format!("cannot be read: {e}"),
        };
        Err(c.key_error(key, format!("{what} {} {problem}{hint}", path.display())))
    };
    let found = " (install the streetwatch package or run `make setup`, or set this key)";
    match &c.model.path {
        Some(p) => readable("model.path", p, "model file", "")?,
        None => readable(
            "model.path",
            &manifest::default_model_path(),
            "not set, and the default model",
            found,
        )?,
    }
    if let Some(p) = &c.model.manifest {
        readable("model.manifest", p, "manifest", "")?;
    }
    match &c.detector.ort_library {
        Some(p) => readable("detector.ort_library", p, "library", "")?,
        None => readable(
            "detector.ort_library",
            &crate::detect::runtime_path(None),
            "not set, and ONNX Runtime",
            found,
        )?,
    }
    let outbox = &c.outbox.path;
    if outbox.is_dir() {
        return Err(c.key_error(
            "outbox.path",
            format!("{} is a folder; name the SQLite file", outbox.display()),
        ));
    }
    if let Some(up) = outbox.ancestors().skip(1).find(|a| a.exists())
        && !up.is_dir()
    {
        return Err(c.key_error("outbox.path", format!("{} is not a folder", up.display())));
    }
    Ok(())
}

/// The system's CA bundle (Debian's `ca-certificates`).
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

fn read_pem(
    c: &Config,
    key: &str,
    path: &std::path::Path,
    marker: &str,
) -> Result<Vec<u8>, ConfigError> {
    let bytes = std::fs::read(path)
        .map_err(|e| c.key_error(key, format!("cannot read {}: {e}", path.display())))?;
    if !String::from_utf8_lossy(&bytes).contains(marker) {
        return Err(c.key_error(
            key,
            format!(
                "{} is not a PEM file with a {marker:?} block",
                path.display()
            ),
        ));
    }
    Ok(bytes)
}

/// The largest evidence JPEG until the broker says otherwise: `[mqtt] max_packet_bytes`,
/// or the default packet limit. Replays, which have no broker, keep to it too.
pub fn jpeg_budget(c: &Config) -> crate::evidence::JpegBudget {
    crate::evidence::JpegBudget::new(
        c.mqtt
            .max_packet_bytes
            .map(|b| b as usize)
            .unwrap_or(crate::mqtt::DEFAULT_MAX_PACKET),
    )
}

/// The broker connection: `[mqtt]`, with the TLS material and the password read
/// once, at start-up. `cameras` is what the status and stats topics report on.
pub fn publisher(
    c: &Config,
    cameras: CameraList,
    clock: SharedClock,
) -> Result<PublisherOptions, ConfigError> {
    let m = &c.mqtt;
    let broker = config::BrokerUrl::parse(&m.url).map_err(|e| c.key_error("mqtt.url", e))?;
    let mut tls = TlsFiles::default();
    if broker.tls {
        tls.ca = match &m.ca_file {
            Some(p) => Some(read_pem(c, "mqtt.ca_file", p, "BEGIN CERTIFICATE")?),
            None => std::fs::read(SYSTEM_CA_BUNDLE).ok(),
        };
        if let (Some(cert), Some(key)) = (&m.client_cert, &m.client_key) {
            tls.client_auth = Some((
                read_pem(c, "mqtt.client_cert", cert, "BEGIN CERTIFICATE")?,
                read_pem(c, "mqtt.client_key", key, "PRIVATE KEY")?,
            ));
        }
    }
    let password = match (&m.password_env, &m.password_file) {
        (Some(var), _) => Some(std::env::var(var).map_err(|_| {
            c.key_error(
                "mqtt.password_env",
                format!("environment variable {var} is not set"),
            )
        })?),
        (None, Some(p)) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                c.key_error(
                    "mqtt.password_file",
                    format!("cannot read {}: {e}", p.display()),
                )
            })?;
            Some(text.lines().next().unwrap_or("").to_string())
        }
        (None, None) => None,
    };
    let credentials = m
        .username
        .clone()
        .map(|u| (u, Secret(password.unwrap_or_default())));
    Ok(PublisherOptions {
        broker,
        client_id: m
            .client_id
            .clone()
            .unwrap_or_else(|| format!("streetwatch-{}", c.node.id)),
        keep_alive: Duration::from_secs(m.keep_alive_s.max(5)),
        topic_prefix: m.topic_prefix.clone(),
        node: c.node.id.clone(),
        max_inflight: m.max_inflight,
        drain_timeout: Duration::from_secs(10),
        tls,
        credentials,
        cameras,
        control: None,
        stats_interval: Duration::from_secs_f64(m.stats_interval_s),
        protocol: m.protocol,
        clock,
        max_packet_bytes: m.max_packet_bytes.map(|b| b as usize),
        jpeg_budget: jpeg_budget(c),
        evidence_quality: c.evidence.quality,
        retry: Default::default(),
        memory_queue: crate::mqtt::DEFAULT_MEMORY_QUEUE,
        info: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<Config, ConfigError> {
        let base = "[node]\nid = \"n\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:1\"\n\
                    [[camera]]\nid = \"c\"\nurl = \"clip.mp4\"\n";
        Config::from_str_at(
            &format!("{base}{extra}"),
            std::path::Path::new("/etc/streetwatch/t.toml"),
        )
    }

    #[test]
    fn the_documented_defaults_are_the_stages_own() {
        // The config schema writes its defaults out (docs/rules.md lists them); they
        // must be exactly what the tracker and the scene model do on their own.
        assert_eq!(
            tracker(&config::TrackerConfig::default()),
            crate::track::TrackerConfig::default()
        );
        assert_eq!(
            scene(&config::SceneConfig::default()),
            Some(crate::scene::SceneConfig::default())
        );
    }

    #[test]
    fn the_gate_needs_the_scene_model() {
        let mut c = config::SceneConfig {
            motion_gate: true,
            ..Default::default()
        };
        assert!(gate(&c).is_some());
        c.enabled = false;
        assert_eq!((gate(&c), scene(&c)), (None, None));
    }

    #[test]
    fn evidence_defaults_and_ranges() {
        let c = parse("").unwrap();
        assert_eq!(
            evidence(&c.evidence),
            Some(EvidenceOptions {
                max_width: 1280,
                quality: 80,
                crop: false,
            })
        );
        assert_eq!(outbox_limits(&c).max_evidence_bytes, 512 << 20);
        let off = parse("[evidence]\nenabled = false\n").unwrap();
        assert_eq!(evidence(&off.evidence), None);
        for (extra, key) in [
            ("[evidence]\nquality = 0\n", "evidence.quality"),
            ("[evidence]\nquality = 101\n", "evidence.quality"),
            ("[evidence]\nmax_width = 8\n", "evidence.max_width"),
            ("[evidence]\nmax_outbox_mb = 0\n", "evidence.max_outbox_mb"),
        ] {
            let err = parse(extra).unwrap_err().to_string();
            assert!(err.contains(key), "{extra}: {err}");
        }
        let err = parse("[evidence]\nblur = true\n").unwrap_err().to_string();
        assert!(err.contains("unknown field `blur`"), "{err}");
    }

    #[test]
    fn privacy_is_on_by_default_and_checked() {
        let c = parse("").unwrap();
        assert_eq!(
            privacy(&c.privacy),
            Some(crate::evidence::Policy::default())
        );
        let off = parse("[privacy]\nenabled = false\n").unwrap();
        assert_eq!(privacy(&off.privacy), None);
        let blur = parse("[privacy]\nmethod = \"blur\"\nmask_thrower = false\n").unwrap();
        let p = privacy(&blur.privacy).unwrap();
        assert_eq!(p.method, crate::evidence::Method::Blur);
        assert!(!p.mask_thrower);
        for (extra, key) in [
            ("[privacy]\nhead_fraction = 0\n", "privacy.head_fraction"),
            ("[privacy]\nhead_fraction = 1.5\n", "privacy.head_fraction"),
            ("[privacy]\nhead_classes = [\"\"]\n", "privacy.head_classes"),
            (
                "[privacy]\nplate_classes = [\" \"]\n",
                "privacy.plate_classes",
            ),
        ] {
            let err = parse(extra).unwrap_err().to_string();
            assert!(err.contains(key), "{extra}: {err}");
        }
        let err = parse("[privacy]\nmethod = \"smudge\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("smudge"), "{err}");
    }

    #[test]
    fn unknown_rule_classes_name_their_key_and_the_labels() {
        let c = parse(
            "[[camera.zone]]\nid = \"z\"\npolygon = [[0, 0], [1, 0], [1, 1]]\n\
             [camera.zone.litter]\nclasses = [\"bottle\"]\n",
        )
        .unwrap();
        let labels = ["person".to_string(), "cup".to_string()];
        let err = check_classes(&c, "m", &labels).unwrap_err().to_string();
        assert!(err.contains("camera[c].zone[z].litter.classes"), "{err}");
        assert!(err.contains("person, cup"), "{err}");
        let labels = ["person".to_string(), "bottle".to_string()];
        check_classes(&c, "m", &labels).unwrap();
    }
}
