//! Manifest parsing: the built-in manifest, files, contradictions, and any text.

use super::*;

#[test]
fn built_in_manifest_parses_with_80_coco_labels() {
    let m = Manifest::parse(DEFAULT_MANIFEST, Path::new("x")).unwrap();
    assert_eq!(m.labels.len(), 80);
    assert_eq!(m.labels[0], "person");
    assert_eq!(m.labels[5], "bus");
    assert_eq!(m.labels[79], "toothbrush");
    assert_eq!(m.input.color, ColorOrder::Bgr);
    assert_eq!((m.input.width, m.input.height), (416, 416));
    assert_eq!(m.output.format, Some(OutputFormat::BoxesScores));
}

#[test]
fn default_model_file_uses_built_in_manifest() {
    let m = Manifest::locate(Path::new("/nowhere/nanodet-m-416.onnx"), None)
        .unwrap()
        .unwrap();
    assert_eq!(m.name, "nanodet-m-416");
    assert!(
        Manifest::locate(Path::new("/nowhere/other.onnx"), None)
            .unwrap()
            .is_none()
    );
}

const SMALL: &str = r#"
name = "m"
labels = ["a", "b"]
[input]
layout = "nhwc"
width = 640
height = 480
color = "rgb"
resize = "letterbox"
scale = 0.00392156862745098
[output]
format = "yolov8"
[detection]
class_min_score = { b = 0.6 }
"#;

#[test]
fn scale_letterbox_and_class_thresholds() {
    let m = Manifest::parse(SMALL, Path::new("m.toml")).unwrap();
    assert_eq!(m.input.resize, ResizeMode::Letterbox);
    assert_eq!(m.input.pad_value, 114);
    assert_eq!(m.input.mean, [0.0; 3]);
    assert!((m.input.std[0] - 255.0).abs() < 1e-3);
    assert_eq!(m.output.format, Some(OutputFormat::Yolov8));
    assert_eq!(m.thresholds(0.3), vec![0.3, 0.6]);
}

#[test]
fn labels_file_is_read_relative_to_the_manifest() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("names.txt"), "cat\n\ndog\n").unwrap();
    let text = SMALL
        .replace("labels = [\"a\", \"b\"]", "labels_file = \"names.txt\"")
        .replace("b = 0.6", "dog = 0.6");
    let m = Manifest::parse(&text, &dir.path().join("m.toml")).unwrap();
    assert_eq!(m.labels, vec!["cat", "dog"]);
    let text = text.replace("names.txt", "missing.txt");
    let e = Manifest::parse(&text, &dir.path().join("m.toml")).unwrap_err();
    assert!(e.to_string().contains("missing.txt"), "{e}");
}

#[test]
fn contradictions_are_refused_by_key() {
    let both = SMALL.replace("scale = ", "mean = [0.0, 0.0, 0.0]\nscale = ");
    let e = Manifest::parse(&both, Path::new("m.toml")).unwrap_err();
    assert!(e.to_string().contains("input.scale"), "{e}");
    let unknown = SMALL.replace("b = 0.6", "zebra = 0.6");
    let e = Manifest::parse(&unknown, Path::new("m.toml")).unwrap_err();
    assert!(e.to_string().contains("\"zebra\""), "{e}");
    let fmt = SMALL.replace("\"yolov8\"", "\"yolo9000\"");
    let e = Manifest::parse(&fmt, Path::new("m.toml")).unwrap_err();
    assert!(e.to_string().contains("yolo9000"), "{e}");
}

#[test]
fn ultralytics_metadata_makes_a_manifest() {
    let meta = |k: &str| match k {
        "names" => Some("{0: 'person', 1: \"bi'cycle\", 2: 'car'}".to_string()),
        "imgsz" => Some("[480, 640]".to_string()),
        "stride" => Some("32".to_string()),
        "task" => Some("detect".to_string()),
        _ => None,
    };
    let m = Manifest::from_ultralytics("y", meta).unwrap().unwrap();
    assert_eq!(m.labels, vec!["person", "bi'cycle", "car"]);
    assert_eq!((m.input.width, m.input.height), (640, 480));
    assert_eq!(m.input.resize, ResizeMode::Letterbox);
    assert_eq!(m.input.color, ColorOrder::Rgb);
    assert!(Manifest::from_ultralytics("y", |_| None).unwrap().is_none());
    let seg = |k: &str| match k {
        "task" => Some("segment".to_string()),
        _ => meta(k),
    };
    let e = Manifest::from_ultralytics("y", seg).unwrap_err();
    assert!(e.contains("segment"), "{e}");
}

/// A small valid manifest with `key = value` put in `section` (replacing the key if set).
fn manifest_with(section: &str, key: &str, value: &str) -> String {
    let mut sections = vec![
        (
            "",
            vec![
                ("name", "\"m\"".to_string()),
                ("labels", "[\"person\", \"car\"]".to_string()),
            ],
        ),
        (
            "input",
            vec![
                ("layout", "\"nchw\"".to_string()),
                ("width", "32".to_string()),
                ("height", "32".to_string()),
                ("color", "\"rgb\"".to_string()),
            ],
        ),
        ("output", vec![]),
        ("detection", vec![]),
    ];
    let entries = &mut sections.iter_mut().find(|(s, _)| *s == section).unwrap().1;
    entries.retain(|(k, _)| *k != key);
    entries.push((key, value.to_string()));
    let mut text = String::new();
    for (s, entries) in sections {
        if !s.is_empty() {
            text.push_str(&format!("[{s}]\n"));
        }
        for (k, v) in entries {
            text.push_str(&format!("{k} = {v}\n"));
        }
    }
    text
}

fn toml_values() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        any::<i64>().prop_map(|v| v.to_string()),
        prop_oneof![Just(0i64), Just(-1), Just(u32::MAX as i64 + 1)].prop_map(|v| v.to_string()),
        any::<f64>().prop_map(|v| format!("{v:?}")),
        Just("nan".to_string()),
        Just("inf".to_string()),
        Just("-inf".to_string()),
        "\"[^\"\\\\\n]{0,12}\"",
        Just("[]".to_string()),
        Just("[0, 0, 0]".to_string()),
        Just("[nan, 1, 1]".to_string()),
        Just("[1, inf, 1]".to_string()),
        Just("[\"person\", \"person\"]".to_string()),
        Just("{}".to_string()),
        Just("{ person = 2.0 }".to_string()),
        Just("true".to_string()),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

    /// Any text is a manifest or an error naming the manifest file.
    #[test]
    fn any_text_is_a_manifest_or_an_error_naming_the_file(text in "(?s).{0,300}") {
        if let Err(e) = Manifest::parse(&text, Path::new("/models/odd.toml")) {
            proptest::prop_assert!(e.to_string().contains("/models/odd.toml"), "{e}");
        }
    }

    /// Any value under any manifest key: a manifest whose numbers are usable, or an
    /// error naming the file.
    #[test]
    fn any_value_of_a_manifest_key_is_accepted_or_refused_by_name(
        (section, key) in proptest::prop_oneof![
            proptest::prelude::Just(("", "name")),
            proptest::prelude::Just(("", "labels")),
            proptest::prelude::Just(("", "labels_file")),
            proptest::prelude::Just(("input", "width")),
            proptest::prelude::Just(("input", "height")),
            proptest::prelude::Just(("input", "layout")),
            proptest::prelude::Just(("input", "mean")),
            proptest::prelude::Just(("input", "std")),
            proptest::prelude::Just(("input", "scale")),
            proptest::prelude::Just(("input", "pad_value")),
            proptest::prelude::Just(("input", "resize")),
            proptest::prelude::Just(("output", "format")),
            proptest::prelude::Just(("output", "strides")),
            proptest::prelude::Just(("output", "reg_max")),
            proptest::prelude::Just(("output", "class_offset")),
            proptest::prelude::Just(("detection", "min_score")),
            proptest::prelude::Just(("detection", "nms_iou")),
            proptest::prelude::Just(("detection", "class_min_score")),
        ],
        value in toml_values(),
    ) {
        let text = manifest_with(section, key, &value);
        match Manifest::parse(&text, Path::new("/models/odd.toml")) {
            Ok(m) => {
                proptest::prop_assert!(m.input.width > 0 && m.input.height > 0);
                proptest::prop_assert!(m.input.width <= MAX_INPUT_SIDE);
                proptest::prop_assert!(m.input.std.iter().all(|s| s.is_finite() && *s != 0.0));
                proptest::prop_assert!(m.input.mean.iter().all(|v| v.is_finite()));
                proptest::prop_assert!(!m.labels.is_empty());
                proptest::prop_assert!((0.0..=1.0).contains(&m.detection.min_score));
                for t in m.thresholds(m.detection.min_score) {
                    proptest::prop_assert!((0.0..=1.0).contains(&t));
                }
            }
            Err(e) => {
                proptest::prop_assert!(e.to_string().contains("/models/odd.toml"), "{e}");
            }
        }
    }
}
