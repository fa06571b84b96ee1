use super::*;

fn obj(class: &str, b: [f32; 4], role: Option<&str>) -> EventObject {
    EventObject {
        class: class.into(),
        score: 0.8,
        bbox: FracBox(b),
        track_id: None,
        role: role.map(str::to_string),
    }
}

fn boxes(m: &[Masked]) -> Vec<(MaskKind, [f32; 4])> {
    m.iter().map(|m| (m.what, m.bbox.0)).collect()
}

const WALKER: [f32; 4] = [0.1, 0.2, 0.2, 0.6];
const WALKER_HEAD: [f32; 4] = [0.1, 0.2, 0.2, 0.3];
const BOTTLE: [f32; 4] = [0.5, 0.8, 0.55, 0.85];
const PLATE: [f32; 4] = [0.7, 0.7, 0.8, 0.75];

#[test]
fn what_is_masked_and_what_never_is() {
    let policy = Policy {
        plate_classes: vec!["plate".into()],
        ..Policy::default()
    };
    let no_thrower = Policy {
        mask_thrower: false,
        ..policy.clone()
    };
    let litter = obj("bottle", BOTTLE, None);
    let thrower = obj("person", WALKER, Some("thrower"));
    let vendor = obj("person", WALKER, None);
    type Case<'a> = (
        &'a str,
        &'a Policy,
        Vec<(&'a str, [f32; 4])>,
        Vec<EventObject>,
        Vec<(MaskKind, [f32; 4])>,
    );
    let cases: Vec<Case> = vec![
        (
            "a passer-by's head, no event (a snapshot)",
            &policy,
            vec![("person", WALKER)],
            vec![],
            vec![(MaskKind::Head, WALKER_HEAD)],
        ),
        (
            "other classes are left alone",
            &policy,
            vec![("bottle", BOTTLE), ("car", [0.0, 0.0, 0.5, 0.5])],
            vec![],
            vec![],
        ),
        (
            "a plate, where the model has the class, whole",
            &policy,
            vec![("plate", PLATE)],
            vec![],
            vec![(MaskKind::Plate, PLATE)],
        ),
        (
            "the subject is never masked, passers-by are",
            &policy,
            vec![("person", WALKER), ("bottle", BOTTLE)],
            vec![litter.clone()],
            vec![(MaskKind::Head, WALKER_HEAD)],
        ),
        (
            "a person who is the subject (a vendor, a crowd) is masked all the same",
            &policy,
            vec![("person", [0.1, 0.2, 0.2, 0.6])],
            vec![vendor],
            vec![(MaskKind::Head, WALKER_HEAD)],
        ),
        (
            "a thrower is masked by default",
            &policy,
            vec![("person", WALKER)],
            vec![litter.clone(), thrower.clone()],
            vec![(MaskKind::Head, WALKER_HEAD)],
        ),
        (
            "a thrower the detector missed on this frame is masked all the same",
            &policy,
            vec![],
            vec![litter.clone(), thrower.clone()],
            vec![(MaskKind::Head, WALKER_HEAD)],
        ),
        (
            "mask_thrower = false spares the thrower only",
            &no_thrower,
            vec![("person", WALKER), ("person", [0.6, 0.1, 0.7, 0.5])],
            vec![litter, thrower],
            vec![(MaskKind::Head, [0.6, 0.1, 0.7, 0.2])],
        ),
    ];
    for (name, policy, seen, objects, want) in cases {
        let got = regions(
            policy,
            seen.iter().map(|(l, b)| (*l, FracBox(*b))),
            &objects,
        );
        assert_eq!(boxes(&got), want, "{name}");
    }
}

/// A picture full of fine detail: a checkerboard of 2-pixel squares, black and white.
fn detailed(w: u32, h: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        if (x / 2 + y / 2) % 2 == 0 {
            image::Rgb([250, 250, 250])
        } else {
            image::Rgb([5, 5, 5])
        }
    })
}

/// Mean squared difference between horizontally neighbouring pixels: fine detail.
fn detail(img: &RgbImage, r: imageproc::rect::Rect) -> f64 {
    let mut sum = 0.0;
    let mut n = 0.0;
    for y in r.top()..=r.bottom() {
        for x in r.left()..r.right() {
            let a = img.get_pixel(x as u32, y as u32).0[1] as f64;
            let b = img.get_pixel(x as u32 + 1, y as u32).0[1] as f64;
            sum += (a - b) * (a - b);
            n += 1.0;
        }
    }
    sum / n
}

#[test]
fn masks_remove_detail_inside_and_keep_the_subject_and_the_rest() {
    for method in [Method::Pixelate, Method::Blur] {
        let (w, h) = (200, 100);
        let before = detailed(w, h);
        let mut img = before.clone();
        let region = FracBox([0.1, 0.1, 0.5, 0.9]);
        // The subject overlaps the region's right part.
        let subject = FracBox([0.4, 0.5, 0.6, 0.9]);
        let masked = [Masked {
            what: MaskKind::Head,
            bbox: region,
        }];
        mask(&mut img, &masked, &[subject], method);
        let inner = frac_rect(&FracBox([0.1, 0.1, 0.38, 0.9]), w, h).unwrap();
        let (b, a) = (detail(&before, inner), detail(&img, inner));
        assert!(a < b / 10.0, "{method:?}: detail {b} -> {a}");
        // The subject's pixels are exactly as they were, also where the region covers it.
        let s = frac_rect(&subject, w, h).unwrap();
        for y in s.top()..=s.bottom() {
            for x in s.left()..=s.right() {
                let (x, y) = (x as u32, y as u32);
                assert_eq!(img.get_pixel(x, y), before.get_pixel(x, y), "{method:?}");
            }
        }
        // Outside the region nothing changed.
        for (x, y) in [(5, 5), (150, 5), (199, 99), (110, 40)] {
            assert_eq!(img.get_pixel(x, y), before.get_pixel(x, y), "{method:?}");
        }
    }
}

#[test]
fn regions_off_the_frame_are_skipped() {
    let mut img = detailed(50, 50);
    let before = img.clone();
    let masked = [Masked {
        what: MaskKind::Plate,
        bbox: FracBox([1.5, 1.5, 2.0, 2.0]),
    }];
    mask(&mut img, &masked, &[], Method::Pixelate);
    assert_eq!(img, before);
}
