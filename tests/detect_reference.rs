//! The real default model on a real photo gives the reference detections
//! (ASSETS.md: onnxruntime in Python, score ≥ 0.35, per-class NMS IoU 0.5).

mod common;

use std::process::Command;

use streetwatch::detect::{Detector, DetectorOptions, RgbView};
use streetwatch::geom::PxBox;

/// (label, score, box in source pixels) for ultralytics bus.jpg (810×1080).
const BUS_REFERENCE: [(&str, f32, [f32; 4]); 5] = [
    ("person", 0.820, [56., 390., 229., 898.]),
    ("bus", 0.790, [15., 216., 793., 758.]),
    ("person", 0.618, [679., 399., 810., 879.]),
    ("person", 0.564, [223., 400., 347., 849.]),
    ("person", 0.468, [2., 559., 75., 870.]),
];

fn open_default() -> Detector {
    Detector::open(&DetectorOptions::for_model(common::default_model()))
        .expect("default model opens")
}

#[test]
fn bus_jpg_matches_reference_detections() {
    let mut det = open_default();
    let img = streetwatch::detect::load_image(&common::media("bus.jpg")).unwrap();
    assert_eq!((img.width(), img.height()), (810, 1080));
    let out = det
        .detect(RgbView {
            width: img.width(),
            height: img.height(),
            data: img.as_raw(),
        })
        .unwrap();
    let found: Vec<(String, f32, PxBox)> = out
        .detections
        .iter()
        .map(|d| (det.label(d.class_id).to_string(), d.score, d.bbox))
        .collect();
    for (label, score, bbox) in BUS_REFERENCE {
        let best = found
            .iter()
            .filter(|(l, _, _)| l == label)
            .map(|(_, s, b)| (b.iou(&PxBox(bbox)), *s))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let (overlap, got_score) =
            best.unwrap_or_else(|| panic!("no {label} found; got {found:?}"));
        assert!(
            overlap >= 0.9,
            "{label} {bbox:?}: best IoU {overlap:.3} < 0.9; got {found:?}"
        );
        assert!(
            (got_score - score).abs() < 0.01,
            "{label} {bbox:?}: score {got_score:.3}, reference {score:.3}"
        );
    }
    // Nothing else of note: the reference lists every detection ≥ 0.35.
    assert_eq!(
        found.len(),
        BUS_REFERENCE.len(),
        "extra detections: {found:?}"
    );
}

#[test]
fn detect_command_prints_bus_and_persons_as_json() {
    let out = common::output_ok(
        Command::new(common::bin())
            .args(["detect", "--json"])
            .arg(common::media("bus.jpg"))
            .env("STREETWATCH_CACHE", streetwatch::cache_dir()),
    );
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["width"], 810);
    assert_eq!(doc["height"], 1080);
    let dets = doc["detections"].as_array().unwrap();
    let count = |c: &str| dets.iter().filter(|d| d["class"] == c).count();
    assert_eq!(count("bus"), 1, "{doc}");
    assert_eq!(count("person"), 4, "{doc}");
    let bus = dets.iter().find(|d| d["class"] == "bus").unwrap();
    let b: Vec<f32> = bus["box"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    assert!(
        PxBox([b[0], b[1], b[2], b[3]]).iou(&PxBox(BUS_REFERENCE[1].2)) >= 0.9,
        "{bus}"
    );
}

#[test]
fn an_empty_street_has_no_bus() {
    // leuvenA.jpg: cobbled street; the detector must not invent large vehicles.
    let mut det = open_default();
    let img = streetwatch::detect::load_image(&common::media("leuvenA.jpg")).unwrap();
    let out = det
        .detect(RgbView {
            width: img.width(),
            height: img.height(),
            data: img.as_raw(),
        })
        .unwrap();
    assert!(
        out.detections
            .iter()
            .all(|d| det.label(d.class_id) != "bus"),
        "{:?}",
        out.detections
    );
}
