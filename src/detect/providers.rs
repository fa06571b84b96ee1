//! Execution providers: which hardware ONNX Runtime runs the model on.
//!
//! The config lists them in order of preference (`[detector] providers`);
//! [`super::Detector::open`] tries each, logs why one could not be used and
//! keeps the first that loads the model. The library is loaded at run time,
//! so which providers exist depends on the `libonnxruntime.so` on the box
//! (the PyPI CPU build has only `cpu`; vendor builds add CUDA, TensorRT,
//! OpenVINO).

use ort::ep::{self, ExecutionProvider};

pub use crate::config::{ALL_PROVIDERS as ALL, Provider, default_providers};

/// What ONNX Runtime needs to know of a provider.
pub trait ProviderExt {
    /// Whether the loaded ONNX Runtime library was built with this provider
    /// (it may still fail for a model or a missing device). Needs the runtime loaded.
    fn compiled_in(self) -> Result<bool, String>;
    /// What to register on a session builder; `None` for the CPU, which is always there.
    fn dispatch(self) -> Option<ep::ExecutionProviderDispatch>;
}

impl ProviderExt for Provider {
    fn compiled_in(self) -> Result<bool, String> {
        let r = match self {
            Provider::Tensorrt => ep::TensorRT::is_available(),
            Provider::Cuda => ep::CUDA::is_available(),
            Provider::Openvino => ep::OpenVINO::is_available(),
            Provider::Cpu => return Ok(true),
        };
        r.map_err(|e| e.to_string())
    }

    fn dispatch(self) -> Option<ep::ExecutionProviderDispatch> {
        match self {
            Provider::Tensorrt => Some(ep::TensorRT::default().build().error_on_failure()),
            Provider::Cuda => Some(ep::CUDA::default().build().error_on_failure()),
            Provider::Openvino => Some(ep::OpenVINO::default().build().error_on_failure()),
            Provider::Cpu => None,
        }
    }
}
