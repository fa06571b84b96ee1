//! A broker that keeps closing the connection soon after accepting it: two
//! boxes with one client id taking the session from each other, an ACL that
//! disconnects on a denied publish, a packet over the broker's limit.
//!
//! Reconnects back off after failed attempts; a connection that the broker
//! accepted but that died within [`STABLE`] counts as a failed attempt too,
//! so such a broker is not hammered with a connection a second. After
//! [`UNSTABLE_AFTER`] such connections in a row the publisher raises an
//! alert naming the likely cause ([`likely_cause`]).

use std::time::{Duration, Instant};

use super::Cause;

/// A connection that lasted this long was a good one: the backoff starts over.
pub const STABLE: Duration = Duration::from_secs(10);

/// Connections in a row that died young before the node says the broker keeps disconnecting it.
pub const UNSTABLE_AFTER: u32 = 3;

/// How long connections last.
#[derive(Debug, Default)]
pub struct Stability {
    connected_at: Option<Instant>,
    short_in_a_row: u32,
}

/// What the end of a connection (or a failed attempt) means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    /// The connection was a good one: the backoff starts over.
    pub reset_backoff: bool,
    /// Accepted connections in a row that died within [`STABLE`].
    pub short_in_a_row: u32,
}

impl Stability {
    /// The broker accepted a connection at `now`.
    pub fn connected(&mut self, now: Instant) {
        self.connected_at = Some(now);
    }

    /// The connection, or an attempt to make one, failed at `now`.
    pub fn ended(&mut self, now: Instant) -> Ended {
        let reset_backoff = match self.connected_at.take() {
            Some(at) if now.saturating_duration_since(at) >= STABLE => {
                self.short_in_a_row = 0;
                true
            }
            Some(_) => {
                self.short_in_a_row += 1;
                false
            }
            None => false,
        };
        Ended {
            reset_backoff,
            short_in_a_row: self.short_in_a_row,
        }
    }
}

/// What most likely makes the broker close the connection, for the alert and the log.
/// `largest` is the largest publish (bytes on the wire) written on the last connection.
pub fn likely_cause(cause: Cause, client_id: &str, largest: usize) -> String {
    match cause {
        Cause::SessionTakenOver => format!(
            "another client connects with the same client id {client_id:?}: two boxes with one [node] id or [mqtt] client_id"
        ),
        Cause::NotAuthorized => {
            "the broker says not authorized: check the credentials and its ACL for this node's topics".into()
        }
        Cause::PacketTooLarge => format!(
            "a packet of up to {largest} bytes is over the broker's size limit: set [mqtt] max_packet_bytes to the broker's limit"
        ),
        Cause::Other => format!(
            "the broker closes the connection without saying why (MQTT 3.1.1 cannot): another client with the same client id {client_id:?}, \
             an ACL that disconnects on a denied publish, or a packet over its size limit (largest sent: {largest} bytes; see [mqtt] max_packet_bytes)"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_that_die_young_count_as_failures() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut st = Stability::default();
        // (connected after, ended after, reset, short in a row); None: a failed attempt.
        let script = [
            (Some(0), 2, false, 1),
            (Some(3), 4, false, 2),
            (None, 5, false, 2),
            (Some(6), 7, false, 3),
            (Some(8), 8 + 10, true, 0),
            (Some(20), 25, false, 1),
            (None, 26, false, 1),
        ];
        for (connected, ended, reset, short) in script {
            if let Some(c) = connected {
                st.connected(t0 + s(c));
            }
            assert_eq!(
                st.ended(t0 + s(ended)),
                Ended {
                    reset_backoff: reset,
                    short_in_a_row: short
                },
                "{connected:?} {ended}"
            );
        }
    }

    #[test]
    fn the_cause_names_what_to_check() {
        assert!(likely_cause(Cause::SessionTakenOver, "sw-pole-1", 0).contains("\"sw-pole-1\""));
        assert!(likely_cause(Cause::PacketTooLarge, "x", 180_000).contains("180000 bytes"));
        assert!(likely_cause(Cause::PacketTooLarge, "x", 1).contains("max_packet_bytes"));
        let other = likely_cause(Cause::Other, "sw-pole-1", 42);
        assert!(
            other.contains("same client id") && other.contains("42 bytes"),
            "{other}"
        );
    }
}
