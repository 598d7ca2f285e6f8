//! ONNX `Split` imported as one `Slice` per output.
//!
//! PyTorch writes `Split` for `chunk`/`unbind` (ModernBERT's fused Q/K/V
//! projection, split along its [3] axis). The IR's ops have a fixed number
//! of outputs, and a Slice per part computes the same values in every
//! runtime, so the split becomes slices at import and the passes see the
//! ordinary form.

use super::proto;
use crate::ir::{Graph, Op, Tensor, Value};

/// The parts of `Split(data, [split])` on `n`'s `axis`, each a Slice of
/// `data`, in output order. The sizes come from the `split` input (a
/// constant), the `split` attribute (before opset 13), or else equal parts
/// of a fixed dim (opset 18's `num_outputs`: the last part may be smaller).
pub(super) fn split_as_slices(
    g: &mut Graph,
    n: &proto::NodeProto,
    label: &str,
    inputs: &[Option<Value>],
    opset: i64,
) -> Result<Vec<Value>, String> {
    let data = inputs.first().copied().flatten().ok_or("no input")?;
    let attr = |name: &str| n.attribute.iter().find(|a| a.name == name);
    let axis = attr("axis").map_or(0, |a| a.i);
    let shape = g.info(data).shape.clone();
    let at = shape
        .axis(axis)
        .ok_or_else(|| format!("axis {axis} is out of range for {shape}"))?;
    let dim = shape.dims()[at]
        .fixed()
        .ok_or_else(|| format!("splitting the symbolic dim {} is not supported", shape.dims()[at]))?;
    let parts = n.output.len();
    let sizes: Vec<i64> = match (inputs.get(1).copied().flatten(), attr("split")) {
        (Some(v), _) => match &g.node(v.node).op {
            Op::Constant(t) => t.to_i64_vec().ok_or("the split sizes are not integers")?,
            _ => return Err("split sizes computed at run time are not supported".into()),
        },
        (None, Some(a)) if opset < 13 => a.ints.clone(),
        _ => {
            let chunk = (dim + parts as i64 - 1) / (parts as i64).max(1);
            (0..parts as i64)
                .map(|i| chunk.min(dim - i * chunk).max(0))
                .collect()
        }
    };
    if sizes.len() != parts || sizes.iter().any(|&s| s < 0) || sizes.iter().sum::<i64>() != dim {
        return Err(format!(
            "split sizes {sizes:?} do not cut dim {dim} into the node's {parts} outputs"
        ));
    }
    let mut start = 0;
    let mut outputs = Vec::with_capacity(parts);
    for (i, size) in sizes.iter().enumerate() {
        let mut bound = |what: &str, v: i64| {
            let name = g.fresh_name(&format!("{label}.{i}.{what}"));
            g.add_const(&name, Tensor::vec_i64(&[v]))
                .map_err(|e| e.to_string())
        };
        let (s, e, a) = (
            bound("start", start)?,
            bound("end", start + size)?,
            bound("axis", axis)?,
        );
        let name = g.fresh_name(&format!("{label}.{i}"));
        outputs.push(
            g.add(&name, Op::Slice, &[data, s, e, a])
                .map_err(|e| e.to_string())?,
        );
        start += size;
    }
    Ok(outputs)
}
