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
//! Bounded: beyond `max_events`, or older than `max_age`, the oldest
//! undelivered events are dropped (with their evidence); beyond
//! `max_evidence_bytes` the oldest evidence is dropped (events are kept).
//! Drops are counted (persistently) and reported to the caller, which
//! announces them; the consumer also sees the gap in `seq`.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

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

/// How much the outbox may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_events: u64,
    pub max_age: std::time::Duration,
    /// Evidence JPEGs kept at most, in bytes.
    pub max_evidence_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_events: 1_000_000,
            max_age: std::time::Duration::from_secs(30 * 24 * 3600),
            max_evidence_bytes: 512 << 20,
        }
    }
}

/// Messages dropped by the limits in one enforcement.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Events dropped.
    pub count: u64,
    /// Highest seq of an event dropped.
    pub last_seq: u64,
    /// Evidence JPEGs dropped (with their events, or alone for the byte limit).
    pub evidence: u64,
    /// Highest seq whose evidence was dropped.
    pub evidence_last_seq: u64,
}

pub struct Outbox {
    conn: Connection,
    path: PathBuf,
    limits: Limits,
    /// Rows in the `outbox` table, kept in step with inserts and deletes.
    depth: u64,
    /// Rows in the `evidence` table and the bytes of their JPEGs.
    evidence_depth: u64,
    evidence_bytes: u64,
}

fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

fn to_ms(t: SystemTime) -> i64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn from_ms(ms: i64) -> SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64)
}

/// Evidence rows with `seq <= up_to`: (count, bytes, highest seq).
fn evidence_up_to(tx: &Transaction<'_>, up_to: i64) -> rusqlite::Result<(u64, u64, u64)> {
    tx.query_row(
        "SELECT COUNT(*), COALESCE(SUM(length(jpeg)), 0), COALESCE(MAX(seq), 0)
         FROM evidence WHERE seq <= ?1",
        params![up_to],
        |r| {
            Ok((
                r.get::<_, i64>(0)? as u64,
                r.get::<_, i64>(1)? as u64,
                r.get::<_, i64>(2)? as u64,
            ))
        },
    )
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
                 stored_ms INTEGER NOT NULL,
                 camera  TEXT,
                 captured_ms INTEGER
             );
             CREATE INDEX IF NOT EXISTS outbox_stored_ms ON outbox (stored_ms);
             CREATE TABLE IF NOT EXISTS evidence (
                 id    TEXT PRIMARY KEY,
                 seq   INTEGER NOT NULL UNIQUE,
                 topic TEXT NOT NULL,
                 jpeg  BLOB NOT NULL,
                 stored_ms INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS counters (
                 name  TEXT PRIMARY KEY,
                 value INTEGER NOT NULL
             );
             INSERT OR IGNORE INTO counters (name, value) VALUES ('seq', 0);
             INSERT OR IGNORE INTO counters (name, value) VALUES ('dropped', 0);
             INSERT OR IGNORE INTO counters (name, value) VALUES ('evidence_dropped', 0);",
        )
        .map_err(err)?;
        // Outboxes written before events recorded their camera and capture time.
        let has_camera: bool = conn
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_info('outbox') WHERE name = 'camera'",
                [],
                |r| r.get::<_, i64>(0).map(|n| n > 0),
            )
            .map_err(err)?;
        if !has_camera {
            conn.execute_batch(
                "ALTER TABLE outbox ADD COLUMN camera TEXT;
                 ALTER TABLE outbox ADD COLUMN captured_ms INTEGER;",
            )
            .map_err(err)?;
        }
        let depth: i64 = conn
            .query_row("SELECT COUNT(*) FROM outbox", [], |r| r.get(0))
            .map_err(err)?;
        let (evidence_depth, evidence_bytes): (i64, i64) = conn
            .query_row(
                "SELECT COUNT(*), COALESCE(SUM(length(jpeg)), 0) FROM evidence",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(err)?;
        Ok(Outbox {
            conn,
            path: path.to_owned(),
            limits,
            depth: depth as u64,
            evidence_depth: evidence_depth as u64,
            evidence_bytes: evidence_bytes as u64,
        })
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
        let path = self.path.clone();
        let err = |source| OutboxError::Sqlite { path, source };
        let tx = match self.conn.transaction() {
            Ok(tx) => tx,
            Err(e) => return Err(err(e)),
        };
        let stored_ms = now_ms();
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

    /// Whether more is stored than `max_events` or `max_evidence_bytes` allows.
    pub fn over_capacity(&self) -> bool {
        self.depth > self.limits.max_events || self.evidence_bytes > self.limits.max_evidence_bytes
    }

    /// Drops the oldest events beyond `max_events` and those older than `max_age`, with
    /// their evidence; then the oldest evidence beyond `max_evidence_bytes`.
    pub fn enforce_limits(&mut self) -> Result<Dropped, OutboxError> {
        let cutoff = now_ms() - self.limits.max_age.as_millis() as i64;
        let overflow = self.depth.saturating_sub(self.limits.max_events);
        let (evidence_bytes, max_evidence_bytes) =
            (self.evidence_bytes, self.limits.max_evidence_bytes);
        let tx = self.conn.transaction().map_err(|e| OutboxError::Sqlite {
            path: self.path.clone(),
            source: e,
        })?;
        let result = (|| {
            let mut dropped = Dropped::default();
            // Rows are in seq order and stored_ms grows with seq, so every rule drops a prefix.
            let by_age: i64 = tx.query_row(
                "SELECT COUNT(*) FROM outbox WHERE stored_ms < ?1",
                params![cutoff],
                |r| r.get(0),
            )?;
            let n = (by_age as u64).max(overflow);
            let mut evidence_cut: i64 = 0;
            if n > 0 {
                let last_seq: i64 = tx.query_row(
                    "SELECT MAX(seq) FROM (SELECT seq FROM outbox ORDER BY seq LIMIT ?1)",
                    params![n as i64],
                    |r| r.get(0),
                )?;
                let count = tx.execute("DELETE FROM outbox WHERE seq <= ?1", params![last_seq])?;
                dropped.count = count as u64;
                dropped.last_seq = last_seq as u64;
                evidence_cut = last_seq;
            }
            // Evidence outlives its event until acknowledged: the age rule applies to it too.
            let old: Option<i64> = tx.query_row(
                "SELECT MAX(seq) FROM evidence WHERE stored_ms < ?1",
                params![cutoff],
                |r| r.get(0),
            )?;
            evidence_cut = evidence_cut.max(old.unwrap_or(0));
            let (_, mut freed, _) = evidence_up_to(&tx, evidence_cut)?;
            if evidence_bytes.saturating_sub(freed) > max_evidence_bytes {
                let mut stmt = tx.prepare(
                    "SELECT seq, length(jpeg) FROM evidence WHERE seq > ?1 ORDER BY seq",
                )?;
                let mut rows = stmt.query(params![evidence_cut])?;
                while let Some(row) = rows.next()? {
                    evidence_cut = row.get(0)?;
                    freed += row.get::<_, i64>(1)? as u64;
                    if evidence_bytes.saturating_sub(freed) <= max_evidence_bytes {
                        break;
                    }
                }
            }
            let (count, _, last) = evidence_up_to(&tx, evidence_cut)?;
            if count > 0 {
                tx.execute(
                    "DELETE FROM evidence WHERE seq <= ?1",
                    params![evidence_cut],
                )?;
                dropped.evidence = count;
                dropped.evidence_last_seq = last;
            }
            tx.execute(
                "UPDATE counters SET value = value + ?1 WHERE name = 'dropped'",
                params![dropped.count as i64],
            )?;
            tx.execute(
                "UPDATE counters SET value = value + ?1 WHERE name = 'evidence_dropped'",
                params![dropped.evidence as i64],
            )?;
            Ok((dropped, freed))
        })();
        let done = result.and_then(|d| tx.commit().map(|()| d));
        let (dropped, freed) = done.map_err(|e| self.err(e))?;
        self.depth = self.depth.saturating_sub(dropped.count);
        if dropped.evidence > 0 {
            self.evidence_depth = self.evidence_depth.saturating_sub(dropped.evidence);
            self.evidence_bytes = self.evidence_bytes.saturating_sub(freed);
        }
        Ok(dropped)
    }

    /// Events dropped by the limits since the outbox was created.
    pub fn dropped_total(&self) -> Result<u64, OutboxError> {
        self.counter("dropped")
    }

    /// Evidence JPEGs dropped by the limits since the outbox was created.
    pub fn evidence_dropped_total(&self) -> Result<u64, OutboxError> {
        self.counter("evidence_dropped")
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
            evidence: None,
        }
    }

    fn after(seq: u64, part: Part) -> Position {
        Position { seq, part }
    }

    /// What is waiting, as (seq, part), in publishing order.
    fn pending_parts(o: &mut Outbox) -> Vec<(u64, Part)> {
        o.pending_after(Position::default(), 10)
            .unwrap()
            .iter()
            .map(|p| (p.seq, p.part))
            .collect()
    }

    fn with_evidence(id: &str, jpeg: &[u8]) -> Handover {
        Handover {
            evidence: Some(jpeg.to_vec()),
            ..event(id).into()
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
            ..Limits::default()
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
                last_seq: 2,
                ..Dropped::default()
            }
        );
        assert_eq!(o.enforce_limits().unwrap(), Dropped::default());
        let kept: Vec<u64> = o
            .pending_after(Position::default(), 10)
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
                ..Limits::default()
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
                last_seq: 5,
                ..Dropped::default()
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
        let p = o.pending_after(Position::default(), 10).unwrap();
        assert_eq!(p.iter().map(|p| p.seq).collect::<Vec<_>>(), vec![1, 3]);
        assert_eq!(p[0].topic, "sw/n/events/c/crowding");
        let v: serde_json::Value = serde_json::from_slice(&p[1].payload).unwrap();
        assert_eq!(v["seq"], 3);
        assert_eq!(v["id"], "c");
        assert_eq!(
            o.pending_after(after(1, Part::Evidence), 10).unwrap().len(),
            1
        );
    }

    #[test]
    fn evidence_is_stored_with_its_event_and_published_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.sqlite");
        let t0 = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_800_000_000_123);
        {
            let mut o = Outbox::open(&path).unwrap();
            let a = o.commit(event("a"), "sw").unwrap();
            assert_eq!(a.evidence, None);
            let b = o
                .commit(
                    Handover {
                        captured_at: Some(t0),
                        ..with_evidence("b", b"jpeg-b")
                    },
                    "sw",
                )
                .unwrap();
            assert_eq!(b.evidence.as_deref(), Some("evidence/b"));
            o.commit(with_evidence("c", b"jpeg-cc"), "sw").unwrap();
            assert_eq!((o.depth().unwrap(), o.evidence_depth()), (3, 2));
            assert_eq!(o.evidence_bytes(), 13);

            let order = |o: &Outbox, from: Position| -> Vec<(u64, Part)> {
                o.pending_after(from, 10)
                    .unwrap()
                    .iter()
                    .map(|p| (p.seq, p.part))
                    .collect()
            };
            use Part::{Event as E, Evidence as V};
            assert_eq!(
                order(&o, Position::default()),
                vec![(1, E), (2, E), (2, V), (3, E), (3, V)]
            );
            assert_eq!(order(&o, after(2, E)), vec![(2, V), (3, E), (3, V)]);
            assert_eq!(order(&o, after(2, V)), vec![(3, E), (3, V)]);

            let p = o.pending_after(after(1, E), 2).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&p[0].payload).unwrap();
            assert_eq!(v["evidence"], "evidence/b");
            assert_eq!(p[0].camera.as_deref(), Some("c"));
            assert_eq!(p[0].captured_at, Some(t0));
            assert_eq!(p[1].topic, "sw/n/evidence/b");
            assert_eq!(p[1].payload, b"jpeg-b");
            assert_eq!(p[1].position(), after(2, V));

            // The event acknowledged first: its evidence stays until its own PUBACK.
            o.ack(2).unwrap();
            assert_eq!(
                order(&o, Position::default()),
                vec![(1, E), (2, V), (3, E), (3, V)]
            );
        }
        // Replayed after a restart.
        let mut o = Outbox::open(&path).unwrap();
        assert_eq!((o.depth().unwrap(), o.evidence_depth()), (2, 2));
        assert_eq!(o.evidence_bytes(), 13);
        assert!(o.ack_evidence(2).unwrap());
        assert!(!o.ack_evidence(2).unwrap(), "acknowledged once");
        assert_eq!((o.evidence_depth(), o.evidence_bytes()), (1, 7));
        let left = pending_parts(&mut o);
        assert_eq!(
            left,
            vec![(1, Part::Event), (3, Part::Event), (3, Part::Evidence)]
        );
    }

    #[test]
    fn limits_drop_evidence_with_its_event_and_beyond_its_byte_budget() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.sqlite");
        let limits = Limits {
            max_events: 3,
            max_age: std::time::Duration::from_secs(3600),
            max_evidence_bytes: 250,
        };
        let mut o = Outbox::open_with(&path, limits).unwrap();
        for i in 0..5 {
            o.commit(with_evidence(&format!("e{i}"), &[i as u8; 100]), "sw")
                .unwrap();
        }
        assert!(o.over_capacity());
        // Events 1 and 2 go with their evidence; 300 bytes left is still over 250: evidence 3 too.
        assert_eq!(
            o.enforce_limits().unwrap(),
            Dropped {
                count: 2,
                last_seq: 2,
                evidence: 3,
                evidence_last_seq: 3
            }
        );
        assert!(!o.over_capacity());
        assert_eq!((o.depth().unwrap(), o.evidence_depth()), (3, 2));
        assert_eq!(o.evidence_bytes(), 200);
        let kept = pending_parts(&mut o);
        assert_eq!(
            kept,
            vec![
                (3, Part::Event),
                (4, Part::Event),
                (4, Part::Evidence),
                (5, Part::Event),
                (5, Part::Evidence)
            ]
        );
        assert_eq!(o.evidence_dropped_total().unwrap(), 3);
        assert_eq!(o.dropped_total().unwrap(), 2);
        assert_eq!(o.enforce_limits().unwrap(), Dropped::default());

        // An acknowledged event's evidence still counts, and ages like events.
        o.ack(4).unwrap();
        o.ack(5).unwrap();
        drop(o);
        let mut o = Outbox::open_with(
            &path,
            Limits {
                max_age: std::time::Duration::ZERO,
                ..limits
            },
        )
        .unwrap();
        assert_eq!(o.evidence_bytes(), 200);
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(
            o.enforce_limits().unwrap(),
            Dropped {
                count: 1,
                last_seq: 3,
                evidence: 2,
                evidence_last_seq: 5
            }
        );
        assert_eq!((o.evidence_depth(), o.evidence_bytes()), (0, 0));
        assert_eq!(o.evidence_dropped_total().unwrap(), 5);
    }

    #[test]
    fn an_outbox_from_before_evidence_is_upgraded_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE outbox (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, topic TEXT NOT NULL,
                                      payload BLOB NOT NULL, stored_ms INTEGER NOT NULL);
                 CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
                 INSERT INTO counters VALUES ('seq', 7), ('dropped', 1);
                 INSERT INTO outbox VALUES (7, 'old', 'sw/n/events/c/crowding', x'7b7d', 0);",
            )
            .unwrap();
        }
        let mut o = Outbox::open(&path).unwrap();
        let p = o.pending_after(Position::default(), 10).unwrap();
        assert_eq!((p.len(), p[0].seq, p[0].camera.clone()), (1, 7, None));
        let e = o.commit(with_evidence("new", b"j"), "sw").unwrap();
        assert_eq!(e.seq, 8);
        assert_eq!(o.pending_after(Position::default(), 10).unwrap().len(), 3);
        assert_eq!(o.dropped_total().unwrap(), 1);
        assert_eq!(o.evidence_dropped_total().unwrap(), 0);
    }
}
