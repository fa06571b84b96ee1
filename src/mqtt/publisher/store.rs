//! Committing handed-over events to the outbox, and what happens when the
//! outbox cannot be written (disk full, read-only file system, a lock held
//! past the busy timeout, a damaged file).
//!
//! An event whose commit fails is never dropped on the spot: it waits, in
//! hand-over order, in a bounded memory queue ([`Spill`]) and is committed
//! again after a backoff (and before any newer event; and at once when the
//! queue is full, before it drops anything). The first failure
//! raises an `outbox_error` alert; the stats count failures and show the
//! queue. Only when the queue is full is its oldest event dropped; its seq
//! is skipped when the outbox can be written again (so consumers see the
//! gap) and the drop counted and announced like the outbox limits' drops.
//! When commits succeed again an `outbox_recovered` alert says for how long
//! they failed and how many events were lost. A damaged file is moved aside
//! and replaced at once (`outbox_replaced`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::Publisher;
use crate::backoff::Backoff;
use crate::mqtt::status::StoreFigures;
use crate::outbox::{Dropped, Handover, OutboxError};

/// Default bound of the memory queue, events.
pub const DEFAULT_MEMORY_QUEUE: usize = 10_000;

/// Events waiting in memory while the outbox cannot be written.
pub(super) struct Spill {
    queue: VecDeque<Handover>,
    max: usize,
    /// Events dropped from the full queue whose seqs are not skipped yet.
    lost: u64,
    /// Events dropped from the queue in this failure (for the recovery alert).
    lost_in_failure: u64,
    /// Since when commits fail, and the last error.
    failing: Option<(Instant, String)>,
    /// Commits that failed in this run.
    errors_total: u64,
    backoff: Backoff,
    /// When to try committing again.
    next_try: Option<Instant>,
}

impl Spill {
    pub fn new(max: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            max: max.max(1),
            lost: 0,
            lost_in_failure: 0,
            failing: None,
            errors_total: 0,
            backoff: Backoff::new(Duration::from_millis(500), Duration::from_secs(15)),
            next_try: None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty() && self.lost == 0
    }

    pub fn next_try(&self) -> Option<Instant> {
        self.next_try
    }

    pub fn figures(&self) -> StoreFigures {
        StoreFigures {
            errors_total: self.errors_total,
            memory_queued: self.queue.len(),
            failing: self.failing.is_some(),
        }
    }

    /// Queues `ev` behind the others; the oldest goes if the queue is full.
    fn push(&mut self, ev: Handover) {
        self.queue.push_back(ev);
        if self.queue.len() > self.max
            && let Some(gone) = self.queue.pop_front()
        {
            self.lost += 1;
            self.lost_in_failure += 1;
            tracing::error!(event = %gone.event.id, camera = %gone.event.camera, "outbox failing and memory queue full: event dropped");
        }
    }

    /// The run ends: whatever is still in memory is lost (logged).
    pub fn give_up(&mut self) {
        if !self.queue.is_empty() || self.lost > 0 {
            tracing::error!(
                queued = self.queue.len(),
                dropped = self.lost,
                "the outbox could not be written until the end: events in memory are lost"
            );
        }
    }
}

impl Publisher {
    /// Stores `ev` (after anything waiting in memory).
    pub(super) fn commit(&mut self, ev: Handover) {
        if !self.spill.is_empty() {
            // Tried again when its wait is over, and before the full queue drops one.
            let full = self.spill.queue.len() >= self.spill.max;
            if full || self.spill.next_try.is_some_and(|t| t <= Instant::now()) {
                self.retry_spill();
            }
            if !self.spill.is_empty() {
                self.spill.push(ev);
                return;
            }
        }
        if let Err(e) = self.try_commit(&ev) {
            self.store_failed(&e);
            self.spill.push(ev);
        }
    }

    /// Commits one event (the caller keeps it if this fails).
    fn try_commit(&mut self, ev: &Handover) -> Result<(), OutboxError> {
        match self.outbox.store(ev, &self.opts.topic_prefix) {
            Ok(stored) => {
                self.report.committed += 1;
                (self.on_commit)(&stored);
                if self.outbox.over_capacity() {
                    self.enforce_limits();
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Commits what waits in memory, oldest first, until one fails.
    pub(super) fn retry_spill(&mut self) {
        self.spill.next_try = None;
        if self.spill.lost > 0 {
            match self.outbox.skip_seqs(self.spill.lost) {
                Ok(last_seq) => {
                    self.status.dropped(&Dropped {
                        count: self.spill.lost,
                        last_seq,
                        ..Dropped::default()
                    });
                    self.spill.lost = 0;
                }
                Err(e) => return self.store_failed(&e),
            }
        }
        while let Some(ev) = self.spill.queue.pop_front() {
            if let Err(e) = self.try_commit(&ev) {
                self.spill.queue.push_front(ev);
                return self.store_failed(&e);
            }
        }
        self.store_recovered();
    }

    /// A commit failed: alert once, replace a damaged file, try again after a backoff.
    fn store_failed(&mut self, e: &OutboxError) {
        self.spill.errors_total += 1;
        if e.is_damage() {
            match self.outbox.replace_damaged(e) {
                Ok(r) => {
                    self.alerts.raise(
                        "outbox_replaced",
                        serde_json::json!({
                            "error": r.error,
                            "moved_to": r.moved_to.display().to_string(),
                            "seq_from": r.seq_from,
                        }),
                    );
                    // Stored events went with the damaged file: start over from the new one.
                    let epoch = self.out.window.epoch();
                    if self.out.window.is_up() {
                        self.out.window.link_up(epoch);
                    }
                    self.spill.next_try = Some(Instant::now());
                    return;
                }
                Err(e) => tracing::error!(error = %e, "cannot replace the damaged outbox"),
            }
        }
        if self.spill.failing.is_none() {
            tracing::error!(error = %e, "outbox write failed: events wait in memory and are stored when it works again");
            self.alerts.raise(
                "outbox_error",
                serde_json::json!({
                    "error": e.to_string(),
                    "may_pass": e.may_pass(),
                    "memory_queue": self.spill.max,
                }),
            );
            self.spill.failing = Some((Instant::now(), e.to_string()));
            self.spill.backoff.reset();
        } else {
            tracing::debug!(error = %e, "outbox write failed again");
        }
        self.spill.next_try = Some(Instant::now() + self.spill.backoff.next_delay());
    }

    /// Commits work (again): say so once.
    fn store_recovered(&mut self) {
        if let Some((since, _)) = self.spill.failing.take() {
            let failed_s = since.elapsed().as_secs_f64();
            let lost = std::mem::take(&mut self.spill.lost_in_failure);
            tracing::info!(failed_s, lost, "the outbox can be written again");
            self.alerts.raise(
                "outbox_recovered",
                serde_json::json!({
                    "failed_s": (failed_s * 10.0).round() / 10.0,
                    "dropped": lost,
                    "errors_total": self.spill.errors_total,
                }),
            );
        }
    }

    /// A damaged outbox was replaced when it was opened: announce it.
    pub(super) fn outbox_replaced(&mut self) {
        if let Some(r) = self.outbox.take_replaced() {
            self.alerts.raise(
                "outbox_replaced",
                serde_json::json!({
                    "error": r.error,
                    "moved_to": r.moved_to.display().to_string(),
                    "seq_from": r.seq_from,
                }),
            );
        }
    }
}
