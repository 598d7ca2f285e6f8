//! Structure under review: the dump of every preset (seed 0) is an insta
//! snapshot in `snapshots/`; and dumps survive an ONNX round trip.

mod common;

use bertc::builder::Head;
use bertc::compile::{build, load_config, CompileOptions};
use bertc::ir::dump;
use bertc::onnx::{export_bytes, import_bytes, ExportOptions};
use bertc::passes::{level_passes, Level, PassManager};
use bertc::presets::PRESETS;

fn preset_dump(name: &str) -> String {
    let config = load_config(name).unwrap();
    dump(&build(&config, &CompileOptions::default()).unwrap().graph)
}

fn assert_dump_snapshot(name: &str, text: &str) {
    insta::with_settings!({
        snapshot_path => "../snapshots",
        prepend_module_to_snapshot => false,
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name.to_string(), text);
    });
}

/// The O0 (as built) and O2 (fused) dumps of every preset.
#[test]
fn preset_dumps() {
    for (name, _) in PRESETS {
        let config = load_config(name).unwrap();
        let mut graph = build(&config, &CompileOptions::default()).unwrap().graph;
        assert_dump_snapshot(&format!("O0-{name}"), &dump(&graph));
        PassManager::from_names(level_passes(Level::O2))
            .unwrap()
            .run(&mut graph)
            .unwrap();
        assert_dump_snapshot(&format!("O2-{name}"), &dump(&graph));
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
        let opts = CompileOptions {
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
    let mut graph = build(&config, &CompileOptions::default()).unwrap().graph;
    PassManager::from_names(level_passes(Level::O2))
        .unwrap()
        .run(&mut graph)
        .unwrap();
    let opts = bertc::quantize::PrecisionOptions {
        precision: bertc::quantize::Precision::Int8Dynamic,
        weights: bertc::passes::WeightGranularity::PerChannel,
        skip: vec![],
        embeddings: true,
        target: bertc::passes::Target::Portable,
    };
    bertc::quantize::apply(&mut graph, &opts).unwrap();
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
    let graph = build(&config, &CompileOptions::default()).unwrap().graph;
    for opset in [14, 17, 18, 23] {
        let bytes = export_bytes(&graph, ExportOptions { opset: Some(opset) }).unwrap();
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

#[test]
fn dump_is_independent_of_build_order() {
    // Two builds must print identically: the dump orders nodes canonically.
    assert_eq!(preset_dump("bert-tiny"), preset_dump("bert-tiny"));
}

#[test]
fn no_unreferenced_snapshots() {
    // Every file in snapshots/ must be one a test asserts; a stale one
    // would be reviewed as if it still meant something.
    let expected: std::collections::BTreeSet<String> = PRESETS
        .iter()
        .flat_map(|(name, _)| [format!("O0-{name}.snap"), format!("O2-{name}.snap")])
        .chain(HEAD_SNAPSHOTS.iter().map(|h| format!("O2-bert-tiny-{h}.snap")))
        .chain([format!("int8-{INT8_PRESET}.snap")])
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
