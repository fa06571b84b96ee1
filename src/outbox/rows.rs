//! What goes into the outbox and what comes out: a camera's [`Handover`], and
//! the stored messages ([`Pending`]) in publishing order ([`Position`]).

use std::time::SystemTime;

use crate::event::Event;

/// An event as a camera hands it over.
#[derive(Debug, Clone)]
pub struct Handover {
    pub event: Event,
    /// The evidence JPEG (start events, when evidence is enabled).
    pub evidence: Option<Vec<u8>>,
    /// When the event's frame was captured, where that is wall-clock time (live and
    /// real-time sources): capture-to-publish latency is measured from it.
    pub captured_at: Option<SystemTime>,
}

impl From<Event> for Handover {
    fn from(event: Event) -> Self {
        Self {
            event,
            evidence: None,
            captured_at: None,
        }
    }
}

/// Which message of a stored event: the event (JSON) or, after it, its evidence (JPEG).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    #[default]
    Event,
    Evidence,
}

/// A message's place in publishing order: by `seq`, an event before its evidence.
/// The default comes before every stored message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    pub seq: u64,
    pub part: Part,
}

/// A message waiting for its PUBACK.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    /// The event's seq (its evidence has the same).
    pub seq: u64,
    pub part: Part,
    pub topic: String,
    pub payload: Vec<u8>,
    /// The camera of the event (events only).
    pub camera: Option<String>,
    /// Wall-clock capture time of the event's frame, when measured (events only).
    pub captured_at: Option<SystemTime>,
}

impl Pending {
    pub fn position(&self) -> Position {
        Position {
            seq: self.seq,
            part: self.part,
        }
    }
}
