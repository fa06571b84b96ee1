//! Object detection with ONNX Runtime.
//!
//! In: RGB frames. Out: [`Detection`]s in source pixels.
//!
//! ONNX Runtime is loaded at run time (`dlopen`) so a box can use a vendor
//! build; [`load_runtime`] checks it is there and new enough before anything
//! else touches it. [`Detector`] owns one session and its scratch buffers;
//! [`DetectorService`] runs one detector on its own thread for all cameras,
//! batching frames of different cameras when the model allows it, and opens a
//! [`Replica`] (a second session sharing the prepacked weights) to run beside it
//! when frames wait.
//!
//! | module | owns |
//! |---|---|
//! | [`manifest`] | model descriptions (TOML or Ultralytics metadata) |
//! | [`preprocess`] | frame → input tensor (stretch/letterbox, colour, normalisation, layout) |
//! | [`decode`] | every supported output layout → candidates in input pixels |
//! | [`postprocess`] | class-aware NMS, mapping back to source pixels |
//! | [`providers`] | execution providers, tried in the configured order |
//! | [`runtime`] | which ONNX Runtime library, its version, loading it once |
//! | [`probe`] | the `probe-model` report |
//! | [`service`] | the detector thread shared by every camera: queues, fairness, batching |

pub mod decode;
pub mod manifest;
pub mod postprocess;
pub mod preprocess;
pub mod probe;
pub mod providers;
pub mod runtime;
pub mod service;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ort::session::Session;
use ort::session::builder::PrepackedWeights;
use ort::value::TensorRef;

pub use manifest::Manifest;
pub use postprocess::Detection;
pub use preprocess::RgbView;

use decode::{OutputInfo, Plan, Tensor};
use manifest::Layout;
use preprocess::Preprocessor;
pub use providers::Provider;
use providers::ProviderExt;
pub use runtime::{load_runtime, runtime_path, runtime_version};
pub use service::{DetectorService, Infer, ServiceCounts, ServiceError, ServiceOptions};

/// The ONNX Runtime version this build is made for.
pub const ORT_VERSION: &str = "1.31.1";
/// Oldest minor version of ONNX Runtime 1.x that the `ort` crate can drive.
pub const ORT_MIN_MINOR: u32 = ort::MINOR_VERSION;

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(
        "ONNX Runtime library not found at {path} (streetwatch needs ONNX Runtime 1.{ORT_MIN_MINOR}.x, e.g. {ORT_VERSION}; install the streetwatch package or run `make setup`, or set [detector] ort_library or ORT_DYLIB_PATH)"
    )]
    RuntimeMissing { path: PathBuf },
    #[error(
        "ONNX Runtime library {path} is version {found}; streetwatch needs 1.{ORT_MIN_MINOR}.x or newer (e.g. {ORT_VERSION} from the PyPI onnxruntime wheel)"
    )]
    RuntimeVersion { path: PathBuf, found: String },
    #[error("cannot load ONNX Runtime library {path}: {message}")]
    RuntimeLoad { path: PathBuf, message: String },
    #[error(
        "model file {path} not found (install the streetwatch package or run `make setup` for the default model, or set [model] path or STREETWATCH_MODEL)"
    )]
    ModelMissing { path: PathBuf },
    #[error("model manifest {path}: {message}")]
    Manifest { path: PathBuf, message: String },
    #[error("model {path}: {message}")]
    Model { path: PathBuf, message: String },
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("cannot read image {path}: {message}")]
    Image { path: PathBuf, message: String },
}

/// How to open a detector.
#[derive(Debug, Clone)]
pub struct DetectorOptions {
    pub model: PathBuf,
    pub manifest: Option<PathBuf>,
    pub ort_library: Option<PathBuf>,
    pub intra_threads: usize,
    pub min_score: Option<f32>,
    pub nms_iou: Option<f32>,
    /// Execution providers to try, in order.
    pub providers: Vec<Provider>,
}

impl DetectorOptions {
    /// `model` with its own manifest and defaults, on the CPU.
    pub fn for_model(model: impl Into<PathBuf>) -> Self {
        Self {
            model: model.into(),
            manifest: None,
            ort_library: None,
            intra_threads: 0,
            min_score: None,
            nms_iou: None,
            providers: providers::default_providers(),
        }
    }
}

/// What one inference produced.
#[derive(Debug, Clone)]
pub struct DetectOutput {
    pub detections: Vec<Detection>,
    /// Time spent in preprocessing + inference + decoding.
    pub elapsed: Duration,
}

/// One ONNX Runtime session with the buffers it reuses between frames.
pub struct Detector {
    session: Session,
    manifest: Manifest,
    model_path: PathBuf,
    /// The model input fed with the frame.
    input_name: String,
    /// How the outputs are read.
    plan: Plan,
    /// Minimum score per class id.
    thresholds: Vec<f32>,
    preprocessor: Preprocessor,
    input: Vec<f32>,
    nms_iou: f32,
    /// The execution provider the session runs on.
    provider: Provider,
    /// Where the manifest came from (a file, built in, model metadata).
    manifest_source: String,
    /// Why the model cannot run several frames at once; `None` if it can.
    batch_refusal: Option<String>,
    /// How it was opened, on the provider chosen: what a [`Replica`] opens again.
    options: DetectorOptions,
    /// The weights as the provider's kernels laid them out, kept once for this
    /// session and every replica of it.
    prepacked: PrepackedWeights,
}

/// How to open one more [`Detector`] like another, to run beside it: the same model,
/// manifest, thresholds and provider, its session sharing the prepacked weights.
#[derive(Clone)]
pub struct Replica {
    options: DetectorOptions,
    prepacked: PrepackedWeights,
}

impl Replica {
    /// Opens the detector (as long as [`Detector::open`] takes, on the caller's thread).
    pub fn open(&self) -> Result<Detector, DetectError> {
        Detector::open_sharing(&self.options, Some(self.prepacked.clone()))
    }
}

/// A model's inputs and outputs as ONNX Runtime reports them.
#[derive(Debug, Clone)]
pub struct ModelIo {
    pub inputs: Vec<OutputInfo>,
    pub outputs: Vec<OutputInfo>,
}

fn io_of(list: &[ort::value::Outlet]) -> Vec<OutputInfo> {
    list.iter()
        .map(|o| OutputInfo {
            name: o.name().to_owned(),
            shape: o
                .dtype()
                .tensor_shape()
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default(),
        })
        .collect()
}

impl Detector {
    /// Loads the runtime, the manifest and the model, and checks they fit together.
    pub fn open(opts: &DetectorOptions) -> Result<Detector, DetectError> {
        Self::open_sharing(opts, None)
    }

    /// How to open another detector like this one, to run inferences beside it.
    pub fn replica(&self) -> Replica {
        Replica {
            options: self.options.clone(),
            prepacked: self.prepacked.clone(),
        }
    }

    /// Opens a detector whose session keeps its prepacked weights in `prepacked` (a new
    /// container when `None`, made once the runtime is loaded).
    fn open_sharing(
        opts: &DetectorOptions,
        prepacked: Option<PrepackedWeights>,
    ) -> Result<Detector, DetectError> {
        if !opts.model.exists() {
            return Err(DetectError::ModelMissing {
                path: opts.model.clone(),
            });
        }
        let located = Manifest::locate(&opts.model, opts.manifest.as_deref())?;
        let env = load_runtime(&runtime_path(opts.ort_library.as_deref()))?;
        let model_err = |message: String| DetectError::Model {
            path: opts.model.clone(),
            message,
        };
        let prepacked = prepacked.unwrap_or_else(PrepackedWeights::new);
        let (session, provider) = open_session(env, opts, &prepacked)?;
        let manifest_source = match (&located, &opts.manifest) {
            (None, _) => "Ultralytics metadata in the model".to_string(),
            (Some(_), Some(p)) => p.display().to_string(),
            (Some(_), None) if opts.model.with_extension("toml").exists() => {
                opts.model.with_extension("toml").display().to_string()
            }
            (Some(_), None) => "built in".to_string(),
        };
        let manifest = match located {
            Some(m) => m,
            None => {
                let meta = session
                    .metadata()
                    .map_err(|e| model_err(format!("cannot read its metadata: {e}")))?;
                let stem = opts
                    .model
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("model");
                Manifest::from_ultralytics(stem, |k| meta.custom(k))
                    .map_err(model_err)?
                    .ok_or_else(|| {
                        model_err(format!(
                            "no manifest ({} or [model] manifest) and no Ultralytics metadata in the model; write a manifest (see models/nanodet-m-416.toml)",
                            opts.model.with_extension("toml").display()
                        ))
                    })?
            }
        };
        let io = ModelIo {
            inputs: io_of(session.inputs()),
            outputs: io_of(session.outputs()),
        };
        let input_name = match (&manifest.input.name, io.inputs.as_slice()) {
            (Some(n), _) => n.clone(),
            (None, [only]) => only.name.clone(),
            (None, _) => {
                return Err(model_err(format!(
                    "the model has {} inputs {:?}; name the image one in the manifest (input.name)",
                    io.inputs.len(),
                    io.inputs.iter().map(|i| &i.name).collect::<Vec<_>>()
                )));
            }
        };
        let input = io
            .inputs
            .iter()
            .find(|i| i.name == input_name)
            .ok_or_else(|| {
                model_err(format!(
                    "manifest input {input_name:?} is not an input of the model (inputs: {:?})",
                    io.inputs.iter().map(|i| &i.name).collect::<Vec<_>>()
                ))
            })?;
        let shape = &input.shape;
        let (w, h) = (manifest.input.width as i64, manifest.input.height as i64);
        let expected = match manifest.input.layout {
            Layout::Nchw => [1, 3, h, w],
            Layout::Nhwc => [1, h, w, 3],
        };
        if shape.len() != 4 {
            return Err(model_err(format!(
                "input {input_name:?} has rank {} (shape {shape:?}); an image detector takes a rank-4 tensor {expected:?}",
                shape.len()
            )));
        }
        let fits = shape
            .iter()
            .zip(expected)
            .all(|(&got, want)| got == want || got < 0);
        if !fits {
            return Err(model_err(format!(
                "input {input_name:?} has shape {shape:?}; the manifest describes {expected:?} ({:?})",
                manifest.input.layout
            )));
        }
        let plan = Plan::resolve(
            &manifest.output,
            &io.outputs,
            manifest.labels.len(),
            (manifest.input.width, manifest.input.height),
        )
        .map_err(model_err)?;
        let batch_refusal = decode::batch_refusal(input, &io.outputs, &plan);
        let min_score = opts.min_score.unwrap_or(manifest.detection.min_score);
        Ok(Detector {
            batch_refusal,
            preprocessor: Preprocessor::new(&manifest.input),
            thresholds: manifest.thresholds(min_score),
            nms_iou: opts.nms_iou.unwrap_or(manifest.detection.nms_iou),
            input: Vec::new(),
            input_name,
            plan,
            session,
            manifest,
            model_path: opts.model.clone(),
            provider,
            manifest_source,
            options: DetectorOptions {
                providers: vec![provider],
                ..opts.clone()
            },
            prepacked,
        })
    }

    /// The execution provider the model runs on.
    pub fn provider(&self) -> Provider {
        self.provider
    }

    /// Where the manifest came from.
    pub fn manifest_source(&self) -> &str {
        &self.manifest_source
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn model_path(&self) -> &Path {
        &self.model_path
    }

    /// How the outputs are decoded.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Why the model cannot run several frames in one inference ([`Detector::detect_batch`]);
    /// `None` when its input and the outputs read have a dynamic batch dimension.
    pub fn batch_refusal(&self) -> Option<&str> {
        self.batch_refusal.as_deref()
    }

    /// The model's inputs and outputs.
    pub fn io(&self) -> ModelIo {
        ModelIo {
            inputs: io_of(self.session.inputs()),
            outputs: io_of(self.session.outputs()),
        }
    }

    pub fn label(&self, class_id: usize) -> &str {
        self.manifest
            .labels
            .get(class_id)
            .map(String::as_str)
            .unwrap_or("?")
    }

    /// Preprocesses `img` and runs the model; returns where the frame landed and a copy
    /// of every output [`Plan::output_names`] reads (shape, values), in that order.
    /// For benches and diagnostics; [`Detector::detect`] does not copy.
    #[allow(clippy::type_complexity)]
    pub fn raw_outputs(
        &mut self,
        img: RgbView<'_>,
    ) -> Result<(postprocess::Geometry, Vec<(Vec<i64>, Vec<f32>)>), DetectError> {
        let (geometry, outputs) = run_model(
            &mut self.session,
            &mut self.preprocessor,
            &mut self.input,
            &self.manifest.input,
            &self.input_name,
            &[img],
        )?;
        let geometry = geometry[0];
        let copies = extract(&outputs, &self.plan)?
            .iter()
            .map(|t| (t.shape.to_vec(), t.data.to_vec()))
            .collect();
        Ok((geometry, copies))
    }

    /// Minimum score per class id.
    pub fn thresholds(&self) -> &[f32] {
        &self.thresholds
    }

    /// IoU above which two boxes of one class are one object.
    pub fn nms_iou(&self) -> f32 {
        self.nms_iou
    }

    /// Runs the model on one image.
    pub fn detect(&mut self, img: RgbView<'_>) -> Result<DetectOutput, DetectError> {
        let mut out = self.run_frames(&[img])?;
        Ok(out.remove(0))
    }

    /// Runs the model once on all `imgs` stacked into one batch; one output per image, in
    /// order, each what [`Detector::detect`] finds in it. Each output's `elapsed` is its
    /// share of the batch (the batch's time divided by its size). Needs a model with a
    /// dynamic batch dimension ([`Detector::batch_refusal`]); a single image runs as
    /// [`Detector::detect`] on any model.
    pub fn detect_batch(&mut self, imgs: &[RgbView<'_>]) -> Result<Vec<DetectOutput>, DetectError> {
        if imgs.len() > 1
            && let Some(why) = &self.batch_refusal
        {
            return Err(DetectError::Model {
                path: self.model_path.clone(),
                message: format!("cannot run {} frames in one inference: {why}", imgs.len()),
            });
        }
        if imgs.is_empty() {
            return Ok(Vec::new());
        }
        self.run_frames(imgs)
    }

    /// Preprocesses, infers once, and decodes each frame's slice of the outputs.
    fn run_frames(&mut self, imgs: &[RgbView<'_>]) -> Result<Vec<DetectOutput>, DetectError> {
        let start = Instant::now();
        let n = imgs.len();
        let (geometry, outputs) = run_model(
            &mut self.session,
            &mut self.preprocessor,
            &mut self.input,
            &self.manifest.input,
            &self.input_name,
            imgs,
        )?;
        let tensors = extract(&outputs, &self.plan)?;
        let spec = &self.manifest.input;
        let parts = if n == 1 {
            // A fixed-batch model may shape its outputs any way; one frame is all of them.
            tensors
                .iter()
                .map(|t| (t.shape.to_vec(), t.data.len()))
                .collect()
        } else {
            decode::split_batch(&tensors, n).map_err(DetectError::Inference)?
        };
        let mut found = Vec::with_capacity(n);
        for (i, geometry) in geometry.iter().enumerate() {
            let candidates = decode::decode(
                &self.plan,
                &decode::frame_of_batch(&tensors, &parts, i),
                &self.thresholds,
                (spec.width, spec.height),
            )
            .map_err(DetectError::Inference)?;
            let mut detections = postprocess::nms_per_class(candidates, self.nms_iou);
            geometry.to_source(&mut detections);
            found.push(detections);
        }
        let elapsed = start.elapsed() / n as u32;
        Ok(found
            .into_iter()
            .map(|detections| DetectOutput {
                detections,
                elapsed,
            })
            .collect())
    }
}

/// Preprocesses `imgs` into `input` (one after the other: a batch) and runs the
/// session on it once. Returns where each frame landed in its input.
fn run_model<'s>(
    session: &'s mut Session,
    preprocessor: &mut Preprocessor,
    input: &mut Vec<f32>,
    spec: &manifest::InputSpec,
    input_name: &str,
    imgs: &[RgbView<'_>],
) -> Result<(Vec<postprocess::Geometry>, ort::session::SessionOutputs<'s>), DetectError> {
    let per_frame = preprocessor.input_len();
    // Every value is written below; only the length has to be right.
    input.resize(per_frame * imgs.len(), 0.0);
    let geometry = imgs
        .iter()
        .zip(input.chunks_exact_mut(per_frame))
        .map(|(img, slot)| preprocessor.run_into(*img, slot))
        .collect::<Result<Vec<_>, _>>()
        .map_err(DetectError::Inference)?;
    let (w, h, n) = (spec.width as usize, spec.height as usize, imgs.len());
    let shape = match spec.layout {
        Layout::Nchw => [n, 3, h, w],
        Layout::Nhwc => [n, h, w, 3],
    };
    let tensor = TensorRef::from_array_view((shape, input.as_slice()))
        .map_err(|e| DetectError::Inference(e.to_string()))?;
    let outputs = session
        .run(ort::inputs![input_name => tensor])
        .map_err(|e| DetectError::Inference(e.to_string()))?;
    Ok((geometry, outputs))
}

/// The outputs `plan` reads, in its order, borrowed from `outputs`.
fn extract<'a>(
    outputs: &'a ort::session::SessionOutputs<'_>,
    plan: &Plan,
) -> Result<Vec<Tensor<'a>>, DetectError> {
    plan.output_names()
        .into_iter()
        .map(|name| {
            let (shape, data) = outputs[name]
                .try_extract_tensor::<f32>()
                .map_err(|e| DetectError::Inference(format!("output {name:?}: {e}")))?;
            Ok(Tensor {
                shape: &shape[..],
                data,
            })
        })
        .collect()
}

/// Opens the model on the first of `opts.providers` that can run it; logs why the
/// others could not.
fn open_session(
    env: &ort::environment::Environment,
    opts: &DetectorOptions,
    prepacked: &PrepackedWeights,
) -> Result<(Session, Provider), DetectError> {
    let model_err = |message: String| DetectError::Model {
        path: opts.model.clone(),
        message,
    };
    let mut failures = Vec::new();
    for &provider in &opts.providers {
        let attempt = || -> Result<Session, String> {
            let mut builder = Session::builder(env).map_err(|e| e.to_string())?;
            if opts.intra_threads > 0 {
                builder = builder
                    .with_intra_threads(opts.intra_threads)
                    .map_err(|e| e.to_string())?;
            }
            builder = tune(builder)?
                .with_prepacked_weights(prepacked)
                .map_err(|e| e.to_string())?;
            if let Some(ep) = provider.dispatch() {
                builder = builder
                    .with_execution_providers([ep])
                    .map_err(|e| format!("cannot register it: {e}"))?;
            }
            builder
                .commit_from_file(&opts.model)
                .map_err(|e| format!("cannot load the model with it: {e}"))
        };
        match attempt() {
            Ok(session) => {
                tracing::info!(provider = %provider, model = %opts.model.display(), "execution provider chosen");
                return Ok((session, provider));
            }
            Err(reason) => {
                tracing::warn!(provider = %provider, %reason, "execution provider not usable");
                failures.push(format!("{provider}: {reason}"));
            }
        }
    }
    if failures.is_empty() {
        return Err(model_err("[detector] providers is empty".into()));
    }
    Err(model_err(format!(
        "ONNX Runtime cannot load it (is it an ONNX model?) with any configured provider: {}",
        failures.join("; ")
    )))
}

/// Session settings for a small box where the detector shares its cores with
/// decoding and the cameras' pipelines (measured by `make bench`, see
/// benches/RESULTS.md): ONNX Runtime's intra-op threads block instead of spinning
/// while they wait, so the time they would spin goes to decoding and the scene
/// model instead of being burnt; and no memory pattern is planned (ONNX Runtime
/// would lay out one block for an input shape's intermediate tensors after the
/// first run): with it the default model's process peaks 15 MB higher, for no
/// time saved.
fn tune(
    builder: ort::session::builder::SessionBuilder,
) -> Result<ort::session::builder::SessionBuilder, String> {
    let builder = builder
        .with_intra_op_spinning(false)
        .map_err(|e| e.to_string())?;
    builder
        .with_memory_pattern(false)
        .map_err(|e| e.to_string())
}

/// Loads a still image (JPEG/PNG) as RGB.
pub fn load_image(path: &Path) -> Result<image::RgbImage, DetectError> {
    let img = image::ImageReader::open(path)
        .map_err(|e| DetectError::Image {
            path: path.to_owned(),
            message: e.to_string(),
        })?
        .with_guessed_format()
        .map_err(|e| DetectError::Image {
            path: path.to_owned(),
            message: e.to_string(),
        })?
        .decode()
        .map_err(|e| DetectError::Image {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    Ok(img.into_rgb8())
}
