//! The closed set of operations bertc's IR knows, with typed attributes.
//!
//! Attributes that ONNX moved from attributes to inputs across opsets
//! (`axes` of ReduceMean and Unsqueeze) are attributes here; the emitter
//! writes the form the target opset wants. Inputs that may be computed at
//! run time (Reshape's shape, Slice's bounds) stay inputs.
//!
//! What each op is in ONNX (name, domain, arity, attributes, first opset,
//! cost) is its entry in the op table (`op_table`), reached by `Op::entry`.

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
    /// Rotary position embeddings' angles (cos and sin of position · frequency).
    Cos,
    Sin,
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
    /// Sum over `axes`: mean pooling's sums of token vectors and of the
    /// mask, and Optimum's mask index (real tokens per row, in int32).
    ReduceSum {
        axes: Vec<i64>,
        keepdims: bool,
    },
    /// Euclidean norm `√Σx²` over `axes` (sentence-transformers' Normalize).
    ReduceL2 {
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
    /// ONNX GatherElements: `out[…, i, …] = data[…, indices[…, i, …], …]`
    /// along `axis`, indices of data's rank. Inputs: data, indices.
    GatherElements {
        axis: i64,
    },
    /// GatherND with batch_dims 0. Inputs: data, indices (int64, last dim k).
    GatherNd,
    /// The coordinates of the non-zero elements, row-major: `[rank, n]`
    /// int64, where n (the dim [`super::NONZERO_COUNT`]) is known only at
    /// run time. Packed graphs find their real tokens with it.
    NonZero,
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
    /// ONNX RMSNormalization (opset 23), `x / √(mean(x²) + ε) · scale` over
    /// the axes from `axis` on. Inputs: x, scale.
    RmsNorm {
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
    /// ONNX RotaryEmbedding (opset 23) in its half-split (non-interleaved)
    /// form on a 3-D [B, S, heads·d] input, every dimension of each head
    /// rotated. Inputs: x, cos [B, S, d/2], sin [B, S, d/2].
    RotaryEmbedding {
        num_heads: usize,
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
    /// Word + position (0..S, or position_ids) + segment embeddings, then
    /// layer norm. Inputs: input_ids (i32), segment_ids (i32), word,
    /// position, segment tables, gamma, beta, mask (optional, i32 [B, S]),
    /// position_ids (optional). Outputs: output, mask_index (i32 [B]: the
    /// mask's row sums; unused by bertc's own graphs).
    EmbedLayerNorm { epsilon: f32 },
    /// Self-attention with packed Q/K/V weights [H, 3H] and bias [3H], and a
    /// 2-D raw int32 mask [B, S] (right or left padding alike) — the form
    /// bertc writes — or, in onnxruntime's own files, a 1-D mask index [B]
    /// (the number of real tokens, counted from the left).
    /// Inputs: input, weights, bias, mask (optional).
    Attention {
        num_heads: usize,
        /// Multiplies Q·Kᵀ; `None` is onnxruntime's default 1/√head_size.
        scale: Option<f32>,
        /// What masked scores get; `None` is onnxruntime's default -10000.
        mask_filter_value: Option<f32>,
    },
    /// `(A - a_zp)·(B - b_zp) · a_scale · b_scale + bias` on 8-bit A, B with
    /// an f32 result: what onnxruntime fuses MatMulInteger → Cast → Mul
    /// (→ Add) into. Inputs: A, B, a_scale, b_scale, a_zero_point?,
    /// b_zero_point?, bias?.
    MatMulIntegerToFloat,
    /// MatMulIntegerToFloat with A (f32) quantized to u8 inside the kernel,
    /// as DynamicQuantizeLinear does. Inputs: A, B, b_scale, b_zero_point?, bias?.
    DynamicQuantizeMatMul,
    /// `Attention` on an 8-bit input and 8-bit packed weights, what
    /// onnxruntime's `quantize_dynamic` makes of it. Inputs: input, weights,
    /// bias (f32), input_scale, weight_scale (scalar or per column),
    /// mask (optional), input_zero_point?, weight_zero_point?.
    QAttention {
        num_heads: usize,
        scale: Option<f32>,
        mask_filter_value: Option<f32>,
    },
    /// `EmbedLayerNormalization` with 8-bit tables, gamma and beta, each with
    /// a scalar scale and zero point. Inputs: input_ids, segment_ids, word,
    /// position, segment tables, gamma, beta, mask (optional), their five
    /// scales, their five zero points. Outputs: output, mask_index.
    QEmbedLayerNorm { epsilon: f32 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GeluApproximation {
    /// 0.5·x·(1 + erf(x/√2))
    None,
    /// 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))
    Tanh,
}

impl GeluApproximation {
    /// The value of ONNX Gelu's `approximate` attribute.
    pub fn onnx_name(self) -> &'static str {
        match self {
            GeluApproximation::None => "none",
            GeluApproximation::Tanh => "tanh",
        }
    }

    /// The approximation an `approximate` attribute names, if any.
    pub fn from_onnx(name: &[u8]) -> Option<GeluApproximation> {
        [GeluApproximation::None, GeluApproximation::Tanh]
            .into_iter()
            .find(|a| a.onnx_name().as_bytes() == name)
    }
}
