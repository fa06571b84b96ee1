//! Tracker behaviour on synthetic detection sequences.

use super::*;

const PERSON: usize = 0;
const BICYCLE: usize = 1;
const CAR: usize = 2;

fn det(class_id: usize, score: f32, cx: f32, cy: f32, w: f32, h: f32) -> Detection {
    Detection {
        class_id,
        score,
        bbox: PxBox([cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0]),
    }
}

fn person(cx: f32, cy: f32) -> Detection {
    det(PERSON, 0.9, cx, cy, 60.0, 120.0)
}

/// Frame `n` at `fps`.
fn at(n: u32, fps: u32) -> Duration {
    Duration::from_secs(u64::from(n)) / fps
}

fn ids(t: &Tracker) -> Vec<u64> {
    t.confirmed().map(|t| t.id).collect()
}

fn by_id(t: &Tracker, id: u64) -> Option<&Track> {
    t.confirmed().find(|t| t.id == id)
}

/// Deterministic jitter in [-amp, amp].
struct Jitter(u32);

impl Jitter {
    fn next(&mut self, amp: f32) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 17;
        self.0 ^= self.0 << 5;
        (self.0 % 2001) as f32 / 1000.0 * amp - amp
    }
}

#[test]
fn ids_only_after_confirm_hits() {
    let mut t = Tracker::new(TrackerConfig::default());
    t.update(at(0, 5), &[person(100.0, 100.0)]);
    assert!(ids(&t).is_empty());
    t.update(at(1, 5), &[person(102.0, 100.0)]);
    assert!(ids(&t).is_empty());
    t.update(at(2, 5), &[person(104.0, 100.0)]);
    assert_eq!(ids(&t), [1]);
    let tr = by_id(&t, 1).unwrap();
    assert_eq!(tr.state, TrackState::Confirmed);
    assert!(tr.visible());
    assert_eq!(tr.hits, 3);
    assert_eq!(tr.first_seen, at(0, 5));
    assert_eq!(tr.last_seen, at(2, 5));
    assert_eq!(tr.bbox, person(104.0, 100.0).bbox);

    let mut five = Tracker::new(TrackerConfig {
        confirm_hits: 5,
        ..TrackerConfig::default()
    });
    for n in 0..4 {
        five.update(at(n, 5), &[person(100.0, 100.0)]);
        assert!(ids(&five).is_empty(), "frame {n}");
    }
    five.update(at(4, 5), &[person(100.0, 100.0)]);
    assert_eq!(ids(&five), [1]);
}

#[test]
fn a_one_frame_false_positive_never_gets_an_id() {
    let mut t = Tracker::new(TrackerConfig::default());
    // A false positive flickering in a different place every other frame.
    for n in 0..20u32 {
        let dets: Vec<_> = if n % 2 == 0 {
            vec![person(100.0 + 200.0 * (n / 2) as f32, 500.0)]
        } else {
            vec![]
        };
        t.update(at(n, 5), &dets);
        assert!(ids(&t).is_empty(), "frame {n}");
    }
    // Interrupted before confirmation: the count starts again.
    t.update(at(20, 5), &[person(300.0, 300.0)]);
    t.update(at(21, 5), &[person(300.0, 300.0)]);
    t.update(at(22, 5), &[]);
    t.update(at(23, 5), &[person(300.0, 300.0)]);
    t.update(at(24, 5), &[person(300.0, 300.0)]);
    assert!(ids(&t).is_empty());
    t.update(at(25, 5), &[person(300.0, 300.0)]);
    // The first real object gets the first id: none was spent on the others.
    assert_eq!(ids(&t), [1]);
}

#[test]
fn two_people_crossing_keep_their_ids() {
    let mut t = Tracker::new(TrackerConfig::default());
    let fps = 5;
    let mut jit = Jitter(7);
    let (mut id_a, mut id_b) = (0, 0);
    for n in 0..40 {
        let s = n as f32 / fps as f32;
        // A walks right, B walks left, 20 px apart vertically: they overlap
        // almost completely around n = 20.
        let a = person(100.0 + 100.0 * s + jit.next(2.0), 300.0);
        let b = person(500.0 - 100.0 * s + jit.next(2.0), 320.0);
        // Detector output order changes from frame to frame.
        let dets = if n % 3 == 0 {
            vec![b.clone(), a.clone()]
        } else {
            vec![a.clone(), b.clone()]
        };
        t.update(at(n, fps), &dets);
        if n == 2 {
            let found: Vec<_> = t.confirmed().collect();
            assert_eq!(found.len(), 2);
            id_a = found.iter().find(|t| t.bbox == a.bbox).unwrap().id;
            id_b = found.iter().find(|t| t.bbox == b.bbox).unwrap().id;
        }
        if n >= 2 {
            assert_eq!(ids(&t).len(), 2, "frame {n}");
            assert_eq!(by_id(&t, id_a).unwrap().bbox, a.bbox, "frame {n}: A");
            assert_eq!(by_id(&t, id_b).unwrap().bbox, b.bbox, "frame {n}: B");
        }
    }
    assert!(by_id(&t, id_a).unwrap().velocity[0] > 80.0);
    assert!(by_id(&t, id_b).unwrap().velocity[0] < -80.0);
}

#[test]
fn occlusion_shorter_than_max_lost_keeps_the_id() {
    let mut t = Tracker::new(TrackerConfig::default());
    let fps = 5;
    let x = |n: u32| 100.0 + 60.0 * n as f32 / fps as f32;
    for n in 0..10 {
        t.update(at(n, fps), &[person(x(n), 300.0)]);
    }
    assert_eq!(ids(&t), [1]);
    // Behind a pole for 1.4 s (7 frames).
    for n in 10..17 {
        t.update(at(n, fps), &[]);
        let tr = by_id(&t, 1).expect("still known while lost");
        assert_eq!(tr.state, TrackState::Lost);
        assert!(!tr.visible());
        // While lost, the box is the prediction: it keeps walking.
        let c = tr.centre();
        assert!((c[0] - x(n)).abs() < 5.0, "frame {n}: {} vs {}", c[0], x(n));
        assert_eq!(tr.last_seen, at(9, fps));
    }
    t.update(at(17, fps), &[person(x(17), 300.0)]);
    assert_eq!(ids(&t), [1]);
    let tr = by_id(&t, 1).unwrap();
    assert_eq!(tr.state, TrackState::Confirmed);
    assert_eq!(tr.bbox, person(x(17), 300.0).bbox);
}

#[test]
fn occlusion_longer_than_max_lost_gives_a_new_id() {
    let mut t = Tracker::new(TrackerConfig::default());
    let fps = 5;
    let x = |n: u32| 100.0 + 60.0 * n as f32 / fps as f32;
    for n in 0..10 {
        t.update(at(n, fps), &[person(x(n), 300.0)]);
    }
    assert_eq!(ids(&t), [1]);
    // Last seen at frame 9 (1.8 s); gone for 2 s at frame 19.
    for n in 10..19 {
        t.update(at(n, fps), &[]);
        assert_eq!(ids(&t), [1], "frame {n}");
    }
    t.update(at(19, fps), &[]);
    assert!(ids(&t).is_empty());
    for n in 20..22 {
        t.update(at(n, fps), &[person(x(n), 300.0)]);
        assert!(ids(&t).is_empty());
    }
    t.update(at(22, fps), &[person(x(22), 300.0)]);
    assert_eq!(ids(&t), [2]);

    // Without frames in between (the stream skipped), the same holds.
    let mut t = Tracker::new(TrackerConfig::default());
    for n in 0..5 {
        t.update(at(n, fps), &[person(100.0, 300.0)]);
    }
    t.update(
        at(4, fps) + Duration::from_millis(1900),
        &[person(100.0, 300.0)],
    );
    assert_eq!(ids(&t), [1]);
    t.update(
        at(4, fps) + Duration::from_millis(4000),
        &[person(100.0, 300.0)],
    );
    assert!(ids(&t).is_empty());
}

#[test]
fn low_scores_extend_a_confirmed_track_but_never_start_one() {
    let mut t = Tracker::new(TrackerConfig::default());
    for n in 0..5 {
        t.update(at(n, 5), &[person(100.0 + 4.0 * n as f32, 300.0)]);
    }
    assert_eq!(ids(&t), [1]);
    // Partly occluded: the detector is unsure for 4 s, longer than max_lost.
    for n in 5..25 {
        let mut d = person(100.0 + 4.0 * n as f32, 300.0);
        d.score = 0.3;
        t.update(at(n, 5), &[d.clone()]);
        let tr = by_id(&t, 1).unwrap();
        assert!(tr.visible(), "frame {n}");
        assert_eq!(tr.score, 0.3);
        assert_eq!(tr.bbox, d.bbox);
    }
    // Below low_score: ignored, the track is lost.
    let mut d = person(200.0, 300.0);
    d.score = 0.05;
    t.update(at(25, 5), &[d]);
    assert_eq!(by_id(&t, 1).unwrap().state, TrackState::Lost);

    // Weak detections alone (low, or high but under new_track_score).
    let mut t = Tracker::new(TrackerConfig::default());
    for n in 0..30 {
        let mut a = person(100.0, 300.0);
        a.score = 0.3;
        let mut b = person(600.0, 300.0);
        b.score = 0.42;
        t.update(at(n, 5), &[a, b]);
        assert!(ids(&t).is_empty());
        assert!(t.tentative.is_empty());
    }
}

#[test]
fn a_low_score_detection_does_not_steal_from_a_high_one() {
    // A weak duplicate box next to the real one: the high one is matched
    // first, the weak one is left over.
    let mut t = Tracker::new(TrackerConfig::default());
    for n in 0..5 {
        t.update(at(n, 5), &[person(100.0, 300.0)]);
    }
    let mut weak = person(110.0, 300.0);
    weak.score = 0.2;
    let strong = person(130.0, 300.0);
    t.update(at(5, 5), &[weak, strong.clone()]);
    assert_eq!(by_id(&t, 1).unwrap().bbox, strong.bbox);
}

#[test]
fn classes_never_swap() {
    // A person standing at a bicycle: identical boxes, detector order
    // alternating. A class-blind tracker would swap them on every order change.
    let mut t = Tracker::new(TrackerConfig::default());
    let p = |x: f32| det(PERSON, 0.9, x, 300.0, 60.0, 120.0);
    let b = |x: f32| det(BICYCLE, 0.7, x, 300.0, 60.0, 120.0);
    for n in 0..30u32 {
        // From frame 15 the person walks away; the bicycle stays.
        let px = 200.0 + 80.0 * n.saturating_sub(15) as f32 / 5.0;
        let dets = if n % 2 == 0 {
            vec![p(px), b(200.0)]
        } else {
            vec![b(200.0), p(px)]
        };
        t.update(at(n, 5), &dets);
        if n >= 2 {
            let tracks: Vec<_> = t.confirmed().collect();
            assert_eq!(tracks.len(), 2, "frame {n}");
            for tr in tracks {
                match tr.class_id {
                    PERSON => {
                        assert_eq!(tr.id, 1);
                        assert_eq!(tr.score, 0.9);
                        assert_eq!(tr.bbox, p(px).bbox);
                    }
                    BICYCLE => {
                        assert_eq!(tr.id, 2);
                        assert_eq!(tr.score, 0.7);
                        assert_eq!(tr.bbox, b(200.0).bbox);
                    }
                    other => panic!("class {other}"),
                }
            }
        }
    }

    // A car driving past a standing person, both detected: no swap, and the
    // car's track is not taken over by the person box it overlaps.
    let mut t = Tracker::new(TrackerConfig::default());
    for n in 0..30u32 {
        let cx = 100.0 + 150.0 * n as f32 / 5.0;
        let car = det(CAR, 0.8, cx, 320.0, 200.0, 120.0);
        let walker = person(500.0, 300.0);
        t.update(at(n, 5), &[car.clone(), walker.clone()]);
        if n >= 2 {
            let car_track = t.confirmed().find(|t| t.class_id == CAR).unwrap();
            let person_track = t.confirmed().find(|t| t.class_id == PERSON).unwrap();
            assert_eq!(car_track.bbox, car.bbox, "frame {n}");
            assert_eq!(person_track.bbox, walker.bbox, "frame {n}");
            assert_eq!((car_track.id, person_track.id), (1, 2));
        }
    }
}

/// Speed after `secs` of walking at 50 px/s with a few px of detector jitter.
fn measured_speed(fps: u32, secs: u32) -> (f32, [f32; 2]) {
    let mut t = Tracker::new(TrackerConfig::default());
    let mut jit = Jitter(99);
    for n in 0..=fps * secs {
        let s = n as f32 / fps as f32;
        let d = det(
            PERSON,
            0.9,
            300.0 + 50.0 * s + jit.next(2.0),
            400.0 + jit.next(2.0),
            60.0 + jit.next(2.0),
            120.0 + jit.next(2.0),
        );
        t.update(at(n, fps), &[d]);
    }
    let tr = by_id(&t, 1).unwrap();
    (tr.speed(), tr.velocity)
}

#[test]
fn velocity_is_right_and_frame_rate_independent() {
    // Exact motion: the model converges to the true velocity.
    let mut t = Tracker::new(TrackerConfig::default());
    for n in 0..25 {
        t.update(
            at(n, 5),
            &[person(300.0 + 10.0 * n as f32, 400.0 - 6.0 * n as f32)],
        );
    }
    let v = by_id(&t, 1).unwrap().velocity;
    assert!(
        (v[0] - 50.0).abs() < 0.5 && (v[1] + 30.0).abs() < 0.5,
        "{v:?}"
    );

    for fps in [2, 5, 10] {
        let (speed, v) = measured_speed(fps, 10);
        assert!((speed - 50.0).abs() < 5.0, "{fps} fps: {speed} px/s");
        assert!(v[0] > 45.0 && v[1].abs() < 5.0, "{fps} fps: {v:?}");
    }

    // Skipped frames (irregular dt) do not disturb it either.
    let mut t = Tracker::new(TrackerConfig::default());
    let mut ms = 0u64;
    for n in 0..40u64 {
        ms += [200, 200, 600, 100, 500][n as usize % 5];
        let x = 300.0 + 50.0 * ms as f32 / 1000.0;
        t.update(Duration::from_millis(ms), &[person(x, 400.0)]);
    }
    let speed = by_id(&t, 1).unwrap().speed();
    assert!((speed - 50.0).abs() < 1.0, "irregular: {speed}");
}

#[test]
fn still_since_follows_real_movement_only() {
    let mut t = Tracker::new(TrackerConfig::default());
    let mut jit = Jitter(3);
    let fps = 5;
    // Standing still for 5 s, jittering by up to 4 px (radius 0.3 × 120 = 36 px).
    for n in 0..25 {
        let d = person(400.0 + jit.next(4.0), 300.0 + jit.next(4.0));
        t.update(at(n, fps), &[d]);
    }
    let tr = by_id(&t, 1).unwrap();
    assert_eq!(tr.still_since, Duration::ZERO);
    assert_eq!(tr.still_for(at(24, fps)), at(24, fps));
    assert!(tr.speed() < 10.0, "speed {}", tr.speed());

    // Walks 100 px/s for 2 s.
    let mut x = 400.0;
    for n in 25..35 {
        x += 100.0 / fps as f32;
        t.update(at(n, fps), &[person(x, 300.0)]);
    }
    let tr = by_id(&t, 1).unwrap();
    assert!(tr.still_since >= at(33, fps), "{:?}", tr.still_since);
    assert!(tr.still_for(at(34, fps)) <= Duration::from_millis(200));

    // Stops again for 3 s.
    let stop = at(34, fps);
    for n in 35..50 {
        t.update(
            at(n, fps),
            &[person(x + jit.next(4.0), 300.0 + jit.next(4.0))],
        );
    }
    let tr = by_id(&t, 1).unwrap();
    assert!(
        tr.still_since >= stop - Duration::from_millis(400) && tr.still_since <= stop,
        "{:?}",
        tr.still_since
    );
    assert!(tr.still_for(at(49, fps)) >= Duration::from_secs(3));
}

#[test]
fn pts_going_backwards_resets() {
    let mut t = Tracker::new(TrackerConfig::default());
    for n in 10..15 {
        t.update(at(n, 5), &[person(100.0, 100.0)]);
    }
    assert_eq!(ids(&t), [1]);
    // The same pts again is not a restart.
    t.update(at(14, 5), &[person(100.0, 100.0)]);
    assert_eq!(ids(&t), [1]);
    // A file looped: time starts at 0 again.
    t.update(at(0, 5), &[person(100.0, 100.0)]);
    assert!(ids(&t).is_empty());
    t.update(at(1, 5), &[person(100.0, 100.0)]);
    t.update(at(2, 5), &[person(100.0, 100.0)]);
    // Same object, new stream: a new id, never a reused one.
    assert_eq!(ids(&t), [2]);
    assert_eq!(by_id(&t, 2).unwrap().first_seen, at(0, 5));

    t.reset();
    assert!(ids(&t).is_empty());
    for n in 0..3 {
        t.update(at(n, 5), &[person(100.0, 100.0)]);
    }
    assert_eq!(ids(&t), [3]);
}

#[test]
fn broken_detections_are_ignored() {
    let mut t = Tracker::new(TrackerConfig::default());
    let bad = [
        Detection {
            class_id: PERSON,
            score: f32::NAN,
            bbox: PxBox([0.0, 0.0, 10.0, 10.0]),
        },
        Detection {
            class_id: PERSON,
            score: 0.9,
            bbox: PxBox([0.0, f32::INFINITY, 10.0, 10.0]),
        },
        Detection {
            class_id: PERSON,
            score: 0.9,
            bbox: PxBox([50.0, 50.0, 40.0, 60.0]),
        },
        Detection {
            class_id: PERSON,
            score: 0.9,
            bbox: PxBox([50.0, 50.0, 50.0, 60.0]),
        },
    ];
    for n in 0..10 {
        t.update(at(n, 5), &bad);
    }
    assert!(ids(&t).is_empty());
    assert!(t.tentative.is_empty());
}

/// `count` people on a grid, each walking its own straight line.
fn crowd(count: usize, n: u32, fps: u32, jit: &mut Jitter) -> Vec<Detection> {
    let s = n as f32 / fps as f32;
    (0..count)
        .map(|k| {
            let (col, row) = ((k % 10) as f32, (k / 10) as f32);
            let vx = ((k * 37) % 13) as f32 - 6.0;
            let vy = ((k * 53) % 11) as f32 - 5.0;
            det(
                PERSON,
                0.9,
                100.0 + 170.0 * col + vx * s + jit.next(2.0),
                80.0 + 120.0 * row + vy * s + jit.next(2.0),
                50.0,
                90.0,
            )
        })
        .collect()
}

#[test]
fn a_hundred_people_keep_their_ids_deterministically() {
    let run = || {
        let mut t = Tracker::new(TrackerConfig::default());
        let mut jit = Jitter(12345);
        let mut history = Vec::new();
        for n in 0..60 {
            let dets = crowd(100, n, 5, &mut jit);
            t.update(at(n, 5), &dets);
            if n >= 2 {
                // Every track sits on its own person: id k+1 on person k.
                assert_eq!(ids(&t).len(), 100, "frame {n}");
                for tr in t.confirmed() {
                    assert!(tr.visible());
                    assert_eq!(
                        tr.bbox,
                        dets[tr.id as usize - 1].bbox,
                        "frame {n} id {}",
                        tr.id
                    );
                }
            }
            history.push(
                t.confirmed()
                    .map(|t| (t.id, t.bbox, t.velocity))
                    .collect::<Vec<_>>(),
            );
        }
        history
    };
    let first = run();
    assert_eq!(first, run());
}

#[test]
fn held_frames_never_confirm_a_one_frame_false_positive() {
    let mut t = Tracker::new(TrackerConfig::default());
    // A detector's one-frame mistake, then frames the detector did not see.
    t.update(at(0, 5), &[person(300.0, 300.0)]);
    for n in 1..30 {
        t.hold(at(n, 5));
    }
    assert!(ids(&t).is_empty(), "a held frame counted as a sighting");
    // The next analysed frame does not see it: it is gone for good.
    t.update(at(30, 5), &[]);
    t.update(at(31, 5), &[person(300.0, 300.0)]);
    assert!(ids(&t).is_empty());
}

#[test]
fn held_frames_keep_a_still_object_visible_past_max_lost() {
    let mut t = Tracker::new(TrackerConfig::default());
    for n in 0..3 {
        t.update(at(n, 5), &[person(300.0, 300.0)]);
    }
    assert_eq!(ids(&t), vec![1]);
    // Ten seconds of nothing moving: far longer than `max_lost`.
    for n in 3..53 {
        t.hold(at(n, 5));
        assert!(by_id(&t, 1).unwrap().visible(), "frame {n}");
    }
    t.update(at(53, 5), &[person(300.0, 300.0)]);
    assert_eq!(ids(&t), vec![1], "the same object keeps its id");
    // A lost track still ages out while frames are held.
    t.update(at(54, 5), &[]);
    for n in 55..70 {
        t.hold(at(n, 5));
    }
    assert!(ids(&t).is_empty());
}
