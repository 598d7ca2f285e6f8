//! Shape and dtype inference, one rule per op.
//!
//! Besides types, inference tracks the values of small integer tensors
//! (`ValueInfo::known`): a `Shape` of `[batch_size, sequence_length, 768]`
//! is known to hold exactly those dims, so a Reshape or Slice fed by it keeps
//! its symbolic dimensions instead of losing them.

use super::dtype::DType;
use super::graph::ValueInfo;
use super::op::{BinaryOp, ContribOp, Op, UnaryOp};
use super::shape::{normalize_axis, Dim, Factors, Shape};

type Infer = Result<Vec<ValueInfo>, String>;

/// Output types of `op` applied to `inputs` (`None` = absent optional input).
pub fn infer(op: &Op, inputs: &[Option<&ValueInfo>]) -> Infer {
    let (required, max) = op.arity();
    if inputs.len() > max {
        return Err(format!("takes at most {max} inputs, got {}", inputs.len()));
    }
    if inputs.len() < required || inputs[..required].iter().any(Option::is_none) {
        return Err(format!(
            "needs {required} inputs, got {}",
            inputs.iter().flatten().count()
        ));
    }
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
            let int_ok = matches!(u, UnaryOp::Relu | UnaryOp::Neg | UnaryOp::Abs);
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
        Op::ReduceMean { axes, keepdims } => {
            let a = x(0);
            float_only(a)?;
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
            let known = a.known.clone().filter(|_| a.dtype.is_int() && to.is_int());
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
                    Dim::Fixed(((l - s) as f64 / d as f64).ceil().max(0.0) as i64)
                }
                (Some(Dim::Fixed(0)), Some(l @ Dim::Sym(_)), Some(Dim::Fixed(1))) => l,
                _ => return Err("the length of the range is not known at compile time".into()),
            };
            one(start.dtype, Shape(vec![len]))
        }
        Op::ConstantOfShape { value } => {
            let target = x(0);
            let dims = target
                .known
                .clone()
                .ok_or("the target shape is not known at compile time")?;
            let known = match (dims.as_slice(), value.as_known_ints()) {
                ([Dim::Fixed(n)], Some(v)) if v.len() == 1 && *n <= 16 => {
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
            one(
                a.dtype,
                Shape(vec![Factors::of(outer).to_dim(), Factors::of(inner).to_dim()]),
            )
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
        Op::LayerNorm { axis, .. } => {
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
        Op::Contrib(c) => contrib(c, inputs),
    }
}

/// 3-D Attention-23: Q [B, Sq, Hq·d], K [B, Skv, Hkv·d], V [B, Skv, Hkv·dv],
/// mask broadcastable to [B, Hq, Sq, Skv]; output [B, Sq, Hq·dv].
fn attention(q_heads: usize, kv_heads: usize, inputs: &[Option<&ValueInfo>]) -> Infer {
    let (q, k, v) = (inputs[0].unwrap(), inputs[1].unwrap(), inputs[2].unwrap());
    float_only(q)?;
    same_dtype(q, k)?;
    same_dtype(q, v)?;
    if [q, k, v].iter().any(|t| t.shape.rank() != 3) {
        return Err(format!(
            "needs 3-D Q, K, V, got {}, {}, {}",
            q.shape, k.shape, v.shape
        ));
    }
    if q_heads == 0 || kv_heads == 0 || q_heads % kv_heads != 0 {
        return Err(format!(
            "q_num_heads {q_heads} must be a positive multiple of kv_num_heads {kv_heads}"
        ));
    }
    let width = |t: &ValueInfo, heads: usize, what: &str| -> Result<i64, String> {
        let w = t.shape.0[2]
            .fixed()
            .ok_or(format!("{what} hidden size must be fixed"))?;
        match w % heads as i64 {
            0 => Ok(w / heads as i64),
            _ => Err(format!(
                "{what} hidden size {w} is not divisible by {heads} heads"
            )),
        }
    };
    if width(q, q_heads, "Q")? != width(k, kv_heads, "K")? {
        return Err("Q and K head sizes differ".into());
    }
    let dv = width(v, kv_heads, "V")?;
    if k.shape.0[..2] != v.shape.0[..2] || q.shape.0[0] != k.shape.0[0] {
        return Err(format!(
            "batch or key length mismatch: {}, {}, {}",
            q.shape, k.shape, v.shape
        ));
    }
    let (b, sq, skv) = (q.shape.0[0].clone(), q.shape.0[1].clone(), k.shape.0[1].clone());
    if let Some(Some(mask)) = inputs.get(3) {
        if !mask.dtype.is_float() {
            return Err(format!(
                "the mask must be an additive float mask, got {}",
                mask.dtype
            ));
        }
        let full = Shape(vec![b.clone(), Dim::Fixed(q_heads as i64), sq.clone(), skv]);
        if mask.shape.rank() > 4 || broadcast(&full, &mask.shape)? != full {
            return Err(format!("mask {} does not broadcast to {full}", mask.shape));
        }
    }
    Ok(vec![ValueInfo::new(
        q.dtype,
        Shape(vec![b, sq, Dim::Fixed(q_heads as i64 * dv)]),
    )])
}

fn contrib(op: &ContribOp, inputs: &[Option<&ValueInfo>]) -> Infer {
    let x = |i: usize| inputs[i].expect("required input present");
    match op {
        ContribOp::SkipLayerNorm { .. } => {
            let (a, skip) = (x(0), x(1));
            float_only(a)?;
            same_dtype(a, skip)?;
            if a.shape != skip.shape || a.shape.rank() != 3 {
                return Err(format!(
                    "input {} and skip {} must be the same 3-D shape",
                    a.shape, skip.shape
                ));
            }
            Ok(vec![ValueInfo::new(a.dtype, a.shape.clone())])
        }
        ContribOp::BiasGelu | ContribOp::FastGelu => {
            let (a, bias) = (x(0), x(1));
            float_only(a)?;
            if bias.shape.rank() != 1 || a.shape.dims().last() != bias.shape.dims().first() {
                return Err(format!(
                    "bias {} must be 1-D over the last dim of {}",
                    bias.shape, a.shape
                ));
            }
            Ok(vec![ValueInfo::new(a.dtype, a.shape.clone())])
        }
        ContribOp::EmbedLayerNorm { .. } => {
            let (ids, segments, word) = (x(0), x(1), x(2));
            if ids.dtype != DType::I32 || segments.dtype != DType::I32 || ids.shape.rank() != 2 {
                return Err("input_ids and segment_ids must be 2-D int32".into());
            }
            let hidden = word
                .shape
                .dims()
                .get(1)
                .cloned()
                .ok_or("the word table must be 2-D")?;
            let mut dims = ids.shape.0.clone();
            dims.push(hidden);
            Ok(vec![
                ValueInfo::new(word.dtype, Shape(dims)),
                ValueInfo::new(DType::I32, Shape(vec![ids.shape.0[0].clone()])),
            ])
        }
        ContribOp::Attention { num_heads } => {
            let (a, w, b, mask) = (x(0), x(1), x(2), x(3));
            float_only(a)?;
            let hidden3 = w
                .shape
                .dims()
                .get(1)
                .and_then(Dim::fixed)
                .ok_or("weights must be 2-D and fixed")?;
            if hidden3 % (3 * *num_heads as i64) != 0 || b.shape.dims() != [Dim::Fixed(hidden3)] {
                return Err(format!(
                    "weights {} / bias {} do not pack Q, K, V for {num_heads} heads",
                    w.shape, b.shape
                ));
            }
            if mask.dtype != DType::I32 || mask.shape.rank() != 2 {
                return Err(format!(
                    "the mask must be a 2-D int32 raw mask, got {}{}",
                    mask.dtype, mask.shape
                ));
            }
            let mut dims = a.shape.0.clone();
            *dims.last_mut().ok_or("input must be 3-D")? = Dim::Fixed(hidden3 / 3);
            Ok(vec![ValueInfo::new(a.dtype, Shape(dims))])
        }
    }
}

fn float_only(a: &ValueInfo) -> Result<(), String> {
    match a.dtype.is_float() {
        true => Ok(()),
        false => Err(format!("needs a float input, got {}", a.dtype)),
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

fn axis_of(axis: i64, rank: usize) -> Result<usize, String> {
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
            BinaryOp::Add => p + q,
            BinaryOp::Sub => p - q,
            BinaryOp::Mul => p * q,
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
        _ => None,
    }
}

fn matmul(a: &ValueInfo, b: &ValueInfo) -> Infer {
    same_dtype(a, b)?;
    float_only(a)?;
    let (ra, rb) = (a.shape.rank(), b.shape.rank());
    if ra == 0 || rb == 0 {
        return Err("MatMul of a scalar".into());
    }
    // numpy rules: a 1-D operand is promoted to a matrix, then the added dim dropped.
    let mut sa = a.shape.0.clone();
    let mut sb = b.shape.0.clone();
    if ra == 1 {
        sa.insert(0, Dim::Fixed(1));
    }
    if rb == 1 {
        sb.push(Dim::Fixed(1));
    }
    let (m, k1) = (&sa[sa.len() - 2], &sa[sa.len() - 1]);
    let (k2, n) = (&sb[sb.len() - 2], &sb[sb.len() - 1]);
    if k1 != k2 {
        return Err(format!("inner dims differ: {} × {}", a.shape, b.shape));
    }
    let batch = broadcast(
        &Shape(sa[..sa.len() - 2].to_vec()),
        &Shape(sb[..sb.len() - 2].to_vec()),
    )?;
    let mut dims = batch.0;
    if ra > 1 {
        dims.push(m.clone());
    }
    if rb > 1 {
        dims.push(n.clone());
    }
    Ok(vec![ValueInfo::new(a.dtype, Shape(dims))])
}

/// The dims a shape input (Reshape, Expand) holds, as far as known.
fn shape_input(target: &ValueInfo) -> Result<&[Dim], String> {
    if target.dtype != DType::I64 || target.shape.rank() != 1 {
        return Err(format!(
            "shape input must be a 1-D i64 tensor, got {}{}",
            target.dtype, target.shape
        ));
    }
    target
        .known
        .as_deref()
        .ok_or_else(|| "the target shape is not known at compile time".into())
}

fn reshape(a: &ValueInfo, target: &ValueInfo) -> Infer {
    let spec = shape_input(target)?;
    let mut dims: Vec<Option<Dim>> = Vec::with_capacity(spec.len());
    for (i, d) in spec.iter().enumerate() {
        dims.push(match d {
            Dim::Fixed(0) => Some(
                a.shape
                    .0
                    .get(i)
                    .cloned()
                    .ok_or("0 copies a dim the input lacks")?,
            ),
            Dim::Fixed(-1) => None,
            Dim::Fixed(n) if *n < 0 => return Err(format!("invalid target dim {n}")),
            d => Some(d.clone()),
        });
    }
    if dims.iter().filter(|d| d.is_none()).count() > 1 {
        return Err("more than one -1 in the target shape".into());
    }
    // The element counts must agree; a -1 takes the quotient, which may be
    // a symbolic product (e.g. batch_size*sequence_length).
    let mismatch = || format!("cannot reshape {} to {spec:?}", a.shape);
    let known_dims: Vec<Dim> = dims.iter().flatten().cloned().collect();
    let quotient = Factors::of(&a.shape.0)
        .divide(&Factors::of(&known_dims))
        .ok_or_else(mismatch)?;
    let hole = match dims.iter().any(Option::is_none) {
        true => Some(quotient.to_dim()),
        false if quotient.to_dim() == Dim::Fixed(1) => None,
        false => return Err(mismatch()),
    };
    let shape = Shape(
        dims.into_iter()
            .map(|d| d.or_else(|| hole.clone()).unwrap())
            .collect(),
    );
    let known = a.known.clone().filter(|_| shape.rank() <= 1);
    Ok(vec![ValueInfo {
        dtype: a.dtype,
        shape,
        known,
    }])
}

/// ONNX clamps ends past the dimension, so `x[0:sequence_length]` of a
/// fixed 512-long table is taken to have `sequence_length` rows: the model
/// is only defined for sequences up to max_position_embeddings anyway.
fn slice(
    a: &ValueInfo,
    starts: &ValueInfo,
    ends: &ValueInfo,
    axes: Option<&ValueInfo>,
    steps: Option<&ValueInfo>,
) -> Infer {
    let known = |v: &ValueInfo, what: &str| {
        v.known
            .clone()
            .ok_or_else(|| format!("{what} are not known at compile time"))
    };
    let (starts, ends) = (known(starts, "starts")?, known(ends, "ends")?);
    let axes = match axes {
        Some(v) => known(v, "axes")?,
        None => (0..starts.len() as i64).map(Dim::Fixed).collect(),
    };
    let steps = match steps {
        Some(v) => known(v, "steps")?,
        None => vec![Dim::Fixed(1); starts.len()],
    };
    if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
        return Err("starts, ends, axes and steps differ in length".into());
    }
    let mut dims = a.shape.0.clone();
    for i in 0..starts.len() {
        let axis = axis_of(axes[i].fixed().ok_or("symbolic axis")?, a.shape.rank())?;
        let step = steps[i].fixed().ok_or("symbolic step")?;
        if step != 1 {
            return Err(format!("step {step} is not supported"));
        }
        let size = &dims[axis];
        let big = |e: i64| e >= i32::MAX as i64;
        dims[axis] = match (&starts[i], &ends[i], size) {
            (Dim::Fixed(s), Dim::Fixed(e), Dim::Fixed(n)) => {
                let clamp = |v: i64| if v < 0 { (v + n).max(0) } else { v.min(*n) };
                Dim::Fixed((clamp(*e) - clamp(*s)).max(0))
            }
            (Dim::Fixed(0), Dim::Fixed(e), d) if big(*e) => d.clone(),
            (Dim::Fixed(0), e @ Dim::Sym(_), _) => e.clone(),
            _ => {
                return Err(format!(
                    "cannot size slice {}..{} of a dim {size}",
                    starts[i], ends[i]
                ))
            }
        };
    }
    let known = match (&a.known, a.shape.rank(), &dims[..]) {
        (Some(values), 1, [Dim::Fixed(len)]) => match (&starts[0], &ends[0]) {
            (Dim::Fixed(s), _) => {
                let s = if *s < 0 {
                    (*s + values.len() as i64).max(0)
                } else {
                    *s
                } as usize;
                values.get(s..s + *len as usize).map(<[Dim]>::to_vec)
            }
            _ => None,
        },
        _ => None,
    };
    Ok(vec![ValueInfo {
        dtype: a.dtype,
        shape: Shape(dims),
        known,
    }])
}

fn gather(axis: i64, data: &ValueInfo, indices: &ValueInfo) -> Infer {
    if !matches!(indices.dtype, DType::I64 | DType::I32) {
        return Err(format!("indices must be i64 or i32, got {}", indices.dtype));
    }
    let axis = axis_of(axis, data.shape.rank())?;
    let mut dims = data.shape.0[..axis].to_vec();
    dims.extend(indices.shape.0.iter().cloned());
    dims.extend(data.shape.0[axis + 1..].iter().cloned());
    let known = match (&data.known, &indices.known) {
        (Some(values), Some(idx)) if data.shape.rank() == 1 => idx
            .iter()
            .map(|i| {
                let i = i.fixed()?;
                let i = if i < 0 { i + values.len() as i64 } else { i };
                values.get(usize::try_from(i).ok()?).cloned()
            })
            .collect(),
        _ => None,
    };
    Ok(vec![ValueInfo {
        dtype: data.dtype,
        shape: Shape(dims),
        known,
    }])
}

fn concat(axis: i64, parts: &[&ValueInfo]) -> Infer {
    let first = parts[0];
    let axis = axis_of(axis, first.shape.rank())?;
    let mut total: i64 = 0;
    for p in parts {
        same_dtype(first, p)?;
        if p.shape.rank() != first.shape.rank() {
            return Err(format!("ranks differ: {} and {}", first.shape, p.shape));
        }
        for (i, (x, y)) in first.shape.0.iter().zip(&p.shape.0).enumerate() {
            if i != axis && x != y {
                return Err(format!(
                    "shapes {} and {} differ off the concat axis",
                    first.shape, p.shape
                ));
            }
        }
        total += p.shape.0[axis]
            .fixed()
            .ok_or("concatenating along a symbolic dim")?;
    }
    let mut dims = first.shape.0.clone();
    dims[axis] = Dim::Fixed(total);
    let known = match first.shape.rank() {
        1 => parts
            .iter()
            .map(|p| p.known.clone())
            .collect::<Option<Vec<_>>>()
            .map(|v| v.concat()),
        _ => None,
    };
    Ok(vec![ValueInfo {
        dtype: first.dtype,
        shape: Shape(dims),
        known,
    }])
}
