//! Every pass of `all_pass_names`, each on a graph where its pattern exists:
//! it must report the number of matches the graph's structure implies, leave
//! a graph that verifies, keep every output (same names, same shapes) and
//! give the same numbers — in tract within 1e-4, or, for the ops tract
//! cannot run (com.microsoft EmbedLayerNormalization and Attention), in
//! onnxruntime against tract's run of the graph before the pass.
//!
//! Counts are written as functions of the layer count L and checked on two
//! presets (bert-tiny, L = 2; bert-mini, L = 4), so a pass that matches only
//! the first layer, or one instance too many, fails.

mod common;

use bertc::builder::Head;
use bertc::ir::{verify, Graph, Op, Value};
use bertc::onnx::{export_bytes, read_model, ExportOptions};
use bertc::passes::{all_pass_names, level_passes, Level, PassManager};
use bertc::pipeline::{build, load_config, BuildOptions};
use bertc::runtime::inputs_for;
use common::*;

/// max-abs tolerance of every comparison here (fp32 rewrites).
const ATOL: f64 = 1e-4;

/// Where the rewritten graph can run.
#[derive(Clone, Copy, PartialEq)]
enum Runtime {
    Tract,
    /// com.microsoft ops tract does not have: onnxruntime runs the result.
    Onnxruntime,
}

/// The graph of a preset (seed 0) as built, after `prepare`.
fn prepared(preset: &str, head: Option<Head>, prepare: &[&str]) -> Graph {
    let config = load_config(preset).unwrap();
    let opts = BuildOptions {
        head,
        ..Default::default()
    };
    let mut g = build(&config, &opts).unwrap().graph;
    PassManager::from_names(prepare.iter().copied())
        .unwrap()
        .verify_each(true)
        .run(&mut g)
        .unwrap();
    g
}

/// The -O2 pipeline without its last passes: what the onnxruntime lowering
/// passes start from.
fn o2() -> Vec<&'static str> {
    level_passes(Level::O2)
}

/// Runs `pass` on `before`; asserts its match count, that the result
/// verifies, keeps every output and computes the same numbers. Returns the
/// rewritten graph.
fn check_pass(what: &str, before: &Graph, pass: &str, expected: usize, runtime: Runtime) -> Graph {
    let mut after = before.clone();
    let runs = PassManager::from_names([pass])
        .unwrap()
        .verify_each(true)
        .run(&mut after)
        .unwrap();
    assert_eq!(
        runs[0].report.matches, expected,
        "{what}: `{pass}` matched {} times, expected {expected}",
        runs[0].report.matches
    );
    verify(&after).unwrap();
    let names = |g: &Graph| -> Vec<String> { g.outputs().iter().map(|(n, _)| n.clone()).collect() };
    assert_eq!(
        names(&after),
        names(before),
        "{what}: `{pass}` changed the outputs"
    );

    let inputs = inputs_for(before, 3, 16);
    let reference = run_tract(&export_bytes(before, ExportOptions::default()).unwrap(), &inputs);
    let bytes = export_bytes(&after, ExportOptions::default()).unwrap();
    let actual = match runtime {
        Runtime::Tract => run_tract(&bytes, &inputs),
        Runtime::Onnxruntime => run_onnxruntime(&bytes, &inputs),
    };
    assert_eq!(
        actual.keys().collect::<Vec<_>>(),
        reference.keys().collect::<Vec<_>>(),
        "{what}: `{pass}`: the outputs run differ"
    );
    let worst = assert_close(&format!("{what} after `{pass}`"), &actual, &reference, ATOL);
    eprintln!("{what}: `{pass}` {expected} matches, max-abs {worst:e}");
    after
}

/// bert-tiny (L = 2) and bert-mini (L = 4), with their layer counts.
const PRESETS: [(&str, usize); 2] = [("bert-tiny", 2), ("bert-mini", 4)];

#[test]
fn fuse_layer_norm_fuses_the_embeddings_and_two_per_layer() {
    for (preset, l) in PRESETS {
        check_pass(
            preset,
            &prepared(preset, None, &[]),
            "fuse_layer_norm",
            1 + 2 * l,
            Runtime::Tract,
        );
    }
}

#[test]
fn fuse_gelu_fuses_one_per_layer() {
    for (preset, l) in PRESETS {
        check_pass(
            preset,
            &prepared(preset, None, &[]),
            "fuse_gelu",
            l,
            Runtime::Tract,
        );
    }
}

#[test]
fn fuse_attention_fuses_one_per_layer() {
    for (preset, l) in PRESETS {
        check_pass(
            preset,
            &prepared(preset, None, &[]),
            "fuse_attention",
            l,
            Runtime::Tract,
        );
    }
}

#[test]
fn decompose_attention_writes_every_fused_attention_out_again() {
    for (preset, l) in PRESETS {
        let mut after = check_pass(
            preset,
            &prepared(preset, None, &o2()),
            "decompose_attention",
            l,
            Runtime::Tract,
        );
        // The fused nodes are left to dead_node_elimination.
        PassManager::from_names(["dead_node_elimination"])
            .unwrap()
            .run(&mut after)
            .unwrap();
        let ops = after.op_histogram();
        assert_eq!(ops.get("Attention"), None, "{preset}: {ops:?}");
        assert_eq!(ops["Softmax"], l, "{preset}");
        // The classifier's pruned last layer (one query row) too.
        let cls = prepared(preset, Some(Head::SequenceClassification), &o2());
        check_pass(preset, &cls, "decompose_attention", l, Runtime::Tract);
    }
    // Grouped queries (fewer K/V heads) are not this pass's form: left fused.
    let mut g = prepared("bert-tiny", None, &o2());
    let ids: Vec<_> = g.node_ids().collect();
    for id in ids {
        if let Op::Attention { kv_num_heads, .. } = &mut g.node_mut(id).op {
            *kv_num_heads = 1;
        }
    }
    // Only the pass's refusal is under test: relabelling the heads leaves K
    // and V their full width, which the verifier (on in debug builds)
    // rightly rejects, so it is off for this run.
    let runs = PassManager::from_names(["decompose_attention"])
        .unwrap()
        .verify_each(false)
        .run(&mut g)
        .unwrap();
    assert_eq!(runs[0].report.matches, 0);
    assert_eq!(g.op_histogram()["Attention"], 2);
}

#[test]
fn merge_qkv_merges_one_group_per_layer() {
    for (preset, l) in PRESETS {
        check_pass(
            preset,
            &prepared(preset, None, &[]),
            "merge_qkv",
            l,
            Runtime::Tract,
        );
    }
}

#[test]
fn dead_node_elimination_removes_what_fuse_layer_norm_leaves() {
    // Each decomposed layer norm leaves 11 nodes dead: ReduceMean, Sub, Pow
    // and its exponent, ReduceMean, Add and its epsilon, Sqrt, Div, Mul, Add
    // (γ and β are read by the fused op).
    for (preset, l) in PRESETS {
        let g = prepared(preset, None, &["fuse_layer_norm"]);
        check_pass(
            preset,
            &g,
            "dead_node_elimination",
            11 * (1 + 2 * l),
            Runtime::Tract,
        );
    }
}

#[test]
fn eliminate_common_subexpressions_merges_per_layer_duplicates() {
    // As built, every layer repeats 10 scalar or shape constants that an
    // earlier one already has: the head split and merge shapes, the
    // attention scale, both layer norms' exponent 2 and epsilon, and the
    // GELU's √2, 1 and ½. Layer 0 repeats 5 of the embeddings': its layer
    // norms' exponents and epsilons, and the GELU's 1 (= the mask's 1).
    // So 5 + 10·(L − 1); bert-base's -O2 report shows 115.
    for (preset, l) in PRESETS {
        check_pass(
            preset,
            &prepared(preset, None, &[]),
            "eliminate_common_subexpressions",
            5 + 10 * (l - 1),
            Runtime::Tract,
        );
    }
}

#[test]
fn fold_constants_folds_the_shape_chains_of_a_pytorch_export() {
    // bertc's own graphs have nothing to fold; PyTorch's TorchScript export
    // computes shapes at run time (Shape → Gather → Unsqueeze → Concat →
    // Reshape) in every layer.
    let g = read_model(&fixture("foreign-tiny-base").join("torchscript-opset14.onnx")).unwrap();
    let after = check_pass(
        "torchscript-opset14",
        &g,
        "fold_constants",
        FOLDS_IN_TORCHSCRIPT_OPSET14,
        Runtime::Tract,
    );
    let mut after = after;
    PassManager::from_names(["dead_node_elimination"])
        .unwrap()
        .run(&mut after)
        .unwrap();
    // Every Reshape in the encoder layers (head split and merge) now reads
    // a constant shape; the mask's, built from the batch size, stays computed.
    let reshapes: Vec<_> = after
        .node_ids()
        .filter(|&id| after.node(id).op.kind() == "Reshape" && after.node(id).name.contains("/encoder/"))
        .collect();
    assert_eq!(reshapes.len(), 8, "4 per layer");
    for id in reshapes {
        let shape = after.inputs_of(id)[1].unwrap();
        assert!(
            matches!(after.node(shape.node).op, Op::Constant(_)),
            "Reshape `{}` still reads a computed shape from `{}`",
            after.node(id).name,
            after.node(shape.node).name
        );
    }
}

/// fold_constants' matches on PyTorch's opset-14 export of tiny-base (2
/// layers), as measured; what they must achieve is asserted after the pass.
const FOLDS_IN_TORCHSCRIPT_OPSET14: usize = 13;

#[test]
fn remove_identities_bypasses_every_identity() {
    // bertc never builds Identity: insert one after each layer's output and
    // before each graph output.
    for (preset, l) in PRESETS {
        let mut g = prepared(preset, None, &[]);
        let mut targets: Vec<Value> = (0..l)
            .map(|i| Value {
                node: g
                    .find(&format!("encoder.layer.{i}.output.LayerNorm.add"))
                    .unwrap(),
                slot: 0,
            })
            .collect();
        targets.extend(g.outputs().iter().map(|(_, v)| *v));
        for (k, v) in targets.iter().enumerate() {
            let id = g.add(&format!("identity.{k}"), Op::Identity, &[*v]).unwrap();
            g.replace_uses(*v, id);
            g.set_input(id.node, 0, *v);
        }
        verify(&g).unwrap();
        assert_eq!(g.op_histogram().get("Identity"), Some(&(l + 2)));
        let after = check_pass(preset, &g, "remove_identities", l + 2, Runtime::Tract);
        let mut after = after;
        PassManager::from_names(["dead_node_elimination"])
            .unwrap()
            .run(&mut after)
            .unwrap();
        assert_eq!(after.op_histogram().get("Identity"), None);
    }
}

#[test]
fn prune_to_first_token_prunes_the_last_layer_of_a_classifier() {
    let before: Vec<&str> = o2()
        .into_iter()
        .filter(|p| *p != "prune_to_first_token")
        .collect();
    for (preset, _) in PRESETS {
        let g = prepared(preset, Some(Head::SequenceClassification), &before);
        check_pass(preset, &g, "prune_to_first_token", PRUNE_MATCHES, Runtime::Tract);
    }
}

/// prune_to_first_token's matches on a classifier: the pooler's Gather plus
/// one per push of the first-token slice up the last layer (as measured).
/// The same for every depth: earlier layers are never touched.
const PRUNE_MATCHES: usize = 15;

#[test]
fn fuse_embed_layer_norm_fuses_the_embeddings_once() {
    for (preset, _) in PRESETS {
        check_pass(
            preset,
            &prepared(preset, None, &o2()),
            "fuse_embed_layer_norm",
            1,
            Runtime::Onnxruntime,
        );
    }
}

#[test]
fn fuse_skip_layer_norm_fuses_both_residuals_of_every_layer() {
    for (preset, l) in PRESETS {
        check_pass(
            preset,
            &prepared(preset, None, &o2()),
            "fuse_skip_layer_norm",
            2 * l,
            Runtime::Tract,
        );
    }
}

#[test]
fn add_bias_after_residual_reorders_both_residuals_of_every_layer() {
    for (preset, l) in PRESETS {
        check_pass(
            preset,
            &prepared(preset, None, &o2()),
            "add_bias_after_residual",
            2 * l,
            Runtime::Tract,
        );
    }
}

#[test]
fn fuse_bias_gelu_fuses_one_per_layer() {
    for (preset, l) in PRESETS {
        check_pass(
            preset,
            &prepared(preset, None, &o2()),
            "fuse_bias_gelu",
            l,
            Runtime::Tract,
        );
    }
}

#[test]
fn lower_attention_onnxruntime_packs_every_layer() {
    for (preset, l) in PRESETS {
        check_pass(
            preset,
            &prepared(preset, None, &o2()),
            "lower_attention_onnxruntime",
            l,
            Runtime::Onnxruntime,
        );
    }
}

/// ModernBERT's packed Wqkv and GeGLU Wi, each read in slices, become one
/// product per slice (two per layer); BERT's layers have none.
#[test]
fn split_packed_linear_splits_modernbert_s_two_per_layer() {
    let dir = fixture("family2/modernbert-base");
    let config = load_config(dir.join("config.json").to_str().unwrap()).unwrap();
    let mut g = build(&config, &BuildOptions::default()).unwrap().graph;
    PassManager::from_names(o2()).unwrap().run(&mut g).unwrap();
    let layers = config.num_hidden_layers;
    let mut after = check_pass(
        "modernbert-base",
        &g,
        "split_packed_linear",
        2 * layers,
        Runtime::Tract,
    );
    PassManager::from_names(["dead_node_elimination"])
        .unwrap()
        .run(&mut after)
        .unwrap();
    // Wqkv: one product → three; Wi: one → two. No Slice is left reading a product.
    let count = |g: &Graph, op: &Op| g.node_ids().filter(|&id| g.node(id).op == *op).count();
    assert_eq!(count(&after, &Op::MatMul), count(&g, &Op::MatMul) + 3 * layers);
    for (preset, _) in PRESETS {
        check_pass(
            preset,
            &prepared(preset, None, &o2()),
            "split_packed_linear",
            0,
            Runtime::Tract,
        );
    }
}

/// OpenVINO's gathers: DeBERTa's c2p and p2c `GatherElements` (v3's
/// bucketed rows, v1's plain ones) as one `Gather` of the flattened rows
/// each, p2c's transpose folded in, the numbers unchanged, at -O2 where the
/// pipeline runs it; nothing to do in BERT.
#[test]
fn flatten_shared_gathers_flattens_deberta_s_two_per_layer() {
    for case in ["deberta-v3-base", "deberta-v1-base"] {
        let dir = fixture(&format!("family2/{case}"));
        let config = load_config(dir.join("config.json").to_str().unwrap()).unwrap();
        let mut g = build(&config, &BuildOptions::default()).unwrap().graph;
        PassManager::from_names(o2()).unwrap().run(&mut g).unwrap();
        let layers = config.num_hidden_layers;
        let mut after = check_pass(case, &g, "flatten_shared_gathers", 2 * layers, Runtime::Tract);
        PassManager::from_names(["dead_node_elimination"])
            .unwrap()
            .run(&mut after)
            .unwrap();
        let h = after.op_histogram();
        assert_eq!(h.get("GatherElements"), None, "{case}: {h:?}");
        // p2c's [B, h, S, S] transpose gone: each layer's Transposes now
        // one fewer of rank 4 (a 2-D index transpose instead).
        let rank4_transposes = |g: &Graph| {
            g.node_ids()
                .filter(|&id| matches!(&g.node(id).op, Op::Transpose { perm } if perm.len() == 4))
                .count()
        };
        assert_eq!(rank4_transposes(&after), rank4_transposes(&g) - layers, "{case}");
    }
    for (preset, _) in PRESETS {
        check_pass(
            preset,
            &prepared(preset, None, &o2()),
            "flatten_shared_gathers",
            0,
            Runtime::Tract,
        );
    }
}

/// `flatten_shared_gathers` on a hand-made gather: negative indices count
/// from the end as GatherElements' do, the transposed reader folded in,
/// both against onnxruntime's own GatherElements; an index not shared over
/// the leading axes (a [B, h, S, S] input, no Expand) is left alone.
#[test]
fn flatten_shared_gathers_keeps_gather_elements_semantics() {
    use bertc::ir::{DType, Shape, Tensor};
    use bertc::passes::FlattenSharedGathers;
    use bertc::runtime::{HostTensor, NamedTensors};
    let (b, h, s, r) = (2usize, 3usize, 4usize, 6usize);
    let graph = |shared: bool| {
        let mut g = Graph::new();
        let data = g
            .add_input("data", DType::F32, Shape::fixed(&[b, h, s, r]))
            .unwrap();
        let index = match shared {
            true => {
                let grid: Vec<i64> = (0..s * s)
                    .map(|n| (n as i64 * 5) % (2 * r as i64) - r as i64)
                    .collect();
                let grid = g.add_const("grid", Tensor::from_i64(vec![s, s], &grid)).unwrap();
                let shape = g
                    .add_const(
                        "grid_shape",
                        Tensor::vec_i64(&[b as i64, h as i64, s as i64, s as i64]),
                    )
                    .unwrap();
                g.add("grid_expanded", Op::Expand, &[grid, shape]).unwrap()
            }
            false => g
                .add_input("index", DType::I64, Shape::fixed(&[b, h, s, s]))
                .unwrap(),
        };
        let gathered = g
            .add("gather", Op::GatherElements { axis: 3 }, &[data, index])
            .unwrap();
        let by_query = g
            .add(
                "by_query",
                Op::Transpose {
                    perm: vec![0, 1, 3, 2],
                },
                &[gathered],
            )
            .unwrap();
        g.set_output("out", by_query);
        g
    };
    let unshared = graph(false);
    let mut after = unshared.clone();
    let runs = PassManager::new()
        .with(FlattenSharedGathers)
        .run(&mut after)
        .unwrap();
    assert_eq!(
        runs[0].report.matches, 0,
        "an index of its own per batch and head"
    );

    let before = graph(true);
    let mut after = before.clone();
    let runs = PassManager::new()
        .with(FlattenSharedGathers)
        .verify_each(true)
        .run(&mut after)
        .unwrap();
    assert_eq!(runs[0].report.matches, 1);
    let data: Vec<f32> = (0..b * h * s * r).map(|n| n as f32).collect();
    let mut inputs = NamedTensors::new();
    inputs.insert("data".into(), HostTensor::f32(vec![b, h, s, r], data));
    let expected = run_onnxruntime(&export_bytes(&before, ExportOptions::default()).unwrap(), &inputs);
    let bytes = export_bytes(&after, ExportOptions::default()).unwrap();
    assert_eq!(read_model_bytes_ops(&bytes, "GatherElements"), 0);
    for (runtime, actual) in [
        ("tract", run_tract(&bytes, &inputs)),
        ("onnxruntime", run_onnxruntime(&bytes, &inputs)),
    ] {
        assert_eq!(actual["out"].to_f32(), expected["out"].to_f32(), "{runtime}");
    }
}

/// How many `op` nodes the serialized model `bytes` has.
fn read_model_bytes_ops(bytes: &[u8], op: &str) -> usize {
    let g = bertc::onnx::import_bytes(bytes).unwrap();
    g.op_histogram().get(op).copied().unwrap_or(0)
}

/// The reduced-precision passes (run by `--quantize` / `--precision`, not
/// by name): counts, and numbers within their own tolerances of f32.
#[test]
fn quantize_int8_and_to_fp16_match_every_weight() {
    use bertc::passes::{ActivationScales, DeadNodeElimination, QuantizeInt8, ToFp16, WeightGranularity};
    for (preset, l) in PRESETS {
        let before = prepared(preset, None, &o2());
        let inputs = inputs_for(&before, 3, 16);
        let reference = run_tract(&export_bytes(&before, ExportOptions::default()).unwrap(), &inputs);
        let int8 = QuantizeInt8 {
            activations: ActivationScales::Dynamic,
            weights: WeightGranularity::PerChannel,
            skip: vec![],
            embeddings: true,
        };
        for (name, pm, expected, check) in [
            // 6 linear layers per layer and the pooler, and the word
            // embedding table (the only one with ≥ 4096 rows).
            (
                "quantize_int8",
                PassManager::new().with(int8),
                6 * l + 1 + 1,
                "cosine",
            ),
            // Every f32 constant of rank ≥ 1: 3 embedding tables, the
            // embedding layer norm's 2 vectors, 16 per layer, the pooler's 2.
            (
                "to_fp16",
                PassManager::new().with(ToFp16).with(DeadNodeElimination),
                3 + 2 + 16 * l + 2,
                "max-abs",
            ),
        ] {
            let mut after = before.clone();
            let runs = pm.verify_each(true).run(&mut after).unwrap();
            assert_eq!(runs[0].report.matches, expected, "{preset}: `{name}` matches");
            verify(&after).unwrap();
            let actual = run_tract(&export_bytes(&after, ExportOptions::default()).unwrap(), &inputs);
            assert_eq!(
                actual.keys().collect::<Vec<_>>(),
                reference.keys().collect::<Vec<_>>()
            );
            if check == "max-abs" {
                // f16 weights, f32 arithmetic; embedding tables are looked up
                // in f16 and only the gathered rows cast (no Gather reads a
                // Cast: tract would convert the whole table every run).
                let gathers_of_casts = after
                    .node_ids()
                    .filter(|&id| matches!(after.node(id).op, bertc::ir::Op::Gather { .. }))
                    .filter(|&id| {
                        after.inputs_of(id)[0]
                            .is_some_and(|t| matches!(after.node(t.node).op, bertc::ir::Op::Cast { .. }))
                    })
                    .count();
                assert_eq!(gathers_of_casts, 0, "{preset}");
                assert_close(&format!("{preset} `{name}`"), &actual, &reference, 2e-2);
            } else {
                for (out, e) in &reference {
                    let width = *e.shape.last().unwrap();
                    let (a, b) = (actual[out].to_f32(), e.to_f32());
                    let worst = a
                        .chunks(width)
                        .zip(b.chunks(width))
                        .map(|(x, y)| bertc::quantize::cosine(x, y))
                        .fold(f64::INFINITY, nan_is_worst);
                    eprintln!("{preset}: `{name}` {out} min row cosine {worst:.5}");
                    assert!(worst >= 0.99, "{preset}: `{name}` {out} min row cosine {worst}");
                }
            }
        }
    }
}

/// `quantize_attention` (run by `--quantize-attention`, not by name): every
/// layer's fused Attention becomes two integer products, the graph
/// verifies, and every output row stays within cosine 0.99 of f32 in both
/// runtimes that run the form.
#[test]
fn quantize_attention_quantizes_every_layer_s_products() {
    use bertc::passes::{DeadNodeElimination, QuantizeAttention};
    for (preset, l) in PRESETS {
        let before = prepared(preset, None, &o2());
        let mut after = before.clone();
        let runs = PassManager::new()
            .with(QuantizeAttention { static_ranges: None })
            .with(DeadNodeElimination)
            .verify_each(true)
            .run(&mut after)
            .unwrap();
        assert_eq!(runs[0].report.matches, l, "{preset}");
        let h = after.op_histogram();
        assert_eq!(h.get("Attention"), None, "{preset}: {h:?}");
        assert_eq!(h.get("MatMulInteger"), Some(&(2 * l)), "{preset}: {h:?}");
        let inputs = inputs_for(&before, 3, 16);
        let reference = run_tract(&export_bytes(&before, ExportOptions::default()).unwrap(), &inputs);
        let bytes = export_bytes(&after, ExportOptions::default()).unwrap();
        for (runtime, actual) in [
            ("tract", run_tract(&bytes, &inputs)),
            ("onnxruntime", run_onnxruntime(&bytes, &inputs)),
        ] {
            let worst = worst_row_cosine(&actual, &reference);
            eprintln!("{preset}: `quantize_attention` in {runtime}: worst row cosine {worst:.6}");
            assert!(worst >= 0.99, "{preset} in {runtime}: worst row cosine {worst}");
        }
    }
}

/// A query that spreads its attention over 1,024 keys (a zero query:
/// every probability 1/1,024, under the 1/510 a fixed 1/255 step rounds to
/// zero) keeps its context: each row is quantized relative to its own
/// largest numerator. With a padding mask over half the keys, whose K rows
/// are made to outscore every real key (×50), the masked keys still add
/// nothing and the real ones keep their precision. Both forms: onnxruntime's
/// dynamic one and OpenVINO's static one (calibrated ranges of Q, K and V),
/// each head's context held in direction (cosine) and size (relative
/// error: a denominator off by a constant factor turns no cosine). A layer
/// with a fixed, short key length (the sliding band's blocks) is left f32.
#[test]
fn quantize_attention_keeps_spread_attention_and_leaves_short_keys() {
    use bertc::ir::{DType, Shape};
    use bertc::passes::{DeadNodeElimination, QuantizeAttention};
    use bertc::runtime::{HostTensor, NamedTensors};
    let graph = |keys: usize, masked: bool| {
        let mut g = Graph::new();
        let q = g.add_input("q", DType::F32, Shape::fixed(&[1, 4, 8])).unwrap();
        let k = g.add_input("k", DType::F32, Shape::fixed(&[1, keys, 8])).unwrap();
        let v = g.add_input("v", DType::F32, Shape::fixed(&[1, keys, 8])).unwrap();
        let mut inputs = vec![q, k, v];
        if masked {
            // Per key, broadcast over the queries as fuse_attention writes
            // it (onnxruntime's Attention takes no [.., 1, S] mask).
            let mask = g
                .add_input("mask", DType::F32, Shape::fixed(&[1, 1, 1, keys]))
                .unwrap();
            let shape = g
                .add_const("mask_shape", bertc::ir::Tensor::vec_i64(&[1, 1, 4, keys as i64]))
                .unwrap();
            inputs.push(g.add("mask_expanded", Op::Expand, &[mask, shape]).unwrap());
        }
        let attention = Op::Attention {
            q_num_heads: 2,
            kv_num_heads: 2,
            scale: None,
        };
        let out = g.add("attention", attention, &inputs).unwrap();
        g.set_output("context", out);
        g
    };
    let mut short = graph(160, false);
    let runs = PassManager::new()
        .with(QuantizeAttention { static_ranges: None })
        .run(&mut short)
        .unwrap();
    assert_eq!(runs[0].report.matches, 0, "160 fixed keys");

    let keys = 1024;
    let mut state = 7u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    // Queries: row 0 zero (uniform attention), the others random; keys
    // and values random in [-1, 1).
    let mut q: Vec<f32> = (0..4 * 8).map(|_| next()).collect();
    q[..8].fill(0.0);
    let k: Vec<f32> = (0..keys * 8).map(|_| next()).collect();
    let v: Vec<f32> = (0..keys * 8).map(|_| next()).collect();
    // The static form's calibration: the real keys' and values' range
    // (V's small, to hold its resolution apart from the key weights').
    let v: Vec<f32> = v.iter().map(|x| x * 0.05).collect();
    let ranges: std::collections::HashMap<String, Vec<f32>> = [("q", 1.0), ("k", 1.0), ("v", 0.05)]
        .map(|(n, r)| (n.to_string(), vec![r]))
        .into();
    let forms = [None, Some(ranges)];
    for (masked, static_ranges) in [false, true]
        .into_iter()
        .flat_map(|m| forms.clone().map(|f| (m, f)))
    {
        let form = if static_ranges.is_some() {
            "static"
        } else {
            "dynamic"
        };
        let before = graph(keys, masked);
        let mut after = before.clone();
        let pm = PassManager::new()
            .with(QuantizeAttention { static_ranges })
            .with(DeadNodeElimination);
        let runs = pm.verify_each(true).run(&mut after).unwrap();
        assert_eq!(runs[0].report.matches, 1);
        let mut k = k.clone();
        let mut inputs: NamedTensors = NamedTensors::new();
        if masked {
            // Every other key padded, its K row large.
            let mask: Vec<f32> = (0..keys)
                .map(|j| if j % 2 == 1 { f32::MIN } else { 0.0 })
                .collect();
            for j in (1..keys).step_by(2) {
                k[j * 8..(j + 1) * 8].iter_mut().for_each(|x| *x *= 50.0);
            }
            inputs.insert("mask".into(), HostTensor::f32(vec![1, 1, 1, keys], mask));
        }
        inputs.insert("q".into(), HostTensor::f32(vec![1, 4, 8], q.clone()));
        inputs.insert("k".into(), HostTensor::f32(vec![1, keys, 8], k));
        inputs.insert("v".into(), HostTensor::f32(vec![1, keys, 8], v.clone()));
        let reference = run_onnxruntime(&export_bytes(&before, ExportOptions::default()).unwrap(), &inputs);
        let bytes = export_bytes(&after, ExportOptions::default()).unwrap();
        for (runtime, actual) in [
            ("tract", run_tract(&bytes, &inputs)),
            ("onnxruntime", run_onnxruntime(&bytes, &inputs)),
        ] {
            // Per head (4 values of each 8-wide row).
            let (a, e) = (actual["context"].to_f32(), reference["context"].to_f32());
            let worst = a
                .chunks(4)
                .zip(e.chunks(4))
                .map(|(x, y)| bertc::quantize::cosine(x, y))
                .fold(f64::INFINITY, nan_is_worst);
            let norm = |x: &[f32]| x.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt();
            let diff: Vec<f32> = a.iter().zip(&e).map(|(x, y)| x - y).collect();
            let relative = norm(&diff) / norm(&e);
            eprintln!(
                "{keys} keys ({form}, masked: {masked}) in {runtime}: worst head cosine {worst:.6}, \
                 relative error {relative:.5}"
            );
            assert!(
                worst >= 0.99,
                "{form}, masked: {masked}, {runtime}: worst head cosine {worst}"
            );
            assert!(
                relative <= 0.1,
                "{form}, masked: {masked}, {runtime}: relative error {relative}"
            );
        }
    }
}

/// `quantize_relative_products` (run by onnxruntime's dynamic int8 form,
/// not by name): a product of run-time heads against
/// the rows of a table computed from constants, cut by run-time bounds
/// (DeBERTa's c2p and p2c), becomes an integer product whose every
/// column — every table row — keeps its precision, rows a thousand times
/// smaller than others included (one scale for the table would round them
/// to zero); a table that depends on an input, or a product a
/// `--quantize-skip` pattern names, is left alone.
#[test]
fn quantize_relative_products_keeps_every_table_row() {
    use bertc::ir::{BinaryOp, DType, Shape, Tensor};
    use bertc::passes::{DeadNodeElimination, QuantizeRelativeProducts};
    use bertc::runtime::{HostTensor, NamedTensors};
    let (heads, rows, d, s) = (2usize, 9usize, 8usize, 5usize);
    let mut state = 11u64;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    };
    // Row r of each head at magnitude 10^(r mod 4 − 1): 0.1 to 100.
    let table: Vec<f32> = (0..heads * rows * d)
        .map(|i| next() * 10f32.powi(((i / d) % rows % 4) as i32 - 1))
        .collect();
    let x: Vec<f32> = (0..heads * s * d).map(|_| next()).collect();
    let graph = |table_from_input: bool| {
        let mut g = Graph::new();
        let x = g
            .add_input("x", DType::F32, Shape::fixed(&[1, heads, s, d]))
            .unwrap();
        // The rows read, from x's length as DeBERTa's lookups give them:
        // [S − 4, S + 3) = [1, 8) of 9.
        let shape = g.add("x_shape", Op::Shape, &[x]).unwrap();
        let int = |g: &mut Graph, name: &str, v: i64| g.add_const(name, Tensor::vec_i64(&[v])).unwrap();
        let (two, three, four) = (
            int(&mut g, "two", 2),
            int(&mut g, "three", 3),
            int(&mut g, "four", 4),
        );
        let zero = int(&mut g, "zero", 0);
        let length = g.add("length", Op::Slice, &[shape, two, three, zero]).unwrap();
        let first = g
            .add("first", Op::Binary(BinaryOp::Sub), &[length, four])
            .unwrap();
        let end = g.add("end", Op::Binary(BinaryOp::Add), &[length, three]).unwrap();
        let t = g
            .add_const("table", Tensor::from_f32(vec![heads, rows, d], &table))
            .unwrap();
        // Computed from constants (as DeBERTa's scaled projection), or not.
        let divisor = match table_from_input {
            false => g.add_const("scale", Tensor::scalar_f32(2.0)).unwrap(),
            true => g.add_input("scale", DType::F32, Shape::fixed(&[])).unwrap(),
        };
        let t = g
            .add("table.scaled", Op::Binary(BinaryOp::Div), &[t, divisor])
            .unwrap();
        let axis = g.add_const("rows_axis", Tensor::vec_i64(&[1])).unwrap();
        let cut = g
            .add("table.rows_read", Op::Slice, &[t, first, end, axis])
            .unwrap();
        let t = g
            .add("table.transpose", Op::Transpose { perm: vec![0, 2, 1] }, &[cut])
            .unwrap();
        let out = g.add("all_rows", Op::MatMul, &[x, t]).unwrap();
        g.set_output("all_rows", out);
        g
    };
    let mut from_input = graph(true);
    let none = || QuantizeRelativeProducts { skip: Vec::new() };
    let runs = PassManager::new().with(none()).run(&mut from_input).unwrap();
    assert_eq!(runs[0].report.matches, 0, "a table read from an input");
    // `--quantize-skip` naming the product keeps it f32.
    let mut skipped = graph(false);
    let skip = QuantizeRelativeProducts {
        skip: vec!["all_rows".into()],
    };
    let runs = PassManager::new().with(skip).run(&mut skipped).unwrap();
    assert_eq!(runs[0].report.matches, 0, "a product --quantize-skip names");

    let before = graph(false);
    let mut after = before.clone();
    let runs = PassManager::new()
        .with(none())
        .with(DeadNodeElimination)
        .verify_each(true)
        .run(&mut after)
        .unwrap();
    assert_eq!(runs[0].report.matches, 1);
    let h = after.op_histogram();
    assert_eq!(h.get("MatMul"), None, "{h:?}");
    assert_eq!(h.get("MatMulInteger"), Some(&1), "{h:?}");
    let (first, end) = (1, 8);
    let mut inputs = NamedTensors::new();
    inputs.insert("x".into(), HostTensor::f32(vec![1, heads, s, d], x.clone()));
    let reference = run_onnxruntime(&export_bytes(&before, ExportOptions::default()).unwrap(), &inputs);
    let read = (end - first) as usize;
    assert_eq!(reference["all_rows"].shape, vec![1, heads, s, read]);
    let bytes = export_bytes(&after, ExportOptions::default()).unwrap();
    for (runtime, actual) in [
        ("tract", run_tract(&bytes, &inputs)),
        ("onnxruntime", run_onnxruntime(&bytes, &inputs)),
    ] {
        let (a, e) = (actual["all_rows"].to_f32(), reference["all_rows"].to_f32());
        // Each column (one table row against every query of a head).
        let column = |v: &[f32], h: usize, c: usize| -> Vec<f32> {
            (0..s).map(|i| v[(h * s + i) * read + c]).collect()
        };
        let worst = (0..heads)
            .flat_map(|h| (0..read).map(move |c| (h, c)))
            .map(|(h, c)| bertc::quantize::cosine(&column(&a, h, c), &column(&e, h, c)))
            .fold(f64::INFINITY, nan_is_worst);
        eprintln!("`quantize_relative_products` in {runtime}: worst column cosine {worst:.6}");
        assert!(worst >= 0.999, "{runtime}: worst column cosine {worst}");
    }
}

/// The worst cosine of any last-axis row of any output.
fn worst_row_cosine(actual: &bertc::runtime::NamedTensors, reference: &bertc::runtime::NamedTensors) -> f64 {
    let mut worst = f64::INFINITY;
    for (out, e) in reference {
        let width = *e.shape.last().unwrap();
        let (a, b) = (actual[out].to_f32(), e.to_f32());
        for (x, y) in a.chunks(width).zip(b.chunks(width)) {
            worst = nan_is_worst(worst, bertc::quantize::cosine(x, y));
        }
    }
    worst
}

#[test]
fn pack_tokens_packs_the_embeddings_and_every_layer() {
    // Its numbers differ from the padded graph's at the padding positions
    // (zeros there), so it is compared at the real ones (tests/packed.rs
    // covers every family and head).
    for (preset, l) in PRESETS {
        let before = prepared(
            preset,
            None,
            &bertc::passes::pipeline(Level::O2, bertc::passes::Target::Portable),
        );
        let mut after = before.clone();
        let runs = PassManager::from_names(["pack_tokens"])
            .unwrap()
            .verify_each(true)
            .run(&mut after)
            .unwrap();
        // Embeddings: 2 lookups, 2 adds, layer norm; each layer: Q, K, V,
        // output and 2 FFN linears (MatMul + bias Add), 2 residuals,
        // 2 layer norms, GELU.
        assert_eq!(runs[0].report.matches, 5 + 17 * l, "{preset}");
        verify(&after).unwrap();
        let inputs = inputs_for(&before, 3, 16);
        let mask = &inputs["attention_mask"];
        let reference = run_tract(&export_bytes(&before, ExportOptions::default()).unwrap(), &inputs);
        let actual = run_tract(&export_bytes(&after, ExportOptions::default()).unwrap(), &inputs);
        let real = |t| bertc::runtime::at_real_positions(t, mask);
        let worst = assert_close(preset, &real(&actual), &real(&reference), ATOL);
        eprintln!("{preset}: `pack_tokens` max-abs {worst:e} at the real positions");
    }
}

#[test]
fn every_pass_has_a_test_here() {
    // A pass added to the registry without a matching test fails here.
    let tested = [
        "fold_constants",
        "eliminate_common_subexpressions",
        "remove_identities",
        "dead_node_elimination",
        "fuse_layer_norm",
        "fuse_gelu",
        "fuse_attention",
        "decompose_attention",
        "fuse_embed_layer_norm",
        "fuse_skip_layer_norm",
        "add_bias_after_residual",
        "fuse_bias_gelu",
        "lower_attention_onnxruntime",
        "merge_qkv",
        "prune_to_first_token",
        "pack_tokens",
        // tests/sliding_band.rs: the band form against the masked one.
        "block_sliding_attention",
        // tests/rotary.rs: one kernel per rotation, against the reference.
        "lower_rotary_onnxruntime",
        "split_packed_linear",
        "flatten_shared_gathers",
    ];
    let mut all = all_pass_names();
    all.sort();
    let mut tested = tested.to_vec();
    tested.sort();
    assert_eq!(all, tested);
}

/// The lower of two cosines, a NaN (a zero vector against a nonzero one)
/// the lowest of all: `f64::min` would skip it and pass a broken row.
fn nan_is_worst(worst: f64, c: f64) -> f64 {
    if c.is_nan() {
        f64::NEG_INFINITY
    } else {
        worst.min(c)
    }
}
