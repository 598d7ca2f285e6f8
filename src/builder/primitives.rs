//! The building blocks of BERT in the primitive form PyTorch's TorchScript
//! exporter writes at opset 14: decomposed layer norm, activations from
//! elementwise ops, Linear as MatMul + Add. The fusion passes recognise
//! exactly these forms.

use crate::config::Activation;
use crate::family::NormKind;
use crate::ir::{BinaryOp, Op, Tensor, UnaryOp, Value};

use super::{BuildError, Builder};

impl Builder<'_> {
    pub(super) fn scalar(&mut self, name: &str, v: f32) -> Result<Value, BuildError> {
        let name = self.g.fresh_name(name);
        Ok(self.g.add_const(&name, Tensor::scalar_f32(v))?)
    }

    pub(super) fn binary(
        &mut self,
        name: &str,
        op: BinaryOp,
        a: Value,
        b: Value,
    ) -> Result<Value, BuildError> {
        Ok(self.g.add(name, Op::Binary(op), &[a, b])?)
    }

    pub(super) fn unary(&mut self, name: &str, op: UnaryOp, a: Value) -> Result<Value, BuildError> {
        Ok(self.g.add(name, Op::Unary(op), &[a])?)
    }

    /// `x[..., start..end]`, named `{name}.slice`.
    pub(super) fn slice_last(
        &mut self,
        x: Value,
        start: usize,
        end: usize,
        name: &str,
    ) -> Result<Value, BuildError> {
        let p = |s: &str| format!("{name}.slice_{s}");
        let starts = self.g.add_const(&p("start"), Tensor::vec_i64(&[start as i64]))?;
        let ends = self.g.add_const(&p("end"), Tensor::vec_i64(&[end as i64]))?;
        let axes = self.g.add_const(&p("axis"), Tensor::vec_i64(&[-1]))?;
        Ok(self
            .g
            .add(&format!("{name}.slice"), Op::Slice, &[x, starts, ends, axes])?)
    }

    /// `x · scalar` style op with a named scalar constant `{name}.c`.
    fn with_scalar(&mut self, name: &str, op: BinaryOp, x: Value, c: f32) -> Result<Value, BuildError> {
        let k = self.scalar(&format!("{name}.c"), c)?;
        self.binary(name, op, x, k)
    }

    /// torch.nn.Linear: `x @ Wᵀ + b`, the weight stored pre-transposed;
    /// `x @ Wᵀ` where the family's row says the Linear has no bias.
    pub(super) fn linear(&mut self, x: Value, prefix: &str) -> Result<Value, BuildError> {
        self.linear_as(x, prefix, prefix)
    }

    /// [`Self::linear`] with the Linear `prefix`'s parameters, its nodes
    /// named `{name}.*`: a second use of one Linear (DeBERTa projects its
    /// relative-position table with the layer's query and key Linears).
    pub(super) fn linear_as(&mut self, x: Value, prefix: &str, name: &str) -> Result<Value, BuildError> {
        let w = self.param(&format!("{prefix}.weight"))?;
        let b = match super::param_names::has_bias(self.config, prefix) {
            true => Some(self.param(&format!("{prefix}.bias"))?),
            false => None,
        };
        let y = self.g.add(&format!("{name}.matmul"), Op::MatMul, &[x, w])?;
        match b {
            Some(b) => self.binary(&format!("{name}.add"), BinaryOp::Add, y, b),
            None => Ok(y),
        }
    }

    /// The family's norm over the last axis, named `{prefix}.*`: layer
    /// norm, `(x − mean) / sqrt(mean((x − mean)²) + eps) · γ + β`, or RMSNorm
    /// where the family's row says ([`Self::rms_norm`]).
    pub(super) fn layer_norm(&mut self, x: Value, prefix: &str) -> Result<Value, BuildError> {
        if self.config.family.spec().norms.kind() == NormKind::Rms {
            return self.rms_norm(x, prefix);
        }
        let mean_op = Op::ReduceMean {
            axes: vec![-1],
            keepdims: true,
        };
        let mean = self.g.add(&format!("{prefix}.mean"), mean_op.clone(), &[x])?;
        let centered = self.binary(&format!("{prefix}.sub"), BinaryOp::Sub, x, mean)?;
        let sq = self.with_scalar(&format!("{prefix}.pow"), BinaryOp::Pow, centered, 2.0)?;
        let var = self.g.add(&format!("{prefix}.var"), mean_op, &[sq])?;
        let normed = self.divide_by_root(centered, var, prefix)?;
        let gamma = self.param(&format!("{prefix}.weight"))?;
        // ModernBERT's norms have no bias unless the config's norm_bias says.
        let beta = match super::param_names::norm_has_bias(self.config, prefix) {
            true => Some(self.param(&format!("{prefix}.bias"))?),
            false => None,
        };
        let scaled = self.binary(&format!("{prefix}.mul"), BinaryOp::Mul, normed, gamma)?;
        match beta {
            Some(beta) => self.binary(&format!("{prefix}.add"), BinaryOp::Add, scaled, beta),
            None => Ok(scaled),
        }
    }

    /// RMSNorm over the last axis, `x / sqrt(mean(x²) + eps) · γ` (no
    /// centring, no bias): EuroBERT's, as T5's and Llama's. The form
    /// `fuse_layer_norm` turns into `RMSNormalization`.
    fn rms_norm(&mut self, x: Value, prefix: &str) -> Result<Value, BuildError> {
        let mean_op = Op::ReduceMean {
            axes: vec![-1],
            keepdims: true,
        };
        let sq = self.with_scalar(&format!("{prefix}.pow"), BinaryOp::Pow, x, 2.0)?;
        let mean_sq = self.g.add(&format!("{prefix}.mean_square"), mean_op, &[sq])?;
        let normed = self.divide_by_root(x, mean_sq, prefix)?;
        let gamma = self.param(&format!("{prefix}.weight"))?;
        self.binary(&format!("{prefix}.mul"), BinaryOp::Mul, normed, gamma)
    }

    /// `x / sqrt(mean_square + eps)`, the step both norms share (named as
    /// the layer norm always named it).
    fn divide_by_root(&mut self, x: Value, mean_square: Value, prefix: &str) -> Result<Value, BuildError> {
        let eps = self.config.layer_norm_eps as f32;
        let with_eps = self.with_scalar(&format!("{prefix}.add_eps"), BinaryOp::Add, mean_square, eps)?;
        let root = self.unary(&format!("{prefix}.sqrt"), UnaryOp::Sqrt, with_eps)?;
        self.binary(&format!("{prefix}.div"), BinaryOp::Div, x, root)
    }

    /// The configured activation, in primitive ops, named `{prefix}.*`.
    pub(super) fn activation(
        &mut self,
        x: Value,
        act: Activation,
        prefix: &str,
    ) -> Result<Value, BuildError> {
        let p = |s: &str| format!("{prefix}.{s}");
        match act {
            // 0.5 · x · (1 + erf(x / √2))
            Activation::Gelu => {
                let d = self.with_scalar(&p("div"), BinaryOp::Div, x, std::f32::consts::SQRT_2)?;
                let e = self.unary(&p("erf"), UnaryOp::Erf, d)?;
                let a = self.with_scalar(&p("add"), BinaryOp::Add, e, 1.0)?;
                let m = self.binary(&p("mul"), BinaryOp::Mul, x, a)?;
                self.with_scalar(&p("half"), BinaryOp::Mul, m, 0.5)
            }
            // 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))
            Activation::GeluNew | Activation::GeluPytorchTanh | Activation::GeluFast => {
                let cube = self.with_scalar(&p("pow"), BinaryOp::Pow, x, 3.0)?;
                let c = self.with_scalar(&p("mul_c"), BinaryOp::Mul, cube, 0.044715)?;
                let inner = self.binary(&p("add_x"), BinaryOp::Add, x, c)?;
                let k = (2.0f64 / std::f64::consts::PI).sqrt() as f32;
                let s = self.with_scalar(&p("mul_k"), BinaryOp::Mul, inner, k)?;
                let t = self.unary(&p("tanh"), UnaryOp::Tanh, s)?;
                let a = self.with_scalar(&p("add"), BinaryOp::Add, t, 1.0)?;
                let m = self.binary(&p("mul"), BinaryOp::Mul, x, a)?;
                self.with_scalar(&p("half"), BinaryOp::Mul, m, 0.5)
            }
            // x · sigmoid(1.702 · x)
            Activation::QuickGelu => {
                let s = self.with_scalar(&p("mul_c"), BinaryOp::Mul, x, 1.702)?;
                let sig = self.unary(&p("sigmoid"), UnaryOp::Sigmoid, s)?;
                self.binary(&p("mul"), BinaryOp::Mul, x, sig)
            }
            Activation::Relu => self.unary(&p("relu"), UnaryOp::Relu, x),
            // x · sigmoid(x)
            Activation::Silu => {
                let sig = self.unary(&p("sigmoid"), UnaryOp::Sigmoid, x)?;
                self.binary(&p("mul"), BinaryOp::Mul, x, sig)
            }
            Activation::Tanh => self.unary(&p("tanh"), UnaryOp::Tanh, x),
            // x · tanh(softplus(x))
            Activation::Mish => {
                let sp = self.unary(&p("softplus"), UnaryOp::Softplus, x)?;
                let t = self.unary(&p("tanh"), UnaryOp::Tanh, sp)?;
                self.binary(&p("mul"), BinaryOp::Mul, x, t)
            }
        }
    }
}
