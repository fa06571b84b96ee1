//! A test bench for the window: a model of the MQTT client's packet-id
//! handling (request queue, ids cycling 1..=max, a colliding publish held,
//! everything forgotten when the connection drops), the link's gate, an
//! in-memory outbox and a broker that acknowledges whatever packet id the
//! test says. Every PUBACK is checked against what the client really wrote
//! with that packet id.
//!
//! Scripts are written as `"store 6; up; fill; write 4; ack 1; down"`:
//!
//! | step            | what happens |
//! |-----------------|--------------|
//! | `store N`       | N events are committed (every other one with its evidence) |
//! | `up`, `down`    | a ConnAck; the connection drops (a new epoch) |
//! | `fill`          | the publisher hands rows over while the window has room |
//! | `send NAME`     | a QoS 1 message that is not a row (status, alert, command result, snapshot); held by its owner while the link is down |
//! | `stats`         | a QoS 0 message; skipped while the link is down |
//! | `flush`         | held messages are handed over |
//! | `write N`, `write` | the client writes N (all) requests it may take |
//! | `ack P`         | the broker acknowledges packet id P |
//! | `ack`, `ack rev`| the broker acknowledges everything in flight, lowest (highest) id first |
//! | `refuse P`      | the broker refuses packet id P (MQTT 5, reason 0x87): the packet id is free again, a publish held on it stays held (as rumqttc does) |
//! | `retry`         | the publisher hands every refused row again (while the window has room) |
//!
//! A publish held on a packet id that was refused is never released: rumqttc
//! drops the connection when its pings find it still held; delivering
//! whatever is left does the same.

use std::collections::{BTreeSet, HashMap, VecDeque};

use super::*;
use crate::outbox::Part;

/// What the model client was handed: a row, or another message by name.
#[derive(Debug, Clone, PartialEq)]
pub enum Sent {
    Row(Position),
    Other(String, Qos),
}

impl Sent {
    fn qos(&self) -> Qos {
        match self {
            Sent::Row(_) => Qos::AtLeastOnce,
            Sent::Other(_, q) => *q,
        }
    }
}

/// rumqttc as far as packet ids go.
pub struct Client {
    /// Highest packet id; ids go 1, 2, …, max, 1, …
    max: u16,
    last_pkid: u16,
    /// Requests not yet taken.
    pub channel: VecDeque<Sent>,
    /// Written, awaiting PUBACK.
    pub outgoing: HashMap<u16, Sent>,
    /// A publish whose packet id was still in flight, held (nothing else is taken meanwhile).
    collision: Option<(u16, Sent)>,
}

impl Client {
    fn new(max: u16) -> Self {
        Self {
            max,
            last_pkid: 0,
            channel: VecDeque::new(),
            outgoing: HashMap::new(),
            collision: None,
        }
    }

    fn next_pkid(&mut self) -> u16 {
        self.last_pkid = self.last_pkid % self.max + 1;
        self.last_pkid
    }

    /// Takes the next request, if it may; `Some(pkid)` when it reports a publish.
    fn take(&mut self) -> Option<Option<u16>> {
        if self.collision.is_some() || self.outgoing.len() >= self.max as usize {
            return None;
        }
        let sent = self.channel.pop_front()?;
        if sent.qos() == Qos::AtMostOnce {
            return Some(Some(0));
        }
        let pkid = self.next_pkid();
        if self.outgoing.contains_key(&pkid) {
            self.collision = Some((pkid, sent));
            return Some(None);
        }
        self.outgoing.insert(pkid, sent);
        Some(Some(pkid))
    }

    /// The broker refused `pkid`: what it was. A publish held on it stays held.
    fn refuse(&mut self, pkid: u16) -> Sent {
        self.outgoing
            .remove(&pkid)
            .expect("the broker refuses what it got")
    }

    /// The broker acknowledged `pkid`: what it was, and the held publish now written, if any.
    fn ack(&mut self, pkid: u16) -> (Sent, Option<u16>) {
        let sent = self
            .outgoing
            .remove(&pkid)
            .expect("the broker acks what it got");
        let released = match self.collision.take() {
            Some((p, held)) if p == pkid => {
                self.outgoing.insert(p, held);
                Some(p)
            }
            other => {
                self.collision = other;
                None
            }
        };
        (sent, released)
    }

    /// The connection dropped: the requests in the channel and in flight are forgotten.
    fn drop_connection(&mut self) {
        self.channel.clear();
        self.outgoing.clear();
        self.collision = None;
    }
}

/// The publisher's side, the client, the outbox and the link, in one.
pub struct Sim {
    pub window: Window,
    pub client: Client,
    /// Stored rows.
    pub outbox: BTreeSet<Position>,
    next_seq: u64,
    /// The link's epoch and whether it is connected (the gate).
    pub epoch: u64,
    connected: bool,
    /// How often each row was acknowledged.
    pub delivered: HashMap<Position, u32>,
    /// Messages the link refused, kept by their owner to send when it is up.
    pub held: Vec<String>,
    /// Non-row QoS 1 messages acknowledged, by name.
    pub others_acked: Vec<String>,
    /// Rows the broker refused, still stored, to hand again.
    pub refused: Vec<Position>,
}

pub fn row(pos: Position) -> Row {
    Row {
        pos,
        camera: Some("gate".into()),
        captured_at: None,
    }
}

impl Sim {
    pub fn new(max_inflight: usize, max_pkid: u16) -> Self {
        Self {
            window: Window::new(max_inflight),
            client: Client::new(max_pkid),
            outbox: BTreeSet::new(),
            next_seq: 1,
            epoch: 0,
            connected: false,
            delivered: HashMap::new(),
            held: Vec::new(),
            others_acked: Vec::new(),
            refused: Vec::new(),
        }
    }

    /// Stores `n` events, every other one with its evidence.
    pub fn store(&mut self, n: usize) {
        for _ in 0..n {
            let seq = self.next_seq;
            self.next_seq += 1;
            self.outbox.insert(Position {
                seq,
                part: Part::Event,
            });
            if seq.is_multiple_of(2) {
                self.outbox.insert(Position {
                    seq,
                    part: Part::Evidence,
                });
            }
        }
    }

    pub fn up(&mut self) {
        self.connected = true;
        self.window.link_up(self.epoch);
    }

    pub fn down(&mut self) {
        self.connected = false;
        self.epoch += 1;
        self.client.drop_connection();
        self.window.link_down(self.epoch);
    }

    /// The link's gate: the window's epoch is the connected one.
    fn gate_open(&self) -> bool {
        self.connected && self.window.is_up() && self.window.epoch() == self.epoch
    }

    pub fn fill(&mut self) {
        while let Some(f) = self.window.fetch() {
            // Refused rows wait for their retry: passed over.
            let refused = self.refused.clone();
            let rows: Vec<Position> = self
                .outbox
                .iter()
                .filter(|p| **p > f.after)
                .take(f.limit)
                .copied()
                .collect();
            let waiting: Vec<Position> = rows
                .iter()
                .copied()
                .take_while(|p| refused.contains(p))
                .collect();
            if let Some(last) = waiting.last() {
                if !self.gate_open() {
                    return;
                }
                self.window.skip_to(*last);
                continue;
            }
            let rows: Vec<Position> = rows
                .into_iter()
                .take_while(|p| !refused.contains(p))
                .collect();
            if rows.is_empty() || !self.gate_open() {
                return;
            }
            for pos in rows {
                self.client.channel.push_back(Sent::Row(pos));
                self.window.handed(Item::Row(row(pos)));
            }
        }
    }

    /// Publishes a message that is not a row. While the link is down, QoS 1 messages are held
    /// by their owner (command results) and QoS 0 ones skipped (stats).
    pub fn send(&mut self, name: &str, qos: Qos) {
        if !self.gate_open() {
            if qos == Qos::AtLeastOnce {
                self.held.push(name.to_string());
            }
            return;
        }
        self.client
            .channel
            .push_back(Sent::Other(name.to_string(), qos));
        self.window.handed(Item::Other(qos));
    }

    /// The publisher hands refused rows again, oldest first, while the window has room.
    pub fn retry(&mut self) {
        while self.gate_open() && self.window.has_room() && !self.refused.is_empty() {
            let pos = self.refused.remove(0);
            self.client.channel.push_back(Sent::Row(pos));
            self.window.handed(Item::Row(row(pos)));
        }
    }

    /// The broker refuses `pkid`: the window must name the row and keep it stored.
    pub fn refuse(&mut self, pkid: u16) {
        let sent = self.client.refuse(pkid);
        match (&sent, self.window.puback(self.epoch, pkid, 0x87)) {
            (Sent::Row(pos), Acked::Refused { row: r, code: 0x87 }) if r.pos == *pos => {
                assert!(self.outbox.contains(pos), "a refused row stays stored");
                self.refused.push(*pos);
                self.refused.sort();
            }
            (Sent::Other(_, Qos::AtLeastOnce), Acked::Other) => {}
            (sent, acked) => panic!("refused {pkid} is {sent:?}, the window says {acked:?}"),
        }
    }

    fn flush_held(&mut self) {
        for name in std::mem::take(&mut self.held) {
            self.send(&name, Qos::AtLeastOnce);
        }
    }

    /// The client writes up to `n` publishes.
    pub fn write(&mut self, n: usize) {
        for _ in 0..n {
            match self.client.take() {
                Some(Some(pkid)) => self
                    .window
                    .published(self.epoch, pkid)
                    .expect("reports match tickets"),
                Some(None) => {}
                None => return,
            }
        }
    }

    /// The broker acknowledges `pkid`: the window must name what the client wrote with it.
    pub fn ack(&mut self, pkid: u16) {
        let (sent, released) = self.client.ack(pkid);
        match (&sent, self.window.puback(self.epoch, pkid, 0)) {
            (Sent::Row(pos), Acked::Row(r)) if r.pos == *pos => {
                self.outbox.remove(pos);
                *self.delivered.entry(*pos).or_default() += 1;
            }
            (Sent::Other(name, Qos::AtLeastOnce), Acked::Other) => {
                self.others_acked.push(name.clone())
            }
            (sent, acked) => panic!("PUBACK {pkid} is for {sent:?}, the window says {acked:?}"),
        }
        if let Some(p) = released {
            self.window
                .published(self.epoch, p)
                .expect("a held publish is reported when released");
        }
    }

    /// Acknowledges everything in flight, lowest packet id first or last.
    pub fn ack_all(&mut self, reversed: bool) {
        let mut ids: Vec<u16> = self.client.outgoing.keys().copied().collect();
        ids.sort_unstable();
        if reversed {
            ids.reverse();
        }
        for pkid in ids {
            self.ack(pkid);
        }
    }

    /// One step of a script (see the module doc).
    pub fn step(&mut self, step: &str) {
        let (verb, arg) = step.split_once(' ').unwrap_or((step, ""));
        let n = || arg.parse::<usize>().unwrap_or(usize::MAX);
        match verb {
            "store" => self.store(n()),
            "up" => self.up(),
            "down" => self.down(),
            "fill" => self.fill(),
            "send" => self.send(arg, Qos::AtLeastOnce),
            "stats" => self.send("stats", Qos::AtMostOnce),
            "flush" => self.flush_held(),
            "write" => self.write(n()),
            "ack" if arg.is_empty() || arg == "rev" => self.ack_all(arg == "rev"),
            "ack" => self.ack(arg.parse().expect("ack takes a packet id")),
            "refuse" => self.refuse(arg.parse().expect("refuse takes a packet id")),
            "retry" => self.retry(),
            other => panic!("unknown step {other:?}"),
        }
    }

    /// Up, then fill, write and acknowledge until everything stored is delivered.
    pub fn deliver_all(&mut self) {
        if !self.connected {
            self.up();
        }
        self.flush_held();
        for _ in 0..1000 {
            if self.outbox.is_empty() && self.client.outgoing.is_empty() {
                return;
            }
            if self.client.collision.is_some() && self.client.outgoing.is_empty() {
                // Held on a refused packet id: rumqttc's pings give up on it.
                self.down();
                self.up();
            }
            self.retry();
            self.fill();
            self.write(usize::MAX);
            self.ack_all(false);
            self.write(usize::MAX);
        }
        panic!("not delivered: {:?}", self.outbox);
    }
}

/// Runs `script` (see the module doc), then delivers whatever is left.
pub fn run(max_inflight: usize, max_pkid: u16, script: &str) -> Sim {
    let mut sim = Sim::new(max_inflight, max_pkid);
    for step in script.split(';').map(str::trim).filter(|s| !s.is_empty()) {
        sim.step(step);
    }
    sim.deliver_all();
    sim
}
