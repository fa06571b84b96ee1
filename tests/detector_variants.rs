//! The default model's weights re-packed in every layout the detector reads
//! (models/make_variants.py, run by `deploy/setup.sh test-assets`) find
//! exactly what the base model finds, on real photos and real video frames:
//! same classes, IoU ≥ 0.99, scores within 1e-3. This proves each decoder,
//! the NHWC/RGB input paths and the letterbox mapping back to source pixels.
//! The dynamic-batch variant also finds, for four different frames run as one
//! batch, what each frame alone gives.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer, images::Image};
use streetwatch::detect::manifest::OutputFormat;
use streetwatch::detect::{Detection, Detector, DetectorOptions, RgbView};

/// Variant file stem → the format the detector must settle on.
pub const VARIANTS: [(&str, OutputFormat); 10] = [
    ("yolov8", OutputFormat::Yolov8),
    ("yolov5", OutputFormat::Yolov5),
    ("yolox", OutputFormat::Yolox),
    ("end2end", OutputFormat::EndToEnd),
    ("tf_od", OutputFormat::TfOd),
    ("nhwc", OutputFormat::BoxesScores),
    ("rgb", OutputFormat::BoxesScores),
    ("raw", OutputFormat::NanodetRaw),
    ("ultralytics", OutputFormat::Yolov8),
    ("dynbatch", OutputFormat::BoxesScores),
];

fn variant(stem: &str) -> PathBuf {
    common::cached(&format!("models/variants/{stem}.onnx"))
}

fn open(model: &Path) -> Detector {
    Detector::open(&DetectorOptions::for_model(model.to_owned()))
        .unwrap_or_else(|e| panic!("{} opens: {e}", model.display()))
}

/// The real photos plus frames 50, 200 and 400 of vtest.avi (extracted by ffmpeg, lossless).
fn images(dir: &Path) -> Vec<(String, image::RgbImage)> {
    let mut out = Vec::new();
    for name in ["bus.jpg", "leuvenA.jpg", "scenetext01.jpg"] {
        out.push((
            name.to_string(),
            streetwatch::detect::load_image(&common::media(name)).unwrap(),
        ));
    }
    let status = Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-i"])
        .arg(common::media("vtest.avi"))
        .args([
            "-vf",
            "select='eq(n\\,50)+eq(n\\,200)+eq(n\\,400)'",
            "-fps_mode",
            "passthrough",
        ])
        .arg(dir.join("vtest-%d.png"))
        .status()
        .expect("ffmpeg runs");
    assert!(status.success(), "ffmpeg could not extract vtest frames");
    for (i, n) in [50, 200, 400].iter().enumerate() {
        let p = dir.join(format!("vtest-{}.png", i + 1));
        out.push((
            format!("vtest frame {n}"),
            streetwatch::detect::load_image(&p).unwrap(),
        ));
    }
    out
}

fn run(det: &mut Detector, img: &image::RgbImage) -> Vec<Detection> {
    det.detect(RgbView {
        width: img.width(),
        height: img.height(),
        data: img.as_raw(),
    })
    .unwrap()
    .detections
}

/// Every detection of `want` has one in `got` of the same class with IoU ≥ 0.99 and a
/// score within 1e-3, and there are no others.
fn assert_same(what: &str, want: &[Detection], got: &[Detection]) {
    assert_eq!(
        want.len(),
        got.len(),
        "{what}: {} detections, base model {}:\n got {got:?}\nwant {want:?}",
        got.len(),
        want.len()
    );
    let mut used = vec![false; got.len()];
    for w in want {
        let best = got
            .iter()
            .enumerate()
            .filter(|(i, g)| !used[*i] && g.class_id == w.class_id)
            .map(|(i, g)| (i, g.bbox.iou(&w.bbox), g))
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let (i, overlap, g) = best.unwrap_or_else(|| panic!("{what}: nothing matches {w:?}"));
        assert!(
            overlap >= 0.99,
            "{what}: {w:?} best match {g:?} IoU {overlap}"
        );
        assert!(
            (g.score - w.score).abs() <= 1e-3,
            "{what}: {w:?} scored {} ({g:?})",
            g.score
        );
        used[i] = true;
    }
}

#[test]
fn every_stretch_variant_finds_what_the_base_model_finds() {
    let dir = tempfile::tempdir().unwrap();
    let imgs = images(dir.path());
    let mut base = open(&common::default_model());
    let want: Vec<Vec<Detection>> = imgs.iter().map(|(_, i)| run(&mut base, i)).collect();
    assert!(
        want.iter().map(Vec::len).sum::<usize>() >= 15,
        "the photos and frames hold people and vehicles: {want:?}"
    );
    for (stem, format) in VARIANTS {
        if stem == "ultralytics" {
            continue; // letterbox: its own test below
        }
        let mut det = open(&variant(stem));
        assert_eq!(det.plan().format(), format, "{stem}");
        for ((name, img), want) in imgs.iter().zip(&want) {
            assert_same(&format!("{stem} on {name}"), want, &run(&mut det, img));
        }
    }
}

/// What a letterbox model sees, built here independently: the frame resized keeping its
/// aspect ratio onto a 416×416 canvas of grey 114, centred. Returns the canvas, the
/// offset and the scale per axis.
fn letterbox(img: &image::RgbImage) -> (image::RgbImage, (f32, f32), (f32, f32)) {
    let (w, h) = (img.width() as f64, img.height() as f64);
    let s = (416.0 / w).min(416.0 / h);
    let (nw, nh) = ((w * s).round() as u32, (h * s).round() as u32);
    let src = fast_image_resize::images::ImageRef::new(
        img.width(),
        img.height(),
        img.as_raw(),
        PixelType::U8x3,
    )
    .unwrap();
    let mut resized = Image::new(nw, nh, PixelType::U8x3);
    Resizer::new()
        .resize(
            &src,
            &mut resized,
            &ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Bilinear)),
        )
        .unwrap();
    let resized =
        image::RgbImage::from_raw(nw, nh, resized.buffer().to_vec()).expect("resized buffer");
    let mut canvas = image::RgbImage::from_pixel(416, 416, image::Rgb([114, 114, 114]));
    let (px, py) = ((416 - nw) / 2, (416 - nh) / 2);
    image::imageops::replace(&mut canvas, &resized, px as i64, py as i64);
    (
        canvas,
        (px as f32, py as f32),
        (
            nw as f32 / img.width() as f32,
            nh as f32 / img.height() as f32,
        ),
    )
}

#[test]
fn ultralytics_export_needs_no_manifest_and_maps_letterbox_back_exactly() {
    let model = variant("ultralytics");
    assert!(
        !model.with_extension("toml").exists(),
        "the Ultralytics variant must carry its description as metadata only"
    );
    let mut det = open(&model);
    assert_eq!(det.plan().format(), OutputFormat::Yolov8);
    assert_eq!(det.manifest().labels.len(), 80);
    assert_eq!(det.manifest().labels[5], "bus");
    let mut base = open(&common::default_model());
    let dir = tempfile::tempdir().unwrap();
    let mut total = 0;
    for (name, img) in images(dir.path()) {
        // The base model (BGR, mean/std in Rust) on the letterboxed canvas, boxes mapped
        // back by hand, against the Ultralytics variant (RGB/255 in the graph) on the frame.
        let (canvas, pad, scale) = letterbox(&img);
        let mut want = run(&mut base, &canvas);
        for d in &mut want {
            let b = d.bbox;
            d.bbox = streetwatch::geom::PxBox([
                ((b[0] - pad.0) / scale.0).clamp(0.0, img.width() as f32),
                ((b[1] - pad.1) / scale.1).clamp(0.0, img.height() as f32),
                ((b[2] - pad.0) / scale.0).clamp(0.0, img.width() as f32),
                ((b[3] - pad.1) / scale.1).clamp(0.0, img.height() as f32),
            ]);
        }
        total += want.len();
        assert_same(
            &format!("ultralytics on {name}"),
            &want,
            &run(&mut det, &img),
        );
    }
    assert!(total >= 10, "letterboxed photos still hold objects");
}

#[test]
fn four_different_frames_in_one_batch_find_what_each_finds_alone() {
    let dir = tempfile::tempdir().unwrap();
    // Different scenes and sizes: 810×1080, two 768×576 video frames, a street photo.
    let imgs: Vec<(String, image::RgbImage)> = images(dir.path())
        .into_iter()
        .filter(|(name, _)| {
            [
                "bus.jpg",
                "scenetext01.jpg",
                "vtest frame 200",
                "vtest frame 400",
            ]
            .contains(&name.as_str())
        })
        .collect();
    assert_eq!(imgs.len(), 4);
    let views: Vec<RgbView> = imgs
        .iter()
        .map(|(_, i)| RgbView {
            width: i.width(),
            height: i.height(),
            data: i.as_raw(),
        })
        .collect();

    let mut base = open(&common::default_model());
    let e = base.detect_batch(&views).unwrap_err().to_string();
    assert!(
        e.contains("cannot run 4 frames in one inference") && e.contains("fixed batch"),
        "{e}"
    );
    let want: Vec<Vec<Detection>> = imgs.iter().map(|(_, i)| run(&mut base, i)).collect();
    assert!(
        want.iter().all(|d| !d.is_empty()) && want.iter().map(Vec::len).sum::<usize>() >= 15,
        "every frame holds people or vehicles: {want:?}"
    );

    let mut det = open(&variant("dynbatch"));
    assert_eq!(det.batch_refusal(), None);
    let got = det.detect_batch(&views).unwrap();
    assert_eq!(got.len(), 4);
    for (((name, img), want), got) in imgs.iter().zip(&want).zip(&got) {
        assert_same(&format!("batch of 4, {name}"), want, &got.detections);
        // The same model on the frame alone, too.
        assert_same(
            &format!("dynbatch alone, {name}"),
            &run(&mut det, img),
            &got.detections,
        );
    }
    // A batch in another order gives each frame the same detections.
    let reversed: Vec<RgbView> = views.iter().rev().copied().collect();
    let back = det.detect_batch(&reversed).unwrap();
    for (i, out) in back.iter().rev().enumerate() {
        assert_same(
            &format!("reversed batch, {}", imgs[i].0),
            &want[i],
            &out.detections,
        );
    }
}
