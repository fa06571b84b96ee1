//! The durable outbox: every event is committed here before it is published,
//! and deleted only when the broker acknowledges it. So is every event's
//! evidence JPEG.
//!
//! In: events (with their evidence) from the cameras. Out: messages for the
//! publisher, in publishing order: by `seq`, each event followed by its
//! evidence.
//!
//! SQLite in WAL mode with `synchronous = FULL`: a committed event survives a
//! crash or power cut. `seq` comes from a counter row updated in the same
//! transaction as the insert, so it grows by exactly one per committed event
//! and survives restarts even when the table is empty. An event's evidence is
//! stored in the same transaction (table `evidence`, keyed by the event's id)
//! and acknowledged on its own: it may outlive its event's row.
//!
//! Bounded (`limits`): beyond `max_events`, or older than `max_age`, the
//! oldest undelivered events are dropped (with their evidence); beyond
//! `max_evidence_bytes` the oldest evidence is dropped (events are kept).
//! Drops are counted (persistently) and reported to the caller, which
//! announces them; the consumer also sees the gap in `seq`. The tables and
//! the upgrade of older outboxes are in `schema`.
//!
//! Time comes from the injected clock: each row records the wall-clock time
//! it was stored at, and its age is measured against the clock's time of day.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, params};

use crate::clock::SharedClock;
use crate::event::Event;

mod limits;
mod schema;

pub use limits::{Dropped, Limits};

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("outbox {path}: {source}")]
    Sqlite {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("outbox {path}: cannot create its folder: {source}")]
    Folder {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("outbox: event cannot be encoded: {0}")]
    Encode(#[from] serde_json::Error),
}

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

pub struct Outbox {
    conn: Connection,
    path: PathBuf,
    limits: Limits,
    /// When rows are stored, and how old they are.
    clock: SharedClock,
    /// Rows in the `outbox` table, kept in step with inserts and deletes.
    depth: u64,
    /// Rows in the `evidence` table and the bytes of their JPEGs.
    evidence_depth: u64,
    evidence_bytes: u64,
}

fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn from_ms(ms: i64) -> SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64)
}

impl Outbox {
    /// Opens the outbox at `path` with the default limits and the system clock.
    pub fn open(path: &Path) -> Result<Outbox, OutboxError> {
        Self::open_with(path, Limits::default(), crate::clock::system())
    }

    pub fn open_with(
        path: &Path,
        limits: Limits,
        clock: SharedClock,
    ) -> Result<Outbox, OutboxError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| OutboxError::Folder {
                path: path.to_owned(),
                source,
            })?;
        }
        let (conn, counts) = schema::open(path).map_err(|source| OutboxError::Sqlite {
            path: path.to_owned(),
            source,
        })?;
        Ok(Outbox {
            conn,
            path: path.to_owned(),
            limits,
            clock,
            depth: counts.depth,
            evidence_depth: counts.evidence_depth,
            evidence_bytes: counts.evidence_bytes,
        })
    }

    /// The time of day, in the milliseconds `stored_ms` holds.
    fn now_ms(&self) -> i64 {
        to_ms(self.clock.wall())
    }

    fn err(&self, source: rusqlite::Error) -> OutboxError {
        OutboxError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Gives the event the next `seq` and stores it durably, with its evidence in the
    /// same transaction; returns the event as published (its `seq` set, and its
    /// `evidence` field set exactly when evidence was stored).
    pub fn commit(
        &mut self,
        item: impl Into<Handover>,
        topic_prefix: &str,
    ) -> Result<Event, OutboxError> {
        let Handover {
            mut event,
            evidence,
            captured_at,
        } = item.into();
        event.evidence = evidence.as_ref().map(|_| event.evidence_suffix());
        let stored_ms = self.now_ms();
        let path = self.path.clone();
        let err = |source| OutboxError::Sqlite { path, source };
        let tx = match self.conn.transaction() {
            Ok(tx) => tx,
            Err(e) => return Err(err(e)),
        };
        let result = (|| {
            let seq: i64 = tx.query_row(
                "UPDATE counters SET value = value + 1 WHERE name = 'seq' RETURNING value",
                [],
                |r| r.get(0),
            )?;
            event.seq = seq as u64;
            let payload = serde_json::to_vec(&event).expect("events always encode");
            tx.execute(
                "INSERT INTO outbox (seq, id, topic, payload, stored_ms, camera, captured_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    seq,
                    event.id,
                    event.topic(topic_prefix),
                    payload,
                    stored_ms,
                    event.camera,
                    captured_at.map(to_ms)
                ],
            )?;
            if let Some(jpeg) = &evidence {
                tx.execute(
                    "INSERT INTO evidence (id, seq, topic, jpeg, stored_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![event.id, seq, event.evidence_topic(topic_prefix), jpeg, stored_ms],
                )?;
            }
            Ok::<_, rusqlite::Error>(())
        })();
        match result.and_then(|()| tx.commit()) {
            Ok(()) => {
                self.depth += 1;
                if let Some(jpeg) = &evidence {
                    self.evidence_depth += 1;
                    self.evidence_bytes += jpeg.len() as u64;
                }
                Ok(event)
            }
            Err(e) => Err(err(e)),
        }
    }

    /// Up to `limit` stored messages after `after`, in publishing order.
    pub fn pending_after(
        &self,
        after: Position,
        limit: usize,
    ) -> Result<Vec<Pending>, OutboxError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, 0, topic, payload, camera, captured_ms FROM outbox WHERE seq > ?1
                 UNION ALL
                 SELECT seq, 1, topic, jpeg, NULL, NULL FROM evidence WHERE seq >= ?1 + ?2
                 ORDER BY 1, 2 LIMIT ?3",
            )
            .map_err(|e| self.err(e))?;
        let after_evidence = i64::from(after.part == Part::Evidence);
        let rows = stmt
            .query_map(
                params![after.seq as i64, after_evidence, limit as i64],
                |r| {
                    Ok(Pending {
                        seq: r.get::<_, i64>(0)? as u64,
                        part: if r.get::<_, i64>(1)? == 0 {
                            Part::Event
                        } else {
                            Part::Evidence
                        },
                        topic: r.get(2)?,
                        payload: r.get(3)?,
                        camera: r.get(4)?,
                        captured_at: r.get::<_, Option<i64>>(5)?.map(from_ms),
                    })
                },
            )
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The broker has the event: forget it (its evidence is acknowledged on its own).
    /// `false` if it was not stored (already acknowledged, or dropped).
    pub fn ack(&mut self, seq: u64) -> Result<bool, OutboxError> {
        let n = self
            .conn
            .execute("DELETE FROM outbox WHERE seq = ?1", params![seq as i64])
            .map_err(|e| self.err(e))?;
        self.depth = self.depth.saturating_sub(n as u64);
        Ok(n > 0)
    }

    /// The broker has the evidence of event `seq`: forget it. `false` if it was not stored.
    pub fn ack_evidence(&mut self, seq: u64) -> Result<bool, OutboxError> {
        let bytes: Option<i64> = self
            .conn
            .query_row(
                "DELETE FROM evidence WHERE seq = ?1 RETURNING length(jpeg)",
                params![seq as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        if let Some(bytes) = bytes {
            self.evidence_depth = self.evidence_depth.saturating_sub(1);
            self.evidence_bytes = self.evidence_bytes.saturating_sub(bytes as u64);
        }
        Ok(bytes.is_some())
    }

    /// Events stored and not yet acknowledged.
    pub fn depth(&self) -> Result<u64, OutboxError> {
        Ok(self.depth)
    }

    /// Evidence JPEGs stored and not yet acknowledged.
    pub fn evidence_depth(&self) -> u64 {
        self.evidence_depth
    }

    /// The bytes of the evidence JPEGs stored.
    pub fn evidence_bytes(&self) -> u64 {
        self.evidence_bytes
    }
    /// Age of the oldest undelivered event.
    pub fn oldest_age(&self) -> Result<Option<std::time::Duration>, OutboxError> {
        let oldest: Option<i64> = self
            .conn
            .query_row("SELECT MIN(stored_ms) FROM outbox", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(oldest.map(|ms| std::time::Duration::from_millis((self.now_ms() - ms).max(0) as u64)))
    }

    fn counter(&self, name: &str) -> Result<u64, OutboxError> {
        self.conn
            .query_row(
                "SELECT value FROM counters WHERE name = ?1",
                params![name],
                |r| r.get::<_, i64>(0),
            )
            .optional()
            .map(|v| v.unwrap_or(0) as u64)
            .map_err(|e| self.err(e))
    }

    /// The last seq handed out (0 if none ever).
    pub fn last_seq(&self) -> Result<u64, OutboxError> {
        self.counter("seq")
    }
}

#[cfg(test)]
mod tests;
