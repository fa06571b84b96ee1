//! Pictures that leave the box, made from the real model on the project's own
//! media and checked pixel by pixel after decoding the JPEG: `detect
//! --annotate`, `preview`, and evidence with masks.

mod common;

use std::process::Command;

use image::RgbImage;
use serde_json::Value;
use streetwatch::detect::{Detector, DetectorOptions, RgbView};
use streetwatch::evidence::{self, Annotation, EvidenceOptions, Method, Policy, privacy};
use streetwatch::geom::FracBox;
use streetwatch::source::Frame;

fn decode(path: &std::path::Path) -> RgbImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8()
}

/// Whether pixel `(x, y)` is within `tol` of `c` in every channel (JPEG moves colours).
fn near(img: &RgbImage, x: u32, y: u32, c: [u8; 3], tol: i32) -> bool {
    let p = img.get_pixel(x, y).0;
    p.iter()
        .zip(c)
        .all(|(a, b)| (*a as i32 - b as i32).abs() <= tol)
}

/// Mean squared difference of horizontally neighbouring pixels (green) in a rectangle.
fn detail(img: &RgbImage, x0: u32, y0: u32, x1: u32, y1: u32) -> f64 {
    let (mut sum, mut n) = (0.0, 0.0);
    for y in y0..y1 {
        for x in x0..x1 {
            let a = img.get_pixel(x, y).0[1] as f64;
            let b = img.get_pixel(x + 1, y).0[1] as f64;
            sum += (a - b) * (a - b);
            n += 1.0;
        }
    }
    sum / n
}

fn box_of(v: &Value) -> [f64; 4] {
    let b = v["box"].as_array().unwrap();
    [0, 1, 2, 3].map(|i| b[i].as_f64().unwrap())
}

#[test]
fn detect_annotate_draws_each_detection_where_it_is_and_masks_heads() {
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("bus-annotated.jpg");
    let bus = common::media("bus.jpg");
    let out = common::output_ok(
        Command::new(common::bin())
            .args(["detect", "--json", "--annotate"])
            .arg(&out_path)
            .arg(&bus),
    );
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    let dets = doc["detections"].as_array().unwrap();
    let img = decode(&out_path);
    let original = decode(&bus);
    assert_eq!(img.dimensions(), original.dimensions());

    // The bus: its left and right outlines are in its class colour (class 5: yellow).
    let bus_det = dets.iter().find(|d| d["class"] == "bus").expect("a bus");
    let [x0, y0, x1, y1] = box_of(bus_det);
    let mid = ((y0 + y1) / 2.0) as u32;
    let yellow = streetwatch::draw::colour::of_class(5).0;
    assert!(near(&img, x0 as u32 + 1, mid, yellow, 60), "bus left edge");
    assert!(
        near(&img, x1.round() as u32 - 1, mid, yellow, 60),
        "bus right edge"
    );
    assert!(
        !near(&img, x0 as u32 + 12, mid, yellow, 60),
        "inside the bus"
    );

    // The most confident person: its outline is in the person colour, and the top
    // quarter of its box (the head) has lost its detail; the legs have not.
    let person = dets
        .iter()
        .find(|d| d["class"] == "person")
        .expect("a person");
    let [px0, py0, px1, py1] = box_of(person);
    let cyan = streetwatch::draw::colour::of_class(0).0;
    let pmid = ((py0 + py1) / 2.0) as u32;
    assert!(
        near(&img, px0 as u32 + 1, pmid, cyan, 60),
        "person left edge"
    );
    let head_bottom = py0 + (py1 - py0) * 0.25;
    let (hx0, hx1) = (px0 as u32 + 10, px1 as u32 - 10);
    let (hy0, hy1) = (py0 as u32 + 10, head_bottom as u32 - 4);
    let before = detail(&original, hx0, hy0, hx1, hy1);
    let after = detail(&img, hx0, hy0, hx1, hy1);
    assert!(
        after < before / 4.0,
        "head detail {before:.0} -> {after:.0}"
    );
    let (ly0, ly1) = (pmid + 20, py1 as u32 - 20);
    let legs_before = detail(&original, hx0, ly0, hx1, ly1);
    let legs_after = detail(&img, hx0, ly0, hx1, ly1);
    assert!(
        legs_after > legs_before / 2.0,
        "legs {legs_before:.0} -> {legs_after:.0}"
    );
}

fn preview_config(dir: &std::path::Path, privacy: &str) -> std::path::PathBuf {
    common::write_config(
        dir,
        &format!(
            r#"
[node]
id = "pole-7"
[mqtt]
url = "mqtt://127.0.0.1:1"
{privacy}
[[camera]]
id = "campus"
url = "{clip}"

[[camera.zone]]
id = "lawn"
polygon = [[0.1, 0.5], [0.6, 0.5], [0.6, 0.9], [0.1, 0.9]]
[camera.zone.litter]
"#,
            clip = common::media("vtest.avi").display()
        ),
    )
}

#[test]
fn preview_outlines_the_zones_on_a_frame_of_the_camera() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = preview_config(dir.path(), "");
    let out_path = dir.path().join("zones.jpg");
    let out = Command::new(common::bin())
        .args(["preview", "--camera", "campus", "-o"])
        .arg(&out_path)
        .arg("--config")
        .arg(&cfg)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("camera campus, 768x576, 1 zone(s)"),
        "{stdout}"
    );
    let img = decode(&out_path);
    assert_eq!(img.dimensions(), (768, 576));
    let orange = streetwatch::draw::colour::ORANGE.0;
    // The zone's edges: x from 77 to 461, y from 288 to 518 (pixels of 768x576).
    for (x, y) in [(269, 518), (77, 400), (461, 400)] {
        assert!(near(&img, x, y, orange, 60), "edge at ({x}, {y})");
    }
    // Its inside, and well outside it, are the camera's picture, not the outline.
    let mut original = streetwatch::preview::grab(&common::source_options(
        "campus",
        &common::media("vtest.avi").display().to_string(),
        10.0,
    ))
    .unwrap();
    let data = std::mem::take(&mut original.data);
    let frame = RgbImage::from_raw(original.width, original.height, data).unwrap();
    for (x, y) in [(269, 420), (700, 100)] {
        assert!(!near(&img, x, y, orange, 20), "({x}, {y}) is orange");
        assert!(
            near(&img, x, y, frame.get_pixel(x, y).0, 40),
            "({x}, {y}) changed"
        );
    }
}

#[test]
fn preview_draws_detections_on_a_given_frame_and_names_a_wrong_camera() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = preview_config(dir.path(), "[privacy]\nenabled = false\n");
    let out_path = dir.path().join("bus-zones.jpg");
    common::output_ok(
        Command::new(common::bin())
            .args(["preview", "--camera", "campus", "--frame"])
            .arg(common::media("bus.jpg"))
            .arg("-o")
            .arg(&out_path)
            .arg("--config")
            .arg(&cfg),
    );
    let img = decode(&out_path);
    assert_eq!(img.dimensions(), (810, 1080));
    // The bus (reference box [15, 216, 793, 758]) is outlined in its class colour.
    let yellow = streetwatch::draw::colour::of_class(5).0;
    assert!(near(&img, 16, 487, yellow, 60));
    // Privacy off: the person's head (reference box [56, 390, 229, 898]) keeps its detail.
    let original = decode(&common::media("bus.jpg"));
    let (before, after) = (
        detail(&original, 70, 405, 210, 500),
        detail(&img, 70, 405, 210, 500),
    );
    assert!(after > before / 2.0, "{before:.0} -> {after:.0}");

    let out = Command::new(common::bin())
        .args(["preview", "--camera", "gate", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no camera \"gate\" (cameras: campus)"),
        "{stderr}"
    );
}

#[test]
fn evidence_shows_the_subject_untouched_the_zone_and_masks_every_head() {
    let bus = image::open(common::media("bus.jpg")).unwrap().to_rgb8();
    let (w, h) = bus.dimensions();
    let mut det = Detector::open(&DetectorOptions::for_model(common::default_model())).unwrap();
    let found = det
        .detect(RgbView {
            width: w,
            height: h,
            data: bus.as_raw(),
        })
        .unwrap();
    let labels = det.manifest().labels.clone();
    let seen: Vec<(&str, FracBox)> = found
        .detections
        .iter()
        .map(|d| (labels[d.class_id].as_str(), d.bbox.to_frac(w, h)))
        .collect();
    // The incident is about an item on the pavement below the people (the subject);
    // every person is a passer-by.
    let subject = FracBox([0.45, 0.86, 0.6, 0.96]);
    let objects = vec![streetwatch::event::EventObject {
        class: "suitcase".into(),
        score: 0.6,
        bbox: subject,
        track_id: Some(3),
        role: None,
    }];
    let masked = privacy::regions(&Policy::default(), seen.iter().cloned(), &objects);
    let people = seen.iter().filter(|(l, _)| *l == "person").count();
    assert_eq!(masked.len(), people, "{masked:?}");
    let ann = Annotation {
        subjects: vec![(subject, "suitcase 0.60".into())],
        others: vec![],
        zone: vec![[0.0, 0.5], [1.0, 0.5], [1.0, 0.95], [0.0, 0.95]],
        caption: "street vending · 00:12:31".into(),
        camera: "bus-stop".into(),
        masked: masked.clone(),
        kept: privacy::subjects(&Policy::default(), &objects),
        method: Method::Pixelate,
    };
    let frame = Frame {
        width: w,
        height: h,
        data: bus.as_raw().clone(),
        pts: std::time::Duration::ZERO,
        captured_at: std::time::SystemTime::now(),
        index: 0,
        decoded: None,
    };
    let jpeg = evidence::render(
        &frame,
        &ann,
        &EvidenceOptions {
            max_width: 1280,
            quality: 92,
            crop: false,
        },
    )
    .unwrap();
    let img = image::load_from_memory(&jpeg).unwrap().to_rgb8();
    let px = |b: &FracBox| {
        [
            (b[0] * w as f32) as u32,
            (b[1] * h as f32) as u32,
            (b[2] * w as f32) as u32,
            (b[3] * h as f32) as u32,
        ]
    };
    // The subject: outlined in yellow, its inside unchanged but for JPEG.
    let [sx0, sy0, sx1, sy1] = px(&subject);
    let yellow = streetwatch::draw::colour::YELLOW.0;
    assert!(near(&img, sx0 + 1, (sy0 + sy1) / 2, yellow, 60));
    let inner = (sx0 + 8, sy0 + 8, sx1 - 8, sy1 - 8);
    let (b, a) = (
        detail(&bus, inner.0, inner.1, inner.2, inner.3),
        detail(&img, inner.0, inner.1, inner.2, inner.3),
    );
    assert!(a > b * 0.6, "subject {b:.0} -> {a:.0}");
    // Every masked head has lost its detail.
    for m in &masked {
        let [x0, y0, x1, y1] = px(&m.bbox);
        let r = (x0 + 6, y0 + 6, x1.min(w - 2).saturating_sub(6), y1 - 6);
        if r.2 <= r.0 + 4 || r.3 <= r.1 + 4 {
            continue;
        }
        let (b, a) = (
            detail(&bus, r.0, r.1, r.2, r.3),
            detail(&img, r.0, r.1, r.2, r.3),
        );
        assert!(a < b / 3.0, "{m:?}: {b:.0} -> {a:.0}");
    }
    // The zone's top edge (y = 540) is outlined in orange away from the boxes.
    let orange = streetwatch::draw::colour::ORANGE.0;
    assert!(near(&img, 400, 540, orange, 60));
    // The caption, white on black, along the bottom-left.
    let dark = (0..40)
        .filter(|x| img.get_pixel(10 + x, h - 12).0[0] < 40)
        .count();
    assert!(dark > 10, "no caption bar");

    // `[evidence] crop`: evidence scaled down to 480 px gets a close-up of the subject
    // beside it, cut at the photo's own resolution: more detail than the frame shows.
    let small = EvidenceOptions {
        max_width: 480,
        quality: 92,
        crop: false,
    };
    let plain = image::load_from_memory(&evidence::render(&frame, &ann, &small).unwrap())
        .unwrap()
        .to_rgb8();
    let with = image::load_from_memory(
        &evidence::render(
            &frame,
            &ann,
            &EvidenceOptions {
                crop: true,
                ..small
            },
        )
        .unwrap(),
    )
    .unwrap()
    .to_rgb8();
    let (pw, ph) = plain.dimensions();
    assert_eq!(with.height(), ph);
    assert!(with.width() > pw + 100, "{} vs {pw}", with.width());
    // The frame part is the same picture.
    assert!(near(
        &with,
        pw / 2,
        ph / 2,
        plain.get_pixel(pw / 2, ph / 2).0,
        24
    ));
    // The subject's inside, brought back to the photo's own size from the frame part
    // and from the close-up: the close-up is the closer to the photo.
    let (ix0, iy0, ix1, iy1) = inner;
    let truth = image::imageops::crop_imm(&bus, ix0, iy0, ix1 - ix0, iy1 - iy0).to_image();
    let back = |img: &RgbImage, ox: f32, oy: f32, scale: f32| {
        let x0 = (ox + (ix0 as f32) * scale).round() as u32;
        let y0 = (oy + (iy0 as f32) * scale).round() as u32;
        let cw = (((ix1 - ix0) as f32) * scale).round() as u32;
        let ch = (((iy1 - iy0) as f32) * scale).round() as u32;
        let part = image::imageops::crop_imm(img, x0, y0, cw.max(1), ch.max(1)).to_image();
        let up = image::imageops::resize(
            &part,
            truth.width(),
            truth.height(),
            image::imageops::FilterType::Triangle,
        );
        let diff: f64 = up
            .pixels()
            .zip(truth.pixels())
            .map(|(a, b)| (a.0[1] as f64 - b.0[1] as f64).abs())
            .sum();
        diff / (truth.width() * truth.height()) as f64
    };
    let s = pw as f32 / w as f32;
    let from_frame = back(&plain, 0.0, 0.0, s);
    let (rx, ry, _rw, rh) = evidence::close_up_region(&[subject], w, h).unwrap();
    let cs = ph as f32 / rh as f32;
    let from_close = back(
        &with,
        (pw + 4) as f32 - rx as f32 * cs,
        -(ry as f32) * cs,
        cs,
    );
    assert!(
        from_close < from_frame * 0.8,
        "close-up off by {from_close:.1} grey levels, the frame part by {from_frame:.1}"
    );
}
