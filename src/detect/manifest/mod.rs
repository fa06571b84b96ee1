//! Model manifests: how to feed a model and how to read what it returns.
//!
//! A manifest is a TOML file beside the `.onnx` (`<model>.toml`). The default
//! model's manifest is also built into the binary, so the default model works
//! wherever its file is. An Ultralytics export needs no manifest: its ONNX
//! metadata (`names`, `imgsz`, `stride`, `task`) says everything
//! ([`Manifest::from_ultralytics`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::DetectError;

/// The manifest of the default model (`models/nanodet-m-416.toml`).
pub const DEFAULT_MANIFEST: &str = include_str!("../../../models/nanodet-m-416.toml");
/// File name of the default model in the cache.
pub const DEFAULT_MODEL_FILE: &str = "nanodet-m-416.onnx";

/// A model description, resolved: labels read, normalisation reduced to mean/std.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub name: String,
    pub input: InputSpec,
    pub output: OutputSpec,
    pub detection: DetectionDefaults,
    /// Class names, index = class id.
    pub labels: Vec<String>,
}

/// The manifest file as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestFile {
    name: String,
    input: InputFile,
    #[serde(default)]
    output: OutputSpec,
    #[serde(default)]
    detection: DetectionDefaults,
    /// Class names, index = class id.
    #[serde(default)]
    labels: Option<Vec<String>>,
    /// A text file with one class name per line (relative to the manifest).
    #[serde(default)]
    labels_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    Nchw,
    Nhwc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColorOrder {
    Rgb,
    Bgr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResizeMode {
    /// Plain resize to the input size; aspect ratio is not kept.
    Stretch,
    /// Resize keeping the aspect ratio, centred, the rest filled with `pad_value`
    /// (as Ultralytics and YOLOX models are trained).
    Letterbox,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InputFile {
    #[serde(default)]
    name: Option<String>,
    layout: Layout,
    width: u32,
    height: u32,
    color: ColorOrder,
    #[serde(default = "default_resize")]
    resize: ResizeMode,
    #[serde(default)]
    pad_value: Option<u8>,
    #[serde(default)]
    mean: Option<[f32; 3]>,
    #[serde(default)]
    std: Option<[f32; 3]>,
    #[serde(default)]
    scale: Option<f32>,
}

fn default_resize() -> ResizeMode {
    ResizeMode::Stretch
}

/// How a frame becomes the input tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct InputSpec {
    /// The model input to feed; `None`: the model's only input.
    pub name: Option<String>,
    pub layout: Layout,
    pub width: u32,
    pub height: u32,
    pub color: ColorOrder,
    pub resize: ResizeMode,
    /// Fill of the letterbox border, in 0..255 units.
    pub pad_value: u8,
    /// Subtracted from each channel, in the tensor's channel order, in 0..255 units.
    pub mean: [f32; 3],
    /// Each channel is divided by this after the mean is subtracted
    /// (`scale = s` in the file means mean 0, std `1/s`).
    pub std: [f32; 3],
}

/// The output layouts streetwatch decodes (see [`super::decode`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// `boxes [1, N, 4]` (x0, y0, x1, y1 in input pixels) and `scores [1, N, C]`,
    /// as NanoDet with its GFL decoding appended to the graph.
    BoxesScores,
    /// NanoDet/GFL as trained: per stride a class-score output `[1, H·W, C]`
    /// and a distribution regression `[1, H·W, 4·(reg_max+1)]`.
    NanodetRaw,
    /// Ultralytics YOLOv8/YOLO11: `[1, 4+C, N]`, rows cx, cy, w, h, class scores.
    Yolov8,
    /// YOLOv5: `[1, N, 5+C]`: cx, cy, w, h, objectness, class scores.
    Yolov5,
    /// YOLOX without in-graph decoding: `[1, N, 5+C]` on grids of strides 8/16/32:
    /// (dx, dy, log w, log h) in stride units, objectness, class scores.
    Yolox,
    /// End-to-end (NMS inside, YOLOv10 / RT-DETR style): `[1, K, 6]`:
    /// x0, y0, x1, y1, score, class.
    EndToEnd,
    /// TensorFlow Object Detection API: `detection_boxes [1, K, 4]` (ymin, xmin,
    /// ymax, xmax, 0..1), `detection_scores`, `detection_classes`, `num_detections`.
    TfOd,
}

impl OutputFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputFormat::BoxesScores => "boxes_scores",
            OutputFormat::NanodetRaw => "nanodet_raw",
            OutputFormat::Yolov8 => "yolov8",
            OutputFormat::Yolov5 => "yolov5",
            OutputFormat::Yolox => "yolox",
            OutputFormat::EndToEnd => "end_to_end",
            OutputFormat::TfOd => "tf_od",
        }
    }
}

/// Which outputs to read and how. Everything is optional: unset names are found
/// by shape, an unset format is detected when the outputs leave no doubt.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    #[serde(default)]
    pub format: Option<OutputFormat>,
    /// The output, for single-output formats (yolov8, yolov5, yolox, end_to_end).
    #[serde(default)]
    pub name: Option<String>,
    /// `boxes_scores` / `tf_od`: the output holding the boxes.
    #[serde(default)]
    pub boxes: Option<String>,
    /// `boxes_scores` / `tf_od`: the output holding the scores.
    #[serde(default)]
    pub scores: Option<String>,
    /// `tf_od`: the output holding the class ids.
    #[serde(default)]
    pub classes: Option<String>,
    /// `tf_od`: the output holding the number of detections.
    #[serde(default)]
    pub count: Option<String>,
    /// `nanodet_raw` / `yolox`: the grid strides, in output order (default 8, 16, 32).
    #[serde(default)]
    pub strides: Option<Vec<u32>>,
    /// `nanodet_raw`: the largest distribution bin (default 10: 11 bins).
    #[serde(default)]
    pub reg_max: Option<u32>,
    /// `tf_od` / `end_to_end`: subtracted from the model's class ids to index
    /// `labels` (default 1 for `tf_od`, whose ids start at 1; 0 otherwise).
    #[serde(default)]
    pub class_offset: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionDefaults {
    #[serde(default = "default_min_score")]
    pub min_score: f32,
    #[serde(default = "default_nms_iou")]
    pub nms_iou: f32,
    /// Per-class score thresholds (by label), overriding `min_score` for that class.
    #[serde(default)]
    pub class_min_score: BTreeMap<String, f32>,
}

impl Default for DetectionDefaults {
    fn default() -> Self {
        Self {
            min_score: default_min_score(),
            nms_iou: default_nms_iou(),
            class_min_score: BTreeMap::new(),
        }
    }
}

fn default_min_score() -> f32 {
    0.35
}
fn default_nms_iou() -> f32 {
    0.5
}

/// Largest model input side a manifest may ask for.
const MAX_INPUT_SIDE: u32 = 8192;
/// Largest GFL distribution size (NanoDet uses 7, GFL 16).
const MAX_REG_MAX: u32 = 256;

impl Manifest {
    /// Parses a manifest; `origin` is its path (relative `labels_file` is resolved against it).
    pub fn parse(text: &str, origin: &Path) -> Result<Manifest, DetectError> {
        let bad = |message: String| DetectError::Manifest {
            path: origin.to_owned(),
            message,
        };
        let f: ManifestFile =
            toml::from_str(text).map_err(|e| bad(e.to_string().trim_end().to_owned()))?;
        let i = f.input;
        if i.width == 0 || i.height == 0 {
            return Err(bad("input.width and input.height must be > 0".into()));
        }
        if i.width > MAX_INPUT_SIDE || i.height > MAX_INPUT_SIDE {
            return Err(bad(format!(
                "input.width and input.height must be ≤ {MAX_INPUT_SIDE}"
            )));
        }
        let (mean, std) = match (i.scale, i.mean, i.std) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(bad(
                    "input.scale and input.mean/input.std exclude each other".into(),
                ));
            }
            (Some(s), None, None) => {
                if !(s.is_finite() && s > 0.0) {
                    return Err(bad("input.scale must be > 0".into()));
                }
                ([0.0; 3], [1.0 / s; 3])
            }
            (None, mean, std) => (mean.unwrap_or([0.0; 3]), std.unwrap_or([1.0; 3])),
        };
        if std.contains(&0.0) {
            return Err(bad("input.std must not contain 0".into()));
        }
        if !mean.iter().chain(&std).all(|v| v.is_finite()) {
            return Err(bad("input.mean and input.std must be finite numbers".into()));
        }
        if f.output.strides.as_ref().is_some_and(|s| s.contains(&0)) {
            return Err(bad("output.strides must be > 0".into()));
        }
        if f.output.reg_max.is_some_and(|r| r > MAX_REG_MAX) {
            return Err(bad(format!("output.reg_max must be ≤ {MAX_REG_MAX}")));
        }
        if i.pad_value.is_some() && i.resize != ResizeMode::Letterbox {
            return Err(bad(
                "input.pad_value only applies to resize = \"letterbox\"".into(),
            ));
        }
        let labels = match (f.labels, f.labels_file) {
            (Some(_), Some(_)) => {
                return Err(bad("labels and labels_file exclude each other".into()));
            }
            (Some(l), None) => l,
            (None, Some(file)) => {
                let path = origin.parent().unwrap_or(Path::new(".")).join(&file);
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    bad(format!("labels_file {}: cannot read: {e}", path.display()))
                })?;
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .map(String::from)
                    .collect()
            }
            (None, None) => return Err(bad("needs labels or labels_file".into())),
        };
        if labels.is_empty() {
            return Err(bad("labels must not be empty".into()));
        }
        let d = &f.detection;
        if !(0.0..=1.0).contains(&d.min_score) || !(0.0..=1.0).contains(&d.nms_iou) {
            return Err(bad(
                "detection.min_score and detection.nms_iou must be in 0..1".into(),
            ));
        }
        for (class, score) in &d.class_min_score {
            if !labels.contains(class) {
                return Err(bad(format!(
                    "detection.class_min_score: {class:?} is not one of the labels"
                )));
            }
            if !(0.0..=1.0).contains(score) {
                return Err(bad(format!(
                    "detection.class_min_score.{class}: must be in 0..1"
                )));
            }
        }
        Ok(Manifest {
            name: f.name,
            input: InputSpec {
                name: i.name,
                layout: i.layout,
                width: i.width,
                height: i.height,
                color: i.color,
                resize: i.resize,
                pad_value: i.pad_value.unwrap_or(114),
                mean,
                std,
            },
            output: f.output,
            detection: f.detection,
            labels,
        })
    }

    /// Finds the manifest for `model`: the explicit one, else `<model>.toml` beside it,
    /// else the built-in one when `model` is the default model's file. `Ok(None)`: there
    /// is none, and the model must describe itself (Ultralytics metadata).
    pub fn locate(model: &Path, explicit: Option<&Path>) -> Result<Option<Manifest>, DetectError> {
        let read = |p: &Path| -> Result<Manifest, DetectError> {
            let text = std::fs::read_to_string(p).map_err(|e| DetectError::Manifest {
                path: p.to_owned(),
                message: format!("cannot read: {e}"),
            })?;
            Manifest::parse(&text, p)
        };
        if let Some(p) = explicit {
            return read(p).map(Some);
        }
        let beside = model.with_extension("toml");
        if beside.exists() {
            return read(&beside).map(Some);
        }
        if model.file_name().and_then(|n| n.to_str()) == Some(DEFAULT_MODEL_FILE) {
            return Manifest::parse(DEFAULT_MANIFEST, Path::new("<built-in nanodet-m-416.toml>"))
                .map(Some);
        }
        Ok(None)
    }

    /// A manifest from Ultralytics ONNX metadata (`names`, `imgsz`, `stride`, `task`):
    /// RGB, letterbox with 114, pixels / 255, NCHW, as Ultralytics trains and exports.
    /// `custom(key)` reads one metadata value. `Ok(None)`: not an Ultralytics export.
    pub fn from_ultralytics(
        name: &str,
        custom: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<Manifest>, String> {
        let Some(names) = custom("names") else {
            return Ok(None);
        };
        if let Some(task) = custom("task")
            && task != "detect"
        {
            return Err(format!(
                "Ultralytics metadata says task {task:?}; streetwatch runs \"detect\" models"
            ));
        }
        let labels = parse_python_names(&names)
            .ok_or_else(|| format!("Ultralytics metadata `names` is not a class map: {names}"))?;
        let imgsz = custom("imgsz").ok_or("Ultralytics metadata has `names` but no `imgsz`")?;
        let size: Vec<u32> = imgsz
            .trim_matches(|c| c == '[' || c == ']' || c == '(' || c == ')')
            .split(',')
            .map(|v| v.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("Ultralytics metadata `imgsz` is not [h, w]: {imgsz}"))?;
        let (height, width) = match size[..] {
            [s] => (s, s),
            [h, w] => (h, w),
            _ => {
                return Err(format!(
                    "Ultralytics metadata `imgsz` is not [h, w]: {imgsz}"
                ));
            }
        };
        if let Some(stride) = custom("stride")
            && let Ok(stride) = stride.trim().parse::<u32>()
            && (stride == 0 || width % stride != 0 || height % stride != 0)
        {
            return Err(format!(
                "Ultralytics metadata: imgsz {imgsz} is not a multiple of stride {stride}"
            ));
        }
        Ok(Some(Manifest {
            name: name.to_owned(),
            input: InputSpec {
                name: None,
                layout: Layout::Nchw,
                width,
                height,
                color: ColorOrder::Rgb,
                resize: ResizeMode::Letterbox,
                pad_value: 114,
                mean: [0.0; 3],
                std: [255.0; 3],
            },
            output: OutputSpec::default(),
            detection: DetectionDefaults::default(),
            labels,
        }))
    }

    pub fn class_id(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }

    /// The score threshold of each class, index = class id.
    pub fn thresholds(&self, min_score: f32) -> Vec<f32> {
        self.labels
            .iter()
            .map(|l| {
                self.detection
                    .class_min_score
                    .get(l)
                    .copied()
                    .unwrap_or(min_score)
            })
            .collect()
    }
}

/// Parses Ultralytics' `names` value, a Python dict literal `{0: 'person', 1: 'bicycle'}`.
fn parse_python_names(text: &str) -> Option<Vec<String>> {
    let body = text.trim().strip_prefix('{')?.strip_suffix('}')?;
    let mut map = BTreeMap::new();
    let mut rest = body.trim();
    while !rest.is_empty() {
        let (key, after) = rest.split_once(':')?;
        let id: usize = key.trim().parse().ok()?;
        let after = after.trim_start();
        let quote = after.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let after = &after[1..];
        let end = after.find(quote)?;
        map.insert(id, after[..end].to_owned());
        rest = after[end + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    // ids must be 0..n
    let n = map.len();
    if n == 0 || map.keys().copied().ne(0..n) {
        return None;
    }
    Some(map.into_values().collect())
}

/// The default model's path when `[model] path` is not set: `$STREETWATCH_MODEL`,
/// else the packaged `/usr/lib/streetwatch/models/nanodet-m-416.onnx` if it is
/// there, else `<cache>/models/nanodet-m-416.onnx`.
pub fn default_model_path() -> PathBuf {
    crate::locate(
        None,
        std::env::var_os("STREETWATCH_MODEL"),
        Path::new(crate::INSTALL_DIR)
            .join("models")
            .join(DEFAULT_MODEL_FILE),
        crate::cache_dir().join("models").join(DEFAULT_MODEL_FILE),
        Path::exists,
    )
}

/// The sha256 the default model is pinned to (`models/nanodet-m-416.sha256`).
pub fn default_model_sha256() -> &'static str {
    include_str!("../../../models/nanodet-m-416.sha256")
        .lines()
        .find_map(|l| l.strip_suffix(DEFAULT_MODEL_FILE))
        .map_or("", str::trim)
}

#[cfg(test)]
mod tests;
