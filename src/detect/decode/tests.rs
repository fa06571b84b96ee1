//! Decoding every output layout on hand-made tensors.

use super::*;
use crate::detect::manifest::{OutputFormat, OutputSpec};

fn info(name: &str, shape: &[i64]) -> OutputInfo {
    OutputInfo {
        name: name.into(),
        shape: shape.to_vec(),
    }
}

fn auto(outputs: &[OutputInfo], classes: usize) -> Result<OutputFormat, String> {
    Plan::resolve(&OutputSpec::default(), outputs, classes, (416, 416)).map(|p| p.format())
}

#[test]
fn formats_are_detected_from_shapes_when_unambiguous() {
    let f = auto(
        &[info("boxes", &[1, 3549, 4]), info("scores", &[1, 3549, 80])],
        80,
    );
    assert_eq!(f, Ok(OutputFormat::BoxesScores));
    assert_eq!(
        auto(&[info("output0", &[1, 84, 8400])], 80),
        Ok(OutputFormat::Yolov8)
    );
    assert_eq!(
        auto(&[info("output0", &[1, 300, 6])], 80),
        Ok(OutputFormat::EndToEnd)
    );
    let raw: Vec<OutputInfo> = [
        (2704, 80),
        (676, 80),
        (169, 80),
        (2704, 44),
        (676, 44),
        (169, 44),
    ]
    .iter()
    .enumerate()
    .map(|(i, (n, c))| info(&format!("Identity_{i}:0"), &[1, *n, *c]))
    .collect();
    assert_eq!(auto(&raw, 80), Ok(OutputFormat::NanodetRaw));
    let tf = [
        info("detection_boxes", &[1, 100, 4]),
        info("detection_scores", &[1, 100]),
        info("detection_classes", &[1, 100]),
        info("num_detections", &[1]),
    ];
    assert_eq!(auto(&tf, 80), Ok(OutputFormat::TfOd));
    let e = auto(&[info("output", &[1, 3549, 85])], 80).unwrap_err();
    assert!(e.contains("yolov5") && e.contains("yolox"), "{e}");
    let e = auto(&[info("feat", &[1, 256, 13, 13])], 80).unwrap_err();
    assert!(
        e.contains("unknown output layout") && e.contains("feat"),
        "{e}"
    );
}

#[test]
fn label_count_must_match_class_count() {
    let e = auto(
        &[info("boxes", &[1, 10, 4]), info("scores", &[1, 10, 80])],
        3,
    )
    .unwrap_err();
    assert!(e.contains("80 classes") && e.contains("3 labels"), "{e}");
    let spec = OutputSpec {
        format: Some(OutputFormat::Yolov8),
        ..Default::default()
    };
    let e = Plan::resolve(&spec, &[info("o", &[1, 84, 100])], 2, (640, 640)).unwrap_err();
    assert!(e.contains("80 classes"), "{e}");
}

#[test]
fn yolov8_and_yolov5_decode_the_same_box() {
    // One anchor of interest (index 1 of 2), 2 classes, box centre (100, 50), 40×20.
    let v8 = [
        0., 100., // cx
        0., 50., // cy
        0., 40., // w
        0., 20., // h
        0.1, 0.2, // class 0
        0.0, 0.9, // class 1
    ];
    fn t<'a>(shape: &'a [i64], data: &'a [f32]) -> Tensor<'a> {
        Tensor { shape, data }
    }
    let plan = Plan::Yolov8 { output: "o".into() };
    let got = decode(&plan, &[t(&[1, 6, 2], &v8)], &[0.5, 0.5], (640, 640)).unwrap();
    let want = vec![Detection {
        class_id: 1,
        score: 0.9,
        bbox: PxBox([80., 40., 120., 60.]),
    }];
    assert_eq!(got, want);
    let v5 = [
        0., 0., 1., 1., 0.2, 0.1, 0.0, 100., 50., 40., 20., 1.0, 0.2, 0.9,
    ];
    let plan = Plan::Yolov5 { output: "o".into() };
    let got = decode(&plan, &[t(&[1, 2, 7], &v5)], &[0.5, 0.5], (640, 640)).unwrap();
    assert_eq!(got, want);
}

#[test]
fn yolox_uses_grid_and_stride() {
    // 16×8 input, stride 8: grid 2×1; anchor 1 is at grid (1, 0).
    let data = [
        0.,
        0.,
        0.,
        0.,
        0.0,
        0.0, //
        0.5,
        0.25,
        0.0,
        1.0f32.ln(),
        0.8,
        1.0,
    ];
    let plan = Plan::Yolox {
        output: "o".into(),
        strides: vec![8],
    };
    let t = Tensor {
        shape: &[1, 2, 6],
        data: &data,
    };
    let got = decode(&plan, &[t], &[0.5], (16, 8)).unwrap();
    // centre ((1+0.5)·8, 0.25·8) = (12, 2); w = 8, h = 8
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].bbox, PxBox([8., -2., 16., 6.]));
    assert!((got[0].score - 0.8).abs() < 1e-6);
}

#[test]
fn gfl_distribution_expectation() {
    // One 8×8 input, stride 8: one cell centred at (4, 4). Bins 0..2 (reg_max 2).
    // Left: all mass on bin 1 → 8 px; top: bin 0; right: bin 2 → 16; bottom: uniform → 1·8.
    let big = 50.0;
    let reg = [
        0., big, 0., //
        big, 0., 0., //
        0., 0., big, //
        0., 0., 0.,
    ];
    let scores = [0.7];
    let plan = Plan::NanodetRaw {
        levels: vec![GflLevel {
            stride: 8,
            grid_w: 1,
            grid_h: 1,
            scores: "s".into(),
            regression: "r".into(),
        }],
        reg_max: 2,
    };
    let ts = [
        Tensor {
            shape: &[1, 1, 1],
            data: &scores,
        },
        Tensor {
            shape: &[1, 1, 12],
            data: &reg,
        },
    ];
    let got = decode(&plan, &ts, &[0.5], (8, 8)).unwrap();
    let b = got[0].bbox;
    for (g, w) in b.0.iter().zip([-4., 4., 20., 12.]) {
        assert!((g - w).abs() < 1e-3, "{b:?}");
    }
}

#[test]
fn tf_od_boxes_are_normalised_yx_and_classes_one_based() {
    let boxes = [0.1, 0.2, 0.5, 0.6, 0., 0., 1., 1.];
    let scores = [0.9, 0.8];
    let classes = [2.0, 1.0];
    let count = [1.0];
    let plan = Plan::TfOd {
        boxes: "b".into(),
        scores: "s".into(),
        classes: "c".into(),
        count: Some("n".into()),
        class_offset: 1,
    };
    let ts = [
        Tensor {
            shape: &[1, 2, 4],
            data: &boxes,
        },
        Tensor {
            shape: &[1, 2],
            data: &scores,
        },
        Tensor {
            shape: &[1, 2],
            data: &classes,
        },
        Tensor {
            shape: &[1],
            data: &count,
        },
    ];
    let got = decode(&plan, &ts, &[0.5, 0.5], (100, 200)).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].class_id, got[0].score), (1, 0.9));
    for (g, w) in got[0].bbox.0.iter().zip([20., 20., 60., 100.]) {
        assert!((g - w).abs() < 1e-4, "{:?}", got[0].bbox);
    }
}

/// Decodes frame by frame, then the same frames stacked into one batch and split.
fn batched_equals_single(plan: &Plan, frames: &[Vec<(Vec<i64>, Vec<f32>)>], input: (u32, u32)) {
    let th = [0.5, 0.5];
    let single: Vec<Vec<Detection>> = frames
        .iter()
        .map(|f| {
            let ts: Vec<Tensor> = f
                .iter()
                .map(|(s, d)| Tensor { shape: s, data: d })
                .collect();
            decode(plan, &ts, &th, input).unwrap()
        })
        .collect();
    assert!(single.iter().all(|d| !d.is_empty()), "{single:?}");
    let n = frames.len();
    let stacked: Vec<(Vec<i64>, Vec<f32>)> = (0..frames[0].len())
        .map(|k| {
            let mut shape = frames[0][k].0.clone();
            shape[0] = n as i64;
            (shape, frames.iter().flat_map(|f| f[k].1.clone()).collect())
        })
        .collect();
    let ts: Vec<Tensor> = stacked
        .iter()
        .map(|(s, d)| Tensor { shape: s, data: d })
        .collect();
    let parts = split_batch(&ts, n).unwrap();
    for (i, want) in single.iter().enumerate() {
        assert_eq!(
            &decode(plan, &frame_of_batch(&ts, &parts, i), &th, input).unwrap(),
            want,
            "frame {i}"
        );
    }
}

#[test]
fn batches_split_by_frame_for_every_layout() {
    // Two frames each, with different boxes and classes.
    let v8 = |cx: f32, c: usize| {
        let mut d = vec![0f32; 12];
        d[1] = cx;
        d[3] = 50.;
        d[5] = 40.;
        d[7] = 20.;
        d[(4 + c) * 2 + 1] = 0.9;
        (vec![1, 6, 2], d)
    };
    let plan = Plan::Yolov8 { output: "o".into() };
    batched_equals_single(&plan, &[vec![v8(100., 1)], vec![v8(300., 0)]], (640, 640));
    let v5 = |cx: f32, c: usize| {
        let mut d = vec![cx, 50., 40., 20., 1.0, 0., 0.];
        d[5 + c] = 0.8;
        (vec![1, 1, 7], d)
    };
    let plan = Plan::Yolov5 { output: "o".into() };
    batched_equals_single(&plan, &[vec![v5(100., 1)], vec![v5(30., 0)]], (640, 640));
    let bs = |x: f32, c: usize| {
        let mut s = vec![0f32; 2];
        s[c] = 0.7;
        vec![(vec![1, 1, 4], vec![x, 1., x + 5., 9.]), (vec![1, 1, 2], s)]
    };
    let plan = Plan::BoxesScores {
        boxes: "b".into(),
        scores: "s".into(),
    };
    batched_equals_single(&plan, &[bs(1., 0), bs(20., 1), bs(3., 1)], (64, 64));
    let e2e = |x: f32, c: f32| (vec![1, 1, 6], vec![x, 2., x + 4., 8., 0.9, c]);
    let plan = Plan::EndToEnd {
        output: "o".into(),
        class_offset: 0,
    };
    batched_equals_single(&plan, &[vec![e2e(1., 0.)], vec![e2e(9., 1.)]], (64, 64));
    // TF OD: the count is per frame ([N]); frame 1 counts one of its two rows.
    let tf = |y: f32, n: f32| {
        vec![
            (vec![1, 2, 4], vec![y, 0.1, y + 0.2, 0.5, 0., 0., 1., 1.]),
            (vec![1, 2], vec![0.9, 0.8]),
            (vec![1, 2], vec![1., 2.]),
            (vec![1], vec![n]),
        ]
    };
    let plan = Plan::TfOd {
        boxes: "b".into(),
        scores: "s".into(),
        classes: "c".into(),
        count: Some("n".into()),
        class_offset: 1,
    };
    batched_equals_single(&plan, &[tf(0.1, 2.), tf(0.4, 1.)], (100, 100));
}

#[test]
fn an_output_not_split_by_frame_is_refused() {
    let data = [0f32; 8];
    let t = Tensor {
        shape: &[1, 2, 4],
        data: &data,
    };
    let e = split_batch(&[t], 2).unwrap_err();
    assert!(e.contains("batch of 2"), "{e}");
    let input = info("input", &[-1, 3, 416, 416]);
    let plan = Plan::BoxesScores {
        boxes: "boxes".into(),
        scores: "scores".into(),
    };
    let dynamic = [info("boxes", &[-1, 9, 4]), info("scores", &[-1, 9, 80])];
    assert_eq!(batch_refusal(&input, &dynamic, &plan), None);
    let fixed = [info("boxes", &[1, 9, 4]), info("scores", &[-1, 9, 80])];
    let e = batch_refusal(&input, &fixed, &plan).unwrap();
    assert!(e.contains("\"boxes\"") && e.contains("[1, 9, 4]"), "{e}");
    let e = batch_refusal(&info("input", &[1, 3, 416, 416]), &dynamic, &plan).unwrap();
    assert!(e.contains("fixed batch"), "{e}");
}

#[test]
fn per_class_thresholds_apply() {
    let boxes = [0., 0., 1., 1.];
    let scores = [0.5, 0.5];
    let plan = Plan::BoxesScores {
        boxes: "b".into(),
        scores: "s".into(),
    };
    let ts = [
        Tensor {
            shape: &[1, 1, 4],
            data: &boxes,
        },
        Tensor {
            shape: &[1, 1, 2],
            data: &scores,
        },
    ];
    let got = decode(&plan, &ts, &[0.4, 0.6], (10, 10)).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].class_id, 0);
}

/// Values a broken or hostile model may put in a tensor.
fn any_value() -> impl proptest::strategy::Strategy<Value = f32> {
    use proptest::prelude::*;
    prop_oneof![
        -2.0f32..2.0,
        Just(f32::NAN),
        Just(f32::INFINITY),
        Just(f32::NEG_INFINITY),
        Just(f32::MAX),
        Just(f32::MIN),
        Just(1e30),
        Just(0.0),
        any::<f32>(),
    ]
}

fn any_plan() -> impl proptest::strategy::Strategy<Value = Plan> {
    use proptest::prelude::*;
    let level = |stride, grid_w, grid_h| GflLevel {
        stride,
        grid_w,
        grid_h,
        scores: "s".into(),
        regression: "r".into(),
    };
    prop_oneof![
        Just(Plan::BoxesScores {
            boxes: "b".into(),
            scores: "s".into()
        }),
        (0usize..4, 0usize..4, 0usize..8).prop_map(move |(w, h, reg_max)| Plan::NanodetRaw {
            levels: vec![level(8, w, h), level(16, h, w)],
            reg_max,
        }),
        Just(Plan::Yolov8 { output: "o".into() }),
        Just(Plan::Yolov5 { output: "o".into() }),
        proptest::collection::vec(0u32..40, 0..3).prop_map(|strides| Plan::Yolox {
            output: "o".into(),
            strides,
        }),
        any::<i64>().prop_map(|class_offset| Plan::EndToEnd {
            output: "o".into(),
            class_offset,
        }),
        (any::<bool>(), -2i64..3).prop_map(|(count, class_offset)| Plan::TfOd {
            boxes: "b".into(),
            scores: "s".into(),
            classes: "c".into(),
            count: count.then(|| "n".into()),
            class_offset,
        }),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

    /// Any plan over outputs of any shape and content: candidates with finite, ordered
    /// boxes and scores in 0..=1 of a known class, or an error that says something.
    #[test]
    fn any_output_decodes_to_sane_candidates_or_an_error(
        plan in any_plan(),
        tensors in proptest::collection::vec(
            (
                proptest::collection::vec(proptest::prelude::any::<i64>(), 0..4),
                proptest::collection::vec(any_value(), 0..120),
            ),
            0..6,
        ),
        thresholds in proptest::collection::vec(0.0f32..1.0, 0..5),
        input in (0u32..64, 0u32..64),
    ) {
        let views: Vec<Tensor<'_>> = tensors
            .iter()
            .map(|(shape, data)| Tensor { shape, data })
            .collect();
        match decode(&plan, &views, &thresholds, input) {
            Ok(dets) => {
                for d in dets {
                    proptest::prop_assert!(d.class_id < thresholds.len());
                    proptest::prop_assert!((0.0..=1.0).contains(&d.score), "{d:?}");
                    let [x0, y0, x1, y1] = d.bbox.0;
                    proptest::prop_assert!(d.bbox.0.iter().all(|v| v.is_finite()), "{d:?}");
                    proptest::prop_assert!(x0 <= x1 && y0 <= y1, "{d:?}");
                }
            }
            Err(e) => proptest::prop_assert!(!e.is_empty()),
        }
    }

    /// Any output shapes, any class count: a plan or an error, never a panic.
    #[test]
    fn any_output_shapes_resolve_or_are_refused(
        shapes in proptest::collection::vec(
            proptest::collection::vec(
                proptest::prop_oneof![
                    -1i64..5000,
                    proptest::prelude::Just(0i64),
                    proptest::prelude::any::<i64>(),
                ],
                0..5,
            ),
            0..7,
        ),
        classes in 0usize..100,
        input in (0u32..2000, 0u32..2000),
    ) {
        let names = ["boxes", "scores", "output0", "cls_pred_stride_8", "reg_pred_stride_8", "x"];
        let outputs: Vec<OutputInfo> = shapes
            .iter()
            .enumerate()
            .map(|(i, s)| info(names[i % names.len()], s))
            .collect();
        if let Ok(plan) = Plan::resolve(&OutputSpec::default(), &outputs, classes, input) {
            let _ = batch_refusal(&info("images", &[-1, 3, 416, 416]), &outputs, &plan);
        }
    }

    /// A batch is split only when every output starts with it; each frame's slice lies
    /// inside its tensor.
    #[test]
    fn batches_split_inside_their_tensors(
        tensors in proptest::collection::vec(
            (
                proptest::collection::vec(-2i64..6, 0..4),
                proptest::collection::vec(0.0f32..1.0, 0..40),
            ),
            0..4,
        ),
        n in 0usize..6,
    ) {
        let views: Vec<Tensor<'_>> = tensors
            .iter()
            .map(|(shape, data)| Tensor { shape, data })
            .collect();
        if let Ok(parts) = split_batch(&views, n) {
            for k in 0..n {
                let frame = frame_of_batch(&views, &parts, k);
                proptest::prop_assert_eq!(frame.len(), views.len());
            }
        }
    }
}
