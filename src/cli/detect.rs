//! `streetwatch detect`: the detector on one still image; what it finds, and
//! optionally the image with the detections drawn.

use std::path::PathBuf;

use streetwatch::config::Config;
use streetwatch::detect::{self, Detector, DetectorOptions, RgbView};
use streetwatch::node::options;
use streetwatch::preview::Preview;

pub fn run(
    image: PathBuf,
    config: Option<PathBuf>,
    model: Option<PathBuf>,
    json: bool,
    annotate: Option<PathBuf>,
) -> anyhow::Result<()> {
    let config = config.map(|p| Config::load(&p)).transpose()?;
    let mut opts = match &config {
        Some(c) => options::detector(c),
        None => DetectorOptions::for_model(detect::manifest::default_model_path()),
    };
    if let Some(m) = model {
        opts.model = m;
    }
    let mut detector = Detector::open(&opts)?;
    let img = detect::load_image(&image)?;
    let out = detector.detect(RgbView {
        width: img.width(),
        height: img.height(),
        data: img.as_raw(),
    })?;
    if let Some(path) = &annotate {
        let policy = match &config {
            Some(c) => options::privacy(&c.privacy),
            None => options::privacy(&Default::default()),
        };
        let mut picture = img.clone();
        let name = image.file_name().map_or_else(
            || image.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Preview {
            camera: &name,
            zones: &[],
            detections: &out.detections,
            labels: &detector.manifest().labels,
            privacy: policy.as_ref(),
        }
        .draw(&mut picture, &streetwatch::draw::font()?);
        super::write_jpeg(path, &picture, 90)?;
    }
    if json {
        let dets: Vec<serde_json::Value> = out
            .detections
            .iter()
            .map(|d| {
                serde_json::json!({
                    "class": detector.label(d.class_id),
                    "class_id": d.class_id,
                    "score": (d.score * 1000.0).round() / 1000.0,
                    "box": d.bbox.0.map(|v| (v * 10.0).round() / 10.0),
                })
            })
            .collect();
        let doc = serde_json::json!({
            "image": image.display().to_string(),
            "width": img.width(),
            "height": img.height(),
            "model": detector.manifest().name,
            "inference_ms": (out.elapsed.as_secs_f64() * 10000.0).round() / 10.0,
            "detections": dets,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!(
            "{} ({}x{}), model {}, {:.1} ms",
            image.display(),
            img.width(),
            img.height(),
            detector.manifest().name,
            out.elapsed.as_secs_f64() * 1000.0
        );
        for d in &out.detections {
            println!(
                "  {:<14} {:.3}  [{:.0}, {:.0}, {:.0}, {:.0}]",
                detector.label(d.class_id),
                d.score,
                d.bbox[0],
                d.bbox[1],
                d.bbox[2],
                d.bbox[3]
            );
        }
    }
    Ok(())
}
