//! What the inference thread runs ([`Infer`]): the model ([`Detector`]), or a
//! stand-in in tests.

use crate::detect::{DetectError, DetectOutput, Detector, RgbView};

/// Opens another of an [`Infer`] to run beside it, on another thread.
pub type Replicate = Box<dyn Fn() -> Result<Box<dyn Infer>, String> + Send + Sync>;

/// What the inference thread runs: the model, or a stand-in in tests.
pub trait Infer: Send + 'static {
    /// Detects objects in one image.
    fn detect(&mut self, img: RgbView<'_>) -> Result<DetectOutput, DetectError>;
    /// Detects objects in several images in one run (see [`Detector::detect_batch`]).
    fn detect_batch(&mut self, imgs: &[RgbView<'_>]) -> Result<Vec<DetectOutput>, DetectError>;
    /// Why several images cannot run at once; `None` if they can.
    fn batch_refusal(&self) -> Option<&str>;
    /// The model file, for messages.
    fn model_path(&self) -> &std::path::Path;
    /// The model's name, for messages.
    fn model_name(&self) -> &str;
    /// Class names, index = class id.
    fn labels(&self) -> &[String];
    /// The execution provider inference runs on (`cpu`, `cuda`, …), for the info message.
    fn execution_provider(&self) -> &str {
        "unknown"
    }
    /// How to open another of it that runs inferences beside it; `None`: one at a time.
    fn replica(&self) -> Option<Replicate> {
        None
    }
}

impl<T: Infer + ?Sized> Infer for Box<T> {
    fn detect(&mut self, img: RgbView<'_>) -> Result<DetectOutput, DetectError> {
        (**self).detect(img)
    }
    fn detect_batch(&mut self, imgs: &[RgbView<'_>]) -> Result<Vec<DetectOutput>, DetectError> {
        (**self).detect_batch(imgs)
    }
    fn batch_refusal(&self) -> Option<&str> {
        (**self).batch_refusal()
    }
    fn model_path(&self) -> &std::path::Path {
        (**self).model_path()
    }
    fn model_name(&self) -> &str {
        (**self).model_name()
    }
    fn labels(&self) -> &[String] {
        (**self).labels()
    }
    fn execution_provider(&self) -> &str {
        (**self).execution_provider()
    }
    fn replica(&self) -> Option<Replicate> {
        (**self).replica()
    }
}

impl Infer for Detector {
    fn detect(&mut self, img: RgbView<'_>) -> Result<DetectOutput, DetectError> {
        Detector::detect(self, img)
    }
    fn detect_batch(&mut self, imgs: &[RgbView<'_>]) -> Result<Vec<DetectOutput>, DetectError> {
        Detector::detect_batch(self, imgs)
    }
    fn batch_refusal(&self) -> Option<&str> {
        Detector::batch_refusal(self)
    }
    fn model_path(&self) -> &std::path::Path {
        Detector::model_path(self)
    }
    fn model_name(&self) -> &str {
        &self.manifest().name
    }
    fn labels(&self) -> &[String] {
        &self.manifest().labels
    }
    fn execution_provider(&self) -> &str {
        self.provider().as_str()
    }
    fn replica(&self) -> Option<Replicate> {
        let replica = Detector::replica(self);
        Some(Box::new(move || {
            replica
                .open()
                .map(|d| Box::new(d) as Box<dyn Infer>)
                .map_err(|e| e.to_string())
        }))
    }
}
