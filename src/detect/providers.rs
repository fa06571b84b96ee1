//! Execution providers: which hardware ONNX Runtime runs the model on.
//!
//! The config lists them in order of preference (`[detector] providers`);
//! [`super::Detector::open`] tries each, logs why one could not be used and
//! keeps the first that loads the model. The library is loaded at run time,
//! so which providers exist depends on the `libonnxruntime.so` on the box
//! (the PyPI CPU build has only `cpu`; vendor builds add CUDA, TensorRT,
//! OpenVINO).

use ort::ep::{self, ExecutionProvider};
use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Tensorrt,
    Cuda,
    Openvino,
    Cpu,
}

/// Every provider streetwatch can ask for, in the usual order of preference.
pub const ALL: [Provider; 4] = [
    Provider::Tensorrt,
    Provider::Cuda,
    Provider::Openvino,
    Provider::Cpu,
];

pub fn default_providers() -> Vec<Provider> {
    vec![Provider::Cpu]
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Tensorrt => "tensorrt",
            Provider::Cuda => "cuda",
            Provider::Openvino => "openvino",
            Provider::Cpu => "cpu",
        }
    }

    /// Whether the loaded ONNX Runtime library was built with this provider
    /// (it may still fail for a model or a missing device). Needs the runtime loaded.
    pub fn compiled_in(self) -> Result<bool, String> {
        let r = match self {
            Provider::Tensorrt => ep::TensorRT::is_available(),
            Provider::Cuda => ep::CUDA::is_available(),
            Provider::Openvino => ep::OpenVINO::is_available(),
            Provider::Cpu => return Ok(true),
        };
        r.map_err(|e| e.to_string())
    }

    /// What to register on a session builder; `None` for the CPU, which is always there.
    pub(crate) fn dispatch(self) -> Option<ep::ExecutionProviderDispatch> {
        match self {
            Provider::Tensorrt => Some(ep::TensorRT::default().build().error_on_failure()),
            Provider::Cuda => Some(ep::CUDA::default().build().error_on_failure()),
            Provider::Openvino => Some(ep::OpenVINO::default().build().error_on_failure()),
            Provider::Cpu => None,
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
