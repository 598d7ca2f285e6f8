//! PyTorch's exports of the tiny seeded ModernBERT and DeBERTa-v3
//! checkpoints (tests/fixtures/foreign-modern, made by
//! scripts/make_modern_exports.py: Optimum's default export and
//! TorchScript with eager attention), against PyTorch's outputs of the
//! checkpoints (family2's goldens, transformers 5.23) at every position,
//! padding included.
//!
//! ModernBERT's files fuse as bertc's own graphs do: its packed Q/K/V
//! split into [B, n, S, d] heads, its rotation in that layout
//! (`x·cos + Concat(−x₂, x₁)·sin`, proven RoPE's tables per layer) and its
//! band mask are restated in the builder's forms, so that attention is
//! recognized in every layer, the sliding ones computed along their band,
//! and `--target onnxruntime` writes the rotations as RotaryEmbedding.
//! DeBERTa's files import (`Sign`, `Ceil` and `Tile` as IR ops, each
//! layer's `If` on the query and key lengths decided by shape inference
//! and inlined as its taken branch) and match at -O0 and -O2, their norms
//! and attention fused in every layer: the heads it folds into the batch
//! restated as [B, n, S, d], its c2p/p2c terms (gathers over the in-graph
//! position buckets, each already scaled) taken into the Attention's mask,
//! and its 2-D padding mask restated as a key mask plus uniform rows for
//! the padded queries (which onnxruntime's Attention would not give).

mod common;

use bertc::onnx::{import_bytes, proto, read_model};
use bertc::passes::{Level, Target};
use bertc::pipeline::{at_level, run, PipelineOptions, Source};
use bertc::runtime::NamedTensors;
use common::*;
use prost::Message;

fn file(name: &str) -> std::path::PathBuf {
    fixture(&format!("foreign-modern/{name}"))
}

/// The case's golden: its inputs and PyTorch's output.
fn golden_of(case: &str) -> (NamedTensors, NamedTensors) {
    let all = bertc::runtime::read_safetensors(&file(&format!("{case}.golden.safetensors"))).unwrap();
    let (inputs, outputs) = all
        .into_iter()
        .partition(|(name, _)| name == "input_ids" || name == "attention_mask");
    (inputs, outputs)
}

/// The layers of each ModernBERT case (3) and how many are sliding (1:
/// layer 1 of 3, global_attn_every_n_layers 2), its fused norms (the
/// embeddings', the attention norms of layers 1 and 2, three MLP norms,
/// the final norm; modernbert-cls adds its head's) and GELUs (one per
/// GeGLU, the head's).
const MODERNBERT: [(&str, usize, usize); 2] = [("modernbert-base", 7, 3), ("modernbert-cls", 8, 4)];
const LAYERS: usize = 3;
const SLIDING_LAYERS: usize = 1;

/// How many matches `pass` reported in `c`'s pipeline.
fn matches_of(c: &bertc::pipeline::Compiled, pass: &str) -> usize {
    c.report
        .all_passes()
        .filter(|r| r.pass == pass)
        .map(|r| r.report.matches)
        .sum()
}

/// `optimize -O2` of `case`'s export `form` for `target`: attention fused
/// in every layer (the sliding one blocked along its band), the norms and
/// GELUs fused, and exact against PyTorch in `runtimes`.
fn check_modernbert(case: &str, form: &str, target: Target, norms: usize, gelus: usize) {
    let g = read_model(&file(&format!("{case}-{form}.onnx"))).expect("the export imports");
    let what = format!("{case} {form} -O2 --target {}", target.name());
    let compiled = check_against_golden(case, &what, g, Level::O2, target);
    let counts = fused_counts(&compiled);
    let h = compiled.graph().op_histogram();
    assert_eq!(
        counts,
        FusedCounts {
            attention: LAYERS,
            layer_norm: norms,
            gelu: gelus,
        },
        "{what}: {h:?}"
    );
    assert_eq!(
        matches_of(&compiled, "block_sliding_attention"),
        SLIDING_LAYERS,
        "{what}"
    );
    // Q and K rotated in every layer: RotaryEmbedding for onnxruntime,
    // the primitive rotation elsewhere.
    let rotations = h.get("RotaryEmbedding").copied();
    let expected = (target == Target::Onnxruntime).then_some(2 * LAYERS);
    assert_eq!(rotations, expected, "{what}: {h:?}");
}

#[test]
fn modernbert_exports_fuse_every_layer_and_match_pytorch() {
    for (case, norms, gelus) in MODERNBERT {
        for form in ["optimum", "torchscript-eager"] {
            for target in [Target::Portable, Target::Onnxruntime] {
                check_modernbert(case, form, target, norms, gelus);
            }
        }
    }
}

/// The DeBERTa cases, their fused norms (the embeddings', the relative
/// table's, two per layer: the files already hold LayerNormalization) and
/// GELUs (one per layer's MLP; deberta-v3-cls adds its pooler's).
const DEBERTA: [(&str, usize, usize); 2] = [("deberta-v3-base", 6, 2), ("deberta-v3-cls", 6, 3)];
const DEBERTA_FORMS: [&str; 2] = ["optimum", "torchscript-eager"];
const DEBERTA_LAYERS: usize = 2;

/// `optimize` of `g` (`what` in messages) at `level` for `target`, exact
/// against `case`'s golden in tract (but for onnxruntime's own form) and
/// onnxruntime; the compiled pipeline for further checks.
fn check_against_golden(
    case: &str,
    what: &str,
    g: bertc::ir::Graph,
    level: Level,
    target: Target,
) -> bertc::pipeline::Compiled {
    let (inputs, torch) = golden_of(case);
    let options = PipelineOptions {
        target,
        ..at_level(level)
    };
    let compiled = run(test_session(), Source::Graph(g), &options).expect("optimizes");
    let bytes = compiled.to_bytes().unwrap();
    if target != Target::Onnxruntime {
        assert_close(
            &format!("{what}, tract"),
            &run_tract(&bytes, &inputs),
            &torch,
            1e-4,
        );
    }
    assert_close(
        &format!("{what}, onnxruntime"),
        &run_onnxruntime(&bytes, &inputs),
        &torch,
        1e-4,
    );
    compiled
}

#[test]
fn deberta_exports_optimize_and_match_pytorch_at_o0_and_o2() {
    for (case, norms, gelus) in DEBERTA {
        for form in DEBERTA_FORMS {
            for (level, target) in [
                (Level::O0, Target::Portable),
                (Level::O2, Target::Portable),
                (Level::O2, Target::Onnxruntime),
            ] {
                let g = read_model(&file(&format!("{case}-{form}.onnx"))).expect("the export imports");
                let what = format!("{case} {form} {level:?} --target {}", target.name());
                let compiled = check_against_golden(case, &what, g, level, target);
                let h = compiled.graph().op_histogram();
                // No If survives import; the position code is imported as is.
                assert_eq!(h.get("If"), None, "{what}: {h:?}");
                assert_eq!(h.get("Sign"), Some(&1), "{what}: {h:?}");
                assert_eq!(h.get("Tile"), Some(&4), "{what}: {h:?}");
                if level == Level::O2 {
                    // Attention fused in every layer: its folded heads, its
                    // c2p/p2c terms (the mask) and its 2-D padding mask
                    // restated (passes/folded_heads.rs, query_key_mask.rs).
                    // onnxruntime's form writes GELU after a bias as BiasGelu.
                    let n = |op: &str| h.get(op).copied().unwrap_or(0);
                    let counts = (
                        fused_counts(&compiled).attention,
                        n("LayerNormalization") + n("SkipLayerNormalization"),
                        n("Gelu") + n("BiasGelu"),
                    );
                    assert_eq!(counts, (DEBERTA_LAYERS, norms, gelus), "{what}: {h:?}");
                    assert_eq!(h.get("Erf"), None, "{what}: {h:?}");
                }
            }
        }
    }
}

/// `case`'s export `form` as protobuf, to be edited.
fn export_proto(case: &str, form: &str) -> proto::ModelProto {
    let bytes = std::fs::read(file(&format!("{case}-{form}.onnx"))).unwrap();
    proto::ModelProto::decode(bytes.as_slice()).unwrap()
}

/// The graph's nodes of `op_type`, by index.
fn indices_of(g: &proto::GraphProto, op_type: &str) -> Vec<usize> {
    (0..g.node.len())
        .filter(|&i| g.node[i].op_type == op_type)
        .collect()
}

fn bool_constant(name: &str, value: bool) -> proto::NodeProto {
    proto::NodeProto {
        output: vec![name.into()],
        name: name.into(),
        op_type: "Constant".into(),
        attribute: vec![proto::AttributeProto {
            name: "value".into(),
            r#type: proto::attribute_type::TENSOR,
            t: Some(proto::TensorProto {
                data_type: proto::data_type::BOOL,
                raw_data: vec![value as u8].into(),
                ..Default::default()
            }),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// The importer's error for `m`, which must fail without panicking.
fn import_error(m: &proto::ModelProto) -> String {
    let bytes = m.encode_to_vec();
    match std::panic::catch_unwind(|| import_bytes(&bytes)) {
        Err(_) => panic!("the importer panicked"),
        Ok(Ok(_)) => panic!("the edited model was accepted"),
        Ok(Err(e)) => e.to_string(),
    }
}

/// An If on a value of the input (the mask's first element) cannot be
/// decided at compile time: refused, naming the node.
#[test]
fn an_if_on_input_values_is_refused_naming_the_node() {
    let mut m = export_proto("deberta-v3-base", "optimum");
    let g = m.graph.as_mut().unwrap();
    let at = indices_of(g, "If")[0];
    let name = g.node[at].name.clone();
    let zero = proto::TensorProto {
        name: "hostile.zero".into(),
        data_type: proto::data_type::INT64,
        raw_data: 0i64.to_le_bytes().to_vec().into(),
        ..Default::default()
    };
    g.initializer.push(zero);
    let node =
        |op: &str, inputs: &[&str], out: &str, attribute: Vec<proto::AttributeProto>| proto::NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![out.into()],
            name: out.into(),
            op_type: op.into(),
            attribute,
            ..Default::default()
        };
    let to_bool = proto::AttributeProto {
        name: "to".into(),
        r#type: proto::attribute_type::INT,
        i: proto::data_type::BOOL as i64,
        ..Default::default()
    };
    let hostile = [
        node(
            "Gather",
            &["attention_mask", "hostile.zero"],
            "hostile.row",
            vec![],
        ),
        node(
            "Gather",
            &["hostile.row", "hostile.zero"],
            "hostile.first",
            vec![],
        ),
        node("Cast", &["hostile.first"], "hostile.condition", vec![to_bool]),
    ];
    g.node[at].input[0] = "hostile.condition".into();
    for (k, n) in hostile.into_iter().enumerate() {
        g.node.insert(at + k, n);
    }
    let err = import_error(&m);
    assert!(
        err.contains(&format!("node `{name}` (If")) && err.contains("run time"),
        "{err}"
    );
}

/// Forcing each layer's If to its other branch (a constant true
/// condition) imports the then-branch instead: it recomputes relative
/// positions from the key length with Sign and Ceil (and, as PyTorch traced
/// it, other bucket constants), reading outer values. bertc's file must
/// compute what onnxruntime computes running the edited file's If itself.
#[test]
fn a_constant_if_takes_its_then_branch_as_onnxruntime_does() {
    let case = "deberta-v3-base";
    let mut m = export_proto(case, "optimum");
    let g = m.graph.as_mut().unwrap();
    for (k, at) in indices_of(g, "If").into_iter().enumerate() {
        let at = at + k;
        let condition = format!("forced.condition.{k}");
        g.node[at].input[0] = condition.clone();
        g.node.insert(at, bool_constant(&condition, true));
    }
    let bytes = m.encode_to_vec();
    let (inputs, torch) = golden_of(case);
    let reference = run_onnxruntime(&bytes, &inputs);
    // The other branch answers differently: the test sees which one ran.
    let moved = assert_close("then vs else", &reference, &torch, f64::INFINITY);
    assert!(moved > 1e-2, "the then branch changed nothing: {moved:e}");
    let graph = import_bytes(&bytes).expect("the then branches import");
    let h = graph.op_histogram();
    // One Sign and Ceil outside, one in each of the two inlined branches.
    assert_eq!((h.get("Sign"), h.get("Ceil")), (Some(&3), Some(&3)), "{h:?}");
    let options = at_level(Level::O2);
    let compiled = run(test_session(), Source::Graph(graph), &options).expect("optimizes");
    let out = compiled.to_bytes().unwrap();
    assert_close(
        "then branches, tract",
        &run_tract(&out, &inputs),
        &reference,
        1e-4,
    );
    assert_close(
        "then branches, onnxruntime",
        &run_onnxruntime(&out, &inputs),
        &reference,
        1e-4,
    );
}

/// The export with its first If wrapped in `levels` more Ifs, each on a
/// constant false condition whose branches hold the If below.
fn nested_ifs(levels: usize) -> proto::ModelProto {
    let mut m = export_proto("deberta-v3-base", "optimum");
    let g = m.graph.as_mut().unwrap();
    let at = indices_of(g, "If")[0];
    let mut inner = g.node[at].clone();
    let outer_condition = inner.input[0].clone();
    for depth in 0..levels {
        let condition = format!("nested.condition.{depth}");
        let mut below = inner.clone();
        below.input[0] = condition.clone();
        let branch = proto::GraphProto {
            output: inner
                .output
                .iter()
                .map(|o| proto::ValueInfoProto {
                    name: o.clone(),
                    ..Default::default()
                })
                .collect(),
            node: vec![bool_constant(&condition, false), below],
            ..Default::default()
        };
        let mut outer = inner;
        outer.name = format!("nested.{depth}");
        outer.input[0] = outer_condition.clone();
        for a in outer.attribute.iter_mut() {
            a.g = Some(branch.clone());
        }
        inner = outer;
    }
    g.node[at] = inner;
    m
}

/// Ifs nested within the importer's bound are inlined level by level
/// (each branch's names renamed under its If, the innermost reading the
/// outer graph); deeper ones are refused, not expanded.
#[test]
fn nested_ifs_inline_within_the_bound_and_are_refused_past_it() {
    let graph = import_bytes(&nested_ifs(3).encode_to_vec()).expect("three levels import");
    assert_eq!(graph.op_histogram().get("If"), None);
    check_against_golden(
        "deberta-v3-base",
        "nested Ifs",
        graph,
        Level::O0,
        Target::Portable,
    );
    let err = import_error(&nested_ifs(12));
    assert!(err.contains("nest deeper than 8"), "{err}");
}
