//! The durable outbox: every event is committed here before it is published,
//! and deleted only when the broker acknowledges it.
//!
//! In: events from the rules. Out: rows for the publisher, in `seq` order.
//!
//! SQLite in WAL mode with `synchronous = FULL`: a committed event survives a
//! crash or power cut. `seq` comes from a counter row updated in the same
//! transaction as the insert, so it grows by exactly one per committed event
//! and survives restarts even when the table is empty.

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

pub struct Outbox {
    conn: Connection,
    path: PathBuf,
}

impl Outbox {
    pub fn open(path: &Path) -> Result<Outbox, OutboxError> {
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
                 created TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS counters (
                 name  TEXT PRIMARY KEY,
                 value INTEGER NOT NULL
             );
             INSERT OR IGNORE INTO counters (name, value) VALUES ('seq', 0);",
        )
        .map_err(err)?;
        Ok(Outbox {
            conn,
            path: path.to_owned(),
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
                "INSERT INTO outbox (seq, id, topic, payload, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![seq, event.id, event.topic(topic_prefix), payload, event.ts],
            )?;
            Ok::<_, rusqlite::Error>(())
        })();
        match result.and_then(|()| tx.commit()) {
            Ok(()) => Ok(event),
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
        self.conn
            .execute("DELETE FROM outbox WHERE seq = ?1", params![seq as i64])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    /// Events stored and not yet acknowledged.
    pub fn depth(&self) -> Result<u64, OutboxError> {
        self.conn
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// The last seq handed out (0 if none ever).
    pub fn last_seq(&self) -> Result<u64, OutboxError> {
        self.conn
            .query_row("SELECT value FROM counters WHERE name = 'seq'", [], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map(|v| v.unwrap_or(0) as u64)
            .map_err(|e| self.err(e))
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
