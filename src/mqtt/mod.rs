//! The broker connection: publishes events (and their evidence JPEGs) from the
//! outbox, deletes them on PUBACK.
//!
//! In: events with their evidence (committed to the outbox here, then
//! published). Out: MQTT packets to the broker, acks back into the outbox,
//! capture-to-PUBACK latency into each camera's counters.
//!
//! rumqttc's own queue is memory-only and is cleared when it reconnects
//! without a session, so the outbox is the source of truth: after every
//! ConnAck the publisher starts again from the oldest unacknowledged event.
//! A PUBACK is matched to its event through the packet id that rumqttc
//! reports in `Outgoing::Publish(pkid)`, in the order publishes were queued.
//!
//! The event loop is polled on its own task (polling is not cancel-safe),
//! with exponential backoff and jitter between failed connection attempts.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::event::{Event, rfc3339};
use crate::outbox::{Handover, Outbox, Part, Position};

pub mod commands;
pub mod link;

pub use crate::config::{BrokerUrl, Protocol};
use commands::{ControlRequest, Reply};
use link::{Link, Meta, Wire};

/// The cameras whose state and counters are published; replaced on reload.
pub type CameraList =
    tokio::sync::watch::Receiver<Vec<(String, std::sync::Arc<crate::monitor::CameraStats>)>>;

/// A command's outcome on its way back to the publisher.
struct CommandDone {
    id: Option<String>,
    verb: String,
    outcome: Result<Reply, String>,
}

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

fn status_payload(state: &str, started_at: SystemTime) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "state": state,
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": rfc3339(started_at),
        "ts": rfc3339(SystemTime::now()),
    }))
    .expect("status encodes")
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
}

/// Called with every event once it is committed (for logs and the demo's console).
pub type CommitHook = Box<dyn FnMut(&Event) + Send>;

enum Note {
    Mqtt(Wire),
    Down(String),
}

/// Connects once and disconnects: checks address, TLS and credentials.
pub async fn probe_connection(opts: &PublisherOptions, timeout: Duration) -> Result<(), String> {
    // Its own client id and no Last Will: a running daemon's session and status stay untouched.
    let (client, mut eventloop) =
        link::connect(opts, &format!("{}-check", opts.client_id), None, 4);
    let scheme = if opts.broker.tls { "mqtts" } else { "mqtt" };
    let target = format!("{scheme}://{}:{}", opts.broker.host, opts.broker.port);
    let attempt = async {
        loop {
            match eventloop.poll().await {
                Ok(Wire::ConnAck) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(format!("cannot connect to {target}: {e}")),
            }
        }
    };
    let result = tokio::time::timeout(timeout, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "cannot connect to {target}: no answer in {timeout:?}"
            ))
        });
    if result.is_ok() {
        let _ = client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(1), eventloop.poll()).await;
    }
    result
}

/// After shutdown is asked, how long cameras have to hand over their last events.
const CAMERA_WIND_DOWN: Duration = Duration::from_secs(5);

/// Runs until `events` is closed (every camera ended; after `shutdown` fires, for
/// at most 5 s more), then drains: stored events are delivered for up to
/// `drain_timeout`, `offline` is published, and the connection is closed.
pub async fn run_publisher(
    opts: PublisherOptions,
    mut outbox: Outbox,
    mut events: mpsc::Receiver<Handover>,
    shutdown: CancellationToken,
    mut on_commit: CommitHook,
) -> PublisherReport {
    let started_at = SystemTime::now();
    let cap = opts.max_inflight as usize * 2 + 8;
    let (client, mut eventloop) = link::connect(&opts, &opts.client_id, Some(started_at), cap);

    let (note_tx, mut notes) = mpsc::channel::<Note>(256);
    let poll_stop = CancellationToken::new();
    let poller = {
        let stop = poll_stop.clone();
        let broker = format!("{}:{}", opts.broker.host, opts.broker.port);
        tokio::spawn(async move {
            let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
            loop {
                let polled = tokio::select! {
                    _ = stop.cancelled() => break,
                    p = eventloop.poll() => p,
                };
                match polled {
                    Ok(ev) => {
                        if matches!(ev, Wire::ConnAck) {
                            backoff.reset();
                        }
                        let done = matches!(ev, Wire::DisconnectSent);
                        if note_tx.send(Note::Mqtt(ev)).await.is_err() || done {
                            break;
                        }
                    }
                    Err(e) => {
                        let delay = backoff.next_delay();
                        if note_tx
                            .send(Note::Down(format!(
                                "{broker}: {e}; retrying in {delay:.1?}"
                            )))
                            .await
                            .is_err()
                        {
                            break;
                        }
                        tokio::select! {
                            _ = stop.cancelled() => break,
                            _ = tokio::time::sleep(delay) => {}
                        }
                    }
                }
            }
        })
    };

    let (done_tx, mut done_rx) = mpsc::channel::<CommandDone>(16);
    let mut st = PubState {
        client: client.clone(),
        connected: false,
        queued: VecDeque::new(),
        inflight: HashMap::new(),
        last_queued: Position::default(),
        max_inflight: opts.max_inflight as usize,
        report: PublisherReport::default(),
        was_down: false,
        unannounced_drops: None,
        unannounced_evidence_drops: None,
        published_states: HashMap::new(),
        done_tx,
    };
    let mut limits_timer = tokio::time::interval(Duration::from_secs(60));
    limits_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut status_timer = tokio::time::interval(Duration::from_millis(500));
    status_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stats_timer = tokio::time::interval(opts.stats_interval.max(Duration::from_secs(1)));
    stats_timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut reporter = crate::monitor::StatsReporter::new();

    // Phase 1: take events until the producers are gone. Once shutdown is asked, cameras
    // still hand over their last events (the ends of open incidents) as they stop.
    let mut producers_open = true;
    let mut wind_down: Option<tokio::time::Instant> = None;
    while producers_open {
        tokio::select! {
            _ = shutdown.cancelled(), if wind_down.is_none() => {
                wind_down = Some(tokio::time::Instant::now() + CAMERA_WIND_DOWN);
            }
            _ = tokio::time::sleep_until(wind_down.unwrap_or_else(tokio::time::Instant::now)),
                if wind_down.is_some() => break,
            ev = events.recv() => match ev {
                Some(ev) => st.commit(&mut outbox, ev, &opts.topic_prefix, &mut on_commit),
                None => producers_open = false,
            },
            note = notes.recv() => match note {
                Some(n) => st.handle(n, &mut outbox, &opts, started_at),
                None => break,
            },
            _ = limits_timer.tick() => st.enforce_limits(&mut outbox),
            _ = status_timer.tick() => st.publish_camera_states(&opts),
            Some(done) = done_rx.recv() => st.publish_command_result(&opts, done),
            _ = stats_timer.tick() => st.publish_stats(&opts, &outbox, &events, &mut reporter),
        }
        st.announce_drops(&outbox, &opts);
        st.fill(&outbox);
    }
    // Whatever the cameras already handed over is committed, never dropped.
    events.close();
    while let Ok(ev) = events.try_recv() {
        st.commit(&mut outbox, ev, &opts.topic_prefix, &mut on_commit);
    }
    st.fill(&outbox);

    // Phase 2: deliver what is stored (and announce drops), for a bounded time.
    let deadline = Instant::now() + opts.drain_timeout;
    st.announce_drops(&outbox, &opts);
    while (outbox.depth().unwrap_or(0) > 0
        || outbox.evidence_depth() > 0
        || st.unannounced_drops.is_some()
        || st.unannounced_evidence_drops.is_some())
        && Instant::now() < deadline
    {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::select! {
            note = notes.recv() => match note {
                Some(n) => st.handle(n, &mut outbox, &opts, started_at),
                None => break,
            },
            _ = tokio::time::sleep(left) => break,
        }
        st.announce_drops(&outbox, &opts);
        st.fill(&outbox);
    }

    // Phase 3: say goodbye.
    if st.connected {
        st.send(
            opts.status_topic(),
            true,
            true,
            status_payload("offline", started_at),
            Meta::JSON,
        );
        client.try_disconnect();
        let wait = Instant::now() + Duration::from_secs(2);
        while Instant::now() < wait {
            let left = wait.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, notes.recv()).await {
                Ok(Some(Note::Mqtt(Wire::DisconnectSent))) => break,
                Ok(Some(n)) => st.handle(n, &mut outbox, &opts, started_at),
                _ => break,
            }
        }
    }
    poll_stop.cancel();
    let _ = poller.await;
    st.report.left_in_outbox = outbox.depth().unwrap_or(0);
    st.report.evidence_left = outbox.evidence_depth();
    st.report
}

/// A stored message handed to rumqttc, until its PUBACK.
struct Sent {
    pos: Position,
    /// The event's camera and its frame's wall-clock capture time, for the latency.
    camera: Option<String>,
    captured_at: Option<SystemTime>,
}

struct PubState {
    client: Link,
    connected: bool,
    /// Publishes handed to rumqttc, awaiting their packet id: `Some` for stored messages.
    queued: VecDeque<Option<Sent>>,
    /// Packet id → stored message, awaiting PUBACK.
    inflight: HashMap<u16, Sent>,
    /// The last stored message handed to rumqttc on this connection.
    last_queued: Position,
    max_inflight: usize,
    report: PublisherReport,
    was_down: bool,
    /// Events dropped by the outbox limits and not yet announced: (count, highest seq).
    unannounced_drops: Option<(u64, u64)>,
    /// The same for evidence JPEGs.
    unannounced_evidence_drops: Option<(u64, u64)>,
    /// Camera states as last published (retained), to publish only changes.
    published_states: HashMap<String, crate::monitor::CameraState>,
    /// Command outcomes come back here from the tasks that wait for them.
    done_tx: mpsc::Sender<CommandDone>,
}

impl PubState {
    fn commit(
        &mut self,
        outbox: &mut Outbox,
        ev: Handover,
        prefix: &str,
        on_commit: &mut CommitHook,
    ) {
        match outbox.commit(ev, prefix) {
            Ok(ev) => {
                self.report.committed += 1;
                on_commit(&ev);
                if outbox.over_capacity() {
                    self.enforce_limits(outbox);
                }
            }
            // The event cannot be stored: nothing else can keep it; say so loudly.
            Err(e) => tracing::error!(error = %e, "event lost: outbox write failed"),
        }
    }

    fn handle(
        &mut self,
        note: Note,
        outbox: &mut Outbox,
        opts: &PublisherOptions,
        started_at: SystemTime,
    ) {
        match note {
            Note::Down(msg) => {
                if self.connected || !self.was_down {
                    tracing::warn!(broker = %msg, "MQTT broker unreachable; events are kept in the outbox");
                } else {
                    tracing::debug!(broker = %msg, "MQTT reconnect failed");
                }
                self.connected = false;
                self.was_down = true;
                self.queued.clear();
                self.inflight.clear();
            }
            Note::Mqtt(Wire::ConnAck) => {
                tracing::info!(protocol = ?opts.protocol, "connected to MQTT broker");
                self.connected = true;
                self.was_down = false;
                // rumqttc forgot everything unacknowledged: start over from the outbox.
                self.queued.clear();
                self.inflight.clear();
                self.last_queued = Position::default();
                // A restarted broker may have lost retained messages: state them again.
                self.published_states.clear();
                // Subscriptions do not survive a clean session: ask again every time.
                if !self
                    .client
                    .try_subscribe(format!("{}#", opts.command_prefix()))
                {
                    tracing::warn!("cannot subscribe to commands");
                }
                self.send(
                    opts.status_topic(),
                    true,
                    true,
                    status_payload("online", started_at),
                    Meta::JSON,
                );
            }
            Note::Mqtt(Wire::Published(pkid)) => {
                if let Some(Some(sent)) = self.queued.pop_front() {
                    self.inflight.insert(pkid, sent);
                }
            }
            Note::Mqtt(Wire::PubAck(pkid)) => {
                if let Some(sent) = self.inflight.remove(&pkid) {
                    self.acknowledged(outbox, opts, sent);
                }
            }
            Note::Mqtt(Wire::Message { topic, payload }) => {
                if let Some(verb) = topic.strip_prefix(&opts.command_prefix())
                    && verb != "result"
                {
                    self.start_command(opts, verb.to_string(), &payload);
                }
            }
            Note::Mqtt(_) => {}
        }
    }

    /// The broker has a stored message: delete it; for an event, count it and its latency.
    fn acknowledged(&mut self, outbox: &mut Outbox, opts: &PublisherOptions, sent: Sent) {
        let seq = sent.pos.seq;
        match sent.pos.part {
            Part::Event => match outbox.ack(seq) {
                Ok(true) => {
                    self.report.acked += 1;
                    let latency = sent
                        .captured_at
                        .map(|t| SystemTime::now().duration_since(t).unwrap_or_default());
                    if let Some(camera) = &sent.camera
                        && let Some((_, stats)) =
                            opts.cameras.borrow().iter().find(|(id, _)| id == camera)
                    {
                        stats.record_published(latency);
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, seq, "cannot delete acknowledged event"),
            },
            Part::Evidence => match outbox.ack_evidence(seq) {
                Ok(true) => self.report.evidence_acked += 1,
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, seq, "cannot delete acknowledged evidence"),
            },
        }
    }

    /// Parses a command and hands it to the supervisor; the outcome comes back
    /// through `done_tx`. Refused commands are answered at once.
    fn start_command(&mut self, opts: &PublisherOptions, verb: String, payload: &[u8]) {
        let (id, command) = match commands::parse(&verb, payload) {
            Ok(parsed) => parsed,
            Err(refused) => {
                tracing::warn!(verb = %verb.chars().take(64).collect::<String>(), error = %refused.error, "command refused");
                let done = CommandDone {
                    id: refused.id,
                    verb,
                    outcome: Err(refused.error),
                };
                self.publish_command_result(opts, done);
                return;
            }
        };
        tracing::info!(verb = command.verb(), id = ?id, "command received");
        let Some(control) = opts.control.clone() else {
            let done = CommandDone {
                id,
                verb,
                outcome: Err("this node takes no commands".into()),
            };
            self.publish_command_result(opts, done);
            return;
        };
        let done_tx = self.done_tx.clone();
        tokio::spawn(async move {
            let (reply, rx) = tokio::sync::oneshot::channel();
            let outcome = match control.send(ControlRequest { command, reply }).await {
                Err(_) => Err("the node is shutting down".to_string()),
                Ok(()) => match tokio::time::timeout(Duration::from_secs(30), rx).await {
                    Ok(Ok(outcome)) => outcome,
                    Ok(Err(_)) => Err("the node is shutting down".to_string()),
                    Err(_) => Err("no answer within 30 s".to_string()),
                },
            };
            let _ = done_tx.send(CommandDone { id, verb, outcome }).await;
        });
    }

    fn publish_command_result(&mut self, opts: &PublisherOptions, done: CommandDone) {
        let doc = match &done.outcome {
            Ok(reply) => {
                if let Some((suffix, bytes)) = &reply.attachment {
                    let topic = format!("{}/{}/{suffix}", opts.topic_prefix, opts.node);
                    self.send(topic, true, false, bytes.clone(), Meta::JPEG);
                }
                commands::result_json(done.id.as_deref(), &done.verb, Ok(&reply.result))
            }
            Err(e) => commands::result_json(done.id.as_deref(), &done.verb, Err(e)),
        };
        let topic = format!("{}result", opts.command_prefix());
        let payload = serde_json::to_vec(&doc).expect("result encodes");
        self.send(topic, true, false, payload, Meta::JSON);
    }

    fn enforce_limits(&mut self, outbox: &mut Outbox) {
        match outbox.enforce_limits() {
            Ok(d) => {
                if d.count > 0 {
                    tracing::warn!(
                        dropped = d.count,
                        up_to_seq = d.last_seq,
                        "outbox full or events too old: oldest undelivered events dropped"
                    );
                    let (n, _) = self.unannounced_drops.unwrap_or((0, 0));
                    self.unannounced_drops = Some((n + d.count, d.last_seq));
                    // Anything queued for those rows is moot; resume after them.
                    self.last_queued = self.last_queued.max(Position {
                        seq: d.last_seq,
                        part: Part::Evidence,
                    });
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
            Err(e) => tracing::error!(error = %e, "cannot apply the outbox limits"),
        }
    }

    /// Queues a publish that is not an event; `false` if rumqttc's queue is full.
    fn send(
        &mut self,
        topic: String,
        at_least_once: bool,
        retain: bool,
        payload: Vec<u8>,
        meta: Meta,
    ) -> bool {
        let ok = self
            .client
            .try_publish(topic, at_least_once, retain, payload, meta);
        if ok {
            // Every publish, whatever its QoS, is reported once as Outgoing::Publish.
            self.queued.push_back(None);
        }
        ok
    }

    /// Publishes each camera's state (retained) when it changed.
    fn publish_camera_states(&mut self, opts: &PublisherOptions) {
        if !self.connected {
            return;
        }
        let cameras = opts.cameras.borrow().clone();
        for (id, stats) in &cameras {
            let state = stats.state();
            if self.published_states.get(id) == Some(&state) {
                continue;
            }
            let payload = crate::monitor::camera_status_json(&state);
            let payload = serde_json::to_vec(&payload).expect("status encodes");
            if self.send(
                opts.camera_status_topic(id),
                true,
                true,
                payload,
                Meta::JSON,
            ) {
                self.published_states.insert(id.clone(), state);
            }
        }
    }

    fn publish_stats(
        &mut self,
        opts: &PublisherOptions,
        outbox: &Outbox,
        events: &mpsc::Receiver<Handover>,
        reporter: &mut crate::monitor::StatsReporter,
    ) {
        let figures = crate::monitor::OutboxFigures {
            depth: outbox.depth().unwrap_or(0),
            oldest_age_s: outbox.oldest_age().ok().flatten().map(|d| d.as_secs_f64()),
            dropped_total: outbox.dropped_total().unwrap_or(0),
            evidence_depth: outbox.evidence_depth(),
            evidence_bytes: outbox.evidence_bytes(),
            evidence_dropped_total: outbox.evidence_dropped_total().unwrap_or(0),
        };
        let cameras = opts.cameras.borrow().clone();
        let mut report = reporter.report(&cameras, figures);
        report["handover"] = serde_json::json!({
            "queued": events.len(),
            "capacity": events.max_capacity(),
        });
        report["mqtt"] = serde_json::json!({
            "connected": self.connected,
            "queued": self.queued.len(),
            "inflight": self.inflight.len(),
            "published": self.report.acked,
            "evidence_published": self.report.evidence_acked,
        });
        if !self.connected {
            return;
        }
        let payload = serde_json::to_vec(&report).expect("stats encode");
        let meta = Meta {
            expiry_s: link::stats_expiry(opts.stats_interval),
            ..Meta::JSON
        };
        self.send(opts.stats_topic(), false, false, payload, meta);
    }

    /// Publishes an alert for dropped events, and one for dropped evidence, once connected.
    fn announce_drops(&mut self, outbox: &Outbox, opts: &PublisherOptions) {
        if !self.connected {
            return;
        }
        let alert = |name: &str, (count, up_to_seq): (u64, u64), total: u64| {
            let payload = serde_json::json!({
                "alert": name,
                "dropped": count,
                "dropped_total": total.max(count),
                "up_to_seq": up_to_seq,
                "ts": rfc3339(SystemTime::now()),
            });
            serde_json::to_vec(&payload).expect("alert encodes")
        };
        if let Some(d) = self.unannounced_drops {
            let payload = alert("outbox_dropped", d, outbox.dropped_total().unwrap_or(0));
            if self.send(opts.alerts_topic(), true, false, payload, Meta::JSON) {
                self.unannounced_drops = None;
            }
        }
        if let Some(d) = self.unannounced_evidence_drops {
            let total = outbox.evidence_dropped_total().unwrap_or(0);
            let payload = alert("evidence_dropped", d, total);
            if self.send(opts.alerts_topic(), true, false, payload, Meta::JSON) {
                self.unannounced_evidence_drops = None;
            }
        }
    }

    /// Hands stored events and evidence to rumqttc while the in-flight window has room.
    fn fill(&mut self, outbox: &Outbox) {
        if !self.connected {
            return;
        }
        let busy = self.inflight.len() + self.queued.len();
        if busy >= self.max_inflight {
            return;
        }
        let rows = match outbox.pending_after(self.last_queued, self.max_inflight - busy) {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                return;
            }
        };
        for row in rows {
            let pos = row.position();
            let meta = match row.part {
                Part::Event => Meta::JSON,
                Part::Evidence => Meta::JPEG,
            };
            if !self
                .client
                .try_publish(row.topic, true, false, row.payload, meta)
            {
                break;
            }
            self.queued.push_back(Some(Sent {
                pos,
                camera: row.camera,
                captured_at: row.captured_at,
            }));
            self.last_queued = pos;
        }
    }
}
