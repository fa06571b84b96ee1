//! The outbox against real SQLite files in a temporary folder; time from a
//! [`ManualClock`].

use std::time::Duration;

use rusqlite::Connection;

use super::*;
use crate::clock::{Clock, ManualClock};

fn clock() -> ManualClock {
    ManualClock::new(std::time::UNIX_EPOCH + Duration::from_secs(1_800_000_000))
}

fn event(id: &str) -> Event {
    crate::event::sample(id, "i")
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
        max_age: Duration::from_secs(3600),
        ..Limits::default()
    };
    let clock = clock();
    let mut o = Outbox::open_with(&path, limits, clock.shared()).unwrap();
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
    let limits = Limits {
        max_events: 10,
        ..limits
    };
    let mut o = Outbox::open_with(&path, limits, clock.shared()).unwrap();
    assert_eq!(o.depth().unwrap(), 3);
    assert_eq!(o.dropped_total().unwrap(), 2);
    // An hour after they were stored, the rows are an hour old: not too old yet.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(o.oldest_age().unwrap(), Some(Duration::from_secs(3600)));
    assert_eq!(o.enforce_limits().unwrap(), Dropped::default());
    clock.advance(Duration::from_millis(1));
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
    let t0 = std::time::UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
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
        max_age: Duration::from_secs(3600),
        max_evidence_bytes: 250,
    };
    let clock = clock();
    let mut o = Outbox::open_with(&path, limits, clock.shared()).unwrap();
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
    let mut o = Outbox::open_with(&path, limits, clock.shared()).unwrap();
    assert_eq!(o.evidence_bytes(), 200);
    clock.advance(Duration::from_secs(3600) + Duration::from_millis(1));
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
    // The dead-letter table came with the upgrade.
    o.dead_letter(after(7, Part::Event), "test")
        .unwrap()
        .unwrap();
    assert_eq!(o.dead_lettered_total().unwrap(), 1);
}

#[test]
fn a_seq_counter_behind_the_stored_events_is_repaired_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.sqlite");
    {
        let mut o = Outbox::open(&path).unwrap();
        for id in ["a", "b", "c"] {
            o.commit(with_evidence(id, b"j"), "sw").unwrap();
        }
        o.ack(3).unwrap();
    }
    // Restored from an older backup of the counters, or edited by hand.
    Connection::open(&path)
        .unwrap()
        .execute("UPDATE counters SET value = 1 WHERE name = 'seq'", [])
        .unwrap();
    let mut o = Outbox::open(&path).unwrap();
    assert_eq!(o.last_seq().unwrap(), 3, "evidence 3 is still stored");
    assert_eq!(o.commit(event("d"), "sw").unwrap().seq, 4);
}

#[test]
fn a_dead_letter_leaves_the_queue_and_is_kept_with_its_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.sqlite");
    let mut o = Outbox::open(&path).unwrap();
    o.commit(event("a"), "sw").unwrap();
    o.commit(with_evidence("b", &[7; 100]), "sw").unwrap();
    o.commit(event("c"), "sw").unwrap();
    let d = o
        .dead_letter(after(2, Part::Evidence), "too large: 100 bytes")
        .unwrap()
        .unwrap();
    assert_eq!(
        (d.seq, d.part, d.id.as_str(), d.bytes),
        (2, Part::Evidence, "b", 100)
    );
    assert_eq!(d.topic, "sw/n/evidence/b");
    assert_eq!((o.evidence_depth(), o.evidence_bytes()), (0, 0));
    o.dead_letter(after(1, Part::Event), "refused: not authorized (0x87)")
        .unwrap()
        .unwrap();
    assert_eq!(o.depth().unwrap(), 2);
    assert_eq!(
        o.dead_letter(after(1, Part::Event), "again").unwrap(),
        None,
        "only what is stored"
    );
    assert_eq!(
        pending_parts(&mut o),
        vec![(2, Part::Event), (3, Part::Event)]
    );
    assert_eq!(o.get(after(2, Part::Event)).unwrap().unwrap().seq, 2);
    assert_eq!(o.get(after(2, Part::Evidence)).unwrap(), None);
    drop(o);
    let mut o = Outbox::open(&path).unwrap();
    assert_eq!(o.dead_lettered_total().unwrap(), 2);
    let kept = o.dead_letters().unwrap();
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[1].reason, "refused: not authorized (0x87)");
    let payload: Vec<u8> = Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT payload FROM dead_letter WHERE part = 'evidence'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(payload, vec![7; 100], "the payload is kept for inspection");
    assert_eq!(o.commit(event("d"), "sw").unwrap().seq, 4);
}

#[test]
fn a_damaged_file_is_moved_aside_and_a_new_one_goes_on_from_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    // Not a database at all: nothing to salvage.
    let path = dir.path().join("garbage.sqlite");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let mut o = Outbox::open(&path).unwrap();
    let r = o.take_replaced().expect("replaced");
    assert_eq!(r.seq_from, 0);
    assert!(r.error.contains("not a database"), "{r:?}");
    assert_eq!(
        std::fs::read(&r.moved_to).unwrap(),
        vec![0x5a; 8192],
        "kept"
    );
    assert_eq!(o.take_replaced(), None, "announced once");
    assert_eq!(o.commit(event("a"), "sw").unwrap().seq, 1);

    // A real outbox whose tables are damaged: the counter is still readable.
    let path = dir.path().join("torn.sqlite");
    {
        let mut o = Outbox::open(&path).unwrap();
        for i in 0..200 {
            o.commit(with_evidence(&format!("e{i}"), &[1; 3000]), "sw")
                .unwrap();
        }
        o.conn
            .execute_batch("PRAGMA wal_checkpoint(TRUNCATE);")
            .unwrap();
    }
    let mut bytes = std::fs::read(&path).unwrap();
    let page = 4096;
    for b in &mut bytes[page * 3..page * 40] {
        *b = 0xA5;
    }
    std::fs::write(&path, &bytes).unwrap();
    let mut o = Outbox::open(&path).unwrap();
    let r = o.take_replaced().expect("replaced");
    assert!(r.error.contains("malformed"), "{r:?}");
    assert_eq!(r.seq_from, 200, "seq goes on after the damaged file's");
    assert_eq!(o.commit(event("x"), "sw").unwrap().seq, 201);
    assert_eq!(o.depth().unwrap(), 1);
}

#[test]
fn ages_follow_elapsed_time_when_the_time_of_day_jumps() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.sqlite");
    let limits = Limits {
        max_age: Duration::from_secs(3600),
        ..Limits::default()
    };
    let year = Duration::from_secs(365 * 86_400);
    // A box without a real-time clock: it boots a year behind, stores an event, then
    // NTP steps the clock forward.
    let clock = clock();
    let booted = clock.wall();
    let mut o = Outbox::open_with(&path, limits, clock.shared()).unwrap();
    o.commit(event("a"), "sw").unwrap();
    clock.advance(Duration::from_secs(60));
    clock.set_wall(booted + year);
    o.commit(event("b"), "sw").unwrap();
    assert_eq!(o.enforce_limits().unwrap(), Dropped::default());
    assert_eq!(
        o.oldest_age().unwrap(),
        Some(Duration::from_secs(60)),
        "a minute old, not a year"
    );
    // Then it is set back a year: still nothing is younger than an hour of real time.
    clock.advance(Duration::from_secs(600));
    clock.set_wall(booted);
    assert_eq!(o.enforce_limits().unwrap(), Dropped::default());
    o.commit(event("c"), "sw").unwrap();
    // Real time passes: a is older than an hour first, then b.
    clock.advance(Duration::from_secs(3600 - 660 + 1));
    assert_eq!(
        o.enforce_limits().unwrap(),
        Dropped {
            count: 1,
            last_seq: 1,
            ..Dropped::default()
        }
    );
    clock.advance(Duration::from_secs(60));
    assert_eq!(o.enforce_limits().unwrap().last_seq, 2);
    assert_eq!(pending_parts(&mut o), vec![(3, Part::Event)]);
}

#[test]
fn rows_of_an_earlier_run_keep_their_times_and_nothing_younger_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.sqlite");
    let limits = Limits {
        max_age: Duration::from_secs(3600),
        ..Limits::default()
    };
    let clock = clock();
    let start = clock.wall();
    {
        let mut o = Outbox::open_with(&path, limits, clock.shared()).unwrap();
        o.commit(event("a"), "sw").unwrap();
    }
    // The next run starts with its clock a day behind, stores b, then NTP steps forward.
    clock.set_wall(start - Duration::from_secs(86_400));
    let mut o = Outbox::open_with(&path, limits, clock.shared()).unwrap();
    o.commit(event("b"), "sw").unwrap();
    assert_eq!(
        o.enforce_limits().unwrap(),
        Dropped::default(),
        "a is in the future"
    );
    clock.set_wall(start + Duration::from_secs(1800));
    // b moved with the jump and is young; a was stored half an hour ago.
    assert_eq!(o.enforce_limits().unwrap(), Dropped::default());
    clock.advance(Duration::from_secs(1801));
    // a is now older than an hour; b (stored at about `start`, 1.5 days of its clock
    // later in real time: moved to `start + 1800 s`) is 30 min old.
    assert_eq!(o.enforce_limits().unwrap().last_seq, 1);
    assert_eq!(pending_parts(&mut o), vec![(2, Part::Event)]);
}

#[test]
fn errors_say_whether_they_may_pass() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("o.sqlite");
    let o = Outbox::open(&path).unwrap();
    // Another process holds the write lock.
    let holder = Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE;").unwrap();
    let mut other = Connection::open(&path).unwrap();
    other.busy_timeout(Duration::from_millis(10)).unwrap();
    let locked = other
        .transaction()
        .and_then(|tx| tx.execute("UPDATE counters SET value = 0 WHERE name = 'x'", []))
        .unwrap_err();
    let e = OutboxError::Sqlite {
        path: path.clone(),
        source: locked,
    };
    assert!(e.may_pass() && !e.is_damage(), "{e}");
    drop(o);
    let garbage = dir.path().join("g.sqlite");
    std::fs::write(&garbage, vec![1; 4096]).unwrap();
    let damaged = Connection::open(&garbage)
        .unwrap()
        .execute_batch("PRAGMA journal_mode = WAL;")
        .unwrap_err();
    let e = OutboxError::Sqlite {
        path: garbage,
        source: damaged,
    };
    assert!(e.is_damage() && !e.may_pass(), "{e}");
    let e = OutboxError::Folder {
        path: path.clone(),
        source: std::io::Error::from(std::io::ErrorKind::StorageFull),
    };
    assert!(e.may_pass());
    let e = OutboxError::Folder {
        path,
        source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
    };
    assert!(!e.may_pass());
}

#[test]
fn skipped_seqs_are_a_counted_gap() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = Outbox::open(&dir.path().join("o.sqlite")).unwrap();
    o.commit(event("a"), "sw").unwrap();
    assert_eq!(o.skip_seqs(3).unwrap(), 4);
    assert_eq!(o.commit(event("b"), "sw").unwrap().seq, 5);
    assert_eq!(o.dropped_total().unwrap(), 3);
}
