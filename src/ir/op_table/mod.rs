//! The op table: one entry per IR op kind, as ONNX's operator schemas
//! (`onnx/defs/*/defs.cc`) define an op in one place — its ONNX name and
//! domain, the first opset that has it, its inputs (how many) and outputs,
//! its attributes (ONNX name ↔ IR field, type, default, and the opset from
//! which ONNX takes one as an input), and how the cost model counts it.
//!
//! Import finds an entry by (domain, op_type) and builds the op with the
//! entry's `read`; export, dumps, the verifier's arity check and the cost
//! model look the entry up from the op. [`Op::entry`] is the one `match`
//! from an op to its entry (and its attribute values): the compiler asks
//! for an arm when a variant is added; the entries themselves are defined
//! by `entries!`, which lists each where import searches (a group left out
//! of [`all`] is dead code, which the build refuses), and the tests below
//! walk every entry (import(export(op)) == op, arity, cost).
//!
//! Shape rules stay typed functions in `infer/`, dispatched by a match on
//! the op: as pointers in the entries, each rule would have to take the
//! op apart again to reach its typed attributes.

mod attrs;
mod contrib;
mod elementwise;
mod layout;
mod nn;
mod quant;
#[cfg(test)]
mod tests;

use std::fmt;

pub use attrs::{AsInput, AttrDefault, AttrInput, AttrSpec, AttrType, AttrValue, Attrs, OnnxNode};

use super::op::{BinaryOp, ContribOp, Op, UnaryOp};

/// The operator set an op belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// The standard one ("" or `ai.onnx`).
    Onnx,
    /// onnxruntime's contrib ops.
    Microsoft,
}

impl Domain {
    /// The domain as ONNX files spell it.
    pub fn name(self) -> &'static str {
        match self {
            Domain::Onnx => "",
            Domain::Microsoft => "com.microsoft",
        }
    }
}

/// How many inputs an op takes: `min` required ones (which must be
/// present), up to `max` with the optional ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arity {
    pub min: usize,
    pub max: usize,
}

const fn exactly(n: usize) -> Arity {
    Arity { min: n, max: n }
}

const fn between(min: usize, max: usize) -> Arity {
    Arity { min, max }
}

const fn at_least(min: usize) -> Arity {
    Arity { min, max: usize::MAX }
}

/// How the cost model counts an op: multiply-adds of the matrix products
/// (everything else is O(S·H) per layer, under 2 % at BERT-base sizes),
/// and which ops hold or present weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CostRule {
    /// No multiply-adds counted: elementwise, normalization, data movement.
    Uncounted,
    /// Holds a weight (a constant): not an activation.
    Weight,
    /// Presents its first input in another layout, dtype or precision
    /// (Transpose, Cast, Reshape, Unsqueeze, DequantizeLinear): a weight
    /// seen through it is still a weight. Counts no multiply-adds.
    WeightView,
    /// A matrix product of A (input 0) and B (input `b`): every output
    /// element sums over A's last dim; a linear layer when an operand is a
    /// weight, attention when both are activations.
    MatMul { b: usize },
    /// Gemm: |A| · N multiply-adds (M·K·N whichever way A is transposed).
    Gemm,
    /// ONNX Attention: Q·Kᵀ and probabilities·V over the key length.
    Attention,
    /// onnxruntime's packed Attention: the [H, 3H] projection, then attention.
    PackedAttention,
}

/// Builds the IR op from an ONNX node, or says why it has no IR form.
pub type Read = fn(&Attrs<'_>) -> Result<Op, String>;

/// One op kind's entry.
#[derive(Debug, Clone, Copy)]
pub struct OpSchema {
    /// The name in dumps, reports and errors: the op_type, prefixed with
    /// the domain where a contrib op shares a standard op's name.
    pub kind: &'static str,
    pub op_type: &'static str,
    /// `None` for what ONNX declares rather than computes (graph inputs).
    pub domain: Option<Domain>,
    /// The first opset of the domain that has the op (ONNX's since-version
    /// of its first version).
    pub since: i64,
    pub inputs: Arity,
    pub outputs: usize,
    /// In the order dumps show them; export writes those that later opsets
    /// move to inputs after the others (the order bertc's files have).
    pub attributes: &'static [AttrSpec],
    pub read: Read,
    pub cost: CostRule,
}

const fn onnx(op_type: &'static str, since: i64, inputs: Arity, cost: CostRule, read: Read) -> OpSchema {
    OpSchema {
        kind: op_type,
        op_type,
        domain: Some(Domain::Onnx),
        since,
        inputs,
        outputs: 1,
        attributes: &[],
        read,
        cost,
    }
}

const fn microsoft(op_type: &'static str, inputs: Arity, cost: CostRule, read: Read) -> OpSchema {
    OpSchema {
        domain: Some(Domain::Microsoft),
        ..onnx(op_type, 1, inputs, cost, read)
    }
}

impl OpSchema {
    const fn with_attributes(self, attributes: &'static [AttrSpec]) -> OpSchema {
        OpSchema { attributes, ..self }
    }

    const fn with_outputs(self, outputs: usize) -> OpSchema {
        OpSchema { outputs, ..self }
    }

    const fn with_kind(self, kind: &'static str) -> OpSchema {
        OpSchema { kind, ..self }
    }

    const fn declared(self) -> OpSchema {
        OpSchema { domain: None, ..self }
    }

    /// Whether `inputs` fit the arity: at most `max`, the first `min` present.
    pub fn check_inputs<T>(&self, inputs: &[Option<T>]) -> Result<(), String> {
        let Arity { min, max } = self.inputs;
        if inputs.len() > max {
            return Err(format!("takes at most {max} inputs, got {}", inputs.len()));
        }
        if inputs.len() < min {
            return Err(format!("needs {min} inputs, got {}", inputs.len()));
        }
        if let Some(slot) = inputs[..min].iter().position(Option::is_none) {
            return Err(format!("needs its first {min} inputs, and input {slot} is empty"));
        }
        Ok(())
    }

    /// How many of an ONNX node's `listed` inputs are the IR op's operands
    /// at `opset`: inputs that stand for attributes are read as attributes.
    pub fn operands_at(&self, opset: i64, listed: usize) -> usize {
        attrs::operand_count(self.attributes, opset, listed)
    }

    /// The default-domain opset a file with this op needs at least.
    pub fn min_opset(&self) -> i64 {
        match self.domain {
            Some(Domain::Onnx) => self.since,
            _ => 0,
        }
    }
}

/// Declares a group's entries as statics and lists them in `ALL`: an
/// entry cannot exist without import finding it.
macro_rules! entries {
    ($($(#[$doc:meta])* $name:ident = $entry:expr;)+) => {
        $($(#[$doc])* pub(super) static $name: super::OpSchema = $entry;)+
        /// Every entry of this group.
        pub(super) static ALL: &[&super::OpSchema] = &[$(&$name),+];
    };
}
use entries;

/// Every entry.
pub fn all() -> impl Iterator<Item = &'static OpSchema> {
    [elementwise::ALL, layout::ALL, nn::ALL, quant::ALL, contrib::ALL]
        .into_iter()
        .flatten()
        .copied()
}

/// The entry of an ONNX node's op, if the IR has the op.
pub fn find(domain: Domain, op_type: &str) -> Option<&'static OpSchema> {
    all().find(|s| s.domain == Some(domain) && s.op_type == op_type)
}

/// What import says of an op the table lacks.
pub fn not_supported(domain: Domain, op_type: &str) -> String {
    match domain {
        Domain::Onnx => format!("op `{op_type}` is not supported by bertc's IR"),
        Domain::Microsoft => format!("com.microsoft op `{op_type}` is not supported by bertc's IR"),
    }
}

/// An op's attribute values, one per entry attribute (`None`: not given).
pub type AttrValues<'a> = Vec<Option<AttrValue<'a>>>;

fn int(i: i64) -> Option<AttrValue<'static>> {
    Some(AttrValue::Int(i))
}

fn count(n: usize) -> Option<AttrValue<'static>> {
    Some(AttrValue::Int(n as i64))
}

fn flag(b: bool) -> Option<AttrValue<'static>> {
    Some(AttrValue::Flag(b))
}

/// onnxruntime's (Q)Attention attributes: num_heads, scale,
/// mask_filter_value (the last two written only when set).
fn attention_attrs(
    num_heads: usize,
    scale: Option<f32>,
    mask_filter_value: Option<f32>,
) -> AttrValues<'static> {
    vec![
        count(num_heads),
        scale.map(AttrValue::Float),
        mask_filter_value.map(AttrValue::Float),
    ]
}

fn float(x: f32) -> Option<AttrValue<'static>> {
    Some(AttrValue::Float(x))
}

fn ints(v: &[i64]) -> Option<AttrValue<'_>> {
    Some(AttrValue::Ints(v))
}

impl Op {
    /// The op's entry and its attribute values: the one match from an op
    /// kind to the table.
    pub fn entry(&self) -> (&'static OpSchema, AttrValues<'_>) {
        use {contrib as c, elementwise as e, layout as l};
        let none = Vec::new();
        match self {
            Op::Input => (&l::INPUT, none),
            Op::Constant(_) => (&l::CONSTANT, none),
            Op::Unary(u) => (
                match u {
                    UnaryOp::Erf => &e::ERF,
                    UnaryOp::Tanh => &e::TANH,
                    UnaryOp::Sqrt => &e::SQRT,
                    UnaryOp::Relu => &e::RELU,
                    UnaryOp::Sigmoid => &e::SIGMOID,
                    UnaryOp::Neg => &e::NEG,
                    UnaryOp::Exp => &e::EXP,
                    UnaryOp::Log => &e::LOG,
                    UnaryOp::Softplus => &e::SOFTPLUS,
                    UnaryOp::Abs => &e::ABS,
                    UnaryOp::Reciprocal => &e::RECIPROCAL,
                    UnaryOp::Cos => &e::COS,
                    UnaryOp::Sin => &e::SIN,
                    UnaryOp::Round => &e::ROUND,
                    UnaryOp::Not => &e::NOT,
                },
                none,
            ),
            Op::Binary(b) => (
                match b {
                    BinaryOp::Add => &e::ADD,
                    BinaryOp::Sub => &e::SUB,
                    BinaryOp::Mul => &e::MUL,
                    BinaryOp::Div => &e::DIV,
                    BinaryOp::Pow => &e::POW,
                    BinaryOp::Max => &e::MAX,
                    BinaryOp::Min => &e::MIN,
                    BinaryOp::Equal => &e::EQUAL,
                    BinaryOp::Less => &e::LESS,
                    BinaryOp::Greater => &e::GREATER,
                    BinaryOp::GreaterOrEqual => &e::GREATER_OR_EQUAL,
                    BinaryOp::LessOrEqual => &e::LESS_OR_EQUAL,
                    BinaryOp::And => &e::AND,
                    BinaryOp::Or => &e::OR,
                },
                none,
            ),
            Op::Clip => (&e::CLIP, none),
            Op::Where => (&e::WHERE, none),
            Op::MatMul => (&nn::MATMUL, none),
            Op::ReduceMean { axes, keepdims } => (&nn::REDUCE_MEAN, vec![ints(axes), flag(*keepdims)]),
            Op::ReduceSum { axes, keepdims } => (&nn::REDUCE_SUM, vec![ints(axes), flag(*keepdims)]),
            Op::ReduceL2 { axes, keepdims } => (&nn::REDUCE_L2, vec![ints(axes), flag(*keepdims)]),
            Op::ReduceMax { axes, keepdims } => (&nn::REDUCE_MAX, vec![ints(axes), flag(*keepdims)]),
            Op::ReduceMin { axes, keepdims } => (&nn::REDUCE_MIN, vec![ints(axes), flag(*keepdims)]),
            Op::Softmax { axis } => (&nn::SOFTMAX, vec![int(*axis)]),
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => (
                &nn::GEMM,
                vec![float(*alpha), float(*beta), flag(*trans_a), flag(*trans_b)],
            ),
            Op::LayerNorm { axis, epsilon } => (&nn::LAYER_NORM, vec![int(*axis), float(*epsilon)]),
            Op::RmsNorm { axis, epsilon } => (&nn::RMS_NORM, vec![int(*axis), float(*epsilon)]),
            Op::Gelu { approximate } => (&nn::GELU, vec![Some(AttrValue::Approximation(*approximate))]),
            Op::Attention {
                q_num_heads,
                kv_num_heads,
                scale,
            } => (
                &nn::ATTENTION,
                vec![
                    count(*q_num_heads),
                    count(*kv_num_heads),
                    scale.map(AttrValue::Float),
                ],
            ),
            Op::RotaryEmbedding { num_heads } => (&nn::ROTARY_EMBEDDING, vec![count(*num_heads)]),
            Op::MatMulInteger => (&quant::MATMUL_INTEGER, none),
            Op::DynamicQuantizeLinear => (&quant::DYNAMIC_QUANTIZE_LINEAR, none),
            Op::QuantizeLinear { axis } => (&quant::QUANTIZE_LINEAR, vec![int(*axis)]),
            Op::DequantizeLinear { axis } => (&quant::DEQUANTIZE_LINEAR, vec![int(*axis)]),
            Op::QLinearMatMul => (&quant::QLINEAR_MATMUL, none),
            Op::Transpose { perm } => (&l::TRANSPOSE, vec![Some(AttrValue::Indices(perm))]),
            Op::Reshape => (&l::RESHAPE, none),
            Op::Unsqueeze { axes } => (&l::UNSQUEEZE, vec![ints(axes)]),
            Op::Squeeze { axes } => (&l::SQUEEZE, vec![ints(axes)]),
            Op::Slice => (&l::SLICE, none),
            Op::Gather { axis } => (&l::GATHER, vec![int(*axis)]),
            Op::GatherElements { axis } => (&l::GATHER_ELEMENTS, vec![int(*axis)]),
            Op::GatherNd => (&l::GATHER_ND, none),
            Op::NonZero => (&l::NON_ZERO, none),
            Op::Shape => (&l::SHAPE, none),
            Op::Cast { to } => (&l::CAST, vec![Some(AttrValue::DType(*to))]),
            Op::Concat { axis } => (&l::CONCAT, vec![int(*axis)]),
            Op::Identity => (&l::IDENTITY, none),
            Op::Expand => (&l::EXPAND, none),
            Op::Range => (&l::RANGE, none),
            Op::CumSum => (&l::CUM_SUM, none),
            Op::ConstantOfShape { value } => (&l::CONSTANT_OF_SHAPE, vec![Some(AttrValue::Tensor(value))]),
            Op::Flatten { axis } => (&l::FLATTEN, vec![int(*axis)]),
            Op::Contrib(op) => match op {
                ContribOp::SkipLayerNorm { epsilon } => (&c::SKIP_LAYER_NORM, vec![float(*epsilon)]),
                ContribOp::BiasGelu => (&c::BIAS_GELU, none),
                ContribOp::FastGelu => (&c::FAST_GELU, none),
                ContribOp::EmbedLayerNorm { epsilon } => (&c::EMBED_LAYER_NORM, vec![float(*epsilon)]),
                ContribOp::Attention {
                    num_heads,
                    scale,
                    mask_filter_value,
                } => (
                    &c::ATTENTION,
                    attention_attrs(*num_heads, *scale, *mask_filter_value),
                ),
                ContribOp::MatMulIntegerToFloat => (&c::MATMUL_INTEGER_TO_FLOAT, none),
                ContribOp::DynamicQuantizeMatMul => (&c::DYNAMIC_QUANTIZE_MATMUL, none),
                ContribOp::QAttention {
                    num_heads,
                    scale,
                    mask_filter_value,
                } => (
                    &c::Q_ATTENTION,
                    attention_attrs(*num_heads, *scale, *mask_filter_value),
                ),
                ContribOp::QEmbedLayerNorm { epsilon } => (&c::Q_EMBED_LAYER_NORM, vec![float(*epsilon)]),
            },
        }
    }

    /// The op's entry in the table.
    pub fn schema(&self) -> &'static OpSchema {
        self.entry().0
    }

    /// The op's name as it appears in dumps and reports.
    pub fn kind(&self) -> &'static str {
        self.schema().kind
    }

    /// The ONNX op_type (the kind without a domain prefix).
    pub fn op_type(&self) -> &'static str {
        self.schema().op_type
    }
}

/// The kind and its attributes as a dump line shows them, e.g.
/// `ReduceMean{axes=[-1], keepdims=1}`.
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (schema, values) = self.entry();
        f.write_str(schema.kind)?;
        let shown: Vec<String> = schema
            .attributes
            .iter()
            .zip(&values)
            .filter_map(|(spec, value)| value.map(|v| format!("{}={v}", spec.field)))
            .collect();
        if !shown.is_empty() {
            write!(f, "{{{}}}", shown.join(", "))?;
        }
        Ok(())
    }
}
