//! The value of a one-element float computed at compile time from
//! constants and fixed shapes, proven by evaluating the nodes that make it.
//!
//! Exporters do not always write an attention's scale as a constant:
//! PyTorch's TorchScript export of `scaled_dot_product_attention` computes
//! it at run time from Q's shape, `Sqrt(Cast(Div(1, Sqrt(Cast(Slice(Shape(Q),
//! -1))))))`, once for Q and once for K. `fold_constants` turns the
//! `Slice(Shape(Q), -1)` of a fixed head size into a constant but leaves the
//! float arithmetic after it. A fusion that folds such a scale into one
//! number must know that number: [`scalar_value`] evaluates the chain, in
//! the precision each node computes in (a Cast to f16 rounds as f16 does), and
//! gives up on anything that is not a one-element value of constants.

use half::f16;

use crate::ir::{BinaryOp, DType, Dim, Graph, Op, UnaryOp, Value};

use super::pattern::{input, operands, producer};

/// How many nodes deep the evaluation follows a chain: the SDPA scale is
/// six; a deeper chain is not a scale an exporter writes.
const MAX_DEPTH: usize = 12;

/// The value of `v` when it is a one-element float or integer computed
/// from constants (or from integers inference knows exactly, e.g. a
/// fixed dim read from a shape) through Cast, Sqrt, Reciprocal, Neg and
/// the four arithmetic ops.
pub fn scalar_value(g: &Graph, v: Value) -> Option<f32> {
    evaluate(g, v, MAX_DEPTH)
}

fn evaluate(g: &Graph, v: Value, depth: usize) -> Option<f32> {
    let info = g.info(v);
    if info.shape.as_fixed()?.iter().product::<usize>() != 1 {
        return None;
    }
    // An integer inference tracked exactly (a folded or foldable dim).
    if let Some([Dim::Fixed(n)]) = info.known.as_deref() {
        return Some(*n as f32);
    }
    let depth = depth.checked_sub(1)?;
    let arg = |slot| evaluate(g, input(g, v.node, slot)?, depth);
    let value = match &producer(g, v).op {
        Op::Constant(t) => match t.dtype() {
            DType::F32 | DType::F16 | DType::BF16 => t.to_f32_vec()?[0],
            _ => t.to_i64_vec()?[0] as f32,
        },
        Op::Cast { to } => round_to(*to, arg(0)?)?,
        Op::Unary(UnaryOp::Sqrt) => arg(0)?.sqrt(),
        Op::Unary(UnaryOp::Reciprocal) => 1.0 / arg(0)?,
        Op::Unary(UnaryOp::Neg) => -arg(0)?,
        Op::Binary(op) => {
            let (a, b) = operands(g, v.node)?;
            let (a, b) = (evaluate(g, a, depth)?, evaluate(g, b, depth)?);
            match op {
                BinaryOp::Add => a + b,
                BinaryOp::Sub => a - b,
                BinaryOp::Mul => a * b,
                BinaryOp::Div => a / b,
                _ => return None,
            }
        }
        _ => return None,
    };
    // Integer results are exact only while they stay integers.
    let value = round_to(info.dtype, value)?;
    value.is_finite().then_some(value)
}

/// `x` as a value of `dtype` holds it: f16 rounds, integers truncate
/// toward zero as ONNX's Cast does.
fn round_to(dtype: DType, x: f32) -> Option<f32> {
    Some(match dtype {
        DType::F32 => x,
        DType::F16 => f16::from_f32(x).to_f32(),
        DType::BF16 => half::bf16::from_f32(x).to_f32(),
        DType::I64 | DType::I32 | DType::I8 | DType::U8 => x.trunc(),
        DType::Bool => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Shape, Tensor};

    /// SDPA's run-time scale of a head size `d`, as TorchScript writes it:
    /// `Sqrt(Cast(Div(1, Sqrt(Cast(d)))))`, `d` an i64 [1].
    fn sdpa_scale(g: &mut Graph, d: Value) -> Value {
        sdpa_scale_named(g, d, "s")
    }

    fn sdpa_scale_named(g: &mut Graph, d: Value, p: &str) -> Value {
        let f = g
            .add(&format!("{p}.cast"), Op::Cast { to: DType::F32 }, &[d])
            .unwrap();
        let root = g
            .add(&format!("{p}.sqrt"), Op::Unary(UnaryOp::Sqrt), &[f])
            .unwrap();
        let one = g.add_const(&format!("{p}.one"), Tensor::scalar_f32(1.0)).unwrap();
        let inv = g
            .add(&format!("{p}.div"), Op::Binary(BinaryOp::Div), &[one, root])
            .unwrap();
        let c = g
            .add(&format!("{p}.cast_1"), Op::Cast { to: DType::F32 }, &[inv])
            .unwrap();
        g.add(&format!("{p}.sqrt_1"), Op::Unary(UnaryOp::Sqrt), &[c])
            .unwrap()
    }

    #[test]
    fn the_sdpa_scale_of_a_constant_head_size_is_its_fourth_root() {
        let mut g = Graph::new();
        let d = g.add_const("d", Tensor::vec_i64(&[64])).unwrap();
        let s = sdpa_scale(&mut g, d);
        let want = (1.0f32 / 8.0).sqrt();
        assert_eq!(scalar_value(&g, s), Some(want));
    }

    #[test]
    fn a_head_size_known_only_from_the_shape_is_read_from_inference() {
        let mut g = Graph::new();
        let dims = vec![Dim::sym("batch"), Dim::Fixed(2), Dim::sym("seq"), Dim::Fixed(16)];
        let q = g.add_input("q", DType::F32, Shape(dims)).unwrap();
        let shape = g.add("shape", Op::Shape, &[q]).unwrap();
        let (start, end) = (
            g.add_const("start", Tensor::vec_i64(&[-1])).unwrap(),
            g.add_const("end", Tensor::vec_i64(&[i64::MAX])).unwrap(),
        );
        let d = g.add("slice", Op::Slice, &[shape, start, end]).unwrap();
        let s = sdpa_scale(&mut g, d);
        assert_eq!(scalar_value(&g, s), Some(0.5));
        // The batch dim is symbolic: no value.
        let zero = g.add_const("zero", Tensor::vec_i64(&[0])).unwrap();
        let one = g.add_const("one_i", Tensor::vec_i64(&[1])).unwrap();
        let b = g.add("slice_b", Op::Slice, &[shape, zero, one]).unwrap();
        let s = sdpa_scale_named(&mut g, b, "b");
        assert_eq!(scalar_value(&g, s), None);
    }

    #[test]
    fn a_run_time_value_or_a_wide_constant_has_no_scalar_value() {
        let mut g = Graph::new();
        let x = g.add_input("x", DType::F32, Shape::fixed(&[1])).unwrap();
        let r = g.add("sqrt", Op::Unary(UnaryOp::Sqrt), &[x]).unwrap();
        assert_eq!(scalar_value(&g, r), None);
        let wide = g
            .add_const("wide", Tensor::from_f32(vec![2], &[1.0, 2.0]))
            .unwrap();
        assert_eq!(scalar_value(&g, wide), None);
    }

    #[test]
    fn a_cast_to_f16_rounds_as_f16() {
        let mut g = Graph::new();
        let c = g.add_const("c", Tensor::scalar_f32(0.1)).unwrap();
        let h = g.add("cast", Op::Cast { to: DType::F16 }, &[c]).unwrap();
        assert_eq!(scalar_value(&g, h), Some(f16::from_f32(0.1).to_f32()));
    }
}
