//! What the node does for a command (MQTT `cmd/…`, or SIGHUP's `reload`):
//! enable or disable a camera, read the configuration again, or take a
//! snapshot of a camera's next frame.
//!
//! In: a parsed [`Command`]. Out: its [`Reply`] (the result, and a snapshot's
//! JPEG to publish), or the error the command result carries.

use std::future::Future;
use std::time::{Duration, Instant};

use super::{Node, SNAPSHOTS_WAITING, options};
use crate::config::Config;
use crate::event::rfc3339;
use crate::mqtt::commands::{Command, ControlRequest, Reply};
use crate::pipeline::task::{Latest, NotAsked};

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
            Command::Snapshot { camera } => self.snapshot(camera)?.await,
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

    /// Answers a command: a snapshot waits for the camera's next frame off the
    /// node's loop (cameras and other commands are not held up meanwhile); every
    /// other command is done before the next is taken.
    pub(super) async fn serve(&mut self, req: ControlRequest) {
        match req.command {
            Command::Snapshot { camera } => match self.snapshot(camera) {
                Ok(job) => {
                    tokio::spawn(async move {
                        let _ = req.reply.send(job.await);
                    });
                }
                Err(e) => {
                    let _ = req.reply.send(Err(e));
                }
            },
            command => {
                let outcome = self.execute(command).await;
                let _ = req.reply.send(outcome);
            }
        }
    }

    /// A JPEG of the camera's next frame, made like evidence (`[evidence]` width and
    /// quality, `[privacy]` masks, within the broker's packet limit); refused when
    /// evidence is off: no picture leaves the box then. The camera is asked here; the
    /// job returned waits for its answer (at most [`snapshot_wait`]) and encodes it.
    fn snapshot(
        &mut self,
        camera: String,
    ) -> Result<impl Future<Output = Result<Reply, String>> + Send + 'static, String> {
        let Some(cam) = self.set.camera(&camera) else {
            return Err(format!("no camera {camera:?} on this node"));
        };
        let wait = snapshot_wait(cam.fps);
        let Some(opts) = options::evidence(&self.set.config().evidence) else {
            return Err(
                "snapshots are off: [evidence] enabled = false keeps pictures on the box".into(),
            );
        };
        let not_running = || format!("camera {camera:?} is not running");
        let live = self.live.get(&camera).ok_or_else(not_running)?;
        let rx = live.snapshots.ask(SNAPSHOTS_WAITING).map_err(|e| match e {
            NotAsked::Full(n) => {
                format!("camera {camera:?} already has {n} snapshots waiting for its next frame")
            }
            NotAsked::Ended => not_running(),
        })?;
        let max_bytes = self.jpeg_budget.get();
        let stats = self.stats_of(&camera);
        Ok(async move {
            let Latest {
                frame,
                masked,
                method,
            } = match tokio::time::timeout(wait, rx).await {
                Ok(Ok(latest)) => latest,
                Ok(Err(_)) => {
                    return Err(format!("camera {camera:?} stopped before its next frame"));
                }
                Err(_) => {
                    return Err(format!(
                        "camera {camera:?} took no frame within {:.1} s (state: {})",
                        wait.as_secs_f64(),
                        stats.state()
                    ));
                }
            };
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
        })
    }
}

/// How long a snapshot waits for the camera's next frame: three frame intervals at
/// its `fps`, and never less than 2 s (a frame may be decoding, or waiting for the
/// detector on a busy box).
fn snapshot_wait(fps: f64) -> Duration {
    let three_frames = if fps > 0.0 { 3.0 / fps } else { 0.0 };
    Duration::from_secs_f64(three_frames.max(2.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_waits_three_frames_and_at_least_two_seconds() {
        assert_eq!(snapshot_wait(5.0), Duration::from_secs(2));
        assert_eq!(snapshot_wait(0.5), Duration::from_secs(6));
        assert_eq!(snapshot_wait(0.0), Duration::from_secs(2));
    }
}
