//! Walks every entry of the op table with an example op: it survives
//! export and import unchanged at the opset bertc picks for it and at the
//! newest, inference and the verifier enforce the entry's arity and output
//! count, import refuses it below its first opset, and the cost model
//! counts its multiply-adds as worked by hand.

use std::collections::HashSet;

use prost::Message;

use super::*;
use crate::ir::{infer, verify, DType, GeluApproximation, Graph, Shape, Tensor, Value, ValueInfo};
use crate::onnx::{export_bytes, import_bytes, proto, ExportOptions, IMPORT_OPSETS, MAX_OPSET, MIN_OPSET};

/// One input of an example node.
enum Arg {
    /// A graph input of this type.
    In(DType, &'static [usize]),
    /// A constant, for inputs whose values inference must know.
    Const(Tensor),
}

use Arg::{Const, In};
use DType::{Bool, F32, I32, I64, I8, U8};

const M: &[usize] = &[2, 3];
const HIDDEN: &[usize] = &[1, 4, 8];
const SCALAR: &[usize] = &[];

/// An op of every kind, with inputs its shape rule accepts.
fn examples() -> Vec<(Op, Vec<Arg>)> {
    let unary = [
        UnaryOp::Erf,
        UnaryOp::Tanh,
        UnaryOp::Sqrt,
        UnaryOp::Relu,
        UnaryOp::Sigmoid,
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Softplus,
        UnaryOp::Abs,
        UnaryOp::Reciprocal,
        UnaryOp::Cos,
        UnaryOp::Sin,
        UnaryOp::Round,
    ];
    let binary = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Pow,
        BinaryOp::Max,
        BinaryOp::Min,
        BinaryOp::Equal,
        BinaryOp::Less,
        BinaryOp::Greater,
        BinaryOp::GreaterOrEqual,
        BinaryOp::LessOrEqual,
    ];
    let mut all: Vec<(Op, Vec<Arg>)> = vec![
        (Op::Input, vec![]),
        (Op::Constant(Tensor::from_f32(vec![2], &[1.0, 2.0])), vec![]),
        (Op::Unary(UnaryOp::Not), vec![In(Bool, M)]),
        (Op::Binary(BinaryOp::And), vec![In(Bool, M), In(Bool, M)]),
        (Op::Binary(BinaryOp::Or), vec![In(Bool, M), In(Bool, M)]),
        (
            Op::Clip,
            vec![
                In(F32, M),
                Const(Tensor::scalar_f32(0.0)),
                Const(Tensor::scalar_f32(6.0)),
            ],
        ),
        (Op::Where, vec![In(Bool, M), In(F32, M), In(F32, M)]),
        (Op::MatMul, vec![In(F32, &[2, 3]), In(F32, &[3, 4])]),
        (
            Op::Gemm {
                alpha: 0.5,
                beta: 2.0,
                trans_a: true,
                trans_b: false,
            },
            vec![In(F32, &[3, 2]), In(F32, &[3, 4]), In(F32, &[4])],
        ),
        (
            Op::ReduceMean {
                axes: vec![-1],
                keepdims: false,
            },
            vec![In(F32, M)],
        ),
        (
            Op::ReduceSum {
                axes: vec![1],
                keepdims: false,
            },
            vec![In(I32, M)],
        ),
        (
            Op::ReduceL2 {
                axes: vec![-1],
                keepdims: true,
            },
            vec![In(F32, M)],
        ),
        (
            Op::ReduceMax {
                axes: vec![0],
                keepdims: true,
            },
            vec![In(F32, M)],
        ),
        (
            Op::ReduceMin {
                axes: vec![1, 0],
                keepdims: true,
            },
            vec![In(F32, M)],
        ),
        (Op::Softmax { axis: 0 }, vec![In(F32, M)]),
        (
            Op::LayerNorm {
                axis: -1,
                epsilon: 1e-6,
            },
            vec![In(F32, M), In(F32, &[3]), In(F32, &[3])],
        ),
        (
            Op::RmsNorm {
                axis: -1,
                epsilon: 1e-6,
            },
            vec![In(F32, M), In(F32, &[3])],
        ),
        (
            Op::Gelu {
                approximate: GeluApproximation::Tanh,
            },
            vec![In(F32, M)],
        ),
        (
            Op::Attention {
                q_num_heads: 2,
                kv_num_heads: 1,
                scale: Some(0.25),
            },
            vec![
                In(F32, HIDDEN),
                In(F32, &[1, 4, 4]),
                In(F32, &[1, 4, 4]),
                In(F32, &[1, 1, 4, 4]),
            ],
        ),
        (
            Op::RotaryEmbedding { num_heads: 2 },
            vec![In(F32, HIDDEN), In(F32, &[1, 4, 2]), In(F32, &[1, 4, 2])],
        ),
        (Op::MatMulInteger, vec![In(U8, &[2, 3]), In(I8, &[3, 4])]),
        (Op::DynamicQuantizeLinear, vec![In(F32, M)]),
        (
            Op::QuantizeLinear { axis: 1 },
            vec![In(F32, M), Const(Tensor::scalar_f32(0.1)), In(U8, SCALAR)],
        ),
        (
            Op::DequantizeLinear { axis: 0 },
            vec![In(U8, M), In(F32, SCALAR), In(U8, SCALAR)],
        ),
        (
            Op::QLinearMatMul,
            vec![
                In(U8, &[2, 3]),
                In(F32, SCALAR),
                In(U8, SCALAR),
                In(U8, &[3, 4]),
                In(F32, SCALAR),
                In(U8, SCALAR),
                In(F32, SCALAR),
                In(U8, SCALAR),
            ],
        ),
        (Op::Transpose { perm: vec![1, 0] }, vec![In(F32, M)]),
        (Op::Reshape, vec![In(F32, M), Const(Tensor::vec_i64(&[3, 2]))]),
        (Op::Unsqueeze { axes: vec![0] }, vec![In(F32, M)]),
        (Op::Squeeze { axes: vec![0] }, vec![In(F32, &[1, 3])]),
        (
            Op::Slice,
            vec![
                In(F32, M),
                Const(Tensor::vec_i64(&[0])),
                Const(Tensor::vec_i64(&[1])),
                Const(Tensor::vec_i64(&[0])),
            ],
        ),
        (Op::Gather { axis: 1 }, vec![In(F32, M), In(I64, &[2])]),
        (Op::GatherElements { axis: 1 }, vec![In(F32, M), In(I64, &[2, 2])]),
        (Op::GatherNd, vec![In(F32, M), In(I64, &[1, 2])]),
        (Op::NonZero, vec![In(I64, M)]),
        (Op::Shape, vec![In(F32, M)]),
        (Op::Cast { to: DType::F16 }, vec![In(F32, M)]),
        (Op::Concat { axis: 1 }, vec![In(F32, M), In(F32, M)]),
        (Op::Identity, vec![In(F32, M)]),
        (
            Op::Expand,
            vec![In(F32, &[1, 3]), Const(Tensor::vec_i64(&[2, 3]))],
        ),
        (
            Op::Range,
            vec![
                Const(Tensor::scalar_i64(0)),
                Const(Tensor::scalar_i64(5)),
                Const(Tensor::scalar_i64(1)),
            ],
        ),
        (Op::CumSum, vec![In(F32, M), Const(Tensor::scalar_i64(1))]),
        (
            Op::ConstantOfShape {
                value: Tensor::from_i64(vec![1], &[7]),
            },
            vec![Const(Tensor::vec_i64(&[2, 3]))],
        ),
        (Op::Flatten { axis: 2 }, vec![In(F32, &[2, 3, 4])]),
        (
            Op::Contrib(ContribOp::SkipLayerNorm { epsilon: 1e-5 }),
            vec![In(F32, HIDDEN), In(F32, HIDDEN), In(F32, &[8]), In(F32, &[8])],
        ),
        (
            Op::Contrib(ContribOp::BiasGelu),
            vec![In(F32, HIDDEN), In(F32, &[8])],
        ),
        (
            Op::Contrib(ContribOp::FastGelu),
            vec![In(F32, HIDDEN), In(F32, &[8])],
        ),
        (
            Op::Contrib(ContribOp::EmbedLayerNorm { epsilon: 1e-5 }),
            vec![
                In(I32, &[1, 4]),
                In(I32, &[1, 4]),
                In(F32, &[10, 8]),
                In(F32, &[4, 8]),
                In(F32, &[2, 8]),
                In(F32, &[8]),
                In(F32, &[8]),
            ],
        ),
        (
            Op::Contrib(ContribOp::Attention {
                num_heads: 2,
                scale: None,
                mask_filter_value: None,
            }),
            vec![
                In(F32, HIDDEN),
                In(F32, &[8, 24]),
                In(F32, &[24]),
                In(I32, &[1, 4]),
            ],
        ),
        (
            Op::Contrib(ContribOp::MatMulIntegerToFloat),
            vec![In(U8, &[2, 3]), In(I8, &[3, 4]), In(F32, SCALAR), In(F32, SCALAR)],
        ),
        (
            Op::Contrib(ContribOp::DynamicQuantizeMatMul),
            vec![In(F32, M), In(I8, &[3, 4]), In(F32, SCALAR)],
        ),
        (
            Op::Contrib(ContribOp::QAttention {
                num_heads: 2,
                scale: None,
                mask_filter_value: Some(-1e4),
            }),
            vec![
                In(U8, HIDDEN),
                In(I8, &[8, 24]),
                In(F32, &[24]),
                In(F32, SCALAR),
                In(F32, &[24]),
                In(I32, &[1]),
            ],
        ),
        (
            Op::Contrib(ContribOp::QEmbedLayerNorm { epsilon: 1e-12 }),
            vec![
                In(I32, &[1, 4]),
                In(I32, &[1, 4]),
                In(U8, &[10, 8]),
                In(U8, &[4, 8]),
                In(U8, &[2, 8]),
                In(U8, &[8]),
                In(U8, &[8]),
                In(I32, &[1, 4]),
                In(F32, SCALAR),
                In(F32, SCALAR),
                In(F32, SCALAR),
                In(F32, SCALAR),
                In(F32, SCALAR),
                In(U8, SCALAR),
                In(U8, SCALAR),
                In(U8, SCALAR),
                In(U8, SCALAR),
                In(U8, SCALAR),
            ],
        ),
    ];
    all.extend(unary.map(|u| (Op::Unary(u), vec![In(F32, M)])));
    all.extend(binary.map(|b| (Op::Binary(b), vec![In(F32, M), In(F32, M)])));
    all
}

/// A graph computing `op` (named `node`) of `args`, every output a graph output.
fn graph_of(op: &Op, args: &[Arg]) -> Graph {
    let mut g = Graph::new();
    let inputs: Vec<Option<Value>> = args
        .iter()
        .enumerate()
        .map(|(i, arg)| {
            Some(match arg {
                In(dtype, dims) => g.add_input(&format!("x{i}"), *dtype, Shape::fixed(dims)).unwrap(),
                Const(t) => g.add_const(&format!("c{i}"), t.clone()).unwrap(),
            })
        })
        .collect();
    let id = match op {
        Op::Input => g.add_input("node", F32, Shape::fixed(M)).unwrap().node,
        Op::Constant(t) => g.add_const("node", t.clone()).unwrap().node,
        op => g
            .add_node("node", op.clone(), &inputs)
            .unwrap_or_else(|e| panic!("the example of {op} is invalid: {e}")),
    };
    for slot in 0..g.node(id).outputs.len() {
        g.set_output(&format!("y{slot}"), Value { node: id, slot });
    }
    g
}

fn same_entry(a: &OpSchema, b: &OpSchema) -> bool {
    std::ptr::eq(a, b)
}

#[test]
fn every_entry_has_an_example_and_every_example_its_entry() {
    let examples = examples();
    for entry in all() {
        let n = examples
            .iter()
            .filter(|(op, _)| same_entry(op.schema(), entry))
            .count();
        assert_eq!(n, 1, "{} has {n} examples", entry.kind);
    }
    for (op, _) in &examples {
        assert!(
            all().any(|e| same_entry(e, op.schema())),
            "{op}'s entry is not listed"
        );
    }
}

#[test]
fn names_are_unique_and_import_finds_each_entry() {
    let mut kinds = HashSet::new();
    for entry in all() {
        assert!(kinds.insert(entry.kind), "kind {} is used twice", entry.kind);
        let Some(domain) = entry.domain else {
            continue;
        };
        let found = find(domain, entry.op_type).expect("import finds every entry");
        assert!(same_entry(found, entry), "{} is shadowed", entry.kind);
        // The kind is the op_type, qualified by the domain where it clashes.
        let clashes = all().any(|e| e.domain == Some(Domain::Onnx) && e.op_type == entry.op_type);
        let kind = match domain == Domain::Microsoft && clashes {
            true => format!("{}.{}", domain.name(), entry.op_type),
            false => entry.op_type.to_string(),
        };
        assert_eq!(entry.kind, kind);
    }
}

#[test]
fn attribute_values_follow_the_specs() {
    for (op, _) in examples() {
        let (entry, values) = op.entry();
        assert_eq!(values.len(), entry.attributes.len(), "{op}");
        for (spec, value) in entry.attributes.iter().zip(&values) {
            if let Some(value) = value {
                assert_eq!(value.ty(), spec.ty, "{op}: {}", spec.name);
                assert!(
                    op.to_string().contains(&format!("{}={value}", spec.field)),
                    "{op}"
                );
            }
            // Only integer lists move to inputs, right after the IR's operands.
            if let Some(moved) = spec.input {
                assert_eq!(spec.ty, AttrType::Ints, "{op}: {}", spec.name);
                assert_eq!(moved.slot, entry.inputs.max, "{op}: {}", spec.name);
            }
        }
        assert!(op.to_string().starts_with(entry.kind));
    }
}

#[test]
fn every_op_survives_export_and_import() {
    for (op, args) in examples() {
        let g = graph_of(&op, &args);
        for opset in [None, Some(MAX_OPSET)] {
            let opts = ExportOptions {
                opset,
                ..Default::default()
            };
            let bytes = export_bytes(&g, opts).unwrap_or_else(|e| panic!("{op}: {e}"));
            let back = import_bytes(&bytes).unwrap_or_else(|e| panic!("{op} at {opset:?}: {e}"));
            let id = back.find("node").unwrap_or_else(|| panic!("{op}: no node"));
            assert_eq!(back.node(id).op, op, "at opset {opset:?}");
        }
    }
}

#[test]
fn inference_and_the_verifier_enforce_the_arity() {
    for (op, args) in examples() {
        let entry = op.schema();
        let g = graph_of(&op, &args);
        verify(&g).unwrap_or_else(|e| panic!("{op}: {e}"));
        let node = g.node(g.find("node").unwrap());
        assert_eq!(node.outputs.len(), entry.outputs, "{op}");
        let Arity { min, max } = entry.inputs;
        assert!((min..=max).contains(&args.len()), "{op}");
        if matches!(op, Op::Input) {
            continue;
        }
        let inputs: Vec<Option<&ValueInfo>> = g
            .inputs_of(g.find("node").unwrap())
            .into_iter()
            .map(|v| v.map(|v| g.info(v)))
            .collect();
        if min > 0 {
            let e = infer(&op, &inputs[..min - 1]).unwrap_err();
            assert!(e.starts_with(&format!("needs {min} inputs")), "{op}: {e}");
        }
        if max < usize::MAX {
            let mut long = inputs.clone();
            long.resize(max + 1, inputs.first().copied().flatten());
            let e = infer(&op, &long).unwrap_err();
            assert!(e.starts_with(&format!("takes at most {max} inputs")), "{op}: {e}");
        }
    }
}

#[test]
fn import_refuses_an_op_below_its_first_opset() {
    for (op, args) in examples() {
        let entry = op.schema();
        if entry.domain != Some(Domain::Onnx) || entry.since <= *IMPORT_OPSETS.start() {
            continue;
        }
        let g = graph_of(&op, &args);
        let mut model =
            proto::ModelProto::decode(&*export_bytes(&g, ExportOptions::default()).unwrap()).unwrap();
        model.opset_import[0].version = entry.since - 1;
        let e = import_bytes(&model.encode_to_vec()).unwrap_err().to_string();
        let needle = format!("{} does not exist before opset {}", entry.op_type, entry.since);
        assert!(e.contains(&needle), "{e}");
        if entry.since > MIN_OPSET {
            let too_low = crate::onnx::resolve_opset(&g, Some(entry.since - 1));
            assert!(too_low.is_err(), "{op} exported at opset {}", entry.since - 1);
        }
    }
}

/// Multiply-adds of the examples, worked by hand; every other op counts none.
fn expected_macs(kind: &str) -> u64 {
    match kind {
        // [2, 3] · [3, 4], whatever the operand types.
        "MatMul"
        | "Gemm"
        | "MatMulInteger"
        | "QLinearMatMul"
        | "MatMulIntegerToFloat"
        | "DynamicQuantizeMatMul" => 2 * 3 * 4,
        // Q·Kᵀ and P·V: 4 queries × 2 heads × 4 keys × head size 4, twice.
        "Attention" => 2 * (4 * 2 * 4 * 4),
        // [4, 8] · [8, 24], then two products of 4 × 4 × 8 (two heads of 4).
        "com.microsoft.Attention" | "QAttention" => 4 * 8 * 24 + 2 * 4 * 4 * 8,
        _ => 0,
    }
}

#[test]
fn the_cost_model_counts_every_op() {
    for (op, args) in examples() {
        let g = graph_of(&op, &args);
        let cost = crate::cost::graph_cost(&g, 1, 1).unwrap_or_else(|e| panic!("{op}: {e}"));
        assert_eq!(cost.macs_per_sequence.total, expected_macs(op.kind()), "{op}");
    }
}
