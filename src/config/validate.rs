//! What the types alone cannot check: ranges, uniqueness, polygons, URLs.
//!
//! Every error names its key (`camera[gate].fps`); ids are checked to be usable
//! as MQTT topic levels.

use std::collections::HashSet;

use super::{BrokerUrl, Config, ConfigError, EvidenceConfig};

impl Config {
    pub(super) fn invalid(
        &self,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigError {
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
        if let Some(b) = self.mqtt.max_packet_bytes
            && !(4096..=268_435_455).contains(&b)
        {
            return Err(self.invalid(
                "mqtt.max_packet_bytes",
                "must be from 4096 bytes to 268435455 (MQTT's largest packet)",
            ));
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
        self.privacy
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
        if self.detector.runs > 8 {
            return Err(self.invalid(
                "detector.runs",
                "must be between 0 (two on the CPU, one on a GPU) and 8",
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
            if cam.decoder_threads > 16 {
                return Err(self.invalid(
                    format!("{key}.decoder_threads"),
                    "must be between 0 (sized for the stream) and 16",
                ));
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
            if cam.max_pixels <= 0 {
                return Err(self.invalid(
                    format!("{key}.max_pixels"),
                    "must be a positive number of pixels (width × height)",
                ));
            }
            super::site::check_camera(cam)
                .map_err(|(k, m)| self.invalid(format!("{key}.{k}"), m))?;
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
                super::site::check_zone(zone)
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
