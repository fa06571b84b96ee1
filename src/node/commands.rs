//! What the node does for a command (MQTT `cmd/…`, or SIGHUP's `reload`):
//! enable or disable a camera, read the configuration again, or take a
//! snapshot of a camera's latest analysed frame.
//!
//! In: a parsed [`Command`]. Out: its [`Reply`] (the result, and a snapshot's
//! JPEG to publish), or the error the command result carries.

use std::time::Instant;

use super::{Node, options};
use crate::config::Config;
use crate::event::rfc3339;
use crate::mqtt::commands::{Command, Reply};
use crate::pipeline::task::Latest;

impl Node {
    pub(super) async fn execute(&mut self, cmd: Command) -> Result<Reply, String> {
        let reply = |result: serde_json::Value| Reply {
            result,
            attachment: None,
        };
        match cmd {
            Command::CameraDisable { camera } => {
                let (actions, changed) = self.set.disable(&camera)?;
                self.apply(actions).await;
                tracing::info!(camera = %camera, "camera disabled by command");
                Ok(reply(
                    serde_json::json!({"camera": camera, "enabled": false, "changed": changed}),
                ))
            }
            Command::CameraEnable { camera } => {
                let (actions, changed) = self.set.enable(&camera, Instant::now())?;
                self.apply(actions).await;
                if changed {
                    tracing::info!(camera = %camera, "camera enabled by command");
                }
                Ok(reply(
                    serde_json::json!({"camera": camera, "enabled": true, "changed": changed}),
                ))
            }
            Command::Snapshot { camera } => self.snapshot(camera).await,
            Command::Reload => {
                self.manager.reloading();
                let outcome = self.reload().await;
                self.manager.reloaded();
                outcome.map(reply)
            }
        }
    }

    /// Reads the configuration file again and starts, stops or restarts what changed.
    async fn reload(&mut self) -> Result<serde_json::Value, String> {
        let path = self.set.config().source_path.clone();
        let new = Config::load(&path).map_err(|e| format!("{e}; nothing was changed"))?;
        let (actions, report) = self.set.reload(new, &self.labels, Instant::now())?;
        self.apply(actions).await;
        self.publish_list();
        self.info.update(self.set.config());
        tracing::info!(started = ?report.started, stopped = ?report.stopped, restarted = ?report.restarted, "configuration reloaded");
        Ok(serde_json::to_value(report).expect("report encodes"))
    }

    /// A JPEG of the camera's latest analysed frame, made like evidence (`[evidence]`
    /// width and quality, `[privacy]` masks, within the broker's packet limit); refused
    /// when evidence is off: no picture leaves the box then.
    async fn snapshot(&mut self, camera: String) -> Result<Reply, String> {
        if self.set.camera(&camera).is_none() {
            return Err(format!("no camera {camera:?} on this node"));
        }
        let Some(opts) = options::evidence(&self.set.config().evidence) else {
            return Err(
                "snapshots are off: [evidence] enabled = false keeps pictures on the box".into(),
            );
        };
        let Latest {
            frame,
            masked,
            method,
        } = self
            .live
            .get(&camera)
            .and_then(|l| l.latest.borrow().clone())
            .ok_or_else(|| format!("camera {camera:?} has no frame yet (not running?)"))?;
        let max_bytes = self.jpeg_budget.get();
        let jpeg = tokio::task::spawn_blocking({
            let frame = frame.clone();
            move || {
                let ann = crate::evidence::Annotation::masks(&masked, method);
                crate::evidence::render_within(&frame, &ann, &opts, max_bytes)
            }
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("JPEG encoding failed: {e}"))?;
        let (width, height) = image::ImageReader::new(std::io::Cursor::new(&jpeg))
            .with_guessed_format()
            .ok()
            .and_then(|r| r.into_dimensions().ok())
            .unwrap_or((0, 0));
        let suffix = format!("snapshots/{camera}");
        Ok(Reply {
            result: serde_json::json!({
                "camera": camera,
                "topic_suffix": suffix,
                "width": width,
                "height": height,
                "bytes": jpeg.len(),
                "captured_at": rfc3339(frame.captured_at),
                "stream_time_s": frame.pts.as_secs_f64(),
            }),
            attachment: Some((suffix, jpeg)),
        })
    }
}
