//! The node's info message, built from the configuration and what the node
//! found at start-up (model, ONNX Runtime, FFmpeg): what a consumer needs to
//! draw its map of cameras, zones and rules. Built at start and after every
//! `reload`; the publisher sends it, retained, on every connection.
//!
//! In: [`Config`] and [`Facts`]. Out: [`Info`]. Pure, apart from
//! [`Facts::gather`], which reads the model file and asks the libraries.

use std::time::SystemTime;

use crate::config::{CameraConfig, Config, ZoneConfig};
use crate::event::rfc3339;
use crate::wire::{CameraInfo, INFO, Info, ModelInfo, RuleInfo, ZoneInfo};

/// What the node runs with, found once at start-up.
#[derive(Debug, Clone, PartialEq)]
pub struct Facts {
    pub model_name: String,
    pub model_sha256: String,
    pub labels: Vec<String>,
    pub onnxruntime: String,
    pub execution_provider: String,
    pub ffmpeg: String,
}

impl Facts {
    /// Reads the model file's sha256 and the library versions. What cannot be found
    /// is said in words (`unknown: …`) rather than stopping the node.
    pub fn gather(c: &Config, model_name: &str, labels: &[String], provider: &str) -> Facts {
        let model = super::options::detector(c).model;
        let ort = crate::detect::runtime_path(c.detector.ort_library.as_deref());
        let avcodec = ffmpeg_next::codec::version();
        Facts {
            model_name: model_name.into(),
            model_sha256: crate::about::sha256_file(&model).unwrap_or_else(|e| {
                tracing::warn!(model = %model.display(), error = %e, "cannot hash the model for the info message");
                "0".repeat(64)
            }),
            labels: labels.to_vec(),
            onnxruntime: crate::detect::runtime_version(&ort)
                .unwrap_or_else(|e| format!("unknown: {e}")),
            execution_provider: provider.into(),
            ffmpeg: format!(
                "{}.{}.{}",
                avcodec >> 16,
                (avcodec >> 8) & 0xff,
                avcodec & 0xff
            ),
        }
    }
}

/// The info document of this configuration.
pub fn info(c: &Config, facts: &Facts, started_at: SystemTime, now: SystemTime) -> Info {
    Info {
        schema: INFO.into(),
        node: c.node.id.clone(),
        version: env!("CARGO_PKG_VERSION").into(),
        commit: env!("STREETWATCH_GIT_COMMIT").into(),
        started_at: rfc3339(started_at),
        ts: rfc3339(now),
        model: ModelInfo {
            name: facts.model_name.clone(),
            sha256: facts.model_sha256.clone(),
            labels: facts.labels.clone(),
        },
        onnxruntime: facts.onnxruntime.clone(),
        execution_provider: facts.execution_provider.clone(),
        ffmpeg: facts.ffmpeg.clone(),
        timezone: crate::analytics::time_zone(c.node.timezone.as_deref())
            .iana_name()
            .unwrap_or("UTC")
            .into(),
        cameras: c.cameras.iter().map(camera).collect(),
    }
}

fn camera(cam: &CameraConfig) -> CameraInfo {
    let site = super::options::site(cam);
    CameraInfo {
        id: cam.id.clone(),
        enabled: cam.enabled,
        fps: cam.fps,
        zones: cam
            .zones
            .iter()
            .map(|z| zone(z, site.for_zone(z.grid.as_deref(), z.address.as_deref())))
            .collect(),
        site,
    }
}

fn zone(z: &ZoneConfig, site: crate::event::Site) -> ZoneInfo {
    let settings = |v: serde_json::Value| match v {
        serde_json::Value::Object(m) => m.into_iter().collect(),
        _ => Default::default(),
    };
    let rule = |kind: &str, v: Option<serde_json::Value>| {
        v.map(|v| RuleInfo {
            kind: kind.into(),
            settings: settings(v),
        })
    };
    let value = |r: Result<serde_json::Value, serde_json::Error>| r.ok();
    let rules = [
        rule(
            "litter",
            z.litter
                .as_ref()
                .and_then(|r| value(serde_json::to_value(r))),
        ),
        rule(
            "congestion",
            z.congestion
                .as_ref()
                .and_then(|r| value(serde_json::to_value(r))),
        ),
        rule(
            "illegal_parking",
            z.illegal_parking
                .as_ref()
                .and_then(|r| value(serde_json::to_value(r))),
        ),
        rule(
            "street_vending",
            z.street_vending
                .as_ref()
                .and_then(|r| value(serde_json::to_value(r))),
        ),
        rule(
            "outside_business",
            z.outside_business
                .as_ref()
                .and_then(|r| value(serde_json::to_value(r))),
        ),
        rule(
            "piled_materials",
            z.piled_materials
                .as_ref()
                .and_then(|r| value(serde_json::to_value(r))),
        ),
    ];
    ZoneInfo {
        id: z.id.clone(),
        polygon: z.polygon.clone(),
        anchor: serde_json::to_value(z.anchor)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        schedule: z.schedule.clone(),
        site,
        rules: rules.into_iter().flatten().collect(),
    }
}

/// Makes the node's info document and hands it to the publisher.
pub(super) struct Sender {
    facts: Facts,
    clock: crate::clock::SharedClock,
    started_at: std::time::SystemTime,
    pub(super) tx: tokio::sync::watch::Sender<Option<std::sync::Arc<Vec<u8>>>>,
}

impl Sender {
    pub(super) fn new(facts: Facts, clock: crate::clock::SharedClock, config: &Config) -> Self {
        let started_at = clock.wall();
        let mut me = Self {
            facts,
            clock,
            started_at,
            tx: tokio::sync::watch::channel(None).0,
        };
        me.update(config);
        me
    }

    pub(super) fn update(&mut self, config: &Config) {
        let doc = info(config, &self.facts, self.started_at, self.clock.wall());
        let json = serde_json::to_vec(&doc).expect("info encodes");
        self.tx.send_replace(Some(std::sync::Arc::new(json)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
[node]
id = "pole"
timezone = "Asia/Shanghai"
[mqtt]
url = "mqtt://127.0.0.1:1"
[[camera]]
id = "gate"
url = "rtsp://cam/1"
fps = 4
location = { lat = 39.9912, lon = 116.3075 }
address = "12 Jingmi Rd"
grid = "0231-07"
description = "bus stop"
[[camera.zone]]
id = "stop"
polygon = [[0, 0], [1, 0], [1, 1]]
anchor = "center"
schedule = ["06:00-22:00"]
[camera.zone.litter]
classes = ["bottle"]
dwell_s = 12
[[camera.zone]]
id = "across"
polygon = [[0, 0], [1, 0], [1, 1]]
grid = "0231-08"
[camera.zone.congestion]
levels = { light = 3, moderate = 6, heavy = 9 }
"#;

    fn facts() -> Facts {
        Facts {
            model_name: "m".into(),
            model_sha256: "ab".repeat(32),
            labels: vec!["person".into(), "bottle".into()],
            onnxruntime: "1.31.1".into(),
            execution_provider: "cpu".into(),
            ffmpeg: "61.19.101".into(),
        }
    }

    #[test]
    fn info_describes_every_camera_zone_and_rule_with_its_site() {
        let c = Config::from_str_at(CONFIG, std::path::Path::new("/etc/sw.toml")).unwrap();
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let i = info(&c, &facts(), t, t);
        assert_eq!((i.schema.as_str(), i.node.as_str()), (INFO, "pole"));
        assert_eq!(i.timezone, "Asia/Shanghai");
        let cam = &i.cameras[0];
        assert_eq!((cam.id.as_str(), cam.fps), ("gate", 4.0));
        assert_eq!(cam.site.grid.as_deref(), Some("0231-07"));
        let stop = &cam.zones[0];
        assert_eq!(stop.anchor, "center");
        assert_eq!(stop.schedule, ["06:00-22:00"]);
        assert_eq!(stop.site, cam.site, "no override: the camera's site");
        assert_eq!(stop.rules.len(), 1);
        assert_eq!(stop.rules[0].kind, "litter");
        assert_eq!(stop.rules[0].settings["dwell_s"], 12.0);
        assert_eq!(
            stop.rules[0].settings["classes"],
            serde_json::json!(["bottle"])
        );
        let across = &cam.zones[1];
        assert_eq!(across.site.grid.as_deref(), Some("0231-08"));
        assert_eq!(across.site.address.as_deref(), Some("12 Jingmi Rd"));
        assert_eq!(across.rules[0].kind, "congestion");
        assert_eq!(across.rules[0].settings["levels"]["moderate"], 6.0);
    }

    #[test]
    fn info_matches_its_schema() {
        let c = Config::from_str_at(CONFIG, std::path::Path::new("/etc/sw.toml")).unwrap();
        let doc =
            serde_json::to_value(info(&c, &facts(), SystemTime::now(), SystemTime::now())).unwrap();
        let schema = crate::wire::schemas()
            .into_iter()
            .find(|(f, _)| *f == "info.schema.json")
            .unwrap()
            .1;
        let v = jsonschema::options()
            .should_validate_formats(true)
            .build(&schema)
            .unwrap();
        if let Err(e) = v.validate(&doc) {
            panic!("{e}\n{doc}");
        }
    }
}
