//! The delivery window: which stored messages (outbox rows) are out with
//! the MQTT client, which packet id each one got, and what a PUBACK
//! acknowledges. No I/O and no MQTT library types: the publisher feeds it
//! what happened on the wire and carries out what it decides.
//!
//! In: link epochs going up and down, every publish the node hands to the
//! client (rows and everything else: status, stats, alerts, command results,
//! snapshots), the client's reports of the packet id each publish was
//! written with, and PUBACKs. Out: which rows to read from the outbox next
//! (after which [`Position`], how many, within `max_inflight`), and for each
//! PUBACK the row to delete, or nothing.
//!
//! How a PUBACK finds its row:
//!
//! - The client picks packet ids itself (QoS 1: 1, 2, … cycling; QoS 0: 0) and
//!   reports each publish it writes as `Outgoing::Publish(pkid)`, in the order
//!   it was handed the publishes. A publish whose packet id is still in use is
//!   held until that id is acknowledged, and no other is taken meanwhile, so
//!   the order stays.
//! - Every publish of the node goes through [`Window::handed`], which queues a
//!   ticket (a row, or another message with its QoS) tagged with the link
//!   epoch it was handed in. The publisher hands something over only while
//!   the window says the link is up ([`Window::is_up`]) and the link's own
//!   gate agrees that this epoch is still the connected one (`link::gate`).
//! - An epoch is one connection. When it ends, the link makes sure nothing
//!   handed over in it can be written on a later connection: once the gate is
//!   closed, the client's event loop is emptied (request channel, publishes in
//!   flight, `pending`, a publish held on a collision), and the next epoch
//!   starts with a clean-session ConnAck. So within an epoch the reports come
//!   in the order of the tickets: the front ticket is the publish each report
//!   is about.
//! - A QoS 0 ticket must see packet id 0 and a QoS 1 ticket a non-zero id that
//!   is not already in flight; a report with no ticket is wrong too. Any of
//!   these means the order was lost: the window stops trusting the epoch
//!   ([`Mismatch`]), forgets its tickets and waits for the next one; the rows
//!   stay in the outbox and go out again.
//! - A PUBACK of the current epoch for a packet id in flight acknowledges what
//!   was written with that id; any other PUBACK acknowledges nothing.
//! - When an epoch ends or a new one starts, every ticket of an older epoch is
//!   discarded and every row not acknowledged is due again, from the oldest.
//!
//! An MQTT 5 PUBACK also carries a reason code. Below 0x80 it is a delivery;
//! 0x80 and above (not authorized, quota exceeded, payload format invalid, …)
//! is a refusal: the row leaves flight but is not acknowledged
//! ([`Acked::Refused`]); the publisher keeps it and tries it again later
//! (`refusals`). MQTT 3.1.1 has no reason codes: every PUBACK is a delivery.
//!
//! The publisher may pass over rows ([`Window::skip_to`]: rows the outbox
//! dropped, rows waiting out a refusal) and hand a row again out of order (a
//! refused row whose wait is over): the next fetch still starts after the
//! last row handed or passed.

use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

use crate::outbox::Position;

/// How a message is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qos {
    AtMostOnce,
    AtLeastOnce,
}

/// A stored message on its way to the broker.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub pos: Position,
    /// The event's camera (events only), for its counters.
    pub camera: Option<String>,
    /// Wall-clock capture time of the event's frame, when measured: for the latency.
    pub captured_at: Option<SystemTime>,
}

/// What was handed to the client.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// An outbox row (always QoS 1).
    Row(Row),
    /// A message the outbox does not keep.
    Other(Qos),
}

impl Item {
    fn qos(&self) -> Qos {
        match self {
            Item::Row(_) => Qos::AtLeastOnce,
            Item::Other(qos) => *qos,
        }
    }
}

/// A publish handed to the client, awaiting the packet id it is written with.
#[derive(Debug, Clone, PartialEq)]
struct Ticket {
    epoch: u64,
    item: Item,
}

/// The outbox rows to read next: up to `limit` after `after`, in publishing order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fetch {
    pub after: Position,
    pub limit: usize,
}

/// The lowest MQTT 5 reason code that means the broker refused a publish.
pub const REFUSED: u8 = 0x80;

/// What a PUBACK acknowledged.
#[derive(Debug, Clone, PartialEq)]
pub enum Acked {
    /// A row: the broker has it; delete it from the outbox.
    Row(Row),
    /// A row the broker refused with reason `code` (≥ 0x80): it stays in the outbox.
    Refused { row: Row, code: u8 },
    /// A QoS 1 message the outbox does not keep.
    Other,
    /// Nothing in flight in this epoch had that packet id.
    Unknown,
}

/// The client reported a publish that does not match the next ticket: the
/// mapping of packet ids to rows cannot be trusted for the rest of the epoch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("epoch {epoch}: the MQTT client wrote packet id {pkid}, but {expected}")]
pub struct Mismatch {
    pub epoch: u64,
    pub pkid: u16,
    pub expected: &'static str,
}

#[derive(Debug)]
pub struct Window {
    /// Rows out with the client (handed or in flight) at most.
    max_inflight: usize,
    /// The link epoch the window works in.
    epoch: u64,
    /// The link is up in `epoch` and its reports can be trusted.
    up: bool,
    /// Handed to the client in order, awaiting their packet id.
    handed: VecDeque<Ticket>,
    /// Packet id → what was written with it, awaiting PUBACK (QoS 1 only).
    inflight: HashMap<u16, Item>,
    /// Rows handed or in flight.
    rows_out: usize,
    /// The last row handed in this epoch: the next fetch starts after it.
    resume: Position,
}

impl Window {
    /// A window for a link that is down, in epoch 0.
    pub fn new(max_inflight: usize) -> Self {
        Self {
            max_inflight: max_inflight.max(1),
            epoch: 0,
            up: false,
            handed: VecDeque::new(),
            inflight: HashMap::new(),
            rows_out: 0,
            resume: Position::default(),
        }
    }

    /// The epoch publishes are handed over in.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Whether publishes may be handed to the client.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Publishes handed over and not yet written.
    pub fn queued(&self) -> usize {
        self.handed.len()
    }

    /// Rows written and awaiting their PUBACK.
    pub fn rows_in_flight(&self) -> usize {
        self.inflight
            .values()
            .filter(|i| matches!(i, Item::Row(_)))
            .count()
    }

    /// A connection (ConnAck) in `epoch`: start over from the oldest stored row.
    pub fn link_up(&mut self, epoch: u64) {
        if self.start_epoch(epoch) {
            self.up = true;
        }
    }

    /// The connection of the current epoch is gone; the link is now in `epoch`.
    pub fn link_down(&mut self, epoch: u64) {
        if self.start_epoch(epoch) {
            self.up = false;
        }
    }

    /// Discards every ticket (all are of older epochs: nothing is handed over while
    /// the link is down); `false`, and nothing changes, if `epoch` is older than the
    /// current one.
    fn start_epoch(&mut self, epoch: u64) -> bool {
        if epoch < self.epoch {
            return false;
        }
        self.epoch = epoch;
        self.forget_rows();
        true
    }

    /// Nothing out is trusted any more: every row not acknowledged is due again.
    fn forget_rows(&mut self) {
        self.inflight.clear();
        self.handed.clear();
        self.rows_out = 0;
        self.resume = Position::default();
    }

    /// Which rows to hand over next, if the link is up and the window has room.
    pub fn fetch(&self) -> Option<Fetch> {
        let room = self.max_inflight.saturating_sub(self.rows_out);
        (self.up && room > 0).then_some(Fetch {
            after: self.resume,
            limit: room,
        })
    }

    /// `item` was handed to the client in the current epoch.
    pub fn handed(&mut self, item: Item) {
        if let Item::Row(row) = &item {
            self.rows_out += 1;
            self.resume = self.resume.max(row.pos);
        }
        self.handed.push_back(Ticket {
            epoch: self.epoch,
            item,
        });
    }

    /// Every row up to `pos` is passed over (dropped by the outbox limits, or left for
    /// later): fetch after them.
    pub fn skip_to(&mut self, pos: Position) {
        self.resume = self.resume.max(pos);
    }

    /// Whether a row may be handed over now: the link is up and the window has room.
    pub fn has_room(&self) -> bool {
        self.up && self.rows_out < self.max_inflight
    }

    /// The client wrote the next publish handed over in `epoch` with `pkid`.
    pub fn published(&mut self, epoch: u64, pkid: u16) -> Result<(), Mismatch> {
        if epoch != self.epoch || !self.up {
            // A report from an epoch that is over: its tickets are gone.
            return Ok(());
        }
        let mismatch = |expected| Mismatch {
            epoch,
            pkid,
            expected,
        };
        let found = match self.handed.pop_front() {
            None => Err(mismatch("nothing was waiting to be written")),
            Some(t) if t.epoch != epoch => Err(mismatch("the next publish is of another epoch")),
            Some(t) => match (t.item.qos(), pkid) {
                (Qos::AtMostOnce, 0) => Ok(None),
                (Qos::AtMostOnce, _) => Err(mismatch("the next publish is QoS 0 (packet id 0)")),
                (Qos::AtLeastOnce, 0) => Err(mismatch("the next publish is QoS 1")),
                (Qos::AtLeastOnce, _) if self.inflight.contains_key(&pkid) => {
                    Err(mismatch("that packet id is still in flight"))
                }
                (Qos::AtLeastOnce, _) => Ok(Some(t.item)),
            },
        };
        match found {
            Ok(Some(item)) => {
                self.inflight.insert(pkid, item);
                Ok(())
            }
            Ok(None) => Ok(()),
            Err(e) => {
                self.up = false;
                self.forget_rows();
                Err(e)
            }
        }
    }

    /// The broker acknowledged `pkid` in `epoch` with reason `code` (0 with MQTT 3.1.1).
    pub fn puback(&mut self, epoch: u64, pkid: u16, code: u8) -> Acked {
        if epoch != self.epoch || !self.up {
            return Acked::Unknown;
        }
        match self.inflight.remove(&pkid) {
            Some(Item::Row(row)) => {
                self.rows_out -= 1;
                if code >= REFUSED {
                    Acked::Refused { row, code }
                } else {
                    Acked::Row(row)
                }
            }
            Some(Item::Other(_)) => Acked::Other,
            None => Acked::Unknown,
        }
    }
}

#[cfg(test)]
mod sim;
#[cfg(test)]
mod tests;
