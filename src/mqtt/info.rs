//! The retained `{prefix}/{node}/info` message: sent on every connection (a
//! restarted broker may have lost it) and whenever the node hands over a new
//! one (after `reload`).
//!
//! In: the node's latest info document through a watch channel ([`InfoFeed`]).
//! Out: one retained QoS 1 message through the [`Outlet`].

use std::sync::Arc;

use super::PublisherOptions;
use super::link::{Message, Outlet};

/// The node's latest info document, JSON-encoded; `None` until it has one.
pub type InfoFeed = tokio::sync::watch::Receiver<Option<Arc<Vec<u8>>>>;

/// Whether the current connection has the latest info.
#[derive(Debug, Default)]
pub(super) struct InfoState {
    sent: bool,
    /// The publisher's own receiver: it remembers which document went out.
    feed: Option<InfoFeed>,
}

impl InfoState {
    /// A new connection: the info goes out again.
    pub fn connected(&mut self) {
        self.sent = false;
    }

    /// Sends the info when this connection lacks it or the node made a new one.
    pub fn publish(&mut self, out: &mut Outlet, opts: &PublisherOptions) {
        let Some(source) = &opts.info else { return };
        if !out.is_up() {
            return;
        }
        let feed = self.feed.get_or_insert_with(|| source.clone());
        if self.sent && !feed.has_changed().unwrap_or(false) {
            return;
        }
        let Some(doc) = feed.borrow_and_update().clone() else {
            return;
        };
        self.sent = out.send(Message::json(opts.info_topic(), doc.to_vec(), true));
    }
}
