//! The retained open-incident topics, `{prefix}/{node}/incidents/{incident}`:
//! each holds the latest `start` or `update` event of an incident that is
//! still open, and is cleared (an empty retained message) when it ends, so a
//! consumer that subscribes sees exactly the open incidents.
//!
//! The retained message is a mirror of an outbox row: it goes out on the same
//! connection just before the event it mirrors, every time that event is
//! published (first delivery and every redelivery). A broker handles one
//! connection's messages in order, so the event's PUBACK, which deletes the row,
//! also proves the mirror arrived: the open-incident topics are as durable as
//! the events. An `end` clears its topic just before the `end` event itself
//! goes out.
//!
//! In: an event row's JSON. Out: the mirror message. Pure.

use super::link::Message;
use crate::event::Phase;

/// `{prefix}/{node}/incidents/{incident}`.
pub fn topic(prefix: &str, node: &str, incident: &str) -> String {
    format!("{prefix}/{node}/incidents/{incident}")
}

/// The retained message that mirrors the event `payload` (its JSON as stored):
/// the event itself for `start`/`update`, an empty payload for `end`. `None` for
/// what cannot be read as an event (nothing to mirror).
pub(super) fn mirror(prefix: &str, payload: &[u8]) -> Option<Message> {
    #[derive(serde::Deserialize)]
    struct Head {
        node: String,
        incident: String,
        phase: Phase,
    }
    let head: Head = serde_json::from_slice(payload).ok()?;
    let body = match head.phase {
        Phase::Start | Phase::Update => payload.to_vec(),
        Phase::End => Vec::new(),
    };
    Some(Message::json(
        topic(prefix, &head.node, &head.incident),
        body,
        true,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::window::Qos;

    #[test]
    fn open_incidents_are_mirrored_and_ends_clear_them() {
        for (phase, mirrored) in [
            (Phase::Start, true),
            (Phase::Update, true),
            (Phase::End, false),
        ] {
            let mut e = crate::event::sample("e1", "inc-7");
            e.phase = phase;
            let payload = serde_json::to_vec(&e).unwrap();
            let m = mirror("sw", &payload).unwrap();
            assert_eq!(m.topic, "sw/n/incidents/inc-7");
            assert!(m.retain);
            assert_eq!(m.qos, Qos::AtLeastOnce);
            if mirrored {
                assert_eq!(m.payload, payload, "{phase:?}: the event itself");
            } else {
                assert!(m.payload.is_empty(), "an end clears the retained message");
            }
        }
    }

    #[test]
    fn what_is_not_an_event_is_not_mirrored() {
        for payload in [
            &b"not json"[..],
            &b"{}"[..],
            &br#"{"node": "n", "incident": "i", "phase": "gone"}"#[..],
        ] {
            assert!(mirror("sw", payload).is_none());
        }
    }
}
