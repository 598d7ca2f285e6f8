//! The runtimes bertc runs models in, behind one interface: tract (built
//! in, the default) and onnxruntime and OpenVINO (their own shared
//! libraries, loaded on first use — see [`super::locate`]).
//!
//! `run`, `bench` and later a server pick a runtime by value
//! ([`Runtime`]) and hold a [`RuntimeModel`]: input and output names, and
//! `run(&NamedTensors) -> NamedTensors`. For benchmarks a model can
//! convert its inputs once ([`RuntimeModel::prepare`]) and then be timed
//! on nothing but the runtime's own work ([`RuntimeModel::run_prepared`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::Arc;

use tract_onnx::prelude::{TValue, TVec, TypedRunnableModel};

use super::host::NamedTensors;
use super::onnxruntime::OnnxruntimeModel;
use super::openvino::OpenvinoModel;
use super::{RuntimeError, TractSession};
use crate::ir::op_table::Domain;
use crate::ir::Graph;
use crate::session::Session;

/// A runtime bertc can run a model in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Runtime {
    /// tract-onnx, compiled into bertc: needs nothing installed.
    #[default]
    Tract,
    /// onnxruntime's CPU execution provider, from its shared library.
    Onnxruntime,
    /// OpenVINO's CPU plugin, from its shared library, at f32 inference
    /// precision (its default on CPUs with AVX-512 BF16 or AMX is bf16,
    /// which moves outputs by ~1e-3).
    Openvino,
}

impl Runtime {
    pub const ALL: [Runtime; 3] = [Runtime::Tract, Runtime::Onnxruntime, Runtime::Openvino];

    /// The name the command line and the reports use.
    pub fn name(self) -> &'static str {
        match self {
            Runtime::Tract => "tract",
            Runtime::Onnxruntime => "onnxruntime",
            Runtime::Openvino => "openvino",
        }
    }

    pub fn parse(name: &str) -> Option<Runtime> {
        Runtime::ALL.into_iter().find(|r| r.name() == name)
    }

    /// The shared library this process loaded for the runtime, once a
    /// model was loaded in it (`None` for tract, which is built in).
    pub fn loaded_library(self) -> Option<std::path::PathBuf> {
        match self {
            Runtime::Tract => None,
            Runtime::Onnxruntime => super::onnxruntime::loaded_library(),
            Runtime::Openvino => super::openvino::loaded_library(),
        }
    }
}

impl std::fmt::Display for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a model's ONNX comes from.
#[derive(Debug, Clone, Copy)]
pub enum ModelSource<'a> {
    /// A file on disk, with its external data beside it.
    File(&'a Path),
    /// A serialized model in memory (weights inline).
    Bytes(&'a [u8]),
}

/// How a model runs, whatever the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RuntimeOptions {
    /// Threads of one run: onnxruntime's intra-op threads (its inter-op
    /// pool stays at 1: BERT's graph is a chain), OpenVINO's
    /// `INFERENCE_NUM_THREADS`. tract's threads are the caller's
    /// [`Session`]'s. Per model: nothing process-wide changes.
    pub threads: usize,
    /// Several models take turns on the same cores (an interleaved
    /// benchmark): onnxruntime's idle threads must then not spin, or they
    /// steal the running model's cores (measured: an int8 BERT-base at
    /// 82–88 ms instead of 45–49 ms).
    pub take_turns: bool,
    /// tract: one plan for every batch size and length
    /// ([`super::PlanShapes::Symbolic`]), for a server's ever new shapes;
    /// otherwise one per shape (`run`, `bench`).
    pub one_plan: bool,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        RuntimeOptions {
            threads: crate::session::available_threads(),
            take_turns: false,
            one_plan: false,
        }
    }
}

/// What goes wrong in onnxruntime or OpenVINO, or in choosing a runtime.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{runtime} is not available: {reason}")]
    Unavailable { runtime: &'static str, reason: String },
    #[error("cannot load {runtime} from {}: {message}", .path.display())]
    Library {
        runtime: &'static str,
        path: std::path::PathBuf,
        message: String,
    },
    #[error("{runtime} could not {stage} the model: {message}")]
    Failed {
        runtime: &'static str,
        stage: &'static str,
        message: String,
    },
    #[error("{runtime} panicked while it tried to {stage} the model: {message}")]
    Panic {
        runtime: &'static str,
        stage: &'static str,
        message: String,
    },
    #[error(
        "{runtime} cannot run this file: it was written for onnxruntime (`--target onnxruntime`: \
         it uses onnxruntime's contrib ops {}); run it with --runtime onnxruntime or --runtime openvino, \
         or compile a portable file for {runtime} ({runtime} said: {reason})",
        .ops.join(", ")
    )]
    WrittenForOnnxruntime {
        runtime: &'static str,
        ops: Vec<&'static str>,
        reason: String,
    },
    #[error("{runtime} returned the output `{name}` as {dtype}; bertc reads float and integer outputs")]
    OutputType {
        runtime: &'static str,
        name: String,
        dtype: String,
    },
    #[error("the model was run for timing before its inputs were prepared")]
    NotPrepared,
}

/// Runs `f` — a call into onnxruntime or OpenVINO through their bindings —
/// turning a panic of the bindings into an error.
pub(super) fn guarded<T>(
    runtime: Runtime,
    stage: &'static str,
    f: impl FnOnce() -> Result<T, RuntimeError>,
) -> Result<T, RuntimeError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(BackendError::Panic {
            runtime: runtime.name(),
            stage,
            message: super::panic_message(payload.as_ref()),
        }
        .into())
    })
}

/// An error of a runtime's own, at one stage.
pub(super) fn failed(runtime: Runtime, stage: &'static str) -> impl Fn(String) -> RuntimeError {
    move |message| {
        BackendError::Failed {
            runtime: runtime.name(),
            stage,
            message,
        }
        .into()
    }
}

/// A tract plan with its inputs, ready to time.
type TractPrepared = (Arc<TypedRunnableModel>, TVec<TValue>);

/// A model loaded in one runtime.
pub struct RuntimeModel {
    engine: Engine,
}

enum Engine {
    Tract {
        // Boxed: a tract session is several times the size of the others.
        session: Box<TractSession>,
        prepared: Option<TractPrepared>,
    },
    Onnxruntime(OnnxruntimeModel),
    Openvino(OpenvinoModel),
}

impl RuntimeModel {
    /// Loads a model in `runtime` (tract runs it on `session`'s threads).
    /// onnxruntime and OpenVINO load their shared library on the first
    /// call (an error names what is missing and how to install it).
    pub fn load(
        session: &Session,
        runtime: Runtime,
        source: ModelSource,
        opts: &RuntimeOptions,
    ) -> Result<RuntimeModel, RuntimeError> {
        let engine = match runtime {
            Runtime::Tract => {
                let loaded = match source {
                    ModelSource::File(path) => TractSession::from_path(session, path)?,
                    ModelSource::Bytes(bytes) => TractSession::from_bytes(session, bytes)?,
                };
                let shapes = match opts.one_plan {
                    true => super::PlanShapes::Symbolic,
                    false => super::PlanShapes::Concrete,
                };
                return Ok(RuntimeModel::tract(loaded.with_plan_shapes(shapes)));
            }
            Runtime::Onnxruntime => Engine::Onnxruntime(OnnxruntimeModel::load(source, opts)?),
            Runtime::Openvino => Engine::Openvino(OpenvinoModel::load(source, opts)?),
        };
        Ok(RuntimeModel { engine })
    }

    /// Loads the file `graph` was read from (or serialized to) in
    /// `runtime`. A file with onnxruntime's contrib ops is tried in tract
    /// at once, on a short input: tract fails on them only when it plans,
    /// and a file written for another runtime is refused here, saying what
    /// it is for, rather than at the first run.
    pub fn load_checked(
        session: &Session,
        runtime: Runtime,
        source: ModelSource,
        opts: &RuntimeOptions,
        graph: &Graph,
    ) -> Result<RuntimeModel, RuntimeError> {
        let explain = |e| explain_load_error(e, runtime, graph);
        let mut model = RuntimeModel::load(session, runtime, source, opts).map_err(explain)?;
        if runtime == Runtime::Tract && !contrib_ops(graph).is_empty() {
            model.prepare(&super::inputs_for(graph, 1, 8)).map_err(explain)?;
            model.forget_prepared();
        }
        Ok(model)
    }

    /// A model already loaded in tract.
    pub fn tract(session: TractSession) -> RuntimeModel {
        RuntimeModel {
            engine: Engine::Tract {
                session: Box::new(session),
                prepared: None,
            },
        }
    }

    pub fn runtime(&self) -> Runtime {
        match self.engine {
            Engine::Tract { .. } => Runtime::Tract,
            Engine::Onnxruntime(_) => Runtime::Onnxruntime,
            Engine::Openvino(_) => Runtime::Openvino,
        }
    }

    pub fn input_names(&self) -> &[String] {
        match &self.engine {
            Engine::Tract { session, .. } => session.input_names(),
            Engine::Onnxruntime(m) => m.input_names(),
            Engine::Openvino(m) => m.input_names(),
        }
    }

    pub fn output_names(&self) -> &[String] {
        match &self.engine {
            Engine::Tract { session, .. } => session.output_names(),
            Engine::Onnxruntime(m) => m.output_names(),
            Engine::Openvino(m) => m.output_names(),
        }
    }

    /// Runs the model on the named tensors (extra tensors are ignored) and
    /// returns its outputs by name.
    pub fn run(&mut self, tensors: &NamedTensors) -> Result<NamedTensors, RuntimeError> {
        match &mut self.engine {
            Engine::Tract { session, .. } => session.run(tensors),
            Engine::Onnxruntime(m) => m.run(tensors),
            Engine::Openvino(m) => m.run(tensors),
        }
    }

    /// Converts `tensors` into the runtime's own values once (and in tract
    /// plans for their shapes), for [`Self::run_prepared`].
    pub fn prepare(&mut self, tensors: &NamedTensors) -> Result<(), RuntimeError> {
        match &mut self.engine {
            Engine::Tract { session, prepared } => {
                let (hosts, values) = session.prepare(tensors)?;
                let plan = session.plan_for(&hosts.iter().collect::<Vec<_>>())?;
                *prepared = Some((plan, values));
                Ok(())
            }
            Engine::Onnxruntime(m) => m.prepare(tensors),
            Engine::Openvino(m) => m.prepare(tensors),
        }
    }

    /// Runs once on the prepared inputs, outputs dropped: what a
    /// benchmark times.
    pub fn run_prepared(&mut self) -> Result<(), RuntimeError> {
        match &mut self.engine {
            Engine::Tract { session, prepared } => {
                let (plan, values) = prepared.as_ref().ok_or(BackendError::NotPrepared)?;
                session.run_plan(plan, values.clone())
            }
            Engine::Onnxruntime(m) => m.run_prepared(),
            Engine::Openvino(m) => m.run_prepared(),
        }
    }

    /// Drops the prepared inputs and, in tract, the plans (each holds
    /// tract's packed copy of the weights), before the next shape.
    pub fn forget_prepared(&mut self) {
        match &mut self.engine {
            Engine::Tract { session, prepared } => {
                *prepared = None;
                session.forget_plans();
            }
            Engine::Onnxruntime(m) => m.forget_prepared(),
            Engine::Openvino(m) => m.forget_prepared(),
        }
    }
}

/// onnxruntime's contrib ops in `graph` (domain `com.microsoft`), by name.
fn contrib_ops(graph: &Graph) -> Vec<&'static str> {
    let mut ops: Vec<&'static str> = graph
        .node_ids()
        .map(|id| graph.node(id).op.entry().0)
        .filter(|schema| schema.domain == Some(Domain::Microsoft))
        .map(|schema| schema.op_type)
        .collect();
    ops.sort_unstable();
    ops.dedup();
    ops
}

/// `err`, a failure to load `graph`'s file in `runtime`, said in terms of
/// what the file is for when that is the reason: a file with onnxruntime's
/// contrib ops is for onnxruntime (and OpenVINO, which reads them), not
/// tract.
fn explain_load_error(err: RuntimeError, runtime: Runtime, graph: &Graph) -> RuntimeError {
    let ops = contrib_ops(graph);
    if runtime != Runtime::Tract || ops.is_empty() {
        return err;
    }
    match err {
        RuntimeError::Tract { message, .. } | RuntimeError::Panic { message, .. } => {
            BackendError::WrittenForOnnxruntime {
                runtime: runtime.name(),
                ops,
                reason: message,
            }
            .into()
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtimes_parse_by_their_names() {
        for r in Runtime::ALL {
            assert_eq!(Runtime::parse(r.name()), Some(r));
        }
        assert_eq!(Runtime::parse("ort"), None);
        assert_eq!(Runtime::default(), Runtime::Tract);
    }
}
