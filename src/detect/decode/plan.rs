//! Which outputs to read and how: the [`Plan`] made once when a model is
//! opened, from its manifest and the output shapes the session reports (the
//! format is detected from the shapes when the manifest does not say), and
//! whether the model can run several frames in one inference.

use super::super::manifest::{OutputFormat, OutputSpec};

/// One output of the model as the session describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct OutputInfo {
    pub name: String,
    /// Dimensions; a negative value is a dynamic dimension.
    pub shape: Vec<i64>,
}

/// One stride of a raw NanoDet/GFL head.
#[derive(Debug, Clone, PartialEq)]
pub struct GflLevel {
    pub stride: u32,
    pub grid_w: usize,
    pub grid_h: usize,
    pub scores: String,
    pub regression: String,
}

/// How to decode a model's outputs, resolved against the model.
#[derive(Debug, Clone, PartialEq)]
pub enum Plan {
    BoxesScores {
        boxes: String,
        scores: String,
    },
    NanodetRaw {
        levels: Vec<GflLevel>,
        reg_max: usize,
    },
    Yolov8 {
        output: String,
    },
    Yolov5 {
        output: String,
    },
    Yolox {
        output: String,
        strides: Vec<u32>,
    },
    EndToEnd {
        output: String,
        class_offset: i64,
    },
    TfOd {
        boxes: String,
        scores: String,
        classes: String,
        count: Option<String>,
        class_offset: i64,
    },
}

impl Plan {
    pub fn format(&self) -> OutputFormat {
        match self {
            Plan::BoxesScores { .. } => OutputFormat::BoxesScores,
            Plan::NanodetRaw { .. } => OutputFormat::NanodetRaw,
            Plan::Yolov8 { .. } => OutputFormat::Yolov8,
            Plan::Yolov5 { .. } => OutputFormat::Yolov5,
            Plan::Yolox { .. } => OutputFormat::Yolox,
            Plan::EndToEnd { .. } => OutputFormat::EndToEnd,
            Plan::TfOd { .. } => OutputFormat::TfOd,
        }
    }

    /// The outputs this plan reads, in the order [`decode`] wants them.
    pub fn output_names(&self) -> Vec<&str> {
        match self {
            Plan::BoxesScores { boxes, scores } => vec![boxes, scores],
            Plan::NanodetRaw { levels, .. } => levels
                .iter()
                .flat_map(|l| [l.scores.as_str(), l.regression.as_str()])
                .collect(),
            Plan::Yolov8 { output }
            | Plan::Yolov5 { output }
            | Plan::Yolox { output, .. }
            | Plan::EndToEnd { output, .. } => vec![output],
            Plan::TfOd {
                boxes,
                scores,
                classes,
                count,
                ..
            } => {
                let mut v = vec![boxes.as_str(), scores.as_str(), classes.as_str()];
                v.extend(count.as_deref());
                v
            }
        }
    }

    /// Chooses the decoder: the manifest's `format` if set, else the one the output
    /// shapes leave no doubt about. Checks the shapes against `classes` labels and the
    /// input size. Errors say what was found and what to set.
    pub fn resolve(
        spec: &OutputSpec,
        outputs: &[OutputInfo],
        classes: usize,
        input: (u32, u32),
    ) -> Result<Plan, String> {
        let format = match spec.format {
            Some(f) => f,
            None => detect_format(spec, outputs, classes)?,
        };
        let find = |key: &str, name: &Option<String>, default: &[&str]| -> Result<String, String> {
            if let Some(n) = name {
                return outputs
                    .iter()
                    .find(|o| &o.name == n)
                    .map(|o| o.name.clone())
                    .ok_or_else(|| {
                        format!(
                            "output.{key} = {n:?} is not an output of the model (outputs: {})",
                            describe(outputs)
                        )
                    });
            }
            outputs
                .iter()
                .find(|o| {
                    default
                        .iter()
                        .any(|d| o.name == *d || o.name.starts_with(&format!("{d}:")))
                })
                .map(|o| o.name.clone())
                .ok_or_else(|| {
                    format!(
                        "format {} needs an output named {:?} (or set output.{key}); outputs: {}",
                        format.as_str(),
                        default[0],
                        describe(outputs)
                    )
                })
        };
        let single = || -> Result<&OutputInfo, String> {
            match &spec.name {
                Some(n) => outputs.iter().find(|o| &o.name == n).ok_or_else(|| {
                    format!(
                        "output.name = {n:?} is not an output of the model (outputs: {})",
                        describe(outputs)
                    )
                }),
                None if outputs.len() == 1 => Ok(&outputs[0]),
                None => Err(format!(
                    "format {} reads one output but the model has {} (set output.name): {}",
                    format.as_str(),
                    outputs.len(),
                    describe(outputs)
                )),
            }
        };
        let shape_of = |name: &str| -> &[i64] {
            outputs
                .iter()
                .find(|o| o.name == name)
                .map(|o| o.shape.as_slice())
                .unwrap_or(&[])
        };
        let class_check = |what: &str, got: i64| -> Result<(), String> {
            if got >= 0 && got as usize != classes {
                Err(format!(
                    "the model has {got} classes ({what}) but the manifest lists {classes} labels"
                ))
            } else {
                Ok(())
            }
        };
        let plan = match format {
            OutputFormat::BoxesScores => {
                let boxes = find("boxes", &spec.boxes, &["boxes"])?;
                let scores = find("scores", &spec.scores, &["scores"])?;
                let (b, s) = (shape_of(&boxes), shape_of(&scores));
                if b.len() != 3 || b[2] != 4 || s.len() != 3 {
                    return Err(format!(
                        "boxes_scores needs boxes [1, N, 4] and scores [1, N, C]; got {boxes} {b:?}, {scores} {s:?}"
                    ));
                }
                class_check(&format!("last dimension of {scores}"), s[2])?;
                Plan::BoxesScores { boxes, scores }
            }
            OutputFormat::NanodetRaw => {
                let strides = spec.strides.clone().unwrap_or(vec![8, 16, 32]);
                let reg_max = spec.reg_max.unwrap_or(10) as usize;
                let levels = gfl_levels(outputs, classes, reg_max, &strides, input)?;
                Plan::NanodetRaw { levels, reg_max }
            }
            OutputFormat::Yolov8 => {
                let o = single()?;
                if o.shape.len() != 3 {
                    return Err(format!(
                        "yolov8 needs [1, 4+C, N]; {} is {:?}",
                        o.name, o.shape
                    ));
                }
                class_check(
                    &format!("{} is {:?}: 4 + C rows", o.name, o.shape),
                    o.shape[1] - 4,
                )?;
                Plan::Yolov8 {
                    output: o.name.clone(),
                }
            }
            OutputFormat::Yolov5 | OutputFormat::Yolox => {
                let o = single()?;
                if o.shape.len() != 3 {
                    return Err(format!(
                        "{} needs [1, N, 5+C]; {} is {:?}",
                        format.as_str(),
                        o.name,
                        o.shape
                    ));
                }
                class_check(
                    &format!("{} is {:?}: 5 + C columns", o.name, o.shape),
                    o.shape[2] - 5,
                )?;
                if format == OutputFormat::Yolov5 {
                    Plan::Yolov5 {
                        output: o.name.clone(),
                    }
                } else {
                    let strides = spec.strides.clone().unwrap_or(vec![8, 16, 32]);
                    let anchors: usize = strides
                        .iter()
                        .map(|&s| (input.0 / s) as usize * (input.1 / s) as usize)
                        .sum();
                    if o.shape[1] >= 0 && o.shape[1] as usize != anchors {
                        return Err(format!(
                            "yolox: {} has {} rows but strides {strides:?} on {}x{} make {anchors}",
                            o.name, o.shape[1], input.0, input.1
                        ));
                    }
                    Plan::Yolox {
                        output: o.name.clone(),
                        strides,
                    }
                }
            }
            OutputFormat::EndToEnd => {
                let o = single()?;
                if o.shape.len() != 3 || o.shape[2] != 6 {
                    return Err(format!(
                        "end_to_end needs [1, K, 6] (x0, y0, x1, y1, score, class); {} is {:?}",
                        o.name, o.shape
                    ));
                }
                Plan::EndToEnd {
                    output: o.name.clone(),
                    class_offset: spec.class_offset.unwrap_or(0),
                }
            }
            OutputFormat::TfOd => Plan::TfOd {
                boxes: find("boxes", &spec.boxes, &["detection_boxes"])?,
                scores: find("scores", &spec.scores, &["detection_scores"])?,
                classes: find("classes", &spec.classes, &["detection_classes"])?,
                count: find("count", &spec.count, &["num_detections"]).ok(),
                class_offset: spec.class_offset.unwrap_or(1),
            },
        };
        Ok(plan)
    }
}

fn describe(outputs: &[OutputInfo]) -> String {
    outputs
        .iter()
        .map(|o| format!("{} {:?}", o.name, o.shape))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The format the outputs leave no doubt about.
fn detect_format(
    spec: &OutputSpec,
    outputs: &[OutputInfo],
    classes: usize,
) -> Result<OutputFormat, String> {
    let named = |n: &str| {
        outputs
            .iter()
            .any(|o| o.name == n || o.name.starts_with(&format!("{n}:")))
    };
    if named("detection_boxes") && named("detection_scores") && named("detection_classes") {
        return Ok(OutputFormat::TfOd);
    }
    if (named("boxes") && named("scores")) || (spec.boxes.is_some() && spec.scores.is_some()) {
        return Ok(OutputFormat::BoxesScores);
    }
    let rank3: Vec<&OutputInfo> = outputs.iter().filter(|o| o.shape.len() == 3).collect();
    if outputs.len() >= 2 && outputs.len().is_multiple_of(2) && rank3.len() == outputs.len() {
        let c = classes as i64;
        let score_like = rank3.iter().filter(|o| o.shape[2] == c).count();
        let reg_like = rank3
            .iter()
            .filter(|o| o.shape[2] > 0 && o.shape[2] % 4 == 0 && o.shape[2] != c)
            .count();
        if score_like == outputs.len() / 2 && reg_like == outputs.len() / 2 {
            return Ok(OutputFormat::NanodetRaw);
        }
    }
    let unknown = || {
        format!(
            "unknown output layout: {} (set output.format in the manifest: boxes_scores, nanodet_raw, yolov8, yolov5, yolox, end_to_end, tf_od)",
            describe(outputs)
        )
    };
    let one = match (&spec.name, outputs) {
        (Some(n), _) => outputs.iter().find(|o| &o.name == n).ok_or_else(unknown)?,
        (None, [o]) => o,
        _ => return Err(unknown()),
    };
    let s = &one.shape;
    if s.len() != 3 {
        return Err(unknown());
    }
    let c = classes as i64;
    if s[2] == 6 && s[1] != 4 + c {
        return Ok(OutputFormat::EndToEnd);
    }
    if s[1] == 4 + c && s[2] != 5 + c {
        return Ok(OutputFormat::Yolov8);
    }
    if s[2] == 5 + c {
        return Err(format!(
            "output {} {:?} is [1, N, 5+C]: YOLOv5 and YOLOX look the same; set output.format = \"yolov5\" or \"yolox\" in the manifest",
            one.name, s
        ));
    }
    // Shapes of a known layout with another class count: say so.
    if s[1] > 4 && s[2] > s[1] {
        return Err(format!(
            "output {} {:?} looks like yolov8 [1, 4+C, N] with {} classes, but the manifest lists {classes} labels (the model has {} classes)",
            one.name,
            s,
            s[1] - 4,
            s[1] - 4
        ));
    }
    if s[2] > 5 && s[1] > s[2] {
        return Err(format!(
            "output {} {:?} looks like yolov5/yolox [1, N, 5+C], but the manifest lists {classes} labels (the model has {} classes)",
            one.name,
            s,
            s[2] - 5
        ));
    }
    Err(unknown())
}

fn gfl_levels(
    outputs: &[OutputInfo],
    classes: usize,
    reg_max: usize,
    strides: &[u32],
    input: (u32, u32),
) -> Result<Vec<GflLevel>, String> {
    let reg_dim = 4 * (reg_max as i64 + 1);
    let mut levels = Vec::new();
    for &stride in strides {
        if stride == 0 {
            return Err("output.strides must be > 0".into());
        }
        let (gw, gh) = (
            input.0.div_ceil(stride) as usize,
            input.1.div_ceil(stride) as usize,
        );
        let n = (gw * gh) as i64;
        let pick = |last: i64, what: &str| -> Result<String, String> {
            let mut it = outputs
                .iter()
                .filter(|o| o.shape.len() == 3 && o.shape[1] == n && o.shape[2] == last);
            match (it.next(), it.next()) {
                (Some(o), None) => Ok(o.name.clone()),
                (None, _) => Err(format!(
                    "nanodet_raw: no {what} output [1, {n}, {last}] for stride {stride} (outputs: {}); check labels (C = {classes}) and output.reg_max",
                    describe(outputs)
                )),
                (Some(_), Some(_)) => Err(format!(
                    "nanodet_raw: two {what} outputs [1, {n}, {last}] for stride {stride}"
                )),
            }
        };
        levels.push(GflLevel {
            stride,
            grid_w: gw,
            grid_h: gh,
            scores: pick(classes as i64, "class-score")?,
            regression: pick(reg_dim, "regression")?,
        });
    }
    Ok(levels)
}

/// Why a model cannot run several frames in one inference, or `None` if it can: its
/// image input and every output `plan` reads must have a dynamic first dimension, the
/// frame each slice belongs to. Every format qualifies when its model is exported that
/// way (TF OD's `num_detections` is then `[N]`, one count per frame).
pub fn batch_refusal(input: &OutputInfo, outputs: &[OutputInfo], plan: &Plan) -> Option<String> {
    match input.shape.first() {
        Some(&d) if d < 0 => {}
        _ => {
            return Some(format!(
                "its input {:?} has a fixed batch ({:?})",
                input.name, input.shape
            ));
        }
    }
    for name in plan.output_names() {
        let shape = outputs
            .iter()
            .find(|o| o.name == name)
            .map(|o| o.shape.as_slice())
            .unwrap_or(&[]);
        match shape.first() {
            Some(&d) if d < 0 => {}
            _ => {
                return Some(format!(
                    "its output {name:?} has no dynamic batch dimension ({shape:?})"
                ));
            }
        }
    }
    None
}
