//! Dead letters: stored messages the broker will not take — too large for its
//! packet limit, or refused (MQTT 5 reason codes) again and again. Each is
//! moved, in one transaction, from `outbox` or `evidence` to `dead_letter`
//! with the reason, so it never blocks what follows and is never published
//! again, but stays on the box for an operator (`sqlite3 outbox.sqlite
//! 'SELECT seq, part, id, reason FROM dead_letter'`). The newest
//! [`MAX_DEAD_LETTERS`] are kept; every one is counted (the count survives
//! restarts).

use rusqlite::{OptionalExtension, params};

use super::{Outbox, OutboxError, Part, Position, to_ms};

/// Dead letters kept at most; older ones are deleted (they stay counted).
pub const MAX_DEAD_LETTERS: i64 = 1000;

/// A message moved to the dead-letter table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    pub seq: u64,
    pub part: Part,
    /// The event's id (its evidence has the same).
    pub id: String,
    pub topic: String,
    /// Its payload's size.
    pub bytes: u64,
    pub reason: String,
}

fn part_name(part: Part) -> &'static str {
    match part {
        Part::Event => "event",
        Part::Evidence => "evidence",
    }
}

impl Outbox {
    /// Moves the stored message at `pos` to the dead-letter table with `reason`: it is
    /// never published again. `None` if it is not stored (acknowledged, dropped).
    pub fn dead_letter(
        &mut self,
        pos: Position,
        reason: &str,
    ) -> Result<Option<DeadLetter>, OutboxError> {
        let now = to_ms(self.clock.wall());
        let path = self.path.clone();
        let err = |source| OutboxError::Sqlite {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let moved = (|| {
            let (table, payload) = match pos.part {
                Part::Event => ("outbox", "payload"),
                Part::Evidence => ("evidence", "jpeg"),
            };
            type Row = (String, String, Vec<u8>, i64);
            let row: Option<Row> = tx
                .query_row(
                    &format!(
                        "DELETE FROM {table} WHERE seq = ?1 RETURNING id, topic, {payload}, stored_ms"
                    ),
                    params![pos.seq as i64],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .optional()?;
            let Some((id, topic, payload, stored_ms)) = row else {
                return Ok(None);
            };
            let bytes = payload.len() as i64;
            tx.execute(
                "INSERT OR REPLACE INTO dead_letter
                 (seq, part, id, topic, payload, reason, stored_ms, dead_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    pos.seq as i64,
                    part_name(pos.part),
                    id,
                    topic,
                    payload,
                    reason,
                    stored_ms,
                    now
                ],
            )?;
            tx.execute(
                "UPDATE counters SET value = value + 1 WHERE name = 'dead_lettered'",
                [],
            )?;
            tx.execute(
                "DELETE FROM dead_letter WHERE rowid NOT IN
                 (SELECT rowid FROM dead_letter ORDER BY rowid DESC LIMIT ?1)",
                params![MAX_DEAD_LETTERS],
            )?;
            Ok(Some(DeadLetter {
                seq: pos.seq,
                part: pos.part,
                id,
                topic,
                bytes: bytes as u64,
                reason: reason.to_string(),
            }))
        })();
        let moved = moved.and_then(|d| tx.commit().map(|()| d)).map_err(err)?;
        if let Some(d) = &moved {
            match d.part {
                Part::Event => self.depth = self.depth.saturating_sub(1),
                Part::Evidence => {
                    self.evidence_depth = self.evidence_depth.saturating_sub(1);
                    self.evidence_bytes = self.evidence_bytes.saturating_sub(d.bytes);
                }
            }
        }
        Ok(moved)
    }

    /// Messages moved to the dead-letter table since the outbox was created.
    pub fn dead_lettered_total(&self) -> Result<u64, OutboxError> {
        self.counter("dead_lettered")
    }

    /// The dead letters kept, in the order they were moved (oldest first;
    /// two moves in one millisecond keep their order).
    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, OutboxError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT seq, part, id, topic, length(payload), reason FROM dead_letter
                 ORDER BY rowid",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(DeadLetter {
                    seq: r.get::<_, i64>(0)? as u64,
                    part: if r.get::<_, String>(1)? == "event" {
                        Part::Event
                    } else {
                        Part::Evidence
                    },
                    id: r.get(2)?,
                    topic: r.get(3)?,
                    bytes: r.get::<_, i64>(4)? as u64,
                    reason: r.get(5)?,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }
}
