//! A loaded ONNX model in tract, with one optimized plan per input shape.
//!
//! Shapes are bound to concrete values before tract optimizes, as bench and
//! validation run fixed shapes: tract then plans every buffer and picks its
//! matrix kernels for those sizes.

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::prelude::*;

use super::host::{HostData, HostTensor, NamedTensors};
use super::weights::SharedWeights;
use super::RuntimeError;
use crate::onnx::SplitModel;
use crate::session::{CaughtPanic, Session};
use prost::Message;

type Plan = Arc<TypedRunnableModel>;

/// How a [`TractSession`] turns its model into a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlanMode {
    /// tract's full optimization: kernels chosen and weights packed once,
    /// when the plan is built. What benchmarks and users run.
    #[default]
    Optimized,
    /// Decluttering only: each matrix product packs its operands when it
    /// runs, into memory freed right after. For a model run once on a few
    /// tokens (the check's reference) this skips packing every weight into
    /// a plan that is dropped straight away — for BERT-base 440 MB of
    /// fresh memory and its page faults — and computes the reference
    /// without tract's fusions, independently of the candidate's plan.
    Decluttered,
}

/// Which input shapes a plan is made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PlanShapes {
    /// One plan per concrete input shape, its kernels chosen for it: what
    /// `bench` measures at a fixed batch and length.
    #[default]
    Concrete,
    /// Plans for every batch size and length: the token inputs bound as
    /// symbolic [B, S], the sizes resolved at each run — for a server,
    /// whose requests bring ever new shapes (each concrete plan costs
    /// 30–90 ms to build for MiniLM). Same outputs, byte for byte, as
    /// concrete plans on 2,000 text-mix lines. A graph tract cannot plan or
    /// run symbolically falls back to concrete plans.
    ///
    /// Single rows get a plan of their own, [1, S]: a server's lone
    /// requests, whose latency is what a user sees. With the batch symbolic
    /// tract keeps every op rank 3 with an unknown leading size — residual
    /// adds not folded into the products, norms' broadcasts resolved at run
    /// time — and MiniLM at B=1, S=25 ran at 11.3 ms against 8.1 ms
    /// concrete; bound to 1 it ran at 9.5 ms (tract 0.23.9, 2 threads,
    /// Zen 4, per-op profile in the commit that made this). The second plan
    /// holds its own packed weights.
    Symbolic,
}

/// Which sizes of the token inputs a plan leaves to run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Free {
    /// Every size bound: a concrete plan.
    None,
    /// The length only; the batch bound (to one row).
    Length,
    /// Batch size and length.
    BatchAndLength,
}

impl Free {
    /// A symbolic plan's free sizes for these inputs: the length alone for
    /// a single row, both otherwise.
    fn of(inputs: &[&HostTensor]) -> Free {
        match inputs.iter().all(|t| t.shape.len() != 2 || t.shape[0] == 1) {
            true => Free::Length,
            false => Free::BatchAndLength,
        }
    }
}

pub struct TractSession {
    /// The caller's session: the threads every call into tract runs on.
    session: Session,
    model: InferenceModel,
    input_names: Vec<String>,
    output_names: Vec<String>,
    /// Concrete: the plans of the shapes run last, most recent first (see
    /// [`MAX_PLANS`]). Symbolic: the single-row plan and the batch plan,
    /// each made on first use.
    plans: Vec<(Vec<Vec<usize>>, Plan)>,
    mode: PlanMode,
    shapes: PlanShapes,
}

/// The most plans a session keeps. Each holds the weights packed for its
/// shapes' kernels, and length-sorted batches bring new shapes all the
/// time: kept without bound, `bertc run` of the 2,000-line text mix peaked
/// at 1.5 GB (26 plans); with four at 0.71 GB and one at 0.59 GB, no slower.
/// Sorted batches run one shape after another, so the last two (a shape and
/// the one it alternates with) are all a run reuses.
pub const MAX_PLANS: usize = 2;

fn tract_err(stage: &'static str) -> impl Fn(TractError) -> RuntimeError {
    move |e| RuntimeError::Tract {
        stage,
        message: format!("{e:#}"),
    }
}

/// tract's ONNX parser as bertc uses it. Shapes are bound to concrete sizes
/// per run; a file's symbolic value_info (batch_size, sequence_length) would
/// then conflict with them in tract's analysis, so tract re-derives them.
fn onnx_parser() -> tract_onnx::Onnx {
    tract_onnx::onnx().with_ignore_value_info(true)
}

/// Runs `f` — a call into tract — with the session's threads, turning
/// a tract panic into an error (foreign files can trigger them).
fn guarded<T>(
    session: &Session,
    stage: &'static str,
    f: impl FnOnce() -> Result<T, RuntimeError>,
) -> Result<T, RuntimeError> {
    session
        .catch_panic(|| session.with_tract(f))
        .unwrap_or_else(|p| Err(panicked(stage, p)))
}

fn panicked(stage: &'static str, p: CaughtPanic) -> RuntimeError {
    RuntimeError::Panic {
        stage,
        message: p.message,
    }
}

impl TractSession {
    /// Parses ONNX bytes (a model with external data needs [`Self::from_path`]),
    /// to run on `session`'s threads.
    pub fn from_bytes(session: &Session, bytes: &[u8]) -> Result<TractSession, RuntimeError> {
        guarded(session, "load", || {
            let model = onnx_parser()
                .model_for_read(&mut &*bytes)
                .map_err(tract_err("load"))?;
            TractSession::from_model(session, model)
        })
    }

    /// Loads the model file at `path`, with its external data: each data
    /// file mapped once, and only inside the model's folder.
    pub fn from_path(session: &Session, path: &std::path::Path) -> Result<TractSession, RuntimeError> {
        let io = |e: std::io::Error| RuntimeError::Io(format!("cannot read {}: {e}", path.display()));
        crate::input_file::require_regular(path).map_err(io)?;
        let files = Arc::new(super::external::MappedFiles::new(path).map_err(io)?);
        guarded(session, "load", || {
            let onnx = tract_onnx::Onnx {
                provider: files.clone(),
                ..onnx_parser()
            };
            let proto = onnx.proto_model_for_path(path).map_err(tract_err("load"))?;
            files
                .check_locations(&proto)
                .map_err(|e| RuntimeError::Io(format!("{}: {e}", path.display())))?;
            let dir = path.parent().and_then(|d| d.to_str());
            let parsed = onnx.parse(&proto, dir).map_err(tract_err("load"))?;
            if !parsed.unresolved_inputs.is_empty() {
                return Err(RuntimeError::Tract {
                    stage: "load",
                    message: format!("unresolved inputs {:?}", parsed.unresolved_inputs),
                });
            }
            TractSession::from_model(session, parsed.model)
        })
    }

    /// Loads a model split from its weights: tract parses the graph, and
    /// each initializer becomes a constant holding the tensor `weights`
    /// has for it (made once, shared by every model loaded through it).
    pub fn from_split(
        session: &Session,
        model: &SplitModel,
        weights: &mut SharedWeights,
    ) -> Result<TractSession, RuntimeError> {
        let tensors: HashMap<&str, Arc<Tensor>> = model
            .initializers
            .iter()
            .map(|i| i.name.as_str())
            .zip(weights.tensors(&model.initializers)?)
            .collect();
        guarded(session, "load", || {
            let onnx = onnx_parser();
            let proto =
                tract_onnx::pb::ModelProto::decode(&*model.graph).map_err(|e| RuntimeError::Tract {
                    stage: "load",
                    message: format!("{e}"),
                })?;
            let parsed = onnx.parse(&proto, None).map_err(tract_err("load"))?;
            let mut m = parsed.model;
            // tract made a source for each name no node defines: the
            // initializers taken out become constants in place.
            for name in &parsed.unresolved_inputs {
                let Some(t) = tensors.get(name.as_str()) else {
                    return Err(RuntimeError::Tract {
                        stage: "load",
                        message: format!("value `{name}` is read but never defined"),
                    });
                };
                // By the outlet tract wired the name to (node names are
                // another namespace: one may equal an initializer's name).
                let Some(&OutletId { node: id, .. }) = parsed.outlets_by_name.get(name) else {
                    return Err(RuntimeError::Tract {
                        stage: "load",
                        message: format!("value `{name}` has no source"),
                    });
                };
                let konst =
                    tract_onnx::tract_core::ops::konst::Const::new(t.clone()).map_err(tract_err("load"))?;
                let fact = TypedFact::try_from(t.clone()).map_err(tract_err("load"))?;
                m.nodes[id].op = Box::new(konst);
                m.nodes[id].outputs[0].fact = fact.into();
                m.inputs.retain(|o| o.node != id);
            }
            TractSession::from_model(session, m)
        })
    }

    fn from_model(session: &Session, model: InferenceModel) -> Result<TractSession, RuntimeError> {
        let label = |o: OutletId| -> String {
            model
                .outlet_label(o)
                .map(String::from)
                .unwrap_or_else(|| model.node(o.node).name.clone())
        };
        let input_names = model
            .input_outlets()
            .map_err(tract_err("load"))?
            .iter()
            .map(|&o| label(o))
            .collect();
        let output_names = model
            .output_outlets()
            .map_err(tract_err("load"))?
            .iter()
            .map(|&o| label(o))
            .collect();
        Ok(TractSession {
            session: session.clone(),
            model,
            input_names,
            output_names,
            plans: Vec::new(),
            mode: PlanMode::default(),
            shapes: PlanShapes::default(),
        })
    }

    /// This session, planning for `shapes` from now on.
    pub fn with_plan_shapes(mut self, shapes: PlanShapes) -> TractSession {
        self.shapes = shapes;
        self.plans.clear();
        self
    }

    /// This session, planning in `mode` from now on.
    pub fn with_plan_mode(mut self, mode: PlanMode) -> TractSession {
        self.mode = mode;
        self.plans.clear();
        self
    }

    pub fn input_names(&self) -> &[String] {
        &self.input_names
    }

    pub fn output_names(&self) -> &[String] {
        &self.output_names
    }

    /// The model's inputs picked by name from `tensors`, in model order.
    fn bind<'t>(&self, tensors: &'t NamedTensors) -> Result<Vec<&'t HostTensor>, RuntimeError> {
        self.input_names
            .iter()
            .map(|n| {
                tensors
                    .get(n)
                    .ok_or_else(|| RuntimeError::MissingInput(n.clone()))
            })
            .collect()
    }

    /// The optimized plan for these input shapes: built on first use, and
    /// kept while it is among the [`MAX_PLANS`] run last.
    pub fn plan_for(&mut self, inputs: &[&HostTensor]) -> Result<Plan, RuntimeError> {
        if self.shapes == PlanShapes::Symbolic {
            // Keyed by the inputs' ranks and whether they hold one row: a
            // plan for single rows and one for every other batch.
            let free = Free::of(inputs);
            let key: Vec<Vec<usize>> = inputs
                .iter()
                .map(|t| vec![t.shape.len(), (free == Free::Length) as usize])
                .collect();
            if let Some((_, plan)) = self.plans.iter().find(|(k, _)| *k == key) {
                return Ok(plan.clone());
            }
            match self.build_plan(inputs, free) {
                Ok(plan) => {
                    // Ranks never change within a run; a plan of other
                    // ranks (another caller's inputs) is dropped.
                    self.plans
                        .retain(|(k, _)| k.iter().map(|d| d[0]).eq(key.iter().map(|d| d[0])));
                    self.plans.push((key, plan.clone()));
                    return Ok(plan);
                }
                // Planned for concrete shapes from now on.
                Err(_) => {
                    self.shapes = PlanShapes::Concrete;
                    self.plans.clear();
                }
            }
        }
        let key: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape.clone()).collect();
        if let Some(at) = self.plans.iter().position(|(k, _)| *k == key) {
            // Most recently run first.
            let hit = self.plans.remove(at);
            let plan = hit.1.clone();
            self.plans.insert(0, hit);
            return Ok(plan);
        }
        // The least recently run plan goes before the new one is built, so
        // no more than MAX_PLANS are ever alive at once.
        self.plans.truncate(MAX_PLANS - 1);
        let plan = self.build_plan(inputs, Free::None)?;
        self.plans.insert(0, (key, plan.clone()));
        Ok(plan)
    }

    /// A plan for these inputs' shapes, their rank-2 (token) inputs'
    /// sizes left free as `free` says.
    fn build_plan(&self, inputs: &[&HostTensor], free: Free) -> Result<Plan, RuntimeError> {
        let mut model = self.model.clone();
        let mode = self.mode;
        guarded(&self.session, "optimize", || {
            let (batch, length) = (model.symbols.sym("B"), model.symbols.sym("S"));
            for (i, t) in inputs.iter().enumerate() {
                let dt = match t.data {
                    HostData::F32(_) => f32::datum_type(),
                    HostData::I64(_) => i64::datum_type(),
                };
                let fact = match (free, t.shape.len()) {
                    (Free::BatchAndLength, 2) => {
                        InferenceFact::dt_shape(dt, [batch.to_dim(), length.to_dim()])
                    }
                    (Free::Length, 2) => InferenceFact::dt_shape(dt, [t.shape[0].to_dim(), length.to_dim()]),
                    _ => InferenceFact::dt_shape(dt, t.shape.clone()),
                };
                model = model
                    .with_input_fact(i, fact)
                    .map_err(tract_err("bind the input shapes of"))?;
            }
            let typed = match mode {
                PlanMode::Optimized => model.into_optimized(),
                PlanMode::Decluttered => model.into_typed().and_then(|m| m.into_decluttered()),
            }
            .map_err(tract_err("optimize"))?;
            typed.into_runnable().map_err(tract_err("plan"))
        })
    }

    /// Drops the cached plans (each holds tract's packed weights), e.g.
    /// before a benchmark plans the next shape.
    /// How many plans are kept, and for which shapes they are made now
    /// (a symbolic session that fell back says `Concrete`).
    pub fn plans_kept(&self) -> (usize, PlanShapes) {
        (self.plans.len(), self.shapes)
    }

    pub fn forget_plans(&mut self) {
        self.plans.clear();
    }

    /// Runs the model on the named tensors (extra tensors are ignored) and
    /// returns its outputs by name.
    pub fn run(&mut self, tensors: &NamedTensors) -> Result<NamedTensors, RuntimeError> {
        let inputs = self.bind(tensors)?;
        let plan = self.plan_for(&inputs)?;
        let values: TVec<TValue> = inputs.iter().map(|t| to_tract(t)).collect::<Result<_, _>>()?;
        let outputs = match self.run_values(&plan, values.clone()) {
            // A symbolic plan tract could build but not run at these sizes:
            // concrete plans from now on, this run again.
            Err(_) if self.shapes == PlanShapes::Symbolic => {
                self.shapes = PlanShapes::Concrete;
                self.plans.clear();
                let plan = self.plan_for(&inputs)?;
                self.run_values(&plan, values)?
            }
            done => done?,
        };
        outputs
            .iter()
            .zip(&self.output_names)
            .map(|(t, name)| {
                Ok((
                    name.clone(),
                    from_tract(t).map_err(tract_err("read the outputs of"))?,
                ))
            })
            .collect()
    }

    /// Runs a prepared plan once on prepared values (for benchmarks).
    pub fn run_plan(&self, plan: &Plan, values: TVec<TValue>) -> Result<(), RuntimeError> {
        self.run_values(plan, values).map(|_| ())
    }

    /// One whole run of `plan`, on the session's pool
    /// ([`Session::run_on_pool`]).
    fn run_values(&self, plan: &Plan, values: TVec<TValue>) -> Result<TVec<TValue>, RuntimeError> {
        self.session
            .catch_panic(|| self.session.run_on_pool(|| plan.run(values)))
            .map_err(|p| panicked("run", p))?
            .map_err(tract_err("run"))
    }

    /// The session this model runs on.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Converts inputs to tract values once (for benchmarks).
    pub fn prepare(&self, tensors: &NamedTensors) -> Result<(Vec<HostTensor>, TVec<TValue>), RuntimeError> {
        let inputs = self.bind(tensors)?;
        let values = inputs.iter().map(|t| to_tract(t)).collect::<Result<_, _>>()?;
        Ok((inputs.into_iter().cloned().collect(), values))
    }
}

fn to_tract(t: &HostTensor) -> Result<TValue, RuntimeError> {
    let tensor = match &t.data {
        HostData::F32(v) => Tensor::from_shape(&t.shape, v),
        HostData::I64(v) => Tensor::from_shape(&t.shape, v),
    };
    Ok(tensor.map_err(tract_err("take the inputs of"))?.into_tvalue())
}

fn from_tract(t: &Tensor) -> TractResult<HostTensor> {
    let shape = t.shape().to_vec();
    if t.datum_type().is_float() {
        let c = t.cast_to::<f32>()?;
        Ok(HostTensor::f32(
            shape,
            c.to_plain_array_view::<f32>()?.iter().copied().collect(),
        ))
    } else {
        let c = t.cast_to::<i64>()?;
        Ok(HostTensor::i64(
            shape,
            c.to_plain_array_view::<i64>()?.iter().copied().collect(),
        ))
    }
}
