//! The detector service a node runs, and a new one when its thread died.

use std::sync::Arc;

use super::OpenDetector;
use crate::detect::{DetectorService, ServiceOptions};
use crate::monitor::heartbeat::Beat;

/// The detector service, and how to start a new one when its thread died.
pub(super) struct Hub {
    pub(super) service: DetectorService,
    /// Inference threads started by this run (the dead ones too), joined at the end.
    pub(super) threads: Vec<std::thread::JoinHandle<()>>,
    pub(super) open: Arc<dyn OpenDetector>,
    pub(super) options: ServiceOptions,
    /// Kept by every service this hub starts (see [`DetectorService::spawn_beating`]).
    pub(super) beat: Arc<Beat>,
}

impl Hub {
    /// A live service: the current one, or a new one if its thread died.
    pub(super) async fn alive(&mut self) -> Result<DetectorService, String> {
        let Some(reason) = self.service.died() else {
            return Ok(self.service.clone());
        };
        tracing::warn!(reason = %reason, "starting a new detector: the last one died");
        let open = self.open.clone();
        let infer = tokio::task::spawn_blocking(move || open.open())
            .await
            .map_err(|e| format!("opening the detector again failed: {e}"))?
            .map_err(|e| format!("cannot open the detector again: {e}"))?;
        let (service, thread) =
            DetectorService::spawn_beating(infer, self.options, self.beat.clone());
        self.service = service;
        self.threads.push(thread);
        Ok(self.service.clone())
    }
}
