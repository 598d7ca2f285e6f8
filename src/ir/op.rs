//! The closed set of operations bertc's IR knows, with typed attributes.
//!
//! Attributes that ONNX moved from attributes to inputs across opsets
//! (`axes` of ReduceMean and Unsqueeze) are attributes here; the emitter
//! writes the form the target opset wants. Inputs that may be computed at
//! run time (Reshape's shape, Slice's bounds) stay inputs.

use std::fmt;

use super::dtype::DType;
use super::tensor::Tensor;

/// Elementwise functions of one tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Erf,
    Tanh,
    Sqrt,
    Relu,
    Sigmoid,
    Neg,
    Exp,
    Log,
    Softplus,
    Abs,
    Reciprocal,
    /// Round half to even (ONNX Round), used to quantize activations.
    Round,
    /// Logical not of a bool tensor.
    Not,
}

/// Elementwise functions of two broadcast tensors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Max,
    Min,
    Equal,
    Less,
    Greater,
    GreaterOrEqual,
    LessOrEqual,
    /// Logical and/or of bool tensors.
    And,
    Or,
}

impl BinaryOp {
    /// Comparisons produce booleans; arithmetic keeps the input type.
    pub fn is_comparison(self) -> bool {
        matches!(
            self,
            BinaryOp::Equal
                | BinaryOp::Less
                | BinaryOp::Greater
                | BinaryOp::GreaterOrEqual
                | BinaryOp::LessOrEqual
        )
    }

    /// And/Or take and give booleans.
    pub fn is_logic(self) -> bool {
        matches!(self, BinaryOp::And | BinaryOp::Or)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// A graph input; its type is the node's single output type.
    Input,
    /// A constant (weights, scalars, shapes); emitted as an initializer.
    Constant(Tensor),
    Unary(UnaryOp),
    Binary(BinaryOp),
    /// numpy matmul semantics, batched over leading dims.
    MatMul,
    ReduceMean {
        axes: Vec<i64>,
        keepdims: bool,
    },
    /// Maximum over `axes` (activation ranges of int8 quantization).
    ReduceMax {
        axes: Vec<i64>,
        keepdims: bool,
    },
    /// Minimum over `axes`: with ReduceMax, the range max|x| = max(max x,
    /// -min x) without an Abs pass over the whole tensor.
    ReduceMin {
        axes: Vec<i64>,
        keepdims: bool,
    },
    /// Clamp to [min, max]. Inputs: x, min (optional), max (optional), scalars of x's type.
    Clip,
    /// Integer matrix product, numpy batching, i32 result. Inputs: a (i8 or
    /// u8), b (i8 or u8), a_zero_point (optional), b_zero_point (optional).
    MatMulInteger,
    /// u8 quantization with one scale and zero point computed at run time
    /// from the tensor's range (stretched to include 0). Input: x (f32).
    /// Outputs: y (u8, x's shape), y_scale (f32 scalar), y_zero_point (u8 scalar).
    DynamicQuantizeLinear,
    /// `saturate(round(x / scale) + zero_point)`. Inputs: x (f32), scale
    /// (scalar, or 1-D along `axis`), zero_point (optional, its type is the
    /// output's; u8 when absent).
    QuantizeLinear {
        axis: i64,
    },
    /// `(x - zero_point) · scale` as f32. Inputs: x (8-bit or i32), scale
    /// (scalar, or 1-D along `axis`), zero_point (optional, x's type).
    DequantizeLinear {
        axis: i64,
    },
    /// Quantized matrix product with a requantized 8-bit result. Inputs:
    /// a, a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point.
    QLinearMatMul,
    Softmax {
        axis: i64,
    },
    Transpose {
        perm: Vec<usize>,
    },
    /// Inputs: data, shape (int64; 0 copies the input dim, -1 is inferred).
    Reshape,
    Unsqueeze {
        axes: Vec<i64>,
    },
    Squeeze {
        axes: Vec<i64>,
    },
    /// Inputs: data, starts, ends, axes (optional), steps (optional).
    Slice,
    /// Inputs: data, indices.
    Gather {
        axis: i64,
    },
    Shape,
    Cast {
        to: DType,
    },
    Concat {
        axis: i64,
    },
    /// Inputs: condition, then, else.
    Where,
    Identity,
    /// Inputs: data, shape (int64): numpy broadcasting of data to shape.
    Expand,
    /// Inputs: start, limit, delta (scalars).
    Range,
    /// Running sum along the axis given as the second input (a scalar);
    /// RoBERTa-style position ids count the non-pad tokens with it.
    CumSum,
    /// GatherND with batch_dims 0. Inputs: data, indices (int64, last dim k).
    GatherNd,
    /// Input: shape (int64); output filled with `value` (one element).
    ConstantOfShape {
        value: Tensor,
    },
    /// Reshape to 2-D: [prod(dims[..axis]), prod(dims[axis..])].
    Flatten {
        axis: i64,
    },
    /// alpha·op(A)·op(B) + beta·C on 2-D A, B (C optional, broadcast).
    Gemm {
        alpha: f32,
        beta: f32,
        trans_a: bool,
        trans_b: bool,
    },
    /// ONNX LayerNormalization (opset 17). Inputs: x, scale, bias.
    LayerNorm {
        axis: i64,
        epsilon: f32,
    },
    /// ONNX Gelu (opset 20): exact (erf) or tanh approximation.
    Gelu {
        approximate: GeluApproximation,
    },
    /// ONNX Attention (opset 23) on 3-D [B, S, heads·d] Q, K, V with an
    /// additive float mask [B, 1, S, S]. Inputs: q, k, v, mask (optional).
    Attention {
        q_num_heads: usize,
        kv_num_heads: usize,
        /// Multiplies Q·Kᵀ; `None` is ONNX's default 1/√head_size.
        scale: Option<f32>,
    },
    Contrib(ContribOp),
}

/// onnxruntime's contrib ops (domain `com.microsoft`), emitted only for
/// `--target onnxruntime`: the forms its CPU kernels run fastest.
#[derive(Debug, Clone, PartialEq)]
pub enum ContribOp {
    /// LayerNorm(input + skip [+ bias]). Inputs: input, skip, gamma, beta, bias (optional).
    SkipLayerNorm { epsilon: f32 },
    /// Gelu(x + bias), exact. Inputs: x, bias.
    BiasGelu,
    /// Gelu(x + bias), tanh approximation. Inputs: x, bias.
    FastGelu,
    /// Word + position (0..S) + segment embeddings, then layer norm. Inputs:
    /// input_ids (i32), segment_ids (i32), word, position, segment tables,
    /// gamma, beta. Outputs: output, mask_index (i32 [B], unused by bertc).
    EmbedLayerNorm { epsilon: f32 },
    /// Self-attention with packed Q/K/V weights [H, 3H] and bias [3H], and a
    /// 2-D raw int32 mask [B, S] (right or left padding alike).
    /// Inputs: input, weights, bias, mask.
    Attention { num_heads: usize },
    /// `(A - a_zp)·(B - b_zp) · a_scale · b_scale + bias` on 8-bit A, B with
    /// an f32 result: what onnxruntime fuses MatMulInteger → Cast → Mul
    /// (→ Add) into. Inputs: A, B, a_scale, b_scale, a_zero_point?,
    /// b_zero_point?, bias?.
    MatMulIntegerToFloat,
    /// MatMulIntegerToFloat with A (f32) quantized to u8 inside the kernel,
    /// as DynamicQuantizeLinear does. Inputs: A, B, b_scale, b_zero_point?, bias?.
    DynamicQuantizeMatMul,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GeluApproximation {
    /// 0.5·x·(1 + erf(x/√2))
    None,
    /// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    Tanh,
}

impl Op {
    /// The ONNX domain of the op: "" (the standard one) or `com.microsoft`.
    pub fn domain(&self) -> &'static str {
        match self {
            Op::Contrib(_) => "com.microsoft",
            _ => "",
        }
    }

    /// The ONNX op_type (the kind without a domain prefix).
    pub fn op_type(&self) -> &'static str {
        match self {
            Op::Contrib(ContribOp::Attention { .. }) => "Attention",
            op => op.kind(),
        }
    }

    /// The op's name as it appears in dumps and reports.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "Input",
            Op::Constant(_) => "Constant",
            Op::Unary(u) => match u {
                UnaryOp::Erf => "Erf",
                UnaryOp::Tanh => "Tanh",
                UnaryOp::Sqrt => "Sqrt",
                UnaryOp::Relu => "Relu",
                UnaryOp::Sigmoid => "Sigmoid",
                UnaryOp::Neg => "Neg",
                UnaryOp::Exp => "Exp",
                UnaryOp::Log => "Log",
                UnaryOp::Softplus => "Softplus",
                UnaryOp::Abs => "Abs",
                UnaryOp::Reciprocal => "Reciprocal",
                UnaryOp::Round => "Round",
                UnaryOp::Not => "Not",
            },
            Op::Binary(b) => match b {
                BinaryOp::Add => "Add",
                BinaryOp::Sub => "Sub",
                BinaryOp::Mul => "Mul",
                BinaryOp::Div => "Div",
                BinaryOp::Pow => "Pow",
                BinaryOp::Equal => "Equal",
                BinaryOp::Less => "Less",
                BinaryOp::Greater => "Greater",
                BinaryOp::GreaterOrEqual => "GreaterOrEqual",
                BinaryOp::LessOrEqual => "LessOrEqual",
                BinaryOp::Max => "Max",
                BinaryOp::Min => "Min",
                BinaryOp::And => "And",
                BinaryOp::Or => "Or",
            },
            Op::MatMul => "MatMul",
            Op::ReduceMean { .. } => "ReduceMean",
            Op::ReduceMax { .. } => "ReduceMax",
            Op::ReduceMin { .. } => "ReduceMin",
            Op::Clip => "Clip",
            Op::MatMulInteger => "MatMulInteger",
            Op::DynamicQuantizeLinear => "DynamicQuantizeLinear",
            Op::QuantizeLinear { .. } => "QuantizeLinear",
            Op::DequantizeLinear { .. } => "DequantizeLinear",
            Op::QLinearMatMul => "QLinearMatMul",
            Op::Softmax { .. } => "Softmax",
            Op::Transpose { .. } => "Transpose",
            Op::Reshape => "Reshape",
            Op::Unsqueeze { .. } => "Unsqueeze",
            Op::Squeeze { .. } => "Squeeze",
            Op::Slice => "Slice",
            Op::Gather { .. } => "Gather",
            Op::Shape => "Shape",
            Op::Cast { .. } => "Cast",
            Op::Concat { .. } => "Concat",
            Op::Where => "Where",
            Op::Identity => "Identity",
            Op::Expand => "Expand",
            Op::Range => "Range",
            Op::CumSum => "CumSum",
            Op::GatherNd => "GatherND",
            Op::ConstantOfShape { .. } => "ConstantOfShape",
            Op::Flatten { .. } => "Flatten",
            Op::Gemm { .. } => "Gemm",
            Op::LayerNorm { .. } => "LayerNormalization",
            Op::Gelu { .. } => "Gelu",
            Op::Attention { .. } => "Attention",
            Op::Contrib(c) => match c {
                ContribOp::SkipLayerNorm { .. } => "SkipLayerNormalization",
                ContribOp::BiasGelu => "BiasGelu",
                ContribOp::FastGelu => "FastGelu",
                ContribOp::EmbedLayerNorm { .. } => "EmbedLayerNormalization",
                ContribOp::Attention { .. } => "com.microsoft.Attention",
                ContribOp::MatMulIntegerToFloat => "MatMulIntegerToFloat",
                ContribOp::DynamicQuantizeMatMul => "DynamicQuantizeMatMul",
            },
        }
    }

    /// Inputs the op takes: (required, maximum).
    pub fn arity(&self) -> (usize, usize) {
        match self {
            Op::Input | Op::Constant(_) => (0, 0),
            Op::Binary(_)
            | Op::MatMul
            | Op::Reshape
            | Op::Gather { .. }
            | Op::Expand
            | Op::GatherNd
            | Op::CumSum => (2, 2),
            Op::LayerNorm { .. } => (2, 3),
            Op::Clip => (1, 3),
            Op::MatMulInteger => (2, 4),
            Op::QuantizeLinear { .. } | Op::DequantizeLinear { .. } => (2, 3),
            Op::QLinearMatMul => (8, 8),
            Op::Contrib(ContribOp::MatMulIntegerToFloat) => (4, 7),
            Op::Contrib(ContribOp::DynamicQuantizeMatMul) => (3, 5),
            Op::Attention { .. } => (3, 4),
            Op::Contrib(ContribOp::SkipLayerNorm { .. }) => (4, 5),
            Op::Contrib(ContribOp::BiasGelu | ContribOp::FastGelu) => (2, 2),
            Op::Contrib(ContribOp::EmbedLayerNorm { .. }) => (7, 7),
            Op::Contrib(ContribOp::Attention { .. }) => (4, 4),
            Op::Slice => (3, 5),
            Op::Range => (3, 3),
            Op::Gemm { .. } => (2, 3),
            Op::Where => (3, 3),
            Op::Concat { .. } => (1, usize::MAX),
            _ => (1, 1),
        }
    }
}

/// The attributes part of a dump line, e.g. `{axes=[-1], keepdims=1}`.
impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind())?;
        match self {
            Op::ReduceMean { axes, keepdims }
            | Op::ReduceMax { axes, keepdims }
            | Op::ReduceMin { axes, keepdims } => {
                write!(f, "{{axes={axes:?}, keepdims={}}}", *keepdims as u8)
            }
            Op::Softmax { axis }
            | Op::Gather { axis }
            | Op::Concat { axis }
            | Op::QuantizeLinear { axis }
            | Op::DequantizeLinear { axis } => {
                write!(f, "{{axis={axis}}}")
            }
            Op::Transpose { perm } => write!(f, "{{perm={perm:?}}}"),
            Op::Unsqueeze { axes } | Op::Squeeze { axes } => write!(f, "{{axes={axes:?}}}"),
            Op::Cast { to } => write!(f, "{{to={to}}}"),
            Op::Flatten { axis } => write!(f, "{{axis={axis}}}"),
            Op::Contrib(ContribOp::SkipLayerNorm { epsilon } | ContribOp::EmbedLayerNorm { epsilon }) => {
                write!(f, "{{epsilon={epsilon:e}}}")
            }
            Op::Contrib(ContribOp::Attention { num_heads }) => write!(f, "{{num_heads={num_heads}}}"),
            Op::ConstantOfShape { value } => write!(
                f,
                "{{value={}:{}}}",
                value.small_values().unwrap_or_default(),
                value.dtype()
            ),
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => {
                write!(
                    f,
                    "{{alpha={alpha:e}, beta={beta:e}, trans_a={}, trans_b={}}}",
                    *trans_a as u8, *trans_b as u8
                )
            }
            Op::LayerNorm { axis, epsilon } => write!(f, "{{axis={axis}, epsilon={epsilon:e}}}"),
            Op::Gelu { approximate } => write!(f, "{{approximate={approximate:?}}}"),
            Op::Attention {
                q_num_heads,
                kv_num_heads,
                scale,
            } => {
                write!(f, "{{q_num_heads={q_num_heads}, kv_num_heads={kv_num_heads}")?;
                match scale {
                    Some(s) => write!(f, ", scale={s:e}}}"),
                    None => write!(f, "}}"),
                }
            }
            _ => Ok(()),
        }
    }
}
