//! What the pipeline's pictures show and hide: the evidence annotation of an
//! event (zone outline, subject, caption, camera and its address) and the privacy masks of the
//! last frame, from what the pipeline already knows (labels, zones, the last
//! detections, the time zone, `[privacy]`). Pure.

use std::time::Duration;

use super::{CameraPipeline, PipelineOptions};
use crate::event::{Event, EventObject, Masked};
use crate::evidence::{Annotation, Method, Policy, privacy};

/// What the pipeline keeps to describe its pictures (evidence, snapshots, replays).
pub(super) struct Looks {
    labels: Vec<String>,
    zones: Vec<(String, Vec<[f64; 2]>)>,
    tz: jiff::tz::TimeZone,
    privacy: Option<Policy>,
    /// The size of the last frame that reached the rules.
    pub(super) size: (u32, u32),
}

impl Looks {
    pub(super) fn new(opts: &PipelineOptions) -> Self {
        Self {
            labels: opts.labels.clone(),
            zones: opts
                .zones
                .iter()
                .map(|z| (z.id.clone(), z.polygon.clone()))
                .collect(),
            tz: opts.tz.clone(),
            privacy: opts.privacy.clone(),
            size: (0, 0),
        }
    }
}

impl CameraPipeline {
    /// The model's label of a class id.
    pub fn label(&self, class_id: usize) -> &str {
        self.looks
            .labels
            .get(class_id)
            .map(String::as_str)
            .unwrap_or("?")
    }

    /// The regions of the last frame that pictures of it mask, for an event with
    /// `objects` (none for a snapshot); empty when privacy is off.
    pub fn masks(&self, objects: &[EventObject]) -> Vec<Masked> {
        let Some(policy) = &self.looks.privacy else {
            return Vec::new();
        };
        let (w, h) = self.looks.size;
        let seen = self
            .detections
            .iter()
            .map(|d| (self.label(d.class_id), d.bbox.to_frac(w, h)));
        privacy::regions(policy, seen, objects)
    }

    /// How masks are drawn.
    pub fn mask_method(&self) -> Method {
        self.looks
            .privacy
            .as_ref()
            .map_or(Method::Pixelate, |p| p.method)
    }

    /// What the evidence picture of `event` (a `start` from the last frame) shows.
    pub fn annotation(&self, event: &Event) -> Annotation {
        let at = if self.timed {
            event
                .ts
                .parse::<jiff::Timestamp>()
                .map(|t| {
                    t.to_zoned(self.looks.tz.clone())
                        .strftime("%H:%M:%S")
                        .to_string()
                })
                .unwrap_or_default()
        } else {
            crate::evidence::clock(Duration::from_secs_f64(event.stream_time_s.max(0.0)))
        };
        let (subjects, others): (Vec<_>, Vec<_>) =
            event.objects.iter().partition(|o| o.role.is_none());
        Annotation {
            subjects: subjects
                .iter()
                .map(|o| (o.bbox, format!("{} {:.2}", o.class, o.score)))
                .collect(),
            others: others
                .iter()
                .map(|o| (o.bbox, o.role.clone().unwrap_or_default()))
                .collect(),
            zone: self
                .looks
                .zones
                .iter()
                .find(|(id, _)| *id == event.zone)
                .map(|(_, p)| p.clone())
                .unwrap_or_default(),
            caption: crate::evidence::caption(event, &at),
            camera: match &event.site.address {
                Some(address) => format!("{} · {address}", self.camera),
                None => self.camera.clone(),
            },
            masked: self.masks(&event.objects),
            kept: self
                .looks
                .privacy
                .as_ref()
                .map(|p| privacy::subjects(p, &event.objects))
                .unwrap_or_default(),
            method: self.mask_method(),
        }
    }
}

#[cfg(test)]
mod tests;
