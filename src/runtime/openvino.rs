//! A model in OpenVINO (CPU plugin), through the `openvino` crate with
//! `runtime-linking`: the C API library (the PyPI wheel's
//! `libopenvino_c.so.NNNN`, see [`super::locate`]) is opened on first use,
//! and OpenVINO finds its CPU plugin beside it.
//!
//! Inference runs at f32 precision (`INFERENCE_PRECISION_HINT=f32`):
//! OpenVINO's default on CPUs with AVX-512 BF16 or AMX is bf16, faster but
//! moving outputs by ~1e-3 — not the model bertc compiled.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use openvino::{CompiledModel, Core, DeviceType, ElementType, InferRequest, RwPropertyKey, Shape, Tensor};

use super::backend::{failed, guarded, BackendError, ModelSource, Runtime, RuntimeOptions};
use super::host::{HostData, HostTensor, NamedTensors};
use super::locate::OPENVINO;
use super::RuntimeError;

const RUNTIME: Runtime = Runtime::Openvino;

/// The C API library this process loaded (it stays loaded).
static LOADED: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The library file this process loaded, once a model was loaded.
pub fn loaded_library() -> Option<PathBuf> {
    LOADED.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

/// The symbols bertc checks before handing a file to openvino-sys, which
/// would otherwise accept any shared library and panic at its first call.
const REQUIRED_SYMBOLS: [&str; 3] = [
    "ov_get_openvino_version",
    "ov_core_create",
    "ov_core_compile_model",
];

fn load_library() -> Result<(), RuntimeError> {
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if loaded.is_some() {
        return Ok(());
    }
    let path = OPENVINO.locate()?;
    let library_error = |message: String| BackendError::Library {
        runtime: RUNTIME.name(),
        path: path.clone(),
        message,
    };
    check_symbols(&path).map_err(library_error)?;
    guarded(RUNTIME, "load", || {
        openvino_sys::library::load_from(path.clone()).map_err(|m| library_error(m).into())
    })?;
    *loaded = Some(path);
    Ok(())
}

/// Opens `path` and checks it is OpenVINO's C API library.
fn check_symbols(path: &Path) -> Result<(), String> {
    // SAFETY: opening a shared library runs its initializers; the file is
    // the one the user or the installed wheel named as OpenVINO's.
    let library = unsafe { libloading::Library::new(path) }.map_err(|e| e.to_string())?;
    for symbol in REQUIRED_SYMBOLS {
        // SAFETY: only the symbol's presence is checked; it is never called.
        if unsafe { library.get::<unsafe extern "C" fn()>(symbol.as_bytes()) }.is_err() {
            return Err(format!(
                "it has no `{symbol}`: not OpenVINO's C API library (libopenvino_c)"
            ));
        }
    }
    Ok(())
}

pub struct OpenvinoModel {
    // Fields drop in order: the request before its compiled model, both
    // before the core that made them.
    request: InferRequest,
    _compiled: CompiledModel,
    _core: Core,
    inputs: Vec<(String, ElementType)>,
    input_names: Vec<String>,
    output_names: Vec<String>,
    /// Whether the request holds inputs set by [`Self::prepare`].
    prepared: bool,
}

impl OpenvinoModel {
    pub fn load(source: ModelSource, opts: &RuntimeOptions) -> Result<OpenvinoModel, RuntimeError> {
        load_library()?;
        guarded(RUNTIME, "load", || {
            let err = |e: openvino::InferenceError| failed(RUNTIME, "load")(e.to_string());
            let mut core = Core::new().map_err(|e| failed(RUNTIME, "load")(e.to_string()))?;
            // On this core only (each model has its own): nothing process-wide.
            let threads = opts.threads.to_string();
            core.set_property(&DeviceType::CPU, &RwPropertyKey::InferenceNumThreads, &threads)
                .map_err(err)?;
            core.set_property(&DeviceType::CPU, &RwPropertyKey::HintInferencePrecision, "f32")
                .map_err(err)?;
            let model = match source {
                ModelSource::File(path) => {
                    let path = path.to_str().ok_or_else(|| {
                        failed(RUNTIME, "load")(format!("{}: the path is not UTF-8", path.display()))
                    })?;
                    core.read_model_from_file(path, "")
                }
                ModelSource::Bytes(bytes) => core.read_model_from_buffer(bytes, None),
            }
            .map_err(err)?;
            let mut compiled = core.compile_model(&model, DeviceType::CPU).map_err(err)?;
            let mut inputs = Vec::new();
            for i in 0..compiled.get_input_size().map_err(err)? {
                let port = compiled.get_input_by_index(i).map_err(err)?;
                inputs.push((
                    port.get_name().map_err(err)?,
                    port.get_element_type().map_err(err)?,
                ));
            }
            let output_names = (0..compiled.get_output_size().map_err(err)?)
                .map(|i| compiled.get_output_by_index(i).and_then(|p| p.get_name()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(err)?;
            let request = compiled.create_infer_request().map_err(err)?;
            Ok(OpenvinoModel {
                request,
                _compiled: compiled,
                _core: core,
                input_names: inputs.iter().map(|(n, _)| n.clone()).collect(),
                inputs,
                output_names,
                prepared: false,
            })
        })
    }

    pub fn input_names(&self) -> &[String] {
        &self.input_names
    }

    pub fn output_names(&self) -> &[String] {
        &self.output_names
    }

    /// Sets the model's inputs, picked by name from `tensors`, on the request.
    fn set_inputs(&mut self, tensors: &NamedTensors) -> Result<(), RuntimeError> {
        for (name, ty) in &self.inputs {
            let t = tensors
                .get(name)
                .ok_or_else(|| RuntimeError::MissingInput(name.clone()))?;
            let tensor = to_tensor(name, *ty, t)?;
            guarded(RUNTIME, "take the inputs of", || {
                self.request
                    .set_tensor(name, &tensor)
                    .map_err(|e| failed(RUNTIME, "take the inputs of")(e.to_string()))
            })?;
        }
        Ok(())
    }

    fn infer(&mut self) -> Result<(), RuntimeError> {
        guarded(RUNTIME, "run", || {
            self.request
                .infer()
                .map_err(|e| failed(RUNTIME, "run")(e.to_string()))
        })
    }

    pub fn run(&mut self, tensors: &NamedTensors) -> Result<NamedTensors, RuntimeError> {
        self.prepared = false;
        self.set_inputs(tensors)?;
        self.infer()?;
        let request = &self.request;
        self.output_names
            .iter()
            .map(|name| {
                guarded(RUNTIME, "read the outputs of", || {
                    let tensor = request
                        .get_tensor(name)
                        .map_err(|e| failed(RUNTIME, "read the outputs of")(e.to_string()))?;
                    Ok((name.clone(), from_tensor(name, &tensor)?))
                })
            })
            .collect()
    }

    pub fn prepare(&mut self, tensors: &NamedTensors) -> Result<(), RuntimeError> {
        self.set_inputs(tensors)?;
        self.prepared = true;
        Ok(())
    }

    pub fn run_prepared(&mut self) -> Result<(), RuntimeError> {
        if !self.prepared {
            return Err(BackendError::NotPrepared.into());
        }
        self.infer()
    }

    pub fn forget_prepared(&mut self) {
        self.prepared = false;
    }
}

/// A host tensor as the input `name` of element type `expected`.
fn to_tensor(name: &str, expected: ElementType, t: &HostTensor) -> Result<Tensor, RuntimeError> {
    let bytes: Vec<u8> = match (expected, &t.data) {
        (ElementType::I64, HostData::I64(v)) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        (ElementType::F32, HostData::F32(v)) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
        _ => {
            return Err(RuntimeError::InputType {
                name: name.to_string(),
                expected: expected.to_string(),
                got: t.dtype_name().to_string(),
            })
        }
    };
    let err = |e: openvino::InferenceError| failed(RUNTIME, "take the inputs of")(e.to_string());
    let dims: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
    let mut tensor = Tensor::new(expected, &Shape::new(&dims).map_err(err)?).map_err(err)?;
    tensor.get_raw_data_mut().map_err(err)?.copy_from_slice(&bytes);
    Ok(tensor)
}

/// An output as a host tensor: floats as f32, integers as i64.
fn from_tensor(name: &str, tensor: &Tensor) -> Result<HostTensor, RuntimeError> {
    let err = |e: openvino::InferenceError| failed(RUNTIME, "read the outputs of")(e.to_string());
    let shape: Vec<usize> = tensor
        .get_shape()
        .map_err(err)?
        .get_dimensions()
        .iter()
        .map(|&d| d as usize)
        .collect();
    let bytes = tensor.get_raw_data().map_err(err)?;
    let ty = tensor.get_element_type().map_err(err)?;
    // Little-endian words of `N` bytes, each mapped by `f`.
    fn words<const N: usize, T>(bytes: &[u8], f: impl Fn([u8; N]) -> T) -> Vec<T> {
        bytes
            .chunks_exact(N)
            .map(|c| f(c.try_into().unwrap_or([0; N])))
            .collect()
    }
    Ok(match ty {
        ElementType::F32 => HostTensor::f32(shape, words(bytes, f32::from_le_bytes)),
        ElementType::F16 => HostTensor::f32(shape, words(bytes, |b| half::f16::from_le_bytes(b).to_f32())),
        ElementType::I64 => HostTensor::i64(shape, words(bytes, i64::from_le_bytes)),
        ElementType::I32 => HostTensor::i64(shape, words(bytes, |b| i32::from_le_bytes(b) as i64)),
        other => {
            return Err(BackendError::OutputType {
                runtime: RUNTIME.name(),
                name: name.to_string(),
                dtype: other.to_string(),
            }
            .into())
        }
    })
}
