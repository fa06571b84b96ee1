//! Decode + class-aware NMS + mapping back to source pixels, on the default
//! model's real output for a real frame; and, in the same run, a whole
//! detection (preprocess + inference + decode) for the ratio in README.md.

use criterion::{Criterion, criterion_group, criterion_main};
use streetwatch::detect::decode::{self, Tensor};
use streetwatch::detect::{Detector, DetectorOptions, RgbView, postprocess};

mod common;

fn bench(c: &mut Criterion) {
    let mut det = Detector::open(&DetectorOptions::for_model(common::cached(
        "models/nanodet-m-416.onnx",
    )))
    .unwrap();
    let input = {
        let i = &det.manifest().input;
        (i.width, i.height)
    };
    let frame = common::vtest_frame();
    let view = RgbView {
        width: frame.width(),
        height: frame.height(),
        data: frame.as_raw(),
    };
    let (geometry, outputs) = det.raw_outputs(view).unwrap();
    let plan = det.plan().clone();
    let thresholds = det.thresholds().to_vec();
    let iou = det.nms_iou();
    let tensors: Vec<Tensor<'_>> = outputs
        .iter()
        .map(|(s, d)| Tensor { shape: s, data: d })
        .collect();
    let found = {
        let mut d = postprocess::nms_per_class(
            decode::decode(&plan, &tensors, &thresholds, input).unwrap(),
            iou,
        );
        geometry.to_source(&mut d);
        d.len()
    };
    assert!(found >= 5, "vtest frame 200 holds people: {found}");

    let mut group = c.benchmark_group("decode");
    group.bench_function("boxes_scores 3549x80 + nms (vtest frame 200)", |b| {
        b.iter(|| {
            let cands =
                decode::decode(&plan, std::hint::black_box(&tensors), &thresholds, input).unwrap();
            let mut d = postprocess::nms_per_class(cands, iou);
            geometry.to_source(&mut d);
            d
        })
    });
    group.finish();

    let mut group = c.benchmark_group("detect");
    group.sample_size(20);
    group.bench_function("768x576 whole detection", |b| {
        b.iter(|| det.detect(std::hint::black_box(view)).unwrap())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
