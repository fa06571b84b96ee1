//! Model outputs → candidate boxes in input pixels, for every supported layout.
//!
//! In: the model's output tensors (flat `f32` slices with their shapes) and a
//! [`Plan`] made once when the model is opened ([`Plan::resolve`]): which
//! outputs to read and how. Out: [`Detection`]s with `[x0, y0, x1, y1]` in
//! model-input pixels, before NMS; [`super::postprocess`] maps them back to the
//! source. Pure functions: the benches and unit tests drive them directly.

use super::manifest::{OutputFormat, OutputSpec};
use super::postprocess::{Detection, PxBox};

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

/// One output tensor: flat data and its shape.
#[derive(Debug, Clone, Copy)]
pub struct Tensor<'a> {
    pub shape: &'a [i64],
    pub data: &'a [f32],
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

/// Where each frame of a batch of `n` lies in `tensors`: per tensor, one frame's shape
/// (`[1, …]`) and its number of values (frame `k` is `data[k·len .. (k+1)·len]`).
/// An output whose first dimension is not `n` is an error: it is not split by frame.
pub fn split_batch(tensors: &[Tensor<'_>], n: usize) -> Result<Vec<(Vec<i64>, usize)>, String> {
    tensors
        .iter()
        .map(|t| {
            if n == 0 || t.shape.first() != Some(&(n as i64)) || !t.data.len().is_multiple_of(n) {
                return Err(format!(
                    "an output of shape {:?} does not start with the batch of {n} frames",
                    t.shape
                ));
            }
            let mut shape = t.shape.to_vec();
            shape[0] = 1;
            Ok((shape, t.data.len() / n))
        })
        .collect()
}

/// Frame `k` of a batch, as [`split_batch`] laid it out in `parts`.
pub fn frame_of_batch<'a>(
    tensors: &[Tensor<'a>],
    parts: &'a [(Vec<i64>, usize)],
    k: usize,
) -> Vec<Tensor<'a>> {
    tensors
        .iter()
        .zip(parts)
        .map(|(t, (shape, len))| Tensor {
            shape,
            data: &t.data[k * len..(k + 1) * len],
        })
        .collect()
}

/// Decodes `tensors` (in [`Plan::output_names`] order) into candidates in input pixels.
/// `thresholds[c]` is class `c`'s minimum score.
pub fn decode(
    plan: &Plan,
    tensors: &[Tensor<'_>],
    thresholds: &[f32],
    input: (u32, u32),
) -> Result<Vec<Detection>, String> {
    let classes = thresholds.len();
    let floor = thresholds.iter().copied().fold(f32::INFINITY, f32::min);
    let mut out = Vec::new();
    match plan {
        Plan::BoxesScores { .. } => {
            let (boxes, scores) = (tensors[0].data, tensors[1].data);
            if !scores.len().is_multiple_of(classes) || boxes.len() / 4 != scores.len() / classes {
                return Err(format!(
                    "output shapes do not match: boxes {:?}, scores {:?}",
                    tensors[0].shape, tensors[1].shape
                ));
            }
            for (anchor, row) in scores.chunks_exact(classes).enumerate() {
                let b = &boxes[anchor * 4..anchor * 4 + 4];
                push_classes(
                    &mut out,
                    row,
                    thresholds,
                    floor,
                    1.0,
                    PxBox([b[0], b[1], b[2], b[3]]),
                );
            }
        }
        Plan::NanodetRaw { levels, reg_max } => {
            let bins = reg_max + 1;
            let mut prob = vec![0f32; bins];
            for (l, level) in levels.iter().enumerate() {
                let (scores, reg) = (tensors[2 * l].data, tensors[2 * l + 1].data);
                let n = level.grid_w * level.grid_h;
                if scores.len() != n * classes || reg.len() != n * 4 * bins {
                    return Err(format!(
                        "stride {} outputs have {} and {} values, expected {} and {}",
                        level.stride,
                        scores.len(),
                        reg.len(),
                        n * classes,
                        n * 4 * bins
                    ));
                }
                let s = level.stride as f32;
                for (i, row) in scores.chunks_exact(classes).enumerate() {
                    if !row.iter().any(|&v| v >= floor) {
                        continue;
                    }
                    let (cx, cy) = (
                        ((i % level.grid_w) as f32 + 0.5) * s,
                        ((i / level.grid_w) as f32 + 0.5) * s,
                    );
                    let mut dist = [0f32; 4];
                    for (side, d) in dist.iter_mut().enumerate() {
                        let logits = &reg[(i * 4 + side) * bins..(i * 4 + side + 1) * bins];
                        *d = distribution_mean(logits, &mut prob) * s;
                    }
                    let b = PxBox([cx - dist[0], cy - dist[1], cx + dist[2], cy + dist[3]]);
                    push_classes(&mut out, row, thresholds, floor, 1.0, b);
                }
            }
        }
        Plan::Yolov8 { .. } => {
            let t = tensors[0];
            let rows = 4 + classes;
            if !t.data.len().is_multiple_of(rows) {
                return Err(format!("yolov8 output {:?} is not [1, {rows}, N]", t.shape));
            }
            let n = t.data.len() / rows;
            let d = t.data;
            let mut row = vec![0f32; classes];
            for a in 0..n {
                let mut any = false;
                for (c, v) in row.iter_mut().enumerate() {
                    *v = d[(4 + c) * n + a];
                    any |= *v >= floor;
                }
                if any {
                    let b = cxcywh(d[a], d[n + a], d[2 * n + a], d[3 * n + a]);
                    push_classes(&mut out, &row, thresholds, floor, 1.0, b);
                }
            }
        }
        Plan::Yolov5 { .. } | Plan::Yolox { .. } => {
            let t = tensors[0];
            let cols = 5 + classes;
            if !t.data.len().is_multiple_of(cols) {
                return Err(format!("output {:?} is not [1, N, {cols}]", t.shape));
            }
            let grid = match plan {
                Plan::Yolox { strides, .. } => Some(yolox_grid(strides, input)),
                _ => None,
            };
            if let Some(g) = &grid
                && g.len() != t.data.len() / cols
            {
                return Err(format!(
                    "yolox output {:?} has {} rows, the grid {}",
                    t.shape,
                    t.data.len() / cols,
                    g.len()
                ));
            }
            for (a, r) in t.data.chunks_exact(cols).enumerate() {
                let obj = r[4];
                if obj < floor {
                    continue;
                }
                let b = match &grid {
                    None => cxcywh(r[0], r[1], r[2], r[3]),
                    Some(g) => {
                        let (gx, gy, s) = g[a];
                        cxcywh(
                            (r[0] + gx) * s,
                            (r[1] + gy) * s,
                            r[2].exp() * s,
                            r[3].exp() * s,
                        )
                    }
                };
                push_classes(&mut out, &r[5..], thresholds, floor, obj, b);
            }
        }
        Plan::EndToEnd { class_offset, .. } => {
            for r in tensors[0].data.chunks_exact(6) {
                let class = r[5] as i64 - class_offset;
                if class < 0 || class as usize >= classes {
                    return Err(format!(
                        "end_to_end: class id {} is outside the {classes} labels",
                        r[5]
                    ));
                }
                let class = class as usize;
                if r[4] >= thresholds[class] {
                    out.push(Detection {
                        class_id: class,
                        score: r[4],
                        bbox: PxBox([r[0], r[1], r[2], r[3]]),
                    });
                }
            }
        }
        Plan::TfOd { class_offset, .. } => {
            let (boxes, scores, ids) = (tensors[0].data, tensors[1].data, tensors[2].data);
            let mut k = scores.len().min(ids.len()).min(boxes.len() / 4);
            if let Some(count) = tensors.get(3).and_then(|t| t.data.first()) {
                k = k.min(*count as usize);
            }
            let (w, h) = (input.0 as f32, input.1 as f32);
            for i in 0..k {
                let class = ids[i] as i64 - class_offset;
                if class < 0 || class as usize >= classes {
                    return Err(format!(
                        "tf_od: class id {} is outside the {classes} labels (output.class_offset = {class_offset})",
                        ids[i]
                    ));
                }
                let class = class as usize;
                if scores[i] >= thresholds[class] {
                    let b = &boxes[i * 4..i * 4 + 4];
                    out.push(Detection {
                        class_id: class,
                        score: scores[i],
                        bbox: PxBox([b[1] * w, b[0] * h, b[3] * w, b[2] * h]),
                    });
                }
            }
        }
    }
    Ok(out)
}

fn cxcywh(cx: f32, cy: f32, w: f32, h: f32) -> PxBox {
    PxBox([cx - w / 2.0, cy - h / 2.0, cx + w / 2.0, cy + h / 2.0])
}

/// Every class of `row` (times `obj`) at or above its threshold becomes a candidate.
fn push_classes(
    out: &mut Vec<Detection>,
    row: &[f32],
    thresholds: &[f32],
    floor: f32,
    obj: f32,
    bbox: PxBox,
) {
    for (class_id, (&v, &t)) in row.iter().zip(thresholds).enumerate() {
        if v < floor {
            continue;
        }
        let score = v * obj;
        if score >= t {
            out.push(Detection {
                class_id,
                score,
                bbox,
            });
        }
    }
}

/// Softmax over the bins, then the expected bin index.
fn distribution_mean(logits: &[f32], prob: &mut [f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for (p, &l) in prob.iter_mut().zip(logits) {
        *p = (l - max).exp();
        sum += *p;
    }
    prob.iter()
        .enumerate()
        .map(|(i, p)| i as f32 * p)
        .sum::<f32>()
        / sum
}

/// (grid x, grid y, stride) of each YOLOX anchor: strides in order, each grid row-major.
fn yolox_grid(strides: &[u32], input: (u32, u32)) -> Vec<(f32, f32, f32)> {
    let mut g = Vec::new();
    for &s in strides {
        let (gw, gh) = (input.0 / s, input.1 / s);
        for y in 0..gh {
            for x in 0..gw {
                g.push((x as f32, y as f32, s as f32));
            }
        }
    }
    g
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
