//! The IR's own contracts: inference keeps symbolic dims, the verifier
//! names what is broken, dead-node elimination keeps exactly what outputs
//! need, and the pass manager verifies after each pass.

use bertc::ir::{
    verify, BinaryOp, DType, Dim, Graph, IrError, Op, Shape, Tensor, UnaryOp, Value, BATCH, SEQUENCE,
};
use bertc::passes::{DeadNodeElimination, Pass, PassError, PassManager, PassReport};

fn bs(h: usize) -> Shape {
    Shape(vec![Dim::sym(BATCH), Dim::sym(SEQUENCE), Dim::Fixed(h as i64)])
}

#[test]
fn reshape_keeps_symbolic_dims_through_zero_and_minus_one() {
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, bs(64)).unwrap();
    let split = g.add_const("split", Tensor::vec_i64(&[0, 0, 4, 16])).unwrap();
    let y = g.add("y", Op::Reshape, &[x, split]).unwrap();
    assert_eq!(g.info(y).shape.to_string(), "[batch_size,sequence_length,4,16]");
    let merge = g.add_const("merge", Tensor::vec_i64(&[0, -1, 64])).unwrap();
    let z = g.add("z", Op::Reshape, &[y, merge]).unwrap();
    assert_eq!(g.info(z).shape, bs(64));
    let bad = g.add_const("bad", Tensor::vec_i64(&[0, 0, 3, 16])).unwrap();
    let err = g.add("w", Op::Reshape, &[y, bad]).unwrap_err();
    assert!(err.to_string().contains("node `w` (Reshape)"), "{err}");
}

/// What DeBERTa's exports need inference to know: `batch·heads / heads`
/// (exact divisions of symbolic products only), Tile's repeated dims, and
/// an If condition `Cast<bool>(Not(Equal(S, S)))` decided as false.
#[test]
fn symbolic_division_tile_and_a_decided_length_comparison() {
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, bs(16)).unwrap();
    let shape = g.add("shape", Op::Shape, &[x]).unwrap();
    let flat = g.add("flat", Op::Flatten { axis: 2 }, &[x]).unwrap();
    let flat_shape = g.add("flat_shape", Op::Shape, &[flat]).unwrap();
    let zero = g.add_const("zero", Tensor::scalar_i64(0)).unwrap();
    let rows = g
        .add("rows", Op::Gather { axis: 0 }, &[flat_shape, zero])
        .unwrap();
    let one = g.add_const("one", Tensor::scalar_i64(1)).unwrap();
    let seq = g.add("seq", Op::Gather { axis: 0 }, &[shape, one]).unwrap();
    let batch = g.add("batch", Op::Binary(BinaryOp::Div), &[rows, seq]).unwrap();
    assert_eq!(g.info(batch).known, Some(vec![Dim::sym(BATCH)]));
    // A division that is not exact is not known.
    let three = g.add_const("three", Tensor::vec_i64(&[3])).unwrap();
    let thirds = g
        .add("thirds", Op::Binary(BinaryOp::Div), &[shape, three])
        .unwrap();
    assert_eq!(g.info(thirds).known, None);
    // Repeat counts known only symbolically multiply symbolically.
    let tiled = g.add("tiled", Op::Tile, &[x, shape]).unwrap();
    assert_eq!(
        g.info(tiled).shape.to_string(),
        "[batch_size*batch_size,sequence_length*sequence_length,256]"
    );
    let negative = g.add_const("negative", Tensor::vec_i64(&[1, -1, 1])).unwrap();
    let err = g.add("bad_tile", Op::Tile, &[x, negative]).unwrap_err();
    assert!(err.to_string().contains("negative"), "{err}");
    let equal = g
        .add("equal", Op::Binary(BinaryOp::Equal), &[shape, shape])
        .unwrap();
    let length = g.add("length", Op::Gather { axis: 0 }, &[equal, one]).unwrap();
    let differ = g.add("differ", Op::Unary(UnaryOp::Not), &[length]).unwrap();
    let condition = g
        .add("condition", Op::Cast { to: DType::Bool }, &[differ])
        .unwrap();
    assert_eq!(g.info(condition).known, Some(vec![Dim::Fixed(0)]));
}

#[test]
fn shape_gather_slice_chain_yields_sequence_length() {
    let mut g = Graph::new();
    let ids = g
        .add_input(
            "ids",
            DType::I64,
            Shape(vec![Dim::sym(BATCH), Dim::sym(SEQUENCE)]),
        )
        .unwrap();
    let table = g
        .add_const(
            "table",
            Tensor::from_i64(vec![1, 40], &(0..40).collect::<Vec<_>>()),
        )
        .unwrap();
    let shape = g.add("shape", Op::Shape, &[ids]).unwrap();
    let one = g.add_const("one", Tensor::scalar_i64(1)).unwrap();
    let seq = g.add("seq", Op::Gather { axis: 0 }, &[shape, one]).unwrap();
    assert_eq!(g.info(seq).known, Some(vec![Dim::sym(SEQUENCE)]));
    let seq = g.add("seq1", Op::Unsqueeze { axes: vec![0] }, &[seq]).unwrap();
    let zero = g.add_const("zero", Tensor::vec_i64(&[0])).unwrap();
    let axis = g.add_const("axis", Tensor::vec_i64(&[1])).unwrap();
    let pos = g.add("pos", Op::Slice, &[table, zero, seq, axis]).unwrap();
    assert_eq!(g.info(pos).shape.to_string(), "[1,sequence_length]");
}

/// A one-axis Slice whose bounds are computed at run time (DeBERTa's
/// relative table cut to the rows S reads) has that axis as the symbol
/// `slice_length`; without a known axis, or with more than one bound, it
/// is refused.
#[test]
fn a_slice_with_run_time_bounds_has_a_symbolic_length() {
    let mut g = Graph::new();
    let ids = g
        .add_input(
            "ids",
            DType::I64,
            Shape(vec![Dim::sym(BATCH), Dim::sym(SEQUENCE)]),
        )
        .unwrap();
    let table = g
        .add_const("table", Tensor::from_f32(vec![2, 3, 40], &[0.0; 240]))
        .unwrap();
    let shape = g.add("shape", Op::Shape, &[ids]).unwrap();
    let (one, two) = (
        g.add_const("one", Tensor::vec_i64(&[1])).unwrap(),
        g.add_const("two", Tensor::vec_i64(&[2])).unwrap(),
    );
    let seq = g.add("seq", Op::Slice, &[shape, one, two]).unwrap();
    let lut = g
        .add_const("lut", Tensor::from_i64(vec![40], &(0..40).collect::<Vec<_>>()))
        .unwrap();
    let first = g.add("first", Op::Gather { axis: 0 }, &[lut, seq]).unwrap();
    let end = g.add("end", Op::Binary(BinaryOp::Add), &[first, seq]).unwrap();
    let cut = g.add("cut", Op::Slice, &[table, first, end, two]).unwrap();
    assert_eq!(g.info(cut).shape.to_string(), "[2,3,slice_length]");
    // Without axes the run-time bounds could be any axis'.
    assert!(g.add("no_axes", Op::Slice, &[table, first, end]).is_err());
}

#[test]
fn broadcasting_and_matmul_check_their_operands() {
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, bs(8)).unwrap();
    let w = g
        .add_const("w", Tensor::from_f32(vec![8, 3], &[0.0; 24]))
        .unwrap();
    let y = g.add("y", Op::MatMul, &[x, w]).unwrap();
    assert_eq!(g.info(y).shape, bs(3));
    let err = g.add("z", Op::MatMul, &[y, w]).unwrap_err();
    assert!(err.to_string().contains("inner dims differ"), "{err}");
    let v = g.add_const("v", Tensor::from_f32(vec![5], &[0.0; 5])).unwrap();
    let err = g.add("s", Op::Binary(BinaryOp::Add), &[y, v]).unwrap_err();
    assert!(err.to_string().contains("do not broadcast"), "{err}");
    let ids = g.add_input("ids", DType::I64, bs(3)).unwrap();
    let err = g.add("e", Op::Unary(UnaryOp::Erf), &[ids]).unwrap_err();
    assert!(err.to_string().contains("i64"), "{err}");
}

fn small_graph() -> (Graph, Value) {
    let mut g = Graph::new();
    let x = g.add_input("x", DType::F32, bs(4)).unwrap();
    let t = g.add("t", Op::Unary(UnaryOp::Tanh), &[x]).unwrap();
    let r = g.add("r", Op::Unary(UnaryOp::Relu), &[t]).unwrap();
    g.set_output("y", r);
    (g, t)
}

#[test]
fn verifier_names_the_node_with_a_stale_type() {
    let (mut g, t) = small_graph();
    verify(&g).unwrap();
    g.node_mut(t.node).outputs[0].shape = bs(5);
    let err = verify(&g).unwrap_err();
    assert!(
        err.to_string().contains("`r`") || err.to_string().contains("`t`"),
        "{err}"
    );
}

#[test]
fn verifier_finds_cycles() {
    let (mut g, t) = small_graph();
    let r = g.outputs()[0].1;
    // Feed r back into t's consumer chain: r -> (uses of t) makes r read itself.
    g.replace_uses(t, r);
    assert!(matches!(verify(&g), Err(IrError::Cycle(_))));
}

#[test]
fn dead_node_elimination_keeps_inputs_and_what_outputs_need() {
    let (mut g, t) = small_graph();
    g.add_input("unused", DType::F32, bs(4)).unwrap();
    g.add("dead", Op::Unary(UnaryOp::Sqrt), &[t]).unwrap();
    g.add_const("dead_c", Tensor::scalar_f32(1.0)).unwrap();
    let report = DeadNodeElimination.run(&mut g).unwrap();
    assert_eq!(
        report,
        PassReport {
            matches: 2,
            nodes_added: 0,
            nodes_removed: 2
        }
    );
    assert!(g.find("dead").is_none() && g.find("dead_c").is_none());
    assert!(g.find("unused").is_some() && g.find("t").is_some() && g.find("r").is_some());
    verify(&g).unwrap();
}

struct BreaksTypes;
impl Pass for BreaksTypes {
    fn name(&self) -> &'static str {
        "breaks_types"
    }
    fn run(&self, g: &mut Graph) -> Result<PassReport, IrError> {
        let id = g.find("t").unwrap();
        g.node_mut(id).outputs[0].dtype = DType::F16;
        Ok(PassReport::default())
    }
}

#[test]
fn pass_manager_verifies_after_each_pass_and_names_the_pass() {
    let (mut g, _) = small_graph();
    let err = PassManager::new()
        .with(BreaksTypes)
        .verify_each(true)
        .run(&mut g)
        .unwrap_err();
    assert!(
        matches!(
            err,
            PassError::Verify {
                pass: "breaks_types",
                ..
            }
        ),
        "{err}"
    );
    let runs = PassManager::new()
        .with(DeadNodeElimination)
        .run(&mut small_graph().0)
        .unwrap();
    assert_eq!(runs[0].pass, "dead_node_elimination");
    assert_eq!((runs[0].nodes_before, runs[0].nodes_after), (3, 3));
}

#[test]
fn unknown_pass_names_list_the_valid_ones() {
    let err = PassManager::from_names(["dead_node_elimination", "fuse_everything"])
        .err()
        .unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("fuse_everything") && msg.contains("dead_node_elimination"),
        "{msg}"
    );
}

#[test]
fn cumsum_counts_along_its_axis_in_tract_and_survives_a_round_trip() {
    use bertc::onnx::{export_bytes, import_bytes, ExportOptions};
    use bertc::runtime::{HostTensor, NamedTensors, TractSession};
    let mut g = Graph::new();
    let ids = g
        .add_input(
            "ids",
            DType::I64,
            Shape(vec![Dim::sym(BATCH), Dim::sym(SEQUENCE)]),
        )
        .unwrap();
    let axis = g.add_const("axis", Tensor::scalar_i64(1)).unwrap();
    let sum = g.add("sum", Op::CumSum, &[ids, axis]).unwrap();
    assert_eq!(g.info(sum).shape.to_string(), "[batch_size,sequence_length]");
    g.set_output("sum", sum);
    let bad_axis = g.add_const("bad_axis", Tensor::scalar_i64(2)).unwrap();
    let err = g.add("bad", Op::CumSum, &[ids, bad_axis]).unwrap_err();
    assert!(
        err.to_string().contains("axis 2 is out of range for rank 2"),
        "{err}"
    );

    let bytes = export_bytes(&g, ExportOptions::default()).unwrap();
    let back = import_bytes(&bytes).unwrap();
    assert_eq!(back.op_histogram().get("CumSum"), Some(&1));
    let mut s = TractSession::from_bytes(&bertc::Session::single_threaded(), &bytes).unwrap();
    let inputs: NamedTensors = [(
        "ids".to_string(),
        HostTensor::i64(vec![2, 4], vec![1, 0, 1, 1, 0, 0, 1, 1]),
    )]
    .into();
    let out = s.run(&inputs).unwrap()["sum"].clone();
    assert_eq!(
        out.data,
        bertc::runtime::HostData::I64(vec![1, 1, 2, 3, 0, 0, 1, 2])
    );
}
