//! Proof that the stages a node cannot live without are making progress.
//!
//! In: each watched stage's [`Beat`]: the stage itself counts the units of
//! work it finished (an inference run, an event committed) and says how much
//! work waits for it. Out: at each check, the stages that are stuck.
//!
//! A stage is *stuck* when work waited for it at the last check and still
//! does now, and it finished nothing in between. An idle stage is never
//! stuck, and nothing here runs on a timer of its own: a wedged stage stops
//! its own beat, so the service manager's watchdog pings stop with it (see
//! `node::service`). Checks come at a steady pace (half the watchdog
//! interval), so one unit of work may take up to that long before a check
//! calls the stage stuck, and up to the whole interval before the service
//! manager acts.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// One stage's progress: written by the stage, read by the watchdog.
#[derive(Debug, Default)]
pub struct Beat {
    /// Units of work finished so far.
    done: AtomicU64,
    /// Units of work waiting or in progress now (a gauge).
    waiting: AtomicU64,
}

/// What a [`Beat`] said when it was read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sample {
    pub done: u64,
    pub waiting: u64,
}

impl Beat {
    /// The stage finished `n` units of work.
    pub fn done(&self, n: u64) {
        self.done.fetch_add(n, Relaxed);
    }

    /// `n` units of work wait for the stage now (queued or in progress).
    pub fn waiting(&self, n: u64) {
        self.waiting.store(n, Relaxed);
    }

    pub fn sample(&self) -> Sample {
        // `waiting` first: work that arrives and is finished between the two reads
        // shows as progress, never as work without progress.
        let waiting = self.waiting.load(Relaxed);
        Sample {
            done: self.done.load(Relaxed),
            waiting,
        }
    }
}

/// How to read one watched stage.
pub type Probe = Arc<dyn Fn() -> Sample + Send + Sync>;

/// The watched stages, by name.
#[derive(Clone, Default)]
pub struct Beats {
    stages: Vec<(&'static str, Probe)>,
}

impl Beats {
    /// Watches a stage whose [`Beat`] is kept by the stage itself.
    pub fn watch(&mut self, name: &'static str, beat: Arc<Beat>) {
        self.watch_with(name, Arc::new(move || beat.sample()));
    }

    /// Watches a stage read through `probe` (when its backlog is seen from outside it).
    pub fn watch_with(&mut self, name: &'static str, probe: Probe) {
        self.stages.push((name, probe));
    }

    /// Every stage, read now.
    pub fn sample(&self) -> Vec<(&'static str, Sample)> {
        self.stages.iter().map(|(n, p)| (*n, p())).collect()
    }
}

/// Judges successive samples of every watched stage (pure; the caller keeps the pace).
#[derive(Debug, Default)]
pub struct Pulse {
    last: Vec<(&'static str, Sample)>,
}

impl Pulse {
    /// The stages stuck since the last check: work waited then and waits now, and
    /// nothing was finished in between. A stage seen for the first time is not stuck.
    pub fn check(&mut self, now: Vec<(&'static str, Sample)>) -> Vec<&'static str> {
        let stuck = now
            .iter()
            .filter(|(name, s)| {
                self.last.iter().any(|(n, before)| {
                    n == name && before.waiting > 0 && s.waiting > 0 && s.done == before.done
                })
            })
            .map(|(name, _)| *name)
            .collect();
        self.last = now;
        stuck
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(done: u64, waiting: u64) -> Sample {
        Sample { done, waiting }
    }

    #[test]
    fn a_stage_is_stuck_only_with_work_and_no_progress_between_two_checks() {
        for (before, now, stuck, why) in [
            (s(5, 1), s(6, 1), false, "finished work while more waited"),
            (s(5, 0), s(5, 0), false, "idle"),
            (s(5, 0), s(5, 3), false, "work just arrived"),
            (
                s(5, 2),
                s(5, 0),
                false,
                "work went away (shed or answered) without a run",
            ),
            (
                s(5, 1),
                s(5, 1),
                true,
                "work waited at both checks, nothing done",
            ),
            (
                s(5, 4),
                s(5, 1),
                true,
                "queue shrank by shedding, nothing done",
            ),
            (s(5, 1), s(9, 0), false, "caught up"),
        ] {
            let mut pulse = Pulse::default();
            assert!(pulse.check(vec![("detector", before)]).is_empty(), "{why}");
            let got = pulse.check(vec![("detector", now)]);
            assert_eq!(
                got.contains(&"detector"),
                stuck,
                "{why}: {before:?} → {now:?}"
            );
        }
    }

    #[test]
    fn each_stage_is_judged_on_its_own() {
        let mut pulse = Pulse::default();
        pulse.check(vec![("detector", s(1, 1)), ("publisher", s(1, 1))]);
        let stuck = pulse.check(vec![("detector", s(2, 1)), ("publisher", s(1, 1))]);
        assert_eq!(stuck, vec!["publisher"]);
        // Progress again: no longer stuck.
        let stuck = pulse.check(vec![("detector", s(3, 0)), ("publisher", s(2, 1))]);
        assert!(stuck.is_empty());
    }

    #[test]
    fn a_stage_first_seen_is_not_stuck() {
        let mut pulse = Pulse::default();
        pulse.check(vec![("detector", s(0, 1))]);
        let stuck = pulse.check(vec![("detector", s(1, 1)), ("publisher", s(0, 9))]);
        assert!(stuck.is_empty());
    }

    #[test]
    fn beats_are_read_through_their_probes() {
        let beat = Arc::new(Beat::default());
        let mut beats = Beats::default();
        beats.watch("detector", beat.clone());
        beats.watch_with("publisher", Arc::new(|| s(7, 2)));
        beat.waiting(3);
        beat.done(2);
        beat.done(1);
        assert_eq!(
            beats.sample(),
            vec![("detector", s(3, 3)), ("publisher", s(7, 2))]
        );
    }
}
