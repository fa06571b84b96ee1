//! The life of one incident: a condition must hold for `min_duration` before
//! it starts, updates are throttled, it ends after the condition has been
//! gone for `clear` (hysteresis), and no new incident starts during
//! `cooldown`. One stable incident id from start to end.

use std::time::{Duration, SystemTime};

/// An `update_interval` (seconds) for incidents that send no updates.
pub const NEVER: f64 = 1e9;

#[derive(Debug, Clone, Copy, Default)]
pub struct Timing {
    pub min_duration: Duration,
    pub clear: Duration,
    pub update_interval: Duration,
    pub cooldown: Duration,
}

impl Timing {
    pub fn secs(min_duration: f64, clear: f64, update_interval: f64, cooldown: f64) -> Self {
        let d = |s: f64| Duration::from_secs_f64(s.max(0.0));
        Self {
            min_duration: d(min_duration),
            clear: d(clear),
            update_interval: d(update_interval),
            cooldown: d(cooldown),
        }
    }
}

/// An open incident.
#[derive(Debug, Clone)]
pub struct Active {
    pub incident: String,
    pub started_at: SystemTime,
    pub started_pts: Duration,
    clear_since: Option<Duration>,
    last_update: Duration,
}

/// What a step decided.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    None,
    Start,
    Update,
    /// The incident ended.
    End(Ended),
}

/// An incident that just ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Ended {
    pub incident: String,
    pub started_at: SystemTime,
    /// From the start to the moment the condition went away.
    pub duration: Duration,
}

#[derive(Debug, Clone)]
enum State {
    Idle {
        pending_since: Option<Duration>,
        cooldown_until: Option<Duration>,
    },
    Active(Active),
}

#[derive(Debug, Clone)]
pub struct Lifecycle {
    timing: Timing,
    state: State,
}

impl Lifecycle {
    pub fn new(timing: Timing) -> Self {
        Self {
            timing,
            state: State::Idle {
                pending_since: None,
                cooldown_until: None,
            },
        }
    }

    /// The open incident, if any.
    pub fn active(&self) -> Option<&Active> {
        match &self.state {
            State::Active(a) => Some(a),
            State::Idle { .. } => None,
        }
    }

    /// Whether nothing is open, pending or cooling down.
    pub fn is_quiet(&self, pts: Duration) -> bool {
        matches!(
            self.state,
            State::Idle { pending_since: None, cooldown_until } if cooldown_until.is_none_or(|u| pts >= u)
        )
    }

    /// One frame: does the condition hold, and has what the incident reports changed
    /// since the last event (an update is sent only then, at most every `update_interval`)?
    /// `pending_from` lets a rule date the condition back (e.g. to when an item appeared).
    pub fn step(
        &mut self,
        pts: Duration,
        at: SystemTime,
        holds: bool,
        changed: bool,
        pending_from: Option<Duration>,
    ) -> Step {
        let t = self.timing;
        match &mut self.state {
            State::Idle {
                pending_since,
                cooldown_until,
            } => {
                if cooldown_until.is_some_and(|u| pts < u) {
                    *pending_since = None;
                    return Step::None;
                }
                *cooldown_until = None;
                if !holds {
                    *pending_since = None;
                    return Step::None;
                }
                let since = *pending_since.get_or_insert(pending_from.unwrap_or(pts).min(pts));
                if pts.saturating_sub(since) < t.min_duration {
                    return Step::None;
                }
                let started_at = at.checked_sub(pts - since).unwrap_or(at);
                self.state = State::Active(Active {
                    incident: uuid::Uuid::now_v7().to_string(),
                    started_at,
                    started_pts: since,
                    clear_since: None,
                    last_update: pts,
                });
                Step::Start
            }
            State::Active(a) => {
                if holds {
                    a.clear_since = None;
                    if changed && pts.saturating_sub(a.last_update) >= t.update_interval {
                        a.last_update = pts;
                        return Step::Update;
                    }
                    return Step::None;
                }
                let since = *a.clear_since.get_or_insert(pts);
                if pts.saturating_sub(since) < t.clear {
                    return Step::None;
                }
                self.end_at(pts, since)
            }
        }
    }

    /// Ends the open incident now (schedule closed, stream ended); `None` if none is open.
    pub fn close(&mut self, pts: Duration) -> Option<Step> {
        match &self.state {
            State::Active(_) => Some(self.end_at(pts, pts)),
            State::Idle { .. } => {
                self.state = State::Idle {
                    pending_since: None,
                    cooldown_until: None,
                };
                None
            }
        }
    }

    fn end_at(&mut self, pts: Duration, gone_since: Duration) -> Step {
        let State::Active(a) = std::mem::replace(
            &mut self.state,
            State::Idle {
                pending_since: None,
                cooldown_until: Some(pts + self.timing.cooldown),
            },
        ) else {
            unreachable!("end_at is only called on an active incident")
        };
        Step::End(Ended {
            incident: a.incident,
            started_at: a.started_at,
            duration: gone_since.saturating_sub(a.started_pts),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(l: &mut Lifecycle, frames: &[(bool, bool)]) -> Vec<(u64, &'static str)> {
        let mut out = Vec::new();
        for (i, &(holds, changed)) in frames.iter().enumerate() {
            let pts = Duration::from_secs(i as u64);
            let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1000) + pts;
            let name = match l.step(pts, at, holds, changed, None) {
                Step::None => continue,
                Step::Start => "start",
                Step::Update => "update",
                Step::End(_) => "end",
            };
            out.push((i as u64, name));
        }
        out
    }

    const Y: (bool, bool) = (true, false);
    const C: (bool, bool) = (true, true);
    const N: (bool, bool) = (false, false);

    #[test]
    fn start_needs_min_duration_and_end_needs_clear() {
        let mut l = Lifecycle::new(Timing::secs(2.0, 3.0, 0.0, 0.0));
        // Held from 0, starts at 2; gaps of < 3 s don't end it; ends 3 s after 6.
        let got = run(&mut l, &[Y, Y, Y, N, N, Y, N, N, N, N]);
        assert_eq!(got, vec![(2, "start"), (9, "end")]);
    }

    #[test]
    fn a_short_spike_never_starts() {
        let mut l = Lifecycle::new(Timing::secs(2.0, 3.0, 0.0, 0.0));
        assert!(run(&mut l, &[Y, Y, N, Y, N, Y, Y, N]).is_empty());
    }

    #[test]
    fn updates_only_on_change_and_throttled() {
        let mut l = Lifecycle::new(Timing::secs(0.0, 1.0, 3.0, 0.0));
        let got = run(&mut l, &[Y, C, C, C, C, Y, Y, C, C]);
        assert_eq!(got, vec![(0, "start"), (3, "update"), (7, "update")]);
    }

    #[test]
    fn cooldown_blocks_a_new_start() {
        let mut l = Lifecycle::new(Timing::secs(0.0, 1.0, 0.0, 4.0));
        // Start 0, end 2 (gone since 1); cooldown until 6: the start at 6, not 3.
        let got = run(&mut l, &[Y, N, N, Y, Y, Y, Y, Y]);
        assert_eq!(got, vec![(0, "start"), (2, "end"), (6, "start")]);
    }

    #[test]
    fn one_id_per_incident_and_start_dated_back() {
        let mut l = Lifecycle::new(Timing::secs(2.0, 0.0, 0.0, 0.0));
        let at = |s: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let d = Duration::from_secs;
        assert_eq!(l.step(d(10), at(10), true, false, Some(d(9))), Step::None);
        assert_eq!(l.step(d(11), at(11), true, false, None), Step::Start);
        let a = l.active().unwrap().clone();
        assert_eq!(a.started_at, at(9));
        let Step::End(end) = l.step(d(12), at(12), false, false, None) else {
            panic!("expected an end")
        };
        assert_eq!(end.incident, a.incident);
        assert_eq!(end.duration, d(3));
        assert!(l.close(d(13)).is_none());
    }
}
