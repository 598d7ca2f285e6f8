//! Packed graphs (`--packed`, the `pack_tokens` pass): the same inputs and
//! outputs as the padded graph, and its numbers within 1e-5 at every real
//! position, for every family case and head, in tract and onnxruntime
//! (and OpenVINO where it runs); the per-token layers run on the real
//! tokens (`[nonzero_count, …]`); the verifier accepts the graph after the
//! pass; compositions with the targets and int8.

mod common;

use bertc::config::BertConfig;
use bertc::head::Head;
use bertc::ir::{verify, Dim, Graph, Op, NONZERO_COUNT};
use bertc::passes::{Level, PackTokens, Pass, PassManager, Target, PACKED_METADATA};
use bertc::pipeline::{
    at_level, build, compile, with_passes, BuildOptions, Compiled, OptionError, PipelineOptions,
};
use bertc::runtime::{at_real_positions, compare, HostData, HostTensor, NamedTensors};
use common::*;

/// The 18 family cases (tests/fixtures/family) and the tiny heads.
const FAMILY: [&str; 18] = [
    "roberta-base",
    "roberta-cls",
    "roberta-mlm",
    "roberta-tok",
    "xlm-roberta-base",
    "xlm-roberta-qa",
    "distilbert-base",
    "distilbert-cls",
    "distilbert-qa",
    "distilbert-sinusoidal-mlm",
    "electra-base",
    "electra-cls",
    "electra-tok",
    "albert-base",
    "albert-cls",
    "albert-mlm",
    "mpnet-base",
    "mpnet-cls",
];

const TINY: [&str; 10] = [
    "tiny-base",
    "tiny-cls",
    "tiny-tok",
    "tiny-qa",
    "tiny-mlm",
    "tiny-gelu-new",
    "tiny-relu-3l",
    "tiny-silu-h8",
    "tiny-relative-key",
    "tiny-relative-key-query",
];

/// One case of each modern family (tests/fixtures/family2), the sliding
/// window, GQA and disentangled attention among them.
const FAMILY2: [&str; 8] = [
    "family2/nomic-cls",
    "family2/gte-base",
    "family2/modernbert-base",
    "family2/jina-v3-qa",
    "family2/eurobert-mlm",
    "family2/deberta-v3-tok",
    "family2/deberta-v2-base",
    "family2/deberta-v1-cls",
];

/// Packed against padded, at the real positions.
const ATOL: f64 = 1e-5;

fn case_dir(case: &str) -> std::path::PathBuf {
    match case.starts_with("tiny-") || case.starts_with("family2/") {
        true => fixture(case),
        false => family_dir(case),
    }
}

/// A case's config and its checkpoint's build options, with `head`.
fn config_and_weights(case: &str, head: Option<Head>) -> (BertConfig, BuildOptions) {
    let dir = case_dir(case);
    let config = BertConfig::from_path(&dir.join("config.json")).unwrap();
    let opts = BuildOptions {
        weights: Some(dir.join("model.safetensors")),
        head,
        ..Default::default()
    };
    (config, opts)
}

fn compiled(case: &str, head: Option<Head>, options: &PipelineOptions) -> Compiled {
    let (config, opts) = config_and_weights(case, head);
    compile(test_session(), &config, opts, options).unwrap_or_else(|e| panic!("{case}: {e}"))
}

fn packed(options: PipelineOptions) -> PipelineOptions {
    PipelineOptions {
        packed: true,
        ..options
    }
}

/// The golden file's model inputs: one full row, right- and left-padded ones.
fn inputs(case: &str) -> NamedTensors {
    let inputs = ["input_ids", "attention_mask", "token_type_ids"];
    let mut golden = golden(&case_dir(case));
    golden.retain(|k, _| inputs.contains(&k.as_str()));
    let mask = &golden["attention_mask"];
    let HostData::I64(m) = &mask.data else {
        panic!("an i64 mask")
    };
    assert!(m.contains(&0), "{case}: the inputs must have padding");
    golden
}

/// Asserts `packed` equals `padded` within `atol` at the real positions
/// (a first-token output where position 0 is padding is not compared: see
/// `at_real_positions`), and that per-token outputs hold zeros at the
/// padding positions. Returns the worst max-abs.
fn assert_real_positions_match(
    what: &str,
    packed: &NamedTensors,
    padded: &NamedTensors,
    inputs: &NamedTensors,
    atol: f64,
) -> f64 {
    let mask = &inputs["attention_mask"];
    assert_eq!(
        packed.keys().collect::<Vec<_>>(),
        padded.keys().collect::<Vec<_>>(),
        "{what}: the outputs' names"
    );
    let (a, b) = (at_real_positions(packed, mask), at_real_positions(padded, mask));
    let mut worst = 0f64;
    for (name, p) in &a {
        let c = compare(name, p, &b[name]);
        assert!(
            c.shape_matches,
            "{what}: `{name}` {:?} vs {:?}",
            p.shape, b[name].shape
        );
        assert!(
            c.max_abs <= atol,
            "{what}: `{name}` max-abs {:e} > {atol:e}",
            c.max_abs
        );
        worst = worst.max(c.max_abs);
        if per_token(&packed[name], mask) {
            // Masking changed nothing: the padding already held zeros.
            assert_eq!(packed[name], *p, "{what}: `{name}` is not zero at the padding");
        }
    }
    worst
}

fn per_token(t: &HostTensor, mask: &HostTensor) -> bool {
    t.shape.len() >= 2 && t.shape[..2] == mask.shape[..]
}

/// A runtime the tests run models in.
type Run = (&'static str, fn(&[u8], &NamedTensors) -> NamedTensors);

const TRACT: Run = ("tract", run_tract);
const ONNXRUNTIME: Run = ("onnxruntime", run_onnxruntime);
const OPENVINO: Run = ("OpenVINO", run_openvino);

/// `case` compiled with `options`, padded and packed, run in each of
/// `runs` on the case's inputs and compared at the real positions within
/// `atol`; the worst max-abs per runtime. Also the packed compile's report.
fn packed_matches_padded(
    case: &str,
    head: Option<Head>,
    options: &PipelineOptions,
    runs: &[Run],
    atol: f64,
) -> (Vec<f64>, Compiled) {
    let inputs = inputs(case);
    let padded = compiled(case, head, options).to_bytes().unwrap();
    let packed_compiled = compiled(case, head, &packed(options.clone()));
    assert!(
        packed_compiled.graph().metadata.contains_key(PACKED_METADATA),
        "{case}"
    );
    let packed = packed_compiled.to_bytes().unwrap();
    let worst = runs
        .iter()
        .map(|(runtime, run)| {
            let what = format!("{case} {head:?} {:?} {runtime}", options.target);
            assert_real_positions_match(
                &what,
                &run(&packed, &inputs),
                &run(&padded, &inputs),
                &inputs,
                atol,
            )
        })
        .collect();
    (worst, packed_compiled)
}

#[test]
fn every_case_packed_matches_padded_in_tract_and_onnxruntime() {
    for case in FAMILY.iter().chain(&TINY) {
        let (worst, _) = packed_matches_padded(case, None, &at_level(Level::O2), &[TRACT, ONNXRUNTIME], ATOL);
        eprintln!("{case}: packed vs padded max-abs at real positions (tract, onnxruntime): {worst:?}");
    }
}

/// `--packed` on the modern families: pre-norm, rotary, sliding-window,
/// grouped-query and disentangled attention alike, only the per-token
/// layers packed.
#[test]
fn every_modern_family_packed_matches_padded() {
    for case in FAMILY2 {
        let (worst, _) = packed_matches_padded(case, None, &at_level(Level::O2), &[TRACT, ONNXRUNTIME], ATOL);
        eprintln!("{case}: packed vs padded max-abs at real positions (tract, onnxruntime): {worst:?}");
    }
}

/// Each head on the fixture that has its weights (the cases above compile
/// their configs' own heads; this names each head explicitly).
#[test]
fn every_head_packed_matches_padded() {
    let heads = [
        ("tiny-base", Head::Base),
        ("tiny-cls", Head::SequenceClassification),
        ("tiny-tok", Head::TokenClassification),
        ("tiny-qa", Head::QuestionAnswering),
        ("tiny-mlm", Head::MaskedLm),
        ("tiny-base", Head::SentenceEmbedding),
    ];
    for (case, head) in heads {
        packed_matches_padded(
            case,
            Some(head),
            &at_level(Level::O2),
            &[TRACT, ONNXRUNTIME],
            ATOL,
        );
    }
}

#[test]
fn sentence_embeddings_match_on_every_right_padded_row() {
    // Mean pooling reads the real tokens only: no row is left out.
    let mut inputs = inputs("tiny-base");
    let mask = inputs["attention_mask"].clone();
    let (b, s) = (mask.shape[0], mask.shape[1]);
    let right: Vec<i64> = (0..b * s).map(|i| i64::from(i % s < s - (i / s) * 3)).collect();
    inputs.insert("attention_mask".into(), HostTensor::i64(vec![b, s], right));
    let head = Some(Head::SentenceEmbedding);
    let padded = compiled("tiny-base", head, &at_level(Level::O2))
        .to_bytes()
        .unwrap();
    let packed = compiled("tiny-base", head, &packed(at_level(Level::O2)))
        .to_bytes()
        .unwrap();
    let (p, q) = (run_tract(&packed, &inputs), run_tract(&padded, &inputs));
    let c = compare(
        "sentence_embedding",
        &p["sentence_embedding"],
        &q["sentence_embedding"],
    );
    assert!(c.max_abs <= ATOL, "max-abs {:e}", c.max_abs);
}

#[test]
fn the_onnxruntime_target_composes_with_packing() {
    let target = PipelineOptions {
        target: Target::Onnxruntime,
        ..at_level(Level::O2)
    };
    for case in [
        "tiny-base",
        "tiny-tok",
        "tiny-qa",
        "roberta-cls",
        "distilbert-qa",
        "mpnet-base",
    ] {
        let (_, packed) = packed_matches_padded(case, None, &target, &[ONNXRUNTIME], ATOL);
        // Attention stays standard ops between the unpack and the pack:
        // com.microsoft Attention would project Q, K, V on every position.
        let h = packed.graph().op_histogram();
        assert!(
            !h.contains_key("com.microsoft.Attention") && !h.contains_key("Attention"),
            "{case}: {h:?}"
        );
    }
}

#[test]
fn packed_graphs_run_in_openvino() {
    for case in ["tiny-base", "tiny-tok", "roberta-base"] {
        packed_matches_padded(case, None, &at_level(Level::O2), &[OPENVINO], ATOL);
    }
}

/// Int8 composes: the tract form's scales are per token, so packing moves
/// nothing; onnxruntime's dynamic form takes one scale per tensor, now
/// from the real tokens only, so its numbers move within int8's own
/// error. Both pass the accuracy gate.
#[test]
fn int8_composes_with_packing() {
    let int8 = |target| PipelineOptions {
        target,
        precision: bertc::quantize::Precision::new(bertc::quantize::Form::Int8Dynamic),
        ..at_level(Level::O2)
    };
    let (_, packed) = packed_matches_padded("tiny-base", None, &int8(Target::Tract), &[TRACT], ATOL);
    assert!(packed.report.accuracy.is_some());
    let (_, packed) = packed_matches_padded(
        "tiny-base",
        None,
        &int8(Target::Onnxruntime),
        &[ONNXRUNTIME],
        1e-2,
    );
    assert!(packed.report.accuracy.is_some());
}

fn built(case: &str, head: Option<Head>) -> Graph {
    let (config, opts) = config_and_weights(case, head);
    build(&config, &opts).unwrap().graph
}

/// Whether `v`'s rows are the packed tokens.
fn on_tokens(g: &Graph, v: bertc::ir::Value) -> bool {
    g.info(v).shape.dims().first() == Some(&Dim::sym(NONZERO_COUNT))
}

#[test]
fn every_linear_layer_runs_on_the_real_tokens() {
    // (case, head, layers, linear layers not on tokens: the pooler's, a
    // first-token head's, and the last layer's pruned to the first token)
    for (case, head, layers, off_tokens) in [
        ("tiny-base", Head::Base, 2, 1),
        ("tiny-tok", Head::TokenClassification, 2, 0),
        ("tiny-mlm", Head::MaskedLm, 2, 0),
        ("tiny-base", Head::SentenceEmbedding, 2, 0),
        ("tiny-cls", Head::SequenceClassification, 2, 6),
        ("tiny-relu-3l", Head::Base, 3, 1),
    ] {
        let what = format!("{case} {head:?}");
        let mut g = built(case, Some(head));
        let mut passes = bertc::passes::pipeline(Level::O2, Target::Portable);
        passes.extend(["pack_tokens", "dead_node_elimination"]);
        let runs = PassManager::from_names(passes)
            .unwrap()
            .verify_each(true)
            .run(&mut g)
            .unwrap();
        verify(&g).unwrap();
        let packing = runs.iter().find(|r| r.pass == "pack_tokens").unwrap();
        assert!(
            packing.report.matches > 0 && packing.report.nodes_added > 0,
            "{what}"
        );
        let h = g.op_histogram();
        assert_eq!(h.get("NonZero"), Some(&1), "{what}: one NonZero finds the tokens");
        let linears: Vec<_> = g
            .node_ids()
            .filter(|&id| matches!(g.node(id).op, Op::MatMul))
            .filter(|&id| {
                let w = g.inputs_of(id)[1].unwrap();
                matches!(g.node(w.node).op, Op::Constant(_))
            })
            .collect();
        let off: Vec<_> = linears
            .iter()
            .filter(|&&id| !on_tokens(&g, g.inputs_of(id)[0].unwrap()))
            .map(|&id| g.node(id).name.clone())
            .collect();
        // Q, K, V, output, FFN in, FFN out per layer.
        assert!(
            linears.len() >= 6 * layers,
            "{what}: {} linear layers",
            linears.len()
        );
        assert_eq!(
            off.len(),
            off_tokens,
            "{what}: linear layers on padded rows: {off:?}"
        );
        // Attention reads Q, K and V unpacked, once each per layer; its
        // output is packed once for the output projection.
        let unpacks = g
            .node_ids()
            .filter(|&id| g.node(id).name.ends_with(".unpack"))
            .count();
        let packs = g
            .node_ids()
            .filter(|&id| g.node(id).name.ends_with(".pack"))
            .count();
        // Two more at most for a head reading tokens, and one for each
        // per-token output (a sentence-embedding model's last_hidden_state).
        let token_outputs = g
            .outputs()
            .iter()
            .filter(|(_, v)| g.info(*v).shape.dims().len() == 3)
            .count();
        assert!(
            unpacks >= 3 * layers && unpacks <= 3 * layers + 2 + token_outputs,
            "{what}: {unpacks} unpacks"
        );
        assert!(packs >= layers, "{what}: {packs} packs");
    }
}

#[test]
fn packing_keeps_the_fused_ops_and_the_outputs() {
    for case in ["tiny-base", "tiny-mlm", "roberta-tok", "albert-mlm"] {
        let padded = compiled(case, None, &at_level(Level::O2));
        let packed = compiled(case, None, &packed(at_level(Level::O2)));
        let (p, q) = (padded.graph(), packed.graph());
        assert_eq!(fused_counts(&padded), fused_counts(&packed), "{case}");
        let (hp, hq) = (p.op_histogram(), q.op_histogram());
        for op in ["MatMul", "Softmax", "LayerNormalization", "Gelu"] {
            assert_eq!(hp.get(op), hq.get(op), "{case}: {op}");
        }
        let types = |g: &Graph| -> Vec<_> {
            g.outputs()
                .iter()
                .map(|(n, v)| (n.clone(), g.info(*v).dtype, g.info(*v).shape.clone()))
                .collect()
        };
        assert_eq!(
            types(p),
            types(q),
            "{case}: outputs keep names, dtypes and shapes"
        );
        let inputs = |g: &Graph| -> Vec<_> { g.inputs().iter().map(|&id| g.node(id).name.clone()).collect() };
        assert_eq!(inputs(p), inputs(q), "{case}");
    }
}

/// ids → embedding lookup → linear layer: `[B, S, 4]`, with or without a mask input.
fn lookup_and_linear(with_mask: bool) -> Graph {
    use bertc::ir::{DType, Shape, Tensor, BATCH, SEQUENCE};
    let mut g = Graph::new();
    let tokens = Shape(vec![Dim::sym(BATCH), Dim::sym(SEQUENCE)]);
    let ids = g.add_input("input_ids", DType::I64, tokens.clone()).unwrap();
    if with_mask {
        g.add_input("attention_mask", DType::I64, tokens).unwrap();
    }
    let table = g
        .add_const("table", Tensor::from_f32(vec![3, 4], &[0.5; 12]))
        .unwrap();
    let weight = g
        .add_const("weight", Tensor::from_f32(vec![4, 4], &[0.25; 16]))
        .unwrap();
    let rows = g.add("lookup", Op::Gather { axis: 0 }, &[table, ids]).unwrap();
    let out = g.add("linear", Op::MatMul, &[rows, weight]).unwrap();
    g.set_output("out", out);
    g
}

#[test]
fn a_graph_without_an_attention_mask_is_left_alone() {
    let mut g = lookup_and_linear(false);
    let before = bertc::ir::dump(&g);
    let report = PackTokens.run(&mut g).unwrap();
    assert_eq!(report.matches, 0);
    assert_eq!(bertc::ir::dump(&g), before, "nothing says which tokens are real");

    let mut g = lookup_and_linear(true);
    let report = PackTokens.run(&mut g).unwrap();
    verify(&g).unwrap();
    // The lookup and the linear layer, on the tokens; the output unpacked.
    assert_eq!(report.matches, 2);
    let linear = g.find("linear").unwrap();
    assert!(on_tokens(
        &g,
        bertc::ir::Value {
            node: linear,
            slot: 0
        }
    ));
    let (_, out) = &g.outputs()[0];
    assert_eq!(g.info(*out).shape.to_string(), "[batch_size,sequence_length,4]");
    assert!(g.metadata.contains_key(PACKED_METADATA));
}

#[test]
fn packed_with_an_explicit_pass_list_is_refused() {
    let opts = PipelineOptions {
        packed: true,
        ..with_passes(&["fold_constants"])
    };
    assert_eq!(opts.validate(), Err(OptionError::PackedWithPasses));
    let out = bertc_run(&[
        &"compile",
        &fixture("tiny-base"),
        &"--packed",
        &"--passes",
        &"fold_constants",
        &"-o",
        &"/dev/null",
    ]);
    assert!(!out.status.success());
    assert!(stderr_of(&out).contains("pack_tokens"), "{}", stderr_of(&out));
}
