//! `[privacy]`: what is masked in every picture that leaves the box (evidence,
//! snapshots, previews, annotated replays).

use serde::Deserialize;

/// `[privacy]`. On by default: the heads of people and, where the model has the
/// class, licence plates are masked; the subject of an incident never is.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyConfig {
    #[serde(default = "super::default_true")]
    pub enabled: bool,
    /// `pixelate` (coarse blocks) or `blur` (a strong Gaussian blur).
    #[serde(default)]
    pub method: PrivacyMethod,
    /// Classes whose heads are masked: the top `head_fraction` of each box.
    #[serde(default = "default_head_classes")]
    pub head_classes: Vec<String>,
    /// The top part of a person's box that is masked, 0..1 of its height.
    #[serde(default = "default_head_fraction")]
    pub head_fraction: f64,
    /// Classes masked whole (licence plates). Classes the model does not have are
    /// ignored: the default model (COCO) has none.
    #[serde(default = "default_plate_classes")]
    pub plate_classes: Vec<String>,
    /// Whether a litter `thrower` is masked like everyone else. Only a city that has
    /// decided to identify throwers sets this to `false`.
    #[serde(default = "super::default_true")]
    pub mask_thrower: bool,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            method: PrivacyMethod::default(),
            head_classes: default_head_classes(),
            head_fraction: default_head_fraction(),
            plate_classes: default_plate_classes(),
            mask_thrower: true,
        }
    }
}

/// How a region is masked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PrivacyMethod {
    #[default]
    Pixelate,
    Blur,
}

fn default_head_classes() -> Vec<String> {
    vec!["person".into()]
}
fn default_head_fraction() -> f64 {
    0.25
}
fn default_plate_classes() -> Vec<String> {
    vec!["license_plate".into(), "licence_plate".into()]
}

impl PrivacyConfig {
    /// The key and the problem, if a value is out of range.
    pub(super) fn check(&self) -> Result<(), (&'static str, &'static str)> {
        if !(self.head_fraction.is_finite()
            && self.head_fraction > 0.0
            && self.head_fraction <= 1.0)
        {
            return Err(("privacy.head_fraction", "must be in (0, 1]"));
        }
        if self.head_classes.iter().any(|c| c.trim().is_empty()) {
            return Err(("privacy.head_classes", "class names must not be blank"));
        }
        if self.plate_classes.iter().any(|c| c.trim().is_empty()) {
            return Err(("privacy.plate_classes", "class names must not be blank"));
        }
        Ok(())
    }
}
