//! `streetwatch probe-model`: what a model file is, as streetwatch sees it.

use std::fmt::Write;
use std::time::Instant;

use super::providers::ProviderExt;
use super::{DetectError, Detector, DetectorOptions, RgbView, providers};

/// Opens the model as the daemon would and describes it: inputs, outputs, the
/// detected format, whether it batches, labels, execution providers, and a timed inference on a
/// blank frame of the input size.
pub fn report(opts: &DetectorOptions, runs: usize) -> Result<String, DetectError> {
    let mut det = Detector::open(opts)?;
    let mut r = String::new();
    let m = det.manifest().clone();
    let io = det.io();
    let _ = writeln!(r, "model:     {}", opts.model.display());
    let _ = writeln!(r, "name:      {}", m.name);
    let _ = writeln!(r, "manifest:  {}", det.manifest_source());
    for i in &io.inputs {
        let _ = writeln!(r, "input:     {} {:?}", i.name, i.shape);
    }
    for o in &io.outputs {
        let _ = writeln!(r, "output:    {} {:?}", o.name, o.shape);
    }
    let i = &m.input;
    let _ = writeln!(
        r,
        "feed:      {}x{} {:?} {:?}, resize {:?}{}, mean {:?}, std {:?}",
        i.width,
        i.height,
        i.layout,
        i.color,
        i.resize,
        if i.resize == super::manifest::ResizeMode::Letterbox {
            format!(" (pad {})", i.pad_value)
        } else {
            String::new()
        },
        i.mean,
        i.std
    );
    let _ = writeln!(r, "format:    {}", det.plan().format().as_str());
    let _ = match det.batch_refusal() {
        None => writeln!(
            r,
            "batching:  yes (dynamic batch: [detector] max_batch > 1 runs frames of several cameras at once)"
        ),
        Some(why) => writeln!(r, "batching:  no ({why})"),
    };
    let _ = writeln!(r, "labels:    {} ({})", m.labels.len(), m.labels.join(", "));
    let available: Vec<String> = providers::ALL
        .iter()
        .map(|p| match p.compiled_in() {
            Ok(true) => format!("{p} yes"),
            Ok(false) => format!("{p} no"),
            Err(e) => format!("{p} unknown ({e})"),
        })
        .collect();
    let _ = writeln!(r, "providers: {}", available.join(", "));
    let _ = writeln!(r, "running on: {}", det.provider());
    let (w, h) = (i.width, i.height);
    let blank = vec![0u8; (w * h * 3) as usize];
    let frame = RgbView {
        width: w,
        height: h,
        data: &blank,
    };
    det.detect(frame)?; // warm-up: first run allocates
    let start = Instant::now();
    let mut found = 0;
    for _ in 0..runs.max(1) {
        found = det.detect(frame)?.detections.len();
    }
    let ms = start.elapsed().as_secs_f64() * 1000.0 / runs.max(1) as f64;
    let _ = writeln!(
        r,
        "inference: {ms:.1} ms on a blank {w}x{h} frame (mean of {} runs, {found} detections)",
        runs.max(1)
    );
    Ok(r)
}
