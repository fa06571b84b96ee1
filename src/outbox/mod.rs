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
//! it was stored at, and its age is measured against the clock's time of day;
//! a jump of the time of day moves this run's rows with it (`timeline`).
//!
//! Failures: a message the broker will not take (too large, refused again and
//! again) is moved to the `dead_letter` table, kept for inspection and never
//! published again (`dead`). A damaged file (not a database, malformed) is
//! moved aside, kept for forensics, and a new outbox started whose `seq` goes
//! on from what the damaged one still tells ([`Outbox::replaced`]). A seq
//! counter behind the rows is repaired on open (`schema`).
//!
//! Open incidents: the latest `start`/`update` of every incident not yet
//! ended is kept beside the queue (`open`), in the same transaction as the
//! event, so a run that died without ending its incidents (power cut,
//! kill -9) leaves them for the next run to end.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rusqlite::{Connection, OptionalExtension, params};

use crate::clock::SharedClock;
use crate::event::Event;

mod damage;
mod dead;
mod limits;
mod open;
mod rows;
mod schema;
mod timeline;

pub use dead::DeadLetter;
pub use limits::{Dropped, Limits};
pub use rows::{Handover, Part, Pending, Position};

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
    #[error("outbox {path} is damaged ({error}) and cannot be moved aside: {source}")]
    MoveAside {
        path: PathBuf,
        error: String,
        source: std::io::Error,
    },
}

impl OutboxError {
    /// Whether the condition may pass by itself (a lock held by another process, a
    /// full disk, an I/O error, a read-only mount): trying again later may work.
    pub fn may_pass(&self) -> bool {
        use std::io::ErrorKind;
        match self {
            OutboxError::Sqlite { source, .. } => damage::may_pass(source),
            OutboxError::Folder { source, .. } | OutboxError::MoveAside { source, .. } => {
                matches!(
                    source.kind(),
                    ErrorKind::StorageFull | ErrorKind::ReadOnlyFilesystem | ErrorKind::Interrupted
                )
            }
            OutboxError::Encode(_) => false,
        }
    }

    /// Whether the outbox file is damaged (not a database, malformed).
    pub fn is_damage(&self) -> bool {
        matches!(self, OutboxError::Sqlite { source, .. } if damage::is_damage(source))
    }
}

/// A damaged outbox that was moved aside and replaced by a new one.
#[derive(Debug, Clone, PartialEq)]
pub struct Replaced {
    /// Where the damaged file is kept.
    pub moved_to: PathBuf,
    /// What SQLite said about it.
    pub error: String,
    /// The new outbox's seq starts after this one (what the damaged file still told).
    pub seq_from: u64,
}

pub struct Outbox {
    conn: Connection,
    path: PathBuf,
    limits: Limits,
    /// When rows are stored, and how old they are.
    clock: SharedClock,
    /// The last reading of the clock, to see the time of day jump.
    timeline: timeline::Timeline,
    /// The last seq stored before this run: rows after it were stored on this run's clock.
    run_after_seq: u64,
    /// Jumps not yet applied to the stored rows (the update failed): (up to seq, ms).
    unapplied_jumps: Vec<(u64, i64)>,
    /// The damaged file this outbox replaced, until the caller takes it.
    replaced: Option<Replaced>,
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

/// Whether a file can be created beside `path` (the error says why not).
fn writable(path: &Path) -> std::io::Result<()> {
    let mut probe = path.as_os_str().to_owned();
    probe.push(".probe");
    let probe = PathBuf::from(probe);
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&probe)?;
    std::fs::remove_file(&probe)
}

impl Outbox {
    /// Opens the outbox at `path` with the default limits and the system clock.
    pub fn open(path: &Path) -> Result<Outbox, OutboxError> {
        Self::open_with(path, Limits::default(), crate::clock::system())
    }

    /// Opens the outbox at `path`; a damaged file is moved aside and a new one started
    /// (see [`Outbox::replaced`]).
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
        let sqlite = |source| OutboxError::Sqlite {
            path: path.to_owned(),
            source,
        };
        let (conn, counts, replaced) = match schema::open(path) {
            Ok((conn, counts)) => (conn, counts, None),
            Err(e) if damage::is_damage(&e) => {
                let replaced = Self::move_aside(path, &e.to_string(), &clock)?;
                let (conn, counts) = schema::open(path).map_err(sqlite)?;
                schema::start_seq_at(&conn, replaced.seq_from).map_err(sqlite)?;
                let counts = schema::Counts {
                    last_seq: replaced.seq_from.max(counts.last_seq),
                    ..counts
                };
                (conn, counts, Some(replaced))
            }
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::CannotOpen) => {
                // SQLite does not say why; a file system mounted read-only may pass.
                return Err(match writable(path) {
                    Err(source) => OutboxError::Folder {
                        path: path.to_owned(),
                        source,
                    },
                    Ok(()) => sqlite(e),
                });
            }
            Err(e) => return Err(sqlite(e)),
        };
        if let Some((was, now)) = counts.repaired {
            tracing::warn!(outbox = %path.display(), was, now, "outbox seq counter was behind the stored events; repaired");
        }
        Ok(Outbox {
            conn,
            path: path.to_owned(),
            limits,
            timeline: timeline::Timeline::new(clock.wall(), clock.mono()),
            run_after_seq: counts.last_seq,
            unapplied_jumps: Vec::new(),
            replaced,
            clock,
            depth: counts.depth,
            evidence_depth: counts.evidence_depth,
            evidence_bytes: counts.evidence_bytes,
        })
    }

    /// Moves the damaged outbox at `path` aside (logged), salvaging its last seq.
    fn move_aside(path: &Path, error: &str, clock: &SharedClock) -> Result<Replaced, OutboxError> {
        let seq_from = schema::salvage_seq(path).unwrap_or(0);
        let moved_to = damage::move_aside(path, to_ms(clock.wall())).map_err(|source| {
            OutboxError::MoveAside {
                path: path.to_owned(),
                error: error.to_string(),
                source,
            }
        })?;
        tracing::error!(outbox = %path.display(), error, moved_to = %moved_to.display(), seq_from, "outbox file damaged: moved aside, a new one started");
        Ok(Replaced {
            moved_to,
            error: error.to_string(),
            seq_from,
        })
    }

    /// The damaged file this outbox replaced, once (for the caller to announce it).
    pub fn take_replaced(&mut self) -> Option<Replaced> {
        self.replaced.take()
    }

    /// The file turned out damaged while running: moves it aside and starts a new one.
    /// What was stored in it stays in the file moved aside.
    pub fn replace_damaged(&mut self, error: &OutboxError) -> Result<Replaced, OutboxError> {
        let counter = self.last_seq().unwrap_or(0);
        // Let go of the file before it is renamed.
        let placeholder = Connection::open_in_memory().map_err(|e| self.err(e))?;
        drop(std::mem::replace(&mut self.conn, placeholder));
        let mut replaced = Self::move_aside(&self.path, &error.to_string(), &self.clock)?;
        replaced.seq_from = replaced.seq_from.max(counter);
        let (conn, counts) = schema::open(&self.path).map_err(|e| self.err(e))?;
        schema::start_seq_at(&conn, replaced.seq_from).map_err(|e| self.err(e))?;
        self.conn = conn;
        self.depth = counts.depth;
        self.evidence_depth = counts.evidence_depth;
        self.evidence_bytes = counts.evidence_bytes;
        self.run_after_seq = replaced.seq_from;
        self.unapplied_jumps.clear();
        Ok(replaced)
    }

    /// The time of day, in the milliseconds `stored_ms` holds. A jump since the last
    /// reading moves this run's rows with it, so their ages stay real.
    fn now_ms(&mut self) -> i64 {
        let wall = self.clock.wall();
        if let Some(jump) = self.timeline.observe(wall, self.clock.mono()) {
            tracing::warn!(
                jump_ms = jump,
                "the time of day jumped; outbox ages follow elapsed time"
            );
            let up_to = self.last_seq().unwrap_or(u64::MAX);
            self.unapplied_jumps.push((up_to, jump));
        }
        self.apply_jumps();
        to_ms(wall)
    }

    /// Moves the rows of this run stored before each jump by that jump.
    fn apply_jumps(&mut self) {
        while let Some(&(up_to, jump)) = self.unapplied_jumps.first() {
            let (from, to) = (self.run_after_seq as i64, up_to.min(i64::MAX as u64) as i64);
            let moved = self.conn.execute_batch("BEGIN").and_then(|()| {
                for table in ["outbox", "evidence"] {
                    self.conn.execute(
                        &format!(
                            "UPDATE {table} SET stored_ms = stored_ms + ?1 WHERE seq > ?2 AND seq <= ?3"
                        ),
                        params![jump, from, to],
                    )?;
                }
                self.conn.execute_batch("COMMIT")
            });
            if let Err(e) = moved {
                let _ = self.conn.execute_batch("ROLLBACK");
                tracing::warn!(error = %e, "cannot move stored times after a clock jump yet");
                return;
            }
            self.unapplied_jumps.remove(0);
        }
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
        self.store(&item.into(), topic_prefix)
    }

    /// [`Outbox::commit`], borrowing the hand-over (kept by the caller if it fails).
    pub fn store(&mut self, item: &Handover, topic_prefix: &str) -> Result<Event, OutboxError> {
        let mut event = item.event.clone();
        let (evidence, captured_at) = (&item.evidence, item.captured_at);
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
            if let Some(jpeg) = evidence {
                tx.execute(
                    "INSERT INTO evidence (id, seq, topic, jpeg, stored_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![event.id, seq, event.evidence_topic(topic_prefix), jpeg, stored_ms],
                )?;
            }
            open::record(&tx, &event, &payload)?;
            Ok::<_, rusqlite::Error>(())
        })();
        match result.and_then(|()| tx.commit()) {
            Ok(()) => {
                self.depth += 1;
                if let Some(jpeg) = evidence {
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

    /// The stored message at `pos`, if it is still stored.
    pub fn get(&self, pos: Position) -> Result<Option<Pending>, OutboxError> {
        let before = match pos.part {
            Part::Event => Position {
                seq: pos.seq.saturating_sub(1),
                part: Part::Evidence,
            },
            Part::Evidence => Position {
                seq: pos.seq,
                part: Part::Event,
            },
        };
        let next = self.pending_after(before, 1)?.pop();
        Ok(next.filter(|p| p.position() == pos))
    }

    /// Replaces the evidence JPEG of event `seq` (made smaller to fit the broker's packet
    /// limit); `false` if it is not stored.
    pub fn replace_evidence(&mut self, seq: u64, jpeg: &[u8]) -> Result<bool, OutboxError> {
        let old: Option<i64> = self
            .conn
            .query_row(
                "SELECT length(jpeg) FROM evidence WHERE seq = ?1",
                params![seq as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        let Some(old) = old else {
            return Ok(false);
        };
        self.conn
            .execute(
                "UPDATE evidence SET jpeg = ?1 WHERE seq = ?2",
                params![jpeg, seq as i64],
            )
            .map_err(|e| self.err(e))?;
        self.evidence_bytes = (self.evidence_bytes + jpeg.len() as u64).saturating_sub(old as u64);
        Ok(true)
    }

    /// Events that were lost before they could be stored (the outbox failed and the
    /// memory queue was full): their seqs are skipped, so consumers see the gap, and
    /// counted as dropped. Returns the last seq skipped.
    pub fn skip_seqs(&mut self, n: u64) -> Result<u64, OutboxError> {
        let path = self.path.clone();
        let tx = self
            .conn
            .transaction()
            .map_err(|source| OutboxError::Sqlite {
                path: path.clone(),
                source,
            })?;
        let done = (|| {
            let seq: i64 = tx.query_row(
                "UPDATE counters SET value = value + ?1 WHERE name = 'seq' RETURNING value",
                params![n as i64],
                |r| r.get(0),
            )?;
            tx.execute(
                "UPDATE counters SET value = value + ?1 WHERE name = 'dropped'",
                params![n as i64],
            )?;
            tx.commit()?;
            Ok(seq as u64)
        })();
        done.map_err(|source| OutboxError::Sqlite { path, source })
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
        let now = to_ms(self.clock.wall());
        Ok(oldest.map(|ms| std::time::Duration::from_millis(now.saturating_sub(ms).max(0) as u64)))
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
