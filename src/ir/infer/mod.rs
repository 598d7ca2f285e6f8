//! Shape and dtype inference, one rule per op; the op table (`op_table`)
//! says how many inputs each op takes, checked here before its rule runs.
//!
//! Besides types, inference tracks the values of small integer tensors
//! (`ValueInfo::known`): a `Shape` of `[batch_size, sequence_length, 768]`
//! is known to hold exactly those dims, so a Reshape or Slice fed by it keeps
//! its symbolic dimensions instead of losing them.

mod nn;
mod quant;
mod shape_ops;

use super::dtype::DType;
use super::graph::ValueInfo;
use super::op::{BinaryOp, Op, UnaryOp};
use super::shape::{blocks_of, normalize_axis, Dim, Factors, Shape, NONZERO_COUNT};
use nn::{attention, contrib, matmul, matmul_integer, rotary_embedding};
use shape_ops::{concat, gather, gather_elements, reshape, shape_input, slice, tile};

type Infer = Result<Vec<ValueInfo>, String>;

/// Output types of `op` applied to `inputs` (`None` = absent optional input).
pub fn infer(op: &Op, inputs: &[Option<&ValueInfo>]) -> Infer {
    op.schema().check_inputs(inputs)?;
    let x = |i: usize| inputs[i].expect("required input present");
    let one = |dtype, shape| Ok(vec![ValueInfo::new(dtype, shape)]);
    match op {
        Op::Input => Err("graph inputs are declared, not inferred".into()),
        Op::Constant(t) => Ok(vec![ValueInfo {
            dtype: t.dtype(),
            shape: t.shape(),
            known: t.as_known_ints(),
        }]),
        Op::Unary(u) => {
            let a = x(0);
            let int_ok = matches!(u, UnaryOp::Relu | UnaryOp::Neg | UnaryOp::Abs | UnaryOp::Sign);
            if *u == UnaryOp::Not {
                if a.dtype != DType::Bool {
                    return Err(format!("Not applies to bool, not {}", a.dtype));
                }
                let known = a.known.as_ref().map(|k| {
                    k.iter()
                        .map(|d| match d {
                            Dim::Fixed(v) => Dim::Fixed((*v == 0) as i64),
                            d => d.clone(),
                        })
                        .collect()
                });
                return Ok(vec![ValueInfo {
                    dtype: a.dtype,
                    shape: a.shape.clone(),
                    known,
                }]);
            }
            if !(a.dtype.is_float() || int_ok && a.dtype.is_int()) {
                return Err(format!("does not apply to {}", a.dtype));
            }
            one(a.dtype, a.shape.clone())
        }
        Op::Binary(b) => binary(*b, x(0), x(1)),
        Op::MatMul => matmul(x(0), x(1)),
        Op::MatMulInteger => matmul_integer(inputs),
        Op::DynamicQuantizeLinear => quant::dynamic_quantize_linear(x(0)),
        Op::QuantizeLinear { axis } => quant::quantize_linear(*axis, inputs),
        Op::DequantizeLinear { axis } => quant::dequantize_linear(*axis, inputs),
        Op::QLinearMatMul => quant::qlinear_matmul(inputs),
        Op::Clip => {
            let a = x(0);
            for bound in inputs[1..].iter().flatten() {
                same_dtype(a, bound)?;
                if bound.shape.rank() != 0 {
                    return Err(format!("min and max must be scalars, got {}", bound.shape));
                }
            }
            one(a.dtype, a.shape.clone())
        }
        Op::ReduceMean { axes, keepdims }
        | Op::ReduceSum { axes, keepdims }
        | Op::ReduceL2 { axes, keepdims }
        | Op::ReduceMax { axes, keepdims }
        | Op::ReduceMin { axes, keepdims } => {
            let a = x(0);
            // A sum of integers is exact (the mask index counts tokens).
            match op {
                Op::ReduceSum { .. } => numeric_only(a)?,
                _ => float_only(a)?,
            }
            let axes = axes_of(axes, a.shape.rank())?;
            let dims =
                a.shape
                    .dims()
                    .iter()
                    .enumerate()
                    .filter_map(|(i, d)| match (axes.contains(&i), keepdims) {
                        (false, _) => Some(d.clone()),
                        (true, true) => Some(Dim::Fixed(1)),
                        (true, false) => None,
                    });
            one(a.dtype, Shape(dims.collect()))
        }
        Op::Softmax { axis } => {
            let a = x(0);
            float_only(a)?;
            axis_of(*axis, a.shape.rank())?;
            one(a.dtype, a.shape.clone())
        }
        Op::Transpose { perm } => {
            let a = x(0);
            let mut seen = perm.clone();
            seen.sort_unstable();
            if seen != (0..a.shape.rank()).collect::<Vec<_>>() {
                return Err(format!(
                    "perm {perm:?} is not a permutation of rank {}",
                    a.shape.rank()
                ));
            }
            one(
                a.dtype,
                Shape(perm.iter().map(|&p| a.shape.0[p].clone()).collect()),
            )
        }
        Op::Reshape => reshape(x(0), x(1)),
        Op::Unsqueeze { axes } => {
            let a = x(0);
            let rank = a.shape.rank() + axes.len();
            let axes = axes_of(axes, rank)?;
            let mut rest = a.shape.dims().iter();
            let dims = (0..rank).map(|i| match axes.contains(&i) {
                true => Dim::Fixed(1),
                false => rest.next().expect("rank arithmetic").clone(),
            });
            let known = a.known.clone().filter(|_| a.shape.rank() <= 1 && rank == 1);
            Ok(vec![ValueInfo {
                dtype: a.dtype,
                shape: Shape(dims.collect()),
                known,
            }])
        }
        Op::Squeeze { axes } => {
            let a = x(0);
            let axes = axes_of(axes, a.shape.rank())?;
            let mut dims = Vec::new();
            for (i, d) in a.shape.dims().iter().enumerate() {
                let squeeze = if axes.is_empty() {
                    *d == Dim::Fixed(1)
                } else {
                    axes.contains(&i)
                };
                if squeeze && *d != Dim::Fixed(1) {
                    return Err(format!("cannot squeeze axis {i} of size {d}"));
                }
                if !squeeze {
                    dims.push(d.clone());
                }
            }
            let known = a.known.clone().filter(|_| dims.is_empty());
            Ok(vec![ValueInfo {
                dtype: a.dtype,
                shape: Shape(dims),
                known,
            }])
        }
        Op::Slice => slice(
            x(0),
            x(1),
            x(2),
            inputs.get(3).copied().flatten(),
            inputs.get(4).copied().flatten(),
        ),
        Op::Gather { axis } => gather(*axis, x(0), x(1)),
        Op::GatherElements { axis } => gather_elements(*axis, x(0), x(1)),
        Op::Shape => {
            let a = x(0);
            Ok(vec![ValueInfo {
                dtype: DType::I64,
                shape: Shape::fixed(&[a.shape.rank()]),
                known: Some(a.shape.0.clone()),
            }])
        }
        Op::Cast { to } => {
            let a = x(0);
            // A cast to its own type (PyTorch writes bool → bool before an
            // If) keeps the value too.
            let known = a
                .known
                .clone()
                .filter(|_| a.dtype.is_int() && to.is_int() || a.dtype == *to);
            Ok(vec![ValueInfo {
                dtype: *to,
                shape: a.shape.clone(),
                known,
            }])
        }
        Op::Concat { axis } => concat(*axis, &inputs.iter().flatten().copied().collect::<Vec<_>>()),
        Op::Where => {
            let (c, a, b) = (x(0), x(1), x(2));
            if c.dtype != DType::Bool {
                return Err(format!("condition must be bool, got {}", c.dtype));
            }
            same_dtype(a, b)?;
            let shape = broadcast(&broadcast(&c.shape, &a.shape)?, &b.shape)?;
            let known = match (&c.known, &a.known, &b.known) {
                (Some(c), Some(t), Some(e)) if shape.rank() <= 1 => {
                    let n = shape.dims().first().and_then(Dim::fixed).unwrap_or(1) as usize;
                    let at = |v: &Vec<Dim>, i: usize| v.get(if v.len() == 1 { 0 } else { i }).cloned();
                    (0..n)
                        .map(|i| match at(c, i)? {
                            Dim::Fixed(0) => at(e, i),
                            Dim::Fixed(_) => at(t, i),
                            Dim::Sym(_) => None,
                        })
                        .collect()
                }
                _ => None,
            };
            Ok(vec![ValueInfo {
                dtype: a.dtype,
                shape,
                known,
            }])
        }
        Op::GatherNd => {
            let (data, idx) = (x(0), x(1));
            if idx.dtype != DType::I64 || idx.shape.rank() == 0 {
                return Err(format!(
                    "indices must be i64 of rank >= 1, got {}{}",
                    idx.dtype, idx.shape
                ));
            }
            let k = idx
                .shape
                .dims()
                .last()
                .and_then(Dim::fixed)
                .ok_or("the index depth must be fixed")? as usize;
            if k > data.shape.rank() {
                return Err(format!(
                    "index depth {k} exceeds the data rank {}",
                    data.shape.rank()
                ));
            }
            let mut dims = idx.shape.0[..idx.shape.rank() - 1].to_vec();
            dims.extend(data.shape.0[k..].iter().cloned());
            one(data.dtype, Shape(dims))
        }
        Op::NonZero => {
            let a = x(0);
            if a.shape.rank() == 0 {
                return Err("NonZero of a scalar is not supported".into());
            }
            let count = Dim::sym(NONZERO_COUNT);
            one(DType::I64, Shape(vec![Dim::Fixed(a.shape.rank() as i64), count]))
        }
        Op::Range => {
            let (start, limit, delta) = (x(0), x(1), x(2));
            if [start, limit, delta]
                .iter()
                .any(|t| t.shape.rank() != 0 || t.dtype != start.dtype)
            {
                return Err("start, limit and delta must be scalars of one type".into());
            }
            let value = |t: &ValueInfo| t.known.as_ref().and_then(|k| k.first().cloned());
            let len = match (value(start), value(limit), value(delta)) {
                (Some(Dim::Fixed(s)), Some(Dim::Fixed(l)), Some(Dim::Fixed(d))) if d != 0 => {
                    Dim::Fixed(((l as f64 - s as f64) / d as f64).ceil().max(0.0) as i64)
                }
                (Some(Dim::Fixed(0)), Some(l @ Dim::Sym(_)), Some(Dim::Fixed(1))) => l,
                // Block starts 0, d, 2d, … below a symbolic length.
                (Some(Dim::Fixed(0)), Some(Dim::Sym(l)), Some(Dim::Fixed(d))) if d > 1 => blocks_of(&l, d),
                _ => return Err("the length of the range is not known at compile time".into()),
            };
            one(start.dtype, Shape(vec![len]))
        }
        Op::Tile => tile(x(0), x(1)),
        Op::CumSum => {
            let (data, axis) = (x(0), x(1));
            if axis.shape.rank() != 0 || !matches!(axis.dtype, DType::I64 | DType::I32) {
                return Err(format!(
                    "the axis must be an int64 or int32 scalar, got {} {}",
                    axis.dtype, axis.shape
                ));
            }
            if !matches!(data.dtype, DType::F32 | DType::F16 | DType::I64 | DType::I32) {
                return Err(format!("CumSum of {} is not supported", data.dtype));
            }
            if let Some(Dim::Fixed(a)) = axis.known.as_ref().and_then(|k| k.first().cloned()) {
                normalize_axis(a, data.shape.rank())
                    .ok_or_else(|| format!("axis {a} is out of range for rank {}", data.shape.rank()))?;
            }
            one(data.dtype, data.shape.clone())
        }
        Op::ConstantOfShape { value } => {
            let target = x(0);
            let dims = target
                .known
                .clone()
                .ok_or("the target shape is not known at compile time")?;
            if let Some(n) = dims.iter().find_map(|d| match d {
                Dim::Fixed(n) if *n < 0 => Some(*n),
                _ => None,
            }) {
                return Err(format!(
                    "the target shape {} holds {n}: a size cannot be negative",
                    Shape(dims)
                ));
            }
            let known = match (dims.as_slice(), value.as_known_ints()) {
                ([Dim::Fixed(n)], Some(v)) if v.len() == 1 && (0..=16).contains(n) => {
                    Some(vec![v[0].clone(); *n as usize])
                }
                ([], Some(v)) if v.len() == 1 => Some(v),
                _ => None,
            };
            Ok(vec![ValueInfo {
                dtype: value.dtype(),
                shape: Shape(dims),
                known,
            }])
        }
        Op::Flatten { axis } => {
            let a = x(0);
            let r = a.shape.rank();
            let axis = if *axis < 0 { *axis + r as i64 } else { *axis };
            if !(0..=r as i64).contains(&axis) {
                return Err(format!("axis {axis} is out of range for rank {r}"));
            }
            let (outer, inner) = a.shape.0.split_at(axis as usize);
            let product = |dims: &[Dim]| {
                Factors::of(dims)
                    .map(|f| f.to_dim())
                    .ok_or_else(|| format!("the dims of {} multiply past 2^63", a.shape))
            };
            one(a.dtype, Shape(vec![product(outer)?, product(inner)?]))
        }
        Op::Gemm { trans_a, trans_b, .. } => {
            let (a, b) = (x(0), x(1));
            float_only(a)?;
            same_dtype(a, b)?;
            if a.shape.rank() != 2 || b.shape.rank() != 2 {
                return Err(format!("needs 2-D A and B, got {} and {}", a.shape, b.shape));
            }
            let (m, k1) = if *trans_a {
                (&a.shape.0[1], &a.shape.0[0])
            } else {
                (&a.shape.0[0], &a.shape.0[1])
            };
            let (k2, n) = if *trans_b {
                (&b.shape.0[1], &b.shape.0[0])
            } else {
                (&b.shape.0[0], &b.shape.0[1])
            };
            if k1 != k2 {
                return Err(format!("inner dims differ: {} × {}", a.shape, b.shape));
            }
            let out = Shape(vec![m.clone(), n.clone()]);
            if let Some(Some(c)) = inputs.get(2) {
                if broadcast(&out, &c.shape)? != out {
                    return Err(format!("C {} does not broadcast to {out}", c.shape));
                }
            }
            one(a.dtype, out)
        }
        Op::Identity => Ok(vec![x(0).clone()]),
        Op::Expand => {
            let (a, dims) = (x(0), shape_input(x(1))?);
            one(a.dtype, broadcast(&a.shape, &Shape(dims.to_vec()))?)
        }
        Op::LayerNorm { axis, .. } | Op::RmsNorm { axis, .. } => {
            let a = x(0);
            float_only(a)?;
            let axis = axis_of(*axis, a.shape.rank())?;
            let normalized = Shape(a.shape.0[axis..].to_vec());
            for (what, p) in [("scale", Some(x(1))), ("bias", inputs.get(2).copied().flatten())] {
                if let Some(p) = p {
                    same_dtype(a, p)?;
                    if broadcast(&normalized, &p.shape)? != normalized {
                        return Err(format!(
                            "{what} {} does not fit the normalized shape {normalized}",
                            p.shape
                        ));
                    }
                }
            }
            one(a.dtype, a.shape.clone())
        }
        Op::Gelu { .. } => {
            float_only(x(0))?;
            one(x(0).dtype, x(0).shape.clone())
        }
        Op::Attention {
            q_num_heads,
            kv_num_heads,
            ..
        } => attention(*q_num_heads, *kv_num_heads, inputs),
        Op::RotaryEmbedding { num_heads } => rotary_embedding(*num_heads, inputs),
        Op::Contrib(c) => contrib(c, inputs),
    }
}

fn float_only(a: &ValueInfo) -> Result<(), String> {
    match a.dtype.is_float() {
        true => Ok(()),
        false => Err(format!("needs a float input, got {}", a.dtype)),
    }
}

fn numeric_only(a: &ValueInfo) -> Result<(), String> {
    match a.dtype.is_float() || a.dtype.is_int() {
        true => Ok(()),
        false => Err(format!("needs a numeric input, got {}", a.dtype)),
    }
}

fn same_dtype(a: &ValueInfo, b: &ValueInfo) -> Result<(), String> {
    match a.dtype == b.dtype {
        true => Ok(()),
        false => Err(format!("input dtypes differ: {} and {}", a.dtype, b.dtype)),
    }
}

fn broadcast(a: &Shape, b: &Shape) -> Result<Shape, String> {
    a.broadcast(b)
        .ok_or_else(|| format!("shapes {a} and {b} do not broadcast"))
}

pub(super) fn axis_of(axis: i64, rank: usize) -> Result<usize, String> {
    normalize_axis(axis, rank).ok_or_else(|| format!("axis {axis} is out of range for rank {rank}"))
}

fn axes_of(axes: &[i64], rank: usize) -> Result<Vec<usize>, String> {
    let mut out = Vec::with_capacity(axes.len());
    for &a in axes {
        let a = axis_of(a, rank)?;
        if out.contains(&a) {
            return Err(format!("axis {a} is repeated in {axes:?}"));
        }
        out.push(a);
    }
    Ok(out)
}

fn binary(op: BinaryOp, a: &ValueInfo, b: &ValueInfo) -> Infer {
    same_dtype(a, b)?;
    if op.is_logic() != (a.dtype == DType::Bool) && !op.is_comparison() {
        return Err(match op.is_logic() {
            true => format!("logic on {} tensors", a.dtype),
            false => "arithmetic on bool tensors".into(),
        });
    }
    let shape = broadcast(&a.shape, &b.shape)?;
    let dtype = if op.is_comparison() || op.is_logic() {
        DType::Bool
    } else {
        a.dtype
    };
    // Track integer math on known values (shape computations); booleans are 0/1.
    let known = match (&a.known, &b.known) {
        (Some(x), Some(y)) if x.len() == y.len() || x.len() == 1 || y.len() == 1 => {
            let n = x.len().max(y.len());
            let pick = |v: &Vec<Dim>, i: usize| v[if v.len() == 1 { 0 } else { i }].clone();
            (0..n)
                .map(|i| known_binary(op, &pick(x, i), &pick(y, i)))
                .collect()
        }
        _ => None,
    };
    Ok(vec![ValueInfo { dtype, shape, known }])
}

/// One element of a binary op on known values. Symbols are sizes, so they
/// are never negative: `sequence_length == -1` is known to be false.
fn known_binary(op: BinaryOp, a: &Dim, b: &Dim) -> Option<Dim> {
    let bit = |v: bool| Some(Dim::Fixed(v as i64));
    if let (Dim::Fixed(p), Dim::Fixed(q)) = (a, b) {
        let (p, q) = (*p, *q);
        return Some(Dim::Fixed(match op {
            // Overflow: the value is not known (a file's constants can be anything).
            BinaryOp::Add => p.checked_add(q)?,
            BinaryOp::Sub => p.checked_sub(q)?,
            BinaryOp::Mul => p.checked_mul(q)?,
            BinaryOp::Div => p.checked_div(q)?,
            BinaryOp::Max => p.max(q),
            BinaryOp::Min => p.min(q),
            BinaryOp::Equal => (p == q) as i64,
            BinaryOp::Less => (p < q) as i64,
            BinaryOp::Greater => (p > q) as i64,
            BinaryOp::GreaterOrEqual => (p >= q) as i64,
            BinaryOp::LessOrEqual => (p <= q) as i64,
            BinaryOp::And => (p != 0 && q != 0) as i64,
            BinaryOp::Or => (p != 0 || q != 0) as i64,
            BinaryOp::Pow => return None,
        }));
    }
    match (op, a, b) {
        (BinaryOp::Equal, x, y) if x == y => bit(true),
        (BinaryOp::Equal, Dim::Sym(_), Dim::Fixed(n)) | (BinaryOp::Equal, Dim::Fixed(n), Dim::Sym(_))
            if *n < 0 =>
        {
            bit(false)
        }
        (BinaryOp::Mul, x, Dim::Fixed(1)) | (BinaryOp::Mul, Dim::Fixed(1), x) => Some(x.clone()),
        (BinaryOp::Add, x, Dim::Fixed(0)) | (BinaryOp::Add, Dim::Fixed(0), x) => Some(x.clone()),
        // A product of sizes divided by one of its factors (PyTorch's
        // `batch·heads / heads` before DeBERTa's Tile): exact or unknown.
        (BinaryOp::Div, x, y) if !matches!(y, Dim::Fixed(n) if *n <= 0) => Some(
            Factors::of(std::slice::from_ref(x))?
                .divide(&Factors::of(std::slice::from_ref(y))?)?
                .to_dim(),
        ),
        _ => None,
    }
}
