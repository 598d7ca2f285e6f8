//! A model in onnxruntime (CPU execution provider), through the `ort`
//! crate with its `load-dynamic` feature: the runtime's own shared library
//! (the PyPI wheel's, see [`super::locate`]) is opened on first use.

use std::path::PathBuf;
use std::sync::Mutex;

use ort::session::Session;
use ort::value::{DynValue, Tensor, TensorElementType, ValueType};

use super::backend::{failed, guarded, BackendError, ModelSource, Runtime, RuntimeOptions};
use super::host::{HostData, HostTensor, NamedTensors};
use super::locate::ONNXRUNTIME;
use super::RuntimeError;

const RUNTIME: Runtime = Runtime::Onnxruntime;

/// onnxruntime's environment: one per process is all the library allows,
/// made when the first model loads and kept (a failed attempt is not kept,
/// so a corrected set-up works on the next call). It holds no thread pool:
/// each session has its own, sized by the caller.
/// The library's path is kept beside it, for reports.
static ENVIRONMENT: Mutex<Option<(ort::environment::Environment, PathBuf)>> = Mutex::new(None);

/// The library file this process loaded, once a model was loaded.
pub fn loaded_library() -> Option<PathBuf> {
    let env = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
    env.as_ref().map(|(_, path)| path.clone())
}

fn environment() -> Result<ort::environment::Environment, RuntimeError> {
    let mut env = ENVIRONMENT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((e, _)) = env.as_ref() {
        return Ok(e.clone());
    }
    let path = ONNXRUNTIME.locate()?;
    let library_error = |message: String| BackendError::Library {
        runtime: RUNTIME.name(),
        path: path.clone(),
        message,
    };
    let builder = ort::init_from(&path).map_err(|e| {
        library_error(match e {
            ort::LoadDynamicError::Dlopen { error, .. } => error.to_string(),
            ort::LoadDynamicError::MissingApi { .. } => {
                "it has no `OrtGetApiBase`: not an onnxruntime library".into()
            }
            ort::LoadDynamicError::BadVersion { version_str, .. } => format!(
                "it is onnxruntime {version_str}; bertc needs 1.{} or newer",
                ort::MINOR_VERSION
            ),
            other => other.to_string(),
        })
    })?;
    let built = builder
        .with_name("bertc")
        .with_telemetry(false)
        .build()
        .map_err(|e| library_error(e.to_string()))?;
    *env = Some((built.clone(), path));
    Ok(built)
}

pub struct OnnxruntimeModel {
    session: Session,
    input_names: Vec<String>,
    output_names: Vec<String>,
    /// Inputs converted once, for timed runs.
    prepared: Option<Vec<(String, DynValue)>>,
}

impl OnnxruntimeModel {
    pub fn load(source: ModelSource, opts: &RuntimeOptions) -> Result<OnnxruntimeModel, RuntimeError> {
        let env = environment()?;
        guarded(RUNTIME, "load", || {
            let err = |e: ort::Error<_>| failed(RUNTIME, "load")(e.to_string());
            let mut builder = Session::builder(&env)
                .map_err(|e| failed(RUNTIME, "load")(e.to_string()))?
                .with_intra_threads(opts.threads)
                .map_err(err)?
                .with_inter_threads(1)
                .map_err(err)?
                .with_intra_op_spinning(!opts.take_turns)
                .map_err(err)?;
            let session = match source {
                ModelSource::File(path) => builder.commit_from_file(path),
                ModelSource::Bytes(bytes) => builder.commit_from_memory(bytes),
            }
            .map_err(|e| failed(RUNTIME, "load")(e.to_string()))?;
            let names =
                |outlets: &[ort::value::Outlet]| outlets.iter().map(|o| o.name().to_string()).collect();
            Ok(OnnxruntimeModel {
                input_names: names(session.inputs()),
                output_names: names(session.outputs()),
                session,
                prepared: None,
            })
        })
    }

    pub fn input_names(&self) -> &[String] {
        &self.input_names
    }

    pub fn output_names(&self) -> &[String] {
        &self.output_names
    }

    /// The model's inputs picked by name from `tensors`, as onnxruntime values.
    fn values(&self, tensors: &NamedTensors) -> Result<Vec<(String, DynValue)>, RuntimeError> {
        self.session
            .inputs()
            .iter()
            .map(|outlet| {
                let name = outlet.name();
                let t = tensors
                    .get(name)
                    .ok_or_else(|| RuntimeError::MissingInput(name.to_string()))?;
                Ok((name.to_string(), to_value(name, outlet.dtype(), t)?))
            })
            .collect()
    }

    pub fn run(&mut self, tensors: &NamedTensors) -> Result<NamedTensors, RuntimeError> {
        let values = self.values(tensors)?;
        guarded(RUNTIME, "run", || {
            let outputs = self
                .session
                .run(values)
                .map_err(|e| failed(RUNTIME, "run")(e.to_string()))?;
            outputs
                .iter()
                .map(|(name, value)| Ok((name.to_string(), from_value(name, &value)?)))
                .collect()
        })
    }

    pub fn prepare(&mut self, tensors: &NamedTensors) -> Result<(), RuntimeError> {
        self.prepared = Some(self.values(tensors)?);
        Ok(())
    }

    pub fn run_prepared(&mut self) -> Result<(), RuntimeError> {
        let values = self.prepared.as_ref().ok_or(BackendError::NotPrepared)?;
        let inputs: Vec<(&str, &DynValue)> = values.iter().map(|(n, v)| (n.as_str(), v)).collect();
        guarded(RUNTIME, "run", || {
            self.session
                .run(inputs)
                .map(drop)
                .map_err(|e| failed(RUNTIME, "run")(e.to_string()))
        })
    }

    pub fn forget_prepared(&mut self) {
        self.prepared = None;
    }
}

/// A host tensor as the input `name` of type `expected`.
fn to_value(name: &str, expected: &ValueType, t: &HostTensor) -> Result<DynValue, RuntimeError> {
    let shape = t.shape.clone();
    let value = match (expected.tensor_type(), &t.data) {
        (Some(TensorElementType::Int64), HostData::I64(v)) => {
            Tensor::from_array((shape, v.clone())).map(Tensor::into_dyn)
        }
        (Some(TensorElementType::Float32), HostData::F32(v)) => {
            Tensor::from_array((shape, v.clone())).map(Tensor::into_dyn)
        }
        (ty, _) => {
            return Err(RuntimeError::InputType {
                name: name.to_string(),
                expected: ty.map_or_else(|| expected.to_string(), |ty| ty.to_string()),
                got: t.dtype_name().to_string(),
            })
        }
    };
    value.map_err(|e| failed(RUNTIME, "take the inputs of")(e.to_string()))
}

/// An output as a host tensor: floats as f32, integers as i64.
fn from_value(name: &str, value: &DynValue) -> Result<HostTensor, RuntimeError> {
    let read = |e: ort::Error| failed(RUNTIME, "read the outputs of")(e.to_string());
    let dims = |shape: &ort::value::Shape| shape.iter().map(|&d| d as usize).collect::<Vec<usize>>();
    match value.dtype().tensor_type() {
        Some(TensorElementType::Float32) => {
            let (shape, v) = value.try_extract_tensor::<f32>().map_err(read)?;
            Ok(HostTensor::f32(dims(shape), v.to_vec()))
        }
        Some(TensorElementType::Float16) => {
            let (shape, v) = value.try_extract_tensor::<half::f16>().map_err(read)?;
            Ok(HostTensor::f32(
                dims(shape),
                v.iter().map(|x| x.to_f32()).collect(),
            ))
        }
        Some(TensorElementType::Int64) => {
            let (shape, v) = value.try_extract_tensor::<i64>().map_err(read)?;
            Ok(HostTensor::i64(dims(shape), v.to_vec()))
        }
        Some(TensorElementType::Int32) => {
            let (shape, v) = value.try_extract_tensor::<i32>().map_err(read)?;
            Ok(HostTensor::i64(
                dims(shape),
                v.iter().map(|&x| x as i64).collect(),
            ))
        }
        _ => Err(BackendError::OutputType {
            runtime: RUNTIME.name(),
            name: name.to_string(),
            dtype: value.dtype().to_string(),
        }
        .into()),
    }
}
