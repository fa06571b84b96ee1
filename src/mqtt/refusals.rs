//! Rows the broker refused (MQTT 5 PUBACK reason ≥ 0x80: not authorized,
//! quota exceeded, payload format invalid, …). No I/O: the publisher asks
//! what to do and carries it out.
//!
//! A refusal is not a delivery: the row stays in the outbox and is tried
//! again after a backoff (doubling from `min` up to `max`, with jitter),
//! while the rows after it go on. The delivery window passes refused rows
//! over; the publisher hands each one again when its wait is over. After
//! `max_refusals` refusals of one row it is a dead letter: moved out of the
//! queue, with an alert naming the reason. Counts are kept for the run (a
//! restart gives every row a fresh count).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::backoff::Backoff;
use crate::outbox::Position;

/// How refused rows are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub min: Duration,
    pub max: Duration,
    /// Refusals of one row before it becomes a dead letter.
    pub max_refusals: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            min: Duration::from_secs(5),
            max: Duration::from_secs(300),
            max_refusals: 5,
        }
    }
}

/// What to do with a row the broker just refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Try it again at this instant.
    RetryAt(Instant),
    /// Refused `max_refusals` times: move it to the dead letters.
    DeadLetter { refusals: u32 },
}

#[derive(Debug)]
struct Waiting {
    backoff: Backoff,
    /// When it may be handed again; `None`: handed, awaiting the broker's answer.
    due: Option<Instant>,
}

#[derive(Debug)]
pub struct Refusals {
    policy: RetryPolicy,
    rows: BTreeMap<Position, Waiting>,
}

impl Refusals {
    pub fn new(policy: RetryPolicy) -> Self {
        Self {
            policy,
            rows: BTreeMap::new(),
        }
    }

    /// The broker refused the row at `pos` at `now`.
    pub fn refused(&mut self, pos: Position, now: Instant) -> Verdict {
        let policy = self.policy;
        let w = self.rows.entry(pos).or_insert_with(|| Waiting {
            backoff: Backoff::new(policy.min, policy.max),
            due: None,
        });
        if w.backoff.attempts() + 1 >= policy.max_refusals {
            let refusals = w.backoff.attempts() + 1;
            self.rows.remove(&pos);
            return Verdict::DeadLetter { refusals };
        }
        let at = now + w.backoff.next_delay();
        w.due = Some(at);
        Verdict::RetryAt(at)
    }

    /// Whether the row at `pos` was refused and is not delivered yet: the window
    /// passes it over; it goes out again only through [`Refusals::due`].
    pub fn holds(&self, pos: Position) -> bool {
        self.rows.contains_key(&pos)
    }

    /// Refused rows whose wait is over at `now`, oldest first.
    pub fn due(&self, now: Instant) -> Vec<Position> {
        self.rows
            .iter()
            .filter(|(_, w)| w.due.is_some_and(|at| at <= now))
            .map(|(p, _)| *p)
            .collect()
    }

    /// The earliest instant a refused row is due, if one waits.
    pub fn next_due(&self) -> Option<Instant> {
        self.rows.values().filter_map(|w| w.due).min()
    }

    /// The row at `pos` was handed to the client again.
    pub fn handed(&mut self, pos: Position) {
        if let Some(w) = self.rows.get_mut(&pos) {
            w.due = None;
        }
    }

    /// The connection dropped: rows handed again and not answered are due again now.
    pub fn link_down(&mut self, now: Instant) {
        for w in self.rows.values_mut() {
            w.due.get_or_insert(now);
        }
    }

    /// The row at `pos` was delivered, moved to the dead letters or dropped: forget it.
    pub fn forget(&mut self, pos: Position) {
        self.rows.remove(&pos);
    }

    /// The outbox dropped every row up to `pos`.
    pub fn forget_up_to(&mut self, pos: Position) {
        self.rows.retain(|p, _| *p > pos);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Part;

    fn pos(seq: u64) -> Position {
        Position {
            seq,
            part: Part::Event,
        }
    }

    #[test]
    fn a_refused_row_waits_longer_each_time_then_is_a_dead_letter() {
        let policy = RetryPolicy {
            min: Duration::from_secs(1),
            max: Duration::from_secs(4),
            max_refusals: 4,
        };
        let mut r = Refusals::new(policy);
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut now = t0;
        // Nominal waits 1, 2, 4 s (each drawn between half and all of it).
        for nominal in [1, 2, 4] {
            let Verdict::RetryAt(at) = r.refused(pos(3), now) else {
                panic!("retried")
            };
            assert!(
                at >= now + s(nominal) / 2 && at <= now + s(nominal),
                "{nominal}"
            );
            assert!(r.holds(pos(3)));
            assert_eq!(r.due(at - Duration::from_millis(1)), vec![]);
            assert_eq!(r.next_due(), Some(at));
            assert_eq!(r.due(at), vec![pos(3)]);
            r.handed(pos(3));
            assert_eq!(r.due(at + s(100)), vec![], "out again: not due twice");
            now = at;
        }
        assert_eq!(r.refused(pos(3), now), Verdict::DeadLetter { refusals: 4 });
        assert!(!r.holds(pos(3)) && r.next_due().is_none());
    }

    #[test]
    fn rows_handed_again_are_due_after_a_reconnect_and_forgotten_when_delivered() {
        let mut r = Refusals::new(RetryPolicy::default());
        let t0 = Instant::now();
        for seq in [5, 2, 9] {
            r.refused(pos(seq), t0);
        }
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(r.due(later), vec![pos(2), pos(5), pos(9)], "oldest first");
        r.handed(pos(2));
        r.handed(pos(5));
        r.link_down(later);
        assert_eq!(r.due(later), vec![pos(2), pos(5), pos(9)]);
        r.forget(pos(5));
        r.forget_up_to(pos(2));
        assert_eq!(r.due(later), vec![pos(9)]);
        assert!(!r.holds(pos(2)) && r.holds(pos(9)));
    }
}
