//! The whole compile path as one library call, shared by every command,
//! as stages over one state:
//!
//! source → build → fp32 passes → equivalence check → precision → gate →
//! lowering → opset (and the write, by the caller).
//!
//! Each stage is a function with typed inputs and outputs. The graph and
//! what was serialized of it live in one [`Artifact`]: a stage that
//! changes the graph goes through it, which drops any bytes made before;
//! which stage's graph is the one written is decided once
//! ([`Plan::written_after`]). The CLI parses arguments into
//! [`PipelineOptions`] and prints the [`Report`]; it runs no stage itself.

mod alongside;
mod artifact;
mod build;
pub mod check;
mod imported_head;
mod imported_precision;
pub(crate) mod options;
mod precision;
mod report;

use std::time::Instant;

pub use artifact::Artifact;
pub use build::{
    build, build_source, load_config, model_spec, BuildOptions, Built, Source, SourceOptions, Sourced,
};
pub use imported_head::{sentence_head, Pooling, SentenceHead};
pub use options::{at_level, with_passes, OptionError, PassSelection, PipelineOptions};
pub use report::{Compiled, NodeCount, Report, StageTimes, WeightsReport};

use crate::config::BertConfig;
use crate::error::Error;
use crate::ir::Graph;
use crate::onnx::{resolve_opset, ExportOptions};
use crate::passes::{PassManager, PassRun};
use crate::quantize::{self, Form, Precision};
use crate::runtime::{OutputComparison, TractSession};
use crate::session::Session;

/// [`run`] on a config: the library's `compile`.
pub fn compile(
    session: &Session,
    config: &BertConfig,
    build: BuildOptions,
    opts: &PipelineOptions,
) -> Result<Compiled, Error> {
    run(session, Source::Config(config.clone(), build), opts)
}

/// The stages that change the graph, in order: the graph written is the
/// one after the last of them that runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Passes,
    Precision,
    Lowering,
}

/// The options turned into what runs: the pass managers, and which
/// stage's graph is written.
struct Plan {
    passes: PassManager,
    lowering: PassManager,
    /// The last stage that changes the graph.
    last: Stage,
}

impl Plan {
    fn new(opts: &PipelineOptions) -> Result<Plan, Error> {
        let passes = opts.pass_manager()?;
        let lowering = opts.lowering()?;
        let last = match (lowering.is_empty(), opts.precision.is_reduced()) {
            (false, _) => Stage::Lowering,
            (true, true) => Stage::Precision,
            (true, false) => Stage::Passes,
        };
        Ok(Plan {
            passes,
            lowering,
            last,
        })
    }

    /// Whether the graph after `stage` is the one written (no later stage
    /// changes it): the one place this is decided.
    fn written_after(&self, stage: Stage) -> bool {
        stage == self.last
    }
}

/// Runs every stage on `source`. The state the stages share is the
/// [`Artifact`]; what one stage hands the next (the graph before the
/// passes, the candidate the check loaded) is passed by value. tract runs
/// on `session`'s threads.
pub fn run(session: &Session, source: Source, opts: &PipelineOptions) -> Result<Compiled, Error> {
    check_options(opts)?;
    run_sourced(session, build_source(source)?, opts)
}

/// Refuses options that cannot run — a meaningless combination
/// ([`PipelineOptions::validate`]) or a pass name the registry lacks —
/// before the (possibly long) build.
pub fn check_options(opts: &PipelineOptions) -> Result<(), Error> {
    opts.validate()?;
    Plan::new(opts)?;
    Ok(())
}

/// [`run`] on a graph already built: the stages after the build. Several
/// forms of one model (an export folder's, `compile --target a,b`) are
/// each this call on a clone of one [`Sourced`], so the checkpoint is read
/// and the graph built once.
pub fn run_sourced(
    session: &Session,
    mut sourced: Sourced,
    opts: &PipelineOptions,
) -> Result<Compiled, Error> {
    opts.validate()?;
    let weights = WeightsReport::of(sourced.build.as_ref())?;
    let nodes_before = NodeCount::of(&sourced.graph);
    // onnxruntime's quantization in an imported file as the f32 it stands
    // for (its int8 contrib ops as their f32 ones), written in bertc's own
    // int8 form unless the user chose a precision; then its contrib ops as
    // standard ops: checkable in tract, seen by the passes, re-targetable.
    // (A dump shows the file as it is: this is the pipeline's first step,
    // not the import's.)
    let (effective, import_precision) = imported_precision::imported_precision(&mut sourced.graph, opts)?;
    let import_notes = crate::onnx::standard_forms(&mut sourced.graph)?;
    let opts = &effective;
    let plan = Plan::new(opts)?;
    let export = ExportOptions {
        opset: opts.opset,
        value_info: opts.value_info,
        external_data: opts.external_data,
    };
    let mut artifact = Artifact::new(sourced.graph, export, opts.output.clone());
    let mut times = StageTimes {
        load: sourced.load_time,
        build: sourced.build_time,
        ..Default::default()
    };

    let start = Instant::now();
    let (passes, reference) = fp32_passes(&mut artifact, &plan.passes, opts.opset)?;
    times.passes = start.elapsed();

    let start = Instant::now();
    // Only a graph the passes changed is checked.
    let checked = opts.check && !passes.is_empty();
    let (check, fp32) = match (checked, opts.precision.is_reduced()) {
        (false, false) => (vec![], None),
        (false, true) => {
            drop(reference);
            hold_weights_once(&mut artifact, None)?;
            (vec![], None)
        }
        (true, _) => {
            let written = plan.written_after(Stage::Passes);
            let (check, loaded) = equivalence_check(session, &mut artifact, reference, written)?;
            (check, Some(loaded))
        }
    };
    times.check = start.elapsed();

    let start = Instant::now();
    let (precision, accuracy) = match opts.precision.is_reduced() {
        true => {
            let written = plan.written_after(Stage::Precision);
            let reduced = precision::reduce(
                session,
                &mut artifact,
                &opts.precision,
                opts.target,
                fp32,
                written,
            )?;
            if opts.check {
                precision::gate(
                    &reduced.accuracy,
                    opts.precision.min_cosine,
                    opts.precision.min_row_cosine,
                )?;
            }
            (reduced.runs, Some(reduced.accuracy))
        }
        false => (vec![], None),
    };
    times.precision = start.elapsed();

    let start = Instant::now();
    let lowering = lowering_stage(&mut artifact, &plan.lowering)?;
    times.lowering = start.elapsed();

    let opset = resolve_opset(artifact.graph(), opts.opset)?;
    let (int8_kernel, form_note) = precision_notes(&opts.precision, opts.target);
    Ok(Compiled {
        artifact,
        spec: sourced.spec,
        ignored: sourced.ignored,
        report: Report {
            weights,
            passes,
            check,
            precision,
            accuracy,
            int8_kernel,
            form_note,
            import_notes,
            import_precision,
            lowering,
            nodes_before,
            opset,
            times,
        },
    })
}

/// The fp32 passes; also the graph before them (the check's reference).
fn fp32_passes(
    artifact: &mut Artifact,
    passes: &PassManager,
    opset: Option<i64>,
) -> Result<(Vec<PassRun>, Graph), Error> {
    let reference = artifact.graph().clone();
    let runs = artifact.change(|g| passes.run(g))?;
    // An explicit opset too low for a fused op fails here, before the checks.
    resolve_opset(artifact.graph(), opset)?;
    Ok((runs, reference))
}

/// Moves the graph's weights into tract's storage, so that each is held
/// once while tract loads the graph (the check, the precision stage);
/// with them those of `reference`, the clone from before the passes, which
/// shares their buffers (left out, it would keep the old buffers alive).
fn hold_weights_once(artifact: &mut Artifact, reference: Option<&mut Graph>) -> Result<(), Error> {
    artifact.change(|g| match reference {
        Some(reference) => crate::runtime::adopt_weights(&mut [reference, g]),
        None => crate::runtime::adopt_weights(&mut [g]),
    })?;
    Ok(())
}

/// The equivalence check of the passes' graph against `reference`, the
/// graph before them; `written` when no later stage changes it. Also the
/// candidate as loaded, the gate's f32 side.
fn equivalence_check(
    session: &Session,
    artifact: &mut Artifact,
    mut reference: Graph,
    written: bool,
) -> Result<(Vec<OutputComparison>, TractSession), Error> {
    hold_weights_once(artifact, Some(&mut reference))?;
    let inputs = check::check_inputs(&reference);
    let (comparisons, loaded) = check::check_candidate(session, &reference, artifact, written, &inputs)?;
    check::require_within(&comparisons, check::CHECK_ATOL)?;
    Ok((comparisons, loaded))
}

/// The target's lowering (onnxruntime's contrib ops), after the checks.
fn lowering_stage(artifact: &mut Artifact, lowering: &PassManager) -> Result<Vec<PassRun>, Error> {
    if lowering.is_empty() {
        return Ok(vec![]);
    }
    Ok(artifact.change(|g| lowering.run(g))?)
}

/// For int8: the CPU and the int8 kernel tract picks on it; for int8 and
/// fp16, a note when the form written is slower than fp32 in a runtime
/// bertc targets.
fn precision_notes(
    precision: &Precision,
    target: crate::passes::Target,
) -> (Option<(String, Option<String>)>, Option<String>) {
    // x86 without VNNI is where weight_bits_for_host asks for 7 bits.
    let saturates = crate::passes::weight_bits_for_host() == crate::passes::WeightBits::Seven;
    let int8_note = |static_quant| {
        quantize::kernel::int8_form_note(target, static_quant, precision.weight_bits.bits(), saturates)
    };
    match precision.form {
        Form::Fp32 => (None, None),
        Form::Fp16 => (None, Some(quantize::kernel::FP16_NOTE.to_string())),
        Form::Int8Dynamic => (Some(quantize::kernel::notice()), int8_note(false)),
        Form::Int8Static(_) => (Some(quantize::kernel::notice()), int8_note(true)),
    }
}
