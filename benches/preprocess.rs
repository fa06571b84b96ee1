//! Frame → input tensor for the default model (416×416), from real frames in
//! camera sizes: stretch (the default model) and letterbox (Ultralytics models).

use std::path::Path;

use criterion::{Criterion, criterion_group, criterion_main};
use streetwatch::detect::RgbView;
use streetwatch::detect::manifest::{DEFAULT_MANIFEST, Manifest, ResizeMode};
use streetwatch::detect::preprocess::Preprocessor;

mod common;

fn bench(c: &mut Criterion) {
    let manifest = Manifest::parse(DEFAULT_MANIFEST, Path::new("built-in")).unwrap();
    let frames = [
        ("1920x1080", common::full_hd_frame()),
        ("768x576", common::vtest_frame()),
    ];
    let mut group = c.benchmark_group("preprocess");
    for (resize, name) in [
        (ResizeMode::Stretch, "stretch"),
        (ResizeMode::Letterbox, "letterbox"),
    ] {
        let mut spec = manifest.input.clone();
        spec.resize = resize;
        let mut pre = Preprocessor::new(&spec);
        let mut out = Vec::new();
        for (size, img) in &frames {
            let view = RgbView {
                width: img.width(),
                height: img.height(),
                data: img.as_raw(),
            };
            group.bench_function(format!("{size} -> 416 {name}"), |b| {
                b.iter(|| pre.run(std::hint::black_box(view), &mut out).unwrap())
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30);
    targets = bench
}
criterion_main!(benches);
