//! `streetwatch preview`: one frame of a camera with its zones, rules and what the
//! detector sees on it, as a JPEG.

use std::path::PathBuf;

use anyhow::Context;
use streetwatch::config::Config;
use streetwatch::detect::{self, RgbView};
use streetwatch::node::{self, options};
use streetwatch::preview::{self, Preview};

pub struct Args {
    pub config: PathBuf,
    pub camera: String,
    pub output: Option<PathBuf>,
    pub frame: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let Some(cam) = config.cameras.iter().find(|c| c.id == args.camera) else {
        let ids: Vec<&str> = config.cameras.iter().map(|c| c.id.as_str()).collect();
        return Err(config
            .key_error(
                "camera",
                format!(
                    "no camera {:?} (cameras: {})",
                    args.camera,
                    if ids.is_empty() {
                        "none".to_string()
                    } else {
                        ids.join(", ")
                    }
                ),
            )
            .into());
    };
    let mut img = match &args.frame {
        Some(path) => detect::load_image(path)?,
        None => {
            let mut frame = preview::grab(&options::source(cam))?;
            let data = std::mem::take(&mut frame.data);
            image::RgbImage::from_raw(frame.width, frame.height, data)
                .context("the camera's frame has the wrong size")?
        }
    };
    let mut detector = node::open_detector(&config)?;
    let found = detector.detect(RgbView {
        width: img.width(),
        height: img.height(),
        data: img.as_raw(),
    })?;
    let font = streetwatch::draw::font()?;
    let policy = options::privacy(&config.privacy);
    Preview {
        camera: &cam.id,
        zones: &cam.zones,
        detections: &found.detections,
        labels: &detector.manifest().labels,
        privacy: policy.as_ref(),
    }
    .draw(&mut img, &font);
    let out = args
        .output
        .unwrap_or_else(|| PathBuf::from(format!("preview-{}.jpg", cam.id)));
    super::write_jpeg(&out, &img, 90)?;
    println!(
        "{}: camera {}, {}x{}, {} zone(s), {} detection(s)",
        out.display(),
        cam.id,
        img.width(),
        img.height(),
        cam.zones.len(),
        found.detections.len()
    );
    Ok(())
}
