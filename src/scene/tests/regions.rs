//! What a region is made of: the pixels that came to rest together, when
//! they did, whether something hides them, and that a removal never looks
//! like something put down.

use super::super::*;
use super::kit::*;

/// The regions of the last update.
fn last(ups: &[(u64, SceneUpdate)]) -> &[StaticRegion] {
    &ups.last().expect("frames").1.regions
}

#[test]
fn a_thing_put_down_beside_a_still_object_is_a_region_of_its_own() {
    let mut m = SceneModel::new(SceneConfig::default());
    // A parked "bicycle" from 4 s; a bag put down touching it at 12 s.
    let bike = Block::at(200, 150, 100, 80, PARCEL);
    let bag = Block::at(300, 200, 30, 30, BAG);
    let ups = play(&mut m, 0, at(20.0), |n| {
        let mut b = vec![bike];
        if n >= at(12.0) {
            b.push(bag);
        }
        (if n >= at(4.0) { b } else { vec![] }, NORMAL)
    });
    let bike_id = ups[at(11.0) as usize].1.regions[0].id;
    let regions = last(&ups);
    assert_eq!(regions.len(), 2, "{regions:?}");
    let (r_bike, r_bag) = (&regions[0], &regions[1]);
    assert_eq!(r_bike.id, bike_id, "the bicycle keeps its region");
    assert!(iou(r_bike.bbox, bike.bbox()) > 0.8, "{r_bike:?}");
    assert!(iou(r_bag.bbox, bag.bbox()) > 0.6, "{r_bag:?}");
    assert_eq!(r_bike.appeared, pts(at(4.0)));
    assert_eq!(r_bag.appeared, pts(at(12.0)));
    assert_eq!(r_bag.since, pts(at(14.0)));
}

#[test]
fn an_object_whose_parts_come_to_rest_one_after_another_is_one_region() {
    let mut m = SceneModel::new(SceneConfig::default());
    // A van stops at 4 s; its open door (touching it) stops moving at 5 s,
    // within `still_s` of the van's first report.
    let van = Block::at(200, 150, 100, 80, PARCEL);
    let door = Block::at(300, 170, 30, 50, BAG);
    let ups = play(&mut m, 0, at(12.0), |n| {
        let mut b = vec![];
        if n >= at(4.0) {
            b.push(van);
        }
        if n >= at(5.0) {
            b.push(door);
        } else if n >= at(4.0) {
            // Still swinging.
            b.push(Block::at(300 + 4 * (n % 2) as i32, 170, 30, 50, BAG));
        }
        (b, NORMAL)
    });
    let regions = last(&ups);
    assert_eq!(regions.len(), 1, "{regions:?}");
    let both = PxBox([200.0, 150.0, 330.0, 230.0]);
    assert!(iou(regions[0].bbox, both) > 0.8, "{regions:?}");
    assert_eq!(regions[0].appeared, pts(at(4.0)));
}

#[test]
fn a_region_says_when_it_was_put_down_and_when_something_hides_it() {
    let mut m = SceneModel::new(SceneConfig::default());
    let parcel = Block::at(300, 200, 50, 50, PARCEL);
    // Put down at 5 s by someone who fidgets beside it until 9 s (the region
    // waits for them to go); at 12–13 s a passer-by crosses in front of it.
    let ups = play(&mut m, 0, at(16.0), |n| {
        let mut b = vec![];
        if (at(5.0)..at(9.0)).contains(&n) {
            b.push(Block::at(352 + 3 * (n % 2) as i32, 180, 30, 90, BAG));
        }
        if (at(12.0)..at(13.0)).contains(&n) {
            let x = 250 + 25 * (n - at(12.0)) as i32;
            b.push(Block::at(x, 170, 60, 110, Look::Flat([40, 40, 90])));
        }
        if n >= at(5.0) {
            b.push(parcel);
        }
        (b, NORMAL)
    });
    let first = first_with_region(&ups).expect("reported");
    assert!(
        first > at(9.0),
        "reported at frame {first}, before they left"
    );
    let r = &ups[first as usize].1.regions[0];
    assert_eq!(r.appeared, pts(at(5.0)), "{r:?}");
    assert_eq!(r.since, pts(first));
    for (n, u) in &ups[first as usize..] {
        assert_eq!(u.regions.len(), 1, "frame {n}: {:?}", u.regions);
        // The frame after the passer-by is gone still sees them go.
        if !(at(12.0)..=at(13.0)).contains(n) {
            assert_eq!(
                u.regions[0].hidden, 0.0,
                "frame {n}: nothing in front of it"
            );
        }
    }
    let most = ups[at(12.0) as usize..at(13.0) as usize]
        .iter()
        .map(|(_, u)| u.regions[0].hidden)
        .fold(0.0f32, f32::max);
    assert!(most >= 0.9, "the passer-by covers it: {most}");
}

#[test]
fn what_is_left_of_a_thing_mostly_taken_away_is_new() {
    let mut m = SceneModel::new(SceneConfig::default());
    // A stack of boxes from 4 s; at 12 s all but a small one are taken away.
    let stack = Block::at(200, 150, 120, 60, PARCEL);
    let left = Block::at(290, 150, 30, 60, PARCEL);
    let ups = play(&mut m, 0, at(20.0), |n| {
        let b = if n < at(4.0) {
            vec![]
        } else if n < at(12.0) {
            vec![stack]
        } else {
            vec![left]
        };
        (b, NORMAL)
    });
    let old = ups[at(11.0) as usize].1.regions[0].id;
    // Mostly cleared from the frame after the removal; let go once the
    // ground has been seen for `still_s`; what is left is a region again
    // `still_s` later.
    for (n, u) in &ups[at(12.0) as usize + 1..at(14.0) as usize] {
        assert_eq!(u.regions.len(), 1, "frame {n}: {:?}", u.regions);
        assert_eq!(u.regions[0].id, old, "frame {n}");
        assert!(u.regions[0].cleared > 0.5, "frame {n}: {:?}", u.regions);
    }
    for (n, u) in &ups[at(14.0) as usize + 1..at(16.0) as usize] {
        assert!(u.regions.is_empty(), "frame {n}: {:?}", u.regions);
    }
    let regions = last(&ups);
    assert_eq!(regions.len(), 1, "{regions:?}");
    let r = &regions[0];
    assert_ne!(r.id, old);
    assert!(iou(r.bbox, left.bbox()) > 0.6, "{r:?}");
    assert!(r.appeared >= pts(at(14.0)), "{r:?}");
}
