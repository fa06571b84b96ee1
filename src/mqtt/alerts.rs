//! Alerts that are not drop counts (those coalesce, in `status`): each is a
//! JSON document on `{prefix}/{node}/alerts`, raised once, logged at once and
//! published (QoS 1) as soon as the link is up. At most [`MAX_WAITING`] wait;
//! beyond that the oldest go (they were logged).

use std::collections::VecDeque;

use serde_json::Value;

use super::PublisherOptions;
use super::link::{Message, Outlet};
use crate::clock::SharedClock;
use crate::event::rfc3339;

/// Alerts kept while the link is down, at most.
pub const MAX_WAITING: usize = 64;

pub struct Alerts {
    clock: SharedClock,
    waiting: VecDeque<Vec<u8>>,
}

impl Alerts {
    pub fn new(clock: SharedClock) -> Self {
        Self {
            clock,
            waiting: VecDeque::new(),
        }
    }

    /// Raises alert `name` with `fields` (an object); `schema`, `alert` and `ts` are added.
    pub fn raise(&mut self, name: &str, fields: Value) {
        let mut doc = match fields {
            Value::Object(m) => m,
            _ => serde_json::Map::new(),
        };
        doc.insert("schema".into(), crate::wire::ALERT.into());
        doc.insert("alert".into(), name.into());
        doc.insert("ts".into(), rfc3339(self.clock.wall()).into());
        self.waiting
            .push_back(serde_json::to_vec(&doc).expect("alerts encode"));
        while self.waiting.len() > MAX_WAITING {
            self.waiting.pop_front();
        }
    }

    /// Whether some alert is not published yet.
    pub fn pending(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Publishes the waiting alerts, oldest first, while the link takes them.
    pub fn flush(&mut self, out: &mut Outlet, opts: &PublisherOptions) {
        while let Some(payload) = self.waiting.front() {
            if !out.send(Message::json(opts.alerts_topic(), payload.clone(), false)) {
                return;
            }
            self.waiting.pop_front();
        }
    }
}
