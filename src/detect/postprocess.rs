//! Model output → detections in source pixels: thresholding, scaling, class-aware NMS.

pub use crate::geom::{Detection, PxBox};

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
            d.bbox = PxBox([
                ((b[0] - self.pad.0) / self.scale.0).clamp(0.0, w),
                ((b[1] - self.pad.1) / self.scale.1).clamp(0.0, h),
                ((b[2] - self.pad.0) / self.scale.0).clamp(0.0, w),
                ((b[3] - self.pad.1) / self.scale.1).clamp(0.0, h),
            ]);
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
            .all(|k| k.class_id != d.class_id || k.bbox.iou(&d.bbox) <= iou_threshold)
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
            bbox: PxBox(bbox),
        }
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
        assert_eq!(dets[0].bbox, PxBox([40., 0., 120., 0.]));
        assert_eq!(dets[1].bbox, PxBox([0., 0., 800., 100.]));
    }
}
