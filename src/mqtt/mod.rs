//! The broker connection: publishes events (and their evidence JPEGs) from the
//! outbox and deletes each on its PUBACK; publishes the node's status,
//! camera states, stats and alerts; takes commands in.
//!
//! In: events with their evidence from the cameras (committed to the outbox
//! here, then published), commands from the broker. Out: MQTT packets to the
//! broker, acks back into the outbox, commands to the node,
//! capture-to-PUBACK latency into each camera's counters.
//!
//! rumqttc's own queue is memory-only and is cleared when it reconnects
//! without a session, so the outbox is the source of truth: after every
//! ConnAck the publisher starts again from the oldest unacknowledged event.
//!
//! | module         | owns                                                             |
//! |----------------|------------------------------------------------------------------|
//! | `publisher`    | the task: its three phases (take events, drain, goodbye); storing, with a memory queue while the outbox fails; delivering within the broker's packet limit |
//! | `window`       | the delivery window, no I/O: what is out, packet id → row, what a PUBACK acknowledges, what to publish next; why a PUBACK cannot find the wrong row |
//! | `link`         | rumqttc for MQTT 3.1.1 and 5                                      |
//! | `link::gate`   | the epoch gate every publish goes through, and the task that polls rumqttc |
//! | `refusals`     | rows the broker refused (MQTT 5): when to try again, when they are dead letters |
//! | `status`       | node status, camera states, the stats report, drop alerts        |
//! | `alerts`       | every other alert (dead letters, outbox errors, an unstable connection) |
//! | `commands`     | commands: parsing, dispatch to the node, results                 |
//! | `info`         | the retained info message: on every connection and after reload  |
//! | `incidents`    | the retained open-incident topics, mirrored from event rows      |

use std::time::Duration;

use tokio::sync::mpsc;

use crate::clock::SharedClock;
use crate::event::Event;

mod alerts;
pub mod commands;
pub mod incidents;
mod info;
mod link;
mod publisher;
mod refusals;
mod status;
mod window;

pub use crate::config::{BrokerUrl, Protocol};
use commands::ControlRequest;
pub use info::InfoFeed;
pub use link::probe_connection;
pub use publisher::run_publisher;
pub use refusals::RetryPolicy;

/// Without `[mqtt] max_packet_bytes` and an MQTT 5 CONNACK that says, the largest packet published.
pub const DEFAULT_MAX_PACKET: usize = publisher::DEFAULT_MAX_PACKET;

/// How many events wait in memory at most while the outbox cannot be written.
pub const DEFAULT_MEMORY_QUEUE: usize = publisher::DEFAULT_MEMORY_QUEUE;

/// The cameras whose state and counters are published; replaced on reload.
pub type CameraList =
    tokio::sync::watch::Receiver<Vec<(String, std::sync::Arc<crate::monitor::CameraStats>)>>;

/// A password: kept out of `Debug` output and therefore out of logs.
#[derive(Clone)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// TLS material read at start-up (PEM).
#[derive(Clone, Default)]
pub struct TlsFiles {
    /// CA certificates that sign the broker's certificate; `None`: the system's roots.
    pub ca: Option<Vec<u8>>,
    /// Client certificate and key for mutual TLS.
    pub client_auth: Option<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFiles")
            .field("ca", &self.ca.as_ref().map(|c| c.len()))
            .field("client_auth", &self.client_auth.is_some())
            .finish()
    }
}

/// What the publisher needs to know.
#[derive(Debug, Clone)]
pub struct PublisherOptions {
    pub broker: BrokerUrl,
    pub client_id: String,
    pub keep_alive: Duration,
    pub topic_prefix: String,
    pub node: String,
    pub max_inflight: u16,
    /// After shutdown is asked for, how long to keep trying to deliver stored events.
    pub drain_timeout: Duration,
    /// TLS material when the broker URL is `mqtts://`.
    pub tls: TlsFiles,
    /// User name and password.
    pub credentials: Option<(String, Secret)>,
    /// Cameras whose state and counters are published (status and stats topics).
    pub cameras: CameraList,
    /// Where commands go; `None`: commands are answered with an error.
    pub control: Option<mpsc::Sender<ControlRequest>>,
    /// How often `{prefix}/{node}/stats` is published.
    pub stats_interval: Duration,
    /// MQTT 3.1.1 or 5.
    pub protocol: Protocol,
    /// Timestamps of status, alerts and stats; capture-to-PUBACK latency.
    pub clock: SharedClock,
    /// `[mqtt] max_packet_bytes`: the largest packet the broker takes, when known.
    pub max_packet_bytes: Option<usize>,
    /// The largest JPEG payload that fits, set here for whoever encodes JPEGs.
    pub jpeg_budget: crate::evidence::JpegBudget,
    /// JPEG quality stored evidence starts from when it is made smaller (`[evidence] quality`).
    pub evidence_quality: u8,
    /// How rows the broker refused are tried again.
    pub retry: RetryPolicy,
    /// Events kept in memory at most while the outbox cannot be written.
    pub memory_queue: usize,
    /// The node's info document, published retained on `{prefix}/{node}/info`.
    pub info: Option<InfoFeed>,
}

impl PublisherOptions {
    /// `{prefix}/{node}/status`: retained `online`; `offline` as Last Will and on shutdown.
    pub fn status_topic(&self) -> String {
        format!("{}/{}/status", self.topic_prefix, self.node)
    }

    /// `{prefix}/{node}/cameras/{camera}/status`: retained camera state.
    pub fn camera_status_topic(&self, camera: &str) -> String {
        format!(
            "{}/{}/cameras/{camera}/status",
            self.topic_prefix, self.node
        )
    }

    /// `{prefix}/{node}/info`: retained, what the node runs and watches.
    pub fn info_topic(&self) -> String {
        format!("{}/{}/info", self.topic_prefix, self.node)
    }

    /// `{prefix}/{node}/cmd/` — commands arrive below it.
    pub fn command_prefix(&self) -> String {
        format!("{}/{}/cmd/", self.topic_prefix, self.node)
    }

    /// `{prefix}/{node}/stats`: periodic counters.
    pub fn stats_topic(&self) -> String {
        format!("{}/{}/stats", self.topic_prefix, self.node)
    }

    /// `{prefix}/{node}/alerts`: things an operator must know, e.g. events dropped.
    pub fn alerts_topic(&self) -> String {
        format!("{}/{}/alerts", self.topic_prefix, self.node)
    }
}

/// How a publisher run ended.
#[derive(Debug, Clone, Default)]
pub struct PublisherReport {
    pub committed: u64,
    /// Events the broker acknowledged.
    pub acked: u64,
    /// Evidence JPEGs the broker acknowledged.
    pub evidence_acked: u64,
    /// Events still in the outbox (delivered on the next start).
    pub left_in_outbox: u64,
    /// Evidence JPEGs still in the outbox.
    pub evidence_left: u64,
    /// Messages moved to the dead letters in this run.
    pub dead_lettered: u64,
}

/// Called with every event once it is committed (for logs and the demo's console).
pub type CommitHook = Box<dyn FnMut(&Event) + Send>;

/// Options for unit tests: a broker nobody listens on, prefix `sw`, node `n`.
#[cfg(test)]
pub(crate) fn test_options(protocol: Protocol) -> PublisherOptions {
    PublisherOptions {
        broker: crate::config::BrokerUrl::parse("mqtt://127.0.0.1:1").unwrap(),
        client_id: "gate-test".into(),
        keep_alive: Duration::from_secs(5),
        topic_prefix: "sw".into(),
        node: "n".into(),
        max_inflight: 4,
        drain_timeout: Duration::from_secs(1),
        tls: Default::default(),
        credentials: None,
        cameras: tokio::sync::watch::channel(Vec::new()).1,
        control: None,
        stats_interval: Duration::from_secs(30),
        protocol,
        clock: crate::clock::system(),
        max_packet_bytes: None,
        jpeg_budget: crate::evidence::JpegBudget::new(0),
        evidence_quality: 80,
        retry: Default::default(),
        memory_queue: 16,
        info: None,
    }
}
