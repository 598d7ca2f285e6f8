//! Inference for the ops that move data around: Reshape, Slice, Gather, Concat.

use super::super::dtype::DType;
use super::super::graph::ValueInfo;
use super::super::shape::{Dim, Factors, Shape, SLICE_LENGTH};
use super::{axis_of, same_dtype, Infer};

/// The dims a shape input (Reshape, Expand) holds, as far as known.
pub(super) fn shape_input(target: &ValueInfo) -> Result<&[Dim], String> {
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

pub(super) fn reshape(a: &ValueInfo, target: &ValueInfo) -> Infer {
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
        .zip(Factors::of(&known_dims))
        .and_then(|(whole, known)| whole.divide(&known))
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
pub(super) fn slice(
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
    if starts.known.is_none() || ends.known.is_none() {
        return run_time_slice(a, starts, ends, axes, steps);
    }
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
            // The first row of a symbolic (batch, sequence) dim: such dims
            // are at least 1 — an empty batch or sequence computes nothing.
            (Dim::Fixed(0), Dim::Fixed(1), Dim::Sym(_)) => Dim::Fixed(1),
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

/// A Slice of one axis between bounds computed at run time (one int each,
/// step 1): that axis becomes [`SLICE_LENGTH`], the others are kept.
fn run_time_slice(
    a: &ValueInfo,
    starts: &ValueInfo,
    ends: &ValueInfo,
    axes: Option<&ValueInfo>,
    steps: Option<&ValueInfo>,
) -> Infer {
    let one_int = |v: &ValueInfo| matches!(v.dtype, DType::I64 | DType::I32) && v.shape.0 == [Dim::Fixed(1)];
    if !one_int(starts) || !one_int(ends) {
        return Err("run-time starts and ends must be one int each".into());
    }
    let axis = match axes.map(|v| v.known.as_deref()) {
        Some(Some([Dim::Fixed(axis)])) => axis_of(*axis, a.shape.rank())?,
        _ => return Err("a Slice with run-time bounds needs one known axis".into()),
    };
    match steps.map(|v| v.known.as_deref()) {
        None | Some(Some([Dim::Fixed(1)])) => {}
        _ => return Err("a Slice with run-time bounds needs step 1".into()),
    }
    let mut dims = a.shape.0.clone();
    dims[axis] = Dim::sym(SLICE_LENGTH);
    Ok(vec![ValueInfo {
        dtype: a.dtype,
        shape: Shape(dims),
        known: None,
    }])
}

pub(super) fn gather(axis: i64, data: &ValueInfo, indices: &ValueInfo) -> Infer {
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

/// Tile: each dim times its repeat count, which must be known (a symbolic
/// count multiplies symbolically, as Flatten's products do).
pub(super) fn tile(a: &ValueInfo, repeats: &ValueInfo) -> Infer {
    let counts = shape_input(repeats)?;
    if counts.len() != a.shape.rank() {
        return Err(format!(
            "{} repeats for an input of rank {}",
            counts.len(),
            a.shape.rank()
        ));
    }
    let mut dims = Vec::with_capacity(counts.len());
    for (d, r) in a.shape.dims().iter().zip(counts) {
        if matches!(r, Dim::Fixed(n) if *n < 0) {
            return Err(format!("repeat count {r} is negative"));
        }
        let product = Factors::of(&[d.clone(), r.clone()]).ok_or_else(|| format!("{d} x {r} overflows"))?;
        dims.push(product.to_dim());
    }
    Ok(vec![ValueInfo::new(a.dtype, Shape(dims))])
}

/// GatherElements: indices of data's rank, no larger than data on any axis
/// but `axis` (where they may index anything); the output has their shape.
pub(super) fn gather_elements(axis: i64, data: &ValueInfo, indices: &ValueInfo) -> Infer {
    if !matches!(indices.dtype, DType::I64 | DType::I32) {
        return Err(format!("indices must be i64 or i32, got {}", indices.dtype));
    }
    if data.shape.rank() != indices.shape.rank() {
        return Err(format!(
            "indices {} must have the rank of the data {}",
            indices.shape, data.shape
        ));
    }
    axis_of(axis, data.shape.rank())?;
    Ok(vec![ValueInfo {
        dtype: data.dtype,
        shape: indices.shape.clone(),
        known: None,
    }])
}

pub(super) fn concat(axis: i64, parts: &[&ValueInfo]) -> Infer {
    let first = parts[0];
    let axis = axis_of(axis, first.shape.rank())?;
    let mut total: i64 = 0;
    // Symbolic lengths add up to a symbol spelled as their sum
    // (`nonzero_count+1`: a packed graph's tokens and its zero row). A
    // product in a sum would be misread as factors (see `Factors`).
    let mut symbols: Vec<&str> = Vec::new();
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
        match &p.shape.0[axis] {
            Dim::Fixed(n) => total = total.checked_add(*n).ok_or("the concat length overflows")?,
            Dim::Sym(s) if !s.contains('*') => symbols.push(s),
            Dim::Sym(s) => return Err(format!("concatenating along the product dim {s}")),
        }
    }
    let mut dims = first.shape.0.clone();
    dims[axis] = match symbols.is_empty() {
        true => Dim::Fixed(total),
        false if total == 0 => Dim::Sym(symbols.join("+")),
        false => Dim::Sym(format!("{}+{total}", symbols.join("+"))),
    };
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
