//! The durable outbox: every event is committed here before it is published,
//! and deleted only when the broker acknowledges it.
//!
//! In: events from the rules. Out: rows for the publisher, in `seq` order.
//!
//! SQLite in WAL mode with `synchronous = FULL`: a committed event survives a
//! crash or power cut. `seq` comes from a counter row updated in the same
//! transaction as the insert, so it grows by exactly one per committed event
//! and survives restarts even when the table is empty.
//!
//! Bounded: beyond `max_events`, or older than `max_age`, the oldest
//! undelivered events are dropped. Drops are counted (persistently) and
//! reported to the caller, which announces them; the consumer also sees the
//! gap in `seq`.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OptionalExtension, params};

use crate::event::Event;

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

/// An event waiting for its PUBACK.
#[derive(Debug, Clone, PartialEq)]
pub struct Pending {
    pub seq: u64,
    pub topic: String,
    pub payload: Vec<u8>,
}

/// How much the outbox may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_events: u64,
    pub max_age: std::time::Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_events: 1_000_000,
            max_age: std::time::Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// Events dropped by the limits in one enforcement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    pub count: u64,
    /// Highest seq dropped.
    pub last_seq: u64,
}

pub struct Outbox {
    conn: Connection,
    path: PathBuf,
    limits: Limits,
    /// Rows in the table, kept in step with inserts and deletes.
    depth: u64,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Outbox {
    pub fn open(path: &Path) -> Result<Outbox, OutboxError> {
        Self::open_with(path, Limits::default())
    }

    pub fn open_with(path: &Path, limits: Limits) -> Result<Outbox, OutboxError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| OutboxError::Folder {
                path: path.to_owned(),
                source,
            })?;
        }
        let err = |source| OutboxError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             PRAGMA busy_timeout = 5000;
             CREATE TABLE IF NOT EXISTS outbox (
                 seq     INTEGER PRIMARY KEY,
                 id      TEXT NOT NULL,
                 topic   TEXT NOT NULL,
                 payload BLOB NOT NULL,
                 stored_ms INTEGER NOT NULL
             );
             CREATE INDEX IF NOT EXISTS outbox_stored_ms ON outbox (stored_ms);
             CREATE TABLE IF NOT EXISTS counters (
                 name  TEXT PRIMARY KEY,
                 value INTEGER NOT NULL
             );
             INSERT OR IGNORE INTO counters (name, value) VALUES ('seq', 0);
             INSERT OR IGNORE INTO counters (name, value) VALUES ('dropped', 0);",
        )
        .map_err(err)?;
        let depth: i64 = conn
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
            .map_err(err)?;
        Ok(Outbox {
            conn,
            path: path.to_owned(),
            limits,
            depth: depth as u64,
        })
    }

    fn err(&self, source: rusqlite::Error) -> OutboxError {
        OutboxError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    /// Gives `event` the next `seq`, stores it durably and returns it with its seq.
    pub fn commit(&mut self, mut event: Event, topic_prefix: &str) -> Result<Event, OutboxError> {
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
                "INSERT INTO outbox (seq, id, topic, payload, stored_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![seq, event.id, event.topic(topic_prefix), payload, now_ms()],
            )?;
            Ok::<_, rusqlite::Error>(())
        })();
        match result.and_then(|()| tx.commit()) {
            Ok(()) => {
                self.depth += 1;
                Ok(event)
            }
            Err(e) => Err(err(e)),
        }
    }

    /// Up to `limit` stored events with `seq > after`, oldest first.
    pub fn pending_after(&self, after: u64, limit: usize) -> Result<Vec<Pending>, OutboxError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT seq, topic, payload FROM outbox WHERE seq > ?1 ORDER BY seq LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![after as i64, limit as i64], |r| {
                Ok(Pending {
                    seq: r.get::<_, i64>(0)? as u64,
                    topic: r.get(1)?,
                    payload: r.get(2)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// The broker has the event: forget it.
    pub fn ack(&mut self, seq: u64) -> Result<(), OutboxError> {
        let n = self
            .conn
            .execute("DELETE FROM outbox WHERE seq = ?1", params![seq as i64])
            .map_err(|e| self.err(e))?;
        self.depth = self.depth.saturating_sub(n as u64);
        Ok(())
    }

    /// Events stored and not yet acknowledged.
    pub fn depth(&self) -> Result<u64, OutboxError> {
        Ok(self.depth)
    }

    /// Whether more events are stored than `max_events` allows.
    pub fn over_capacity(&self) -> bool {
        self.depth > self.limits.max_events
    }

    /// Drops the oldest events beyond `max_events` and those older than `max_age`.
    pub fn enforce_limits(&mut self) -> Result<Dropped, OutboxError> {
        let cutoff = now_ms() - self.limits.max_age.as_millis() as i64;
        let overflow = self.depth.saturating_sub(self.limits.max_events);
        let tx = self.conn.transaction().map_err(|e| OutboxError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        let result = (|| {
            // Rows are in seq order and stored_ms grows with seq, so both rules drop a prefix.
            let by_age: i64 = tx.query_row(
                "SELECT COUNT(*) FROM outbox WHERE stored_ms < ?1",
                params![cutoff],
                |r| r.get(0),
            )?;
            let n = (by_age as u64).max(overflow);
            if n == 0 {
                return Ok(Dropped::default());
            }
            let last_seq: i64 = tx.query_row(
                "SELECT MAX(seq) FROM (SELECT seq FROM outbox ORDER BY seq LIMIT ?1)",
                params![n as i64],
                |r| r.get(0),
            )?;
            let count = tx.execute("DELETE FROM outbox WHERE seq <= ?1", params![last_seq])?;
            tx.execute(
                "UPDATE counters SET value = value + ?1 WHERE name = 'dropped'",
                params![count as i64],
            )?;
            Ok(Dropped {
                count: count as u64,
                last_seq: last_seq as u64,
            })
        })();
        let dropped = result.and_then(|d| tx.commit().map(|()| d));
        let dropped = dropped.map_err(|e| self.err(e))?;
        self.depth = self.depth.saturating_sub(dropped.count);
        Ok(dropped)
    }

    /// Events dropped by the limits since the outbox was created.
    pub fn dropped_total(&self) -> Result<u64, OutboxError> {
        self.counter("dropped")
    }

    /// Age of the oldest undelivered event.
    pub fn oldest_age(&self) -> Result<Option<std::time::Duration>, OutboxError> {
        let oldest: Option<i64> = self
            .conn
            .query_row("SELECT MIN(stored_ms) FROM outbox", [], |r| r.get(0))
            .map_err(|e| self.err(e))?;
        Ok(oldest.map(|ms| std::time::Duration::from_millis((now_ms() - ms).max(0) as u64)))
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
mod tests {
    use super::*;
    use crate::event::{Phase, SCHEMA};

    fn event(id: &str) -> Event {
        Event {
            schema: SCHEMA.into(),
            id: id.into(),
            seq: 0,
            node: "n".into(),
            camera: "c".into(),
            zone: "z".into(),
            kind: "crowding".into(),
            phase: Phase::Start,
            incident: "i".into(),
            ts: "2026-01-01T00:00:00.000Z".into(),
            started_at: "2026-01-01T00:00:00.000Z".into(),
            ended_at: None,
            stream_time_s: 0.0,
            objects: vec![],
            metrics: Default::default(),
            attributes: Default::default(),
        }
    }

    #[test]
    fn seq_is_contiguous_and_survives_reopen_and_acks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/outbox.sqlite");
        {
            let mut o = Outbox::open(&path).unwrap();
            assert_eq!(o.commit(event("a"), "sw").unwrap().seq, 1);
            assert_eq!(o.commit(event("b"), "sw").unwrap().seq, 2);
            o.ack(1).unwrap();
            o.ack(2).unwrap();
            assert_eq!(o.depth().unwrap(), 0);
        }
        let mut o = Outbox::open(&path).unwrap();
        // Empty table, but the counter remembers.
        assert_eq!(o.commit(event("c"), "sw").unwrap().seq, 3);
        assert_eq!(o.last_seq().unwrap(), 3);
    }

    #[test]
    fn limits_drop_the_oldest_and_count_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.sqlite");
        let limits = Limits {
            max_events: 3,
            max_age: std::time::Duration::from_secs(3600),
        };
        let mut o = Outbox::open_with(&path, limits).unwrap();
        for i in 0..5 {
            o.commit(event(&format!("e{i}")), "sw").unwrap();
        }
        assert_eq!(o.depth().unwrap(), 5);
        assert_eq!(
            o.enforce_limits().unwrap(),
            Dropped {
                count: 2,
                last_seq: 2
            }
        );
        assert_eq!(o.enforce_limits().unwrap(), Dropped::default());
        let kept: Vec<u64> = o
            .pending_after(0, 10)
            .unwrap()
            .iter()
            .map(|p| p.seq)
            .collect();
        assert_eq!(kept, vec![3, 4, 5]);
        assert_eq!(o.depth().unwrap(), 3);
        drop(o);
        // The count survives a restart; depth is recounted.
        let mut o = Outbox::open_with(
            &path,
            Limits {
                max_events: 10,
                max_age: std::time::Duration::ZERO,
            },
        )
        .unwrap();
        assert_eq!(o.depth().unwrap(), 3);
        assert_eq!(o.dropped_total().unwrap(), 2);
        std::thread::sleep(std::time::Duration::from_millis(5));
        // max_age 0: everything stored is too old.
        assert_eq!(
            o.enforce_limits().unwrap(),
            Dropped {
                count: 3,
                last_seq: 5
            }
        );
        assert_eq!(o.dropped_total().unwrap(), 5);
        assert!(o.oldest_age().unwrap().is_none());
        // seq goes on.
        assert_eq!(o.commit(event("z"), "sw").unwrap().seq, 6);
    }

    #[test]
    fn pending_is_ordered_and_payload_carries_seq() {
        let dir = tempfile::tempdir().unwrap();
        let mut o = Outbox::open(&dir.path().join("o.sqlite")).unwrap();
        for id in ["a", "b", "c"] {
            o.commit(event(id), "sw").unwrap();
        }
        o.ack(2).unwrap();
        let p = o.pending_after(0, 10).unwrap();
        assert_eq!(p.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(p[0].topic, "sw/n/events/c/crowding");
        let v: serde_json::Value = serde_json::from_slice(&p[1].payload).unwrap();
        assert_eq!(v["seq"], 3);
        assert_eq!(v["id"], "c");
        assert_eq!(o.pending_after(1, 10).unwrap().len(), 1);
    }
}
