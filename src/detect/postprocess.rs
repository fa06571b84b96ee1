//! Model output → detections in source pixels: thresholding, scaling, class-aware NMS.

/// One detected object, in source-image pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub class_id: usize,
    pub score: f32,
    /// `[x0, y0, x1, y1]` in source pixels.
    pub bbox: [f32; 4],
}

impl Detection {
    pub fn area(&self) -> f32 {
        area(&self.bbox)
    }
}

/// Area of an `[x0, y0, x1, y1]` box (0 when empty or inverted).
pub fn area(b: &[f32; 4]) -> f32 {
    (b[2] - b[0]).max(0.0) * (b[3] - b[1]).max(0.0)
}

/// Area where two `[x0, y0, x1, y1]` boxes overlap.
pub fn intersection(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let iw = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let ih = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    iw * ih
}

/// Intersection over union of two `[x0, y0, x1, y1]` boxes.
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let inter = intersection(a, b);
    let union = area(a) + area(b) - inter;
    if union <= 0.0 { 0.0 } else { inter / union }
}

/// Where the source image sits in the model input: `input = source · scale + pad`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Geometry {
    pub scale: (f32, f32),
    pub pad: (f32, f32),
    pub source: (u32, u32),
}

impl Geometry {
    /// Maps boxes from input pixels back to source pixels, clipped to the source.
    pub fn to_source(&self, dets: &mut [Detection]) {
        let (w, h) = (self.source.0 as f32, self.source.1 as f32);
        for d in dets {
            let b = d.bbox;
            d.bbox = [
                ((b[0] - self.pad.0) / self.scale.0).clamp(0.0, w),
                ((b[1] - self.pad.1) / self.scale.1).clamp(0.0, h),
                ((b[2] - self.pad.0) / self.scale.0).clamp(0.0, w),
                ((b[3] - self.pad.1) / self.scale.1).clamp(0.0, h),
            ];
        }
    }
}

/// Greedy non-maximum suppression within each class. Returns detections sorted by score.
pub fn nms_per_class(mut dets: Vec<Detection>, iou_threshold: f32) -> Vec<Detection> {
    dets.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut keep: Vec<Detection> = Vec::with_capacity(dets.len().min(256));
    for d in dets {
        if keep
            .iter()
            .all(|k| k.class_id != d.class_id || iou(&k.bbox, &d.bbox) <= iou_threshold)
        {
            keep.push(d);
        }
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(class_id: usize, score: f32, bbox: [f32; 4]) -> Detection {
        Detection {
            class_id,
            score,
            bbox,
        }
    }

    #[test]
    fn iou_of_known_boxes() {
        assert_eq!(iou(&[0., 0., 2., 2.], &[1., 0., 3., 2.]), 2.0 / 6.0);
        assert_eq!(iou(&[0., 0., 1., 1.], &[2., 2., 3., 3.]), 0.0);
        assert_eq!(iou(&[0., 0., 1., 1.], &[0., 0., 1., 1.]), 1.0);
    }

    #[test]
    fn nms_suppresses_within_class_only() {
        let out = nms_per_class(
            vec![
                det(0, 0.6, [0., 0., 10., 10.]),
                det(0, 0.9, [1., 1., 11., 11.]),
                det(1, 0.5, [0., 0., 10., 10.]),
                det(0, 0.4, [50., 50., 60., 60.]),
            ],
            0.5,
        );
        let got: Vec<(usize, f32)> = out.iter().map(|d| (d.class_id, d.score)).collect();
        assert_eq!(got, vec![(0, 0.9), (1, 0.5), (0, 0.4)]);
    }

    #[test]
    fn geometry_maps_back_and_clips() {
        let mut dets = vec![
            det(1, 0.8, [20., 10., 60., 20.]),
            det(0, 0.5, [-5., 0., 900., 100.]),
        ];
        // Letterbox of 800×600 into 400×400: scale 0.5, 50 px bands above and below.
        let g = Geometry {
            scale: (0.5, 0.5),
            pad: (0.0, 50.0),
            source: (800, 600),
        };
        g.to_source(&mut dets);
        assert_eq!(dets[0].bbox, [40., 0., 120., 0.]);
        assert_eq!(dets[1].bbox, [0., 0., 800., 100.]);
    }
}
