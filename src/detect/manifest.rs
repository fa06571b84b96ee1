//! Model manifests: how to feed a model and how to read what it returns.
//!
//! A manifest is a TOML file beside the `.onnx` (`<model>.toml`). The default
//! model's manifest is also built into the binary, so the default model works
//! wherever its file is.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::DetectError;

/// The manifest of the default model (`models/nanodet-m-416.toml`).
pub const DEFAULT_MANIFEST: &str = include_str!("../../models/nanodet-m-416.toml");
/// File name of the default model in the cache.
pub const DEFAULT_MODEL_FILE: &str = "nanodet-m-416.onnx";

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    pub name: String,
    pub input: InputSpec,
    pub output: OutputSpec,
    #[serde(default)]
    pub detection: DetectionDefaults,
    /// Class names, index = class id.
    pub labels: Vec<String>,
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
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub name: String,
    pub layout: Layout,
    pub width: u32,
    pub height: u32,
    pub color: ColorOrder,
    pub resize: ResizeMode,
    /// Subtracted from each channel, in the tensor's channel order, in 0..255 units.
    pub mean: [f32; 3],
    /// Each channel is divided by this after the mean is subtracted.
    pub std: [f32; 3],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputFormat {
    /// `boxes [1, N, 4]` (x0, y0, x1, y1 in input pixels) and `scores [1, N, C]`,
    /// as NanoDet with its GFL decoding appended to the graph.
    BoxesScores,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    pub format: OutputFormat,
    /// Output holding the boxes.
    pub boxes: String,
    /// Output holding the per-class scores.
    pub scores: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectionDefaults {
    #[serde(default = "default_min_score")]
    pub min_score: f32,
    #[serde(default = "default_nms_iou")]
    pub nms_iou: f32,
}

impl Default for DetectionDefaults {
    fn default() -> Self {
        Self {
            min_score: default_min_score(),
            nms_iou: default_nms_iou(),
        }
    }
}

fn default_min_score() -> f32 {
    0.35
}
fn default_nms_iou() -> f32 {
    0.5
}

impl Manifest {
    pub fn parse(text: &str, origin: &Path) -> Result<Manifest, DetectError> {
        let m: Manifest = toml::from_str(text).map_err(|e| DetectError::Manifest {
            path: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        let bad = |message: &str| DetectError::Manifest {
            path: origin.to_owned(),
            message: message.to_owned(),
        };
        if m.input.width == 0 || m.input.height == 0 {
            return Err(bad("input.width and input.height must be > 0"));
        }
        if m.input.std.contains(&0.0) {
            return Err(bad("input.std must not contain 0"));
        }
        if m.labels.is_empty() {
            return Err(bad("labels must not be empty"));
        }
        Ok(m)
    }

    /// Finds the manifest for `model`: the explicit one, else `<model>.toml` beside it,
    /// else the built-in one when `model` is the default model's file.
    pub fn locate(model: &Path, explicit: Option<&Path>) -> Result<Manifest, DetectError> {
        let read = |p: &Path| -> Result<Manifest, DetectError> {
            let text = std::fs::read_to_string(p).map_err(|e| DetectError::Manifest {
                path: p.to_owned(),
                message: format!("cannot read: {e}"),
            })?;
            Manifest::parse(&text, p)
        };
        if let Some(p) = explicit {
            return read(p);
        }
        let beside = model.with_extension("toml");
        if beside.exists() {
            return read(&beside);
        }
        if model.file_name().and_then(|n| n.to_str()) == Some(DEFAULT_MODEL_FILE) {
            return Manifest::parse(DEFAULT_MANIFEST, Path::new("<built-in nanodet-m-416.toml>"));
        }
        Err(DetectError::Manifest {
            path: beside,
            message: "no manifest for this model (write one beside it, or set [model] manifest)"
                .into(),
        })
    }

    pub fn class_id(&self, label: &str) -> Option<usize> {
        self.labels.iter().position(|l| l == label)
    }
}

/// The default model's path: `<cache>/models/nanodet-m-416.onnx`.
pub fn default_model_path() -> PathBuf {
    crate::cache_dir().join("models").join(DEFAULT_MODEL_FILE)
}

#[cfg(test)]
mod tests {
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
    }

    #[test]
    fn default_model_file_uses_built_in_manifest() {
        let m = Manifest::locate(Path::new("/nowhere/nanodet-m-416.onnx"), None).unwrap();
        assert_eq!(m.name, "nanodet-m-416");
        let e = Manifest::locate(Path::new("/nowhere/other.onnx"), None).unwrap_err();
        assert!(e.to_string().contains("/nowhere/other.toml"), "{e}");
    }
}
