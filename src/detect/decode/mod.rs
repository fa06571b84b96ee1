//! Model outputs → candidate boxes in input pixels, for every supported layout.
//!
//! In: the model's output tensors (flat `f32` slices with their shapes) and a
//! [`Plan`] made once when the model is opened ([`Plan::resolve`]): which
//! outputs to read and how. Out: [`Detection`]s with `[x0, y0, x1, y1]` in
//! model-input pixels, before NMS; [`super::postprocess`] maps them back to the
//! source. Pure functions: the benches and unit tests drive them directly.
//!
//! [`plan`] decides what to read; this module reads it.

mod plan;

pub use plan::{GflLevel, OutputInfo, Plan, batch_refusal};

use super::postprocess::{Detection, PxBox};

/// One output tensor: flat data and its shape.
#[derive(Debug, Clone, Copy)]
pub struct Tensor<'a> {
    pub shape: &'a [i64],
    pub data: &'a [f32],
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
///
/// Whatever the tensors hold, the result is candidates with finite boxes (corners in
/// order) and scores in `0..=1`, or an error saying what does not fit: a candidate
/// with a NaN or infinite box or score is dropped.
pub fn decode(
    plan: &Plan,
    tensors: &[Tensor<'_>],
    thresholds: &[f32],
    input: (u32, u32),
) -> Result<Vec<Detection>, String> {
    let wanted = plan.output_names().len();
    if tensors.len() < wanted {
        return Err(format!(
            "the model gave {} outputs, {wanted} are needed",
            tensors.len()
        ));
    }
    if thresholds.is_empty() {
        return Err("no classes to score".into());
    }
    let mut out = decode_raw(plan, tensors, thresholds, input)?;
    out.retain(|d| d.score.is_finite() && d.bbox.0.iter().all(|v| v.is_finite()));
    for d in &mut out {
        let [x0, y0, x1, y1] = d.bbox.0;
        d.bbox = PxBox([x0.min(x1), y0.min(y1), x0.max(x1), y0.max(y1)]);
        d.score = d.score.clamp(0.0, 1.0);
    }
    Ok(out)
}

/// The model's class id `raw` (a float in the tensor) minus `offset`, as a label index.
fn class_index(raw: f32, offset: i64, classes: usize, what: &str) -> Result<usize, String> {
    let class = raw
        .is_finite()
        .then(|| (raw as i64).checked_sub(offset))
        .flatten()
        .and_then(|c| usize::try_from(c).ok())
        .filter(|&c| c < classes);
    class.ok_or_else(|| {
        format!(
            "{what}: class id {raw} is outside the {classes} labels (output.class_offset = {offset})"
        )
    })
}

fn decode_raw(
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
                Plan::Yolox { strides, .. } if strides.contains(&0) => {
                    return Err(format!("yolox strides {strides:?} hold a zero"));
                }
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
                let class = class_index(r[5], *class_offset, classes, "end_to_end")?;
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
            if let Some(&count) = tensors.get(3).and_then(|t| t.data.first()) {
                // A NaN or negative count is no detection (`as` saturates).
                k = k.min(count as usize);
            }
            let (w, h) = (input.0 as f32, input.1 as f32);
            for i in 0..k {
                let class = class_index(ids[i], *class_offset, classes, "tf_od")?;
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
mod tests;
