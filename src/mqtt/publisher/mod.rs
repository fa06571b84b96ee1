//! The publisher task: commits what the cameras hand over to the outbox and
//! carries out the delivery window's decisions.
//!
//! Three phases. Take events: until every camera has ended (after `shutdown`
//! fires, for at most 5 s more), commit each handed-over event, and meanwhile
//! answer the link's notes, publish stored rows as the window has room,
//! apply the outbox limits, and publish camera states, stats, alerts and
//! command results. Drain: deliver what is stored (and announce drops) for
//! at most `drain_timeout`. Goodbye: publish `offline` and disconnect.
//!
//! | module    | owns |
//! |-----------|------|
//! | this one  | the phases, the link's notes |
//! | `store`   | committing to the outbox; a memory queue while the outbox cannot be written |
//! | `deliver` | handing rows to the link within the broker's packet limit; acks, refusals, dead letters |

use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::alerts::Alerts;
use super::commands::Dispatch;
use super::link::{self, Note, Outlet, Wire};
use super::refusals::Refusals;
use super::status::Status;
use super::{CommitHook, PublisherOptions, PublisherReport};
use crate::outbox::{Handover, Outbox, Pending};

mod deliver;
mod store;

pub use deliver::{DEFAULT_MAX_PACKET, PacketLimit};
pub use store::DEFAULT_MEMORY_QUEUE;
use store::Spill;

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
    let limit = PacketLimit::new(opts.max_packet_bytes);
    let mut p = Publisher {
        commands: Dispatch::new(opts.control.clone()),
        alerts: Alerts::new(opts.clock.clone()),
        refusals: Refusals::new(opts.retry),
        spill: Spill::new(opts.memory_queue),
        limit,
        to_refit: None,
        opts,
        outbox,
        out,
        status,
        report: PublisherReport::default(),
        was_down: false,
        on_commit,
    };
    p.limit_changed();
    p.outbox_replaced();
    p.take_events(&mut events, &mut notes, &shutdown).await;
    p.drain(&mut notes).await;
    p.goodbye(&mut notes).await;
    poll_stop.cancel();
    let _ = poller.await;
    p.spill.give_up();
    p.report.left_in_outbox = p.outbox.depth().unwrap_or(0);
    p.report.evidence_left = p.outbox.evidence_depth();
    p.report
}

struct Publisher {
    opts: PublisherOptions,
    /// The source of truth: rows leave it only on their PUBACK, by its limits or as
    /// dead letters.
    outbox: Outbox,
    /// Every publish goes out here; its window maps packet ids to rows.
    out: Outlet,
    status: Status,
    alerts: Alerts,
    commands: Dispatch,
    /// Rows the broker refused, waiting to be tried again.
    refusals: Refusals,
    /// Events waiting in memory while the outbox cannot be written.
    spill: Spill,
    /// The largest packet the broker takes.
    limit: PacketLimit,
    /// Stored evidence over the packet limit, to be made smaller before it goes out.
    to_refit: Option<Pending>,
    report: PublisherReport,
    /// The broker was unreachable at the last attempt (to log an outage once).
    was_down: bool,
    on_commit: CommitHook,
}

/// Sleeps until `at`, or for ever.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
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
            let retry_at = self.refusals.next_due();
            let spill_at = self.spill.next_try();
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
                _ = sleep_until(retry_at) => {}
                _ = sleep_until(spill_at) => self.retry_spill(),
                Some(done) = self.commands.next_done() => self.commands.finished(&self.opts, done),
                _ = stats_timer.tick() => {
                    let handover = (events.len(), events.max_capacity());
                    self.status.publish_stats(
                        &mut self.out,
                        &self.opts,
                        &self.outbox,
                        handover,
                        &self.report,
                        self.spill.figures(),
                    );
                }
            }
            self.publish().await;
        }
        // Whatever the cameras already handed over is committed, never dropped.
        events.close();
        while let Ok(ev) = events.try_recv() {
            self.commit(ev);
        }
        self.publish().await;
    }

    /// Phase 2: delivers what is stored (and announces drops), for `drain_timeout` at most.
    async fn drain(&mut self, notes: &mut mpsc::Receiver<Note>) {
        let deadline = Instant::now() + self.opts.drain_timeout;
        while self.undelivered() && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            let retry_at = self.refusals.next_due();
            let spill_at = self.spill.next_try();
            tokio::select! {
                note = notes.recv() => match note {
                    Some(n) => self.on_note(n),
                    None => break,
                },
                _ = sleep_until(retry_at) => {}
                _ = sleep_until(spill_at) => self.retry_spill(),
                _ = tokio::time::sleep(left) => break,
            }
            self.publish().await;
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

    /// Whether something stored, waiting in memory or announced is still to be delivered.
    fn undelivered(&self) -> bool {
        self.outbox.depth().unwrap_or(0) > 0
            || self.outbox.evidence_depth() > 0
            || self.status.drops_unannounced()
            || self.alerts.pending()
            || !self.spill.is_empty()
    }

    fn on_note(&mut self, note: Note) {
        match note {
            Note::Down {
                epoch,
                reason,
                cause,
                short_in_a_row,
            } => {
                if self.out.is_up() || !self.was_down {
                    tracing::warn!(broker = %reason, "MQTT broker unreachable; events are kept in the outbox");
                } else {
                    tracing::debug!(broker = %reason, "MQTT reconnect failed");
                }
                if short_in_a_row == link::UNSTABLE_AFTER {
                    let cause = link::likely_cause(cause, &self.opts.client_id, self.out.largest());
                    tracing::error!(disconnects = short_in_a_row, likely_cause = %cause, "the MQTT broker keeps closing the connection soon after accepting it; reconnects are backed off");
                    self.alerts.raise(
                        "connection_unstable",
                        serde_json::json!({
                            "disconnects": short_in_a_row,
                            "last_error": reason,
                            "likely_cause": cause,
                        }),
                    );
                }
                self.was_down = true;
                self.out.window.link_down(epoch);
                self.refusals.link_down(Instant::now());
            }
            Note::Up { epoch, max_packet } => {
                tracing::info!(protocol = ?self.opts.protocol, "connected to MQTT broker");
                self.was_down = false;
                if self.limit.broker_says(max_packet.map(|m| m as usize)) {
                    self.limit_changed();
                }
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
                wire: Wire::PubAck { pkid, code },
            } => self.puback(epoch, pkid, code),
            Note::Wire {
                wire:
                    Wire::Message {
                        topic,
                        payload,
                        retain,
                    },
                ..
            } => self.commands.received(&self.opts, &topic, &payload, retain),
            Note::Wire { .. } => {}
        }
    }

    fn enforce_limits(&mut self) {
        match self.outbox.enforce_limits() {
            Ok(d) => {
                if d.count > 0 {
                    // Anything out for those rows is moot; resume after them.
                    let up_to = crate::outbox::Position {
                        seq: d.last_seq,
                        part: crate::outbox::Part::Evidence,
                    };
                    self.out.window.skip_to(up_to);
                    self.refusals.forget_up_to(up_to);
                }
                self.status.dropped(&d);
            }
            Err(e) => tracing::error!(error = %e, "cannot apply the outbox limits"),
        }
    }

    /// Everything that waits for the link: alerts, command results, stored rows.
    async fn publish(&mut self) {
        self.status
            .announce_drops(&mut self.out, &self.outbox, &self.opts);
        self.alerts.flush(&mut self.out, &self.opts);
        self.commands.flush(&mut self.out);
        self.fill();
        while let Some(row) = self.to_refit.take() {
            self.refit(row).await;
            self.fill();
        }
    }
}
