//! Object detection with ONNX Runtime.
//!
//! In: RGB frames. Out: [`Detection`]s in source pixels.
//!
//! ONNX Runtime is loaded at run time (`dlopen`) so a box can use a vendor
//! build; [`load_runtime`] checks it is there and new enough before anything
//! else touches it. [`Detector`] owns one session and its scratch buffers;
//! [`DetectorService`] runs one detector on its own thread for all cameras.

pub mod manifest;
pub mod postprocess;
pub mod preprocess;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ort::session::Session;
use ort::value::TensorRef;
use tokio::sync::{mpsc, oneshot};

pub use manifest::Manifest;
pub use postprocess::Detection;
pub use preprocess::RgbView;

use manifest::{Layout, OutputFormat};
use preprocess::Preprocessor;

/// The ONNX Runtime version this build is made for.
pub const ORT_VERSION: &str = "1.31.1";
/// Oldest minor version of ONNX Runtime 1.x that the `ort` crate can drive.
pub const ORT_MIN_MINOR: u32 = ort::MINOR_VERSION;

#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    #[error(
        "ONNX Runtime library not found at {path} (streetwatch needs ONNX Runtime 1.{ORT_MIN_MINOR}.x, e.g. {ORT_VERSION}; run `make setup`, or set [detector] ort_library or ORT_DYLIB_PATH)"
    )]
    RuntimeMissing { path: PathBuf },
    #[error(
        "ONNX Runtime library {path} is version {found}; streetwatch needs 1.{ORT_MIN_MINOR}.x or newer (e.g. {ORT_VERSION} from the PyPI onnxruntime wheel)"
    )]
    RuntimeVersion { path: PathBuf, found: String },
    #[error("cannot load ONNX Runtime library {path}: {message}")]
    RuntimeLoad { path: PathBuf, message: String },
    #[error(
        "model file {path} not found (run `make setup` for the default model, or set [model] path)"
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

/// Resolves which `libonnxruntime.so` to load: config, then `ORT_DYLIB_PATH`, then the cache.
pub fn runtime_path(configured: Option<&Path>) -> PathBuf {
    if let Some(p) = configured {
        return p.to_owned();
    }
    if let Some(p) = std::env::var_os("ORT_DYLIB_PATH").filter(|v| !v.is_empty()) {
        return p.into();
    }
    crate::cache_dir()
        .join(format!("onnxruntime-{ORT_VERSION}"))
        .join(format!("libonnxruntime.so.{ORT_VERSION}"))
}

static ENVIRONMENT: OnceLock<(PathBuf, ort::environment::Environment)> = OnceLock::new();

/// Loads ONNX Runtime from `path` once per process and checks its version.
pub fn load_runtime(path: &Path) -> Result<&'static ort::environment::Environment, DetectError> {
    if let Some((loaded, env)) = ENVIRONMENT.get() {
        if loaded != path {
            tracing::warn!(
                loaded = %loaded.display(),
                requested = %path.display(),
                "ONNX Runtime is already loaded; using the loaded library"
            );
        }
        return Ok(env);
    }
    if !path.exists() {
        return Err(DetectError::RuntimeMissing {
            path: path.to_owned(),
        });
    }
    let builder = ort::init_from(path).map_err(|e| match e {
        ort::LoadDynamicError::BadVersion { version_str, .. } => DetectError::RuntimeVersion {
            path: path.to_owned(),
            found: version_str,
        },
        other => DetectError::RuntimeLoad {
            path: path.to_owned(),
            message: other.to_string(),
        },
    })?;
    let env = builder
        .with_name("streetwatch")
        .build()
        .map_err(|e| DetectError::RuntimeLoad {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    let (_, env) = ENVIRONMENT.get_or_init(|| (path.to_owned(), env));
    Ok(env)
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
}

impl DetectorOptions {
    pub fn from_config(c: &crate::config::Config) -> Self {
        Self {
            model: c
                .model
                .path
                .clone()
                .unwrap_or_else(manifest::default_model_path),
            manifest: c.model.manifest.clone(),
            ort_library: c.detector.ort_library.clone(),
            intra_threads: c.detector.intra_threads,
            min_score: c.model.min_score,
            nms_iou: c.model.nms_iou,
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
    preprocessor: Preprocessor,
    input: Vec<f32>,
    min_score: f32,
    nms_iou: f32,
}

impl Detector {
    /// Loads the runtime, the manifest and the model, and checks they fit together.
    pub fn open(opts: &DetectorOptions) -> Result<Detector, DetectError> {
        let manifest = Manifest::locate(&opts.model, opts.manifest.as_deref())?;
        if !opts.model.exists() {
            return Err(DetectError::ModelMissing {
                path: opts.model.clone(),
            });
        }
        let env = load_runtime(&runtime_path(opts.ort_library.as_deref()))?;
        let model_err = |message: String| DetectError::Model {
            path: opts.model.clone(),
            message,
        };
        let mut builder = Session::builder(env).map_err(|e| model_err(e.to_string()))?;
        if opts.intra_threads > 0 {
            builder = builder
                .with_intra_threads(opts.intra_threads)
                .map_err(|e| model_err(e.to_string()))?;
        }
        let session = builder
            .commit_from_file(&opts.model)
            .map_err(|e| model_err(format!("ONNX Runtime cannot load it: {e}")))?;

        let input = session
            .inputs()
            .iter()
            .find(|i| i.name() == manifest.input.name)
            .ok_or_else(|| {
                model_err(format!(
                    "manifest input {:?} is not an input of the model (inputs: {:?})",
                    manifest.input.name,
                    session
                        .inputs()
                        .iter()
                        .map(|i| i.name())
                        .collect::<Vec<_>>()
                ))
            })?;
        let shape: Vec<i64> = input
            .dtype()
            .tensor_shape()
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default();
        let (w, h) = (manifest.input.width as i64, manifest.input.height as i64);
        let expected = match manifest.input.layout {
            Layout::Nchw => [1, 3, h, w],
            Layout::Nhwc => [1, h, w, 3],
        };
        let fits = shape.len() == 4
            && shape
                .iter()
                .zip(expected)
                .all(|(&got, want)| got == want || got < 0);
        if !fits {
            return Err(model_err(format!(
                "input {:?} has shape {shape:?}; the manifest describes {expected:?}",
                manifest.input.name
            )));
        }
        let OutputFormat::BoxesScores = manifest.output.format;
        for name in [&manifest.output.boxes, &manifest.output.scores] {
            if !session.outputs().iter().any(|o| o.name() == name) {
                return Err(model_err(format!(
                    "manifest output {name:?} is not an output of the model (outputs: {:?})",
                    session
                        .outputs()
                        .iter()
                        .map(|o| o.name())
                        .collect::<Vec<_>>()
                )));
            }
        }
        if let Some(classes) = session
            .outputs()
            .iter()
            .find(|o| o.name() == manifest.output.scores)
            .and_then(|o| o.dtype().tensor_shape().and_then(|s| s.last().copied()))
            && classes > 0
            && classes as usize != manifest.labels.len()
        {
            return Err(model_err(format!(
                "the model has {classes} classes but the manifest lists {} labels",
                manifest.labels.len()
            )));
        }

        Ok(Detector {
            preprocessor: Preprocessor::new(&manifest.input),
            min_score: opts.min_score.unwrap_or(manifest.detection.min_score),
            nms_iou: opts.nms_iou.unwrap_or(manifest.detection.nms_iou),
            input: Vec::new(),
            session,
            manifest,
            model_path: opts.model.clone(),
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn model_path(&self) -> &Path {
        &self.model_path
    }

    pub fn label(&self, class_id: usize) -> &str {
        self.manifest
            .labels
            .get(class_id)
            .map(String::as_str)
            .unwrap_or("?")
    }

    /// Runs the model on one image.
    pub fn detect(&mut self, img: RgbView<'_>) -> Result<DetectOutput, DetectError> {
        let start = Instant::now();
        self.preprocessor
            .run(img, &mut self.input)
            .map_err(DetectError::Inference)?;
        let spec = &self.manifest.input;
        let (w, h) = (spec.width as usize, spec.height as usize);
        let shape = match spec.layout {
            Layout::Nchw => [1, 3, h, w],
            Layout::Nhwc => [1, h, w, 3],
        };
        let tensor = TensorRef::from_array_view((shape, self.input.as_slice()))
            .map_err(|e| DetectError::Inference(e.to_string()))?;
        let outputs = self
            .session
            .run(ort::inputs![spec.name.as_str() => tensor])
            .map_err(|e| DetectError::Inference(e.to_string()))?;
        let out_err = |e: ort::Error| DetectError::Inference(e.to_string());
        let (_, boxes) = outputs[self.manifest.output.boxes.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(out_err)?;
        let (score_shape, scores) = outputs[self.manifest.output.scores.as_str()]
            .try_extract_tensor::<f32>()
            .map_err(out_err)?;
        let classes = score_shape.last().copied().unwrap_or(0).max(0) as usize;
        if classes == 0 || boxes.len() / 4 != scores.len() / classes {
            return Err(DetectError::Inference(format!(
                "output shapes do not match: {} boxes values, scores {score_shape:?}",
                boxes.len()
            )));
        }
        let scale = (
            img.width as f32 / spec.width as f32,
            img.height as f32 / spec.height as f32,
        );
        let candidates = postprocess::decode_boxes_scores(
            boxes,
            scores,
            classes,
            self.min_score,
            scale,
            (img.width, img.height),
        );
        let detections = postprocess::nms_per_class(candidates, self.nms_iou);
        Ok(DetectOutput {
            detections,
            elapsed: start.elapsed(),
        })
    }
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

struct Request {
    frame: std::sync::Arc<crate::source::Frame>,
    reply: oneshot::Sender<Result<DetectOutput, String>>,
}

/// One detector shared by every camera, on its own thread so inference never
/// blocks the async runtime. Cameras send frames and await the answer.
#[derive(Clone)]
pub struct DetectorService {
    tx: mpsc::Sender<Request>,
}

impl DetectorService {
    /// Starts the inference thread. It ends when every handle is dropped.
    pub fn spawn(mut detector: Detector, queue: usize) -> (Self, std::thread::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::channel::<Request>(queue.max(1));
        let handle = std::thread::Builder::new()
            .name("detector".into())
            .spawn(move || {
                while let Some(req) = rx.blocking_recv() {
                    let f = &req.frame;
                    let out = detector
                        .detect(RgbView {
                            width: f.width,
                            height: f.height,
                            data: &f.data,
                        })
                        .map_err(|e| e.to_string());
                    let _ = req.reply.send(out);
                }
            })
            .expect("spawning the detector thread");
        (Self { tx }, handle)
    }

    /// Detects objects in `frame`. Fails only if the service has stopped or inference failed.
    pub async fn detect(
        &self,
        frame: std::sync::Arc<crate::source::Frame>,
    ) -> Result<DetectOutput, String> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Request { frame, reply })
            .await
            .map_err(|_| "detector service stopped".to_string())?;
        rx.await
            .map_err(|_| "detector service stopped".to_string())?
    }
}
