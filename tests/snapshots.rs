//! Structure under review, in `snapshots/` (insta):
//! - full dumps (every node, weight hashes) of the small presets, bert-tiny
//!   and bert-mini, at -O0 and -O2, of bert-tiny's heads and of its int8 form;
//! - for every other preset one structural summary (`structure-*.snap`):
//!   op counts, input/output shapes, the encoder layers collapsed, the -O2
//!   pass report — weights as dtype and shape only, so a change of
//!   initialisation does not rewrite them.
//!
//! And dumps survive an ONNX round trip and do not depend on build order.

mod common;

use common::assert_dump_snapshot;

use bertc::builder::Head;
use bertc::pipeline::{build, load_config, BuildOptions};
use std::collections::HashMap;

use bertc::ir::{dump, structure_summary, Graph, NodeId};
use bertc::onnx::{export_bytes, import_bytes, ExportOptions};
use bertc::passes::{level_passes, Level, PassManager, PassRun};
use bertc::presets::PRESETS;

/// The presets dumped in full; every other preset gets a structural summary.
const FULL_DUMP_PRESETS: [&str; 2] = ["bert-tiny", "bert-mini"];

/// The O0 (as built) and O2 (fused) dumps of the small presets.
#[test]
fn small_preset_dumps() {
    for name in FULL_DUMP_PRESETS {
        let config = load_config(name).unwrap();
        let mut graph = build(&config, &BuildOptions::default()).unwrap().graph;
        assert_dump_snapshot(&format!("O0-{name}"), &dump(&graph));
        PassManager::from_names(level_passes(Level::O2))
            .unwrap()
            .verify_each(true)
            .run(&mut graph)
            .unwrap();
        assert_dump_snapshot(&format!("O2-{name}"), &dump(&graph));
    }
}

/// One line per pass: matches and node counts (no times: they vary).
fn pass_report(runs: &[PassRun]) -> String {
    runs.iter()
        .map(|r| {
            format!(
                "  {:<32} {:>4} matches  nodes {} -> {}\n",
                r.pass, r.report.matches, r.nodes_before, r.nodes_after
            )
        })
        .collect()
}

/// Every larger preset: its -O0 structure, the -O2 pass report and its -O2
/// structure, in one file.
#[test]
fn large_preset_structures() {
    for (name, _) in PRESETS.iter().filter(|(n, _)| !FULL_DUMP_PRESETS.contains(n)) {
        let config = load_config(name).unwrap();
        let mut graph = build(&config, &common::shapes_only()).unwrap().graph;
        let mut text = format!("# {name} at -O0, as built\n{}", structure_summary(&graph));
        let runs = PassManager::from_names(level_passes(Level::O2))
            .unwrap()
            .verify_each(true)
            .run(&mut graph)
            .unwrap();
        text += &format!(
            "\n# -O2 passes: matches, nodes (with constants) before -> after\n{}",
            pass_report(&runs)
        );
        text += &format!("\n# {name} at -O2\n{}", structure_summary(&graph));
        assert_dump_snapshot(&format!("structure-{name}"), &text);
    }
}

/// The heads other than the base model, on bert-tiny (the base model's
/// dump is the preset's own), at -O2.
const HEAD_SNAPSHOTS: [Head; 5] = [
    Head::SequenceClassification,
    Head::TokenClassification,
    Head::QuestionAnswering,
    Head::MaskedLm,
    Head::SentenceEmbedding,
];

#[test]
fn head_dumps() {
    let config = load_config("bert-tiny").unwrap();
    for head in HEAD_SNAPSHOTS {
        let opts = BuildOptions {
            head: Some(head),
            ..Default::default()
        };
        let mut graph = build(&config, &opts).unwrap().graph;
        PassManager::from_names(level_passes(Level::O2))
            .unwrap()
            .verify_each(true)
            .run(&mut graph)
            .unwrap();
        assert_dump_snapshot(&format!("O2-bert-tiny-{head}"), &dump(&graph));
    }
}

/// The int8 (dynamic) dump of one preset, and its ONNX round trip.
#[test]
fn int8_dump() {
    let config = load_config(INT8_PRESET).unwrap();
    let mut graph = build(&config, &BuildOptions::default()).unwrap().graph;
    PassManager::from_names(level_passes(Level::O2))
        .unwrap()
        .run(&mut graph)
        .unwrap();
    let int8 = bertc::quantize::Precision::new(bertc::quantize::Form::Int8Dynamic);
    bertc::quantize::apply(
        common::test_session(),
        &mut graph,
        &int8,
        bertc::passes::Target::Portable,
    )
    .unwrap();
    assert_dump_snapshot(&format!("int8-{INT8_PRESET}"), &dump(&graph));
    let back = import_bytes(&export_bytes(&graph, ExportOptions::default()).unwrap()).unwrap();
    assert_eq!(
        dump(&back),
        dump(&graph),
        "int8 ONNX round trip changed the graph"
    );
}

const INT8_PRESET: &str = "bert-tiny";

#[test]
fn dump_survives_onnx_round_trip_at_every_opset() {
    let config = load_config("bert-tiny").unwrap();
    let graph = build(&config, &BuildOptions::default()).unwrap().graph;
    for opset in [14, 17, 18, 23] {
        let bytes = export_bytes(
            &graph,
            ExportOptions {
                opset: Some(opset),
                ..Default::default()
            },
        )
        .unwrap();
        let back = import_bytes(&bytes).unwrap();
        bertc::ir::verify(&back).unwrap();
        assert_eq!(
            dump(&back),
            dump(&graph),
            "opset {opset} round trip changed the graph"
        );
        assert_eq!(back.metadata, graph.metadata);
    }
}

/// The same graph with its nodes inserted in another order: graph inputs
/// first (their order is part of the interface), then, among the nodes whose
/// inputs are already placed, always the one inserted last in `g`.
fn rebuilt_in_another_order(g: &Graph) -> Graph {
    let mut new = Graph::new();
    let mut placed: HashMap<NodeId, NodeId> = HashMap::new();
    for &id in g.inputs() {
        let n = g.node(id);
        let v = new
            .add_input(&n.name, n.outputs[0].dtype, n.outputs[0].shape.clone())
            .unwrap();
        placed.insert(id, v.node);
    }
    let mut pending: Vec<NodeId> = g.node_ids().filter(|id| !placed.contains_key(id)).collect();
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .rposition(|&id| {
                g.inputs_of(id)
                    .iter()
                    .flatten()
                    .all(|v| placed.contains_key(&v.node))
            })
            .expect("the graph is acyclic");
        let id = pending.remove(ready);
        let n = g.node(id);
        let new_id = match &n.op {
            bertc::ir::Op::Constant(t) => new.add_const(&n.name, t.clone()).unwrap().node,
            op => {
                let inputs: Vec<_> = g
                    .inputs_of(id)
                    .into_iter()
                    .map(|v| {
                        v.map(|v| bertc::ir::Value {
                            node: placed[&v.node],
                            slot: v.slot,
                        })
                    })
                    .collect();
                new.add_node(&n.name, op.clone(), &inputs).unwrap()
            }
        };
        placed.insert(id, new_id);
    }
    for (name, v) in g.outputs() {
        new.set_output(
            name,
            bertc::ir::Value {
                node: placed[&v.node],
                slot: v.slot,
            },
        );
    }
    new.metadata = g.metadata.clone();
    new
}

/// Node names in insertion (petgraph index) order.
fn insertion_order(g: &Graph) -> Vec<String> {
    g.node_ids().map(|id| g.node(id).name.clone()).collect()
}

#[test]
fn dump_is_independent_of_build_order() {
    // The dump and the emitter order nodes canonically, never by insertion:
    // a graph built in another order prints and serializes the same, as
    // built and after passes (which leave holes in petgraph's indices).
    let config = load_config("bert-tiny").unwrap();
    let mut graph = build(&config, &BuildOptions::default()).unwrap().graph;
    for stage in ["as built", "after -O2"] {
        if stage == "after -O2" {
            PassManager::from_names(level_passes(Level::O2))
                .unwrap()
                .run(&mut graph)
                .unwrap();
        }
        let other = rebuilt_in_another_order(&graph);
        bertc::ir::verify(&other).unwrap();
        assert_ne!(
            insertion_order(&graph),
            insertion_order(&other),
            "{stage}: the rebuilt graph has the same insertion order; the test would compare nothing"
        );
        assert_eq!(
            dump(&other),
            dump(&graph),
            "{stage}: the dump depends on build order"
        );
        assert_eq!(
            export_bytes(&other, ExportOptions::default()).unwrap(),
            export_bytes(&graph, ExportOptions::default()).unwrap(),
            "{stage}: the ONNX bytes depend on build order"
        );
    }
}

#[test]
fn no_unreferenced_snapshots() {
    // Every file in snapshots/ must be one a test asserts; a stale one
    // would be reviewed as if it still meant something.
    let expected: std::collections::BTreeSet<String> = FULL_DUMP_PRESETS
        .iter()
        .flat_map(|name| [format!("O0-{name}.snap"), format!("O2-{name}.snap")])
        .chain(
            PRESETS
                .iter()
                .filter(|(n, _)| !FULL_DUMP_PRESETS.contains(n))
                .map(|(name, _)| format!("structure-{name}.snap")),
        )
        .chain(HEAD_SNAPSHOTS.iter().map(|h| format!("O2-bert-tiny-{h}.snap")))
        .chain([format!("int8-{INT8_PRESET}.snap")])
        .chain(
            common::FAMILY_BASE_CASES
                .iter()
                .flat_map(|case| [format!("O0-family-{case}.snap"), format!("O2-family-{case}.snap")]),
        )
        .collect();
    let dir = common::root().join("snapshots");
    let found: std::collections::BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let orphans: Vec<_> = found.difference(&expected).collect();
    assert!(
        orphans.is_empty(),
        "unreferenced or pending snapshots in {}: {orphans:?}",
        dir.display()
    );
}

#[test]
fn family_dumps() {
    for case in common::FAMILY_BASE_CASES {
        let dir = common::family_dir(case);
        let config = bertc::config::BertConfig::from_path(&dir.join("config.json")).unwrap();
        let opts = BuildOptions {
            weights: Some(dir.join("model.safetensors")),
            ..Default::default()
        };
        let mut graph = build(&config, &opts).unwrap().graph;
        assert_dump_snapshot(&format!("O0-family-{case}"), &dump(&graph));
        PassManager::from_names(level_passes(Level::O2))
            .unwrap()
            .verify_each(true)
            .run(&mut graph)
            .unwrap();
        assert_dump_snapshot(&format!("O2-family-{case}"), &dump(&graph));
    }
}

/// `bertc dump` prints the reviewed dump as built without `-O`, and with
/// `-O N` the graph `compile -O N` writes (issue 25: dump had no `-O`).
#[test]
fn the_dump_command_prints_the_graph_as_built_or_as_compiled() {
    let dump_cli = |args: &[&dyn AsRef<std::ffi::OsStr>]| {
        let out = common::bertc_run(args);
        assert!(out.status.success(), "{}", common::stderr_of(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let snapshot = std::fs::read_to_string(common::root().join("snapshots/O0-bert-tiny.snap")).unwrap();
    let as_built = snapshot.splitn(3, "---\n").nth(2).unwrap();
    assert_eq!(dump_cli(&[&"dump", &"bert-tiny"]).trim_end(), as_built.trim_end());
    let dir = tempfile::tempdir().unwrap();
    let mut dumps = vec![];
    for level in ["0", "2"] {
        let file = dir.path().join(format!("O{level}.onnx"));
        let out = common::bertc_run(&[
            &"compile",
            &"bert-tiny",
            &"-O",
            &level,
            &"--no-check",
            &"-o",
            &file,
        ]);
        assert!(out.status.success(), "{}", common::stderr_of(&out));
        let compiled = dump_cli(&[&"dump", &"bert-tiny", &"-O", &level]);
        assert_eq!(compiled, dump_cli(&[&"dump", &file]), "-O {level}");
        dumps.push(compiled);
    }
    assert_ne!(dumps[0], dumps[1], "-O2 fuses what -O0 leaves");
}
