//! Entries of the ops that declare, hold, move or reshape data: graph
//! inputs, constants, shape arithmetic, gathers and casts.

use super::super::op::Op;
use super::super::shape::Dim;
use super::super::tensor::Tensor;
use super::{
    at_least, between, entries, exactly, onnx, AttrSpec,
    CostRule::{Uncounted, Weight, WeightView},
};

entries! {
    /// A graph input: declared by the file, never a node.
    INPUT = onnx("Input", 1, exactly(0), Uncounted, |_| {
        Err("a graph input is declared, not computed".into())
    })
    .declared();
    /// Written as an initializer; read from initializers and Constant nodes.
    CONSTANT = onnx("Constant", 1, exactly(0), Weight, |a| match a.tensor("value") {
        Some(t) => Ok(Op::Constant(t?)),
        None => Err("only tensor `value` constants are supported".into()),
    });
    TRANSPOSE = onnx("Transpose", 1, exactly(1), WeightView, |a| {
        let perm = a.ints("perm")?.ok_or("Transpose without perm is not supported")?;
        Ok(Op::Transpose {
            perm: perm.iter().map(|&p| p as usize).collect(),
        })
    })
    .with_attributes(&[AttrSpec::ints("perm")]);
    /// Inputs: data, shape.
    RESHAPE = onnx("Reshape", 1, exactly(2), WeightView, |a| {
        // allowzero=1 only differs when the target holds a 0.
        if a.node().int("allowzero").unwrap_or(0) != 0 {
            match a.node().input(1).and_then(|t| t.known.as_ref()) {
                Some(dims) if !dims.contains(&Dim::Fixed(0)) => {}
                _ => return Err("allowzero=1 with a possibly-zero target dim".into()),
            }
        }
        Ok(Op::Reshape)
    });
    UNSQUEEZE = onnx("Unsqueeze", 1, exactly(1), WeightView, |a| {
        Ok(Op::Unsqueeze {
            axes: a.ints("axes")?.unwrap_or_default(),
        })
    })
    .with_attributes(&[AttrSpec::ints("axes").input_since_either(1, 13)]);
    SQUEEZE = onnx("Squeeze", 1, exactly(1), Uncounted, |a| {
        let axes = a.ints("axes")?.unwrap_or_default();
        if !axes.is_empty() {
            return Ok(Op::Squeeze { axes });
        }
        // No axes means every size-1 dim: made explicit, so the emitted
        // node never carries an empty axes list (which runtimes read as
        // "squeeze nothing").
        let x = a.node().input(0).ok_or("no input")?;
        let ones = x.shape.dims().iter().enumerate().filter(|(_, d)| **d == Dim::Fixed(1));
        Ok(Op::Squeeze {
            axes: ones.map(|(i, _)| i as i64).collect(),
        })
    })
    .with_attributes(&[AttrSpec::ints("axes").input_since_either(1, 13)]);
    /// Inputs: data, starts, ends, axes (optional), steps (optional).
    SLICE = onnx("Slice", 1, between(3, 5), Uncounted, |_| Ok(Op::Slice));
    GATHER = onnx("Gather", 1, exactly(2), Uncounted, |a| Ok(Op::Gather { axis: a.int("axis")? }))
        .with_attributes(&[AttrSpec::int("axis", 0)]);
    GATHER_ELEMENTS = onnx("GatherElements", 11, exactly(2), Uncounted, |a| {
        Ok(Op::GatherElements { axis: a.int("axis")? })
    })
    .with_attributes(&[AttrSpec::int("axis", 0)]);
    GATHER_ND = onnx("GatherND", 11, exactly(2), Uncounted, |a| {
        match a.node().int("batch_dims").unwrap_or(0) {
            0 => Ok(Op::GatherNd),
            _ => Err("batch_dims != 0 is not supported".into()),
        }
    });
    /// Input: x (any numeric or bool type).
    NON_ZERO = onnx("NonZero", 9, exactly(1), Uncounted, |_| Ok(Op::NonZero));
    /// Shape{start, end} (opset 15) is imported as Shape then Slice.
    SHAPE = onnx("Shape", 1, exactly(1), Uncounted, |_| Ok(Op::Shape));
    CAST = onnx("Cast", 1, exactly(1), WeightView, |a| Ok(Op::Cast { to: a.dtype("to")? }))
        .with_attributes(&[AttrSpec::dtype("to")]);
    CONCAT = onnx("Concat", 1, at_least(1), Uncounted, |a| Ok(Op::Concat { axis: a.int("axis")? }))
        .with_attributes(&[AttrSpec::int("axis", 0)]);
    IDENTITY = onnx("Identity", 1, exactly(1), Uncounted, |_| Ok(Op::Identity));
    /// Inputs: data, shape.
    EXPAND = onnx("Expand", 8, exactly(2), Uncounted, |_| Ok(Op::Expand));
    /// Inputs: start, limit, delta.
    RANGE = onnx("Range", 11, exactly(3), Uncounted, |_| Ok(Op::Range));
    /// Inputs: data, repeats (int64, one per axis).
    TILE = onnx("Tile", 6, exactly(2), Uncounted, |_| Ok(Op::Tile));
    /// Inputs: data, axis.
    CUM_SUM = onnx("CumSum", 11, exactly(2), Uncounted, |a| {
        // Only the plain inclusive forward sum has a meaning in the IR.
        for flag in ["exclusive", "reverse"] {
            if a.node().int(flag).unwrap_or(0) != 0 {
                return Err(format!("{flag}=1 is not supported"));
            }
        }
        Ok(Op::CumSum)
    });
    CONSTANT_OF_SHAPE = onnx("ConstantOfShape", 9, exactly(1), Uncounted, |a| {
        let value = match a.tensor("value") {
            Some(t) => t?,
            None => Tensor::from_f32(vec![1], &[0.0]),
        };
        match value.len() {
            1 => Ok(Op::ConstantOfShape { value }),
            _ => Err("value must hold one element".into()),
        }
    })
    .with_attributes(&[AttrSpec::tensor("value")]);
    FLATTEN = onnx("Flatten", 1, exactly(1), Uncounted, |a| Ok(Op::Flatten { axis: a.int("axis")? }))
        .with_attributes(&[AttrSpec::int("axis", 1)]);
}
