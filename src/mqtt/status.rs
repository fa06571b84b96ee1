//! What the node says about itself: its status (retained `online`, and
//! `offline` as Last Will and on shutdown), each camera's state (retained,
//! published when it changes and again after every reconnection), the
//! periodic stats report, and alerts for what the outbox limits dropped (and
//! events lost while the outbox could not be written).
//!
//! In: the camera list and counters, outbox figures, the drops the outbox
//! reports. Out: messages through the [`Outlet`].

use std::collections::HashMap;
use std::time::SystemTime;

use super::link::{self, Message, Meta, Outlet};
use super::window::Qos;
use super::{PublisherOptions, PublisherReport};
use crate::clock::SharedClock;
use crate::event::rfc3339;
use crate::monitor::{CameraState, OutboxFigures, StatsReporter};
use crate::outbox::{Dropped, Outbox};

/// The `{prefix}/{node}/status` document.
fn status_payload(state: &str, started_at: SystemTime, now: SystemTime) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schema": crate::wire::STATUS,
        "state": state,
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": rfc3339(started_at),
        "ts": rfc3339(now),
    }))
    .expect("status encodes")
}

/// How storing goes, for the stats report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreFigures {
    /// Commits that failed in this run.
    pub errors_total: u64,
    /// Events waiting in memory for the outbox.
    pub memory_queued: usize,
    /// The last commit failed.
    pub failing: bool,
}

pub struct Status {
    clock: SharedClock,
    started_at: SystemTime,
    /// Camera states as last published (retained), to publish only changes.
    published_states: HashMap<String, CameraState>,
    /// Events dropped by the outbox limits and not yet announced: (count, highest seq).
    unannounced_drops: Option<(u64, u64)>,
    /// The same for evidence JPEGs.
    unannounced_evidence_drops: Option<(u64, u64)>,
    reporter: StatsReporter,
    info: super::info::InfoState,
}

impl Status {
    pub fn new(clock: SharedClock) -> Self {
        Self {
            started_at: clock.wall(),
            reporter: StatsReporter::new(clock.clone()),
            clock,
            published_states: HashMap::new(),
            unannounced_drops: None,
            unannounced_evidence_drops: None,
            info: Default::default(),
        }
    }

    /// The Last Will: `offline`.
    pub fn will(&self) -> Vec<u8> {
        status_payload("offline", self.started_at, self.clock.wall())
    }

    /// Connected: say `online`, and state every camera again (a restarted broker may
    /// have lost retained messages).
    pub fn connected(&mut self, out: &mut Outlet, opts: &PublisherOptions) {
        self.published_states.clear();
        self.info.connected();
        let payload = status_payload("online", self.started_at, self.clock.wall());
        out.send(Message::json(opts.status_topic(), payload, true));
    }

    /// Shutting down: say `offline`.
    pub fn goodbye(&self, out: &mut Outlet, opts: &PublisherOptions) {
        out.send(Message::json(opts.status_topic(), self.will(), true));
    }

    /// Publishes each camera's state (retained) when it changed.
    pub fn publish_camera_states(&mut self, out: &mut Outlet, opts: &PublisherOptions) {
        if !out.is_up() {
            return;
        }
        self.info.publish(out, opts);
        let cameras = opts.cameras.borrow().clone();
        for (id, stats) in &cameras {
            let state = stats.state();
            if self.published_states.get(id) == Some(&state) {
                continue;
            }
            let payload = crate::monitor::camera_status_json(&state, self.clock.wall());
            let payload = serde_json::to_vec(&payload).expect("status encodes");
            if out.send(Message::json(opts.camera_status_topic(id), payload, true)) {
                self.published_states.insert(id.clone(), state);
            }
        }
    }

    /// The outbox limits dropped `d`: log it now, announce it once connected.
    pub fn dropped(&mut self, d: &Dropped) {
        if d.count > 0 {
            tracing::warn!(
                dropped = d.count,
                up_to_seq = d.last_seq,
                "outbox full or events too old: oldest undelivered events dropped"
            );
            let (n, _) = self.unannounced_drops.unwrap_or((0, 0));
            self.unannounced_drops = Some((n + d.count, d.last_seq));
        }
        if d.evidence > 0 {
            tracing::warn!(
                dropped = d.evidence,
                up_to_seq = d.evidence_last_seq,
                "outbox limits: oldest undelivered evidence dropped"
            );
            let (n, _) = self.unannounced_evidence_drops.unwrap_or((0, 0));
            self.unannounced_evidence_drops = Some((n + d.evidence, d.evidence_last_seq));
        }
    }

    /// Whether some drop is not announced yet.
    pub fn drops_unannounced(&self) -> bool {
        self.unannounced_drops.is_some() || self.unannounced_evidence_drops.is_some()
    }

    /// Publishes an alert for dropped events, and one for dropped evidence, once connected.
    pub fn announce_drops(&mut self, out: &mut Outlet, outbox: &Outbox, opts: &PublisherOptions) {
        if !out.is_up() {
            return;
        }
        let now = self.clock.wall();
        let alert = |name: &str, (count, up_to_seq): (u64, u64), total: u64| {
            let payload = serde_json::json!({
                "schema": crate::wire::ALERT,
                "alert": name,
                "dropped": count,
                "dropped_total": total.max(count),
                "up_to_seq": up_to_seq,
                "ts": rfc3339(now),
            });
            serde_json::to_vec(&payload).expect("alert encodes")
        };
        if let Some(d) = self.unannounced_drops {
            let payload = alert("outbox_dropped", d, outbox.dropped_total().unwrap_or(0));
            if out.send(Message::json(opts.alerts_topic(), payload, false)) {
                self.unannounced_drops = None;
            }
        }
        if let Some(d) = self.unannounced_evidence_drops {
            let total = outbox.evidence_dropped_total().unwrap_or(0);
            let payload = alert("evidence_dropped", d, total);
            if out.send(Message::json(opts.alerts_topic(), payload, false)) {
                self.unannounced_evidence_drops = None;
            }
        }
    }

    /// Builds the stats report (every interval, so rates cover it) and publishes it when
    /// connected (QoS 0, expiring with MQTT 5). `handover` is the cameras' queue to the
    /// publisher: (queued, capacity).
    pub fn publish_stats(
        &mut self,
        out: &mut Outlet,
        opts: &PublisherOptions,
        outbox: &Outbox,
        handover: (usize, usize),
        delivered: &PublisherReport,
        storing: StoreFigures,
    ) {
        let figures = OutboxFigures {
            depth: outbox.depth().unwrap_or(0),
            oldest_age_s: outbox.oldest_age().ok().flatten().map(|d| d.as_secs_f64()),
            dropped_total: outbox.dropped_total().unwrap_or(0),
            evidence_depth: outbox.evidence_depth(),
            evidence_bytes: outbox.evidence_bytes(),
            evidence_dropped_total: outbox.evidence_dropped_total().unwrap_or(0),
        };
        let cameras = opts.cameras.borrow().clone();
        let mut report = self.reporter.report(&cameras, figures);
        report["outbox"]["errors_total"] = storing.errors_total.into();
        report["outbox"]["memory_queued"] = storing.memory_queued.into();
        report["outbox"]["failing"] = storing.failing.into();
        report["outbox"]["dead_lettered_total"] = outbox.dead_lettered_total().unwrap_or(0).into();
        report["handover"] = serde_json::json!({
            "queued": handover.0,
            "capacity": handover.1,
        });
        report["mqtt"] = serde_json::json!({
            "connected": out.is_up(),
            "queued": out.window.queued(),
            "inflight": out.window.rows_in_flight(),
            "published": delivered.acked,
            "evidence_published": delivered.evidence_acked,
        });
        if !out.is_up() {
            return;
        }
        let payload = serde_json::to_vec(&report).expect("stats encode");
        out.send(Message {
            topic: opts.stats_topic(),
            payload,
            qos: Qos::AtMostOnce,
            retain: false,
            meta: Meta {
                expiry_s: link::stats_expiry(opts.stats_interval),
                ..Meta::JSON
            },
        });
    }
}
