//! Scene model on synthetic frames: a textured, noisy "street" (640×480, 5 fps)
//! with blocks added, removed, moved, and the view's exposure or position changed.

mod kit;
mod regions;

use super::*;
use kit::*;

#[test]
fn nothing_is_reported_in_warm_up_or_on_a_static_scene() {
    let mut m = SceneModel::new(SceneConfig::default());
    let ups = play(&mut m, 0, at(30.0), |_| (vec![], NORMAL));
    for (n, u) in &ups {
        assert!(u.regions.is_empty(), "frame {n}: {:?}", u.regions);
        assert!(
            u.motion < 0.002,
            "frame {n}: noise counted as motion {}",
            u.motion
        );
    }
    assert_eq!(ups[0].1.motion, 0.0);
}

#[test]
fn an_object_put_down_during_warm_up_is_reported_when_it_ends() {
    // Put down at 1 s, still from then: warm-up (3 s) must not learn it as part
    // of the street. A box restarted while someone dumps a bag sees it.
    let cfg = SceneConfig::default();
    let mut m = SceneModel::new(cfg.clone());
    let block = Block::at(200, 150, 60, 50, PARCEL);
    let ups = play(&mut m, 0, at(10.0), |n| {
        let b = if n >= at(1.0) { vec![block] } else { vec![] };
        (b, NORMAL)
    });
    let first = first_with_region(&ups).expect("the object is reported");
    assert_eq!(first, at(cfg.warmup_s), "reported at frame {first}");
    let r = &ups.last().unwrap().1.regions;
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(iou(r[0].bbox, block.bbox()) > 0.8, "bbox {:?}", r[0].bbox);
    assert_eq!(r[0].appeared, pts(at(1.0)));
}

#[test]
fn what_the_first_frame_showed_and_left_during_warm_up_is_not_reported() {
    for look in [PARCEL, Look::Flat([235, 235, 235])] {
        let mut m = SceneModel::new(SceneConfig::default());
        let car = Block::at(300, 100, 120, 80, look);
        let ups = play(&mut m, 0, at(20.0), |n| {
            let b = if n < at(1.0) { vec![car] } else { vec![] };
            (b, NORMAL)
        });
        assert_eq!(first_with_region(&ups), None, "{look:?}");
    }
}

#[test]
fn an_added_object_is_reported_after_still_s_with_a_stable_id_and_goes_when_removed() {
    let mut m = SceneModel::new(SceneConfig::default());
    let block = Block::at(200, 150, 60, 50, PARCEL);
    let (drop, lift) = (at(5.0), at(15.0));
    let ups = play(&mut m, 0, at(20.0), |n| {
        let b = if (drop..lift).contains(&n) {
            vec![block]
        } else {
            vec![]
        };
        (b, NORMAL)
    });
    let first = first_with_region(&ups).expect("the object is reported");
    // Still from the drop frame on: reported `still_s` (10 frames) later, not before.
    assert_eq!(first, drop + at(2.0), "reported at frame {first}");
    let r0 = ups[first as usize].1.regions[0].clone();
    assert_eq!(r0.since, pts(first));
    assert!(iou(r0.bbox, block.bbox()) > 0.8, "bbox {:?}", r0.bbox);
    for (i, truth) in r0.bbox.0.iter().zip(block.bbox().0).enumerate() {
        assert!((truth.1 - truth.0).abs() <= 8.0, "edge {i}: {:?}", r0.bbox);
    }
    let true_area = (60.0 * 50.0) / (W * H) as f32;
    assert!((r0.area / true_area - 1.0).abs() < 0.25, "area {}", r0.area);
    for (n, u) in &ups[first as usize..lift as usize] {
        assert_eq!(u.regions.len(), 1, "frame {n}: {:?}", u.regions);
        assert_eq!(u.regions[0].id, r0.id, "frame {n}");
        assert_eq!(u.regions[0].since, r0.since);
        assert!(iou(u.regions[0].bbox, r0.bbox) > 0.9, "frame {n}");
    }
    // The removal frame moves; from the next the ground is seen again: the
    // region is cleared at once, and gone once the ground has been seen for
    // `still_s`.
    let clean = lift + at(2.0);
    for (n, u) in &ups[lift as usize + 1..clean as usize] {
        assert_eq!(u.regions.len(), 1, "frame {n}: {:?}", u.regions);
        assert_eq!(u.regions[0].cleared, 1.0, "frame {n}: {:?}", u.regions);
    }
    for (n, u) in &ups[clean as usize..] {
        assert!(u.regions.is_empty(), "frame {n}: {:?}", u.regions);
    }
    assert!(ups[lift as usize].1.motion > 0.0);

    // The next object gets a new id.
    let other = Block::at(400, 300, 50, 50, BAG);
    let ups = play(&mut m, at(20.0), at(25.0), |_| (vec![other], NORMAL));
    let u = &ups.last().unwrap().1;
    assert_eq!(u.regions.len(), 1);
    assert!(u.regions[0].id > r0.id);
    assert!(iou(u.regions[0].bbox, other.bbox()) > 0.8);
}

/// A block moving 2 px per frame (10 px/s): each pixel inside it is covered for
/// 6 s, far longer than `still_s`, and a flat block's inside never changes
/// between frames — only its edges move.
fn moving(look: Look) {
    let mut m = SceneModel::new(SceneConfig::default());
    let start = at(4.0);
    let ups = play(&mut m, 0, at(34.0), |n| {
        let b = (n >= start).then(|| {
            let x = 40 + 2 * (n - start) as i32;
            Block::at(x, 200, 60, 60, look)
        });
        (b.into_iter().collect(), NORMAL)
    });
    for (n, u) in &ups[start as usize + 1..] {
        assert!(u.regions.is_empty(), "frame {n}: {:?}", u.regions);
        assert!(u.motion > 0.0, "frame {n}: no motion");
    }
}

#[test]
fn a_moving_flat_block_is_never_static() {
    moving(BAG);
}

#[test]
fn a_moving_textured_block_is_never_static() {
    moving(PARCEL);
}

#[test]
fn a_block_that_stops_becomes_static_after_still_s() {
    let mut m = SceneModel::new(SceneConfig::default());
    let (start, stop) = (at(4.0), at(14.0));
    let place = |n: u64| {
        let k = n.clamp(start, stop) - start;
        Block::at(40 + 4 * k as i32, 200, 60, 60, BAG)
    };
    let ups = play(&mut m, 0, at(22.0), |n| {
        let b = if n >= start { vec![place(n)] } else { vec![] };
        (b, NORMAL)
    });
    let first = first_with_region(&ups).expect("reported once stopped");
    // The last move is at `stop`; still from there on.
    assert_eq!(first, stop + at(2.0), "reported at frame {first}");
    let u = &ups.last().unwrap().1;
    assert_eq!(u.regions.len(), 1);
    assert!(
        iou(u.regions[0].bbox, place(stop).bbox()) > 0.8,
        "{:?}",
        u.regions
    );
    assert!(ups[stop as usize].1.motion > 0.0);
    assert_eq!(ups.last().unwrap().1.motion, 0.0);
}

#[test]
fn an_object_present_from_the_first_frame_leaves_no_ghost() {
    let mut m = SceneModel::new(SceneConfig::default());
    let car = Block::at(300, 100, 120, 80, PARCEL);
    let leaves = at(6.0);
    let ups = play(&mut m, 0, at(20.0), |n| {
        let b = if n < leaves { vec![car] } else { vec![] };
        (b, NORMAL)
    });
    assert_eq!(first_with_region(&ups), None);
    // The ghost went into the reference: an object put there later is reported.
    let parcel = Block::at(330, 120, 50, 40, BAG);
    let ups = play(&mut m, at(20.0), at(24.0), |_| (vec![parcel], NORMAL));
    let u = &ups.last().unwrap().1;
    assert_eq!(u.regions.len(), 1, "{:?}", u.regions);
    assert!(iou(u.regions[0].bbox, parcel.bbox()) > 0.8);
}

#[test]
fn a_flat_object_present_from_the_first_frame_leaves_no_ghost() {
    let mut m = SceneModel::new(SceneConfig::default());
    let van = Block::at(100, 250, 160, 100, Look::Flat([235, 235, 235]));
    let ups = play(&mut m, 0, at(20.0), |n| {
        let b = if n < at(8.0) { vec![van] } else { vec![] };
        (b, NORMAL)
    });
    assert_eq!(first_with_region(&ups), None);
}

#[test]
fn an_exposure_change_keeps_the_reported_object_and_adds_nothing() {
    let mut m = SceneModel::new(SceneConfig::default());
    let block = Block::at(200, 150, 60, 50, PARCEL);
    let brighter = View {
        gain: 1.3,
        ..NORMAL
    };
    let jump = at(12.0);
    let ups = play(&mut m, 0, at(25.0), |n| {
        let b = if n >= at(5.0) { vec![block] } else { vec![] };
        (b, if n >= jump { brighter } else { NORMAL })
    });
    let id = ups[jump as usize - 1].1.regions[0].id;
    assert!(ups[jump as usize].1.motion > 0.5, "the jump is motion");
    for (n, u) in &ups[jump as usize..] {
        assert_eq!(u.regions.len(), 1, "frame {n}: {:?}", u.regions);
        assert_eq!(u.regions[0].id, id);
    }
}

#[test]
fn a_brightness_jump_reports_nothing_and_the_new_look_is_learnt() {
    let mut m = SceneModel::new(SceneConfig::default());
    // Additive: not a pure gain, so the dark parts still differ from the scaled
    // reference; they are absorbed as soon as they are still, never reported.
    let lit = View {
        offset: 60.0,
        ..NORMAL
    };
    let jump = at(8.0);
    let ups = play(&mut m, 0, at(20.0), |n| {
        (vec![], if n >= jump { lit } else { NORMAL })
    });
    assert_eq!(first_with_region(&ups), None);
    // The new look is the reference now: an object on it is found as usual.
    let block = Block::at(420, 300, 60, 60, BAG);
    let ups = play(&mut m, at(20.0), at(24.0), |_| (vec![block], lit));
    let u = &ups.last().unwrap().1;
    assert_eq!(u.regions.len(), 1, "{:?}", u.regions);
    assert!(iou(u.regions[0].bbox, block.bbox()) > 0.8);
}

#[test]
fn a_moved_camera_reports_nothing_and_drops_old_regions() {
    let mut m = SceneModel::new(SceneConfig::default());
    let block = Block::at(200, 150, 60, 50, PARCEL);
    let moved = View {
        shift: 37,
        ..NORMAL
    };
    let pan = at(12.0);
    let ups = play(&mut m, 0, at(30.0), |n| {
        if n < pan {
            (if n >= at(5.0) { vec![block] } else { vec![] }, NORMAL)
        } else {
            (vec![], moved)
        }
    });
    assert!(!ups[pan as usize - 1].1.regions.is_empty());
    for (n, u) in &ups[pan as usize..] {
        assert!(u.regions.is_empty(), "frame {n}: {:?}", u.regions);
    }
    // Re-learnt from the first still frame of the new view on.
    assert_eq!(m.learn_from, pts(pan + 1).as_secs_f64());
    // And it works on the new view.
    let block = Block::at(420, 300, 60, 60, BAG);
    let ups = play(&mut m, at(30.0), at(34.0), |_| (vec![block], moved));
    let u = &ups.last().unwrap().1;
    assert_eq!(u.regions.len(), 1, "{:?}", u.regions);
    assert!(iou(u.regions[0].bbox, block.bbox()) > 0.8);
}

#[test]
fn a_shadow_or_a_relit_part_of_the_view_is_not_an_object() {
    let views = [
        // A shadow over a third of the street.
        View {
            shade: Some(([100, 100, 420, 360], 0.6)),
            ..NORMAL
        },
        // Sun on one half, shade on the other: exactly half the view changes,
        // which is not more than `max_area`.
        View {
            gain: 1.5,
            shade: Some(([W / 2, 0, W, H], 0.4)),
            ..NORMAL
        },
    ];
    for view in views {
        let mut m = SceneModel::new(SceneConfig::default());
        let change = at(8.0);
        let ups = play(&mut m, 0, at(20.0), |n| {
            (vec![], if n >= change { view } else { NORMAL })
        });
        assert_eq!(first_with_region(&ups), None);
        assert_eq!(m.learn_from, 0.0, "not a global change");
        // The light is part of the reference now: an object in it is found.
        let block = Block::at(200, 150, 60, 50, PARCEL);
        let ups = play(&mut m, at(20.0), at(24.0), |_| (vec![block], view));
        let u = &ups.last().unwrap().1;
        assert_eq!(u.regions.len(), 1, "{:?}", u.regions);
        assert!(iou(u.regions[0].bbox, block.bbox()) > 0.8);
    }
}

#[test]
fn a_region_survives_something_passing_in_front_of_it() {
    let mut m = SceneModel::new(SceneConfig::default());
    let parcel = Block::at(300, 200, 50, 50, PARCEL);
    // A "pedestrian" 30 px wide crosses at 10 px per frame from 8 s to 12 s.
    let (cross, end) = (at(8.0), at(12.0));
    let ups = play(&mut m, 0, at(16.0), |n| {
        let mut b = vec![];
        if (cross..end).contains(&n) {
            let x = 150 + 10 * (n - cross) as i32;
            b.push(Block::at(x, 170, 30, 110, Look::Flat([40, 40, 90])));
        }
        if n >= at(4.0) {
            b.push(parcel);
        }
        (b, NORMAL)
    });
    let id = ups[cross as usize - 1].1.regions[0].id;
    for (n, u) in &ups[cross as usize..] {
        assert_eq!(u.regions.len(), 1, "frame {n}: {:?}", u.regions);
        assert_eq!(u.regions[0].id, id, "frame {n}");
    }
}

#[test]
fn an_old_region_is_absorbed_into_the_reference() {
    let cfg = SceneConfig {
        absorb_s: 10.0,
        ..SceneConfig::default()
    };
    let mut m = SceneModel::new(cfg);
    let block = Block::at(200, 150, 60, 50, PARCEL);
    let ups = play(&mut m, 0, at(30.0), |n| {
        (if n >= at(5.0) { vec![block] } else { vec![] }, NORMAL)
    });
    let first = first_with_region(&ups).unwrap();
    let absorbed = first + at(10.0);
    assert!(!ups[absorbed as usize - 1].1.regions.is_empty());
    for (n, u) in &ups[absorbed as usize..] {
        assert!(u.regions.is_empty(), "frame {n}: {:?}", u.regions);
    }
    // Part of the view now: taking it away leaves no ghost either.
    let ups = play(&mut m, at(30.0), at(40.0), |_| (vec![], NORMAL));
    assert_eq!(first_with_region(&ups), None);
}

#[test]
fn small_changes_are_not_reported() {
    // 8×8 px = 2×2 work pixels, below min_area (0.0005 × 19200 ≈ 10 work pixels).
    let mut m = SceneModel::new(SceneConfig::default());
    let ups = play(&mut m, 0, at(12.0), |n| {
        let b = if n >= at(4.0) {
            vec![Block::at(101, 101, 8, 8, BAG)]
        } else {
            vec![]
        };
        (b, NORMAL)
    });
    assert_eq!(first_with_region(&ups), None);
}

#[test]
fn a_size_change_resets_the_model() {
    let mut m = SceneModel::new(SceneConfig::default());
    let block = Block::at(200, 150, 60, 50, PARCEL);
    let ups = play(&mut m, 0, at(10.0), |n| {
        (if n >= at(4.0) { vec![block] } else { vec![] }, NORMAL)
    });
    assert_eq!(ups.last().unwrap().1.regions.len(), 1);

    let small = vec![90u8; 320 * 240 * 3];
    let u = m.update(pts(at(10.0)), 320, 240, &small);
    assert!(u.regions.is_empty());
    assert_eq!(u.motion, 0.0, "a first frame has no motion");
    // Back to 640×480 with the block in place: another first frame, so the block
    // is part of the view the model learns, not a change.
    let ups = play(&mut m, at(10.0) + 1, at(20.0), |_| (vec![block], NORMAL));
    assert_eq!(ups[0].1.motion, 0.0);
    assert_eq!(first_with_region(&ups), None);
}

#[test]
fn a_pts_going_back_resets_the_model() {
    let mut m = SceneModel::new(SceneConfig::default());
    let block = Block::at(200, 150, 60, 50, PARCEL);
    let ups = play(&mut m, 0, at(12.0), |n| {
        (if n >= at(5.0) { vec![block] } else { vec![] }, NORMAL)
    });
    assert!(!ups.last().unwrap().1.regions.is_empty());
    // Replayed from 0 with the block in place: it is in the first frame again.
    let ups = play(&mut m, 0, at(10.0), |_| (vec![block], NORMAL));
    assert_eq!(first_with_region(&ups), None);
}

#[test]
fn a_malformed_frame_is_ignored() {
    let mut m = SceneModel::new(SceneConfig::default());
    let block = Block::at(200, 150, 60, 50, PARCEL);
    let ups = play(&mut m, 0, at(10.0), |n| {
        (if n >= at(5.0) { vec![block] } else { vec![] }, NORMAL)
    });
    let id = ups.last().unwrap().1.regions[0].id;
    let u = m.update(pts(at(10.0)), W, H, &[0u8; 100]);
    assert!(u.regions.is_empty() && u.motion == 0.0);
    let u = m.update(pts(at(10.0)), 0, 0, &[]);
    assert!(u.regions.is_empty());
    let ups = play(&mut m, at(10.0), at(11.0), |_| (vec![block], NORMAL));
    assert_eq!(ups[0].1.regions[0].id, id, "state kept");
}

#[test]
fn identical_input_gives_identical_output() {
    let script = |n: u64| {
        let mut b = vec![];
        if n >= at(5.0) {
            b.push(Block::at(200, 150, 60, 50, PARCEL));
        }
        if (at(6.0)..at(9.0)).contains(&n) {
            b.push(Block::at(20 + 8 * n as i32, 300, 30, 90, BAG));
        }
        (b, NORMAL)
    };
    let run = || {
        let mut m = SceneModel::new(SceneConfig::default());
        play(&mut m, 0, at(12.0), script)
            .into_iter()
            .map(|(_, u)| (u.motion, u.regions))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(), run());
}
