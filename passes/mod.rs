//! Graph passes: the [`Pass`] trait, the [`PassManager`] that runs them and
//! verifies the graph after each, and one file per pass.
//!
//! Mounted into the library as `bertc::passes` (see `src/lib.rs`): passes
//! are part of the compiler core but live at the top level so that each
//! rewrite is easy to find and review. The invariants every pass keeps are
//! in `passes/RULES.md`.

mod add_bias_after_residual;
mod attention_heads;
mod attention_mask;
mod band_mask;
mod block_sliding_attention;
mod dead_node_elimination;
mod decompose_attention;
mod eliminate_common_subexpressions;
mod flatten_shared_gathers;
mod fold_constants;
mod folded_heads;
mod fuse_attention;
mod fuse_bias_gelu;
mod fuse_embed_layer_norm;
mod fuse_gelu;
mod fuse_layer_norm;
mod fuse_skip_layer_norm;
mod linear_sites;
mod lower_attention_onnxruntime;
mod lower_rotary_onnxruntime;
mod merge_qkv;
mod pack_tokens;
mod packed_heads;
mod pattern;
mod prune_to_first_token;
mod quantize_attention;
mod quantize_int8;
mod quantize_int8_onnxruntime;
mod quantize_int8_qdq;
mod quantize_relative_products;
mod query_key_mask;
mod remove_identities;
mod rotary;
mod rotate_half;
mod scalar_value;
mod score_terms;
mod split_packed_linear;
mod to_fp16;
mod token_indices;

use std::time::{Duration, Instant};

use crate::ir::{verify, Graph, IrError};

pub use add_bias_after_residual::AddBiasAfterResidual;
pub use block_sliding_attention::{BlockSlidingAttention, MAX_BLOCKED_REACH};
pub use dead_node_elimination::DeadNodeElimination;
pub(crate) use decompose_attention::decompose_node as decompose_attention_node;
pub use decompose_attention::DecomposeAttention;
pub use eliminate_common_subexpressions::EliminateCommonSubexpressions;
pub use flatten_shared_gathers::FlattenSharedGathers;
pub use fold_constants::FoldConstants;
pub use fuse_attention::FuseAttention;
pub use fuse_bias_gelu::FuseBiasGelu;
pub use fuse_embed_layer_norm::FuseEmbedLayerNorm;
pub use fuse_gelu::FuseGelu;
pub use fuse_layer_norm::FuseLayerNorm;
pub use fuse_skip_layer_norm::FuseSkipLayerNorm;
pub use lower_attention_onnxruntime::LowerAttentionOnnxruntime;
pub use lower_rotary_onnxruntime::LowerRotaryOnnxruntime;
pub use merge_qkv::MergeQkv;
pub use pack_tokens::{PackTokens, PACKED_METADATA};
pub use prune_to_first_token::PruneToFirstToken;
pub use quantize_attention::{attention_inputs, QuantizeAttention};
pub use quantize_int8::{
    linear_inputs, quantize_weight, stored_bytes, ActivationScales, QuantizeInt8, WeightGranularity,
};
pub use quantize_int8_onnxruntime::{
    linear_layer_names, per_token_inputs, quantizable_linears, quantize_weight_s8, smoothing_factors,
    weight_bits_for_cpu, weight_bits_for_host, PerToken, QuantizeInt8Onnxruntime, WeightBits,
    OUTLIER_CHANNEL_SPREAD, OUTLIER_ROW_SPREAD, SMOOTHING_ALPHA_ONNXRUNTIME,
};
pub use quantize_int8_qdq::{outlier_channels, QuantizeInt8Qdq, OUTLIER_RANGE_FACTOR};
pub use quantize_relative_products::{relative_product_names, QuantizeRelativeProducts};
pub use remove_identities::RemoveIdentities;
pub use split_packed_linear::SplitPackedLinear;
pub use to_fp16::ToFp16;

/// What one run of a pass changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PassReport {
    /// Pattern instances found and rewritten.
    pub matches: usize,
    pub nodes_added: usize,
    pub nodes_removed: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum PassError {
    #[error("unknown pass `{name}`; valid passes: {}", .valid.join(", "))]
    Unknown { name: String, valid: Vec<&'static str> },
    #[error("pass `{pass}` left an invalid graph: {source}")]
    Verify {
        pass: &'static str,
        #[source]
        source: IrError,
    },
    #[error("pass `{pass}` failed: {source}")]
    Rewrite {
        pass: &'static str,
        #[source]
        source: IrError,
    },
}

/// A graph rewrite: matches a pattern, rewrites it, reports what it changed,
/// and leaves the graph valid. Passes never print; the manager reports.
pub trait Pass {
    /// The pass's name: its file name and the name `--passes` takes.
    fn name(&self) -> &'static str;
    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError>;
}

/// One pass run, as the manager records it.
#[derive(Debug, Clone)]
pub struct PassRun {
    pub pass: &'static str,
    pub report: PassReport,
    pub nodes_before: usize,
    pub nodes_after: usize,
    pub elapsed: Duration,
}

type MakePass = fn() -> Box<dyn Pass>;

/// Every pass `--passes` can name, with its constructor: the one table of
/// pass names. [`pass_by_name`] and [`all_pass_names`] read it, and the
/// level and target lists below are checked against it when the crate
/// compiles. (Its order is the order `--passes`' error lists them in.)
const REGISTRY: [(&str, MakePass); 20] = [
    ("fold_constants", || Box::new(FoldConstants)),
    ("eliminate_common_subexpressions", || {
        Box::new(EliminateCommonSubexpressions)
    }),
    ("remove_identities", || Box::new(RemoveIdentities)),
    ("dead_node_elimination", || Box::new(DeadNodeElimination)),
    ("fuse_layer_norm", || Box::new(FuseLayerNorm)),
    ("fuse_gelu", || Box::new(FuseGelu)),
    ("fuse_attention", || Box::new(FuseAttention)),
    ("block_sliding_attention", || Box::new(BlockSlidingAttention)),
    ("fuse_embed_layer_norm", || Box::new(FuseEmbedLayerNorm)),
    ("fuse_skip_layer_norm", || Box::new(FuseSkipLayerNorm)),
    ("add_bias_after_residual", || Box::new(AddBiasAfterResidual)),
    ("fuse_bias_gelu", || Box::new(FuseBiasGelu)),
    ("lower_attention_onnxruntime", || {
        Box::new(LowerAttentionOnnxruntime)
    }),
    ("lower_rotary_onnxruntime", || Box::new(LowerRotaryOnnxruntime)),
    ("split_packed_linear", || Box::new(SplitPackedLinear)),
    ("merge_qkv", || Box::new(MergeQkv)),
    ("prune_to_first_token", || Box::new(PruneToFirstToken)),
    ("decompose_attention", || Box::new(DecomposeAttention)),
    ("flatten_shared_gathers", || Box::new(FlattenSharedGathers)),
    ("pack_tokens", || Box::new(PackTokens)),
];

/// The pass `--passes` names `name`.
pub fn pass_by_name(name: &str) -> Result<Box<dyn Pass>, PassError> {
    match REGISTRY.iter().find(|(n, _)| *n == name) {
        Some((_, make)) => Ok(make()),
        None => Err(PassError::Unknown {
            name: name.into(),
            valid: all_pass_names(),
        }),
    }
}

pub fn all_pass_names() -> Vec<&'static str> {
    REGISTRY.iter().map(|(n, _)| *n).collect()
}

/// Whether every name in `names` is in [`REGISTRY`] (at compile time: the
/// lists below fail the build if one names no pass).
const fn registered(names: &[&str]) -> bool {
    let mut i = 0;
    while i < names.len() {
        let mut found = false;
        let mut j = 0;
        while j < REGISTRY.len() {
            found |= same(names[i].as_bytes(), REGISTRY[j].0.as_bytes());
            j += 1;
        }
        if !found {
            return false;
        }
        i += 1;
    }
    true
}

const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// -O1: clean-ups that keep every op as it is.
const O1: [&str; 4] = [
    "fold_constants",
    "eliminate_common_subexpressions",
    "remove_identities",
    "dead_node_elimination",
];

/// What -O2 adds to -O1: the fusions.
const O2_FUSIONS: [&str; 7] = [
    "fuse_layer_norm",
    "fuse_gelu",
    "fuse_attention",
    // Sweep the fusions' leftovers here, so that the report credits them
    // to this pass, not to the pruning (which needs a clean graph and would
    // sweep them itself).
    "dead_node_elimination",
    "prune_to_first_token",
    // After the pruning, which recognizes a last layer's attention by its
    // fused form (a pruned layer has one query: nothing left to block).
    "block_sliding_attention",
    "dead_node_elimination",
];

/// -O2's attention written decomposed (every target but onnxruntime): in
/// the passes, or in OpenVINO's lowering under `--quantize-attention`.
pub const DECOMPOSED_ATTENTION: [&str; 2] = ["decompose_attention", "dead_node_elimination"];

/// onnxruntime's lowering after -O2. Not fuse_skip_layer_norm:
/// onnxruntime's SkipLayerNormalization CPU kernel is scalar, 14x slower
/// than its LayerNormalization (see add_bias_after_residual, which also
/// keeps onnxruntime's own optimizer from fusing it).
const ONNXRUNTIME_LOWERING: [&str; 7] = [
    "fuse_embed_layer_norm",
    "add_bias_after_residual",
    "fuse_bias_gelu",
    "lower_attention_onnxruntime",
    "lower_rotary_onnxruntime",
    "split_packed_linear",
    "dead_node_elimination",
];

/// OpenVINO's forms after -O2 (see `flatten_shared_gathers`).
const OPENVINO_FORMS: [&str; 2] = ["flatten_shared_gathers", "dead_node_elimination"];

const _: () = assert!(
    registered(&O1)
        && registered(&O2_FUSIONS)
        && registered(&DECOMPOSED_ATTENTION)
        && registered(&OPENVINO_FORMS)
        && registered(&ONNXRUNTIME_LOWERING),
    "a level or target list names a pass the registry lacks"
);

/// Optimization levels, as `-O0`, `-O1`, `-O2` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    /// Nothing: the graph exactly as built.
    O0,
    /// Clean-ups that keep every op as it is.
    O1,
    /// O1 plus the fusions (layer norm, GELU, attention). The default.
    O2,
}

impl Level {
    /// The level `-O N` names; `None` beyond 2.
    pub fn from_number(n: u8) -> Option<Level> {
        match n {
            0 => Some(Level::O0),
            1 => Some(Level::O1),
            2 => Some(Level::O2),
            _ => None,
        }
    }

    pub fn number(self) -> u8 {
        match self {
            Level::O0 => 0,
            Level::O1 => 1,
            Level::O2 => 2,
        }
    }
}

/// The pass names of a level's pipeline, in order.
pub fn level_passes(level: Level) -> Vec<&'static str> {
    match level {
        Level::O0 => vec![],
        Level::O1 => O1.to_vec(),
        Level::O2 => [O1.as_slice(), &O2_FUSIONS].concat(),
    }
}

/// Runs passes in order and verifies the graph after each one when
/// verification is on (always in debug builds and tests).
pub struct PassManager {
    passes: Vec<Box<dyn Pass>>,
    verify: bool,
}

// Derivable only in release builds, where `cfg!(debug_assertions)` is the
// default `false`: spelled out so that verification's default is visible.
#[allow(clippy::derivable_impls)]
impl Default for PassManager {
    fn default() -> Self {
        PassManager {
            passes: Vec::new(),
            verify: cfg!(debug_assertions),
        }
    }
}

impl PassManager {
    pub fn new() -> PassManager {
        PassManager::default()
    }

    /// Whether it runs no pass at all (then it cannot change a graph).
    pub fn is_empty(&self) -> bool {
        self.passes.is_empty()
    }

    /// The names of its passes, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.passes.iter().map(|p| p.name()).collect()
    }

    /// A manager for a comma-separated list of pass names.
    pub fn from_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<PassManager, PassError> {
        let mut pm = PassManager::new();
        for n in names {
            pm.passes.push(pass_by_name(n.trim())?);
        }
        Ok(pm)
    }

    pub fn with(mut self, pass: impl Pass + 'static) -> PassManager {
        self.passes.push(Box::new(pass));
        self
    }

    /// Forces verification after each pass on (or off) regardless of build.
    pub fn verify_each(mut self, on: bool) -> PassManager {
        self.verify = on;
        self
    }

    pub fn run(&self, g: &mut Graph) -> Result<Vec<PassRun>, PassError> {
        let mut runs = Vec::with_capacity(self.passes.len());
        for pass in &self.passes {
            let nodes_before = g.node_count();
            let start = Instant::now();
            let report = pass.run(g).map_err(|source| PassError::Rewrite {
                pass: pass.name(),
                source,
            })?;
            let elapsed = start.elapsed();
            if self.verify {
                verify(g).map_err(|source| PassError::Verify {
                    pass: pass.name(),
                    source,
                })?;
            }
            runs.push(PassRun {
                pass: pass.name(),
                report,
                nodes_before,
                nodes_after: g.node_count(),
                elapsed,
            });
        }
        Ok(runs)
    }
}

/// Which runtime the fused forms are chosen for (`--target`).
///
/// At -O2 every target recognizes attention (`fuse_attention`); the form
/// emitted is the one measured fastest in that runtime (BERT-base, B=1,
/// S=128 and 512, 2 threads, `scripts/runtimes.py`): decomposed
/// (`decompose_attention`) for tract, OpenVINO and the portable file that
/// runs in all of them — tract's fused Attention-23 kernel was 1.24× slower
/// than -O0 at S=512, onnxruntime and OpenVINO gained nothing from it — and
/// com.microsoft Attention for onnxruntime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Standard ONNX ops only (LayerNormalization-17, Gelu-20, attention as
    /// MatMul/Softmax): runs in tract, onnxruntime and OpenVINO alike.
    Portable,
    /// onnxruntime's contrib ops where they are faster: EmbedLayerNormalization,
    /// BiasGelu/FastGelu and com.microsoft Attention with packed Q/K/V (not
    /// SkipLayerNormalization: see `add_bias_after_residual`). tract cannot
    /// run these.
    Onnxruntime,
    /// The forms tract runs fastest: attention decomposed; layer norm / GELU
    /// fusions are neutral (tract detects the decomposed forms itself); int8
    /// in the symmetric per-token form.
    Tract,
    /// OpenVINO: the portable fp32 forms but DeBERTa's gathers, flat
    /// (`flatten_shared_gathers`: its GatherElements is a reference
    /// kernel); int8 as QuantizeLinear / DequantizeLinear pairs, which it
    /// runs as int8 kernels.
    Openvino,
}

impl Target {
    /// The name `--target` takes.
    pub fn name(self) -> &'static str {
        match self {
            Target::Portable => "portable",
            Target::Onnxruntime => "onnxruntime",
            Target::Tract => "tract",
            Target::Openvino => "openvino",
        }
    }
}

/// The passes that follow a level's pipeline for a target.
pub fn target_passes(target: Target, level: Level) -> Vec<&'static str> {
    match (target, level) {
        (_, Level::O0 | Level::O1) | (Target::Portable, _) => vec![],
        (Target::Onnxruntime, Level::O2) => ONNXRUNTIME_LOWERING.to_vec(),
        (Target::Tract | Target::Openvino, Level::O2) => vec![],
    }
}

/// What `--packed` adds after a level's pipeline: per-token layers on the
/// real tokens (see `pack_tokens`).
const PACKING: [&str; 2] = ["pack_tokens", "dead_node_elimination"];

const _: () = assert!(
    registered(&PACKING),
    "the packing list names a pass the registry lacks"
);

/// The level pipeline of a packed graph for a target: as [`pipeline`],
/// then `pack_tokens`. Attention is written decomposed for every target,
/// onnxruntime's too: its packed com.microsoft Attention projects Q, K and
/// V itself, on every padded position, which is what packing removes.
pub fn packed_pipeline(level: Level, target: Target) -> Vec<&'static str> {
    let mut passes = pipeline(level, target);
    if level == Level::O2 && target == Target::Onnxruntime {
        passes.extend(DECOMPOSED_ATTENTION);
    }
    passes.extend(PACKING);
    passes
}

/// The level pipeline for a target: at -O2, the attention every layer's
/// fusion recognized is written decomposed for every target but
/// onnxruntime (which lowers it to its packed contrib op after the checks;
/// OpenVINO's `--quantize-attention` decomposes it in the lowering too, see
/// `PipelineOptions::pass_manager`).
/// It runs last, after `prune_to_first_token` has sliced the fused op, and
/// before the equivalence check, which covers it.
pub fn pipeline(level: Level, target: Target) -> Vec<&'static str> {
    let mut passes = fused_attention_pipeline(level, target);
    if level == Level::O2 && target != Target::Onnxruntime {
        passes.extend(DECOMPOSED_ATTENTION);
    }
    passes
}

/// [`pipeline`] with -O2's attention left fused: the level's passes and
/// the target's own forms (OpenVINO's gathers).
pub fn fused_attention_pipeline(level: Level, target: Target) -> Vec<&'static str> {
    let mut passes = level_passes(level);
    if level == Level::O2 && target == Target::Openvino {
        passes.extend(OPENVINO_FORMS);
    }
    passes
}

#[cfg(test)]
mod tests {
    /// The registry's name of each pass is the pass's own (`--passes`,
    /// reports and level lists all say the same name).
    #[test]
    fn each_registered_name_is_its_pass_s_own() {
        for (name, make) in super::REGISTRY {
            assert_eq!(make().name(), name);
        }
    }
}
