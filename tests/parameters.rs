//! Parameter counts against the published figures (PyTorch's numel() sum).

mod common;

use bertc::builder::bert_model_params;
use bertc::pipeline::{build, load_config};

fn count(preset: &str) -> usize {
    let c = load_config(preset).unwrap();
    bert_model_params(&c)
        .iter()
        .map(|s| s.shape.iter().product::<usize>())
        .sum()
}

#[test]
fn bert_base_and_minilm_have_their_published_parameter_counts() {
    assert_eq!(count("bert-base-uncased"), 109_482_240);
    assert_eq!(count("all-MiniLM-L6-v2"), 22_713_216);
    assert_eq!(count("bert-large-uncased"), 335_141_888);
}

#[test]
fn graph_parameter_count_excludes_structural_scalars() {
    let c = load_config("bert-tiny").unwrap();
    let g = build(&c, &common::shapes_only()).unwrap().graph;
    assert_eq!(g.parameter_count(), count("bert-tiny"));
}
