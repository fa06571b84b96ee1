//! Handing stored rows to the link, and what the broker answers.
//!
//! Every row must fit the broker's packet limit ([`PacketLimit`]). An event
//! that does not is a dead letter (it would only be refused or cut the
//! connection, again and again, and hold up everything after it). Evidence
//! that does not is made smaller (`evidence::refit`, on a blocking thread)
//! and stored again before it goes out; only evidence that cannot be made
//! small enough is a dead letter. Each dead letter is announced with a
//! `dead_letter` alert naming its event id, size and reason.
//!
//! A PUBACK deletes its row; a refusal (MQTT 5 reason ≥ 0x80) leaves it
//! stored, for `refusals` to say when to try it again or that it is a dead
//! letter.

use std::time::Instant;

use super::Publisher;
use crate::mqtt::link::{self, Message, Meta, packet_size};
use crate::mqtt::refusals::Verdict;
use crate::mqtt::window::{Acked, Qos, Row};
use crate::outbox::{Part, Pending, Position};

/// Without `[mqtt] max_packet_bytes` and without an MQTT 5 CONNACK that says, the
/// largest packet published: 256 KiB, under what common brokers take.
pub const DEFAULT_MAX_PACKET: usize = 256 * 1024;

/// The largest packet the broker takes: `[mqtt] max_packet_bytes` if set, else what
/// its MQTT 5 CONNACK says, else [`DEFAULT_MAX_PACKET`]; the smaller of the first two
/// when both are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacketLimit {
    configured: Option<usize>,
    broker: Option<usize>,
}

impl PacketLimit {
    pub fn new(configured: Option<usize>) -> Self {
        Self {
            configured,
            broker: None,
        }
    }

    /// The broker's CONNACK said `max` (or nothing); whether the limit changed.
    pub fn broker_says(&mut self, max: Option<usize>) -> bool {
        let before = self.bytes();
        self.broker = max;
        self.bytes() != before
    }

    pub fn bytes(&self) -> usize {
        match (self.configured, self.broker) {
            (Some(c), Some(b)) => c.min(b),
            (Some(v), None) | (None, Some(v)) => v,
            (None, None) => DEFAULT_MAX_PACKET,
        }
    }
}

fn part_name(part: Part) -> &'static str {
    match part {
        Part::Event => "event",
        Part::Evidence => "evidence",
    }
}

impl Publisher {
    /// The limit is known (or changed): the link and the JPEG budget follow it.
    pub(super) fn limit_changed(&mut self) {
        let limit = self.limit.bytes();
        self.out.set_limit(limit, self.opts.protocol);
        // The longest JPEG topic: evidence (an event id) or a snapshot (a camera id).
        let topic = self.opts.topic_prefix.len()
            + self.opts.node.len()
            + 2
            + ("evidence/".len() + 36).max("snapshots/".len() + 64);
        let overhead = packet_size(self.opts.protocol, topic, 0, Qos::AtLeastOnce, Meta::JPEG);
        self.opts.jpeg_budget.set(limit.saturating_sub(overhead));
        tracing::info!(
            max_packet_bytes = limit,
            "MQTT packets are kept within the broker's limit"
        );
    }

    /// Hands stored rows to the link while the window has room: refused rows whose
    /// wait is over first, then the next rows in order.
    pub(super) fn fill(&mut self) {
        if !self.out.window.has_room() {
            return;
        }
        for pos in self.refusals.due(Instant::now()) {
            if !self.out.window.has_room() {
                return;
            }
            match self.outbox.get(pos) {
                Ok(Some(row)) => {
                    if !self.hand(row) {
                        return;
                    }
                    self.refusals.handed(pos);
                }
                Ok(None) => self.refusals.forget(pos),
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    return;
                }
            }
        }
        while let Some(fetch) = self.out.window.fetch() {
            let rows = match self.outbox.pending_after(fetch.after, fetch.limit) {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read the outbox");
                    return;
                }
            };
            if rows.is_empty() {
                return;
            }
            for row in rows {
                let pos = row.position();
                if self.refusals.holds(pos) {
                    // Waiting out a refusal: it goes again when due.
                    self.out.window.skip_to(pos);
                    continue;
                }
                if !self.hand(row) {
                    return;
                }
            }
        }
    }

    /// Hands one row to the link, within the packet limit; `false` if the link took
    /// nothing more now (down, its queue full, or evidence to make smaller first).
    fn hand(&mut self, row: Pending) -> bool {
        let pos = row.position();
        let meta = match row.part {
            Part::Event => Meta::JSON,
            Part::Evidence => Meta::JPEG,
        };
        let limit = self.limit.bytes();
        let size = packet_size(
            self.opts.protocol,
            row.topic.len(),
            row.payload.len(),
            Qos::AtLeastOnce,
            meta,
        );
        if size > limit {
            if row.part == Part::Evidence {
                // Made smaller first (on a blocking thread), then handed over in its turn.
                self.to_refit.get_or_insert(row);
                return false;
            }
            let reason = format!("{size} bytes on the wire; the broker takes at most {limit}");
            self.dead_letter(pos, &reason);
            self.out.window.skip_to(pos);
            return true;
        }
        let ticket = Row {
            pos,
            camera: row.camera,
            captured_at: row.captured_at,
        };
        let msg = Message {
            meta,
            ..Message::json(row.topic, row.payload, false)
        };
        // The open incident's retained mirror goes first (see `incidents`).
        if row.part == Part::Event
            && let Some(m) = crate::mqtt::incidents::mirror(&self.opts.topic_prefix, &msg.payload)
            && !self.out.send(m)
        {
            return false;
        }
        self.out.send_row(ticket, msg)
    }

    /// Makes a stored evidence JPEG small enough for the packet limit, stores it again
    /// and hands it over; a dead letter if it cannot be made small enough.
    pub(super) async fn refit(&mut self, mut row: Pending) {
        let limit = self.limit.bytes();
        let overhead = packet_size(
            self.opts.protocol,
            row.topic.len(),
            0,
            Qos::AtLeastOnce,
            Meta::JPEG,
        );
        let budget = limit.saturating_sub(overhead);
        let quality = self.opts.evidence_quality;
        let (seq, before) = (row.seq, row.payload.len());
        let stored = std::mem::take(&mut row.payload);
        let refitted =
            tokio::task::spawn_blocking(move || crate::evidence::refit(&stored, quality, budget))
                .await;
        let pos = Position {
            seq,
            part: Part::Evidence,
        };
        match refitted {
            Ok(Ok(jpeg)) => {
                match self.outbox.replace_evidence(seq, &jpeg) {
                    Ok(_) => {
                        tracing::info!(
                            seq,
                            before,
                            after = jpeg.len(),
                            "evidence made smaller to fit the broker's packet limit"
                        )
                    }
                    // Published as it is now; made smaller again if it must go out again.
                    Err(e) => tracing::error!(error = %e, seq, "cannot store the smaller evidence"),
                }
                row.payload = jpeg;
                if self.hand(row) {
                    self.refusals.handed(pos);
                }
            }
            Ok(Err(e)) => self.dead_letter(pos, &e.to_string()),
            Err(e) => self.dead_letter(pos, &format!("making it smaller failed: {e}")),
        }
    }

    /// Moves the row at `pos` to the dead letters and announces it.
    fn dead_letter(&mut self, pos: Position, reason: &str) {
        self.refusals.forget(pos);
        match self.outbox.dead_letter(pos, reason) {
            Ok(Some(d)) => {
                tracing::error!(seq = d.seq, id = %d.id, part = part_name(d.part), bytes = d.bytes, reason, "message moved to the dead letters: the broker will not take it");
                self.report.dead_lettered += 1;
                self.alerts.raise(
                    "dead_letter",
                    serde_json::json!({
                        "seq": d.seq,
                        "id": d.id,
                        "part": part_name(d.part),
                        "topic": d.topic,
                        "bytes": d.bytes,
                        "reason": d.reason,
                        "dead_lettered_total": self.outbox.dead_lettered_total().unwrap_or(0),
                    }),
                );
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, seq = pos.seq, "cannot move a message to the dead letters")
            }
        }
    }

    /// The broker answered `pkid` in `epoch` with reason `code`.
    pub(super) fn puback(&mut self, epoch: u64, pkid: u16, code: u8) {
        match self.out.window.puback(epoch, pkid, code) {
            Acked::Row(row) => self.acknowledged(row),
            Acked::Refused { row, code } => self.refused(row, code),
            Acked::Other if code >= crate::mqtt::window::REFUSED => {
                tracing::warn!(
                    code,
                    reason = link::reason_name(code),
                    "the broker refused a status or command message"
                );
            }
            Acked::Other => {}
            Acked::Unknown => tracing::debug!(epoch, pkid, "PUBACK for no publish in flight"),
        }
    }

    /// The broker refused a row: it is tried again later, or is a dead letter.
    fn refused(&mut self, row: Row, code: u8) {
        let pos = row.pos;
        let reason = format!(
            "refused by the broker: {} (0x{code:02x})",
            link::reason_name(code)
        );
        match self.refusals.refused(pos, Instant::now()) {
            Verdict::RetryAt(at) => {
                let wait = at.saturating_duration_since(Instant::now());
                tracing::warn!(
                    seq = pos.seq,
                    part = part_name(pos.part),
                    reason,
                    retry_in_s = wait.as_secs_f64(),
                    "the broker refused a stored message; it is kept and tried again"
                );
            }
            Verdict::DeadLetter { refusals } => {
                self.dead_letter(pos, &format!("{reason}, {refusals} times"));
            }
        }
    }

    /// The broker has a stored message: delete it; for an event, count it and its latency.
    fn acknowledged(&mut self, row: Row) {
        let seq = row.pos.seq;
        self.refusals.forget(row.pos);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limit_is_the_configured_one_the_brokers_or_the_default() {
        let mut l = PacketLimit::new(None);
        assert_eq!(l.bytes(), DEFAULT_MAX_PACKET);
        assert!(l.broker_says(Some(30_000)));
        assert_eq!(l.bytes(), 30_000);
        assert!(!l.broker_says(Some(30_000)));
        assert!(l.broker_says(None));
        assert_eq!(l.bytes(), DEFAULT_MAX_PACKET);
        let mut l = PacketLimit::new(Some(128_000));
        assert_eq!(l.bytes(), 128_000);
        assert!(!l.broker_says(Some(1 << 20)), "the smaller one holds");
        assert!(l.broker_says(Some(64_000)));
        assert_eq!(l.bytes(), 64_000);
    }
}
