//! The epoch gate: the [`Outlet`] every publish of the node goes through,
//! and the poller task, the only one that touches the event loop.
//!
//! In: [`Message`]s handed to the outlet. Out: [`Note`]s (link up, link
//! down, wire events), each tagged with the link epoch it belongs to.
//!
//! rumqttc picks packet ids itself and reports each publish it writes as
//! `Outgoing::Publish(pkid)`, in the order it was handed them; the
//! [`Window`] turns that order into "which row has which packet id". The
//! gate makes the order hold across reconnections:
//!
//! - An epoch is one connection. The gate (`connected`, `epoch`, behind one
//!   small lock) is shared by the outlet and the poller. The outlet hands
//!   rumqttc a publish only under that lock, only while the link is
//!   connected in the very epoch the window is working in, and records its
//!   ticket in the window right after.
//! - When `poll()` fails, rumqttc has already moved what it had in flight and
//!   what was in its request channel into `pending`. A request pushed after
//!   that and before the publisher hears of the failure would survive into
//!   the next connection. So the poller takes the lock, marks the link down
//!   and starts the next epoch, lets go, and then empties the event loop
//!   again: `clean()` (the request channel into `pending`), `pending` and a
//!   publish held on a packet-id collision are dropped, and events rumqttc
//!   had buffered are handed on as the old epoch's. Nothing handed over in
//!   an epoch can be written in a later one; everything handed over later
//!   needs the next ConnAck (a clean session) first.
//! - Every note carries its epoch and notes arrive in the order they were
//!   polled, so the window matches reports to tickets of the same epoch only.
//! - When the window finds a report that does not match its ticket, the
//!   outlet asks the poller to drop that epoch's connection ([`Outlet::resync`]).
//!
//! Failed connection attempts are retried after a [`Backoff`]; so are
//! connections that died young (`flap`): the backoff starts over only after
//! a connection that lasted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::flap::Stability;
use super::{Cause, Client, Message, Wire, WireLoop, connect};
use crate::backoff::Backoff;
use crate::mqtt::PublisherOptions;
use crate::mqtt::window::{Item, Qos, Row, Window};

/// What the poller tells the publisher.
#[derive(Debug)]
pub enum Note {
    /// Connected (ConnAck, clean session) in `epoch`; with MQTT 5, the largest packet
    /// the broker takes, if it says.
    Up { epoch: u64, max_packet: Option<u32> },
    /// The connection is gone; the link is now down in `epoch`.
    Down {
        epoch: u64,
        reason: String,
        cause: Cause,
        /// Accepted connections in a row that died young (see `flap`).
        short_in_a_row: u32,
    },
    /// Something happened on the connection of `epoch`.
    Wire { epoch: u64, wire: Wire },
}

#[derive(Debug, Default)]
struct GateState {
    connected: bool,
    epoch: u64,
    /// The epoch whose connection the publisher asked to drop.
    resync: Option<u64>,
}

#[derive(Clone, Default)]
struct Gate {
    state: Arc<Mutex<GateState>>,
    resync: Arc<Notify>,
}

impl Gate {
    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The one way out for every publish of the node: through the gate, with a
/// ticket in the window.
pub struct Outlet {
    client: Client,
    gate: Gate,
    pub window: Window,
    /// The largest packet the broker takes, and the protocol to size packets by.
    limit: usize,
    protocol: crate::mqtt::Protocol,
    /// The largest publish handed over in the window's epoch, bytes on the wire.
    largest: (u64, usize),
}

impl Outlet {
    /// Whether publishes can be handed over now (as far as the publisher has heard).
    pub fn is_up(&self) -> bool {
        self.window.is_up()
    }

    /// Hands `push` the client if the link is connected in the window's epoch.
    fn through_gate(&self, push: impl FnOnce(&Client) -> bool) -> bool {
        if !self.window.is_up() {
            return false;
        }
        let gate = self.gate.lock();
        gate.connected && gate.epoch == self.window.epoch() && push(&self.client)
    }

    /// Publishes are kept within `limit` bytes on the wire.
    pub fn set_limit(&mut self, limit: usize, protocol: crate::mqtt::Protocol) {
        self.limit = limit;
        self.protocol = protocol;
    }

    /// The largest publish handed over on the current connection, bytes on the wire.
    pub fn largest(&self) -> usize {
        if self.largest.0 == self.window.epoch() {
            self.largest.1
        } else {
            0
        }
    }

    fn note_size(&mut self, size: usize) {
        let epoch = self.window.epoch();
        if self.largest.0 != epoch {
            self.largest = (epoch, 0);
        }
        self.largest.1 = self.largest.1.max(size);
    }

    /// Publishes a message the outbox does not keep; `false` if the link is down
    /// or rumqttc's queue is full. One over the packet limit is dropped (logged) and
    /// counts as done: it would never go through.
    pub fn send(&mut self, msg: Message) -> bool {
        let qos = msg.qos;
        let size = msg.size(self.protocol);
        if size > self.limit {
            tracing::error!(topic = %msg.topic, bytes = size, max = self.limit, "message over the broker's packet limit not published");
            return true;
        }
        let ok = self.through_gate(|c| c.try_publish(msg));
        if ok {
            self.window.handed(Item::Other(qos));
            self.note_size(size);
        }
        ok
    }

    /// Publishes an outbox row (QoS 1); the caller keeps it within the packet limit.
    pub fn send_row(&mut self, row: Row, msg: Message) -> bool {
        let size = msg.size(self.protocol);
        let ok = self.through_gate(|c| {
            c.try_publish(Message {
                qos: Qos::AtLeastOnce,
                ..msg
            })
        });
        if ok {
            self.window.handed(Item::Row(row));
            self.note_size(size);
        }
        ok
    }

    pub fn subscribe(&self, filter: String) -> bool {
        self.through_gate(|c| c.try_subscribe(filter))
    }

    pub fn disconnect(&self) -> bool {
        self.through_gate(Client::try_disconnect)
    }

    /// Asks the poller to drop the connection of the window's epoch: its packet ids
    /// can no longer be matched to what was handed over.
    pub fn resync(&self) {
        self.gate.lock().resync = Some(self.window.epoch());
        self.gate.resync.notify_one();
    }
}

/// Connects with `opts` and the Last Will `will`: the outlet to publish through,
/// and the poller task, which sends its notes to `notes` until `stop` fires,
/// `notes` is closed or the disconnect is written.
pub fn start(
    opts: &PublisherOptions,
    will: Vec<u8>,
    notes: mpsc::Sender<Note>,
    stop: CancellationToken,
) -> (Outlet, tokio::task::JoinHandle<()>) {
    // Room for a full window of rows and as many other messages.
    let cap = opts.max_inflight as usize * 2 + 8;
    let (client, wire) = connect(opts, &opts.client_id, Some(will), cap);
    let gate = Gate::default();
    let broker = format!("{}:{}", opts.broker.host, opts.broker.port);
    let poller = tokio::spawn(poll(wire, gate.clone(), notes, stop, broker));
    let outlet = Outlet {
        client,
        gate,
        window: Window::new(opts.max_inflight as usize),
        limit: usize::MAX,
        protocol: opts.protocol,
        largest: (0, 0),
    };
    (outlet, poller)
}

/// The poller: the only task that touches the event loop and the only writer of the gate.
async fn poll(
    mut wire: WireLoop,
    gate: Gate,
    notes: mpsc::Sender<Note>,
    stop: CancellationToken,
    broker: String,
) {
    let mut backoff = Backoff::new(Duration::from_millis(500), Duration::from_secs(30));
    let mut stability = Stability::default();
    let mut epoch = 0;
    loop {
        let polled = tokio::select! {
            _ = stop.cancelled() => break,
            _ = gate.resync.notified() => {
                let mut g = gate.lock();
                let asked = g.resync.take() == Some(epoch) && g.connected;
                drop(g);
                if !asked {
                    continue;
                }
                Err(super::Failure {
                    message: "packet ids out of step with what was published; reconnecting".into(),
                    cause: Cause::Other,
                })
            }
            p = wire.poll() => p,
        };
        match polled {
            Ok(Wire::ConnAck { max_packet }) => {
                stability.connected(tokio::time::Instant::now().into_std());
                gate.lock().connected = true;
                if notes.send(Note::Up { epoch, max_packet }).await.is_err() {
                    break;
                }
            }
            Ok(w) => {
                let done = w == Wire::DisconnectSent;
                if notes.send(Note::Wire { epoch, wire: w }).await.is_err() || done {
                    break;
                }
            }
            Err(e) => {
                let ended = epoch;
                epoch += 1;
                {
                    let mut g = gate.lock();
                    g.connected = false;
                    g.epoch = epoch;
                }
                let mut out: Vec<Note> = wire
                    .reset()
                    .into_iter()
                    .filter(|w| {
                        matches!(
                            w,
                            Wire::Published(_) | Wire::PubAck { .. } | Wire::Message { .. }
                        )
                    })
                    .map(|w| Note::Wire {
                        epoch: ended,
                        wire: w,
                    })
                    .collect();
                let ended = stability.ended(tokio::time::Instant::now().into_std());
                if ended.reset_backoff {
                    backoff.reset();
                }
                let delay = backoff.next_delay();
                out.push(Note::Down {
                    epoch,
                    reason: format!("{broker}: {}; retrying in {delay:.1?}", e.message),
                    cause: e.cause,
                    short_in_a_row: ended.short_in_a_row,
                });
                for note in out {
                    if notes.send(note).await.is_err() {
                        return;
                    }
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::Protocol;

    fn options(protocol: Protocol) -> PublisherOptions {
        crate::mqtt::test_options(protocol)
    }

    fn result(n: usize) -> Message {
        Message::json("sw/n/cmd/result".into(), format!("{n}").into_bytes(), false)
    }

    /// Requests rumqttc still holds anywhere: a further `clean()` moves them all into `pending`.
    fn left_in(wire: &mut WireLoop) -> usize {
        match wire {
            WireLoop::V4(el) => {
                el.clean();
                el.pending.len()
            }
            WireLoop::V5(el) => {
                el.clean();
                el.pending.len()
            }
        }
    }

    #[test]
    fn nothing_handed_over_in_an_epoch_reaches_a_later_connection() {
        for protocol in [Protocol::V311, Protocol::V5] {
            let (client, mut wire) = connect(&options(protocol), "gate-test", None, 16);
            let gate = Gate::default();
            let mut out = Outlet {
                client,
                gate: gate.clone(),
                window: Window::new(4),
                limit: usize::MAX,
                protocol,
                largest: (0, 0),
            };
            assert!(
                !out.send(result(0)),
                "{protocol:?}: nothing goes out before a ConnAck"
            );
            gate.lock().connected = true;
            out.window.link_up(0);
            assert!(out.send(result(1)));
            // The connection fails: poll() cleans the event loop itself, and a command
            // result is handed over before the poller has closed the gate.
            left_in(&mut wire);
            assert!(out.send(result(2)), "{protocol:?}: the gate is still open");
            assert_eq!(out.window.queued(), 2);
            // The poller closes the gate, then empties the event loop again.
            {
                let mut g = gate.lock();
                g.connected = false;
                g.epoch = 1;
            }
            assert!(!out.send(result(3)), "{protocol:?}: the gate is closed");
            assert_eq!(wire.reset(), Vec::new());
            assert_eq!(left_in(&mut wire), 0, "{protocol:?}: result 2 is gone");
            // Connected again, but the window has not heard of epoch 1 yet.
            gate.lock().connected = true;
            assert!(!out.send(result(4)), "{protocol:?}: another epoch's gate");
            out.window.link_down(1);
            out.window.link_up(1);
            assert_eq!(
                out.window.queued(),
                0,
                "{protocol:?}: epoch 0's tickets are gone"
            );
            assert!(out.send(result(5)));
            assert_eq!(
                left_in(&mut wire),
                1,
                "{protocol:?}: only result 5 is waiting"
            );
        }
    }
}
