//! `streetwatch probe-model` names the right output format for the default
//! model and for every re-packed variant (models/make_variants.py).

mod common;

use std::process::Command;

fn probe(model: &std::path::Path) -> String {
    let out = common::output_ok(
        Command::new(common::bin())
            .args(["probe-model", "--runs", "1"])
            .arg(model),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn line<'a>(report: &'a str, key: &str) -> &'a str {
    report
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key:?} line in:\n{report}"))
        .trim()
}

#[test]
fn default_model_report() {
    let r = probe(&common::default_model());
    assert_eq!(line(&r, "format:"), "boxes_scores");
    assert_eq!(line(&r, "input:"), "input [1, 3, 416, 416]");
    assert!(r.contains("output:    boxes [1, 3549, 4]"), "{r}");
    assert!(r.contains("output:    scores [1, 3549, 80]"), "{r}");
    assert!(
        line(&r, "labels:").starts_with("80 (person, bicycle, car,"),
        "{r}"
    );
    assert!(line(&r, "providers:").contains("cpu yes"), "{r}");
    assert_eq!(line(&r, "running on:"), "cpu");
    let inference = line(&r, "inference:");
    let ms: f64 = inference.split(' ').next().unwrap().parse().unwrap();
    assert!(ms > 0.0 && ms < 5000.0, "{inference}");
}

#[test]
fn every_variant_is_named_by_its_format() {
    let expected = [
        ("yolov8", "yolov8"),
        ("yolov5", "yolov5"),
        ("yolox", "yolox"),
        ("end2end", "end_to_end"),
        ("tf_od", "tf_od"),
        ("nhwc", "boxes_scores"),
        ("rgb", "boxes_scores"),
        ("raw", "nanodet_raw"),
        ("ultralytics", "yolov8"),
    ];
    for (stem, format) in expected {
        let r = probe(&common::cached(&format!("models/variants/{stem}.onnx")));
        assert_eq!(line(&r, "format:"), format, "{stem}:\n{r}");
    }
    let r = probe(&common::cached("models/variants/ultralytics.onnx"));
    assert_eq!(line(&r, "manifest:"), "Ultralytics metadata in the model");
    assert!(line(&r, "feed:").contains("Letterbox (pad 114)"), "{r}");
    let r = probe(&common::cached("models/variants/nhwc.onnx"));
    assert_eq!(line(&r, "input:"), "images [1, 416, 416, 3]");
    assert!(
        line(&r, "batching:").starts_with("no (its input \"images\" has a fixed batch"),
        "{r}"
    );
    let r = probe(&common::cached("models/variants/dynbatch.onnx"));
    assert_eq!(line(&r, "input:"), "input [-1, 3, 416, 416]");
    assert!(line(&r, "batching:").starts_with("yes"), "{r}");
}
