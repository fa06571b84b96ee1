//! The publisher task: commits what the cameras hand over to the outbox and
//! carries out the delivery window's decisions.
//!
//! Three phases. Take events: until every camera has ended (after `shutdown`
//! fires, for at most 5 s more), commit each handed-over event, and meanwhile
//! answer the link's notes, publish stored rows as the window has room,
//! apply the outbox limits, and publish camera states, stats, alerts and
//! command results. Drain: deliver what is stored (and announce drops) for
//! at most `drain_timeout`. Goodbye: publish `offline` and disconnect.

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::commands::Dispatch;
use super::link::{self, Message, Meta, Note, Outlet, Wire};
use super::status::Status;
use super::window::{Acked, Row};
use super::{CommitHook, PublisherOptions, PublisherReport};
use crate::outbox::{Handover, Outbox, Part};

/// After shutdown is asked, how long cameras have to hand over their last events.
const CAMERA_WIND_DOWN: Duration = Duration::from_secs(5);

/// How long to wait for the disconnect to be written when saying goodbye.
const GOODBYE_WAIT: Duration = Duration::from_secs(2);

/// Runs until `events` is closed (every camera ended; after `shutdown` fires, for
/// at most 5 s more), then drains: stored events are delivered for up to
/// `drain_timeout`, `offline` is published, and the connection is closed.
pub async fn run_publisher(
    opts: PublisherOptions,
    outbox: Outbox,
    mut events: mpsc::Receiver<Handover>,
    shutdown: CancellationToken,
    on_commit: CommitHook,
) -> PublisherReport {
    let status = Status::new(opts.clock.clone());
    let (note_tx, mut notes) = mpsc::channel::<Note>(256);
    let poll_stop = CancellationToken::new();
    let (out, poller) = link::start(&opts, status.will(), note_tx, poll_stop.clone());
    let mut p = Publisher {
        commands: Dispatch::new(opts.control.clone()),
        opts,
        outbox,
        out,
        status,
        report: PublisherReport::default(),
        was_down: false,
        on_commit,
    };
    p.take_events(&mut events, &mut notes, &shutdown).await;
    p.drain(&mut notes).await;
    p.goodbye(&mut notes).await;
    poll_stop.cancel();
    let _ = poller.await;
    p.report.left_in_outbox = p.outbox.depth().unwrap_or(0);
    p.report.evidence_left = p.outbox.evidence_depth();
    p.report
}

struct Publisher {
    opts: PublisherOptions,
    /// The source of truth: rows leave it only on their PUBACK or by its limits.
    outbox: Outbox,
    /// Every publish goes out here; its window maps packet ids to rows.
    out: Outlet,
    status: Status,
    commands: Dispatch,
    report: PublisherReport,
    /// The broker was unreachable at the last attempt (to log an outage once).
    was_down: bool,
    on_commit: CommitHook,
}

impl Publisher {
    /// Phase 1: takes events until the producers are gone. Once shutdown is asked,
    /// cameras still hand over their last events (the ends of open incidents) as they
    /// stop, for at most 5 s.
    async fn take_events(
        &mut self,
        events: &mut mpsc::Receiver<Handover>,
        notes: &mut mpsc::Receiver<Note>,
        shutdown: &CancellationToken,
    ) {
        let every = |d: Duration| {
            let mut t = tokio::time::interval(d);
            t.set_missed_tick_behavior(MissedTickBehavior::Delay);
            t
        };
        let mut limits_timer = every(Duration::from_secs(60));
        let mut status_timer = every(Duration::from_millis(500));
        let mut stats_timer = every(self.opts.stats_interval.max(Duration::from_secs(1)));
        let mut wind_down: Option<tokio::time::Instant> = None;
        loop {
            tokio::select! {
                _ = shutdown.cancelled(), if wind_down.is_none() => {
                    wind_down = Some(tokio::time::Instant::now() + CAMERA_WIND_DOWN);
                }
                _ = tokio::time::sleep_until(wind_down.unwrap_or_else(tokio::time::Instant::now)),
                    if wind_down.is_some() => break,
                ev = events.recv() => match ev {
                    Some(ev) => self.commit(ev),
                    None => break,
                },
                note = notes.recv() => match note {
                    Some(n) => self.on_note(n),
                    None => break,
                },
                _ = limits_timer.tick() => self.enforce_limits(),
                _ = status_timer.tick() => {
                    self.status.publish_camera_states(&mut self.out, &self.opts);
                }
                Some(done) = self.commands.next_done() => self.commands.finished(&self.opts, done),
                _ = stats_timer.tick() => {
                    let handover = (events.len(), events.max_capacity());
                    self.status
                        .publish_stats(&mut self.out, &self.opts, &self.outbox, handover, &self.report);
                }
            }
            self.publish();
        }
        // Whatever the cameras already handed over is committed, never dropped.
        events.close();
        while let Ok(ev) = events.try_recv() {
            self.commit(ev);
        }
        self.publish();
    }

    /// Phase 2: delivers what is stored (and announces drops), for `drain_timeout` at most.
    async fn drain(&mut self, notes: &mut mpsc::Receiver<Note>) {
        let deadline = Instant::now() + self.opts.drain_timeout;
        while self.undelivered() && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            tokio::select! {
                note = notes.recv() => match note {
                    Some(n) => self.on_note(n),
                    None => break,
                },
                _ = tokio::time::sleep(left) => break,
            }
            self.publish();
        }
    }

    /// Phase 3: says `offline` and disconnects, if connected.
    async fn goodbye(&mut self, notes: &mut mpsc::Receiver<Note>) {
        if !self.out.is_up() {
            return;
        }
        self.status.goodbye(&mut self.out, &self.opts);
        self.out.disconnect();
        let wait = Instant::now() + GOODBYE_WAIT;
        while let Ok(Some(note)) =
            tokio::time::timeout(wait.saturating_duration_since(Instant::now()), notes.recv()).await
        {
            if matches!(
                note,
                Note::Wire {
                    wire: Wire::DisconnectSent,
                    ..
                }
            ) {
                return;
            }
            self.on_note(note);
        }
    }

    fn commit(&mut self, ev: Handover) {
        match self.outbox.commit(ev, &self.opts.topic_prefix) {
            Ok(ev) => {
                self.report.committed += 1;
                (self.on_commit)(&ev);
                if self.outbox.over_capacity() {
                    self.enforce_limits();
                }
            }
            // The event cannot be stored: nothing else can keep it; say so loudly.
            Err(e) => tracing::error!(error = %e, "event lost: outbox write failed"),
        }
    }

    /// Whether something stored or announced is still to be delivered.
    fn undelivered(&self) -> bool {
        self.outbox.depth().unwrap_or(0) > 0
            || self.outbox.evidence_depth() > 0
            || self.status.drops_unannounced()
    }

    fn on_note(&mut self, note: Note) {
        match note {
            Note::Down { epoch, reason } => {
                if self.out.is_up() || !self.was_down {
                    tracing::warn!(broker = %reason, "MQTT broker unreachable; events are kept in the outbox");
                } else {
                    tracing::debug!(broker = %reason, "MQTT reconnect failed");
                }
                self.was_down = true;
                self.out.window.link_down(epoch);
            }
            Note::Up { epoch } => {
                tracing::info!(protocol = ?self.opts.protocol, "connected to MQTT broker");
                self.was_down = false;
                // rumqttc forgot everything unacknowledged: start over from the outbox.
                self.out.window.link_up(epoch);
                // Subscriptions do not survive a clean session: ask again every time.
                if !self
                    .out
                    .subscribe(format!("{}#", self.opts.command_prefix()))
                {
                    tracing::warn!("cannot subscribe to commands");
                }
                self.status.connected(&mut self.out, &self.opts);
            }
            Note::Wire {
                epoch,
                wire: Wire::Published(pkid),
            } => {
                if let Err(e) = self.out.window.published(epoch, pkid) {
                    tracing::error!(error = %e, "MQTT packet ids no longer match what was published: reconnecting; events in flight are published again");
                    self.out.resync();
                }
            }
            Note::Wire {
                epoch,
                wire: Wire::PubAck(pkid),
            } => match self.out.window.puback(epoch, pkid) {
                Acked::Row(row) => self.acknowledged(row),
                Acked::Other => {}
                Acked::Unknown => tracing::debug!(epoch, pkid, "PUBACK for no publish in flight"),
            },
            Note::Wire {
                wire: Wire::Message { topic, payload },
                ..
            } => self.commands.received(&self.opts, &topic, &payload),
            Note::Wire { .. } => {}
        }
    }

    /// The broker has a stored message: delete it; for an event, count it and its latency.
    fn acknowledged(&mut self, row: Row) {
        let seq = row.pos.seq;
        match row.pos.part {
            Part::Event => match self.outbox.ack(seq) {
                Ok(true) => {
                    self.report.acked += 1;
                    let now = self.opts.clock.wall();
                    let latency = row
                        .captured_at
                        .map(|t| now.duration_since(t).unwrap_or_default());
                    if let Some(camera) = &row.camera
                        && let Some((_, stats)) = self
                            .opts
                            .cameras
                            .borrow()
                            .iter()
                            .find(|(id, _)| id == camera)
                    {
                        stats.record_published(latency);
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, seq, "cannot delete acknowledged event"),
            },
            Part::Evidence => match self.outbox.ack_evidence(seq) {
                Ok(true) => self.report.evidence_acked += 1,
                Ok(false) => {}
                Err(e) => tracing::error!(error = %e, seq, "cannot delete acknowledged evidence"),
            },
        }
    }

    fn enforce_limits(&mut self) {
        match self.outbox.enforce_limits() {
            Ok(d) => {
                if d.count > 0 {
                    // Anything out for those rows is moot; resume after them.
                    self.out.window.dropped_up_to(crate::outbox::Position {
                        seq: d.last_seq,
                        part: Part::Evidence,
                    });
                }
                self.status.dropped(&d);
            }
            Err(e) => tracing::error!(error = %e, "cannot apply the outbox limits"),
        }
    }

    /// Everything that waits for the link: drop alerts, command results, stored rows.
    fn publish(&mut self) {
        self.status
            .announce_drops(&mut self.out, &self.outbox, &self.opts);
        self.commands.flush(&mut self.out);
        self.fill();
    }

    /// Hands stored events and evidence to the link while the window has room.
    fn fill(&mut self) {
        let Some(fetch) = self.out.window.fetch() else {
            return;
        };
        let rows = match self.outbox.pending_after(fetch.after, fetch.limit) {
            Ok(rows) => rows,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the outbox");
                return;
            }
        };
        for row in rows {
            let meta = match row.part {
                Part::Event => Meta::JSON,
                Part::Evidence => Meta::JPEG,
            };
            let ticket = Row {
                pos: row.position(),
                camera: row.camera,
                captured_at: row.captured_at,
            };
            let msg = Message {
                meta,
                ..Message::json(row.topic, row.payload, false)
            };
            // The open incident's retained mirror goes first (see `incidents`).
            if matches!(row.part, Part::Event)
                && let Some(m) = super::incidents::mirror(&self.opts.topic_prefix, &msg.payload)
                && !self.out.send(m)
            {
                break;
            }
            if !self.out.send_row(ticket, msg) {
                break;
            }
        }
    }
}
