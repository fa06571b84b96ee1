//! The ONNX Runtime shared library: which file to load (the configured one,
//! `$ORT_DYLIB_PATH`, the packaged one, the cache's), the version it reports,
//! and loading it once per process after checking it is new enough.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::{DetectError, ORT_VERSION};

/// Resolves which `libonnxruntime.so` to load: `[detector] ort_library`, then
/// `$ORT_DYLIB_PATH`, then the packaged one in [`crate::INSTALL_DIR`], then the cache.
pub fn runtime_path(configured: Option<&Path>) -> PathBuf {
    let file = format!("libonnxruntime.so.{ORT_VERSION}");
    crate::locate(
        configured,
        std::env::var_os("ORT_DYLIB_PATH"),
        Path::new(crate::INSTALL_DIR).join(&file),
        crate::cache_dir()
            .join(format!("onnxruntime-{ORT_VERSION}"))
            .join(file),
        Path::exists,
    )
}

/// The version string of the ONNX Runtime library at `path` (`"1.31.1"`), as the
/// library itself reports it.
pub fn runtime_version(path: &Path) -> Result<String, DetectError> {
    let load_err = |message: String| DetectError::RuntimeLoad {
        path: path.to_owned(),
        message,
    };
    if !path.exists() {
        return Err(DetectError::RuntimeMissing {
            path: path.to_owned(),
        });
    }
    // SAFETY: ONNX Runtime's initialisers have no preconditions; the library stays
    // loaded while its version string is copied.
    let lib = unsafe { libloading::Library::new(path) }.map_err(|e| load_err(e.to_string()))?;
    // SAFETY: `OrtGetApiBase` has this signature in every ONNX Runtime 1.x.
    let get_base = unsafe {
        lib.get::<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase>(b"OrtGetApiBase")
    }
    .map_err(|e| load_err(format!("not an ONNX Runtime library: {e}")))?;
    // SAFETY: the base is a static table of the library; the string it returns is
    // static, NUL-terminated and never freed.
    let version = unsafe {
        let base = get_base();
        if base.is_null() {
            return Err(load_err("OrtGetApiBase returned nothing".into()));
        }
        std::ffi::CStr::from_ptr(((*base).GetVersionString)())
            .to_string_lossy()
            .into_owned()
    };
    Ok(version)
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
