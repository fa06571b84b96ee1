//! The window's behaviour, driven through [`sim`](super::sim): every PUBACK
//! in these tests is checked against what the model client wrote with it.

use super::sim::{Sent, Sim, row, run};
use super::*;
use crate::outbox::Part;

#[test]
fn every_script_delivers_each_row_once_and_maps_every_puback() {
    // (what, max_inflight, highest packet id, script); each ends with "up, then deliver all".
    let scripts: &[(&str, usize, u16, &str)] = &[
        (
            "reconnect while rows are in flight",
            4,
            8,
            "store 6; up; fill; write 4; ack 1; ack 3; down; up; fill; write 2",
        ),
        (
            "two outages, the second before anything was written",
            3,
            6,
            "store 5; up; fill; write 3; ack 2; down; up; fill; down; store 2; up",
        ),
        (
            "a command result and a snapshot just before an outage",
            4,
            8,
            "store 4; up; send online; fill; write; send snapshot; send result; fill; write 1;
             down; up; send online; fill; write 9; ack rev",
        ),
        (
            "a command result and a snapshot during an outage",
            4,
            8,
            "store 4; up; fill; write 2; down; send snapshot; send result; store 2;
             up; fill; flush; fill; write 9; ack",
        ),
        (
            "QoS 0 stats between rows",
            3,
            8,
            "stats; store 3; up; stats; fill; stats; write 2; stats; ack 1; fill; stats;
             write 9; ack rev; stats",
        ),
        (
            "packet ids wrap around many times",
            3,
            4,
            "store 40; up; send online; stats",
        ),
        (
            "acks out of order make the client hold a colliding publish",
            4,
            4,
            "store 3; up; send online; fill; write 4; ack 4; ack 2; ack 3; store 3; fill;
             write 9; ack 1; write 9",
        ),
        (
            "an outage while a colliding publish is held",
            4,
            4,
            "store 3; up; send online; fill; write 4; ack 2; store 2; fill; write 9;
             down; up; fill; write 9; ack rev",
        ),
        (
            "refused rows are passed over and handed again out of order",
            4,
            8,
            "store 6; up; fill; write 4; refuse 1; ack 2; refuse 3; fill; write; retry; write;
             ack; retry; write; refuse 8",
        ),
        (
            "a refused row across a reconnect",
            3,
            6,
            "store 4; up; fill; write 3; refuse 2; down; up; fill; write; ack; retry; write",
        ),
        (
            "a publish held on a packet id that is then refused",
            4,
            4,
            "store 3; up; send online; fill; write 4; ack 4; ack 2; ack 3; store 3; fill;
             write 9; refuse 1",
        ),
    ];
    for (name, max_inflight, max_pkid, script) in scripts {
        let sim = run(*max_inflight, *max_pkid, script);
        assert!(sim.outbox.is_empty(), "{name}: left {:?}", sim.outbox);
        let twice: Vec<_> = sim.delivered.iter().filter(|(_, n)| **n != 1).collect();
        assert!(twice.is_empty(), "{name}: acknowledged twice: {twice:?}");
        assert!(sim.held.is_empty(), "{name}: held {:?}", sim.held);
    }
}

fn pos(seq: u64) -> Position {
    Position {
        seq,
        part: Part::Event,
    }
}

#[test]
fn after_a_reconnect_every_unacknowledged_row_is_due_from_the_oldest() {
    let mut sim = Sim::new(4, 8);
    sim.store(7); // seq 1..=7; 2, 4, 6 with evidence: 10 rows
    sim.up();
    sim.fill();
    sim.write(usize::MAX);
    assert_eq!(sim.window.rows_in_flight(), 4);
    assert_eq!(sim.window.fetch(), None, "the window is full");
    sim.ack(2); // seq 2's event
    assert_eq!(
        sim.window.fetch(),
        Some(Fetch {
            after: Position {
                seq: 3,
                part: Part::Event
            },
            limit: 1
        })
    );
    sim.down();
    assert_eq!(sim.window.fetch(), None, "nothing goes out while down");
    assert_eq!((sim.window.queued(), sim.window.rows_in_flight()), (0, 0));
    // A PUBACK of the old connection acknowledges nothing any more.
    assert_eq!(sim.window.puback(0, 1, 0), Acked::Unknown);
    sim.up();
    assert_eq!(
        sim.window.fetch(),
        Some(Fetch {
            after: Position::default(),
            limit: 4
        })
    );
    sim.fill();
    let again: Vec<Sent> = sim.client.channel.iter().cloned().collect();
    let evidence_2 = Position {
        seq: 2,
        part: Part::Evidence,
    };
    assert_eq!(
        again,
        vec![
            Sent::Row(pos(1)),
            Sent::Row(evidence_2),
            Sent::Row(pos(3)),
            Sent::Row(pos(4))
        ]
    );
    sim.deliver_all();
    assert!(sim.delivered.values().all(|n| *n == 1));
    assert_eq!(sim.delivered.len(), 10);
}

#[test]
fn a_puback_for_an_unknown_packet_id_acknowledges_nothing() {
    let mut sim = Sim::new(4, 8);
    sim.store(2);
    sim.up();
    sim.fill();
    sim.send("online", Qos::AtLeastOnce);
    sim.write(usize::MAX);
    assert_eq!(sim.window.puback(sim.epoch, 77, 0), Acked::Unknown);
    assert_eq!(sim.window.puback(sim.epoch, 0, 0), Acked::Unknown);
    assert_eq!(sim.window.rows_in_flight(), 3);
    // The rows in flight are still acknowledged by their own PUBACKs.
    sim.ack_all(true);
    assert_eq!(sim.delivered.len(), 3);
    assert_eq!(sim.others_acked, vec!["online"]);
    // Acknowledged once: the same packet id again is unknown.
    assert_eq!(sim.window.puback(sim.epoch, 1, 0), Acked::Unknown);
}

#[test]
fn a_report_that_does_not_match_its_ticket_stops_the_epoch() {
    let other = |q| Item::Other(q);
    let a_row = || Item::Row(row(pos(1)));
    let cases: &[(&str, Vec<Item>, &[u16])] = &[
        (
            "QoS 0 written with a packet id",
            vec![other(Qos::AtMostOnce)],
            &[3],
        ),
        ("a row written as QoS 0", vec![a_row()], &[0]),
        ("a report without a ticket", vec![], &[1]),
        (
            "a packet id reused before its PUBACK",
            vec![other(Qos::AtLeastOnce), a_row()],
            &[1, 1],
        ),
    ];
    for (name, items, reports) in cases {
        let mut w = Window::new(4);
        w.link_up(3);
        for item in items {
            w.handed(item.clone());
        }
        let (last, before) = reports.split_last().unwrap();
        for pkid in before {
            w.published(3, *pkid).unwrap();
        }
        let err = w.published(3, *last).unwrap_err();
        assert_eq!((err.epoch, err.pkid), (3, *last), "{name}");
        assert!(!w.is_up(), "{name}: nothing more goes out in this epoch");
        assert_eq!(w.fetch(), None, "{name}");
        assert_eq!(
            w.puback(3, 1, 0),
            Acked::Unknown,
            "{name}: acks are not trusted"
        );
        assert_eq!(
            w.published(3, 2),
            Ok(()),
            "{name}: later reports are ignored"
        );
        // The next connection starts again from the oldest stored row.
        w.link_down(4);
        w.link_up(4);
        assert_eq!(
            w.fetch(),
            Some(Fetch {
                after: Position::default(),
                limit: 4
            }),
            "{name}"
        );
    }
}

#[test]
fn reports_and_acks_of_an_epoch_that_is_over_are_ignored() {
    let mut w = Window::new(4);
    w.link_up(0);
    w.handed(Item::Row(row(pos(1))));
    w.published(0, 1).unwrap();
    w.link_down(1);
    w.link_up(1);
    w.handed(Item::Row(row(pos(1))));
    // Epoch 0's report and PUBACK touch nothing of epoch 1.
    assert_eq!(w.published(0, 5), Ok(()));
    assert_eq!(w.puback(0, 1, 0), Acked::Unknown);
    assert_eq!(w.queued(), 1);
    w.published(1, 2).unwrap();
    assert_eq!(w.puback(1, 2, 0), Acked::Row(row(pos(1))));
    // An older epoch announced late changes nothing.
    w.link_down(0);
    assert!(w.is_up());
}

#[test]
fn rows_the_outbox_dropped_are_not_fetched() {
    let mut w = Window::new(8);
    w.link_up(0);
    w.handed(Item::Row(row(pos(1))));
    w.skip_to(Position {
        seq: 30,
        part: Part::Evidence,
    });
    assert_eq!(
        w.fetch(),
        Some(Fetch {
            after: Position {
                seq: 30,
                part: Part::Evidence
            },
            limit: 7
        })
    );
}
